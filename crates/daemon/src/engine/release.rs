//! What the engine gives back once things are gone: the page caches of its database
//! connections and the spare capacity of its in-memory maps. Called by the daemon's trimmer
//! ([`crate::memory::trimmer`]) after a burst of removals, before the heap is trimmed.

use super::Engine;

impl Engine {
    /// Frees the database connections' page caches and the spare capacity of the exec
    /// map, the container table's name index and the network's per-container maps.
    /// Nothing is lost: a page read again comes from the kernel's page cache. Errors only
    /// cost memory, so they are logged, not returned.
    pub fn release_memory(&self) {
        if let Err(e) = self.store.release_memory() {
            tracing::debug!(error = %e, "release the container store's cache");
        }
        if let Err(e) = self.volumes.release_memory() {
            tracing::debug!(error = %e, "release the volume store's cache");
        }
        if let Err(e) = self.images.release_memory() {
            tracing::debug!(error = %e, "release the image store's cache");
        }
        match self.execs.write() {
            Ok(mut m) => m.shrink_to_fit(),
            Err(p) => p.into_inner().shrink_to_fit(),
        }
        self.table_mut().shrink_to_fit();
        self.networks.release_memory();
    }
}

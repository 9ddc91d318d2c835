//! The registry's storage on disk: content-addressed blobs shared by every repository,
//! and per repository the links that say what it holds.
//!
//! ```text
//! ROOT/lock                                          one server per root (flock)
//! ROOT/blobs/<alg>/<ab>/<hex>                         blob and manifest bytes, verified, immutable
//! ROOT/repositories/<name>/_layers/<alg>/<hex>         link: the blob belongs to <name>
//! ROOT/repositories/<name>/_manifests/revisions/<alg>/<hex>   link: a manifest of <name>; holds its media type
//! ROOT/repositories/<name>/_manifests/tags/<tag>       the digest the tag points to
//! ROOT/repositories/<name>/_referrers/<alg>/<subject hex>/<hex>   link: manifest <hex> has `subject` <subject>
//! ROOT/repositories/<name>/_uploads/<uuid>/data        an upload in progress (staging)
//! ```
//!
//! `<alg>` is `sha256` or `sha512` ([`super::digest`]); a link's file name is the encoded
//! part alone, whose length tells the algorithm.
//!
//! Why this shape:
//! - **Bytes once, links per repository.** A layer pushed to ten repositories is stored
//!   once; what a repository may serve is decided by its links alone, so a cross-repository
//!   mount is one link, and a blob another repository uploaded is invisible here until it
//!   is pushed or mounted here (as distribution does: knowing a digest grants nothing).
//! - **The two-level fan-out** (`<ab>/`) keeps directories small on big registries.
//! - **Crash safety by staging and rename.** Upload bytes land in `_uploads/<uuid>/data`
//!   inside the same file system; a blob becomes visible only when its upload is complete,
//!   fsynced and its digest checked, by `rename` into `blobs/` (then the directory is
//!   fsynced) followed by the link, itself written to a temp file and renamed. A kill at any
//!   byte leaves at worst an upload that can be resumed (its size is its progress) or a
//!   blob no link names, which is invisible and is reused by the next upload of the same
//!   digest. Tags and links are replaced the same way, so a reader sees the old or the new,
//!   never a prefix. Temp files left by a crash (`.tmp-*`) are removed at start.
//! - **No database.** Everything is in the tree, so a restart needs no replay and the
//!   tree can be inspected, backed up and checked ([`Storage::check`]) with plain tools.
//! - **Metadata changes are serialized** by one in-process lock (they are small: a rename,
//!   a link), so a delete that reclaims a blob no repository links any more cannot race an
//!   upload committing the same digest. Streaming bytes never holds it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use berth_base::fsutil::{self, FileLock};

use super::digest::{Algorithm, Digest, Hasher};

use crate::Error;

/// Uploads untouched for this long are removed (distribution's default, a week).
pub const UPLOAD_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How far an upload has got: the hash of its first `len` bytes. Kept in memory so each
/// byte is hashed once; after a restart (or a write that failed half way) it is rebuilt
/// from the staged file, which is always the truth.
#[derive(Clone)]
pub struct Progress {
    /// The hash of the bytes so far.
    pub hasher: Hasher,
    /// How many bytes that is.
    pub len: u64,
}

/// One upload's place: held while a request writes to it, so chunks never interleave;
/// it carries the in-memory [`Progress`] when that is known to match the file.
pub type UploadSlot = Arc<tokio::sync::Mutex<Option<Progress>>>;

/// What finishing an upload came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Commit {
    /// The bytes matched the digest and are now the repository's blob.
    Done,
    /// They did not: the upload is gone and nothing was stored.
    Mismatch {
        /// The digest of what was uploaded.
        actual: Digest,
    },
    /// No such upload.
    Unknown,
}

/// A manifest as stored.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// Its digest.
    pub digest: Digest,
    /// The media type it was pushed with.
    pub media_type: String,
    /// Its bytes, exactly as pushed.
    pub bytes: Vec<u8>,
}

/// A problem [`Storage::check`] found.
pub type Finding = String;

/// The registry's storage under one root.
pub struct Storage {
    root: PathBuf,
    meta: Mutex<()>,
    uploads: Mutex<HashMap<String, UploadSlot>>,
    _lock: FileLock,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_owned(), source }
}

/// Creates `dir` and its missing parents, fsyncing the parent of each directory it creates,
/// so that a link or blob renamed into it afterwards survives a power loss with its path.
fn make_dirs(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    }
    if let Some(parent) = dir.parent() {
        fsutil::sync_dir(parent).map_err(io_err(parent))?;
    }
    Ok(())
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl Storage {
    /// Opens (creating) the storage at `root`: takes the root's lock, removes temp files a
    /// crash left, and purges uploads older than [`UPLOAD_MAX_AGE`].
    pub fn open(root: &Path) -> Result<Storage, Error> {
        for d in [root.to_owned(), root.join("blobs"), root.join("repositories")] {
            make_dirs(&d)?;
        }
        let lock_path = root.join("lock");
        let lock = FileLock::try_lock(&lock_path)
            .map_err(io_err(&lock_path))?
            .ok_or_else(|| Error::RootInUse(root.to_owned()))?;
        let st =
            Storage { root: root.to_owned(), meta: Mutex::new(()), uploads: Mutex::new(HashMap::new()), _lock: lock };
        st.recover()?;
        let orphans = st.reclaim_orphans()?;
        if orphans > 0 {
            tracing::info!(orphans, "removed blobs no repository links (left by an interrupted upload or delete)");
        }
        Ok(st)
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn meta(&self) -> MutexGuard<'_, ()> {
        self.meta.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the bytes of `d` live.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm().as_str()).join(&d.hex()[..2]).join(d.hex())
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.root.join("repositories").join(name)
    }

    fn layer_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo(name).join("_layers").join(d.algorithm().as_str()).join(d.hex())
    }

    fn revision_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo(name).join("_manifests/revisions").join(d.algorithm().as_str()).join(d.hex())
    }

    fn tags_dir(&self, name: &str) -> PathBuf {
        self.repo(name).join("_manifests/tags")
    }

    fn referrers_dir(&self, name: &str, subject: &Digest) -> PathBuf {
        self.repo(name).join("_referrers").join(subject.algorithm().as_str()).join(subject.hex())
    }

    fn upload_dir(&self, name: &str, id: &str) -> PathBuf {
        self.repo(name).join("_uploads").join(id)
    }

    /// Whether the repository exists (has ever held a blob or a manifest).
    pub fn repo_exists(&self, name: &str) -> bool {
        let r = self.repo(name);
        r.join("_layers").is_dir() || r.join("_manifests").is_dir()
    }

    /// Writes a small metadata file crash-safely (temp, fsync, rename, fsync dir).
    fn put_file(path: &Path, data: &[u8]) -> Result<(), Error> {
        if let Some(dir) = path.parent() {
            make_dirs(dir)?;
        }
        fsutil::atomic_write_mode(path, data, fsutil::SHARED_FILE).map_err(io_err(path))
    }

    fn remove_file(path: &Path) -> Result<bool, Error> {
        match fs::remove_file(path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    fsutil::sync_dir(dir).map_err(io_err(dir))?;
                }
                Ok(true)
            }
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    // ---- blobs ----

    /// The size of blob `d` if repository `name` holds it.
    pub fn blob_size(&self, name: &str, d: &Digest) -> Result<Option<u64>, Error> {
        if !self.layer_link(name, d).exists() {
            return Ok(None);
        }
        let p = self.blob_path(d);
        match fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Opens blob `d` of repository `name` for reading, with its size.
    pub fn open_blob(&self, name: &str, d: &Digest) -> Result<Option<(File, u64)>, Error> {
        if !self.layer_link(name, d).exists() {
            return Ok(None);
        }
        let p = self.blob_path(d);
        match File::open(&p) {
            Ok(f) => {
                let len = f.metadata().map_err(io_err(&p))?.len();
                Ok(Some((f, len)))
            }
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Links blob `d`, held by repository `from`, into `name` (a cross-repository mount).
    /// False when `from` does not hold it.
    pub fn mount(&self, name: &str, from: &str, d: &Digest) -> Result<bool, Error> {
        let _g = self.meta();
        if !self.layer_link(from, d).exists() || !self.blob_path(d).exists() {
            return Ok(false);
        }
        Self::put_file(&self.layer_link(name, d), d.to_string().as_bytes())?;
        Ok(true)
    }

    /// Removes blob `d` from repository `name`; its bytes go too once no repository links
    /// them. False when `name` did not hold it.
    pub fn delete_blob(&self, name: &str, d: &Digest) -> Result<bool, Error> {
        let _g = self.meta();
        let removed = Self::remove_file(&self.layer_link(name, d))?;
        if removed {
            self.reclaim(d)?;
        }
        Ok(removed)
    }

    /// Removes the bytes of `d` if no repository links them (as a layer or a manifest).
    /// Called with the metadata lock held.
    fn reclaim(&self, d: &Digest) -> Result<(), Error> {
        for repo in self.repositories()? {
            if self.layer_link(&repo, d).exists() || self.revision_link(&repo, d).exists() {
                return Ok(());
            }
        }
        Self::remove_file(&self.blob_path(d))?;
        Ok(())
    }

    /// Stores `bytes` as blob `d` unless present: temp file, fsync, rename, fsync dir.
    /// Called with the metadata lock held.
    fn put_blob_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<(), Error> {
        let p = self.blob_path(d);
        if p.exists() {
            return Ok(());
        }
        Self::put_file(&p, bytes)
    }

    // ---- uploads ----

    /// Starts an upload in repository `name`, hashing with `algorithm` as bytes come (the
    /// commit rehashes if the digest it is given uses another); returns its id.
    pub fn start_upload(&self, name: &str, algorithm: Algorithm) -> Result<String, Error> {
        let id = super::names::new_upload_id();
        let dir = self.upload_dir(name, &id);
        make_dirs(&dir)?;
        let data = dir.join("data");
        File::create(&data).map_err(io_err(&data))?;
        fsutil::sync_dir(&dir).map_err(io_err(&dir))?;
        self.slot(&id, Some(Progress { hasher: algorithm.hasher(), len: 0 }));
        Ok(id)
    }

    fn slot(&self, id: &str, progress: Option<Progress>) -> UploadSlot {
        let mut map = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_owned()).or_insert_with(|| Arc::new(tokio::sync::Mutex::new(progress))).clone()
    }

    /// The place of upload `id` of `name`, if it exists (to lock before writing to it).
    pub fn upload_slot(&self, name: &str, id: &str) -> Option<UploadSlot> {
        if !self.upload_dir(name, id).join("data").is_file() {
            return None;
        }
        Some(self.slot(id, None))
    }

    /// How many bytes upload `id` of `name` holds.
    pub fn upload_size(&self, name: &str, id: &str) -> Result<Option<u64>, Error> {
        let p = self.upload_dir(name, id).join("data");
        match fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Opens the staged bytes of upload `id` for appending.
    pub fn upload_file(&self, name: &str, id: &str) -> Result<File, Error> {
        let p = self.upload_dir(name, id).join("data");
        OpenOptions::new().append(true).open(&p).map_err(io_err(&p))
    }

    /// The progress of upload `id` in `algorithm`, from memory when it matches the file,
    /// else by hashing the staged file (after a restart or an interrupted write, or when
    /// the upload was hashed with another algorithm than its digest's).
    pub fn progress(
        &self,
        name: &str,
        id: &str,
        cached: Option<Progress>,
        algorithm: Algorithm,
    ) -> Result<Progress, Error> {
        let p = self.upload_dir(name, id).join("data");
        let size = fs::metadata(&p).map_err(io_err(&p))?.len();
        if let Some(c) = cached.filter(|c| c.len == size && c.hasher.algorithm() == algorithm) {
            return Ok(c);
        }
        let mut f = File::open(&p).map_err(io_err(&p))?;
        let mut hasher = algorithm.hasher();
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io_err(&p))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        Ok(Progress { hasher, len })
    }

    /// Finishes upload `id` of `name` as blob `d`: checks the digest of the staged bytes
    /// (already fsynced by whoever wrote them), moves them into place unless the blob is
    /// already stored, links it into `name`, and removes the upload. On a mismatch the
    /// upload is removed and nothing is stored.
    pub fn commit_upload(&self, name: &str, id: &str, d: &Digest, cached: Option<Progress>) -> Result<Commit, Error> {
        let dir = self.upload_dir(name, id);
        let data = dir.join("data");
        if !data.is_file() {
            return Ok(Commit::Unknown);
        }
        let progress = self.progress(name, id, cached, d.algorithm())?;
        let actual = progress.hasher.finish();
        if &actual != d {
            self.cancel_upload(name, id)?;
            return Ok(Commit::Mismatch { actual });
        }
        {
            let _g = self.meta();
            let dest = self.blob_path(d);
            if !dest.exists() {
                let fan = dest.parent().unwrap_or(&self.root);
                make_dirs(fan)?;
                File::open(&data).and_then(|f| f.sync_all()).map_err(io_err(&data))?;
                fs::rename(&data, &dest).map_err(io_err(&dest))?;
                fsutil::sync_dir(fan).map_err(io_err(fan))?;
            }
            Self::put_file(&self.layer_link(name, d), d.to_string().as_bytes())?;
        }
        self.cancel_upload(name, id)?;
        Ok(Commit::Done)
    }

    /// Removes upload `id` of `name`. False when there was none.
    pub fn cancel_upload(&self, name: &str, id: &str) -> Result<bool, Error> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        let dir = self.upload_dir(name, id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(io_err(&dir)(e)),
        }
    }

    // ---- manifests ----

    /// Stores manifest `bytes` (digest `d`, `media_type`) in `name`, tagging it `tags`, after
    /// checking under the metadata lock that `name` holds every blob in `blobs` and every
    /// manifest in `manifests`. Returns the digests it lacks (and then stores nothing).
    #[allow(clippy::too_many_arguments)]
    pub fn put_manifest(
        &self,
        name: &str,
        d: &Digest,
        media_type: &str,
        bytes: &[u8],
        tags: &[String],
        blobs: &[Digest],
        manifests: &[Digest],
        subject: Option<&Digest>,
    ) -> Result<Vec<Digest>, Error> {
        let _g = self.meta();
        let mut missing = Vec::new();
        for b in blobs {
            let held = self.layer_link(name, b).exists() && self.blob_path(b).exists();
            if !held && !missing.contains(b) {
                missing.push(b.clone());
            }
        }
        for m in manifests {
            let held = self.revision_link(name, m).exists() && self.blob_path(m).exists();
            if !held && !missing.contains(m) {
                missing.push(m.clone());
            }
        }
        if !missing.is_empty() {
            return Ok(missing);
        }
        self.put_blob_bytes(d, bytes)?;
        Self::put_file(&self.revision_link(name, d), media_type.as_bytes())?;
        if let Some(s) = subject {
            Self::put_file(&self.referrers_dir(name, s).join(d.hex()), d.to_string().as_bytes())?;
        }
        for t in tags {
            Self::put_file(&self.tags_dir(name).join(t), d.to_string().as_bytes())?;
        }
        Ok(Vec::new())
    }

    /// The digest tag `tag` of `name` points to.
    pub fn resolve_tag(&self, name: &str, tag: &str) -> Result<Option<Digest>, Error> {
        let p = self.tags_dir(name).join(tag);
        match fs::read_to_string(&p) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Manifest `d` of `name`.
    pub fn manifest(&self, name: &str, d: &Digest) -> Result<Option<StoredManifest>, Error> {
        let link = self.revision_link(name, d);
        let media_type = match fs::read_to_string(&link) {
            Ok(s) => s.trim().to_owned(),
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(io_err(&link)(e)),
        };
        let p = self.blob_path(d);
        match fs::read(&p) {
            Ok(bytes) => Ok(Some(StoredManifest { digest: d.clone(), media_type, bytes })),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Removes tag `tag` of `name`. False when there was none.
    pub fn delete_tag(&self, name: &str, tag: &str) -> Result<bool, Error> {
        let _g = self.meta();
        Self::remove_file(&self.tags_dir(name).join(tag))
    }

    /// Removes manifest `d` from `name`: first the tags pointing to it, then its referrer
    /// entry, then the manifest, so a crash half way leaves no tag naming a missing
    /// manifest. Its bytes go once no repository links them. False when there was none.
    pub fn delete_manifest(&self, name: &str, d: &Digest) -> Result<bool, Error> {
        let _g = self.meta();
        let Some(m) = self.manifest(name, d)? else {
            return Ok(false);
        };
        for tag in self.tags(name)?.unwrap_or_default() {
            if self.resolve_tag(name, &tag)?.as_ref() == Some(d) {
                Self::remove_file(&self.tags_dir(name).join(&tag))?;
            }
        }
        let subject = serde_json::from_slice::<serde_json::Value>(&m.bytes)
            .ok()
            .and_then(|v| v["subject"]["digest"].as_str().and_then(|s| s.parse::<Digest>().ok()));
        if let Some(s) = subject {
            Self::remove_file(&self.referrers_dir(name, &s).join(d.hex()))?;
        }
        Self::remove_file(&self.revision_link(name, d))?;
        self.reclaim(d)?;
        Ok(true)
    }

    /// The tags of `name`, sorted; `None` when the repository does not exist.
    pub fn tags(&self, name: &str) -> Result<Option<Vec<String>>, Error> {
        if !self.repo_exists(name) {
            return Ok(None);
        }
        let dir = self.tags_dir(name);
        let mut tags = Vec::new();
        match fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e.map_err(io_err(&dir))?;
                    let n = e.file_name().to_string_lossy().into_owned();
                    if super::names::valid_tag(&n) {
                        tags.push(n);
                    }
                }
            }
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(io_err(&dir)(e)),
        }
        tags.sort();
        Ok(Some(tags))
    }

    /// The manifests of `name` whose `subject` is `subject`.
    pub fn referrers(&self, name: &str, subject: &Digest) -> Result<Vec<StoredManifest>, Error> {
        let dir = self.referrers_dir(name, subject);
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if not_found(&e) => return Ok(out),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for e in rd {
            let e = e.map_err(io_err(&dir))?;
            let Ok(d) = Digest::from_hex(&e.file_name().to_string_lossy()) else { continue };
            if let Some(m) = self.manifest(name, &d)? {
                out.push(m);
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Every repository, sorted.
    pub fn repositories(&self) -> Result<Vec<String>, Error> {
        self.repo_dirs(&["_layers", "_manifests"])
    }

    /// The repository directories holding one of `markers` (`_layers`, `_uploads`…), sorted.
    fn repo_dirs(&self, markers: &[&str]) -> Result<Vec<String>, Error> {
        fn walk(dir: &Path, prefix: &str, markers: &[&str], out: &mut Vec<String>) -> Result<(), Error> {
            let rd = match fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if not_found(&e) => return Ok(()),
                Err(e) => return Err(io_err(dir)(e)),
            };
            let mut is_repo = false;
            let mut children = Vec::new();
            for e in rd {
                let e = e.map_err(io_err(dir))?;
                let n = e.file_name().to_string_lossy().into_owned();
                if markers.contains(&n.as_str()) {
                    is_repo = true;
                } else if !n.starts_with(['_', '.']) && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    children.push(n);
                }
            }
            if is_repo && !prefix.is_empty() {
                out.push(prefix.to_owned());
            }
            for c in children {
                let p = if prefix.is_empty() { c.clone() } else { format!("{prefix}/{c}") };
                walk(&dir.join(&c), &p, markers, out)?;
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(&self.root.join("repositories"), "", markers, &mut out)?;
        out.sort();
        Ok(out)
    }

    // ---- start-up and checking ----

    /// Every digest some repository links, as a layer or as a manifest (`<alg>:<hex>`).
    fn linked(&self) -> Result<std::collections::HashSet<String>, Error> {
        let mut linked = std::collections::HashSet::new();
        for repo in self.repositories()? {
            for alg in Algorithm::ALL {
                for dir in [
                    self.repo(&repo).join("_layers").join(alg.as_str()),
                    self.repo(&repo).join("_manifests/revisions").join(alg.as_str()),
                ] {
                    let Ok(rd) = fs::read_dir(&dir) else { continue };
                    for e in rd {
                        let n = e.map_err(io_err(&dir))?.file_name().to_string_lossy().into_owned();
                        linked.insert(format!("{}:{n}", alg.as_str()));
                    }
                }
            }
        }
        Ok(linked)
    }

    /// The stored blobs, as (algorithm, file name, path).
    fn stored_blobs(&self) -> Result<Vec<(Algorithm, String, PathBuf)>, Error> {
        let mut out = Vec::new();
        for alg in Algorithm::ALL {
            let blobs = self.root.join("blobs").join(alg.as_str());
            let rd = match fs::read_dir(&blobs) {
                Ok(rd) => rd,
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(io_err(&blobs)(e)),
            };
            for fan in rd {
                let fan = fan.map_err(io_err(&blobs))?.path();
                if !fan.is_dir() {
                    continue;
                }
                for b in fs::read_dir(&fan).map_err(io_err(&fan))? {
                    let b = b.map_err(io_err(&fan))?;
                    out.push((alg, b.file_name().to_string_lossy().into_owned(), b.path()));
                }
            }
        }
        Ok(out)
    }

    /// Removes blobs that no repository links: a crash between moving an upload into
    /// place and linking it, or between unlinking and removing, leaves such bytes, which no
    /// request can reach. Only at start, while the root's lock keeps everyone else out.
    fn reclaim_orphans(&self) -> Result<usize, Error> {
        let linked = self.linked()?;
        let mut removed = 0;
        for (alg, hex, path) in self.stored_blobs()? {
            if !hex.starts_with('.') && !linked.contains(&format!("{}:{hex}", alg.as_str())) {
                fs::remove_file(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes what a crash can leave behind: temp files of interrupted renames anywhere,
    /// and uploads nobody touched for [`UPLOAD_MAX_AGE`]. Staged uploads younger than that
    /// stay: a client may resume them.
    fn recover(&self) -> Result<(), Error> {
        fn sweep(dir: &Path, now: SystemTime) -> Result<(), Error> {
            let rd = match fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if not_found(&e) => return Ok(()),
                Err(e) => return Err(io_err(dir)(e)),
            };
            for e in rd {
                let e = e.map_err(io_err(dir))?;
                let p = e.path();
                let n = e.file_name().to_string_lossy().into_owned();
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if n.starts_with(".tmp-") {
                    let r = if is_dir { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
                    r.map_err(io_err(&p))?;
                    tracing::info!(path = %p.display(), "removed a temp file left by an interrupted write");
                } else if n == "_uploads" && is_dir {
                    for u in fs::read_dir(&p).map_err(io_err(&p))? {
                        let u = u.map_err(io_err(&p))?;
                        let age = u
                            .metadata()
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|m| now.duration_since(m).ok())
                            .unwrap_or_default();
                        let data = u.path().join("data");
                        let stale_data = data.metadata().and_then(|m| m.modified()).ok();
                        let idle = stale_data.and_then(|m| now.duration_since(m).ok()).unwrap_or(age);
                        if idle > UPLOAD_MAX_AGE || !data.exists() {
                            fs::remove_dir_all(u.path()).map_err(io_err(&u.path()))?;
                            tracing::info!(upload = %u.path().display(), "purged a stale upload");
                        }
                    }
                } else if is_dir {
                    sweep(&p, now)?;
                }
            }
            Ok(())
        }
        let now = SystemTime::now();
        sweep(&self.root.join("blobs"), now)?;
        sweep(&self.root.join("repositories"), now)
    }

    /// Removes uploads of every repository untouched for `max_age` (their staged bytes
    /// unchanged that long), except those being written to now. Safe while serving.
    pub fn purge_uploads(&self, max_age: Duration) -> Result<usize, Error> {
        let now = SystemTime::now();
        let mut purged = 0;
        for repo in self.repo_dirs(&["_uploads"])? {
            let dir = self.repo(&repo).join("_uploads");
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for u in rd.flatten() {
                let id = u.file_name().to_string_lossy().into_owned();
                let idle = fs::metadata(u.path().join("data"))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or_default();
                if idle <= max_age {
                    continue;
                }
                // Skip an upload a request holds right now.
                let slot = self.slot(&id, None);
                let Ok(_held) = slot.try_lock() else { continue };
                if self.cancel_upload(&repo, &id)? {
                    tracing::info!(repository = %repo, upload = %id, "purged a stale upload");
                    purged += 1;
                }
            }
        }
        Ok(purged)
    }

    /// Checks the storage's invariants and lists every violation: each stored blob's bytes
    /// hash to its name, every link names a stored blob, every tag names a manifest of its
    /// repository, every revision link holds a media type, no temp file is left. Empty when
    /// all is well. Reads every blob: meant for tests and for checking a root after a crash.
    pub fn check(&self) -> Result<Vec<Finding>, Error> {
        let _g = self.meta();
        let mut findings = Vec::new();
        let linked = self.linked()?;
        for (alg, n, path) in self.stored_blobs()? {
            if n.starts_with(".tmp-") {
                continue; // reported below with every temp file
            }
            let Ok(d) = format!("{}:{n}", alg.as_str()).parse::<Digest>() else {
                findings.push(format!("stray file {}", path.display()));
                continue;
            };
            let mut f = File::open(&path).map_err(io_err(&path))?;
            let mut h = alg.hasher();
            io::copy(&mut f, &mut h).map_err(io_err(&path))?;
            if h.finish() != d {
                findings.push(format!("blob {d} does not match its digest"));
            }
            if !linked.contains(&d.to_string()) {
                findings.push(format!("blob {d} is linked by no repository"));
            }
        }
        for repo in self.repositories()? {
            let mut link_dirs = Vec::new();
            for alg in Algorithm::ALL {
                link_dirs.push((self.repo(&repo).join("_layers").join(alg.as_str()), "layer link"));
                link_dirs.push((self.repo(&repo).join("_manifests/revisions").join(alg.as_str()), "manifest"));
                let refs = self.repo(&repo).join("_referrers").join(alg.as_str());
                if let Ok(rd) = fs::read_dir(&refs) {
                    for s in rd.flatten() {
                        link_dirs.push((s.path(), "referrer"));
                    }
                }
            }
            for (dir, what) in link_dirs {
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                for l in rd {
                    let l = l.map_err(io_err(&dir))?;
                    let n = l.file_name().to_string_lossy().into_owned();
                    match Digest::from_hex(&n) {
                        Ok(d) if self.blob_path(&d).is_file() => {
                            if what == "referrer" && !self.revision_link(&repo, &d).exists() {
                                findings.push(format!("{repo}: referrer {d} is not a manifest"));
                            }
                        }
                        Ok(d) => findings.push(format!("{repo}: {what} {d} names no stored blob")),
                        Err(_) => findings.push(format!("{repo}: stray file {}", l.path().display())),
                    }
                }
            }
            for tag in self.tags(&repo)?.unwrap_or_default() {
                match self.resolve_tag(&repo, &tag)? {
                    Some(d) if self.manifest(&repo, &d)?.is_some() => {}
                    Some(d) => findings.push(format!("{repo}:{tag} names missing manifest {d}")),
                    None => findings.push(format!("{repo}:{tag} holds no digest")),
                }
            }
        }
        fn temps(dir: &Path, out: &mut Vec<Finding>) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    out.push(format!("temp file {}", e.path().display()));
                } else if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    temps(&e.path(), out);
                }
            }
        }
        temps(&self.root, &mut findings);
        Ok(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress_of(st: &Storage, id: &str, bytes: &[u8]) {
        use std::io::Write;
        let mut f = st.upload_file("a/b", id).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn upload_commit_link_mount_delete() {
        let dir = tempfile::tempdir().unwrap();
        let st = Storage::open(dir.path()).unwrap();
        assert!(matches!(Storage::open(dir.path()), Err(Error::RootInUse(_))), "one server per root");
        let id = st.start_upload("a/b", Algorithm::Sha256).unwrap();
        progress_of(&st, &id, b"hello");
        let d = Digest::of(b"hello");
        // Progress is rebuilt from the file when memory lost it.
        assert_eq!(st.progress("a/b", &id, None, Algorithm::Sha256).unwrap().len, 5);
        let wrong = Digest::of(b"other");
        assert!(matches!(st.commit_upload("a/b", &id, &wrong, None).unwrap(), Commit::Mismatch { .. }));
        assert_eq!(st.upload_size("a/b", &id).unwrap(), None, "a mismatch removes the upload");
        assert!(!st.blob_path(&wrong).exists() && !st.blob_path(&d).exists());

        let id = st.start_upload("a/b", Algorithm::Sha256).unwrap();
        progress_of(&st, &id, b"hello");
        assert_eq!(st.commit_upload("a/b", &id, &d, None).unwrap(), Commit::Done);
        assert_eq!(st.blob_size("a/b", &d).unwrap(), Some(5));
        assert_eq!(st.blob_size("c", &d).unwrap(), None, "other repositories do not see it");
        assert!(st.mount("c", "a/b", &d).unwrap());
        assert!(!st.mount("c", "nope", &Digest::of(b"x")).unwrap());
        assert_eq!(st.repositories().unwrap(), ["a/b", "c"]);
        assert!(st.delete_blob("a/b", &d).unwrap());
        assert!(st.blob_path(&d).exists(), "c still links it");
        assert!(st.delete_blob("c", &d).unwrap());
        assert!(!st.blob_path(&d).exists(), "reclaimed once nothing links it");
        assert!(st.check().unwrap().is_empty());
    }

    #[test]
    fn sha512_blobs_live_beside_sha256_ones() {
        let dir = tempfile::tempdir().unwrap();
        let st = Storage::open(dir.path()).unwrap();
        let d = Algorithm::Sha512.digest(b"hello");
        // Hashed as sha256 while it came (no digest-algorithm), rehashed at the commit.
        let id = st.start_upload("r", Algorithm::Sha256).unwrap();
        progress_of_repo(&st, "r", &id, b"hello");
        let cached = st.progress("r", &id, None, Algorithm::Sha256).unwrap();
        assert_eq!(st.commit_upload("r", &id, &d, Some(cached)).unwrap(), Commit::Done);
        assert!(dir.path().join("blobs/sha512").join(&d.hex()[..2]).join(d.hex()).is_file());
        assert_eq!(st.blob_size("r", &d).unwrap(), Some(5));
        assert_eq!(st.blob_size("r", &Digest::of(b"hello")).unwrap(), None, "the sha256 name is another blob");
        let id = st.start_upload("r", Algorithm::Sha512).unwrap();
        progress_of_repo(&st, "r", &id, b"hellO");
        assert!(matches!(st.commit_upload("r", &id, &d, None).unwrap(), Commit::Mismatch { .. }));
        assert!(st.check().unwrap().is_empty());
        drop(st);
        let st = Storage::open(dir.path()).unwrap();
        assert_eq!(st.blob_size("r", &d).unwrap(), Some(5), "a linked sha512 blob is no orphan");
        assert!(st.delete_blob("r", &d).unwrap());
        assert!(!st.blob_path(&d).exists());
        assert!(st.check().unwrap().is_empty());
    }

    #[test]
    fn a_crash_leaves_nothing_visible() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of(b"xyz");
        let id;
        {
            let st = Storage::open(dir.path()).unwrap();
            id = st.start_upload("r", Algorithm::Sha256).unwrap();
            progress_of_repo(&st, "r", &id, b"xy");
            // A temp file as an interrupted atomic write leaves it.
            fs::create_dir_all(dir.path().join("blobs/sha256/aa")).unwrap();
            fs::write(dir.path().join("blobs/sha256/aa/.tmp-x-1"), b"partial").unwrap();
        }
        let st = Storage::open(dir.path()).unwrap();
        assert!(!dir.path().join("blobs/sha256/aa/.tmp-x-1").exists());
        assert_eq!(st.upload_size("r", &id).unwrap(), Some(2), "the upload survives, resumable");
        assert_eq!(st.blob_size("r", &d).unwrap(), None);
        progress_of_repo(&st, "r", &id, b"z");
        assert_eq!(st.commit_upload("r", &id, &d, None).unwrap(), Commit::Done);
        assert!(st.check().unwrap().is_empty());
    }

    #[test]
    fn bytes_no_link_names_are_reclaimed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of(b"orphan");
        {
            let st = Storage::open(dir.path()).unwrap();
            let kept = st.start_upload("r", Algorithm::Sha256).unwrap();
            progress_of_repo(&st, "r", &kept, b"kept");
            assert_eq!(st.commit_upload("r", &kept, &Digest::of(b"kept"), None).unwrap(), Commit::Done);
            // As a crash between the rename into blobs/ and the link leaves it.
            Storage::put_file(&st.blob_path(&d), b"orphan").unwrap();
            assert_eq!(st.check().unwrap(), [format!("blob {d} is linked by no repository")]);
        }
        let st = Storage::open(dir.path()).unwrap();
        assert!(!st.blob_path(&d).exists());
        assert_eq!(st.blob_size("r", &Digest::of(b"kept")).unwrap(), Some(4));
        assert!(st.check().unwrap().is_empty());
    }

    #[test]
    fn stale_uploads_are_purged_busy_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let st = Storage::open(dir.path()).unwrap();
        let old = st.start_upload("r", Algorithm::Sha256).unwrap();
        let busy = st.start_upload("r", Algorithm::Sha256).unwrap();
        let fresh = st.start_upload("r", Algorithm::Sha256).unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(10 * 24 * 3600);
        for id in [&old, &busy] {
            let f = File::options().write(true).open(st.upload_dir("r", id).join("data")).unwrap();
            f.set_modified(long_ago).unwrap();
        }
        let slot = st.upload_slot("r", &busy).unwrap();
        let held = slot.try_lock().unwrap();
        assert_eq!(st.purge_uploads(UPLOAD_MAX_AGE).unwrap(), 1);
        drop(held);
        assert_eq!(st.upload_size("r", &old).unwrap(), None);
        assert_eq!(st.upload_size("r", &busy).unwrap(), Some(0));
        assert_eq!(st.upload_size("r", &fresh).unwrap(), Some(0));
        // At start, stale uploads go too.
        drop(st);
        let st = Storage::open(dir.path()).unwrap();
        assert_eq!(st.upload_size("r", &busy).unwrap(), None);
        assert_eq!(st.upload_size("r", &fresh).unwrap(), Some(0));
    }

    fn progress_of_repo(st: &Storage, repo: &str, id: &str, bytes: &[u8]) {
        use std::io::Write;
        st.upload_file(repo, id).unwrap().write_all(bytes).unwrap();
    }
}

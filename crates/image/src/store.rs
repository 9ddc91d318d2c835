//! The image store proper: image records and references in SQLite (`image_*` tables of
//! `state.db`), config/manifest/layer blobs in the content store, and one unpacked
//! snapshot per distinct layer under `snapshots/<diff-id-hex>/`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_base::{Digest, Reference, fsutil, short_id};
use chrono::{DateTime, Utc};
use oci_spec::image::{Arch, Config, HistoryBuilder, ImageConfiguration, Os};
use rusqlite::{Connection, OptionalExtension, params};

use crate::apply::{self, Tee};
use crate::content::ContentStore;
use crate::error::Error;

/// Media type of an uncompressed OCI layer.
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of an OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// An image as the daemon sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Image ID = digest of the config blob.
    pub id: Digest,
    /// Tags in familiar form (`busybox:latest`), oldest first.
    pub repo_tags: Vec<String>,
    /// `name@sha256:…` references (empty for local images).
    pub repo_digests: Vec<String>,
    /// When the image was created (from its config).
    pub created: DateTime<Utc>,
    /// Sum of the uncompressed layer sizes.
    pub size: u64,
    /// The full config blob, parsed.
    pub config: ImageConfiguration,
    /// Docker's config fields the OCI struct lacks (healthcheck, shell, triggers).
    pub extras: crate::ConfigExtras,
    /// `rootfs.diff_ids`.
    pub diff_ids: Vec<Digest>,
    /// Digest of the image's manifest blob.
    pub manifest_digest: Digest,
    /// When one of its tags was last set (Docker's `Metadata.LastTagTime`); `None` for an
    /// image never tagged since the store began recording it.
    pub last_tag_time: Option<DateTime<Utc>>,
}

/// A layer in the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the stored blob (the uncompressed tar, so equal to `diff_id` for now).
    pub blob: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Media type of the blob.
    pub media_type: String,
}

/// Options for [`ImageStore::import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Tag to give the image; `None` leaves it dangling.
    pub reference: Option<Reference>,
    /// Dockerfile instructions to apply to the config (`--change`).
    pub changes: Vec<String>,
    /// History comment (`--message`); default "Imported from -".
    pub message: Option<String>,
}

/// One line of `docker rmi` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteItem {
    /// A reference removed, familiar form.
    Untagged(String),
    /// An image id or layer removed, `sha256:…`.
    Deleted(String),
}

/// A container that uses an image, as the daemon reports it to [`ImageStore::delete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUse {
    /// Container id.
    pub id: String,
    /// Whether it is running.
    pub running: bool,
}

/// One row of `docker history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// `sha256:…` for the top entry, `<missing>` for the others.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The instruction that made the layer.
    pub created_by: String,
    /// Bytes the step added.
    pub size: i64,
    /// The history comment.
    pub comment: String,
    /// Tags of the image (top entry only).
    pub tags: Vec<String>,
    /// True when the step made no layer.
    pub empty_layer: bool,
}

/// How a name resolved.
enum Resolved {
    Ref(Reference),
    Id,
}

/// A reference row.
struct RefRow {
    full: String,
    repo: String,
    is_digest: bool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS image_images (
    id TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    PRIMARY KEY (image_id, idx)
);
CREATE INDEX IF NOT EXISTS image_layers_diff ON image_layers(diff_id);
CREATE INDEX IF NOT EXISTS image_layers_blob ON image_layers(blob);
CREATE TABLE IF NOT EXISTS image_refs (
    ref TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    is_digest INTEGER NOT NULL,
    image_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS image_refs_image ON image_refs(image_id);
CREATE TABLE IF NOT EXISTS image_snapshots (
    diff_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL
);
";

/// The image store of one data root. Send + Sync; calls are serialised on the database
/// connection, while layer unpacking runs outside the lock.
pub struct ImageStore {
    db: Mutex<Connection>,
    content: ContentStore,
    pub(crate) snapshots: PathBuf,
    /// Layers added since open that no image references yet: delete must not remove them.
    pending: Mutex<HashSet<Digest>>,
    /// Layers a build is using (a base image's, or a cached step's) with how many builds
    /// use each: delete and gc leave them until the last lease ends.
    leases: Arc<Mutex<HashMap<Digest, usize>>>,
    /// The most a layer's files may add up to when unpacked (see [`ImageStore::with_max_layer_size`]).
    pub(crate) max_layer_size: Option<u64>,
    /// The containers directory's child-less clone, for overlay's upper dirs (see
    /// [`ImageStore::with_detached_parent`]).
    detached_parent: Option<crate::mount::DetachedDir>,
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

fn parse_digest(s: &str) -> Result<Digest, Error> {
    s.parse().map_err(|source| Error::StoredDigest { value: s.to_owned(), source })
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn familiar(full: &str) -> String {
    Reference::parse(full).map(|r| r.familiar()).unwrap_or_else(|_| full.to_owned())
}

impl ImageStore {
    /// Opens (creating) the store in `data_root`.
    pub fn open(data_root: &Path) -> Result<ImageStore, Error> {
        fs::create_dir_all(data_root).map_err(Error::io("create", data_root))?;
        let content = ContentStore::open(&data_root.join("content"))?;
        // Snapshots are the roots of images, setuid files and device nodes included: the
        // directory holding them keeps every other host user out (each snapshot keeps the
        // mode of its image's `/`, which overlay shows as the container's root).
        let snapshots = data_root.join("snapshots");
        fsutil::create_dir_mode(&snapshots, fsutil::PRIVATE_DIR).map_err(Error::io("create", &snapshots))?;
        fs::create_dir_all(snapshots.join("empty")).map_err(Error::io("create", &snapshots))?;
        // SQLite creates the database 0644 and gives its -wal and -shm files the database's
        // mode: made 0600 first, all three hold containers' environments (secrets) private.
        let db_path = data_root.join("state.db");
        fsutil::ensure_file_mode(&db_path, fsutil::PRIVATE_FILE).map_err(Error::io("create", &db_path))?;
        let conn = Connection::open(&db_path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The daemon's connections to state.db keep at most 512 KiB of page cache each
        // (SQLite's default is 2000 KiB); the kernel caches the file anyway.
        conn.pragma_update(None, "cache_size", -512)?;
        conn.execute_batch(SCHEMA)?;
        add_tagged_at(&conn)?;
        Ok(ImageStore {
            db: Mutex::new(conn),
            content,
            snapshots,
            pending: Mutex::new(HashSet::new()),
            leases: Arc::new(Mutex::new(HashMap::new())),
            max_layer_size: None,
            detached_parent: None,
        })
    }

    /// Gives root filesystems mounted in `dir`'s subdirectories their upper and work dirs
    /// through a detached, child-less clone of `dir`'s mount ([`crate::mount::DetachedDir`]):
    /// with every container's root attached under the containers directory, overlay's
    /// check of the upper dir's mount would otherwise walk them all at every mount. Best
    /// effort: without it, mounts take the plain paths.
    pub fn with_detached_parent(mut self, dir: &Path) -> ImageStore {
        match crate::mount::DetachedDir::open(dir) {
            Ok(d) => self.detached_parent = Some(d),
            Err(e) => tracing::warn!(error = %e, "root filesystem mounts will slow down as containers are added"),
        }
        self
    }

    /// Refuses layers whose files add up to more than `max` bytes once unpacked (a sparse
    /// file counting its full length); `None` takes any size.
    pub fn with_max_layer_size(mut self, max: Option<u64>) -> ImageStore {
        self.max_layer_size = max;
        self
    }

    /// The content store holding this store's blobs.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// Frees what the store's database connection can of its page cache
    /// (`sqlite3_db_release_memory`), e.g. after many images or containers were removed.
    pub fn release_memory(&self) -> Result<(), Error> {
        self.db().execute_batch("PRAGMA shrink_memory")?;
        Ok(())
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions
        // roll back), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn pending(&self) -> MutexGuard<'_, HashSet<Digest>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn leases(&self) -> MutexGuard<'_, HashMap<Digest, usize>> {
        lock_leases(&self.leases)
    }

    /// Keeps `layers` (their snapshots and blobs) from being removed by an image delete or
    /// gc until the returned lease is dropped: a build takes one on its base image and on
    /// each cached step it reuses, so `rmi` of the image they came from cannot pull them
    /// from under it. Check [`ImageStore::has_layer`] after leasing: a delete that ran
    /// before may already have removed them.
    pub fn lease(&self, layers: &[Layer]) -> LayerLease {
        let mut digests = Vec::with_capacity(layers.len() * 2);
        for l in layers {
            digests.push(l.diff_id.clone());
            if l.blob != l.diff_id {
                digests.push(l.blob.clone());
            }
        }
        LayerLease::take(self.leases.clone(), digests)
    }

    /// The directory holding the unpacked layer `diff_id`.
    pub fn snapshot_dir(&self, diff_id: &Digest) -> PathBuf {
        self.snapshots.join(diff_id.hex())
    }

    /// Imports a rootfs tarball (plain, gzip or zstd) as a one-layer image.
    pub fn import(&self, src: &mut dyn Read, opts: &ImportOptions) -> Result<Image, Error> {
        let layer = self.add_layer(src)?;
        let now = Utc::now();
        let created = now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let mut cfg = Config::default();
        crate::changes::apply_changes(&mut cfg, &opts.changes)?;
        let history = HistoryBuilder::default()
            .created(created.clone())
            .created_by(String::new())
            .comment(opts.message.clone().unwrap_or_else(|| "Imported from -".to_owned()))
            .build()
            .map_err(Error::Spec)?;
        let mut config = ImageConfiguration::default();
        config.set_created(Some(created));
        config.set_architecture(Arch::from(host_arch()));
        config.set_os(Os::from("linux"));
        config.set_config(Some(cfg));
        config.rootfs_mut().set_diff_ids(vec![layer.diff_id.to_string()]);
        config.set_history(Some(vec![history]));
        let tags: Vec<Reference> = opts.reference.iter().cloned().collect();
        self.create_image(config, &crate::ConfigExtras::default(), &[layer], &tags)
    }

    /// Unpacks a layer tar (plain, or gzip/zstd by magic bytes) into its snapshot and
    /// stores it as an uncompressed blob. On any error nothing is left behind.
    pub fn add_layer(&self, tar: &mut dyn Read) -> Result<Layer, Error> {
        let mut src = apply::decompress(tar)?;
        let mut blob = self.content.begin()?;
        let tmp = self.snapshots.join(format!(".tmp-{}", berth_base::new_id()));
        fs::create_dir(&tmp).map_err(Error::io("create", &tmp))?;
        let res = (|| {
            let mut tee = Tee { inner: &mut *src, sink: &mut blob, sink_err: None };
            let applied = match apply::apply_tar(&mut tee, &tmp, self.max_layer_size) {
                Ok(a) => a,
                Err(e) => return Err(tee.sink_err.take().map(Error::io("write blob", &tmp)).unwrap_or(e)),
            };
            // The diff id covers the whole stream, padding after the end marker included;
            // draining also makes a truncated compressed stream fail here.
            io::copy(&mut tee, &mut io::sink()).map_err(|e| {
                tee.sink_err.take().map(Error::io("write blob", &tmp)).unwrap_or_else(|| {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        Error::Unpack(berth_base::Error::TarTruncated { label: "layer", source: e })
                    } else {
                        Error::LayerStream { source: e }
                    }
                })
            })?;
            Ok(applied)
        })();
        let applied = match res {
            Ok(a) => a,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let (digest, size) = match self.content.commit(blob, None) {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let dst = self.snapshot_dir(&digest);
        // Publishing under the db lock orders it against delete's removal of the same dir.
        let db = self.db();
        if dst.exists() {
            let _ = fs::remove_dir_all(&tmp);
        } else if let Err(e) = fs::rename(&tmp, &dst) {
            let _ = fs::remove_dir_all(&tmp);
            if !dst.exists() {
                return Err(Error::io("rename", &dst)(e));
            }
        }
        let _ = fsutil::sync_dir(&self.snapshots);
        db.execute(
            "INSERT OR IGNORE INTO image_snapshots (diff_id, size) VALUES (?1, ?2)",
            params![digest.to_string(), applied.files_size as i64],
        )?;
        self.pending().insert(digest.clone());
        drop(db);
        Ok(Layer { diff_id: digest.clone(), blob: digest, size, media_type: MEDIA_TYPE_LAYER_TAR.to_owned() })
    }

    /// Records an image made of `layers` (bottom first) with `config`, tagging it with
    /// `tags`. `config.rootfs.diff_ids` is filled in when empty and must match otherwise.
    pub fn create_image(
        &self,
        mut config: ImageConfiguration,
        extras: &crate::ConfigExtras,
        layers: &[Layer],
        tags: &[Reference],
    ) -> Result<Image, Error> {
        let diff_strs: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        if config.rootfs().diff_ids().is_empty() {
            config.rootfs_mut().set_diff_ids(diff_strs.clone());
        } else if config.rootfs().diff_ids() != &diff_strs {
            return Err(Error::InvalidArgument("image config rootfs.diff_ids do not match the layers".into()));
        }
        for l in layers {
            if !self.content.contains(&l.blob) || !self.snapshot_dir(&l.diff_id).is_dir() {
                return Err(Error::LayerNotFound(l.diff_id.to_string()));
            }
        }
        let mut targets = Vec::new();
        for t in tags {
            targets.push(tag_target(t)?);
        }
        // Through a Value, whose maps are sorted, so equal configs give equal ids.
        let mut value =
            serde_json::to_value(&config).map_err(|source| Error::Json { what: "config".into(), source })?;
        extras.merge_into(&mut value);
        let config_bytes =
            serde_json::to_vec(&value).map_err(|source| Error::Json { what: "config".into(), source })?;
        self.record_image(&config_bytes, layers, &targets)
    }

    /// Records an image whose config blob is `config_bytes` exactly as given (a loaded
    /// archive keeps its image id), `config` being those bytes parsed.
    pub fn create_image_raw(
        &self,
        config_bytes: &[u8],
        config: ImageConfiguration,
        _extras: &crate::ConfigExtras,
        layers: &[Layer],
        tags: &[Reference],
    ) -> Result<Image, Error> {
        let diff_strs: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        if config.rootfs().diff_ids() != &diff_strs {
            return Err(Error::InvalidArgument("image config rootfs.diff_ids do not match the layers".into()));
        }
        for l in layers {
            if !self.content.contains(&l.blob) || !self.snapshot_dir(&l.diff_id).is_dir() {
                return Err(Error::LayerNotFound(l.diff_id.to_string()));
            }
        }
        let mut targets = Vec::new();
        for t in tags {
            targets.push(tag_target(t)?);
        }
        self.record_image(config_bytes, layers, &targets)
    }

    fn record_image(&self, config_bytes: &[u8], layers: &[Layer], targets: &[Reference]) -> Result<Image, Error> {
        let id = self.content.write(config_bytes)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": { "mediaType": MEDIA_TYPE_CONFIG, "digest": id.to_string(), "size": config_bytes.len() },
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.blob.to_string(), "size": l.size,
            })).collect::<Vec<_>>(),
        });
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|source| Error::Json { what: "manifest".into(), source })?;
        let manifest_digest = self.content.write(&manifest_bytes)?;

        let mut db = self.db();
        // IMMEDIATE: the write lock is taken at BEGIN, where busy_timeout waits for it. A
        // deferred transaction that reads first cannot wait when it comes to write after
        // another connection to state.db (build cache, containers) wrote: SQLite answers
        // "database is locked" at once, which failed concurrent builds.
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        insert_image_rows(&tx, &id, &manifest_digest, layers)?;
        for t in targets {
            set_ref(&tx, t, &id)?;
        }
        tx.commit()?;
        {
            let mut p = self.pending();
            for l in layers {
                p.remove(&l.diff_id);
            }
        }
        load_image(&db, &self.content, &id)
    }

    /// Adds a `name@sha256:…` reference to an image (the registry client records pulls).
    pub fn add_repo_digest(&self, image: &Digest, reference: &Reference) -> Result<(), Error> {
        if reference.digest().is_none() {
            return Err(Error::InvalidArgument(format!("{} is not a digest reference", reference.familiar())));
        }
        let db = self.db();
        set_ref(&db, reference, image)
    }

    /// Finds an image by reference, full id, `sha256:` id or unique id prefix.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image, Error> {
        let db = self.db();
        let (id, _) = resolve_id(&db, name_or_id)?;
        load_image(&db, &self.content, &id)
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<Image>, Error> {
        let db = self.db();
        let ids: Vec<String> = {
            let mut st = db.prepare("SELECT id FROM image_images")?;
            st.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(load_image(&db, &self.content, &parse_digest(&id)?)?);
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Points `target` (default tag `latest`) at the image `source` names; a tag that
    /// pointed elsewhere moves.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<(), Error> {
        let t = tag_target(target)?;
        let db = self.db();
        let (id, _) = resolve_id(&db, source)?;
        set_ref(&db, &t, &id)
    }

    /// Removes a reference or an image, following moby's `ImageDelete` rules. `users`
    /// lists the containers created from an image id.
    pub fn delete(
        &self,
        name_or_id: &str,
        force: bool,
        _noprune: bool,
        users: &dyn Fn(&Digest) -> Vec<ContainerUse>,
    ) -> Result<Vec<DeleteItem>, Error> {
        let mut db = self.db();
        let (id, how) = resolve_id(&db, name_or_id)?;
        let mut records = Vec::new();
        let mut refs = refs_of(&db, &id)?;
        let containers = users(&id);
        let mut quiet = false;
        match how {
            Resolved::Ref(r) => {
                if !force
                    && is_single_reference(&refs)
                    && let Some(c) = containers.first()
                {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name_or_id}\" (must force) - container {} is using its referenced image {}",
                        short_id(&c.id),
                        short_id(id.hex())
                    )));
                }
                let full = r.to_string();
                db.execute("DELETE FROM image_refs WHERE ref = ?1", [&full])?;
                records.push(DeleteItem::Untagged(r.familiar()));
                refs.retain(|x| x.full != full);
                // Digest references of a repository go with its last tag.
                if r.digest().is_none() && !refs.iter().any(|x| !x.is_digest && x.repo == r.name()) {
                    let (gone, keep): (Vec<RefRow>, Vec<RefRow>) =
                        refs.into_iter().partition(|x| x.is_digest && x.repo == r.name());
                    for g in gone {
                        db.execute("DELETE FROM image_refs WHERE ref = ?1", [&g.full])?;
                        records.push(DeleteItem::Untagged(familiar(&g.full)));
                    }
                    refs = keep;
                }
                if !refs.is_empty() {
                    return Ok(records);
                }
                quiet = true;
            }
            Resolved::Id => {
                if is_single_reference(&refs) {
                    let mut c = CONFLICT_HARD;
                    if !force {
                        c |= CONFLICT_SOFT & !CONFLICT_ACTIVE_REFERENCE;
                    }
                    if let Some(conflict) = check_conflict(&id, c, &refs, &containers) {
                        return Err(Error::Conflict(conflict.message));
                    }
                    for r in &refs {
                        db.execute("DELETE FROM image_refs WHERE ref = ?1", [&r.full])?;
                        records.push(DeleteItem::Untagged(familiar(&r.full)));
                    }
                    refs.clear();
                }
            }
        }
        let mut c = CONFLICT_HARD;
        if !force {
            c |= CONFLICT_SOFT;
        }
        if let Some(conflict) = check_conflict(&id, c, &refs, &containers) {
            // After untagging the last reference (moby's "quiet" mode) a container still
            // using the image keeps it, silently, as a dangling image.
            if quiet {
                return Ok(records);
            }
            return Err(Error::Conflict(conflict.message));
        }
        for r in &refs {
            records.push(DeleteItem::Untagged(familiar(&r.full)));
        }
        let removed = self.delete_image_locked(&mut db, &id)?;
        records.push(DeleteItem::Deleted(id.to_string()));
        records.extend(removed.into_iter().map(DeleteItem::Deleted));
        Ok(records)
    }

    /// Drops the record (committed first, so a crash never leaves a record without
    /// files), then the files nothing else uses. Returns the chain ids of removed layers.
    fn delete_image_locked(&self, db: &mut Connection, id: &Digest) -> Result<Vec<String>, Error> {
        let manifest: String =
            db.query_row("SELECT manifest_digest FROM image_images WHERE id = ?1", [id.to_string()], |r| r.get(0))?;
        let layers = layers_of(db, id)?;
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM image_refs WHERE image_id = ?1", [id.to_string()])?;
        tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [id.to_string()])?;
        tx.execute("DELETE FROM image_images WHERE id = ?1", [id.to_string()])?;
        tx.commit()?;

        let mut errors = Vec::new();
        for d in [id.clone(), parse_digest(&manifest)?] {
            if let Err(e) = self.content.remove(&d) {
                errors.push(e);
            }
        }
        let mut pending = self.pending().clone();
        // Held until the loop ends, so a lease taken meanwhile waits and then sees what is left.
        let leases = self.leases();
        pending.extend(leases.keys().cloned());
        let chain = chain_ids(&layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>());
        let mut removed = Vec::new();
        let mut seen = HashSet::new();
        for (l, chain_id) in layers.iter().zip(chain) {
            if !seen.insert(l.diff_id.clone()) {
                continue;
            }
            let blob_used: bool =
                db.query_row("SELECT EXISTS(SELECT 1 FROM image_layers WHERE blob = ?1)", [l.blob.to_string()], |r| {
                    r.get(0)
                })?;
            if !blob_used
                && !pending.contains(&l.blob)
                && let Err(e) = self.content.remove(&l.blob)
            {
                errors.push(e);
            }
            let snap_used: bool = db.query_row(
                "SELECT EXISTS(SELECT 1 FROM image_layers WHERE diff_id = ?1)",
                [l.diff_id.to_string()],
                |r| r.get(0),
            )?;
            if !snap_used && !pending.contains(&l.diff_id) {
                db.execute("DELETE FROM image_snapshots WHERE diff_id = ?1", [l.diff_id.to_string()])?;
                match remove_tree(&self.snapshot_dir(&l.diff_id)) {
                    Ok(()) => removed.push(chain_id.to_string()),
                    Err(e) => errors.push(e),
                }
            }
        }
        // The image is gone either way; leftovers are gc's job, so report the first
        // failure rather than pretend the delete did not happen.
        if let Some(e) = errors.into_iter().next() {
            tracing::warn!(image = %id, error = %e, "image deleted but some files remain");
        }
        Ok(removed)
    }

    /// `docker history`: newest step first.
    pub fn history(&self, name_or_id: &str) -> Result<Vec<HistoryEntry>, Error> {
        let img = self.resolve(name_or_id)?;
        let sizes: Vec<i64> = {
            let db = self.db();
            let mut v = Vec::new();
            for d in &img.diff_ids {
                let s: Option<i64> = db
                    .query_row("SELECT size FROM image_snapshots WHERE diff_id = ?1", [d.to_string()], |r| r.get(0))
                    .optional()?;
                v.push(s.unwrap_or(0));
            }
            v
        };
        let secs = |c: Option<&String>| {
            c.and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp()).unwrap_or(0)
        };
        let mut out = Vec::new();
        let mut layer = 0;
        match img.config.history() {
            Some(h) if !h.is_empty() => {
                for e in h {
                    let empty = e.empty_layer().unwrap_or(false);
                    let size = if empty {
                        0
                    } else {
                        layer += 1;
                        sizes.get(layer - 1).copied().unwrap_or(0)
                    };
                    out.push(HistoryEntry {
                        id: "<missing>".into(),
                        created: secs(e.created().as_ref()),
                        created_by: e.created_by().clone().unwrap_or_default(),
                        size,
                        comment: e.comment().clone().unwrap_or_default(),
                        tags: Vec::new(),
                        empty_layer: empty,
                    });
                }
            }
            _ => {
                let created = secs(img.config.created().as_ref());
                for s in &sizes {
                    out.push(HistoryEntry {
                        id: "<missing>".into(),
                        created,
                        created_by: String::new(),
                        size: *s,
                        comment: String::new(),
                        tags: Vec::new(),
                        empty_layer: false,
                    });
                }
            }
        }
        out.reverse();
        if let Some(top) = out.first_mut() {
            top.id = img.id.to_string();
            top.tags = img.repo_tags.clone();
        }
        Ok(out)
    }

    /// Mounts the image's root filesystem for a container at `container_dir/rootfs`
    /// (making `upper/`, `work/` and `rootfs/`). Already mounted is fine.
    pub fn mount_rootfs(&self, image: &Digest, container_dir: &Path) -> Result<PathBuf, Error> {
        let diff_ids = {
            let db = self.db();
            let exists: bool =
                db.query_row("SELECT EXISTS(SELECT 1 FROM image_images WHERE id = ?1)", [image.to_string()], |r| {
                    r.get(0)
                })?;
            if !exists {
                return Err(Error::NotFound(image.to_string()));
            }
            layers_of(&db, image)?.into_iter().map(|l| l.diff_id).collect::<Vec<_>>()
        };
        self.mount_layers(&diff_ids, container_dir)
    }

    /// Mounts a stack of layers (bottom first) at `container_dir/rootfs`, as
    /// [`ImageStore::mount_rootfs`] does for an image: the builder runs its steps on such
    /// intermediate stacks. Every layer must be in the store.
    pub fn mount_layers(&self, diff_ids: &[Digest], container_dir: &Path) -> Result<PathBuf, Error> {
        for d in diff_ids {
            if !self.snapshot_dir(d).is_dir() {
                return Err(Error::LayerNotFound(d.to_string()));
            }
        }
        // Top layer first; a diff repeated lower down adds nothing the upper copy does
        // not already provide, and overlay refuses the same dir twice.
        let mut seen = HashSet::new();
        let mut lowers = Vec::new();
        for d in diff_ids.iter().rev() {
            if seen.insert(d.clone()) {
                lowers.push(self.snapshot_dir(d));
            }
        }
        if lowers.is_empty() {
            lowers.push(self.snapshots.join("empty"));
        }
        crate::mount::mount_overlay(&lowers, container_dir, self.detached_parent.as_ref())
    }

    /// The layers of an image, bottom first, as recorded when it was made.
    pub fn image_layers(&self, image: &Digest) -> Result<Vec<Layer>, Error> {
        let db = self.db();
        layers_of(&db, image)
    }

    /// True when the layer's blob and unpacked snapshot are both present (a build cache
    /// entry is only usable then).
    pub fn has_layer(&self, layer: &Layer) -> bool {
        self.content.contains(&layer.blob) && self.snapshot_dir(&layer.diff_id).is_dir()
    }

    /// Unmounts a container's root filesystem; not mounted is fine. `upper/` stays.
    pub fn unmount_rootfs(&self, container_dir: &Path) -> Result<(), Error> {
        crate::mount::unmount(container_dir)
    }

    /// Commits a container's changes (its overlay upper dir, which must be unmounted) as a
    /// new layer. The upper dir moves into the snapshot store (or is left, unused, when
    /// that layer already exists): the container dir cannot be mounted again afterwards.
    pub fn diff_layer(&self, container_dir: &Path) -> Result<Layer, Error> {
        let upper = container_dir.join("upper");
        if !upper.is_dir() {
            return Err(Error::InvalidArgument(format!("{} has no upper directory", container_dir.display())));
        }
        // The tar (the layer's blob and diff id) is written straight into the content
        // store; the upper dir itself, already in overlay's on-disk form (whiteouts as
        // 0:0 devices, opaque xattrs), becomes the snapshot by a rename instead of being
        // unpacked again from that tar.
        let mut blob = self.content.begin()?;
        crate::diff::write_upper_tar(&upper, &mut blob)?;
        let (digest, size) = self.content.commit(blob, None)?;
        let files_size = crate::diff::tree_size(&upper);
        let dst = self.snapshot_dir(&digest);
        // Publishing under the db lock orders it against delete's removal of the same dir.
        let db = self.db();
        if !dst.exists() {
            crate::diff::strip_overlay_bookkeeping(&upper);
            if let Err(e) = fs::rename(&upper, &dst)
                && !dst.exists()
            {
                return Err(Error::io("rename", &dst)(e));
            }
            let _ = fsutil::sync_dir(&self.snapshots);
        }
        db.execute(
            "INSERT OR IGNORE INTO image_snapshots (diff_id, size) VALUES (?1, ?2)",
            params![digest.to_string(), files_size as i64],
        )?;
        self.pending().insert(digest.clone());
        drop(db);
        Ok(Layer { diff_id: digest.clone(), blob: digest, size, media_type: MEDIA_TYPE_LAYER_TAR.to_owned() })
    }

    /// Commits a container's changes as a new layer without taking its upper dir (unlike
    /// [`ImageStore::diff_layer`]): the changes are written as a tar (whiteouts in tar
    /// form) and unpacked as any layer is, so the container keeps running and can be
    /// mounted again. `None` when the container changed nothing.
    pub fn copy_diff_layer(&self, container_dir: &Path) -> Result<Option<Layer>, Error> {
        let upper = container_dir.join("upper");
        let changed = match fs::read_dir(&upper) {
            Ok(mut rd) => rd.next().is_some(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io("read dir", &upper)(e)),
        };
        if !changed {
            return Ok(None);
        }
        let tmp = container_dir.join(format!(".commit-{}.tar", berth_base::new_id()));
        let result = (|| {
            let mut f = fsutil::open_append_mode(&tmp, fsutil::PRIVATE_FILE).map_err(Error::io("create", &tmp))?;
            crate::diff::write_upper_tar(&upper, &mut f)?;
            let mut f = fs::File::open(&tmp).map_err(Error::io("open", &tmp))?;
            self.add_layer(&mut f)
        })();
        let _ = fs::remove_file(&tmp);
        result.map(Some)
    }

    /// Removes what no image references: snapshots, blobs, ingest leftovers and
    /// half-unpacked layers. Run at startup, before layers are added. Returns the count.
    pub fn gc(&self) -> Result<u64, Error> {
        let db = self.db();
        let mut n = self.content.clean_ingest()?;
        let (keep_blobs, keep_snaps) = self.owned(&db)?;
        for d in self.content.list()? {
            if !keep_blobs.contains(&d.to_string()) && self.content.remove(&d)? {
                n += 1;
            }
        }
        for e in fs::read_dir(&self.snapshots).map_err(Error::io("read dir", &self.snapshots))? {
            let e = e.map_err(Error::io("read dir", &self.snapshots))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = if name.starts_with(".tmp-") {
                true
            } else if let Ok(d) = Digest::from_hex(&name) {
                !keep_snaps.contains(&d.to_string())
            } else {
                false
            };
            if stale {
                remove_tree(&e.path())?;
                db.execute("DELETE FROM image_snapshots WHERE diff_id = ?1", [format!("sha256:{name}")])?;
                n += 1;
            }
        }
        Ok(n)
    }
}

impl ImageStore {
    /// The snapshots (`sha256:<hex>` diff ids) that a record owns: a layer of an image, or a
    /// layer being added now. Any other directory in `snapshots/` is garbage.
    pub fn owned_snapshots(&self) -> Result<HashSet<String>, Error> {
        let db = self.db();
        Ok(self.owned(&db)?.1)
    }

    /// The blobs and snapshots records own, as `sha256:<hex>` strings.
    fn owned(&self, db: &Connection) -> Result<(HashSet<String>, HashSet<String>), Error> {
        let mut pending = self.pending().clone();
        pending.extend(self.leases().keys().cloned());
        let mut keep_blobs: HashSet<String> = HashSet::new();
        let mut keep_snaps: HashSet<String> = HashSet::new();
        let mut st = db.prepare("SELECT id, manifest_digest FROM image_images")?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (a, b) = row?;
            keep_blobs.insert(a);
            keep_blobs.insert(b);
        }
        let mut st = db.prepare("SELECT diff_id, blob FROM image_layers")?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (a, b) = row?;
            keep_snaps.insert(a);
            keep_blobs.insert(b);
        }
        for p in &pending {
            keep_snaps.insert(p.to_string());
            keep_blobs.insert(p.to_string());
        }
        // The compressed forms of kept layers (made for a push) stay with them.
        for (diff, blob) in self.compressed_blobs(db)? {
            if keep_snaps.contains(&diff) {
                keep_blobs.insert(blob);
            }
        }
        Ok((keep_blobs, keep_snaps))
    }
}

fn remove_tree(p: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", p)(e)),
    }
}

/// The OCI chain ids of a layer stack (bottom first).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

pub(crate) fn tag_target(t: &Reference) -> Result<Reference, Error> {
    if t.digest().is_some() {
        return Err(Error::InvalidArgument("refusing to create a tag with a digest reference".into()));
    }
    Ok(t.clone().with_default_tag())
}

/// Adds `image_refs.tagged_at` (when a tag was last set) to a database made before it.
fn add_tagged_at(db: &Connection) -> Result<(), Error> {
    let has: bool = db
        .query_row("SELECT COUNT(*) FROM pragma_table_info('image_refs') WHERE name = 'tagged_at'", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n > 0)?;
    if !has {
        db.execute_batch("ALTER TABLE image_refs ADD COLUMN tagged_at TEXT")?;
    }
    Ok(())
}

/// Points `r` at `id`; a tag (not a digest) records the time, as Docker's `LastTagTime`.
pub(crate) fn set_ref(db: &Connection, r: &Reference, id: &Digest) -> Result<(), Error> {
    let is_digest = r.digest().is_some();
    let now = (!is_digest).then(|| Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
    db.execute(
        "INSERT INTO image_refs (ref, repo, is_digest, image_id, tagged_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id, tagged_at = excluded.tagged_at",
        params![r.to_string(), r.name(), is_digest, id.to_string(), now],
    )?;
    Ok(())
}

/// The latest time one of `id`'s tags was set.
fn last_tag_time(db: &Connection, id: &Digest) -> Result<Option<DateTime<Utc>>, Error> {
    let t: Option<String> = db.query_row(
        "SELECT MAX(tagged_at) FROM image_refs WHERE image_id = ?1 AND is_digest = 0",
        [id.to_string()],
        |r| r.get(0),
    )?;
    Ok(t.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc)))
}

fn refs_of(db: &Connection, id: &Digest) -> Result<Vec<RefRow>, Error> {
    let mut st = db.prepare("SELECT ref, repo, is_digest FROM image_refs WHERE image_id = ?1 ORDER BY rowid")?;
    let rows = st
        .query_map([id.to_string()], |r| Ok(RefRow { full: r.get(0)?, repo: r.get(1)?, is_digest: r.get(2)? }))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(crate) fn layers_of(db: &Connection, id: &Digest) -> Result<Vec<Layer>, Error> {
    let mut st =
        db.prepare("SELECT diff_id, blob, size, media_type FROM image_layers WHERE image_id = ?1 ORDER BY idx")?;
    let rows = st
        .query_map([id.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(d, b, s, m)| {
            Ok(Layer { diff_id: parse_digest(&d)?, blob: parse_digest(&b)?, size: s.max(0) as u64, media_type: m })
        })
        .collect()
}

fn resolve_id(db: &Connection, s: &str) -> Result<(Digest, Resolved), Error> {
    let by_id = |hex: &str| -> Result<Option<Digest>, Error> {
        if !is_hex(hex) {
            return Ok(None);
        }
        let mut st = db.prepare("SELECT id FROM image_images WHERE id LIKE ?1 LIMIT 2")?;
        let ids: Vec<String> = st.query_map([format!("sha256:{hex}%")], |r| r.get(0))?.collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [one] => Ok(Some(parse_digest(one)?)),
            _ => Ok(None),
        }
    };
    if let Some(hex) = s.strip_prefix("sha256:") {
        return by_id(hex)?.map(|d| (d, Resolved::Id)).ok_or_else(|| Error::NotFound(s.to_owned()));
    }
    let r = match Reference::parse(s) {
        Ok(r) => r.with_default_tag(),
        Err(berth_base::Error::LooksLikeId(_)) => {
            return by_id(s)?.map(|d| (d, Resolved::Id)).ok_or_else(|| Error::NotFound(s.to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    let found: Option<String> = if let Some(d) = r.digest() {
        let via_ref: Option<String> = db
            .query_row("SELECT image_id FROM image_refs WHERE ref = ?1", [r.to_string()], |row| row.get(0))
            .optional()?;
        match via_ref {
            Some(v) => Some(v),
            None => db
                .query_row("SELECT id FROM image_images WHERE manifest_digest = ?1 LIMIT 1", [d.to_string()], |row| {
                    row.get(0)
                })
                .optional()?,
        }
    } else {
        db.query_row("SELECT image_id FROM image_refs WHERE ref = ?1", [r.to_string()], |row| row.get(0)).optional()?
    };
    if let Some(id) = found {
        return Ok((parse_digest(&id)?, Resolved::Ref(r)));
    }
    if let Some(d) = by_id(s)? {
        return Ok((d, Resolved::Id));
    }
    Err(Error::NotFound(r.familiar()))
}

pub(crate) fn load_image(db: &Connection, content: &ContentStore, id: &Digest) -> Result<Image, Error> {
    let (manifest, size): (String, i64) = db
        .query_row("SELECT manifest_digest, size FROM image_images WHERE id = ?1", [id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or_else(|| Error::NotFound(id.to_string()))?;
    let bytes = content.read(id)?;
    let raw: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { what: format!("config {id}"), source })?;
    let extras = crate::ConfigExtras::from_config_json(&raw);
    let config: ImageConfiguration =
        serde_json::from_value(raw).map_err(|source| Error::Json { what: format!("config {id}"), source })?;
    let diff_ids = config.rootfs().diff_ids().iter().map(|d| parse_digest(d)).collect::<Result<Vec<_>, _>>()?;
    let created = config
        .created()
        .as_ref()
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::UNIX_EPOCH);
    let mut repo_tags = Vec::new();
    let mut repo_digests = Vec::new();
    for r in refs_of(db, id)? {
        if r.is_digest {
            repo_digests.push(familiar(&r.full));
        } else {
            repo_tags.push(familiar(&r.full));
        }
    }
    Ok(Image {
        id: id.clone(),
        repo_tags,
        repo_digests,
        created,
        size: size.max(0) as u64,
        config,
        extras,
        diff_ids,
        manifest_digest: parse_digest(&manifest)?,
        last_tag_time: last_tag_time(db, id)?,
    })
}

const CONFLICT_DEPENDENT_CHILD: u8 = 1;
const CONFLICT_RUNNING_CONTAINER: u8 = 2;
const CONFLICT_ACTIVE_REFERENCE: u8 = 4;
const CONFLICT_STOPPED_CONTAINER: u8 = 8;
const CONFLICT_HARD: u8 = CONFLICT_DEPENDENT_CHILD | CONFLICT_RUNNING_CONTAINER;
const CONFLICT_SOFT: u8 = CONFLICT_ACTIVE_REFERENCE | CONFLICT_STOPPED_CONTAINER;

struct Conflict {
    message: String,
}

fn check_conflict(id: &Digest, mask: u8, refs: &[RefRow], containers: &[ContainerUse]) -> Option<Conflict> {
    let make = |hard: bool, why: String| Conflict {
        message: format!(
            "conflict: unable to delete {} ({}) - {why}",
            short_id(id.hex()),
            if hard { "cannot be forced" } else { "must be forced" }
        ),
    };
    if mask & CONFLICT_RUNNING_CONTAINER != 0
        && let Some(c) = containers.iter().find(|c| c.running)
    {
        return Some(make(true, format!("image is being used by running container {}", short_id(&c.id))));
    }
    if mask & CONFLICT_ACTIVE_REFERENCE != 0 && !refs.is_empty() {
        return Some(make(false, "image is referenced in multiple repositories".into()));
    }
    if mask & CONFLICT_STOPPED_CONTAINER != 0
        && let Some(c) = containers.iter().find(|c| !c.running)
    {
        return Some(make(false, format!("image is being used by stopped container {}", short_id(&c.id))));
    }
    None
}

/// moby's isSingleReference: one tag, possibly with digest references of the same repo.
fn is_single_reference(refs: &[RefRow]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut single: Option<&RefRow> = None;
    let mut canonical: HashMap<&str, ()> = HashMap::new();
    for r in refs {
        if r.is_digest {
            canonical.insert(&r.repo, ());
        } else if single.is_none() {
            single = Some(r);
        } else {
            return false;
        }
    }
    let single = single.unwrap_or(&refs[0]);
    canonical.len() == 1 && canonical.contains_key(single.repo.as_str())
}

/// Records an image and its layers (once: a second record of the same id changes nothing),
/// its size being the sum of its unpacked layers'. Runs inside the caller's transaction.
pub(crate) fn insert_image_rows(
    tx: &rusqlite::Transaction<'_>,
    id: &Digest,
    manifest_digest: &Digest,
    layers: &[Layer],
) -> Result<(), Error> {
    let mut size: u64 = 0;
    for l in layers {
        let s: Option<i64> = tx
            .query_row("SELECT size FROM image_snapshots WHERE diff_id = ?1", [l.diff_id.to_string()], |r| r.get(0))
            .optional()?;
        size += s.unwrap_or(0).max(0) as u64;
    }
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO image_images (id, manifest_digest, size) VALUES (?1, ?2, ?3)",
        params![id.to_string(), manifest_digest.to_string(), size as i64],
    )?;
    if inserted == 1 {
        for (i, l) in layers.iter().enumerate() {
            tx.execute(
                "INSERT INTO image_layers (image_id, idx, diff_id, blob, size, media_type) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id.to_string(), i as i64, l.diff_id.to_string(), l.blob.to_string(), l.size as i64, l.media_type],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn single_reference_rules() {
        let row = |full: &str, repo: &str, d: bool| RefRow { full: full.into(), repo: repo.into(), is_digest: d };
        assert!(!is_single_reference(&[]));
        assert!(is_single_reference(&[row("x:1", "x", false)]));
        assert!(!is_single_reference(&[row("x:1", "x", false), row("x:2", "x", false)]));
        assert!(is_single_reference(&[row("x:1", "x", false), row("x@d", "x", true)]));
        assert!(!is_single_reference(&[row("x:1", "x", false), row("y@d", "y", true)]));
    }
}

fn lock_leases(m: &Mutex<HashMap<Digest, usize>>) -> MutexGuard<'_, HashMap<Digest, usize>> {
    // The map is whole after any panic (one insert or remove at a time).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Layers kept from removal while it lives (see [`ImageStore::lease`]). Cloning takes the
/// layers again; dropping gives them back.
#[derive(Debug)]
pub struct LayerLease {
    leases: Arc<Mutex<HashMap<Digest, usize>>>,
    digests: Vec<Digest>,
}

impl LayerLease {
    fn take(leases: Arc<Mutex<HashMap<Digest, usize>>>, digests: Vec<Digest>) -> LayerLease {
        {
            let mut m = lock_leases(&leases);
            for d in &digests {
                *m.entry(d.clone()).or_insert(0) += 1;
            }
        }
        LayerLease { leases, digests }
    }
}

impl Clone for LayerLease {
    fn clone(&self) -> LayerLease {
        LayerLease::take(self.leases.clone(), self.digests.clone())
    }
}

impl Drop for LayerLease {
    fn drop(&mut self) {
        let mut m = lock_leases(&self.leases);
        for d in &self.digests {
            if let Some(n) = m.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    m.remove(d);
                }
            }
        }
    }
}

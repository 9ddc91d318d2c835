//! Content that arrives from a registry: a compressed layer blob streamed once — kept as it
//! came in the content store, decompressed, unpacked into its snapshot and hashed all in the
//! same pass — and the image record of a pulled image, whose config and manifest bytes are
//! stored exactly as the registry served them (so the image id is the config's digest, as
//! in Docker). Nothing is visible before both digests (the blob's and the diff id) check.
//! Also the other direction's memory: the compressed blob a layer was pushed as, so a
//! re-push never compresses again.

use std::fs;
use std::io::{self, Read};

use berth_base::{Digest, Reference, fsutil};
use rusqlite::{OptionalExtension, params};
use sha2::Digest as _;

use crate::apply::{self, Tee};
use crate::error::Error;
use crate::store::{Image, ImageStore, Layer, insert_image_rows, load_image, set_ref, tag_target};

/// A layer as a manifest and its config describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSource {
    /// The blob's digest (compressed as served).
    pub blob: Digest,
    /// The blob's size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// The digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
}

const BLOB_MAP_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS image_blob_map (
    diff_id TEXT NOT NULL,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    PRIMARY KEY (diff_id, media_type)
);
";

/// A reader that hashes what passes through it.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    hasher: sha2::Sha256,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl ImageStore {
    /// A present layer usable for `l`: its snapshot exists and a blob of it is stored
    /// (the same compressed blob when we have it, else any stored form of that diff id).
    pub fn find_layer(&self, l: &LayerSource) -> Result<Option<Layer>, Error> {
        if !self.snapshot_dir(&l.diff_id).is_dir() {
            return Ok(None);
        }
        if self.content().contains(&l.blob) {
            return Ok(Some(Layer {
                diff_id: l.diff_id.clone(),
                blob: l.blob.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
            }));
        }
        let db = self.db();
        let mut st = db.prepare("SELECT blob, size, media_type FROM image_layers WHERE diff_id = ?1")?;
        let rows = st
            .query_map([l.diff_id.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (b, s, m) in rows {
            if let Ok(blob) = b.parse::<Digest>()
                && self.content().contains(&blob)
            {
                return Ok(Some(Layer { diff_id: l.diff_id.clone(), blob, size: s.max(0) as u64, media_type: m }));
            }
        }
        Ok(None)
    }

    /// Streams the blob of `l` from `src`: its bytes are stored as they come, decompressed
    /// (gzip, zstd or none, by magic bytes) and unpacked into the layer's snapshot in the same
    /// pass. The blob is committed only when its digest and size match and the tar's digest is
    /// `l.diff_id`; on any failure nothing is left behind.
    pub fn ingest_layer(&self, src: &mut dyn Read, l: &LayerSource) -> Result<Layer, Error> {
        let mut blob = self.content().begin()?;
        let tmp = self.snapshots.join(format!(".tmp-{}", berth_base::new_id()));
        fs::create_dir(&tmp).map_err(Error::io("create", &tmp))?;
        let res = (|| {
            let mut tee = Tee { inner: src, sink: &mut blob, sink_err: None };
            let out = (|| {
                let mut dec = apply::decompress(&mut tee)?;
                let mut hashing = Hashing { inner: &mut *dec, hasher: sha2::Sha256::new() };
                let applied = apply::apply_tar(&mut hashing, &tmp, self.max_layer_size)?;
                // The diff id covers the whole tar stream, padding included; draining also
                // makes a truncated compressed stream fail here.
                io::copy(&mut hashing, &mut io::sink()).map_err(|e| stream_error(&e))?;
                let diff = Digest::from_hasher(std::mem::take(&mut hashing.hasher));
                if diff != l.diff_id {
                    return Err(Error::DigestMismatch { expected: l.diff_id.to_string(), actual: diff.to_string() });
                }
                Ok(applied)
            })();
            let out = match out {
                Ok(a) => a,
                Err(e) => return Err(tee.sink_err.take().map(Error::io("write blob", &tmp)).unwrap_or(e)),
            };
            // Whatever follows the compressed stream still belongs to the blob.
            io::copy(&mut tee, &mut io::sink()).map_err(|e| {
                tee.sink_err.take().map(Error::io("write blob", &tmp)).unwrap_or_else(|| stream_error(&e))
            })?;
            Ok(out)
        })();
        let applied = match res {
            Ok(a) => a,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let (digest, size) = match self.content().commit(blob, Some(&l.blob)) {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        if size != l.size {
            let _ = fs::remove_dir_all(&tmp);
            let _ = self.content().remove(&digest);
            return Err(Error::InvalidArgument(format!(
                "blob {digest} is {size} bytes, its descriptor says {}",
                l.size
            )));
        }
        let dst = self.snapshot_dir(&l.diff_id);
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
            params![l.diff_id.to_string(), applied.files_size as i64],
        )?;
        {
            let mut p = self.pending();
            p.insert(l.diff_id.clone());
            p.insert(l.blob.clone());
        }
        drop(db);
        Ok(Layer { diff_id: l.diff_id.clone(), blob: digest, size, media_type: l.media_type.clone() })
    }

    /// Records a pulled image from the registry's own `config` and `manifest` bytes (the
    /// image id is the config's digest), tagging it with `tags` and adding `repo_digest`.
    pub fn commit_pulled(
        &self,
        config: &[u8],
        manifest: &[u8],
        layers: &[Layer],
        tags: &[Reference],
        repo_digest: Option<&Reference>,
    ) -> Result<Image, Error> {
        let raw: serde_json::Value =
            serde_json::from_slice(config).map_err(|source| Error::Json { what: "pulled config".into(), source })?;
        let diff_ids: Vec<String> = raw
            .pointer("/rootfs/diff_ids")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|d| d.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let have: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        if diff_ids != have {
            return Err(Error::InvalidArgument(
                "the image config's rootfs.diff_ids do not match the manifest's layers".into(),
            ));
        }
        for l in layers {
            if !self.content().contains(&l.blob) || !self.snapshot_dir(&l.diff_id).is_dir() {
                return Err(Error::LayerNotFound(l.diff_id.to_string()));
            }
        }
        let mut targets = Vec::new();
        for t in tags {
            targets.push(tag_target(t)?);
        }
        let id = self.content().write(config)?;
        let manifest_digest = self.content().write(manifest)?;
        let mut db = self.db();
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        insert_image_rows(&tx, &id, &manifest_digest, layers)?;
        for t in &targets {
            set_ref(&tx, t, &id)?;
        }
        if let Some(r) = repo_digest {
            set_ref(&tx, r, &id)?;
        }
        tx.commit()?;
        {
            let mut p = self.pending();
            for l in layers {
                p.remove(&l.diff_id);
                p.remove(&l.blob);
            }
        }
        load_image(&db, self.content(), &id)
    }

    /// Removes layers a failed pull brought in that no image uses (their snapshots and
    /// blobs), so that the pull leaves nothing behind. Keeps going past errors and reports
    /// the first.
    pub fn discard_layers(&self, layers: &[Layer]) -> Result<(), Error> {
        let db = self.db();
        let mut first = None;
        for l in layers {
            let used = |col: &str, v: &Digest| -> Result<bool, Error> {
                Ok(db.query_row(
                    &format!("SELECT EXISTS(SELECT 1 FROM image_layers WHERE {col} = ?1)"),
                    [v.to_string()],
                    |r| r.get(0),
                )?)
            };
            {
                let mut p = self.pending();
                p.remove(&l.diff_id);
                p.remove(&l.blob);
            }
            match used("diff_id", &l.diff_id) {
                Ok(false) => {
                    let dir = self.snapshot_dir(&l.diff_id);
                    if let Err(e) = fs::remove_dir_all(&dir)
                        && e.kind() != io::ErrorKind::NotFound
                    {
                        first.get_or_insert(Error::io("remove", &dir)(e));
                    }
                    if let Err(e) =
                        db.execute("DELETE FROM image_snapshots WHERE diff_id = ?1", [l.diff_id.to_string()])
                    {
                        first.get_or_insert(e.into());
                    }
                }
                Ok(true) => {}
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
            match used("blob", &l.blob) {
                Ok(false) => {
                    if let Err(e) = self.content().remove(&l.blob) {
                        first.get_or_insert(e);
                    }
                }
                Ok(true) => {}
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The bytes of the manifest an image was recorded with.
    pub fn manifest_bytes(&self, img: &Image) -> Result<Vec<u8>, Error> {
        self.content().read(&img.manifest_digest)
    }

    /// The compressed blob a layer was last pushed or pulled as in `media_type`, if it is
    /// still stored.
    pub fn compressed_blob(&self, diff_id: &Digest, media_type: &str) -> Result<Option<Layer>, Error> {
        let db = self.db();
        db.execute_batch(BLOB_MAP_SCHEMA)?;
        let row: Option<(String, i64)> = db
            .query_row(
                "SELECT blob, size FROM image_blob_map WHERE diff_id = ?1 AND media_type = ?2",
                params![diff_id.to_string(), media_type],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(b, s)| {
            let blob: Digest = b.parse().ok()?;
            self.content().contains(&blob).then(|| Layer {
                diff_id: diff_id.clone(),
                blob,
                size: s.max(0) as u64,
                media_type: media_type.to_owned(),
            })
        }))
    }

    /// Remembers that layer `diff_id` is stored compressed as `blob` (`media_type`).
    pub(crate) fn record_compressed(
        &self,
        diff_id: &Digest,
        blob: &Digest,
        size: u64,
        media_type: &str,
    ) -> Result<(), Error> {
        let db = self.db();
        db.execute_batch(BLOB_MAP_SCHEMA)?;
        db.execute(
            "INSERT OR REPLACE INTO image_blob_map (diff_id, blob, size, media_type) VALUES (?1, ?2, ?3, ?4)",
            params![diff_id.to_string(), blob.to_string(), size as i64, media_type],
        )?;
        Ok(())
    }

    /// The compressed blobs remembered for layers, as `sha256:` strings (kept by gc while
    /// their layer is).
    pub(crate) fn compressed_blobs(&self, db: &rusqlite::Connection) -> Result<Vec<(String, String)>, Error> {
        db.execute_batch(BLOB_MAP_SCHEMA)?;
        let mut st = db.prepare("SELECT diff_id, blob FROM image_blob_map")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

fn stream_error(e: &io::Error) -> Error {
    let source = io::Error::new(e.kind(), e.to_string());
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::Unpack(berth_base::Error::TarTruncated { label: "layer", source })
    } else {
        Error::LayerStream { source }
    }
}

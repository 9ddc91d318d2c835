//! The content store: immutable blobs named by their sha256 digest under
//! `content/blobs/sha256/<hex>`. Writers stream into `content/ingest/`, hashing as they
//! go; a blob becomes visible only by an atomic rename after its digest is verified and
//! its bytes are fsynced, so a partial blob is never seen.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use berth_base::{Digest, fsutil};
use sha2::Digest as _;

use crate::error::Error;

/// A directory of content-addressed blobs.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

/// A blob being written: bytes go to a temp file and a hasher at once.
pub(crate) struct Ingest {
    file: File,
    path: PathBuf,
    hasher: sha2::Sha256,
    size: u64,
    committed: bool,
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The digest of a file's content, read as a stream (`system check` verifies blobs with it).
pub fn digest_file(path: &Path) -> io::Result<Digest> {
    let mut hasher = sha2::Sha256::new();
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(Digest::from_hasher(hasher));
        }
        hasher.update(&buf[..n]);
    }
}

impl ContentStore {
    /// Opens (creating) the store rooted at `content_dir`.
    pub fn open(content_dir: &Path) -> Result<ContentStore, Error> {
        let blobs = content_dir.join("blobs").join("sha256");
        let ingest = content_dir.join("ingest");
        // Blobs are image content (setuid files included, in layer tars): root only.
        for d in [content_dir.to_path_buf(), content_dir.join("blobs"), blobs.clone(), ingest.clone()] {
            fsutil::create_dir_mode(&d, fsutil::PRIVATE_DIR).map_err(Error::io("create", &d))?;
        }
        Ok(ContentStore { blobs, ingest })
    }

    /// Where the blob `d` lives (whether or not it exists).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.hex())
    }

    /// The directory of in-progress writes (same filesystem as the blobs).
    pub fn ingest_dir(&self) -> &Path {
        &self.ingest
    }

    /// True when the blob is present.
    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Reads a whole blob into memory (configs and manifests are small).
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, Error> {
        let p = self.path(d);
        fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::Corrupt(format!("blob {d} is missing"))
            } else {
                Error::io("read", p)(e)
            }
        })
    }

    /// Opens a blob for streaming.
    pub fn open_blob(&self, d: &Digest) -> Result<File, Error> {
        let p = self.path(d);
        File::open(&p).map_err(Error::io("open", p))
    }

    /// Stores `data`, returning its digest. An existing blob is left as it is.
    pub fn write(&self, data: &[u8]) -> Result<Digest, Error> {
        let mut w = self.begin()?;
        w.write_all(data).map_err(Error::io("write", &w.path))?;
        self.commit(w, None).map(|(d, _)| d)
    }

    /// Streams `src` into the store, verifying `expected` when given.
    pub fn ingest(&self, src: &mut dyn Read, expected: Option<&Digest>) -> Result<(Digest, u64), Error> {
        let mut w = self.begin()?;
        io::copy(src, &mut w).map_err(Error::io("ingest", &w.path))?;
        self.commit(w, expected)
    }

    pub(crate) fn begin(&self) -> Result<Ingest, Error> {
        let path = self.ingest.join(berth_base::new_id());
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(Error::io("create", &path))?;
        Ok(Ingest { file, path, hasher: sha2::Sha256::new(), size: 0, committed: false })
    }

    /// Verifies, fsyncs and publishes an ingest; the temp file is removed on any failure.
    pub(crate) fn commit(&self, mut w: Ingest, expected: Option<&Digest>) -> Result<(Digest, u64), Error> {
        let digest = Digest::from_hasher(std::mem::take(&mut w.hasher));
        if let Some(exp) = expected
            && exp != &digest
        {
            return Err(Error::DigestMismatch { expected: exp.to_string(), actual: digest.to_string() });
        }
        let dst = self.path(&digest);
        if dst.is_file() {
            return Ok((digest, w.size));
        }
        w.file.sync_all().map_err(Error::io("fsync", &w.path))?;
        fs::rename(&w.path, &dst).map_err(Error::io("rename", &dst))?;
        w.committed = true;
        fsutil::sync_dir(&self.blobs).map_err(Error::io("fsync", &self.blobs))?;
        Ok((digest, w.size))
    }

    /// Removes a blob; a blob already gone is fine.
    pub fn remove(&self, d: &Digest) -> Result<bool, Error> {
        let p = self.path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", p)(e)),
        }
    }

    /// Every blob present.
    pub fn list(&self) -> Result<Vec<Digest>, Error> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.blobs).map_err(Error::io("read dir", &self.blobs))? {
            let e = e.map_err(Error::io("read dir", &self.blobs))?;
            if let Some(d) = e.file_name().to_str().and_then(|n| Digest::from_hex(n).ok()) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes leftover ingest files (from a crash); returns how many.
    pub fn clean_ingest(&self) -> Result<u64, Error> {
        let mut n = 0;
        for e in fs::read_dir(&self.ingest).map_err(Error::io("read dir", &self.ingest))? {
            let e = e.map_err(Error::io("read dir", &self.ingest))?;
            if fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_verify_and_dedupe() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let d = cs.write(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(cs.read(&d).unwrap(), b"hello");
        assert_eq!(cs.write(b"hello").unwrap(), d);
        let bad = Digest::of(b"other");
        let err = cs.ingest(&mut &b"hello!"[..], Some(&bad)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0, "no partial blob left");
        assert_eq!(cs.list().unwrap(), vec![d.clone()]);
        assert!(cs.remove(&d).unwrap());
        assert!(!cs.remove(&d).unwrap());
    }
}

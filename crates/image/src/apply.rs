//! Layer application: a tar stream unpacked into a snapshot directory under Docker's layer
//! rules, with OCI whiteouts turned into overlayfs ones (`.wh.x` → a 0/0 character device
//! `x`, `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory). The unpacking itself,
//! and every guarantee that nothing lands outside the snapshot, is `berth_base::fsroot`'s.

use std::io::{self, Read, Write};
use std::path::Path;

use berth_base::fsroot::{self, TarOptions};

use crate::error::Error;

pub(crate) use berth_base::fsroot::{OVERLAY_OPAQUE, WH_OPAQUE, WH_PREFIX};

/// What applying a layer found.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Sum of regular file sizes (hardlinks counted once), like Docker's layer size.
    pub files_size: u64,
}

/// Unpacks the tar read from `src` into the empty directory `root`. `..` above the root,
/// and char and block devices other than the 0/0 whiteout, are refused: a tarball from
/// outside must not be able to hand containers a host device (e.g. the host's disk).
/// Sparse files keep their holes; files adding up to more than `max_size` bytes (holes
/// counted) are refused.
pub(crate) fn apply_tar(src: &mut dyn Read, root: &Path, max_size: Option<u64>) -> Result<Applied, Error> {
    let fd = fsroot::open_root(root).map_err(Error::io("open", root))?;
    let opts = TarOptions { max_size, ..TarOptions::layer() };
    let u = fsroot::unpack_tar(src, &fd, "/", &opts).map_err(Error::Unpack)?;
    Ok(Applied { files_size: u.files_size })
}

/// Wraps `src` in the decompressor its magic bytes call for (gzip, zstd, or none).
pub fn decompress<'a>(src: &'a mut dyn Read) -> Result<Box<dyn Read + 'a>, Error> {
    let mut peek = [0u8; 6];
    let mut n = 0;
    while n < peek.len() {
        match src.read(&mut peek[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                let e = if source.kind() == io::ErrorKind::UnexpectedEof {
                    berth_base::Error::TarTruncated { label: "layer", source }
                } else {
                    berth_base::Error::TarHeader { label: "layer", source }
                };
                return Err(Error::Unpack(e));
            }
        }
    }
    let head = peek[..n].to_vec();
    let chained = io::Cursor::new(head.clone()).chain(src);
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(chained)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d =
            zstd::stream::read::Decoder::new(chained).map_err(|source| Error::Decompress { format: "zstd", source })?;
        Ok(Box::new(d))
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Err(Error::InvalidArgument("unsupported compression (bzip2/xz); use a plain, gzip or zstd tarball".into()))
    } else {
        Ok(Box::new(chained))
    }
}

/// A reader that copies every byte it reads into a writer (the blob being ingested).
pub(crate) struct Tee<'a, W: Write> {
    pub inner: &'a mut dyn Read,
    pub sink: &'a mut W,
    pub sink_err: Option<io::Error>,
}

impl<W: Write> Read for Tee<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.sink.write_all(&buf[..n]) {
            let kind = e.kind();
            self.sink_err = Some(e);
            return Err(io::Error::new(kind, "writing the layer blob failed"));
        }
        Ok(n)
    }
}

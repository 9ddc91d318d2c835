//! The compressed form a layer is pushed in: made once with every core (gzp's parallel gzip),
//! kept in the content store and remembered against the layer's diff id, so pushing the layer
//! again, to this registry or another, never compresses again.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use gzp::ZWriter;
use gzp::deflate::Gzip;
use gzp::par::compress::{ParCompress, ParCompressBuilder};

use crate::content::Ingest;
use crate::error::Error;
use crate::store::{ImageStore, Layer};

/// Media type of an OCI gzip layer, the form berth pushes.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An ingest shared with the compressor's writer thread, taken back when it is done.
#[derive(Clone)]
struct Shared(Arc<Mutex<Option<Ingest>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("the blob was already committed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.as_mut().map_or(Ok(()), |w| w.flush())
    }
}

fn is_compressed(media_type: &str) -> bool {
    media_type.ends_with("gzip") || media_type.ends_with("zstd")
}

impl ImageStore {
    /// The blob to push for `layer`: its own when it is compressed already (as pulled), else
    /// the gzip form made earlier, else one made now with all cores and kept.
    pub fn push_blob(&self, layer: &Layer) -> Result<Layer, Error> {
        if is_compressed(&layer.media_type) {
            return Ok(layer.clone());
        }
        if let Some(l) = self.compressed_blob(&layer.diff_id, MEDIA_TYPE_LAYER_GZIP)? {
            return Ok(l);
        }
        let mut src = self.content().open_blob(&layer.blob)?;
        let shared = Shared(Arc::new(Mutex::new(Some(self.content().begin()?))));
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        // Level 1: the layers that dominate push time (models, binaries, wheels) barely
        // compress at any level, and the fast level keeps the upload, not the CPU, the limit.
        let mut z: ParCompress<Gzip, Shared> = ParCompressBuilder::new()
            .num_threads(threads)
            .map_err(|e| Error::InvalidArgument(format!("gzip: {e}")))?
            .compression_level(gzp::Compression::fast())
            .from_writer(shared.clone());
        let copied = io::copy(&mut src, &mut z);
        let finished = z.finish();
        let ingest = shared.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(ingest) = ingest else { return Err(Error::Corrupt("compressed blob lost".into())) };
        copied.map_err(Error::io("compress", self.content().path(&layer.blob)))?;
        finished
            .map_err(|e| Error::io("compress", self.content().path(&layer.blob))(io::Error::other(e.to_string())))?;
        let (blob, size) = self.content().commit(ingest, None)?;
        self.record_compressed(&layer.diff_id, &blob, size, MEDIA_TYPE_LAYER_GZIP)?;
        Ok(Layer { diff_id: layer.diff_id.clone(), blob, size, media_type: MEDIA_TYPE_LAYER_GZIP.to_owned() })
    }
}

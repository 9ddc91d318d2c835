//! The compressed form a layer is pushed in: made once with every core, kept in the content
//! store and remembered against the layer's diff id, so pushing the layer again, to this
//! registry or another, never compresses again.
//!
//! The gzip stream is made here rather than by a parallel-gzip crate (this used gzp) because
//! the layers that dominate push time — models, wheels, archives, media — do not compress,
//! and deflate's fast level still spends a core's worth of matching on them and then codes
//! them larger than they are (zlib-rs' level 1 uses fixed Huffman codes only, about 5% bigger
//! on random bytes), which the puller must then Huffman-decode again. Each 1 MiB block is
//! compressed on its own thread as pigz does (raw deflate primed with the previous block's
//! last 32 KiB, ended by a sync flush so blocks concatenate), but a block whose first 64 KiB
//! do not shrink, or whose deflate output is no smaller than the block, goes out as stored
//! deflate blocks: the bytes copied as they are, which the puller inflates at memory speed.
//! The result is an ordinary single-member gzip stream any gunzip reads.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, Crc, FlushCompress};

use crate::error::Error;
use crate::store::{ImageStore, Layer};

/// Media type of an OCI gzip layer, the form berth pushes.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Deflate's level: zlib-rs' level 1 codes with fixed Huffman tables only and leaves text
/// and binaries nearly twice the size level 2 makes them, for little time saved now that
/// incompressible blocks skip deflate altogether.
const LEVEL: u32 = 2;
/// How much of the layer one worker compresses at a time.
const BLOCK: usize = 1 << 20;
/// Deflate's window: the tail of the previous block each block may refer back to.
const WINDOW: usize = 32 * 1024;
/// The head of a block compressed first to see whether the block compresses at all.
const PROBE: usize = 64 * 1024;
/// The largest stored deflate block.
const STORED_MAX: usize = 65_535;

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
        let mut ingest = self.content().begin()?;
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        par_gzip(&mut src, &mut ingest, threads).map_err(Error::io("compress", self.content().path(&layer.blob)))?;
        let (blob, size) = self.content().commit(ingest, None)?;
        self.record_compressed(&layer.diff_id, &blob, size, MEDIA_TYPE_LAYER_GZIP)?;
        Ok(Layer { diff_id: layer.diff_id.clone(), blob, size, media_type: MEDIA_TYPE_LAYER_GZIP.to_owned() })
    }
}

/// One block handed to a worker: its place, the window before it and its bytes.
struct Job {
    seq: u64,
    window: Vec<u8>,
    data: Vec<u8>,
}

/// A compressed block: its place, its deflate bytes, and the CRC and length of its input.
struct Done {
    seq: u64,
    out: Vec<u8>,
    crc: Crc,
    len: usize,
}

/// Gzips `src` into `dst` with `threads` workers (deflate level [`LEVEL`], incompressible
/// blocks stored). At most `4 × threads` blocks are in memory at once.
pub(crate) fn par_gzip(src: &mut (dyn Read + Send), dst: &mut dyn Write, threads: usize) -> io::Result<()> {
    let threads = threads.max(1);
    // Gzip header: deflate, no name, no mtime (the same bytes for the same layer), OS unknown.
    dst.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
    let (job_tx, job_rx) = sync_channel::<Job>(threads);
    let job_rx = Arc::new(Mutex::new(job_rx));
    // Each worker holds the only handles on the job queue, so it closes when they stop.
    let job_rxs: Vec<_> = (0..threads).map(|_| Arc::clone(&job_rx)).collect();
    drop(job_rx);
    let (done_tx, done_rx) = sync_channel::<io::Result<Done>>(threads);
    // A token per block in flight: the reader takes one before reading, the writer gives it
    // back once the block is written, so a slow block cannot let the rest pile up.
    let (slot_tx, slot_rx) = sync_channel::<()>(4 * threads);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> io::Result<u64> {
            let mut seq = 0u64;
            let mut window: Vec<u8> = Vec::new();
            loop {
                if slot_tx.send(()).is_err() {
                    return Ok(seq);
                }
                let mut data = vec![0u8; BLOCK];
                let n = read_full(src, &mut data)?;
                if n == 0 {
                    return Ok(seq);
                }
                data.truncate(n);
                let next = data[data.len().saturating_sub(WINDOW)..].to_vec();
                let job = Job { seq, window: std::mem::replace(&mut window, next), data };
                if job_tx.send(job).is_err() {
                    return Ok(seq);
                }
                seq += 1;
            }
        });
        for rx in job_rxs {
            let tx = done_tx.clone();
            scope.spawn(move || worker(&rx, &tx));
        }
        drop(done_tx);
        let written = write_in_order(&done_rx, &slot_rx, dst);
        // Unblock the reader and the workers whatever happened, then collect the reader's word.
        drop(slot_rx);
        drop(done_rx);
        let read = reader.join().map_err(|_| io::Error::other("the gzip reader panicked"))?;
        let (crc, total, blocks) = written?;
        let read = read?;
        if read != blocks {
            return Err(io::Error::other(format!("gzip: {blocks} of {read} blocks written")));
        }
        // An empty final block with fixed codes ends the deflate stream; then CRC and length.
        dst.write_all(&[0x03, 0x00])?;
        dst.write_all(&crc.sum().to_le_bytes())?;
        dst.write_all(&(total as u32).to_le_bytes())?;
        dst.flush()
    })
}

fn worker(jobs: &Mutex<Receiver<Job>>, done: &std::sync::mpsc::SyncSender<io::Result<Done>>) {
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { return };
        let mut crc = Crc::new();
        crc.update(&job.data);
        let res = deflate_block(&job.window, &job.data).map(|out| Done { seq: job.seq, out, crc, len: job.data.len() });
        if done.send(res).is_err() {
            return;
        }
    }
}

/// Writes finished blocks to `dst` in their order; returns the whole input's CRC, length and
/// block count.
fn write_in_order(
    done: &Receiver<io::Result<Done>>,
    slots: &Receiver<()>,
    dst: &mut dyn Write,
) -> io::Result<(Crc, u64, u64)> {
    let mut crc = Crc::new();
    let mut total = 0u64;
    let mut next = 0u64;
    let mut waiting: BTreeMap<u64, Done> = BTreeMap::new();
    for d in done {
        let d = d?;
        waiting.insert(d.seq, d);
        while let Some(d) = waiting.remove(&next) {
            dst.write_all(&d.out)?;
            crc.combine(&d.crc);
            total += d.len as u64;
            next += 1;
            let _ = slots.recv();
        }
    }
    if !waiting.is_empty() {
        return Err(io::Error::other("gzip: a block went missing"));
    }
    Ok((crc, total, next))
}

/// Deflates one block (raw, after `window`, ending on a byte boundary with a sync flush), or
/// stores it when deflate would not make it smaller.
fn deflate_block(window: &[u8], data: &[u8]) -> io::Result<Vec<u8>> {
    let mut z = Compress::new(Compression::new(LEVEL), false);
    if !window.is_empty() {
        z.set_dictionary(window).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 1024);
    let probe = data.len().min(PROBE);
    sync_deflate(&mut z, &data[..probe], &mut out)?;
    // Random and already-compressed data shows itself in the probe: store the whole block
    // rather than spend the matching on it.
    if probe == PROBE && out.len() * 100 >= probe * 97 {
        return Ok(stored(data));
    }
    sync_deflate(&mut z, &data[probe..], &mut out)?;
    if out.len() >= stored_len(data.len()) {
        return Ok(stored(data));
    }
    Ok(out)
}

/// Feeds all of `input` to `z` and sync-flushes, appending to `out`.
fn sync_deflate(z: &mut Compress, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let start = z.total_in();
    loop {
        let used = (z.total_in() - start) as usize;
        if out.capacity() - out.len() < 4096 {
            out.reserve(input.len() - used + 64 * 1024);
        }
        z.compress_vec(&input[used..], out, FlushCompress::Sync).map_err(io::Error::other)?;
        // The flush is complete when all input is taken and output space is left over.
        if z.total_in() - start == input.len() as u64 && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

/// The size of `len` bytes as stored deflate blocks.
fn stored_len(len: usize) -> usize {
    len + 5 * len.div_ceil(STORED_MAX).max(1)
}

/// `data` as non-final stored deflate blocks (each starts on a byte boundary: the previous
/// block ended with a sync flush or is itself stored).
fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored_len(data.len()));
    for piece in data.chunks(STORED_MAX) {
        let n = piece.len() as u16;
        out.push(0);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // The single-member decoder: the stream must be one well-formed gzip member.
        flate2::read::GzDecoder::new(gz).read_to_end(&mut out).unwrap();
        out
    }

    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut out = Vec::new();
        par_gzip(&mut &data[..], &mut out, threads).unwrap();
        out
    }

    #[test]
    fn round_trips_text_noise_mixed_and_empty() {
        let text: Vec<u8> = (0..400_000).flat_map(|i: u32| format!("{i}\n").into_bytes()).collect();
        let random = noise(3 * BLOCK + 12_345, 7);
        let mut mixed = text.clone();
        mixed.extend_from_slice(&random[..BLOCK + 99]);
        mixed.extend_from_slice(&text);
        for (name, data) in [("text", text.clone()), ("random", random.clone()), ("mixed", mixed), ("empty", vec![])] {
            for threads in [1, 2, 5] {
                let gz = gzip(&data, threads);
                assert_eq!(gunzip(&gz), data, "{name} with {threads} threads");
                assert_eq!(gz, gzip(&data, 1), "{name}: the same bytes whatever the thread count");
            }
        }
        // Text shrinks; random bytes cost only the stored blocks' headers, not Huffman codes.
        assert!(gzip(&text, 2).len() * 5 < text.len() * 2);
        let gz = gzip(&random, 2).len();
        assert!(gz <= stored_len(random.len()) + 4 * 5 + 18 + 2, "random: {gz} bytes for {}", random.len());
    }

    #[test]
    fn text_after_a_block_refers_back_across_the_boundary() {
        // The same 20 KiB twice, the first straddling a block boundary: the second block
        // refers back into the first through the window, so it codes the repeat as matches
        // where fresh noise in its place costs its full size.
        let chunk = noise(20 * 1024, 3);
        let build = |second: &[u8]| {
            let mut data = vec![b'a'; BLOCK - 10 * 1024];
            data.extend_from_slice(&chunk);
            data.extend_from_slice(second);
            data
        };
        let (repeat, fresh) = (build(&chunk), build(&noise(20 * 1024, 4)));
        let gz = gzip(&repeat, 2);
        assert_eq!(gunzip(&gz), repeat);
        let other = gzip(&fresh, 2).len();
        assert!(gz.len() + 15 * 1024 < other, "{} bytes, {other} without the repeat", gz.len());
    }

    #[test]
    fn a_read_error_fails_the_stream() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk gone"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(1);
                self.0 -= n;
                Ok(n)
            }
        }
        let mut out = Vec::new();
        let err = par_gzip(&mut Broken(3 * BLOCK + 5), &mut out, 2).unwrap_err();
        assert_eq!(err.to_string(), "disk gone");
    }
}

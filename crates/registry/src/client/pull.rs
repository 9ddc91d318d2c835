//! Downloading one blob as a stream of chunks handed to a consumer (the daemon unpacks and
//! verifies as they arrive). A broken download is retried with back-off and resumed with
//! `Range` from the byte it stopped at; a registry that ignores `Range` answers 200 and the
//! bytes already delivered are skipped, so the consumer sees one unbroken stream either way.
//! The bytes are not hashed here: the consumer hashes them once as it stores them.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::Session;
use super::resolve::Descriptor;
use crate::error::Error;

/// How many times a blob download is tried before its error is reported.
pub const ATTEMPTS: u32 = 5;

/// Receives the progress of one download.
pub trait BlobProgress: Send {
    /// `done` bytes of the blob have been received.
    fn advanced(&mut self, done: u64);
    /// The download broke and will be retried from `done` after `wait`.
    fn retrying(&mut self, done: u64, wait: Duration, err: &Error);
}

/// Streams blob `d` into `sink` (chunks in order, exactly `d.size` bytes), reporting to
/// `progress`. The consumer checks the digest; this checks the length and keeps the stream
/// going across broken connections.
pub async fn fetch_blob(
    s: &Session,
    d: &Descriptor,
    sink: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    progress: &mut dyn BlobProgress,
) -> Result<(), Error> {
    let mut done: u64 = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match fetch_from(s, d, done, sink, progress).await {
            Ok(()) => return Ok(()),
            Err(Step::Fatal(e)) => return Err(e),
            Err(Step::Retry(e, at)) => {
                done = at;
                if attempt >= ATTEMPTS {
                    return Err(Error::BlobDownload {
                        digest: d.digest.to_string(),
                        attempts: attempt,
                        source: Box::new(e),
                    });
                }
                let wait = Duration::from_millis(250 << (attempt - 1).min(5));
                progress.retrying(done, wait, &e);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

enum Step {
    Retry(Error, u64),
    Fatal(Error),
}

async fn fetch_from(
    s: &Session,
    d: &Descriptor,
    mut done: u64,
    sink: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    progress: &mut dyn BlobProgress,
) -> Result<(), Step> {
    let url = s.url(&format!("blobs/{}", d.digest));
    let res = s
        .send(&url, &[], |h| {
            let req = h.get(&url);
            if done > 0 { req.header(reqwest::header::RANGE, format!("bytes={done}-")) } else { req }
        })
        .await;
    let res = match res {
        Ok(r) => r,
        Err(e) => return Err(if e.is_transient() { Step::Retry(e, done) } else { Step::Fatal(e) }),
    };
    // A full answer to a resumed request starts again from byte 0: skip what was delivered.
    let mut skip = match res.status() {
        reqwest::StatusCode::PARTIAL_CONTENT if done > 0 => 0,
        st if st.is_success() => done,
        _ => {
            let e = super::transport::status_error(&url, res, Some("BLOB_UNKNOWN")).await;
            return Err(if e.is_transient() { Step::Retry(e, done) } else { Step::Fatal(e) });
        }
    };
    let mut st = res.bytes_stream();
    while let Some(chunk) = st.next().await {
        let mut chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let source = std::io::Error::other(e);
                return Err(Step::Retry(Error::Stream { digest: d.digest.to_string(), source }, done));
            }
        };
        if skip > 0 {
            let k = skip.min(chunk.len() as u64) as usize;
            let _ = chunk.split_to(k);
            skip -= k as u64;
            if chunk.is_empty() {
                continue;
            }
        }
        done += chunk.len() as u64;
        if done > d.size {
            return Err(Step::Fatal(Error::Protocol(format!(
                "blob {} is longer than the {} bytes its descriptor says",
                d.digest, d.size
            ))));
        }
        if sink.send(Ok(chunk)).await.is_err() {
            // The consumer stopped (it failed, and reports why).
            return Err(Step::Fatal(Error::Cancelled));
        }
        progress.advanced(done);
    }
    if done < d.size {
        let e = Error::Stream {
            digest: d.digest.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("connection closed after {done} of {} bytes", d.size),
            ),
        };
        return Err(Step::Retry(e, done));
    }
    Ok(())
}

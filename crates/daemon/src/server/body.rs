//! Request bodies as the engine reads them: an async upload (an image tarball, a build
//! context) fed to the blocking readers of the image store and the builder.

use std::io::Read;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;

/// Feeds an async request body to blocking readers (the image store reads with `std::io::Read`).
pub struct BodyReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Starts pumping `body` into a [`BodyReader`]; must run inside the tokio runtime.
pub fn body_reader(body: Body) -> BodyReader {
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    tokio::spawn(async move {
        let mut s = body.into_data_stream();
        while let Some(chunk) = s.next().await {
            let item = chunk.map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("reading the request body: {e}"))
            });
            let stop = item.is_err();
            let tx = tx.clone();
            // The channel is bounded so a slow import applies back-pressure to the upload.
            let sent = tokio::task::spawn_blocking(move || tx.send(item).is_ok()).await.unwrap_or(false);
            if stop || !sent {
                break;
            }
        }
    });
    BodyReader { rx, cur: Bytes::new() }
}

//! Pushing: blob existence checks, cross-repository mounts (with a token that covers both
//! repositories), uploads streamed from the content store (progress reported as bytes
//! leave), and the manifest last.
//!
//! An upload is one `POST` that opens it and one `PUT ?digest=` that carries the whole blob
//! with its length, as containerd's pusher sends it. dockerd streams the blob in a single
//! `PATCH` without `Content-Range` before the closing `PUT`; neither ever splits a blob into
//! `Content-Range` chunks, so berth does not either (registries must take a monolithic PUT).

use std::io::Read;

use berth_base::Digest;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};

use super::Session;
use super::transport::{location, status_error};
use crate::error::Error;

/// Receives the progress of one upload.
pub trait UploadProgress: Send + 'static {
    /// `done` bytes have been handed to the connection.
    fn sent(&mut self, done: u64);
}

impl Session {
    /// True when the repository already holds blob `d` (`HEAD /v2/<name>/blobs/<d>`).
    pub async fn blob_exists(&self, d: &Digest) -> Result<bool, Error> {
        let url = self.url(&format!("blobs/{d}"));
        let res = self.send(&url, &[], |h| h.head(&url)).await?;
        match res.status() {
            s if s.is_success() => Ok(true),
            reqwest::StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(&url, res, None).await),
        }
    }

    /// Asks the registry to mount blob `d` from repository `from` of the same registry, with a
    /// token that grants pull on `from` as well as push on this repository (one token request
    /// naming both, as dockerd makes it); false when it would not (the caller uploads instead).
    pub async fn mount(&self, d: &Digest, from: &str) -> bool {
        let url = self.url(&format!("blobs/uploads/?mount={d}&from={}", encode(from)));
        let extra = [super::transport::repository_scope(from, false)];
        let res = match self.send(&url, &extra, |h| h.post(&url).header(CONTENT_LENGTH, 0)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "cross-repository mount failed");
                return false;
            }
        };
        match res.status() {
            reqwest::StatusCode::CREATED => true,
            reqwest::StatusCode::ACCEPTED => {
                // The registry opened an upload instead: close it, the caller uploads anew.
                if let Ok(loc) = location(&self.endpoint, &res, &[]) {
                    let _ = self.send(&loc, &[], |h| h.delete(&loc)).await;
                }
                false
            }
            _ => false,
        }
    }

    /// Opens an upload (`POST /v2/<name>/blobs/uploads/`) and returns the URL that takes
    /// the blob.
    async fn start_upload(&self, d: &Digest) -> Result<String, Error> {
        let url = self.url("blobs/uploads/");
        let res = self.send(&url, &[], |h| h.post(&url).header(CONTENT_LENGTH, 0)).await?;
        if res.status() != reqwest::StatusCode::ACCEPTED {
            return Err(status_error(&url, res, None).await);
        }
        location(&self.endpoint, &res, &[("digest", &d.to_string())])
    }

    /// Uploads blob `d` of `size` bytes read from `src` (on a blocking thread), reporting
    /// progress; the registry verifies the digest.
    pub async fn upload_blob(
        &self,
        d: &Digest,
        size: u64,
        src: Box<dyn Read + Send>,
        mut progress: Box<dyn UploadProgress>,
    ) -> Result<(), Error> {
        let put = self.start_upload(d).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let reader = tokio::task::spawn_blocking(move || {
            let mut src = src;
            loop {
                let mut buf = BytesMut::zeroed(CHUNK);
                match src.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.blocking_send(Ok(buf.freeze())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        let mut done = 0u64;
        let stream =
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) }).map(move |r| {
                if let Ok(b) = &r {
                    done += b.len() as u64;
                    progress.sent(done);
                }
                r
            });
        let req = self
            .http
            .put(&put)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream));
        let res = self.send_once(&put, req).await;
        reader.abort();
        let res = res?;
        if !res.status().is_success() {
            return Err(status_error(&put, res, None).await);
        }
        Ok(())
    }

    /// Uploads a small blob (a config) from memory.
    pub async fn upload_bytes(&self, d: &Digest, data: Vec<u8>) -> Result<(), Error> {
        let put = self.start_upload(d).await?;
        let data = Bytes::from(data);
        let res = self
            .send(&put, &[], |h| h.put(&put).header(CONTENT_TYPE, "application/octet-stream").body(data.clone()))
            .await?;
        if !res.status().is_success() {
            return Err(status_error(&put, res, None).await);
        }
        Ok(())
    }

    /// Puts a manifest under `tag`; returns its digest.
    pub async fn put_manifest(&self, tag: &str, body: Vec<u8>, media_type: &str) -> Result<Digest, Error> {
        let digest = Digest::of(&body);
        let url = self.url(&format!("manifests/{tag}"));
        let body = Bytes::from(body);
        let res = self.send(&url, &[], |h| h.put(&url).header(CONTENT_TYPE, media_type).body(body.clone())).await?;
        if !res.status().is_success() {
            return Err(status_error(&url, res, None).await);
        }
        Ok(digest)
    }
}

/// How much of a blob one read hands to the connection.
const CHUNK: usize = 1 << 20;

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

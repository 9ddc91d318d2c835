//! Pushing: blob existence checks, cross-repository mounts, monolithic uploads streamed
//! from the content store (progress reported as bytes leave), and the manifest last.

use std::io::Read;

use berth_base::Digest;
use bytes::Bytes;
use futures_util::StreamExt;

use super::Session;
use crate::error::Error;

/// Receives the progress of one upload.
pub trait UploadProgress: Send + 'static {
    /// `done` bytes have been handed to the connection.
    fn sent(&mut self, done: u64);
}

impl Session {
    /// True when the repository already holds blob `d` (`HEAD /v2/<name>/blobs/<d>`).
    pub async fn blob_exists(&self, d: &Digest) -> Result<bool, Error> {
        let r = self.oci_ref(&d.to_string());
        self.oci.blob_exists(&r, &d.to_string()).await.map_err(Error::client)
    }

    /// Asks the registry to mount blob `d` from repository `from` of the same registry;
    /// false when it would not (the caller uploads instead).
    pub async fn mount(&self, d: &Digest, from: &str) -> bool {
        let target = self.oci_ref("latest");
        let source = oci_client::Reference::with_tag(self.endpoint.host.clone(), from.to_owned(), "latest".into());
        self.oci.mount_blob(&target, &source, &d.to_string()).await.is_ok()
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
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
        let reader = tokio::task::spawn_blocking(move || {
            let mut src = src;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match src.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if tx.blocking_send(Ok(Bytes::copy_from_slice(&buf[..n]))).is_err() {
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
                r.map_err(|e| {
                    oci_client::errors::OciDistributionError::IoError(std::io::Error::new(e.kind(), e.to_string()))
                })
            });
        let r = self.oci_ref(&d.to_string());
        let res = self.oci.push_blob_stream(&r, stream, &d.to_string(), Some(size)).await;
        reader.abort();
        res.map(|_| ()).map_err(Error::client)
    }

    /// Uploads a small blob (a config) from memory.
    pub async fn upload_bytes(&self, d: &Digest, data: Vec<u8>) -> Result<(), Error> {
        let r = self.oci_ref(&d.to_string());
        self.oci.push_blob(&r, data, &d.to_string()).await.map(|_| ()).map_err(Error::client)
    }

    /// Puts a manifest under `tag`; returns its digest.
    pub async fn put_manifest(&self, tag: &str, body: Vec<u8>, media_type: &str) -> Result<Digest, Error> {
        let digest = Digest::of(&body);
        let r = self.oci_ref(tag);
        let ct = reqwest::header::HeaderValue::from_str(media_type)
            .map_err(|e| Error::Protocol(format!("media type {media_type}: {e}")))?;
        self.oci.push_manifest_raw(&r, body, ct).await.map_err(Error::client)?;
        Ok(digest)
    }
}

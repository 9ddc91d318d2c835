//! Build endpoints: `POST /build` (a context tar, or a directory by path on a local daemon)
//! and the build cache's prune.

use hyper::{Method, header};

use super::{Body, Client, ClientError, JsonStream, Result, check};
use crate::BERTH_CONTEXT_DIR;
use crate::query;

impl Client {
    /// `POST /build` with a context `body` (a tar, or empty with `context_dir` naming a
    /// directory on the daemon's machine), and the user's registry credentials for pulling
    /// bases in `registry_config` (the `X-Registry-Config` value); the answer is the build's
    /// progress stream.
    pub async fn build_image(
        &self,
        q: &query::Build,
        context_dir: Option<&str>,
        registry_config: Option<&str>,
        body: Body,
    ) -> Result<JsonStream> {
        let mut req = self.build(Method::POST, "/build", Some(&q.to_query()), body)?;
        if let Some(v) = registry_config.filter(|v| !v.is_empty()) {
            let v = header::HeaderValue::from_str(v).map_err(|e| ClientError::Request(e.to_string()))?;
            req.headers_mut().insert("x-registry-config", v);
        }
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-tar"));
        if let Some(dir) = context_dir {
            let v = header::HeaderValue::from_str(dir).map_err(|e| ClientError::Request(e.to_string()))?;
            req.headers_mut().insert(BERTH_CONTEXT_DIR, v);
        }
        let resp = check(self.send(req, false).await?).await?;
        Ok(JsonStream::new(resp.into_body()))
    }

    /// `POST /build/prune`: `{"CachesDeleted": [...], "SpaceReclaimed": n}`.
    pub async fn prune_build_cache(&self, all: bool, filters: &query::Filters) -> Result<serde_json::Value> {
        let mut q = format!("all={}", if all { 1 } else { 0 });
        if !filters.is_empty() {
            q.push_str("&filters=");
            q.push_str(&serde_urlencoded::to_string([("", filters.to_json())]).unwrap_or_default()[1..]);
        }
        self.call_json(Method::POST, "/build/prune", Some(&q), None).await
    }
}

/// A blocking `Write` that hands each buffer to an async request body's channel: a build
/// context tar written on a blocking thread while the request streams it (the CLI's `build`
/// and `compose build`).
pub struct UploadWriter(pub tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>);

impl std::io::Write for UploadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the daemon closed the upload"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

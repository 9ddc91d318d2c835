//! Exec endpoints: create, start (hijacked or detached), resize, inspect.

use http_body_util::BodyExt;
use hyper::{Method, StatusCode, header};
use hyper_util::rt::TokioIo;

use super::{AttachIo, Client, ClientError, Result, check, decode, full_body, seg};
use crate::models::{ExecConfig, ExecInspectResponse, ExecStartConfig};

impl Client {
    /// `POST /containers/{id}/exec`: returns the exec's id.
    pub async fn create_exec(&self, container: &str, cfg: &ExecConfig) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        let json = serde_json::to_vec(cfg).map_err(|e| ClientError::Request(e.to_string()))?;
        let mut req =
            self.build(Method::POST, &format!("/containers/{}/exec", seg(container)), None, full_body(json))?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        let resp = check(self.send(req, false).await?).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        let c: Created = decode(&bytes, "exec create")?;
        Ok(c.id)
    }

    /// `POST /exec/{id}/start` with `Detach`: the exec runs on its own.
    pub async fn start_exec_detached(&self, id: &str, tty: bool) -> Result<()> {
        let body = ExecStartConfig { detach: Some(true), tty: Some(tty), console_size: None };
        let json = serde_json::to_vec(&body).map_err(|e| ClientError::Request(e.to_string()))?;
        let mut req = self.build(Method::POST, &format!("/exec/{}/start", seg(id)), None, full_body(json))?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        check(self.send(req, false).await?).await.map(|_| ())
    }

    /// `POST /exec/{id}/start` with a protocol upgrade: the stream carries the exec's output
    /// (multiplexed unless it has a tty) and takes its stdin.
    pub async fn start_exec_attached(&self, id: &str, tty: bool, console: Option<(u16, u16)>) -> Result<AttachIo> {
        let body = ExecStartConfig {
            detach: Some(false),
            tty: Some(tty),
            console_size: console.map(|(h, w)| vec![usize::from(h), usize::from(w)]),
        };
        let json = serde_json::to_vec(&body).map_err(|e| ClientError::Request(e.to_string()))?;
        let mut req = self.build(Method::POST, &format!("/exec/{}/start", seg(id)), None, full_body(json))?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        req.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("Upgrade"));
        req.headers_mut().insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
        let resp = self.send(req, true).await?;
        let status = resp.status();
        if status != StatusCode::SWITCHING_PROTOCOLS && status != StatusCode::OK {
            return Err(check(resp).await.err().unwrap_or(ClientError::NoUpgrade(status.as_u16())));
        }
        let upgraded = hyper::upgrade::on(resp).await.map_err(|_| ClientError::NoUpgrade(status.as_u16()))?;
        Ok(TokioIo::new(upgraded))
    }

    /// `POST /exec/{id}/resize`.
    pub async fn resize_exec(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let qs = format!("h={height}&w={width}");
        self.call_raw(Method::POST, &format!("/exec/{}/resize", seg(id)), Some(&qs)).await.map(|_| ())
    }

    /// `GET /exec/{id}/json`.
    pub async fn inspect_exec(&self, id: &str) -> Result<ExecInspectResponse> {
        self.call_json(Method::GET, &format!("/exec/{}/json", seg(id)), None, None).await
    }
}

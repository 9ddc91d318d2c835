//! Container endpoints: create, start, wait, attach, resize, list, inspect, logs, kill,
//! stop, remove.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode, header};
use hyper_util::rt::TokioIo;

use super::{
    AttachIo, ByteStream, Client, ClientError, Result, WaitHandle, check, decode, empty_body, encode_query, full_body,
    seg,
};
use crate::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerTopResponse,
    ContainerUpdateBody, ContainerUpdateResponse,
};
use crate::query;

impl Client {
    /// `POST /containers/create`.
    pub async fn create_container(
        &self,
        q: &query::CreateContainer,
        body: &ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Request(e.to_string()))?;
        let req = self.build(Method::POST, "/containers/create", Some(&encode_query(q)?), full_body(json))?;
        let mut req = req;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        let resp = check(self.send(req, false).await?).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        decode(&bytes, "container create")
    }

    /// `POST /containers/{id}/start`. A 304 (already started) is not an error.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let resp = self.request(Method::POST, &format!("/containers/{}/start", seg(id)), None, None).await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        check(resp).await.map(|_| ())
    }

    /// `POST /containers/{id}/wait`: returns once the daemon has accepted the wait (its
    /// response headers arrived), so a following start cannot race past it.
    pub async fn wait_container(&self, id: &str, q: &query::WaitContainer) -> Result<WaitHandle> {
        let resp =
            self.call(Method::POST, &format!("/containers/{}/wait", seg(id)), Some(&encode_query(q)?), None).await?;
        Ok(WaitHandle { body: resp.into_body() })
    }

    /// `POST /containers/{id}/attach` with a protocol upgrade; the returned stream carries the
    /// container's output (multiplexed unless it has a tty) and accepts its stdin.
    pub async fn attach_container(&self, id: &str, q: &query::AttachContainer) -> Result<AttachIo> {
        let mut req = self.build(
            Method::POST,
            &format!("/containers/{}/attach", seg(id)),
            Some(&encode_query(q)?),
            empty_body(),
        )?;
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

    /// `POST /containers/{id}/resize`.
    pub async fn resize_container(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let qs = format!("h={height}&w={width}");
        self.call_raw(Method::POST, &format!("/containers/{}/resize", seg(id)), Some(&qs)).await.map(|_| ())
    }

    /// `GET /containers/json`.
    pub async fn list_containers(&self, q: &query::ListContainers) -> Result<Vec<ContainerSummary>> {
        self.call_json(Method::GET, "/containers/json", Some(&encode_query(q)?), None).await
    }

    /// `GET /containers/{id}/json`, typed.
    pub async fn inspect_container(&self, id: &str, q: &query::InspectContainer) -> Result<ContainerInspectResponse> {
        self.call_json(Method::GET, &format!("/containers/{}/json", seg(id)), Some(&encode_query(q)?), None).await
    }

    /// `GET /containers/{id}/json`, the daemon's bytes untouched (field order kept).
    pub async fn inspect_container_raw(&self, id: &str, q: &query::InspectContainer) -> Result<Bytes> {
        self.call_raw(Method::GET, &format!("/containers/{}/json", seg(id)), Some(&encode_query(q)?)).await
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove_container(&self, id: &str, q: &query::RemoveContainer) -> Result<()> {
        self.call_raw(Method::DELETE, &format!("/containers/{}", seg(id)), Some(&encode_query(q)?)).await.map(|_| ())
    }

    /// `GET /containers/{id}/logs`: a raw stream (multiplexed unless the container has a tty).
    pub async fn container_logs(&self, id: &str, q: &query::Logs) -> Result<ByteStream> {
        let resp =
            self.call(Method::GET, &format!("/containers/{}/logs", seg(id)), Some(&encode_query(q)?), None).await?;
        Ok(ByteStream { body: resp.into_body() })
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill_container(&self, id: &str, q: &query::KillContainer) -> Result<()> {
        self.call_raw(Method::POST, &format!("/containers/{}/kill", seg(id)), Some(&encode_query(q)?)).await.map(|_| ())
    }

    /// `POST /containers/{id}/stop`. A 304 (already stopped) is not an error.
    pub async fn stop_container(&self, id: &str, q: &query::StopContainer) -> Result<()> {
        let resp =
            self.request(Method::POST, &format!("/containers/{}/stop", seg(id)), Some(&encode_query(q)?), None).await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        check(resp).await.map(|_| ())
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart_container(&self, id: &str, q: &query::StopContainer) -> Result<()> {
        self.call_raw(Method::POST, &format!("/containers/{}/restart", seg(id)), Some(&encode_query(q)?))
            .await
            .map(|_| ())
    }

    /// `POST /containers/{id}/pause`.
    pub async fn pause_container(&self, id: &str) -> Result<()> {
        self.call_raw(Method::POST, &format!("/containers/{}/pause", seg(id)), None).await.map(|_| ())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause_container(&self, id: &str) -> Result<()> {
        self.call_raw(Method::POST, &format!("/containers/{}/unpause", seg(id)), None).await.map(|_| ())
    }

    /// `POST /containers/{id}/rename?name=`.
    pub async fn rename_container(&self, id: &str, q: &query::RenameContainer) -> Result<()> {
        self.call_raw(Method::POST, &format!("/containers/{}/rename", seg(id)), Some(&encode_query(q)?))
            .await
            .map(|_| ())
    }

    /// `GET /containers/{id}/top?ps_args=`.
    pub async fn top_container(&self, id: &str, q: &query::TopContainer) -> Result<ContainerTopResponse> {
        self.call_json(Method::GET, &format!("/containers/{}/top", seg(id)), Some(&encode_query(q)?), None).await
    }

    /// `GET /containers/{id}/stats`: newline-separated JSON samples (one with `stream=false`).
    pub async fn container_stats(&self, id: &str, q: &query::Stats) -> Result<ByteStream> {
        let resp =
            self.call(Method::GET, &format!("/containers/{}/stats", seg(id)), Some(&encode_query(q)?), None).await?;
        Ok(ByteStream { body: resp.into_body() })
    }

    /// `POST /containers/{id}/update`.
    pub async fn update_container(&self, id: &str, body: &ContainerUpdateBody) -> Result<ContainerUpdateResponse> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Request(e.to_string()))?;
        let mut req = self.build(Method::POST, &format!("/containers/{}/update", seg(id)), None, full_body(json))?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        let resp = check(self.send(req, false).await?).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        decode(&bytes, "container update")
    }

    /// `GET /events`: newline-separated JSON event messages, until `until` or forever.
    pub async fn events(&self, q: &query::Events) -> Result<ByteStream> {
        let resp = self.call(Method::GET, "/events", Some(&encode_query(q)?), None).await?;
        Ok(ByteStream { body: resp.into_body() })
    }
}

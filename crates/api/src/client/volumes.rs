//! Volume endpoints: create, list, inspect, remove, prune; and the other prunes and
//! `commit`, which answer the same way (what was removed, the space reclaimed). Volumes
//! come back as JSON
//! values: moby echoes `Labels` and `Options` as given (`null` when none), which the
//! generated models cannot keep apart from `{}`.

use hyper::{Method, header};

use super::{Client, ClientError, Result, check, decode, encode_query, full_body, seg};
use crate::models::VolumeCreateRequest;
use crate::query;

impl Client {
    /// `POST /volumes/create`: the volume as the daemon describes it.
    pub async fn create_volume(&self, body: &VolumeCreateRequest) -> Result<serde_json::Value> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Request(e.to_string()))?;
        let mut req = self.build(Method::POST, "/volumes/create", None, full_body(json))?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        let resp = check(self.send(req, false).await?).await?;
        let bytes = http_body_util::BodyExt::collect(resp.into_body()).await?.to_bytes();
        decode(&bytes, "volume create")
    }

    /// `GET /volumes`: `{"Volumes": [...], "Warnings": [...]}`.
    pub async fn list_volumes(&self, filters: &query::Filters) -> Result<serde_json::Value> {
        let q = query::FiltersOnly { filters: filters.clone() };
        self.call_json(Method::GET, "/volumes", Some(&encode_query(&q)?), None).await
    }

    /// `GET /volumes/{name}`.
    pub async fn inspect_volume(&self, name: &str) -> Result<serde_json::Value> {
        self.call_json(Method::GET, &format!("/volumes/{}", seg(name)), None, None).await
    }

    /// `DELETE /volumes/{name}` (`force`: a missing volume is no error).
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let q = query::RemoveVolume { force };
        self.call_raw(Method::DELETE, &format!("/volumes/{}", seg(name)), Some(&encode_query(&q)?)).await.map(|_| ())
    }

    /// `POST /volumes/prune`: `{"VolumesDeleted": [...], "SpaceReclaimed": n}`.
    pub async fn prune_volumes(&self, filters: &query::Filters) -> Result<serde_json::Value> {
        let q = query::FiltersOnly { filters: filters.clone() };
        self.call_json(Method::POST, "/volumes/prune", Some(&encode_query(&q)?), None).await
    }

    /// `POST /containers/prune`: `{"ContainersDeleted": [...], "SpaceReclaimed": n}`.
    pub async fn prune_containers(&self, filters: &query::Filters) -> Result<serde_json::Value> {
        let q = query::FiltersOnly { filters: filters.clone() };
        self.call_json(Method::POST, "/containers/prune", Some(&encode_query(&q)?), None).await
    }

    /// `POST /images/prune`: `{"ImagesDeleted": [...], "SpaceReclaimed": n}`.
    pub async fn prune_images(&self, filters: &query::Filters) -> Result<serde_json::Value> {
        let q = query::FiltersOnly { filters: filters.clone() };
        self.call_json(Method::POST, "/images/prune", Some(&encode_query(&q)?), None).await
    }

    /// `POST /commit`: `{"Id": "sha256:…"}`.
    pub async fn commit(
        &self,
        q: &query::Commit,
        config: Option<&crate::models::ContainerConfig>,
    ) -> Result<serde_json::Value> {
        let body = match config {
            Some(c) => serde_json::to_vec(c).map_err(|e| ClientError::Request(e.to_string()))?,
            None => Vec::new(),
        };
        let mut req = self.build(Method::POST, "/commit", Some(&encode_query(q)?), full_body(body))?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        let resp = check(self.send(req, false).await?).await?;
        let bytes = http_body_util::BodyExt::collect(resp.into_body()).await?.to_bytes();
        decode(&bytes, "commit")
    }
}

//! Image endpoints: create (pull, import), list, inspect, remove, tag, history.

use bytes::Bytes;
use hyper::{Method, header};

use super::{Body, Client, JsonStream, Result, check, empty_body, encode_query, seg};
use crate::models::{ImageDeleteResponseItem, ImageHistoryResponseItem, ImageInspect, ImageSummary};
use crate::query;

impl Client {
    /// `POST /images/create` (pull with `fromImage`, import with `fromSrc=-` and a body).
    pub async fn create_image(&self, q: &query::CreateImage, body: Option<Body>) -> Result<JsonStream> {
        let mut req =
            self.build(Method::POST, "/images/create", Some(&encode_query(q)?), body.unwrap_or_else(empty_body))?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-tar"));
        let resp = check(self.send(req, false).await?).await?;
        Ok(JsonStream::new(resp.into_body()))
    }

    /// Pulls `image` (`fromImage`, optional `tag`).
    pub async fn pull_image(&self, image: &str, tag: Option<&str>, platform: Option<&str>) -> Result<JsonStream> {
        let q = query::CreateImage {
            from_image: Some(image.to_owned()),
            tag: tag.map(str::to_owned),
            platform: platform.map(str::to_owned),
            ..Default::default()
        };
        self.create_image(&q, None).await
    }

    /// Imports a rootfs tarball streamed from `body` (`fromSrc=-`).
    pub async fn import_image(&self, q: &query::CreateImage, body: Body) -> Result<JsonStream> {
        let mut q = q.clone();
        if q.from_src.is_none() {
            q.from_src = Some("-".to_owned());
        }
        self.create_image(&q, Some(body)).await
    }

    /// `GET /images/json`.
    pub async fn list_images(&self, q: &query::ListImages) -> Result<Vec<ImageSummary>> {
        self.call_json(Method::GET, "/images/json", Some(&encode_query(q)?), None).await
    }

    /// `GET /images/{name}/json`, typed.
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInspect> {
        self.call_json(Method::GET, &format!("/images/{}/json", seg(name)), None, None).await
    }

    /// `GET /images/{name}/json`, the daemon's bytes untouched.
    pub async fn inspect_image_raw(&self, name: &str) -> Result<Bytes> {
        self.call_raw(Method::GET, &format!("/images/{}/json", seg(name)), None).await
    }

    /// `DELETE /images/{name}`.
    pub async fn remove_image(&self, name: &str, q: &query::RemoveImage) -> Result<Vec<ImageDeleteResponseItem>> {
        self.call_json(Method::DELETE, &format!("/images/{}", seg(name)), Some(&encode_query(q)?), None).await
    }

    /// `POST /images/{name}/tag`.
    pub async fn tag_image(&self, name: &str, q: &query::TagImage) -> Result<()> {
        self.call_raw(Method::POST, &format!("/images/{}/tag", seg(name)), Some(&encode_query(q)?)).await.map(|_| ())
    }

    /// `GET /images/{name}/history`.
    pub async fn image_history(&self, name: &str) -> Result<Vec<ImageHistoryResponseItem>> {
        self.call_json(Method::GET, &format!("/images/{}/history", seg(name)), None, None).await
    }
}

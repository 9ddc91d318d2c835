//! `/images/…`: list, pull or import (`/images/create`), and the calls on one image —
//! inspect, history, tag, push, remove. Image names may contain slashes, so one wildcard
//! route takes `/images/{name}/{op}` and [`ImageCall::decode`] tells the calls apart.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_api::models::ImageDeleteResponseItem;
use berth_api::query;

use super::body::body_reader;
use super::reply::{self, ApiResult, Path, Query, json, json_lines};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::views;

/// The routes of this resource.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/{*rest}", get(image_call).post(image_call).delete(image_call))
}

/// `POST /images/create`, decoded: a pull when `fromImage` is given, else an import.
#[derive(Debug, PartialEq)]
pub enum CreateImageRequest {
    /// Pull `from_image` (with `tag`, which may be a digest).
    Pull {
        /// The image to pull.
        from_image: String,
        /// Its tag or digest, if given apart from the name.
        tag: Option<String>,
    },
    /// Import the request body as a rootfs tarball.
    Import(query::CreateImage),
}

impl CreateImageRequest {
    /// Decodes the query (`changes` may repeat).
    pub fn decode(q: Option<&str>) -> Result<CreateImageRequest> {
        let q: query::CreateImage = reply::query(q)?;
        Ok(match q.from_image.clone().filter(|f| !f.is_empty()) {
            Some(from_image) => CreateImageRequest::Pull { from_image, tag: q.tag },
            None => CreateImageRequest::Import(q),
        })
    }
}

/// A call on one image, decoded from the method, the path after `/images/` and the query.
#[derive(Debug, PartialEq)]
pub enum ImageCall {
    /// `GET /images/{name}/json`.
    Inspect(String),
    /// `GET /images/{name}/history`.
    History(String),
    /// `POST /images/{name}/tag`.
    Tag {
        /// The image.
        name: String,
        /// The new reference's repository and tag.
        to: query::TagImage,
    },
    /// `POST /images/{name}/push`.
    Push(String),
    /// `GET /images/{name}/get`: an archive of one image.
    Save(String),
    /// `DELETE /images/{name}`.
    Remove {
        /// The image.
        name: String,
        /// Its options.
        opts: query::RemoveImage,
    },
}

impl ImageCall {
    /// Decodes a request; a path no call serves is Docker's `page not found`.
    pub fn decode(method: &Method, rest: &str, q: Option<&str>) -> Result<ImageCall> {
        if *method == Method::DELETE {
            return Ok(ImageCall::Remove { name: rest.to_owned(), opts: reply::query(q)? });
        }
        let (name, op) = rest.rsplit_once('/').filter(|(n, _)| !n.is_empty()).ok_or(Error::PageNotFound)?;
        let name = name.to_owned();
        match (method.as_str(), op) {
            ("GET", "json") => Ok(ImageCall::Inspect(name)),
            ("GET", "history") => Ok(ImageCall::History(name)),
            ("POST", "tag") => Ok(ImageCall::Tag { name, to: reply::query(q)? }),
            ("POST", "push") => Ok(ImageCall::Push(name)),
            ("GET", "get") => Ok(ImageCall::Save(name)),
            _ => Err(Error::PageNotFound),
        }
    }
}

async fn list(State(e): State<Arc<Engine>>, Query(q): Query<query::ListImages>) -> ApiResult<Response> {
    let rows: Vec<_> = e.image_usage(&q.filters).await?.iter().map(views::image_usage_summary).collect();
    Ok(json(StatusCode::OK, &rows))
}

async fn create(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    match CreateImageRequest::decode(req.uri().query())? {
        CreateImageRequest::Pull { .. } => super::distribution::pull(e, req).await,
        CreateImageRequest::Import(q) => {
            let img = e.import_image(Box::new(body_reader(req.into_body())), q).await?;
            Ok(json_lines(&[berth_api::JsonMessage { status: Some(img.id.to_string()), ..Default::default() }]))
        }
    }
}

async fn image_call(State(e): State<Arc<Engine>>, Path(rest): Path<String>, req: Request) -> ApiResult<Response> {
    match ImageCall::decode(req.method(), &rest, req.uri().query())? {
        ImageCall::Inspect(name) => {
            let inspect = views::image_inspect(&e.image(&name).await?);
            Ok(json(StatusCode::OK, &with_legacy_fields(inspect, &super::RequestVersion::of(&req))))
        }
        ImageCall::History(name) => {
            let h: Vec<_> = e.image_history(&name).await?.iter().map(views::history_item).collect();
            Ok(json(StatusCode::OK, &h))
        }
        ImageCall::Tag { name, to } => {
            e.tag_image(&name, &to.repo, to.tag.as_deref()).await?;
            Ok(StatusCode::CREATED.into_response())
        }
        ImageCall::Save(name) => super::archive::save_names(&e, vec![name]).await,
        ImageCall::Push(name) => super::distribution::push(e, name, req).await,
        ImageCall::Remove { name, opts } => {
            let items: Vec<ImageDeleteResponseItem> = e
                .remove_image(&name, opts.force, opts.noprune)
                .await?
                .into_iter()
                .map(|i| match i {
                    berth_image::DeleteItem::Untagged(s) => {
                        ImageDeleteResponseItem { untagged: Some(s), deleted: None }
                    }
                    berth_image::DeleteItem::Deleted(s) => ImageDeleteResponseItem { untagged: None, deleted: Some(s) },
                })
                .collect();
            Ok(json(StatusCode::OK, &items))
        }
    }
}

/// Image inspect as the API version asked reads it: moby adds `VirtualSize` below 1.44 and
/// `Container` and `ContainerConfig` below 1.45 (docker-compose 1.29 reads
/// `ContainerConfig.Volumes` of every service image when it recreates a container).
/// berth records no build container, so both are what Docker shows for an image BuildKit
/// made: an empty id and an empty container config.
fn with_legacy_fields(inspect: berth_api::models::ImageInspect, version: &super::RequestVersion) -> serde_json::Value {
    let mut v = serde_json::to_value(&inspect).unwrap_or_default();
    let Some(obj) = v.as_object_mut() else { return v };
    if version.before("1.44") {
        obj.insert("VirtualSize".into(), inspect.size.unwrap_or_default().into());
    }
    if version.before("1.45") {
        obj.insert("Container".into(), "".into());
        obj.insert(
            "ContainerConfig".into(),
            serde_json::json!({
                "Hostname": "", "Domainname": "", "User": "",
                "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
                "Tty": false, "OpenStdin": false, "StdinOnce": false,
                "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
                "Entrypoint": null, "OnBuild": null, "Labels": null
            }),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_base::ErrorKind;

    #[test]
    fn old_api_versions_get_moby_legacy_image_fields() {
        let inspect = berth_api::models::ImageInspect { size: Some(42), ..Default::default() };
        let v = with_legacy_fields(inspect.clone(), &super::super::RequestVersion("1.41".into()));
        assert_eq!(v["VirtualSize"], 42);
        assert_eq!(v["Container"], "");
        assert!(v["ContainerConfig"].is_object());
        assert!(v["ContainerConfig"]["Volumes"].is_null());
        let v = with_legacy_fields(inspect.clone(), &super::super::RequestVersion("1.44".into()));
        assert!(v.get("VirtualSize").is_none());
        assert!(v["ContainerConfig"].is_object());
        let v = with_legacy_fields(inspect, &super::super::RequestVersion("1.45".into()));
        assert!(v.get("ContainerConfig").is_none() && v.get("Container").is_none());
        assert_eq!(v["Size"], 42);
    }

    #[test]
    fn create_is_a_pull_or_an_import() {
        assert_eq!(
            CreateImageRequest::decode(Some("fromImage=busybox&tag=1.36")).unwrap(),
            CreateImageRequest::Pull { from_image: "busybox".into(), tag: Some("1.36".into()) }
        );
        let CreateImageRequest::Import(q) = CreateImageRequest::decode(Some(
            "fromSrc=-&repo=mine&tag=v1&message=hi&changes=ENV+K%3DV&changes=CMD+%5B%22sh%22%5D",
        ))
        .unwrap() else {
            panic!("an import")
        };
        assert_eq!(q.changes, ["ENV K=V", "CMD [\"sh\"]"]);
        assert_eq!((q.repo.as_deref(), q.tag.as_deref(), q.message.as_deref()), (Some("mine"), Some("v1"), Some("hi")));
        // A single `changes` is a list of one, as the docker CLI sends it.
        let CreateImageRequest::Import(q) = CreateImageRequest::decode(Some("fromSrc=-&changes=ENV+K%3DV")).unwrap()
        else {
            panic!("an import")
        };
        assert_eq!(q.changes, ["ENV K=V"]);
    }

    #[test]
    fn calls_on_one_image() {
        let get = Method::GET;
        assert_eq!(ImageCall::decode(&get, "busybox/json", None).unwrap(), ImageCall::Inspect("busybox".into()));
        assert_eq!(
            ImageCall::decode(&get, "localhost:5000/team/app:1/history", None).unwrap(),
            ImageCall::History("localhost:5000/team/app:1".into())
        );
        let ImageCall::Tag { name, to } =
            ImageCall::decode(&Method::POST, "busybox/tag", Some("repo=me%2Fbb&tag=x")).unwrap()
        else {
            panic!("a tag")
        };
        assert_eq!((name.as_str(), to.repo.as_str(), to.tag.as_deref()), ("busybox", "me/bb", Some("x")));
        assert_eq!(ImageCall::decode(&Method::POST, "a/b/push", None).unwrap(), ImageCall::Push("a/b".into()));
        let ImageCall::Remove { name, opts } =
            ImageCall::decode(&Method::DELETE, "team/app:1", Some("force=1&noprune=0")).unwrap()
        else {
            panic!("a remove")
        };
        assert_eq!(name, "team/app:1");
        assert!(opts.force && !opts.noprune);
    }

    #[test]
    fn unknown_image_paths_are_page_not_found() {
        for (m, p) in [
            (Method::GET, "busybox"),
            (Method::GET, "busybox/nope"),
            (Method::GET, "/json"),
            (Method::POST, "busybox"),
            (Method::POST, "busybox/json"),
            (Method::GET, "busybox/tag"),
        ] {
            let e = ImageCall::decode(&m, p, None).unwrap_err();
            assert!(matches!(e, Error::PageNotFound), "{m} {p}: {e}");
            assert_eq!(e.kind(), ErrorKind::NotFound);
            assert_eq!(e.to_string(), "page not found");
        }
        let e = ImageCall::decode(&Method::DELETE, "x", Some("force=perhaps")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}

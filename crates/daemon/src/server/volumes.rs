//! `/volumes/…`: list (with filters and `Warnings`), create, inspect, remove (with
//! `force`) and prune (with `SpaceReclaimed`). Requests decode into typed calls by pure
//! functions (tested below); each handler makes one engine call and encodes its answer in
//! moby's shapes.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_api::models::VolumeCreateRequest;
use berth_api::query;
use serde_json::{Value, json};

use super::RequestVersion;
use super::reply::{self, ApiResult, Path, Query};
use crate::engine::{Engine, VolumeView};
use crate::error::Result;

/// The routes of this resource.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

/// A volume in moby's JSON shape (`Labels` and `Options` echo what was given, `null` when
/// nothing was; `UsageData` only for `system df`).
pub fn volume_json(v: &VolumeView) -> Value {
    let mut o = json!({
        "CreatedAt": v.record.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "Driver": v.record.driver,
        "Labels": v.record.labels,
        "Mountpoint": v.mountpoint.display().to_string(),
        "Name": v.record.name,
        "Options": v.record.options,
        "Scope": "local",
    });
    if let Some(size) = v.size {
        o["UsageData"] = json!({ "Size": size, "RefCount": v.refs.len() });
    }
    o
}

/// `POST /volumes/prune`, decoded: the filters, and whether named volumes go too. Before
/// API 1.42 moby prunes every unused volume; from 1.42 only anonymous ones unless the
/// `all` filter says otherwise. berth speaks 1.41 but lets an explicit `all` filter decide
/// at any version: docker's clients never send one below 1.42 (so they get dockerd's
/// answer), while berth's CLI sends `all=false` without `-a` and gets Docker 23's.
#[derive(Debug, PartialEq)]
pub struct PruneRequest {
    /// `label`, `label!`, `all`.
    pub filters: query::Filters,
    /// Named volumes too (an old client's request).
    pub all: bool,
}

impl PruneRequest {
    /// Decodes the query for a request of API `version`.
    pub fn decode(q: Option<&str>, version: &RequestVersion) -> Result<PruneRequest> {
        let f: query::FiltersOnly = reply::query(q)?;
        let all = version.before("1.42") && f.filters.get("all").is_empty();
        Ok(PruneRequest { filters: f.filters, all })
    }
}

async fn list(State(e): State<Arc<Engine>>, Query(q): Query<query::FiltersOnly>) -> ApiResult<Response> {
    let vols: Vec<Value> = e.list_volumes(&q.filters).await?.iter().map(volume_json).collect();
    Ok(reply::json(StatusCode::OK, &json!({ "Volumes": vols, "Warnings": null })))
}

async fn create(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let body = reply::read_body(req.into_body()).await?;
    let r: VolumeCreateRequest = reply::json_body(&body)?;
    let v = e.create_volume(r).await?;
    Ok(reply::json(StatusCode::CREATED, &volume_json(&v)))
}

async fn inspect(State(e): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Response> {
    Ok(reply::json(StatusCode::OK, &volume_json(&e.inspect_volume(&name)?)))
}

async fn remove(
    State(e): State<Arc<Engine>>,
    Path(name): Path<String>,
    Query(q): Query<query::RemoveVolume>,
) -> ApiResult<Response> {
    e.remove_volume(&name, q.force).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let r = PruneRequest::decode(req.uri().query(), &RequestVersion::of(&req))?;
    let report = e.prune_volumes(r.filters, r.all).await?;
    Ok(reply::json(StatusCode::OK, &json!({ "VolumesDeleted": report.deleted, "SpaceReclaimed": report.reclaimed })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_follows_the_api_version() {
        let old = RequestVersion("1.41".to_owned());
        let new = RequestVersion("1.43".to_owned());
        let q = Some("filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D");
        let r = PruneRequest::decode(q, &old).unwrap();
        assert!(r.all, "before 1.42 every unused volume goes");
        assert_eq!(r.filters.get("label"), ["a=b"]);
        assert!(!PruneRequest::decode(None, &new).unwrap().all);
        let r = PruneRequest::decode(Some("filters=%7B%22all%22%3A%5B%22false%22%5D%7D"), &old).unwrap();
        assert!(!r.all, "an explicit all filter decides");
        assert_eq!(r.filters.get("all"), ["false"]);
        assert!(PruneRequest::decode(Some("filters=nope"), &new).is_err());
    }

    #[test]
    fn volumes_in_mobys_shape() {
        let v = VolumeView {
            record: crate::engine::volumes::VolumeRecord {
                name: "data".into(),
                driver: "local".into(),
                labels: None,
                options: Some(Default::default()),
                created: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            },
            mountpoint: "/var/lib/berth/volumes/data/_data".into(),
            refs: vec!["c1".into()],
            size: None,
        };
        let j = volume_json(&v);
        assert_eq!(j["CreatedAt"], "2023-11-14T22:13:20Z");
        assert_eq!(j["Labels"], Value::Null);
        assert_eq!(j["Options"], json!({}));
        assert_eq!(j["Scope"], "local");
        assert!(j.get("UsageData").is_none());
        let j = volume_json(&VolumeView { size: Some(5), ..v });
        assert_eq!(j["UsageData"], json!({"Size": 5, "RefCount": 1}));
    }
}

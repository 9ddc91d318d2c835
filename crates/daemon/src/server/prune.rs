//! `POST /commit`, `POST /containers/prune` and `POST /images/prune`: requests decode into
//! typed calls (tested below), one engine call each, answers in moby's shapes with the
//! space reclaimed.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use berth_api::models::ContainerConfig;
use berth_api::query;
use serde_json::json;

use super::reply::{self, ApiResult, Query};
use crate::engine::{CommitRequest, Engine};
use crate::error::{Error, Result};

/// The routes of this file.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/commit", post(commit))
        .route("/containers/prune", post(prune_containers))
        .route("/images/prune", post(prune_images))
}

/// Decodes `POST /commit`: the query and an optional container config body.
pub fn decode_commit(q: Option<&str>, body: &[u8]) -> Result<CommitRequest> {
    let q: query::Commit = reply::query(q)?;
    if q.container.is_empty() {
        return Err(Error::NoSuchContainer(String::new()));
    }
    let reference = match (q.repo.filter(|r| !r.is_empty()), q.tag.filter(|t| !t.is_empty())) {
        (None, None) => None,
        (None, Some(_)) => return Err(Error::InvalidArgument("tag is specified without a repository".to_owned())),
        (Some(r), None) => Some(r),
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
    };
    let config: Option<ContainerConfig> =
        if body.iter().all(u8::is_ascii_whitespace) { None } else { Some(reply::json_body(body)?) };
    Ok(CommitRequest {
        container: q.container,
        reference,
        comment: q.comment,
        author: q.author,
        pause: q.pause,
        changes: q.changes,
        config,
    })
}

async fn commit(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let q = req.uri().query().map(str::to_owned);
    let body = reply::read_body(req.into_body()).await?;
    let r = decode_commit(q.as_deref(), &body)?;
    let id = e.commit_container(r).await?;
    Ok(reply::json(StatusCode::CREATED, &json!({ "Id": id.to_string() })))
}

async fn prune_containers(State(e): State<Arc<Engine>>, Query(q): Query<query::FiltersOnly>) -> ApiResult<Response> {
    let r = e.prune_containers(&q.filters).await?;
    Ok(reply::json(StatusCode::OK, &json!({ "ContainersDeleted": r.deleted, "SpaceReclaimed": r.reclaimed })))
}

async fn prune_images(State(e): State<Arc<Engine>>, Query(q): Query<query::FiltersOnly>) -> ApiResult<Response> {
    let r = e.prune_images(&q.filters).await?;
    let items: Vec<serde_json::Value> = r
        .deleted
        .iter()
        .map(|i| match i {
            berth_image::DeleteItem::Untagged(s) => json!({ "Untagged": s }),
            berth_image::DeleteItem::Deleted(s) => json!({ "Deleted": s }),
        })
        .collect();
    Ok(reply::json(StatusCode::OK, &json!({ "ImagesDeleted": items, "SpaceReclaimed": r.reclaimed })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_decodes_query_and_body() {
        let r = decode_commit(
            Some("container=web&repo=me%2Fapp&tag=v1&comment=hi&author=me&pause=0&changes=ENV+A%3D1&changes=CMD+%5B%22sh%22%5D"),
            br#"{"Cmd":["cat"]}"#,
        )
        .unwrap();
        assert_eq!(r.container, "web");
        assert_eq!(r.reference.as_deref(), Some("me/app:v1"));
        assert!(!r.pause);
        assert_eq!(r.changes, ["ENV A=1", "CMD [\"sh\"]"]);
        assert_eq!(r.config.unwrap().cmd.unwrap(), ["cat"]);
        let r = decode_commit(Some("container=web"), b"").unwrap();
        assert!(r.pause && r.config.is_none() && r.reference.is_none(), "pause is Docker's default");
        assert!(decode_commit(Some("container=web&tag=v1"), b"").is_err());
        assert!(decode_commit(Some("container=web"), b"{nope").is_err());
    }
}

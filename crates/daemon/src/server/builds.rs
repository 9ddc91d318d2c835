//! berth's build history routes: `GET /berth/builds` (the builds the daemon ran, newest
//! first) and `GET /berth/builds/{id}` (one of them with its steps). The engine's
//! `build_history` module records them; Docker serves the same facts through BuildKit's
//! history API, which berth's BuildKit service does not implement.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use berth_api::client::builds::BERTH_BUILDS_PATH;

use super::reply::{ApiResult, Path, json};
use crate::engine::Engine;

/// The routes of this resource.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new().route(BERTH_BUILDS_PATH, get(list)).route(&format!("{BERTH_BUILDS_PATH}/{{id}}"), get(inspect))
}

/// `GET /berth/builds`.
async fn list(State(e): State<Arc<Engine>>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &e.builds().await?))
}

/// `GET /berth/builds/{id}`.
async fn inspect(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &e.build_record(&id).await?))
}

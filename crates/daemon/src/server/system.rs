//! The daemon as a whole: `/_ping`, `/version`, `/info`, `/system/df`, berth's
//! `/berth/system/check`, and the swarm
//! endpoints, which answer as a dockerd outside a swarm does (clients call them while
//! cleaning up, and expect dockerd's 503 and wording).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post};

use super::reply::{ApiError, ApiResult, json};
use crate::engine::Engine;
use crate::error::Error;
use crate::views;

/// The routes of this resource.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/system/df", get(system_df))
        .route(berth_api::check::SYSTEM_CHECK_PATH, get(system_check))
        .merge(swarm_routes())
}

async fn ping(method: Method) -> Response {
    let mut r = if method == Method::HEAD { Response::new(Body::empty()) } else { Response::new(Body::from("OK")) };
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(berth_api::API_VERSION));
    // BuildKit's API is served (`/session`, `/grpc`, `/build?version=2`): clients pick it.
    h.insert("Builder-Version", HeaderValue::from_static("2"));
    h.insert("OSType", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

async fn version(State(e): State<Arc<Engine>>) -> Response {
    json(StatusCode::OK, &crate::system::version(&e))
}

async fn info(State(e): State<Arc<Engine>>) -> Response {
    json(StatusCode::OK, &crate::system::info(&e).await)
}

async fn system_df(State(e): State<Arc<Engine>>) -> ApiResult<Response> {
    let du = e.disk_usage().await?;
    let mut v = views::disk_usage(&du, chrono::Utc::now());
    // Volumes with their sizes and users, and each container's writable layer.
    let vols: Vec<_> = e.volume_usage().await?.iter().map(super::volumes::volume_json).collect();
    v["Volumes"] = serde_json::json!(vols);
    if let Some(cs) = v["Containers"].as_array_mut() {
        for c in cs {
            if let Some(id) = c["Id"].as_str().map(str::to_owned) {
                c["SizeRw"] = serde_json::json!(e.container_size(&id).await);
            }
        }
    }
    Ok(json(StatusCode::OK, &v))
}

async fn system_check(State(e): State<Arc<Engine>>) -> ApiResult<Response> {
    let findings = e.system_check().await?;
    let body = berth_api::check::SystemCheck {
        data_root: e.cfg.data_root.display().to_string(),
        findings: findings
            .into_iter()
            .map(|f| berth_api::check::CheckFinding {
                kind: f.kind.as_str().to_owned(),
                path: f.path.display().to_string(),
                detail: f.detail,
            })
            .collect(),
    };
    Ok(json(StatusCode::OK, &body))
}

/// How a swarm endpoint answers on a daemon that is never part of a swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmAnswer {
    /// dockerd's `errNoManager`: every call that needs a manager (inspect, update,
    /// unlock, and all of nodes, services, tasks, secrets and configs).
    NotManager,
    /// dockerd's `errNoSwarm`: leaving a swarm the node is not part of.
    NotInSwarm,
}

impl SwarmAnswer {
    fn error(self) -> Error {
        match self {
            SwarmAnswer::NotManager => Error::NotSwarmManager,
            SwarmAnswer::NotInSwarm => Error::NotInSwarm,
        }
    }
}

/// The swarm routes dockerd registers (api/server/router/swarm), each with its answer.
pub const SWARM_ROUTES: &[(&str, &str, SwarmAnswer)] = {
    use SwarmAnswer::{NotInSwarm, NotManager};
    &[
        ("GET", "/swarm", NotManager),
        ("POST", "/swarm/init", NotManager),
        ("POST", "/swarm/join", NotManager),
        ("POST", "/swarm/leave", NotInSwarm),
        ("GET", "/swarm/unlockkey", NotManager),
        ("POST", "/swarm/update", NotManager),
        ("POST", "/swarm/unlock", NotManager),
        ("GET", "/services", NotManager),
        ("POST", "/services/create", NotManager),
        ("GET", "/services/{id}", NotManager),
        ("POST", "/services/{id}/update", NotManager),
        ("DELETE", "/services/{id}", NotManager),
        ("GET", "/services/{id}/logs", NotManager),
        ("GET", "/nodes", NotManager),
        ("GET", "/nodes/{id}", NotManager),
        ("DELETE", "/nodes/{id}", NotManager),
        ("POST", "/nodes/{id}/update", NotManager),
        ("GET", "/tasks", NotManager),
        ("GET", "/tasks/{id}", NotManager),
        ("GET", "/tasks/{id}/logs", NotManager),
        ("GET", "/secrets", NotManager),
        ("POST", "/secrets/create", NotManager),
        ("GET", "/secrets/{id}", NotManager),
        ("DELETE", "/secrets/{id}", NotManager),
        ("POST", "/secrets/{id}/update", NotManager),
        ("GET", "/configs", NotManager),
        ("POST", "/configs/create", NotManager),
        ("GET", "/configs/{id}", NotManager),
        ("DELETE", "/configs/{id}", NotManager),
        ("POST", "/configs/{id}/update", NotManager),
    ]
};

fn swarm_routes() -> Router<Arc<Engine>> {
    let mut paths: Vec<(&str, MethodRouter<Arc<Engine>>)> = Vec::new();
    for &(method, path, answer) in SWARM_ROUTES {
        let handler = move || async move { ApiError(answer.error()) };
        let add = |r: MethodRouter<Arc<Engine>>| match method {
            "GET" => r.get(handler),
            "POST" => r.post(handler),
            _ => r.delete(handler),
        };
        match paths.iter_mut().find(|(p, _)| *p == path) {
            Some((_, r)) => *r = add(std::mem::take(r)),
            None => paths.push((
                path,
                match method {
                    "GET" => get(handler),
                    "POST" => post(handler),
                    _ => delete(handler),
                },
            )),
        }
    }
    paths.into_iter().fold(Router::new(), |router, (p, r)| router.route(p, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_answers_in_dockerds_words() {
        assert_eq!(
            SwarmAnswer::NotManager.error().to_string(),
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
        );
        assert_eq!(SwarmAnswer::NotInSwarm.error().to_string(), "This node is not part of a swarm");
        assert_eq!(super::super::reply::status_of(Error::NotSwarmManager.kind()), StatusCode::SERVICE_UNAVAILABLE);
        // Every path is registered once per method.
        let mut seen = std::collections::HashSet::new();
        for (m, p, _) in SWARM_ROUTES {
            assert!(seen.insert((m, p)), "{m} {p} twice");
            assert!(matches!(*m, "GET" | "POST" | "DELETE"), "{m}");
        }
        let _ = swarm_routes();
    }
}

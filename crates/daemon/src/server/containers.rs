//! `/containers/…`: create, list, inspect, the lifecycle verbs, wait, attach, resize, logs
//! and remove. Each request decodes into a typed call by a pure function (tested below
//! without a daemon); the handlers make one engine call and encode its answer.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use berth_api::models::{ContainerCreateBody, ContainerCreateResponse, ContainerWaitResponse};
use berth_api::query;
use bytes::Bytes;
use hyper_util::rt::TokioIo;

use super::reply::{self, ApiResult, Path, Query, json};
use crate::engine::{AttachStreams, Engine, LogOptions, WaitCondition};
use crate::error::{Error, Result};
use crate::views;

/// The routes of this resource.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}", delete(remove))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/update", post(update))
}

/// `POST /containers/create`, decoded.
#[derive(Debug)]
pub struct CreateRequest {
    /// The name asked for, if any.
    pub name: Option<String>,
    /// The container's configuration.
    pub body: ContainerCreateBody,
}

impl CreateRequest {
    /// Decodes the query and the JSON body (an empty body is an empty config).
    pub fn decode(query: Option<&str>, body: &[u8]) -> Result<CreateRequest> {
        let q: query::CreateContainer = reply::query(query)?;
        check_restart_policy_name(body, &["HostConfig", "RestartPolicy", "Name"])?;
        Ok(CreateRequest { name: q.name, body: reply::json_body(body)? })
    }
}

/// A restart policy name the API model does not know would fail as "invalid JSON"; dockerd
/// (20.10) answers `invalid restart policy '<name>'`, which clients show. `path` leads to
/// the name inside the body.
fn check_restart_policy_name(body: &[u8], path: &[&str]) -> Result<()> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return Ok(()) };
    let name = path.iter().try_fold(&v, |v, k| v.get(k)).and_then(|n| n.as_str());
    match name {
        None | Some("" | "no" | "always" | "unless-stopped" | "on-failure") => Ok(()),
        Some(other) => Err(Error::InvalidArgument(format!("invalid restart policy '{other}'"))),
    }
}

/// `GET /containers/{id}/logs`'s query as the engine takes it.
pub fn log_options(q: &query::Logs) -> Result<LogOptions> {
    let tail = match q.tail.as_deref() {
        None | Some("") | Some("all") => None,
        Some(t) => {
            Some(t.parse::<usize>().map_err(|_| Error::InvalidArgument(format!("invalid value for tail: {t}")))?)
        }
    };
    Ok(LogOptions {
        follow: q.follow,
        stdout: q.stdout,
        stderr: q.stderr,
        since: log_time(q.since.as_deref())?,
        until: log_time(q.until.as_deref())?,
        timestamps: q.timestamps,
        tail,
    })
}

/// A `since`/`until` value: unix seconds, possibly fractional; `0` or empty means unset.
fn log_time(s: Option<&str>) -> Result<Option<f64>> {
    match s.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => match s.parse::<f64>() {
            Ok(0.0) => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(Error::InvalidArgument(format!("invalid value for time: {s}"))),
        },
    }
}

/// `POST /containers/{id}/attach`'s query as the engine takes it.
pub fn attach_streams(q: &query::AttachContainer) -> Result<AttachStreams> {
    let detach_keys = q.detach_keys.clone().unwrap_or_default();
    if crate::engine::DetachKeys::parse(&detach_keys).is_err() {
        return Err(Error::InvalidArgument(format!("Invalid detach keys ({detach_keys}) provided")));
    }
    Ok(AttachStreams {
        stdin: q.stdin,
        stdout: q.stdout,
        stderr: q.stderr,
        logs: q.logs,
        stream: q.stream,
        detach_keys,
    })
}

async fn create(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let q = req.uri().query().map(str::to_owned);
    let body = reply::read_body(req.into_body()).await?;
    let r = CreateRequest::decode(q.as_deref(), &body)?;
    let c = e.create_container(r.name, r.body).await?;
    Ok(json(StatusCode::CREATED, &ContainerCreateResponse { id: c.id, warnings: c.warnings }))
}

async fn list(State(e): State<Arc<Engine>>, Query(q): Query<query::ListContainers>) -> ApiResult<Response> {
    let now = chrono::Utc::now();
    let rows = e
        .list_containers(&q, |r| {
            let mut row = views::container_summary(r, now);
            // `Up 3 minutes (healthy)`, as dockerd writes it.
            if let Some(st) = row.status.as_mut() {
                st.push_str(e.health_suffix(r));
            }
            row
        })
        .await?;
    Ok(json(StatusCode::OK, &rows))
}

async fn inspect(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    version: Option<axum::Extension<super::RequestVersion>>,
) -> ApiResult<Response> {
    let rec = e.get(&id)?.snapshot();
    let mut v = views::container_inspect(&rec, &e.paths(&rec.id));
    let execs = e.exec_ids(&rec.id);
    v.exec_ids = (!execs.is_empty()).then_some(execs);
    if let Some(st) = v.state.as_mut() {
        st.health = e.health_of(&rec);
    }
    let mut v = views::inspect_to_json(&v, &rec);
    if let (Some(ns), serde_json::Value::Object(extra)) =
        (v.get_mut("NetworkSettings"), views::legacy_network_fields(&rec))
        && let Some(ns) = ns.as_object_mut()
    {
        ns.extend(extra);
    }
    let version = version.map_or_else(|| super::RequestVersion(berth_api::API_VERSION.to_owned()), |v| v.0);
    if version.before("1.45") {
        legacy_aliases(&mut v, &rec);
    }
    Ok(json(StatusCode::OK, &v))
}

/// Below API 1.45 moby lists the container's short id and hostname among its aliases on
/// every user-defined network (docker-compose 1.29 and docker 20.10 clients read them so).
fn legacy_aliases(v: &mut serde_json::Value, rec: &crate::record::ContainerRecord) {
    let short: String = rec.id.chars().take(12).collect();
    let hostname = rec.config.hostname.clone().unwrap_or_else(|| short.clone());
    let Some(nets) = v.pointer_mut("/NetworkSettings/Networks").and_then(|n| n.as_object_mut()) else { return };
    for (name, ep) in nets.iter_mut() {
        if matches!(name.as_str(), "bridge" | "host" | "none") || name.starts_with("container:") {
            continue;
        }
        let mut aliases: Vec<String> = ep
            .get("Aliases")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        for extra in [&short, &hostname] {
            if !aliases.contains(extra) {
                aliases.push(extra.clone());
            }
        }
        ep["Aliases"] = aliases.into();
    }
}

async fn start(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    e.start_container(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stop(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::StopContainer>,
) -> ApiResult<StatusCode> {
    e.stop_container(&id, q.t, q.signal.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::StopContainer>,
) -> ApiResult<StatusCode> {
    e.restart_container(&id, q.t, q.signal.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::KillContainer>,
) -> ApiResult<StatusCode> {
    e.kill_container(&id, q.signal.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Headers go out at once (clients such as the docker CLI block until they arrive, then
/// start the container); the body follows when the condition is met.
async fn wait(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::WaitContainer>,
) -> ApiResult<Response> {
    let cond = WaitCondition::parse(q.condition.as_deref())?;
    let fut = e.wait_container(&id, cond)?;
    let stream = futures_util::stream::once(async move {
        let code = fut.await;
        let body = serde_json::to_vec(&ContainerWaitResponse { status_code: code, error: None }).unwrap_or_default();
        Ok::<_, Infallible>(Bytes::from(body))
    });
    Ok(reply::streaming("application/json", stream))
}

async fn attach(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::AttachContainer>,
    mut req: Request,
) -> ApiResult<Response> {
    let c = e.get(&id)?;
    let tty = c.snapshot().tty();
    let upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let streams = attach_streams(&q)?;
    let wants_upgrade = req.headers().get(header::UPGRADE).is_some();
    let Some(upgrade) = upgrade.filter(|_| wants_upgrade) else {
        return Err(Error::InvalidArgument(
            "attach needs a connection upgrade (Connection: Upgrade, Upgrade: tcp)".to_owned(),
        )
        .into());
    };
    // Kept before the 101 goes out: the client may send its start on another connection
    // the moment it reads the 101, before this connection's upgrade has resolved.
    let slot = e.reserve_attach(&c, &streams);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(up) => e.attach(c, streams, Box::new(TokioIo::new(up)), slot).await,
            Err(err) => tracing::debug!(error = %err, "attach upgrade failed"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, reply::output_content_type(tty))
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

async fn resize(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::Resize>,
) -> ApiResult<StatusCode> {
    e.resize(&id, q.h.unwrap_or(0), q.w.unwrap_or(0)).await?;
    Ok(StatusCode::OK)
}

async fn logs(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::Logs>,
) -> ApiResult<Response> {
    let (tty, rx) = e.logs(&id, log_options(&q)?).await?;
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx)) });
    Ok(reply::streaming(reply::output_content_type(tty), stream))
}

async fn remove(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::RemoveContainer>,
) -> ApiResult<StatusCode> {
    e.remove_container(&id, q.force, q.v).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    e.pause_container(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    e.unpause_container(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::RenameContainer>,
) -> ApiResult<StatusCode> {
    e.rename_container(&id, &q.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn top(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::TopContainer>,
) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &e.top(&id, q.ps_args.as_deref()).await?))
}

/// One JSON document per sample, newline-terminated (as dockerd's encoder writes them).
async fn stats(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::Stats>,
) -> ApiResult<Response> {
    let rx = e.stats(&id, q.stream, q.one_shot).await?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        let mut b = serde_json::to_vec(&v).unwrap_or_default();
        b.push(b'\n');
        Some((Ok::<_, Infallible>(Bytes::from(b)), rx))
    });
    Ok(reply::streaming("application/json", stream))
}

async fn update(State(e): State<Arc<Engine>>, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let body = reply::read_body(req.into_body()).await?;
    check_restart_policy_name(&body, &["RestartPolicy", "Name"])?;
    let u: crate::engine::UpdateRequest = reply::json_body(&body)?;
    let warnings = e.update_container(&id, u).await?;
    Ok(json(StatusCode::OK, &berth_api::models::ContainerUpdateResponse { warnings: Some(warnings) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_base::ErrorKind;

    #[test]
    fn create_decodes_name_and_body() {
        let r =
            CreateRequest::decode(Some("name=web&platform=linux%2Famd64"), br#"{"Image":"busybox","Cmd":["true"]}"#)
                .unwrap();
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.body.image.as_deref(), Some("busybox"));
        assert_eq!(r.body.cmd, Some(vec!["true".to_owned()]));
        let r = CreateRequest::decode(None, b"").unwrap();
        assert!(r.name.is_none() && r.body.image.is_none());
    }

    #[test]
    fn create_refuses_bad_json_in_words() {
        let e = CreateRequest::decode(Some("name=web"), b"{\"Image\":").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().starts_with("invalid JSON: "), "{e}");
        let e = CreateRequest::decode(None, br#"{"HostConfig":{"Mounts":[{"Type":"volumes"}]}}"#).unwrap_err();
        assert!(e.to_string().starts_with("invalid JSON: unknown variant `volumes`"), "{e}");
        assert!(!e.to_string().contains("Some("), "{e}");
    }

    #[test]
    fn lifecycle_queries() {
        let q: query::StopContainer = reply::query(Some("t=5&signal=SIGINT")).unwrap();
        assert_eq!((q.t, q.signal.as_deref()), (Some(5), Some("SIGINT")));
        let e = reply::query::<query::StopContainer>(Some("t=soon")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.to_string(), "invalid value for t: \"soon\" is not a number");
        let q: query::KillContainer = reply::query(None).unwrap();
        assert!(q.signal.is_none());
        let q: query::WaitContainer = reply::query(Some("condition=next-exit")).unwrap();
        assert!(matches!(WaitCondition::parse(q.condition.as_deref()), Ok(WaitCondition::NextExit)));
        assert!(WaitCondition::parse(Some("later")).is_err());
        let q: query::Resize = reply::query(Some("h=24&w=80")).unwrap();
        assert_eq!((q.h, q.w), (Some(24), Some(80)));
        assert!(reply::query::<query::Resize>(Some("h=-1")).is_err());
        let q: query::RemoveContainer = reply::query(Some("force=1&v=0")).unwrap();
        assert!(q.force && !q.v);
        let q: query::ListContainers =
            reply::query(Some("all=1&filters=%7B%22status%22%3A%5B%22exited%22%5D%7D")).unwrap();
        assert!(q.all);
        assert_eq!(q.filters.get("status"), ["exited"]);
    }

    #[test]
    fn unknown_restart_policies_are_named() {
        let e = CreateRequest::decode(None, br#"{"Image":"b","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#)
            .unwrap_err();
        assert_eq!(e.to_string(), "invalid restart policy 'sometimes'");
        assert!(
            check_restart_policy_name(br#"{"RestartPolicy":{"Name":"always"}}"#, &["RestartPolicy", "Name"]).is_ok()
        );
        assert!(check_restart_policy_name(br#"{"RestartPolicy":{"Name":"x"}}"#, &["RestartPolicy", "Name"]).is_err());
    }

    #[test]
    fn new_verbs_decode() {
        let q: query::RenameContainer = reply::query(Some("name=web2")).unwrap();
        assert_eq!(q.name, "web2");
        let q: query::TopContainer = reply::query(Some("ps_args=aux")).unwrap();
        assert_eq!(q.ps_args.as_deref(), Some("aux"));
        let q: query::Stats = reply::query(None).unwrap();
        assert!(q.stream && !q.one_shot);
        let q: query::Stats = reply::query(Some("stream=false&one-shot=true")).unwrap();
        assert!(!q.stream && q.one_shot);
        let u: crate::engine::UpdateRequest =
            reply::json_body(br#"{"Memory":33554432,"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3}}"#)
                .unwrap();
        assert_eq!(u.memory, Some(33554432));
        assert_eq!(u.restart_policy.unwrap().maximum_retry_count, Some(3));
    }

    #[test]
    fn logs_decode_tail_and_times() {
        let q: query::Logs = reply::query(Some("stdout=1&stderr=1&tail=10&since=1700000000.5&follow=1")).unwrap();
        let o = log_options(&q).unwrap();
        assert!(o.stdout && o.stderr && o.follow && !o.timestamps);
        assert_eq!(o.tail, Some(10));
        assert_eq!(o.since, Some(1_700_000_000.5));
        assert_eq!(o.until, None);
        let q: query::Logs = reply::query(Some("tail=all&since=0")).unwrap();
        let o = log_options(&q).unwrap();
        assert_eq!((o.tail, o.since), (None, None));
        let q: query::Logs = reply::query(Some("tail=some")).unwrap();
        assert_eq!(log_options(&q).unwrap_err().to_string(), "invalid value for tail: some");
        let q: query::Logs = reply::query(Some("until=yesterday")).unwrap();
        assert_eq!(log_options(&q).unwrap_err().to_string(), "invalid value for time: yesterday");
    }

    #[test]
    fn attach_streams_follow_the_query() {
        let q: query::AttachContainer = reply::query(Some("stream=1&stdin=1&stdout=1&stderr=0&logs=true")).unwrap();
        let s = attach_streams(&q).unwrap();
        assert!(s.stream && s.stdin && s.stdout && !s.stderr && s.logs);
        let q: query::AttachContainer = reply::query(Some("stream=1&detachKeys=ctrl-a,x")).unwrap();
        assert_eq!(attach_streams(&q).unwrap().detach_keys, "ctrl-a,x");
        let q: query::AttachContainer = reply::query(Some("detachKeys=ctrl-foo")).unwrap();
        assert_eq!(attach_streams(&q).unwrap_err().to_string(), "Invalid detach keys (ctrl-foo) provided");
    }
}

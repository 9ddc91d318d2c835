//! `POST /grpc`: BuildKit's control API (`moby.buildkit.v1.Control`) on the upgraded
//! connection, as docker compose and buildx's `docker` driver use it: `Solve` with the
//! `dockerfile.v0` frontend and the `moby`/`image` exporters runs berth's builder (the same
//! path as `/build?version=2`), `Status` streams its progress by build ref, and
//! `ListWorkers`, `Info`, `DiskUsage` and `Prune` describe and trim the build cache.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{self, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_api::query;
use hyper_util::rt::TokioExecutor;
use tonic::server::Grpc;
use tonic_prost::ProstCodec;

use super::build::{Sink, Trace};
use super::proto::{self, StatusResponse};
use super::session::Sessions;
use crate::engine::Engine;
use crate::error::Error;
use crate::server::reply::ApiResult;

const SERVICE: &str = "/moby.buildkit.v1.Control/";
const BRIDGE: &str = "/moby.buildkit.v1.frontend.LLBBridge/";
/// How long `Status` waits for the `Solve` of its ref to begin.
const STATUS_WAIT: Duration = Duration::from_secs(30);
/// The version berth's control API answers as: the BuildKit API level it follows.
const BUILDKIT_VERSION: &str = "v0.20.0";

/// Status streams of running solves, by ref: `Solve` puts one here, `Status` takes it
/// (the client calls both at once, in either order).
#[derive(Clone, Default)]
pub struct StatusBoard {
    open: Arc<Mutex<HashMap<String, tokio::sync::mpsc::Receiver<StatusResponse>>>>,
    added: Arc<tokio::sync::Notify>,
}

impl StatusBoard {
    fn put(&self, r: &str, rx: tokio::sync::mpsc::Receiver<StatusResponse>) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).insert(r.to_owned(), rx);
        self.added.notify_waiters();
    }

    async fn take(&self, r: &str) -> Option<tokio::sync::mpsc::Receiver<StatusResponse>> {
        let deadline = tokio::time::Instant::now() + STATUS_WAIT;
        loop {
            let added = self.added.notified();
            if let Some(rx) = self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(r) {
                return Some(rx);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return None;
            }
        }
    }
}

/// `POST /grpc`: answers 101 and serves the control API as HTTP/2 on the connection.
pub async fn grpc(State(e): State<Arc<Engine>>, mut req: Request) -> ApiResult<Response> {
    let upgrade = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("h2c") {
        return Err(Error::InvalidArgument(format!("grpc: unsupported upgrade protocol {upgrade:?}")).into());
    }
    let Some(sessions) = req.extensions().get::<Sessions>().cloned() else {
        return Err(Error::Internal("sessions are not set up".into()).into());
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(Error::InvalidArgument("grpc needs a connection upgrade".into()).into());
    };
    tokio::spawn(async move {
        let io = match on_upgrade.await {
            Ok(up) => up,
            Err(err) => return tracing::debug!(error = %err, "grpc upgrade failed"),
        };
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (e, sessions) = (e.clone(), sessions.clone());
            async move { Ok::<_, Infallible>(dispatch(e, sessions, req).await) }
        });
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, svc);
        if let Err(err) = conn.await {
            tracing::debug!(error = %err, "grpc connection ended");
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "h2c")
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

fn service<Req, Resp, F, Fut>(f: F) -> tower::util::ServiceFn<impl FnMut(tonic::Request<Req>) -> Fut>
where
    F: FnMut(Req) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let mut f = f;
    tower::service_fn(move |r: tonic::Request<Req>| f(r.into_inner()))
}

async fn dispatch(
    e: Arc<Engine>,
    s: Sessions,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<tonic::body::Body> {
    let method = req.uri().path().strip_prefix(SERVICE).unwrap_or("").to_owned();
    tracing::debug!(method = %req.uri().path(), "grpc call");
    match method.as_str() {
        "Solve" => {
            let svc = service(|r: proto::SolveRequest| {
                let (e, s) = (e.clone(), s.clone());
                async move { solve(e, s, r).await.map(tonic::Response::new) }
            });
            Grpc::new(ProstCodec::<proto::SolveResponse, proto::SolveRequest>::default()).unary(svc, req).await
        }
        "Status" => {
            let svc = service(|r: proto::StatusRequest| {
                let s = s.clone();
                async move {
                    let rx = s
                        .status
                        .take(&r.r#ref)
                        .await
                        .ok_or_else(|| tonic::Status::not_found(format!("no such job {}", r.r#ref)))?;
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|m| (Ok::<_, tonic::Status>(m), rx))
                    });
                    Ok(tonic::Response::new(Box::pin(stream)))
                }
            });
            Grpc::new(ProstCodec::<StatusResponse, proto::StatusRequest>::default()).server_streaming(svc, req).await
        }
        "ListWorkers" => {
            let svc = service(|_: proto::ListWorkersRequest| async {
                Ok(tonic::Response::new(proto::ListWorkersResponse { record: vec![worker()] }))
            });
            Grpc::new(ProstCodec::<proto::ListWorkersResponse, proto::ListWorkersRequest>::default())
                .unary(svc, req)
                .await
        }
        "Info" => {
            let svc = service(|_: proto::InfoRequest| async {
                Ok(tonic::Response::new(proto::InfoResponse { buildkit_version: Some(version()) }))
            });
            Grpc::new(ProstCodec::<proto::InfoResponse, proto::InfoRequest>::default()).unary(svc, req).await
        }
        "DiskUsage" => {
            let svc = service(|_: proto::DiskUsageRequest| {
                let e = e.clone();
                async move {
                    let rows = e.build_cache_usage().await.map_err(status)?;
                    Ok(tonic::Response::new(proto::DiskUsageResponse {
                        record: rows.iter().map(usage_record).collect(),
                    }))
                }
            });
            Grpc::new(ProstCodec::<proto::DiskUsageResponse, proto::DiskUsageRequest>::default()).unary(svc, req).await
        }
        "Prune" => {
            let svc = service(|r: proto::PruneRequest| {
                let e = e.clone();
                async move {
                    let until = (r.keep_duration > 0).then_some(r.keep_duration / 1_000_000_000);
                    let report = e.builder_prune(r.all, until).await.map_err(status)?;
                    let records: Vec<_> = report
                        .removed
                        .into_iter()
                        .map(|id| Ok(proto::UsageRecord { id, record_type: "regular".into(), ..Default::default() }))
                        .collect();
                    Ok(tonic::Response::new(Box::pin(futures_util::stream::iter(records))))
                }
            });
            Grpc::new(ProstCodec::<proto::UsageRecord, proto::PruneRequest>::default()).server_streaming(svc, req).await
        }
        _ if req.uri().path().starts_with(BRIDGE) => bridge_dispatch(e, s, req).await,
        _ => tonic::Status::unimplemented(format!(
            "unknown method {} for service moby.buildkit.v1.Control",
            req.uri().path()
        ))
        .into_http(),
    }
}

pub(super) async fn bridge_dispatch(
    e: Arc<Engine>,
    s: Sessions,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<tonic::body::Body> {
    let method = req.uri().path().strip_prefix(BRIDGE).unwrap_or("").to_owned();
    match method.as_str() {
        "Ping" => {
            let svc = tower::service_fn(|r: tonic::Request<proto::PingRequest>| {
                let s = s.clone();
                async move { super::bridge::ping(&s, r).await.map(tonic::Response::new) }
            });
            Grpc::new(ProstCodec::<proto::PongResponse, proto::PingRequest>::default()).unary(svc, req).await
        }
        "Solve" => {
            let svc = tower::service_fn(|r: tonic::Request<proto::BridgeSolveRequest>| {
                let (e, s) = (e.clone(), s.clone());
                async move { super::bridge::solve(e, s, r).await.map(tonic::Response::new) }
            });
            Grpc::new(ProstCodec::<proto::BridgeSolveResponse, proto::BridgeSolveRequest>::default())
                .unary(svc, req)
                .await
        }
        "Return" => {
            let svc = tower::service_fn(|r: tonic::Request<proto::ReturnRequest>| {
                let s = s.clone();
                async move { super::bridge::finish(&s, r).await.map(tonic::Response::new) }
            });
            Grpc::new(ProstCodec::<proto::ReturnResponse, proto::ReturnRequest>::default()).unary(svc, req).await
        }
        _ => tonic::Status::unimplemented(format!("{} is not supported by berth's builder", req.uri().path()))
            .into_http(),
    }
}

pub(super) fn status(e: Error) -> tonic::Status {
    match e.kind() {
        berth_base::ErrorKind::InvalidArgument => tonic::Status::invalid_argument(e.to_string()),
        berth_base::ErrorKind::NotFound => tonic::Status::not_found(e.to_string()),
        berth_base::ErrorKind::NotImplemented => tonic::Status::unimplemented(e.to_string()),
        _ => tonic::Status::unknown(e.to_string()),
    }
}

fn version() -> proto::BuildkitVersion {
    proto::BuildkitVersion {
        package: "github.com/moby/buildkit".into(),
        version: BUILDKIT_VERSION.into(),
        revision: concat!("berth-", env!("CARGO_PKG_VERSION")).into(),
    }
}

fn host_platform() -> proto::Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    proto::Platform { architecture: arch.into(), os: "linux".into(), variant: String::new() }
}

pub(super) fn worker() -> proto::WorkerRecord {
    let hostname = rustix::system::uname().nodename().to_string_lossy().into_owned();
    proto::WorkerRecord {
        id: "berth".into(),
        labels: BTreeMap::from([
            ("org.mobyproject.buildkit.worker.executor".into(), "berth".into()),
            ("org.mobyproject.buildkit.worker.hostname".into(), hostname),
            ("org.mobyproject.buildkit.worker.moby.host-gateway-ip".into(), String::new()),
            ("org.mobyproject.buildkit.worker.network".into(), "host".into()),
            ("org.mobyproject.buildkit.worker.snapshotter".into(), "overlayfs".into()),
        ]),
        platforms: vec![host_platform()],
        buildkit_version: Some(version()),
    }
}

fn usage_record(v: &serde_json::Value) -> proto::UsageRecord {
    let ts = |k: &str| {
        v[k].as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|d| proto::Timestamp { seconds: d.timestamp(), nanos: 0 })
    };
    proto::UsageRecord {
        id: v["ID"].as_str().unwrap_or_default().into(),
        in_use: v["InUse"].as_bool().unwrap_or(false),
        size: v["Size"].as_i64().unwrap_or(0),
        created_at: ts("CreatedAt"),
        last_used_at: ts("LastUsedAt"),
        usage_count: v["UsageCount"].as_i64().unwrap_or(0),
        description: v["Description"].as_str().unwrap_or_default().into(),
        record_type: v["Type"].as_str().unwrap_or_default().into(),
        shared: v["Shared"].as_bool().unwrap_or(false),
        ..Default::default()
    }
}

/// A `Solve` as berth's builder takes it.
#[derive(Debug, Default, PartialEq)]
pub struct SolvePlan {
    /// The build's parameters, as `/build`'s.
    pub query: query::Build,
    /// Options berth's builder does without, said in the progress.
    pub ignored: Vec<String>,
}

/// Maps a `SolveRequest` onto the builder: the frontend's attributes, the exporters and
/// the cache options. What berth cannot do is refused in words.
pub fn plan_solve(r: &proto::SolveRequest) -> Result<SolvePlan, Error> {
    if r.definition.as_ref().is_some_and(|d| !d.is_empty()) || !r.frontend_inputs.is_empty() {
        return Err(Error::NotImplemented(
            "berth's builder takes Dockerfiles only (frontend dockerfile.v0): LLB definitions and frontend inputs are not supported".into(),
        ));
    }
    if r.frontend != "dockerfile.v0" {
        return Err(Error::InvalidArgument(format!(
            "frontend {:?} not supported (berth builds with dockerfile.v0)",
            r.frontend
        )));
    }
    let mut q = query::Build { remote: Some(super::build::CLIENT_SESSION.into()), ..Default::default() };
    let mut ignored = Vec::new();
    for (k, v) in &r.frontend_attrs {
        match k.as_str() {
            "filename" => q.dockerfile = Some(v.clone()),
            "target" => q.target = Some(v.clone()).filter(|t| !t.is_empty()),
            "no-cache" if v.is_empty() => q.no_cache = true,
            "no-cache" => q.no_cache_filter = v.split(',').map(str::to_owned).collect(),
            "platform" => q.platform = Some(v.clone()).filter(|p| !p.is_empty() && !p.contains(',')),
            "add-hosts" => q.extra_hosts = v.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect(),
            "force-network-mode" | "network" => q.network_mode = Some(v.clone()),
            "image-resolve-mode" => q.pull = v == "pull",
            "shm-size" => q.shm_size = v.parse().ok().filter(|n| *n > 0),
            k if k.starts_with("build-arg:") => {
                q.build_args.insert(k["build-arg:".len()..].to_owned(), v.clone());
            }
            k if k.starts_with("label:") => {
                q.labels.insert(k["label:".len()..].to_owned(), v.clone());
            }
            k if k.starts_with("context:") => {
                return Err(Error::NotImplemented(format!(
                    "named build contexts ({k}) are not supported by berth's builder"
                )));
            }
            _ => {}
        }
    }
    if r.frontend_attrs.get("platform").is_some_and(|p| p.contains(',')) {
        return Err(Error::NotImplemented("multi-platform builds are not supported by berth's builder".into()));
    }
    let mut exporters: Vec<(String, BTreeMap<String, String>)> =
        r.exporters.iter().map(|x| (x.r#type.clone(), x.attrs.clone())).collect();
    if !r.exporter_deprecated.is_empty() {
        exporters.push((r.exporter_deprecated.clone(), r.exporter_attrs_deprecated.clone()));
    }
    for (kind, attrs) in &exporters {
        match kind.as_str() {
            "moby" | "image" | "docker" => {
                // buildx pushes a `moby` export itself (docker push) when the daemon does not
                // say it pushes directly; only the `image` exporter's push is the daemon's.
                if kind != "moby" && attrs.get("push").is_some_and(|p| p == "true") {
                    return Err(Error::NotImplemented(
                        "push from a build is not supported by berth's builder: build, then docker push".into(),
                    ));
                }
                for n in attrs.get("name").into_iter().flat_map(|n| n.split(',')) {
                    if !n.trim().is_empty() {
                        q.tags.push(n.trim().to_owned());
                    }
                }
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "exporter {other:?} not supported (berth exports to its image store: moby, image)"
                )));
            }
        }
    }
    if let Some(c) = &r.cache {
        for i in c.imports.iter().chain(&c.exports) {
            ignored.push(format!("cache {} ignored: berth's builder keeps its own cache", i.r#type));
        }
    }
    Ok(SolvePlan { query: q, ignored })
}

async fn solve(e: Arc<Engine>, s: Sessions, r: proto::SolveRequest) -> Result<proto::SolveResponse, tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel::<StatusResponse>(256);
    // The ref's status stream exists from the start, even for a Solve refused at once.
    s.status.put(&r.r#ref, rx);
    let mut trace = Trace::new(Sink::Status(tx), r.r#ref.clone());
    // A build whose frontend runs in the client (buildx): it drives the build through the
    // LLB bridge, and its `Return` ends this call.
    let gateway = r.frontend.is_empty() && r.definition.as_ref().is_none_or(|d| d.is_empty());
    let plan = if gateway {
        let mut probe = r.clone();
        probe.frontend = "dockerfile.v0".into();
        plan_solve(&probe).map_err(status)?
    } else {
        plan_solve(&r).map_err(status)?
    };
    let session = s.get(&r.session, Duration::from_secs(10)).await.map_err(|err| status(err.into()))?;
    for (i, note) in plan.ignored.iter().enumerate() {
        trace.note(&format!("ignored-{i}"), &format!("[internal] {note}")).await;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let watch_cancel = cancel.clone();
    let watch_session = session.clone();
    let watcher = tokio::spawn(async move {
        watch_session.closed().await;
        tracing::debug!("build session closed: cancelling the build");
        watch_cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let _registered = s.register_build(&r.r#ref, cancel.clone());
    let tags = plan.query.tags.clone();
    if gateway {
        let (_job, done) = s.gateway.open(&r.r#ref, session.clone(), tags.clone(), trace, cancel);
        let result = tokio::select! {
            r = done => r.unwrap_or_else(|_| Err("the build's frontend went away".into())),
            _ = session.closed() => Err(super::SessionError::Closed.to_string()),
        };
        watcher.abort();
        return match result.map_err(tonic::Status::unknown)? {
            Some(id) => Ok(solve_response(id, &tags)),
            None => Ok(proto::SolveResponse::default()),
        };
    }
    let result = tokio::select! {
        r = super::build::run(&e, &s, &session, plan.query, &mut trace, cancel) => r,
        _ = session.closed() => Err(super::SessionError::Closed.into()),
    };
    watcher.abort();
    let id = result.map_err(|err| {
        let msg = err.to_string();
        tonic::Status::unknown(msg.lines().next().unwrap_or_default())
    })?;
    Ok(solve_response(id, &tags))
}

fn solve_response(id: String, tags: &[String]) -> proto::SolveResponse {
    let mut out = BTreeMap::from([
        ("containerimage.config.digest".to_owned(), id.clone()),
        ("containerimage.digest".to_owned(), id),
    ]);
    if !tags.is_empty() {
        out.insert("image.name".into(), tags.join(","));
    }
    proto::SolveResponse { exporter_response: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(attrs: &[(&str, &str)], exporter: &str, exporter_attrs: &[(&str, &str)]) -> proto::SolveRequest {
        proto::SolveRequest {
            frontend: "dockerfile.v0".into(),
            frontend_attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            exporters: vec![proto::Exporter {
                r#type: exporter.into(),
                attrs: exporter_attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn frontend_attributes_become_build_parameters() {
        let r = req(
            &[
                ("filename", "app.Dockerfile"),
                ("target", "final"),
                ("build-arg:A", "1"),
                ("label:l", "v"),
                ("no-cache", ""),
                ("add-hosts", "h1=1.2.3.4,h2=5.6.7.8"),
                ("network", "none"),
                ("platform", "linux/amd64"),
            ],
            "moby",
            &[("name", "docker.io/library/app:1,app:latest")],
        );
        let p = plan_solve(&r).unwrap();
        let q = p.query;
        assert_eq!(q.dockerfile.as_deref(), Some("app.Dockerfile"));
        assert_eq!(q.target.as_deref(), Some("final"));
        assert_eq!(q.build_args, BTreeMap::from([("A".into(), "1".into())]));
        assert_eq!(q.labels, BTreeMap::from([("l".into(), "v".into())]));
        assert!(q.no_cache);
        assert_eq!(q.extra_hosts, ["h1=1.2.3.4", "h2=5.6.7.8"]);
        assert_eq!(q.network_mode.as_deref(), Some("none"));
        assert_eq!(q.platform.as_deref(), Some("linux/amd64"));
        assert_eq!(q.tags, ["docker.io/library/app:1", "app:latest"]);
    }

    #[test]
    fn what_berth_cannot_do_is_refused_in_words() {
        let e = plan_solve(&req(&[], "local", &[("dest", "/out")])).unwrap_err();
        assert_eq!(e.to_string(), "exporter \"local\" not supported (berth exports to its image store: moby, image)");
        let mut r = req(&[], "moby", &[]);
        r.frontend = "gateway.v0".into();
        assert!(plan_solve(&r).unwrap_err().to_string().starts_with("frontend \"gateway.v0\" not supported"));
        let mut r = req(&[], "moby", &[]);
        r.definition = Some(vec![1, 2]);
        assert_eq!(plan_solve(&r).unwrap_err().kind(), berth_base::ErrorKind::NotImplemented);
        let e = plan_solve(&req(&[], "image", &[("name", "x"), ("push", "true")])).unwrap_err();
        assert!(e.to_string().starts_with("push from a build is not supported"), "{e}");
        assert_eq!(plan_solve(&req(&[], "moby", &[("name", "x"), ("push", "true")])).unwrap().query.tags, ["x"]);
        let mut r = req(&[], "moby", &[]);
        r.cache = Some(proto::CacheOptions {
            imports: vec![proto::CacheOptionsEntry { r#type: "registry".into(), ..Default::default() }],
            ..Default::default()
        });
        assert_eq!(plan_solve(&r).unwrap().ignored, ["cache registry ignored: berth's builder keeps its own cache"]);
    }
}

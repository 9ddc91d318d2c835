//! The LLB bridge (`moby.buildkit.v1.frontend.LLBBridge`) for builds whose frontend runs in
//! the client, as buildx (and so docker compose) runs them: the client's `Control.Solve`
//! names no frontend, then, on the same connection and with the build's ref in the
//! `buildkit-controlapi-buildid` metadata, it pings the bridge, solves `dockerfile.v0`
//! through it and returns the result. berth runs the Dockerfile at the bridge's `Solve`
//! and ends the control `Solve` with what `Return` hands back.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::build::Trace;
use super::proto;
use super::session::{Session, Sessions};
use crate::engine::Engine;

/// gRPC metadata naming the build a bridge call belongs to.
const BUILD_ID_KEY: &str = "buildkit-controlapi-buildid";

/// How a gateway build ended: the image it exports (none when the frontend built
/// nothing), or the client's error.
pub type Outcome = Result<Option<String>, String>;

/// A build waiting for its client-side frontend.
pub(super) struct GatewayJob {
    /// The session serving the context.
    session: Arc<Session>,
    /// Names from the exporters, given to the image.
    tags: Vec<String>,
    /// The build's progress.
    trace: tokio::sync::Mutex<Trace>,
    /// Stops the build.
    cancel: Arc<AtomicBool>,
    /// Images built through the bridge, by the ref handed to the client.
    built: Mutex<HashMap<String, String>>,
    /// Where `Return` sends the final image id (or the client's error).
    done: Mutex<Option<tokio::sync::oneshot::Sender<Outcome>>>,
}

/// Gateway builds by ref.
#[derive(Clone, Default)]
pub struct GatewayBoard(Arc<Mutex<HashMap<String, Arc<GatewayJob>>>>, Arc<tokio::sync::Notify>);

/// Removes a job from the board when its control `Solve` ends.
pub struct JobEntry(GatewayBoard, String);

impl Drop for JobEntry {
    fn drop(&mut self) {
        self.0.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.1);
    }
}

impl GatewayBoard {
    /// Opens a job; its result comes through the returned receiver.
    pub(super) fn open(
        &self,
        r: &str,
        session: Arc<Session>,
        tags: Vec<String>,
        trace: Trace,
        cancel: Arc<AtomicBool>,
    ) -> (JobEntry, tokio::sync::oneshot::Receiver<Outcome>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = GatewayJob {
            session,
            tags,
            trace: tokio::sync::Mutex::new(trace),
            cancel,
            built: Mutex::new(HashMap::new()),
            done: Mutex::new(Some(tx)),
        };
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(r.to_owned(), Arc::new(job));
        self.1.notify_waiters();
        (JobEntry(self.clone(), r.to_owned()), rx)
    }

    /// The job a bridge call names, waiting a little for it: the client calls the bridge
    /// while its control `Solve` is still setting up.
    async fn get<T>(&self, req: &tonic::Request<T>) -> Result<Arc<GatewayJob>, tonic::Status> {
        let id = req.metadata().get(BUILD_ID_KEY).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let added = self.1.notified();
            if let Some(job) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
                return Ok(job.clone());
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return Err(tonic::Status::not_found(format!("no such job {id}")));
            }
        }
    }
}

/// The bridge's capabilities: solving a frontend and returning its result.
pub fn pong() -> proto::PongResponse {
    let cap = |id: &str| proto::ApiCap { id: id.into(), enabled: true };
    proto::PongResponse {
        frontend_api_caps: vec![cap("solve.base"), cap("return")],
        llb_caps: Vec::new(),
        workers: vec![super::control::worker()],
    }
}

/// `LLBBridge.Ping`.
pub async fn ping(s: &Sessions, req: tonic::Request<proto::PingRequest>) -> Result<proto::PongResponse, tonic::Status> {
    s.gateway.get(&req).await?;
    Ok(pong())
}

/// `LLBBridge.Solve`: runs the Dockerfile the client's frontend asks for.
pub async fn solve(
    e: Arc<Engine>,
    s: Sessions,
    req: tonic::Request<proto::BridgeSolveRequest>,
) -> Result<proto::BridgeSolveResponse, tonic::Status> {
    let job = s.gateway.get(&req).await?;
    let r = req.into_inner();
    let as_control = proto::SolveRequest {
        definition: r.definition.clone(),
        frontend: r.frontend.clone(),
        frontend_attrs: r.frontend_opt.clone(),
        frontend_inputs: r.frontend_inputs.clone(),
        ..Default::default()
    };
    let mut plan = super::control::plan_solve(&as_control).map_err(super::control::status)?;
    plan.query.tags = job.tags.clone();
    let mut trace = job.trace.lock().await;
    for (i, note) in plan.ignored.iter().enumerate() {
        trace.note(&format!("ignored-{i}"), &format!("[internal] {note}")).await;
    }
    if !r.cache_imports.is_empty() {
        trace.note("ignored-imports", "[internal] cache imports ignored: berth's builder keeps its own cache").await;
    }
    let id = super::build::run(&e, &s, &job.session, plan.query, &mut trace, job.cancel.clone())
        .await
        .map_err(|err| tonic::Status::unknown(err.to_string().lines().next().unwrap_or_default().to_owned()))?;
    let ref_id = berth_base::new_id();
    job.built.lock().unwrap_or_else(|p| p.into_inner()).insert(ref_id.clone(), id.clone());
    let metadata = BTreeMap::from([("containerimage.digest".to_owned(), id.into_bytes())]);
    Ok(proto::BridgeSolveResponse {
        r#ref: ref_id.clone(),
        result: Some(proto::BridgeResult {
            r#ref: Some(proto::BridgeRef { id: ref_id }),
            metadata,
            ..Default::default()
        }),
    })
}

/// `LLBBridge.Return`: the client's frontend is done; its result ends the control `Solve`.
pub async fn finish(
    s: &Sessions,
    req: tonic::Request<proto::ReturnRequest>,
) -> Result<proto::ReturnResponse, tonic::Status> {
    let job = s.gateway.get(&req).await?;
    let r = req.into_inner();
    let outcome = match (r.error.filter(|e| e.code != 0), r.result) {
        (Some(err), _) => Err(err.message),
        (None, Some(res)) => {
            let ref_id = res
                .r#ref
                .map(|r| r.id)
                .or(res.ref_deprecated)
                .or_else(|| res.refs.and_then(|m| m.refs.into_values().next().map(|r| r.id)))
                .unwrap_or_default();
            if ref_id.is_empty() {
                // A frontend that built nothing (buildx asks this way for the build options).
                Ok(None)
            } else {
                let built = job.built.lock().unwrap_or_else(|p| p.into_inner()).get(&ref_id).cloned();
                built.map(Some).ok_or_else(|| format!("berth's builder exports only images it built (ref {ref_id:?})"))
            }
        }
        (None, None) => Ok(None),
    };
    if let Some(tx) = job.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = tx.send(outcome);
    }
    Ok(proto::ReturnResponse {})
}

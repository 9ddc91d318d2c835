//! `/containers/{id}/exec` and `/exec/…`: create an exec, start it (hijacked with a 101,
//! as dockerd does, or detached), resize its tty, inspect it. The checks that can fail
//! (no such exec, container not running, already started) answer before the connection is
//! hijacked; what fails after (a command that cannot run) is written into the stream.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_api::models::{ExecConfig, ExecStartConfig};
use berth_api::query;
use hyper_util::rt::TokioIo;

use super::reply::{self, ApiResult, Path, Query, json};
use crate::engine::{Engine, ExecSession};

/// The routes of this resource.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

/// `POST /exec/{id}/start`'s body, decoded (an empty body starts attached, without a tty).
pub fn start_config(body: &[u8]) -> crate::error::Result<ExecStartConfig> {
    reply::json_body(body)
}

async fn create(State(e): State<Arc<Engine>>, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let body = reply::read_body(req.into_body()).await?;
    let cfg: ExecConfig = reply::json_body(&body)?;
    let exec_id = e.create_exec(&id, cfg).await?;
    Ok(json(StatusCode::CREATED, &serde_json::json!({ "Id": exec_id })))
}

async fn start(State(e): State<Arc<Engine>>, Path(id): Path<String>, mut req: Request) -> ApiResult<Response> {
    let upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let wants_upgrade = req.headers().get(header::UPGRADE).is_some();
    let body = reply::read_body(std::mem::take(req.body_mut())).await?;
    let cfg = start_config(&body)?;
    let s = e.claim_exec(&id)?;
    if cfg.detach == Some(true) {
        e.start_exec_detached(s).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let tty = s.opts.tty;
    match upgrade.filter(|_| wants_upgrade) {
        Some(upgrade) => {
            tokio::spawn(async move {
                match upgrade.await {
                    Ok(up) => e.run_exec_attached(s, Box::new(TokioIo::new(up))).await,
                    Err(err) => tracing::debug!(error = %err, "exec upgrade failed"),
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
        None => {
            // No upgrade asked: the output comes as the body of a 200 (stdin cannot be sent).
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move { e.run_exec_attached(s, Box::new(ours)).await });
            let stream = tokio_util_read_stream(theirs);
            Ok(reply::streaming("application/vnd.docker.raw-stream", stream))
        }
    }
}

/// The bytes of a reader as a body stream.
fn tokio_util_read_stream(
    r: tokio::io::DuplexStream,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Send + 'static {
    futures_util::stream::unfold(r, |mut r| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 32 * 1024];
        match r.read(&mut buf).await {
            Ok(n) if n > 0 => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), r))
            }
            _ => None,
        }
    })
}

async fn resize(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<query::Resize>,
) -> ApiResult<StatusCode> {
    e.resize_exec(&id, q.h.unwrap_or(0), q.w.unwrap_or(0)).await?;
    Ok(StatusCode::OK)
}

async fn inspect(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Response> {
    let s = e.inspect_exec(&id)?;
    Ok(json(StatusCode::OK, &exec_inspect(&s)))
}

/// `GET /exec/{id}/json` as dockerd writes it: `ExitCode` is `null` until the process
/// has ended, `Pid` 0 once it has.
pub fn exec_inspect(s: &ExecSession) -> serde_json::Value {
    let st = s.state();
    let (entrypoint, args) = match s.opts.args.split_first() {
        Some((e, a)) => (e.clone(), a.to_vec()),
        None => (String::new(), Vec::new()),
    };
    serde_json::json!({
        "ID": s.id,
        "Running": st.running,
        "ExitCode": st.exit_code,
        "ProcessConfig": {
            "tty": s.opts.tty,
            "entrypoint": entrypoint,
            "arguments": args,
            "privileged": s.opts.privileged,
            "user": s.opts.user,
        },
        "OpenStdin": s.opts.open_stdin,
        "OpenStderr": s.opts.open_stderr,
        "OpenStdout": s.opts.open_stdout,
        "CanRemove": false,
        "ContainerID": s.container_id,
        "DetachKeys": s.opts.detach_keys,
        "Pid": st.pid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_bodies_decode() {
        let c = start_config(br#"{"Detach":true,"Tty":false,"ConsoleSize":[24,80]}"#).unwrap();
        assert_eq!(c.detach, Some(true));
        assert_eq!(c.console_size, Some(vec![24, 80]));
        assert_eq!(start_config(b"").unwrap().detach, None);
        assert!(start_config(b"{").unwrap_err().to_string().starts_with("invalid JSON"));
    }
}

//! Websockets for what plain HTTP cannot carry to a page: followed logs, and the hijacked
//! streams of attach and exec (stdin in, output out, resize). Each socket is bridged to one
//! Engine API call on the daemon.
//!
//! Frames: binary frames carry raw bytes both ways (output to the page, stdin to the
//! container); a text frame from the page is a control message, `{"type":"resize","cols":
//! C,"rows":R}`. Streams without a tty arrive multiplexed and are demultiplexed here.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use berth_api::stdcopy::Decoder;
use berth_api::{Client, query};
use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::App;

/// Query of `/ws/logs/{id}`.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    /// Lines from the end to start with (`all` by default).
    #[serde(default)]
    tail: Option<String>,
}

/// Query of `/ws/exec/{id}` and `/ws/attach/{id}`: the terminal's size at the start.
#[derive(Debug, Deserialize)]
pub struct SizeQuery {
    #[serde(default)]
    cols: Option<u16>,
    #[serde(default)]
    rows: Option<u16>,
}

/// A control message from the page.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Control {
    Resize { cols: u16, rows: u16 },
}

async fn close_with(mut ws: WebSocket, msg: String) {
    let _ = ws.send(Message::Text(format!("\r\nberth dashboard: {msg}\r\n").into())).await;
    let _ = ws.send(Message::Close(None)).await;
}

async fn has_tty(client: &Client, id: &str) -> Result<bool, berth_api::ClientError> {
    let c = client.inspect_container(id, &query::InspectContainer::default()).await?;
    Ok(c.config.and_then(|c| c.tty).unwrap_or(false))
}

/// Turns daemon output into frames for the page: as is with a tty, demultiplexed without.
struct Output {
    decoder: Option<Decoder>,
}

impl Output {
    fn new(tty: bool) -> Output {
        Output { decoder: (!tty).then(Decoder::default) }
    }

    fn frames(&mut self, data: &[u8]) -> Vec<Bytes> {
        let Some(d) = self.decoder.as_mut() else { return vec![Bytes::copy_from_slice(data)] };
        d.feed(data);
        let mut out = Vec::new();
        while let Ok(Some((_, payload))) = d.next_frame() {
            out.push(Bytes::from(payload));
        }
        out
    }
}

/// `GET /ws/logs/{id}`: the container's logs, then new lines as they come.
pub async fn logs(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        let tty = match has_tty(&app.client, &id).await {
            Ok(t) => t,
            Err(e) => return close_with(socket, e.to_string()).await,
        };
        let lq = query::Logs {
            follow: true,
            stdout: true,
            stderr: true,
            tail: Some(q.tail.unwrap_or_else(|| "all".to_owned())),
            ..Default::default()
        };
        let mut stream = match app.client.container_logs(&id, &lq).await {
            Ok(s) => s,
            Err(e) => return close_with(socket, e.to_string()).await,
        };
        let mut out = Output::new(tty);
        loop {
            tokio::select! {
                chunk = stream.next_chunk() => match chunk {
                    Some(Ok(data)) => {
                        for f in out.frames(&data) {
                            if socket.send(Message::Binary(f)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(Err(e)) => return close_with(socket, e.to_string()).await,
                    None => break,
                },
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = socket.send(Message::Close(None)).await;
    })
}

/// `GET /ws/exec/{id}`: starts an exec the page created (`POST /api/containers/{id}/exec`)
/// with a tty, and bridges it.
pub async fn exec(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<SizeQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let size = q.rows.zip(q.cols);
        let io = match app.client.start_exec_attached(&id, true, size).await {
            Ok(io) => io,
            Err(e) => return close_with(socket, e.to_string()).await,
        };
        let resize_client = app.client.clone();
        let rid = id.clone();
        bridge(socket, io, true, move |cols, rows| {
            let (c, id) = (resize_client.clone(), rid.clone());
            async move {
                let _ = c.resize_exec(&id, rows, cols).await;
            }
        })
        .await;
    })
}

/// `GET /ws/attach/{id}`: attaches to the container's own stdio.
pub async fn attach(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<SizeQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| async move {
        let tty = match has_tty(&app.client, &id).await {
            Ok(t) => t,
            Err(e) => return close_with(socket, e.to_string()).await,
        };
        let aq = query::AttachContainer { stream: true, stdin: true, stdout: true, stderr: true, ..Default::default() };
        let io = match app.client.attach_container(&id, &aq).await {
            Ok(io) => io,
            Err(e) => return close_with(socket, e.to_string()).await,
        };
        if let (true, Some((rows, cols))) = (tty, q.rows.zip(q.cols)) {
            let _ = app.client.resize_container(&id, rows, cols).await;
        }
        let c = app.client.clone();
        bridge(socket, io, tty, move |cols, rows| {
            let (c, id) = (c.clone(), id.clone());
            async move {
                let _ = c.resize_container(&id, rows, cols).await;
            }
        })
        .await;
    })
}

/// Copies between a websocket and a hijacked daemon stream until either side ends.
async fn bridge<F, Fut>(mut socket: WebSocket, io: berth_api::client::AttachIo, tty: bool, resize: F)
where
    F: Fn(u16, u16) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut out = Output::new(tty);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        tokio::select! {
            n = rd.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for f in out.frames(&buf[..n]) {
                        if socket.send(Message::Binary(f)).await.is_err() {
                            return;
                        }
                    }
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if let Ok(Control::Resize { cols, rows }) = serde_json::from_str::<Control>(t.as_str()) {
                        resize(cols, rows).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = wr.shutdown().await;
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_without_tty_is_demultiplexed_across_chunks() {
        let mut framed = Vec::new();
        berth_api::stdcopy::encode(berth_api::stdcopy::Stream::Stdout, b"hello\n", &mut framed);
        berth_api::stdcopy::encode(berth_api::stdcopy::Stream::Stderr, b"oops\n", &mut framed);
        let mut o = Output::new(false);
        let (a, b) = framed.split_at(5);
        assert!(o.frames(a).is_empty());
        assert_eq!(o.frames(b), vec![Bytes::from_static(b"hello\n"), Bytes::from_static(b"oops\n")]);
        let mut raw = Output::new(true);
        assert_eq!(raw.frames(b"\x1b[1mhi"), vec![Bytes::from_static(b"\x1b[1mhi")]);
    }

    #[test]
    fn resize_control_message() {
        let c: Control = serde_json::from_str(r#"{"type":"resize","cols":120,"rows":40}"#).unwrap();
        assert!(matches!(c, Control::Resize { cols: 120, rows: 40 }));
        assert!(serde_json::from_str::<Control>(r#"{"type":"nuke"}"#).is_err());
    }
}

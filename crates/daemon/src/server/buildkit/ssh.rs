//! SSH agent forwarding through the session (`RUN --mount=type=ssh` with `docker build
//! --ssh default`): the client serves `moby.sshforward.v1.SSH`. For each agent id the plan
//! mounts, the daemon checks it with `CheckAgent`, then listens on a unix socket of its own
//! that the builder binds into the RUN step (`SSH_AUTH_SOCK`); each connection to that
//! socket becomes one `ForwardAgent` stream to the client, which connects it to its agent.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::SessionError;
use super::proto::{self, BytesMessage};
use super::session::Session;

/// gRPC method: whether the client forwards agent `id`.
pub const CHECK_AGENT: &str = "/moby.sshforward.v1.SSH/CheckAgent";
/// gRPC method: one connection to the client's agent, as a stream of bytes each way.
pub const FORWARD_AGENT: &str = "/moby.sshforward.v1.SSH/ForwardAgent";
/// gRPC metadata naming the agent a `ForwardAgent` stream is for.
const KEY_SSH_ID: &str = "buildkit.ssh.id";

/// The agent ids the plan's RUN steps mount, with whether each is required.
pub fn ssh_ids(plan: &berth_build::plan::Plan) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for stage in &plan.stages {
        for (_, _, step) in &stage.steps {
            if let berth_build::plan::Step::Run { mounts, .. } = step {
                for m in mounts {
                    if let berth_build::plan::RunMount::Ssh { id, required, .. } = m {
                        match out.iter_mut().find(|(i, _)| i == id) {
                            Some(e) => e.1 |= *required,
                            None => out.push((id.clone(), *required)),
                        }
                    }
                }
            }
        }
    }
    out
}

/// Agents forwarded for one build: their sockets, removed (and their listeners stopped)
/// when dropped.
pub struct Forwarded {
    /// Agent id → the socket the builder binds into RUN steps.
    pub sockets: BTreeMap<String, PathBuf>,
    dir: Option<PathBuf>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Forwarded {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Session {
    /// Whether the client forwards agent `id`: `Ok(false)` when it serves no SSH
    /// forwarding at all; the client's own error (an id it was not given) otherwise.
    pub async fn check_agent(&self, id: &str) -> Result<bool, SessionError> {
        if !self.serves(CHECK_AGENT) {
            return Ok(false);
        }
        let mut grpc = self.channel().grpc();
        let call = |source| SessionError::Call { method: CHECK_AGENT, source };
        grpc.ready().await.map_err(|e| call(tonic::Status::unavailable(e.to_string())))?;
        let req = tonic::Request::new(proto::CheckAgentRequest { id: id.to_owned() });
        let path = axum::http::uri::PathAndQuery::from_static(CHECK_AGENT);
        match grpc.unary(req, path, tonic_prost::ProstCodec::<_, proto::CheckAgentResponse>::default()).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::Unimplemented => Ok(false),
            Err(s) => Err(call(s)),
        }
    }
}

/// What can stop a build's agent forwarding.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A required agent the client does not forward (BuildKit's words).
    #[error("no SSH key {0:?} forwarded from the client")]
    NotForwarded(String),
    /// The client refused the id (its words, e.g. `unset ssh forward key x`), or the
    /// daemon could not make the socket.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Checks and forwards the agents `ids` names, with sockets under `parent`. An agent the
/// client does not forward is left out when optional, and an error when required, as
/// BuildKit decides.
pub async fn forward(session: &Session, ids: &[(String, bool)], parent: &Path) -> Result<Forwarded, ForwardError> {
    let mut out = Forwarded { sockets: BTreeMap::new(), dir: None, tasks: Vec::new() };
    for (id, required) in ids {
        let ok = match session.check_agent(id).await {
            Ok(ok) => ok,
            Err(_) if !required => false,
            Err(e) => return Err(e.into()),
        };
        if !ok {
            if *required {
                return Err(ForwardError::NotForwarded(id.clone()));
            }
            continue;
        }
        let dir = match &out.dir {
            Some(d) => d.clone(),
            None => {
                // Short: a unix socket's path must fit in 108 bytes.
                let d = parent.join(format!("ssh-{}", &berth_base::new_id()[..12]));
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&d)
                    .map_err(|e| SessionError::io("create", &d, e))?;
                out.dir = Some(d.clone());
                d
            }
        };
        let sock = dir.join(format!("agent.{}.sock", out.sockets.len()));
        let listener = tokio::net::UnixListener::bind(&sock).map_err(|e| SessionError::io("listen on", &sock, e))?;
        let channel = session.channel().clone();
        let agent = id.clone();
        out.tasks.push(tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (channel, agent) = (channel.clone(), agent.clone());
                tokio::spawn(async move {
                    if let Err(e) = pipe(&channel, &agent, conn).await {
                        tracing::debug!(agent = %agent, error = %e, "ssh agent forwarding ended");
                    }
                });
            }
        }));
        out.sockets.insert(id.clone(), sock);
    }
    Ok(out)
}

/// One connection to the agent: bytes from the RUN step go to the client in
/// `BytesMessage`s, the client's answers come back the same way.
async fn pipe(channel: &super::grpc::Channel, id: &str, conn: tokio::net::UnixStream) -> Result<(), SessionError> {
    let call = |source| SessionError::Call { method: FORWARD_AGENT, source };
    let (mut rd, mut wr) = conn.into_split();
    let (tx, rx) = tokio::sync::mpsc::channel::<BytesMessage>(16);
    let outbound = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut request = tonic::Request::new(outbound);
    if let Ok(v) = id.parse() {
        request.metadata_mut().insert(KEY_SSH_ID, v);
    }
    // The step's bytes are read from the start: the client answers (and so sends its
    // response headers) only once the agent has a request to answer.
    let upstream = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(BytesMessage { data: buf[..n].to_vec() }).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping the sender ends the request stream: the client closes its agent
        // connection.
    };
    let downstream = async move {
        let mut grpc = channel.grpc();
        grpc.ready().await.map_err(|e| call(tonic::Status::unavailable(e.to_string())))?;
        let path = axum::http::uri::PathAndQuery::from_static(FORWARD_AGENT);
        let mut inbound = grpc
            .streaming(request, path, tonic_prost::ProstCodec::<BytesMessage, BytesMessage>::default())
            .await
            .map_err(call)?
            .into_inner();
        while let Some(m) = inbound.message().await.map_err(call)? {
            wr.write_all(&m.data).await.map_err(|e| SessionError::io("write to", Path::new("ssh agent socket"), e))?;
        }
        let _ = wr.shutdown().await;
        Ok::<(), SessionError>(())
    };
    let (_, r) = tokio::join!(upstream, downstream);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_names_its_agents_once() {
        let plan = berth_build::frontend::plan(
            "FROM scratch\nRUN --mount=type=ssh a\nRUN --mount=type=ssh,id=gh,required=true b\nRUN --mount=type=ssh,required=true c\n",
            "Dockerfile",
        )
        .unwrap();
        assert_eq!(ssh_ids(&plan), [("default".to_owned(), true), ("gh".to_owned(), true)]);
    }
}

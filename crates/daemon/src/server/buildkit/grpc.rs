//! gRPC over a hijacked connection: tonic's client and server halves need a transport, and
//! the connection here is one the HTTP/1 server already accepted and upgraded. hyper's
//! HTTP/2 connection types are that transport; this file adapts them to tonic.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

/// A gRPC channel to the client's side of a session: HTTP/2 requests on its connection.
#[derive(Clone)]
pub struct Channel(SendRequest<tonic::body::Body>);

/// Starts HTTP/2 as its client on `io`; the returned future drives the connection and
/// ends when it closes.
pub async fn connect<IO>(io: IO) -> Result<(Channel, impl Future<Output = ()> + Send), hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(std::time::Duration::from_secs(30))
        .handshake(TokioIo::new(io))
        .await?;
    let drive = async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "session connection ended");
        }
    };
    Ok((Channel(send), drive))
}

impl Channel {
    /// A tonic client on this channel (the origin only fills `:authority`).
    pub fn grpc(&self) -> tonic::client::Grpc<Channel> {
        tonic::client::Grpc::with_origin(self.clone(), http::Uri::from_static("http://session"))
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Channel {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

//! How every answer leaves the server: the ONE map from an [`ErrorKind`] to an HTTP
//! status, Docker's `{"message": …}` error body, and the JSON and stream encoders the
//! resource handlers share. Request decoders also live on this side of the wire: the
//! query-string and JSON-body helpers here turn a bad request into Docker's 400 in words.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_base::ErrorKind;
use bytes::Bytes;
use futures_util::Stream;

use crate::error::Error;

/// An error on its way to the client as `{"message": …}` with Docker's status code.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<berth_api::query::QueryError> for ApiError {
    fn from(e: berth_api::query::QueryError) -> Self {
        ApiError(Error::Query(e))
    }
}

/// What a handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

/// The one mapping from error kinds to HTTP statuses (Docker's `errdefs` classes).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Docker's error body with `status`; a 304 has no body.
pub fn error_response(status: StatusCode, message: String) -> Response {
    if status == StatusCode::NOT_MODIFIED {
        return status.into_response();
    }
    let body = serde_json::to_vec(&berth_api::ErrorBody { message, code: None }).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.0.kind());
        if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        } else {
            tracing::debug!(error = %self.0, "request refused");
        }
        error_response(status, self.0.to_string())
    }
}

/// Docker's answer to a path or method no route serves: 404 `page not found`.
pub async fn page_not_found() -> ApiError {
    ApiError(Error::PageNotFound)
}

/// `v` as a JSON body with `status`.
pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => (status, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Progress messages as Docker streams them: one JSON object per line.
pub fn json_lines(msgs: &[berth_api::JsonMessage]) -> Response {
    let mut out = Vec::new();
    for m in msgs {
        if let Ok(b) = serde_json::to_vec(m) {
            out.extend_from_slice(&b);
            out.extend_from_slice(b"\r\n");
        }
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// A 200 whose body is `stream`, sent as it comes, with `content_type`.
pub fn streaming<S>(content_type: &'static str, stream: S) -> Response
where
    S: Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The content type of a container's output: raw with a TTY, else Docker's multiplexed frames.
pub fn output_content_type(tty: bool) -> &'static str {
    if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" }
}

/// Decodes a query string (`None` when the URI had none) with Go's `url.Values` rules.
pub fn query<T: serde::de::DeserializeOwned>(q: Option<&str>) -> Result<T, Error> {
    Ok(berth_api::query::from_query(q.unwrap_or(""))?)
}

/// A query string decoded with [`query`]; a bad one is refused with Docker's 400.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Query(query(parts.uri.query())?))
    }
}

/// Path parameters as axum's `Path` decodes them, but a bad one (a `%ff` that is not
/// UTF-8) is refused with Docker's JSON error body rather than axum's plain text.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rejection) => Err(ApiError(Error::InvalidArgument(rejection.body_text()))),
        }
    }
}

/// Decodes a JSON body; an empty body is `T::default()`, as dockerd treats it.
pub fn json_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(Error::InvalidJson)
}

/// The largest JSON body a request may carry (a container config is a few KiB).
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// Reads a whole (JSON) request body.
pub async fn read_body(body: Body) -> Result<Bytes, Error> {
    axum::body::to_bytes(body, MAX_JSON_BODY).await.map_err(Error::RequestBody)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_dockers_statuses() {
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorKind::Unavailable), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status_of(ErrorKind::NotImplemented), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(status_of(Error::PageNotFound.kind()), StatusCode::NOT_FOUND);
        assert_eq!(status_of(Error::NotSwarmManager.kind()), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn json_bodies_decode_or_say_why_in_words() {
        #[derive(serde::Deserialize, Default, Debug)]
        struct B {
            #[serde(rename = "Image")]
            image: Option<String>,
        }
        assert!(json_body::<B>(b"").unwrap().image.is_none());
        assert_eq!(json_body::<B>(br#"{"Image":"busybox"}"#).unwrap().image.as_deref(), Some("busybox"));
        let e = json_body::<B>(b"{nope").unwrap_err();
        assert_eq!(status_of(e.kind()), StatusCode::BAD_REQUEST);
        assert!(e.to_string().starts_with("invalid JSON: key must be a string"), "{e}");
        let e = json_body::<B>(br#"{"Image":5}"#).unwrap_err().to_string();
        assert!(e.starts_with("invalid JSON: invalid type: integer `5`, expected a string"), "{e}");
    }
}

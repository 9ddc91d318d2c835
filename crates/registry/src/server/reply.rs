//! The distribution spec's error answers: each [`Code`] with its HTTP status and
//! distribution's message (clients print `code: message`, e.g. `unauthorized:
//! authentication required`), sent as `{"errors":[{"code","message","detail"}]}`. This is
//! the one place a registry failure becomes a status.

use axum::body::Body;
use hyper::{HeaderMap, Response, StatusCode, header};
use serde::Serialize;

/// An error code of the OCI Distribution Spec (and distribution's few extra ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A blob is not in the repository.
    BlobUnknown,
    /// An upload is malformed (e.g. a chunk out of order).
    BlobUploadInvalid,
    /// No such upload in the repository.
    BlobUploadUnknown,
    /// The content does not match its digest, or the digest is malformed.
    DigestInvalid,
    /// A manifest references a blob or manifest the repository lacks.
    ManifestBlobUnknown,
    /// A manifest cannot be parsed or breaks the schema.
    ManifestInvalid,
    /// No such manifest (tag or digest) in the repository.
    ManifestUnknown,
    /// A repository name breaks the grammar.
    NameInvalid,
    /// No such repository.
    NameUnknown,
    /// A length does not match the content.
    SizeInvalid,
    /// A `Content-Range` that does not continue the upload.
    RangeInvalid,
    /// A tag breaks the grammar.
    TagInvalid,
    /// Credentials are missing or wrong.
    Unauthorized,
    /// The credentials do not allow this.
    Denied,
    /// The operation is not supported (or the registry is read-only).
    Unsupported,
    /// A bad `n` for pagination.
    PaginationNumberInvalid,
    /// Anything else: a storage failure.
    Unknown,
}

impl Code {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::TagInvalid => "TAG_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::Unknown => "UNKNOWN",
        }
    }

    /// distribution's message for the code.
    pub fn message(self) -> &'static str {
        match self {
            Code::BlobUnknown | Code::ManifestBlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::RangeInvalid => "invalid content range",
            Code::TagInvalid => "manifest tag did not match URI",
            Code::Unauthorized => "authentication required",
            Code::Denied => "requested access to the resource is denied",
            Code::Unsupported => "The operation is unsupported.",
            Code::PaginationNumberInvalid => "invalid number of results requested",
            Code::Unknown => "unknown error",
        }
    }

    /// The HTTP status distribution answers the code with.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown | Code::BlobUploadUnknown | Code::ManifestUnknown | Code::NameUnknown => {
                StatusCode::NOT_FOUND
            }
            // distribution's BLOB_UPLOAD_INVALID is 404; an out-of-order chunk is 416 by the spec.
            Code::BlobUploadInvalid => StatusCode::NOT_FOUND,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid
            | Code::TagInvalid
            | Code::PaginationNumberInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed request: one or more errors (a manifest may miss several blobs), a status
/// (the first error's unless overridden) and headers to send along.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    errors: Vec<(Code, serde_json::Value)>,
    status: Option<StatusCode>,
    headers: HeaderMap,
}

#[derive(Serialize)]
struct WireError<'a> {
    code: &'a str,
    message: &'a str,
    detail: &'a serde_json::Value,
}

impl ApiError {
    /// An error without detail.
    pub fn new(code: Code) -> ApiError {
        ApiError::detail(code, serde_json::Value::Null)
    }

    /// An error with `detail` (any JSON; distribution often sends a string or an object).
    pub fn detail(code: Code, detail: impl Into<serde_json::Value>) -> ApiError {
        ApiError(Box::new(Inner { errors: vec![(code, detail.into())], status: None, headers: HeaderMap::new() }))
    }

    /// Adds a further error to the answer.
    pub fn and(mut self, code: Code, detail: impl Into<serde_json::Value>) -> ApiError {
        self.0.errors.push((code, detail.into()));
        self
    }

    /// Answers with `status` instead of the first code's.
    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.0.status = Some(status);
        self
    }

    /// Sends `value` as header `name` with the error.
    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> ApiError {
        if let Ok(v) = header::HeaderValue::from_str(value) {
            self.0.headers.insert(name, v);
        }
        self
    }

    /// The first error's code.
    pub fn code(&self) -> Code {
        self.0.errors.first().map(|e| e.0).unwrap_or(Code::Unknown)
    }

    /// The HTTP answer.
    pub fn into_response(self) -> Response<Body> {
        let status = self.0.status.unwrap_or_else(|| self.code().status());
        let inner = *self.0;
        let errors: Vec<WireError<'_>> =
            inner.errors.iter().map(|(c, d)| WireError { code: c.as_str(), message: c.message(), detail: d }).collect();
        #[derive(Serialize)]
        struct Wire<'a> {
            errors: Vec<WireError<'a>>,
        }
        let body = serde_json::to_vec(&Wire { errors }).unwrap_or_default();
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = status;
        resp.headers_mut().extend(inner.headers);
        resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        resp
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> ApiError {
        tracing::error!(error = %e, "storage failure");
        ApiError::detail(Code::Unknown, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_have_the_specs_shape() {
        let r = ApiError::detail(Code::ManifestBlobUnknown, "sha256:ab")
            .and(Code::ManifestBlobUnknown, "sha256:cd")
            .into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = http_body_util::BodyExt::collect(r.into_body()).await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errors"][1]["code"], "MANIFEST_BLOB_UNKNOWN");
        assert_eq!(v["errors"][0]["message"], "blob unknown to registry");
        assert_eq!(v["errors"][0]["detail"], "sha256:ab");
        let r = ApiError::new(Code::Unauthorized).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

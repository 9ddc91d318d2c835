//! The distribution API's handlers: each decodes its request (route, query, the few
//! headers that matter), makes its call to [`Storage`], and encodes the answer with the
//! spec's headers (`Location`, `Range`, `Docker-Upload-UUID`, `Docker-Content-Digest`).
//!
//! Bodies stream both ways. An upload's bytes go from the connection through a bounded
//! channel to a blocking writer that appends them to the staged file and hashes them as
//! they pass, so memory stays flat whatever the blob's size; the writer runs in a task of
//! its own, so a client that drops the connection half way leaves a staged file and an
//! upload state that agree (the bytes received so far, resumable). Blobs are served from
//! the file in 256 KiB reads.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use super::auth::{Htpasswd, REALM};
use super::digest::{Algorithm, Digest};
use super::manifest;
use super::names;
use super::reply::{ApiError, Code};
use super::routes::{self, Route};
use super::storage::{Commit, Progress, Storage};
use crate::Error;
use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

/// The most entries a catalog page holds (distribution's `catalog.maxentries` default).
pub const MAX_CATALOG_PAGE: usize = 1000;

/// What every handler shares.
pub struct App {
    /// The storage.
    pub storage: Arc<Storage>,
    /// The users, when authentication is on.
    pub auth: Option<Arc<Htpasswd>>,
    /// Whether writes are refused.
    pub read_only: bool,
}

type Reply = Result<Response<Body>, ApiError>;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_FILTERS: HeaderName = HeaderName::from_static("oci-filters-applied");
const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");

/// The most `tag` parameters one manifest push may carry (the spec asks for at least 10).
pub const MAX_TAG_PARAMS: usize = 100;

/// Answers one request.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut resp = match dispatch(app, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code().as_str(), "request failed");
            e.into_response()
        }
    };
    tracing::info!(%method, %path, status = resp.status().as_u16(), "request");
    resp.headers_mut().insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    resp
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

fn set(resp: &mut Response<Body>, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn json(status: StatusCode, value: &serde_json::Value, content_type: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(Body::from(bytes.clone()));
    *r.status_mut() = status;
    set(&mut r, header::CONTENT_TYPE, content_type);
    set(&mut r, header::CONTENT_LENGTH, &bytes.len().to_string());
    r
}

/// Runs blocking storage work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::detail(Code::Unknown, e.to_string())),
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(Code::Unauthorized).with_header(header::WWW_AUTHENTICATE, &format!("Basic realm=\"{REALM}\""))
}

fn unsupported(allow: &str) -> ApiError {
    ApiError::new(Code::Unsupported).with_header(header::ALLOW, allow)
}

async fn dispatch(app: Arc<App>, req: Request<Incoming>) -> Reply {
    if let Some(auth) = app.auth.clone() {
        let value = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
        let ok = tokio::task::spawn_blocking(move || auth.authorized(value.as_deref())).await.unwrap_or(false);
        if !ok {
            return Err(unauthorized());
        }
    }
    let path = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8_lossy().into_owned();
    let Some(route) = routes::parse(&path) else {
        let mut r = Response::new(Body::from("404 page not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        set(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
        return Ok(r);
    };
    if let Some(name) = route.name().filter(|n| !names::valid_repository(n)) {
        return Err(ApiError::detail(Code::NameInvalid, serde_json::json!({ "name": name })));
    }
    let method = req.method().clone();
    let reading = method == Method::GET || method == Method::HEAD;
    if app.read_only && !reading {
        return Err(
            ApiError::detail(Code::Unsupported, "the registry is read-only").with_header(header::ALLOW, "GET, HEAD")
        );
    }
    let query: HashMap<String, String> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(req.uri().query().unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .rev()
            .collect();
    let st = app.storage.clone();
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => {
            Ok(json(StatusCode::OK, &serde_json::json!({}), "application/json"))
        }
        (Route::Base, _) => Err(unsupported("GET, HEAD")),
        (Route::Catalog, Method::GET) => catalog(st, &query).await,
        (Route::Catalog, _) => Err(unsupported("GET")),
        (Route::Tags { name }, Method::GET) => tags(st, name, &query).await,
        (Route::Tags { .. }, _) => Err(unsupported("GET")),
        (Route::Manifest { name, reference }, m @ (Method::GET | Method::HEAD)) => {
            get_manifest(st, name, reference, m == Method::HEAD).await
        }
        (Route::Manifest { name, reference }, Method::PUT) => put_manifest(st, name, reference, req).await,
        (Route::Manifest { name, reference }, Method::DELETE) => delete_manifest(st, name, reference).await,
        (Route::Manifest { .. }, _) => Err(unsupported("GET, HEAD, PUT, DELETE")),
        (Route::Blob { name, digest }, m @ (Method::GET | Method::HEAD)) => {
            get_blob(st, name, digest, req.headers(), m == Method::HEAD).await
        }
        (Route::Blob { name, digest }, Method::DELETE) => delete_blob(st, name, digest).await,
        (Route::Blob { .. }, _) => Err(unsupported("GET, HEAD, DELETE")),
        (Route::UploadStart { name }, Method::POST) => start_upload(st, name, &query, req).await,
        (Route::UploadStart { .. }, _) => Err(unsupported("POST")),
        (Route::Upload { name, id }, m) => {
            if !names::valid_upload_id(&id) {
                return Err(ApiError::detail(Code::BlobUploadUnknown, id));
            }
            match m {
                Method::GET => upload_status(st, name, id).await,
                Method::PATCH => patch_upload(st, name, id, req).await,
                Method::PUT => finish_upload(st, name, id, &query, req).await,
                Method::DELETE => cancel_upload(st, name, id).await,
                _ => Err(unsupported("GET, PATCH, PUT, DELETE")),
            }
        }
        (Route::Referrers { name, digest }, Method::GET) => referrers(st, name, digest, &query).await,
        (Route::Referrers { .. }, _) => Err(unsupported("GET")),
    }
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse::<Digest>().map_err(|e| ApiError::detail(Code::DigestInvalid, format!("{s}: {e}")))
}

// ---- listings ----

/// `n` and `last` of a paginated listing; `n` must be a non-negative number.
fn pagination(query: &HashMap<String, String>) -> Result<(Option<usize>, Option<String>), ApiError> {
    let n = match query.get("n") {
        None => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| ApiError::detail(Code::PaginationNumberInvalid, v.clone()))?),
    };
    Ok((n, query.get("last").filter(|l| !l.is_empty()).cloned()))
}

/// The page of `items` (sorted) after `last`, at most `n` long, and whether more follow.
fn page(items: Vec<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let mut rest: Vec<String> = items.into_iter().filter(|i| last.is_none_or(|l| i.as_str() > l)).collect();
    match n {
        Some(n) if rest.len() > n => {
            rest.truncate(n);
            (rest, n > 0)
        }
        _ => (rest, false),
    }
}

fn next_link(resp: &mut Response<Body>, base: &str, page: &[String], n: usize) {
    if let Some(last) = page.last() {
        let last: String = percent_encoding::utf8_percent_encode(last, percent_encoding::NON_ALPHANUMERIC).collect();
        set(resp, header::LINK, &format!("<{base}?last={last}&n={n}>; rel=\"next\""));
    }
}

async fn catalog(st: Arc<Storage>, query: &HashMap<String, String>) -> Reply {
    let (n, last) = pagination(query)?;
    let n = n.unwrap_or(MAX_CATALOG_PAGE).min(MAX_CATALOG_PAGE);
    let all = blocking(move || st.repositories()).await?;
    let (repos, more) = page(all, Some(n), last.as_deref());
    let mut r = json(StatusCode::OK, &serde_json::json!({ "repositories": repos }), "application/json; charset=utf-8");
    if more {
        next_link(&mut r, "/v2/_catalog", &repos, n);
    }
    Ok(r)
}

async fn tags(st: Arc<Storage>, name: String, query: &HashMap<String, String>) -> Reply {
    let (n, last) = pagination(query)?;
    let repo = name.clone();
    let Some(all) = blocking(move || st.tags(&repo)).await? else {
        return Err(ApiError::detail(Code::NameUnknown, serde_json::json!({ "name": name })));
    };
    let (tags, more) = page(all, n, last.as_deref());
    let mut r =
        json(StatusCode::OK, &serde_json::json!({ "name": name, "tags": tags }), "application/json; charset=utf-8");
    if let (true, Some(n)) = (more, n) {
        next_link(&mut r, &format!("/v2/{name}/tags/list"), &tags, n);
    }
    Ok(r)
}

async fn referrers(st: Arc<Storage>, name: String, digest: String, query: &HashMap<String, String>) -> Reply {
    let subject = parse_digest(&digest)?;
    let filter = query.get("artifactType").filter(|a| !a.is_empty()).cloned();
    let found = blocking(move || st.referrers(&name, &subject)).await?;
    let mut list: Vec<serde_json::Value> =
        found.iter().map(|m| manifest::referrer_descriptor(&m.media_type, &m.digest, &m.bytes)).collect();
    if let Some(f) = &filter {
        list.retain(|d| d["artifactType"].as_str() == Some(f.as_str()));
    }
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": list });
    let mut r = json(StatusCode::OK, &index, manifest::OCI_INDEX);
    if filter.is_some() {
        set(&mut r, OCI_FILTERS, "artifactType");
    }
    Ok(r)
}

// ---- manifests ----

enum Reference {
    Tag(String),
    Digest(Digest),
}

fn parse_reference(r: &str) -> Result<Reference, ApiError> {
    if r.contains(':') {
        Ok(Reference::Digest(parse_digest(r)?))
    } else if names::valid_tag(r) {
        Ok(Reference::Tag(r.to_owned()))
    } else {
        Err(ApiError::detail(Code::TagInvalid, format!("invalid tag {r:?}")))
    }
}

async fn get_manifest(st: Arc<Storage>, name: String, reference: String, head: bool) -> Reply {
    let r = parse_reference(&reference)?;
    let found = blocking(move || {
        let d = match r {
            Reference::Digest(d) => d,
            Reference::Tag(t) => match st.resolve_tag(&name, &t)? {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        st.manifest(&name, &d)
    })
    .await?;
    let Some(m) = found else {
        return Err(ApiError::detail(Code::ManifestUnknown, serde_json::json!({ "reference": reference })));
    };
    let len = m.bytes.len();
    let mut resp = if head { Response::new(Body::empty()) } else { Response::new(Body::from(m.bytes)) };
    set(&mut resp, header::CONTENT_TYPE, &m.media_type);
    set(&mut resp, header::CONTENT_LENGTH, &len.to_string());
    set(&mut resp, CONTENT_DIGEST, &m.digest.to_string());
    set(&mut resp, header::ETAG, &format!("\"{}\"", m.digest));
    Ok(resp)
}

async fn put_manifest(st: Arc<Storage>, name: String, reference: String, req: Request<Incoming>) -> Reply {
    let r = parse_reference(&reference)?;
    // The spec's `?tag=` parameters: more tags for a manifest pushed by digest.
    let tag_params: Vec<String> = serde_urlencoded::from_str::<Vec<(String, String)>>(req.uri().query().unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v)
        .collect();
    if tag_params.len() > MAX_TAG_PARAMS {
        return Err(ApiError::detail(Code::TagInvalid, format!("more than {MAX_TAG_PARAMS} tag parameters"))
            .with_status(StatusCode::URI_TOO_LONG));
    }
    if let Some(bad) = tag_params.iter().find(|t| !names::valid_tag(t)) {
        return Err(ApiError::detail(Code::TagInvalid, format!("invalid tag {bad:?}")));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned());
    let body = http_body_util::Limited::new(req.into_body(), manifest::MAX_MANIFEST);
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::detail(Code::SizeInvalid, "manifest larger than 4 MiB")
                .with_status(StatusCode::PAYLOAD_TOO_LARGE));
        }
        Err(e) => return Err(ApiError::detail(Code::ManifestInvalid, format!("reading the manifest: {e}"))),
    };
    let checked = manifest::check(content_type.as_deref(), &bytes)?;
    let digest = match &r {
        Reference::Digest(d) => d.algorithm().digest(&bytes),
        Reference::Tag(_) => {
            // A tag names the canonical (sha256) digest, unless this repository already
            // holds these very bytes under sha512, pushed by that digest: then the tag
            // names the manifest the client pushed, not a second copy of it.
            let sha512 = Algorithm::Sha512.digest(&bytes);
            let (st2, repo, d) = (st.clone(), name.clone(), sha512.clone());
            if blocking(move || st2.manifest(&repo, &d)).await?.is_some() { sha512 } else { Digest::of(&bytes) }
        }
    };
    let mut tags = match r {
        Reference::Digest(d) if d != digest => {
            return Err(ApiError::detail(Code::DigestInvalid, format!("the manifest's digest is {digest}, not {d}")));
        }
        Reference::Digest(_) => Vec::new(),
        Reference::Tag(t) => vec![t],
    };
    let accepted_params = tag_params.clone();
    for t in tag_params {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let (d, repo, subject) = (digest.clone(), name.clone(), checked.subject.clone());
    let missing = blocking(move || {
        st.put_manifest(
            &repo,
            &d,
            checked.media_type,
            &bytes,
            &tags,
            &checked.blobs,
            &checked.manifests,
            checked.subject.as_ref(),
        )
    })
    .await?;
    if let Some((first, rest)) = missing.split_first() {
        let mut e = ApiError::detail(Code::ManifestBlobUnknown, first.to_string());
        for m in rest {
            e = e.and(Code::ManifestBlobUnknown, m.to_string());
        }
        return Err(e);
    }
    let mut resp = empty(StatusCode::CREATED);
    set(&mut resp, header::LOCATION, &format!("/v2/{name}/manifests/{digest}"));
    set(&mut resp, CONTENT_DIGEST, &digest.to_string());
    set(&mut resp, header::CONTENT_LENGTH, "0");
    if let Some(s) = subject {
        set(&mut resp, OCI_SUBJECT, &s.to_string());
    }
    for t in accepted_params {
        if let Ok(v) = HeaderValue::from_str(&t) {
            resp.headers_mut().append(OCI_TAG, v);
        }
    }
    Ok(resp)
}

async fn delete_manifest(st: Arc<Storage>, name: String, reference: String) -> Reply {
    let r = parse_reference(&reference)?;
    let removed = blocking(move || match r {
        Reference::Digest(d) => st.delete_manifest(&name, &d),
        Reference::Tag(t) => st.delete_tag(&name, &t),
    })
    .await?;
    if !removed {
        return Err(ApiError::detail(Code::ManifestUnknown, serde_json::json!({ "reference": reference })));
    }
    Ok(accepted())
}

fn accepted() -> Response<Body> {
    let mut r = empty(StatusCode::ACCEPTED);
    set(&mut r, header::CONTENT_LENGTH, "0");
    r
}

// ---- blobs ----

/// A single byte range of a `Range: bytes=…` header over `len` bytes: `Ok(None)` when the
/// header is absent or not one we serve partially (then the whole blob is sent, as RFC
/// 9110 allows), `Err` when it cannot be satisfied.
fn byte_range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => (start, end.min(len.saturating_sub(1))),
        // A last byte before the first: nothing to send (the conformance suite wants 416).
        (Ok(_), Ok(_)) => return Err(()),
        (Ok(start), Err(_)) if b.is_empty() => (start, len.saturating_sub(1)),
        (Err(_), Ok(suffix)) if a.is_empty() => {
            if suffix == 0 {
                return Err(());
            }
            (len.saturating_sub(suffix), len.saturating_sub(1))
        }
        _ => return Ok(None),
    };
    if range.0 >= len {
        return Err(());
    }
    Ok(Some(range))
}

async fn get_blob(st: Arc<Storage>, name: String, digest: String, headers: &HeaderMap, head: bool) -> Reply {
    let d = parse_digest(&digest)?;
    let (dd, st2) = (d.clone(), st.clone());
    let Some((mut file, len)) = blocking(move || st2.open_blob(&name, &dd)).await? else {
        return Err(ApiError::detail(Code::BlobUnknown, d.to_string()));
    };
    let range = match byte_range(headers, len) {
        Ok(r) => r,
        Err(()) => {
            return Err(ApiError::detail(Code::RangeInvalid, format!("blob has {len} bytes"))
                .with_header(header::CONTENT_RANGE, &format!("bytes */{len}")));
        }
    };
    let (start, count, status) = match range {
        Some((a, b)) => (a, b - a + 1, StatusCode::PARTIAL_CONTENT),
        None => (0, len, StatusCode::OK),
    };
    let body = if head {
        Body::empty()
    } else {
        file.seek(SeekFrom::Start(start))
            .map_err(|source| ApiError::from(Error::Io { path: st.blob_path(&d), source }))?;
        let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), count);
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(reader, 256 << 10))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    set(&mut resp, header::CONTENT_LENGTH, &count.to_string());
    set(&mut resp, header::CONTENT_TYPE, "application/octet-stream");
    set(&mut resp, header::ACCEPT_RANGES, "bytes");
    set(&mut resp, CONTENT_DIGEST, &d.to_string());
    set(&mut resp, header::ETAG, &format!("\"{d}\""));
    set(&mut resp, header::CACHE_CONTROL, "max-age=31536000");
    if let Some((a, b)) = range {
        set(&mut resp, header::CONTENT_RANGE, &format!("bytes {a}-{b}/{len}"));
    }
    Ok(resp)
}

async fn delete_blob(st: Arc<Storage>, name: String, digest: String) -> Reply {
    let d = parse_digest(&digest)?;
    let dd = d.clone();
    if !blocking(move || st.delete_blob(&name, &dd)).await? {
        return Err(ApiError::detail(Code::BlobUnknown, d.to_string()));
    }
    Ok(accepted())
}

// ---- uploads ----

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// distribution's `Range: 0-<last byte>` ("0-0" for an empty upload too).
fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn upload_reply(status: StatusCode, name: &str, id: &str, size: u64) -> Response<Body> {
    let mut r = empty(status);
    set(&mut r, header::LOCATION, &upload_location(name, id));
    set(&mut r, header::RANGE, &upload_range(size));
    set(&mut r, UPLOAD_UUID, id);
    set(&mut r, header::CONTENT_LENGTH, "0");
    r
}

fn created(name: &str, d: &Digest) -> Response<Body> {
    let mut r = empty(StatusCode::CREATED);
    set(&mut r, header::LOCATION, &format!("/v2/{name}/blobs/{d}"));
    set(&mut r, CONTENT_DIGEST, &d.to_string());
    set(&mut r, header::CONTENT_LENGTH, "0");
    r
}

async fn start_upload(
    st: Arc<Storage>,
    name: String,
    query: &HashMap<String, String>,
    req: Request<Incoming>,
) -> Reply {
    if let (Some(mount), Some(from)) = (query.get("mount"), query.get("from")) {
        let d = parse_digest(mount)?;
        if names::valid_repository(from) {
            let (st2, repo, from, dd) = (st.clone(), name.clone(), from.clone(), d.clone());
            if blocking(move || st2.mount(&repo, &from, &dd)).await? {
                return Ok(created(&name, &d));
            }
        }
        // Not mountable: an ordinary upload session, as the spec asks.
    }
    let digest = query.get("digest").map(|d| parse_digest(d)).transpose()?;
    // The spec's `digest-algorithm` says how to hash the bytes as they come; a monolithic
    // upload's digest says it too.
    let algorithm = match (&digest, query.get("digest-algorithm")) {
        (Some(d), _) => d.algorithm(),
        (None, Some(a)) => a
            .parse::<Algorithm>()
            .map_err(|e| ApiError::detail(Code::DigestInvalid, format!("digest-algorithm {a}: {e}")))?,
        (None, None) => Algorithm::Sha256,
    };
    let (st2, repo) = (st.clone(), name.clone());
    let id = blocking(move || st2.start_upload(&repo, algorithm)).await?;
    let Some(d) = digest else {
        return Ok(upload_reply(StatusCode::ACCEPTED, &name, &id, 0));
    };
    // Monolithic: the body is the whole blob.
    let result = write_and_commit(st.clone(), name.clone(), id.clone(), None, Some(d.clone()), req.into_body()).await;
    if !matches!(result, Ok(Some(_))) {
        let (repo, id) = (name.clone(), id.clone());
        let _ = blocking(move || st.cancel_upload(&repo, &id)).await;
    }
    match result? {
        Some(_) => Ok(created(&name, &d)),
        None => Err(ApiError::detail(Code::BlobUploadUnknown, id)),
    }
}

async fn upload_status(st: Arc<Storage>, name: String, id: String) -> Reply {
    let (repo, uid) = (name.clone(), id.clone());
    match blocking(move || st.upload_size(&repo, &uid)).await? {
        Some(size) => Ok(upload_reply(StatusCode::NO_CONTENT, &name, &id, size)),
        None => Err(ApiError::detail(Code::BlobUploadUnknown, id)),
    }
}

/// A `Content-Range` of a chunk: `<start>-<end>` (the spec's form; `bytes ` and `/total`
/// are tolerated).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || ApiError::detail(Code::RangeInvalid, "Content-Range must be <start>-<end>");
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s.strip_prefix("bytes").map(str::trim_start).unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim().parse::<u64>().map_err(|_| bad())?, b.trim().parse::<u64>().map_err(|_| bad())?);
    if b < a {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

async fn patch_upload(st: Arc<Storage>, name: String, id: String, req: Request<Incoming>) -> Reply {
    let range = content_range(req.headers())?;
    if let (Some((a, b)), Some(len)) = (range, content_length(req.headers())) {
        if b - a + 1 != len {
            return Err(ApiError::detail(Code::SizeInvalid, format!("Content-Range {a}-{b} but Content-Length {len}")));
        }
    }
    let (st2, repo, uid) = (st.clone(), name.clone(), id.clone());
    let body = req.into_body();
    // In a task of its own: a client that goes away cannot cancel it half way.
    let task = tokio::spawn(async move {
        let Some(slot) = st2.upload_slot(&repo, &uid) else {
            return Err(ApiError::detail(Code::BlobUploadUnknown, uid));
        };
        let mut guard = slot.lock_owned().await;
        let size = blocking({
            let (st, repo, uid) = (st2.clone(), repo.clone(), uid.clone());
            move || st.upload_size(&repo, &uid)
        })
        .await?
        .ok_or_else(|| ApiError::detail(Code::BlobUploadUnknown, uid.clone()))?;
        if range.is_some_and(|(a, _)| a != size) {
            return Err(ApiError::detail(
                Code::RangeInvalid,
                format!("the upload holds {size} bytes; a chunk must start there"),
            )
            .with_header(header::RANGE, &upload_range(size))
            .with_header(header::LOCATION, &upload_location(&repo, &uid))
            .with_header(UPLOAD_UUID, &uid));
        }
        let limit = range.map(|(a, b)| b - a + 1);
        let progress = guard.take().filter(|p| p.len == size);
        let file = blocking({
            let (st, repo, uid) = (st2.clone(), repo.clone(), uid.clone());
            move || st.upload_file(&repo, &uid)
        })
        .await?;
        let sunk = sink(body, file, progress, limit).await;
        *guard = sunk.progress;
        let new_size = size + sunk.written;
        if let Some(e) = sunk.io_error {
            return Err(Error::Io { path: format!("upload {uid}").into(), source: e }.into());
        }
        if sunk.overflow {
            return Err(ApiError::detail(Code::SizeInvalid, "the chunk is longer than its Content-Range")
                .with_header(header::RANGE, &upload_range(new_size)));
        }
        if let Some(e) = sunk.body_error {
            tracing::info!(upload = %uid, received = sunk.written, error = %e, "chunk cut short; the bytes received are kept");
            return Err(ApiError::detail(Code::BlobUploadInvalid, format!("reading the chunk: {e}"))
                .with_status(StatusCode::BAD_REQUEST)
                .with_header(header::RANGE, &upload_range(new_size)));
        }
        Ok(upload_reply(StatusCode::ACCEPTED, &repo, &uid, new_size))
    });
    task.await.map_err(|e| ApiError::detail(Code::Unknown, e.to_string()))?
}

async fn finish_upload(
    st: Arc<Storage>,
    name: String,
    id: String,
    query: &HashMap<String, String>,
    req: Request<Incoming>,
) -> Reply {
    let Some(d) = query.get("digest") else {
        return Err(ApiError::detail(Code::DigestInvalid, "digest missing"));
    };
    let d = parse_digest(d)?;
    match write_and_commit(
        st,
        name.clone(),
        id.clone(),
        content_range(req.headers())?,
        Some(d.clone()),
        req.into_body(),
    )
    .await?
    {
        Some(_) => Ok(created(&name, &d)),
        None => Err(ApiError::detail(Code::BlobUploadUnknown, id)),
    }
}

/// Appends `body` (the last chunk, possibly empty) to upload `id` and, with a digest,
/// commits it: the staged bytes must hash to it. `Ok(None)` when there is no such upload.
async fn write_and_commit(
    st: Arc<Storage>,
    name: String,
    id: String,
    range: Option<(u64, u64)>,
    digest: Option<Digest>,
    body: Incoming,
) -> Result<Option<Digest>, ApiError> {
    let task = tokio::spawn(async move {
        let Some(slot) = st.upload_slot(&name, &id) else {
            return Ok(None);
        };
        let mut guard = slot.lock_owned().await;
        let (st2, repo, uid) = (st.clone(), name.clone(), id.clone());
        let Some(size) = blocking(move || st2.upload_size(&repo, &uid)).await? else {
            return Ok(None);
        };
        if range.is_some_and(|(a, _)| a != size) {
            return Err(ApiError::detail(Code::RangeInvalid, format!("the upload holds {size} bytes"))
                .with_header(header::RANGE, &upload_range(size)));
        }
        let progress = guard.take().filter(|p| p.len == size);
        let (st2, repo, uid) = (st.clone(), name.clone(), id.clone());
        let file = blocking(move || st2.upload_file(&repo, &uid)).await?;
        let sunk = sink(body, file, progress, range.map(|(a, b)| b - a + 1)).await;
        if let Some(e) = sunk.io_error {
            return Err(Error::Io { path: format!("upload {id}").into(), source: e }.into());
        }
        if let Some(e) = sunk.body_error {
            *guard = sunk.progress;
            return Err(ApiError::detail(Code::BlobUploadInvalid, format!("reading the blob: {e}"))
                .with_status(StatusCode::BAD_REQUEST));
        }
        let Some(d) = digest else {
            *guard = sunk.progress;
            return Ok(None);
        };
        let (st2, repo, uid, dd) = (st.clone(), name.clone(), id.clone(), d.clone());
        let progress = sunk.progress;
        match blocking(move || st2.commit_upload(&repo, &uid, &dd, progress)).await? {
            Commit::Done => Ok(Some(d)),
            Commit::Unknown => Ok(None),
            Commit::Mismatch { actual } => Err(ApiError::detail(
                Code::DigestInvalid,
                serde_json::json!({ "expected": d.to_string(), "actual": actual.to_string() }),
            )),
        }
    });
    task.await.map_err(|e| ApiError::detail(Code::Unknown, e.to_string()))?
}

async fn cancel_upload(st: Arc<Storage>, name: String, id: String) -> Reply {
    let Some(slot) = st.upload_slot(&name, &id) else {
        return Err(ApiError::detail(Code::BlobUploadUnknown, id));
    };
    let _guard = slot.lock_owned().await;
    let uid = id.clone();
    if !blocking(move || st.cancel_upload(&name, &uid)).await? {
        return Err(ApiError::detail(Code::BlobUploadUnknown, id));
    }
    let mut r = empty(StatusCode::NO_CONTENT);
    set(&mut r, header::CONTENT_LENGTH, "0");
    Ok(r)
}

/// What streaming a body into a staged file came to.
struct Sunk {
    /// The upload's progress after the write, when still known to match the file.
    progress: Option<Progress>,
    /// Bytes appended.
    written: u64,
    /// More bytes came than the chunk's range allowed (the excess was dropped).
    overflow: bool,
    /// The body ended early (the client went away).
    body_error: Option<String>,
    /// Writing failed.
    io_error: Option<std::io::Error>,
}

/// Appends `body` to `file` through a bounded channel to a blocking writer that hashes
/// what it writes into `progress` and fsyncs at the end. At most `limit` bytes are taken.
async fn sink(body: Incoming, file: std::fs::File, progress: Option<Progress>, limit: Option<u64>) -> Sunk {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || {
        let (mut file, mut progress, mut written) = (file, progress, 0u64);
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = file.write_all(&chunk) {
                // Part of the chunk may be in the file: the progress no longer matches it.
                return (None, written, Some(e));
            }
            if let Some(p) = progress.as_mut() {
                p.hasher.update(&chunk);
                p.len += chunk.len() as u64;
            }
            written += chunk.len() as u64;
        }
        let synced = file.sync_data().err();
        (progress, written, synced)
    });
    let mut stream = Body::new(body).into_data_stream();
    let (mut received, mut overflow, mut body_error) = (0u64, false, None);
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(mut chunk) => {
                if let Some(l) = limit.filter(|l| received + chunk.len() as u64 > *l) {
                    chunk.truncate(usize::try_from(l - received).unwrap_or(0));
                    overflow = true;
                }
                received += chunk.len() as u64;
                if !chunk.is_empty() && tx.send(chunk).await.is_err() {
                    break;
                }
                if overflow {
                    break;
                }
            }
            Err(e) => {
                body_error = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    match writer.await {
        Ok((progress, written, io_error)) => Sunk { progress, written, overflow, body_error, io_error },
        Err(e) => Sunk {
            progress: None,
            written: 0,
            overflow,
            body_error,
            io_error: Some(std::io::Error::other(e.to_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            m
        };
        assert_eq!(byte_range(&HeaderMap::new(), 10), Ok(None));
        assert_eq!(byte_range(&h("bytes=2-4"), 10), Ok(Some((2, 4))));
        assert_eq!(byte_range(&h("bytes=2-"), 10), Ok(Some((2, 9))));
        assert_eq!(byte_range(&h("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(byte_range(&h("bytes=5-100"), 10), Ok(Some((5, 9))));
        assert_eq!(byte_range(&h("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(&h("bytes=5-0"), 10), Err(()));
        assert_eq!(byte_range(&h("bytes=1-2,4-5"), 10), Ok(None));
        assert_eq!(byte_range(&h("items=1-2"), 10), Ok(None));
    }

    #[test]
    fn pages() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(page(all.clone(), Some(2), None), (vec!["a".into(), "b".into()], true));
        assert_eq!(page(all.clone(), Some(2), Some("b")), (vec!["c".into(), "d".into()], false));
        assert_eq!(page(all.clone(), None, Some("c")), (vec!["d".into()], false));
        assert_eq!(page(all.clone(), Some(0), None), (vec![], false));
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(10), "0-9");
    }
}

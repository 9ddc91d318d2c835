//! `berth registry serve` in-process on an ephemeral 127.0.0.1 port, driven over real
//! HTTP (reqwest, raw TCP for cut connections, curl for TLS) through every endpoint of the
//! distribution API: uploads whole and in chunks (resumed after a cut connection), Range,
//! manifests and their reference checks, tags and catalog pagination, referrers, deletes,
//! mounts, bad digests and names, authentication, read-only mode, TLS, and a restart.

use std::time::Duration;

use berth_base::Digest;
use berth_registry::server::{self, Config, Handle};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

struct Reg {
    handle: Handle,
    url: String,
    http: Client,
    dir: tempfile::TempDir,
}

async fn start_with(dir: tempfile::TempDir, f: impl FnOnce(&mut Config)) -> Reg {
    let mut config = Config::new("127.0.0.1:0", dir.path().join("root"));
    f(&mut config);
    let handle = server::serve(config).await.expect("serve");
    let url = handle.url();
    // reqwest is built without a default crypto provider in this workspace (ring is chosen).
    let _ = rustls::crypto::ring::default_provider().install_default();
    Reg { handle, url, http: Client::new(), dir }
}

async fn start() -> Reg {
    start_with(tempfile::tempdir().unwrap(), |_| {}).await
}

impl Reg {
    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url))
    }

    async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        let r = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        d
    }

    async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &Value) -> reqwest::Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", media_type)
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap()
    }

    fn check(&self) {
        // The storage is locked by the running server: check a copy of the tree.
        let copy = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("cp")
            .args(["-a"])
            .arg(self.dir.path().join("root"))
            .arg(copy.path())
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::remove_file(copy.path().join("root/lock")).unwrap();
        let st = server::storage::Storage::open(&copy.path().join("root")).unwrap();
        let findings = st.check().unwrap();
        assert!(findings.is_empty(), "storage findings: {findings:?}");
    }
}

async fn error_code(r: reqwest::Response) -> (StatusCode, String, Value) {
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["errors"][0]["code"].as_str().unwrap_or("").to_owned(), v)
}

fn desc(media_type: &str, data: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": Digest::of(data).to_string(), "size": data.len()})
}

fn pseudo_random(n: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn version_check_and_errors_for_unknown_and_bad_names() {
    let reg = start().await;
    let r = reg.req(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["docker-distribution-api-version"], "registry/2.0");

    let (s, code, v) = error_code(reg.req(Method::GET, "/v2/nope/tags/list").send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::NOT_FOUND, "NAME_UNKNOWN"));
    assert_eq!(v["errors"][0]["message"], "repository name not known to registry");
    let (s, code, _) = error_code(reg.req(Method::GET, "/v2/Upper/tags/list").send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "NAME_INVALID"));
    let (s, code, _) = error_code(reg.req(Method::GET, "/v2/a..b/manifests/x").send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "NAME_INVALID"));
    let (s, code, v) = error_code(reg.req(Method::GET, "/v2/nope/manifests/latest").send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"));
    assert_eq!(v["errors"][0]["message"], "manifest unknown");
    let d = Digest::of(b"x");
    let r = reg.req(Method::HEAD, &format!("/v2/nope/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (s, code, _) = error_code(reg.req(Method::GET, &format!("/v2/nope/blobs/{d}")).send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"));
    for bad in ["sha256:xyz", "md5:abc", "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"] {
        let (s, code, _) = error_code(reg.req(Method::GET, &format!("/v2/a/blobs/{bad}")).send().await.unwrap()).await;
        assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"), "{bad}");
    }
    let (s, code, _) = error_code(
        reg.req(Method::GET, "/v2/a/blobs/uploads/00000000-0000-4000-8000-000000000000").send().await.unwrap(),
    )
    .await;
    assert_eq!((s, code.as_str()), (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"));
    let (s, code, _) = error_code(reg.req(Method::POST, "/v2/a/manifests/x").send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"));
    assert_eq!(reg.req(Method::GET, "/v3/").send().await.unwrap().status(), StatusCode::NOT_FOUND);
    reg.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn monolithic_uploads_are_verified_and_blobs_served_with_range() {
    let reg = start().await;
    let data = pseudo_random(100_000, 7);
    let d = reg.push_blob("lib/app", &data).await;

    let r = reg.req(Method::HEAD, &format!("/v2/lib/app/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "100000");
    assert_eq!(r.headers()["docker-content-digest"], d.to_string().as_str());
    let r = reg.req(Method::GET, &format!("/v2/lib/app/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), data);

    let r =
        reg.req(Method::GET, &format!("/v2/lib/app/blobs/{d}")).header("Range", "bytes=10-19").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/100000");
    assert_eq!(r.bytes().await.unwrap(), data[10..20]);
    let r =
        reg.req(Method::GET, &format!("/v2/lib/app/blobs/{d}")).header("Range", "bytes=99990-").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), data[99990..]);
    let r =
        reg.req(Method::GET, &format!("/v2/lib/app/blobs/{d}")).header("Range", "bytes=100000-").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */100000");

    // Another repository does not see the blob: knowing a digest grants nothing.
    let r = reg.req(Method::HEAD, &format!("/v2/other/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A wrong digest stores nothing.
    let wrong = Digest::of(b"something else");
    let r = reg
        .req(Method::POST, &format!("/v2/lib/app/blobs/uploads/?digest={wrong}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let (s, code, v) = error_code(r).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    assert_eq!(v["errors"][0]["detail"]["actual"], d.to_string());
    assert_eq!(
        reg.req(Method::HEAD, &format!("/v2/lib/app/blobs/{wrong}")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert!(!reg.dir.path().join(format!("root/blobs/sha256/{}/{}", &wrong.hex()[..2], wrong.hex())).exists());

    // POST then a single PUT with the whole body.
    let r = reg.req(Method::POST, "/v2/lib/app/blobs/uploads/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let other = b"second blob".to_vec();
    let d2 = Digest::of(&other);
    let r = reg.req(Method::PUT, &format!("{loc}?digest={d2}")).body(other.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["location"], format!("/v2/lib/app/blobs/{d2}").as_str());
    assert_eq!(r.headers()["docker-content-digest"], d2.to_string().as_str());
    reg.check();
    reg.handle.shutdown().await;
}

async fn upload_status(reg: &Reg, loc: &str) -> (StatusCode, Option<String>) {
    let r = reg.req(Method::GET, loc).send().await.unwrap();
    (r.status(), r.headers().get("range").map(|v| v.to_str().unwrap().to_owned()))
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_upload_resumes_after_a_cut_connection() {
    let reg = start().await;
    let data = pseudo_random(3000, 3);
    let d = Digest::of(&data);
    let r = reg.req(Method::POST, "/v2/chunky/blobs/uploads/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["range"], "0-0");
    let id = r.headers()["docker-upload-uuid"].to_str().unwrap().to_owned();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(loc, format!("/v2/chunky/blobs/uploads/{id}"));

    let r = reg
        .req(Method::PATCH, &loc)
        .header("Content-Range", "0-999")
        .header("Content-Type", "application/octet-stream")
        .body(data[..1000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["range"], "0-999");
    assert_eq!(r.headers()["docker-upload-uuid"], id.as_str());

    // The next chunk's connection is cut after 400 of its 1000 bytes.
    let mut tcp = tokio::net::TcpStream::connect(reg.handle.addr()).await.unwrap();
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\nContent-Range: 1000-1999\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&data[1000..1400]).await.unwrap();
    tcp.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(tcp);
    // The bytes that arrived are kept: the status says where to resume.
    let mut range = None;
    for _ in 0..50 {
        let (s, r) = upload_status(&reg, &loc).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        range = r;
        if range.as_deref() == Some("0-1399") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(range.as_deref(), Some("0-1399"));

    // A chunk that does not continue the upload is refused with the current range.
    let r = reg
        .req(Method::PATCH, &loc)
        .header("Content-Range", "2000-2999")
        .body(data[2000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["range"], "0-1399");
    // Resume from the reported offset, then finish with the last bytes in the PUT.
    let r = reg
        .req(Method::PATCH, &loc)
        .header("Content-Range", "1400-2499")
        .body(data[1400..2500].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["range"], "0-2499");
    // A blob is not visible before the upload completes.
    assert_eq!(
        reg.req(Method::HEAD, &format!("/v2/chunky/blobs/{d}")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let r = reg.req(Method::PUT, &format!("{loc}?digest={d}")).body(data[2500..].to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let got = reg.req(Method::GET, &format!("/v2/chunky/blobs/{d}")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(got, data);
    let (s, _) = upload_status(&reg, &loc).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a finished upload is gone");

    // Streamed chunks (no Content-Range), then a wrong digest: the upload is dropped.
    let r = reg.req(Method::POST, "/v2/chunky/blobs/uploads/").send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    for part in data.chunks(1024) {
        let r = reg.req(Method::PATCH, &loc).body(part.to_vec()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let wrong = Digest::of(b"nope");
    let (s, code, _) = error_code(reg.req(Method::PUT, &format!("{loc}?digest={wrong}")).send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    assert_eq!(upload_status(&reg, &loc).await.0, StatusCode::NOT_FOUND);
    let (s, code, _) = error_code(reg.req(Method::PUT, &loc).send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"), "PUT without a digest");

    // DELETE cancels.
    let r = reg.req(Method::POST, "/v2/chunky/blobs/uploads/").send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    reg.req(Method::PATCH, &loc).body(b"abc".to_vec()).send().await.unwrap();
    assert_eq!(reg.req(Method::DELETE, &loc).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let (s, code, _) = error_code(reg.req(Method::DELETE, &loc).send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"));
    reg.check();
    reg.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_survive_a_restart_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start_with(dir, |_| {}).await;
    let data = pseudo_random(5000, 9);
    let r = reg.req(Method::POST, "/v2/r/blobs/uploads/").send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    reg.req(Method::PATCH, &loc).body(data[..2000].to_vec()).send().await.unwrap();
    let Reg { handle, dir, .. } = reg;
    handle.shutdown().await;
    let reg = start_with(dir, |_| {}).await;
    assert_eq!(upload_status(&reg, &loc).await, (StatusCode::NO_CONTENT, Some("0-1999".to_owned())));
    // The hash is rebuilt from the staged bytes.
    let d = Digest::of(&data);
    let r = reg.req(Method::PUT, &format!("{loc}?digest={d}")).body(data[2000..].to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(reg.req(Method::GET, &format!("/v2/r/blobs/{d}")).send().await.unwrap().bytes().await.unwrap(), data);
    reg.check();
    reg.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_tags_catalog_referrers_mounts_and_deletes() {
    let reg = start().await;
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = pseudo_random(4096, 1);
    let cd = reg.push_blob("app", config).await;
    let ld = reg.push_blob("app", &layer).await;
    let missing = b"never pushed";
    let mut manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &layer), desc("application/vnd.oci.image.layer.v1.tar+gzip", missing)],
    });
    // A layer the repository lacks.
    let (s, code, v) = error_code(reg.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"));
    assert_eq!(v["errors"][0]["detail"], Digest::of(missing).to_string());
    // ... or holds only in another repository.
    let other_only = reg.push_blob("elsewhere", b"other layer").await;
    manifest["layers"][1] = desc("application/vnd.oci.image.layer.v1.tar+gzip", b"other layer");
    let (_, code, _) = error_code(reg.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await).await;
    assert_eq!(code, "MANIFEST_BLOB_UNKNOWN");
    // A cross-repository mount links it.
    let r = reg
        .req(Method::POST, &format!("/v2/app/blobs/uploads/?mount={other_only}&from=elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["location"], format!("/v2/app/blobs/{other_only}").as_str());
    // Mounting what the source lacks starts an ordinary upload instead.
    let r = reg
        .req(Method::POST, &format!("/v2/app/blobs/uploads/?mount={}&from=elsewhere", Digest::of(b"zz")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers().contains_key("docker-upload-uuid"));

    let bytes = serde_json::to_vec(&manifest).unwrap();
    let md = Digest::of(&bytes);
    let r = reg.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["docker-content-digest"], md.to_string().as_str());
    assert_eq!(r.headers()["location"], format!("/v2/app/manifests/{md}").as_str());
    for reference in ["v1".to_owned(), md.to_string()] {
        let r = reg.req(Method::GET, &format!("/v2/app/manifests/{reference}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], OCI_MANIFEST);
        assert_eq!(r.headers()["docker-content-digest"], md.to_string().as_str());
        assert_eq!(r.bytes().await.unwrap(), bytes, "served byte for byte");
        let r = reg.req(Method::HEAD, &format!("/v2/app/manifests/{reference}")).send().await.unwrap();
        assert_eq!(r.headers()["content-length"], bytes.len().to_string().as_str());
    }
    // A digest reference must match the body.
    let (s, code, _) =
        error_code(reg.put_manifest("app", &Digest::of(b"x").to_string(), OCI_MANIFEST, &manifest).await).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    // Content-Type and mediaType must agree; garbage is refused.
    let (_, code, _) = error_code(reg.put_manifest("app", "bad", DOCKER_MANIFEST, &manifest).await).await;
    assert_eq!(code, "MANIFEST_INVALID");
    let r = reg
        .req(Method::PUT, "/v2/app/manifests/bad")
        .header("Content-Type", OCI_MANIFEST)
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await.1, "MANIFEST_INVALID");

    // A Docker schema 2 manifest and a Docker manifest list over it, and an OCI index
    // with a child the repository lacks.
    let docker = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": desc("application/vnd.docker.container.image.v1+json", config),
        "layers": [desc("application/vnd.docker.image.rootfs.diff.tar.gzip", &layer)]});
    let dbytes = serde_json::to_vec(&docker).unwrap();
    assert_eq!(reg.put_manifest("app", "docker", DOCKER_MANIFEST, &docker).await.status(), StatusCode::CREATED);
    let list = json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": Digest::of(&dbytes).to_string(), "size": dbytes.len(),
         "platform": {"architecture": "amd64", "os": "linux"}}]});
    assert_eq!(reg.put_manifest("app", "list", DOCKER_LIST, &list).await.status(), StatusCode::CREATED);
    let r = reg.req(Method::GET, "/v2/app/manifests/list").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], DOCKER_LIST);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(OCI_MANIFEST, b"absent")]});
    let (s, code, _) = error_code(reg.put_manifest("app", "index", OCI_INDEX, &index).await).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"));

    // Referrers: an artifact whose subject is the image.
    let empty = reg.push_blob("app", b"{}").await;
    let artifact = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [desc("text/plain", &layer)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": md.to_string(), "size": bytes.len()},
        "annotations": {"org.example": "yes"}});
    let abytes = serde_json::to_vec(&artifact).unwrap();
    let ad = Digest::of(&abytes);
    let r = reg.put_manifest("app", &ad.to_string(), OCI_MANIFEST, &artifact).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["oci-subject"], md.to_string().as_str());
    let r = reg.req(Method::GET, &format!("/v2/app/referrers/{md}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], OCI_INDEX);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], ad.to_string());
    assert_eq!(v["manifests"][0]["artifactType"], "application/vnd.example.sbom");
    assert_eq!(v["manifests"][0]["annotations"]["org.example"], "yes");
    assert_eq!(v["manifests"][0]["size"], abytes.len());
    let r =
        reg.req(Method::GET, &format!("/v2/app/referrers/{md}?artifactType=application/other")).send().await.unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    assert_eq!(r.json::<Value>().await.unwrap()["manifests"], json!([]));
    let r = reg.req(Method::GET, &format!("/v2/app/referrers/{}", Digest::of(b"none"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "no referrers is an empty index, never 404");

    // Tags, paginated with Link.
    for t in ["b", "a", "c", "d"] {
        assert_eq!(reg.put_manifest("app", t, OCI_MANIFEST, &manifest).await.status(), StatusCode::CREATED);
    }
    let r = reg.req(Method::GET, "/v2/app/tags/list").send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"name": "app", "tags": ["a", "b", "c", "d", "docker", "list", "v1"]})
    );
    let r = reg.req(Method::GET, "/v2/app/tags/list?n=2").send().await.unwrap();
    assert_eq!(r.headers()["link"], "</v2/app/tags/list?last=b&n=2>; rel=\"next\"");
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["a", "b"]));
    let r = reg.req(Method::GET, "/v2/app/tags/list?n=2&last=list").send().await.unwrap();
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["v1"]));
    let (s, code, _) = error_code(reg.req(Method::GET, "/v2/app/tags/list?n=-1").send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID"));

    // Catalog, paginated.
    let r = reg.req(Method::GET, "/v2/_catalog").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"repositories": ["app", "elsewhere"]}));
    let r = reg.req(Method::GET, "/v2/_catalog?n=1").send().await.unwrap();
    assert_eq!(r.headers()["link"], "</v2/_catalog?last=app&n=1>; rel=\"next\"");
    let r = reg.req(Method::GET, "/v2/_catalog?n=1&last=app").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"repositories": ["elsewhere"]}));

    // Deletes: a tag, then the manifest by digest (its other tags go with it).
    assert_eq!(reg.req(Method::DELETE, "/v2/app/manifests/a").send().await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(
        error_code(reg.req(Method::GET, "/v2/app/manifests/a").send().await.unwrap()).await.1,
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        reg.req(Method::DELETE, &format!("/v2/app/manifests/{md}")).send().await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    for reference in ["v1".to_owned(), "b".to_owned(), md.to_string()] {
        let (s, code, _) =
            error_code(reg.req(Method::GET, &format!("/v2/app/manifests/{reference}")).send().await.unwrap()).await;
        assert_eq!((s, code.as_str()), (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"));
    }
    let r = reg.req(Method::GET, "/v2/app/tags/list").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["docker", "list"]));
    assert_eq!(
        reg.req(Method::DELETE, &format!("/v2/app/manifests/{ad}")).send().await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let v: Value = reg.req(Method::GET, &format!("/v2/app/referrers/{md}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["manifests"], json!([]));
    // Blob delete.
    assert_eq!(
        reg.req(Method::DELETE, &format!("/v2/app/blobs/{cd}")).send().await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        reg.req(Method::HEAD, &format!("/v2/app/blobs/{cd}")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let (s, code, _) = error_code(reg.req(Method::DELETE, &format!("/v2/app/blobs/{cd}")).send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"));
    assert_eq!(reg.req(Method::HEAD, &format!("/v2/app/blobs/{ld}")).send().await.unwrap().status(), StatusCode::OK);
    reg.check();
    reg.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_with_bcrypt_htpasswd() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("alice:{}\n", bcrypt::hash("s3cret", 5).unwrap())).unwrap();
    let reg = start_with(dir, |c| c.htpasswd = Some(htpasswd.clone())).await;
    for creds in [None, Some(("alice", "wrong")), Some(("bob", "s3cret"))] {
        let mut rq = reg.req(Method::GET, "/v2/");
        if let Some((u, p)) = creds {
            rq = rq.basic_auth(u, Some(p));
        }
        let r = rq.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{creds:?}");
        assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"berth-registry\"");
        let v: Value = r.json().await.unwrap();
        let e = &v["errors"][0];
        // What docker prints: `unauthorized: authentication required`.
        assert_eq!(
            format!("{}: {}", e["code"].as_str().unwrap().to_lowercase(), e["message"].as_str().unwrap()),
            "unauthorized: authentication required"
        );
    }
    let r = reg.req(Method::GET, "/v2/").basic_auth("alice", Some("s3cret")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let d = Digest::of(b"data");
    let r = reg.req(Method::POST, &format!("/v2/x/blobs/uploads/?digest={d}")).body("data").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "every endpoint needs credentials");
    let r = reg
        .req(Method::POST, &format!("/v2/x/blobs/uploads/?digest={d}"))
        .basic_auth("alice", Some("s3cret"))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    reg.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_refuses_writes() {
    let reg = start().await;
    let d = reg.push_blob("r", b"kept").await;
    let Reg { handle, dir: old, .. } = reg;
    handle.shutdown().await;
    let reg = start_with(old, |c| c.read_only = true).await;
    assert_eq!(reg.req(Method::GET, &format!("/v2/r/blobs/{d}")).send().await.unwrap().status(), StatusCode::OK);
    for (m, p) in [
        (Method::POST, "/v2/r/blobs/uploads/".to_owned()),
        (Method::DELETE, format!("/v2/r/blobs/{d}")),
        (Method::PUT, "/v2/r/manifests/x".to_owned()),
    ] {
        let (s, code, _) = error_code(reg.req(m, &p).body("{}").send().await.unwrap()).await;
        assert_eq!((s, code.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"), "{p}");
    }
    assert_eq!(reg.req(Method::HEAD, &format!("/v2/r/blobs/{d}")).send().await.unwrap().status(), StatusCode::OK);
    reg.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg = start_with(dir, |c| c.tls = Some((cert.clone(), key.clone()))).await;
    assert!(reg.url.starts_with("https://"));
    let curl = |extra: &[&str]| {
        std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(extra)
            .arg(format!("{}/v2/", reg.url))
            .output()
            .unwrap()
    };
    let ok = curl(&["--cacert", cert.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "200");
    let untrusted = curl(&[]);
    assert!(!untrusted.status.success(), "an unknown CA is refused by the client");
    // Plain HTTP to the TLS port gets no answer.
    let mut tcp = tokio::net::TcpStream::connect(reg.handle.addr()).await.unwrap();
    tcp.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"));
    reg.handle.shutdown().await;
    // Bad TLS files are a clear error at start.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("c"), "not a cert").unwrap();
    let mut c = Config::new("127.0.0.1:0", bad.path().join("root"));
    c.tls = Some((bad.path().join("c"), bad.path().join("c")));
    let e = server::serve(c).await.err().expect("refused");
    assert!(e.to_string().contains("TLS certificate"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sha512_content_tag_parameters_and_inverted_ranges() {
    use berth_registry::server::digest::Algorithm;
    let reg = start().await;
    let sha512 = |data: &[u8]| Algorithm::Sha512.digest(data);
    // Monolithic, by the digest's algorithm.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cd = sha512(config);
    let r = reg.req(Method::POST, &format!("/v2/app/blobs/uploads/?digest={cd}")).body(config.to_vec()).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::CREATED);
    // Chunked with the spec's digest-algorithm; and one hashed as sha256 while it came.
    let layer = pseudo_random(70_000, 9);
    let ld = sha512(&layer);
    for alg in ["?digest-algorithm=sha512", ""] {
        let r = reg.req(Method::POST, &format!("/v2/app/blobs/uploads/{alg}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        let r = reg.req(Method::PATCH, &loc).header("Content-Range", "0-69999").body(layer.clone()).send().await;
        assert_eq!(r.unwrap().status(), StatusCode::ACCEPTED);
        let r = reg.req(Method::PUT, &format!("{loc}?digest={ld}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["docker-content-digest"], ld.to_string().as_str());
    }
    let (s, code, _) =
        error_code(reg.req(Method::POST, "/v2/app/blobs/uploads/?digest-algorithm=md5").send().await.unwrap()).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
    let r = reg.req(Method::GET, &format!("/v2/app/blobs/{ld}")).send().await.unwrap();
    assert_eq!(r.headers()["docker-content-digest"], ld.to_string().as_str());
    assert_eq!(r.bytes().await.unwrap().as_ref(), layer.as_slice());
    assert_eq!(
        reg.req(Method::GET, &format!("/v2/app/blobs/{}", Digest::of(&layer))).send().await.unwrap().status(),
        404
    );
    // A last byte before the first cannot be satisfied.
    let r = reg.req(Method::GET, &format!("/v2/app/blobs/{ld}")).header("Range", "bytes=500-0").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // A manifest by its sha512 digest, tagged by `tag` parameters.
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld.to_string(), "size": layer.len()}],
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let md = sha512(&bytes);
    let r = reg
        .req(Method::PUT, &format!("/v2/app/manifests/{md}?tag=v1&tag=latest"))
        .header("Content-Type", OCI_MANIFEST)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["docker-content-digest"], md.to_string().as_str());
    let tags: Vec<_> = r.headers().get_all("oci-tag").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert_eq!(tags, ["v1", "latest"]);
    for reference in ["v1".to_owned(), "latest".to_owned(), md.to_string()] {
        let r = reg.req(Method::GET, &format!("/v2/app/manifests/{reference}")).send().await.unwrap();
        assert_eq!(r.headers()["docker-content-digest"], md.to_string().as_str(), "{reference}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
    // A tag push of bytes held under sha512 names that digest; new bytes get sha256.
    let r = reg.put_manifest("app", "again", OCI_MANIFEST, &manifest).await;
    assert_eq!(r.headers()["docker-content-digest"], md.to_string().as_str());
    let (s, code, _) = error_code(
        reg.req(Method::PUT, &format!("/v2/app/manifests/{md}?tag=bad%20tag"))
            .header("Content-Type", OCI_MANIFEST)
            .body(bytes.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "TAG_INVALID"));
    let r = reg.req(Method::DELETE, &format!("/v2/app/manifests/{md}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg.req(Method::GET, "/v2/app/tags/list").send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!([]));
    reg.check();
    reg.handle.shutdown().await;
}

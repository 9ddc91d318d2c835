//! Errors in Docker's JSON shape and in printable words (issue 12, defect 8): a method no
//! route serves (POST `/_ping`) is dockerd's 404 `page not found`, a bad `filters` or path
//! parameter is a 400 that says why in `{"message": …}`, and a garbage tar is described
//! without echoing its binary bytes.

use std::process::Command;

use berth_e2e::{Daemon, ok, text};

/// Sends one request with curl over the daemon's socket; returns (status, body).
fn curl(d: &Daemon, method: &str, path: &str, data: Option<&std::path::Path>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-g", "-X", method, "-o", "-", "-w", "\n%{http_code}", "--unix-socket"]).arg(&d.socket);
    if let Some(f) = data {
        c.args(["-H", "Content-Type: application/x-tar", "--data-binary"]).arg(format!("@{}", f.display()));
    }
    c.arg(format!("http://localhost{path}"));
    let out = ok(&c.output().expect("run curl"));
    let (body, code) = out.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_owned())
}

/// The `message` of a Docker error body (which must be one).
fn message(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    v["message"].as_str().unwrap_or_else(|| panic!("no message: {body}")).to_owned()
}

fn printable(s: &str) -> bool {
    s.chars().all(|c| c == ' ' || c.is_ascii_graphic())
}

#[test]
fn errors_are_dockers_json_in_printable_words() {
    let d = Daemon::start();
    for (m, p) in [("POST", "/_ping"), ("POST", "/v1.41/_ping"), ("DELETE", "/_ping"), ("PUT", "/version")] {
        let (code, body) = curl(&d, m, p, None);
        assert_eq!((code, body.as_str()), (404, r#"{"message":"page not found"}"#), "{m} {p}");
    }
    for p in ["/containers/json?filters=nope", "/images/json?filters=%7B%22dangling%22%3A5%7D", "/networks?filters=["] {
        let (code, body) = curl(&d, "GET", &format!("/v1.41{p}"), None);
        // Networks may not be served yet: then it is the one 404, still JSON.
        assert!(code == 400 || (code == 404 && p.starts_with("/networks")), "{p}: {code} {body}");
        let msg = message(&body);
        assert!(!msg.is_empty() && printable(&msg), "{p}: {msg:?}");
    }
    // A path parameter that does not decode is refused in the same JSON shape.
    let (code, body) = curl(&d, "GET", "/v1.41/containers/%ff/json", None);
    assert_eq!(code, 400, "{body}");
    assert_eq!(message(&body), "Invalid URL: Invalid UTF-8 in `id`");

    // A "tar" of binary garbage: the error describes it in printable text.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let file = d.dir.path().join("garbage.tar");
    std::fs::write(&file, &garbage).unwrap();
    let (code, body) = curl(&d, "POST", "/v1.41/images/create?fromSrc=-&repo=junk", Some(&file));
    assert!(code == 400 || code == 200, "{code} {body}");
    // dockerd answers an import's failure inside the 200 progress stream, or as a 400.
    let msg = if code == 400 {
        message(&body)
    } else {
        let last = body.lines().last().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(last).unwrap();
        v["error"].as_str().or(v["errorDetail"]["message"].as_str()).unwrap_or_default().to_owned()
    };
    assert!(msg.starts_with("invalid tar header in layer: "), "{msg:?}");
    assert!(printable(&msg), "{msg:?}");
    let out = d.berth(&["import", file.to_str().unwrap(), "junk:1"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.trim_end().chars().all(|c| c == ' ' || c == '\n' || c.is_ascii_graphic()), "{err:?}");
    assert!(!ok(&d.berth(&["images", "-q"])).contains('\u{fffd}'));
}

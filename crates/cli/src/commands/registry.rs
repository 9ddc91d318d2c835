//! Registry commands: pull, push, login, logout, `manifest inspect`. Credentials live where docker keeps them
//! (`$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`: `auths`, or the
//! `credsStore` / `credHelpers` helpers), and go to the daemon in `X-Registry-Auth`.
//! Progress is drawn as docker draws it: a line per layer, redrawn in place on a terminal.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use base64::Engine as _;
use berth_api::Client;
use berth_api::ClientError;
use berth_api::client::JsonStream;
use berth_api::client::distribution::AuthConfig;
use berth_api::client::manifest::RemoteManifest;
use berth_api::models::OciPlatform;
use clap::{Args, Subcommand};

use super::Res;
use crate::CliError;
use crate::output::{err_line, out};

/// Docker Hub's key in config.json.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

#[cfg_attr(doc, doc = "`pull`.")]
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Image name
    pub name: String,
}

#[cfg_attr(doc, doc = "`push`.")]
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Image name
    pub name: String,
}

#[cfg_attr(doc, doc = "`login`.")]
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long = "password")]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Server
    pub server: Option<String>,
}

#[cfg_attr(doc, doc = "`logout`.")]
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Server
    pub server: Option<String>,
}

/// The config.json key of the registry serving `name` (a familiar image name).
pub fn registry_key(name: &str) -> String {
    match berth_base::Reference::parse(name) {
        Ok(r) if r.domain() != berth_base::reference::DEFAULT_DOMAIN => r.domain().to_owned(),
        _ => INDEX_SERVER.to_owned(),
    }
}

/// The config.json key of a server named on the command line (docker's normalisation).
fn server_key(server: Option<&str>) -> String {
    match server.map(str::trim).filter(|s| !s.is_empty()) {
        None => INDEX_SERVER.to_owned(),
        Some(s) => {
            let host = s.trim_start_matches("https://").trim_start_matches("http://");
            let host = host.split('/').next().unwrap_or(host);
            if matches!(host, "index.docker.io" | "docker.io" | "registry-1.docker.io") {
                INDEX_SERVER.to_owned()
            } else {
                host.to_owned()
            }
        }
    }
}

fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".docker")
}

fn read_config() -> Result<serde_json::Value, CliError> {
    let p = config_dir().join("config.json");
    match std::fs::read(&p) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| CliError::Message(format!("loading config file {}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(CliError::Message(format!("loading config file {}: {e}", p.display()))),
    }
}

fn write_config(v: &serde_json::Value) -> Result<(), CliError> {
    let dir = config_dir();
    std::fs::create_dir_all(&dir)?;
    let p = dir.join("config.json");
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let data = serde_json::to_vec_pretty(v).map_err(|e| CliError::Message(e.to_string()))?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &p)?;
    Ok(())
}

fn helper_for(cfg: &serde_json::Value, key: &str) -> Option<String> {
    cfg.get("credHelpers")
        .and_then(|h| h.get(key))
        .and_then(|v| v.as_str())
        .or_else(|| cfg.get("credsStore").and_then(|v| v.as_str()))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn run_helper(helper: &str, action: &str, input: &str) -> Result<String, CliError> {
    let prog = format!("docker-credential-{helper}");
    let mut child = std::process::Command::new(&prog)
        .arg(action)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CliError::Message(format!("error getting credentials - err: exec: \"{prog}\": {e}")))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(input.as_bytes())?;
    }
    let o = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    if !o.status.success() {
        return Err(CliError::Message(format!("error from {prog} {action}: {text}")));
    }
    Ok(text)
}

/// The stored credentials for config.json key `key` (anonymous when none).
pub fn load_auth(key: &str) -> Result<AuthConfig, CliError> {
    let cfg = read_config()?;
    if let Some(h) = helper_for(&cfg, key) {
        let text = match run_helper(&h, "get", key) {
            Ok(t) => t,
            // "credentials not found in native keychain": anonymous.
            Err(_) => return Ok(AuthConfig { server_address: key.to_owned(), ..Default::default() }),
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let user = v.get("Username").and_then(|u| u.as_str()).unwrap_or_default().to_owned();
        let secret = v.get("Secret").and_then(|u| u.as_str()).unwrap_or_default().to_owned();
        return Ok(if user == "<token>" {
            AuthConfig { identity_token: secret, server_address: key.to_owned(), ..Default::default() }
        } else {
            AuthConfig { username: user, password: secret, server_address: key.to_owned(), ..Default::default() }
        });
    }
    let entry = cfg.get("auths").and_then(|a| a.get(key)).cloned().unwrap_or_default();
    let mut a = AuthConfig { server_address: key.to_owned(), ..Default::default() };
    if let Some(enc) = entry.get("auth").and_then(|v| v.as_str())
        && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(enc)
        && let Some((u, p)) = String::from_utf8_lossy(&raw).split_once(':')
    {
        a.username = u.to_owned();
        a.password = p.to_owned();
    }
    if let Some(t) = entry.get("identitytoken").and_then(|v| v.as_str()) {
        a.identity_token = t.to_owned();
    }
    Ok(a)
}

/// The `X-Registry-Config` value `build` sends: every stored credential, keyed by server, so
/// the daemon can pull private bases (as the docker CLI sends `GetAllCredentials`).
pub fn registry_config() -> Result<String, CliError> {
    let cfg = read_config()?;
    let mut keys: Vec<String> = Vec::new();
    for section in ["auths", "credHelpers"] {
        if let Some(m) = cfg.get(section).and_then(|v| v.as_object()) {
            keys.extend(m.keys().cloned());
        }
    }
    keys.sort();
    keys.dedup();
    let mut all = std::collections::BTreeMap::new();
    for k in keys {
        let a = load_auth(&k)?;
        if !a.username.is_empty() || !a.identity_token.is_empty() {
            all.insert(k, a);
        }
    }
    let json = serde_json::to_vec(&all).map_err(|e| CliError::Message(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE.encode(json))
}

fn store_auth(key: &str, a: &AuthConfig) -> Result<(), CliError> {
    let mut cfg = read_config()?;
    if let Some(h) = helper_for(&cfg, key) {
        let (user, secret) = if a.identity_token.is_empty() {
            (a.username.as_str(), a.password.as_str())
        } else {
            ("<token>", a.identity_token.as_str())
        };
        let input = serde_json::json!({ "ServerURL": key, "Username": user, "Secret": secret }).to_string();
        run_helper(&h, "store", &input)?;
        return Ok(());
    }
    let mut entry = serde_json::Map::new();
    if a.identity_token.is_empty() {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.username, a.password));
        entry.insert("auth".into(), enc.into());
    } else {
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{}:", a.username));
        entry.insert("auth".into(), enc.into());
        entry.insert("identitytoken".into(), a.identity_token.clone().into());
    }
    if !cfg.is_object() {
        cfg = serde_json::json!({});
    }
    let auths = cfg.as_object_mut().and_then(|o| {
        o.entry("auths").or_insert_with(|| serde_json::json!({}));
        o.get_mut("auths").and_then(|a| a.as_object_mut())
    });
    if let Some(auths) = auths {
        auths.insert(key.to_owned(), serde_json::Value::Object(entry));
    }
    write_config(&cfg)
}

/// Draws a pull or push progress stream as docker does; returns the last error, if any.
pub async fn display(s: &mut JsonStream, quiet: bool) -> Res {
    let tty = !quiet && std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
    let mut lines: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut stdout = std::io::stdout();
    while let Some(m) = s.next_message().await {
        let m = m?;
        if let Some(e) = m.error_detail.map(|d| d.message).or(m.error) {
            return Err(CliError::Message(e));
        }
        if quiet {
            continue;
        }
        let Some(status) = m.status else { continue };
        let id = m.id.filter(|i| !i.is_empty());
        let text = match (&id, &m.progress) {
            (Some(id), Some(p)) if tty => format!("{id}: {status} {p}"),
            (Some(id), _) => format!("{id}: {status}"),
            (None, _) => status.clone(),
        };
        if !tty {
            // Docker leaves per-byte progress out of non-terminal output.
            if m.progress_detail.is_some_and(|d| d.total > 0 && d.current > 0) && status != "Pull complete" {
                continue;
            }
            let _ = writeln!(stdout, "{text}");
            continue;
        }
        match id.as_ref().and_then(|i| index.get(i).copied()) {
            Some(i) => {
                let up = lines.len() - i;
                let _ = write!(stdout, "\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B");
                lines[i] = text;
            }
            None => {
                if let Some(id) = id {
                    index.insert(id, lines.len());
                }
                lines.push(text.clone());
                let _ = writeln!(stdout, "{text}");
            }
        }
        let _ = stdout.flush();
    }
    Ok(())
}

/// `pull`.
pub async fn pull(c: &Client, a: PullArgs) -> Res {
    let r = berth_base::Reference::parse(&a.name)
        .map_err(|e| CliError::Message(format!("invalid reference format: {e}")))?;
    if a.all_tags && (r.tag().is_some() || r.digest().is_some()) {
        return Err(CliError::Message("tag can't be used with --all-tags/-a".into()));
    }
    let (name, tag) = if a.all_tags {
        (r.familiar_name(), None)
    } else {
        let t =
            r.digest().map(|d| d.to_string()).or_else(|| r.tag().map(str::to_owned)).unwrap_or_else(|| "latest".into());
        if r.tag().is_none() && r.digest().is_none() && !a.quiet {
            out("Using default tag: latest\n");
        }
        (r.familiar_name(), Some(t))
    };
    let auth = load_auth(&registry_key(&a.name))?;
    let mut s = c.pull_image_auth(&name, tag.as_deref(), a.platform.as_deref(), &auth).await?;
    display(&mut s, a.quiet).await?;
    if !a.all_tags {
        let full = match r.digest() {
            Some(d) => format!("{}@{d}", r.name()),
            None => r.with_default_tag().to_string(),
        };
        out(&format!("{full}\n"));
    }
    Ok(())
}

/// `push`.
pub async fn push(c: &Client, a: PushArgs) -> Res {
    let r = berth_base::Reference::parse(&a.name)
        .map_err(|e| CliError::Message(format!("invalid reference format: {e}")))?;
    if a.all_tags && r.tag().is_some() {
        return Err(CliError::Message("tag can't be used with --all-tags/-a".into()));
    }
    if r.digest().is_some() {
        return Err(CliError::Message("cannot push a digest reference".into()));
    }
    let tag = if a.all_tags {
        None
    } else {
        if r.tag().is_none() && !a.quiet {
            out("Using default tag: latest\n");
        }
        Some(r.tag().unwrap_or("latest").to_owned())
    };
    let auth = load_auth(&registry_key(&a.name))?;
    let mut s = c.push_image(&r.familiar_name(), tag.as_deref(), &auth).await?;
    display(&mut s, a.quiet).await?;
    if a.quiet {
        out(&format!("{}\n", r.clone().with_default_tag().familiar()));
    }
    Ok(())
}

/// `login`.
pub async fn login(c: &Client, a: LoginArgs) -> Res {
    let key = server_key(a.server.as_deref());
    let mut password = a.password.clone();
    if a.password_stdin {
        if password.is_some() {
            return Err(CliError::Message("--password and --password-stdin are mutually exclusive".into()));
        }
        if a.username.is_none() {
            return Err(CliError::Message("Must provide --username with --password-stdin".into()));
        }
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        password = Some(s.trim_end_matches(['\n', '\r']).to_owned());
    } else if password.is_some() {
        err_line("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let stored = load_auth(&key)?;
    let username = match a.username.clone() {
        Some(u) => u,
        None if !stored.username.is_empty() && password.is_none() => stored.username.clone(),
        None => prompt("Username: ")?,
    };
    if username.is_empty() {
        return Err(CliError::Message("Error: Non-null Username Required".into()));
    }
    let password = match password {
        Some(p) => p,
        None if username == stored.username && !stored.password.is_empty() => stored.password.clone(),
        None => prompt("Password: ")?,
    };
    if password.is_empty() {
        return Err(CliError::Message("Error: Password Required".into()));
    }
    let auth = AuthConfig {
        username: username.clone(),
        password: password.clone(),
        server_address: key.clone(),
        ..Default::default()
    };
    let res = c.login(&auth).await.map_err(|e| CliError::Message(format!("Error response from daemon: {}", e)))?;
    let mut keep = auth;
    if !res.identity_token.is_empty() {
        keep.password = String::new();
        keep.identity_token = res.identity_token;
    }
    store_auth(&key, &keep)?;
    out(&format!("{}\n", if res.status.is_empty() { "Login Succeeded" } else { &res.status }));
    Ok(())
}

fn prompt(label: &str) -> Result<String, CliError> {
    let mut e = std::io::stderr();
    let _ = write!(e, "{label}");
    let _ = e.flush();
    let mut s = String::new();
    std::io::stdin().read_line(&mut s)?;
    Ok(s.trim_end_matches(['\n', '\r']).to_owned())
}

/// `logout`.
pub async fn logout(a: LogoutArgs) -> Res {
    let key = server_key(a.server.as_deref());
    let mut cfg = read_config()?;
    let mut found = false;
    if let Some(h) = helper_for(&cfg, &key) {
        found = run_helper(&h, "erase", &key).is_ok();
    }
    if let Some(auths) = cfg.get_mut("auths").and_then(|a| a.as_object_mut())
        && auths.remove(&key).is_some()
    {
        found = true;
        write_config(&cfg)?;
    }
    if !found {
        out(&format!("Not logged in to {key}\n"));
        return Ok(());
    }
    out(&format!("Removing login credentials for {key}\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(registry_key("busybox"), INDEX_SERVER);
        assert_eq!(registry_key("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000");
        assert_eq!(server_key(None), INDEX_SERVER);
        assert_eq!(server_key(Some("https://index.docker.io/v1/")), INDEX_SERVER);
        assert_eq!(server_key(Some("http://127.0.0.1:5000")), "127.0.0.1:5000");
    }
}

/// `manifest` subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ManifestCmd {
    /// Display an image manifest, or manifest list
    Inspect(ManifestInspectArgs),
}

#[cfg_attr(doc, doc = "`manifest inspect`.")]
#[derive(Debug, Args)]
pub struct ManifestInspectArgs {
    /// Allow communication with an insecure registry
    #[arg(long = "insecure")]
    pub insecure: bool,
    /// Output additional info including layers and platform
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Image reference
    pub name: String,
}

/// `manifest …`.
pub async fn manifest(c: &Client, cmd: ManifestCmd) -> Res {
    match cmd {
        ManifestCmd::Inspect(a) => manifest_inspect(c, a).await,
    }
}

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// `manifest inspect [-v] [--insecure] REF`: the daemon fetches (it holds the registry
/// settings and credentials flow), this prints as the docker CLI prints.
async fn manifest_inspect(c: &Client, a: ManifestInspectArgs) -> Res {
    let r = berth_base::Reference::parse(&a.name)
        .map_err(|e| CliError::Message(format!("invalid reference format: {e}")))?;
    let r = if r.digest().is_none() { r.with_default_tag() } else { r };
    let full = r.to_string();
    let auth = load_auth(&registry_key(&a.name))?;
    let m = match c.remote_manifest(&full, a.insecure, &auth).await {
        Ok(m) => m,
        // The daemon words it as the docker CLI does (`no such manifest: REF`), which prints
        // it without the daemon prefix: it is the CLI's own finding there.
        Err(ClientError::Daemon { status: 404, message }) if message.starts_with("no such manifest") => {
            return Err(CliError::Message(message));
        }
        Err(e) => return Err(e.into()),
    };
    out(&render_manifest(&full, &m, a.verbose)?);
    Ok(())
}

/// What `docker manifest inspect` prints for `m` (fetched as `full`), newline included.
pub fn render_manifest(full: &str, m: &RemoteManifest, verbose: bool) -> Result<String, CliError> {
    if m.media_type != DOCKER_LIST && m.media_type != OCI_INDEX {
        // Not verbose: the bytes as served, re-indented with tabs (Go's json.Indent).
        let raw = m.bytes()?;
        manifest_field(full, m)?;
        if !verbose {
            return Ok(go_indent(&raw, "\t") + "\n");
        }
        let e = verbose_entry(full, m, &m.platform.clone().unwrap_or_default())?;
        return Ok(go_indent(e.as_bytes(), "\t") + "\n");
    }
    if !verbose {
        // A manifest list rebuilt from the fetched manifests, as docker/distribution's
        // manifestlist.FromDescriptors marshals it (three-space indent; an OCI index when
        // the first manifest is an OCI one).
        let list_type =
            if m.manifests.first().is_some_and(|c| c.media_type == OCI_MANIFEST) { OCI_INDEX } else { DOCKER_LIST };
        let mut entries = Vec::new();
        for c in &m.manifests {
            manifest_field(full, c)?;
            entries.push(format!(
                "{{\"mediaType\":{},\"size\":{},\"digest\":{},\"platform\":{}}}",
                js(&c.media_type),
                c.size,
                js(&c.digest),
                platform_json(&c.platform.clone().unwrap_or_default())
            ));
        }
        let doc =
            format!("{{\"schemaVersion\":2,\"mediaType\":{},\"manifests\":[{}]}}", js(list_type), entries.join(","));
        return Ok(go_indent(doc.as_bytes(), "   ") + "\n");
    }
    let base = full.split_once('@').map(|(n, _)| n).unwrap_or(full);
    let mut entries = Vec::new();
    for c in &m.manifests {
        entries.push(verbose_entry(&format!("{base}@{}", c.digest), c, &c.platform.clone().unwrap_or_default())?);
    }
    Ok(go_indent(format!("[{}]", entries.join(",")).as_bytes(), "\t") + "\n")
}

/// `SchemaV2Manifest` or `OCIManifest`: the field docker's `ImageManifest` holds `m` in.
fn manifest_field(full: &str, m: &RemoteManifest) -> Result<&'static str, CliError> {
    match m.media_type.as_str() {
        DOCKER_MANIFEST => Ok("SchemaV2Manifest"),
        OCI_MANIFEST => Ok("OCIManifest"),
        DOCKER_LIST | OCI_INDEX => Err(CliError::Message(format!("{full} is a manifest list"))),
        other => Err(CliError::Message(format!("unsupported manifest type: {other}"))),
    }
}

/// One docker `ImageManifest` (`Ref`, `Descriptor`, `Raw` (the bytes, base64), the
/// manifest), compact.
fn verbose_entry(reference: &str, m: &RemoteManifest, p: &OciPlatform) -> Result<String, CliError> {
    let field = manifest_field(reference, m)?;
    let raw = String::from_utf8(m.bytes()?).map_err(|e| CliError::Message(format!("manifest is not UTF-8: {e}")))?;
    Ok(format!(
        "{{\"Ref\":{},\"Descriptor\":{{\"mediaType\":{},\"digest\":{},\"size\":{},\"platform\":{}}},\"Raw\":{},\"{field}\":{}}}",
        js(reference),
        js(&m.media_type),
        js(&m.digest),
        m.size,
        platform_json(p),
        js(&m.raw),
        raw.trim()
    ))
}

/// A platform as Go marshals it: `architecture` and `os` always, the rest when set.
fn platform_json(p: &OciPlatform) -> String {
    let mut s = format!(
        "{{\"architecture\":{},\"os\":{}",
        js(p.architecture.as_deref().unwrap_or_default()),
        js(p.os.as_deref().unwrap_or_default())
    );
    if let Some(v) = p.os_version.as_deref().filter(|v| !v.is_empty()) {
        s.push_str(&format!(",\"os.version\":{}", js(v)));
    }
    if let Some(f) = p.os_features.as_ref().filter(|f| !f.is_empty()) {
        s.push_str(&format!(",\"os.features\":{}", serde_json::to_string(f).unwrap_or_default()));
    }
    if let Some(v) = p.variant.as_deref().filter(|v| !v.is_empty()) {
        s.push_str(&format!(",\"variant\":{}", js(v)));
    }
    s.push('}');
    s
}

fn js(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Re-indents JSON text token by token as Go's `json.Indent` does: insignificant space
/// dropped, a newline and `indent` per level after `{`, `[` and `,`, `": "` after keys,
/// `{}` and `[]` kept compact, whitespace after the value kept. Hand-written because the
/// output must keep the registry's bytes (key order, number spelling, escapes) exactly,
/// which re-serializing through serde_json would not.
pub fn go_indent(src: &[u8], indent: &str) -> String {
    let end = src.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(0, |i| i + 1);
    let mut out: Vec<u8> = Vec::with_capacity(src.len() * 2);
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(indent.as_bytes());
        }
    };
    let (mut depth, mut in_str, mut esc, mut opened) = (0usize, false, false, false);
    for &c in &src[..end] {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if opened && c != b'}' && c != b']' {
            opened = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            b'"' => {
                in_str = true;
                out.push(c);
            }
            b'{' | b'[' => {
                out.push(c);
                opened = true;
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b'}' | b']' => {
                if opened {
                    opened = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.extend_from_slice(&src[end..]);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod manifest_tests {
    use super::*;

    #[test]
    fn indents_as_go_does() {
        let src = br#"{"a":[],"b":{},"c":[1,{"d":"x,\"y:{"}], "e" : 1.50e3}"#;
        assert_eq!(
            go_indent(src, "\t"),
            "{\n\t\"a\": [],\n\t\"b\": {},\n\t\"c\": [\n\t\t1,\n\t\t{\n\t\t\t\"d\": \"x,\\\"y:{\"\n\t\t}\n\t],\n\t\"e\": 1.50e3\n}"
        );
        assert_eq!(go_indent(b"  {\"a\":1}\n", "  "), "{\n  \"a\": 1\n}\n");
    }

    #[test]
    fn lists_are_rebuilt_with_three_spaces() {
        use base64::Engine as _;
        let child = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        let m = RemoteManifest {
            media_type: OCI_INDEX.into(),
            digest: "sha256:aa".into(),
            size: 10,
            raw: String::new(),
            platform: None,
            manifests: vec![RemoteManifest {
                media_type: OCI_MANIFEST.into(),
                digest: "sha256:bb".into(),
                size: child.len() as i64,
                raw: base64::engine::general_purpose::STANDARD.encode(child),
                platform: Some(OciPlatform {
                    architecture: Some("arm".into()),
                    os: Some("linux".into()),
                    variant: Some("v7".into()),
                    ..Default::default()
                }),
                manifests: vec![],
            }],
        };
        let s = render_manifest("r.example/a:1", &m, false).unwrap();
        assert!(s.starts_with("{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n   \"manifests\": [\n      {\n         \"mediaType\""), "{s}");
        assert!(s.contains("\"platform\": {\n            \"architecture\": \"arm\",\n            \"os\": \"linux\",\n            \"variant\": \"v7\"\n"), "{s}");
        let v = render_manifest("r.example/a:1", &m, true).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!(parsed[0]["Ref"], "r.example/a:1@sha256:bb");
        assert_eq!(parsed[0]["OCIManifest"]["schemaVersion"], 2);
        assert!(v.starts_with("[\n\t{\n\t\t\"Ref\": "), "{v}");
    }
}

//! Query parameters of the Engine API endpoints berth serves. The daemon deserializes them
//! and the client serializes them, so both sides agree by construction. Docker clients send
//! booleans as `1`/`0`/`true`/`false` and filters as JSON: both are accepted here.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Accepts Docker's spellings of a boolean query value.
pub fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = String::deserialize(d)?;
    match s.to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" => Ok(false),
        "1" | "true" | "yes" => Ok(true),
        other => Err(serde::de::Error::custom(format!("invalid boolean value: {other}"))),
    }
}

fn de_opt_num<'de, D: Deserializer<'de>, T: std::str::FromStr>(d: D) -> Result<Option<T>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| serde::de::Error::custom(format!("invalid number: {v}"))),
    }
}

/// Decoded `filters` parameter: name → accepted values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the JSON forms Docker clients send: `{"k":["v"]}` or the legacy `{"k":{"v":true}}`.
    pub fn parse(s: &str) -> Result<Filters, String> {
        if s.trim().is_empty() {
            return Ok(Filters::default());
        }
        let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("invalid filter: {e}"))?;
        let obj = v.as_object().ok_or("invalid filter: not an object")?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
                serde_json::Value::Object(m) => {
                    m.iter().filter(|(_, b)| b.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect()
                }
                serde_json::Value::String(s) => vec![s.clone()],
                _ => return Err(format!("invalid filter value for {k}")),
            };
            out.insert(k.clone(), list);
        }
        Ok(Filters(out))
    }

    /// The JSON form to send.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Values given for `key`.
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Adds a `key=value` filter as typed on the command line.
    pub fn add(&mut self, key: &str, value: &str) {
        self.0.entry(key.to_owned()).or_default().push(value.to_owned());
    }

    /// True when there are no filters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Filters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Filters::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Filters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_json())
    }
}

/// `POST /containers/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateContainer {
    /// Container name, with or without a leading `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `os/arch` the image must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// `GET /containers/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListContainers {
    /// Include stopped containers.
    #[serde(default, deserialize_with = "de_bool")]
    pub all: bool,
    /// Return at most this many, newest first (implies all).
    #[serde(default, deserialize_with = "de_opt_num", skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Return sizes (SizeRw, SizeRootFs).
    #[serde(default, deserialize_with = "de_bool")]
    pub size: bool,
    /// id, name, label, status, ancestor, exited, before, since.
    #[serde(default, skip_serializing_if = "Filters::is_empty")]
    pub filters: Filters,
}

/// `DELETE /containers/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemoveContainer {
    /// Kill a running container first.
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
    /// Remove anonymous volumes too.
    #[serde(default, deserialize_with = "de_bool")]
    pub v: bool,
    /// Remove a link (unsupported; accepted for compatibility).
    #[serde(default, deserialize_with = "de_bool")]
    pub link: bool,
}

/// `POST /containers/{id}/wait`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WaitContainer {
    /// `not-running` (default), `next-exit` or `removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// `POST /containers/{id}/attach`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AttachContainer {
    /// Stream output as it comes.
    #[serde(default, deserialize_with = "de_bool")]
    pub stream: bool,
    /// Replay the logs first.
    #[serde(default, deserialize_with = "de_bool")]
    pub logs: bool,
    /// Attach stdin.
    #[serde(default, deserialize_with = "de_bool")]
    pub stdin: bool,
    /// Attach stdout.
    #[serde(default, deserialize_with = "de_bool")]
    pub stdout: bool,
    /// Attach stderr.
    #[serde(default, deserialize_with = "de_bool")]
    pub stderr: bool,
    /// Key sequence that detaches.
    #[serde(default, rename = "detachKeys", skip_serializing_if = "Option::is_none")]
    pub detach_keys: Option<String>,
}

/// `POST /containers/{id}/resize`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Resize {
    /// Rows.
    #[serde(default, deserialize_with = "de_opt_num")]
    pub h: Option<u16>,
    /// Columns.
    #[serde(default, deserialize_with = "de_opt_num")]
    pub w: Option<u16>,
}

/// `POST /containers/{id}/stop`, `/restart`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StopContainer {
    /// Seconds to wait before killing.
    #[serde(default, deserialize_with = "de_opt_num", skip_serializing_if = "Option::is_none")]
    pub t: Option<i64>,
    /// Signal to send instead of the container's stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// `POST /containers/{id}/kill`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KillContainer {
    /// Signal name or number; default SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// `GET /containers/{id}/logs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Logs {
    /// Keep streaming new output.
    #[serde(default, deserialize_with = "de_bool")]
    pub follow: bool,
    /// Include stdout.
    #[serde(default, deserialize_with = "de_bool")]
    pub stdout: bool,
    /// Include stderr.
    #[serde(default, deserialize_with = "de_bool")]
    pub stderr: bool,
    /// Only lines after this time (unix seconds, possibly fractional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only lines before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Prefix each line with its RFC 3339 timestamp.
    #[serde(default, deserialize_with = "de_bool")]
    pub timestamps: bool,
    /// Number of lines from the end, or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
}

/// `GET /containers/{id}/json`, `GET /images/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InspectContainer {
    /// Include SizeRw and SizeRootFs.
    #[serde(default, deserialize_with = "de_bool")]
    pub size: bool,
}

/// `GET /images/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListImages {
    /// Include intermediate images.
    #[serde(default, deserialize_with = "de_bool")]
    pub all: bool,
    /// dangling, label, reference, before, since.
    #[serde(default, skip_serializing_if = "Filters::is_empty")]
    pub filters: Filters,
    /// Include digests.
    #[serde(default, deserialize_with = "de_bool")]
    pub digests: bool,
}

/// `POST /images/create` (pull or import).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateImage {
    /// Image to pull.
    #[serde(default, rename = "fromImage", skip_serializing_if = "Option::is_none")]
    pub from_image: Option<String>,
    /// `-` to import the request body as a rootfs tarball, or a URL.
    #[serde(default, rename = "fromSrc", skip_serializing_if = "Option::is_none")]
    pub from_src: Option<String>,
    /// Repository for the imported image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Tag (or digest) to pull or to give the imported image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Commit message for an import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Dockerfile instructions applied to an imported image (`changes` may repeat).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// `os/arch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// `POST /images/{name}/tag`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TagImage {
    /// Target repository.
    #[serde(default)]
    pub repo: String,
    /// Target tag; `latest` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// `DELETE /images/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemoveImage {
    /// Remove even if tagged in several repositories or used by a stopped container.
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
    /// Keep untagged parents.
    #[serde(default, deserialize_with = "de_bool")]
    pub noprune: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_docker_cli_queries() {
        let q: ListContainers =
            serde_urlencoded::from_str("all=1&filters=%7B%22status%22%3A%7B%22exited%22%3Atrue%7D%7D").unwrap();
        assert!(q.all);
        assert_eq!(q.filters.get("status"), ["exited"]);
        let q: ListContainers =
            serde_urlencoded::from_str("all=true&limit=3&filters=%7B%22name%22%3A%5B%22web%22%5D%7D").unwrap();
        assert_eq!(q.limit, Some(3));
        assert_eq!(q.filters.get("name"), ["web"]);
        let q: RemoveImage = serde_urlencoded::from_str("force=0&noprune=1").unwrap();
        assert!(!q.force && q.noprune);
        assert!(serde_urlencoded::from_str::<RemoveImage>("force=maybe").is_err());
        let q: Resize = serde_urlencoded::from_str("h=40&w=120").unwrap();
        assert_eq!((q.h, q.w), (Some(40), Some(120)));
        let mut f = Filters::default();
        f.add("label", "a=b");
        let s = serde_urlencoded::to_string(ListContainers { all: true, filters: f, ..Default::default() }).unwrap();
        assert!(s.contains("filters=%7B%22label%22"), "{s}");
    }
}

/// `POST /build`, the legacy builder's parameters. `t` repeats, so this type is encoded and
/// decoded by hand rather than through serde.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Build {
    /// Tags (`t`, repeated).
    pub tags: Vec<String>,
    /// Dockerfile path inside the context (or absolute with a local context).
    pub dockerfile: Option<String>,
    /// `remote`: a git repository or a URL to build from instead of an uploaded context.
    pub remote: Option<String>,
    /// `--build-arg`s (JSON object).
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
    /// `--label`s (JSON object).
    pub labels: BTreeMap<String, String>,
    /// `-q`.
    pub quiet: bool,
    /// `--network`.
    pub network_mode: Option<String>,
    /// `--platform`.
    pub platform: Option<String>,
    /// Remove intermediate containers (berth never leaves any; accepted).
    pub rm: bool,
    /// Secrets as `id=path` pairs (berth extension, honoured for local contexts only).
    pub secrets: BTreeMap<String, String>,
    /// `--ssh` agents as `id=socket path` pairs (berth extension, local daemons only).
    pub ssh: BTreeMap<String, String>,
    /// `--no-cache-filter` stages (berth extension; BuildKit passes it outside this API).
    pub no_cache_filter: Vec<String>,
    /// `--allow` entitlements (berth extension).
    pub allow: Vec<String>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<u64>,
    /// `--add-host` entries (`extrahosts`, comma-separated).
    pub extra_hosts: Vec<String>,
    /// Ask for per-step progress records ([`BuildProgress`] in `aux`, id
    /// [`BUILD_PROGRESS_ID`]) instead of the legacy builder's text (berth extension).
    pub progress_records: bool,
}

/// The `id` of the JSON messages that carry [`BuildProgress`] records.
pub const BUILD_PROGRESS_ID: &str = "berth.build.step";

/// One progress record of a build step, as berth's CLI asks for them: steps of stages
/// that build at the same time interleave, so every record names its step.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BuildProgress {
    /// Step number, 1-based over the steps being built.
    pub index: usize,
    /// `start`, `cached`, `output`, `done` or `error`.
    pub event: String,
    /// Steps in all (`start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
    /// The stage's name (`start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The instruction as written (`start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Output text (`output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Duration in seconds (`done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

impl Build {
    /// Encodes as a query string.
    pub fn to_query(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for t in &self.tags {
            pairs.push(("t", t.clone()));
        }
        if let Some(d) = &self.dockerfile {
            pairs.push(("dockerfile", d.clone()));
        }
        if let Some(r) = &self.remote {
            pairs.push(("remote", r.clone()));
        }
        if !self.build_args.is_empty() {
            pairs.push(("buildargs", serde_json::to_string(&self.build_args).unwrap_or_default()));
        }
        if let Some(t) = &self.target {
            pairs.push(("target", t.clone()));
        }
        if self.no_cache {
            pairs.push(("nocache", "1".into()));
        }
        if self.pull {
            pairs.push(("pull", "1".into()));
        }
        if !self.labels.is_empty() {
            pairs.push(("labels", serde_json::to_string(&self.labels).unwrap_or_default()));
        }
        if self.quiet {
            pairs.push(("q", "1".into()));
        }
        if let Some(n) = &self.network_mode {
            pairs.push(("networkmode", n.clone()));
        }
        if let Some(p) = &self.platform {
            pairs.push(("platform", p.clone()));
        }
        pairs.push(("rm", if self.rm { "1" } else { "0" }.into()));
        if !self.secrets.is_empty() {
            pairs.push(("berth-secrets", serde_json::to_string(&self.secrets).unwrap_or_default()));
        }
        if !self.ssh.is_empty() {
            pairs.push(("berth-ssh", serde_json::to_string(&self.ssh).unwrap_or_default()));
        }
        if !self.no_cache_filter.is_empty() {
            pairs.push(("berth-nocachefilter", serde_json::to_string(&self.no_cache_filter).unwrap_or_default()));
        }
        if self.progress_records {
            pairs.push(("berth-progress", "1".into()));
        }
        if !self.allow.is_empty() {
            pairs.push(("berth-allow", serde_json::to_string(&self.allow).unwrap_or_default()));
        }
        if let Some(s) = self.shm_size {
            pairs.push(("shmsize", s.to_string()));
        }
        if !self.extra_hosts.is_empty() {
            pairs.push(("extrahosts", self.extra_hosts.join(",")));
        }
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    }

    /// Decodes a query string as docker's clients send it.
    pub fn parse(q: &str) -> Result<Build, String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).map_err(|e| e.to_string())?;
        let mut b = Build { rm: true, ..Default::default() };
        let flag = |v: &str| -> Result<bool, String> {
            match v.to_ascii_lowercase().as_str() {
                "" | "0" | "false" => Ok(false),
                "1" | "true" => Ok(true),
                other => Err(format!("invalid boolean value: {other}")),
            }
        };
        let map = |k: &str, v: &str| -> Result<BTreeMap<String, String>, String> {
            if v.is_empty() {
                return Ok(BTreeMap::new());
            }
            // Docker sends null for build args without a value; they are skipped.
            let m: BTreeMap<String, Option<String>> =
                serde_json::from_str(v).map_err(|e| format!("invalid {k} parameter: {e}"))?;
            Ok(m.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
        };
        for (k, v) in pairs {
            match k.as_str() {
                "t" if !v.is_empty() => b.tags.push(v),
                "dockerfile" if !v.is_empty() => b.dockerfile = Some(v),
                "remote" if !v.is_empty() => b.remote = Some(v),
                "buildargs" => b.build_args = map(&k, &v)?,
                "target" if !v.is_empty() => b.target = Some(v),
                "nocache" => b.no_cache = flag(&v)?,
                "pull" => b.pull = flag(&v)?,
                "labels" => b.labels = map(&k, &v)?,
                "q" => b.quiet = flag(&v)?,
                "networkmode" if !v.is_empty() => b.network_mode = Some(v),
                "platform" if !v.is_empty() => b.platform = Some(v),
                "rm" => b.rm = flag(&v)?,
                "berth-secrets" => b.secrets = map(&k, &v)?,
                "berth-ssh" => b.ssh = map(&k, &v)?,
                "berth-nocachefilter" if !v.is_empty() => {
                    b.no_cache_filter =
                        serde_json::from_str(&v).map_err(|e| format!("invalid berth-nocachefilter parameter: {e}"))?
                }
                "berth-progress" => b.progress_records = flag(&v)?,
                "berth-allow" if !v.is_empty() => {
                    b.allow = serde_json::from_str(&v).map_err(|e| format!("invalid berth-allow parameter: {e}"))?
                }
                "shmsize" if !v.is_empty() && v != "0" => {
                    b.shm_size = Some(v.parse().map_err(|_| format!("invalid shmsize parameter: {v}"))?)
                }
                "extrahosts" => b.extra_hosts.extend(v.split(',').filter(|h| !h.is_empty()).map(str::to_owned)),
                _ => {}
            }
        }
        Ok(b)
    }
}

#[cfg(test)]
mod build_tests {
    use super::*;

    #[test]
    fn round_trip_and_docker_form() {
        let mut b = Build { tags: vec!["a:1".into(), "b".into()], no_cache: true, rm: true, ..Default::default() };
        b.build_args.insert("V".into(), "1 2".into());
        assert_eq!(Build::parse(&b.to_query()).unwrap(), b);
        let d = Build::parse(
            "t=x&t=y&buildargs=%7B%22A%22%3A%22b%22%2C%22N%22%3Anull%7D&nocache=1&dockerfile=train.dockerfile",
        )
        .unwrap();
        assert_eq!(d.tags, ["x", "y"]);
        assert_eq!(d.build_args.get("A").map(String::as_str), Some("b"));
        assert!(!d.build_args.contains_key("N"));
        assert_eq!(d.dockerfile.as_deref(), Some("train.dockerfile"));
        assert!(Build::parse("nocache=maybe").is_err());
    }
}

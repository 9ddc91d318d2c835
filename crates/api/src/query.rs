//! Query parameters of the Engine API endpoints berth serves. The daemon decodes them and
//! the client encodes them, so both sides agree by construction. Docker clients send
//! booleans as `1`/`0`/`true`/`false` and filters as JSON: both are accepted here.
//!
//! Decoding follows Go's `url.Values`, which is what dockerd reads: a parameter Docker
//! allows to repeat (`changes`, `t`) decodes into a list of every value, and a parameter
//! read once takes its FIRST value, as `Values.Get` does (docker-py sends `dockerfile=`
//! twice, the name first). `serde_urlencoded` rejects repeated keys for lists and keeps
//! the last value for the others, so the small decoder here ([`Values`]) replaces it on
//! the decoding side; `form_urlencoded` (rust-url's) still does the percent-decoding.

use std::collections::BTreeMap;

use serde::de::{self, DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize};

/// A query string that does not decode, said in words for the client's 400.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A parameter's value is not what the endpoint takes.
    #[error("invalid value for {key}: {reason}")]
    Value {
        /// The parameter.
        key: String,
        /// Why the value was refused.
        reason: String,
    },
    /// A parameter that carries JSON (`filters`, `buildargs`, `labels`…) is not valid JSON.
    #[error("invalid value for {key}: invalid JSON: {source}")]
    Json {
        /// The parameter.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// `filters` is JSON of the wrong shape.
    #[error("invalid value for filters: {0}")]
    Filters(String),
    /// A decoding failure not tied to one parameter.
    #[error("{0}")]
    Decode(String),
}

impl QueryError {
    /// The reason alone, without the parameter's name (for errors raised inside a value's
    /// own decoder, which [`Values::decode`] then attributes to the parameter).
    fn reason(&self) -> String {
        match self {
            QueryError::Value { reason, .. } => reason.clone(),
            QueryError::Json { source, .. } => format!("invalid JSON: {source}"),
            QueryError::Filters(r) | QueryError::Decode(r) => r.clone(),
        }
    }
}

impl de::Error for QueryError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        QueryError::Decode(msg.to_string())
    }
}

/// Go's `url.Values`: the `key=value` pairs of a query string, in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values(Vec<(String, String)>);

impl Values {
    /// Splits and percent-decodes a query string (`+` is a space, as in a form).
    pub fn parse(q: &str) -> Values {
        Values(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }

    /// The first value of `key`, as Go's `Values.Get` (what dockerd reads for a
    /// parameter it takes once).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Decodes into a query struct: list fields take every value, other fields the first.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, QueryError> {
        let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
        for (k, v) in &self.0 {
            match groups.iter_mut().find(|(g, _)| g == k) {
                Some((_, vs)) => vs.push(v),
                None => groups.push((k, vec![v])),
            }
        }
        T::deserialize(ValuesDeserializer { groups: groups.into_iter(), value: None })
    }
}

/// Decodes a query string (without the `?`) into a query struct, with Go's rules: see
/// [`Values::decode`].
pub fn from_query<T: DeserializeOwned>(q: &str) -> Result<T, QueryError> {
    Values::parse(q).decode()
}

struct ValuesDeserializer<'a, I: Iterator<Item = (&'a str, Vec<&'a str>)>> {
    groups: I,
    value: Option<(&'a str, Vec<&'a str>)>,
}

impl<'de, 'a, I: Iterator<Item = (&'a str, Vec<&'a str>)>> Deserializer<'de> for ValuesDeserializer<'a, I> {
    type Error = QueryError;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, 'a, I: Iterator<Item = (&'a str, Vec<&'a str>)>> de::MapAccess<'de> for ValuesDeserializer<'a, I> {
    type Error = QueryError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, QueryError> {
        match self.groups.next() {
            None => Ok(None),
            Some((k, vs)) => {
                self.value = Some((k, vs));
                seed.deserialize(k.into_deserializer()).map(Some)
            }
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, QueryError> {
        let (key, values) = self.value.take().ok_or_else(|| QueryError::Decode("a value without a key".to_owned()))?;
        seed.deserialize(ParamDeserializer(values))
            .map_err(|e| QueryError::Value { key: key.to_owned(), reason: e.reason() })
    }
}

/// The values of one parameter: a sequence when the field is a list, else the first value.
struct ParamDeserializer<'a>(Vec<&'a str>);

impl<'de> Deserializer<'de> for ParamDeserializer<'_> {
    type Error = QueryError;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_string(self.0.first().copied().unwrap_or_default().to_owned())
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, QueryError> {
        let items: Vec<String> = self.0.into_iter().map(str::to_owned).collect();
        visitor.visit_seq(de::value::SeqDeserializer::new(items.into_iter()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// Accepts Docker's spellings of a boolean query value.
pub fn de_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = String::deserialize(d)?;
    parse_bool(&s).ok_or_else(|| de::Error::custom(format!("{s:?} is not a boolean (1, 0, true or false)")))
}

/// Docker's spellings of a boolean query value; `None` for anything else.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" => Some(false),
        "1" | "true" | "yes" => Some(true),
        _ => None,
    }
}

fn de_opt_num<'de, D: Deserializer<'de>, T: std::str::FromStr>(d: D) -> Result<Option<T>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| de::Error::custom(format!("{v:?} is not a number"))),
    }
}

/// Decoded `filters` parameter: name → accepted values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the JSON forms Docker clients send: `{"k":["v"]}` or the legacy `{"k":{"v":true}}`.
    pub fn parse(s: &str) -> Result<Filters, QueryError> {
        if s.trim().is_empty() {
            return Ok(Filters::default());
        }
        let v: serde_json::Value =
            serde_json::from_str(s).map_err(|source| QueryError::Json { key: "filters".to_owned(), source })?;
        let obj = v.as_object().ok_or_else(|| QueryError::Filters("not a JSON object".to_owned()))?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
                serde_json::Value::Object(m) => {
                    m.iter().filter(|(_, b)| b.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect()
                }
                serde_json::Value::String(s) => vec![s.clone()],
                _ => return Err(QueryError::Filters(format!("the value of {k:?} is not a list of strings"))),
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
        Filters::parse(&s).map_err(|e| de::Error::custom(e.reason()))
    }
}

impl Serialize for Filters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_json())
    }
}

/// `POST /containers/create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateContainer {
    /// Container name, with or without a leading `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `os/arch` the image must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// `GET /containers/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitContainer {
    /// `not-running` (default), `next-exit` or `removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// `POST /containers/{id}/attach`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resize {
    /// Rows.
    #[serde(default, deserialize_with = "de_opt_num")]
    pub h: Option<u16>,
    /// Columns.
    #[serde(default, deserialize_with = "de_opt_num")]
    pub w: Option<u16>,
}

/// `POST /containers/{id}/stop`, `/restart`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StopContainer {
    /// Seconds to wait before killing.
    #[serde(default, deserialize_with = "de_opt_num", skip_serializing_if = "Option::is_none")]
    pub t: Option<i64>,
    /// Signal to send instead of the container's stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// `POST /containers/{id}/kill`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KillContainer {
    /// Signal name or number; default SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// `GET /containers/{id}/logs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InspectContainer {
    /// Include SizeRw and SizeRootFs.
    #[serde(default, deserialize_with = "de_bool")]
    pub size: bool,
}

/// `GET /images/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// `POST /images/create` (pull or import). It encodes as a list of pairs so that `changes`
/// repeats, as Docker's clients send it (a struct field cannot repeat in `serde_urlencoded`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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

impl Serialize for CreateImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let singles = [
            ("fromImage", &self.from_image),
            ("fromSrc", &self.from_src),
            ("repo", &self.repo),
            ("tag", &self.tag),
            ("message", &self.message),
        ];
        for (k, v) in singles {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        }
        pairs.extend(self.changes.iter().map(|c| ("changes", c.as_str())));
        if let Some(p) = &self.platform {
            pairs.push(("platform", p));
        }
        s.collect_seq(pairs)
    }
}

/// `POST /images/{name}/tag`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagImage {
    /// Target repository.
    #[serde(default)]
    pub repo: String,
    /// Target tag; `latest` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// `DELETE /images/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoveImage {
    /// Remove even if tagged in several repositories or used by a stopped container.
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
    /// Keep untagged parents.
    #[serde(default, deserialize_with = "de_bool")]
    pub noprune: bool,
}

/// `GET /volumes`, `POST /volumes/prune`, `POST /containers/prune`, `POST /images/prune`:
/// only filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FiltersOnly {
    /// The filters (`dangling`, `name`, `driver`, `label`, `label!`, `all`, `until`…).
    #[serde(default, skip_serializing_if = "Filters::is_empty")]
    pub filters: Filters,
}

/// `POST /containers/{id}/rename`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RenameContainer {
    /// The new name.
    #[serde(default)]
    pub name: String,
}

/// `GET /containers/{id}/top`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopContainer {
    /// Options for `ps` (default `-ef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ps_args: Option<String>,
}

fn yes() -> bool {
    true
}

/// `GET /containers/{id}/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Stream a sample each second (default) or answer once.
    #[serde(default = "yes", deserialize_with = "de_bool")]
    pub stream: bool,
    /// With `stream=false`: answer at once, without waiting for a second sample.
    #[serde(rename = "one-shot", default, deserialize_with = "de_bool")]
    pub one_shot: bool,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { stream: true, one_shot: false }
    }
}

/// `GET /events`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Events {
    /// Replay recorded events from this time (unix seconds, possibly fractional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Stop at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// type, event, container, image, label, volume, network, daemon, scope.
    #[serde(default, skip_serializing_if = "Filters::is_empty")]
    pub filters: Filters,
}

/// `DELETE /volumes/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoveVolume {
    /// Succeed even when the volume does not exist.
    #[serde(default, deserialize_with = "de_bool")]
    pub force: bool,
}

fn default_true() -> bool {
    true
}

/// `POST /commit`. Encoded as pairs so that `changes` repeats.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Commit {
    /// The container.
    #[serde(default)]
    pub container: String,
    /// Repository of the new image.
    #[serde(default)]
    pub repo: Option<String>,
    /// Its tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Commit message.
    #[serde(default)]
    pub comment: Option<String>,
    /// Author.
    #[serde(default)]
    pub author: Option<String>,
    /// Pause the container while committing (Docker's default).
    #[serde(default = "default_true", deserialize_with = "de_bool")]
    pub pause: bool,
    /// Dockerfile instructions applied to the new image's config.
    #[serde(default)]
    pub changes: Vec<String>,
}

impl Default for Commit {
    fn default() -> Self {
        Commit {
            container: String::new(),
            repo: None,
            tag: None,
            comment: None,
            author: None,
            pause: true,
            changes: Vec::new(),
        }
    }
}

impl Serialize for Commit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut pairs: Vec<(&str, &str)> = vec![("container", self.container.as_str())];
        for (k, v) in [("repo", &self.repo), ("tag", &self.tag), ("comment", &self.comment), ("author", &self.author)] {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        }
        pairs.push(("pause", if self.pause { "1" } else { "0" }));
        pairs.extend(self.changes.iter().map(|c| ("changes", c.as_str())));
        pairs.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_docker_cli_queries() {
        let q: ListContainers = from_query("all=1&filters=%7B%22status%22%3A%7B%22exited%22%3Atrue%7D%7D").unwrap();
        assert!(q.all);
        assert_eq!(q.filters.get("status"), ["exited"]);
        let q: ListContainers = from_query("all=true&limit=3&filters=%7B%22name%22%3A%5B%22web%22%5D%7D").unwrap();
        assert_eq!(q.limit, Some(3));
        assert_eq!(q.filters.get("name"), ["web"]);
        let q: RemoveImage = from_query("force=0&noprune=1").unwrap();
        assert!(!q.force && q.noprune);
        assert!(from_query::<RemoveImage>("force=maybe").is_err());
        let q: Resize = from_query("h=40&w=120").unwrap();
        assert_eq!((q.h, q.w), (Some(40), Some(120)));
        let mut f = Filters::default();
        f.add("label", "a=b");
        let s = serde_urlencoded::to_string(ListContainers { all: true, filters: f, ..Default::default() }).unwrap();
        assert!(s.contains("filters=%7B%22label%22"), "{s}");
    }

    #[test]
    fn repeated_parameters_decode_as_go_reads_them() {
        // `changes` repeats (docker import -c … -c …): every value, in order.
        let q: CreateImage = from_query("fromSrc=-&repo=img&changes=ENV+K%3DV&changes=CMD+%5B%22sh%22%5D").unwrap();
        assert_eq!(q.changes, ["ENV K=V", "CMD [\"sh\"]"]);
        assert_eq!(q.from_src.as_deref(), Some("-"));
        // A parameter read once: the first value wins, as Go's url.Values.Get.
        let q: CreateImage = from_query("fromSrc=-&repo=first&repo=second").unwrap();
        assert_eq!(q.repo.as_deref(), Some("first"));
        let q: KillContainer = from_query("signal=HUP&signal=KILL").unwrap();
        assert_eq!(q.signal.as_deref(), Some("HUP"));
        // And the client sends `changes` the same way.
        let mut c = CreateImage { from_src: Some("-".into()), ..Default::default() };
        c.changes = vec!["ENV A=1".into(), "ENV B=2".into()];
        let s = serde_urlencoded::to_string(&c).unwrap();
        assert_eq!(s, "fromSrc=-&changes=ENV+A%3D1&changes=ENV+B%3D2");
        assert_eq!(from_query::<CreateImage>(&s).unwrap(), c);
    }

    #[test]
    fn bad_queries_say_what_is_wrong_in_words() {
        let e = from_query::<RemoveImage>("force=maybe").unwrap_err().to_string();
        assert_eq!(e, "invalid value for force: \"maybe\" is not a boolean (1, 0, true or false)");
        let e = from_query::<StopContainer>("t=soon").unwrap_err().to_string();
        assert_eq!(e, "invalid value for t: \"soon\" is not a number");
        let e = from_query::<ListContainers>("filters=%7Bnope").unwrap_err().to_string();
        assert!(e.starts_with("invalid value for filters: invalid JSON: "), "{e}");
        let e = from_query::<ListContainers>("filters=%5B1%5D").unwrap_err().to_string();
        assert_eq!(e, "invalid value for filters: not a JSON object");
        let e = from_query::<ListContainers>("filters=%7B%22a%22%3A1%7D").unwrap_err().to_string();
        assert_eq!(e, "invalid value for filters: the value of \"a\" is not a list of strings");
        // Unknown parameters are ignored, as dockerd does.
        assert!(from_query::<RemoveImage>("whatever=1&force=1").unwrap().force);
        assert!(from_query::<RemoveImage>("").is_ok());
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
    /// `cachefrom` (JSON list): images whose layers the cache may reuse; none other.
    pub cache_from: Vec<String>,
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
    /// The stage's index in the Dockerfile (`start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_index: Option<usize>,
    /// The step's index in its stage, 0 for its FROM (`start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
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
        if !self.cache_from.is_empty() {
            pairs.push(("cachefrom", serde_json::to_string(&self.cache_from).unwrap_or_default()));
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

    /// Decodes a query string as docker's clients send it: `t` repeats, every other
    /// parameter is read once and its first value wins (see the module's comment).
    pub fn parse(q: &str) -> Result<Build, QueryError> {
        let v = Values::parse(q);
        let one = |k: &str| v.get(k).filter(|s| !s.is_empty()).map(str::to_owned);
        let flag = |k: &str, default: bool| -> Result<bool, QueryError> {
            match v.get(k) {
                None => Ok(default),
                Some(s) => parse_bool(s).ok_or_else(|| QueryError::Value {
                    key: k.to_owned(),
                    reason: format!("{s:?} is not a boolean (1, 0, true or false)"),
                }),
            }
        };
        let json = |k: &str| -> Result<Option<serde_json::Value>, QueryError> {
            match v.get(k).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => {
                    serde_json::from_str(s).map(Some).map_err(|source| QueryError::Json { key: k.to_owned(), source })
                }
            }
        };
        fn typed<T: DeserializeOwned>(k: &str, val: serde_json::Value) -> Result<T, QueryError> {
            serde_json::from_value(val).map_err(|source| QueryError::Json { key: k.to_owned(), source })
        }
        // Docker sends null for build args without a value; they are skipped.
        let map = |k: &str| -> Result<BTreeMap<String, String>, QueryError> {
            let Some(val) = json(k)? else { return Ok(BTreeMap::new()) };
            let m: BTreeMap<String, Option<String>> = typed(k, val)?;
            Ok(m.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
        };
        let list = |k: &str| -> Result<Vec<String>, QueryError> {
            match json(k)? {
                None => Ok(Vec::new()),
                Some(val) => typed(k, val),
            }
        };
        let shm_size = match v.get("shmsize").filter(|s| !s.is_empty() && *s != "0") {
            None => None,
            Some(s) => Some(s.parse().map_err(|_| QueryError::Value {
                key: "shmsize".to_owned(),
                reason: format!("{s:?} is not a number of bytes"),
            })?),
        };
        Ok(Build {
            tags: v.get_all("t").filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            dockerfile: one("dockerfile"),
            remote: one("remote"),
            build_args: map("buildargs")?,
            target: one("target"),
            no_cache: flag("nocache", false)?,
            pull: flag("pull", false)?,
            labels: map("labels")?,
            quiet: flag("q", false)?,
            network_mode: one("networkmode"),
            platform: one("platform"),
            rm: flag("rm", true)?,
            secrets: map("berth-secrets")?,
            ssh: map("berth-ssh")?,
            no_cache_filter: list("berth-nocachefilter")?,
            allow: list("berth-allow")?,
            shm_size,
            extra_hosts: v
                .get_all("extrahosts")
                .flat_map(|h| h.split(','))
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect(),
            progress_records: flag("berth-progress", false)?,
            cache_from: list("cachefrom")?,
        })
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

    #[test]
    fn dockerfile_given_twice_takes_the_first_as_docker_does() {
        // docker-py sends a Dockerfile from outside the context as (name, contents).
        let b = Build::parse("t=a&dockerfile=.dockerfile.1234&dockerfile=FROM+busybox%0ARUN+true").unwrap();
        assert_eq!(b.dockerfile.as_deref(), Some(".dockerfile.1234"));
        assert!(b.rm, "rm defaults to true");
        let b = Build::parse("extrahosts=a%3A1.2.3.4%2Cb%3A5.6.7.8&extrahosts=c%3A9.9.9.9&rm=0").unwrap();
        assert_eq!(b.extra_hosts, ["a:1.2.3.4", "b:5.6.7.8", "c:9.9.9.9"]);
        assert!(!b.rm);
        let e = Build::parse("buildargs=%7Bx").unwrap_err().to_string();
        assert!(e.starts_with("invalid value for buildargs: invalid JSON: "), "{e}");
        let e = Build::parse("shmsize=big").unwrap_err().to_string();
        assert_eq!(e, "invalid value for shmsize: \"big\" is not a number of bytes");
    }
}

//! The events bus: every object change the daemon makes (a container created, started,
//! dead; an image tagged; a volume mounted) becomes one [`Event`], kept in a ring of the
//! last [`KEEP`] (what `events --since` replays, as dockerd keeps 256) and broadcast to
//! every follower of `GET /events`. Other parts of the engine call [`Engine::emit`] (or
//! the container shortcut [`Engine::emit_container`]); the server only subscribes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use berth_api::query::Filters;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::Engine;
use crate::error::{Error, Result};
use crate::record::ContainerRecord;

/// How many past events `since` can replay (dockerd's eventsLimit).
pub const KEEP: usize = 256;
/// How many events a slow follower may fall behind before it loses some.
const FOLLOW_BUFFER: usize = 1024;

/// The kind of object an event is about, spelled as Docker's `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A container.
    Container,
    /// An image.
    Image,
    /// A volume.
    Volume,
    /// A network.
    Network,
    /// The daemon itself.
    Daemon,
    /// The builder.
    Builder,
    /// A plugin (never emitted by berth; accepted in filters).
    Plugin,
}

impl EventType {
    /// Docker's lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Container => "container",
            EventType::Image => "image",
            EventType::Volume => "volume",
            EventType::Network => "network",
            EventType::Daemon => "daemon",
            EventType::Builder => "builder",
            EventType::Plugin => "plugin",
        }
    }
}

/// One event as the engine emits it: what changed, which object, and its attributes
/// (Docker's `Actor.Attributes`: a container's `name`, `image` and labels; `exitCode` on
/// `die`, `signal` on `kill`, …).
#[derive(Debug, Clone)]
pub struct Event {
    /// The kind of object.
    pub typ: EventType,
    /// Docker's action: `create`, `start`, `die`, `exec_start: sh -c ls`, `health_status: healthy`, …
    pub action: String,
    /// The object's id (a container or image id, a volume or network name/id).
    pub id: String,
    /// The attributes.
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// An event with no attributes yet.
    pub fn new(typ: EventType, action: impl Into<String>, id: impl Into<String>) -> Event {
        Event { typ, action: action.into(), id: id.into(), attributes: BTreeMap::new() }
    }

    /// Adds an attribute.
    pub fn attr(mut self, k: impl Into<String>, v: impl Into<String>) -> Event {
        self.attributes.insert(k.into(), v.into());
        self
    }
}

/// An event as it went out, with its time: Docker's `events.Message`, legacy fields
/// (`status`, `id`, `from`) included for containers and images as dockerd sends them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// Legacy: the action (containers and images).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Legacy: the actor id (containers and images).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Legacy: the container's image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The object type.
    #[serde(rename = "Type")]
    pub typ: EventType,
    /// The action.
    #[serde(rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`.
    pub scope: Scope,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// An event's scope (Docker's `scope`): berth has no swarm, so every event is `local`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This daemon's.
    Local,
}

impl Scope {
    /// Docker's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Local => "local",
        }
    }
}

/// Docker's `events.Actor`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Actor {
    /// The object's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its attributes.
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

impl Message {
    fn from_event(ev: Event, time_nano: i64) -> Message {
        let legacy = matches!(ev.typ, EventType::Container | EventType::Image);
        Message {
            status: legacy.then(|| ev.action.clone()),
            id: legacy.then(|| ev.id.clone()),
            from: (ev.typ == EventType::Container).then(|| ev.attributes.get("image").cloned()).flatten(),
            typ: ev.typ,
            action: ev.action,
            actor: Actor { id: ev.id, attributes: ev.attributes },
            scope: Scope::Local,
            time: time_nano.div_euclid(1_000_000_000),
            time_nano,
        }
    }
}

/// The ring of recent events and the broadcast to followers, behind one lock so that a
/// subscriber sees every event exactly once: either in its replay or on its channel.
pub struct EventBus {
    inner: Mutex<Ring>,
}

/// The ring keeps each event as its JSON, one allocation: a message as a struct is about
/// a dozen small allocations (its strings and its attribute map's nodes), and a ring of 256
/// of them, refilled at each event, left little islands all over the heap that kept
/// freed pages resident after a burst of containers. Replays (`since`/`until`, rare) read
/// them back.
struct Ring {
    recent: VecDeque<Kept>,
    tx: broadcast::Sender<Message>,
    last_nano: i64,
}

/// One recorded event: its time and its message as JSON.
struct Kept {
    time_nano: i64,
    json: Box<[u8]>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            inner: Mutex::new(Ring {
                recent: VecDeque::with_capacity(KEEP),
                tx: broadcast::channel(FOLLOW_BUFFER).0,
                last_nano: 0,
            }),
        }
    }
}

impl EventBus {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records and broadcasts an event, stamped now (strictly after the previous one, so
    /// `since`/`until` bounds and ordering agree).
    pub fn publish(&self, ev: Event) -> Message {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let mut r = self.lock();
        let t = now.max(r.last_nano + 1);
        r.last_nano = t;
        let msg = Message::from_event(ev, t);
        if r.recent.len() == KEEP {
            r.recent.pop_front();
        }
        match serde_json::to_vec(&msg) {
            Ok(json) => r.recent.push_back(Kept { time_nano: t, json: json.into_boxed_slice() }),
            // Cannot happen (plain strings and maps); a replay then lacks this one event.
            Err(e) => tracing::warn!(error = %e, "recording an event for replay"),
        }
        // No follower is not an error.
        let _ = r.tx.send(msg.clone());
        msg
    }

    /// The recorded events within `[since, until]` (nanoseconds; replayed only when either
    /// bound is given, as dockerd does) and a receiver of every later event.
    pub fn subscribe(&self, since: Option<i64>, until: Option<i64>) -> (Vec<Message>, broadcast::Receiver<Message>) {
        let r = self.lock();
        let past = if since.is_none() && until.is_none() {
            Vec::new()
        } else {
            r.recent
                .iter()
                .filter(|k| since.is_none_or(|s| k.time_nano >= s) && until.is_none_or(|u| k.time_nano <= u))
                .filter_map(|k| serde_json::from_slice(&k.json).ok())
                .collect()
        };
        (past, r.tx.subscribe())
    }
}

/// The filters `GET /events` accepts (dockerd's list).
const FILTER_KEYS: &[&str] = &[
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "type",
    "volume",
    "plugin",
    "node",
    "service",
    "secret",
    "config",
    "scope",
];

/// A decoded `filters` value for events, with dockerd's matching rules.
#[derive(Debug, Clone, Default)]
pub struct EventFilter(Filters);

impl EventFilter {
    /// Checks the keys (an unknown one is `invalid filter '<key>'`).
    pub fn new(f: Filters) -> Result<EventFilter> {
        for k in f.0.keys() {
            if !FILTER_KEYS.contains(&k.as_str()) {
                return Err(Error::InvalidArgument(format!("invalid filter '{k}'")));
            }
        }
        Ok(EventFilter(f))
    }

    fn exact(&self, key: &str, v: &str) -> bool {
        let vals = self.0.get(key);
        vals.is_empty() || vals.iter().any(|x| x == v)
    }

    /// dockerd's FuzzyMatch: any value that is a prefix of the source.
    fn fuzzy(&self, key: &str, v: &str) -> bool {
        let vals = self.0.get(key);
        vals.is_empty() || vals.iter().any(|x| v.starts_with(x.as_str()))
    }

    fn name_or_id(&self, m: &Message, typ: EventType) -> bool {
        let key = typ.as_str();
        if self.0.get(key).is_empty() {
            return true;
        }
        // Only events of that type can match a filter naming one of its objects.
        m.typ == typ
            && (self.fuzzy(key, &m.actor.id) || m.actor.attributes.get("name").is_some_and(|n| self.fuzzy(key, n)))
    }

    /// Whether an event passes every filter (dockerd's events.Filter.Include).
    pub fn matches(&self, m: &Message) -> bool {
        let event_ok = {
            let vals = self.0.get("event");
            // health_status, exec_create and exec_start carry a suffix: matched by prefix.
            if vals.iter().any(|v| matches!(v.as_str(), "health_status" | "exec_create" | "exec_start")) {
                self.fuzzy("event", &m.action)
            } else {
                self.exact("event", &m.action)
            }
        };
        let image_ok = {
            let vals = self.0.get("image");
            if vals.is_empty() {
                true
            } else {
                let name_attr = if m.typ == EventType::Image { "name" } else { "image" };
                let name = m.actor.attributes.get(name_attr).map(String::as_str).unwrap_or("");
                let cands = [m.actor.id.as_str(), name, strip_tag(&m.actor.id), strip_tag(name)];
                vals.iter().any(|v| cands.contains(&v.as_str()))
            }
        };
        let labels_ok = self.0.get("label").iter().all(|l| match l.split_once('=') {
            Some((k, v)) => m.actor.attributes.get(k).is_some_and(|x| x == v),
            None => m.actor.attributes.contains_key(l.as_str()),
        });
        event_ok
            && self.exact("type", m.typ.as_str())
            && self.exact("scope", m.scope.as_str())
            && self.name_or_id(m, EventType::Daemon)
            && self.name_or_id(m, EventType::Container)
            && self.name_or_id(m, EventType::Plugin)
            && self.name_or_id(m, EventType::Volume)
            && self.name_or_id(m, EventType::Network)
            && image_ok
            && labels_ok
    }
}

/// `busybox:latest` → `busybox`, `docker.io/library/busybox` → `busybox` (Docker's familiar
/// name without tag), anything else unchanged.
fn strip_tag(s: &str) -> &str {
    let s = s.strip_prefix("docker.io/").unwrap_or(s);
    let s = s.strip_prefix("library/").unwrap_or(s);
    let s = s.split_once('@').map_or(s, |(n, _)| n);
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => &s[..i],
        _ => s,
    }
}

impl Engine {
    /// Publishes an event to the bus. Any part of the engine may call it.
    pub fn emit(&self, ev: Event) {
        self.bus.publish(ev);
    }

    /// Publishes a container event with Docker's default attributes (`name`, `image` as the
    /// user named it, the container's labels) plus `extra`.
    pub fn emit_container(&self, rec: &ContainerRecord, action: &str, extra: &[(&str, String)]) {
        let mut ev = Event::new(EventType::Container, action, rec.id.clone());
        for (k, v) in rec.config.labels.iter().flatten() {
            ev.attributes.insert(k.clone(), v.clone());
        }
        ev.attributes.insert("image".to_owned(), rec.image.clone());
        ev.attributes.insert("name".to_owned(), rec.name.clone());
        for (k, v) in extra {
            ev.attributes.insert((*k).to_owned(), v.clone());
        }
        self.emit(ev);
    }

    /// Publishes an image event: `name` is the reference it concerns (dockerd's attribute).
    pub fn emit_image(&self, id: &str, name: &str, action: &str) {
        self.emit(Event::new(EventType::Image, action, id).attr("name", name));
    }

    /// `GET /events`: the replay for `since`/`until` and the live receiver.
    pub fn subscribe_events(
        &self,
        since: Option<i64>,
        until: Option<i64>,
    ) -> (Vec<Message>, broadcast::Receiver<Message>) {
        self.bus.subscribe(since, until)
    }
}

/// Parses Docker's event timestamps: unix seconds with an optional fraction (`1700000000`,
/// `1700000000.000000001`), as the docker CLI sends them, into nanoseconds.
pub fn parse_time(s: &str) -> Result<i64> {
    let bad = || Error::InvalidArgument(format!("failed to parse value as time or duration: \"{s}\""));
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad())? };
    secs.checked_mul(1_000_000_000).and_then(|v| v.checked_add(nanos)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: &str) -> EventFilter {
        EventFilter::new(Filters::parse(json).unwrap()).unwrap()
    }

    fn msg(typ: EventType, action: &str, id: &str, attrs: &[(&str, &str)]) -> Message {
        let mut ev = Event::new(typ, action, id);
        for (k, v) in attrs {
            ev = ev.attr(*k, *v);
        }
        Message::from_event(ev, 1)
    }

    #[test]
    fn a_replayed_event_is_the_message_that_went_out() {
        let bus = EventBus::default();
        let sent = [
            bus.publish(
                Event::new(EventType::Container, "die", "c1")
                    .attr("exitCode", "3")
                    .attr("image", "busybox")
                    .attr("name", "web"),
            ),
            bus.publish(Event::new(EventType::Network, "connect", "n1").attr("container", "c1")),
            bus.publish(Event::new(EventType::Image, "tag", "sha256:x").attr("name", "busybox:latest")),
        ];
        let (replayed, _rx) = bus.subscribe(Some(0), None);
        assert_eq!(replayed.len(), sent.len());
        for (a, b) in sent.iter().zip(&replayed) {
            assert_eq!(serde_json::to_value(a).unwrap(), serde_json::to_value(b).unwrap());
            assert_eq!((b.typ, b.scope, b.time_nano), (a.typ, Scope::Local, a.time_nano));
        }
        assert_eq!(replayed[0].from.as_deref(), Some("busybox"));
        assert!(filter(r#"{"container":["web"],"event":["die"]}"#).matches(&replayed[0]));
        assert!(!filter(r#"{"container":["web"]}"#).matches(&replayed[1]));
    }

    #[test]
    fn ring_keeps_the_last_events_and_replays_by_time() {
        let bus = EventBus::default();
        for i in 0..(KEEP + 10) {
            bus.publish(Event::new(EventType::Container, "start", format!("c{i}")));
        }
        let (all, _rx) = bus.subscribe(Some(0), None);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].actor.id, "c10");
        assert!(all.windows(2).all(|w| w[0].time_nano < w[1].time_nano));
        let cut = all[100].time_nano;
        let (later, _rx) = bus.subscribe(Some(cut), None);
        assert_eq!(later.len(), KEEP - 100);
        let (earlier, _rx) = bus.subscribe(None, Some(cut));
        assert_eq!(earlier.len(), 101);
        let (none, mut rx) = bus.subscribe(None, None);
        assert!(none.is_empty());
        bus.publish(Event::new(EventType::Image, "tag", "sha256:x"));
        assert_eq!(rx.try_recv().unwrap().action, "tag");
    }

    #[test]
    fn messages_have_dockers_shape() {
        let m = msg(EventType::Container, "die", "abc", &[("image", "busybox"), ("name", "web"), ("exitCode", "3")]);
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["status"], "die");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["from"], "busybox");
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "die");
        assert_eq!(v["Actor"]["ID"], "abc");
        assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(v["scope"], "local");
        let v = serde_json::to_value(msg(EventType::Volume, "create", "data", &[("driver", "local")])).unwrap();
        assert!(v.get("status").is_none() && v.get("from").is_none());
    }

    #[test]
    fn filters_follow_dockerd() {
        let c =
            msg(EventType::Container, "start", "abcdef", &[("image", "busybox:latest"), ("name", "web"), ("k", "v")]);
        let i = msg(EventType::Image, "tag", "sha256:1", &[("name", "busybox:latest")]);
        assert!(filter(r#"{"type":["container"]}"#).matches(&c));
        assert!(!filter(r#"{"type":["container"]}"#).matches(&i));
        assert!(filter(r#"{"container":["web"]}"#).matches(&c));
        assert!(filter(r#"{"container":["abc"]}"#).matches(&c));
        assert!(!filter(r#"{"container":["web"]}"#).matches(&i));
        assert!(filter(r#"{"event":["start","die"]}"#).matches(&c));
        assert!(!filter(r#"{"event":["die"]}"#).matches(&c));
        let e = msg(EventType::Container, "exec_start: sh -c ls", "abcdef", &[]);
        assert!(filter(r#"{"event":["exec_start"]}"#).matches(&e));
        assert!(filter(r#"{"image":["busybox"]}"#).matches(&c));
        assert!(filter(r#"{"image":["busybox"]}"#).matches(&i));
        assert!(!filter(r#"{"image":["alpine"]}"#).matches(&c));
        assert!(filter(r#"{"label":["k=v"]}"#).matches(&c));
        assert!(filter(r#"{"label":["k"]}"#).matches(&c));
        assert!(!filter(r#"{"label":["k=w"]}"#).matches(&c));
        let err = EventFilter::new(Filters::parse(r#"{"colour":["red"]}"#).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "invalid filter 'colour'");
    }

    #[test]
    fn times_parse_as_the_cli_sends_them() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(parse_time("1700000000.5").unwrap(), 1_700_000_000_500_000_000);
        assert_eq!(parse_time("1700000000.000000001").unwrap(), 1_700_000_000_000_000_001);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("1.x").is_err());
    }
}

//! `events`: the daemon's events as the docker CLI prints them (one line each:
//! time, type, action, actor and its sorted attributes), or through `--format`.

use berth_api::Client;
use berth_api::query;
use clap::Args;
use serde_json::Value;

use super::{Res, now, parse_filters};
use crate::CliError;
use crate::format::{Format, render, to_value};
use crate::output::out;

#[cfg_attr(doc, doc = "`events`.")]
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long = "format")]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long = "since")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long = "until")]
    pub until: Option<String>,
}

/// Docker's default line: `2024-01-02T03:04:05.123456789Z container start <id> (image=…, name=…)`.
pub fn pretty(v: &Value) -> String {
    let mut s = String::new();
    let nanos = v["timeNano"].as_i64().filter(|n| *n != 0).or_else(|| v["time"].as_i64().map(|t| t * 1_000_000_000));
    if let Some(n) = nanos {
        let t = chrono::DateTime::from_timestamp(n.div_euclid(1_000_000_000), n.rem_euclid(1_000_000_000) as u32)
            .unwrap_or_default()
            .with_timezone(&chrono::Local);
        s.push_str(&t.format("%Y-%m-%dT%H:%M:%S%.9f%:z").to_string().replace("+00:00", "Z"));
        s.push(' ');
    }
    let str_of = |x: &Value| x.as_str().unwrap_or_default().to_owned();
    s.push_str(&format!("{} {} {}", str_of(&v["Type"]), str_of(&v["Action"]), str_of(&v["Actor"]["ID"])));
    if let Some(attrs) = v["Actor"]["Attributes"].as_object().filter(|a| !a.is_empty()) {
        let mut kv: Vec<String> =
            attrs.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
        kv.sort();
        s.push_str(&format!(" ({})", kv.join(", ")));
    }
    s.push('\n');
    s
}

/// The message with Go's field names too (`.Status`, `.ID`, `.From`, `.Time`, `.TimeNano`,
/// `.Scope`), as docker's templates see its events.Message.
fn go_fields(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        for (json, go) in [
            ("status", "Status"),
            ("id", "ID"),
            ("from", "From"),
            ("time", "Time"),
            ("timeNano", "TimeNano"),
            ("scope", "Scope"),
        ] {
            if let Some(x) = m.get(json).cloned() {
                m.entry(go).or_insert(x);
            }
        }
    }
    v
}

/// `events`: follows until `--until` passes (or forever).
pub async fn events(c: &Client, a: EventsArgs) -> Res {
    let t = now();
    let conv = |s: &Option<String>, what: &str| -> Result<Option<String>, CliError> {
        s.as_deref()
            .map(|v| {
                super::container::parse_since(v, t).map_err(|_| {
                    CliError::Message(format!(
                        "invalid value for \"{what}\": failed to parse value as time or duration: \"{v}\""
                    ))
                })
            })
            .transpose()
    };
    let q = query::Events {
        since: conv(&a.since, "since")?,
        until: conv(&a.until, "until")?,
        filters: parse_filters(&a.filter)?,
    };
    let format = a.format.as_deref().filter(|f| !f.is_empty()).map(Format::new);
    let mut s = c.events(&q).await?;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = s.next_chunk().await {
        buf.extend_from_slice(&chunk?);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let Ok(v) = serde_json::from_slice::<Value>(&line) else { continue };
            match &format {
                None => out(&pretty(&v)),
                Some(f) => out(&render(f, &Default::default(), &[to_value(&go_fields(v))?])?),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_look_like_dockers() {
        // SAFETY: tests of this module do not read TZ concurrently.
        unsafe { std::env::set_var("TZ", "UTC") };
        let v = json!({"Type": "container", "Action": "die", "Actor": {"ID": "abc",
            "Attributes": {"name": "web", "exitCode": "3", "image": "busybox"}},
            "time": 1700000000, "timeNano": 1700000000123456789i64});
        assert_eq!(
            pretty(&v),
            "2023-11-14T22:13:20.123456789Z container die abc (exitCode=3, image=busybox, name=web)\n"
        );
    }
}

//! Log multiplexing: the output of several containers read at once through the logs
//! endpoint, cut into lines and handed on with the container they came from, as `compose
//! logs` and an attached `compose up` print them; and the watch on the project's events
//! that `compose logs -f` uses to pick up containers started after it began.

use std::collections::BTreeMap;

use berth_api::Client;
use berth_api::query::{Events, Filters, Logs};
use berth_api::stdcopy::{Decoder, Stream};
use tokio::sync::mpsc;

use super::names;

/// One container whose logs to read.
#[derive(Debug, Clone)]
pub struct Source {
    /// Container id or name.
    pub id: String,
    /// The prefix shown (`web-1`).
    pub prefix: String,
    /// Whether the container has a tty (its stream is raw, not framed).
    pub tty: bool,
}

/// What the multiplexer hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// A line (without its newline) from `prefix`'s stdout or stderr.
    Line {
        /// The source's prefix.
        prefix: String,
        /// True for stderr.
        stderr: bool,
        /// The text.
        text: String,
    },
    /// The source's stream ended (the container stopped when following), with the error
    /// that ended it early if any.
    Ended {
        /// The source's prefix.
        prefix: String,
        /// The source's container id or name, as given in its [`Source`].
        id: String,
        /// Why the stream broke, if it did.
        error: Option<String>,
    },
}

/// Splits framed or raw chunks into lines, keeping a partial last line until more arrives.
#[derive(Debug, Default)]
struct LineCutter {
    out: Vec<u8>,
    err: Vec<u8>,
}

impl LineCutter {
    fn push(&mut self, stderr: bool, data: &[u8], lines: &mut Vec<(bool, String)>) {
        let buf = if stderr { &mut self.err } else { &mut self.out };
        buf.extend_from_slice(data);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            lines.push((stderr, text.trim_end_matches('\r').to_owned()));
        }
    }

    fn finish(&mut self, lines: &mut Vec<(bool, String)>) {
        for (stderr, buf) in [(false, &mut self.out), (true, &mut self.err)] {
            if !buf.is_empty() {
                lines.push((stderr, String::from_utf8_lossy(buf).into_owned()));
                buf.clear();
            }
        }
    }
}

/// Reads one source's logs into `tx` until its stream ends (or the receiver goes away).
pub async fn pump(client: Client, src: Source, q: Logs, tx: mpsc::Sender<LogEvent>) {
    let error = match pump_inner(&client, &src, &q, &tx).await {
        Ok(()) => None,
        Err(e) => Some(e.to_string()),
    };
    let _ = tx.send(LogEvent::Ended { prefix: src.prefix.clone(), id: src.id.clone(), error }).await;
}

async fn pump_inner(
    client: &Client,
    src: &Source,
    q: &Logs,
    tx: &mpsc::Sender<LogEvent>,
) -> Result<(), berth_api::ClientError> {
    let mut stream = client.container_logs(&src.id, q).await?;
    let mut dec = Decoder::default();
    let mut cut = LineCutter::default();
    let mut lines = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        let chunk = chunk?;
        if src.tty {
            cut.push(false, &chunk, &mut lines);
        } else {
            dec.feed(&chunk);
            while let Some((s, data)) = dec.next_frame()? {
                cut.push(s == Stream::Stderr, &data, &mut lines);
            }
        }
        for (stderr, text) in lines.drain(..) {
            if tx.send(LogEvent::Line { prefix: src.prefix.clone(), stderr, text }).await.is_err() {
                return Ok(());
            }
        }
    }
    cut.finish(&mut lines);
    for (stderr, text) in lines.drain(..) {
        let _ = tx.send(LogEvent::Line { prefix: src.prefix.clone(), stderr, text }).await;
    }
    Ok(())
}

/// Starts a reader for each source on the current runtime; events arrive on the returned
/// receiver, one `Ended` per source.
pub fn multiplex(client: &Client, sources: Vec<Source>, q: &Logs) -> mpsc::Receiver<LogEvent> {
    let (tx, rx) = mpsc::channel(256);
    for s in sources {
        tokio::spawn(pump(client.clone(), s, q.clone(), tx.clone()));
    }
    rx
}

/// A project container that started while the watch ran (`compose up --scale`, `restart`,
/// `start` in another terminal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The container's id.
    pub id: String,
    /// Its name (`proj-web-2`).
    pub name: String,
    /// The service it belongs to.
    pub service: String,
    /// Its replica number.
    pub number: u32,
    /// When it started (nanoseconds since the epoch), for reading only what came after.
    pub time_nano: i64,
}

/// The `start` event of a service (not one-off) container of the project, from one line
/// of the events stream; `None` for anything else.
pub fn parse_start(line: &[u8]) -> Option<Started> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    if v["Type"].as_str() != Some("container") || v["Action"].as_str() != Some("start") {
        return None;
    }
    let attrs: BTreeMap<String, String> = v["Actor"]["Attributes"]
        .as_object()?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    if attrs.get(names::ONEOFF).map(String::as_str) == Some("True") {
        return None;
    }
    Some(Started {
        id: v["Actor"]["ID"].as_str()?.to_owned(),
        name: attrs.get("name").cloned().unwrap_or_default(),
        service: attrs.get(names::SERVICE)?.clone(),
        number: names::number_of(&attrs),
        time_nano: v["timeNano"].as_i64().unwrap_or(0),
    })
}

/// Follows the daemon's events about `project`'s containers from `since` (unix seconds, so
/// that a container started between listing and subscribing is replayed, not missed) and
/// hands on every start of a service container until the stream or the receiver ends.
pub async fn watch_starts(
    client: Client,
    project: String,
    since: String,
    tx: mpsc::Sender<Started>,
) -> Result<(), berth_api::ClientError> {
    let mut filters = Filters::default();
    filters.add("label", &names::project_filter(&project));
    filters.add("type", "container");
    filters.add("event", "start");
    let q = Events { since: Some(since), until: None, filters };
    let mut stream = client.events(&q).await?;
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        buf.extend_from_slice(&chunk?);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            if let Some(s) = parse_start(&line)
                && tx.send(s).await.is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_per_stream() {
        let mut c = LineCutter::default();
        let mut lines = Vec::new();
        c.push(false, b"a\nb", &mut lines);
        c.push(true, b"e1\r\n", &mut lines);
        c.push(false, b"c\n", &mut lines);
        c.push(false, b"tail", &mut lines);
        c.finish(&mut lines);
        assert_eq!(
            lines,
            vec![
                (false, "a".to_owned()),
                (true, "e1".to_owned()),
                (false, "bc".to_owned()),
                (false, "tail".to_owned())
            ]
        );
    }

    #[test]
    fn start_events_of_service_containers_only() {
        let ev = |action: &str, oneoff: &str| {
            format!(
                r#"{{"Type":"container","Action":"{action}","Actor":{{"ID":"abc","Attributes":{{"name":"p-web-2","com.docker.compose.service":"web","com.docker.compose.container-number":"2","com.docker.compose.oneoff":"{oneoff}"}}}},"timeNano":42}}"#
            )
        };
        assert_eq!(
            parse_start(ev("start", "False").as_bytes()),
            Some(Started { id: "abc".into(), name: "p-web-2".into(), service: "web".into(), number: 2, time_nano: 42 })
        );
        assert_eq!(parse_start(ev("die", "False").as_bytes()), None);
        assert_eq!(parse_start(ev("start", "True").as_bytes()), None);
        assert_eq!(parse_start(b"not json"), None);
    }
}

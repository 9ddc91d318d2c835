//! Log multiplexing: the output of several containers read at once through the logs
//! endpoint, cut into lines and handed on with the container they came from, as `compose
//! logs` and an attached `compose up` print them.

use berth_api::Client;
use berth_api::query::Logs;
use berth_api::stdcopy::{Decoder, Stream};
use tokio::sync::mpsc;

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
    let _ = tx.send(LogEvent::Ended { prefix: src.prefix.clone(), error }).await;
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
}

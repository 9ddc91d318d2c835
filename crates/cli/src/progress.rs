//! How `build` shows a build's progress, as BuildKit's front ends do: plain numbered lines
//! (`#3 [build 3/9] RUN make`, `#3 CACHED`, `#3 DONE 0.4s`, output prefixed with its
//! step), or on a terminal a compact view redrawn in place: one line per step with its
//! time, and the last lines of output of each running step beneath it.
//!
//! The live view is drawn with a few ANSI sequences rather than `indicatif`: indicatif
//! draws bars and spinners, while this view is a list that grows, whose running entries
//! carry a rolling tail of output, which is simpler to redraw whole.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use berth_api::query::BuildProgress;

/// Lines of output kept under a running step in the live view.
const TAIL_LINES: usize = 6;

#[derive(Debug, Default)]
struct StepView {
    label: String,
    started: Option<Instant>,
    cached: bool,
    failed: bool,
    canceled: bool,
    seconds: Option<f64>,
    tail: Vec<String>,
    partial: String,
}

/// A build's progress display.
pub struct BuildView {
    live: bool,
    steps: BTreeMap<usize, StepView>,
    began: Instant,
    /// Lines the live view drew last time (to move back over them).
    drawn: usize,
    total: usize,
}

impl BuildView {
    /// A view; `live` redraws in place (a terminal), otherwise plain lines.
    pub fn new(live: bool) -> BuildView {
        BuildView { live, steps: BTreeMap::new(), began: Instant::now(), drawn: 0, total: 0 }
    }

    /// Takes one record from the daemon.
    pub fn record(&mut self, p: BuildProgress) {
        let live = self.live;
        let index = p.index;
        let mut plain = Vec::new();
        match p.event.as_str() {
            "start" => {
                let total = p.total.unwrap_or(0);
                self.total = self.total.max(total);
                let place = match &p.stage {
                    Some(s) => format!("[{s} {index}/{total}]"),
                    None => format!("[{index}/{total}]"),
                };
                let label = format!("{place} {}", p.text.unwrap_or_default());
                plain.push(format!("#{index} {label}"));
                self.steps.insert(index, StepView { label, started: Some(Instant::now()), ..Default::default() });
            }
            "cached" => {
                let s = self.steps.entry(index).or_default();
                s.cached = true;
                plain.push(format!("#{index} CACHED"));
            }
            "output" => {
                let s = self.steps.entry(index).or_default();
                s.partial.push_str(&p.data.unwrap_or_default());
                while let Some(i) = s.partial.find('\n') {
                    let line: String = s.partial.drain(..=i).collect();
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    plain.push(format!("#{index} {line}"));
                    s.tail.push(line);
                    if s.tail.len() > TAIL_LINES {
                        s.tail.remove(0);
                    }
                }
            }
            "done" => {
                let s = self.steps.entry(index).or_default();
                if !s.partial.is_empty() {
                    let line = std::mem::take(&mut s.partial);
                    plain.push(format!("#{index} {line}"));
                }
                let secs = p.seconds.unwrap_or(0.0);
                s.seconds = Some(secs);
                s.tail.clear();
                if !s.cached {
                    plain.push(format!("#{index} DONE {secs:.1}s"));
                }
            }
            "error" => {
                let s = self.steps.entry(index).or_default();
                s.failed = true;
                if let Some(st) = s.started {
                    s.seconds = Some(st.elapsed().as_secs_f64());
                }
                plain.push(format!("#{index} ERROR"));
            }
            _ => {}
        }
        if live {
            self.draw(false, false);
        } else {
            let mut o = std::io::stdout().lock();
            for l in plain {
                let _ = writeln!(o, "{l}");
            }
            let _ = o.flush();
        }
    }

    /// Redraws the live view (timers move even without records).
    pub fn tick(&mut self) {
        if self.live {
            self.draw(false, false);
        }
    }

    /// Ends the view: the live view's final frame stays on screen.
    pub fn finish(&mut self, failed: bool) {
        if self.live {
            if failed {
                for s in self.steps.values_mut() {
                    // Steps stopped because another failed, as BuildKit marks them.
                    if s.seconds.is_none() {
                        s.canceled = true;
                        s.seconds = s.started.map(|st| st.elapsed().as_secs_f64());
                    }
                }
            }
            self.draw(true, failed);
        } else {
            let mut o = std::io::stdout().lock();
            for (i, s) in self.steps.iter_mut() {
                if !s.partial.is_empty() {
                    let _ = writeln!(o, "#{i} {}", std::mem::take(&mut s.partial));
                }
            }
            let _ = o.flush();
        }
    }

    fn draw(&mut self, last: bool, failed: bool) {
        let (width, height) = terminal_size();
        let done = self.steps.values().filter(|s| s.seconds.is_some() && !s.failed && !s.canceled).count();
        let elapsed = self.began.elapsed().as_secs_f64();
        let mut lines = vec![format!(
            "[+] Building {elapsed:.1}s ({done}/{}){}",
            self.total.max(self.steps.len()),
            match (last, failed) {
                (true, false) => " FINISHED",
                (true, true) => " FAILED",
                _ => "",
            }
        )];
        for s in self.steps.values() {
            let time = match (s.seconds, s.started) {
                (Some(t), _) => format!("{t:.1}s"),
                (None, Some(st)) => format!("{:.1}s", st.elapsed().as_secs_f64()),
                (None, None) => String::new(),
            };
            let label = if s.failed {
                format!("ERROR {}", s.label)
            } else if s.canceled {
                format!("CANCELED {}", s.label)
            } else if s.cached {
                format!("CACHED {}", s.label)
            } else {
                s.label.clone()
            };
            lines.push(fit(&format!(" => {label}"), &time, width));
            // A running step shows its last lines; a failed one keeps them.
            if s.seconds.is_none() || s.failed {
                for t in &s.tail {
                    lines.push(fit(&format!(" => => {t}"), "", width));
                }
            }
        }
        // Keep to the screen: the oldest finished steps scroll off first.
        let room = height.saturating_sub(1).max(4);
        if lines.len() > room {
            let cut = lines.len() - room;
            lines.drain(1..=cut);
        }
        let mut frame = String::new();
        if self.drawn > 0 {
            frame.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for l in &lines {
            frame.push_str("\r\x1b[2K");
            frame.push_str(l);
            frame.push('\n');
        }
        // Clear what the previous, longer frame left below.
        frame.push_str("\x1b[J");
        self.drawn = lines.len();
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(frame.as_bytes());
        let _ = o.flush();
    }
}

/// `text` and a right-aligned `time`, cut to `width` columns.
fn fit(text: &str, time: &str, width: usize) -> String {
    let room = if time.is_empty() { width } else { width.saturating_sub(time.chars().count() + 1) }.max(10);
    let mut t: String = text.chars().filter(|c| !c.is_control()).take(room).collect();
    if time.is_empty() {
        return t;
    }
    let pad = room.saturating_sub(t.chars().count());
    t.push_str(&" ".repeat(pad + 1));
    t.push_str(time);
    t
}

fn terminal_size() -> (usize, usize) {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(w) if w.ws_col > 0 && w.ws_row > 0 => (usize::from(w.ws_col), usize::from(w.ws_row)),
        _ => (80, 24),
    }
}

/// Whether `--progress` (and the terminal) ask for the live view.
pub fn wants_live(mode: &str) -> bool {
    match mode {
        "tty" => true,
        "auto" => rustix::termios::isatty(std::io::stdout()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_the_terminal() {
        assert_eq!(fit(" => [1/2] FROM busybox", "0.1s", 30), " => [1/2] FROM busybox    0.1s");
        assert_eq!(fit(" => a very long instruction text", "", 12), " => a very l");
        assert_eq!(fit("a\tb", "", 40), "ab");
    }

    #[test]
    fn output_is_split_into_lines_per_step() {
        let mut v = BuildView::new(false);
        v.record(BuildProgress {
            index: 2,
            event: "start".into(),
            total: Some(3),
            text: Some("RUN x".into()),
            ..Default::default()
        });
        v.record(BuildProgress {
            index: 2,
            event: "output".into(),
            data: Some("one\ntw".into()),
            ..Default::default()
        });
        v.record(BuildProgress { index: 2, event: "output".into(), data: Some("o\n".into()), ..Default::default() });
        let s = &v.steps[&2];
        assert_eq!(s.tail, vec!["one".to_owned(), "two".to_owned()]);
        assert_eq!(s.label, "[2/3] RUN x");
    }
}

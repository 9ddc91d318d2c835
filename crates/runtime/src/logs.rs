//! Docker's json-file log driver: one JSON object per output line
//! (`{"log":"hi\n","stream":"stdout","time":"…Z"}`), size-based rotation to `<log>.1`…,
//! reading back in order, and following a log as it grows and rotates.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Which output stream an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (and a tty's output).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One log line as written by the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The stream.
    pub stream: Stream,
    /// When the shim read it.
    pub time: DateTime<Utc>,
    /// The bytes, newline included when the line was complete.
    pub data: Vec<u8>,
}

#[derive(Serialize)]
struct JsonLineOut<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

#[derive(Deserialize)]
struct JsonLineIn {
    log: String,
    stream: String,
    time: DateTime<Utc>,
}

/// Path of rotated file `n` (1 = newest rotated).
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Appends output to a json-file log, rotating by size like Docker's driver.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl LogWriter {
    /// Opens (creating, appending to) the log. `max_size` 0 disables rotation.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> Result<LogWriter, Error> {
        // Logs hold whatever the container prints (secrets included): root only.
        let file = berth_base::fsutil::open_append_mode(path, berth_base::fsutil::PRIVATE_FILE)
            .map_err(|e| Error::io("failed to open log", path, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter { path: path.to_path_buf(), file, size, max_size, max_files: max_files.max(1) })
    }

    /// Writes a chunk of output: one entry per line, a trailing partial line as it is.
    pub fn write_chunk(&mut self, stream: Stream, data: &[u8], now: DateTime<Utc>) -> Result<(), Error> {
        let mut out = Vec::new();
        let time = now.to_rfc3339_opts(SecondsFormat::Nanos, true);
        for line in data.split_inclusive(|b| *b == b'\n') {
            let text = String::from_utf8_lossy(line);
            let rec = JsonLineOut { log: &text, stream: stream.as_str(), time: time.clone() };
            serde_json::to_writer(&mut out, &rec)
                .map_err(|source| Error::Json { context: "failed to encode log line".into(), source })?;
            out.push(b'\n');
        }
        if out.is_empty() {
            return Ok(());
        }
        if self.max_size > 0 && self.size > 0 && self.size + out.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&out).map_err(|e| Error::io("failed to write log", &self.path, e))?;
        self.size += out.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), Error> {
        if self.max_files <= 1 {
            self.file.set_len(0).map_err(|e| Error::io("failed to truncate log", &self.path, e))?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(rotated(&self.path, self.max_files - 1));
        for n in (1..self.max_files - 1).rev() {
            let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))
            .map_err(|e| Error::io("failed to rotate log", &self.path, e))?;
        *self = LogWriter::open(&self.path, self.max_size, self.max_files)?;
        Ok(())
    }
}

fn parse_line(line: &[u8]) -> Option<LogEntry> {
    let j: JsonLineIn = serde_json::from_slice(line).ok()?;
    let stream = if j.stream == "stderr" { Stream::Stderr } else { Stream::Stdout };
    Some(LogEntry { stream, time: j.time, data: j.log.into_bytes() })
}

fn parse_all(data: &[u8], out: &mut Vec<LogEntry>) {
    // A torn last line (crash mid-write) is skipped rather than failing the whole read.
    out.extend(data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).filter_map(parse_line));
}

/// Reads the whole log: rotated files oldest first, then the current one. A missing log
/// is empty.
pub fn read(path: &Path, max_files: u32) -> Result<Vec<LogEntry>, Error> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = (1..max_files.max(1)).rev().map(|n| rotated(path, n)).collect();
    files.push(path.to_path_buf());
    for f in files {
        match std::fs::read(&f) {
            Ok(d) => parse_all(&d, &mut out),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("failed to read log", &f, e)),
        }
    }
    Ok(out)
}

/// Follows a log from a position, like `tail -F`: returns whole entries as they are
/// appended, and carries on into the new file after a rotation.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Follows from the current end of the log (entries written from now on).
    pub fn at_end(path: &Path) -> Result<Follower, Error> {
        let mut f = Follower::from_start(path)?;
        if let Some(file) = f.file.as_mut() {
            file.seek(SeekFrom::End(0)).map_err(|e| Error::io("failed to seek log", path, e))?;
        }
        Ok(f)
    }

    /// Follows from the beginning of the current log file.
    pub fn from_start(path: &Path) -> Result<Follower, Error> {
        let (file, ino) = match File::open(path) {
            Ok(f) => {
                let ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
                (Some(f), ino)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, 0),
            Err(e) => return Err(Error::io("failed to open log", path, e)),
        };
        Ok(Follower { path: path.to_path_buf(), file, ino, partial: Vec::new() })
    }

    fn drain(&mut self, out: &mut Vec<LogEntry>) -> Result<(), Error> {
        if let Some(file) = self.file.as_mut() {
            let mut buf = Vec::new();
            file.read_to_end(&mut buf).map_err(|e| Error::io("failed to read log", &self.path, e))?;
            self.partial.extend_from_slice(&buf);
            if let Some(last_nl) = self.partial.iter().rposition(|b| *b == b'\n') {
                let rest = self.partial.split_off(last_nl + 1);
                parse_all(&self.partial, out);
                self.partial = rest;
            }
        }
        Ok(())
    }

    /// Entries appended since the last call.
    pub fn poll_new(&mut self) -> Result<Vec<LogEntry>, Error> {
        let mut out = Vec::new();
        self.drain(&mut out)?;
        let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if let Some(ino) = current.filter(|i| *i != self.ino || self.file.is_none()) {
            // Rotated (or created): our handle holds the old file, now `<log>.1`; it was
            // drained above, so switch to the new file from its start.
            self.file = File::open(&self.path).ok();
            self.ino = ino;
            self.partial.clear();
            self.drain(&mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-logs-{}", berth_base::new_id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lines_split_like_docker() {
        let d = tmp();
        let p = d.join("log");
        let mut w = LogWriter::open(&p, 0, 1).unwrap();
        w.write_chunk(Stream::Stdout, b"a\nb\npart", Utc::now()).unwrap();
        w.write_chunk(Stream::Stderr, "é\n".as_bytes(), Utc::now()).unwrap();
        let raw = std::fs::read_to_string(&p).unwrap();
        assert!(raw.starts_with("{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\""), "{raw}");
        let e = read(&p, 1).unwrap();
        let data: Vec<&[u8]> = e.iter().map(|e| e.data.as_slice()).collect();
        assert_eq!(data, vec![&b"a\n"[..], b"b\n", b"part", "é\n".as_bytes()]);
        assert_eq!(e[3].stream, Stream::Stderr);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rotation_and_following() {
        let d = tmp();
        let p = d.join("log");
        let mut w = LogWriter::open(&p, 200, 3).unwrap();
        let mut f = Follower::at_end(&p).unwrap();
        let mut seen = Vec::new();
        for i in 0..20 {
            w.write_chunk(Stream::Stdout, format!("line {i}\n").as_bytes(), Utc::now()).unwrap();
            // Polled after every write: a follower only bridges one rotation per poll.
            seen.extend(f.poll_new().unwrap());
        }
        seen.extend(f.poll_new().unwrap());
        assert!(rotated(&p, 2).exists() && !rotated(&p, 3).exists());
        let all = read(&p, 3).unwrap();
        assert!(all.len() < 20, "oldest lines rotated away");
        assert_eq!(all.last().unwrap().data, b"line 19\n");
        assert_eq!(seen.len(), 20, "follower saw every line across rotations");
        assert_eq!(seen[0].data, b"line 0\n");
        for f in [p.clone(), rotated(&p, 1), rotated(&p, 2)] {
            let mode = std::fs::metadata(&f).unwrap().mode() & 0o7777;
            assert_eq!(mode, 0o600, "{} is private (it holds what the container printed)", f.display());
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}

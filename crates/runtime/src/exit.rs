//! The exit record a shim leaves behind (`exit.json`), read by the daemon after the shim
//! is gone, including after a daemon restart.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// How a container's init ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit status, or 128+signal when killed by a signal.
    pub code: i32,
    /// When the shim saw the exit, RFC 3339 with nanoseconds, UTC.
    pub finished_at: String,
    /// The cgroup recorded an OOM kill.
    pub oom_killed: bool,
}

/// Reads an exit file; `None` when it is missing or unreadable (the container has not
/// exited, or its shim died before recording it).
pub fn read(path: &Path) -> Option<ExitInfo> {
    let data = std::fs::read(path).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Writes an exit file atomically, so a reader never sees half a record; root only. Not
/// fsynced: the record outlives the shim and the daemon, which is all it is for (a host
/// crash ends the container too), and two fsyncs were the slowest step of a `run --rm`.
pub fn write(path: &Path, info: &ExitInfo) -> Result<(), Error> {
    let data = serde_json::to_vec(info)
        .map_err(|source| Error::Json { context: "failed to encode exit info".into(), source })?;
    berth_base::fsutil::replace_file_mode(path, &data, berth_base::fsutil::PRIVATE_FILE)
        .map_err(|e| Error::io("failed to write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_file_round_trips() {
        let d = std::env::temp_dir().join(format!("berth-exit-{}", berth_base::new_id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("exit.json");
        assert_eq!(read(&p), None);
        let info = ExitInfo { code: 137, finished_at: "2026-01-01T00:00:00.000000001Z".into(), oom_killed: true };
        write(&p, &info).unwrap();
        assert_eq!(read(&p), Some(info));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777, 0o600);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

//! Start-path tracing: when `BERTH_TRACE_START` names a file, the daemon and every shim it
//! starts append one line per phase of a container's life to it —
//! `<unix time in ns> <pid> <container id> <phase>` — so `bench/trace_start.sh` can put the
//! phases of one `run` side by side across processes. The clock is the realtime clock,
//! the one a shell's `date +%s%N` reads too. Off (one relaxed load) unless the variable is
//! set when the process starts; shims inherit it from the daemon's environment.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;

/// The environment variable naming the trace file.
pub const ENV: &str = "BERTH_TRACE_START";

fn sink() -> Option<&'static std::fs::File> {
    static SINK: OnceLock<Option<std::fs::File>> = OnceLock::new();
    SINK.get_or_init(|| {
        let path = std::env::var_os(ENV).filter(|p| !p.is_empty())?;
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).ok()
    })
    .as_ref()
}

/// Whether tracing is on in this process.
pub fn enabled() -> bool {
    sink().is_some()
}

/// Records that container `id` reached `phase` now. One `write` with `O_APPEND`, so lines
/// of concurrent processes never interleave.
pub fn mark(id: &str, phase: &str) {
    let Some(mut f) = sink() else { return };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let line = format!("{now} {} {id} {phase}\n", std::process::id());
    let _ = f.write_all(line.as_bytes());
}

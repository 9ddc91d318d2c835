//! Writing to the terminal as docker does: stdout that ignores a closed pipe, stderr lines,
//! container output routed to the matching stream, and errors printed in docker's words.

use std::io::Write;

use berth_api::ClientError;
use berth_api::stdcopy::Stream;

use crate::CliError;

/// Prints to stdout, ignoring a closed pipe as docker does.
pub(crate) fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Prints one line to stderr.
pub(crate) fn err_line(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{s}");
}

/// Prints a command's error: a daemon's answer after "Error response from daemon: ", any
/// other error as its message.
pub(crate) fn print_error(e: &CliError) {
    match e {
        CliError::Client(e @ ClientError::Daemon { .. }) => err_line(&format!("Error response from daemon: {e}")),
        e => err_line(&e.to_string()),
    }
}

/// Writes container output to the matching local stream.
pub(crate) fn out_bytes(stream: Stream, data: &[u8]) {
    if stream == Stream::Stderr {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(data);
        let _ = e.flush();
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(data);
        let _ = o.flush();
    }
}

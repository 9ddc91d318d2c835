//! The last step of a container's init: becoming the container's command. libcontainer's
//! own executor ends an init whose execve fails with 255 and no word; the init executors
//! here (this one, and the seccomp one in [`crate::seccomp`]) say what failed on the
//! container's stderr, as runc does under Docker.

use std::path::PathBuf;

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::Spec;

/// The executor of a container's init without a filter of ours: libcontainer's default
/// one, but a failed execve is said as [`exec_command`] says it.
#[derive(Clone)]
pub(crate) struct InitExecutor;

impl Executor for InitExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        exec_command(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// The executor of an exec's process without a filter of ours: libcontainer's default one,
/// after [`apply_console_size`].
#[derive(Clone)]
pub(crate) struct TenantExecutor;

impl Executor for TenantExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        apply_console_size(spec);
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// Gives the process's terminal (its stdin, the pty's other end) the spec's `consoleSize`,
/// from inside, just before it becomes the command. For an exec the shim cannot do it in
/// time: libcontainer sends it the pty master and goes on to exec without waiting, and the
/// command (`stty size`, a shell drawing its prompt) looked before the size arrived.
pub(crate) fn apply_console_size(spec: &Spec) {
    if let Some(ws) = console_winsize(spec) {
        // SAFETY: fd 0 is open for the whole call (libcontainer made it the pty's slave).
        let _ = rustix::termios::tcsetwinsize(unsafe { std::os::fd::BorrowedFd::borrow_raw(0) }, ws);
    }
}

/// The spec's `consoleSize` as a window size: when the process has a terminal and both
/// dimensions are set.
pub(crate) fn console_winsize(spec: &Spec) -> Option<rustix::termios::Winsize> {
    let p = spec.process().as_ref()?;
    let size = p.console_size().filter(|_| p.terminal().unwrap_or(false))?;
    let (rows, cols) = (u16::try_from(size.height()).ok()?, u16::try_from(size.width()).ok()?);
    (rows > 0 && cols > 0).then_some(rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    })
}

/// Replaces the init with the container's command (argv[0] looked up in the process's
/// `PATH`, as execvp does). When the execve fails (a filter that refuses it, a file that
/// changed since the shim checked it), says so on the container's stderr, where logs and
/// attached clients see it, as runc does under Docker (`exec /bin/true: operation not
/// permitted`), and ends the init with runc's status: 1, or Docker's 127/126 for a
/// command that is missing or not executable. libcontainer's own executor would end it
/// with 255 and no word.
pub(crate) fn exec_command(spec: &Spec) -> Result<(), ExecutorError> {
    let args = spec.process().as_ref().and_then(|p| p.args().as_ref()).filter(|a| !a.is_empty());
    let Some(args) = args else { return Err(ExecutorError::InvalidArg) };
    let cmd = &args[0];
    let path = match cmd.contains('/') {
        true => PathBuf::from(cmd),
        false => std::env::var_os("PATH")
            .and_then(|p| std::env::split_paths(&p).map(|d| d.join(cmd)).find(|c| c.is_file()))
            .unwrap_or_else(|| PathBuf::from(cmd)),
    };
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| ExecutorError::InvalidArg)?;
    let c_args: Vec<std::ffi::CString> = args
        .iter()
        .map(|a| std::ffi::CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| ExecutorError::InvalidArg)?;
    let mut argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: `c_path` and every `argv` entry are NUL-terminated strings that outlive the
    // call, and `argv` ends with a null pointer; `environ` is the process's environment
    // (set by setup_envs). execv returns only on failure.
    unsafe { libc::execv(c_path.as_ptr(), argv.as_ptr()) };
    let err = std::io::Error::last_os_error();
    let code = match err.raw_os_error() {
        Some(libc::ENOENT) => 127,
        Some(libc::EACCES | libc::ENOEXEC) => 126,
        _ => 1,
    };
    let msg = format!("exec {}: {}\n", path.display(), os_error_text(&err));
    // SAFETY: writes a buffer we own to fd 2 and ends the process without unwinding or
    // running the shim's (inherited) exit handlers.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(code)
    }
}

/// An OS error as Go's syscall package words it ("operation not permitted"): the C
/// library's text with a lower-case first letter, without Rust's "(os error N)".
fn os_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut c = text.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

//! `exec` and `attach`, as the docker CLI runs them: `exec` creates an exec instance,
//! starts it on a hijacked connection (or detached with `-d`), pumps stdio (raw terminal
//! and window size with `-t`), then reads the exit code from the exec's inspect; `attach`
//! joins a running container's streams. Both stop at the detach keys (`--detach-keys`,
//! else `detachKeys` in the client's config file, else ctrl-p ctrl-q), leaving the process
//! running.

use berth_api::Client;
use berth_api::client::AttachIo;
use berth_api::detach::DetachKeys;
use berth_api::models::ExecConfig;
use berth_api::query;
use berth_api::stdcopy::{Decoder, Stream};
use clap::{ArgAction, Args};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::CliError;
use crate::commands::Res;
use crate::output::out_bytes;

#[cfg_attr(doc, doc = "Flags of `exec` (docker's names).")]
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct ExecArgs {
    /// Print usage
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Detached mode: run command in the background
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long = "privileged")]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// The container.
    pub container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[cfg_attr(doc, doc = "Flags of `attach`.")]
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub sig_proxy: bool,
    /// The container.
    pub container: String,
}

/// `detachKeys` from the client's config file (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`), as the docker CLI reads it.
pub fn configured_detach_keys() -> Option<String> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker")))?;
    let data = std::fs::read(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
    v.get("detachKeys").and_then(|k| k.as_str()).filter(|k| !k.is_empty()).map(str::to_owned)
}

/// The detach keys in force: the flag, else the config file's; checked as docker checks.
pub fn detach_keys(flag: Option<&str>) -> Result<(String, DetachKeys), CliError> {
    let s = flag.filter(|k| !k.is_empty()).map(str::to_owned).or_else(configured_detach_keys).unwrap_or_default();
    let keys = parse_detach_keys(&s)?;
    Ok((s, keys))
}

/// Detach keys already chosen (the flag's or the config file's; empty for docker's default
/// ctrl-p,ctrl-q), checked as docker checks them.
pub fn parse_detach_keys(s: &str) -> Result<DetachKeys, CliError> {
    DetachKeys::parse(s).map_err(|e| CliError::Message(format!("invalid detach keys ({s}): {e}")))
}

/// How a pumped session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The output stream closed.
    Eof,
    /// The user typed the detach keys.
    Detached,
}

/// Pumps a hijacked stream: our stdin to it (watching for the detach keys when it is a
/// terminal, as docker's CLI does), its output to our stdout/stderr (demultiplexed
/// unless `tty`), and window-size changes to `resize`.
pub(crate) async fn pump<R, F>(
    io: AttachIo,
    tty: bool,
    stdin: bool,
    keys: DetachKeys,
    resize: R,
) -> Result<Ended, CliError>
where
    R: Fn(u16, u16) -> F,
    F: std::future::Future<Output = ()>,
{
    let _raw = if tty && stdin { crate::run::RawGuard::new() } else { None };
    if tty && let Some((h, w)) = crate::run::window_size() {
        resize(h, w).await;
    }
    let (mut rd, mut wr) = tokio::io::split(io);
    let (detach_tx, mut detach_rx) = tokio::sync::mpsc::channel::<()>(1);
    if stdin {
        // The docker CLI watches for the keys on a terminal only; the daemon does it for
        // every attached stdin.
        let watch = tty && rustix::termios::isatty(std::io::stdin());
        tokio::spawn(async move {
            let mut scanner = keys.scanner();
            let mut input = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let (data, detached) = if watch { scanner.feed(&buf[..n]) } else { (buf[..n].to_vec(), false) };
                        if !data.is_empty() && (wr.write_all(&data).await.is_err() || wr.flush().await.is_err()) {
                            return;
                        }
                        if detached {
                            let _ = detach_tx.send(()).await;
                            return;
                        }
                    }
                }
            }
            // Half-close so the process sees EOF on its stdin.
            let _ = wr.shutdown().await;
        });
    } else {
        drop(wr);
    }
    let mut winch =
        if tty { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok() } else { None };
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => r,
            Some(()) = detach_rx.recv() => return Ok(Ended::Detached),
            Some(()) = async { match winch.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                if let Some((h, w)) = crate::run::window_size() {
                    resize(h, w).await;
                }
                continue;
            }
        };
        let n = match n {
            Ok(0) => return Ok(Ended::Eof),
            Ok(n) => n,
            Err(e) => return Err(e.into()),
        };
        if tty {
            out_bytes(Stream::Stdout, &buf[..n]);
            continue;
        }
        decoder.feed(&buf[..n]);
        while let Some((s, data)) = decoder.next_frame()? {
            out_bytes(s, &data);
        }
    }
}

/// `exec`: returns the command's exit code.
pub async fn exec(c: &Client, a: ExecArgs) -> Res {
    let (keys_text, keys) = detach_keys(a.detach_keys.as_deref())?;
    let mut env = Vec::new();
    for f in &a.env_file {
        let content = std::fs::read_to_string(f).map_err(|e| CliError::Message(format!("open {f}: {e}")))?;
        env.extend(crate::opts::parse_env_file(&content, &|k| std::env::var(k).ok())?);
    }
    for e in &a.env {
        env.extend(crate::opts::resolve_env(e, &|k| std::env::var(k).ok())?);
    }
    c.inspect_container(&a.container, &query::InspectContainer::default()).await?;
    if !a.detach && a.interactive && a.tty && !rustix::termios::isatty(std::io::stdin()) {
        return Err(CliError::Message("the input device is not a TTY".to_owned()));
    }
    let console = if a.tty { crate::run::window_size() } else { None };
    let cfg = ExecConfig {
        attach_stdin: Some(!a.detach && a.interactive),
        attach_stdout: Some(!a.detach),
        attach_stderr: Some(!a.detach),
        console_size: console.map(|(h, w)| vec![usize::from(h), usize::from(w)]),
        detach_keys: (!keys_text.is_empty()).then_some(keys_text),
        tty: Some(a.tty),
        env: (!env.is_empty()).then_some(env),
        cmd: Some(a.command.clone()),
        privileged: Some(a.privileged),
        user: a.user.clone(),
        working_dir: a.workdir.clone(),
    };
    let id = c.create_exec(&a.container, &cfg).await?;
    if a.detach {
        c.start_exec_detached(&id, a.tty).await?;
        return Ok(());
    }
    let io = c.start_exec_attached(&id, a.tty, console).await?;
    let ended = pump(io, a.tty, a.interactive, keys, |h, w| {
        let id = id.clone();
        async move {
            let _ = c.resize_exec(&id, h, w).await;
        }
    })
    .await?;
    if ended == Ended::Detached {
        return Err(CliError::Message("read escape sequence".to_owned()));
    }
    let info = c.inspect_exec(&id).await?;
    match info.exit_code.unwrap_or(0) {
        0 => Ok(()),
        code => Err(CliError::Status(i32::try_from(code).unwrap_or(125))),
    }
}

/// `attach`: joins a running container's output (and stdin unless `--no-stdin`) until it
/// exits, with its exit code, or until the detach keys are typed.
pub async fn attach(c: &Client, a: AttachArgs) -> Res {
    let (keys_text, keys) = detach_keys(a.detach_keys.as_deref())?;
    let info = c.inspect_container(&a.container, &query::InspectContainer::default()).await?;
    let state = info.state.clone().unwrap_or_default();
    if state.paused == Some(true) {
        return Err(CliError::Message("You cannot attach to a paused container, unpause it first".to_owned()));
    }
    if state.running != Some(true) {
        return Err(CliError::Message("You cannot attach to a stopped container, start it first".to_owned()));
    }
    let cfg = info.config.clone().unwrap_or_default();
    let tty = cfg.tty.unwrap_or(false);
    let id = info.id.clone().unwrap_or_else(|| a.container.clone());
    let stdin = !a.no_stdin && cfg.open_stdin.unwrap_or(false);
    let waiter = c.wait_container(&id, &query::WaitContainer { condition: Some("not-running".to_owned()) }).await?;
    let q = query::AttachContainer {
        stream: true,
        logs: false,
        stdin,
        stdout: true,
        stderr: true,
        detach_keys: (!keys_text.is_empty()).then_some(keys_text),
    };
    let io = c.attach_container(&id, &q).await?;
    if a.sig_proxy && !tty {
        forward_signals(c.clone(), id.clone());
    }
    let ended = pump(io, tty, stdin, keys, |h, w| {
        let id = id.clone();
        async move {
            let _ = c.resize_container(&id, h, w).await;
        }
    })
    .await?;
    if ended == Ended::Detached {
        return Err(CliError::Message("read escape sequence".to_owned()));
    }
    let status = waiter.result().await?;
    if let Some(msg) = status.error.and_then(|e| e.message).filter(|m| !m.is_empty()) {
        return Err(CliError::Message(msg));
    }
    match status.status_code {
        0 => Ok(()),
        code => Err(CliError::Status(i32::try_from(code).unwrap_or(125))),
    }
}

/// `--sig-proxy`: the signals a terminal user sends us go to the container, as the docker
/// CLI forwards them (SIGCHLD, SIGPIPE, SIGURG and SIGWINCH excepted).
fn forward_signals(c: Client, id: String) {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, name) in [
        (SignalKind::interrupt(), "INT"),
        (SignalKind::terminate(), "TERM"),
        (SignalKind::hangup(), "HUP"),
        (SignalKind::quit(), "QUIT"),
        (SignalKind::user_defined1(), "USR1"),
        (SignalKind::user_defined2(), "USR2"),
    ] {
        let Ok(mut sig) = signal(kind) else { continue };
        let (c, id) = (c.clone(), id.clone());
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let q = query::KillContainer { signal: Some(name.to_owned()) };
                let _ = c.kill_container(&id, &q).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Cmd};
    use clap::Parser;

    fn parse(v: &[&str]) -> Cli {
        let args: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        let mut all = vec!["berth".to_owned()];
        all.extend(crate::separate_command(&args));
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn exec_flags_stop_at_the_container() {
        let Some(Cmd::Exec(e)) = parse(&["exec", "-it", "-e", "A=1", "-u", "0:0", "web", "sh", "-c", "ls -l"]).cmd
        else {
            panic!("not exec")
        };
        assert!(e.interactive && e.tty && !e.detach);
        assert_eq!((e.container.as_str(), e.user.as_deref()), ("web", Some("0:0")));
        assert_eq!(e.command, ["sh", "-c", "ls -l"]);
        let Some(Cmd::Exec(e)) = parse(&["exec", "-d", "web", "ls", "-la", "--", "-x"]).cmd else { panic!("not exec") };
        assert!(e.detach);
        assert_eq!(e.command, ["ls", "-la", "--", "-x"]);
    }

    #[test]
    fn attach_flags() {
        let Some(Cmd::Attach(a)) = parse(&["attach", "--no-stdin", "--sig-proxy=false", "web"]).cmd else {
            panic!("not attach")
        };
        assert!(a.no_stdin && !a.sig_proxy);
        assert_eq!(a.container, "web");
        let Some(Cmd::Attach(a)) = parse(&["attach", "--detach-keys", "ctrl-a", "web"]).cmd else { panic!() };
        assert!(a.sig_proxy);
        assert_eq!(a.detach_keys.as_deref(), Some("ctrl-a"));
    }

    #[test]
    fn detach_keys_come_from_the_flag_then_the_config() {
        assert_eq!(detach_keys(Some("ctrl-a,b")).unwrap().0, "ctrl-a,b");
        assert_eq!(
            detach_keys(Some("ctrl-foo")).unwrap_err().to_string(),
            "invalid detach keys (ctrl-foo): Unknown character: 'ctrl-foo'"
        );
    }
}

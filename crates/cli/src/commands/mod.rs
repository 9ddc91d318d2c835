//! The commands, one file per kind of object: containers (start, stop, kill, wait, logs, rm,
//! ps; `run`/`create` in `run`), images (images, rmi, import, tag, history; `build` in
//! `build`), and the system (version, info, inspect, df, builder prune).

pub mod build;
pub mod compose;
pub mod container;
pub mod cp;
pub mod events;
pub mod exec;
pub mod explore;
pub mod health;
pub mod image;
pub mod network;
pub mod prune;
pub mod registry;
pub mod run;
pub mod stats;
pub mod system;
pub mod volume;

use berth_api::query::Filters;

use crate::CliError;
use crate::output::print_error;

/// What a command returns.
pub(crate) type Res = Result<(), CliError>;

/// The current time in unix seconds.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Go's default time format, as docker prints `CreatedAt`.
pub(crate) fn go_time(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

/// An id shortened to docker's 12 hex digits.
pub(crate) fn short(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// Runs `f` on each name, printing errors docker-style; exit 1 if any failed.
pub(crate) async fn each<F, Fut>(names: &[String], f: F) -> Res
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let mut failed = false;
    for n in names {
        if let Err(e) = f(n.clone()).await {
            failed = true;
            print_error(&e);
        }
    }
    if failed { Err(CliError::Status(1)) } else { Ok(()) }
}

/// Docker's `-f name=value` filters.
pub(crate) fn parse_filters(items: &[String]) -> Result<Filters, CliError> {
    let mut f = Filters::default();
    for i in items {
        let Some((k, v)) = i.split_once('=') else {
            return Err(CliError::Message(format!(
                "invalid argument \"{i}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"
            )));
        };
        f.add(k.trim().to_ascii_lowercase().as_str(), v);
    }
    Ok(f)
}

//! `run`/`create`'s health-check flags (`--health-cmd`, `--health-interval`,
//! `--health-timeout`, `--health-retries`, `--health-start-period`,
//! `--health-start-interval`, `--no-healthcheck`) turned into the create body's
//! `Healthcheck` as the docker CLI builds it, with Go's duration syntax.

use berth_api::models::HealthConfig;
use clap::Args;

use crate::CliError;

#[cfg_attr(doc, doc = "The health-check flags.")]
#[derive(Debug, Default, Args)]
pub struct HealthArgs {
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval")]
    pub interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout")]
    pub timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period")]
    pub start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-interval")]
    pub start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
}

/// Parses a Go duration (`1h30m`, `1.5s`, `300ms`, `0`) into nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration \"{s}\"");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration \"{s}\""))?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            u => return Err(format!("time: unknown unit \"{u}\" in duration \"{s}\"")),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Ok(if neg { -(total as i64) } else { total as i64 })
}

impl HealthArgs {
    /// The `Healthcheck` for the create body, `None` when no flag was given.
    pub fn config(&self) -> Result<Option<HealthConfig>, CliError> {
        let dur = |flag: &str, v: &Option<String>| -> Result<i64, CliError> {
            let Some(v) = v else { return Ok(0) };
            let n = parse_go_duration(v)
                .map_err(|e| CliError::Opt(format!("invalid argument \"{v}\" for \"--{flag}\" flag: {e}")))?;
            if n < 0 {
                return Err(CliError::Opt(format!("--{flag} cannot be negative")));
            }
            Ok(n)
        };
        let interval = dur("health-interval", &self.interval)?;
        let timeout = dur("health-timeout", &self.timeout)?;
        let start_period = dur("health-start-period", &self.start_period)?;
        let start_interval = dur("health-start-interval", &self.start_interval)?;
        let retries = self.retries.unwrap_or(0);
        let any = self.cmd.as_deref().is_some_and(|c| !c.is_empty())
            || interval != 0
            || timeout != 0
            || start_period != 0
            || start_interval != 0
            || retries != 0;
        if self.no_healthcheck {
            if any {
                return Err(CliError::Opt("--no-healthcheck conflicts with --health-* options".to_owned()));
            }
            return Ok(Some(HealthConfig { test: Some(vec!["NONE".to_owned()]), ..Default::default() }));
        }
        if !any {
            return Ok(None);
        }
        if retries < 0 {
            return Err(CliError::Opt("--health-retries cannot be negative".to_owned()));
        }
        Ok(Some(HealthConfig {
            test: self.cmd.as_ref().filter(|c| !c.is_empty()).map(|c| vec!["CMD-SHELL".to_owned(), c.clone()]),
            interval: Some(interval),
            timeout: Some(timeout),
            retries: Some(retries),
            start_period: Some(start_period),
            start_interval: Some(start_interval),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Ok(1_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(parse_go_duration("5").unwrap_err().contains("missing unit"));
        assert!(parse_go_duration("5d").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn flags_make_dockers_healthcheck() {
        let h = HealthArgs {
            cmd: Some("exit 1".into()),
            interval: Some("1s".into()),
            retries: Some(2),
            ..Default::default()
        };
        let c = h.config().unwrap().unwrap();
        assert_eq!(c.test, Some(vec!["CMD-SHELL".to_owned(), "exit 1".to_owned()]));
        assert_eq!((c.interval, c.retries, c.timeout), (Some(1_000_000_000), Some(2), Some(0)));
        assert_eq!(HealthArgs::default().config().unwrap(), None);
        let none = HealthArgs { no_healthcheck: true, ..Default::default() };
        assert_eq!(none.config().unwrap().unwrap().test, Some(vec!["NONE".to_owned()]));
        let both = HealthArgs { no_healthcheck: true, cmd: Some("true".into()), ..Default::default() };
        assert_eq!(both.config().unwrap_err().to_string(), "--no-healthcheck conflicts with --health-* options");
        let neg = HealthArgs { interval: Some("-1s".into()), ..Default::default() };
        assert_eq!(neg.config().unwrap_err().to_string(), "--health-interval cannot be negative");
    }
}

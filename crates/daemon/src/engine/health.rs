//! Health checks: the image's `HEALTHCHECK` or `--health-*` flags (merged at create), run
//! as exec probes in the container while it runs, with moby's timing and verdicts: an
//! interval (the start interval while starting within the start period), a timeout that
//! kills the probe, `retries` consecutive failures to turn unhealthy, failures inside the
//! start period not counted, the last five results kept. The state (inspect's
//! `State.Health`, `ps`'s `(healthy)`) is part of the container's record and stored with it
//! after every probe, as dockerd checkpoints it, so a restarted daemon keeps the status,
//! failing streak and log and resumes the probes where they were; a status change calls
//! [`Engine::emit_health_status_event`], which publishes it on the events bus.

use std::sync::Arc;
use std::time::Duration;

use berth_api::models::{Health, HealthConfig, HealthStatusEnum, HealthcheckResult};
use chrono::Utc;

use super::{Container, Engine};
use crate::record::{ContainerRecord, Status};

/// moby's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
/// Longest probe output kept.
const MAX_OUTPUT: usize = 4096;
/// Results kept in `Log`.
const MAX_LOG: usize = 5;

/// A container's probe as it will run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probe {
    /// argv of the probe.
    pub args: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: i64,
}

fn nanos(v: Option<i64>, default: Duration) -> Duration {
    match v {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// The probe a container's config asks for; `None` without a healthcheck or with `NONE`.
pub(crate) fn probe_of(h: Option<&HealthConfig>, shell: Option<&[String]>) -> Option<Probe> {
    let h = h?;
    let test = h.test.as_deref()?;
    let args = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => {
            let mut a: Vec<String> = match shell {
                Some(s) if !s.is_empty() => s.to_vec(),
                _ => vec!["/bin/sh".to_owned(), "-c".to_owned()],
            };
            a.push(test[1..].join(" "));
            a
        }
        _ => return None,
    };
    if args.is_empty() {
        return None;
    }
    Some(Probe {
        args,
        interval: nanos(h.interval, DEFAULT_INTERVAL),
        timeout: nanos(h.timeout, DEFAULT_TIMEOUT),
        start_period: nanos(h.start_period, Duration::ZERO),
        start_interval: nanos(h.start_interval, DEFAULT_START_INTERVAL),
        retries: h.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES),
    })
}

/// Applies one probe result to the health state as moby's handleProbeResult does;
/// returns whether the status changed.
pub(crate) fn record_result(h: &mut Health, p: &Probe, result: HealthcheckResult, since_start: Duration) -> bool {
    let old = h.status;
    if result.exit_code == Some(0) {
        h.failing_streak = Some(0);
        h.status = Some(HealthStatusEnum::HEALTHY);
    } else {
        let in_start_period = old == Some(HealthStatusEnum::STARTING) && since_start < p.start_period;
        if !in_start_period {
            let streak = h.failing_streak.unwrap_or(0) + 1;
            h.failing_streak = Some(streak);
            if streak >= p.retries {
                h.status = Some(HealthStatusEnum::UNHEALTHY);
            }
        }
    }
    let log = h.log.get_or_insert_with(Vec::new);
    log.push(result);
    if log.len() > MAX_LOG {
        let extra = log.len() - MAX_LOG;
        log.drain(..extra);
    }
    h.status != old
}

fn starting() -> Health {
    Health { status: Some(HealthStatusEnum::STARTING), failing_streak: Some(0), log: Some(Vec::new()) }
}

impl Engine {
    /// `State.Health` for inspect: `None` for a container without a healthcheck.
    pub fn health_of(&self, rec: &ContainerRecord) -> Option<Health> {
        probe_of(rec.config.healthcheck.as_ref(), rec.config.shell.as_deref())?;
        // Never started: Docker shows the status it starts from.
        Some(rec.health.clone().unwrap_or_else(starting))
    }

    /// What `ps` appends to a running container's status: ` (healthy)`, ` (unhealthy)`,
    /// ` (health: starting)`, or nothing.
    pub fn health_suffix(&self, rec: &ContainerRecord) -> &'static str {
        if rec.state.status != Status::Running {
            return "";
        }
        match self.health_of(rec).and_then(|h| h.status) {
            Some(HealthStatusEnum::HEALTHY) => " (healthy)",
            Some(HealthStatusEnum::UNHEALTHY) => " (unhealthy)",
            Some(HealthStatusEnum::STARTING) => " (health: starting)",
            _ => "",
        }
    }

    /// Starts the health monitor of a container that has just started: its status goes
    /// back to `starting` with no failures counted (the log is kept, as in dockerd). The
    /// monitor ends by itself when the container stops.
    pub(super) fn start_health_monitor(self: &Arc<Self>, c: &Arc<Container>) {
        let rec = c.snapshot();
        let Some(probe) = probe_of(rec.config.healthcheck.as_ref(), rec.config.shell.as_deref()) else { return };
        c.update(|r| {
            let h = r.health.get_or_insert_with(starting);
            h.status = Some(HealthStatusEnum::STARTING);
            h.failing_streak = Some(0);
        });
        self.persist(c);
        let engine = self.clone();
        let c = c.clone();
        tokio::spawn(async move { engine.health_monitor(c, probe).await });
    }

    /// Resumes the health monitor of a container a restarted daemon found running, with
    /// the status, failing streak and log it had (dockerd's live restore does the same).
    pub(super) fn resume_health_monitor(self: &Arc<Self>, c: &Arc<Container>) {
        let rec = c.snapshot();
        let Some(probe) = probe_of(rec.config.healthcheck.as_ref(), rec.config.shell.as_deref()) else { return };
        let engine = self.clone();
        let c = c.clone();
        tokio::spawn(async move { engine.health_monitor(c, probe).await });
    }

    async fn health_monitor(self: Arc<Self>, c: Arc<Container>, probe: Probe) {
        let started = c.snapshot().state.started_at.unwrap_or_else(Utc::now);
        let mut rx = c.subscribe();
        loop {
            let since_start = (Utc::now() - started).to_std().unwrap_or_default();
            let status = self.health_of(&c.snapshot()).and_then(|h| h.status);
            let wait = if since_start < probe.start_period && status == Some(HealthStatusEnum::STARTING) {
                probe.start_interval
            } else {
                probe.interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = rx.wait_for(|e| !e.running || e.removed) => { let _ = r; return; }
            }
            if !rx.borrow().running {
                return;
            }
            let result = self.run_probe(&c.id, &probe).await;
            if !c.subscribe().borrow().running {
                return;
            }
            let since_start = (Utc::now() - started).to_std().unwrap_or_default();
            let changed = c.update(|r| {
                let h = r.health.get_or_insert_with(starting);
                if record_result(h, &probe, result, since_start) { h.status } else { None }
            });
            self.persist(&c);
            if let Some(status) = changed {
                self.emit_health_status_event(&c.id, status);
            }
        }
    }

    async fn run_probe(&self, id: &str, probe: &Probe) -> HealthcheckResult {
        let start = Utc::now();
        let res = self.exec_capture(id, probe.args.clone(), probe.timeout, MAX_OUTPUT).await;
        let end = Utc::now();
        let (exit_code, output) = match res {
            Ok((Some(code), out)) => (code, String::from_utf8_lossy(&out).into_owned()),
            Ok((None, out)) => {
                let t = format!("{:?}", probe.timeout);
                let out = String::from_utf8_lossy(&out).into_owned();
                let msg = if out.is_empty() {
                    format!("Health check exceeded timeout ({t})")
                } else {
                    format!("Health check exceeded timeout ({t}): {out}")
                };
                (-1, msg)
            }
            Err(e) => (-1, e.to_string()),
        };
        let t = |d: chrono::DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        HealthcheckResult { start: Some(t(start)), end: Some(t(end)), exit_code: Some(exit_code), output: Some(output) }
    }

    /// Publishes a container's new health status on the events bus, once per change, with
    /// Docker's event action `health_status: <status>`.
    pub(crate) fn emit_health_status_event(&self, container_id: &str, status: HealthStatusEnum) {
        if let Ok(c) = self.get(container_id) {
            self.emit_container(&c.snapshot(), &format!("health_status: {status}"), &[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(test: &[&str]) -> HealthConfig {
        HealthConfig { test: Some(test.iter().map(|s| s.to_string()).collect()), ..Default::default() }
    }

    #[test]
    fn probes_from_configs() {
        let p = probe_of(Some(&cfg(&["CMD-SHELL", "exit 1"])), None).unwrap();
        assert_eq!(p.args, ["/bin/sh", "-c", "exit 1"]);
        assert_eq!((p.interval, p.timeout, p.retries), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT, 3));
        let shell = vec!["/bin/ash".to_owned(), "-e".to_owned(), "-c".to_owned()];
        assert_eq!(
            probe_of(Some(&cfg(&["CMD-SHELL", "true"])), Some(&shell)).unwrap().args,
            ["/bin/ash", "-e", "-c", "true"]
        );
        assert_eq!(probe_of(Some(&cfg(&["CMD", "cat", "/x"])), None).unwrap().args, ["cat", "/x"]);
        assert!(probe_of(Some(&cfg(&["NONE"])), None).is_none());
        assert!(probe_of(Some(&cfg(&[])), None).is_none());
        assert!(probe_of(None, None).is_none());
        let mut c = cfg(&["CMD", "true"]);
        c.interval = Some(1_000_000_000);
        c.retries = Some(2);
        c.start_period = Some(5_000_000_000);
        let p = probe_of(Some(&c), None).unwrap();
        assert_eq!((p.interval, p.retries, p.start_period), (Duration::from_secs(1), 2, Duration::from_secs(5)));
    }

    #[test]
    fn verdicts_follow_moby() {
        let mut c = cfg(&["CMD", "false"]);
        c.retries = Some(2);
        c.start_period = Some(10_000_000_000);
        let p = probe_of(Some(&c), None).unwrap();
        let r = |code| HealthcheckResult { exit_code: Some(code), output: Some(String::new()), ..Default::default() };
        let mut h = starting();
        assert!(
            !record_result(&mut h, &p, r(1), Duration::from_secs(1)),
            "a failure in the start period is not counted"
        );
        assert_eq!(h.failing_streak, Some(0));
        assert!(!record_result(&mut h, &p, r(1), Duration::from_secs(11)));
        assert_eq!(h.failing_streak, Some(1));
        assert!(record_result(&mut h, &p, r(1), Duration::from_secs(12)));
        assert_eq!(h.status, Some(HealthStatusEnum::UNHEALTHY));
        assert!(record_result(&mut h, &p, r(0), Duration::from_secs(13)));
        assert_eq!((h.status, h.failing_streak), (Some(HealthStatusEnum::HEALTHY), Some(0)));
        for _ in 0..10 {
            record_result(&mut h, &p, r(0), Duration::from_secs(14));
        }
        assert_eq!(h.log.as_ref().unwrap().len(), MAX_LOG);
    }
}

//! Restart policies, with dockerd's rules (its restartmanager): `no`, `always`,
//! `unless-stopped`, `on-failure[:N]`; a back-off that starts at 100 ms, doubles up to a
//! minute and falls back to 100 ms after a run of 10 s or more; a stop or kill by the user
//! cancels the pending and any further restart until the next manual start (dockerd's
//! ExitOnNext), and marks the container manually stopped, which `unless-stopped` honours
//! when the daemon starts again.

use std::sync::Arc;
use std::time::Duration;

use berth_api::models::{HostConfig, RestartPolicy, RestartPolicyNameEnum};
use tokio::sync::oneshot;

use super::{Container, Engine};
use crate::error::{Error, Result};
use crate::record::Status;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
const RESET_AFTER: Duration = Duration::from_secs(10);

/// A container's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Never restart.
    No,
    /// Always restart (a manual stop holds until the daemon restarts).
    Always,
    /// Restart unless the user stopped it.
    UnlessStopped,
    /// Restart after a non-zero exit, at most `max` times (0: no limit).
    OnFailure(i64),
}

impl Policy {
    /// The policy a host config asks for.
    pub fn of(hc: &HostConfig) -> Policy {
        let Some(rp) = &hc.restart_policy else { return Policy::No };
        match rp.name {
            Some(RestartPolicyNameEnum::ALWAYS) => Policy::Always,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED) => Policy::UnlessStopped,
            Some(RestartPolicyNameEnum::ON_FAILURE) => Policy::OnFailure(rp.maximum_retry_count.unwrap_or(0)),
            _ => Policy::No,
        }
    }
}

/// dockerd's validateRestartPolicy, in the words of Docker 20.10 (the API version berth
/// speaks).
pub fn validate(rp: &RestartPolicy) -> Result<()> {
    let count = rp.maximum_retry_count.unwrap_or(0);
    match rp.name {
        Some(RestartPolicyNameEnum::ON_FAILURE) => {
            if count < 0 {
                return Err(Error::InvalidArgument("maximum retry count cannot be negative".to_owned()));
            }
        }
        None | Some(RestartPolicyNameEnum::EMPTY) => {}
        Some(name) => {
            if count != 0 {
                return Err(Error::InvalidArgument(format!(
                    "maximum retry count cannot be used with restart policy '{name}'"
                )));
            }
        }
    }
    Ok(())
}

/// The per-container restart state: the current back-off, whether the user cancelled
/// restarts (until the next manual start), and the pending restart's wake-up.
#[derive(Debug)]
pub struct Backoff {
    delay: Duration,
    cancelled: bool,
    pending: Option<oneshot::Sender<()>>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { delay: Duration::ZERO, cancelled: false, pending: None }
    }
}

impl Backoff {
    /// A manual start: a fresh manager, as dockerd's ResetRestartManager.
    pub fn reset(&mut self) {
        self.cancel_pending();
        *self = Backoff::default();
    }

    /// The user stopped or killed the container: no restart until a manual start.
    pub fn cancel(&mut self) {
        self.cancelled = true;
        self.cancel_pending();
    }

    fn cancel_pending(&mut self) {
        // Dropping the sender wakes the waiting restart, which then gives up.
        self.pending = None;
    }

    /// dockerd's ShouldRestart: the delay before the next start, or `None`.
    pub fn should_restart(
        &mut self,
        policy: Policy,
        restart_count: i64,
        exit_code: i64,
        manually_stopped: bool,
        ran_for: Duration,
    ) -> Option<Duration> {
        if policy == Policy::No || self.cancelled || self.pending.is_some() {
            return None;
        }
        if ran_for >= RESET_AFTER {
            self.delay = Duration::ZERO;
        }
        self.delay = if self.delay.is_zero() { FIRST_DELAY } else { (self.delay * 2).min(MAX_DELAY) };
        let restart = match policy {
            Policy::No => false,
            Policy::Always => true,
            Policy::UnlessStopped => !manually_stopped,
            Policy::OnFailure(max) => (max == 0 || restart_count < max) && exit_code != 0,
        };
        restart.then_some(self.delay)
    }
}

impl Engine {
    /// After a run ended (its exit recorded): decides on a restart by the policy and, if
    /// one is due, marks the container restarting and starts it again after the back-off.
    /// Returns whether a restart was scheduled.
    pub(super) fn schedule_restart(self: &Arc<Self>, c: &Arc<Container>) -> bool {
        let rec = c.snapshot();
        let policy = Policy::of(&rec.host_config);
        let ran_for = match (rec.state.started_at, rec.state.finished_at) {
            (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let (tx, rx) = oneshot::channel();
        let delay = {
            let mut b = c.backoff();
            let d =
                b.should_restart(policy, rec.restart_count, rec.state.exit_code, rec.state.manually_stopped, ran_for);
            if d.is_some() {
                b.pending = Some(tx);
            }
            d
        };
        let Some(delay) = delay else { return false };
        c.update(|r| {
            r.restart_count += 1;
            r.state.status = Status::Restarting;
        });
        self.persist(c);
        tracing::info!(container = %c.id, delay_ms = delay.as_millis() as u64, "restarting container by its policy");
        let engine = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let go = tokio::select! {
                _ = tokio::time::sleep(delay) => true,
                _ = rx => false,
            };
            engine.restart_after_backoff(&c, go).await;
        });
        true
    }

    async fn restart_after_backoff(self: &Arc<Self>, c: &Arc<Container>, go: bool) {
        let _op = c.op.lock().await;
        c.backoff().pending = None;
        if c.events.borrow().removed || c.snapshot().state.status != Status::Restarting {
            return;
        }
        if !go || c.backoff().cancelled {
            c.update(|r| r.state.status = Status::Exited);
            self.persist(c);
            return;
        }
        let rec = c.snapshot();
        if let Err(e) = self.start_locked(c, &rec).await {
            tracing::warn!(container = %c.id, error = %e, "restart by policy failed");
            self.start_failed(c, &e).await;
            c.update(|r| {
                if r.state.status == Status::Restarting {
                    r.state.status = Status::Exited;
                }
            });
            self.persist(c);
        }
    }

    /// When the daemon starts: containers whose policy asks for it are started again
    /// (`always` even after a manual stop, `unless-stopped` unless stopped by the user,
    /// `on-failure` after a failure within its count), as dockerd's restore does.
    pub(super) async fn restart_on_boot(self: &Arc<Self>) {
        for c in self.all() {
            let rec = c.snapshot();
            // Those whose shim died with the daemon were scheduled by their recorded exit.
            if !matches!(rec.state.status, Status::Exited | Status::Restarting) || c.backoff().pending.is_some() {
                continue;
            }
            let policy = Policy::of(&rec.host_config);
            let ran_for = match (rec.state.started_at, rec.state.finished_at) {
                (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
                _ => Duration::ZERO,
            };
            let due = Backoff::default()
                .should_restart(policy, rec.restart_count, rec.state.exit_code, rec.state.manually_stopped, ran_for)
                .is_some();
            if rec.state.status == Status::Restarting && !due {
                c.update(|r| r.state.status = Status::Exited);
                self.persist(&c);
            }
            if !due {
                continue;
            }
            let engine = self.clone();
            tokio::spawn(async move {
                let _op = c.op.lock().await;
                let rec = c.snapshot();
                if !matches!(rec.state.status, Status::Exited | Status::Restarting) {
                    return;
                }
                c.backoff().reset();
                if let Err(e) = engine.start_locked(&c, &rec).await {
                    tracing::warn!(container = %c.id, error = %e, "start by restart policy at daemon start failed");
                    engine.start_failed(&c, &e).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_and_resets_after_ten_seconds() {
        let mut b = Backoff::default();
        let mut delays = Vec::new();
        for _ in 0..12 {
            delays.push(b.should_restart(Policy::Always, 0, 1, false, S).unwrap());
            b.pending = None;
        }
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(delays[3], Duration::from_millis(800));
        assert_eq!(delays[11], MAX_DELAY);
        assert_eq!(b.should_restart(Policy::Always, 0, 1, false, RESET_AFTER), Some(FIRST_DELAY));
    }

    #[test]
    fn policies_follow_dockerd() {
        let d = |p: Policy, count: i64, code: i64, stopped: bool| {
            Backoff::default().should_restart(p, count, code, stopped, S).is_some()
        };
        assert!(!d(Policy::No, 0, 1, false));
        assert!(d(Policy::Always, 0, 0, false));
        assert!(d(Policy::Always, 0, 0, true), "always comes back after a manual stop at daemon start");
        assert!(d(Policy::UnlessStopped, 0, 0, false));
        assert!(!d(Policy::UnlessStopped, 0, 0, true));
        assert!(d(Policy::OnFailure(2), 1, 3, false));
        assert!(!d(Policy::OnFailure(2), 2, 3, false));
        assert!(!d(Policy::OnFailure(2), 0, 0, false));
        assert!(d(Policy::OnFailure(0), 100, 1, false));
        let mut b = Backoff::default();
        b.cancel();
        assert_eq!(b.should_restart(Policy::Always, 0, 1, false, S), None);
        b.reset();
        assert!(b.should_restart(Policy::Always, 0, 1, false, S).is_some());
    }

    #[test]
    fn validation_uses_dockerds_words() {
        let rp = |name, n| RestartPolicy { name: Some(name), maximum_retry_count: Some(n) };
        assert!(validate(&rp(RestartPolicyNameEnum::ON_FAILURE, 3)).is_ok());
        assert_eq!(
            validate(&rp(RestartPolicyNameEnum::ON_FAILURE, -1)).unwrap_err().to_string(),
            "maximum retry count cannot be negative"
        );
        assert_eq!(
            validate(&rp(RestartPolicyNameEnum::ALWAYS, 2)).unwrap_err().to_string(),
            "maximum retry count cannot be used with restart policy 'always'"
        );
        assert!(validate(&rp(RestartPolicyNameEnum::NO, 0)).is_ok());
    }
}

//! The build history: what each build the daemon ran did (when, with which tags, how it
//! ended, and each step with its time, whether the cache answered, and the tail of a failed
//! step's output). Docker keeps this in BuildKit's history, apart from the build cache; berth
//! keeps it in state.db's `build_history` table, one JSON record per build, the newest
//! [`KEEP_BUILDS`] kept. `builder prune` does not touch it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use berth_api::client::builds::{
    BUILD_CANCELED, BUILD_COMPLETED, BUILD_FAILED, BUILD_RUNNING, BuildRecord, BuildStepRecord,
};
use berth_build::solver::{Event, EventKind};
use rusqlite::{Connection, params};

use crate::error::{Error, Result};

/// How many builds the history keeps; older ones are removed when a build starts.
pub const KEEP_BUILDS: usize = 100;

/// How much of a step's output a failed step keeps (its end, where the error is).
pub const OUTPUT_TAIL: usize = 4096;

/// The `build_history` table.
pub struct HistoryStore {
    conn: Mutex<Connection>,
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl HistoryStore {
    /// Opens (creating) the table in `data_root/state.db`.
    pub fn open(data_root: &Path) -> Result<HistoryStore> {
        let conn = Connection::open(data_root.join("state.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS build_history (
                id TEXT PRIMARY KEY,
                started INTEGER NOT NULL,
                running INTEGER NOT NULL,
                record TEXT NOT NULL
            );",
        )?;
        Ok(HistoryStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        match self.conn.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        }
    }

    /// Writes `rec` (a new build, or a later state of one already stored).
    pub fn save(&self, rec: &BuildRecord) -> Result<()> {
        let json = serde_json::to_string(rec).map_err(|e| Error::Internal(format!("encode build record: {e}")))?;
        let started = chrono::DateTime::parse_from_rfc3339(&rec.started_at)
            .map(|t| t.timestamp_nanos_opt().unwrap_or(0))
            .unwrap_or(0);
        self.conn().execute(
            "INSERT INTO build_history (id, started, running, record) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET running = excluded.running, record = excluded.record",
            params![rec.id, started, rec.status == BUILD_RUNNING, json],
        )?;
        Ok(())
    }

    /// Removes all but the newest `keep` builds; returns how many went.
    pub fn prune(&self, keep: usize) -> Result<usize> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        Ok(self.conn().execute(
            "DELETE FROM build_history WHERE id NOT IN
               (SELECT id FROM build_history ORDER BY started DESC, rowid DESC LIMIT ?1)",
            params![keep],
        )?)
    }

    /// Every build, newest first, without its steps.
    pub fn list(&self) -> Result<Vec<BuildRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, record FROM build_history ORDER BY started DESC, rowid DESC")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            match serde_json::from_str::<BuildRecord>(&json) {
                Ok(mut rec) => {
                    rec.steps.clear();
                    out.push(rec)
                }
                Err(e) => tracing::warn!(build = %id, error = %e, "skipping an unreadable build record"),
            }
        }
        Ok(out)
    }

    /// One build with its steps: by its full id, or by a unique prefix of it.
    pub fn get(&self, id: &str) -> Result<BuildRecord> {
        let missing = || Error::NotFound(format!("no such build: {id}"));
        let id = id.to_ascii_lowercase();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(missing());
        }
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT record FROM build_history WHERE id >= ?1 AND id < ?2 LIMIT 2")?;
        let found: Vec<String> =
            stmt.query_map(params![&id, format!("{id}g")], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        match found.as_slice() {
            [json] => serde_json::from_str(json).map_err(|e| Error::Internal(format!("unreadable build record: {e}"))),
            [] => Err(missing()),
            _ => Err(Error::InvalidArgument(format!("build id {id:?} is ambiguous"))),
        }
    }

    /// At daemon start: a build still marked running was cut short by the daemon stopping.
    pub fn mark_interrupted(&self) -> Result<usize> {
        let running: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT record FROM build_history WHERE running != 0")?;
            stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
        };
        let n = running.len();
        for json in running {
            let rec = match serde_json::from_str::<BuildRecord>(&json) {
                Ok(rec) => rec,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unreadable build record");
                    continue;
                }
            };
            let mut inner = Inner { rec, started: None, steps: HashMap::new() };
            inner.finish(BUILD_CANCELED, Some("the daemon stopped during the build".into()), None, now());
            self.save(&inner.rec)?;
        }
        Ok(n)
    }
}

/// Records one build as it runs: created when the build starts, fed the solver's events,
/// and finished with the build's outcome. Each change of a step is written through, so
/// `GET /berth/builds` shows a running build's progress. Only the first write (in
/// [`Recorder::start`]) can fail the build, as opening the build cache in the same state.db
/// can; a later write that fails is logged and the build goes on.
pub struct Recorder {
    store: HistoryStore,
    inner: Mutex<Inner>,
}

struct Inner {
    rec: BuildRecord,
    /// When the build began; `None` for a record read back from the table.
    started: Option<Instant>,
    /// Running steps: when each began, and the end of its output.
    steps: HashMap<usize, (Instant, Vec<u8>)>,
}

impl Inner {
    fn step(&mut self, index: usize) -> Option<&mut BuildStepRecord> {
        self.rec.steps.iter_mut().rev().find(|s| s.index == index)
    }

    /// Applies one event; true when the record changed in a way worth writing.
    fn apply(&mut self, ev: &Event, at: chrono::DateTime<chrono::Utc>) -> bool {
        match &ev.kind {
            EventKind::Step { total, stage, text, .. } => {
                self.rec.total_steps = *total;
                self.rec.steps_run += 1;
                self.rec.steps.push(BuildStepRecord {
                    index: ev.index,
                    text: text.clone(),
                    stage: stage.clone(),
                    cached: false,
                    status: BUILD_RUNNING.into(),
                    started_at: rfc3339(at),
                    duration: None,
                    output: String::new(),
                });
                self.steps.insert(ev.index, (Instant::now(), Vec::new()));
                true
            }
            EventKind::Cached => {
                let Some(s) = self.step(ev.index) else { return false };
                if !s.cached {
                    s.cached = true;
                    self.rec.cached_steps += 1;
                }
                false
            }
            EventKind::Output(_, data) => {
                if let Some((_, tail)) = self.steps.get_mut(&ev.index) {
                    push_tail(tail, data);
                }
                false
            }
            EventKind::StepDone { seconds } => {
                self.steps.remove(&ev.index);
                let Some(s) = self.step(ev.index) else { return false };
                s.status = "done".into();
                s.duration = Some(*seconds);
                true
            }
            EventKind::Failed => {
                let (began, tail) = self.steps.remove(&ev.index).unwrap_or_else(|| (Instant::now(), Vec::new()));
                let Some(s) = self.step(ev.index) else { return false };
                s.status = BUILD_FAILED.into();
                s.duration = Some(began.elapsed().as_secs_f64());
                s.output = String::from_utf8_lossy(&tail).into_owned();
                true
            }
        }
    }

    /// Ends the build; steps still running stop with it.
    fn finish(
        &mut self,
        status: &str,
        error: Option<String>,
        image: Option<String>,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        for (index, (began, tail)) in std::mem::take(&mut self.steps) {
            if let Some(s) = self.step(index) {
                s.status = BUILD_CANCELED.into();
                s.duration = Some(began.elapsed().as_secs_f64());
                s.output = String::from_utf8_lossy(&tail).into_owned();
            }
        }
        // A record read back after a restart has no clock of its own: its times say.
        let seconds = match self.started {
            Some(began) => began.elapsed().as_secs_f64(),
            None => chrono::DateTime::parse_from_rfc3339(&self.rec.started_at)
                .map(|t| (at - t.with_timezone(&chrono::Utc)).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0),
        };
        self.rec.status = status.into();
        self.rec.error = error;
        self.rec.image_id = image;
        self.rec.completed_at = Some(rfc3339(at));
        self.rec.duration = Some(seconds);
    }
}

/// Keeps the last [`OUTPUT_TAIL`] bytes of a step's output.
fn push_tail(tail: &mut Vec<u8>, data: &[u8]) {
    if data.len() >= OUTPUT_TAIL {
        tail.clear();
        tail.extend_from_slice(&data[data.len() - OUTPUT_TAIL..]);
        return;
    }
    let over = (tail.len() + data.len()).saturating_sub(OUTPUT_TAIL);
    tail.drain(..over);
    tail.extend_from_slice(data);
}

impl Recorder {
    /// Starts the record of a build (status `running`) and prunes the history to
    /// [`KEEP_BUILDS`].
    pub fn start(data_root: &Path, tags: Vec<String>, dockerfile: String, context: &str) -> Result<Recorder> {
        let store = HistoryStore::open(data_root)?;
        let rec = BuildRecord {
            id: berth_base::new_id(),
            status: BUILD_RUNNING.into(),
            started_at: rfc3339(now()),
            tags,
            dockerfile,
            context: context.into(),
            ..Default::default()
        };
        store.save(&rec)?;
        store.prune(KEEP_BUILDS)?;
        Ok(Recorder { store, inner: Mutex::new(Inner { rec, started: Some(Instant::now()), steps: HashMap::new() }) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The build's id.
    #[cfg(test)]
    fn id(&self) -> String {
        self.lock().rec.id.clone()
    }

    /// Notes one of the solver's events.
    pub fn event(&self, ev: &Event) {
        let mut inner = self.lock();
        if inner.apply(ev, now())
            && let Err(e) = self.store.save(&inner.rec)
        {
            tracing::warn!(error = %e, "recording a build step");
        }
    }

    /// Ends the record: completed with the image's id, or failed / canceled with the error.
    pub fn finish(&self, outcome: std::result::Result<&str, (&str, String)>) {
        let mut inner = self.lock();
        match outcome {
            Ok(image) => inner.finish(BUILD_COMPLETED, None, Some(image.to_owned()), now()),
            Err((status, error)) => inner.finish(status, Some(error), None, now()),
        }
        if let Err(e) = self.store.save(&inner.rec) {
            tracing::warn!(error = %e, "recording the end of a build");
        }
    }
}

impl super::Engine {
    /// `GET /berth/builds`: the recorded builds, newest first, without their steps.
    pub async fn builds(self: &std::sync::Arc<Self>) -> Result<Vec<BuildRecord>> {
        let root = self.cfg.data_root.clone();
        super::blocking(move || HistoryStore::open(&root)?.list()).await
    }

    /// `GET /berth/builds/{id}`: one build with its steps (`id` may be a unique prefix).
    pub async fn build_record(self: &std::sync::Arc<Self>, id: &str) -> Result<BuildRecord> {
        let (root, id) = (self.cfg.data_root.clone(), id.to_owned());
        super::blocking(move || HistoryStore::open(&root)?.get(&id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_build::executor::OutputStream;

    fn ev(index: usize, kind: EventKind) -> Event {
        Event { index, kind }
    }

    fn step(index: usize, text: &str) -> Event {
        ev(index, EventKind::Step { total: 3, stage: None, text: text.into(), stage_index: 0, position: index - 1 })
    }

    #[test]
    fn a_build_is_recorded_with_its_steps() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::start(dir.path(), vec!["app:1".into()], "Dockerfile".into(), "dir").unwrap();
        let store = HistoryStore::open(dir.path()).unwrap();
        let running = store.get(&r.id()).unwrap();
        assert_eq!(running.status, BUILD_RUNNING);
        r.event(&step(1, "FROM busybox"));
        r.event(&ev(1, EventKind::Cached));
        r.event(&ev(1, EventKind::StepDone { seconds: 0.01 }));
        r.event(&step(2, "RUN echo hi"));
        assert_eq!(store.get(&r.id()).unwrap().steps[1].status, BUILD_RUNNING, "progress is written through");
        r.event(&ev(2, EventKind::Output(OutputStream::Stdout, b"hi\n".to_vec())));
        r.event(&ev(2, EventKind::StepDone { seconds: 0.5 }));
        r.finish(Ok("sha256:abc"));
        let rec = store.get(&r.id()[..12]).unwrap();
        assert_eq!(rec.status, BUILD_COMPLETED);
        assert_eq!(rec.image_id.as_deref(), Some("sha256:abc"));
        assert_eq!((rec.total_steps, rec.steps_run, rec.cached_steps), (3, 2, 1));
        assert!(rec.steps[0].cached && !rec.steps[1].cached);
        assert_eq!(rec.steps[1].duration, Some(0.5));
        assert!(rec.steps[1].output.is_empty(), "a step that succeeded keeps no output");
        assert!(rec.completed_at.is_some() && rec.duration.is_some());
        let list = store.list().unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].steps.is_empty(), "the list leaves steps out");
    }

    #[test]
    fn a_failed_step_keeps_the_end_of_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::start(dir.path(), vec![], "build.dockerfile".into(), "tar").unwrap();
        r.event(&step(1, "RUN big"));
        r.event(&step(2, "RUN other"));
        r.event(&ev(1, EventKind::Output(OutputStream::Stdout, vec![b'a'; OUTPUT_TAIL])));
        r.event(&ev(1, EventKind::Output(OutputStream::Stderr, b"boom\n".to_vec())));
        r.event(&ev(1, EventKind::Failed));
        r.finish(Err((BUILD_FAILED, "exit code: 3".into())));
        let rec = HistoryStore::open(dir.path()).unwrap().get(&r.id()).unwrap();
        assert_eq!(rec.status, BUILD_FAILED);
        assert_eq!(rec.error.as_deref(), Some("exit code: 3"));
        assert_eq!(rec.steps[0].status, BUILD_FAILED);
        assert_eq!(rec.steps[0].output.len(), OUTPUT_TAIL);
        assert!(rec.steps[0].output.ends_with("aaboom\n"));
        assert_eq!(rec.steps[1].status, BUILD_CANCELED, "a step running beside the failure stops with it");
    }

    #[test]
    fn the_history_keeps_the_newest_builds() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for _ in 0..KEEP_BUILDS + 3 {
            let r = Recorder::start(dir.path(), vec![], "Dockerfile".into(), "dir").unwrap();
            r.finish(Ok("sha256:x"));
            ids.push(r.id());
        }
        let store = HistoryStore::open(dir.path()).unwrap();
        // The prune runs when a build starts, so the newest build's start left KEEP_BUILDS.
        let list = store.list().unwrap();
        assert_eq!(list.len(), KEEP_BUILDS);
        assert_eq!(list[0].id, ids[ids.len() - 1], "newest first");
        assert_eq!(list[KEEP_BUILDS - 1].id, ids[3]);
        assert!(matches!(store.get(&ids[0]), Err(Error::NotFound(_))));
        assert_eq!(store.prune(2).unwrap(), KEEP_BUILDS - 2);
    }

    #[test]
    fn builds_cut_short_by_a_restart_end_canceled() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::start(dir.path(), vec![], "Dockerfile".into(), "session").unwrap();
        r.event(&step(1, "RUN sleep 100"));
        drop(r);
        let store = HistoryStore::open(dir.path()).unwrap();
        assert_eq!(store.mark_interrupted().unwrap(), 1);
        let rec = &store.list().unwrap()[0];
        assert_eq!(rec.status, BUILD_CANCELED);
        assert!(rec.error.as_deref().unwrap().contains("daemon stopped"));
        assert_eq!(store.mark_interrupted().unwrap(), 0);
    }

    #[test]
    fn bad_ids_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(dir.path()).unwrap();
        for id in ["", "zz", "'; DROP", "abc"] {
            assert!(matches!(store.get(id), Err(Error::NotFound(_))), "{id}");
        }
    }
}

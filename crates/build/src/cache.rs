//! The build cache: for each layer-producing step, the state the build had after it (its
//! layers and image config), keyed by a digest of everything the step depends on. Kept in
//! state.db so it survives daemon restarts; an entry whose layers have since been removed
//! from the image store is a miss, never an error.

use std::path::Path;
use std::sync::Mutex;

use berth_base::Digest;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// The build state after a step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedState {
    /// Layers, bottom first.
    pub layers: Vec<berth_image::Layer>,
    /// Image config (JSON of an OCI image configuration).
    pub config: serde_json::Value,
    /// The stage's SHELL, which the OCI config cannot hold.
    #[serde(default)]
    pub shell: Option<Vec<String>>,
}

/// The cache table.
pub struct BuildCache {
    conn: Mutex<Connection>,
}

/// Totals for `system df` and `builder prune`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheUsage {
    /// Entries.
    pub entries: u64,
}

impl BuildCache {
    /// Opens (creating) the cache table in `data_root/state.db`.
    pub fn open(data_root: &Path) -> Result<BuildCache, rusqlite::Error> {
        let conn = Connection::open(data_root.join("state.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS build_cache (
                key TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                created INTEGER NOT NULL,
                last_used INTEGER NOT NULL
            );",
        )?;
        Ok(BuildCache { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        match self.conn.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        }
    }

    /// The state stored under `key`, if any.
    pub fn get(&self, key: &Digest) -> Option<CachedState> {
        let conn = self.conn();
        let json: Option<String> = conn
            .query_row("SELECT state FROM build_cache WHERE key = ?1", [key.to_string()], |r| r.get(0))
            .optional()
            .ok()?;
        let state = serde_json::from_str(&json?).ok()?;
        let _ = conn.execute("UPDATE build_cache SET last_used = ?2 WHERE key = ?1", params![key.to_string(), now()]);
        Some(state)
    }

    /// Records the state after a step.
    pub fn put(&self, key: &Digest, state: &CachedState) -> Result<(), rusqlite::Error> {
        let json = serde_json::to_string(state).unwrap_or_default();
        self.conn().execute(
            "INSERT OR REPLACE INTO build_cache (key, state, created, last_used) VALUES (?1, ?2, ?3, ?3)",
            params![key.to_string(), json, now()],
        )?;
        Ok(())
    }

    /// Every entry: (key, created, last used, state), oldest first.
    pub fn entries(&self) -> Vec<(String, i64, i64, Option<CachedState>)> {
        let conn = self.conn();
        let Ok(mut st) = conn.prepare("SELECT key, created, last_used, state FROM build_cache ORDER BY created") else {
            return Vec::new();
        };
        st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
        })
        .map(|rows| rows.flatten().map(|(k, c, u, s)| (k, c, u, serde_json::from_str(&s).ok())).collect())
        .unwrap_or_default()
    }

    /// Forgets one entry.
    pub fn remove(&self, key: &str) -> Result<(), rusqlite::Error> {
        self.conn().execute("DELETE FROM build_cache WHERE key = ?1", [key])?;
        Ok(())
    }

    /// Forgets every entry (`builder prune -a`); returns how many there were.
    pub fn clear(&self) -> Result<u64, rusqlite::Error> {
        Ok(self.conn().execute("DELETE FROM build_cache", [])? as u64)
    }

    /// How much is cached.
    pub fn usage(&self) -> CacheUsage {
        let n: i64 = self.conn().query_row("SELECT COUNT(*) FROM build_cache", [], |r| r.get(0)).unwrap_or(0);
        CacheUsage { entries: n.max(0) as u64 }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

//! The container table in state.db (SQLite, WAL). The image store keeps its own tables in
//! the same file through its own connection.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::record::ContainerRecord;

/// Durable container records.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (and creates) the container table.
    pub fn open(data_root: &Path) -> Result<Store> {
        let conn = Connection::open(data_root.join("state.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        limit_cache(&conn)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS containers (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                created INTEGER NOT NULL,
                record TEXT NOT NULL
            );",
        )?;
        Ok(Store { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::Internal("state database lock poisoned".to_owned()))
    }

    /// Frees the connection's page cache (see [`release_memory`]).
    pub fn release_memory(&self) -> Result<()> {
        release_memory(&*self.conn()?)
    }

    /// Inserts a new record; a taken name is a conflict in Docker's words.
    pub fn insert(&self, rec: &ContainerRecord) -> Result<()> {
        let json = serde_json::to_string(rec).map_err(|e| Error::Internal(e.to_string()))?;
        let conn = self.conn()?;
        let existing: Option<String> =
            conn.query_row("SELECT id FROM containers WHERE name = ?1", [&rec.name], |r| r.get(0)).optional()?;
        if let Some(id) = existing {
            return Err(name_conflict(&rec.name, &id));
        }
        conn.execute(
            "INSERT INTO containers (id, name, created, record) VALUES (?1, ?2, ?3, ?4)",
            params![rec.id, rec.name, rec.created.timestamp(), json],
        )?;
        Ok(())
    }

    /// Replaces a record.
    pub fn update(&self, rec: &ContainerRecord) -> Result<()> {
        let json = serde_json::to_string(rec).map_err(|e| Error::Internal(e.to_string()))?;
        self.conn()?
            .execute("UPDATE containers SET record = ?2, name = ?3 WHERE id = ?1", params![rec.id, json, rec.name])?;
        Ok(())
    }

    /// Deletes a record; already gone is fine.
    pub fn delete(&self, id: &str) -> Result<()> {
        self.conn()?.execute("DELETE FROM containers WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Every record, oldest first. Rows that no longer parse are reported and skipped.
    pub fn load_all(&self) -> Result<Vec<ContainerRecord>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT id, record FROM containers ORDER BY created")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            match serde_json::from_str(&json) {
                Ok(rec) => out.push(rec),
                Err(e) => tracing::error!(container = %id, error = %e, "skipping unreadable container record"),
            }
        }
        Ok(out)
    }
}

/// The most page cache, in KiB, each of the daemon's long-lived connections to state.db
/// keeps (SQLite's default is 2000). The database's pages stay in the kernel's page cache
/// either way; a miss here costs one `pread`.
pub(crate) const CACHE_KIB: i64 = 512;

/// Caps `conn`'s page cache at [`CACHE_KIB`].
pub(crate) fn limit_cache(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "cache_size", -CACHE_KIB)
}

/// Frees what `conn` can of its page cache and lookaside memory
/// (`sqlite3_db_release_memory`): after a burst of removals it holds pages of rows that
/// are gone.
pub(crate) fn release_memory(conn: &Connection) -> Result<()> {
    conn.execute_batch("PRAGMA shrink_memory")?;
    Ok(())
}

/// Docker's message for a taken container name.
pub fn name_conflict(name: &str, id: &str) -> Error {
    Error::Conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

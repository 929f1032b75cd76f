//! The store: one SQLite database (bundled, WAL) with versioned migrations ([`migrations`]) and the append-only
//! event log, written in batches by [`writer`] from the bus and read by the side port.
//!
//! Durability: WAL with `synchronous=NORMAL` keeps every committed transaction across a crash or `kill -9` of the
//! process (only a power cut can lose the last few); settings — the kill switch among them — are written with
//! `synchronous=FULL`, so they are on disk before the call returns, power cut or not (the appliance test pulls the
//! power right after one). A write and a read use separate connections so readers never wait on the writer.
//!
//! Privacy: the database holds the audit log, approvals and conversations, so it is created mode 0600 (SQLite gives
//! its `-wal` and `-shm` files the database's mode), and an existing one its group or others may open is tightened
//! to 0600, with a warning, before it is opened.

pub mod conversations;
pub mod memory;
pub mod migrations;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OpenFlags};
use serde::Serialize;

use crate::bus::Stamped;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot make the store file {path} private (mode 0600): {source}")]
    Private {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the store's directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the store at {path} has schema version {found}, newer than this Jarvis knows ({known})"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("store migration {version} failed: {source}")]
    Migration {
        version: usize,
        source: rusqlite::Error,
    },
    #[error("store query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot encode an event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("a store task failed: {0}")]
    Task(String),
}

/// One tool invocation as audited.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub ts_ms: u64,
    pub actor: String,
    pub tool: String,
    pub tier: u8,
    pub args_digest: String,
    /// `ok`, `error`, `pending`, `refused`.
    pub outcome: String,
    pub detail: String,
    pub duration_ms: u64,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub ts_ms: u64,
    pub channel: String,
    pub kind: String,
    pub data: serde_json::Value,
}

pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        make_private(path)?;
        let mut writer = Connection::open(path).map_err(open_err)?;
        writer
            .execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000; PRAGMA secure_delete=ON;")
            .map_err(open_err)?;
        migrate(&mut writer, path)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        reader
            .execute_batch("PRAGMA busy_timeout=5000;")
            .map_err(open_err)?;
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends events in one transaction; returns their ids.
    pub fn append_events(&self, events: &[Stamped]) -> Result<Vec<i64>, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let mut ids = Vec::with_capacity(events.len());
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (ts_ms, channel, kind, data) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for e in events {
                let data = serde_json::to_string(&e.event)?;
                stmt.execute(params![
                    e.ts_ms as i64,
                    e.event.channel().as_str(),
                    e.event.kind(),
                    data
                ])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Events at or after `since_ms` (oldest first), or the latest `limit` when `since_ms` is `None`.
    pub fn events(
        &self,
        since_ms: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = lock(&self.reader);
        let limit = limit as i64;
        let rows = match since_ms {
            Some(since) => {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, ts_ms, channel, kind, data FROM events WHERE ts_ms >= ?1 ORDER BY ts_ms, id LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![since as i64, limit], row_to_event)?;
                rows.collect::<Result<Vec<_>, _>>()?
            }
            None => {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, ts_ms, channel, kind, data FROM events ORDER BY id DESC LIMIT ?1",
                )?;
                let rows = stmt.query_map(params![limit], row_to_event)?;
                let mut v = rows.collect::<Result<Vec<_>, _>>()?;
                v.reverse();
                v
            }
        };
        Ok(rows)
    }

    /// Appends one audit row; its id.
    pub fn append_audit(&self, row: &AuditRow) -> Result<i64, StoreError> {
        let conn = lock(&self.writer);
        conn.prepare_cached(
            "INSERT INTO audit (ts_ms, actor, tool, tier, args_digest, outcome, detail, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            row.ts_ms as i64,
            row.actor,
            row.tool,
            row.tier,
            row.args_digest,
            row.outcome,
            row.detail,
            row.duration_ms as i64
        ])?;
        Ok(conn.last_insert_rowid())
    }

    /// The latest `limit` audit rows, oldest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare_cached(
            "SELECT ts_ms, actor, tool, tier, args_digest, outcome, detail, duration_ms
             FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            Ok(AuditRow {
                ts_ms: r.get::<_, i64>(0)? as u64,
                actor: r.get(1)?,
                tool: r.get(2)?,
                tier: r.get(3)?,
                args_digest: r.get(4)?,
                outcome: r.get(5)?,
                detail: r.get(6)?,
                duration_ms: r.get::<_, i64>(7)? as u64,
            })
        })?;
        let mut v = rows.collect::<Result<Vec<_>, _>>()?;
        v.reverse();
        Ok(v)
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = lock(&self.reader);
        let mut stmt = conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")?;
        let mut rows = stmt.query(params![key])?;
        Ok(match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        })
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let conn = lock(&self.writer);
        // Settings are few, rarely written and some are safety state: this one commit syncs the WAL to disk.
        conn.execute_batch("PRAGMA synchronous=FULL")?;
        let written = conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        );
        conn.execute_batch("PRAGMA synchronous=NORMAL")?;
        written?;
        Ok(())
    }

    /// Runs `f` on the read connection (for modules that keep their own tables).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let conn = lock(&self.reader);
        Ok(f(&conn)?)
    }

    /// Runs `f` in one write transaction (for modules that keep their own tables, like the tool gate).
    pub fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    pub fn event_count(&self) -> Result<u64, StoreError> {
        let conn = lock(&self.reader);
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// `PRAGMA integrity_check` → `ok` when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let conn = lock(&self.reader);
        Ok(conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// Folds the WAL into the main file (at shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = lock(&self.writer);
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

/// The database file and the files SQLite keeps beside it (`-wal`, `-shm`, `-journal`).
pub fn files_of(path: &Path) -> [PathBuf; 4] {
    ["", "-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Creates the database file mode 0600 if it is missing (SQLite then creates `-wal` and `-shm` with the same mode),
/// and tightens the database, `-wal`, `-shm` and `-journal` to 0600 where they exist with group or other bits set.
fn make_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |p: &Path| {
        let path = p.display().to_string();
        move |source| StoreError::Private { path, source }
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(path)(e)),
    }
    for file in files_of(path) {
        let meta = match std::fs::metadata(&file) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(&file)(e)),
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(err(&file))?;
            tracing::warn!(
                file = %file.display(),
                "the store file had mode {mode:04o}, open to its group or others; tightened to 0600"
            );
        }
    }
    Ok(())
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    let data: String = r.get(4)?;
    Ok(StoredEvent {
        id: r.get(0)?,
        ts_ms: r.get::<_, i64>(1)? as u64,
        channel: r.get(2)?,
        kind: r.get(3)?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
    })
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = migrations::MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found: current,
            known,
        });
    }
    for (i, sql) in migrations::MIGRATIONS
        .iter()
        .enumerate()
        .skip(current as usize)
    {
        let version = i + 1;
        let tx = conn
            .transaction()
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.execute_batch(sql)
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.commit()
            .map_err(|source| StoreError::Migration { version, source })?;
        tracing::info!(version, "store migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Event;

    fn ev(ts: u64, node: &str) -> Stamped {
        Stamped {
            ts_ms: ts,
            event: Event::NodeOnline { node: node.into() },
        }
    }

    #[test]
    fn appends_reads_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/jarvis.db");
        let store = Store::open(&path).expect("open");
        let ids = store
            .append_events(&[ev(10, "a"), ev(20, "b"), ev(30, "c")])
            .expect("append");
        assert_eq!(ids.len(), 3);
        let since = store.events(Some(20), 10).expect("read");
        assert_eq!(
            since.iter().map(|e| e.ts_ms).collect::<Vec<_>>(),
            vec![20, 30]
        );
        assert_eq!(since[0].data["node"], "b");
        assert_eq!(since[0].channel, "cluster");
        let latest = store.events(None, 2).expect("read");
        assert_eq!(
            latest.iter().map(|e| e.ts_ms).collect::<Vec<_>>(),
            vec![20, 30]
        );
        drop(store);
        let again = Store::open(&path).expect("reopen");
        assert_eq!(again.event_count().expect("count"), 3);
        assert_eq!(again.integrity_check().expect("check"), "ok");
    }

    #[test]
    fn event_log_is_append_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("j.db")).expect("open");
        store.append_events(&[ev(1, "a")]).expect("append");
        let err = lock(&store.writer).execute("UPDATE events SET kind = 'x'", []);
        assert!(err.is_err_and(|e| e.to_string().contains("append-only")));
    }

    #[test]
    fn audit_rows_and_settings_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let store = Store::open(&path).expect("open");
        let row = AuditRow {
            ts_ms: 5,
            actor: "mcp".into(),
            tool: "start_guest".into(),
            tier: 1,
            args_digest: "ab".into(),
            outcome: "ok".into(),
            detail: "started".into(),
            duration_ms: 12,
        };
        store.append_audit(&row).expect("audit");
        store.set_setting("kill_switch", "on").expect("set");
        store.set_setting("kill_switch", "off").expect("overwrite");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.audit(10).expect("read"), vec![row]);
        assert_eq!(
            store.setting("kill_switch").expect("get").as_deref(),
            Some("off")
        );
        assert_eq!(store.setting("nothing").expect("get"), None);
    }

    #[test]
    fn refuses_a_database_from_a_newer_jarvis() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        Connection::open(&path)
            .and_then(|c| c.pragma_update(None, "user_version", 99))
            .expect("prepare");
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    }

    #[test]
    fn the_database_and_its_wal_and_shm_are_created_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let store = Store::open(&path).expect("open");
        store.append_events(&[ev(1, "a")]).expect("append");
        for p in [
            path.clone(),
            with_suffix(&path, "-wal"),
            with_suffix(&path, "-shm"),
        ] {
            assert_eq!(format!("{:04o}", mode(&p)), "0600", "{}", p.display());
        }
    }

    #[test]
    fn a_database_others_can_read_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        // An older Jarvis left the database (and, while it runs, its -wal and -shm) readable by everyone.
        let old = Connection::open(&path).expect("old open");
        old.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .expect("old write");
        let files = [
            path.clone(),
            with_suffix(&path, "-wal"),
            with_suffix(&path, "-shm"),
        ];
        for p in &files {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let store = Store::open(&path).expect("open");
        for p in &files {
            assert_eq!(format!("{:04o}", mode(p)), "0600", "{}", p.display());
        }
        drop((store, old));
    }
}

//! Versioned schema migrations, applied in order inside one transaction each; `PRAGMA user_version` records the
//! last one applied. Append new migrations at the end; never edit a released one.

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the event log. Append-only: rows are never updated (a trigger refuses it); retention may delete old rows.
    "CREATE TABLE events (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms   INTEGER NOT NULL,
        channel TEXT    NOT NULL,
        kind    TEXT    NOT NULL,
        data    TEXT    NOT NULL
    );
    CREATE INDEX events_by_time ON events(ts_ms);
    CREATE TRIGGER events_append_only BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;",
];

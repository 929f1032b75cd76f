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
    // 2: the tool audit log (one row per invocation, refused ones included) and persisted settings (kill switch).
    "CREATE TABLE audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms       INTEGER NOT NULL,
        actor       TEXT    NOT NULL,
        tool        TEXT    NOT NULL,
        tier        INTEGER NOT NULL,
        args_digest TEXT    NOT NULL,
        outcome     TEXT    NOT NULL,
        detail      TEXT    NOT NULL,
        duration_ms INTEGER NOT NULL
    );
    CREATE INDEX audit_by_time ON audit(ts_ms);
    CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    // 3: pending approvals, shared by every Jarvis process on the box (the kiosk, `jarvis mcp` over stdio).
    "CREATE TABLE approvals (
        id         TEXT PRIMARY KEY,
        tool       TEXT    NOT NULL,
        actor      TEXT    NOT NULL,
        summary    TEXT    NOT NULL,
        digest     TEXT    NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        state      TEXT    NOT NULL
    );
    CREATE INDEX approvals_by_digest ON approvals(digest, actor);",
    // 4: the language-model cost ledger, one row per model call.
    "CREATE TABLE llm_calls (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms       INTEGER NOT NULL,
        provider    TEXT    NOT NULL,
        model       TEXT    NOT NULL,
        input       INTEGER NOT NULL,
        output      INTEGER NOT NULL,
        cached      INTEGER NOT NULL,
        cost_usd    REAL    NOT NULL
    );
    CREATE INDEX llm_calls_by_time ON llm_calls(ts_ms);",
    // 5: Jarvis's memory (tiered, expiring) and the conversations with their running summaries.
    "CREATE TABLE memories (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        tier       TEXT    NOT NULL,
        text       TEXT    NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER
    );
    CREATE INDEX memories_by_expiry ON memories(expires_ms);
    CREATE TABLE conversations (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        started_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL,
        summary     TEXT    NOT NULL DEFAULT '',
        folded_upto INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE conversation_turns (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation INTEGER NOT NULL REFERENCES conversations(id),
        ts_ms        INTEGER NOT NULL,
        role         TEXT    NOT NULL,
        content      TEXT    NOT NULL,
        tool_calls   TEXT    NOT NULL DEFAULT '[]',
        tool_call_id TEXT
    );
    CREATE INDEX turns_by_conversation ON conversation_turns(conversation, id);",
    // 6: ledger rows whose token counts Jarvis estimated (the server reported none).
    "ALTER TABLE llm_calls ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;",
    // 7: a confirmation the server asked an MCP client's user for: a single-use nonce bound to one pending
    // approval and to the asking session (see tools::gate::Approvals::challenge).
    "ALTER TABLE approvals ADD COLUMN challenge TEXT;
    ALTER TABLE approvals ADD COLUMN challenge_scope TEXT;",
    // 8: faces (vision::gallery, vision::review). People; their samples (embeddings, 128 little-endian f32, with
    // a small JPEG crop) and negatives ("not this person"); every face sighting kept for review (a match, which
    // may be contested, or an unknown face in a group of the same stranger's sightings). Deleting a person
    // deletes everything about them.
    "CREATE TABLE face_people (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT    NOT NULL,
        name_key   TEXT    NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE face_groups (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        centroid    BLOB    NOT NULL,
        first_ms    INTEGER NOT NULL,
        last_ms     INTEGER NOT NULL,
        sightings   INTEGER NOT NULL,
        status      TEXT    NOT NULL DEFAULT 'open',
        resolved_ms INTEGER,
        resolved_to INTEGER REFERENCES face_people(id) ON DELETE SET NULL
    );
    CREATE INDEX face_groups_by_status ON face_groups(status, last_ms);
    CREATE TABLE face_sightings (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms      INTEGER NOT NULL,
        source     TEXT    NOT NULL,
        person     INTEGER REFERENCES face_people(id) ON DELETE CASCADE,
        grp        INTEGER REFERENCES face_groups(id) ON DELETE CASCADE,
        score      REAL    NOT NULL,
        good       INTEGER NOT NULL,
        contested  INTEGER NOT NULL DEFAULT 0,
        embedding  BLOB    NOT NULL,
        crop       BLOB    NOT NULL
    );
    CREATE INDEX face_sightings_by_time ON face_sightings(ts_ms);
    CREATE INDEX face_sightings_by_group ON face_sightings(grp);
    CREATE INDEX face_sightings_by_person ON face_sightings(person);
    CREATE TABLE face_samples (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        person        INTEGER NOT NULL REFERENCES face_people(id) ON DELETE CASCADE,
        source        TEXT    NOT NULL,
        from_sighting INTEGER,
        created_ms    INTEGER NOT NULL,
        embedding     BLOB    NOT NULL,
        crop          BLOB    NOT NULL
    );
    CREATE INDEX face_samples_by_person ON face_samples(person);
    CREATE TABLE face_negatives (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        person     INTEGER NOT NULL REFERENCES face_people(id) ON DELETE CASCADE,
        created_ms INTEGER NOT NULL,
        embedding  BLOB    NOT NULL
    );
    CREATE INDEX face_negatives_by_person ON face_negatives(person);",
    // 9: the presence timeline: who arrived, left, was seen, or an unknown person, on which camera, when. A row
    // goes with its person; `inferred` marks a departure concluded from a camera's timeout, not seen.
    "CREATE TABLE presence_events (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms         INTEGER NOT NULL,
        kind          TEXT    NOT NULL CHECK (kind IN ('arrived', 'left', 'seen', 'unknown')),
        person        INTEGER REFERENCES face_people(id) ON DELETE CASCADE,
        camera        TEXT    NOT NULL,
        confidence    REAL    NOT NULL,
        inferred      INTEGER NOT NULL DEFAULT 0,
        sighting      INTEGER REFERENCES face_sightings(id) ON DELETE SET NULL,
        frigate_event TEXT
    );
    CREATE INDEX presence_by_person ON presence_events(person, ts_ms);
    CREATE INDEX presence_by_time ON presence_events(ts_ms);
    CREATE INDEX presence_by_kind ON presence_events(kind, ts_ms);",
    // 10: the voice pipeline's latency traces: one row per utterance, each stage's time in ms from the start of
    // listening (NULL: the stage was not reached), and how the exchange ended.
    "CREATE TABLE voice_traces (
        id                 INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms              INTEGER NOT NULL,
        via                TEXT    NOT NULL,
        outcome            TEXT    NOT NULL,
        transcript         TEXT    NOT NULL,
        engine             TEXT,
        voice              TEXT,
        wake_ms            INTEGER,
        end_of_speech_ms   INTEGER,
        stt_ms             INTEGER,
        first_token_ms     INTEGER,
        first_sentence_ms  INTEGER,
        first_audio_ms     INTEGER,
        done_ms            INTEGER
    );
    CREATE INDEX voice_traces_by_time ON voice_traces(ts_ms);",
    // 11: who heard the words (`whisper`, `cloud`, `whisper (cloud failed)`): the cloud transcription is optional.
    "ALTER TABLE voice_traces ADD COLUMN stt TEXT;",
];

//! Conversations with Jarvis as stored: every turn (the operator's, Jarvis's, and the tool results between), and
//! per conversation the running summary of the turns already folded into it (`folded_upto` is the last turn it
//! covers). The agent reloads the newest conversation after a restart and carries on from its summary and the
//! turns after it.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{Store, StoreError};

/// One stored turn. `tool_calls` is the JSON of the calls an assistant turn made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnRow {
    pub id: i64,
    pub ts_ms: u64,
    /// `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    pub tool_calls: String,
    pub tool_call_id: Option<String>,
}

/// A conversation's head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationRow {
    pub id: i64,
    pub started_ms: u64,
    pub updated_ms: u64,
    pub summary: String,
    pub folded_upto: i64,
}

/// The most recently active conversation.
pub fn latest(store: &Store) -> Result<Option<ConversationRow>, StoreError> {
    store.read(|c| {
        c.query_row(
            "SELECT id, started_ms, updated_ms, summary, folded_upto FROM conversations ORDER BY updated_ms DESC, id DESC LIMIT 1",
            [],
            |r| {
                Ok(ConversationRow {
                    id: r.get(0)?,
                    started_ms: r.get::<_, i64>(1)? as u64,
                    updated_ms: r.get::<_, i64>(2)? as u64,
                    summary: r.get(3)?,
                    folded_upto: r.get(4)?,
                })
            },
        )
        .optional()
    })
}

/// Starts a conversation; returns its id.
pub fn start(store: &Store, now_ms: u64) -> Result<i64, StoreError> {
    store.write(|tx| {
        tx.execute(
            "INSERT INTO conversations (started_ms, updated_ms) VALUES (?1, ?1)",
            params![now_ms as i64],
        )?;
        Ok(tx.last_insert_rowid())
    })
}

/// A turn to append (its id comes from the store).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTurn {
    pub ts_ms: u64,
    pub role: &'static str,
    pub content: String,
    pub tool_calls: String,
    pub tool_call_id: Option<String>,
}

/// Appends turns to a conversation in one transaction; returns their ids in order.
pub fn append(store: &Store, conversation: i64, turns: &[NewTurn]) -> Result<Vec<i64>, StoreError> {
    store.write(|tx| {
        let mut ids = Vec::with_capacity(turns.len());
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO conversation_turns (conversation, ts_ms, role, content, tool_calls, tool_call_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for t in turns {
                st.execute(params![
                    conversation,
                    t.ts_ms as i64,
                    t.role,
                    t.content,
                    t.tool_calls,
                    t.tool_call_id
                ])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        if let Some(last) = turns.last() {
            tx.execute(
                "UPDATE conversations SET updated_ms = max(updated_ms, ?1) WHERE id = ?2",
                params![last.ts_ms as i64, conversation],
            )?;
        }
        Ok(ids)
    })
}

/// The newest `limit` turns of a conversation after `after_id`, oldest first.
pub fn turns_after(
    store: &Store,
    conversation: i64,
    after_id: i64,
    limit: usize,
) -> Result<Vec<TurnRow>, StoreError> {
    store.read(|c| {
        let mut st = c.prepare_cached(
            "SELECT * FROM (SELECT id, ts_ms, role, content, tool_calls, tool_call_id FROM conversation_turns
             WHERE conversation = ?1 AND id > ?2 ORDER BY id DESC LIMIT ?3) ORDER BY id",
        )?;
        let rows = st.query_map(params![conversation, after_id, limit as i64], |r| {
            Ok(TurnRow {
                id: r.get(0)?,
                ts_ms: r.get::<_, i64>(1)? as u64,
                role: r.get(2)?,
                content: r.get(3)?,
                tool_calls: r.get(4)?,
                tool_call_id: r.get(5)?,
            })
        })?;
        rows.collect()
    })
}

/// Records a new running summary that covers every turn up to `upto` (a turn id).
pub fn fold(store: &Store, conversation: i64, summary: &str, upto: i64) -> Result<(), StoreError> {
    store.write(|tx| {
        tx.execute(
            "UPDATE conversations SET summary = ?1, folded_upto = max(folded_upto, ?2) WHERE id = ?3",
            params![summary, upto, conversation],
        )?;
        Ok(())
    })
}

/// Conversation turns kept in the store, at most (the newest; older ones are deleted by the sweep).
pub const KEEP_TURNS: i64 = 20_000;
/// Turns older than this are deleted by the sweep.
pub const KEEP_MS: u64 = 90 * 24 * 3_600_000;

/// Deletes turns beyond the newest `keep` or older than `max_age_ms`, and conversations left with none (except
/// the newest); returns how many turns went.
pub fn prune(store: &Store, now_ms: u64, keep: i64, max_age_ms: u64) -> Result<usize, StoreError> {
    let cutoff = now_ms.saturating_sub(max_age_ms) as i64;
    store.write(|tx| {
        let mut n = tx.execute(
            "DELETE FROM conversation_turns WHERE ts_ms < ?1",
            params![cutoff],
        )?;
        n += tx.execute(
            "DELETE FROM conversation_turns WHERE id <= (SELECT id FROM conversation_turns ORDER BY id DESC
             LIMIT 1 OFFSET ?1)",
            params![keep],
        )?;
        tx.execute(
            "DELETE FROM conversations WHERE id < (SELECT max(id) FROM conversations)
             AND NOT EXISTS (SELECT 1 FROM conversation_turns t WHERE t.conversation = conversations.id)",
            [],
        )?;
        Ok(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(ts: u64, role: &'static str, text: &str) -> NewTurn {
        NewTurn {
            ts_ms: ts,
            role,
            content: text.into(),
            tool_calls: "[]".into(),
            tool_call_id: None,
        }
    }

    #[test]
    fn turns_append_fold_and_reload_from_the_latest_conversation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let conv = {
            let s = Store::open(&path).expect("open");
            assert_eq!(latest(&s).expect("latest"), None);
            let old = start(&s, 10).expect("start");
            append(&s, old, &[turn(11, "user", "old")]).expect("append");
            let conv = start(&s, 100).expect("start");
            let ids = append(
                &s,
                conv,
                &[
                    turn(101, "user", "hello"),
                    turn(102, "assistant", "Good evening, sir."),
                ],
            )
            .expect("append");
            append(&s, conv, &[turn(103, "user", "status?")]).expect("append");
            fold(&s, conv, "The operator said hello.", ids[1]).expect("fold");
            conv
        };
        // A new process: the newest conversation, its summary and what came after it.
        let s = Store::open(&path).expect("reopen");
        let head = latest(&s).expect("latest").expect("a conversation");
        assert_eq!(head.id, conv);
        assert_eq!(head.updated_ms, 103);
        assert_eq!(head.summary, "The operator said hello.");
        let rest = turns_after(&s, conv, head.folded_upto, 1000).expect("turns");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].content, "status?");
        assert_eq!(turns_after(&s, conv, 0, 1000).expect("turns").len(), 3);
    }

    #[test]
    fn old_and_excess_turns_are_pruned_and_loading_takes_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("j.db")).expect("open");
        let old = start(&s, 1).expect("start");
        append(&s, old, &[turn(1, "user", "ancient")]).expect("append");
        let conv = start(&s, 1_000).expect("start");
        let many: Vec<NewTurn> = (0..30)
            .map(|i| turn(1_000 + i, "user", &format!("n{i}")))
            .collect();
        append(&s, conv, &many).expect("append");
        let newest = turns_after(&s, conv, 0, 5).expect("turns");
        let texts: Vec<&str> = newest.iter().map(|t| t.content.as_str()).collect();
        assert_eq!(
            texts,
            ["n25", "n26", "n27", "n28", "n29"],
            "the newest, oldest first"
        );
        let gone = prune(&s, 10_000, 10, 9_500).expect("prune");
        assert_eq!(gone, 1 + 20, "one too old, twenty beyond the newest ten");
        assert_eq!(turns_after(&s, conv, 0, 1000).expect("turns").len(), 10);
        assert_eq!(latest(&s).expect("latest").map(|h| h.id), Some(conv));
        let left: i64 = s
            .read(|c| c.query_row("SELECT count(*) FROM conversations", [], |r| r.get(0)))
            .expect("count");
        assert_eq!(left, 1, "the emptied old conversation is gone");
    }
}

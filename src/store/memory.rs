//! Jarvis's memory: short notes in four tiers that expire on their own — session (1 h), short (7 d), long (90 d)
//! and permanent — with the relevance score used both by the `recall` tool and by the agent when it picks the
//! memories to put in its system prompt. Remembering a note already kept refreshes it (and may raise its tier)
//! instead of keeping a second copy. Expired notes are never returned and are deleted by [`sweep`], which
//! [`sweeper`] runs every ten minutes.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// How long a memory is kept.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MemoryTier {
    /// This sitting: an hour.
    Session,
    /// A week.
    Short,
    /// Ninety days.
    Long,
    /// Until forgotten.
    Permanent,
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

impl MemoryTier {
    pub fn ttl_ms(self) -> Option<u64> {
        match self {
            MemoryTier::Session => Some(HOUR_MS),
            MemoryTier::Short => Some(7 * DAY_MS),
            MemoryTier::Long => Some(90 * DAY_MS),
            MemoryTier::Permanent => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemoryTier::Session => "session",
            MemoryTier::Short => "short",
            MemoryTier::Long => "long",
            MemoryTier::Permanent => "permanent",
        }
    }

    pub fn parse(s: &str) -> Option<MemoryTier> {
        Some(match s {
            "session" => MemoryTier::Session,
            "short" => MemoryTier::Short,
            "long" => MemoryTier::Long,
            "permanent" => MemoryTier::Permanent,
            _ => return None,
        })
    }
}

/// One remembered note.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memory {
    pub id: i64,
    pub tier: MemoryTier,
    pub text: String,
    pub created_ms: u64,
    /// `None` for permanent memories.
    pub expires_ms: Option<u64>,
}

/// Longest note kept, in characters.
pub const MAX_MEMORY_CHARS: usize = 500;

/// Keeps `text` in `tier`. The same note (ignoring case and spacing) is refreshed rather than duplicated: its
/// expiry restarts and its tier becomes the longer of the two.
pub fn remember(
    store: &Store,
    tier: MemoryTier,
    text: &str,
    now_ms: u64,
) -> Result<Memory, StoreError> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let key = text.to_lowercase();
    store.write(|tx| {
        let existing: Option<(i64, String, u64)> = tx
            .query_row(
                "SELECT id, tier, created_ms FROM memories
                 WHERE lower(text) = ?1 AND (expires_ms IS NULL OR expires_ms > ?2)",
                params![key, now_ms as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)),
            )
            .optional()?;
        let (id, tier, created) = match existing {
            Some((id, old, created)) => {
                let tier = MemoryTier::parse(&old).map_or(tier, |old| old.max(tier));
                (id, tier, created)
            }
            None => {
                tx.execute(
                    "INSERT INTO memories (tier, text, created_ms, expires_ms) VALUES (?1, ?2, ?3, NULL)",
                    params![tier.as_str(), text, now_ms as i64],
                )?;
                (tx.last_insert_rowid(), tier, now_ms)
            }
        };
        let expires = tier.ttl_ms().map(|t| now_ms + t);
        tx.execute(
            "UPDATE memories SET tier = ?1, expires_ms = ?2 WHERE id = ?3",
            params![tier.as_str(), expires.map(|e| e as i64), id],
        )?;
        Ok(Memory {
            id,
            tier,
            text: text.clone(),
            created_ms: created,
            expires_ms: expires,
        })
    })
}

/// One row of `SELECT id, tier, text, created_ms, expires_ms FROM memories`.
fn memory_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Memory> {
    let tier: String = r.get(1)?;
    Ok(Memory {
        id: r.get(0)?,
        tier: MemoryTier::parse(&tier).unwrap_or(MemoryTier::Short),
        text: r.get(2)?,
        created_ms: r.get::<_, i64>(3)? as u64,
        expires_ms: r.get::<_, Option<i64>>(4)?.map(|e| e as u64),
    })
}

/// Every memory not yet expired, newest first.
pub fn active(store: &Store, now_ms: u64) -> Result<Vec<Memory>, StoreError> {
    store.read(|c| {
        let mut st = c.prepare_cached(
            "SELECT id, tier, text, created_ms, expires_ms FROM memories
             WHERE expires_ms IS NULL OR expires_ms > ?1 ORDER BY id DESC",
        )?;
        let rows = st.query_map(params![now_ms as i64], memory_row)?;
        rows.collect()
    })
}

/// The memories that share words with `query`, best first (at most `limit`).
pub fn recall(
    store: &Store,
    query: &str,
    now_ms: u64,
    limit: usize,
) -> Result<Vec<Memory>, StoreError> {
    let all = active(store, now_ms)?;
    Ok(rank(&all, query).into_iter().take(limit).cloned().collect())
}

/// Those of `memories` that share words with `query`, most relevant first (the newer of two equals first).
pub fn rank<'m>(memories: &'m [Memory], query: &str) -> Vec<&'m Memory> {
    let terms = terms(query);
    let mut scored: Vec<(f32, &Memory)> = memories
        .iter()
        .map(|m| (relevance(&terms, &m.text), m))
        .filter(|(s, _)| *s > 0.0)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.id.cmp(&a.1.id)));
    scored.into_iter().map(|(_, m)| m).collect()
}

/// Forgets one memory by id; returns it if it existed.
pub fn forget(store: &Store, id: i64) -> Result<Option<Memory>, StoreError> {
    store.write(|tx| {
        let found = tx
            .query_row(
                "SELECT id, tier, text, created_ms, expires_ms FROM memories WHERE id = ?1",
                params![id],
                memory_row,
            )
            .optional()?;
        tx.execute("DELETE FROM memories WHERE id = ?1", params![id])?;
        Ok(found)
    })
}

/// Deletes expired memories; returns how many.
pub fn sweep(store: &Store, now_ms: u64) -> Result<usize, StoreError> {
    store.write(|tx| {
        tx.execute(
            "DELETE FROM memories WHERE expires_ms IS NOT NULL AND expires_ms <= ?1",
            params![now_ms as i64],
        )
    })
}

/// How often expired memories are deleted.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes expired memories, and conversation turns beyond the retention, now and every `every` until
/// `shutdown`.
pub async fn sweeper(
    store: std::sync::Arc<Store>,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || sweep(&s, crate::time::now_ms())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(expired = n, "forgot expired memories"),
            Ok(Err(e)) => tracing::error!("cannot sweep expired memories: {e}"),
            Err(e) => tracing::error!("memory sweep task: {e}"),
        }
        let s = store.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            use crate::store::conversations::{prune, KEEP_MS, KEEP_TURNS};
            prune(&s, crate::time::now_ms(), KEEP_TURNS, KEEP_MS)
        })
        .await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(turns = n, "pruned old conversation turns"),
            Ok(Err(e)) => tracing::error!("cannot prune conversations: {e}"),
            Err(e) => tracing::error!("conversation prune task: {e}"),
        }
    }
}

/// Words that say nothing about what a note is about.
const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "are", "was", "were", "that", "this", "with", "what", "when", "where",
    "who", "how", "you", "your", "his", "her", "its", "our", "they", "them", "have", "has", "had",
    "not", "but", "all", "any", "can", "did", "does", "from", "into", "about", "there", "their",
    "then", "than", "will", "would", "should", "could", "sir", "jarvis", "please", "tell", "know",
    "remember", "recall", "forget",
];

/// The content words of a text: lower case, three letters or more, a plural `s` dropped.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3 && !STOP_WORDS.contains(w))
        .map(|w| {
            if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
                w[..w.len() - 1].to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How much a note has to do with the query terms: shared words, weighted against long notes.
pub fn relevance(query_terms: &[String], text: &str) -> f32 {
    if query_terms.is_empty() {
        return 0.0;
    }
    let note = terms(text);
    let shared = note
        .iter()
        .filter(|w| query_terms.binary_search(w).is_ok())
        .count();
    if shared == 0 {
        0.0
    } else {
        shared as f32 / (note.len() as f32).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("j.db")).expect("open");
        (dir, s)
    }

    #[test]
    fn tiers_expire_and_the_sweep_deletes_what_expired() {
        let (_d, s) = store();
        let t0 = 1_000_000;
        remember(
            &s,
            MemoryTier::Session,
            "The operator is debugging the NAS",
            t0,
        )
        .expect("remember");
        remember(&s, MemoryTier::Short, "Backups moved to Sunday", t0).expect("remember");
        remember(&s, MemoryTier::Long, "agent2 has a noisy fan", t0).expect("remember");
        remember(&s, MemoryTier::Permanent, "The operator's name is Tony", t0).expect("remember");
        assert_eq!(active(&s, t0).expect("active").len(), 4);
        assert_eq!(
            active(&s, t0 + HOUR_MS + 1).expect("active").len(),
            3,
            "session gone after an hour"
        );
        assert_eq!(
            active(&s, t0 + 8 * DAY_MS).expect("active").len(),
            2,
            "short gone after a week"
        );
        let late = t0 + 91 * DAY_MS;
        let left = active(&s, late).expect("active");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].tier, MemoryTier::Permanent);
        assert_eq!(sweep(&s, late).expect("sweep"), 3);
        assert_eq!(sweep(&s, late).expect("sweep"), 0);
    }

    #[test]
    fn the_same_note_is_refreshed_not_duplicated_and_keeps_the_longer_tier() {
        let (_d, s) = store();
        let a = remember(&s, MemoryTier::Long, "Backups  moved to Sunday", 1000).expect("remember");
        let b =
            remember(&s, MemoryTier::Session, "backups moved to sunday", 5000).expect("remember");
        assert_eq!(a.id, b.id);
        assert_eq!(b.tier, MemoryTier::Long);
        assert_eq!(b.expires_ms, Some(5000 + 90 * DAY_MS));
        assert_eq!(active(&s, 6000).expect("active").len(), 1);
    }

    #[test]
    fn recall_ranks_by_shared_words_and_forget_removes() {
        let (_d, s) = store();
        let fan = remember(&s, MemoryTier::Long, "agent2 has a noisy fan", 0).expect("remember");
        remember(
            &s,
            MemoryTier::Long,
            "Backups of the NAS run on Sunday at 02:00",
            0,
        )
        .expect("remember");
        remember(
            &s,
            MemoryTier::Long,
            "The NAS disks were replaced in March",
            0,
        )
        .expect("remember");
        let hits = recall(&s, "when do the NAS backups run?", 1, 5).expect("recall");
        assert_eq!(hits.len(), 2);
        assert!(hits[0].text.starts_with("Backups"), "{hits:?}");
        assert!(recall(&s, "weather tomorrow", 1, 5)
            .expect("recall")
            .is_empty());
        assert_eq!(
            forget(&s, fan.id).expect("forget").map(|m| m.id),
            Some(fan.id)
        );
        assert_eq!(forget(&s, fan.id).expect("forget"), None);
        assert!(recall(&s, "fan", 1, 5).expect("recall").is_empty());
    }
}

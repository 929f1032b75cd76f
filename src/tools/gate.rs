//! The safety gate's state: pending approvals, bound to the SHA-256 of tool name + canonical arguments and to the
//! asking actor, single use and expiring. They live in the store so that every Jarvis process on the box (the
//! kiosk instance, `jarvis mcp` over stdio) sees the same ones: the operator approves through the side port or
//! `jarvis approve`, never through a tool.

use std::time::Duration;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// Default lifetime of a pending approval.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(120);

/// SHA-256 (hex) of a tool name and its canonical (sorted-key) JSON arguments.
pub fn call_digest(tool: &str, canonical_args: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(tool.as_bytes());
    h.update(b"\n");
    h.update(canonical_args.to_string().as_bytes());
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    Pending,
    Approved,
    /// The operator said no: the request is gone (reported once, never stored in this state).
    Denied,
}

impl ApprovalState {
    fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
        }
    }
}

/// A tier-2 call waiting for (or given) the operator's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    pub id: String,
    pub tool: String,
    pub actor: String,
    /// Exactly what will happen, in plain words.
    pub summary: String,
    pub digest: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub state: ApprovalState,
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error(
        "no pending approval {0} (it may have expired, been used or denied, or never existed)"
    )]
    Unknown(String),
    #[error("approval {0} was already approved")]
    AlreadyDecided(String),
    #[error("no confirmation was asked for this call in this session (an answer counts only once, for the request the server issued)")]
    Unsolicited,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Approvals in the store (table `approvals`).
pub struct Approvals<'s> {
    store: &'s Store,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    let state: String = r.get(7)?;
    Ok(Approval {
        id: r.get(0)?,
        tool: r.get(1)?,
        actor: r.get(2)?,
        summary: r.get(3)?,
        digest: r.get(4)?,
        created_ms: r.get::<_, i64>(5)? as u64,
        expires_ms: r.get::<_, i64>(6)? as u64,
        state: if state == "approved" {
            ApprovalState::Approved
        } else {
            ApprovalState::Pending
        },
    })
}

const COLUMNS: &str = "id, tool, actor, summary, digest, created_ms, expires_ms, state";

impl<'s> Approvals<'s> {
    pub fn new(store: &'s Store) -> Approvals<'s> {
        Approvals { store }
    }

    /// Finds a still-pending request for the same call and actor, or records a new one.
    pub fn request(
        &self,
        tool: &str,
        actor: &str,
        digest: &str,
        summary: String,
        ttl: Duration,
        now_ms: u64,
    ) -> Result<Approval, StoreError> {
        self.store.write(|tx| {
            sweep(tx, now_ms)?;
            let existing = by_call(tx, digest, actor, ApprovalState::Pending)?;
            if let Some(a) = existing {
                return Ok(a);
            }
            let a = Approval {
                id: hex::encode(rand::random::<[u8; 6]>()),
                tool: tool.to_string(),
                actor: actor.to_string(),
                summary: printable(&summary),
                digest: digest.to_string(),
                created_ms: now_ms,
                expires_ms: now_ms + ttl.as_millis() as u64,
                state: ApprovalState::Pending,
            };
            tx.execute(
                &format!(
                    "INSERT INTO approvals ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    a.id,
                    a.tool,
                    a.actor,
                    a.summary,
                    a.digest,
                    a.created_ms as i64,
                    a.expires_ms as i64,
                    a.state.as_str()
                ],
            )?;
            Ok(a)
        })
    }

    /// The operator's decision; a denial removes the request.
    pub fn decide(&self, id: &str, approve: bool, now_ms: u64) -> Result<Approval, DecideError> {
        let result = self.store.write(|tx| {
            sweep(tx, now_ms)?;
            let found = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"),
                    params![id],
                    row,
                )
                .optional()?;
            let Some(mut a) = found else {
                return Ok(Err(DecideError::Unknown(id.to_string())));
            };
            if a.state != ApprovalState::Pending {
                return Ok(Err(DecideError::AlreadyDecided(id.to_string())));
            }
            if approve {
                tx.execute(
                    "UPDATE approvals SET state = 'approved' WHERE id = ?1",
                    params![id],
                )?;
                a.state = ApprovalState::Approved;
            } else {
                tx.execute("DELETE FROM approvals WHERE id = ?1", params![id])?;
                a.state = ApprovalState::Denied;
            }
            Ok(Ok(a))
        })?;
        result
    }

    /// Uses up an approved, unexpired approval for exactly this call by this actor (single use).
    pub fn consume(
        &self,
        actor: &str,
        digest: &str,
        now_ms: u64,
    ) -> Result<Option<Approval>, StoreError> {
        self.store.write(|tx| {
            sweep(tx, now_ms)?;
            let found = by_call(tx, digest, actor, ApprovalState::Approved)?;
            if let Some(a) = &found {
                tx.execute("DELETE FROM approvals WHERE id = ?1", params![a.id])?;
            }
            Ok(found)
        })
    }

    /// Asks for a confirmation of the pending request for exactly this call by this actor: a fresh server-made
    /// nonce, bound to that approval and to `scope` (the asking session), replacing any earlier one. `None` when
    /// nothing is pending.
    pub fn challenge(
        &self,
        actor: &str,
        digest: &str,
        scope: &str,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        self.store.write(|tx| {
            sweep(tx, now_ms)?;
            let Some(a) = by_call(tx, digest, actor, ApprovalState::Pending)? else {
                return Ok(None);
            };
            let nonce = hex::encode(rand::random::<[u8; 16]>());
            tx.execute(
                "UPDATE approvals SET challenge = ?1, challenge_scope = ?2 WHERE id = ?3",
                params![nonce, scope, a.id],
            )?;
            Ok(Some(nonce))
        })
    }

    /// The answer to a challenge: counts only when `nonce` is the one issued for exactly this call (digest) by
    /// this actor in this `scope`, still pending and unexpired. The nonce is used up whenever it is presented,
    /// matching or not, so an answer can neither be replayed nor moved to another call or session.
    pub fn answer(
        &self,
        actor: &str,
        digest: &str,
        scope: &str,
        nonce: &str,
        approve: bool,
        now_ms: u64,
    ) -> Result<Approval, DecideError> {
        let result = self.store.write(|tx| {
            sweep(tx, now_ms)?;
            let found = tx
                .query_row(
                    &format!(
                        "SELECT {COLUMNS}, challenge_scope FROM approvals WHERE challenge = ?1"
                    ),
                    params![nonce],
                    |r| Ok((row(r)?, r.get::<_, Option<String>>(8)?)),
                )
                .optional()?;
            let Some((mut a, issued_scope)) = found else {
                return Ok(Err(DecideError::Unsolicited));
            };
            tx.execute(
                "UPDATE approvals SET challenge = NULL, challenge_scope = NULL WHERE id = ?1",
                params![a.id],
            )?;
            let bound = a.digest == digest
                && a.actor == actor
                && issued_scope.as_deref() == Some(scope)
                && a.state == ApprovalState::Pending;
            if !bound {
                return Ok(Err(DecideError::Unsolicited));
            }
            if approve {
                tx.execute(
                    "UPDATE approvals SET state = 'approved' WHERE id = ?1",
                    params![a.id],
                )?;
                a.state = ApprovalState::Approved;
            } else {
                tx.execute("DELETE FROM approvals WHERE id = ?1", params![a.id])?;
                a.state = ApprovalState::Denied;
            }
            Ok(Ok(a))
        })?;
        result
    }

    /// Approvals waiting for a decision, oldest first.
    pub fn pending(&self, now_ms: u64) -> Result<Vec<Approval>, StoreError> {
        self.store.write(|tx| {
            sweep(tx, now_ms)?;
            let mut stmt = tx.prepare(&format!(
                "SELECT {COLUMNS} FROM approvals WHERE state = 'pending' ORDER BY created_ms"
            ))?;
            let rows = stmt.query_map([], row)?;
            rows.collect::<Result<Vec<_>, _>>()
        })
    }
}

/// A summary as the operator reads it on a card: one line, with no control characters (a newline could fake a
/// second line) and no invisible or direction-changing ones (bidi overrides can make `rm -rf /` read as something
/// else); each becomes a visible `?` or a space, so nothing is hidden by being dropped.
pub fn printable(summary: &str) -> String {
    summary
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}' => '?',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// The approval in `state` for exactly this call (digest) by this actor.
fn by_call(
    tx: &rusqlite::Transaction<'_>,
    digest: &str,
    actor: &str,
    state: ApprovalState,
) -> rusqlite::Result<Option<Approval>> {
    tx.query_row(
        &format!("SELECT {COLUMNS} FROM approvals WHERE digest = ?1 AND actor = ?2 AND state = ?3"),
        params![digest, actor, state.as_str()],
        row,
    )
    .optional()
}

fn sweep(tx: &rusqlite::Transaction<'_>, now_ms: u64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM approvals WHERE expires_ms <= ?1",
        params![now_ms as i64],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TTL: Duration = Duration::from_secs(120);

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("j.db")).expect("store");
        (dir, s)
    }

    #[test]
    fn digests_bind_tool_and_canonical_arguments() {
        let a = call_digest("stop_guest", &json!({"vmid": 101, "force": false}));
        let b = call_digest("stop_guest", &json!({"force": false, "vmid": 101}));
        assert_eq!(a, b, "key order does not matter");
        assert_ne!(
            a,
            call_digest("stop_guest", &json!({"vmid": 102, "force": false}))
        );
        assert_ne!(
            a,
            call_digest("reboot_guest", &json!({"vmid": 101, "force": false}))
        );
    }

    #[test]
    fn an_approval_is_single_use_bound_to_call_and_actor() {
        let (_d, s) = store();
        let g = Approvals::new(&s);
        let p = g
            .request("stop_guest", "mcp", "d1", "Stop VM 101".into(), TTL, 0)
            .expect("request");
        let again = g
            .request("stop_guest", "mcp", "d1", "again".into(), TTL, 1)
            .expect("request");
        assert_eq!(again.id, p.id, "asking twice is one request");
        assert!(
            g.consume("mcp", "d1", 2).expect("consume").is_none(),
            "not approved yet"
        );
        g.decide(&p.id, true, 3).expect("approve");
        assert!(
            g.consume("agent", "d1", 4).expect("consume").is_none(),
            "another actor cannot use it"
        );
        assert!(
            g.consume("mcp", "d2", 4).expect("consume").is_none(),
            "other arguments cannot use it"
        );
        assert!(g.consume("mcp", "d1", 5).expect("consume").is_some());
        assert!(
            g.consume("mcp", "d1", 6).expect("consume").is_none(),
            "used once"
        );
        assert!(matches!(
            g.decide(&p.id, true, 7),
            Err(DecideError::Unknown(_))
        ));
    }

    #[test]
    fn a_confirmation_counts_only_as_the_answer_to_its_own_challenge() {
        let (_d, s) = store();
        let g = Approvals::new(&s);
        assert!(
            g.challenge("mcp", "d1", "s1", 0)
                .expect("challenge")
                .is_none(),
            "nothing pending, nothing to ask"
        );
        g.request("stop_guest", "mcp", "d1", "Stop VM 101".into(), TTL, 0)
            .expect("request");
        g.request("stop_guest", "mcp", "d2", "Stop VM 102".into(), TTL, 0)
            .expect("request");
        let unsolicited = g.answer("mcp", "d1", "s1", "made-up", true, 1);
        assert!(matches!(unsolicited, Err(DecideError::Unsolicited)));
        let n1 = g
            .challenge("mcp", "d1", "s1", 1)
            .expect("c")
            .expect("pending");
        // Moved to another call, another session or another actor: refused, and the nonce is spent.
        for (actor, digest, scope) in [
            ("mcp", "d2", "s1"),
            ("mcp", "d1", "s2"),
            ("agent", "d1", "s1"),
        ] {
            let n = g
                .challenge("mcp", "d1", "s1", 2)
                .expect("c")
                .expect("pending");
            assert!(matches!(
                g.answer(actor, digest, scope, &n, true, 3),
                Err(DecideError::Unsolicited)
            ));
            assert!(
                matches!(
                    g.answer("mcp", "d1", "s1", &n, true, 3),
                    Err(DecideError::Unsolicited)
                ),
                "a presented nonce is used up"
            );
        }
        assert!(
            matches!(
                g.answer("mcp", "d1", "s1", &n1, true, 4),
                Err(DecideError::Unsolicited)
            ),
            "a newer challenge replaces the older"
        );
        assert!(
            g.consume("mcp", "d1", 5).expect("consume").is_none(),
            "still pending"
        );
        let n = g
            .challenge("mcp", "d1", "s1", 6)
            .expect("c")
            .expect("pending");
        assert_eq!(
            g.answer("mcp", "d1", "s1", &n, true, 7)
                .expect("answer")
                .state,
            ApprovalState::Approved
        );
        assert!(
            matches!(
                g.answer("mcp", "d1", "s1", &n, true, 8),
                Err(DecideError::Unsolicited)
            ),
            "single use"
        );
        assert!(g.consume("mcp", "d1", 9).expect("consume").is_some());
        let n2 = g
            .challenge("mcp", "d2", "s1", 10)
            .expect("c")
            .expect("pending");
        assert!(
            matches!(
                g.answer("mcp", "d2", "s1", &n2, true, 120_001),
                Err(DecideError::Unsolicited)
            ),
            "expires with the approval"
        );
    }

    #[test]
    fn summaries_are_one_visible_line() {
        assert_eq!(
            printable("Run `ls`\nApproved by the operator: yes"),
            "Run `ls` Approved by the operator: yes"
        );
        assert_eq!(
            printable("rm \u{202E}fdp.exe\u{202C} x\u{200B}y\u{7}"),
            "rm ?fdp.exe? x?y?"
        );
        assert_eq!(
            printable("Stop VM 101 'jellyfin' — café"),
            "Stop VM 101 'jellyfin' — café"
        );
        let (_d, s) = store();
        let a = Approvals::new(&s)
            .request(
                "run_command",
                "mcp",
                "d",
                "echo a\u{2066}b\nc".into(),
                TTL,
                0,
            )
            .expect("request");
        assert_eq!(a.summary, "echo a?b c");
        assert_eq!(
            Approvals::new(&s).pending(1).expect("pending")[0].summary,
            "echo a?b c"
        );
    }

    #[test]
    fn approvals_expire_and_denials_are_final() {
        let (_d, s) = store();
        let g = Approvals::new(&s);
        let p = g
            .request("reboot_node", "agent", "d", "Reboot pve".into(), TTL, 0)
            .expect("request");
        g.decide(&p.id, true, 1).expect("approve");
        assert!(matches!(
            g.decide(&p.id, true, 2),
            Err(DecideError::AlreadyDecided(_))
        ));
        assert!(
            g.consume("agent", "d", 120_001).expect("consume").is_none(),
            "expired"
        );
        let q = g
            .request(
                "reboot_node",
                "agent",
                "d",
                "Reboot pve".into(),
                TTL,
                200_000,
            )
            .expect("request");
        assert_eq!(g.pending(200_000).expect("pending").len(), 1);
        let denied = g.decide(&q.id, false, 200_001).expect("deny");
        assert_eq!(
            (denied.id.as_str(), denied.state),
            (q.id.as_str(), ApprovalState::Denied),
            "a denial says so"
        );
        assert!(g.consume("agent", "d", 200_002).expect("consume").is_none());
        assert!(g.pending(200_003).expect("pending").is_empty());
        assert!(matches!(
            g.decide(&q.id, true, 200_004),
            Err(DecideError::Unknown(_))
        ));
    }
}

//! The safety gate's state: pending approvals (bound to the SHA-256 of tool name + canonical arguments and to the
//! asking actor, single use, expiring) and the persisted kill switch. Approving is done by the operator through
//! the side port or the CLI, never through a tool.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Default lifetime of a pending approval.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(120);
/// At most this many approvals wait at once; the oldest are dropped first.
const MAX_PENDING: usize = 256;

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
    Denied,
}

/// A tier-2 call waiting for (or given) the operator's decision.
#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("no pending approval {0} (it may have expired, been used, or never existed)")]
    Unknown(String),
    #[error("approval {0} was already decided")]
    AlreadyDecided(String),
}

#[derive(Default)]
pub struct Approvals {
    inner: Mutex<HashMap<String, Approval>>,
}

impl Approvals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Approval>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sweep(map: &mut HashMap<String, Approval>, now_ms: u64) {
        map.retain(|_, a| a.expires_ms > now_ms && a.state != ApprovalState::Denied);
        while map.len() > MAX_PENDING {
            let Some(oldest) = map
                .values()
                .min_by_key(|a| a.created_ms)
                .map(|a| a.id.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
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
    ) -> Approval {
        let mut map = self.lock();
        Self::sweep(&mut map, now_ms);
        if let Some(existing) = map
            .values()
            .find(|a| a.digest == digest && a.actor == actor && a.state == ApprovalState::Pending)
        {
            return existing.clone();
        }
        let id = hex::encode(rand::random::<[u8; 6]>());
        let approval = Approval {
            id: id.clone(),
            tool: tool.to_string(),
            actor: actor.to_string(),
            summary,
            digest: digest.to_string(),
            created_ms: now_ms,
            expires_ms: now_ms + ttl.as_millis() as u64,
            state: ApprovalState::Pending,
        };
        map.insert(id, approval.clone());
        approval
    }

    /// The operator's decision.
    pub fn decide(&self, id: &str, approve: bool, now_ms: u64) -> Result<Approval, DecideError> {
        let mut map = self.lock();
        Self::sweep(&mut map, now_ms);
        let a = map
            .get_mut(id)
            .ok_or_else(|| DecideError::Unknown(id.to_string()))?;
        if a.state != ApprovalState::Pending {
            return Err(DecideError::AlreadyDecided(id.to_string()));
        }
        a.state = if approve {
            ApprovalState::Approved
        } else {
            ApprovalState::Denied
        };
        let out = a.clone();
        if !approve {
            map.remove(id);
        }
        Ok(out)
    }

    /// Uses up an approved, unexpired approval for exactly this call by this actor (single use).
    pub fn consume(&self, actor: &str, digest: &str, now_ms: u64) -> Option<Approval> {
        let mut map = self.lock();
        Self::sweep(&mut map, now_ms);
        let id = map
            .values()
            .find(|a| a.digest == digest && a.actor == actor && a.state == ApprovalState::Approved)
            .map(|a| a.id.clone())?;
        map.remove(&id)
    }

    /// Approvals waiting for a decision.
    pub fn pending(&self, now_ms: u64) -> Vec<Approval> {
        let mut map = self.lock();
        Self::sweep(&mut map, now_ms);
        let mut v: Vec<Approval> = map
            .values()
            .filter(|a| a.state == ApprovalState::Pending)
            .cloned()
            .collect();
        v.sort_by_key(|a| a.created_ms);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TTL: Duration = Duration::from_secs(120);

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
        let g = Approvals::default();
        let p = g.request("stop_guest", "mcp", "d1", "Stop VM 101".into(), TTL, 0);
        assert_eq!(
            g.request("stop_guest", "mcp", "d1", "again".into(), TTL, 1)
                .id,
            p.id,
            "asking twice is one request"
        );
        assert!(g.consume("mcp", "d1", 2).is_none(), "not approved yet");
        g.decide(&p.id, true, 3).expect("approve");
        assert!(
            g.consume("agent", "d1", 4).is_none(),
            "another actor cannot use it"
        );
        assert!(
            g.consume("mcp", "d2", 4).is_none(),
            "other arguments cannot use it"
        );
        assert!(g.consume("mcp", "d1", 5).is_some());
        assert!(g.consume("mcp", "d1", 6).is_none(), "used once");
        assert_eq!(
            g.decide(&p.id, true, 7).map(|a| a.id),
            Err(DecideError::Unknown(p.id.clone()))
        );
    }

    #[test]
    fn approvals_expire_and_denials_are_final() {
        let g = Approvals::default();
        let p = g.request("reboot_node", "agent", "d", "Reboot pve".into(), TTL, 0);
        g.decide(&p.id, true, 1).expect("approve");
        assert!(g.consume("agent", "d", 120_001).is_none(), "expired");
        let q = g.request(
            "reboot_node",
            "agent",
            "d",
            "Reboot pve".into(),
            TTL,
            200_000,
        );
        assert_eq!(
            g.decide(&q.id, false, 200_001).map(|a| a.state),
            Ok(ApprovalState::Denied)
        );
        assert!(g.consume("agent", "d", 200_002).is_none());
        assert!(g.pending(200_003).is_empty());
        assert!(matches!(
            g.decide(&q.id, true, 200_004),
            Err(DecideError::Unknown(_))
        ));
    }
}

//! The running conversation: its turns since the last fold, each with its estimated tokens and store id, and the
//! running summary of the turns folded before them. It is written to the store turn by turn (before the reply is
//! handed back), reloaded after a restart, and a new one begins after [`IDLE_MS`] of quiet.
//!
//! Folding: once the unfolded turns exceed the history budget, the oldest of them (down to half the budget, cut at
//! a user turn) are summarised by a model together with the previous summary; the new summary is stored with the
//! conversation and the folded turns leave the window. If the model cannot be reached, the turns stay and the
//! window still keeps the context within budget; the fold is tried again after the next turn.

use serde_json::{json, Value};

use super::context;
use super::llm::{Message, Role, SystemPrompt, ToolCall};
use crate::store::conversations::{self, NewTurn, TurnRow};
use crate::store::{Store, StoreError};

/// Quiet after which the next utterance starts a new conversation (the old one stays in the store).
pub const IDLE_MS: u64 = 6 * 3_600_000;
/// Turns held in memory, at most: the newest (the store keeps more; a model only ever sees a window of them).
pub const MAX_TURNS_IN_MEMORY: usize = 200;

/// A turn as the agent keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub id: i64,
    pub ts_ms: u64,
    pub message: Message,
    pub tokens: usize,
}

impl Turn {
    /// A turn with its token estimate; `id` is the store's (0 when it could not be stored).
    pub fn new(id: i64, ts_ms: u64, message: Message) -> Turn {
        Turn {
            id,
            ts_ms,
            tokens: context::tokens(&message),
            message,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    /// The store's id; 0 until the first turn is written.
    pub id: i64,
    pub summary: String,
    pub turns: Vec<Turn>,
    pub updated_ms: u64,
}

impl Conversation {
    /// The newest conversation in the store, if it was active within [`IDLE_MS`] of `now_ms`.
    pub fn load(store: &Store, now_ms: u64) -> Result<Conversation, StoreError> {
        let Some(head) = conversations::latest(store)? else {
            return Ok(Conversation::default());
        };
        if now_ms.saturating_sub(head.updated_ms) > IDLE_MS {
            return Ok(Conversation::default());
        }
        let turns =
            conversations::turns_after(store, head.id, head.folded_upto, MAX_TURNS_IN_MEMORY)?
                .into_iter()
                .map(from_row)
                .collect();
        Ok(Conversation {
            id: head.id,
            summary: head.summary,
            turns,
            updated_ms: head.updated_ms,
        })
    }

    /// Writes `messages` as new turns (starting a conversation first if this one is new or has gone quiet).
    pub fn append(
        &mut self,
        store: &Store,
        messages: Vec<Message>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if self.id == 0 || now_ms.saturating_sub(self.updated_ms) > IDLE_MS {
            *self = Conversation {
                id: conversations::start(store, now_ms)?,
                ..Conversation::default()
            };
        }
        let rows: Vec<NewTurn> = messages
            .iter()
            .map(|m| NewTurn {
                ts_ms: now_ms,
                role: role_name(m.role),
                content: m.content.clone(),
                tool_calls: calls_json(&m.tool_calls),
                tool_call_id: m.tool_call_id.clone(),
            })
            .collect();
        let ids = conversations::append(store, self.id, &rows)?;
        for (message, id) in messages.into_iter().zip(ids) {
            self.turns.push(Turn::new(id, now_ms, message));
        }
        self.updated_ms = now_ms;
        Ok(())
    }

    /// Drops the oldest turns from memory beyond [`MAX_TURNS_IN_MEMORY`] (they stay in the store), and gives the
    /// room back when a flood has passed.
    pub fn bound_memory(&mut self) {
        if self.turns.len() > MAX_TURNS_IN_MEMORY {
            let excess = self.turns.len() - MAX_TURNS_IN_MEMORY;
            self.turns.drain(..excess);
            if self.turns.capacity() > 2 * MAX_TURNS_IN_MEMORY {
                self.turns.shrink_to_fit();
            }
        }
    }

    /// Estimated tokens of the unfolded turns.
    pub fn unfolded_tokens(&self) -> usize {
        self.turns.iter().map(|t| t.tokens).sum()
    }

    /// How many of the oldest turns to fold when the unfolded ones exceed `budget`: enough that what remains
    /// fits half of it, cut where a user turn begins. `None` when no fold is due.
    pub fn fold_point(&self, budget: usize) -> Option<usize> {
        if self.unfolded_tokens() <= budget {
            return None;
        }
        let mut remaining = self.unfolded_tokens();
        for (i, t) in self.turns.iter().enumerate() {
            if t.message.role == Role::User && i > 0 && remaining <= budget / 2 {
                return Some(i);
            }
            remaining -= t.tokens;
        }
        // One exchange larger than half the budget: fold everything before the last user turn.
        self.turns
            .iter()
            .rposition(|t| t.message.role == Role::User)
            .filter(|i| *i > 0)
    }

    /// Replaces the first `count` turns by `summary`, in memory and in the store.
    pub fn apply_fold(
        &mut self,
        store: &Store,
        count: usize,
        summary: String,
    ) -> Result<(), StoreError> {
        let Some(last) = count.checked_sub(1).and_then(|i| self.turns.get(i)) else {
            return Ok(());
        };
        conversations::fold(store, self.id, &summary, last.id)?;
        self.turns.drain(..count);
        self.summary = summary;
        Ok(())
    }
}

/// The system prompt and request that ask a model to fold `turns` into the running summary.
pub fn fold_request(summary: &str, turns: &[Turn], address: &str) -> (SystemPrompt, Vec<Message>) {
    let system = SystemPrompt::from(
        "You keep the running summary of a conversation between a homelab's operator and J.A.R.V.I.S., its \
         assistant. Write the updated summary: the facts learnt, what was done and with what result, what waits \
         for approval, open questions. At most 150 words, plain prose, no preamble.",
    );
    let mut text = String::new();
    if !summary.is_empty() {
        text.push_str(&format!("The summary so far:\n{summary}\n\n"));
    }
    text.push_str("The turns to fold into it:\n");
    for t in turns {
        let m = &t.message;
        match m.role {
            Role::User => text.push_str(&format!("Operator ({address}): {}\n", m.content)),
            Role::Assistant => {
                if !m.content.is_empty() {
                    text.push_str(&format!("Jarvis: {}\n", m.content));
                }
                for c in &m.tool_calls {
                    text.push_str(&format!("Jarvis called {}({})\n", c.name, c.arguments));
                }
            }
            Role::Tool => {
                let short: String = m.content.chars().take(300).collect();
                text.push_str(&format!("Tool result: {short}\n"));
            }
        }
    }
    (system, vec![Message::user(&text)])
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn calls_json(calls: &[ToolCall]) -> String {
    Value::Array(
        calls
            .iter()
            .map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
            .collect(),
    )
    .to_string()
}

fn from_row(r: TurnRow) -> Turn {
    let role = match r.role.as_str() {
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        _ => Role::User,
    };
    let tool_calls = serde_json::from_str::<Vec<Value>>(&r.tool_calls)
        .unwrap_or_default()
        .into_iter()
        .map(|c| ToolCall {
            id: c["id"].as_str().unwrap_or_default().to_string(),
            name: c["name"].as_str().unwrap_or_default().to_string(),
            arguments: c["arguments"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let message = Message {
        role,
        content: r.content,
        tool_calls,
        tool_call_id: r.tool_call_id,
    };
    Turn::new(r.id, r.ts_ms, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assistant_with_call() -> Message {
        Message {
            role: Role::Assistant,
            content: String::new(),
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "guest_status".into(),
                arguments: "{\"vmid\":101}".into(),
            }],
            tool_call_id: None,
        }
    }

    #[test]
    fn turns_survive_a_restart_with_their_tool_calls_and_fold_point() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j.db");
        let t0 = 1_700_000_000_000;
        {
            let store = Store::open(&path).expect("open");
            let mut c = Conversation::load(&store, t0).expect("load");
            assert_eq!(c.id, 0);
            c.append(
                &store,
                vec![
                    Message::user("how is frigate?"),
                    assistant_with_call(),
                    Message::tool("c1", "{\"status\":\"running\"}".into()),
                    Message {
                        role: Role::Assistant,
                        content: "Running, sir.".into(),
                        tool_calls: vec![],
                        tool_call_id: None,
                    },
                ],
                t0,
            )
            .expect("append");
            c.append(&store, vec![Message::user("and the NAS?")], t0 + 1000)
                .expect("append");
            let before = c.turns.len();
            let cut = c
                .fold_point(c.unfolded_tokens() - 1)
                .expect("a fold is due");
            assert_eq!(
                cut, 4,
                "the first exchange folds, cut at the next user turn"
            );
            c.apply_fold(
                &store,
                cut,
                "The operator asked after Frigate: running.".into(),
            )
            .expect("fold");
            assert_eq!(c.turns.len(), before - 4);
        }
        let store = Store::open(&path).expect("reopen");
        let c = Conversation::load(&store, t0 + 2000).expect("load");
        assert_eq!(c.summary, "The operator asked after Frigate: running.");
        assert_eq!(c.turns.len(), 1);
        assert_eq!(c.turns[0].message.content, "and the NAS?");
        let all = conversations::turns_after(&store, c.id, 0, 1000).expect("turns");
        assert_eq!(from_row(all[1].clone()).message, assistant_with_call());
        // Six hours and more of quiet: a new conversation.
        let later = Conversation::load(&store, t0 + IDLE_MS + 5000).expect("load");
        assert_eq!(later, Conversation::default());
    }

    #[test]
    fn the_fold_request_carries_the_old_summary_and_the_turns() {
        let turns: Vec<Turn> = [Message::user("reboot pve"), assistant_with_call()]
            .into_iter()
            .enumerate()
            .map(|(i, m)| Turn::new(i as i64 + 1, 0, m))
            .collect();
        let (system, msgs) = fold_request("Earlier: backups.", &turns, "sir");
        assert!(system.stable.contains("running summary"));
        let text = &msgs[0].content;
        assert!(
            text.starts_with("The summary so far:\nEarlier: backups."),
            "{text}"
        );
        assert!(text.contains("Operator (sir): reboot pve"));
        assert!(text.contains("Jarvis called guest_status({\"vmid\":101})"));
    }
}

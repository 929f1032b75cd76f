//! What a model sees on a turn: the system prompt (the persona's stable part, then the cluster as it stands, the
//! memories that matter to this turn as markdown, and the running summary of older turns) and the newest turns of
//! the conversation that fit the history budget. Tokens are estimated (four characters to a token, plus a few per
//! message): no tokenizer for every model runs in-process, and the estimate errs on the generous side.
//!
//! [`PromptCache`] rebuilds the prompt only when one of its inputs changed, so a turn usually costs a few
//! comparisons and the providers see a byte-identical prefix.

use std::sync::Arc;

use super::llm::{Message, Role, SystemPrompt};
use super::persona::{self, Persona};
use crate::state::World;
use crate::store::memory::{self, Memory, MemoryTier};

/// Memories put in the system prompt at most.
pub const MAX_PROMPT_MEMORIES: usize = 8;

/// The estimated tokens of one message.
pub fn tokens(m: &Message) -> usize {
    let chars = m.content.len()
        + m.tool_calls
            .iter()
            .map(|c| c.name.len() + c.arguments.len() + 8)
            .sum::<usize>();
    chars.div_ceil(4) + 4
}

/// Where the window of turns sent to the model starts: the newest turns whose estimated tokens fit `budget`, always
/// from the last user turn on, and starting at a user turn so no tool result is sent without its call.
/// `tokens[i]` is the estimate of turn `i`.
pub fn window_start(roles: &[Role], tokens: &[usize], budget: usize) -> usize {
    let Some(last_user) = roles.iter().rposition(|r| *r == Role::User) else {
        return roles.len();
    };
    let mut used: usize = tokens[last_user..].iter().sum();
    let mut start = last_user;
    for i in (0..last_user).rev() {
        if used + tokens[i] > budget {
            break;
        }
        used += tokens[i];
        if roles[i] == Role::User {
            start = i;
        }
    }
    start
}

/// The memories for a turn about `query`: the relevant ones first, then what the operator is doing now (session
/// notes), then standing facts (permanent notes), newest first within each, at most `limit`.
pub fn select_memories<'m>(all: &'m [Memory], query: &str, limit: usize) -> Vec<&'m Memory> {
    let mut out = memory::rank(all, query);
    out.truncate(limit);
    for tier in [MemoryTier::Session, MemoryTier::Permanent] {
        for m in all.iter().filter(|m| m.tier == tier) {
            if out.len() >= limit {
                return out;
            }
            if !out.iter().any(|o| o.id == m.id) {
                out.push(m);
            }
        }
    }
    out
}

/// The chosen memories as a markdown section (empty when there are none).
pub fn memories_markdown(chosen: &[&Memory]) -> String {
    if chosen.is_empty() {
        return String::new();
    }
    let mut out = String::from("## What you remember\n");
    for m in chosen {
        out.push_str(&format!(
            "- {} (note {}, {})\n",
            m.text,
            m.id,
            m.tier.as_str()
        ));
    }
    out
}

/// The inputs of a system prompt, compared to decide whether to rebuild it.
struct Built {
    world: Arc<World>,
    cluster: String,
    memories: String,
    summary: String,
    prompt: SystemPrompt,
}

/// The last system prompt built for each of screen and voice.
pub struct PromptCache {
    persona: Persona,
    stable: [Arc<str>; 2],
    built: [Option<Built>; 2],
    /// How many times a prompt was (re)built, for tests and the benchmark.
    pub rebuilds: u64,
}

impl PromptCache {
    pub fn new(persona: Persona) -> PromptCache {
        let stable = [
            persona::stable_prompt(&persona, false).into(),
            persona::stable_prompt(&persona, true).into(),
        ];
        PromptCache {
            persona,
            stable,
            built: [None, None],
            rebuilds: 0,
        }
    }

    /// The system prompt for these inputs: the cached one when nothing changed.
    pub fn prompt(
        &mut self,
        voice: bool,
        world: &Arc<World>,
        memories: String,
        summary: &str,
    ) -> SystemPrompt {
        let slot = usize::from(voice);
        if let Some(b) = &self.built[slot] {
            let same_world = Arc::ptr_eq(&b.world, world);
            if same_world && b.memories == memories && b.summary == summary {
                return b.prompt.clone();
            }
        }
        // A new world often reads the same (the summary has no live figures): keep the prompt if so.
        let cluster = super::offline::cluster_summary(world, &self.persona)
            + &super::presence_replies::household_summary(world, &crate::tools::presence::zone());
        if let Some(b) = &mut self.built[slot] {
            if b.cluster == cluster && b.memories == memories && b.summary == summary {
                b.world = world.clone();
                return b.prompt.clone();
            }
        }
        self.rebuilds += 1;
        let mut context = format!("## The cluster now\n{cluster}\n");
        if !memories.is_empty() {
            context.push('\n');
            context.push_str(&memories);
        }
        if !summary.is_empty() {
            context.push_str("\n## Earlier in this conversation\n");
            context.push_str(summary);
            context.push('\n');
        }
        let prompt = SystemPrompt {
            stable: self.stable[slot].clone(),
            context: context.into(),
        };
        self.built[slot] = Some(Built {
            world: world.clone(),
            cluster,
            memories,
            summary: summary.to_string(),
            prompt: prompt.clone(),
        });
        prompt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(id: i64, tier: MemoryTier, text: &str) -> Memory {
        Memory {
            id,
            tier,
            text: text.into(),
            created_ms: 0,
            expires_ms: None,
        }
    }

    #[test]
    fn the_window_keeps_the_newest_turns_that_fit_and_starts_at_a_user_turn() {
        use Role::*;
        let roles = [User, Assistant, User, Assistant, Tool, Assistant, User];
        let toks = [10, 10, 10, 10, 10, 10, 10];
        assert_eq!(window_start(&roles, &toks, 1000), 0, "all fits");
        assert_eq!(window_start(&roles, &toks, 10), 6, "the question alone");
        // 50 fits turns 2..7, which start at a user turn.
        assert_eq!(window_start(&roles, &toks, 50), 2);
        // 45 would start at the assistant turn 3, halfway through an exchange: only the question goes.
        assert_eq!(window_start(&roles, &toks, 45), 6);
        assert_eq!(window_start(&[], &[], 10), 0);
    }

    #[test]
    fn memories_relevant_first_then_session_then_permanent() {
        let all = vec![
            mem(
                5,
                MemoryTier::Session,
                "The operator is replacing a disk in the NAS",
            ),
            mem(4, MemoryTier::Long, "agent2 has a noisy fan"),
            mem(3, MemoryTier::Permanent, "The operator's name is Tony"),
            mem(2, MemoryTier::Short, "Backups of the NAS run on Sunday"),
            mem(1, MemoryTier::Long, "The printer is on VLAN 30"),
        ];
        let ids = |v: Vec<&Memory>| v.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(
            ids(select_memories(&all, "when do the backups run", 8)),
            vec![2, 5, 3]
        );
        assert_eq!(
            ids(select_memories(&all, "is the fan on agent2 loud?", 2)),
            vec![4, 5]
        );
        let md = memories_markdown(&select_memories(&all, "fan", 1));
        assert_eq!(
            md,
            "## What you remember\n- agent2 has a noisy fan (note 4, long)\n"
        );
    }

    #[test]
    fn the_prompt_is_rebuilt_only_when_an_input_changes() {
        let mut cache = PromptCache::new(Persona::default());
        let world = Arc::new(World::default());
        let a = cache.prompt(false, &world, String::new(), "");
        let b = cache.prompt(false, &world, String::new(), "");
        assert_eq!(cache.rebuilds, 1);
        assert!(Arc::ptr_eq(&a.context, &b.context));
        // A new world that reads the same: no rebuild.
        let same = Arc::new(World::default());
        cache.prompt(false, &same, String::new(), "");
        assert_eq!(cache.rebuilds, 1);
        let c = cache.prompt(false, &same, "## What you remember\n- x\n".into(), "");
        assert_eq!(cache.rebuilds, 2);
        assert!(c.context.contains("- x"));
        let d = cache.prompt(
            false,
            &same,
            "## What you remember\n- x\n".into(),
            "They spoke of backups.",
        );
        assert_eq!(cache.rebuilds, 3);
        assert!(d
            .context
            .ends_with("## Earlier in this conversation\nThey spoke of backups.\n"));
        let v = cache.prompt(true, &same, String::new(), "");
        assert_eq!(cache.rebuilds, 4, "the voice prompt is its own");
        assert!(v.stable.contains("spoken"));
        assert!(
            Arc::ptr_eq(&a.stable, &d.stable),
            "the stable part never changes"
        );
    }
}

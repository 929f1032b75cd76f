//! Memory tools: `remember`, `recall` and `forget` over Jarvis's tiered notes ([`crate::store::memory`]). They
//! touch only Jarvis's own notebook, not the homelab, so they are tier 0: usable while the kill switch is on, and
//! audited like every call. `forget` by description deletes only when exactly one note fits; otherwise it lists
//! the candidates and asks for an id.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::typed::TypedTool;
use super::{Registry, Tier, ToolContext, ToolError};
use crate::store::memory::{self, Memory, MemoryTier, MAX_MEMORY_CHARS};
use crate::store::Store;

pub fn register(r: &mut Registry) {
    r.register(TypedTool::<RememberArgs>::new(
        "remember",
        Tier::Read,
        "Keep a short note for later. tier: session (an hour: what the operator is doing right now), short (a week, \
         the default), long (90 days: facts about the homelab), permanent (the operator's standing preferences and \
         facts until forgotten). Remembering the same note again refreshes it.",
        |a, _| format!("Remember ({}): {}", a.tier.unwrap_or(MemoryTier::Short).as_str(), a.text),
        |ctx, a| {
            Box::pin(async move {
                let text = a.text.trim().to_string();
                if text.is_empty() || text.chars().count() > MAX_MEMORY_CHARS {
                    return Err(ToolError::InvalidArguments {
                        tool: "remember".into(),
                        field: "text".into(),
                        message: format!("a note is 1 to {MAX_MEMORY_CHARS} characters"),
                    });
                }
                let tier = a.tier.unwrap_or(MemoryTier::Short);
                let m = on_store(&ctx, move |s| memory::remember(s, tier, &text, crate::time::now_ms())).await?;
                Ok(json!({ "remembered": shown(&m) }))
            })
        },
    ));
    r.register(TypedTool::<RecallArgs>::new(
        "recall",
        Tier::Read,
        "Search Jarvis's notes for those about a subject (shared words), best first; with no `about`, the newest \
         notes. Each has an id, its tier and when it expires.",
        |a, _| match &a.about {
            Some(q) => format!("Recall notes about {q}"),
            None => "Recall the newest notes".into(),
        },
        |ctx, a| {
            Box::pin(async move {
                let limit = a.limit.unwrap_or(10).clamp(1, 50) as usize;
                let found = on_store(&ctx, move |s| {
                    let now = crate::time::now_ms();
                    match a.about.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
                        Some(q) => memory::recall(s, q, now, limit),
                        None => memory::active(s, now).map(|mut v| {
                            v.truncate(limit);
                            v
                        }),
                    }
                })
                .await?;
                Ok(json!({ "memories": found.iter().map(shown).collect::<Vec<_>>() }))
            })
        },
    ));
    r.register(
        TypedTool::<ForgetArgs>::new(
            "forget",
            Tier::Read,
            "Forget a note: by `id` (from recall), or by `about` — which forgets only when exactly one note fits \
             and otherwise lists the candidates so you can choose an id.",
            |a, _| match (&a.id, &a.about) {
                (Some(id), _) => format!("Forget note {id}"),
                (None, Some(q)) => format!("Forget the note about {q}"),
                (None, None) => "Forget a note".into(),
            },
            |ctx, a| {
                Box::pin(async move {
                    if let Some(id) = a.id {
                        return match on_store(&ctx, move |s| memory::forget(s, id)).await? {
                            Some(m) => Ok(json!({ "forgotten": shown(&m) })),
                            None => Err(ToolError::NotFound(format!("there is no note {id}"))),
                        };
                    }
                    let about = a.about.unwrap_or_default();
                    let candidates = on_store(&ctx, {
                        let about = about.clone();
                        move |s| memory::recall(s, &about, crate::time::now_ms(), 5)
                    })
                    .await?;
                    match candidates.as_slice() {
                        [] => Err(ToolError::NotFound(format!("no note is about {about}"))),
                        [only] => {
                            let id = only.id;
                            on_store(&ctx, move |s| memory::forget(s, id)).await?;
                            Ok(json!({ "forgotten": shown(only) }))
                        }
                        many => Ok(json!({
                            "forgotten": null,
                            "candidates": many.iter().map(shown).collect::<Vec<_>>(),
                            "instructions": "Several notes fit; forget the right one by id.",
                        })),
                    }
                })
            },
        )
        .with_check(|a, _| {
            if a.id.is_none() && a.about.as_deref().is_none_or(|q| q.trim().is_empty()) {
                Err(ToolError::InvalidArguments {
                    tool: "forget".into(),
                    field: "id".into(),
                    message: "give the note's id or what it is about".into(),
                })
            } else {
                Ok(())
            }
        }),
    );
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RememberArgs {
    /// The note, in a sentence.
    pub text: String,
    #[serde(default)]
    pub tier: Option<MemoryTier>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecallArgs {
    #[serde(default)]
    pub about: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgetArgs {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub about: Option<String>,
}

fn shown(m: &Memory) -> Value {
    json!({
        "id": m.id,
        "text": m.text,
        "tier": m.tier,
        "expires": m.expires_ms.map(crate::time::rfc3339_ms),
    })
}

async fn on_store<T: Send + 'static>(
    ctx: &ToolContext,
    f: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ToolError> {
    let store = ctx
        .store
        .clone()
        .ok_or_else(|| ToolError::Failed("Jarvis's memory is not available here".into()))?;
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
        .map_err(|e| ToolError::Failed(e.to_string()))
}

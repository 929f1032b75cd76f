//! The tool loop: model → tool calls → registry (actor `agent`) → results → model, until the model answers
//! without calls or the step limit is reached. A tier-2 call becomes a pending approval that the model is told to
//! explain and wait on; malformed arguments go back to the model as an error it can correct; after any
//! successful write the affected guest or node is read again and its state attached, so the model can only claim
//! what it has seen.
//!
//! The taint rule: once a turn has read text from outside (a file, a project, a log, a command's output, a
//! download: [`crate::tools::OUTSIDE_TEXT_TOOLS`]), that text may be steering the model, so every routine call
//! for the rest of the turn needs the operator's approval like a tier-2 one, and the card says why.

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::llm::{LlmError, Message, Provider, Role, SystemPrompt, ToolSpec, Usage};
use super::offline::actor;
use crate::tools::{Invocation, Outcome, Registry, Tier};

/// How long a read-back waits for the next state update after a write.
const READ_BACK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Model calls allowed in one turn.
pub const DEFAULT_MAX_STEPS: usize = 8;

/// How one turn ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    pub text: String,
    /// Model calls made.
    pub steps: usize,
    /// Tools called, in order.
    pub tools_called: Vec<String>,
    pub usage: Usage,
    /// Set when the loop stopped the model (the step limit).
    pub stopped: Option<String>,
}

/// Which tools a turn offers the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    All,
    /// Tier 0 only: for an utterance that must not lead to an action now (one said for later).
    ReadsOnly,
}

/// Every tool an actor may use, as the model sees them.
pub fn tool_specs(tools: &Registry) -> Vec<ToolSpec> {
    offered_specs(tools, Offer::All)
}

/// The tools `offer` lets the model see (and call: a call of any other is refused in the loop).
pub fn offered_specs(tools: &Registry, offer: Offer) -> Vec<ToolSpec> {
    tools
        .list()
        .into_iter()
        .filter(|t| offer == Offer::All || t.tier == Tier::Read.number())
        .map(|t| ToolSpec {
            name: t.name,
            description: t.description,
            parameters: t.input_schema,
        })
        .collect()
}

/// Runs one turn. `history` ends with the user's message and gets the assistant and tool turns appended.
pub async fn run(
    provider: &dyn Provider,
    tools: &Registry,
    system: &SystemPrompt,
    history: &mut Vec<Message>,
    specs: &[ToolSpec],
    max_steps: usize,
    deltas: Option<mpsc::Sender<String>>,
) -> Result<TurnOutcome, LlmError> {
    let mut usage = Usage::default();
    let mut called = Vec::new();
    let mut taint: Option<String> = None;
    for step in 1..=max_steps {
        let c = provider
            .complete(system, history, specs, deltas.clone())
            .await?;
        usage.input += c.usage.input;
        usage.output += c.usage.output;
        usage.cached += c.usage.cached;
        usage.estimated |= c.usage.estimated;
        history.push(Message {
            role: Role::Assistant,
            content: c.text.clone(),
            tool_calls: c.tool_calls.clone(),
            tool_call_id: None,
        });
        if c.tool_calls.is_empty() {
            return Ok(TurnOutcome {
                text: c.text,
                steps: step,
                tools_called: called,
                usage,
                stopped: None,
            });
        }
        for call in &c.tool_calls {
            called.push(call.name.clone());
            let content = if specs.iter().any(|s| s.name == call.name) {
                call_tool(tools, &call.name, &call.arguments, taint.clone()).await
            } else {
                // A model may name any tool; only those offered this turn run.
                json!({"error": format!("`{}` is not available in this turn; use only the tools offered", call.name)})
            };
            if taint.is_none() && crate::tools::reads_outside_text(&call.name) {
                taint = Some(format!(
                    "this turn read outside text ({}) that may be steering the model",
                    call.name
                ));
            }
            history.push(Message::tool(&call.id, content.to_string()));
        }
    }
    let text = format!(
        "I have stopped after {max_steps} steps without reaching an answer; the tools I used were: {}.",
        called.join(", ")
    );
    if let Some(tx) = &deltas {
        let _ = tx.send(format!("\n{text}")).await;
    }
    Ok(TurnOutcome {
        text,
        steps: max_steps,
        tools_called: called,
        usage,
        stopped: Some("step limit".into()),
    })
}

/// One tool call as the model asked for it; the answer is what the model reads next. `taint` says why the turn
/// can no longer be trusted (routine calls then wait for the operator).
pub async fn call_tool(
    tools: &Registry,
    name: &str,
    raw_args: &str,
    taint: Option<String>,
) -> Value {
    let args: Value = if raw_args.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(raw_args) {
            Ok(v) => v,
            Err(e) => {
                return json!({"error": format!("the arguments are not valid JSON ({e}); call {name} again with a JSON object")})
            }
        }
    };
    let how = Invocation {
        taint,
        ..Invocation::default()
    };
    match tools.invoke_with(actor(), name, args.clone(), how).await {
        Ok(Outcome::Done { result }) => {
            let mut out = json!({ "result": result });
            if tools.tier_of(name).is_some_and(|t| t >= Tier::Routine) {
                if let Some(state) = read_back(tools, &args).await {
                    out["state_after"] = state;
                }
            }
            out
        }
        Ok(Outcome::PendingApproval { approval, .. }) => json!({
            "status": "pending_approval",
            "approval_id": approval.id,
            "summary": approval.summary,
            "instructions": "This action waits for the operator's approval on the kiosk or with `jarvis approve`. \
                             Tell the operator exactly what needs approving and that you will wait. Do not say it is done.",
        }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// The state of what a write touched, read through the registry.
async fn read_back(tools: &Registry, args: &Value) -> Option<Value> {
    let (tool, read_args) = if let Some(vmid) = args.get("vmid") {
        ("guest_status", json!({ "vmid": vmid }))
    } else if let Some(node) = args.get("node") {
        ("node_status", json!({ "node": node }))
    } else {
        return None;
    };
    // The first state after the write that can show its effect (the poller bursts after an action).
    tools.next_world(READ_BACK_WAIT).await;
    match tools.invoke(actor(), tool, read_args).await {
        Ok(Outcome::Done { result }) => Some(result),
        _ => None,
    }
}

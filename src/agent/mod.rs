//! Jarvis the agent: understands what the operator says and acts through the tool registry as actor `agent`.
//! First comes the offline fast path: the deterministic [`intent`] parser (with [`qualifiers`], which reads
//! questions, negations and times) and the [`offline`] engine that carries intents out and answers in the
//! [`persona`]; it runs alone while no language model is configured. The language-model providers, the router
//! and the tool loop plug in behind [`Agent::reply`] for what the engine does not understand and for actions said
//! for later.
//!
//! Surfaces: the kiosk's chat ([`ChatBackend`]), `POST /api/v1/chat`, chat messages on the WebSocket, and
//! `jarvis ask` against a running instance.

pub mod context;
pub mod conversation;
pub mod costs;
pub mod intent;
pub mod llm;
pub mod offline;
pub mod persona;
pub mod presence_replies;
pub mod qualifiers;
pub mod router;
pub mod tool_loop;

/// The longest question Jarvis reads, from any surface (side port, WebSocket, kiosk), in characters.
pub const MAX_QUESTION_CHARS: usize = 4000;

use std::sync::Arc;

use serde::Serialize;

use crate::tools::Registry;
use persona::Persona;

/// A piece of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatDelta {
    Text(String),
    Error(String),
}

/// Something that answers the operator (the kiosk's chat uses it).
pub trait ChatBackend: Send + Sync {
    /// Starts a reply to `text`; the receiver yields it in pieces and closes when the reply is complete.
    fn ask(&self, text: String) -> tokio::sync::mpsc::Receiver<ChatDelta>;

    /// The conversation so far, to show when the panel opens (after a restart too): (from Jarvis, text, time ms).
    fn history(&self) -> Vec<(bool, String, u64)> {
        Vec::new()
    }
}

/// Who is asking, which decides what may be done and how the answer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Asker {
    /// The operator (the kiosk, the operator token): may release the kill switch.
    pub operator: bool,
    /// The answer will be spoken: no symbols, units in words.
    pub voice: bool,
}

/// A complete answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    pub text: String,
    /// `offline` (the intent engine) or `none` (nothing could answer).
    pub engine: &'static str,
    /// The intent the engine read, for the API's callers and the logs.
    pub intent: Option<String>,
    /// The tool the answer came from.
    pub tool: Option<String>,
    /// The model failed and `text` says why (whatever was streamed before is incomplete).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

/// Estimated tokens of conversation sent to a model per turn (`[agent] history_tokens`).
pub const DEFAULT_HISTORY_TOKENS: usize = 3000;

/// How long a conversation that went to Claude stays with Claude (a discussion of code over several turns).
const STICKY_MS: u64 = 10 * 60_000;

pub struct Agent {
    tools: Arc<Registry>,
    persona: Persona,
    local: Option<Arc<dyn llm::Provider>>,
    claude: Option<Arc<dyn llm::Provider>>,
    route: router::RouteSettings,
    /// The cost ledger, the memories and the conversations.
    store: Arc<crate::store::Store>,
    history_tokens: usize,
    conversation: Arc<tokio::sync::Mutex<conversation::Conversation>>,
    prompts: std::sync::Mutex<context::PromptCache>,
    /// The route and time of the last model turn.
    last_route: std::sync::Mutex<Option<(router::Route, u64)>>,
    folding: Arc<std::sync::atomic::AtomicBool>,
}

impl Agent {
    /// An agent that answers from the offline engine; the conversation carries on from the store's newest one.
    pub fn new(tools: Arc<Registry>, persona: Persona, store: Arc<crate::store::Store>) -> Agent {
        let conversation = conversation::Conversation::load(&store, crate::time::now_ms())
            .unwrap_or_else(|e| {
                tracing::error!("cannot reload the last conversation, starting afresh: {e}");
                Default::default()
            });
        Agent {
            tools,
            prompts: std::sync::Mutex::new(context::PromptCache::new(persona.clone())),
            persona,
            local: None,
            claude: None,
            route: router::RouteSettings::default(),
            store,
            history_tokens: DEFAULT_HISTORY_TOKENS,
            conversation: Arc::new(tokio::sync::Mutex::new(conversation)),
            last_route: Default::default(),
            folding: Default::default(),
        }
    }

    /// The local model (llama-server) for what the offline engine does not understand.
    pub fn with_local(mut self, provider: Arc<dyn llm::Provider>) -> Agent {
        self.local = Some(provider);
        self
    }

    /// Claude, for hard requests and when the local model fails, within the budgets.
    pub fn with_claude(mut self, provider: Arc<dyn llm::Provider>) -> Agent {
        self.claude = Some(provider);
        self
    }

    /// Budgets and routing rules.
    pub fn with_routing(mut self, settings: router::RouteSettings) -> Agent {
        self.route = settings;
        self
    }

    /// The estimated tokens of conversation a model sees per turn; older turns are folded into the summary.
    pub fn with_history_tokens(mut self, tokens: usize) -> Agent {
        self.history_tokens = tokens.max(200);
        self
    }

    /// Answers one utterance.
    pub async fn reply(&self, text: &str, asker: Asker) -> Reply {
        self.reply_streaming(text, asker, None).await
    }

    /// Answers one utterance; a model's reply also streams to `deltas` as it arrives (the offline engine's comes
    /// whole, in the returned [`Reply`]).
    pub async fn reply_streaming(
        &self,
        text: &str,
        asker: Asker,
        deltas: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> Reply {
        let actor = if asker.voice {
            offline::VOICE_ACTOR
        } else {
            offline::ACTOR
        };
        offline::acting_for(actor, self.reply_as(text, asker, deltas)).await
    }

    async fn reply_as(
        &self,
        text: &str,
        asker: Asker,
        deltas: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> Reply {
        let world = self.tools.world();
        let has_model = self.local.is_some() || self.claude.is_some();
        let mut reply = match intent::parse(text, &world) {
            // An action for later is not the engine's to carry out: a model may answer it; without one the engine
            // says it cannot schedule it.
            // It is offered only the read tools: "later" must not become "now" by the model's choice.
            Some(intent::Intent::Deferred { .. }) if has_model => {
                self.ask_model(text, asker, deltas, tool_loop::Offer::ReadsOnly)
                    .await
            }
            Some(intent) => {
                let a = offline::carry_out(&intent, &self.tools, &self.persona, asker).await;
                let reply = Reply {
                    text: a.text,
                    engine: "offline",
                    intent: Some(format!("{intent:?}")),
                    tool: a.tool,
                    failed: false,
                };
                // The exchange joins the conversation, so a model asked next knows what was just done.
                let mut conv = self.conversation.lock().await;
                self.record(
                    &mut conv,
                    vec![
                        llm::Message::user(text),
                        llm::Message::assistant(&reply.text),
                    ],
                );
                reply
            }
            None if has_model => {
                self.ask_model(text, asker, deltas, tool_loop::Offer::All)
                    .await
            }
            None => self.beyond_me(),
        };
        if asker.voice {
            reply.text = persona::speakable(&reply.text);
        }
        reply
    }

    fn beyond_me(&self) -> Reply {
        Reply {
            text: format!(
                "I'm afraid that is beyond me without a language model, {}. I can report on the cluster, a node, \
                 a guest, storage and temperatures; start, shut down or reboot a guest; reboot or wake a node; \
                 work the kill switch; and keep notes (\"remember that …\").",
                self.persona.address
            ),
            engine: "none",
            intent: None,
            tool: None,
            failed: false,
        }
    }

    /// Writes turns to the conversation; a store failure is logged and the turns are kept in memory.
    fn record(&self, conv: &mut conversation::Conversation, messages: Vec<llm::Message>) {
        let now = crate::time::now_ms();
        if let Err(e) = conv.append(&self.store, messages.clone(), now) {
            tracing::error!("cannot store the conversation: {e}");
            conv.turns.extend(
                messages
                    .into_iter()
                    .map(|m| conversation::Turn::new(0, now, m)),
            );
        }
        conv.bound_memory();
    }

    /// (spent today, spent this month) in USD, from the ledger.
    async fn spent(&self) -> (f64, f64) {
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            let (day, month) = costs::day_and_month_start(crate::time::now_ms());
            Ok::<_, crate::store::StoreError>((
                costs::totals_since(&store, day)?.usd,
                costs::totals_since(&store, month)?.usd,
            ))
        })
        .await;
        match read {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                // Unknown spending counts as over budget: the gate fails closed on money too.
                tracing::error!("cannot read the cost ledger: {e}");
                (f64::INFINITY, f64::INFINITY)
            }
            Err(_) => (f64::INFINITY, f64::INFINITY),
        }
    }

    /// The system prompt and the messages for a turn that asks `text`: the newest turns that fit the history
    /// budget, then the question.
    pub fn context_for(
        &self,
        conv: &conversation::Conversation,
        text: &str,
        voice: bool,
    ) -> (llm::SystemPrompt, Vec<llm::Message>) {
        let question = llm::Message::user(text);
        let mut roles: Vec<llm::Role> = conv.turns.iter().map(|t| t.message.role).collect();
        let mut tokens: Vec<usize> = conv.turns.iter().map(|t| t.tokens).collect();
        roles.push(llm::Role::User);
        tokens.push(context::tokens(&question));
        let start = context::window_start(&roles, &tokens, self.history_tokens);
        let mut messages: Vec<llm::Message> = conv.turns[start.min(conv.turns.len())..]
            .iter()
            .map(|t| t.message.clone())
            .collect();
        messages.push(question);
        // Memories about this question or the one before it.
        let previous = conv
            .turns
            .iter()
            .rev()
            .find(|t| t.message.role == llm::Role::User)
            .map(|t| t.message.content.as_str())
            .unwrap_or("");
        let memories = match crate::store::memory::active(&self.store, crate::time::now_ms()) {
            Ok(all) => context::memories_markdown(&context::select_memories(
                &all,
                &format!("{text} {previous}"),
                context::MAX_PROMPT_MEMORIES,
            )),
            Err(e) => {
                tracing::error!("cannot read the memories: {e}");
                String::new()
            }
        };
        let world = self.tools.world();
        let system = self
            .prompts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .prompt(voice, &world, memories, &conv.summary);
        (system, messages)
    }

    /// How many times the system prompt was rebuilt (it is rebuilt only when its inputs change).
    pub fn prompt_rebuilds(&self) -> u64 {
        self.prompts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rebuilds
    }

    /// Whether this turn should go to the big model: hard words, long context, an indexed project named, or a
    /// conversation that has been with Claude in the last minutes (code is discussed over several turns).
    fn is_hard(&self, text: &str, context_tokens: usize) -> bool {
        let lower = text.to_lowercase();
        let sticky = self
            .last_route
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|(r, at)| {
                r == router::Route::Claude && crate::time::now_ms().saturating_sub(at) < STICKY_MS
            });
        router::is_hard(text, context_tokens * 4, &self.route)
            || sticky
            || self.tools.project_names().iter().any(|p| {
                lower
                    .split(|c: char| !c.is_alphanumeric() && c != '-' && c != '_')
                    .any(|w| w == p.to_lowercase())
            })
    }

    async fn ask_model(
        &self,
        text: &str,
        asker: Asker,
        deltas: Option<tokio::sync::mpsc::Sender<String>>,
        offer: tool_loop::Offer,
    ) -> Reply {
        let (today, month) = self.spent().await;
        let budget_ok = router::within_budget(&self.route, today, month);
        let specs = tool_loop::offered_specs(&self.tools, offer);
        let mut conv = self.conversation.lock().await;
        let (system, history) = self.context_for(&conv, text, asker.voice);
        let context_tokens: usize = history.iter().map(context::tokens).sum();
        let hard = self.is_hard(text, context_tokens);
        let Some(first) =
            router::choose(hard, self.local.is_some(), self.claude.is_some(), budget_ok)
        else {
            return Reply {
                text: format!(
                    "Claude's budget is spent for now and there is no local model, {}; I can only do what I know offline.",
                    self.persona.address
                ),
                engine: "none",
                intent: None,
                tool: None,
                failed: false,
            };
        };
        let question_at = history.len() - 1;
        let mut route = first;
        let result = loop {
            let provider = match route {
                router::Route::Local => self.local.as_ref(),
                router::Route::Claude => self.claude.as_ref(),
            };
            let Some(provider) = provider else {
                break Err(None);
            };
            let mut turn = history.clone();
            let r = tool_loop::run(
                provider.as_ref(),
                &self.tools,
                &system,
                &mut turn,
                &specs,
                tool_loop::DEFAULT_MAX_STEPS,
                deltas.clone(),
            )
            .await;
            match r {
                Ok(out) => break Ok((out, turn.split_off(question_at))),
                // The local model failed: Claude takes over when it may.
                Err(e) if route == router::Route::Local && self.claude.is_some() && budget_ok => {
                    tracing::warn!("the local model failed, asking Claude: {e}");
                    route = router::Route::Claude;
                }
                Err(e) => break Err(Some(e)),
            }
        };
        let engine = match route {
            router::Route::Local => "local",
            router::Route::Claude => "claude",
        };
        match result {
            Ok((out, new_turns)) => {
                // The question, the tool calls and results, and the answer join the conversation.
                self.record(&mut conv, new_turns);
                *self.last_route.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((route, crate::time::now_ms()));
                self.maybe_fold(&conv, budget_ok);
                Reply {
                    text: out.text,
                    engine,
                    intent: None,
                    tool: out.tools_called.last().cloned(),
                    failed: false,
                }
            }
            Err(e) => {
                // Nothing of a failed turn is kept.
                let why = e
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "no model available".into());
                Reply {
                    text: format!(
                        "My apologies, {}: the language model failed ({why}).",
                        self.persona.address
                    ),
                    engine,
                    intent: None,
                    tool: None,
                    failed: true,
                }
            }
        }
    }

    /// Folds the oldest turns into the running summary in the background when the conversation has outgrown the
    /// history budget (the local model does it when there is one; Claude only within budget).
    fn maybe_fold(&self, conv: &conversation::Conversation, budget_ok: bool) {
        use std::sync::atomic::Ordering;
        let Some(cut) = conv.fold_point(self.history_tokens) else {
            return;
        };
        let provider = match (&self.local, &self.claude) {
            (Some(local), _) => local.clone(),
            (None, Some(claude)) if budget_ok => claude.clone(),
            _ => return,
        };
        if self.folding.swap(true, Ordering::AcqRel) {
            return;
        }
        let folded: Vec<conversation::Turn> = conv.turns[..cut].to_vec();
        let (system, request) =
            conversation::fold_request(&conv.summary, &folded, &self.persona.address);
        let (conv_id, last_id) = (conv.id, folded.last().map(|t| t.id));
        let shared = self.conversation.clone();
        let store = self.store.clone();
        let folding = self.folding.clone();
        tokio::spawn(async move {
            match provider.complete(&system, &request, &[], None).await {
                Ok(c) if !c.text.trim().is_empty() => {
                    let mut conv = shared.lock().await;
                    // Only if the conversation is still the one the summary was made from.
                    if conv.id == conv_id && conv.turns.get(cut - 1).map(|t| t.id) == last_id {
                        if let Err(e) = conv.apply_fold(&store, cut, c.text.trim().to_string()) {
                            tracing::error!("cannot store the conversation's summary: {e}");
                        }
                    }
                }
                Ok(_) => tracing::warn!("the model gave an empty summary; the turns stay unfolded"),
                Err(e) => tracing::warn!("cannot fold the conversation now: {e}"),
            }
            folding.store(false, Ordering::Release);
        });
    }

    /// The conversation as it stands: its summary and its unfolded turns (for the kiosk after a restart, tests).
    pub async fn conversation(&self) -> conversation::Conversation {
        self.conversation.lock().await.clone()
    }
}

/// `GET /api/v1/costs` and the kiosk's figure.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub today: costs::Totals,
    pub month: costs::Totals,
    pub daily_budget_usd: Option<f64>,
    pub monthly_budget_usd: Option<f64>,
    pub recent: Vec<costs::CallRow>,
}

impl Agent {
    /// What the models cost today and this month (UTC), and the last calls; `None` without a ledger.
    pub async fn cost_report(
        &self,
        recent: usize,
    ) -> Option<Result<CostReport, crate::store::StoreError>> {
        let (settings, store) = (self.route.clone(), self.store.clone());
        let read = tokio::task::spawn_blocking(move || {
            let (day, month) = costs::day_and_month_start(crate::time::now_ms());
            Ok(CostReport {
                today: costs::totals_since(&store, day)?,
                month: costs::totals_since(&store, month)?,
                daily_budget_usd: settings.daily_usd,
                monthly_budget_usd: settings.monthly_usd,
                recent: costs::recent(&store, recent)?,
            })
        })
        .await;
        Some(read.unwrap_or_else(|e| Err(crate::store::StoreError::Task(e.to_string()))))
    }
}

/// Messages of the reloaded conversation the kiosk shows.
const HISTORY_SHOWN: usize = 50;

impl ChatBackend for Arc<Agent> {
    fn history(&self) -> Vec<(bool, String, u64)> {
        let Ok(conv) = self.conversation.try_lock() else {
            return Vec::new();
        };
        let said: Vec<(bool, String, u64)> = conv
            .turns
            .iter()
            .filter(|t| t.message.role != llm::Role::Tool && !t.message.content.is_empty())
            .map(|t| {
                (
                    t.message.role == llm::Role::Assistant,
                    t.message.content.clone(),
                    t.ts_ms,
                )
            })
            .collect();
        said[said.len().saturating_sub(HISTORY_SHOWN)..].to_vec()
    }

    fn ask(&self, text: String) -> tokio::sync::mpsc::Receiver<ChatDelta> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let agent = self.clone();
        tokio::spawn(async move {
            let (dtx, mut drx) = tokio::sync::mpsc::channel::<String>(64);
            let forward = {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut streamed = false;
                    while let Some(piece) = drx.recv().await {
                        streamed = true;
                        let _ = tx.send(ChatDelta::Text(piece)).await;
                    }
                    streamed
                })
            };
            // The kiosk is the operator's own screen.
            let reply = agent
                .reply_streaming(
                    &text,
                    Asker {
                        operator: true,
                        voice: false,
                    },
                    Some(dtx),
                )
                .await;
            let streamed = forward.await.unwrap_or(false);
            if !streamed {
                let _ = tx.send(ChatDelta::Text(reply.text)).await;
            } else if reply.failed {
                let _ = tx.send(ChatDelta::Error(reply.text)).await;
            }
        });
        rx
    }
}

//! Jarvis the agent: understands what the operator says and acts through the tool registry as actor `agent`.
//! Today this is the offline fast path: the deterministic [`intent`] parser and the [`offline`] engine that
//! carries intents out and answers in the [`persona`]; it runs first and alone while no language model is
//! configured. The language-model providers, the router and the tool loop plug in behind [`Agent::reply`].
//!
//! Surfaces: the kiosk's chat ([`ChatBackend`]), `POST /api/v1/chat`, chat messages on the WebSocket, and
//! `jarvis ask` against a running instance.

pub mod costs;
pub mod intent;
pub mod llm;
pub mod offline;
pub mod persona;
pub mod router;
pub mod tool_loop;

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
}

/// Turns of the running conversation kept for the model (the token-budget window comes with the router).
const HISTORY_TURNS: usize = 40;

pub struct Agent {
    tools: Arc<Registry>,
    persona: Persona,
    local: Option<Arc<dyn llm::Provider>>,
    claude: Option<Arc<dyn llm::Provider>>,
    /// Routing rules and budgets, and the store whose ledger says what was spent.
    routing: Option<(router::RouteSettings, Arc<crate::store::Store>)>,
    conversation: tokio::sync::Mutex<Vec<llm::Message>>,
}

impl Agent {
    pub fn new(tools: Arc<Registry>, persona: Persona) -> Agent {
        Agent {
            tools,
            persona,
            local: None,
            claude: None,
            routing: None,
            conversation: Default::default(),
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

    /// Budgets and routing rules; spending is read from `store`'s cost ledger.
    pub fn with_routing(
        mut self,
        settings: router::RouteSettings,
        store: Arc<crate::store::Store>,
    ) -> Agent {
        self.routing = Some((settings, store));
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
        let world = self.tools.world();
        let mut reply = match intent::parse(text, &world) {
            Some(intent) => {
                let a = offline::carry_out(&intent, &self.tools, &self.persona, asker).await;
                Reply {
                    text: a.text,
                    engine: "offline",
                    intent: Some(format!("{intent:?}")),
                    tool: a.tool,
                }
            }
            None if self.local.is_some() || self.claude.is_some() => {
                self.ask_model(text, asker, deltas).await
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
                 and work the kill switch.",
                self.persona.address
            ),
            engine: "none",
            intent: None,
            tool: None,
        }
    }

    /// (spent today, spent this month) in USD, from the ledger.
    async fn spent(&self) -> (f64, f64) {
        let Some((_, store)) = &self.routing else {
            return (0.0, 0.0);
        };
        let store = store.clone();
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

    async fn ask_model(
        &self,
        text: &str,
        asker: Asker,
        deltas: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> Reply {
        let settings = self
            .routing
            .as_ref()
            .map(|(s, _)| s.clone())
            .unwrap_or_default();
        let (today, month) = self.spent().await;
        let budget_ok = router::within_budget(&settings, today, month);
        let system = persona::system_prompt(&self.persona, &self.tools.world(), asker.voice);
        let specs = tool_loop::tool_specs(&self.tools);
        let mut conversation = self.conversation.lock().await;
        let context: usize = conversation.iter().map(|m| m.content.len()).sum();
        let hard = router::is_hard(text, context, &settings);
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
            };
        };
        conversation.push(llm::Message::user(text));
        let mark = conversation.len();
        let mut route = first;
        let result = loop {
            let provider = match route {
                router::Route::Local => self.local.as_ref(),
                router::Route::Claude => self.claude.as_ref(),
            };
            let Some(provider) = provider else {
                break Err(None);
            };
            let r = tool_loop::run(
                provider.as_ref(),
                &self.tools,
                &system,
                &mut conversation,
                &specs,
                tool_loop::DEFAULT_MAX_STEPS,
                deltas.clone(),
            )
            .await;
            match r {
                Ok(out) => break Ok(out),
                // The local model failed: Claude takes over when it may.
                Err(e) if route == router::Route::Local && self.claude.is_some() && budget_ok => {
                    tracing::warn!("the local model failed, asking Claude: {e}");
                    conversation.truncate(mark);
                    route = router::Route::Claude;
                }
                Err(e) => break Err(Some(e)),
            }
        };
        let engine = match route {
            router::Route::Local => "local",
            router::Route::Claude => "claude",
        };
        let reply = match result {
            Ok(out) => Reply {
                text: out.text,
                engine,
                intent: None,
                tool: out.tools_called.last().cloned(),
            },
            Err(e) => {
                // Keep the conversation consistent: drop the half turn.
                conversation.truncate(mark - 1);
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
                }
            }
        };
        let excess = conversation.len().saturating_sub(HISTORY_TURNS);
        // Cut only at a user turn, so no tool result is left without its call.
        if let Some(cut) = conversation
            .iter()
            .skip(excess)
            .position(|m| m.role == llm::Role::User)
        {
            conversation.drain(..excess + cut);
        }
        reply
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
        let (settings, store) = self.routing.clone()?;
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

impl ChatBackend for Arc<Agent> {
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
            } else if reply.text.starts_with("My apologies") {
                let _ = tx.send(ChatDelta::Error(reply.text)).await;
            }
        });
        rx
    }
}

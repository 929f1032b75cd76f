//! Jarvis the agent: understands what the operator says and acts through the tool registry as actor `agent`.
//! Today this is the offline fast path: the deterministic [`intent`] parser and the [`offline`] engine that
//! carries intents out and answers in the [`persona`]; it runs first and alone while no language model is
//! configured. The language-model providers, the router and the tool loop plug in behind [`Agent::reply`].
//!
//! Surfaces: the kiosk's chat ([`ChatBackend`]), `POST /api/v1/chat`, chat messages on the WebSocket, and
//! `jarvis ask` against a running instance.

pub mod intent;
pub mod llm;
pub mod offline;
pub mod persona;
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
    llm: Option<Arc<dyn llm::Provider>>,
    conversation: tokio::sync::Mutex<Vec<llm::Message>>,
}

impl Agent {
    pub fn new(tools: Arc<Registry>, persona: Persona) -> Agent {
        Agent {
            tools,
            persona,
            llm: None,
            conversation: Default::default(),
        }
    }

    /// With a language model for what the offline engine does not understand.
    pub fn with_llm(mut self, provider: Arc<dyn llm::Provider>) -> Agent {
        self.llm = Some(provider);
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
                Reply { text: a.text, engine: "offline", intent: Some(format!("{intent:?}")), tool: a.tool }
            }
            None if self.llm.is_some() => self.ask_model(text, asker, deltas).await,
            None => Reply {
                text: format!(
                    "I'm afraid that is beyond me without a language model, {}. I can report on the cluster, a node, \
                     a guest, storage and temperatures; start, shut down or reboot a guest; reboot or wake a node; \
                     and work the kill switch.",
                    self.persona.address
                ),
                engine: "none",
                intent: None,
                tool: None,
            },
        };
        if asker.voice {
            reply.text = persona::speakable(&reply.text);
        }
        reply
    }
}

impl Agent {
    async fn ask_model(
        &self,
        text: &str,
        asker: Asker,
        deltas: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> Reply {
        let Some(provider) = &self.llm else {
            return Reply {
                text: String::new(),
                engine: "none",
                intent: None,
                tool: None,
            };
        };
        let system = persona::system_prompt(&self.persona, &self.tools.world(), asker.voice);
        let specs = tool_loop::tool_specs(&self.tools);
        let mut conversation = self.conversation.lock().await;
        conversation.push(llm::Message::user(text));
        let mark = conversation.len();
        let result = tool_loop::run(
            provider.as_ref(),
            &self.tools,
            &system,
            &mut conversation,
            &specs,
            tool_loop::DEFAULT_MAX_STEPS,
            deltas,
        )
        .await;
        let reply = match result {
            Ok(out) => Reply {
                text: out.text,
                engine: "llm",
                intent: None,
                tool: out.tools_called.last().cloned(),
            },
            Err(e) => {
                // Keep the conversation consistent: drop the half turn.
                conversation.truncate(mark - 1);
                Reply {
                    text: format!(
                        "My apologies, {}: the language model failed ({e}).",
                        self.persona.address
                    ),
                    engine: "llm",
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

impl ChatBackend for Arc<Agent> {
    fn ask(&self, text: String) -> tokio::sync::mpsc::Receiver<ChatDelta> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let agent = self.clone();
        tokio::spawn(async move {
            // The kiosk is the operator's own screen.
            let reply = agent
                .reply(
                    &text,
                    Asker {
                        operator: true,
                        voice: false,
                    },
                )
                .await;
            let _ = tx.send(ChatDelta::Text(reply.text)).await;
        });
        rx
    }
}

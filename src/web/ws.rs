//! The live WebSocket: a cluster snapshot on connect, then every bus event as JSON tagged by channel (`cluster`,
//! `jarvis`, `voice`, `vision`) and a fresh snapshot whenever the state changes. A client may talk to Jarvis on
//! the same socket: `{"type": "chat", "text": "...", "id": "x"}` is answered with `chat_delta`s (a model's reply
//! piece by piece as it arrives; the offline engine's and a spoken one whole) and then `chat_done`.
//!
//! Each connection has its own bus receiver, so a client that never reads cannot slow anyone else: a send that
//! does not complete in [`SEND_TIMEOUT`] closes that connection, and a client that falls behind the bus gets a
//! `lagged` notice followed by a fresh snapshot.
//!
//! Chat on a socket is answered one question at a time by the connection's own worker, with at most
//! [`CHAT_QUEUE`] waiting; more, or more than the token's rate ([`super::chat::ChatLimiter`]), get an error
//! message at once and cost nothing. A frame is at most [`MAX_INBOUND`] bytes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::auth::Role;
use super::WebContext;
use crate::agent::Asker;
use crate::bus::Stamped;
use crate::state::World;
use tokio::sync::mpsc;

pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest inbound frame: a chat message of [`super::chat::MAX_CHAT_CHARS`] characters fits with room to spare.
pub const MAX_INBOUND: usize = 20 * 1024;
/// Questions waiting on one socket while one is answered.
pub const CHAT_QUEUE: usize = 4;

pub async fn upgrade(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(MAX_INBOUND)
        .max_frame_size(MAX_INBOUND)
        .max_write_buffer_size(4 * 1024 * 1024)
        .on_upgrade(move |socket| session(ctx, socket, role))
}

/// A client's chat message: `{"type": "chat", "text": "...", "id": "any"}`.
#[derive(Debug, serde::Deserialize)]
struct ChatIn {
    #[serde(rename = "type")]
    kind: String,
    text: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    voice: bool,
}

/// A question checked and waiting for the connection's worker.
struct Question {
    id: String,
    text: String,
    voice: bool,
}

fn error_message(id: &str, message: impl Into<String>) -> String {
    json!({"channel": "jarvis", "type": "error", "id": id, "message": message.into()}).to_string()
}

/// Checks a client's chat message and queues it for the connection's worker; what is refused is answered at
/// once through `out`.
fn accept_chat(
    ctx: &WebContext,
    raw: &str,
    role: Role,
    queue: &mpsc::Sender<Question>,
    out: &mpsc::Sender<String>,
) {
    let msg: ChatIn = match serde_json::from_str(raw) {
        Ok(m) => m,
        Err(e) => {
            let m = format!("expected {{\"type\": \"chat\", \"text\": \"...\"}}: {e}");
            let _ = out.try_send(error_message("", m));
            return;
        }
    };
    let id = msg.id.unwrap_or_default();
    let text = match (msg.kind.as_str(), super::chat::check_text(&msg.text)) {
        ("chat", Ok(t)) => t.to_string(),
        (_, Err(m)) => {
            let _ = out.try_send(error_message(&id, m));
            return;
        }
        (other, _) => {
            let _ = out.try_send(error_message(
                &id,
                format!("unknown message type `{other}`"),
            ));
            return;
        }
    };
    if let Err(wait) = ctx.chat_limit.take(role) {
        let m = format!(
            "too many questions: ask again in {} s",
            wait.as_secs().max(1)
        );
        let _ = out.try_send(error_message(&id, m));
        return;
    }
    let question = Question {
        id: id.clone(),
        text,
        voice: msg.voice,
    };
    if queue.try_send(question).is_err() {
        let m = format!("busy: {CHAT_QUEUE} questions are already waiting on this connection");
        let _ = out.try_send(error_message(&id, m));
    }
}

/// Answers the connection's questions one at a time; replies go through `out` as `chat_delta`s then
/// `chat_done`. Ends when the connection does.
async fn chat_worker(
    ctx: Arc<WebContext>,
    role: Role,
    mut questions: mpsc::Receiver<Question>,
    out: mpsc::Sender<String>,
) {
    while let Some(q) = questions.recv().await {
        let asker = Asker {
            operator: role == Role::Operator,
            voice: q.voice,
        };
        // A model's reply goes out piece by piece as it arrives; a spoken one whole, once made speakable.
        let (tx, mut rx) = mpsc::channel::<String>(64);
        let forward = {
            let (out, id) = (out.clone(), q.id.clone());
            tokio::spawn(async move {
                let mut streamed = false;
                while let Some(piece) = rx.recv().await {
                    streamed = true;
                    let delta =
                        json!({"channel": "jarvis", "type": "chat_delta", "id": id, "text": piece});
                    let _ = out.send(delta.to_string()).await;
                }
                streamed
            })
        };
        ctx.bus.publish(crate::bus::asked("web", &q.text));
        let reply = ctx
            .agent
            .reply_streaming(&q.text, asker, (!q.voice).then_some(tx))
            .await;
        let streamed = forward.await.unwrap_or(false);
        if !streamed || reply.failed {
            let text = if streamed {
                format!("\n{}", reply.text)
            } else {
                reply.text.clone()
            };
            let delta =
                json!({"channel": "jarvis", "type": "chat_delta", "id": q.id, "text": text});
            let _ = out.send(delta.to_string()).await;
        }
        let done = json!({"channel": "jarvis", "type": "chat_done", "id": q.id, "engine": reply.engine,
                          "intent": reply.intent, "tool": reply.tool, "failed": reply.failed});
        if out.send(done.to_string()).await.is_err() {
            return;
        }
    }
}

pub fn snapshot_message(world: &World) -> String {
    json!({"channel": "cluster", "type": "snapshot", "ts_ms": crate::time::now_ms(), "data": world.cluster}).to_string()
}

pub fn event_message(e: &Stamped) -> String {
    json!({"channel": e.event.channel().as_str(), "type": "event", "ts_ms": e.ts_ms, "data": e.event}).to_string()
}

async fn session(ctx: Arc<WebContext>, mut socket: WebSocket, role: Role) {
    let (chat_tx, mut chat_rx) = mpsc::channel::<String>(32);
    let (question_tx, question_rx) = mpsc::channel::<Question>(CHAT_QUEUE);
    // The worker ends with the connection: its queue closes (an answer in progress is finished, not cut off
    // halfway through an action, and goes nowhere).
    tokio::spawn(chat_worker(ctx.clone(), role, question_rx, chat_tx.clone()));
    let mut events = ctx.bus.subscribe();
    let mut world = ctx.state.subscribe();
    let first = snapshot_message(&world.borrow_and_update());
    if !send(&mut socket, first).await {
        return;
    }
    loop {
        let text = tokio::select! {
            ev = events.recv() => match ev {
                Ok(e) => event_message(&e),
                Err(RecvError::Lagged(n)) => {
                    let notice = json!({"channel": "jarvis", "type": "lagged", "missed": n}).to_string();
                    if !send(&mut socket, notice).await {
                        return;
                    }
                    snapshot_message(&world.borrow_and_update())
                }
                Err(RecvError::Closed) => return,
            },
            changed = world.changed() => match changed {
                Ok(()) => snapshot_message(&world.borrow_and_update()),
                Err(_) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(Message::Text(t))) => {
                    accept_chat(&ctx, t.as_str(), role, &question_tx, &chat_tx);
                    continue;
                }
                Some(Ok(_)) => continue,
            },
            Some(text) = chat_rx.recv() => text,
        };
        if !send(&mut socket, text).await {
            return;
        }
    }
}

/// False when the client is gone or too slow; the caller then ends the session.
async fn send(socket: &mut WebSocket, text: String) -> bool {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!("websocket client gone: {e}");
            false
        }
        Err(_) => {
            tracing::info!("closing a websocket client that stopped reading");
            false
        }
    }
}

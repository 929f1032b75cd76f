//! The live WebSocket: a cluster snapshot on connect, then every bus event as JSON tagged by channel (`cluster`,
//! `jarvis`, `voice`, `vision`) and a fresh snapshot whenever the state changes. A client may talk to Jarvis on
//! the same socket: `{"type": "chat", "text": "...", "id": "x"}` is answered with `chat_delta`s (a model's reply
//! piece by piece as it arrives; the offline engine's and a spoken one whole) and then `chat_done`.
//!
//! Each connection has its own bus receiver, so a client that never reads cannot slow anyone else: a send that
//! does not complete in [`SEND_TIMEOUT`] closes that connection, and a client that falls behind the bus gets a
//! `lagged` notice followed by a fresh snapshot.

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
const MAX_INBOUND: usize = 64 * 1024;

pub async fn upgrade(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    ws: WebSocketUpgrade,
) -> Response {
    let operator = role == Role::Operator;
    ws.max_message_size(MAX_INBOUND)
        .max_write_buffer_size(4 * 1024 * 1024)
        .on_upgrade(move |socket| session(ctx, socket, operator))
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

/// Answers a chat message from the client; replies come back through `out` as `chat_delta` then `chat_done`.
fn answer_chat(ctx: &Arc<WebContext>, raw: &str, operator: bool, out: &mpsc::Sender<String>) {
    let msg: ChatIn = match serde_json::from_str(raw) {
        Ok(m) => m,
        Err(e) => {
            let err = json!({"channel": "jarvis", "type": "error", "message": format!("expected {{\"type\": \"chat\", \"text\": \"...\"}}: {e}")});
            let _ = out.try_send(err.to_string());
            return;
        }
    };
    let id = msg.id.unwrap_or_default();
    let text = match (msg.kind.as_str(), super::chat::check_text(&msg.text)) {
        ("chat", Ok(t)) => t.to_string(),
        (_, Err(m)) => {
            let _ = out.try_send(
                json!({"channel": "jarvis", "type": "error", "id": id, "message": m}).to_string(),
            );
            return;
        }
        (other, _) => {
            let m = format!("unknown message type `{other}`");
            let _ = out.try_send(
                json!({"channel": "jarvis", "type": "error", "id": id, "message": m}).to_string(),
            );
            return;
        }
    };
    let (ctx, out) = (ctx.clone(), out.clone());
    tokio::spawn(async move {
        let asker = Asker {
            operator,
            voice: msg.voice,
        };
        // A model's reply goes out piece by piece as it arrives; a spoken one whole, once made speakable.
        let (tx, mut rx) = mpsc::channel::<String>(64);
        let forward = {
            let (out, id) = (out.clone(), id.clone());
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
        let reply = ctx
            .agent
            .reply_streaming(&text, asker, (!msg.voice).then_some(tx))
            .await;
        let streamed = forward.await.unwrap_or(false);
        if !streamed || reply.failed {
            let text = if streamed {
                format!("\n{}", reply.text)
            } else {
                reply.text.clone()
            };
            let delta = json!({"channel": "jarvis", "type": "chat_delta", "id": id, "text": text});
            let _ = out.send(delta.to_string()).await;
        }
        let done = json!({"channel": "jarvis", "type": "chat_done", "id": id, "engine": reply.engine,
                          "intent": reply.intent, "tool": reply.tool, "failed": reply.failed});
        let _ = out.send(done.to_string()).await;
    });
}

pub fn snapshot_message(world: &World) -> String {
    json!({"channel": "cluster", "type": "snapshot", "ts_ms": crate::time::now_ms(), "data": world.cluster}).to_string()
}

pub fn event_message(e: &Stamped) -> String {
    json!({"channel": e.event.channel().as_str(), "type": "event", "ts_ms": e.ts_ms, "data": e.event}).to_string()
}

async fn session(ctx: Arc<WebContext>, mut socket: WebSocket, operator: bool) {
    let (chat_tx, mut chat_rx) = mpsc::channel::<String>(32);
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
                    answer_chat(&ctx, t.as_str(), operator, &chat_tx);
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

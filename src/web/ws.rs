//! The live WebSocket: a cluster snapshot on connect, then every bus event as JSON tagged by channel (`cluster`,
//! `jarvis`, `voice`, `vision`) and a fresh snapshot whenever the state changes.
//!
//! Each connection has its own bus receiver, so a client that never reads cannot slow anyone else: a send that
//! does not complete in [`SEND_TIMEOUT`] closes that connection, and a client that falls behind the bus gets a
//! `lagged` notice followed by a fresh snapshot.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::WebContext;
use crate::bus::Stamped;
use crate::state::World;

pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_INBOUND: usize = 64 * 1024;

pub async fn upgrade(State(ctx): State<Arc<WebContext>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_INBOUND)
        .max_write_buffer_size(4 * 1024 * 1024)
        .on_upgrade(move |socket| session(ctx, socket))
}

pub fn snapshot_message(world: &World) -> String {
    json!({"channel": "cluster", "type": "snapshot", "ts_ms": crate::time::now_ms(), "data": world.cluster}).to_string()
}

pub fn event_message(e: &Stamped) -> String {
    json!({"channel": e.event.channel().as_str(), "type": "event", "ts_ms": e.ts_ms, "data": e.event}).to_string()
}

async fn session(ctx: Arc<WebContext>, mut socket: WebSocket) {
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
                Some(Ok(_)) => continue,
            },
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

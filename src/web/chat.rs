//! Talking to Jarvis over the side port: `POST /api/v1/chat` with `{"text": "...", "voice": false}` answers
//! `{"text", "engine", "intent", "tool"}`. The operator's token may release the kill switch by voice or text; the
//! client token may not.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::auth::Role;
use super::{error, WebContext};
use crate::agent::Asker;

/// Longest utterance accepted, in characters.
pub const MAX_CHAT_CHARS: usize = 4000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    pub text: String,
    #[serde(default)]
    pub voice: bool,
}

/// Checks a chat request's text; the error is the message to return.
pub fn check_text(text: &str) -> Result<&str, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("`text` is empty".into());
    }
    if t.chars().count() > MAX_CHAT_CHARS {
        return Err(format!("`text` is longer than {MAX_CHAT_CHARS} characters"));
    }
    Ok(t)
}

pub async fn chat(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    body: Bytes,
) -> Response {
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("expected {{\"text\": \"...\"}}: {e}"),
            )
        }
    };
    let text = match check_text(&req.text) {
        Ok(t) => t,
        Err(m) => return error(StatusCode::BAD_REQUEST, "bad_text", m),
    };
    let asker = Asker {
        operator: role == Role::Operator,
        voice: req.voice,
    };
    Json(ctx.agent.reply(text, asker).await).into_response()
}

/// `GET /api/v1/costs`: what the language models cost today and this month, the budgets, the last 50 calls.
pub async fn costs(State(ctx): State<Arc<WebContext>>) -> Response {
    match ctx.agent.cost_report(50).await {
        Some(Ok(report)) => Json(report).into_response(),
        Some(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
        None => error(
            StatusCode::NOT_FOUND,
            "no_ledger",
            "no cost ledger is kept by this instance",
        ),
    }
}

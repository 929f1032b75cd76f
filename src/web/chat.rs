//! Talking to Jarvis over the side port: `POST /api/v1/chat` with `{"text": "...", "voice": false}` answers
//! `{"text", "engine", "intent", "tool"}`. The operator's token may release the kill switch by voice or text; the
//! client token may not.
//!
//! Chat costs work (a model call, a stored turn), so it is rate-limited per token ([`ChatLimiter`]: a burst, then
//! a steady rate) across REST and the WebSocket alike; beyond it a request gets `429` with `Retry-After`.

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
pub const MAX_CHAT_CHARS: usize = crate::agent::MAX_QUESTION_CHARS;

/// A token bucket per token (client, operator): `burst` questions at once, then `per_minute`.
pub struct ChatLimiter {
    burst: f64,
    per_sec: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<Role, (f64, std::time::Instant)>>,
}

impl ChatLimiter {
    pub fn new(burst: u32, per_minute: u32) -> ChatLimiter {
        ChatLimiter {
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_minute.max(1)) / 60.0,
            buckets: Default::default(),
        }
    }

    /// Takes one question's worth for `role`, or says how long until there is one.
    pub fn take(&self, role: Role) -> Result<(), std::time::Duration> {
        let now = std::time::Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = buckets.entry(role).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_sec).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(std::time::Duration::from_secs_f64(
                (1.0 - *tokens) / self.per_sec,
            ))
        }
    }
}

/// The `429` for a chat over its rate.
pub fn rate_limited(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut resp = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many questions: ask again in {secs} s"),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, v);
    }
    resp
}

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
    if let Err(wait) = ctx.chat_limit.take(role) {
        return rate_limited(wait);
    }
    let asker = Asker {
        operator: role == Role::Operator,
        voice: req.voice,
    };
    ctx.bus.publish(crate::bus::asked("web", text));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate_per_token() {
        let l = ChatLimiter::new(3, 60);
        for _ in 0..3 {
            assert!(l.take(Role::Client).is_ok());
        }
        let wait = l.take(Role::Client).expect_err("the burst is spent");
        assert!(wait <= std::time::Duration::from_secs(1), "{wait:?}");
        assert!(
            l.take(Role::Operator).is_ok(),
            "each token has its own bucket"
        );
    }
}

//! Voice over the side port: `POST /api/v1/voice/listen` takes a WAV recording (what `jarvis listen --wav` sends,
//! and what a phone can record) and runs the whole voice exchange on it — wake word (or `?push_to_talk=true`),
//! end of speech, transcript, the agent asked as a voice, the spoken reply; `GET /api/v1/voice/replies/{id}.wav`
//! and `.ogg` (Ogg Opus, what a phone plays) serve the reply's audio while it is kept; `GET /api/v1/traces` the latency traces.
//!
//! A recording is at most [`MAX_WAV_BYTES`] (refused by its Content-Length before it is read) and two minutes
//! long; one exchange runs at a time (`409` while Jarvis listens or speaks); the chat rate limit applies.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::auth::Role;
use super::{error, WebContext};
use crate::voice::service::{ExchangeError, Start};
use crate::voice::wav;

/// The largest recording accepted: two minutes of 48 kHz stereo 16-bit WAV, with room for the header.
pub const MAX_WAV_BYTES: usize = 24 * 1024 * 1024;
/// The longest recording accepted, in seconds.
const MAX_SECONDS: f32 = 120.0;

pub async fn listen(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let start = match q.get("push_to_talk").map(String::as_str) {
        None | Some("false") => Start::WakeWord,
        Some("true") => Start::PushToTalk,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "push_to_talk is true or false",
            )
        }
    };
    if let Some(other) = q.keys().find(|k| *k != "push_to_talk") {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("unknown parameter `{other}`"),
        );
    }
    let Some(service) = ctx.voice.get().cloned() else {
        let status = ctx.state.get().voice.clone();
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "voice_unavailable",
            format!(
                "voice is {}{}",
                status.engine,
                status.detail.map(|d| format!(": {d}")).unwrap_or_default()
            ),
        );
    };
    let clip = match wav::read_from(std::io::Cursor::new(&body[..])) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_wav", e.to_string()),
    };
    if clip.seconds() > MAX_SECONDS {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_long",
            format!(
                "a recording of {:.0} s is over the {MAX_SECONDS:.0} s a question may take",
                clip.seconds()
            ),
        );
    }
    if let Err(wait) = ctx.chat_limit.take(role) {
        return super::chat::rate_limited(wait);
    }
    match service.converse_clip(clip.samples, start, "upload").await {
        Ok(e) => Json(json!({
            "transcript": e.transcript,
            "reply": e.reply,
            "confirmed": e.confirmed,
            "audio": e.reply_id.as_ref().map(|id| format!("/api/v1/voice/replies/{id}.wav")),
            "seconds": e.audio.len() as f32 / e.rate.max(1) as f32,
            "trace": e.trace,
        }))
        .into_response(),
        Err(ExchangeError::Busy) => error(
            StatusCode::CONFLICT,
            "busy",
            ExchangeError::Busy.to_string(),
        ),
        Err(e @ (ExchangeError::NoWakeWord | ExchangeError::NothingHeard)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "nothing_heard",
            e.to_string(),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "voice_failed",
            e.to_string(),
        ),
    }
}

pub async fn reply_audio(State(ctx): State<Arc<WebContext>>, Path(file): Path<String>) -> Response {
    let (id, ogg) = match (file.strip_suffix(".wav"), file.strip_suffix(".ogg")) {
        (Some(id), _) => (id, false),
        (_, Some(id)) => (id, true),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "replies are served as {id}.wav and {id}.ogg",
            )
        }
    };
    let Some(reply) = ctx.voice.get().and_then(|v| v.reply(id)) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such reply (only the last few are kept)",
        );
    };
    if !ogg {
        return ([(header::CONTENT_TYPE, "audio/wav")], reply.wav.clone()).into_response();
    }
    match tokio::task::spawn_blocking(move || reply.ogg().map(<[u8]>::to_vec)).await {
        Ok(Ok(bytes)) => {
            ([(header::CONTENT_TYPE, "audio/ogg; codecs=opus")], bytes).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "opus", e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "opus", e.to_string()),
    }
}

pub async fn traces(
    State(ctx): State<Arc<WebContext>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let limit = match q.get("limit").map(|s| s.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "bad_request", "limit is 1 to 500"),
    };
    let store = ctx.store.clone();
    match tokio::task::spawn_blocking(move || crate::voice::trace::latest(&store, limit)).await {
        Ok(Ok(traces)) => Json(json!({
            "summary": crate::voice::trace::summary(&traces),
            "traces": traces,
        }))
        .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
    }
}

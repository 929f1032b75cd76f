//! REST handlers: health, the current cluster snapshot, and event history from the store.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{error, WebContext};

pub const DEFAULT_EVENT_LIMIT: usize = 100;
pub const MAX_EVENT_LIMIT: usize = 1000;

pub async fn healthz(State(ctx): State<Arc<WebContext>>) -> Response {
    let world = ctx.state.get();
    let pve = if world.cluster.updated_at_ms == 0 {
        "waiting"
    } else if world.cluster.stale.is_some() {
        "stale"
    } else {
        "ok"
    };
    let mut body = json!({"status": "ok", "pve": pve});
    if !world.display.backend.is_empty() {
        body["display"] = json!(world.display);
    }
    if !world.faces.engine.is_empty() {
        body["faces"] = json!(world.faces);
    }
    if !world.voice.engine.is_empty() {
        body["voice"] = json!(world.voice);
    }
    Json(body).into_response()
}

pub async fn cluster(State(ctx): State<Arc<WebContext>>) -> Response {
    Json(ctx.state.get().cluster.clone()).into_response()
}

/// `GET /api/v1/events?since=MS&limit=N`: events at or after `since` (ms since epoch), oldest first; without
/// `since`, the latest `limit`.
pub async fn events(
    State(ctx): State<Arc<WebContext>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let since = match q.get("since").map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "since must be milliseconds since the Unix epoch",
            )
        }
    };
    let limit = match q.get("limit").map(|s| s.parse::<usize>()) {
        None => DEFAULT_EVENT_LIMIT,
        Some(Ok(v)) if (1..=MAX_EVENT_LIMIT).contains(&v) => v,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("limit must be 1..={MAX_EVENT_LIMIT}"),
            )
        }
    };
    if let Some(unknown) = q.keys().find(|k| *k != "since" && *k != "limit") {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("unknown parameter `{unknown}`"),
        );
    }
    let store = ctx.store.clone();
    match tokio::task::spawn_blocking(move || store.events(since, limit)).await {
        Ok(Ok(events)) => Json(json!({ "events": events })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

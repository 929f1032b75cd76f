//! The side port's presence and camera endpoints: `GET /api/v1/presence` (who is home, the recent comings and
//! goings, the cameras), `GET /api/v1/presence/timeline` (the timeline searched by person, kind, camera and a
//! time range in words — the same search as the `presence_timeline` tool) and `GET /api/v1/cameras`. Any token
//! reads them.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{error, WebContext};
use crate::tools::presence::{timeline_search, TimelineArgs};
use crate::tools::ToolError;
use crate::vision::timeline::Kind;

pub async fn presence(State(ctx): State<Arc<WebContext>>) -> Response {
    let w = ctx.state.get();
    Json(json!({ "presence": w.presence })).into_response()
}

pub async fn cameras(State(ctx): State<Arc<WebContext>>) -> Response {
    let w = ctx.state.get();
    Json(json!({ "cameras": w.presence.cameras })).into_response()
}

/// Query string of the timeline search: `kind` is a comma-separated list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    person: Option<String>,
    kind: Option<String>,
    when: Option<String>,
    camera: Option<String>,
    limit: Option<u32>,
    oldest_first: Option<bool>,
}

pub async fn timeline(
    State(ctx): State<Arc<WebContext>>,
    q: Result<Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
    };
    let too_long =
        |v: &Option<String>, max: usize| v.as_ref().is_some_and(|s| s.is_empty() || s.len() > max);
    if too_long(&q.person, 64) || too_long(&q.camera, 64) || too_long(&q.when, 100) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "person and camera are 1 to 64 characters, when 1 to 100",
        );
    }
    let kinds = match &q.kind {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for k in list.split(',').map(str::trim) {
                match Kind::parse(k) {
                    Some(k) => out.push(k),
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "bad_request",
                            format!("kind `{k}` is not one of arrived, left, seen, unknown"),
                        )
                    }
                }
            }
            Some(out)
        }
    };
    if q.limit.is_some_and(|l| !(1..=100).contains(&l)) {
        return error(StatusCode::BAD_REQUEST, "bad_request", "limit is 1 to 100");
    }
    let args = TimelineArgs {
        person: q.person,
        kinds,
        when: q.when,
        camera: q.camera,
        limit: q.limit,
        oldest_first: q.oldest_first,
    };
    match timeline_search(ctx.store.clone(), args).await {
        Ok(v) => Json(v).into_response(),
        Err(ToolError::InvalidArguments { message, .. }) => {
            error(StatusCode::BAD_REQUEST, "bad_when", message)
        }
        Err(ToolError::NotFound(m)) => error(StatusCode::NOT_FOUND, "not_found", m),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "failed", e.to_string()),
    }
}

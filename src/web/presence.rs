//! The side port's presence and camera endpoints: `GET /api/v1/presence` (who is home, the recent comings and
//! goings, the cameras), `GET /api/v1/presence/timeline` (the timeline searched by person, kind, camera and a
//! time range in words — the same search as the `presence_timeline` tool), `GET /api/v1/cameras`, a camera's
//! latest frame and an event's snapshot (from Frigate, checked to be an image, never cached here). Any token
//! reads them.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
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

/// `?height=` for a frame: 90 to 2160 pixels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameQuery {
    height: Option<u32>,
}

/// The Frigate camera behind one of Jarvis's camera names.
/// The camera, if Jarvis decodes it itself (RTSP, a file).
fn decoded_camera(ctx: &WebContext, camera: &str) -> Option<crate::vision::household::CameraView> {
    let w = ctx.state.get();
    w.presence
        .cameras
        .iter()
        .find(|c| c.info.name == camera && c.info.source != "frigate")
        .cloned()
}

fn frigate_camera(ctx: &WebContext, camera: &str) -> Result<String, Box<Response>> {
    let w = ctx.state.get();
    let Some(c) = w.presence.cameras.iter().find(|c| c.info.name == camera) else {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such camera",
        )));
    };
    match (&c.info.frigate_name, &ctx.frigate) {
        (Some(f), Some(_)) => Ok(f.clone()),
        _ => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "no_frames",
            format!("{camera}'s frames are not available here"),
        ))),
    }
}

fn jpeg(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

fn upstream(e: crate::vision::frigate::client::FrigateError) -> Response {
    use crate::vision::frigate::client::FrigateError;
    match e {
        FrigateError::Http {
            status: 404,
            message,
        } => error(StatusCode::NOT_FOUND, "not_found", message),
        other => error(StatusCode::BAD_GATEWAY, "frigate", other.to_string()),
    }
}

pub async fn latest(
    State(ctx): State<Arc<WebContext>>,
    Path(camera): Path<String>,
    q: Result<Query<FrameQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the only parameter is height",
        );
    };
    if q.height.is_some_and(|h| !(90..=2160).contains(&h)) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "height is 90 to 2160",
        );
    }
    if let Some(c) = decoded_camera(&ctx, &camera) {
        // A camera Jarvis decodes itself: its latest sampled frame, encoded here.
        let frames = ctx.tools.frames().clone();
        let encoded =
            tokio::task::spawn_blocking(move || frames.latest_jpeg(&camera, q.height)).await;
        return match encoded {
            Ok(Some(b)) => jpeg(b),
            _ => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_frames",
                format!(
                    "{} has no recent frame (its stream is {}{})",
                    c.info.name,
                    c.state,
                    c.detail.map(|d| format!(": {d}")).unwrap_or_default()
                ),
            ),
        };
    }
    let name = match frigate_camera(&ctx, &camera) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let Some(client) = &ctx.frigate else {
        return error(
            StatusCode::NOT_FOUND,
            "no_frames",
            "Frigate is not configured",
        );
    };
    match client.latest(&name, q.height).await {
        Ok(b) => jpeg(b),
        Err(e) => upstream(e),
    }
}

pub async fn event_snapshot(
    State(ctx): State<Arc<WebContext>>,
    Path((camera, id)): Path<(String, String)>,
) -> Response {
    let name = match frigate_camera(&ctx, &camera) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let Some(client) = &ctx.frigate else {
        return error(
            StatusCode::NOT_FOUND,
            "no_frames",
            "Frigate is not configured",
        );
    };
    if !crate::vision::frigate::client::valid_id(&id) {
        return error(StatusCode::BAD_REQUEST, "bad_request", "not an event id");
    }
    // The event must be this camera's: an id from one camera's list does not open another's.
    match client.event(&id).await {
        Ok(e) if e.camera == name => {}
        Ok(_) => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such event on this camera",
            )
        }
        Err(e) => return upstream(e),
    }
    match client.snapshot(&id, false, None).await {
        Ok(b) => jpeg(b),
        Err(e) => upstream(e),
    }
}

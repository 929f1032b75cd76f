//! REST for the tool registry: list and invoke tools (actor `api`), the operator's approvals, and the kill switch
//! (anyone authenticated may turn it on; only the operator may turn it off).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::auth::Role;
use super::{error, WebContext};
use crate::tools::gate::DecideError;
use crate::tools::{Outcome, ToolError};

/// The actor name calls through this API are audited under.
pub const ACTOR: &str = "api";

pub async fn list(State(ctx): State<Arc<WebContext>>) -> Response {
    Json(json!({ "tools": ctx.tools.list() })).into_response()
}

/// The JSON body (empty means `{}`), or a 400 response saying why not.
fn parse_body(body: &Bytes) -> Result<Value, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the body is not JSON: {e}"),
        ))
    })
}

pub async fn invoke(
    State(ctx): State<Arc<WebContext>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let args = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match ctx.tools.invoke(ACTOR, &name, args).await {
        Ok(outcome @ Outcome::Done { .. }) => Json(outcome).into_response(),
        Ok(outcome @ Outcome::PendingApproval { .. }) => {
            (StatusCode::ACCEPTED, Json(outcome)).into_response()
        }
        Err(e) => tool_error(&e),
    }
}

pub fn tool_error(e: &ToolError) -> Response {
    let (status, code) = match e {
        ToolError::UnknownTool(_) => (StatusCode::NOT_FOUND, "unknown_tool"),
        ToolError::InvalidArguments { .. } => (StatusCode::BAD_REQUEST, "invalid_arguments"),
        ToolError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ToolError::KillSwitch => (StatusCode::FORBIDDEN, "kill_switch"),
        ToolError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        ToolError::Failed(_) => (StatusCode::BAD_GATEWAY, "tool_failed"),
        ToolError::Unaudited(_) => (StatusCode::SERVICE_UNAVAILABLE, "unaudited"),
    };
    let mut body = json!({"error": code, "message": e.to_string()});
    if let ToolError::InvalidArguments { field, .. } = e {
        body["field"] = json!(field);
    }
    (status, Json(body)).into_response()
}

pub async fn approvals(State(ctx): State<Arc<WebContext>>) -> Response {
    match ctx.tools.pending_approvals() {
        Ok(list) => Json(json!({ "approvals": list })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
    }
}

/// `POST /api/v1/approvals/{id}` with `{"approve": true|false}` (default true). Operator only.
pub async fn decide(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if role != Role::Operator {
        return error(
            StatusCode::FORBIDDEN,
            "operator_only",
            "approvals are given with the operator token, never by the asking client",
        );
    }
    let approve = match parse_body(&body) {
        Ok(v) => match v.get("approve") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "approve must be true or false",
                )
            }
        },
        Err(r) => return *r,
    };
    match ctx.tools.decide(&id, approve) {
        Ok(a) => Json(json!({ "approval": a })).into_response(),
        Err(e @ DecideError::Store(_)) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string())
        }
        Err(e) => error(StatusCode::NOT_FOUND, "no_such_approval", e.to_string()),
    }
}

pub async fn kill_switch(State(ctx): State<Arc<WebContext>>) -> Response {
    Json(json!({ "on": ctx.tools.kill_switch() })).into_response()
}

/// `PUT /api/v1/killswitch` with `{"on": bool}`: anyone may pull the brake; only the operator may release it.
pub async fn set_kill_switch(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    body: Bytes,
) -> Response {
    let on = match parse_body(&body).map(|v| v.get("on").and_then(Value::as_bool)) {
        Ok(Some(on)) => on,
        Ok(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "send {\"on\": true} or {\"on\": false}",
            )
        }
        Err(r) => return *r,
    };
    if !on && role != Role::Operator {
        return error(
            StatusCode::FORBIDDEN,
            "operator_only",
            "only the operator may turn the kill switch off",
        );
    }
    match ctx.tools.set_kill_switch(on) {
        Ok(()) => Json(json!({ "on": on })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
    }
}

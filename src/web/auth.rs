//! Bearer-token auth for the side port, compared in constant time. Two tokens: the clients' (REST, WebSocket,
//! MCP) and the operator's (also approvals and lifting the kill switch), recorded as a [`Role`] on the request.
//! The WebSocket may also pass the token as `?access_token=`: browsers cannot set headers on a WebSocket.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::WebContext;

/// Who presented the token: an API/MCP client, or the operator (who alone approves and lifts the kill switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Operator,
}

pub async fn require_bearer(
    State(ctx): State<Arc<WebContext>>,
    mut req: Request,
    next: Next,
) -> Response {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let from_query = (req.uri().path() == "/ws")
        .then(|| {
            req.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("access_token=").map(str::to_string))
            })
        })
        .flatten();
    let presented = from_header.or(from_query);
    let role = presented.as_deref().and_then(|t| {
        if token_matches(t, ctx.operator_token.expose()) {
            Some(Role::Operator)
        } else if token_matches(t, ctx.token.expose()) {
            Some(Role::Client)
        } else {
            None
        }
    });
    if let Some(role) = role {
        if let Some(conn) = req.extensions().get::<Arc<super::conn::ConnMark>>() {
            conn.authenticated();
        }
        req.extensions_mut().insert(role);
        return next.run(req).await;
    }
    let message = if presented.is_some() {
        "wrong bearer token"
    } else {
        "missing Authorization: Bearer token"
    };
    let mut resp = super::error(StatusCode::UNAUTHORIZED, "unauthorized", message);
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// Constant-time for equal lengths; the length itself is not secret (tokens have a fixed format).
pub fn token_matches(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_match_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
        assert!(!token_matches("", "abc"));
    }
}

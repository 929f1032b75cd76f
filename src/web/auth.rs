//! Bearer-token auth for the side port, compared in constant time. The WebSocket may also pass the token as
//! `?access_token=` because browsers cannot set headers on a WebSocket.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::WebContext;

pub async fn require_bearer(
    State(ctx): State<Arc<WebContext>>,
    req: Request,
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
    let ok = presented
        .as_deref()
        .is_some_and(|t| token_matches(t, ctx.token.expose()));
    if ok {
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

//! The side port (axum, over TLS when configured: [`tls`]): `/healthz` without auth; everything else behind `Authorization: Bearer TOKEN`
//! ([`auth`]); REST under `/api/v1` ([`api`]); the live WebSocket at `/ws` ([`ws`]). Request bodies are capped.
//!
//! Architecture invariant: handlers read the state and the store and subscribe to the bus; they never reach into
//! pollers or other subsystems.

pub mod api;
pub mod auth;
pub mod chat;
pub mod conn;
pub mod faces;
pub mod mcp_sessions;
pub mod presence;
pub mod tls;
pub mod tools;
pub mod voice;
pub mod ws;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;

use crate::bus::Bus;
use crate::secret::Secret;
use crate::state::StateHandle;
use crate::store::Store;
use crate::tools::Registry;

/// What the handlers share.
pub struct WebContext {
    pub state: StateHandle,
    pub bus: Bus,
    pub store: Arc<Store>,
    pub tools: Arc<Registry>,
    pub agent: Arc<crate::agent::Agent>,
    /// The face engine, once loaded.
    pub faces: crate::app::FaceSlot,
    /// The voice service, once loaded.
    pub voice: crate::app::VoiceSlot,
    /// Frigate's API, when configured (camera frames and event snapshots).
    pub frigate: Option<Arc<crate::vision::frigate::client::FrigateClient>>,
    pub token: Secret,
    pub operator_token: Secret,
    /// Chat's rate per token, REST and WebSocket together.
    pub chat_limit: chat::ChatLimiter,
}

pub fn router(
    ctx: Arc<WebContext>,
    max_body_bytes: usize,
    mcp_settings: &crate::config::McpSettings,
    shutdown: CancellationToken,
) -> Router {
    let handler = crate::mcp::JarvisMcp::new(
        ctx.tools.clone(),
        ctx.state.clone(),
        mcp_settings.client_confirmation,
    );
    // Origin: any request that carries one must be listed (browsers send it; MCP clients do not), so a web page
    // in the operator's browser can never drive the endpoint, token or not.
    let mcp = StreamableHttpService::new(
        move || Ok(handler.clone()),
        mcp_sessions::CappedSessions::new(mcp_settings).into(),
        StreamableHttpServerConfig::default()
            .with_allowed_hosts(mcp_settings.allowed_hosts.iter().cloned())
            .with_allowed_origins(mcp_settings.allowed_origins.iter().cloned())
            .enforce_origin_validation()
            .with_max_request_body_bytes(max_body_bytes)
            .with_cancellation_token(shutdown.child_token()),
    );
    // /mcp enforces the body limit itself while the body streams (413 even when chunked); the outer layer would
    // turn an oversized chunked body into a 500 there.
    let mcp_routes = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(
            ctx.clone(),
            auth::require_bearer,
        ));
    let protected = Router::new()
        .route("/api/v1/cluster", get(api::cluster))
        .route("/api/v1/events", get(api::events))
        .route("/ws", get(ws::upgrade))
        .route("/api/v1/chat", axum::routing::post(chat::chat))
        .route("/api/v1/costs", get(chat::costs))
        .route("/api/v1/tools", get(tools::list))
        .route("/api/v1/tools/{name}", axum::routing::post(tools::invoke))
        .route("/api/v1/approvals", get(tools::approvals))
        .route("/api/v1/approvals/{id}", axum::routing::post(tools::decide))
        .route(
            "/api/v1/killswitch",
            get(tools::kill_switch).put(tools::set_kill_switch),
        )
        .route(
            "/api/v1/faces/people",
            get(faces::people).post(faces::create),
        )
        .route(
            "/api/v1/faces/people/{id}",
            axum::routing::delete(faces::delete),
        )
        .route(
            "/api/v1/faces/people/{id}/thumbnail.jpg",
            get(faces::thumbnail),
        )
        .route("/api/v1/faces/review", get(faces::review_queue))
        .route("/api/v1/presence", get(presence::presence))
        .route("/api/v1/presence/timeline", get(presence::timeline))
        .route("/api/v1/cameras", get(presence::cameras))
        .route("/api/v1/cameras/{camera}/latest.jpg", get(presence::latest))
        .route(
            "/api/v1/cameras/{camera}/events/{id}/snapshot.jpg",
            get(presence::event_snapshot),
        )
        .route("/api/v1/faces/sightings/{id}/crop.jpg", get(faces::crop))
        .route("/api/v1/voice/replies/{file}", get(voice::reply_audio))
        .route("/api/v1/traces", get(voice::traces))
        .layer(middleware::from_fn_with_state(
            ctx.clone(),
            auth::require_bearer,
        ));
    // Photo uploads have their own, larger cap (a Content-Length over it is refused unread).
    let uploads = Router::new()
        .route(
            "/api/v1/faces/people/{id}/photos",
            axum::routing::post(faces::enrol),
        )
        .route(
            "/api/v1/faces/identify",
            axum::routing::post(faces::identify),
        )
        .route(
            "/api/v1/faces/sightings",
            axum::routing::post(faces::sighting),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(faces::MAX_UPLOAD_BYTES))
        .layer(middleware::from_fn_with_state(
            ctx.clone(),
            auth::require_bearer,
        ));
    // Recordings for the voice pipeline: their own cap, refused by Content-Length before the body is read.
    let recordings = Router::new()
        .route("/api/v1/voice/listen", axum::routing::post(voice::listen))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(voice::MAX_WAV_BYTES))
        .layer(middleware::from_fn_with_state(
            ctx.clone(),
            auth::require_bearer,
        ));
    Router::new()
        .route("/healthz", get(api::healthz))
        .merge(protected)
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "not_found", "message": "no such endpoint"})),
            )
        })
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        .merge(mcp_routes)
        .merge(uploads)
        .merge(recordings)
        .with_state(ctx)
}

/// Serves (over TLS when `tls` is given) until `shutdown` is cancelled, then lets in-flight requests finish (see
/// [`conn`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: conn::ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    conn::serve(listener, app, limits, tls, shutdown).await
}

/// A JSON error body `{"error": code, "message": text}` with a status.
pub fn error(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
) -> axum::response::Response {
    (
        status,
        Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

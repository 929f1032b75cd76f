//! `FrigateClient`: Frigate's HTTP API as Jarvis uses it — events (with filters), an event's snapshot (cropped
//! or not), thumbnail and clip, a camera's latest frame, the recordings summary, review items, stats, config and
//! version. Both of Frigate's set-ups: the internal port (5000, no authentication) and the authenticated one
//! (8971, HTTPS with Frigate's own certificate, pinned or from a CA file): there the client logs in with the
//! configured user and password and sends the `frigate_token` it is given, logging in again once when Frigate
//! answers 401. Every answer is size-capped; every image is checked to be a JPEG or PNG before it is returned.

use std::time::Duration;

use reqwest::header::{HeaderValue, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use super::types::{Event, ReviewSegment};
use crate::secret::Secret;
use crate::tls::{self, Trust};

/// The largest JSON answer read (an events list with thumbnails is the biggest).
const MAX_JSON: usize = 16 * 1024 * 1024;
/// The largest image read.
pub const MAX_IMAGE: usize = 16 * 1024 * 1024;
/// The largest clip read.
pub const MAX_CLIP: usize = 256 * 1024 * 1024;

/// `[frigate]`.
#[derive(Debug, Clone)]
pub struct FrigateSettings {
    /// `http://host:5000` (internal, no login) or `https://host:8971` (login); without `/api`.
    pub url: String,
    /// User and password for the authenticated port.
    pub login: Option<(String, Secret)>,
    /// How an `https` Frigate's certificate is trusted (its own is self-signed: pin it).
    pub trust: Option<Trust>,
    pub timeout: Duration,
    /// How often events are polled over HTTP when MQTT is not configured or not connected.
    pub poll_every: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum FrigateError {
    #[error("Frigate at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("Frigate did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Frigate refused the login: {0}")]
    Login(String),
    #[error("Frigate answered {status}: {message}")]
    Http { status: u16, message: String },
    #[error("Frigate's answer could not be read: {0}")]
    Decode(String),
    #[error("Frigate's answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("Frigate's {what} is not a JPEG or PNG")]
    NotAnImage { what: String },
    #[error("Frigate client set-up failed: {0}")]
    Setup(String),
}

impl FrigateError {
    /// Whether Frigate itself is down (as opposed to a bad request or answer).
    pub fn is_down(&self) -> bool {
        matches!(
            self,
            FrigateError::Unreachable { .. } | FrigateError::Timeout(_)
        )
    }
}

/// Filters of `GET /api/events`.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub cameras: Vec<String>,
    pub labels: Vec<String>,
    pub zones: Vec<String>,
    /// Seconds since the epoch.
    pub after: Option<f64>,
    pub before: Option<f64>,
    pub has_snapshot: Option<bool>,
    pub in_progress: Option<bool>,
    pub limit: Option<u32>,
    /// `date_asc`, `date_desc` (Frigate's default), `score_asc`, `score_desc`.
    pub sort: Option<String>,
}

pub struct FrigateClient {
    http: reqwest::Client,
    base: String,
    settings: FrigateSettings,
    token: Mutex<Option<String>>,
}

impl FrigateClient {
    pub fn new(settings: FrigateSettings) -> Result<FrigateClient, FrigateError> {
        let mut b = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .no_proxy();
        if let Some(trust) = &settings.trust {
            let tls = tls::client_config(trust).map_err(|e| FrigateError::Setup(e.to_string()))?;
            b = b.tls_backend_preconfigured(tls);
        }
        let http = b.build().map_err(|e| FrigateError::Setup(e.to_string()))?;
        let base = settings.url.trim_end_matches('/').to_string();
        Ok(FrigateClient {
            http,
            base,
            settings,
            token: Mutex::new(None),
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn settings(&self) -> &FrigateSettings {
        &self.settings
    }

    pub async fn version(&self) -> Result<String, FrigateError> {
        let bytes = self.get("/version", &[], MAX_JSON).await?;
        Ok(String::from_utf8_lossy(&bytes).trim().to_string())
    }

    pub async fn config(&self) -> Result<Value, FrigateError> {
        self.json("/config", &[]).await
    }

    pub async fn stats(&self) -> Result<Value, FrigateError> {
        self.json("/stats", &[]).await
    }

    pub async fn events(&self, q: &EventQuery) -> Result<Vec<Event>, FrigateError> {
        let mut query: Vec<(&str, String)> = vec![("include_thumbnails", "0".into())];
        let list = |v: &[String]| v.join(",");
        if !q.cameras.is_empty() {
            query.push(("cameras", list(&q.cameras)));
        }
        if !q.labels.is_empty() {
            query.push(("labels", list(&q.labels)));
        }
        if !q.zones.is_empty() {
            query.push(("zones", list(&q.zones)));
        }
        if let Some(a) = q.after {
            query.push(("after", format!("{a}")));
        }
        if let Some(b) = q.before {
            query.push(("before", format!("{b}")));
        }
        if let Some(h) = q.has_snapshot {
            query.push(("has_snapshot", u8::from(h).to_string()));
        }
        if let Some(p) = q.in_progress {
            query.push(("in_progress", u8::from(p).to_string()));
        }
        if let Some(l) = q.limit {
            query.push(("limit", l.to_string()));
        }
        if let Some(s) = &q.sort {
            query.push(("sort", s.clone()));
        }
        self.json("/events", &query).await
    }

    pub async fn event(&self, id: &str) -> Result<Event, FrigateError> {
        self.json(&format!("/events/{}", segment(id)?), &[]).await
    }

    /// The event's snapshot; `crop` cuts it to the object's box.
    pub async fn snapshot(
        &self,
        id: &str,
        crop: bool,
        height: Option<u32>,
    ) -> Result<Vec<u8>, FrigateError> {
        let mut q = vec![("crop", u8::from(crop).to_string())];
        if let Some(h) = height {
            q.push(("height", h.to_string()));
        }
        let bytes = self
            .get(
                &format!("/events/{}/snapshot.jpg", segment(id)?),
                &q,
                MAX_IMAGE,
            )
            .await?;
        image_checked(bytes, "snapshot")
    }

    pub async fn thumbnail(&self, id: &str) -> Result<Vec<u8>, FrigateError> {
        let bytes = self
            .get(
                &format!("/events/{}/thumbnail.jpg", segment(id)?),
                &[],
                MAX_IMAGE,
            )
            .await?;
        image_checked(bytes, "thumbnail")
    }

    pub async fn clip(&self, id: &str) -> Result<Vec<u8>, FrigateError> {
        self.get(&format!("/events/{}/clip.mp4", segment(id)?), &[], MAX_CLIP)
            .await
    }

    /// The camera's latest frame, scaled to `height` if given.
    pub async fn latest(&self, camera: &str, height: Option<u32>) -> Result<Vec<u8>, FrigateError> {
        let q: Vec<(&str, String)> = height
            .map(|h| ("height", h.to_string()))
            .into_iter()
            .collect();
        let bytes = self
            .get(&format!("/{}/latest.jpg", segment(camera)?), &q, MAX_IMAGE)
            .await?;
        image_checked(bytes, "latest frame")
    }

    pub async fn recordings_summary(&self, camera: &str) -> Result<Value, FrigateError> {
        self.json(&format!("/{}/recordings/summary", segment(camera)?), &[])
            .await
    }

    pub async fn reviews(
        &self,
        cameras: &[String],
        after: Option<f64>,
        limit: u32,
    ) -> Result<Vec<ReviewSegment>, FrigateError> {
        let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if !cameras.is_empty() {
            q.push(("cameras", cameras.join(",")));
        }
        if let Some(a) = after {
            q.push(("after", format!("{a}")));
        }
        self.json("/review", &q).await
    }

    async fn json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, FrigateError> {
        let bytes = self.get(path, query, MAX_JSON).await?;
        serde_json::from_slice(&bytes).map_err(|e| FrigateError::Decode(format!("{path}: {e}")))
    }

    /// GET `/api{path}`, logging in first (and once more on a 401) where a login is configured.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        cap: usize,
    ) -> Result<Vec<u8>, FrigateError> {
        let url = format!("{}/api{path}", self.base);
        for attempt in 0..2 {
            let mut req = self.http.request(Method::GET, &url).query(query);
            if self.settings.login.is_some() {
                let token = self.token(attempt > 0).await?;
                if let Ok(v) = HeaderValue::from_str(&format!("frigate_token={token}")) {
                    req = req.header(COOKIE, v);
                }
            }
            let resp = req.send().await.map_err(|e| self.transport(e))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && self.settings.login.is_some() && attempt == 0 {
                continue;
            }
            let bytes = read_capped(resp, cap).await.map_err(|e| match e {
                ReadError::TooLarge => FrigateError::TooLarge(cap),
                ReadError::Transport(e) => self.transport(e),
            })?;
            if !status.is_success() {
                return Err(FrigateError::Http {
                    status: status.as_u16(),
                    message: message_of(&bytes),
                });
            }
            return Ok(bytes);
        }
        Err(FrigateError::Login(
            "Frigate refused the token it had just given".into(),
        ))
    }

    /// The session token: the one held, or a new login.
    async fn token(&self, renew: bool) -> Result<String, FrigateError> {
        let mut held = self.token.lock().await;
        if let (Some(t), false) = (held.as_ref(), renew) {
            return Ok(t.clone());
        }
        let Some((user, password)) = &self.settings.login else {
            return Err(FrigateError::Login("no user configured".into()));
        };
        let resp = self
            .http
            .post(format!("{}/api/login", self.base))
            .json(&serde_json::json!({ "user": user, "password": password.expose() }))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status();
        let cookie = resp
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("frigate_token="))
            .map(|v| v.split(';').next().unwrap_or("").to_string());
        let body = read_capped(resp, 64 * 1024).await.unwrap_or_default();
        match (status.is_success(), cookie) {
            (true, Some(t)) if !t.is_empty() => {
                *held = Some(t.clone());
                Ok(t)
            }
            (true, _) => Err(FrigateError::Login(
                "Frigate gave no frigate_token cookie".into(),
            )),
            (false, _) => Err(FrigateError::Login(format!(
                "{} {}",
                status.as_u16(),
                message_of(&body)
            ))),
        }
    }

    fn transport(&self, e: reqwest::Error) -> FrigateError {
        if e.is_timeout() {
            FrigateError::Timeout(self.settings.timeout)
        } else {
            FrigateError::Unreachable {
                url: self.base.clone(),
                message: root_cause(&e),
            }
        }
    }
}

/// Whether `s` can be a Frigate id or camera name: 1–128 letters, digits, `.`, `_` and `-`, not `.` or `..`.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && s != "."
        && s != ".."
}

/// A path segment from outside (an event id, a camera name), checked by [`valid_id`].
fn segment(s: &str) -> Result<&str, FrigateError> {
    if valid_id(s) {
        Ok(s)
    } else {
        Err(FrigateError::Decode(format!(
            "{:?} is not an id Frigate gives",
            s.chars().take(40).collect::<String>()
        )))
    }
}

fn image_checked(bytes: Vec<u8>, what: &str) -> Result<Vec<u8>, FrigateError> {
    let jpeg = bytes.starts_with(&[0xFF, 0xD8, 0xFF]);
    let png = bytes.starts_with(b"\x89PNG\r\n\x1a\n");
    if jpeg || png {
        Ok(bytes)
    } else {
        Err(FrigateError::NotAnImage { what: what.into() })
    }
}

/// Frigate's error bodies are `{"success": false, "message": "..."}` or `{"detail": ...}`.
fn message_of(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => v["message"]
            .as_str()
            .map(str::to_string)
            .or_else(|| v.get("detail").map(|d| d.to_string()))
            .unwrap_or_else(|| v.to_string().chars().take(200).collect()),
        Err(_) => String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n as usize > cap) {
        return Err(ReadError::TooLarge);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Transport)? {
        if out.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

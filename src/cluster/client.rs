//! The Proxmox VE API client: API-token auth, TLS pinned to a fingerprint or a CA file, typed calls, power
//! actions that return a parsed UPID, and task following. Every failure is a [`PveError`] saying what went wrong
//! in the operator's terms (unreachable, certificate mismatch, token refused, PVE's own message, timeout...).

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::api::{
    ClusterStatusItem, Disk, GuestStatus, NodeStatus, Resource, Snapshot, StorageStatus,
    TaskListItem, TaskStatus, Version,
};
use super::model::GuestKind;
use super::upid::{Upid, UpidError};
use crate::secret::Secret;
use crate::tls::{self, FingerprintMismatch, Trust, TrustError};

/// Largest answer body accepted from PVE (a big cluster's `/cluster/resources` is well under 1 MB).
const MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PveError {
    #[error("Proxmox VE at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("Proxmox VE presented a different certificate: {0}")]
    TlsMismatch(String),
    #[error("TLS with Proxmox VE failed: {0}")]
    Tls(String),
    #[error("Proxmox VE refused the API token (HTTP {status}): {message}")]
    AuthRefused { status: u16, message: String },
    #[error("Proxmox VE answered HTTP {status} for {path}: {message}")]
    Http {
        status: u16,
        path: String,
        message: String,
    },
    #[error("Proxmox VE did not answer {path} within {after_ms} ms")]
    Timeout { path: String, after_ms: u64 },
    #[error("cannot decode Proxmox VE's answer to {path}: {message}")]
    Decode { path: String, message: String },
    #[error(transparent)]
    BadUpid(#[from] UpidError),
    #[error("task {upid} still running after {after_ms} ms")]
    TaskTimeout { upid: String, after_ms: u64 },
    #[error("PVE client set-up: {0}")]
    Setup(String),
}

impl PveError {
    /// A short category for state and metrics (`unreachable`, `tls`, `auth`, `http`, `timeout`, `decode`...).
    pub fn category(&self) -> &'static str {
        match self {
            PveError::Unreachable { .. } => "unreachable",
            PveError::TlsMismatch(_) | PveError::Tls(_) => "tls",
            PveError::AuthRefused { .. } => "auth",
            PveError::Http { .. } => "http",
            PveError::Timeout { .. } | PveError::TaskTimeout { .. } => "timeout",
            PveError::Decode { .. } | PveError::BadUpid(_) => "decode",
            PveError::Setup(_) => "setup",
        }
    }
}

impl From<TrustError> for PveError {
    fn from(e: TrustError) -> PveError {
        PveError::Setup(e.to_string())
    }
}

/// A PVE API token: `USER@REALM!TOKENID` and its secret.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: String,
    pub secret: Secret,
}

/// Everything needed to talk to one PVE endpoint.
#[derive(Debug, Clone)]
pub struct PveEndpoint {
    /// `https://host:8006` (the client adds `/api2/json`).
    pub url: String,
    pub token: ApiToken,
    pub trust: Trust,
    pub timeout: Duration,
}

/// Power actions on a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    Start,
    Shutdown,
    Stop,
    Reboot,
    Suspend,
    Resume,
}

impl PowerAction {
    pub const ALL: [PowerAction; 6] = [
        PowerAction::Start,
        PowerAction::Shutdown,
        PowerAction::Stop,
        PowerAction::Reboot,
        PowerAction::Suspend,
        PowerAction::Resume,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::Start => "start",
            PowerAction::Shutdown => "shutdown",
            PowerAction::Stop => "stop",
            PowerAction::Reboot => "reboot",
            PowerAction::Suspend => "suspend",
            PowerAction::Resume => "resume",
        }
    }

    pub fn parse(s: &str) -> Option<PowerAction> {
        PowerAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Clone)]
pub struct PveClient {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

impl PveClient {
    pub fn new(endpoint: &PveEndpoint) -> Result<PveClient, PveError> {
        let tls = tls::client_config(&endpoint.trust)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(endpoint.timeout)
            .connect_timeout(endpoint.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .map_err(|e| PveError::Setup(e.to_string()))?;
        let mut auth = HeaderValue::from_str(&format!(
            "PVEAPIToken={}={}",
            endpoint.token.id,
            endpoint.token.secret.expose()
        ))
        .map_err(|_| {
            PveError::Setup("the API token contains characters not allowed in a header".into())
        })?;
        auth.set_sensitive(true);
        let base = format!("{}/api2/json", endpoint.url.trim_end_matches('/'));
        Ok(PveClient {
            http,
            base,
            auth,
            timeout: endpoint.timeout,
        })
    }

    pub async fn version(&self) -> Result<Version, PveError> {
        self.get("/version", &[]).await
    }

    /// A cheap "is PVE answering?": `GET /version` within `limit` (shorter than the client's own timeout).
    pub async fn probe(&self, limit: Duration) -> Result<(), PveError> {
        match tokio::time::timeout(limit, self.version()).await {
            Ok(answer) => answer.map(|_| ()),
            Err(_) => Err(PveError::Timeout {
                path: "/version".into(),
                after_ms: limit.as_millis() as u64,
            }),
        }
    }

    pub async fn cluster_status(&self) -> Result<Vec<ClusterStatusItem>, PveError> {
        self.get("/cluster/status", &[]).await
    }

    pub async fn cluster_resources(&self, kind: Option<&str>) -> Result<Vec<Resource>, PveError> {
        match kind {
            Some(k) => self.get("/cluster/resources", &[("type", k)]).await,
            None => self.get("/cluster/resources", &[]).await,
        }
    }

    pub async fn node_status(&self, node: &str) -> Result<NodeStatus, PveError> {
        self.get(&format!("/nodes/{}/status", seg(node)), &[]).await
    }

    pub async fn node_disks(&self, node: &str) -> Result<Vec<Disk>, PveError> {
        self.get(&format!("/nodes/{}/disks/list", seg(node)), &[])
            .await
    }

    pub async fn guest_status(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
    ) -> Result<GuestStatus, PveError> {
        self.get(
            &format!(
                "/nodes/{}/{}/{vmid}/status/current",
                seg(node),
                kind.as_str()
            ),
            &[],
        )
        .await
    }

    pub async fn storage_status(
        &self,
        node: &str,
        storage: &str,
    ) -> Result<StorageStatus, PveError> {
        self.get(
            &format!("/nodes/{}/storage/{}/status", seg(node), seg(storage)),
            &[],
        )
        .await
    }

    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus, PveError> {
        self.get(
            &format!(
                "/nodes/{}/tasks/{}/status",
                seg(&upid.node),
                seg(upid.as_str())
            ),
            &[],
        )
        .await
    }

    /// Finished tasks of a node that ended in error, started at or after `since` (Unix seconds).
    pub async fn failed_tasks(
        &self,
        node: &str,
        since: u64,
    ) -> Result<Vec<TaskListItem>, PveError> {
        let since = since.to_string();
        self.get(
            &format!("/nodes/{}/tasks", seg(node)),
            &[("errors", "1"), ("since", &since), ("limit", "50")],
        )
        .await
    }

    /// Recent tasks of a node, newest first (`errors_only`: only those that failed).
    pub async fn tasks(
        &self,
        node: &str,
        limit: u32,
        errors_only: bool,
    ) -> Result<Vec<TaskListItem>, PveError> {
        let limit = limit.to_string();
        let errors = if errors_only { "1" } else { "0" };
        self.get(
            &format!("/nodes/{}/tasks", seg(node)),
            &[("limit", &limit), ("errors", errors)],
        )
        .await
    }

    pub async fn snapshots(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
    ) -> Result<Vec<Snapshot>, PveError> {
        self.get(
            &format!("/nodes/{}/{}/{vmid}/snapshot", seg(node), kind.as_str()),
            &[],
        )
        .await
    }

    pub async fn create_snapshot(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        name: &str,
        description: &str,
    ) -> Result<Upid, PveError> {
        let path = format!("/nodes/{}/{}/{vmid}/snapshot", seg(node), kind.as_str());
        self.task(
            Method::POST,
            &path,
            &[("snapname", name), ("description", description)],
        )
        .await
    }

    pub async fn rollback_snapshot(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        name: &str,
    ) -> Result<Upid, PveError> {
        let path = format!(
            "/nodes/{}/{}/{vmid}/snapshot/{}/rollback",
            seg(node),
            kind.as_str(),
            seg(name)
        );
        self.task(Method::POST, &path, &[]).await
    }

    pub async fn delete_snapshot(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        name: &str,
    ) -> Result<Upid, PveError> {
        let path = format!(
            "/nodes/{}/{}/{vmid}/snapshot/{}",
            seg(node),
            kind.as_str(),
            seg(name)
        );
        self.task(Method::DELETE, &path, &[]).await
    }

    /// `reboot` or `shutdown` a whole node (PVE answers at once; the node goes away shortly after).
    pub async fn node_command(&self, node: &str, command: &str) -> Result<(), PveError> {
        let path = format!("/nodes/{}/status", seg(node));
        let _: Option<serde_json::Value> = self
            .send(Method::POST, &path, &[], &[("command", command)])
            .await?;
        Ok(())
    }

    /// Sends a power action; PVE answers with the task id at once, the work goes on in the task.
    pub async fn power(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        action: PowerAction,
    ) -> Result<Upid, PveError> {
        let path = format!(
            "/nodes/{}/{}/{vmid}/status/{}",
            seg(node),
            kind.as_str(),
            action.as_str()
        );
        self.task(Method::POST, &path, &[]).await
    }

    /// Polls a task until it stops, or gives up after `limit`.
    pub async fn follow_task(
        &self,
        upid: &Upid,
        every: Duration,
        limit: Duration,
    ) -> Result<TaskStatus, PveError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let status = self.task_status(upid).await?;
            if !status.is_running() {
                return Ok(status);
            }
            if tokio::time::Instant::now() + every > deadline {
                return Err(PveError::TaskTimeout {
                    upid: upid.to_string(),
                    after_ms: limit.as_millis() as u64,
                });
            }
            tokio::time::sleep(every).await;
        }
    }

    /// A call that starts a PVE task and answers with its UPID.
    async fn task(
        &self,
        method: Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Upid, PveError> {
        let text: String = self.send(method, path, &[], form).await?;
        Ok(text.parse()?)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, PveError> {
        self.send(Method::GET, path, query, &[]).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Result<T, PveError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method, &url)
            .header(AUTHORIZATION, self.auth.clone());
        if !query.is_empty() {
            req = req.query(query);
        }
        if !form.is_empty() {
            req = req.form(form);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(path, e))?;
        let status = resp.status();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let body = read_capped(resp)
            .await
            .map_err(|e| self.transport_error(path, e))?;
        if !status.is_success() {
            let message = pve_message(status, reason.as_deref(), &body);
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PveError::AuthRefused {
                    status: status.as_u16(),
                    message,
                },
                _ => PveError::Http {
                    status: status.as_u16(),
                    path: path.to_string(),
                    message,
                },
            });
        }
        let Some(body) = body else {
            return Err(PveError::Decode {
                path: path.into(),
                message: format!("body larger than {MAX_BODY} bytes"),
            });
        };
        serde_json::from_slice::<Envelope<T>>(&body)
            .map(|e| e.data)
            .map_err(|e| PveError::Decode {
                path: path.to_string(),
                message: e.to_string(),
            })
    }

    fn transport_error(&self, path: &str, e: reqwest::Error) -> PveError {
        if e.is_timeout() {
            return PveError::Timeout {
                path: path.to_string(),
                after_ms: self.timeout.as_millis() as u64,
            };
        }
        if let Some(mismatch) = find_in_chain::<FingerprintMismatch>(&e) {
            return PveError::TlsMismatch(mismatch.to_string());
        }
        if let Some(tls) = find_in_chain::<rustls::Error>(&e) {
            return PveError::Tls(tls.to_string());
        }
        PveError::Unreachable {
            url: self.base.clone(),
            message: chain_text(&e),
        }
    }
}

/// Reads the body, or `None` if it is larger than [`MAX_BODY`].
async fn read_capped(mut resp: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if buf.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
}

/// PVE puts its message in the HTTP reason phrase (`500 VM 101 already running`) and parameter errors in
/// `{"errors": {...}}`.
fn pve_message(status: StatusCode, reason: Option<&str>, body: &Option<Vec<u8>>) -> String {
    let mut parts = Vec::new();
    match reason {
        Some(r) if !r.is_empty() => parts.push(r.to_string()),
        _ => parts.push(status.canonical_reason().unwrap_or("error").to_string()),
    }
    if let Some(errors) = body
        .as_deref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("errors").cloned())
        .and_then(|e| e.as_object().cloned())
    {
        for (field, msg) in errors {
            parts.push(format!("{field}: {}", msg.as_str().unwrap_or("invalid")));
        }
    }
    parts.join("; ")
}

/// Percent-encodes one path segment (UPIDs contain `:`, `@` and `!`).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Walks an error's source chain, looking inside `io::Error`s too (their `source()` skips the wrapped error).
fn find_in_chain<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(found) = find_in_chain::<T>(inner) {
                    return Some(found);
                }
            }
        }
        if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) =
            err.downcast_ref::<rustls::Error>()
        {
            if let Some(t) =
                (other.0.as_ref() as &(dyn std::error::Error + 'static)).downcast_ref::<T>()
            {
                return Some(t);
            }
        }
        cur = err.source();
    }
    None
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            seg("UPID:pve:1:jarvis@pve!kiosk:"),
            "UPID%3Apve%3A1%3Ajarvis%40pve%21kiosk%3A"
        );
        assert_eq!(seg("local-lvm"), "local-lvm");
    }

    #[test]
    fn pve_messages_combine_reason_and_parameter_errors() {
        let body = Some(br#"{"data":null,"errors":{"vmid":"invalid format"}}"#.to_vec());
        let m = pve_message(
            StatusCode::BAD_REQUEST,
            Some("Parameter verification failed."),
            &body,
        );
        assert_eq!(m, "Parameter verification failed.; vmid: invalid format");
        assert_eq!(
            pve_message(StatusCode::INTERNAL_SERVER_ERROR, None, &None),
            "Internal Server Error"
        );
    }

    #[test]
    fn power_actions_round_trip() {
        for a in PowerAction::ALL {
            assert_eq!(PowerAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(PowerAction::parse("destroy"), None);
    }
}

//! Helpers shared by the integration tests: a simulator with a client pinned to it, an app wired to it, and
//! small HTTP and WebSocket clients for the side port.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use jarvis::app::App;
use jarvis::cluster::client::{ApiToken, PveClient, PveEndpoint};
use jarvis::cluster::poller::PollSettings;
use jarvis::config::{Config, WebSettings};
use jarvis::secret::Secret;
use jarvis::sim::{SimOptions, Simulator, DEMO_TOKEN_ID};
use jarvis::tls::Trust;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub const PVE_SECRET: &str = "0f6f2f5e-7a1b-4c2d-9e3f-simulated";
pub const WEB_TOKEN: &str = "test-token-0123456789abcdef";
pub const OPERATOR_TOKEN: &str = "operator-token-0123456789abcdef";

pub async fn sim() -> Simulator {
    jarvis::tls::install_crypto_provider();
    Simulator::start(SimOptions {
        task_time_scale: 0.1,
        ..SimOptions::loopback(PVE_SECRET)
    })
    .await
    .expect("simulator starts")
}

pub fn endpoint(sim: &Simulator) -> PveEndpoint {
    PveEndpoint {
        url: sim.url(),
        token: ApiToken {
            id: DEMO_TOKEN_ID.into(),
            secret: Secret::new(PVE_SECRET),
        },
        trust: Trust::Pinned(sim.identity.fingerprint()),
        timeout: Duration::from_secs(2),
    }
}

pub fn client(sim: &Simulator) -> PveClient {
    PveClient::new(&endpoint(sim)).expect("client builds")
}

/// Fast polling so tests see changes within a fraction of a second.
pub fn fast_poll() -> PollSettings {
    PollSettings {
        resources: Duration::from_millis(100),
        node_status: Duration::from_millis(500),
        disks: Duration::from_millis(500),
        tasks: Duration::from_millis(200),
        quorum: Duration::from_millis(500),
        burst: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        ..PollSettings::default()
    }
}

pub fn config(sim: &Simulator, dir: &Path) -> Config {
    Config {
        pve: endpoint(sim),
        poll: fast_poll(),
        web: WebSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: Secret::new(WEB_TOKEN),
            operator_token: Secret::new(OPERATOR_TOKEN),
            max_body_bytes: 4096,
            mcp: Default::default(),
            // Tests chat far more than a person: the chat rate is tested on its own (cli::a_chat_flood…).
            limits: jarvis::web::conn::ConnLimits {
                chat_burst: 10_000,
                chat_per_minute: 10_000,
                ..Default::default()
            },
            tls: None,
        },
        store_path: dir.join("jarvis.db"),
        log_level: "info".into(),
        tools: jarvis::tools::ToolSettings {
            wol: Vec::new(),
            follow_limit: Duration::from_secs(20),
            docker_host: Some(jarvis::sim::executor::DOCKER_HOST.to_string()),
            files: jarvis::files::FileSettings {
                download_dir: dir.join("downloads"),
                roots: vec![dir.join("share")],
                ..Default::default()
            },
            projects: [(
                "jarvis".to_string(),
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            )]
            .into_iter()
            .collect(),
            protected: Vec::new(),
            faces: Default::default(),
        },
        ssh: None,
        kiosk: Default::default(),
        persona: Default::default(),
        history_tokens: jarvis::agent::DEFAULT_HISTORY_TOKENS,
        llm: None,
        claude: None,
        route: Default::default(),
        prices: Default::default(),
        // No models here: the face engine says it is unavailable, at once (tests/it/faces.rs loads them).
        faces: Default::default(),
        presence: Default::default(),
        cameras: Vec::new(),
        frigate: None,
        mqtt: None,
        voice: Default::default(),
    }
}

pub async fn app(sim: &Simulator, dir: &Path) -> App {
    App::start(&config(sim, dir), "test")
        .await
        .expect("app starts")
}

/// Waits up to `limit` for `f` to hold, checking every 20 ms.
/// Waits until the app's poller has seen the cluster's nodes (at most 5 s).
pub async fn cluster_seen(app: &App) {
    let state = app.state.clone();
    assert!(
        eventually(Duration::from_secs(5), || !state
            .get()
            .cluster
            .nodes
            .is_empty())
        .await,
        "the poller saw no nodes"
    );
}

pub async fn eventually<F: FnMut() -> bool>(limit: Duration, mut f: F) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

pub fn http() -> reqwest::Client {
    jarvis::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}

pub async fn get_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let resp = http()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(WEB_TOKEN)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws_connect(addr: SocketAddr) -> Ws {
    let mut req = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {WEB_TOKEN}").parse().expect("header"),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connects");
    ws
}

/// Next text message as JSON, or `None` after `limit`.
pub async fn ws_next(ws: &mut Ws, limit: Duration) -> Option<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// Reads until a message satisfies `pred` (or `limit` passes).
pub async fn ws_until(
    ws: &mut Ws,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = ws_next(ws, left).await?;
        if pred(&msg) {
            return Some(msg);
        }
    }
}

/// Same as [`client`]; named for readability in contract tests.
pub fn http_pve(sim: &Simulator) -> PveClient {
    client(sim)
}

/// A raw HTTP client that trusts exactly the simulator's certificate (pinned), for hand-made requests.
pub fn http_pinned(sim: &Simulator) -> reqwest::Client {
    let tls =
        jarvis::tls::client_config(&Trust::Pinned(sim.identity.fingerprint())).expect("tls config");
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .expect("http client")
}

/// The Python of the test-peer venv that `scripts/setup` makes (official MCP SDK and friends).
pub fn peer_python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("JARVIS_PEER_PYTHON") {
        return p.into();
    }
    let cache = std::env::var_os("JARVIS_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/jarvis"))
        })
        .expect("HOME or JARVIS_CACHE_DIR");
    let python = cache.join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup (it makes the test-peer venv)",
        python.display()
    );
    python
}

/// Writes a secret file as an operator should: readable by its owner only (mode 0600).
pub fn write_secret(path: &Path, value: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("create secret file");
    f.write_all(value.as_bytes()).expect("write secret file");
}

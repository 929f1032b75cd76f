//! The agent against a real llama-server: llama-cpp-python's OpenAI-compatible server (built by `scripts/setup`)
//! with SmolLM2-135M-Instruct from `models/MODELS.toml`. The model is tiny, so this checks the plumbing, not the
//! answers: real streaming SSE to the REST and WebSocket surfaces, the ledger, a server killed with -9 (a clear
//! error, nothing of the failed turn kept) and the same server back on the same port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use jarvis::agent::llm::openai::OpenAiSettings;
use jarvis::agent::llm::RetryPolicy;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::util;

fn cache_dir() -> PathBuf {
    std::env::var_os("JARVIS_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/jarvis")))
        .expect("HOME or JARVIS_CACHE_DIR")
}

/// llama-server on `port`, killed when dropped.
struct LlamaServer(Child);

impl LlamaServer {
    fn start(port: u16) -> LlamaServer {
        let python = cache_dir().join("llama/venv/bin/python");
        let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("models/cache/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(
            python.exists() && model.exists(),
            "llama-cpp-python or the test model is missing: run scripts/setup ({} / {})",
            python.display(),
            model.display()
        );
        let child = Command::new(python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--n_ctx",
                "2048",
                "--n_threads",
                "2",
                "--chat_format",
                "chatml",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama-server");
        LlamaServer(child)
    }

    async fn ready(port: u16) {
        let start = Instant::now();
        let client = util::http();
        while start.elapsed() < Duration::from_secs(90) {
            if let Ok(r) = client
                .get(format!("http://127.0.0.1:{port}/v1/models"))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("llama-server did not come up on port {port}");
    }

    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn chat(addr: SocketAddr, text: &str) -> Value {
    util::http()
        .post(format!("http://{addr}/api/v1/chat"))
        .bearer_auth(util::WEB_TOKEN)
        .json(&json!({ "text": text }))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_llama_server_streams_to_every_surface_dies_and_comes_back() {
    let port = free_port();
    let server = LlamaServer::start(port);
    LlamaServer::ready(port).await;

    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = util::config(&sim, dir.path());
    config.llm = Some(OpenAiSettings {
        url: format!("http://127.0.0.1:{port}"),
        model: "smollm2-135m".into(),
        api_key: None,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        retry: RetryPolicy {
            attempts: 2,
            base: Duration::from_millis(100),
            max_wait: Duration::from_secs(1),
        },
        max_tokens: 24,
    });
    let app = jarvis::app::App::start(&config, "test")
        .await
        .expect("starts");
    let addr = app.side_port().expect("side port");
    util::cluster_seen(&app).await;

    // REST: a whole answer from the real model, and its call in the ledger. This server reports no usage in its
    // stream, so the counts are Jarvis's estimate, and marked so.
    let r = chat(addr, "tell me a joke about hard disks").await;
    assert_eq!(r["engine"], "local", "{r}");
    let said = r["text"].as_str().unwrap_or_default();
    assert!(
        !said.trim().is_empty() && !said.starts_with("My apologies"),
        "{r}"
    );
    let costs = util::get_json(addr, "/api/v1/costs").await.1;
    let call = &costs["recent"][0];
    assert_eq!(call["provider"], "local", "{costs}");
    assert!(call["input"].as_u64().unwrap_or(0) > 0, "{costs}");
    assert!(call["output"].as_u64().unwrap_or(0) > 0, "{costs}");
    assert_eq!(call["estimated"], true, "{costs}");
    assert_eq!(call["cost_usd"], 0.0, "a local model costs nothing");

    // WebSocket: the answer arrives in pieces as the model writes it, then `chat_done`.
    let mut ws = util::ws_connect(addr).await;
    ws.send(Message::Text(
        json!({"type": "chat", "id": "w1", "text": "say something about the weather"})
            .to_string()
            .into(),
    ))
    .await
    .expect("send");
    let mut pieces = 0;
    let done = loop {
        let m = util::ws_next(&mut ws, Duration::from_secs(120))
            .await
            .expect("a message");
        match m["type"].as_str() {
            Some("chat_delta") if m["id"] == "w1" => pieces += 1,
            Some("chat_done") if m["id"] == "w1" => break m,
            _ => {}
        }
    };
    assert_eq!(done["engine"], "local", "{done}");
    assert!(pieces >= 2, "streamed in {pieces} pieces: {done}");

    // The server dies: a clear error, and the failed turn is not kept.
    let turns_before = app.agent.conversation().await.turns.len();
    server.kill();
    let r = chat(addr, "tell me another one").await;
    let said = r["text"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("My apologies") && said.contains("cannot reach"),
        "{r}"
    );
    assert_eq!(app.agent.conversation().await.turns.len(), turns_before);

    // And comes back on the same port: Jarvis carries on without a restart.
    let _server = LlamaServer::start(port);
    LlamaServer::ready(port).await;
    let r = chat(addr, "tell me another one").await;
    assert_eq!(r["engine"], "local", "{r}");
    assert!(
        !r["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("My apologies"),
        "{r}"
    );
    assert_eq!(app.agent.conversation().await.turns.len(), turns_before + 2);
    app.shutdown().await;
}

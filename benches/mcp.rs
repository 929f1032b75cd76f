//! MCP `tools/call` on a tier-0 tool served from state: Jarvis (`jarvis demo`, rmcp on the side port, its own
//! process) against a Python MCP server
//! (official SDK, `MCPServer`) exposing a tool of the same shape, driven by the same client in the same run: a
//! small Rust client speaking streamable HTTP (2025-11-25 sessions) over keep-alive connections.
//! Latency: sequential calls, p50/p99. Throughput: 8 concurrent callers for a fixed time. Then the cost of the
//! side port's TLS: the same calls to a second `jarvis demo` serving HTTPS (client pinned to its certificate),
//! and a new connection per request (`/healthz`, so the handshake is the cost) over HTTP and HTTPS.
//! Run: `cargo bench --bench mcp` (needs the test-peer venv from scripts/setup). Results: docs/BENCHMARKS.md.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const LATENCY_CALLS: usize = 2000;
const THROUGHPUT_SECS: u64 = 5;
const CONCURRENCY: usize = 8;

struct Target {
    name: &'static str,
    url: String,
    token: Option<&'static str>,
    /// HTTPS, trusting exactly this certificate.
    pin: Option<jarvis::tls::Fingerprint>,
}

fn client(pin: Option<&jarvis::tls::Fingerprint>, pooled: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(if pooled { 64 } else { 0 });
    if let Some(fp) = pin {
        let tls = jarvis::tls::client_config(&jarvis::tls::Trust::Pinned(fp.clone())).expect("tls");
        b = b.tls_backend_preconfigured(tls);
    }
    b.build().expect("client")
}

/// One MCP session: initialize, then `tools/call` as often as asked.
#[derive(Clone)]
struct Session {
    http: reqwest::Client,
    url: String,
    token: Option<&'static str>,
    id: String,
}

impl Session {
    async fn open(t: &Target) -> Session {
        let http = client(t.pin.as_ref(), true);
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}});
        let mut req = http
            .post(&t.url)
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(tok) = t.token {
            req = req.bearer_auth(tok);
        }
        let resp = req.send().await.expect("initialize");
        let id = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("session id")
            .to_string();
        let _ = resp.text().await;
        let s = Session {
            http,
            url: t.url.clone(),
            token: t.token,
            id,
        };
        s.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        s
    }

    async fn post(&self, body: Value) -> String {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(tok) = self.token {
            req = req.bearer_auth(tok);
        }
        req.send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body")
    }

    async fn call(&self, n: u64) -> usize {
        self.call_body(n).await.len()
    }

    async fn call_body(&self, n: u64) -> String {
        let body = self
            .post(json!({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "cluster_status", "arguments": {}}}))
            .await;
        assert!(
            body.contains("\"result\"") && !body.contains("\"isError\":true"),
            "bad answer: {body}"
        );
        body
    }
}

/// The keys of a `tools/call` result and the kinds of its content blocks: both servers must answer alike.
fn shape(body: &str) -> String {
    let json = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(body))
        .find_map(|l| {
            serde_json::from_str::<Value>(l.trim())
                .ok()
                .filter(|v| v.get("result").is_some())
        })
        .expect("a JSON-RPC result");
    let result = &json["result"];
    let mut keys: Vec<&str> = result
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.retain(|k| *k != "isError");
    keys.sort();
    let kinds: Vec<&str> = result["content"]
        .as_array()
        .map(|c| c.iter().filter_map(|b| b["type"].as_str()).collect())
        .unwrap_or_default();
    format!("{keys:?} {kinds:?}")
}

async fn measure(t: &Target) -> (f64, f64, f64, usize, String) {
    let s = Session::open(t).await;
    let first = s.call_body(0).await;
    let (bytes, shape) = (first.len(), shape(&first));
    for i in 0..100 {
        s.call(i).await;
    }
    eprintln!("{}: warmed up", t.name);
    let mut lat = Vec::with_capacity(LATENCY_CALLS);
    for i in 0..LATENCY_CALLS {
        let t0 = Instant::now();
        s.call(i as u64).await;
        lat.push(t0.elapsed());
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    eprintln!("{}: latency measured", t.name);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(THROUGHPUT_SECS);
    let mut workers = Vec::new();
    for w in 0..CONCURRENCY {
        let s = Session::open(t).await;
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let mut n = w as u64 * 1_000_000;
            while Instant::now() < deadline {
                s.call(n).await;
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let rate = done.load(Ordering::Relaxed) as f64 / THROUGHPUT_SECS as f64;
    (pct(0.5), pct(0.99), rate, bytes, shape)
}

fn python() -> std::path::PathBuf {
    let cache = std::env::var_os("JARVIS_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/jarvis"))
        })
        .expect("HOME");
    cache.join("venv/bin/python")
}

/// Starts the release `jarvis demo` as its own process; returns it, its side port and token.
fn start_jarvis(data: &std::path::Path, tls: &[&std::path::Path]) -> (Child, String, String) {
    use std::io::BufRead;
    let mut command = Command::new(env!("CARGO_BIN_EXE_jarvis"));
    command
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--no-cameras",
            "--data-dir",
        ])
        .arg(data);
    if let [cert, key] = tls {
        command
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
    }
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("jarvis demo");
    let stdout = child.stdout.take().expect("stdout");
    let (mut web, mut token) = (None, None);
    for line in std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["side", "port", url] => web = Some(url.to_string()),
            ["token", t] => token = Some(t.to_string()),
            _ => {}
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    (
        child,
        web.expect("side port in the banner"),
        token.expect("token in the banner"),
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        jarvis::tls::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut jarvis_proc, web, token) = start_jarvis(dir.path(), &[]);
        let token: &'static str = Box::leak(token.into_boxed_str());
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The same payload for the Python tool: Jarvis's own answer.
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        let answer: Value = http
            .post(format!("{web}/api/v1/tools/cluster_status"))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
            .expect("cluster_status")
            .json()
            .await
            .expect("json");
        let payload = serde_json::to_string_pretty(&answer["result"]).expect("json");
        let payload_file = dir.path().join("payload.json");
        std::fs::write(&payload_file, &payload).expect("write");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let mut py: Child = Command::new(python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/py_mcp_server.py"))
            .arg(port.to_string())
            .arg(&payload_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python MCP server (run scripts/setup first)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let targets = [
            Target { name: "jarvis (rmcp)", url: format!("{web}/mcp"), token: Some(token), pin: None },
            Target { name: "python MCPServer", url: format!("http://127.0.0.1:{port}/mcp"), token: None, pin: None },
        ];
        let mut rates = Vec::new();
        let mut shapes = Vec::new();
        for t in &targets {
            let (p50, p99, rate, bytes, shape) = measure(t).await;
            println!("{:<18} tools/call cluster_status ({bytes} B answer, {shape}): p50 {p50:.3} ms, p99 {p99:.3} ms, {rate:.0} calls/s with {CONCURRENCY} callers", t.name);
            rates.push(rate);
            shapes.push(shape);
        }
        assert_eq!(shapes[0], shapes[1], "both servers must answer with the same content shape");
        println!("throughput ratio jarvis/python: {:.1}x", rates[0] / rates[1]);
        let _ = py.kill();
        let _ = py.wait();

        // The side port's TLS: the same calls to a Jarvis serving HTTPS, and the handshake's cost.
        let tls_dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (tls_dir.path().join("side-port.crt"), tls_dir.path().join("side-port.key"));
        let made = jarvis::web::tls::ensure_self_signed(&cert, &key, &["localhost".into()], (jarvis::time::now_ms() / 1000) as i64)
            .expect("a pair");
        let fp = made.fingerprint().clone();
        let (mut tls_proc, tls_web, tls_token) = start_jarvis(tls_dir.path(), &[&cert, &key]);
        let tls_token: &'static str = Box::leak(tls_token.into_boxed_str());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let over_tls = Target { name: "jarvis over HTTPS", url: format!("{tls_web}/mcp"), token: Some(tls_token), pin: Some(fp.clone()) };
        let (p50, p99, rate, bytes, _) = measure(&over_tls).await;
        println!("{:<18} tools/call cluster_status ({bytes} B answer): p50 {p50:.3} ms, p99 {p99:.3} ms, {rate:.0} calls/s with {CONCURRENCY} callers", over_tls.name);
        println!("throughput ratio HTTPS/HTTP: {:.2}x", rate / rates[0]);
        let plain_ms = cold(&client(None, false), &format!("{web}/healthz")).await;
        let tls_ms = cold(&client(Some(&fp), false), &format!("{tls_web}/healthz")).await;
        println!("a new connection per request (/healthz, {COLD_REQUESTS} sequential): HTTP p50 {:.3} ms, p99 {:.3} ms; HTTPS p50 {:.3} ms, p99 {:.3} ms", plain_ms.0, plain_ms.1, tls_ms.0, tls_ms.1);
        let _ = tls_proc.kill();
        let _ = tls_proc.wait();
        let _ = jarvis_proc.kill();
        let _ = jarvis_proc.wait();
    });
}

const COLD_REQUESTS: usize = 500;

/// p50 and p99 (ms) of requests that each open a new connection (the client keeps none idle).
async fn cold(http: &reqwest::Client, url: &str) -> (f64, f64) {
    let mut lat = Vec::with_capacity(COLD_REQUESTS);
    for _ in 0..COLD_REQUESTS {
        let t0 = Instant::now();
        let resp = http.get(url).send().await.expect("healthz");
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await;
        lat.push(t0.elapsed());
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    (pct(0.5), pct(0.99))
}

//! The agent's figures, against the demo homelab in the same process:
//! - the offline fast path: text in, reply out, through the intent parser, the tool registry (audit row included),
//!   the persona and the conversation's store write; also the parser alone;
//! - building a turn's context (memories, system prompt, window) with 200 turns of history;
//! - the time Jarvis adds between a provider's first token leaving the (scripted, loopback) server and the piece
//!   reaching the chat surface, against a bare HTTP client reading the same stream in the same run.
//!
//! Run: `cargo bench --bench agent` (optionally `-- SAMPLES`). Results and method: docs/BENCHMARKS.md.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use jarvis::agent::llm::openai::{OpenAi, OpenAiSettings};
use jarvis::agent::{intent, Agent, Asker, ChatBackend, ChatDelta};
use jarvis::demo::{Demo, DemoOptions};
use jarvis::store::conversations::{self, NewTurn};
use jarvis::store::memory::{self, MemoryTier};

fn percentiles(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (n={})",
        at(0.5),
        at(0.99),
        at(1.0),
        v.len()
    )
}

fn main() {
    let samples: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("jarvis-bench-agent-{}", std::process::id()));
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let demo = rt
        .block_on(Demo::start(DemoOptions {
            listen: loopback,
            sim_listen: loopback,
            data_dir: dir.clone(),
            poll: Default::default(),
            limits: Default::default(),
            models: std::path::PathBuf::from("/nonexistent"),
            cameras: false,
            voice_devices: ("default".into(), "default".into()),
            tls: jarvis::demo::DemoTls::Off,
        }))
        .expect("demo");
    while demo.app.state.get().cluster.nodes.is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let world = demo.app.state.get();
    for text in [
        "what's the status of the cluster?",
        "how hot is agent one",
        "shut down jelyfin",
    ] {
        let times: Vec<f64> = (0..samples)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(intent::parse(text, &world));
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        println!("parse only   {text:?}: {}", percentiles(times));
    }
    for text in [
        "what's the status of the cluster?",
        "how is pve doing",
        "is frigate running?",
        "how much storage is left",
    ] {
        let times: Vec<f64> = rt.block_on(async {
            let mut v = Vec::with_capacity(samples);
            for _ in 0..samples {
                let t = Instant::now();
                let r = demo.app.agent.reply(text, Asker::default()).await;
                v.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(r.engine, "offline");
            }
            v
        });
        println!("text → reply {text:?}: {}", percentiles(times));
    }
    context_build(&rt, &demo, samples);
    first_token(&rt, &demo, samples.min(500));
    rt.block_on(demo.shutdown());
    let _ = std::fs::remove_dir_all(dir);
}

/// 200 turns of history (questions, tool calls with their JSON results, answers) and 100 memories in the store,
/// reloaded by a fresh agent; then the context for a new question, built again and again.
fn context_build(rt: &tokio::runtime::Runtime, demo: &Demo, samples: usize) {
    let store = demo.app.store.clone();
    let now = jarvis::time::now_ms();
    let conv = conversations::start(&store, now).expect("start");
    let result = format!(
        "{{\"result\": {}}}",
        serde_json::json!({"node": "pve", "cpu": 0.31, "mem": "12.8 / 31 GiB", "guests": (0..20).map(|i| format!("guest-{i}")).collect::<Vec<_>>()})
    );
    let mut turns = Vec::new();
    for i in 0..50 {
        let t = |role, content: String, calls: &str, id: Option<&str>| NewTurn {
            ts_ms: now,
            role,
            content,
            tool_calls: calls.to_string(),
            tool_call_id: id.map(str::to_string),
        };
        turns.push(t(
            "user",
            format!("how is node pve doing today, and is backup job {i} finished?"),
            "[]",
            None,
        ));
        turns.push(t(
            "assistant",
            String::new(),
            r#"[{"id":"c1","name":"node_status","arguments":"{\"node\":\"pve\"}"}]"#,
            None,
        ));
        turns.push(t("tool", result.clone(), "[]", Some("c1")));
        turns.push(t("assistant", format!("pve is well, sir: CPU at 31 percent, 12.8 of 31 GiB in use, and backup job {i} finished at 02:14 without complaint."), "[]", None));
    }
    conversations::append(&store, conv, &turns).expect("append");
    for i in 0..100 {
        let tier = [
            MemoryTier::Session,
            MemoryTier::Short,
            MemoryTier::Long,
            MemoryTier::Permanent,
        ][i % 4];
        memory::remember(
            &store,
            tier,
            &format!(
                "Note {i}: the backup of guest {} runs at 0{}:00 on node agent{}",
                100 + i,
                i % 6,
                i % 3
            ),
            now,
        )
        .expect("remember");
    }
    for (label, budget) in [
        (
            "default budget (3000 tokens)",
            jarvis::agent::DEFAULT_HISTORY_TOKENS,
        ),
        ("all 200 turns in the window", 1_000_000),
    ] {
        let agent = Agent::new(demo.app.tools.clone(), Default::default(), store.clone())
            .with_history_tokens(budget);
        let conv = rt.block_on(agent.conversation());
        assert_eq!(conv.turns.len(), 200);
        let mut sent = 0;
        let times: Vec<f64> = (0..samples)
            .map(|i| {
                let t = Instant::now();
                let (system, msgs) = agent.context_for(
                    &conv,
                    &format!("when does the backup of guest {} run?", 100 + i % 100),
                    false,
                );
                let e = t.elapsed().as_secs_f64() * 1000.0;
                sent = msgs.len();
                std::hint::black_box(system);
                e
            })
            .collect();
        println!(
            "context, 200 turns + 100 memories, {label}: {} ({sent} messages sent, prompt rebuilt {} times)",
            percentiles(times),
            agent.prompt_rebuilds()
        );
    }
}

/// A scripted OpenAI-compatible server whose first token leaves after 20 ms; the time it left is recorded.
async fn token_server() -> (String, Arc<Mutex<Vec<Instant>>>) {
    use axum::response::Response;
    let sent: Arc<Mutex<Vec<Instant>>> = Default::default();
    let log = sent.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let log = log.clone();
            async move {
                let first = r#"data: {"choices":[{"index":0,"delta":{"content":"Good"}}]}"#;
                let rest = concat!(
                    r#"data: {"choices":[{"index":0,"delta":{"content":" evening, sir."},"finish_reason":"stop"}]}"#,
                    "\n\n",
                    r#"data: {"choices":[],"usage":{"prompt_tokens":900,"completion_tokens":4}}"#,
                    "\n\ndata: [DONE]\n\n"
                );
                let stream = futures_util::stream::iter([format!("{first}\n\n"), rest.to_string()]).enumerate().then(move |(i, chunk)| {
                    let log = log.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(if i == 0 { 20 } else { 2 })).await;
                        if i == 0 {
                            log.lock().expect("lock").push(Instant::now());
                        }
                        Ok::<_, std::io::Error>(chunk)
                    }
                });
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(axum::body::Body::from_stream(stream))
                    .expect("response")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // As llama-server does: no Nagle delay on the server's small writes, which would measure TCP, not Jarvis.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), sent)
}

/// First token: server → Jarvis's chat surface (the kiosk's `ChatBackend`), and server → a bare reqwest client
/// reading the same stream, alternately, in the same run.
fn first_token(rt: &tokio::runtime::Runtime, demo: &Demo, samples: usize) {
    let (url, sent) = rt.block_on(token_server());
    let provider = OpenAi::new(OpenAiSettings {
        url: url.clone(),
        model: "bench".into(),
        api_key: None,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        retry: Default::default(),
        max_tokens: 64,
    })
    .expect("provider");
    let dir = std::env::temp_dir().join(format!("jarvis-bench-first-token-{}", std::process::id()));
    let store = Arc::new(jarvis::store::Store::open(&dir.join("j.db")).expect("store"));
    // A history budget no run fills, so no fold request goes to the same server in the background.
    let agent = Arc::new(
        Agent::new(demo.app.tools.clone(), Default::default(), store)
            .with_local(Arc::new(provider))
            .with_history_tokens(10_000_000),
    );
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "bench", "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    let (mut jarvis, mut bare) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for i in 0..samples + 20 {
            let mut rx = agent.ask("tell me something cheerful".into());
            let got = loop {
                match rx.recv().await {
                    Some(ChatDelta::Text(t)) if !t.is_empty() => break Instant::now(),
                    Some(_) => continue,
                    None => panic!("no token reached the surface"),
                }
            };
            while rx.recv().await.is_some() {}
            let left = *sent.lock().expect("lock").last().expect("sent");
            let resp = client
                .post(format!("{url}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .expect("bare request");
            let mut stream = resp.bytes_stream();
            let raw = loop {
                match stream.next().await {
                    Some(Ok(b)) if b.windows(5).any(|w| w == b"data:") => break Instant::now(),
                    Some(Ok(_)) => continue,
                    other => panic!("bare stream: {other:?}"),
                }
            };
            while stream.next().await.is_some() {}
            let raw_left = *sent.lock().expect("lock").last().expect("sent");
            if i >= 20 {
                jarvis.push(got.duration_since(left).as_secs_f64() * 1000.0);
                bare.push(raw.duration_since(raw_left).as_secs_f64() * 1000.0);
            }
        }
    });
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mj, mb) = (median(&jarvis), median(&bare));
    println!(
        "first token → Jarvis's chat surface: {}",
        percentiles(jarvis.clone())
    );
    println!(
        "first token → bare reqwest client:   {}",
        percentiles(bare.clone())
    );
    println!(
        "overhead Jarvis adds (median difference): {:.3} ms; ratio {:.2}",
        mj - mb,
        mj / mb
    );
    let _ = std::fs::remove_dir_all(dir);
}

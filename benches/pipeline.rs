//! Change-to-WebSocket latency (not to the screen: the kiosk's render is not in this path): a guest changes state
//! in the simulated PVE, and the time until the matching event arrives on a side-port WebSocket client is measured. The change is made at a random moment, so every phase of
//! the poll cycle is sampled. Run: `cargo bench --bench pipeline` (optionally `-- SAMPLES INTERVAL_MS...`).
//! Results and method: docs/BENCHMARKS.md.

#[path = "support/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use jarvis::app::App;
use jarvis::cluster::poller::PollSettings;
use jarvis::sim::model::Power;
use jarvis::sim::{SimOptions, Simulator};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-token-0123456789abcdef";

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let samples: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(100);
    let intervals: Vec<u64> = if args.len() > 1 {
        args[1..].iter().filter_map(|s| s.parse().ok()).collect()
    } else {
        vec![PollSettings::default().resources.as_millis() as u64, 2000]
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for interval in intervals {
        rt.block_on(run(samples, interval));
    }
}

async fn run(samples: usize, interval_ms: u64) {
    jarvis::tls::install_crypto_provider();
    let secret = "bench-secret";
    let sim = Simulator::start(SimOptions::loopback(secret))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let poll = PollSettings {
        resources: Duration::from_millis(interval_ms),
        ..PollSettings::default()
    };
    let config = common::config(&sim, secret, dir.path(), poll, TOKEN);
    let app = App::start(&config, "bench").await.expect("app");
    let mut req = format!("ws://{}/ws", app.side_port().expect("side port"))
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("ws");
    // Let the first poll land.
    tokio::time::sleep(Duration::from_millis(interval_ms + 500)).await;

    let mut latencies = Vec::with_capacity(samples);
    let mut running = false;
    for i in 0..samples {
        let jitter = common::spread_ms(interval_ms, i as u64);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        running = !running;
        let target = if running {
            Power::Running
        } else {
            Power::Stopped
        };
        let want = if running { "running" } else { "stopped" };
        let t0 = Instant::now();
        sim.shared
            .model_now()
            .force_power(125, target, jarvis::time::now_ms());
        loop {
            match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: serde_json::Value = serde_json::from_str(&t).expect("json");
                    if v["data"]["kind"] == "guest_state_changed"
                        && v["data"]["vmid"] == 125
                        && v["data"]["to"] == want
                    {
                        latencies.push(t0.elapsed());
                        break;
                    }
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("websocket ended: {other:?}"),
            }
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
    };
    let mean =
        latencies.iter().map(Duration::as_secs_f64).sum::<f64>() / latencies.len() as f64 * 1000.0;
    println!(
        "change→WebSocket at resources poll {interval_ms} ms, {samples} changes: median {:.0} ms, mean {mean:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    app.shutdown().await;
    sim.stop().await;
}

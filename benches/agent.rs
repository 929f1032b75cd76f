//! The offline fast path: text in, reply out, through the intent parser, the tool registry (audit row included)
//! and the persona, against the demo homelab. Also the parser alone. Run: `cargo bench --bench agent`
//! (optionally `-- SAMPLES`). Results and method: docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use jarvis::agent::{intent, Asker};
use jarvis::demo::{Demo, DemoOptions};

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
    rt.block_on(demo.shutdown());
    let _ = std::fs::remove_dir_all(dir);
}

//! Change-to-frame latency on the kiosk: a guest changes state in the simulated PVE (the demo homelab, default
//! poll), and the time until a rendered 1080p frame of the HUD shows it is measured — poll, state, bridge, the
//! guest row's model, and the software render. The UI thread runs as a kiosk's does: it takes the bridge's
//! updates as they come and renders when something changed (checked every millisecond here, where Slint's event
//! loop would wake at once). The change is made at a spread-out moment, so every phase of the poll cycle is
//! sampled. Run: `cargo bench --bench kiosk_frame` (optionally `-- SAMPLES`). Results: docs/BENCHMARKS.md.

#[path = "support/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use jarvis::demo::{Demo, DemoOptions};
use jarvis::kiosk::snapshot::HeadlessUi;
use jarvis::kiosk::ui::ClusterAdapter;
use jarvis::kiosk::{attach, drain, KioskContext, UiThread};
use jarvis::sim::model::Power;
use slint::{ComponentHandle, Model};

const VMID: i32 = 125;

fn main() {
    let samples: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let poll = jarvis::cluster::poller::PollSettings::default();
    let interval_ms = poll.resources.as_millis() as u64;
    let demo = rt
        .block_on(Demo::start(DemoOptions {
            listen: loopback,
            sim_listen: loopback,
            data_dir: dir.path().to_path_buf(),
            poll: poll.clone(),
            limits: Default::default(),
            models: std::path::PathBuf::from("/nonexistent"),
            cameras: false,
            voice_devices: ("default".into(), "default".into()),
            tls: jarvis::demo::DemoTls::Off,
        }))
        .expect("demo starts");
    let (ui, rx) = UiThread::queue();
    let ctx = KioskContext {
        ui,
        ..KioskContext::new(
            &demo.app,
            rt.handle().clone(),
            Vec::new(),
            (poll.thresholds.warn_pct, poll.thresholds.crit_pct),
        )
    };
    let hud = HeadlessUi::new(1920, 1080, 1.0).expect("headless UI");
    let stop = attach(&hud.app, &ctx);
    let status_shown = |hud: &HeadlessUi| {
        hud.app
            .global::<ClusterAdapter>()
            .get_all_guests()
            .iter()
            .find(|g| g.vmid == VMID)
            .map(|g| g.status.to_string())
    };
    // The first poll, and a first full frame.
    let deadline = Instant::now() + Duration::from_secs(15);
    while status_shown(&hud).is_none() && Instant::now() < deadline {
        drain(&rx);
        std::thread::sleep(Duration::from_millis(5));
    }
    hud.render();

    let mut latencies = Vec::with_capacity(samples);
    let mut renders = Vec::with_capacity(samples);
    let mut running = status_shown(&hud).as_deref() == Some("running");
    for i in 0..samples {
        // Idle like a kiosk for a spread-out time: take updates, render what changed.
        let idle_until =
            Instant::now() + Duration::from_millis(common::spread_ms(interval_ms, i as u64));
        while Instant::now() < idle_until {
            drain(&rx);
            hud.render_if_needed();
            std::thread::sleep(Duration::from_millis(1));
        }
        running = !running;
        let (target, want) = if running {
            (Power::Running, "running")
        } else {
            (Power::Stopped, "stopped")
        };
        let t0 = Instant::now();
        demo.sim
            .shared
            .model_now()
            .force_power(VMID as u32, target, jarvis::time::now_ms());
        loop {
            drain(&rx);
            if status_shown(&hud).as_deref() == Some(want) {
                let r0 = Instant::now();
                let frame = hud.render_if_needed();
                renders.push(r0.elapsed());
                assert!(frame.is_some(), "the change must cause a redraw");
                latencies.push(t0.elapsed());
                break;
            }
            hud.render_if_needed();
            if t0.elapsed() > Duration::from_secs(30) {
                panic!("the HUD never showed guest {VMID} as {want}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    stop.cancel();
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
    };
    println!(
        "change→kiosk frame (1080p, software renderer) at resources poll {interval_ms} ms, {samples} changes: \
         median {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms; the frame itself: median {:.1} ms, max {:.1} ms",
        pct(&mut latencies, 0.5),
        pct(&mut latencies, 0.9),
        pct(&mut latencies, 0.99),
        pct(&mut latencies, 1.0),
        pct(&mut renders, 0.5),
        pct(&mut renders, 1.0),
    );
    rt.block_on(demo.shutdown());
}

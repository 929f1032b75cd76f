//! RTSP decoding: Jarvis's camera reader (`vision::rtsp::stream`: FFmpeg demux and decode of every packet, a
//! sampled picture scaled to RGB with swscale at the sampling rate, the motion measure) against the `ffmpeg` CLI
//! decoding the same stream (`-f null`), both reading a real RTSP server on loopback (gst-rtsp-server, the tests'
//! peer) that streams a 1080p H.264 clip at 25 fps. CPU is measured as CPU time over the same wall-clock
//! window: the reader's thread clock for Jarvis, the child's rusage for the CLI (its default threads, and
//! `-threads 1`), in alternating rounds. Memory per camera: the process's RSS with 0, 1 and 2 readers running.
//! Needs ffmpeg, python3-gi with gst-rtsp-server (scripts/setup) and the clip (scripts/make-clips --bench).
//! Run: `cargo bench --bench rtsp` (`-- SECONDS ROUNDS`). Results and method: docs/BENCHMARKS.md.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jarvis::vision::rtsp::stream::{self, Input, News, StreamSettings};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec on the stack.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, (v.tv_usec * 1000) as u32);
    t(u.ru_utime) + t(u.ru_stime)
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Server(
    std::process::Child,
    #[allow(dead_code)] std::process::ChildStdin,
);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server(clip: &std::path::Path) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = Command::new("/usr/bin/python3")
        .arg(root().join("tests/peers/rtsp_server.py"))
        .args(["--port", &port.to_string(), "--clip"])
        .arg(clip)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the RTSP server (scripts/setup)");
    let stdin = child.stdin.take().expect("stdin");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    assert_eq!(line.trim(), "ready");
    (Server(child, stdin), format!("rtsp://127.0.0.1:{port}/cam"))
}

/// Jarvis's reader from its first picture until the first sample at or after `secs`: (share of a core over that
/// window, pictures sampled).
fn jarvis_reader(url: &str, secs: f64, sample_fps: f32) -> (f64, u32) {
    let settings = StreamSettings {
        input: Input::Rtsp {
            url_with_secret: url.to_string(),
        },
        sample_every: Duration::from_secs_f32(1.0 / sample_fps),
        connect_timeout: Duration::from_secs(15),
        stall_timeout: Duration::from_secs(5),
        picture_timeout: Duration::from_secs(10),
        max_side: 1280,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut started: Option<(Instant, Duration)> = None;
    let mut samples = 0u32;
    let mut result = 0.0;
    let e = stream::play(&settings, &stop, |news| {
        match news {
            News::Live { .. } => started = Some((Instant::now(), thread_cpu())),
            News::Sample(_) => samples += 1,
        }
        match started {
            Some((t, cpu)) if t.elapsed().as_secs_f64() >= secs => {
                result = 100.0 * (thread_cpu() - cpu).as_secs_f64() / t.elapsed().as_secs_f64();
                false
            }
            _ => true,
        }
    });
    assert!(started.is_some(), "the reader never went live: {e}");
    (result, samples)
}

/// The ffmpeg CLI decoding the same stream for `secs` (its own clock starts at its first frame, near enough:
/// the window is cut with -t on the output).
fn ffmpeg_cli(url: &str, secs: f64, threads: Option<u32>) -> Duration {
    let before = children_cpu();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "fatal", "-nostdin", "-rtsp_transport", "tcp"]);
    if let Some(t) = threads {
        cmd.args(["-threads", &t.to_string()]);
    }
    let status = cmd
        .args(["-i", url, "-t", &secs.to_string(), "-an", "-f", "null", "-"])
        .status()
        .expect("ffmpeg (scripts/setup)");
    assert!(status.success(), "ffmpeg failed");
    children_cpu() - before
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(15.0);
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let clip = root().join("models/cache/clips/bench-1080p.mp4");
    assert!(
        clip.exists(),
        "{} is missing: scripts/make-clips --bench",
        clip.display()
    );
    let (_server, url) = server(&clip);
    println!("1080p H.264 at 25 fps over RTSP/TCP on loopback, {secs} s windows, {rounds} rounds");
    let (mut ours, mut cli, mut cli1, mut bare) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (ours_pct, samples) = jarvis_reader(&url, secs, 2.0);
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / secs;
        // The decode alone: a sample at the start and one at the end, so what remains is demuxing and decoding.
        let (decode_only, _) = jarvis_reader(&url, secs, 1.0 / secs as f32);
        bare.push(decode_only);
        let c = ffmpeg_cli(&url, secs, None);
        let c1 = ffmpeg_cli(&url, secs, Some(1));
        println!(
            "round {}: jarvis {:.1}% of a core ({samples} samples at 2 fps), ffmpeg CLI {:.1}% (default threads), {:.1}% (-threads 1)",
            round + 1,
            ours_pct,
            pct(c),
            pct(c1)
        );
        ours.push(ours_pct);
        cli.push(pct(c));
        cli1.push(pct(c1));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "jarvis decoding alone (no sampling): {:.1}% (ratio {:.2}× the CLI's default, {:.2}× -threads 1); sampling at 2 fps adds {:.1} points",
        mean(&bare),
        mean(&bare) / mean(&cli),
        mean(&bare) / mean(&cli1),
        mean(&ours) - mean(&bare)
    );
    println!(
        "mean: jarvis {:.1}%, ffmpeg CLI {:.1}% (ratio {:.2}×), -threads 1 {:.1}% (ratio {:.2}×)",
        mean(&ours),
        mean(&cli),
        mean(&ours) / mean(&cli),
        mean(&cli1),
        mean(&ours) / mean(&cli1)
    );

    // Memory: RSS with no reader, one, two (each reading the same server, sampling at 2 fps).
    let base = rss_mb();
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let mut rss = vec![base];
    for _ in 0..2 {
        let (url, stop) = (url.clone(), stop.clone());
        readers.push(std::thread::spawn(move || {
            let settings = StreamSettings {
                input: Input::Rtsp {
                    url_with_secret: url,
                },
                sample_every: Duration::from_millis(500),
                connect_timeout: Duration::from_secs(15),
                stall_timeout: Duration::from_secs(5),
                picture_timeout: Duration::from_secs(10),
                max_side: 1280,
            };
            stream::play(&settings, &stop, |_| !stop.load(Ordering::Relaxed))
        }));
        std::thread::sleep(Duration::from_secs(8));
        rss.push(rss_mb());
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.join();
    }
    println!(
        "RSS: {:.0} MB with no reader, {:.0} MB with one (+{:.0}), {:.0} MB with two (+{:.0} for the second)",
        rss[0],
        rss[1],
        rss[1] - rss[0],
        rss[2],
        rss[2] - rss[1]
    );
}

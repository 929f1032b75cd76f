//! The voice pipeline's figures, side by side with the references on the same audio in the same run:
//!
//! - wake word: CPU per second of audio, Jarvis's tract pipeline against openWakeWord's own Python pipeline
//!   (onnxruntime, one thread); detection rate on "hey jarvis" clips (espeak-ng voices and the Piper voice, clean and
//!   with noise at 20 and 10 dB) and false wakes per hour on speech without the wake word (Debian's
//!   pocketsphinx-testdata read speech, and synthesised sentences);
//! - speech to text: real-time factor on one core and word error rate on the pocketsphinx-testdata recordings;
//! - text to speech: real-time factor against the `piper-tts` Python package (onnxruntime, one thread) with the
//!   same voice and sentences; the first sentence of a reply → its audio;
//! - end of speech → first reply audio through the offline fast path, in the running app;
//! - RSS added by the voice models.
//!
//! Run: `cargo bench --bench voice` (needs `scripts/setup --bench`: the models, the test speech, and the Python
//! references in the bench venv). Results and method: docs/BENCHMARKS.md, "Voice".

#[path = "support/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jarvis::voice::listener::{EarEvent, EarModels, Listener};
use jarvis::voice::stt::Whisper;
use jarvis::voice::tts::Speaker;
use jarvis::voice::vad::{UtteranceSettings, Vad};
use jarvis::voice::wake::{WakeDetector, WakeSettings};
use jarvis::voice::wav;

const TOKEN: &str = "bench-token-0123456789abcdef";

fn models() -> PathBuf {
    std::env::var_os("JARVIS_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/cache"))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn espeak(text: &str, voice: &str) -> Vec<f32> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.wav");
    let ok = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "espeak-ng");
    wav::read(&path).expect("espeak wav").samples
}

fn noisy(samples: &[f32], snr_db: Option<f32>, seed: u64) -> Vec<f32> {
    let Some(db) = snr_db else {
        return samples.to_vec();
    };
    let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32;
    let rms = (power / 10f32.powf(db / 10.0)).sqrt();
    let mut state = seed | 1;
    samples
        .iter()
        .map(|s| {
            let mut n = 0.0;
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                n += (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5;
            }
            (s + n * rms * 1.73).clamp(-1.0, 1.0)
        })
        .collect()
}

fn padded(samples: Vec<f32>) -> Vec<f32> {
    let mut v = vec![0.0; 8000];
    v.extend(samples);
    v.extend(vec![0.0; 16000]);
    v
}

struct Clip {
    name: String,
    samples: Vec<f32>,
    path: PathBuf,
}

const WAKE_PHRASES: &[&str] = &[
    "hey jarvis, what is the status of the cluster?",
    "hey jarvis, reboot pve",
    "hey jarvis, who is home?",
    "hey jarvis, turn on the kill switch",
];

const OTHER_SENTENCES: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Harvest the garden before the first frost arrives.",
    "Hey Jeeves, what time is the meeting tomorrow?",
    "Jarring news arrived from the north this evening.",
    "Please restart the backup server after midnight.",
    "Harvey, pass me the jar of jam from the top shelf.",
    "The cluster has four nodes and eighteen guests.",
    "Travis said the service was down for an hour.",
    "Hey, did you see the game last night?",
    "Jars of honey lined the kitchen shelves.",
    "Our storage is seventy eight percent full.",
    "Check the temperature of the second node.",
];

/// Debian's pocketsphinx-testdata recordings with their transcripts.
fn read_speech() -> Vec<(String, Vec<f32>, String)> {
    let base = Path::new("/usr/share/pocketsphinx/test/data");
    let mut out = Vec::new();
    for (folder, list) in [
        ("librivox", "transcription"),
        ("cards", "cards.transcription"),
    ] {
        let Ok(text) = std::fs::read_to_string(base.join(folder).join(list)) else {
            continue;
        };
        for line in text.lines() {
            let (Some(open), Some(close)) = (line.rfind('('), line.rfind(')')) else {
                continue;
            };
            let id = &line[open + 1..close];
            let words = line[..open].replace("<s>", "").replace("</s>", "");
            let file = format!("{id}.wav");
            if let Ok(clip) = wav::read(&base.join(folder).join(file)) {
                out.push((id.to_string(), clip.samples, words.trim().to_string()));
            }
        }
    }
    out
}

fn main() {
    let models = models();
    let dir = tempfile::tempdir().expect("tempdir");
    let speaker = Speaker::load(&models, None);
    let piper_voice = |text: &str| -> Vec<f32> {
        let s = speaker.speak(text).expect("piper");
        wav::resample(&s.samples, s.rate, wav::RATE).expect("resample")
    };

    // The audio, written once for both sides.
    let mut wake_clips = Vec::new();
    let mut seed = 1u64;
    for phrase in WAKE_PHRASES {
        let mut voiced: Vec<(String, Vec<f32>)> = ["en-us", "en-gb", "en-us+f3", "en-us+m3"]
            .iter()
            .map(|v| (format!("espeak-{v}"), espeak(phrase, v)))
            .collect();
        voiced.push(("piper".into(), piper_voice(phrase)));
        for (voice, samples) in voiced {
            for snr in [None, Some(20.0), Some(10.0)] {
                seed += 1;
                let name = format!("{voice} {snr:?} {phrase}");
                let path = dir.path().join(format!("wake-{seed}.wav"));
                let samples = padded(noisy(&samples, snr, seed));
                wav::write(&path, &samples, wav::RATE).expect("write");
                wake_clips.push(Clip {
                    name,
                    samples,
                    path,
                });
            }
        }
    }
    let mut other_clips = Vec::new();
    for (id, samples, _) in read_speech() {
        let path = dir.path().join(format!("read-{id}.wav"));
        wav::write(&path, &samples, wav::RATE).expect("write");
        other_clips.push(Clip {
            name: id,
            samples,
            path,
        });
    }
    for (i, s) in OTHER_SENTENCES.iter().enumerate() {
        for (voice, samples) in [
            ("espeak-en-us", espeak(s, "en-us")),
            ("espeak-en-gb", espeak(s, "en-gb")),
            ("piper", piper_voice(s)),
        ] {
            let path = dir.path().join(format!("other-{i}-{voice}.wav"));
            let samples = padded(samples);
            wav::write(&path, &samples, wav::RATE).expect("write");
            other_clips.push(Clip {
                name: format!("{voice} {s}"),
                samples,
                path,
            });
        }
    }
    let other_seconds: f32 = other_clips
        .iter()
        .map(|c| c.samples.len() as f32 / 16_000.0)
        .sum();

    // RSS of the models, measured before anything else is loaded.
    let before = rss_kib();
    let ears = EarModels::load(&models).expect("wake and VAD models");
    let after_ears = rss_kib();
    let whisper = Whisper::load(&models).expect("whisper");
    let after_whisper = rss_kib();

    println!("## Wake word");
    // Jarvis: the wake pipeline alone (what openWakeWord does), then as the product runs it (with the VAD gate).
    let (mut cpu_wake, mut cpu_vad, mut audio_s) = (Duration::ZERO, Duration::ZERO, 0f32);
    for clip in wake_clips.iter().chain(&other_clips) {
        let mut det = WakeDetector::new(&ears.wake);
        let mut vad = Vad::new(&ears.vad);
        let t = thread_cpu();
        for chunk in clip.samples.chunks(1280) {
            det.push(chunk).expect("wake");
        }
        cpu_wake += thread_cpu() - t;
        let t = thread_cpu();
        for chunk in clip.samples.chunks(1280) {
            vad.push(chunk).expect("vad");
        }
        cpu_vad += thread_cpu() - t;
        audio_s += clip.samples.len() as f32 / 16_000.0;
    }
    let detected = |clip: &Clip| -> usize {
        let mut l = Listener::new(&ears, WakeSettings::default(), UtteranceSettings::default());
        let mut n = 0;
        for chunk in clip.samples.chunks(1280) {
            n += l
                .push(chunk)
                .expect("listen")
                .iter()
                .filter(|e| matches!(e, EarEvent::Woke { .. }))
                .count();
        }
        n
    };
    let hits = wake_clips.iter().filter(|c| detected(c) > 0).count();
    let missed: Vec<&str> = wake_clips
        .iter()
        .filter(|c| detected(c) == 0)
        .map(|c| c.name.as_str())
        .collect();
    let false_wakes: usize = other_clips.iter().map(detected).sum();
    let jarvis_cpu_per_s = cpu_wake.as_secs_f32() / audio_s;
    println!(
        "Jarvis (tract): {:.2} ms CPU per second of audio for the wake pipeline ({:.2} % of a core), {:.2} ms with \
         the VAD ({:.2} % of a core)",
        jarvis_cpu_per_s * 1000.0,
        jarvis_cpu_per_s * 100.0,
        (cpu_wake + cpu_vad).as_secs_f32() / audio_s * 1000.0,
        (cpu_wake + cpu_vad).as_secs_f32() / audio_s * 100.0
    );
    println!(
        "detection: {hits} of {} wake clips ({:.1} %); missed: {missed:?}",
        wake_clips.len(),
        hits as f32 * 100.0 / wake_clips.len() as f32
    );
    println!(
        "false wakes: {false_wakes} in {:.1} min of speech without the wake word ({:.1} per hour)",
        other_seconds / 60.0,
        false_wakes as f32 * 3600.0 / other_seconds
    );

    let sentences = [
        "Good evening, sir.",
        "All four nodes are online and 15 of 18 guests are running.",
        "The fullest storage is nas at 78 percent.",
        "John, Sarah and Tom are home; I have not seen Emma yet, sir.",
    ];
    let reference = python_reference(dir.path(), &wake_clips, &other_clips, &sentences);
    if let Some(r) = &reference {
        let files = r["wake"]["files"].as_array().cloned().unwrap_or_default();
        let cpu: f64 = files.iter().filter_map(|f| f["cpu_s"].as_f64()).sum();
        let audio: f64 = files.iter().filter_map(|f| f["audio_s"].as_f64()).sum();
        let oww_hits = files
            .iter()
            .take(wake_clips.len())
            .filter(|f| f["detections"].as_u64().unwrap_or(0) > 0)
            .count();
        let oww_false: u64 = files
            .iter()
            .skip(wake_clips.len())
            .filter_map(|f| f["detections"].as_u64())
            .sum();
        let per_s = cpu / audio.max(1e-9);
        println!(
            "openWakeWord {} (onnxruntime, 1 thread): {:.2} ms CPU per second of audio; detection {oww_hits} of {}, \
             false wakes {oww_false}",
            r["wake"]["version"].as_str().unwrap_or("?"),
            per_s * 1000.0,
            wake_clips.len()
        );
        println!(
            "ratio Jarvis / openWakeWord CPU: {:.2}×",
            jarvis_cpu_per_s as f64 / per_s
        );
    }

    println!("\n## Speech to text (Whisper tiny.en, one thread)");
    let (mut errors, mut words_total, mut wall, mut audio) = (0usize, 0usize, Duration::ZERO, 0f32);
    for (id, samples, truth) in read_speech() {
        let t = Instant::now();
        let got = whisper.transcribe(&samples).expect("transcribe");
        wall += t.elapsed();
        audio += samples.len() as f32 / 16_000.0;
        let (e, n) = word_errors(&normalise(&got.text), &normalise(&truth));
        errors += e;
        words_total += n;
        println!(
            "{id}: {:.2} s audio, encode {} ms, decode {} ms ({} tokens), {e}/{n} word errors: \"{}\"",
            samples.len() as f32 / 16_000.0,
            got.encode_ms,
            got.decode_ms,
            got.tokens,
            got.text
        );
    }
    println!(
        "real-time factor {:.3} ({:.1} s for {:.1} s of audio); word error rate {:.1} % ({errors}/{words_total})",
        wall.as_secs_f32() / audio,
        wall.as_secs_f32(),
        audio,
        errors as f32 * 100.0 / words_total.max(1) as f32
    );

    println!("\n## Text to speech (Piper joe-medium)");
    speaker.speak("Warm up.").expect("warm up");
    let (mut wall, mut audio) = (0f64, 0f64);
    let mut firsts = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        let best = (0..3)
            .map(|_| {
                let t = Instant::now();
                let speech = speaker.speak(s).expect("speak");
                (
                    t.elapsed().as_secs_f64(),
                    speech.samples.len() as f64 / speech.rate as f64,
                )
            })
            .fold((f64::MAX, 0.0), |a, b| if b.0 < a.0 { b } else { a });
        wall += best.0;
        audio += best.1;
        if i < 2 {
            firsts.push(best.0);
        }
        let py = reference.as_ref().and_then(|r| {
            r["tts"]["sentences"]
                .as_array()
                .and_then(|a| a.get(i))
                .and_then(|v| v["wall_s"].as_f64())
        });
        println!(
            "\"{s}\": {:.0} ms for {:.2} s of audio (RTF {:.3}){}",
            best.0 * 1000.0,
            best.1,
            best.0 / best.1,
            py.map(|p| format!("; piper-tts {:.0} ms, ratio {:.2}×", p * 1000.0, best.0 / p))
                .unwrap_or_default()
        );
    }
    let py_total: Option<f64> = reference.as_ref().and_then(|r| {
        r["tts"]["sentences"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v["wall_s"].as_f64()).sum())
    });
    println!(
        "Jarvis RTF {:.3}{}; first sentence → first audio {:.0} ms (\"{}\"), {:.0} ms (\"{}\")",
        wall / audio,
        py_total
            .map(|p| format!(
                ", piper-tts {} RTF {:.3}, ratio {:.2}×",
                reference
                    .as_ref()
                    .and_then(|r| r["tts"]["version"].as_str())
                    .unwrap_or("?"),
                p / audio,
                wall / p
            ))
            .unwrap_or_default(),
        firsts[0] * 1000.0,
        sentences[0],
        firsts[1] * 1000.0,
        sentences[1]
    );
    let after_tts = rss_kib();
    // What the idle trimmer (`nn::memory`) gives back 20 s after the last model ran: the working sets kept while
    // speaking.
    jarvis::nn::memory::release_freed_memory();
    let after_trim = rss_kib();

    println!("\n## End of speech → first reply audio (the running app, offline fast path)");
    let question = piper_voice("What is the status of the cluster?");
    end_to_end(&question, &models);

    println!("\n## Memory");
    println!(
        "RSS added: wake + VAD {} MiB, Whisper {} MiB, Piper (with a sentence spoken) {} MiB; total {} MiB; \
         after the idle trim: total {} MiB",
        after_ears.saturating_sub(before) / 1024,
        after_whisper.saturating_sub(after_ears) / 1024,
        after_tts.saturating_sub(after_whisper) / 1024,
        after_tts.saturating_sub(before) / 1024,
        after_trim.saturating_sub(before) / 1024
    );
}

/// Runs `benches/voice_reference.py` (openWakeWord and piper-tts) on the same files and sentences.
fn python_reference(
    dir: &Path,
    wake: &[Clip],
    other: &[Clip],
    sentences: &[&str],
) -> Option<serde_json::Value> {
    let cache = std::env::var_os("JARVIS_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/jarvis")))?;
    let python = cache.join("venv/bin/python");
    let job = serde_json::json!({
        "wake_files": wake.iter().chain(other).map(|c| c.path.display().to_string()).collect::<Vec<_>>(),
        "tts_sentences": sentences,
        "repeats": 3,
    });
    let job_path = dir.join("job.json");
    std::fs::write(&job_path, job.to_string()).ok()?;
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/voice_reference.py"))
        .arg(&job_path)
        .output();
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        Ok(o) => {
            println!(
                "(the Python references did not run: {})",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            println!(
                "(the Python references did not run: {e}; scripts/setup --bench installs them)"
            );
            None
        }
    }
}

fn end_to_end(question: &[f32], models: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        jarvis::tls::install_crypto_provider();
        let secret = "bench-secret";
        let sim = jarvis::sim::Simulator::start(jarvis::sim::SimOptions::loopback(secret))
            .await
            .expect("simulator");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = common::config(&sim, secret, dir.path(), Default::default(), TOKEN);
        config.voice = jarvis::voice::service::VoiceSettings {
            enabled: true,
            models: models.to_path_buf(),
            // No cache: every reply is synthesised.
            cache_dir: None,
            ..Default::default()
        };
        let app = jarvis::app::App::start(&config, "bench")
            .await
            .expect("app");
        while app.state.get().voice.engine != "ready" || app.state.get().cluster.nodes.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let addr = app.side_port().expect("side port");
        let http = reqwest::Client::builder().no_proxy().build().expect("http");
        let body = wav::to_bytes(question, wav::RATE);
        let mut gaps = Vec::new();
        for _ in 0..5 {
            let r: serde_json::Value = http
                .post(format!(
                    "http://{addr}/api/v1/voice/listen?push_to_talk=true"
                ))
                .bearer_auth(TOKEN)
                .body(body.clone())
                .send()
                .await
                .expect("listen")
                .json()
                .await
                .expect("json");
            let t = &r["trace"];
            let (eos, stt, first) = (
                t["end_of_speech_ms"].as_u64().unwrap_or(0),
                t["stt_ms"].as_u64().unwrap_or(0),
                t["first_audio_ms"].as_u64().unwrap_or(0),
            );
            println!(
                "heard \"{}\": transcript +{} ms, first audio +{} ms after the end of speech",
                r["transcript"].as_str().unwrap_or(""),
                stt.saturating_sub(eos),
                first.saturating_sub(eos)
            );
            gaps.push(first.saturating_sub(eos));
        }
        gaps.sort_unstable();
        println!(
            "median end of speech → first audio: {} ms",
            gaps[gaps.len() / 2]
        );
        app.shutdown().await;
    });
}

/// Lower case, no punctuation, numbers up to 99 in words (Whisper writes "10 of clubs").
fn normalise(text: &str) -> Vec<String> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let mut out = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric() && c != '\'') {
        let w = w.to_lowercase();
        if w.is_empty() {
            continue;
        }
        match w.parse::<usize>() {
            Ok(n) if n < 20 => out.push(ONES[n].to_string()),
            Ok(n) if n < 100 => {
                out.push(TENS[n / 10].to_string());
                if n % 10 != 0 {
                    out.push(ONES[n % 10].to_string());
                }
            }
            _ => out.push(w),
        }
    }
    out
}

/// (substitutions + insertions + deletions, reference length).
fn word_errors(got: &[String], truth: &[String]) -> (usize, usize) {
    let mut prev: Vec<usize> = (0..=truth.len()).collect();
    for (i, g) in got.iter().enumerate() {
        let mut row = vec![i + 1; truth.len() + 1];
        for (j, t) in truth.iter().enumerate() {
            row[j + 1] = (prev[j] + usize::from(g != t))
                .min(prev[j + 1] + 1)
                .min(row[j] + 1);
        }
        prev = row;
    }
    (prev[truth.len()], truth.len())
}

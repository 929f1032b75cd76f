//! The voice pipeline's models on real speech: clips synthesised at test time with espeak-ng (and, once it is in,
//! the Piper voice), mixed with noise; the wake word, the VAD's cut of the utterance, and every wrong WAV.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util;

use jarvis::voice::listener::{EarEvent, EarModels, Listener};
use jarvis::voice::vad::{UtteranceSettings, UtteranceStep};
use jarvis::voice::wake::WakeSettings;
use jarvis::voice::wav;

pub fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache")
}

/// A phrase spoken by espeak-ng (22.05 kHz), read back as 16 kHz mono, with `lead` seconds of quiet before it.
pub fn espeak(text: &str, voice: &str, lead: f32) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("say.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng (scripts/setup installs it)");
    assert!(status.success());
    let clip = wav::read(&path).unwrap();
    let mut out = vec![0.0; (lead * wav::RATE as f32) as usize];
    out.extend(clip.samples);
    out.extend(std::iter::repeat_n(0.0, wav::RATE as usize));
    out
}

/// Adds white noise at `snr_db` below the speech's power (a fixed seed: the same clip every run).
pub fn with_noise(samples: &[f32], snr_db: f32) -> Vec<f32> {
    let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32;
    let noise_rms = (power / 10f32.powf(snr_db / 10.0)).sqrt();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    samples
        .iter()
        .map(|s| {
            // Sum of four uniforms: near enough Gaussian for hiss.
            let mut n = 0.0;
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                n += (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5;
            }
            (s + n * noise_rms * 1.73).clamp(-1.0, 1.0)
        })
        .collect()
}

fn listen(models: &EarModels, samples: &[f32]) -> (Vec<EarEvent>, f32) {
    let mut l = Listener::new(
        models,
        WakeSettings::default(),
        UtteranceSettings::default(),
    );
    let mut events = Vec::new();
    for chunk in samples.chunks(800) {
        events.extend(l.push(chunk).unwrap());
    }
    if let Some(h) = l.finish() {
        events.push(EarEvent::Heard(h));
    }
    (events, l.best_score)
}

#[test]
fn hey_jarvis_wakes_and_the_question_after_it_is_cut_at_its_end() {
    let models = EarModels::load(&models()).unwrap();
    for voice in ["en-us", "en-gb", "en-us+f3"] {
        for snr in [None, Some(20.0), Some(10.0)] {
            let clean = espeak("hey jarvis, what is the status of the cluster?", voice, 0.5);
            let clip = match snr {
                Some(db) => with_noise(&clean, db),
                None => clean,
            };
            let (events, best) = listen(&models, &clip);
            let woke: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    EarEvent::Woke { at_ms, .. } => Some(*at_ms),
                    _ => None,
                })
                .collect();
            assert_eq!(
                woke.len(),
                1,
                "{voice} {snr:?}: best score {best}, {events:?}"
            );
            // The wake comes at the end of "hey jarvis", in the first 1.8 s.
            assert!(
                (600..1800).contains(&woke[0]),
                "{voice} {snr:?}: woke at {} ms",
                woke[0]
            );
            let heard: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    EarEvent::Heard(h) => Some(h),
                    _ => None,
                })
                .collect();
            assert_eq!(heard.len(), 1, "{voice} {snr:?}");
            assert_eq!(heard[0].end, UtteranceStep::Ended, "{voice} {snr:?}");
            let seconds = heard[0].audio.len() as f32 / wav::RATE as f32;
            // 1.6 s from before the wake ("hey jarvis"), "what is the status of the cluster?" (about 2 s), then
            // the 0.7 s of silence that ends it.
            assert!(
                (3.0..5.5).contains(&seconds),
                "{voice} {snr:?}: {seconds} s heard"
            );
        }
    }
}

#[test]
fn speech_without_the_wake_word_never_wakes() {
    let models = EarModels::load(&models()).unwrap();
    let sentences = [
        "The quick brown fox jumps over the lazy dog.",
        "Harvest the garden before the first frost arrives.",
        "Hey Jeeves, what time is the meeting?",
        "Jarring news arrived from the north this evening.",
        "Please restart the backup server after midnight.",
        "Harvey, pass me the jar of jam.",
    ];
    for s in sentences {
        let (events, best) = listen(&models, &espeak(s, "en-us", 0.3));
        assert!(events.is_empty(), "{s}: {events:?} (best score {best})");
    }
}

#[test]
fn silence_and_noise_alone_never_wake() {
    let models = EarModels::load(&models()).unwrap();
    let quiet = vec![0.0; 10 * wav::RATE as usize];
    assert!(listen(&models, &quiet).0.is_empty());
    let hiss = with_noise(&vec![0.01; 10 * wav::RATE as usize], 0.0);
    assert!(listen(&models, &hiss).0.is_empty());
    // Clipped, very loud: a square wave.
    let square: Vec<f32> = (0..5 * wav::RATE as usize)
        .map(|i| if (i / 40) % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    assert!(listen(&models, &square).0.is_empty());
}

/// Words in lower case without punctuation, for comparing transcripts.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

#[test]
fn whisper_transcribes_read_speech_and_synthesised_questions() {
    let whisper = jarvis::voice::stt::Whisper::load(&models()).unwrap();
    let beckett = wav::read(&models().join("beckett.wav")).unwrap();
    let t = whisper.transcribe(&beckett.samples).unwrap();
    assert_eq!(
        words(&t.text),
        words("Ever tried, ever failed. No matter, try again. Fail again. Fail better."),
        "{t:?}"
    );
    assert!(t.no_speech < 0.2, "{t:?}");
    let q = espeak(
        "hey jarvis, what is the status of the cluster?",
        "en-us",
        0.2,
    );
    let t = whisper.transcribe(&q).unwrap();
    assert!(
        words(&t.text).ends_with(&words("what is the status of the cluster")),
        "{t:?}"
    );
    // Silence: Whisper says there is no speech, and the text (if any) is short.
    let t = whisper
        .transcribe(&vec![0.0; 3 * wav::RATE as usize])
        .unwrap();
    assert!(t.no_speech > 0.5 || t.text.is_empty(), "{t:?}");
    // Noise alone never makes a long text: the token budget follows the audio's length.
    let hiss = with_noise(&vec![0.01; wav::RATE as usize], 0.0);
    let t = whisper.transcribe(&hiss).unwrap();
    assert!(t.tokens <= 26, "{t:?}");
    // Longer than 30 s: the rest is cut, never an error.
    let long: Vec<f32> = beckett
        .samples
        .iter()
        .cycle()
        .take(40 * wav::RATE as usize)
        .copied()
        .collect();
    assert!(whisper.transcribe(&long).is_ok());
}

#[test]
fn piper_speaks_sentences_that_whisper_understands_and_espeak_stands_in() {
    use jarvis::voice::tts::{text, Speaker, VoiceName};
    // Piper itself, not through the fallback.
    let piper = jarvis::voice::tts::piper::PiperVoice::load(&models()).unwrap();
    let ids = piper.phoneme_ids("Good evening, sir.").unwrap();
    assert_eq!(&ids[..2], &[1, 0], "^ then a pad");
    assert_eq!(ids.last(), Some(&2), "$ last");
    assert!(piper.speak("Good evening, sir.").unwrap().len() > 22_050 / 2);
    let speaker = Speaker::load(&models(), None);
    assert!(speaker.has_piper(), "{:?}", speaker.piper_problem);
    let whisper = jarvis::voice::stt::Whisper::load(&models()).unwrap();
    for (reply, expect) in [
        (
            "Good evening, sir. All three nodes are online.",
            "good evening sir all three nodes are online",
        ),
        (
            "**pve1** is at 51°C, CPU 39%.",
            "pve1 is at 51 degrees cpu 39 percent",
        ),
    ] {
        let spoken = text::speakable(reply);
        let speech = speaker.speak(&spoken).unwrap();
        assert_eq!((speech.voice, speech.rate), (VoiceName::Piper, 22_050));
        let seconds = speech.samples.len() as f32 / 22_050.0;
        assert!((1.0..8.0).contains(&seconds), "{reply}: {seconds} s");
        let heard = wav::resample(&speech.samples, 22_050, wav::RATE).unwrap();
        let t = whisper.transcribe(&heard).unwrap();
        // Whisper writes numbers as digits or words; compare the words that are not numbers.
        // Whisper writes "39%" or "39 percent".
        let got: Vec<String> = words(&t.text.replace('%', " percent"))
            .into_iter()
            .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
            .collect();
        let want: Vec<String> = words(expect)
            .into_iter()
            .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
            .collect();
        let missing: Vec<&String> = want.iter().filter(|w| !got.contains(w)).collect();
        assert!(
            missing.len() <= 1,
            "{reply}: heard {:?}, missing {missing:?}",
            t.text
        );
    }
    // Without Piper, espeak-ng speaks: there is always some audio.
    let fallback = Speaker::espeak_only("test")
        .speak("The backup finished at 3 a.m.")
        .unwrap();
    assert_eq!(fallback.voice, VoiceName::Espeak);
    assert!(fallback.samples.len() > 22_050 / 2);
    // A broken Piper model folder: loading reports it and espeak-ng speaks.
    let empty = tempfile::tempdir().unwrap();
    let broken = Speaker::load(empty.path(), None);
    assert!(!broken.has_piper() && broken.piper_problem.is_some());
    assert_eq!(
        broken.speak("Still here, sir.").unwrap().voice,
        VoiceName::Espeak
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_jarvis");

/// The app with voice on (the real models), waiting until they are loaded and the cluster is seen.
async fn voice_app(
    dir: &Path,
) -> (
    jarvis::app::App,
    std::net::SocketAddr,
    jarvis::sim::Simulator,
) {
    voice_app_with(dir, |_| {}).await
}

/// [`voice_app`] with its voice settings changed by `tweak`.
pub async fn voice_app_with(
    dir: &Path,
    tweak: impl FnOnce(&mut jarvis::voice::service::VoiceSettings),
) -> (
    jarvis::app::App,
    std::net::SocketAddr,
    jarvis::sim::Simulator,
) {
    let sim = util::sim().await;
    let mut config = util::config(&sim, dir);
    config.voice = jarvis::voice::service::VoiceSettings {
        enabled: true,
        models: models(),
        cache_dir: Some(dir.join("speech-cache")),
        // Two cores running several tests at once: Piper is not to be judged behind here (one test does that).
        piper_deadline: Duration::from_secs(60),
        ..Default::default()
    };
    tweak(&mut config.voice);
    let app = jarvis::app::App::start(&config, "test")
        .await
        .expect("app starts");
    let state = app.state.clone();
    assert!(
        util::eventually(Duration::from_secs(120), || state.get().voice.engine
            == "ready")
        .await,
        "voice: {:?}",
        state.get().voice
    );
    util::cluster_seen(&app).await;
    let addr = app.side_port().expect("side port");
    (app, addr, sim)
}

fn write_clip(path: &Path, samples: &[f32]) {
    wav::write(path, samples, wav::RATE).unwrap();
}

/// `text` as `jarvis say` speaks it (the Piper voice, or espeak-ng's: the same audio every run), as 16 kHz samples.
fn jarvis_says(dir: &Path, text: &str, espeak: bool) -> Vec<f32> {
    let name: String = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let out = dir.join(format!("say-{name}-{espeak}.wav"));
    let mut say = Command::new(BIN);
    say.arg("say");
    if espeak {
        say.arg("--espeak");
    }
    let done = say
        .arg(text)
        .arg("--out")
        .arg(&out)
        .arg("--models")
        .arg(models())
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    wav::read(&out).unwrap().samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jarvis_listen_hears_a_recording_answers_and_writes_the_spoken_reply() {
    let dir = tempfile::tempdir().unwrap();
    let (app, addr, _sim) = voice_app(dir.path()).await;
    // The question in the Piper voice (as `jarvis say` makes it), with a little noise.
    let mut question = vec![0.0; wav::RATE as usize / 2];
    question.extend(jarvis_says(dir.path(), "Hey Jarvis, who is home?", false));
    write_clip(&dir.path().join("q.wav"), &with_noise(&question, 25.0));
    let reply_path = dir.path().join("reply.wav");
    let run = tokio::task::spawn_blocking({
        let (q, reply_path) = (dir.path().join("q.wav"), reply_path.clone());
        move || {
            Command::new(BIN)
                .args(["listen", "--wav"])
                .arg(&q)
                .arg("--out")
                .arg(&reply_path)
                .args(["--url", &format!("http://{addr}")])
                .env("JARVIS_WEB_TOKEN", util::WEB_TOKEN)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let heard = stdout
        .lines()
        .find(|l| l.starts_with("heard"))
        .unwrap_or_default();
    // Piper's noise is seeded, but a machine's arithmetic may still tip Whisper: "who is home" or "who's home".
    assert!(heard.to_lowercase().contains("home"), "{stdout}");
    assert!(stdout.contains("jarvis: "), "{stdout}");
    // The reply was spoken: Whisper hears it back.
    let reply = wav::read(&reply_path).unwrap();
    assert!(reply.seconds() > 1.0, "{} s", reply.seconds());
    let whisper = jarvis::voice::stt::Whisper::load(&models()).unwrap();
    let back = whisper
        .transcribe(&reply.samples[..reply.samples.len().min(30 * 16_000)])
        .unwrap();
    assert!(
        words(&back.text).iter().any(|w| w == "home" || w == "seen"),
        "{heard} → {back:?}"
    );
    // The trace has every stage, in order, and is served.
    let (status, traces) = util::get_json(addr, "/api/v1/traces").await;
    assert_eq!(status, 200);
    let t = &traces["traces"][0];
    assert_eq!(
        (t["via"].as_str(), t["outcome"].as_str()),
        (Some("upload"), Some("answered")),
        "{t}"
    );
    let stage = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{k} missing: {t}"));
    assert!(stage("wake_ms") < stage("end_of_speech_ms"));
    assert!(stage("end_of_speech_ms") <= stage("stt_ms"));
    assert!(stage("stt_ms") <= stage("first_sentence_ms"));
    assert!(stage("first_sentence_ms") <= stage("first_audio_ms"));
    assert!(stage("first_audio_ms") <= stage("done_ms"));
    assert!(
        traces["summary"]
            .as_str()
            .unwrap_or_default()
            .starts_with("voice: reply in"),
        "{traces}"
    );
    let (_, health) = util::get_json(addr, "/healthz").await;
    assert_eq!(health["voice"]["engine"], "ready", "{health}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listen_endpoint_refuses_what_is_not_a_question() {
    let dir = tempfile::tempdir().unwrap();
    let (app, addr, _sim) = voice_app(dir.path()).await;
    let http = util::http();
    let url = format!("http://{addr}/api/v1/voice/listen");
    let post = |body: Vec<u8>, query: &'static str| {
        let http = http.clone();
        let url = format!("{url}{query}");
        async move {
            let r = http
                .post(url)
                .bearer_auth(util::WEB_TOKEN)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    // No token, a wrong one.
    let r = http.post(&url).body(vec![0u8; 10]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Not a WAV (a JPEG's first bytes), an empty body, a truncated WAV.
    let (s, b) = post(vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F'], "").await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_wav")), "{b}");
    assert_eq!(post(Vec::new(), "").await.0, 400);
    let good = wav::to_bytes(&espeak("hey jarvis, who is home?", "en-us", 0.3), wav::RATE);
    assert_eq!(post(good[..good.len() / 2].to_vec(), "").await.0, 400);
    // A parameter nobody asked for; a wrong value.
    assert_eq!(post(good.clone(), "?admin=true").await.0, 400);
    assert_eq!(post(good.clone(), "?push_to_talk=maybe").await.0, 400);
    // Speech without the wake word, and silence: nothing heard, clearly.
    let plain = wav::to_bytes(
        &espeak("the weather is fine today", "en-us", 0.3),
        wav::RATE,
    );
    let (s, b) = post(plain, "").await;
    assert_eq!(
        (s, b["error"].as_str()),
        (422, Some("nothing_heard")),
        "{b}"
    );
    let silence = wav::to_bytes(&vec![0.0; 3 * wav::RATE as usize], wav::RATE);
    assert_eq!(post(silence, "?push_to_talk=true").await.0, 422);
    // Too big: refused by its Content-Length before the body is read.
    let r = http
        .post(&url)
        .bearer_auth(util::WEB_TOKEN)
        .header("content-length", (900u64 << 20).to_string())
        .body(vec![0u8; 1024])
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 413);
    }
    // Longer than two minutes (a valid WAV).
    let long = wav::to_bytes(&vec![0.0; 125 * wav::RATE as usize], wav::RATE);
    assert_eq!(post(long, "?push_to_talk=true").await.0, 413);
    // One exchange at a time: a second recording while the first is answered is told so.
    let slow = {
        let mut v = espeak(
            "hey jarvis, what is the status of the cluster?",
            "en-us",
            0.3,
        );
        v.extend(with_noise(&vec![0.0; 20 * wav::RATE as usize], 60.0));
        wav::to_bytes(&v, wav::RATE)
    };
    let first = tokio::spawn(post(slow, ""));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (s, b) = post(good.clone(), "").await;
    assert_eq!((s, b["error"].as_str()), (409, Some("busy")), "{b}");
    assert_eq!(first.await.unwrap().0, 200);
    // Afterwards the next is heard.
    let (s, answered) = post(good, "").await;
    assert_eq!(s, 200, "{answered}");
    // Its reply as Ogg Opus, which ffmpeg (the phone's stand-in) decodes to the same length and words as the WAV.
    let wav_path = answered["audio"].as_str().expect("a reply").to_string();
    let ogg_path = wav_path.replace(".wav", ".ogg");
    let fetch = |path: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("http://{addr}{path}"))
                .bearer_auth(util::WEB_TOKEN)
                .send()
                .await
                .unwrap();
            let kind = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (kind, r.bytes().await.unwrap().to_vec())
        }
    };
    let (kind, ogg) = fetch(ogg_path.clone()).await;
    assert_eq!(kind, "audio/ogg; codecs=opus");
    assert_eq!(&ogg[..4], b"OggS");
    assert_eq!(
        fetch(ogg_path).await.1,
        ogg,
        "encoded once, served the same"
    );
    let (_, wav_bytes) = fetch(wav_path).await;
    std::fs::write(dir.path().join("reply.ogg"), &ogg).unwrap();
    let decoded = dir.path().join("decoded.wav");
    let ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(dir.path().join("reply.ogg"))
        .args(["-ac", "1", "-ar", "16000"])
        .arg(&decoded)
        .output()
        .unwrap();
    assert!(
        ffmpeg.status.success(),
        "{}",
        String::from_utf8_lossy(&ffmpeg.stderr)
    );
    let from_ogg = wav::read(&decoded).unwrap();
    let from_wav = wav::read_from(std::io::Cursor::new(wav_bytes)).unwrap();
    let seconds = answered["seconds"].as_f64().unwrap() as f32;
    assert!(
        (from_ogg.seconds() - seconds).abs() < 0.03,
        "{} s of Opus for a {seconds} s reply",
        from_ogg.seconds()
    );
    let whisper = jarvis::voice::stt::Whisper::load(&models()).unwrap();
    let cut = |c: &wav::Clip| c.samples[..c.samples.len().min(30 * 16_000)].to_vec();
    let heard_ogg = words(&whisper.transcribe(&cut(&from_ogg)).unwrap().text);
    let heard_wav = words(&whisper.transcribe(&cut(&from_wav)).unwrap().text);
    let same = heard_wav.iter().filter(|w| heard_ogg.contains(w)).count();
    assert!(
        !heard_wav.is_empty() && same * 10 >= heard_wav.len() * 9,
        "Opus: {heard_ogg:?}, WAV: {heard_wav:?}"
    );
    // Unknown reply audio, and formats that are not served.
    for path in ["0000.wav", "0000.ogg", "0000.mp3", "..%2F..%2Fetc%2Fpasswd"] {
        let (s, _) = util::get_json(addr, &format!("/api/v1/voice/replies/{path}")).await;
        assert_eq!(s, 404, "{path}");
    }
    app.shutdown().await;
}

/// An ALSA configuration with a microphone that plays a file and a loudspeaker that writes one: the real ALSA
/// code paths (alsa-lib's `file` plugin over `null`), no sound card.
fn alsa_config(dir: &Path, question: &Path, reply: &Path) -> PathBuf {
    let conf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "</usr/share/alsa/alsa.conf>\n\
             pcm.jarvis_silence {{ type null }}\n\
             pcm.jarvis_mic {{ type file slave.pcm \"jarvis_silence\" file \"/dev/null\" infile \"{}\" format \"raw\" }}\n\
             pcm.jarvis_speaker {{ type file slave.pcm \"jarvis_silence\" file \"{}\" format \"raw\" }}\n",
            question.display(),
            reply.display()
        ),
    )
    .unwrap();
    conf
}

/// `jarvis demo` with the real models, voice on the ALSA devices of [`alsa_config`], no cameras.
fn demo_on_test_audio(dir: &Path, conf: &Path) -> crate::cli::DemoProc {
    let models = models();
    crate::cli::start_demo_with(
        dir,
        1000,
        &[
            "--capture-device",
            "jarvis_mic",
            "--playback-device",
            "jarvis_speaker",
            "--no-cameras",
        ],
        &[
            ("JARVIS_MODELS", models.to_str().unwrap()),
            ("ALSA_CONFIG_PATH", conf.to_str().unwrap()),
        ],
    )
}

#[test]
fn the_microphone_hears_hey_jarvis_and_the_loudspeaker_answers() {
    let dir = tempfile::tempdir().unwrap();
    // "Hey Jarvis, what is the status of the cluster?" as raw 16-bit 16 kHz mono, with quiet around it.
    // espeak-ng's voice: the same audio every run (Piper's has noise in it).
    let mut samples = vec![0.0; 2 * wav::RATE as usize];
    samples.extend(jarvis_says(
        dir.path(),
        "Hey Jarvis, what is the status of the cluster?",
        true,
    ));
    samples.extend(vec![0.0; 4 * wav::RATE as usize]);
    let raw: Vec<u8> = samples
        .iter()
        .flat_map(|&s| wav::to_i16(s).to_le_bytes())
        .collect();
    let question = dir.path().join("question.raw");
    std::fs::write(&question, raw).unwrap();
    let reply = dir.path().join("reply.raw");
    let conf = alsa_config(dir.path(), &question, &reply);
    let demo = demo_on_test_audio(dir.path(), &conf);
    let http = crate::cli::blocking_http(None);
    let get = |path: &str| -> serde_json::Value {
        http.get(format!("{}{path}", demo.web))
            .bearer_auth(&demo.token)
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut trace = serde_json::Value::Null;
    while std::time::Instant::now() < deadline {
        let t = get("/api/v1/traces");
        if let Some(first) = t["traces"].as_array().and_then(|a| a.first()) {
            trace = first.clone();
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let health = get("/healthz");
    assert_eq!(trace["via"], "wake", "{trace} {health}");
    assert_eq!(trace["outcome"], "answered", "{trace}");
    assert!(
        words(trace["transcript"].as_str().unwrap_or_default())
            .ends_with(&words("status of the cluster")),
        "{trace}"
    );
    assert_eq!(health["voice"]["audio"], "live", "{health}");
    // The reply reached the loudspeaker: seconds of 22.05 kHz audio in the file.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut played = 0;
    while std::time::Instant::now() < deadline {
        played = std::fs::metadata(&reply).map(|m| m.len()).unwrap_or(0);
        if played > 3 * 44_100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(played > 3 * 44_100, "{played} bytes played");
}

#[test]
fn a_microphone_that_is_missing_is_unavailable_until_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    // The microphone's source does not exist yet: opening it fails as an unplugged USB microphone does.
    let question = dir.path().join("later.raw");
    let reply = dir.path().join("reply.raw");
    let conf = alsa_config(dir.path(), &question, &reply);
    let demo = demo_on_test_audio(dir.path(), &conf);
    let http = crate::cli::blocking_http(None);
    let health = || -> serde_json::Value {
        http.get(format!("{}/healthz", demo.web))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default()
    };
    let wait_for = |audio: &str, limit: Duration| -> serde_json::Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let h = health();
            if h["voice"]["audio"] == audio || std::time::Instant::now() > deadline {
                return h;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let h = wait_for("unavailable", Duration::from_secs(120));
    assert_eq!(h["voice"]["audio"], "unavailable", "{h}");
    assert!(
        h["voice"]["audio_detail"]
            .as_str()
            .unwrap_or_default()
            .contains("jarvis_mic"),
        "{h}"
    );
    // The rest of Jarvis runs: the side port answers, the cluster is there.
    assert_eq!(h["status"], "ok");
    // Plugged in: the next attempt opens it.
    std::fs::write(&question, vec![0u8; 16_000 * 2 * 3]).unwrap();
    let h = wait_for("live", Duration::from_secs(60));
    assert_eq!(h["voice"]["audio"], "live", "{h}");
}

/// Posts a recording to the listen endpoint; the status and the JSON answer.
async fn say_to(addr: std::net::SocketAddr, samples: &[f32]) -> (u16, serde_json::Value) {
    let r = util::http()
        .post(format!("http://{addr}/api/v1/voice/listen"))
        .bearer_auth(util::WEB_TOKEN)
        .body(wav::to_bytes(samples, wav::RATE))
        .send()
        .await
        .unwrap();
    (
        r.status().as_u16(),
        r.json::<serde_json::Value>().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_yes_approves_only_what_the_last_exchange_raised_and_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (app, addr, _sim) = voice_app_with(dir.path(), |v| v.spoken_confirmation = true).await;
    let said = |text: &str| espeak(text, "en-us", 0.3);
    let pending = |app: &jarvis::app::App| app.tools.pending_approvals().unwrap();

    // "Restart nextcloud": the agent, acting for the voice, asks first.
    let (s, b) = say_to(addr, &said("hey jarvis, please restart nextcloud")).await;
    assert_eq!(s, 200, "{b}");
    let waiting = pending(&app);
    assert_eq!(waiting.len(), 1, "{b}");
    assert_eq!(
        (waiting[0].tool.as_str(), waiting[0].actor.as_str()),
        ("reboot_guest", "voice")
    );
    // "No" (or anything not a plain yes) leaves it pending, and forgets it: a "yes" after that approves nothing.
    let (s, b) = say_to(addr, &said("hey jarvis, no")).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["confirmed"].is_null(), "{b}");
    let (_, b) = say_to(addr, &said("hey jarvis, yes")).await;
    assert!(b["confirmed"].is_null(), "{b}");
    assert_eq!(pending(&app).len(), 1);
    // Asked again, then "yes": that approval is approved and the reboot runs, as the voice.
    let (s, b) = say_to(addr, &said("hey jarvis, please restart nextcloud")).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = say_to(addr, &said("hey jarvis, yes")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["confirmed"], waiting[0].id.as_str(), "{b}");
    assert!(pending(&app).is_empty());
    let audit = app.store.audit(50).unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.tool == "reboot_guest" && r.actor == "voice" && r.outcome == "ok"),
        "{audit:?}"
    );
    assert!(
        b["reply"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("nextcloud is rebooted"),
        "{b}"
    );
    app.shutdown().await;

    // Spoken confirmation off (the default): a "yes" approves nothing.
    let dir = tempfile::tempdir().unwrap();
    let (app, addr, _sim) = voice_app(dir.path()).await;
    let (s, _) = say_to(addr, &said("hey jarvis, please restart nextcloud")).await;
    assert_eq!(s, 200);
    let (_, b) = say_to(addr, &said("hey jarvis, yes")).await;
    assert!(b["confirmed"].is_null(), "{b}");
    assert_eq!(pending(&app).len(), 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_utterance_is_cut_and_espeak_speaks_when_piper_falls_behind_or_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (app, addr, _sim) = voice_app_with(dir.path(), |v| {
        v.piper_deadline = Duration::from_millis(1);
        v.cache_bytes = 0;
    })
    .await;
    // Forty seconds of talk after the wake word, with no pause long enough to end it: cut at the maximum.
    let mut talk = String::from("hey jarvis, what is the status of the cluster");
    while talk.len() < 700 {
        talk.push_str(" and the nodes and the guests and the storage and the temperatures");
    }
    let clip = espeak(&talk, "en-us", 0.3);
    assert!(
        clip.len() > 30 * wav::RATE as usize,
        "{} s",
        clip.len() / 16_000
    );
    let (s, b) = say_to(addr, &clip).await;
    assert_eq!(s, 200, "{b}");
    let t = &b["trace"];
    let max = jarvis::voice::vad::UtteranceSettings::default().max_ms;
    let spoken = t["end_of_speech_ms"].as_u64().unwrap() - t["wake_ms"].as_u64().unwrap();
    assert!(
        spoken <= max + 1_000,
        "{spoken} ms heard, the maximum is {max}: {b}"
    );
    assert!(
        words(b["transcript"].as_str().unwrap()).contains(&"cluster".to_string()),
        "{b}"
    );
    // Piper given 1 ms a sentence fell behind on every one: espeak-ng said them, and there is audio.
    assert_eq!(t["voice"], "espeak", "{b}");
    assert!(b["seconds"].as_f64().unwrap() > 0.5, "{b}");
    app.shutdown().await;

    // A box without the Piper voice (a failed download): Jarvis still answers aloud, with espeak-ng.
    let partial = dir.path().join("models-without-piper");
    std::fs::create_dir(&partial).unwrap();
    for entry in std::fs::read_dir(models()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("piper") {
            std::os::unix::fs::symlink(&path, partial.join(&name)).unwrap();
        }
    }
    let dir2 = tempfile::tempdir().unwrap();
    let (app, addr, _sim) = voice_app_with(dir2.path(), |v| v.models = partial.clone()).await;
    let (s, b) = say_to(addr, &espeak("hey jarvis, who is home?", "en-us", 0.3)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["trace"]["voice"], "espeak", "{b}");
    let (_, health) = util::get_json(addr, "/healthz").await;
    assert_eq!(health["voice"]["engine"], "ready", "{health}");
    assert!(
        health["voice"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("espeak-ng speaks: the Piper voice failed"),
        "{health}"
    );
    app.shutdown().await;
}

#[test]
fn hey_jarvis_while_jarvis_speaks_stops_him_and_the_new_question_is_answered() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let first = jarvis_says(
        dir.path(),
        "Hey Jarvis, what is the status of the cluster?",
        true,
    );
    let second = jarvis_says(dir.path(), "Hey Jarvis, who is home?", true);
    // A room in real time: the microphone is a FIFO this test speaks into at 16 kHz, 80 ms at a time; the
    // loudspeaker a FIFO it listens to at 22.05 kHz, so playback takes as long as the reply (ALSA's file plugin
    // over `null` would otherwise take both at once).
    let (mic, speaker) = (dir.path().join("mic.fifo"), dir.path().join("speaker.fifo"));
    for fifo in [&mic, &speaker] {
        assert!(Command::new("mkfifo").arg(fifo).status().unwrap().success());
    }
    let conf = alsa_config(dir.path(), &mic, &speaker);
    let done = Arc::new(AtomicBool::new(false));
    let interrupt = Arc::new(AtomicBool::new(false));
    let heard_bytes = Arc::new(AtomicUsize::new(0));
    let room = {
        let (done, interrupt, mic) = (done.clone(), interrupt.clone(), mic.clone());
        std::thread::spawn(move || {
            let Ok(mut m) = std::fs::OpenOptions::new().write(true).open(&mic) else {
                return;
            };
            let pcm = |s: &[f32]| -> Vec<u8> {
                s.iter()
                    .flat_map(|&x| wav::to_i16(x).to_le_bytes())
                    .collect()
            };
            let mut queue: std::collections::VecDeque<f32> = vec![0.0; 2 * 16_000].into();
            queue.extend(&first);
            let mut second_said = false;
            while !done.load(Ordering::Relaxed) {
                if interrupt.load(Ordering::Relaxed) && !second_said {
                    queue.extend(&second);
                    second_said = true;
                }
                // One capture block (80 ms) per write: a pipe write that small is atomic, so each of ALSA's reads
                // finds a whole block (it does not wait for the rest of a short one).
                let chunk: Vec<f32> = (0..jarvis::voice::audio::BLOCK)
                    .map(|_| queue.pop_front().unwrap_or(0.0))
                    .collect();
                if m.write_all(&pcm(&chunk)).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(80));
            }
        })
    };
    let ears = {
        let (done, heard_bytes, speaker) = (done.clone(), heard_bytes.clone(), speaker.clone());
        std::thread::spawn(move || {
            // Each reply opens the device anew: read each opening to its end, at the speed it plays.
            while !done.load(Ordering::Relaxed) {
                let Ok(mut s) = std::fs::File::open(&speaker) else {
                    return;
                };
                let mut buf = vec![0u8; 4410];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    heard_bytes.fetch_add(n, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };
    let demo = demo_on_test_audio(dir.path(), &conf);
    let http = crate::cli::blocking_http(None);
    let traces = || -> Vec<serde_json::Value> {
        http.get(format!("{}/api/v1/traces", demo.web))
            .bearer_auth(&demo.token)
            .send()
            .and_then(|r| r.json::<serde_json::Value>())
            .ok()
            .and_then(|t| t["traces"].as_array().cloned())
            .unwrap_or_default()
    };
    // Jarvis starts answering aloud; a second of it is heard, then "Hey Jarvis, who is home?" over it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while heard_bytes.load(Ordering::Relaxed) < 44_100 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    assert!(
        heard_bytes.load(Ordering::Relaxed) >= 44_100,
        "Jarvis never spoke: {:?} {}",
        traces(),
        log()
    );
    interrupt.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        seen = traces();
        if seen.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    done.store(true, Ordering::Relaxed);
    drop(demo);
    // Unblock the room's threads if the demo is gone before they noticed.
    let _ = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&mic);
    let _ = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&speaker);
    let _ = (room.join(), ears.join());
    assert_eq!(seen.len(), 2, "{seen:?}");
    // Newest first: the new question answered, the reply it cut into marked interrupted.
    assert_eq!(seen[1]["outcome"], "interrupted", "{seen:?}");
    assert!(words(seen[1]["transcript"].as_str().unwrap()).contains(&"cluster".to_string()));
    assert_eq!(seen[0]["outcome"], "answered", "{seen:?}");
    assert!(
        words(seen[0]["transcript"].as_str().unwrap()).contains(&"home".to_string()),
        "{seen:?}"
    );
}

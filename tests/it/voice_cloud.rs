//! The optional cloud speech against a server that speaks the real wire formats and checks them as strictly as
//! the real services do: OpenAI's `/v1/audio/transcriptions` (multipart, a WAV file, bearer key) and
//! `/v1/audio/speech` (JSON, raw PCM back), and ElevenLabs' `/v1/text-to-speech/{voice}` (`xi-api-key`,
//! `output_format=pcm_22050`). Every failure of the cloud (an error, silence, a peer that never answers, an answer
//! that is not what was asked for, a flood) falls back to the models on the device; nothing is lost.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::util;
use crate::voice::{espeak, voice_app_with, words};
use jarvis::secret::Secret;
use jarvis::voice::cloud::{
    CloudError, CloudStt, CloudSttSettings, CloudTts, CloudTtsSettings, TtsProvider,
};
use jarvis::voice::wav;

const KEY: &str = "sk-test-0123456789";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Answer,
    Fail,
    Hang,
    Empty,
    /// A 200 that is not what was asked for (HTML for JSON, an odd byte count for PCM).
    Garbage,
    /// A 200 whose body never ends.
    Flood,
}

#[derive(Default)]
struct Seen {
    /// Seconds of each WAV received, with the model and language fields.
    transcriptions: Vec<(f32, String, String)>,
    speech: Vec<Value>,
    eleven: Vec<(String, String, Value)>,
}

struct Peer {
    stt: Mutex<Mode>,
    tts: Mutex<Mode>,
    seen: Mutex<Seen>,
}

fn api_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
    )
        .into_response()
}

fn bearer_ok(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"))
}

/// 16-bit little-endian PCM: a tone 40 ms long per character said, as the services' length follows the text.
fn pcm_for(text: &str, rate: u32) -> Vec<u8> {
    let n = text.chars().count() * rate as usize / 25;
    (0..n)
        .flat_map(|i| {
            let s = 0.3 * (i as f32 * 220.0 * std::f32::consts::TAU / rate as f32).sin();
            ((s * 32767.0) as i16).to_le_bytes()
        })
        .collect()
}

async fn misbehave(mode: Mode, garbage: Response) -> Option<Response> {
    match mode {
        Mode::Answer | Mode::Empty => None,
        Mode::Fail => Some(api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request.",
        )),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            None
        }
        Mode::Garbage => Some(garbage),
        Mode::Flood => {
            let chunk = Bytes::from(vec![0u8; 64 * 1024]);
            let endless =
                futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Some(Body::from_stream(endless).into_response())
        }
    }
}

async fn transcriptions(
    State(peer): State<Arc<Peer>>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    // The form is read whole before the key is checked, as the service behind its proxy does: an answer before the
    // upload ends would be a reset connection, not the 401 to test.
    let key_ok = bearer_ok(&headers);
    let (mut seconds, mut model, mut language) = (None, None, String::new());
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                if !field.file_name().unwrap_or_default().ends_with(".wav") {
                    return api_error(StatusCode::BAD_REQUEST, "Invalid file format.");
                }
                let bytes = field.bytes().await.unwrap_or_default();
                match wav::read_from(std::io::Cursor::new(bytes)) {
                    Ok(clip) if clip.source_rate == 16_000 && clip.source_channels == 1 => {
                        seconds = Some(clip.seconds())
                    }
                    _ => return api_error(StatusCode::BAD_REQUEST, "Invalid file format."),
                }
            }
            "model" => model = field.text().await.ok(),
            "language" => language = field.text().await.unwrap_or_default(),
            "response_format" => {
                if field.text().await.ok().as_deref() != Some("json") {
                    return api_error(StatusCode::BAD_REQUEST, "response_format");
                }
            }
            other => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Unrecognized request argument supplied: {other}"),
                )
            }
        }
    }
    if !key_ok {
        return api_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    let (Some(seconds), Some(model)) = (seconds, model) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "you must provide a file and a model",
        );
    };
    peer.seen
        .lock()
        .unwrap()
        .transcriptions
        .push((seconds, model, language));
    let mode = *peer.stt.lock().unwrap();
    if let Some(r) = misbehave(mode, "<html>502 Bad Gateway</html>".into_response()).await {
        return r;
    }
    let text = if mode == Mode::Empty {
        ""
    } else {
        " Who is home?"
    };
    Json(json!({ "text": text })).into_response()
}

async fn speech(State(peer): State<Arc<Peer>>, headers: HeaderMap, body: Bytes) -> Response {
    if !bearer_ok(&headers) {
        return api_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return api_error(StatusCode::BAD_REQUEST, "We could not parse the JSON body.");
    };
    let known = [
        "model",
        "input",
        "voice",
        "response_format",
        "speed",
        "instructions",
    ];
    if let Some(k) = req
        .as_object()
        .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())))
    {
        return api_error(
            StatusCode::BAD_REQUEST,
            &format!("Unrecognized request argument supplied: {k}"),
        );
    }
    let input = req["input"].as_str().unwrap_or_default().to_string();
    if input.is_empty() || input.chars().count() > 4096 || req["voice"].as_str().is_none() {
        return api_error(StatusCode::BAD_REQUEST, "input and voice are required");
    }
    if req["response_format"] != "pcm" {
        return api_error(StatusCode::BAD_REQUEST, "this test asks for pcm");
    }
    peer.seen.lock().unwrap().speech.push(req);
    let mode = *peer.tts.lock().unwrap();
    if let Some(r) = misbehave(mode, vec![1u8, 2, 3].into_response()).await {
        return r;
    }
    pcm_for(&input, 24_000).into_response()
}

async fn eleven(
    State(peer): State<Arc<Peer>>,
    Path(voice): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    Json(req): Json<Value>,
) -> Response {
    if headers.get("xi-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}})),
        )
            .into_response();
    }
    let format = q.get("output_format").cloned().unwrap_or_default();
    if format != "pcm_22050" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"detail": {"message": "output_format"}})),
        )
            .into_response();
    }
    let text = req["text"].as_str().unwrap_or_default().to_string();
    peer.seen.lock().unwrap().eleven.push((voice, format, req));
    let mode = *peer.tts.lock().unwrap();
    if let Some(r) = misbehave(mode, vec![9u8].into_response()).await {
        return r;
    }
    pcm_for(&text, 22_050).into_response()
}

async fn peer() -> (SocketAddr, Arc<Peer>) {
    jarvis::tls::install_crypto_provider();
    let state = Arc::new(Peer {
        stt: Mutex::new(Mode::Answer),
        tts: Mutex::new(Mode::Answer),
        seen: Mutex::new(Seen::default()),
    });
    let app = Router::new()
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/v1/audio/speech", post(speech))
        .route("/v1/text-to-speech/{voice}", post(eleven))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, state)
}

fn stt_settings(addr: SocketAddr) -> CloudSttSettings {
    CloudSttSettings {
        url: format!("http://{addr}/v1"),
        model: "whisper-1".into(),
        language: "en".into(),
        api_key: Some(Secret::new(KEY)),
        timeout: Duration::from_millis(1500),
    }
}

fn tts_settings(addr: SocketAddr, provider: TtsProvider) -> CloudTtsSettings {
    CloudTtsSettings {
        provider,
        url: match provider {
            TtsProvider::OpenAi => format!("http://{addr}/v1"),
            TtsProvider::ElevenLabs => format!("http://{addr}"),
        },
        model: "tts-1".into(),
        voice: "onyx".into(),
        api_key: Secret::new(KEY),
        timeout: Duration::from_millis(1500),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_speech_is_used_when_configured_and_the_device_takes_over_when_it_fails() {
    let (addr, peer) = peer().await;
    let dir = tempfile::tempdir().unwrap();
    let (app, side, _sim) = voice_app_with(dir.path(), |v| {
        v.cloud_stt = Some(stt_settings(addr));
        v.cloud_tts = Some(tts_settings(addr, TtsProvider::OpenAi));
        v.cache_bytes = 0;
    })
    .await;
    let question = wav::to_bytes(
        &espeak(
            "hey jarvis, what is the status of the cluster?",
            "en-us",
            0.3,
        ),
        wav::RATE,
    );
    let http = util::http();
    let ask = || {
        let (http, body) = (http.clone(), question.clone());
        async move {
            let r = http
                .post(format!("http://{side}/api/v1/voice/listen"))
                .bearer_auth(util::WEB_TOKEN)
                .body(body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let set = |stt: Mode, tts: Mode| {
        *peer.stt.lock().unwrap() = stt;
        *peer.tts.lock().unwrap() = tts;
    };

    // The cloud hears "who is home" (not what was said: the proof it was asked) and the cloud voice speaks.
    let (s, b) = ask().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["transcript"], "Who is home?", "{b}");
    assert_eq!(
        (b["trace"]["stt"].as_str(), b["trace"]["voice"].as_str()),
        (Some("cloud"), Some("cloud")),
        "{b}"
    );
    {
        let seen = peer.seen.lock().unwrap();
        let (seconds, model, language) = &seen.transcriptions[0];
        assert!(
            (1.0..8.0).contains(seconds),
            "the question alone was sent: {seconds} s"
        );
        assert_eq!((model.as_str(), language.as_str()), ("whisper-1", "en"));
        // Each sentence was sent speakable (no markdown), and its audio came back at 24 kHz.
        assert!(!seen.speech.is_empty());
        for req in &seen.speech {
            let input = req["input"].as_str().unwrap();
            assert!(!input.contains('*') && !input.contains('`'), "{input}");
            assert_eq!(
                (req["model"].as_str(), req["voice"].as_str()),
                (Some("tts-1"), Some("onyx"))
            );
        }
        let chars: usize = seen
            .speech
            .iter()
            .map(|r| r["input"].as_str().unwrap().chars().count())
            .sum();
        let seconds = b["seconds"].as_f64().unwrap();
        assert!(
            (seconds - chars as f64 * 0.04).abs() < 0.2 * seen.speech.len() as f64 + 0.05,
            "{seconds} s for {chars} chars"
        );
    }

    // The cloud fails, answers HTML, or never answers: Whisper on the device hears the real question.
    for mode in [Mode::Fail, Mode::Garbage, Mode::Hang, Mode::Flood] {
        set(mode, Mode::Answer);
        let started = Instant::now();
        let (s, b) = ask().await;
        assert_eq!(s, 200, "{mode:?}: {b}");
        assert_eq!(b["trace"]["stt"], "whisper (cloud failed)", "{mode:?}: {b}");
        let heard = words(b["transcript"].as_str().unwrap());
        assert!(
            heard.contains(&"cluster".to_string()),
            "{mode:?}: {heard:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{mode:?} took {:?}",
            started.elapsed()
        );
    }
    // The cloud heard nothing: nothing was said, clearly (not Whisper's guess at it).
    set(Mode::Empty, Mode::Answer);
    let (s, b) = ask().await;
    assert_eq!(
        (s, b["error"].as_str()),
        (422, Some("nothing_heard")),
        "{b}"
    );

    // The cloud voice fails, sends an odd byte count, or never answers: Piper speaks, and there is audio.
    for mode in [Mode::Fail, Mode::Garbage, Mode::Hang] {
        set(Mode::Answer, mode);
        let (s, b) = ask().await;
        assert_eq!(s, 200, "{mode:?}: {b}");
        assert_eq!(b["trace"]["voice"], "piper", "{mode:?}: {b}");
        assert!(b["seconds"].as_f64().unwrap() > 0.5, "{mode:?}: {b}");
    }
    // The traces keep who heard each question.
    let (_, traces) = util::get_json(side, "/api/v1/traces?limit=20").await;
    let stts: Vec<&str> = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["stt"].as_str())
        .collect();
    assert!(
        stts.contains(&"cloud") && stts.contains(&"whisper (cloud failed)"),
        "{stts:?}"
    );
    // The key went only in the header: it is in no trace, no state, no health page.
    let (_, health) = util::get_json(side, "/healthz").await;
    assert!(!traces.to_string().contains(KEY) && !health.to_string().contains(KEY));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_clients_speak_each_wire_format_and_name_each_failure() {
    let (addr, peer) = peer().await;
    // ElevenLabs: the voice id in the path, the key in xi-api-key, PCM at 22.05 kHz.
    let mut s = tts_settings(addr, TtsProvider::ElevenLabs);
    s.voice = "JBFqnCBsd6RMkjVDRZzb".into();
    s.model = "eleven_flash_v2_5".into();
    let eleven = CloudTts::new(s.clone()).unwrap();
    let (samples, rate) = eleven.speak("Good evening, sir.").await.unwrap();
    assert_eq!(rate, 22_050);
    assert_eq!(samples.len(), "Good evening, sir.".len() * 22_050 / 25);
    {
        let seen = peer.seen.lock().unwrap();
        let (voice, format, req) = &seen.eleven[0];
        assert_eq!(
            (voice.as_str(), format.as_str()),
            ("JBFqnCBsd6RMkjVDRZzb", "pcm_22050")
        );
        assert_eq!(req["model_id"], "eleven_flash_v2_5");
    }
    // A wrong key is the service's own words, with its status.
    s.api_key = Secret::new("wrong");
    match CloudTts::new(s.clone()).unwrap().speak("Hello.").await {
        Err(CloudError::Http {
            status: 401,
            message,
            ..
        }) => assert_eq!(message, "Invalid API key"),
        other => panic!("{other:?}"),
    }
    // A body that never ends is cut at the cap; a peer that never answers, at the timeout; an odd byte count is
    // not PCM.
    s.api_key = Secret::new(KEY);
    let eleven = CloudTts::new(s).unwrap();
    *peer.tts.lock().unwrap() = Mode::Flood;
    assert!(matches!(
        eleven.speak("Hello.").await,
        Err(CloudError::Answer { .. } | CloudError::Timeout { .. })
    ));
    *peer.tts.lock().unwrap() = Mode::Hang;
    let started = Instant::now();
    assert!(matches!(
        eleven.speak("Hello.").await,
        Err(CloudError::Timeout { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    *peer.tts.lock().unwrap() = Mode::Garbage;
    assert!(matches!(
        eleven.speak("Hello.").await,
        Err(CloudError::Answer { .. })
    ));

    // The transcription client: the wrong key, and a service that is not there at all.
    let mut stt = stt_settings(addr);
    stt.api_key = Some(Secret::new("wrong"));
    match CloudStt::new(stt)
        .unwrap()
        .transcribe(&vec![0.0; 16_000])
        .await
    {
        Err(CloudError::Http {
            status: 401,
            message,
            ..
        }) => {
            assert_eq!(message, "Incorrect API key provided.")
        }
        other => panic!("{other:?}"),
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gone = CloudStt::new(stt_settings(closed)).unwrap();
    assert!(matches!(
        gone.transcribe(&vec![0.0; 16_000]).await,
        Err(CloudError::Unreachable { .. })
    ));
}

//! `jarvis listen --wav FILE [--out REPLY.wav|REPLY.ogg]`: a recording sent to a running Jarvis, which hears it as it would
//! hear the room (the wake word, or `--push-to-talk`, then the end of speech), answers through the agent and
//! speaks the reply. Prints the transcript, the reply and the stage times; writes the reply's audio to `--out`.
//! `jarvis say TEXT --out FILE.wav` speaks with the same voice, locally.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::Value;

pub struct ListenArgs {
    pub wav: PathBuf,
    pub out: Option<PathBuf>,
    pub push_to_talk: bool,
    pub side: crate::side_client::SidePortArgs,
    pub token_file: Option<PathBuf>,
}

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    // Checked here first, so a wrong file is named before anything is sent.
    let clip =
        jarvis::voice::wav::read(&args.wav).with_context(|| format!("{}", args.wav.display()))?;
    let bytes =
        std::fs::read(&args.wav).with_context(|| format!("cannot read {}", args.wav.display()))?;
    let token = crate::client_token(args.token_file.as_deref())?;
    let client = args.side.client()?;
    let base = args.side.base();
    let resp = client
        .post(format!("{base}/api/v1/voice/listen"))
        .query(&[(
            "push_to_talk",
            if args.push_to_talk { "true" } else { "false" },
        )])
        .bearer_auth(token.expose())
        .header("content-type", "audio/wav")
        .body(bytes)
        .send()
        .await
        .map_err(|e| crate::side_client::unreachable(&args.side.url, e))?;
    let status = resp.status();
    let answer: Value = resp
        .json()
        .await
        .context("Jarvis answered something that is not JSON")?;
    if !status.is_success() {
        bail!(
            "{}",
            answer["message"].as_str().unwrap_or("request refused")
        );
    }
    println!(
        "heard ({:.1} s): {}",
        clip.seconds(),
        answer["transcript"].as_str().unwrap_or_default()
    );
    if let Some(text) = answer["reply"]["text"].as_str() {
        println!("jarvis: {text}");
    }
    if let Some(id) = answer["confirmed"].as_str() {
        println!("approved by voice: {id}");
    }
    let t = &answer["trace"];
    let stage = |k: &str| {
        t[k].as_u64()
            .map(|v| format!("{:.2} s", v as f64 / 1000.0))
            .unwrap_or("-".into())
    };
    println!(
        "times: wake {}, end of speech {}, transcript {}, first sentence {}, first audio {}, done {}",
        stage("wake_ms"),
        stage("end_of_speech_ms"),
        stage("stt_ms"),
        stage("first_sentence_ms"),
        stage("first_audio_ms"),
        stage("done_ms")
    );
    if let (Some(out), Some(wav_path)) = (&args.out, answer["audio"].as_str()) {
        // `--out reply.ogg` takes the Ogg Opus the phone plays; anything else the WAV.
        let opus = out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ogg") || e.eq_ignore_ascii_case("opus"));
        let path = if opus {
            wav_path.replace(".wav", ".ogg")
        } else {
            wav_path.to_string()
        };
        let audio = client
            .get(format!("{base}{path}"))
            .bearer_auth(token.expose())
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .context("cannot fetch the spoken reply")?
            .bytes()
            .await
            .context("the spoken reply was cut off")?;
        write_atomically(out, &audio)?;
        println!(
            "reply spoken into {} ({:.1} s)",
            out.display(),
            answer["seconds"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("wav.part");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Speaks `text` (made speakable, sentence by sentence) into a WAV file.
pub fn say(text: &str, out: &Path, models: &Path, espeak_only: bool) -> anyhow::Result<()> {
    use jarvis::voice::tts::{text as spoken, Speaker};
    let speaker = if espeak_only {
        Speaker::espeak_only("--espeak")
    } else {
        Speaker::load(models, None)
    };
    if let Some(problem) = &speaker.piper_problem {
        if !espeak_only {
            eprintln!("the Piper voice is not available ({problem}); espeak-ng speaks");
        }
    }
    let mut splitter = spoken::SentenceSplitter::new();
    let mut sentences = splitter.push(&spoken::speakable(text));
    sentences.extend(splitter.finish());
    let (mut samples, mut rate) = (Vec::new(), 22_050);
    for sentence in sentences {
        let speech = speaker.speak(&sentence)?;
        if !samples.is_empty() {
            samples.extend(std::iter::repeat_n(0.0, speech.rate as usize / 8));
        }
        rate = speech.rate;
        samples.extend(speech.samples);
    }
    if samples.is_empty() {
        bail!("nothing to say");
    }
    jarvis::voice::wav::write(out, &samples, rate)?;
    Ok(())
}

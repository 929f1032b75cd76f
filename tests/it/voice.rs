//! The voice pipeline's models on real speech: clips synthesised at test time with espeak-ng (and, once it is in,
//! the Piper voice), mixed with noise; the wake word, the VAD's cut of the utterance, and every wrong WAV.

use std::path::{Path, PathBuf};
use std::process::Command;

use jarvis::voice::listener::{EarEvent, EarModels, Listener};
use jarvis::voice::vad::{UtteranceSettings, UtteranceStep};
use jarvis::voice::wake::WakeSettings;
use jarvis::voice::wav;

fn models() -> PathBuf {
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
            // "what is the status of the cluster?" is about 2 s, then 0.7 s of silence ends it.
            assert!(
                (1.5..4.0).contains(&seconds),
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
        let got: Vec<String> = words(&t.text)
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

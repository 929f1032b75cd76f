//! Text to speech: the Piper voice in tract ([`piper`]), espeak-ng as the voice that is always there
//! ([`espeak`]), a disk cache keyed by voice and text with a size cap ([`cache`]), and the text rules that make a
//! reply speakable and cut it into sentences ([`text`]).
//!
//! [`Speaker::speak`] never leaves Jarvis silent: a Piper that failed to load or fails on a sentence hands the
//! sentence to espeak-ng, and the result says which voice spoke.

pub mod cache;
pub mod conv1d;
pub mod deconv1d;
pub mod espeak;
pub mod piper;
pub mod piper_decoder;
pub mod text;

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("cannot load the voice {path}: {message} (run scripts/fetch-models)")]
    Load { path: String, message: String },
    #[error("the voice failed: {0}")]
    Run(String),
    #[error("espeak-ng: {0}")]
    Espeak(String),
    #[error("a sentence of {0} phonemes is too long to say at once")]
    TooLong(usize),
}

/// Which voice said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VoiceName {
    Piper,
    Espeak,
    /// A cloud voice (`[cloud_tts]`).
    Cloud,
}

/// One sentence, spoken.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    pub samples: Vec<f32>,
    pub rate: u32,
    pub voice: VoiceName,
    /// Read from the cache rather than synthesised.
    pub cached: bool,
}

/// The voices, loaded once.
pub struct Speaker {
    piper: Option<piper::PiperVoice>,
    /// Why Piper is not in use (it failed to load), for /healthz and the logs.
    pub piper_problem: Option<String>,
    espeak_voice: String,
    cache: Option<cache::SpeechCache>,
}

impl Speaker {
    /// Loads Piper from `models` (a failure is kept as [`Self::piper_problem`]; espeak-ng speaks instead) and opens
    /// the cache in `cache_dir` when given.
    pub fn load(models: &Path, cache_dir: Option<(&Path, u64)>) -> Speaker {
        let (piper, piper_problem) = match piper::PiperVoice::load(models) {
            Ok(p) => (Some(p), None),
            Err(e) => {
                tracing::warn!("Piper voice unavailable, espeak-ng speaks instead: {e}");
                (None, Some(e.to_string()))
            }
        };
        let cache = cache_dir.and_then(|(dir, cap)| match cache::SpeechCache::open(dir, cap) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("speech cache off: {e}");
                None
            }
        });
        Speaker {
            espeak_voice: piper
                .as_ref()
                .map(|p| p.espeak_voice.clone())
                .unwrap_or_else(|| "en-us".into()),
            piper,
            piper_problem,
            cache,
        }
    }

    /// espeak-ng only (a box without the Piper model, and the tests of the fallback).
    pub fn espeak_only(reason: &str) -> Speaker {
        Speaker {
            piper: None,
            piper_problem: Some(reason.to_string()),
            espeak_voice: "en-us".into(),
            cache: None,
        }
    }

    /// Prepares Piper for a long run of replies (see [`piper::PiperVoice::prepare`]).
    pub fn prepare(&self) {
        if let Some(piper) = &self.piper {
            piper.prepare();
        }
    }

    /// The voice Piper is, if loaded.
    pub fn has_piper(&self) -> bool {
        self.piper.is_some()
    }

    /// One sentence (already speakable), by Piper if it can, else by espeak-ng.
    pub fn speak(&self, sentence: &str) -> Result<Speech, TtsError> {
        if let Some(piper) = &self.piper {
            let key = cache::key("piper:joe", sentence);
            if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&key)) {
                return Ok(Speech {
                    samples: hit.0,
                    rate: hit.1,
                    voice: VoiceName::Piper,
                    cached: true,
                });
            }
            match piper.speak(sentence) {
                Ok(samples) => {
                    if let Some(c) = &self.cache {
                        c.put(&key, &samples, piper.rate);
                    }
                    return Ok(Speech {
                        samples,
                        rate: piper.rate,
                        voice: VoiceName::Piper,
                        cached: false,
                    });
                }
                Err(e) => tracing::warn!("Piper could not say a sentence, espeak-ng says it: {e}"),
            }
        }
        self.speak_espeak(sentence)
    }

    /// A sentence another voice (the cloud's) said before, from the cache.
    pub fn cached(&self, voice: &str, sentence: &str) -> Option<(Vec<f32>, u32)> {
        self.cache.as_ref()?.get(&cache::key(voice, sentence))
    }

    /// Keeps what another voice said, for next time.
    pub fn remember(&self, voice: &str, sentence: &str, samples: &[f32], rate: u32) {
        if let Some(c) = &self.cache {
            c.put(&cache::key(voice, sentence), samples, rate);
        }
    }

    /// espeak-ng's voice, always.
    pub fn speak_espeak(&self, sentence: &str) -> Result<Speech, TtsError> {
        let (samples, rate) = espeak::speak(sentence, &self.espeak_voice, 165)?;
        Ok(Speech {
            samples,
            rate,
            voice: VoiceName::Espeak,
            cached: false,
        })
    }
}

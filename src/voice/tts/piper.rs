//! The Piper voice (VITS) in tract, split in two by `scripts/split-piper` where the number of audio frames becomes
//! known. The encoder (phonemes → per-phoneme durations and prior means / log-deviations) has data-dependent
//! shapes inside (the duration predictor's spline), so it runs as tract's unoptimised plan; it is the small half.
//! The glue here rounds the durations up and repeats each phoneme's prior column that many frames; the decoder
//! (flow and HiFi-GAN, the heavy half) is an optimised plan over a symbolic frame count.
//!
//! Phonemes are espeak-ng's IPA ([`super::espeak`]), clause by clause, joined with the punctuation espeak-ng drops
//! (", " between clauses, the sentence's own end mark), mapped through the voice's `phoneme_id_map`: `^`, a pad,
//! then each phoneme followed by a pad, then `$`. Characters the map lacks are skipped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;

use super::{espeak, TtsError};

pub const ENCODER_FILE: &str = "piper-encoder.onnx";
pub const DECODER_FILE: &str = "piper-decoder.onnx";
pub const CONFIG_FILE: &str = "en_US-joe-medium.onnx.json";

const CHANNELS: usize = 192;
/// A sentence longer than this many ids is spoken in parts by the caller (the splitter keeps sentences short).
pub const MAX_IDS: usize = 1200;
/// At most this many frames (about 35 s of speech) from one call: a duration model gone wrong cannot make minutes.
const MAX_FRAMES: usize = 3000;

pub struct PiperVoice {
    encoder: Arc<tract_onnx::tract_hir::infer::InferenceSimplePlan>,
    decoder: Arc<TypedRunnableModel>,
    ids: HashMap<char, Vec<i64>>,
    pub rate: u32,
    scales: [f32; 3],
    pub espeak_voice: String,
}

impl PiperVoice {
    pub fn load(dir: &Path) -> Result<PiperVoice, TtsError> {
        let load = |path: &Path, e: String| TtsError::Load {
            path: path.display().to_string(),
            message: e,
        };
        let config_path = dir.join(CONFIG_FILE);
        let config: serde_json::Value = std::fs::read(&config_path)
            .map_err(|e| load(&config_path, e.to_string()))
            .and_then(|b| {
                serde_json::from_slice(&b).map_err(|e| load(&config_path, e.to_string()))
            })?;
        let mut ids = HashMap::new();
        for (k, v) in config["phoneme_id_map"].as_object().into_iter().flatten() {
            let mut chars = k.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                let list: Vec<i64> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_i64())
                    .collect();
                ids.insert(c, list);
            }
        }
        for needed in ['^', '_', '$'] {
            if !ids.contains_key(&needed) {
                return Err(load(
                    &config_path,
                    format!("no `{needed}` in phoneme_id_map"),
                ));
            }
        }
        let scale = |key: &str, default: f32| {
            config["inference"][key]
                .as_f64()
                .map(|v| v as f32)
                .unwrap_or(default)
        };
        let scales = [
            scale("noise_scale", 0.667),
            scale("length_scale", 1.0),
            scale("noise_w", 0.8),
        ];
        let rate = config["audio"]["sample_rate"].as_u64().unwrap_or(22_050) as u32;
        let espeak_voice = config["espeak"]["voice"]
            .as_str()
            .unwrap_or("en-us")
            .to_string();

        let enc_path = dir.join(ENCODER_FILE);
        let encoder = tract_onnx::onnx()
            .model_for_path(&enc_path)
            .and_then(|mut m| {
                // The phoneme count is left open: the plan resolves shapes as each sentence comes.
                m.set_input_fact(0, InferenceFact::dt(i64::datum_type()))?;
                m.set_input_fact(1, InferenceFact::dt(i64::datum_type()))?;
                m.set_input_fact(2, InferenceFact::dt(f32::datum_type()))?;
                m.into_runnable()
            })
            .map_err(|e| load(&enc_path, format!("{e:#}")))?;
        let dec_path = dir.join(DECODER_FILE);
        let decoder = tract_onnx::onnx()
            .model_for_path(&dec_path)
            .and_then(|mut m| {
                let frames = m.symbols.sym("frames");
                let prior = f32::fact([1.to_dim(), CHANNELS.to_dim(), frames.to_dim()]);
                m.set_input_fact(0, prior.clone().into())?;
                m.set_input_fact(1, prior.into())?;
                m.set_input_fact(
                    2,
                    f32::fact([1.to_dim(), 1.to_dim(), frames.to_dim()]).into(),
                )?;
                m.set_input_fact(3, f32::fact([3]).into())?;
                m.into_optimized()?.into_runnable()
            })
            .map_err(|e| load(&dec_path, format!("{e:#}")))?;
        Ok(PiperVoice {
            encoder,
            decoder,
            ids,
            rate,
            scales,
            espeak_voice,
        })
    }

    /// The voice's ids for one sentence.
    pub fn phoneme_ids(&self, sentence: &str) -> Result<Vec<i64>, TtsError> {
        let clauses = espeak::phonemes(sentence, &self.espeak_voice)?;
        let end = sentence
            .trim_end()
            .chars()
            .last()
            .filter(|c| matches!(c, '?' | '!'))
            .unwrap_or('.');
        let text = format!("{}{end}", clauses.join(", "));
        let pad = self.ids[&'_'][0];
        let mut out = self.ids[&'^'].clone();
        out.push(pad);
        for c in text.chars() {
            if let Some(ids) = self.ids.get(&c) {
                for &id in ids {
                    out.push(id);
                    out.push(pad);
                }
            }
        }
        out.extend(&self.ids[&'$']);
        Ok(out)
    }

    /// One sentence spoken, as samples (-1..1) at [`Self::rate`].
    pub fn speak(&self, sentence: &str) -> Result<Vec<f32>, TtsError> {
        let ids = self.phoneme_ids(sentence)?;
        if ids.len() > MAX_IDS {
            return Err(TtsError::TooLong(ids.len()));
        }
        self.synthesize(&ids)
    }

    fn synthesize(&self, ids: &[i64]) -> Result<Vec<f32>, TtsError> {
        let run = |stage: &'static str| {
            move |e: TractError| TtsError::Run(format!("piper {stage}: {e:#}"))
        };
        let n = ids.len();
        let input = Tensor::from_shape(&[1, n], ids).map_err(run("input"))?;
        let lengths = Tensor::from_shape(&[1], &[n as i64]).map_err(run("input"))?;
        let scales = Tensor::from_shape(&[3], &self.scales).map_err(run("input"))?;
        let out = self
            .encoder
            .run(tvec!(input.into(), lengths.into(), scales.clone().into()))
            .map_err(run("encoder"))?;
        let durations: Vec<f32> = out[0]
            .to_plain_array_view::<f32>()
            .map_err(run("encoder"))?
            .iter()
            .copied()
            .collect();
        let m_p = out[1]
            .to_plain_array_view::<f32>()
            .map_err(run("encoder"))?;
        let logs_p = out[2]
            .to_plain_array_view::<f32>()
            .map_err(run("encoder"))?;
        if durations.len() != n || m_p.len() != CHANNELS * n || logs_p.len() != CHANNELS * n {
            return Err(TtsError::Run(format!(
                "piper encoder shapes: {} durations, {} priors for {n} phonemes",
                durations.len(),
                m_p.len()
            )));
        }
        // Each phoneme lasts ceil(duration) frames.
        let widths: Vec<usize> = durations
            .iter()
            .map(|d| {
                if d.is_finite() && *d > 0.0 {
                    d.ceil() as usize
                } else {
                    0
                }
            })
            .collect();
        let frames = widths.iter().sum::<usize>().clamp(1, MAX_FRAMES);
        let (m_src, l_src) = (
            m_p.iter().copied().collect::<Vec<_>>(),
            logs_p.iter().copied().collect::<Vec<_>>(),
        );
        let mut m_frames = vec![0f32; CHANNELS * frames];
        let mut l_frames = vec![0f32; CHANNELS * frames];
        let mut t = 0;
        for (i, &w) in widths.iter().enumerate() {
            for _ in 0..w {
                if t >= frames {
                    break;
                }
                for c in 0..CHANNELS {
                    m_frames[c * frames + t] = m_src[c * n + i];
                    l_frames[c * frames + t] = l_src[c * n + i];
                }
                t += 1;
            }
        }
        let m = Tensor::from_shape(&[1, CHANNELS, frames], &m_frames).map_err(run("glue"))?;
        let l = Tensor::from_shape(&[1, CHANNELS, frames], &l_frames).map_err(run("glue"))?;
        let mask = Tensor::from_shape(&[1, 1, frames], &vec![1f32; frames]).map_err(run("glue"))?;
        let audio = self
            .decoder
            .run(tvec!(m.into(), l.into(), mask.into(), scales.into()))
            .map_err(run("decoder"))?;
        let samples: Vec<f32> = audio[0]
            .to_plain_array_view::<f32>()
            .map_err(run("decoder"))?
            .iter()
            .map(|s| {
                if s.is_finite() {
                    s.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect();
        Ok(samples)
    }
}

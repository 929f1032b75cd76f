//! The Piper voice (VITS) in tract, split in two by `scripts/split-piper` where the number of audio frames becomes
//! known. The encoder (phonemes → per-phoneme durations and prior means / log-deviations) has data-dependent
//! shapes inside (the duration predictor's spline), so tract can only optimise it for a fixed phoneme count:
//! sentences are padded up to a few bucket sizes (32, 64, 96, 128, 192, 256, 512, the maximum), each bucket's plan
//! built once (the smallest at load; the service prepares 64 before it answers and 128, 96, 256 in the background)
//! and kept; the padding is masked by `input_lengths`, as in Piper's own batches, so it changes nothing. The glue
//! here rounds the durations up and repeats each phoneme's prior column that many frames; the decoder (flow and
//! HiFi-GAN, the heavy half) is one plan over a symbolic frame count, built at load ([`super::piper_decoder`]).
//!
//! Phonemes are espeak-ng's IPA ([`super::espeak`]), clause by clause, joined with the punctuation espeak-ng drops
//! (", " between clauses, the sentence's own end mark), mapped through the voice's `phoneme_id_map`: `^`, a pad,
//! then each phoneme followed by a pad, then `$`. Characters the map lacks are skipped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use super::piper_decoder::{self, Decoder, CHANNELS};
use super::{espeak, TtsError};
use crate::nn::memory;

pub const ENCODER_FILE: &str = "piper-encoder.onnx";
pub const DECODER_FILE: &str = "piper-decoder.onnx";
pub const CONFIG_FILE: &str = "en_US-joe-medium.onnx.json";

/// A sentence longer than this many ids is spoken in parts by the caller (the splitter keeps sentences short).
pub const MAX_IDS: usize = 1200;
/// At most this many frames (about 35 s of speech) from one call: a duration model gone wrong cannot make minutes.
const MAX_FRAMES: usize = 3000;
/// Phoneme counts the encoder is optimised for; a sentence is padded to the first that holds it. Close steps
/// where sentences are common: the encoder's time grows with the bucket (9 ms at 16 ids, 13 at 32, 18 at 64), and
/// a short reply ("Good evening, sir.": 31 ids) should not pay for 64.
const ENCODER_BUCKETS: [usize; 8] = [32, 64, 96, 128, 192, 256, 512, MAX_IDS];
/// Buckets a long-running voice (the service) prepares before it answers: most replies' first sentences fit
/// them, so the first reply after start does not wait for a plan. Built in this order by [`PiperVoice::prepare`];
/// the first now, the others in the background.
const PREPARED_BUCKETS: [usize; 4] = [64, 128, 96, 256];

type Plan = Arc<TypedRunnableModel>;

pub struct PiperVoice {
    models: Arc<Models>,
    ids: HashMap<char, Vec<i64>>,
    pad: i64,
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
            .map_err(|e| load(&enc_path, format!("{e:#}")))?;
        let dec_path = dir.join(DECODER_FILE);
        let decoder =
            Decoder::load(&dec_path, true).map_err(|e| load(&dec_path, format!("{e:#}")))?;
        let models = Arc::new(Models {
            encoder,
            decoder,
            encoders: Mutex::new(Vec::new()),
        });
        // The smallest bucket is built now, so a voice that cannot be optimised fails here (and espeak-ng
        // speaks) rather than on the first reply.
        models
            .encoder_plan(ENCODER_BUCKETS[0])
            .map_err(|e| load(&enc_path, e.to_string()))?;
        let pad = ids[&'_'][0];
        memory::keep_working_sets();
        Ok(PiperVoice {
            models,
            ids,
            pad,
            rate,
            scales,
            espeak_voice,
        })
    }

    /// Builds the encoder plans most sentences need: the first of [`PREPARED_BUCKETS`] now, the rest in the
    /// background (a bucket not built yet when a sentence needs it is built by that sentence). For the service,
    /// which answers many questions; a one-off `jarvis say` builds only what it uses.
    pub fn prepare(&self) {
        let [now, later @ ..] = PREPARED_BUCKETS;
        if let Err(e) = self.models.encoder_plan(now) {
            tracing::warn!("piper: cannot prepare the {now}-phoneme encoder: {e}");
        }
        let models = Arc::clone(&self.models);
        let spawned = std::thread::Builder::new()
            .name("piper-prepare".into())
            .spawn(move || {
                for bucket in later {
                    if let Err(e) = models.encoder_plan(bucket) {
                        tracing::warn!("piper: cannot prepare the {bucket}-phoneme encoder: {e}");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::debug!(
                "piper: no thread to prepare the encoders {later:?} ({e}); built when needed"
            );
        }
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
        let pad = self.pad;
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
        memory::in_use();
        let run = |stage: &'static str| {
            move |e: TractError| TtsError::Run(format!("piper {stage}: {e:#}"))
        };
        let Encoded {
            durations,
            m_p: m_src,
            logs_p: l_src,
        } = self.encode(ids, self.scales)?;
        let n = ids.len();
        let scales = Tensor::from_shape(&[3], &self.scales).map_err(run("input"))?;
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
            .models
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

impl PiperVoice {
    /// The encoder's durations (one per phoneme) and priors (`[CHANNELS][n]` each) for `ids`, run in the
    /// smallest bucket that holds them, the padding cut away.
    fn encode(&self, ids: &[i64], scales: [f32; 3]) -> Result<Encoded, TtsError> {
        let bucket = ENCODER_BUCKETS
            .into_iter()
            .find(|b| *b >= ids.len())
            .ok_or(TtsError::TooLong(ids.len()))?;
        self.encode_in(ids, scales, bucket)
    }

    fn encode_in(&self, ids: &[i64], scales: [f32; 3], bucket: usize) -> Result<Encoded, TtsError> {
        let run = |e: TractError| TtsError::Run(format!("piper encoder: {e:#}"));
        let n = ids.len();
        if n > bucket {
            return Err(TtsError::TooLong(n));
        }
        let mut padded = ids.to_vec();
        padded.resize(bucket, self.pad);
        let input = Tensor::from_shape(&[1, bucket], &padded).map_err(run)?;
        let lengths = Tensor::from_shape(&[1], &[n as i64]).map_err(run)?;
        let scales = Tensor::from_shape(&[3], &scales).map_err(run)?;
        let out = self
            .models
            .encoder_plan(bucket)?
            .run(tvec!(input.into(), lengths.into(), scales.into()))
            .map_err(run)?;
        let plain = |i: usize| -> Result<Vec<f32>, TtsError> {
            Ok(out[i]
                .to_plain_array_view::<f32>()
                .map_err(run)?
                .iter()
                .copied()
                .collect())
        };
        let (durations, m_p, logs_p) = (plain(0)?, plain(1)?, plain(2)?);
        if durations.len() != bucket
            || m_p.len() != CHANNELS * bucket
            || logs_p.len() != CHANNELS * bucket
        {
            return Err(TtsError::Run(format!(
                "piper encoder shapes: {} durations, {} priors for {bucket} phonemes",
                durations.len(),
                m_p.len()
            )));
        }
        let unpad = |v: &[f32]| -> Vec<f32> {
            v.chunks(bucket)
                .flat_map(|row| &row[..n])
                .copied()
                .collect()
        };
        Ok(Encoded {
            durations: durations[..n].to_vec(),
            m_p: unpad(&m_p),
            logs_p: unpad(&logs_p),
        })
    }
}

/// What the encoder says about a sentence: frames per phoneme, and each phoneme's prior means and
/// log-deviations (`[CHANNELS][phonemes]`).
struct Encoded {
    durations: Vec<f32>,
    m_p: Vec<f32>,
    logs_p: Vec<f32>,
}

/// The two halves as parsed, and the encoder plans built so far.
struct Models {
    encoder: InferenceModel,
    decoder: Decoder,
    encoders: Mutex<Vec<(usize, Plan)>>,
}

impl Models {
    /// The encoder optimised for `bucket` phonemes: built on first use, then kept.
    fn encoder_plan(&self, bucket: usize) -> Result<Plan, TtsError> {
        let cached = |built: &Vec<(usize, Plan)>| {
            built
                .iter()
                .find(|(b, _)| *b == bucket)
                .map(|(_, p)| Arc::clone(p))
        };
        if let Some(plan) = cached(&self.encoders.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(plan);
        }
        let plan = self
            .encoder
            .clone()
            .with_input_fact(0, i64::fact([1, bucket]).into())
            .and_then(|m| m.with_input_fact(1, i64::fact([1]).into()))
            .and_then(|m| m.with_input_fact(2, f32::fact([3]).into()))
            .and_then(|m| m.into_typed())
            .map(|mut m| {
                piper_decoder::seed_noise(&mut m);
                m
            })
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| TtsError::Run(format!("piper encoder for {bucket} phonemes: {e:#}")))?;
        let mut built = self.encoders.lock().unwrap_or_else(|e| e.into_inner());
        // Two sentences may have built the same bucket at once: keep the first.
        if let Some(plan) = cached(&built) {
            return Ok(plan);
        }
        built.push((bucket, Arc::clone(&plan)));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_padding_of_a_bucket_changes_nothing() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache");
        let voice = PiperVoice::load(&dir).expect("the Piper voice (scripts/fetch-models)");
        let ids = voice.phoneme_ids("Very good, sir.").unwrap();
        assert!(ids.len() < 64, "{}", ids.len());
        // Without the noise (noise scale and noise_w 0) the encoder is deterministic: the same sentence padded
        // to 64 or to 128 phonemes must give the same durations and priors.
        let still = [0.0, 1.0, 0.0];
        let Encoded {
            durations: d64,
            m_p: m64,
            logs_p: l64,
        } = voice.encode_in(&ids, still, 64).unwrap();
        let Encoded {
            durations: d128,
            m_p: m128,
            logs_p: l128,
        } = voice.encode_in(&ids, still, 128).unwrap();
        assert_eq!(d64.len(), ids.len());
        assert_eq!(m64.len(), CHANNELS * ids.len());
        let near = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-3 * (1.0 + y.abs()))
        };
        assert!(near(&d64, &d128), "{d64:?} vs {d128:?}");
        assert!(near(&m64, &m128) && near(&l64, &l128));
        assert!(
            d64.iter().sum::<f32>() > 20.0,
            "a sentence lasts frames: {d64:?}"
        );
        // With the noise on, the encoder draws the same noise each run (it is seeded).
        let noisy = voice.scales;
        let (a, b) = (
            voice.encode_in(&ids, noisy, 64).unwrap(),
            voice.encode_in(&ids, noisy, 64).unwrap(),
        );
        assert_eq!((a.durations, a.m_p), (b.durations, b.m_p));
        // A sentence larger than the bucket asked for is refused, not cut.
        assert!(matches!(
            voice.encode_in(&ids, still, 16),
            Err(TtsError::TooLong(_))
        ));
    }
}

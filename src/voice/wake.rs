//! The wake word: openWakeWord's "hey jarvis" as a streaming pipeline of three tract plans, one step per 80 ms
//! (1280 samples at 16 kHz).
//!
//! Each step turns the newest 1760 samples (the step plus the 480 the spectrogram's window needs) into 8 mel
//! frames (scaled `x/10 + 2`, as openWakeWord does); the last 76 mel frames become one 96-d embedding — computed
//! as a stream by [`super::wake_net`], which adds only the new frames' share instead of rerunning the window —
//! and the last 16 embeddings give the score. The buffers start as openWakeWord's do — mel frames of ones, and
//! embeddings of that quiet — so a clip that opens with the wake word is still heard, and the first few scores
//! are forced to zero while the buffers fill with real sound. Whether a score *wakes* Jarvis (threshold,
//! refractory period, the VAD gate) is decided by [`WakeGate`].

use std::collections::VecDeque;
use std::path::Path;

use tract_onnx::prelude::*;

use super::wake_net::{EmbeddingNet, NetState};
use super::{load_plan, Plan, VoiceError};

pub const MEL_FILE: &str = "melspectrogram.onnx";
pub const EMBEDDING_FILE: &str = "embedding_model.onnx";
pub const CLASSIFIER_FILE: &str = "hey_jarvis_v0.1.onnx";

/// Samples per step (80 ms).
pub const STEP: usize = 1280;
/// Samples the spectrogram sees per step: the step and the window's overlap with the previous one.
const MEL_INPUT: usize = STEP + 480;
const MEL_BINS: usize = 32;
const MEL_PER_STEP: usize = 8;
const MEL_WINDOW: usize = 76;
const EMBEDDING: usize = 96;
const EMBEDDINGS: usize = 16;
/// Scores of the first steps after a reset are zero: the buffers still hold the made-up quiet.
const WARM_UP_STEPS: usize = 5;

/// The three models, loaded once and shared by every detector.
pub struct WakeModels {
    mel: Plan,
    embedding: EmbeddingNet,
    classifier: Plan,
    /// The embedding of a window of mel frames of ones (what the buffers start with), and the stream's state
    /// after that window.
    quiet: [f32; EMBEDDING],
    quiet_state: NetState,
}

impl WakeModels {
    pub fn load(dir: &Path) -> Result<WakeModels, VoiceError> {
        let mel = load_plan(&dir.join(MEL_FILE), &[&[1, MEL_INPUT]])?;
        let path = dir.join(EMBEDDING_FILE);
        let embedding = EmbeddingNet::load(&path, MEL_WINDOW, MEL_BINS)?;
        if embedding.step_frames() != MEL_PER_STEP || embedding.embedding_len() != EMBEDDING {
            return Err(VoiceError::Load {
                path: path.display().to_string(),
                message: format!(
                    "an embedding of {} values every {} frames, not {EMBEDDING} every {MEL_PER_STEP}",
                    embedding.embedding_len(),
                    embedding.step_frames()
                ),
            });
        }
        let classifier = load_plan(&dir.join(CLASSIFIER_FILE), &[&[1, EMBEDDINGS, EMBEDDING]])?;
        let (quiet, quiet_state) = embedding.start(&vec![1.0; MEL_WINDOW * MEL_BINS])?;
        let quiet = to_embedding(&quiet)?;
        Ok(WakeModels {
            mel,
            embedding,
            classifier,
            quiet,
            quiet_state,
        })
    }

    fn mel(&self, samples: &[f32]) -> Result<Vec<f32>, VoiceError> {
        let input = tract_ndarray::Array2::from_shape_vec((1, MEL_INPUT), samples.to_vec())
            .map_err(|e| VoiceError::Run(e.to_string()))?;
        let out = self
            .mel
            .run(tvec!(Tensor::from(input).into()))
            .map_err(|e| VoiceError::Run(format!("wake mel: {e}")))?;
        let view = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| VoiceError::Run(e.to_string()))?;
        let frames: Vec<f32> = view.iter().map(|x| x / 10.0 + 2.0).collect();
        if frames.len() != MEL_PER_STEP * MEL_BINS {
            return Err(VoiceError::Run(format!(
                "wake mel gave {} values, not {}",
                frames.len(),
                MEL_PER_STEP * MEL_BINS
            )));
        }
        Ok(frames)
    }

    fn classify(&self, embeddings: &[f32]) -> Result<f32, VoiceError> {
        let input =
            tract_ndarray::Array3::from_shape_vec((1, EMBEDDINGS, EMBEDDING), embeddings.to_vec())
                .map_err(|e| VoiceError::Run(e.to_string()))?;
        let out = self
            .classifier
            .run(tvec!(Tensor::from(input).into()))
            .map_err(|e| VoiceError::Run(format!("wake classifier: {e}")))?;
        let view = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| VoiceError::Run(e.to_string()))?;
        view.iter()
            .next()
            .copied()
            .ok_or_else(|| VoiceError::Run("wake classifier gave nothing".into()))
    }
}

fn to_embedding(values: &[f32]) -> Result<[f32; EMBEDDING], VoiceError> {
    values
        .try_into()
        .map_err(|_| VoiceError::Run(format!("wake embedding of {} values", values.len())))
}

/// One listener's streaming state over shared [`WakeModels`].
pub struct WakeDetector<'m> {
    models: &'m WakeModels,
    /// The newest samples, in 16-bit scale (what openWakeWord's spectrogram expects).
    raw: VecDeque<f32>,
    /// Samples not yet making up a whole step.
    pending: Vec<f32>,
    /// The embedding stream's state: where the last 76 mel frames left it.
    net: NetState,
    embeddings: VecDeque<f32>,
    steps: usize,
}

impl<'m> WakeDetector<'m> {
    pub fn new(models: &'m WakeModels) -> Self {
        let mut d = WakeDetector {
            models,
            raw: VecDeque::with_capacity(MEL_INPUT + STEP),
            pending: Vec::with_capacity(STEP),
            net: models.quiet_state.clone(),
            embeddings: VecDeque::with_capacity((EMBEDDINGS + 1) * EMBEDDING),
            steps: 0,
        };
        d.reset();
        d
    }

    /// Forgets what was heard (after a wake, so the same words cannot wake twice).
    pub fn reset(&mut self) {
        self.raw.clear();
        self.raw.extend(std::iter::repeat_n(0.0, MEL_INPUT - STEP));
        self.pending.clear();
        self.net = self.models.quiet_state.clone();
        self.embeddings.clear();
        for _ in 0..EMBEDDINGS {
            self.embeddings.extend(self.models.quiet);
        }
        self.steps = 0;
    }

    /// Feeds samples (-1..1, 16 kHz); returns the score of each whole 80 ms step they completed.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<f32>, VoiceError> {
        let mut scores = Vec::new();
        for &s in samples {
            self.pending.push(s * 32767.0);
            if self.pending.len() == STEP {
                scores.push(self.step()?);
            }
        }
        Ok(scores)
    }

    fn step(&mut self) -> Result<f32, VoiceError> {
        self.raw.extend(self.pending.drain(..));
        while self.raw.len() > MEL_INPUT {
            self.raw.pop_front();
        }
        let input: Vec<f32> = self.raw.iter().copied().collect();
        let frames = self.models.mel(&input)?;
        let embedding = self.models.embedding.step(&mut self.net, &frames)?;
        self.embeddings.extend(to_embedding(&embedding)?);
        while self.embeddings.len() > EMBEDDINGS * EMBEDDING {
            self.embeddings.pop_front();
        }
        let features: Vec<f32> = self.embeddings.iter().copied().collect();
        let score = self.models.classify(&features)?;
        self.steps += 1;
        Ok(if self.steps <= WARM_UP_STEPS {
            0.0
        } else {
            score
        })
    }
}

/// When a score wakes Jarvis: over the threshold, while someone is speaking (the VAD), and not again within the
/// refractory period of the last wake.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WakeSettings {
    /// 0..1; openWakeWord's own default 0.5.
    pub threshold: f32,
    /// No second wake within this long of the first.
    pub refractory_ms: u64,
    /// The VAD's speech probability at least one frame of the last half second must reach (0 turns the gate off).
    pub vad_gate: f32,
}

impl Default for WakeSettings {
    fn default() -> Self {
        WakeSettings {
            threshold: 0.5,
            refractory_ms: 2000,
            vad_gate: 0.5,
        }
    }
}

/// Turns scores into wakes.
#[derive(Debug)]
pub struct WakeGate {
    settings: WakeSettings,
    last_wake_ms: Option<u64>,
}

impl WakeGate {
    pub fn new(settings: WakeSettings) -> Self {
        WakeGate {
            settings,
            last_wake_ms: None,
        }
    }

    /// Whether the step ending at `at_ms` with `score` wakes, given the VAD's highest speech probability over the
    /// last half second.
    pub fn decide(&mut self, score: f32, speech: f32, at_ms: u64) -> bool {
        if score < self.settings.threshold || speech < self.settings.vad_gate {
            return false;
        }
        if let Some(last) = self.last_wake_ms {
            if at_ms.saturating_sub(last) < self.settings.refractory_ms {
                return false;
            }
        }
        self.last_wake_ms = Some(at_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_needs_score_speech_and_a_rest_between_wakes() {
        let mut g = WakeGate::new(WakeSettings::default());
        assert!(!g.decide(0.4, 0.9, 0), "below the threshold");
        assert!(!g.decide(0.9, 0.1, 80), "no speech: a sound, not a voice");
        assert!(g.decide(0.9, 0.9, 160));
        assert!(!g.decide(0.95, 0.9, 1000), "within the refractory period");
        assert!(g.decide(0.95, 0.9, 2200));
        let mut ungated = WakeGate::new(WakeSettings {
            vad_gate: 0.0,
            ..WakeSettings::default()
        });
        assert!(ungated.decide(0.6, 0.0, 0));
    }
}

//! Voice activity: Silero VAD (the OpenVINO 16 kHz export, the one file of the wheel tract loads) as a streaming
//! tract plan, one probability per 32 ms frame (512 samples, seen with the 64 before them), its LSTM state carried
//! from frame to frame. [`Utterance`] turns those probabilities into "speech started", "speech ended" (a
//! configurable silence) and "cut at the maximum length".

use std::path::Path;

use tract_onnx::prelude::*;

use super::{load_plan, Plan, VoiceError};

pub const VAD_FILE: &str = "silero_vad_openvino_16k.onnx";

/// New samples per frame (32 ms at 16 kHz).
pub const FRAME: usize = 512;
const CONTEXT: usize = 64;
const STATE: usize = 2 * 128;

/// The model, loaded once and shared.
pub struct VadModel {
    plan: Plan,
}

impl VadModel {
    pub fn load(dir: &Path) -> Result<VadModel, VoiceError> {
        let plan = load_plan(&dir.join(VAD_FILE), &[&[1, CONTEXT + FRAME], &[2, 1, 128]])?;
        Ok(VadModel { plan })
    }
}

/// One stream's state: the last 64 samples, the LSTM state, and samples short of a frame.
pub struct Vad<'m> {
    model: &'m VadModel,
    context: [f32; CONTEXT],
    state: Vec<f32>,
    pending: Vec<f32>,
}

impl<'m> Vad<'m> {
    pub fn new(model: &'m VadModel) -> Self {
        Vad {
            model,
            context: [0.0; CONTEXT],
            state: vec![0.0; STATE],
            pending: Vec::with_capacity(FRAME),
        }
    }

    pub fn reset(&mut self) {
        self.context = [0.0; CONTEXT];
        self.state.iter_mut().for_each(|s| *s = 0.0);
        self.pending.clear();
    }

    /// Feeds samples (-1..1, 16 kHz); returns the speech probability of each whole frame they completed.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<f32>, VoiceError> {
        let mut out = Vec::new();
        for &s in samples {
            self.pending.push(s);
            if self.pending.len() == FRAME {
                out.push(self.frame()?);
            }
        }
        Ok(out)
    }

    fn frame(&mut self) -> Result<f32, VoiceError> {
        let mut input = Vec::with_capacity(CONTEXT + FRAME);
        input.extend_from_slice(&self.context);
        input.extend_from_slice(&self.pending);
        self.context
            .copy_from_slice(&self.pending[FRAME - CONTEXT..]);
        self.pending.clear();
        let audio = tract_ndarray::Array2::from_shape_vec((1, CONTEXT + FRAME), input)
            .map_err(|e| VoiceError::Run(e.to_string()))?;
        let state = tract_ndarray::Array3::from_shape_vec((2, 1, 128), self.state.clone())
            .map_err(|e| VoiceError::Run(e.to_string()))?;
        let out = self
            .model
            .plan
            .run(tvec!(
                Tensor::from(audio).into(),
                Tensor::from(state).into()
            ))
            .map_err(|e| VoiceError::Run(format!("vad: {e}")))?;
        let p = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| VoiceError::Run(e.to_string()))?
            .iter()
            .next()
            .copied()
            .unwrap_or(0.0);
        let next = out[1]
            .to_plain_array_view::<f32>()
            .map_err(|e| VoiceError::Run(e.to_string()))?;
        if next.len() == STATE {
            self.state
                .iter_mut()
                .zip(next.iter())
                .for_each(|(d, s)| *d = *s);
        }
        Ok(p)
    }
}

/// How an utterance is cut out of the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UtteranceSettings {
    /// A frame at or above this probability is speech.
    pub speech: f32,
    /// This long below it after speech ends the utterance.
    pub silence_ms: u64,
    /// No utterance is longer (it is cut and transcribed as it is).
    pub max_ms: u64,
    /// Nothing said within this long of the wake: the listen ends with nothing heard.
    pub start_timeout_ms: u64,
}

impl Default for UtteranceSettings {
    fn default() -> Self {
        UtteranceSettings {
            speech: 0.5,
            silence_ms: 700,
            max_ms: 12_000,
            start_timeout_ms: 5_000,
        }
    }
}

/// What one frame did to the utterance being listened to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UtteranceStep {
    /// Still listening (before speech, or speaking).
    Listening,
    /// Speech ended: the silence after it was long enough.
    Ended,
    /// Cut at the maximum length.
    Cut,
    /// Nobody spoke.
    NothingHeard,
}

/// Follows one utterance, frame by frame.
#[derive(Debug)]
pub struct Utterance {
    settings: UtteranceSettings,
    elapsed_ms: u64,
    spoke: bool,
    quiet_ms: u64,
}

/// One frame's length.
pub const FRAME_MS: u64 = (FRAME as u64 * 1000) / super::wav::RATE as u64;

impl Utterance {
    pub fn new(settings: UtteranceSettings) -> Self {
        Utterance {
            settings,
            elapsed_ms: 0,
            spoke: false,
            quiet_ms: 0,
        }
    }

    /// Whether any speech was heard yet.
    pub fn spoke(&self) -> bool {
        self.spoke
    }

    pub fn step(&mut self, probability: f32) -> UtteranceStep {
        self.elapsed_ms += FRAME_MS;
        if probability >= self.settings.speech {
            self.spoke = true;
            self.quiet_ms = 0;
        } else {
            self.quiet_ms += FRAME_MS;
        }
        if self.elapsed_ms >= self.settings.max_ms {
            return if self.spoke {
                UtteranceStep::Cut
            } else {
                UtteranceStep::NothingHeard
            };
        }
        if self.spoke && self.quiet_ms >= self.settings.silence_ms {
            return UtteranceStep::Ended;
        }
        if !self.spoke && self.elapsed_ms >= self.settings.start_timeout_ms {
            return UtteranceStep::NothingHeard;
        }
        UtteranceStep::Listening
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        settings: UtteranceSettings,
        probs: impl IntoIterator<Item = f32>,
    ) -> (UtteranceStep, u64) {
        let mut u = Utterance::new(settings);
        let mut last = UtteranceStep::Listening;
        for p in probs {
            last = u.step(p);
            if last != UtteranceStep::Listening {
                break;
            }
        }
        (last, u.elapsed_ms)
    }

    #[test]
    fn speech_then_silence_ends_and_endless_speech_is_cut() {
        let s = UtteranceSettings::default();
        let speech_then_quiet = std::iter::repeat_n(0.9, 40).chain(std::iter::repeat(0.1));
        let (step, ms) = run(s, speech_then_quiet);
        assert_eq!(step, UtteranceStep::Ended);
        assert!(
            (40 * FRAME_MS + s.silence_ms..40 * FRAME_MS + s.silence_ms + FRAME_MS).contains(&ms)
        );
        let (step, ms) = run(s, std::iter::repeat(0.95));
        assert_eq!(step, UtteranceStep::Cut);
        assert!(ms >= s.max_ms && ms < s.max_ms + FRAME_MS);
        let (step, ms) = run(s, std::iter::repeat(0.0));
        assert_eq!(step, UtteranceStep::NothingHeard);
        assert!(ms >= s.start_timeout_ms && ms < s.start_timeout_ms + FRAME_MS);
        // Short pauses inside speech do not end it.
        let pauses = (0..400).map(|i| if i % 10 < 7 { 0.9 } else { 0.1 });
        assert_eq!(run(s, pauses).0, UtteranceStep::Cut);
    }
}

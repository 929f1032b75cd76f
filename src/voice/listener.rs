//! The ears' state machine over a stream of 16 kHz samples, live or from a file: waiting for the wake word (with
//! the VAD as its gate), then following the utterance after it until the silence that ends it, the maximum length,
//! or nobody speaking. Push-to-talk skips the wait ([`Listener::listen_now`]). What comes out is [`Heard`]: the
//! audio of the question and how its end was found, with the times the latency trace needs.

use std::collections::VecDeque;

use super::vad::{Utterance, UtteranceSettings, UtteranceStep, Vad, VadModel, FRAME_MS};
use super::wake::{WakeDetector, WakeGate, WakeModels, WakeSettings, STEP};
use super::wav::RATE;
use super::VoiceError;

/// The models the ears need, loaded once.
pub struct EarModels {
    pub wake: WakeModels,
    pub vad: VadModel,
}

impl EarModels {
    pub fn load(dir: &std::path::Path) -> Result<EarModels, VoiceError> {
        Ok(EarModels {
            wake: WakeModels::load(dir)?,
            vad: VadModel::load(dir)?,
        })
    }
}

/// Something the ears noticed.
#[derive(Debug, Clone, PartialEq)]
pub enum EarEvent {
    /// The wake word, at this point of the stream (ms), with its score.
    Woke { at_ms: u64, score: f32 },
    /// An utterance is complete.
    Heard(Heard),
}

/// One question, cut out of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    /// 16 kHz samples from the wake (or the push of the key) to the end of speech.
    pub audio: Vec<f32>,
    /// When listening began and ended, in ms of the stream.
    pub from_ms: u64,
    pub to_ms: u64,
    pub end: UtteranceStep,
}

enum Mode {
    Waiting,
    Listening { utterance: Utterance, from_ms: u64 },
}

/// Follows one stream.
pub struct Listener<'m> {
    wake: WakeDetector<'m>,
    gate: WakeGate,
    vad: Vad<'m>,
    /// Recent VAD probabilities (the last half second), for the wake gate.
    recent_speech: VecDeque<f32>,
    utterance_settings: UtteranceSettings,
    mode: Mode,
    audio: Vec<f32>,
    /// The last [`PRE_ROLL`] samples while waiting: a question that starts as the wake word ends is not clipped.
    recent: VecDeque<f32>,
    /// Samples seen so far.
    position: u64,
    /// The highest wake score seen (reported by `jarvis listen` and the benchmarks).
    pub best_score: f32,
}

/// VAD frames in the half second the wake gate looks back over.
const GATE_FRAMES: usize = 16;
/// Audio kept from before the wake (1.6 s): the wake word fires near its end and speech may follow at once; and
/// Whisper hears a short question far better with "hey Jarvis" before it (the words are stripped from the text).
const PRE_ROLL: usize = 25_600;

impl<'m> Listener<'m> {
    pub fn new(models: &'m EarModels, wake: WakeSettings, utterance: UtteranceSettings) -> Self {
        Listener {
            wake: WakeDetector::new(&models.wake),
            gate: WakeGate::new(wake),
            vad: Vad::new(&models.vad),
            recent_speech: VecDeque::with_capacity(GATE_FRAMES + 1),
            utterance_settings: utterance,
            mode: Mode::Waiting,
            audio: Vec::new(),
            recent: VecDeque::with_capacity(PRE_ROLL + STEP),
            position: 0,
            best_score: 0.0,
        }
    }

    /// The stream's position in ms.
    pub fn now_ms(&self) -> u64 {
        self.position * 1000 / RATE as u64
    }

    /// Whether an utterance is being followed.
    pub fn listening(&self) -> bool {
        matches!(self.mode, Mode::Listening { .. })
    }

    /// Starts listening at once (push-to-talk).
    pub fn listen_now(&mut self) {
        if !self.listening() {
            self.start_listening();
        }
    }

    /// Back to waiting for the wake word; an utterance being followed is dropped.
    pub fn stop_listening(&mut self) {
        self.mode = Mode::Waiting;
        self.audio.clear();
        self.wake.reset();
    }

    fn start_listening(&mut self) {
        self.mode = Mode::Listening {
            utterance: Utterance::new(self.utterance_settings),
            from_ms: self.now_ms(),
        };
        self.audio.clear();
        self.audio.extend(self.recent.drain(..));
    }

    /// Feeds samples; returns what they completed. The wake word and the VAD both run on every sample (the VAD
    /// gates the wake and ends the utterance), in steps of their own sizes.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<EarEvent>, VoiceError> {
        let mut events = Vec::new();
        // Work through the input in wake steps so a wake lands at the right sample.
        for chunk in samples.chunks(STEP) {
            let probabilities = self.vad.push(chunk)?;
            for &p in &probabilities {
                self.recent_speech.push_back(p);
                if self.recent_speech.len() > GATE_FRAMES {
                    self.recent_speech.pop_front();
                }
            }
            self.position += chunk.len() as u64;
            match &mut self.mode {
                Mode::Waiting => {
                    self.recent.extend(chunk);
                    while self.recent.len() > PRE_ROLL {
                        self.recent.pop_front();
                    }
                    let speech = self.recent_speech.iter().fold(0f32, |m, &p| m.max(p));
                    for score in self.wake.push(chunk)? {
                        self.best_score = self.best_score.max(score);
                        let at_ms = self.position * 1000 / RATE as u64;
                        if self.gate.decide(score, speech, at_ms) {
                            events.push(EarEvent::Woke { at_ms, score });
                            self.start_listening();
                            break;
                        }
                    }
                }
                Mode::Listening { utterance, from_ms } => {
                    self.audio.extend_from_slice(chunk);
                    let from_ms = *from_ms;
                    for &p in &probabilities {
                        let step = utterance.step(p);
                        if step != UtteranceStep::Listening {
                            let audio = std::mem::take(&mut self.audio);
                            events.push(EarEvent::Heard(Heard {
                                audio,
                                from_ms,
                                to_ms: self.now_ms(),
                                end: step,
                            }));
                            self.mode = Mode::Waiting;
                            // What was said must not wake Jarvis again.
                            self.wake.reset();
                            break;
                        }
                    }
                }
            }
        }
        Ok(events)
    }

    /// The stream ended (a file's last sample): an utterance being followed ends here.
    pub fn finish(&mut self) -> Option<Heard> {
        if let Mode::Listening { utterance, from_ms } = &self.mode {
            let end = if utterance.spoke() {
                UtteranceStep::Ended
            } else {
                UtteranceStep::NothingHeard
            };
            let heard = Heard {
                audio: std::mem::take(&mut self.audio),
                from_ms: *from_ms,
                to_ms: self.now_ms(),
                end,
            };
            self.mode = Mode::Waiting;
            return Some(heard);
        }
        None
    }
}

/// How long one VAD frame is, for callers that count frames.
pub const VAD_FRAME_MS: u64 = FRAME_MS;

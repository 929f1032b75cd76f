//! The sound card, through ALSA (the `alsa` crate): capture at 16 kHz mono 16-bit into 80 ms blocks, and
//! playback of a reply at its own rate. alsa-lib's `plug` layer (the "default" device, or a `plughw:` name)
//! converts rate and channels when the card cannot do them itself. Every failure is an [`AudioError`] naming the
//! device and what ALSA said: the caller shows it as "voice unavailable" and tries again later.

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use super::wav::RATE;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot open the {what} device `{device}`: {message}")]
    Open {
        what: &'static str,
        device: String,
        message: String,
    },
    #[error("the {what} device `{device}` failed: {message}")]
    Io {
        what: &'static str,
        device: String,
        message: String,
    },
}

fn configure(pcm: &PCM, rate: u32, period: usize) -> Result<(), alsa::Error> {
    let hw = HwParams::any(pcm)?;
    hw.set_access(Access::RWInterleaved)?;
    hw.set_format(Format::s16())?;
    hw.set_channels(1)?;
    hw.set_rate(rate, ValueOr::Nearest)?;
    hw.set_period_size_near(period as alsa::pcm::Frames, ValueOr::Nearest)?;
    hw.set_buffer_size_near((period * 4) as alsa::pcm::Frames)?;
    pcm.hw_params(&hw)?;
    Ok(())
}

/// The microphone.
pub struct Capture {
    pcm: PCM,
    device: String,
    buffer: Vec<i16>,
}

/// Samples per block read (80 ms: one wake-word step).
pub const BLOCK: usize = 1280;

impl Capture {
    pub fn open(device: &str) -> Result<Capture, AudioError> {
        let err = |e: alsa::Error| AudioError::Open {
            what: "capture",
            device: device.to_string(),
            message: e.to_string(),
        };
        let pcm = PCM::new(device, Direction::Capture, false).map_err(err)?;
        configure(&pcm, RATE, BLOCK).map_err(err)?;
        let rate = pcm
            .hw_params_current()
            .and_then(|h| h.get_rate())
            .map_err(err)?;
        if rate != RATE {
            return Err(AudioError::Open {
                what: "capture",
                device: device.to_string(),
                message: format!(
                    "it records at {rate} Hz, not {RATE} (use a `plughw:` or `default` device)"
                ),
            });
        }
        pcm.start().map_err(err)?;
        Ok(Capture {
            pcm,
            device: device.to_string(),
            buffer: vec![0; BLOCK],
        })
    }

    /// The next block of samples (-1..1). An overrun is recovered from (the lost audio is gone); any other error
    /// ends the capture.
    pub fn read(&mut self) -> Result<Vec<f32>, AudioError> {
        let io = self.pcm.io_i16().map_err(|e| self.io_error(e))?;
        loop {
            match io.readi(&mut self.buffer) {
                Ok(0) => {
                    return Err(AudioError::Io {
                        what: "capture",
                        device: self.device.clone(),
                        message: "end of stream".into(),
                    })
                }
                Ok(n) => {
                    return Ok(self.buffer[..n]
                        .iter()
                        .map(|&s| f32::from(s) / 32768.0)
                        .collect())
                }
                Err(e) => {
                    if self.pcm.try_recover(e, true).is_err() {
                        return Err(self.io_error(e));
                    }
                }
            }
        }
    }

    fn io_error(&self, e: alsa::Error) -> AudioError {
        AudioError::Io {
            what: "capture",
            device: self.device.clone(),
            message: e.to_string(),
        }
    }
}

/// The loudspeaker, opened for one reply at a time.
pub struct Playback {
    pcm: PCM,
    device: String,
}

impl Playback {
    pub fn open(device: &str, rate: u32) -> Result<Playback, AudioError> {
        let err = |e: alsa::Error| AudioError::Open {
            what: "playback",
            device: device.to_string(),
            message: e.to_string(),
        };
        let pcm = PCM::new(device, Direction::Playback, false).map_err(err)?;
        configure(&pcm, rate, 1024).map_err(err)?;
        Ok(Playback {
            pcm,
            device: device.to_string(),
        })
    }

    /// Plays samples (-1..1); returns when they are queued. Underruns are recovered from.
    pub fn write(&mut self, samples: &[f32]) -> Result<(), AudioError> {
        let err = |e: alsa::Error| AudioError::Io {
            what: "playback",
            device: self.device.clone(),
            message: e.to_string(),
        };
        let pcm16: Vec<i16> = samples.iter().map(|&s| super::wav::to_i16(s)).collect();
        let io = self.pcm.io_i16().map_err(err)?;
        let mut rest = &pcm16[..];
        while !rest.is_empty() {
            match io.writei(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) => self.pcm.try_recover(e, true).map_err(err)?,
            }
        }
        Ok(())
    }

    /// Waits until what was written has been played.
    pub fn drain(&mut self) -> Result<(), AudioError> {
        self.pcm.drain().map_err(|e| AudioError::Io {
            what: "playback",
            device: self.device.clone(),
            message: e.to_string(),
        })
    }

    /// Stops at once, dropping what was queued (barge-in).
    pub fn stop(&mut self) {
        let _ = self.pcm.drop();
    }
}

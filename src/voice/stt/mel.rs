//! Whisper's front end: 16 kHz audio to the 80-bin log-mel spectrogram of a 30 s window, as Whisper computes it —
//! a power STFT (400-point periodic Hann window, hop 160, reflect-padded at both ends, the last frame dropped), 80
//! Slaney-scale mel filters with Slaney normalisation, `log10(max(x, 1e-10))`, a floor 8 below the maximum, and
//! `(x + 4) / 4`. Audio shorter than 30 s is padded with silence; longer is cut.

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

pub const SAMPLES: usize = 480_000;
pub const FRAMES: usize = 3000;
pub const BINS: usize = 80;
const N_FFT: usize = 400;
const HOP: usize = 160;
const SPECTRUM: usize = N_FFT / 2 + 1;
const RATE: f32 = 16_000.0;

/// The filterbank and FFT plan, made once.
pub struct LogMel {
    filters: Vec<f32>, // BINS × SPECTRUM, row-major
    window: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMel {
    pub fn new() -> Self {
        let window = (0..N_FFT)
            .map(|i| 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / N_FFT as f32).cos())
            .collect();
        LogMel {
            filters: filterbank(),
            window,
            fft: FftPlanner::new().plan_fft_forward(N_FFT),
        }
    }

    /// The log-mel of `audio` (16 kHz, -1..1), `BINS × FRAMES` row-major (bin by bin, as the encoder takes it).
    pub fn compute(&self, audio: &[f32]) -> Vec<f32> {
        let audio = &audio[..audio.len().min(SAMPLES)];
        // Reflect-pad N_FFT/2 at both ends of the 30 s window (silence past the audio).
        let pad = N_FFT / 2;
        let padded_len = SAMPLES + 2 * pad;
        let sample = |i: usize| -> f32 {
            // i indexes the padded signal; map it back to the window, reflecting at the edges.
            let j = i as isize - pad as isize;
            let j = if j < 0 {
                -j
            } else if j >= SAMPLES as isize {
                2 * (SAMPLES as isize - 1) - j
            } else {
                j
            } as usize;
            audio.get(j).copied().unwrap_or(0.0)
        };
        let mut mel = vec![0f32; BINS * FRAMES];
        let mut buffer = vec![Complex32::new(0.0, 0.0); N_FFT];
        let mut scratch = vec![Complex32::new(0.0, 0.0); self.fft.get_inplace_scratch_len()];
        let mut power = vec![0f32; SPECTRUM];
        // Frames that lie wholly in the silence after the audio have a known (zero) spectrum.
        let last_sounding = (audio.len() + pad).div_ceil(HOP).min(FRAMES);
        debug_assert!(padded_len >= (FRAMES - 1) * HOP + N_FFT);
        for frame in 0..FRAMES {
            if frame > last_sounding {
                for b in 0..BINS {
                    mel[b * FRAMES + frame] = 0.0;
                }
                continue;
            }
            let start = frame * HOP;
            for (k, c) in buffer.iter_mut().enumerate() {
                *c = Complex32::new(sample(start + k) * self.window[k], 0.0);
            }
            self.fft.process_with_scratch(&mut buffer, &mut scratch);
            for (p, c) in power.iter_mut().zip(&buffer[..SPECTRUM]) {
                *p = c.norm_sqr();
            }
            for b in 0..BINS {
                let row = &self.filters[b * SPECTRUM..(b + 1) * SPECTRUM];
                let e: f32 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
                mel[b * FRAMES + frame] = e;
            }
        }
        let mut max = f32::MIN;
        for v in mel.iter_mut() {
            *v = v.max(1e-10).log10();
            max = max.max(*v);
        }
        let floor = max - 8.0;
        for v in mel.iter_mut() {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        mel
    }
}

fn hz_to_mel(hz: f32) -> f32 {
    // Slaney: linear below 1 kHz, logarithmic above.
    let (f_sp, min_log_hz, logstep) = (200.0 / 3.0, 1000.0, (6.4f32).ln() / 27.0);
    if hz >= min_log_hz {
        min_log_hz / f_sp + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f32) -> f32 {
    let (f_sp, min_log_hz, logstep) = (200.0 / 3.0, 1000.0, (6.4f32).ln() / 27.0);
    let min_log_mel = min_log_hz / f_sp;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        mel * f_sp
    }
}

/// 80 triangular filters over 0–8 kHz, Slaney-normalised (each filter's area is constant).
fn filterbank() -> Vec<f32> {
    let fft_freqs: Vec<f32> = (0..SPECTRUM)
        .map(|i| i as f32 * RATE / N_FFT as f32)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(RATE / 2.0));
    let points: Vec<f32> = (0..BINS + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f32 / (BINS + 1) as f32))
        .collect();
    let mut filters = vec![0f32; BINS * SPECTRUM];
    for b in 0..BINS {
        let (left, centre, right) = (points[b], points[b + 1], points[b + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let up = (f - left) / (centre - left);
            let down = (right - f) / (right - centre);
            filters[b * SPECTRUM + k] = up.min(down).max(0.0) * norm;
        }
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filterbank_matches_librosa_slaney() {
        // Values from librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) (norm="slaney", htk=False).
        let f = filterbank();
        let at = |b: usize, k: usize| f[b * SPECTRUM + k];
        assert!((at(0, 1) - 0.024_862_6).abs() < 1e-6, "{}", at(0, 1));
        assert!((at(1, 1) - 0.001_990_82).abs() < 1e-6);
        assert!((at(1, 2) - 0.022_871_8).abs() < 1e-6);
        assert!((at(40, 43) - 0.014_735_6).abs() < 1e-6);
        assert!((at(79, 187) - 0.000_833_070).abs() < 1e-6);
        assert_eq!(at(0, 0), 0.0);
    }

    #[test]
    fn silence_is_the_floor_and_a_tone_lights_its_band() {
        let mel = LogMel::new();
        let quiet = mel.compute(&[]);
        assert!(quiet.iter().all(|v| (v - quiet[0]).abs() < 1e-6));
        // A 1 kHz tone for one second: its band is the loudest of the first frames.
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (i as f32 * 1000.0 * std::f32::consts::TAU / 16_000.0).sin() * 0.5)
            .collect();
        let m = mel.compute(&tone);
        let frame = 50;
        let loudest = (0..BINS)
            .max_by(|&a, &b| m[a * FRAMES + frame].total_cmp(&m[b * FRAMES + frame]))
            .unwrap();
        let centre_hz = mel_to_hz(hz_to_mel(8000.0) * (loudest + 1) as f32 / (BINS + 1) as f32);
        assert!(
            (centre_hz - 1000.0).abs() < 80.0,
            "band {loudest} at {centre_hz} Hz"
        );
        // Long after the tone, frames are at the floor (max - 8 scaled).
        let max = m.iter().fold(f32::MIN, |a, &b| a.max(b));
        assert!((m[10 * FRAMES + 2000] - (max - 2.0)).abs() < 1e-5);
    }
}

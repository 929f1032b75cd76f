//! WAV files in and out: what `jarvis listen --wav` hears and writes, and what the tests feed the pipeline.
//!
//! Reading accepts PCM of 8 to 32 bits and 32-bit float, any channel count (mixed down to mono) and any rate from
//! 8 to 192 kHz (resampled to the 16 kHz the models hear, with rubato's FFT resampler). Everything else — another
//! encoding, a truncated header, a file with no samples, a clip longer than [`MAX_SECONDS`] — is a [`WavError`]
//! that says which, never a panic. Writing is 16-bit mono PCM at the voice's rate.

use std::io::{Read, Seek, Write};
use std::path::Path;

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

/// The rate every model in the voice pipeline hears.
pub const RATE: u32 = 16_000;

/// The longest clip read: ten minutes (about 38 MB of samples at 16 kHz).
pub const MAX_SECONDS: u32 = 600;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot open {path}: {message}")]
    Open { path: String, message: String },
    #[error("not a WAV file this reader understands: {0}")]
    Format(String),
    #[error("the WAV file has no samples")]
    Empty,
    #[error("the WAV file is cut short after {read} of {expected} samples")]
    Truncated { read: usize, expected: usize },
    #[error("a sample rate of {0} Hz is outside 8000–192000 Hz")]
    Rate(u32),
    #[error("the clip is longer than {MAX_SECONDS} s")]
    TooLong,
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

/// Mono samples in -1..1 at [`RATE`], with what the file was before it was converted.
#[derive(Debug, Clone)]
pub struct Clip {
    pub samples: Vec<f32>,
    /// The file's own rate and channel count.
    pub source_rate: u32,
    pub source_channels: u16,
}

impl Clip {
    pub fn seconds(&self) -> f32 {
        self.samples.len() as f32 / RATE as f32
    }
}

/// Reads a WAV file into 16 kHz mono.
pub fn read(path: &Path) -> Result<Clip, WavError> {
    let file = std::fs::File::open(path).map_err(|e| WavError::Open {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    read_from(std::io::BufReader::new(file))
}

/// Reads WAV bytes from any reader into 16 kHz mono.
pub fn read_from<R: Read + Seek>(reader: R) -> Result<Clip, WavError> {
    let mut wav = hound::WavReader::new(reader).map_err(format_error)?;
    let spec = wav.spec();
    if !(8_000..=192_000).contains(&spec.sample_rate) {
        return Err(WavError::Rate(spec.sample_rate));
    }
    if spec.channels == 0 {
        return Err(WavError::Format("zero channels".into()));
    }
    let channels = spec.channels as usize;
    // The header's length is a claim: it bounds the reservation, never allocates by itself.
    let claimed = wav.len() as usize;
    if claimed as u64 > u64::from(MAX_SECONDS) * u64::from(spec.sample_rate) * channels as u64 {
        return Err(WavError::TooLong);
    }
    let interleaved = read_samples(&mut wav, spec, claimed)?;
    let frames = interleaved.len() / channels;
    if frames == 0 {
        return Err(WavError::Empty);
    }
    let mono: Vec<f32> = if channels == 1 {
        interleaved
    } else {
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() / channels as f32)
            .collect()
    };
    let samples = resample(&mono, spec.sample_rate, RATE)?;
    Ok(Clip {
        samples,
        source_rate: spec.sample_rate,
        source_channels: spec.channels,
    })
}

fn read_samples<R: Read>(
    wav: &mut hound::WavReader<R>,
    spec: hound::WavSpec,
    claimed: usize,
) -> Result<Vec<f32>, WavError> {
    let mut out = Vec::with_capacity(claimed.min(1 << 22));
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            for s in wav.samples::<f32>() {
                match s {
                    Ok(v) if v.is_finite() => out.push(v.clamp(-1.0, 1.0)),
                    Ok(_) => out.push(0.0),
                    Err(e) => return Err(sample_error(e, out.len(), claimed)),
                }
            }
        }
        (hound::SampleFormat::Int, bits @ 8..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            for s in wav.samples::<i32>() {
                match s {
                    Ok(v) => out.push(v as f32 * scale),
                    Err(e) => return Err(sample_error(e, out.len(), claimed)),
                }
            }
        }
        (format, bits) => {
            return Err(WavError::Format(format!(
                "{bits}-bit {} samples",
                if format == hound::SampleFormat::Float {
                    "float"
                } else {
                    "integer"
                }
            )))
        }
    }
    if out.len() < claimed {
        return Err(WavError::Truncated {
            read: out.len(),
            expected: claimed,
        });
    }
    Ok(out)
}

fn sample_error(e: hound::Error, read: usize, expected: usize) -> WavError {
    match e {
        hound::Error::IoError(_) => WavError::Truncated { read, expected },
        other => WavError::Format(other.to_string()),
    }
}

fn format_error(e: hound::Error) -> WavError {
    match e {
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            WavError::Format("the header is cut short".into())
        }
        other => WavError::Format(other.to_string()),
    }
}

/// Resamples mono audio from `from` Hz to `to` Hz (a copy when they are equal).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, WavError> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| WavError::Format(format!("cannot resample {from} Hz: {e}")))?;
    let input = vec![samples.to_vec()];
    let adapter = SequentialSliceOfVecs::new(&input, 1, samples.len())
        .map_err(|e| WavError::Format(format!("cannot resample: {e}")))?;
    let out = resampler
        .process_all(&adapter, samples.len(), None)
        .map_err(|e| WavError::Format(format!("cannot resample: {e}")))?;
    Ok(out.take_data())
}

/// Writes mono samples (-1..1) as 16-bit PCM at `rate`.
pub fn write(path: &Path, samples: &[f32], rate: u32) -> Result<(), WavError> {
    let err = |e: String| WavError::Write {
        path: path.display().to_string(),
        message: e,
    };
    let file = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    write_to(std::io::BufWriter::new(file), samples, rate).map_err(|e| err(e.to_string()))
}

/// Writes mono samples as 16-bit PCM WAV to any writer.
pub fn write_to<W: Write + Seek>(
    writer: W,
    samples: &[f32],
    rate: u32,
) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::new(writer, spec)?;
    for &s in samples {
        wav.write_sample(to_i16(s))?;
    }
    wav.finalize()
}

/// A sample in -1..1 as 16-bit PCM (clipped).
pub fn to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// WAV bytes in memory (what the side port serves).
pub fn to_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    // Writing into memory cannot fail but for a sample count over 4 GiB, which the pipeline never makes.
    if write_to(&mut cursor, samples, rate).is_err() {
        return Vec::new();
    }
    cursor.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn wav_bytes(spec: hound::WavSpec, frames: usize, f: impl Fn(usize) -> i32) -> Vec<u8> {
        let mut c = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut c, spec).unwrap();
        for i in 0..frames * spec.channels as usize {
            if spec.sample_format == hound::SampleFormat::Float {
                w.write_sample(f(i) as f32 / 32768.0).unwrap();
            } else {
                w.write_sample(f(i)).unwrap();
            }
        }
        w.finalize().unwrap();
        c.into_inner()
    }

    fn spec(rate: u32, channels: u16, bits: u16, float: bool) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        }
    }

    fn tone(i: usize, rate: f32) -> i32 {
        ((i as f32 * 440.0 * std::f32::consts::TAU / rate).sin() * 16000.0) as i32
    }

    #[test]
    fn a_16k_mono_file_reads_as_is_and_round_trips() {
        let bytes = wav_bytes(spec(16_000, 1, 16, false), 1600, |i| tone(i, 16_000.0));
        let clip = read_from(Cursor::new(&bytes)).unwrap();
        assert_eq!(clip.samples.len(), 1600);
        assert!((clip.samples[10] - tone(10, 16_000.0) as f32 / 32768.0).abs() < 1e-4);
        let again = read_from(Cursor::new(to_bytes(&clip.samples, RATE))).unwrap();
        assert_eq!(again.samples.len(), 1600);
        assert!((again.samples[10] - clip.samples[10]).abs() < 1e-3);
    }

    #[test]
    fn other_rates_and_stereo_become_16k_mono() {
        // 44.1 kHz stereo, one second: the left channel a tone, the right silent, so the mix is half the tone.
        let bytes = wav_bytes(spec(44_100, 2, 16, false), 44_100, |i| {
            if i % 2 == 0 {
                tone(i / 2, 44_100.0)
            } else {
                0
            }
        });
        let clip = read_from(Cursor::new(&bytes)).unwrap();
        assert_eq!((clip.source_rate, clip.source_channels), (44_100, 2));
        assert!(
            (clip.samples.len() as i64 - 16_000).abs() <= 2,
            "{}",
            clip.samples.len()
        );
        let peak = clip.samples[1000..15000]
            .iter()
            .fold(0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.244).abs() < 0.02, "peak {peak}");
        // 24-bit, 8-bit and float read too.
        for s in [
            spec(48_000, 1, 24, false),
            spec(8_000, 1, 8, false),
            spec(22_050, 1, 32, true),
        ] {
            let bytes = wav_bytes(s, s.sample_rate as usize / 10, |i| {
                tone(i, s.sample_rate as f32) >> (16 - s.bits_per_sample.min(16) as i32).max(0)
            });
            let clip = read_from(Cursor::new(&bytes)).unwrap();
            assert!(
                (clip.seconds() - 0.1).abs() < 0.01,
                "{s:?}: {}",
                clip.seconds()
            );
        }
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let good = wav_bytes(spec(16_000, 1, 16, false), 1600, |i| tone(i, 16_000.0));
        // Cut in the middle of the samples.
        let cut = &good[..good.len() - 1000];
        assert!(matches!(
            read_from(Cursor::new(cut)),
            Err(WavError::Truncated { .. })
        ));
        // Cut inside the header.
        assert!(matches!(
            read_from(Cursor::new(&good[..20])),
            Err(WavError::Format(_))
        ));
        // Not a WAV at all (a JPEG's first bytes under a .wav name).
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1,
        ];
        assert!(matches!(
            read_from(Cursor::new(&jpeg[..])),
            Err(WavError::Format(_))
        ));
        assert!(matches!(
            read_from(Cursor::new(&[][..])),
            Err(WavError::Format(_))
        ));
        // No samples.
        let empty = wav_bytes(spec(16_000, 1, 16, false), 0, |_| 0);
        assert!(matches!(
            read_from(Cursor::new(&empty)),
            Err(WavError::Empty)
        ));
        // A rate no microphone records at.
        let slow = wav_bytes(spec(4_000, 1, 16, false), 400, |_| 0);
        assert!(matches!(
            read_from(Cursor::new(&slow)),
            Err(WavError::Rate(4000))
        ));
        // A header that claims hours: refused before reading.
        let mut long = good.clone();
        let huge = (MAX_SECONDS * 16_000 * 2 + 2).to_le_bytes();
        long[40..44].copy_from_slice(&huge);
        assert!(matches!(
            read_from(Cursor::new(&long)),
            Err(WavError::TooLong)
        ));
    }

    #[test]
    fn clipping_and_non_finite_floats_stay_in_range() {
        assert_eq!(to_i16(3.0), 32767);
        assert_eq!(to_i16(-3.0), -32767);
        let mut c = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut c, spec(16_000, 1, 32, true)).unwrap();
        for v in [f32::NAN, f32::INFINITY, 2.0, -0.5] {
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let clip = read_from(Cursor::new(c.into_inner())).unwrap();
        assert_eq!(clip.samples, vec![0.0, 0.0, 1.0, -0.5]);
    }
}

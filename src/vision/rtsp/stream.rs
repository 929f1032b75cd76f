//! One camera stream, decoded on-device with FFmpeg (`ffmpeg-next`): opening it (RTSP over TCP, or a video file
//! played in a loop at its own pace), reading and decoding every packet (H.264, H.265 or anything else FFmpeg
//! decodes), and handing out a picture at the sampling rate, scaled with swscale to RGB for the face engine and
//! the live tile, with a cheap motion measure. It blocks: it runs on a thread of its own (see `super::run`).
//!
//! Every blocking FFmpeg call is bounded: an interrupt callback ends it when the caller stops or a deadline passes
//! (connecting, and each read), so a server that accepts and then says nothing cannot hold the thread. FFmpeg's
//! own log is silenced: it can print the URL it was given, and the URL carries the password.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;

use crate::vision::photo::Photo;

/// What to open.
#[derive(Clone)]
pub enum Input {
    /// An RTSP URL, with the password already in it: never logged, never in an error.
    Rtsp { url_with_secret: String },
    /// A video file played in a loop, paced as if live (demos, tests).
    File(PathBuf),
}

#[derive(Clone)]
pub struct StreamSettings {
    pub input: Input,
    /// A picture is handed out this often.
    pub sample_every: Duration,
    /// Opening (RTSP's DESCRIBE/SETUP/PLAY and the stream's first packets) must be done in this time.
    pub connect_timeout: Duration,
    /// A read that brings nothing for this long ends the stream (a peer that stopped sending).
    pub stall_timeout: Duration,
    /// No decoded picture for this long ends the stream (a stream that never sends a keyframe).
    pub picture_timeout: Duration,
    /// Sampled pictures are scaled so their longer side is at most this.
    pub max_side: u32,
}

/// What the stream tells its reader as it goes.
pub enum News {
    /// The stream is open and decoding.
    Live {
        codec: String,
        width: u32,
        height: u32,
    },
    /// A sampled picture.
    Sample(Sample),
}

pub struct Sample {
    pub photo: Photo,
    pub at_ms: u64,
    /// How much the picture changed since the previous sample: the mean absolute difference of a coarse grid of
    /// luma values, 0 (still) to 1.
    pub motion: f32,
}

/// Why a stream ended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamError {
    #[error("the camera refused the credentials ({0})")]
    Refused(String),
    #[error("no such stream on the camera ({0})")]
    NotFound(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("no picture: {0}")]
    NoPicture(String),
    #[error("cannot decode: {0}")]
    Unsupported(String),
    #[error("lost: {0}")]
    Lost(String),
    #[error("stopped")]
    Stopped,
}

/// Pictures larger than this (8K is 33 MP) end the stream: a hostile "camera" does not get to make the decoder
/// and the scaler allocate without bound.
pub const MAX_PIXELS: u64 = 40_000_000;

static INIT: Once = Once::new();

fn init() {
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        // FFmpeg's messages can quote the URL (and so the password); our own errors say what happened.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
    });
}

/// Plays the stream until it ends, an error, or `stop`; `news` gets each event and returns false to stop.
pub fn play(
    settings: &StreamSettings,
    stop: &Arc<AtomicBool>,
    mut news: impl FnMut(News) -> bool,
) -> StreamError {
    init();
    loop {
        match play_once(settings, stop, &mut news) {
            // A file starts again from the beginning (if it had pictures); a live stream that ends is lost.
            Ok(0) => return StreamError::NoPicture("the stream ended without a picture".into()),
            Ok(_) if matches!(settings.input, Input::File(_)) => continue,
            Ok(_) => return StreamError::Lost("the camera ended the stream".into()),
            Err(e) => return e,
        }
    }
}

/// Deadline for the current blocking call, in ms since `epoch`; 0 is none.
struct Watchdog {
    epoch: Instant,
    deadline: Arc<AtomicU64>,
}

impl Watchdog {
    /// Whether the current deadline has passed (FFmpeg may report the interruption as some other error).
    fn expired(&self) -> bool {
        let d = self.deadline.load(Ordering::Relaxed);
        d != 0 && self.epoch.elapsed().as_millis() as u64 > d
    }

    fn arm(&self, within: Duration) {
        let at = self.epoch.elapsed() + within;
        self.deadline
            .store(at.as_millis().max(1) as u64, Ordering::Relaxed);
    }
}

fn play_once(
    settings: &StreamSettings,
    stop: &Arc<AtomicBool>,
    news: &mut impl FnMut(News) -> bool,
) -> Result<u64, StreamError> {
    let watchdog = Watchdog {
        epoch: Instant::now(),
        deadline: Arc::new(AtomicU64::new(0)),
    };
    let interrupt = {
        let (stop, deadline, epoch) = (stop.clone(), watchdog.deadline.clone(), watchdog.epoch);
        move || {
            let d = deadline.load(Ordering::Relaxed);
            stop.load(Ordering::Relaxed) || (d != 0 && epoch.elapsed().as_millis() as u64 > d)
        }
    };
    let (path, options, live) = match &settings.input {
        Input::Rtsp { url_with_secret } => {
            let mut o = ffmpeg::Dictionary::new();
            o.set("rtsp_transport", "tcp");
            // FFmpeg's own socket I/O timeout (µs), a backstop set beyond the watchdog's, which ends a silent
            // peer first and says so.
            let backstop =
                settings.connect_timeout.max(settings.stall_timeout) + Duration::from_secs(5);
            o.set("timeout", &backstop.as_micros().to_string());
            (url_with_secret.clone(), o, true)
        }
        Input::File(p) => (p.display().to_string(), ffmpeg::Dictionary::new(), false),
    };
    watchdog.arm(settings.connect_timeout);
    let mut input = ffmpeg::format::input_with_interrupt_and_dictionary(&path, interrupt, options)
        .map_err(|e| opening_failed(e, stop, watchdog.expired(), settings.connect_timeout))?;
    drop(path);
    let (index, time_base, parameters) = {
        let stream = input
            .streams()
            .best(ffmpeg::media::Type::Video)
            .ok_or_else(|| StreamError::Unsupported("the stream has no video".into()))?;
        (stream.index(), stream.time_base(), stream.parameters())
    };
    let context = ffmpeg::codec::context::Context::from_parameters(parameters)
        .map_err(|e| StreamError::Unsupported(e.to_string()))?;
    let mut decoder = context
        .decoder()
        .video()
        .map_err(|e| StreamError::Unsupported(format!("no decoder for this video: {e}")))?;
    let codec = decoder
        .codec()
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| "unknown".into());

    let mut sampler = Sampler::new(settings.max_side);
    let mut packet = ffmpeg::Packet::empty();
    let mut frame = ffmpeg::frame::Video::empty();
    let mut pictures = 0u64;
    let mut last_picture = Instant::now();
    let mut next_sample = Instant::now();
    let mut pace = Pace::new(live, time_base);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(StreamError::Stopped);
        }
        if last_picture.elapsed() > settings.picture_timeout {
            return Err(StreamError::NoPicture(format!(
                "nothing decodable in {} s (no keyframe)",
                settings.picture_timeout.as_secs()
            )));
        }
        watchdog.arm(settings.stall_timeout);
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => return Ok(pictures),
            Err(ffmpeg::Error::Exit) if stop.load(Ordering::Relaxed) => {
                return Err(StreamError::Stopped)
            }
            Err(_) if watchdog.expired() => {
                return Err(StreamError::Timeout(format!(
                    "nothing received for {} s",
                    settings.stall_timeout.as_secs()
                )))
            }
            Err(e) => return Err(StreamError::Lost(e.to_string())),
        }
        if packet.stream() != index {
            continue;
        }
        pace.wait(packet.pts().or(packet.dts()), stop);
        // A damaged packet (a frame cut in half) is skipped; the decoder recovers at the next keyframe.
        if decoder.send_packet(&packet).is_err() {
            continue;
        }
        while decoder.receive_frame(&mut frame).is_ok() {
            last_picture = Instant::now();
            pictures += 1;
            if u64::from(frame.width()) * u64::from(frame.height()) > MAX_PIXELS {
                return Err(StreamError::Unsupported(format!(
                    "{}×{} pictures are beyond what a camera sends ({} MP at most)",
                    frame.width(),
                    frame.height(),
                    MAX_PIXELS / 1_000_000
                )));
            }
            if pictures == 1 {
                let live = News::Live {
                    codec: codec.clone(),
                    width: frame.width(),
                    height: frame.height(),
                };
                if !news(live) {
                    return Err(StreamError::Stopped);
                }
            }
            if Instant::now() >= next_sample {
                next_sample = Instant::now() + settings.sample_every;
                match sampler.sample(&frame) {
                    Ok(s) => {
                        if !news(News::Sample(s)) {
                            return Err(StreamError::Stopped);
                        }
                    }
                    Err(e) => return Err(StreamError::Unsupported(e)),
                }
            }
        }
    }
}

fn opening_failed(
    e: ffmpeg::Error,
    stop: &AtomicBool,
    expired: bool,
    within: Duration,
) -> StreamError {
    use ffmpeg::Error as E;
    match e {
        _ if stop.load(Ordering::Relaxed) => StreamError::Stopped,
        _ if expired => {
            StreamError::Timeout(format!("not connected within {} s", within.as_secs()))
        }
        E::HttpUnauthorized => StreamError::Refused("401 Unauthorized".into()),
        E::HttpForbidden => StreamError::Refused("403 Forbidden".into()),
        E::HttpNotFound => StreamError::NotFound("404 Not Found".into()),
        E::Exit => StreamError::Timeout(format!("not connected within {} s", within.as_secs())),
        E::Other { errno } if errno == libc::ECONNREFUSED => {
            StreamError::Lost("connection refused".into())
        }
        E::Other { errno } if errno == libc::ETIMEDOUT => {
            StreamError::Timeout(format!("not connected within {} s", within.as_secs()))
        }
        other => StreamError::Lost(other.to_string()),
    }
}

/// Keeps a file's playback at its own frame rate (a live stream paces itself).
struct Pace {
    live: bool,
    time_base: f64,
    start: Option<(Instant, i64)>,
}

impl Pace {
    fn new(live: bool, time_base: ffmpeg::Rational) -> Pace {
        Pace {
            live,
            time_base: f64::from(time_base),
            start: None,
        }
    }

    fn wait(&mut self, ts: Option<i64>, stop: &AtomicBool) {
        let (true, Some(ts)) = (!self.live, ts) else {
            return;
        };
        let (t0, ts0) = *self.start.get_or_insert((Instant::now(), ts));
        let due = Duration::from_secs_f64(((ts - ts0) as f64 * self.time_base).clamp(0.0, 3600.0));
        while Instant::now() < t0 + due && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((t0 + due - Instant::now()).min(Duration::from_millis(100)));
        }
    }
}

/// Scales sampled frames to RGB (swscale) and measures motion between them.
struct Sampler {
    max_side: u32,
    scaler: Option<(
        ffmpeg::software::scaling::Context,
        (ffmpeg::format::Pixel, u32, u32),
    )>,
    previous: Option<Vec<u8>>,
}

/// The motion grid: this many luma values across and down.
const GRID: (usize, usize) = (32, 18);

impl Sampler {
    fn new(max_side: u32) -> Sampler {
        Sampler {
            max_side: max_side.max(64),
            scaler: None,
            previous: None,
        }
    }

    fn sample(&mut self, frame: &ffmpeg::frame::Video) -> Result<Sample, String> {
        let (format, w, h) = (frame.format(), frame.width(), frame.height());
        if w == 0 || h == 0 {
            return Err("a picture with no size".into());
        }
        let scale = (self.max_side as f32 / w.max(h) as f32).min(1.0);
        // Even sizes, at least 2: what swscale and the face engine expect.
        let (dw, dh) = (
            (((w as f32 * scale) as u32) & !1).max(2),
            (((h as f32 * scale) as u32) & !1).max(2),
        );
        if self.scaler.as_ref().map(|(_, k)| *k) != Some((format, w, h)) {
            let s = ffmpeg::software::scaling::Context::get(
                format,
                w,
                h,
                ffmpeg::format::Pixel::RGB24,
                dw,
                dh,
                // FAST_BILINEAR: cheaper than BILINEAR (the decode benchmark: 15.4 → 14.4 % of a core at
                // 2 fps), and the face engine resamples what it looks at anyway (letterbox, alignment).
                ffmpeg::software::scaling::Flags::FAST_BILINEAR,
            )
            .map_err(|e| format!("cannot convert {format:?} pictures: {e}"))?;
            self.scaler = Some((s, (format, w, h)));
            self.previous = None;
        }
        let Some((scaler, _)) = self.scaler.as_mut() else {
            return Err("no scaler".into());
        };
        let mut rgb = ffmpeg::frame::Video::empty();
        scaler.run(frame, &mut rgb).map_err(|e| e.to_string())?;
        let (ow, oh) = (rgb.width() as usize, rgb.height() as usize);
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        let mut packed = Vec::with_capacity(ow * oh * 3);
        for y in 0..oh {
            packed.extend_from_slice(&data[y * stride..y * stride + ow * 3]);
        }
        let grid = luma_grid(&packed, ow, oh);
        let motion = match &self.previous {
            Some(p) => {
                let sum: u32 = p
                    .iter()
                    .zip(&grid)
                    .map(|(a, b)| u32::from(a.abs_diff(*b)))
                    .sum();
                sum as f32 / (grid.len() as f32 * 255.0)
            }
            None => 1.0,
        };
        self.previous = Some(grid);
        Ok(Sample {
            photo: Photo {
                width: ow as u32,
                height: oh as u32,
                rgb: packed,
            },
            at_ms: crate::time::now_ms(),
            motion,
        })
    }
}

/// A coarse grid of luma values over a packed RGB picture.
fn luma_grid(rgb: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(GRID.0 * GRID.1);
    for gy in 0..GRID.1 {
        for gx in 0..GRID.0 {
            let (x, y) = (
                (gx * 2 + 1) * w / (GRID.0 * 2),
                (gy * 2 + 1) * h / (GRID.1 * 2),
            );
            let i = (y * w + x) * 3;
            let (r, g, b) = (
                u32::from(rgb[i]),
                u32::from(rgb[i + 1]),
                u32::from(rgb[i + 2]),
            );
            out.push(((r * 77 + g * 150 + b * 29) >> 8) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_luma_grid_sees_a_change_and_not_a_still() {
        let (w, h) = (64, 36);
        let grey = vec![100u8; w * h * 3];
        let mut lit = grey.clone();
        for px in lit.chunks_mut(3).take(w * h / 2) {
            px.copy_from_slice(&[250, 250, 250]);
        }
        let (a, b) = (luma_grid(&grey, w, h), luma_grid(&lit, w, h));
        assert_eq!(a.len(), GRID.0 * GRID.1);
        assert_eq!(a, luma_grid(&grey, w, h));
        assert!(a.iter().zip(&b).filter(|(x, y)| x != y).count() >= a.len() / 3);
    }

    #[test]
    fn a_missing_file_is_lost_not_a_panic() {
        let settings = StreamSettings {
            input: Input::File("/nonexistent/clip.mp4".into()),
            sample_every: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            stall_timeout: Duration::from_secs(2),
            picture_timeout: Duration::from_secs(2),
            max_side: 640,
        };
        let e = play(&settings, &Arc::new(AtomicBool::new(false)), |_| true);
        assert!(matches!(e, StreamError::Lost(_)), "{e:?}");
    }
}

//! The latest picture of each camera Jarvis decodes itself (RTSP, a looping file): put by the camera's reader at
//! its sampling rate, read by the live tile, the side port's `latest.jpg` and `camera_snapshot`. Only the newest
//! frame per camera is held (a few hundred KB each); a frame older than [`FRESH_FOR`] is not handed out, so a
//! lost camera never shows a stale picture as if live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::vision::photo::Photo;

/// A frame older than this is not "latest" any more (ms).
pub const FRESH_FOR_MS: u64 = 10_000;

#[derive(Clone)]
pub struct LiveFrame {
    pub photo: Arc<Photo>,
    pub at_ms: u64,
}

/// Shared by the camera readers (writers) and whoever shows frames (readers).
#[derive(Clone, Default)]
pub struct LiveFrames(Arc<Mutex<HashMap<String, LiveFrame>>>);

impl LiveFrames {
    pub fn put(&self, camera: &str, photo: Arc<Photo>, at_ms: u64) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(camera.to_string(), LiveFrame { photo, at_ms });
        }
    }

    /// Forgets a camera's frame (it was lost).
    pub fn clear(&self, camera: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(camera);
        }
    }

    /// The camera's latest frame, if fresh.
    pub fn latest(&self, camera: &str) -> Option<LiveFrame> {
        let f = self.0.lock().ok()?.get(camera).cloned()?;
        (crate::time::now_ms().saturating_sub(f.at_ms) <= FRESH_FOR_MS).then_some(f)
    }

    /// The camera's latest frame as a JPEG, scaled down to `height` if given (never up).
    pub fn latest_jpeg(&self, camera: &str, height: Option<u32>) -> Option<Vec<u8>> {
        let f = self.latest(camera)?;
        encode(&f.photo, height)
    }
}

/// A picture as a JPEG of quality 80, scaled down to `height` if given.
pub fn encode(photo: &Photo, height: Option<u32>) -> Option<Vec<u8>> {
    let img = image::RgbImage::from_raw(photo.width, photo.height, photo.rgb.clone())?;
    let img = match height {
        Some(h) if h < photo.height && h > 0 => {
            let w = ((photo.width as u64 * h as u64) / photo.height as u64).max(1) as u32;
            image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
        }
        _ => img,
    };
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    image::ImageEncoder::write_image(
        enc,
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_frame_is_handed_out_while_fresh_and_scaled_down_only() {
        let frames = LiveFrames::default();
        let photo = Arc::new(Photo {
            width: 64,
            height: 32,
            rgb: vec![128; 64 * 32 * 3],
        });
        frames.put("hall", photo.clone(), crate::time::now_ms());
        let small = frames.latest_jpeg("hall", Some(16)).expect("fresh");
        let p = crate::vision::photo::decode(&small, &Default::default()).expect("a jpeg");
        assert_eq!((p.width, p.height), (32, 16));
        let same = frames.latest_jpeg("hall", Some(400)).expect("fresh");
        let p = crate::vision::photo::decode(&same, &Default::default()).expect("a jpeg");
        assert_eq!((p.width, p.height), (64, 32), "never scaled up");
        frames.put("hall", photo, crate::time::now_ms() - FRESH_FOR_MS - 1);
        assert!(
            frames.latest("hall").is_none(),
            "a stale frame is not latest"
        );
        assert!(frames.latest("garden").is_none());
    }
}

//! Cameras Jarvis decodes itself (`source = "rtsp"`, or `"file"` for a looping clip): one task per camera that
//! keeps its [`stream`] open on a thread of its own, shows the stream's state (connecting, live, lost, refused,
//! since when and why) in the state and on the bus, keeps the latest frame for the tile ([`LiveFrames`]), and
//! hands pictures to the face engine while something is likely to be there (motion, or a face seen moments ago).
//!
//! Reconnecting backs off from 0.5 s to 5 s, so a camera that comes back is live again within seconds; refused
//! credentials wait a minute between tries (no retry storm against a camera that locks accounts). A run of
//! pictures with the same face is one track (a "visit"), recorded at most [`RECORDS_PER_VISIT`] times, so a
//! person standing at the door is one arrival, not one per frame.

pub mod stream;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::FaceSlot;
use crate::bus::Bus;
use crate::state::StateHandle;
use crate::vision::cameras::{CameraSettings, CameraSource};
use crate::vision::frames::LiveFrames;
use crate::vision::household::set_camera_state;
use crate::vision::service::SeenAt;
use stream::{Input, News, StreamError, StreamSettings};

/// A face within this gap of the same face's last sighting belongs to the same visit (track)…
pub const VISIT_GAP: Duration = Duration::from_secs(20);
/// …where "the same face" is a cosine this close to it (looser than a match to a person: the frames are seconds
/// apart).
pub const SAME_FACE: f32 = 0.45;
/// Visits followed at once per camera (the oldest is forgotten beyond).
pub const MAX_VISITS: usize = 16;
/// A visit's faces are recorded at most this many times…
pub const RECORDS_PER_VISIT: u32 = 3;
/// …and at most this often.
pub const RECORD_EVERY: Duration = Duration::from_secs(3);
/// Below this motion (see [`stream::Sample::motion`]) a picture is looked at only every [`LOOK_ANYWAY`].
pub const MOTION_MIN: f32 = 0.012;
pub const LOOK_ANYWAY: Duration = Duration::from_secs(15);
/// Back-off between reconnections, and the wait after refused credentials.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
pub const REFUSED_WAIT: Duration = Duration::from_secs(60);

/// Whether Jarvis decodes this camera itself.
pub fn decodes(camera: &CameraSettings) -> bool {
    matches!(
        camera.source,
        CameraSource::Rtsp { .. } | CameraSource::File { .. }
    )
}

/// The URL FFmpeg is given: the configured one with the password put in after the user (percent-encoded).
pub fn url_with_password(url: &str, password: Option<&str>) -> String {
    let Some(pw) = password else {
        return url.to_string();
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((user, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let encoded: String = pw
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{scheme}://{user}:{encoded}@{host}{path}")
}

/// Everything a camera task needs, cloned from the app's handles.
#[derive(Clone)]
pub struct CameraTask {
    pub camera: CameraSettings,
    pub faces: FaceSlot,
    pub bus: Bus,
    pub state: StateHandle,
    pub frames: LiveFrames,
    /// Timeouts; [`StreamTimeouts::default`] outside tests.
    pub timeouts: StreamTimeouts,
}

#[derive(Debug, Clone, Copy)]
pub struct StreamTimeouts {
    pub connect: Duration,
    pub stall: Duration,
    pub picture: Duration,
}

impl Default for StreamTimeouts {
    fn default() -> StreamTimeouts {
        StreamTimeouts {
            connect: Duration::from_secs(10),
            stall: Duration::from_secs(5),
            picture: Duration::from_secs(10),
        }
    }
}

/// A visit (face track) in progress on a camera: one face, followed by its embedding.
struct Visit {
    id: String,
    embedding: Vec<f32>,
    last_face: Instant,
    recorded: u32,
    last_record: Option<Instant>,
}

impl CameraTask {
    fn input(&self) -> Option<(Input, String)> {
        match &self.camera.source {
            CameraSource::Rtsp { url, password } => Some((
                Input::Rtsp {
                    url_with_secret: url_with_password(url, password.as_ref().map(|p| p.expose())),
                },
                // The configured URL has no password in it (the config refuses one): safe to show.
                url.clone(),
            )),
            CameraSource::File { path } => {
                Some((Input::File(path.clone()), path.display().to_string()))
            }
            CameraSource::Frigate { .. } => None,
        }
    }

    /// Keeps the camera open until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let Some((input, shown)) = self.input() else {
            return;
        };
        let name = self.camera.name.clone();
        let settings = StreamSettings {
            input,
            sample_every: Duration::from_secs_f32(1.0 / self.camera.sample_fps.clamp(0.1, 30.0)),
            connect_timeout: self.timeouts.connect,
            stall_timeout: self.timeouts.stall,
            picture_timeout: self.timeouts.picture,
            max_side: 1280,
        };
        let mut backoff = BACKOFF_FIRST;
        let mut visits: Vec<Visit> = Vec::new();
        let mut last_look: Option<Instant> = None;
        loop {
            set_camera_state(
                &self.state,
                &self.bus,
                &name,
                "connecting",
                Some(shown.clone()),
            );
            let stop = Arc::new(AtomicBool::new(false));
            let (tx, mut rx) = mpsc::channel::<News>(2);
            let thread = {
                let (settings, stop) = (settings.clone(), stop.clone());
                tokio::task::spawn_blocking(move || {
                    stream::play(&settings, &stop, |news| match news {
                        // The state must hear it; a sample may be dropped while the last is still looked at.
                        n @ News::Live { .. } => tx.blocking_send(n).is_ok(),
                        n => !matches!(tx.try_send(n), Err(mpsc::error::TrySendError::Closed(_))),
                    })
                })
            };
            let mut went_live: Option<Instant> = None;
            tokio::pin!(thread);
            let ended = loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        stop.store(true, Ordering::Relaxed);
                        let _ = (&mut thread).await;
                        return;
                    }
                    r = &mut thread => break r.unwrap_or_else(|e| StreamError::Lost(format!("the reader failed: {e}"))),
                    news = rx.recv() => match news {
                        Some(News::Live { codec, width, height }) => {
                            went_live = Some(Instant::now());
                            let detail = format!("{} {width}×{height}", codec_name(&codec));
                            set_camera_state(&self.state, &self.bus, &name, "live", Some(detail));
                        }
                        Some(News::Sample(s)) => {
                            let photo = Arc::new(s.photo);
                            self.frames.put(&name, photo.clone(), s.at_ms);
                            let likely = s.motion >= MOTION_MIN
                                || visits.iter().any(|v| v.last_face.elapsed() < VISIT_GAP)
                                || last_look.is_none_or(|t| t.elapsed() >= LOOK_ANYWAY);
                            if likely {
                                last_look = Some(Instant::now());
                                self.look(photo, s.at_ms, &mut visits).await;
                            }
                        }
                        None => {}
                    },
                }
            };
            self.frames.clear(&name);
            if went_live.is_some_and(|t| t.elapsed() > Duration::from_secs(10)) {
                backoff = BACKOFF_FIRST;
            }
            let (state, wait) = match &ended {
                StreamError::Stopped => return,
                StreamError::Refused(_) => ("refused", REFUSED_WAIT),
                _ => ("lost", backoff),
            };
            tracing::warn!(camera = %name, "{ended}; trying again in {:.1} s", wait.as_secs_f32());
            set_camera_state(
                &self.state,
                &self.bus,
                &name,
                state,
                Some(ended.to_string()),
            );
            backoff = (backoff * 2).min(BACKOFF_MAX);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Looks for faces in a picture; records each as its visit (the same face seen moments ago), within the
    /// visit's bounds.
    async fn look(
        &self,
        photo: Arc<crate::vision::photo::Photo>,
        at_ms: u64,
        visits: &mut Vec<Visit>,
    ) {
        let Some(service) = self.faces.get().cloned() else {
            return;
        };
        let found = match service.run(move |f| f.analyse_photo(&photo)).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) | Err(e) => {
                tracing::debug!(camera = %self.camera.name, "faces: {e}");
                return;
            }
        };
        visits.retain(|v| v.last_face.elapsed() < VISIT_GAP);
        for face in found {
            let now = Instant::now();
            let same = visits.iter().position(|v| {
                crate::vision::faces::cosine(&v.embedding, &face.embedding) >= SAME_FACE
            });
            let i = match same {
                Some(i) => i,
                None => {
                    if visits.len() >= MAX_VISITS {
                        visits.remove(0);
                    }
                    visits.push(Visit {
                        id: format!("rtsp-{}-{at_ms}-{}", self.camera.name, visits.len()),
                        embedding: face.embedding.clone(),
                        last_face: now,
                        recorded: 0,
                        last_record: None,
                    });
                    visits.len() - 1
                }
            };
            let v = &mut visits[i];
            v.last_face = now;
            v.embedding.clone_from(&face.embedding);
            if v.recorded >= RECORDS_PER_VISIT
                || v.last_record.is_some_and(|t| t.elapsed() < RECORD_EVERY)
            {
                continue;
            }
            v.recorded += 1;
            v.last_record = Some(now);
            let at = SeenAt {
                camera: self.camera.name.clone(),
                at_ms: Some(at_ms),
                track: Some(v.id.clone()),
                ..Default::default()
            };
            let recorded = service.run(move |f| f.record(&[face], &at)).await;
            if let Ok(Err(e)) | Err(e) = recorded.map(|r| r.map(|_| ())) {
                tracing::warn!(camera = %self.camera.name, "cannot record a sighting: {e}");
            }
        }
    }
}

/// FFmpeg's decoder name as people know it.
fn codec_name(codec: &str) -> String {
    match codec {
        "h264" => "H.264".into(),
        "hevc" => "H.265".into(),
        other => other.to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_in_after_the_user_percent_encoded() {
        assert_eq!(
            url_with_password("rtsp://viewer@10.0.0.9:554/h264", Some("p@ss:w/rd")),
            "rtsp://viewer:p%40ss%3Aw%2Frd@10.0.0.9:554/h264"
        );
        assert_eq!(
            url_with_password("rtsp://viewer@cam/live", None),
            "rtsp://viewer@cam/live"
        );
        // No user to attach it to: the config refuses this, and nothing is invented here.
        assert_eq!(
            url_with_password("rtsp://cam/live", Some("x")),
            "rtsp://cam/live"
        );
    }
}

//! Follows Frigate: person events from MQTT (`frigate/events`, with `frigate/available` for Frigate's own state)
//! and from polling `GET /api/events` — every few seconds while MQTT is not configured or not connected, and
//! once a minute as a catch-up while it is, from a cursor kept in the store so a restart or an outage misses
//! nothing Frigate still has. Each person event of a configured camera becomes a track: its snapshot is fetched
//! and recognised on-device (up to [`MAX_TRIES`] times as better snapshots come), Frigate's own sub label only
//! as a second opinion; every change of zones is announced as `PersonSeen`, which presence follows. Garbage,
//! truncated or foreign messages are counted and logged (at most once a minute), never fatal.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::{EventQuery, FrigateClient, FrigateError};
use super::types::{self, Event as FrigateEvent, EventMessage};
use crate::app::FaceSlot;
use crate::bus::{Bus, Event};
use crate::state::StateHandle;
use crate::store::Store;
use crate::vision::cameras::{CameraSettings, CameraSource};
use crate::vision::household::{set_camera_state, set_link_state};
use crate::vision::service::{FoundFace, SeenAt};

/// Snapshots recognised per track at most (a better one may come as the person nears the camera).
pub const MAX_TRIES: u8 = 3;
/// Polling while MQTT is not carrying events.
pub const POLL_FAST: Duration = Duration::from_secs(3);
/// Polling as a catch-up while MQTT is connected.
pub const POLL_SLOW: Duration = Duration::from_secs(60);
/// How far back the first start looks: 48 hours covers all of yesterday whatever the time of day and the
/// time zone ("when did John leave yesterday?" at 23:00 still finds 07:45), well inside Frigate's retention.
pub const FIRST_LOOK_BACK_SECS: f64 = 48.0 * 3600.0;
/// Tracks finished and remembered (so a replay or a poll does not count them twice).
const DONE_KEPT: usize = 4096;
/// Tracks open at once (a flood of invented ids is cut here).
const OPEN_MAX: usize = 512;
const CURSOR_KEY: &str = "frigate.cursor";

/// What the watcher is told: an event (from MQTT or a poll), or Frigate's availability.
#[derive(Debug)]
pub enum Input {
    Event(Observed),
    Available(bool),
    /// MQTT connected (`true`) or lost.
    Mqtt(bool, Option<String>),
}

/// A person event as either source tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub id: String,
    pub camera: String,
    pub label: String,
    pub false_positive: bool,
    pub start: f64,
    pub end: Option<f64>,
    /// When the latest frame was taken (seconds).
    pub frame_time: f64,
    pub zones: Vec<String>,
    pub has_snapshot: bool,
    pub sub_label: Option<String>,
    pub score: f64,
}

impl Observed {
    pub fn from_message(m: &EventMessage) -> Observed {
        let a = &m.after;
        Observed {
            id: a.id.clone(),
            camera: a.camera.clone(),
            label: a.label.clone(),
            false_positive: a.false_positive,
            start: a.start_time,
            end: if m.kind == "end" {
                a.end_time.or(Some(a.frame_time))
            } else {
                a.end_time
            },
            frame_time: a.frame_time,
            zones: a.entered_zones.clone(),
            has_snapshot: a.has_snapshot,
            sub_label: a.sub_label.as_ref().map(|s| s.0.clone()),
            score: a.top_score.max(a.score),
        }
    }

    pub fn from_event(e: &FrigateEvent) -> Observed {
        Observed {
            id: e.id.clone(),
            camera: e.camera.clone(),
            label: e.label.clone(),
            false_positive: e.false_positive.unwrap_or(false),
            start: e.start_time,
            end: e.end_time,
            frame_time: e.end_time.unwrap_or(e.start_time),
            zones: e.zones.clone(),
            has_snapshot: e.has_snapshot,
            sub_label: e.sub_label.clone(),
            score: e.data["top_score"].as_f64().unwrap_or(0.0),
        }
    }
}

/// What the watcher knows of one person event.
#[derive(Debug, Default)]
struct Track {
    who: Option<(i64, String, f32)>,
    sighting: Option<i64>,
    tries: u8,
    best_score: f64,
    /// Zones already announced.
    announced: usize,
    face_seen: bool,
    end_seen: bool,
}

pub struct Watcher {
    client: Arc<FrigateClient>,
    faces: FaceSlot,
    bus: Bus,
    state: StateHandle,
    store: Arc<Store>,
    /// Frigate's camera name → Jarvis's.
    cameras: HashMap<String, String>,
    tracks: HashMap<String, Track>,
    done: VecDeque<String>,
    done_set: HashSet<String>,
    cursor: f64,
    warned: HashSet<String>,
}

impl Watcher {
    pub fn new(
        client: Arc<FrigateClient>,
        faces: FaceSlot,
        bus: Bus,
        state: StateHandle,
        store: Arc<Store>,
        cameras: &[CameraSettings],
    ) -> Watcher {
        let cameras = cameras
            .iter()
            .filter_map(|c| match &c.source {
                CameraSource::Frigate { frigate_name } => {
                    Some((frigate_name.clone(), c.name.clone()))
                }
                CameraSource::Rtsp { .. } | CameraSource::File { .. } => None,
            })
            .collect();
        let cursor = store
            .setting(CURSOR_KEY)
            .ok()
            .flatten()
            .and_then(|c| c.parse::<f64>().ok())
            .unwrap_or(crate::time::now_ms() as f64 / 1000.0 - FIRST_LOOK_BACK_SECS);
        Watcher {
            client,
            faces,
            bus,
            state,
            store,
            cameras,
            tracks: HashMap::new(),
            done: VecDeque::new(),
            done_set: HashSet::new(),
            cursor,
            warned: HashSet::new(),
        }
    }

    /// Runs until `shutdown`: inputs from MQTT, polls on a timer (fast while MQTT is not connected).
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mqtt_configured: bool,
        shutdown: CancellationToken,
    ) {
        // Events are not taken before the face engine has loaded (or failed to): caught-up history would
        // otherwise be recorded unrecognised.
        while self.faces.get().is_none() && self.state.get().faces.engine != "unavailable" {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        let mut mqtt_up = false;
        let mut next_poll = Instant::now();
        let mut frigate_up: Option<bool> = None;
        loop {
            let wait = next_poll.saturating_duration_since(Instant::now());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {
                    let ok = self.poll().await;
                    if frigate_up != Some(ok.is_ok()) {
                        frigate_up = Some(ok.is_ok());
                        self.frigate_state(ok.as_ref().err());
                    }
                    let fast = !(mqtt_configured && mqtt_up) || ok.is_err();
                    next_poll = Instant::now() + if fast { POLL_FAST } else { POLL_SLOW };
                }
                input = inputs.recv() => match input {
                    Some(Input::Event(o)) => self.observe(o).await,
                    Some(Input::Available(up)) => {
                        if frigate_up != Some(up) {
                            frigate_up = Some(up);
                            let e = (!up).then(|| FrigateError::Http { status: 503, message: "Frigate says it is offline (frigate/available)".into() });
                            self.frigate_state(e.as_ref());
                        }
                    }
                    Some(Input::Mqtt(up, detail)) => {
                        mqtt_up = up;
                        set_link_state(&self.state, "mqtt", if up { "live" } else { "lost" }, detail);
                        next_poll = if up {
                            // Catch up on what was published while the broker was away.
                            Instant::now()
                        } else {
                            // Events now come only by polling.
                            next_poll.min(Instant::now() + POLL_FAST)
                        };
                    }
                    None => return,
                },
            }
        }
    }

    fn frigate_state(&self, err: Option<&FrigateError>) {
        let (state, detail) = match err {
            None => ("live", None),
            Some(e) => ("lost", Some(e.to_string())),
        };
        // Cameras first: whoever sees the link lost then also sees its cameras lost.
        for camera in self.cameras.values() {
            set_camera_state(&self.state, &self.bus, camera, state, detail.clone());
        }
        set_link_state(&self.state, "frigate", state, detail);
    }

    /// One poll of `GET /api/events` after the cursor, oldest first.
    async fn poll(&mut self) -> Result<(), FrigateError> {
        let q = EventQuery {
            labels: vec!["person".into()],
            cameras: self.cameras.keys().cloned().collect(),
            after: Some(self.cursor - 1.0),
            sort: Some("date_asc".into()),
            limit: Some(200),
            ..Default::default()
        };
        let events = self.client.events(&q).await?;
        for e in &events {
            self.observe(Observed::from_event(e)).await;
        }
        Ok(())
    }

    /// Applies one observation of a person event.
    pub async fn observe(&mut self, o: Observed) {
        if o.label != "person" || o.false_positive || self.done_set.contains(&o.id) {
            return;
        }
        let Some(camera) = self.cameras.get(&o.camera).cloned() else {
            self.warn_once(&format!("camera:{}", o.camera), || {
                format!("Frigate reported a person on camera {:?}, which is not in [[cameras]]: ignored", o.camera.chars().take(64).collect::<String>())
            });
            return;
        };
        if !self.tracks.contains_key(&o.id) && self.tracks.len() >= OPEN_MAX {
            // Drop an open track (any one) rather than grow without bound (ids are Frigate's, or a liar's).
            if let Some(oldest) = self.tracks.keys().next().cloned() {
                self.tracks.remove(&oldest);
            }
        }
        let track = self.tracks.entry(o.id.clone()).or_default();
        let wants_face = track.who.is_none()
            && o.has_snapshot
            && track.tries < MAX_TRIES
            && (track.tries == 0
                || o.score > track.best_score + 0.02
                || o.end.is_some() && !track.end_seen);
        if wants_face {
            track.tries += 1;
            track.best_score = o.score;
            self.recognise(&o, &camera).await;
        }
        let Some(track) = self.tracks.get_mut(&o.id) else {
            return;
        };
        let at_ms = types::ms(if o.end.is_some() {
            o.end.unwrap_or(o.frame_time)
        } else {
            o.frame_time
        });
        if o.zones.len() > track.announced && (track.who.is_some() || o.end.is_some()) {
            track.announced = o.zones.len();
            if track.who.is_some() || !track.face_seen {
                self.bus.publish(Event::PersonSeen {
                    camera: camera.clone(),
                    person: track.who.as_ref().map(|w| w.1.clone()),
                    person_id: track.who.as_ref().map(|w| w.0),
                    confidence: track.who.as_ref().map_or(o.score as f32, |w| w.2),
                    at_ms,
                    zones: o.zones.clone(),
                    track: o.id.clone(),
                    frigate_event: Some(o.id.clone()),
                    sighting: track.sighting,
                });
            }
        } else if o.end.is_some() && track.who.is_none() && !track.face_seen && track.announced == 0
        {
            // A person whose face was never seen and who entered no zone: one unknown-person row.
            track.announced = usize::MAX;
            self.bus.publish(Event::PersonSeen {
                camera: camera.clone(),
                person: None,
                person_id: None,
                confidence: o.score as f32,
                at_ms,
                zones: o.zones.clone(),
                track: o.id.clone(),
                frigate_event: Some(o.id.clone()),
                sighting: None,
            });
        }
        if o.end.is_some() {
            track.end_seen = true;
            self.finish(&o);
        }
    }

    fn finish(&mut self, o: &Observed) {
        self.tracks.remove(&o.id);
        self.done.push_back(o.id.clone());
        self.done_set.insert(o.id.clone());
        if self.done.len() > DONE_KEPT {
            if let Some(old) = self.done.pop_front() {
                self.done_set.remove(&old);
            }
        }
        if o.start > self.cursor {
            self.cursor = o.start;
            if let Err(e) = self
                .store
                .set_setting(CURSOR_KEY, &format!("{:.6}", o.start))
            {
                tracing::warn!("cannot keep Frigate's cursor: {e}");
            }
        }
    }

    /// Fetches the event's snapshot and recognises the largest face in it.
    async fn recognise(&mut self, o: &Observed, camera: &str) {
        let Some(service) = self.faces.get().cloned() else {
            return;
        };
        let bytes = match self.client.snapshot(&o.id, true, None).await {
            Ok(b) => b,
            Err(e) => {
                self.warn_once(&format!("snapshot:{}", e), || {
                    format!("Frigate snapshot of {} not usable: {e}", o.id)
                });
                return;
            }
        };
        let at = SeenAt {
            camera: camera.to_string(),
            at_ms: Some(types::ms(o.frame_time.max(o.start))),
            zones: o.zones.clone(),
            track: Some(o.id.clone()),
            frigate_event: Some(o.id.clone()),
            hint: o.sub_label.clone(),
        };
        let result = service
            .run(move |f| {
                let faces = f.analyse(&bytes)?;
                // The largest face is the person Frigate tracked (the snapshot is cropped to them).
                let best: Vec<FoundFace> = faces
                    .into_iter()
                    .max_by(|a, b| a.face_area().total_cmp(&b.face_area()))
                    .into_iter()
                    .collect();
                f.record(&best, &at)
            })
            .await
            .and_then(|r| r);
        let Some(track) = self.tracks.get_mut(&o.id) else {
            return;
        };
        match result {
            Ok(recorded) => {
                if let Some(r) = recorded.first() {
                    track.face_seen = true;
                    track.sighting = Some(r.sighting);
                    if let crate::vision::gallery::Decision::Known {
                        person,
                        name,
                        score,
                        ..
                    } = &r.decision
                    {
                        track.who = Some((*person, name.clone(), *score));
                        // The face's sighting carried the zones so far.
                        track.announced = o.zones.len();
                    }
                }
            }
            Err(e) => {
                let key = format!("recognise:{e}");
                self.warn_once(&key, || format!("Frigate event {}: {e}", o.id));
            }
        }
    }

    /// Logs `msg` once per `key` (bounded: a liar can invent keys).
    fn warn_once(&mut self, key: &str, msg: impl FnOnce() -> String) {
        if self.warned.len() < 256 && self.warned.insert(key.chars().take(200).collect()) {
            tracing::warn!("{}", msg());
        }
    }
}

/// Spawns the poll-and-MQTT watcher; returns the sender MQTT feeds.
pub fn channel() -> (mpsc::Sender<Input>, mpsc::Receiver<Input>) {
    mpsc::channel(1024)
}

#[cfg(test)]
mod tests {
    use super::FIRST_LOOK_BACK_SECS;

    #[test]
    fn the_first_look_back_covers_all_of_yesterday_at_any_hour_in_any_time_zone() {
        let day = 86_400.0;
        let base = 1_796_000_000.0_f64;
        for offset_hours in -12..=14 {
            let offset = f64::from(offset_hours) * 3600.0;
            for minute in (0..24 * 60).step_by(7) {
                let now = ((base + offset) / day).floor() * day - offset + f64::from(minute) * 60.0;
                let today_start = ((now + offset) / day).floor() * day - offset;
                let yesterday_start = today_start - day;
                assert!(
                    now - FIRST_LOOK_BACK_SECS <= yesterday_start,
                    "offset {offset_hours} h, {minute} min into the day"
                );
            }
        }
    }
}

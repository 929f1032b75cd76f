//! The household's presence, kept live: one task follows the faces seen on the cameras (`FaceSeen` on the bus),
//! applies the presence rules ([`Presence`]), writes the timeline rows to the store, puts who is home and the
//! recent comings and goings in the state (`World::presence`) and announces each change (`PresenceChanged`). It
//! also keeps the people in step with the gallery (`FacesChanged`), concludes departures whose timeout ran out,
//! and deletes timeline rows past `[presence] keep_days`.
//!
//! **Invariant:** a change is announced only after its row is written; if the store refuses the row, the state
//! still moves (it is what the cameras saw) and the failure is logged.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use super::cameras::{CameraInfo, CameraSettings, PresenceSettings};
use super::presence::{Outcome, PersonPresence, Presence, Sighting, Who};
use super::timeline::{self, Entry, Kind, Query};
use crate::bus::{Bus, Event, Stamped};
use crate::state::StateHandle;
use crate::store::Store;

/// How often departure timeouts are checked.
pub const TICK_EVERY: Duration = Duration::from_secs(30);
/// How often old timeline rows are deleted.
pub const SWEEP_EVERY: Duration = Duration::from_secs(6 * 3600);
/// Arrivals and departures the state keeps for the panel.
pub const RECENT: usize = 12;
/// Cameras not in the config that a warning has been logged for (bounded: a liar can invent names).
const WARNED_MAX: usize = 64;

/// What the state shows: who is home, the latest comings and goings, the cameras.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PresenceView {
    /// Whether any camera is configured (without one, nobody's presence can be known).
    pub cameras_configured: bool,
    pub people: Vec<PersonPresence>,
    /// Arrivals and departures, newest first.
    pub recent: Vec<Entry>,
    pub cameras: Vec<CameraView>,
    /// Frigate's API, when configured.
    pub frigate: Option<LinkView>,
    /// The MQTT broker, when configured.
    pub mqtt: Option<LinkView>,
}

/// A camera and how its reader stands (`starting`, `connecting`, `live`, `lost`, with why and since when).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraView {
    #[serde(flatten)]
    pub info: CameraInfo,
    pub state: String,
    pub detail: Option<String>,
    pub since_ms: u64,
}

pub struct Household {
    store: Arc<Store>,
    state: StateHandle,
    bus: Bus,
    settings: PresenceSettings,
    presence: Presence,
    warned: HashSet<String>,
}

impl Household {
    /// Restores everyone's state from the timeline and the gallery, and shows it.
    pub async fn start(
        store: Arc<Store>,
        state: StateHandle,
        bus: Bus,
        cameras: &[CameraSettings],
        settings: PresenceSettings,
    ) -> Household {
        let mut presence = Presence::new(cameras.iter().map(|c| c.rules.clone()).collect());
        let s = store.clone();
        let restored = tokio::task::spawn_blocking(move || {
            let latest = timeline::latest_per_person(&s)?;
            let people = people_of(&s)?;
            Ok::<_, crate::store::StoreError>((latest, people))
        })
        .await;
        match restored {
            Ok(Ok((latest, people))) => {
                presence.restore(&latest);
                presence.sync_people(&people);
            }
            Ok(Err(e)) => tracing::error!("cannot restore presence from the timeline: {e}"),
            Err(e) => tracing::error!("cannot restore presence: {e}"),
        }
        let now = crate::time::now_ms();
        let views: Vec<CameraView> = cameras
            .iter()
            .map(|c| CameraView {
                info: c.info(),
                state: "starting".into(),
                detail: None,
                since_ms: now,
            })
            .collect();
        state.update(|w| {
            w.presence.cameras_configured = !views.is_empty();
            w.presence.cameras = views;
        });
        let h = Household {
            store,
            state,
            bus,
            settings,
            presence,
            warned: HashSet::new(),
        };
        h.show().await;
        h
    }

    /// Runs until `shutdown`: follows the bus, ticks, sweeps.
    pub async fn run(
        mut self,
        mut events: broadcast::Receiver<Stamped>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK_EVERY);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let out = self.presence.tick(crate::time::now_ms());
                    self.apply(out).await;
                }
                _ = sweep.tick() => self.sweep().await,
                e = events.recv() => match e {
                    Ok(s) => self.on_event(s.event).await,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "presence fell behind the bus; sightings were missed");
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::FaceSeen {
                source,
                person,
                person_id,
                score,
                sighting,
                at_ms,
                zones,
                track,
                frigate_event,
                ..
            } => {
                let s = Sighting {
                    at_ms,
                    camera: source,
                    who: who(person_id, person),
                    confidence: score,
                    zones,
                    track,
                    sighting: Some(sighting),
                    frigate_event,
                };
                self.observe(s).await;
            }
            Event::PersonSeen {
                camera,
                person,
                person_id,
                confidence,
                at_ms,
                zones,
                track,
                frigate_event,
                sighting,
            } => {
                let s = Sighting {
                    at_ms,
                    camera,
                    who: who(person_id, person),
                    confidence,
                    zones,
                    track: Some(track),
                    sighting,
                    frigate_event,
                };
                self.observe(s).await;
            }
            Event::FacesChanged { .. } => {
                let s = self.store.clone();
                match tokio::task::spawn_blocking(move || people_of(&s)).await {
                    Ok(Ok(people)) => {
                        self.presence.sync_people(&people);
                        self.show().await;
                    }
                    Ok(Err(e)) => tracing::warn!("cannot read the gallery for presence: {e}"),
                    Err(e) => tracing::warn!("cannot read the gallery for presence: {e}"),
                }
            }
            _ => {}
        }
    }

    /// Applies one sighting of a configured camera (one not in the config is reported once and ignored).
    async fn observe(&mut self, s: Sighting) {
        if self.presence.camera(&s.camera).is_none() {
            self.unknown_camera(&s.camera);
            return;
        }
        let out = self.presence.observe(&s);
        self.apply(out).await;
    }

    fn unknown_camera(&mut self, camera: &str) {
        // Photos reported by hand ("photo") are not a camera; anything else is worth one warning.
        if camera == "photo" || self.warned.contains(camera) || self.warned.len() >= WARNED_MAX {
            return;
        }
        self.warned.insert(camera.to_string());
        tracing::warn!(
            camera = %camera.chars().take(64).collect::<String>(),
            "a face was seen on a camera that is not in [[cameras]]: it does not count for presence"
        );
    }

    /// Writes the rows, then shows and announces the changes.
    async fn apply(&mut self, out: Outcome) {
        if out.rows.is_empty() {
            return;
        }
        let s = self.store.clone();
        let rows = out.rows.clone();
        match tokio::task::spawn_blocking(move || timeline::append_all(&s, &rows)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("presence rows not written: {e}"),
            Err(e) => tracing::error!("presence rows not written: {e}"),
        }
        self.show().await;
        for c in out.changes {
            self.bus.publish(Event::PresenceChanged {
                person: c.person.name.clone(),
                person_id: c.person.person,
                state: c.person.state.as_str().to_string(),
                camera: c.entry.camera.clone(),
                at_ms: c.entry.at_ms,
                inferred: c.entry.inferred,
            });
        }
    }

    /// Puts the people and the recent arrivals and departures in the state.
    async fn show(&self) {
        let s = self.store.clone();
        let recent = tokio::task::spawn_blocking(move || {
            timeline::search(
                &s,
                &Query {
                    kinds: vec![Kind::Arrived, Kind::Left],
                    limit: RECENT,
                    ..Default::default()
                },
            )
        })
        .await;
        let recent = match recent {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                tracing::warn!("cannot read the timeline: {e}");
                None
            }
            Err(_) => None,
        };
        let people: Vec<PersonPresence> = self.presence.people().cloned().collect();
        self.state.update(|w| {
            w.presence.people = people;
            if let Some(r) = recent {
                w.presence.recent = r;
            }
        });
    }

    async fn sweep(&self) {
        let (s, days) = (self.store.clone(), self.settings.keep_days);
        match tokio::task::spawn_blocking(move || timeline::sweep(&s, days, crate::time::now_ms()))
            .await
        {
            Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "presence timeline retention"),
            Ok(Err(e)) => tracing::warn!("presence timeline retention failed: {e}"),
            _ => {}
        }
    }
}

/// The person a sighting names, when it names one.
fn who(id: Option<i64>, name: Option<String>) -> Option<Who> {
    match (id, name) {
        (Some(id), Some(name)) => Some(Who { id, name }),
        _ => None,
    }
}

/// The gallery's people as (id, name).
fn people_of(store: &Store) -> Result<Vec<(i64, String)>, crate::store::StoreError> {
    store.read(|c| {
        let mut st = c.prepare("SELECT id, name FROM face_people ORDER BY name_key")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    })
}

/// Sets a camera's feed state in the world (`connecting`, `live`, `lost`), keeping `since` while unchanged, and
/// announces a change of state (`CameraStateChanged`).
pub fn set_camera_state(
    state: &StateHandle,
    bus: &Bus,
    camera: &str,
    new: &str,
    detail: Option<String>,
) {
    let mut changed = false;
    state.update(|w| {
        if let Some(c) = w
            .presence
            .cameras
            .iter_mut()
            .find(|c| c.info.name == camera)
        {
            if c.state != new {
                c.since_ms = crate::time::now_ms();
                changed = true;
            }
            c.state = new.to_string();
            c.detail = detail.clone();
        }
    });
    if changed {
        bus.publish(Event::CameraStateChanged {
            camera: camera.to_string(),
            state: new.to_string(),
            detail,
        });
    }
}

/// A link behind the cameras (Frigate's API, the MQTT broker): its state, why, since when.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkView {
    pub state: String,
    pub detail: Option<String>,
    pub since_ms: u64,
}

/// Sets a link's state (`which`: "frigate" or "mqtt"), keeping `since` while unchanged.
pub fn set_link_state(state: &StateHandle, which: &str, new: &str, detail: Option<String>) {
    state.update(|w| {
        let slot = match which {
            "frigate" => &mut w.presence.frigate,
            _ => &mut w.presence.mqtt,
        };
        let since = match slot {
            Some(l) if l.state == new => l.since_ms,
            _ => crate::time::now_ms(),
        };
        *slot = Some(LinkView {
            state: new.to_string(),
            detail,
            since_ms: since,
        });
    });
}

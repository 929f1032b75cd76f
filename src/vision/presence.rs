//! Who is home: the rules that turn sightings into arrivals, departures and "seen" rows, and the per-person state
//! (home / away / unknown, since when, last seen where). Pure: [`Presence::observe`] and [`Presence::tick`] return
//! the timeline rows to write and the changes to announce; the presence task (`vision::watcher`) does the
//! writing and publishing.
//!
//! What entering and leaving mean is per camera ([`CameraRules`]):
//! - `zones`: a track whose latest zone is an inside zone is an arrival (unless already home); a track that was
//!   in an inside zone and then reaches an outside zone is a departure; a track only ever outside is someone
//!   passing, "seen".
//! - `arrivals`: the camera only sees people coming in (a hall camera facing the door): a sighting is an arrival.
//! - `passing`: sightings only say where someone was.
//!
//! A track (a Frigate event, an RTSP face track) makes at most one arrival or departure. Someone last seen on a
//! camera with a departure timeout who is not seen again for that long is taken to have left when last seen;
//! the row says it was inferred. "Seen" rows are written at most every [`SEEN_EVERY_MS`] per person and
//! camera, so a person standing in view (or in view of two cameras at once) does not fill the timeline.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use super::timeline::{Entry, Kind, NewEntry};

/// At most one "seen" row per person and camera this often.
pub const SEEN_EVERY_MS: u64 = 10 * 60 * 1000;
/// At most one "unknown" row per camera and track, or per camera this often without a track.
pub const UNKNOWN_EVERY_MS: u64 = 60 * 1000;
/// Tracks remembered (their decisions), oldest forgotten first.
const TRACKS_KEPT: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CameraMode {
    #[default]
    Zones,
    Arrivals,
    Passing,
}

impl CameraMode {
    pub fn parse(s: &str) -> Option<CameraMode> {
        match s {
            "zones" => Some(CameraMode::Zones),
            "arrivals" => Some(CameraMode::Arrivals),
            "passing" => Some(CameraMode::Passing),
            _ => None,
        }
    }
}

/// What a camera's sightings mean.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CameraRules {
    pub name: String,
    pub mode: CameraMode,
    pub inside_zones: Vec<String>,
    pub outside_zones: Vec<String>,
    /// Someone last seen here and not seen again for this long has left (0: never concluded).
    pub departure_timeout_ms: u64,
}

/// A person as a sighting names them.
#[derive(Debug, Clone, PartialEq)]
pub struct Who {
    pub id: i64,
    pub name: String,
}

/// One sighting of a person (known or not) on a camera.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sighting {
    pub at_ms: u64,
    pub camera: String,
    /// `None`: a person whose face was not recognised (or not seen).
    pub who: Option<Who>,
    pub confidence: f32,
    /// Zones entered so far on this track, in order.
    pub zones: Vec<String>,
    /// The track it belongs to (a Frigate event id); `None` for a lone photo.
    pub track: Option<String>,
    pub sighting: Option<i64>,
    pub frigate_event: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Home,
    Away,
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Home => "home",
            State::Away => "away",
            State::Unknown => "unknown",
        }
    }
}

/// One person's presence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonPresence {
    pub person: i64,
    pub name: String,
    pub state: State,
    /// Since when in that state (`None` while unknown).
    pub since_ms: Option<u64>,
    pub last_seen_ms: Option<u64>,
    pub last_camera: Option<String>,
    /// Whether the latest departure was inferred from a timeout.
    pub inferred: bool,
}

/// A change of someone's state, to announce.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub person: PersonPresence,
    pub entry: NewEntry,
}

/// What one observation or tick produced: rows to write, and which of them changed someone's state.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub rows: Vec<NewEntry>,
    pub changes: Vec<Change>,
}

pub struct Presence {
    cameras: HashMap<String, CameraRules>,
    people: BTreeMap<i64, PersonPresence>,
    /// Tracks already decided (arrival or departure made), oldest first.
    decided: VecDeque<String>,
    /// Newest "seen" row written per person and camera.
    seen_rows: HashMap<(i64, String), u64>,
    /// Last "unknown" row per camera: (track, when).
    unknown_rows: HashMap<String, (Option<String>, u64)>,
}

impl Presence {
    pub fn new(cameras: Vec<CameraRules>) -> Presence {
        Presence {
            cameras: cameras.into_iter().map(|c| (c.name.clone(), c)).collect(),
            people: BTreeMap::new(),
            decided: VecDeque::new(),
            seen_rows: HashMap::new(),
            unknown_rows: HashMap::new(),
        }
    }

    /// Sets everyone's state from the timeline's latest rows (after a restart).
    pub fn restore(&mut self, latest: &[(Option<Entry>, Entry)]) {
        for (movement, last) in latest {
            let (Some(id), Some(name)) = (last.person, last.name.clone()) else {
                continue;
            };
            let (state, since, inferred) = match movement {
                Some(m) if m.kind == Kind::Arrived => (State::Home, Some(m.at_ms), false),
                Some(m) if m.kind == Kind::Left => (State::Away, Some(m.at_ms), m.inferred),
                _ => (State::Unknown, None, false),
            };
            self.people.insert(
                id,
                PersonPresence {
                    person: id,
                    name,
                    state,
                    since_ms: since,
                    last_seen_ms: Some(last.at_ms),
                    last_camera: Some(last.camera.clone()),
                    inferred,
                },
            );
        }
    }

    /// Keeps the people list in step with the gallery: new people start unknown, deleted ones go, renames show.
    pub fn sync_people(&mut self, people: &[(i64, String)]) -> bool {
        let before = self.people.clone();
        self.people
            .retain(|id, _| people.iter().any(|(p, _)| p == id));
        for (id, name) in people {
            let p = self.people.entry(*id).or_insert_with(|| PersonPresence {
                person: *id,
                name: name.clone(),
                state: State::Unknown,
                since_ms: None,
                last_seen_ms: None,
                last_camera: None,
                inferred: false,
            });
            p.name = name.clone();
        }
        self.seen_rows
            .retain(|(id, _), _| people.iter().any(|(p, _)| p == id));
        before != self.people
    }

    pub fn people(&self) -> impl Iterator<Item = &PersonPresence> {
        self.people.values()
    }

    pub fn camera(&self, name: &str) -> Option<&CameraRules> {
        self.cameras.get(name)
    }

    /// Applies one sighting. A sighting on a camera with no rules is ignored (the caller reports it).
    pub fn observe(&mut self, s: &Sighting) -> Outcome {
        let mut out = Outcome::default();
        let Some(rules) = self.cameras.get(&s.camera).cloned() else {
            return out;
        };
        let Some(who) = &s.who else {
            self.unknown(s, &mut out);
            return out;
        };
        let person = self.people.entry(who.id).or_insert_with(|| PersonPresence {
            person: who.id,
            name: who.name.clone(),
            state: State::Unknown,
            since_ms: None,
            last_seen_ms: None,
            last_camera: None,
            inferred: false,
        });
        // A sighting older than what we know (a late MQTT retry) only fills the timeline, never moves the state back.
        let stale = person.last_seen_ms.is_some_and(|t| s.at_ms < t);
        if !stale {
            person.last_seen_ms = Some(s.at_ms);
            person.last_camera = Some(s.camera.clone());
        }
        let already = s
            .track
            .as_ref()
            .is_some_and(|t| self.decided.iter().any(|d| d == t));
        let movement = if already || stale {
            None
        } else {
            movement(&rules, &s.zones, person.state)
        };
        let row = |kind| NewEntry {
            at_ms: s.at_ms,
            kind,
            person: Some(who.id),
            camera: s.camera.clone(),
            confidence: s.confidence,
            inferred: false,
            sighting: s.sighting,
            frigate_event: s.frigate_event.clone(),
        };
        if let Some(kind) = movement {
            person.state = if kind == Kind::Arrived {
                State::Home
            } else {
                State::Away
            };
            person.since_ms = Some(s.at_ms);
            person.inferred = false;
            let entry = row(kind);
            out.rows.push(entry.clone());
            out.changes.push(Change {
                person: person.clone(),
                entry,
            });
            if let Some(t) = &s.track {
                self.decided.push_back(t.clone());
                if self.decided.len() > TRACKS_KEPT {
                    self.decided.pop_front();
                }
            }
            self.wrote_seen(who.id, &s.camera, s.at_ms);
            return out;
        }
        // Far enough from the newest row for this person and camera, later or (history filled in) earlier.
        let due = match self.seen_rows.get(&(who.id, s.camera.clone())) {
            Some(&at) => {
                s.at_ms >= at.saturating_add(SEEN_EVERY_MS)
                    || s.at_ms.saturating_add(SEEN_EVERY_MS) <= at
            }
            None => true,
        };
        if due {
            out.rows.push(row(Kind::Seen));
            self.wrote_seen(who.id, &s.camera, s.at_ms);
        }
        out
    }

    fn wrote_seen(&mut self, person: i64, camera: &str, at_ms: u64) {
        let newest = self
            .seen_rows
            .entry((person, camera.to_string()))
            .or_insert(at_ms);
        *newest = (*newest).max(at_ms);
    }

    fn unknown(&mut self, s: &Sighting, out: &mut Outcome) {
        let due = match self.unknown_rows.get(&s.camera) {
            Some((track, at)) => match (&s.track, track) {
                (Some(t), Some(last)) => t != last,
                _ => s.at_ms >= at.saturating_add(UNKNOWN_EVERY_MS),
            },
            None => true,
        };
        if due {
            self.unknown_rows
                .insert(s.camera.clone(), (s.track.clone(), s.at_ms));
            out.rows.push(NewEntry {
                at_ms: s.at_ms,
                kind: Kind::Unknown,
                person: None,
                camera: s.camera.clone(),
                confidence: s.confidence,
                inferred: false,
                sighting: s.sighting,
                frigate_event: s.frigate_event.clone(),
            });
        }
    }

    /// Concludes departures whose timeout has run out by `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Outcome {
        let mut out = Outcome::default();
        for p in self.people.values_mut() {
            if p.state != State::Home {
                continue;
            }
            let (Some(seen), Some(camera)) = (p.last_seen_ms, p.last_camera.clone()) else {
                continue;
            };
            let timeout = self
                .cameras
                .get(&camera)
                .map_or(0, |c| c.departure_timeout_ms);
            if timeout == 0 || now_ms < seen.saturating_add(timeout) {
                continue;
            }
            p.state = State::Away;
            p.since_ms = Some(seen);
            p.inferred = true;
            let entry = NewEntry {
                at_ms: seen,
                kind: Kind::Left,
                person: Some(p.person),
                camera,
                confidence: 0.0,
                inferred: true,
                sighting: None,
                frigate_event: None,
            };
            out.rows.push(entry.clone());
            out.changes.push(Change {
                person: p.clone(),
                entry,
            });
        }
        out
    }
}

/// The movement a track's zones mean on a camera, for someone in `state`.
fn movement(rules: &CameraRules, zones: &[String], state: State) -> Option<Kind> {
    match rules.mode {
        CameraMode::Passing => None,
        CameraMode::Arrivals => (state != State::Home).then_some(Kind::Arrived),
        CameraMode::Zones => {
            let inside = |z: &String| rules.inside_zones.contains(z);
            let outside = |z: &String| rules.outside_zones.contains(z);
            let last = zones.iter().rev().find(|z| inside(z) || outside(z))?;
            if inside(last) {
                (state != State::Home).then_some(Kind::Arrived)
            } else {
                let was_inside = zones.iter().any(inside);
                (was_inside && state != State::Away).then_some(Kind::Left)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front_door() -> CameraRules {
        CameraRules {
            name: "front_door".into(),
            mode: CameraMode::Zones,
            inside_zones: vec!["porch".into()],
            outside_zones: vec!["street".into()],
            departure_timeout_ms: 0,
        }
    }

    fn hall() -> CameraRules {
        CameraRules {
            name: "hall".into(),
            mode: CameraMode::Arrivals,
            departure_timeout_ms: 3_600_000,
            ..Default::default()
        }
    }

    fn garden() -> CameraRules {
        CameraRules {
            name: "garden".into(),
            mode: CameraMode::Passing,
            ..Default::default()
        }
    }

    fn john() -> Option<Who> {
        Some(Who {
            id: 1,
            name: "John".into(),
        })
    }

    fn seen(at_ms: u64, camera: &str, zones: &[&str], track: &str) -> Sighting {
        Sighting {
            at_ms,
            camera: camera.into(),
            who: john(),
            confidence: 0.7,
            zones: zones.iter().map(|z| z.to_string()).collect(),
            track: Some(track.into()),
            ..Default::default()
        }
    }

    fn kinds(o: &Outcome) -> Vec<Kind> {
        o.rows.iter().map(|r| r.kind).collect()
    }

    fn presence() -> Presence {
        Presence::new(vec![front_door(), hall(), garden()])
    }

    #[test]
    fn two_cameras_seeing_someone_in_turn_write_a_seen_row_each_not_one_per_sighting() {
        const T0: u64 = 3_600_000;
        let mut p = Presence::new(vec![
            garden(),
            CameraRules {
                name: "yard".into(),
                ..garden()
            },
        ]);
        let mut rows = Vec::new();
        for i in 0..20u64 {
            let camera = if i % 2 == 0 { "garden" } else { "yard" };
            rows.extend(
                p.observe(&seen(T0 + i * 5_000, camera, &[], &format!("t{i}")))
                    .rows,
            );
        }
        assert_eq!(
            rows.iter().map(|r| r.camera.as_str()).collect::<Vec<_>>(),
            ["garden", "yard"]
        );
        // History filled in later (a Frigate backlog) still lands, once per SEEN_EVERY.
        let old = p.observe(&seen(T0 - SEEN_EVERY_MS - 1, "garden", &[], "h1"));
        assert_eq!(kinds(&old), [Kind::Seen]);
        // …and it does not reopen the present: the next live sighting is still within SEEN_EVERY.
        assert!(p
            .observe(&seen(T0 + 200_000, "garden", &[], "t99"))
            .rows
            .is_empty());
    }

    #[test]
    fn zones_make_arrivals_and_departures_once_per_track() {
        let mut p = presence();
        // Walking up from the street: seen outside first, then an arrival at the porch.
        assert_eq!(
            kinds(&p.observe(&seen(1_000, "front_door", &["street"], "a"))),
            [Kind::Seen]
        );
        let o = p.observe(&seen(2_000, "front_door", &["street", "porch"], "a"));
        assert_eq!(kinds(&o), [Kind::Arrived]);
        assert_eq!(o.changes[0].person.state, State::Home);
        // The same track updated again makes nothing new (within SEEN_EVERY on the same camera).
        assert!(p
            .observe(&seen(3_000, "front_door", &["street", "porch"], "a"))
            .rows
            .is_empty());
        // Going out: porch, then street, on a new track.
        assert!(p
            .observe(&seen(10_000, "front_door", &["porch"], "b"))
            .rows
            .is_empty());
        let o = p.observe(&seen(11_000, "front_door", &["porch", "street"], "b"));
        assert_eq!(kinds(&o), [Kind::Left]);
        let john = p.people().next().unwrap();
        assert_eq!((john.state, john.since_ms), (State::Away, Some(11_000)));
        // Someone only ever on the street is passing by, not leaving again.
        let o = p.observe(&seen(
            20_000 + SEEN_EVERY_MS,
            "front_door",
            &["street"],
            "c",
        ));
        assert_eq!(kinds(&o), [Kind::Seen]);
        assert_eq!(p.people().next().unwrap().state, State::Away);
    }

    #[test]
    fn an_arrivals_camera_and_its_departure_timeout() {
        let mut p = presence();
        assert_eq!(
            kinds(&p.observe(&seen(1_000, "hall", &[], "a"))),
            [Kind::Arrived]
        );
        // Already home: the next sighting is only "seen" (new camera).
        assert_eq!(
            kinds(&p.observe(&seen(5_000, "garden", &[], "b"))),
            [Kind::Seen]
        );
        // Last seen on the garden camera (no timeout): nothing is concluded.
        assert!(p.tick(10_000_000).rows.is_empty());
        p.observe(&seen(20_000, "hall", &[], "c"));
        assert!(p.tick(20_000 + 3_599_999).rows.is_empty());
        let o = p.tick(20_000 + 3_600_000);
        assert_eq!(kinds(&o), [Kind::Left]);
        assert!(o.rows[0].inferred);
        assert_eq!(
            o.rows[0].at_ms, 20_000,
            "left when last seen, not when the timeout ran out"
        );
        assert!(p.tick(99_999_999).rows.is_empty(), "concluded once");
    }

    #[test]
    fn lies_and_repeats_do_not_move_anyone() {
        let mut p = presence();
        // A camera not in the config: ignored.
        assert!(p
            .observe(&seen(1_000, "attic", &["porch"], "x"))
            .rows
            .is_empty());
        // Zones not configured on the camera: "seen" only.
        assert_eq!(
            kinds(&p.observe(&seen(1_000, "front_door", &["roof"], "y"))),
            [Kind::Seen]
        );
        p.observe(&seen(50_000, "front_door", &["porch"], "z"));
        assert_eq!(p.people().next().unwrap().state, State::Home);
        // A late, older sighting saying "left" does not move the state back.
        let o = p.observe(&seen(40_000, "front_door", &["porch", "street"], "old"));
        assert!(o.changes.is_empty());
        assert_eq!(p.people().next().unwrap().last_seen_ms, Some(50_000));
        // A replayed track that already made an arrival makes nothing, even after a departure.
        p.observe(&seen(60_000, "front_door", &["porch", "street"], "w"));
        assert!(p
            .observe(&seen(70_000, "front_door", &["porch"], "z"))
            .changes
            .is_empty());
        // Unknown people: one row per track, and without a track at most one a minute per camera.
        let stranger = |at, track: Option<&str>| Sighting {
            at_ms: at,
            camera: "front_door".into(),
            track: track.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(kinds(&p.observe(&stranger(1, Some("s1")))), [Kind::Unknown]);
        assert!(p.observe(&stranger(2, Some("s1"))).rows.is_empty());
        assert_eq!(kinds(&p.observe(&stranger(3, Some("s2")))), [Kind::Unknown]);
        assert!(
            p.observe(&stranger(10_000, None)).rows.is_empty(),
            "a minute since the last"
        );
        assert_eq!(kinds(&p.observe(&stranger(100_000, None))), [Kind::Unknown]);
        assert!(p.observe(&stranger(110_000, None)).rows.is_empty());
        assert_eq!(
            kinds(&p.observe(&stranger(100_000 + UNKNOWN_EVERY_MS, None))),
            [Kind::Unknown]
        );
    }

    #[test]
    fn restore_and_sync_with_the_gallery() {
        let mut p = presence();
        let e = |kind, at_ms, inferred| Entry {
            id: 1,
            at_ms,
            kind,
            person: Some(1),
            name: Some("John".into()),
            camera: "front_door".into(),
            confidence: 0.7,
            inferred,
            sighting: None,
            frigate_event: None,
        };
        p.restore(&[(Some(e(Kind::Left, 5, true)), e(Kind::Seen, 3, false))]);
        let j = p.people().next().unwrap();
        assert_eq!(
            (j.state, j.since_ms, j.inferred, j.last_seen_ms),
            (State::Away, Some(5), true, Some(3))
        );
        assert!(p.sync_people(&[(1, "Johnny".into()), (2, "Sarah".into())]));
        let names: Vec<_> = p.people().map(|p| (p.name.clone(), p.state)).collect();
        assert_eq!(
            names,
            [
                ("Johnny".into(), State::Away),
                ("Sarah".into(), State::Unknown)
            ]
        );
        assert!(p.sync_people(&[(2, "Sarah".into())]));
        assert_eq!(p.people().count(), 1);
        assert!(!p.sync_people(&[(2, "Sarah".into())]));
    }
}

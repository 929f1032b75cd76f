//! The right column (`StatusAdapter`): storage bars, the alerts that are true right now (derived from the state,
//! so an alert clears itself when its cause does: Frigate or MQTT lost included), and presence — who is home,
//! out or not seen yet, and the latest arrivals and departures — or why there is none.

use slint::ComponentHandle;

use jiff::tz::TimeZone;

use crate::cluster::model::ClusterSnapshot;
use crate::kiosk::controllers::cluster::{set_if_changed, HOT_C, WARM_C};
use crate::kiosk::ui::{AlertRow, AppWindow, PresenceRow, StatusAdapter, StorageBar};
use crate::kiosk::{format, rows, KioskContext};
use crate::state::World;
use crate::vision::household::PresenceView;
use crate::vision::presence::State;
use crate::vision::timeline::Kind;

/// Shown in the presence panel while no camera is configured.
pub const NO_PRESENCE: &str =
    "No cameras configured. Who is home appears here once Frigate or an RTSP camera is set up ([[cameras]]).";

/// Recent arrivals and departures shown under the people.
pub const RECENT_MOVES: usize = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct StatusView {
    pub storages: Vec<StorageBar>,
    pub alerts: Vec<AlertRow>,
    pub presence: Vec<PresenceRow>,
    pub recent_moves: Vec<slint::SharedString>,
    pub presence_note: String,
}

impl StatusView {
    pub fn build(w: &World, thresholds: (f64, f64), now_ms: u64, tz: &TimeZone) -> StatusView {
        let mut alerts = alerts(&w.cluster, thresholds, now_ms);
        for (what, link) in [("Frigate", &w.presence.frigate), ("MQTT", &w.presence.mqtt)] {
            if let Some(l) = link.as_ref().filter(|l| l.state == "lost") {
                alerts.push(AlertRow {
                    text: format!(
                        "{what} not answering: {}",
                        l.detail.as_deref().unwrap_or("lost")
                    )
                    .into(),
                    since: format::ago(l.since_ms, now_ms).into(),
                    level: 1,
                });
            }
        }
        StatusView {
            storages: storage_bars(&w.cluster),
            alerts,
            presence: presence_rows(&w.presence, tz),
            recent_moves: recent_moves(&w.presence, tz),
            presence_note: presence_note(&w.presence),
        }
    }

    pub fn apply(&self, w: &AppWindow) {
        let a = w.global::<StatusAdapter>();
        rows::sync_handle(&a.get_storages(), &self.storages);
        rows::sync_handle(&a.get_alerts(), &self.alerts);
        rows::sync_handle(&a.get_presence(), &self.presence);
        rows::sync_handle(&a.get_recent_moves(), &self.recent_moves);
        set_if_changed(a.get_presence_note(), &self.presence_note, |v| {
            a.set_presence_note(v)
        });
    }
}

/// One row per person: home first, then out, then not seen; "since 18:02 · front door".
pub fn presence_rows(p: &PresenceView, tz: &TimeZone) -> Vec<PresenceRow> {
    if !p.cameras_configured {
        return Vec::new();
    }
    let mut people: Vec<_> = p.people.iter().collect();
    let rank = |s: State| match s {
        State::Home => 0,
        State::Away => 1,
        State::Unknown => 2,
    };
    people.sort_by_key(|x| (rank(x.state), x.name.to_lowercase()));
    people
        .into_iter()
        .map(|x| {
            let camera = x.last_camera.as_deref().map(|c| c.replace('_', " "));
            let since = match (x.state, x.since_ms) {
                (State::Unknown, _) | (_, None) => String::new(),
                (_, Some(ms)) => match camera {
                    Some(c) => format!("since {} · {c}", format::clock(ms, tz)),
                    None => format!("since {}", format::clock(ms, tz)),
                },
            };
            PresenceRow {
                name: x.name.as_str().into(),
                home: x.state == State::Home,
                state: match x.state {
                    State::Home => "home",
                    State::Away => "out",
                    State::Unknown => "not seen yet",
                }
                .into(),
                since: since.into(),
            }
        })
        .collect()
}

/// "18:02 John arrived · front door", newest first.
pub fn recent_moves(p: &PresenceView, tz: &TimeZone) -> Vec<slint::SharedString> {
    p.recent
        .iter()
        .take(RECENT_MOVES)
        .map(|e| {
            let verb = match (e.kind, e.inferred) {
                (Kind::Arrived, _) => "arrived",
                (_, true) => "left (not seen since)",
                _ => "left",
            };
            format!(
                "{} {} {verb} · {}",
                format::clock(e.at_ms, tz),
                e.name.as_deref().unwrap_or("someone"),
                e.camera.replace('_', " ")
            )
            .into()
        })
        .collect()
}

/// Why the presence panel has no rows (or nothing).
pub fn presence_note(p: &PresenceView) -> String {
    if !p.cameras_configured {
        NO_PRESENCE.to_string()
    } else if p.people.is_empty() {
        "Nobody is enrolled yet: jarvis faces enroll NAME PHOTO…".to_string()
    } else {
        String::new()
    }
}

/// Active storages, fullest first; a shared storage is shown once.
pub fn storage_bars(c: &ClusterSnapshot) -> Vec<StorageBar> {
    let mut seen = std::collections::BTreeSet::new();
    let mut list: Vec<_> = c
        .storages
        .iter()
        .filter(|s| s.total > 0 && (!s.shared || seen.insert(s.storage.clone())))
        .collect();
    list.sort_by(|a, b| {
        b.used_pct()
            .total_cmp(&a.used_pct())
            .then(a.storage.cmp(&b.storage))
    });
    list.into_iter()
        .map(|s| StorageBar {
            name: s.storage.as_str().into(),
            node: if s.shared {
                "shared".into()
            } else {
                s.node.as_str().into()
            },
            used: (s.used_pct() / 100.0) as f32,
            text: format!(
                "{:.0}% · {}",
                s.used_pct(),
                format::used_of(s.used, s.total)
            )
            .into(),
        })
        .collect()
}

/// What is wrong now, worst first.
pub fn alerts(c: &ClusterSnapshot, (warn, crit): (f64, f64), now_ms: u64) -> Vec<AlertRow> {
    let mut out = Vec::new();
    let mut push = |level: i32, text: String, since: String| {
        out.push(AlertRow {
            text: text.into(),
            since: since.into(),
            level,
        })
    };
    if let Some(s) = &c.stale {
        push(
            2,
            format!("Proxmox VE not answering: {}", s.reason),
            format::ago(s.since_ms, now_ms),
        );
    }
    if c.quorate == Some(false) {
        push(2, "Cluster has lost quorum".into(), String::new());
    }
    for n in &c.nodes {
        if !n.online {
            push(2, format!("Node {} is offline", n.name), String::new());
            continue;
        }
        for d in &n.disks {
            if matches!(d.health.as_deref(), Some(h) if !["PASSED", "OK", "UNKNOWN"].contains(&h.to_ascii_uppercase().as_str()))
            {
                push(
                    2,
                    format!("{}: disk {} fails SMART", n.name, d.devpath),
                    String::new(),
                );
            }
        }
        if let Some(t) = n
            .temperatures
            .iter()
            .max_by(|a, b| a.celsius.total_cmp(&b.celsius))
        {
            if t.celsius >= HOT_C {
                push(
                    2,
                    format!("{} is hot: {} at {:.0}°C", n.name, t.sensor, t.celsius),
                    String::new(),
                );
            } else if t.celsius >= WARM_C {
                push(
                    1,
                    format!("{} runs warm: {} at {:.0}°C", n.name, t.sensor, t.celsius),
                    String::new(),
                );
            }
        }
    }
    for b in storage_bars(c) {
        let pct = f64::from(b.used) * 100.0;
        if pct >= crit {
            push(
                2,
                format!("Storage {} ({}) is {pct:.0}% full", b.name, b.node),
                String::new(),
            );
        } else if pct >= warn {
            push(
                1,
                format!("Storage {} ({}) is {pct:.0}% full", b.name, b.node),
                String::new(),
            );
        }
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.level));
    out
}

pub fn setup(w: &AppWindow, ctx: &KioskContext) {
    let a = w.global::<StatusAdapter>();
    a.set_storages(rows::new_model::<StorageBar>().1);
    a.set_alerts(rows::new_model::<AlertRow>().1);
    a.set_presence(rows::new_model::<PresenceRow>().1);
    a.set_recent_moves(rows::new_model::<slint::SharedString>().1);
    a.set_storage_warn((ctx.storage_thresholds.0 / 100.0) as f32);
    a.set_storage_critical((ctx.storage_thresholds.1 / 100.0) as f32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_rows_home_first_with_since_and_where_and_recent_moves() {
        use crate::vision::household::PresenceView;
        use crate::vision::presence::{PersonPresence, State};
        use crate::vision::timeline::{Entry, Kind};
        let tz = TimeZone::UTC;
        let person = |id, name: &str, state, since: Option<u64>| PersonPresence {
            person: id,
            name: name.into(),
            state,
            since_ms: since,
            last_seen_ms: since,
            last_camera: since.map(|_| "front_door".to_string()),
            inferred: false,
        };
        let mut p = PresenceView {
            cameras_configured: true,
            people: vec![
                person(1, "Tom", State::Unknown, None),
                person(2, "Sarah", State::Away, Some(8 * 3_600_000)),
                person(3, "John", State::Home, Some(18 * 3_600_000 + 120_000)),
            ],
            recent: vec![Entry {
                id: 1,
                at_ms: 18 * 3_600_000 + 120_000,
                kind: Kind::Arrived,
                person: Some(3),
                name: Some("John".into()),
                camera: "front_door".into(),
                confidence: 0.8,
                inferred: false,
                sighting: None,
                frigate_event: None,
            }],
            ..Default::default()
        };
        let rows = presence_rows(&p, &tz);
        let shown: Vec<(String, String, String)> = rows
            .iter()
            .map(|r| (r.name.to_string(), r.state.to_string(), r.since.to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "John".into(),
                    "home".into(),
                    "since 18:02 · front door".into()
                ),
                (
                    "Sarah".into(),
                    "out".into(),
                    "since 08:00 · front door".into()
                ),
                ("Tom".into(), "not seen yet".into(), String::new()),
            ]
        );
        assert_eq!(recent_moves(&p, &tz), ["18:02 John arrived · front door"]);
        assert_eq!(presence_note(&p), "");
        p.people.clear();
        assert!(presence_note(&p).contains("enroll"));
        p.cameras_configured = false;
        assert!(presence_rows(&p, &tz).is_empty());
        assert_eq!(presence_note(&p), NO_PRESENCE);
    }

    use crate::cluster::model::{StorageView, Temperature};
    use crate::kiosk::controllers::cluster::tests::node;

    fn storage(name: &str, node: &str, used: u64, shared: bool) -> StorageView {
        StorageView {
            storage: name.into(),
            node: node.into(),
            plugintype: None,
            content: None,
            shared,
            status: "available".into(),
            used,
            total: 100,
        }
    }

    #[test]
    fn storage_is_sorted_and_shared_pools_shown_once() {
        let c = ClusterSnapshot {
            storages: vec![
                storage("local", "pve", 40, false),
                storage("nas", "pve", 91, true),
                storage("nas", "agent", 91, true),
                storage("local-zfs", "pve", 85, false),
            ],
            ..Default::default()
        };
        let bars = storage_bars(&c);
        assert_eq!(
            bars.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            ["nas", "local-zfs", "local"]
        );
        assert_eq!(bars[0].node, "shared");
        let a = alerts(&c, (80.0, 90.0), 0);
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].level, a[0].text.as_str()),
            (2, "Storage nas (shared) is 91% full")
        );
        assert_eq!(a[1].level, 1);
    }

    #[test]
    fn alerts_follow_the_state() {
        let mut hot = node("pve", true);
        hot.temperatures = vec![Temperature {
            sensor: "Package id 0".into(),
            celsius: 88.0,
        }];
        let c = ClusterSnapshot {
            nodes: vec![hot, node("agent", false)],
            quorate: Some(true),
            ..Default::default()
        };
        let a = alerts(&c, (80.0, 90.0), 0);
        let texts: Vec<_> = a.iter().map(|a| a.text.to_string()).collect();
        assert_eq!(
            texts,
            ["pve is hot: Package id 0 at 88°C", "Node agent is offline"]
        );
        assert!(alerts(&ClusterSnapshot::default(), (80.0, 90.0), 0).is_empty());
    }
}

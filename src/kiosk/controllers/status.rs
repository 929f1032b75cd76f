//! The right column (`StatusAdapter`): storage bars, the alerts that are true right now (derived from the state,
//! so an alert clears itself when its cause does), and presence — empty, with the reason, until a camera source
//! feeds it.

use slint::ComponentHandle;

use crate::cluster::model::ClusterSnapshot;
use crate::kiosk::controllers::cluster::{set_if_changed, HOT_C, WARM_C};
use crate::kiosk::ui::{AlertRow, AppWindow, PresenceRow, StatusAdapter, StorageBar};
use crate::kiosk::{format, rows, KioskContext};

/// Shown in the presence panel while nothing feeds it.
pub const NO_PRESENCE: &str =
    "No cameras connected yet. Who is home appears here once Frigate or an RTSP camera is configured.";

#[derive(Debug, Clone, PartialEq)]
pub struct StatusView {
    pub storages: Vec<StorageBar>,
    pub alerts: Vec<AlertRow>,
}

impl StatusView {
    pub fn build(c: &ClusterSnapshot, thresholds: (f64, f64), now_ms: u64) -> StatusView {
        StatusView {
            storages: storage_bars(c),
            alerts: alerts(c, thresholds, now_ms),
        }
    }

    pub fn apply(&self, w: &AppWindow) {
        let a = w.global::<StatusAdapter>();
        rows::sync_handle(&a.get_storages(), &self.storages);
        rows::sync_handle(&a.get_alerts(), &self.alerts);
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
    set_if_changed(a.get_presence_note(), NO_PRESENCE, |v| {
        a.set_presence_note(v)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
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

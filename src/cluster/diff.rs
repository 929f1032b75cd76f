//! Turns two successive cluster views into events: nodes going offline or online, guests changing state
//! (appearing and disappearing included), storages crossing fill thresholds (with hysteresis, once per shared
//! storage). Pure functions; the poller calls [`diff`].

use std::collections::{BTreeMap, HashSet};

use crate::bus::{Event, FillLevel};
use crate::cluster::model::ClusterSnapshot;

/// Storage fill thresholds in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub warn_pct: f64,
    pub crit_pct: f64,
    /// A level is left only when the fill drops this far below its threshold (avoids flapping).
    pub hysteresis_pct: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            warn_pct: 80.0,
            crit_pct: 90.0,
            hysteresis_pct: 1.0,
        }
    }
}

impl Thresholds {
    /// The level for `pct`, given the level it had before.
    pub fn level(&self, pct: f64, prev: FillLevel) -> FillLevel {
        let up = if pct >= self.crit_pct {
            FillLevel::Critical
        } else if pct >= self.warn_pct {
            FillLevel::Warning
        } else {
            FillLevel::Normal
        };
        if up >= prev {
            return up;
        }
        // Going down: stay unless clearly below the threshold of the current level.
        let keep = match prev {
            FillLevel::Critical => pct > self.crit_pct - self.hysteresis_pct,
            FillLevel::Warning => pct > self.warn_pct - self.hysteresis_pct,
            FillLevel::Normal => false,
        };
        if keep {
            prev
        } else {
            up
        }
    }
}

/// Remembers storage levels between polls.
#[derive(Debug, Default)]
pub struct DiffMemory {
    levels: BTreeMap<String, FillLevel>,
}

/// Events between `old` and `new`. `old` with `updated_at_ms == 0` is "nothing seen yet": no node or guest
/// events then, but storages already past a threshold are reported.
pub fn diff(
    old: &ClusterSnapshot,
    new: &ClusterSnapshot,
    thresholds: &Thresholds,
    memory: &mut DiffMemory,
) -> Vec<Event> {
    let mut events = Vec::new();
    let initial = old.updated_at_ms == 0;
    if !initial {
        for n in &new.nodes {
            let was = old.node(&n.name).map(|o| o.online);
            match (was, n.online) {
                (Some(true), false) | (None, false) => events.push(Event::NodeOffline {
                    node: n.name.clone(),
                }),
                (Some(false), true) | (None, true) => events.push(Event::NodeOnline {
                    node: n.name.clone(),
                }),
                _ => {}
            }
        }
        for o in &old.nodes {
            if new.node(&o.name).is_none() && o.online {
                events.push(Event::NodeOffline {
                    node: o.name.clone(),
                });
            }
        }
        for g in &new.guests {
            let before = old.guest(g.vmid).map(|o| o.status.as_str());
            if before != Some(g.status.as_str()) {
                events.push(Event::GuestStateChanged {
                    vmid: g.vmid,
                    name: g.name.clone(),
                    node: g.node.clone(),
                    guest_kind: g.kind,
                    from: before.map(str::to_string),
                    to: Some(g.status.clone()),
                });
            }
        }
        for o in &old.guests {
            if new.guest(o.vmid).is_none() {
                events.push(Event::GuestStateChanged {
                    vmid: o.vmid,
                    name: o.name.clone(),
                    node: o.node.clone(),
                    guest_kind: o.kind,
                    from: Some(o.status.clone()),
                    to: None,
                });
            }
        }
    }
    let mut seen_shared = HashSet::new();
    for s in &new.storages {
        if s.total == 0 || s.status != "available" {
            continue;
        }
        let key = if s.shared {
            s.storage.clone()
        } else {
            format!("{}/{}", s.node, s.storage)
        };
        if s.shared && !seen_shared.insert(key.clone()) {
            continue;
        }
        let pct = s.used_pct();
        let prev = memory
            .levels
            .get(&key)
            .copied()
            .unwrap_or(FillLevel::Normal);
        let now = thresholds.level(pct, prev);
        if now != prev {
            events.push(Event::StorageThreshold {
                storage: s.storage.clone(),
                node: if s.shared {
                    "shared".to_string()
                } else {
                    s.node.clone()
                },
                used_pct: (pct * 10.0).round() / 10.0,
                from: prev,
                to: now,
            });
        }
        memory.levels.insert(key, now);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::{GuestKind, GuestView, NodeView, StorageView};

    fn node(name: &str, online: bool) -> NodeView {
        NodeView {
            name: name.into(),
            online,
            cpu: 0.1,
            maxcpu: 4,
            mem: 1,
            maxmem: 2,
            uptime: 1,
            loadavg: None,
            rootfs_used: None,
            rootfs_total: None,
            pveversion: None,
            kernel: None,
            cpu_model: None,
            disks: vec![],
            temperatures: vec![],
        }
    }

    fn guest(vmid: u32, status: &str) -> GuestView {
        GuestView {
            vmid,
            name: format!("g{vmid}"),
            node: "pve".into(),
            kind: GuestKind::Lxc,
            status: status.into(),
            cpu: 0.0,
            maxcpu: 1.0,
            mem: 0,
            maxmem: 1,
            disk: 0,
            maxdisk: 1,
            uptime: 0,
            netin: 0,
            netout: 0,
            tags: vec![],
            template: false,
            lock: None,
        }
    }

    fn storage(node: &str, name: &str, shared: bool, used: u64) -> StorageView {
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

    fn snap(
        nodes: Vec<NodeView>,
        guests: Vec<GuestView>,
        storages: Vec<StorageView>,
    ) -> ClusterSnapshot {
        ClusterSnapshot {
            nodes,
            guests,
            storages,
            updated_at_ms: 1,
            ..Default::default()
        }
    }

    #[test]
    fn node_and_guest_changes_become_events() {
        let t = Thresholds::default();
        let mut mem = DiffMemory::default();
        let a = snap(
            vec![node("pve", true), node("agent", true)],
            vec![guest(101, "running"), guest(102, "stopped")],
            vec![],
        );
        let b = snap(
            vec![node("pve", true), node("agent", false)],
            vec![guest(101, "stopped"), guest(103, "running")],
            vec![],
        );
        let events = diff(&a, &b, &t, &mut mem);
        assert!(events.contains(&Event::NodeOffline {
            node: "agent".into()
        }));
        let changes: Vec<(u32, Option<&str>, Option<&str>)> = events
            .iter()
            .filter_map(|e| match e {
                Event::GuestStateChanged { vmid, from, to, .. } => {
                    Some((*vmid, from.as_deref(), to.as_deref()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            changes,
            vec![
                (101, Some("running"), Some("stopped")),
                (103, None, Some("running")),
                (102, Some("stopped"), None)
            ]
        );
        assert!(diff(&b, &b, &t, &mut mem).is_empty(), "no change, no event");
    }

    #[test]
    fn first_view_reports_only_storage_already_past_thresholds() {
        let t = Thresholds::default();
        let mut mem = DiffMemory::default();
        let empty = ClusterSnapshot::default();
        let first = snap(
            vec![node("pve", true)],
            vec![guest(101, "running")],
            vec![
                storage("pve", "local", false, 50),
                storage("pve", "nas", true, 85),
                storage("Home", "nas", true, 85),
            ],
        );
        let events = diff(&empty, &first, &t, &mut mem);
        assert_eq!(
            events,
            vec![Event::StorageThreshold {
                storage: "nas".into(),
                node: "shared".into(),
                used_pct: 85.0,
                from: FillLevel::Normal,
                to: FillLevel::Warning
            }]
        );
    }

    #[test]
    fn thresholds_have_hysteresis() {
        let t = Thresholds::default();
        assert_eq!(t.level(80.0, FillLevel::Normal), FillLevel::Warning);
        assert_eq!(t.level(79.5, FillLevel::Warning), FillLevel::Warning);
        assert_eq!(t.level(78.9, FillLevel::Warning), FillLevel::Normal);
        assert_eq!(t.level(95.0, FillLevel::Normal), FillLevel::Critical);
        assert_eq!(t.level(85.0, FillLevel::Critical), FillLevel::Warning);
    }
}

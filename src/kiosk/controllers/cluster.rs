//! The left column: node cards and the guest list with its node filter (`ClusterAdapter`). Guest power buttons
//! call `start_guest` (stopped guest) or `shutdown_guest` (running guest, which asks for approval) through the
//! registry.

use std::rc::Rc;

use serde_json::json;
use slint::{ComponentHandle, Model, ModelRc, SharedString, VecModel};

use crate::cluster::model::{ClusterSnapshot, NodeView};
use crate::kiosk::ui::{AppWindow, ClusterAdapter, GuestRow, NodeCard};
use crate::kiosk::{format, rows, KioskContext};

/// Temperatures from which a node reads warm and hot (°C).
pub const WARM_C: f64 = 70.0;
pub const HOT_C: f64 = 85.0;
/// The guest filter that shows every node.
pub const ALL: &str = "all";

/// Everything the column shows, built off the UI thread.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    pub nodes: Vec<NodeCard>,
    pub guests: Vec<GuestRow>,
    pub filters: Vec<SharedString>,
    pub summary: String,
    pub stale: String,
}

impl ClusterView {
    pub fn build(c: &ClusterSnapshot, now_ms: u64) -> ClusterView {
        let mut filters = vec![SharedString::from(ALL)];
        filters.extend(c.nodes.iter().map(|n| SharedString::from(n.name.as_str())));
        ClusterView {
            nodes: c.nodes.iter().map(|n| node_card(n, c)).collect(),
            guests: guest_rows(c),
            filters,
            summary: summary(c),
            stale: c
                .stale
                .as_ref()
                .map(|s| {
                    format!(
                        "Proxmox VE is not answering ({}), figures from {}",
                        s.reason,
                        format::ago(c.updated_at_ms, now_ms)
                    )
                })
                .unwrap_or_default(),
        }
    }

    /// Syncs the adapter's models (UI thread).
    pub fn apply(&self, w: &AppWindow) {
        let a = w.global::<ClusterAdapter>();
        rows::sync_handle(&a.get_nodes(), &self.nodes);
        rows::sync_handle(&a.get_all_guests(), &self.guests);
        rows::sync_handle(&a.get_filters(), &self.filters);
        let filter = a.get_node_filter();
        rows::sync_handle(&a.get_visible_guests(), &filtered(&self.guests, &filter));
        set_if_changed(a.get_summary(), &self.summary, |v| a.set_summary(v));
        set_if_changed(a.get_stale_text(), &self.stale, |v| a.set_stale_text(v));
    }
}

pub(crate) fn set_if_changed(current: SharedString, next: &str, set: impl FnOnce(SharedString)) {
    if current.as_str() != next {
        set(next.into());
    }
}

pub fn node_card(n: &NodeView, c: &ClusterSnapshot) -> NodeCard {
    let hottest = n
        .temperatures
        .iter()
        .map(|t| t.celsius)
        .fold(f64::NAN, f64::max);
    let (temp_text, temp_level) = if hottest.is_nan() {
        ("--°C".to_string(), 0)
    } else {
        let level = if hottest >= HOT_C {
            2
        } else if hottest >= WARM_C {
            1
        } else {
            0
        };
        (format!("{}°C", hottest.round() as i64), level)
    };
    let (smart_text, smart_level) = smart(n);
    let guests = c
        .guests
        .iter()
        .filter(|g| g.node == n.name && !g.template)
        .count();
    let mem = if n.maxmem == 0 {
        0.0
    } else {
        n.mem as f64 / n.maxmem as f64
    };
    NodeCard {
        name: n.name.as_str().into(),
        online: n.online,
        cpu: n.cpu as f32,
        cpu_text: format!("{} of {}", format::pct(n.cpu), n.maxcpu).into(),
        mem: mem as f32,
        mem_text: format::used_of(n.mem, n.maxmem).into(),
        temp_text: if n.online {
            temp_text.into()
        } else {
            SharedString::new()
        },
        temp_level,
        uptime: format!("{} · {guests} guests", format::uptime(n.uptime)).into(),
        smart_text: smart_text.into(),
        smart_level,
    }
}

/// The SMART badge: failed beats worn beats unknown beats passed.
fn smart(n: &NodeView) -> (String, i32) {
    if n.disks.is_empty() {
        return ("SMART --".into(), 3);
    }
    let failed = n
        .disks
        .iter()
        .filter(|d| matches!(d.health.as_deref(), Some(h) if !h.eq_ignore_ascii_case("passed") && !h.eq_ignore_ascii_case("ok") && !h.eq_ignore_ascii_case("unknown")))
        .count();
    if failed > 0 {
        return (format!("SMART FAIL ×{failed}"), 2);
    }
    if let Some(w) = n
        .disks
        .iter()
        .filter_map(|d| d.wearout)
        .min()
        .filter(|w| *w <= 10)
    {
        return (format!("WEAR {w}%"), 1);
    }
    if n.disks
        .iter()
        .any(|d| d.health.is_none() || d.health.as_deref() == Some("UNKNOWN"))
    {
        return ("SMART ?".into(), 1);
    }
    ("SMART OK".into(), 0)
}

/// Guests by VMID, templates left out.
pub fn guest_rows(c: &ClusterSnapshot) -> Vec<GuestRow> {
    let mut guests: Vec<_> = c.guests.iter().filter(|g| !g.template).collect();
    guests.sort_by_key(|g| g.vmid);
    guests
        .into_iter()
        .map(|g| GuestRow {
            vmid: g.vmid as i32,
            name: g.name.as_str().into(),
            node: g.node.as_str().into(),
            kind: g.kind.as_str().into(),
            status: g.status.as_str().into(),
            running: g.status == "running",
            cpu_text: format::pct(g.cpu).into(),
            mem: if g.maxmem == 0 {
                0.0
            } else {
                (g.mem as f64 / g.maxmem as f64) as f32
            },
            mem_text: format::bytes(g.mem).into(),
        })
        .collect()
}

pub fn filtered(all: &[GuestRow], filter: &str) -> Vec<GuestRow> {
    all.iter()
        .filter(|g| filter == ALL || filter.is_empty() || g.node == filter)
        .cloned()
        .collect()
}

/// `4 nodes · 21/27 running · quorate`.
pub fn summary(c: &ClusterSnapshot) -> String {
    let online = c.nodes.iter().filter(|n| n.online).count();
    let guests: Vec<_> = c.guests.iter().filter(|g| !g.template).collect();
    let running = guests.iter().filter(|g| g.status == "running").count();
    let nodes = if online == c.nodes.len() {
        format!("{} nodes", c.nodes.len())
    } else {
        format!("{online}/{} nodes up", c.nodes.len())
    };
    let quorum = match c.quorate {
        Some(true) => " · quorate",
        Some(false) => " · NO QUORUM",
        None => "",
    };
    format!("{nodes} · {running}/{} running{quorum}", guests.len())
}

/// Installs the models and callbacks (UI thread).
pub fn setup(w: &AppWindow, ctx: &KioskContext) {
    let a = w.global::<ClusterAdapter>();
    a.set_nodes(rows::new_model::<NodeCard>().1);
    a.set_all_guests(rows::new_model::<GuestRow>().1);
    a.set_visible_guests(rows::new_model::<GuestRow>().1);
    a.set_filters(ModelRc::from(Rc::new(VecModel::from(vec![
        SharedString::from(ALL),
    ]))));
    a.set_node_filter(ALL.into());
    a.set_summary(SharedString::new());
    let weak = w.as_weak();
    a.on_filter_changed(move |filter| {
        let Some(w) = weak.upgrade() else { return };
        let a = w.global::<ClusterAdapter>();
        let all: Vec<GuestRow> = a.get_all_guests().iter().collect();
        rows::sync_handle(&a.get_visible_guests(), &filtered(&all, &filter));
    });
    let ctx = ctx.clone();
    let weak = w.as_weak();
    a.on_guest_power(move |vmid| {
        let Some(w) = weak.upgrade() else { return };
        let running = w
            .global::<ClusterAdapter>()
            .get_all_guests()
            .iter()
            .find(|g| g.vmid == vmid)
            .map(|g| g.running);
        let Some(running) = running else { return };
        let tool = if running {
            "shutdown_guest"
        } else {
            "start_guest"
        };
        super::terminal::invoke_and_report(&ctx, w.as_weak(), tool, json!({ "vmid": vmid }));
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cluster::model::{DiskView, GuestKind, GuestView, Temperature};

    pub(crate) fn node(name: &str, online: bool) -> NodeView {
        NodeView {
            name: name.into(),
            online,
            cpu: 0.324,
            maxcpu: 16,
            mem: 39 * (1 << 30),
            maxmem: 64 * (1 << 30),
            uptime: 12 * 86_400 + 4 * 3600,
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

    pub(crate) fn guest(vmid: u32, node: &str, status: &str) -> GuestView {
        GuestView {
            vmid,
            name: format!("guest{vmid}"),
            node: node.into(),
            kind: GuestKind::Lxc,
            status: status.into(),
            cpu: 0.12,
            maxcpu: 2.0,
            mem: 1 << 30,
            maxmem: 4 << 30,
            disk: 0,
            maxdisk: 0,
            uptime: 0,
            netin: 0,
            netout: 0,
            tags: vec![],
            template: false,
            lock: None,
        }
    }

    fn disk(health: &str, wearout: Option<u32>) -> DiskView {
        DiskView {
            devpath: "/dev/sda".into(),
            model: None,
            serial: None,
            size: 0,
            health: Some(health.into()),
            wearout,
            disk_type: None,
        }
    }

    #[test]
    fn node_cards_read_temperature_and_smart() {
        let mut pve = node("pve", true);
        pve.temperatures = vec![
            Temperature {
                sensor: "cpu".into(),
                celsius: 54.4,
            },
            Temperature {
                sensor: "nvme".into(),
                celsius: 71.0,
            },
        ];
        pve.disks = vec![disk("PASSED", Some(80)), disk("PASSED", Some(7))];
        let c = ClusterSnapshot {
            nodes: vec![pve.clone()],
            guests: vec![guest(101, "pve", "running"), guest(102, "pve", "stopped")],
            ..Default::default()
        };
        let card = node_card(&pve, &c);
        assert_eq!(card.temp_text, "71°C");
        assert_eq!(card.temp_level, 1);
        assert_eq!(card.smart_text, "WEAR 7%");
        assert_eq!(card.smart_level, 1);
        assert_eq!(card.cpu_text, "32% of 16");
        assert_eq!(card.mem_text, "39.0 / 64 GiB");
        assert_eq!(card.uptime, "up 12d 4h · 2 guests");

        pve.disks.push(disk("FAILED", None));
        assert_eq!(node_card(&pve, &c).smart_level, 2);
        assert_eq!(node_card(&node("x", false), &c).smart_text, "SMART --");
        assert_eq!(node_card(&node("x", false), &c).temp_text, "");
    }

    #[test]
    fn guests_sort_filter_and_summarise() {
        let c = ClusterSnapshot {
            nodes: vec![node("pve", true), node("agent", false)],
            guests: vec![
                guest(200, "agent", "stopped"),
                guest(101, "pve", "running"),
                guest(105, "pve", "running"),
            ],
            quorate: Some(true),
            ..Default::default()
        };
        let view = ClusterView::build(&c, 0);
        assert_eq!(
            view.guests.iter().map(|g| g.vmid).collect::<Vec<_>>(),
            vec![101, 105, 200]
        );
        assert_eq!(filtered(&view.guests, "agent").len(), 1);
        assert_eq!(filtered(&view.guests, ALL).len(), 3);
        assert_eq!(view.filters, vec!["all", "pve", "agent"]);
        assert_eq!(view.summary, "1/2 nodes up · 2/3 running · quorate");
        assert_eq!(view.stale, "");
    }
}

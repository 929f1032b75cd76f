//! The owned, serialisable view of the cluster that the state, the side port and the UI show: nodes, guests,
//! storages and disks, built by the poller from the typed API answers in [`super::api`].

use serde::{Deserialize, Serialize};

/// QEMU virtual machine or LXC container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    Qemu,
    Lxc,
}

impl GuestKind {
    /// The path segment PVE uses (`qemu` or `lxc`).
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }

    pub fn parse(s: &str) -> Option<GuestKind> {
        match s {
            "qemu" => Some(GuestKind::Qemu),
            "lxc" => Some(GuestKind::Lxc),
            _ => None,
        }
    }
}

/// Why the cluster view is stale, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Staleness {
    pub reason: String,
    pub since_ms: u64,
    pub failures: u32,
}

/// A temperature reading of a node (filled over SSH in production; by the simulator in the demo).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    pub sensor: String,
    pub celsius: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskView {
    pub devpath: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub size: u64,
    /// SMART health as PVE reports it: `PASSED`, `OK`, `FAILED`, `UNKNOWN`.
    pub health: Option<String>,
    /// Percentage of life left for SSDs (PVE's `wearout`), when known.
    pub wearout: Option<u32>,
    /// `ssd`, `hdd`, `nvme`, `usb`... when known.
    pub disk_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    pub online: bool,
    /// CPU use as a fraction of all CPUs (0.0–1.0).
    pub cpu: f64,
    pub maxcpu: u32,
    pub mem: u64,
    pub maxmem: u64,
    pub uptime: u64,
    pub loadavg: Option<[f64; 3]>,
    pub rootfs_used: Option<u64>,
    pub rootfs_total: Option<u64>,
    pub pveversion: Option<String>,
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    pub disks: Vec<DiskView>,
    pub temperatures: Vec<Temperature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestView {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub kind: GuestKind,
    /// `running`, `stopped`, `paused`...
    pub status: String,
    pub cpu: f64,
    pub maxcpu: f64,
    pub mem: u64,
    pub maxmem: u64,
    pub disk: u64,
    pub maxdisk: u64,
    pub uptime: u64,
    pub netin: u64,
    pub netout: u64,
    pub tags: Vec<String>,
    pub template: bool,
    pub lock: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageView {
    pub storage: String,
    pub node: String,
    pub plugintype: Option<String>,
    pub content: Option<String>,
    pub shared: bool,
    pub status: String,
    pub used: u64,
    pub total: u64,
}

impl StorageView {
    /// Fill percentage, 0 when the size is unknown.
    pub fn used_pct(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.used as f64 * 100.0 / self.total as f64
        }
    }
}

/// The whole cluster as last seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    pub nodes: Vec<NodeView>,
    pub guests: Vec<GuestView>,
    pub storages: Vec<StorageView>,
    pub quorate: Option<bool>,
    pub pve_version: Option<String>,
    /// When the last good `/cluster/resources` answer arrived (ms since epoch); 0 before the first.
    pub updated_at_ms: u64,
    /// Set while PVE does not answer properly; the data above is then the last good view.
    pub stale: Option<Staleness>,
}

impl ClusterSnapshot {
    pub fn node(&self, name: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn guest(&self, vmid: u32) -> Option<&GuestView> {
        self.guests.iter().find(|g| g.vmid == vmid)
    }
}

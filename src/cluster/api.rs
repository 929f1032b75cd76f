//! Typed answers of the Proxmox VE API calls Jarvis makes, field for field as in the PVE API schema.
//!
//! Every field here must exist in `tests/data/pve-api-subset.json` (or in the contract test's short, justified
//! list of fields real PVE returns but the schema does not declare). The contract test decodes schema-shaped
//! samples with these types and checks every field name they serialise back to, so a renamed or invented field
//! fails it. PVE encodes booleans as 0/1 integers in places:
//! [`de_bool`] accepts both.

use serde::{Deserialize, Deserializer, Serialize};

/// One `/cluster/resources` item (type `node`, `qemu`, `lxc`, `storage`, `sdn`...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub vmid: Option<u32>,
    #[serde(default)]
    pub cpu: Option<f64>,
    #[serde(default)]
    pub maxcpu: Option<f64>,
    #[serde(default)]
    pub mem: Option<u64>,
    #[serde(default)]
    pub maxmem: Option<u64>,
    #[serde(default)]
    pub disk: Option<u64>,
    #[serde(default)]
    pub maxdisk: Option<u64>,
    #[serde(default)]
    pub uptime: Option<u64>,
    #[serde(default)]
    pub netin: Option<u64>,
    #[serde(default)]
    pub netout: Option<u64>,
    #[serde(default)]
    pub storage: Option<String>,
    #[serde(default)]
    pub plugintype: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub shared: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub template: Option<bool>,
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default)]
    pub lock: Option<String>,
}

/// One `/cluster/status` item (type `cluster` or `node`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatusItem {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub quorate: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub online: Option<bool>,
    #[serde(default)]
    pub nodes: Option<u32>,
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub version: String,
    pub release: String,
    pub repoid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryStatus {
    pub total: u64,
    pub used: u64,
    pub free: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    pub total: u64,
    pub used: u64,
    pub avail: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuInfo {
    pub model: String,
    pub cpus: u32,
    pub cores: u32,
    pub sockets: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kernel {
    pub sysname: String,
    pub release: String,
}

/// `/nodes/{node}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub cpu: f64,
    pub cpuinfo: CpuInfo,
    /// PVE sends the three load averages as strings.
    pub loadavg: Vec<String>,
    pub memory: MemoryStatus,
    pub rootfs: RootFs,
    pub pveversion: String,
    #[serde(rename = "current-kernel")]
    pub current_kernel: Kernel,
}

/// One `/nodes/{node}/disks/list` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    pub devpath: String,
    pub size: u64,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub health: Option<String>,
    /// Not in the schema, but real PVE returns it (percent of life left, or "N/A"): see the contract test.
    #[serde(default, deserialize_with = "de_wearout")]
    pub wearout: Option<u32>,
    /// Not in the schema, but real PVE returns it (`ssd`, `hdd`, `nvme`, `usb`, `unknown`).
    #[serde(default, rename = "type")]
    pub disk_type: Option<String>,
}

/// `/nodes/{node}/{qemu|lxc}/{vmid}/status/current` (the fields both kinds share).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestStatus {
    pub vmid: u32,
    pub status: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub cpu: Option<f64>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub mem: Option<u64>,
    #[serde(default)]
    pub maxmem: Option<u64>,
    #[serde(default)]
    pub maxdisk: Option<u64>,
    #[serde(default)]
    pub uptime: Option<u64>,
    #[serde(default)]
    pub lock: Option<String>,
}

/// `/nodes/{node}/storage/{storage}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageStatus {
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub used: Option<u64>,
    #[serde(default)]
    pub avail: Option<u64>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub shared: Option<bool>,
}

/// `/nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub upid: String,
    pub node: String,
    /// `running` or `stopped`.
    pub status: String,
    #[serde(default)]
    pub exitstatus: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub user: String,
    pub starttime: u64,
}

impl TaskStatus {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

/// One `/nodes/{node}/tasks` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskListItem {
    pub upid: String,
    pub node: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub user: String,
    pub starttime: u64,
    #[serde(default)]
    pub endtime: Option<u64>,
    /// Absent while running; `OK`, `WARNINGS: n` or an error message when finished.
    #[serde(default)]
    pub status: Option<String>,
}

/// One `/nodes/{node}/{qemu|lxc}/{vmid}/snapshot` item; the entry named `current` is "you are here".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub snaptime: Option<u64>,
}

/// PVE sends booleans as `0`/`1` (and sometimes as JSON booleans).
pub fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Int(i64),
    }
    Ok(match Option::<B>::deserialize(d)? {
        None => None,
        Some(B::Bool(b)) => Some(b),
        Some(B::Int(i)) => Some(i != 0),
    })
}

/// `wearout` is a number, or the string "N/A" for disks without the attribute.
fn de_wearout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum W {
        Num(f64),
        Text(String),
    }
    Ok(match Option::<W>::deserialize(d)? {
        Some(W::Num(n)) if (0.0..=100.0).contains(&n) => Some(n.round() as u32),
        Some(W::Text(t)) => t.trim().parse::<u32>().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_integers_and_wearout_text_decode() {
        let r: Resource = serde_json::from_value(serde_json::json!({
            "id": "storage/pve/nas", "type": "storage", "shared": 1, "template": 0
        }))
        .expect("decode");
        assert_eq!(r.shared, Some(true));
        assert_eq!(r.template, Some(false));
        let d: Disk = serde_json::from_value(
            serde_json::json!({"devpath": "/dev/sda", "size": 1, "wearout": "N/A"}),
        )
        .expect("decode");
        assert_eq!(d.wearout, None);
        let d: Disk = serde_json::from_value(
            serde_json::json!({"devpath": "/dev/sda", "size": 1, "wearout": 97}),
        )
        .expect("decode");
        assert_eq!(d.wearout, Some(97));
    }
}

//! Builds the owned [`ClusterSnapshot`] from `/cluster/resources` plus the slower per-node details (node status,
//! disks) and quorum. Pure functions, tested without a network.

use std::collections::BTreeMap;

use super::api::{Disk, NodeStatus, Resource};
use super::model::{ClusterSnapshot, DiskView, GuestKind, GuestView, NodeView, StorageView};

/// The slower-changing facts about a node, refreshed at their own rates.
#[derive(Debug, Clone, Default)]
pub struct NodeDetails {
    pub status: Option<NodeStatus>,
    pub disks: Option<Vec<Disk>>,
}

pub fn build(
    resources: &[Resource],
    details: &BTreeMap<String, NodeDetails>,
    quorate: Option<bool>,
    pve_version: Option<String>,
    now_ms: u64,
) -> ClusterSnapshot {
    let mut snap = ClusterSnapshot {
        quorate,
        pve_version,
        updated_at_ms: now_ms,
        ..Default::default()
    };
    for r in resources {
        match r.kind.as_str() {
            "node" => {
                let Some(name) = r.node.clone() else { continue };
                snap.nodes.push(node_view(r, name, details));
            }
            "qemu" | "lxc" => {
                let (Some(vmid), Some(kind)) = (r.vmid, GuestKind::parse(&r.kind)) else {
                    continue;
                };
                if r.template == Some(true) {
                    continue;
                }
                snap.guests.push(GuestView {
                    vmid,
                    name: r
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("{}-{vmid}", kind.as_str())),
                    node: r.node.clone().unwrap_or_default(),
                    kind,
                    status: r.status.clone().unwrap_or_else(|| "unknown".into()),
                    cpu: r.cpu.unwrap_or(0.0),
                    maxcpu: r.maxcpu.unwrap_or(0.0),
                    mem: r.mem.unwrap_or(0),
                    maxmem: r.maxmem.unwrap_or(0),
                    disk: r.disk.unwrap_or(0),
                    maxdisk: r.maxdisk.unwrap_or(0),
                    uptime: r.uptime.unwrap_or(0),
                    netin: r.netin.unwrap_or(0),
                    netout: r.netout.unwrap_or(0),
                    tags: r
                        .tags
                        .as_deref()
                        .map(|t| {
                            t.split([';', ',', ' '])
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                    template: false,
                    lock: r.lock.clone(),
                });
            }
            "storage" => {
                let (Some(storage), Some(node)) = (r.storage.clone(), r.node.clone()) else {
                    continue;
                };
                snap.storages.push(StorageView {
                    storage,
                    node,
                    plugintype: r.plugintype.clone(),
                    content: r.content.clone(),
                    shared: r.shared.unwrap_or(false),
                    status: r.status.clone().unwrap_or_else(|| "unknown".into()),
                    used: r.disk.unwrap_or(0),
                    total: r.maxdisk.unwrap_or(0),
                });
            }
            _ => {}
        }
    }
    snap.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    snap.guests.sort_by_key(|g| g.vmid);
    snap.storages
        .sort_by(|a, b| (&a.node, &a.storage).cmp(&(&b.node, &b.storage)));
    snap
}

fn node_view(r: &Resource, name: String, details: &BTreeMap<String, NodeDetails>) -> NodeView {
    let online = r.status.as_deref() == Some("online");
    let d = details.get(&name);
    let status = d.and_then(|d| d.status.as_ref()).filter(|_| online);
    let loadavg = status.and_then(|s| {
        let v: Vec<f64> = s
            .loadavg
            .iter()
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        (v.len() == 3).then(|| [v[0], v[1], v[2]])
    });
    NodeView {
        online,
        cpu: r.cpu.unwrap_or(0.0),
        maxcpu: r.maxcpu.unwrap_or(0.0) as u32,
        mem: r.mem.unwrap_or(0),
        maxmem: r.maxmem.unwrap_or(0),
        uptime: if online { r.uptime.unwrap_or(0) } else { 0 },
        loadavg,
        rootfs_used: status.map(|s| s.rootfs.used),
        rootfs_total: status.map(|s| s.rootfs.total),
        pveversion: status.map(|s| s.pveversion.clone()),
        kernel: status
            .map(|s| format!("{} {}", s.current_kernel.sysname, s.current_kernel.release)),
        cpu_model: status.map(|s| s.cpuinfo.model.clone()),
        disks: d
            .and_then(|d| d.disks.as_ref())
            .map(|disks| {
                disks
                    .iter()
                    .map(|k| DiskView {
                        devpath: k.devpath.clone(),
                        model: k.model.clone(),
                        serial: k.serial.clone(),
                        size: k.size,
                        health: k.health.clone(),
                        wearout: k.wearout,
                        disk_type: k.disk_type.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        temperatures: Vec::new(),
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_nodes_guests_and_storages_from_resources() {
        let resources: Vec<Resource> = serde_json::from_value(serde_json::json!([
            {"id": "node/pve", "type": "node", "node": "pve", "status": "online", "cpu": 0.25, "maxcpu": 6,
             "mem": 5, "maxmem": 10, "uptime": 100},
            {"id": "node/agent", "type": "node", "node": "agent", "status": "offline", "maxcpu": 2},
            {"id": "lxc/120", "type": "lxc", "vmid": 120, "name": "frigate", "node": "pve", "status": "running",
             "tags": "nvr;cameras", "template": 0},
            {"id": "qemu/900", "type": "qemu", "vmid": 900, "name": "tmpl", "node": "pve", "status": "stopped",
             "template": 1},
            {"id": "storage/pve/nas", "type": "storage", "storage": "nas", "node": "pve", "status": "available",
             "shared": 1, "disk": 50, "maxdisk": 100},
            {"id": "sdn/pve/localnetwork", "type": "sdn", "node": "pve", "status": "ok"}
        ]))
        .expect("decode");
        let snap = build(&resources, &BTreeMap::new(), Some(true), None, 5);
        assert_eq!(snap.nodes.len(), 2);
        assert!(!snap.node("agent").expect("agent").online);
        assert_eq!(snap.node("pve").expect("pve").maxcpu, 6);
        assert_eq!(snap.guests.len(), 1, "templates are not guests to watch");
        assert_eq!(snap.guests[0].tags, vec!["nvr", "cameras"]);
        assert_eq!(snap.storages[0].used_pct(), 50.0);
        assert_eq!(snap.updated_at_ms, 5);
    }
}

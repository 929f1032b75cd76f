//! Cluster tools (tier 0): status, guests, nodes, storage and disk health served from the state (no PVE round
//! trip), and task status / recent tasks asked of PVE.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::typed::TypedTool;
use super::{Registry, Tier, ToolError};
use crate::cluster::model::{ClusterSnapshot, GuestView, NodeView};
use crate::cluster::upid::Upid;

pub fn register(r: &mut Registry) {
    r.register(TypedTool::<NoArgs>::new(
        "cluster_status",
        Tier::Read,
        "Overview of the Proxmox VE cluster: quorum, each node's state, CPU and memory use, guest counts by state, \
         storage fill, and whether the data is stale. Use first to answer 'how is the cluster?'.",
        |_, _| "Read the cluster overview".into(),
        |ctx, _| Box::pin(async move { Ok(cluster_overview(&ctx.state.get().cluster)) }),
    ));
    r.register(TypedTool::<ListGuests>::new(
        "list_guests",
        Tier::Read,
        "List virtual machines (qemu) and containers (lxc) with their vmid, name, node, state, CPU and memory use. \
         Optional filters: node, status (running/stopped/paused), kind (qemu/lxc), tag.",
        |_, _| "List guests".into(),
        |ctx, a| {
            Box::pin(async move {
                let world = ctx.state.get();
                let guests: Vec<Value> = world
                    .cluster
                    .guests
                    .iter()
                    .filter(|g| a.node.as_deref().is_none_or(|n| g.node.eq_ignore_ascii_case(n)))
                    .filter(|g| a.status.as_deref().is_none_or(|s| g.status == s))
                    .filter(|g| a.kind.as_deref().is_none_or(|k| g.kind.as_str() == k))
                    .filter(|g| a.tag.as_deref().is_none_or(|t| g.tags.iter().any(|x| x == t)))
                    .map(guest_line)
                    .collect();
                Ok(json!({ "count": guests.len(), "guests": guests }))
            })
        },
    ));
    r.register(TypedTool::<GuestArgs>::new(
        "guest_status",
        Tier::Read,
        "Full state of one guest by vmid: node, kind, state, CPU, memory, disk, network counters, uptime, tags, lock.",
        |a, _| format!("Read the state of guest {}", a.vmid),
        |ctx, a| {
            Box::pin(async move {
                let world = ctx.state.get();
                let g = find_guest(&world.cluster, a.vmid)?;
                serde_json::to_value(g).map_err(|e| ToolError::Failed(e.to_string()))
            })
        },
    ));
    r.register(TypedTool::<NodeArgs>::new(
        "node_status",
        Tier::Read,
        "State of one node by name: online, CPU, memory, load average, root filesystem, uptime, PVE and kernel \
         versions, disks, temperatures when known.",
        |a, _| format!("Read the state of node {}", a.node),
        |ctx, a| {
            Box::pin(async move {
                let world = ctx.state.get();
                let n = find_node(&world.cluster, &a.node)?;
                serde_json::to_value(n).map_err(|e| ToolError::Failed(e.to_string()))
            })
        },
    ));
    r.register(TypedTool::<StorageArgs>::new(
        "storage_status",
        Tier::Read,
        "Storage fill per node: used, total and percent for each storage (local, local-lvm, shared NAS...). Optional \
         filters: node, storage.",
        |_, _| "Read storage status".into(),
        |ctx, a| {
            Box::pin(async move {
                let world = ctx.state.get();
                let rows: Vec<Value> = world
                    .cluster
                    .storages
                    .iter()
                    .filter(|s| a.node.as_deref().is_none_or(|n| s.node.eq_ignore_ascii_case(n)))
                    .filter(|s| a.storage.as_deref().is_none_or(|n| s.storage == n))
                    .map(|s| {
                        json!({"storage": s.storage, "node": s.node, "type": s.plugintype, "shared": s.shared,
                               "status": s.status, "used": s.used, "total": s.total,
                               "used_pct": (s.used_pct() * 10.0).round() / 10.0})
                    })
                    .collect();
                Ok(json!({ "storages": rows }))
            })
        },
    ));
    r.register(TypedTool::<DiskArgs>::new(
        "disk_health",
        Tier::Read,
        "SMART health and SSD wear of every disk (or one node's): model, size, health (PASSED/FAILED/UNKNOWN), wear \
         left in percent. Problems are listed first.",
        |_, _| "Read disk health".into(),
        |ctx, a| {
            Box::pin(async move {
                let world = ctx.state.get();
                let mut disks: Vec<Value> = Vec::new();
                let mut problems: Vec<Value> = Vec::new();
                for n in world.cluster.nodes.iter().filter(|n| a.node.as_deref().is_none_or(|x| n.name.eq_ignore_ascii_case(x))) {
                    for d in &n.disks {
                        let bad_health = d.health.as_deref().is_some_and(|h| h != "PASSED" && h != "OK" && h != "UNKNOWN");
                        let worn = d.wearout.is_some_and(|w| w < 10);
                        let row = json!({"node": n.name, "devpath": d.devpath, "model": d.model, "size": d.size,
                                         "type": d.disk_type, "health": d.health, "wearout_left_pct": d.wearout});
                        if bad_health || worn {
                            problems.push(row);
                        } else {
                            disks.push(row);
                        }
                    }
                }
                Ok(json!({ "problems": problems, "healthy": disks }))
            })
        },
    ));
    r.register(TypedTool::<TaskArgs>::new(
        "task_status",
        Tier::Read,
        "Status of a Proxmox task by its UPID (from a power or snapshot action): running or stopped, and its exit \
         status ('OK' or the error).",
        |a, _| format!("Read task {}", a.upid),
        |ctx, a| {
            Box::pin(async move {
                let upid: Upid = a.upid.parse().map_err(|e: crate::cluster::upid::UpidError| ToolError::InvalidArguments {
                    tool: "task_status".into(),
                    field: "upid".into(),
                    message: e.to_string(),
                })?;
                let t = ctx.pve.task_status(&upid).await.map_err(|e| ToolError::Failed(e.to_string()))?;
                serde_json::to_value(t).map_err(|e| ToolError::Failed(e.to_string()))
            })
        },
    ));
    r.register(TypedTool::<RecentTasks>::new(
        "recent_tasks",
        Tier::Read,
        "Recent Proxmox tasks (starts, stops, backups, snapshots...) of one node or of every online node, newest \
         first, with who started them and how they ended. errors_only lists failures.",
        |_, _| "Read recent tasks".into(),
        |ctx, a| {
            Box::pin(async move {
                let world = ctx.state.get();
                let nodes: Vec<String> = match &a.node {
                    Some(n) => vec![find_node(&world.cluster, n)?.name.clone()],
                    None => world.cluster.nodes.iter().filter(|n| n.online).map(|n| n.name.clone()).collect(),
                };
                let limit = a.limit.unwrap_or(20).clamp(1, 200);
                let mut all = Vec::new();
                for n in nodes {
                    let tasks = ctx.pve.tasks(&n, limit, a.errors_only).await.map_err(|e| ToolError::Failed(e.to_string()))?;
                    all.extend(tasks);
                }
                all.sort_by_key(|t| std::cmp::Reverse(t.starttime));
                all.truncate(limit as usize);
                Ok(json!({ "tasks": all }))
            })
        },
    ));
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListGuests {
    /// Only guests on this node.
    #[serde(default)]
    pub node: Option<String>,
    /// Only guests in this state: running, stopped, paused.
    #[serde(default)]
    pub status: Option<String>,
    /// Only this kind: qemu (virtual machine) or lxc (container).
    #[serde(default)]
    pub kind: Option<String>,
    /// Only guests with this tag.
    #[serde(default)]
    pub tag: Option<String>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestArgs {
    /// The guest's numeric id (vmid), e.g. 101.
    pub vmid: u32,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeArgs {
    /// The node's name, e.g. pve.
    pub node: String,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageArgs {
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub storage: Option<String>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskArgs {
    #[serde(default)]
    pub node: Option<String>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskArgs {
    /// The task id, `UPID:node:...:`.
    pub upid: String,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecentTasks {
    #[serde(default)]
    pub node: Option<String>,
    /// How many tasks (1–200, default 20).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only tasks that failed.
    #[serde(default)]
    pub errors_only: bool,
}

pub fn find_guest(c: &ClusterSnapshot, vmid: u32) -> Result<&GuestView, ToolError> {
    c.guest(vmid).ok_or_else(|| {
        let known: Vec<String> = c
            .guests
            .iter()
            .map(|g| format!("{} ({})", g.vmid, g.name))
            .collect();
        ToolError::NotFound(format!(
            "no guest with vmid {vmid}; known: {}",
            known.join(", ")
        ))
    })
}

pub fn find_node<'a>(c: &'a ClusterSnapshot, name: &str) -> Result<&'a NodeView, ToolError> {
    c.nodes
        .iter()
        .find(|n| n.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let known: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
            ToolError::NotFound(format!("no node named {name}; known: {}", known.join(", ")))
        })
}

fn pct(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (used as f64 * 1000.0 / total as f64).round() / 10.0
    }
}

fn guest_line(g: &GuestView) -> Value {
    json!({"vmid": g.vmid, "name": g.name, "node": g.node, "kind": g.kind, "status": g.status,
           "cpu_pct": (g.cpu * 1000.0).round() / 10.0, "mem_pct": pct(g.mem, g.maxmem), "tags": g.tags})
}

fn cluster_overview(c: &ClusterSnapshot) -> Value {
    let count = |s: &str| c.guests.iter().filter(|g| g.status == s).count();
    let nodes: Vec<Value> = c
        .nodes
        .iter()
        .map(|n| {
            json!({"name": n.name, "online": n.online, "cpu_pct": (n.cpu * 1000.0).round() / 10.0,
                   "mem_pct": pct(n.mem, n.maxmem), "uptime_s": n.uptime})
        })
        .collect();
    let mut storages: Vec<Value> = Vec::new();
    let mut seen_shared = std::collections::HashSet::new();
    for s in &c.storages {
        if s.shared && !seen_shared.insert(s.storage.clone()) {
            continue;
        }
        storages.push(
            json!({"storage": s.storage, "node": if s.shared { "shared" } else { s.node.as_str() },
                             "used_pct": pct(s.used, s.total)}),
        );
    }
    json!({
        "quorate": c.quorate,
        "stale": c.stale,
        "nodes": nodes,
        "guests": {"total": c.guests.len(), "running": count("running"), "stopped": count("stopped"),
                   "paused": count("paused")},
        "storages": storages,
        "updated_at_ms": c.updated_at_ms,
    })
}

//! The simulator's world: nodes, guests, storages, disks and tasks of the demo homelab, advanced lazily to "now"
//! on every request (loads drift, tasks finish after realistic delays), and rendered as PVE API JSON.
//!
//! All JSON shapes here follow `pve-api-schema.json`; the contract test fetches every route and checks every
//! field against it.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::cluster::client::PowerAction;
use crate::cluster::model::GuestKind;
use crate::cluster::upid::Upid;

/// The PVE release the simulator claims to be.
pub const PVE_VERSION: &str = "8.4.1";
const MAX_TASKS: usize = 500;
const MAX_STEPS_PER_TICK: u64 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Running,
    Stopped,
    Paused,
}

impl Power {
    pub fn as_str(self) -> &'static str {
        match self {
            Power::Running => "running",
            Power::Stopped => "stopped",
            // PVE reports a suspended VM as status "running" with qmpstatus "paused"; containers as "frozen"
            // don't exist in the API, so "paused" is reported as status for both in /cluster/resources.
            Power::Paused => "paused",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimDisk {
    pub devpath: String,
    pub model: String,
    pub serial: String,
    pub size: u64,
    pub disk_type: String,
    pub health: String,
    pub wearout: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct SimNode {
    pub name: String,
    pub cpus: u32,
    pub cpu_model: String,
    pub maxmem: u64,
    pub base_mem: u64,
    pub base_load: f64,
    pub cpu: f64,
    pub mem: u64,
    pub online: bool,
    /// Simulator seconds when the node last booted (0 = before the simulator started).
    pub boot_secs: u64,
    pub uptime_offset: u64,
    pub rootfs_total: u64,
    pub rootfs_used: u64,
    pub ip: String,
    /// lm-sensors style readings (not in the PVE API; read over SSH in production).
    pub temps: Vec<(String, f64)>,
    pub disks: Vec<SimDisk>,
    /// Set while rebooting: the node comes back at this wall-clock time.
    pub back_at_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct SimGuest {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub kind: GuestKind,
    pub power: Power,
    pub maxcpu: f64,
    pub maxmem: u64,
    pub maxdisk: u64,
    pub disk: u64,
    pub base_load: f64,
    pub cpu: f64,
    pub mem: u64,
    pub started_secs: u64,
    pub uptime_offset: u64,
    pub netin: u64,
    pub netout: u64,
    pub tags: String,
    pub snapshots: Vec<SimSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimSnapshot {
    pub name: String,
    pub description: String,
    pub snaptime: u64,
    pub parent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SimStorage {
    pub storage: String,
    pub node: String,
    pub plugintype: String,
    pub content: String,
    pub shared: bool,
    pub total: u64,
    pub used: u64,
}

#[derive(Debug, Clone)]
struct SimTask {
    upid: String,
    node: String,
    task_type: String,
    id: String,
    user: String,
    pid: u32,
    pstart: u64,
    starttime: u64,
    finish_ms: u64,
    /// The exit status once finished.
    outcome: String,
    finished: bool,
    effect: Option<Effect>,
}

/// What a task does to the world when it ends successfully.
#[derive(Debug, Clone)]
enum Effect {
    Power(u32, Power),
    Snapshot {
        vmid: u32,
        name: String,
        description: String,
    },
    Rollback {
        vmid: u32,
        name: String,
    },
    DeleteSnapshot {
        vmid: u32,
        name: String,
    },
}

/// Why a request cannot be served; rendered as PVE would (status + reason phrase).
#[derive(Debug, Clone, PartialEq)]
pub struct SimFailure {
    pub status: u16,
    pub message: String,
}

impl SimFailure {
    fn new(status: u16, message: impl Into<String>) -> SimFailure {
        SimFailure {
            status,
            message: message.into(),
        }
    }
}

pub struct SimModel {
    pub nodes: Vec<SimNode>,
    pub guests: Vec<SimGuest>,
    pub storages: Vec<SimStorage>,
    tasks: VecDeque<SimTask>,
    rng: StdRng,
    /// Wall-clock ms at which simulator time 0 is.
    epoch_ms: u64,
    last_step_secs: u64,
    /// Multiplies every task duration (tests use small values).
    pub task_time_scale: f64,
    next_pid: u32,
}

impl SimModel {
    /// The reference homelab, with loads seeded from `seed`.
    pub fn homelab(seed: u64, now_ms: u64) -> SimModel {
        let mut m = SimModel {
            nodes: super::homelab::nodes(),
            guests: super::homelab::guests(),
            storages: super::homelab::storages(),
            tasks: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed),
            epoch_ms: now_ms,
            last_step_secs: 0,
            task_time_scale: 1.0,
            next_pid: 0x1a2b0,
        };
        m.recompute_nodes();
        m
    }

    fn sim_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.epoch_ms) / 1000
    }

    /// Advances the world to `now_ms`: finishes due tasks and lets loads drift one step per elapsed second.
    pub fn tick(&mut self, now_ms: u64) {
        let secs = self.sim_secs(now_ms);
        for n in self.nodes.iter_mut() {
            if n.back_at_ms.is_some_and(|t| t <= now_ms) {
                n.back_at_ms = None;
                n.online = true;
                n.boot_secs = secs;
                n.uptime_offset = 0;
            }
        }
        self.finish_due_tasks(now_ms);
        let secs = self.sim_secs(now_ms);
        let steps = secs
            .saturating_sub(self.last_step_secs)
            .min(MAX_STEPS_PER_TICK);
        for _ in 0..steps {
            self.drift_step();
        }
        self.last_step_secs = secs;
        self.recompute_nodes();
    }

    fn drift_step(&mut self) {
        for g in self.guests.iter_mut().filter(|g| g.power == Power::Running) {
            let target = g.base_load;
            let noise: f64 = self.rng.random_range(-0.04..0.04);
            g.cpu = (g.cpu + (target - g.cpu) * 0.2 + noise).clamp(0.001, 1.0);
            let mem_target = (g.maxmem as f64 * (0.35 + g.base_load)).min(g.maxmem as f64 * 0.95);
            let mem_noise = self.rng.random_range(-0.01..0.01) * g.maxmem as f64;
            let mem = g.mem as f64 + (mem_target - g.mem as f64) * 0.1 + mem_noise;
            g.mem = mem.clamp(g.maxmem as f64 * 0.05, g.maxmem as f64) as u64;
            g.netin += self.rng.random_range(2_000..80_000);
            g.netout += self.rng.random_range(1_000..60_000);
        }
        for n in self.nodes.iter_mut() {
            for t in n.temps.iter_mut() {
                let target = 38.0 + n.cpu * 45.0;
                t.1 = (t.1 + (target - t.1) * 0.1 + self.rng.random_range(-0.3..0.3))
                    .clamp(25.0, 99.0);
            }
        }
        // Storage fills slowly (backups, recordings); shared storages move together.
        let growth: f64 = self.rng.random_range(0.0..1.0);
        for s in self.storages.iter_mut() {
            if s.storage == "nas" || s.storage == "local-lvm" {
                s.used = (s.used + (growth * 64.0 * 1024.0 * 1024.0) as u64).min(s.total);
            }
        }
    }

    /// Node CPU and memory follow their running guests.
    fn recompute_nodes(&mut self) {
        for n in self.nodes.iter_mut() {
            if !n.online {
                n.cpu = 0.0;
                n.mem = 0;
                continue;
            }
            let mut cpu_cores = n.base_load * n.cpus as f64;
            let mut mem = n.base_mem;
            for g in self
                .guests
                .iter()
                .filter(|g| g.node == n.name && g.power != Power::Stopped)
            {
                cpu_cores += g.cpu * g.maxcpu;
                mem += g.mem;
            }
            n.cpu = (cpu_cores / n.cpus as f64).clamp(0.0, 1.0);
            n.mem = mem.min(n.maxmem);
        }
    }

    fn finish_due_tasks(&mut self, now_ms: u64) {
        let due: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| !self.tasks[i].finished && self.tasks[i].finish_ms <= now_ms)
            .collect();
        for i in due {
            let effect = {
                let t = &mut self.tasks[i];
                t.finished = true;
                if t.outcome == "OK" {
                    t.effect.take()
                } else {
                    None
                }
            };
            if let Some(effect) = effect {
                self.apply(effect, now_ms);
            }
        }
    }

    fn apply(&mut self, effect: Effect, now_ms: u64) {
        let secs = self.sim_secs(now_ms);
        let vmid = match &effect {
            Effect::Power(v, _)
            | Effect::Snapshot { vmid: v, .. }
            | Effect::Rollback { vmid: v, .. }
            | Effect::DeleteSnapshot { vmid: v, .. } => *v,
        };
        let Some(g) = self.guests.iter_mut().find(|g| g.vmid == vmid) else {
            return;
        };
        match effect {
            Effect::Power(_, power) => set_power(g, power, secs),
            Effect::Snapshot {
                name, description, ..
            } => {
                let parent = g.snapshots.last().map(|s| s.name.clone());
                g.snapshots.push(SimSnapshot {
                    name,
                    description,
                    snaptime: now_ms / 1000,
                    parent,
                });
            }
            Effect::Rollback { name, .. } => {
                // Rolling back a snapshot without RAM state leaves the guest stopped, as on PVE.
                set_power(g, Power::Stopped, secs);
                if let Some(pos) = g.snapshots.iter().position(|s| s.name == name) {
                    // Snapshots after the one rolled back stay (PVE keeps them); "current" now follows it.
                    let moved = g.snapshots.remove(pos);
                    g.snapshots.push(moved);
                }
            }
            Effect::DeleteSnapshot { name, .. } => {
                let parent = g
                    .snapshots
                    .iter()
                    .find(|s| s.name == name)
                    .and_then(|s| s.parent.clone());
                g.snapshots.retain(|s| s.name != name);
                for s in g
                    .snapshots
                    .iter_mut()
                    .filter(|s| s.parent.as_deref() == Some(name.as_str()))
                {
                    s.parent = parent.clone();
                }
            }
        }
    }

    fn node(&self, name: &str) -> Result<&SimNode, SimFailure> {
        let n = self
            .nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| SimFailure::new(500, format!("hostname lookup '{name}' failed - failed to get address info for: {name}: Name or service not known")))?;
        if !n.online {
            return Err(SimFailure::new(
                595,
                format!("Connection refused ({})", n.ip),
            ));
        }
        Ok(n)
    }

    fn guest(&self, node: &str, kind: GuestKind, vmid: u32) -> Result<&SimGuest, SimFailure> {
        self.node(node)?;
        let g = self
            .guests
            .iter()
            .find(|g| g.vmid == vmid && g.node == node && g.kind == kind);
        let dir = match kind {
            GuestKind::Qemu => "qemu-server",
            GuestKind::Lxc => "lxc",
        };
        g.ok_or_else(|| {
            SimFailure::new(
                500,
                format!("Configuration file 'nodes/{node}/{dir}/{vmid}.conf' does not exist"),
            )
        })
    }

    pub fn version_json(&self) -> Value {
        json!({"version": PVE_VERSION, "release": "8.4", "repoid": "2a5fa54a8503f96d", "console": "html5"})
    }

    pub fn cluster_status_json(&self) -> Value {
        let online = self.nodes.iter().filter(|n| n.online).count();
        let mut items = vec![json!({
            "id": "cluster", "type": "cluster", "name": "homelab", "nodes": self.nodes.len(),
            "quorate": u8::from(online * 2 > self.nodes.len()), "version": 4
        })];
        for (i, n) in self.nodes.iter().enumerate() {
            items.push(json!({
                "id": format!("node/{}", n.name), "type": "node", "name": n.name, "nodeid": i + 1,
                "online": u8::from(n.online), "ip": n.ip, "local": u8::from(i == 0), "level": ""
            }));
        }
        Value::Array(items)
    }

    pub fn cluster_resources_json(&self, filter: Option<&str>, now_ms: u64) -> Value {
        let secs = self.sim_secs(now_ms);
        let mut items = Vec::new();
        let want = |t: &str| filter.is_none_or(|f| f == t);
        if want("node") {
            for n in &self.nodes {
                let mut v = json!({
                    "id": format!("node/{}", n.name), "type": "node", "node": n.name,
                    "status": if n.online { "online" } else { "offline" }, "level": "", "cgroup-mode": 2,
                    "maxcpu": n.cpus, "maxmem": n.maxmem, "maxdisk": n.rootfs_total,
                });
                if n.online {
                    let o = v.as_object_mut().expect("json object");
                    o.insert("cpu".into(), json!(round4(n.cpu)));
                    o.insert("mem".into(), json!(n.mem));
                    o.insert("disk".into(), json!(n.rootfs_used));
                    o.insert("uptime".into(), json!(node_uptime(n, secs)));
                }
                items.push(v);
            }
        }
        if want("vm") {
            for g in &self.guests {
                let online = self.nodes.iter().any(|n| n.name == g.node && n.online);
                items.push(self.guest_resource(g, online, secs));
            }
        }
        if want("storage") {
            for s in &self.storages {
                let online = self.nodes.iter().any(|n| n.name == s.node && n.online);
                let mut v = json!({
                    "id": format!("storage/{}/{}", s.node, s.storage), "type": "storage", "storage": s.storage,
                    "node": s.node, "status": if online { "available" } else { "unknown" },
                    "plugintype": s.plugintype, "content": s.content, "shared": u8::from(s.shared),
                });
                if online {
                    let o = v.as_object_mut().expect("json object");
                    o.insert("disk".into(), json!(s.used));
                    o.insert("maxdisk".into(), json!(s.total));
                }
                items.push(v);
            }
        }
        Value::Array(items)
    }

    fn guest_resource(&self, g: &SimGuest, node_online: bool, secs: u64) -> Value {
        let status = if node_online {
            g.power.as_str()
        } else {
            "unknown"
        };
        let running = node_online && g.power != Power::Stopped;
        json!({
            "id": format!("{}/{}", g.kind.as_str(), g.vmid), "type": g.kind.as_str(), "vmid": g.vmid,
            "name": g.name, "node": g.node, "status": status, "template": 0, "tags": g.tags,
            "cpu": if running { round4(g.cpu) } else { 0.0 }, "maxcpu": g.maxcpu,
            "mem": if running { g.mem } else { 0 }, "maxmem": g.maxmem,
            "disk": g.disk, "maxdisk": g.maxdisk,
            "diskread": if running { g.netin / 3 } else { 0 }, "diskwrite": if running { g.netout / 4 } else { 0 },
            "netin": if running { g.netin } else { 0 }, "netout": if running { g.netout } else { 0 },
            "uptime": if running { guest_uptime(g, secs) } else { 0 },
        })
    }

    pub fn node_status_json(&self, node: &str) -> Result<Value, SimFailure> {
        let n = self.node(node)?;
        let load = |f: f64| format!("{:.2}", n.cpu * n.cpus as f64 * f);
        Ok(json!({
            "cpu": round4(n.cpu),
            "cpuinfo": {"model": n.cpu_model, "cpus": n.cpus, "cores": n.cpus.div_ceil(2).max(1), "sockets": 1},
            "loadavg": [load(1.0), load(0.95), load(0.9)],
            "memory": {"total": n.maxmem, "used": n.mem, "free": n.maxmem - n.mem, "available": n.maxmem - n.mem},
            "rootfs": {"total": n.rootfs_total, "used": n.rootfs_used, "free": n.rootfs_total - n.rootfs_used,
                       "avail": n.rootfs_total - n.rootfs_used},
            "pveversion": format!("pve-manager/{PVE_VERSION}/2a5fa54a8503f96d"),
            "current-kernel": {"sysname": "Linux", "release": "6.8.12-9-pve", "machine": "x86_64",
                               "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9 (2025-03-16T19:18Z)"},
            "boot-info": {"mode": "efi", "secureboot": 0},
        }))
    }

    pub fn disks_json(&self, node: &str) -> Result<Value, SimFailure> {
        let n = self.node(node)?;
        let disks: Vec<Value> = n
            .disks
            .iter()
            .map(|d| {
                json!({
                    "devpath": d.devpath, "model": d.model, "serial": d.serial, "size": d.size,
                    "health": d.health, "type": d.disk_type, "gpt": 1, "mounted": 0, "osdid": -1,
                    "used": if d.disk_type == "hdd" { "ZFS" } else { "LVM" },
                    "wearout": d.wearout.map(|w| json!(w)).unwrap_or(json!("N/A")),
                    "vendor": d.model.split_whitespace().next().unwrap_or("ATA"),
                    "wwn": "unknown",
                })
            })
            .collect();
        Ok(Value::Array(disks))
    }

    pub fn guest_status_json(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        now_ms: u64,
    ) -> Result<Value, SimFailure> {
        let g = self.guest(node, kind, vmid)?;
        let secs = self.sim_secs(now_ms);
        let running = g.power != Power::Stopped;
        let mut v = json!({
            "vmid": g.vmid, "name": g.name, "status": if g.power == Power::Stopped { "stopped" } else { "running" },
            "cpu": if running { round4(g.cpu) } else { 0.0 }, "cpus": g.maxcpu, "mem": if running { g.mem } else { 0 },
            "maxmem": g.maxmem, "maxdisk": g.maxdisk, "uptime": if running { guest_uptime(g, secs) } else { 0 },
            "netin": if running { g.netin } else { 0 }, "netout": if running { g.netout } else { 0 },
            "diskread": 0, "diskwrite": 0, "ha": {"managed": 0}, "tags": g.tags,
        });
        if kind == GuestKind::Qemu {
            let o = v.as_object_mut().expect("json object");
            let qmp = match g.power {
                Power::Running => "running",
                Power::Paused => "paused",
                Power::Stopped => "stopped",
            };
            o.insert("qmpstatus".into(), json!(qmp));
            o.insert("agent".into(), json!(1));
            if running {
                o.insert("pid".into(), json!(10_000 + g.vmid));
            }
        } else {
            let o = v.as_object_mut().expect("json object");
            o.insert("disk".into(), json!(g.disk));
            o.insert("maxswap".into(), json!(512u64 * 1024 * 1024));
        }
        Ok(v)
    }

    pub fn storage_status_json(&self, node: &str, storage: &str) -> Result<Value, SimFailure> {
        self.node(node)?;
        let s = self
            .storages
            .iter()
            .find(|s| s.node == node && s.storage == storage)
            .ok_or_else(|| SimFailure::new(500, format!("storage '{storage}' does not exist")))?;
        Ok(json!({
            "type": s.plugintype, "content": s.content, "total": s.total, "used": s.used,
            "avail": s.total - s.used, "active": 1, "enabled": 1, "shared": u8::from(s.shared),
        }))
    }

    pub fn task_status_json(&self, node: &str, upid: &str) -> Result<Value, SimFailure> {
        self.node(node)?;
        let t = self
            .tasks
            .iter()
            .find(|t| t.upid == upid && t.node == node)
            .ok_or_else(|| SimFailure::new(500, format!("no such task '{upid}'")))?;
        let mut v = json!({
            "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime,
            "type": t.task_type, "id": t.id, "user": t.user,
            "status": if t.finished { "stopped" } else { "running" },
        });
        if t.finished {
            v.as_object_mut()
                .expect("json object")
                .insert("exitstatus".into(), json!(t.outcome));
        }
        Ok(v)
    }

    /// `/nodes/{node}/tasks` with the `errors`, `since` and `limit` filters.
    pub fn task_list_json(
        &self,
        node: &str,
        errors_only: bool,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Value, SimFailure> {
        self.node(node)?;
        let items: Vec<Value> = self
            .tasks
            .iter()
            .rev()
            .filter(|t| t.node == node)
            .filter(|t| !errors_only || (t.finished && t.outcome != "OK"))
            .filter(|t| since.is_none_or(|s| t.starttime >= s))
            .take(limit)
            .map(|t| {
                let mut v = json!({
                    "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime,
                    "type": t.task_type, "id": t.id, "user": t.user,
                });
                if t.finished {
                    let o = v.as_object_mut().expect("json object");
                    o.insert("endtime".into(), json!(t.starttime + (t.finish_ms / 1000).saturating_sub(t.starttime)));
                    o.insert("status".into(), json!(t.outcome));
                }
                v
            })
            .collect();
        Ok(Value::Array(items))
    }

    /// Starts a power action as PVE does: the answer is a UPID at once; the state changes when the task ends.
    pub fn power(
        &mut self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        action: PowerAction,
        user: &str,
        now_ms: u64,
    ) -> Result<String, SimFailure> {
        let g = self.guest(node, kind, vmid)?.clone();
        let what = if kind == GuestKind::Qemu { "VM" } else { "CT" };
        let busy = self
            .tasks
            .iter()
            .any(|t| !t.finished && t.id == vmid.to_string());
        let (target, seconds, failure): (Power, f64, Option<String>) = match (action, g.power) {
            (_, _) if busy => (
                g.power,
                0.2,
                Some(format!(
                    "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"
                )),
            ),
            (PowerAction::Start, Power::Stopped) => (
                Power::Running,
                if kind == GuestKind::Qemu { 3.0 } else { 1.5 },
                None,
            ),
            (PowerAction::Start, _) => {
                (g.power, 0.3, Some(format!("{what} {vmid} already running")))
            }
            (PowerAction::Shutdown, Power::Running) => (
                Power::Stopped,
                if kind == GuestKind::Qemu { 5.0 } else { 2.0 },
                None,
            ),
            (PowerAction::Stop, Power::Running | Power::Paused) => (Power::Stopped, 1.0, None),
            (PowerAction::Reboot, Power::Running) => (
                Power::Running,
                if kind == GuestKind::Qemu { 8.0 } else { 3.0 },
                None,
            ),
            (PowerAction::Suspend, Power::Running) => (Power::Paused, 1.0, None),
            (PowerAction::Resume, Power::Paused) => (Power::Running, 1.0, None),
            (PowerAction::Resume, _) => (g.power, 0.3, Some(format!("{what} {vmid} not paused"))),
            (_, Power::Stopped) => (g.power, 0.3, Some(format!("{what} {vmid} not running"))),
            (_, Power::Paused) => (
                g.power,
                0.3,
                Some(format!("{what} {vmid} is paused - resume first")),
            ),
        };
        let prefix = if kind == GuestKind::Qemu { "qm" } else { "vz" };
        let task_type = format!("{prefix}{}", action.as_str());
        let outcome = failure.unwrap_or_else(|| "OK".to_string());
        // A reboot is seen as running → stopped → running; model the visible part: it stays running.
        let effect = Some(Effect::Power(vmid, target));
        Ok(self.start_task(
            node,
            &task_type,
            &vmid.to_string(),
            user,
            seconds,
            outcome,
            effect,
            now_ms,
        ))
    }

    /// Records a task that ends after `seconds` (scaled) with `outcome`, applying `effect` if it is `OK`.
    #[allow(clippy::too_many_arguments)]
    fn start_task(
        &mut self,
        node: &str,
        task_type: &str,
        id: &str,
        user: &str,
        seconds: f64,
        outcome: String,
        effect: Option<Effect>,
        now_ms: u64,
    ) -> String {
        self.next_pid += 1;
        let pid = self.next_pid;
        let pstart = 1_000_000 + (now_ms / 10) % 100_000_000;
        let upid = Upid::format(node, pid, pstart, now_ms / 1000, task_type, id, user);
        self.tasks.push_back(SimTask {
            upid: upid.clone(),
            node: node.into(),
            task_type: task_type.into(),
            id: id.into(),
            user: user.into(),
            pid,
            pstart,
            starttime: now_ms / 1000,
            finish_ms: now_ms + (seconds * self.task_time_scale * 1000.0) as u64,
            outcome,
            finished: false,
            effect,
        });
        while self.tasks.len() > MAX_TASKS {
            self.tasks.pop_front();
        }
        upid
    }

    /// The snapshot list as PVE gives it: every snapshot, then `current` ("You are here!").
    pub fn snapshots_json(
        &self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
    ) -> Result<Value, SimFailure> {
        let g = self.guest(node, kind, vmid)?;
        let mut items: Vec<Value> = g
            .snapshots
            .iter()
            .map(|s| {
                let mut v =
                    json!({"name": s.name, "description": s.description, "snaptime": s.snaptime});
                if let Some(p) = &s.parent {
                    v.as_object_mut()
                        .expect("json object")
                        .insert("parent".into(), json!(p));
                }
                if kind == GuestKind::Qemu {
                    v.as_object_mut()
                        .expect("json object")
                        .insert("vmstate".into(), json!(0));
                }
                v
            })
            .collect();
        let mut current = json!({"name": "current", "description": "You are here!"});
        if let Some(last) = g.snapshots.last() {
            current
                .as_object_mut()
                .expect("json object")
                .insert("parent".into(), json!(last.name));
        }
        items.push(current);
        Ok(Value::Array(items))
    }

    /// `snapshot`, `rollback` or `delsnapshot`, as a task.
    pub fn snapshot_action(
        &mut self,
        node: &str,
        kind: GuestKind,
        vmid: u32,
        op: SnapshotOp,
        user: &str,
        now_ms: u64,
    ) -> Result<String, SimFailure> {
        let g = self.guest(node, kind, vmid)?.clone();
        let (op, name, description) = match &op {
            SnapshotOp::Create { name, description } => {
                ("snapshot", name.as_str(), description.as_str())
            }
            SnapshotOp::Rollback { name } => ("rollback", name.as_str(), ""),
            SnapshotOp::Delete { name } => ("delsnapshot", name.as_str(), ""),
        };
        if !valid_snapname(name) {
            return Err(SimFailure::new(400, "Parameter verification failed."));
        }
        let exists = g.snapshots.iter().any(|s| s.name == name);
        let prefix = if kind == GuestKind::Qemu { "qm" } else { "vz" };
        let (task_type, seconds, failure, effect) = match op {
            "snapshot" => (
                format!("{prefix}snapshot"),
                2.0,
                exists.then(|| format!("snapshot name '{name}' already used")),
                Effect::Snapshot {
                    vmid,
                    name: name.into(),
                    description: description.into(),
                },
            ),
            "rollback" => (
                format!("{prefix}rollback"),
                3.0,
                (!exists).then(|| format!("snapshot '{name}' does not exist")),
                Effect::Rollback {
                    vmid,
                    name: name.into(),
                },
            ),
            _ => (
                format!("{prefix}delsnapshot"),
                2.0,
                (!exists).then(|| format!("snapshot '{name}' does not exist")),
                Effect::DeleteSnapshot {
                    vmid,
                    name: name.into(),
                },
            ),
        };
        let outcome = failure.unwrap_or_else(|| "OK".into());
        Ok(self.start_task(
            node,
            &task_type,
            &vmid.to_string(),
            user,
            seconds,
            outcome,
            Some(effect),
            now_ms,
        ))
    }

    /// `reboot` or `shutdown` of a node: it goes offline at once; a reboot brings it back after 30 s (scaled).
    pub fn node_command(
        &mut self,
        node: &str,
        command: &str,
        now_ms: u64,
    ) -> Result<(), SimFailure> {
        self.node(node)?;
        let back = match command {
            "reboot" => Some(now_ms + (30_000.0 * self.task_time_scale) as u64),
            "shutdown" => None,
            _ => return Err(SimFailure::new(400, "Parameter verification failed.")),
        };
        if let Some(n) = self.nodes.iter_mut().find(|n| n.name == node) {
            n.online = false;
            n.back_at_ms = back;
        }
        self.recompute_nodes();
        Ok(())
    }

    /// Sets a guest's power state at once (the simulator's control API; as if changed outside Jarvis).
    pub fn force_power(&mut self, vmid: u32, power: Power, now_ms: u64) -> bool {
        let secs = self.sim_secs(now_ms);
        let Some(g) = self.guests.iter_mut().find(|g| g.vmid == vmid) else {
            return false;
        };
        set_power(g, power, secs);
        self.recompute_nodes();
        true
    }

    /// Takes a node offline or brings it back (it "reboots": uptime restarts).
    pub fn set_node_online(&mut self, name: &str, online: bool, now_ms: u64) -> bool {
        let secs = self.sim_secs(now_ms);
        let Some(n) = self.nodes.iter_mut().find(|n| n.name == name) else {
            return false;
        };
        if online && !n.online {
            n.boot_secs = secs;
            n.uptime_offset = 0;
        }
        n.online = online;
        self.recompute_nodes();
        true
    }

    /// Sets the fill of a storage on every node that sees it (for threshold tests and the demo).
    pub fn set_storage_used_pct(&mut self, storage: &str, pct: f64) -> bool {
        let mut found = false;
        for s in self.storages.iter_mut().filter(|s| s.storage == storage) {
            s.used = (s.total as f64 * pct.clamp(0.0, 100.0) / 100.0) as u64;
            found = true;
        }
        found
    }

    /// The node's temperatures in the shape of `sensors -j` (lm-sensors JSON), for the SSH side of the demo.
    pub fn sensors_json(&self, node: &str) -> Option<Value> {
        let n = self.nodes.iter().find(|n| n.name == node)?;
        let mut chip = serde_json::Map::new();
        chip.insert("Adapter".into(), json!("ISA adapter"));
        for (i, (label, c)) in n.temps.iter().enumerate() {
            chip.insert(
                label.clone(),
                json!({ format!("temp{}_input", i + 1): round1(*c), format!("temp{}_max", i + 1): 100.0,
                        format!("temp{}_crit", i + 1): 100.0 }),
            );
        }
        Some(json!({ "coretemp-isa-0000": Value::Object(chip) }))
    }
}

/// A snapshot operation of the simulator.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotOp {
    Create { name: String, description: String },
    Rollback { name: String },
    Delete { name: String },
}

/// PVE's `pve-configid` format for snapshot names: a letter, then letters, digits, `-` or `_`, at most 40.
pub fn valid_snapname(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 40
}

fn set_power(g: &mut SimGuest, power: Power, secs: u64) {
    if g.power == Power::Stopped && power != Power::Stopped {
        g.started_secs = secs;
        g.uptime_offset = 0;
        g.cpu = g.base_load.max(0.02);
        g.mem = g.maxmem / 3;
    }
    if power == Power::Stopped {
        g.cpu = 0.0;
        g.mem = 0;
        g.netin = 0;
        g.netout = 0;
    }
    g.power = power;
}

fn node_uptime(n: &SimNode, secs: u64) -> u64 {
    n.uptime_offset + secs.saturating_sub(n.boot_secs)
}

fn guest_uptime(g: &SimGuest, secs: u64) -> u64 {
    g.uptime_offset + secs.saturating_sub(g.started_secs)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn power_of(m: &SimModel, vmid: u32) -> Power {
        m.guests
            .iter()
            .find(|g| g.vmid == vmid)
            .expect("guest")
            .power
    }

    #[test]
    fn homelab_matches_the_design() {
        let m = SimModel::homelab(1, T0);
        let names: Vec<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["Home", "pve", "agent1", "agent"]);
        let cpus: Vec<u32> = m.nodes.iter().map(|n| n.cpus).collect();
        assert_eq!(cpus, [20, 6, 14, 2]);
        assert!((12..=20).contains(&m.guests.len()));
        assert!(m
            .guests
            .iter()
            .any(|g| g.name == "frigate" && g.node == "agent1" && g.kind == GuestKind::Lxc));
        let nas = m
            .storages
            .iter()
            .find(|s| s.storage == "nas")
            .expect("nas storage");
        assert!(nas.shared && nas.total > 4 * 1024 * 1024 * 1024 * 1024);
    }

    #[test]
    fn power_action_changes_state_only_when_the_task_ends() {
        let mut m = SimModel::homelab(1, T0);
        let upid = m
            .power(
                "pve",
                GuestKind::Qemu,
                113,
                PowerAction::Start,
                "root@pam",
                T0,
            )
            .expect("start");
        let parsed: Upid = upid.parse().expect("valid upid");
        assert_eq!(parsed.task_type, "qmstart");
        m.tick(T0 + 1000);
        assert_eq!(
            m.task_status_json("pve", &upid).expect("task")["status"],
            "running"
        );
        assert_eq!(power_of(&m, 113), Power::Stopped);
        m.tick(T0 + 3500);
        let t = m.task_status_json("pve", &upid).expect("task");
        assert_eq!(
            (t["status"].as_str(), t["exitstatus"].as_str()),
            (Some("stopped"), Some("OK"))
        );
        assert_eq!(power_of(&m, 113), Power::Running);
    }

    #[test]
    fn starting_a_running_guest_fails_in_the_task_and_is_listed_as_error() {
        let mut m = SimModel::homelab(1, T0);
        let upid = m
            .power(
                "agent1",
                GuestKind::Lxc,
                120,
                PowerAction::Start,
                "root@pam",
                T0,
            )
            .expect("start");
        m.tick(T0 + 1000);
        let t = m.task_status_json("agent1", &upid).expect("task");
        assert_eq!(t["exitstatus"], "CT 120 already running");
        let failed = m.task_list_json("agent1", true, None, 50).expect("list");
        assert_eq!(failed.as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn offline_node_answers_595_and_its_guests_are_unknown() {
        let mut m = SimModel::homelab(1, T0);
        m.set_node_online("agent", false, T0);
        assert_eq!(m.node_status_json("agent").map_err(|e| e.status), Err(595));
        let res = m.cluster_resources_json(Some("vm"), T0);
        let pihole = res
            .as_array()
            .expect("array")
            .iter()
            .find(|r| r["vmid"] == 130)
            .expect("pihole");
        assert_eq!(pihole["status"], "unknown");
    }

    #[test]
    fn loads_drift_but_stay_in_range() {
        let mut m = SimModel::homelab(7, T0);
        let before = m.guests[0].cpu;
        m.tick(T0 + 60_000);
        assert_ne!(before, m.guests[0].cpu);
        for n in &m.nodes {
            assert!(
                (0.0..=1.0).contains(&n.cpu) && n.mem <= n.maxmem,
                "{} out of range",
                n.name
            );
        }
    }

    #[test]
    fn snapshots_are_created_rolled_back_and_deleted_by_tasks() {
        let mut m = SimModel::homelab(1, T0);
        m.snapshot_action(
            "Home",
            GuestKind::Qemu,
            101,
            SnapshotOp::Create {
                name: "before-upgrade".into(),
                description: "pre 6.9".into(),
            },
            "root@pam",
            T0,
        )
        .expect("create");
        m.tick(T0 + 2500);
        let list = m
            .snapshots_json("Home", GuestKind::Qemu, 101)
            .expect("list");
        let names: Vec<&str> = list
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(names, ["before-upgrade", "current"]);
        let dup = m
            .snapshot_action(
                "Home",
                GuestKind::Qemu,
                101,
                SnapshotOp::Create {
                    name: "before-upgrade".into(),
                    description: "".into(),
                },
                "root@pam",
                T0 + 3000,
            )
            .expect("task");
        m.tick(T0 + 6000);
        assert_eq!(
            m.task_status_json("Home", &dup).expect("task")["exitstatus"],
            "snapshot name 'before-upgrade' already used"
        );
        m.snapshot_action(
            "Home",
            GuestKind::Qemu,
            101,
            SnapshotOp::Rollback {
                name: "before-upgrade".into(),
            },
            "root@pam",
            T0 + 7000,
        )
        .expect("rollback");
        m.tick(T0 + 11_000);
        assert_eq!(
            power_of(&m, 101),
            Power::Stopped,
            "a rollback without RAM leaves the VM stopped"
        );
        m.snapshot_action(
            "Home",
            GuestKind::Qemu,
            101,
            SnapshotOp::Delete {
                name: "before-upgrade".into(),
            },
            "root@pam",
            T0 + 12_000,
        )
        .expect("delete");
        m.tick(T0 + 15_000);
        assert_eq!(
            m.snapshots_json("Home", GuestKind::Qemu, 101)
                .expect("list")
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert!(m
            .snapshot_action(
                "Home",
                GuestKind::Qemu,
                101,
                SnapshotOp::Create {
                    name: "1bad".into(),
                    description: "".into()
                },
                "root@pam",
                T0
            )
            .is_err());
    }

    #[test]
    fn a_rebooted_node_comes_back() {
        let mut m = SimModel::homelab(1, T0);
        m.node_command("agent", "reboot", T0).expect("reboot");
        assert!(m.node_status_json("agent").is_err());
        m.tick(T0 + 31_000);
        assert!(m.node_status_json("agent").is_ok());
    }

    #[test]
    fn sensors_json_has_lm_sensors_shape() {
        let m = SimModel::homelab(1, T0);
        let s = m.sensors_json("pve").expect("node");
        let pkg = &s["coretemp-isa-0000"]["Package id 0"]["temp1_input"];
        assert!(pkg.as_f64().is_some_and(|c| (20.0..100.0).contains(&c)));
    }
}

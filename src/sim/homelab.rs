//! The reference homelab of DESIGN.md as simulator seed data: four nodes (Home, pve, agent1, agent), eighteen
//! guests, three storages and the nodes' disks with SMART data and temperatures.

use super::model::{Power, SimDisk, SimGuest, SimNode, SimStorage};
use crate::cluster::model::GuestKind;

const GIB: u64 = 1024 * 1024 * 1024;
const TIB: u64 = 1024 * GIB;

fn node(
    name: &str,
    cpus: u32,
    mem_gib: u64,
    cpu_model: &str,
    base_load: f64,
    ip: &str,
    disks: Vec<SimDisk>,
) -> SimNode {
    SimNode {
        name: name.into(),
        cpus,
        cpu_model: cpu_model.into(),
        maxmem: mem_gib * GIB,
        base_mem: 2 * GIB + mem_gib * GIB / 12,
        base_load,
        cpu: base_load,
        mem: 0,
        online: true,
        boot_secs: 0,
        uptime_offset: 86_400 * (3 + cpus as u64),
        rootfs_total: 94 * GIB,
        rootfs_used: 11 * GIB + cpus as u64 * GIB / 2,
        ip: ip.into(),
        temps: vec![
            ("Package id 0".into(), 44.0 + base_load * 40.0),
            ("Core 0".into(), 41.0 + base_load * 35.0),
        ],
        disks,
        back_at_ms: None,
    }
}

fn disk(
    devpath: &str,
    model: &str,
    serial: &str,
    size_gib: u64,
    kind: &str,
    health: &str,
    wearout: Option<u32>,
) -> SimDisk {
    SimDisk {
        devpath: devpath.into(),
        model: model.into(),
        serial: serial.into(),
        size: size_gib * GIB,
        disk_type: kind.into(),
        health: health.into(),
        wearout,
    }
}

#[allow(clippy::too_many_arguments)]
fn guest(
    vmid: u32,
    name: &str,
    node: &str,
    kind: GuestKind,
    cpus: f64,
    mem_gib: f64,
    disk_gib: u64,
    load: f64,
    running: bool,
    tags: &str,
) -> SimGuest {
    let maxmem = (mem_gib * GIB as f64) as u64;
    SimGuest {
        vmid,
        name: name.into(),
        node: node.into(),
        kind,
        power: if running {
            Power::Running
        } else {
            Power::Stopped
        },
        maxcpu: cpus,
        maxmem,
        maxdisk: disk_gib * GIB,
        disk: disk_gib * GIB * 2 / 5,
        base_load: load,
        cpu: if running { load } else { 0.0 },
        mem: if running { maxmem / 2 } else { 0 },
        started_secs: 0,
        uptime_offset: if running {
            86_400 * 2 + vmid as u64 * 97
        } else {
            0
        },
        netin: 0,
        netout: 0,
        tags: tags.into(),
        snapshots: Vec::new(),
    }
}

pub fn nodes() -> Vec<SimNode> {
    vec![
        node(
            "Home",
            20,
            24,
            "12th Gen Intel(R) Core(TM) i7-12700H",
            0.08,
            "192.168.1.10",
            vec![
                disk(
                    "/dev/nvme0n1",
                    "Samsung SSD 980 PRO 1TB",
                    "S5GXNX0T412345",
                    931,
                    "nvme",
                    "PASSED",
                    Some(96),
                ),
                disk(
                    "/dev/sda",
                    "WDC WD40EFRX-68N32N0",
                    "WD-WCC7K1234567",
                    3726,
                    "hdd",
                    "PASSED",
                    None,
                ),
            ],
        ),
        node(
            "pve",
            6,
            31,
            "Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz",
            0.12,
            "192.168.1.11",
            vec![
                disk(
                    "/dev/sda",
                    "CT500MX500SSD1",
                    "2113E5A1B2C3",
                    466,
                    "ssd",
                    "PASSED",
                    Some(88),
                ),
                disk(
                    "/dev/sdb",
                    "ST4000VN008-2DR166",
                    "ZDH1ABCD",
                    3726,
                    "hdd",
                    "PASSED",
                    None,
                ),
                disk(
                    "/dev/sdc",
                    "ST4000VN008-2DR166",
                    "ZDH1ABCE",
                    3726,
                    "hdd",
                    "PASSED",
                    None,
                ),
            ],
        ),
        node(
            "agent1",
            14,
            31,
            "Intel(R) Core(TM) i5-13500T",
            0.18,
            "192.168.1.12",
            vec![
                disk(
                    "/dev/nvme0n1",
                    "WD Blue SN570 1TB",
                    "22151Z801234",
                    931,
                    "nvme",
                    "PASSED",
                    Some(91),
                ),
                disk(
                    "/dev/sda",
                    "WDC WD20PURZ-85GU6Y0",
                    "WD-WX12D81ABCDE",
                    1863,
                    "hdd",
                    "PASSED",
                    None,
                ),
            ],
        ),
        node(
            "agent",
            2,
            4,
            "Intel(R) Celeron(R) N4020 CPU @ 1.10GHz",
            0.05,
            "192.168.1.13",
            vec![disk(
                "/dev/mmcblk0",
                "DA4064",
                "0x9a1b2c3d",
                58,
                "unknown",
                "UNKNOWN",
                None,
            )],
        ),
    ]
}

pub fn guests() -> Vec<SimGuest> {
    use GuestKind::{Lxc, Qemu};
    vec![
        guest(
            100,
            "mgmt-docker",
            "Home",
            Qemu,
            4.0,
            8.0,
            64,
            0.22,
            true,
            "docker;mgmt",
        ),
        guest(
            101, "llm-qwen", "Home", Qemu, 12.0, 12.0, 120, 0.35, true, "llm;gpu",
        ),
        guest(
            102,
            "jarvis-kiosk",
            "Home",
            Lxc,
            2.0,
            1.0,
            8,
            0.06,
            true,
            "jarvis",
        ),
        guest(
            103,
            "nfs-samba",
            "Home",
            Lxc,
            2.0,
            1.0,
            8,
            0.04,
            true,
            "nas",
        ),
        guest(
            110,
            "truenas",
            "pve",
            Qemu,
            4.0,
            16.0,
            32,
            0.10,
            true,
            "nas;storage",
        ),
        guest(
            111, "jellyfin", "pve", Lxc, 2.0, 4.0, 16, 0.15, true, "media",
        ),
        guest(
            112,
            "nextcloud",
            "pve",
            Lxc,
            2.0,
            2.0,
            24,
            0.05,
            true,
            "cloud",
        ),
        guest(
            113,
            "win11-test",
            "pve",
            Qemu,
            4.0,
            8.0,
            80,
            0.0,
            false,
            "test",
        ),
        guest(
            120,
            "frigate",
            "agent1",
            Lxc,
            6.0,
            8.0,
            32,
            0.42,
            true,
            "nvr;cameras",
        ),
        guest(
            121,
            "email-agent",
            "agent1",
            Lxc,
            2.0,
            2.0,
            8,
            0.08,
            true,
            "agent",
        ),
        guest(
            122,
            "mosquitto",
            "agent1",
            Lxc,
            1.0,
            0.5,
            4,
            0.01,
            true,
            "mqtt",
        ),
        guest(
            123,
            "home-assistant",
            "agent1",
            Qemu,
            2.0,
            4.0,
            32,
            0.07,
            true,
            "iot",
        ),
        guest(
            124, "postgres", "agent1", Lxc, 2.0, 2.0, 16, 0.05, true, "db",
        ),
        guest(
            125,
            "ubuntu-dev",
            "agent1",
            Qemu,
            4.0,
            8.0,
            64,
            0.0,
            false,
            "dev",
        ),
        guest(130, "pihole", "agent", Lxc, 1.0, 0.5, 4, 0.02, true, "dns"),
        guest(
            131,
            "uptime-kuma",
            "agent",
            Lxc,
            1.0,
            0.5,
            4,
            0.03,
            true,
            "monitoring",
        ),
        guest(
            132,
            "wireguard",
            "agent",
            Lxc,
            1.0,
            0.25,
            2,
            0.01,
            true,
            "vpn",
        ),
        guest(
            133,
            "backup-pbs",
            "agent",
            Lxc,
            1.0,
            1.0,
            8,
            0.0,
            false,
            "backup",
        ),
    ]
}

pub fn storages() -> Vec<SimStorage> {
    let mut out = Vec::new();
    for (name, local_gib) in [("Home", 94u64), ("pve", 94), ("agent1", 94), ("agent", 29)] {
        out.push(SimStorage {
            storage: "local".into(),
            node: name.into(),
            plugintype: "dir".into(),
            content: "iso,vztmpl,backup".into(),
            shared: false,
            total: local_gib * GIB,
            used: local_gib * GIB * 31 / 100,
        });
        out.push(SimStorage {
            storage: "local-lvm".into(),
            node: name.into(),
            plugintype: "lvmthin".into(),
            content: "images,rootdir".into(),
            shared: false,
            total: local_gib * 3 * GIB,
            used: local_gib * 3 * GIB * 47 / 100,
        });
        out.push(SimStorage {
            storage: "nas".into(),
            node: name.into(),
            plugintype: "nfs".into(),
            content: "backup,iso,images".into(),
            shared: true,
            total: 9 * TIB / 2,
            used: 9 * TIB / 2 * 78 / 100,
        });
    }
    out
}

//! Power tools: guest start (1), shutdown / stop / reboot (2), suspend / resume (1), followed to the end of their
//! Proxmox task; node reboot (2); wake-on-LAN (1), a magic packet to the node's configured MAC and broadcast
//! address.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::cluster::{find_guest, find_node, GuestArgs, NodeArgs};
use super::typed::{Runner, Summary, TypedTool};
use super::{Registry, Tier, ToolContext, ToolError};
use crate::cluster::actions::power_and_follow;
use crate::cluster::client::PowerAction;
use crate::state::World;

pub fn register(r: &mut Registry) {
    let guest = |name: &'static str,
                 tier: Tier,
                 description: &'static str,
                 summary: Summary<GuestArgs>,
                 run: Runner<GuestArgs>| {
        TypedTool::<GuestArgs>::new(name, tier, description, summary, run).with_check(guest_known)
    };
    r.register(guest(
        "start_guest",
        Tier::Routine,
        "Start a stopped VM or container by vmid and wait for it to be running. Returns the task's exit status.",
        |a, w| summary("Start", a, w),
        |c, a| power(c, a, PowerAction::Start),
    ));
    r.register(guest(
        "shutdown_guest",
        Tier::Confirm,
        "Cleanly shut down a VM or container by vmid (ACPI / init), waiting for it to stop. NEEDS THE OPERATOR'S \
         CONFIRMATION: the first call returns a pending approval.",
        |a, w| summary("Shut down", a, w),
        |c, a| power(c, a, PowerAction::Shutdown),
    ));
    r.register(guest(
        "stop_guest",
        Tier::Confirm,
        "Hard-stop a VM or container by vmid (like pulling the plug; unsaved data is lost). Prefer shutdown_guest. \
         NEEDS THE OPERATOR'S CONFIRMATION: the first call returns a pending approval.",
        |a, w| summary("Hard-stop (power off; unsaved data is lost)", a, w),
        |c, a| power(c, a, PowerAction::Stop),
    ));
    r.register(guest(
        "reboot_guest",
        Tier::Confirm,
        "Reboot a running VM or container by vmid. NEEDS THE OPERATOR'S CONFIRMATION: the first call returns a \
         pending approval.",
        |a, w| summary("Reboot", a, w),
        |c, a| power(c, a, PowerAction::Reboot),
    ));
    r.register(guest(
        "suspend_guest",
        Tier::Routine,
        "Pause a running VM or container by vmid (it keeps its memory; resume_guest continues it).",
        |a, w| summary("Suspend", a, w),
        |c, a| power(c, a, PowerAction::Suspend),
    ));
    r.register(guest(
        "resume_guest",
        Tier::Routine,
        "Resume a paused VM or container by vmid.",
        |a, w| summary("Resume", a, w),
        |c, a| power(c, a, PowerAction::Resume),
    ));
    r.register(TypedTool::<NodeArgs>::new(
        "reboot_node",
        Tier::Confirm,
        "Reboot a whole Proxmox node: every guest on it goes down until it is back. NEEDS THE OPERATOR'S \
         CONFIRMATION: the first call returns a pending approval.",
        |a, w| {
            let guests = w.cluster.guests.iter().filter(|g| g.node.eq_ignore_ascii_case(&a.node) && g.status == "running").count();
            format!("Reboot node {}: its {guests} running guest(s) go down until it is back", a.node)
        },
        |ctx, a| {
            Box::pin(async move {
                let world = ctx.state.get();
                let node = find_node(&world.cluster, &a.node)?.name.clone();
                ctx.pve.node_command(&node, "reboot").await.map_err(|e| ToolError::Failed(e.to_string()))?;
                Ok(json!({ "node": node, "rebooting": true }))
            })
        },
    )
    .with_check(node_known));
    r.register(TypedTool::<NodeArgs>::new(
        "wake_on_lan",
        Tier::Routine,
        "Wake a powered-off node with a wake-on-LAN magic packet (only nodes with a MAC address in the config).",
        |a, _| format!("Send a wake-on-LAN packet to node {}", a.node),
        |ctx, a| Box::pin(async move { wake(&ctx, &a.node).await }),
    )
    .with_check(node_known));
}

/// The guest must be in the cluster view before anyone is asked to approve an action on it.
pub fn guest_known(a: &GuestArgs, w: &World) -> Result<(), ToolError> {
    find_guest(&w.cluster, a.vmid).map(|_| ())
}

fn node_known(a: &NodeArgs, w: &World) -> Result<(), ToolError> {
    find_node(&w.cluster, &a.node).map(|_| ())
}

/// "Reboot VM 101 'llm-qwen' on node Home (now running)".
fn summary(verb: &str, a: &GuestArgs, w: &World) -> String {
    match w.cluster.guest(a.vmid) {
        Some(g) => {
            let what = if g.kind.as_str() == "qemu" {
                "VM"
            } else {
                "container"
            };
            format!(
                "{verb} {what} {} '{}' on node {} (now {})",
                g.vmid, g.name, g.node, g.status
            )
        }
        None => format!("{verb} guest {} (not in the current cluster view)", a.vmid),
    }
}

fn power(
    ctx: ToolContext,
    a: GuestArgs,
    action: PowerAction,
) -> BoxFuture<'static, Result<Value, ToolError>> {
    Box::pin(async move {
        let (node, kind, name) = {
            let world = ctx.state.get();
            let g = find_guest(&world.cluster, a.vmid)?;
            (g.node.clone(), g.kind, g.name.clone())
        };
        let limit = ctx.settings.follow_limit;
        let task = power_and_follow(&ctx.pve, &ctx.bus, &node, kind, a.vmid, action, limit)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let exit = task.exitstatus.clone().unwrap_or_default();
        if exit != "OK" {
            return Err(ToolError::Failed(format!(
                "{} of {} ({}) failed: {exit}",
                action.as_str(),
                a.vmid,
                name
            )));
        }
        Ok(
            json!({"vmid": a.vmid, "name": name, "node": node, "action": action.as_str(), "upid": task.upid,
                  "exitstatus": exit}),
        )
    })
}

/// The magic packet: six 0xFF bytes, then the MAC sixteen times (102 bytes).
pub fn magic_packet(mac: [u8; 6]) -> [u8; 102] {
    let mut p = [0xFFu8; 102];
    for i in 0..16 {
        p[6 + i * 6..12 + i * 6].copy_from_slice(&mac);
    }
    p
}

/// `AA:BB:CC:DD:EE:FF` or `aa-bb-...`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

async fn wake(ctx: &ToolContext, node: &str) -> Result<Value, ToolError> {
    let target = ctx
        .settings
        .wol
        .iter()
        .find(|t| t.node.eq_ignore_ascii_case(node))
        .ok_or_else(|| {
            ToolError::NotFound(format!(
                "node {node} has no wake-on-LAN MAC address in the config ([[wol]])"
            ))
        })?;
    let bind = if target.broadcast.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| ToolError::Failed(format!("wake-on-LAN socket: {e}")))?;
    socket
        .set_broadcast(true)
        .map_err(|e| ToolError::Failed(format!("wake-on-LAN broadcast: {e}")))?;
    let packet = magic_packet(target.mac);
    socket
        .send_to(&packet, target.broadcast)
        .await
        .map_err(|e| ToolError::Failed(format!("wake-on-LAN send to {}: {e}", target.broadcast)))?;
    Ok(json!({"node": target.node, "sent_to": target.broadcast.to_string(), "bytes": packet.len()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_packets_and_macs() {
        let mac = parse_mac("00:1A:2b:3C:4d:5E").expect("mac");
        assert_eq!(mac, [0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]);
        assert_eq!(parse_mac("00-1a-2b-3c-4d-5e"), Some(mac));
        assert_eq!(parse_mac("00:1a:2b:3c:4d"), None);
        assert_eq!(parse_mac("00:1a:2b:3c:4d:zz"), None);
        let p = magic_packet(mac);
        assert_eq!(p.len(), 102);
        assert!(p[..6].iter().all(|b| *b == 0xFF));
        assert!(p[6..].chunks(6).all(|c| c == mac));
    }
}

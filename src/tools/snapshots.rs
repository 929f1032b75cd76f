//! Snapshot tools: list (0), create (1), rollback and delete (2), each followed to the end of its task.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::cluster::{find_guest, GuestArgs};
use super::power::guest_known;
use super::typed::TypedTool;
use super::{Registry, Tier, ToolContext, ToolError};
use crate::cluster::actions::FOLLOW_EVERY;
use crate::cluster::model::GuestKind;
use crate::cluster::upid::Upid;
use crate::state::World;

pub fn register(r: &mut Registry) {
    r.register(TypedTool::<GuestArgs>::new(
        "list_snapshots",
        Tier::Read,
        "List the snapshots of a VM or container by vmid: name, description, time, parent ('current' is the live \
         state).",
        |a, _| format!("List snapshots of guest {}", a.vmid),
        |ctx, a| {
            Box::pin(async move {
                let (node, kind, _) = locate(&ctx, a.vmid)?;
                let list = ctx.pve.snapshots(&node, kind, a.vmid).await.map_err(|e| ToolError::Failed(e.to_string()))?;
                Ok(json!({ "vmid": a.vmid, "snapshots": list }))
            })
        },
    )
    .with_check(guest_known));
    r.register(TypedTool::<CreateArgs>::new(
        "create_snapshot",
        Tier::Routine,
        "Take a snapshot of a VM or container (disk state, without RAM) before a risky change. The name starts with \
         a letter; letters, digits, - and _ only, at most 40.",
        |a, w| format!("Snapshot {} as '{}'", describe(a.vmid, w), a.name),
        |ctx, a| {
            Box::pin(async move {
                check_name(&a.name)?;
                let (node, kind, _) = locate(&ctx, a.vmid)?;
                let desc = a.description.clone().unwrap_or_default();
                let upid = ctx.pve.create_snapshot(&node, kind, a.vmid, &a.name, &desc).await.map_err(|e| ToolError::Failed(e.to_string()))?;
                follow(&ctx, upid, a.vmid, &a.name).await
            })
        },
    )
    .with_check(|a, w| find_guest(&w.cluster, a.vmid).map(|_| ())));
    r.register(TypedTool::<SnapArgs>::new(
        "rollback_snapshot",
        Tier::Confirm,
        "Roll a VM or container back to a snapshot: everything since is lost and the guest is left stopped. NEEDS \
         THE OPERATOR'S CONFIRMATION: the first call returns a pending approval.",
        |a, w| format!("Roll {} back to snapshot '{}', losing everything since; it will be stopped", describe(a.vmid, w), a.name),
        |ctx, a| {
            Box::pin(async move {
                check_name(&a.name)?;
                let (node, kind, _) = locate(&ctx, a.vmid)?;
                let upid = ctx.pve.rollback_snapshot(&node, kind, a.vmid, &a.name).await.map_err(|e| ToolError::Failed(e.to_string()))?;
                follow(&ctx, upid, a.vmid, &a.name).await
            })
        },
    )
    .with_check(|a, w| find_guest(&w.cluster, a.vmid).map(|_| ())));
    r.register(TypedTool::<SnapArgs>::new(
        "delete_snapshot",
        Tier::Confirm,
        "Delete a snapshot of a VM or container (the guest itself is untouched). NEEDS THE OPERATOR'S CONFIRMATION: \
         the first call returns a pending approval.",
        |a, w| format!("Delete snapshot '{}' of {}", a.name, describe(a.vmid, w)),
        |ctx, a| {
            Box::pin(async move {
                check_name(&a.name)?;
                let (node, kind, _) = locate(&ctx, a.vmid)?;
                let upid = ctx.pve.delete_snapshot(&node, kind, a.vmid, &a.name).await.map_err(|e| ToolError::Failed(e.to_string()))?;
                follow(&ctx, upid, a.vmid, &a.name).await
            })
        },
    )
    .with_check(|a, w| find_guest(&w.cluster, a.vmid).map(|_| ())));
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    pub vmid: u32,
    /// Snapshot name, e.g. before-upgrade.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapArgs {
    pub vmid: u32,
    /// The snapshot's name.
    pub name: String,
}

fn describe(vmid: u32, w: &World) -> String {
    match w.cluster.guest(vmid) {
        Some(g) => format!(
            "{} {} '{}' on node {}",
            if g.kind.as_str() == "qemu" {
                "VM"
            } else {
                "container"
            },
            vmid,
            g.name,
            g.node
        ),
        None => format!("guest {vmid}"),
    }
}

fn check_name(name: &str) -> Result<(), ToolError> {
    if crate::sim::model::valid_snapname(name) {
        Ok(())
    } else {
        Err(ToolError::InvalidArguments {
            tool: "snapshot".into(),
            field: "name".into(),
            message: "a snapshot name starts with a letter and has only letters, digits, - and _ (at most 40)".into(),
        })
    }
}

fn locate(ctx: &ToolContext, vmid: u32) -> Result<(String, GuestKind, String), ToolError> {
    let world = ctx.state.get();
    let g = find_guest(&world.cluster, vmid)?;
    Ok((g.node.clone(), g.kind, g.name.clone()))
}

async fn follow(ctx: &ToolContext, upid: Upid, vmid: u32, name: &str) -> Result<Value, ToolError> {
    let status = ctx
        .pve
        .follow_task(&upid, FOLLOW_EVERY, ctx.settings.follow_limit)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    match status.exitstatus.as_deref() {
        Some("OK") => Ok(
            json!({"vmid": vmid, "snapshot": name, "upid": upid.to_string(), "exitstatus": "OK"}),
        ),
        other => Err(ToolError::Failed(format!(
            "{} on {vmid} failed: {}",
            status.kind,
            other.unwrap_or("unknown")
        ))),
    }
}

//! System tools over SSH: `run_command` (tier 0 for the read-only allowlist, tier 2 for anything else) and
//! `node_temperatures` (lm-sensors, also polled into the node model every 30 s by [`temperature_poller`]).

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::cluster::find_node;
use super::typed::TypedTool;
use super::{Registry, Tier, ToolContext, ToolError};
use crate::ssh::{allowlist, sensors, Executor};
use crate::state::StateHandle;

/// How often node temperatures are read.
pub const TEMPERATURE_EVERY: Duration = Duration::from_secs(30);

pub fn register(r: &mut Registry) {
    r.register(
        TypedTool::<RunArgs>::new(
            "run_command",
            Tier::Confirm,
            "Run a shell command on a node (or the Docker VM) over SSH and return its output and exit code. Read-only \
             commands run at once: uptime, df -h, free -m, sensors -j, zpool status, pvecm status, pveversion, qm list, \
             pct list, systemctl status UNIT, journalctl -u UNIT -n N, docker ps. ANY OTHER COMMAND NEEDS THE \
             OPERATOR'S CONFIRMATION: the first call returns a pending approval.",
            |a, _| format!("Run `{}` on {}", a.command, a.host),
            |ctx, a| Box::pin(async move { run(&ctx, &a.host, &a.command).await }),
        )
        .with_tier(|a, _| if allowlist::is_read_only(&a.command) { Tier::Read } else { Tier::Confirm }),
    );
    r.register(
        TypedTool::<TempArgs>::new(
            "node_temperatures",
            Tier::Read,
            "CPU, disk and board temperatures of one node or of every online node (lm-sensors over SSH), in Celsius.",
            |_, _| "Read node temperatures".into(),
            |ctx, a| {
                Box::pin(async move {
                    let exec = executor(&ctx)?;
                    let world = ctx.state.get();
                    let nodes: Vec<String> = match &a.node {
                        Some(n) => vec![find_node(&world.cluster, n)?.name.clone()],
                        None => world.cluster.nodes.iter().filter(|n| n.online).map(|n| n.name.clone()).collect(),
                    };
                    let mut out = serde_json::Map::new();
                    for node in nodes {
                        let value = match read_temperatures(exec.as_ref(), &node).await {
                            Ok(t) => {
                                store_temperatures(&ctx.state, &node, t.clone());
                                json!(t)
                            }
                            Err(e) => json!({ "error": e.to_string() }),
                        };
                        out.insert(node, value);
                    }
                    Ok(Value::Object(out))
                })
            },
        ),
    );
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunArgs {
    /// The node (or the Docker VM) to run on, as named in the config.
    pub host: String,
    /// The command line.
    pub command: String,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TempArgs {
    /// One node; every online node when absent.
    #[serde(default)]
    pub node: Option<String>,
}

pub fn executor(ctx: &ToolContext) -> Result<Arc<dyn Executor>, ToolError> {
    ctx.executor.clone().ok_or_else(|| {
        ToolError::NotFound("SSH is not configured ([ssh] and [ssh_hosts] in the config)".into())
    })
}

async fn run(ctx: &ToolContext, host: &str, command: &str) -> Result<Value, ToolError> {
    let out = executor(ctx)?
        .run(host, command, ctx.live.clone())
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    serde_json::to_value(out).map_err(|e| ToolError::Failed(e.to_string()))
}

async fn read_temperatures(
    exec: &dyn Executor,
    node: &str,
) -> Result<Vec<crate::cluster::model::Temperature>, ToolError> {
    let out = exec
        .run(node, "sensors -j", None)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    if out.exit_code != 0 {
        return Err(ToolError::Failed(format!(
            "sensors -j on {node} exited {}: {}",
            out.exit_code,
            out.stderr.trim()
        )));
    }
    sensors::parse(&out.stdout).map_err(|e| ToolError::Failed(e.to_string()))
}

fn store_temperatures(
    state: &StateHandle,
    node: &str,
    temps: Vec<crate::cluster::model::Temperature>,
) {
    state.update(|w| {
        if let Some(n) = w.cluster.nodes.iter_mut().find(|n| n.name == node) {
            n.temperatures = temps;
        }
    });
}

/// Reads every online node's temperatures every [`TEMPERATURE_EVERY`] into the node model.
pub async fn temperature_poller(
    exec: Arc<dyn Executor>,
    state: StateHandle,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let nodes: Vec<String> = state
            .get()
            .cluster
            .nodes
            .iter()
            .filter(|n| n.online)
            .map(|n| n.name.clone())
            .collect();
        for node in nodes {
            match read_temperatures(exec.as_ref(), &node).await {
                Ok(t) => store_temperatures(&state, &node, t),
                Err(e) => tracing::debug!(node, "temperatures: {e}"),
            }
        }
        let wait = if state.get().cluster.nodes.is_empty() {
            Duration::from_secs(1)
        } else {
            every
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

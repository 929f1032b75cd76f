//! Docker on the management VM, through SSH and the docker CLI's JSON output: list containers and read logs
//! (tier 0), restart (1), stop (2). SSH rather than the Docker Engine API: the engine's TCP socket is root on that
//! VM and would need its own TLS set-up, while SSH reuses the host-key-checked channel the other tools use.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::system::executor;
use super::typed::TypedTool;
use super::{Registry, Tier, ToolContext, ToolError};
use crate::ssh::allowlist::is_container_name;

pub fn register(r: &mut Registry) {
    r.register(TypedTool::<super::cluster::NoArgs>::new(
        "docker_list",
        Tier::Read,
        "List the Docker containers on the management VM with their image, state (running/exited) and status text.",
        |_, _| "List Docker containers".into(),
        |ctx, _| Box::pin(async move { list(&ctx).await }),
    ));
    r.register(
        TypedTool::<LogArgs>::new(
            "docker_logs",
            Tier::Read,
            "The last lines of a Docker container's log on the management VM (default 100, at most 2000).",
            |a, _| format!("Read the log of container {}", a.name),
            |ctx, a| {
                Box::pin(async move {
                    let lines = a.lines.unwrap_or(100).clamp(1, 2000);
                    docker(&ctx, &format!("docker logs --tail {lines} {}", a.name)).await
                })
            },
        )
        .with_check(|a, _| check_name(&a.name)),
    );
    r.register(
        TypedTool::<NameArgs>::new(
            "docker_restart",
            Tier::Routine,
            "Restart a Docker container on the management VM by name.",
            |a, _| format!("Restart container {}", a.name),
            |ctx, a| {
                Box::pin(async move { docker(&ctx, &format!("docker restart {}", a.name)).await })
            },
        )
        .with_check(|a, _| check_name(&a.name)),
    );
    r.register(
        TypedTool::<NameArgs>::new(
            "docker_stop",
            Tier::Confirm,
            "Stop a Docker container on the management VM by name. NEEDS THE OPERATOR'S CONFIRMATION: the first call \
             returns a pending approval.",
            |a, _| format!("Stop container {} on the Docker VM", a.name),
            |ctx, a| Box::pin(async move { docker(&ctx, &format!("docker stop {}", a.name)).await }),
        )
        .with_check(|a, _| check_name(&a.name)),
    );
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameArgs {
    /// The container's name, e.g. grafana.
    pub name: String,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogArgs {
    pub name: String,
    #[serde(default)]
    pub lines: Option<u32>,
}

fn check_name(name: &str) -> Result<(), ToolError> {
    if is_container_name(name) {
        Ok(())
    } else {
        Err(ToolError::InvalidArguments {
            tool: "docker".into(),
            field: "name".into(),
            message: "a container name has only letters, digits, @ . _ - :".into(),
        })
    }
}

fn docker_host(ctx: &ToolContext) -> Result<String, ToolError> {
    ctx.settings
        .docker_host
        .clone()
        .ok_or_else(|| ToolError::NotFound("no Docker host is configured ([docker] host)".into()))
}

async fn docker(ctx: &ToolContext, command: &str) -> Result<Value, ToolError> {
    let host = docker_host(ctx)?;
    let out = executor(ctx)?
        .run(&host, command, None)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    if out.exit_code != 0 {
        return Err(ToolError::Failed(format!(
            "`{command}` exited {}: {}",
            out.exit_code,
            out.stderr.trim()
        )));
    }
    Ok(json!({"host": host, "output": out.stdout, "truncated": out.truncated}))
}

async fn list(ctx: &ToolContext) -> Result<Value, ToolError> {
    let host = docker_host(ctx)?;
    let out = executor(ctx)?
        .run(&host, "docker ps -a --no-trunc --format '{{json .}}'", None)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    if out.exit_code != 0 {
        return Err(ToolError::Failed(format!(
            "docker ps exited {}: {}",
            out.exit_code,
            out.stderr.trim()
        )));
    }
    let containers: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .map_err(|e| ToolError::Failed(format!("docker ps printed something else: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let rows: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c["Names"], "image": c["Image"], "state": c["State"], "status": c["Status"]}))
        .collect();
    Ok(json!({"host": host, "containers": rows}))
}

//! The demo's [`Executor`]: answers the commands the tools send with realistic output drawn from the simulator's
//! model (lm-sensors JSON with the nodes' drifting temperatures, df, uptime, free) and a small Docker host (the
//! management VM's containers, which restart and stop). Unknown commands fail like a shell would.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::sync::mpsc;

use super::api::SimShared;
use crate::ssh::{CommandOutput, Executor, SshError};

/// The demo's Docker VM, as named in `[docker] host`.
pub const DOCKER_HOST: &str = "mgmt-docker";

struct Container {
    name: &'static str,
    image: &'static str,
    running: bool,
    restarts: u32,
}

pub struct DemoExecutor {
    sim: Arc<SimShared>,
    containers: Mutex<Vec<Container>>,
}

impl DemoExecutor {
    pub fn new(sim: Arc<SimShared>) -> DemoExecutor {
        let c = |name, image, running| Container {
            name,
            image,
            running,
            restarts: 0,
        };
        DemoExecutor {
            sim,
            containers: Mutex::new(vec![
                c("traefik", "traefik:v3.1", true),
                c("portainer", "portainer/portainer-ce:2.21.0", true),
                c("grafana", "grafana/grafana:11.2.0", true),
                c("prometheus", "prom/prometheus:v2.54.1", true),
                c("uptime-kuma", "louislam/uptime-kuma:1", true),
                c("vaultwarden", "vaultwarden/server:1.32.0", true),
                c(
                    "paperless",
                    "ghcr.io/paperless-ngx/paperless-ngx:2.12",
                    false,
                ),
            ]),
        }
    }

    fn answer(&self, host: &str, command: &str) -> Result<(i32, String, String), SshError> {
        if host == DOCKER_HOST {
            return Ok(self.docker(command));
        }
        let model = self.sim.model_now();
        let node = model
            .nodes
            .iter()
            .find(|n| n.name == host)
            .ok_or_else(|| SshError::UnknownHost(host.to_string()))?;
        if !node.online {
            return Err(SshError::HostDown {
                host: host.into(),
                message: format!("connect to host {} port 22: No route to host", node.ip),
            });
        }
        let gib = 1024.0 * 1024.0 * 1024.0;
        let out = match command.trim() {
            "sensors -j" => model.sensors_json(host).map(|v| v.to_string()).unwrap_or_default(),
            "uptime" => format!(
                " 10:42:01 up {} days,  3:12,  0 users,  load average: {:.2}, {:.2}, {:.2}\n",
                3 + node.cpus / 2,
                node.cpu * node.cpus as f64,
                node.cpu * node.cpus as f64 * 0.95,
                node.cpu * node.cpus as f64 * 0.9
            ),
            "df -h" | "df -h /" => format!(
                "Filesystem            Size  Used Avail Use% Mounted on\n/dev/mapper/pve-root   {:.0}G   {:.0}G   {:.0}G  {:.0}% /\n",
                node.rootfs_total as f64 / gib,
                node.rootfs_used as f64 / gib,
                (node.rootfs_total - node.rootfs_used) as f64 / gib,
                node.rootfs_used as f64 * 100.0 / node.rootfs_total as f64
            ),
            "free -m" => {
                let mib = |b: u64| b / (1024 * 1024);
                format!(
                    "               total        used        free      shared  buff/cache   available\nMem:          {:>6}      {:>6}      {:>6}          52        1024      {:>6}\n",
                    mib(node.maxmem),
                    mib(node.mem),
                    mib(node.maxmem - node.mem),
                    mib(node.maxmem - node.mem)
                )
            }
            "hostname" => format!("{host}\n"),
            "pveversion" => format!("pve-manager/{}/2a5fa54a8503f96d (running kernel: 6.8.12-9-pve)\n", super::model::PVE_VERSION),
            other => {
                let word = other.split_whitespace().next().unwrap_or("");
                return Ok((127, String::new(), format!("bash: {word}: not available on the demo homelab\n")));
            }
        };
        Ok((0, out, String::new()))
    }

    fn docker(&self, command: &str) -> (i32, String, String) {
        let mut containers = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["docker", "ps", ..] => {
                let lines: Vec<String> = containers
                    .iter()
                    .filter(|c| c.running || words.contains(&"-a"))
                    .map(|c| {
                        json!({"Names": c.name, "Image": c.image, "State": if c.running { "running" } else { "exited" },
                               "Status": if c.running { format!("Up 3 days (restarted {}x)", c.restarts) } else { "Exited (0) 2 days ago".to_string() }})
                        .to_string()
                    })
                    .collect();
                (0, lines.join("\n") + "\n", String::new())
            }
            ["docker", "logs", "--tail", n, name] => {
                match containers.iter().find(|c| c.name == *name) {
                    Some(c) => {
                        let n: usize = n.parse().unwrap_or(10).min(20);
                        let lines: Vec<String> =
                        (0..n).map(|i| format!("2026-11-24T10:{:02}:00Z {} level=info msg=\"request served\" status=200", i % 60, c.name)).collect();
                        (0, lines.join("\n") + "\n", String::new())
                    }
                    None => (
                        1,
                        String::new(),
                        format!("Error response from daemon: No such container: {name}\n"),
                    ),
                }
            }
            ["docker", verb @ ("restart" | "stop"), name] => {
                match containers.iter_mut().find(|c| c.name == *name) {
                    Some(c) => {
                        c.running = *verb == "restart";
                        c.restarts += u32::from(*verb == "restart");
                        (0, format!("{name}\n"), String::new())
                    }
                    None => (
                        1,
                        String::new(),
                        format!("Error response from daemon: No such container: {name}\n"),
                    ),
                }
            }
            _ => (
                127,
                String::new(),
                "docker: that command is not available on the demo homelab\n".into(),
            ),
        }
    }
}

impl Executor for DemoExecutor {
    fn run(
        &self,
        host: &str,
        command: &str,
        live: Option<mpsc::Sender<String>>,
    ) -> BoxFuture<'static, Result<CommandOutput, SshError>> {
        let result = self.answer(host, command);
        Box::pin(async move {
            let (exit_code, stdout, stderr) = result?;
            if let Some(tx) = live {
                let _ = tx.send(stdout.clone()).await;
            }
            Ok(CommandOutput {
                exit_code,
                stdout,
                stderr,
                truncated: false,
                duration_ms: 1,
            })
        })
    }

    fn copy(
        &self,
        from_host: &str,
        from_path: &str,
        to_host: &str,
        to_path: &str,
    ) -> BoxFuture<'static, Result<CommandOutput, SshError>> {
        let check = [from_host, to_host]
            .into_iter()
            .try_for_each(|h| self.answer(h, "hostname").map(|_| ()));
        let note = format!("copied {from_host}:{from_path} to {to_host}:{to_path} (simulated)\n");
        Box::pin(async move {
            check?;
            Ok(CommandOutput {
                exit_code: 0,
                stdout: note,
                stderr: String::new(),
                truncated: false,
                duration_ms: 5,
            })
        })
    }
}

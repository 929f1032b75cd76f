//! Running commands on the nodes: the [`Executor`] trait, with the system OpenSSH client behind it in production
//! ([`openssh`]) and the simulator's executor in the demo (`sim::executor`). Also what decides whether a command
//! is a harmless read ([`allowlist`]) and the parser for `sensors -j` ([`sensors`]).
//!
//! Why the system `ssh` and not an SSH library: strict host-key checking against Jarvis's own known_hosts (with
//! trust-on-first-use only when configured), key-only batch auth and connection reuse (ControlMaster) come from
//! the most audited SSH implementation, configured the way homelab owners already configure it.

pub mod allowlist;
pub mod openssh;
pub mod sensors;

use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SshError {
    #[error("no SSH host is configured for {0} ([ssh_hosts] in the config)")]
    UnknownHost(String),
    #[error("{host} is down or unreachable over SSH: {message}")]
    HostDown { host: String, message: String },
    #[error("{host} presented a host key that is not the one in known_hosts: refusing to connect")]
    HostKeyMismatch { host: String },
    #[error("{host} refused the SSH key: {message}")]
    AuthRefused { host: String, message: String },
    #[error("`{command}` on {host} did not finish within {after_ms} ms (stopped)")]
    Timeout {
        host: String,
        command: String,
        after_ms: u64,
    },
    #[error("cannot run ssh: {0}")]
    Spawn(String),
}

/// What a command produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Output beyond the cap was dropped.
    pub truncated: bool,
    pub duration_ms: u64,
}

/// Runs a command on a named host (a node, or the Docker VM). `live` receives output chunks as they come (for the
/// kiosk's terminal panel).
pub trait Executor: Send + Sync {
    fn run(
        &self,
        host: &str,
        command: &str,
        live: Option<mpsc::Sender<String>>,
    ) -> BoxFuture<'static, Result<CommandOutput, SshError>>;
    /// Copies a file from one host to another over SFTP, through Jarvis (neither host needs the other's key).
    fn copy(
        &self,
        from_host: &str,
        from_path: &str,
        to_host: &str,
        to_path: &str,
    ) -> BoxFuture<'static, Result<CommandOutput, SshError>>;
}

/// An absolute path with no shell or scp specials and no `..`.
pub fn safe_remote_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 1024
        && !p.split('/').any(|seg| seg == "..")
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@=,:".contains(c))
}

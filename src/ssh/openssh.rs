//! The production [`Executor`]: the system `ssh` client in batch mode with Jarvis's own key and known_hosts,
//! strict host-key checking (`accept-new` only when trust-on-first-use is configured), a reused master connection
//! per host (ControlMaster), a per-command timeout that ends the command on the host too, an output cap, and
//! output streamed as it arrives.
//!
//! # Ending a timed-out command on the host
//!
//! Killing the local `ssh` is not enough: without a tty, sshd sends no SIGHUP, and a command that does not write
//! (`sleep 60; reboot`) goes on running after its channel closed. A tty (`-tt`) would fix that but merges stderr
//! into stdout and turns `\n` into `\r\n`, which the tools and the exit-code handling rely on. So the command is
//! sent wrapped ([`remote_command`]): a small POSIX `sh` script, with the command and the limit passed as
//! positional parameters in single quotes (never spliced into the script, so a command cannot break out of it), that
//!
//! 1. keeps the channel's stdin for a watcher in the background, which reads it until EOF. Jarvis keeps its end
//!    of stdin open (and never writes to it) while it waits, so EOF on the host means the session is gone: the
//!    local `ssh` was killed at the timeout (the master then closes the channel), Jarvis died, or the connection
//!    was closed. If the command still runs then, the watcher sends SIGTERM to the session's process group, and SIGKILL
//!    a second later (a command that ignores SIGTERM dies too). sshd starts every session with `setsid`, so that
//!    group is exactly this command and what it started (nothing that left it with `setsid` or a daemon's
//!    double fork). After a normal end the watcher kills nothing: the session leader is gone, which it checks with
//!    `kill -0 $$` (safe: the watcher itself keeps the group's id from being reused);
//! 2. `exec`s coreutils `timeout -k 1 SECONDS` (the configured timeout, rounded up) with the user's login shell
//!    running the command, exactly as sshd would have run it, stdin from /dev/null as before. That ends the
//!    command even when the connection hangs instead of closing (a partition). Exit codes pass through; if the
//!    host's `timeout` fires first (exit 124 after the limit), it is reported as [`SshError::Timeout`] like the
//!    local one. A host without `timeout` runs the command under the watcher alone.
//!
//! stdout and stderr stay separate channels and are streamed and capped locally as before.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::{CommandOutput, Executor, SshError};

/// Where a named host is reached.
#[derive(Debug, Clone, PartialEq)]
pub struct SshHost {
    pub address: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct SshSettings {
    pub user: String,
    pub key_file: PathBuf,
    pub known_hosts: PathBuf,
    /// Accept and remember an unknown host's key the first time (never a changed one).
    pub trust_on_first_use: bool,
    pub timeout: Duration,
    pub max_output_bytes: usize,
    /// Directory for the master-connection sockets.
    pub control_dir: PathBuf,
    /// Names (nodes, the Docker VM) → addresses.
    pub hosts: BTreeMap<String, SshHost>,
}

pub struct OpenSsh {
    settings: Arc<SshSettings>,
}

impl OpenSsh {
    pub fn new(settings: SshSettings) -> OpenSsh {
        OpenSsh {
            settings: Arc::new(settings),
        }
    }
}

impl Executor for OpenSsh {
    fn run(
        &self,
        host: &str,
        command: &str,
        live: Option<mpsc::Sender<String>>,
    ) -> BoxFuture<'static, Result<CommandOutput, SshError>> {
        let settings = self.settings.clone();
        let name = host.to_string();
        let command = command.to_string();
        Box::pin(async move { run(&settings, &name, &command, live).await })
    }

    fn copy(
        &self,
        from_host: &str,
        from_path: &str,
        to_host: &str,
        to_path: &str,
    ) -> BoxFuture<'static, Result<CommandOutput, SshError>> {
        let settings = self.settings.clone();
        let (fh, fp, th, tp) = (
            from_host.to_string(),
            from_path.to_string(),
            to_host.to_string(),
            to_path.to_string(),
        );
        Box::pin(async move { copy(&settings, &fh, &fp, &th, &tp).await })
    }
}

/// `scp -3` (SFTP protocol) between two configured hosts, through a generated ssh config that keeps the same strict
/// host-key checking and key as [`run`].
async fn copy(
    s: &SshSettings,
    from_host: &str,
    from_path: &str,
    to_host: &str,
    to_path: &str,
) -> Result<CommandOutput, SshError> {
    let from = s
        .hosts
        .get(from_host)
        .ok_or_else(|| SshError::UnknownHost(from_host.to_string()))?;
    let to = s
        .hosts
        .get(to_host)
        .ok_or_else(|| SshError::UnknownHost(to_host.to_string()))?;
    std::fs::create_dir_all(&s.control_dir)
        .map_err(|e| SshError::Spawn(format!("{}: {e}", s.control_dir.display())))?;
    let checking = if s.trust_on_first_use {
        "accept-new"
    } else {
        "yes"
    };
    let mut config = String::new();
    for (alias, h) in [("jarvis-from", from), ("jarvis-to", to)] {
        config.push_str(&format!(
            "Host {alias}\n  HostName {}\n  Port {}\n",
            h.address, h.port
        ));
    }
    config.push_str(&format!(
        "Host *\n  User {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking {checking}\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  ConnectTimeout {}\n  LogLevel ERROR\n",
        s.user,
        s.key_file.display(),
        s.known_hosts.display(),
        s.timeout.as_secs().clamp(1, 30)
    ));
    let cfg = s
        .control_dir
        .join(format!("scp-{}.conf", rand::random::<u32>()));
    std::fs::write(&cfg, config).map_err(|e| SshError::Spawn(e.to_string()))?;
    let limit = s.timeout.max(Duration::from_secs(60));
    let started = Instant::now();
    let result = async {
        let child = Command::new("scp")
            .args(["-3", "-q", "-F"])
            .arg(&cfg)
            .arg(format!("jarvis-from:{from_path}"))
            .arg(format!("jarvis-to:{to_path}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SshError::Spawn(e.to_string()))?;
        let out = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .map_err(|_| SshError::Timeout {
                host: from_host.to_string(),
                command: "scp".into(),
                after_ms: limit.as_millis() as u64,
            })?
            .map_err(|e| SshError::Spawn(e.to_string()))?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().unwrap_or(-1);
        if code == 255 || stderr.contains("Host key verification failed") {
            return Err(classify(from_host, &stderr));
        }
        Ok(CommandOutput {
            exit_code: code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
            truncated: false,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
    .await;
    let _ = std::fs::remove_file(&cfg);
    result
}

fn ssh_command(s: &SshSettings, name: &str, target: &SshHost, command: &str) -> Command {
    let mut c = Command::new("ssh");
    let checking = if s.trust_on_first_use {
        "accept-new"
    } else {
        "yes"
    };
    // A reused master connection skips host-key checking, so the socket is tied to the trust settings too (a
    // different known_hosts never reuses it). Short names: Unix socket paths are limited to ~100 bytes.
    let trust = {
        use sha2::Digest;
        let h = sha2::Sha256::digest(
            format!("{}|{}", s.known_hosts.display(), s.trust_on_first_use).as_bytes(),
        );
        hex::encode(&h[..4])
    };
    let control = s.control_dir.join(format!(
        "%C-{trust}-{}",
        name.chars().take(8).collect::<String>()
    ));
    c.arg("-F")
        .arg("/dev/null")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PasswordAuthentication=no",
        ])
        .arg("-o")
        .arg(format!("StrictHostKeyChecking={checking}"))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", s.known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=60",
        ])
        .arg("-o")
        .arg(format!("ControlPath={}", control.display()))
        .arg("-o")
        .arg(format!(
            "ConnectTimeout={}",
            s.timeout.as_secs().clamp(1, 30)
        ))
        .args(["-o", "ServerAliveInterval=10", "-o", "LogLevel=ERROR"])
        .arg("-i")
        .arg(&s.key_file)
        .arg("-p")
        .arg(target.port.to_string())
        .arg("-l")
        .arg(&s.user)
        .arg(&target.address)
        .arg("--")
        .arg(remote_command(command, s.timeout))
        // Kept open and never written while the command runs: its EOF on the host ends the command.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

async fn run(
    s: &SshSettings,
    name: &str,
    command: &str,
    live: Option<mpsc::Sender<String>>,
) -> Result<CommandOutput, SshError> {
    let target = s
        .hosts
        .get(name)
        .ok_or_else(|| SshError::UnknownHost(name.to_string()))?;
    std::fs::create_dir_all(&s.control_dir)
        .map_err(|e| SshError::Spawn(format!("{}: {e}", s.control_dir.display())))?;
    let started = Instant::now();
    let mut child = ssh_command(s, name, target, command)
        .spawn()
        .map_err(|e| SshError::Spawn(e.to_string()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| SshError::Spawn("no stdout".into()))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| SshError::Spawn("no stderr".into()))?;
    // Dropped only after ssh has exited (or, with the child, at the timeout): see the module doc.
    let session = child.stdin.take();
    let cap = s.max_output_bytes;
    let work = async {
        let (out, err) = tokio::join!(
            read_capped(stdout, cap, live),
            read_capped(stderr, cap, None)
        );
        let status = child.wait().await;
        (out, err, status)
    };
    let timed_out = || SshError::Timeout {
        host: name.to_string(),
        command: command.to_string(),
        after_ms: s.timeout.as_millis() as u64,
    };
    // On timeout `child` is dropped and killed (kill_on_drop) with `session`: the host sees EOF.
    let (out, err, status) = tokio::time::timeout(s.timeout, work)
        .await
        .map_err(|_| timed_out())?;
    drop(session);
    let (stdout, out_cut) = out;
    let (stderr, err_cut) = err;
    let code = status
        .map_err(|e| SshError::Spawn(e.to_string()))?
        .code()
        .unwrap_or(-1);
    if code == REMOTE_TIMEOUT_EXIT && started.elapsed() >= s.timeout {
        return Err(timed_out());
    }
    if code == 255 {
        return Err(classify(name, &stderr));
    }
    Ok(CommandOutput {
        exit_code: code,
        stdout,
        stderr,
        truncated: out_cut || err_cut,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// What `timeout` exits with when it stopped the command.
const REMOTE_TIMEOUT_EXIT: i32 = 124;

/// Run by `/bin/sh` on the host as `sh -c WRAPPER jarvis-ssh COMMAND SECONDS` (see the module doc). The command
/// and the limit are only ever expanded as quoted parameters. One line, so that even a login shell that does not
/// allow newlines inside quotes (csh) passes it on.
const WRAPPER: &str = concat!(
    "exec 3<&0; ",
    // The watcher: stdin's EOF while the command runs → SIGTERM, then SIGKILL, to the session's process group.
    "(trap '' TERM; while read -r x; do :; done; kill -0 $$ 2>/dev/null || exit 0; ",
    "kill -TERM 0; sleep 1; kill -KILL 0) <&3 >/dev/null 2>&1 & ",
    "exec 3<&- </dev/null; ",
    // The command, in the user's login shell as sshd would run it, under the host-side limit when possible.
    r#"if command -v timeout >/dev/null 2>&1; then exec timeout -k 1 "$2" "${SHELL:-/bin/sh}" -c "$1"; fi; "#,
    r#"exec "${SHELL:-/bin/sh}" -c "$1""#,
);

/// The command line sent to the host: `command` (exactly as given) under the wrapper, with `limit` rounded up to
/// whole seconds (at least 1; `timeout 0` would mean no limit).
pub fn remote_command(command: &str, limit: Duration) -> String {
    let secs = limit.as_millis().div_ceil(1000).max(1);
    format!(
        "exec /bin/sh -c {} jarvis-ssh {} {secs}",
        shell_quote(WRAPPER),
        shell_quote(command)
    )
}

/// `s` as one word for a POSIX shell: in single quotes, each `'` written as `'\''`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Reads up to `cap` bytes (the rest is drained and dropped), forwarding chunks to `live`.
async fn read_capped(
    mut r: impl AsyncRead + Unpin,
    cap: usize,
    live: Option<mpsc::Sender<String>>,
) -> (String, bool) {
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(tx) = &live {
                    let _ = tx.try_send(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                cut |= n > room;
            }
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), cut)
}

/// ssh exits 255 for its own failures; its message says which.
fn classify(host: &str, stderr: &str) -> SshError {
    let msg = stderr.trim().to_string();
    let lower = msg.to_lowercase();
    if lower.contains("host key verification failed")
        || lower.contains("remote host identification has changed")
    {
        SshError::HostKeyMismatch {
            host: host.to_string(),
        }
    } else if lower.contains("permission denied") {
        SshError::AuthRefused {
            host: host.to_string(),
            message: msg,
        }
    } else {
        SshError::HostDown {
            host: host.to_string(),
            message: if msg.is_empty() {
                "ssh failed".into()
            } else {
                msg
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_failures_are_classified() {
        assert!(matches!(
            classify("pve", "Host key verification failed."),
            SshError::HostKeyMismatch { .. }
        ));
        assert!(matches!(
            classify("pve", "root@x: Permission denied (publickey)."),
            SshError::AuthRefused { .. }
        ));
        assert!(matches!(
            classify("pve", "ssh: connect to host x port 22: Connection refused"),
            SshError::HostDown { .. }
        ));
    }

    /// Runs [`remote_command`] with a local `sh` the way sshd would (its own process group, stdin a pipe that
    /// stays open until `close_stdin_after`), returning the exit code, stdout and stderr.
    fn run_wrapped(
        command: &str,
        limit: Duration,
        close_stdin_after: Option<Duration>,
    ) -> (i32, String, String) {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(remote_command(command, limit))
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        let mut stdin = child.stdin.take();
        if let Some(after) = close_stdin_after {
            let stdin = stdin.take();
            std::thread::spawn(move || {
                std::thread::sleep(after);
                drop(stdin);
            });
        }
        let out = child.wait_with_output().expect("wait");
        drop(stdin);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn wrapped_commands_run_exactly_as_given() {
        let command = r#"printf '%s\n' "it's" '$1 "$2" `id` \' "a'b'\''c"; echo err >&2; exit 7"#;
        assert_eq!(
            run_wrapped(command, Duration::from_secs(30), None),
            (
                7,
                "it's\n$1 \"$2\" `id` \\\na'b'\\''c\n".to_string(),
                "err\n".to_string()
            )
        );
        assert!(remote_command("true", Duration::from_millis(1500)).ends_with(" 2"));
        assert!(remote_command("true", Duration::from_millis(1)).ends_with(" 1"));
    }

    #[test]
    fn the_host_ends_the_command_when_the_session_closes_or_the_limit_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("m");
        // The session closes (stdin EOF) while a command that ignores SIGTERM runs: SIGKILL a second later.
        let command = format!("trap '' TERM; sleep 3; touch {}", marker.display());
        let started = Instant::now();
        let (code, _, _) = run_wrapped(
            &command,
            Duration::from_secs(30),
            Some(Duration::from_millis(200)),
        );
        assert!(started.elapsed() < Duration::from_millis(2500), "{code}");
        // The session stays open but the host-side limit passes (a hung connection): `timeout` ends it.
        let started = Instant::now();
        let (code, _, _) = run_wrapped("sleep 5", Duration::from_secs(1), None);
        assert_eq!(code, REMOTE_TIMEOUT_EXIT);
        assert!(started.elapsed() < Duration::from_secs(3));
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            !marker.exists(),
            "the command went on after the session closed"
        );
    }
}

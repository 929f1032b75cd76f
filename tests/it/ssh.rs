//! SSH against a real OpenSSH server on 127.0.0.1 (a spare port, its own host key and authorized_keys in a temp
//! dir, a fixture `sensors` on the session's PATH): commands, streaming, temperatures, the allowlist's tiers, host
//! key checking (strict, trust-on-first-use, changed key), host down, timeouts (the command stopped on the host
//! too), quoting and the output cap.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jarvis::ssh::openssh::{OpenSsh, SshHost, SshSettings};
use jarvis::ssh::{Executor, SshError};
use jarvis::tools::{Outcome, ToolError};
use serde_json::json;

use crate::util;

/// A running sshd and a client identity it accepts; killed on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(ok.success());
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))
            .expect("authorized_keys");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bin");
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {pid}\nPermitRootLogin prohibit-password\n\
                 SetEnv PATH={bin}:/usr/local/bin:/usr/bin:/bin\nSubsystem sftp internal-sftp\n",
                hk = d.join("host_key").display(),
                ak = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
                bin = bin.display(),
            ),
        )
        .expect("sshd_config");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd starts (openssh-server is installed by scripts/setup)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd { child, port, dir }
    }

    /// A known_hosts line for this server's key.
    pub fn known_hosts_line(&self) -> String {
        let key = std::fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
        format!("[127.0.0.1]:{} {}", self.port, key.trim())
    }

    pub fn settings(&self, known_hosts: PathBuf, tofu: bool, hosts: &[&str]) -> SshSettings {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        SshSettings {
            user,
            key_file: self.dir.path().join("client_key"),
            known_hosts,
            trust_on_first_use: tofu,
            timeout: Duration::from_secs(10),
            max_output_bytes: 64 * 1024,
            control_dir: self.dir.path().join("ctl"),
            hosts: hosts
                .iter()
                .map(|h| {
                    (
                        h.to_string(),
                        SshHost {
                            address: "127.0.0.1".into(),
                            port: self.port,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// Settings that trust exactly this server.
    pub fn trusted(&self, hosts: &[&str]) -> SshSettings {
        let kh = self.dir.path().join("known_hosts");
        std::fs::write(&kh, self.known_hosts_line() + "\n").expect("known_hosts");
        self.settings(kh, false, hosts)
    }
}

#[tokio::test]
async fn commands_run_with_exit_codes_and_streamed_output() {
    let sshd = Sshd::start();
    let ssh = OpenSsh::new(sshd.trusted(&["pve"]));
    let out = ssh.run("pve", "uptime", None).await.expect("uptime");
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout.contains("load average"), "{}", out.stdout);
    let out = ssh
        .run("pve", "sh -c 'echo oops >&2; exit 3'", None)
        .await
        .expect("runs");
    assert_eq!((out.exit_code, out.stderr.trim()), (3, "oops"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let out = ssh
        .run("pve", "sensors -j", Some(tx))
        .await
        .expect("sensors");
    let mut streamed = String::new();
    while let Ok(chunk) = rx.try_recv() {
        streamed.push_str(&chunk);
    }
    assert_eq!(streamed, out.stdout, "the output was streamed as it came");
    let temps = jarvis::ssh::sensors::parse(&out.stdout).expect("lm-sensors JSON from the fixture");
    assert_eq!(temps.len(), 3);
    // The master connection is reused: the second command finds its control socket.
    assert!(
        std::fs::read_dir(sshd.dir.path().join("ctl"))
            .expect("ctl dir")
            .count()
            >= 1
    );
}

#[tokio::test]
async fn output_is_capped_and_slow_commands_time_out() {
    let sshd = Sshd::start();
    let mut settings = sshd.trusted(&["pve"]);
    settings.max_output_bytes = 1000;
    settings.timeout = Duration::from_secs(2);
    let ssh = OpenSsh::new(settings);
    let out = ssh.run("pve", "seq 1 100000", None).await.expect("seq");
    assert!(
        out.truncated && out.stdout.len() == 1000,
        "{} bytes",
        out.stdout.len()
    );
    match ssh.run("pve", "sleep 20", None).await {
        Err(SshError::Timeout { after_ms, .. }) => assert_eq!(after_ms, 2000),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn host_keys_are_checked_strictly() {
    let sshd = Sshd::start();
    // An unknown host is refused without trust-on-first-use...
    let empty = sshd.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").expect("write");
    let strict = OpenSsh::new(sshd.settings(empty.clone(), false, &["pve"]));
    assert!(matches!(
        strict.run("pve", "uptime", None).await,
        Err(SshError::HostKeyMismatch { .. })
    ));
    // ...accepted and remembered with it...
    let tofu_file = sshd.dir.path().join("tofu_known_hosts");
    std::fs::write(&tofu_file, "").expect("write");
    let tofu = OpenSsh::new(sshd.settings(tofu_file.clone(), true, &["pve"]));
    assert_eq!(
        tofu.run("pve", "uptime", None)
            .await
            .expect("first use")
            .exit_code,
        0
    );
    assert!(
        std::fs::read_to_string(&tofu_file)
            .expect("read")
            .contains("ssh-ed25519"),
        "the key was remembered"
    );
    // ...and a changed key is refused even with trust-on-first-use.
    let wrong = sshd.dir.path().join("wrong_known_hosts");
    keygen(&sshd.dir.path().join("other_host_key"));
    let other = std::fs::read_to_string(sshd.dir.path().join("other_host_key.pub")).expect("key");
    std::fs::write(
        &wrong,
        format!("[127.0.0.1]:{} {}\n", sshd.port, other.trim()),
    )
    .expect("write");
    let changed = OpenSsh::new(sshd.settings(wrong, true, &["pve"]));
    assert!(matches!(
        changed.run("pve", "uptime", None).await,
        Err(SshError::HostKeyMismatch { .. })
    ));
}

#[tokio::test]
async fn a_host_that_is_down_or_unknown_is_reported() {
    let sshd = Sshd::start();
    let mut settings = sshd.trusted(&["pve"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    settings.hosts.insert(
        "agent".into(),
        SshHost {
            address: "127.0.0.1".into(),
            port: closed,
        },
    );
    let ssh = OpenSsh::new(settings);
    assert!(matches!(
        ssh.run("agent", "uptime", None).await,
        Err(SshError::HostDown { .. })
    ));
    assert!(matches!(
        ssh.run("nope", "uptime", None).await,
        Err(SshError::UnknownHost(_))
    ));
}

#[tokio::test]
async fn run_command_is_free_for_reads_and_confirmed_for_anything_else_and_temperatures_reach_the_nodes(
) {
    let sshd = Sshd::start();
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = util::config(&sim, dir.path());
    config.ssh = Some(sshd.trusted(&["Home", "pve", "agent1", "agent"]));
    let app = jarvis::app::App::start(&config, "test").await.expect("app");
    let state = app.state.clone();
    // The temperature poller reads `sensors -j` on every online node into the node model.
    assert!(
        util::eventually(Duration::from_secs(15), || {
            let w = state.get();
            w.cluster.nodes.len() == 4 && w.cluster.nodes.iter().all(|n| n.temperatures.len() == 3)
        })
        .await,
        "temperatures reached every node"
    );
    let (_, cluster) = util::get_json(app.side_port().expect("side port"), "/api/v1/cluster").await;
    let package = cluster["nodes"][0]["temperatures"]
        .as_array()
        .and_then(|t| {
            t.iter()
                .find(|x| x["sensor"] == "coretemp-isa-0000/Package id 0")
        })
        .map(|x| x["celsius"].clone());
    assert_eq!(
        package,
        Some(json!(52.0)),
        "temperatures are served on /api/v1/cluster"
    );

    let t = &app.tools;
    match t
        .invoke(
            "mcp",
            "run_command",
            json!({"host": "pve", "command": "df -h"}),
        )
        .await
    {
        Ok(Outcome::Done { result }) => assert_eq!(result["exit_code"], 0),
        other => panic!("a read runs at once: {other:?}"),
    }
    let marker = sshd.dir.path().join("touched");
    let command = format!("touch {}", marker.display());
    let pending = match t
        .invoke(
            "mcp",
            "run_command",
            json!({"host": "pve", "command": command}),
        )
        .await
    {
        Ok(Outcome::PendingApproval { approval, .. }) => approval,
        other => panic!("a write waits for the operator: {other:?}"),
    };
    assert!(!marker.exists());
    t.decide(&pending.id, true).expect("approve");
    assert!(matches!(
        t.invoke(
            "mcp",
            "run_command",
            json!({"host": "pve", "command": command})
        )
        .await,
        Ok(Outcome::Done { .. })
    ));
    assert!(marker.exists(), "the approved command ran on the host");
    let audit = app.store.audit(50).expect("audit");
    assert!(
        audit
            .iter()
            .any(|r| r.tool == "run_command" && r.tier == 0 && r.outcome == "ok"),
        "reads audited as tier 0"
    );
    assert!(audit
        .iter()
        .any(|r| r.tool == "run_command" && r.tier == 2 && r.outcome == "pending"));
    let temps = match t
        .invoke("kiosk", "node_temperatures", json!({"node": "agent1"}))
        .await
    {
        Ok(Outcome::Done { result }) => result,
        other => panic!("{other:?}"),
    };
    assert!(
        temps["agent1"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x["sensor"] == "nvme-pci-0100/Composite")),
        "{temps}"
    );
    match t
        .invoke(
            "mcp",
            "run_command",
            json!({"host": "nas", "command": "uptime"}),
        )
        .await
    {
        Err(ToolError::Failed(m)) => {
            assert!(m.contains("no SSH host is configured for nas"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn files_are_copied_between_nodes_over_sftp() {
    let sshd = Sshd::start();
    let ssh = OpenSsh::new(sshd.trusted(&["pve", "agent"]));
    let from = sshd.dir.path().join("images-debian.iso");
    let to = sshd.dir.path().join("copied.iso");
    std::fs::write(&from, vec![42u8; 300_000]).expect("write");
    let out = ssh
        .copy(
            "pve",
            &from.display().to_string(),
            "agent",
            &to.display().to_string(),
        )
        .await
        .expect("copy");
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read(&to).expect("copied"),
        std::fs::read(&from).expect("original")
    );
    let missing = ssh
        .copy(
            "pve",
            "/nonexistent/file",
            "agent",
            &to.display().to_string(),
        )
        .await
        .expect("runs");
    assert_ne!(missing.exit_code, 0);
    assert!(!jarvis::ssh::safe_remote_path("/tmp/../etc/shadow"));
    assert!(!jarvis::ssh::safe_remote_path("relative/path"));
    assert!(!jarvis::ssh::safe_remote_path("/tmp/x;reboot"));
}

#[tokio::test]
async fn a_timed_out_command_is_stopped_on_the_host_too() {
    let sshd = Sshd::start();
    let mut settings = sshd.trusted(&["pve"]);
    // The master connection is opened first, with room for a slow handshake on a loaded machine, so the short
    // limit below goes to the command alone (the same settings but the limit share that connection).
    settings.timeout = Duration::from_secs(20);
    OpenSsh::new(settings.clone())
        .run("pve", "true", None)
        .await
        .expect("warm-up");
    settings.timeout = Duration::from_secs(2);
    let ssh = OpenSsh::new(settings);
    let d = sshd.dir.path();
    // The second command ignores SIGTERM (and `sleep` inherits that): only SIGKILL stops it.
    let cases = [
        ("started", "MARKER", ""),
        ("started2", "MARKER2", "trap '' TERM; "),
    ];
    for (started, marker, prefix) in cases {
        let command = format!(
            "{prefix}touch {}; sleep 5; touch {}",
            d.join(started).display(),
            d.join(marker).display()
        );
        match ssh.run("pve", &command, None).await {
            Err(SshError::Timeout { after_ms, .. }) => assert_eq!(after_ms, 2000),
            other => panic!("expected a timeout for `{command}`, got {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    for (started, marker, _) in cases {
        assert!(
            d.join(started).exists(),
            "{started}: the command had started"
        );
        assert!(
            !d.join(marker).exists(),
            "{marker}: the timed-out command went on running on the host"
        );
    }
}

#[tokio::test]
async fn commands_with_quotes_and_specials_run_exactly_as_given() {
    let sshd = Sshd::start();
    let ssh = OpenSsh::new(sshd.trusted(&["pve"]));
    let command = r#"printf '%s\n' "it's" 'say "hi"' '$HOME $(id) `id` \n' "a'b'\''c"; echo done >&2; exit 4"#;
    let out = ssh.run("pve", command, None).await.expect("runs");
    assert_eq!(
        (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
        (
            4,
            "it's\nsay \"hi\"\n$HOME $(id) `id` \\n\na'b'\\''c\n",
            "done\n"
        )
    );
}

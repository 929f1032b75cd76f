//! The `jarvis` binary as an operator runs it: `check-config` on good and bad files, `jarvis demo` serving the
//! demo cluster and stopping cleanly on SIGTERM, and `kill -9` while events are being written.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jarvis::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_jarvis");

fn check_config(path: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(path)
        .env_remove("JARVIS_PVE_TOKEN_SECRET")
        .env_remove("JARVIS_WEB_TOKEN")
        .env_remove("JARVIS_OPERATOR_TOKEN")
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn the_commented_example_config_is_valid_once_its_secrets_exist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/overlay/etc/jarvis/jarvis.toml"
    ))
    .expect("example");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).expect("mkdir");
    for (name, value) in [
        ("pve-token", "11111111-2222-3333-4444-555555555555\n"),
        ("web-token", "a-long-enough-side-port-token\n"),
        ("operator-token", "the-operators-own-long-token\n"),
        ("anthropic-key", "sk-ant-example\n"),
    ] {
        crate::util::write_secret(&secrets.join(name), value);
    }
    let text = example
        .replace("/etc/jarvis/secrets", &secrets.display().to_string())
        .replace("/var/lib/jarvis", &dir.path().display().to_string());
    let file = dir.path().join("jarvis.toml");
    std::fs::write(&file, text).expect("write");
    // The side port's certificate is not there yet: named as the problem, with its line.
    let (code, _, stderr) = check_config(&file);
    assert_eq!(code, 1);
    assert!(stderr.contains("web.tls_cert_file"), "{stderr}");
    // Made as the appliance makes it at first boot.
    let out = Command::new(BIN)
        .arg("tls-cert")
        .arg("--cert")
        .arg(dir.path().join("tls/side-port.crt"))
        .arg("--key")
        .arg(secrets.join("side-port.key"))
        .output()
        .expect("tls-cert");
    assert!(out.status.success(), "{out:?}");
    let (code, stdout, stderr) = check_config(&file);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("OK"));
    // Half a pair, and a key that is not the certificate's, are named too.
    let half = std::fs::read_to_string(&file)
        .expect("read")
        .replace("tls_key_file", "# tls_key_file");
    std::fs::write(&file, half).expect("write");
    let (code, _, stderr) = check_config(&file);
    assert_eq!(code, 1);
    assert!(stderr.contains("needs tls_key_file as well"), "{stderr}");
    let other = rcgen::KeyPair::generate().expect("key");
    let foreign = dir.path().join("foreign.key");
    std::fs::write(&foreign, other.serialize_pem()).expect("write");
    let text = std::fs::read_to_string(&file).expect("read").replace(
        "# tls_key_file = \"",
        &format!("tls_key_file = \"{}\"\n# was = \"", foreign.display()),
    );
    std::fs::write(&file, text).expect("write");
    let (code, _, stderr) = check_config(&file);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("web.tls_key_file") && stderr.contains("does not belong"),
        "{stderr}"
    );
}

#[test]
fn check_config_lists_every_problem_with_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[pve]\nurl = \"http://192.168.1.10:8006\"\ntoken_id = \"jarvis\"\nfingerprint = \"AB:CD\"\ntoken_secret_file = \"missing-file\"\n\n[poll]\nresources_ms = \"2s\"\n\n[web]\nlisten = \"0.0.0.0\"\ntoken_file = \"also-missing\"\nmax_body = 5\n",
    )
    .expect("write");
    let (code, _, stderr) = check_config(&file);
    assert_eq!(code, 1);
    let name = file.display().to_string();
    for expected in [
        format!("{name}:2:7: pve.url: must start with https://"),
        format!("{name}:3:12: pve.token_id: must look like USER@REALM!TOKENID"),
        format!("{name}:4:15: pve.fingerprint: a SHA-256 fingerprint"),
        format!("{name}:5:21: pve.token_secret_file: cannot read secret file"),
        format!("{name}:8:16: poll.resources_ms: expected an integer, found string"),
        format!("{name}:11:10: web.listen: `0.0.0.0` is not an address:port"),
        format!("{name}:12:14: web.token_file: cannot read secret file"),
        format!("{name}:13:1: web.max_body: unknown field `max_body`"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("web.operator_token_file: missing"),
        "{stderr}"
    );
    assert!(stderr.contains("9 problem(s)"), "{stderr}");
    assert!(!stderr.contains("11111111"), "never print secrets");
}

#[test]
fn check_config_refuses_secret_files_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).expect("mkdir");
    for (name, value) in [
        ("pve", "11111111-2222-3333-4444-555555555555\n"),
        ("web", "a-long-enough-side-port-token\n"),
        ("operator", "the-operators-own-long-token\n"),
    ] {
        crate::util::write_secret(&secrets.join(name), value);
    }
    let file = dir.path().join("jarvis.toml");
    std::fs::write(
        &file,
        "[pve]\nurl = \"https://10.0.0.2:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\ntoken_secret_file = \"secrets/pve\"\n\
         fingerprint = \"AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\"\n\n\
         [web]\ntoken_file = \"secrets/web\"\noperator_token_file = \"secrets/operator\"\n\n[store]\npath = \"j.db\"\n",
    )
    .expect("write");
    let (code, stdout, stderr) = check_config(&file);
    assert_eq!(code, 0, "mode 0600 is fine: {stderr}");
    assert!(stdout.contains("OK"));
    let loose = [
        ("pve", 0o644, "pve.token_secret_file"),
        ("operator", 0o640, "web.operator_token_file"),
    ];
    for (name, mode, _) in loose {
        std::fs::set_permissions(secrets.join(name), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }
    let (code, _, stderr) = check_config(&file);
    assert_eq!(code, 1, "{stderr}");
    for (name, mode, field) in loose {
        let path = secrets.join(name).display().to_string();
        let line = stderr
            .lines()
            .find(|l| l.contains(field))
            .unwrap_or_else(|| panic!("no problem for {field} in:\n{stderr}"));
        assert!(
            line.contains(&path)
                && line.contains(&format!("{mode:04o}"))
                && line.contains(&format!("chmod 600 {path}")),
            "{line}"
        );
    }
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    assert!(
        !stderr.contains("11111111") && !stderr.contains("operators-own"),
        "never print secrets"
    );
}

#[test]
fn check_config_reports_syntax_errors_and_missing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, "[pve]\nurl = \"https://x:8006\"\n[poll\n").expect("write");
    let (code, _, stderr) = check_config(&file);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(":3:") && stderr.contains("TOML syntax"),
        "{stderr}"
    );
    // Only the syntax error: `url` is there, and what follows the error cannot be judged.
    assert!(stderr.contains("1 problem(s)"), "{stderr}");
    assert!(!stderr.contains("missing"), "{stderr}");
    let (code, _, stderr) = check_config(&dir.path().join("nope.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    // stderr is a pipe (as under an init system writing a log file), and NO_COLOR is not set.
    let mut child = Command::new(BIN)
        .args(["sim", "pve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jarvis sim pve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !seen
            .iter()
            .any(|l: &String| l.contains("PVE simulator listening"))
    {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = wait_with_timeout(&mut child, Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(
        text.contains("PVE simulator listening"),
        "no log line seen: {text:?}"
    );
    assert!(text.contains("INFO"), "{text:?}");
    assert!(
        !text.contains("\x1b["),
        "colour codes in a piped log: {text:?}"
    );
}

/// A running `jarvis demo` and what its banner said.
pub(crate) struct DemoProc {
    pub(crate) child: Child,
    pub(crate) web: String,
    pub(crate) token: String,
    operator: String,
    sim: String,
    pve_auth: String,
}

impl Drop for DemoProc {
    /// SIGTERM, so the demo closes its window and database as it does for a person; `kill -9` after 15 s. A
    /// child the test already ended (and reaped) is left alone: its pid may belong to someone else by now.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo(data_dir: &Path, poll_ms: u64) -> DemoProc {
    start_demo_with(data_dir, poll_ms, &[], &[])
}

/// `jarvis demo` with more arguments and environment (a display, a renderer); its log goes to `stderr.log` in
/// the data folder.
pub(crate) fn start_demo_with(
    data_dir: &Path,
    poll_ms: u64,
    args: &[&str],
    env: &[(&str, &str)],
) -> DemoProc {
    let mut command = Command::new(BIN);
    command
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--poll-ms",
            &poll_ms.to_string(),
            "--data-dir",
        ])
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("JARVIS_WEB_TOKEN")
        .env_remove("JARVIS_OPERATOR_TOKEN")
        .env_remove("DISPLAY")
        // No face models: these tests are about other things, and each engine load costs seconds of CPU in a
        // debug build (faces are tested in faces.rs and faces_api.rs).
        .env("JARVIS_MODELS", data_dir.join("no-models"))
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(data_dir.join("stderr.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        );
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("jarvis demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut web, mut token, mut sim, mut pve_auth, mut operator) = (None, None, None, None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["side", "port", url] => web = Some(url.to_string()),
            ["token", t] => token = Some(t.to_string()),
            ["operator", t, ..] => operator = Some(t.to_string()),
            ["simulated", "Proxmox", "VE:", url, ..] => sim = Some(url.to_string()),
            _ if line.contains("PVEAPIToken=") => {
                let start = line.find("PVEAPIToken=").expect("found");
                pve_auth = Some(
                    line[start..]
                        .trim_end_matches(['\'', '\\', ' '])
                        .to_string(),
                );
            }
            _ if line.contains("Ctrl-C stops it") => break,
            _ => {}
        }
    }
    match (web, token, sim, pve_auth, operator) {
        (Some(web), Some(token), Some(sim), Some(pve_auth), Some(operator)) => DemoProc {
            child,
            web,
            token,
            operator,
            sim,
            pve_auth,
        },
        _ => {
            let _ = child.kill();
            panic!("the demo banner did not show the side port, token and simulator");
        }
    }
}

pub(crate) fn blocking_http(sim_cert: Option<&Path>) -> reqwest::blocking::Client {
    jarvis::tls::install_crypto_provider();
    let mut b = reqwest::blocking::Client::builder().no_proxy();
    if let Some(pem) = sim_cert {
        let fp = jarvis::tls::Fingerprint::of_der(&pem_to_der(pem));
        let tls = jarvis::tls::client_config(&jarvis::tls::Trust::Pinned(fp)).expect("tls");
        b = b.tls_backend_preconfigured(tls);
    }
    b.build().expect("client")
}

fn pem_to_der(path: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(path)
        .expect("pem")
        .to_vec()
}

#[test]
fn the_demo_serves_the_cluster_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut demo = start_demo(dir.path(), 200);
    let http = blocking_http(None);
    let mut nodes = 0;
    for _ in 0..100 {
        if let Ok(resp) = http
            .get(format!("{}/api/v1/cluster", demo.web))
            .bearer_auth(&demo.token)
            .send()
        {
            let v: serde_json::Value = resp.json().expect("json");
            nodes = v["nodes"].as_array().map(Vec::len).unwrap_or(0);
            if nodes == 4 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(nodes, 4, "the demo cluster is served");

    // The banner's power-action recipe works against the simulator.
    let sim_http = blocking_http(Some(&dir.path().join("pve-sim-cert.pem")));
    let resp = sim_http
        .post(format!(
            "{}/api2/json/nodes/pve/qemu/113/status/start",
            demo.sim
        ))
        .header("authorization", &demo.pve_auth)
        .send()
        .expect("power action");
    assert_eq!(resp.status(), 200);

    let status = Command::new("kill")
        .args(["-TERM", &demo.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = wait_with_timeout(&mut demo.child, Duration::from_secs(20))
        .expect("jarvis stops on SIGTERM");
    assert!(exit.success(), "clean exit: {exit:?}");
    let store = Store::open(&dir.path().join("jarvis-demo.db")).expect("store opens");
    let last = store.events(None, 1).expect("events");
    assert_eq!(
        last[0].kind, "jarvis_stopping",
        "the store was flushed to the last event"
    );
}

#[test]
fn kill_9_while_writing_loses_no_committed_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut demo = start_demo(dir.path(), 100);
    let db = dir.path().join("jarvis-demo.db");
    let sim_http = blocking_http(Some(&dir.path().join("pve-sim-cert.pem")));
    // Flip guests through the simulator's control API so the poller writes events continuously.
    let mut committed: Vec<(i64, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut flip = 0u32;
    while Instant::now() < deadline {
        let vmid = [113, 125, 133][(flip % 3) as usize];
        let state = if (flip / 3).is_multiple_of(2) {
            "running"
        } else {
            "stopped"
        };
        flip += 1;
        let _ = sim_http
            .post(format!("{}/_sim/guests/{vmid}/power/{state}", demo.sim))
            .header("authorization", &demo.pve_auth)
            .send();
        std::thread::sleep(Duration::from_millis(40));
        if let Ok(rows) = read_committed(&db) {
            committed = rows;
        }
        if committed.len() >= 40 {
            break;
        }
    }
    assert!(
        committed.len() >= 40,
        "events were being written ({} seen)",
        committed.len()
    );
    demo.child.kill().expect("kill -9");
    let _ = demo.child.wait();

    let store = Store::open(&db).expect("the store opens after kill -9");
    assert_eq!(store.integrity_check().expect("check"), "ok");
    let after = store.events(Some(0), 100_000).expect("events");
    for (id, data) in &committed {
        let found = after
            .iter()
            .find(|e| e.id == *id)
            .unwrap_or_else(|| panic!("committed event {id} lost"));
        assert_eq!(&found.data.to_string(), data, "event {id} changed");
    }
}

/// What another process sees as committed, through its own read-only connection.
fn read_committed(db: &Path) -> rusqlite::Result<Vec<(i64, String)>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT id, data FROM events ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        let data: String = r.get(1)?;
        let v: serde_json::Value = serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
        Ok((r.get(0)?, v.to_string()))
    })?;
    rows.collect()
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn the_operator_approves_and_pulls_the_kill_switch_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut demo = start_demo(dir.path(), 200);
    let http = blocking_http(None);
    let call = |tool: &str, args: serde_json::Value| -> (u16, serde_json::Value) {
        let resp = http
            .post(format!("{}/api/v1/tools/{tool}", demo.web))
            .bearer_auth(&demo.token)
            .json(&args)
            .send()
            .expect("request");
        (resp.status().as_u16(), resp.json().expect("json"))
    };
    // Wait for the first poll, then ask for a tier-2 action as a client.
    let mut asked = (0, serde_json::Value::Null);
    for _ in 0..100 {
        asked = call("shutdown_guest", serde_json::json!({"vmid": 131}));
        if asked.0 == 202 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(asked.0, 202, "{}", asked.1);
    let id = asked.1["approval"]["id"]
        .as_str()
        .expect("approval id")
        .to_string();
    let jarvis = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .args(["--url", &demo.web])
            .env("JARVIS_OPERATOR_TOKEN", &demo.operator)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, stderr) = jarvis(&["approve", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("Approved") && stdout.contains("uptime-kuma"),
        "{stdout}"
    );
    let (status, body) = call("shutdown_guest", serde_json::json!({"vmid": 131}));
    assert_eq!(
        (status, body["result"]["exitstatus"].as_str()),
        (200, Some("OK"))
    );
    let (code, _, stderr) = jarvis(&["approve", "no-such-id"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no pending approval"), "{stderr}");

    let (code, stdout, _) = jarvis(&["killswitch", "on"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("ON"), "{stdout}");
    let (status, body) = call("start_guest", serde_json::json!({"vmid": 131}));
    assert_eq!((status, body["error"].as_str()), (403, Some("kill_switch")));
    let (_, stdout, _) = jarvis(&["killswitch", "off"]);
    assert!(stdout.contains("off"), "{stdout}");
    let _ = demo.child.kill();
    let _ = demo.child.wait();
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// A chat flood against `jarvis demo` (the 1.3 MB of chat frames, over several sockets, and REST):
/// the excess is refused at once (rate and queue), and the process's resident memory after the flood stays
/// within 40 MiB of what it was before (it grew by ~300 MB before the bounds).
#[test]
fn a_chat_flood_is_refused_early_and_memory_stays_bounded() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut demo = start_demo(dir.path(), 500);
    let pid = demo.child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ws_url = format!(
        "{}/ws?access_token={}",
        demo.web.replacen("http", "ws", 1),
        demo.token
    );
    std::thread::sleep(Duration::from_secs(2));
    let before = rss_kib(pid);
    let (answered, refused) = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..5 {
            let url = ws_url.clone();
            tasks.push(tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                    .await
                    .expect("ws connects");
                let filler = "x".repeat(450);
                for i in 0..560 {
                    let m = serde_json::json!({"type": "chat", "id": format!("{c}-{i}"),
                        "text": format!("how is pve doing {filler}")});
                    if ws.send(Message::Text(m.to_string().into())).await.is_err() {
                        break;
                    }
                }
                // Snapshots keep coming (the cluster changes): read until chat has been quiet for 3 s.
                let (mut answered, mut refused) = (0, 0);
                let mut last_chat = Instant::now();
                let give_up = Instant::now() + Duration::from_secs(60);
                while last_chat.elapsed() < Duration::from_secs(3) && Instant::now() < give_up {
                    let Ok(Some(Ok(msg))) =
                        tokio::time::timeout(Duration::from_millis(500), ws.next()).await
                    else {
                        continue;
                    };
                    if let Message::Text(t) = msg {
                        let v: serde_json::Value =
                            serde_json::from_str(t.as_str()).unwrap_or_default();
                        match v["type"].as_str() {
                            Some("chat_done") => answered += 1,
                            Some("error") => refused += 1,
                            _ => continue,
                        }
                        last_chat = Instant::now();
                    }
                }
                (answered, refused)
            }));
        }
        let mut totals = (0, 0);
        for t in tasks {
            let (a, r) = t.await.expect("client");
            totals = (totals.0 + a, totals.1 + r);
        }
        totals
    });
    let http = blocking_http(None);
    let statuses: Vec<u16> = (0..30)
        .map(|_| {
            http.post(format!("{}/api/v1/chat", demo.web))
                .bearer_auth(&demo.token)
                .json(&serde_json::json!({"text": "status of pve"}))
                .send()
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kib(pid);
    let _ = demo.child.kill();
    let _ = demo.child.wait();
    eprintln!(
        "chat flood: answered {answered}, refused {refused}, RSS {before} KiB -> {after} KiB"
    );
    assert!(
        (1..=40).contains(&answered),
        "the burst is answered, the rest is not ({answered})"
    );
    // Refusals are best-effort: a client flooding faster than it reads loses some (nothing is buffered for it).
    assert!(
        refused >= 100,
        "the excess was refused at once ({refused} of 2800)"
    );
    assert!(
        statuses.contains(&429),
        "REST shares the rate: {statuses:?}"
    );
    assert!(
        after <= before + 40 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
}

/// The demo refuses one value for both the clients' and the operator's token.
#[test]
fn the_demo_refuses_one_token_for_client_and_operator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let same = "the-same-token-0123456789abcdef";
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("JARVIS_WEB_TOKEN", same)
        .env("JARVIS_OPERATOR_TOKEN", same)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jarvis demo runs");
    let status =
        wait_with_timeout(&mut child, Duration::from_secs(20)).expect("it stops by itself");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read");
    assert!(!status.success(), "it must not start");
    assert!(err.contains("must differ"), "{err}");
}

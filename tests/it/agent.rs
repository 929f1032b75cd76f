//! The agent's offline fast path against the demo homelab, on every surface: `POST /api/v1/chat` (table-driven:
//! utterance → tool in the audit log → reply; and what must never act — negations, times, questions — leaving
//! the simulator's guests, the audit log and the approvals untouched), chat on the WebSocket (including a
//! malformed message that gets a clear error and loses nothing), the kiosk's chat panel, and `jarvis ask` from
//! the command line.

use std::time::Duration;

use futures_util::SinkExt;
use jarvis::demo::{Demo, DemoOptions};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::util;

async fn demo(dir: &std::path::Path) -> Demo {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let demo = Demo::start(DemoOptions {
        listen: loopback,
        sim_listen: loopback,
        data_dir: dir.to_path_buf(),
        poll: util::fast_poll(),
        // The tables below ask far more than a person would: no chat rate here (tested in cli::a_chat_flood…).
        limits: jarvis::web::conn::ConnLimits {
            chat_burst: 10_000,
            chat_per_minute: 10_000,
            ..Default::default()
        },
        models: dir.join("no-models"),
        cameras: false,
        voice_devices: ("default".into(), "default".into()),
        tls: jarvis::demo::DemoTls::Off,
    })
    .await
    .expect("demo starts");
    let state = demo.app.state.clone();
    assert!(
        util::eventually(Duration::from_secs(10), || {
            state
                .get()
                .cluster
                .nodes
                .iter()
                .any(|n| !n.temperatures.is_empty())
        })
        .await
    );
    demo
}

async fn ask(demo: &Demo, token: &str, text: &str) -> (u16, Value) {
    let addr = demo.app.side_port().expect("side port");
    let resp = util::http()
        .post(format!("http://{addr}/api/v1/chat"))
        .bearer_auth(token)
        .json(&json!({ "text": text }))
        .send()
        .await
        .expect("request");
    (resp.status().as_u16(), resp.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_engine_answers_through_the_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = demo(dir.path()).await;
    let client = demo.web_token.expose().to_string();
    let operator = demo.operator_token.expose().to_string();
    // (utterance, tool the answer came from, words the reply must contain)
    let table: &[(&str, Option<&str>, &str)] = &[
        (
            "What's the status of the cluster?",
            Some("cluster_status"),
            "All four nodes are online",
        ),
        ("how is pve doing", Some("node_status"), "pve is online"),
        (
            "is frigate running?",
            Some("guest_status"),
            "frigate (CT 120 on agent1) is running",
        ),
        (
            "start the frigate container",
            None,
            "frigate is already running, sir.",
        ),
        (
            "start win11-test",
            Some("start_guest"),
            "win11-test is started and running, sir.",
        ),
        (
            "reboot pve",
            Some("reboot_node"),
            "That needs your approval first: Reboot node pve",
        ),
        (
            "how hot is agent1",
            Some("node_temperatures"),
            "Temperatures: agent1",
        ),
        (
            "how much storage is left",
            Some("storage_status"),
            "The fullest is nas (shared)",
        ),
        (
            "who is home?",
            Some("who_is_home"),
            "I have no cameras to go by",
        ),
        (
            "when did John leave yesterday?",
            Some("presence_timeline"),
            "I don't know anyone called John",
        ),
        (
            "remember that the printer is on VLAN 30",
            Some("remember"),
            "Noted, sir: the printer is on VLAN 30.",
        ),
        (
            "what do you remember about the printer?",
            Some("recall"),
            "I have it noted that the printer is on VLAN 30, sir.",
        ),
        (
            "forget the note about the printer",
            Some("forget"),
            "Forgotten: the printer is on VLAN 30, sir.",
        ),
        (
            "what do you remember about the printer?",
            Some("recall"),
            "I have nothing noted about the printer, sir.",
        ),
        (
            "write me a sonnet",
            None,
            "beyond me without a language model",
        ),
    ];
    for (text, tool, needle) in table {
        let (status, reply) = ask(&demo, &client, text).await;
        assert_eq!(status, 200, "{text}: {reply}");
        let said = reply["text"].as_str().unwrap_or_default();
        assert!(
            said.contains(needle),
            "{text:?} → {said:?} (wanted {needle:?})"
        );
        assert_eq!(reply["tool"].as_str(), *tool, "{text:?} → {reply}");
    }
    // Every call went through the registry as the agent; the reboot waits for the operator.
    let audit = demo.app.store.audit(100).expect("audit");
    for tool in [
        "cluster_status",
        "node_status",
        "start_guest",
        "reboot_node",
        "node_temperatures",
    ] {
        assert!(
            audit.iter().any(|r| r.actor == "agent" && r.tool == tool),
            "{tool} audited as the agent"
        );
    }
    let pending = demo.app.tools.pending_approvals().expect("approvals");
    assert!(pending
        .iter()
        .any(|a| a.actor == "agent" && a.tool == "reboot_node"));
    assert_eq!(
        demo.app
            .state
            .get()
            .cluster
            .guest(113)
            .map(|g| g.status.clone())
            .as_deref(),
        Some("running"),
        "the start really happened"
    );

    // The kill switch: anyone may engage it; only the operator may release it.
    let (_, on) = ask(&demo, &client, "engage the kill switch").await;
    assert!(
        on["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Kill switch engaged"),
        "{on}"
    );
    assert!(demo.app.tools.kill_switch());
    let (_, refused) = ask(&demo, &client, "shut down win11-test").await;
    let said = refused["text"].as_str().unwrap_or_default();
    assert!(said.contains("kill switch is on"), "{refused}");
    let (_, nope) = ask(&demo, &client, "release the kill switch").await;
    assert!(
        nope["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Only the operator"),
        "{nope}"
    );
    assert!(demo.app.tools.kill_switch());
    let (_, off) = ask(&demo, &operator, "release the kill switch").await;
    assert!(
        off["text"]
            .as_str()
            .unwrap_or_default()
            .contains("released"),
        "{off}"
    );
    assert!(!demo.app.tools.kill_switch());

    // Bad input gets a clear error.
    let addr = demo.app.side_port().expect("side port");
    let resp = util::http()
        .post(format!("http://{addr}/api/v1/chat"))
        .bearer_auth(&client)
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let (status, empty) = ask(&demo, &client, "   ").await;
    assert_eq!(status, 400, "{empty}");
    demo.shutdown().await;
}

/// The power state of every guest in the simulator itself, by vmid.
fn sim_power(demo: &Demo) -> Vec<(u32, &'static str)> {
    demo.sim
        .shared
        .model_now()
        .guests
        .iter()
        .map(|g| (g.vmid, g.power.as_str()))
        .collect()
}

/// Tools that change a guest or a node.
const ACTING_TOOLS: &[&str] = &[
    "start_guest",
    "shutdown_guest",
    "stop_guest",
    "reboot_guest",
    "reboot_node",
    "wake_on_lan",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negations_times_and_questions_never_act() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = demo(dir.path()).await;
    let client = demo.web_token.expose().to_string();
    let before = sim_power(&demo);
    // (utterance, the intent read (the start of its name), the tool answered from, words the reply must contain)
    let table: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "don't start win11-test",
            "Declined",
            None,
            "Very well, sir — I shan't start win11-test.",
        ),
        (
            "do not start ubuntu-dev",
            "Declined",
            None,
            "I shan't start ubuntu-dev.",
        ),
        (
            "never wake node agent",
            "Declined",
            None,
            "I shan't wake agent.",
        ),
        (
            "stop win11-test from starting",
            "Declined",
            None,
            "I shan't start win11-test.",
        ),
        (
            "don’t reboot pve",
            "Declined",
            None,
            "I shan't reboot pve.",
        ),
        (
            "start backup-pbs in 10 minutes",
            "Deferred",
            None,
            "I cannot schedule anything yet, sir: nothing is set for \"in 10 minutes\", and I have not started backup-pbs.",
        ),
        (
            "reboot pve at 3am",
            "Deferred",
            None,
            "nothing is set for \"at 3am\", and I have not rebooted pve.",
        ),
        (
            "start ubuntu-dev after the backup",
            "Deferred",
            None,
            "nothing is set for \"after the backup\"",
        ),
        (
            "wake node agent tonight",
            "Deferred",
            None,
            "I have not woken agent",
        ),
        (
            "is win11-test running?",
            "GuestStatus",
            Some("guest_status"),
            "win11-test (VM 113 on pve) is stopped",
        ),
        (
            "what is ubuntu-dev doing",
            "GuestStatus",
            Some("guest_status"),
            "ubuntu-dev (VM 125 on agent1) is stopped",
        ),
    ];
    for (text, intent, tool, needle) in table {
        let (status, reply) = ask(&demo, &client, text).await;
        assert_eq!(status, 200, "{text}: {reply}");
        let said = reply["text"].as_str().unwrap_or_default();
        assert!(
            said.contains(needle),
            "{text:?} → {said:?} (wanted {needle:?})"
        );
        assert_eq!(reply["engine"], "offline", "{text:?} → {reply}");
        assert!(
            reply["intent"]
                .as_str()
                .is_some_and(|i| i.starts_with(intent)),
            "{text:?} → {reply}"
        );
        assert_eq!(reply["tool"].as_str(), *tool, "{text:?} → {reply}");
    }
    // Questions the engine leaves to a model: with none, it says so and does nothing.
    for text in ["why did backup-pbs stop?", "should I start win11-test?"] {
        let (status, reply) = ask(&demo, &client, text).await;
        assert_eq!(status, 200, "{text}: {reply}");
        assert_eq!(reply["engine"], "none", "{text:?} → {reply}");
        assert!(reply["tool"].is_null(), "{text:?} → {reply}");
    }
    // No acting tool was even asked for (refused calls are audited too), no approval waits, and after a few
    // polls the simulator's guests are as they were.
    let audit = demo.app.store.audit(200).expect("audit");
    let acted: Vec<_> = audit
        .iter()
        .filter(|r| ACTING_TOOLS.contains(&r.tool.as_str()))
        .map(|r| format!("{} {} {}", r.actor, r.tool, r.outcome))
        .collect();
    assert!(acted.is_empty(), "acting calls: {acted:?}");
    let pending = demo.app.tools.pending_approvals().expect("approvals");
    assert!(pending.is_empty(), "approvals: {pending:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sim_power(&demo), before, "the simulator's guests changed");
    for vmid in [113, 125, 133] {
        assert_eq!(
            demo.sim
                .shared
                .model_now()
                .guests
                .iter()
                .find(|g| g.vmid == vmid)
                .map(|g| g.power.as_str()),
            Some("stopped"),
            "guest {vmid}"
        );
    }

    // "now" is not a delay: the same reboot said for now goes to approval as before.
    let (_, now) = ask(&demo, &client, "reboot pve now").await;
    assert_eq!(now["tool"].as_str(), Some("reboot_node"), "{now}");
    let pending = demo.app.tools.pending_approvals().expect("approvals");
    assert!(
        pending
            .iter()
            .any(|a| a.actor == "agent" && a.tool == "reboot_node"),
        "{pending:?}"
    );
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_on_the_websocket_and_a_malformed_message_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = demo(dir.path()).await;
    let addr = demo.app.side_port().expect("side port");
    let mut req = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", demo.web_token.expose())
            .parse()
            .expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connects");
    ws.send(Message::Text("{\"type\": \"chat\", \"text\":".into()))
        .await
        .expect("send");
    let err = util::ws_until(&mut ws, Duration::from_secs(5), |m| m["type"] == "error")
        .await
        .expect("an error");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expected"),
        "{err}"
    );
    ws.send(Message::Text(
        json!({"type": "chat", "id": "q1", "text": "status report"})
            .to_string()
            .into(),
    ))
    .await
    .expect("send");
    let delta = util::ws_until(&mut ws, Duration::from_secs(5), |m| {
        m["type"] == "chat_delta"
    })
    .await
    .expect("delta");
    assert_eq!(delta["id"], "q1");
    assert!(
        delta["text"]
            .as_str()
            .unwrap_or_default()
            .contains("nodes are online"),
        "{delta}"
    );
    let done = util::ws_until(&mut ws, Duration::from_secs(5), |m| {
        m["type"] == "chat_done"
    })
    .await
    .expect("done");
    assert_eq!(done["engine"], "offline");
    // The four, on the WebSocket with no language model.
    for (id, text, tool, needle) in [
        (
            "w1",
            "what's the status of the cluster?",
            Some("cluster_status"),
            "nodes are online",
        ),
        (
            "w2",
            "start the frigate container",
            None,
            "frigate is already running",
        ),
        (
            "w3",
            "reboot pve",
            Some("reboot_node"),
            "needs your approval",
        ),
        ("w4", "who is home?", Some("who_is_home"), "no cameras"),
    ] {
        ws.send(Message::Text(
            json!({"type": "chat", "id": id, "text": text})
                .to_string()
                .into(),
        ))
        .await
        .expect("send");
        let delta = util::ws_until(&mut ws, Duration::from_secs(10), |m| {
            m["type"] == "chat_delta" && m["id"] == id
        })
        .await
        .expect("delta");
        assert!(
            delta["text"].as_str().unwrap_or_default().contains(needle),
            "{text:?} → {delta}"
        );
        let done = util::ws_until(&mut ws, Duration::from_secs(10), |m| {
            m["type"] == "chat_done" && m["id"] == id
        })
        .await
        .expect("done");
        assert_eq!(done["engine"], "offline", "{done}");
        assert_eq!(done["tool"].as_str(), tool, "{text:?} → {done}");
    }
    // The live feed goes on around the chat.
    assert!(
        util::ws_until(&mut ws, Duration::from_secs(5), |m| m["type"] == "snapshot")
            .await
            .is_some()
    );
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jarvis_ask_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = demo(dir.path()).await;
    let addr = demo.app.side_port().expect("side port");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_jarvis"))
        .args([
            "ask",
            "what's the status of the cluster?",
            "--url",
            &format!("http://{addr}"),
        ])
        .env("JARVIS_WEB_TOKEN", demo.web_token.expose())
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("All four nodes are online"), "{stdout}");
    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_jarvis"))
        .args(["ask", "status", "--url", &format!("http://{addr}")])
        .env("JARVIS_WEB_TOKEN", "a-wrong-token-of-enough-length")
        .output()
        .await
        .expect("runs");
    assert!(!bad.status.success());
    demo.shutdown().await;
}

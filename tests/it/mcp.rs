//! MCP with the official MCP Python SDK as the client (tests/peers/mcp_client.py): over streamable HTTP on the side
//! port (protocol 2026-07-28 and the legacy session mode), and over stdio with `jarvis mcp` as a separate process
//! that shares approvals with the kiosk instance through the database.

use std::process::Command;

use serde_json::Value;

use crate::util;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mcp_client.py");

fn run_client(args: &[&str]) -> Value {
    let out = Command::new(util::peer_python())
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "MCP client failed:\n{stderr}\n{stdout}"
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}):\n{stdout}\n{stderr}"))
}

/// What both transports must show.
fn check_common(out: &Value) {
    let names: Vec<&str> = out["tool_names"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.len() >= 24, "{names:?}");
    assert!(names.contains(&"stop_guest") && names.contains(&"cluster_status"));
    assert!(out["stop_description"]
        .as_str()
        .is_some_and(|d| d.contains("CONFIRMATION")));
    assert_eq!(
        (
            out["cluster_status_error"].as_bool(),
            out["cluster_nodes"].as_u64()
        ),
        (Some(false), Some(4))
    );
    assert_eq!(
        out["bad_args"]["is_error"], true,
        "a tool failure is a tool error, not a protocol error"
    );
    assert!(
        out["bad_args"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("`vmid`")),
        "{}",
        out["bad_args"]
    );
    assert_eq!(out["pending"]["is_error"], false);
    assert!(out["pending"]["text"]
        .as_str()
        .is_some_and(|t| t.contains("NOT DONE YET") && t.contains("jarvis approve")));
    assert_eq!(out["rest_approve_status"], 200);
    assert_eq!(
        out["after_approval"]["is_error"], false,
        "{}",
        out["after_approval"]
    );
    assert!(out["after_approval"]["text"]
        .as_str()
        .is_some_and(|t| t.contains("\"exitstatus\": \"OK\"")));
    assert_eq!(out["resource"]["mime"], "application/json");
    assert_eq!(out["resource"]["nodes"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_uses_the_tools_over_streamable_http() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Client confirmation opted in, so the SDK's elicitation paths are exercised.
    let mut config = util::config(&sim, dir.path());
    config.web.mcp.client_confirmation = true;
    let app = jarvis::app::App::start(&config, "test")
        .await
        .expect("app starts");
    let state = app.state.clone();
    assert!(
        util::eventually(std::time::Duration::from_secs(10), || state
            .get()
            .cluster
            .updated_at_ms
            > 0)
        .await
    );
    let base = format!("http://{}", app.side_port().expect("side port"));
    let url = format!("{base}/mcp");
    let out = tokio::task::spawn_blocking(move || {
        run_client(&["http", &url, util::WEB_TOKEN, util::OPERATOR_TOKEN, &base])
    })
    .await
    .expect("client task");
    check_common(&out);
    assert_eq!(out["protocol"], "2026-07-28");
    for (key, protocol) in [
        ("elicit_auto", "2026-07-28"),
        ("elicit_legacy", "2025-11-25"),
    ] {
        let e = &out[key];
        assert_eq!(e["protocol"], protocol, "{key}");
        assert!(
            e["asked"][0].as_str().is_some_and(|m| m.contains("Reboot")),
            "{key}: the user was asked: {e}"
        );
        assert_eq!(e["is_error"], false, "{key}: {e}");
        assert!(
            e["text"]
                .as_str()
                .is_some_and(|t| t.contains("\"exitstatus\": \"OK\"")),
            "{key}: {e}"
        );
    }
    assert_eq!(out["elicit_declined"]["is_error"], true);
    assert!(out["elicit_declined"]["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("Declined")));
    assert_eq!(out["no_token_status"], 401);
    let audit = app.store.audit(200).expect("audit");
    assert!(
        audit
            .iter()
            .any(|r| r.actor == "mcp" && r.tool == "stop_guest" && r.outcome == "ok"),
        "{audit:#?}"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_python_sdks_user_is_never_asked_and_the_call_waits_for_the_operator() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = util::app(&sim, dir.path()).await;
    util::cluster_seen(&app).await;
    let url = format!("http://{}/mcp", app.side_port().expect("side port"));
    let out = tokio::task::spawn_blocking(move || {
        run_client(&["http-operator-only", &url, util::WEB_TOKEN])
    })
    .await
    .expect("client task");
    for key in ["elicit_auto", "elicit_legacy"] {
        let e = &out[key];
        assert_eq!(
            e["asked"],
            serde_json::json!([]),
            "{key}: nobody is asked: {e}"
        );
        assert!(
            e["text"]
                .as_str()
                .is_some_and(|t| t.contains("NOT DONE YET")),
            "{key}: the call waits for the operator: {e}"
        );
    }
    let audit = app.store.audit(200).expect("audit");
    assert!(!audit
        .iter()
        .any(|r| r.actor == "mcp" && r.tool == "reboot_guest" && r.outcome == "ok"));
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_uses_jarvis_mcp_over_stdio() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // The kiosk instance (side port for the operator's approval) and `jarvis mcp` share one database.
    let app = util::app(&sim, dir.path()).await;
    let base = format!("http://{}", app.side_port().expect("side port"));
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).expect("mkdir");
    util::write_secret(&secrets.join("pve"), util::PVE_SECRET);
    util::write_secret(&secrets.join("web"), util::WEB_TOKEN);
    util::write_secret(&secrets.join("operator"), util::OPERATOR_TOKEN);
    let config = dir.path().join("jarvis.toml");
    std::fs::write(
        &config,
        format!(
            "[pve]\nurl = \"{url}\"\ntoken_id = \"{id}\"\ntoken_secret_file = \"secrets/pve\"\nfingerprint = \"{fp}\"\n\n\
             [poll]\nresources_ms = 250\n\n[web]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"secrets/web\"\n\
             operator_token_file = \"secrets/operator\"\n\n[store]\npath = \"{db}\"\n",
            url = sim.url(),
            id = jarvis::sim::DEMO_TOKEN_ID,
            fp = sim.identity.fingerprint(),
            db = dir.path().join("jarvis.db").display(),
        ),
    )
    .expect("write config");
    let bin = env!("CARGO_BIN_EXE_jarvis").to_string();
    let cfg = config.display().to_string();
    let out = tokio::task::spawn_blocking(move || {
        run_client(&["stdio", &bin, &cfg, util::OPERATOR_TOKEN, &base])
    })
    .await
    .expect("client task");
    check_common(&out);
    app.shutdown().await;
    sim.stop().await;
}

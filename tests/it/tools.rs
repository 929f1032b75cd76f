//! The tool registry through the running app: listing, validation errors that name the field, tiers, approvals
//! (single use, bound to call and actor, expiring, operator-only), the persisted kill switch, the audit log, and
//! the cluster, power, snapshot and wake-on-LAN tools against the simulator.

use std::sync::Arc;
use std::time::Duration;

use jarvis::app::App;
use jarvis::bus::Event;
use jarvis::sim::Simulator;
use jarvis::tools::{Outcome, Registry, ToolContext, ToolError, WolTarget};
use serde_json::{json, Value};

use crate::util;

const WAIT: Duration = Duration::from_secs(10);

async fn ready(sim: &Simulator, dir: &std::path::Path) -> App {
    let app = util::app(sim, dir).await;
    let state = app.state.clone();
    assert!(
        util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await,
        "first poll"
    );
    app
}

fn done(o: Result<Outcome, ToolError>) -> Value {
    match o {
        Ok(Outcome::Done { result }) => result,
        other => panic!("expected a result, got {other:?}"),
    }
}

fn pending(o: Result<Outcome, ToolError>) -> jarvis::tools::gate::Approval {
    match o {
        Ok(Outcome::PendingApproval {
            approval,
            how_to_approve,
        }) => {
            assert!(how_to_approve.contains(&approval.id), "{how_to_approve}");
            approval
        }
        other => panic!("expected a pending approval, got {other:?}"),
    }
}

#[tokio::test]
async fn at_least_twenty_four_tools_are_listed_and_tier_two_says_so() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ready(&sim, dir.path()).await;
    let tools = app.tools.list();
    assert!(tools.len() >= 24, "{} tools", tools.len());
    for t in &tools {
        assert!(t.tier <= 2);
        assert_eq!(t.input_schema["type"], "object", "{}", t.name);
        assert!(
            t.description.len() > 30,
            "{} needs a description an LLM can use",
            t.name
        );
        assert_eq!(
            t.tier == 2,
            t.description.contains("CONFIRMATION"),
            "{}",
            t.name
        );
    }
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn read_tools_answer_from_the_cluster() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ready(&sim, dir.path()).await;
    let t = &app.tools;
    let status = done(t.invoke("test", "cluster_status", json!({})).await);
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(4));
    assert_eq!(status["guests"]["total"], 18);
    let lxc_on_agent = done(
        t.invoke(
            "test",
            "list_guests",
            json!({"node": "agent", "kind": "lxc"}),
        )
        .await,
    );
    assert_eq!(lxc_on_agent["count"], 4);
    let frigate = done(t.invoke("test", "guest_status", json!({"vmid": 120})).await);
    assert_eq!(
        (frigate["name"].as_str(), frigate["node"].as_str()),
        (Some("frigate"), Some("agent1"))
    );
    let node = done(
        t.invoke("test", "node_status", json!({"node": "PVE"}))
            .await,
    );
    assert_eq!(node["name"], "pve", "node names match without case");
    let nas = done(
        t.invoke(
            "test",
            "storage_status",
            json!({"storage": "nas", "node": "Home"}),
        )
        .await,
    );
    assert!(nas["storages"][0]["used_pct"]
        .as_f64()
        .is_some_and(|p| p > 50.0));
    let disks = done(t.invoke("test", "disk_health", json!({})).await);
    assert!(disks["healthy"].as_array().is_some_and(|d| d.len() >= 8));
    match t.invoke("test", "guest_status", json!({"vmid": 999})).await {
        Err(ToolError::NotFound(m)) => {
            assert!(m.contains("no guest with vmid 999") && m.contains("frigate"))
        }
        other => panic!("expected not found, got {other:?}"),
    }
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn bad_arguments_name_the_field_and_unknown_or_huge_calls_are_refused() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ready(&sim, dir.path()).await;
    let t = &app.tools;
    for (args, field) in [
        (json!({}), "vmid"),
        (json!({"vmid": "one-oh-one"}), "vmid"),
        (json!({"vmid": 101, "force": true}), "force"),
        (json!([1, 2]), ""),
    ] {
        match t.invoke("test", "guest_status", args.clone()).await {
            Err(ToolError::InvalidArguments { field: f, .. }) => assert_eq!(f, field, "{args}"),
            other => panic!("{args}: expected invalid arguments, got {other:?}"),
        }
    }
    assert!(matches!(
        t.invoke("test", "destroy_everything", json!({})).await,
        Err(ToolError::UnknownTool(_))
    ));
    let huge = json!({"node": "x".repeat(20_000)});
    assert!(matches!(
        t.invoke("test", "list_guests", huge).await,
        Err(ToolError::TooLarge { .. })
    ));
    let audit = app.store.audit(10).expect("audit");
    assert!(
        audit.iter().filter(|r| r.outcome == "invalid").count() >= 6,
        "refused calls are audited too"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn routine_actions_run_are_audited_and_published() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ready(&sim, dir.path()).await;
    let mut events = app.bus.subscribe();
    let r = done(
        app.tools
            .invoke("agent", "start_guest", json!({"vmid": 113}))
            .await,
    );
    assert_eq!(
        (r["exitstatus"].as_str(), r["node"].as_str()),
        (Some("OK"), Some("pve"))
    );
    let again = app
        .tools
        .invoke("agent", "start_guest", json!({"vmid": 113}))
        .await;
    assert!(
        matches!(&again, Err(ToolError::Failed(m)) if m.contains("already running")),
        "{again:?}"
    );
    let audit = app.store.audit(5).expect("audit");
    let last_four: Vec<(&str, &str, &str)> = audit
        .iter()
        .rev()
        .take(4)
        .map(|r| (r.actor.as_str(), r.tool.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        last_four,
        vec![
            ("agent", "start_guest", "error"),
            ("agent", "start_guest", "started"),
            ("agent", "start_guest", "ok"),
            ("agent", "start_guest", "started"),
        ],
        "an action is audited before it runs, and again with its outcome"
    );
    assert_eq!(audit.last().map(|r| r.args_digest.len()), Some(64));
    let mut saw = false;
    while let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
        if matches!(&s.event, Event::ToolCalled { tool, outcome, .. } if tool == "start_guest" && outcome == "ok")
        {
            saw = true;
            break;
        }
    }
    assert!(saw, "a ToolCalled event was published");
    app.shutdown().await;
    sim.stop().await;
}

/// The audit log fails closed: with the database write-locked by another process, a routine action is refused
/// (after the store's busy timeout) and nothing happens to the guest; reads still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_that_cannot_be_audited_does_not_run() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ready(&sim, dir.path()).await;
    let locker = rusqlite::Connection::open(app.store.path()).expect("second connection");
    locker
        .execute_batch("BEGIN EXCLUSIVE;")
        .expect("write lock");
    let refused = app
        .tools
        .invoke("agent", "start_guest", json!({"vmid": 113}))
        .await;
    assert!(
        matches!(&refused, Err(ToolError::Unaudited(_))),
        "{refused:?}"
    );
    let status = done(
        app.tools
            .invoke("agent", "guest_status", json!({"vmid": 113}))
            .await,
    );
    assert_eq!(status["status"], "stopped", "the guest was not started");
    locker.execute_batch("ROLLBACK;").expect("unlock");
    drop(locker);
    let r = done(
        app.tools
            .invoke("agent", "start_guest", json!({"vmid": 113}))
            .await,
    );
    assert_eq!(r["exitstatus"], "OK", "with the log writable again it runs");
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn tier_two_needs_a_single_use_operator_approval_for_the_exact_call() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ready(&sim, dir.path()).await;
    let t = &app.tools;
    let p = pending(
        t.invoke("mcp", "shutdown_guest", json!({"vmid": 111}))
            .await,
    );
    assert_eq!(
        p.summary,
        "Shut down container 111 'jellyfin' on node pve (now running)"
    );
    assert_eq!(t.pending_approvals().expect("approvals").len(), 1);
    // Not yet approved: still pending, the same request.
    assert_eq!(
        pending(
            t.invoke("mcp", "shutdown_guest", json!({"vmid": 111}))
                .await
        )
        .id,
        p.id
    );
    t.decide(&p.id, true).expect("operator approves");
    // Another actor, or other arguments, cannot use it.
    pending(
        t.invoke("agent", "shutdown_guest", json!({"vmid": 111}))
            .await,
    );
    pending(
        t.invoke("mcp", "shutdown_guest", json!({"vmid": 112}))
            .await,
    );
    let r = done(
        t.invoke("mcp", "shutdown_guest", json!({"vmid": 111}))
            .await,
    );
    assert_eq!(r["exitstatus"], "OK");
    // Used once: the same call needs a new approval.
    pending(
        t.invoke("mcp", "shutdown_guest", json!({"vmid": 111}))
            .await,
    );
    // Nobody is asked to approve an action on something that is not there.
    let before = t.pending_approvals().expect("approvals").len();
    match t.invoke("mcp", "stop_guest", json!({"vmid": 999})).await {
        Err(ToolError::NotFound(m)) => assert!(m.contains("999"), "{m}"),
        other => panic!("expected not found, got {other:?}"),
    }
    assert!(matches!(
        t.invoke("mcp", "reboot_node", json!({"node": "pve2"}))
            .await,
        Err(ToolError::NotFound(_))
    ));
    assert_eq!(
        t.pending_approvals().expect("approvals").len(),
        before,
        "no approval card for a missing target"
    );
    // Denied is final.
    let q = pending(t.invoke("mcp", "reboot_guest", json!({"vmid": 120})).await);
    t.decide(&q.id, false).expect("deny");
    assert!(t.decide(&q.id, true).is_err());
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn approvals_expire() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(jarvis::store::Store::open(&dir.path().join("j.db")).expect("store"));
    let state = jarvis::state::StateHandle::new(jarvis::state::World::default());
    let bus = jarvis::bus::Bus::new(64);
    // One poll fills the view the gate checks targets against.
    jarvis::cluster::poller::Poller::new(
        util::client(&sim),
        util::fast_poll(),
        bus.clone(),
        state.clone(),
    )
    .poll_once()
    .await;
    let ctx = ToolContext {
        pve: util::client(&sim),
        bus,
        state,
        settings: Arc::new(jarvis::tools::ToolSettings {
            wol: vec![],
            follow_limit: WAIT,
            docker_host: None,
            files: Default::default(),
            projects: Default::default(),
            protected: Vec::new(),
            faces: Default::default(),
        }),
        executor: None,
        live: None,
        store: None,
        frigate: None,
        frames: Default::default(),
    };
    let mut reg = Registry::with_all_tools(ctx, store).expect("registry");
    reg.set_approval_ttl(Duration::from_millis(300));
    let p = pending(
        reg.invoke("mcp", "reboot_node", json!({"node": "agent"}))
            .await,
    );
    reg.decide(&p.id, true).expect("approve");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = pending(
        reg.invoke("mcp", "reboot_node", json!({"node": "agent"}))
            .await,
    );
    assert_ne!(again.id, p.id, "the expired approval was not used");
    sim.stop().await;
}

#[tokio::test]
async fn the_kill_switch_refuses_actions_and_survives_a_restart() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ready(&sim, dir.path()).await;
    app.tools.set_kill_switch(true).expect("on");
    for (tool, args) in [
        ("start_guest", json!({"vmid": 113})),
        ("stop_guest", json!({"vmid": 101})),
        ("wake_on_lan", json!({"node": "pve"})),
    ] {
        let r = app.tools.invoke("autopilot", tool, args).await;
        assert!(matches!(&r, Err(ToolError::KillSwitch)), "{tool}: {r:?}");
    }
    assert!(
        app.tools
            .invoke("autopilot", "cluster_status", json!({}))
            .await
            .is_ok(),
        "reads still work"
    );
    assert!(ToolError::KillSwitch
        .to_string()
        .contains("kill switch is on"));
    app.shutdown().await;
    let app = ready(&sim, dir.path()).await;
    assert!(app.tools.kill_switch(), "persisted");
    app.tools.set_kill_switch(false).expect("off");
    assert!(app
        .tools
        .invoke("autopilot", "start_guest", json!({"vmid": 113}))
        .await
        .is_ok());
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn snapshots_are_listed_created_rolled_back_and_deleted() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ready(&sim, dir.path()).await;
    let t = &app.tools;
    let r = done(
        t.invoke(
            "agent",
            "create_snapshot",
            json!({"vmid": 101, "name": "pre-upgrade", "description": "before 6.9"}),
        )
        .await,
    );
    assert_eq!(r["exitstatus"], "OK");
    let list = done(
        t.invoke("agent", "list_snapshots", json!({"vmid": 101}))
            .await,
    );
    let names: Vec<&str> = list["snapshots"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["pre-upgrade", "current"]);
    match t
        .invoke(
            "agent",
            "create_snapshot",
            json!({"vmid": 101, "name": "9lives"}),
        )
        .await
    {
        Err(ToolError::InvalidArguments { field, .. }) => assert_eq!(field, "name"),
        other => panic!("expected a bad name, got {other:?}"),
    }
    let p = pending(
        t.invoke(
            "agent",
            "rollback_snapshot",
            json!({"vmid": 101, "name": "pre-upgrade"}),
        )
        .await,
    );
    assert!(
        p.summary.contains("losing everything since"),
        "{}",
        p.summary
    );
    t.decide(&p.id, true).expect("approve");
    assert_eq!(
        done(
            t.invoke(
                "agent",
                "rollback_snapshot",
                json!({"vmid": 101, "name": "pre-upgrade"})
            )
            .await
        )["exitstatus"],
        "OK"
    );
    let p = pending(
        t.invoke(
            "agent",
            "delete_snapshot",
            json!({"vmid": 101, "name": "pre-upgrade"}),
        )
        .await,
    );
    t.decide(&p.id, true).expect("approve");
    done(
        t.invoke(
            "agent",
            "delete_snapshot",
            json!({"vmid": 101, "name": "pre-upgrade"}),
        )
        .await,
    );
    let list = done(
        t.invoke("agent", "list_snapshots", json!({"vmid": 101}))
            .await,
    );
    assert_eq!(list["snapshots"].as_array().map(Vec::len), Some(1));
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn a_node_reboot_needs_approval_and_takes_the_node_down() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ready(&sim, dir.path()).await;
    let mut events = app.bus.subscribe();
    let p = pending(
        app.tools
            .invoke("kiosk", "reboot_node", json!({"node": "agent"}))
            .await,
    );
    assert!(
        p.summary
            .starts_with("Reboot node agent: its 3 running guest(s) go down"),
        "{}",
        p.summary
    );
    app.tools.decide(&p.id, true).expect("approve");
    done(
        app.tools
            .invoke("kiosk", "reboot_node", json!({"node": "agent"}))
            .await,
    );
    let mut offline = false;
    while let Ok(Ok(s)) = tokio::time::timeout(WAIT, events.recv()).await {
        if s.event
            == (Event::NodeOffline {
                node: "agent".into(),
            })
        {
            offline = true;
            break;
        }
    }
    assert!(offline, "the poller saw the node go down");
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn wake_on_lan_sends_a_magic_packet() {
    let sim = util::sim().await;
    let listener = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = util::config(&sim, dir.path());
    let mac = [0x3c, 0xec, 0xef, 0x12, 0x34, 0x56];
    config.tools.wol = vec![WolTarget {
        node: "pve".into(),
        mac,
        broadcast: listener.local_addr().expect("addr"),
    }];
    let app = App::start(&config, "test").await.expect("app");
    let state = app.state.clone();
    assert!(
        util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await,
        "first poll"
    );
    let r = done(
        app.tools
            .invoke("voice", "wake_on_lan", json!({"node": "pve"}))
            .await,
    );
    assert_eq!(r["bytes"], 102);
    let mut buf = [0u8; 256];
    let (n, _) = tokio::time::timeout(WAIT, listener.recv_from(&mut buf))
        .await
        .expect("packet")
        .expect("recv");
    assert_eq!(n, 102);
    assert!(buf[..6].iter().all(|b| *b == 0xFF));
    assert!(buf[6..102].chunks(6).all(|c| c == mac));
    assert!(matches!(
        app.tools
            .invoke("voice", "wake_on_lan", json!({"node": "agent"}))
            .await,
        Err(ToolError::NotFound(_))
    ));
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn the_side_port_invokes_tools_and_only_the_operator_approves() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = ready(&sim, dir.path()).await;
    let http = util::http();
    let base = format!("http://{}", app.side_port().expect("side port"));
    let call = |token: &'static str, path: String, body: Value| {
        let http = http.clone();
        async move {
            let resp = http
                .post(path)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or_else(|_| panic!("{status}: {text}")),
            )
        }
    };
    let (status, body) = call(
        util::WEB_TOKEN,
        format!("{base}/api/v1/tools/cluster_status"),
        json!({}),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("done")));
    let (status, body) = call(
        util::WEB_TOKEN,
        format!("{base}/api/v1/tools/guest_status"),
        json!({"vmid": "x"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str(), body["field"].as_str()),
        (400, Some("invalid_arguments"), Some("vmid"))
    );
    let (status, body) = call(
        util::WEB_TOKEN,
        format!("{base}/api/v1/tools/stop_guest"),
        json!({"vmid": 112}),
    )
    .await;
    assert_eq!(status, 202);
    let id = body["approval"]["id"].as_str().expect("id").to_string();
    let (status, body) = call(
        util::WEB_TOKEN,
        format!("{base}/api/v1/approvals/{id}"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("operator_only")),
        "the asking client cannot approve"
    );
    let (status, _) = call(
        util::OPERATOR_TOKEN,
        format!("{base}/api/v1/approvals/{id}"),
        json!({"approve": true}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        util::WEB_TOKEN,
        format!("{base}/api/v1/tools/stop_guest"),
        json!({"vmid": 112}),
    )
    .await;
    assert_eq!(
        (status, body["result"]["exitstatus"].as_str()),
        (200, Some("OK"))
    );

    let put = |token: &'static str, on: bool| {
        let http = http.clone();
        let url = format!("{base}/api/v1/killswitch");
        async move {
            http.put(url)
                .bearer_auth(token)
                .json(&json!({"on": on}))
                .send()
                .await
                .expect("put")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        put(util::WEB_TOKEN, true).await,
        200,
        "anyone may pull the brake"
    );
    let (status, body) = call(
        util::WEB_TOKEN,
        format!("{base}/api/v1/tools/start_guest"),
        json!({"vmid": 112}),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("kill_switch")));
    assert_eq!(
        put(util::WEB_TOKEN, false).await,
        403,
        "only the operator releases it"
    );
    assert_eq!(put(util::OPERATOR_TOKEN, false).await, 200);
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn docker_and_commands_work_in_the_demo_homelab() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = Arc::new(jarvis::sim::executor::DemoExecutor::new(sim.shared.clone()));
    let app = App::start_full(&util::config(&sim, dir.path()), "test", true, Some(exec))
        .await
        .expect("app");
    let state = app.state.clone();
    assert!(
        util::eventually(WAIT, || state
            .get()
            .cluster
            .nodes
            .iter()
            .filter(|n| !n.temperatures.is_empty())
            .count()
            == 4)
        .await,
        "the demo shows temperatures"
    );
    let t = &app.tools;
    let list = done(t.invoke("agent", "docker_list", json!({})).await);
    let names: Vec<&str> = list["containers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"grafana") && names.contains(&"traefik"),
        "{names:?}"
    );
    let logs = done(
        t.invoke(
            "agent",
            "docker_logs",
            json!({"name": "grafana", "lines": 5}),
        )
        .await,
    );
    assert_eq!(logs["output"].as_str().map(|o| o.lines().count()), Some(5));
    done(
        t.invoke("agent", "docker_restart", json!({"name": "grafana"}))
            .await,
    );
    let p = pending(
        t.invoke("agent", "docker_stop", json!({"name": "grafana"}))
            .await,
    );
    assert_eq!(p.summary, "Stop container grafana on the Docker VM");
    t.decide(&p.id, true).expect("approve");
    done(
        t.invoke("agent", "docker_stop", json!({"name": "grafana"}))
            .await,
    );
    let list = done(t.invoke("agent", "docker_list", json!({})).await);
    let grafana = list["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "grafana"))
        .cloned()
        .expect("grafana");
    assert_eq!(grafana["state"], "exited");
    match t
        .invoke("agent", "docker_restart", json!({"name": "a;reboot"}))
        .await
    {
        Err(ToolError::InvalidArguments { field, .. }) => assert_eq!(field, "name"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(t.invoke("agent", "docker_logs", json!({"name": "nope"})).await, Err(ToolError::Failed(m)) if m.contains("No such container"))
    );
    let up = done(
        t.invoke(
            "agent",
            "run_command",
            json!({"host": "agent1", "command": "uptime"}),
        )
        .await,
    );
    assert!(up["stdout"]
        .as_str()
        .is_some_and(|s| s.contains("load average")));
    let temps = done(t.invoke("agent", "node_temperatures", json!({})).await);
    assert_eq!(temps.as_object().map(|o| o.len()), Some(4));
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn projects_are_listed_browsed_read_and_searched() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = util::app(&sim, dir.path()).await;
    let t = &app.tools;
    let list = done(t.invoke("agent", "list_projects", json!({})).await);
    assert_eq!(list["projects"][0]["name"], "jarvis");
    let tree = tree_entries(t, "jarvis", 1).await;
    let entries: Vec<&str> = tree.iter().map(String::as_str).collect();
    assert!(
        entries.contains(&"Cargo.toml") && entries.contains(&"src/"),
        "{entries:?}"
    );
    assert!(
        !entries.contains(&"target/"),
        ".gitignore is honoured: {entries:?}"
    );
    let file = done(
        t.invoke(
            "agent",
            "read_project_file",
            json!({"project": "jarvis", "path": "Cargo.toml"}),
        )
        .await,
    );
    assert!(file["text"]
        .as_str()
        .is_some_and(|s| s.contains("name = \"jarvis\"")));
    let escape = t
        .invoke(
            "agent",
            "read_project_file",
            json!({"project": "jarvis", "path": "../../../../etc/passwd"}),
        )
        .await;
    assert!(
        matches!(&escape, Err(ToolError::Failed(m)) if m.contains("outside the project")),
        "{escape:?}"
    );
    let found = done(
        t.invoke(
            "agent",
            "search_project",
            json!({"project": "jarvis", "pattern": "fn install_crypto_provider"}),
        )
        .await,
    );
    assert!(
        found["matches"]
            .as_array()
            .is_some_and(|m| m.iter().any(|h| h["path"] == "src/tls.rs")),
        "{found}"
    );
    match t
        .invoke(
            "agent",
            "search_project",
            json!({"project": "jarvis", "pattern": "(unclosed"}),
        )
        .await
    {
        Err(ToolError::InvalidArguments { field, .. }) => assert_eq!(field, "pattern"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        t.invoke("agent", "project_tree", json!({"project": "nope"}))
            .await,
        Err(ToolError::NotFound(_))
    ));
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn project_tools_never_show_git_internals_or_key_files() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("homelab");
    for d in [".git/refs", ".ssh", "certs", "docs"] {
        std::fs::create_dir_all(project.join(d)).expect("mkdir");
    }
    let secret_files = [
        ".git/config",
        ".git/refs/needle",
        ".ssh/authorized_keys",
        ".ssh/config",
        "id_rsa",
        "id_ed25519",
        "id_ed25519.pub",
        "certs/server.pem",
        "certs/server.key",
        "certs/client.p12",
        "certs/CLIENT.PFX",
        ".env",
        ".env.local",
        "docs/passwords.kdbx",
    ];
    for f in secret_files {
        std::fs::write(project.join(f), "needle: secret\n").expect("write");
    }
    std::fs::write(project.join("docs/notes.md"), "needle: fine\n").expect("write");
    std::os::unix::fs::symlink(
        project.join(".git/config"),
        project.join("docs/innocent.md"),
    )
    .expect("symlink");
    let mut config = util::config(&sim, dir.path());
    config.tools.projects = [("homelab".to_string(), project.clone())]
        .into_iter()
        .collect();
    let app = App::start(&config, "test").await.expect("app starts");
    let t = &app.tools;
    let read = |path: &str| {
        t.invoke(
            "agent",
            "read_project_file",
            json!({"project": "homelab", "path": path}),
        )
    };
    assert_eq!(done(read("docs/notes.md").await)["text"], "needle: fine\n");
    for f in secret_files
        .iter()
        .chain(&["docs/innocent.md", "./.git/../.git/config"])
    {
        let r = read(f).await;
        assert!(
            matches!(&r, Err(ToolError::Failed(m)) if m.contains("refused")),
            "{f}: {r:?}"
        );
    }
    for path in [".git", ".git/refs", ".ssh"] {
        let r = t
            .invoke(
                "agent",
                "project_tree",
                json!({"project": "homelab", "path": path}),
            )
            .await;
        assert!(
            matches!(&r, Err(ToolError::Failed(m)) if m.contains("refused")),
            "{path}: {r:?}"
        );
    }
    let tree = tree_entries(t, "homelab", 8).await;
    let entries: Vec<&str> = tree.iter().map(String::as_str).collect();
    assert!(entries.contains(&"docs/notes.md"), "{entries:?}");
    for f in secret_files {
        assert!(!entries.contains(&f), "{f} listed: {entries:?}");
    }
    assert!(
        !entries
            .iter()
            .any(|e| e.starts_with(".git") || e.starts_with(".ssh")),
        "{entries:?}"
    );
    let found = done(
        t.invoke(
            "agent",
            "search_project",
            json!({"project": "homelab", "pattern": "needle"}),
        )
        .await,
    );
    let paths: Vec<&str> = found["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .filter_map(|m| m["path"].as_str())
        .collect();
    assert_eq!(paths, ["docs/notes.md"], "{found}");
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn tasks_suspend_resume_and_copies_work_through_their_tools() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = Arc::new(jarvis::sim::executor::DemoExecutor::new(sim.shared.clone()));
    let app = App::start_full(&util::config(&sim, dir.path()), "test", true, Some(exec))
        .await
        .expect("app");
    let state = app.state.clone();
    assert!(util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await);
    let t = &app.tools;
    let paused = done(
        t.invoke("voice", "suspend_guest", json!({"vmid": 123}))
            .await,
    );
    assert_eq!(
        (paused["action"].as_str(), paused["exitstatus"].as_str()),
        (Some("suspend"), Some("OK"))
    );
    let upid = paused["upid"].as_str().expect("upid").to_string();
    let resumed = done(
        t.invoke("voice", "resume_guest", json!({"vmid": 123}))
            .await,
    );
    assert_eq!(resumed["exitstatus"], "OK");
    let status = done(
        t.invoke("voice", "task_status", json!({"upid": upid}))
            .await,
    );
    assert_eq!(
        (
            status["status"].as_str(),
            status["exitstatus"].as_str(),
            status["type"].as_str()
        ),
        (Some("stopped"), Some("OK"), Some("qmsuspend"))
    );
    assert!(matches!(
        t.invoke("voice", "task_status", json!({"upid": "UPID:broken"}))
            .await,
        Err(ToolError::InvalidArguments { .. })
    ));
    // A failure shows up in recent tasks (errors only).
    let again = t
        .invoke("voice", "resume_guest", json!({"vmid": 123}))
        .await;
    assert!(
        matches!(&again, Err(ToolError::Failed(m)) if m.contains("not paused")),
        "{again:?}"
    );
    let recent = done(
        t.invoke(
            "voice",
            "recent_tasks",
            json!({"node": "agent1", "errors_only": true}),
        )
        .await,
    );
    assert!(
        recent["tasks"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["type"] == "qmresume")),
        "{recent}"
    );
    let all = done(t.invoke("voice", "recent_tasks", json!({"limit": 2})).await);
    assert_eq!(all["tasks"].as_array().map(Vec::len), Some(2));
    let copied = done(t.invoke("agent", "copy_between_nodes", json!({"from_host": "pve", "from_path": "/var/lib/vz/template/iso/debian.iso", "to_host": "agent1", "to_path": "/var/lib/vz/template/iso/debian.iso"})).await);
    assert_eq!(copied["to"], "agent1:/var/lib/vz/template/iso/debian.iso");
    match t.invoke("agent", "copy_between_nodes", json!({"from_host": "pve", "from_path": "/etc/../etc/shadow", "to_host": "agent1", "to_path": "/tmp/x"})).await {
        Err(ToolError::InvalidArguments { field, .. }) => assert_eq!(field, "from_path"),
        other => panic!("{other:?}"),
    }
    // Outside the copy destinations the copy writes as root wherever it is told: that is the operator's call.
    for to_path in [
        "/root/.ssh/authorized_keys",
        "/var/lib/vz/template/iso-evil/x",
        "/var/lib/vz/template/iso",
    ] {
        let args = json!({"from_host": "pve", "from_path": "/etc/hostname", "to_host": "agent1", "to_path": to_path});
        match t.invoke("mcp", "copy_between_nodes", args).await {
            Ok(Outcome::PendingApproval { approval, .. }) => assert!(
                approval
                    .summary
                    .starts_with(&format!("Write agent1:{to_path} ")),
                "the card names the destination: {}",
                approval.summary
            ),
            other => panic!("{to_path}: {other:?}"),
        }
    }
    app.shutdown().await;
    sim.stop().await;
}

/// A forbidden tool, as a later family might declare one by mistake: the gate must hide and refuse it.
#[tokio::test]
async fn tier_three_is_never_listed_and_never_run() {
    #[derive(serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
    struct NoArgs {}
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(jarvis::store::Store::open(&dir.path().join("j.db")).expect("store"));
    let ctx = ToolContext {
        pve: util::client(&sim),
        bus: jarvis::bus::Bus::new(16),
        state: jarvis::state::StateHandle::new(jarvis::state::World::default()),
        settings: Arc::new(jarvis::tools::ToolSettings::default()),
        executor: None,
        live: None,
        store: None,
        frigate: None,
        frames: Default::default(),
    };
    let mut reg = Registry::new(ctx, store).expect("registry");
    static RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    reg.register(jarvis::tools::typed::TypedTool::<NoArgs>::new(
        "wipe_storage",
        jarvis::tools::Tier::Forbidden,
        "Wipes a storage.",
        |_, _| "Wipe".into(),
        |_, _| {
            Box::pin(async {
                RAN.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(json!({}))
            })
        },
    ));
    assert!(
        reg.list().iter().all(|t| t.name != "wipe_storage"),
        "never listed"
    );
    assert!(matches!(
        reg.invoke("operator", "wipe_storage", json!({})).await,
        Err(ToolError::UnknownTool(_))
    ));
    assert!(!RAN.load(std::sync::atomic::Ordering::SeqCst), "never run");
    sim.stop().await;
}

/// The entries `project_tree` lists for `project` down to `depth`.
async fn tree_entries(t: &Registry, project: &str, depth: u32) -> Vec<String> {
    let tree = done(
        t.invoke(
            "agent",
            "project_tree",
            json!({"project": project, "depth": depth}),
        )
        .await,
    );
    tree["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

//! The PVE client against the real simulator over HTTPS: every typed call, power actions followed to completion,
//! and every failure an operator can meet (unreachable, slow, 500, garbage, wrong token, wrong certificate).

use std::time::Duration;

use jarvis::cluster::client::{PowerAction, PveClient, PveError};
use jarvis::cluster::model::GuestKind;
use jarvis::sim::api::Faults;
use jarvis::tls::{Fingerprint, Trust};

use crate::util;

#[tokio::test]
async fn typed_calls_return_the_demo_homelab() {
    let sim = util::sim().await;
    let c = util::client(&sim);
    assert_eq!(c.version().await.expect("version").release, "8.4");
    let status = c.cluster_status().await.expect("cluster status");
    assert!(status
        .iter()
        .any(|i| i.kind == "cluster" && i.quorate == Some(true)));
    let res = c.cluster_resources(None).await.expect("resources");
    let nodes: Vec<&str> = res
        .iter()
        .filter(|r| r.kind == "node")
        .filter_map(|r| r.node.as_deref())
        .collect();
    assert_eq!(nodes, ["Home", "pve", "agent1", "agent"]);
    let vms = c.cluster_resources(Some("vm")).await.expect("vms");
    assert!(vms.iter().all(|r| r.kind == "qemu" || r.kind == "lxc"));
    assert!((12..=20).contains(&vms.len()));
    let ns = c.node_status("agent1").await.expect("node status");
    assert_eq!(ns.cpuinfo.cpus, 14);
    assert_eq!(ns.loadavg.len(), 3);
    let disks = c.node_disks("pve").await.expect("disks");
    assert!(disks
        .iter()
        .any(|d| d.health.as_deref() == Some("PASSED") && d.wearout == Some(88)));
    assert!(disks
        .iter()
        .any(|d| d.disk_type.as_deref() == Some("hdd") && d.wearout.is_none()));
    let frigate = c
        .guest_status("agent1", GuestKind::Lxc, 120)
        .await
        .expect("guest status");
    assert_eq!(
        (frigate.name.as_deref(), frigate.status.as_str()),
        (Some("frigate"), "running")
    );
    let nas = c.storage_status("Home", "nas").await.expect("storage");
    assert_eq!(nas.shared, Some(true));
    assert!(nas.total.unwrap_or(0) > 4 * (1 << 40));
    sim.stop().await;
}

#[tokio::test]
async fn a_power_action_returns_a_upid_and_is_followed_to_completion() {
    let sim = util::sim().await;
    let c = util::client(&sim);
    let upid = c
        .power("pve", GuestKind::Qemu, 113, PowerAction::Start)
        .await
        .expect("start");
    assert_eq!(
        (
            upid.node.as_str(),
            upid.task_type.as_str(),
            upid.id.as_str()
        ),
        ("pve", "qmstart", "113")
    );
    assert_eq!(upid.user, jarvis::sim::DEMO_TOKEN_ID);
    let running = c.task_status(&upid).await.expect("task status");
    assert!(
        running.is_running(),
        "the task takes a moment, as on real PVE"
    );
    let done = c
        .follow_task(&upid, Duration::from_millis(50), Duration::from_secs(10))
        .await
        .expect("follow");
    assert_eq!(done.exitstatus.as_deref(), Some("OK"));
    let g = c
        .guest_status("pve", GuestKind::Qemu, 113)
        .await
        .expect("guest");
    assert_eq!(g.status, "running");

    // Starting it again fails inside the task, with PVE's message, and shows up as a failed task.
    let again = c
        .power("pve", GuestKind::Qemu, 113, PowerAction::Start)
        .await
        .expect("second start accepted");
    let failed = c
        .follow_task(&again, Duration::from_millis(50), Duration::from_secs(10))
        .await
        .expect("follow");
    assert_eq!(failed.exitstatus.as_deref(), Some("VM 113 already running"));
    let errors = c.failed_tasks("pve", 0).await.expect("task list");
    assert!(errors.iter().any(|t| t.upid == again.to_string()));
    sim.stop().await;
}

#[tokio::test]
async fn pve_errors_carry_pves_own_message() {
    let sim = util::sim().await;
    let c = util::client(&sim);
    match c.guest_status("pve", GuestKind::Qemu, 999).await {
        Err(PveError::Http {
            status: 500,
            message,
            ..
        }) => assert!(message.contains("does not exist"), "{message}"),
        other => panic!("expected HTTP 500, got {other:?}"),
    }
    sim.shared
        .model_now()
        .set_node_online("agent", false, jarvis::time::now_ms());
    match c.node_status("agent").await {
        Err(PveError::Http { status: 595, .. }) => {}
        other => panic!("expected 595 for an offline node, got {other:?}"),
    }
    sim.stop().await;
}

#[tokio::test]
async fn unreachable_pve_is_reported_as_such() {
    let sim = util::sim().await;
    let mut ep = util::endpoint(&sim);
    sim.stop().await;
    ep.timeout = Duration::from_secs(2);
    let c = PveClient::new(&ep).expect("client");
    let err = c.version().await.expect_err("nobody listens");
    assert!(matches!(err, PveError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.category(), "unreachable");
}

#[tokio::test]
async fn a_slow_pve_times_out() {
    let sim = util::sim().await;
    sim.shared.set_faults(Faults {
        latency_ms: 1500,
        ..Faults::default()
    });
    let mut ep = util::endpoint(&sim);
    ep.timeout = Duration::from_millis(300);
    let err = PveClient::new(&ep)
        .expect("client")
        .version()
        .await
        .expect_err("too slow");
    assert!(matches!(err, PveError::Timeout { .. }), "{err:?}");
    sim.stop().await;
}

#[tokio::test]
async fn server_errors_garbage_and_refused_tokens_are_distinct_errors() {
    let sim = util::sim().await;
    let c = util::client(&sim);
    sim.shared.set_faults(Faults {
        fail_status: Some(500),
        ..Faults::default()
    });
    match c.cluster_resources(None).await {
        Err(PveError::Http {
            status: 500,
            message,
            ..
        }) => assert_eq!(message, "simulated failure"),
        other => panic!("expected 500, got {other:?}"),
    }
    sim.shared.set_faults(Faults {
        malformed: true,
        ..Faults::default()
    });
    let err = c.cluster_resources(None).await.expect_err("garbage");
    assert!(
        matches!(&err, PveError::Decode { path, .. } if path == "/cluster/resources"),
        "{err:?}"
    );
    sim.shared.set_faults(Faults {
        reject_token: true,
        ..Faults::default()
    });
    let err = c.version().await.expect_err("refused");
    assert!(
        matches!(&err, PveError::AuthRefused { status: 401, message } if message.contains("invalid token")),
        "{err:?}"
    );
    sim.shared.set_faults(Faults::default());
    assert!(c.version().await.is_ok(), "back to normal");
    sim.stop().await;
}

#[tokio::test]
async fn a_wrong_token_secret_is_refused() {
    let sim = util::sim().await;
    let mut ep = util::endpoint(&sim);
    ep.token.secret = jarvis::secret::Secret::new("not-the-secret");
    let err = PveClient::new(&ep)
        .expect("client")
        .version()
        .await
        .expect_err("refused");
    assert!(
        matches!(err, PveError::AuthRefused { status: 401, .. }),
        "{err:?}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_different_certificate_is_refused() {
    let sim = util::sim().await;
    let mut ep = util::endpoint(&sim);
    ep.trust = Trust::Pinned(Fingerprint::of_der(b"some other certificate"));
    let err = PveClient::new(&ep)
        .expect("client")
        .version()
        .await
        .expect_err("refused");
    match err {
        PveError::TlsMismatch(m) => {
            assert!(m.contains(&sim.identity.fingerprint().to_string()), "{m}")
        }
        other => panic!("expected a certificate mismatch, got {other:?}"),
    }
    sim.stop().await;
}

#[tokio::test]
async fn a_ca_file_is_an_alternative_to_pinning() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("pve-ca.pem");
    std::fs::write(&ca, &sim.identity.cert_pem).expect("write");
    let mut ep = util::endpoint(&sim);
    ep.trust = Trust::CaFile(ca);
    assert!(PveClient::new(&ep).expect("client").version().await.is_ok());

    // Another CA does not vouch for this server.
    let other = jarvis::sim::SimIdentity::generate().expect("identity");
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, &other.cert_pem).expect("write");
    ep.trust = Trust::CaFile(other_ca);
    let err = PveClient::new(&ep)
        .expect("client")
        .version()
        .await
        .expect_err("unknown issuer");
    assert!(matches!(err, PveError::Tls(_)), "{err:?}");
    sim.stop().await;
}

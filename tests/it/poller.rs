//! The poller against the simulator: the state fills in, changes become events, failures mark the view stale with
//! the reason and back off, the first good answer (also after the simulator dies and comes back) recovers, and
//! after a long outage the recovery probe notices the return within 10 s without undoing the back-off.

use std::time::Duration;

use jarvis::bus::{Event, FillLevel, Stamped};
use jarvis::cluster::client::{PowerAction, PveClient};
use jarvis::cluster::model::GuestKind;
use jarvis::cluster::poller::{PollSettings, Poller};
use jarvis::sim::api::Faults;
use jarvis::sim::model::Power;
use jarvis::sim::{SimOptions, Simulator};
use jarvis::state::{StateHandle, World};
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

use crate::util;

struct Rig {
    sim: Simulator,
    state: StateHandle,
    events: Receiver<Stamped>,
    bus: jarvis::bus::Bus,
    stop: CancellationToken,
}

async fn rig(sim: Simulator) -> Rig {
    rig_with(sim, util::fast_poll()).await
}

/// A poller with `settings` running against `sim`, the events subscribed before it starts.
async fn rig_with(sim: Simulator, settings: PollSettings) -> Rig {
    let bus = jarvis::bus::Bus::new(4096);
    let state = StateHandle::new(World::default());
    let events = bus.subscribe();
    let stop = CancellationToken::new();
    let poller = Poller::new(util::client(&sim), settings, bus.clone(), state.clone());
    tokio::spawn(poller.run(stop.clone()));
    Rig {
        sim,
        state,
        events,
        bus,
        stop,
    }
}

/// Waits for an event matching `pred`.
async fn wait_for(
    rx: &mut Receiver<Stamped>,
    limit: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Option<Event> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(s)) if pred(&s.event) => return Some(s.event),
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            _ => return None,
        }
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_state_fills_with_nodes_guests_storage_and_node_details() {
    let r = rig(util::sim().await).await;
    let state = r.state.clone();
    assert!(
        util::eventually(WAIT, || {
            let w = state.get();
            w.cluster
                .nodes
                .iter()
                .all(|n| n.pveversion.is_some() && !n.disks.is_empty())
                && w.cluster.nodes.len() == 4
        })
        .await,
        "node details arrive"
    );
    let w = r.state.get();
    assert_eq!(w.cluster.guests.len(), 18);
    assert_eq!(w.cluster.quorate, Some(true));
    assert!(w.cluster.stale.is_none());
    let agent1 = w.cluster.node("agent1").expect("agent1");
    assert_eq!((agent1.maxcpu, agent1.maxmem / (1 << 30)), (14, 31));
    assert!(
        agent1.loadavg.is_some() && agent1.kernel.as_deref().is_some_and(|k| k.contains("pve"))
    );
    assert!(w
        .cluster
        .storages
        .iter()
        .any(|s| s.storage == "nas" && s.shared));
    r.stop.cancel();
    r.sim.stop().await;
}

#[tokio::test]
async fn guest_and_node_changes_become_events() {
    let mut r = rig(util::sim().await).await;
    let state = r.state.clone();
    assert!(util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await);
    let now = jarvis::time::now_ms();
    r.sim
        .shared
        .model_now()
        .force_power(125, Power::Running, now);
    let e = wait_for(&mut r.events, WAIT, |e| {
        matches!(e, Event::GuestStateChanged { vmid: 125, .. })
    })
    .await;
    match e {
        Some(Event::GuestStateChanged {
            name,
            from,
            to,
            guest_kind,
            ..
        }) => {
            assert_eq!(
                (name.as_str(), from.as_deref(), to.as_deref(), guest_kind),
                (
                    "ubuntu-dev",
                    Some("stopped"),
                    Some("running"),
                    GuestKind::Qemu
                )
            );
        }
        other => panic!("expected a guest state change, got {other:?}"),
    }
    r.sim
        .shared
        .model_now()
        .set_node_online("agent", false, now);
    assert!(wait_for(&mut r.events, WAIT, |e| *e
        == Event::NodeOffline {
            node: "agent".into()
        })
    .await
    .is_some());
    r.sim.shared.model_now().set_node_online("agent", true, now);
    assert!(wait_for(&mut r.events, WAIT, |e| *e
        == Event::NodeOnline {
            node: "agent".into()
        })
    .await
    .is_some());
    r.stop.cancel();
    r.sim.stop().await;
}

#[tokio::test]
async fn storage_thresholds_and_failed_tasks_become_events() {
    let mut r = rig(util::sim().await).await;
    r.sim.shared.model_now().set_storage_used_pct("nas", 93.0);
    let e = wait_for(
        &mut r.events,
        WAIT,
        |e| matches!(e, Event::StorageThreshold { storage, .. } if storage == "nas"),
    )
    .await;
    assert!(
        matches!(
            e,
            Some(Event::StorageThreshold {
                to: FillLevel::Critical,
                ..
            })
        ),
        "{e:?}"
    );
    let c: PveClient = util::client(&r.sim);
    let upid = c
        .power("agent1", GuestKind::Lxc, 120, PowerAction::Start)
        .await
        .expect("accepted");
    let e = wait_for(
        &mut r.events,
        WAIT,
        |e| matches!(e, Event::TaskFailed { upid: u, .. } if *u == upid.to_string()),
    )
    .await;
    match e {
        Some(Event::TaskFailed {
            exitstatus,
            task_type,
            ..
        }) => {
            assert_eq!(
                (exitstatus.as_str(), task_type.as_str()),
                ("CT 120 already running", "vzstart")
            );
        }
        other => panic!("expected a failed task, got {other:?}"),
    }
    r.stop.cancel();
    r.sim.stop().await;
}

#[tokio::test]
async fn failures_mark_the_view_stale_and_the_first_good_answer_recovers() {
    let mut r = rig(util::sim().await).await;
    let state = r.state.clone();
    assert!(util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await);
    for (faults, expect) in [
        (
            Faults {
                fail_status: Some(500),
                ..Faults::default()
            },
            "HTTP 500",
        ),
        (
            Faults {
                malformed: true,
                ..Faults::default()
            },
            "cannot decode",
        ),
        (
            Faults {
                reject_token: true,
                ..Faults::default()
            },
            "refused the API token",
        ),
    ] {
        r.sim.shared.set_faults(faults);
        let e = wait_for(&mut r.events, WAIT, |e| matches!(e, Event::PveStale(_))).await;
        match e {
            Some(Event::PveStale(s)) => assert!(
                s.reason.contains(expect),
                "{} should mention {expect}",
                s.reason
            ),
            other => panic!("expected stale, got {other:?}"),
        }
        let w = r.state.get();
        assert!(w
            .cluster
            .stale
            .as_ref()
            .is_some_and(|s| s.reason.contains(expect)));
        assert_eq!(
            w.cluster.guests.len(),
            18,
            "the last good view is kept while stale"
        );
        r.sim.shared.set_faults(Faults::default());
        assert!(wait_for(&mut r.events, WAIT, |e| matches!(
            e,
            Event::PveRecovered { .. }
        ))
        .await
        .is_some());
        assert!(r.state.get().cluster.stale.is_none());
    }
    r.stop.cancel();
    r.sim.stop().await;
}

#[tokio::test]
async fn a_simulator_that_dies_and_comes_back_is_followed() {
    let r = rig(util::sim().await).await;
    let mut events = r.bus.subscribe();
    let state = r.state.clone();
    assert!(util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await);
    let addr = r.sim.addr;
    let identity = r.sim.identity.clone();
    r.sim.stop().await;
    let e = wait_for(&mut events, WAIT, |e| matches!(e, Event::PveStale(_))).await;
    assert!(
        matches!(&e, Some(Event::PveStale(s)) if s.reason.contains("unreachable")),
        "{e:?}"
    );
    // Several failures pile up with back-off before it returns.
    assert!(
        util::eventually(WAIT, || state
            .get()
            .cluster
            .stale
            .as_ref()
            .is_some_and(|s| s.failures >= 3))
        .await
    );
    let sim = Simulator::start(SimOptions {
        listen: addr,
        identity: Some(identity),
        ..SimOptions::loopback(util::PVE_SECRET)
    })
    .await
    .expect("simulator restarts on the same port with the same certificate");
    assert!(wait_for(&mut events, WAIT, |e| matches!(
        e,
        Event::PveRecovered { .. }
    ))
    .await
    .is_some());
    assert!(util::eventually(WAIT, || state.get().cluster.stale.is_none()).await);
    r.stop.cancel();
    sim.stop().await;
}

#[tokio::test]
async fn an_action_is_announced_followed_and_makes_the_poller_burst() {
    let sim = util::sim().await;
    // A slow regular poll and a fast burst: the burst is the only way to poll often here.
    let settings = PollSettings {
        resources: Duration::from_secs(30),
        burst: Duration::from_millis(100),
        burst_for: Duration::from_secs(3),
        ..util::fast_poll()
    };
    let Rig {
        sim,
        state,
        bus,
        stop,
        mut events,
    } = rig_with(sim, settings).await;
    assert!(util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await);
    let resource_polls = || {
        sim.shared
            .request_counts()
            .1
            .get("/cluster/resources")
            .copied()
            .unwrap_or(0)
    };
    let before = resource_polls();

    let c = util::client(&sim);
    let done = jarvis::cluster::actions::power_and_follow(
        &c,
        &bus,
        "agent",
        GuestKind::Lxc,
        133,
        PowerAction::Start,
        WAIT,
    )
    .await
    .expect("action followed");
    assert_eq!(done.exitstatus.as_deref(), Some("OK"));
    // Collect what the bus carried (order varies: the burst may see the change before the task's end is read).
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let all = [
            seen.iter().any(|e| matches!(e, Event::ActionStarted { vmid: 133, action, .. } if action == "start")),
            seen.iter().any(|e| matches!(e, Event::ActionFinished { vmid: 133, exitstatus, .. } if exitstatus == "OK")),
            seen.iter().any(|e| matches!(e, Event::GuestStateChanged { vmid: 133, .. })),
        ];
        if all.iter().all(|x| *x) {
            break;
        }
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            seen.push(s.event);
        }
    }
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::ActionStarted { vmid: 133, .. })),
        "announced: {seen:?}"
    );
    assert!(
        seen.iter().any(|e| matches!(e, Event::ActionFinished { vmid: 133, exitstatus, .. } if exitstatus == "OK")),
        "finished: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::GuestStateChanged { vmid: 133, .. })),
        "the change is seen during the burst, long before the 30 s regular poll: {seen:?}"
    );
    assert!(
        resource_polls() >= before + 3,
        "the poller burst after the action"
    );
    stop.cancel();
    sim.stop().await;
}

/// The outage, with production settings (back-off up to 30 s, not the fast test ones): PVE is gone for
/// 45 s, long enough for the back-off to reach its cap. Its return must be noticed within 10 s, not at the next
/// 30 s poll, while the full polls during the outage stay backed off.
#[tokio::test]
async fn after_a_long_outage_the_return_is_noticed_within_ten_seconds() {
    let sim = util::sim().await;
    let settings = PollSettings {
        backoff_max: Duration::from_secs(30),
        recovery_probe: Duration::from_secs(5),
        ..PollSettings::default()
    };
    let Rig {
        sim, state, stop, ..
    } = rig_with(sim, settings).await;
    assert!(util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await);
    let (addr, identity) = (sim.addr, sim.identity.clone());
    sim.stop().await;
    tokio::time::sleep(Duration::from_secs(45)).await;
    let failures = state.get().cluster.stale.as_ref().map(|s| s.failures);
    // 1.4, 2.8, 5.6, 11.2, 22.4, then 30 s apart: six full polls in 45 s (32 without back-off).
    assert!(
        failures.is_some_and(|f| (3..=8).contains(&f)),
        "stale, with the full polls backed off: {failures:?} failures"
    );
    let sim = Simulator::start(SimOptions {
        listen: addr,
        identity: Some(identity),
        ..SimOptions::loopback(util::PVE_SECRET)
    })
    .await
    .expect("simulator restarts on the same port with the same certificate");
    let back = jarvis::time::now_ms();
    assert!(
        util::eventually(Duration::from_secs(10), || {
            let w = state.get();
            w.cluster.stale.is_none() && w.cluster.updated_at_ms >= back
        })
        .await,
        "the cluster is fresh again within 10 s of PVE's return: {:?}",
        state.get().cluster.stale
    );
    stop.cancel();
    sim.stop().await;
}

/// The recovery probe does not undo the back-off: when `/version` answers but `/cluster/resources` keeps failing,
/// only the first answer after a failure triggers a full poll, and the full polls stay backed off.
#[tokio::test]
async fn a_pve_that_answers_the_probe_but_fails_the_poll_stays_backed_off() {
    let sim = util::sim().await;
    let settings = PollSettings {
        backoff_max: Duration::from_secs(1),
        recovery_probe: Duration::from_millis(200),
        ..util::fast_poll()
    };
    let Rig {
        sim, state, stop, ..
    } = rig_with(sim, settings).await;
    assert!(util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await);
    let probes = || {
        sim.shared
            .request_counts()
            .1
            .get("/version")
            .copied()
            .unwrap_or(0)
    };
    sim.shared.set_faults(Faults {
        fail_status: Some(500),
        fail_path: Some("/cluster/resources".into()),
        ..Faults::default()
    });
    let before = probes();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let probes = probes() - before;
    // The failed full polls (refused requests are not in the simulator's counts, the staleness counts them).
    let polls = state.get().cluster.stale.as_ref().map_or(0, |s| s.failures);
    // Backed off (0.1, 0.2, 0.4, 0.8, then 1 s apart): about 7 full polls in 4 s, not one per answered probe
    // (about 15) nor one per 100 ms (40).
    assert!(
        probes >= 4 && (1..=10).contains(&polls),
        "{polls} full polls and {probes} probes in 4 s"
    );
    sim.shared.set_faults(Faults::default());
    assert!(util::eventually(WAIT, || state.get().cluster.stale.is_none()).await);
    stop.cancel();
    sim.stop().await;
}

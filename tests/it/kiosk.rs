//! The kiosk HUD, rendered headless with the software renderer against the demo homelab: what is on screen at
//! each supported size (panels, node names, terminal output, approval cards), and the controllers' callbacks
//! reaching the tool registry — a terminal command runs, a guest's power button asks for approval, approving on
//! the card runs the shutdown, the kill-switch button holds every action.

use std::time::{Duration, Instant};

use i_slint_backend_testing::{ElementHandle, ElementQuery};
use jarvis::demo::{Demo, DemoOptions};
use jarvis::kiosk::snapshot::{self, Capture};
use jarvis::kiosk::ui::{
    AppWindow, ApprovalAdapter, CameraAdapter, ClusterAdapter, TerminalAdapter,
};
use jarvis::kiosk::KioskContext;
use slint::{ComponentHandle, Model};

use crate::util;

/// Panels of the wide HUD, by their titles.
const WIDE_PANELS: [&str; 10] = [
    "NODES",
    "GUESTS",
    "CORE",
    "ACTIVITY",
    "CONVERSATION",
    "STORAGE",
    "ALERTS",
    "PRESENCE",
    "TERMINAL",
    "APPROVALS",
];
/// Panels of each compact tab.
const TABS: [&[&str]; 5] = [
    &["NODES", "GUESTS"],
    &["CORE", "CONVERSATION"],
    &["STORAGE", "ALERTS", "ACTIVITY"],
    &["TERMINAL", "APPROVALS"],
    &["PRESENCE"],
];

pub(crate) struct Harness {
    pub(crate) rt: tokio::runtime::Runtime,
    demo: Option<Demo>,
    pub(crate) ctx: KioskContext,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub(crate) fn start() -> Harness {
        Harness::with(false)
    }

    /// With the demo's household on its simulated Frigate (photos only: no face models, so nobody is enrolled).
    pub(crate) fn with_cameras() -> Harness {
        Harness::with(true)
    }

    fn with(cameras: bool) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let demo = rt
            .block_on(Demo::start(DemoOptions {
                listen: loopback,
                sim_listen: loopback,
                data_dir: dir.path().to_path_buf(),
                poll: util::fast_poll(),
                limits: Default::default(),
                // Faces are read from the store; the engine itself is not needed here.
                models: {
                    let models = dir.path().join("no-models");
                    if cameras {
                        std::fs::create_dir_all(&models).expect("mkdir");
                        let cache =
                            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache");
                        for what in ["test-faces", "clips"] {
                            std::os::unix::fs::symlink(cache.join(what), models.join(what))
                                .expect("symlink");
                        }
                    }
                    models
                },
                cameras,
                voice_devices: ("default".into(), "default".into()),
                tls: jarvis::demo::DemoTls::Off,
            }))
            .expect("demo starts");
        let ctx = KioskContext::new(
            &demo.app,
            rt.handle().clone(),
            vec![jarvis::sim::executor::DOCKER_HOST.to_string()],
            (80.0, 90.0),
        );
        Harness {
            rt,
            demo: Some(demo),
            ctx,
            _dir: dir,
        }
    }

    fn capture(&self, size: (u32, u32), scene: bool) -> Capture {
        let scale = snapshot::auto_scale(size.0, size.1);
        snapshot::capture(&self.ctx, size, scale, scene, Duration::from_secs(60)).expect("renders")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(demo) = self.demo.take() {
            self.rt.block_on(demo.shutdown());
        }
    }
}

/// Every element whose accessible label is `label`, with its bounds inside the window.
fn visible(app: &AppWindow, label: &str) -> bool {
    let size = app.window().size().to_logical(app.window().scale_factor());
    ElementHandle::find_by_accessible_label(app, label).any(|e| {
        let (p, s) = (e.absolute_position(), e.size());
        s.width >= 20.0
            && s.height >= 10.0
            && p.x >= -0.5
            && p.y >= -0.5
            && p.x + s.width <= size.width + 0.5
            && p.y + s.height <= size.height + 0.5
    })
}

fn any_label_containing(app: &AppWindow, needle: &str) -> bool {
    ElementQuery::from_root(app)
        .match_predicate({
            let needle = needle.to_string();
            move |e| e.accessible_label().is_some_and(|l| l.contains(&needle))
        })
        .find_first()
        .is_some()
}

/// The presence panel scrolled to its end (what a swipe over it does).
fn scroll_presence_to_end(app: &AppWindow) {
    use jarvis::kiosk::ui::StatusAdapter;
    let status = app.global::<StatusAdapter>();
    status.set_presence_scroll(-status.get_presence_overflow());
}

fn check_wide(size: (u32, u32)) {
    let h = Harness::start();
    let c = h.capture(size, true);
    let app = &c.hud.app;
    for panel in WIDE_PANELS {
        assert!(
            visible(app, panel),
            "{size:?}: panel {panel} is not on screen"
        );
    }
    for node in ["Home", "pve", "agent", "agent1"] {
        assert!(
            visible(app, &format!("node {node}")),
            "{size:?}: node card {node} missing"
        );
    }
    assert!(
        any_label_containing(app, "load average"),
        "{size:?}: the terminal shows uptime's output"
    );
    assert!(
        any_label_containing(app, "approval Shut down"),
        "{size:?}: an approval card spells out the shutdown"
    );
    assert!(
        visible(app, "APPROVE") && visible(app, "DENY"),
        "{size:?}: the card's buttons are on screen"
    );
    assert!(any_label_containing(app, "SMART"), "{size:?}: SMART badges");
    whole_rows_only(app, size);
    assert!(
        c.frame.distinct_colours() > 50,
        "{size:?}: the frame has content"
    );
    let out = std::env::temp_dir().join(format!("jarvis-hud-{}x{}.png", size.0, size.1));
    c.frame.write_png(&out).expect("png");
}

/// The storage list (nine pools in the demo) shows whole rows only, and says how many more there are: every
/// storage gauge is either fully above the "+N more" line or not shown, and the shown ones plus N are all nine.
fn whole_rows_only(app: &AppWindow, size: (u32, u32)) {
    let total = app
        .global::<jarvis::kiosk::ui::StatusAdapter>()
        .get_storages()
        .row_count();
    assert_eq!(total, 9, "the demo has nine pools");
    let more = ElementQuery::from_root(app)
        .match_predicate(|e| {
            e.accessible_label()
                .is_some_and(|l| l.starts_with('+') && l.ends_with("more · scroll the list"))
        })
        .find_all();
    // The storage panel's line is the one in the right column.
    let panel = ElementHandle::find_by_accessible_label(app, "STORAGE")
        .find(|e| e.size().width > 100.0)
        .expect("storage panel");
    let (px, pw) = (panel.absolute_position().x, panel.size().width);
    let line = more
        .iter()
        .find(|e| e.absolute_position().x >= px && e.absolute_position().x < px + pw)
        .unwrap_or_else(|| panic!("{size:?}: the storage panel says how many more"));
    let label = line.accessible_label().unwrap_or_default();
    let hidden: usize = label[1..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    let limit = line.absolute_position().y;
    let gauges: Vec<_> = ElementQuery::from_root(app)
        .match_predicate(move |e| {
            e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::ProgressIndicator)
                && e.accessible_label().is_some_and(|l| l.contains(" @ "))
                && e.absolute_position().x >= px
                && e.absolute_position().x < px + pw
        })
        .find_all();
    let mut shown = 0;
    for g in &gauges {
        let (y, h) = (g.absolute_position().y, g.size().height);
        if y + h <= limit + 0.5 && y >= panel.absolute_position().y {
            shown += 1;
        } else {
            assert!(
                y >= limit - 0.5 || y + h <= panel.absolute_position().y,
                "{size:?}: a storage row is cut by the list's end ({y}+{h} across {limit})"
            );
        }
    }
    assert_eq!(
        shown + hidden,
        total,
        "{size:?}: shown {shown} + more {hidden}"
    );
}

#[test]
fn hud_at_1920x1080_shows_every_panel() {
    check_wide((1920, 1080));
}

#[test]
fn hud_at_3840x2160_shows_every_panel() {
    check_wide((3840, 2160));
}

#[test]
fn hud_at_1280x800_shows_every_panel() {
    check_wide((1280, 800));
}

#[test]
fn hud_at_800x480_shows_every_panel_tab_by_tab() {
    let h = Harness::start();
    let c = h.capture((800, 480), true);
    let app = &c.hud.app;
    assert!(
        any_label_containing(app, "approval Shut down"),
        "a waiting approval floats over the tabs"
    );
    for (tab, panels) in TABS.iter().enumerate() {
        app.set_tab(tab as i32);
        c.hud.render();
        for panel in *panels {
            assert!(
                visible(app, panel),
                "800x480 tab {tab}: panel {panel} is not on screen"
            );
        }
        for tab_name in ["CLUSTER", "JARVIS", "STATUS", "TERMINAL", "PEOPLE"] {
            assert!(visible(app, tab_name), "800x480: tab {tab_name} missing");
        }
        if tab == 0 {
            // The guest list beside the node cards shows a useful number of whole rows (it once showed one).
            let guests = app.global::<ClusterAdapter>().get_visible_guests();
            let shown = guests.iter().filter(|g| visible(app, &g.name)).count();
            assert!(shown >= 8, "800x480: {shown} guest rows on the cluster tab");
        }
    }
}

/// Pumps the headless UI queue until `done` or the limit.
pub(crate) fn pump(
    rx: &std::sync::mpsc::Receiver<jarvis::kiosk::UiJob>,
    limit: Duration,
    done: impl Fn() -> bool,
) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        jarvis::kiosk::drain(rx);
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn lines(app: &AppWindow) -> Vec<String> {
    app.global::<TerminalAdapter>()
        .get_lines()
        .iter()
        .map(|l| l.text.to_string())
        .collect()
}

#[test]
fn callbacks_go_through_the_registry_and_approving_on_the_card_runs_the_action() {
    let h = Harness::start();
    let (ui, rx) = jarvis::kiosk::UiThread::queue();
    let ctx = KioskContext {
        ui,
        ..h.ctx.clone()
    };
    let hud = snapshot::HeadlessUi::new(1920, 1080, 1.0).expect("headless");
    let app = &hud.app;
    let _stop = jarvis::kiosk::attach(app, &ctx);
    assert!(pump(&rx, Duration::from_secs(30), || app
        .global::<ClusterAdapter>()
        .get_all_guests()
        .row_count()
        > 0));

    // A read from the allowlist runs at once, as the kiosk, and its output lands in the panel.
    app.global::<TerminalAdapter>()
        .invoke_run("pve".into(), "uptime".into());
    assert!(pump(&rx, Duration::from_secs(30), || lines(app)
        .iter()
        .any(|l| l.contains("load average"))));
    // The audit row is written when the call ends, which may be just after its output shows.
    let audited = || {
        ctx.store.audit(20).is_ok_and(|a| {
            a.iter()
                .any(|r| r.actor == "kiosk" && r.tool == "run_command" && r.outcome == "ok")
        })
    };
    assert!(
        pump(&rx, Duration::from_secs(30), audited),
        "{:?}",
        ctx.store.audit(20)
    );
    // History walks back through what was typed.
    assert_eq!(
        app.global::<TerminalAdapter>().invoke_history_previous(),
        "uptime"
    );

    // The power button of a running guest asks for approval: a card appears, nothing happens yet.
    let guest = app
        .global::<ClusterAdapter>()
        .get_all_guests()
        .iter()
        .find(|g| g.running && g.node == "pve")
        .expect("a running guest on pve");
    app.global::<ClusterAdapter>()
        .invoke_guest_power(guest.vmid);
    assert!(pump(&rx, Duration::from_secs(30), || app
        .global::<ApprovalAdapter>()
        .get_cards()
        .row_count()
        == 1));
    let card = app
        .global::<ApprovalAdapter>()
        .get_cards()
        .row_data(0)
        .expect("card");
    assert_eq!(card.actor, "kiosk");
    assert!(
        card.summary.contains(guest.name.as_str()),
        "the card names the guest: {}",
        card.summary
    );
    let status = |vmid: i32| {
        ctx.state
            .get()
            .cluster
            .guest(vmid as u32)
            .map(|g| g.status.clone())
    };
    assert_eq!(status(guest.vmid).as_deref(), Some("running"));

    // Approving on the card runs exactly that call; the guest goes down and the card leaves.
    app.global::<ApprovalAdapter>()
        .invoke_approve(card.id.clone());
    assert!(
        pump(&rx, Duration::from_secs(30), || status(guest.vmid)
            .as_deref()
            == Some("stopped")
            && app.global::<ApprovalAdapter>().get_cards().row_count()
                == 0),
        "the approved shutdown ran: {:?}",
        lines(app)
    );
    assert!(
        lines(app).iter().any(|l| l.starts_with("Approved:")),
        "{:?}",
        lines(app)
    );

    // The kill switch from the screen holds every action, and the power button now reports the refusal.
    app.global::<ApprovalAdapter>().invoke_set_kill_switch(true);
    assert!(pump(&rx, Duration::from_secs(30), || app
        .global::<ApprovalAdapter>()
        .get_kill_switch()));
    assert!(ctx.tools.kill_switch());
    app.global::<ClusterAdapter>()
        .invoke_guest_power(guest.vmid);
    assert!(pump(&rx, Duration::from_secs(30), || lines(app)
        .iter()
        .any(|l| l.contains("kill switch is on"))));
    assert_eq!(status(guest.vmid).as_deref(), Some("stopped"));
    app.global::<ApprovalAdapter>()
        .invoke_set_kill_switch(false);
    assert!(pump(&rx, Duration::from_secs(30), || !app
        .global::<ApprovalAdapter>()
        .get_kill_switch()));
}

#[test]
fn the_guest_filter_shows_one_node_and_the_chat_answers() {
    let h = Harness::start();
    let (ui, rx) = jarvis::kiosk::UiThread::queue();
    let ctx = KioskContext {
        ui,
        ..h.ctx.clone()
    };
    let hud = snapshot::HeadlessUi::new(1920, 1080, 1.0).expect("headless");
    let app = &hud.app;
    let _stop = jarvis::kiosk::attach(app, &ctx);
    let adapter = app.global::<ClusterAdapter>();
    assert!(pump(&rx, Duration::from_secs(10), || adapter
        .get_visible_guests()
        .row_count()
        > 0));
    let all = adapter.get_visible_guests().row_count();
    adapter.set_node_filter("agent1".into());
    adapter.invoke_filter_changed("agent1".into());
    let shown: Vec<_> = adapter.get_visible_guests().iter().collect();
    assert!(!shown.is_empty() && shown.len() < all);
    assert!(shown.iter().all(|g| g.node == "agent1"));
    // The chat panel talks to the agent: the offline engine answers in the persona.
    app.global::<jarvis::kiosk::ui::JarvisAdapter>()
        .invoke_send_chat("status report".into());
    let jarvis_said = || {
        app.global::<jarvis::kiosk::ui::JarvisAdapter>()
            .get_chat()
            .iter()
            .any(|m| m.from_jarvis && !m.streaming && m.text.contains("nodes are online"))
    };
    assert!(
        pump(&rx, Duration::from_secs(10), jarvis_said),
        "Jarvis answers in the chat panel"
    );
    // The next poll keeps the filter.
    let before = ctx.state.get().cluster.updated_at_ms;
    assert!(pump(&rx, Duration::from_secs(10), || ctx
        .state
        .get()
        .cluster
        .updated_at_ms
        > before));
    jarvis::kiosk::drain(&rx);
    assert!(adapter
        .get_visible_guests()
        .iter()
        .all(|g| g.node == "agent1"));
    // "reboot pve" from the chat: Jarvis asks for approval, and the card is on the screen.
    app.global::<jarvis::kiosk::ui::JarvisAdapter>()
        .invoke_send_chat("reboot pve".into());
    assert!(
        pump(&rx, Duration::from_secs(10), || {
            app.global::<jarvis::kiosk::ui::JarvisAdapter>()
                .get_chat()
                .iter()
                .any(|m| m.from_jarvis && m.text.contains("needs your approval"))
                && app
                    .global::<ApprovalAdapter>()
                    .get_cards()
                    .iter()
                    .any(|c| c.summary.contains("Reboot node pve"))
        }),
        "the approval is asked in the chat and its card shown"
    );
    // A panel opened afresh (as after a restart) shows the conversation so far.
    let _again = jarvis::kiosk::attach(app, &ctx);
    let shown: Vec<(bool, String)> = app
        .global::<jarvis::kiosk::ui::JarvisAdapter>()
        .get_chat()
        .iter()
        .map(|m| (m.from_jarvis, m.text.to_string()))
        .collect();
    assert!(shown.len() >= 2, "{shown:?}");
    assert!(
        shown.contains(&(false, "status report".to_string())),
        "{shown:?}"
    );
    assert_eq!(shown[shown.len() - 2], (false, "reboot pve".to_string()));
    assert!(shown[shown.len() - 1].0 && shown[shown.len() - 1].1.contains("needs your approval"));
}

/// The faces part of the presence panel at every size (800×480 on its own tab): the people with their thumbnails,
/// the stranger to name and the match to correct, and both actions working through the registry as `kiosk`.
#[test]
fn the_presence_panel_shows_people_and_works_the_review_queue_at_every_size() {
    use jarvis::kiosk::ui::FacesAdapter;
    let h = Harness::start();
    // One Slint platform per thread: each size, and the clicking, on a thread of its own.
    let on_own_thread = |f: Box<dyn FnOnce(KioskContext) + Send>| {
        let ctx = h.ctx.clone();
        std::thread::spawn(move || f(ctx)).join().expect("no panic");
    };
    for size in [(1920u32, 1080u32), (1280, 800), (800, 480)] {
        on_own_thread(Box::new(move |ctx| {
            let scale = snapshot::auto_scale(size.0, size.1);
            let c = snapshot::capture(&ctx, size, scale, true, Duration::from_secs(15))
                .expect("renders");
            let app = &c.hud.app;
            if size.0 == 800 {
                app.set_tab(4);
                c.hud.render();
            }
            let faces = app.global::<FacesAdapter>();
            assert_eq!(faces.get_people().row_count(), 3, "{size:?}");
            // The household and the moves come first; the faces part is further down: scroll through the
            // panel, as a person would, and see everything on the way.
            let status = app.global::<jarvis::kiosk::ui::StatusAdapter>();
            let wanted = [
                "Alice",
                "Bob",
                "Carol",
                "WHO?",
                "DISCARD",
                "NOT ALICE",
                "Unknown ×2",
            ];
            let mut seen = std::collections::HashSet::new();
            let mut y = 0.0f32;
            loop {
                status.set_presence_scroll(-y);
                c.hud.render();
                for w in wanted {
                    let on = match w {
                        "Alice" | "Bob" | "Carol" => {
                            visible(app, &format!("{w}, not seen yet"))
                                || any_label_containing(app, &format!("{w}, seen"))
                        }
                        "Unknown ×2" => any_label_containing(app, w),
                        button => visible(app, button),
                    };
                    if on {
                        seen.insert(w);
                    }
                }
                let end = status.get_presence_overflow();
                if y >= end {
                    break;
                }
                y = (y + 40.0).min(end);
            }
            for w in wanted {
                assert!(seen.contains(w), "{size:?}: {w} is never on screen");
            }
            let out = std::env::temp_dir().join(format!("jarvis-faces-{}x{}.png", size.0, size.1));
            c.hud.render().write_png(&out).expect("png");
        }));
    }

    // Work the queue on the small screen, as a finger would: WHO? then a name; NOT ALICE.
    on_own_thread(Box::new(|ctx| {
        let (ui, rx) = jarvis::kiosk::UiThread::queue();
        let ctx = KioskContext { ui, ..ctx };
        let hud = snapshot::HeadlessUi::new(800, 480, 1.0).expect("headless");
        let app = &hud.app;
        let _stop = jarvis::kiosk::attach(app, &ctx);
        app.set_tab(4);
        let faces = app.global::<FacesAdapter>();
        assert!(pump(&rx, Duration::from_secs(10), || faces
            .get_review()
            .row_count()
            == 2));
        hud.render();
        scroll_presence_to_end(app);
        hud.render();
        let press = |label: &str| {
            scroll_presence_to_end(app);
            hud.render();
            let button = ElementHandle::find_by_accessible_label(app, label)
                .find(|e| {
                    e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button)
                })
                .unwrap_or_else(|| panic!("no {label} button"));
            button.invoke_accessible_default_action();
            hud.render();
            scroll_presence_to_end(app);
            hud.render();
        };
        press("WHO?");
        assert!(
            visible(app, "Bob") && visible(app, "CANCEL"),
            "the choice of people is on screen"
        );
        press("Bob");
        let store = ctx.store.clone();
        let assigned = || {
            store
                .read(|c| {
                    c.query_row(
                        "SELECT COUNT(*) FROM face_groups WHERE status = 'assigned'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .unwrap_or(0)
                == 1
        };
        assert!(
            pump(&rx, Duration::from_secs(10), assigned),
            "the group was assigned to Bob"
        );
        assert!(pump(&rx, Duration::from_secs(10), || faces
            .get_outcome()
            .contains("that was Bob")));
        assert!(pump(&rx, Duration::from_secs(10), || faces
            .get_review()
            .row_count()
            == 1));
        hud.render();
        press("NOT ALICE");
        let negatives = || {
            store
                .read(|c| {
                    c.query_row("SELECT COUNT(*) FROM face_negatives", [], |r| {
                        r.get::<_, i64>(0)
                    })
                })
                .unwrap_or(0)
                == 1
        };
        assert!(
            pump(&rx, Duration::from_secs(10), negatives),
            "not Alice is remembered"
        );
        let audit = ctx.store.audit(50).expect("audit");
        assert!(audit
            .iter()
            .any(|r| r.actor == "kiosk" && r.tool == "assign_faces" && r.outcome == "ok"));
        assert!(audit
            .iter()
            .any(|r| r.actor == "kiosk" && r.tool == "not_this_person" && r.outcome == "ok"));
    }));
}

/// The camera tile at the smallest size (over the tabs): its buttons list the cameras; a tap opens it and frames
/// stream in, decoded on-device; CLOSE closes it; the `show_camera` tool (what "show me the front door" calls)
/// opens it too; an unknown camera is refused by name.
#[test]
fn the_camera_tile_opens_by_a_tap_and_by_show_camera_and_streams_frames() {
    let h = Harness::with_cameras();
    let (ui, rx) = jarvis::kiosk::UiThread::queue();
    let ctx = KioskContext {
        ui,
        ..h.ctx.clone()
    };
    let hud = snapshot::HeadlessUi::new(800, 480, 1.0).expect("headless");
    let app = &hud.app;
    let _stop = jarvis::kiosk::attach(app, &ctx);
    let a = app.global::<CameraAdapter>();
    let cameras = || {
        a.get_cameras()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        pump(&rx, Duration::from_secs(20), || cameras()
            == ["front_door", "side_house", "garden"]),
        "{:?}",
        cameras()
    );
    a.invoke_show("front_door".into());
    assert!(
        pump(&rx, Duration::from_secs(20), || a.get_has_frame()
            && a.get_state().starts_with("live")),
        "state {:?}",
        a.get_state()
    );
    assert_eq!(a.get_shown(), "front_door");
    let size = a.get_frame().size();
    assert_eq!((size.width, size.height), (1280, 720));
    let _ = hud.render();
    a.invoke_close();
    assert!(pump(&rx, Duration::from_secs(5), || a
        .get_shown()
        .is_empty()));

    let shown = h.rt.block_on(ctx.tools.invoke(
        "agent",
        "show_camera",
        serde_json::json!({ "camera": "side house" }),
    ));
    assert!(
        matches!(shown, Ok(jarvis::tools::Outcome::Done { .. })),
        "{shown:?}"
    );
    assert!(
        pump(&rx, Duration::from_secs(20), || a.get_shown()
            == "side_house"
            && a.get_has_frame()),
        "shown {:?}",
        a.get_shown()
    );
    a.invoke_close();
    assert!(pump(&rx, Duration::from_secs(5), || a
        .get_shown()
        .is_empty()));

    // The garden camera is decoded by Jarvis itself (a clip through FFmpeg): its tile shows the reader's frames.
    a.invoke_show("garden".into());
    assert!(
        pump(&rx, Duration::from_secs(30), || a.get_has_frame()
            && a.get_state().starts_with("live")),
        "state {:?}",
        a.get_state()
    );
    assert!(
        a.get_state().contains("H.264 1280×720"),
        "{:?}",
        a.get_state()
    );
    let size = a.get_frame().size();
    assert_eq!((size.width, size.height), (1280, 720));

    let refused = h.rt.block_on(ctx.tools.invoke(
        "agent",
        "show_camera",
        serde_json::json!({ "camera": "attic" }),
    ));
    assert!(
        matches!(&refused, Err(jarvis::tools::ToolError::NotFound(m)) if m.contains("front_door")),
        "{refused:?}"
    );
    a.invoke_close();
    assert!(pump(&rx, Duration::from_secs(5), || a
        .get_shown()
        .is_empty()));
}

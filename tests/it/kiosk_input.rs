//! The HUD driven as a person drives it: pointer presses and releases at a field's position on the screen (a
//! mouse click and a finger tap arrive as the same events), key presses as a keyboard sends them, taps on the
//! on-screen keyboard. Everything goes through `Window::dispatch_event` of the headless software-rendered
//! window, the path every Slint backend feeds; nothing calls a callback directly. What is asserted is what the
//! person sees: the text in the field, the reply in the conversation, the terminal's output, the keyboard.

use std::time::Duration;

use i_slint_backend_testing::ElementHandle;
use jarvis::bus::Event;
use jarvis::kiosk::snapshot::HeadlessUi;
use jarvis::kiosk::ui::{AppWindow, JarvisAdapter, TerminalAdapter};
use jarvis::kiosk::{KioskContext, UiJob, UiThread};
use slint::platform::{PointerEventButton, WindowEvent};
use slint::{ComponentHandle, LogicalPosition, Model};

use crate::kiosk::{pump, Harness};

const ENTER: &str = "\n";
const ESCAPE: &str = "\u{1b}";
const UP: &str = "\u{F700}";

struct Screen {
    hud: HeadlessUi,
    rx: std::sync::mpsc::Receiver<UiJob>,
    ctx: KioskContext,
    _stop: tokio_util::sync::CancellationToken,
}

impl Screen {
    fn open(h: &Harness, (w, hgt): (u32, u32), keyboard: bool) -> Screen {
        let (ui, rx) = UiThread::queue();
        let ctx = KioskContext {
            ui,
            keyboard,
            ..h.ctx.clone()
        };
        let hud = HeadlessUi::new(w, hgt, 1.0).expect("headless");
        let stop = jarvis::kiosk::attach(&hud.app, &ctx);
        let s = Screen {
            hud,
            rx,
            ctx,
            _stop: stop,
        };
        assert!(s.wait(|app| app.global::<TerminalAdapter>().get_hosts().row_count() > 1));
        s.hud.render();
        s
    }

    fn app(&self) -> &AppWindow {
        &self.hud.app
    }

    fn wait(&self, done: impl Fn(&AppWindow) -> bool) -> bool {
        pump(&self.rx, Duration::from_secs(10), || done(&self.hud.app))
    }

    fn event(&self, e: WindowEvent) {
        self.hud.window.dispatch_event(e);
    }

    /// Presses and releases the primary button (or a finger) at `at`, in logical pixels.
    fn press_at(&self, at: LogicalPosition) {
        self.event(WindowEvent::PointerMoved { position: at });
        self.event(WindowEvent::PointerPressed {
            position: at,
            button: PointerEventButton::Left,
        });
        self.event(WindowEvent::PointerReleased {
            position: at,
            button: PointerEventButton::Left,
        });
        self.event(WindowEvent::PointerExited);
        self.hud.render();
    }

    /// The first element with this accessible label that lies on the screen.
    fn element(&self, label: &str) -> ElementHandle {
        let size = self
            .app()
            .window()
            .size()
            .to_logical(self.app().window().scale_factor());
        ElementHandle::find_by_accessible_label(self.app(), label)
            .find(|e| {
                let (p, s) = (e.absolute_position(), e.size());
                s.width > 1.0 && p.x >= 0.0 && p.y >= 0.0 && p.y + s.height <= size.height + 0.5
            })
            .unwrap_or_else(|| {
                let seen: Vec<_> = ElementHandle::find_by_accessible_label(self.app(), label)
                    .map(|e| (e.absolute_position(), e.size()))
                    .collect();
                panic!("`{label}` is on the screen of {size:?}; found {seen:?}")
            })
    }

    /// Taps the middle of the element labelled `label`.
    fn tap(&self, label: &str) {
        let e = self.element(label);
        let (p, s) = (e.absolute_position(), e.size());
        self.press_at(LogicalPosition::new(
            p.x + s.width / 2.0,
            p.y + s.height / 2.0,
        ));
    }

    /// Taps a field on its left edge, where the prompt and the placeholder are drawn, not its text.
    fn tap_field_edge(&self, label: &str) {
        let e = self.element(label);
        let (p, s) = (e.absolute_position(), e.size());
        // The frame starts left of the text: prompt, padding.
        self.press_at(LogicalPosition::new(p.x - 12.0, p.y + s.height / 2.0));
    }

    fn key(&self, text: &str) {
        self.event(WindowEvent::KeyPressed { text: text.into() });
        self.event(WindowEvent::KeyReleased { text: text.into() });
    }

    fn type_text(&self, text: &str) {
        for c in text.chars() {
            self.key(&c.to_string());
        }
        self.hud.render();
    }

    fn field(&self, label: &str) -> String {
        self.element(label)
            .accessible_value()
            .unwrap_or_default()
            .to_string()
    }

    fn keyboard_shown(&self) -> bool {
        ElementHandle::find_by_accessible_label(self.app(), "on-screen keyboard")
            .any(|e| e.size().height > 10.0)
    }

    fn jarvis_said(&self, needle: &str) -> bool {
        let needle = needle.to_string();
        self.wait(move |app| {
            app.global::<JarvisAdapter>()
                .get_chat()
                .iter()
                .any(|m| m.from_jarvis && !m.streaming && m.text.contains(&needle))
        })
    }

    fn asked(&self) -> Vec<String> {
        self.app()
            .global::<JarvisAdapter>()
            .get_chat()
            .iter()
            .filter(|m| !m.from_jarvis)
            .map(|m| m.text.to_string())
            .collect()
    }

    fn terminal_shows(&self, needle: &str) -> bool {
        let needle = needle.to_string();
        self.wait(move |app| {
            app.global::<TerminalAdapter>()
                .get_lines()
                .iter()
                .any(|l| l.text.contains(&needle))
        })
    }
}

/// At every size: a click on the chat field (on its prompt, not only on the text), typed keys, Enter; the
/// question is sent from the kiosk and Jarvis answers; Escape clears a half-typed line.
fn chat_and_terminal_by_pointer_and_keys(size: (u32, u32)) {
    let h = Harness::start();
    let s = Screen::open(&h, size, false);
    let mut events = s.ctx.bus.subscribe();
    let compact = size.0 < 1200;
    if compact {
        s.tap("JARVIS");
    }
    s.tap_field_edge("ask Jarvis");
    s.type_text("status report");
    assert_eq!(s.field("ask Jarvis"), "status report", "typed at {size:?}");
    s.key(ENTER);
    assert!(
        s.jarvis_said("nodes are online"),
        "Jarvis answers at {size:?}"
    );
    assert_eq!(s.field("ask Jarvis"), "", "Enter empties the field");
    let mut from_kiosk = false;
    while let Ok(e) = events.try_recv() {
        from_kiosk |= matches!(&e.event, Event::Asked { via, text } if via == "kiosk" && text == "status report");
    }
    assert!(from_kiosk, "the bus says the question came from the kiosk");
    // Escape clears; Enter on an empty field sends nothing.
    s.type_text("reboot every");
    s.key(ESCAPE);
    assert_eq!(s.field("ask Jarvis"), "");
    let before = s.asked().len();
    s.key(ENTER);
    s.hud.render();
    assert_eq!(s.asked().len(), before, "an empty line is not sent");

    // The terminal: a click, a command, Enter; its output; Up brings it back with the cursor at its end.
    if compact {
        s.tap("TERMINAL");
    }
    s.tap_field_edge("command");
    assert_eq!(s.field("command"), "");
    s.type_text("uptime");
    s.key(ENTER);
    assert!(s.terminal_shows("load average"), "output at {size:?}");
    s.key(UP);
    assert_eq!(s.field("command"), "uptime");
    s.type_text(" -p");
    assert_eq!(
        s.field("command"),
        "uptime -p",
        "the cursor sits at the end"
    );
    s.key(ESCAPE);
    assert_eq!(s.field("command"), "");
    assert!(!s.keyboard_shown(), "no on-screen keyboard unless offered");
}

#[test]
fn typing_works_with_a_mouse_and_a_keyboard_at_1920x1080() {
    chat_and_terminal_by_pointer_and_keys((1920, 1080));
}

#[test]
fn typing_works_with_a_mouse_and_a_keyboard_at_1280x800() {
    chat_and_terminal_by_pointer_and_keys((1280, 800));
}

#[test]
fn typing_works_with_a_mouse_and_a_keyboard_at_800x480() {
    chat_and_terminal_by_pointer_and_keys((800, 480));
}

/// A finger only: the field's tap brings up the keyboard; keys, shift, Enter; a quick reply; the terminal's
/// keys; hiding it and getting it back. At each size the field being typed into stays above the keyboard.
fn finger_only(size: (u32, u32)) {
    let h = Harness::start();
    let s = Screen::open(&h, size, true);
    let compact = size.0 < 1200;
    assert!(!s.keyboard_shown(), "hidden until a field takes the focus");
    if compact {
        s.tap("JARVIS");
    }
    s.tap_field_edge("ask Jarvis");
    assert!(
        s.keyboard_shown(),
        "a tap on the field brings the keyboard up at {size:?}"
    );
    let field = s.element("ask Jarvis");
    let board = s.element("on-screen keyboard");
    assert!(
        field.absolute_position().y + field.size().height <= board.absolute_position().y,
        "the field stays above the keyboard at {size:?}"
    );
    s.tap("key shift");
    s.tap("key W");
    for c in "ho is home".chars() {
        let label = if c == ' ' {
            "key space".to_string()
        } else {
            format!("key {c}")
        };
        s.tap(&label);
    }
    s.tap("key ?");
    assert_eq!(s.field("ask Jarvis"), "Who is home?");
    s.tap("key backspace");
    assert_eq!(s.field("ask Jarvis"), "Who is home");
    s.tap("key enter");
    assert!(s.wait(|app| app
        .global::<JarvisAdapter>()
        .get_chat()
        .iter()
        .any(|m| !m.from_jarvis && m.text == "Who is home")));
    assert!(s.jarvis_said(""), "and Jarvis replies");
    // A quick reply sends at once.
    s.tap("key How is the cluster?");
    assert!(s.jarvis_said("nodes are online"));
    // Escape on the keyboard clears the line.
    s.tap("key x");
    s.tap("key escape");
    assert_eq!(s.field("ask Jarvis"), "");

    // The terminal, by finger: its keys include - / | and the symbols page.
    if compact {
        s.tap("TERMINAL");
    }
    s.tap_field_edge("command");
    assert!(s.keyboard_shown());
    assert!(
        ElementHandle::find_by_accessible_label(s.app(), "key How is the cluster?").count() == 0,
        "quick replies belong to the chat"
    );
    for k in ["key d", "key f", "key space", "key -", "key h"] {
        s.tap(k);
    }
    assert_eq!(s.field("command"), "df -h");
    s.tap("key enter");
    assert!(s.terminal_shows("Filesystem"), "df output at {size:?}");
    for k in ["key symbols", "key |", "key symbols", "key /", "key ."] {
        s.tap(k);
    }
    assert_eq!(s.field("command"), "|/.");
    s.tap("key escape");
    // Hidden on request; the next tap on a field brings it back.
    s.tap("key hide");
    assert!(!s.keyboard_shown());
    s.tap_field_edge("command");
    assert!(s.keyboard_shown());
}

#[test]
fn a_finger_alone_can_ask_and_run_a_command_at_1920x1080() {
    finger_only((1920, 1080));
}

#[test]
fn a_finger_alone_can_ask_and_run_a_command_at_1280x800() {
    finger_only((1280, 800));
}

#[test]
fn a_finger_alone_can_ask_and_run_a_command_at_800x480() {
    finger_only((800, 480));
}

/// Keys that reach no field, presses outside any field, a flood of keys: nothing breaks, nothing is sent.
#[test]
fn stray_keys_and_a_key_flood_send_nothing() {
    let h = Harness::start();
    let s = Screen::open(&h, (1920, 1080), false);
    let before = s.asked().len();
    s.type_text("reboot pve");
    s.key(ENTER);
    s.press_at(LogicalPosition::new(5.0, 5.0));
    s.key(ENTER);
    assert_eq!(
        s.asked().len(),
        before,
        "keys without a focused field do nothing"
    );
    // A held key (a stuck key, a cat on the keyboard): the line grows, Escape clears it, nothing is sent.
    s.tap_field_edge("ask Jarvis");
    for _ in 0..1000 {
        s.key("a");
    }
    assert_eq!(s.field("ask Jarvis").len(), 1000);
    s.key(ESCAPE);
    assert_eq!(s.field("ask Jarvis"), "");
    assert_eq!(s.asked().len(), before);
    // A paste longer than any question (one text event, as an input method commits it), sent anyway: it is
    // answered in the panel and goes nowhere.
    s.key(&"b".repeat(4001));
    assert_eq!(s.field("ask Jarvis").len(), 4001);
    s.key(ENTER);
    assert_eq!(s.asked().len(), before, "not sent to the agent");
    assert!(s.jarvis_said("rather more than I read at once"));
}

/// The hardware keys with no window at all (`jarvis run` on a box whose screen is off): records in the kernel's
/// `input_event` format arrive through a FIFO standing in for `/dev/input/eventN`. Push-to-talk goes on the bus
/// (nobody listening yet: no voice), the kill-switch key arms the kill switch; a record cut short is dropped; the
/// device going away and coming back (a macro pad unplugged and plugged in again) is read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardware_keys_work_without_a_window_and_after_the_device_comes_back() {
    use jarvis::kiosk::keys::{encode_key, KeySettings};
    use std::io::Write;
    let sim = crate::util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("macropad-event-kbd");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let mut config = crate::util::config(&sim, dir.path());
    config.kiosk.keys = Some(KeySettings {
        device: fifo.clone(),
        push_to_talk: jarvis::kiosk::keys::parse_key("KEY_F13"),
        kill_switch: jarvis::kiosk::keys::parse_key("KEY_PAUSE"),
    });
    let app = jarvis::app::App::start(&config, "test")
        .await
        .expect("app starts");
    let mut events = app.bus.subscribe();
    let open = |fifo: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(fifo)
                .expect("the reader opens the device")
        })
    };
    let mut pad = tokio::time::timeout(Duration::from_secs(10), open(fifo.clone()))
        .await
        .expect("opened in time")
        .expect("join");
    pad.write_all(&encode_key(183, 1)).expect("write");
    pad.write_all(&encode_key(183, 2)).expect("write");
    pad.write_all(&encode_key(183, 0)).expect("write");
    // Half a record, then the device goes away; plugged in again it is a new device node at the same path (so the
    // reader, whenever it notices, cannot carry on reading the old one).
    pad.write_all(&encode_key(119, 1)[..9]).expect("write");
    drop(pad);
    std::fs::remove_file(&fifo).expect("unplugged");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let mut talk = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while talk.len() < 2 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(s)) => {
                if let Event::PushToTalk { pressed, listening } = s.event {
                    talk.push((pressed, listening));
                }
            }
            _ => break,
        }
    }
    assert_eq!(
        talk,
        vec![(true, false), (false, false)],
        "down, up; the repeat is not a new press"
    );
    assert!(!app.tools.kill_switch(), "a record cut short does nothing");

    // Plugged in again: the reader opens it anew (within its retry interval) and the kill-switch key works.
    let mut pad = tokio::time::timeout(Duration::from_secs(10), open(fifo.clone()))
        .await
        .expect("reopened in time")
        .expect("join");
    pad.write_all(&encode_key(119, 1)).expect("write");
    pad.write_all(&encode_key(119, 0)).expect("write");
    assert!(
        crate::util::eventually(Duration::from_secs(5), || app.tools.kill_switch()).await,
        "the kill-switch key armed the kill switch"
    );
    drop(pad);
    app.shutdown().await;
}

/// Push-to-talk with no voice pipeline: the core says nobody is listening, and the note goes after release.
#[test]
fn push_to_talk_without_voice_says_so_on_the_core() {
    let h = Harness::start();
    let s = Screen::open(&h, (1920, 1080), false);
    s.ctx.bus.publish(Event::PushToTalk {
        pressed: true,
        listening: false,
    });
    assert!(s.wait(|app| app
        .global::<JarvisAdapter>()
        .get_voice_note()
        .contains("no ears yet")));
    s.ctx.bus.publish(Event::PushToTalk {
        pressed: false,
        listening: false,
    });
    assert!(pump(
        &s.rx,
        jarvis::kiosk::bridge::NOTE_LINGERS + Duration::from_secs(3),
        || s.app()
            .global::<JarvisAdapter>()
            .get_voice_note()
            .is_empty()
    ));
}

/// The TALK button is push-to-talk (the same event as the `[keys]` key, down then up); the core follows the voice
/// pipeline's states and the visualiser its levels.
fn talk_button_and_voice_core(size: (u32, u32)) {
    let h = Harness::start();
    let s = Screen::open(&h, size, false);
    if size.0 < 1000 {
        s.tap("JARVIS"); // the compact layout's tab with the core
    }
    let mut events = s.ctx.bus.subscribe();
    s.tap("TALK");
    let mut talk = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::PushToTalk { pressed, listening } = e.event {
            talk.push((pressed, listening));
        }
    }
    assert_eq!(
        talk,
        vec![(true, false), (false, false)],
        "down, up; nobody listens in this harness"
    );
    assert!(s.wait(|app| app
        .global::<JarvisAdapter>()
        .get_voice_note()
        .contains("no ears yet")));

    s.ctx.bus.publish(Event::VoiceActivity {
        state: "listening".into(),
        detail: None,
    });
    for level in [0.01, 0.09, 0.36] {
        s.ctx.bus.publish(Event::VoiceLevel { level });
    }
    assert!(s.wait(|app| {
        let a = app.global::<JarvisAdapter>();
        let levels: Vec<f32> = a.get_audio_levels().iter().collect();
        a.get_mode() == jarvis::kiosk::ui::CoreMode::Listening
            && levels.len() == jarvis::kiosk::controllers::voice::BANDS
            && (levels[levels.len() - 1] - 0.6).abs() < 1e-4
    }));
    s.hud.render();
    s.ctx.bus.publish(Event::VoiceActivity {
        state: "thinking".into(),
        detail: Some("who is home?".into()),
    });
    assert!(s.wait(|app| app
        .global::<JarvisAdapter>()
        .get_voice_note()
        .contains("who is home?")));
    s.ctx.bus.publish(Event::VoiceActivity {
        state: "idle".into(),
        detail: None,
    });
    assert!(s.wait(|app| {
        let a = app.global::<JarvisAdapter>();
        a.get_mode() == jarvis::kiosk::ui::CoreMode::Idle
            && a.get_audio_levels().iter().all(|l| l == 0.0)
    }));
}

#[test]
fn the_talk_button_and_the_voice_on_the_core_at_1920x1080() {
    talk_button_and_voice_core((1920, 1080));
}

#[test]
fn the_talk_button_and_the_voice_on_the_core_at_800x480() {
    talk_button_and_voice_core((800, 480));
}

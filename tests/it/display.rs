//! The kiosk's display as a person meets it, with the real binary: under a real X server (Xvfb) with real X input
//! (xdotool, nobody calling a callback), a click on the chat field, typing and Enter reach Jarvis as the kiosk's
//! question — with no window manager to hand the window the keyboard; a GPU that cannot draw leaves the HUD on
//! the software renderer, said in `/healthz`; a root without a single font still renders the HUD.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use i_slint_backend_testing::ElementHandle;
use jarvis::kiosk::snapshot::HeadlessUi;

use crate::cli::{blocking_http, start_demo_with, DemoProc};

const BIN: &str = env!("CARGO_BIN_EXE_jarvis");

/// An Xvfb of our own on a free display number, stopped on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        // Numbers of our own per process and per call, so two tests never race for one display; the child must
        // still be running once the socket is there (else another server owns it and we try the next).
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let base = 140 + (std::process::id() % 40) * 5;
        for _ in 0..100 {
            let n = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 400;
            let lock = PathBuf::from(format!("/tmp/.X{n}-lock"));
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if lock.exists() || socket.exists() {
                continue;
            }
            let display = format!(":{n}");
            // -noreset: by default Xvfb resets when its last client leaves, and a client connecting during the
            // reset is refused. The renderer-fallback test's kiosk does exactly that (the GPU probe's connection
            // closes, the software renderer's opens), and under load it lost the race.
            let mut child = Command::new("Xvfb")
                .args([
                    &display,
                    "-screen",
                    "0",
                    "1920x1080x24",
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb starts (scripts/setup installs xvfb)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && !socket.exists() {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if socket.exists() && matches!(child.try_wait(), Ok(None)) {
                return Xvfb { child, display };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("no free X display for Xvfb");
    }

    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs (scripts/setup installs it): {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/healthz`'s display part, once the kiosk reported one.
fn display_status(demo: &DemoProc, data_dir: &Path) -> serde_json::Value {
    let http = blocking_http(None);
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if let Ok(resp) = http.get(format!("{}/healthz", demo.web)).send() {
            if let Ok(body) = resp.json::<serde_json::Value>() {
                if body.get("display").is_some() {
                    return body["display"].clone();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(data_dir.join("stderr.log")).unwrap_or_default();
    panic!("the kiosk never reported its display in /healthz; its log:\n{log}");
}

/// Where a labelled element sits on a 1920x1080 HUD, worked out on the headless renderer (the same layout the
/// window gets at that size), in X screen pixels.
fn position_of(label: &str, dx: f32) -> (i32, i32) {
    let label = label.to_string();
    std::thread::spawn(move || {
        let hud = HeadlessUi::new(1920, 1080, 1.0).expect("headless HUD");
        hud.render();
        let e = ElementHandle::find_by_accessible_label(&hud.app, &label)
            .next()
            .expect("element");
        let (p, s) = (e.absolute_position(), e.size());
        ((p.x + dx) as i32, (p.y + s.height / 2.0) as i32)
    })
    .join()
    .expect("layout thread")
}

#[test]
fn a_person_clicks_the_chat_field_types_and_jarvis_answers_the_kiosk() {
    let x = Xvfb::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = start_demo_with(
        dir.path(),
        500,
        &["--renderer", "software"],
        &[("DISPLAY", &x.display)],
    );
    assert_eq!(display_status(&demo, dir.path())["renderer"], "software");
    // The window is up and mapped, full screen at 0,0 (no window manager places it).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !x
        .run("xwininfo", &["-root", "-tree"])
        .contains("\"Jarvis\"")
    {
        assert!(Instant::now() < deadline, "the Jarvis window appears");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));

    // Click on the field's prompt, left of the text: the part of the box that used to ignore the click.
    let (cx, cy) = position_of("ask Jarvis", -12.0);
    x.run(
        "xdotool",
        &["mousemove", &cx.to_string(), &cy.to_string(), "click", "1"],
    );
    std::thread::sleep(Duration::from_millis(300));
    x.run("xdotool", &["type", "--delay", "40", "status report"]);
    x.run("xdotool", &["key", "Return"]);
    // The terminal too: click, type, Enter.
    let (tx, ty) = position_of("command", -30.0);
    std::thread::sleep(Duration::from_millis(500));
    x.run(
        "xdotool",
        &["mousemove", &tx.to_string(), &ty.to_string(), "click", "1"],
    );
    std::thread::sleep(Duration::from_millis(300));
    x.run("xdotool", &["type", "--delay", "40", "uptime"]);
    x.run("xdotool", &["key", "Return"]);

    // The side port's event log says the question came from the kiosk, and the kiosk ran `uptime`.
    let http = blocking_http(None);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut asked, mut ran) = (false, false);
    while Instant::now() < deadline && !(asked && ran) {
        std::thread::sleep(Duration::from_millis(300));
        let events: serde_json::Value = http
            .get(format!("{}/api/v1/events?limit=200", demo.web))
            .bearer_auth(&demo.token)
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default();
        let list = events["events"].as_array().cloned().unwrap_or_default();
        asked = list.iter().any(|e| {
            e["kind"] == "asked"
                && e["data"]["via"] == "kiosk"
                && e["data"]["text"] == "status report"
        });
        // A successful tier-0 call is live-only; the audit table has it, read below.
        ran = audit_has(&dir.path().join("jarvis-demo.db"), "kiosk", "run_command");
    }
    assert!(
        asked,
        "the kiosk's question reached Jarvis through real X input"
    );
    assert!(ran, "the kiosk ran the typed command");
    drop(demo);
    // Jarvis answered: the conversation has the question and a reply after it.
    let turns = conversation(&dir.path().join("jarvis-demo.db"));
    let q = turns
        .iter()
        .position(|(role, text)| role == "user" && text == "status report")
        .expect("the question is in the conversation");
    assert!(
        turns[q + 1..]
            .iter()
            .any(|(role, text)| role == "assistant" && text.contains("nodes are online")),
        "{turns:?}"
    );
}

fn audit_has(db: &Path, actor: &str, tool: &str) -> bool {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return false;
    };
    conn.query_row(
        "SELECT count(*) FROM audit WHERE actor = ?1 AND tool = ?2",
        [actor, tool],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

fn conversation(db: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).expect("db");
    let mut stmt = conn
        .prepare("SELECT role, content FROM conversation_turns ORDER BY id")
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect()
}

/// A root whose Mesa has no driver (`LIBGL_DRIVERS_PATH` pointing nowhere): the GPU renderer is asked for, its
/// probe fails, the HUD comes up on the software renderer, and `/healthz` says so and why. With the drivers
/// there, the same request keeps the GPU renderer (the probe is not simply failing).
#[test]
fn a_gpu_that_cannot_draw_leaves_the_hud_on_the_software_renderer() {
    let x = Xvfb::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = start_demo_with(
        dir.path(),
        500,
        &["--renderer", "gpu"],
        &[
            ("DISPLAY", &x.display),
            ("LIBGL_DRIVERS_PATH", "/nonexistent"),
        ],
    );
    let d = display_status(&broken, dir.path());
    assert_eq!(d["backend"], "winit");
    assert_eq!(d["renderer"], "software", "{d}");
    let why = d["gpu_fallback"].as_str().unwrap_or_default();
    assert!(why.contains("OpenGL") || why.contains("driver"), "{d}");
    drop(broken);

    let fine = start_demo_with(
        dir.path(),
        500,
        &["--renderer", "gpu"],
        &[("DISPLAY", &x.display)],
    );
    let d = display_status(&fine, dir.path());
    assert_eq!(d["renderer"], "femtovg", "{d}");
    assert!(d["gpu_fallback"].is_null(), "{d}");
}

/// Every system font and fontconfig's configuration hidden (a private mount namespace): the HUD renders with its
/// own embedded font, says so, and does not panic.
#[test]
fn a_root_without_fonts_still_renders_the_hud() {
    let dir = tempfile::tempdir().expect("tempdir");
    let png = dir.path().join("hud.png");
    let script = "for d in /usr/share/fonts /usr/local/share/fonts /var/cache/fontconfig \
                  \"$HOME/.cache/fontconfig\" \"$HOME/.fonts\" \"$HOME/.local/share/fonts\" /etc/fonts; do \
                  [ -d \"$d\" ] && mount -t tmpfs none \"$d\"; done; \
                  fc-list | wc -l >&2; exec \"$@\"";
    let out = Command::new("unshare")
        .args([
            "-m", "sh", "-c", script, "sh", BIN, "snapshot", "--demo", "--out",
        ])
        .arg(&png)
        .env_remove("FONTCONFIG_FILE")
        .env_remove("FONTCONFIG_PATH")
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .expect("unshare runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.trim() == "0"),
        "fontconfig saw no font in the namespace: {stderr}"
    );
    assert!(stderr.contains("the HUD uses its own"), "{stderr}");
    // The frame has text on it: many distinct colours (anti-aliased glyphs), not a flat panel.
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png).expect("png"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let colours: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
    assert!(colours.len() > 200, "{} colours", colours.len());
}

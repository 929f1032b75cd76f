//! Headless rendering with Slint's software renderer: the window lives in memory, frames go to a pixel buffer
//! and from there to PNG. Used by `jarvis snapshot`, the screenshot tests and the frame-time benchmark. The
//! platform is installed for the calling thread only, so tests can each render their own window.

use std::path::Path;
use std::rc::Rc;

use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{Platform, WindowAdapter, WindowEvent};
use slint::{ComponentHandle, PhysicalSize, PlatformError, Rgb8Pixel};

use std::time::{Duration, Instant};

use slint::Model;

use crate::kiosk::ui::{
    AppWindow, ApprovalAdapter, ClusterAdapter, KeyboardAdapter, TerminalAdapter,
};
use crate::kiosk::{attach, drain, KioskContext, UiThread};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("bad size `{0}`: give WIDTHxHEIGHT, for example 1920x1080")]
    BadSize(String),
    #[error("cannot start the headless renderer: {0}")]
    Platform(String),
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

struct Headless {
    window: Rc<MinimalSoftwareWindow>,
}

impl Platform for Headless {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, PlatformError> {
        Ok(self.window.clone())
    }
}

/// `1920x1080` to (1920, 1080).
pub fn parse_size(s: &str) -> Result<(u32, u32), SnapshotError> {
    let bad = || SnapshotError::BadSize(s.to_string());
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    );
    if !(320..=8192).contains(&w) || !(240..=8192).contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
}

/// The scale factor a screen of this many physical pixels gets: 1 up to 1440 lines, then whole or half steps
/// so that a 4K panel shows the 1080p layout at twice the sharpness.
pub fn auto_scale(_width: u32, height: u32) -> f32 {
    if height < 1440 {
        1.0
    } else {
        ((height as f32 / 1080.0) * 2.0).floor() / 2.0
    }
}

/// One rendered frame, RGB.
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<Rgb8Pixel>,
}

impl Frame {
    /// The number of distinct colours, a cheap check that something was drawn.
    pub fn distinct_colours(&self) -> usize {
        let mut seen: std::collections::HashSet<(u8, u8, u8)> = std::collections::HashSet::new();
        for p in &self.pixels {
            seen.insert((p.r, p.g, p.b));
        }
        seen.len()
    }

    pub fn write_png(&self, path: &Path) -> Result<(), SnapshotError> {
        let err = |message: String| SnapshotError::Write {
            path: path.display().to_string(),
            message,
        };
        let file = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), self.width, self.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| err(e.to_string()))?;
        let bytes: Vec<u8> = self.pixels.iter().flat_map(|p| [p.r, p.g, p.b]).collect();
        writer
            .write_image_data(&bytes)
            .map_err(|e| err(e.to_string()))?;
        writer.finish().map_err(|e| err(e.to_string()))
    }
}

/// The HUD in memory, at a fixed physical size.
pub struct HeadlessUi {
    pub window: Rc<MinimalSoftwareWindow>,
    pub app: AppWindow,
    width: u32,
    height: u32,
}

impl HeadlessUi {
    /// Installs the headless platform on this thread and builds the window. Fails if this thread already has
    /// a Slint platform.
    pub fn new(width: u32, height: u32, scale: f32) -> Result<HeadlessUi, SnapshotError> {
        let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
        slint::platform::set_platform(Box::new(Headless {
            window: window.clone(),
        }))
        .map_err(|e| SnapshotError::Platform(e.to_string()))?;
        window.dispatch_event(WindowEvent::ScaleFactorChanged {
            scale_factor: scale,
        });
        window.set_size(PhysicalSize::new(width, height));
        let app = AppWindow::new().map_err(|e| SnapshotError::Platform(e.to_string()))?;
        app.show()
            .map_err(|e| SnapshotError::Platform(e.to_string()))?;
        Ok(HeadlessUi {
            window,
            app,
            width,
            height,
        })
    }

    /// Renders a complete frame, whether or not anything changed.
    pub fn render(&self) -> Frame {
        slint::platform::update_timers_and_animations();
        self.window.request_redraw();
        self.render_if_needed().unwrap_or_else(|| Frame {
            width: self.width,
            height: self.height,
            pixels: vec![Rgb8Pixel::default(); (self.width * self.height) as usize],
        })
    }

    /// Renders only if something changed since the last frame (what a kiosk does on an idle screen).
    pub fn render_if_needed(&self) -> Option<Frame> {
        slint::platform::update_timers_and_animations();
        let mut pixels = vec![Rgb8Pixel::default(); (self.width * self.height) as usize];
        let drawn = self.window.draw_if_needed(|r| {
            r.render(&mut pixels, self.width as usize);
        });
        drawn.then_some(Frame {
            width: self.width,
            height: self.height,
            pixels,
        })
    }
}

/// What `capture` saw, for the timings `jarvis snapshot` prints.
pub struct Capture {
    pub hud: HeadlessUi,
    pub frame: Frame,
    /// Building the window and its models.
    pub build: Duration,
    /// Rendering the frame.
    pub render: Duration,
}

/// Renders the live HUD for `ctx` headless: waits (up to `wait`) for the first cluster data, optionally plays the
/// demo scene (a terminal command and a guest shutdown that asks for approval, as a user would do on the screen),
/// then renders one frame.
pub fn capture(
    ctx: &KioskContext,
    (width, height): (u32, u32),
    scale: f32,
    scene: bool,
    wait: Duration,
) -> Result<Capture, SnapshotError> {
    let started = Instant::now();
    let (ui, rx) = UiThread::queue();
    let ctx = KioskContext { ui, ..ctx.clone() };
    let hud = HeadlessUi::new(width, height, scale)?;
    if scene {
        seed_faces(&ctx.store);
        seed_presence(&ctx);
    }
    let stop = attach(&hud.app, &ctx);
    let build = started.elapsed();
    let deadline = Instant::now() + wait;
    let has_temps = || {
        ctx.state
            .get()
            .cluster
            .nodes
            .iter()
            .any(|n| !n.temperatures.is_empty())
    };
    pump_until(&rx, deadline, || {
        hud.app.global::<ClusterAdapter>().get_nodes().row_count() > 0 && has_temps()
    });
    if scene {
        play_scene(&hud.app);
        pump_until(&rx, deadline, || {
            // uptime's own output, not just the command's echo and the approval note.
            hud.app
                .global::<TerminalAdapter>()
                .get_lines()
                .iter()
                .any(|l| l.text.contains("load average"))
                && hud.app.global::<ApprovalAdapter>().get_cards().row_count() > 0
                && hud
                    .app
                    .global::<crate::kiosk::ui::FacesAdapter>()
                    .get_review()
                    .row_count()
                    > 0
        });
    }
    if ctx.keyboard {
        type_a_question(&hud);
    }
    // Let the last posted updates land.
    std::thread::sleep(Duration::from_millis(100));
    drain(&rx);
    let t = Instant::now();
    let frame = hud.render();
    let render = t.elapsed();
    stop.cancel();
    Ok(Capture {
        hud,
        frame,
        build,
        render,
    })
}

fn pump_until(
    rx: &std::sync::mpsc::Receiver<crate::kiosk::UiJob>,
    deadline: Instant,
    done: impl Fn() -> bool,
) {
    while Instant::now() < deadline {
        drain(rx);
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::warn!("the snapshot did not see everything it waited for; rendering what there is");
}

/// The on-screen keyboard in use: the chat field takes the focus and a question is half typed (the keyboard
/// screenshots).
fn type_a_question(hud: &HeadlessUi) {
    // On a small panel the conversation is the second tab.
    hud.app.set_tab(1);
    hud.render();
    hud.app
        .global::<KeyboardAdapter>()
        .set_focus_request("chat".into());
    hud.render();
    for c in "who is ho".chars() {
        crate::kiosk::controllers::keyboard::press(&hud.app, &c.to_string());
    }
}

/// The scene's household, when the store has nobody: three people and a stranger seen twice at the front door,
/// drawn as silhouettes (no photo of a real person goes into a screenshot), with made-up embeddings. Only the
/// staged scene of `jarvis snapshot --scene` and the tests use it; the demo itself starts with nobody enrolled.
pub fn seed_faces(store: &crate::store::Store) {
    use crate::vision::{gallery, review};
    if gallery::people(store)
        .map(|p| !p.is_empty())
        .unwrap_or(true)
    {
        return;
    }
    let unit = |axis: usize| {
        let mut v = vec![0.0f32; crate::vision::faces::EMBEDDING_LEN];
        v[axis] = 1.0;
        v
    };
    let now = crate::time::now_ms();
    let settings = gallery::GallerySettings::default();
    for (i, (name, tone)) in [
        ("Alice", [200, 120, 90]),
        ("Bob", [90, 140, 200]),
        ("Carol", [120, 180, 110]),
    ]
    .into_iter()
    .enumerate()
    {
        let Ok(p) = gallery::create_person(store, name, now) else {
            continue;
        };
        let crop = silhouette(tone);
        let e = unit(i);
        let sample = gallery::NewSample {
            embedding: &e,
            crop_jpeg: &crop,
            source: gallery::SampleSource::Enrolled,
            from_sighting: None,
        };
        let _ = store.write(|tx| gallery::add_sample(tx, p.id, &sample, &settings, now));
    }
    let Ok(index) = gallery::Index::load(store) else {
        return;
    };
    let stranger = silhouette([150, 150, 150]);
    let alice = silhouette([200, 120, 90]);
    for (e, crop) in [
        (unit(40), &stranger),
        (unit(40), &stranger),
        (unit(0), &alice),
    ] {
        let seen = review::Seen {
            source: "front_door",
            embedding: &e,
            crop_jpeg: crop,
            good: true,
            hint: None,
        };
        let _ = review::record(store, &index, &seen, &settings, now);
    }
}

/// The scene's presence: the demo's cameras (live), and a morning of arrivals and departures for the seeded
/// people in the timeline, restored through the household's own start (the rules and the panel as in use).
fn seed_presence(ctx: &KioskContext) {
    use crate::vision::timeline::{self, Kind, NewEntry};
    let Ok(people) = crate::vision::gallery::people(&ctx.store) else {
        return;
    };
    let id = |name: &str| people.iter().find(|p| p.name == name).map(|p| p.id);
    let now = crate::time::now_ms();
    let min = 60_000;
    let rows: Vec<NewEntry> = [
        ("Bob", Kind::Arrived, 190 * min),
        ("Alice", Kind::Arrived, 150 * min),
        ("Bob", Kind::Left, 95 * min),
        ("Carol", Kind::Arrived, 40 * min),
        ("Alice", Kind::Seen, 12 * min),
    ]
    .into_iter()
    .filter_map(|(name, kind, ago)| {
        Some(NewEntry {
            at_ms: now - ago,
            kind,
            person: Some(id(name)?),
            camera: if kind == Kind::Seen {
                "side_house"
            } else {
                "front_door"
            }
            .into(),
            confidence: 0.72,
            inferred: false,
            sighting: None,
            frigate_event: None,
        })
    })
    .collect();
    let probe = timeline::Query {
        limit: 1,
        ..Default::default()
    };
    let fresh = timeline::search(&ctx.store, &probe).is_ok_and(|r| r.is_empty());
    if fresh {
        let _ = timeline::append_all(&ctx.store, &rows);
    }
    let cameras = crate::demo::demo_cameras();
    let (store, state, bus) = (ctx.store.clone(), ctx.state.clone(), ctx.bus.clone());
    ctx.runtime.block_on(async move {
        crate::vision::household::Household::start(
            store,
            state.clone(),
            bus.clone(),
            &cameras,
            Default::default(),
        )
        .await;
        for c in &cameras {
            crate::vision::household::set_camera_state(&state, &bus, &c.name, "live", None);
        }
    });
}

/// A head-and-shoulders silhouette on a dark ground, 112×112, as a JPEG.
fn silhouette(tone: [u8; 3]) -> Vec<u8> {
    let side = crate::vision::align::SIDE;
    let mut rgb = vec![0u8; side * side * 3];
    for y in 0..side {
        for x in 0..side {
            let (fx, fy) = (x as f32 - 56.0, y as f32);
            let head = fx * fx + (fy - 46.0) * (fy - 46.0) < 24.0 * 24.0;
            let shoulders = fy > 82.0 && fx.abs() < 48.0 - (fy - 82.0) * -0.6;
            let px = if head || shoulders {
                tone
            } else {
                [20, 26, 34]
            };
            rgb[(y * side + x) * 3..][..3].copy_from_slice(&px);
        }
    }
    crate::vision::service::jpeg(&rgb, side as u32)
}

/// What a user would do first on the demo: run `uptime` on pve, and press the power button of a running guest
/// on pve (a shutdown, so an approval card appears).
pub fn play_scene(w: &AppWindow) {
    let t = w.global::<TerminalAdapter>();
    t.set_host("pve".into());
    t.invoke_run("pve".into(), "uptime".into());
    let c = w.global::<ClusterAdapter>();
    let guest = c
        .get_all_guests()
        .iter()
        .find(|g| g.node == "pve" && g.running);
    if let Some(g) = guest {
        c.invoke_guest_power(g.vmid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_scale() {
        assert_eq!(parse_size("1920x1080").ok(), Some((1920, 1080)));
        assert_eq!(parse_size("800X480").ok(), Some((800, 480)));
        assert!(parse_size("1920").is_err());
        assert!(parse_size("10x10").is_err());
        assert_eq!(auto_scale(1920, 1080), 1.0);
        assert_eq!(auto_scale(1280, 800), 1.0);
        assert_eq!(auto_scale(3840, 2160), 2.0);
        assert_eq!(auto_scale(2560, 1440), 1.0);
    }
}

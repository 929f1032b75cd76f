//! The camera tile (`CameraAdapter`): a camera's picture a few times a second over the HUD, opened by a tap on the
//! camera's button under the presence panel or by `CameraShown` on the bus (the `show_camera` tool: "show me the
//! front door", an MCP client), closed by a tap or after [`OPEN_FOR`]. Frames come from Frigate's latest frame,
//! fetched and decoded (through `vision::photo`, within its limits) off the UI thread, or, for a camera Jarvis
//! decodes itself, from its reader's latest frame (`vision::frames`); one camera streams at a time, and nothing
//! streams while the tile is closed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slint::ComponentHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::Event;
use crate::kiosk::ui::{AppWindow, CameraAdapter};
use crate::kiosk::{rows, KioskContext};

/// Time between frames (2.5 a second).
pub const FRAME_EVERY: Duration = Duration::from_millis(400);
/// The tile closes itself after this long.
pub const OPEN_FOR: Duration = Duration::from_secs(120);
/// Frames are asked for at this height (the tile is at most a screen tall).
const FRAME_HEIGHT: u32 = 720;

/// The stream of the open tile, if any.
#[derive(Clone, Default)]
pub struct Tile(Arc<Mutex<Option<(String, CancellationToken)>>>);

impl Tile {
    fn replace(&self, next: Option<(String, CancellationToken)>) {
        let mut held = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, old)) = held.take() {
            old.cancel();
        }
        *held = next;
    }

    /// The camera shown now.
    pub fn shown(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|(c, _)| c.clone())
    }
}

/// Opens the tile on `camera` (a configured camera's name) and starts its stream.
pub fn open(ctx: &KioskContext, weak: slint::Weak<AppWindow>, camera: &str) {
    let w = ctx.state.get();
    let Some(view) = w
        .presence
        .cameras
        .iter()
        .find(|c| c.info.name == camera)
        .cloned()
    else {
        return;
    };
    let stop = CancellationToken::new();
    ctx.camera.replace(Some((camera.to_string(), stop.clone())));
    let (name, weak2) = (camera.to_string(), weak.clone());
    ctx.ui.post(move || {
        if let Some(w) = weak2.upgrade() {
            let a = w.global::<CameraAdapter>();
            a.set_shown(name.into());
            a.set_state("connecting".into());
            a.set_has_frame(false);
        }
    });
    let ctx2 = ctx.clone();
    ctx.runtime.spawn(async move {
        let frigate = ctx2.tools.frigate();
        let source = view.info.frigate_name.clone();
        let opened = Instant::now();
        let mut frames = 0u32;
        loop {
            let started = Instant::now();
            let state = match (&frigate, &source) {
                (Some(client), Some(name)) => match client.latest(name, Some(FRAME_HEIGHT)).await {
                    Ok(jpeg) => {
                        let decoded = tokio::task::spawn_blocking(move || {
                            crate::vision::photo::decode(&jpeg, &Default::default())
                        })
                        .await;
                        match decoded {
                            Ok(Ok(p)) => {
                                frames += 1;
                                post_frame(&ctx2, weak.clone(), &stop, p.width, p.height, p.rgb);
                                format!("live · {:.1} fps", 1.0 / FRAME_EVERY.as_secs_f64())
                            }
                            Ok(Err(e)) => format!("lost: {e}"),
                            Err(e) => format!("lost: {e}"),
                        }
                    }
                    Err(e) => format!("lost: {e}"),
                },
                _ if view.info.source != "frigate" => {
                    // Decoded here: the reader's latest frame, shown as it is (no JPEG round trip).
                    let name = view.info.name.clone();
                    match ctx2.tools.frames().latest(&name) {
                        Some(f) => {
                            frames += 1;
                            let p = f.photo.clone();
                            post_frame(
                                &ctx2,
                                weak.clone(),
                                &stop,
                                p.width,
                                p.height,
                                p.rgb.clone(),
                            );
                            let w = ctx2.state.get();
                            let detail = w
                                .presence
                                .cameras
                                .iter()
                                .find(|c| c.info.name == name)
                                .and_then(|c| c.detail.clone())
                                .unwrap_or_default();
                            format!("live · {detail}")
                        }
                        None => {
                            let w = ctx2.state.get();
                            match w.presence.cameras.iter().find(|c| c.info.name == name) {
                                Some(c) => format!(
                                    "{}{}",
                                    c.state,
                                    c.detail
                                        .as_ref()
                                        .map(|d| format!(": {d}"))
                                        .unwrap_or_default()
                                ),
                                None => "lost".into(),
                            }
                        }
                    }
                }
                _ => "its frames are not available here (Frigate is not configured)".into(),
            };
            let (weak2, stop2) = (weak.clone(), stop.clone());
            ctx2.ui.post(move || {
                // A fetch that was in flight when the tile closed or turned to another camera lands here late:
                // its frame and state belong to a stream that no longer exists.
                if stop2.is_cancelled() {
                    return;
                }
                if let Some(w) = weak2.upgrade() {
                    w.global::<CameraAdapter>().set_state(state.into());
                }
            });
            if opened.elapsed() >= OPEN_FOR {
                break;
            }
            let wait = FRAME_EVERY.saturating_sub(started.elapsed());
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::debug!(frames, "camera tile closed itself");
        close(&ctx2, weak);
    });
}

fn post_frame(
    ctx: &KioskContext,
    weak: slint::Weak<AppWindow>,
    stop: &CancellationToken,
    width: u32,
    height: u32,
    rgb: Vec<u8>,
) {
    let stop = stop.clone();
    ctx.ui.post(move || {
        if stop.is_cancelled() {
            return;
        }
        if let Some(w) = weak.upgrade() {
            let a = w.global::<CameraAdapter>();
            a.set_frame(slint::Image::from_rgb8(
                slint::SharedPixelBuffer::clone_from_slice(&rgb, width, height),
            ));
            a.set_has_frame(true);
        }
    });
}

/// Closes the tile and stops its stream.
pub fn close(ctx: &KioskContext, weak: slint::Weak<AppWindow>) {
    ctx.camera.replace(None);
    ctx.ui.post(move || {
        if let Some(w) = weak.upgrade() {
            let a = w.global::<CameraAdapter>();
            a.set_shown("".into());
            a.set_has_frame(false);
            a.set_frame(slint::Image::default());
        }
    });
}

/// The camera buttons, from the state.
pub fn names(ctx: &KioskContext) -> Vec<slint::SharedString> {
    ctx.state
        .get()
        .presence
        .cameras
        .iter()
        .map(|c| c.info.name.as_str().into())
        .collect()
}

/// Opens the tile on every `CameraShown`, and keeps the buttons in step with the cameras.
pub async fn watch(weak: slint::Weak<AppWindow>, ctx: KioskContext, stop: CancellationToken) {
    let mut bus = ctx.bus.subscribe();
    let mut shown_names = Vec::new();
    loop {
        let now = names(&ctx);
        if now != shown_names {
            shown_names = now.clone();
            let weak2 = weak.clone();
            ctx.ui.post(move || {
                if let Some(w) = weak2.upgrade() {
                    rows::sync_handle(&w.global::<CameraAdapter>().get_cameras(), &now);
                }
            });
        }
        tokio::select! {
            _ = stop.cancelled() => {
                ctx.camera.replace(None);
                return;
            }
            r = bus.recv() => match r {
                Ok(s) => {
                    if let Event::CameraShown { camera } = s.event {
                        open(&ctx, weak.clone(), &camera);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

pub fn setup(w: &AppWindow, ctx: &KioskContext) {
    let a = w.global::<CameraAdapter>();
    a.set_cameras(rows::new_model::<slint::SharedString>().1);
    let (c, weak) = (ctx.clone(), w.as_weak());
    a.on_show(move |name| open(&c, weak.clone(), name.as_str()));
    let (c, weak) = (ctx.clone(), w.as_weak());
    a.on_close(move || close(&c, weak.clone()));
}

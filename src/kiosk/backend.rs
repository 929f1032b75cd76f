//! Which Slint backend and renderer the kiosk uses, and running the window. winit (X11) is for desktop
//! development and for `jarvis demo` on a machine with a display; LinuxKMS draws straight to the screen on the
//! appliance (no X, no Wayland). The GPU renderer (femtovg, OpenGL ES) is used where a render node exists and a
//! probe shows it can draw, the software renderer otherwise. `SLINT_BACKEND` (for example `winit-software`) overrides the config, as Slint
//! documents.

use std::path::Path;

use slint::ComponentHandle;

use crate::kiosk::controllers::keyboard::KeyboardMode;
use crate::kiosk::display;
use crate::kiosk::keys::KeySettings;
use crate::kiosk::ui::AppWindow;
use crate::kiosk::{attach, KioskContext, UiThread};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// A window when a display is present, the screen (KMS) when there is a DRM device, else no UI.
    Auto,
    Winit,
    LinuxKms,
    /// No UI (headless server, `jarvis run` over SSH).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RendererChoice {
    Auto,
    Software,
    Gpu,
}

/// `[kiosk]` and `[keys]` in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct KioskSettings {
    pub backend: BackendChoice,
    pub renderer: RendererChoice,
    pub keys: Option<KeySettings>,
    /// When the on-screen keyboard comes up.
    pub keyboard: KeyboardMode,
    /// Whether the backend's own quit chord (Ctrl+Alt+Backspace on LinuxKMS) may end the kiosk: for development
    /// only; on the appliance a keyboard must not be able to quit it.
    pub allow_quit_chord: bool,
}

impl Default for KioskSettings {
    fn default() -> Self {
        KioskSettings {
            backend: BackendChoice::Auto,
            renderer: RendererChoice::Auto,
            keys: None,
            keyboard: KeyboardMode::Auto,
            allow_quit_chord: false,
        }
    }
}

impl BackendChoice {
    pub fn parse(s: &str) -> Option<BackendChoice> {
        Some(match s {
            "auto" => BackendChoice::Auto,
            "winit" => BackendChoice::Winit,
            "linuxkms" => BackendChoice::LinuxKms,
            "none" => BackendChoice::None,
            _ => return None,
        })
    }
}

impl RendererChoice {
    pub fn parse(s: &str) -> Option<RendererChoice> {
        Some(match s {
            "auto" => RendererChoice::Auto,
            "software" => RendererChoice::Software,
            "gpu" => RendererChoice::Gpu,
            _ => return None,
        })
    }
}

/// What the machine offers, read once (a struct so the choice is testable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Machine {
    /// `DISPLAY` or `WAYLAND_DISPLAY` is set.
    pub display: bool,
    /// A DRM card (`/dev/dri/card*`) to scan out to.
    pub drm_card: bool,
    /// A render node (`/dev/dri/renderD*`): a GPU the GL renderer can use.
    pub render_node: bool,
}

impl Machine {
    pub fn probe() -> Machine {
        let env = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        let dri = |prefix: &str| {
            std::fs::read_dir(Path::new("/dev/dri"))
                .map(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
                })
                .unwrap_or(false)
        };
        Machine {
            display: env("DISPLAY") || env("WAYLAND_DISPLAY"),
            drm_card: dri("card"),
            render_node: dri("renderD"),
        }
    }
}

/// Whether this build has Slint's winit backend (`desktop`) and the GPU renderer (`kiosk-gpu`).
const HAS_WINIT: bool = cfg!(feature = "desktop");
const HAS_FEMTOVG: bool = cfg!(feature = "kiosk-gpu");

/// The Slint backend and renderer names to ask for; `None` means no UI.
/// With this build's backends and renderers: winit only with the `desktop` feature, femtovg only with
/// `kiosk-gpu` (the static flavour has neither: on a desktop it runs without the UI unless told `linuxkms`).
pub fn choose(s: &KioskSettings, m: Machine) -> Option<(&'static str, &'static str)> {
    let backend = match s.backend {
        BackendChoice::None => return None,
        BackendChoice::Winit => "winit",
        BackendChoice::LinuxKms => "linuxkms",
        BackendChoice::Auto if m.display && HAS_WINIT => "winit",
        BackendChoice::Auto if m.display => return None,
        BackendChoice::Auto if m.drm_card => "linuxkms",
        BackendChoice::Auto => return None,
    };
    let renderer = match s.renderer {
        RendererChoice::Software => "software",
        RendererChoice::Gpu if HAS_FEMTOVG => "femtovg",
        RendererChoice::Gpu => {
            tracing::warn!(
                "this build has no GPU renderer (the static flavour); using the software renderer"
            );
            "software"
        }
        RendererChoice::Auto if m.render_node && HAS_FEMTOVG => "femtovg",
        RendererChoice::Auto => "software",
    };
    Some((backend, renderer))
}

#[derive(Debug, thiserror::Error)]
pub enum KioskError {
    #[error("no display to show the kiosk on (no DISPLAY and no /dev/dri/card*); running without the UI")]
    NoDisplay,
    #[error("cannot start the kiosk UI with {backend}/{renderer}: {message}")]
    Backend {
        backend: String,
        renderer: String,
        message: String,
    },
    #[error("the kiosk UI stopped: {0}")]
    Run(String),
}

/// Set by [`request_quit`]: the quit was Jarvis's own (a signal, shutdown), not the backend's.
static QUIT_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ends the kiosk's event loop (from any thread): the one way Jarvis itself closes the HUD.
pub fn request_quit() {
    QUIT_REQUESTED.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = slint::invoke_from_event_loop(|| {
        let _ = slint::quit_event_loop();
    });
}

/// Shows the HUD and runs Slint's event loop on this thread until Jarvis quits it (or, with winit, the window is
/// closed). Call from the main thread.
///
/// On the way up: a GPU renderer is tried in a child process first ([`probe_renderer`]) and, if it cannot
/// draw, the software renderer is used instead; on LinuxKMS the backend's quit chord is swallowed (unless
/// `allow_quit_chord`) and missing input devices or udev are reported. What was chosen is published as
/// `World::display` (shown by `/healthz`).
pub fn run(settings: &KioskSettings, mut ctx: KioskContext) -> Result<(), KioskError> {
    let from_env = std::env::var_os("SLINT_BACKEND").is_some_and(|v| !v.is_empty());
    let chosen = choose(settings, Machine::probe());
    let (backend, mut renderer) = match (from_env, chosen) {
        (true, _) => ("(SLINT_BACKEND)", "(SLINT_BACKEND)"),
        (false, Some(c)) => c,
        (false, None) => return Err(KioskError::NoDisplay),
    };
    let mut gpu_fallback = None;
    if !from_env && renderer == "femtovg" {
        if let Err(why) = probe_renderer(backend, renderer) {
            tracing::warn!(
                "the GPU renderer cannot start on {backend} ({why}); using the software renderer"
            );
            gpu_fallback = Some(why);
            renderer = "software";
        }
    }
    let mut warnings = Vec::new();
    if backend == "linuxkms" {
        // libinput needs udevd; the static flavour reads /dev/input itself.
        let udev = display::udev_running() || !cfg!(feature = "kiosk-gpu");
        warnings = display::input_warnings(udev, display::event_devices());
        for w in &warnings {
            tracing::warn!("{w}");
        }
    }
    let mut selector = slint::BackendSelector::new();
    if !from_env {
        selector = selector
            .backend_name(backend.into())
            .renderer_name(renderer.into());
    }
    #[cfg(feature = "kiosk-gpu")]
    if !settings.allow_quit_chord {
        selector = selector.with_libinput_event_hook(display::quit_chord_hook());
    }
    selector.select().map_err(|e| KioskError::Backend {
        backend: backend.into(),
        renderer: renderer.into(),
        message: e.to_string(),
    })?;
    tracing::info!(backend, renderer, "kiosk UI");
    ctx.state.update(|w| {
        w.display = crate::state::DisplayStatus {
            backend: backend.into(),
            renderer: renderer.into(),
            gpu_fallback: gpu_fallback.clone(),
            fonts: match crate::kiosk::fonts::setup() {
                Some(
                    crate::kiosk::fonts::FontSetup::Embedded(_)
                    | crate::kiosk::fonts::FontSetup::NoFontconfig,
                ) => "embedded".into(),
                _ => "system".into(),
            },
            warnings: warnings.clone(),
        }
    });
    ctx.ui = UiThread::EventLoop;
    ctx.keyboard =
        settings
            .keyboard
            .offered(crate::kiosk::controllers::keyboard::touch_screen_present(
                Path::new("/dev/input"),
            ));
    let window = AppWindow::new().map_err(|e| KioskError::Run(e.to_string()))?;
    let stop = attach(&window, &ctx);
    if backend == "linuxkms" {
        window.window().set_fullscreen(true);
        // Without libinput (the static flavour) Slint's LinuxKMS backend reads no input: Jarvis does.
        #[cfg(not(feature = "kiosk-gpu"))]
        crate::kiosk::evdev_input::start(
            window.as_weak(),
            Path::new("/dev/input"),
            settings.keys.iter().map(|k| k.device.clone()).collect(),
        );
    } else {
        #[cfg(feature = "desktop")]
        crate::kiosk::x11_focus::take_focus_when_shown(window.as_weak());
    }
    let result = loop {
        let result = window.run().map_err(|e| KioskError::Run(e.to_string()));
        let ours = QUIT_REQUESTED.load(std::sync::atomic::Ordering::SeqCst);
        if result.is_err() || ours || backend != "linuxkms" || settings.allow_quit_chord {
            break result;
        }
        // LinuxKMS quits its loop on Ctrl+Alt+Backspace/Delete (the hook swallows those; this catches any
        // other way the backend finds): on the appliance nothing but Jarvis ends the kiosk.
        tracing::warn!("the display backend ended the event loop; the kiosk stays up");
    };
    stop.cancel();
    ctx.state.update(|w| w.display = Default::default());
    result
}

/// Whether `renderer` can draw on `backend` here, found out in a child process (`jarvis kiosk-probe`) so a
/// renderer that fails — or crashes, or hangs in a GPU driver — cannot take the kiosk down with it: Slint's
/// backend can be chosen only once per process. `Err` carries the reason to log.
pub fn probe_renderer(backend: &str, renderer: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the jarvis binary: {e}"))?;
    let mut child = std::process::Command::new(exe)
        .args(["kiosk-probe", "--backend", backend, "--renderer", renderer])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the probe: {e}"))?;
    // Drained while the child runs: a chatty driver must not fill the pipe and block the probe.
    let said = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            use std::io::Read;
            let mut kept = Vec::new();
            let mut rest = err.take(64 * 1024);
            let _ = rest.read_to_end(&mut kept);
            let _ = std::io::copy(&mut rest.into_inner(), &mut std::io::sink());
            String::from_utf8_lossy(&kept).into_owned()
        })
    });
    let heard = |said: Option<std::thread::JoinHandle<String>>| {
        said.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    // The child gives up on its own PROBE_LIMIT after its event loop starts and says why; this longer limit is
    // only for a child stuck in a driver (a loaded machine may take seconds just to start the child).
    let deadline = std::time::Instant::now() + PROBE_LIMIT + PROBE_GRACE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let said = heard(said);
                let last: String = (said.lines().rev())
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("nothing")
                    .chars()
                    .take(300)
                    .collect();
                return Err(format!(
                    "the probe hung for {} s (its last words: {last})",
                    (PROBE_LIMIT + PROBE_GRACE).as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for the probe: {e}")),
        }
    };
    let said = heard(said);
    if status.success() {
        return Ok(());
    }
    Err(display::last_words(&said, status))
}

/// How much longer than [`PROBE_LIMIT`] the kiosk waits for a probe before killing it.
const PROBE_GRACE: std::time::Duration = std::time::Duration::from_secs(24);

/// How long a renderer probe may take to draw its first frame (a working GPU needs well under a second; a
/// failing one often keeps the event loop running without ever drawing).
pub const PROBE_LIMIT: std::time::Duration = std::time::Duration::from_secs(6);

/// `jarvis kiosk-probe`: selects `backend` with `renderer`, shows the HUD and exits 0 once one frame was drawn
/// with a GPU (a renderer that reports rendering through OpenGL); 1 otherwise.
pub fn probe_main(backend: &str, renderer: &str) -> bool {
    let selected = slint::BackendSelector::new()
        .backend_name(backend.into())
        .renderer_name(renderer.into())
        .select();
    if let Err(e) = selected {
        eprintln!("{e}");
        return false;
    }
    let window = match AppWindow::new() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            return false;
        }
    };
    let drawn = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = drawn.clone();
    let notifier = window.window().set_rendering_notifier(move |state, _api| {
        if matches!(state, slint::RenderingState::AfterRendering) && !flag.get() {
            flag.set(true);
            let _ = slint::quit_event_loop();
        }
    });
    if let Err(e) = notifier {
        eprintln!("the renderer does not draw with a GPU: {e}");
        return false;
    }
    slint::Timer::single_shot(PROBE_LIMIT, || {
        let _ = slint::quit_event_loop();
    });
    if let Err(e) = window.run() {
        eprintln!("{e}");
        return false;
    }
    if !drawn.get() {
        eprintln!("no frame drawn within {} s", PROBE_LIMIT.as_secs());
    }
    drawn.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_follows_the_machine() {
        let auto = KioskSettings::default();
        let desktop = Machine {
            display: true,
            drm_card: true,
            render_node: true,
        };
        let xvfb = Machine {
            display: true,
            drm_card: false,
            render_node: false,
        };
        let appliance = Machine {
            display: false,
            drm_card: true,
            render_node: true,
        };
        let vm_console = Machine {
            display: false,
            drm_card: true,
            render_node: false,
        };
        assert_eq!(choose(&auto, desktop), Some(("winit", "femtovg")));
        assert_eq!(choose(&auto, xvfb), Some(("winit", "software")));
        assert_eq!(choose(&auto, appliance), Some(("linuxkms", "femtovg")));
        assert_eq!(choose(&auto, vm_console), Some(("linuxkms", "software")));
        assert_eq!(choose(&auto, Machine::default()), None);
        let forced = KioskSettings {
            backend: BackendChoice::LinuxKms,
            renderer: RendererChoice::Software,
            ..KioskSettings::default()
        };
        assert_eq!(choose(&forced, desktop), Some(("linuxkms", "software")));
        let off = KioskSettings {
            backend: BackendChoice::None,
            ..auto.clone()
        };
        assert_eq!(choose(&off, desktop), None);
    }
}

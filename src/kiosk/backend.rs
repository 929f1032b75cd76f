//! Which Slint backend and renderer the kiosk uses, and running the window. winit (X11) is for desktop
//! development and for `jarvis demo` on a machine with a display; LinuxKMS draws straight to the screen on the
//! appliance (no X, no Wayland). The GPU renderer (femtovg, OpenGL ES) is used where a render node exists, the
//! software renderer otherwise. `SLINT_BACKEND` (for example `winit-software`) overrides the config, as Slint
//! documents.

use std::path::Path;

use slint::ComponentHandle;

use crate::kiosk::controllers::keyboard::KeyboardMode;
use crate::kiosk::keys::{self, KeyAction, KeySettings};
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

/// The Slint backend and renderer names to ask for; `None` means no UI.
pub fn choose(s: &KioskSettings, m: Machine) -> Option<(&'static str, &'static str)> {
    let backend = match s.backend {
        BackendChoice::None => return None,
        BackendChoice::Winit => "winit",
        BackendChoice::LinuxKms => "linuxkms",
        BackendChoice::Auto if m.display => "winit",
        BackendChoice::Auto if m.drm_card => "linuxkms",
        BackendChoice::Auto => return None,
    };
    let renderer = match s.renderer {
        RendererChoice::Software => "software",
        RendererChoice::Gpu => "femtovg",
        RendererChoice::Auto if m.render_node => "femtovg",
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

/// Shows the HUD and runs Slint's event loop on this thread until the window closes. Call from the main thread.
pub fn run(settings: &KioskSettings, mut ctx: KioskContext) -> Result<(), KioskError> {
    let from_env = std::env::var_os("SLINT_BACKEND").is_some_and(|v| !v.is_empty());
    let chosen = choose(settings, Machine::probe());
    let (backend, renderer) = match (from_env, chosen) {
        (true, _) => ("(SLINT_BACKEND)", "(SLINT_BACKEND)"),
        (false, Some(c)) => c,
        (false, None) => return Err(KioskError::NoDisplay),
    };
    let mut selector = slint::BackendSelector::new();
    if !from_env {
        selector = selector
            .backend_name(backend.into())
            .renderer_name(renderer.into());
    }
    selector.select().map_err(|e| KioskError::Backend {
        backend: backend.into(),
        renderer: renderer.into(),
        message: e.to_string(),
    })?;
    tracing::info!(backend, renderer, "kiosk UI");
    ctx.ui = UiThread::EventLoop;
    ctx.keyboard =
        settings
            .keyboard
            .offered(crate::kiosk::controllers::keyboard::touch_screen_present(
                Path::new("/dev/input"),
            ));
    let window = AppWindow::new().map_err(|e| KioskError::Run(e.to_string()))?;
    let stop = attach(&window, &ctx);
    if let Some(keys) = settings.keys.clone() {
        let (tools, runtime) = (ctx.tools.clone(), ctx.runtime.clone());
        keys::spawn_reader(keys, move |action| match action {
            KeyAction::KillSwitch => {
                let tools = tools.clone();
                runtime.spawn_blocking(move || {
                    if let Err(e) = tools.set_kill_switch(true) {
                        tracing::error!("kill-switch key: {e}");
                    }
                });
            }
            // The voice pipeline listens for these once it exists; until then they are logged.
            KeyAction::TalkStart | KeyAction::TalkStop => tracing::info!(?action, "push-to-talk"),
        });
    }
    if backend == "linuxkms" {
        window.window().set_fullscreen(true);
    }
    let result = window.run().map_err(|e| KioskError::Run(e.to_string()));
    stop.cancel();
    result
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

//! The on-screen keyboard (`KeyboardAdapter`, ui/widgets/keyboard.slint): whether it is offered, and turning its
//! taps into key presses on the window — the same `WindowEvent`s a physical keyboard produces, so the focused
//! field (and its Enter, Escape and history handling) cannot tell the two apart. Its quick replies go to the chat.
//!
//! Whether it is offered follows `[kiosk] on_screen_keyboard`: `always`, `never`, or `auto` — offered when the
//! machine has a touch screen (an input device with `INPUT_PROP_DIRECT`), found by [`touch_screen_present`].

use std::path::Path;

use slint::platform::WindowEvent;
use slint::ComponentHandle;

use crate::kiosk::ui::{AppWindow, JarvisAdapter, KeyboardAdapter};

/// `[kiosk] on_screen_keyboard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyboardMode {
    /// Offered when a touch screen is present.
    #[default]
    Auto,
    /// The panel has no keyboard: always offered.
    Always,
    Never,
}

impl KeyboardMode {
    pub fn parse(s: &str) -> Option<KeyboardMode> {
        Some(match s {
            "auto" => KeyboardMode::Auto,
            "always" => KeyboardMode::Always,
            "never" => KeyboardMode::Never,
            _ => return None,
        })
    }

    /// Whether the keyboard comes up when a field takes the focus.
    pub fn offered(self, touch_screen: bool) -> bool {
        match self {
            KeyboardMode::Auto => touch_screen,
            KeyboardMode::Always => true,
            KeyboardMode::Never => false,
        }
    }
}

/// Whether any input device under `dir` (normally `/dev/input`) is a touch screen: a direct-input device (the
/// kernel's `INPUT_PROP_DIRECT`: touch screens and pen displays, not touchpads) with absolute positions.
pub fn touch_screen_present(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        if !e.file_name().to_string_lossy().starts_with("event") {
            return false;
        }
        let Ok(dev) = evdev::Device::open(e.path()) else {
            return false;
        };
        let direct = dev.properties().contains(evdev::PropType::DIRECT);
        let absolute = dev.supported_absolute_axes().is_some_and(|axes| {
            axes.contains(evdev::AbsoluteAxisCode::ABS_MT_POSITION_X)
                || axes.contains(evdev::AbsoluteAxisCode::ABS_X)
        });
        if direct && absolute {
            tracing::info!(device = %e.path().display(), name = dev.name().unwrap_or("?"), "touch screen found");
        }
        direct && absolute
    })
}

/// Presses and releases one key on the window, as a physical keyboard would (UI thread).
pub fn press(w: &AppWindow, text: &str) {
    let text: slint::SharedString = text.into();
    w.window()
        .dispatch_event(WindowEvent::KeyPressed { text: text.clone() });
    w.window().dispatch_event(WindowEvent::KeyReleased { text });
}

/// Wires the keyboard to `w` (UI thread).
pub fn setup(w: &AppWindow, offered: bool) {
    let a = w.global::<KeyboardAdapter>();
    a.set_enabled(offered);
    let weak = w.as_weak();
    a.on_key(move |text| {
        if let Some(w) = weak.upgrade() {
            press(&w, &text);
        }
    });
    let weak = w.as_weak();
    a.on_quick_reply(move |text| {
        if let Some(w) = weak.upgrade() {
            w.global::<JarvisAdapter>().invoke_send_chat(text);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_decides_when_the_keyboard_is_offered() {
        assert_eq!(KeyboardMode::parse("auto"), Some(KeyboardMode::Auto));
        assert_eq!(KeyboardMode::parse("sometimes"), None);
        assert!(KeyboardMode::Auto.offered(true));
        assert!(!KeyboardMode::Auto.offered(false));
        assert!(KeyboardMode::Always.offered(false));
        assert!(!KeyboardMode::Never.offered(true));
    }

    #[test]
    fn a_folder_without_input_devices_has_no_touch_screen() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("event0"), b"not a device").expect("write");
        assert!(!touch_screen_present(dir.path()));
        assert!(!touch_screen_present(&dir.path().join("missing")));
    }
}

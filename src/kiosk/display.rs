//! What keeps the appliance's screen up and in Jarvis's hands, kept apart from choosing the backend: the
//! LinuxKMS quit chord swallowed before Slint sees it, the report of missing input devices or udev, and the
//! reason a renderer probe gives when it fails. Pure where it can be (the tests drive the chord filter with key
//! codes); the libinput hook and the file-system checks are thin.

use std::path::Path;

/// Linux key codes (linux/input-event-codes.h) the quit chord is made of.
const KEY_LEFTCTRL: u32 = 29;
const KEY_RIGHTCTRL: u32 = 97;
const KEY_LEFTALT: u32 = 56;
const KEY_RIGHTALT: u32 = 100;
const KEY_BACKSPACE: u32 = 14;
const KEY_DELETE: u32 = 111;
const KEY_KPDOT: u32 = 83;

/// Tracks Ctrl and Alt and swallows Backspace or Delete while both are held: Slint's LinuxKMS backend quits its
/// event loop on Ctrl+Alt+Backspace (and Delete), like an X server's zap. The chord's other keys pass, so the
/// modifiers still work for everything else.
#[derive(Debug, Default)]
pub struct QuitChordFilter {
    ctrl: [bool; 2],
    alt: [bool; 2],
    /// A swallowed press whose release must be swallowed too.
    held: Option<u32>,
}

impl QuitChordFilter {
    /// Feeds one key event; `true` means drop it.
    pub fn swallow(&mut self, key: u32, pressed: bool) -> bool {
        match key {
            KEY_LEFTCTRL => self.ctrl[0] = pressed,
            KEY_RIGHTCTRL => self.ctrl[1] = pressed,
            KEY_LEFTALT => self.alt[0] = pressed,
            KEY_RIGHTALT => self.alt[1] = pressed,
            _ => {}
        }
        let zap = matches!(key, KEY_BACKSPACE | KEY_DELETE | KEY_KPDOT);
        if zap && pressed && self.ctrl.iter().any(|c| *c) && self.alt.iter().any(|a| *a) {
            if self.held.is_none() {
                tracing::info!(
                    "Ctrl+Alt+Backspace ignored: the kiosk cannot be quit from a keyboard"
                );
            }
            self.held = Some(key);
            return true;
        }
        if zap && !pressed && self.held == Some(key) {
            self.held = None;
            return true;
        }
        false
    }
}

/// The libinput hook for Slint's LinuxKMS backend: drops the quit chord, passes every other event.
#[cfg(feature = "kiosk-gpu")]
pub fn quit_chord_hook() -> impl Fn(&input::Event) -> bool + 'static {
    use input::event::keyboard::{KeyState, KeyboardEvent, KeyboardEventTrait};
    let filter = std::cell::RefCell::new(QuitChordFilter::default());
    move |event| match event {
        input::Event::Keyboard(KeyboardEvent::Key(k)) => filter
            .borrow_mut()
            .swallow(k.key(), k.key_state() == KeyState::Pressed),
        _ => false,
    }
}

/// Whether udevd runs: libinput finds its devices through the udev database, which it maintains.
pub fn udev_running() -> bool {
    Path::new("/run/udev/control").exists() || Path::new("/run/udev/data").is_dir()
}

/// How many evdev nodes the kernel offers.
pub fn event_devices() -> usize {
    std::fs::read_dir("/dev/input")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("event"))
                .count()
        })
        .unwrap_or(0)
}

/// What to tell the person setting up the appliance about input, before the screen comes up.
pub fn input_warnings(udev: bool, devices: usize) -> Vec<String> {
    let mut out = Vec::new();
    if !udev {
        out.push(
            "udev is not running (no /run/udev): libinput will find no keyboard, mouse or touch screen, so the \
             screen shows but cannot be used. Start systemd-udevd (the appliance image does) and restart Jarvis"
                .to_string(),
        );
    }
    if devices == 0 {
        out.push(
            "no input devices in /dev/input: nobody can touch or type on the kiosk. Plug in a keyboard or a \
             touch screen, or check that the kernel has their drivers (evdev, usbhid, hid-multitouch)"
                .to_string(),
        );
    }
    out
}

/// The reason a failed probe gives: its last non-empty lines of error output, or its exit status.
pub fn last_words(stderr: &str, status: std::process::ExitStatus) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(2)..].join(" / ");
    let tail: String = tail.chars().take(300).collect();
    if tail.is_empty() {
        format!("the probe ended with {status}")
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_alt_backspace_is_swallowed_and_nothing_else() {
        let mut f = QuitChordFilter::default();
        // Backspace alone, and with Ctrl only, pass.
        assert!(!f.swallow(KEY_BACKSPACE, true));
        assert!(!f.swallow(KEY_BACKSPACE, false));
        assert!(!f.swallow(KEY_LEFTCTRL, true));
        assert!(!f.swallow(KEY_BACKSPACE, true));
        assert!(!f.swallow(KEY_BACKSPACE, false));
        // Ctrl+Alt+Backspace: press and release dropped; the modifiers themselves pass.
        assert!(!f.swallow(KEY_RIGHTALT, true));
        assert!(f.swallow(KEY_BACKSPACE, true));
        assert!(f.swallow(KEY_BACKSPACE, true), "auto-repeat too");
        assert!(f.swallow(KEY_BACKSPACE, false));
        // Ctrl+Alt+Delete, and the keypad's Delete.
        assert!(f.swallow(KEY_DELETE, true));
        assert!(f.swallow(KEY_DELETE, false));
        assert!(f.swallow(KEY_KPDOT, true));
        // Let go of Alt (while the keypad key is still down): its release is still swallowed, then all passes.
        assert!(!f.swallow(KEY_RIGHTALT, false));
        assert!(f.swallow(KEY_KPDOT, false));
        assert!(!f.swallow(KEY_BACKSPACE, true));
        assert!(!f.swallow(30, true), "other keys pass");
    }

    #[test]
    fn missing_udev_and_devices_are_told_with_what_to_do() {
        assert!(input_warnings(true, 3).is_empty());
        let w = input_warnings(false, 0);
        assert_eq!(w.len(), 2);
        assert!(w[0].contains("systemd-udevd"));
        assert!(w[1].contains("/dev/input"));
    }

    #[test]
    fn a_failed_probe_says_why() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::ExitStatus::from_raw(256);
        assert_eq!(
            last_words(
                "noise\n\nError creating gbm device\nrenderer failed\n",
                status
            ),
            "Error creating gbm device / renderer failed"
        );
        assert!(last_words("", status).contains("exit status: 1"));
    }
}

//! Hardware keys on the appliance, read straight from an evdev device (a macro pad, a footswitch, a spare key on
//! a keyboard): push-to-talk and the kill switch. The device and the key codes come from `[kiosk.keys]`; the
//! mapping from key events to actions is pure and unit-tested, the reader is a small blocking thread.

use std::path::PathBuf;
use std::str::FromStr;

use evdev::{EventSummary, KeyCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    /// `/dev/input/by-id/...-event-kbd`.
    pub device: PathBuf,
    pub push_to_talk: Option<u16>,
    pub kill_switch: Option<u16>,
}

/// Parses a key name as the kernel spells it (`KEY_F13`, `KEY_PAUSE`, `BTN_0`) or a numeric code.
pub fn parse_key(name: &str) -> Option<u16> {
    KeyCode::from_str(name.trim())
        .ok()
        .map(|k| k.code())
        .or_else(|| name.trim().parse().ok())
}

/// What a key event means to Jarvis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Start listening (the key went down).
    TalkStart,
    /// Stop listening (the key came up).
    TalkStop,
    /// Turn the kill switch on (it is released on the screen, deliberately: a key press must not re-arm actions).
    KillSwitch,
}

/// The mapping: `value` is the kernel's 1 (press), 0 (release) or 2 (auto-repeat).
pub fn action(settings: &KeySettings, code: u16, value: i32) -> Option<KeyAction> {
    if Some(code) == settings.push_to_talk {
        return match value {
            1 => Some(KeyAction::TalkStart),
            0 => Some(KeyAction::TalkStop),
            _ => None,
        };
    }
    if Some(code) == settings.kill_switch && value == 1 {
        return Some(KeyAction::KillSwitch);
    }
    None
}

/// Reads the device on a thread of its own and hands each action to `on_action`. Returns at once; the thread
/// logs and ends if the device goes away.
pub fn spawn_reader(settings: KeySettings, on_action: impl Fn(KeyAction) + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("jarvis-keys".into())
        .spawn(move || {
            let mut device = match evdev::Device::open(&settings.device) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(
                        "cannot open the key device {}: {e}",
                        settings.device.display()
                    );
                    return;
                }
            };
            tracing::info!(device = %settings.device.display(), "reading hardware keys");
            loop {
                let events = match device.fetch_events() {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::error!("the key device {} failed: {e}", settings.device.display());
                        return;
                    }
                };
                for ev in events {
                    if let EventSummary::Key(_, key, value) = ev.destructure() {
                        if let Some(a) = action(&settings, key.code(), value) {
                            on_action(a);
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the key reader: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_actions() {
        let s = KeySettings {
            device: "/dev/null".into(),
            push_to_talk: parse_key("KEY_F13"),
            kill_switch: parse_key("KEY_PAUSE"),
        };
        assert_eq!(s.push_to_talk, Some(183));
        assert_eq!(s.kill_switch, Some(119));
        assert_eq!(action(&s, 183, 1), Some(KeyAction::TalkStart));
        assert_eq!(
            action(&s, 183, 2),
            None,
            "auto-repeat does not restart listening"
        );
        assert_eq!(action(&s, 183, 0), Some(KeyAction::TalkStop));
        assert_eq!(action(&s, 119, 1), Some(KeyAction::KillSwitch));
        assert_eq!(action(&s, 119, 0), None);
        assert_eq!(action(&s, 30, 1), None);
        assert_eq!(parse_key("KEY_NOPE"), None);
        assert_eq!(parse_key("240"), Some(240));
    }
}

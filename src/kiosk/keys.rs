//! Hardware keys on the appliance, read straight from an evdev device (a macro pad, a footswitch, a spare key on
//! a keyboard): push-to-talk and the kill switch. The device and the key codes come from `[kiosk.keys]`; the
//! mapping from key events to actions is pure and unit-tested, the reader is a small blocking thread that reads
//! the kernel's `input_event` records (so it needs no window, and tests feed it through a FIFO).

use std::path::PathBuf;
use std::str::FromStr;

use evdev::KeyCode;

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

/// The kernel's `struct input_event` on 64-bit Linux: a timeval (16 bytes), type, code, value.
pub const EVENT_SIZE: usize = 24;
const EV_KEY: u16 = 1;

/// One `input_event` record to (type, code, value).
pub fn decode(record: &[u8; EVENT_SIZE]) -> (u16, u16, i32) {
    let kind = u16::from_ne_bytes([record[16], record[17]]);
    let code = u16::from_ne_bytes([record[18], record[19]]);
    let value = i32::from_ne_bytes([record[20], record[21], record[22], record[23]]);
    (kind, code, value)
}

/// The record a device sends for a key (the tests write these).
pub fn encode_key(code: u16, value: i32) -> [u8; EVENT_SIZE] {
    let mut r = [0u8; EVENT_SIZE];
    r[16..18].copy_from_slice(&EV_KEY.to_ne_bytes());
    r[18..20].copy_from_slice(&code.to_ne_bytes());
    r[20..24].copy_from_slice(&value.to_ne_bytes());
    r
}

/// Reads key records from `input` until it ends or fails, handing each action to `on_action`.
pub fn read_events(
    settings: &KeySettings,
    mut input: impl std::io::Read,
    on_action: &impl Fn(KeyAction),
) -> std::io::Result<()> {
    let mut record = [0u8; EVENT_SIZE];
    loop {
        match input.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let (kind, code, value) = decode(&record);
        if kind != EV_KEY {
            continue;
        }
        if let Some(a) = action(settings, code, value) {
            on_action(a);
        }
    }
}

/// How long the reader waits before opening the device again after it went away (unplugged, not there yet).
pub const REOPEN_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the device on a thread of its own, with or without a window, and hands each action to `on_action`.
/// Returns at once. A device that is missing or goes away (a macro pad unplugged) is logged once and opened
/// again every [`REOPEN_AFTER`] until it is back; `stop` ends the thread at its next wake-up.
pub fn spawn_reader(
    settings: KeySettings,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    on_action: impl Fn(KeyAction) + Send + 'static,
) {
    use std::sync::atomic::Ordering;
    let spawned = std::thread::Builder::new()
        .name("jarvis-keys".into())
        .spawn(move || {
            let path = settings.device.clone();
            let mut told = false;
            while !stop.load(Ordering::Relaxed) {
                match std::fs::File::open(&path) {
                    Ok(device) => {
                        tracing::info!(device = %path.display(), "reading hardware keys");
                        told = false;
                        match read_events(&settings, device, &on_action) {
                            Ok(()) => tracing::warn!(
                                "the key device {} closed; waiting for it to come back",
                                path.display()
                            ),
                            Err(e) => tracing::warn!(
                                "the key device {} failed ({e}); waiting for it to come back",
                                path.display()
                            ),
                        }
                    }
                    Err(e) if !told => {
                        tracing::warn!(
                            "cannot open the key device {} ({e}); push-to-talk and the kill-switch key \
                             work once it appears (check [keys] device, and that Jarvis may read it)",
                            path.display()
                        );
                        told = true;
                    }
                    Err(_) => {}
                }
                std::thread::sleep(REOPEN_AFTER);
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

    #[test]
    fn records_from_a_device_become_actions() {
        let s = KeySettings {
            device: "/dev/null".into(),
            push_to_talk: Some(183),
            kill_switch: Some(119),
        };
        let mut bytes = Vec::new();
        // A sync record and a key that means nothing, then push-to-talk down, repeat, up, and the kill switch.
        bytes.extend_from_slice(&[0u8; EVENT_SIZE]);
        for (code, value) in [(30, 1), (183, 1), (183, 2), (183, 0), (119, 1)] {
            bytes.extend_from_slice(&encode_key(code, value));
        }
        // A record cut short at the end (the device went away mid-write) is dropped.
        bytes.extend_from_slice(&encode_key(119, 1)[..10]);
        let seen = std::sync::Mutex::new(Vec::new());
        read_events(&s, bytes.as_slice(), &|a| {
            seen.lock().expect("lock").push(a)
        })
        .expect("read");
        assert_eq!(
            seen.into_inner().expect("lock"),
            vec![
                KeyAction::TalkStart,
                KeyAction::TalkStop,
                KeyAction::KillSwitch
            ]
        );
    }
}

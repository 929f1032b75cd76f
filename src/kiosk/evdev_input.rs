//! Touch, mouse and keyboard for the static flavour, read from `/dev/input/event*` by Jarvis itself. Slint's
//! LinuxKMS backend reads input only through libinput, which has no static library (and wants udevd and XKB
//! data on the root); the fully static appliance has none of those, so without this nobody could touch the kiosk.
//!
//! [`Translator`] turns the kernel's `input_event` records of one device into [`Input`]s — pure, unit-tested
//! with records as a touch screen, a mouse and a keyboard send them. [`start`] finds the devices (again every
//! two seconds, so a keyboard plugged in later works without udev), reads each on a thread of its own and hands
//! every input to the UI thread, where it becomes a Slint `WindowEvent` at the window's size. Keys follow the
//! US layout; touch uses the first contact only (no gestures).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use slint::platform::{Key, PointerEventButton, WindowEvent};
use slint::{LogicalPosition, SharedString};

use crate::kiosk::keys::{decode, EVENT_SIZE};

const EV_SYN: u16 = 0;
const EV_KEY: u16 = 1;
const EV_REL: u16 = 2;
const EV_ABS: u16 = 3;
const SYN_REPORT: u16 = 0;
const REL_X: u16 = 0;
const REL_Y: u16 = 1;
const REL_WHEEL: u16 = 8;
const ABS_X: u16 = 0;
const ABS_Y: u16 = 1;
const ABS_MT_SLOT: u16 = 0x2f;
const ABS_MT_POSITION_X: u16 = 0x35;
const ABS_MT_POSITION_Y: u16 = 0x36;
const ABS_MT_TRACKING_ID: u16 = 0x39;
const BTN_LEFT: u16 = 0x110;
const BTN_RIGHT: u16 = 0x111;
const BTN_MIDDLE: u16 = 0x112;
const BTN_TOUCH: u16 = 0x14a;
const KEY_LEFTSHIFT: u16 = 42;
const KEY_RIGHTSHIFT: u16 = 54;
const KEY_CAPSLOCK: u16 = 58;

/// One thing a person did, in device terms; the UI thread places it on the window ([`apply`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An absolute position (touch screen, tablet), as a fraction of the screen in each direction.
    MoveTo {
        x: f32,
        y: f32,
    },
    /// A relative movement (mouse), in device units (≈ physical pixels).
    MoveBy {
        dx: f32,
        dy: f32,
    },
    Button {
        button: PointerEventButton,
        pressed: bool,
    },
    /// Wheel notches: positive is away from the user.
    Scroll {
        notches: i32,
    },
    Key {
        text: SharedString,
        state: KeyState,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Pressed,
    Repeated,
    Released,
}

/// The value range of a device's absolute axes (from `EVIOCGABS`), for scaling to the screen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AbsRanges {
    pub x: Option<(i32, i32)>,
    pub y: Option<(i32, i32)>,
    pub mt_x: Option<(i32, i32)>,
    pub mt_y: Option<(i32, i32)>,
}

/// The state of one device between `SYN_REPORT`s.
#[derive(Debug, Default)]
pub struct Translator {
    ranges: AbsRanges,
    shift: [bool; 2],
    caps: bool,
    /// The multitouch slot the next `ABS_MT_*` values belong to; only slot 0 drives the pointer.
    slot: i32,
    /// Slot 0 has a contact (a tracking id other than -1).
    touching: bool,
    abs: (Option<f32>, Option<f32>),
    rel: (i32, i32),
    wheel: i32,
    buttons: Vec<(PointerEventButton, bool)>,
}

impl Translator {
    pub fn new(ranges: AbsRanges) -> Translator {
        Translator {
            ranges,
            ..Translator::default()
        }
    }

    /// Feeds one record; returns what it completes. Keys come at once, pointer changes at `SYN_REPORT`
    /// (movement first, so a press lands where the finger is).
    pub fn feed(&mut self, kind: u16, code: u16, value: i32) -> Vec<Input> {
        match kind {
            EV_KEY => return self.key(code, value),
            EV_REL => match code {
                REL_X => self.rel.0 += value,
                REL_Y => self.rel.1 += value,
                REL_WHEEL => self.wheel += value,
                _ => {}
            },
            EV_ABS => self.abs_value(code, value),
            EV_SYN if code == SYN_REPORT => return self.report(),
            _ => {}
        }
        Vec::new()
    }

    fn abs_value(&mut self, code: u16, value: i32) {
        match code {
            ABS_X => self.abs.0 = fraction(self.ranges.x, value),
            ABS_Y => self.abs.1 = fraction(self.ranges.y, value),
            ABS_MT_SLOT => self.slot = value,
            ABS_MT_TRACKING_ID if self.slot == 0 => {
                let touching = value >= 0;
                if touching != self.touching {
                    self.touching = touching;
                    self.buttons.push((PointerEventButton::Left, touching));
                }
            }
            ABS_MT_POSITION_X if self.slot == 0 => self.abs.0 = fraction(self.ranges.mt_x, value),
            ABS_MT_POSITION_Y if self.slot == 0 => self.abs.1 = fraction(self.ranges.mt_y, value),
            _ => {}
        }
    }

    fn report(&mut self) -> Vec<Input> {
        let mut out = Vec::new();
        if let (Some(x), Some(y)) = self.abs {
            out.push(Input::MoveTo { x, y });
        } else if self.abs.0.is_some() || self.abs.1.is_some() {
            // One axis moved: keep it pending until the other is known (a device reports both at its first
            // touch), so the pointer never jumps to a corner.
            return out;
        }
        if self.rel != (0, 0) {
            out.push(Input::MoveBy {
                dx: self.rel.0 as f32,
                dy: self.rel.1 as f32,
            });
        }
        for (button, pressed) in self.buttons.drain(..) {
            out.push(Input::Button { button, pressed });
        }
        if self.wheel != 0 {
            out.push(Input::Scroll {
                notches: self.wheel,
            });
        }
        // Absolute axes report only what changed: the last position stays the base of the next report.
        self.rel = (0, 0);
        self.wheel = 0;
        out
    }

    fn key(&mut self, code: u16, value: i32) -> Vec<Input> {
        let pressed = value != 0;
        let button = match code {
            BTN_LEFT => Some(PointerEventButton::Left),
            BTN_RIGHT => Some(PointerEventButton::Right),
            BTN_MIDDLE => Some(PointerEventButton::Middle),
            // Single-touch screens say BTN_TOUCH; multitouch ones also send tracking ids, which decide.
            BTN_TOUCH if self.ranges.mt_x.is_none() => Some(PointerEventButton::Left),
            _ => None,
        };
        if let Some(button) = button {
            if value != 2 {
                self.buttons.push((button, pressed));
            }
            return Vec::new();
        }
        match code {
            KEY_LEFTSHIFT => self.shift[0] = pressed,
            KEY_RIGHTSHIFT => self.shift[1] = pressed,
            KEY_CAPSLOCK if value == 1 => self.caps = !self.caps,
            _ => {}
        }
        let shifted = self.shift.iter().any(|s| *s);
        let Some(text) = key_text(code, shifted, self.caps) else {
            return Vec::new();
        };
        let state = match value {
            0 => KeyState::Released,
            2 => KeyState::Repeated,
            _ => KeyState::Pressed,
        };
        vec![Input::Key { text, state }]
    }
}

/// `value` within `range`, as a fraction clamped to 0..=1; `None` for a device that gave no range.
fn fraction(range: Option<(i32, i32)>, value: i32) -> Option<f32> {
    let (min, max) = range?;
    if max <= min {
        return None;
    }
    Some(((value - min) as f32 / (max - min) as f32).clamp(0.0, 1.0))
}

/// What a key means to Slint on a US layout: a character, or one of Slint's special keys.
pub fn key_text(code: u16, shift: bool, caps: bool) -> Option<SharedString> {
    const ROW1: &[u8] = b"1234567890-=";
    const ROW1_SHIFT: &[u8] = b"!@#$%^&*()_+";
    const QWERTY: &[u8] = b"qwertyuiop[]";
    const QWERTY_SHIFT: &[u8] = b"QWERTYUIOP{}";
    const HOME: &[u8] = b"asdfghjkl;'`";
    const HOME_SHIFT: &[u8] = b"ASDFGHJKL:\"~";
    const BOTTOM: &[u8] = b"\\zxcvbnm,./";
    const BOTTOM_SHIFT: &[u8] = b"|ZXCVBNM<>?";
    let pick = |plain: &[u8], shifted: &[u8], i: usize| {
        let c = if shift { shifted[i] } else { plain[i] } as char;
        // Caps Lock turns letters only, and Shift undoes it.
        let c = if caps && c.is_ascii_alphabetic() {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        } else {
            c
        };
        Some(SharedString::from(c.to_string().as_str()))
    };
    let special = |k: Key| Some(SharedString::from(k));
    match code {
        2..=13 => pick(ROW1, ROW1_SHIFT, usize::from(code - 2)),
        16..=27 => pick(QWERTY, QWERTY_SHIFT, usize::from(code - 16)),
        30..=41 => pick(HOME, HOME_SHIFT, usize::from(code - 30)),
        43..=53 => pick(BOTTOM, BOTTOM_SHIFT, usize::from(code - 43)),
        57 => Some(" ".into()),
        1 => special(Key::Escape),
        14 => special(Key::Backspace),
        15 => special(Key::Tab),
        28 | 96 => special(Key::Return),
        29 => special(Key::Control),
        97 => special(Key::ControlR),
        KEY_LEFTSHIFT => special(Key::Shift),
        KEY_RIGHTSHIFT => special(Key::ShiftR),
        56 => special(Key::Alt),
        100 => special(Key::AltGr),
        102 => special(Key::Home),
        103 => special(Key::UpArrow),
        104 => special(Key::PageUp),
        105 => special(Key::LeftArrow),
        106 => special(Key::RightArrow),
        107 => special(Key::End),
        108 => special(Key::DownArrow),
        109 => special(Key::PageDown),
        111 => special(Key::Delete),
        _ => None,
    }
}

/// Where the pointer is, in logical pixels: shared by every device (a mouse and a touch screen move one pointer).
static POINTER: Mutex<(f32, f32)> = Mutex::new((0.0, 0.0));

/// Places one input on the window (on the UI thread).
pub fn apply(window: &slint::Window, input: Input) {
    let scale = window.scale_factor().max(0.1);
    let size = window.size();
    let (w, h) = (size.width as f32 / scale, size.height as f32 / scale);
    let mut pointer = POINTER.lock().unwrap_or_else(|p| p.into_inner());
    let event = match input {
        Input::MoveTo { x, y } => {
            *pointer = (x * w, y * h);
            WindowEvent::PointerMoved {
                position: LogicalPosition::new(pointer.0, pointer.1),
            }
        }
        Input::MoveBy { dx, dy } => {
            *pointer = (
                (pointer.0 + dx / scale).clamp(0.0, w),
                (pointer.1 + dy / scale).clamp(0.0, h),
            );
            WindowEvent::PointerMoved {
                position: LogicalPosition::new(pointer.0, pointer.1),
            }
        }
        Input::Button { button, pressed } => {
            let position = LogicalPosition::new(pointer.0, pointer.1);
            if pressed {
                WindowEvent::PointerPressed { position, button }
            } else {
                WindowEvent::PointerReleased { position, button }
            }
        }
        Input::Scroll { notches } => WindowEvent::PointerScrolled {
            position: LogicalPosition::new(pointer.0, pointer.1),
            delta_x: 0.0,
            delta_y: notches as f32 * 40.0,
        },
        Input::Key { text, state } => match state {
            KeyState::Pressed => WindowEvent::KeyPressed { text },
            KeyState::Repeated => WindowEvent::KeyPressRepeated { text },
            KeyState::Released => WindowEvent::KeyReleased { text },
        },
    };
    drop(pointer);
    if let Err(e) = window.dispatch_event_with_result(event) {
        tracing::debug!("an input event was not taken: {e}");
    }
}

/// How often the devices are looked for again (no udev to announce them).
const RESCAN: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads every input device from now on, on threads of their own; returns at once. The `reserved` devices are
/// left alone: Jarvis reads them for something else (the `[kiosk.keys]` pad), and their keys must not also type
/// into the focused field.
pub fn start(window: slint::Weak<crate::kiosk::ui::AppWindow>, dir: &Path, reserved: Vec<PathBuf>) {
    let dir = dir.to_path_buf();
    let open: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
    let spawned = std::thread::Builder::new()
        .name("jarvis-input".into())
        .spawn(move || loop {
            for path in event_nodes(&dir) {
                if is_reserved(&path, &reserved) {
                    continue;
                }
                let mut set = open.lock().unwrap_or_else(|p| p.into_inner());
                if set.insert(path.clone()) {
                    drop(set);
                    read_device(path, window.clone(), open.clone());
                }
            }
            std::thread::sleep(RESCAN);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start reading input devices: {e}");
    }
}

/// Whether `node` is one of the `reserved` devices, however either is named (a `by-id` link or the node itself).
fn is_reserved(node: &Path, reserved: &[PathBuf]) -> bool {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let node = real(node);
    reserved.iter().any(|r| real(r) == node)
}

fn event_nodes(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("event"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The absolute ranges a device declares (none for keyboards and mice, or when it cannot be asked).
fn ranges_of(path: &Path) -> AbsRanges {
    let mut r = AbsRanges::default();
    let Ok(device) = evdev::Device::open(path) else {
        return r;
    };
    if let Ok(axes) = device.get_absinfo() {
        for (axis, info) in axes {
            let range = Some((info.minimum(), info.maximum()));
            match axis.0 {
                ABS_X => r.x = range,
                ABS_Y => r.y = range,
                ABS_MT_POSITION_X => r.mt_x = range,
                ABS_MT_POSITION_Y => r.mt_y = range,
                _ => {}
            }
        }
    }
    r
}

/// One device on a thread until it goes away (unplugged); then it may be found again by the rescan.
fn read_device(
    path: PathBuf,
    window: slint::Weak<crate::kiosk::ui::AppWindow>,
    open: Arc<Mutex<HashSet<PathBuf>>>,
) {
    let name = format!("jarvis-input-{}", path.display());
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        use std::io::Read;
        let ranges = ranges_of(&path);
        match std::fs::File::open(&path) {
            Ok(mut device) => {
                tracing::info!(device = %path.display(), "reading input");
                let mut translator = Translator::new(ranges);
                let mut record = [0u8; EVENT_SIZE];
                while device.read_exact(&mut record).is_ok() {
                    let (kind, code, value) = decode(&record);
                    let inputs = translator.feed(kind, code, value);
                    if inputs.is_empty() {
                        continue;
                    }
                    let sent = window.upgrade_in_event_loop(move |w| {
                        use slint::ComponentHandle;
                        for input in inputs {
                            apply(w.window(), input);
                        }
                    });
                    if sent.is_err() {
                        break;
                    }
                }
                tracing::info!(device = %path.display(), "input device gone");
            }
            Err(e) => tracing::debug!(device = %path.display(), "cannot read input: {e}"),
        }
        // Opened again by the rescan if it is still (or again) there; a node we may not read is retried too,
        // quietly, which costs one failed open every two seconds.
        open.lock().unwrap_or_else(|p| p.into_inner()).remove(&path);
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start reading an input device: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(t: &mut Translator, records: &[(u16, u16, i32)]) -> Vec<Input> {
        records
            .iter()
            .flat_map(|&(k, c, v)| t.feed(k, c, v))
            .collect()
    }

    #[test]
    fn a_multitouch_tap_moves_then_presses_then_releases() {
        let mut t = Translator::new(AbsRanges {
            mt_x: Some((0, 4095)),
            mt_y: Some((0, 4095)),
            ..AbsRanges::default()
        });
        let down = feed_all(
            &mut t,
            &[
                (EV_ABS, ABS_MT_SLOT, 0),
                (EV_ABS, ABS_MT_TRACKING_ID, 7),
                (EV_ABS, ABS_MT_POSITION_X, 4095),
                (EV_ABS, ABS_MT_POSITION_Y, 0),
                (EV_KEY, BTN_TOUCH, 1),
                (EV_SYN, SYN_REPORT, 0),
            ],
        );
        assert_eq!(
            down,
            vec![
                Input::MoveTo { x: 1.0, y: 0.0 },
                Input::Button {
                    button: PointerEventButton::Left,
                    pressed: true
                }
            ]
        );
        let up = feed_all(
            &mut t,
            &[
                (EV_ABS, ABS_MT_TRACKING_ID, -1),
                (EV_KEY, BTN_TOUCH, 0),
                (EV_SYN, SYN_REPORT, 0),
            ],
        );
        assert_eq!(
            up,
            vec![
                Input::MoveTo { x: 1.0, y: 0.0 },
                Input::Button {
                    button: PointerEventButton::Left,
                    pressed: false
                }
            ]
        );
    }

    #[test]
    fn a_second_finger_does_not_move_the_pointer_or_press() {
        let mut t = Translator::new(AbsRanges {
            mt_x: Some((0, 100)),
            mt_y: Some((0, 100)),
            ..AbsRanges::default()
        });
        let out = feed_all(
            &mut t,
            &[
                (EV_ABS, ABS_MT_SLOT, 1),
                (EV_ABS, ABS_MT_TRACKING_ID, 9),
                (EV_ABS, ABS_MT_POSITION_X, 50),
                (EV_ABS, ABS_MT_POSITION_Y, 50),
                (EV_SYN, SYN_REPORT, 0),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_mouse_moves_relatively_and_clicks_and_scrolls() {
        let mut t = Translator::new(AbsRanges::default());
        let out = feed_all(
            &mut t,
            &[
                (EV_REL, REL_X, 5),
                (EV_REL, REL_Y, -3),
                (EV_REL, REL_X, 1),
                (EV_KEY, BTN_LEFT, 1),
                (EV_REL, REL_WHEEL, -1),
                (EV_SYN, SYN_REPORT, 0),
            ],
        );
        assert_eq!(
            out,
            vec![
                Input::MoveBy { dx: 6.0, dy: -3.0 },
                Input::Button {
                    button: PointerEventButton::Left,
                    pressed: true
                },
                Input::Scroll { notches: -1 },
            ]
        );
        // Deltas do not carry over into the next report.
        assert!(feed_all(&mut t, &[(EV_SYN, SYN_REPORT, 0)]).is_empty());
    }

    #[test]
    fn an_absolute_device_without_ranges_or_with_one_axis_never_jumps() {
        let mut t = Translator::new(AbsRanges::default());
        assert!(feed_all(&mut t, &[(EV_ABS, ABS_X, 500), (EV_SYN, SYN_REPORT, 0)]).is_empty());
        let mut t = Translator::new(AbsRanges {
            x: Some((0, 1000)),
            y: Some((0, 1000)),
            ..AbsRanges::default()
        });
        assert!(feed_all(&mut t, &[(EV_ABS, ABS_X, 500), (EV_SYN, SYN_REPORT, 0)]).is_empty());
        // A lying device: out of its own range, or a range with max below min.
        let out = feed_all(&mut t, &[(EV_ABS, ABS_Y, 5000), (EV_SYN, SYN_REPORT, 0)]);
        assert_eq!(out, vec![Input::MoveTo { x: 0.5, y: 1.0 }]);
        assert_eq!(fraction(Some((10, 10)), 10), None);
        assert_eq!(fraction(Some((10, -10)), 0), None);
    }

    #[test]
    fn keys_type_us_characters_with_shift_and_caps_lock() {
        let mut t = Translator::new(AbsRanges::default());
        let typed: Vec<String> = feed_all(
            &mut t,
            &[
                (EV_KEY, 35, 1), // h
                (EV_KEY, 35, 0),
                (EV_KEY, KEY_LEFTSHIFT, 1),
                (EV_KEY, 2, 1), // !
                (EV_KEY, KEY_LEFTSHIFT, 0),
                (EV_KEY, KEY_CAPSLOCK, 1),
                (EV_KEY, KEY_CAPSLOCK, 0),
                (EV_KEY, 30, 1), // A (caps)
                (EV_KEY, 30, 2), // auto-repeat
                (EV_KEY, 28, 1), // Return
            ],
        )
        .into_iter()
        .filter_map(|i| match i {
            Input::Key {
                text,
                state: KeyState::Pressed | KeyState::Repeated,
            } => Some(text.to_string()),
            _ => None,
        })
        .collect();
        let ret: SharedString = Key::Return.into();
        let shift: SharedString = Key::Shift.into();
        assert_eq!(
            typed,
            vec![
                "h".to_string(),
                shift.to_string(),
                "!".into(),
                "A".into(),
                "A".into(),
                ret.to_string()
            ]
        );
        assert_eq!(key_text(30, true, true).as_deref(), Some("a"));
        assert_eq!(key_text(0x2ff, false, false), None);
    }

    #[test]
    fn a_key_auto_repeat_of_a_button_is_not_a_second_press() {
        let mut t = Translator::new(AbsRanges::default());
        let out = feed_all(
            &mut t,
            &[
                (EV_KEY, BTN_LEFT, 1),
                (EV_KEY, BTN_LEFT, 2),
                (EV_SYN, SYN_REPORT, 0),
            ],
        );
        assert_eq!(out.len(), 1, "{out:?}");
    }

    #[test]
    fn a_reserved_device_is_recognised_by_its_node_or_by_a_link_to_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = dir.path().join("event3");
        std::fs::write(&node, b"").expect("node");
        std::fs::create_dir(dir.path().join("by-id")).expect("mkdir");
        let link = dir.path().join("by-id/usb-pad-event-kbd");
        std::os::unix::fs::symlink(&node, &link).expect("link");
        assert!(is_reserved(&node, std::slice::from_ref(&link)));
        assert!(is_reserved(&node, std::slice::from_ref(&node)));
        assert!(!is_reserved(&dir.path().join("event4"), &[link]));
        assert!(!is_reserved(&node, &[]));
    }
}

//! The keyboard on X11 without a window manager. A kiosk started by `xinit` (or Xvfb) has no window manager,
//! and on X11 it is the window manager that hands the keyboard focus to a window: without one, Jarvis's window
//! shows the focused field but never receives a key. So when the HUD runs on X11 and no window manager
//! announces itself (`_NET_SUPPORTING_WM_CHECK` on the root window), Jarvis sets the input focus to its own
//! window, a moment after it is mapped. With a window manager it leaves focus to it.

use raw_window_handle::{HasWindowHandle, RawWindowHandle};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt, InputFocus};

/// What [`take_focus`] did, for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Focus {
    /// The input focus is on the window.
    Taken(u32),
    /// A window manager runs: it decides.
    LeftToWindowManager,
    /// Not an X11 window (Wayland, LinuxKMS, headless).
    NotX11,
    Failed(String),
}

/// The X11 window id behind a Slint window, if it is one.
pub fn x11_window(window: &slint::Window) -> Option<u32> {
    let handle = window.window_handle();
    let raw = handle.window_handle().ok()?.as_raw();
    match raw {
        RawWindowHandle::Xlib(h) => u32::try_from(h.window).ok(),
        RawWindowHandle::Xcb(h) => Some(h.window.get()),
        _ => None,
    }
}

/// Gives `window` the keyboard focus unless a window manager runs.
pub fn take_focus(window: &slint::Window) -> Focus {
    let Some(id) = x11_window(window) else {
        return Focus::NotX11;
    };
    match focus_without_wm(id) {
        Ok(f) => f,
        Err(e) => Focus::Failed(e),
    }
}

fn focus_without_wm(id: u32) -> Result<Focus, String> {
    let (conn, screen) = x11rb::connect(None).map_err(|e| e.to_string())?;
    let root = conn.setup().roots.get(screen).ok_or("no such screen")?.root;
    let atom = conn
        .intern_atom(true, b"_NET_SUPPORTING_WM_CHECK")
        .map_err(|e| e.to_string())?
        .reply()
        .map_err(|e| e.to_string())?
        .atom;
    if atom != 0 {
        let wm = conn
            .get_property(false, root, atom, AtomEnum::WINDOW, 0, 1)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| e.to_string())?;
        if wm.value_len > 0 {
            return Ok(Focus::LeftToWindowManager);
        }
    }
    conn.set_input_focus(InputFocus::PARENT, id, x11rb::CURRENT_TIME)
        .map_err(|e| e.to_string())?
        .check()
        .map_err(|e| e.to_string())?;
    conn.flush().map_err(|e| e.to_string())?;
    Ok(Focus::Taken(id))
}

/// Takes the focus a moment after the window is shown, and again a little later in case the window was not
/// mapped yet (call on the UI thread, with the event loop about to run).
pub fn take_focus_when_shown(window: slint::Weak<crate::kiosk::ui::AppWindow>) {
    use slint::ComponentHandle;
    for delay_ms in [300u64, 1500] {
        let window = window.clone();
        slint::Timer::single_shot(std::time::Duration::from_millis(delay_ms), move || {
            let Some(w) = window.upgrade() else { return };
            match take_focus(w.window()) {
                Focus::Taken(id) => {
                    tracing::debug!(
                        window = id,
                        "no window manager: the kiosk took the keyboard focus"
                    )
                }
                Focus::LeftToWindowManager | Focus::NotX11 => {}
                Focus::Failed(e) => tracing::warn!(
                    "cannot give the kiosk window the keyboard focus (typing may not reach it): {e}"
                ),
            }
        });
    }
}

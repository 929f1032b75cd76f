//! One controller per adapter global in `ui/`: [`cluster`] (left column), [`feed`] and [`chat`] (centre),
//! [`status`] and [`faces`] (right column), [`voice`] (the core's voice), [`terminal`] and [`approvals`] (bottom strip), [`header`]. Each has pure functions
//! that build rows from the spine (unit-tested without a window), an `apply`/`setup` that runs on the UI thread.

pub mod approvals;
pub mod camera;
pub mod chat;
pub mod cluster;
pub mod faces;
pub mod feed;
pub mod header;
pub mod keyboard;
pub mod status;
pub mod terminal;
pub mod voice;

use crate::kiosk::ui::AppWindow;
use crate::kiosk::KioskContext;

/// Installs every controller's models and callbacks on `w` (UI thread).
pub fn setup(w: &AppWindow, ctx: &KioskContext) {
    cluster::setup(w, ctx);
    feed::setup(w);
    chat::setup(w, ctx, ctx.chat.clone());
    status::setup(w, ctx);
    faces::setup(w, ctx);
    camera::setup(w, ctx);
    terminal::setup(w, ctx);
    approvals::setup(w, ctx);
    keyboard::setup(w, ctx.keyboard);
    voice::setup(w, ctx);
}

/// A window on Slint's testing backend (no event loop, mock time), for controller tests.
#[cfg(test)]
pub(crate) fn test_window() -> AppWindow {
    i_slint_backend_testing::init_no_event_loop();
    AppWindow::new().expect("the UI builds on the testing backend")
}

//! The kiosk: the Slint HUD in `ui/` and the glue that keeps it live. It owns no data of its own: it reads the
//! state, the bus and the store, and every action it takes goes through the tool registry as actor `kiosk`.
//!
//! - [`controllers`]: one per adapter global in `ui/` — pure row builders (tested without a window) and the
//!   UI-thread code that syncs models and wires callbacks;
//! - [`bridge`]: the background tasks that watch the spine and post results to the UI thread;
//! - [`snapshot`]: headless rendering with the software renderer (`jarvis snapshot`);
//! - [`backend`]: choosing winit or LinuxKMS and a renderer (probed in a child, software as the fallback),
//!   and running the window;
//! - [`display`]: the LinuxKMS quit chord swallowed, input devices and udev reported;
//! - [`keys`]: hardware keys over evdev (push-to-talk, kill switch);
//! - [`fonts`]: the embedded fonts made visible to fontconfig on a root that has none;
//! - [`x11_focus`]: the keyboard focus on X11 when no window manager gives it (feature `desktop`);
//! - [`evdev_input`]: touch, mouse and keys read from `/dev/input` for the static flavour, whose LinuxKMS backend
//!   has no libinput (used without the feature `kiosk-gpu`);
//! - [`format`], [`rows`]: how values read on the wall, and in-place model updates.
//!
//! Threading: Slint runs on the thread that created the window; everything else runs on tokio. Background work
//! holds only a `slint::Weak` and posts closures through [`UiThread`], so nothing blocks the UI thread.

pub mod backend;
pub mod bridge;
pub mod controllers;
pub mod display;
pub mod evdev_input;
pub mod fonts;
pub mod format;
pub mod keys;
pub mod rows;
pub mod snapshot;
#[cfg(feature = "desktop")]
pub mod x11_focus;

pub mod ui {
    #![allow(clippy::all)]
    slint::include_modules!();
}

use std::sync::{mpsc, Arc};

use slint::ComponentHandle;

use crate::bus::Bus;
use crate::state::StateHandle;
use crate::store::Store;
use crate::tools::Registry;

/// The actor name the kiosk's calls carry in the audit log.
pub const ACTOR: &str = "kiosk";

/// A closure to run on the UI thread.
pub type UiJob = Box<dyn FnOnce() + Send + 'static>;

/// How background tasks reach the UI thread: Slint's event loop in a window, or a queue that a headless caller
/// (snapshots, tests) drains itself.
#[derive(Clone)]
pub enum UiThread {
    EventLoop,
    Queue(mpsc::Sender<UiJob>),
}

impl UiThread {
    /// A queue and the receiver to drain it with [`drain`].
    pub fn queue() -> (UiThread, mpsc::Receiver<UiJob>) {
        let (tx, rx) = mpsc::channel();
        (UiThread::Queue(tx), rx)
    }

    /// Runs `job` on the UI thread soon. After the UI has closed this does nothing.
    pub fn post(&self, job: impl FnOnce() + Send + 'static) {
        match self {
            UiThread::EventLoop => {
                if let Err(e) = slint::invoke_from_event_loop(job) {
                    tracing::debug!("UI gone, dropping an update: {e}");
                }
            }
            UiThread::Queue(tx) => {
                let _ = tx.send(Box::new(job));
            }
        }
    }
}

/// Runs every job waiting in a headless UI queue; returns how many ran.
pub fn drain(rx: &mpsc::Receiver<UiJob>) -> usize {
    let mut n = 0;
    while let Ok(job) = rx.try_recv() {
        job();
        n += 1;
    }
    n
}

/// What the kiosk works with: the spine, the registry, and where to run async work and UI work.
#[derive(Clone)]
pub struct KioskContext {
    pub state: StateHandle,
    pub bus: Bus,
    pub store: Arc<Store>,
    pub tools: Arc<Registry>,
    pub runtime: tokio::runtime::Handle,
    pub ui: UiThread,
    /// Hosts the terminal offers besides the nodes (the Docker VM).
    pub extra_hosts: Vec<String>,
    /// Storage fill thresholds in percent (warning, critical), as the alerts use them.
    pub storage_thresholds: (f64, f64),
    /// Who answers the chat (the agent); `None` until one is configured.
    pub chat: Option<Arc<dyn controllers::chat::ChatBackend>>,
    /// The agent, for the cost figure.
    pub agent: Option<Arc<crate::agent::Agent>>,
    /// The kiosk's own calls waiting for approval.
    pub own_calls: controllers::terminal::OwnCalls,
    /// Whether the on-screen keyboard comes up when a field takes the focus.
    pub keyboard: bool,
    /// The camera tile's stream, when it is open.
    pub camera: controllers::camera::Tile,
}

impl KioskContext {
    /// For a running app; the UI thread is Slint's event loop until a headless caller swaps in a queue.
    pub fn new(
        app: &crate::app::App,
        runtime: tokio::runtime::Handle,
        extra_hosts: Vec<String>,
        storage_thresholds: (f64, f64),
    ) -> KioskContext {
        KioskContext {
            state: app.state.clone(),
            bus: app.bus.clone(),
            store: app.store.clone(),
            tools: app.tools.clone(),
            runtime,
            ui: UiThread::EventLoop,
            extra_hosts,
            storage_thresholds,
            chat: Some(Arc::new(app.agent.clone())),
            agent: Some(app.agent.clone()),
            own_calls: Default::default(),
            keyboard: false,
            camera: Default::default(),
        }
    }
}

/// Wires every controller to `window` and starts the bridge tasks. Call on the UI thread, inside `runtime`'s
/// context or not. The returned token stops the bridge.
pub fn attach(window: &ui::AppWindow, ctx: &KioskContext) -> tokio_util::sync::CancellationToken {
    controllers::setup(window, ctx);
    bridge::start(window.as_weak(), ctx.clone())
}

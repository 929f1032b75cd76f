//! The latest snapshot of the world behind a `tokio::sync::watch`, so a reader never waits on a poller.
//!
//! Writers replace parts of the world with [`StateHandle::update`]; readers take a cheap `Arc` snapshot with
//! [`StateHandle::get`] or wait for changes with [`StateHandle::subscribe`].

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use crate::cluster::model::ClusterSnapshot;

/// What Jarvis himself is doing.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JarvisStatus {
    pub mode: String,
    pub version: String,
    pub started_at_ms: u64,
}

/// The kiosk's screen as it came up (empty while no UI runs): `/healthz` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DisplayStatus {
    /// `winit`, `linuxkms` (or `(SLINT_BACKEND)` when the environment chose).
    pub backend: String,
    /// `femtovg` (GPU) or `software`.
    pub renderer: String,
    /// Why the GPU renderer was wanted but not used.
    pub gpu_fallback: Option<String>,
    /// `system`, or `embedded` when the root had no font.
    pub fonts: String,
    /// What is missing for a person to use it (udev, input devices).
    pub warnings: Vec<String>,
}

/// The face engine: `loading`, `ready`, or `unavailable` with the reason (`/healthz` and the kiosk show it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FacesStatus {
    pub engine: String,
    pub detail: Option<String>,
}

/// The voice pipeline: `engine` is `off`, `loading`, `ready` or `unavailable` (with why); `audio` is the sound
/// card's state (`live`, `unavailable` with why, or `none` when only uploads are heard).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VoiceStatus {
    pub engine: String,
    pub detail: Option<String>,
    pub audio: String,
    pub audio_detail: Option<String>,
    /// The last exchanges' latency in a line (`voice: reply in 0.8 s …`), for the kiosk.
    pub latency: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct World {
    pub cluster: ClusterSnapshot,
    pub jarvis: JarvisStatus,
    pub display: DisplayStatus,
    pub faces: FacesStatus,
    pub voice: VoiceStatus,
    /// Who is home, the latest comings and goings, the cameras.
    pub presence: crate::vision::household::PresenceView,
}

#[derive(Clone)]
pub struct StateHandle {
    tx: Arc<watch::Sender<Arc<World>>>,
}

impl StateHandle {
    pub fn new(world: World) -> StateHandle {
        let (tx, _) = watch::channel(Arc::new(world));
        StateHandle { tx: Arc::new(tx) }
    }

    /// The current world; cloning the `Arc` is all it costs.
    pub fn get(&self) -> Arc<World> {
        self.tx.borrow().clone()
    }

    /// Applies `f` to a copy of the world and publishes it if it changed.
    pub fn update(&self, f: impl FnOnce(&mut World)) {
        self.tx.send_if_modified(|current| {
            let mut next = World::clone(current);
            f(&mut next);
            if next == **current {
                false
            } else {
                *current = Arc::new(next);
                true
            }
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<World>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn update_notifies_only_on_change() {
        let state = StateHandle::new(World::default());
        let mut rx = state.subscribe();
        rx.mark_unchanged();
        state.update(|w| w.jarvis.mode = String::new());
        assert!(!rx.has_changed().expect("sender alive"));
        state.update(|w| w.jarvis.mode = "demo".into());
        assert!(rx.has_changed().expect("sender alive"));
        assert_eq!(state.get().jarvis.mode, "demo");
    }
}

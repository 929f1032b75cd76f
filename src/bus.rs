//! The event bus: one `tokio::sync::broadcast` of typed [`Event`]s that every subsystem publishes to and the
//! store, the WebSocket and (later) the UI and autopilot subscribe to.
//!
//! Publishing never blocks: a subscriber that falls behind loses the oldest events and is told how many
//! (`RecvError::Lagged`), so a slow reader can never slow the pollers down.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::cluster::model::{GuestKind, Staleness};

/// Default capacity of the broadcast ring.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The four channels an event can belong to, like the four Socket.IO namespaces of the original product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Cluster,
    Jarvis,
    Voice,
    Vision,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Cluster => "cluster",
            Channel::Jarvis => "jarvis",
            Channel::Voice => "voice",
            Channel::Vision => "vision",
        }
    }
}

/// Storage fill level classes used for threshold events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillLevel {
    Normal,
    Warning,
    Critical,
}

/// Everything that happens, as one typed enum. Serialised as `{"kind": "...", ...fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A node left the cluster view (offline or unknown).
    NodeOffline { node: String },
    /// A node came back online.
    NodeOnline { node: String },
    /// A guest changed power state (`running`, `stopped`, `paused`...), or appeared/disappeared.
    GuestStateChanged {
        vmid: u32,
        name: String,
        node: String,
        guest_kind: GuestKind,
        from: Option<String>,
        to: Option<String>,
    },
    /// A storage crossed a fill threshold, upwards or downwards.
    StorageThreshold {
        storage: String,
        node: String,
        used_pct: f64,
        from: FillLevel,
        to: FillLevel,
    },
    /// A task finished with an exit status other than `OK`.
    TaskFailed {
        upid: String,
        node: String,
        task_type: String,
        id: String,
        user: String,
        exitstatus: String,
    },
    /// The Proxmox API stopped answering properly; the cluster view is stale.
    PveStale(Staleness),
    /// The Proxmox API answers again after being stale.
    PveRecovered { after_ms: u64 },
    /// A power action was sent to PVE and produced a task.
    ActionStarted {
        upid: String,
        node: String,
        vmid: u32,
        action: String,
    },
    /// A followed task finished.
    ActionFinished {
        upid: String,
        node: String,
        vmid: u32,
        action: String,
        exitstatus: String,
    },
    /// A tool was invoked through the registry (refused and pending calls included).
    ToolCalled {
        actor: String,
        tool: String,
        tier: u8,
        /// `ok`, `pending`, `refused`, `invalid`, `error`.
        outcome: String,
        detail: String,
        duration_ms: u64,
    },
    /// A tier-2 call waits for the operator (the kiosk shows an approval card).
    ApprovalRequested {
        id: String,
        tool: String,
        actor: String,
        summary: String,
        expires_ms: u64,
    },
    /// The operator approved or denied a pending call.
    ApprovalDecided {
        id: String,
        tool: String,
        approved: bool,
    },
    /// The kill switch was turned on or off.
    KillSwitch { on: bool },
    /// Jarvis itself started.
    JarvisStarted { version: String, mode: String },
    /// Jarvis is shutting down.
    JarvisStopping,
    /// Someone asked Jarvis something: `via` is where (`kiosk`, `web`, `voice`); `text` is the question, cut to
    /// 500 characters.
    Asked { via: String, text: String },
    /// The push-to-talk key went down (`pressed`) or up. `listening` says whether a voice pipeline took it.
    PushToTalk { pressed: bool, listening: bool },
    /// The voice pipeline moved on: `listening` (woken, or the key), `thinking`, `speaking`, `idle`, or
    /// `unavailable` (no sound card, or the models failed); `detail` says why or what was heard.
    VoiceActivity {
        state: String,
        detail: Option<String>,
    },
    /// The audio level for the visualiser (0..1, the loudest sample of the last 80–100 ms): the microphone's while
    /// listening, the loudspeaker's while speaking.
    VoiceLevel { level: f32 },
    /// A spoken reply is ready: its audio is at `/api/v1/voice/replies/{id}.wav` and `.ogg` (Opus).
    VoiceReply { id: String, text: String, ms: u64 },
    /// A face was seen (a camera, a reported photo): who it matched, or the unknown-face group it joined. Never a
    /// notification by itself.
    FaceSeen {
        source: String,
        person: Option<String>,
        person_id: Option<i64>,
        score: f32,
        group: Option<i64>,
        /// The sighting's row (its crop: `/api/v1/faces/sightings/{id}/crop.jpg`).
        sighting: i64,
        /// When the picture was taken (a Frigate frame's time), which may be before the event is published.
        at_ms: u64,
        /// Zones the person's track has entered so far, in order (Frigate).
        zones: Vec<String>,
        /// The track the face belongs to (a Frigate event id, an RTSP face track).
        track: Option<String>,
        frigate_event: Option<String>,
    },
    /// The face gallery or its review queue changed (`change` says how, for people).
    FacesChanged { change: String },
    /// A person on a camera's track, with the name recognition gave them (none: not recognised, or no face
    /// seen), as the track's zones change (Frigate). Presence follows it like a face seen.
    PersonSeen {
        camera: String,
        person: Option<String>,
        person_id: Option<i64>,
        confidence: f32,
        at_ms: u64,
        zones: Vec<String>,
        track: String,
        frigate_event: Option<String>,
        sighting: Option<i64>,
    },
    /// A camera's feed (or the Frigate / MQTT link behind it) changed state: `live`, `connecting`, `lost`, with why.
    CameraStateChanged {
        camera: String,
        state: String,
        detail: Option<String>,
    },
    /// Show this camera's picture on the wall (the `show_camera` tool): the kiosk opens its tile.
    CameraShown { camera: String },
    /// Someone arrived (`state` "home") or left ("away") on `camera` at `at_ms`; `inferred` when a departure was
    /// concluded from a camera's timeout rather than seen.
    PresenceChanged {
        person: String,
        person_id: i64,
        state: String,
        camera: String,
        at_ms: u64,
        inferred: bool,
    },
}

impl Event {
    pub fn channel(&self) -> Channel {
        match self {
            Event::JarvisStarted { .. }
            | Event::JarvisStopping
            | Event::ToolCalled { .. }
            | Event::ApprovalRequested { .. }
            | Event::ApprovalDecided { .. }
            | Event::KillSwitch { .. }
            | Event::Asked { .. } => Channel::Jarvis,
            Event::PushToTalk { .. }
            | Event::VoiceActivity { .. }
            | Event::VoiceLevel { .. }
            | Event::VoiceReply { .. } => Channel::Voice,
            Event::FaceSeen { .. } | Event::FacesChanged { .. } | Event::PresenceChanged { .. } => {
                Channel::Vision
            }
            _ => Channel::Cluster,
        }
    }

    /// Whether the event log keeps it. Successful reads through the tool registry are live-only: the audit table
    /// records every tool call, and an activity feed full of status queries would bury what happened.
    pub fn persisted(&self) -> bool {
        // A key held down is live-only, like a successful read.
        !matches!(self, Event::ToolCalled { tier: 0, outcome, .. } if outcome == "ok")
            && !matches!(
                self,
                Event::PushToTalk { .. }
                    | Event::CameraShown { .. }
                    | Event::VoiceActivity { .. }
                    | Event::VoiceLevel { .. }
                    | Event::VoiceReply { .. }
            )
    }

    /// The `kind` tag as a string, for the store's index and for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::NodeOffline { .. } => "node_offline",
            Event::NodeOnline { .. } => "node_online",
            Event::GuestStateChanged { .. } => "guest_state_changed",
            Event::StorageThreshold { .. } => "storage_threshold",
            Event::TaskFailed { .. } => "task_failed",
            Event::PveStale(_) => "pve_stale",
            Event::PveRecovered { .. } => "pve_recovered",
            Event::ActionStarted { .. } => "action_started",
            Event::ActionFinished { .. } => "action_finished",
            Event::ToolCalled { .. } => "tool_called",
            Event::ApprovalRequested { .. } => "approval_requested",
            Event::ApprovalDecided { .. } => "approval_decided",
            Event::KillSwitch { .. } => "kill_switch",
            Event::JarvisStarted { .. } => "jarvis_started",
            Event::JarvisStopping => "jarvis_stopping",
            Event::Asked { .. } => "asked",
            Event::PushToTalk { .. } => "push_to_talk",
            Event::VoiceActivity { .. } => "voice_activity",
            Event::VoiceLevel { .. } => "voice_level",
            Event::VoiceReply { .. } => "voice_reply",
            Event::FaceSeen { .. } => "face_seen",
            Event::FacesChanged { .. } => "faces_changed",
            Event::PresenceChanged { .. } => "presence_changed",
            Event::PersonSeen { .. } => "person_seen",
            Event::CameraStateChanged { .. } => "camera_state_changed",
            Event::CameraShown { .. } => "camera_shown",
        }
    }
}

/// The question as an [`Event::Asked`] carries it: at most 500 characters.
pub fn asked(via: &str, text: &str) -> Event {
    Event::Asked {
        via: via.to_string(),
        text: text.chars().take(500).collect(),
    }
}

/// An event with the wall-clock time it was published at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub event: Event,
}

/// Cheap to clone; every clone publishes to the same channel.
#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Stamped>,
}

impl Bus {
    pub fn new(capacity: usize) -> Bus {
        let (tx, _) = broadcast::channel(capacity);
        Bus { tx }
    }

    /// Publishes an event stamped with the current time. Having no subscriber is not an error.
    pub fn publish(&self, event: Event) {
        tracing::debug!(kind = event.kind(), "event");
        let _ = self.tx.send(Stamped {
            ts_ms: crate::time::now_ms(),
            event,
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Stamped> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_receive_in_order_and_lag_is_reported() {
        let bus = Bus::new(2);
        let mut rx = bus.subscribe();
        for n in ["a", "b", "c"] {
            bus.publish(Event::NodeOnline { node: n.into() });
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(1)) => {}
            other => panic!("expected a lag of 1, got {other:?}"),
        }
        let next = rx.recv().await.expect("event after lag");
        assert_eq!(next.event, Event::NodeOnline { node: "b".into() });
    }

    #[test]
    fn events_serialise_with_kind_tag_and_channel() {
        let e = Event::NodeOffline { node: "pve".into() };
        let json = serde_json::to_value(&e).expect("serialise");
        assert_eq!(json["kind"], "node_offline");
        assert_eq!(json["node"], "pve");
        assert_eq!(e.kind(), "node_offline");
        assert_eq!(e.channel(), Channel::Cluster);
        assert_eq!(Event::JarvisStopping.channel(), Channel::Jarvis);
        let read = |outcome: &str, tier| Event::ToolCalled {
            actor: "mcp".into(),
            tool: "cluster_status".into(),
            tier,
            outcome: outcome.into(),
            detail: String::new(),
            duration_ms: 1,
        };
        assert!(
            !read("ok", 0).persisted(),
            "successful reads stay out of the event log"
        );
        assert!(read("invalid", 0).persisted() && read("ok", 1).persisted() && e.persisted());
    }
}

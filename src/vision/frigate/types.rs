//! Frigate's wire formats, field for field as its 0.16 API spec (`EventResponse`, `ReviewSegmentResponse`) and
//! its MQTT documentation (`frigate/events`, `frigate/tracked_object_update`, `frigate/reviews`) name them. The
//! client decodes them; the demo's simulator encodes the same types, so the two cannot drift apart, and the
//! contract test checks both against the spec.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /api/events` items and `GET /api/events/{id}` (`EventResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub label: String,
    /// The recognised name (Frigate's own face recognition, or set by hand); `null` when none.
    pub sub_label: Option<String>,
    pub camera: String,
    /// Seconds since the epoch.
    pub start_time: f64,
    pub end_time: Option<f64>,
    pub false_positive: Option<bool>,
    pub zones: Vec<String>,
    /// Base64 JPEG when `include_thumbnails=1`.
    pub thumbnail: Option<String>,
    pub has_clip: bool,
    pub has_snapshot: bool,
    pub retain_indefinitely: bool,
    pub plus_id: Option<String>,
    pub model_hash: Option<String>,
    pub detector_type: Option<String>,
    pub model_type: Option<String>,
    /// `box`, `region`, `score`, `top_score`, `attributes`, `type`, ... (free-form in the spec).
    pub data: Value,
}

/// `GET /api/review` items (`ReviewSegmentResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewSegment {
    pub id: String,
    pub camera: String,
    /// ISO 8601 date-time.
    pub start_time: String,
    pub end_time: String,
    pub has_been_reviewed: bool,
    pub severity: String,
    pub thumb_path: String,
    pub data: Value,
}

/// A tracked object as `frigate/events` carries it (`before` and `after`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedObject {
    pub id: String,
    pub camera: String,
    pub frame_time: f64,
    pub label: String,
    /// `["Name", score]` once recognised, else `null`.
    #[serde(default)]
    pub sub_label: Option<SubLabel>,
    #[serde(default)]
    pub top_score: f64,
    #[serde(default)]
    pub score: f64,
    #[serde(default)]
    pub false_positive: bool,
    pub start_time: f64,
    #[serde(default)]
    pub end_time: Option<f64>,
    #[serde(default, rename = "box")]
    pub bbox: Vec<f64>,
    #[serde(default)]
    pub area: f64,
    #[serde(default)]
    pub region: Vec<f64>,
    #[serde(default)]
    pub current_zones: Vec<String>,
    #[serde(default)]
    pub entered_zones: Vec<String>,
    #[serde(default)]
    pub has_snapshot: bool,
    #[serde(default)]
    pub has_clip: bool,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub stationary: bool,
    /// e.g. `{"face": 0.64}`.
    #[serde(default)]
    pub attributes: Value,
    #[serde(default)]
    pub snapshot: Option<Value>,
}

/// `["Name", 0.87]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubLabel(pub String, pub f64);

/// A `frigate/events` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// `new`, `update` or `end`.
    #[serde(rename = "type")]
    pub kind: String,
    pub before: TrackedObject,
    pub after: TrackedObject,
}

/// A `frigate/tracked_object_update` message of type `face`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceUpdate {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: Option<String>,
    pub score: f64,
    pub camera: String,
    pub timestamp: f64,
}

/// A `frigate/reviews` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewMessage {
    #[serde(rename = "type")]
    pub kind: String,
    pub before: Value,
    pub after: ReviewItem,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub id: String,
    pub camera: String,
    pub start_time: f64,
    pub end_time: Option<f64>,
    pub severity: String,
    pub thumb_path: String,
    pub data: Value,
}

/// Seconds since the epoch (Frigate's times) as milliseconds.
pub fn ms(secs: f64) -> u64 {
    if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0) as u64
    } else {
        0
    }
}

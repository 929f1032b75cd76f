//! The cameras Jarvis watches, as configured (`[[cameras]]`): where each one's pictures come from (Frigate, or an
//! RTSP stream Jarvis decodes itself) and what a sighting on it means for presence ([`CameraRules`]). The
//! settings a camera's readers and the presence rules share; the readers themselves live beside this module.

use serde::Serialize;

use super::presence::CameraRules;
use crate::secret::Secret;

/// Where a camera's pictures come from.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraSource {
    /// Frigate records it (`[frigate]`); Jarvis reads its events and snapshots. `frigate_name` is the camera's
    /// name in Frigate's config when it differs from Jarvis's.
    Frigate { frigate_name: String },
    /// Jarvis decodes the stream itself.
    Rtsp {
        /// Without a password: that comes from `password`, and never shows in logs.
        url: String,
        password: Option<Secret>,
    },
}

impl CameraSource {
    pub fn kind(&self) -> &'static str {
        match self {
            CameraSource::Frigate { .. } => "frigate",
            CameraSource::Rtsp { .. } => "rtsp",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CameraSettings {
    pub name: String,
    pub source: CameraSource,
    pub rules: CameraRules,
    /// Frames a second sampled for faces from an RTSP stream.
    pub sample_fps: f32,
}

/// A camera as shown to people and tools: never the URL's credentials.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraInfo {
    pub name: String,
    pub source: &'static str,
    pub mode: super::presence::CameraMode,
    pub inside_zones: Vec<String>,
    pub outside_zones: Vec<String>,
    pub departure_timeout_minutes: u64,
}

impl CameraSettings {
    pub fn info(&self) -> CameraInfo {
        CameraInfo {
            name: self.name.clone(),
            source: self.source.kind(),
            mode: self.rules.mode,
            inside_zones: self.rules.inside_zones.clone(),
            outside_zones: self.rules.outside_zones.clone(),
            departure_timeout_minutes: self.rules.departure_timeout_ms / 60_000,
        }
    }
}

/// `[presence]`: how long the timeline is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceSettings {
    pub keep_days: u32,
}

impl Default for PresenceSettings {
    fn default() -> PresenceSettings {
        PresenceSettings { keep_days: 365 }
    }
}

/// `url` with any user name and password replaced by `***`, for logs and states.
pub fn masked(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***@{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            masked("rtsp://admin:hunter2@10.0.0.5:554/s"),
            "rtsp://***@10.0.0.5:554/s"
        );
        assert_eq!(masked("rtsp://10.0.0.5/s"), "rtsp://10.0.0.5/s");
        assert_eq!(masked("rtsp://a:b@c@host/s"), "rtsp://***@host/s");
    }
}

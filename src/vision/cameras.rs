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
    /// A video file Jarvis plays in a loop as if it were a camera, through the same decoder (demos, tests, trying
    /// the presence rules on a recording).
    File { path: std::path::PathBuf },
}

impl CameraSource {
    pub fn kind(&self) -> &'static str {
        match self {
            CameraSource::Frigate { .. } => "frigate",
            CameraSource::Rtsp { .. } => "rtsp",
            CameraSource::File { .. } => "file",
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

impl CameraSettings {
    /// A camera Frigate records under the same name, with its rules and the default sampling rate.
    pub fn frigate(
        name: &str,
        mode: super::presence::CameraMode,
        inside: &[&str],
        outside: &[&str],
    ) -> CameraSettings {
        CameraSettings {
            name: name.into(),
            source: CameraSource::Frigate {
                frigate_name: name.into(),
            },
            rules: CameraRules {
                name: name.into(),
                mode,
                inside_zones: inside.iter().map(|z| z.to_string()).collect(),
                outside_zones: outside.iter().map(|z| z.to_string()).collect(),
                departure_timeout_ms: 0,
            },
            sample_fps: 2.0,
        }
    }
}

/// A camera as shown to people and tools: never the URL's credentials.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraInfo {
    pub name: String,
    pub source: &'static str,
    /// The camera's name in Frigate's config, for Frigate cameras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frigate_name: Option<String>,
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
            frigate_name: match &self.source {
                CameraSource::Frigate { frigate_name } => Some(frigate_name.clone()),
                CameraSource::Rtsp { .. } | CameraSource::File { .. } => None,
            },
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

/// Camera snapshots taken for tools (`camera_snapshot`): JPEG files in `<data dir>/snapshots/`, the newest
/// [`SNAPSHOTS_KEPT`] kept, older ones deleted as new ones come (they show faces: nothing keeps them longer).
pub const SNAPSHOTS_KEPT: usize = 20;

/// The snapshots folder beside the database.
pub fn snapshots_dir(store_path: &std::path::Path) -> std::path::PathBuf {
    store_path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("snapshots")
}

/// Saves a snapshot of `camera` (a checked camera name) and deletes the oldest beyond [`SNAPSHOTS_KEPT`].
pub fn save_snapshot(
    dir: &std::path::Path,
    camera: &str,
    jpeg: &[u8],
) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(format!("{camera}-{}.jpg", crate::time::now_ms()));
    let tmp = path.with_extension("part");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(jpeg)?;
    }
    std::fs::rename(&tmp, &path)?;
    let mut files: Vec<(std::time::SystemTime, std::path::PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "jpg"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort();
    let excess = files.len().saturating_sub(SNAPSHOTS_KEPT);
    for (_, old) in files.into_iter().take(excess) {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
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

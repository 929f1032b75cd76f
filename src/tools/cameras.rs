//! Camera tools, all reads: `show_camera` (the kiosk opens the camera's tile), `camera_events` (Frigate's person events for a camera and a time range said in
//! words) and `camera_snapshot` (a camera's latest frame, or an event's snapshot, saved as a JPEG under the data
//! folder: the MCP result carries the picture itself, other callers get the file path and the side port's URL).
//! Frigate's text (sub labels, zones) is outside text: `camera_events` is in `OUTSIDE_TEXT_TOOLS`.

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::typed::TypedTool;
use super::{Registry, Tier, ToolContext, ToolError};
use crate::vision::cameras::{save_snapshot, snapshots_dir};
use crate::vision::frigate::client::{EventQuery, FrigateClient, FrigateError};
use crate::vision::household::CameraView;
use crate::when;

pub fn register(r: &mut Registry) {
    r.register(TypedTool::<EventsArgs>::new(
        "camera_events",
        Tier::Read,
        "Frigate's person events on the cameras: id, camera, start and end (local time), zones entered, Frigate's \
         own name for the person if it has one, and a snapshot URL. Filter by camera and a time range in words \
         (\"yesterday\", \"since 6 pm\").",
        |a, _| match &a.camera {
            Some(c) => format!("List the events of camera {c}"),
            None => "List the camera events".into(),
        },
        |ctx, a| Box::pin(async move { camera_events(&ctx, a).await }),
    ));
    r.register(TypedTool::<ShowArgs>::new(
        "show_camera",
        Tier::Read,
        "Show a camera's live picture on the kiosk's wall display (it closes itself after two minutes).",
        |a, _| format!("Show camera {} on the wall", a.camera),
        |ctx, a| {
            Box::pin(async move {
                let camera = find_camera(&ctx, &a.camera)?;
                ctx.bus.publish(crate::bus::Event::CameraShown {
                    camera: camera.info.name.clone(),
                });
                Ok(json!({ "shown": camera.info.name, "state": camera.state }))
            })
        },
    ));
    r.register(TypedTool::<SnapshotArgs>::new(
        "camera_snapshot",
        Tier::Read,
        "A picture from a camera: its latest frame, or the snapshot of one of its events (event id from \
         camera_events). Saved as a JPEG; the answer gives the file path and the side port's URL (over MCP the \
         picture itself comes with it).",
        |a, _| format!("Take a picture from camera {}", a.camera),
        |ctx, a| Box::pin(async move { camera_snapshot(&ctx, a).await }),
    ));
}

#[derive(Deserialize, Serialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EventsArgs {
    /// A camera's name (list_cameras); all cameras when absent.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub camera: Option<String>,
    /// The time range in words; the last day when absent.
    #[serde(default)]
    #[schemars(length(min = 1, max = 100))]
    pub when: Option<String>,
    /// At most this many events (1–50, default 10).
    #[serde(default)]
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowArgs {
    /// The camera's name (list_cameras).
    #[schemars(length(min = 1, max = 64))]
    pub camera: String,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotArgs {
    /// The camera's name (list_cameras).
    #[schemars(length(min = 1, max = 64))]
    pub camera: String,
    /// An event of that camera; its latest frame when absent.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub event: Option<String>,
}

/// The configured camera called `name` (case and `_`/space forgiven), or a not-found naming the ones there are.
pub fn find_camera(ctx: &ToolContext, name: &str) -> Result<CameraView, ToolError> {
    let w = ctx.state.get();
    let key = |s: &str| s.to_lowercase().replace([' ', '-'], "_");
    w.presence
        .cameras
        .iter()
        .find(|c| key(&c.info.name) == key(name))
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = w
                .presence
                .cameras
                .iter()
                .map(|c| c.info.name.as_str())
                .collect();
            ToolError::NotFound(if names.is_empty() {
                "no cameras are configured".into()
            } else {
                format!("there is no camera {name}; there is {}", names.join(", "))
            })
        })
}

fn frigate(ctx: &ToolContext) -> Result<&FrigateClient, ToolError> {
    ctx.frigate
        .as_deref()
        .ok_or_else(|| ToolError::Failed("Frigate is not configured ([frigate])".into()))
}

fn failed(e: FrigateError) -> ToolError {
    match e {
        FrigateError::Http {
            status: 404,
            message,
        } => ToolError::NotFound(message),
        other => ToolError::Failed(other.to_string()),
    }
}

async fn camera_events(ctx: &ToolContext, a: EventsArgs) -> Result<Value, ToolError> {
    let client = frigate(ctx)?;
    let cameras = match &a.camera {
        Some(c) => vec![find_camera(ctx, c)?],
        None => ctx.state.get().presence.cameras.clone(),
    };
    let names: Vec<String> = cameras
        .iter()
        .filter(|c| c.info.source == "frigate")
        .map(|c| {
            c.info
                .frigate_name
                .clone()
                .unwrap_or_else(|| c.info.name.clone())
        })
        .collect();
    let tz = super::presence::zone();
    let now = jiff::Zoned::now().with_time_zone(tz.clone());
    let range = match a.when.as_deref().filter(|w| !when::is_blank(w)) {
        Some(w) => when::parse(w, &now).map_err(|e| ToolError::InvalidArguments {
            tool: "camera_events".into(),
            field: "when".into(),
            message: e.to_string(),
        })?,
        None => when::parse("in the last 24 hours", &now)
            .map_err(|e| ToolError::Failed(e.to_string()))?,
    };
    let q = EventQuery {
        cameras: names,
        labels: vec!["person".into()],
        after: Some(range.from_ms as f64 / 1000.0),
        before: Some(range.to_ms as f64 / 1000.0),
        limit: Some(a.limit.unwrap_or(10).clamp(1, 50)),
        ..Default::default()
    };
    let events = client.events(&q).await.map_err(failed)?;
    let local = |secs: f64| super::presence::local((secs * 1000.0) as u64, &tz);
    let by_frigate = |f: &str| {
        cameras
            .iter()
            .find(|c| c.info.frigate_name.as_deref().unwrap_or(&c.info.name) == f)
            .map_or_else(|| f.to_string(), |c| c.info.name.clone())
    };
    Ok(json!({
        "range": range.said,
        "events": events.iter().map(|e| {
            let camera = by_frigate(&e.camera);
            json!({
                "id": e.id,
                "camera": camera,
                "start": local(e.start_time),
                "end": e.end_time.map(local),
                "zones": e.zones,
                "frigate_name_for_person": e.sub_label,
                "snapshot": format!("/api/v1/cameras/{camera}/events/{}/snapshot.jpg", e.id),
            })
        }).collect::<Vec<_>>(),
    }))
}

async fn camera_snapshot(ctx: &ToolContext, a: SnapshotArgs) -> Result<Value, ToolError> {
    let camera = find_camera(ctx, &a.camera)?;
    if camera.info.source != "frigate" {
        if a.event.is_some() {
            return Err(ToolError::Failed(format!(
                "{} is decoded by Jarvis itself: events (and their snapshots) come only from Frigate cameras",
                camera.info.name
            )));
        }
        let (frames, name) = (ctx.frames.clone(), camera.info.name.clone());
        let jpeg = tokio::task::spawn_blocking(move || frames.latest_jpeg(&name, None))
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?
            .ok_or_else(|| {
                ToolError::Failed(format!(
                    "{} has no recent frame (its stream is {}{})",
                    camera.info.name,
                    camera.state,
                    camera
                        .detail
                        .as_ref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ))
            })?;
        let url = format!("/api/v1/cameras/{}/latest.jpg", camera.info.name);
        return saved(ctx, &camera, jpeg, None, url).await;
    }
    let client = frigate(ctx)?;
    let frigate_name = camera
        .info
        .frigate_name
        .clone()
        .unwrap_or_else(|| camera.info.name.clone());
    let (jpeg, url) = match &a.event {
        Some(id) => {
            let e = client.event(id).await.map_err(failed)?;
            if e.camera != frigate_name {
                return Err(ToolError::NotFound(format!(
                    "event {id} is not one of {}'s",
                    camera.info.name
                )));
            }
            let jpeg = client.snapshot(id, false, None).await.map_err(failed)?;
            (
                jpeg,
                format!(
                    "/api/v1/cameras/{}/events/{id}/snapshot.jpg",
                    camera.info.name
                ),
            )
        }
        None => (
            client.latest(&frigate_name, None).await.map_err(failed)?,
            format!("/api/v1/cameras/{}/latest.jpg", camera.info.name),
        ),
    };
    saved(ctx, &camera, jpeg, a.event.clone(), url).await
}

/// Saves a snapshot in the snapshots folder and says where it is.
async fn saved(
    ctx: &ToolContext,
    camera: &CameraView,
    jpeg: Vec<u8>,
    event: Option<String>,
    url: String,
) -> Result<Value, ToolError> {
    let store = ctx
        .store
        .clone()
        .ok_or_else(|| ToolError::Failed("no data folder for snapshots here".into()))?;
    let dir = snapshots_dir(store.path());
    let name = camera.info.name.clone();
    let bytes = jpeg.len();
    let path = tokio::task::spawn_blocking(move || save_snapshot(&dir, &name, &jpeg))
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
        .map_err(|e| ToolError::Failed(format!("cannot save the snapshot: {e}")))?;
    Ok(json!({
        "camera": camera.info.name,
        "event": event,
        "taken": crate::time::rfc3339_ms(crate::time::now_ms()),
        "bytes": bytes,
        "image_file": path.display().to_string(),
        "url": url,
    }))
}

/// The picture a tool result names (`image_file`), as base64 for MCP image content: only a file in the
/// snapshots folder beside `store_path`, never any other path a result might carry.
pub fn image_of(result: &Value, store_path: &std::path::Path) -> Option<String> {
    let file = std::path::Path::new(result["image_file"].as_str()?);
    let dir = std::fs::canonicalize(snapshots_dir(store_path)).ok()?;
    let file = std::fs::canonicalize(file).ok()?;
    if !file.starts_with(&dir) {
        return None;
    }
    let bytes = std::fs::read(file).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

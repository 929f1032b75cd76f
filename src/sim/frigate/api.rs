//! The Frigate simulator's routes: the spec'd paths under `/api` (listed by [`routes`] for the contract test),
//! Frigate-style answers (JSON arrays of `EventResponse`, `{"success": false, "message": ...}` errors, 422 with
//! FastAPI's `detail` for a bad parameter), the login on the authenticated port, and `/_sim` control.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::household::{Visit, HOUSEHOLD, STRANGERS};
use super::{scene, FrigateShared, SimEvent};
use crate::sim::lock;
use crate::vision::frigate::types::{Event, ReviewSegment};

/// A spec'd route the simulator serves: method, the spec's path, the query parameters it reads.
pub struct FrigateRoute {
    pub method: &'static str,
    pub path: &'static str,
    pub params: &'static [&'static str],
}

/// Every `/api` route, as the spec names it (the contract test walks this list).
pub fn routes() -> Vec<FrigateRoute> {
    let r = |method, path, params| FrigateRoute {
        method,
        path,
        params,
    };
    vec![
        r("GET", "/version", &[]),
        r("GET", "/config", &[]),
        r("GET", "/stats", &[]),
        r("POST", "/login", &[]),
        r(
            "GET",
            "/events",
            &[
                "camera",
                "cameras",
                "label",
                "labels",
                "sub_label",
                "sub_labels",
                "zone",
                "zones",
                "limit",
                "after",
                "before",
                "has_snapshot",
                "in_progress",
                "include_thumbnails",
                "sort",
            ],
        ),
        r("GET", "/events/{event_id}", &[]),
        r(
            "GET",
            "/events/{event_id}/snapshot.jpg",
            &["crop", "height", "bbox", "timestamp", "quality", "download"],
        ),
        r("GET", "/events/{event_id}/thumbnail.{extension}", &[]),
        r("GET", "/events/{event_id}/clip.mp4", &[]),
        r(
            "GET",
            "/{camera_name}/latest.{extension}",
            &["height", "quality", "bbox", "timestamp", "zones"],
        ),
        r("GET", "/{camera_name}/recordings/summary", &["timezone"]),
        r(
            "GET",
            "/review",
            &[
                "cameras", "labels", "zones", "reviewed", "limit", "severity", "before", "after",
            ],
        ),
    ]
}

pub fn router(shared: Arc<FrigateShared>, authenticated: bool) -> Router {
    let api = Router::new()
        .route("/api/version", get(version))
        .route("/api/config", get(config))
        .route("/api/stats", get(stats))
        .route("/api/events", get(events))
        .route("/api/events/{event_id}", get(event))
        .route("/api/events/{event_id}/{file}", get(event_file))
        .route("/api/review", get(review))
        .route("/api/{camera_name}/{file}", get(camera_file))
        .route(
            "/api/{camera_name}/recordings/summary",
            get(recordings_summary),
        );
    let api = if authenticated {
        api.layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            require_login,
        ))
        .route("/api/login", post(login))
    } else {
        api.route("/_sim/visit", post(sim_visit))
            .route("/_sim/fault", post(sim_fault))
    };
    api.with_state(shared)
}

fn failure(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({ "success": false, "message": message })),
    )
        .into_response()
}

/// FastAPI's answer to a parameter of the wrong type.
fn unprocessable(param: &str, wanted: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "detail": [{ "type": wanted, "loc": ["query", param], "msg": format!("Input should be a valid {wanted}") }] })),
    )
        .into_response()
}

async fn require_login(
    State(s): State<Arc<FrigateShared>>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("frigate_token=").map(str::to_string));
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let ok = cookie
        .or(bearer)
        .is_some_and(|t| lock(&s.tokens).contains(&t));
    if ok {
        next.run(req).await
    } else {
        failure(StatusCode::UNAUTHORIZED, "Unauthorized")
    }
}

async fn login(State(s): State<Arc<FrigateShared>>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return unprocessable("body", "json");
    };
    let (Some(user), Some(password)) = (v["user"].as_str(), v["password"].as_str()) else {
        return unprocessable("body", "object with user and password");
    };
    match &s.login {
        Some((u, p)) if u == user && p == password => {
            let token: String = {
                use rand::Rng;
                let mut rng = rand::rng();
                (0..40)
                    .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                    .collect()
            };
            lock(&s.tokens).insert(token.clone());
            let cookie = format!("frigate_token={token}; Path=/; HttpOnly; SameSite=Lax");
            ([(header::SET_COOKIE, cookie)], Json(json!({}))).into_response()
        }
        _ => failure(StatusCode::UNAUTHORIZED, "Login failed"),
    }
}

async fn version() -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], "0.16.2-sim").into_response()
}

async fn config(State(s): State<Arc<FrigateShared>>) -> Response {
    let zones = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|z| {
                (
                    z.to_string(),
                    json!({ "coordinates": "0,0,1,0,1,1,0,1", "objects": ["person"] }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let cameras: serde_json::Map<String, Value> = s
        .cameras
        .iter()
        .map(|c| {
            let z = if c == super::household::FRONT_DOOR { zones(&["street", "porch"]) } else { zones(&["path"]) };
            (c.clone(), json!({ "enabled": true, "detect": { "width": scene::WIDTH, "height": scene::HEIGHT, "fps": 5 }, "zones": z, "objects": { "track": ["person"] } }))
        })
        .collect();
    Json(json!({ "cameras": cameras, "mqtt": { "enabled": true, "topic_prefix": "frigate" }, "version": "0.16.2" })).into_response()
}

async fn stats(State(s): State<Arc<FrigateShared>>) -> Response {
    let cameras: serde_json::Map<String, Value> = s
        .cameras
        .iter()
        .map(|c| (c.clone(), json!({ "camera_fps": 5.0, "process_fps": 5.0, "detection_fps": 0.4, "skipped_fps": 0.0, "detection_enabled": true })))
        .collect();
    Json(json!({
        "cameras": cameras,
        "detectors": { "cpu": { "inference_speed": 42.0 } },
        "service": { "uptime": s.started.elapsed().as_secs(), "version": "0.16.2", "latest_version": "0.16.2" },
    }))
    .into_response()
}

/// The REST form of an event.
pub fn event_response(e: &SimEvent) -> Event {
    let t = super::tracked(e);
    Event {
        id: e.id.clone(),
        label: "person".into(),
        sub_label: e.sub_label.as_ref().map(|(n, _)| n.clone()),
        camera: e.camera.clone(),
        start_time: e.start,
        end_time: e.end,
        false_positive: Some(false),
        zones: e.zones.clone(),
        thumbnail: None,
        has_clip: false,
        has_snapshot: t.has_snapshot,
        retain_indefinitely: false,
        plus_id: None,
        model_hash: None,
        detector_type: Some("cpu".into()),
        model_type: Some("ssd".into()),
        data: json!({
            "box": t.bbox.iter().enumerate().map(|(i, v)| v / if i % 2 == 0 { scene::WIDTH as f64 } else { scene::HEIGHT as f64 }).collect::<Vec<_>>(),
            "region": [0.0, 0.0, 1.0, 1.0],
            "score": t.score,
            "top_score": t.top_score,
            "attributes": [],
            "type": "object",
        }),
    }
}

fn list(q: &HashMap<String, String>, many: &str, one: &str) -> Option<Vec<String>> {
    let v = q.get(many).or_else(|| q.get(one))?;
    (v != "all").then(|| v.split(',').map(str::to_string).collect())
}

async fn events(
    State(s): State<Arc<FrigateShared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let number = |k: &str| -> Result<Option<f64>, &'static str> {
        match q.get(k) {
            None => Ok(None),
            Some(v) => v.parse::<f64>().map(Some).map_err(|_| "number"),
        }
    };
    let int = |k: &str| -> Result<Option<i64>, &'static str> {
        match q.get(k) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| "integer"),
        }
    };
    let mut bad = None;
    let mut num = |k: &'static str| {
        number(k).unwrap_or_else(|w| {
            bad.get_or_insert((k, w));
            None
        })
    };
    let (after, before) = (num("after"), num("before"));
    let mut whole = |k: &'static str| {
        int(k).unwrap_or_else(|w| {
            bad.get_or_insert((k, w));
            None
        })
    };
    let (limit, has_snapshot, in_progress) = (
        whole("limit").unwrap_or(100),
        whole("has_snapshot"),
        whole("in_progress"),
    );
    if let Some((k, w)) = bad {
        return unprocessable(k, w);
    }
    let cameras = list(&q, "cameras", "camera");
    let labels = list(&q, "labels", "label");
    let zones = list(&q, "zones", "zone");
    let sub_labels = list(&q, "sub_labels", "sub_label");
    let mut out: Vec<Event> = lock(&s.events)
        .iter()
        .filter(|e| cameras.as_ref().is_none_or(|c| c.contains(&e.camera)))
        .filter(|_| {
            labels
                .as_ref()
                .is_none_or(|l| l.iter().any(|x| x == "person"))
        })
        .filter(|e| {
            zones
                .as_ref()
                .is_none_or(|z| e.zones.iter().any(|x| z.contains(x)))
        })
        .filter(|e| {
            sub_labels
                .as_ref()
                .is_none_or(|l| e.sub_label.as_ref().is_some_and(|(n, _)| l.contains(n)))
        })
        .filter(|e| after.is_none_or(|a| e.start > a))
        .filter(|e| before.is_none_or(|b| e.start < b))
        .filter(|e| in_progress.is_none_or(|p| (p == 1) == e.end.is_none()))
        .map(event_response)
        .filter(|e| has_snapshot.is_none_or(|h| (h == 1) == e.has_snapshot))
        .collect();
    match q.get("sort").map(String::as_str) {
        Some("date_asc") => out.sort_by(|a, b| a.start_time.total_cmp(&b.start_time)),
        _ => out.sort_by(|a, b| b.start_time.total_cmp(&a.start_time)),
    }
    out.truncate(limit.clamp(0, 10_000) as usize);
    Json(out).into_response()
}

async fn event(State(s): State<Arc<FrigateShared>>, Path(id): Path<String>) -> Response {
    match s.event(&id) {
        Some(e) => Json(event_response(&e)).into_response(),
        None => failure(StatusCode::NOT_FOUND, "Event not found"),
    }
}

fn image(s: &FrigateShared, bytes: Vec<u8>) -> Response {
    if lock(&s.faults).garbage_snapshots {
        return (
            [(header::CONTENT_TYPE, "image/jpeg")],
            b"<html>not a picture</html>".to_vec(),
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response()
}

async fn event_file(
    State(s): State<Arc<FrigateShared>>,
    Path((id, file)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(e) = s.event(&id) else {
        return failure(StatusCode::NOT_FOUND, "Event not found");
    };
    let frame = || {
        scene::frame(
            &e.camera,
            &s.photos,
            e.photo.as_deref(),
            e.current.as_deref(),
        )
    };
    match file.as_str() {
        "snapshot.jpg" => {
            let height = match q.get("height").map(|h| h.parse::<u32>()) {
                Some(Ok(h)) => Some(h),
                Some(Err(_)) => return unprocessable("height", "integer"),
                None => None,
            };
            let img = frame();
            let img = if q.get("crop").is_some_and(|c| c == "1") {
                scene::crop(&img, e.current.as_deref())
            } else {
                img
            };
            image(&s, scene::jpeg(&img, height))
        }
        "thumbnail.jpg" | "thumbnail.webp" => {
            let img = scene::crop(&frame(), e.current.as_deref());
            image(&s, scene::jpeg(&img, Some(175)))
        }
        "clip.mp4" => failure(StatusCode::NOT_FOUND, "Clip not available"),
        _ => failure(StatusCode::NOT_FOUND, "Not found"),
    }
}

async fn camera_file(
    State(s): State<Arc<FrigateShared>>,
    Path((camera, file)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !s.cameras.contains(&camera) {
        return failure(StatusCode::NOT_FOUND, "Camera named {} not found");
    }
    if file != "latest.jpg" && file != "latest.webp" {
        return failure(StatusCode::NOT_FOUND, "Not found");
    }
    let (photo, zone) = lock(&s.in_view)
        .get(&camera)
        .cloned()
        .unwrap_or((None, None));
    let height = q.get("height").and_then(|h| h.parse::<u32>().ok());
    let img = scene::frame(&camera, &s.photos, photo.as_deref(), zone.as_deref());
    image(&s, scene::jpeg(&img, height))
}

async fn recordings_summary(
    State(s): State<Arc<FrigateShared>>,
    Path(camera): Path<String>,
) -> Response {
    if !s.cameras.contains(&camera) {
        return failure(StatusCode::NOT_FOUND, "Camera not found");
    }
    let mut days: std::collections::BTreeMap<String, (u32, Vec<u32>)> = Default::default();
    for e in lock(&s.events).iter().filter(|e| e.camera == camera) {
        let t = jiff::Timestamp::from_millisecond((e.start * 1000.0) as i64)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let z = t.to_zoned(jiff::tz::TimeZone::UTC);
        let d = days
            .entry(z.strftime("%Y-%m-%d").to_string())
            .or_insert((0, vec![0; 24]));
        d.0 += 1;
        d.1[z.hour() as usize] += 1;
    }
    let out: Vec<Value> = days
        .iter()
        .rev()
        .map(|(day, (n, hours))| {
            json!({
                "day": day,
                "events": n,
                "hours": hours.iter().enumerate().filter(|(_, c)| **c > 0).map(|(h, c)| json!({ "hour": format!("{h:02}"), "events": c, "duration": 3600, "motion": 60 * c, "objects": c })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(out).into_response()
}

async fn review(
    State(s): State<Arc<FrigateShared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let cameras = list(&q, "cameras", "camera");
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        Some(Ok(l)) => l,
        Some(Err(_)) => return unprocessable("limit", "integer"),
        None => 100,
    };
    let after = q.get("after").and_then(|a| a.parse::<f64>().ok());
    let iso = |t: f64| crate::time::rfc3339_ms((t * 1000.0) as u64);
    let out: Vec<ReviewSegment> = lock(&s.events)
        .iter()
        .rev()
        .filter(|e| e.end.is_some())
        .filter(|e| cameras.as_ref().is_none_or(|c| c.contains(&e.camera)))
        .filter(|e| after.is_none_or(|a| e.start > a))
        .take(limit)
        .map(|e| ReviewSegment {
            id: format!("review-{}", e.id),
            camera: e.camera.clone(),
            start_time: iso(e.start),
            end_time: iso(e.end.unwrap_or(e.start)),
            has_been_reviewed: false,
            severity: "alert".into(),
            thumb_path: format!("/media/frigate/clips/review/thumb-{}-{}.webp", e.camera, e.id),
            data: json!({ "detections": [e.id], "objects": ["person"], "sub_labels": [], "zones": e.zones, "audio": [] }),
        })
        .collect();
    Json(out).into_response()
}

/// `POST /_sim/visit` `{"camera", "who": "John" | "stranger" | "nobody" | a photo file, "zones": [...],
/// "sub_label": ["Name", 0.9]?}`: plays the visit now and answers its event id when it has ended.
async fn sim_visit(State(s): State<Arc<FrigateShared>>, Json(v): Json<Value>) -> Response {
    let camera = v["camera"]
        .as_str()
        .unwrap_or(super::household::FRONT_DOOR)
        .to_string();
    let who = v["who"].as_str().unwrap_or("nobody");
    let photo = match who {
        "nobody" => None,
        "stranger" => Some(STRANGERS[0].to_string()),
        name => Some(
            HOUSEHOLD
                .iter()
                .find(|m| m.name == name)
                .map_or(name.to_string(), |m| m.seen.to_string()),
        ),
    };
    let zones = v["zones"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|z| z.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let sub_label = v["sub_label"]
        .as_array()
        .and_then(|a| Some((a.first()?.as_str()?.to_string(), a.get(1)?.as_f64()?)));
    let id = s
        .play(Visit {
            camera,
            photo,
            zones,
            sub_label,
        })
        .await;
    Json(json!({ "id": id })).into_response()
}

/// `POST /_sim/fault` `{"garbage_snapshots": bool}`.
async fn sim_fault(State(s): State<Arc<FrigateShared>>, Json(v): Json<Value>) -> Response {
    if let Some(g) = v["garbage_snapshots"].as_bool() {
        lock(&s.faults).garbage_snapshots = g;
    }
    StatusCode::NO_CONTENT.into_response()
}

//! Faces on the side port. Reads (people, the review queue, thumbnails and crops) for anyone authenticated;
//! what changes the gallery or looks at a photo (create, enrol, delete, identify, report a sighting) for the
//! operator only, each audited. Photos come as `multipart/form-data`, at most [`MAX_PHOTOS`] per request; the
//! upload routes have their own body cap (a Content-Length over it is refused before anything is read). Review
//! actions are tools (`/api/v1/tools/assign_faces`…), so the gate and the audit apply as for any tool.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::auth::Role;
use super::{error, WebContext};
use crate::store::AuditRow;
use crate::tools::faces::{shown_person, shown_queue};
use crate::vision::gallery::{self, GalleryError};
use crate::vision::service::{FaceService, FaceServiceError, SeenAt};
use crate::vision::{photo::PhotoError, review};

/// Photos per enrolment request.
pub const MAX_PHOTOS: usize = 10;

/// The largest upload request: a few large photos (each is also held to `PhotoLimits::max_bytes`).
pub const MAX_UPLOAD_BYTES: usize = 48 * 1024 * 1024;

pub async fn people(State(ctx): State<Arc<WebContext>>) -> Response {
    match on_store(&ctx, gallery::people).await {
        Ok(p) => Json(json!({ "people": p.iter().map(shown_person).collect::<Vec<_>>() }))
            .into_response(),
        Err(r) => *r,
    }
}

pub async fn review_queue(State(ctx): State<Arc<WebContext>>) -> Response {
    match on_store(&ctx, |s| review::queue(s, 100)).await {
        Ok(q) => Json(shown_queue(&q)).into_response(),
        Err(r) => *r,
    }
}

pub async fn thumbnail(State(ctx): State<Arc<WebContext>>, Path(id): Path<i64>) -> Response {
    jpeg_or_404(
        on_store(&ctx, move |s| gallery::thumbnail(s, id)).await,
        "no face kept for that person",
    )
}

pub async fn crop(State(ctx): State<Arc<WebContext>>, Path(id): Path<i64>) -> Response {
    jpeg_or_404(
        on_store(&ctx, move |s| review::crop(s, id)).await,
        "no such sighting (it may have expired)",
    )
}

fn jpeg_or_404(found: Result<Option<Vec<u8>>, Box<Response>>, missing: &str) -> Response {
    match found {
        Ok(Some(bytes)) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "private, max-age=60"),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", missing),
        Err(r) => *r,
    }
}

/// `POST /api/v1/faces/people` with `{"name": "John"}`. Operator only.
pub async fn create(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = operator_only(role) {
        return r;
    }
    let name = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => match v.get("name").and_then(Value::as_str) {
            Some(n) if v.as_object().is_some_and(|o| o.len() == 1) => n.to_string(),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "send {\"name\": \"…\"} and nothing else",
                )
            }
        },
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("the body is not JSON: {e}"),
            )
        }
    };
    let started = Instant::now();
    let shown = name.clone();
    let made = on_store(&ctx, move |s| {
        gallery::create_person(s, &name, crate::time::now_ms())
    })
    .await;
    audit(&ctx, "create_person", &shown, made.is_ok(), started);
    match made {
        Ok(p) => {
            changed(&ctx, format!("{} was added to the face gallery", p.name));
            (
                StatusCode::CREATED,
                Json(json!({ "person": shown_person(&p) })),
            )
                .into_response()
        }
        Err(r) => *r,
    }
}

/// `DELETE /api/v1/faces/people/{id}`: the person and every sample, crop, correction and sighting. Operator only
/// (the operator's own request is the approval).
pub async fn delete(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    Path(id): Path<i64>,
) -> Response {
    if let Some(r) = operator_only(role) {
        return r;
    }
    let started = Instant::now();
    let gone = on_store(&ctx, move |s| gallery::delete_person(s, &id.to_string())).await;
    audit(
        &ctx,
        "delete_person",
        &id.to_string(),
        gone.is_ok(),
        started,
    );
    match gone {
        Ok(d) => {
            changed(
                &ctx,
                format!("{} was deleted from the face gallery", d.person.name),
            );
            Json(json!({
                "deleted": { "id": d.person.id, "name": d.person.name },
                "samples": d.samples,
                "corrections": d.negatives,
                "sightings": d.sightings,
            }))
            .into_response()
        }
        Err(r) => *r,
    }
}

/// `POST /api/v1/faces/people/{id}/photos` (multipart, `photo` fields): enrols each photo or says why not.
pub async fn enrol(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    Path(id): Path<i64>,
    form: Multipart,
) -> Response {
    if let Some(r) = operator_only(role) {
        return r;
    }
    let service = match engine(&ctx) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    // The person first: an unknown id is refused before any photo is read.
    if let Err(r) = on_store(&ctx, move |s| gallery::find_person(s, &id.to_string())).await {
        return *r;
    }
    let limit = service.settings().photo.max_bytes;
    let (photos, _) = match read_form(form, limit, false).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let started = Instant::now();
    let result = service
        .run(move |f| f.enrol(&id.to_string(), &photos))
        .await
        .and_then(|r| r);
    let detail = match &result {
        Ok(e) => format!(
            "{} of {} photos enrolled",
            e.photos.iter().filter(|p| p.enrolled).count(),
            e.photos.len()
        ),
        Err(e) => e.to_string(),
    };
    audit_detail(
        &ctx,
        "enrol_faces",
        &id.to_string(),
        result.is_ok(),
        &detail,
        started,
    );
    match result {
        Ok(e) => {
            let status = if e.photos.iter().any(|p| p.enrolled) {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            (
                status,
                Json(json!({ "person": shown_person(&e.person), "photos": e.photos })),
            )
                .into_response()
        }
        Err(e) => service_error(e),
    }
}

/// `POST /api/v1/faces/identify` (multipart, one `photo`): who each face is. Nothing is recorded.
pub async fn identify(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    form: Multipart,
) -> Response {
    let (service, photo, _) = match one_photo(&ctx, role, form, false).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let started = Instant::now();
    let result = service
        .run(move |f| f.identify(&photo))
        .await
        .and_then(|r| r);
    audit_faces(&ctx, "identify_faces", "", &result, started);
    match result {
        Ok(faces) => Json(json!({ "faces": faces })).into_response(),
        Err(e) => service_error(e),
    }
}

/// `POST /api/v1/faces/sightings` (multipart: `source`, optional `zones` and `track`, one `photo`): records every
/// face as seen by `source`
/// (a camera's name) — what cameras do; matches may be learnt from and unknown faces join the review queue.
pub async fn sighting(
    State(ctx): State<Arc<WebContext>>,
    Extension(role): Extension<Role>,
    form: Multipart,
) -> Response {
    let (service, photo, meta) = match one_photo(&ctx, role, form, true).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let at = SeenAt {
        camera: meta.source.unwrap_or_else(|| "photo".to_string()),
        zones: meta.zones,
        track: meta.track,
        ..Default::default()
    };
    let started = Instant::now();
    let shown = at.camera.clone();
    let result = service
        .run(move |f| f.sighting(&photo, &at))
        .await
        .and_then(|r| r);
    audit_faces(&ctx, "report_sighting", &shown, &result, started);
    match result {
        Ok(seen) => Json(json!({ "sightings": seen })).into_response(),
        Err(e) => service_error(e),
    }
}

/// The engine, the single photo and the optional `source` of an identify or sighting request.
async fn one_photo(
    ctx: &Arc<WebContext>,
    role: Role,
    form: Multipart,
    where_fields: bool,
) -> Result<(Arc<FaceService>, Vec<u8>, FormMeta), Box<Response>> {
    if let Some(r) = operator_only(role) {
        return Err(Box::new(r));
    }
    let service = engine(ctx)?;
    let (mut photos, meta) =
        read_form(form, service.settings().photo.max_bytes, where_fields).await?;
    if photos.len() != 1 {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("send exactly one `photo` field ({} sent)", photos.len()),
        )));
    }
    let (_, bytes) = photos.remove(0);
    Ok((service, bytes, meta))
}

/// What a form says besides its photos: `source` (a camera), and for sightings the track's `zones` (comma
/// separated, in the order entered) and `track`.
#[derive(Debug, Default)]
struct FormMeta {
    source: Option<String>,
    zones: Vec<String>,
    track: Option<String>,
}

/// The `photo` fields (name, bytes) and the other fields of a form. Each photo is read in chunks and refused
/// as soon as it passes `max_bytes`; `zones` and `track` only where `where_fields`; any other field is refused.
async fn read_form(
    mut form: Multipart,
    max_bytes: usize,
    where_fields: bool,
) -> Result<(Vec<(String, Vec<u8>)>, FormMeta), Box<Response>> {
    let mut photos = Vec::new();
    let mut meta = FormMeta::default();
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(Box::new(multipart_error(e))),
        };
        match field.name() {
            Some("photo") => {
                if photos.len() == MAX_PHOTOS {
                    return Err(Box::new(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_many_photos",
                        format!("at most {MAX_PHOTOS} photos per request"),
                    )));
                }
                let name = field
                    .file_name()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("photo {}", photos.len() + 1));
                let mut field = field;
                let mut bytes = Vec::new();
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            if bytes.len() + chunk.len() > max_bytes {
                                return Err(Box::new(error(
                                    StatusCode::PAYLOAD_TOO_LARGE,
                                    "too_large",
                                    format!(
                                        "{name} is larger than {} MiB",
                                        max_bytes / (1024 * 1024)
                                    ),
                                )));
                            }
                            bytes.extend_from_slice(&chunk);
                        }
                        Ok(None) => break,
                        Err(e) => return Err(Box::new(multipart_error(e))),
                    }
                }
                photos.push((name, bytes));
            }
            Some("source") => {
                meta.source = Some(short_text(field, "source is a camera name", 64).await?);
            }
            Some("track") if where_fields => {
                meta.track = Some(short_text(field, "track is an id", 128).await?);
            }
            Some("zones") if where_fields => {
                let text = short_text(field, "zones is a list of zone names", 16 * 65).await?;
                let zones: Vec<String> = text.split(',').map(|z| z.trim().to_string()).collect();
                if zones.len() > 16 || zones.iter().any(|z| z.is_empty() || z.len() > 64) {
                    return Err(Box::new(error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "zones: at most 16 names of 1 to 64 characters, separated by commas",
                    )));
                }
                meta.zones = zones;
            }
            other => {
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "unexpected form field `{}`: send `photo` fields",
                        other.unwrap_or("")
                    ),
                )))
            }
        }
    }
    if photos.is_empty() {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "no `photo` field in the form",
        )));
    }
    Ok((photos, meta))
}

/// A short text field: trimmed, 1 to `max` characters, no control characters.
async fn short_text(
    field: axum::extract::multipart::Field<'_>,
    what: &str,
    max: usize,
) -> Result<String, Box<Response>> {
    let text = field
        .text()
        .await
        .map_err(|e| Box::new(multipart_error(e)))?;
    let text = text.trim();
    if text.is_empty() || text.len() > max || text.chars().any(char::is_control) {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{what} of 1 to {max} characters"),
        )));
    }
    Ok(text.to_string())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> Response {
    let status = e.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "too_large"
    } else {
        "bad_multipart"
    };
    error(
        status,
        code,
        format!("the upload could not be read: {}", e.body_text()),
    )
}

fn operator_only(role: Role) -> Option<Response> {
    (role != Role::Operator).then(|| {
        error(
            StatusCode::FORBIDDEN,
            "operator_only",
            "faces are enrolled, identified and deleted with the operator token",
        )
    })
}

fn engine(ctx: &WebContext) -> Result<Arc<FaceService>, Box<Response>> {
    if let Some(s) = ctx.faces.get() {
        return Ok(s.clone());
    }
    let status = ctx.state.get().faces.clone();
    let why = match status.engine.as_str() {
        "loading" | "" => {
            "the face engine is still loading; try again in a few seconds".to_string()
        }
        _ => format!(
            "face recognition is unavailable: {}",
            status.detail.unwrap_or_default()
        ),
    };
    Err(Box::new(error(
        StatusCode::SERVICE_UNAVAILABLE,
        "faces_unavailable",
        why,
    )))
}

fn service_error(e: FaceServiceError) -> Response {
    match e {
        FaceServiceError::Photo(PhotoError::TooLarge { .. }) => {
            error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
        }
        FaceServiceError::Photo(_) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, "bad_photo", e.to_string())
        }
        FaceServiceError::Gallery(g) => gallery_error(g),
        other => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "faces",
            other.to_string(),
        ),
    }
}

fn gallery_error(e: GalleryError) -> Response {
    match e {
        GalleryError::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", m),
        GalleryError::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid", m),
        GalleryError::AlreadyResolved(m) => error(StatusCode::CONFLICT, "already_resolved", m),
        GalleryError::Store(s) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", s.to_string()),
    }
}

async fn on_store<T: Send + 'static>(
    ctx: &WebContext,
    f: impl FnOnce(&crate::store::Store) -> Result<T, GalleryError> + Send + 'static,
) -> Result<T, Box<Response>> {
    let store = ctx.store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Box::new(gallery_error(e))),
        Err(e) => Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        ))),
    }
}

fn changed(ctx: &WebContext, change: String) {
    ctx.bus.publish(crate::bus::Event::FacesChanged { change });
}

fn audit(ctx: &WebContext, what: &str, about: &str, ok: bool, started: Instant) {
    let detail = if ok {
        about.to_string()
    } else {
        format!("{about}: refused")
    };
    audit_detail(ctx, what, about, ok, &detail, started);
}

/// The audit row of a request that analysed one photo: how many faces, or why it failed.
fn audit_faces<T>(
    ctx: &WebContext,
    what: &str,
    about: &str,
    result: &Result<Vec<T>, FaceServiceError>,
    started: Instant,
) {
    let detail = match result {
        Ok(faces) => format!("{} faces", faces.len()),
        Err(e) => e.to_string(),
    };
    audit_detail(ctx, what, about, result.is_ok(), &detail, started);
}

/// One audit row for a faces request made by the operator on the side port.
fn audit_detail(
    ctx: &WebContext,
    what: &str,
    about: &str,
    ok: bool,
    detail: &str,
    started: Instant,
) {
    let row = AuditRow {
        ts_ms: crate::time::now_ms(),
        actor: "operator".into(),
        tool: what.into(),
        tier: 1,
        args_digest: crate::tools::gate::call_digest(what, &json!({ "about": about })),
        outcome: if ok { "ok" } else { "error" }.into(),
        detail: detail.chars().take(500).collect(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    if let Err(e) = ctx.store.append_audit(&row) {
        tracing::error!("cannot audit {what}: {e}");
    }
}

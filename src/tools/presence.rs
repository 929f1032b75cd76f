//! Presence tools, all reads: `who_is_home` and `list_cameras` from the state (`World::presence`),
//! `presence_timeline` and `last_seen` from the timeline in the store ([`crate::vision::timeline`]), with time
//! ranges said in words ([`crate::when`]) in the box's time zone. Times come back as RFC 3339 and as local time
//! in words, so a model or a template can say them without converting.

use jiff::tz::TimeZone;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::typed::TypedTool;
use super::{Registry, Tier, ToolContext, ToolError};
use crate::store::Store;
use crate::vision::gallery;
use crate::vision::presence::{PersonPresence, State};
use crate::vision::timeline::{self, Entry, Kind, Query};
use crate::when;

pub fn register(r: &mut Registry) {
    r.register(TypedTool::<NoArgs>::new(
        "who_is_home",
        Tier::Read,
        "Who is home, who is away and whose whereabouts are unknown, from the cameras: since when, and where \
         each person was last seen.",
        |_, _| "Say who is home".into(),
        |ctx, _| Box::pin(async move { Ok(who_is_home(&ctx)) }),
    ));
    r.register(TypedTool::<NoArgs>::new(
        "list_cameras",
        Tier::Read,
        "The cameras Jarvis watches: name, source (frigate or rtsp), what arriving and leaving mean on each (mode, \
         inside and outside zones, departure timeout) and how its feed stands (live, connecting, lost since ...).",
        |_, _| "List the cameras".into(),
        |ctx, _| {
            Box::pin(async move {
                let w = ctx.state.get();
                Ok(json!({ "cameras": w.presence.cameras }))
            })
        },
    ));
    r.register(TypedTool::<TimelineArgs>::new(
        "presence_timeline",
        Tier::Read,
        "Search the presence timeline: arrivals, departures, sightings and unknown people, by person, kind, camera \
         and a time range said in words in the box's time zone (\"yesterday\", \"this morning\", \"last Tuesday\", \
         \"since 6 pm\", \"between 2 and 4\", \"last night\", \"in the last 3 hours\"). Newest first unless \
         oldest_first.",
        |a, _| match (&a.person, &a.when) {
            (Some(p), Some(w)) => format!("Search the presence timeline for {p}, {w}"),
            (Some(p), None) => format!("Search the presence timeline for {p}"),
            (None, Some(w)) => format!("Search the presence timeline, {w}"),
            (None, None) => "Search the presence timeline".into(),
        },
        |ctx, a| {
            Box::pin(async move {
                let store = ctx.store.clone().ok_or_else(|| {
                    ToolError::Failed("the presence timeline is not available here".into())
                })?;
                timeline_search(store, a).await
            })
        },
    ));
    r.register(TypedTool::<PersonArgs>::new(
        "last_seen",
        Tier::Read,
        "When and where a person was last seen by a camera, and whether they are home.",
        |a, _| format!("Say when {} was last seen", a.person),
        |ctx, a| {
            Box::pin(async move {
                let who = a.person.clone();
                let (person, last) = on_store(&ctx, move |s| {
                    let p = gallery::find_person(s, &who).map_err(not_found)?;
                    let last = timeline::search(
                        s,
                        &Query {
                            person: Some(p.id),
                            limit: 1,
                            ..Default::default()
                        },
                    )
                    .map_err(|e| ToolError::Failed(e.to_string()))?;
                    Ok((p, last.into_iter().find(|e| !e.inferred)))
                })
                .await?;
                let w = ctx.state.get();
                let presence = w.presence.people.iter().find(|p| p.person == person.id);
                let tz = zone();
                Ok(json!({
                    "person": { "id": person.id, "name": person.name },
                    "last_seen": last.as_ref().map(|e| shown_entry(e, &tz)),
                    "state": presence.map_or("unknown", |p| p.state.as_str()),
                    "since": presence.and_then(|p| p.since_ms).map(|ms| times(ms, &tz)),
                }))
            })
        },
    ));
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonArgs {
    /// The person's name or id.
    #[schemars(length(min = 1, max = 64))]
    pub person: String,
}

#[derive(Deserialize, Serialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TimelineArgs {
    /// The person's name or id; every person and unknown people when absent.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub person: Option<String>,
    /// Which kinds of row: arrived, left, seen, unknown. All when absent.
    #[serde(default)]
    pub kinds: Option<Vec<Kind>>,
    /// The time range in words ("yesterday", "since 6 pm", "between 2 and 4"); all time when absent.
    #[serde(default)]
    #[schemars(length(min = 1, max = 100))]
    pub when: Option<String>,
    /// One camera's rows only.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    pub camera: Option<String>,
    /// At most this many rows (1–100, default 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// Oldest first instead of newest first.
    #[serde(default)]
    pub oldest_first: Option<bool>,
}

/// The box's time zone (the system's, `TZ` honoured).
pub fn zone() -> TimeZone {
    TimeZone::system()
}

/// A time as RFC 3339 and in local words ("Tue 1 Dec 18:04").
fn times(ms: u64, tz: &TimeZone) -> Value {
    json!({ "at": crate::time::rfc3339_ms(ms), "local": local(ms, tz) })
}

pub fn local(ms: u64, tz: &TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%a %-d %b %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

pub fn shown_entry(e: &Entry, tz: &TimeZone) -> Value {
    json!({
        "id": e.id,
        "kind": e.kind,
        "person": e.person.map(|id| json!({ "id": id, "name": e.name })),
        "camera": e.camera,
        "at": crate::time::rfc3339_ms(e.at_ms),
        "local": local(e.at_ms, tz),
        "confidence": (e.confidence * 100.0).round() / 100.0,
        "inferred": e.inferred,
        "snapshot": snapshot_url(e),
    })
}

/// Where the side port serves the picture behind a row: the face crop, or the Frigate event's snapshot.
pub fn snapshot_url(e: &Entry) -> Option<String> {
    match (&e.frigate_event, e.sighting) {
        (Some(id), _) => Some(format!(
            "/api/v1/cameras/{}/events/{id}/snapshot.jpg",
            e.camera
        )),
        (None, Some(s)) => Some(super::faces::crop_url(s)),
        _ => None,
    }
}

fn shown_person(p: &PersonPresence, tz: &TimeZone) -> Value {
    json!({
        "id": p.person,
        "name": p.name,
        "state": p.state.as_str(),
        "since": p.since_ms.map(|ms| times(ms, tz)),
        "last_seen": p.last_seen_ms.map(|ms| times(ms, tz)),
        "last_camera": p.last_camera,
        "inferred": p.inferred,
    })
}

fn who_is_home(ctx: &ToolContext) -> Value {
    let w = ctx.state.get();
    let tz = zone();
    let of = |s: State| -> Vec<Value> {
        w.presence
            .people
            .iter()
            .filter(|p| p.state == s)
            .map(|p| shown_person(p, &tz))
            .collect()
    };
    json!({
        "cameras_configured": w.presence.cameras_configured,
        "home": of(State::Home),
        "away": of(State::Away),
        "unknown": of(State::Unknown),
    })
}

/// Searches the timeline as `presence_timeline` does (the side port's `GET /api/v1/presence/timeline` too).
pub async fn timeline_search(
    store: std::sync::Arc<Store>,
    a: TimelineArgs,
) -> Result<Value, ToolError> {
    let tz = zone();
    let range = match a.when.as_deref().filter(|w| !when::is_blank(w)) {
        Some(phrase) => {
            let now = jiff::Zoned::now().with_time_zone(tz.clone());
            Some(
                when::parse(phrase, &now).map_err(|e| ToolError::InvalidArguments {
                    tool: "presence_timeline".into(),
                    field: "when".into(),
                    message: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    let limit = a.limit.unwrap_or(20).clamp(1, 100) as usize;
    let (from, to) = range.as_ref().map_or((None, None), |r| {
        (Some(r.from_ms.max(0) as u64), Some(r.to_ms.max(0) as u64))
    });
    let person = a.person.clone();
    let kinds = a.kinds.clone().unwrap_or_default();
    let camera = a.camera.clone();
    let oldest_first = a.oldest_first.unwrap_or(false);
    let (who, rows) = tokio::task::spawn_blocking(move || {
        let s = &*store;
        let who = match &person {
            Some(p) => Some(gallery::find_person(s, p).map_err(not_found)?),
            None => None,
        };
        let rows = timeline::search(
            s,
            &Query {
                person: who.as_ref().map(|p| p.id),
                kinds,
                camera,
                from_ms: from,
                to_ms: to,
                limit,
                oldest_first,
            },
        )
        .map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok::<_, ToolError>((who, rows))
    })
    .await
    .map_err(|e| ToolError::Failed(e.to_string()))??;
    Ok(json!({
        "person": who.map(|p| json!({ "id": p.id, "name": p.name })),
        "range": range.map(|r| json!({
            "from": crate::time::rfc3339_ms(r.from_ms.max(0) as u64),
            "to": crate::time::rfc3339_ms(r.to_ms.max(0) as u64),
            "said": r.said,
        })),
        "entries": rows.iter().map(|e| shown_entry(e, &tz)).collect::<Vec<_>>(),
    }))
}

fn not_found(e: gallery::GalleryError) -> ToolError {
    match e {
        gallery::GalleryError::NotFound(m) => ToolError::NotFound(m),
        other => ToolError::Failed(other.to_string()),
    }
}

async fn on_store<T: Send + 'static>(
    ctx: &ToolContext,
    f: impl FnOnce(&Store) -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    let store = ctx
        .store
        .clone()
        .ok_or_else(|| ToolError::Failed("the presence timeline is not available here".into()))?;
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
}

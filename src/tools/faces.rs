//! Face tools over the gallery and the review queue ([`crate::vision::gallery`], [`crate::vision::review`]):
//! `list_people` and `face_review_queue` read (names, times and image references — never embeddings);
//! `assign_faces`, `not_this_person`, `discard_faces` and `rename_person` are routine changes (so the taint
//! rule and the kill switch apply to them); `delete_person` removes every sample, crop and negative of a person
//! and needs the operator's approval. Enrolment takes photos and lives on the side port and the CLI.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::typed::TypedTool;
use super::{Registry, Tier, ToolContext, ToolError};
use crate::bus::Event;
use crate::store::Store;
use crate::vision::gallery::{self, GalleryError, Person};
use crate::vision::{plural, review};

/// Where the side port serves a person's thumbnail and a sighting's crop.
pub fn thumbnail_url(person: i64) -> String {
    format!("/api/v1/faces/people/{person}/thumbnail.jpg")
}

pub fn crop_url(sighting: i64) -> String {
    format!("/api/v1/faces/sightings/{sighting}/crop.jpg")
}

pub fn register(r: &mut Registry) {
    r.register(TypedTool::<NoArgs>::new(
        "list_people",
        Tier::Read,
        "The people Jarvis can recognise: id, name, how many face samples are kept, when they were last seen by a \
         camera, and a thumbnail URL on the side port.",
        |_, _| "List the people Jarvis recognises".into(),
        |ctx, _| {
            Box::pin(async move {
                let people = on_store(&ctx, gallery::people).await?;
                Ok(json!({ "people": people.iter().map(shown_person).collect::<Vec<_>>() }))
            })
        },
    ));
    r.register(TypedTool::<QueueArgs>::new(
        "face_review_queue",
        Tier::Read,
        "Faces waiting for the operator: groups of an unknown person's sightings (id, first and last seen, how \
         many, which cameras, crop URLs) to assign to a person or discard, and recent matches (sighting id, who, \
         score) that can be corrected with not_this_person.",
        |_, _| "Show the face review queue".into(),
        |ctx, a| {
            Box::pin(async move {
                let limit = a.limit.unwrap_or(20).clamp(1, 100) as usize;
                let q = on_store(&ctx, move |s| review::queue(s, limit)).await?;
                Ok(shown_queue(&q))
            })
        },
    ));
    r.register(TypedTool::<AssignArgs>::new(
        "assign_faces",
        Tier::Routine,
        "Say who an unknown person is: assign an unknown-face group (from face_review_queue) to a person (id or \
         name). Its good-quality sightings become samples of that person. create_person: true makes the person \
         first if there is nobody of that name.",
        |a, _| format!("Assign unknown faces {} to {}", a.group, a.person),
        |ctx, a| {
            Box::pin(async move {
                let settings = ctx.settings.faces.clone();
                let done = on_store(&ctx, move |s| {
                    if a.create_person.unwrap_or(false)
                        && matches!(gallery::find_person(s, &a.person), Err(GalleryError::NotFound(_)))
                    {
                        gallery::create_person(s, &a.person, crate::time::now_ms())?;
                    }
                    review::assign(s, a.group, &a.person, &settings, crate::time::now_ms())
                })
                .await?;
                changed(
                    &ctx,
                    format!(
                        "Unknown faces {} are {}: {} learnt",
                        done.group,
                        done.person.name,
                        plural(done.learnt, "sample")
                    ),
                );
                Ok(json!({
                    "assigned": done.group,
                    "person": shown_person(&done.person),
                    "samples_learnt": done.learnt,
                    "not_learnt": done.skipped,
                }))
            })
        },
    ));
    r.register(TypedTool::<SightingArgs>::new(
        "not_this_person",
        Tier::Routine,
        "Correct a wrong match: the sighting (from face_review_queue's recent matches) was not the person it was \
         matched to. That face stops matching them, anything learnt from it is removed, and it waits among the \
         unknown faces to be assigned to the right person.",
        |a, _| format!("Sighting {} was not the person it matched", a.sighting),
        |ctx, a| {
            Box::pin(async move {
                let settings = ctx.settings.faces.clone();
                let c = on_store(&ctx, move |s| {
                    review::not_this_person(s, a.sighting, &settings, crate::time::now_ms())
                })
                .await?;
                changed(&ctx, format!("Sighting {} was not {}", c.sighting, c.name));
                Ok(json!({
                    "sighting": c.sighting,
                    "not": { "id": c.person, "name": c.name },
                    "samples_removed": c.unlearnt,
                    "now_in_unknown_group": c.group,
                }))
            })
        },
    ));
    r.register(TypedTool::<GroupArgs>::new(
        "discard_faces",
        Tier::Routine,
        "Discard an unknown-face group (from face_review_queue): its crops are deleted and it leaves the queue.",
        |a, _| format!("Discard unknown faces {}", a.group),
        |ctx, a| {
            Box::pin(async move {
                let group = a.group;
                let n = on_store(&ctx, move |s| review::discard(s, group, crate::time::now_ms())).await?;
                changed(&ctx, format!("Unknown faces {group} discarded"));
                Ok(json!({ "discarded": group, "crops_deleted": n }))
            })
        },
    ));
    r.register(TypedTool::<RenameArgs>::new(
        "rename_person",
        Tier::Routine,
        "Rename a person Jarvis recognises (by id or current name).",
        |a, _| format!("Rename {} to {}", a.person, a.name),
        |ctx, a| {
            Box::pin(async move {
                let p = on_store(&ctx, move |s| gallery::rename(s, &a.person, &a.name)).await?;
                changed(&ctx, format!("Person {} is now called {}", p.id, p.name));
                Ok(json!({ "person": shown_person(&p) }))
            })
        },
    ));
    r.register(TypedTool::<PersonArgs>::new(
        "delete_person",
        Tier::Confirm,
        "Delete a person Jarvis recognises (by id or name) and everything kept about their face: samples, crops, \
         corrections and sightings. Cannot be undone. NEEDS THE OPERATOR'S CONFIRMATION: the first call returns \
         a pending approval.",
        |a, _| {
            format!(
                "Delete {} and every face sample, crop and correction kept of them (cannot be undone)",
                a.person
            )
        },
        |ctx, a| {
            Box::pin(async move {
                let d = on_store(&ctx, move |s| gallery::delete_person(s, &a.person)).await?;
                changed(&ctx, format!("{} was deleted from the face gallery", d.person.name));
                Ok(json!({
                    "deleted": { "id": d.person.id, "name": d.person.name },
                    "samples": d.samples,
                    "corrections": d.negatives,
                    "sightings": d.sightings,
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
pub struct QueueArgs {
    /// At most this many groups and matches (default 20).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignArgs {
    /// The unknown-face group's id.
    pub group: i64,
    /// The person's id or name.
    pub person: String,
    #[serde(default)]
    pub create_person: Option<bool>,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SightingArgs {
    /// The sighting's id (a recent match).
    pub sighting: i64,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupArgs {
    pub group: i64,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameArgs {
    /// The person's id or current name.
    pub person: String,
    /// The new name.
    pub name: String,
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonArgs {
    /// The person's id or name.
    pub person: String,
}

pub fn shown_person(p: &Person) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "samples": p.samples,
        "corrections": p.negatives,
        "last_seen": p.last_seen_ms.map(crate::time::rfc3339_ms),
        "thumbnail": (p.samples > 0).then(|| thumbnail_url(p.id)),
    })
}

pub fn shown_queue(q: &review::Queue) -> Value {
    json!({
        "unknown": q.unknown.iter().map(|g| json!({
            "group": g.id,
            "first_seen": crate::time::rfc3339_ms(g.first_ms),
            "last_seen": crate::time::rfc3339_ms(g.last_ms),
            "sightings": g.sightings,
            "sources": g.sources,
            "good_crops": g.good,
            "crops": g.crops.iter().map(|c| crop_url(*c)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "recent_matches": q.recent_matches.iter().map(|m| json!({
            "sighting": m.sighting,
            "person": { "id": m.person, "name": m.name },
            "score": (m.score * 100.0).round() / 100.0,
            "seen": crate::time::rfc3339_ms(m.ts_ms),
            "source": m.source,
            "crop": crop_url(m.sighting),
        })).collect::<Vec<_>>(),
    })
}

fn changed(ctx: &ToolContext, change: String) {
    ctx.bus.publish(Event::FacesChanged { change });
}

async fn on_store<T: Send + 'static>(
    ctx: &ToolContext,
    f: impl FnOnce(&Store) -> Result<T, GalleryError> + Send + 'static,
) -> Result<T, ToolError> {
    let store = ctx
        .store
        .clone()
        .ok_or_else(|| ToolError::Failed("the face gallery is not available here".into()))?;
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
        .map_err(|e| match e {
            GalleryError::NotFound(m) => ToolError::NotFound(m),
            GalleryError::Invalid(m) | GalleryError::AlreadyResolved(m) => ToolError::Failed(m),
            GalleryError::Store(e) => ToolError::Failed(e.to_string()),
        })
}

//! The faces part of the presence panel (`FacesAdapter`): the people Jarvis knows, with a thumbnail, and the review
//! queue — unknown people to name or discard, recent matches to correct — with an honest note while the engine
//! loads, when it is unavailable (and why), or when nobody is enrolled. Read from the store off the UI thread
//! whenever the gallery or the engine's state changes ([`watch`]); the buttons act through the tool registry as
//! `kiosk`, so the gate, the kill switch and the audit apply as for any actor.

use std::time::Duration;

use serde_json::json;
use slint::ComponentHandle;

use crate::bus::Event;
use crate::kiosk::format;
use crate::kiosk::ui::{AppWindow, FaceCard, FacesAdapter, ReviewCard, StatusAdapter};
use crate::kiosk::{rows, KioskContext, ACTOR};
use crate::state::FacesStatus;
use crate::tools::Outcome;
use crate::vision::{gallery, review};

/// Thumbnails shown in a row; the rest are counted.
pub const MAX_PEOPLE: usize = 6;
/// Review items shown; the rest are counted.
pub const MAX_REVIEW: usize = 2;
/// Re-read this often even without an event (times, retention).
const EVERY: Duration = Duration::from_secs(60);

/// What the panel shows, built off the UI thread (thumbnails as decoded RGB, 112×112 or smaller).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FacesView {
    pub people: Vec<(i64, String, String, Option<Rgb>)>,
    pub more_people: usize,
    pub review: Vec<Item>,
    pub more_review: usize,
    /// Unknown groups waiting (for the panel's title).
    pub unknown: usize,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub kind: i32,
    pub id: i64,
    pub title: String,
    pub detail: String,
    pub person: String,
    pub thumb: Option<Rgb>,
}

impl FacesView {
    /// Reads the gallery and the queue from the store.
    pub fn read(
        store: &crate::store::Store,
        engine: &FacesStatus,
        now_ms: u64,
        tz: &jiff::tz::TimeZone,
    ) -> FacesView {
        let people = gallery::people(store).unwrap_or_else(|e| {
            tracing::warn!("cannot read the face gallery: {e}");
            Vec::new()
        });
        let queue = review::queue(store, 50).unwrap_or_else(|e| {
            tracing::warn!("cannot read the face review queue: {e}");
            review::Queue {
                unknown: Vec::new(),
                recent_matches: Vec::new(),
            }
        });
        let note = match engine.engine.as_str() {
            "loading" => "Face recognition is starting…".to_string(),
            "unavailable" => format!(
                "Face recognition is unavailable: {}",
                engine.detail.clone().unwrap_or_default()
            ),
            _ if people.is_empty() => {
                "Nobody is enrolled yet: jarvis faces enroll NAME PHOTO… (or from the phone)"
                    .to_string()
            }
            _ => String::new(),
        };
        let mut view = FacesView {
            more_people: people.len().saturating_sub(MAX_PEOPLE),
            unknown: queue.unknown.len(),
            note,
            ..Default::default()
        };
        for p in people.iter().take(MAX_PEOPLE) {
            let detail = match p.last_seen_ms {
                Some(t) => format!("seen {}", format::ago(t, now_ms)),
                None => "not seen yet".into(),
            };
            let thumb = gallery::thumbnail(store, p.id)
                .ok()
                .flatten()
                .and_then(|j| decode(&j));
            view.people.push((p.id, p.name.clone(), detail, thumb));
        }
        // Strangers first (they need a name), then the newest matches (which may need correcting).
        let mut items: Vec<Item> = queue
            .unknown
            .iter()
            .map(|g| Item {
                kind: 0,
                id: g.id,
                title: format!("Unknown ×{}", g.sightings),
                detail: format!(
                    "{} · {}",
                    g.sources.join(", "),
                    format::clock(g.last_ms, tz)
                ),
                person: String::new(),
                thumb: g
                    .crops
                    .first()
                    .and_then(|c| review::crop(store, *c).ok().flatten())
                    .and_then(|j| decode(&j)),
            })
            .collect();
        items.extend(queue.recent_matches.iter().take(3).map(|m| {
            Item {
                kind: 1,
                id: m.sighting,
                title: format!("{} · {:.2}", m.name, m.score),
                detail: format!("{} · {}", m.source, format::clock(m.ts_ms, tz)),
                person: m.name.clone(),
                thumb: review::crop(store, m.sighting)
                    .ok()
                    .flatten()
                    .and_then(|j| decode(&j)),
            }
        }));
        view.more_review = items.len().saturating_sub(MAX_REVIEW);
        items.truncate(MAX_REVIEW);
        view.review = items;
        view
    }

    pub fn apply(&self, w: &AppWindow) {
        let a = w.global::<FacesAdapter>();
        let people: Vec<FaceCard> = self
            .people
            .iter()
            .map(|(id, name, detail, thumb)| FaceCard {
                id: *id as i32,
                name: name.as_str().into(),
                detail: detail.as_str().into(),
                has_thumb: thumb.is_some(),
                thumb: image(thumb.as_ref()),
            })
            .collect();
        rows::sync_handle(&a.get_people(), &people);
        let review: Vec<ReviewCard> = self
            .review
            .iter()
            .map(|i| ReviewCard {
                kind: i.kind,
                id: i.id as i32,
                title: i.title.as_str().into(),
                detail: i.detail.as_str().into(),
                person: i.person.to_uppercase().into(),
                has_thumb: i.thumb.is_some(),
                thumb: image(i.thumb.as_ref()),
            })
            .collect();
        rows::sync_handle(&a.get_review(), &review);
        a.set_more_people(self.more_people as i32);
        a.set_more_review(self.more_review as i32);
        if a.get_note() != self.note.as_str() {
            a.set_note(self.note.as_str().into());
        }
        w.global::<StatusAdapter>()
            .set_unknown_faces(self.unknown as i32);
    }
}

/// A small JPEG (a stored crop) as RGB; `None` if it does not decode.
fn decode(jpeg: &[u8]) -> Option<Rgb> {
    let limits = crate::vision::photo::PhotoLimits {
        max_bytes: 1024 * 1024,
        max_side: 512,
        max_pixels: 512 * 512,
    };
    crate::vision::photo::decode(jpeg, &limits)
        .ok()
        .map(|p| Rgb {
            width: p.width,
            height: p.height,
            pixels: p.rgb,
        })
}

fn image(rgb: Option<&Rgb>) -> slint::Image {
    match rgb {
        Some(r) => slint::Image::from_rgb8(slint::SharedPixelBuffer::clone_from_slice(
            &r.pixels, r.width, r.height,
        )),
        None => slint::Image::default(),
    }
}

/// Reads the view and shows it (from any thread).
pub fn refresh(ctx: &KioskContext, weak: slint::Weak<AppWindow>) {
    let ctx2 = ctx.clone();
    ctx.runtime.spawn_blocking(move || {
        let view = FacesView::read(
            &ctx2.store,
            &ctx2.state.get().faces,
            crate::time::now_ms(),
            &format::local_zone(),
        );
        ctx2.ui.post(move || {
            if let Some(w) = weak.upgrade() {
                view.apply(&w);
            }
        });
    });
}

/// Refreshes on every gallery change, every sighting, every change of the engine's state, and once a minute.
pub async fn watch(
    weak: slint::Weak<AppWindow>,
    ctx: KioskContext,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut bus = ctx.bus.subscribe();
    let mut state = ctx.state.subscribe();
    let mut engine = ctx.state.get().faces.clone();
    refresh(&ctx, weak.clone());
    loop {
        let again = tokio::select! {
            _ = stop.cancelled() => return,
            r = bus.recv() => match r {
                Ok(s) => matches!(s.event, Event::FacesChanged { .. } | Event::FaceSeen { .. }),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                Err(_) => return,
            },
            c = state.changed() => {
                if c.is_err() {
                    return;
                }
                let now = ctx.state.get().faces.clone();
                let changed = now != engine;
                engine = now;
                changed
            }
            _ = tokio::time::sleep(EVERY) => true,
        };
        if again {
            refresh(&ctx, weak.clone());
        }
    }
}

/// A review button: the tool through the registry as `kiosk`, then what it did in the panel.
fn act(
    ctx: &KioskContext,
    weak: slint::Weak<AppWindow>,
    tool: &'static str,
    args: serde_json::Value,
) {
    let ctx2 = ctx.clone();
    ctx.runtime.spawn(async move {
        let outcome = match ctx2.tools.invoke(ACTOR, tool, args).await {
            Ok(Outcome::Done { result }) => done_text(tool, &result),
            Ok(Outcome::PendingApproval { .. }) => "Waiting for approval.".to_string(),
            Err(e) => e.to_string(),
        };
        let w2 = weak.clone();
        ctx2.ui.post(move || {
            if let Some(w) = w2.upgrade() {
                w.global::<FacesAdapter>().set_outcome(outcome.into());
            }
        });
        refresh(&ctx2, weak);
    });
}

fn done_text(tool: &str, r: &serde_json::Value) -> String {
    match tool {
        "assign_faces" => format!(
            "Noted: that was {}.",
            r["person"]["name"].as_str().unwrap_or("them")
        ),
        "discard_faces" => "Discarded.".into(),
        "not_this_person" => format!(
            "Noted: not {}. I shall not make that mistake again.",
            r["not"]["name"].as_str().unwrap_or("them")
        ),
        _ => "Done.".into(),
    }
}

pub fn setup(w: &AppWindow, ctx: &KioskContext) {
    let a = w.global::<FacesAdapter>();
    a.set_people(rows::new_model::<FaceCard>().1);
    a.set_review(rows::new_model::<ReviewCard>().1);
    let (c, weak) = (ctx.clone(), w.as_weak());
    a.on_assign(move |group, person| {
        act(
            &c,
            weak.clone(),
            "assign_faces",
            json!({ "group": group, "person": person.to_string() }),
        )
    });
    let (c, weak) = (ctx.clone(), w.as_weak());
    a.on_discard(move |group| act(&c, weak.clone(), "discard_faces", json!({ "group": group })));
    let (c, weak) = (ctx.clone(), w.as_weak());
    a.on_not_this_person(move |sighting| {
        act(
            &c,
            weak.clone(),
            "not_this_person",
            json!({ "sighting": sighting }),
        )
    });
}

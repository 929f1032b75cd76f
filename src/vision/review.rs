//! Sightings and the review queue. Every face seen (a camera frame, a reported photo) becomes a sighting with
//! its crop: a match names a person — and is learnt from when confident and of good quality — while an unknown
//! face joins the group of the same stranger's earlier sightings (cosine to the group's centroid) or starts
//! one. The operator works the queue: [`assign`] a group to a person (its good samples join the gallery),
//! [`not_this_person`] about a match (a negative for that person, the sample it taught removed, and the face put
//! back among the unknown), or [`discard`] a group (its crops deleted). A resolved item cannot be resolved again.
//! [`sweep`] keeps sightings and groups within the retention by age and count. Unknown faces are never notified.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::faces::cosine;
use super::gallery::{
    self, add_sample, from_blob, normalised, to_blob, Added, Decision, GalleryError,
    GallerySettings, Index, NewSample, SampleSource,
};
use crate::store::Store;

const DAY_MS: u64 = 86_400_000;

/// A sighting as contested: its person, whether already contested, its embedding, the person's name.
type SightingRow = (Option<i64>, bool, Vec<u8>, Option<String>);

/// One face seen, as recorded.
pub struct Seen<'a> {
    pub source: &'a str,
    pub embedding: &'a [f32],
    pub crop_jpeg: &'a [u8],
    /// Whether it passed the quality gates (only good faces are ever learnt from or assigned).
    pub good: bool,
    /// Another recogniser's name for this face (Frigate's sub label): a second opinion, see [`second_opinion`].
    pub hint: Option<&'a str>,
}

/// How far below `match_threshold` a face may be and still be named when a second recogniser names the same
/// person. Never enough to learn from (`learn_threshold` is above `match_threshold`).
pub const SECOND_OPINION_SLACK: f32 = 0.08;

/// A second opinion never names a face by itself: it only tips an Unknown whose best candidate is the person it
/// names, not ruled out by the operator, and within [`SECOND_OPINION_SLACK`] of the threshold. A second opinion
/// that disagrees with a Known decision changes nothing.
pub fn second_opinion(decision: Decision, hint: Option<&str>, s: &GallerySettings) -> Decision {
    match (decision, hint) {
        (Decision::Unknown { best: Some(c), .. }, Some(h))
            if !c.ruled_out
                && c.name.eq_ignore_ascii_case(h.trim())
                && c.score >= s.match_threshold - SECOND_OPINION_SLACK =>
        {
            Decision::Known {
                person: c.person,
                name: c.name,
                score: c.score,
                runner_up: 0.0,
            }
        }
        (d, _) => d,
    }
}

/// What recording a sighting did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    pub sighting: i64,
    pub decision: Decision,
    /// The unknown group it joined or started.
    pub group: Option<i64>,
    /// Whether it was learnt from, and how.
    pub learnt: Option<Added>,
}

/// Records a sighting decided against `index` (the caller's view of the gallery).
pub fn record(
    store: &Store,
    index: &Index,
    seen: &Seen<'_>,
    s: &GallerySettings,
    now_ms: u64,
) -> Result<Recorded, GalleryError> {
    let decision = second_opinion(index.decide(seen.embedding, s), seen.hint, s);
    let out = store.write(|tx| {
        let score = match &decision {
            Decision::Known { score, .. } => *score,
            Decision::Unknown { best, .. } => best.as_ref().map_or(0.0, |b| b.score),
        };
        match &decision {
            Decision::Known { person, score, .. } => {
                let id = insert_sighting(tx, seen, Some(*person), None, *score, now_ms)?;
                let learnt = if seen.good && *score >= s.learn_threshold {
                    Some(add_sample(
                        tx,
                        *person,
                        &NewSample {
                            embedding: seen.embedding,
                            crop_jpeg: seen.crop_jpeg,
                            source: SampleSource::Learnt,
                            from_sighting: Some(id),
                        },
                        s,
                        now_ms,
                    )?)
                } else {
                    None
                };
                Ok((id, None, learnt))
            }
            Decision::Unknown { .. } => {
                let group = join_group(tx, seen.embedding, s, now_ms)?;
                let id = insert_sighting(tx, seen, None, Some(group), score, now_ms)?;
                trim_group(tx, group, s.group_samples)?;
                Ok((id, Some(group), None))
            }
        }
    })?;
    Ok(Recorded {
        sighting: out.0,
        decision,
        group: out.1,
        learnt: out.2,
    })
}

fn insert_sighting(
    tx: &Transaction<'_>,
    seen: &Seen<'_>,
    person: Option<i64>,
    group: Option<i64>,
    score: f32,
    now_ms: u64,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO face_sightings (ts_ms, source, person, grp, score, good, embedding, crop)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            now_ms as i64,
            seen.source,
            person,
            group,
            score as f64,
            seen.good,
            to_blob(seen.embedding),
            seen.crop_jpeg
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// The open group this face belongs to (updating its centroid), or a new one.
fn join_group(
    tx: &Transaction<'_>,
    e: &[f32],
    s: &GallerySettings,
    now_ms: u64,
) -> rusqlite::Result<i64> {
    let mut st =
        tx.prepare("SELECT id, centroid, sightings FROM face_groups WHERE status = 'open'")?;
    let best = st
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .filter_map(Result::ok)
        .filter_map(|(id, c, n)| from_blob(&c).map(|c| (id, cosine(&c, e), c, n)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    drop(st);
    match best {
        Some((id, sim, centroid, n)) if sim >= s.group_threshold => {
            // A running mean that stops growing its memory at 20 sightings, so the group can drift with the
            // stranger (lighting, a new haircut) without one odd frame moving it much.
            let w = n.min(20) as f32;
            let moved: Vec<f32> = centroid.iter().zip(e).map(|(c, x)| c * w + x).collect();
            tx.execute(
                "UPDATE face_groups SET centroid = ?1, last_ms = ?2, sightings = sightings + 1 WHERE id = ?3",
                params![to_blob(&normalised(moved)), now_ms as i64, id],
            )?;
            Ok(id)
        }
        _ => {
            tx.execute(
                "INSERT INTO face_groups (centroid, first_ms, last_ms, sightings) VALUES (?1, ?2, ?2, 1)",
                params![to_blob(&normalised(e.to_vec())), now_ms as i64],
            )?;
            Ok(tx.last_insert_rowid())
        }
    }
}

/// Keeps a group's newest `keep` sightings (its first one too, the face that opened it).
fn trim_group(tx: &Transaction<'_>, group: i64, keep: usize) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM face_sightings WHERE grp = ?1
           AND id != (SELECT MIN(id) FROM face_sightings WHERE grp = ?1)
           AND id NOT IN (SELECT id FROM face_sightings WHERE grp = ?1 ORDER BY id DESC LIMIT ?2)",
        params![group, keep.max(1) as i64],
    )?;
    Ok(())
}

/// A stranger's group in the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub id: i64,
    pub first_ms: u64,
    pub last_ms: u64,
    /// Sightings counted (more than the crops kept).
    pub sightings: u64,
    /// The sightings whose crops are kept (ids for `crop`), newest first.
    pub crops: Vec<i64>,
    /// The cameras or sources that saw them.
    pub sources: Vec<String>,
    /// How many kept crops passed the quality gates (what an assignment would learn from).
    pub good: usize,
}

/// A recent match, which the operator may contest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub sighting: i64,
    pub person: i64,
    pub name: String,
    pub score: f32,
    pub ts_ms: u64,
    pub source: String,
}

/// The review queue: open groups (most recently seen first) and recent uncontested matches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Queue {
    pub unknown: Vec<Group>,
    pub recent_matches: Vec<Match>,
}

pub fn queue(store: &Store, limit: usize) -> Result<Queue, GalleryError> {
    Ok(store.read(|c| {
        let mut st = c.prepare(
            "SELECT id, first_ms, last_ms, sightings FROM face_groups
             WHERE status = 'open' ORDER BY last_ms DESC, id DESC LIMIT ?1",
        )?;
        let groups: Vec<(i64, i64, i64, i64)> = st
            .query_map([limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut unknown = Vec::new();
        for (id, first, last, n) in groups {
            let mut st = c.prepare(
                "SELECT id, source, good FROM face_sightings WHERE grp = ?1 ORDER BY id DESC",
            )?;
            let rows: Vec<(i64, String, bool)> = st
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let mut sources: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
            sources.sort();
            sources.dedup();
            unknown.push(Group {
                id,
                first_ms: first as u64,
                last_ms: last as u64,
                sightings: n as u64,
                good: rows.iter().filter(|r| r.2).count(),
                crops: rows.iter().map(|r| r.0).collect(),
                sources,
            });
        }
        let mut st = c.prepare(
            "SELECT g.id, g.person, p.name, g.score, g.ts_ms, g.source
             FROM face_sightings g JOIN face_people p ON p.id = g.person
             WHERE g.contested = 0 ORDER BY g.id DESC LIMIT ?1",
        )?;
        let recent_matches = st
            .query_map([limit as i64], |r| {
                Ok(Match {
                    sighting: r.get(0)?,
                    person: r.get(1)?,
                    name: r.get(2)?,
                    score: r.get::<_, f64>(3)? as f32,
                    ts_ms: r.get::<_, i64>(4)? as u64,
                    source: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Queue {
            unknown,
            recent_matches,
        })
    })?)
}

/// A sighting's crop (small JPEG).
pub fn crop(store: &Store, sighting: i64) -> Result<Option<Vec<u8>>, GalleryError> {
    Ok(store.read(|c| {
        c.query_row(
            "SELECT crop FROM face_sightings WHERE id = ?1",
            [sighting],
            |r| r.get(0),
        )
        .optional()
    })?)
}

/// The open group `id`, or why not.
fn open_group(tx: &Transaction<'_>, id: i64) -> Result<Result<(), GalleryError>, rusqlite::Error> {
    let row: Option<(String, Option<i64>, Option<i64>)> = tx
        .query_row(
            "SELECT status, resolved_ms, resolved_to FROM face_groups WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(match row {
        None => Err(GalleryError::NotFound(format!(
            "there is no unknown-face group {id} (it may have expired)"
        ))),
        Some((status, when, _)) if status != "open" => Err(GalleryError::AlreadyResolved(format!(
            "group {id} was already {status}{}",
            when.map(|w| format!(" at {}", crate::time::rfc3339_ms(w as u64)))
                .unwrap_or_default()
        ))),
        Some(_) => Ok(()),
    })
}

/// What an assignment did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assigned {
    pub group: i64,
    pub person: gallery::Person,
    /// Samples that joined the gallery (good, and not redundant).
    pub learnt: usize,
    /// Crops not learnt from: they failed the quality gates or added nothing new.
    pub skipped: usize,
}

/// Assigns an open group to a person: its good sightings join their samples (bounded and diverse), the group
/// is closed and its crops are deleted (what was learnt keeps its own).
pub fn assign(
    store: &Store,
    group: i64,
    who: &str,
    s: &GallerySettings,
    now_ms: u64,
) -> Result<Assigned, GalleryError> {
    let person = gallery::find_person(store, who)?;
    let (learnt, skipped) = store.write(|tx| {
        if let Err(e) = open_group(tx, group)? {
            return Ok(Err(e));
        }
        let mut st = tx.prepare(
            "SELECT id, good, embedding, crop FROM face_sightings WHERE grp = ?1 ORDER BY id",
        )?;
        let rows: Vec<(i64, bool, Vec<u8>, Vec<u8>)> = st
            .query_map([group], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        drop(st);
        let (mut learnt, mut skipped) = (0, 0);
        for (id, good, blob, crop) in rows {
            let kept = match (good, from_blob(&blob)) {
                (true, Some(e)) => add_sample(
                    tx,
                    person.id,
                    &NewSample {
                        embedding: &e,
                        crop_jpeg: &crop,
                        source: SampleSource::Assigned,
                        from_sighting: Some(id),
                    },
                    s,
                    now_ms,
                )?,
                _ => Added::Redundant,
            };
            if kept == Added::Redundant {
                skipped += 1;
            } else {
                learnt += 1;
            }
        }
        tx.execute("DELETE FROM face_sightings WHERE grp = ?1", [group])?;
        tx.execute(
            "UPDATE face_groups SET status = 'assigned', resolved_ms = ?1, resolved_to = ?2 WHERE id = ?3",
            params![now_ms as i64, person.id, group],
        )?;
        Ok(Ok((learnt, skipped)))
    })??;
    Ok(Assigned {
        group,
        person: gallery::find_person(store, &person.id.to_string())?,
        learnt,
        skipped,
    })
}

/// Discards an open group: its crops and embeddings are deleted; the group is closed.
pub fn discard(store: &Store, group: i64, now_ms: u64) -> Result<u64, GalleryError> {
    let n = store.write(|tx| {
        if let Err(e) = open_group(tx, group)? {
            return Ok(Err(e));
        }
        let n = tx.execute("DELETE FROM face_sightings WHERE grp = ?1", [group])?;
        tx.execute(
            "UPDATE face_groups SET status = 'discarded', resolved_ms = ?1 WHERE id = ?2",
            params![now_ms as i64, group],
        )?;
        Ok(Ok(n as u64))
    })??;
    // The crops' pages are zeroed (secure_delete); their old images leave the write-ahead log with this.
    store.checkpoint()?;
    Ok(n)
}

/// What "not this person" did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contested {
    pub sighting: i64,
    pub person: i64,
    pub name: String,
    /// Samples removed because they were learnt from this sighting.
    pub unlearnt: usize,
    /// The unknown group the face now waits in.
    pub group: i64,
}

/// The operator says a match was wrong: a negative for that person stops the same face matching them again,
/// any sample learnt from the sighting is removed, and the face joins the unknown queue to be assigned to the
/// right person.
pub fn not_this_person(
    store: &Store,
    sighting: i64,
    s: &GallerySettings,
    now_ms: u64,
) -> Result<Contested, GalleryError> {
    store.write(|tx| {
        let row: Option<SightingRow> = tx
            .query_row(
                "SELECT g.person, g.contested, g.embedding, p.name
                 FROM face_sightings g LEFT JOIN face_people p ON p.id = g.person WHERE g.id = ?1",
                [sighting],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let (person, name, blob) = match row {
            None => {
                return Ok(Err(GalleryError::NotFound(format!(
                    "there is no sighting {sighting} (it may have expired)"
                ))))
            }
            Some((_, true, _, _)) => {
                return Ok(Err(GalleryError::AlreadyResolved(format!(
                    "sighting {sighting} was already marked as not the person it matched"
                ))))
            }
            Some((None, ..)) => {
                return Ok(Err(GalleryError::Invalid(format!(
                    "sighting {sighting} matched nobody: assign or discard its group instead"
                ))))
            }
            Some((Some(p), false, blob, name)) => (p, name.unwrap_or_default(), blob),
        };
        let Some(e) = from_blob(&blob) else {
            return Ok(Err(GalleryError::Invalid(format!(
                "sighting {sighting} has no usable embedding"
            ))));
        };
        tx.execute(
            "INSERT INTO face_negatives (person, created_ms, embedding) VALUES (?1, ?2, ?3)",
            params![person, now_ms as i64, blob],
        )?;
        let unlearnt = tx.execute(
            "DELETE FROM face_samples WHERE person = ?1 AND from_sighting = ?2",
            params![person, sighting],
        )?;
        let group = join_group(tx, &e, s, now_ms)?;
        tx.execute(
            "UPDATE face_sightings SET contested = 1, person = NULL, grp = ?1 WHERE id = ?2",
            params![group, sighting],
        )?;
        trim_group(tx, group, s.group_samples)?;
        Ok(Ok(Contested {
            sighting,
            person,
            name,
            unlearnt,
            group,
        }))
    })?
}

/// Retention: sightings and groups last seen more than `keep_days` ago are deleted, closed groups too, and open
/// groups beyond `max_groups` (the least recently seen first). Returns how many rows went.
pub fn sweep(store: &Store, s: &GallerySettings, now_ms: u64) -> Result<usize, GalleryError> {
    let cutoff = now_ms.saturating_sub(s.keep_days as u64 * DAY_MS) as i64;
    Ok(store.write(|tx| {
        let mut n = tx.execute("DELETE FROM face_sightings WHERE ts_ms < ?1", [cutoff])?;
        n += tx.execute(
            "DELETE FROM face_groups WHERE last_ms < ?1 OR (status != 'open' AND resolved_ms < ?1)",
            [cutoff],
        )?;
        n += tx.execute(
            "DELETE FROM face_groups WHERE status = 'open' AND id NOT IN
               (SELECT id FROM face_groups WHERE status = 'open' ORDER BY last_ms DESC, id DESC LIMIT ?1)",
            [s.max_groups as i64],
        )?;
        Ok(n)
    })?)
}

/// How often retention runs.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs [`sweep`] at start and then every [`SWEEP_EVERY`] until `shutdown`.
pub async fn sweeper(
    store: std::sync::Arc<Store>,
    settings: GallerySettings,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let (s, set) = (store.clone(), settings.clone());
        match tokio::task::spawn_blocking(move || sweep(&s, &set, crate::time::now_ms())).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "face retention"),
            Ok(Err(e)) => tracing::warn!("face retention failed: {e}"),
            _ => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::gallery::tests::{enrol, unit};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        (dir, s)
    }

    fn see<'a>(e: &'a [f32], good: bool) -> Seen<'a> {
        Seen {
            source: "front_door",
            embedding: e,
            crop_jpeg: b"crop",
            good,
            hint: None,
        }
    }

    #[test]
    fn a_second_opinion_tips_a_near_miss_and_nothing_else() {
        let s = GallerySettings::default();
        let near = |score, ruled_out| Decision::Unknown {
            best: Some(crate::vision::gallery::Candidate {
                person: 7,
                name: "John".into(),
                score,
                ruled_out,
            }),
            reason: "below the threshold".into(),
        };
        let t = s.match_threshold;
        let named = |d: &Decision| matches!(d, Decision::Known { person: 7, .. });
        assert!(named(&second_opinion(
            near(t - 0.05, false),
            Some(" john "),
            &s
        )));
        // Too far below, another name, a face the operator ruled out, no opinion: still unknown.
        assert!(!named(&second_opinion(
            near(t - SECOND_OPINION_SLACK - 0.01, false),
            Some("John"),
            &s
        )));
        assert!(!named(&second_opinion(
            near(t - 0.05, false),
            Some("Sarah"),
            &s
        )));
        assert!(!named(&second_opinion(
            near(t - 0.05, true),
            Some("John"),
            &s
        )));
        assert!(!named(&second_opinion(near(t - 0.05, false), None, &s)));
        // A Known decision is never overruled by a disagreeing opinion.
        let known = Decision::Known {
            person: 3,
            name: "Sarah".into(),
            score: 0.7,
            runner_up: 0.1,
        };
        assert_eq!(second_opinion(known.clone(), Some("John"), &s), known);
    }

    #[test]
    fn a_strangers_sightings_are_grouped_and_assigned() {
        let (_d, s) = store();
        let set = GallerySettings::default();
        enrol(&s, "John", &[unit(0, 0.0)]);
        let index = Index::load(&s).unwrap();
        let a = record(&s, &index, &see(&unit(20, 0.0), true), &set, 10).unwrap();
        let b = record(&s, &index, &see(&unit(20, 0.2), true), &set, 20).unwrap();
        let other = record(&s, &index, &see(&unit(60, 0.0), false), &set, 30).unwrap();
        assert!(a.group.is_some());
        assert_eq!(a.group, b.group, "the same stranger twice is one group");
        assert_ne!(a.group, other.group);
        let q = queue(&s, 50).unwrap();
        assert_eq!(q.unknown.len(), 2);
        let g = q.unknown.iter().find(|g| Some(g.id) == a.group).unwrap();
        assert_eq!((g.sightings, g.good, g.crops.len()), (2, 2, 2));
        assert!(crop(&s, g.crops[0]).unwrap().is_some());

        let sarah = gallery::create_person(&s, "Sarah", 40).unwrap();
        let done = assign(&s, g.id, "sarah", &set, 50).unwrap();
        assert_eq!(done.person.id, sarah.id);
        assert_eq!(done.learnt + done.skipped, 2);
        assert!(done.person.samples >= 1);
        // Resolved: not again, and not discarded either.
        assert!(matches!(
            assign(&s, g.id, "sarah", &set, 60),
            Err(GalleryError::AlreadyResolved(_))
        ));
        assert!(matches!(
            discard(&s, g.id, 60),
            Err(GalleryError::AlreadyResolved(_))
        ));
        assert!(matches!(
            discard(&s, 999, 60),
            Err(GalleryError::NotFound(_))
        ));
        // Sarah is now recognised.
        let index = Index::load(&s).unwrap();
        assert!(matches!(
            index.decide(&unit(20, 0.1), &set),
            Decision::Known { person, .. } if person == sarah.id
        ));
        // A group of only bad faces teaches nothing.
        let other_group = other.group.unwrap();
        let none = assign(&s, other_group, "John", &set, 70).unwrap();
        assert_eq!((none.learnt, none.skipped), (0, 1));
    }

    #[test]
    fn not_this_person_stops_the_match_recurring_and_undoes_what_it_taught() {
        let (_d, s) = store();
        let set = GallerySettings::default();
        let john = enrol(&s, "John", &[unit(0, 0.0)]);
        let index = Index::load(&s).unwrap();
        // A confident good match: learnt from.
        let face = unit(0, 0.5);
        let seen = record(&s, &index, &see(&face, true), &set, 10).unwrap();
        assert!(matches!(seen.decision, Decision::Known { person, .. } if person == john.id));
        assert_eq!(seen.learnt, Some(Added::Added));
        let c = not_this_person(&s, seen.sighting, &set, 20).unwrap();
        assert_eq!((c.person, c.unlearnt), (john.id, 1));
        // The same face no longer matches John, and waits in the unknown queue.
        let index = Index::load(&s).unwrap();
        let again = record(&s, &index, &see(&face, true), &set, 30).unwrap();
        assert!(
            matches!(again.decision, Decision::Unknown { .. }),
            "{:?}",
            again.decision
        );
        assert_eq!(again.group, Some(c.group));
        // John himself still matches.
        assert!(matches!(
            index.decide(&unit(0, 0.05), &set),
            Decision::Known { .. }
        ));
        // Once only; unknown sightings and missing ones are refused.
        assert!(matches!(
            not_this_person(&s, seen.sighting, &set, 40),
            Err(GalleryError::AlreadyResolved(_))
        ));
        assert!(matches!(
            not_this_person(&s, again.sighting, &set, 40),
            Err(GalleryError::Invalid(_))
        ));
        assert!(matches!(
            not_this_person(&s, 12345, &set, 40),
            Err(GalleryError::NotFound(_))
        ));
        // Deleting John takes his negatives and matched sightings with him.
        let gone = gallery::delete_person(&s, "John").unwrap();
        assert_eq!(gone.negatives, 1);
    }

    #[test]
    fn groups_keep_few_crops_and_retention_applies() {
        let (_d, s) = store();
        let set = GallerySettings {
            group_samples: 3,
            max_groups: 2,
            keep_days: 1,
            ..GallerySettings::default()
        };
        let index = Index::default();
        for i in 0..6 {
            record(
                &s,
                &index,
                &see(&unit(5, i as f32 * 0.02), true),
                &set,
                100 + i,
            )
            .unwrap();
        }
        let q = queue(&s, 10).unwrap();
        assert_eq!(q.unknown.len(), 1);
        assert_eq!(q.unknown[0].sightings, 6);
        assert_eq!(
            q.unknown[0].crops.len(),
            4,
            "the first and the newest three"
        );
        record(&s, &index, &see(&unit(30, 0.0), true), &set, 200).unwrap();
        record(&s, &index, &see(&unit(60, 0.0), true), &set, 300).unwrap();
        assert_eq!(queue(&s, 10).unwrap().unknown.len(), 3);
        sweep(&s, &set, 400).unwrap();
        let q = queue(&s, 10).unwrap();
        assert_eq!(q.unknown.len(), 2, "only the two most recently seen stay");
        assert!(q.unknown.iter().all(|g| g.last_ms >= 200));
        sweep(&s, &set, 400 + 2 * DAY_MS).unwrap();
        assert!(queue(&s, 10).unwrap().unknown.is_empty());
        let left: i64 = s
            .read(|c| c.query_row("SELECT COUNT(*) FROM face_sightings", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(left, 0, "no crop outlives its retention");
    }
}

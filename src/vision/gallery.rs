//! The face gallery: the household's people and what Jarvis knows of their faces, in the store (migration 8).
//! Each person has a bounded set of samples (embeddings with a small crop), kept diverse — a sample nearly the
//! same as one already kept adds nothing — and negatives, the faces the operator said were *not* them. [`Index`]
//! is the gallery in memory, loaded once per change; [`Index::decide`] is the decision rule: a person's score is
//! the mean of the cosine to their robust template (the trimmed mean of their samples) and to their nearest
//! sample; the best person is named only when the score reaches the threshold *and* leads the second-best person
//! by the margin, and never when the face is at least as close to one of that person's negatives as to any of
//! their samples (so a "not this person" stops that match recurring). Thresholds: docs/FACES.md.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::faces::{cosine, EMBEDDING_LEN};
use crate::store::{Store, StoreError};

/// How faces are matched and how much is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct GallerySettings {
    /// A person is named at or above this score.
    pub match_threshold: f32,
    /// ... and only when ahead of the second-best person by this much.
    pub margin: f32,
    /// A sighting is learnt from (added as a sample) only at or above this score, and only if it passed the
    /// quality gates.
    pub learn_threshold: f32,
    /// Samples kept per person.
    pub max_samples: usize,
    /// A new sample at least this close to a kept one is redundant.
    pub redundant_at: f32,
    /// An unknown face joins a stranger's group at or above this cosine to the group's centroid.
    pub group_threshold: f32,
    /// Sightings (crops) kept per unknown group; the count goes on.
    pub group_samples: usize,
    /// Unknown groups and sightings older than this are deleted.
    pub keep_days: u32,
    /// At most this many open unknown groups (the oldest go first).
    pub max_groups: usize,
}

impl Default for GallerySettings {
    fn default() -> GallerySettings {
        GallerySettings {
            match_threshold: 0.40,
            margin: 0.06,
            learn_threshold: 0.55,
            max_samples: 12,
            redundant_at: 0.92,
            group_threshold: 0.40,
            group_samples: 8,
            keep_days: 30,
            max_groups: 200,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyResolved(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for GalleryError {
    fn from(e: rusqlite::Error) -> GalleryError {
        GalleryError::Store(StoreError::from(e))
    }
}

/// A person as shown to actors: never their embeddings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub created_ms: u64,
    pub samples: usize,
    pub negatives: usize,
    /// When a face last matched them (any source).
    pub last_seen_ms: Option<u64>,
}

/// Where a sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleSource {
    /// A photo the operator enrolled.
    Enrolled,
    /// A confident, good-quality sighting.
    Learnt,
    /// A stranger's group the operator assigned to this person.
    Assigned,
}

impl SampleSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SampleSource::Enrolled => "enrolled",
            SampleSource::Learnt => "learnt",
            SampleSource::Assigned => "assigned",
        }
    }
}

/// What adding a sample did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Added {
    Added,
    /// It replaced the most redundant sample (the person had the maximum).
    Replaced,
    /// Nearly the same as a kept sample: nothing new, not kept.
    Redundant,
}

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A person's name, trimmed: 1 to 64 characters, no control characters.
pub fn clean_name(name: &str) -> Result<String, GalleryError> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(GalleryError::Invalid(format!(
            "a name is 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(GalleryError::Invalid(
            "a name has no control characters".into(),
        ));
    }
    Ok(name)
}

pub fn to_blob(e: &[f32]) -> Vec<u8> {
    e.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `None` for a blob that is not one embedding.
pub fn from_blob(b: &[u8]) -> Option<Vec<f32>> {
    (b.len() == EMBEDDING_LEN * 4).then(|| {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

/// Scales to unit length (a zero vector stays zero).
pub fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// The refusal when another person (not `except`) already has this name, ignoring case.
fn name_taken(
    tx: &Transaction<'_>,
    name: &str,
    key: &str,
    except: Option<i64>,
) -> Result<Option<GalleryError>, rusqlite::Error> {
    let taken: Option<i64> = tx
        .query_row(
            "SELECT id FROM face_people WHERE name_key = ?1 AND id != ?2",
            params![key, except.unwrap_or(-1)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(taken.map(|id| {
        GalleryError::Invalid(format!("there is already a person called {name} (id {id})"))
    }))
}

/// Creates a person. Names are unique, ignoring case.
pub fn create_person(store: &Store, name: &str, now_ms: u64) -> Result<Person, GalleryError> {
    let name = clean_name(name)?;
    let key = name.to_lowercase();
    store.write(|tx| {
        if let Some(taken) = name_taken(tx, &name, &key, None)? {
            return Ok(Err(taken));
        }
        tx.execute(
            "INSERT INTO face_people (name, name_key, created_ms) VALUES (?1, ?2, ?3)",
            params![name, key, now_ms as i64],
        )?;
        Ok(Ok(tx.last_insert_rowid()))
    })??;
    find_person(store, &name)
}

/// Every person, by name.
pub fn people(store: &Store) -> Result<Vec<Person>, GalleryError> {
    Ok(store.read(|c| {
        let mut st = c.prepare(
            "SELECT p.id, p.name, p.created_ms,
                    (SELECT COUNT(*) FROM face_samples s WHERE s.person = p.id),
                    (SELECT COUNT(*) FROM face_negatives n WHERE n.person = p.id),
                    (SELECT MAX(ts_ms) FROM face_sightings g WHERE g.person = p.id AND g.contested = 0)
             FROM face_people p ORDER BY p.name_key",
        )?;
        let rows = st.query_map([], person_row)?;
        rows.collect()
    })?)
}

fn person_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Person> {
    Ok(Person {
        id: r.get(0)?,
        name: r.get(1)?,
        created_ms: r.get::<_, i64>(2)? as u64,
        samples: r.get::<_, i64>(3)? as usize,
        negatives: r.get::<_, i64>(4)? as usize,
        last_seen_ms: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
    })
}

/// A person by id (digits) or by name (ignoring case).
pub fn find_person(store: &Store, who: &str) -> Result<Person, GalleryError> {
    let who = who.trim();
    let all = people(store)?;
    let found = match who.parse::<i64>() {
        Ok(id) => all.into_iter().find(|p| p.id == id),
        Err(_) => {
            let key = who.split_whitespace().collect::<Vec<_>>().join(" ");
            all.into_iter()
                .find(|p| p.name.to_lowercase() == key.to_lowercase())
        }
    };
    found.ok_or_else(|| GalleryError::NotFound(format!("there is no person {who}")))
}

/// Renames a person.
pub fn rename(store: &Store, who: &str, new_name: &str) -> Result<Person, GalleryError> {
    let person = find_person(store, who)?;
    let name = clean_name(new_name)?;
    let key = name.to_lowercase();
    store.write(|tx| {
        if let Some(taken) = name_taken(tx, &name, &key, Some(person.id))? {
            return Ok(Err(taken));
        }
        tx.execute(
            "UPDATE face_people SET name = ?1, name_key = ?2 WHERE id = ?3",
            params![name, key, person.id],
        )?;
        Ok(Ok(()))
    })??;
    find_person(store, &person.id.to_string())
}

/// What deleting a person removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deleted {
    pub person: Person,
    pub samples: usize,
    pub negatives: usize,
    pub sightings: usize,
}

/// Deletes a person and everything kept about them: samples and their crops, negatives, the sightings that
/// matched them (crops included). Groups once assigned to them keep no link.
pub fn delete_person(store: &Store, who: &str) -> Result<Deleted, GalleryError> {
    let person = find_person(store, who)?;
    let id = person.id;
    let (samples, negatives, sightings) = store.write(|tx| {
        let samples = tx.execute("DELETE FROM face_samples WHERE person = ?1", [id])?;
        let negatives = tx.execute("DELETE FROM face_negatives WHERE person = ?1", [id])?;
        let sightings = tx.execute("DELETE FROM face_sightings WHERE person = ?1", [id])?;
        tx.execute(
            "UPDATE face_groups SET resolved_to = NULL WHERE resolved_to = ?1",
            [id],
        )?;
        tx.execute("DELETE FROM face_people WHERE id = ?1", [id])?;
        Ok((samples, negatives, sightings))
    })?;
    // The deleted rows' pages were zeroed (secure_delete); the write-ahead log still holds their old images until
    // it is checkpointed and emptied.
    store.checkpoint()?;
    Ok(Deleted {
        person,
        samples,
        negatives,
        sightings,
    })
}

/// One new sample: its embedding (unit length) and its small JPEG crop.
pub struct NewSample<'a> {
    pub embedding: &'a [f32],
    pub crop_jpeg: &'a [u8],
    pub source: SampleSource,
    pub from_sighting: Option<i64>,
}

/// Adds a sample to a person within a write transaction, keeping the set bounded and diverse: a sample nearly the
/// same as a kept one is not kept; at the maximum, the new one replaces the most redundant kept sample if it is
/// itself less redundant (an enrolled sample is replaced only by another enrolled one).
pub fn add_sample(
    tx: &Transaction<'_>,
    person: i64,
    sample: &NewSample<'_>,
    settings: &GallerySettings,
    now_ms: u64,
) -> Result<Added, rusqlite::Error> {
    let kept = samples_of(tx, person)?;
    let nearest = kept
        .iter()
        .map(|(_, _, e)| cosine(e, sample.embedding))
        .fold(f32::MIN, f32::max);
    if nearest >= settings.redundant_at {
        return Ok(Added::Redundant);
    }
    let mut added = Added::Added;
    if kept.len() >= settings.max_samples {
        // Each kept sample's redundancy: its highest cosine to another kept sample.
        let victim = kept
            .iter()
            .filter(|(_, source, _)| {
                sample.source == SampleSource::Enrolled || source != "enrolled"
            })
            .map(|(id, _, e)| {
                let r = kept
                    .iter()
                    .filter(|(other, _, _)| other != id)
                    .map(|(_, _, o)| cosine(e, o))
                    .fold(f32::MIN, f32::max);
                (*id, r)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match victim {
            Some((id, redundancy)) if redundancy > nearest => {
                tx.execute("DELETE FROM face_samples WHERE id = ?1", [id])?;
                added = Added::Replaced;
            }
            _ => return Ok(Added::Redundant),
        }
    }
    tx.execute(
        "INSERT INTO face_samples (person, source, from_sighting, created_ms, embedding, crop)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            person,
            sample.source.as_str(),
            sample.from_sighting,
            now_ms as i64,
            to_blob(sample.embedding),
            sample.crop_jpeg
        ],
    )?;
    Ok(added)
}

/// A person's samples: (id, source, embedding).
fn samples_of(
    c: &rusqlite::Connection,
    person: i64,
) -> Result<Vec<(i64, String, Vec<f32>)>, rusqlite::Error> {
    let mut st =
        c.prepare("SELECT id, source, embedding FROM face_samples WHERE person = ?1 ORDER BY id")?;
    let rows = st.query_map([person], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, source, blob) = row?;
        if let Some(e) = from_blob(&blob) {
            out.push((id, source, e));
        }
    }
    Ok(out)
}

/// The crop of a person's newest enrolled (else newest) sample, for a thumbnail.
pub fn thumbnail(store: &Store, person: i64) -> Result<Option<Vec<u8>>, GalleryError> {
    Ok(store.read(|c| {
        c.query_row(
            "SELECT crop FROM face_samples WHERE person = ?1
             ORDER BY (source = 'enrolled') DESC, id DESC LIMIT 1",
            [person],
            |r| r.get(0),
        )
        .optional()
    })?)
}

/// One person in memory.
#[derive(Debug, Clone)]
pub struct Indexed {
    pub id: i64,
    pub name: String,
    pub template: Vec<f32>,
    pub samples: Vec<Vec<f32>>,
    pub negatives: Vec<Vec<f32>>,
}

/// The gallery in memory, for deciding.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub people: Vec<Indexed>,
}

/// A person's score for one face.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub person: i64,
    pub name: String,
    pub score: f32,
    /// The face is at least as close to a face the operator said was not this person.
    pub ruled_out: bool,
}

/// Who a face is, or why nobody.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Known {
        person: i64,
        name: String,
        score: f32,
        /// The best other person's score (0 when there is none).
        runner_up: f32,
    },
    Unknown {
        /// The best candidate, when there was one.
        best: Option<Candidate>,
        reason: String,
    },
}

impl Index {
    pub fn load(store: &Store) -> Result<Index, GalleryError> {
        let people = people(store)?;
        let mut out = Vec::with_capacity(people.len());
        for p in people {
            let (samples, negatives) = store.read(|c| {
                let samples: Vec<Vec<f32>> = samples_of(c, p.id)?
                    .into_iter()
                    .map(|(_, _, e)| e)
                    .collect();
                let mut st = c.prepare("SELECT embedding FROM face_negatives WHERE person = ?1")?;
                let negatives = st
                    .query_map([p.id], |r| r.get::<_, Vec<u8>>(0))?
                    .filter_map(|b| b.ok().and_then(|b| from_blob(&b)))
                    .collect();
                Ok((samples, negatives))
            })?;
            if samples.is_empty() {
                continue;
            }
            out.push(Indexed {
                id: p.id,
                name: p.name,
                template: template(&samples),
                samples,
                negatives,
            });
        }
        Ok(Index { people: out })
    }

    /// Every person's score, best first.
    pub fn candidates(&self, face: &[f32]) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = self
            .people
            .iter()
            .map(|p| {
                let nearest = p
                    .samples
                    .iter()
                    .map(|s| cosine(s, face))
                    .fold(f32::MIN, f32::max);
                let negative = p
                    .negatives
                    .iter()
                    .map(|n| cosine(n, face))
                    .fold(f32::MIN, f32::max);
                Candidate {
                    person: p.id,
                    name: p.name.clone(),
                    score: 0.5 * (cosine(&p.template, face) + nearest),
                    ruled_out: negative >= nearest,
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }

    /// The decision rule (see the module's documentation).
    pub fn decide(&self, face: &[f32], s: &GallerySettings) -> Decision {
        let all = self.candidates(face);
        let Some(best) = all.first().cloned() else {
            return Decision::Unknown {
                best: None,
                reason: "nobody is enrolled".into(),
            };
        };
        let runner_up = all.get(1).map_or(0.0, |c| c.score.max(0.0));
        if best.score < s.match_threshold {
            return Decision::Unknown {
                reason: format!(
                    "the closest person, {}, scores {:.2}, below the {:.2} threshold",
                    best.name, best.score, s.match_threshold
                ),
                best: Some(best),
            };
        }
        if best.ruled_out {
            return Decision::Unknown {
                reason: format!(
                    "looks like {} ({:.2}) but closer still to a face you said was not {}",
                    best.name, best.score, best.name
                ),
                best: Some(best),
            };
        }
        if best.score - runner_up < s.margin {
            return Decision::Unknown {
                reason: format!(
                    "too close to call between {} ({:.2}) and {} ({:.2})",
                    best.name, best.score, all[1].name, all[1].score
                ),
                best: Some(best),
            };
        }
        Decision::Known {
            person: best.person,
            name: best.name,
            score: best.score,
            runner_up,
        }
    }
}

/// A robust template: the mean of the samples, recomputed without the fifth of them farthest from it (an odd
/// photo among several does not drag it), unit length.
pub fn template(samples: &[Vec<f32>]) -> Vec<f32> {
    let mean = |set: &[&Vec<f32>]| {
        let mut m = vec![0.0f32; EMBEDDING_LEN];
        for s in set {
            for (a, b) in m.iter_mut().zip(s.iter()) {
                *a += b;
            }
        }
        normalised(m)
    };
    let all: Vec<&Vec<f32>> = samples.iter().collect();
    let first = mean(&all);
    if samples.len() < 3 {
        return first;
    }
    let mut by_fit: Vec<(&Vec<f32>, f32)> = all.iter().map(|s| (*s, cosine(s, &first))).collect();
    by_fit.sort_by(|a, b| b.1.total_cmp(&a.1));
    let keep = samples.len() - samples.len() / 5;
    let kept: Vec<&Vec<f32>> = by_fit.into_iter().take(keep).map(|(s, _)| s).collect();
    mean(&kept)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A unit vector near axis `axis`, turned towards axis `axis + 1` by `angle` radians: cosines between such
    /// vectors are known exactly.
    pub fn unit(axis: usize, angle: f32) -> Vec<f32> {
        let mut v = vec![0.0; EMBEDDING_LEN];
        v[axis] = angle.cos();
        v[(axis + 1) % EMBEDDING_LEN] = angle.sin();
        v
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        (dir, s)
    }

    pub fn enrol(store: &Store, name: &str, embeddings: &[Vec<f32>]) -> Person {
        let p = create_person(store, name, 1).unwrap();
        for e in embeddings {
            store
                .write(|tx| {
                    add_sample(
                        tx,
                        p.id,
                        &NewSample {
                            embedding: e,
                            crop_jpeg: b"jpeg",
                            source: SampleSource::Enrolled,
                            from_sighting: None,
                        },
                        &GallerySettings::default(),
                        1,
                    )
                })
                .unwrap();
        }
        p
    }

    #[test]
    fn names_are_unique_ignoring_case_and_checked() {
        let (_d, s) = store();
        let p = create_person(&s, "  John   Smith ", 5).unwrap();
        assert_eq!(p.name, "John Smith");
        assert!(matches!(
            create_person(&s, "john smith", 6),
            Err(GalleryError::Invalid(_))
        ));
        assert!(matches!(
            create_person(&s, "", 6),
            Err(GalleryError::Invalid(_))
        ));
        assert!(matches!(
            create_person(&s, "a\u{7}b", 6),
            Err(GalleryError::Invalid(_))
        ));
        assert!(matches!(
            create_person(&s, &"x".repeat(65), 6),
            Err(GalleryError::Invalid(_))
        ));
        assert_eq!(find_person(&s, "JOHN smith").unwrap().id, p.id);
        assert_eq!(
            find_person(&s, &p.id.to_string()).unwrap().name,
            "John Smith"
        );
        assert!(matches!(
            find_person(&s, "999"),
            Err(GalleryError::NotFound(_))
        ));
        let sarah = create_person(&s, "Sarah", 7).unwrap();
        assert!(rename(&s, "Sarah", "john smith").is_err());
        assert_eq!(
            rename(&s, &sarah.id.to_string(), "Sara").unwrap().name,
            "Sara"
        );
    }

    #[test]
    fn samples_stay_bounded_and_diverse() {
        let (_d, s) = store();
        let settings = GallerySettings {
            max_samples: 3,
            ..GallerySettings::default()
        };
        let p = create_person(&s, "John", 1).unwrap();
        let add = |e: &Vec<f32>, source| {
            s.write(|tx| {
                add_sample(
                    tx,
                    p.id,
                    &NewSample {
                        embedding: e,
                        crop_jpeg: b"j",
                        source,
                        from_sighting: None,
                    },
                    &settings,
                    2,
                )
            })
            .unwrap()
        };
        assert_eq!(add(&unit(0, 0.0), SampleSource::Enrolled), Added::Added);
        // cos 0.995: the same face again.
        assert_eq!(add(&unit(0, 0.1), SampleSource::Learnt), Added::Redundant);
        assert_eq!(add(&unit(0, 0.5), SampleSource::Learnt), Added::Added);
        assert_eq!(add(&unit(0, 1.0), SampleSource::Learnt), Added::Added);
        // Full: a learnt sample may replace only a learnt one, and only a more redundant one.
        assert_eq!(add(&unit(0, 1.6), SampleSource::Learnt), Added::Replaced);
        assert_eq!(people(&s).unwrap()[0].samples, 3);
        let kept = s.read(|c| samples_of(c, p.id)).unwrap();
        assert!(
            kept.iter().any(|(_, src, _)| src == "enrolled"),
            "the enrolled sample stays"
        );
    }

    #[test]
    fn the_decision_needs_the_threshold_the_margin_and_no_closer_negative() {
        let (_d, s) = store();
        let settings = GallerySettings::default();
        let john = enrol(&s, "John", &[unit(0, 0.0), unit(0, 0.3)]);
        let _sarah = enrol(&s, "Sarah", &[unit(10, 0.0)]);
        let index = Index::load(&s).unwrap();
        // Near John's samples: named.
        match index.decide(&unit(0, 0.15), &settings) {
            Decision::Known { person, score, .. } => {
                assert_eq!(person, john.id);
                assert!(score > 0.9);
            }
            d => panic!("{d:?}"),
        }
        // Far from everyone: unknown, with the reason.
        match index.decide(&unit(40, 0.0), &settings) {
            Decision::Unknown { reason, .. } => assert!(reason.contains("below"), "{reason}"),
            d => panic!("{d:?}"),
        }
        // Halfway between two people: both above the threshold, within the margin.
        let mut between = vec![0.0; EMBEDDING_LEN];
        between[0] = 0.7;
        between[10] = 0.7;
        let between = normalised(between);
        let two = Index {
            people: vec![
                Indexed {
                    id: 1,
                    name: "A".into(),
                    template: unit(0, 0.0),
                    samples: vec![unit(0, 0.0)],
                    negatives: vec![],
                },
                Indexed {
                    id: 2,
                    name: "B".into(),
                    template: unit(10, 0.0),
                    samples: vec![unit(10, 0.0)],
                    negatives: vec![],
                },
            ],
        };
        match two.decide(&between, &settings) {
            Decision::Unknown { reason, .. } => assert!(reason.contains("too close"), "{reason}"),
            d => panic!("{d:?}"),
        }
        // A negative as close as the nearest sample rules the person out.
        let mut ruled = two.clone();
        ruled.people.remove(1);
        ruled.people[0].samples = vec![unit(0, 0.0)];
        ruled.people[0].negatives = vec![unit(0, 0.6)];
        assert!(matches!(
            ruled.decide(&unit(0, 0.6), &settings),
            Decision::Unknown { .. }
        ));
        assert!(matches!(
            ruled.decide(&unit(0, 0.05), &settings),
            Decision::Known { .. }
        ));
        assert!(matches!(
            Index::default().decide(&unit(0, 0.0), &settings),
            Decision::Unknown { best: None, .. }
        ));
    }

    #[test]
    fn the_template_ignores_an_odd_sample() {
        let mut samples: Vec<Vec<f32>> = (0..4).map(|i| unit(0, i as f32 * 0.05)).collect();
        samples.push(unit(50, 0.0));
        let t = template(&samples);
        assert!(cosine(&t, &unit(0, 0.075)) > 0.99);
        assert!(cosine(&t, &unit(50, 0.0)) < 0.1);
    }

    #[test]
    fn deleting_a_person_removes_every_sample_and_negative() {
        let (_d, s) = store();
        let john = enrol(&s, "John", &[unit(0, 0.0), unit(0, 0.5)]);
        s.write(|tx| {
            tx.execute(
                "INSERT INTO face_negatives (person, created_ms, embedding) VALUES (?1, 1, ?2)",
                params![john.id, to_blob(&unit(3, 0.0))],
            )
        })
        .unwrap();
        let gone = delete_person(&s, "john").unwrap();
        assert_eq!((gone.samples, gone.negatives), (2, 1));
        let left: i64 = s
            .read(|c| {
                c.query_row(
                    "SELECT (SELECT COUNT(*) FROM face_samples) + (SELECT COUNT(*) FROM face_negatives)",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(left, 0);
        assert!(matches!(
            delete_person(&s, "john"),
            Err(GalleryError::NotFound(_))
        ));
    }

    #[test]
    fn a_deleted_face_is_gone_from_the_database_file_too() {
        let (dir, s) = store();
        let p = create_person(&s, "Zed", 1).unwrap();
        let marker = b"FACE-CROP-MARKER-0123456789-FACE-CROP-MARKER".repeat(4);
        s.write(|tx| {
            add_sample(
                tx,
                p.id,
                &NewSample {
                    embedding: &unit(3, 0.0),
                    crop_jpeg: &marker,
                    source: SampleSource::Enrolled,
                    from_sighting: None,
                },
                &GallerySettings::default(),
                1,
            )
        })
        .unwrap();
        s.checkpoint().unwrap();
        let on_disk = |path: &std::path::Path| {
            let mut all = std::fs::read(path).unwrap_or_default();
            all.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
            all.windows(marker.len()).any(|w| w == marker.as_slice())
        };
        let db = dir.path().join("j.db");
        assert!(on_disk(&db), "the crop was written");
        delete_person(&s, "Zed").unwrap();
        s.checkpoint().unwrap();
        assert!(!on_disk(&db), "secure_delete overwrote the deleted crop");
    }

    #[test]
    fn blobs_round_trip_and_wrong_sizes_are_refused() {
        let e = unit(7, 0.2);
        assert_eq!(from_blob(&to_blob(&e)).unwrap(), e);
        assert!(from_blob(&[0u8; 12]).is_none());
    }
}

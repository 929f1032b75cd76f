//! The presence timeline in the store (migration 9): one row per arrival, departure, sighting worth keeping or
//! unknown person, with its camera, time, confidence and where its picture is (a face sighting's crop, a Frigate
//! event's snapshot). Appending, searching by person, kind, camera and time range (indexed, newest or oldest
//! first), the latest rows per person (to rebuild who is home after a restart) and retention.

use rusqlite::{params, Row};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Arrived,
    Left,
    Seen,
    Unknown,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Arrived, Kind::Left, Kind::Seen, Kind::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Arrived => "arrived",
            Kind::Left => "left",
            Kind::Seen => "seen",
            Kind::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A row to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub at_ms: u64,
    pub kind: Kind,
    pub person: Option<i64>,
    pub camera: String,
    pub confidence: f32,
    /// A departure concluded from a timeout, not seen.
    pub inferred: bool,
    pub sighting: Option<i64>,
    pub frigate_event: Option<String>,
}

/// A row as read back, with the person's name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: i64,
    pub at_ms: u64,
    pub kind: Kind,
    pub person: Option<i64>,
    pub name: Option<String>,
    pub camera: String,
    pub confidence: f32,
    pub inferred: bool,
    /// The face crop of the sighting behind it, if kept (`/api/v1/faces/sightings/{id}/crop.jpg`).
    pub sighting: Option<i64>,
    /// The Frigate event behind it (`/api/v1/cameras/{camera}/events/{id}/snapshot.jpg`).
    pub frigate_event: Option<String>,
}

/// What to look for. Empty `kinds` means every kind.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub person: Option<i64>,
    pub kinds: Vec<Kind>,
    pub camera: Option<String>,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    pub limit: usize,
    pub oldest_first: bool,
}

/// The most rows a search returns.
pub const MAX_LIMIT: usize = 500;

pub fn append(store: &Store, e: &NewEntry) -> Result<i64, StoreError> {
    store.write(|tx| {
        tx.execute(
            "INSERT INTO presence_events (ts_ms, kind, person, camera, confidence, inferred, sighting, frigate_event)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                e.at_ms as i64,
                e.kind.as_str(),
                e.person,
                e.camera,
                f64::from(e.confidence),
                e.inferred,
                e.sighting,
                e.frigate_event
            ],
        )?;
        Ok(tx.last_insert_rowid())
    })
}

/// Appends many rows in one transaction (the benchmark's year, a replay).
pub fn append_all(store: &Store, rows: &[NewEntry]) -> Result<(), StoreError> {
    store.write(|tx| {
        let mut st = tx.prepare(
            "INSERT INTO presence_events (ts_ms, kind, person, camera, confidence, inferred, sighting, frigate_event)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for e in rows {
            st.execute(params![
                e.at_ms as i64,
                e.kind.as_str(),
                e.person,
                e.camera,
                f64::from(e.confidence),
                e.inferred,
                e.sighting,
                e.frigate_event
            ])?;
        }
        Ok(())
    })
}

const SELECT: &str = "SELECT e.id, e.ts_ms, e.kind, e.person, p.name, e.camera, e.confidence, e.inferred, e.sighting,
    e.frigate_event FROM presence_events e LEFT JOIN face_people p ON p.id = e.person";

fn entry(r: &Row<'_>) -> Result<Entry, rusqlite::Error> {
    let kind: String = r.get(2)?;
    Ok(Entry {
        id: r.get(0)?,
        at_ms: r.get::<_, i64>(1)?.max(0) as u64,
        kind: Kind::parse(&kind).unwrap_or(Kind::Seen),
        person: r.get(3)?,
        name: r.get(4)?,
        camera: r.get(5)?,
        confidence: r.get::<_, f64>(6)? as f32,
        inferred: r.get(7)?,
        sighting: r.get(8)?,
        frigate_event: r.get(9)?,
    })
}

pub fn search(store: &Store, q: &Query) -> Result<Vec<Entry>, StoreError> {
    let mut sql = format!("{SELECT} WHERE 1=1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(p) = q.person {
        args.push(p.into());
        sql.push_str(&format!(" AND e.person = ?{}", args.len()));
    }
    if !q.kinds.is_empty() && q.kinds.len() < Kind::ALL.len() {
        let mut marks = Vec::new();
        for k in &q.kinds {
            args.push(k.as_str().to_string().into());
            marks.push(format!("?{}", args.len()));
        }
        sql.push_str(&format!(" AND e.kind IN ({})", marks.join(", ")));
    }
    if let Some(c) = &q.camera {
        args.push(c.clone().into());
        sql.push_str(&format!(" AND e.camera = ?{}", args.len()));
    }
    if let Some(from) = q.from_ms {
        args.push((from as i64).into());
        sql.push_str(&format!(" AND e.ts_ms >= ?{}", args.len()));
    }
    if let Some(to) = q.to_ms {
        args.push((to as i64).into());
        sql.push_str(&format!(" AND e.ts_ms < ?{}", args.len()));
    }
    let order = if q.oldest_first { "ASC" } else { "DESC" };
    let limit = q.limit.clamp(1, MAX_LIMIT);
    sql.push_str(&format!(
        " ORDER BY e.ts_ms {order}, e.id {order} LIMIT {limit}"
    ));
    store.read(|c| {
        let mut st = c.prepare_cached(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), entry)?;
        rows.collect()
    })
}

/// Per person: their latest arrival or departure and their latest row of any kind (to rebuild presence).
pub fn latest_per_person(store: &Store) -> Result<Vec<(Option<Entry>, Entry)>, StoreError> {
    store.read(|c| {
        let mut people = c.prepare("SELECT DISTINCT person FROM presence_events WHERE person IS NOT NULL")?;
        let ids: Vec<i64> = people.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        let mut movement = c.prepare_cached(&format!(
            "{SELECT} WHERE e.person = ?1 AND e.kind IN ('arrived', 'left') ORDER BY e.ts_ms DESC, e.id DESC LIMIT 1"
        ))?;
        let mut last = c.prepare_cached(&format!(
            "{SELECT} WHERE e.person = ?1 AND e.inferred = 0 ORDER BY e.ts_ms DESC, e.id DESC LIMIT 1"
        ))?;
        let mut out = Vec::new();
        for id in ids {
            let m = movement.query_row([id], entry).ok();
            if let Ok(l) = last.query_row([id], entry) {
                out.push((m, l));
            } else if let Some(m) = m {
                out.push((Some(m.clone()), m));
            }
        }
        Ok(out)
    })
}

/// Deletes rows older than `keep_days`; returns how many.
pub fn sweep(store: &Store, keep_days: u32, now_ms: u64) -> Result<usize, StoreError> {
    let cutoff = now_ms.saturating_sub(u64::from(keep_days) * 86_400_000) as i64;
    store.write(|tx| tx.execute("DELETE FROM presence_events WHERE ts_ms < ?1", [cutoff]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("j.db")).unwrap();
        (dir, s)
    }

    fn person(s: &Store, name: &str) -> i64 {
        s.write(|tx| {
            tx.execute(
                "INSERT INTO face_people (name, name_key, created_ms) VALUES (?1, ?2, 0)",
                params![name, name.to_lowercase()],
            )?;
            Ok(tx.last_insert_rowid())
        })
        .unwrap()
    }

    fn row(at_ms: u64, kind: Kind, person: Option<i64>, camera: &str) -> NewEntry {
        NewEntry {
            at_ms,
            kind,
            person,
            camera: camera.into(),
            confidence: 0.8,
            inferred: false,
            sighting: None,
            frigate_event: Some(format!("{at_ms}.0-abc")),
        }
    }

    #[test]
    fn search_filters_by_person_kind_camera_and_range() {
        let (_d, s) = store();
        let john = person(&s, "John");
        let sarah = person(&s, "Sarah");
        append_all(
            &s,
            &[
                row(1_000, Kind::Arrived, Some(john), "front_door"),
                row(2_000, Kind::Seen, Some(sarah), "side_house"),
                row(3_000, Kind::Left, Some(john), "front_door"),
                row(4_000, Kind::Unknown, None, "side_house"),
                row(5_000, Kind::Arrived, Some(john), "side_house"),
            ],
        )
        .unwrap();
        let q = |q: Query| search(&s, &Query { limit: 50, ..q }).unwrap();
        let johns = q(Query {
            person: Some(john),
            ..Default::default()
        });
        assert_eq!(
            johns.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
            [5_000, 3_000, 1_000]
        );
        assert_eq!(johns[0].name.as_deref(), Some("John"));
        let left = q(Query {
            person: Some(john),
            kinds: vec![Kind::Left],
            ..Default::default()
        });
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].frigate_event.as_deref(), Some("3000.0-abc"));
        let side = q(Query {
            camera: Some("side_house".into()),
            from_ms: Some(2_000),
            to_ms: Some(5_000),
            oldest_first: true,
            ..Default::default()
        });
        assert_eq!(
            side.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [Kind::Seen, Kind::Unknown]
        );
        assert_eq!(side[1].name, None);
        // A lying limit is clamped, never trusted.
        assert_eq!(
            search(
                &s,
                &Query {
                    limit: usize::MAX,
                    ..Default::default()
                }
            )
            .unwrap()
            .len(),
            5
        );
        assert_eq!(
            search(
                &s,
                &Query {
                    limit: 0,
                    ..Default::default()
                }
            )
            .unwrap()
            .len(),
            1
        );
        // A camera name is a value, never SQL.
        assert!(q(Query {
            camera: Some("x' OR 1=1 --".into()),
            ..Default::default()
        })
        .is_empty());
    }

    #[test]
    fn latest_per_person_and_deletion_and_retention() {
        let (_d, s) = store();
        let john = person(&s, "John");
        append_all(
            &s,
            &[
                row(1_000, Kind::Arrived, Some(john), "front_door"),
                row(9_000, Kind::Seen, Some(john), "side_house"),
                row(10_000, Kind::Unknown, None, "front_door"),
            ],
        )
        .unwrap();
        let latest = latest_per_person(&s).unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].0.as_ref().map(|e| e.kind), Some(Kind::Arrived));
        assert_eq!(latest[0].1.camera, "side_house");
        // Deleting the person deletes their rows; the unknown one stays.
        s.write(|tx| tx.execute("DELETE FROM face_people WHERE id = ?1", [john]))
            .unwrap();
        assert_eq!(
            search(
                &s,
                &Query {
                    limit: 10,
                    ..Default::default()
                }
            )
            .unwrap()
            .len(),
            1
        );
        // Retention: rows older than the cut go.
        let day = 86_400_000;
        append(&s, &row(40 * day, Kind::Unknown, None, "front_door")).unwrap();
        assert_eq!(sweep(&s, 30, 50 * day).unwrap(), 1);
        assert_eq!(
            search(
                &s,
                &Query {
                    limit: 10,
                    ..Default::default()
                }
            )
            .unwrap()
            .len(),
            1
        );
    }
}

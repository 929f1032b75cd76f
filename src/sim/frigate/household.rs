//! The demo household and what the simulated cameras see of it: four people (photos from the registry's test
//! faces, two of each enrolled by the demo, the third only ever seen by the cameras) and strangers (a delivery,
//! someone passing). Yesterday and today until now are written as finished events at start, as a real Frigate
//! would have them recorded; then, live and compressed, someone comes or goes every half minute or so, each
//! visit a Frigate event that goes `new` → `update` per zone entered → `end`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A member of the demo household: name, photos enrolled, photos the cameras see.
pub struct Member {
    pub name: &'static str,
    pub enrol: [&'static str; 2],
    pub seen: &'static str,
}

/// The household (the photo groups are those checked by eye in tests/data/faces.toml).
pub const HOUSEHOLD: [Member; 4] = [
    Member {
        name: "John",
        enrol: ["Male_41_1_1_1.jpg", "Male_41_2_1_1.jpg"],
        seen: "Male_41_3_1.jpg",
    },
    Member {
        name: "Sarah",
        enrol: ["Female_42_1_1_1.jpg", "Female_42_2_1_1.jpg"],
        seen: "Female_42_3_1.jpg",
    },
    Member {
        name: "Emma",
        enrol: ["Female_46_1_1_1.jpg", "Female_46_2_1_1.jpg"],
        seen: "Female_46_3_1.jpg",
    },
    Member {
        name: "Tom",
        enrol: ["Male_45_1_1_1.jpg", "Male_45_2_1_1.jpg"],
        seen: "Male_45_3_1.jpg",
    },
];

/// Strangers: never enrolled.
pub const STRANGERS: [&str; 3] = [
    "Female_43_1_1_1.jpg",
    "Male_43_1_2_1.jpg",
    "Male_40_1_1_1.jpg",
];

/// The demo's cameras (as in DESIGN.md: Frigate on agent1 records both).
pub const FRONT_DOOR: &str = "front_door";
pub const SIDE_HOUSE: &str = "side_house";

/// One visit a camera sees: who (a photo, or nobody's face), the zones entered in order, Frigate's own guess.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub camera: String,
    /// The photo standing in the frames; `None` for a person whose face is never seen (back turned).
    pub photo: Option<String>,
    pub zones: Vec<String>,
    /// Frigate's own face recognition's name for them, if it gave one.
    pub sub_label: Option<(String, f64)>,
}

impl Visit {
    pub fn arrival(m: &Member) -> Visit {
        Visit {
            camera: FRONT_DOOR.into(),
            photo: Some(m.seen.into()),
            zones: vec!["street".into(), "porch".into()],
            sub_label: None,
        }
    }

    pub fn departure(m: &Member) -> Visit {
        Visit {
            camera: FRONT_DOOR.into(),
            photo: Some(m.seen.into()),
            zones: vec!["porch".into(), "street".into()],
            sub_label: None,
        }
    }

    pub fn delivery(photo: &str) -> Visit {
        Visit {
            camera: FRONT_DOOR.into(),
            photo: Some(photo.into()),
            zones: vec!["street".into(), "porch".into(), "street".into()],
            sub_label: None,
        }
    }

    pub fn garden(m: &Member) -> Visit {
        Visit {
            camera: SIDE_HOUSE.into(),
            photo: Some(m.seen.into()),
            zones: vec!["path".into()],
            sub_label: None,
        }
    }
}

/// A visit at a time (seconds since the epoch).
pub type Planned = (f64, Visit);

/// Yesterday's and today's visits up to `now` (seconds), in the zone given by `offset_secs` (local = UTC +
/// offset): a working day's shape, the same every day for a seed.
pub fn history(now: f64, offset_secs: i64, seed: u64) -> Vec<Planned> {
    let day = 86_400.0;
    let local_now = now + offset_secs as f64;
    let today_start = (local_now / day).floor() * day - offset_secs as f64;
    let mut out = Vec::new();
    for start in [today_start - day, today_start] {
        let mut rng = StdRng::seed_from_u64(seed ^ (start as u64));
        let jitter = |rng: &mut StdRng| rng.random_range(-900.0..900.0);
        let at = |h: f64, rng: &mut StdRng| start + h * 3600.0 + jitter(rng);
        let [john, sarah, emma, tom] = &HOUSEHOLD;
        out.push((at(7.75, &mut rng), Visit::departure(john)));
        out.push((at(8.33, &mut rng), Visit::departure(sarah)));
        out.push((at(11.0, &mut rng), Visit::delivery(STRANGERS[0])));
        out.push((at(12.5, &mut rng), Visit::departure(emma)));
        out.push((at(14.1, &mut rng), Visit::arrival(emma)));
        out.push((at(15.5, &mut rng), Visit::delivery(STRANGERS[1])));
        out.push((at(16.2, &mut rng), Visit::garden(emma)));
        out.push((at(17.6, &mut rng), Visit::arrival(sarah)));
        out.push((at(18.2, &mut rng), Visit::arrival(john)));
        out.push((at(19.5, &mut rng), Visit::departure(tom)));
        out.push((at(23.1, &mut rng), Visit::arrival(tom)));
    }
    out.retain(|(t, _)| *t < now - 60.0);
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Who is home after `history` (everyone starts the day before at home).
pub fn home_after(history: &[Planned]) -> Vec<bool> {
    let mut home = vec![true; HOUSEHOLD.len()];
    for (_, v) in history {
        if v.camera != FRONT_DOOR || v.zones.len() != 2 {
            continue;
        }
        if let Some(i) = HOUSEHOLD
            .iter()
            .position(|m| v.photo.as_deref() == Some(m.seen))
        {
            home[i] = v.zones.last().is_some_and(|z| z == "porch");
        }
    }
    home
}

/// The next live visit: mostly someone coming or going (keeping `home` true to it), sometimes a stranger or a
/// walk in the garden.
pub fn next_live(rng: &mut StdRng, home: &mut [bool]) -> Visit {
    let roll: f64 = rng.random();
    if roll < 0.15 {
        return Visit::delivery(STRANGERS[rng.random_range(0..STRANGERS.len())]);
    }
    let i = rng.random_range(0..HOUSEHOLD.len());
    let m = &HOUSEHOLD[i];
    if roll < 0.3 && home[i] {
        return Visit::garden(m);
    }
    home[i] = !home[i];
    if home[i] {
        Visit::arrival(m)
    } else {
        Visit::departure(m)
    }
}

/// How long between live visits (compressed: a busy household's day in a few minutes).
pub fn live_gap(rng: &mut StdRng, every: Duration) -> Duration {
    let base = every.as_secs_f64();
    Duration::from_secs_f64(rng.random_range(base * 0.6..base * 1.4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_yesterday_and_today_until_now_in_order() {
        // 2026-12-01 15:30 UTC.
        let now = 1_796_139_000.0;
        let h = history(now, 0, 7);
        assert!(h.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(h.iter().all(|(t, _)| *t < now && *t > now - 2.0 * 86_400.0));
        // Yesterday's full day (11 visits) and today's up to 15:30 (the first six or so).
        assert!(h.len() >= 15 && h.len() <= 18, "{}", h.len());
        let home = home_after(&h);
        // At 15:30 John and Sarah are at work, Emma is back from lunch, Tom is home.
        assert_eq!(home, [false, false, true, true]);
        // The same seed gives the same day.
        assert_eq!(history(now, 0, 7), h);
    }

    #[test]
    fn live_visits_keep_who_is_home_true() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut home = vec![true; 4];
        for _ in 0..200 {
            let before = home.clone();
            let v = next_live(&mut rng, &mut home);
            if let Some(i) = HOUSEHOLD
                .iter()
                .position(|m| v.photo.as_deref() == Some(m.seen))
            {
                match v.zones.last().map(String::as_str) {
                    Some("porch") => assert!(!before[i] && home[i]),
                    Some("street") => assert!(before[i] && !home[i]),
                    _ => assert_eq!(before, home),
                }
            }
        }
    }
}

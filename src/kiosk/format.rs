//! How numbers, sizes, durations and times read on the wall: short, rounded so a value does not flicker on every
//! poll, and in the local time zone. Pure functions, so every controller formats the same way.

use jiff::tz::TimeZone;
use jiff::Timestamp;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const TIB: f64 = GIB * 1024.0;

/// `1.6 GiB`, `512 MiB`, `3.4 TiB`.
pub fn bytes(n: u64) -> String {
    let f = n as f64;
    if f >= TIB {
        format!("{:.1} TiB", f / TIB)
    } else if f >= GIB {
        format!("{:.1} GiB", f / GIB)
    } else {
        format!("{} MiB", (f / (1024.0 * 1024.0)).round() as u64)
    }
}

/// `39 / 64 GiB`: used of total in the unit of the total.
pub fn used_of(used: u64, total: u64) -> String {
    let t = total as f64;
    if t >= TIB {
        format!("{:.1} / {:.1} TiB", used as f64 / TIB, t / TIB)
    } else if t >= GIB {
        format!("{:.1} / {:.0} GiB", used as f64 / GIB, t / GIB)
    } else {
        format!("{} / {} MiB", used / (1024 * 1024), total / (1024 * 1024))
    }
}

/// A fraction as a whole percentage.
pub fn pct(fraction: f64) -> String {
    format!("{}%", (fraction * 100.0).round().clamp(0.0, 100.0) as u32)
}

/// Uptime to the coarsest two units: `12d 4h`, `3h 12m`, `45m`. Minutes at most, so it changes once a minute.
pub fn uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("up {d}d {h}h")
    } else if h > 0 {
        format!("up {h}h {m}m")
    } else {
        format!("up {m}m")
    }
}

/// How long ago, coarsely: `now`, `5m ago`, `3h ago`, `2d ago`.
pub fn ago(then_ms: u64, now_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..=59 => "now".into(),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Wall-clock `HH:MM` in `tz`.
pub fn clock(ms: u64, tz: &TimeZone) -> String {
    zoned(ms, tz)
        .map(|z| z.strftime("%H:%M").to_string())
        .unwrap_or_else(|| "--:--".into())
}

/// `Tuesday 24 November` in `tz`.
pub fn date(ms: u64, tz: &TimeZone) -> String {
    zoned(ms, tz)
        .map(|z| z.strftime("%A %-d %B").to_string())
        .unwrap_or_default()
}

fn zoned(ms: u64, tz: &TimeZone) -> Option<jiff::Zoned> {
    let ts = Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
    Some(ts.to_zoned(tz.clone()))
}

/// The system's time zone, UTC when it cannot be read.
pub fn local_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_right_unit() {
        assert_eq!(bytes(512 * 1024 * 1024), "512 MiB");
        assert_eq!(bytes(1_717_986_918), "1.6 GiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 * 1024), "3.0 TiB");
        assert_eq!(
            used_of(39 * 1024 * 1024 * 1024, 64 * 1024 * 1024 * 1024),
            "39.0 / 64 GiB"
        );
    }

    #[test]
    fn durations_are_coarse() {
        assert_eq!(uptime(12 * 86_400 + 4 * 3600 + 59), "up 12d 4h");
        assert_eq!(uptime(3 * 3600 + 12 * 60 + 30), "up 3h 12m");
        assert_eq!(uptime(45 * 60), "up 45m");
        assert_eq!(ago(1_000, 30_000), "now");
        assert_eq!(ago(0, 5 * 60_000), "5m ago");
        assert_eq!(ago(0, 3 * 3_600_000), "3h ago");
        assert_eq!(pct(0.324), "32%");
        assert_eq!(pct(1.7), "100%");
    }

    #[test]
    fn clock_in_a_zone() {
        // 2026-11-24 11:30:10 UTC
        let ms = 1_795_519_810_000;
        assert_eq!(clock(ms, &TimeZone::UTC), "11:30");
        assert_eq!(date(ms, &TimeZone::UTC), "Tuesday 24 November");
        let berlin = TimeZone::get("Europe/Berlin").expect("tzdb");
        assert_eq!(clock(ms, &berlin), "12:30");
    }
}

//! Time ranges said in words ("yesterday", "this morning", "last Tuesday evening", "since 6 pm", "between 2 and
//! 4", "last night", "in the last 3 hours", "30 November") turned into a half-open range of instants in the box's
//! time zone. Days are calendar days of that zone, so a day with a DST change is 23 or 25 hours long and a range
//! may cross midnight ("between 10 pm and 2 am"). Every word must be understood: a phrase with a word this module
//! cannot place is refused with the word named, never guessed around.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{ToSpan, Zoned};
use thiserror::Error;

/// A range of instants, `from_ms` included, `to_ms` excluded, and how to say it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ms: i64,
    pub to_ms: i64,
    /// The range in words, for answers: "yesterday 14:00–16:00", "since Tue 24 Nov 18:00".
    pub said: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WhenError {
    #[error("I can't place \"{word}\" in \"{phrase}\" as a time; try \"yesterday\", \"this morning\", \"since 6 pm\", \"between 2 and 4\" or \"last Tuesday\"")]
    NotUnderstood { phrase: String, word: String },
    #[error("\"{phrase}\" says {what} twice")]
    Twice { phrase: String, what: &'static str },
    #[error("\"{phrase}\" is not a date there was")]
    NoSuchDate { phrase: String },
    #[error("\"{phrase}\" is still to come")]
    Future { phrase: String },
}

/// Whether `phrase` has anything to read (an empty phrase means "no range" to callers).
pub fn is_blank(phrase: &str) -> bool {
    tokens(phrase).is_empty()
}

/// Reads `phrase` as a range relative to `now` (whose zone is the box's).
pub fn parse(phrase: &str, now: &Zoned) -> Result<TimeRange, WhenError> {
    let words = tokens(phrase);
    let mut p = Parser {
        phrase: phrase.trim().to_string(),
        w: words,
        i: 0,
        day: None,
        part: None,
        clause: None,
        span: None,
        now: now.clone(),
    };
    p.read()?;
    p.resolve()
}

/// Lower case, "p.m." → "pm", punctuation other than ':' and '-' dropped.
fn tokens(phrase: &str) -> Vec<String> {
    let lower = phrase
        .to_lowercase()
        .replace("p.m.", "pm")
        .replace("a.m.", "am")
        .replace("o'clock", "oclock")
        .replace('’', "'");
    lower
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '?' | '!' | ';' | '.' | '"'))
        .filter(|s| !s.is_empty())
        .flat_map(split_dash)
        .collect()
}

/// "2-4" and "10pm–2am" are three words; "2026-11-30" stays one.
fn split_dash(w: &str) -> Vec<String> {
    match w.split_once(['-', '–']) {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && iso_date(w).is_none() && a.len() != 4 => {
            vec![a.to_string(), "-".to_string(), b.to_string()]
        }
        _ => vec![w.to_string()],
    }
}

const FILLER: &[&str] = &["the", "in", "on", "during", "of", "oclock", "a", "an"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Morning,
    Afternoon,
    Evening,
    Night,
}

impl Part {
    /// Start hour and length in hours.
    fn hours(self) -> (i8, i64) {
        match self {
            Part::Morning => (6, 6),
            Part::Afternoon => (12, 6),
            Part::Evening => (18, 6),
            Part::Night => (18, 12),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Part::Morning => "morning",
            Part::Afternoon => "afternoon",
            Part::Evening => "evening",
            Part::Night => "night",
        }
    }
}

/// A clock time as said: "6", "6pm", "18:30", "noon".
#[derive(Debug, Clone, Copy, PartialEq)]
struct Said {
    hour: i8,
    minute: i8,
    /// `Some(true)` pm, `Some(false)` am or a 24-hour time, `None` a bare hour that could be either.
    pm: Option<bool>,
}

impl Said {
    fn fixed(hour: i8, minute: i8) -> Said {
        Said {
            hour,
            minute,
            pm: Some(hour >= 12),
        }
    }
    /// The 24-hour hour, taking `pm` as said or as chosen.
    fn hour24(self, pm: bool) -> i8 {
        match (self.hour, pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) if h < 12 => h + 12,
            (h, _) => h,
        }
    }
    fn minutes(self, pm: bool) -> i64 {
        i64::from(self.hour24(pm)) * 60 + i64::from(self.minute)
    }
}

#[derive(Debug, Clone, Copy)]
enum Clause {
    /// From the time to now.
    Since(Said),
    /// From the time to the end of the day (or now).
    After(Said),
    Before(Said),
    Between(Said, Said),
    Around(Said),
}

struct Parser {
    phrase: String,
    w: Vec<String>,
    i: usize,
    /// The day said, and whether it was said at all (an implicit "today" may move back a day).
    day: Option<Date>,
    part: Option<Part>,
    clause: Option<Clause>,
    /// A range that is complete in itself ("last week", "in the last 3 hours").
    span: Option<(Zoned, Zoned, String)>,
    now: Zoned,
}

impl Parser {
    fn peek(&self, k: usize) -> Option<&str> {
        self.w.get(self.i + k).map(String::as_str)
    }

    fn not_understood(&self, word: &str) -> WhenError {
        WhenError::NotUnderstood {
            phrase: self.phrase.clone(),
            word: word.to_string(),
        }
    }

    fn twice(&self, what: &'static str) -> WhenError {
        WhenError::Twice {
            phrase: self.phrase.clone(),
            what,
        }
    }

    fn set_day(&mut self, d: Date) -> Result<(), WhenError> {
        if self.day.is_some() || self.span.is_some() {
            return Err(self.twice("the day"));
        }
        self.day = Some(d);
        Ok(())
    }

    fn set_part(&mut self, p: Part) -> Result<(), WhenError> {
        if self.part.is_some() {
            return Err(self.twice("the part of the day"));
        }
        self.part = Some(p);
        Ok(())
    }

    fn set_clause(&mut self, c: Clause) -> Result<(), WhenError> {
        if self.clause.is_some() {
            return Err(self.twice("the time"));
        }
        self.clause = Some(c);
        Ok(())
    }

    fn today(&self) -> Date {
        self.now.date()
    }

    fn days_back(&self, n: i64) -> Result<Date, WhenError> {
        self.today()
            .checked_sub(n.days())
            .map_err(|_| WhenError::NoSuchDate {
                phrase: self.phrase.clone(),
            })
    }

    fn read(&mut self) -> Result<(), WhenError> {
        while let Some(word) = self.peek(0).map(str::to_string) {
            self.read_element(&word)?;
        }
        Ok(())
    }

    /// Reads one element (a day, a part of the day, a time clause) starting with `w` at the cursor.
    fn read_element(&mut self, w: &str) -> Result<(), WhenError> {
        if FILLER.contains(&w) {
            self.i += 1;
            return Ok(());
        }
        match w {
            "today" => {
                self.i += 1;
                let d = self.today();
                self.set_day(d)
            }
            "yesterday" => {
                self.i += 1;
                let d = self.days_back(1)?;
                self.set_day(d)
            }
            "day" if self.peek(1) == Some("before") && self.peek(2) == Some("yesterday") => {
                self.i += 3;
                let d = self.days_back(2)?;
                self.set_day(d)
            }
            "tonight" => {
                self.i += 1;
                let d = self.today();
                self.set_day(d)?;
                self.set_part(Part::Evening)
            }
            "overnight" => {
                self.i += 1;
                self.set_part(Part::Night)
            }
            "this" | "last" | "past" | "previous" => self.read_relative(w),
            "recently" | "lately" => {
                self.i += 1;
                self.set_span_minutes(24 * 60, "in the last 24 hours".into())
            }
            "since" | "after" | "from" | "before" | "until" | "till" | "til" | "between"
            | "around" | "about" | "at" => self.read_clause(w),
            _ => {
                if let Some(p) = part_of(w) {
                    self.i += 1;
                    self.set_part(p)
                } else if let Some(wd) = weekday_of(w) {
                    self.i += 1;
                    let d = self.weekday_back(wd, false)?;
                    self.set_day(d)
                } else if let Some(d) = self.read_date()? {
                    self.set_day(d)
                } else if let Some(t) = self.read_time() {
                    // "2 to 4", "2-4", "10pm–2am": a range without "between"; a lone time is "around".
                    match self.read_range_end() {
                        Some(end) => self.set_clause(Clause::Between(t, end)),
                        None => self.set_clause(Clause::Around(t)),
                    }
                } else {
                    Err(self.not_understood(w))
                }
            }
        }
    }

    /// "this morning", "last Tuesday", "last night", "last week", "past 3 hours", "last hour".
    fn read_relative(&mut self, first: &str) -> Result<(), WhenError> {
        let Some(next) = self.peek(1).map(str::to_string) else {
            return Err(self.not_understood(first));
        };
        let n = next.as_str();
        let this = first == "this";
        if this {
            if let Some(p) = part_of(n) {
                self.i += 2;
                let d = self.today();
                self.set_day(d)?;
                return self.set_part(p);
            }
        }
        if first == "last" && n == "night" {
            self.i += 2;
            let d = self.days_back(1)?;
            self.set_day(d)?;
            return self.set_part(Part::Night);
        }
        if let Some(wd) = weekday_of(n) {
            self.i += 2;
            let d = self.weekday_back(wd, !this)?;
            return self.set_day(d);
        }
        if matches!(n, "week" | "month") {
            self.i += 2;
            return self.set_calendar_span(n == "week", this);
        }
        // "last hour", "past 3 hours", "last 2 days", "last 90 minutes".
        let (count, mut unit_at) = match number(n) {
            Some(k) => (k, 2),
            None => (1, 1),
        };
        if unit_at == 2 && self.peek(2) == Some("of") {
            unit_at = 3;
        }
        let unit = self.peek(unit_at).map(str::to_string);
        let minutes = match unit.as_deref() {
            Some("minute" | "minutes" | "min" | "mins") => count,
            Some("hour" | "hours" | "hr" | "hrs") => count * 60,
            Some("day" | "days") => count * 24 * 60,
            Some("week" | "weeks") if unit_at > 1 => count * 7 * 24 * 60,
            _ => return Err(self.not_understood(first)),
        };
        self.i += unit_at + 1;
        if minutes <= 0 || minutes > 400 * 24 * 60 {
            return Err(WhenError::NoSuchDate {
                phrase: self.phrase.clone(),
            });
        }
        let said = format!(
            "in the last {}",
            plural_unit(count, unit.as_deref().unwrap_or(""))
        );
        self.set_span_minutes(minutes, said)
    }

    fn set_span_minutes(&mut self, minutes: i64, said: String) -> Result<(), WhenError> {
        if self.span.is_some() || self.day.is_some() {
            return Err(self.twice("the day"));
        }
        let from = self
            .now
            .checked_sub(minutes.minutes())
            .map_err(|_| WhenError::NoSuchDate {
                phrase: self.phrase.clone(),
            })?;
        self.span = Some((from, self.now.clone(), said));
        Ok(())
    }

    /// "this week" (Monday to now), "last week" (the Monday before to this Monday), the same for months.
    fn set_calendar_span(&mut self, week: bool, this: bool) -> Result<(), WhenError> {
        if self.span.is_some() || self.day.is_some() {
            return Err(self.twice("the day"));
        }
        let today = self.today();
        let bad = || WhenError::NoSuchDate {
            phrase: self.phrase.clone(),
        };
        let start_this = if week {
            today
                .checked_sub(i64::from(today.weekday().to_monday_zero_offset()).days())
                .map_err(|_| bad())?
        } else {
            today.first_of_month()
        };
        let (from, to, said) = if this {
            (
                start_this,
                None,
                if week { "this week" } else { "this month" },
            )
        } else {
            let start_last = if week {
                start_this.checked_sub(7.days()).map_err(|_| bad())?
            } else {
                start_this.checked_sub(1.month()).map_err(|_| bad())?
            };
            (
                start_last,
                Some(start_this),
                if week { "last week" } else { "last month" },
            )
        };
        let tz = self.now.time_zone().clone();
        let from = from.to_zoned(tz.clone()).map_err(|_| bad())?;
        let to = match to {
            Some(d) => d.to_zoned(tz).map_err(|_| bad())?,
            None => self.now.clone(),
        };
        self.span = Some((from, to, said.to_string()));
        Ok(())
    }

    /// The most recent `wd` on or before today; strictly before today when `strict` ("last Tuesday").
    fn weekday_back(&self, wd: Weekday, strict: bool) -> Result<Date, WhenError> {
        let today = self.today();
        let mut back = i64::from(today.weekday().since(wd));
        if back == 0 && strict {
            back = 7;
        }
        self.days_back(back)
    }

    /// "2026-11-30", "30 november", "november 30th", "30th of nov".
    fn read_date(&mut self) -> Result<Option<Date>, WhenError> {
        let Some(w) = self.peek(0) else {
            return Ok(None);
        };
        if let Some(d) = iso_date(w) {
            self.i += 1;
            return Ok(Some(d));
        }
        let bad = || WhenError::NoSuchDate {
            phrase: self.phrase.clone(),
        };
        // month day
        if let Some(m) = month_of(w) {
            if let Some(d) = self.peek(1).and_then(day_number) {
                self.i += 2;
                return self.recent_date(m, d).map(Some).ok_or_else(bad);
            }
            return Err(self.not_understood(w));
        }
        // day (of) month
        if let Some(d) = day_number(w) {
            let k = if self.peek(1) == Some("of") { 2 } else { 1 };
            if let Some(m) = self.peek(k).and_then(month_of) {
                self.i += k + 1;
                return self.recent_date(m, d).map(Some).ok_or_else(bad);
            }
        }
        Ok(None)
    }

    /// The most recent `month`/`day` on or before today.
    fn recent_date(&self, month: i8, day: i8) -> Option<Date> {
        let today = self.today();
        [today.year(), today.year() - 1]
            .into_iter()
            .filter_map(|y| Date::new(y, month, day).ok())
            .find(|d| *d <= today)
    }

    /// A clock time at the cursor: "6", "6pm", "6 pm", "6:30", "18:00", "noon", "midnight".
    fn read_time(&mut self) -> Option<Said> {
        let w = self.peek(0)?.to_string();
        let t = match w.as_str() {
            "noon" | "midday" => Said::fixed(12, 0),
            "midnight" => Said::fixed(0, 0),
            _ => {
                let (num, suffix) = split_suffix(&w);
                let (hour, minute, colon) = match num.split_once(':') {
                    Some((h, m)) if m.len() == 2 => {
                        (h.parse::<i8>().ok()?, m.parse::<i8>().ok()?, true)
                    }
                    Some(_) => return None,
                    None => (num.parse::<i8>().ok()?, 0, false),
                };
                let mut suffix = suffix;
                if suffix.is_none() {
                    if let Some(s) = self.peek(1).and_then(meridiem) {
                        suffix = Some(s);
                        self.i += 1;
                    }
                }
                if !(0..=59).contains(&minute) {
                    return None;
                }
                match suffix {
                    Some(pm) if (1..=12).contains(&hour) => Said {
                        hour,
                        minute,
                        pm: Some(pm),
                    },
                    Some(_) => return None,
                    None if (13..=23).contains(&hour)
                        || hour == 0
                        || (colon && num.starts_with('0')) =>
                    {
                        Said::fixed(hour, minute)
                    }
                    None if (1..=12).contains(&hour) => Said {
                        hour,
                        minute,
                        pm: None,
                    },
                    None => return None,
                }
            }
        };
        self.i += 1;
        if self.peek(0) == Some("oclock") {
            self.i += 1;
        }
        Some(t)
    }

    /// After a time: "to 4", "and 4", "until 4", "- 4", or "-4" glued on ("2-4" is split here).
    fn read_range_end(&mut self) -> Option<Said> {
        let joiner = self.peek(0)?;
        if matches!(joiner, "to" | "and" | "until" | "till" | "til" | "-" | "–") {
            let save = self.i;
            self.i += 1;
            if let Some(t) = self.read_time() {
                return Some(t);
            }
            self.i = save;
        }
        None
    }

    fn read_clause(&mut self, word: &str) -> Result<(), WhenError> {
        self.i += 1;
        // "since yesterday", "since last Tuesday", "since this morning": from the start of that day or part.
        if matches!(word, "since" | "from") && self.time_at_cursor().is_none() {
            let Some(next) = self.peek(0).map(str::to_string) else {
                return Err(self.not_understood(word));
            };
            let starts_a_day = matches!(
                next.as_str(),
                "yesterday" | "today" | "this" | "last" | "day"
            ) || weekday_of(&next).is_some()
                || month_of(&next).is_some()
                || iso_date(&next).is_some()
                || day_number(&next).is_some();
            if !starts_a_day {
                return Err(self.not_understood(&next));
            }
            self.read_element(&next)?;
            if self.span.is_some() {
                return Err(self.twice("the start"));
            }
            return self.set_clause(Clause::Since(SINCE_START));
        }
        let Some(t) = self.read_time() else {
            return Err(self.not_understood(self.peek(0).unwrap_or(word)));
        };
        let c = match word {
            "since" => Clause::Since(t),
            "after" => Clause::After(t),
            "from" => match self.read_range_end() {
                Some(end) => Clause::Between(t, end),
                None => Clause::Since(t),
            },
            "before" | "until" | "till" | "til" => Clause::Before(t),
            "between" => match self.read_range_end() {
                Some(end) => Clause::Between(t, end),
                None => return Err(self.not_understood("between")),
            },
            _ => Clause::Around(t),
        };
        self.set_clause(c)
    }

    fn time_at_cursor(&mut self) -> Option<Said> {
        let save = self.i;
        let t = self.read_time();
        self.i = save;
        t
    }

    fn resolve(&self) -> Result<TimeRange, WhenError> {
        let tz = self.now.time_zone().clone();
        let bad = || WhenError::NoSuchDate {
            phrase: self.phrase.clone(),
        };
        if let Some((from, to, said)) = &self.span {
            if self.part.is_some() || self.clause.is_some() {
                return Err(self.twice("the time"));
            }
            return Ok(TimeRange {
                from_ms: from.timestamp().as_millisecond(),
                to_ms: to.timestamp().as_millisecond(),
                said: said.clone(),
            });
        }
        let said_day = self.day.is_some();
        let mut day = self.day.unwrap_or_else(|| self.today());
        if self.part.is_none() && self.clause.is_none() && !said_day {
            return Err(WhenError::NotUnderstood {
                phrase: self.phrase.clone(),
                word: self.phrase.clone(),
            });
        }
        for attempt in 0..2 {
            let (from, to) = self.range_on(day, &tz).ok_or_else(bad)?;
            if from > self.now {
                // An implicit day whose range is still to come means the last one ("since 6 pm" at 10 am).
                if !said_day && attempt == 0 {
                    day = day.yesterday().map_err(|_| bad())?;
                    continue;
                }
                return Err(WhenError::Future {
                    phrase: self.phrase.clone(),
                });
            }
            let to = if matches!(self.clause, Some(Clause::Since(_))) || to > self.now {
                to.min(self.now.clone())
            } else {
                to
            };
            return Ok(TimeRange {
                from_ms: from.timestamp().as_millisecond(),
                to_ms: to.timestamp().as_millisecond(),
                said: self.describe(day, &from, &to),
            });
        }
        Err(bad())
    }

    /// The range on `day` in `tz`.
    fn range_on(&self, day: Date, tz: &TimeZone) -> Option<(Zoned, Zoned)> {
        let start = day.to_zoned(tz.clone()).ok()?;
        let next = day.tomorrow().ok()?.to_zoned(tz.clone()).ok()?;
        let at = |minutes: i64| -> Option<Zoned> {
            let d = day.checked_add(minutes.div_euclid(24 * 60).days()).ok()?;
            let m = minutes.rem_euclid(24 * 60);
            d.at((m / 60) as i8, (m % 60) as i8, 0, 0)
                .to_zoned(tz.clone())
                .ok()
        };
        let hint = self.part.map(|p| p != Part::Morning);
        let part_range = self.part.map(|p| {
            let (h, len) = p.hours();
            (i64::from(h) * 60, i64::from(h) * 60 + len * 60)
        });
        match self.clause {
            None => match part_range {
                Some((a, b)) => Some((at(a)?, at(b)?)),
                None => Some((start, next)),
            },
            Some(Clause::Since(t)) if t == SINCE_START => match part_range {
                Some((a, _)) => Some((at(a)?, self.now.clone())),
                None => Some((start, self.now.clone())),
            },
            Some(Clause::Since(t)) => Some((at(t.minutes(choose_pm(t, hint)))?, self.now.clone())),
            Some(Clause::After(t)) => Some((at(t.minutes(choose_pm(t, hint)))?, next)),
            Some(Clause::Before(t)) => {
                let b = t.minutes(choose_pm(t, hint));
                let from = match part_range {
                    Some((a, _)) if a < b => at(a)?,
                    _ => start,
                };
                Some((from, at(b)?))
            }
            Some(Clause::Around(t)) => {
                let m = t.minutes(choose_pm(t, hint));
                Some((at(m - 30)?, at(m + 30)?))
            }
            Some(Clause::Between(a, b)) => {
                let (a, b) = between(a, b, hint);
                Some((at(a)?, at(b)?))
            }
        }
    }

    fn describe(&self, day: Date, from: &Zoned, to: &Zoned) -> String {
        let today = self.today();
        let label = |d: Date| -> String {
            if d == today {
                "today".into()
            } else if today.yesterday().ok() == Some(d) {
                "yesterday".into()
            } else {
                d.strftime("%a %-d %b").to_string()
            }
        };
        let hm = |z: &Zoned| z.strftime("%H:%M").to_string();
        let whole_day = self.part.is_none() && self.clause.is_none();
        if whole_day {
            return label(day);
        }
        if let (Some(p), None) = (self.part, self.clause) {
            return match (p, label(day).as_str()) {
                (Part::Night, "yesterday") => "last night".into(),
                (_, "today") => format!("this {}", p.name()),
                (_, l) => format!("{l} {}", p.name()),
            };
        }
        if *to == self.now && matches!(self.clause, Some(Clause::Since(_))) {
            return format!("since {} {}", label(from.date()), hm(from));
        }
        if from.date() == to.date() || (to.hour() == 0 && to.minute() == 0) {
            format!("{} {}–{}", label(from.date()), hm(from), hm(to))
        } else {
            format!(
                "{} {} – {} {}",
                label(from.date()),
                hm(from),
                label(to.date()),
                hm(to)
            )
        }
    }
}

/// The marker for "since <a day or part>": from its start.
const SINCE_START: Said = Said {
    hour: -1,
    minute: -1,
    pm: None,
};

/// am or pm for a bare hour: the part of the day said, else 1–7 afternoon and 8–11 morning.
fn choose_pm(t: Said, hint: Option<bool>) -> bool {
    match (t.pm, hint) {
        (Some(pm), _) => pm,
        (None, Some(h)) => h,
        (None, None) => t.hour == 12 || t.hour <= 7,
    }
}

/// Minutes after the day's midnight for both ends; the end is after the start, on the next day if need be
/// ("between 10 pm and 2 am"). A bare end takes whichever reading comes soonest after the start; a bare start
/// with a said end likewise comes soonest before it.
fn between(a: Said, b: Said, hint: Option<bool>) -> (i64, i64) {
    let soonest_after = |start: i64, t: Said| -> i64 {
        let options: Vec<i64> = match t.pm {
            Some(pm) => vec![t.minutes(pm)],
            None => vec![t.minutes(false), t.minutes(true)],
        };
        options
            .into_iter()
            .map(|m| if m <= start { m + 24 * 60 } else { m })
            .min()
            .unwrap_or(start)
    };
    let start = match (a.pm, b.pm) {
        (None, Some(pm)) if hint.is_none() => {
            let end = b.minutes(pm);
            [a.minutes(false), a.minutes(true)]
                .into_iter()
                .min_by_key(|s| (end - s).rem_euclid(24 * 60))
                .unwrap_or(end)
        }
        _ => a.minutes(choose_pm(a, hint)),
    };
    let end = soonest_after(start, b);
    (start, end)
}

fn part_of(w: &str) -> Option<Part> {
    Some(match w {
        "morning" => Part::Morning,
        "afternoon" => Part::Afternoon,
        "evening" => Part::Evening,
        "night" => Part::Night,
        _ => return None,
    })
}

fn weekday_of(w: &str) -> Option<Weekday> {
    let w = w
        .strip_suffix('s')
        .filter(|s| s.ends_with("day"))
        .unwrap_or(w);
    Some(match w {
        "monday" | "mon" => Weekday::Monday,
        "tuesday" | "tue" | "tues" => Weekday::Tuesday,
        "wednesday" | "wed" => Weekday::Wednesday,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thursday,
        "friday" | "fri" => Weekday::Friday,
        "saturday" | "sat" => Weekday::Saturday,
        "sunday" | "sun" => Weekday::Sunday,
        _ => return None,
    })
}

fn month_of(w: &str) -> Option<i8> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    MONTHS
        .iter()
        .position(|m| *m == w || (w.len() >= 3 && m.starts_with(w)))
        .map(|i| i as i8 + 1)
}

/// "30", "30th", "1st", "2nd", "3rd".
fn day_number(w: &str) -> Option<i8> {
    let digits = w
        .strip_suffix("st")
        .or_else(|| w.strip_suffix("nd"))
        .or_else(|| w.strip_suffix("rd"))
        .or_else(|| w.strip_suffix("th"))
        .unwrap_or(w);
    digits.parse::<i8>().ok().filter(|d| (1..=31).contains(d))
}

fn iso_date(w: &str) -> Option<Date> {
    let mut parts = w.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 {
        return None;
    }
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

fn number(w: &str) -> Option<i64> {
    const WORDS: [&str; 13] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    w.parse::<i64>()
        .ok()
        .or_else(|| WORDS.iter().position(|x| *x == w).map(|i| i as i64))
        .or_else(|| (w == "few" || w == "couple").then_some(if w == "few" { 3 } else { 2 }))
}

fn meridiem(w: &str) -> Option<bool> {
    match w {
        "pm" => Some(true),
        "am" => Some(false),
        _ => None,
    }
}

/// "6pm" → ("6", Some(true)); "18:00" → ("18:00", None).
fn split_suffix(w: &str) -> (&str, Option<bool>) {
    for (s, pm) in [("pm", true), ("am", false)] {
        if let Some(n) = w.strip_suffix(s) {
            if !n.is_empty() {
                return (n, Some(pm));
            }
        }
    }
    (w, None)
}

fn plural_unit(count: i64, unit: &str) -> String {
    let base = unit.trim_end_matches('s');
    let base = match base {
        "min" => "minute",
        "hr" => "hour",
        b => b,
    };
    if count == 1 {
        base.to_string()
    } else {
        format!("{count} {base}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// London: GMT in winter, BST in summer (no tz database needed).
    fn london() -> TimeZone {
        TimeZone::posix("GMT0BST,M3.5.0/1,M10.5.0").unwrap()
    }

    fn at(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Zoned {
        Date::new(y, mo, d)
            .unwrap()
            .at(h, mi, 0, 0)
            .to_zoned(london())
            .unwrap()
    }

    fn local(ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .unwrap()
            .to_zoned(london())
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    }

    /// (from, to) in local time, for a phrase said at `now`.
    fn range(phrase: &str, now: &Zoned) -> (String, String) {
        let r = parse(phrase, now).unwrap_or_else(|e| panic!("{phrase}: {e}"));
        (local(r.from_ms), local(r.to_ms))
    }

    // Tuesday 1 December 2026, 15:30.
    fn tuesday() -> Zoned {
        at(2026, 12, 1, 15, 30)
    }

    #[test]
    fn days_and_parts_of_days() {
        let now = tuesday();
        let cases = [
            ("today", ("2026-12-01 00:00", "2026-12-01 15:30")),
            ("yesterday", ("2026-11-30 00:00", "2026-12-01 00:00")),
            (
                "the day before yesterday",
                ("2026-11-29 00:00", "2026-11-30 00:00"),
            ),
            ("this morning", ("2026-12-01 06:00", "2026-12-01 12:00")),
            (
                "yesterday evening",
                ("2026-11-30 18:00", "2026-12-01 00:00"),
            ),
            ("last night", ("2026-11-30 18:00", "2026-12-01 06:00")),
            ("last Tuesday", ("2026-11-24 00:00", "2026-11-25 00:00")),
            ("on Monday", ("2026-11-30 00:00", "2026-12-01 00:00")),
            (
                "last Sunday afternoon",
                ("2026-11-29 12:00", "2026-11-29 18:00"),
            ),
            ("30 November", ("2026-11-30 00:00", "2026-12-01 00:00")),
            ("november 3rd", ("2026-11-03 00:00", "2026-11-04 00:00")),
            ("2026-06-01", ("2026-06-01 00:00", "2026-06-02 00:00")),
            ("december 25", ("2025-12-25 00:00", "2025-12-26 00:00")),
            ("this week", ("2026-11-30 00:00", "2026-12-01 15:30")),
            ("last week", ("2026-11-23 00:00", "2026-11-30 00:00")),
            (
                "in the last 3 hours",
                ("2026-12-01 12:30", "2026-12-01 15:30"),
            ),
            ("past hour", ("2026-12-01 14:30", "2026-12-01 15:30")),
            ("last two days", ("2026-11-29 15:30", "2026-12-01 15:30")),
        ];
        for (phrase, (from, to)) in cases {
            assert_eq!(range(phrase, &now), (from.into(), to.into()), "{phrase}");
        }
    }

    #[test]
    fn clock_times_and_ranges() {
        let now = tuesday();
        let cases = [
            ("since 6 pm", ("2026-11-30 18:00", "2026-12-01 15:30")),
            ("since 9am", ("2026-12-01 09:00", "2026-12-01 15:30")),
            ("since noon", ("2026-12-01 12:00", "2026-12-01 15:30")),
            ("between 2 and 4", ("2026-12-01 14:00", "2026-12-01 15:30")),
            (
                "in the past couple of hours",
                ("2026-12-01 13:30", "2026-12-01 15:30"),
            ),
            ("between 2 and 3", ("2026-12-01 14:00", "2026-12-01 15:00")),
            (
                "yesterday between 2 and 4",
                ("2026-11-30 14:00", "2026-11-30 16:00"),
            ),
            ("between 10 and 2", ("2026-12-01 10:00", "2026-12-01 14:00")),
            (
                "between 10 and 2pm",
                ("2026-12-01 10:00", "2026-12-01 14:00"),
            ),
            (
                "yesterday between 10 pm and 2 am",
                ("2026-11-30 22:00", "2026-12-01 02:00"),
            ),
            ("from 8:30 to 11", ("2026-12-01 08:30", "2026-12-01 11:00")),
            ("yesterday 2-4", ("2026-11-30 14:00", "2026-11-30 16:00")),
            (
                "yesterday before 9",
                ("2026-11-30 00:00", "2026-11-30 09:00"),
            ),
            (
                "yesterday after 18:00",
                ("2026-11-30 18:00", "2026-12-01 00:00"),
            ),
            (
                "this morning before 10",
                ("2026-12-01 06:00", "2026-12-01 10:00"),
            ),
            (
                "yesterday evening after 8",
                ("2026-11-30 20:00", "2026-12-01 00:00"),
            ),
            ("around 3 pm", ("2026-12-01 14:30", "2026-12-01 15:30")),
            ("since yesterday", ("2026-11-30 00:00", "2026-12-01 15:30")),
            (
                "since this morning",
                ("2026-12-01 06:00", "2026-12-01 15:30"),
            ),
            (
                "since last Tuesday",
                ("2026-11-24 00:00", "2026-12-01 15:30"),
            ),
        ];
        for (phrase, (from, to)) in cases {
            assert_eq!(range(phrase, &now), (from.into(), to.into()), "{phrase}");
        }
    }

    #[test]
    fn days_with_a_dst_change_are_23_or_25_hours_long() {
        // BST began on Sunday 29 March 2026 (01:00 → 02:00) and ended on Sunday 25 October (02:00 → 01:00).
        let spring = parse("last Sunday", &at(2026, 3, 31, 12, 0)).unwrap();
        assert_eq!(spring.to_ms - spring.from_ms, 23 * 3_600_000);
        let autumn = parse("last Sunday", &at(2026, 10, 27, 12, 0)).unwrap();
        assert_eq!(autumn.to_ms - autumn.from_ms, 25 * 3_600_000);
        // Midnight to 3 am across the autumn change is four hours of real time; across spring, two.
        let r = parse("between midnight and 3am", &at(2026, 10, 25, 12, 0)).unwrap();
        assert_eq!(r.to_ms - r.from_ms, 4 * 3_600_000);
        let r = parse("between midnight and 3am", &at(2026, 3, 29, 12, 0)).unwrap();
        assert_eq!(r.to_ms - r.from_ms, 2 * 3_600_000);
        // A time inside the spring gap is read as just after it.
        let (from, _) = range("since 1:30am", &at(2026, 3, 29, 12, 0));
        assert_eq!(from, "2026-03-29 02:30");
        // "last night" over the autumn change: 18:00 Saturday to 06:00 Sunday is 13 hours.
        let r = parse("last night", &at(2026, 10, 25, 12, 0)).unwrap();
        assert_eq!(r.to_ms - r.from_ms, 13 * 3_600_000);
    }

    #[test]
    fn nonsense_is_refused_with_the_word_named() {
        let now = tuesday();
        for (phrase, word) in [
            ("purple o'clock", "purple"),
            ("yesterday banana", "banana"),
            ("since whenever", "whenever"),
            ("between 2", "between"),
            ("last fortnight", "last"),
            ("at 25", "25"),
            ("13pm", "13pm"),
        ] {
            match parse(phrase, &now) {
                Err(WhenError::NotUnderstood { word: w, .. }) => assert_eq!(w, word, "{phrase}"),
                other => panic!("{phrase}: {other:?}"),
            }
        }
        assert!(matches!(
            parse("yesterday today", &now),
            Err(WhenError::Twice { .. })
        ));
        assert!(matches!(
            parse("february 30", &now),
            Err(WhenError::NoSuchDate { .. })
        ));
        assert!(matches!(
            parse("today between 6 pm and 8 pm", &now),
            Err(WhenError::Future { .. })
        ));
        assert!(parse("", &now).is_err());
        assert!(is_blank(" ?! "));
        // A flood of words is read in one pass and refused at the first it cannot place.
        let long = "yesterday ".to_string() + &"x ".repeat(10_000);
        assert!(matches!(
            parse(&long, &now),
            Err(WhenError::NotUnderstood { .. })
        ));
    }

    #[test]
    fn the_range_is_said_back_in_words() {
        let now = tuesday();
        for (phrase, said) in [
            ("yesterday", "yesterday"),
            ("last night", "last night"),
            ("this morning", "this morning"),
            ("since 6 pm", "since yesterday 18:00"),
            ("between 2 and 3", "today 14:00–15:00"),
            ("last Tuesday", "Tue 24 Nov"),
            ("in the last 3 hours", "in the last 3 hours"),
        ] {
            assert_eq!(parse(phrase, &now).unwrap().said, said, "{phrase}");
        }
    }
}

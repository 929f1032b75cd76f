//! What an utterance says about the action in it besides the action itself: whether it is a question ("is
//! win11-test running?", "did you start it?"), whether it says not to act ("don't start win11-test", "never wake
//! agent", "no need to reboot pve", "stop win11-test from starting", "cancel the reboot") and whether it is for
//! later or on a condition ("in 10 minutes", "at 3am", "at 15:30", "tonight", "on Friday", "next week", "after
//! the backup", "when the backup finishes", "remember to …"). "now", "right now", "immediately", "at once" and
//! "as soon as possible" are not delays.
//!
//! Everything is read from whole words (as [`super::intent::words`] splits them), never from substrings, so a
//! guest called "knot", "donut" or "nothing-server" is a name and not a negation; nothing here slices text.
//! Pure: words in, a reading out. [`super::intent::parse`] decides what the reading means for an action.

use std::ops::Range;

use super::intent::{has, has_seq};

/// Words that, anywhere in an utterance, mean its action must not be taken. Anywhere, not only before the verb:
/// "start win11-test? no, don't" must not start it, so "reboot pve, it's not responding" does not reboot it
/// either; the engine says it will not, and a plain "reboot pve" does.
const NEGATIONS: &[&str] = &[
    "not",
    "no",
    "nope",
    "dont",
    "never",
    "shouldnt",
    "mustnt",
    "wont",
    "shant",
    "cant",
    "cannot",
    "neednt",
    "doesnt",
    "didnt",
    "without",
    "avoid",
    "cancel",
    "abort",
    "skip",
    "prevent",
    "refrain",
    "nevermind",
    "neither",
    "nor",
    "belay",
];

/// Phrases that take an action back.
const RETRACTIONS: &[&[&str]] = &[
    &["hold", "off"],
    &["scratch", "that"],
    &["forget", "it"],
    &["second", "thought"],
];

/// Verbs that stop what another action verb names ("stop rebooting pve", "stop win11-test from starting", "halt
/// the reboot"). On their own ("stop vm 101") they are the command.
const CEASING: &[&str] = &["stop", "halt", "quit", "cease"];

/// Action verbs and nouns other than the ceasing ones.
const OTHER_ACTIONS: &[&str] = &[
    "start", "boot", "reboot", "restart", "bounce", "wake", "wol", "shutdown",
];

/// The -ing forms of the action verbs, and the command each stands for.
const GERUNDS: &[(&str, &str)] = &[
    ("starting", "start"),
    ("booting", "boot"),
    ("rebooting", "reboot"),
    ("restarting", "restart"),
    ("bouncing", "bounce"),
    ("waking", "wake"),
    ("shutting", "shut"),
    ("stopping", "stop"),
    ("halting", "halt"),
    ("killing", "kill"),
    ("powering", "power"),
    ("turning", "turn"),
    ("spinning", "spin"),
    ("cycling", "cycle"),
];

/// Words that open a question. "can", "could", "would" and "will" open polite commands ("could you start
/// win11-test?") and are not here; "do" and "when" are decided by the word after them (see [`is_question`]).
const QUESTION_OPENERS: &[&str] = &[
    "is", "are", "am", "was", "were", "did", "does", "has", "have", "had", "should", "shall",
    "may", "might", "who", "whom", "whose", "what", "whats", "where", "which", "why", "how",
    "hows", "isnt", "arent", "wasnt", "werent", "didnt", "doesnt", "hasnt", "havent", "shouldnt",
];

/// Words that make a question of a sentence wherever they are ("I wonder whether to reboot pve").
const WONDERING: &[&str] = &["whether", "wonder", "wondering"];

/// Auxiliaries after which "when" asks ("when did backup-pbs stop?") rather than sets a condition ("when the
/// backup finishes, start ubuntu-dev").
const AUXILIARIES: &[&str] = &[
    "did", "does", "do", "is", "are", "was", "were", "will", "would", "can", "could", "should",
    "has", "have", "had",
];

/// Words that are a time other than now on their own.
const TIME_WORDS: &[&str] = &[
    "tomorrow",
    "tmrw",
    "tonight",
    "tonite",
    "today",
    "later",
    "shortly",
    "eventually",
    "sometime",
    "someday",
    "afterwards",
    "afterward",
    "overnight",
    "midnight",
    "noon",
    "midday",
    "bedtime",
    "weekend",
    "daily",
    "nightly",
    "weekly",
    "hourly",
    "monthly",
    "oclock",
];

const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "mondays",
    "tuesdays",
    "wednesdays",
    "thursdays",
    "fridays",
    "saturdays",
    "sundays",
];

/// Months, without "may" (a verb far more often).
const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Parts of the day: a time only after a word that places them ("this evening", "in the morning", "at
/// lunchtime"), so "good morning, start win11-test" starts it.
const DAY_PARTS: &[&str] = &[
    "morning",
    "afternoon",
    "evening",
    "night",
    "lunch",
    "lunchtime",
    "dinner",
    "dinnertime",
    "teatime",
    "dawn",
    "dusk",
    "sunrise",
    "sunset",
];

/// Words that place a part of the day, a weekday or a date in time.
const PLACING: &[&str] = &[
    "this", "the", "at", "by", "on", "in", "next", "coming", "every", "each", "tomorrow", "until",
    "till", "before", "after", "from", "for",
];

/// Lengths of time, for "in 10 minutes", "in an hour", "in a bit", "next week", "every day".
const UNITS: &[&str] = &[
    "second",
    "seconds",
    "sec",
    "secs",
    "minute",
    "minutes",
    "min",
    "mins",
    "hour",
    "hours",
    "hr",
    "hrs",
    "day",
    "days",
    "week",
    "weeks",
    "fortnight",
    "month",
    "months",
    "year",
    "years",
    "moment",
    "bit",
    "while",
    "jiffy",
    "tick",
];

/// What follows an hour said as a number ("3 pm", "5 o'clock").
const MERIDIEMS: &[&str] = &["am", "pm", "a.m", "p.m", "oclock"];

/// Suffixes of a number that make it a length of time ("10min", "2h", "30s").
const UNIT_SUFFIXES: &[&str] = &[
    "s", "sec", "secs", "m", "min", "mins", "h", "hr", "hrs", "d",
];

/// Words that say how many of a unit ("in a few minutes", "in half an hour", "in a couple of hours").
const QUANTITIES: &[&str] = &[
    "a",
    "an",
    "few",
    "couple",
    "of",
    "half",
    "quarter",
    "several",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "fifteen",
    "twenty",
    "thirty",
    "forty",
    "forty-five",
    "fifty",
    "sixty",
    "ninety",
];

/// Words that open a condition or a time relative to something else; the phrase runs to the end of its clause.
const CONDITIONS: &[&str] = &[
    "after", "before", "until", "till", "til", "unless", "if", "whenever", "once", "when",
];

/// Conditions that ask for the action later even in a negated sentence ("don't start it until the backup is
/// done"), where a plain time does not ("don't reboot pve tonight" is declined).
const LATER_DESPITE_NEGATION: &[&str] = &["until", "till", "til", "before", "unless"];

/// Words that end a condition's clause: the action's verbs and the glue around them.
const CLAUSE_STOPS: &[&str] = &[
    "start", "boot", "reboot", "restart", "bounce", "shutdown", "shut", "stop", "halt", "kill",
    "wake", "power", "turn", "spin", "engage", "release", "please", "jarvis", "then", "and", "but",
    "so",
];

/// The longest time phrase kept, in words.
const MAX_PHRASE_WORDS: usize = 6;

/// Asking to be reminded or for something to be scheduled: for later, with no time said.
const REMINDERS: &[&[&str]] = &[
    &["remember", "to"],
    &["remind"],
    &["reminder"],
    &["schedule"],
    &["scheduled"],
    &["reschedule"],
];

/// An action for later or on a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    /// The time or condition as said ("at 3am", "after the backup"), or "later" when none was.
    pub when: String,
    /// "until …", "before …", "unless …", "not now", "not yet": the action is wanted later whatever negation the
    /// sentence also holds.
    pub despite_negation: bool,
}

/// A time phrase found in the words.
struct Marker {
    /// Where it is, when it is a phrase worth repeating.
    span: Option<Range<usize>>,
    despite_negation: bool,
}

fn word(w: &[String], i: usize) -> &str {
    w.get(i).map(String::as_str).unwrap_or("")
}

fn is_in(w: &[String], i: usize, list: &[&str]) -> bool {
    list.contains(&word(w, i))
}

/// A question rather than a command: it opens with a question word ("is", "did", "should", "what", "how",
/// "when did" …) or wonders ("I wonder whether to reboot pve"). "do not …" is a command not to.
pub fn is_question(w: &[String]) -> bool {
    let opens_question = match word(w, 0) {
        "do" => word(w, 1) != "not",
        "when" => is_in(w, 1, AUXILIARIES),
        first => QUESTION_OPENERS.contains(&first),
    };
    opens_question || has(w, WONDERING)
}

/// The utterance says its action must not be taken.
pub fn is_negated(w: &[String]) -> bool {
    has(w, NEGATIONS) || RETRACTIONS.iter().any(|p| has_seq(w, p)) || ceases_another_action(w)
}

/// "stop rebooting pve", "stop win11-test from starting", "halt the reboot": a ceasing verb with another action
/// named beside it, which is the action refused.
pub fn ceases_another_action(w: &[String]) -> bool {
    has(w, CEASING) && (has(w, OTHER_ACTIONS) || w.iter().any(|x| command_of_gerund(x).is_some()))
}

/// `w` as the command it refuses: the ceasing verbs dropped when another action is named, and every -ing form of
/// an action verb as the verb ("stop win11-test from starting" → "win11-test from start", "don't bother
/// rebooting pve" → "dont bother reboot pve"). For naming what was declined, never for acting.
pub fn refused_command(w: &[String]) -> Vec<String> {
    let drop_ceasing = ceases_another_action(w);
    w.iter()
        .filter(|x| !(drop_ceasing && CEASING.contains(&x.as_str())))
        .map(|x| command_of_gerund(x).unwrap_or(x).to_string())
        .collect()
}

fn command_of_gerund(word: &str) -> Option<&'static str> {
    GERUNDS
        .iter()
        .find(|(gerund, _)| *gerund == word)
        .map(|(_, command)| *command)
}

/// The time or condition the action is for, when it is not now.
pub fn deferral(w: &[String]) -> Option<Deferral> {
    let mut markers: Vec<Marker> = (0..w.len()).filter_map(|i| marker_at(w, i)).collect();
    if REMINDERS.iter().any(|p| has_seq(w, p)) {
        markers.push(Marker {
            span: None,
            despite_negation: false,
        });
    }
    if markers.is_empty() {
        return None;
    }
    let despite_negation = markers.iter().any(|m| m.despite_negation);
    let spans: Vec<Range<usize>> = markers.into_iter().filter_map(|m| m.span).collect();
    let when = first_phrase(&spans)
        .and_then(|r| w.get(r))
        .map(|said| said.join(" "))
        .unwrap_or_else(|| "later".to_string());
    Some(Deferral {
        when,
        despite_negation,
    })
}

/// The earliest span, joined with those that touch it ("tomorrow" + "at 3am").
fn first_phrase(spans: &[Range<usize>]) -> Option<Range<usize>> {
    let mut sorted = spans.to_vec();
    sorted.sort_by_key(|r| (r.start, r.end));
    let mut phrase = sorted.first()?.clone();
    for r in &sorted[1..] {
        if r.start > phrase.end {
            break;
        }
        phrase.end = phrase.end.max(r.end);
    }
    Some(phrase)
}

/// A time phrase that starts (or is anchored) at word `i`.
fn marker_at(w: &[String], i: usize) -> Option<Marker> {
    let plain = |span: Range<usize>| Marker {
        span: Some(span),
        despite_negation: false,
    };
    if let Some(span) = condition(w, i) {
        return Some(Marker {
            despite_negation: is_in(w, i, LATER_DESPITE_NEGATION),
            span: Some(span),
        });
    }
    // "not now", "not yet": later, with no time to repeat.
    if word(w, i) == "not" && matches!(word(w, i + 1), "now" | "yet") {
        return Some(Marker {
            span: None,
            despite_negation: true,
        });
    }
    point_in_time(w, i)
        .or_else(|| at_time(w, i))
        .or_else(|| in_duration(w, i))
        .or_else(|| period_ahead(w, i))
        .map(plain)
}

/// "after the backup", "when the backup finishes", "once X is done", "until …", "if …", "as soon as …", "wait
/// for …": to the end of the clause.
fn condition(w: &[String], i: usize) -> Option<Range<usize>> {
    let opens = match word(w, i) {
        "once" => i == 0 || word(w, i - 1) != "at",
        "when" => !(i == 0 && is_in(w, 1, AUXILIARIES)),
        "if" => !polite_if(w, i),
        "as" => has_seq(&w[i..], &["as", "soon", "as"]) && word(w, i + 3) != "possible",
        "wait" => matches!(word(w, i + 1), "for" | "till" | "until"),
        x => CONDITIONS.contains(&x),
    };
    opens.then(|| i..clause_end(w, i + 1))
}

/// "if you can", "if possible", "if you would", "if you don't mind": politeness, not a condition.
fn polite_if(w: &[String], i: usize) -> bool {
    word(w, i + 1) == "possible"
        || (word(w, i + 1) == "you"
            && matches!(
                word(w, i + 2),
                "can" | "could" | "would" | "will" | "please" | "may" | "dont" | "wouldnt" | "mind"
            ))
}

fn clause_end(w: &[String], from: usize) -> usize {
    let start = from.saturating_sub(1);
    (from..w.len())
        .find(|&j| is_in(w, j, CLAUSE_STOPS) || j - start >= MAX_PHRASE_WORDS)
        .unwrap_or(w.len())
}

/// A word that names a time on its own ("tonight", "friday", "3am", "15:30", "the 5th", "this evening"), with
/// the words that place it before ("on", "this", "in the") and a part of the day or "am"/"pm" after.
fn point_in_time(w: &[String], i: usize) -> Option<Range<usize>> {
    let x = word(w, i);
    let placed = i > 0 && is_in(w, i - 1, PLACING);
    let dated = |j: usize| is_number(word(w, j)) || is_ordinal(word(w, j));
    let month_dated = MONTHS.contains(&x) && ((i > 0 && dated(i - 1)) || dated(i + 1));
    let is_time = TIME_WORDS.contains(&x)
        || WEEKDAYS.contains(&x)
        || is_clock(x)
        || (x == "soon" && !(i > 0 && word(w, i - 1) == "as"))
        || (is_number(x) && is_in(w, i + 1, MERIDIEMS))
        || (DAY_PARTS.contains(&x) && placed)
        || (is_ordinal(x) && placed)
        || (MONTHS.contains(&x) && (placed || month_dated));
    if !is_time {
        return None;
    }
    let mut start = i;
    if month_dated && i > 0 && dated(i - 1) {
        start -= 1;
    }
    let anchor = start;
    while start > 0 && anchor - start < 2 && is_in(w, start - 1, PLACING) {
        start -= 1;
    }
    let mut end = i + 1;
    if month_dated && dated(i + 1) {
        end += 1;
    }
    while end < w.len() && end - i < 3 && (is_in(w, end, DAY_PARTS) || is_in(w, end, MERIDIEMS)) {
        end += 1;
    }
    Some(start..end)
}

/// "at 3", "at three", "at noon", "at the end of the day"; never "at once".
fn at_time(w: &[String], i: usize) -> Option<Range<usize>> {
    if word(w, i) != "at" {
        return None;
    }
    let next = word(w, i + 1);
    let end_of = next == "the" && matches!(word(w, i + 2), "end" | "top" | "weekend");
    let timed = next.starts_with(|c: char| c.is_ascii_digit())
        || is_number(next)
        || TIME_WORDS.contains(&next)
        || DAY_PARTS.contains(&next);
    if !(timed || end_of) {
        return None;
    }
    let mut end = i + 2;
    while end < w.len() && is_in(w, end, MERIDIEMS) {
        end += 1;
    }
    Some(i..if end_of { clause_end(w, i + 1) } else { end })
}

/// "in 10 minutes", "in an hour", "in a bit", "in half an hour", "in 5min", "in 5".
fn in_duration(w: &[String], i: usize) -> Option<Range<usize>> {
    if word(w, i) != "in" {
        return None;
    }
    let next = word(w, i + 1);
    if is_duration_token(next) {
        return Some(i..i + 2);
    }
    for j in i + 1..(i + 6).min(w.len()) {
        let x = word(w, j);
        if UNITS.contains(&x) {
            return Some(i..j + 1);
        }
        if !(QUANTITIES.contains(&x) || is_number(x) || x == "and") {
            break;
        }
    }
    is_number(next).then(|| i..i + 2)
}

/// "next week", "next friday", "coming weekend", "every day", "each night".
fn period_ahead(w: &[String], i: usize) -> Option<Range<usize>> {
    let ahead = matches!(word(w, i), "next" | "coming" | "every" | "each");
    let next = word(w, i + 1);
    let period = UNITS.contains(&next)
        || WEEKDAYS.contains(&next)
        || MONTHS.contains(&next)
        || DAY_PARTS.contains(&next)
        || matches!(next, "time" | "weekend" | "week");
    (ahead && period).then(|| i..i + 2)
}

/// Digits, or a number said as a word.
fn is_number(x: &str) -> bool {
    (!x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
        || (QUANTITIES.contains(&x)
            && !matches!(x, "a" | "an" | "of" | "few" | "couple" | "several"))
}

/// "5th", "1st", "22nd", "3rd".
fn is_ordinal(x: &str) -> bool {
    ["st", "nd", "rd", "th"].iter().any(|suffix| {
        x.strip_suffix(suffix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// "10min", "2h", "30s", "1hr".
fn is_duration_token(x: &str) -> bool {
    let Some(cut) = x.find(|c: char| !c.is_ascii_digit()) else {
        return false;
    };
    let (digits, unit) = x.split_at(cut);
    !digits.is_empty() && UNIT_SUFFIXES.contains(&unit)
}

/// A time of day: "15:30", "3am", "3.30pm", "11:45pm".
fn is_clock(x: &str) -> bool {
    let (time, meridiem) = match ["am", "pm", "a.m", "p.m"]
        .iter()
        .find_map(|m| x.strip_suffix(m))
    {
        Some(time) => (time, true),
        None => (x, false),
    };
    let mut parts = time.splitn(2, [':', '.']);
    let hours = parts.next().unwrap_or("");
    let minutes = parts.next();
    let digits = |s: &str, len: Range<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let colon = time.contains(':');
    digits(hours, 1..3)
        && match minutes {
            Some(m) => digits(m, 2..3) && (meridiem || colon),
            None => meridiem,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::intent::words;

    fn when(text: &str) -> Option<String> {
        deferral(&words(text)).map(|d| d.when)
    }

    #[test]
    fn times_are_read_whole_and_now_is_not_a_time() {
        let table: &[(&str, Option<&str>)] = &[
            ("start backup-pbs in 10 minutes", Some("in 10 minutes")),
            ("reboot pve at 3am", Some("at 3am")),
            ("reboot pve at 3 pm", Some("at 3 pm")),
            ("start it at 15:30 please", Some("at 15:30")),
            ("tomorrow at 3am reboot pve", Some("tomorrow at 3am")),
            (
                "start ubuntu-dev after the backup",
                Some("after the backup"),
            ),
            (
                "when the backup finishes reboot pve",
                Some("when the backup finishes"),
            ),
            ("reboot pve in the morning", Some("in the morning")),
            ("start it on the 5th", Some("on the 5th")),
            ("start it on 5 december", Some("on 5 december")),
            (
                "start it in a couple of hours",
                Some("in a couple of hours"),
            ),
            ("wake agent every night", Some("every night")),
            (
                "start it at the end of the day",
                Some("at the end of the day"),
            ),
            ("schedule a reboot of pve", Some("later")),
            ("reboot pve now", None),
            ("reboot pve right now", None),
            ("start it immediately", None),
            ("start it at once", None),
            ("start it as soon as possible", None),
            ("start it if you can", None),
            ("good morning, start win11-test", None),
            ("start win11-test for 2h", None),
            ("start 113", None),
            ("start march-server", None),
            ("start the vm called august", None),
        ];
        for (text, want) in table {
            assert_eq!(when(text).as_deref(), *want, "{text:?}");
        }
    }

    #[test]
    fn negation_is_a_word_not_letters() {
        for yes in [
            "don't start it",
            "do not start it",
            "never wake agent",
            "no need to reboot pve",
            "stop win11-test from starting",
            "stop rebooting pve",
            "cancel the reboot",
            "hold off on that",
        ] {
            assert!(is_negated(&words(yes)), "{yes:?}");
        }
        for no in [
            "start nothing-server",
            "start knot",
            "start donut",
            "stop vm 101",
            "force stop win11-test",
            "start notepad",
        ] {
            assert!(!is_negated(&words(no)), "{no:?}");
        }
        assert_eq!(
            refused_command(&words("stop win11-test from starting")),
            words("win11-test from start")
        );
    }

    #[test]
    fn clocks_durations_and_ordinals() {
        for clock in ["15:30", "3am", "3.30pm", "11:45pm", "7a.m"] {
            assert!(is_clock(clock), "{clock}");
        }
        for not in [
            "15",
            "1.2",
            "101",
            "am",
            ":30",
            "123:45",
            "win11-test",
            "ü:30",
        ] {
            assert!(!is_clock(not), "{not}");
        }
        assert!(is_duration_token("10min") && is_duration_token("2h"));
        assert!(!is_duration_token("10") && !is_duration_token("k8s") && !is_duration_token("5ü"));
        assert!(is_ordinal("5th") && !is_ordinal("th") && !is_ordinal("north"));
    }
}

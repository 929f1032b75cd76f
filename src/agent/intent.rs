//! The offline intent parser: a deterministic reading of the common commands, matched against the names in the
//! state (nodes, guests) with exact matches first and fuzzy ones (Jaro-Winkler) after, so "start the frigate
//! container", "reboot pve" or "how hot is agent one" resolve without a language model. An action is only ever
//! an action said plainly, for now: a question about it ("is backup-pbs shut down?") is answered as a status, one
//! said not to be done ("don't start win11-test", "stop win11-test from starting") is [`Intent::Declined`], one
//! said for later or on a condition ("reboot pve at 3am", "after the backup") is [`Intent::Deferred`]; the words
//! that decide are read in [`super::qualifiers`]. Pure: text and names in, an [`Intent`] out.

use super::qualifiers;
use crate::state::World;

/// What was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    ClusterStatus,
    NodeStatus(String),
    GuestStatus(u32),
    Power {
        action: Power,
        target: Target,
    },
    Temperatures(Option<String>),
    Storage,
    Wake(String),
    /// `Some(true)` on, `Some(false)` off, `None` asks how it stands.
    KillSwitch(Option<bool>),
    WhoIsHome,
    /// "when did John leave yesterday?": the person as said, whether leaving (or arriving), and the time range
    /// in words if one was said.
    WhenDid {
        person: String,
        left: bool,
        when: Option<String>,
    },
    /// "when was Sarah last seen?", "where is Sarah?" (for a person Jarvis knows).
    LastSeen(String),
    /// "is John home?"
    IsHome(String),
    ShowCamera(String),
    /// "remember that …": the note in the speaker's words, and for how long.
    Remember {
        text: String,
        tier: crate::store::memory::MemoryTier,
    },
    /// "what do you remember (about …)?"
    Recall(Option<String>),
    /// "forget (the note about) …"
    Forget(String),
    /// An action the speaker said not to take ("don't start win11-test", "never wake agent", "stop win11-test
    /// from starting"): acknowledged, never taken. Holds an intent that [`Intent::acts`].
    Declined(Box<Intent>),
    /// An action said for later or on a condition ("start backup-pbs in 10 minutes", "reboot pve at 3am", "after
    /// the backup"): there is no scheduler, so it is not taken now. Holds an intent that [`Intent::acts`] and the
    /// time or condition as said.
    Deferred {
        action: Box<Intent>,
        when: String,
    },
}

impl Intent {
    /// Whether carrying it out changes something: a power action, a wake-up, setting the kill switch.
    pub fn acts(&self) -> bool {
        matches!(
            self,
            Intent::Power { .. } | Intent::Wake(_) | Intent::KillSwitch(Some(_))
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Start,
    /// Graceful (ACPI / init) shutdown.
    Shutdown,
    /// Hard stop.
    Stop,
    Reboot,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Node(String),
    Guest(u32),
}

/// Below this Jaro-Winkler similarity a word is not taken for a name.
const FUZZY: f64 = 0.9;

/// Words that carry no meaning for matching.
const FILLER: &[&str] = &[
    "hey",
    "jarvis",
    "please",
    "could",
    "can",
    "would",
    "you",
    "kindly",
    "the",
    "a",
    "an",
    "my",
    "our",
    "of",
    "on",
    "for",
    "to",
    "me",
    "is",
    "are",
    "what",
    "whats",
    "how",
    "hows",
    "tell",
    "give",
    "show",
    "check",
    "now",
    "up",
    "container",
    "ct",
    "lxc",
    "vm",
    "guest",
    "machine",
    "node",
    "server",
    "host",
    "box",
    "and",
    "it",
    "its",
    "doing",
    "status",
    "state",
    "report",
    "again",
    "right",
    "go",
    "ahead",
    "i",
    "want",
    "need",
    "just",
    "quickly",
    "at",
];

/// Lowercase words without punctuation (hyphens, dots and colons inside a word kept: "win11-test", "3.30pm",
/// "15:30"), apostrophes dropped ("don't" → "dont").
pub fn words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace(['’', '\''], "");
    lower
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '.' || c == ':'))
        .map(|w| w.trim_matches(['.', '-', ':']).to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether any word of `w` is one of `any`.
pub(super) fn has(w: &[String], any: &[&str]) -> bool {
    w.iter().any(|x| any.contains(&x.as_str()))
}

/// Whether `seq` occurs in `w`, word for word.
pub(super) fn has_seq(w: &[String], seq: &[&str]) -> bool {
    w.windows(seq.len())
        .any(|win| win.iter().zip(seq).all(|(a, b)| a == b))
}

/// Spoken numbers as digits, for names such as `agent1` said as "agent one".
fn digit(w: &str) -> Option<&'static str> {
    Some(match w {
        "one" => "1",
        "two" => "2",
        "three" => "3",
        "four" => "4",
        "five" => "5",
        _ => return None,
    })
}

/// The thing a phrase names: a node or a guest, exact before fuzzy, nodes before guests on a tie.
pub fn resolve(words: &[String], world: &World, skip: &[&str]) -> Option<Target> {
    let content: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !FILLER.contains(w) && !skip.contains(w))
        .collect();
    // vmids said as numbers.
    for w in &content {
        if let Ok(id) = w.parse::<u32>() {
            if world.cluster.guest(id).is_some() {
                return Some(Target::Guest(id));
            }
        }
    }
    // Phrases of up to three words, with the number of words they span: a longer exact match beats a shorter one
    // ("email agent" is the guest, not the node "agent").
    let mut phrases: Vec<(String, usize)> = Vec::new();
    for n in (1..=3).rev() {
        for win in content.windows(n) {
            phrases.push((win.join("-"), n));
            phrases.push((win.concat(), n));
            if n == 2 {
                if let Some(d) = digit(win[1]) {
                    phrases.push((format!("{}{d}", win[0]), n));
                }
            }
        }
    }
    let mut best: Option<(f64, Target)> = None;
    let mut consider = |score: f64, t: Target| {
        if score >= FUZZY + 0.01 && best.as_ref().is_none_or(|(s, _)| score > *s + 1e-9) {
            best = Some((score, t));
        }
    };
    for (p, n) in &phrases {
        let bonus = *n as f64 * 0.01;
        for node in &world.cluster.nodes {
            consider(
                similarity(p, &node.name.to_lowercase()) + bonus + 0.001,
                Target::Node(node.name.clone()),
            );
        }
        for g in &world.cluster.guests {
            consider(
                similarity(p, &g.name.to_lowercase()) + bonus,
                Target::Guest(g.vmid),
            );
        }
    }
    best.map(|(_, t)| t)
}

fn similarity(phrase: &str, name: &str) -> f64 {
    if phrase == name {
        return 1.0;
    }
    // Short words match only exactly: "pve" must not find "pbs".
    if phrase.len() < 4 || name.len() < 4 {
        return 0.0;
    }
    strsim::jaro_winkler(phrase, name)
}

fn node_of(words: &[String], world: &World, skip: &[&str]) -> Option<String> {
    match resolve(words, world, skip)? {
        Target::Node(n) => Some(n),
        Target::Guest(_) => None,
    }
}

/// Notes: "remember that …", "what do you remember about …", "forget …". Read from the original text, so a note
/// keeps the speaker's words and capitals.
fn memory_intent(text: &str) -> Option<Intent> {
    use crate::store::memory::MemoryTier;
    // Prefixes and suffixes are compared without changing the text, so slicing stays on the original's
    // boundaries whatever it holds (lower-casing can change a string's length).
    fn after_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
        s.get(..prefix.len())
            .filter(|head| head.eq_ignore_ascii_case(prefix))
            .and_then(|_| s.get(prefix.len()..))
    }
    fn before_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
        let cut = s.len().checked_sub(suffix.len())?;
        s.get(cut..)
            .filter(|tail| tail.eq_ignore_ascii_case(suffix))
            .and_then(|_| s.get(..cut))
    }
    let clean = |s: &str| {
        s.trim()
            .trim_end_matches(['.', '!', '?'])
            .trim()
            .to_string()
    };
    let mut rest = text.trim();
    while let Some(r) = ["hey jarvis", "ok jarvis", "jarvis", "please", ",", "!"]
        .iter()
        .find_map(|p| after_ci(rest, p))
    {
        rest = r.trim_start();
    }
    let after = |prefixes: &[&str]| prefixes.iter().find_map(|p| after_ci(rest, p)).map(clean);
    if let Some(mut note) = after(&[
        "remember that ",
        "make a note that ",
        "note that ",
        "keep in mind that ",
        "remember: ",
    ]) {
        let mut tier = MemoryTier::Long;
        for (phrase, t) in [
            (" permanently", MemoryTier::Permanent),
            (" forever", MemoryTier::Permanent),
            (" for good", MemoryTier::Permanent),
            (" for now", MemoryTier::Session),
            (" for this session", MemoryTier::Session),
            (" for the next hour", MemoryTier::Session),
            (" for a week", MemoryTier::Short),
            (" for this week", MemoryTier::Short),
        ] {
            if let Some(body) = before_ci(&note, phrase) {
                note = body.to_string();
                tier = t;
            }
        }
        let note = clean(&note);
        return (!note.is_empty()).then_some(Intent::Remember { text: note, tier });
    }
    if let Some(about) = after(&[
        "what do you remember about ",
        "what do you know about ",
        "what have you noted about ",
        "recall ",
    ]) {
        return Some(Intent::Recall((!about.is_empty()).then_some(about)));
    }
    let whole = clean(rest);
    if [
        "what do you remember",
        "what have you noted",
        "what notes do you have",
    ]
    .iter()
    .any(|p| whole.eq_ignore_ascii_case(p))
    {
        return Some(Intent::Recall(None));
    }
    if let Some(about) = after(&[
        "forget the note about ",
        "forget what i said about ",
        "forget about ",
        "forget that ",
        "forget ",
    ]) {
        let meaningful = !crate::store::memory::terms(&about).is_empty();
        return meaningful.then_some(Intent::Forget(about));
    }
    None
}

/// Reads one utterance; `None` when it is not one of the commands the engine knows.
pub fn parse(text: &str, world: &World) -> Option<Intent> {
    if let Some(i) = memory_intent(text) {
        return Some(i);
    }
    let w = command_words(text);
    if qualifiers::ceases_another_action(&w) {
        // "stop rebooting pve", "stop win11-test from starting": the other action is the one refused.
        return parse_command(&qualifiers::refused_command(&w), world).map(declined);
    }
    let negated = qualifiers::is_negated(&w);
    let mut intent = parse_command(&w, world);
    if negated && !intent.as_ref().is_some_and(Intent::acts) {
        // "don't bother starting win11-test", "hold off on rebooting pve": the action is named in its -ing form.
        intent = parse_command(&qualifiers::refused_command(&w), world)
            .filter(Intent::acts)
            .or(intent);
    }
    let intent = intent?;
    if !intent.acts() {
        return Some(intent);
    }
    // The engine acts now or not at all: an action said for later, or not to be done, is never carried out.
    match qualifiers::deferral(&w) {
        Some(later) if later.despite_negation || !negated => Some(Intent::Deferred {
            action: Box::new(intent),
            when: later.when,
        }),
        _ if negated => Some(declined(intent)),
        _ => Some(intent),
    }
}

/// An intent that acts, declined; anything else as it is.
fn declined(intent: Intent) -> Intent {
    if intent.acts() {
        Intent::Declined(Box::new(intent))
    } else {
        intent
    }
}

/// The words of an utterance without the wake word and politeness in front, which carry nothing.
fn command_words(text: &str) -> Vec<String> {
    let mut w = words(text);
    let spoken_to = w
        .iter()
        .take_while(|x| ["hey", "ok", "jarvis", "please"].contains(&x.as_str()))
        .count();
    w.drain(..spoken_to);
    w
}

/// Reads the command in `w` (the words after the wake word). A question never reads as an action: "is
/// backup-pbs shut down?" asks for its status, "is the kill switch on?" how the switch stands.
fn parse_command(w: &[String], world: &World) -> Option<Intent> {
    if w.is_empty() {
        return None;
    }
    let question = qualifiers::is_question(w);
    let joined = w.join(" ");
    // Questions that need reasoning are the language model's, not the template engine's.
    let reasoning = [
        "why",
        "explain",
        "should",
        "compare",
        "diagnose",
        "analyse",
        "analyze",
        "suggest",
        "write",
        "summarise",
        "summarize",
        "troubleshoot",
    ];
    // So is conversation that merely mentions a thing ("tell me a joke about hard disks").
    let chatter = [
        "joke", "jokes", "poem", "story", "song", "riddle", "limerick",
    ];
    if reasoning.contains(&w[0].as_str())
        || has(w, &["why", "explain", "diagnose", "troubleshoot"])
        || has(w, &chatter)
    {
        return None;
    }
    if (has(w, &["kill"]) && has(w, &["switch"])) || has(w, &["killswitch"]) {
        let on = has(
            w,
            &[
                "on", "engage", "activate", "enable", "arm", "hit", "pull", "throw",
            ],
        );
        let off = has(
            w,
            &[
                "off",
                "release",
                "disengage",
                "disable",
                "deactivate",
                "lift",
                "reset",
            ],
        );
        return Some(Intent::KillSwitch(match (on, off) {
            _ if question => None,
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }));
    }
    if let Some(i) = presence_question(w, world) {
        return Some(i);
    }
    // "Who's home?" arrives as "whos" (apostrophes are dropped), as Whisper often writes it.
    if matches!(w[0].as_str(), "who" | "whos")
        && (has(w, &["home", "here", "in", "around"]) || joined.contains("at home"))
    {
        return Some(Intent::WhoIsHome);
    }
    if has(w, &["camera", "cam", "cameras"]) && has(w, &["show", "display", "open", "view", "see"])
    {
        let name = w
            .iter()
            .filter(|x| {
                !FILLER.contains(&x.as_str())
                    && !["camera", "cam", "display", "open", "view", "see"].contains(&x.as_str())
            })
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        return Some(Intent::ShowCamera(name));
    }
    if !question && (has(w, &["wake", "wol"]) || has_seq(w, &["wake-on-lan"])) {
        if let Some(node) = node_of(w, world, &["wake", "wol", "wake-on-lan", "lan"]) {
            return Some(Intent::Wake(node));
        }
    }
    if let Some(action) = power_verb(w).filter(|_| !question) {
        let verbs = [
            "start", "boot", "power", "turn", "spin", "shutdown", "shut", "down", "stop", "halt",
            "off", "force", "kill", "reboot", "restart", "bounce", "cycle", "hard",
        ];
        if let Some(target) = resolve(w, world, &verbs) {
            return Some(match (action, target) {
                (Power::Start, Target::Node(n)) => Intent::Wake(n),
                (action, target) => Intent::Power { action, target },
            });
        }
    }
    if has(
        w,
        &[
            "temperature",
            "temperatures",
            "temp",
            "temps",
            "hot",
            "warm",
            "heat",
            "thermal",
        ],
    ) {
        return Some(Intent::Temperatures(node_of(
            w,
            world,
            &[
                "temperature",
                "temperatures",
                "temp",
                "temps",
                "hot",
                "warm",
                "heat",
                "thermal",
            ],
        )));
    }
    if has(
        w,
        &[
            "storage", "space", "disk", "disks", "pool", "pools", "full", "capacity",
        ],
    ) {
        return Some(Intent::Storage);
    }
    // "status", "how is…" ask about the cluster or a named thing; "running", "up" only about a named thing.
    let strong = has(
        w,
        &[
            "status", "state", "report", "doing", "ok", "okay", "healthy", "health",
        ],
    ) || w[0] == "how"
        || joined.starts_with("what is going on");
    let weak = has(w, &["running", "up", "online", "alive", "down", "offline"]);
    if strong || weak {
        let skip = [
            "running",
            "online",
            "alive",
            "down",
            "offline",
            "ok",
            "okay",
            "healthy",
            "health",
            "cluster",
            "everything",
            "homelab",
            "lab",
            "systems",
        ];
        return match resolve(w, world, &skip) {
            Some(Target::Node(n)) => Some(Intent::NodeStatus(n)),
            Some(Target::Guest(id)) => Some(Intent::GuestStatus(id)),
            None if strong => Some(Intent::ClusterStatus),
            None => None,
        };
    }
    None
}

fn power_verb(w: &[String]) -> Option<Power> {
    if has(w, &["reboot", "restart", "bounce"]) || has_seq(w, &["power", "cycle"]) {
        return Some(Power::Reboot);
    }
    if has_seq(w, &["force", "stop"]) || has_seq(w, &["hard", "stop"]) || has(w, &["kill", "halt"])
    {
        return Some(Power::Stop);
    }
    if has(w, &["shutdown", "stop"])
        || has_seq(w, &["shut", "down"])
        || has_seq(w, &["power", "off"])
        || has_seq(w, &["turn", "off"])
    {
        return Some(Power::Shutdown);
    }
    if has(w, &["start", "boot"])
        || has_seq(w, &["power", "on"])
        || has_seq(w, &["turn", "on"])
        || has_seq(w, &["spin", "up"])
    {
        return Some(Power::Start);
    }
    None
}

/// Verbs of coming and going, and whether each is leaving.
const MOVEMENT: &[(&str, bool)] = &[
    ("leave", true),
    ("left", true),
    ("go", true),
    ("went", true),
    ("depart", true),
    ("departed", true),
    ("head", true),
    ("arrive", false),
    ("arrived", false),
    ("come", false),
    ("came", false),
    ("get", false),
    ("got", false),
    ("return", false),
    ("returned", false),
];

/// Words of a presence question that are not a time ("when did John get home", "leave the house").
const PLACE_WORDS: &[&str] = &[
    "home", "house", "out", "back", "here", "in", "off", "away", "to", "work",
];

/// "when did John leave yesterday?", "what time did Sarah get home?", "when was Sarah last seen?", "when did you
/// last see Sarah?", "where is Sarah?", "is John home?".
fn presence_question(w: &[String], world: &World) -> Option<Intent> {
    let known = |name: &str| -> Option<String> {
        world
            .presence
            .people
            .iter()
            .find(|p| p.name.to_lowercase() == name)
            .map(|p| p.name.clone())
    };
    let asks_when = w[0] == "when" || (w[0] == "what" && w.get(1).is_some_and(|x| x == "time"));
    if asks_when && has(w, &["last"]) && has(w, &["seen", "see", "saw"]) {
        let skip = [
            "when", "what", "time", "was", "did", "you", "last", "seen", "see", "saw", "is", "the",
        ];
        let name: Vec<&str> = w
            .iter()
            .map(String::as_str)
            .filter(|x| !skip.contains(x))
            .collect();
        if !name.is_empty() {
            let name = name.join(" ");
            return Some(Intent::LastSeen(
                known(&name).unwrap_or_else(|| capitalise(&name)),
            ));
        }
    }
    if asks_when {
        if let Some(did) = w.iter().position(|x| x == "did") {
            let verb = w[did + 1..]
                .iter()
                .position(|x| MOVEMENT.iter().any(|(m, _)| m == x))
                .map(|k| did + 1 + k)?;
            let left =
                MOVEMENT.iter().any(|(m, l)| *m == w[verb] && *l) && !has(&w[verb..], &["back"]);
            let person = w[did + 1..verb].join(" ");
            if person.is_empty() {
                return None;
            }
            // Place words are not a time; neither is "from work" (but "from 2 to 4" is).
            let after_verb = &w[verb + 1..];
            let mut rest: Vec<&str> = Vec::new();
            let mut k = 0;
            while k < after_verb.len() {
                let x = after_verb[k].as_str();
                let next_is_place = after_verb
                    .get(k + 1)
                    .is_some_and(|n| PLACE_WORDS.contains(&n.as_str()) || n == "the");
                if x == "from" && next_is_place {
                    k += 1;
                } else if !(PLACE_WORDS.contains(&x) || x == "the" && rest.is_empty()) {
                    rest.push(x);
                }
                k += 1;
            }
            let person = known(&person).unwrap_or_else(|| capitalise(&person));
            return Some(Intent::WhenDid {
                person,
                left,
                when: (!rest.is_empty()).then(|| rest.join(" ")),
            });
        }
    }
    // "where is sarah", "wheres sarah", "have you seen sarah" — only for a person Jarvis knows (a guest may be
    // asked after the same way).
    let after = match (w[0].as_str(), w.get(1).map(String::as_str)) {
        ("where", Some("is")) => Some(2),
        ("wheres", _) => Some(1),
        ("have", Some("you")) if w.get(2).is_some_and(|x| x == "seen") => Some(3),
        ("is", _) if w.last().is_some_and(|x| x == "home" || x == "in") => {
            let name = w[1..w.len() - 1].join(" ");
            return known(&name).map(Intent::IsHome);
        }
        _ => None,
    };
    if let Some(k) = after {
        let name = w[k..]
            .iter()
            .filter(|x| *x != "today")
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        return known(&name).map(Intent::LastSeen);
    }
    None
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::ClusterSnapshot;
    use crate::kiosk::controllers::cluster::tests::{guest, node};

    fn world() -> World {
        let mut frigate = guest(120, "agent1", "running");
        frigate.name = "frigate".into();
        let mut jelly = guest(111, "pve", "running");
        jelly.name = "jellyfin".into();
        let mut email = guest(121, "pve", "running");
        email.name = "email-agent".into();
        let mut ha = guest(123, "pve", "running");
        ha.name = "home-assistant".into();
        let named = |vmid, name: &str, status| {
            let mut g = guest(vmid, "agent", status);
            g.name = name.into();
            g
        };
        World {
            cluster: ClusterSnapshot {
                nodes: ["Home", "pve", "agent1", "agent"]
                    .iter()
                    .map(|n| node(n, true))
                    .collect(),
                guests: vec![
                    frigate,
                    jelly,
                    email,
                    ha,
                    named(101, "llm-qwen", "running"),
                    named(113, "win11-test", "stopped"),
                    named(125, "ubuntu-dev", "stopped"),
                    named(133, "backup-pbs", "stopped"),
                    named(140, "nothing-server", "stopped"),
                    named(141, "knot", "stopped"),
                    named(142, "donut", "running"),
                ],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn utterances_to_intents() {
        let w = world();
        let table: &[(&str, Option<Intent>)] = &[
            (
                "What's the status of the cluster?",
                Some(Intent::ClusterStatus),
            ),
            (
                "Hey Jarvis, how is everything?",
                Some(Intent::ClusterStatus),
            ),
            ("status report", Some(Intent::ClusterStatus)),
            ("how is pve doing", Some(Intent::NodeStatus("pve".into()))),
            ("is frigate running?", Some(Intent::GuestStatus(120))),
            ("status of 111", Some(Intent::GuestStatus(111))),
            (
                "start the frigate container",
                Some(Intent::Power {
                    action: Power::Start,
                    target: Target::Guest(120),
                }),
            ),
            (
                "reboot pve",
                Some(Intent::Power {
                    action: Power::Reboot,
                    target: Target::Node("pve".into()),
                }),
            ),
            (
                "restart jellyfin please",
                Some(Intent::Power {
                    action: Power::Reboot,
                    target: Target::Guest(111),
                }),
            ),
            (
                "shut down jelyfin",
                Some(Intent::Power {
                    action: Power::Shutdown,
                    target: Target::Guest(111),
                }),
            ),
            (
                "force stop home assistant",
                Some(Intent::Power {
                    action: Power::Stop,
                    target: Target::Guest(123),
                }),
            ),
            (
                "reboot agent one",
                Some(Intent::Power {
                    action: Power::Reboot,
                    target: Target::Node("agent1".into()),
                }),
            ),
            (
                "reboot agent",
                Some(Intent::Power {
                    action: Power::Reboot,
                    target: Target::Node("agent".into()),
                }),
            ),
            (
                "restart the email agent",
                Some(Intent::Power {
                    action: Power::Reboot,
                    target: Target::Guest(121),
                }),
            ),
            ("wake node agent", Some(Intent::Wake("agent".into()))),
            ("power on home", Some(Intent::Wake("Home".into()))),
            (
                "how hot is agent1",
                Some(Intent::Temperatures(Some("agent1".into()))),
            ),
            ("temperatures", Some(Intent::Temperatures(None))),
            ("how much storage is left", Some(Intent::Storage)),
            (
                "engage the kill switch",
                Some(Intent::KillSwitch(Some(true))),
            ),
            ("kill switch off", Some(Intent::KillSwitch(Some(false)))),
            ("who is home?", Some(Intent::WhoIsHome)),
            ("Who's home?", Some(Intent::WhoIsHome)),
            ("who’s at home", Some(Intent::WhoIsHome)),
            (
                "when did john leave yesterday",
                Some(Intent::WhenDid {
                    person: "John".into(),
                    left: true,
                    when: Some("yesterday".into()),
                }),
            ),
            (
                "When did Mary arrive?",
                Some(Intent::WhenDid {
                    person: "Mary".into(),
                    left: false,
                    when: None,
                }),
            ),
            (
                "what time did mary jane get home last night?",
                Some(Intent::WhenDid {
                    person: "Mary jane".into(),
                    left: false,
                    when: Some("last night".into()),
                }),
            ),
            (
                "when did John come back from work since 6 pm",
                Some(Intent::WhenDid {
                    person: "John".into(),
                    left: false,
                    when: Some("since 6 pm".into()),
                }),
            ),
            (
                "when was Sarah last seen?",
                Some(Intent::LastSeen("Sarah".into())),
            ),
            (
                "when did you last see sarah",
                Some(Intent::LastSeen("Sarah".into())),
            ),
            // "where is" and "is … home" only for people Jarvis knows (none in this world).
            ("where is sarah", None),
            (
                "show camera driveway",
                Some(Intent::ShowCamera("driveway".into())),
            ),
            ("start pbs", None),
            ("write me a poem about the sea", None),
            ("tell me a joke about hard disks", None),
            (
                "Jarvis, remember that the printer is on VLAN 30.",
                Some(Intent::Remember {
                    text: "the printer is on VLAN 30".into(),
                    tier: crate::store::memory::MemoryTier::Long,
                }),
            ),
            (
                "please note that Anna is away until Friday for now",
                Some(Intent::Remember {
                    text: "Anna is away until Friday".into(),
                    tier: crate::store::memory::MemoryTier::Session,
                }),
            ),
            (
                "remember that I take my tea without sugar permanently",
                Some(Intent::Remember {
                    text: "I take my tea without sugar".into(),
                    tier: crate::store::memory::MemoryTier::Permanent,
                }),
            ),
            (
                "what do you remember about the printer?",
                Some(Intent::Recall(Some("the printer".into()))),
            ),
            ("What do you remember?", Some(Intent::Recall(None))),
            (
                "forget the note about the printer",
                Some(Intent::Forget("the printer".into())),
            ),
            ("forget it", None),
            // Characters whose lower case is shorter or longer than they are must not break the slicing.
            ("\u{212A}elvin: remember that \u{212A} is a unit", None),
            (
                "Remember that İstanbul is far",
                Some(Intent::Remember {
                    text: "İstanbul is far".into(),
                    tier: crate::store::memory::MemoryTier::Long,
                }),
            ),
            (
                "remember that the café is closed FOR NOW",
                Some(Intent::Remember {
                    text: "the café is closed".into(),
                    tier: crate::store::memory::MemoryTier::Session,
                }),
            ),
            ("ok \u{212A}arvis", None),
            ("why is the NAS filling up?", None),
            ("is everything up?", None),
            ("is agent up", Some(Intent::NodeStatus("agent".into()))),
            ("explain the load on pve", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(&parse(text, &w), want, "{text:?}");
        }
    }

    /// What the engine does with an utterance.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        /// Carried out now through the registry (which may still ask the operator to approve it).
        Acts(Intent),
        /// Said not to be done: acknowledged, no tool called.
        Declines(Intent),
        /// Said for later or on a condition: not done now, no tool called, no approval card; the time as read.
        Defers(Intent, String),
        /// A question or a report, answered without acting.
        Answers(Intent),
        /// Not one of the engine's commands: a language model's when one is configured, else "beyond me".
        NotUnderstood,
    }

    fn outcome(parsed: Option<Intent>) -> Outcome {
        match parsed {
            None => Outcome::NotUnderstood,
            Some(Intent::Declined(action)) => Outcome::Declines(*action),
            Some(Intent::Deferred { action, when }) => Outcome::Defers(*action, when),
            Some(i) if i.acts() => Outcome::Acts(i),
            Some(i) => Outcome::Answers(i),
        }
    }

    fn defers(action: Intent, when: &str) -> Outcome {
        Outcome::Defers(action, when.to_string())
    }

    fn start(vmid: u32) -> Intent {
        power(Power::Start, Target::Guest(vmid))
    }

    fn power(action: Power, target: Target) -> Intent {
        Intent::Power { action, target }
    }

    fn reboot_pve() -> Intent {
        power(Power::Reboot, Target::Node("pve".into()))
    }

    #[test]
    fn negations_times_and_questions_never_act() {
        use Outcome::*;
        let w = world();
        let (win11, ubuntu, pbs) = (113, 125, 133);
        let wake_agent = || Intent::Wake("agent".into());
        let table: Vec<(&str, Outcome)> = vec![
            // Commands, said plainly or politely, for now.
            ("start win11-test", Acts(start(win11))),
            ("please start ubuntu-dev", Acts(start(ubuntu))),
            ("reboot pve", Acts(reboot_pve())),
            ("reboot pve now", Acts(reboot_pve())),
            ("reboot pve right now", Acts(reboot_pve())),
            ("start backup-pbs immediately", Acts(start(pbs))),
            ("start backup-pbs at once", Acts(start(pbs))),
            ("start win11-test asap", Acts(start(win11))),
            ("start win11-test as soon as possible", Acts(start(win11))),
            ("Jarvis, start win11-test right away", Acts(start(win11))),
            ("could you start win11-test?", Acts(start(win11))),
            ("can you reboot pve please", Acts(reboot_pve())),
            ("start win11-test if you can", Acts(start(win11))),
            ("start win11-test at the moment", Acts(start(win11))),
            // An -ing form is not a command ("I am rebooting pve" reports, it does not ask).
            ("I am rebooting pve", NotUnderstood),
            ("starting win11-test", NotUnderstood),
            ("good morning jarvis, start win11-test", Acts(start(win11))),
            ("wake node agent", Acts(wake_agent())),
            (
                "stop vm 101",
                Acts(power(Power::Shutdown, Target::Guest(101))),
            ),
            (
                "force stop win11-test",
                Acts(power(Power::Stop, Target::Guest(win11))),
            ),
            (
                "engage the kill switch",
                Acts(Intent::KillSwitch(Some(true))),
            ),
            // Names that hold the letters of a negation are names.
            ("start nothing-server", Acts(start(140))),
            ("start knot", Acts(start(141))),
            (
                "shut down donut",
                Acts(power(Power::Shutdown, Target::Guest(142))),
            ),
            // Negations.
            ("don't start win11-test", Declines(start(win11))),
            ("don’t start win11-test", Declines(start(win11))),
            ("do not start ubuntu-dev", Declines(start(ubuntu))),
            ("dont reboot pve", Declines(reboot_pve())),
            ("never wake node agent", Declines(wake_agent())),
            ("NEVER wake node agent", Declines(wake_agent())),
            (
                "no need to restart jellyfin",
                Declines(power(Power::Reboot, Target::Guest(111))),
            ),
            ("you shouldn't start win11-test", Declines(start(win11))),
            (
                "please don't shut down frigate",
                Declines(power(Power::Shutdown, Target::Guest(120))),
            ),
            ("stop win11-test from starting", Declines(start(win11))),
            ("stop rebooting pve", Declines(reboot_pve())),
            ("stop waking agent", Declines(wake_agent())),
            ("halt the reboot of pve", Declines(reboot_pve())),
            (
                "stop restarting jellyfin",
                Declines(power(Power::Reboot, Target::Guest(111))),
            ),
            ("cancel the reboot of pve", Declines(reboot_pve())),
            (
                "shut down frigate? no, don't",
                Declines(power(Power::Shutdown, Target::Guest(120))),
            ),
            ("don't bother starting ubuntu-dev", Declines(start(ubuntu))),
            ("hold off on rebooting pve", Declines(reboot_pve())),
            ("start win11-test. never mind", Declines(start(win11))),
            ("reboot pve without asking", Declines(reboot_pve())),
            (
                "do not engage the kill switch",
                Declines(Intent::KillSwitch(Some(true))),
            ),
            (
                "never release the kill switch",
                Declines(Intent::KillSwitch(Some(false))),
            ),
            ("don't reboot pve tonight", Declines(reboot_pve())),
            // Negation anywhere wins over the command: the engine says it will not, and a plain command does it.
            ("reboot pve, it's not responding", Declines(reboot_pve())),
            // Times and conditions.
            (
                "start backup-pbs in 10 minutes",
                defers(start(pbs), "in 10 minutes"),
            ),
            (
                "start backup-pbs in ten minutes",
                defers(start(pbs), "in ten minutes"),
            ),
            ("reboot pve at 3am", defers(reboot_pve(), "at 3am")),
            ("reboot pve at 3 am", defers(reboot_pve(), "at 3 am")),
            (
                "start win11-test at 15:30",
                defers(start(win11), "at 15:30"),
            ),
            ("start win11-test at five", defers(start(win11), "at five")),
            ("start win11-test tonight", defers(start(win11), "tonight")),
            (
                "restart jellyfin tomorrow",
                defers(power(Power::Reboot, Target::Guest(111)), "tomorrow"),
            ),
            (
                "reboot pve tomorrow at 3am",
                defers(reboot_pve(), "tomorrow at 3am"),
            ),
            (
                "start ubuntu-dev on Friday",
                defers(start(ubuntu), "on friday"),
            ),
            ("reboot pve next week", defers(reboot_pve(), "next week")),
            (
                "shut down frigate this evening",
                defers(power(Power::Shutdown, Target::Guest(120)), "this evening"),
            ),
            (
                "reboot pve in the morning",
                defers(reboot_pve(), "in the morning"),
            ),
            (
                "start ubuntu-dev after the backup",
                defers(start(ubuntu), "after the backup"),
            ),
            (
                "when the backup finishes, reboot pve",
                defers(reboot_pve(), "when the backup finishes"),
            ),
            (
                "start win11-test once backup-pbs is done",
                defers(start(win11), "once backup-pbs is done"),
            ),
            (
                "start win11-test if the nas is idle",
                defers(start(win11), "if the nas is idle"),
            ),
            ("reboot pve later", defers(reboot_pve(), "later")),
            ("start win11-test by 5pm", defers(start(win11), "by 5pm")),
            (
                "start win11-test in a bit",
                defers(start(win11), "in a bit"),
            ),
            (
                "in half an hour, start win11-test",
                defers(start(win11), "in half an hour"),
            ),
            ("start win11-test in 5min", defers(start(win11), "in 5min")),
            (
                "reboot pve at midnight",
                defers(reboot_pve(), "at midnight"),
            ),
            ("start backup-pbs at noon", defers(start(pbs), "at noon")),
            (
                "start win11-test on the 5th",
                defers(start(win11), "on the 5th"),
            ),
            (
                "wake node agent in an hour",
                defers(wake_agent(), "in an hour"),
            ),
            (
                "remember to reboot pve tomorrow",
                defers(reboot_pve(), "tomorrow"),
            ),
            ("schedule a reboot of pve", defers(reboot_pve(), "later")),
            (
                "engage the kill switch tonight",
                defers(Intent::KillSwitch(Some(true)), "tonight"),
            ),
            (
                "start win11-test, but not now",
                defers(start(win11), "later"),
            ),
            (
                "don't start win11-test until the backup is done",
                defers(start(win11), "until the backup is done"),
            ),
            // Questions that mention a guest or an action.
            (
                "is win11-test running?",
                Answers(Intent::GuestStatus(win11)),
            ),
            (
                "what is ubuntu-dev doing",
                Answers(Intent::GuestStatus(ubuntu)),
            ),
            (
                "isn't ubuntu-dev running?",
                Answers(Intent::GuestStatus(ubuntu)),
            ),
            (
                "is backup-pbs shut down?",
                Answers(Intent::GuestStatus(pbs)),
            ),
            (
                "how do I start win11-test?",
                Answers(Intent::GuestStatus(win11)),
            ),
            ("is the kill switch on?", Answers(Intent::KillSwitch(None))),
            (
                "remember that I never start win11-test on fridays",
                Answers(Intent::Remember {
                    text: "I never start win11-test on fridays".into(),
                    tier: crate::store::memory::MemoryTier::Long,
                }),
            ),
            ("is it not time to reboot pve?", NotUnderstood),
            ("why did backup-pbs stop?", NotUnderstood),
            ("should I start win11-test?", NotUnderstood),
            ("did you start win11-test?", NotUnderstood),
            ("is it safe to reboot pve?", NotUnderstood),
            ("when did backup-pbs stop?", NotUnderstood),
            ("when will you reboot pve?", NotUnderstood),
            ("I wonder whether to reboot pve", NotUnderstood),
            // Text whose lower case differs in length, or symbols beside the words.
            ("Don't start \u{212A}NOT", Declines(start(141))),
            (
                "start win11-test in 10 minutes ⏰",
                defers(start(win11), "in 10 minutes"),
            ),
            ("start win11-test — never mind", Declines(start(win11))),
            ("İ said never start win11-test", Declines(start(win11))),
            ("reboot pve at 3\u{00A0}am", defers(reboot_pve(), "at 3 am")),
        ];
        assert!(table.len() >= 60, "{} utterances", table.len());
        let mut wrong = Vec::new();
        for (text, want) in &table {
            let got = outcome(parse(text, &w));
            if &got != want {
                wrong.push(format!("{text:?}: got {got:?}, want {want:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}

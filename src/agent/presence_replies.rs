//! The offline engine's answers about the household and the cameras: "who is home?", "is John home?", "when did
//! John leave yesterday?", "when was Sarah last seen?", "show me the front door". Each reads through the presence
//! tools (actor `agent`) and is phrased from templates, times said as a person would ("at 08:12 yesterday").

use jiff::tz::TimeZone;
use serde_json::{json, Value};

use super::offline::{actor, answer, failed, Answer};
use super::persona::Persona;
use crate::tools::{Outcome, Registry, ToolError};

pub async fn who_is_home(tools: &Registry, p: &Persona) -> Answer {
    let r = match tools.invoke(actor(), "who_is_home", json!({})).await {
        Ok(Outcome::Done { result }) => result,
        other => return failed("who_is_home", other, p),
    };
    if !r["cameras_configured"].as_bool().unwrap_or(false) {
        return answer(
            p.addressed("I have no cameras to go by, so I cannot tell you who is home"),
            Some("who_is_home"),
        );
    }
    let names = |key: &str| -> Vec<String> {
        r[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (home, away, unknown) = (names("home"), names("away"), names("unknown"));
    if home.is_empty() && away.is_empty() && unknown.is_empty() {
        return answer(
            p.addressed("I recognise nobody yet: enrol the household first (jarvis faces enroll)"),
            Some("who_is_home"),
        );
    }
    let tz = crate::tools::presence::zone();
    let mut parts = Vec::new();
    parts.push(match home.len() {
        0 => "Nobody is home, as far as the cameras know".to_string(),
        1 => format!("{} is home", home[0]),
        _ => format!("{} are home", and_list(&home)),
    });
    if let Some(a) = r["away"].as_array() {
        let gone: Vec<String> = a
            .iter()
            .map(|x| {
                let name = x["name"].as_str().unwrap_or("someone");
                match x["since"]["at"].as_str().and_then(ms_of) {
                    Some(ms) => format!("{name} went out {}", when_said(ms, &tz)),
                    None => format!("{name} is out"),
                }
            })
            .collect();
        if !gone.is_empty() {
            parts.push(and_list(&gone));
        }
    }
    if !unknown.is_empty() {
        parts.push(format!("I have not seen {} yet", and_list(&unknown)));
    }
    answer(
        format!("{}, {}.", parts.join("; "), p.address),
        Some("who_is_home"),
    )
}

pub async fn is_home(tools: &Registry, person: &str, p: &Persona) -> Answer {
    let r = match tools.invoke(actor(), "who_is_home", json!({})).await {
        Ok(Outcome::Done { result }) => result,
        other => return failed("who_is_home", other, p),
    };
    let tz = crate::tools::presence::zone();
    let find = |key: &str| -> Option<Value> {
        r[key]
            .as_array()?
            .iter()
            .find(|x| x["name"].as_str() == Some(person))
            .cloned()
    };
    let since = |x: &Value| x["since"]["at"].as_str().and_then(ms_of);
    let text = if let Some(x) = find("home") {
        match since(&x) {
            Some(ms) => format!(
                "Yes, {}: {person} has been home since {}",
                p.address,
                clock(ms, &tz)
            ),
            None => format!("Yes, {}: {person} is home", p.address),
        }
    } else if let Some(x) = find("away") {
        match since(&x) {
            Some(ms) => format!(
                "No, {}: {person} went out {}",
                p.address,
                when_said(ms, &tz)
            ),
            None => format!("No, {}: {person} is out", p.address),
        }
    } else {
        p.addressed(&format!("I have not seen {person} yet, so I cannot say"))
    };
    answer(text, Some("who_is_home"))
}

pub async fn when_did(
    tools: &Registry,
    person: &str,
    left: bool,
    when: Option<&str>,
    p: &Persona,
) -> Answer {
    let kind = if left { "left" } else { "arrived" };
    let mut args = json!({ "person": person, "kinds": [kind], "limit": 5 });
    if let Some(w) = when {
        args["when"] = json!(w);
    }
    let r = match tools.invoke(actor(), "presence_timeline", args).await {
        Ok(Outcome::Done { result }) => result,
        Err(ToolError::InvalidArguments { field, message, .. }) if field == "when" => {
            return answer(
                format!("{message}, {}.", p.address),
                Some("presence_timeline"),
            );
        }
        Err(ToolError::NotFound(_)) => {
            return answer(
                p.addressed(&format!("I don't know anyone called {person}")),
                Some("presence_timeline"),
            )
        }
        other => return failed("presence_timeline", other, p),
    };
    let tz = crate::tools::presence::zone();
    let name = r["person"]["name"].as_str().unwrap_or(person).to_string();
    let said = r["range"]["said"].as_str().map(str::to_string);
    let entries: Vec<&Value> = r["entries"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let verb = if left { "leaving" } else { "arriving" };
    if entries.is_empty() {
        let range = said.map(|s| format!(" {s}")).unwrap_or_default();
        return answer(
            p.addressed(&format!("I have no record of {name} {verb}{range}")),
            Some("presence_timeline"),
        );
    }
    let one = |e: &Value| -> String {
        let ms = e["at"].as_str().and_then(ms_of).unwrap_or(0);
        let camera = spoken_camera(e["camera"].as_str().unwrap_or("a camera"));
        if e["inferred"].as_bool().unwrap_or(false) {
            format!(
                "{name} was last seen {} by the {camera} camera, and I take it left then",
                when_said(ms, &tz)
            )
        } else {
            format!(
                "{} {} ({camera})",
                if left { "left" } else { "arrived" },
                when_said(ms, &tz)
            )
        }
    };
    let text = match (said, entries.as_slice()) {
        (_, [e]) if e["inferred"].as_bool().unwrap_or(false) => one(e),
        (_, [e]) => format!("{name} {}", one(e)),
        (Some(s), many) => {
            let times: Vec<String> = many.iter().rev().map(|e| one(e)).collect();
            format!(
                "{name} {} {s}: {}",
                count_word(many.len()),
                and_list(&times)
            )
        }
        (None, many) => format!("{name} last {}", one(many[0])),
    };
    answer(format!("{text}, {}.", p.address), Some("presence_timeline"))
}

pub async fn last_seen(tools: &Registry, person: &str, p: &Persona) -> Answer {
    let r = match tools
        .invoke(actor(), "last_seen", json!({ "person": person }))
        .await
    {
        Ok(Outcome::Done { result }) => result,
        Err(ToolError::NotFound(_)) => {
            return answer(
                p.addressed(&format!("I don't know anyone called {person}")),
                Some("last_seen"),
            )
        }
        other => return failed("last_seen", other, p),
    };
    let tz = crate::tools::presence::zone();
    let name = r["person"]["name"].as_str().unwrap_or(person);
    let Some(ms) = r["last_seen"]["at"].as_str().and_then(ms_of) else {
        return answer(
            p.addressed(&format!("I have not seen {name} on any camera yet")),
            Some("last_seen"),
        );
    };
    let camera = spoken_camera(r["last_seen"]["camera"].as_str().unwrap_or("a camera"));
    let state = match r["state"].as_str() {
        Some("home") => ", and is home".to_string(),
        Some("away") => ", and is out".to_string(),
        _ => String::new(),
    };
    answer(
        format!(
            "{name} was last seen {} by the {camera} camera{state}, {}.",
            when_said(ms, &tz),
            p.address
        ),
        Some("last_seen"),
    )
}

pub async fn show_camera(tools: &Registry, name: &str, p: &Persona) -> Answer {
    let r = match tools.invoke(actor(), "list_cameras", json!({})).await {
        Ok(Outcome::Done { result }) => result,
        other => return failed("list_cameras", other, p),
    };
    let cameras: Vec<&Value> = r["cameras"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if cameras.is_empty() {
        return answer(
            p.addressed(
                "No cameras are configured: add Frigate or an RTSP stream under [[cameras]]",
            ),
            Some("list_cameras"),
        );
    }
    let key = |s: &str| s.to_lowercase().replace(['_', '-'], " ");
    let wanted = key(name).replace(" camera", "");
    let found = cameras.iter().find(|c| {
        let n = key(c["name"].as_str().unwrap_or(""));
        !wanted.is_empty() && (n == wanted || n.contains(&wanted) || wanted.contains(&n))
    });
    let all: Vec<String> = cameras
        .iter()
        .map(|c| format!("the {}", spoken_camera(c["name"].as_str().unwrap_or(""))))
        .collect();
    let Some(c) = found.or(if cameras.len() == 1 {
        cameras.first()
    } else {
        None
    }) else {
        let asked = if wanted.is_empty() {
            "which one".to_string()
        } else {
            format!("no camera called {wanted}")
        };
        return answer(
            p.addressed(&format!("I have {asked}; there is {}", and_list(&all))),
            Some("list_cameras"),
        );
    };
    let spoken = spoken_camera(c["name"].as_str().unwrap_or(""));
    let shown = tools
        .invoke(actor(), "show_camera", json!({ "camera": c["name"] }))
        .await;
    if !matches!(shown, Ok(Outcome::Done { .. })) {
        return failed("show_camera", shown, p);
    }
    let text = match c["state"].as_str() {
        Some("live") => format!("The {spoken}, {}: it is on the wall", p.address),
        Some(state) => format!(
            "The {spoken} camera is {state}{}, {}",
            c["detail"]
                .as_str()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default(),
            p.address
        ),
        None => p.addressed(&format!("The {spoken} camera")),
    };
    answer(format!("{text}."), Some("show_camera"))
}

/// The household for a model's context: who is home, out, not seen; the cameras and how they stand. Empty when
/// there is neither a camera nor a person. Changes only when someone comes or goes (so the prompt cache holds).
pub fn household_summary(w: &crate::state::World, tz: &TimeZone) -> String {
    let pr = &w.presence;
    if !pr.cameras_configured && pr.people.is_empty() {
        return String::new();
    }
    use crate::vision::presence::State;
    let list = |s: State| -> String {
        pr.people
            .iter()
            .filter(|p| p.state == s)
            .map(|p| match p.since_ms {
                Some(ms) => format!(
                    "{} (since {})",
                    p.name,
                    when_said(ms, tz).trim_start_matches("at ")
                ),
                None => p.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from("\n## The household (from the cameras)\n");
    for (label, s) in [
        ("Home", State::Home),
        ("Out", State::Away),
        ("Not seen yet", State::Unknown),
    ] {
        let l = list(s);
        if !l.is_empty() {
            out.push_str(&format!("- {label}: {l}\n"));
        }
    }
    let cams: Vec<String> = pr
        .cameras
        .iter()
        .map(|c| format!("{} ({})", c.info.name, c.state))
        .collect();
    if cams.is_empty() {
        out.push_str("- No cameras are configured.\n");
    } else {
        out.push_str(&format!("- Cameras: {}\n", cams.join(", ")));
    }
    out
}

/// "front_door" → "front door".
fn spoken_camera(name: &str) -> String {
    name.replace(['_', '-'], " ")
}

fn ms_of(rfc3339: &str) -> Option<u64> {
    rfc3339
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond().max(0) as u64)
}

fn clock(ms: u64, tz: &TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.to_zoned(tz.clone()).strftime("%H:%M").to_string())
        .unwrap_or_default()
}

/// "at 08:12", "at 08:12 yesterday", "on Tuesday at 08:12", "on 24 November at 08:12".
pub fn when_said(ms: u64, tz: &TimeZone) -> String {
    let Ok(t) = jiff::Timestamp::from_millisecond(ms as i64) else {
        return String::new();
    };
    let z = t.to_zoned(tz.clone());
    let today = jiff::Zoned::now().with_time_zone(tz.clone()).date();
    let days = (today - z.date()).get_days();
    let hm = z.strftime("%H:%M").to_string();
    match days {
        0 => format!("at {hm}"),
        1 => format!("at {hm} yesterday"),
        2..=6 => format!("on {} at {hm}", z.strftime("%A")),
        _ => format!("on {} at {hm}", z.strftime("%-d %B")),
    }
}

fn count_word(n: usize) -> &'static str {
    match n {
        1 => "once",
        2 => "twice",
        3 => "three times",
        4 => "four times",
        _ => "several times",
    }
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

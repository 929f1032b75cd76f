//! The offline fast path: an [`Intent`] carried out through the tool registry (actor `agent`) and answered in
//! the persona from templates. Reads answer from the state the read tool saw; after a write the engine reads the
//! affected guest again before it says it worked. A declined action is acknowledged and an action for later is
//! answered honestly (there is no scheduler); neither calls a tool.

use serde_json::{json, Value};

use super::intent::{Intent, Power, Target};
use super::persona::Persona;
use super::presence_replies;
use super::Asker;
use crate::state::World;
use crate::tools::{Outcome, Registry, ToolError};

/// How long the engine waits for the state to show a power action's effect before it reports what it sees.
const READ_BACK_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The actor the agent's calls carry in the audit log (and its approvals): `agent`, or `voice` when the question
/// was spoken in the room.
pub const ACTOR: &str = "agent";
/// The actor when the asker is a voice.
pub const VOICE_ACTOR: &str = "voice";

tokio::task_local! {
    /// Who the tools are acting for, for the length of one reply: set by `Agent::reply_streaming` from the asker,
    /// read by every tool call the engine or the model makes in that reply.
    static ACTING_FOR: &'static str;
}

/// The actor of the reply being made (`agent` outside one).
pub fn actor() -> &'static str {
    ACTING_FOR.try_with(|a| *a).unwrap_or(ACTOR)
}

/// Runs `reply` with its tool calls acting for `actor`.
pub async fn acting_for<F: std::future::Future>(actor: &'static str, reply: F) -> F::Output {
    ACTING_FOR.scope(actor, reply).await
}

/// What the engine did: the reply, and the tool it called (for the API and the tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub tool: Option<String>,
}

pub(super) fn answer(text: String, tool: Option<&str>) -> Answer {
    Answer {
        text,
        tool: tool.map(str::to_string),
    }
}

/// Carries out `intent` and phrases the result.
pub async fn carry_out(
    intent: &Intent,
    tools: &Registry,
    persona: &Persona,
    asker: Asker,
) -> Answer {
    let p = persona;
    match intent {
        Intent::ClusterStatus => read(tools, "cluster_status", json!({}), p, cluster_summary).await,
        Intent::NodeStatus(node) => {
            let node = node.clone();
            read(
                tools,
                "node_status",
                json!({ "node": node }),
                p,
                move |w, p| node_summary(w, &node, p),
            )
            .await
        }
        Intent::GuestStatus(vmid) => {
            let vmid = *vmid;
            read(
                tools,
                "guest_status",
                json!({ "vmid": vmid }),
                p,
                move |w, p| guest_summary(w, vmid, p),
            )
            .await
        }
        Intent::Storage => read(tools, "storage_status", json!({}), p, storage_summary).await,
        Intent::Temperatures(node) => {
            let args = match node {
                Some(n) => json!({ "node": n }),
                None => json!({}),
            };
            match tools.invoke(actor(), "node_temperatures", args).await {
                Ok(Outcome::Done { result }) => {
                    answer(temperatures(&result, p), Some("node_temperatures"))
                }
                other => failed("node_temperatures", other, p),
            }
        }
        Intent::Power { action, target } => power(tools, *action, target, p).await,
        Intent::Wake(node) => match tools
            .invoke(actor(), "wake_on_lan", json!({ "node": node }))
            .await
        {
            Ok(Outcome::Done { .. }) => answer(
                p.addressed(&format!(
                    "Magic packet sent to {node}. It should be with us shortly."
                )),
                Some("wake_on_lan"),
            ),
            other => failed("wake_on_lan", other, p),
        },
        Intent::KillSwitch(want) => kill_switch(tools, *want, p, asker),
        Intent::WhoIsHome => presence_replies::who_is_home(tools, p).await,
        Intent::IsHome(person) => presence_replies::is_home(tools, person, p).await,
        Intent::WhenDid { person, left, when } => {
            presence_replies::when_did(tools, person, *left, when.as_deref(), p).await
        }
        Intent::LastSeen(person) => presence_replies::last_seen(tools, person, p).await,
        Intent::Remember { text, tier } => {
            match tools
                .invoke(actor(), "remember", json!({ "text": text, "tier": tier }))
                .await
            {
                Ok(Outcome::Done { .. }) => answer(
                    format!("Noted, {}: {}.", p.address, text.trim_end_matches('.')),
                    Some("remember"),
                ),
                other => failed("remember", other, p),
            }
        }
        Intent::Recall(about) => {
            let args = match about {
                Some(a) => json!({ "about": a, "limit": 5 }),
                None => json!({ "limit": 5 }),
            };
            match tools.invoke(actor(), "recall", args).await {
                Ok(Outcome::Done { result }) => {
                    answer(recalled(&result, about.as_deref(), p), Some("recall"))
                }
                other => failed("recall", other, p),
            }
        }
        Intent::Forget(about) => match tools
            .invoke(actor(), "forget", json!({ "about": about }))
            .await
        {
            Ok(Outcome::Done { result }) => answer(forgotten(&result, p), Some("forget")),
            Err(ToolError::NotFound(_)) => answer(
                p.addressed(&format!("I have nothing noted about {about}")),
                Some("forget"),
            ),
            other => failed("forget", other, p),
        },
        Intent::Declined(action) => answer(declined(action, &tools.world(), p), None),
        Intent::Deferred { action, when } => {
            answer(deferred(action, when, &tools.world(), p), None)
        }
        Intent::ShowCamera(name) => presence_replies::show_camera(tools, name, p).await,
    }
}

/// An action in words: "start" / "started" / "win11-test".
struct ActionWords {
    verb: &'static str,
    done: &'static str,
    object: String,
}

fn action_words(intent: &Intent, w: &World) -> ActionWords {
    let words = |verb, done, object: &str| ActionWords {
        verb,
        done,
        object: object.to_string(),
    };
    match intent {
        Intent::Power { action, target } => {
            let object = match target {
                Target::Node(node) => node.clone(),
                Target::Guest(vmid) => w
                    .cluster
                    .guest(*vmid)
                    .map(|g| g.name.clone())
                    .unwrap_or_else(|| format!("guest {vmid}")),
            };
            let (verb, done) = match action {
                Power::Start => ("start", "started"),
                Power::Shutdown => ("shut down", "shut down"),
                Power::Stop => ("stop", "stopped"),
                Power::Reboot => ("reboot", "rebooted"),
            };
            words(verb, done, &object)
        }
        Intent::Wake(node) => words("wake", "woken", node),
        Intent::KillSwitch(Some(true)) => words("engage", "engaged", "the kill switch"),
        Intent::KillSwitch(_) => words("release", "released", "the kill switch"),
        _ => words("do", "done", "that"),
    }
}

/// "Very well, sir — I shan't start win11-test."
fn declined(action: &Intent, w: &World, p: &Persona) -> String {
    let a = action_words(action, w);
    format!(
        "Very well, {} — I shan't {} {}.",
        p.address, a.verb, a.object
    )
}

/// The engine has no scheduler: it says so, repeats the time it was given and that nothing was done.
fn deferred(action: &Intent, when: &str, w: &World, p: &Persona) -> String {
    let a = action_words(action, w);
    format!(
        "I cannot schedule anything yet, {}: nothing is set for \"{when}\", and I have not {} {}. Ask me again \
         when it is time.",
        p.address, a.done, a.object
    )
}

fn notes(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["text"].as_str())
                .map(|t| t.trim_end_matches('.').to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn recalled(result: &Value, about: Option<&str>, p: &Persona) -> String {
    let found = notes(&result["memories"]);
    match (found.as_slice(), about) {
        ([], Some(a)) => p.addressed(&format!("I have nothing noted about {a}")),
        ([], None) => p.addressed("I have nothing noted at present"),
        ([one], _) => p.addressed(&format!("I have it noted that {one}")),
        (many, _) => format!("I have noted, {}: {}.", p.address, many.join("; ")),
    }
}

fn forgotten(result: &Value, p: &Persona) -> String {
    if let Some(t) = result["forgotten"]["text"].as_str() {
        return p.addressed(&format!("Forgotten: {}", t.trim_end_matches('.')));
    }
    let many = notes(&result["candidates"]);
    format!(
        "Several notes fit, {}: {}. Which shall I forget?",
        p.address,
        many.join("; ")
    )
}

async fn read(
    tools: &Registry,
    tool: &str,
    args: Value,
    p: &Persona,
    phrase: impl FnOnce(&World, &Persona) -> String,
) -> Answer {
    match tools.invoke(actor(), tool, args).await {
        Ok(Outcome::Done { .. }) => answer(phrase(&tools.world(), p), Some(tool)),
        other => failed(tool, other, p),
    }
}

pub(super) fn failed(tool: &str, outcome: Result<Outcome, ToolError>, p: &Persona) -> Answer {
    let text = match outcome {
        Ok(Outcome::PendingApproval { approval, .. }) => p.addressed(&format!(
            "That needs your approval first: {}. The card is on the screen, or `jarvis approve {}`",
            approval.summary, approval.id
        )),
        Ok(Outcome::Done { .. }) => p.addressed("Done"),
        Err(ToolError::KillSwitch) => {
            p.addressed("The kill switch is on; I can do nothing of the sort until you release it")
        }
        Err(ToolError::NotFound(m)) | Err(ToolError::Failed(m)) => {
            format!("I'm afraid that did not work, {}: {m}", p.address)
        }
        Err(e) => format!("I'm afraid that did not work, {}: {e}", p.address),
    };
    answer(text, Some(tool))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn number_word(n: usize) -> String {
    [
        "no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ]
    .get(n)
    .map(|s| s.to_string())
    .unwrap_or_else(|| n.to_string())
}

pub fn cluster_summary(w: &World, p: &Persona) -> String {
    let c = &w.cluster;
    if c.nodes.is_empty() {
        return p.addressed("I have not heard from Proxmox yet");
    }
    let online = c.nodes.iter().filter(|n| n.online).count();
    let guests: Vec<_> = c.guests.iter().filter(|g| !g.template).collect();
    let running = guests.iter().filter(|g| g.status == "running").count();
    let mut parts = Vec::new();
    if online == c.nodes.len() {
        parts.push(format!(
            "All {} nodes are online and {running} of {} guests are running.",
            number_word(online),
            guests.len()
        ));
    } else {
        let down: Vec<_> = c
            .nodes
            .iter()
            .filter(|n| !n.online)
            .map(|n| n.name.as_str())
            .collect();
        parts.push(format!(
            "{} of {} nodes are online; {} {} down. {running} of {} guests are running.",
            online,
            c.nodes.len(),
            down.join(" and "),
            if down.len() == 1 { "is" } else { "are" },
            guests.len()
        ));
    }
    if c.quorate == Some(false) {
        parts.push("The cluster has lost quorum.".into());
    }
    if let Some(s) = c
        .storages
        .iter()
        .filter(|s| s.total > 0)
        .max_by(|a, b| a.used_pct().total_cmp(&b.used_pct()))
    {
        parts.push(format!(
            "The fullest storage is {} at {:.0}%.",
            s.storage,
            s.used_pct()
        ));
    }
    let hottest = c
        .nodes
        .iter()
        .filter_map(|n| {
            n.temperatures
                .iter()
                .map(|t| t.celsius)
                .reduce(f64::max)
                .map(|t| (n.name.as_str(), t))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((name, t)) = hottest {
        parts.push(format!("The warmest node is {name} at {t:.0}°C."));
    }
    if c.stale.is_some() {
        parts.push(
            "Mind you, Proxmox has stopped answering; these are the last figures I had.".into(),
        );
    }
    let last = parts.pop().unwrap_or_default();
    parts.push(p.addressed(&last));
    parts.join(" ")
}

pub fn node_summary(w: &World, node: &str, p: &Persona) -> String {
    let Some(n) = w.cluster.node(node) else {
        return p.addressed(&format!("I know of no node called {node}"));
    };
    if !n.online {
        return p.addressed(&format!("{} is offline", n.name));
    }
    let days = n.uptime / 86_400;
    let temp = n
        .temperatures
        .iter()
        .map(|t| t.celsius)
        .reduce(f64::max)
        .map(|t| format!(", running at {t:.0}°C"))
        .unwrap_or_default();
    p.addressed(&format!(
        "{} is online, up {}; CPU at {:.0}% of {} cores, memory {:.1} of {:.0} GiB{temp}",
        n.name,
        plural(days as usize, "day", "days"),
        n.cpu * 100.0,
        n.maxcpu,
        n.mem as f64 / (1u64 << 30) as f64,
        n.maxmem as f64 / (1u64 << 30) as f64
    ))
}

pub fn guest_summary(w: &World, vmid: u32, p: &Persona) -> String {
    let Some(g) = w.cluster.guest(vmid) else {
        return p.addressed(&format!("I know of no guest {vmid}"));
    };
    let kind = if g.kind == crate::cluster::model::GuestKind::Lxc {
        "CT"
    } else {
        "VM"
    };
    if g.status == "running" {
        p.addressed(&format!(
            "{} ({kind} {} on {}) is running: CPU {:.0}%, memory {:.1} GiB",
            g.name,
            g.vmid,
            g.node,
            g.cpu * 100.0,
            g.mem as f64 / (1u64 << 30) as f64
        ))
    } else {
        p.addressed(&format!(
            "{} ({kind} {} on {}) is {}",
            g.name, g.vmid, g.node, g.status
        ))
    }
}

pub fn storage_summary(w: &World, p: &Persona) -> String {
    let mut list: Vec<_> = w.cluster.storages.iter().filter(|s| s.total > 0).collect();
    list.sort_by(|a, b| b.used_pct().total_cmp(&a.used_pct()));
    list.dedup_by(|a, b| a.shared && b.shared && a.storage == b.storage);
    let Some(first) = list.first() else {
        return p.addressed("I see no storage at all");
    };
    let tib = |b: u64| b as f64 / (1u64 << 40) as f64;
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let size = |s: &crate::cluster::model::StorageView| {
        if s.total >= 1 << 40 {
            format!("{:.1} of {:.1} TiB", tib(s.used), tib(s.total))
        } else {
            format!("{:.0} of {:.0} GiB", gib(s.used), gib(s.total))
        }
    };
    let where_ = |s: &crate::cluster::model::StorageView| {
        if s.shared {
            "shared".to_string()
        } else {
            format!("on {}", s.node)
        }
    };
    let mut text = format!(
        "The fullest is {} ({}) at {:.0}%, {}.",
        first.storage,
        where_(first),
        first.used_pct(),
        size(first)
    );
    if let Some(next) = list.get(1) {
        text.push_str(&format!(
            " Next is {} ({}) at {:.0}%.",
            next.storage,
            where_(next),
            next.used_pct()
        ));
    }
    let over: Vec<_> = list.iter().filter(|s| s.used_pct() >= 80.0).collect();
    if over.is_empty() {
        text.push_str(" Nothing is near full.");
    } else {
        text.push_str(&format!(
            " {} above 80%.",
            plural(over.len(), "storage is", "storages are")
        ));
    }
    let last_stop = text.rfind('.').unwrap_or(text.len());
    text.truncate(last_stop);
    p.addressed(&text)
}

fn temperatures(result: &Value, p: &Persona) -> String {
    let Some(map) = result.as_object() else {
        return p.addressed("I could not read any temperatures");
    };
    let mut parts = Vec::new();
    for (node, v) in map {
        match v.as_array() {
            Some(sensors) => {
                let max = sensors
                    .iter()
                    .filter_map(|s| s["celsius"].as_f64())
                    .reduce(f64::max);
                match max {
                    Some(t) => parts.push(format!("{node} {t:.0}°C")),
                    None => parts.push(format!("{node} has no sensors")),
                }
            }
            None => parts.push(format!("{node} did not answer")),
        }
    }
    if parts.is_empty() {
        return p.addressed("No node is online to ask");
    }
    p.addressed(&format!("Temperatures: {}", parts.join(", ")))
}

async fn power(tools: &Registry, action: Power, target: &Target, p: &Persona) -> Answer {
    let world = tools.world();
    match target {
        Target::Node(node) => {
            if action != Power::Reboot {
                return answer(
                    p.addressed(&format!(
                        "I can reboot {node} or wake it, but not power it down from here"
                    )),
                    None,
                );
            }
            match tools
                .invoke(actor(), "reboot_node", json!({ "node": node }))
                .await
            {
                Ok(Outcome::Done { .. }) => answer(
                    p.addressed(&format!("{node} is rebooting")),
                    Some("reboot_node"),
                ),
                other => failed("reboot_node", other, p),
            }
        }
        Target::Guest(vmid) => {
            let Some(g) = world.cluster.guest(*vmid) else {
                return answer(p.addressed(&format!("I know of no guest {vmid}")), None);
            };
            let running = g.status == "running";
            let (tool, verb) = match action {
                Power::Start if running => {
                    return answer(p.addressed(&format!("{} is already running", g.name)), None);
                }
                Power::Shutdown | Power::Stop | Power::Reboot if !running => {
                    return answer(
                        p.addressed(&format!("{} is not running; it is {}", g.name, g.status)),
                        None,
                    );
                }
                Power::Start => ("start_guest", "started"),
                Power::Shutdown => ("shutdown_guest", "shut down"),
                Power::Stop => ("stop_guest", "stopped"),
                Power::Reboot => ("reboot_guest", "rebooted"),
            };
            match tools.invoke(actor(), tool, json!({ "vmid": vmid })).await {
                Ok(Outcome::Done { .. }) => {
                    // Read the guest again before claiming anything; the poller shows the change within a poll or
                    // two of the task's end, so wait for that (a few seconds at most).
                    let want = if matches!(action, Power::Start | Power::Reboot) {
                        "running"
                    } else {
                        "stopped"
                    };
                    let deadline = tokio::time::Instant::now() + READ_BACK_LIMIT;
                    let mut now = String::from("unknown");
                    loop {
                        if let Ok(Outcome::Done { result }) = tools
                            .invoke(actor(), "guest_status", json!({ "vmid": vmid }))
                            .await
                        {
                            now = result["status"].as_str().unwrap_or("unknown").to_string();
                        }
                        if now == want || tokio::time::Instant::now() >= deadline {
                            break;
                        }
                        tools
                            .next_world(
                                deadline.saturating_duration_since(tokio::time::Instant::now()),
                            )
                            .await;
                    }
                    let name = &g.name;
                    let text = match (action, now.as_str()) {
                        (Power::Start | Power::Reboot, "running") => {
                            format!("{name} is {verb} and running")
                        }
                        (Power::Shutdown | Power::Stop, "stopped") => format!("{name} is {verb}"),
                        (_, now) => format!(
                            "The task for {name} finished, but Proxmox still reports it {now}"
                        ),
                    };
                    answer(p.addressed(&text), Some(tool))
                }
                other => failed(tool, other, p),
            }
        }
    }
}

fn kill_switch(tools: &Registry, want: Option<bool>, p: &Persona, asker: Asker) -> Answer {
    let on = tools.kill_switch();
    let text = match want {
        None if on => p.addressed("The kill switch is on; every action is refused"),
        None => p.addressed("The kill switch is off; actions go through the usual checks"),
        Some(true) if on => p.addressed("The kill switch is already on"),
        Some(false) if !on => p.addressed("The kill switch is already off"),
        Some(false) if !asker.operator => {
            p.addressed("Only the operator can release the kill switch: on the screen, or `jarvis killswitch off`")
        }
        Some(want) => match tools.set_kill_switch(want) {
            Ok(()) if want => p.addressed("Kill switch engaged. Nothing moves until you say so"),
            Ok(()) => p.addressed("Kill switch released"),
            Err(e) => format!("I could not set the kill switch, {}: {e}", p.address),
        },
    };
    answer(text, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::ClusterSnapshot;
    use crate::kiosk::controllers::cluster::tests::{guest, node};

    fn world() -> World {
        let mut win11 = guest(113, "pve", "stopped");
        win11.name = "win11-test".into();
        World {
            cluster: ClusterSnapshot {
                nodes: vec![node("pve", true), node("agent", true)],
                guests: vec![win11],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn declined_and_deferred_actions_are_said_plainly() {
        let (w, p) = (world(), Persona::default());
        let start = Intent::Power {
            action: Power::Start,
            target: Target::Guest(113),
        };
        assert_eq!(
            declined(&start, &w, &p),
            "Very well, sir — I shan't start win11-test."
        );
        assert_eq!(
            declined(&Intent::Wake("agent".into()), &w, &p),
            "Very well, sir — I shan't wake agent."
        );
        assert_eq!(
            declined(&Intent::KillSwitch(Some(false)), &w, &p),
            "Very well, sir — I shan't release the kill switch."
        );
        let reboot = Intent::Power {
            action: Power::Reboot,
            target: Target::Node("pve".into()),
        };
        assert_eq!(
            deferred(&reboot, "at 3am", &w, &p),
            "I cannot schedule anything yet, sir: nothing is set for \"at 3am\", and I have not rebooted pve. \
             Ask me again when it is time."
        );
        let gone = Intent::Power {
            action: Power::Shutdown,
            target: Target::Guest(999),
        };
        assert!(declined(&gone, &w, &p).contains("shut down guest 999"));
    }
}

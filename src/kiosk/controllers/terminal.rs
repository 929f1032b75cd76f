//! The terminal panel (`TerminalAdapter`): pick a host, type a command, watch the output arrive. Commands go
//! through the registry's `run_command` as actor `kiosk`, so the allowlist decides what runs at once and anything
//! else becomes an approval card. Also where the kiosk reports the outcome of any of its own tool calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use slint::{ComponentHandle, Model, SharedString};

use crate::kiosk::controllers::cluster::set_if_changed;
use crate::kiosk::ui::{AppWindow, TermLine, TerminalAdapter};
use crate::kiosk::{rows, KioskContext, ACTOR};
use crate::tools::Outcome;

/// Lines kept in the terminal.
pub const TERMINAL_ROWS: usize = 500;
/// Commands kept in the history.
pub const HISTORY: usize = 100;

pub const OUT: i32 = 0;
pub const ERR: i32 = 1;
pub const CMD: i32 = 2;
pub const NOTE: i32 = 3;

/// Shell-style command history: up walks back, down walks forward, past the newest is an empty line.
#[derive(Debug, Default)]
pub struct History {
    entries: Vec<String>,
    cursor: Option<usize>,
}

impl History {
    pub fn push(&mut self, cmd: &str) {
        if self.entries.last().map(String::as_str) != Some(cmd) {
            self.entries.push(cmd.to_string());
            if self.entries.len() > HISTORY {
                self.entries.remove(0);
            }
        }
        self.cursor = None;
    }

    pub fn older(&mut self) -> String {
        let i = match self.cursor {
            None if self.entries.is_empty() => return String::new(),
            None => self.entries.len() - 1,
            Some(i) => i.saturating_sub(1),
        };
        self.cursor = Some(i);
        self.entries[i].clone()
    }

    pub fn newer(&mut self) -> String {
        match self.cursor {
            Some(i) if i + 1 < self.entries.len() => {
                self.cursor = Some(i + 1);
                self.entries[i + 1].clone()
            }
            _ => {
                self.cursor = None;
                String::new()
            }
        }
    }
}

/// The kiosk's own calls waiting for approval, by approval id: approving one on the kiosk runs it.
#[derive(Debug, Clone, Default)]
pub struct OwnCalls(Arc<Mutex<BTreeMap<String, (String, Value)>>>);

impl OwnCalls {
    pub fn insert(&self, approval: &str, tool: &str, args: Value) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(approval.to_string(), (tool.to_string(), args));
        }
    }

    pub fn take(&self, approval: &str) -> Option<(String, Value)> {
        self.0.lock().ok()?.remove(approval)
    }
}

/// Output text to terminal lines (a trailing newline makes no empty line).
pub fn lines(text: &str, kind: i32) -> Vec<TermLine> {
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .filter(|_| !text.is_empty())
        .map(|l| TermLine {
            text: l.trim_end_matches('\r').into(),
            kind,
        })
        .collect()
}

/// What a finished call adds to the terminal. `streamed`: stdout already arrived live.
pub fn report(
    tool: &str,
    result: &Result<Outcome, crate::tools::ToolError>,
    streamed: bool,
) -> Vec<TermLine> {
    match result {
        Ok(Outcome::Done { result }) if tool == "run_command" => {
            let mut out = Vec::new();
            if !streamed {
                out.extend(lines(result["stdout"].as_str().unwrap_or(""), OUT));
            }
            out.extend(lines(result["stderr"].as_str().unwrap_or(""), ERR));
            let code = result["exit_code"].as_i64().unwrap_or(-1);
            if code != 0 {
                out.push(TermLine {
                    text: format!("exit {code}").into(),
                    kind: ERR,
                });
            }
            if result["truncated"].as_bool() == Some(true) {
                out.push(TermLine {
                    text: "(output truncated)".into(),
                    kind: NOTE,
                });
            }
            out
        }
        Ok(Outcome::Done { result }) => {
            let mut text = result.to_string();
            if text.len() > 300 {
                let cut = (0..=300)
                    .rev()
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                text.truncate(cut);
                text.push('…');
            }
            vec![TermLine {
                text: format!("{tool}: done {text}").into(),
                kind: NOTE,
            }]
        }
        Ok(Outcome::PendingApproval { approval, .. }) => vec![TermLine {
            text: format!(
                "Needs your approval: {} (approve it on the card)",
                approval.summary
            )
            .into(),
            kind: NOTE,
        }],
        Err(e) => vec![TermLine {
            text: format!("{tool}: {e}").into(),
            kind: ERR,
        }],
    }
}

/// Appends lines and trims the oldest (UI thread).
pub fn append(w: &AppWindow, new: &[TermLine]) {
    let handle = w.global::<TerminalAdapter>().get_lines();
    let Some(model) = handle.as_any().downcast_ref::<slint::VecModel<TermLine>>() else {
        return;
    };
    for l in new {
        model.push(l.clone());
    }
    let extra = model.row_count().saturating_sub(TERMINAL_ROWS);
    for _ in 0..extra {
        model.remove(0);
    }
}

/// Runs a tool as the kiosk and writes what happened to the terminal; output of commands streams in as it comes.
pub fn invoke_and_report(
    ctx: &KioskContext,
    weak: slint::Weak<AppWindow>,
    tool: &str,
    args: Value,
) {
    let (ctx, tool) = (ctx.clone(), tool.to_string());
    let runtime = ctx.runtime.clone();
    runtime.spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
        let forward = {
            let (ui, weak) = (ctx.ui.clone(), weak.clone());
            tokio::spawn(async move {
                let mut streamed = false;
                while let Some(chunk) = rx.recv().await {
                    streamed |= !chunk.is_empty();
                    let new = lines(&chunk, OUT);
                    let weak = weak.clone();
                    ui.post(move || {
                        if let Some(w) = weak.upgrade() {
                            append(&w, &new);
                        }
                    });
                }
                streamed
            })
        };
        let result = ctx
            .tools
            .invoke_live(ACTOR, &tool, args.clone(), Some(tx))
            .await;
        let streamed = forward.await.unwrap_or(false);
        if let Ok(Outcome::PendingApproval { approval, .. }) = &result {
            ctx.own_calls.insert(&approval.id, &tool, args);
        }
        let new = report(&tool, &result, streamed);
        ctx.ui.post(move || {
            if let Some(w) = weak.upgrade() {
                append(&w, &new);
                w.global::<TerminalAdapter>().set_busy(false);
            }
        });
    });
}

/// The hosts the terminal offers: the nodes, then the extra hosts (the Docker VM); none before the first poll,
/// so that the first node, not the Docker VM, is selected at start.
pub fn hosts(c: &crate::cluster::model::ClusterSnapshot, extra: &[String]) -> Vec<SharedString> {
    if c.nodes.is_empty() {
        return Vec::new();
    }
    c.nodes
        .iter()
        .map(|n| n.name.as_str())
        .chain(extra.iter().map(String::as_str))
        .map(SharedString::from)
        .collect()
}

/// Keeps the host list current and a valid host selected (UI thread).
pub fn apply_hosts(w: &AppWindow, hosts: &[SharedString]) {
    let a = w.global::<TerminalAdapter>();
    rows::sync_handle(&a.get_hosts(), hosts);
    if !hosts.iter().any(|h| *h == a.get_host()) {
        if let Some(first) = hosts.first() {
            set_if_changed(a.get_host(), first, |v| a.set_host(v));
        }
    }
}

pub fn setup(w: &AppWindow, ctx: &KioskContext) {
    let a = w.global::<TerminalAdapter>();
    a.set_hosts(rows::new_model::<SharedString>().1);
    a.set_host(SharedString::new());
    a.set_lines(rows::new_model::<TermLine>().1);
    let history = std::rc::Rc::new(std::cell::RefCell::new(History::default()));
    {
        let history = history.clone();
        a.on_history_previous(move || history.borrow_mut().older().into());
    }
    {
        let history = history.clone();
        a.on_history_next(move || history.borrow_mut().newer().into());
    }
    let ctx = ctx.clone();
    let weak = w.as_weak();
    a.on_run(move |host, command| {
        let Some(w) = weak.upgrade() else { return };
        let command = command.trim().to_string();
        if command.is_empty() {
            return;
        }
        history.borrow_mut().push(&command);
        append(
            &w,
            &[TermLine {
                text: format!("{host} $ {command}").into(),
                kind: CMD,
            }],
        );
        if command == "clear" {
            rows::sync_handle(&w.global::<TerminalAdapter>().get_lines(), &[]);
            return;
        }
        w.global::<TerminalAdapter>().set_busy(true);
        invoke_and_report(
            &ctx,
            weak.clone(),
            "run_command",
            json!({ "host": host.as_str(), "command": command }),
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_walks_like_a_shell() {
        let mut h = History::default();
        assert_eq!(h.older(), "");
        h.push("uptime");
        h.push("df -h");
        h.push("df -h");
        assert_eq!(h.older(), "df -h");
        assert_eq!(h.older(), "uptime");
        assert_eq!(h.older(), "uptime");
        assert_eq!(h.newer(), "df -h");
        assert_eq!(h.newer(), "");
        h.push("free -m");
        assert_eq!(h.older(), "free -m");
    }

    #[test]
    fn output_becomes_lines_and_failures_say_so() {
        assert_eq!(lines("a\nb\n", OUT).len(), 2);
        assert!(lines("", OUT).is_empty());
        let done = Ok(Outcome::Done {
            result: json!({"exit_code": 127, "stdout": "", "stderr": "sh: nope: not found\n", "truncated": false}),
        });
        let r = report("run_command", &done, true);
        assert_eq!(
            r.iter()
                .map(|l| (l.text.to_string(), l.kind))
                .collect::<Vec<_>>(),
            [
                ("sh: nope: not found".to_string(), ERR),
                ("exit 127".to_string(), ERR)
            ]
        );
        let err = Err(crate::tools::ToolError::KillSwitch);
        assert_eq!(report("start_guest", &err, false)[0].kind, ERR);
    }
}

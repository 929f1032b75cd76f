//! The activity feed (`JarvisAdapter.feed`): the event log in plain words, newest first — seeded from the store
//! at start, then live from the bus. Routine successful reads are left out, as the event log leaves them out.

use slint::{ComponentHandle, Model};

use crate::bus::{Event, FillLevel, Stamped};
use crate::kiosk::ui::{AppWindow, FeedItem, JarvisAdapter};
use crate::kiosk::{format, rows, KioskContext};

/// Rows kept in the feed; older ones fall off the end.
pub const FEED_ROWS: usize = 200;

pub const INFO: i32 = 0;
pub const WARNING: i32 = 1;
pub const CRITICAL: i32 = 2;
pub const QUIET: i32 = 3;

/// One event in words, with its level; `None` for events the feed does not show.
pub fn describe(e: &Event) -> Option<(String, i32)> {
    let line = match e {
        Event::NodeOffline { node } => (format!("Node {node} went offline"), CRITICAL),
        Event::NodeOnline { node } => (format!("Node {node} is back online"), INFO),
        Event::GuestStateChanged {
            vmid,
            name,
            node,
            from,
            to,
            ..
        } => match (from.as_deref(), to.as_deref()) {
            (None, Some(to)) => (format!("{name} ({vmid}) appeared on {node}, {to}"), QUIET),
            (Some(_), None) => (format!("{name} ({vmid}) left {node}"), QUIET),
            (_, Some(to)) => (
                format!("{name} ({vmid}) on {node} is now {to}"),
                if to == "running" { INFO } else { WARNING },
            ),
            (None, None) => return None,
        },
        Event::StorageThreshold {
            storage,
            node,
            used_pct,
            to,
            ..
        } => {
            let level = match to {
                FillLevel::Normal => INFO,
                FillLevel::Warning => WARNING,
                FillLevel::Critical => CRITICAL,
            };
            (
                format!("Storage {storage} on {node} at {used_pct:.0}%"),
                level,
            )
        }
        Event::TaskFailed {
            node,
            task_type,
            id,
            exitstatus,
            ..
        } => (
            format!("Task {task_type} {id} on {node} failed: {exitstatus}"),
            CRITICAL,
        ),
        Event::PveStale(s) => (
            format!("Proxmox VE stopped answering: {}", s.reason),
            CRITICAL,
        ),
        Event::PveRecovered { after_ms } => (
            format!("Proxmox VE answers again after {} s", after_ms / 1000),
            INFO,
        ),
        Event::ActionStarted {
            node, vmid, action, ..
        } => (format!("{action} of {vmid} on {node} started"), QUIET),
        Event::ActionFinished {
            node,
            vmid,
            action,
            exitstatus,
            ..
        } => (
            format!("{action} of {vmid} on {node} finished: {exitstatus}"),
            if exitstatus == "OK" { INFO } else { CRITICAL },
        ),
        Event::ToolCalled {
            actor,
            tool,
            outcome,
            detail,
            tier,
            ..
        } => {
            // Routine reads are noise; a pending call is told by its ApprovalRequested.
            if (*tier == 0 && outcome == "ok") || outcome == "pending" {
                return None;
            }
            let level = match outcome.as_str() {
                "ok" | "pending" => INFO,
                "refused" => WARNING,
                _ => WARNING,
            };
            let what = if detail.is_empty() {
                outcome.clone()
            } else {
                format!("{outcome}: {detail}")
            };
            (format!("{actor} → {tool}: {what}"), level)
        }
        Event::ApprovalRequested { actor, summary, .. } => (
            format!("Waiting for approval ({actor}): {summary}"),
            WARNING,
        ),
        Event::ApprovalDecided { tool, approved, .. } => (
            format!("{tool} {}", if *approved { "approved" } else { "denied" }),
            INFO,
        ),
        Event::KillSwitch { on } => (
            if *on {
                "Kill switch ON: every action is refused".into()
            } else {
                "Kill switch released".to_string()
            },
            if *on { CRITICAL } else { INFO },
        ),
        Event::JarvisStarted { version, mode } => {
            (format!("Jarvis {version} started ({mode})"), QUIET)
        }
        Event::JarvisStopping => ("Jarvis is stopping".into(), QUIET),
        // The conversation panel shows what was asked.
        Event::Asked { .. } => return None,
        Event::PushToTalk {
            pressed: true,
            listening: false,
        } => (
            "Push-to-talk pressed: no microphone is live, so nobody is listening".into(),
            QUIET,
        ),
        Event::PushToTalk { .. } => return None,
        Event::VoiceActivity { state, detail } if state == "unavailable" => (
            format!(
                "Voice unavailable: {}",
                detail.as_deref().unwrap_or("no reason given")
            ),
            QUIET,
        ),
        // The kiosk core and the conversation panel show these.
        Event::VoiceActivity { .. } | Event::VoiceLevel { .. } | Event::VoiceReply { .. } => {
            return None
        }
        Event::FaceSeen { .. } => return None,
        Event::FacesChanged { change } => (change.clone(), INFO),
        Event::PersonSeen { .. } | Event::CameraShown { .. } => return None,
        Event::CameraStateChanged {
            camera,
            state,
            detail,
        } => (
            match detail {
                Some(d) => format!("Camera {camera}: {state} ({d})"),
                None => format!("Camera {camera}: {state}"),
            },
            if state == "lost" { WARNING } else { QUIET },
        ),
        Event::PresenceChanged {
            person,
            state,
            camera,
            inferred,
            ..
        } => (
            match (state.as_str(), inferred) {
                ("home", _) => format!("{person} arrived ({camera})"),
                (_, true) => format!("{person} left, not seen since {camera}"),
                _ => format!("{person} left ({camera})"),
            },
            INFO,
        ),
    };
    Some(line)
}

pub fn item(s: &Stamped, tz: &jiff::tz::TimeZone) -> Option<FeedItem> {
    describe(&s.event).map(|(text, level)| FeedItem {
        time: format::clock(s.ts_ms, tz).into(),
        text: text.into(),
        level,
    })
}

/// The feed at start: the newest stored events, newest first.
pub fn seed(ctx: &KioskContext, tz: &jiff::tz::TimeZone) -> Vec<FeedItem> {
    let stored = match ctx.store.events(None, FEED_ROWS * 2) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("cannot read the event log for the feed: {e}");
            return Vec::new();
        }
    };
    stored
        .into_iter()
        .rev()
        .filter_map(|row| {
            let event: Event = serde_json::from_value(row.data).ok()?;
            item(
                &Stamped {
                    ts_ms: row.ts_ms,
                    event,
                },
                tz,
            )
        })
        .take(FEED_ROWS)
        .collect()
}

/// Puts new items (newest first) at the top of the feed and trims it (UI thread).
pub fn prepend(w: &AppWindow, items: &[FeedItem]) {
    let handle = w.global::<JarvisAdapter>().get_feed();
    let Some(model) = handle.as_any().downcast_ref::<slint::VecModel<FeedItem>>() else {
        return;
    };
    for it in items.iter().rev() {
        model.insert(0, it.clone());
    }
    while model.row_count() > FEED_ROWS {
        model.remove(model.row_count() - 1);
    }
}

pub fn setup(w: &AppWindow) {
    w.global::<JarvisAdapter>()
        .set_feed(rows::new_model::<FeedItem>().1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_sentences() {
        let (t, l) = describe(&Event::NodeOffline {
            node: "agent".into(),
        })
        .expect("shown");
        assert_eq!((t.as_str(), l), ("Node agent went offline", CRITICAL));
        let read = Event::ToolCalled {
            actor: "mcp".into(),
            tool: "cluster_status".into(),
            tier: 0,
            outcome: "ok".into(),
            detail: String::new(),
            duration_ms: 1,
        };
        assert!(
            describe(&read).is_none(),
            "routine reads stay out of the feed"
        );
        let refused = Event::ToolCalled {
            actor: "mcp".into(),
            tool: "cluster_status".into(),
            tier: 1,
            outcome: "refused".into(),
            detail: "kill switch".into(),
            duration_ms: 1,
        };
        assert_eq!(
            describe(&refused).expect("shown").0,
            "mcp → cluster_status: refused: kill switch"
        );
        let stopped = Event::GuestStateChanged {
            vmid: 101,
            name: "frigate".into(),
            node: "pve".into(),
            guest_kind: crate::cluster::model::GuestKind::Lxc,
            from: Some("running".into()),
            to: Some("stopped".into()),
        };
        assert_eq!(
            describe(&stopped).expect("shown"),
            ("frigate (101) on pve is now stopped".into(), WARNING)
        );
    }

    #[test]
    fn the_feed_keeps_newest_first_and_trims() {
        let w = crate::kiosk::controllers::test_window();
        setup(&w);
        let row = |i: usize| FeedItem {
            time: "12:00".into(),
            text: format!("e{i}").into(),
            level: 0,
        };
        prepend(&w, &[row(1), row(0)]);
        prepend(&w, &(2..FEED_ROWS + 10).rev().map(row).collect::<Vec<_>>());
        let feed = w.global::<JarvisAdapter>().get_feed();
        assert_eq!(feed.row_count(), FEED_ROWS);
        assert_eq!(
            feed.row_data(0).map(|r| r.text),
            Some(format!("e{}", FEED_ROWS + 9).into())
        );
        assert_eq!(
            feed.row_data(FEED_ROWS - 1).map(|r| r.text),
            Some("e10".into())
        );
    }
}

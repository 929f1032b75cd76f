//! Approval cards and the kill switch (`ApprovalAdapter`). Cards list every pending tier-2 call, whoever asked
//! (the agent, an MCP client, the kiosk itself), with the exact action spelled out. Approve and Deny go through
//! the registry; approving a call the kiosk itself asked for runs it at once, since the operator has just
//! confirmed exactly that call. Other actors run their call again themselves, as the gate expects.

use slint::ComponentHandle;

use crate::kiosk::controllers::terminal::{self, NOTE};
use crate::kiosk::ui::{AppWindow, ApprovalAdapter, ApprovalCard, TermLine};
use crate::kiosk::{rows, KioskContext, ACTOR};
use crate::tools::gate::Approval;

/// Cards for the pending approvals, oldest first.
pub fn cards(pending: &[Approval], now_ms: u64) -> Vec<ApprovalCard> {
    let mut list: Vec<_> = pending.iter().filter(|a| a.expires_ms > now_ms).collect();
    list.sort_by_key(|a| a.created_ms);
    list.into_iter()
        .map(|a| ApprovalCard {
            id: a.id.as_str().into(),
            tool: a.tool.as_str().into(),
            actor: a.actor.as_str().into(),
            summary: a.summary.as_str().into(),
            expires: expires_in(a.expires_ms, now_ms).into(),
        })
        .collect()
}

fn expires_in(expires_ms: u64, now_ms: u64) -> String {
    let s = expires_ms.saturating_sub(now_ms) / 1000;
    if s >= 60 {
        format!("expires in {} min", s.div_ceil(60))
    } else {
        "expires in under a minute".into()
    }
}

/// The cards and the kill switch as the registry sees them now (off the UI thread: it reads the store).
pub fn read(ctx: &KioskContext) -> (Vec<ApprovalCard>, bool) {
    let pending = match ctx.tools.pending_approvals() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("cannot read pending approvals: {e}");
            Vec::new()
        }
    };
    (
        cards(&pending, crate::time::now_ms()),
        ctx.tools.kill_switch(),
    )
}

pub fn apply(w: &AppWindow, cards: &[ApprovalCard], kill_switch: bool) {
    let a = w.global::<ApprovalAdapter>();
    rows::sync_handle(&a.get_cards(), cards);
    if a.get_kill_switch() != kill_switch {
        a.set_kill_switch(kill_switch);
    }
}

/// Reads the approvals and the kill switch and shows them (from any thread).
pub fn refresh(ctx: &KioskContext, weak: slint::Weak<AppWindow>) {
    let ctx2 = ctx.clone();
    ctx.runtime.spawn_blocking(move || {
        let (cards, kill) = read(&ctx2);
        ctx2.ui.post(move || {
            if let Some(w) = weak.upgrade() {
                apply(&w, &cards, kill);
            }
        });
    });
}

fn decide(ctx: &KioskContext, weak: slint::Weak<AppWindow>, id: String, approve: bool) {
    let ctx2 = ctx.clone();
    ctx.runtime.spawn(async move {
        let note = match ctx2.tools.decide(&id, approve) {
            Ok(a) if approve => {
                if let Some((tool, args)) = ctx2.own_calls.take(&id) {
                    terminal::invoke_and_report(&ctx2, weak.clone(), &tool, args);
                    format!("Approved: {}. Running it now.", a.summary)
                } else {
                    format!("Approved: {}. {} may run it now.", a.summary, a.actor)
                }
            }
            Ok(a) => {
                ctx2.own_calls.take(&id);
                format!("Denied: {}", a.summary)
            }
            Err(e) => format!("Cannot decide {id}: {e}"),
        };
        let line = [TermLine {
            text: note.into(),
            kind: NOTE,
        }];
        let w2 = weak.clone();
        ctx2.ui.post(move || {
            if let Some(w) = w2.upgrade() {
                terminal::append(&w, &line);
            }
        });
        refresh(&ctx2, weak);
    });
}

pub fn setup(w: &AppWindow, ctx: &KioskContext) {
    let a = w.global::<ApprovalAdapter>();
    a.set_cards(rows::new_model::<ApprovalCard>().1);
    let (c, weak) = (ctx.clone(), w.as_weak());
    a.on_approve(move |id| decide(&c, weak.clone(), id.to_string(), true));
    let (c, weak) = (ctx.clone(), w.as_weak());
    a.on_deny(move |id| decide(&c, weak.clone(), id.to_string(), false));
    let (c, weak) = (ctx.clone(), w.as_weak());
    a.on_set_kill_switch(move |on| {
        let (c2, weak) = (c.clone(), weak.clone());
        c.runtime.spawn_blocking(move || {
            if let Err(e) = c2.tools.set_kill_switch(on) {
                tracing::error!("cannot set the kill switch from the kiosk: {e}");
            }
            tracing::info!(actor = ACTOR, on, "kill switch from the kiosk");
            refresh(&c2, weak);
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::gate::ApprovalState;

    fn approval(id: &str, created: u64, expires: u64) -> Approval {
        Approval {
            id: id.into(),
            tool: "reboot_node".into(),
            actor: "agent".into(),
            summary: "Reboot node pve (9 guests running)".into(),
            digest: String::new(),
            created_ms: created,
            expires_ms: expires,
            state: ApprovalState::Pending,
        }
    }

    #[test]
    fn cards_spell_out_the_action_and_drop_expired_ones() {
        let now = 1_000_000;
        let c = cards(
            &[
                approval("b", 20, now + 250_000),
                approval("a", 10, now + 30_000),
                approval("x", 5, now),
            ],
            now,
        );
        assert_eq!(
            c.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(c[0].expires, "expires in under a minute");
        assert_eq!(c[1].expires, "expires in 5 min");
        assert_eq!(c[1].summary, "Reboot node pve (9 guests running)");
    }
}

//! The header (`HeaderAdapter`): the clock, the date and a one-line verdict on the cluster.

use slint::ComponentHandle;

use crate::cluster::model::ClusterSnapshot;
use crate::kiosk::controllers::cluster::{set_if_changed, summary};
use crate::kiosk::format;
use crate::kiosk::ui::{AppWindow, HeaderAdapter, JarvisAdapter};

/// The headline and whether it reads as degraded.
pub fn headline(c: &ClusterSnapshot) -> (String, bool) {
    if c.nodes.is_empty() {
        return ("Connecting to Proxmox VE…".into(), false);
    }
    let degraded =
        c.stale.is_some() || c.quorate == Some(false) || c.nodes.iter().any(|n| !n.online);
    (summary(c), degraded)
}

/// Jarvis's one-line status under the core.
pub fn status_line(c: &ClusterSnapshot, alerts: usize) -> String {
    if c.nodes.is_empty() {
        "Awaiting the first word from Proxmox, sir.".into()
    } else if c.stale.is_some() {
        "Proxmox has stopped answering, sir. Showing the last figures I had.".into()
    } else if alerts == 0 {
        "All systems nominal, sir.".into()
    } else if alerts == 1 {
        "One matter requires your attention, sir.".into()
    } else {
        format!("{alerts} matters require your attention, sir.")
    }
}

pub fn apply(w: &AppWindow, c: &ClusterSnapshot, alerts: usize) {
    let h = w.global::<HeaderAdapter>();
    let (text, degraded) = headline(c);
    set_if_changed(h.get_headline(), &text, |v| h.set_headline(v));
    if h.get_degraded() != degraded {
        h.set_degraded(degraded);
    }
    let j = w.global::<JarvisAdapter>();
    set_if_changed(j.get_status_line(), &status_line(c, alerts), |v| {
        j.set_status_line(v)
    });
}

/// Sets the clock; the text changes once a minute, so this redraws once a minute.
pub fn tick(w: &AppWindow, now_ms: u64, tz: &jiff::tz::TimeZone) {
    let h = w.global::<HeaderAdapter>();
    set_if_changed(h.get_clock(), &format::clock(now_ms, tz), |v| {
        h.set_clock(v)
    });
    set_if_changed(h.get_date(), &format::date(now_ms, tz), |v| h.set_date(v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kiosk::controllers::cluster::tests::node;

    #[test]
    fn the_headline_says_when_something_is_wrong() {
        assert_eq!(
            headline(&ClusterSnapshot::default()).0,
            "Connecting to Proxmox VE…"
        );
        let c = ClusterSnapshot {
            nodes: vec![node("pve", true), node("agent", false)],
            ..Default::default()
        };
        assert_eq!(headline(&c), ("1/2 nodes up · 0/0 running".into(), true));
        assert_eq!(
            status_line(&c, 1),
            "One matter requires your attention, sir."
        );
    }
}

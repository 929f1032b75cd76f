//! The background side of the kiosk: tasks on tokio that watch the state and the bus, build rows off the UI
//! thread and post them to it. Posting happens only when something changed; the clock posts once a minute.

use std::time::Duration;

use slint::ComponentHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::Event;
use crate::kiosk::controllers::{
    approvals, cluster::ClusterView, feed, header, status::StatusView, terminal, voice,
};
use crate::kiosk::format;
use crate::kiosk::ui::AppWindow;
use crate::kiosk::KioskContext;

/// How often the clock and the approval expiry texts are checked.
const TICK: Duration = Duration::from_secs(5);
/// Approvals are re-read this often, so expired cards leave even if no event says so.
const APPROVALS_EVERY: Duration = Duration::from_secs(15);

/// Starts the bridge for `weak`'s window; cancel the token to stop it.
pub fn start(weak: slint::Weak<AppWindow>, ctx: KioskContext) -> CancellationToken {
    let stop = CancellationToken::new();
    ctx.runtime
        .spawn(watch_state(weak.clone(), ctx.clone(), stop.clone()));
    ctx.runtime
        .spawn(watch_bus(weak.clone(), ctx.clone(), stop.clone()));
    ctx.runtime
        .spawn(tick(weak.clone(), ctx.clone(), stop.clone()));
    ctx.runtime.spawn(crate::kiosk::controllers::faces::watch(
        weak.clone(),
        ctx.clone(),
        stop.clone(),
    ));
    ctx.runtime.spawn(crate::kiosk::controllers::camera::watch(
        weak.clone(),
        ctx.clone(),
        stop.clone(),
    ));
    let ctx2 = ctx.clone();
    ctx.runtime.spawn_blocking(move || {
        let items = feed::seed(&ctx2, &format::local_zone());
        ctx2.ui.post(move || {
            if let Some(w) = weak.upgrade() {
                feed::prepend(&w, &items);
            }
        });
    });
    stop
}

/// Everything derived from the state, built off the UI thread.
pub struct WorldView {
    pub cluster: ClusterView,
    pub status: StatusView,
    pub hosts: Vec<slint::SharedString>,
    pub snapshot: crate::cluster::model::ClusterSnapshot,
}

impl WorldView {
    pub fn build(ctx: &KioskContext) -> WorldView {
        let world = ctx.state.get();
        let now = crate::time::now_ms();
        WorldView {
            cluster: ClusterView::build(&world.cluster, now),
            status: StatusView::build(&world, ctx.storage_thresholds, now, &format::local_zone()),
            hosts: terminal::hosts(&world.cluster, &ctx.extra_hosts),
            snapshot: world.cluster.clone(),
        }
    }

    pub fn apply(&self, w: &AppWindow) {
        self.cluster.apply(w);
        self.status.apply(w);
        terminal::apply_hosts(w, &self.hosts);
        header::apply(w, &self.snapshot, self.status.alerts.len());
    }
}

async fn watch_state(weak: slint::Weak<AppWindow>, ctx: KioskContext, stop: CancellationToken) {
    let mut rx = ctx.state.subscribe();
    loop {
        let view = WorldView::build(&ctx);
        let w2 = weak.clone();
        ctx.ui.post(move || {
            if let Some(w) = w2.upgrade() {
                view.apply(&w);
            }
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

async fn watch_bus(weak: slint::Weak<AppWindow>, ctx: KioskContext, stop: CancellationToken) {
    let mut rx = ctx.bus.subscribe();
    let tz = format::local_zone();
    let note_generation = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        let stamped = tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.recv() => match r {
                Ok(s) => s,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(n, "kiosk feed lagged");
                    continue;
                }
                Err(_) => return,
            },
        };
        if matches!(
            stamped.event,
            Event::ApprovalRequested { .. }
                | Event::ApprovalDecided { .. }
                | Event::KillSwitch { .. }
        ) {
            approvals::refresh(&ctx, weak.clone());
        }
        if let Event::PushToTalk { pressed, listening } = stamped.event {
            voice_note(&ctx, &weak, pressed, listening, &note_generation);
        }
        if matches!(
            stamped.event,
            Event::VoiceActivity { .. } | Event::VoiceLevel { .. }
        ) {
            if matches!(&stamped.event, Event::VoiceActivity { state, .. } if state == "idle") {
                voice::refresh_latency(&ctx, weak.clone());
            }
            let (w2, event) = (weak.clone(), stamped.event.clone());
            ctx.ui.post(move || {
                if let Some(w) = w2.upgrade() {
                    voice::apply(&w, &event);
                }
            });
        }
        if let Some(item) = feed::item(&stamped, &tz) {
            let w2 = weak.clone();
            ctx.ui.post(move || {
                if let Some(w) = w2.upgrade() {
                    feed::prepend(&w, &[item]);
                }
            });
        }
    }
}

/// The model spend on the core panel: empty while nothing was spent this month (offline or local only).
pub fn cost_text(r: &crate::agent::CostReport) -> String {
    if r.month.usd <= 0.0 {
        return String::new();
    }
    format!(
        "LLM ${:.2} today · ${:.2} this month",
        r.today.usd, r.month.usd
    )
}

async fn tick(weak: slint::Weak<AppWindow>, ctx: KioskContext, stop: CancellationToken) {
    let tz = format::local_zone();
    let mut since_approvals = APPROVALS_EVERY;
    loop {
        let (w2, tz2) = (weak.clone(), tz.clone());
        ctx.ui.post(move || {
            if let Some(w) = w2.upgrade() {
                header::tick(&w, crate::time::now_ms(), &tz2);
            }
        });
        if since_approvals >= APPROVALS_EVERY {
            approvals::refresh(&ctx, weak.clone());
            since_approvals = Duration::ZERO;
            if let Some(agent) = &ctx.agent {
                if let Some(Ok(report)) = agent.cost_report(0).await {
                    let text = cost_text(&report);
                    let w2 = weak.clone();
                    ctx.ui.post(move || {
                        if let Some(w) = w2.upgrade() {
                            let a = w.global::<crate::kiosk::ui::JarvisAdapter>();
                            if a.get_cost_text() != text.as_str() {
                                a.set_cost_text(text.into());
                            }
                        }
                    });
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => since_approvals += TICK,
        }
    }
}

/// What the core says about push-to-talk while no voice pipeline listens.
pub const NO_VOICE: &str = "Push-to-talk, sir — but I have no ears yet: voice is not set up.";
/// How long the note stays after the key is let go.
pub const NOTE_LINGERS: Duration = Duration::from_secs(5);

/// Push-to-talk on the core: the key down with nobody listening shows [`NO_VOICE`]; it goes a few seconds
/// after the key comes up (unless it was pressed again meanwhile).
fn voice_note(
    ctx: &KioskContext,
    weak: &slint::Weak<AppWindow>,
    pressed: bool,
    listening: bool,
    generation: &std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering;
    let this = generation.fetch_add(1, Ordering::Relaxed) + 1;
    if pressed {
        let note = if listening { "" } else { NO_VOICE };
        let w2 = weak.clone();
        ctx.ui.post(move || {
            if let Some(w) = w2.upgrade() {
                w.global::<crate::kiosk::ui::JarvisAdapter>()
                    .set_voice_note(note.into());
            }
        });
        return;
    }
    let (ui, w2) = (ctx.ui.clone(), weak.clone());
    let latest = generation.clone();
    ctx.runtime.spawn(async move {
        tokio::time::sleep(NOTE_LINGERS).await;
        if latest.load(Ordering::Relaxed) != this {
            return;
        }
        ui.post(move || {
            if let Some(w) = w2.upgrade() {
                w.global::<crate::kiosk::ui::JarvisAdapter>()
                    .set_voice_note("".into());
            }
        });
    });
}

//! The core's voice (`JarvisAdapter`): the mode follows the voice pipeline (`VoiceActivity` on the bus: listening,
//! thinking, speaking, idle), the visualiser shows the real audio level (`VoiceLevel`: the microphone while
//! listening, the loudspeaker while speaking) as a strip of the last [`BANDS`] readings, the TALK button is
//! push-to-talk (the same `PushToTalk` event as the `[keys]` key), and the latency line is the traces' summary,
//! refreshed after each exchange.

use slint::{ComponentHandle, Model};

use crate::bus::Event;
use crate::kiosk::ui::{AppWindow, CoreMode, JarvisAdapter};
use crate::kiosk::KioskContext;

/// Readings on the visualiser: 16 of 80–100 ms, about the last 1.5 s.
pub const BANDS: usize = 16;
/// How many traces the latency line summarises.
const TRACES_SUMMARISED: usize = 20;

pub fn setup(w: &AppWindow, ctx: &KioskContext) {
    let a = w.global::<JarvisAdapter>();
    a.set_audio_levels(slint::ModelRc::new(slint::VecModel::from(vec![
        0f32;
        BANDS
    ])));
    let (bus, state) = (ctx.bus.clone(), ctx.state.clone());
    a.on_push_to_talk(move |pressed| {
        bus.publish(Event::PushToTalk {
            pressed,
            listening: state.get().voice.audio == "live",
        });
    });
    refresh_latency(ctx, w.as_weak());
}

/// What a voice event does to the core (UI thread).
pub fn apply(w: &AppWindow, event: &Event) {
    let a = w.global::<JarvisAdapter>();
    match event {
        Event::VoiceActivity { state, detail } => {
            let mode = match state.as_str() {
                "listening" => CoreMode::Listening,
                "thinking" => CoreMode::Thinking,
                "speaking" => CoreMode::Speaking,
                _ => CoreMode::Idle,
            };
            if a.get_mode() != mode {
                a.set_mode(mode);
            }
            if matches!(mode, CoreMode::Listening | CoreMode::Idle) {
                clear_levels(w);
            }
            let note = match (state.as_str(), detail) {
                ("unavailable", Some(why)) => format!("Voice unavailable: {why}"),
                ("unavailable", None) => "Voice unavailable".into(),
                ("thinking", Some(heard)) => format!("Heard: \u{201c}{heard}\u{201d}"),
                _ => String::new(),
            };
            if state != "listening" && a.get_voice_note() != note.as_str() {
                a.set_voice_note(note.into());
            }
        }
        Event::VoiceLevel { level } => push_level(w, *level),
        _ => {}
    }
}

/// The level as the bar shows it: square-rooted so speech (peaks of 0.05–0.3) fills the bar visibly.
pub fn bar(level: f32) -> f32 {
    if level.is_finite() {
        level.clamp(0.0, 1.0).sqrt()
    } else {
        0.0
    }
}

fn push_level(w: &AppWindow, level: f32) {
    let levels = w.global::<JarvisAdapter>().get_audio_levels();
    let n = levels.row_count();
    if n == 0 {
        return;
    }
    for i in 0..n - 1 {
        if let Some(next) = levels.row_data(i + 1) {
            levels.set_row_data(i, next);
        }
    }
    levels.set_row_data(n - 1, bar(level));
}

fn clear_levels(w: &AppWindow) {
    let levels = w.global::<JarvisAdapter>().get_audio_levels();
    for i in 0..levels.row_count() {
        if levels.row_data(i) != Some(0.0) {
            levels.set_row_data(i, 0.0);
        }
    }
}

/// Reads the latest traces off the UI thread and shows their summary.
pub fn refresh_latency(ctx: &KioskContext, weak: slint::Weak<AppWindow>) {
    let (store, ui) = (ctx.store.clone(), ctx.ui.clone());
    ctx.runtime.spawn(async move {
        let read = tokio::task::spawn_blocking(move || {
            crate::voice::trace::latest(&store, TRACES_SUMMARISED)
        })
        .await;
        let Ok(Ok(traces)) = read else { return };
        let line = crate::voice::trace::summary(&traces).unwrap_or_default();
        ui.post(move || {
            if let Some(w) = weak.upgrade() {
                let a = w.global::<JarvisAdapter>();
                if a.get_voice_latency() != line.as_str() {
                    a.set_voice_latency(line.into());
                }
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(w: &AppWindow) -> Vec<f32> {
        w.global::<JarvisAdapter>()
            .get_audio_levels()
            .iter()
            .collect()
    }

    #[test]
    fn the_core_follows_the_voice_and_the_visualiser_its_levels() {
        let w = super::super::test_window();
        let a = w.global::<JarvisAdapter>();
        a.set_audio_levels(slint::ModelRc::new(slint::VecModel::from(vec![
            0f32;
            BANDS
        ])));
        let activity = |state: &str, detail: Option<&str>| Event::VoiceActivity {
            state: state.into(),
            detail: detail.map(str::to_string),
        };
        apply(&w, &activity("listening", Some("woken (0.91)")));
        assert_eq!(a.get_mode(), CoreMode::Listening);
        for level in [0.04, 0.25, f32::NAN, 7.0] {
            apply(&w, &Event::VoiceLevel { level });
        }
        let l = levels(&w);
        assert_eq!(l.len(), BANDS);
        let want = [0.2, 0.5, 0.0, 1.0];
        assert!(
            l[BANDS - 4..]
                .iter()
                .zip(want)
                .all(|(a, b)| (a - b).abs() < 1e-5),
            "newest last, NaN silent, clipped: {l:?}"
        );
        apply(&w, &activity("thinking", Some("who is home?")));
        assert_eq!(a.get_mode(), CoreMode::Thinking);
        assert!(a.get_voice_note().contains("who is home?"));
        assert_eq!(
            levels(&w)[BANDS - 1],
            1.0,
            "the strip stays while Jarvis thinks"
        );
        apply(&w, &activity("speaking", None));
        assert_eq!(a.get_mode(), CoreMode::Speaking);
        assert_eq!(a.get_voice_note(), "");
        apply(&w, &activity("idle", None));
        assert_eq!(a.get_mode(), CoreMode::Idle);
        assert!(levels(&w).iter().all(|l| *l == 0.0), "silent when idle");
        apply(&w, &activity("unavailable", Some("no card 'USB'")));
        assert_eq!(a.get_mode(), CoreMode::Idle);
        assert_eq!(a.get_voice_note(), "Voice unavailable: no card 'USB'");
    }
}

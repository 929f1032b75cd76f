//! The room: the microphone read on a thread of its own through the ears ([`Listener`]), questions answered by the
//! [`VoiceService`], replies played on a second thread as each sentence is ready.
//!
//! - The capture thread owns the ALSA device and the listener; it sends what the ears notice to the async side
//!   and the microphone's level (the visualiser) to the bus. Push-to-talk (`PushToTalk` on the bus: the `[keys]`
//!   key, the kiosk's button) makes it listen at once.
//! - Barge-in: the wake word while Jarvis speaks stops the playback and the exchange, and the new question is heard.
//! - A device that cannot be opened or fails is shown (state `voice.audio` "unavailable" with ALSA's words, a
//!   `VoiceActivity` "unavailable") and opened again every few seconds, so unplugging and plugging a USB
//!   microphone back needs nothing else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::audio::{AudioError, Capture, Playback};
use super::listener::{EarEvent, Listener};
use super::service::{Loudspeaker, VoiceService};
use super::trace::TraceClock;
use super::tts::Speech;
use crate::bus::{Bus, Event};
use crate::state::StateHandle;

/// How long to wait before opening a device that failed again (doubling while it keeps failing the same way).
const REOPEN_AFTER: Duration = Duration::from_secs(3);
const MAX_REOPEN_AFTER: Duration = Duration::from_secs(30);

/// What the capture thread tells the async side.
enum Heard {
    Ear(EarEvent),
    Failed(AudioError),
}

/// Runs until `shutdown`: waits for the voice service, then keeps the microphone open.
pub async fn run(
    slot: crate::app::VoiceSlot,
    bus: Bus,
    state: StateHandle,
    shutdown: CancellationToken,
) {
    let service = loop {
        if let Some(s) = slot.get() {
            break s.clone();
        }
        let engine = state.get().voice.engine.clone();
        if engine == "off" || engine == "unavailable" {
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    let mut keys = bus.subscribe();
    let mut last_problem = String::new();
    let mut wait = REOPEN_AFTER;
    loop {
        let outcome = listen_until_failure(&service, &bus, &state, &mut keys, &shutdown).await;
        match outcome {
            None => return, // shutting down
            Some(e) => {
                let problem = e.to_string();
                let was_live = state.get().voice.audio == "live";
                set_audio(&state, "unavailable", Some(problem.clone()));
                // Said once per new problem: a box without a sound card does not fill its log.
                if problem != last_problem || was_live {
                    tracing::warn!(
                        "voice audio unavailable: {problem} (trying again every few seconds)"
                    );
                    bus.publish(Event::VoiceActivity {
                        state: "unavailable".into(),
                        detail: Some(problem.clone()),
                    });
                    wait = REOPEN_AFTER;
                } else {
                    wait = (wait * 2).min(MAX_REOPEN_AFTER);
                }
                last_problem = problem;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn set_audio(state: &StateHandle, audio: &str, detail: Option<String>) {
    state.update(|w| {
        w.voice.audio = audio.to_string();
        w.voice.audio_detail = detail.clone();
    });
}

/// One life of the microphone: `None` when shutting down, the error when the device failed.
async fn listen_until_failure(
    service: &Arc<VoiceService>,
    bus: &Bus,
    state: &StateHandle,
    keys: &mut tokio::sync::broadcast::Receiver<crate::bus::Stamped>,
    shutdown: &CancellationToken,
) -> Option<AudioError> {
    let settings = service.settings.clone();
    let capture = match Capture::open(&settings.capture_device) {
        Ok(c) => c,
        Err(e) => return Some(e),
    };
    set_audio(state, "live", Some(settings.capture_device.clone()));
    tracing::info!(device = %settings.capture_device, "listening for \"hey Jarvis\"");
    let (heard_tx, mut heard_rx) = mpsc::channel::<Heard>(32);
    let (talk_tx, talk_rx) = std_mpsc::channel::<()>();
    let stop = Arc::new(AtomicBool::new(false));
    let capture_thread = {
        let (models, stop, bus) = (service.models.clone(), stop.clone(), bus.clone());
        let (wake, utterance) = (settings.wake, settings.utterance);
        std::thread::Builder::new()
            .name("voice-capture".into())
            .spawn(move || {
                let mut capture = capture;
                let mut listener = Listener::new(&models.ears, wake, utterance);
                while !stop.load(Ordering::Relaxed) {
                    if talk_rx.try_recv().is_ok() {
                        listener.listen_now();
                    }
                    let block = match capture.read() {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = heard_tx.blocking_send(Heard::Failed(e));
                            return;
                        }
                    };
                    if listener.listening() {
                        let level = block.iter().fold(0f32, |m, s| m.max(s.abs()));
                        bus.publish(Event::VoiceLevel { level });
                    }
                    match listener.push(&block) {
                        Ok(events) => {
                            for e in events {
                                if heard_tx.blocking_send(Heard::Ear(e)).is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => tracing::warn!("the ears failed on a block: {e}"),
                    }
                }
            })
    };
    let capture_thread = match capture_thread {
        Ok(t) => t,
        Err(e) => {
            return Some(AudioError::Open {
                what: "capture",
                device: settings.capture_device.clone(),
                message: format!("no thread: {e}"),
            })
        }
    };
    let mut speaking: Option<(tokio::task::JoinHandle<()>, Arc<AtomicBool>)> = None;
    let mut clock: Option<TraceClock> = None;
    let failure = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break None,
            key = keys.recv() => {
                if let Ok(stamped) = key {
                    if let Event::PushToTalk { pressed: true, .. } = stamped.event {
                        barge_in(&mut speaking);
                        let _ = talk_tx.send(());
                        clock = Some(TraceClock::start("push_to_talk"));
                        bus.publish(Event::VoiceActivity { state: "listening".into(), detail: None });
                    }
                }
            }
            heard = heard_rx.recv() => match heard {
                None => break None,
                Some(Heard::Failed(e)) => break Some(e),
                Some(Heard::Ear(EarEvent::Woke { score, .. })) => {
                    barge_in(&mut speaking);
                    let mut c = TraceClock::start("wake");
                    c.trace.wake_ms = Some(0);
                    clock = Some(c);
                    bus.publish(Event::VoiceActivity {
                        state: "listening".into(),
                        detail: Some(format!("woken ({score:.2})")),
                    });
                }
                Some(Heard::Ear(EarEvent::Heard(question))) => {
                    // An interrupted reply ends at its next sentence; the new question waits for that (briefly)
                    // rather than being refused as busy.
                    if let Some((task, _)) = speaking.take() {
                        let _ = tokio::time::timeout(INTERRUPTED_ENDS, task).await;
                    }
                    let c = clock.take().unwrap_or_else(|| TraceClock::start("wake"));
                    let (sink, playing) = play(settings.playback_device.clone(), bus.clone());
                    let service = service.clone();
                    let cancelled = playing.clone();
                    let task = tokio::spawn(async move {
                        match service.converse_heard(question, c, Some(sink)).await {
                            Ok(e) => tracing::info!(heard = %e.transcript, "voice exchange answered"),
                            Err(e) => tracing::info!("voice exchange ended: {e}"),
                        }
                    });
                    speaking = Some((task, cancelled));
                }
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    barge_in(&mut speaking);
    if let Some((task, _)) = speaking.take() {
        task.abort();
    }
    drop(heard_rx);
    // The capture thread ends at its next block (a live device delivers one every 80 ms).
    let _ = tokio::task::spawn_blocking(move || capture_thread.join()).await;
    if failure.is_none() {
        set_audio(state, "none", None);
    }
    failure
}

/// Stops the reply being spoken (and the exchange producing it).
/// How long a new question waits for the reply it interrupted to end.
const INTERRUPTED_ENDS: Duration = Duration::from_secs(10);

/// The wake word (or the key) while Jarvis speaks: the playback stops at once (within 100 ms); the exchange notices
/// its closed loudspeaker at its next sentence and ends as `interrupted` (its trace stored, the core told).
fn barge_in(speaking: &mut Option<(tokio::task::JoinHandle<()>, Arc<AtomicBool>)>) {
    if let Some((task, stop)) = speaking.as_ref() {
        if !task.is_finished() {
            tracing::info!("barge-in: stopping the reply");
        }
        stop.store(true, Ordering::Relaxed);
    }
}

/// A playback thread for one reply: sentences arrive on the returned sender and are played in order; the flag
/// stops it at once.
fn play(device: String, bus: Bus) -> (Loudspeaker, Arc<AtomicBool>) {
    let (tx, mut rx) = mpsc::channel::<Speech>(16);
    let (played_tx, played) = tokio::sync::oneshot::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("voice-playback".into())
        .spawn(move || {
            // However the playback ends, the exchange hears whether it was stopped.
            let stopped = flag.clone();
            let _said = Defer(Some(move || {
                let _ = played_tx.send(!stopped.load(Ordering::Relaxed));
            }));
            let mut out: Option<(Playback, u32)> = None;
            while let Some(speech) = rx.blocking_recv() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if out.as_ref().map(|(_, r)| *r) != Some(speech.rate) {
                    out = match Playback::open(&device, speech.rate) {
                        Ok(p) => Some((p, speech.rate)),
                        Err(e) => {
                            tracing::warn!("cannot play the reply: {e}");
                            return;
                        }
                    };
                }
                let Some((pcm, _)) = out.as_mut() else { return };
                // In tenths of a second, so a barge-in is heard within one.
                for chunk in speech.samples.chunks((speech.rate / 10).max(1) as usize) {
                    if flag.load(Ordering::Relaxed) {
                        pcm.stop();
                        return;
                    }
                    let level = chunk.iter().fold(0f32, |m, s| m.max(s.abs()));
                    bus.publish(Event::VoiceLevel { level });
                    if let Err(e) = pcm.write(chunk) {
                        tracing::warn!("playback failed: {e}");
                        return;
                    }
                }
            }
            if let Some((mut pcm, _)) = out {
                if !flag.load(Ordering::Relaxed) {
                    let _ = pcm.drain();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("no playback thread: {e}");
    }
    (
        Loudspeaker {
            sentences: tx,
            played,
        },
        stop,
    )
}

/// Runs its closure when dropped.
struct Defer<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for Defer<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

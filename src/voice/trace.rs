//! Latency traces: for each utterance, when each stage was reached — wake, end of speech, transcript, first token
//! of the reply, first sentence, first audio, done — in ms from the start of listening. Each trace is stored
//! (`voice_traces`), served at `GET /api/v1/traces`, summarised for the kiosk, and logged as a `tracing` span
//! with the stages as fields.

use std::time::Instant;

use rusqlite::params;
use serde::Serialize;

use crate::store::{Store, StoreError};

/// How many traces are kept (the oldest go).
pub const KEEP: i64 = 500;

/// One utterance's stages, in ms from the start of listening.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    pub id: i64,
    pub at_ms: u64,
    /// `wake` (the wake word), `push_to_talk`, `upload` (a WAV over the side port).
    pub via: String,
    /// `answered`, `nothing_heard`, `no_wake_word`, `failed`, `interrupted`.
    pub outcome: String,
    pub transcript: String,
    /// The agent's engine (`offline`, `local`, `claude`, `none`).
    pub engine: Option<String>,
    /// Which voice spoke (`piper`, `espeak`, `cloud`).
    pub voice: Option<String>,
    /// Who heard the words (`whisper`, `cloud`, `whisper (cloud failed)`).
    pub stt: Option<String>,
    pub wake_ms: Option<u64>,
    pub end_of_speech_ms: Option<u64>,
    pub stt_ms: Option<u64>,
    pub first_token_ms: Option<u64>,
    pub first_sentence_ms: Option<u64>,
    pub first_audio_ms: Option<u64>,
    pub done_ms: Option<u64>,
}

/// A trace being filled in as the stages happen.
pub struct TraceClock {
    started: Instant,
    pub trace: Trace,
}

impl TraceClock {
    pub fn start(via: &str) -> TraceClock {
        TraceClock {
            started: Instant::now(),
            trace: Trace {
                at_ms: crate::time::now_ms(),
                via: via.to_string(),
                ..Trace::default()
            },
        }
    }

    /// A trace whose clock already reads `elapsed_ms` (a recording processed faster than it was spoken: its
    /// stages are placed on the recording's own time line).
    pub fn start_at(via: &str, elapsed_ms: u64) -> TraceClock {
        let mut clock = TraceClock::start(via);
        let back = std::time::Duration::from_millis(elapsed_ms);
        clock.started = Instant::now().checked_sub(back).unwrap_or(clock.started);
        clock
    }

    /// Milliseconds since the start.
    pub fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Sets a stage to now, if it is not set yet (the first sentence stays the first).
    pub fn mark(&mut self, stage: fn(&mut Trace) -> &mut Option<u64>) {
        let now = self.now();
        let slot = stage(&mut self.trace);
        if slot.is_none() {
            *slot = Some(now);
        }
    }

    /// Ends the trace: logs it as a span and returns it for storing.
    pub fn finish(mut self, outcome: &str) -> Trace {
        self.trace.outcome = outcome.to_string();
        self.mark(|t| &mut t.done_ms);
        let t = &self.trace;
        let span = tracing::info_span!(
            "voice_exchange",
            via = %t.via,
            outcome = %t.outcome,
            wake_ms = t.wake_ms,
            end_of_speech_ms = t.end_of_speech_ms,
            stt_ms = t.stt_ms,
            first_token_ms = t.first_token_ms,
            first_sentence_ms = t.first_sentence_ms,
            first_audio_ms = t.first_audio_ms,
            done_ms = t.done_ms,
        );
        span.in_scope(|| tracing::info!(transcript = %t.transcript, "voice exchange"));
        self.trace
    }
}

pub fn store(store: &Store, t: &Trace) -> Result<i64, StoreError> {
    let ms = |v: Option<u64>| v.map(|v| v as i64);
    store.write(|tx| {
        tx.execute(
            "INSERT INTO voice_traces (ts_ms, via, outcome, transcript, engine, voice, wake_ms, end_of_speech_ms,
             stt_ms, first_token_ms, first_sentence_ms, first_audio_ms, done_ms, stt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                t.at_ms as i64,
                t.via,
                t.outcome,
                t.transcript,
                t.engine,
                t.voice,
                ms(t.wake_ms),
                ms(t.end_of_speech_ms),
                ms(t.stt_ms),
                ms(t.first_token_ms),
                ms(t.first_sentence_ms),
                ms(t.first_audio_ms),
                ms(t.done_ms),
                t.stt
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute("DELETE FROM voice_traces WHERE id <= ?1", params![id - KEEP])?;
        Ok(id)
    })
}

/// The latest `limit` traces, newest first.
pub fn latest(store: &Store, limit: usize) -> Result<Vec<Trace>, StoreError> {
    store.read(|conn| {
        let mut stmt = conn.prepare(
            "SELECT id, ts_ms, via, outcome, transcript, engine, voice, wake_ms, end_of_speech_ms, stt_ms,
                    first_token_ms, first_sentence_ms, first_audio_ms, done_ms, stt
             FROM voice_traces ORDER BY id DESC LIMIT ?1",
        )?;
        let ms = |v: Option<i64>| v.map(|v| v.max(0) as u64);
        let rows = stmt.query_map(params![limit.min(KEEP as usize) as i64], |r| {
            Ok(Trace {
                id: r.get(0)?,
                at_ms: r.get::<_, i64>(1)?.max(0) as u64,
                via: r.get(2)?,
                outcome: r.get(3)?,
                transcript: r.get(4)?,
                engine: r.get(5)?,
                voice: r.get(6)?,
                wake_ms: ms(r.get(7)?),
                end_of_speech_ms: ms(r.get(8)?),
                stt_ms: ms(r.get(9)?),
                first_token_ms: ms(r.get(10)?),
                first_sentence_ms: ms(r.get(11)?),
                first_audio_ms: ms(r.get(12)?),
                done_ms: ms(r.get(13)?),
                stt: r.get(14)?,
            })
        })?;
        rows.collect()
    })
}

/// One line for the kiosk: the last answered exchange's end of speech → first audio, and the median over the
/// recent ones.
pub fn summary(traces: &[Trace]) -> Option<String> {
    let gaps: Vec<u64> = traces
        .iter()
        .filter(|t| t.outcome == "answered")
        .filter_map(|t| Some(t.first_audio_ms?.saturating_sub(t.end_of_speech_ms?)))
        .collect();
    let last = *gaps.first()?;
    let mut sorted = gaps.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    Some(format!(
        "voice: reply in {:.1} s (median {:.1} s of {})",
        last as f64 / 1000.0,
        median as f64 / 1000.0,
        gaps.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_stored_bounded_and_summarised() {
        let dir = tempfile::tempdir().unwrap();
        let db = Store::open(&dir.path().join("j.db")).unwrap();
        let mut clock = TraceClock::start("wake");
        clock.trace.end_of_speech_ms = Some(1000);
        clock.trace.first_audio_ms = Some(1600);
        clock.trace.transcript = "who is home".into();
        clock.mark(|t| &mut t.stt_ms);
        let first = clock.trace.stt_ms;
        clock.mark(|t| &mut t.stt_ms);
        assert_eq!(clock.trace.stt_ms, first, "a stage is marked once");
        let t = clock.finish("answered");
        assert!(t.done_ms.is_some());
        let id = store(&db, &t).unwrap();
        for _ in 0..KEEP + 5 {
            store(
                &db,
                &Trace {
                    outcome: "nothing_heard".into(),
                    ..t.clone()
                },
            )
            .unwrap();
        }
        let all = latest(&db, 10_000).unwrap();
        assert_eq!(all.len(), KEEP as usize);
        assert!(all.iter().all(|x| x.id != id), "the oldest went");
        assert_eq!(
            summary(std::slice::from_ref(&t)).unwrap(),
            "voice: reply in 0.6 s (median 0.6 s of 1)"
        );
        assert_eq!(summary(&all), None, "nothing answered");
    }
}

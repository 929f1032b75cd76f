//! The voice service: the models loaded once, and the exchange they serve — audio in, a question cut out of it
//! (wake word or push-to-talk, then the VAD), Whisper's transcript, the agent asked as a voice (`Asker { voice }`,
//! never as the operator: a voice in the room may be a television), the reply cut into sentences as it streams,
//! each sentence spoken (several at once, played in order), and the latency trace of it all.
//!
//! One exchange runs at a time (a second gets [`ExchangeError::Busy`]). The live microphone loop and
//! `POST /api/v1/voice/listen` both come here; the bus carries the states (`VoiceActivity`) the kiosk follows.
//!
//! Spoken confirmation: when `[voice] spoken_confirmation` is on, a "yes" approves the one approval the previous
//! exchange raised, within its expiry; anything else leaves it pending. Off by default (docs/SECURITY.md).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::cloud::{CloudStt, CloudSttSettings, CloudTts, CloudTtsSettings};
use super::listener::{EarEvent, EarModels, Heard, Listener};
use super::stt::Whisper;
use super::trace::{Trace, TraceClock};
use super::tts::{text, Speaker, Speech};
use super::vad::{UtteranceSettings, UtteranceStep};
use super::wake::WakeSettings;
use super::VoiceError;
use crate::agent::{Agent, Asker, Reply};
use crate::bus::{Bus, Event};
use crate::store::Store;
use crate::tools::Registry;

/// `[voice]`.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceSettings {
    pub enabled: bool,
    pub models: PathBuf,
    pub wake: WakeSettings,
    pub utterance: UtteranceSettings,
    /// ALSA devices ("default" when unset).
    pub capture_device: String,
    pub playback_device: String,
    /// Whether a spoken "yes" may approve the approval the previous exchange raised.
    pub spoken_confirmation: bool,
    /// The spoken-sentence cache's cap (0: no cache); it lives in `cache_dir`.
    pub cache_bytes: u64,
    pub cache_dir: Option<PathBuf>,
    /// Sentences synthesised at once.
    pub tts_parallel: usize,
    /// How long Piper may take over one sentence before espeak-ng says it instead (Piper falling behind: a slow
    /// box, a long sentence, the CPU busy with cameras). Piper's version is still cached for next time.
    pub piper_deadline: std::time::Duration,
    /// A transcription service to use before Whisper (`[cloud_stt]`).
    pub cloud_stt: Option<CloudSttSettings>,
    /// A cloud voice to use before Piper (`[cloud_tts]`).
    pub cloud_tts: Option<CloudTtsSettings>,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            enabled: false,
            models: PathBuf::from("/usr/share/jarvis/models"),
            wake: WakeSettings::default(),
            utterance: UtteranceSettings::default(),
            capture_device: "default".into(),
            playback_device: "default".into(),
            spoken_confirmation: false,
            cache_bytes: 64 << 20,
            cache_dir: None,
            tts_parallel: 2,
            piper_deadline: std::time::Duration::from_millis(2500),
            cloud_stt: None,
            cloud_tts: None,
        }
    }
}

/// Every model, loaded once.
pub struct VoiceModels {
    pub ears: EarModels,
    pub whisper: Whisper,
    pub speaker: Speaker,
}

impl VoiceModels {
    pub fn load(settings: &VoiceSettings) -> Result<VoiceModels, VoiceError> {
        let cache = settings
            .cache_dir
            .as_deref()
            .filter(|_| settings.cache_bytes > 0)
            .map(|d| (d, settings.cache_bytes));
        let speaker = Speaker::load(&settings.models, cache);
        speaker.prepare();
        Ok(VoiceModels {
            ears: EarModels::load(&settings.models)?,
            whisper: Whisper::load(&settings.models)?,
            speaker,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("Jarvis is already listening or speaking")]
    Busy,
    #[error("no wake word in the audio (say \"hey Jarvis\" first, or use push-to-talk)")]
    NoWakeWord,
    #[error("nothing was said after the wake word")]
    NothingHeard,
    #[error(transparent)]
    Voice(#[from] VoiceError),
    #[error("the voice pipeline stopped: {0}")]
    Stopped(String),
    #[error("the reply was interrupted")]
    Interrupted,
}

/// How listening began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Wait for "hey Jarvis".
    WakeWord,
    /// Listen at once (the key, the kiosk's button, `?push_to_talk=true`).
    PushToTalk,
}

/// One finished exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub transcript: String,
    pub reply: Option<Reply>,
    /// The reply's audio (all sentences, in order) and its rate.
    pub audio: Vec<f32>,
    pub rate: u32,
    /// Where the reply's audio is served (`/api/v1/voice/replies/{id}.wav`).
    pub reply_id: Option<String>,
    pub trace: Trace,
    /// An approval approved by a spoken "yes".
    pub confirmed: Option<String>,
}

/// How many replies' audio are kept for the side port.
const REPLIES_KEPT: usize = 8;
/// Silence between spoken sentences.
const SENTENCE_GAP_S: f32 = 0.12;
/// Whisper's no-speech probability above which a transcript is taken as nothing said.
const NO_SPEECH: f32 = 0.6;

/// An approval raised by an exchange, for a spoken "yes" in the next.
#[derive(Debug, Clone)]
struct Raised {
    id: String,
    expires_ms: u64,
    /// What was asked: asked again once a "yes" approves it.
    question: String,
}

pub struct VoiceService {
    pub models: Arc<VoiceModels>,
    pub settings: VoiceSettings,
    agent: Arc<Agent>,
    tools: Arc<Registry>,
    bus: Bus,
    store: Arc<Store>,
    busy: tokio::sync::Mutex<()>,
    replies: Mutex<VecDeque<Arc<KeptReply>>>,
    raised: Mutex<Option<Raised>>,
    cloud_stt: Option<CloudStt>,
    cloud_tts: Option<Arc<CloudTts>>,
}

impl VoiceService {
    pub fn new(
        models: Arc<VoiceModels>,
        settings: VoiceSettings,
        agent: Arc<Agent>,
        tools: Arc<Registry>,
        bus: Bus,
        store: Arc<Store>,
    ) -> VoiceService {
        let cloud_stt = settings.cloud_stt.clone().and_then(|c| {
            CloudStt::new(c)
                .map_err(|e| tracing::warn!("cloud transcription off: {e}"))
                .ok()
        });
        let cloud_tts = settings.cloud_tts.clone().and_then(|c| {
            CloudTts::new(c)
                .map(Arc::new)
                .map_err(|e| tracing::warn!("cloud voice off: {e}"))
                .ok()
        });
        VoiceService {
            cloud_stt,
            cloud_tts,
            models,
            settings,
            agent,
            tools,
            bus,
            store,
            busy: tokio::sync::Mutex::new(()),
            replies: Mutex::new(VecDeque::new()),
            raised: Mutex::new(None),
        }
    }

    /// A reply's audio, while it is kept.
    pub fn reply(&self, id: &str) -> Option<Arc<KeptReply>> {
        let replies = self.replies.lock().unwrap_or_else(|p| p.into_inner());
        replies.iter().find(|r| r.id == id).cloned()
    }

    fn activity(&self, state: &str, detail: Option<String>) {
        self.bus.publish(Event::VoiceActivity {
            state: state.to_string(),
            detail,
        });
    }

    /// A whole recording (16 kHz mono): the ears find the question in it, then it is answered. The trace's times
    /// are those of the recording as if it were heard live.
    pub async fn converse_clip(
        &self,
        clip: Vec<f32>,
        start: Start,
        via: &str,
    ) -> Result<Exchange, ExchangeError> {
        let _turn = self.busy.try_lock().map_err(|_| ExchangeError::Busy)?;
        let models = self.models.clone();
        let (wake, utterance) = (self.settings.wake, self.settings.utterance);
        let found = tokio::task::spawn_blocking(move || {
            find_question(&models.ears, wake, utterance, &clip, start)
        })
        .await
        .map_err(|e| ExchangeError::Stopped(e.to_string()))??;
        let mut clock = TraceClock::start_at(via, found.heard.to_ms);
        clock.trace.wake_ms = found.wake_ms;
        clock.trace.end_of_speech_ms = Some(found.heard.to_ms);
        let result = self.answer(found.heard, &mut clock, None).await;
        self.finish(clock, result).await
    }

    /// Answers a question already cut out of the stream (the live loop), speaking each sentence into `sink` as it
    /// is ready.
    pub async fn converse_heard(
        &self,
        heard: Heard,
        mut clock: TraceClock,
        sink: Option<Loudspeaker>,
    ) -> Result<Exchange, ExchangeError> {
        let _turn = self.busy.try_lock().map_err(|_| ExchangeError::Busy)?;
        clock.mark(|t| &mut t.end_of_speech_ms);
        let result = self.answer(heard, &mut clock, sink).await;
        self.finish(clock, result).await
    }

    async fn finish(
        &self,
        clock: TraceClock,
        result: Result<Exchange, ExchangeError>,
    ) -> Result<Exchange, ExchangeError> {
        let outcome = match &result {
            Ok(e) if e.reply.is_some() || e.confirmed.is_some() => "answered",
            Ok(_) => "nothing_heard",
            Err(ExchangeError::NothingHeard) => "nothing_heard",
            Err(ExchangeError::Interrupted) => "interrupted",
            Err(_) => "failed",
        };
        let mut trace = clock.finish(outcome);
        if let Ok(e) = &result {
            trace.transcript = e.transcript.clone();
            trace.engine = e.reply.as_ref().map(|r| r.engine.to_string());
            trace.voice = e.trace.voice.clone();
        }
        let store = self.store.clone();
        let to_store = trace.clone();
        match tokio::task::spawn_blocking(move || super::trace::store(&store, &to_store)).await {
            Ok(Ok(id)) => trace.id = id,
            Ok(Err(e)) => tracing::warn!("cannot store a voice trace: {e}"),
            Err(e) => tracing::warn!("cannot store a voice trace: {e}"),
        }
        // An interrupted reply gave way to a new question, which is already being listened to.
        if outcome != "interrupted" {
            self.activity("idle", None);
        }
        result.map(|mut e| {
            e.trace = trace;
            e
        })
    }

    async fn answer(
        &self,
        heard: Heard,
        clock: &mut TraceClock,
        sink: Option<Loudspeaker>,
    ) -> Result<Exchange, ExchangeError> {
        if heard.end == UtteranceStep::NothingHeard {
            return Err(ExchangeError::NothingHeard);
        }
        self.activity("thinking", None);
        let (text, no_speech, stt) = self.transcribe(heard.audio).await?;
        clock.mark(|t| &mut t.stt_ms);
        clock.trace.stt = Some(stt);
        let question = strip_wake_words(&text);
        clock.trace.transcript = question.clone();
        if question.is_empty() || no_speech > NO_SPEECH {
            return Err(ExchangeError::NothingHeard);
        }
        self.activity("thinking", Some(question.clone()));

        if let Some(raised) = self.spoken_confirmation(&question) {
            return match self.tools.decide(&raised.id, true) {
                // Approved, the call runs now: the question that raised it is asked again by the same voice, whose
                // call the approval is bound to, and its outcome is what Jarvis says.
                Ok(_) => {
                    let mut exchange = self.ask_agent(&raised.question, clock, sink).await?;
                    exchange.transcript = question;
                    exchange.confirmed = Some(raised.id);
                    Ok(exchange)
                }
                Err(e) => {
                    let said = format!("I couldn't approve that: {e}.");
                    let mut exchange = self.speak_text(&said, clock, sink).await?;
                    exchange.transcript = question;
                    Ok(exchange)
                }
            };
        }
        self.ask_agent(&question, clock, sink).await
    }

    /// Asks the agent as a voice, speaking the reply sentence by sentence as it streams in.
    async fn ask_agent(
        &self,
        question: &str,
        clock: &mut TraceClock,
        sink: Option<Loudspeaker>,
    ) -> Result<Exchange, ExchangeError> {
        let question = question.to_string();
        // Approvals the agent raises while answering: a "yes" in the next exchange may approve one.
        let mut events = self.bus.subscribe();
        self.bus.publish(crate::bus::asked("voice", &question));
        let (tx, mut deltas) = mpsc::channel::<String>(64);
        let agent = self.agent.clone();
        let q = question.clone();
        let asking = tokio::spawn(async move {
            agent
                .reply_streaming(
                    &q,
                    Asker {
                        operator: false,
                        voice: true,
                    },
                    Some(tx),
                )
                .await
        });
        let mut speaking = SentenceQueue::new(self, clock, sink);
        let mut splitter = text::SentenceSplitter::new();
        let mut streamed = false;
        while let Some(delta) = deltas.recv().await {
            speaking.clock.mark(|t| &mut t.first_token_ms);
            streamed = true;
            for sentence in splitter.push(&delta) {
                speaking.say(sentence).await?;
            }
        }
        let reply = asking
            .await
            .map_err(|e| ExchangeError::Stopped(e.to_string()))?;
        speaking.clock.mark(|t| &mut t.first_token_ms);
        if streamed {
            if let Some(rest) = splitter.finish() {
                speaking.say(rest).await?;
            }
        } else {
            let mut whole = text::SentenceSplitter::new();
            let mut sentences = whole.push(&reply.text);
            sentences.extend(whole.finish());
            for s in sentences {
                speaking.say(s).await?;
            }
        }
        let (audio, rate, voice) = speaking.finish().await?;
        let mut raised = None;
        while let Ok(stamped) = events.try_recv() {
            if let Event::ApprovalRequested { id, expires_ms, .. } = stamped.event {
                raised = Some(Raised {
                    id,
                    expires_ms,
                    question: question.clone(),
                });
            }
        }
        *self.raised.lock().unwrap_or_else(|p| p.into_inner()) = raised;
        let reply_id = self.keep_reply(&audio, rate, &reply.text);
        clock.trace.voice = voice;
        Ok(Exchange {
            transcript: question,
            reply: Some(reply),
            audio,
            rate,
            reply_id,
            trace: clock.trace.clone(),
            confirmed: None,
        })
    }

    /// The words in the question: the cloud's when configured and it answers, else Whisper's on the device. Also
    /// says who heard them (`cloud`, `whisper`, or `whisper (cloud failed)`) and Whisper's no-speech probability.
    async fn transcribe(&self, audio: Vec<f32>) -> Result<(String, f32, String), ExchangeError> {
        let mut stt = "whisper";
        if let Some(cloud) = &self.cloud_stt {
            match cloud.transcribe(&audio).await {
                Ok(text) => return Ok((text, 0.0, "cloud".into())),
                Err(e) => {
                    tracing::warn!("cloud transcription failed, Whisper listens instead: {e}");
                    stt = "whisper (cloud failed)";
                }
            }
        }
        let models = self.models.clone();
        let t = tokio::task::spawn_blocking(move || models.whisper.transcribe(&audio))
            .await
            .map_err(|e| ExchangeError::Stopped(e.to_string()))??;
        Ok((t.text, t.no_speech, stt.into()))
    }

    /// Speaks a fixed text (a confirmation's answer).
    async fn speak_text(
        &self,
        said: &str,
        clock: &mut TraceClock,
        sink: Option<Loudspeaker>,
    ) -> Result<Exchange, ExchangeError> {
        let mut speaking = SentenceQueue::new(self, clock, sink);
        speaking.say(said.to_string()).await?;
        let (audio, rate, voice) = speaking.finish().await?;
        let reply_id = self.keep_reply(&audio, rate, said);
        clock.trace.voice = voice;
        Ok(Exchange {
            transcript: String::new(),
            reply: None,
            audio,
            rate,
            reply_id,
            trace: clock.trace.clone(),
            confirmed: None,
        })
    }

    /// The approval a "yes" approves: only with spoken confirmation on, only the one the previous exchange raised,
    /// only before it expires. Any other answer forgets it (it stays pending for the screen).
    fn spoken_confirmation(&self, question: &str) -> Option<Raised> {
        let raised = self
            .raised
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        if !self.settings.spoken_confirmation || !is_yes(question) {
            return None;
        }
        (crate::time::now_ms() < raised.expires_ms).then_some(raised)
    }

    fn keep_reply(&self, audio: &[f32], rate: u32, text: &str) -> Option<String> {
        if audio.is_empty() {
            return None;
        }
        let id = format!("{:016x}", rand::random::<u64>());
        let kept = KeptReply {
            id: id.clone(),
            wav: super::wav::to_bytes(audio, rate),
            samples: audio.to_vec(),
            rate,
            ogg: std::sync::OnceLock::new(),
        };
        let mut replies = self.replies.lock().unwrap_or_else(|p| p.into_inner());
        replies.push_back(Arc::new(kept));
        while replies.len() > REPLIES_KEPT {
            replies.pop_front();
        }
        drop(replies);
        self.bus.publish(Event::VoiceReply {
            id: id.clone(),
            text: text.chars().take(500).collect(),
            ms: (audio.len() as u64 * 1000) / u64::from(rate.max(1)),
        });
        Some(id)
    }
}

/// Where a live exchange speaks: each sentence goes to `sentences` as soon as it is synthesised; `played` says,
/// once the last has been played, whether it was played to the end (`false`: stopped by a barge-in).
pub struct Loudspeaker {
    pub sentences: mpsc::Sender<Speech>,
    pub played: tokio::sync::oneshot::Receiver<bool>,
}

/// A spoken reply kept for the side port: its WAV, and its Ogg Opus made on the first request for it.
pub struct KeptReply {
    pub id: String,
    pub wav: Vec<u8>,
    samples: Vec<f32>,
    rate: u32,
    /// Encoded once: concurrent first requests wait for the one encoding.
    ogg: std::sync::OnceLock<Result<Vec<u8>, String>>,
}

impl KeptReply {
    /// The reply as Ogg Opus (encoded once; blocking: call it off the async threads).
    pub fn ogg(&self) -> Result<&[u8], String> {
        self.ogg
            .get_or_init(|| {
                super::opus::to_ogg_opus(&self.samples, self.rate).map_err(|e| e.to_string())
            })
            .as_deref()
            .map_err(Clone::clone)
    }
}

/// Sentences being spoken: synthesised up to `tts_parallel` at once, collected (and played) in order.
struct SentenceQueue<'a> {
    service: &'a VoiceService,
    clock: &'a mut TraceClock,
    sink: Option<Loudspeaker>,
    pending: VecDeque<tokio::task::JoinHandle<Result<Speech, super::tts::TtsError>>>,
    audio: Vec<f32>,
    rate: u32,
    voice: Option<String>,
}

impl<'a> SentenceQueue<'a> {
    fn new(
        service: &'a VoiceService,
        clock: &'a mut TraceClock,
        sink: Option<Loudspeaker>,
    ) -> Self {
        SentenceQueue {
            service,
            clock,
            sink,
            pending: VecDeque::new(),
            audio: Vec::new(),
            rate: 22_050,
            voice: None,
        }
    }

    async fn say(&mut self, sentence: String) -> Result<(), ExchangeError> {
        if self.sink.as_ref().is_some_and(|s| s.sentences.is_closed()) {
            return Err(ExchangeError::Interrupted);
        }
        let spoken = text::speakable(&sentence);
        if spoken.is_empty() {
            return Ok(());
        }
        self.clock.mark(|t| &mut t.first_sentence_ms);
        if self.pending.len() >= self.service.settings.tts_parallel.max(1) {
            self.collect_one().await?;
        }
        let models = self.service.models.clone();
        let cloud = self.service.cloud_tts.clone();
        let deadline = self.service.settings.piper_deadline;
        self.pending.push_back(tokio::spawn(speak_sentence(
            models, cloud, spoken, deadline,
        )));
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<(), ExchangeError> {
        let Some(next) = self.pending.pop_front() else {
            return Ok(());
        };
        let speech = next
            .await
            .map_err(|e| ExchangeError::Stopped(e.to_string()))?
            .map_err(|e| ExchangeError::Voice(VoiceError::Run(e.to_string())))?;
        if self.voice.is_none() {
            self.clock.mark(|t| &mut t.first_audio_ms);
            self.service.activity("speaking", None);
            self.voice = Some(format!("{:?}", speech.voice).to_lowercase());
        }
        if !self.audio.is_empty() {
            self.audio.extend(std::iter::repeat_n(
                0.0,
                (SENTENCE_GAP_S * speech.rate as f32) as usize,
            ));
        }
        self.rate = speech.rate;
        self.audio.extend_from_slice(&speech.samples);
        if let Some(sink) = &self.sink {
            // A closed loudspeaker: the reply was interrupted (barge-in); the rest is not said.
            if sink.sentences.send(speech).await.is_err() {
                return Err(ExchangeError::Interrupted);
            }
        }
        Ok(())
    }

    /// Every sentence said; in the room, also played to its end (a barge-in while the last plays is an
    /// interruption too).
    async fn finish(mut self) -> Result<(Vec<f32>, u32, Option<String>), ExchangeError> {
        while !self.pending.is_empty() {
            self.collect_one().await?;
        }
        if let Some(Loudspeaker { sentences, played }) = self.sink.take() {
            drop(sentences);
            if played.await == Ok(false) {
                return Err(ExchangeError::Interrupted);
            }
        }
        Ok((self.audio, self.rate, self.voice))
    }
}

/// One sentence: by the cloud voice when configured (from the cache when it said it before), else — or when the
/// cloud fails — by the voices on the device.
async fn speak_sentence(
    models: Arc<VoiceModels>,
    cloud: Option<Arc<CloudTts>>,
    sentence: String,
    deadline: std::time::Duration,
) -> Result<Speech, super::tts::TtsError> {
    if let Some(cloud) = cloud {
        let voice = cloud.cache_voice();
        let cached = models.speaker.cached(&voice, &sentence);
        let said = match cached {
            Some(hit) => Ok((hit, true)),
            None => cloud.speak(&sentence).await.map(|s| (s, false)),
        };
        match said {
            Ok(((samples, rate), cached)) => {
                if !cached {
                    models.speaker.remember(&voice, &sentence, &samples, rate);
                }
                return Ok(Speech {
                    samples,
                    rate,
                    voice: super::tts::VoiceName::Cloud,
                    cached,
                });
            }
            Err(e) => tracing::warn!("the cloud voice failed, the voice on the device speaks: {e}"),
        }
    }
    let joined = |e: tokio::task::JoinError| super::tts::TtsError::Run(e.to_string());
    let (m, said) = (models.clone(), sentence.clone());
    let piper = tokio::task::spawn_blocking(move || m.speaker.speak(&said));
    match tokio::time::timeout(deadline, piper).await {
        Ok(done) => done.map_err(joined)?,
        Err(_) => {
            tracing::warn!(
                "Piper fell behind (over {} ms for a sentence): espeak-ng says it",
                deadline.as_millis()
            );
            tokio::task::spawn_blocking(move || models.speaker.speak_espeak(&sentence))
                .await
                .map_err(joined)?
        }
    }
}

/// What the ears found in a recording.
struct Found {
    wake_ms: Option<u64>,
    heard: Heard,
}

fn find_question(
    ears: &EarModels,
    wake: WakeSettings,
    utterance: UtteranceSettings,
    clip: &[f32],
    start: Start,
) -> Result<Found, ExchangeError> {
    let mut listener = Listener::new(ears, wake, utterance);
    if start == Start::PushToTalk {
        listener.listen_now();
    }
    let mut wake_ms = None;
    for chunk in clip.chunks(super::wake::STEP) {
        for event in listener.push(chunk)? {
            match event {
                EarEvent::Woke { at_ms, .. } => wake_ms = Some(at_ms),
                EarEvent::Heard(heard) => return Ok(Found { wake_ms, heard }),
            }
        }
    }
    // The recording ended: pad it with the silence that ends an utterance.
    let quiet = vec![0.0; (utterance.silence_ms as usize + 200) * 16];
    if listener.listening() {
        for event in listener.push(&quiet)? {
            if let EarEvent::Heard(heard) = event {
                return Ok(Found { wake_ms, heard });
            }
        }
    }
    match listener.finish() {
        Some(heard) => Ok(Found { wake_ms, heard }),
        None => Err(ExchangeError::NoWakeWord),
    }
}

/// How Whisper writes the "hey" of "hey Jarvis" when it mishears it ("A Jarvis, who is home?"); "hey" itself is
/// stripped wherever it stands first.
const HEY_AS_HEARD: [&str; 9] = ["hay", "a", "eh", "hi", "hello", "ok", "okay", "oh", "yo"];

/// The question without the wake words Whisper may have caught at its start ("Jarvis, who is home?", or "A Jarvis,
/// who is home?" when it mishears the "hey"). A word other than a greeting before "Jarvis" keeps the text whole:
/// "is Jarvis running?" is a question about Jarvis; so does a greeting other than "hey" alone ("A guest is down").
pub fn strip_wake_words(text: &str) -> String {
    let mut t = text.trim();
    loop {
        let (word, rest) = first_word(t);
        let lower = word.to_lowercase();
        let (next, after) = first_word(rest);
        let cut = if lower == "jarvis" || lower == "hey" {
            Some(rest)
        } else if HEY_AS_HEARD.contains(&lower.as_str()) && next.eq_ignore_ascii_case("jarvis") {
            Some(after)
        } else {
            None
        };
        match cut {
            Some(rest) => t = rest,
            None => break,
        }
    }
    t.trim().to_string()
}

/// The first word of `text` (letters and digits) and what follows it, with the punctuation and spaces between
/// skipped. `("", "")` when there is no word.
fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches(|c: char| !c.is_alphanumeric());
    let end = text
        .find(|c: char| !c.is_alphanumeric())
        .unwrap_or(text.len());
    let rest = text[end..].trim_start_matches([',', '.', '!', '?', ' ', ';', ':', '-']);
    (&text[..end], rest)
}

/// A spoken "yes" (and nothing more).
fn is_yes(text: &str) -> bool {
    let t: String = text
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ')
        .collect();
    let t = t
        .trim()
        .trim_end_matches(" sir")
        .trim_end_matches(" please")
        .trim();
    matches!(
        t,
        "yes"
            | "yes do it"
            | "do it"
            | "go ahead"
            | "confirm"
            | "confirmed"
            | "yes go ahead"
            | "affirmative"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_words_are_stripped_and_only_a_plain_yes_confirms() {
        assert_eq!(strip_wake_words("Hey Jarvis, who is home?"), "who is home?");
        assert_eq!(strip_wake_words("Jarvis. Reboot pve."), "Reboot pve.");
        assert_eq!(strip_wake_words("Jarvisson called"), "Jarvisson called");
        assert_eq!(strip_wake_words("Hey, Jarvis!"), "");
        // Whisper's mishearings of "hey".
        assert_eq!(strip_wake_words("A Jarvis, who is home."), "who is home.");
        assert_eq!(strip_wake_words("Hi, Jarvis. Who's home?"), "Who's home?");
        assert_eq!(strip_wake_words("Okay Jarvis reboot pve"), "reboot pve");
        // Not a wake word: a question about Jarvis, an article, a name that only starts alike.
        assert_eq!(strip_wake_words("Is Jarvis running?"), "Is Jarvis running?");
        assert_eq!(strip_wake_words("A guest is down"), "A guest is down");
        assert_eq!(strip_wake_words("Hey, who is home?"), "who is home?");
        assert_eq!(strip_wake_words("... Jarvis"), "");
        assert_eq!(strip_wake_words(""), "");
        assert!(is_yes("Yes."));
        assert!(is_yes("Yes please, sir"));
        assert!(is_yes("Go ahead."));
        assert!(!is_yes("Yes, but don't reboot it."));
        assert!(!is_yes("No."));
        assert!(!is_yes("Don't."));
        assert!(!is_yes("yes no"));
    }
}

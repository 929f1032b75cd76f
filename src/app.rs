//! Wires the spine (bus, state, store) and the subsystems (PVE poller, store writer, side port) together, and
//! owns the shutdown protocol: cancel one token, every task stops, the store writer drains the bus and
//! checkpoints last. Each subsystem is `run(.., shutdown)`, as in mini-redis.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, Event, DEFAULT_CAPACITY};
use crate::cluster::client::{PveClient, PveError};
use crate::cluster::poller::Poller;
use crate::config::Config;
use crate::ssh::openssh::OpenSsh;
use crate::ssh::Executor;
use crate::state::{JarvisStatus, StateHandle, World};
use crate::store::{Store, StoreError};
use crate::tools::{Registry, ToolContext, ToolSettings};
use crate::web::{self, WebContext};

const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pve(#[from] PveError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the side port's certificate: {0}")]
    SideTls(#[from] crate::web::tls::SideTlsError),
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running Jarvis.
pub struct App {
    web_addr: Option<SocketAddr>,
    /// The side port's certificate, when it serves HTTPS.
    web_fingerprint: Option<crate::tls::Fingerprint>,
    pub bus: Bus,
    pub state: StateHandle,
    pub store: Arc<Store>,
    pub tools: Arc<Registry>,
    pub agent: Arc<crate::agent::Agent>,
    /// The face engine once loaded (it loads in the background: the rest of Jarvis does not wait for it).
    pub faces: FaceSlot,
    shutdown: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    writer: JoinHandle<()>,
}

impl App {
    pub async fn start(config: &Config, mode: &str) -> Result<App, AppError> {
        App::start_with(config, mode, true).await
    }

    /// `serve_web: false` runs without the side port (for `jarvis mcp` over stdio next to a kiosk instance).
    pub async fn start_with(config: &Config, mode: &str, serve_web: bool) -> Result<App, AppError> {
        App::start_full(config, mode, serve_web, None).await
    }

    /// `executor` replaces the one the `[ssh]` config would give (the demo answers from its simulator).
    pub async fn start_full(
        config: &Config,
        mode: &str,
        serve_web: bool,
        executor: Option<Arc<dyn Executor>>,
    ) -> Result<App, AppError> {
        let executor = executor.or_else(|| {
            config
                .ssh
                .clone()
                .map(|s| Arc::new(OpenSsh::new(s)) as Arc<dyn Executor>)
        });
        let bus = Bus::new(DEFAULT_CAPACITY);
        let state = StateHandle::new(World {
            jarvis: JarvisStatus {
                mode: mode.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_at_ms: crate::time::now_ms(),
            },
            ..World::default()
        });
        let frigate = match &config.frigate {
            Some(f) => match crate::vision::frigate::client::FrigateClient::new(f.clone()) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::error!("Frigate is not usable: {e}");
                    None
                }
            },
            None => None,
        };
        let frames = crate::vision::frames::LiveFrames::default();
        let path = config.store_path.clone();
        let store = Arc::new(tokio::task::spawn_blocking(move || Store::open(&path)).await??);
        let shutdown = CancellationToken::new();
        // The writer subscribes before anything publishes, so the log misses nothing.
        let writer = tokio::spawn(crate::store::writer::run(
            store.clone(),
            bus.subscribe(),
            shutdown.clone(),
        ));

        let client = PveClient::new(&config.pve)?;
        let tools = Arc::new(Registry::with_all_tools(
            ToolContext {
                pve: client.clone(),
                bus: bus.clone(),
                state: state.clone(),
                settings: Arc::new(ToolSettings {
                    // Whoever built the config, no tool reads the database (`jarvis demo` keeps it in its file root).
                    protected: [
                        config.tools.protected.clone(),
                        crate::store::files_of(&config.store_path).to_vec(),
                    ]
                    .concat(),
                    ..config.tools.clone()
                }),
                executor: executor.clone(),
                live: None,
                store: None,
                frigate: frigate.clone(),
                frames: frames.clone(),
            },
            store.clone(),
        )?);
        let mut agent =
            crate::agent::Agent::new(tools.clone(), config.persona.clone(), store.clone())
                .with_routing(config.route.clone())
                .with_history_tokens(config.history_tokens);
        let prices = Arc::new(config.prices.clone());
        let metered = |p: Arc<dyn crate::agent::llm::Provider>, label: &str| {
            Arc::new(crate::agent::costs::Metered::new(
                p,
                label,
                store.clone(),
                prices.clone(),
            ))
        };
        if let Some(llm) = &config.llm {
            match crate::agent::llm::openai::OpenAi::new(llm.clone()) {
                Ok(p) => agent = agent.with_local(metered(Arc::new(p), "local")),
                Err(e) => tracing::error!("the local model is not usable: {e}"),
            }
        }
        if let Some(c) = &config.claude {
            if !config.prices.contains_key(&c.model) {
                tracing::warn!(model = %c.model, "no price for this model in [prices]: its calls are recorded at $0 and no budget limits them");
            }
            match crate::agent::llm::anthropic::Anthropic::new(c.clone()) {
                Ok(p) => agent = agent.with_claude(metered(Arc::new(p), "claude")),
                Err(e) => tracing::error!("Claude is not usable: {e}"),
            }
        }
        let agent = Arc::new(agent);
        let mut tasks = Vec::new();
        let faces = FaceSlot::default();
        // Presence follows the faces seen; it subscribes before the face engine can publish.
        let sightings = bus.subscribe();
        let household = crate::vision::household::Household::start(
            store.clone(),
            state.clone(),
            bus.clone(),
            &config.cameras,
            config.presence.clone(),
        )
        .await;
        tasks.push((
            "presence",
            tokio::spawn(household.run(sightings, shutdown.clone())),
        ));
        if let Some(client) = &frigate {
            use crate::vision::frigate::{mqtt, watcher};
            let (tx, rx) = watcher::channel();
            crate::vision::household::set_link_state(&state, "frigate", "connecting", None);
            if let Some(m) = config.mqtt.clone() {
                crate::vision::household::set_link_state(&state, "mqtt", "connecting", None);
                let (tx, stop) = (tx.clone(), shutdown.clone());
                tasks.push((
                    "mqtt",
                    tokio::spawn(async move {
                        if let Err(e) = mqtt::run(m, tx, stop).await {
                            tracing::error!("MQTT is not usable: {e}");
                        }
                    }),
                ));
            }
            let w = watcher::Watcher::new(
                client.clone(),
                faces.clone(),
                bus.clone(),
                state.clone(),
                store.clone(),
                &config.cameras,
            );
            let (mqtt_configured, stop) = (config.mqtt.is_some(), shutdown.clone());
            tasks.push((
                "frigate",
                tokio::spawn(async move {
                    // The sender lives as long as the watcher, so its inputs never close under it.
                    let _inputs = tx;
                    w.run(rx, mqtt_configured, stop).await;
                }),
            ));
        }
        for camera in config
            .cameras
            .iter()
            .filter(|c| crate::vision::rtsp::decodes(c))
        {
            let task = crate::vision::rtsp::CameraTask {
                camera: camera.clone(),
                faces: faces.clone(),
                bus: bus.clone(),
                state: state.clone(),
                frames: frames.clone(),
                timeouts: Default::default(),
            };
            tasks.push(("camera", tokio::spawn(task.run(shutdown.clone()))));
        }
        tasks.push((
            "faces",
            tokio::spawn(load_faces(
                config.faces.clone(),
                store.clone(),
                bus.clone(),
                state.clone(),
                faces.clone(),
            )),
        ));
        tasks.push((
            "face retention",
            tokio::spawn(crate::vision::review::sweeper(
                store.clone(),
                config.faces.gallery.clone(),
                shutdown.clone(),
            )),
        ));
        let voice = VoiceSlot::default();
        tasks.push((
            "voice",
            tokio::spawn(load_voice(
                config.voice.clone(),
                agent.clone(),
                tools.clone(),
                bus.clone(),
                store.clone(),
                state.clone(),
                voice.clone(),
            )),
        ));
        if config.voice.enabled {
            tasks.push((
                "microphone",
                tokio::spawn(crate::voice::live::run(
                    voice.clone(),
                    bus.clone(),
                    state.clone(),
                    shutdown.clone(),
                )),
            ));
        }
        let poller = Poller::new(client, config.poll.clone(), bus.clone(), state.clone());
        tasks.push(("poller", tokio::spawn(poller.run(shutdown.clone()))));
        tasks.push((
            "memory sweep",
            tokio::spawn(crate::store::memory::sweeper(
                store.clone(),
                crate::store::memory::SWEEP_EVERY,
                shutdown.clone(),
            )),
        ));
        if let Some(exec) = executor {
            let temps = crate::tools::system::temperature_poller(
                exec,
                state.clone(),
                crate::tools::system::TEMPERATURE_EVERY,
                shutdown.clone(),
            );
            tasks.push(("temperatures", tokio::spawn(temps)));
        }
        let mut web_fingerprint = None;
        let web_addr = if serve_web {
            let listen = config.web.listen;
            let tls = match &config.web.tls {
                Some(files) => {
                    let loaded = crate::web::tls::load(&files.cert_file, &files.key_file)?;
                    let now = (crate::time::now_ms() / 1000) as i64;
                    let days_left = (loaded.not_after - now) / 86_400;
                    if days_left < crate::web::tls::RENEW_WITHIN_DAYS {
                        tracing::warn!(
                            days_left,
                            "the side port's certificate {} is near or past its end",
                            files.cert_file.display()
                        );
                    }
                    warn_if_readable_by_others(&files.key_file);
                    tracing::info!(fingerprint = %loaded.fingerprint, "side port serves HTTPS");
                    web_fingerprint = Some(loaded.fingerprint.clone());
                    Some(loaded.acceptor)
                }
                None => {
                    if !listen.ip().is_loopback() {
                        tracing::warn!(
                            %listen,
                            "the side port is plain HTTP beyond loopback: tokens cross the network in the clear \
                             (set [web] tls_cert_file and tls_key_file; `jarvis tls-cert` makes a pair)"
                        );
                    }
                    None
                }
            };
            let listener = TcpListener::bind(listen)
                .await
                .map_err(|source| AppError::Listen {
                    addr: listen,
                    source,
                })?;
            let web_addr = listener.local_addr().map_err(|source| AppError::Listen {
                addr: listen,
                source,
            })?;
            let ctx = Arc::new(WebContext {
                state: state.clone(),
                bus: bus.clone(),
                store: store.clone(),
                tools: tools.clone(),
                agent: agent.clone(),
                faces: faces.clone(),
                voice: voice.clone(),
                frigate: frigate.clone(),
                token: config.web.token.clone(),
                operator_token: config.web.operator_token.clone(),
                chat_limit: crate::web::chat::ChatLimiter::new(
                    config.web.limits.chat_burst,
                    config.web.limits.chat_per_minute,
                ),
            });
            let app = web::router(
                ctx,
                config.web.max_body_bytes,
                &config.web.mcp,
                shutdown.clone(),
            );
            let web_shutdown = shutdown.clone();
            let limits = config.web.limits.clone();
            tasks.push((
                "web",
                tokio::spawn(async move {
                    if let Err(e) = web::serve(listener, app, limits, tls, web_shutdown).await {
                        tracing::error!("side port stopped: {e}");
                    }
                }),
            ));
            Some(web_addr)
        } else {
            None
        };
        if let Some(keys) = config.kiosk.keys.clone() {
            start_key_reader(keys, &tools, &bus, &state, &shutdown);
        }
        bus.publish(Event::JarvisStarted {
            version: env!("CARGO_PKG_VERSION").to_string(),
            mode: mode.to_string(),
        });
        tracing::info!(web_addr = ?web_addr, mode, "Jarvis is up");
        Ok(App {
            web_addr,
            web_fingerprint,
            bus,
            state,
            store,
            tools,
            agent,
            faces,
            shutdown,
            tasks,
            writer,
        })
    }

    /// The side port's address (`None` when started without it).
    pub fn side_port(&self) -> Option<SocketAddr> {
        self.web_addr
    }

    /// The SHA-256 of the side port's certificate, when it serves HTTPS (what clients pin).
    pub fn side_port_fingerprint(&self) -> Option<&crate::tls::Fingerprint> {
        self.web_fingerprint.as_ref()
    }

    /// A token that stops the app when cancelled (for signal handlers).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every task, then lets the store writer drain the bus and checkpoint.
    pub async fn shutdown(self) {
        self.bus.publish(Event::JarvisStopping);
        self.shutdown.cancel();
        for (name, task) in self.tasks {
            match tokio::time::timeout(SHUTDOWN_GRACE, task).await {
                Ok(_) => tracing::debug!(task = name, "stopped"),
                Err(_) => tracing::warn!(task = name, "did not stop in time"),
            }
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, self.writer)
            .await
            .is_err()
        {
            tracing::warn!("store writer did not finish in time");
        }
        tracing::info!("Jarvis stopped");
    }
}

/// The voice service, once loaded; shared by the side port and the microphone loop.
pub type VoiceSlot = Arc<std::sync::OnceLock<Arc<crate::voice::service::VoiceService>>>;

/// Loads the voice models off the async threads and says how it went in the state (`voice`).
async fn load_voice(
    settings: crate::voice::service::VoiceSettings,
    agent: Arc<crate::agent::Agent>,
    tools: Arc<Registry>,
    bus: Bus,
    store: Arc<Store>,
    state: StateHandle,
    slot: VoiceSlot,
) {
    use crate::state::VoiceStatus;
    let set = |engine: &str, detail: Option<String>| {
        state.update(|w| {
            w.voice = VoiceStatus {
                engine: engine.into(),
                detail: detail.clone(),
                ..w.voice.clone()
            }
        })
    };
    if !settings.enabled {
        set("off", Some("[voice] enabled = false".into()));
        return;
    }
    set("loading", None);
    let started = std::time::Instant::now();
    let for_load = settings.clone();
    let loaded =
        tokio::task::spawn_blocking(move || crate::voice::service::VoiceModels::load(&for_load))
            .await;
    match loaded {
        Ok(Ok(models)) => {
            let piper_problem = models.speaker.piper_problem.clone();
            let service = crate::voice::service::VoiceService::new(
                Arc::new(models),
                settings,
                agent,
                tools,
                bus,
                store.clone(),
            );
            let _ = slot.set(Arc::new(service));
            tracing::info!(ms = started.elapsed().as_millis() as u64, "voice ready");
            set(
                "ready",
                piper_problem.map(|p| format!("espeak-ng speaks: the Piper voice failed ({p})")),
            );
            let latency =
                tokio::task::spawn_blocking(move || crate::voice::trace::latest(&store, 20))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .and_then(|t| crate::voice::trace::summary(&t));
            state.update(|w| w.voice.latency = latency.clone());
        }
        Ok(Err(e)) => {
            tracing::warn!("voice is unavailable: {e}");
            set("unavailable", Some(e.to_string()));
        }
        Err(e) => set("unavailable", Some(format!("the loader stopped: {e}"))),
    }
}

/// The face service, once loaded; shared by the side port and whoever feeds it frames.
pub type FaceSlot = Arc<std::sync::OnceLock<Arc<crate::vision::service::FaceService>>>;

/// Loads the face engine off the async threads and says how it went in the state (`faces`).
async fn load_faces(
    settings: crate::vision::service::FaceSettings,
    store: Arc<Store>,
    bus: Bus,
    state: StateHandle,
    slot: FaceSlot,
) {
    use crate::state::FacesStatus;
    state.update(|w| {
        w.faces = FacesStatus {
            engine: "loading".into(),
            detail: None,
        }
    });
    let started = std::time::Instant::now();
    let loaded = tokio::task::spawn_blocking(move || {
        crate::vision::service::FaceService::load(settings, store, bus)
    })
    .await;
    let status = match loaded {
        Ok(Ok(service)) => {
            let _ = slot.set(Arc::new(service));
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "face engine ready"
            );
            FacesStatus {
                engine: "ready".into(),
                detail: None,
            }
        }
        Ok(Err(e)) => {
            tracing::warn!("face recognition is unavailable: {e} (scripts/fetch-models fetches the models; [faces] models says where they are)");
            FacesStatus {
                engine: "unavailable".into(),
                detail: Some(e.to_string()),
            }
        }
        Err(e) => FacesStatus {
            engine: "unavailable".into(),
            detail: Some(format!("the loader stopped: {e}")),
        },
    };
    state.update(|w| w.faces = status);
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The hardware keys (`[keys]`), with or without a window: the kill-switch key turns the kill switch on through
/// the registry; push-to-talk goes on the bus (`PushToTalk`), where the voice pipeline's microphone loop listens
/// for it; without a live microphone the event says nobody is listening, and the kiosk's core says so.
fn start_key_reader(
    keys: crate::kiosk::keys::KeySettings,
    tools: &Arc<Registry>,
    bus: &Bus,
    state: &StateHandle,
    shutdown: &CancellationToken,
) {
    use crate::kiosk::keys::{spawn_reader, KeyAction};
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (stop, shutdown) = (stop.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let (tools, bus, state) = (tools.clone(), bus.clone(), state.clone());
    spawn_reader(keys, stop, move |action| match action {
        KeyAction::KillSwitch => {
            tracing::warn!("kill-switch key pressed");
            if let Err(e) = tools.set_kill_switch(true) {
                tracing::error!("kill-switch key: {e}");
            }
        }
        KeyAction::TalkStart | KeyAction::TalkStop => bus.publish(Event::PushToTalk {
            pressed: action == KeyAction::TalkStart,
            listening: state.get().voice.audio == "live",
        }),
    });
}

/// Logs a warning when a key file can be read by anyone but its owner.
fn warn_if_readable_by_others(key: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(key) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "{} can be read by others than its owner (chmod 600 it)",
                key.display()
            );
        }
    }
}

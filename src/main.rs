//! The `jarvis` command line: a thin layer over the library (see `src/lib.rs` for the layout).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod faces_cli;
mod listen_cli;
mod side_client;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jarvis::app::{shutdown_signal, App};
use jarvis::cluster::poller::PollSettings;
use jarvis::config::{Config, ConfigError};
use jarvis::demo::{Demo, DemoOptions};
use jarvis::kiosk::backend::{BackendChoice, KioskSettings, RendererChoice};
use jarvis::kiosk::controllers::keyboard::KeyboardMode;
use jarvis::kiosk::{snapshot, KioskContext};
use jarvis::secret::Secret;
use jarvis::sim::{SimOptions, Simulator, DEMO_TOKEN_ID};

#[derive(Parser)]
#[command(
    name = "jarvis",
    version,
    about = "A self-hosted AI command center for a Proxmox VE homelab"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run against a real Proxmox VE, as configured.
    Run {
        #[arg(long, default_value = "/etc/jarvis/jarvis.toml")]
        config: PathBuf,
    },
    /// Run the whole product against the built-in demo homelab (simulated Proxmox VE on loopback).
    Demo {
        /// Side-port address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Address of the simulated Proxmox VE.
        #[arg(long, default_value = "127.0.0.1:0")]
        sim_listen: SocketAddr,
        /// Where the demo keeps its database (default: ~/.local/share/jarvis-demo).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Main poll interval in milliseconds.
        #[arg(long)]
        poll_ms: Option<u64>,
        /// Where to show the HUD: auto (a window when a display is present, else none), winit, linuxkms, none.
        #[arg(long, default_value = "auto", value_parser = ["auto", "winit", "linuxkms", "none"])]
        ui: String,
        /// The renderer: auto (the GPU where a render node exists), gpu, software. A GPU that cannot draw falls
        /// back to software.
        #[arg(long, default_value = "auto", value_parser = ["auto", "gpu", "software"])]
        renderer: String,
        /// The on-screen keyboard: auto (with a touch screen), always, never.
        #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
        keyboard: String,
        /// Let Ctrl+Alt+Backspace end the demo on LinuxKMS (the appliance ignores it).
        #[arg(long)]
        allow_quit_chord: bool,
        /// The microphone (an ALSA device: `arecord -L` lists them).
        #[arg(long, default_value = "default")]
        capture_device: String,
        /// The loudspeaker (an ALSA device: `aplay -L` lists them).
        #[arg(long, default_value = "default")]
        playback_device: String,
        /// Leave out the simulated Frigate and the decoded garden camera.
        #[arg(long)]
        no_cameras: bool,
        /// Serve the side port over HTTPS with this certificate (PEM) and --tls-key, instead of a certificate of
        /// the demo's own (made when it listens beyond loopback).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Internal: check that a renderer draws on a backend (run by the kiosk before it commits to a GPU).
    #[command(hide = true)]
    KioskProbe {
        #[arg(long)]
        backend: String,
        #[arg(long)]
        renderer: String,
    },
    /// Render the kiosk HUD to a PNG headless, with the software renderer (no display needed).
    Snapshot {
        /// Against the built-in demo homelab (a fresh one in a temporary directory).
        #[arg(long, conflicts_with = "config", required_unless_present = "config")]
        demo: bool,
        /// Against the homelab a config file describes.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Physical size in pixels.
        #[arg(long, default_value = "1920x1080")]
        size: String,
        /// Scale factor (default: 1, or 2 from 1440 lines up).
        #[arg(long)]
        scale: Option<f32>,
        /// With --demo: also run `uptime` in the terminal and press a guest's power button, as a visitor would.
        #[arg(long)]
        scene: bool,
        /// Show the on-screen keyboard, with a question being typed into the chat.
        #[arg(long)]
        keyboard: bool,
        /// Also render this many more full frames and print their timing (the frame-time benchmark).
        #[arg(long, default_value_t = 0)]
        frames: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Approve (or deny) a pending tier-2 call on a running Jarvis, as the operator.
    Approve {
        id: String,
        /// Deny instead of approving.
        #[arg(long)]
        deny: bool,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Turn the kill switch on or off (or show it) on a running Jarvis: while on, every action is refused.
    Killswitch {
        #[arg(value_parser = ["on", "off", "status"])]
        state: String,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Serve the tools over MCP on stdin/stdout (for Claude Desktop and other local agents). Runs without the side
    /// port, next to a kiosk instance; approvals and the kill switch are shared through the database.
    Mcp {
        #[arg(long, default_value = "/etc/jarvis/jarvis.toml")]
        config: PathBuf,
    },
    /// Ask a running Jarvis something, as you would on the kiosk: "what's the status of the cluster?".
    Ask {
        text: String,
        #[command(flatten)]
        side: side_client::SidePortArgs,
        /// File holding the side-port token (default: the JARVIS_WEB_TOKEN environment variable). The operator
        /// token also works, and may release the kill switch.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Send a recording to a running Jarvis, as if said in the room: "hey Jarvis, who is home?". Prints what was
    /// heard and the reply, and writes the spoken reply to --out.
    Listen {
        /// A WAV file (any rate, mono or stereo; it is converted to 16 kHz mono).
        #[arg(long)]
        wav: PathBuf,
        /// Where to write the spoken reply: WAV, or Ogg Opus when the name ends in .ogg.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The recording has no wake word: listen from its start.
        #[arg(long)]
        push_to_talk: bool,
        #[command(flatten)]
        side: side_client::SidePortArgs,
        /// File holding the side-port token (default: the JARVIS_WEB_TOKEN environment variable).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Speak a text with Jarvis's voice into a WAV file, here (no running Jarvis needed): the Piper voice, or
    /// espeak-ng when Piper is missing or fails.
    Say {
        text: String,
        #[arg(long)]
        out: PathBuf,
        /// Where the voice models are (default: JARVIS_MODELS, else /usr/share/jarvis/models).
        #[arg(long)]
        models: Option<PathBuf>,
        /// Use espeak-ng's own voice.
        #[arg(long)]
        espeak: bool,
    },
    /// The face gallery of a running Jarvis, as the operator: enroll, list, identify, review, delete.
    Faces {
        #[command(subcommand)]
        action: faces_cli::FacesCommand,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Check a config file and list every problem with its line and field.
    CheckConfig { file: PathBuf },
    /// Make the side port's self-signed certificate where there is none (or where one made here is near its
    /// end), and print its SHA-256 fingerprint, which clients pin. A pair that exists is kept: your own
    /// certificate is never replaced.
    TlsCert {
        /// The certificate (PEM); its folder is made if missing.
        #[arg(long, default_value = "/var/lib/jarvis/tls/side-port.crt")]
        cert: PathBuf,
        /// The private key (PEM, written mode 0600).
        #[arg(long, default_value = "/etc/jarvis/secrets/side-port.key")]
        key: PathBuf,
        /// Another name (DNS name or IP address) for a new certificate, besides localhost, jarvis, jarvis.local
        /// and this host's name. Repeatable.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Only show the certificate that is there; never make one.
        #[arg(long)]
        show: bool,
    },
    /// Run a simulator alone.
    Sim {
        #[command(subcommand)]
        which: SimCommand,
    },
}

/// The side-port token: from `--token-file`, else the JARVIS_WEB_TOKEN environment variable.
pub(crate) fn client_token(file: Option<&std::path::Path>) -> anyhow::Result<Secret> {
    Ok(match file {
        Some(f) => Secret::from_file(f)?,
        None => Secret::new(
            std::env::var(jarvis::config::ENV_WEB_TOKEN)
                .context("give --token-file or set JARVIS_WEB_TOKEN")?,
        ),
    })
}

/// How to reach a running Jarvis as the operator.
#[derive(clap::Args)]
pub(crate) struct OperatorArgs {
    #[command(flatten)]
    side: side_client::SidePortArgs,
    /// File holding the operator token (default: the JARVIS_OPERATOR_TOKEN environment variable).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum SimCommand {
    /// The Proxmox VE API simulator (HTTPS, self-signed certificate).
    Pve {
        #[arg(long, default_value = "127.0.0.1:8006")]
        listen: SocketAddr,
        /// File holding the API token secret to accept (default: a random one, printed).
        #[arg(long)]
        token_secret_file: Option<PathBuf>,
        /// Multiply task durations (1.0 = realistic).
        #[arg(long, default_value_t = 1.0)]
        task_time_scale: f64,
    },
}

/// When the process started, for the time-to-first-frame figure.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn main() -> ExitCode {
    STARTED.get_or_init(std::time::Instant::now);
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { file } => return check_config(&file),
        Command::TlsCert {
            cert,
            key,
            names,
            show,
        } => return tls_cert(&cert, &key, names, show),
        Command::KioskProbe { backend, renderer } => {
            jarvis::kiosk::fonts::ensure();
            return if jarvis::kiosk::backend::probe_main(&backend, &renderer) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        // These own the main thread: Slint runs there.
        command @ (Command::Demo { .. } | Command::Run { .. } | Command::Snapshot { .. }) => {
            // Before any thread exists: it may point fontconfig at the embedded fonts.
            jarvis::kiosk::fonts::ensure();
            runtime().and_then(|rt| with_ui(&rt, command))
        }
        command => runtime().and_then(|rt| rt.block_on(run(command))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jarvis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Logs to stderr, in colour only when stderr is a terminal and NO_COLOR is not set: a log file written through a
/// pipe or redirect (an init script, systemd, `2>>jarvis.log`) gets plain text.
fn init_logging(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},hyper=warn,reqwest=warn"))
    });
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
    jarvis::kiosk::fonts::log_setup();
}

async fn run(command: Command) -> anyhow::Result<()> {
    jarvis::tls::install_crypto_provider();
    match command {
        Command::Sim {
            which:
                SimCommand::Pve {
                    listen,
                    token_secret_file,
                    task_time_scale,
                },
        } => {
            init_logging("info");
            let secret = match token_secret_file {
                Some(f) => Secret::from_file(&f)?,
                None => Secret::random(),
            };
            let sim = Simulator::start(SimOptions {
                listen,
                task_time_scale,
                ..SimOptions::loopback(secret.expose())
            })
            .await?;
            println!("PVE simulator at {}/api2/json", sim.url());
            println!("fingerprint   {}", sim.identity.fingerprint());
            println!("token id      {DEMO_TOKEN_ID}");
            println!("token secret  {}", secret.expose());
            shutdown_signal().await;
            sim.stop().await;
        }
        Command::Mcp { config } => {
            let config = Config::load(&config)?;
            init_logging(&config.log_level);
            let app = App::start_with(&config, "mcp", false).await?;
            // Serve once the cluster is known (or known to be unreachable), so the first question gets an answer.
            let mut world = app.state.subscribe();
            let first_view =
                world.wait_for(|w| w.cluster.updated_at_ms > 0 || w.cluster.stale.is_some());
            let _ = tokio::time::timeout(Duration::from_secs(10), first_view).await;
            drop(world);
            let handler = jarvis::mcp::JarvisMcp::new(
                app.tools.clone(),
                app.state.clone(),
                config.web.mcp.client_confirmation,
            );
            let served = rmcp::ServiceExt::serve(handler, rmcp::transport::stdio()).await;
            match served {
                Ok(running) => {
                    tokio::select! {
                        r = running.waiting() => if let Err(e) = r { tracing::warn!("MCP session ended: {e}") },
                        _ = shutdown_signal() => {},
                    }
                }
                Err(e) => tracing::error!("MCP over stdio could not start: {e}"),
            }
            app.shutdown().await;
        }
        Command::Approve { id, deny, operator } => {
            let body = serde_json::json!({ "approve": !deny });
            let url = format!("{}/api/v1/approvals/{id}", operator.side.base());
            let answer = operator_call(&operator, reqwest::Method::POST, &url, body).await?;
            let a = &answer["approval"];
            println!(
                "{} {}: {} (asked by {})",
                if deny { "Denied" } else { "Approved" },
                a["id"].as_str().unwrap_or(&id),
                a["summary"].as_str().unwrap_or(""),
                a["actor"].as_str().unwrap_or("?")
            );
        }
        Command::Killswitch { state, operator } => {
            let url = format!("{}/api/v1/killswitch", operator.side.base());
            let answer = match state.as_str() {
                "status" => {
                    operator_call(
                        &operator,
                        reqwest::Method::GET,
                        &url,
                        serde_json::Value::Null,
                    )
                    .await?
                }
                s => {
                    operator_call(
                        &operator,
                        reqwest::Method::PUT,
                        &url,
                        serde_json::json!({ "on": s == "on" }),
                    )
                    .await?
                }
            };
            println!(
                "kill switch is {}",
                if answer["on"].as_bool() == Some(true) {
                    "ON: every action is refused"
                } else {
                    "off"
                }
            );
        }
        Command::Ask {
            text,
            side,
            token_file,
        } => {
            let token = client_token(token_file.as_deref())?;
            let client = side.client()?;
            let url = side.base();
            let endpoint = format!("{url}/api/v1/chat");
            let resp = client
                .post(&endpoint)
                .bearer_auth(token.expose())
                .json(&serde_json::json!({ "text": text }))
                .send()
                .await
                .map_err(|e| side_client::unreachable(url, e))?;
            let status = resp.status();
            let answer: serde_json::Value = resp
                .json()
                .await
                .context("Jarvis answered something that is not JSON")?;
            if !status.is_success() {
                anyhow::bail!(
                    "{}",
                    answer["message"].as_str().unwrap_or("request refused")
                );
            }
            println!("{}", answer["text"].as_str().unwrap_or_default());
        }
        Command::Faces { action, operator } => faces_cli::run(action, &operator).await?,
        Command::Say {
            text,
            out,
            models,
            espeak,
        } => {
            let models = models
                .or_else(|| std::env::var_os("JARVIS_MODELS").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("/usr/share/jarvis/models"));
            listen_cli::say(&text, &out, &models, espeak)?
        }
        Command::Listen {
            wav,
            out,
            push_to_talk,
            side,
            token_file,
        } => {
            listen_cli::run(listen_cli::ListenArgs {
                wav,
                out,
                push_to_talk,
                side,
                token_file,
            })
            .await?
        }
        Command::CheckConfig { .. } | Command::KioskProbe { .. } | Command::TlsCert { .. } => {
            unreachable!("handled without a runtime")
        }
        Command::Run { .. } | Command::Demo { .. } | Command::Snapshot { .. } => {
            unreachable!("handled on the main thread")
        }
    }
    Ok(())
}

/// The commands that may show the HUD: the runtime runs the app, the main thread runs Slint.
fn with_ui(rt: &tokio::runtime::Runtime, command: Command) -> anyhow::Result<()> {
    jarvis::tls::install_crypto_provider();
    match command {
        Command::Run { config } => {
            let config = Config::load(&config)?;
            init_logging(&config.log_level);
            let app = rt.block_on(App::start(&config, "run"))?;
            let ctx = KioskContext::new(
                &app,
                rt.handle().clone(),
                config.tools.docker_host.iter().cloned().collect(),
                thresholds(&config.poll),
            );
            show_until_stopped(rt, &config.kiosk, ctx);
            rt.block_on(app.shutdown());
        }
        Command::Demo {
            listen,
            sim_listen,
            data_dir,
            poll_ms,
            ui,
            renderer,
            keyboard,
            allow_quit_chord,
            capture_device,
            playback_device,
            no_cameras,
            tls_cert,
            tls_key,
        } => {
            init_logging("info");
            let data_dir = match data_dir {
                Some(d) => d,
                None => default_demo_dir()?,
            };
            let defaults = demo_options(listen, sim_listen, data_dir, poll_ms);
            let tls = match (tls_cert, tls_key) {
                (Some(cert_file), Some(key_file)) => {
                    jarvis::demo::DemoTls::Files(jarvis::config::TlsFiles {
                        cert_file,
                        key_file,
                    })
                }
                _ => defaults.tls.clone(),
            };
            let demo = rt.block_on(Demo::start(jarvis::demo::DemoOptions {
                voice_devices: (capture_device, playback_device),
                cameras: !no_cameras,
                tls,
                ..defaults
            }))?;
            println!("{}", demo.banner());
            // The demo opens a window where there is a display; it takes over the screen (LinuxKMS) only when
            // asked to, so starting it over SSH never grabs a machine's console.
            let backend = match BackendChoice::parse(&ui).unwrap_or(BackendChoice::Auto) {
                BackendChoice::Auto if !jarvis::kiosk::backend::Machine::probe().display => {
                    BackendChoice::None
                }
                other => other,
            };
            let settings = KioskSettings {
                backend,
                renderer: RendererChoice::parse(&renderer).unwrap_or(RendererChoice::Auto),
                keyboard: KeyboardMode::parse(&keyboard).unwrap_or_default(),
                allow_quit_chord,
                ..KioskSettings::default()
            };
            show_until_stopped(rt, &settings, demo_kiosk(&demo, rt));
            rt.block_on(demo.shutdown());
        }
        Command::Snapshot {
            demo: _,
            config,
            size,
            scale,
            scene,
            keyboard,
            frames,
            out,
        } => {
            let size = snapshot::parse_size(&size)?;
            let scale = scale.unwrap_or_else(|| snapshot::auto_scale(size.0, size.1));
            init_logging("warn");
            let (ctx, stop): (KioskContext, Box<dyn FnOnce()>) = match config {
                Some(path) => {
                    let config = Config::load(&path)?;
                    let app = rt.block_on(App::start_with(&config, "snapshot", false))?;
                    let ctx = KioskContext::new(
                        &app,
                        rt.handle().clone(),
                        config.tools.docker_host.iter().cloned().collect(),
                        thresholds(&config.poll),
                    );
                    (ctx, Box::new(move || rt.block_on(app.shutdown())))
                }
                None => {
                    let dir = tempfile_dir()?;
                    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
                    // No simulated household in screenshots: its photos are of real people (the scene draws
                    // silhouettes instead).
                    let opts = jarvis::demo::DemoOptions {
                        cameras: false,
                        ..demo_options(listen, listen, dir.clone(), None)
                    };
                    let demo = rt.block_on(Demo::start(opts))?;
                    let ctx = demo_kiosk(&demo, rt);
                    (
                        ctx,
                        Box::new(move || {
                            rt.block_on(demo.shutdown());
                            let _ = std::fs::remove_dir_all(&dir);
                        }),
                    )
                }
            };
            let ctx = KioskContext { keyboard, ..ctx };
            let result = snapshot::capture(&ctx, size, scale, scene, Duration::from_secs(10));
            let first_frame = STARTED.get().map(|s| s.elapsed().as_millis()).unwrap_or(0);
            let written = result.and_then(|c| {
                c.frame.write_png(&out)?;
                Ok(c)
            });
            let c = match written {
                Ok(c) => c,
                Err(e) => {
                    stop();
                    return Err(e.into());
                }
            };
            println!(
                "{}: {}x{} at scale {scale}; UI built in {} ms, frame rendered in {} ms, first frame with cluster data {} ms after start",
                out.display(),
                size.0,
                size.1,
                c.build.as_millis(),
                c.render.as_millis(),
                first_frame,
            );
            if frames > 0 {
                let mut times: Vec<f64> = (0..frames)
                    .map(|_| {
                        let t = std::time::Instant::now();
                        let _ = c.hud.render();
                        t.elapsed().as_secs_f64() * 1000.0
                    })
                    .collect();
                times.sort_by(f64::total_cmp);
                let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
                println!(
                    "full {}x{} frames, software renderer: n={frames} p50={:.2} ms p99={:.2} ms max={:.2} ms",
                    size.0,
                    size.1,
                    at(0.5),
                    at(0.99),
                    at(1.0)
                );
            }
            stop();
        }
        _ => unreachable!("only UI commands come here"),
    }
    Ok(())
}

fn demo_options(
    listen: SocketAddr,
    sim_listen: SocketAddr,
    data_dir: PathBuf,
    poll_ms: Option<u64>,
) -> DemoOptions {
    let mut poll = PollSettings::default();
    if let Some(ms) = poll_ms {
        poll.resources = Duration::from_millis(ms.max(100));
    }
    DemoOptions {
        listen,
        sim_listen,
        data_dir,
        poll,
        limits: Default::default(),
        models: jarvis::demo::default_models(),
        cameras: true,
        voice_devices: ("default".into(), "default".into()),
        // Beyond loopback the side port carries tokens over the network: HTTPS, with the demo's own certificate.
        tls: if listen.ip().is_loopback() {
            jarvis::demo::DemoTls::Off
        } else {
            jarvis::demo::DemoTls::OwnCertificate
        },
    }
}

fn demo_kiosk(demo: &Demo, rt: &tokio::runtime::Runtime) -> KioskContext {
    KioskContext::new(
        &demo.app,
        rt.handle().clone(),
        vec![jarvis::sim::executor::DOCKER_HOST.to_string()],
        thresholds(&PollSettings::default()),
    )
}

fn thresholds(poll: &PollSettings) -> (f64, f64) {
    (poll.thresholds.warn_pct, poll.thresholds.crit_pct)
}

/// Shows the HUD until its window closes or a signal arrives; without a display, waits for the signal.
fn show_until_stopped(rt: &tokio::runtime::Runtime, settings: &KioskSettings, ctx: KioskContext) {
    let signal = rt.spawn(async {
        shutdown_signal().await;
        jarvis::kiosk::backend::request_quit();
    });
    match jarvis::kiosk::backend::run(settings, ctx) {
        Ok(()) => signal.abort(),
        Err(e) => {
            if matches!(settings.backend, BackendChoice::None) {
                tracing::info!("running without the kiosk UI");
            } else {
                tracing::warn!("{e}");
            }
            let _ = rt.block_on(signal);
        }
    }
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("jarvis-snapshot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// One authenticated request to a running Jarvis's side port; a JSON error becomes a readable message.
async fn operator_call(
    op: &OperatorArgs,
    method: reqwest::Method,
    url: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let token = operator_token(op)?;
    let client = op.side.client()?;
    let mut req = client.request(method, url).bearer_auth(token.expose());
    if !body.is_null() {
        req = req.json(&body);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| side_client::unreachable(url, e))?;
    let status = resp.status();
    let answer: serde_json::Value = resp
        .json()
        .await
        .context("Jarvis answered something that is not JSON")?;
    if !status.is_success() {
        anyhow::bail!(
            "{}",
            answer["message"].as_str().unwrap_or("request refused")
        );
    }
    Ok(answer)
}

/// The operator token: from `--token-file`, else `JARVIS_OPERATOR_TOKEN`.
fn operator_token(op: &OperatorArgs) -> anyhow::Result<Secret> {
    Ok(match &op.token_file {
        Some(f) => Secret::from_file(f)?,
        None => Secret::new(
            std::env::var(jarvis::config::ENV_OPERATOR_TOKEN)
                .context("give --token-file or set JARVIS_OPERATOR_TOKEN")?,
        ),
    })
}

/// `jarvis tls-cert`: keeps, makes or renews the side port's pair and prints what it did and the fingerprint.
fn tls_cert(
    cert: &std::path::Path,
    key: &std::path::Path,
    names: Vec<String>,
    show: bool,
) -> ExitCode {
    use jarvis::web::tls::{self, Ensured};
    let result = if show {
        tls::load(cert, key).map(|t| ("", t))
    } else {
        let mut all = tls::default_names();
        all.extend(names);
        let now = (jarvis::time::now_ms() / 1000) as i64;
        tls::ensure_self_signed(cert, key, &all, now).and_then(|e| {
            let what = match e {
                Ensured::Made(_) => "made",
                Ensured::Kept(_) => "kept",
                Ensured::Renewed { .. } => {
                    "renewed (clients that pinned the old one must pin this one)"
                }
            };
            tls::load(cert, key).map(|t| (what, t))
        })
    };
    match result {
        Ok((what, t)) => {
            if !what.is_empty() {
                println!("certificate {} {what}", cert.display());
            }
            println!("fingerprint {}", t.fingerprint);
            let until = time::OffsetDateTime::from_unix_timestamp(t.not_after)
                .map(|d| d.date().to_string())
                .unwrap_or_else(|_| t.not_after.to_string());
            println!("valid until {until}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jarvis tls-cert: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file) {
        Ok(_) => {
            println!("{}: OK", file.display());
            ExitCode::SUCCESS
        }
        Err(e @ ConfigError::Read { .. }) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(ConfigError::Invalid { path, problems }) => {
            for p in &problems {
                eprintln!("{path}:{p}");
            }
            eprintln!("{} problem(s) in {path}", problems.len());
            ExitCode::FAILURE
        }
    }
}

fn default_demo_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("set HOME or XDG_DATA_HOME, or pass --data-dir")?;
    Ok(base.join("jarvis-demo"))
}

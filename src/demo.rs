//! `jarvis demo`: starts the PVE simulator on loopback and the whole product against it, through the same
//! client, TLS pinning and sockets as production. The side-port token is random per run unless
//! `JARVIS_WEB_TOKEN` is set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::app::{App, AppError};
use crate::cluster::client::{ApiToken, PveEndpoint};
use crate::cluster::poller::PollSettings;
use crate::config::{Config, WebSettings, ENV_OPERATOR_TOKEN, ENV_WEB_TOKEN};
use crate::secret::Secret;
use crate::sim::{SimError, SimOptions, Simulator, DEMO_TOKEN_ID};
use crate::tls::Trust;
use crate::tools::{ToolSettings, WolTarget};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub sim_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub poll: PollSettings,
    /// The side port's connection limits and chat rate.
    pub limits: crate::web::conn::ConnLimits,
    /// Where the face models are ([`default_models`]; a folder without them leaves faces unavailable).
    pub models: PathBuf,
    /// Run the simulated Frigate and its household (needs the test faces in `models/test-faces`).
    pub cameras: bool,
    /// The ALSA capture and playback devices voice uses.
    pub voice_devices: (String, String),
    /// Plain HTTP or HTTPS on the side port, and with which certificate.
    pub tls: DemoTls,
}

/// How the demo's side port is served.
#[derive(Debug, Clone, PartialEq)]
pub enum DemoTls {
    /// Plain HTTP (loopback).
    Off,
    /// HTTPS with a self-signed certificate of the demo's own, kept in `data_dir/tls` (made once).
    OwnCertificate,
    /// HTTPS with this pair (the appliance's, made at first boot), which must exist and load.
    Files(crate::config::TlsFiles),
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "{ENV_WEB_TOKEN} and {ENV_OPERATOR_TOKEN} hold the same value: the operator's token must differ, or a client \
         could approve its own calls"
    )]
    SameTokens,
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("the demo's side-port certificate: {0}")]
    Tls(#[from] crate::web::tls::SideTlsError),
}

pub struct Demo {
    pub sim: Simulator,
    /// The simulated Frigate, when the demo has cameras.
    pub frigate: Option<crate::sim::frigate::FrigateSim>,
    /// The MQTT broker the demo started (Debian's mosquitto), if installed.
    pub broker: Option<Broker>,
    pub app: App,
    pub web_token: Secret,
    pub operator_token: Secret,
    pub pve_secret: Secret,
    /// The simulator's certificate in PEM, for `curl --cacert`.
    pub sim_cert: PathBuf,
    /// The side port's certificate, when it serves HTTPS.
    pub tls_cert: Option<PathBuf>,
}

impl Demo {
    pub async fn start(opts: DemoOptions) -> Result<Demo, DemoError> {
        if let (Ok(web), Ok(operator)) = (
            std::env::var(ENV_WEB_TOKEN),
            std::env::var(ENV_OPERATOR_TOKEN),
        ) {
            if web == operator {
                return Err(DemoError::SameTokens);
            }
        }
        let pve_secret = Secret::random();
        let sim = Simulator::start(SimOptions {
            listen: opts.sim_listen,
            ..SimOptions::loopback(pve_secret.expose())
        })
        .await?;
        let from_env = |name: &str| match std::env::var(name) {
            Ok(t) if t.len() >= 16 => Secret::new(t),
            _ => Secret::random(),
        };
        let web_token = from_env(ENV_WEB_TOKEN);
        let operator_token = from_env(ENV_OPERATOR_TOKEN);
        let tls_files = match &opts.tls {
            DemoTls::Off => None,
            DemoTls::Files(files) => {
                crate::web::tls::load(&files.cert_file, &files.key_file)?;
                Some(files.clone())
            }
            DemoTls::OwnCertificate => {
                let files = crate::config::TlsFiles {
                    cert_file: opts.data_dir.join("tls/side-port.crt"),
                    key_file: opts.data_dir.join("tls/side-port.key"),
                };
                let mut names = crate::web::tls::default_names();
                if !opts.listen.ip().is_unspecified() {
                    names.push(opts.listen.ip().to_string());
                }
                let now = (crate::time::now_ms() / 1000) as i64;
                crate::web::tls::ensure_self_signed(
                    &files.cert_file,
                    &files.key_file,
                    &names,
                    now,
                )?;
                Some(files)
            }
        };
        let photos = opts.models.join("test-faces");
        let cameras_on = opts.cameras && photos.is_dir();
        if opts.cameras && !cameras_on {
            tracing::warn!(
                "no demo household photos in {}: the demo runs without cameras (scripts/fetch-models fetches them)",
                photos.display()
            );
        }
        let broker = if cameras_on {
            Broker::start(&opts.data_dir)
        } else {
            None
        };
        let frigate = if cameras_on {
            let offset = jiff::Zoned::now().offset().seconds();
            Some(
                crate::sim::frigate::FrigateSim::start(crate::sim::frigate::FrigateSimOptions {
                    photos: photos.clone(),
                    mqtt: broker.as_ref().map(|b| b.addr),
                    login: None,
                    history: true,
                    live_every: Some(Duration::from_secs(30)),
                    step: Duration::from_millis(1500),
                    utc_offset_secs: i64::from(offset),
                    seed: 42,
                })
                .await?,
            )
        } else {
            None
        };
        let config = Config {
            pve: PveEndpoint {
                url: sim.url(),
                token: ApiToken {
                    id: DEMO_TOKEN_ID.to_string(),
                    secret: pve_secret.clone(),
                },
                trust: Trust::Pinned(sim.identity.fingerprint()),
                timeout: Duration::from_secs(5),
            },
            poll: opts.poll,
            web: WebSettings {
                listen: opts.listen,
                token: web_token.clone(),
                operator_token: operator_token.clone(),
                max_body_bytes: 64 * 1024,
                mcp: Default::default(),
                limits: opts.limits.clone(),
                tls: tls_files,
            },
            store_path: opts.data_dir.join("jarvis-demo.db"),
            log_level: "info".into(),
            tools: ToolSettings {
                // The demo's nodes "wake" through a packet to the discard port on loopback; nothing leaves the box.
                wol: ["Home", "pve", "agent1", "agent"]
                    .iter()
                    .enumerate()
                    .map(|(i, n)| WolTarget {
                        node: n.to_string(),
                        mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x50 + i as u8],
                        broadcast: std::net::SocketAddr::from(([127, 0, 0, 1], 9)),
                    })
                    .collect(),
                follow_limit: Duration::from_secs(120),
                docker_host: Some(crate::sim::executor::DOCKER_HOST.to_string()),
                files: crate::files::FileSettings {
                    download_dir: opts.data_dir.join("downloads"),
                    roots: vec![opts.data_dir.clone()],
                    ..Default::default()
                },
                projects: [(
                    "jarvis".to_string(),
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")),
                )]
                .into_iter()
                .collect(),
                // The database (in the data directory, a file root) is added by `App::start`.
                protected: Vec::new(),
                faces: Default::default(),
            },
            ssh: None,
            kiosk: Default::default(),
            persona: Default::default(),
            history_tokens: crate::agent::DEFAULT_HISTORY_TOKENS,
            llm: None,
            claude: None,
            route: Default::default(),
            prices: Default::default(),
            faces: crate::vision::service::FaceSettings {
                models: opts.models.clone(),
                ..Default::default()
            },
            presence: Default::default(),
            cameras: {
                let mut c = if frigate.is_some() {
                    demo_cameras()
                } else {
                    Vec::new()
                };
                if opts.cameras {
                    c.extend(garden_camera(&opts.models));
                }
                c
            },
            frigate: frigate
                .as_ref()
                .map(|f| crate::vision::frigate::client::FrigateSettings {
                    url: f.url(),
                    login: None,
                    trust: None,
                    timeout: Duration::from_secs(10),
                    poll_every: Duration::from_secs(3),
                }),
            mqtt: broker
                .as_ref()
                .map(|b| crate::vision::frigate::mqtt::MqttSettings {
                    host: b.addr.ip().to_string(),
                    port: b.addr.port(),
                    client_id: "jarvis-demo".into(),
                    login: None,
                    tls: None,
                    topic_prefix: "frigate".into(),
                }),
            // Voice from the same models folder; without a sound card the demo still answers recordings
            // (`jarvis listen --wav`).
            voice: crate::voice::service::VoiceSettings {
                enabled: true,
                models: opts.models.clone(),
                cache_dir: Some(opts.data_dir.join("speech-cache")),
                capture_device: opts.voice_devices.0.clone(),
                playback_device: opts.voice_devices.1.clone(),
                ..Default::default()
            },
        };
        let sim_cert = opts.data_dir.join("pve-sim-cert.pem");
        if let Err(e) = std::fs::create_dir_all(&opts.data_dir)
            .and_then(|()| std::fs::write(&sim_cert, &sim.identity.cert_pem))
        {
            tracing::warn!("cannot write {}: {e}", sim_cert.display());
        }
        if frigate.is_some() {
            // The household is enrolled before Jarvis starts following Frigate, so yesterday's events are
            // recognised as they are caught up.
            let (faces, store_path) = (config.faces.clone(), config.store_path.clone());
            match tokio::task::spawn_blocking(move || enrol_household(&faces, &store_path, &photos))
                .await
            {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!("demo household enrolled: {n} people"),
                Ok(Err(e)) => tracing::warn!("demo household not enrolled: {e}"),
                Err(e) => tracing::warn!("demo household not enrolled: {e}"),
            }
        }
        let executor = Arc::new(crate::sim::executor::DemoExecutor::new(sim.shared.clone()));
        let app = App::start_full(&config, "demo", true, Some(executor)).await?;
        Ok(Demo {
            sim,
            frigate,
            broker,
            app,
            web_token,
            operator_token,
            pve_secret,
            sim_cert,
            tls_cert: config.web.tls.as_ref().map(|t| t.cert_file.clone()),
        })
    }

    /// What a new user needs to try it (the side-port token included: it is theirs, made for this run).
    pub fn banner(&self) -> String {
        // The demo always starts the side port; "?" would only show if that ever changed.
        let addr = self
            .app
            .side_port()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "?".into());
        let token = self.web_token.expose();
        // With HTTPS, by the name the certificate carries, trusting exactly the demo's own certificate.
        let port = self.app.side_port().map(|a| a.port()).unwrap_or(0);
        let (web, ws, curl, tls_line) = match (&self.tls_cert, self.app.side_port_fingerprint()) {
            (Some(cert), Some(fp)) => (
                format!("https://localhost:{port}"),
                format!("wss://localhost:{port}/ws"),
                format!("curl --cacert {}", cert.display()),
                format!("\n  certificate {}  (SHA-256 {fp})", cert.display()),
            ),
            _ => (
                format!("http://{addr}"),
                format!("ws://{addr}/ws"),
                "curl".to_string(),
                String::new(),
            ),
        };
        let operator = self.operator_token.expose();
        let pve = self.sim.url();
        let secret = self.pve_secret.expose();
        format!(
            "Jarvis demo is running. The HUD opens in a window when a display is present (DISPLAY), or on the screen\n\
             through LinuxKMS; without either it runs headless (try `xvfb-run scripts/demo`, or `jarvis snapshot`).\n\
             \n  side port   {web}{tls_line}\n  token       {token}\n  operator    {operator}   (approvals and the kill switch: jarvis approve ID)\n\
             \n  try:        {curl} -H 'Authorization: Bearer {token}' {web}/api/v1/cluster\n\
             \n  live feed:  websocat -H 'Authorization: Bearer {token}' {ws}\n\
             \n  simulated Proxmox VE: {pve}  (certificate SHA-256 {fp})\n\
             \n  power a guest as if from the PVE web UI, and watch it arrive on /ws:\n\
             \n    curl -s --cacert {cert} -X POST -H 'Authorization: PVEAPIToken={DEMO_TOKEN_ID}={secret}' \\\n\
             \x20     {pve}/api2/json/nodes/pve/qemu/113/status/start\n\
             \nCtrl-C stops it.",
            fp = self.sim.identity.fingerprint(),
            cert = self.sim_cert.display(),
        )
    }

    pub async fn shutdown(self) {
        self.app.shutdown().await;
        self.sim.stop().await;
        if let Some(f) = self.frigate {
            f.stop().await;
        }
        drop(self.broker);
    }
}

/// The demo's two cameras, as DESIGN.md's household has them: the front door (the porch is inside, the street
/// outside) and the side of the house (people passing in the garden).
pub fn demo_cameras() -> Vec<crate::vision::cameras::CameraSettings> {
    use crate::vision::cameras::CameraSettings;
    use crate::vision::presence::CameraMode;
    vec![
        CameraSettings::frigate("front_door", CameraMode::Zones, &["porch"], &["street"]),
        CameraSettings::frigate("side_house", CameraMode::Passing, &[], &[]),
    ]
}

/// The demo's third camera, "garden": a clip made from the household's photos (`scripts/make-clips`) that
/// Jarvis plays in a loop through the same FFmpeg decoder as an RTSP camera — Emma and a stranger walk by.
pub fn garden_camera(models: &std::path::Path) -> Option<crate::vision::cameras::CameraSettings> {
    use crate::vision::cameras::{CameraSettings, CameraSource};
    use crate::vision::presence::{CameraMode, CameraRules};
    let path = models.join("clips/garden.mp4");
    if !path.is_file() {
        tracing::warn!(
            "no {}: the demo has no decoded camera (scripts/make-clips makes it)",
            path.display()
        );
        return None;
    }
    Some(CameraSettings {
        name: "garden".into(),
        source: CameraSource::File { path },
        rules: CameraRules {
            name: "garden".into(),
            mode: CameraMode::Passing,
            inside_zones: Vec::new(),
            outside_zones: Vec::new(),
            departure_timeout_ms: 0,
        },
        sample_fps: 2.0,
    })
}

/// Enrols the demo household (two photos each) when the gallery has nobody yet; returns how many.
fn enrol_household(
    faces: &crate::vision::service::FaceSettings,
    store_path: &std::path::Path,
    photos: &std::path::Path,
) -> Result<usize, String> {
    use crate::sim::frigate::household::HOUSEHOLD;
    let store = Arc::new(crate::store::Store::open(store_path).map_err(|e| e.to_string())?);
    if !crate::vision::gallery::people(&store)
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        return Ok(0);
    }
    let service = crate::vision::service::FaceService::load(
        faces.clone(),
        store.clone(),
        crate::bus::Bus::new(16),
    )
    .map_err(|e| e.to_string())?;
    for m in &HOUSEHOLD {
        crate::vision::gallery::create_person(&store, m.name, crate::time::now_ms())
            .map_err(|e| e.to_string())?;
        let files: Vec<(String, Vec<u8>)> = m
            .enrol
            .iter()
            .filter_map(|f| {
                std::fs::read(photos.join(f))
                    .ok()
                    .map(|b| (f.to_string(), b))
            })
            .collect();
        service.enrol(m.name, &files).map_err(|e| e.to_string())?;
    }
    Ok(HOUSEHOLD.len())
}

/// Debian's mosquitto on a loopback port of its own, for the simulated Frigate to publish to; killed with the
/// demo. `None` when mosquitto is not installed (Jarvis then follows Frigate by polling its API).
pub struct Broker {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl Broker {
    fn start(dir: &std::path::Path) -> Option<Broker> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let conf = dir.join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
        );
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&conf, text))
            .ok()?;
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            tracing::info!(
                "mosquitto is not installed: the demo's Frigate events come by polling its API"
            );
            return None;
        };
        let child = std::process::Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Some(Broker { addr, child });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(
            "mosquitto did not start listening; the demo's Frigate events come by polling"
        );
        Some(Broker { addr, child })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the demo finds the face models: `JARVIS_MODELS`, else the checkout's models/cache/ (where
/// `scripts/fetch-models` puts them) when this binary was built from a checkout that is still there, else where
/// the appliance installs them (/usr/share/jarvis/models).
pub fn default_models() -> PathBuf {
    let checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/cache");
    std::env::var_os("JARVIS_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if checkout.is_dir() {
                checkout
            } else {
                PathBuf::from("/usr/share/jarvis/models")
            }
        })
}

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
}

pub struct Demo {
    pub sim: Simulator,
    pub app: App,
    pub web_token: Secret,
    pub operator_token: Secret,
    pub pve_secret: Secret,
    /// The simulator's certificate in PEM, for `curl --cacert`.
    pub sim_cert: PathBuf,
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
            cameras: Vec::new(),
            frigate: None,
            mqtt: None,
        };
        let sim_cert = opts.data_dir.join("pve-sim-cert.pem");
        if let Err(e) = std::fs::create_dir_all(&opts.data_dir)
            .and_then(|()| std::fs::write(&sim_cert, &sim.identity.cert_pem))
        {
            tracing::warn!("cannot write {}: {e}", sim_cert.display());
        }
        let executor = Arc::new(crate::sim::executor::DemoExecutor::new(sim.shared.clone()));
        let app = App::start_full(&config, "demo", true, Some(executor)).await?;
        Ok(Demo {
            sim,
            app,
            web_token,
            operator_token,
            pve_secret,
            sim_cert,
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
        let web = format!("http://{addr}");
        let token = self.web_token.expose();
        let operator = self.operator_token.expose();
        let pve = self.sim.url();
        let secret = self.pve_secret.expose();
        format!(
            "Jarvis demo is running. The HUD opens in a window when a display is present (DISPLAY), or on the screen\n\
             through LinuxKMS; without either it runs headless (try `xvfb-run scripts/demo`, or `jarvis snapshot`).\n\
             \n  side port   {web}\n  token       {token}\n  operator    {operator}   (approvals and the kill switch: jarvis approve ID)\n\
             \n  try:        curl -H 'Authorization: Bearer {token}' {web}/api/v1/cluster\n\
             \n  live feed:  websocat -H 'Authorization: Bearer {token}' ws://{addr}/ws\n\
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
    }
}

/// Where the demo finds the face models: `JARVIS_MODELS`, else the checkout's models/cache/ (where
/// `scripts/fetch-models` puts them).
pub fn default_models() -> PathBuf {
    std::env::var_os("JARVIS_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/cache"))
}

//! Configuration: one TOML file (`overlay/etc/jarvis/jarvis.toml` is the commented example), read in two stages
//! as ripgrep does: raw TOML → a validated [`Config`] that builds the subsystems. Every problem is reported with
//! file, line and field ([`ConfigError::Invalid`]); a bad value is never silently replaced by a default.
//! Secrets (the PVE token secret, the side-port token) come from files or environment variables, never from the
//! TOML itself, and are never logged.

pub mod reader;
pub mod vision;
mod voice;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::client::{ApiToken, PveEndpoint};
use crate::cluster::diff::Thresholds;
use crate::cluster::poller::PollSettings;
use crate::kiosk::backend::{BackendChoice, KioskSettings, RendererChoice};
use crate::kiosk::controllers::keyboard::KeyboardMode;
use crate::kiosk::keys::{parse_key, KeySettings};
use crate::secret::Secret;
use crate::ssh::openssh::{SshHost, SshSettings};
use crate::tls::{Fingerprint, Trust};
use crate::tools::{power::parse_mac, ToolSettings, WolTarget};
use reader::{Problem, Reader, Section};

pub const ENV_PVE_SECRET: &str = "JARVIS_PVE_TOKEN_SECRET";
pub const ENV_WEB_TOKEN: &str = "JARVIS_WEB_TOKEN";
pub const ENV_OPERATOR_TOKEN: &str = "JARVIS_OPERATOR_TOKEN";

#[derive(Debug, Clone)]
pub struct WebSettings {
    pub listen: SocketAddr,
    /// For API and MCP clients.
    pub token: Secret,
    /// For the operator's decisions: approving tier-2 calls and the kill switch. Must differ from `token`, so a
    /// client can never approve its own call.
    pub operator_token: Secret,
    pub max_body_bytes: usize,
    /// The MCP endpoint's guards and its confirmation policy.
    pub mcp: McpSettings,
    /// Connection deadlines and the ceiling on unauthenticated connections.
    pub limits: crate::web::conn::ConnLimits,
    /// The certificate and key the side port serves HTTPS with; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
}

/// The side port's certificate (chain) and private key, PEM files; both or neither.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// How `/mcp` is guarded and whether an MCP client's human may confirm tier-2 calls.
#[derive(Debug, Clone, PartialEq)]
pub struct McpSettings {
    /// Host names (or addresses) the MCP endpoint answers to; loopback only unless listed (DNS-rebinding guard).
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call `/mcp` (`scheme://host:port`); any other `Origin` header gets 403. Empty:
    /// every request that carries an `Origin` is refused (MCP clients that are not browsers send none).
    pub allowed_origins: Vec<String>,
    /// Off by default: only the operator approves tier-2 calls. On: an MCP client that declared elicitation may
    /// have its own user confirm, and only as the answer to the request the server issued for that approval.
    pub client_confirmation: bool,
    /// Most MCP sessions (legacy protocol) alive at once; a new one beyond it is refused.
    pub max_sessions: usize,
    /// A session unused for this long is closed.
    pub session_idle: Duration,
}

impl Default for McpSettings {
    fn default() -> McpSettings {
        McpSettings {
            allowed_hosts: loopback_hosts(),
            allowed_origins: Vec::new(),
            client_confirmation: false,
            max_sessions: 32,
            session_idle: Duration::from_secs(600),
        }
    }
}

/// The default MCP Host allowlist: loopback only.
pub fn loopback_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[derive(Debug, Clone)]
pub struct Config {
    pub pve: PveEndpoint,
    pub poll: PollSettings,
    pub web: WebSettings,
    pub store_path: PathBuf,
    pub log_level: String,
    pub tools: ToolSettings,
    /// Commands on the nodes over SSH (`None` without an `[ssh]` section).
    pub ssh: Option<SshSettings>,
    /// The kiosk UI: backend, renderer, hardware keys.
    pub kiosk: KioskSettings,
    /// How Jarvis addresses the operator (`[agent] address`).
    pub persona: crate::agent::persona::Persona,
    /// Estimated tokens of conversation a model sees per turn (`[agent] history_tokens`).
    pub history_tokens: usize,
    /// The local language model (`[llm]`), when one is configured.
    pub llm: Option<crate::agent::llm::openai::OpenAiSettings>,
    /// Claude (`[claude]`), when configured.
    pub claude: Option<crate::agent::llm::anthropic::AnthropicSettings>,
    /// Routing rules (`[route]`) and budgets (`[budget]`).
    pub route: crate::agent::router::RouteSettings,
    /// Prices per million tokens by model (`[prices]`), over the built-in ones.
    pub prices: crate::agent::costs::PriceTable,
    /// Face recognition (`[faces]`).
    pub faces: crate::vision::service::FaceSettings,
    /// The presence timeline (`[presence]`).
    pub presence: crate::vision::cameras::PresenceSettings,
    /// The cameras (`[[cameras]]`), in the file's order.
    pub cameras: Vec<crate::vision::cameras::CameraSettings>,
    /// Frigate (`[frigate]`), when configured.
    pub frigate: Option<crate::vision::frigate::client::FrigateSettings>,
    /// The MQTT broker Frigate publishes to (`[mqtt]`), when configured.
    pub mqtt: Option<crate::vision::frigate::mqtt::MqttSettings>,
    /// Ears and voice (`[voice]`).
    pub voice: crate::voice::service::VoiceSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{} problem(s) in {path}:\n{}", problems.len(), problems.iter().map(|p| format!("  {path}:{p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

impl Config {
    /// Reads and validates a config file, taking secrets from the files it names or the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        // Relative paths in the file are relative to its folder, made absolute now: whatever the working
        // directory of the process (`jarvis mcp` is started by an agent from anywhere), they name the same files.
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
        let mut config = Config::parse(&src, &path.display().to_string(), &base, &|k| {
            std::env::var(k).ok()
        })?;
        // The config file names the secrets and the database: no tool reads it either.
        let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        config.tools.protected.push(file);
        Ok(config)
    }

    /// Validates `src`; relative paths (secrets, the store, file roots, projects, SSH files) are resolved against
    /// `base`, the config file's folder.
    pub fn parse(
        src: &str,
        name: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut r = Reader::parse(src);
        // Every secret file the config names, as resolved: their folders are protected from the file tools.
        let mut secrets: Vec<PathBuf> = Vec::new();
        if r.has_syntax_error() {
            // Report the syntax error alone, and read no secret file named by a file that cannot be trusted.
            return Err(ConfigError::Invalid {
                path: name.to_string(),
                problems: r.finish(),
            });
        }
        let pve = r.section("pve", |s| read_pve(s, base, env, &mut secrets));
        let poll = r.section("poll", read_poll);
        let thresholds = r.section("alerts", read_alerts);
        let web = r.section("web", |s| read_web(s, base, env, &mut secrets));
        let follow_limit = r.section("tools", |s| {
            Duration::from_millis(s.int_or("follow_limit_ms", 120_000, 1_000, 3_600_000))
        });
        let wol = r.section("wol", read_wol);
        let has_ssh = src.lines().any(|l| l.trim() == "[ssh]");
        let ssh = r.section("ssh", |s| has_ssh.then(|| read_ssh(s, base)));
        let hosts = r.section("ssh_hosts", read_hosts);
        let docker_host = r.section("docker", |s| s.string("host").map(|(h, _)| h));
        let files = r.section("files", |s| read_files(s, base));
        let projects = r.section("projects", |s| {
            s.string_entries()
                .into_iter()
                .map(|(name, path, _)| (name, resolve(base, &path)))
                .collect()
        });
        let store_path = r.section("store", |s| {
            s.string("path")
                .map(|(p, _)| resolve(base, &p))
                .unwrap_or_else(|| PathBuf::from("/var/lib/jarvis/jarvis.db"))
        });
        let log_level = r.section("log", |s| match s.string("level") {
            Some((l, span))
                if !["error", "warn", "info", "debug", "trace"].contains(&l.as_str()) =>
            {
                s.fail(
                    "level",
                    Some(span),
                    format!("`{l}` is not one of error, warn, info, debug, trace"),
                );
                l
            }
            Some((l, _)) => l,
            None => "info".into(),
        });
        let kiosk = r.section("kiosk", read_kiosk);
        let (persona, history_tokens) = r.section("agent", |s| {
            let persona = crate::agent::persona::Persona {
                address: s
                    .string("address")
                    .map(|(a, _)| a)
                    .unwrap_or_else(|| "sir".into()),
            };
            let history = s.int_or(
                "history_tokens",
                crate::agent::DEFAULT_HISTORY_TOKENS as u64,
                200,
                200_000,
            ) as usize;
            (persona, history)
        });
        let keys = r.section("keys", read_keys);
        let has_llm = src.lines().any(|l| l.trim() == "[llm]");
        let llm = r.section("llm", |s| {
            has_llm.then(|| read_llm(s, base, &mut secrets)).flatten()
        });
        let has_claude = src.lines().any(|l| l.trim() == "[claude]");
        let claude = r.section("claude", |s| {
            has_claude
                .then(|| read_claude(s, base, env, &mut secrets))
                .flatten()
        });
        let (long_chars, extra_words, local_words) = r.section("route", |s| {
            let d = crate::agent::router::RouteSettings::default();
            let lower = |v: Option<Vec<String>>| {
                v.unwrap_or_default()
                    .into_iter()
                    .map(|w| w.to_lowercase())
                    .collect::<Vec<_>>()
            };
            (
                s.int_or("long_chars", d.long_chars as u64, 100, 1_000_000) as usize,
                lower(s.string_list("claude_words")),
                lower(s.string_list("local_words")),
            )
        });
        let route = r.section("budget", |s| {
            let d = crate::agent::router::RouteSettings::default();
            let daily = s.number_or("daily_usd", d.daily_usd.unwrap_or(0.0), 0.0, 100_000.0);
            let monthly = s.number_or(
                "monthly_usd",
                d.monthly_usd.unwrap_or(0.0),
                0.0,
                1_000_000.0,
            );
            crate::agent::router::RouteSettings {
                long_chars,
                extra_words,
                local_words,
                daily_usd: Some(daily),
                monthly_usd: Some(monthly),
            }
        });
        let prices = r.section("prices", read_prices);
        let faces = r.section("faces", |s| read_faces(s, base));
        let presence = r.section("presence", vision::read_presence);
        let cameras = vision::read_cameras(&mut r, base, &mut secrets);
        let needs_frigate = cameras.iter().any(|c| c.source.kind() == "frigate");
        let frigate = r.section("frigate", |s| {
            vision::read_frigate(s, base, &mut secrets, needs_frigate)
        });
        let mqtt = r.section("mqtt", |s| vision::read_mqtt(s, base, &mut secrets));
        let mut voice = r.section("voice", |s| voice::read_voice(s, base, &store_path));
        voice.cloud_stt = r.section("cloud_stt", |s| {
            voice::read_cloud_stt(s, base, env, &mut secrets)
        });
        voice.cloud_tts = r.section("cloud_tts", |s| {
            voice::read_cloud_tts(s, base, env, &mut secrets)
        });
        let problems = r.finish();
        match (pve, web) {
            (Some(pve), Some(web)) if problems.is_empty() => Ok(Config {
                pve,
                poll: PollSettings { thresholds, ..poll },
                web,
                store_path,
                log_level,
                tools: ToolSettings {
                    wol,
                    follow_limit,
                    docker_host,
                    files,
                    projects,
                    protected: protected_paths(&secrets, ssh.as_ref()),
                    faces: faces.gallery.clone(),
                },
                ssh: ssh.map(|s| SshSettings { hosts, ..s }),
                kiosk: KioskSettings { keys, ..kiosk },
                persona,
                history_tokens,
                llm,
                claude,
                route,
                prices,
                faces,
                presence,
                cameras,
                frigate,
                mqtt,
                voice,
            }),
            _ => Err(ConfigError::Invalid {
                path: name.to_string(),
                problems,
            }),
        }
    }
}

fn read_pve(
    s: &mut Section<'_, '_>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<PathBuf>,
) -> Option<PveEndpoint> {
    let url = s.required_string("url");
    if let Some((u, span)) = &url {
        if !u.starts_with("https://") {
            s.fail(
                "url",
                Some(span.clone()),
                "must start with https:// (PVE serves its API over TLS on port 8006)".into(),
            );
        }
    }
    let token_id = s.required_string("token_id");
    if let Some((t, span)) = &token_id {
        let ok = t
            .split_once('!')
            .is_some_and(|(user, id)| user.contains('@') && !id.is_empty());
        if !ok {
            s.fail(
                "token_id",
                Some(span.clone()),
                "must look like USER@REALM!TOKENID (e.g. jarvis@pve!kiosk)".into(),
            );
        }
    }
    let secret = read_secret(s, "token_secret_file", ENV_PVE_SECRET, base, env, secrets);
    let fingerprint = s.string("fingerprint");
    let ca_file = s.string("ca_file");
    let trust = match (fingerprint, ca_file) {
        (Some((fp, span)), None) => match Fingerprint::parse(&fp) {
            Ok(f) => Some(Trust::Pinned(f)),
            Err(e) => {
                s.fail("fingerprint", Some(span), e.to_string());
                None
            }
        },
        (None, Some((ca, _))) => Some(Trust::CaFile(resolve(base, &ca))),
        (Some(_), Some((_, span))) => {
            s.fail(
                "ca_file",
                Some(span),
                "set either fingerprint or ca_file, not both".into(),
            );
            None
        }
        (None, None) => {
            s.fail(
                "fingerprint",
                None,
                "missing: pin PVE's certificate with fingerprint = \"AA:BB:...\" (Datacenter → node → Certificates) or give ca_file".into(),
            );
            None
        }
    };
    let timeout = Duration::from_millis(s.int_or("timeout_ms", 10_000, 100, 120_000));
    Some(PveEndpoint {
        url: url?.0,
        token: ApiToken {
            id: token_id?.0,
            secret: secret?,
        },
        trust: trust?,
        timeout,
    })
}

fn read_kiosk(s: &mut Section<'_, '_>) -> KioskSettings {
    let mut out = KioskSettings::default();
    if let Some((b, span)) = s.string("backend") {
        match BackendChoice::parse(&b) {
            Some(v) => out.backend = v,
            None => s.fail(
                "backend",
                Some(span),
                format!("`{b}` is not one of auto, winit, linuxkms, none"),
            ),
        }
    }
    if let Some((r, span)) = s.string("renderer") {
        match RendererChoice::parse(&r) {
            Some(v) => out.renderer = v,
            None => s.fail(
                "renderer",
                Some(span),
                format!("`{r}` is not one of auto, software, gpu"),
            ),
        }
    }
    if let Some((k, span)) = s.string("on_screen_keyboard") {
        match KeyboardMode::parse(&k) {
            Some(v) => out.keyboard = v,
            None => s.fail(
                "on_screen_keyboard",
                Some(span),
                format!("`{k}` is not one of auto, always, never"),
            ),
        }
    }
    out.allow_quit_chord = s.bool_or("allow_quit_chord", false);
    out
}

/// `[faces]`: where the models are, how many photos are analysed at once, and the thresholds (docs/FACES.md).
fn read_faces(s: &mut Section<'_, '_>, base: &Path) -> crate::vision::service::FaceSettings {
    let mut f = crate::vision::service::FaceSettings::default();
    if let Some((m, _)) = s.string("models") {
        f.models = resolve(base, &m);
    }
    f.threads = s.int_or("threads", 1, 1, 16) as usize;
    f.detector.input = s.int_or("detector_input", 640, 160, 1280) as usize / 32 * 32;
    let q = &mut f.quality;
    q.min_face_px = s.number_or("min_face_px", q.min_face_px as f64, 16.0, 1000.0) as f32;
    q.min_sharpness = s.number_or("min_sharpness", q.min_sharpness as f64, 0.0, 10_000.0) as f32;
    let g = &mut f.gallery;
    g.match_threshold = s.number_or("match_threshold", g.match_threshold as f64, 0.2, 0.95) as f32;
    g.margin = s.number_or("margin", g.margin as f64, 0.0, 0.5) as f32;
    g.learn_threshold = s.number_or("learn_threshold", g.learn_threshold as f64, 0.2, 1.0) as f32;
    g.group_threshold = s.number_or("group_threshold", g.group_threshold as f64, 0.2, 0.95) as f32;
    g.max_samples = s.int_or("max_samples", g.max_samples as u64, 1, 100) as usize;
    g.keep_days = s.int_or("unknown_keep_days", g.keep_days as u64, 1, 3650) as u32;
    g.max_groups = s.int_or("unknown_max_groups", g.max_groups as u64, 1, 100_000) as usize;
    if g.learn_threshold < g.match_threshold {
        s.fail(
            "learn_threshold",
            None,
            "must be at least match_threshold: Jarvis learns only from faces it is sure of".into(),
        );
    }
    f
}

/// `[llm]`: an OpenAI-compatible server (llama-server with Qwen 2.5 7B in the reference homelab).
fn read_llm(
    s: &mut Section<'_, '_>,
    base: &Path,
    secrets: &mut Vec<PathBuf>,
) -> Option<crate::agent::llm::openai::OpenAiSettings> {
    let url = s.required_string("url");
    let model = s.required_string("model");
    let api_key = match s.string("api_key_file") {
        Some((file, span)) => match Secret::from_file(&remember(secrets, resolve(base, &file))) {
            Ok(k) => Some(k),
            Err(e) => {
                s.fail("api_key_file", Some(span), e.to_string());
                None
            }
        },
        None => None,
    };
    let timeout = Duration::from_millis(s.int_or("timeout_ms", 30_000, 1_000, 600_000));
    let max_tokens = s.int_or("max_tokens", 1024, 16, 32_768) as u32;
    let (url, _) = url?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        s.fail(
            "url",
            None,
            format!("`{url}` is not an http:// or https:// URL"),
        );
        return None;
    }
    Some(crate::agent::llm::openai::OpenAiSettings {
        url,
        model: model?.0,
        api_key,
        connect_timeout: timeout,
        idle_timeout: timeout,
        retry: Default::default(),
        max_tokens,
    })
}

pub const ENV_ANTHROPIC_KEY: &str = "ANTHROPIC_API_KEY";

/// `[claude]`: the Anthropic API; the key from `api_key_file` or ANTHROPIC_API_KEY.
fn read_claude(
    s: &mut Section<'_, '_>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<PathBuf>,
) -> Option<crate::agent::llm::anthropic::AnthropicSettings> {
    let url = s
        .string("url")
        .map(|(u, _)| u)
        .unwrap_or_else(|| "https://api.anthropic.com".into());
    let model = s
        .string("model")
        .map(|(m, _)| m)
        .unwrap_or_else(|| "claude-sonnet-4-5".into());
    let api_key = read_secret(s, "api_key_file", ENV_ANTHROPIC_KEY, base, env, secrets);
    let timeout = Duration::from_millis(s.int_or("timeout_ms", 60_000, 1_000, 600_000));
    let max_tokens = s.int_or("max_tokens", 2048, 16, 64_000) as u32;
    Some(crate::agent::llm::anthropic::AnthropicSettings {
        url,
        model,
        api_key: api_key?,
        connect_timeout: timeout,
        idle_timeout: timeout,
        retry: Default::default(),
        max_tokens,
    })
}

/// `[prices]`: `"model" = "INPUT/OUTPUT/CACHED"`, US dollars per million tokens.
fn read_prices(s: &mut Section<'_, '_>) -> crate::agent::costs::PriceTable {
    let mut table = crate::agent::costs::default_prices();
    for (model, value, span) in s.string_entries() {
        let parts: Vec<Option<f64>> = value
            .split('/')
            .map(|p| p.trim().parse::<f64>().ok().filter(|v| *v >= 0.0))
            .collect();
        match parts.as_slice() {
            [Some(i), Some(o), Some(c)] => {
                table.insert(model, crate::agent::costs::Price { input: *i, output: *o, cached: *c });
            }
            _ => s.fail(&model, Some(span), format!("`{value}` is not INPUT/OUTPUT/CACHED dollars per million tokens, e.g. \"3/15/0.3\"")),
        }
    }
    table
}

/// `[keys]`: present only when a device is named.
fn read_keys(s: &mut Section<'_, '_>) -> Option<KeySettings> {
    let key = |s: &mut Section<'_, '_>, name: &str| {
        let (k, span) = s.string(name)?;
        let code = parse_key(&k);
        if code.is_none() {
            s.fail(
                name,
                Some(span),
                format!("`{k}` is not a key name such as KEY_F13 or KEY_PAUSE, nor a key code"),
            );
        }
        code
    };
    let push_to_talk = key(s, "push_to_talk");
    let kill_switch = key(s, "kill_switch");
    let (device, _) = s.string("device")?;
    Some(KeySettings {
        device: PathBuf::from(device),
        push_to_talk,
        kill_switch,
    })
}

fn read_poll(s: &mut Section<'_, '_>) -> PollSettings {
    let d = PollSettings::default();
    let ms = |s: &mut Section<'_, '_>, key: &str, default: Duration, min: u64, max: u64| {
        Duration::from_millis(s.int_or(key, default.as_millis() as u64, min, max))
    };
    PollSettings {
        resources: ms(s, "resources_ms", d.resources, 250, 600_000),
        node_status: ms(s, "node_status_ms", d.node_status, 1_000, 3_600_000),
        disks: ms(s, "disks_ms", d.disks, 1_000, 86_400_000),
        tasks: ms(s, "tasks_ms", d.tasks, 1_000, 3_600_000),
        quorum: ms(s, "quorum_ms", d.quorum, 1_000, 3_600_000),
        burst: ms(s, "burst_ms", d.burst, 100, 60_000),
        burst_for: ms(s, "burst_for_ms", d.burst_for, 0, 600_000),
        backoff_max: ms(s, "backoff_max_ms", d.backoff_max, 1_000, 3_600_000),
        recovery_probe: ms(s, "recovery_probe_ms", d.recovery_probe, 1_000, 600_000),
        thresholds: d.thresholds,
    }
}

fn read_alerts(s: &mut Section<'_, '_>) -> Thresholds {
    let d = Thresholds::default();
    let warn = s.number_or("storage_warn_pct", d.warn_pct, 1.0, 100.0);
    let crit = s.number_or("storage_crit_pct", d.crit_pct, 1.0, 100.0);
    if crit < warn {
        s.fail(
            "storage_crit_pct",
            None,
            format!("must be at least storage_warn_pct ({warn})"),
        );
    }
    Thresholds {
        warn_pct: warn,
        crit_pct: crit,
        hysteresis_pct: d.hysteresis_pct,
    }
}

fn read_web(
    s: &mut Section<'_, '_>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<PathBuf>,
) -> Option<WebSettings> {
    let listen = match s.string("listen") {
        Some((l, span)) => match l.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                s.fail(
                    "listen",
                    Some(span),
                    format!("`{l}` is not an address:port (e.g. 0.0.0.0:8443)"),
                );
                None
            }
        },
        None => Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
    };
    let token = read_secret(s, "token_file", ENV_WEB_TOKEN, base, env, secrets);
    if let Some(t) = &token {
        if t.expose().len() < 16 {
            s.fail(
                "token_file",
                None,
                "the side-port token must be at least 16 characters".into(),
            );
        }
    }
    let operator_token = read_secret(
        s,
        "operator_token_file",
        ENV_OPERATOR_TOKEN,
        base,
        env,
        secrets,
    );
    if let (Some(t), Some(o)) = (&token, &operator_token) {
        if o.expose().len() < 16 {
            s.fail(
                "operator_token_file",
                None,
                "the operator token must be at least 16 characters".into(),
            );
        }
        if t.expose() == o.expose() {
            s.fail(
                "operator_token_file",
                None,
                "the operator token must differ from the side-port token".into(),
            );
        }
    }
    let max_body_bytes = s.int_or("max_body_bytes", 64 * 1024, 1024, 16 * 1024 * 1024) as usize;
    let d = McpSettings::default();
    let mut allowed_hosts = d.allowed_hosts;
    allowed_hosts.extend(s.string_list("mcp_allowed_hosts").unwrap_or_default());
    let mcp = McpSettings {
        allowed_hosts,
        allowed_origins: s.string_list("mcp_allowed_origins").unwrap_or_default(),
        client_confirmation: s.bool_or("mcp_client_confirmation", d.client_confirmation),
        max_sessions: s.int_or("mcp_max_sessions", d.max_sessions as u64, 1, 10_000) as usize,
        session_idle: Duration::from_millis(s.int_or(
            "mcp_session_idle_ms",
            d.session_idle.as_millis() as u64,
            1_000,
            86_400_000,
        )),
    };
    let dl = crate::web::conn::ConnLimits::default();
    let limits = crate::web::conn::ConnLimits {
        header_timeout: Duration::from_millis(s.int_or(
            "header_timeout_ms",
            dl.header_timeout.as_millis() as u64,
            100,
            300_000,
        )),
        max_unauthenticated: s.int_or(
            "max_unauthenticated_connections",
            dl.max_unauthenticated as u64,
            1,
            100_000,
        ) as usize,
        chat_burst: s.int_or("chat_burst", u64::from(dl.chat_burst), 1, 10_000) as u32,
        chat_per_minute: s.int_or("chat_per_minute", u64::from(dl.chat_per_minute), 1, 100_000)
            as u32,
        ..dl
    };
    let tls = read_tls(s, base, secrets);
    Some(WebSettings {
        listen: listen?,
        token: token?,
        operator_token: operator_token?,
        max_body_bytes,
        mcp,
        limits,
        tls,
    })
}

/// `tls_cert_file` and `tls_key_file`: both or neither, and they must load as a pair.
fn read_tls(s: &mut Section<'_, '_>, base: &Path, secrets: &mut Vec<PathBuf>) -> Option<TlsFiles> {
    let cert = s.string("tls_cert_file");
    let key = s.string("tls_key_file");
    let (cert, key) = match (cert, key) {
        (None, None) => return None,
        (Some(c), Some(k)) => (c, k),
        (Some((_, span)), None) => {
            s.fail(
                "tls_cert_file",
                Some(span),
                "needs tls_key_file as well (both or neither; `jarvis tls-cert` makes a pair)"
                    .into(),
            );
            return None;
        }
        (None, Some((_, span))) => {
            s.fail(
                "tls_key_file",
                Some(span),
                "needs tls_cert_file as well (both or neither; `jarvis tls-cert` makes a pair)"
                    .into(),
            );
            return None;
        }
    };
    let files = TlsFiles {
        cert_file: resolve(base, &cert.0),
        key_file: remember(secrets, resolve(base, &key.0)),
    };
    match crate::web::tls::load(&files.cert_file, &files.key_file) {
        Ok(_) => Some(files),
        Err(e) => {
            use crate::web::tls::SideTlsError as E;
            let about_key = match &e {
                E::NoKey { .. } | E::Mismatch { .. } => true,
                E::Read { path, .. } => *path == files.key_file,
                _ => false,
            };
            let (field, span) = if about_key {
                ("tls_key_file", key.1)
            } else {
                ("tls_cert_file", cert.1)
            };
            s.fail(field, Some(span), e.to_string());
            None
        }
    }
}

fn read_files(s: &mut Section<'_, '_>, base: &Path) -> crate::files::FileSettings {
    let d = crate::files::FileSettings::default();
    crate::files::FileSettings {
        download_dir: s
            .string("download_dir")
            .map(|(p, _)| resolve(base, &p))
            .unwrap_or(d.download_dir),
        max_download_bytes: s.int_or("max_download_bytes", d.max_download_bytes, 1024, 1 << 40),
        download_timeout: Duration::from_millis(s.int_or(
            "download_timeout_ms",
            d.download_timeout.as_millis() as u64,
            1000,
            86_400_000,
        )),
        allow_hosts: s.string_list("allow_hosts").unwrap_or_default(),
        roots: s
            .string_list("roots")
            .unwrap_or_default()
            .iter()
            .map(|r| resolve(base, r))
            .collect(),
        max_read_bytes: s.int_or("max_read_bytes", d.max_read_bytes as u64, 1024, 64 << 20)
            as usize,
        copy_destinations: match s.string_list("copy_destinations") {
            Some(list) => {
                for d in list.iter().filter(|d| {
                    !crate::ssh::safe_remote_path(d) || d.trim_end_matches('/').is_empty()
                }) {
                    s.fail(
                        "copy_destinations",
                        None,
                        format!("`{d}` is not an absolute folder (letters, digits and / . _ - only; not /)"),
                    );
                }
                list
            }
            None => d.copy_destinations,
        },
    }
}

fn read_ssh(s: &mut Section<'_, '_>, base: &Path) -> SshSettings {
    let path = |s: &mut Section<'_, '_>, key: &str, default: &str| {
        s.string(key)
            .map(|(p, _)| resolve(base, &p))
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let key_file = path(s, "key_file", "/etc/jarvis/secrets/id_ed25519");
    // The key may not exist yet (made at first boot); when it does, it must be private like every secret file.
    if let Ok(meta) = std::fs::metadata(&key_file) {
        if let Err(e) = crate::secret::check_private(&key_file, &meta) {
            s.fail("key_file", None, e.to_string());
        }
    }
    SshSettings {
        user: s
            .string("user")
            .map(|(u, _)| u)
            .unwrap_or_else(|| "root".into()),
        key_file,
        known_hosts: path(s, "known_hosts", "/etc/jarvis/known_hosts"),
        trust_on_first_use: s.bool_or("trust_on_first_use", false),
        timeout: Duration::from_millis(s.int_or("timeout_ms", 15_000, 500, 600_000)),
        max_output_bytes: s.int_or("max_output_bytes", 256 * 1024, 1024, 16 * 1024 * 1024) as usize,
        control_dir: path(s, "control_dir", "/run/jarvis/ssh"),
        hosts: Default::default(),
    }
}

/// `name = "address"` or `name = "address:port"`.
fn read_hosts(s: &mut Section<'_, '_>) -> std::collections::BTreeMap<String, SshHost> {
    let mut out = std::collections::BTreeMap::new();
    for (name, value, span) in s.string_entries() {
        let (address, port) = match value.rsplit_once(':') {
            Some((a, p)) if !a.contains(':') || a.starts_with('[') => match p.parse::<u16>() {
                Ok(port) => (a.trim_matches(['[', ']']).to_string(), port),
                Err(_) => {
                    s.fail(
                        &name,
                        Some(span),
                        format!("`{value}`: the port is not a number"),
                    );
                    continue;
                }
            },
            _ => (value.clone(), 22),
        };
        out.insert(name, SshHost { address, port });
    }
    out
}

/// `node = "AA:BB:CC:DD:EE:FF"` (sent to 255.255.255.255:9) or `node = "AA:BB:CC:DD:EE:FF 192.168.1.255:9"`.
fn read_wol(s: &mut Section<'_, '_>) -> Vec<WolTarget> {
    let mut out = Vec::new();
    for (node, value, span) in s.string_entries() {
        let mut parts = value.split_whitespace();
        let mac = parts.next().and_then(parse_mac);
        let broadcast = match parts.next() {
            None => Some(SocketAddr::from(([255, 255, 255, 255], 9))),
            Some(a) => a.parse::<SocketAddr>().ok(),
        };
        match (mac, broadcast, parts.next()) {
            (Some(mac), Some(broadcast), None) => out.push(WolTarget {
                node,
                mac,
                broadcast,
            }),
            _ => s.fail(
                &node,
                Some(span),
                "expected \"AA:BB:CC:DD:EE:FF\" or \"AA:BB:CC:DD:EE:FF 192.168.1.255:9\"".into(),
            ),
        }
    }
    out
}

/// A secret from the file named by `key` (remembered in `secrets`), else from the environment variable `env_name`.
pub(super) fn read_secret(
    s: &mut Section<'_, '_>,
    key: &str,
    env_name: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<PathBuf>,
) -> Option<Secret> {
    match s.string(key) {
        Some((file, span)) => match Secret::from_file(&remember(secrets, resolve(base, &file))) {
            Ok(secret) => Some(secret),
            Err(e) => {
                s.fail(key, Some(span), e.to_string());
                None
            }
        },
        None => match env(env_name).filter(|v| !v.is_empty()) {
            Some(v) => Some(Secret::new(v)),
            None => {
                s.fail(
                    key,
                    None,
                    format!("missing: name a secret file here or set {env_name}"),
                );
                None
            }
        },
    }
}

/// Notes a secret file's path in `secrets` and returns it.
fn remember(secrets: &mut Vec<PathBuf>, path: PathBuf) -> PathBuf {
    secrets.push(path.clone());
    path
}

/// What the tools must never read: the folder of every secret file and of the SSH key. (The config file itself
/// is added by [`Config::load`], the database by `App::start`.)
fn protected_paths(secrets: &[PathBuf], ssh: Option<&SshSettings>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let files = secrets.iter().chain(ssh.map(|s| &s.key_file));
    for folder in files.filter_map(|f| f.parent()) {
        if !folder.as_os_str().is_empty() && !out.iter().any(|p| p == folder) {
            out.push(folder.to_path_buf());
        }
    }
    out
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";

    fn env(k: &str) -> Option<String> {
        match k {
            ENV_PVE_SECRET => Some("pve-secret".into()),
            ENV_WEB_TOKEN => Some("0123456789abcdef0123".into()),
            ENV_OPERATOR_TOKEN => Some("operator-0123456789abcdef".into()),
            _ => None,
        }
    }

    #[test]
    fn a_minimal_config_with_secrets_from_the_environment() {
        let src = format!("[pve]\nurl = \"https://10.0.0.2:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\nfingerprint = \"{FP}\"\n");
        let c = Config::parse(&src, "j.toml", Path::new("/etc/jarvis"), &env).expect("valid");
        assert_eq!(c.pve.token.secret.expose(), "pve-secret");
        assert_eq!(c.poll, PollSettings::default());
        assert_eq!(
            c.web.listen,
            "0.0.0.0:8443".parse::<SocketAddr>().expect("addr")
        );
        assert!(matches!(c.pve.trust, Trust::Pinned(_)));
    }

    #[test]
    fn every_problem_is_listed_with_its_line() {
        let src = "[pve]\nurl = \"http://pve:8006\"\ntoken_id = \"root\"\nfingerprint = \"nope\"\n\n[poll]\nresources_ms = 10\n\n[web]\nlisten = \"everywhere\"\n";
        let Err(ConfigError::Invalid { problems, .. }) =
            Config::parse(src, "j.toml", Path::new("."), &env)
        else {
            panic!("expected problems");
        };
        let got: Vec<(usize, &str)> = problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "pve.url"),
                (3, "pve.token_id"),
                (4, "pve.fingerprint"),
                (7, "poll.resources_ms"),
                (10, "web.listen")
            ]
        );
    }

    #[test]
    fn the_recovery_probe_is_read_and_checked() {
        let src = format!("[pve]\nurl = \"https://pve:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\nfingerprint = \"{FP}\"\n\n[poll]\nrecovery_probe_ms = 3000\n");
        let c = Config::parse(&src, "j.toml", Path::new("."), &env).expect("valid");
        assert_eq!(c.poll.recovery_probe, Duration::from_secs(3));
        let bad = src.replace("= 3000", "= 10");
        let Err(ConfigError::Invalid { problems, .. }) =
            Config::parse(&bad, "j.toml", Path::new("."), &env)
        else {
            panic!("expected a problem");
        };
        assert_eq!(
            (problems[0].line, problems[0].field.as_str()),
            (7, "poll.recovery_probe_ms")
        );
    }

    #[test]
    fn the_kiosk_keyboard_and_quit_chord_are_read_and_checked() {
        let src = format!("[pve]\nurl = \"https://pve:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\nfingerprint = \"{FP}\"\n\n[kiosk]\non_screen_keyboard = \"always\"\nallow_quit_chord = true\n");
        let c = Config::parse(&src, "j.toml", Path::new("."), &env).expect("valid");
        assert_eq!(c.kiosk.keyboard, KeyboardMode::Always);
        assert!(c.kiosk.allow_quit_chord);
        let defaults = src.replace(
            "on_screen_keyboard = \"always\"\nallow_quit_chord = true\n",
            "",
        );
        let c = Config::parse(&defaults, "j.toml", Path::new("."), &env).expect("valid");
        assert_eq!(c.kiosk.keyboard, KeyboardMode::Auto);
        assert!(
            !c.kiosk.allow_quit_chord,
            "a keyboard cannot quit the appliance by default"
        );
        let bad = src.replace("\"always\"", "\"sometimes\"");
        let Err(ConfigError::Invalid { problems, .. }) =
            Config::parse(&bad, "j.toml", Path::new("."), &env)
        else {
            panic!("expected a problem");
        };
        assert_eq!(problems[0].field, "kiosk.on_screen_keyboard");
        assert!(problems[0].message.contains("auto, always, never"));
    }

    #[test]
    fn wake_on_lan_targets_are_read_and_checked() {
        let src = format!(
            "[pve]\nurl = \"https://pve:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\nfingerprint = \"{FP}\"\n\n[wol]\npve = \"00:11:22:33:44:55\"\nagent = \"00:11:22:33:44:66 192.168.1.255:9\"\n"
        );
        let c = Config::parse(&src, "j.toml", Path::new("."), &env).expect("valid");
        assert_eq!(c.tools.wol.len(), 2);
        let bad = src.replace("00:11:22:33:44:66 192", "00:11 192");
        let Err(ConfigError::Invalid { problems, .. }) =
            Config::parse(&bad, "j.toml", Path::new("."), &env)
        else {
            panic!("expected a problem");
        };
        assert_eq!(
            (problems[0].line, problems[0].field.as_str()),
            (8, "wol.agent")
        );
    }

    #[test]
    fn a_syntax_error_is_the_only_problem_reported() {
        let src = format!("[pve]\nurl = \"https://pve:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\nfingerprint = \"{FP}\"\n\n[web\n");
        let Err(ConfigError::Invalid { problems, .. }) =
            Config::parse(&src, "j.toml", Path::new("."), &|_| None)
        else {
            panic!("expected the syntax error");
        };
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 1, "{text:?}");
        assert_eq!(problems[0].line, 6);
        assert!(problems[0].message.starts_with("TOML syntax"), "{text:?}");
    }

    #[test]
    fn missing_secrets_and_trust_are_problems() {
        let src = "[pve]\nurl = \"https://pve:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\n";
        let Err(ConfigError::Invalid { problems, .. }) =
            Config::parse(src, "j.toml", Path::new("."), &|_| None)
        else {
            panic!("expected problems");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"pve.token_secret_file"));
        assert!(fields.contains(&"pve.fingerprint"));
        assert!(fields.contains(&"web.token_file"));
        assert!(fields.contains(&"web.operator_token_file"));
    }

    #[test]
    fn a_relative_store_path_is_beside_the_config_file_not_the_working_directory() {
        let src = format!("[pve]\nurl = \"https://pve:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\nfingerprint = \"{FP}\"\n\n[store]\npath = \"data/jarvis.db\"\n");
        let c = Config::parse(&src, "j.toml", Path::new("/etc/jarvis"), &env).expect("valid");
        assert_eq!(c.store_path, PathBuf::from("/etc/jarvis/data/jarvis.db"));
        let abs = src.replace("data/jarvis.db", "/var/lib/jarvis/j.db");
        let c = Config::parse(&abs, "j.toml", Path::new("/etc/jarvis"), &env).expect("valid");
        assert_eq!(c.store_path, PathBuf::from("/var/lib/jarvis/j.db"));
        let default = src.replace("\n[store]\npath = \"data/jarvis.db\"\n", "");
        let c = Config::parse(&default, "j.toml", Path::new("/etc/jarvis"), &env).expect("valid");
        assert_eq!(c.store_path, PathBuf::from("/var/lib/jarvis/jarvis.db"));
    }

    #[test]
    fn the_secret_folders_the_ssh_key_and_the_config_file_are_protected() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        std::fs::create_dir_all(base.join("secrets")).expect("mkdir");
        std::fs::create_dir_all(base.join("web")).expect("mkdir");
        for (f, v) in [
            ("secrets/pve", "pve-secret"),
            ("web/token", "0123456789abcdef0123"),
        ] {
            std::fs::write(base.join(f), v).expect("write");
            std::fs::set_permissions(base.join(f), std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
        }
        let src = format!(
            "[pve]\nurl = \"https://pve:8006\"\ntoken_id = \"jarvis@pve!kiosk\"\nfingerprint = \"{FP}\"\n\
             token_secret_file = \"secrets/pve\"\n\n[web]\ntoken_file = \"web/token\"\n\n\
             [ssh]\nkey_file = \"/srv/keys/id_ed25519\"\n"
        );
        let file = base.join("jarvis.toml");
        std::fs::write(&file, &src).expect("write");
        let c = Config::parse(&src, "j.toml", base, &env).expect("valid");
        assert_eq!(
            c.tools.protected,
            [
                base.join("secrets"),
                base.join("web"),
                PathBuf::from("/srv/keys")
            ]
        );
        // Loaded from its file, the config file itself is protected too. `load` reads the real environment, so
        // the operator token gets a file as well.
        let src = src.replace("[web]\n", "[web]\noperator_token_file = \"web/operator\"\n");
        std::fs::write(&file, &src).expect("write");
        std::fs::write(base.join("web/operator"), "operator-0123456789abcdef").expect("write");
        std::fs::set_permissions(
            base.join("web/operator"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        let c = Config::load(&file).expect("valid");
        assert_eq!(c.tools.protected.last(), Some(&file));
        assert!(c.tools.protected.contains(&base.join("web")));
    }
}

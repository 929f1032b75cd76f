//! The tool registry: the one way any actor (the agent, MCP clients, the autopilot, the kiosk, the side port,
//! voice) acts on the homelab, so the safety gate, the audit log and the kill switch live in exactly one place.
//!
//! [`Registry::invoke`] validates arguments against the tool's schema (errors name the field), applies the tier
//! rules ([`Tier`]), records an audit row and publishes a `ToolCalled` event. Tier 2 calls without an operator's
//! approval return a pending [`gate::Approval`]; tier 3 tools are never listed and never run. A tool family is one
//! file with a `register` function (see [`families`]).
//!
//! - [`gate`]: approvals and their digests;
//! - [`typed`]: tools built from a typed argument struct (schema by schemars, validation by serde);
//! - families: [`cluster`] (read), [`power`] (guest power, node reboot, wake-on-LAN), [`snapshots`], [`system`],
//!   [`docker`], [`files`], [`projects`], [`memory`] (Jarvis's own notes), [`faces`] (the face gallery and its review queue).

pub mod cameras;
pub mod cluster;
pub mod docker;
pub mod faces;
pub mod files;
pub mod gate;
pub mod memory;
pub mod power;
pub mod presence;
pub mod projects;
pub mod snapshots;
pub mod system;
pub mod typed;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;

use self::gate::{call_digest, Approval, Approvals, DecideError};
use crate::bus::{Bus, Event};
use crate::cluster::client::PveClient;
use crate::state::{StateHandle, World};
use crate::store::{AuditRow, Store, StoreError};

/// Tools whose results carry text from outside Jarvis that anyone may have written (file and project contents and
/// names, command output and logs, downloads). Once a model's turn has read one, its routine calls need the
/// operator's approval for the rest of that turn (the taint rule, docs/SECURITY.md).
pub const OUTSIDE_TEXT_TOOLS: &[&str] = &[
    "read_file",
    "list_dir",
    "download_file",
    "read_project_file",
    "search_project",
    "project_tree",
    "docker_logs",
    "run_command",
    "camera_events",
];

/// Whether a tool's result is text from outside (see [`OUTSIDE_TEXT_TOOLS`]).
pub fn reads_outside_text(tool: &str) -> bool {
    OUTSIDE_TEXT_TOOLS.contains(&tool)
}

/// Largest accepted argument object, serialised.
pub const MAX_ARGS_BYTES: usize = 16 * 1024;
const KILL_SWITCH_KEY: &str = "kill_switch";

/// How much confirmation a tool needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Tier {
    /// Reads: anyone authenticated.
    Read = 0,
    /// Routine changes: any actor (refused while the kill switch is on).
    Routine = 1,
    /// Needs an operator's approval bound to the exact call.
    Confirm = 2,
    /// Never listed, never run.
    Forbidden = 3,
}

impl Tier {
    pub fn number(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    #[error("invalid arguments for {tool}: `{field}`: {message}")]
    InvalidArguments {
        tool: String,
        field: String,
        message: String,
    },
    #[error("arguments are {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("the kill switch is on: every action (tier 1 and above) is refused until the operator turns it off")]
    KillSwitch,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
    #[error("the audit log cannot be written ({0}): the action was not taken")]
    Unaudited(String),
}

impl ToolError {
    pub fn outcome(&self) -> &'static str {
        match self {
            ToolError::UnknownTool(_)
            | ToolError::InvalidArguments { .. }
            | ToolError::TooLarge { .. } => "invalid",
            ToolError::KillSwitch | ToolError::Unaudited(_) => "refused",
            ToolError::NotFound(_) | ToolError::Failed(_) => "error",
        }
    }
}

/// What an invocation produced.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The tool ran; its result.
    Done { result: Value },
    /// A tier-2 call waits for the operator; call again with the same arguments once approved.
    PendingApproval {
        approval: Approval,
        how_to_approve: String,
    },
}

/// Arguments checked and put in canonical form, with the plain-language summary of what the call will do.
pub struct Prepared {
    pub canonical: Value,
    pub summary: String,
}

/// What tools may use: the PVE client, the spine, and their settings.
#[derive(Clone)]
pub struct ToolContext {
    pub pve: PveClient,
    pub bus: Bus,
    pub state: StateHandle,
    pub settings: Arc<ToolSettings>,
    /// Runs commands on the nodes (`None` when SSH is not configured).
    pub executor: Option<Arc<dyn crate::ssh::Executor>>,
    /// Where a command's output goes as it arrives, for this one call (set by [`Registry::invoke_live`]; the
    /// kiosk's terminal). Always `None` in the registry's own context.
    pub live: Option<tokio::sync::mpsc::Sender<String>>,
    /// The store, for tools that keep Jarvis's own records (memory). Set by the registry on every call.
    pub store: Option<Arc<Store>>,
    /// Frigate's API, when configured (camera events and snapshots).
    pub frigate: Option<Arc<crate::vision::frigate::client::FrigateClient>>,
    /// The latest frames of the cameras Jarvis decodes itself.
    pub frames: crate::vision::frames::LiveFrames,
}

/// Settings the tools need from the config.
#[derive(Debug, Clone, Default)]
pub struct ToolSettings {
    /// Wake-on-LAN targets by node name.
    pub wol: Vec<WolTarget>,
    /// How long a power action is followed before the tool returns.
    pub follow_limit: Duration,
    /// The `[ssh_hosts]` name of the Docker VM.
    pub docker_host: Option<String>,
    /// Downloads and the file roots.
    pub files: crate::files::FileSettings,
    /// Indexed project directories by name.
    pub projects: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// Jarvis's own data, which no tool reads, lists or searches even below a root or inside a project: the
    /// folders of the secret files and the SSH key and the config file (from the config loader), the database
    /// and its `-wal`, `-shm`, `-journal` (added by `App::start`). See [`crate::files::protected_by`].
    pub protected: Vec<std::path::PathBuf>,
    /// How faces are matched, learnt and kept (`[faces]`).
    pub faces: crate::vision::gallery::GallerySettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WolTarget {
    pub node: String,
    pub mac: [u8; 6],
    pub broadcast: std::net::SocketAddr,
}

/// One tool. Most are [`typed::TypedTool`]s.
pub trait Tool: Send + Sync {
    fn name(&self) -> &str;
    /// Written for an LLM: what it does, when to use it, what it returns.
    fn description(&self) -> &str;
    fn tier(&self) -> Tier;
    /// The tier of one call (a tool whose tier depends on its arguments lists its highest).
    fn tier_for(&self, _canonical: &Value, _settings: &ToolSettings) -> Tier {
        self.tier()
    }
    /// JSON Schema of the arguments object.
    fn schema(&self) -> &Value;
    /// Validates and canonicalises the arguments; the summary says exactly what will happen.
    fn prepare(&self, args: Value, world: &World) -> Result<Prepared, ToolError>;
    fn run(
        &self,
        ctx: ToolContext,
        canonical: Value,
    ) -> BoxFuture<'static, Result<Value, ToolError>>;
}

/// A tool as listed to actors.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub tier: u8,
    pub input_schema: Value,
}

/// Registers every tool family. A new family is one file with a `register` function, added here.
pub fn families(r: &mut Registry) {
    cluster::register(r);
    power::register(r);
    snapshots::register(r);
    system::register(r);
    docker::register(r);
    files::register(r);
    projects::register(r);
    memory::register(r);
    faces::register(r);
    presence::register(r);
    cameras::register(r);
}

pub struct Registry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    approval_ttl: Duration,
    ctx: ToolContext,
    store: Arc<Store>,
}

impl Registry {
    /// An empty registry. Approvals and the kill switch live in the store, shared with other Jarvis processes.
    pub fn new(ctx: ToolContext, store: Arc<Store>) -> Result<Registry, StoreError> {
        store.setting(KILL_SWITCH_KEY)?;
        Ok(Registry {
            tools: BTreeMap::new(),
            approval_ttl: gate::DEFAULT_APPROVAL_TTL,
            ctx,
            store,
        })
    }

    /// With every family registered.
    pub fn with_all_tools(ctx: ToolContext, store: Arc<Store>) -> Result<Registry, StoreError> {
        let mut r = Registry::new(ctx, store)?;
        families(&mut r);
        Ok(r)
    }

    pub fn set_approval_ttl(&mut self, ttl: Duration) {
        self.approval_ttl = ttl;
    }

    pub fn register(&mut self, tool: impl Tool + 'static) {
        self.tools.insert(tool.name().to_string(), Arc::new(tool));
    }

    /// Every tool an actor may see (tier 3 never is).
    pub fn list(&self) -> Vec<ToolInfo> {
        self.tools
            .values()
            .filter(|t| t.tier() < Tier::Forbidden)
            .map(|t| ToolInfo {
                name: t.name().to_string(),
                description: t.description().to_string(),
                tier: t.tier().number(),
                input_schema: t.schema().clone(),
            })
            .collect()
    }

    /// The names of the indexed projects (`[projects]`).
    pub fn project_names(&self) -> Vec<String> {
        self.ctx.settings.projects.keys().cloned().collect()
    }

    /// The tier of a listed tool (`None` for unknown and forbidden ones).
    pub fn tier_of(&self, name: &str) -> Option<Tier> {
        self.tools
            .get(name)
            .map(|t| t.tier())
            .filter(|t| *t < Tier::Forbidden)
    }

    /// Waits (up to `limit`) for the next change of the state, then returns it: after a write, the first view
    /// that can show its effect.
    pub async fn next_world(&self, limit: Duration) -> Arc<World> {
        let mut rx = self.ctx.state.subscribe();
        rx.mark_unchanged();
        let _ = tokio::time::timeout(limit, rx.changed()).await;
        self.ctx.state.get()
    }

    /// The world as the tools see it now.
    pub fn world(&self) -> Arc<World> {
        self.ctx.state.get()
    }

    /// Frigate's client, when configured (the kiosk's camera tile reads frames through it).
    pub fn frigate(&self) -> Option<Arc<crate::vision::frigate::client::FrigateClient>> {
        self.ctx.frigate.clone()
    }

    /// The latest frames of the cameras Jarvis decodes itself.
    pub fn frames(&self) -> &crate::vision::frames::LiveFrames {
        &self.ctx.frames
    }

    /// Where the database is (snapshots and other files tools make live beside it).
    pub fn store_path(&self) -> &std::path::Path {
        self.store.path()
    }

    /// Whether the kill switch is on. An unreadable store counts as on: the gate fails closed.
    pub fn kill_switch(&self) -> bool {
        match self.store.setting(KILL_SWITCH_KEY) {
            Ok(v) => v.as_deref() == Some("on"),
            Err(e) => {
                tracing::error!("cannot read the kill switch, refusing actions: {e}");
                true
            }
        }
    }

    /// Turns the kill switch on or off; it survives a restart and holds for every Jarvis process on the box.
    pub fn set_kill_switch(&self, on: bool) -> Result<(), StoreError> {
        self.store
            .set_setting(KILL_SWITCH_KEY, if on { "on" } else { "off" })?;
        self.ctx.bus.publish(Event::KillSwitch { on });
        tracing::warn!(on, "kill switch");
        Ok(())
    }

    pub fn pending_approvals(&self) -> Result<Vec<Approval>, StoreError> {
        Approvals::new(&self.store).pending(crate::time::now_ms())
    }

    /// The operator approves or denies a pending call.
    pub fn decide(&self, id: &str, approve: bool) -> Result<Approval, DecideError> {
        let a = Approvals::new(&self.store).decide(id, approve, crate::time::now_ms())?;
        self.ctx.bus.publish(Event::ApprovalDecided {
            id: a.id.clone(),
            tool: a.tool.clone(),
            approved: approve,
        });
        Ok(a)
    }

    /// The digest of a call as the gate computes it (the arguments checked and canonicalised).
    fn digest_of(&self, tool: &str, args: Value) -> Result<String, ToolError> {
        let t = self
            .tools
            .get(tool)
            .filter(|t| t.tier() < Tier::Forbidden)
            .ok_or_else(|| ToolError::UnknownTool(tool.to_string()))?;
        let prepared = t.prepare(args, &self.ctx.state.get())?;
        Ok(call_digest(tool, &prepared.canonical))
    }

    /// Asks for a confirmation of this actor's pending call on behalf of the asking client's user (MCP
    /// elicitation, where config allows it): a single-use nonce bound to that approval and to `scope` (the
    /// session). `None` when nothing is pending.
    pub fn challenge(
        &self,
        actor: &str,
        tool: &str,
        args: Value,
        scope: &str,
    ) -> Result<Option<String>, ToolError> {
        let digest = self.digest_of(tool, args)?;
        Approvals::new(&self.store)
            .challenge(actor, &digest, scope, crate::time::now_ms())
            .map_err(|e| ToolError::Failed(format!("the approval store failed: {e}")))
    }

    /// The client user's answer to a [`Registry::challenge`]: decides the approval only when `nonce` was issued
    /// for exactly this call, actor and scope (see [`gate::Approvals::answer`]).
    pub fn answer_challenge(
        &self,
        actor: &str,
        tool: &str,
        args: Value,
        scope: &str,
        nonce: &str,
        approve: bool,
    ) -> Result<Approval, DecideError> {
        let digest = self
            .digest_of(tool, args)
            .map_err(|_| DecideError::Unsolicited)?;
        let a = Approvals::new(&self.store).answer(
            actor,
            &digest,
            scope,
            nonce,
            approve,
            crate::time::now_ms(),
        )?;
        self.ctx.bus.publish(Event::ApprovalDecided {
            id: a.id.clone(),
            tool: a.tool.clone(),
            approved: approve,
        });
        Ok(a)
    }

    /// Runs `tool` for `actor` through the gate. Every call, refused ones included, is audited.
    pub async fn invoke(&self, actor: &str, tool: &str, args: Value) -> Result<Outcome, ToolError> {
        self.invoke_with(actor, tool, args, Invocation::default())
            .await
    }

    /// [`Registry::invoke`], with a command's output also streamed to `live` as it arrives (tools that run
    /// commands use it; the others ignore it). The result still carries the whole output.
    pub async fn invoke_live(
        &self,
        actor: &str,
        tool: &str,
        args: Value,
        live: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> Result<Outcome, ToolError> {
        let how = Invocation {
            live,
            ..Invocation::default()
        };
        self.invoke_with(actor, tool, args, how).await
    }

    /// [`Registry::invoke`] with the circumstances of the call (live output, taint).
    pub async fn invoke_with(
        &self,
        actor: &str,
        tool: &str,
        args: Value,
        how: Invocation,
    ) -> Result<Outcome, ToolError> {
        let started = Instant::now();
        let gated = self.gate_and_run(actor, tool, args, how).await;
        let (tier, digest, result) = (gated.tier, gated.digest, gated.result);
        let (outcome, detail) = match &result {
            Ok(Outcome::Done { .. }) => ("ok", String::new()),
            Ok(Outcome::PendingApproval { approval, .. }) => {
                ("pending", format!("approval {}", approval.id))
            }
            Err(e) => (e.outcome(), e.to_string()),
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let row = AuditRow {
            ts_ms: crate::time::now_ms(),
            actor: actor.to_string(),
            tool: tool.to_string(),
            tier: tier.map(Tier::number).unwrap_or(0),
            args_digest: digest,
            outcome: outcome.to_string(),
            detail: detail.clone(),
            duration_ms,
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.append_audit(&row)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("cannot write the audit log: {e}"),
            Err(e) => tracing::error!("audit task: {e}"),
        }
        self.ctx.bus.publish(Event::ToolCalled {
            actor: actor.to_string(),
            tool: tool.to_string(),
            tier: tier.map(Tier::number).unwrap_or(0),
            outcome: outcome.to_string(),
            detail,
            duration_ms,
        });
        result
    }

    /// Records that an action is about to run (tier ≥ 1; its outcome gets a row of its own, the log being
    /// append-only): if that cannot be written, the action does not run.
    async fn audit_intent(
        &self,
        actor: &str,
        tool: &str,
        tier: Tier,
        digest: &str,
    ) -> Result<(), ToolError> {
        let row = AuditRow {
            ts_ms: crate::time::now_ms(),
            actor: actor.to_string(),
            tool: tool.to_string(),
            tier: tier.number(),
            args_digest: digest.to_string(),
            outcome: "started".to_string(),
            detail: String::new(),
            duration_ms: 0,
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.append_audit(&row)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::error!(
                    tool,
                    "the audit log cannot be written, refusing the action: {e}"
                );
                Err(ToolError::Unaudited(e.to_string()))
            }
            Err(e) => Err(ToolError::Unaudited(e.to_string())),
        }
    }

    async fn gate_and_run(&self, actor: &str, name: &str, args: Value, how: Invocation) -> Gated {
        let Some(tool) = self
            .tools
            .get(name)
            .filter(|t| t.tier() < Tier::Forbidden)
            .cloned()
        else {
            return Gated::refused(
                None,
                String::new(),
                ToolError::UnknownTool(name.to_string()),
            );
        };
        let size = args.to_string().len();
        if size > MAX_ARGS_BYTES {
            let too_large = ToolError::TooLarge {
                size,
                limit: MAX_ARGS_BYTES,
            };
            return Gated::refused(Some(tool.tier()), String::new(), too_large);
        }
        let world = self.ctx.state.get();
        let mut prepared = match tool.prepare(args, &world) {
            Ok(p) => p,
            Err(e) => return Gated::refused(Some(tool.tier()), String::new(), e),
        };
        let digest = call_digest(name, &prepared.canonical);
        let mut call_tier = tool.tier_for(&prepared.canonical, &self.ctx.settings);
        if call_tier == Tier::Routine {
            if let Some(reason) = &how.taint {
                // The taint rule: after outside text entered the turn, a routine action is the operator's call.
                call_tier = Tier::Confirm;
                prepared.summary = format!("{} (asked because {reason})", prepared.summary);
            }
        }
        let tier = Some(call_tier);
        if call_tier >= Tier::Routine && self.kill_switch() {
            return Gated::refused(tier, digest, ToolError::KillSwitch);
        }
        if call_tier == Tier::Confirm {
            let now = crate::time::now_ms();
            let approvals = Approvals::new(&self.store);
            let store_err =
                |e: StoreError| ToolError::Failed(format!("the approval store failed: {e}"));
            let approved = match approvals.consume(actor, &digest, now) {
                Ok(a) => a,
                Err(e) => return Gated::refused(tier, digest, store_err(e)),
            };
            if approved.is_none() {
                let approval = match approvals.request(
                    name,
                    actor,
                    &digest,
                    prepared.summary,
                    self.approval_ttl,
                    now,
                ) {
                    Ok(a) => a,
                    Err(e) => return Gated::refused(tier, digest, store_err(e)),
                };
                self.ctx.bus.publish(Event::ApprovalRequested {
                    id: approval.id.clone(),
                    tool: name.to_string(),
                    actor: actor.to_string(),
                    summary: approval.summary.clone(),
                    expires_ms: approval.expires_ms,
                });
                let how_to_approve = format!(
                    "The operator approves with `jarvis approve {id}` or POST /api/v1/approvals/{id} on the side port \
                     (or on the kiosk); then call {name} again with the same arguments within {secs} s.",
                    id = approval.id,
                    secs = self.approval_ttl.as_secs()
                );
                let pending = Outcome::PendingApproval {
                    approval,
                    how_to_approve,
                };
                return Gated {
                    tier,
                    digest,
                    result: Ok(pending),
                };
            }
        }
        if call_tier >= Tier::Routine {
            if let Err(e) = self.audit_intent(actor, name, call_tier, &digest).await {
                return Gated::refused(tier, digest, e);
            }
        }
        let ctx = ToolContext {
            live: how.live,
            store: Some(self.store.clone()),
            ..self.ctx.clone()
        };
        let result = tool.run(ctx, prepared.canonical).await;
        Gated {
            tier,
            digest,
            result: result.map(|result| Outcome::Done { result }),
        }
    }
}

/// The circumstances of one call.
#[derive(Debug, Default)]
pub struct Invocation {
    /// Where a command's output goes as it arrives (the kiosk's terminal).
    pub live: Option<tokio::sync::mpsc::Sender<String>>,
    /// Why this call cannot be trusted as the operator's own wish (the turn read outside text): a routine action
    /// then needs the operator's approval, and the card says why.
    pub taint: Option<String>,
}

/// What the gate decided and did, for the audit row.
struct Gated {
    tier: Option<Tier>,
    digest: String,
    result: Result<Outcome, ToolError>,
}

impl Gated {
    fn refused(tier: Option<Tier>, digest: String, error: ToolError) -> Gated {
        Gated {
            tier,
            digest,
            result: Err(error),
        }
    }
}

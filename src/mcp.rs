//! The tool registry served over MCP (rmcp): streamable HTTP at `/mcp` on the side port (behind the same bearer
//! auth, with Host and Origin allowlists) and stdio (`jarvis mcp`). Tier-3 tools are never listed; tier-2 tools
//! say in their description that they need confirmation. A tool failure is an MCP tool error (`isError`), never a
//! protocol error.
//!
//! Who confirms a tier-2 call: by default only the operator (kiosk, operator token, CLI); the answer to an MCP
//! client is the pending approval and where the operator approves it. Where config opts in
//! (`[web] mcp_client_confirmation`), a client that declared elicitation has its own user asked: on protocol
//! 2026-07-28 through an `InputRequiredResult` whose `requestState` is a server-made nonce bound to that approval,
//! that session and that call, used once; on older sessions through a server-to-client request the server
//! awaits. An `inputResponses` answer nobody asked for is ignored (docs/SECURITY.md). The cluster snapshot is a
//! resource.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ElicitRequest,
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema, Implementation,
    InputRequest, InputRequests, InputRequiredResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};

use crate::state::StateHandle;
use crate::tools::gate::Approval;
use crate::tools::{Outcome, Registry};

/// The actor MCP calls are audited under.
pub const ACTOR: &str = "mcp";
/// The cluster snapshot resource.
pub const CLUSTER_URI: &str = "jarvis://cluster";
const CONFIRM_KEY: &str = "confirm";

#[derive(Clone)]
pub struct JarvisMcp {
    registry: Arc<Registry>,
    state: StateHandle,
    tools: Arc<Vec<Tool>>,
    /// Whether an MCP client's own user may confirm tier-2 calls (`[web] mcp_client_confirmation`).
    client_confirmation: bool,
    /// The scope of confirmations asked outside an HTTP session (stdio: this process's connection).
    process_scope: Arc<str>,
}

/// What the client sent alongside a call that claims to answer a confirmation.
struct Answer<'a> {
    nonce: Option<&'a str>,
    response: &'a Value,
}

impl JarvisMcp {
    pub fn new(
        registry: Arc<Registry>,
        state: StateHandle,
        client_confirmation: bool,
    ) -> JarvisMcp {
        let tools = registry
            .list()
            .into_iter()
            .map(|t| {
                let schema = t.input_schema.as_object().cloned().unwrap_or_default();
                Tool::new(t.name, t.description, Arc::new(schema))
            })
            .collect();
        JarvisMcp {
            registry,
            state,
            tools: Arc::new(tools),
            client_confirmation,
            process_scope: format!("process:{}", hex::encode(rand::random::<[u8; 8]>())).into(),
        }
    }

    /// The session a confirmation is bound to: the HTTP session where there is one, every stateless HTTP request
    /// alike (the nonce itself is then the binding), this process's connection over stdio.
    fn scope(&self, ctx: &RequestContext<RoleServer>) -> String {
        match ctx.extensions.get::<axum::http::request::Parts>() {
            Some(parts) => match parts
                .headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
            {
                Some(id) => format!("session:{id}"),
                None => "http".to_string(),
            },
            None => self.process_scope.to_string(),
        }
    }

    /// Whether this request may be asked to confirm through its client's user: config opts in, and the client
    /// declared elicitation.
    fn may_elicit(&self, ctx: &RequestContext<RoleServer>) -> bool {
        self.client_confirmation
            && ctx
                .client_capabilities()
                .is_some_and(|c| c.elicitation.is_some())
    }

    /// A finished call's result: its JSON as text, and the picture it names (`camera_snapshot`) as an image.
    async fn done(&self, result: Value) -> CallToolResult {
        let store = self.registry.store_path().to_path_buf();
        let (result, image) = tokio::task::spawn_blocking(move || {
            let image = crate::tools::cameras::image_of(&result, &store);
            (result, image)
        })
        .await
        .unwrap_or((Value::Null, None));
        let mut out = done(&result);
        if let Some(data) = image {
            out.content.push(ContentBlock::image(data, "image/jpeg"));
        }
        out
    }

    async fn invoke(
        &self,
        name: &str,
        args: Value,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        match self.registry.invoke(ACTOR, name, args.clone()).await {
            Ok(Outcome::Done { result }) => Ok(self.done(result).await.into()),
            Ok(Outcome::PendingApproval {
                approval,
                how_to_approve,
            }) => {
                if !self.may_elicit(ctx) {
                    return Ok(pending(&approval, &how_to_approve).into());
                }
                let params = confirm_params(&approval)?;
                let modern = ctx.protocol_version().is_some_and(|v| !v.has_initialize());
                if modern {
                    let nonce = match self.registry.challenge(ACTOR, name, args, &self.scope(ctx)) {
                        Ok(Some(n)) => n,
                        Ok(None) => return Ok(pending(&approval, &how_to_approve).into()),
                        Err(e) => return Ok(tool_error(e.to_string()).into()),
                    };
                    let mut requests = InputRequests::new();
                    requests.insert(
                        CONFIRM_KEY.into(),
                        InputRequest::Elicitation(ElicitRequest::new(params)),
                    );
                    return Ok(InputRequiredResult::new(Some(requests), Some(nonce)).into());
                }
                // Legacy sessions: the server asks and waits here, so the answer is the response to this very
                // request (rmcp matches it by request id; an answer nobody asked for is dropped).
                match ctx.peer.create_elicitation(params).await {
                    Ok(answer) => {
                        let approve = approves(&answer);
                        if let Err(e) = self.registry.decide(&approval.id, approve) {
                            return Ok(tool_error(e.to_string()).into());
                        }
                        self.after_answer(name, args, approve, &approval.summary)
                            .await
                    }
                    Err(e) => {
                        tracing::info!(
                            "elicitation failed, falling back to operator approval: {e}"
                        );
                        Ok(pending(&approval, &how_to_approve).into())
                    }
                }
            }
            Err(e) => Ok(tool_error(e.to_string()).into()),
        }
    }

    /// A call that carries `inputResponses`. They count only as the answer to the confirmation this server asked
    /// for (the nonce it put in `requestState`), for this exact call, in this session, once, and only where
    /// config lets clients confirm; anything else is ignored and the call goes through the gate as if plain.
    async fn answered(
        &self,
        name: &str,
        args: Value,
        answer: Answer<'_>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let modern = ctx.protocol_version().is_some_and(|v| !v.has_initialize());
        let usable = self.may_elicit(ctx) && modern;
        let parsed = serde_json::from_value::<ElicitResult>(answer.response.clone());
        let decided = match (usable, answer.nonce, parsed) {
            (true, Some(nonce), Ok(result)) => {
                let approve = approves(&result);
                match self.registry.answer_challenge(
                    ACTOR,
                    name,
                    args.clone(),
                    &self.scope(ctx),
                    nonce,
                    approve,
                ) {
                    Ok(a) => Some((approve, a.summary)),
                    Err(e) => {
                        tracing::warn!(tool = name, "ignored a confirmation: {e}");
                        None
                    }
                }
            }
            _ => {
                tracing::warn!(
                    tool = name,
                    "ignored a confirmation nobody asked for (client confirmation is {}; protocol {})",
                    if self.client_confirmation { "on" } else { "off" },
                    if modern { "stateless" } else { "session" },
                );
                None
            }
        };
        match decided {
            Some((approve, summary)) => self.after_answer(name, args, approve, &summary).await,
            None => self.invoke(name, args, ctx).await,
        }
    }

    /// Runs the call the client's user just approved (or says it was declined).
    async fn after_answer(
        &self,
        name: &str,
        args: Value,
        approve: bool,
        summary: &str,
    ) -> Result<CallToolResponse, ErrorData> {
        if !approve {
            return Ok(tool_error(format!("Declined: nothing was done ({summary}).")).into());
        }
        match self.registry.invoke(ACTOR, name, args).await {
            Ok(Outcome::Done { result }) => Ok(self.done(result).await.into()),
            Ok(Outcome::PendingApproval {
                approval,
                how_to_approve,
            }) => Ok(pending(&approval, &how_to_approve).into()),
            Err(e) => Ok(tool_error(e.to_string()).into()),
        }
    }
}

fn approves(answer: &ElicitResult) -> bool {
    matches!(answer.action, ElicitationAction::Accept)
        && answer
            .content
            .as_ref()
            .and_then(|c| c.get("approve"))
            .and_then(Value::as_bool)
            == Some(true)
}

fn tool_error(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.into())])
}

fn done(result: &Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string());
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// Not an error, but plainly not done: the action waits for the operator.
fn pending(approval: &Approval, how_to_approve: &str) -> CallToolResult {
    let body = json!({"status": "pending_approval", "approval": approval, "how_to_approve": how_to_approve});
    let text = format!(
        "NOT DONE YET: this action needs the operator's approval.\nApproval {}: {}\n{}\n{}",
        approval.id,
        approval.summary,
        how_to_approve,
        serde_json::to_string_pretty(&body).unwrap_or_default()
    );
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn confirm_params(approval: &Approval) -> Result<ElicitRequestParams, ErrorData> {
    let schema = json!({
        "type": "object",
        "properties": {"approve": {"type": "boolean", "title": "Approve", "description": approval.summary}},
        "required": ["approve"]
    });
    let schema =
        ElicitationSchema::from_json_schema(schema.as_object().cloned().unwrap_or_default())
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    Ok(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: format!("Jarvis asks for confirmation: {}", approval.summary),
        requested_schema: schema,
    })
}

impl ServerHandler for JarvisMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(Implementation::new("jarvis", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Jarvis: tools to watch and act on a Proxmox VE homelab. Read tools are free; routine actions run at \
                 once; tools marked NEEDS THE OPERATOR'S CONFIRMATION wait for the operator's approval. The cluster \
                 snapshot is the resource jarvis://cluster.",
            )
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items((*self.tools).clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(req.arguments.clone().unwrap_or_default());
        let name = req.name.to_string();
        if let Some(response) = req
            .input_responses
            .as_ref()
            .and_then(|m| m.get(CONFIRM_KEY))
        {
            let answer = Answer {
                nonce: req.request_state.as_deref(),
                response,
            };
            return self.answered(&name, args, answer, &ctx).await;
        }
        self.invoke(&name, args, &ctx).await
    }

    async fn list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![Resource::new(
            CLUSTER_URI,
            "cluster",
        )
        .with_mime_type("application/json")
        .with_description(
            "The live Proxmox VE cluster: nodes, guests, storage, disks, staleness.",
        )]))
    }

    async fn read_resource(
        &self,
        req: ReadResourceRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if req.uri != CLUSTER_URI {
            return Err(ErrorData::resource_not_found(
                format!("no resource {}", req.uri),
                None,
            ));
        }
        let text = serde_json::to_string(&self.state.get().cluster)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, req.uri.clone()).with_mime_type("application/json")
        ])
        .into())
    }
}

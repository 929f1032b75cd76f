//! The tool registry served over MCP (rmcp): streamable HTTP at `/mcp` on the side port (behind the same bearer
//! auth, with an explicit Host allowlist for LAN use) and stdio (`jarvis mcp`). Tier-3 tools are never listed;
//! tier-2 tools say in their description that they need confirmation. A tool failure is an MCP tool error
//! (`isError`), never a protocol error. A tier-2 call is confirmed through elicitation when the client supports it
//! (an `InputRequiredResult` on protocol 2026-07-28, a server-to-client request on older sessions); otherwise the
//! answer is the pending approval and where the operator approves it. The cluster snapshot is a resource.

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
}

impl JarvisMcp {
    pub fn new(registry: Arc<Registry>, state: StateHandle) -> JarvisMcp {
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
        }
    }

    async fn invoke(
        &self,
        name: &str,
        args: Value,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        match self.registry.invoke(ACTOR, name, args.clone()).await {
            Ok(Outcome::Done { result }) => Ok(done(&result).into()),
            Ok(Outcome::PendingApproval {
                approval,
                how_to_approve,
            }) => {
                let can_elicit = ctx
                    .client_capabilities()
                    .is_some_and(|c| c.elicitation.is_some());
                if !can_elicit {
                    return Ok(pending(&approval, &how_to_approve).into());
                }
                let params = confirm_params(&approval)?;
                let modern = ctx.protocol_version().is_some_and(|v| !v.has_initialize());
                if modern {
                    let mut requests = InputRequests::new();
                    requests.insert(
                        CONFIRM_KEY.into(),
                        InputRequest::Elicitation(ElicitRequest::new(params)),
                    );
                    return Ok(InputRequiredResult::new(Some(requests), None).into());
                }
                match ctx.peer.create_elicitation(params).await {
                    Ok(answer) => self.confirmed(name, args, answer).await,
                    Err(e) => {
                        tracing::info!(
                            "elicitation failed, falling back to operator approval: {e}"
                        );
                        Ok(pending(&approval, &how_to_approve).into())
                    }
                }
            }
            Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(e.to_string())]).into()),
        }
    }

    /// The asking client's user answered the confirmation: approve (or deny) the pending call and run it.
    async fn confirmed(
        &self,
        name: &str,
        args: Value,
        answer: ElicitResult,
    ) -> Result<CallToolResponse, ErrorData> {
        let approve = matches!(answer.action, ElicitationAction::Accept)
            && answer
                .content
                .as_ref()
                .and_then(|c| c.get("approve"))
                .and_then(Value::as_bool)
                == Some(true);
        let waiting = match self.registry.pending_for(ACTOR, name, args.clone()) {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(
                    "no pending approval for this call (it may have expired): call the tool again",
                )])
                .into())
            }
            Err(e) => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(e.to_string())]).into())
            }
        };
        if let Err(e) = self.registry.decide(&waiting.id, approve) {
            return Ok(CallToolResult::error(vec![ContentBlock::text(e.to_string())]).into());
        }
        if !approve {
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "Declined: nothing was done ({}).",
                waiting.summary
            ))])
            .into());
        }
        match self.registry.invoke(ACTOR, name, args).await {
            Ok(Outcome::Done { result }) => Ok(done(&result).into()),
            Ok(Outcome::PendingApproval {
                approval,
                how_to_approve,
            }) => Ok(pending(&approval, &how_to_approve).into()),
            Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(e.to_string())]).into()),
        }
    }
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
        if let Some(answer) = req
            .input_responses
            .as_ref()
            .and_then(|m| m.get(CONFIRM_KEY))
        {
            let answer: ElicitResult = serde_json::from_value(answer.clone()).map_err(|e| {
                ErrorData::invalid_params(format!("bad confirmation answer: {e}"), None)
            })?;
            return self.confirmed(&name, args, answer).await;
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

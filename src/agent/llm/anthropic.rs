//! Anthropic Messages with SSE streaming: `message_start` (input and cache usage), `content_block_start/delta/
//! stop` for text (`text_delta`) and tool use (`input_json_delta`, the arguments in pieces), `message_delta` (stop
//! reason, output usage), `message_stop`; `ping` and `error` events as they come. The system prompt is sent as
//! a cached block (`cache_control: ephemeral`), so a conversation pays for it in full only once every few minutes.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::http::{self, Attempt};
use super::sse::SseDecoder;
use super::{
    Completion, LlmError, Message, Provider, RetryPolicy, Role, SystemPrompt, ToolCall, ToolSpec,
    Usage,
};
use crate::secret::Secret;

pub const API_VERSION: &str = "2023-06-01";

#[derive(Debug, Clone)]
pub struct AnthropicSettings {
    /// `https://api.anthropic.com` (the `/v1/messages` path is added).
    pub url: String,
    pub model: String,
    pub api_key: Secret,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub retry: RetryPolicy,
    pub max_tokens: u32,
}

pub struct Anthropic {
    settings: AnthropicSettings,
    http: reqwest::Client,
    name: String,
}

impl Anthropic {
    pub fn new(settings: AnthropicSettings) -> Result<Anthropic, LlmError> {
        let name = format!("{} at {}", settings.model, settings.url);
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|e| LlmError::Unreachable {
                provider: name.clone(),
                message: e.to_string(),
            })?;
        Ok(Anthropic {
            settings,
            http,
            name,
        })
    }

    /// The request body: tool results of one step grouped into one user turn, as the API requires.
    pub fn body(&self, system: &SystemPrompt, messages: &[Message], tools: &[ToolSpec]) -> Value {
        let mut out: Vec<Value> = Vec::new();
        for m in messages {
            match m.role {
                Role::User => out.push(json!({"role": "user", "content": m.content})),
                Role::Assistant => {
                    let mut blocks = Vec::new();
                    if !m.content.is_empty() {
                        blocks.push(json!({"type": "text", "text": m.content}));
                    }
                    for c in &m.tool_calls {
                        let input: Value =
                            serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                        blocks.push(
                            json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}),
                        );
                    }
                    out.push(json!({"role": "assistant", "content": blocks}));
                }
                Role::Tool => {
                    let block = json!({"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content});
                    let merge = out.last().is_some_and(|last| {
                        last["role"] == "user"
                            && last["content"]
                                .as_array()
                                .is_some_and(|c| c.iter().all(|b| b["type"] == "tool_result"))
                    });
                    match out.last_mut() {
                        Some(last) if merge => {
                            if let Some(arr) = last["content"].as_array_mut() {
                                arr.push(block);
                            }
                        }
                        _ => out.push(json!({"role": "user", "content": [block]})),
                    }
                }
            }
        }
        let mut body = json!({
            "model": self.settings.model,
            "max_tokens": self.settings.max_tokens,
            "stream": true,
            "system": [{"type": "text", "text": &*system.stable, "cache_control": {"type": "ephemeral"}}],
            "messages": out,
        });
        if !system.context.is_empty() {
            if let Some(blocks) = body["system"].as_array_mut() {
                blocks.push(json!({"type": "text", "text": &*system.context}));
            }
        }
        if !tools.is_empty() {
            body["tools"] = tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
        }
        body
    }

    async fn attempt(&self, body: &Value, deltas: &Option<mpsc::Sender<String>>) -> Attempt {
        let url = format!("{}/v1/messages", self.settings.url.trim_end_matches('/'));
        let req = self
            .http
            .post(&url)
            .header("x-api-key", self.settings.api_key.expose())
            .header("anthropic-version", API_VERSION)
            .json(body);
        let resp = match http::send(req, self.settings.connect_timeout, &self.name).await {
            Ok(r) => r,
            Err(verdict) => return verdict,
        };
        match self.read_stream(resp, deltas).await {
            Ok(c) => Attempt::Done(c),
            Err((e, forwarded)) => http::stream_failure(e, forwarded),
        }
    }

    async fn read_stream(
        &self,
        resp: reqwest::Response,
        deltas: &Option<mpsc::Sender<String>>,
    ) -> Result<Completion, (LlmError, bool)> {
        let name = self.name.clone();
        let mut stream = resp.bytes_stream();
        let mut decoder = SseDecoder::default();
        let mut text = String::new();
        let mut calls: BTreeMap<u64, ToolCall> = BTreeMap::new();
        let mut usage = Usage::default();
        let mut model = self.settings.model.clone();
        let mut forwarded = false;
        let protocol = |m: String, f: bool| {
            (
                LlmError::Protocol {
                    provider: name.clone(),
                    message: m,
                },
                f,
            )
        };
        loop {
            let chunk = match tokio::time::timeout(self.settings.idle_timeout, stream.next()).await
            {
                Err(_) => {
                    let after_ms = self.settings.idle_timeout.as_millis() as u64;
                    return Err((
                        LlmError::Timeout {
                            provider: name.clone(),
                            after_ms,
                        },
                        forwarded,
                    ));
                }
                Ok(None) => {
                    let message = "the connection closed before message_stop".to_string();
                    return Err((
                        LlmError::StreamCut {
                            provider: name.clone(),
                            message,
                        },
                        forwarded,
                    ));
                }
                Ok(Some(Err(e))) => {
                    return Err((
                        LlmError::StreamCut {
                            provider: name.clone(),
                            message: e.to_string(),
                        },
                        forwarded,
                    ))
                }
                Ok(Some(Ok(b))) => b,
            };
            for ev in decoder.feed(&chunk) {
                let v: Value = serde_json::from_str(&ev.data)
                    .map_err(|e| protocol(format!("an event is not JSON: {e}"), forwarded))?;
                let kind = ev
                    .event
                    .clone()
                    .or_else(|| v["type"].as_str().map(str::to_string))
                    .unwrap_or_default();
                match kind.as_str() {
                    "message_start" => {
                        let m = &v["message"];
                        if let Some(id) = m["model"].as_str() {
                            model = id.to_string();
                        }
                        let u = &m["usage"];
                        usage.input += u["input_tokens"].as_u64().unwrap_or(0)
                            + u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
                        usage.cached += u["cache_read_input_tokens"].as_u64().unwrap_or(0);
                        usage.output += u["output_tokens"].as_u64().unwrap_or(0);
                    }
                    "content_block_start" => {
                        let b = &v["content_block"];
                        if b["type"] == "tool_use" {
                            let index = v["index"].as_u64().unwrap_or(0);
                            calls.insert(
                                index,
                                ToolCall {
                                    id: b["id"].as_str().unwrap_or_default().to_string(),
                                    name: b["name"].as_str().unwrap_or_default().to_string(),
                                    arguments: String::new(),
                                },
                            );
                        }
                    }
                    "content_block_delta" => {
                        let d = &v["delta"];
                        match d["type"].as_str() {
                            Some("text_delta") => {
                                let piece = d["text"].as_str().unwrap_or_default();
                                text.push_str(piece);
                                if let (Some(tx), false) = (deltas, piece.is_empty()) {
                                    forwarded = true;
                                    let _ = tx.send(piece.to_string()).await;
                                }
                            }
                            Some("input_json_delta") => {
                                let index = v["index"].as_u64().unwrap_or(0);
                                let call = calls.get_mut(&index).ok_or_else(|| {
                                    protocol(
                                        format!("input for block {index}, which is no tool_use"),
                                        forwarded,
                                    )
                                })?;
                                call.arguments
                                    .push_str(d["partial_json"].as_str().unwrap_or_default());
                            }
                            _ => {}
                        }
                    }
                    "message_delta" => {
                        // Output tokens are cumulative in message_delta.
                        if let Some(out) = v["usage"]["output_tokens"].as_u64() {
                            usage.output = out;
                        }
                    }
                    "message_stop" => {
                        return Ok(Completion {
                            text,
                            tool_calls: calls.into_values().collect(),
                            usage,
                            model,
                        });
                    }
                    "error" => {
                        let message = v["error"]["message"]
                            .as_str()
                            .unwrap_or("error in stream")
                            .to_string();
                        let overloaded = v["error"]["type"] == "overloaded_error";
                        let e = LlmError::Http {
                            provider: name.clone(),
                            status: if overloaded { 529 } else { 500 },
                            message,
                        };
                        return Err((e, forwarded));
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.name
    }

    fn complete<'a>(
        &'a self,
        system: &'a SystemPrompt,
        messages: &'a [Message],
        tools: &'a [ToolSpec],
        deltas: Option<mpsc::Sender<String>>,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let body = self.body(system, messages, tools);
            http::with_retries(&self.name, self.settings.retry, || {
                self.attempt(&body, &deltas)
            })
            .await
        })
    }
}

//! OpenAI chat completions with SSE streaming (`stream: true`, usage in the last chunk): llama-server, vLLM,
//! Ollama's OpenAI endpoint and OpenAI itself. Tool calls arrive in pieces keyed by `index` — the id and name
//! first, the arguments split across any number of chunks, several calls interleaved — and are assembled here.

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

#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// Base URL, e.g. `http://192.168.1.30:8080` (the `/v1/chat/completions` path is added).
    pub url: String,
    pub model: String,
    pub api_key: Option<Secret>,
    /// Connecting and waiting for the first byte of the answer.
    pub connect_timeout: Duration,
    /// Longest silence between two chunks of a stream.
    pub idle_timeout: Duration,
    pub retry: RetryPolicy,
    pub max_tokens: u32,
}

pub struct OpenAi {
    settings: OpenAiSettings,
    http: reqwest::Client,
    name: String,
}

impl OpenAi {
    pub fn new(settings: OpenAiSettings) -> Result<OpenAi, LlmError> {
        let name = format!("{} at {}", settings.model, settings.url);
        // reqwest is built without a default TLS provider; ours (ring) must be in place first.
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|e| LlmError::Unreachable {
                provider: name.clone(),
                message: e.to_string(),
            })?;
        Ok(OpenAi {
            settings,
            http,
            name,
        })
    }

    /// The request body, in OpenAI's format.
    pub fn body(&self, system: &SystemPrompt, messages: &[Message], tools: &[ToolSpec]) -> Value {
        let mut msgs = vec![json!({"role": "system", "content": system.joined()})];
        for m in messages {
            msgs.push(match m.role {
                Role::User => json!({"role": "user", "content": m.content}),
                Role::Tool => json!({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}),
                Role::Assistant if m.tool_calls.is_empty() => json!({"role": "assistant", "content": m.content}),
                Role::Assistant => json!({
                    "role": "assistant",
                    "content": if m.content.is_empty() { Value::Null } else { Value::String(m.content.clone()) },
                    "tool_calls": m.tool_calls.iter().map(|c| json!({
                        "id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}
                    })).collect::<Vec<_>>(),
                }),
            });
        }
        let mut body = json!({
            "model": self.settings.model,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": self.settings.max_tokens,
            "messages": msgs,
        });
        if !tools.is_empty() {
            body["tools"] = tools
                .iter()
                .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                .collect();
        }
        body
    }

    async fn attempt(&self, body: &Value, deltas: &Option<mpsc::Sender<String>>) -> Attempt {
        let url = format!(
            "{}/v1/chat/completions",
            self.settings.url.trim_end_matches('/')
        );
        let mut req = self.http.post(&url).json(body);
        if let Some(key) = &self.settings.api_key {
            req = req.bearer_auth(key.expose());
        }
        let resp = match http::send(req, self.settings.connect_timeout, &self.name).await {
            Ok(r) => r,
            Err(verdict) => return verdict,
        };
        match self.read_stream(resp, deltas).await {
            Ok(c) => Attempt::Done(c),
            Err((e, forwarded)) => http::stream_failure(e, forwarded),
        }
    }

    fn timeout(&self, after: Duration) -> LlmError {
        LlmError::Timeout {
            provider: self.name.clone(),
            after_ms: after.as_millis() as u64,
        }
    }

    /// Reads the SSE stream; on error, also says whether any text was already forwarded.
    async fn read_stream(
        &self,
        resp: reqwest::Response,
        deltas: &Option<mpsc::Sender<String>>,
    ) -> Result<Completion, (LlmError, bool)> {
        let mut stream = resp.bytes_stream();
        let mut decoder = SseDecoder::default();
        let mut text = String::new();
        let mut calls: BTreeMap<u64, ToolCall> = BTreeMap::new();
        let mut usage = Usage::default();
        let mut model = self.settings.model.clone();
        let mut forwarded = false;
        let cut = |message: String, forwarded: bool| {
            (
                LlmError::StreamCut {
                    provider: self.name.clone(),
                    message,
                },
                forwarded,
            )
        };
        loop {
            let chunk = match tokio::time::timeout(self.settings.idle_timeout, stream.next()).await
            {
                Err(_) => return Err((self.timeout(self.settings.idle_timeout), forwarded)),
                Ok(None) => {
                    return Err(cut("the connection closed before [DONE]".into(), forwarded))
                }
                Ok(Some(Err(e))) => return Err(cut(e.to_string(), forwarded)),
                Ok(Some(Ok(b))) => b,
            };
            for ev in decoder.feed(&chunk) {
                if ev.data == "[DONE]" {
                    return Ok(Completion {
                        text,
                        tool_calls: calls.into_values().collect(),
                        usage,
                        model,
                    });
                }
                let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
                    (
                        LlmError::Protocol {
                            provider: self.name.clone(),
                            message: format!("a chunk is not JSON: {e}"),
                        },
                        forwarded,
                    )
                })?;
                if let Some(err) = v.get("error") {
                    let message = err["message"]
                        .as_str()
                        .unwrap_or("error in stream")
                        .to_string();
                    return Err((
                        LlmError::Http {
                            provider: self.name.clone(),
                            status: 200,
                            message,
                        },
                        forwarded,
                    ));
                }
                if let Some(m) = v["model"].as_str() {
                    model = m.to_string();
                }
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    usage = Usage {
                        input: u["prompt_tokens"].as_u64().unwrap_or(0),
                        output: u["completion_tokens"].as_u64().unwrap_or(0),
                        cached: u["prompt_tokens_details"]["cached_tokens"]
                            .as_u64()
                            .unwrap_or(0),
                        estimated: false,
                    };
                }
                let Some(delta) = v["choices"].get(0).map(|c| &c["delta"]) else {
                    continue;
                };
                if let Some(piece) = delta["content"].as_str().filter(|s| !s.is_empty()) {
                    text.push_str(piece);
                    if let Some(tx) = deltas {
                        forwarded = true;
                        let _ = tx.send(piece.to_string()).await;
                    }
                }
                for tc in delta["tool_calls"].as_array().into_iter().flatten() {
                    let index = tc["index"].as_u64().unwrap_or(0);
                    let call = calls.entry(index).or_insert_with(|| ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                    if let Some(id) = tc["id"].as_str() {
                        call.id = id.to_string();
                    }
                    if let Some(name) = tc["function"]["name"].as_str() {
                        call.name.push_str(name);
                    }
                    if let Some(args) = tc["function"]["arguments"].as_str() {
                        call.arguments.push_str(args);
                    }
                }
            }
        }
    }
}

impl Provider for OpenAi {
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
            let mut c = http::with_retries(&self.name, self.settings.retry, || {
                self.attempt(&body, &deltas)
            })
            .await?;
            for (i, call) in c.tool_calls.iter_mut().enumerate() {
                if call.id.is_empty() {
                    call.id = format!("call_{i}");
                }
            }
            if c.usage == Usage::default() {
                // No usage in the stream: estimate (four characters to a token), so the ledger still says
                // what the conversation weighs, and mark it.
                let out_chars = c.text.len()
                    + c.tool_calls
                        .iter()
                        .map(|t| t.name.len() + t.arguments.len())
                        .sum::<usize>();
                c.usage = Usage {
                    input: body.to_string().len().div_ceil(4) as u64,
                    output: out_chars.div_ceil(4) as u64,
                    cached: 0,
                    estimated: true,
                };
            }
            Ok(c)
        })
    }
}

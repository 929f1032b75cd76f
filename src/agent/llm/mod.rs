//! Language-model providers behind one trait: a conversation in, a streamed completion out (text pieces as they
//! arrive, tool calls once complete, token usage). [`openai`] speaks OpenAI chat completions with SSE (llama-server
//! and every OpenAI-compatible server). Retries with back-off for 429 (honouring `Retry-After`), 5xx and refused
//! connections — but never once text has been forwarded, so a cut stream is an error, not a repeated answer.

pub mod anthropic;
mod http;
pub mod openai;
pub mod sse;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    Tool,
}

/// One turn of the conversation (the system prompt travels separately).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// The calls an assistant turn asked for.
    pub tool_calls: Vec<ToolCall>,
    /// For a tool turn: the call it answers.
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn user(text: &str) -> Message {
        Message {
            role: Role::User,
            content: text.to_string(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    pub fn assistant(text: &str) -> Message {
        Message {
            role: Role::Assistant,
            content: text.to_string(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    pub fn tool(call_id: &str, content: String) -> Message {
        Message {
            role: Role::Tool,
            content,
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.to_string()),
        }
    }
}

/// The system prompt in two parts: `stable` (who Jarvis is and how he works: the same for every turn, so
/// Anthropic caches it and llama-server reuses its KV cache for it) and `context` (the cluster now, the memories
/// that matter to this turn, the summary of older turns), which follows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SystemPrompt {
    pub stable: std::sync::Arc<str>,
    pub context: std::sync::Arc<str>,
}

impl SystemPrompt {
    /// Both parts as one text, stable first.
    pub fn joined(&self) -> String {
        if self.context.is_empty() {
            self.stable.to_string()
        } else {
            format!("{}\n\n{}", self.stable, self.context)
        }
    }
}

impl From<&str> for SystemPrompt {
    fn from(s: &str) -> SystemPrompt {
        SystemPrompt {
            stable: s.into(),
            context: "".into(),
        }
    }
}

/// A complete tool call; `arguments` is the model's raw JSON text (it may be malformed).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A tool as offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    /// The server reported no usage (llama-cpp-python's streams do not): the counts are Jarvis's estimate.
    pub estimated: bool,
}

/// What one model call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("cannot reach {provider}: {message}")]
    Unreachable { provider: String, message: String },
    #[error("{provider} answered HTTP {status}: {message}")]
    Http {
        provider: String,
        status: u16,
        message: String,
    },
    #[error("{provider} is rate-limiting (HTTP 429) and still was after {attempts} attempts")]
    RateLimited { provider: String, attempts: u32 },
    #[error("{provider} sent nothing for {after_ms} ms")]
    Timeout { provider: String, after_ms: u64 },
    #[error("{provider}'s stream was cut before the answer was complete: {message}")]
    StreamCut { provider: String, message: String },
    #[error("{provider} sent something that is not its wire format: {message}")]
    Protocol { provider: String, message: String },
}

impl LlmError {
    /// Worth another attempt (before anything was forwarded).
    pub fn transient(&self) -> bool {
        matches!(
            self,
            LlmError::Unreachable { .. } | LlmError::Timeout { .. }
        ) || matches!(self, LlmError::Http { status, .. } if *status >= 500)
    }
}

/// Attempts and back-off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `n` (1-based retries): the server's `Retry-After` when it gave one, else
    /// exponential back-off; never more than `max_wait`.
    pub fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self
            .base
            .saturating_mul(1 << retry.saturating_sub(1).min(10));
        retry_after.unwrap_or(backoff).min(self.max_wait)
    }
}

/// A chat model.
pub trait Provider: Send + Sync {
    /// For logs and errors: `local (qwen2.5-7b)`.
    fn name(&self) -> &str;
    /// One model call. Text pieces go to `deltas` as they arrive.
    fn complete<'a>(
        &'a self,
        system: &'a SystemPrompt,
        messages: &'a [Message],
        tools: &'a [ToolSpec],
        deltas: Option<mpsc::Sender<String>>,
    ) -> BoxFuture<'a, Result<Completion, LlmError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_honours_retry_after_and_caps() {
        let p = RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(100),
            max_wait: Duration::from_secs(2),
        };
        assert_eq!(p.wait(1, None), Duration::from_millis(100));
        assert_eq!(p.wait(3, None), Duration::from_millis(400));
        assert_eq!(p.wait(9, None), Duration::from_secs(2));
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
    }
}

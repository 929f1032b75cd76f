//! What both wire formats share: sending a request and sorting the answer into done / retry / fail, and the retry
//! loop with back-off that honours `Retry-After`.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

use super::{Completion, LlmError, RetryPolicy};

/// The result of one attempt.
pub(crate) enum Attempt {
    Done(Completion),
    Retry(LlmError, Option<Duration>),
    RateLimited(Option<Duration>),
    Fail(LlmError),
}

/// An error body to a readable message: `{"error": {"message": ...}}` (both formats), else the start of the text.
pub(crate) fn http_error(provider: &str, status: u16, body: &str) -> LlmError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or(v["error"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    LlmError::Http {
        provider: provider.to_string(),
        status,
        message,
    }
}

/// Sends `req`; a 200 comes back as the response, everything else as the attempt's verdict.
pub(crate) async fn send(
    req: reqwest::RequestBuilder,
    timeout: Duration,
    provider: &str,
) -> Result<reqwest::Response, Attempt> {
    let resp = match tokio::time::timeout(timeout, req.send()).await {
        Err(_) => {
            let e = LlmError::Timeout {
                provider: provider.to_string(),
                after_ms: timeout.as_millis() as u64,
            };
            return Err(Attempt::Retry(e, None));
        }
        Ok(Err(e)) => {
            let e = LlmError::Unreachable {
                provider: provider.to_string(),
                message: e.to_string(),
            };
            return Err(Attempt::Retry(e, None));
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status().as_u16();
    if status == 429 {
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(Attempt::RateLimited(after));
    }
    if status != 200 {
        let text = resp.text().await.unwrap_or_default();
        let e = http_error(provider, status, &text);
        return Err(if status >= 500 {
            Attempt::Retry(e, None)
        } else {
            Attempt::Fail(e)
        });
    }
    Ok(resp)
}

/// Sorts a stream's failure: retried only if nothing reached the operator and the error may pass.
pub(crate) fn stream_failure(e: LlmError, forwarded: bool) -> Attempt {
    if !forwarded && e.transient() {
        Attempt::Retry(e, None)
    } else {
        Attempt::Fail(e)
    }
}

/// Runs attempts with back-off until one is done or fails for good.
pub(crate) async fn with_retries<F, Fut>(
    provider: &str,
    policy: RetryPolicy,
    mut attempt: F,
) -> Result<Completion, LlmError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    let mut last = None;
    let attempts = policy.attempts.max(1);
    for n in 1..=attempts {
        let (err, after) = match attempt().await {
            Attempt::Done(c) => return Ok(c),
            Attempt::Fail(e) => return Err(e),
            Attempt::Retry(e, after) => (e, after),
            Attempt::RateLimited(after) => (
                LlmError::RateLimited {
                    provider: provider.to_string(),
                    attempts: n,
                },
                after,
            ),
        };
        tracing::warn!(provider, attempt = n, "model call failed, {err}");
        last = Some(err);
        if n < attempts {
            tokio::time::sleep(policy.wait(n, after)).await;
        }
    }
    Err(last.unwrap_or_else(|| LlmError::Unreachable {
        provider: provider.to_string(),
        message: "no attempt made".into(),
    }))
}

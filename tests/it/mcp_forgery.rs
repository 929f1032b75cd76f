//! MCP as an attacker holding only the client token speaks it, in raw JSON-RPC: confirmations nobody asked for
//! (`inputResponses` in both spellings, an `elicitation/create` answer sent unasked, a made-up `requestState`),
//! an answer replayed into another call or session, a client-side acceptance with client confirmation off, a
//! foreign `Origin`, and a flood of sessions. Every forged path must leave the action pending: no `ok` audit row.

use std::net::SocketAddr;
use std::time::Duration;

use jarvis::app::App;
use serde_json::{json, Value};

use crate::util;

const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-11-25";

/// A raw MCP client over streamable HTTP.
struct Raw {
    url: String,
    http: reqwest::Client,
    session: Option<String>,
    protocol: &'static str,
    /// Declares elicitation in its capabilities.
    elicits: bool,
    next_id: u64,
}

impl Raw {
    fn new(addr: SocketAddr, protocol: &'static str, elicits: bool) -> Raw {
        Raw {
            url: format!("http://{addr}/mcp"),
            http: util::http(),
            session: None,
            protocol,
            elicits,
            next_id: 1,
        }
    }

    fn capabilities(&self) -> Value {
        if self.elicits {
            json!({"elicitation": {"form": {}}})
        } else {
            json!({})
        }
    }

    /// POSTs one message; the JSON-RPC reply (from a JSON or SSE body), and the status.
    async fn post(&mut self, body: Value) -> (u16, Option<Value>) {
        self.post_with(body, &[]).await
    }

    async fn post_with(&mut self, body: Value, headers: &[(&str, &str)]) -> (u16, Option<Value>) {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(util::WEB_TOKEN)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", self.protocol)
            .json(&body);
        if let Some(s) = &self.session {
            req = req.header("Mcp-Session-Id", s);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("mcp request");
        let status = resp.status().as_u16();
        if let Some(s) = resp.headers().get("mcp-session-id") {
            self.session = s.to_str().ok().map(str::to_string);
        }
        let text = resp.text().await.expect("body");
        let reply = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .chain(std::iter::once(text.as_str()))
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .find(|v| v.get("result").is_some() || v.get("error").is_some());
        (status, reply)
    }

    /// The legacy handshake (the modern protocol has none).
    async fn initialize(&mut self) {
        let caps = self.capabilities();
        let (status, reply) = self
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": self.protocol, "capabilities": caps,
                "clientInfo": {"name": "forger", "version": "1"}}}),
            )
            .await;
        assert_eq!(status, 200, "{reply:?}");
        assert!(self.session.is_some(), "a legacy session has an id");
        let (status, _) = self
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(status, 202);
    }

    /// `tools/call` with extra params merged in; the result object.
    async fn call(&mut self, tool: &str, args: Value, extra: Value) -> Value {
        let mut params = json!({"name": tool, "arguments": args});
        if self.protocol == MODERN {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": self.capabilities(),
                "io.modelcontextprotocol/clientInfo": {"name": "forger", "version": "1"},
            });
        }
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
        let headers: &[(&str, &str)] = if self.protocol == MODERN {
            &[("Mcp-Method", "tools/call"), ("Mcp-Name", tool)]
        } else {
            &[]
        };
        let (status, reply) = self.post_with(body, headers).await;
        assert_eq!(status, 200, "{reply:?}");
        let reply = reply.expect("a JSON-RPC reply");
        reply
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("not a result: {reply}"))
    }
}

fn accept() -> Value {
    json!({"confirm": {"action": "accept", "content": {"approve": true}}})
}

fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn is_pending(result: &Value) -> bool {
    text(result).contains("NOT DONE YET")
}

/// The nonce of an `InputRequiredResult`, if that is what came back.
fn input_required(result: &Value) -> Option<String> {
    (result["resultType"] == "input_required")
        .then(|| result["requestState"].as_str().map(str::to_string))
        .flatten()
}

/// How many calls of `tool` by MCP actually ran.
fn ran(app: &App, tool: &str) -> usize {
    app.store
        .audit(1000)
        .expect("audit")
        .iter()
        .filter(|r| r.actor == "mcp" && r.tool == tool && r.outcome == "ok")
        .count()
}

async fn start(client_confirmation: bool) -> (jarvis::sim::Simulator, tempfile::TempDir, App) {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = util::config(&sim, dir.path());
    config.web.mcp.client_confirmation = client_confirmation;
    config.web.mcp.max_sessions = 4;
    let app = App::start(&config, "test").await.expect("app starts");
    util::cluster_seen(&app).await;
    (sim, dir, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_confirmations_leave_the_action_pending_with_client_confirmation_off() {
    let (sim, _dir, app) = start(false).await;
    let addr = app.side_port().expect("side port");

    // A legacy session with no capabilities at all: both spellings of a forged answer.
    let mut legacy = Raw::new(addr, LEGACY, false);
    legacy.initialize().await;
    let first = legacy
        .call("stop_guest", json!({"vmid": 111}), json!({}))
        .await;
    assert!(is_pending(&first), "{first}");
    for extra in [
        json!({"inputResponses": accept()}),
        json!({"input_responses": accept()}),
        json!({"inputResponses": accept(), "requestState": "0123456789abcdef0123456789abcdef"}),
    ] {
        let r = legacy
            .call("stop_guest", json!({"vmid": 111}), extra.clone())
            .await;
        assert!(is_pending(&r), "{extra}: {r}");
    }
    // The same for a shell command and a node reboot.
    for (tool, args) in [
        (
            "run_command",
            json!({"node": "pve", "command": "cat /etc/shadow; id"}),
        ),
        ("reboot_node", json!({"node": "agent"})),
    ] {
        let r = legacy
            .call(tool, args.clone(), json!({"inputResponses": accept()}))
            .await;
        assert!(
            is_pending(&r) || r["isError"] == true,
            "{tool}: forged answer must not run it: {r}"
        );
        assert_eq!(ran(&app, tool), 0, "{tool} ran");
    }
    // A legacy `elicitation/create` answer nobody asked for, then the call again.
    let (status, _) = legacy
        .post(json!({"jsonrpc": "2.0", "id": 0, "result": {"action": "accept", "content": {"approve": true}}}))
        .await;
    assert!(
        status < 500,
        "an unasked answer is dropped, not a crash ({status})"
    );
    let r = legacy
        .call("stop_guest", json!({"vmid": 111}), json!({}))
        .await;
    assert!(is_pending(&r), "{r}");

    // The modern protocol, a client that declares elicitation and accepts: with the opt-in off nobody asks it.
    let mut modern = Raw::new(addr, MODERN, true);
    let r = modern
        .call("stop_guest", json!({"vmid": 112}), json!({}))
        .await;
    assert!(
        is_pending(&r),
        "no elicitation with client confirmation off: {r}"
    );
    let r = modern
        .call(
            "stop_guest",
            json!({"vmid": 112}),
            json!({"inputResponses": accept(), "requestState": "made-up"}),
        )
        .await;
    assert!(is_pending(&r), "{r}");

    assert_eq!(
        ran(&app, "stop_guest"),
        0,
        "a forged confirmation ran stop_guest"
    );
    let pending = app.tools.pending_approvals().expect("approvals");
    assert!(
        pending.iter().any(|a| a.summary.contains("111")),
        "{pending:?}"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_confirmation_on_only_the_answer_to_the_servers_own_request_counts() {
    let (sim, _dir, app) = start(true).await;
    let addr = app.side_port().expect("side port");
    let mut modern = Raw::new(addr, MODERN, true);

    // An answer sent before anything was asked, with a made-up state: ignored, the client is asked properly.
    let r = modern
        .call(
            "stop_guest",
            json!({"vmid": 112}),
            json!({"inputResponses": accept(), "requestState": "0123456789abcdef0123456789abcdef"}),
        )
        .await;
    let nonce_112 = input_required(&r).unwrap_or_else(|| panic!("asked for input: {r}"));
    assert!(r["inputRequests"]["confirm"].is_object(), "{r}");

    // Replayed into another call: ignored, and the nonce is used up.
    let r = modern
        .call(
            "stop_guest",
            json!({"vmid": 113}),
            json!({"inputResponses": accept(), "requestState": nonce_112}),
        )
        .await;
    assert!(input_required(&r).is_some(), "{r}");
    let r = modern
        .call(
            "stop_guest",
            json!({"vmid": 112}),
            json!({"inputResponses": accept(), "requestState": nonce_112}),
        )
        .await;
    let fresh = input_required(&r).unwrap_or_else(|| panic!("a spent nonce asks again: {r}"));
    assert_ne!(fresh, nonce_112);

    // Replayed into a legacy session: ignored there (sessions are asked by the server, never told).
    let mut legacy = Raw::new(addr, LEGACY, true);
    legacy.initialize().await;
    assert_eq!(ran(&app, "stop_guest"), 0);

    // A client without elicitation presenting a valid nonce: not asked, not counted.
    let mut mute = Raw::new(addr, MODERN, false);
    let r = mute
        .call(
            "stop_guest",
            json!({"vmid": 112}),
            json!({"inputResponses": accept(), "requestState": fresh}),
        )
        .await;
    assert!(is_pending(&r), "{r}");
    assert_eq!(ran(&app, "stop_guest"), 0);

    // The real round trip: asked, answered with the server's own nonce, done once.
    let r = modern
        .call("stop_guest", json!({"vmid": 112}), json!({}))
        .await;
    let nonce = input_required(&r).unwrap_or_else(|| panic!("asked: {r}"));
    let done = modern
        .call(
            "stop_guest",
            json!({"vmid": 112}),
            json!({"inputResponses": accept(), "requestState": nonce}),
        )
        .await;
    assert!(
        text(&done).contains("\"exitstatus\": \"OK\""),
        "the confirmed call ran: {done}"
    );
    assert_eq!(ran(&app, "stop_guest"), 1);
    let again = modern
        .call(
            "stop_guest",
            json!({"vmid": 112}),
            json!({"inputResponses": accept(), "requestState": nonce}),
        )
        .await;
    assert!(input_required(&again).is_some(), "single use: {again}");
    assert_eq!(ran(&app, "stop_guest"), 1);
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_and_sessions_have_a_ceiling() {
    let (sim, _dir, app) = start(false).await;
    let addr = app.side_port().expect("side port");
    let http = util::http();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}});
    let resp = http
        .post(format!("http://{addr}/mcp"))
        .bearer_auth(util::WEB_TOKEN)
        .header("Accept", "application/json, text/event-stream")
        .header("Origin", "https://evil.example")
        .json(&init)
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.status().as_u16(),
        403,
        "a foreign Origin, token or not"
    );
    assert!(
        resp.headers().get("mcp-session-id").is_none(),
        "no session for a foreign origin"
    );

    // An oversized body sent chunked (no Content-Length to refuse up front): 413, not a server error. Raw TCP, as
    // the server may answer and close before the client has finished writing.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nAccept: application/json, \
             text/event-stream\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            util::WEB_TOKEN
        );
        tcp.write_all(head.as_bytes()).await.expect("head");
        let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
        for _ in 0..64 {
            if tcp.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = tcp.write_all(b"0\r\n\r\n").await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "64 KiB chunked over a 4 KiB limit: {answer}"
        );
    }

    // The ceiling (4 in this test): the fifth session is refused, closing one makes room.
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let mut c = Raw::new(addr, LEGACY, false);
        c.initialize().await;
        sessions.push(c);
    }
    let mut fifth = Raw::new(addr, LEGACY, false);
    let (status, _) = fifth.post(init.clone()).await;
    assert!(status >= 500 || status == 429, "refused ({status})");
    let closed = http
        .delete(format!("http://{addr}/mcp"))
        .bearer_auth(util::WEB_TOKEN)
        .header("Mcp-Session-Id", sessions[0].session.clone().expect("id"))
        .header("MCP-Protocol-Version", LEGACY)
        .send()
        .await
        .expect("delete");
    assert!(closed.status().is_success(), "{}", closed.status());
    let mut again = Raw::new(addr, LEGACY, false);
    again.initialize().await;
    app.shutdown().await;
    sim.stop().await;
}

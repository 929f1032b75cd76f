//! The agent's memory and conversations against the scripted wire-format servers of `llm`: memories kept and
//! forgotten through the model's tool calls and put in the system prompt, conversations that survive a restart,
//! old turns folded into a summary by the model, and a discussion of code that stays with Claude.

use std::time::Duration;

use jarvis::store::memory::{self, MemoryTier};
use serde_json::{json, Value};

use crate::llm::{
    a_end, a_start, a_text, a_tool_use, claude_settings, local_settings, server, text, tool_piece,
    usage, Answer,
};
use crate::util;

fn say(t: &str) -> Answer {
    Answer::Sse {
        events: vec![text(t), usage(500, 10, 0)],
        cut: false,
    }
}

fn call(id: &str, name: &str, args: Value) -> Answer {
    Answer::Sse {
        events: vec![
            tool_piece(0, Some(id), Some(name), &args.to_string()),
            usage(500, 10, 0),
        ],
        cut: false,
    }
}

async fn start(config: &jarvis::config::Config) -> jarvis::app::App {
    let app = jarvis::app::App::start(config, "test")
        .await
        .expect("starts");
    util::cluster_seen(&app).await;
    app
}

async fn chat(app: &jarvis::app::App, t: &str) -> Value {
    let addr = app.side_port().expect("side port");
    util::http()
        .post(format!("http://{addr}/api/v1/chat"))
        .bearer_auth(util::WEB_TOKEN)
        .json(&json!({ "text": t }))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

fn system_of(req: &Value) -> String {
    req["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn memories_are_kept_put_in_the_prompt_and_forgotten_through_the_model() {
    let (url, script) = server(vec![
        call(
            "r1",
            "remember",
            json!({"text": "Backups of the NAS moved to Sunday", "tier": "long"}),
        ),
        say("Noted, sir."),
        say("On Sunday, sir."),
        call("f1", "forget", json!({"about": "NAS backups"})),
        say("Forgotten, sir."),
    ])
    .await;
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = util::config(&sim, dir.path());
    config.llm = Some(local_settings(&url));
    let app = start(&config).await;
    // A note that expired an hour ago is never offered to the model.
    let store = app.store.clone();
    let two_hours_ago = jarvis::time::now_ms() - 2 * 3_600_000;
    memory::remember(
        &store,
        MemoryTier::Session,
        "The operator is testing the NAS backups",
        two_hours_ago,
    )
    .expect("remember");

    let r = chat(
        &app,
        "please keep in mind: backups of the NAS moved to Sunday",
    )
    .await;
    assert_eq!(r["text"], "Noted, sir.", "{r}");
    assert_eq!(r["tool"], "remember");
    let kept = memory::active(&store, jarvis::time::now_ms()).expect("active");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].tier, MemoryTier::Long);

    let r = chat(&app, "when do the NAS backups run these days?").await;
    assert_eq!(r["text"], "On Sunday, sir.");
    let asked = script.requests.lock().expect("lock")[2].clone();
    let system = system_of(&asked);
    assert!(
        system.contains(&format!(
            "## What you remember\n- Backups of the NAS moved to Sunday (note {}, long)",
            kept[0].id
        )),
        "{system}"
    );
    assert!(
        !system.contains("testing the NAS backups"),
        "an expired note is not offered"
    );
    let tools: Vec<&str> = asked["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    for t in ["remember", "recall", "forget"] {
        assert!(tools.contains(&t), "{t} offered: {tools:?}");
    }

    let r = chat(&app, "scratch that note about the NAS backups").await;
    assert_eq!(r["text"], "Forgotten, sir.");
    assert!(memory::active(&store, jarvis::time::now_ms())
        .expect("active")
        .is_empty());
    let result = script.requests.lock().expect("lock")[4]["messages"]
        .as_array()
        .and_then(|m| m.last().cloned())
        .expect("tool result");
    assert!(
        result["content"]
            .as_str()
            .unwrap_or_default()
            .contains("\"forgotten\""),
        "{result}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_conversation_carries_on_after_a_restart() {
    let (url, script) = server(vec![
        say("I started it because you asked, sir."),
        say("You asked me to start the frigate container, sir."),
    ])
    .await;
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = util::config(&sim, dir.path());
    config.llm = Some(local_settings(&url));
    let app = start(&config).await;
    // An offline command and a model turn, in one conversation.
    let r = chat(&app, "start the frigate container").await;
    assert_eq!(r["engine"], "offline", "{r}");
    let r = chat(&app, "why did you do that?").await;
    assert_eq!(r["engine"], "local", "{r}");
    let first = script.requests.lock().expect("lock")[0]["messages"].clone();
    assert_eq!(first[1]["content"], "start the frigate container");
    assert_eq!(first[2]["role"], "assistant");
    app.shutdown().await;

    // A new process on the same store.
    let app = start(&config).await;
    let conv = app.agent.conversation().await;
    assert_eq!(conv.turns.len(), 4, "{conv:?}");
    let r = chat(&app, "what did I ask you first?").await;
    assert_eq!(
        r["text"], "You asked me to start the frigate container, sir.",
        "{r}"
    );
    let msgs = script.requests.lock().expect("lock")[1]["messages"]
        .as_array()
        .cloned()
        .expect("messages");
    let said: Vec<&str> = msgs.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(
        &said[1..],
        &[
            "start the frigate container",
            first[2]["content"].as_str().expect("offline reply"),
            "why did you do that?",
            "I started it because you asked, sir.",
            "what did I ask you first?",
        ]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn old_turns_are_folded_into_a_summary_that_is_stored_and_sent() {
    let (url, script) = server(vec![
        say("Noted, sir."),
        say("Very good, sir."),
        say("The operator described the rack layout at length; Jarvis noted it."),
        say("It is in the summary, sir."),
    ])
    .await;
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = util::config(&sim, dir.path());
    config.llm = Some(local_settings(&url));
    config.history_tokens = 200;
    let app = start(&config).await;
    let long = |topic: &str| format!("{topic}: {}", "the rack has shelves and cables ".repeat(16));
    chat(&app, &long("first the layout")).await;
    chat(&app, &long("then the wiring")).await;
    // The two long turns outgrow 200 tokens: the oldest exchange is folded in the background.
    let requests = script.clone();
    assert!(
        util::eventually(Duration::from_secs(5), || requests
            .requests
            .lock()
            .expect("lock")
            .len()
            == 3)
        .await
    );
    let fold = script.requests.lock().expect("lock")[2].clone();
    assert!(system_of(&fold).contains("running summary"), "{fold}");
    let asked = fold["messages"][1]["content"].as_str().unwrap_or_default();
    assert!(asked.contains("first the layout"), "{asked}");
    assert!(
        !asked.contains("then the wiring"),
        "only the oldest turns fold"
    );
    let mut summary = String::new();
    for _ in 0..50 {
        summary = app.agent.conversation().await.summary;
        if !summary.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        summary,
        "The operator described the rack layout at length; Jarvis noted it."
    );
    let head = jarvis::store::conversations::latest(&app.store)
        .expect("latest")
        .expect("a conversation");
    assert_eq!(head.summary, summary, "stored with the conversation");

    let r = chat(&app, "where did I put the layout?").await;
    assert_eq!(r["text"], "It is in the summary, sir.");
    let req = script.requests.lock().expect("lock")[3].clone();
    assert!(system_of(&req)
        .contains("## Earlier in this conversation\nThe operator described the rack layout"));
    let sent = req["messages"].to_string();
    assert!(
        !sent.contains("first the layout"),
        "folded turns are not sent again"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_discussion_of_code_reads_the_real_project_and_stays_with_claude() {
    let search = {
        let mut e = vec![a_start(4000, 0)];
        e.extend(a_tool_use(
            0,
            "t1",
            "search_project",
            r#"{"project": "jarvis", "pattern": "pub async fn poll_once"}"#,
        ));
        e.extend(a_end("tool_use", 30));
        e
    };
    let found = {
        let mut e = vec![
            a_start(4500, 3500),
            a_text(0, "It is in src/cluster/poller.rs, sir."),
        ];
        e.extend(a_end("end_turn", 12));
        e
    };
    let read = {
        let mut e = vec![a_start(4600, 3500)];
        e.extend(a_tool_use(
            0,
            "t2",
            "read_project_file",
            r#"{"project": "jarvis", "path": "src/cluster/poller.rs"}"#,
        ));
        e.extend(a_end("tool_use", 30));
        e
    };
    let explained = {
        let mut e = vec![
            a_start(9000, 3500),
            a_text(0, "It returns the wait until the next poll, sir."),
        ];
        e.extend(a_end("end_turn", 15));
        e
    };
    let (claude_url, claude) = server(vec![
        Answer::Anthropic { events: search },
        Answer::Anthropic { events: found },
        Answer::Anthropic { events: read },
        Answer::Anthropic { events: explained },
    ])
    .await;
    let (local_url, local_script) = server(vec![]).await;
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = util::config(&sim, dir.path());
    config.llm = Some(local_settings(&local_url));
    config.claude = Some(claude_settings(&claude_url));
    config.prices = jarvis::agent::costs::default_prices();
    let app = start(&config).await;

    // "jarvis" is an indexed project: Claude.
    let r = chat(&app, "where does jarvis poll proxmox?").await;
    assert_eq!(
        (r["engine"].as_str(), r["text"].as_str()),
        (Some("claude"), Some("It is in src/cluster/poller.rs, sir.")),
        "{r}"
    );
    // A follow-up with nothing hard in it stays with Claude, and the file read is the real one.
    let r = chat(&app, "and what does it return?").await;
    assert_eq!(
        (r["engine"].as_str(), r["text"].as_str()),
        (
            Some("claude"),
            Some("It returns the wait until the next poll, sir.")
        ),
        "{r}"
    );
    assert!(
        local_script.requests.lock().expect("lock").is_empty(),
        "the local model was not asked"
    );
    let reqs = claude.requests.lock().expect("lock").clone();
    assert_eq!(reqs.len(), 4);
    let search_result = reqs[1]["messages"].to_string();
    assert!(
        search_result.contains("src/cluster/poller.rs"),
        "{search_result}"
    );
    let last = reqs[3]["messages"].as_array().expect("messages");
    // The earlier exchange went along, and the file's real text came back from the tool.
    assert_eq!(last[0]["content"], "where does jarvis poll proxmox?");
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/cluster/poller.rs"
    ))
    .expect("read");
    let signature = "pub async fn poll_once(&mut self) -> Duration";
    assert!(file.contains(signature));
    let result = last.last().expect("result").to_string();
    assert!(
        result.contains("read_project_file") || result.contains("tool_result"),
        "{result}"
    );
    assert!(
        result.contains(signature),
        "the tool result carries the file"
    );
    assert_eq!(reqs[3]["system"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(
        reqs[0]["system"][0]["text"], reqs[3]["system"][0]["text"],
        "the cached part of the prompt did not change between turns"
    );
    let costs: Value = util::get_json(app.side_port().expect("port"), "/api/v1/costs")
        .await
        .1;
    assert_eq!(costs["today"]["calls"], 4, "{costs}");
    app.shutdown().await;
}

#[tokio::test]
async fn model_replies_stream_over_the_websocket_piece_by_piece() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let (url, _script) = server(vec![
        Answer::Sse {
            events: vec![
                text("Good "),
                text("evening, "),
                text("sir."),
                usage(500, 3, 0),
            ],
            cut: false,
        },
        Answer::Status {
            code: 500,
            retry_after: None,
            body: "{\"error\": {\"message\": \"out of memory\"}}".into(),
        },
    ])
    .await;
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = util::config(&sim, dir.path());
    config.llm = Some(local_settings(&url));
    let app = start(&config).await;
    let mut ws = util::ws_connect(app.side_port().expect("port")).await;
    for (id, t) in [("a", "tell me a joke"), ("b", "tell me another joke")] {
        let msg = json!({"type": "chat", "id": id, "text": t}).to_string();
        ws.send(Message::Text(msg.into())).await.expect("send");
        let mut pieces = Vec::new();
        let done = loop {
            let m = util::ws_next(&mut ws, Duration::from_secs(10))
                .await
                .expect("a message");
            match m["type"].as_str() {
                Some("chat_delta") if m["id"] == id => {
                    pieces.push(m["text"].as_str().unwrap_or_default().to_string())
                }
                Some("chat_done") if m["id"] == id => break m,
                _ => {}
            }
        };
        if id == "a" {
            assert_eq!(pieces, ["Good ", "evening, ", "sir."]);
            assert_eq!(done["engine"], "local");
            assert_eq!(done["failed"], false);
        } else {
            assert_eq!(pieces.len(), 1, "{pieces:?}");
            assert!(
                pieces[0].starts_with("My apologies") && pieces[0].contains("HTTP 500"),
                "{pieces:?}"
            );
            assert_eq!(done["failed"], true, "{done}");
        }
    }
    app.shutdown().await;
}

//! The side port over real sockets: auth, REST, the WebSocket (snapshot, live events, a client that never reads),
//! and request limits.

use std::time::Duration;

use futures_util::StreamExt;
use jarvis::bus::Event;
use jarvis::cluster::client::PowerAction;
use jarvis::cluster::model::GuestKind;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::util;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn auth_is_required_everywhere_but_healthz() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = util::app(&sim, dir.path()).await;
    let http = util::http();
    let base = format!("http://{}", app.side_port().expect("side port"));
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    for path in ["/api/v1/cluster", "/api/v1/events", "/ws"] {
        let resp = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 401, "{path} without a token");
        assert_eq!(
            resp.headers().get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        let body: serde_json::Value = resp.json().await.expect("json error");
        assert_eq!(body["error"], "unauthorized");
        let resp = http
            .get(format!("{base}{path}"))
            .bearer_auth("wrong-token-wrong-token")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 401, "{path} with a wrong token");
        let body: serde_json::Value = resp.json().await.expect("json error");
        assert_eq!(body["message"], "wrong bearer token");
    }
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn cluster_and_event_history_are_served() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = util::app(&sim, dir.path()).await;
    let state = app.state.clone();
    assert!(util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await);
    let (status, cluster) =
        util::get_json(app.side_port().expect("side port"), "/api/v1/cluster").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = cluster["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["Home", "agent", "agent1", "pve"]);
    assert_eq!(cluster["guests"].as_array().map(Vec::len), Some(18));

    let before = jarvis::time::now_ms();
    sim.shared
        .model_now()
        .force_power(133, jarvis::sim::model::Power::Running, before);
    let store = app.store.clone();
    assert!(
        util::eventually(WAIT, || store
            .events(Some(before), 10)
            .is_ok_and(|e| e.iter().any(|e| e.kind == "guest_state_changed")))
        .await
    );
    let (status, body) = util::get_json(
        app.side_port().expect("side port"),
        &format!("/api/v1/events?since={before}&limit=10"),
    )
    .await;
    assert_eq!(status, 200);
    let ev = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "guest_state_changed")
        .cloned()
        .expect("change");
    assert_eq!(
        (
            ev["channel"].as_str(),
            ev["data"]["vmid"].as_u64(),
            ev["data"]["to"].as_str()
        ),
        (Some("cluster"), Some(133), Some("running"))
    );
    let (_, latest) = util::get_json(
        app.side_port().expect("side port"),
        "/api/v1/events?limit=1",
    )
    .await;
    assert_eq!(latest["events"].as_array().map(Vec::len), Some(1));
    for bad in [
        "/api/v1/events?limit=0",
        "/api/v1/events?limit=5000",
        "/api/v1/events?since=yesterday",
        "/api/v1/events?sinse=1",
    ] {
        let (status, body) = util::get_json(app.side_port().expect("side port"), bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
    }
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn the_websocket_sends_a_snapshot_then_live_events() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = util::app(&sim, dir.path()).await;
    let state = app.state.clone();
    assert!(util::eventually(WAIT, || state.get().cluster.updated_at_ms > 0).await);
    let mut ws = util::ws_connect(app.side_port().expect("side port")).await;
    let first = util::ws_next(&mut ws, WAIT).await.expect("snapshot");
    assert_eq!(
        (first["channel"].as_str(), first["type"].as_str()),
        (Some("cluster"), Some("snapshot"))
    );
    assert_eq!(first["data"]["nodes"].as_array().map(Vec::len), Some(4));

    // A power action through the real client, as a tool will do it.
    let c = util::client(&sim);
    let upid = c
        .power("agent", GuestKind::Lxc, 133, PowerAction::Start)
        .await
        .expect("start");
    c.follow_task(&upid, Duration::from_millis(50), WAIT)
        .await
        .expect("task ends");
    let ev = util::ws_until(&mut ws, WAIT, |m| {
        m["type"] == "event" && m["data"]["kind"] == "guest_state_changed"
    })
    .await
    .expect("event");
    assert_eq!(
        (
            ev["channel"].as_str(),
            ev["data"]["vmid"].as_u64(),
            ev["data"]["to"].as_str()
        ),
        (Some("cluster"), Some(133), Some("running"))
    );

    app.bus.publish(Event::JarvisStarted {
        version: "x".into(),
        mode: "probe".into(),
    });
    let j = util::ws_until(&mut ws, WAIT, |m| m["channel"] == "jarvis")
        .await
        .expect("jarvis channel");
    assert_eq!(j["data"]["mode"], "probe");
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn the_websocket_accepts_the_token_as_a_query_parameter() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = util::app(&sim, dir.path()).await;
    let url = format!(
        "ws://{}/ws?access_token={}",
        app.side_port().expect("side port"),
        util::WEB_TOKEN
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects");
    assert!(util::ws_next(&mut ws, WAIT)
        .await
        .is_some_and(|m| m["type"] == "snapshot"));
    let bad = format!(
        "ws://{}/ws?access_token=nope",
        app.side_port().expect("side port")
    );
    assert!(
        tokio_tungstenite::connect_async(bad).await.is_err(),
        "a wrong token is refused at the handshake"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_slow_the_others() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = util::app(&sim, dir.path()).await;

    // The stuck client: a tiny receive buffer, and it never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(2048).expect("rcvbuf");
    let stream = socket
        .connect(app.side_port().expect("side port"))
        .await
        .expect("connect");
    let mut req = format!("ws://{}/ws", app.side_port().expect("side port"))
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", util::WEB_TOKEN)
            .parse()
            .expect("header"),
    );
    let (mut stuck, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("handshake");

    let mut good = util::ws_connect(app.side_port().expect("side port")).await;
    assert!(util::ws_next(&mut good, WAIT).await.is_some());
    let big = "x".repeat(64 * 1024);
    for i in 0..300 {
        app.bus.publish(Event::NodeOnline {
            node: format!("{i}-{big}"),
        });
    }
    app.bus.publish(Event::NodeOffline {
        node: "marker".into(),
    });
    // Well inside the stuck client's send timeout: the good client is not held up behind it.
    let marker = util::ws_until(&mut good, jarvis::web::ws::SEND_TIMEOUT / 2, |m| {
        m["data"]["node"] == "marker"
    })
    .await;
    assert!(
        marker.is_some(),
        "the reading client got every event while another one was stuck"
    );

    // Past the send timeout the server drops the stuck client: reading now drains what was buffered, then ends.
    tokio::time::sleep(jarvis::web::ws::SEND_TIMEOUT + Duration::from_secs(2)).await;
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        let mut n = 0usize;
        while let Some(Ok(msg)) = stuck.next().await {
            if let Message::Close(_) = msg {
                break;
            }
            n += 1;
        }
        n
    })
    .await
    .expect("the server closed the stuck connection");
    assert!(
        drained < 301,
        "the stuck client was cut off before getting everything ({drained} messages)"
    );
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn oversized_bodies_and_unknown_paths_get_clear_errors() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = util::app(&sim, dir.path()).await;
    let http = util::http();
    let resp = http
        .post(format!(
            "http://{}/api/v1/cluster",
            app.side_port().expect("side port")
        ))
        .bearer_auth(util::WEB_TOKEN)
        .body(vec![b'a'; 64 * 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 413);
    let (status, body) =
        util::get_json(app.side_port().expect("side port"), "/api/v2/nothing").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    app.shutdown().await;
    sim.stop().await;
}

/// Idle and half-sent connections are closed after the header timeout, and a flood of them (more than the
/// unauthenticated ceiling, hundreds of sockets) does not stop a client that holds the token, nor /healthz.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_sockets_does_not_stop_an_authenticated_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = util::config(&sim, dir.path());
    config.web.limits.header_timeout = Duration::from_secs(2);
    config.web.limits.max_unauthenticated = 32;
    let app = jarvis::app::App::start(&config, "test")
        .await
        .expect("app starts");
    util::cluster_seen(&app).await;
    let addr = app.side_port().expect("side port");
    let mut idle = Vec::new();
    for i in 0..700 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        if i % 2 == 1 {
            // Half a request: headers that never end.
            s.write_all(b"GET /api/v1/cluster HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .expect("write");
        }
        idle.push(s);
    }
    let (status, body) = util::get_json(addr, "/api/v1/cluster").await;
    assert_eq!(status, 200, "{body}");
    let health = util::http()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("healthz answers");
    assert_eq!(health.status().as_u16(), 200);
    // Every idle or half-sent socket is closed by the server (evicted, or at the header timeout).
    let mut buf = [0u8; 256];
    for (i, s) in idle.iter_mut().enumerate().rev().take(40) {
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            // A half-sent request may get a 408 before the close.
            Ok(Ok(n)) => assert!(
                String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
                "socket {i}: {}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(_) => panic!("socket {i} is still open after the header timeout"),
        }
    }
    app.shutdown().await;
    sim.stop().await;
}

//! Frigate end to end: the simulator (HTTP API and MQTT) publishing to a real mosquitto on loopback, Jarvis's
//! watcher recognising the snapshot on-device and presence following — and every fault the issue names: the
//! broker restarting (polling carries on, MQTT comes back), Frigate down and back, garbage and truncated MQTT
//! payloads, snapshots that are not images, a camera not in the config, wrong credentials on the authenticated
//! port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jarvis::app::App;
use jarvis::sim::frigate::{FrigateSim, FrigateSimOptions};
use jarvis::vision::cameras::CameraSettings;
use jarvis::vision::frigate::client::{FrigateClient, FrigateError, FrigateSettings};
use jarvis::vision::frigate::mqtt::MqttSettings;
use jarvis::vision::presence::CameraMode;
use serde_json::{json, Value};

use crate::util::{self, OPERATOR_TOKEN};

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache/test-faces")
}

/// A real mosquitto on loopback; killed on drop.
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut m = Mosquitto {
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        m.up();
        m
    }

    /// Starts (again) on the same port.
    pub fn up(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n",
                self.port
            ),
        )
        .expect("conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts (scripts/setup installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it (-9: a broker that dies, not one that says goodbye).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sim_options(mqtt: Option<SocketAddr>, login: Option<(String, String)>) -> FrigateSimOptions {
    FrigateSimOptions {
        photos: photos(),
        mqtt,
        login,
        history: false,
        live_every: None,
        step: Duration::from_millis(300),
        utc_offset_secs: 0,
        seed: 1,
    }
}

fn front_door() -> CameraSettings {
    CameraSettings::frigate("front_door", CameraMode::Zones, &["porch"], &["street"])
}

fn frigate_settings(url: String) -> FrigateSettings {
    FrigateSettings {
        url,
        login: None,
        trust: None,
        timeout: Duration::from_secs(5),
        poll_every: Duration::from_secs(3),
    }
}

/// The app started with the real face models, once its face engine is ready.
pub async fn start_with_faces(config: &jarvis::config::Config) -> App {
    let app = App::start(config, "test").await.expect("app");
    let state = app.state.clone();
    assert!(
        util::eventually(Duration::from_secs(120), || state.get().faces.engine
            == "ready")
        .await,
        "the face engine never became ready"
    );
    app
}

pub async fn enrol(addr: SocketAddr, name: &str, files: &[&str]) {
    let http = util::http();
    let made: Value = http
        .post(format!("http://{addr}/api/v1/faces/people"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({ "name": name }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = made["person"]["id"].as_i64().expect("id");
    let form = files.iter().fold(reqwest::multipart::Form::new(), |f, p| {
        let bytes =
            std::fs::read(photos().join(p)).expect("photo (scripts/fetch-models --with-tests)");
        f.part(
            "photo",
            reqwest::multipart::Part::bytes(bytes).file_name(p.to_string()),
        )
    });
    let resp = http
        .post(format!("http://{addr}/api/v1/faces/people/{id}/photos"))
        .bearer_auth(OPERATOR_TOKEN)
        .multipart(form)
        .send()
        .await
        .expect("enrol");
    assert_eq!(resp.status(), 200);
}

async fn visit(sim_url: &str, body: Value) -> String {
    let v: Value = util::http()
        .post(format!("{sim_url}/_sim/visit"))
        .json(&body)
        .send()
        .await
        .expect("sim visit")
        .json()
        .await
        .expect("json");
    v["id"].as_str().unwrap_or_default().to_string()
}

async fn presence_change(ws: &mut util::Ws, person: &str, state: &str, within: Duration) -> Value {
    util::ws_until(ws, within, |m| {
        m["data"]["kind"] == "presence_changed"
            && m["data"]["person"] == person
            && m["data"]["state"] == state
    })
    .await
    .unwrap_or_else(|| panic!("no presence_changed for {person} → {state} within {within:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_events_over_mqtt_and_polling_move_presence_through_every_fault() {
    let mut broker = Mosquitto::start();
    let sim = FrigateSim::start(sim_options(Some(broker.addr()), None))
        .await
        .expect("frigate sim");
    let sim_addr = sim.addr;
    let sim_url = sim.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let pve = util::sim().await;
    let mut config = util::config(&pve, dir.path());
    config.faces.models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache");
    config.cameras = vec![front_door()];
    config.frigate = Some(frigate_settings(sim_url.clone()));
    config.mqtt = Some(MqttSettings {
        host: "127.0.0.1".into(),
        port: broker.port,
        client_id: "jarvis-test".into(),
        login: None,
        tls: None,
        topic_prefix: "frigate".into(),
    });
    let app = start_with_faces(&config).await;
    let state = app.state.clone();
    let addr = app.side_port().expect("side port");
    let john = &jarvis::sim::frigate::household::HOUSEHOLD[0];
    enrol(addr, "John", &john.enrol).await;
    assert!(
        util::eventually(Duration::from_secs(15), || {
            let p = state.get().presence.clone();
            p.mqtt.is_some_and(|m| m.state == "live")
                && p.frigate.is_some_and(|f| f.state == "live")
        })
        .await,
        "MQTT and Frigate never came up: {:?}",
        state.get().presence
    );
    let mut ws = util::ws_connect(addr).await;

    // John comes home: a Frigate event over MQTT, his snapshot recognised on-device, presence follows.
    let started = Instant::now();
    let id = visit(
        &sim_url,
        json!({ "camera": "front_door", "who": "John", "zones": ["street", "porch"] }),
    )
    .await;
    let changed = presence_change(&mut ws, "John", "home", Duration::from_secs(30)).await;
    assert_eq!(changed["data"]["camera"], "front_door");
    eprintln!(
        "Frigate event → presence change in {:?} (the visit itself takes ~1.2 s)",
        started.elapsed()
    );
    let (_, t) = util::get_json(addr, "/api/v1/presence/timeline?person=John&kind=arrived").await;
    assert_eq!(
        t["entries"][0]["snapshot"],
        format!("/api/v1/cameras/front_door/events/{id}/snapshot.jpg"),
        "{t}"
    );

    // Pictures over the side port, the camera tools over REST, and over MCP the snapshot as an image.
    let http = util::http();
    let image = |path: String| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("http://{addr}{path}"))
                .bearer_auth(crate::util::WEB_TOKEN)
                .send()
                .await
                .expect("get");
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (
                r.status().as_u16(),
                ct,
                r.bytes().await.expect("body").to_vec(),
            )
        }
    };
    let (status, ct, body) = image("/api/v1/cameras/front_door/latest.jpg?height=360".into()).await;
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    assert!(body.starts_with(&[0xFF, 0xD8]));
    let (status, _, body) = image(format!(
        "/api/v1/cameras/front_door/events/{id}/snapshot.jpg"
    ))
    .await;
    assert_eq!(status, 200);
    assert!(body.starts_with(&[0xFF, 0xD8]));
    assert_eq!(
        image("/api/v1/cameras/attic/latest.jpg".into()).await.0,
        404
    );
    assert_eq!(
        image("/api/v1/cameras/front_door/latest.jpg?height=5".into())
            .await
            .0,
        400
    );
    assert_eq!(
        image("/api/v1/cameras/front_door/latest.jpg?x=1".into())
            .await
            .0,
        400
    );
    assert_eq!(
        image("/api/v1/cameras/front_door/events/..%2F..%2Fconfig/snapshot.jpg".into())
            .await
            .0,
        400
    );
    assert_eq!(
        image("/api/v1/cameras/front_door/events/1.0-nothing/snapshot.jpg".into())
            .await
            .0,
        404
    );
    let events: Value = http
        .post(format!("http://{addr}/api/v1/tools/camera_events"))
        .bearer_auth(crate::util::WEB_TOKEN)
        .json(&json!({ "camera": "front door", "when": "today" }))
        .send()
        .await
        .expect("tool")
        .json()
        .await
        .expect("json");
    assert!(events.to_string().contains(&id), "{events}");
    let mcp = format!("http://{addr}/mcp");
    let out = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(util::peer_python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/mcp_client.py"
            ))
            .args(["cameras", &mcp, crate::util::WEB_TOKEN])
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("json")
    })
    .await
    .expect("join");
    assert_eq!(out["home"]["home"][0]["name"], "John", "{out}");
    assert_eq!(out["snapshot"]["is_error"], false, "{out}");
    assert_eq!(
        out["snapshot"]["images"],
        json!([{ "mime": "image/jpeg", "jpeg": true }]),
        "{out}"
    );
    assert_eq!(out["no_such_camera"]["is_error"], true, "{out}");

    // Garbage and truncated payloads on Frigate's topics: dropped, nothing breaks.
    for junk in [
        &b"garbage"[..],
        &br#"{"type":"new","before":{"id":"#[..],
        &b"\xff\x00\xfe"[..],
    ] {
        sim.shared
            .publish_raw("frigate/events", junk.to_vec())
            .await;
    }
    sim.shared
        .publish_raw("frigate/available", b"perhaps".to_vec())
        .await;

    // The broker dies: polling carries the next event (John leaves), MQTT shows lost.
    broker.kill();
    assert!(
        util::eventually(Duration::from_secs(15), || state
            .get()
            .presence
            .mqtt
            .as_ref()
            .is_some_and(|m| m.state == "lost"))
        .await,
        "MQTT was not shown lost"
    );
    visit(
        &sim_url,
        json!({ "camera": "front_door", "who": "John", "zones": ["porch", "street"] }),
    )
    .await;
    presence_change(&mut ws, "John", "away", Duration::from_secs(30)).await;
    // The broker comes back: resubscribed, live again within 10 s.
    broker.up();
    assert!(
        util::eventually(Duration::from_secs(12), || state
            .get()
            .presence
            .mqtt
            .as_ref()
            .is_some_and(|m| m.state == "live"))
        .await,
        "MQTT did not come back: {:?}",
        state.get().presence.mqtt
    );
    visit(
        &sim_url,
        json!({ "camera": "front_door", "who": "John", "zones": ["street", "porch"] }),
    )
    .await;
    presence_change(&mut ws, "John", "home", Duration::from_secs(30)).await;

    // A camera not in the config: its events are ignored.
    visit(
        &sim_url,
        json!({ "camera": "side_house", "who": "John", "zones": ["path"] }),
    )
    .await;
    // Snapshots that are not images: the person stays unknown, one unknown-person row, no crash.
    sim.shared.faults.lock().expect("faults").garbage_snapshots = true;
    visit(
        &sim_url,
        json!({ "camera": "front_door", "who": "stranger", "zones": ["street", "porch"] }),
    )
    .await;
    let mut unknown_rows = 0;
    for _ in 0..40 {
        let (_, t) = util::get_json(addr, "/api/v1/presence/timeline?kind=unknown").await;
        unknown_rows = t["entries"].as_array().map_or(0, Vec::len);
        if unknown_rows > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        unknown_rows, 1,
        "one unknown-person row for the faceless visitor"
    );
    sim.shared.faults.lock().expect("faults").garbage_snapshots = false;
    let (_, t) = util::get_json(addr, "/api/v1/presence/timeline?camera=side_house").await;
    assert_eq!(t["entries"].as_array().map(Vec::len), Some(0), "{t}");

    // Frigate goes down: shown lost; it comes back on the same port: live within 10 s, and what happened
    // while Jarvis could not see it is caught up (John left while Frigate's API was down to us).
    sim.stop().await;
    assert!(
        util::eventually(Duration::from_secs(15), || state
            .get()
            .presence
            .frigate
            .as_ref()
            .is_some_and(|f| f.state == "lost"))
        .await,
        "Frigate was not shown lost"
    );
    let camera = state.get().presence.cameras[0].clone();
    assert_eq!(camera.state, "lost", "{camera:?}");
    let sim = FrigateSim::start_on(sim_options(Some(broker.addr()), None), sim_addr, None)
        .await
        .expect("frigate back");
    let back = Instant::now();
    assert!(
        util::eventually(Duration::from_secs(10), || state
            .get()
            .presence
            .frigate
            .as_ref()
            .is_some_and(|f| f.state == "live"))
        .await,
        "Frigate did not come back within 10 s"
    );
    eprintln!("Frigate back → live in {:?}", back.elapsed());
    visit(
        &sim.url(),
        json!({ "camera": "front_door", "who": "John", "zones": ["porch", "street"] }),
    )
    .await;
    presence_change(&mut ws, "John", "away", Duration::from_secs(30)).await;
    // A flood of invented event ids over MQTT is bounded, and the app still answers.
    for i in 0..600 {
        let m = json!({"type": "new", "before": {"id": format!("x{i}"), "camera": "front_door", "frame_time": 1.0, "label": "person", "start_time": 1.0},
            "after": {"id": format!("x{i}"), "camera": "front_door", "frame_time": 1.0, "label": "person", "start_time": 1.0, "has_snapshot": false}});
        sim.shared
            .publish_raw("frigate/events", m.to_string().into_bytes())
            .await;
    }
    let (status, _) = util::get_json(addr, "/api/v1/presence").await;
    assert_eq!(status, 200);
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authenticated_port_logs_in_and_refuses_wrong_credentials() {
    let sim = FrigateSim::start(sim_options(
        None,
        Some(("jarvis".into(), "s3cret-pass".into())),
    ))
    .await
    .expect("sim");
    let https = format!("https://{}", sim.auth_addr.expect("auth port"));
    let pinned = Some(jarvis::tls::Trust::Pinned(sim.identity.fingerprint()));
    let client = |password: &str| {
        FrigateClient::new(FrigateSettings {
            login: Some(("jarvis".into(), jarvis::secret::Secret::new(password))),
            trust: pinned.clone(),
            ..frigate_settings(https.clone())
        })
        .expect("client")
    };
    let good = client("s3cret-pass");
    assert_eq!(good.version().await.expect("version"), "0.16.2-sim");
    sim.shared.record_past(
        1_000.0,
        &jarvis::sim::frigate::household::Visit::arrival(
            &jarvis::sim::frigate::household::HOUSEHOLD[1],
        ),
        1.0,
    );
    let events = good.events(&Default::default()).await.expect("events");
    assert_eq!(events.len(), 1);
    let snapshot = good
        .snapshot(&events[0].id, true, None)
        .await
        .expect("snapshot");
    assert!(snapshot.starts_with(&[0xFF, 0xD8]));
    match client("wrong").version().await {
        Err(FrigateError::Login(m)) => assert!(m.contains("401"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Without a login the authenticated port refuses; the certificate is pinned, a different one is refused.
    let anonymous = FrigateClient::new(FrigateSettings {
        trust: pinned.clone(),
        ..frigate_settings(https.clone())
    })
    .expect("client");
    assert!(matches!(
        anonymous.version().await,
        Err(FrigateError::Http { status: 401, .. })
    ));
    let other = jarvis::sim::SimIdentity::generate().expect("identity");
    let wrong_pin = FrigateClient::new(FrigateSettings {
        trust: Some(jarvis::tls::Trust::Pinned(other.fingerprint())),
        login: Some(("jarvis".into(), jarvis::secret::Secret::new("s3cret-pass"))),
        ..frigate_settings(https)
    })
    .expect("client");
    assert!(matches!(
        wrong_pin.version().await,
        Err(FrigateError::Unreachable { .. })
    ));
    // Ids from outside never reach a URL unchecked.
    assert!(matches!(
        good.event("../../config").await,
        Err(FrigateError::Decode(_))
    ));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yesterday_is_caught_up_from_frigates_api_and_recognised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pve = util::sim().await;
    let mut config = util::config(&pve, dir.path());
    config.faces.models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache");
    // Enrol the household first (as the demo does), then start following Frigate.
    let app = start_with_faces(&config).await;
    let addr = app.side_port().expect("side port");
    for m in &jarvis::sim::frigate::household::HOUSEHOLD {
        enrol(addr, m.name, &m.enrol).await;
    }
    app.shutdown().await;
    let sim = FrigateSim::start(FrigateSimOptions {
        history: true,
        ..sim_options(None, None)
    })
    .await
    .expect("sim");
    let history =
        jarvis::sim::frigate::household::history(jarvis::time::now_ms() as f64 / 1000.0, 0, 1);
    config.cameras = vec![front_door()];
    config.frigate = Some(frigate_settings(sim.url()));
    let app = App::start(&config, "test").await.expect("app");
    let addr = app.side_port().expect("side port");
    let front: usize = history
        .iter()
        .filter(|(_, v)| v.camera == "front_door")
        .count();
    let mut rows = Vec::new();
    for _ in 0..240 {
        let (_, t) = util::get_json(
            addr,
            "/api/v1/presence/timeline?kind=arrived,left,unknown&limit=100&oldest_first=true",
        )
        .await;
        rows = t["entries"].as_array().cloned().unwrap_or_default();
        if rows.len() >= front {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let said: Vec<String> = rows
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap_or(""),
                e["person"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(rows.len(), front, "{said:?}");
    // Every household visit is named; only the deliveries are unknown.
    let unknown = said.iter().filter(|s| s.starts_with("unknown")).count();
    let deliveries = history.iter().filter(|(_, v)| v.zones.len() == 3).count();
    assert_eq!(unknown, deliveries, "{said:?}");
    app.shutdown().await;
    sim.stop().await;
}

//! Presence end to end with the real face models and photos: faces reported as seen on configured cameras (the
//! side port's sightings upload, as a camera reader does) make arrivals and departures by the camera's rules;
//! who is home and the timeline answer over REST, the WebSocket and the offline engine; the state survives a
//! restart; lies (unknown cameras, nonsense time phrases, bad queries) get clear answers and move nobody; deleting
//! a person deletes their timeline.

use std::path::Path;
use std::time::Duration;

use jarvis::app::App;
use jarvis::vision::cameras::CameraSettings;
use jarvis::vision::presence::CameraMode;
use serde_json::{json, Value};

use crate::util::{self, OPERATOR_TOKEN, WEB_TOKEN};

fn read(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/cache/test-faces")
        .join(name);
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{name}: {e} (scripts/fetch-models --with-tests fetches it)"))
}

async fn start(sim: &jarvis::sim::Simulator, dir: &Path) -> App {
    let mut config = util::config(sim, dir);
    config.faces.models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache");
    config.cameras = vec![
        CameraSettings::frigate("front_door", CameraMode::Zones, &["porch"], &["street"]),
        CameraSettings::frigate("hall", CameraMode::Arrivals, &[], &[]),
    ];
    let app = App::start(&config, "test").await.expect("app starts");
    let state = app.state.clone();
    assert!(
        util::eventually(Duration::from_secs(120), || state.get().faces.engine
            == "ready")
        .await,
        "the face engine never became ready: {:?}",
        state.get().faces
    );
    app
}

struct Side {
    base: String,
    http: reqwest::Client,
}

impl Side {
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn person(&self, name: &str, photos: &[&str]) -> i64 {
        let (status, made) = self
            .send(
                self.http
                    .post(format!("{}/api/v1/faces/people", self.base))
                    .bearer_auth(OPERATOR_TOKEN)
                    .json(&json!({ "name": name })),
            )
            .await;
        assert_eq!(status, 201, "{made}");
        let id = made["person"]["id"].as_i64().expect("id");
        let form = photos.iter().fold(reqwest::multipart::Form::new(), |f, p| {
            f.part(
                "photo",
                reqwest::multipart::Part::bytes(read(p)).file_name(p.to_string()),
            )
        });
        let (status, body) = self
            .send(
                self.http
                    .post(format!("{}/api/v1/faces/people/{id}/photos", self.base))
                    .bearer_auth(OPERATOR_TOKEN)
                    .multipart(form),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        id
    }

    /// A photo seen on `camera` by a track that has entered `zones`.
    async fn seen(&self, photo: &str, camera: &str, zones: &str, track: &str) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new()
            .text("source", camera.to_string())
            .part(
                "photo",
                reqwest::multipart::Part::bytes(read(photo)).file_name(photo.to_string()),
            );
        if !zones.is_empty() {
            form = form.text("zones", zones.to_string());
        }
        if !track.is_empty() {
            form = form.text("track", track.to_string());
        }
        self.send(
            self.http
                .post(format!("{}/api/v1/faces/sightings", self.base))
                .bearer_auth(OPERATOR_TOKEN)
                .multipart(form),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(WEB_TOKEN),
        )
        .await
    }

    async fn ask(&self, text: &str) -> String {
        let (status, body) = self
            .send(
                self.http
                    .post(format!("{}/api/v1/chat", self.base))
                    .bearer_auth(WEB_TOKEN)
                    .json(&json!({ "text": text })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["text"].as_str().unwrap_or_default().to_string()
    }
}

fn state_of(presence: &Value, name: &str) -> String {
    presence["presence"]["people"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .and_then(|p| p["state"].as_str())
        .unwrap_or("absent")
        .to_string()
}

async fn presence_change(ws: &mut util::Ws, person: &str, state: &str) -> Value {
    util::ws_until(ws, Duration::from_secs(20), |m| {
        m["channel"] == "vision"
            && m["data"]["kind"] == "presence_changed"
            && m["data"]["person"] == person
            && m["data"]["state"] == state
    })
    .await
    .unwrap_or_else(|| panic!("no presence_changed for {person} → {state} on the WebSocket"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_household_seen_on_the_cameras_is_home_and_the_timeline_answers() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start(&sim, dir.path()).await;
    let addr = app.side_port().expect("side port");
    let side = Side {
        base: format!("http://{addr}"),
        http: util::http(),
    };
    let anna = side
        .person("Anna", &["Female_40_1_1_1.jpg", "Female_40_2_1_1.jpg"])
        .await;
    side.person("Bea", &["Female_40_1_2_1.jpg", "Female_40_2_2_1.jpg"])
        .await;
    let (_, p) = side.get("/api/v1/presence").await;
    assert_eq!(
        (state_of(&p, "Anna"), state_of(&p, "Bea")),
        ("unknown".into(), "unknown".into()),
        "{p}"
    );
    assert!(side
        .ask("who is home?")
        .await
        .contains("I have not seen Anna and Bea yet"));

    let mut ws = util::ws_connect(addr).await;
    // Anna walks up from the street to the porch: seen, then arrived — announced live.
    let (status, body) = side
        .seen("Female_40_3_1.jpg", "front_door", "street", "t1")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sightings"][0]["decision"]["name"], "Anna", "{body}");
    side.seen("Female_40_3_1.jpg", "front_door", "street,porch", "t1")
        .await;
    let changed = presence_change(&mut ws, "Anna", "home").await;
    assert_eq!(changed["data"]["camera"], "front_door");
    // Bea is seen by the hall camera, which only sees people coming in.
    side.seen("Female_40_4_1.jpg", "hall", "", "t2").await;
    presence_change(&mut ws, "Bea", "home").await;
    let reply = side.ask("who is home?").await;
    assert!(reply.starts_with("Anna and Bea are home"), "{reply}");
    assert!(
        side.ask("is Anna home?").await.starts_with("Yes"),
        "is Anna home"
    );

    // Anna goes out: porch, then street.
    side.seen("Female_40_3_1.jpg", "front_door", "porch,street", "t3")
        .await;
    presence_change(&mut ws, "Anna", "away").await;
    let (_, p) = side.get("/api/v1/presence").await;
    assert_eq!(
        (state_of(&p, "Anna"), state_of(&p, "Bea")),
        ("away".into(), "home".into()),
        "{p}"
    );
    assert_eq!(p["presence"]["recent"][0]["kind"], "left", "{p}");

    // The timeline, by person, kind and a time range in words.
    let (status, t) = side
        .get("/api/v1/presence/timeline?person=anna&kind=left,arrived&when=today&oldest_first=true")
        .await;
    assert_eq!(status, 200, "{t}");
    let kinds: Vec<&str> = t["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["arrived", "left"], "{t}");
    assert_eq!(t["range"]["said"], "today");
    assert!(
        t["entries"][0]["snapshot"]
            .as_str()
            .is_some_and(|s| s.ends_with("/crop.jpg")),
        "{t}"
    );
    let reply = side.ask("when did Anna leave today?").await;
    assert!(reply.starts_with("Anna left at "), "{reply}");
    assert!(reply.contains("front door"), "{reply}");
    let reply = side.ask("when did Anna arrive yesterday?").await;
    assert!(
        reply.contains("no record of Anna arriving yesterday"),
        "{reply}"
    );
    let reply = side.ask("when was Bea last seen?").await;
    assert!(
        reply.starts_with("Bea was last seen at ") && reply.contains("hall camera, and is home"),
        "{reply}"
    );

    // Lies and nonsense: a clear answer, nobody moved.
    let reply = side.ask("when did Anna leave purple o'clock?").await;
    assert!(reply.contains("can't place \"purple\""), "{reply}");
    for (query, status) in [
        ("when=purple%20o%27clock", 400),
        ("kind=flying", 400),
        ("limit=100000", 400),
        ("drop=table", 400),
        ("person=Nobody", 404),
    ] {
        let (got, body) = side
            .get(&format!("/api/v1/presence/timeline?{query}"))
            .await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{query}: {body}"
        );
    }
    let (status, _) = side.seen("Female_40_3_1.jpg", "attic", "porch", "t4").await;
    assert_eq!(
        status, 200,
        "a camera not in the config is recorded as a face, not as presence"
    );
    let (_, form_lie) = side
        .send(
            side.http
                .post(format!("{}/api/v1/faces/identify", side.base))
                .bearer_auth(OPERATOR_TOKEN)
                .multipart(reqwest::multipart::Form::new().text("zones", "porch").part(
                    "photo",
                    reqwest::multipart::Part::bytes(read("Female_40_3_1.jpg")),
                )),
        )
        .await;
    assert!(
        form_lie["message"]
            .as_str()
            .is_some_and(|m| m.contains("zones")),
        "{form_lie}"
    );
    // A stranger at the door: an unknown-person row, nobody's state changes. The household's task writes the row
    // when it hears the sighting on the bus, after the upload has been answered: wait for it (a loaded CI machine
    // once read the timeline first).
    side.seen("Male_41_1_1_1.jpg", "front_door", "street,porch", "t5")
        .await;
    let mut t = Value::Null;
    for _ in 0..100 {
        t = side.get("/api/v1/presence/timeline?kind=unknown").await.1;
        if t["entries"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(t["entries"].as_array().map(Vec::len), Some(1), "{t}");
    let (_, p) = side.get("/api/v1/presence").await;
    assert_eq!(
        (state_of(&p, "Anna"), state_of(&p, "Bea")),
        ("away".into(), "home".into()),
        "{p}"
    );

    // A restart keeps who is home.
    app.shutdown().await;
    let app = start(&sim, dir.path()).await;
    let addr = app.side_port().expect("side port");
    let side = Side {
        base: format!("http://{addr}"),
        http: util::http(),
    };
    let (_, p) = side.get("/api/v1/presence").await;
    assert_eq!(
        (state_of(&p, "Anna"), state_of(&p, "Bea")),
        ("away".into(), "home".into()),
        "{p}"
    );

    // Deleting Anna deletes her timeline (the operator's call, approved, as for every delete_person).
    let (status, body) = side
        .send(
            side.http
                .delete(format!("{}/api/v1/faces/people/{anna}", side.base))
                .bearer_auth(OPERATOR_TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let state = app.state.clone();
    assert!(
        util::eventually(Duration::from_secs(10), || !state
            .get()
            .presence
            .people
            .iter()
            .any(|p| p.name == "Anna"))
        .await,
        "Anna is still in the presence state"
    );
    let (_, t) = side.get("/api/v1/presence/timeline?limit=100").await;
    assert!(
        t["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|e| e["person"]["name"] != "Anna"),
        "{t}"
    );
    app.shutdown().await;
}

//! Faces as a household uses them, end to end with the real models and photos (fetched, never committed): enrolment
//! over the side port (multipart) and every way a photo can be wrong; the review queue worked through the tool
//! registry (REST and the official MCP Python SDK) — assign, "not this person" changing later results, discard,
//! resolved items refused; delete removing everything; `jarvis faces` on the command line.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jarvis::app::App;
use serde_json::{json, Value};

use crate::util::{self, OPERATOR_TOKEN, WEB_TOKEN};

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache/test-faces")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(photos().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e} (scripts/fetch-models --with-tests fetches it)"))
}

/// An app with the real face models, once its engine is ready.
async fn app_with_faces(sim: &jarvis::sim::Simulator, dir: &Path) -> App {
    let mut config = util::config(sim, dir);
    config.faces.models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache");
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

/// Three of the checked photos side by side: one photo, three people.
fn three_faces() -> Vec<u8> {
    let parts: Vec<image::RgbImage> = [
        "Female_40_1_1_1.jpg",
        "Male_41_1_1_1.jpg",
        "Female_46_1_2_1.jpg",
    ]
    .iter()
    .map(|n| {
        let img = image::load_from_memory(&read(n))
            .expect("decodes")
            .to_rgb8();
        image::imageops::resize(
            &img,
            400,
            400 * img.height() / img.width(),
            image::imageops::FilterType::Triangle,
        )
    })
    .collect();
    let h = parts.iter().map(|p| p.height()).max().unwrap_or(0);
    let mut out = image::RgbImage::new(1200, h);
    for (i, p) in parts.iter().enumerate() {
        image::imageops::overlay(&mut out, p, i as i64 * 400, 0);
    }
    encode(&out)
}

/// A checked photo blurred until the face is a smudge.
fn blurred(name: &str) -> Vec<u8> {
    let img = image::load_from_memory(&read(name))
        .expect("decodes")
        .to_rgb8();
    let small = image::imageops::resize(
        &img,
        480,
        480 * img.height() / img.width(),
        image::imageops::FilterType::Triangle,
    );
    encode(&image::imageops::blur(&small, 4.0))
}

fn encode(img: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encodes");
    out.into_inner()
}

fn form(photos: &[(&str, Vec<u8>)]) -> reqwest::multipart::Form {
    photos
        .iter()
        .fold(reqwest::multipart::Form::new(), |f, (name, bytes)| {
            f.part(
                "photo",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
            )
        })
}

struct Side {
    base: String,
    http: reqwest::Client,
}

impl Side {
    fn new(addr: SocketAddr) -> Side {
        Side {
            base: format!("http://{addr}"),
            http: util::http(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn enrol(&self, person: i64, photos: &[(&str, Vec<u8>)]) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}/api/v1/faces/people/{person}/photos", self.base))
                .bearer_auth(OPERATOR_TOKEN)
                .multipart(form(photos)),
        )
        .await
    }

    async fn create(&self, name: &str, token: &str) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}/api/v1/faces/people", self.base))
                .bearer_auth(token)
                .json(&json!({ "name": name })),
        )
        .await
    }

    async fn photo(&self, path: &str, name: &str, source: Option<&str>) -> (u16, Value) {
        let mut f = form(&[(name, read(name))]);
        if let Some(s) = source {
            f = f.text("source", s.to_string());
        }
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(OPERATOR_TOKEN)
                .multipart(f),
        )
        .await
    }

    async fn identify(&self, name: &str) -> Value {
        let (status, body) = self.photo("/api/v1/faces/identify", name, None).await;
        assert_eq!(status, 200, "{body}");
        body["faces"][0].clone()
    }

    async fn tool(&self, name: &str, args: Value) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}/api/v1/tools/{name}", self.base))
                .bearer_auth(WEB_TOKEN)
                .json(&args),
        )
        .await
    }

    async fn samples_of(&self, person: i64) -> u64 {
        let (_, body) = self
            .send(
                self.http
                    .get(format!("{}/api/v1/faces/people", self.base))
                    .bearer_auth(WEB_TOKEN),
            )
            .await;
        body["people"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["id"] == person))
            .and_then(|p| p["samples"].as_u64())
            .unwrap_or(0)
    }
}

/// The one message of a refused one-photo enrolment.
fn refusal(body: &Value) -> String {
    assert_eq!(body["photos"][0]["enrolled"], false, "{body}");
    body["photos"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_takes_clear_photos_of_one_person_and_refuses_every_other_kind_with_the_reason() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app_with_faces(&sim, dir.path()).await;
    let addr = app.side_port().expect("side port");
    let side = Side::new(addr);

    // Only the operator creates people; names are unique.
    assert_eq!(side.create("Anna", WEB_TOKEN).await.0, 403);
    let (status, made) = side.create("Anna", OPERATOR_TOKEN).await;
    assert_eq!(status, 201, "{made}");
    let anna = made["person"]["id"].as_i64().expect("id");
    assert_eq!(side.create(" anna ", OPERATOR_TOKEN).await.0, 400);

    let (status, body) = side
        .enrol(
            anna,
            &[
                ("a.jpg", read("Female_40_1_1_1.jpg")),
                ("b.jpg", read("Female_40_2_1_1.jpg")),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["photos"]
            .as_array()
            .expect("photos")
            .iter()
            .all(|p| p["enrolled"] == true),
        "{body}"
    );
    assert_eq!(body["person"]["samples"], 2);

    // Every wrong photo: refused, with the reason, and nothing written.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("no face", read("Female_41_1_1_1.jpg"), "no face"),
        ("three faces", three_faces(), "3 faces"),
        ("blurred", blurred("Female_40_3_1.jpg"), "blurred"),
        (
            "someone else",
            read("Male_41_1_1_1.jpg"),
            "does not look like",
        ),
        (
            "truncated",
            read("Female_40_3_1.jpg")[..6000].to_vec(),
            "damaged",
        ),
        (
            "not an image",
            b"#!/bin/sh\necho this is not a photo\n".to_vec(),
            "not a JPEG or PNG",
        ),
        (
            "bomb",
            std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/data/photos/bomb-20000x20000.png"),
            )
            .expect("fixture"),
            "20000",
        ),
        (
            "cmyk",
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/photos/cmyk.jpg"))
                .expect("fixture"),
            "no face",
        ),
    ];
    for (what, bytes, says) in cases {
        let (status, body) = side.enrol(anna, &[(what, bytes)]).await;
        assert_eq!(status, 422, "{what}: {body}");
        let message = refusal(&body);
        assert!(message.contains(says), "{what}: {message}");
        assert_eq!(side.samples_of(anna).await, 2, "{what} changed the gallery");
    }

    // An unknown person, a client's token, too many photos, a form without photos.
    assert_eq!(
        side.enrol(9999, &[("a.jpg", read("Female_40_3_1.jpg"))])
            .await
            .0,
        404
    );
    let client = side
        .send(
            side.http
                .post(format!("{}/api/v1/faces/people/{anna}/photos", side.base))
                .bearer_auth(WEB_TOKEN)
                .multipart(form(&[("a.jpg", read("Female_40_3_1.jpg"))])),
        )
        .await;
    assert_eq!(client.0, 403);
    let eleven: Vec<(&str, Vec<u8>)> = (0..11).map(|_| ("x.jpg", b"tiny".to_vec())).collect();
    let (status, body) = side.enrol(anna, &eleven).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("too_many_photos"))
    );
    let (status, _) = side
        .send(
            side.http
                .post(format!("{}/api/v1/faces/people/{anna}/photos", side.base))
                .bearer_auth(OPERATOR_TOKEN)
                .multipart(reqwest::multipart::Form::new().text("name", "x")),
        )
        .await;
    assert_eq!(status, 400);

    // A huge upload is refused from its headers: the body is never sent, and the answer comes at once.
    let mut raw = std::net::TcpStream::connect(addr).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        raw,
        "POST /api/v1/faces/people/{anna}/photos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 900000000\r\n\r\n--b\r\n"
    )
    .expect("write");
    let mut answer = vec![0u8; 512];
    let n = raw.read(&mut answer).expect("an answer before the body");
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );

    // Held-out photos: Anna's third photo is Anna; a stranger stays unknown, with the reason.
    let found = side.identify("Female_40_3_1.jpg").await;
    assert_eq!(
        (found["decision"].as_str(), found["name"].as_str()),
        (Some("known"), Some("Anna")),
        "{found}"
    );
    let stranger = side.identify("Male_43_1_1_1.jpg").await;
    assert_eq!(stranger["decision"], "unknown", "{stranger}");
    assert!(
        stranger["reason"]
            .as_str()
            .is_some_and(|r| r.contains("threshold")),
        "{stranger}"
    );
    // A JPEG that is not a photo of anyone: a clear error, not a panic.
    let (status, body) = side
        .send(
            side.http
                .post(format!("{}/api/v1/faces/identify", side.base))
                .bearer_auth(OPERATOR_TOKEN)
                .multipart(form(&[("bad.jpg", b"\xff\xd8\xff\xe0garbage".to_vec())])),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    // Every change and refusal is audited as the operator's.
    let audit = app.store.audit(200).expect("audit");
    assert!(audit
        .iter()
        .any(|r| r.tool == "enrol_faces" && r.actor == "operator" && r.detail.contains("2 of 2")));
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_queue_is_worked_and_not_this_person_stops_the_match_recurring() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app_with_faces(&sim, dir.path()).await;
    let side = Side::new(app.side_port().expect("side port"));
    let jarvis = env!("CARGO_BIN_EXE_jarvis");
    let url = side.base.clone();

    // The command line enrols (creating the person) and lists.
    let cli = |args: Vec<String>| {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(jarvis)
                    .arg("faces")
                    .arg("--url")
                    .arg(&url)
                    .args(&args)
                    .env("JARVIS_OPERATOR_TOKEN", OPERATOR_TOKEN)
                    .output()
                    .expect("jarvis runs")
            })
            .await
            .expect("cli task")
        }
    };
    let dir_of = |n: &str| photos().join(n).display().to_string();
    let out = cli(vec![
        "enroll".into(),
        "Anna".into(),
        dir_of("Female_40_1_1_1.jpg"),
        dir_of("Female_40_2_1_1.jpg"),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Added Anna") && text.contains("Anna now has 2 face samples"),
        "{text}"
    );
    let out = cli(vec![
        "enroll".into(),
        "Anna".into(),
        dir_of("Female_41_1_1_1.jpg"),
    ])
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no face found"));
    let out = cli(vec!["identify".into(), dir_of("Female_40_3_1.jpg")]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Anna (score"), "{text}");

    // A camera sees a stranger twice and Anna once.
    for name in ["Male_43_1_1_1.jpg", "Male_43_3_1.jpg", "Female_40_3_1.jpg"] {
        let (status, body) = side
            .photo("/api/v1/faces/sightings", name, Some("front_door"))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, queue) = side.tool("face_review_queue", json!({})).await;
    assert_eq!(status, 200, "{queue}");
    let queue = &queue["result"];
    assert!(
        !queue.to_string().contains("embedding"),
        "read tools never return embeddings: {queue}"
    );
    let groups = queue["unknown"].as_array().expect("groups");
    assert_eq!(
        groups.len(),
        1,
        "the same stranger twice is one group: {queue}"
    );
    assert_eq!(groups[0]["sightings"], 2);
    let group = groups[0]["group"].as_i64().expect("group");
    let crop = groups[0]["crops"][0].as_str().expect("crop url");
    let resp = side
        .http
        .get(format!("{}{crop}", side.base))
        .bearer_auth(WEB_TOKEN)
        .send()
        .await
        .expect("crop");
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let matched = &queue["recent_matches"][0];
    assert_eq!(matched["person"]["name"], "Anna");
    let sighting = matched["sighting"].as_i64().expect("sighting");

    // The stranger is Dmitri: his third photo is then recognised.
    let (status, done) = side
        .tool(
            "assign_faces",
            json!({ "group": group, "person": "Dmitri", "create_person": true }),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert!(
        done["result"]["samples_learnt"].as_u64().unwrap_or(0) >= 1,
        "{done}"
    );
    let dmitri = side.identify("Mlae_43_2_1.jpg").await;
    assert_eq!(dmitri["name"], "Dmitri", "{dmitri}");
    let (status, again) = side
        .tool("assign_faces", json!({ "group": group, "person": "Anna" }))
        .await;
    assert_ne!(status, 200);
    assert!(
        again["message"]
            .as_str()
            .is_some_and(|m| m.contains("already assigned")),
        "{again}"
    );

    // "That was not Anna": the same face no longer matches her, and waits among the unknown.
    assert_eq!(side.identify("Female_40_3_1.jpg").await["name"], "Anna");
    let (status, not) = side
        .tool("not_this_person", json!({ "sighting": sighting }))
        .await;
    assert_eq!(status, 200, "{not}");
    let after = side.identify("Female_40_3_1.jpg").await;
    assert_eq!(after["decision"], "unknown", "{after}");
    assert!(
        after["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not Anna")),
        "{after}"
    );
    assert_eq!(
        side.tool("not_this_person", json!({ "sighting": sighting }))
            .await
            .0,
        502
    );
    let waiting = not["result"]["now_in_unknown_group"]
        .as_i64()
        .expect("group");
    let (status, _) = side
        .tool("discard_faces", json!({ "group": waiting }))
        .await;
    assert_eq!(status, 200);
    let (_, again) = side
        .tool("discard_faces", json!({ "group": waiting }))
        .await;
    assert!(
        again["message"]
            .as_str()
            .is_some_and(|m| m.contains("already discarded")),
        "{again}"
    );
    assert_eq!(
        side.tool("discard_faces", json!({ "group": 424242 }))
            .await
            .0,
        404
    );

    // Deleting a person: tier 2 through the tools, at once for the operator; nothing of theirs is left.
    let (status, pending) = side
        .tool("delete_person", json!({ "person": "Anna" }))
        .await;
    assert_eq!(status, 202, "{pending}");
    let (_, people) = side
        .send(
            side.http
                .get(format!("{}/api/v1/faces/people", side.base))
                .bearer_auth(WEB_TOKEN),
        )
        .await;
    let anna = people["people"]
        .as_array()
        .expect("people")
        .iter()
        .find(|p| p["name"] == "Anna")
        .expect("Anna")["id"]
        .as_i64()
        .expect("id");
    let out = cli(vec!["delete".into(), "anna".into()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: i64 = app
        .store
        .read(|c| {
            c.query_row(
                "SELECT (SELECT COUNT(*) FROM face_samples WHERE person = ?1)
                      + (SELECT COUNT(*) FROM face_negatives WHERE person = ?1)
                      + (SELECT COUNT(*) FROM face_sightings WHERE person = ?1)
                      + (SELECT COUNT(*) FROM face_people WHERE id = ?1)",
                [anna],
                |r| r.get(0),
            )
        })
        .expect("count");
    assert_eq!(left, 0);
    let resp = side
        .http
        .get(format!(
            "{}/api/v1/faces/people/{anna}/thumbnail.jpg",
            side.base
        ))
        .bearer_auth(WEB_TOKEN)
        .send()
        .await
        .expect("thumbnail");
    assert_eq!(resp.status().as_u16(), 404);

    // The kill switch stops routine changes to the gallery too.
    app.tools.set_kill_switch(true).expect("kill switch");
    let (status, _) = side
        .tool(
            "rename_person",
            json!({ "person": "Dmitri", "name": "Dima" }),
        )
        .await;
    assert_eq!(status, 403);
    app.tools.set_kill_switch(false).expect("kill switch");

    // An MCP client (the official Python SDK) lists people and works the queue.
    side.photo(
        "/api/v1/faces/sightings",
        "Male_45_1_1_1.jpg",
        Some("side_house"),
    )
    .await;
    let mcp = format!("{}/mcp", side.base);
    let out = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(util::peer_python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/mcp_client.py"
            ))
            .args(["faces", &mcp, WEB_TOKEN])
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
    .expect("mcp task");
    assert_eq!(out["people"], json!(["Dmitri"]), "{out}");
    assert_eq!(out["groups_before"], 1, "{out}");
    assert_eq!(out["assigned"]["is_error"], false, "{out}");
    assert_eq!(out["groups_after"], 0, "{out}");
    assert_eq!(out["assign_again"]["is_error"], true, "{out}");
    app.shutdown().await;
    sim.stop().await;
}

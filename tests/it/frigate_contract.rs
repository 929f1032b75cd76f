//! Contract tests: the Frigate simulator and Jarvis's Frigate types against Frigate 0.16's OpenAPI spec
//! (tests/data/frigate-api-subset.json, made by scripts/extract-frigate-spec from shared/contracts) and against
//! the MQTT messages Frigate documents. Every route the simulator serves must be a spec path and method, every
//! query parameter it reads a parameter of that operation; every answer's fields must be the spec's (all the
//! required ones, no invented ones, compatible types); every MQTT payload carries only documented fields.

use std::path::Path;
use std::time::Duration;

use jarvis::sim::frigate::api::routes;
use jarvis::sim::frigate::{FrigateSim, FrigateSimOptions};
use serde_json::Value;

fn spec() -> Value {
    serde_json::from_str(include_str!("../data/frigate-api-subset.json"))
        .expect("spec subset is JSON")
}

fn type_ok(schema: &Value, v: &Value) -> bool {
    if let Some(any) = schema["anyOf"].as_array() {
        return any.iter().any(|s| type_ok(s, v));
    }
    match schema["type"].as_str() {
        Some("string") => v.is_string(),
        Some("number") => v.is_number(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("boolean") => v.is_boolean(),
        Some("array") => v.is_array(),
        Some("object") => v.is_object(),
        Some("null") => v.is_null(),
        _ => true,
    }
}

/// `v` has every required property of `schema`, no property it does not declare, each of a compatible type.
fn conforms(spec: &Value, name: &str, v: &Value) {
    let schema = &spec["schemas"][name];
    let props = schema["properties"].as_object().expect("properties");
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{name}: not an object: {v}"));
    for req in schema["required"].as_array().expect("required") {
        let req = req.as_str().expect("name");
        assert!(
            obj.contains_key(req),
            "{name}: required `{req}` missing in {v}"
        );
    }
    for (k, val) in obj {
        let p = props
            .get(k)
            .unwrap_or_else(|| panic!("{name}: `{k}` is not in the spec"));
        let p = match p.get("$ref").and_then(Value::as_str) {
            Some(r) => &spec["schemas"][r.rsplit('/').next().unwrap_or("")],
            None => p,
        };
        if let Some(allowed) = p["enum"].as_array() {
            assert!(
                allowed.contains(val),
                "{name}.{k}: {val} not in {allowed:?}"
            );
        }
        assert!(type_ok(p, val), "{name}.{k}: {val} does not fit {p}");
    }
}

#[test]
fn every_simulator_route_and_parameter_is_in_the_spec() {
    let spec = spec();
    for r in routes() {
        let op = spec["paths"][r.path]
            .get(r.method)
            .unwrap_or_else(|| panic!("{} {} is not in Frigate's spec", r.method, r.path));
        for p in r.params {
            let declared = &op["parameters"][p];
            assert_eq!(
                declared["in"], "query",
                "{} {}: `{p}` is not a query parameter of the spec",
                r.method, r.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_answers_and_mqtt_messages_have_the_specs_fields() {
    let spec = spec();
    let sim = FrigateSim::start(FrigateSimOptions {
        photos: Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache/test-faces"),
        mqtt: None,
        login: None,
        history: true,
        live_every: None,
        step: Duration::from_millis(10),
        utc_offset_secs: 0,
        seed: 5,
    })
    .await
    .expect("sim");
    let http = crate::util::http();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}/api{path}", sim.url());
        async move {
            let r = http.get(url).send().await.expect("request");
            (r.status().as_u16(), r.bytes().await.expect("body").to_vec())
        }
    };
    let (status, body) = get("/events?sort=date_asc&limit=500&include_thumbnails=0".into()).await;
    assert_eq!(status, 200);
    let events: Value = serde_json::from_slice(&body).expect("json");
    let events = events.as_array().expect("array");
    assert!(
        events.len() >= 11,
        "yesterday's history at least: {}",
        events.len()
    );
    for e in events {
        conforms(&spec, "EventResponse", e);
    }
    let id = events[0]["id"].as_str().expect("id");
    let (_, one) = get(format!("/events/{id}")).await;
    conforms(
        &spec,
        "EventResponse",
        &serde_json::from_slice(&one).expect("json"),
    );
    let (_, reviews) = get("/review?limit=5".into()).await;
    for r in serde_json::from_slice::<Value>(&reviews)
        .expect("json")
        .as_array()
        .expect("array")
    {
        conforms(&spec, "ReviewSegmentResponse", r);
    }
    // Images are images; a parameter of the wrong type is FastAPI's 422; an unknown event is 404.
    let (status, jpeg) = get(format!("/events/{id}/snapshot.jpg?crop=1&height=300")).await;
    assert_eq!(status, 200);
    assert!(jpeg.starts_with(&[0xFF, 0xD8]));
    assert!(get(format!("/events/{id}/thumbnail.jpg"))
        .await
        .1
        .starts_with(&[0xFF, 0xD8]));
    assert!(get("/front_door/latest.jpg?height=360".into())
        .await
        .1
        .starts_with(&[0xFF, 0xD8]));
    assert_eq!(get("/events?after=yesterday".into()).await.0, 422);
    assert_eq!(get("/events/1.0-nothing".into()).await.0, 404);
    let (status, v) = get("/version".into()).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&v).to_string()),
        (200, "0.16.2-sim".to_string())
    );

    // The MQTT payloads: only the fields Frigate documents (contracts/README.md).
    const OBJECT: &[&str] = &[
        "id",
        "camera",
        "frame_time",
        "label",
        "sub_label",
        "top_score",
        "score",
        "false_positive",
        "start_time",
        "end_time",
        "box",
        "area",
        "region",
        "current_zones",
        "entered_zones",
        "has_snapshot",
        "has_clip",
        "active",
        "stationary",
        "attributes",
        "snapshot",
    ];
    let ev = sim.shared.event(id).expect("event");
    let msg = serde_json::to_value(jarvis::vision::frigate::types::EventMessage {
        kind: "update".into(),
        before: jarvis::sim::frigate::tracked(&ev),
        after: jarvis::sim::frigate::tracked(&ev),
    })
    .expect("json");
    for side in ["before", "after"] {
        for k in msg[side].as_object().expect("object").keys() {
            assert!(
                OBJECT.contains(&k.as_str()),
                "frigate/events {side}.{k} is not documented"
            );
        }
    }
    assert!(msg["after"]["sub_label"].is_null() || msg["after"]["sub_label"].is_array());
    let named = {
        let mut e = ev.clone();
        e.sub_label = Some(("Sarah".into(), 0.91));
        serde_json::to_value(jarvis::sim::frigate::tracked(&e)).expect("json")
    };
    assert_eq!(named["sub_label"], serde_json::json!(["Sarah", 0.91]));
    sim.stop().await;
}

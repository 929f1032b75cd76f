//! The demo's Frigate NVR: the HTTP API endpoints Jarvis's client uses (checked against Frigate 0.16's spec by
//! the contract test) on the internal port (plain HTTP, no login) and, when asked, the authenticated port (HTTPS
//! with its own certificate, `/api/login` then the `frigate_token` cookie), both on loopback; and Frigate's MQTT
//! messages (`frigate/events`, `frigate/reviews`, `frigate/tracked_object_update`, `frigate/available`,
//! `frigate/{camera}/person`) published to a broker when one is given. The pictures are drawn by [`scene`] with
//! the registry's test faces; [`household`] is who comes and goes.
//!
//! Control routes for tests under `/_sim/` (internal port only): play a visit now, make snapshots garbage.

pub mod api;
pub mod household;
pub mod scene;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::household::Visit;
use super::{SimError, SimIdentity};
use crate::vision::frigate::types::{EventMessage, SubLabel, TrackedObject};

/// The most events kept (oldest dropped).
const EVENTS_KEPT: usize = 5000;

pub struct FrigateSimOptions {
    /// Where the test faces are (models/cache/test-faces).
    pub photos: PathBuf,
    /// `host:port` of an MQTT broker to publish to; none: HTTP only.
    pub mqtt: Option<SocketAddr>,
    /// Serve the authenticated port too, with this user and password.
    pub login: Option<(String, String)>,
    /// Write yesterday and today until now as history at start.
    pub history: bool,
    /// Play the household live, a visit about this often; none: only visits asked for on `/_sim/visit`.
    pub live_every: Option<Duration>,
    /// Time between a visit's zone steps.
    pub step: Duration,
    /// Local time's offset from UTC, for the shape of the day.
    pub utc_offset_secs: i64,
    pub seed: u64,
}

/// One tracked object as the simulator keeps it.
#[derive(Debug, Clone)]
pub struct SimEvent {
    pub id: String,
    pub camera: String,
    pub photo: Option<String>,
    pub start: f64,
    pub end: Option<f64>,
    /// Zones entered, in order.
    pub zones: Vec<String>,
    pub current: Option<String>,
    pub sub_label: Option<(String, f64)>,
    pub score: f64,
}

/// Who stands in a camera's view now: their photo and zone.
pub type InView = (Option<String>, Option<String>);

#[derive(Default)]
pub struct Faults {
    /// Snapshots and thumbnails are served as bytes that are not an image.
    pub garbage_snapshots: bool,
}

pub struct FrigateShared {
    pub photos: PathBuf,
    pub cameras: Vec<String>,
    pub events: Mutex<VecDeque<SimEvent>>,
    pub faults: Mutex<Faults>,
    pub login: Option<(String, String)>,
    pub tokens: Mutex<HashSet<String>>,
    pub started: std::time::Instant,
    mqtt: Option<rumqttc::AsyncClient>,
    /// Who is in view on each camera now (for `latest.jpg`): photo and zone.
    pub in_view: Mutex<HashMap<String, InView>>,
    step: Duration,
}

impl FrigateShared {
    pub fn event(&self, id: &str) -> Option<SimEvent> {
        crate::sim::lock(&self.events)
            .iter()
            .find(|e| e.id == id)
            .cloned()
    }

    fn store(&self, e: &SimEvent) {
        let mut events = crate::sim::lock(&self.events);
        match events.iter_mut().find(|x| x.id == e.id) {
            Some(x) => *x = e.clone(),
            None => {
                events.push_back(e.clone());
                if events.len() > EVENTS_KEPT {
                    events.pop_front();
                }
            }
        }
    }

    /// Plays a visit now: `new`, an `update` per zone entered, `end`, each a step apart, published on MQTT.
    pub async fn play(self: &Arc<Self>, visit: Visit) -> String {
        let now = now_secs();
        let mut e = SimEvent {
            id: event_id(now),
            camera: visit.camera.clone(),
            photo: visit.photo.clone(),
            start: now,
            end: None,
            zones: Vec::new(),
            current: None,
            sub_label: None,
            score: 0.82,
        };
        self.store(&e);
        self.set_view(&e);
        let mut before = e.clone();
        self.publish_event("new", &before, &e).await;
        self.publish_count(&e.camera, 1).await;
        for zone in &visit.zones {
            tokio::time::sleep(self.step).await;
            e.zones.push(zone.clone());
            e.current = Some(zone.clone());
            if e.sub_label.is_none() {
                e.sub_label = visit.sub_label.clone();
                if let Some((name, score)) = &e.sub_label {
                    self.publish_face(&e, name, *score).await;
                }
            }
            self.store(&e);
            self.set_view(&e);
            self.publish_event("update", &before, &e).await;
            before = e.clone();
        }
        tokio::time::sleep(self.step).await;
        e.end = Some(now_secs());
        self.store(&e);
        crate::sim::lock(&self.in_view).remove(&e.camera);
        self.publish_event("end", &before, &e).await;
        self.publish_count(&e.camera, 0).await;
        e.id
    }

    /// Writes a visit that already happened at `at` (no MQTT: Jarvis finds it over HTTP).
    pub fn record_past(&self, at: f64, visit: &Visit, step: f64) {
        let e = SimEvent {
            id: event_id(at),
            camera: visit.camera.clone(),
            photo: visit.photo.clone(),
            start: at,
            end: Some(at + step * (visit.zones.len() as f64 + 1.0)),
            zones: visit.zones.clone(),
            current: visit.zones.last().cloned(),
            sub_label: visit.sub_label.clone(),
            score: 0.8,
        };
        self.store(&e);
    }

    fn set_view(&self, e: &SimEvent) {
        crate::sim::lock(&self.in_view)
            .insert(e.camera.clone(), (e.photo.clone(), e.current.clone()));
    }

    async fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) {
        if let Some(c) = &self.mqtt {
            if let Err(e) = c
                .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload)
                .await
            {
                tracing::debug!("frigate simulator: publish to {topic} failed: {e}");
            }
        }
    }

    async fn publish_event(&self, kind: &str, before: &SimEvent, after: &SimEvent) {
        let msg = EventMessage {
            kind: kind.into(),
            before: tracked(before),
            after: tracked(after),
        };
        if let Ok(payload) = serde_json::to_vec(&msg) {
            self.publish("frigate/events", payload, false).await;
        }
        if kind != "update" {
            let review = json!({
                "type": kind,
                "before": {},
                "after": {
                    "id": format!("review-{}", after.id),
                    "camera": after.camera,
                    "start_time": after.start,
                    "end_time": after.end,
                    "severity": "alert",
                    "thumb_path": format!("/media/frigate/clips/review/thumb-{}-{}.webp", after.camera, after.id),
                    "data": {
                        "detections": [after.id],
                        "objects": ["person"],
                        "sub_labels": after.sub_label.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
                        "zones": after.zones,
                        "audio": [],
                    },
                },
            });
            self.publish("frigate/reviews", review.to_string().into_bytes(), false)
                .await;
        }
    }

    async fn publish_face(&self, e: &SimEvent, name: &str, score: f64) {
        let msg = json!({ "type": "face", "id": e.id, "name": name, "score": score, "camera": e.camera, "timestamp": now_secs() });
        self.publish(
            "frigate/tracked_object_update",
            msg.to_string().into_bytes(),
            false,
        )
        .await;
    }

    async fn publish_count(&self, camera: &str, n: u32) {
        self.publish(
            &format!("frigate/{camera}/person"),
            n.to_string().into_bytes(),
            false,
        )
        .await;
    }

    /// Publishes a raw payload (tests: garbage and truncated messages).
    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.publish(topic, payload, false).await;
    }
}

/// The tracked object of an event, as `frigate/events` carries it.
pub fn tracked(e: &SimEvent) -> TrackedObject {
    let (x, y, h) = (560.0, 140.0, 420.0);
    TrackedObject {
        id: e.id.clone(),
        camera: e.camera.clone(),
        frame_time: e.end.unwrap_or_else(now_secs),
        label: "person".into(),
        sub_label: e.sub_label.as_ref().map(|(n, s)| SubLabel(n.clone(), *s)),
        top_score: e.score + 0.02,
        score: e.score,
        false_positive: false,
        start_time: e.start,
        end_time: e.end,
        bbox: vec![x, y, x + h * 0.75, y + h],
        area: h * h * 0.75,
        region: vec![x - 40.0, y - 40.0, x + h, y + h],
        current_zones: e.current.iter().cloned().collect(),
        entered_zones: e.zones.clone(),
        has_snapshot: e.photo.is_some() || e.end.is_some(),
        has_clip: false,
        active: e.end.is_none(),
        stationary: false,
        attributes: json!({ "face": if e.photo.is_some() { 0.7 } else { 0.0 } }),
        snapshot: Some(
            json!({ "frame_time": e.start, "box": [x, y, x + h * 0.75, y + h], "area": h * h * 0.75, "region": [x - 40.0, y - 40.0, x + h, y + h], "score": e.score }),
        ),
    }
}

fn now_secs() -> f64 {
    crate::time::now_ms() as f64 / 1000.0
}

/// "1607123955.475377-mxklsc", as Frigate makes them.
fn event_id(at: f64) -> String {
    let mut rng = rand::rng();
    let tail: String = (0..6)
        .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
        .collect();
    format!("{at:.6}-{tail}")
}

/// A running Frigate simulator.
pub struct FrigateSim {
    /// The internal port (`http://`).
    pub addr: SocketAddr,
    /// The authenticated port (`https://`), when a login was given.
    pub auth_addr: Option<SocketAddr>,
    pub identity: SimIdentity,
    pub shared: Arc<FrigateShared>,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FrigateSim {
    pub async fn start(opts: FrigateSimOptions) -> Result<FrigateSim, SimError> {
        Self::start_on(opts, SocketAddr::from(([127, 0, 0, 1], 0)), None).await
    }

    /// Starts on `listen` (to come back on the same port after a stop), with `identity` if given.
    pub async fn start_on(
        opts: FrigateSimOptions,
        listen: SocketAddr,
        identity: Option<SimIdentity>,
    ) -> Result<FrigateSim, SimError> {
        crate::tls::install_crypto_provider();
        let identity = match identity {
            Some(i) => i,
            None => SimIdentity::generate()?,
        };
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let mqtt = opts.mqtt.map(|broker| {
            let mut o = rumqttc::MqttOptions::new(
                format!("frigate-sim-{}", rand::rng().random_range(0..u32::MAX)),
                broker.ip().to_string(),
                broker.port(),
            );
            o.set_keep_alive(Duration::from_secs(15));
            o.set_last_will(rumqttc::LastWill::new("frigate/available", "offline", rumqttc::QoS::AtLeastOnce, true));
            let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 256);
            let stop = shutdown.clone();
            let announce = client.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        ev = eventloop.poll() => match ev {
                            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                                let _ = announce.try_publish("frigate/available", rumqttc::QoS::AtLeastOnce, true, "online");
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!("frigate simulator: broker: {e}");
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        },
                    }
                }
            }));
            client
        });
        let shared = Arc::new(FrigateShared {
            photos: opts.photos.clone(),
            cameras: vec![household::FRONT_DOOR.into(), household::SIDE_HOUSE.into()],
            events: Mutex::new(VecDeque::new()),
            faults: Mutex::new(Faults::default()),
            login: opts.login.clone(),
            tokens: Mutex::new(HashSet::new()),
            started: std::time::Instant::now(),
            mqtt,
            in_view: Mutex::new(HashMap::new()),
            step: opts.step,
        });
        let history = if opts.history {
            household::history(now_secs(), opts.utc_offset_secs, opts.seed)
        } else {
            Vec::new()
        };
        for (at, v) in &history {
            shared.record_past(*at, v, 2.0);
        }
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: listen,
            source,
        })?;
        tasks.push(tokio::spawn(crate::sim::serve_plain(
            listener,
            api::router(shared.clone(), false),
            shutdown.clone(),
        )));
        let auth_addr = match &opts.login {
            Some(_) => {
                let any = SocketAddr::from(([127, 0, 0, 1], 0));
                let l = TcpListener::bind(any)
                    .await
                    .map_err(|source| SimError::Bind { addr: any, source })?;
                let a = l
                    .local_addr()
                    .map_err(|source| SimError::Bind { addr: any, source })?;
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
                    crate::sim::server_config(&identity)?,
                ));
                tasks.push(tokio::spawn(crate::sim::serve(
                    l,
                    acceptor,
                    api::router(shared.clone(), true),
                    shutdown.clone(),
                )));
                Some(a)
            }
            None => None,
        };
        if let Some(every) = opts.live_every {
            let (s, stop) = (shared.clone(), shutdown.clone());
            let mut home = household::home_after(&history);
            let seed = opts.seed;
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(household::live_gap(&mut rng, every)) => {}
                    }
                    let visit = household::next_live(&mut rng, &mut home);
                    let s2 = s.clone();
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = s2.play(visit) => {}
                    }
                }
            }));
        }
        tracing::info!(%addr, auth = ?auth_addr, events = history.len(), "Frigate simulator listening");
        Ok(FrigateSim {
            addr,
            auth_addr,
            identity,
            shared,
            shutdown,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT` (the internal port).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and publishing; open connections are dropped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

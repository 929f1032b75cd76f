//! Frigate's MQTT messages, with rumqttc: subscribes to `{prefix}/events`, `{prefix}/available`,
//! `{prefix}/reviews` and `{prefix}/tracked_object_update` on every connection (a clean session: a broker that
//! restarted knows nothing of us), hands person events and Frigate's availability to the watcher, and says how
//! the link stands. A broker that goes away is retried with back-off (0.5 s doubling to 5 s, so a broker that comes
//! back is followed again within seconds); one that refuses
//! our credentials is retried only every minute, with the reason in the state — never a retry storm. Payloads
//! that do not parse are counted and logged at most once a minute.

use std::time::{Duration, Instant};

use rumqttc::{ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::types::{EventMessage, FaceUpdate, ReviewMessage};
use super::watcher::{Input, Observed};
use crate::secret::Secret;
use crate::tls::Trust;

/// The largest message taken (Frigate's events are a few kilobytes).
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// `[mqtt]`.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub login: Option<(String, Secret)>,
    /// TLS to the broker, trusting this.
    pub tls: Option<Trust>,
    /// Frigate's `mqtt.topic_prefix` (default `frigate`).
    pub topic_prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("MQTT TLS set-up failed: {0}")]
    Tls(String),
}

/// Runs until `shutdown`.
pub async fn run(
    settings: MqttSettings,
    out: mpsc::Sender<Input>,
    shutdown: CancellationToken,
) -> Result<(), MqttError> {
    let mut opts = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_clean_session(true);
    opts.set_max_packet_size(MAX_PAYLOAD, 64 * 1024);
    if let Some((user, password)) = &settings.login {
        opts.set_credentials(user, password.expose());
    }
    if let Some(trust) = &settings.tls {
        let config = crate::tls::client_config(trust).map_err(|e| MqttError::Tls(e.to_string()))?;
        opts.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config)),
        ));
    }
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 64);
    let prefix = settings.topic_prefix.trim_end_matches('/').to_string();
    let topics = ["events", "available", "reviews", "tracked_object_update"]
        .map(|t| format!("{prefix}/{t}"));
    let mut backoff = Duration::from_millis(500);
    let mut garbage = Garbage::default();
    let mut up = false;
    loop {
        let polled = tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = client.try_disconnect();
                return Ok(());
            }
            p = eventloop.poll() => p,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(500);
                for t in &topics {
                    if let Err(e) = client.subscribe(t, QoS::AtLeastOnce).await {
                        tracing::warn!("MQTT subscribe to {t} failed: {e}");
                    }
                }
                up = true;
                tracing::info!(broker = %format!("{}:{}", settings.host, settings.port), "MQTT connected; following Frigate");
                let _ = out.send(Input::Mqtt(true, None)).await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = p
                    .topic
                    .strip_prefix(&prefix)
                    .unwrap_or(&p.topic)
                    .trim_start_matches('/');
                match parse(topic, &p.payload) {
                    Ok(Some(input)) => {
                        if out.send(input).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(None) => {}
                    Err(why) => garbage.note(topic, why),
                }
            }
            Ok(_) => {}
            Err(e) => {
                let refused = matches!(
                    e,
                    ConnectionError::ConnectionRefused(
                        ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized
                    )
                );
                let detail = match &e {
                    ConnectionError::ConnectionRefused(code) => {
                        format!("the broker refused us: {code:?}")
                    }
                    other => other.to_string(),
                };
                if up || refused {
                    tracing::warn!("MQTT: {detail}");
                }
                up = false;
                let _ = out.send(Input::Mqtt(false, Some(detail))).await;
                let wait = if refused {
                    Duration::from_secs(60)
                } else {
                    backoff
                };
                backoff = (backoff * 2).min(Duration::from_secs(5));
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// One message: what the watcher should hear, nothing (a message it need not), or why it is garbage.
pub fn parse(topic: &str, payload: &[u8]) -> Result<Option<Input>, String> {
    match topic {
        "events" => {
            let m: EventMessage = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            if !matches!(m.kind.as_str(), "new" | "update" | "end") {
                return Err(format!(
                    "unknown event type {:?}",
                    m.kind.chars().take(20).collect::<String>()
                ));
            }
            Ok(Some(Input::Event(Observed::from_message(&m))))
        }
        "available" => match payload {
            b"online" => Ok(Some(Input::Available(true))),
            b"offline" => Ok(Some(Input::Available(false))),
            _ => Err("availability is neither online nor offline".into()),
        },
        "reviews" => serde_json::from_slice::<ReviewMessage>(payload)
            .map(|_| None)
            .map_err(|e| e.to_string()),
        "tracked_object_update" => {
            let v: serde_json::Value =
                serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            if v["type"] == "face" {
                serde_json::from_value::<FaceUpdate>(v).map_err(|e| e.to_string())?;
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Garbage messages, logged at most once a minute with how many.
#[derive(Default)]
struct Garbage {
    count: u64,
    last_log: Option<Instant>,
}

impl Garbage {
    fn note(&mut self, topic: &str, why: String) {
        self.count += 1;
        if self
            .last_log
            .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
        {
            self.last_log = Some(Instant::now());
            tracing::warn!(
                total = self.count,
                "an MQTT message on {topic:.64} was not understood and was dropped: {why:.200}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_truncated_and_foreign_messages_are_refused_with_a_reason() {
        let good = br#"{"type":"new","before":{"id":"1.0-a","camera":"front_door","frame_time":1.0,"label":"person","start_time":1.0},"after":{"id":"1.0-a","camera":"front_door","frame_time":2.0,"label":"person","start_time":1.0,"entered_zones":["street"],"sub_label":["John",0.9]}}"#;
        match parse("events", good) {
            Ok(Some(Input::Event(o))) => {
                assert_eq!(
                    (o.id.as_str(), o.zones.clone(), o.sub_label.as_deref()),
                    ("1.0-a", vec!["street".to_string()], Some("John"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            parse("events", &good[..good.len() / 2]).is_err(),
            "truncated"
        );
        assert!(parse("events", b"\xff\xfe garbage").is_err());
        assert!(parse("events", br#"{"type":"explode","before":{},"after":{}}"#).is_err());
        assert!(parse("events", br#"[1,2,3]"#).is_err());
        assert!(parse("available", b"maybe").is_err());
        assert!(matches!(
            parse("available", b"offline"),
            Ok(Some(Input::Available(false)))
        ));
        assert!(parse("reviews", b"{}").is_err());
        assert!(parse("tracked_object_update", br#"{"type":"face","id":3}"#).is_err());
        assert!(matches!(parse("front_door/person", b"1"), Ok(None)));
    }
}

//! Frigate, the NVR that records the cameras and detects people: its wire formats ([`types`]), its HTTP API
//! ([`client`]) and the watcher that follows its events over MQTT (with HTTP polling as the catch-up and the
//! fallback) and turns person events into sightings ([`watcher`]).

pub mod client;
pub mod mqtt;
pub mod types;
pub mod watcher;

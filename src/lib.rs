//! Jarvis: a self-hosted AI command center for a Proxmox VE homelab, as one kiosk binary.
//!
//! # Layout
//! - [`bus`], [`state`], [`store`]: the spine every subsystem talks through (events, latest world, SQLite);
//! - [`cluster`]: the Proxmox VE client, the cluster model, the poller that turns answers into state and events;
//! - [`sim`]: the demo homelab, a PVE simulator speaking the real API over HTTPS on loopback;
//! - [`tools`]: the tool registry and its safety gate (tiers, approvals, kill switch, audit);
//! - [`mcp`]: the registry served over MCP (streamable HTTP on the side port, and stdio);
//! - [`files`]: SSRF-guarded downloads and file access below allowlisted roots;
//! - [`ssh`]: commands on the nodes (system OpenSSH in production, the simulator's executor in the demo);
//! - [`web`]: the side port (axum): health, REST, WebSocket;
//! - [`vision`]: photos in, faces out (today: safe photo decoding; the face engine builds on it);
//! - [`config`]: the one TOML file, validated with file/line/field for every problem;
//! - [`demo`]: `jarvis demo`, the product against the simulator;
//! - [`app`]: wires the spine and subsystems together and owns start-up and graceful shutdown;
//! - [`when`]: time ranges said in words ("yesterday", "since 6 pm") in the box's time zone;
//! - [`tls`], [`secret`], [`time`]: small shared helpers.
//!
//! The binary (`src/main.rs`) is a thin CLI over [`app`]. See `docs/ARCHITECTURE.md` for the map.

pub mod agent;
pub mod app;
pub mod bus;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod files;
pub mod kiosk;
pub mod mcp;
pub mod nn;
pub mod secret;
pub mod sim;
pub mod ssh;
pub mod state;
pub mod store;
pub mod time;
pub mod tls;
pub mod tools;
pub mod vision;
pub mod voice;
pub mod web;
pub mod when;

//! Proxmox VE: the typed API answers ([`api`]), task ids ([`upid`]), the client ([`client`]), power actions
//! announced and followed ([`actions`]), the owned cluster
//! view ([`model`]), the diff of successive views into events ([`diff`]) and the poller ([`poller`]).

pub mod actions;
pub mod api;
pub mod client;
pub mod diff;
pub mod model;
pub mod poller;
pub mod snapshot;
pub mod upid;

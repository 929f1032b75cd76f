//! What the latency benches share (included with `#[path]`: each bench is its own crate).

/// A deterministic spread of delays over one poll interval (a simple LCG, so runs are comparable): the moment of
/// each change falls in every phase of the poll cycle.
#[allow(dead_code)]
pub fn spread_ms(interval_ms: u64, i: u64) -> u64 {
    let x = i
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 33;
    200 + x % interval_ms.max(1)
}

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use jarvis::cluster::client::{ApiToken, PveEndpoint};
use jarvis::cluster::poller::PollSettings;
use jarvis::config::{Config, WebSettings};
use jarvis::secret::Secret;
use jarvis::sim::{Simulator, DEMO_TOKEN_ID};
use jarvis::tls::Trust;

/// Jarvis against the simulator, side port on loopback with `token`, store in `dir`, nothing optional on.
#[allow(dead_code)]
pub fn config(
    sim: &Simulator,
    secret: &str,
    dir: &Path,
    poll: PollSettings,
    token: &str,
) -> Config {
    Config {
        pve: PveEndpoint {
            url: sim.url(),
            token: ApiToken {
                id: DEMO_TOKEN_ID.into(),
                secret: Secret::new(secret),
            },
            trust: Trust::Pinned(sim.identity.fingerprint()),
            timeout: Duration::from_secs(5),
        },
        poll,
        web: WebSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: Secret::new(token),
            operator_token: Secret::new("bench-operator-0123456789abcdef"),
            max_body_bytes: 65536,
            mcp: Default::default(),
            limits: Default::default(),
            tls: None,
        },
        store_path: dir.join("bench.db"),
        log_level: "warn".into(),
        tools: jarvis::tools::ToolSettings::default(),
        ssh: None,
        kiosk: Default::default(),
        persona: Default::default(),
        history_tokens: jarvis::agent::DEFAULT_HISTORY_TOKENS,
        llm: None,
        claude: None,
        route: Default::default(),
        prices: Default::default(),
        faces: Default::default(),
        presence: Default::default(),
        cameras: Vec::new(),
        frigate: None,
        mqtt: None,
        voice: Default::default(),
    }
}

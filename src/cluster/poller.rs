//! The cluster poller: `/cluster/resources` as the main poll, node status, disks, quorum and failed tasks at
//! slower rates, a faster burst for a while after an action; every view is diffed into events and published to
//! the state. When PVE fails the view is marked stale with the reason and polls back off exponentially (capped at
//! `backoff_max`, 30 s by default), so a struggling PVE is not hammered; the first good answer clears it and
//! refreshes everything.
//!
//! Recovery probe: while backing off, a cheap `GET /version` (one small answer, at most [`PROBE_TIMEOUT`]) runs at
//! most every `recovery_probe` (5 s by default) between the full polls. The first probe that gets an answer ends
//! the back-off and the full poll runs at once, so PVE's return is seen within `recovery_probe` + the probe's time
//! limit (7 s by default) rather than up to `backoff_max`. Only the first answer after a failure counts: if
//! `/version` answers but the full poll still fails, later answers do not cut the back-off short again until a
//! probe has failed in between, so a PVE that answers the probe but not `/cluster/resources` still gets the full
//! back-off. Probes are not counted as failures and do not touch the state.
//!
//! Architecture invariant: the poller never blocks a reader; it only writes the state and publishes events.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::client::{PveClient, PveError};
use super::diff::{diff, DiffMemory, Thresholds};
use super::model::Staleness;
use super::snapshot::{build, NodeDetails};
use crate::bus::{Bus, Event};
use crate::state::StateHandle;
use crate::time::{now_ms, now_secs};

/// How often each call is made.
#[derive(Debug, Clone, PartialEq)]
pub struct PollSettings {
    pub resources: Duration,
    pub node_status: Duration,
    pub disks: Duration,
    pub tasks: Duration,
    pub quorum: Duration,
    /// `/cluster/resources` interval right after an action...
    pub burst: Duration,
    /// ...for this long.
    pub burst_for: Duration,
    pub backoff_max: Duration,
    /// While backing off, probe PVE this often (see the module doc).
    pub recovery_probe: Duration,
    pub thresholds: Thresholds,
}

impl Default for PollSettings {
    /// See docs/BENCHMARKS.md: 1.4 s keeps change-to-screen p99 under 1.5 s at well under 1 request/s in all.
    fn default() -> PollSettings {
        PollSettings {
            resources: Duration::from_millis(1400),
            node_status: Duration::from_secs(60),
            disks: Duration::from_secs(600),
            tasks: Duration::from_secs(60),
            quorum: Duration::from_secs(30),
            burst: Duration::from_millis(500),
            burst_for: Duration::from_secs(10),
            backoff_max: Duration::from_secs(30),
            recovery_probe: Duration::from_secs(5),
            thresholds: Thresholds::default(),
        }
    }
}

/// When each slow poll is next due.
struct Due {
    node_status: Instant,
    disks: Instant,
    tasks: Instant,
    quorum: Instant,
}

impl Due {
    fn now() -> Due {
        let t = Instant::now();
        Due {
            node_status: t,
            disks: t,
            tasks: t,
            quorum: t,
        }
    }
}

const MAX_SEEN_TASKS: usize = 2000;

/// How long a recovery probe may take (or `recovery_probe`, if that is shorter).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Poller {
    client: PveClient,
    settings: PollSettings,
    bus: Bus,
    state: StateHandle,
    details: BTreeMap<String, NodeDetails>,
    quorate: Option<bool>,
    version: Option<String>,
    memory: DiffMemory,
    failures: u32,
    stale_since: Option<u64>,
    /// The last recovery probe in this outage got an answer.
    probe_answered: bool,
    due: Due,
    burst_until: Option<Instant>,
    tasks_since: u64,
    seen_tasks: HashSet<String>,
    seen_order: VecDeque<String>,
}

impl Poller {
    pub fn new(client: PveClient, settings: PollSettings, bus: Bus, state: StateHandle) -> Poller {
        Poller {
            client,
            settings,
            bus,
            state,
            details: BTreeMap::new(),
            quorate: None,
            version: None,
            memory: DiffMemory::default(),
            failures: 0,
            stale_since: None,
            probe_answered: false,
            due: Due::now(),
            burst_until: None,
            tasks_since: now_secs().saturating_sub(60),
            seen_tasks: HashSet::new(),
            seen_order: VecDeque::new(),
        }
    }

    /// Polls until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut actions = self.bus.subscribe();
        loop {
            let wait = self.poll_once().await;
            let until = Instant::now() + wait;
            let mut probe_at = self.next_probe(until);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = sleep_until(until) => break,
                    _ = sleep_until(probe_at.unwrap_or(until)), if probe_at.is_some() => {
                        let answered = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            answered = self.probe() => answered,
                        };
                        if answered {
                            break;
                        }
                        probe_at = self.next_probe(until);
                    },
                    ev = actions.recv() => match ev {
                        Ok(stamped) => if let Event::ActionStarted { .. } = stamped.event {
                            self.burst_until = Some(Instant::now() + self.settings.burst_for);
                            break;
                        },
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        }
    }

    /// One round; returns how long to wait before the next.
    pub async fn poll_once(&mut self) -> Duration {
        let resources = match self.client.cluster_resources(None).await {
            Ok(r) => r,
            Err(e) => return self.failed(&e),
        };
        let recovered = self.stale_since.take().map(|since| {
            tracing::info!("Proxmox VE answers again");
            self.due = Due::now();
            self.probe_answered = false;
            Event::PveRecovered {
                after_ms: now_ms().saturating_sub(since),
            }
        });
        self.failures = 0;
        self.refresh_slow(&resources).await;
        let old = self.state.get().cluster.clone();
        let mut new = build(
            &resources,
            &self.details,
            self.quorate,
            self.version.clone(),
            now_ms(),
        );
        // Temperatures come from SSH, not PVE: keep the last readings.
        for n in new.nodes.iter_mut() {
            if let Some(o) = old.node(&n.name) {
                n.temperatures = o.temperatures.clone();
            }
        }
        let events = diff(&old, &new, &self.settings.thresholds, &mut self.memory);
        // State first, then events: a subscriber that reads the state on an event sees what the event says.
        self.state.update(|w| w.cluster = new);
        for event in recovered.into_iter().chain(events) {
            self.bus.publish(event);
        }
        match self.burst_until {
            Some(t) if Instant::now() < t => self.settings.burst,
            _ => self.settings.resources,
        }
    }

    fn failed(&mut self, e: &PveError) -> Duration {
        self.failures += 1;
        let reason = e.to_string();
        tracing::warn!(
            failures = self.failures,
            category = e.category(),
            "PVE poll failed: {reason}"
        );
        let since = *self.stale_since.get_or_insert_with(now_ms);
        let staleness = Staleness {
            reason,
            since_ms: since,
            failures: self.failures,
        };
        let first = self.failures == 1;
        let changed_reason = self
            .state
            .get()
            .cluster
            .stale
            .as_ref()
            .map(|s| s.reason.as_str())
            != Some(staleness.reason.as_str());
        self.state
            .update(|w| w.cluster.stale = Some(staleness.clone()));
        if first || changed_reason {
            self.bus.publish(Event::PveStale(staleness));
        }
        backoff(
            self.settings.resources,
            self.settings.backoff_max,
            self.failures,
        )
    }

    /// When to probe next while backing off: `recovery_probe` from now, if that comes before the next full poll.
    fn next_probe(&self, next_poll: Instant) -> Option<Instant> {
        self.stale_since?;
        let at = Instant::now() + self.settings.recovery_probe;
        (at < next_poll).then_some(at)
    }

    /// One recovery probe; true when its answer should end the back-off (the first answer after a failure).
    async fn probe(&mut self) -> bool {
        let limit = self.settings.recovery_probe.min(PROBE_TIMEOUT);
        match self.client.probe(limit).await {
            Ok(()) => {
                let first = !self.probe_answered;
                self.probe_answered = true;
                if first {
                    tracing::info!("Proxmox VE answers the recovery probe: polling now");
                }
                first
            }
            Err(e) => {
                tracing::debug!(category = e.category(), "recovery probe: {e}");
                self.probe_answered = false;
                false
            }
        }
    }

    /// Node status, disks, quorum and failed tasks, each when due. A failure here keeps the last details.
    async fn refresh_slow(&mut self, resources: &[super::api::Resource]) {
        let now = Instant::now();
        let online: Vec<String> = resources
            .iter()
            .filter(|r| r.kind == "node" && r.status.as_deref() == Some("online"))
            .filter_map(|r| r.node.clone())
            .collect();
        if now >= self.due.quorum {
            self.due.quorum = now + self.settings.quorum;
            match self.client.cluster_status().await {
                Ok(items) => {
                    self.quorate = items
                        .iter()
                        .find(|i| i.kind == "cluster")
                        .and_then(|c| c.quorate)
                }
                Err(e) => tracing::debug!("cluster status: {e}"),
            }
            if self.version.is_none() {
                self.version = self.client.version().await.ok().map(|v| v.version);
            }
        }
        if now >= self.due.node_status {
            self.due.node_status = now + self.settings.node_status;
            for node in &online {
                match self.client.node_status(node).await {
                    Ok(s) => self.details.entry(node.clone()).or_default().status = Some(s),
                    Err(e) => tracing::debug!(node, "node status: {e}"),
                }
            }
        }
        if now >= self.due.disks {
            self.due.disks = now + self.settings.disks;
            for node in &online {
                match self.client.node_disks(node).await {
                    Ok(d) => self.details.entry(node.clone()).or_default().disks = Some(d),
                    Err(e) => tracing::debug!(node, "disks: {e}"),
                }
            }
        }
        if now >= self.due.tasks {
            self.due.tasks = now + self.settings.tasks;
            for node in &online {
                match self.client.failed_tasks(node, self.tasks_since).await {
                    Ok(tasks) => {
                        for t in tasks {
                            if t.endtime.is_none() || !self.remember_task(&t.upid) {
                                continue;
                            }
                            self.bus.publish(Event::TaskFailed {
                                upid: t.upid,
                                node: t.node,
                                task_type: t.kind,
                                id: t.id,
                                user: t.user,
                                exitstatus: t.status.unwrap_or_else(|| "unknown error".into()),
                            });
                        }
                    }
                    Err(e) => tracing::debug!(node, "tasks: {e}"),
                }
            }
        }
    }

    /// True the first time a UPID is seen.
    fn remember_task(&mut self, upid: &str) -> bool {
        if !self.seen_tasks.insert(upid.to_string()) {
            return false;
        }
        self.seen_order.push_back(upid.to_string());
        if self.seen_order.len() > MAX_SEEN_TASKS {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen_tasks.remove(&old);
            }
        }
        true
    }
}

/// `base × 2^(failures-1)`, capped.
pub fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(1);
        let m = Duration::from_secs(30);
        let got: Vec<u64> = (1..=7).map(|f| backoff(b, m, f).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(b, m, 1000), m);
    }

    #[test]
    fn default_rates_stay_under_one_request_per_second_for_four_nodes() {
        let s = PollSettings::default();
        let per_sec = |d: Duration, n: f64| n / d.as_secs_f64();
        let total = per_sec(s.resources, 1.0)
            + per_sec(s.node_status, 4.0)
            + per_sec(s.disks, 4.0)
            + per_sec(s.tasks, 4.0)
            + per_sec(s.quorum, 1.0);
        assert!(total < 1.0, "{total} requests/s");
    }
}

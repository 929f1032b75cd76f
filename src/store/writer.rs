//! Writes bus events (those [`crate::bus::Event::persisted`] keeps) into the store in batches, one transaction
//! per batch, on the blocking pool. At shutdown it drains what is already on the bus, writes it, and checkpoints
//! the WAL, so nothing published is lost.

use std::sync::Arc;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

use super::Store;
use crate::bus::Stamped;

const MAX_BATCH: usize = 256;

/// Runs until `shutdown`; then flushes and returns.
pub async fn run(store: Arc<Store>, mut rx: Receiver<Stamped>, shutdown: CancellationToken) {
    loop {
        let first = tokio::select! {
            biased;
            r = rx.recv() => r,
            _ = shutdown.cancelled() => break,
        };
        let mut batch = Vec::new();
        match first {
            Ok(e) => batch.push(e),
            Err(RecvError::Lagged(n)) => {
                tracing::error!(
                    lost = n,
                    "store writer fell behind the bus; events were not recorded"
                );
                continue;
            }
            Err(RecvError::Closed) => break,
        }
        drain_into(&mut rx, &mut batch, MAX_BATCH);
        batch.retain(|e| e.event.persisted());
        if !batch.is_empty() {
            write(&store, batch).await;
        }
    }
    let mut rest = Vec::new();
    drain_into(&mut rx, &mut rest, usize::MAX);
    rest.retain(|e| e.event.persisted());
    if !rest.is_empty() {
        write(&store, rest).await;
    }
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.checkpoint()).await {
        Ok(Ok(())) => tracing::debug!("store flushed"),
        Ok(Err(e)) => tracing::warn!("store checkpoint at shutdown: {e}"),
        Err(e) => tracing::warn!("store checkpoint task: {e}"),
    }
}

fn drain_into(rx: &mut Receiver<Stamped>, batch: &mut Vec<Stamped>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(e) => batch.push(e),
            Err(TryRecvError::Lagged(n)) => {
                tracing::error!(lost = n, "store writer fell behind the bus")
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
}

async fn write(store: &Arc<Store>, batch: Vec<Stamped>) {
    let s = store.clone();
    let n = batch.len();
    match tokio::task::spawn_blocking(move || s.append_events(&batch)).await {
        Ok(Ok(_)) => tracing::trace!(n, "events stored"),
        Ok(Err(e)) => tracing::error!(n, "cannot store events: {e}"),
        Err(e) => tracing::error!(n, "store task failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Bus, Event};

    #[tokio::test]
    async fn everything_published_before_shutdown_is_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("j.db")).expect("open"));
        let bus = Bus::new(4096);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(store.clone(), bus.subscribe(), shutdown.clone()));
        for i in 0..1000 {
            bus.publish(Event::NodeOnline {
                node: format!("n{i}"),
            });
        }
        shutdown.cancel();
        task.await.expect("writer");
        assert_eq!(store.event_count().expect("count"), 1000);
    }
}

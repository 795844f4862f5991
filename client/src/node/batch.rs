//! The message-level part of a privacy level (spec §5.19): sends wait for the next batch
//! flush, leave in a shuffled order, then each waits its own jitter. The decisions (flush
//! deadline, when a batch is full, the order, the jitter) are `proto::privacy`'s pure
//! functions; this module only waits on them.
//!
//! Flushes run on a fixed period whether or not anything waits, so flush times say nothing
//! about traffic; a batch that reaches `max_batch_size` flushes at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::Inner;
use crate::rng::fresh_rng;

/// How often a node with batching off checks whether it was turned on (and releases sends
/// left waiting by a level just lowered).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Sends waiting for the next flush.
#[derive(Debug, Default)]
pub(super) struct Batch {
    waiting: Mutex<Vec<oneshot::Sender<()>>>,
    full: Notify,
}

/// Waits until a send may leave under the current privacy level.
pub(super) async fn wait_turn(inner: &Inner) {
    let config = inner.privacy_config();
    if config.batching.enabled {
        let (tx, rx) = oneshot::channel();
        let len = {
            let mut w = lock(&inner.batch.waiting);
            w.push(tx);
            w.len()
        };
        if config.batching.is_full(len) {
            inner.batch.full.notify_one();
        }
        // An error means the flusher stopped with the node; this task is being stopped too.
        let _ = rx.await;
    }
    tokio::time::sleep(config.jitter.jitter_delay(&mut fresh_rng())).await;
}

/// Flushes the batch on its period (or when full), in the order `proto` draws.
pub(super) async fn flusher(inner: Arc<Inner>) {
    let mut rng = fresh_rng();
    let mut last = Instant::now();
    loop {
        let batching = inner.privacy_config().batching;
        let deadline = batching
            .flush_deadline(last)
            .unwrap_or_else(|| Instant::now() + IDLE_CHECK);
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = inner.batch.full.notified() => {}
        }
        let mut batch: Vec<oneshot::Sender<()>> = lock(&inner.batch.waiting).drain(..).collect();
        batching.order_batch(&mut batch, &mut rng);
        for tx in batch {
            let _ = tx.send(());
        }
        last = Instant::now();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

//! A clean stop: no task, circuit or link of the node outlives [`stop`].
//!
//! Every circuit the node has runs on a link in [`Inner::links`] (`link_to` keeps one link
//! per relay), so closing the links reaches all of them: home circuits, draining homes, pooled
//! send circuits, and the circuits of sends interrupted mid-attempt. Closing a link destroys
//! each circuit on it with a DESTROY cell written before the socket closes, so every relay on
//! the path frees it at once. Interrupted sends are still pending in the state, which is saved
//! last, and resume at the next start; loop cover messages in flight are saved with it, and
//! awaited again then.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinSet;

use super::{Inner, pool};
use crate::link::LinkHandle;
use crate::link::driver::CLOSE_FLUSH;

/// Stops the node: ends its tasks, destroys its circuits, closes its links and saves its
/// state, returning once all of that is done.
pub(super) async fn stop(inner: &Arc<Inner>) {
    inner.shutdown.send_replace(true);
    end_tasks(inner).await;
    inner.store.set_loops(inner.loops.take_outstanding());
    inner.lock_homes().clear();
    inner.lock_draining().clear();
    inner.failover_pending.store(false, Ordering::SeqCst);
    inner.counters.homes.store(0, Ordering::Relaxed);
    inner.counters.draining_homes.store(0, Ordering::Relaxed);
    pool::clear(inner);
    let links: Vec<LinkHandle> = inner.links.lock().await.drain().map(|(_, l)| l).collect();
    close_links(links).await;
    if let Err(e) = inner.store.flush().await {
        tracing::warn!("saving state at stop: {e}");
    }
}

/// Aborts every task and waits for each to end. Repeats until none is left, since a task can
/// spawn another between the shutdown signal and its abort.
async fn end_tasks(inner: &Inner) {
    loop {
        let tasks: Vec<_> = inner.lock_tasks().drain(..).collect();
        if tasks.is_empty() {
            return;
        }
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// Closes `links` at once, waiting until each driver has written its DESTROY cells and
/// ended (each bounded by its flush timeout; this wait by twice that, for a driver busy
/// with a command when asked).
async fn close_links(links: Vec<LinkHandle>) {
    let mut set = JoinSet::new();
    for l in links {
        set.spawn(async move { l.close().await });
    }
    let all = async { while set.join_next().await.is_some() {} };
    if tokio::time::timeout(CLOSE_FLUSH * 2, all).await.is_err() {
        tracing::warn!("stop: a link did not close in time");
    }
}

//! The node's live state and its persistence: pending sends and the de-duplication window in
//! memory, written to the one state file ([`crate::state`]) when a caller needs it durable.
//!
//! Every change bumps a generation; [`Store::flush`] returns once a write that includes the
//! current generation is on disk. Concurrent flushes coalesce into one write.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ournet_proto::keys::IdentityKeypair;

use crate::dedup::{DedupWindow, SeenKey};
use crate::state::{self, PendingSend, StateBody, StateError, StateKey};

#[derive(Debug, Default)]
struct Data {
    pending: BTreeMap<String, PendingSend>,
    dedup: DedupWindow,
    generation: u64,
}

/// A node's state.
#[derive(Debug)]
pub(crate) struct Store {
    path: Option<PathBuf>,
    key: StateKey,
    data: Mutex<Data>,
    saved: AtomicU64,
    write: tokio::sync::Mutex<()>,
}

impl Store {
    /// Loads the state at `path` (or starts empty in memory when `None`).
    pub(crate) fn open(
        path: Option<PathBuf>,
        identity: &IdentityKeypair,
    ) -> Result<Self, StateError> {
        let key = StateKey::derive(identity);
        let body = match &path {
            Some(p) => state::load(p, &key)?,
            None => StateBody::default(),
        };
        let dedup = body.dedup()?;
        let pending = body
            .pending
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        Ok(Self {
            path,
            key,
            data: Mutex::new(Data {
                pending,
                dedup,
                generation: 0,
            }),
            saved: AtomicU64::new(0),
            write: tokio::sync::Mutex::new(()),
        })
    }

    /// Sends in flight, as saved.
    pub(crate) fn pending(&self) -> Vec<PendingSend> {
        self.lock().pending.values().cloned().collect()
    }

    /// How many sends are in flight.
    pub(crate) fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }

    /// Adds or replaces a pending send.
    pub(crate) fn put_pending(&self, p: PendingSend) {
        let mut d = self.lock();
        d.pending.insert(p.id.clone(), p);
        d.generation += 1;
    }

    /// Forgets a finished send.
    pub(crate) fn remove_pending(&self, id: &str) {
        let mut d = self.lock();
        if d.pending.remove(id).is_some() {
            d.generation += 1;
        }
    }

    /// Records a received (sender, id) pair; `true` if it is new.
    pub(crate) fn first_sight(&self, key: SeenKey, now: u64) -> bool {
        let mut d = self.lock();
        let new = d.dedup.insert(key, now);
        if new {
            d.generation += 1;
        }
        new
    }

    /// Returns once everything changed so far is on disk (at once without a state path).
    pub(crate) async fn flush(&self) -> Result<(), StateError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let want = self.lock().generation;
        if self.saved.load(Ordering::Acquire) >= want {
            return Ok(());
        }
        let _writer = self.write.lock().await;
        if self.saved.load(Ordering::Acquire) >= want {
            return Ok(());
        }
        let (body, generation) = {
            let d = self.lock();
            let mut body = StateBody {
                pending: d.pending.values().cloned().collect(),
                seen: Vec::new(),
            };
            body.set_dedup(&d.dedup);
            (body, d.generation)
        };
        let sealed = self.key.seal(&body)?;
        let p = path.clone();
        tokio::task::spawn_blocking(move || state::write_atomic(&p, &sealed))
            .await
            .map_err(|e| StateError::Io {
                path,
                source: std::io::Error::other(e.to_string()),
            })??;
        self.saved.fetch_max(generation, Ordering::AcqRel);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

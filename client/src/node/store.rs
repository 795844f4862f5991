//! The node's live state and its persistence: pending sends and the de-duplication window in
//! memory, saved as a sealed snapshot ([`crate::state`]) plus a sealed append-only journal of
//! the changes since ([`crate::journal`]).
//!
//! Every change bumps a generation and is logged; [`Store::flush`] returns once a write that
//! includes the current generation is on disk. Concurrent flushes coalesce into one write
//! (group commit: one `fdatasync` covers every change made before it started). A flush appends
//! the logged changes as one journal record; when the journal has grown past the snapshot (and
//! [`COMPACT_MIN_BYTES`]) it writes a new snapshot and starts a new journal instead, so the
//! cost per change stays constant and the files stay bounded.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ournet_proto::keys::IdentityKeypair;
use ournet_proto::privacy::loops::SavedLoop;

use crate::dedup::{DedupWindow, SeenKey};
use crate::journal::{self, Epoch, Op};
use crate::rng::random_bytes;
use crate::state::{self, PendingSend, StateBody, StateError, StateKey};

/// The journal is compacted into a new snapshot once larger than this and the snapshot.
const COMPACT_MIN_BYTES: u64 = 4 << 20;
/// Changes logged between two flushes beyond this are dropped and the next flush compacts,
/// which bounds the log's memory whatever the callers do.
const MAX_LOG: usize = 4096;

#[derive(Debug, Default)]
struct Data {
    pending: BTreeMap<String, PendingSend>,
    dedup: DedupWindow,
    /// Loops in flight at the last stop.
    loops: Vec<SavedLoop>,
    generation: u64,
    /// Changes not yet in the journal (only with a state path).
    log: Vec<Op>,
    /// The log overflowed: only a new snapshot holds everything.
    overflow: bool,
}

/// The open journal file, with what is needed to append to it.
#[derive(Debug)]
struct Journal {
    file: File,
    epoch: Epoch,
    /// The seq of the next record.
    seq: u64,
    /// Its length in bytes.
    bytes: u64,
    /// The length of the snapshot it continues.
    snapshot_bytes: u64,
}

/// A node's state.
#[derive(Debug)]
pub(crate) struct Store {
    path: Option<PathBuf>,
    key: StateKey,
    data: Mutex<Data>,
    saved: AtomicU64,
    /// The journal, or `None` when the next flush must write a snapshot.
    write: tokio::sync::Mutex<Option<Journal>>,
}

impl Store {
    /// Loads the state at `path` and its journal (or starts empty in memory when `None`).
    pub(crate) fn open(
        path: Option<PathBuf>,
        identity: &IdentityKeypair,
    ) -> Result<Self, StateError> {
        let key = StateKey::derive(identity);
        let body = match &path {
            Some(p) => state::load(p, &key)?,
            None => StateBody::default(),
        };
        let mut data = Data {
            dedup: body.dedup()?,
            loops: state::loops_from_hex(&body.loops)?,
            ..Data::default()
        };
        for p in body.pending {
            data.pending.insert(p.id.clone(), p);
        }
        let journal = match (&path, &body.journal) {
            (Some(p), Some(epoch)) => open_journal(p, &key, &state::from_hex(epoch)?, &mut data)?,
            _ => None,
        };
        Ok(Self {
            path,
            key,
            data: Mutex::new(data),
            saved: AtomicU64::new(0),
            write: tokio::sync::Mutex::new(journal),
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
        let op = self.path.is_some().then(|| Op::Put(p.clone()));
        d.pending.insert(p.id.clone(), p);
        d.changed(op);
    }

    /// Forgets a finished send.
    pub(crate) fn remove_pending(&self, id: &str) {
        let mut d = self.lock();
        if d.pending.remove(id).is_some() {
            let op = self.path.is_some().then(|| Op::Remove(id.to_owned()));
            d.changed(op);
        }
    }

    /// Records a received (sender, id) pair; `true` if it is new.
    pub(crate) fn first_sight(&self, key: SeenKey, now: u64) -> bool {
        let mut d = self.lock();
        let new = d.dedup.insert(key, now);
        if new {
            let op = self
                .path
                .is_some()
                .then(|| Op::Seen(hex::encode(key.sender), hex::encode(key.message_id), now));
            d.changed(op);
        }
        new
    }

    /// The loops in flight saved at the last stop.
    pub(crate) fn loops(&self) -> Vec<SavedLoop> {
        self.lock().loops.clone()
    }

    /// Replaces the saved loops (as many as the tracker had in flight: at most
    /// [`MAX_OUTSTANDING_LOOPS`](ournet_proto::privacy::loops::MAX_OUTSTANDING_LOOPS)).
    pub(crate) fn set_loops(&self, loops: Vec<SavedLoop>) {
        let mut d = self.lock();
        if d.loops.is_empty() && loops.is_empty() {
            return;
        }
        let op = self
            .path
            .is_some()
            .then(|| Op::Loops(state::loops_to_hex(&loops)));
        d.loops = loops;
        d.changed(op);
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
        let mut writer = self.write.lock().await;
        if self.saved.load(Ordering::Acquire) >= want {
            return Ok(());
        }
        // Taken out while the blocking write runs; stays `None` (next flush compacts) if the
        // write fails or this flush is cancelled, since the taken log is then lost.
        let open = writer.take();
        let (work, generation) = {
            let mut d = self.lock();
            let log = std::mem::take(&mut d.log);
            let overflow = std::mem::take(&mut d.overflow);
            let work = match open {
                Some(j) if !overflow && j.bytes <= COMPACT_MIN_BYTES.max(j.snapshot_bytes) => {
                    let record = journal::seal_record(&self.key, &j.epoch, j.seq, &log)?;
                    Work::Append(j, record)
                }
                _ => {
                    let epoch: Epoch = random_bytes();
                    let mut body = StateBody {
                        pending: d.pending.values().cloned().collect(),
                        journal: Some(hex::encode(epoch)),
                        loops: state::loops_to_hex(&d.loops),
                        ..StateBody::default()
                    };
                    body.set_dedup(&d.dedup);
                    Work::Compact(epoch, self.key.seal(&body)?)
                }
            };
            (work, d.generation)
        };
        let p = path.clone();
        let journal = tokio::task::spawn_blocking(move || work.run(&p))
            .await
            .map_err(|e| StateError::Io {
                path,
                source: std::io::Error::other(e.to_string()),
            })??;
        *writer = Some(journal);
        self.saved.fetch_max(generation, Ordering::AcqRel);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Data {
    fn changed(&mut self, op: Option<Op>) {
        self.generation += 1;
        let Some(op) = op else { return };
        if self.overflow {
            return;
        }
        if self.log.len() >= MAX_LOG {
            self.log = Vec::new();
            self.overflow = true;
        } else {
            self.log.push(op);
        }
    }

    fn apply(&mut self, op: Op) -> Result<(), StateError> {
        match op {
            Op::Put(p) => {
                self.pending.insert(p.id.clone(), p);
            }
            Op::Remove(id) => {
                self.pending.remove(&id);
            }
            Op::Seen(sender, message_id, t) => {
                let key = SeenKey {
                    sender: state::from_hex(&sender)?,
                    message_id: state::from_hex(&message_id)?,
                };
                self.dedup.insert(key, t);
            }
            Op::Loops(saved) => self.loops = state::loops_from_hex(&saved)?,
        }
        Ok(())
    }
}

/// A prepared write, run off the async threads.
enum Work {
    /// Append this sealed record to the journal and sync it.
    Append(Journal, Vec<u8>),
    /// Write this sealed snapshot naming this epoch, then a new empty journal.
    Compact(Epoch, Vec<u8>),
}

impl Work {
    fn run(self, path: &Path) -> Result<Journal, StateError> {
        let io = |source| StateError::Io {
            path: journal_path(path),
            source,
        };
        match self {
            Work::Append(mut j, record) => {
                j.file.write_all(&record).map_err(io)?;
                j.file.sync_data().map_err(io)?;
                j.seq += 1;
                j.bytes += record.len() as u64;
                Ok(j)
            }
            Work::Compact(epoch, sealed) => {
                state::write_atomic(path, &sealed)?;
                let header = journal::header(&epoch);
                let jp = journal_path(path);
                state::write_atomic(&jp, &header)?;
                let file = OpenOptions::new().append(true).open(&jp).map_err(io)?;
                Ok(Journal {
                    file,
                    epoch,
                    seq: 0,
                    bytes: header.len() as u64,
                    snapshot_bytes: sealed.len() as u64,
                })
            }
        }
    }
}

/// The journal that continues the snapshot at `path`.
fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// Replays the journal of `epoch` into `data` and opens it for appending, cutting off a torn
/// tail. `None` (the next flush writes a snapshot) when there is no journal of that epoch.
fn open_journal(
    path: &Path,
    key: &StateKey,
    epoch: &Epoch,
    data: &mut Data,
) -> Result<Option<Journal>, StateError> {
    let jp = journal_path(path);
    let io = |source| StateError::Io {
        path: jp.clone(),
        source,
    };
    let bytes = match state::read_bounded(&jp) {
        Ok(b) => b,
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let Some(replay) = journal::parse(&bytes, key, epoch)? else {
        return Ok(None);
    };
    for op in replay.ops {
        data.apply(op)?;
    }
    let file = OpenOptions::new().append(true).open(&jp).map_err(io)?;
    if replay.good_len < bytes.len() as u64 {
        file.set_len(replay.good_len).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    let snapshot_bytes = std::fs::metadata(path).map_err(io)?.len();
    Ok(Some(Journal {
        file,
        epoch: *epoch,
        seq: replay.records,
        bytes: replay.good_len,
        snapshot_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn identity() -> IdentityKeypair {
        IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(9))
    }

    fn send(id: &str) -> PendingSend {
        PendingSend {
            id: id.into(),
            recipient: "ab".into(),
            envelope: hex::encode(b"secret content"),
            ack_token: "11".repeat(16),
            attempts: 0,
            max_retries: 3,
        }
    }

    fn seen(n: u8) -> SeenKey {
        SeenKey {
            sender: [n; 32],
            message_id: [n; 16],
        }
    }

    /// A state file in a fresh directory, removed when the returned guard drops.
    fn state_path(name: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::Builder::new()
            .prefix(&format!("ournet-store-{name}-"))
            .tempdir()
            .unwrap();
        let path = d.path().join("node.state");
        (d, path)
    }

    fn ids(s: &Store) -> Vec<String> {
        s.pending().into_iter().map(|p| p.id).collect()
    }

    #[tokio::test]
    async fn changes_are_journaled_and_replayed_after_a_restart() {
        let (_dir, path) = state_path("replay");
        let s = Store::open(Some(path.clone()), &identity()).unwrap();
        s.put_pending(send("a"));
        s.flush().await.unwrap(); // the first save writes a snapshot and an empty journal
        s.put_pending(send("b"));
        assert!(s.first_sight(seen(1), 100));
        s.flush().await.unwrap();
        s.remove_pending("a");
        s.flush().await.unwrap();
        let j = std::fs::read(journal_path(&path)).unwrap();
        assert!(
            j.len() > journal::HEADER_LEN,
            "the later saves went to the journal"
        );
        let content = hex::encode(b"secret content");
        assert!(!j.windows(8).any(|w| w == &content.as_bytes()[..8]));
        for p in [&path, &journal_path(&path)] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        drop(s);
        let s = Store::open(Some(path.clone()), &identity()).unwrap();
        assert_eq!(ids(&s), ["b"]);
        assert!(!s.first_sight(seen(1), 101), "still de-duplicated");
        assert!(s.first_sight(seen(2), 101));
    }

    #[tokio::test]
    async fn saved_loops_survive_a_restart_through_the_journal_and_the_snapshot() {
        use ournet_proto::privacy::loops::LoopRoute;
        let (_dir, path) = state_path("loops");
        let saved = |n: u8| SavedLoop {
            id: [n; 16],
            route: LoopRoute {
                home: [n; 32],
                first_hop: [n + 1; 32],
            },
        };
        let s = Store::open(Some(path.clone()), &identity()).unwrap();
        s.put_pending(send("a"));
        s.flush().await.unwrap(); // snapshot, then the loops go to the journal
        s.set_loops(vec![saved(1), saved(2)]);
        s.flush().await.unwrap();
        drop(s);
        let s = Store::open(Some(path.clone()), &identity()).unwrap();
        assert_eq!(s.loops(), [saved(1), saved(2)], "from the journal");
        s.set_loops(Vec::new());
        s.flush().await.unwrap();
        drop(s);
        let s = Store::open(Some(path.clone()), &identity()).unwrap();
        assert!(s.loops().is_empty(), "restored once, then cleared");
        // A compaction keeps them in the snapshot.
        s.set_loops(vec![saved(3)]);
        *s.write.lock().await = None;
        s.flush().await.unwrap();
        drop(s);
        let body = state::load(&path, &StateKey::derive(&identity())).unwrap();
        assert_eq!(body.loops.len(), 1);
        let s = Store::open(Some(path), &identity()).unwrap();
        assert_eq!(s.loops(), [saved(3)]);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_and_appending_goes_on() {
        let (_dir, path) = state_path("torn");
        let s = Store::open(Some(path.clone()), &identity()).unwrap();
        s.put_pending(send("a"));
        s.flush().await.unwrap();
        s.put_pending(send("b"));
        s.flush().await.unwrap();
        drop(s);
        let jp = journal_path(&path);
        let whole = std::fs::read(&jp).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&jp).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap(); // a record cut by a crash
        drop(f);
        let s = Store::open(Some(path.clone()), &identity()).unwrap();
        assert_eq!(ids(&s), ["a", "b"]);
        assert_eq!(
            std::fs::read(&jp).unwrap().len(),
            whole,
            "the torn tail was cut"
        );
        s.put_pending(send("c"));
        s.flush().await.unwrap();
        drop(s);
        let s = Store::open(Some(path), &identity()).unwrap();
        assert_eq!(ids(&s), ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn corruption_before_the_tail_is_an_error() {
        let (_dir, path) = state_path("corrupt");
        let s = Store::open(Some(path.clone()), &identity()).unwrap();
        for id in ["a", "b", "c"] {
            s.put_pending(send(id));
            s.flush().await.unwrap();
        }
        drop(s);
        let jp = journal_path(&path);
        let mut j = std::fs::read(&jp).unwrap();
        j[journal::HEADER_LEN + 10] ^= 1;
        std::fs::write(&jp, &j).unwrap();
        assert!(matches!(
            Store::open(Some(path), &identity()),
            Err(StateError::Decrypt)
        ));
    }

    #[tokio::test]
    async fn compaction_writes_a_snapshot_and_a_stale_journal_is_ignored() {
        let (_dir, path) = state_path("compact");
        let s = Store::open(Some(path.clone()), &identity()).unwrap();
        s.put_pending(send("x"));
        s.flush().await.unwrap();
        s.put_pending(send("y"));
        s.flush().await.unwrap();
        let jp = journal_path(&path);
        let old_journal = std::fs::read(&jp).unwrap();
        s.remove_pending("x");
        for n in 0..=MAX_LOG {
            s.put_pending(send(&format!("n{n:05}")));
        }
        s.flush().await.unwrap(); // the log overflowed: a new snapshot and journal
        assert_eq!(std::fs::read(&jp).unwrap().len(), journal::HEADER_LEN);
        drop(s);
        // A crash after the new snapshot but before the new journal leaves the old journal;
        // replaying it would bring "x" back.
        std::fs::write(&jp, &old_journal).unwrap();
        let s = Store::open(Some(path), &identity()).unwrap();
        assert_eq!(s.pending_count(), MAX_LOG + 2);
        assert!(!ids(&s).contains(&"x".to_owned()));
    }
}

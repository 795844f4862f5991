//! The state journal: an append-only, sealed log of the changes made since the last snapshot
//! ([`crate::state`]), so saving one send or one receipt costs one small record and one
//! `fdatasync` instead of rewriting every pending envelope and the whole de-duplication window.
//!
//! ```text
//! file   = magic "OURNETJR" | version u8 = 1 | epoch[16] | record*
//! record = len u32 LE | nonce[12] | AES-256-GCM(state key, nonce, json [op], aad)
//! aad    = magic | version | epoch | seq u64 LE      (seq = the record's index in this file)
//! ```
//!
//! The snapshot names the epoch of the journal that continues it; a journal of any other epoch
//! is stale (already folded into the snapshot) and is ignored, which makes compaction
//! crash-safe: a new snapshot with a new epoch is written atomically first, then a new empty
//! journal. The seq in the AAD stops records from being reordered, dropped from the middle or
//! moved between journals. Each flush appends one record with one write, so only the last
//! record can be torn by a crash: a record running past the end of the file, or a last record
//! that does not open, is a torn tail (its flush never returned) and is cut off. A record that
//! does not open with more bytes after it is corruption, a [`StateError`].

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::state::{PendingSend, StateError, StateKey};

const MAGIC: &[u8; 8] = b"OURNETJR";
const VERSION: u8 = 1;
/// Bytes before the first record.
pub(crate) const HEADER_LEN: usize = MAGIC.len() + 1 + 16;
/// The largest record accepted; anything larger is treated as a torn or corrupt length.
const MAX_RECORD: usize = 64 << 20;

/// Names one journal file; the snapshot stores the epoch of the journal that continues it.
pub(crate) type Epoch = [u8; 16];

/// One change to the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Op {
    /// A pending send was added or replaced.
    Put(PendingSend),
    /// The pending send with this id finished.
    Remove(String),
    /// A (sender hex, message id hex, unix time) pair entered the de-duplication window.
    Seen(String, String, u64),
    /// The loops in flight saved at a stop (or none, once restored), replacing the last list.
    Loops(Vec<crate::state::SavedLoopHex>),
}

/// What a journal file of the expected epoch held.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Replay {
    /// The changes, oldest first.
    pub(crate) ops: Vec<Op>,
    /// How many whole records were read (the seq of the next one).
    pub(crate) records: u64,
    /// Bytes up to the end of the last whole record; a torn tail lies beyond.
    pub(crate) good_len: u64,
}

/// The header of a new, empty journal.
pub(crate) fn header(epoch: &Epoch) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.push(VERSION);
    h.extend_from_slice(epoch);
    h
}

fn aad(epoch: &Epoch, seq: u64) -> [u8; HEADER_LEN + 8] {
    let mut a = [0u8; HEADER_LEN + 8];
    a[..HEADER_LEN].copy_from_slice(&header(epoch));
    a[HEADER_LEN..].copy_from_slice(&seq.to_le_bytes());
    a
}

/// Seals `ops` as record number `seq` of the journal `epoch`, length prefix included.
pub(crate) fn seal_record(
    key: &StateKey,
    epoch: &Epoch,
    seq: u64,
    ops: &[Op],
) -> Result<Vec<u8>, StateError> {
    let plain =
        Zeroizing::new(serde_json::to_vec(ops).map_err(|e| StateError::Contents(e.to_string()))?);
    let sealed = key.seal_bytes(&aad(epoch, seq), &plain)?;
    let len = u32::try_from(sealed.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_RECORD)
        .ok_or(StateError::Format("journal record too large"))?;
    let mut out = Vec::with_capacity(4 + sealed.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Reads a journal's bytes. `Ok(None)` when it is not the journal of `epoch` (stale, or cut
/// before its header was whole): the snapshot alone is the state.
pub(crate) fn parse(
    bytes: &[u8],
    key: &StateKey,
    epoch: &Epoch,
) -> Result<Option<Replay>, StateError> {
    let Some((head, mut rest)) = bytes.split_at_checked(HEADER_LEN) else {
        return Ok(None);
    };
    if head[..MAGIC.len()] != MAGIC[..] || head[MAGIC.len()] != VERSION {
        return Err(StateError::Format("not a state journal of version 1"));
    }
    if head[MAGIC.len() + 1..] != epoch[..] {
        return Ok(None);
    }
    let mut replay = Replay {
        good_len: HEADER_LEN as u64,
        ..Replay::default()
    };
    while let Some((len, body)) = rest.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        let Some((sealed, after)) = body.split_at_checked(len).filter(|_| len <= MAX_RECORD) else {
            break; // runs past the end: torn tail
        };
        let plain = match key.open_bytes(&aad(epoch, replay.records), sealed) {
            Ok(p) => p,
            Err(_) if after.is_empty() => break, // the last record, torn
            Err(e) => return Err(e),
        };
        let ops: Vec<Op> =
            serde_json::from_slice(&plain).map_err(|e| StateError::Contents(e.to_string()))?;
        replay.ops.extend(ops);
        replay.records += 1;
        replay.good_len += (4 + len) as u64;
        rest = after;
    }
    Ok(Some(replay))
}

#[cfg(test)]
mod tests {
    use ournet_proto::keys::IdentityKeypair;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn key(seed: u64) -> StateKey {
        StateKey::derive(&IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(
            seed,
        )))
    }

    fn put(id: &str) -> Op {
        Op::Put(PendingSend {
            id: id.into(),
            recipient: "ab".into(),
            envelope: hex::encode(b"secret content"),
            ack_token: "11".repeat(16),
            attempts: 0,
            max_retries: 3,
        })
    }

    const EPOCH: Epoch = [7; 16];

    /// A journal of three records, and the offsets where each record ends.
    fn journal(k: &StateKey) -> (Vec<u8>, Vec<usize>) {
        let mut j = header(&EPOCH);
        let mut ends = Vec::new();
        let records = [
            vec![put("a")],
            vec![Op::Seen("22".repeat(32), "33".repeat(16), 5), put("b")],
            vec![Op::Remove("a".into())],
        ];
        for (seq, ops) in records.iter().enumerate() {
            j.extend(seal_record(k, &EPOCH, seq as u64, ops).unwrap());
            ends.push(j.len());
        }
        (j, ends)
    }

    #[test]
    fn replays_every_record_in_order_and_hides_contents() {
        let k = key(1);
        let (j, ends) = journal(&k);
        let r = parse(&j, &k, &EPOCH).unwrap().unwrap();
        assert_eq!(r.records, 3);
        assert_eq!(r.good_len, ends[2] as u64);
        assert_eq!(r.ops.len(), 4);
        assert_eq!(r.ops[0], put("a"));
        assert_eq!(r.ops[3], Op::Remove("a".into()));
        let hex_content = hex::encode(b"secret content");
        assert!(!j.windows(8).any(|w| w == &hex_content.as_bytes()[..8]));
        let empty = parse(&header(&EPOCH), &k, &EPOCH).unwrap().unwrap();
        assert_eq!(empty.records, 0);
        assert_eq!(empty.good_len, HEADER_LEN as u64);
    }

    #[test]
    fn a_torn_tail_at_any_byte_keeps_the_whole_records_before_it() {
        let k = key(1);
        let (j, ends) = journal(&k);
        for n in HEADER_LEN..j.len() {
            let r = parse(&j[..n], &k, &EPOCH).unwrap().unwrap();
            let whole = ends.iter().filter(|e| **e <= n).count();
            assert_eq!(r.records, whole as u64, "cut at {n}");
            let good = ends.iter().rev().find(|e| **e <= n).copied();
            assert_eq!(r.good_len, good.unwrap_or(HEADER_LEN) as u64, "cut at {n}");
        }
        let mut garbled_last = j.clone();
        *garbled_last.last_mut().unwrap() ^= 1;
        assert_eq!(
            parse(&garbled_last, &k, &EPOCH).unwrap().unwrap().records,
            2
        );
        for n in 0..HEADER_LEN {
            assert_eq!(parse(&j[..n], &k, &EPOCH).unwrap(), None);
        }
    }

    #[test]
    fn corruption_foreign_keys_and_reordering_are_errors_and_stale_epochs_ignored() {
        let k = key(1);
        let (j, ends) = journal(&k);
        let mut flipped = j.clone();
        flipped[ends[0] + 10] ^= 1;
        assert!(matches!(
            parse(&flipped, &k, &EPOCH),
            Err(StateError::Decrypt)
        ));
        assert!(matches!(
            parse(&j, &key(2), &EPOCH),
            Err(StateError::Decrypt)
        ));
        let mut swapped = header(&EPOCH);
        swapped.extend_from_slice(&j[ends[0]..ends[1]]);
        swapped.extend_from_slice(&j[HEADER_LEN..ends[0]]);
        swapped.extend_from_slice(&j[ends[1]..]);
        assert!(parse(&swapped, &k, &EPOCH).is_err());
        assert_eq!(parse(&j, &k, &[8; 16]).unwrap(), None);
        let mut bad_magic = j.clone();
        bad_magic[0] = b'X';
        assert!(matches!(
            parse(&bad_magic, &k, &EPOCH),
            Err(StateError::Format(_))
        ));
    }
}

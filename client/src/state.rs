//! The node's one state file (spec §5.15, W23): pending sends and the de-duplication window,
//! so a restarted node resumes its sends and still delivers each message once.
//!
//! ```text
//! file = magic "OURNETST" | version u8 = 1 | nonce[12] | AES-256-GCM(key, nonce, json, aad = magic | version)
//! key  = HKDF-SHA256(ikm = identity secret, salt = "ournet-state-v1", info = "state key")
//! ```
//!
//! The whole body is encrypted (W18: message contents, recipients and who wrote to us are not
//! readable at rest), and only this node's identity key opens it. Writes are atomic: a
//! temporary file created with mode 0600, fsynced, renamed over the old one, and the directory
//! fsynced, so a crash leaves the old state or the new one, never a mix. Anything that does
//! not open or parse is a [`StateError`], never a panic.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use ournet_proto::keys::IdentityKeypair;
use ournet_proto::privacy::loops::{LoopRoute, MAX_OUTSTANDING_LOOPS, SavedLoop};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::dedup::{DedupWindow, SeenKey};
use crate::rng::random_bytes;

/// The file's magic bytes.
const MAGIC: &[u8; 8] = b"OURNETST";
/// The only format version this build reads and writes.
pub const STATE_VERSION: u8 = 1;
/// Largest state file read (bounds memory before anything is parsed).
const MAX_STATE_BYTES: u64 = 1 << 30;

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a state file, or written by another format version.
    #[error("not a state file of version {STATE_VERSION}: {0}")]
    Format(&'static str),
    /// It does not open with this node's key: another node's file, or corrupted.
    #[error("state file does not decrypt with this identity (another node's, or corrupted)")]
    Decrypt,
    /// It opened but its contents do not parse.
    #[error("state contents malformed: {0}")]
    Contents(String),
}

/// A send not yet finished, kept until ACKed or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingSend {
    /// Message id (hex).
    pub(crate) id: String,
    /// The recipient's signed address, binary form (hex).
    pub(crate) recipient: String,
    /// The sealed envelope (hex): resent unchanged, so the recipient can de-duplicate and the
    /// ACK token stays the same.
    pub(crate) envelope: String,
    /// The ACK token to expect (hex).
    pub(crate) ack_token: String,
    /// Attempts made so far.
    pub(crate) attempts: u32,
    /// Attempts after the first allowed.
    pub(crate) max_retries: u32,
}

/// What the file holds, as JSON inside the encryption.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateBody {
    /// Sends in flight.
    pub(crate) pending: Vec<PendingSend>,
    /// `[sender hex, message id hex, unix seconds]`, oldest first.
    pub(crate) seen: Vec<(String, String, u64)>,
    /// The epoch (hex) of the journal that continues this snapshot ([`crate::journal`]);
    /// absent in a snapshot written before journals, whose next save writes a new snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) journal: Option<String>,
    /// Loop cover messages in flight at the last stop, as `[id hex, home hex, first hop
    /// hex]` (`node::loops`); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) loops: Vec<SavedLoopHex>,
}

/// A saved loop in the state's text form: message id, home and first hop, in hex.
pub(crate) type SavedLoopHex = (String, String, String);

impl StateBody {
    /// The de-duplication window saved here.
    pub(crate) fn dedup(&self) -> Result<DedupWindow, StateError> {
        let mut entries = Vec::with_capacity(self.seen.len());
        for (s, m, t) in &self.seen {
            let key = SeenKey {
                sender: from_hex(s)?,
                message_id: from_hex(m)?,
            };
            entries.push((key, *t));
        }
        Ok(DedupWindow::from_entries(entries))
    }

    /// Saves `window` here.
    pub(crate) fn set_dedup(&mut self, window: &DedupWindow) {
        self.seen = window
            .entries()
            .map(|(k, t)| (hex::encode(k.sender), hex::encode(k.message_id), *t))
            .collect();
    }
}

/// Saved loops from their text form, at most [`MAX_OUTSTANDING_LOOPS`] (the newest).
pub(crate) fn loops_from_hex(saved: &[SavedLoopHex]) -> Result<Vec<SavedLoop>, StateError> {
    let skip = saved.len().saturating_sub(MAX_OUTSTANDING_LOOPS);
    saved
        .iter()
        .skip(skip)
        .map(|(id, home, first_hop)| {
            Ok(SavedLoop {
                id: from_hex(id)?,
                route: LoopRoute {
                    home: from_hex(home)?,
                    first_hop: from_hex(first_hop)?,
                },
            })
        })
        .collect()
}

/// Saved loops in their text form.
pub(crate) fn loops_to_hex(saved: &[SavedLoop]) -> Vec<SavedLoopHex> {
    saved
        .iter()
        .map(|s| {
            (
                hex::encode(s.id),
                hex::encode(s.route.home),
                hex::encode(s.route.first_hop),
            )
        })
        .collect()
}

/// Decodes fixed-size hex from the state.
pub(crate) fn from_hex<const N: usize>(s: &str) -> Result<[u8; N], StateError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|e| StateError::Contents(e.to_string()))?;
    Ok(out)
}

/// The key that seals one node's state.
pub(crate) struct StateKey(LessSafeKey);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// Derives the state key from the node's identity secret.
    pub(crate) fn derive(identity: &IdentityKeypair) -> Self {
        let secret = identity.secret_bytes();
        let hk = Hkdf::<Sha256>::new(Some(b"ournet-state-v1"), &secret[..]);
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand(b"state key", &mut key[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let unbound =
            UnboundKey::new(&AES_256_GCM, &key[..]).expect("a 32-byte key fits AES-256-GCM");
        Self(LessSafeKey::new(unbound))
    }

    /// Seals `body` into the file format.
    pub(crate) fn seal(&self, body: &StateBody) -> Result<Vec<u8>, StateError> {
        let mut plain = Zeroizing::new(
            serde_json::to_vec(body).map_err(|e| StateError::Contents(e.to_string()))?,
        );
        let nonce: [u8; NONCE_LEN] = random_bytes();
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(MAGIC);
        out.push(STATE_VERSION);
        out.extend_from_slice(&nonce);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad()),
                &mut plain[..],
            )
            .map_err(|_| StateError::Contents("sealing failed".into()))?;
        out.extend_from_slice(&plain);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens the file format.
    /// Seals `plain` under a fresh random nonce, bound to `aad`: `nonce | ciphertext | tag`.
    pub(crate) fn seal_bytes(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, StateError> {
        let nonce: [u8; NONCE_LEN] = random_bytes();
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| StateError::Contents("sealing failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens what [`StateKey::seal_bytes`] sealed with the same `aad`.
    pub(crate) fn open_bytes(
        &self,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StateError> {
        let (nonce, rest) = sealed
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(StateError::Decrypt)?;
        let mut buf = Zeroizing::new(rest.to_vec());
        let len = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut buf[..],
            )
            .map_err(|_| StateError::Decrypt)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    pub(crate) fn open(&self, bytes: &[u8]) -> Result<StateBody, StateError> {
        let rest = bytes
            .strip_prefix(&MAGIC[..])
            .ok_or(StateError::Format("bad magic"))?;
        let (&version, rest) = rest.split_first().ok_or(StateError::Format("truncated"))?;
        if version != STATE_VERSION {
            return Err(StateError::Format("unknown version"));
        }
        let (nonce, sealed) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(StateError::Format("truncated"))?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad()),
                &mut buf[..],
            )
            .map_err(|_| StateError::Decrypt)?;
        serde_json::from_slice(plain).map_err(|e| StateError::Contents(e.to_string()))
    }
}

fn aad() -> [u8; 9] {
    let mut a = [0u8; 9];
    a[..8].copy_from_slice(MAGIC);
    a[8] = STATE_VERSION;
    a
}

/// Reads the state at `path`: an empty state if there is no file yet.
///
/// # Errors
/// [`StateError`] for an unreadable, foreign or corrupt file.
pub(crate) fn load(path: &Path, key: &StateKey) -> Result<StateBody, StateError> {
    let bytes = match read_bounded(path) {
        Ok(b) => b,
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StateBody::default());
        }
        Err(e) => return Err(e),
    };
    key.open(&bytes)
}

/// Reads a whole state or journal file, refusing one larger than the state file limit.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, StateError> {
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_STATE_BYTES {
        return Err(StateError::Format("larger than the state file limit"));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_STATE_BYTES), &mut bytes)
        .map_err(io)?;
    Ok(bytes)
}

/// Writes `sealed` to `path` atomically, mode 0600.
///
/// # Errors
/// [`StateError::Io`].
pub(crate) fn write_atomic(path: &Path, sealed: &[u8]) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(sealed).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn key(seed: u64) -> StateKey {
        StateKey::derive(&IdentityKeypair::generate(&mut ChaCha20Rng::seed_from_u64(
            seed,
        )))
    }

    fn body() -> StateBody {
        StateBody {
            pending: vec![PendingSend {
                id: "00".repeat(16),
                recipient: "ab".into(),
                envelope: hex::encode(b"secret content"),
                ack_token: "11".repeat(16),
                attempts: 1,
                max_retries: 3,
            }],
            seen: vec![("22".repeat(32), "33".repeat(16), 5)],
            journal: None,
            loops: vec![("44".repeat(16), "55".repeat(32), "66".repeat(32))],
        }
    }

    /// A fresh directory, removed when the returned guard drops.
    fn tmpdir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("ournet-state-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn round_trips_atomically_with_mode_0600_and_encrypted() {
        let dir = tmpdir("rt");
        let path = dir.path().join("node.state");
        let k = key(1);
        assert_eq!(load(&path, &k).unwrap(), StateBody::default());
        write_atomic(&path, &k.seal(&body()).unwrap()).unwrap();
        write_atomic(&path, &k.seal(&body()).unwrap()).unwrap();
        assert_eq!(load(&path, &k).unwrap(), body());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let raw = std::fs::read(&path).unwrap();
        let hex_content = hex::encode(b"secret content");
        assert!(!raw.windows(8).any(|w| w == &hex_content.as_bytes()[..8]));
        assert!(!dir.path().join("node.state.tmp").exists());
        assert_eq!(body().dedup().unwrap().entries().count(), 1);
    }

    #[test]
    fn corrupt_foreign_or_truncated_state_is_a_clear_error() {
        let k = key(1);
        let sealed = k.seal(&body()).unwrap();
        assert!(matches!(key(2).open(&sealed), Err(StateError::Decrypt)));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(k.open(&flipped), Err(StateError::Decrypt)));
        for n in 0..sealed.len() {
            assert!(k.open(&sealed[..n]).is_err(), "truncated at {n}");
        }
        assert!(matches!(k.open(b"garbage!!"), Err(StateError::Format(_))));
        let mut v2 = sealed;
        v2[8] = 2;
        assert!(matches!(k.open(&v2), Err(StateError::Format(_))));
        let bad_hex = StateBody {
            seen: vec![("zz".into(), "00".into(), 1)],
            ..StateBody::default()
        };
        assert!(matches!(bad_hex.dedup(), Err(StateError::Contents(_))));
        let bad_loop = [("44".repeat(16), "55".repeat(31), "66".repeat(32))];
        assert!(matches!(
            loops_from_hex(&bad_loop),
            Err(StateError::Contents(_))
        ));
    }

    #[test]
    fn saved_loops_round_trip_and_stay_bounded() {
        let saved: Vec<SavedLoop> = (0..MAX_OUTSTANDING_LOOPS + 5)
            .map(|i| SavedLoop {
                id: u128::try_from(i).unwrap().to_be_bytes(),
                route: LoopRoute {
                    home: [1; 32],
                    first_hop: [2; 32],
                },
            })
            .collect();
        let back = loops_from_hex(&loops_to_hex(&saved)).unwrap();
        assert_eq!(back.len(), MAX_OUTSTANDING_LOOPS);
        assert_eq!(back[..], saved[5..], "the newest are kept");
        // A state written before loops were saved reads as none.
        let old = br#"{"pending":[],"seen":[]}"#;
        let body: StateBody = serde_json::from_slice(old).unwrap();
        assert!(body.loops.is_empty());
    }
}

//! Registration proof of work, and the seed-issued challenge it is computed over.
//!
//! **The puzzle** is the reference's (spec §3.8): `SHA-256(UTF-8(challenge ‖ decimal(nonce) ‖
//! router_id_hex))` must start with at least `difficulty` zero bits. Because the router id is
//! hashed in, a solution is bound to one identity.
//!
//! **The challenge** is where we part from the reference (spec W15): there the router chooses
//! it, so one proof is reusable forever and at every seed. Here a seed issues it:
//!
//! ```text
//! token = "c1" ‖ hex( expires_at_ms: u64 BE (8) ‖ random (16) ‖ tag (16) )
//! tag   = HMAC-SHA256(challenge_key, "ournet-pow-challenge-v1" ‖ expires_at_ms ‖ random)[..16]
//! ```
//!
//! Any replica that holds `challenge_key` checks a token statelessly ([`ChallengeKey::check`]):
//! the tag (in constant time) and the expiry against the wall-clock `now` it is given. Single
//! use is the caller's job: it records [`FreshChallenge::id`] in shared storage with an
//! "insert if absent" and refuses a second insert. The returned proof tokens ([`PowOk`],
//! [`FreshChallenge`]) can only be built here.
//!
//! Pure: time and randomness are arguments.
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Version prefix of a challenge token.
pub const CHALLENGE_PREFIX: &str = "c1";
/// Length of a challenge token in characters: prefix plus 40 bytes as hex.
pub const CHALLENGE_LEN: usize = 2 + 2 * (8 + 16 + 16);
/// The reference router's search bound (spec §3.8).
pub const REFERENCE_MAX_ATTEMPTS: u64 = 10_000_000;
/// The largest difficulty that can be asked for: a SHA-256 digest has 256 bits.
pub const MAX_DIFFICULTY: u32 = 256;

const MAC_LABEL: &[u8] = b"ournet-pow-challenge-v1";

/// Errors from solving or checking proof of work and challenges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PowError {
    /// The digest has fewer leading zero bits than required.
    #[error("proof of work has {got} leading zero bits, {required} required")]
    Insufficient {
        /// Leading zero bits of the submitted digest.
        got: u32,
        /// The difficulty asked for.
        required: u32,
    },
    /// `solve` tried its whole attempt budget without success.
    #[error("no solution within {0} attempts")]
    Exhausted(u64),
    /// The challenge token is not of our format (length, prefix or hex).
    #[error("malformed challenge")]
    MalformedChallenge,
    /// The tag does not verify: the challenge was not issued with this key.
    #[error("challenge not issued by this seed")]
    ForeignChallenge,
    /// The challenge's expiry has passed.
    #[error("challenge expired")]
    ExpiredChallenge,
}

/// Proof that a proof of work met its difficulty. Only [`verify`] makes one.
#[derive(Debug)]
#[must_use]
pub struct PowOk(());

/// SHA-256 of the reference's PoW input string.
pub fn pow_hash(challenge: &str, nonce: u64, router_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(challenge.as_bytes());
    h.update(nonce.to_string().as_bytes());
    h.update(router_id.as_bytes());
    h.finalize().into()
}

/// Leading zero bits of `digest` (whole zero bytes count 8, then the high bits of the first
/// non-zero byte).
pub fn leading_zero_bits(digest: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for b in digest {
        if *b == 0 {
            bits += 8;
        } else {
            return bits + b.leading_zeros();
        }
    }
    bits
}

/// Searches nonces `0, 1, …` for one that meets `difficulty`, as the reference router does.
///
/// # Errors
/// [`PowError::Exhausted`] after `max_attempts` nonces.
pub fn solve(
    challenge: &str,
    router_id: &str,
    difficulty: u32,
    max_attempts: u64,
) -> Result<u64, PowError> {
    (0..max_attempts)
        .find(|n| leading_zero_bits(&pow_hash(challenge, *n, router_id)) >= difficulty)
        .ok_or(PowError::Exhausted(max_attempts))
}

/// Checks a solution.
///
/// # Errors
/// [`PowError::Insufficient`] when the digest has too few leading zero bits.
pub fn verify(
    challenge: &str,
    nonce: u64,
    router_id: &str,
    required: u32,
) -> Result<PowOk, PowError> {
    let got = leading_zero_bits(&pow_hash(challenge, nonce, router_id));
    if got >= required {
        Ok(PowOk(()))
    } else {
        Err(PowError::Insufficient { got, required })
    }
}

/// The seed secret that MACs challenges. Replicas that share it accept each other's challenges.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ChallengeKey([u8; 32]);

impl ChallengeKey {
    /// A fresh random key.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        Self(k)
    }

    /// Rebuilds the key from its stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key, for persistence.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Issues a challenge that expires at `now + ttl_seconds` (wall-clock seconds).
    pub fn issue(
        &self,
        now: f64,
        ttl_seconds: f64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> IssuedChallenge {
        let expires_ms = secs_to_ms(now + ttl_seconds);
        let mut random = [0u8; 16];
        rng.fill_bytes(&mut random);
        let tag = self.tag(expires_ms, &random);
        let mut raw = Vec::with_capacity(40);
        raw.extend_from_slice(&expires_ms.to_be_bytes());
        raw.extend_from_slice(&random);
        raw.extend_from_slice(&tag);
        IssuedChallenge {
            token: format!("{CHALLENGE_PREFIX}{}", hex::encode(raw)),
            expires_at: ms_to_secs(expires_ms),
        }
    }

    /// Checks that `token` was issued with this key and has not expired at `now`.
    ///
    /// # Errors
    /// [`PowError::MalformedChallenge`], [`PowError::ForeignChallenge`] or
    /// [`PowError::ExpiredChallenge`].
    pub fn check(&self, token: &str, now: f64) -> Result<FreshChallenge, PowError> {
        let body = token
            .strip_prefix(CHALLENGE_PREFIX)
            .filter(|_| token.len() == CHALLENGE_LEN)
            .ok_or(PowError::MalformedChallenge)?;
        let mut raw = [0u8; 40];
        hex::decode_to_slice(body, &mut raw).map_err(|_| PowError::MalformedChallenge)?;
        let (expires, rest) = raw
            .split_first_chunk::<8>()
            .ok_or(PowError::MalformedChallenge)?;
        let (random, tag) = rest
            .split_first_chunk::<16>()
            .ok_or(PowError::MalformedChallenge)?;
        let expires_ms = u64::from_be_bytes(*expires);
        let want = self.tag(expires_ms, random);
        if !bool::from(want.as_slice().ct_eq(tag)) {
            return Err(PowError::ForeignChallenge);
        }
        let expires_at = ms_to_secs(expires_ms);
        if now > expires_at {
            return Err(PowError::ExpiredChallenge);
        }
        Ok(FreshChallenge {
            id: hex::encode(random),
            expires_at,
        })
    }

    fn tag(&self, expires_ms: u64, random: &[u8; 16]) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(MAC_LABEL);
        mac.update(&expires_ms.to_be_bytes());
        mac.update(random);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(full.get(..16).unwrap_or(&[0u8; 16]));
        out
    }
}

impl std::fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChallengeKey(..)")
    }
}

/// A challenge as handed to a router.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedChallenge {
    /// The token the router hashes (the PoW `challenge` string).
    pub token: String,
    /// When it stops being accepted (wall-clock seconds, millisecond precision).
    pub expires_at: f64,
}

/// Proof that a challenge was issued by us and is unexpired. Only [`ChallengeKey::check`]
/// makes one; spend it exactly once in storage under [`FreshChallenge::id`].
#[derive(Debug)]
#[must_use]
pub struct FreshChallenge {
    id: String,
    expires_at: f64,
}

impl FreshChallenge {
    /// The challenge's unique id (its random part, hex), the single-use key in storage.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the challenge expires; storage may forget the spent id after this.
    pub fn expires_at(&self) -> f64 {
        self.expires_at
    }
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "wall-clock seconds are positive and far below 2^53 ms; negatives clamp to 0"
)]
fn secs_to_ms(secs: f64) -> u64 {
    (secs.max(0.0) * 1000.0).round() as u64
}

#[expect(
    clippy::cast_precision_loss,
    reason = "millisecond timestamps are far below 2^53"
)]
fn ms_to_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "test code")]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    const RID: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    #[test]
    fn hash_matches_reference_python() {
        // hashlib.sha256(("abc" + str(42) + RID).encode()).hexdigest() in Python 3.11.
        let want = "dab9bc9be37c592581f6e411a71b4131cfd914a9356d8a9f163128be2b4e5167";
        assert_eq!(hex::encode(pow_hash("abc", 42, RID)), want);
    }

    #[test]
    fn leading_zeros_count_bits() {
        let mut d = [0xffu8; 32];
        assert_eq!(leading_zero_bits(&d), 0);
        d[0] = 0;
        d[1] = 0x1f;
        assert_eq!(leading_zero_bits(&d), 11);
        assert_eq!(leading_zero_bits(&[0u8; 32]), 256);
    }

    #[test]
    fn solve_then_verify() {
        let n = solve("chal", RID, 8, REFERENCE_MAX_ATTEMPTS).unwrap();
        assert!(verify("chal", n, RID, 8).is_ok());
        let too_hard = leading_zero_bits(&pow_hash("chal", n, RID)) + 1;
        assert!(matches!(
            verify("chal", n, RID, too_hard),
            Err(PowError::Insufficient { required, .. }) if required == too_hard
        ));
        assert_eq!(solve("chal", RID, 64, 10), Err(PowError::Exhausted(10)));
    }

    #[test]
    fn challenge_issue_check_expire_and_forge() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let key = ChallengeKey::generate(&mut rng);
        let c = key.issue(1000.0, 60.0, &mut rng);
        assert_eq!(c.token.len(), CHALLENGE_LEN);
        assert_eq!(c.expires_at, 1060.0);
        let fresh = key.check(&c.token, 1059.9).unwrap();
        assert_eq!(fresh.id().len(), 32);
        assert_eq!(
            key.check(&c.token, 1060.1).unwrap_err(),
            PowError::ExpiredChallenge
        );
        let other = ChallengeKey::generate(&mut rng);
        assert_eq!(
            other.check(&c.token, 1000.0).unwrap_err(),
            PowError::ForeignChallenge
        );
        let mut bytes = c.token.into_bytes();
        bytes[3] = if bytes[3] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(bytes).unwrap();
        assert_eq!(
            key.check(&forged, 1000.0).unwrap_err(),
            PowError::ForeignChallenge
        );
        assert_eq!(
            key.check("c1zz", 1000.0).unwrap_err(),
            PowError::MalformedChallenge
        );
        let bad_hex = format!("c1{}", "g".repeat(80));
        assert_eq!(
            key.check(&bad_hex, 1000.0).unwrap_err(),
            PowError::MalformedChallenge
        );
    }
}

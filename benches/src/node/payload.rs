//! Message contents a node sends, which the recipient can check byte for byte and time.
//!
//! ```text
//! content of n >= 24 bytes:  "ONLN" | seq u64 BE | sent unix µs u64 BE | n u32 BE | pattern(seq) ...
//! content of n < 24 bytes:   pattern(0)[..n]
//! ```
//!
//! `pattern(seq)[i] = (i * 31 + seq) mod 256`, so a flipped, dropped or shifted byte shows.
//! Short contents carry no timestamp (no one-way latency) but are still checked.

use std::time::{SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 4] = b"ONLN";
/// Bytes of the header.
pub const HEADER: usize = 24;

/// What a received content said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Intact; with the send time (unix µs) when the content was long enough to carry one.
    Intact(Option<u64>),
    /// Not what any sender of this job writes.
    Corrupt,
}

impl Checked {
    /// Whether the content checked.
    pub fn is_intact(self) -> bool {
        matches!(self, Self::Intact(_))
    }
}

/// The content of message `seq` of `len` bytes, stamped with the time now.
pub fn make(seq: u64, len: usize) -> Vec<u8> {
    if len < HEADER {
        return (0..len).map(|i| pattern(0, i)).collect();
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&now_us().to_be_bytes());
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    out.extend((HEADER..len).map(|i| pattern(seq, i)));
    out
}

/// Checks a received content.
pub fn check(content: &[u8]) -> Checked {
    let Some((head, rest)) = content.split_first_chunk::<HEADER>() else {
        let ok = content.iter().enumerate().all(|(i, b)| *b == pattern(0, i));
        return if ok {
            Checked::Intact(None)
        } else {
            Checked::Corrupt
        };
    };
    let (magic, tail) = head.split_at(4);
    let (seq, tail) = tail.split_at(8);
    let (sent, len) = tail.split_at(8);
    let (Ok(seq), Ok(sent), Ok(len)) = (
        <[u8; 8]>::try_from(seq),
        <[u8; 8]>::try_from(sent),
        <[u8; 4]>::try_from(len),
    ) else {
        return Checked::Corrupt;
    };
    let seq = u64::from_be_bytes(seq);
    let ok = magic == MAGIC
        && usize::try_from(u32::from_be_bytes(len)).is_ok_and(|l| l == content.len())
        && rest
            .iter()
            .enumerate()
            .all(|(i, b)| *b == pattern(seq, i + HEADER));
    if ok {
        Checked::Intact(Some(u64::from_be_bytes(sent)))
    } else {
        Checked::Corrupt
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "the pattern is taken mod 256"
)]
fn pattern(seq: u64, i: usize) -> u8 {
    (i as u64).wrapping_mul(31).wrapping_add(seq) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_of_every_size_check_intact_and_a_flipped_byte_does_not() {
        for len in [0, 1, 23, 24, 25, 925, 100_000] {
            let mut c = make(7, len);
            assert_eq!(c.len(), len);
            assert!(matches!(check(&c), Checked::Intact(t) if t.is_some() == (len >= HEADER)));
            // The first byte (magic or pattern) and the last (pattern, unless it is the
            // timestamp's) are each checked.
            let mut last = len.checked_sub(1).filter(|l| *l != HEADER - 1);
            for i in [len.checked_sub(1).map(|_| 0), last.take()]
                .into_iter()
                .flatten()
            {
                let mut bad = c.clone();
                bad[i] ^= 1;
                assert_eq!(check(&bad), Checked::Corrupt, "{len} {i}");
            }
            c.truncate(len.saturating_sub(1));
            if len > HEADER {
                assert_eq!(check(&c), Checked::Corrupt, "truncated {len}");
            }
        }
    }
}

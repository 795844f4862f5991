//! The one `Reader` and `Writer` every wire parser in this crate goes through.
//!
//! Every read is checked and fails with a [`DecodeError`] value; nothing here can panic on
//! untrusted input. A length taken from the peer never sizes an allocation by itself: readers
//! hand out borrowed slices of the input, and every length-prefixed read is bounded by a
//! caller-given protocol maximum before it looks at the bytes. Message parsers end with
//! [`Reader::finish`], which rejects trailing bytes.
//!
//! Integers are big-endian (network order), as PROTOCOL.md §1 states.
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]

/// Why bytes from the network did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the field `what` was complete.
    #[error("truncated: {what} needs {needed} more bytes")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// How many bytes were missing.
        needed: usize,
    },
    /// Bytes were left over after a complete message.
    #[error("{0} trailing bytes after a complete message")]
    TrailingData(usize),
    /// A length or count exceeded the protocol maximum for its field.
    #[error("{what} of {got} exceeds the maximum {max}")]
    TooLong {
        /// The field.
        what: &'static str,
        /// The value the peer sent.
        got: usize,
        /// The protocol maximum.
        max: usize,
    },
    /// A field held a value the protocol forbids.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// A cursor over untrusted bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Takes the next `n` bytes.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] if fewer than `n` remain.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let Some((head, tail)) = self.rest.split_at_checked(n) else {
            return Err(DecodeError::Truncated {
                what,
                needed: n - self.rest.len(),
            });
        };
        self.rest = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn take_array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let Some((head, tail)) = self.rest.split_first_chunk::<N>() else {
            return Err(DecodeError::Truncated {
                what,
                needed: N - self.rest.len(),
            });
        };
        self.rest = tail;
        Ok(*head)
    }

    /// Takes one byte.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn take_u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        self.take_array::<1>(what).map(|[b]| b)
    }

    /// Takes a big-endian `u16`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn take_u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.take_array(what).map(u16::from_be_bytes)
    }

    /// Takes a big-endian `u32`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn take_u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.take_array(what).map(u32::from_be_bytes)
    }

    /// Takes a big-endian `u64`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn take_u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.take_array(what).map(u64::from_be_bytes)
    }

    /// Takes a `u16`-length-prefixed byte string of at most `max` bytes.
    ///
    /// # Errors
    /// [`DecodeError::TooLong`] before looking at the body, then [`DecodeError::Truncated`].
    pub fn take_u16_prefixed(
        &mut self,
        max: usize,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.take_u16(what)?);
        self.take_at_most(len, max, what)
    }

    /// Takes a `u32`-length-prefixed byte string of at most `max` bytes.
    ///
    /// # Errors
    /// [`DecodeError::TooLong`] before looking at the body, then [`DecodeError::Truncated`].
    pub fn take_u32_prefixed(
        &mut self,
        max: usize,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.take_u32(what)?).unwrap_or(usize::MAX);
        self.take_at_most(len, max, what)
    }

    /// A sub-reader over exactly the next `n` bytes, for a nested body whose length is known.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`].
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        self.take(n, what).map(Reader::new)
    }

    /// Takes everything that is left.
    pub fn take_rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Ends a message: fails if any byte is left.
    ///
    /// # Errors
    /// [`DecodeError::TrailingData`].
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingData(n)),
        }
    }

    /// Takes the `len` bytes a length prefix announced, refusing a `len` over `max` before
    /// looking at the body (so the peer's number alone never sizes anything).
    fn take_at_most(
        &mut self,
        len: usize,
        max: usize,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        if len > max {
            return Err(DecodeError::TooLong {
                what,
                got: len,
                max,
            });
        }
        self.take(len, what)
    }
}

/// Why an encoder refused a value: a local misuse, never the peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value does not fit its length field or the output buffer.
    #[error("{what} of {len} bytes does not fit (maximum {max})")]
    TooLong {
        /// The field.
        what: &'static str,
        /// The length that was given.
        len: usize,
        /// What fits.
        max: usize,
    },
}

/// Writes big-endian fields into a caller-provided `Vec`.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// Appends to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out }
    }

    /// Appends raw bytes.
    pub fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// Appends one byte.
    pub fn put_u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn put_u16(&mut self, v: u16) -> &mut Self {
        self.put(&v.to_be_bytes())
    }

    /// Appends a big-endian `u32`.
    pub fn put_u32(&mut self, v: u32) -> &mut Self {
        self.put(&v.to_be_bytes())
    }

    /// Appends a big-endian `u64`.
    pub fn put_u64(&mut self, v: u64) -> &mut Self {
        self.put(&v.to_be_bytes())
    }

    /// Appends a `u16`-length-prefixed byte string.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`] if `bytes` is longer than `u16::MAX`.
    pub fn put_u16_prefixed(
        &mut self,
        bytes: &[u8],
        what: &'static str,
    ) -> Result<&mut Self, EncodeError> {
        let len = u16::try_from(bytes.len()).map_err(|_| EncodeError::TooLong {
            what,
            len: bytes.len(),
            max: usize::from(u16::MAX),
        })?;
        Ok(self.put_u16(len).put(bytes))
    }

    /// Appends a `u32`-length-prefixed byte string.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`] if `bytes` is longer than `u32::MAX`.
    pub fn put_u32_prefixed(
        &mut self,
        bytes: &[u8],
        what: &'static str,
    ) -> Result<&mut Self, EncodeError> {
        let len = u32::try_from(bytes.len()).map_err(|_| EncodeError::TooLong {
            what,
            len: bytes.len(),
            max: u32::MAX as usize,
        })?;
        Ok(self.put_u32(len).put(bytes))
    }

    /// Bytes written so far in the underlying buffer.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether the underlying buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_fields() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        w.put_u8(7).put_u16(0x0102).put_u32(0x03040506).put_u64(9);
        w.put_u16_prefixed(b"abc", "s").unwrap();
        let mut r = Reader::new(&buf);
        assert_eq!(r.take_u8("a").unwrap(), 7);
        assert_eq!(r.take_u16("b").unwrap(), 0x0102);
        assert_eq!(r.take_u32("c").unwrap(), 0x03040506);
        assert_eq!(r.take_u64("d").unwrap(), 9);
        assert_eq!(r.take_u16_prefixed(3, "s").unwrap(), b"abc");
        r.finish().unwrap();
    }

    #[test]
    fn errors_are_values() {
        let mut r = Reader::new(&[0, 5, 1, 2]);
        assert_eq!(
            r.clone().take_u16_prefixed(8, "s").unwrap_err(),
            DecodeError::Truncated {
                what: "s",
                needed: 3
            }
        );
        assert_eq!(
            r.clone().take_u16_prefixed(4 - 1, "s").unwrap_err(),
            DecodeError::TooLong {
                what: "s",
                got: 5,
                max: 3
            }
        );
        assert_eq!(
            r.take_u64("x").unwrap_err(),
            DecodeError::Truncated {
                what: "x",
                needed: 4
            }
        );
        let mut r = Reader::new(&[1, 2]);
        r.take_u8("a").unwrap();
        assert_eq!(r.finish().unwrap_err(), DecodeError::TrailingData(1));
    }

    #[test]
    fn huge_length_prefix_allocates_nothing() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            r.take_u32_prefixed(1 << 20, "body").unwrap_err(),
            DecodeError::TooLong {
                what: "body",
                got: 0xffff_ffff,
                max: 1 << 20
            }
        );
    }
}

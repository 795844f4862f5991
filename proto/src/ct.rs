//! Constant-time byte arrays for tags, MACs and tokens.
//!
//! A MAC or authentication tag compared with `==` on `[u8; N]` leaks, through timing, how many
//! leading bytes matched. [`CtArray`] keeps the bytes private, offers no `Deref` to them, and
//! implements `PartialEq` with [`subtle::ConstantTimeEq`], so the only comparison the type
//! allows is the safe one.

use subtle::ConstantTimeEq;

/// A fixed-size byte string compared in constant time.
#[derive(Clone)]
pub struct CtArray<const N: usize>([u8; N]);

impl<const N: usize> CtArray<N> {
    /// Wraps `bytes`.
    pub fn new(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// Borrows the bytes, for writing them to the wire. Comparing them by hand defeats the
    /// purpose of this type.
    pub fn expose(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> PartialEq for CtArray<N> {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl<const N: usize> Eq for CtArray<N> {}

impl<const N: usize> std::fmt::Debug for CtArray<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CtArray<{N}>(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_and_unequal() {
        let a = CtArray::new([1u8; 16]);
        let mut other = [1u8; 16];
        assert_eq!(a, CtArray::new(other));
        other[15] = 2;
        assert_ne!(a, CtArray::new(other));
        assert_eq!(format!("{a:?}"), "CtArray<16>(..)");
    }
}

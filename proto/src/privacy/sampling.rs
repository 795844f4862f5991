//! Random draws and duration conversions shared by the mitigations.
//!
//! Every draw comes from the caller's CSPRNG: timing that hides traffic patterns is only as
//! good as its unpredictability (the reference uses a non-cryptographic generator for cover
//! intervals and the batch shuffle, seed-spec §3.1). Conversions saturate instead of panicking.

use std::time::Duration;

use rand_core::CryptoRngCore;

/// A uniform draw from `[0, 1)`: one of the 2^53 evenly spaced doubles `k / 2^53`.
pub(super) fn unit_interval(rng: &mut (impl CryptoRngCore + ?Sized)) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

/// An exponential draw with mean `mean` (`>= 0`), by inversion: `-mean · ln(1 - U)`.
///
/// `1 - U` is in `(0, 1]`, so the logarithm is finite and the result is in `[0, ∞)`; it is
/// exactly 0 when `mean` is 0.
pub(super) fn exponential(rng: &mut (impl CryptoRngCore + ?Sized), mean: f64) -> f64 {
    let draw = -(1.0 - unit_interval(rng)).ln();
    if mean > 0.0 { mean * draw } else { 0.0 }
}

/// A uniform index in `0..bound` without modulo bias (Lemire's multiply-and-reject).
///
/// Returns 0 when `bound` is 0 or 1. Each draw is rejected with probability below
/// `bound / 2^64`, so with a real RNG the loop almost always ends on its first draw.
pub(super) fn uniform_index(rng: &mut (impl CryptoRngCore + ?Sized), bound: usize) -> usize {
    let bound = bound as u64;
    if bound <= 1 {
        return 0;
    }
    // 2^64 mod bound: products whose low half falls below it would over-represent some values.
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if (product as u64) >= threshold {
            return (product >> 64) as usize;
        }
    }
}

/// `secs` seconds as a [`Duration`]: NaN and negatives give zero, overflow gives the maximum.
pub(super) fn duration_from_secs(secs: f64) -> Duration {
    if secs > 0.0 {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

/// A fake CSPRNG for tests that returns one fixed word forever, to pin exact draws.
#[cfg(test)]
pub(super) struct FixedRng(pub(super) u64);

#[cfg(test)]
impl rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        (self.0 >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
impl rand_core::CryptoRng for FixedRng {}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn unit_interval_endpoints() {
        assert_eq!(unit_interval(&mut FixedRng(0)), 0.0);
        assert_eq!(unit_interval(&mut FixedRng(1 << 63)), 0.5);
        let top = unit_interval(&mut FixedRng(u64::MAX));
        assert!(top < 1.0);
        assert_eq!(top, 1.0 - 1.0 / (1u64 << 53) as f64);
    }

    #[test]
    fn exponential_by_inversion() {
        assert_eq!(exponential(&mut FixedRng(0), 10.0), 0.0);
        let median = exponential(&mut FixedRng(1 << 63), 10.0);
        assert!((median - 10.0 * std::f64::consts::LN_2).abs() < 1e-12);
        assert_eq!(exponential(&mut FixedRng(1 << 63), 0.0), 0.0);
        assert!(exponential(&mut FixedRng(u64::MAX), 1.0).is_finite());
    }

    #[test]
    fn exponential_sample_mean() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let n = 20_000;
        let mean = (0..n).map(|_| exponential(&mut rng, 3.0)).sum::<f64>() / f64::from(n);
        assert!((mean - 3.0).abs() < 0.1, "{mean}");
    }

    #[test]
    fn uniform_index_stays_in_range_and_covers_it() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut seen = [0u32; 6];
        for _ in 0..6_000 {
            let i = uniform_index(&mut rng, 6);
            seen[i] += 1;
        }
        assert!(
            seen.iter().all(|&count| (850..1150).contains(&count)),
            "{seen:?}"
        );
        assert_eq!(uniform_index(&mut rng, 0), 0);
        assert_eq!(uniform_index(&mut rng, 1), 0);
    }

    #[test]
    fn uniform_index_maps_high_bits() {
        // floor(x · bound / 2^64)
        assert_eq!(uniform_index(&mut FixedRng(u64::MAX), 10), 9);
        assert_eq!(uniform_index(&mut FixedRng((1 << 63) + 1), 10), 5);
    }

    #[test]
    fn duration_from_secs_saturates() {
        assert_eq!(duration_from_secs(1.5), Duration::from_millis(1500));
        assert_eq!(duration_from_secs(0.0), Duration::ZERO);
        assert_eq!(duration_from_secs(-3.0), Duration::ZERO);
        assert_eq!(duration_from_secs(f64::NAN), Duration::ZERO);
        assert_eq!(duration_from_secs(f64::INFINITY), Duration::MAX);
        assert_eq!(duration_from_secs(1e300), Duration::MAX);
    }
}

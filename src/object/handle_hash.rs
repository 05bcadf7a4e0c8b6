//! A hasher for maps keyed by handles the module itself hands out (session and object
//! handles, counted up from 1) and for the fixed mechanism index.
//!
//! SipHash (the standard `HashMap` hasher) resists callers who choose many keys that
//! collide; these keys are not the caller's to choose: handles come from the module's
//! counters, and the mechanism index holds the module's own list, so a caller's lookup
//! of any value probes a table whose layout it did not pick. A multiply by an odd
//! constant is enough there and costs a few instructions where SipHash costs ~140 on
//! every `C_Encrypt`. Maps keyed by caller-chosen bytes (attribute values, the search
//! index, object uids) keep SipHash. This module must not be used for those.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The 64-bit golden-ratio constant (odd): multiplying by it spreads a counter's low bits
/// into the high bits the table uses for its control bytes, and keeps consecutive
/// handles in distinct buckets.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// Hashes integer keys with one multiply (bytes, if ever given, one at a time).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HandleHasher(u64);

impl Hasher for HandleHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(SPREAD);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(SPREAD);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by module-chosen integers (see the module comment).
pub(crate) type HandleMap<K, V> = HashMap<K, V, BuildHasherDefault<HandleHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash_of(n: u64) -> u64 {
        BuildHasherDefault::<HandleHasher>::default().hash_one(n)
    }

    #[test]
    fn consecutive_handles_land_in_distinct_buckets_and_spread_their_high_bits() {
        // The low 10 bits index a 1024-bucket table; the top 7 are the control byte.
        let buckets: std::collections::HashSet<u64> =
            (1..=1024).map(|n| hash_of(n) & 1023).collect();
        assert_eq!(buckets.len(), 1024);
        let tops: std::collections::HashSet<u64> = (1..=1024).map(|n| hash_of(n) >> 57).collect();
        assert!(tops.len() > 100, "only {} control bytes", tops.len());
    }

    #[test]
    fn a_map_finds_what_it_holds() {
        let mut m: HandleMap<u64, u64> = HandleMap::default();
        for n in 0..10_000u64 {
            m.insert(n * 3, n);
        }
        assert!((0..10_000u64).all(|n| m.get(&(n * 3)) == Some(&n)));
        assert!(!m.contains_key(&1));
        let mut h = HandleHasher::default();
        b"abc".hash(&mut h);
        assert_ne!(h.finish(), 0);
    }
}

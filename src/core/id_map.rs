//! Maps keyed by the ids the core hands out itself (request ids, channel and connection
//! ids: no untrusted input), hashed with one multiplication instead of SipHash. Every
//! `dc.send` and its acknowledgement look up a request and a channel.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
pub type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing: consecutive ids spread over the high bits, which hashbrown reads too.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Keys that are not one integer (none are today) still hash correctly, byte by byte.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(GOLDEN);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u64(u64::from(id));
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(GOLDEN);
    }
}

impl std::fmt::Debug for IdHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdHasher")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn consecutive_ids_hash_apart_and_maps_work() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: std::collections::HashSet<u64> =
            (0u64..1000).map(|i| build.hash_one(i)).collect();
        assert_eq!(hashes.len(), 1000);
        // The low 7 bits (hashbrown's control byte comes from the top ones, the bucket from
        // the low ones) take many values over consecutive ids.
        let low: std::collections::HashSet<u64> =
            (0u64..128).map(|i| build.hash_one(i) & 127).collect();
        assert_eq!(low.len(), 128);
        let mut map: IdMap<u64, u64> = IdMap::default();
        for i in 0..10_000 {
            map.insert(i, i * 2);
        }
        assert!((0..10_000).all(|i| map.get(&i) == Some(&(i * 2))));
    }
}

//! Fixed-seed hashing: persisted/merged hashes must never depend on a random state.
use std::hash::{BuildHasher, Hasher};

/// Seed for xxh3-64 of raw bytes (strings, binary). Changing it invalidates serialised accumulators.
pub const SEED: u64 = 0x6c65_616e_7265_6331; // "leanrec1"

/// Key of a raw byte string.
#[inline]
pub fn hash_bytes(b: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(b, SEED)
}

/// Key of a float value (numeric fields, float columns): its bit pattern, with -0.0 folded into 0.0.
#[inline]
pub fn float_key(v: f64) -> u64 {
    if v == 0.0 { 0 } else { v.to_bits() }
}

/// How a non-negative integer value becomes an accumulator key: as it is (integer fields), or as the key
/// of its float value (numeric fields, counted by float64 value so text and typed columns agree).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMap {
    Int,
    Float,
}

impl KeyMap {
    #[inline]
    pub fn key(self, v: u64) -> u64 {
        match self {
            KeyMap::Int => v,
            KeyMap::Float => float_key(v as f64),
        }
    }
}

/// Bijective 64-bit mixer (splitmix64 finaliser); used for HLL and bins so integer keys spread.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Cheap hasher for in-memory u64-keyed maps (iteration order never affects results).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = mix64(self.0 ^ i);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64 ^ 0xff00)
    }
}

#[derive(Default, Clone, Copy)]
pub struct FastBuild;
impl BuildHasher for FastBuild {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

pub type FastMap<K, V> = std::collections::HashMap<K, V, FastBuild>;

/// Hint the CPU to load the cache line at `ptr` (no effect on results; a no-op off x86-64).
#[inline(always)]
pub(crate) fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults and does not dereference in the language sense.
    unsafe {
        std::arch::x86_64::_mm_prefetch(ptr as *const i8, std::arch::x86_64::_MM_HINT_T0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Map from u64 keys to u32 slots: open addressing with linear probing, at most half full. Unlike a
/// general hash map its bucket for a key is known without touching memory, so counting loops can
/// [`prefetch`](KeyIndex::prefetch) the buckets of rows ahead and overlap the cache misses of big tables.
#[derive(Clone, Debug, Default)]
pub struct KeyIndex {
    /// (key, slot); slot `EMPTY` marks a free bucket. Length 0 or a power of two.
    buckets: Vec<(u64, u32)>,
    shift: u32,
    len: usize,
}

const EMPTY: u32 = u32::MAX;

impl KeyIndex {
    #[inline]
    fn home(&self, k: u64) -> usize {
        (mix64(k) >> self.shift) as usize
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Buckets allocated (each 16 bytes).
    pub fn capacity(&self) -> usize {
        self.buckets.len()
    }

    #[inline]
    pub fn get(&self, k: u64) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        let mask = self.buckets.len() - 1;
        let mut i = self.home(k);
        loop {
            let (key, slot) = self.buckets[i];
            if slot == EMPTY {
                return None;
            }
            if key == k {
                return Some(slot);
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert a key that is not present.
    pub fn insert(&mut self, k: u64, slot: u32) {
        debug_assert!(slot != EMPTY && self.get(k).is_none());
        if (self.len + 1) * 2 > self.buckets.len() {
            self.grow();
        }
        let mask = self.buckets.len() - 1;
        let mut i = self.home(k);
        while self.buckets[i].1 != EMPTY {
            i = (i + 1) & mask;
        }
        self.buckets[i] = (k, slot);
        self.len += 1;
    }

    fn grow(&mut self) {
        let cap = (self.buckets.len() * 2).max(16);
        let old = std::mem::replace(&mut self.buckets, vec![(0, EMPTY); cap]);
        self.shift = 64 - cap.trailing_zeros();
        self.len = 0;
        for (k, s) in old.into_iter().filter(|b| b.1 != EMPTY) {
            self.insert(k, s);
        }
    }

    /// Start loading the bucket where `k` would be.
    #[inline(always)]
    pub fn prefetch(&self, k: u64) {
        if !self.buckets.is_empty() {
            prefetch(self.buckets.as_ptr().wrapping_add(self.home(k)));
        }
    }
}

impl FromIterator<(u64, u32)> for KeyIndex {
    fn from_iter<I: IntoIterator<Item = (u64, u32)>>(iter: I) -> Self {
        let mut ix = KeyIndex::default();
        for (k, s) in iter {
            ix.insert(k, s);
        }
        ix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_index_matches_a_hash_map() {
        let mut ix = KeyIndex::default();
        let mut m = std::collections::HashMap::new();
        let mut z = 1u64;
        for s in 0..50_000u32 {
            z = z.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let k = if s % 3 == 0 { (s / 3) as u64 } else { z }; // small integers and spread keys
            if m.contains_key(&k) {
                continue;
            }
            m.insert(k, s);
            ix.insert(k, s);
        }
        assert_eq!(ix.len(), m.len());
        for (&k, &s) in &m {
            assert_eq!(ix.get(k), Some(s));
        }
        assert_eq!(ix.get(u64::MAX - 1), m.get(&(u64::MAX - 1)).copied());
        assert!(ix.capacity() >= 2 * ix.len());
    }
}

//! Fixed-seed hashing: persisted/merged hashes must never depend on a random state.
use std::hash::{BuildHasher, Hasher};

/// Seed for xxh3-64 of raw bytes (strings, binary). Changing it invalidates serialised accumulators.
pub const SEED: u64 = 0x6c65_616e_7265_6331; // "leanrec1"

/// Key of a raw byte string.
#[inline]
pub fn hash_bytes(b: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(b, SEED)
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

//! Random keep/drop masks for dropout, counter-based: element `i`'s draw is a hash of
//! `(seed, i / 2)`, so a mask depends only on its seed and length, never on the thread count, and
//! is filled in parallel at memory speed (torch's CPU `bernoulli_` draws from one sequential
//! generator at ~12 ns per element).
use crate::hash::mix64;
use rayon::prelude::*;

const CHUNK: usize = 1 << 16; // elements per parallel task (even, so a hash never straddles tasks)

/// Fill `out` with an inverted-dropout mask: each element is 0 with probability `p` (to 2^-32) and
/// `1 / (1 - p)` otherwise. `p` must be in [0, 1). `parallel`: spread the work over rayon's pool
/// (the mask is the same either way).
pub fn dropout_mask(out: &mut [f32], p: f64, seed: u64, parallel: bool) {
    assert!((0.0..1.0).contains(&p), "dropout probability must be in [0, 1), got {p}");
    let threshold = (p * 4294967296.0).round() as u64; // drop when a 32-bit draw is below this
    let keep = (1.0 / (1.0 - p)) as f32;
    let key = mix64(seed);
    let fill = |(c, chunk): (usize, &mut [f32])| {
        let base = (c * CHUNK / 2) as u64;
        for (j, pair) in chunk.chunks_mut(2).enumerate() {
            let h = mix64(key ^ (base + j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for (k, o) in pair.iter_mut().enumerate() {
                let draw = (h >> (32 * k)) & 0xFFFF_FFFF;
                *o = if draw < threshold { 0.0 } else { keep };
            }
        }
    };
    if parallel {
        out.par_chunks_mut(CHUNK).enumerate().for_each(fill);
    } else {
        out.chunks_mut(CHUNK).enumerate().for_each(fill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_right_share_and_depends_only_on_the_seed() {
        let n = 1_000_003;
        let mut a = vec![0f32; n];
        dropout_mask(&mut a, 0.2, 7, true);
        let kept = a.iter().filter(|&&x| x != 0.0).count() as f64;
        // binomial(n, 0.8): 5 standard deviations
        assert!((kept - 0.8 * n as f64).abs() < 5.0 * (n as f64 * 0.16).sqrt(), "{kept}");
        assert!(a.iter().all(|&x| x == 0.0 || x == 1.25));
        let mut b = vec![0f32; n];
        dropout_mask(&mut b, 0.2, 7, false);
        assert_eq!(a, b);
        let mut c = vec![0f32; n];
        dropout_mask(&mut c, 0.2, 8, true);
        assert_ne!(a, c);
        // neighbours (the two halves of one hash, and consecutive hashes) are uncorrelated
        for lag in [1usize, 2] {
            let both = (0..n - lag).filter(|&i| a[i] != 0.0 && a[i + lag] != 0.0).count() as f64;
            let expect = 0.64 * (n - lag) as f64;
            assert!((both - expect).abs() < 5.0 * (expect * 0.36).sqrt(), "lag {lag}: {both} vs {expect}");
        }
        let mut z = vec![1f32; 10];
        dropout_mask(&mut z, 0.0, 1, false);
        assert!(z.iter().all(|&x| x == 1.0));
    }
}

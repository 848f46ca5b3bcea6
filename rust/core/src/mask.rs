//! Inverted dropout with a counter-based mask: element `i` is kept unless one 32-bit half of a hash
//! of `(seed, i / 2)` falls below `p`, so the mask depends only on the seed and the position. The
//! backward pass regenerates the same mask from the seed instead of storing it
//! (`python benchmarks/bench_dropout.py` times it against torch's CPU `bernoulli_`). It runs on the
//! calling thread: an earlier version spread it over rayon's pool and trained slower inside a torch
//! step, whose OpenMP threads still hold the cores. The hashes are computed 16 at a time in a loop the
//! compiler vectorises (8 lanes of 64-bit multiplies with AVX-512 DQ, chosen at run time): 0.20 ms per
//! 1024 x 400 activation instead of 0.59 ms, the same masks bit for bit.
use crate::hash::mix64;

/// `out[i] = x[i] / (1 - p)` if element `i` is kept, else `x[i] * 0` (like torch's dropout, NaN and
/// inf stay NaN): each element dropped with probability `p` (to 2^-32). `p` must be in [0, 1) and the
/// slices of equal length.
pub fn dropout(x: &[f32], out: &mut [f32], p: f64, seed: u64) {
    assert!((0.0..1.0).contains(&p), "dropout probability must be in [0, 1), got {p}");
    assert_eq!(x.len(), out.len(), "dropout input and output differ in length");
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,avx512f,avx512dq,avx512vl")]
        unsafe fn avx512(x: &[f32], out: &mut [f32], p: f64, seed: u64) {
            dropout_portable(x, out, p, seed)
        }
        if std::arch::is_x86_feature_detected!("avx512dq") && std::arch::is_x86_feature_detected!("avx512vl") {
            // SAFETY: the CPU supports AVX-512 F/DQ/VL (checked just above; 64-bit multiplies in 8 lanes).
            return unsafe { avx512(x, out, p, seed) };
        }
    }
    dropout_portable(x, out, p, seed)
}

/// [`dropout`] in blocks of 16 hashes (32 elements): the hashes of a block first, then the elements, two
/// loops the compiler vectorises (the same integer operations, so the same mask on every build).
#[inline(always)]
fn dropout_portable(x: &[f32], out: &mut [f32], p: f64, seed: u64) {
    const PAIRS: usize = 16;
    let threshold = (p * 4294967296.0).round() as u64; // drop when a 32-bit draw is below this
    let scale = (1.0 / (1.0 - p)) as f32;
    let key = mix64(seed);
    // a select of the factor, not a branch on the draw (which would mispredict)
    let factor = |draw: u64| if draw < threshold { 0.0 } else { scale };
    let hash = |j: usize| mix64(key ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut hs = [0u64; PAIRS];
    let blocks = x.len() / (2 * PAIRS);
    for (b, (xb, ob)) in x.chunks_exact(2 * PAIRS).zip(out.chunks_exact_mut(2 * PAIRS)).enumerate() {
        for (k, h) in hs.iter_mut().enumerate() {
            *h = hash(b * PAIRS + k);
        }
        for (k, (xp, op)) in xb.chunks_exact(2).zip(ob.chunks_exact_mut(2)).enumerate() {
            op[0] = xp[0] * factor(hs[k] & 0xFFFF_FFFF);
            op[1] = xp[1] * factor(hs[k] >> 32);
        }
    }
    let done = blocks * 2 * PAIRS;
    for (j, (xp, op)) in x[done..].chunks_exact(2).zip(out[done..].chunks_exact_mut(2)).enumerate() {
        let h = hash(done / 2 + j);
        op[0] = xp[0] * factor(h & 0xFFFF_FFFF);
        op[1] = xp[1] * factor(h >> 32);
    }
    if x.len() % 2 == 1 {
        let last = x.len() - 1;
        out[last] = x[last] * factor(hash(last / 2) & 0xFFFF_FFFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_right_share_and_depends_only_on_the_seed() {
        let n = 1_000_003;
        let ones = vec![1f32; n];
        let mask = |seed: u64| {
            let mut m = vec![0f32; n];
            dropout(&ones, &mut m, 0.2, seed);
            m
        };
        let a = mask(7);
        let kept = a.iter().filter(|&&x| x != 0.0).count() as f64;
        // binomial(n, 0.8): 5 standard deviations
        assert!((kept - 0.8 * n as f64).abs() < 5.0 * (n as f64 * 0.16).sqrt(), "{kept}");
        assert!(a.iter().all(|&x| x == 0.0 || x == 1.25));
        assert_eq!(a, mask(7));
        assert_ne!(a, mask(8));
        // neighbours (the two halves of one hash, and consecutive hashes) are uncorrelated
        for lag in [1usize, 2] {
            let both = (0..n - lag).filter(|&i| a[i] != 0.0 && a[i + lag] != 0.0).count() as f64;
            let expect = 0.64 * (n - lag) as f64;
            assert!((both - expect).abs() < 5.0 * (expect * 0.36).sqrt(), "lag {lag}: {both} vs {expect}");
        }
        // values are scaled where kept; p = 0 keeps everything unchanged
        let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut y = vec![0f32; n];
        dropout(&x, &mut y, 0.2, 7);
        assert!((0..n).all(|i| y[i] == if a[i] == 0.0 { 0.0 } else { x[i] * 1.25 }));
        dropout(&x, &mut y, 0.0, 1);
        assert_eq!(x, y);
    }

    #[test]
    fn blocked_and_simd_builds_give_the_pair_by_pair_mask() {
        for n in [0usize, 1, 2, 31, 32, 33, 64, 1001] {
            let x: Vec<f32> = (0..n).map(|i| i as f32 - 7.5).collect();
            let (threshold, scale, key) = ((0.3f64 * 4294967296.0).round() as u64, (1.0 / 0.7f64) as f32, mix64(42));
            let want: Vec<f32> = (0..n).map(|i| {
                let h = mix64(key ^ ((i / 2) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let draw = if i % 2 == 0 { h & 0xFFFF_FFFF } else { h >> 32 };
                x[i] * if draw < threshold { 0.0 } else { scale }
            }).collect();
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            dropout(&x, &mut a, 0.3, 42);
            dropout_portable(&x, &mut b, 0.3, 42);
            assert_eq!(a, want, "n = {n}");
            assert_eq!(b, want, "n = {n}");
        }
    }
}

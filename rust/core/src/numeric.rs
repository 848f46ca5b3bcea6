//! Numeric field summary: count, nulls (null or NaN), mean, variance (Chan et al. merge), min, max, zeros.
use crate::codec::{Reader, Writer, KIND_NUM};
use crate::error::Result;
use rayon::prelude::*;

#[derive(Clone, Debug, PartialEq)]
pub struct NumericAcc {
    pub count: u64,
    pub nulls: u64,
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    pub min: f64,
    pub max: f64,
    pub zeros: u64,
}

impl Default for NumericAcc {
    fn default() -> Self {
        NumericAcc { count: 0, nulls: 0, mean: 0.0, m2: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY, zeros: 0 }
    }
}

/// A value type numeric statistics read in place (Arrow primitive buffers).
pub trait NumValue: Copy + Send + Sync {
    /// Whether values can be NaN (then NaN counts as null).
    const FLOAT: bool;
    /// 64-bit integers (whose conversion to f64 AVX-512 DQ vectorises).
    const WIDE_INT: bool;
    fn f64(self) -> f64;
}
macro_rules! num_value {
    ($float:expr, $wide:expr; $($t:ty),*) => {$(impl NumValue for $t {
        const FLOAT: bool = $float;
        const WIDE_INT: bool = $wide;
        #[inline] fn f64(self) -> f64 { self as f64 }
    })*};
}
num_value!(false, false; i8, i16, i32, u8, u16, u32);
num_value!(false, true; i64, u64);
num_value!(true, false; f32, f64);

/// An Arrow validity bitmap: bit `offset + i` (LSB first) set = row i is valid.
#[derive(Clone, Copy, Debug)]
pub struct Bitmap<'a> {
    pub bits: &'a [u8],
    pub offset: usize,
}

impl Bitmap<'_> {
    /// Validity of rows start..start+len (len <= 64) as the low bits of a word.
    #[inline]
    fn word(&self, start: usize, len: usize) -> u64 {
        let bit = self.offset + start;
        let (byte, shift) = (bit / 8, bit % 8);
        let mut buf = [0u8; 16];
        let end = (byte + 9).min(self.bits.len());
        buf[..end - byte].copy_from_slice(&self.bits[byte..end]);
        let w = (u128::from_le_bytes(buf) >> shift) as u64;
        if len == 64 { w } else { w & ((1u64 << len) - 1) }
    }
}

/// Visit `values` in chunks of 64 with the chunk's index and validity word (bit j = value j valid; NaN not
/// yet excluded).
#[inline]
fn chunks<T: NumValue>(values: &[T], valid: Option<Bitmap>, mut f: impl FnMut(usize, &[T], u64)) {
    for (c, chunk) in values.chunks(64).enumerate() {
        let all = if chunk.len() == 64 { u64::MAX } else { (1u64 << chunk.len()) - 1 };
        f(c, chunk, valid.map_or(all, |b| b.word(c * 64, chunk.len())));
    }
}

/// Lane masks for 4 rows from a 4-bit usable pattern: lane k is all ones when bit k is set.
const NIBBLE_MASKS: [[u64; 4]; 16] = {
    let mut t = [[0u64; 4]; 16];
    let mut nib = 0;
    while nib < 16 {
        let mut k = 0;
        while k < 4 {
            t[nib][k] = if (nib >> k) & 1 == 1 { u64::MAX } else { 0 };
            k += 1;
        }
        nib += 1;
    }
    t
};

/// Call `f(lane, value, mask)` for every row of `v` (lane = row mod 4), full quads first, each quad's
/// masks from `masks(quad index)`.
#[inline(always)]
fn each_row<T: NumValue>(v: &[T], masks: impl Fn(usize) -> &'static [u64; 4], mut f: impl FnMut(usize, f64, u64)) {
    let quads = v.chunks_exact(4);
    let tail = quads.remainder();
    for (q, x) in quads.enumerate() {
        let m = masks(q);
        for k in 0..4 {
            f(k, x[k].f64(), m[k]);
        }
    }
    if !tail.is_empty() {
        let m = masks(v.len() / 4);
        for (k, x) in tail.iter().enumerate() {
            f(k, x.f64(), m[k]);
        }
    }
}

/// Exact summary of a block of at most 1024 rows (in cache) whose usable rows are the set bits of
/// `ok` (one word per 64 rows). Two passes (mean, then squared deviations) in lanes of 4. Unusable
/// rows are masked, not skipped: their bits are cleared for the sums (so a null slot's garbage or
/// NaN never enters) and replaced by ±inf for min / max, with lane masks looked up per 4 rows. No
/// branches, no compaction, so the loops vectorise.
#[inline(always)]
fn summarise<T: NumValue>(v: &[T], ok: &[u64]) -> NumericAcc {
    let count: u64 = ok.iter().map(|w| w.count_ones() as u64).sum();
    if count == 0 {
        return NumericAcc::default();
    }
    if count == v.len() as u64 {
        // every row usable: the same operations with all-ones masks, which the compiler folds away
        return summarise_with(v, count, |_| &NIBBLE_MASKS[15]);
    }
    summarise_with(v, count, |q: usize| &NIBBLE_MASKS[((ok[q / 16] >> (4 * (q % 16))) & 15) as usize])
}

#[inline(always)]
fn summarise_with<T: NumValue>(v: &[T], count: u64, masks: impl Fn(usize) -> &'static [u64; 4] + Copy) -> NumericAcc {
    let masked = |x: f64, m: u64| f64::from_bits(x.to_bits() & m);
    let (inf, ninf) = (f64::INFINITY.to_bits(), f64::NEG_INFINITY.to_bits());
    let mut s = [0.0f64; 4];
    let (mut mn, mut mx) = ([f64::INFINITY; 4], [f64::NEG_INFINITY; 4]);
    let mut zeros = [0u64; 4];
    each_row(v, masks, |k, x, m| {
        s[k] += masked(x, m);
        mn[k] = mn[k].min(f64::from_bits((x.to_bits() & m) | (inf & !m)));
        mx[k] = mx[k].max(f64::from_bits((x.to_bits() & m) | (ninf & !m)));
        zeros[k] += ((x == 0.0) as u64) & m;
    });
    let mean = (s[0] + s[1] + (s[2] + s[3])) / count as f64;
    let mut m2 = [0.0f64; 4];
    each_row(v, masks, |k, x, m| {
        let d = masked(x - mean, m);
        m2[k] += d * d;
    });
    NumericAcc {
        count,
        nulls: 0,
        mean,
        m2: m2[0] + m2[1] + (m2[2] + m2[3]),
        min: mn.iter().copied().fold(f64::INFINITY, f64::min),
        max: mx.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        zeros: zeros.iter().sum(),
    }
}

/// [`summarise`] compiled as [`piece_fast`] compiles it (tests compare it with the portable build).
#[cfg(test)]
fn summarise_fast<T: NumValue>(v: &[T], ok: &[u64]) -> NumericAcc {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T: NumValue>(v: &[T], ok: &[u64]) -> NumericAcc {
            summarise(v, ok)
        }
        #[target_feature(enable = "avx2,avx512f,avx512dq,avx512vl")]
        unsafe fn avx512<T: NumValue>(v: &[T], ok: &[u64]) -> NumericAcc {
            summarise(v, ok)
        }
        if T::WIDE_INT && std::arch::is_x86_feature_detected!("avx512dq") && std::arch::is_x86_feature_detected!("avx512vl") {
            // SAFETY: the CPU supports AVX-512 F/DQ/VL (DQ and VL imply F; checked just above).
            return unsafe { avx512(v, ok) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(v, ok) };
        }
    }
    summarise(v, ok)
}

/// Summary of one piece: each block of 1024 rows gets its usable-row words (validity, NaN cleared), is
/// summarised while in cache and Chan-merged in order.
#[inline(always)]
fn piece<T: NumValue>(values: &[T], valid: Option<Bitmap>) -> NumericAcc {
    const BLOCK: usize = 1024; // rows summarised together: 16 validity words
    let mut b = NumericAcc::default();
    let mut ok = [0u64; BLOCK / 64];
    for (i, block) in values.chunks(BLOCK).enumerate() {
        let n_words = block.len().div_ceil(64);
        chunks(block, valid.map(|m| Bitmap { bits: m.bits, offset: m.offset + i * BLOCK }), |c, run, w| {
            // NaN counts as null: clear its bit (a branch-free fold the compiler vectorises)
            let nan = if T::FLOAT { run.iter().enumerate().fold(0u64, |a, (j, v)| a | ((v.f64().is_nan() as u64) << j)) } else { 0 };
            ok[c] = w & !nan;
        });
        b.merge(&summarise(block, &ok[..n_words]));
    }
    b.nulls = values.len() as u64 - b.count;
    b
}

/// [`piece`] compiled for AVX2 (4 f64 lanes per instruction instead of SSE2's 2) on CPUs that have it,
/// and for 64-bit integers with AVX-512 DQ/VL where present (its int64 -> f64 conversion is one
/// instruction per 4 values; AVX2 converts them one by one). Same operations in the same lane order
/// and no FMA contraction, so bit-identical results.
fn piece_fast<T: NumValue>(values: &[T], valid: Option<Bitmap>) -> NumericAcc {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T: NumValue>(values: &[T], valid: Option<Bitmap>) -> NumericAcc {
            piece(values, valid)
        }
        #[target_feature(enable = "avx2,avx512f,avx512dq,avx512vl")]
        unsafe fn avx512<T: NumValue>(values: &[T], valid: Option<Bitmap>) -> NumericAcc {
            piece(values, valid)
        }
        if T::WIDE_INT && std::arch::is_x86_feature_detected!("avx512dq") && std::arch::is_x86_feature_detected!("avx512vl") {
            // SAFETY: the CPU supports AVX-512 F/DQ/VL (checked just above).
            return unsafe { avx512(values, valid) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(values, valid) };
        }
    }
    piece(values, valid)
}

impl NumericAcc {
    /// Add a block of values read in place; rows whose validity bit is clear, or NaN, count as
    /// null. One pass over memory: each block of 1024 rows gets its usable-row bit words, is
    /// summarised exactly while in cache (see `summarise`) and Chan-merged.
    ///
    /// Columns longer than `PIECE` rows are split into pieces summarised in parallel (rayon) and
    /// merged in row order, so a few long columns keep every thread busy and the result does not
    /// depend on the thread count.
    pub fn update<T: NumValue>(&mut self, values: &[T], valid: Option<Bitmap>) {
        const PIECE: usize = 1 << 20; // a multiple of 64: pieces keep the 64-row runs aligned
        if values.len() <= PIECE {
            return self.update_piece(values, valid);
        }
        let pieces: Vec<NumericAcc> = values
            .par_chunks(PIECE)
            .enumerate()
            .map(|(i, piece)| {
                let mut acc = NumericAcc::default();
                acc.update_piece(piece, valid.map(|b| Bitmap { bits: b.bits, offset: b.offset + i * PIECE }));
                acc
            })
            .collect();
        for piece in &pieces {
            self.merge(piece);
        }
    }

    fn update_piece<T: NumValue>(&mut self, values: &[T], valid: Option<Bitmap>) {
        self.merge(&piece_fast(values, valid));
    }

    pub fn merge(&mut self, o: &NumericAcc) {
        let n = self.count + o.count;
        if o.count > 0 {
            let d = o.mean - self.mean;
            let (na, nb) = (self.count as f64, o.count as f64);
            self.mean += d * nb / n as f64;
            self.m2 += o.m2 + d * d * na * nb / n as f64;
        }
        self.count = n;
        self.nulls += o.nulls;
        self.zeros += o.zeros;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
    /// Population variance (ddof = 0, like numpy's default); NaN when empty.
    pub fn variance(&self) -> f64 {
        if self.count == 0 { f64::NAN } else { self.m2 / self.count as f64 }
    }
    pub fn zero_share(&self) -> f64 {
        if self.count == 0 { f64::NAN } else { self.zeros as f64 / self.count as f64 }
    }
    pub fn write(&self, w: &mut Writer) {
        for v in [self.count, self.nulls, self.zeros] {
            w.u64(v)
        }
        for v in [self.mean, self.m2, self.min, self.max] {
            w.f64(v)
        }
    }
    pub fn read(r: &mut Reader) -> Result<Self> {
        Ok(NumericAcc {
            count: r.u64()?, nulls: r.u64()?, zeros: r.u64()?,
            mean: r.f64()?, m2: r.f64()?, min: r.f64()?, max: r.f64()?,
        })
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(KIND_NUM);
        self.write(&mut w);
        w.buf
    }
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b, KIND_NUM)?;
        let a = NumericAcc::read(&mut r)?;
        r.finish()?;
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn variance_and_merge() {
        let v: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64 * 0.5 - 3.0).collect();
        let mut one = NumericAcc::default();
        one.update(&v, None);
        // integers read in place give the same statistics as their f64 values
        let vi: Vec<i32> = (0..1000).map(|i| ((i * 37) % 101) as i32 - 6).collect();
        let vf: Vec<f64> = vi.iter().map(|&x| x as f64).collect();
        let (mut ai, mut af) = (NumericAcc::default(), NumericAcc::default());
        ai.update(&vi, None);
        af.update(&vf, None);
        assert_eq!(ai, af);
        let mean = v.iter().sum::<f64>() / 1000.0;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 1000.0;
        assert!((one.variance() - var).abs() < 1e-10 * var);
        let mut a = NumericAcc::default();
        a.update(&v[..333], None);
        let mut b = NumericAcc::default();
        b.update(&v[333..], None);
        a.merge(&b);
        assert_eq!(a.count, 1000);
        assert!((a.variance() - var).abs() < 1e-10 * var);
        assert_eq!(NumericAcc::from_bytes(&a.to_bytes()).unwrap(), a);
        let mut n = NumericAcc::default();
        n.update(&[1.0, f64::NAN, 0.0], Some(Bitmap { bits: &[0b011], offset: 0 }));
        assert_eq!((n.count, n.nulls, n.zeros), (1, 2, 0));
        // a bitmap at a bit offset, across chunk and byte boundaries: equals filtering first
        let vals: Vec<f64> = (0..300).map(|i| (i % 17) as f64 - 4.0).collect();
        let bits: Vec<u8> = (0..40).map(|i| (i as u8).wrapping_mul(37) ^ 0x5a).collect();
        let off = 5;
        let valid = |i: usize| (bits[(off + i) / 8] >> ((off + i) % 8)) & 1 == 1;
        let kept: Vec<f64> = vals.iter().enumerate().filter(|(i, _)| valid(*i)).map(|(_, &v)| v).collect();
        let (mut m, mut k) = (NumericAcc::default(), NumericAcc::default());
        m.update(&vals, Some(Bitmap { bits: &bits, offset: off }));
        k.update(&kept, None);
        assert_eq!((m.count, m.nulls + k.count, m.zeros, m.min, m.max), (k.count, 300, k.zeros, k.min, k.max));
        assert!((m.variance() - k.variance()).abs() < 1e-12 && (m.mean - k.mean).abs() < 1e-12);
    }

    #[test]
    fn simd_and_portable_summaries_agree_bit_for_bit() {
        for n in [1usize, 5, 63, 64, 1000, 1024] {
            let v: Vec<f64> = (0..n).map(|i| if i % 7 == 3 { f64::NAN } else { ((i * 7919) % 113) as f64 * 0.37 - 9.0 }).collect();
            let ok: Vec<u64> = (0..n.div_ceil(64))
                .map(|c| {
                    let len = (n - 64 * c).min(64);
                    let all = if len == 64 { u64::MAX } else { (1u64 << len) - 1 };
                    let nan = (0..len).fold(0u64, |a, j| a | ((v[64 * c + j].is_nan() as u64) << j));
                    all & !nan & (0x5555_5555_5555_5555u64.rotate_left(c as u32) | 0x0f0f)
                })
                .collect();
            assert_eq!(summarise(&v, &ok), summarise_fast(&v, &ok), "n = {n}");
            let vi: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % 113 - 40 + if i % 5 == 0 { 1 << 50 } else { 0 }).collect();
            assert_eq!(summarise(&vi, &ok), summarise_fast(&vi, &ok), "int64, n = {n}");
            let vu: Vec<u64> = vi.iter().map(|&x| x.unsigned_abs()).collect();
            assert_eq!(summarise(&vu, &ok), summarise_fast(&vu, &ok), "uint64, n = {n}");
            let bm = Some(Bitmap { bits: &[0xb7; 200], offset: 3 });
            assert_eq!(piece(&v, bm), piece_fast(&v, bm), "piece, n = {n}");
            assert_eq!(piece(&vi, None), piece_fast(&vi, None), "int64 piece, n = {n}");
            let kept: Vec<f64> = (0..n).filter(|&i| (ok[i / 64] >> (i % 64)) & 1 == 1).map(|i| v[i]).collect();
            let s = summarise(&v, &ok);
            assert_eq!(s.count, kept.len() as u64);
            if !kept.is_empty() {
                let mean = kept.iter().sum::<f64>() / kept.len() as f64;
                assert!((s.mean - mean).abs() < 1e-12);
                assert_eq!(s.min, kept.iter().copied().fold(f64::INFINITY, f64::min));
                assert_eq!(s.max, kept.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            }
        }
    }

    #[test]
    fn blocks_without_nulls_equal_the_masked_path() {
        for n in [1usize, 7, 64, 333, 1024] {
            let v: Vec<f64> = (0..n).map(|i| ((i * 7919) % 113) as f64 * 0.37 - 9.0 + if i % 9 == 0 { -0.0 } else { 0.0 }).collect();
            let vi: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % 1013 - 400).collect();
            let ok: Vec<u64> = (0..n.div_ceil(64)).map(|c| if n - 64 * c >= 64 { u64::MAX } else { (1u64 << (n - 64 * c)) - 1 }).collect();
            let lookup = |q: usize| &NIBBLE_MASKS[((ok[q / 16] >> (4 * (q % 16))) & 15) as usize];
            assert_eq!(summarise(&v, &ok), summarise_with(&v, n as u64, lookup), "n = {n}");
            assert_eq!(summarise_fast(&vi, &ok), summarise_with(&vi, n as u64, lookup), "int64, n = {n}");
        }
    }

    #[test]
    fn long_columns_split_into_pieces() {
        // 2.5 pieces with a validity bitmap at a bit offset: the parallel pieces read the right
        // bits, and the result does not depend on the thread count
        let n = (1 << 21) + (1 << 19) + 77;
        let vals: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 * 0.01 - 2.0).collect();
        let off = 3;
        let bits: Vec<u8> = (0..(n + off) / 8 + 1).map(|i| (i as u8).wrapping_mul(29) ^ 0xa5).collect();
        let valid = |i: usize| (bits[(off + i) / 8] >> ((off + i) % 8)) & 1 == 1;
        let kept: Vec<f64> = vals.iter().enumerate().filter(|(i, _)| valid(*i)).map(|(_, &v)| v).collect();
        let mean = kept.iter().sum::<f64>() / kept.len() as f64;
        let var = kept.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / kept.len() as f64;
        let run = |threads| {
            crate::with_threads(Some(threads), || {
                let mut a = NumericAcc::default();
                a.update(&vals, Some(Bitmap { bits: &bits, offset: off }));
                a
            })
            .unwrap()
        };
        let a = run(1);
        assert_eq!(a, run(3));
        assert_eq!((a.count, a.nulls), (kept.len() as u64, (n - kept.len()) as u64));
        assert!((a.variance() - var).abs() < 1e-12 * var && (a.mean - mean).abs() < 1e-12);
    }
}

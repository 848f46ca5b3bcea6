//! Numeric field summary: count, nulls (null or NaN), mean, variance, min, max, zeros.
//!
//! Integer values within ±2^53 (every value of an integer column there, and the integer-valued floats of
//! a float column: the numbers of a CSV file, an integer column cast to float64) are summed exactly as
//! integers ([`ExactInts`]: count, sum and sum of squares), so the same values give the same bits in any
//! order, batching, file format, thread count or merge of shards. Other values (fractions, and integers
//! beyond ±2^53) are summarised as floats ([`Moments`]: Chan et al. merge). The two parts are combined
//! when the summary is read ([`NumericAcc::summary`]).
use crate::codec::{Reader, Writer, KIND_NUM};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Largest magnitude summed exactly: every integer up to it is a float64.
pub const EXACT_LIMIT: i64 = 1 << 53;

/// Count, mean, sum of squared deviations from the mean, min and max of some float values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments { count: 0, mean: 0.0, m2: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }
}

impl Moments {
    /// Chan et al.'s pairwise merge.
    pub fn merge(&mut self, o: &Moments) {
        if self.count == 0 {
            // nothing to weigh against: take the other as it is (the formula below would round its mean, and
            // give NaN where d * d overflows)
            *self = Moments { min: self.min.min(o.min), max: self.max.max(o.max), ..*o };
            return;
        }
        let n = self.count + o.count;
        if o.count > 0 {
            let d = o.mean - self.mean;
            let (na, nb) = (self.count as f64, o.count as f64);
            self.mean += d * nb / n as f64;
            self.m2 += o.m2 + d * d * na * nb / n as f64;
        }
        self.count = n;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// Integers within ±[`EXACT_LIMIT`] summed exactly: count, sum (|sum| < 2^117), sum of squares (< 2^170,
/// kept as 192 bits), min, max and zeros. Merging is integer addition, so it is exact and order-free.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExactInts {
    pub count: u64,
    pub sum: i128,
    /// Sum of squares: low 128 bits and the high 64.
    pub sq_lo: u128,
    pub sq_hi: u64,
    pub min: i64,
    pub max: i64,
    pub zeros: u64,
}

impl Default for ExactInts {
    fn default() -> Self {
        ExactInts { count: 0, sum: 0, sq_lo: 0, sq_hi: 0, min: i64::MAX, max: i64::MIN, zeros: 0 }
    }
}

/// 256-bit unsigned integers as little-endian u64 limbs (the exact variance numerator).
type U256 = [u64; 4];

fn mul_u256_u64(a: U256, b: u64) -> U256 {
    let mut out = [0u64; 4];
    let mut carry = 0u128;
    for i in 0..4 {
        let t = a[i] as u128 * b as u128 + carry;
        out[i] = t as u64;
        carry = t >> 64;
    }
    out
}

fn square_u128(a: u128) -> U256 {
    let (a0, a1) = (a as u64 as u128, (a >> 64) as u64 as u128);
    let (lo, mid, hi) = (a0 * a0, a0 * a1, a1 * a1);
    // a^2 = hi * 2^128 + 2 * mid * 2^64 + lo
    let mut out = [lo as u64, (lo >> 64) as u64, hi as u64, (hi >> 64) as u64];
    for _ in 0..2 {
        let mut carry = 0u128;
        for (i, part) in [mid as u64, (mid >> 64) as u64, 0, 0].iter().enumerate().take(3) {
            let t = out[i + 1] as u128 + *part as u128 + carry;
            out[i + 1] = t as u64;
            carry = t >> 64;
        }
    }
    out
}

fn sub_u256(a: U256, b: U256) -> U256 {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(borrow as u64);
        out[i] = d;
        borrow = b1 | b2;
    }
    out
}

fn u256_f64(a: U256) -> f64 {
    const TWO64: f64 = 18446744073709551616.0;
    ((a[3] as f64 * TWO64 + a[2] as f64) * TWO64 + a[1] as f64) * TWO64 + a[0] as f64
}

impl ExactInts {
    fn add_sq(&mut self, s: u128) {
        let (lo, carry) = self.sq_lo.overflowing_add(s);
        self.sq_lo = lo;
        self.sq_hi += carry as u64;
    }

    /// Add `count` copies of `v` (|v| <= EXACT_LIMIT).
    pub fn add_value(&mut self, v: i64, count: u64) {
        debug_assert!(v.unsigned_abs() <= EXACT_LIMIT as u64);
        self.count += count;
        self.sum += v as i128 * count as i128;
        // v^2 * count < 2^170: the low and high 64-bit halves of v^2 times count, with carries
        let sq = (v as i128 * v as i128) as u128;
        let lo = (sq as u64 as u128) * count as u128;
        let hi = (sq >> 64) * count as u128; // < 2^106
        self.add_sq(lo);
        let (h_lo, h_hi) = ((hi as u64 as u128) << 64, (hi >> 64) as u64);
        self.add_sq(h_lo);
        self.sq_hi += h_hi;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.zeros += if v == 0 { count } else { 0 };
    }

    pub fn merge(&mut self, o: &ExactInts) {
        self.count += o.count;
        self.sum += o.sum;
        self.add_sq(o.sq_lo);
        self.sq_hi += o.sq_hi;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.zeros += o.zeros;
    }

    /// Mean and sum of squared deviations, computed from the exact sums with a few roundings at the end
    /// (m2 = (n * Σx² - (Σx)²) / n, its numerator exact in 256 bits and rounded once per 64-bit limb).
    pub fn moments(&self) -> Moments {
        if self.count == 0 {
            return Moments::default();
        }
        let n = self.count as i128;
        // |sum| <= 2^53: one correctly rounded division; beyond, on the magnitude (so the sign never changes
        // the rounding): its whole part is exact (|mean| <= 2^53) and the remainder adds the fraction
        let mean = if self.sum.unsigned_abs() <= EXACT_LIMIT as u128 {
            self.sum as f64 / self.count as f64
        } else {
            let (q, r) = (self.sum.unsigned_abs() / n as u128, self.sum.unsigned_abs() % n as u128);
            let m = q as f64 + r as f64 / n as f64;
            if self.sum < 0 { -m } else { m }
        };
        let sq = [self.sq_lo as u64, (self.sq_lo >> 64) as u64, self.sq_hi, 0];
        let num = sub_u256(mul_u256_u64(sq, self.count), square_u128(self.sum.unsigned_abs()));
        Moments { count: self.count, mean, m2: u256_f64(num) / n as f64, min: self.min as f64, max: self.max as f64 }
    }
}

/// A numeric field's summary: the exactly summed integers, the float-summarised rest, and the nulls.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NumericAcc {
    pub nulls: u64,
    pub ints: ExactInts,
    pub floats: Moments,
}

/// A value type numeric statistics read in place (Arrow primitive buffers).
pub trait NumValue: Copy + Send + Sync {
    /// Whether values can be NaN (then NaN counts as null).
    const FLOAT: bool;
    /// 64-bit integers (whose conversion to f64 AVX-512 DQ vectorises).
    const WIDE_INT: bool;
    fn f64(self) -> f64;
    /// The value as an integer, and whether it is one within ±[`EXACT_LIMIT`] (then it is summed exactly).
    fn exact(self) -> (i64, bool);
    /// `self.exact().1`, without the conversion where a cheaper test exists (floats: trunc and compare,
    /// which AVX2 vectorises).
    #[inline(always)]
    fn is_exact(self) -> bool {
        self.exact().1
    }
}
macro_rules! num_value {
    ($float:expr, $wide:expr, |$x:ident| $exact:expr; $($t:ty),*) => {$(impl NumValue for $t {
        const FLOAT: bool = $float;
        const WIDE_INT: bool = $wide;
        #[inline] fn f64(self) -> f64 { self as f64 }
        #[inline(always)] fn exact(self) -> (i64, bool) { let $x = self; $exact }
    })*};
}
num_value!(false, false, |x| (x as i64, true); i8, i16, i32, u8, u16, u32);
num_value!(false, true, |x| (x, x.unsigned_abs() <= EXACT_LIMIT as u64); i64);
num_value!(false, true, |x| (x as i64, x <= EXACT_LIMIT as u64); u64);
macro_rules! float_value {
    ($($t:ty),*) => {$(impl NumValue for $t {
        const FLOAT: bool = true;
        const WIDE_INT: bool = false;
        #[inline] fn f64(self) -> f64 { self as f64 }
        #[inline(always)] fn exact(self) -> (i64, bool) {
            let (f, i) = (self as f64, self as i64); // saturating; NaN gives 0
            (i, (i as f64 == f) & (i.unsigned_abs() <= EXACT_LIMIT as u64))
        }
        #[inline(always)] fn is_exact(self) -> bool {
            // the same answer as exact(): integral (NaN fails), and within the limit (inf fails)
            let f = self as f64;
            (f.trunc() == f) & (f.abs() <= EXACT_LIMIT as f64)
        }
    })*};
}
float_value!(f32, f64);

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
#[inline(always)]
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

/// Float summary of a block of at most 1024 rows (in cache) whose rows to summarise are the set bits of
/// `ok` (one word per 64 rows). Two passes (mean, then squared deviations) in lanes of 4. Other rows are
/// masked, not skipped: their bits are cleared for the sums (so a null slot's garbage or NaN never
/// enters) and replaced by ±inf for min / max, with lane masks looked up per 4 rows. No branches, no
/// compaction, so the loops vectorise.
#[inline(always)]
fn summarise<T: NumValue>(v: &[T], ok: &[u64]) -> Moments {
    let count: u64 = ok.iter().map(|w| w.count_ones() as u64).sum();
    if count == 0 {
        return Moments::default();
    }
    if count == v.len() as u64 {
        // every row usable: the same operations with all-ones masks, which the compiler folds away
        return summarise_with(v, count, |_| &NIBBLE_MASKS[15]);
    }
    summarise_with(v, count, |q: usize| &NIBBLE_MASKS[((ok[q / 16] >> (4 * (q % 16))) & 15) as usize])
}

#[inline(always)]
fn summarise_with<T: NumValue>(v: &[T], count: u64, masks: impl Fn(usize) -> &'static [u64; 4] + Copy) -> Moments {
    let masked = |x: f64, m: u64| f64::from_bits(x.to_bits() & m);
    let (inf, ninf) = (f64::INFINITY.to_bits(), f64::NEG_INFINITY.to_bits());
    let mut s = [0.0f64; 4];
    let (mut mn, mut mx) = ([f64::INFINITY; 4], [f64::NEG_INFINITY; 4]);
    each_row(v, masks, |k, x, m| {
        s[k] += masked(x, m);
        mn[k] = mn[k].min(f64::from_bits((x.to_bits() & m) | (inf & !m)));
        mx[k] = mx[k].max(f64::from_bits((x.to_bits() & m) | (ninf & !m)));
    });
    let mean = (s[0] + s[1] + (s[2] + s[3])) / count as f64;
    let mut m2 = [0.0f64; 4];
    each_row(v, masks, |k, x, m| {
        let d = masked(x - mean, m);
        m2[k] += d * d;
    });
    Moments {
        count,
        mean,
        m2: m2[0] + m2[1] + (m2[2] + m2[3]),
        min: mn.iter().copied().fold(f64::INFINITY, f64::min),
        max: mx.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// Exact sums of a block of at most 1024 integers (each within ±[`EXACT_LIMIT`] where its `ok` bit is
/// set; other rows are zeroed in place). Blocks whose values are below 2^26 in magnitude sum in 64-bit
/// lanes (squares below 2^52, 1024 of them below 2^62), the rest in 128-bit integers.
#[inline(always)]
fn exact_block(v: &mut [i64], ok: &[u64]) -> ExactInts {
    let count: u64 = ok.iter().map(|w| w.count_ones() as u64).sum();
    if count == 0 {
        return ExactInts::default();
    }
    let (mut mn, mut mx, mut zeros) = (i64::MAX, i64::MIN, 0u64);
    for (run, &w) in v.chunks_mut(64).zip(ok) {
        for (j, x) in run.iter_mut().enumerate() {
            let bit = ((w >> j) & 1) as i64;
            let m = -bit; // all ones when usable
            zeros += ((*x == 0) as i64 & bit) as u64;
            mn = mn.min((*x & m) | (i64::MAX & !m));
            mx = mx.max((*x & m) | (i64::MIN & !m));
            *x &= m;
        }
    }
    let mut e = ExactInts { count, sum: 0, sq_lo: 0, sq_hi: 0, min: mn, max: mx, zeros };
    if mn.unsigned_abs().max(mx.unsigned_abs()) < 1 << 26 {
        let (mut s, mut q) = (0i64, 0u64);
        for &x in v.iter() {
            s += x;
            q += (x * x) as u64;
        }
        e.sum = s as i128;
        e.sq_lo = q as u128;
    } else {
        let (mut s, mut q) = (0i128, 0u128);
        for &x in v.iter() {
            s += x as i128;
            q += (x as i128 * x as i128) as u128;
        }
        e.sum = s;
        e.sq_lo = q;
    }
    e
}

/// [`summarise`] compiled as [`piece_fast`] compiles it (tests compare it with the portable build).
#[cfg(test)]
fn summarise_fast<T: NumValue>(v: &[T], ok: &[u64]) -> Moments {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T: NumValue>(v: &[T], ok: &[u64]) -> Moments {
            summarise(v, ok)
        }
        #[target_feature(enable = "avx2,avx512f,avx512dq,avx512vl")]
        unsafe fn avx512<T: NumValue>(v: &[T], ok: &[u64]) -> Moments {
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
/// split into exact integers and the rest, summarised while in cache and merged in order. The split is
/// decided per block by two reductions (are all usable rows exact integers, is any?), so whole-integer and
/// whole-fraction blocks (nearly every block of a real column) never build per-row masks.
#[inline(always)]
fn piece<T: NumValue>(values: &[T], valid: Option<Bitmap>) -> NumericAcc {
    const BLOCK: usize = 1024; // rows summarised together: 16 validity words
    let mut b = NumericAcc::default();
    let mut ok = [0u64; BLOCK / 64];
    let mut ints = [0i64; BLOCK];
    for (i, block) in values.chunks(BLOCK).enumerate() {
        let n_words = block.len().div_ceil(64);
        chunks(block, valid.map(|m| Bitmap { bits: m.bits, offset: m.offset + i * BLOCK }), |c, run, w| {
            // NaN counts as null: clear its bit (a branch-free fold the compiler vectorises)
            let nan = if T::FLOAT { run.iter().enumerate().fold(0u64, |a, (j, v)| a | ((v.f64().is_nan() as u64) << j)) } else { 0 };
            ok[c] = w & !nan;
        });
        let ok = &ok[..n_words];
        // usable rows that are not exact integers (bad) and that are (good), as OR-reductions of 0/1 words
        let (mut bad, mut good) = (0u64, 0u64);
        for (c, run) in block.chunks(64).enumerate() {
            let w = ok[c];
            for (j, v) in run.iter().enumerate() {
                let (u, e) = ((w >> j) & 1, v.is_exact() as u64);
                bad |= (e ^ 1) & u;
                good |= e & u;
            }
        }
        let (all, any) = (bad == 0, good != 0);
        let ints = &mut ints[..block.len()];
        if any {
            for (slot, v) in ints.iter_mut().zip(block) {
                *slot = v.exact().0;
            }
        }
        if !any {
            b.floats.merge(&summarise(block, ok));
        } else if all {
            b.ints.merge(&exact_block(ints, ok));
        } else {
            // a block mixing exact integers with other values: per-row masks for each part
            let mut int_ok = [0u64; BLOCK / 64];
            let mut flt_ok = [0u64; BLOCK / 64];
            for (r, v) in block.iter().enumerate() {
                let bit = ((v.exact().1 as u64) << (r % 64)) & ok[r / 64];
                int_ok[r / 64] |= bit;
            }
            for c in 0..n_words {
                flt_ok[c] = ok[c] & !int_ok[c];
            }
            b.floats.merge(&summarise(block, &flt_ok[..n_words]));
            b.ints.merge(&exact_block(ints, &int_ok[..n_words]));
        }
    }
    b.nulls = values.len() as u64 - b.count();
    b
}

/// [`piece`] compiled for AVX-512 DQ/VL where present (f64 <-> int64 conversions, 64-bit integer min / max
/// and multiplies, one instruction per lane group: the exact-integer split and sums need them), else for
/// AVX2 (4 f64 lanes per instruction instead of SSE2's 2). Same operations in the same lane order and no
/// FMA contraction, so bit-identical results.
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
        if std::arch::is_x86_feature_detected!("avx512dq") && std::arch::is_x86_feature_detected!("avx512vl") {
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
        self.nulls += o.nulls;
        self.ints.merge(&o.ints);
        self.floats.merge(&o.floats);
    }

    /// Values summarised (not null, not NaN).
    pub fn count(&self) -> u64 {
        self.ints.count + self.floats.count
    }

    /// The whole summary: the exact integers' moments, then the floats' merged in.
    pub fn summary(&self) -> Moments {
        let mut m = self.ints.moments();
        m.merge(&self.floats);
        m
    }

    /// Population variance (ddof = 0, like numpy's default); NaN when empty.
    pub fn variance(&self) -> f64 {
        let m = self.summary();
        if m.count == 0 { f64::NAN } else { m.m2 / m.count as f64 }
    }

    /// Share of the values that are zero; NaN when empty.
    pub fn zero_share(&self) -> f64 {
        let n = self.count();
        if n == 0 { f64::NAN } else { self.ints.zeros as f64 / n as f64 }
    }

    pub fn write(&self, w: &mut Writer) {
        let e = &self.ints;
        for v in [self.nulls, e.count, e.sum as u64, (e.sum >> 64) as u64, e.sq_lo as u64, (e.sq_lo >> 64) as u64,
                  e.sq_hi, e.min as u64, e.max as u64, e.zeros, self.floats.count] {
            w.u64(v)
        }
        for v in [self.floats.mean, self.floats.m2, self.floats.min, self.floats.max] {
            w.f64(v)
        }
    }

    pub fn read(r: &mut Reader) -> Result<Self> {
        let nulls = r.u64()?;
        let count = r.u64()?;
        let sum = (r.u64()? as u128 | (r.u64()? as u128) << 64) as i128;
        let sq_lo = r.u64()? as u128 | (r.u64()? as u128) << 64;
        let (sq_hi, min, max, zeros) = (r.u64()?, r.u64()? as i64, r.u64()? as i64, r.u64()?);
        let ints = ExactInts { count, sum, sq_lo, sq_hi, min, max, zeros };
        let fc = r.u64()?;
        let floats = Moments { count: fc, mean: r.f64()?, m2: r.f64()?, min: r.f64()?, max: r.f64()? };
        if zeros > count {
            return Err(Error::Corrupt("more zeros than integers in a numeric blob".into()));
        }
        Ok(NumericAcc { nulls, ints, floats })
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
        assert_eq!(a.count(), 1000);
        assert!((a.variance() - var).abs() < 1e-10 * var);
        assert_eq!(NumericAcc::from_bytes(&a.to_bytes()).unwrap(), a);
        let mut n = NumericAcc::default();
        n.update(&[1.0, f64::NAN, 0.0], Some(Bitmap { bits: &[0b011], offset: 0 }));
        assert_eq!((n.count(), n.nulls, n.ints.zeros), (1, 2, 0));
        // a bitmap at a bit offset, across chunk and byte boundaries: equals filtering first
        let vals: Vec<f64> = (0..300).map(|i| (i % 17) as f64 - 4.0).collect();
        let bits: Vec<u8> = (0..40).map(|i| (i as u8).wrapping_mul(37) ^ 0x5a).collect();
        let off = 5;
        let valid = |i: usize| (bits[(off + i) / 8] >> ((off + i) % 8)) & 1 == 1;
        let kept: Vec<f64> = vals.iter().enumerate().filter(|(i, _)| valid(*i)).map(|(_, &v)| v).collect();
        let (mut m, mut k) = (NumericAcc::default(), NumericAcc::default());
        m.update(&vals, Some(Bitmap { bits: &bits, offset: off }));
        k.update(&kept, None);
        assert_eq!((m.count(), m.nulls + k.count()), (k.count(), 300));
        assert_eq!(m, NumericAcc { nulls: m.nulls, ..k.clone() }, "integer values: the same exact sums");
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
        assert_eq!((a.count(), a.nulls), (kept.len() as u64, (n - kept.len()) as u64));
        assert!((a.variance() - var).abs() < 1e-12 * var && (a.summary().mean - mean).abs() < 1e-12);
    }

    /// Exact sums from a brute-force oracle: i128 sums, the variance numerator in f64 from exact integers.
    fn oracle(v: &[i64]) -> (u64, i128, f64, f64) {
        let n = v.len() as i128;
        let s: i128 = v.iter().map(|&x| x as i128).sum();
        let mean = s as f64 / n as f64;
        let m2: f64 = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum();
        (v.len() as u64, s, mean, m2)
    }

    #[test]
    fn integers_are_summed_exactly_in_any_order_and_batching() {
        let mut seed = 12345u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for scale in [3u64, 1 << 20, 1 << 40, EXACT_LIMIT as u64] {
            let v: Vec<i64> = (0..5000).map(|_| (next() % (2 * scale + 1)) as i64 - scale as i64).collect();
            let mut one = NumericAcc::default();
            one.update(&v, None);
            let (n, s, mean, m2) = oracle(&v);
            assert_eq!((one.ints.count, one.ints.sum), (n, s), "scale {scale}");
            let sm = one.summary();
            assert!((sm.mean - mean).abs() <= 1e-12 * mean.abs().max(1.0), "scale {scale}");
            assert!((sm.m2 - m2).abs() <= 1e-9 * m2, "scale {scale}: {} vs {m2}", sm.m2);
            // batched in uneven pieces, merged in reverse, as floats: the same bits
            let mut merged = NumericAcc::default();
            for part in v.chunks(777).rev() {
                let f: Vec<f64> = part.iter().map(|&x| x as f64).collect();
                let mut a = NumericAcc::default();
                a.update(&f, None);
                merged.merge(&a);
            }
            assert_eq!(merged, one, "scale {scale}");
            assert_eq!(NumericAcc::from_bytes(&one.to_bytes()).unwrap(), one);
        }
        // counted values: the same sums as the values one by one, and 2^53 counted 3 * 2^40 times exactly
        // (sum 3 * 2^93, sum of squares 3 * 2^146: 3 * 2^18 in the high 64 bits)
        let mut counted = ExactInts::default();
        counted.add_value(-5, 7);
        counted.add_value(0, 2);
        let mut block = vec![-5i64, -5, -5, -5, -5, -5, -5, 0, 0];
        assert_eq!(counted, exact_block(&mut block, &[(1 << 9) - 1]));
        let mut big = ExactInts::default();
        big.add_value(EXACT_LIMIT, 3 << 40);
        assert_eq!((big.sum, big.sq_lo, big.sq_hi), (3i128 << 93, 0, 3 << 18));
        // a mean of -3.5 and the extremes of the exact range
        let mut a = NumericAcc::default();
        a.update(&[-3i64, -4, EXACT_LIMIT, -EXACT_LIMIT], None);
        assert_eq!((a.ints.count, a.ints.sum, a.ints.min, a.ints.max), (4, -7, -EXACT_LIMIT, EXACT_LIMIT));
        assert_eq!(a.summary().mean, -7.0 / 4.0);
        // a mean rounds as the division does, whatever the sign
        let (mut neg, mut pos) = (NumericAcc::default(), NumericAcc::default());
        neg.update(&[-1i64, 0, 0], None);
        pos.update(&[1i64, 0, 0], None);
        assert_eq!((neg.summary().mean, pos.summary().mean), (-1.0 / 3.0, 1.0 / 3.0));
        // floats merged into an empty summary stay as they are
        let mut f = NumericAcc::default();
        f.update(&[1e200f64 + 0.5e200, 1e200 + 0.5e200], None);
        assert_eq!(f.variance(), 0.0);
    }

    #[test]
    fn fractions_and_huge_integers_go_to_the_float_part() {
        let mut a = NumericAcc::default();
        a.update(&[1.5f64, 2.0, -0.0, f64::NAN, 1e300, 4.0], None);
        assert_eq!((a.ints.count, a.floats.count, a.nulls, a.ints.zeros), (3, 2, 1, 1));
        let mut b = NumericAcc::default();
        b.update(&[EXACT_LIMIT + 2, 5], None);
        assert_eq!((b.ints.count, b.floats.count), (1, 1));
        let mut u = NumericAcc::default();
        u.update(&[u64::MAX, 7u64], None);
        assert_eq!((u.ints.count, u.floats.count, u.summary().max), (1, 1, u64::MAX as f64));
        let s = a.summary();
        let vals = [1.5f64, 2.0, 0.0, 1e300, 4.0];
        assert_eq!((s.count, s.min, s.max), (5, 0.0, 1e300));
        assert!((s.mean - vals.iter().sum::<f64>() / 5.0).abs() < 1e286);
    }
}

//! Counting one field's column into its [`CategoricalAcc`], straight into a dense table when the
//! values allow it.
//!
//! A [`FieldCounter`] keeps a pending [`DenseCounter`] next to the accumulator: blocks whose values are
//! non-negative integers below the dense capacity (integer columns, integer-valued floats such as the
//! numbers of a CSV file) are counted with one increment per row into u32 cells indexed by value, with
//! no key conversion, hashing or per-value mode checks; other blocks go through
//! [`CategoricalAcc::update`]. The pending table is added to the accumulator (under the keys the
//! general path gives the same values, see [`KeyMap`]) when the accumulator is read, merged or
//! serialised, so both paths give exactly the same accumulator.
use crate::cat::{CategoricalAcc, RawFn};
use crate::error::Result;
use crate::hash::{float_key, prefetch, KeyMap};
use crate::matrix::Code;
use crate::numeric::{Bitmap, NumValue};

/// Rows per block: the range of a block is checked while it is in cache, then it is counted.
const BLOCK: usize = 8192;

/// Smallest and largest value of `col` as signed integers ((i64::MAX, i64::MIN) when empty), in one
/// pass the compiler vectorises (eight independent running min/max pairs), compiled for AVX-512 where
/// the CPU has it (64-bit integer min/max in one instruction; AVX2 needs compare and blend).
pub(crate) fn min_max<T: Code>(col: &[T]) -> (i64, i64) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,avx512f,avx512vl")]
        unsafe fn avx512<T: Code>(col: &[T]) -> (i64, i64) {
            min_max_portable(col)
        }
        if std::arch::is_x86_feature_detected!("avx512vl") {
            // SAFETY: the CPU supports AVX-512 F/VL (checked just above; VL implies F).
            return unsafe { avx512(col) };
        }
    }
    min_max_portable(col)
}

#[inline(always)]
fn min_max_portable<T: Code>(col: &[T]) -> (i64, i64) {
    let fold = |(a, b): (i64, i64), k: i64| (a.min(k), b.max(k));
    let (mut lo, mut hi) = ([i64::MAX; 8], [i64::MIN; 8]);
    let chunks = col.chunks_exact(8);
    let rest = chunks.remainder().iter().map(|v| v.key() as i64).fold((i64::MAX, i64::MIN), fold);
    for chunk in chunks {
        for j in 0..8 {
            let k = chunk[j].key() as i64;
            lo[j] = lo[j].min(k);
            hi[j] = hi[j].max(k);
        }
    }
    lo.iter().zip(&hi).fold(rest, |(a, b), (&l, &h)| (a.min(l), b.max(h)))
}

/// Dense-table slots of float values (`v + 1` for an integer value `v`, 0 for NaN) into `out`, with
/// whether every value is NaN or an integer in `[0, cap)` (a round trip through i64 is exact for those)
/// and the largest slot. One pass, compiled for AVX-512 DQ where present (vector f64 <-> i64 conversions).
fn float_slots<F: Float>(block: &[F], cap: u64, out: &mut [u32]) -> (bool, u32) {
    #[inline(always)]
    fn portable<F: Float>(block: &[F], cap: u64, out: &mut [u32]) -> (bool, u32) {
        let (mut whole, mut hi) = (true, 0u32);
        for (o, v) in out.iter_mut().zip(block) {
            let x = v.f64();
            let i = x as i64; // saturating; NaN gives 0
            let nan = x.is_nan();
            whole &= nan | ((i >= 0) & ((i as u64) < cap) & (i as f64 == x));
            *o = ((i as u32).wrapping_add(1)) * (!nan as u32);
            hi = hi.max(*o);
        }
        (whole, hi)
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,avx512f,avx512dq,avx512vl")]
        unsafe fn avx512<F: Float>(block: &[F], cap: u64, out: &mut [u32]) -> (bool, u32) {
            portable(block, cap, out)
        }
        if std::arch::is_x86_feature_detected!("avx512dq") && std::arch::is_x86_feature_detected!("avx512vl") {
            // SAFETY: the CPU supports AVX-512 F/DQ/VL (checked just above).
            return unsafe { avx512(block, cap, out) };
        }
    }
    portable(block, cap, out)
}

/// Validity of row `r` (0 or 1) from an Arrow bitmap.
#[inline(always)]
fn bit(b: &Bitmap, r: usize) -> usize {
    let i = b.offset + r;
    ((b.bits[i >> 3] >> (i & 7)) & 1) as usize
}

/// One field's accumulator with a pending dense table of values counted directly (slot 0: null rows,
/// slot `v + 1`: value `v`), keyed by `map` when it is added to the accumulator.
#[derive(Clone, Debug)]
pub struct FieldCounter {
    acc: CategoricalAcc,
    dense: DenseCounter,
    map: KeyMap,
    /// Rows in `dense` (its u32 cells are added to the accumulator before they could overflow).
    pending: u64,
    /// Rows given to this counter so far (bounds the dense table of a float-keyed field, below).
    rows: u64,
}

impl FieldCounter {
    pub fn new(acc: CategoricalAcc) -> Self {
        let l = acc.config().n_labels;
        FieldCounter { acc, dense: DenseCounter::new(l), map: KeyMap::Int, pending: 0, rows: 0 }
    }

    /// The accumulator with every pending count added.
    pub fn acc(&mut self) -> &CategoricalAcc {
        self.settle();
        &self.acc
    }

    /// The accumulator with every pending count added, mutable (e.g. to merge into it).
    pub fn acc_mut(&mut self) -> &mut CategoricalAcc {
        self.settle();
        &mut self.acc
    }

    pub fn into_acc(mut self) -> CategoricalAcc {
        self.settle();
        self.acc
    }

    /// The accumulator as it is, without the pending dense counts (configuration queries).
    pub fn peek(&self) -> &CategoricalAcc {
        &self.acc
    }

    /// Add the pending dense table to the accumulator.
    pub fn settle(&mut self) {
        if self.pending == 0 {
            return;
        }
        let l = self.acc.config().n_labels;
        let (nulls, counts) = std::mem::replace(&mut self.dense, DenseCounter::new(l)).into_counts_from(1);
        self.pending = 0;
        // both only fail on shapes this counter builds right
        self.acc.add_nulls(&nulls).expect("one null count per label pattern");
        self.acc.add_dense(counts, self.map).expect("whole pattern rows, no kept values");
    }

    /// Prepare to count `n` more rows directly under `map`: settle first if the map changes or the u32
    /// cells could overflow. False when this accumulator cannot take direct counts (it keeps raw values).
    fn start(&mut self, n: usize, map: KeyMap) -> bool {
        if self.acc.keeps_values() || n as u64 >= u32::MAX as u64 {
            return false; // (a single column of 2^32 rows would overflow a u32 cell)
        }
        if self.pending > 0 && (map != self.map || self.pending + n as u64 >= u32::MAX as u64) {
            self.settle();
        }
        self.map = map;
        self.rows += n as u64;
        true
    }

    /// Whether a block whose largest value is `hi` goes to the dense table: below the dense capacity,
    /// and for float keys (whose general table is hashed, sized by distinct values, not by the largest
    /// one) no larger than a few times the rows seen, so a sparse column does not get a huge table.
    fn fits(&self, hi: u64) -> bool {
        let cap = self.acc.config().dense_capacity();
        hi < cap && (self.map == KeyMap::Int || hi < (1 << 20).max(4 * self.rows))
    }

    /// Count an integer column (`valid`: Arrow validity bitmap, clear = null) keyed by `map`.
    pub fn count_ints<T: Code + NumValue>(&mut self, values: &[T], valid: Option<Bitmap>, pats: &[u8], map: KeyMap) -> Result<()> {
        self.count_ints_in(values, valid, pats, map, None)
    }

    /// [`count_ints`](Self::count_ints) with the column's smallest and largest value (every slot, nulls
    /// too) when the caller has them already (saves a pass).
    pub fn count_ints_in<T: Code + NumValue>(&mut self, values: &[T], valid: Option<Bitmap>, pats: &[u8], map: KeyMap,
                                             range: Option<(i64, i64)>) -> Result<()> {
        check_len(values.len(), pats.len())?;
        let direct = self.start(values.len(), map);
        let count = |this: &mut Self, r0: usize, r1: usize, hi: i64| {
            this.dense.reserve(hi as usize + 2, this.acc.config().dense_capacity() as usize + 1);
            match &valid {
                None => this.dense.count_with(|r| values[r].key() as usize + 1, r0, r1, pats),
                Some(b) => this.dense.count_with(|r| (values[r].key() as usize + 1) * bit(b, r), r0, r1, pats),
            }
            this.pending += (r1 - r0) as u64;
        };
        // the usual case (every value in range) is decided for the whole column in one pass
        let (lo, hi) = range.unwrap_or_else(|| min_max(values));
        if direct && lo >= 0 && self.fits(hi as u64) {
            count(self, 0, values.len(), hi);
            return Ok(());
        }
        let mut keys = Vec::new();
        let mut ok = Vec::new();
        for r0 in (0..values.len()).step_by(BLOCK) {
            let r1 = (r0 + BLOCK).min(values.len());
            let (lo, hi) = min_max(&values[r0..r1]);
            if direct && lo >= 0 && self.fits(hi as u64) {
                count(self, r0, r1, hi);
            } else {
                keys.clear();
                keys.extend(values[r0..r1].iter().map(|&v| if map == KeyMap::Float { float_key(NumValue::f64(v)) } else { v.key() }));
                let v = validity(&valid, r0, r1, &mut ok);
                self.acc.update(&keys, v, &pats[r0..r1], None)?;
            }
        }
        Ok(())
    }

    /// Count a float column by float value: NaN and rows whose `valid` bit is clear are null. Blocks of
    /// non-negative integer values go to the dense table.
    pub fn count_floats<F: Float>(&mut self, values: &[F], valid: Option<Bitmap>, pats: &[u8]) -> Result<()> {
        check_len(values.len(), pats.len())?;
        let direct = self.start(values.len(), KeyMap::Float);
        let cap = self.acc.config().dense_capacity().min(u32::MAX as u64 - 1);
        let mut slots = vec![0u32; BLOCK.min(values.len())];
        let mut keys = Vec::new();
        let mut ok = Vec::new();
        for r0 in (0..values.len()).step_by(BLOCK) {
            let r1 = (r0 + BLOCK).min(values.len());
            let block = &values[r0..r1];
            let slots = &mut slots[..r1 - r0];
            // each value's slot (0 for NaN) in one pass, and whether all are NaN or integers in [0, cap)
            let (whole, hi) = float_slots(block, cap, slots);
            if direct && whole && self.fits(hi.saturating_sub(1) as u64) {
                self.dense.reserve(hi as usize + 1, cap as usize + 1);
                match &valid {
                    None => self.dense.count_with(|r| slots[r - r0] as usize, r0, r1, pats),
                    Some(b) => self.dense.count_with(|r| slots[r - r0] as usize * bit(b, r), r0, r1, pats),
                }
                self.pending += (r1 - r0) as u64;
            } else {
                keys.clear();
                keys.extend(block.iter().map(|v| float_key(v.f64())));
                let v = validity(&valid, r0, r1, &mut ok);
                let nan = block.iter().any(|v| v.f64().is_nan());
                let v = if nan {
                    if v.is_none() {
                        ok.clear();
                        ok.resize(r1 - r0, true);
                    }
                    for (o, x) in ok.iter_mut().zip(block) {
                        *o &= !x.f64().is_nan();
                    }
                    Some(&ok[..])
                } else {
                    v
                };
                self.acc.update(&keys, v, &pats[r0..r1], None)?;
            }
        }
        Ok(())
    }

    /// Count precomputed keys (general path; `raw(i)`: raw bytes of row i when values are kept).
    pub fn count_keys<'r>(&mut self, keys: &[u64], valid: Option<&[bool]>, pats: &[u8], raw: Option<&RawFn<'r>>) -> Result<()> {
        self.rows += keys.len() as u64;
        self.acc.update(keys, valid, pats, raw)
    }

    /// Add the counts of a dictionary-encoded chunk of integers counted elsewhere (a Parquet column chunk):
    /// `counts` holds one row of 2^L cells per slot (slot 0: null rows, slot j + 1: `values[j]`), keyed by
    /// `map`; `rows`: the rows counted. The entries go to the dense table when their values fit it (as
    /// [`count_ints_in`](Self::count_ints_in) counts them), else to the accumulator under the same keys.
    pub fn add_dictionary_counts(&mut self, rows: u64, counts: &[u64], values: &[i64], map: KeyMap) -> Result<()> {
        let p = 1usize << self.acc.config().n_labels;
        let used = |c: &[u64]| c.iter().any(|&x| x != 0);
        let slots: Vec<(usize, &[u64])> = counts.chunks_exact(p).enumerate().filter(|(_, c)| used(c)).collect();
        let (lo, hi) = slots.iter().filter(|(s, _)| *s > 0)
            .fold((i64::MAX, i64::MIN), |(lo, hi), (s, _)| (lo.min(values[s - 1]), hi.max(values[s - 1])));
        let direct = rows < u32::MAX as u64 && self.start(rows as usize, map);
        if direct && (slots.iter().all(|(s, _)| *s == 0) || (lo >= 0 && self.fits(hi as u64))) {
            let top = if hi >= 0 { hi as usize + 2 } else { 1 };
            self.dense.reserve(top, self.acc.config().dense_capacity() as usize + 1);
            for (s, c) in &slots {
                let code = if *s == 0 { 0 } else { values[s - 1] as usize + 1 };
                self.dense.add(code, c);
            }
            self.pending += rows;
            return Ok(());
        }
        if !direct {
            self.rows += rows;
        }
        let key = |j: usize| if map == KeyMap::Float { float_key(values[j] as f64) } else { values[j] as u64 };
        self.add_slots(&slots, key, |_| None)
    }

    /// Add the counts of a dictionary-encoded chunk counted elsewhere, entry by entry: `counts` as in
    /// [`add_dictionary_counts`](Self::add_dictionary_counts), entry j added under `key(j)` with its raw bytes
    /// `raw(j)` (for an accumulator that keeps values).
    pub fn add_keyed_counts<'r>(&mut self, rows: u64, counts: &[u64], key: impl Fn(usize) -> u64,
                                raw: impl Fn(usize) -> Option<&'r [u8]>) -> Result<()> {
        let p = 1usize << self.acc.config().n_labels;
        self.rows += rows;
        let slots: Vec<(usize, &[u64])> = counts.chunks_exact(p).enumerate().filter(|(_, c)| c.iter().any(|&x| x != 0)).collect();
        self.add_slots(&slots, key, raw)
    }

    /// The used slots of a dictionary chunk's counts added to the accumulator (slot 0: null rows).
    fn add_slots<'r>(&mut self, slots: &[(usize, &[u64])], key: impl Fn(usize) -> u64,
                     raw: impl Fn(usize) -> Option<&'r [u8]>) -> Result<()> {
        let mut nulls = vec![0u64; 1usize << self.acc.config().n_labels];
        for &(s, c) in slots {
            if s == 0 {
                nulls.iter_mut().zip(c).for_each(|(a, &b)| *a += b);
            } else {
                self.acc.add_counts(key(s - 1), c, raw(s - 1))?;
            }
        }
        self.acc.add_nulls(&nulls)
    }

    /// Count a dictionary-encoded column: the rows' dictionary indices (`valid` clear = null) are counted
    /// into a table of the dictionary's size, then each used entry is added once under `key(j)` (None: a
    /// null dictionary value) with raw bytes `raw(j)` when values are kept. For dictionaries no larger
    /// than the rows; otherwise the caller counts keys.
    pub fn count_dictionary<'r, T: Code>(
        &mut self,
        indices: &[T],
        valid: Option<Bitmap>,
        pats: &[u8],
        dict_len: usize,
        key: &dyn Fn(usize) -> Option<u64>,
        raw: &dyn Fn(usize) -> &'r [u8],
    ) -> Result<()> {
        check_len(indices.len(), pats.len())?;
        self.rows += indices.len() as u64;
        let (lo, hi) = min_max(indices);
        if !indices.is_empty() && (lo < 0 || hi as u64 >= dict_len as u64) {
            return Err(crate::error::Error::Input(format!("dictionary index {} outside the dictionary of {dict_len}", if lo < 0 { lo } else { hi })));
        }
        let l = self.acc.config().n_labels;
        let mut table = DenseCounter::new(l);
        table.reserve(dict_len + 1, dict_len + 1);
        match &valid {
            None => table.count_with(|r| indices[r].key() as usize + 1, 0, indices.len(), pats),
            Some(b) => table.count_with(|r| (indices[r].key() as usize + 1) * bit(b, r), 0, indices.len(), pats),
        }
        let counts = table.into_counts();
        let p = 1usize << l;
        let mut nulls = vec![0u64; p];
        for (slot, c) in counts.chunks_exact(p).enumerate() {
            if c.iter().all(|&x| x == 0) {
                continue;
            }
            match slot.checked_sub(1).and_then(key) {
                None => nulls.iter_mut().zip(c).for_each(|(a, &b)| *a += b),
                Some(k) => {
                    let keep = self.acc.keeps_values();
                    self.acc.add_counts(k, c, if keep { Some(raw(slot - 1)) } else { None })?;
                }
            }
        }
        self.acc.add_nulls(&nulls)
    }
}

fn check_len(n: usize, pats: usize) -> Result<()> {
    if n != pats {
        return Err(crate::error::Error::Input(format!("{n} values for {pats} label patterns")));
    }
    Ok(())
}

/// Rows `r0..r1` of a validity bitmap as bools in `out` (None when there is no bitmap).
fn validity<'o>(valid: &Option<Bitmap>, r0: usize, r1: usize, out: &'o mut Vec<bool>) -> Option<&'o [bool]> {
    let b = valid.as_ref()?;
    out.clear();
    out.extend((r0..r1).map(|r| bit(b, r) == 1));
    Some(out)
}

/// Float values read in place (f32 / f64 columns).
pub trait Float: Copy + Send + Sync {
    fn f64(self) -> f64;
}
impl Float for f64 {
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
}
impl Float for f32 {
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
}

/// Dense joint counts of one field's codes with the rows' label patterns, in u32 cells (callers
/// keep rows below 2^32 and [`reserve`](Self::reserve) room for each block's largest code first):
/// cell `(code << L) | pattern`, the layout of a dense [`CategoricalAcc`].
///
/// Two memory effects decide the speed. Small tables stay in L1, but consecutive rows often hit the
/// same hot cell and each increment waits for the previous store: four copies of the table side by
/// side (row r counts into copy r mod 4, summed at the end) break that chain. Large tables miss the cache on most
/// rows: the cell of the row `PREFETCH_AHEAD` rows ahead is prefetched so several misses overlap.
#[derive(Clone, Debug)]
pub(crate) struct DenseCounter {
    cells: Vec<u32>,
    /// codes below `used` were seen; the table has room for codes below `card`
    used: usize,
    card: usize,
    width: usize,
    shift: u32,
    lanes: usize,
}

const SMALL_TABLE_CELLS: usize = 1 << 12;
const LARGE_TABLE_CELLS: usize = 1 << 16;
const PREFETCH_AHEAD: usize = 64;

impl DenseCounter {
    pub(crate) fn new(n_labels: usize) -> Self {
        DenseCounter { cells: vec![], used: 0, card: 0, width: 0, shift: n_labels as u32, lanes: 1 }
    }

    /// Make room for codes below `card` (at most `cap` codes); counts so far are kept. Grows by at
    /// least a quarter so a slowly rising maximum costs few copies; the first block usually shows
    /// nearly the whole range, so little more than needed is ever allocated.
    pub(crate) fn reserve(&mut self, card: usize, cap: usize) {
        self.used = self.used.max(card);
        if card <= self.card {
            return;
        }
        let (old_width, old_lanes) = (self.width, self.lanes);
        self.card = card.max(self.card + self.card / 4).min(cap);
        self.width = self.card << self.shift;
        self.lanes = if self.width <= SMALL_TABLE_CELLS { 4 } else { 1 };
        if old_lanes == 1 && self.lanes == 1 {
            // same layout, longer: a large table is extended in place (realloc remaps, no copy)
            self.cells.resize(self.width, 0);
            return;
        }
        let old = std::mem::take(&mut self.cells);
        self.cells = vec![0; self.width * self.lanes];
        if old_width > 0 {
            // the copies only ever get added up, so the old ones all go to the first new copy
            for lane in old.chunks_exact(old_width) {
                for (o, &x) in self.cells.iter_mut().zip(lane) {
                    *o += x;
                }
            }
        }
    }

    /// Add `counts` (one per label pattern) to code `code`'s cells (room for it must be reserved).
    pub(crate) fn add(&mut self, code: usize, counts: &[u64]) {
        let base = code << self.shift;
        for (k, &c) in counts.iter().enumerate() {
            self.cells[base + k] += c as u32;
        }
    }

    #[inline(always)]
    pub(crate) fn count_with(&mut self, code: impl Fn(usize) -> usize, r0: usize, r1: usize, pats: &[u8]) {
        let (s, w) = (self.shift, self.width);
        let cell = |r: usize| (code(r) << s) | pats[r] as usize;
        let c = &mut self.cells[..];
        if self.lanes == 4 {
            let mut r = r0;
            while r + 4 <= r1 {
                c[cell(r)] += 1;
                c[w + cell(r + 1)] += 1;
                c[2 * w + cell(r + 2)] += 1;
                c[3 * w + cell(r + 3)] += 1;
                r += 4;
            }
            for r in r..r1 {
                c[cell(r)] += 1;
            }
        } else if w >= LARGE_TABLE_CELLS {
            let ahead = r1.saturating_sub(PREFETCH_AHEAD).max(r0);
            for r in r0..ahead {
                prefetch(c.as_ptr().wrapping_add(code(r + PREFETCH_AHEAD) << s));
                c[cell(r)] += 1;
            }
            for r in ahead..r1 {
                c[cell(r)] += 1;
            }
        } else {
            for r in r0..r1 {
                c[cell(r)] += 1;
            }
        }
    }

    /// The counts of codes below `first` summed per label pattern, and those of the codes from `first` on
    /// as a dense accumulator table (code `first` at slot 0).
    pub(crate) fn into_counts_from(self, first: usize) -> (Vec<u64>, Vec<u64>) {
        let p = 1usize << self.shift;
        let (used, width, split) = (self.used << self.shift, self.width.max(1), (first << self.shift).min(self.used << self.shift));
        let mut head = vec![0u64; p];
        let mut out: Vec<u64> = self.cells[split..used].iter().map(|&x| x as u64).collect();
        for (i, &x) in self.cells[..split].iter().enumerate() {
            head[i % p] += x as u64;
        }
        for lane in self.cells.chunks(width).skip(1) {
            for (i, &x) in lane[..split.min(lane.len())].iter().enumerate() {
                head[i % p] += x as u64;
            }
            for (o, &x) in out.iter_mut().zip(lane.get(split..).unwrap_or(&[])) {
                *o += x as u64;
            }
        }
        (head, out)
    }

    /// The counts of the codes seen as a dense accumulator table (copies summed, widened to u64).
    pub(crate) fn into_counts(self) -> Vec<u64> {
        let used = self.used << self.shift;
        let mut out: Vec<u64> = self.cells[..used].iter().map(|&x| x as u64).collect();
        for lane in self.cells.chunks(self.width.max(1)).skip(1) {
            for (o, &x) in out.iter_mut().zip(lane) {
                *o += x as u64;
            }
        }
        out
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::cat::CatConfig;
    use crate::hash::hash_bytes;

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s >> 33
        }
    }

    fn cfg(n_labels: usize, budget: usize) -> CatConfig {
        CatConfig { n_labels, budget_bytes: budget, ..CatConfig::default() }
    }

    /// The accumulator the general path builds: `update` with keys, validity and patterns.
    fn general(cfg: &CatConfig, keys: &[u64], valid: &[bool], pats: &[u8]) -> CategoricalAcc {
        let mut acc = CategoricalAcc::new(cfg.clone(), false).unwrap();
        acc.update(keys, Some(valid), pats, None).unwrap();
        acc
    }

    fn same(mut got: FieldCounter, want: &CategoricalAcc, what: &str) {
        let acc = got.acc();
        assert_eq!(acc.stats(), want.stats(), "{what}");
        assert_eq!(acc.to_bytes(), want.to_bytes(), "{what}");
        assert_eq!(acc.top_k(Some(5)), want.top_k(Some(5)), "{what}");
        assert_eq!(acc.is_approx(), want.is_approx(), "{what}");
    }

    /// Integer columns in batches (validity bitmap at a bit offset, a negative value in one batch, a
    /// late huge value, small and large tables, integer and float keys, small budgets that force bins)
    /// give exactly the accumulator of the general path.
    #[test]
    fn integer_columns_equal_the_general_path() {
        let mut r = rng(3);
        for &(card, budget, labels) in &[(3u64, 1usize << 24, 1usize), (5000, 1 << 24, 2), (300_000, 1 << 26, 1), (3000, 60_000, 1)] {
            for map in [KeyMap::Int, KeyMap::Float] {
                let n = 3 * BLOCK + 777;
                let mut vals: Vec<i64> = (0..n).map(|_| (r() % card) as i64).collect();
                vals[2 * BLOCK + 5] = -7; // a negative value: that block goes the general way
                if card == 5000 {
                    vals[n - 1] = 1 << 40; // beyond the dense capacity
                }
                let bits: Vec<u8> = (0..n / 8 + 2).map(|_| (r() & 0xff) as u8 | 0x81).collect();
                let off = 3;
                let valid: Vec<bool> = (0..n).map(|i| (bits[(off + i) / 8] >> ((off + i) % 8)) & 1 == 1).collect();
                let pats: Vec<u8> = (0..n).map(|_| (r() % (1 << labels)) as u8).collect();
                let c = cfg(labels, budget);
                let mut fc = FieldCounter::new(CategoricalAcc::new(c.clone(), false).unwrap());
                for (a, b) in [(0, 1000), (1000, 2 * BLOCK + 100), (2 * BLOCK + 100, n)] {
                    let bm = Bitmap { bits: &bits, offset: off + a };
                    fc.count_ints(&vals[a..b], Some(bm), &pats[a..b], map).unwrap();
                }
                let keys: Vec<u64> = vals.iter().map(|&v| if map == KeyMap::Float { float_key(v as f64) } else { v as u64 }).collect();
                let want = general(&c, &keys, &valid, &pats);
                // the column's range given by the caller: the same
                let mut given = FieldCounter::new(CategoricalAcc::new(c.clone(), false).unwrap());
                given.count_ints_in(&vals, Some(Bitmap { bits: &bits, offset: off }), &pats, map, Some(min_max(&vals))).unwrap();
                same(given, &want, &format!("range given, card {card}, budget {budget}, {map:?}"));
                same(fc, &want, &format!("card {card}, budget {budget}, {map:?}"));
            }
        }
    }

    /// Float columns (NaN as null, -0.0, a block of non-integers, integer values beyond the capacity)
    /// and a change of key map between batches.
    #[test]
    fn float_columns_and_mixed_maps_equal_the_general_path() {
        let mut r = rng(9);
        let n = 2 * BLOCK + 99;
        let vals: Vec<f64> = (0..n)
            .map(|i| match r() % 10 {
                0 => f64::NAN,
                1 => -0.0,
                _ if (BLOCK..BLOCK + 50).contains(&i) => (r() % 100) as f64 + 0.5,
                _ => (r() % 2000) as f64,
            })
            .collect();
        let pats: Vec<u8> = (0..n).map(|_| (r() % 2) as u8).collect();
        let c = cfg(1, 1 << 24);
        let mut fc = FieldCounter::new(CategoricalAcc::new(c.clone(), false).unwrap());
        fc.count_floats(&vals, None, &pats).unwrap();
        let keys: Vec<u64> = vals.iter().map(|&v| float_key(v)).collect();
        let valid: Vec<bool> = vals.iter().map(|v| !v.is_nan()).collect();
        let want = general(&c, &keys, &valid, &pats);
        same(fc.clone(), &want, "floats");
        // integers keyed by float value after the floats, then more floats: one float-keyed table
        let ints: Vec<i32> = (0..5000).map(|_| (r() % 3000) as i32).collect();
        let ip: Vec<u8> = (0..5000).map(|_| (r() % 2) as u8).collect();
        fc.count_ints(&ints, None, &ip, KeyMap::Float).unwrap();
        fc.count_floats(&vals[..100], None, &pats[..100]).unwrap();
        let mut want = want;
        let ik: Vec<u64> = ints.iter().map(|&v| float_key(v as f64)).collect();
        want.update(&ik, None, &ip, None).unwrap();
        want.update(&keys[..100], Some(&valid[..100]), &pats[..100], None).unwrap();
        same(fc.clone(), &want, "floats + ints as floats");
        // an integer-keyed batch after a float-keyed one: the pending table is settled first
        fc.count_ints(&ints, None, &ip, KeyMap::Int).unwrap();
        let ik: Vec<u64> = ints.iter().map(|&v| v as u64).collect();
        want.update(&ik, None, &ip, None).unwrap();
        same(fc, &want, "then integer keys");
    }

    /// A float-keyed dense table behaves as the hashed table it stands for: merging into and from it,
    /// counting keys into it, serialising, binning past the budget.
    #[test]
    fn float_keyed_dense_table_acts_as_hashed() {
        let mut r = rng(5);
        let c = cfg(1, 1 << 24);
        let vals: Vec<u32> = (0..20_000).map(|_| (r() % 700) as u32).collect();
        let pats: Vec<u8> = (0..20_000).map(|_| (r() % 2) as u8).collect();
        let keys: Vec<u64> = vals.iter().map(|&v| float_key(v as f64)).collect();
        let mut fc = FieldCounter::new(CategoricalAcc::new(c.clone(), false).unwrap());
        fc.count_ints(&vals, None, &pats, KeyMap::Float).unwrap();
        let mut direct = fc.into_acc();
        let want = general(&c, &keys, &vec![true; keys.len()], &pats);
        let back = CategoricalAcc::from_bytes(&direct.to_bytes()).unwrap();
        assert_eq!(back.stats(), want.stats());
        // merge both ways, then general keys on top
        let mut a = want.clone();
        a.merge(&direct).unwrap();
        direct.merge(&want).unwrap();
        assert_eq!(a.to_bytes(), direct.to_bytes());
        direct.update(&[float_key(0.25), 5], None, &[1, 0], None).unwrap();
        a.update(&[float_key(0.25), 5], None, &[1, 0], None).unwrap();
        assert_eq!(a.to_bytes(), direct.to_bytes());
        assert_eq!(a.stats(), direct.stats());
        // only value 0: a dense table as the general path keeps it
        let mut z = FieldCounter::new(CategoricalAcc::new(c.clone(), false).unwrap());
        z.count_ints(&[0i64, 0, 0], None, &[0, 1, 1], KeyMap::Float).unwrap();
        same(z, &general(&c, &[0, 0, 0], &[true; 3], &[0, 1, 1]), "zeros only");
    }

    /// Dictionary columns: counted by index and added once per entry, with raw values kept, null
    /// indices and null dictionary values, equal to counting the hashed values row by row.
    #[test]
    fn dictionary_counts_equal_row_by_row() {
        let mut r = rng(11);
        let words: Vec<Vec<u8>> = (0..40).map(|i| format!("w{}", i * 7919 % 1000).into_bytes()).collect();
        let n = 10_000;
        let idx: Vec<i32> = (0..n).map(|_| (r() % 40) as i32).collect();
        let bits: Vec<u8> = (0..n / 8 + 1).map(|_| (r() & 0xff) as u8 | 0x11).collect();
        let pats: Vec<u8> = (0..n).map(|_| (r() % 4) as u8).collect();
        let c = cfg(2, 1 << 24);
        let mut fc = FieldCounter::new(CategoricalAcc::new(c.clone(), true).unwrap());
        let key = |j: usize| if j == 3 { None } else { Some(hash_bytes(&words[j])) };
        let raw = |j: usize| &words[j][..];
        fc.count_dictionary(&idx, Some(Bitmap { bits: &bits, offset: 0 }), &pats, 40, &key, &raw).unwrap();
        let valid: Vec<bool> = (0..n).map(|i| (bits[i / 8] >> (i % 8)) & 1 == 1 && idx[i] != 3).collect();
        let keys: Vec<u64> = idx.iter().map(|&j| hash_bytes(&words[j as usize])).collect();
        let mut want = CategoricalAcc::new(c, true).unwrap();
        let rawf = |i: usize| &words[idx[i] as usize][..];
        want.update(&keys, Some(&valid), &pats, Some(&rawf)).unwrap();
        same(fc, &want, "dictionary");
    }
}

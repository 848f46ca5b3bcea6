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
/// pass the compiler vectorises (eight independent running min/max pairs).
pub(crate) fn min_max<T: Code>(col: &[T]) -> (i64, i64) {
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
        let mut counts = std::mem::replace(&mut self.dense, DenseCounter::new(l)).into_counts();
        self.pending = 0;
        let p = 1usize << l;
        let nulls: Vec<u64> = counts.drain(..p.min(counts.len())).collect();
        // both only fail on shapes this counter builds right
        if !nulls.is_empty() {
            self.acc.add_nulls(&nulls).expect("one null count per label pattern");
        }
        self.acc.add_dense(counts, self.map).expect("whole pattern rows, no kept values");
    }

    /// Prepare to count `n` more rows directly under `map`: settle first if the map changes or the u32
    /// cells could overflow. False when this accumulator cannot take direct counts (it keeps raw values).
    fn start(&mut self, n: usize, map: KeyMap) -> bool {
        if self.acc.keeps_values() {
            return false;
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
        check_len(values.len(), pats.len())?;
        let direct = self.start(values.len(), map);
        let mut keys = Vec::new();
        let mut ok = Vec::new();
        for r0 in (0..values.len()).step_by(BLOCK) {
            let r1 = (r0 + BLOCK).min(values.len());
            let (lo, hi) = min_max(&values[r0..r1]);
            if direct && lo >= 0 && self.fits(hi as u64) {
                self.dense.reserve(hi as usize + 2, self.acc.config().dense_capacity() as usize + 1);
                match &valid {
                    None => self.dense.count_with(|r| values[r].key() as usize + 1, r0, r1, pats),
                    Some(b) => self.dense.count_with(|r| (values[r].key() as usize + 1) * bit(b, r), r0, r1, pats),
                }
                self.pending += (r1 - r0) as u64;
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
        let cap = self.acc.config().dense_capacity() as f64;
        let mut keys = Vec::new();
        let mut ok = Vec::new();
        for r0 in (0..values.len()).step_by(BLOCK) {
            let r1 = (r0 + BLOCK).min(values.len());
            let block = &values[r0..r1];
            // every value NaN or an integer in [0, cap) (NaN is the maximum's identity via `max`)
            let whole = block.iter().fold(true, |a, v| {
                let x = v.f64();
                a & (x.is_nan() | ((x >= 0.0) & (x < cap) & (x == x.trunc())))
            });
            let hi = block.iter().fold(0.0f64, |m, v| m.max(v.f64()));
            if direct && whole && self.fits(hi as u64) {
                self.dense.reserve(hi as usize + 2, self.acc.config().dense_capacity() as usize + 1);
                // NaN as usize is 0; (v + 1) * usable puts NaN and null rows in slot 0
                let slot = |r: usize| {
                    let x = values[r].f64();
                    (x as usize + 1) * (!x.is_nan() as usize)
                };
                match &valid {
                    None => self.dense.count_with(slot, r0, r1, pats),
                    Some(b) => self.dense.count_with(|r| slot(r) * bit(b, r), r0, r1, pats),
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


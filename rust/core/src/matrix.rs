//! Whole-matrix statistics on in-memory integer code matrices (N rows x F fields, any strides):
//! MI of every field with every label, pairwise MI / CMI, in one call, in parallel.
//!
//! Fields are processed in groups; each group walks the rows in cache-sized blocks, so a C-order
//! (row-major) matrix is streamed once per group rather than once per field.
use crate::cat::{CatConfig, CategoricalAcc, FieldStats};
use crate::error::{Error, Result};
use crate::field::{min_max, DenseCounter};
use crate::pair::{PairAcc, PairStats};
use crate::sum::Estimator;
use rayon::prelude::*;

const BLOCK: usize = 8192;

/// A strided view of an N x F matrix of integer codes (strides in elements, non-negative).
#[derive(Clone, Copy)]
pub struct Codes<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub fields: usize,
    pub row_stride: usize,
    pub field_stride: usize,
}

pub trait Code: Copy + Send + Sync {
    fn key(self) -> u64;
}
macro_rules! code_impl {
    ($($t:ty),*) => {$(impl Code for $t { #[inline] fn key(self) -> u64 { self as i64 as u64 } })*};
}
code_impl!(i8, i16, i32, i64, u8, u16, u32);
impl Code for u64 {
    #[inline]
    fn key(self) -> u64 {
        self
    }
}

impl<'a, T: Code> Codes<'a, T> {
    pub fn new(data: &'a [T], rows: usize, fields: usize, row_stride: usize, field_stride: usize) -> Result<Self> {
        if rows > 0 && fields > 0 {
            let last = (rows - 1) * row_stride + (fields - 1) * field_stride;
            if last >= data.len() {
                return Err(Error::Input("code matrix strides point outside the buffer".into()));
            }
        }
        Ok(Codes { data, rows, fields, row_stride, field_stride })
    }
    #[inline]
    fn fill(&self, f: usize, r0: usize, out: &mut Vec<u64>) {
        out.clear();
        let r1 = (r0 + BLOCK).min(self.rows);
        let base = f * self.field_stride;
        if self.row_stride == 1 {
            out.extend(self.data[base + r0..base + r1].iter().map(|v| v.key()));
        } else {
            out.extend((r0..r1).map(|r| self.data[base + r * self.row_stride].key()));
        }
    }
    /// max+1 of each field (0 for an empty matrix); errors on negative codes.
    pub fn cards(&self) -> Result<Vec<u64>> {
        self.cards_of(&(0..self.fields).collect::<Vec<_>>())
    }

    /// Smallest and largest code of field `f` over rows `r0..r1` as signed values (one vectorisable
    /// pass when the column is contiguous); (i64::MAX, i64::MIN) for no rows.
    pub fn min_max(&self, f: usize, r0: usize, r1: usize) -> (i64, i64) {
        let base = f * self.field_stride;
        let fold = |(a, b): (i64, i64), k: i64| (a.min(k), b.max(k));
        if self.row_stride == 1 {
            min_max(&self.data[base + r0..base + r1])
        } else {
            (r0..r1).map(|r| self.data[base + r * self.row_stride].key() as i64).fold((i64::MAX, i64::MIN), fold)
        }
    }

    /// max+1 of the listed fields, in that order; errors on negative codes.
    pub fn cards_of(&self, fields: &[usize]) -> Result<Vec<u64>> {
        fields
            .par_iter()
            .map(|&f| {
                if self.rows == 0 {
                    return Ok(0);
                }
                let at = |r: usize| self.data[f * self.field_stride + r * self.row_stride].key() as i64;
                let (mn, mx) = self.min_max(f, 0, self.rows);
                if mn < 0 {
                    let r = (0..self.rows).find(|&r| at(r) < 0).unwrap_or(0);
                    return Err(Error::Input(format!("negative code {} at row {r}, field {f}", at(r))));
                }
                Ok(mx as u64 + 1)
            })
            .collect()
    }
}

/// Per-field accumulators over the whole matrix (fields in parallel groups).
pub fn field_accs<T: Code>(codes: &Codes<T>, pats: &[u8], cfg: &CatConfig) -> Result<Vec<CategoricalAcc>> {
    if pats.len() != codes.rows {
        return Err(Error::Input(format!("{} label rows for {} code rows", pats.len(), codes.rows)));
    }
    CategoricalAcc::new(cfg.clone(), false)?; // validates the configuration (label count, HLL precision)
    if let Some(&bad) = pats.iter().find(|&&q| q as usize >= 1 << cfg.n_labels) {
        return Err(Error::Input(format!("label pattern {bad} needs more than {} labels", cfg.n_labels)));
    }
    // u32 cells of the direct counter cannot overflow below 2^32 rows
    let direct = (codes.rows as u64) < u32::MAX as u64;
    // fields dealt round-robin to the groups, so neighbouring fields of similar cost (e.g. sorted by
    // cardinality) spread over the threads instead of piling into one group
    let groups = (rayon::current_num_threads() * 2).clamp(1, codes.fields.max(1));
    let chunks: Vec<Vec<usize>> = (0..groups).map(|g| (g..codes.fields).step_by(groups).collect()).collect();
    let res: Result<Vec<Vec<CategoricalAcc>>> = chunks
        .par_iter()
        .map(|group| {
            let mut counters = group
                .iter()
                .map(|_| FieldCounter::new(cfg, direct))
                .collect::<Result<Vec<_>>>()?;
            let mut buf = Vec::with_capacity(BLOCK);
            for r0 in (0..codes.rows).step_by(BLOCK) {
                let r1 = (r0 + BLOCK).min(codes.rows);
                for (counter, &f) in counters.iter_mut().zip(group) {
                    counter.count(codes, f, r0, r1, pats, &mut buf)?;
                }
            }
            counters.into_iter().map(FieldCounter::finish).collect()
        })
        .collect();
    let mut out: Vec<Option<CategoricalAcc>> = (0..codes.fields).map(|_| None).collect();
    for (group, accs) in chunks.iter().zip(res?) {
        for (&f, acc) in group.iter().zip(accs) {
            out[f] = Some(acc);
        }
    }
    Ok(out.into_iter().map(|a| a.expect("every field is in one group")).collect())
}

/// One field's counter in [`field_accs`]. Codes are counted straight from the column into a
/// [`DenseCounter`] while every block's codes lie in `0..CatConfig::dense_capacity` (the usual case
/// for encoded codes, checked per block while the block is in cache); a block with a negative or
/// huge code moves the field to the general [`CategoricalAcc::update`] path. Both paths give the
/// same accumulator.
enum FieldCounter {
    Direct { counter: DenseCounter, cfg: CatConfig },
    Generic(CategoricalAcc),
}

impl FieldCounter {
    fn new(cfg: &CatConfig, direct: bool) -> Result<Self> {
        Ok(if direct {
            FieldCounter::Direct { counter: DenseCounter::new(cfg.n_labels), cfg: cfg.clone() }
        } else {
            FieldCounter::Generic(CategoricalAcc::new(cfg.clone(), false)?)
        })
    }

    fn count<T: Code>(&mut self, codes: &Codes<T>, f: usize, r0: usize, r1: usize, pats: &[u8], buf: &mut Vec<u64>) -> Result<()> {
        if let FieldCounter::Direct { counter, cfg } = self {
            let (lo, hi) = codes.min_max(f, r0, r1);
            let cap = cfg.dense_capacity();
            if lo >= 0 && (hi as u64) < cap {
                counter.reserve(hi as usize + 1, cap as usize);
                counter.count(codes, f, r0, r1, pats);
                return Ok(());
            }
            let counts = std::mem::replace(counter, DenseCounter::new(0)).into_counts();
            *self = FieldCounter::Generic(CategoricalAcc::from_dense_counts(cfg.clone(), counts)?);
        }
        if let FieldCounter::Generic(acc) = self {
            codes.fill(f, r0, buf);
            acc.update(buf, None, &pats[r0..r1], None)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<CategoricalAcc> {
        match self {
            FieldCounter::Direct { counter, cfg } => CategoricalAcc::from_dense_counts(cfg, counter.into_counts()),
            FieldCounter::Generic(acc) => Ok(acc),
        }
    }
}

impl DenseCounter {
    /// Count rows `r0..r1` of field `f` of a code matrix.
    fn count<T: Code>(&mut self, codes: &Codes<T>, f: usize, r0: usize, r1: usize, pats: &[u8]) {
        let base = f * codes.field_stride;
        if codes.row_stride == 1 {
            let col = &codes.data[base..base + codes.rows];
            self.count_with(|r| col[r].key() as usize, r0, r1, pats);
        } else {
            let rs = codes.row_stride;
            self.count_with(|r| codes.data[base + r * rs].key() as usize, r0, r1, pats);
        }
    }
}

pub fn field_stats<T: Code>(codes: &Codes<T>, pats: &[u8], cfg: &CatConfig, est: Estimator) -> Result<Vec<FieldStats>> {
    Ok(field_accs(codes, pats, cfg)?.par_iter().map(|a| a.stats_with(est)).collect())
}

/// Pair statistics for the given (a, b) field pairs; each pair's table lives only while it is counted.
///
/// Codes are non-negative and below the cardinalities measured here, so a dense table (when it fits
/// the budget) is counted straight from the code columns: one increment per row, no key
/// conversion or bounds fallback. Larger tables go through [`PairAcc::update`] (hashed / binned).
pub fn pair_stats<T: Code>(
    codes: &Codes<T>,
    pats: &[u8],
    n_labels: usize,
    pairs: &[(usize, usize)],
    budget: usize,
    est: Estimator,
) -> Result<Vec<PairStats>> {
    if pats.len() != codes.rows {
        return Err(Error::Input(format!("{} label rows for {} code rows", pats.len(), codes.rows)));
    }
    if let Some(&(a, b)) = pairs.iter().find(|&&(a, b)| a >= codes.fields || b >= codes.fields) {
        return Err(Error::Input(format!("pair ({a}, {b}) out of range for {} fields", codes.fields)));
    }
    let mut used: Vec<usize> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    used.sort_unstable();
    used.dedup();
    let mut cards = vec![0u64; codes.fields];
    for (&f, c) in used.iter().zip(codes.cards_of(&used)?) {
        cards[f] = c;
    }
    if let Some(&bad) = pats.iter().find(|&&q| q as usize >= 1 << n_labels) {
        return Err(Error::Input(format!("label pattern {bad} needs more than {n_labels} labels")));
    }
    pairs
        .par_iter()
        .map(|&(a, b)| {
            let mut acc = PairAcc::new(n_labels, budget, Some((cards[a], cards[b])))?;
            if let Some((w, counts)) = acc.dense_counts_mut() {
                count_dense(codes, a, b, pats, n_labels, w, counts);
            } else {
                let (mut ba, mut bb) = (Vec::with_capacity(BLOCK), Vec::with_capacity(BLOCK));
                for r0 in (0..codes.rows).step_by(BLOCK) {
                    let r1 = (r0 + BLOCK).min(codes.rows);
                    codes.fill(a, r0, &mut ba);
                    codes.fill(b, r0, &mut bb);
                    acc.update(&ba, &bb, None, None, &pats[r0..r1])?;
                }
            }
            Ok(acc.stats_with(est))
        })
        .collect()
}

/// Count rows of fields (a, b) into a dense pair table (cell (x, y, q) at (x*w + y)*2^L + q).
/// Callers guarantee every code is below its cardinality (so every index is in range).
fn count_dense<T: Code>(codes: &Codes<T>, a: usize, b: usize, pats: &[u8], n_labels: usize, w: usize, counts: &mut [u64]) {
    let (rs, fs, n) = (codes.row_stride, codes.field_stride, codes.rows);
    let shift = n_labels as u32;
    if rs == 1 {
        let ca = &codes.data[a * fs..a * fs + n];
        let cb = &codes.data[b * fs..b * fs + n];
        if n_labels == 0 {
            for (x, y) in ca.iter().zip(cb) {
                counts[x.key() as usize * w + y.key() as usize] += 1;
            }
        } else {
            for ((x, y), &q) in ca.iter().zip(cb).zip(pats) {
                counts[((x.key() as usize * w + y.key() as usize) << shift) | q as usize] += 1;
            }
        }
    } else {
        for (r, &q) in pats.iter().enumerate().take(n) {
            let (x, y) = (codes.data[a * fs + r * rs].key() as usize, codes.data[b * fs + r * rs].key() as usize);
            counts[((x * w + y) << shift) | q as usize] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct dense counter gives exactly the accumulator `CategoricalAcc::update` builds: tiny
    /// tables (4 copies), medium, large (prefetching), a maximum that rises block by block, two
    /// labels, and a negative code in a late block (the field moves to the general path mid-way).
    #[test]
    fn direct_counting_equals_generic_update() {
        let n = 5 * BLOCK + 123;
        let mut seed = 11u64;
        let mut rnd = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed >> 33
        };
        let cols: Vec<Vec<i64>> = vec![
            (0..n).map(|_| (rnd() % 3) as i64).collect(),
            (0..n).map(|_| (rnd() % 5000) as i64).collect(),
            (0..n).map(|_| (rnd() % 300_000) as i64).collect(),
            (0..n).map(|r| (rnd() % (r as u64 + 1)) as i64).collect(),
            (0..n).map(|r| if r == 4 * BLOCK + 7 { -5 } else { (rnd() % 40) as i64 }).collect(),
        ];
        let f = cols.len();
        let col_major: Vec<i64> = cols.concat();
        let pats: Vec<u8> = (0..n).map(|_| (rnd() % 4) as u8).collect();
        let cfg = CatConfig { n_labels: 2, ..CatConfig::default() };
        let accs = field_accs(&Codes::new(&col_major, n, f, 1, n).unwrap(), &pats, &cfg).unwrap();
        for (j, col) in cols.iter().enumerate() {
            let mut want = CategoricalAcc::new(cfg.clone(), false).unwrap();
            want.update(&col.iter().map(|&k| k as u64).collect::<Vec<_>>(), None, &pats, None).unwrap();
            assert_eq!(accs[j].stats(), want.stats(), "field {j}");
            assert_eq!(accs[j].to_bytes(), want.to_bytes(), "field {j}");
        }
        assert!(field_accs(&Codes::new(&col_major, n, f, 1, n).unwrap(), &vec![4u8; n], &CatConfig::default()).is_err());
    }
    #[test]
    fn strided_equals_columnar() {
        let (n, f) = (20_000usize, 3usize);
        let row_major: Vec<i32> = (0..n * f).map(|i| ((i * 2654435761) % 97 % (5 + i % f * 10)) as i32).collect();
        let col_major: Vec<i32> = (0..f).flat_map(|j| (0..n).map(move |r| (r, j))).map(|(r, j)| row_major[r * f + j]).collect();
        let pats: Vec<u8> = (0..n).map(|r| (row_major[r * f] % 2) as u8).collect();
        let cfg = CatConfig::default();
        let e = Estimator::Plugin;
        let a = field_stats(&Codes::new(&row_major, n, f, f, 1).unwrap(), &pats, &cfg, e).unwrap();
        let b = field_stats(&Codes::new(&col_major, n, f, 1, n).unwrap(), &pats, &cfg, e).unwrap();
        assert_eq!(a, b);
        let pa = pair_stats(&Codes::new(&row_major, n, f, f, 1).unwrap(), &pats, 1, &[(0, 1), (1, 2)], 1 << 26, e).unwrap();
        let pb = pair_stats(&Codes::new(&col_major, n, f, 1, n).unwrap(), &pats, 1, &[(0, 1), (1, 2)], 1 << 26, e).unwrap();
        assert_eq!(pa, pb);
        // the dense direct count equals the generic (hashed) accumulator path
        let keys = |j: usize| (0..n).map(|r| row_major[r * f + j] as u64).collect::<Vec<_>>();
        let mut h = PairAcc::new(1, 1 << 26, None).unwrap();
        h.update(&keys(0), &keys(1), None, None, &pats).unwrap();
        assert_eq!(h.stats(), pa[0]);
        assert!(a[0].mi[0] > 0.1);
        // fields come back in input order (groups deal fields round-robin: on 1 thread, [0, 2] and [1])
        let a = crate::with_threads(Some(1), || field_stats(&Codes::new(&col_major, n, f, 1, n).unwrap(), &pats, &cfg, e))
            .unwrap()
            .unwrap();
        for j in 0..f {
            let one = field_stats(&Codes::new(&col_major[j * n..(j + 1) * n], n, 1, 1, n).unwrap(), &pats, &cfg, e).unwrap();
            assert_eq!(one[0], a[j], "field {j}");
        }
    }
}

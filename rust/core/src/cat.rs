//! Categorical field accumulator: exact frequency table of u64 keys jointly with binary labels.
//!
//! Each row has a label pattern `p` (bit i = label i, at most 8 labels, `P = 2^L` patterns); the
//! table stores `P` counts per key, so entropy, I(X; l_i), I(X; l_j | l_i), top-k and distinct
//! counts all come from one increment per row. Nulls form their own category in entropy and MI
//! (a "missing" bucket, as the encoder does) and are excluded from distinct counts.
//!
//! Storage modes (switches are automatic and depend only on the set of keys seen, never on their
//! order, so shard merges equal one pass):
//! * `Dense`: counts indexed by key for small non-negative integer codes (`key < dense_limit` and
//!   the array fits the budget): no hashing at all.
//! * `Hashed`: key -> slot map, for sparse/large keys and hashed strings (optionally keeping the
//!   raw bytes of each key so frequency tables can return strings).
//! * `Binned` (approximation, `approx = true`): when the exact table would exceed `budget_bytes`,
//!   keys are folded into `nbins` hashed bins (`bin = mix64(key) mod nbins`, power of two sized to
//!   half the budget). Entropy and MI are then computed on the binned variable: a coarsening, so
//!   they are lower bounds of the exact values (data-processing inequality). Distinct count comes
//!   from a HyperLogLog maintained from that point; top-k is unavailable.
use crate::codec::{Reader, Writer, KIND_CAT};
use crate::error::{Error, Result};
use crate::hash::{mix64, prefetch, KeyIndex, KeyMap};
use crate::hll::Hll;
use crate::sum::{c_ln_ratio, Estimator, FixedSum};

#[derive(Clone, Debug, PartialEq)]
pub struct CatConfig {
    /// Number of binary labels (0..=8).
    pub n_labels: usize,
    /// Integer keys below this use the dense array (if it also fits the budget).
    pub dense_limit: u64,
    /// Byte budget of this field's exact table before it falls back to bins.
    pub budget_bytes: usize,
    /// HyperLogLog precision (4..=18).
    pub hll_p: u8,
}

impl Default for CatConfig {
    fn default() -> Self {
        CatConfig { n_labels: 1, dense_limit: 1 << 24, budget_bytes: 256 << 20, hll_p: 14 }
    }
}

impl CatConfig {
    /// Largest key count a dense table may hold (dense limit and budget, 8 bytes per label pattern).
    pub fn dense_capacity(&self) -> u64 {
        self.dense_limit.min(self.budget_bytes as u64 / (8u64 << self.n_labels))
    }
}

/// Raw bytes of each hashed key (so value_counts can return strings).
#[derive(Clone, Debug, Default)]
struct Arena {
    data: Vec<u8>,
    offs: Vec<usize>, // start of slot i; slot i spans offs[i]..offs[i+1] (or data.len())
}

impl Arena {
    fn push(&mut self, b: &[u8]) {
        self.offs.push(self.data.len());
        self.data.extend_from_slice(b);
    }
    fn get(&self, i: usize) -> &[u8] {
        let end = self.offs.get(i + 1).copied().unwrap_or(self.data.len());
        &self.data[self.offs[i]..end]
    }
}

#[derive(Clone, Debug)]
enum Table {
    /// Slot `v` holds the counts of key `map.key(v)`. A float-keyed dense table only comes from
    /// [`CategoricalAcc::add_dense`] (integer values of a numeric field counted directly); it stands
    /// for the hashed table the same keys give and is turned into one before keys are added otherwise.
    Dense { counts: Vec<u64>, map: KeyMap },
    Hashed { index: KeyIndex, keys: Vec<u64>, counts: Vec<u64>, values: Option<Arena> },
    Binned { counts: Vec<u64>, hll: Hll },
}

/// Per-field statistics, computed from counts in an order-independent way.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldStats {
    pub rows: u64,
    pub nulls: u64,
    /// Exact distinct non-null keys (None when the field fell back to bins).
    pub distinct: Option<u64>,
    pub hll: f64,
    /// H(X) in nats (nulls as one category).
    pub entropy: f64,
    /// I(X; l_i) in nats, one per label.
    pub mi: Vec<f64>,
    /// I(X; l_i) / H(l_i): the share of the label's entropy explained (0 when H(l_i) = 0).
    pub nmi: Vec<f64>,
    /// Row-major L x L: [i * L + j] = I(X; l_j | l_i); diagonal 0.
    pub label_cmi: Vec<f64>,
    /// Positive count per label.
    pub positives: Vec<u64>,
    pub approx: bool,
}

#[derive(Clone, Debug)]
pub struct CategoricalAcc {
    cfg: CatConfig,
    p: usize,
    nulls: Vec<u64>,
    table: Table,
    keep_values: bool,
}

/// Raw bytes of row i of the current block.
pub type RawFn<'a> = dyn Fn(usize) -> &'a [u8] + 'a;

// key + index buckets (16 bytes, a quarter to half full: 48 on average)
const HASHED_SLOT_OVERHEAD: usize = 8 + 48;

/// Categories with at most this many rows are finalised through count-of-counts histograms.
const SMALL: usize = 256;

/// c·ln(c) for c = 0..=SMALL (0 for c = 0, 1).
fn clnc_table() -> &'static [f64] {
    static T: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    T.get_or_init(|| (0..=SMALL).map(|c| if c < 2 { 0.0 } else { c as f64 * (c as f64).ln() }).collect())
}

impl CategoricalAcc {
    /// `keep_values`: remember raw bytes of keys (for string/binary sources).
    pub fn new(cfg: CatConfig, keep_values: bool) -> Result<Self> {
        if cfg.n_labels > 8 {
            return Err(Error::Input(format!("at most 8 labels are supported, got {}", cfg.n_labels)));
        }
        Hll::new(cfg.hll_p)?;
        let p = 1usize << cfg.n_labels;
        let table = if keep_values {
            Table::Hashed { index: KeyIndex::default(), keys: vec![], counts: vec![], values: Some(Arena::default()) }
        } else {
            Table::Dense { counts: vec![], map: KeyMap::Int }
        };
        Ok(CategoricalAcc { cfg, p, nulls: vec![0; p], table, keep_values })
    }

    pub fn config(&self) -> &CatConfig {
        &self.cfg
    }
    pub fn is_approx(&self) -> bool {
        matches!(self.table, Table::Binned { .. })
    }
    pub fn keeps_values(&self) -> bool {
        self.keep_values
    }

    /// Approximate heap bytes of the table.
    pub fn memory_bytes(&self) -> usize {
        match &self.table {
            Table::Dense { counts, .. } => counts.len() * 8,
            Table::Hashed { keys, values, .. } => {
                keys.len() * (self.p * 8 + HASHED_SLOT_OVERHEAD) + values.as_ref().map_or(0, |a| a.data.len() + a.offs.len() * 8)
            }
            Table::Binned { counts, .. } => counts.len() * 8,
        }
    }

    fn nbins(&self) -> usize {
        let per = self.p * 8;
        let target = (self.cfg.budget_bytes / 2 / per).clamp(64, 1 << 22);
        1usize << (usize::BITS - 1 - target.leading_zeros()) // largest power of two <= target
    }

    /// Count a block of rows. `keys[i]` is the key of row i, `valid[i] == false` marks a null,
    /// `pats[i]` the row's label pattern, `raw(i)` the raw bytes of row i (only if keeping values).
    pub fn update<'r>(
        &mut self,
        keys: &[u64],
        valid: Option<&[bool]>,
        pats: &[u8],
        raw: Option<&RawFn<'r>>,
    ) -> Result<()> {
        if pats.len() != keys.len() || valid.map_or(false, |v| v.len() != keys.len()) {
            return Err(Error::Input("keys, validity and label patterns differ in length".into()));
        }
        if self.keep_values && raw.is_none() {
            return Err(Error::Input("this accumulator keeps raw values; pass them".into()));
        }
        if let Some(&bad) = pats.iter().find(|&&q| q as usize >= self.p) {
            return Err(Error::Input(format!("label pattern {bad} needs more than {} labels", self.cfg.n_labels)));
        }
        match valid {
            None => self.run(keys, &|_| true, pats, raw),
            Some(m) => self.run(keys, &|i| m[i], pats, raw),
        }
        Ok(())
    }

    fn run<'r, V: Fn(usize) -> bool>(&mut self, keys: &[u64], valid: &V, pats: &[u8], raw: Option<&RawFn<'r>>) {
        let (p, n) = (self.p, keys.len());
        if matches!(self.table, Table::Dense { map: KeyMap::Float, .. }) {
            self.to_hashed(); // keys come as they are from here on
        }
        let mut i = 0;
        while i < n {
            let budget = self.cfg.budget_bytes;
            let nbins = self.nbins();
            match &mut self.table {
                Table::Dense { counts, .. } => {
                    let card = (counts.len() / p) as u64;
                    while i < n {
                        if !valid(i) {
                            self.nulls[pats[i] as usize] += 1;
                        } else if keys[i] < card {
                            counts[keys[i] as usize * p + pats[i] as usize] += 1;
                        } else {
                            break;
                        }
                        i += 1;
                    }
                    if i < n {
                        self.grow_or_convert(keys[i].saturating_add(1));
                    }
                }
                Table::Hashed { index, keys: ks, counts, values } => {
                    const AHEAD: usize = 8;
                    let big = index.capacity() >= 1 << 16; // 1 MB of buckets: beyond the L2 cache
                    let mut bytes = ks.len() * (p * 8 + HASHED_SLOT_OVERHEAD) + values.as_ref().map_or(0, |a| a.data.len() + a.offs.len() * 8);
                    while i < n {
                        if !valid(i) {
                            self.nulls[pats[i] as usize] += 1;
                            i += 1;
                            continue;
                        }
                        if big {
                            // two stages ahead of row i: the bucket of row i + 16, then (its bucket now
                            // cached) the counts of row i + 8, so the misses of several rows overlap
                            if let Some(&k) = keys.get(i + 2 * AHEAD) {
                                index.prefetch(k);
                            }
                            if let Some(s) = keys.get(i + AHEAD).and_then(|&k| index.get(k)) {
                                prefetch(counts.as_ptr().wrapping_add(s as usize * p));
                            }
                        }
                        let k = keys[i];
                        let slot = match index.get(k) {
                            Some(s) => s as usize,
                            None => {
                                let rawb = raw.map(|f| f(i));
                                bytes += p * 8 + HASHED_SLOT_OVERHEAD + rawb.map_or(0, |b| b.len() + 8);
                                if bytes > budget {
                                    break;
                                }
                                let s = ks.len();
                                index.insert(k, s as u32);
                                ks.push(k);
                                counts.resize(counts.len() + p, 0);
                                if let (Some(a), Some(b)) = (values.as_mut(), rawb) {
                                    a.push(b);
                                }
                                s
                            }
                        };
                        counts[slot * p + pats[i] as usize] += 1;
                        i += 1;
                    }
                    if i < n {
                        self.to_binned();
                    }
                }
                Table::Binned { counts, hll } => {
                    let mask = (nbins - 1) as u64;
                    while i < n {
                        if !valid(i) {
                            self.nulls[pats[i] as usize] += 1;
                        } else {
                            let k = keys[i];
                            counts[(mix64(k) & mask) as usize * p + pats[i] as usize] += 1;
                            hll.insert(k);
                        }
                        i += 1;
                    }
                }
            }
        }
    }

    /// An accumulator holding exactly these dense counts (`counts[k * P + q]`: rows with key `k` and
    /// label pattern `q`, no nulls): what [`update`](Self::update) builds from the same rows when every
    /// key is below [`CatConfig::dense_capacity`]. Callers that count codes directly use it.
    pub fn from_dense_counts(cfg: CatConfig, counts: Vec<u64>) -> Result<Self> {
        let mut acc = CategoricalAcc::new(cfg, false)?;
        if counts.len() % acc.p != 0 || (counts.len() / acc.p) as u64 > acc.cfg.dense_capacity() {
            return Err(Error::Input(format!("{} dense counts do not fit this accumulator's dense table", counts.len())));
        }
        acc.table = Table::Dense { counts, map: KeyMap::Int };
        Ok(acc)
    }

    /// Add null rows counted elsewhere (per label pattern).
    pub fn add_nulls(&mut self, nulls: &[u64]) -> Result<()> {
        if nulls.len() != self.p {
            return Err(Error::Input(format!("{} null counts for {} label patterns", nulls.len(), self.p)));
        }
        for (a, &b) in self.nulls.iter_mut().zip(nulls) {
            *a += b;
        }
        Ok(())
    }

    /// Add the per-pattern counts of one key counted elsewhere (with its raw bytes when values are
    /// kept): the same table as counting its rows here, whatever the order of calls.
    pub fn add_counts(&mut self, key: u64, counts: &[u64], raw: Option<&[u8]>) -> Result<()> {
        if counts.len() != self.p {
            return Err(Error::Input(format!("{} counts for {} label patterns", counts.len(), self.p)));
        }
        if self.keep_values && raw.is_none() {
            return Err(Error::Input("this accumulator keeps raw values; pass them".into()));
        }
        self.add_entry(key, counts, raw);
        Ok(())
    }

    /// Add a dense table counted elsewhere: `counts[v * P + q]` rows with value `v` and label pattern `q`,
    /// value `v` counted under the key `map.key(v)`. Equal to counting those rows here. A table that fits
    /// the dense capacity is taken over as it is by an empty accumulator (a float-keyed one when its keys
    /// fit the budget as a hashed table, as they would when counted here); an integer table is added
    /// cell by cell to a dense one; otherwise key by key.
    pub fn add_dense(&mut self, mut counts: Vec<u64>, map: KeyMap) -> Result<()> {
        let p = self.p;
        if !counts.len().is_multiple_of(p) || self.keep_values {
            return Err(Error::Input("a dense table needs whole label-pattern rows and no kept values".into()));
        }
        let card = counts.len() / p;
        let empty = matches!(&self.table, Table::Dense { counts: own, .. } if own.iter().all(|&x| x == 0));
        if map == KeyMap::Float && empty && card as u64 <= self.cfg.dense_capacity() {
            let keys = counts.chunks_exact(p).filter(|c| c.iter().any(|&x| x > 0)).count();
            if keys * (p * 8 + HASHED_SLOT_OVERHEAD) <= self.cfg.budget_bytes {
                self.table = Table::Dense { counts, map };
                return Ok(());
            }
        }
        if map == KeyMap::Int && card as u64 <= self.cfg.dense_capacity() {
            if let Table::Dense { counts: own, map: KeyMap::Int } = &mut self.table {
                if empty {
                    *own = counts;
                } else {
                    if own.len() < counts.len() {
                        std::mem::swap(own, &mut counts);
                    }
                    for (a, &b) in own.iter_mut().zip(&counts) {
                        *a += b;
                    }
                }
                return Ok(());
            }
        }
        for (v, c) in counts.chunks_exact(p).enumerate() {
            if c.iter().any(|&x| x > 0) {
                self.add_entry(map.key(v as u64), c, None);
            }
        }
        Ok(())
    }

    /// Dense table must hold key `need - 1`: grow (doubling, capped) or move to the hashed table.
    fn grow_or_convert(&mut self, need: u64) {
        let (p, cap) = (self.p as u64, self.cfg.dense_capacity());
        if let Table::Dense { counts, map: KeyMap::Int } = &mut self.table {
            if need <= cap {
                let card = (counts.len() as u64 / p).max(16);
                let new = need.max(card.saturating_mul(2)).min(cap);
                counts.resize((new * p) as usize, 0);
                return;
            }
        }
        self.to_hashed();
    }

    fn to_hashed(&mut self) {
        let p = self.p;
        if let Table::Dense { counts, map } = &self.table {
            let mut index = KeyIndex::default();
            let (mut keys, mut out) = (vec![], vec![]);
            for (k, c) in counts.chunks_exact(p).enumerate() {
                if c.iter().any(|&x| x > 0) {
                    let key = map.key(k as u64);
                    index.insert(key, keys.len() as u32);
                    keys.push(key);
                    out.extend_from_slice(c);
                }
            }
            self.table = Table::Hashed { index, keys, counts: out, values: None };
            if self.memory_bytes() > self.cfg.budget_bytes {
                self.to_binned();
            }
        }
    }

    fn to_binned(&mut self) {
        if self.is_approx() {
            return;
        }
        let (p, nbins) = (self.p, self.nbins());
        let mut counts = vec![0u64; nbins * p];
        let mut hll = Hll::new(self.cfg.hll_p).expect("validated in new");
        self.for_each_key(|k, c, _| {
            let b = (mix64(k) & (nbins as u64 - 1)) as usize;
            for (o, &x) in counts[b * p..(b + 1) * p].iter_mut().zip(c) {
                *o += x;
            }
            hll.insert(k);
        });
        self.table = Table::Binned { counts, hll };
    }

    /// Visit every exact key with its per-pattern counts and raw bytes (if kept). Not for bins.
    fn for_each_key<'s>(&'s self, mut f: impl FnMut(u64, &'s [u64], Option<&'s [u8]>)) {
        let p = self.p;
        match &self.table {
            Table::Dense { counts, map } => {
                // Non-empty keys of each stretch are collected branch-free first: on a sparse table
                // a test-and-call per key mispredicts about every other key.
                const STRETCH: usize = 1024;
                let mut present = [0u32; STRETCH];
                for (s, stretch) in counts.chunks(STRETCH * p).enumerate() {
                    let mut m = 0;
                    for (j, c) in stretch.chunks_exact(p).enumerate() {
                        present[m] = j as u32;
                        m += (c.iter().fold(0, |a, &x| a | x) != 0) as usize;
                    }
                    for &j in &present[..m] {
                        let k = s * STRETCH + j as usize;
                        f(map.key(k as u64), &counts[k * p..(k + 1) * p], None)
                    }
                }
            }
            Table::Hashed { keys, counts, values, .. } => {
                for (s, (&k, c)) in keys.iter().zip(counts.chunks_exact(p)).enumerate() {
                    f(k, c, values.as_ref().map(|a| a.get(s)))
                }
            }
            Table::Binned { .. } => {}
        }
    }

    /// Visit every category (keys or bins, then the null bucket if non-empty) as per-pattern counts,
    /// with its key (None for a bin or the null bucket).
    fn for_each_category(&self, mut f: impl FnMut(Option<u64>, &[u64])) {
        match &self.table {
            Table::Binned { counts, .. } => {
                counts.chunks_exact(self.p).filter(|c| c.iter().any(|&x| x > 0)).for_each(|c| f(None, c))
            }
            _ => self.for_each_key(|k, c, _| f(Some(k), c)),
        }
        if self.nulls.iter().any(|&x| x > 0) {
            f(None, &self.nulls)
        }
    }

    /// Add one key's per-pattern counts (merge path; same mode rules as `update`).
    fn add_entry(&mut self, k: u64, c: &[u64], raw: Option<&[u8]>) {
        let p = self.p;
        loop {
            let nbins = self.nbins();
            let budget = self.cfg.budget_bytes;
            let bytes = self.memory_bytes();
            match &mut self.table {
                Table::Dense { map: KeyMap::Float, .. } => self.to_hashed(),
                Table::Dense { counts, .. } => {
                    if (k as usize) < counts.len() / p {
                        for (o, &x) in counts[k as usize * p..(k as usize + 1) * p].iter_mut().zip(c) {
                            *o += x;
                        }
                        return;
                    }
                    self.grow_or_convert(k.saturating_add(1));
                }
                Table::Hashed { index, keys, counts, values } => {
                    let slot = match index.get(k) {
                        Some(s) => s as usize,
                        None => {
                            if bytes + p * 8 + HASHED_SLOT_OVERHEAD + raw.map_or(0, |b| b.len() + 8) > budget {
                                self.to_binned();
                                continue;
                            }
                            index.insert(k, keys.len() as u32);
                            keys.push(k);
                            counts.resize(counts.len() + p, 0);
                            if let Some(a) = values.as_mut() {
                                a.push(raw.unwrap_or(&[]));
                            }
                            keys.len() - 1
                        }
                    };
                    for (o, &x) in counts[slot * p..(slot + 1) * p].iter_mut().zip(c) {
                        *o += x;
                    }
                    return;
                }
                Table::Binned { counts, hll } => {
                    let b = (mix64(k) & (nbins as u64 - 1)) as usize;
                    for (o, &x) in counts[b * p..(b + 1) * p].iter_mut().zip(c) {
                        *o += x;
                    }
                    hll.insert(k);
                    return;
                }
            }
        }
    }

    /// Merge `other` into `self`. Exactly equal to having counted both inputs in one pass.
    pub fn merge(&mut self, other: &CategoricalAcc) -> Result<()> {
        if other.cfg != self.cfg || other.keep_values != self.keep_values {
            return Err(Error::Input(format!(
                "cannot merge accumulators with different settings: {:?} (values kept: {}) vs {:?} (values kept: {})",
                self.cfg, self.keep_values, other.cfg, other.keep_values
            )));
        }
        for (a, &b) in self.nulls.iter_mut().zip(&other.nulls) {
            *a += b;
        }
        if let Table::Binned { counts: oc, hll: oh } = &other.table {
            self.to_binned();
            if let Table::Binned { counts, hll } = &mut self.table {
                for (a, &b) in counts.iter_mut().zip(oc) {
                    *a += b;
                }
                hll.merge(oh)?;
            }
            return Ok(());
        }
        other.for_each_key(|k, c, raw| self.add_entry(k, c, raw));
        Ok(())
    }

    /// Per-pattern totals over all rows.
    fn pattern_totals(&self) -> Vec<u64> {
        let mut tot = self.nulls.clone();
        let counts = match &self.table {
            Table::Dense { counts, .. } | Table::Hashed { counts, .. } | Table::Binned { counts, .. } => counts,
        };
        // empty cells add nothing, so every table is summed as a flat array of per-pattern rows
        for c in counts.chunks_exact(self.p) {
            for (t, &x) in tot.iter_mut().zip(c) {
                *t += x
            }
        }
        tot
    }

    pub fn rows(&self) -> u64 {
        self.pattern_totals().iter().sum()
    }

    /// Plug-in statistics.
    pub fn stats(&self) -> FieldStats {
        self.stats_with(Estimator::Plugin)
    }

    /// Statistics with entropy, MI, NMI and label CMI under `est` (see [`Estimator`]).
    pub fn stats_with(&self, est: Estimator) -> FieldStats {
        let (p, l) = (self.p, self.cfg.n_labels);
        let tot = self.pattern_totals();
        let n: u64 = tot.iter().sum();
        let bit = |q: usize, i: usize| (q >> i) & 1;
        // label marginals and pairwise label cells, from pattern totals
        let pos: Vec<u64> = (0..l).map(|i| (0..p).filter(|&q| bit(q, i) == 1).map(|q| tot[q]).sum()).collect();
        let pair_cell = |c: &[u64], i: usize, j: usize, zi: usize, yj: usize| -> u64 {
            (0..p).filter(|&q| bit(q, i) == zi && bit(q, j) == yj).map(|q| c[q]).sum()
        };
        let mut h = FixedSum::default();
        let mut mi = vec![FixedSum::default(); l];
        let mut cmi = vec![FixedSum::default(); l * l];
        // non-empty cell counts for Miller-Madow: categories (incl. the null bucket), (x, l_i),
        // and for I(X; l_j | l_i): (x, l_i) and (x, l_i, l_j)
        let mut m_x = 0u64;
        let mut m_xl = vec![0u64; l];
        let mut m_xlij = vec![0u64; l * l];
        let n128 = n as u128;
        // Categories with at most SMALL rows are summed through count-of-counts histograms (no log
        // per key): n·H gets S·ln n - Σ_c hx[c]·c ln c, n·I(X; l_i) gets Σ_c hm_i[c]·c ln c +
        // Σ_y S_iy ln(n / n_iy), where S = rows in small categories, S_iy those with l_i = y.
        // Larger categories use the exact-ratio terms. Both depend only on the counts.
        let mut hx = vec![0i64; SMALL + 1];
        let mut hm = vec![0i64; (SMALL + 1) * l];
        let mut s_small = 0u64;
        let mut s_y = vec![[0u64; 2]; l];
        // the sketch of an exact table is rebuilt in the same pass (a binned table keeps its own)
        let mut sketch = match &self.table {
            Table::Binned { hll, .. } => hll.clone(),
            _ => Hll::new(self.cfg.hll_p).expect("validated in new"),
        };
        self.for_each_category(|key, c| {
            if let Some(k) = key {
                sketch.insert(k);
            }
            m_x += 1;
            let cx: u64 = c.iter().sum();
            let small = cx as usize <= SMALL;
            if small {
                hx[cx as usize] += 1;
                s_small += cx;
            } else {
                h.add(c_ln_ratio(cx, n128, cx as u128));
            }
            for i in 0..l {
                let c1: u64 = (0..p).filter(|&q| bit(q, i) == 1).map(|q| c[q]).sum();
                let c0 = cx - c1;
                let (n1, n0) = (pos[i], n - pos[i]);
                m_xl[i] += (c1 > 0) as u64 + (c0 > 0) as u64;
                if small {
                    let row = &mut hm[i * (SMALL + 1)..(i + 1) * (SMALL + 1)];
                    row[c1 as usize] += 1;
                    row[c0 as usize] += 1;
                    row[cx as usize] -= 1;
                    s_y[i][1] += c1;
                    s_y[i][0] += c0;
                } else {
                    mi[i].add(c_ln_ratio(c1, c1 as u128 * n128, cx as u128 * n1 as u128));
                    mi[i].add(c_ln_ratio(c0, c0 as u128 * n128, cx as u128 * n0 as u128));
                }
                for j in 0..l {
                    if i == j {
                        continue;
                    }
                    for zi in 0..2 {
                        let nxz = if zi == 1 { c1 } else { c0 };
                        let nz = if zi == 1 { pos[i] } else { n - pos[i] };
                        for yj in 0..2 {
                            let cell = pair_cell(c, i, j, zi, yj);
                            m_xlij[i * l + j] += (cell > 0) as u64;
                            let nyz = pair_cell(&tot, i, j, zi, yj);
                            cmi[i * l + j].add(c_ln_ratio(cell, cell as u128 * nz as u128, nxz as u128 * nyz as u128));
                        }
                    }
                }
            }
        });
        let clnc = clnc_table();
        if s_small > 0 {
            h.add(s_small as f64 * (n as f64).ln());
            for (c, &k) in hx.iter().enumerate().filter(|x| *x.1 != 0) {
                h.add(-(k as f64) * clnc[c]);
            }
        }
        for i in 0..l {
            for (c, &k) in hm[i * (SMALL + 1)..(i + 1) * (SMALL + 1)].iter().enumerate().filter(|x| *x.1 != 0) {
                mi[i].add(k as f64 * clnc[c]);
            }
            for (y, ny) in [(0, n - pos[i]), (1, pos[i])] {
                if s_y[i][y] > 0 {
                    mi[i].add(s_y[i][y] as f64 * (n as f64 / ny as f64).ln());
                }
            }
        }
        let nulls: u64 = self.nulls.iter().sum();
        let distinct = m_x - (nulls > 0) as u64;
        let nf = n.max(1) as f64;
        let fin = |s: &FixedSum| (s.value() / nf).max(0.0);
        let m_l: Vec<u64> = pos.iter().map(|&q| (q > 0) as u64 + (n - q > 0) as u64).collect();
        let mi: Vec<f64> = (0..l).map(|i| est.mi(fin(&mi[i]), m_x, m_l[i], m_xl[i], n)).collect();
        let nmi = (0..l)
            .map(|i| {
                let hl = est.entropy(crate::sum::entropy_counts([pos[i], n - pos[i]]), m_l[i], n);
                if hl > 0.0 { mi[i] / hl } else { 0.0 }
            })
            .collect();
        let label_cmi = (0..l * l)
            .map(|ij| {
                let (i, j) = (ij / l, ij % l);
                if i == j {
                    return 0.0;
                }
                let m_lij = (0..4).filter(|&zy| pair_cell(&tot, i, j, zy >> 1, zy & 1) > 0).count() as u64;
                est.cmi(fin(&cmi[ij]), m_xl[i], m_lij, m_xlij[ij], m_l[i], n)
            })
            .collect();
        FieldStats {
            rows: n,
            nulls,
            distinct: if self.is_approx() { None } else { Some(distinct) },
            hll: sketch.estimate(),
            entropy: est.entropy(fin(&h), m_x, n),
            mi,
            nmi,
            label_cmi,
            positives: pos,
            approx: self.is_approx(),
        }
    }

    /// All exact keys as (key, count, raw bytes), sorted by count descending then key ascending;
    /// at most `k` entries (None: all). Empty for binned fields.
    pub fn top_k(&self, k: Option<usize>) -> Vec<(u64, u64, Option<Vec<u8>>)> {
        let mut v: Vec<(u64, u64, Option<&[u8]>)> = Vec::new();
        self.for_each_key(|key, c, raw| v.push((key, c.iter().sum(), raw)));
        let cmp = |a: &(u64, u64, Option<&[u8]>), b: &(u64, u64, Option<&[u8]>)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
        if let Some(k) = k {
            if k < v.len() {
                v.select_nth_unstable_by(k, cmp);
                v.truncate(k);
            }
        }
        v.sort_unstable_by(cmp);
        v.into_iter().map(|(a, b, r)| (a, b, r.map(|x| x.to_vec()))).collect()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(KIND_CAT);
        w.u8(self.cfg.n_labels as u8);
        w.u64(self.cfg.dense_limit);
        w.u64(self.cfg.budget_bytes as u64);
        w.u8(self.cfg.hll_p);
        w.u8(self.keep_values as u8);
        w.u64s(&self.nulls);
        match &self.table {
            Table::Binned { counts, hll } => {
                w.u8(2);
                w.u64s(counts);
                hll.write(&mut w);
            }
            // a float-keyed dense table is written as the table counting the same keys here gives:
            // dense while key 0 (value 0.0) is its only key, else hashed
            Table::Dense { counts, map } if *map == KeyMap::Int || counts[self.p.min(counts.len())..].iter().all(|&x| x == 0) => {
                // canonical: trailing empty keys trimmed
                let end = counts.chunks_exact(self.p).rposition(|c| c.iter().any(|&x| x > 0)).map_or(0, |k| (k + 1) * self.p);
                w.u8(0);
                w.u64s(&counts[..end]);
            }
            Table::Hashed { .. } | Table::Dense { .. } => {
                w.u8(1);
                let mut e: Vec<(u64, &[u64], Option<&[u8]>)> = Vec::new();
                self.for_each_key(|k, c, r| e.push((k, c, r)));
                e.sort_unstable_by_key(|x| x.0);
                w.u64s(&e.iter().map(|x| x.0).collect::<Vec<_>>());
                w.u64s(&e.iter().flat_map(|x| x.1.iter().copied()).collect::<Vec<_>>());
                if self.keep_values {
                    for x in &e {
                        w.bytes(x.2.unwrap_or(&[]));
                    }
                }
            }
        }
        w.buf
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b, KIND_CAT)?;
        let cfg = CatConfig { n_labels: r.u8()? as usize, dense_limit: r.u64()?, budget_bytes: r.u64()? as usize, hll_p: r.u8()? };
        let keep = r.u8()? != 0;
        let mut acc = CategoricalAcc::new(cfg, keep).map_err(|e| Error::Corrupt(e.to_string()))?;
        let p = acc.p;
        acc.nulls = r.u64s()?;
        if acc.nulls.len() != p {
            return Err(Error::Corrupt("null counts do not match the label count".into()));
        }
        match r.u8()? {
            0 => {
                let counts = r.u64s()?;
                if counts.len() % p != 0 {
                    return Err(Error::Corrupt("dense table length".into()));
                }
                acc.table = Table::Dense { counts, map: KeyMap::Int };
            }
            1 => {
                let keys = r.u64s()?;
                let counts = r.u64s()?;
                if counts.len() != keys.len() * p {
                    return Err(Error::Corrupt("hashed table length".into()));
                }
                let values = if keep {
                    let mut a = Arena::default();
                    for _ in 0..keys.len() {
                        a.push(&r.bytes()?);
                    }
                    Some(a)
                } else {
                    None
                };
                let index = keys.iter().enumerate().map(|(s, &k)| (k, s as u32)).collect();
                acc.table = Table::Hashed { index, keys, counts, values };
            }
            2 => {
                let counts = r.u64s()?;
                let hll = Hll::read(&mut r)?;
                if counts.len() != acc.nbins() * p {
                    return Err(Error::Corrupt("bin count".into()));
                }
                acc.table = Table::Binned { counts, hll };
            }
            t => return Err(Error::Corrupt(format!("unknown table tag {t}"))),
        }
        r.finish()?;
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *seed >> 33
    }

    fn data(n: usize, card: u64, seed: u64) -> (Vec<u64>, Vec<u8>) {
        let mut s = seed;
        let keys: Vec<u64> = (0..n).map(|_| lcg(&mut s) % card).collect();
        let pats = keys.iter().map(|&k| ((k % 3 == 0) as u8) | (((lcg(&mut s) % 4 == 0) as u8) << 1)).collect();
        (keys, pats)
    }

    #[test]
    fn merge_equals_one_pass_all_modes() {
        for &(card, budget) in &[(50u64, 1usize << 20), (1u64 << 40, 4 << 20), (5000, 20_000)] {
            let cfg = CatConfig { n_labels: 2, dense_limit: 1 << 20, budget_bytes: budget, hll_p: 10 };
            let (k, p) = data(20_000, card, 7);
            let mut one = CategoricalAcc::new(cfg.clone(), false).unwrap();
            one.update(&k, None, &p, None).unwrap();
            let mut a = CategoricalAcc::new(cfg.clone(), false).unwrap();
            let mut b = CategoricalAcc::new(cfg.clone(), false).unwrap();
            a.update(&k[..7000], None, &p[..7000], None).unwrap();
            b.update(&k[7000..], None, &p[7000..], None).unwrap();
            b.merge(&a).unwrap();
            assert_eq!(one.stats(), b.stats(), "card {card}");
            let rt = CategoricalAcc::from_bytes(&b.to_bytes()).unwrap();
            assert_eq!(rt.stats(), one.stats());
            assert_eq!(one.is_approx(), budget == 20_000);
        }
    }

    #[test]
    fn mi_matches_direct_formula() {
        let (k, p) = data(5000, 20, 3);
        let cfg = CatConfig { n_labels: 2, ..Default::default() };
        let mut a = CategoricalAcc::new(cfg, false).unwrap();
        a.update(&k, None, &p, None).unwrap();
        let s = a.stats();
        // direct: MI with label 0 from a contingency table
        let n = k.len() as f64;
        let mut joint = std::collections::HashMap::new();
        let (mut mx, mut ml) = (std::collections::HashMap::new(), [0f64; 2]);
        for (&x, &q) in k.iter().zip(&p) {
            let y = (q & 1) as usize;
            *joint.entry((x, y)).or_insert(0f64) += 1.0;
            *mx.entry(x).or_insert(0f64) += 1.0;
            ml[y] += 1.0;
        }
        let mi: f64 = joint.iter().map(|(&(x, y), &c)| c / n * (c * n / (mx[&x] * ml[y])).ln()).sum();
        assert!((s.mi[0] - mi).abs() < 1e-12, "{} vs {mi}", s.mi[0]);
        assert_eq!(s.distinct, Some(20));
        assert_eq!(s.label_cmi[0], 0.0);
    }

    #[test]
    fn strings_keep_values_and_nulls() {
        let words = ["a", "bb", "a", "c", "bb", "a"];
        let keys: Vec<u64> = words.iter().map(|w| crate::hash::hash_bytes(w.as_bytes())).collect();
        let valid = [true, true, true, false, true, true];
        let mut acc = CategoricalAcc::new(CatConfig { n_labels: 0, ..Default::default() }, true).unwrap();
        let raw = |i: usize| words[i].as_bytes();
        acc.update(&keys, Some(&valid), &[0; 6], Some(&raw)).unwrap();
        let top = acc.top_k(None);
        assert_eq!(top[0].1, 3);
        assert_eq!(top[0].2.as_deref(), Some(&b"a"[..]));
        let s = acc.stats();
        assert_eq!((s.rows, s.nulls, s.distinct), (6, 1, Some(2)));
        assert!(CategoricalAcc::from_bytes(&acc.to_bytes()[..30]).is_err());
    }
}

#[cfg(test)]
mod edge_tests {
    use super::*;
    #[test]
    fn negative_and_huge_keys_go_hashed() {
        let mut a = CategoricalAcc::new(CatConfig { n_labels: 0, ..Default::default() }, false).unwrap();
        a.update(&[u64::MAX, 5, 5, u64::MAX - 1], None, &[0; 4], None).unwrap();
        assert_eq!(a.stats().distinct, Some(3));
    }
}

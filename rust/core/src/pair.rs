//! Joint accumulator of two fields (A, B) with the label patterns, for the conditional terms
//! REACTION's AFE needs: I(A;B), I(A; l_i | B) and I(B; l_i | A), all from one table.
//!
//! Each side of a key is a [`Side`]: `Some(value)` or `None` for a null. Nulls are one extra
//! category per side, distinct from every value (including the integer -1, whose u64 key is
//! u64::MAX).
//!
//! Modes: `Dense` (cardinalities known and the product fits the budget: cell (a, b) at
//! a*(cb+1)+b, index ca / cb = null), `Hashed` ((side, side) -> slot), and `Binned`
//! (approximation when the exact table exceeds the budget: each side's values are folded into
//! `bins` hashed buckets, nulls keep their own bucket `bins`; flagged `approx`).
use crate::codec::{Reader, Writer, KIND_PAIR};
use crate::error::{Error, Result};
use crate::hash::{mix64, FastMap};
use crate::sum::{c_ln_ratio, Estimator, FixedSum};

/// One side of a pair key: a value, or `None` for null.
pub type Side = Option<u64>;

#[derive(Clone, Debug)]
enum Table {
    Dense { ca: u64, cb: u64, counts: Vec<u64> },
    Hashed { index: FastMap<(Side, Side), u32>, keys: Vec<(Side, Side)>, counts: Vec<u64> },
    Binned { bins: u64, counts: Vec<u64> },
}

#[derive(Clone, Debug)]
pub struct PairAcc {
    n_labels: usize,
    p: usize,
    budget: usize,
    table: Table,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PairStats {
    pub rows: u64,
    /// I(A; B)
    pub mi_ab: f64,
    /// I(A; l_i | B), one per label
    pub cmi_a_given_b: Vec<f64>,
    /// I(B; l_i | A), one per label
    pub cmi_b_given_a: Vec<f64>,
    pub approx: bool,
}

const SLOT_OVERHEAD: usize = 2 * 16 + 24;

fn dense_fits(ca: u64, cb: u64, p: usize, budget: usize) -> bool {
    (ca as u128 + 1) * (cb as u128 + 1) * (p as u128) * 8 <= budget as u128
}

#[inline]
fn side(keys: &[u64], valid: Option<&[bool]>, i: usize) -> Side {
    if valid.map_or(true, |v| v[i]) { Some(keys[i]) } else { None }
}

/// Sum of the pattern counts whose bit `lab` is set (rows with label `lab` = 1).
#[inline]
fn ones(c: &[u64], lab: usize) -> u64 {
    c.iter().enumerate().filter(|(q, _)| (q >> lab) & 1 == 1).map(|(_, &x)| x).sum()
}

impl PairAcc {
    /// `cards`: Some((ca, cb)) when keys are integer codes below known cardinalities (dense table
    /// if (ca+1)*(cb+1)*2^L*8 fits the budget); None for arbitrary keys.
    pub fn new(n_labels: usize, budget: usize, cards: Option<(u64, u64)>) -> Result<Self> {
        if n_labels > 8 {
            return Err(Error::Input(format!("at most 8 labels are supported, got {n_labels}")));
        }
        let p = 1usize << n_labels;
        let table = match cards {
            Some((ca, cb)) if dense_fits(ca, cb, p, budget) => {
                Table::Dense { ca, cb, counts: vec![0; ((ca + 1) * (cb + 1)) as usize * p] }
            }
            _ => Table::Hashed { index: FastMap::default(), keys: vec![], counts: vec![] },
        };
        Ok(PairAcc { n_labels, p, budget, table })
    }

    pub fn is_approx(&self) -> bool {
        matches!(self.table, Table::Binned { .. })
    }

    /// The dense table for direct counting by callers that know every code is below its
    /// cardinality and non-null: `(row width cb+1, counts)`, cell (a, b, pattern q) at
    /// `(a * width + b) * 2^L + q`. None unless the table is dense.
    pub fn dense_counts_mut(&mut self) -> Option<(usize, &mut [u64])> {
        match &mut self.table {
            Table::Dense { cb, counts, .. } => Some((*cb as usize + 1, counts.as_mut_slice())),
            _ => None,
        }
    }

    fn bins(&self) -> u64 {
        let cells = (self.budget / 2 / (self.p * 8)).max(81) as f64;
        let side = ((cells.sqrt() as u64).saturating_sub(1)).clamp(8, 1 << 16);
        1u64 << (63 - side.leading_zeros())
    }

    /// Count rows: `a[i]`, `b[i]` keys, `va`/`vb` validity (false = null), `pats[i]` label pattern.
    pub fn update(&mut self, a: &[u64], b: &[u64], va: Option<&[bool]>, vb: Option<&[bool]>, pats: &[u8]) -> Result<()> {
        let n = a.len();
        if b.len() != n || pats.len() != n || va.map_or(false, |v| v.len() != n) || vb.map_or(false, |v| v.len() != n) {
            return Err(Error::Input("pair columns, validity and label patterns differ in length".into()));
        }
        if let Some(&bad) = pats.iter().find(|&&q| q as usize >= self.p) {
            return Err(Error::Input(format!("label pattern {bad} needs more than {} labels", self.n_labels)));
        }
        let p = self.p;
        let mut i = 0;
        while i < n {
            match &mut self.table {
                Table::Dense { ca, cb, counts } => {
                    let (ca, cb) = (*ca, *cb);
                    let w = cb + 1;
                    if va.is_none() && vb.is_none() {
                        while i < n && a[i] < ca && b[i] < cb {
                            counts[((a[i] * w + b[i]) as usize) * p + pats[i] as usize] += 1;
                            i += 1;
                        }
                    } else {
                        while i < n {
                            let x = match side(a, va, i) {
                                None => ca,
                                Some(k) if k < ca => k,
                                _ => break,
                            };
                            let y = match side(b, vb, i) {
                                None => cb,
                                Some(k) if k < cb => k,
                                _ => break,
                            };
                            counts[((x * w + y) as usize) * p + pats[i] as usize] += 1;
                            i += 1;
                        }
                    }
                    if i < n {
                        self.to_hashed();
                    }
                }
                Table::Hashed { .. } => {
                    i = self.hashed_run(a, b, va, vb, pats, i);
                    if i < n {
                        self.to_binned();
                    }
                }
                Table::Binned { bins, counts } => {
                    let (bins, w) = (*bins, *bins + 1);
                    let bin = |s: Side| s.map_or(bins, |k| mix64(k) & (bins - 1));
                    while i < n {
                        let idx = bin(side(a, va, i)) * w + bin(side(b, vb, i));
                        counts[idx as usize * p + pats[i] as usize] += 1;
                        i += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn hashed_run(&mut self, a: &[u64], b: &[u64], va: Option<&[bool]>, vb: Option<&[bool]>, pats: &[u8], mut i: usize) -> usize {
        let (p, budget) = (self.p, self.budget);
        if let Table::Hashed { index, keys, counts } = &mut self.table {
            let mut bytes = keys.len() * (p * 8 + SLOT_OVERHEAD);
            while i < a.len() {
                let k = (side(a, va, i), side(b, vb, i));
                let s = match index.get(&k) {
                    Some(&s) => s as usize,
                    None => {
                        bytes += p * 8 + SLOT_OVERHEAD;
                        if bytes > budget {
                            return i;
                        }
                        index.insert(k, keys.len() as u32);
                        keys.push(k);
                        counts.resize(counts.len() + p, 0);
                        keys.len() - 1
                    }
                };
                counts[s * p + pats[i] as usize] += 1;
                i += 1;
            }
        }
        i
    }

    /// Visit every non-empty cell as (side a, side b, per-pattern counts); binned tables give bin
    /// coordinates as values.
    fn for_each_pair(&self, mut f: impl FnMut(Side, Side, &[u64])) {
        let p = self.p;
        let (na, nb, counts) = match &self.table {
            Table::Dense { ca, cb, counts } => (*ca, *cb, counts),
            Table::Binned { bins, counts } => (*bins, *bins, counts),
            Table::Hashed { keys, counts, .. } => {
                for (&(ka, kb), c) in keys.iter().zip(counts.chunks_exact(p)) {
                    f(ka, kb, c)
                }
                return;
            }
        };
        let w = nb + 1;
        for (idx, c) in counts.chunks_exact(p).enumerate() {
            if c.iter().any(|&x| x > 0) {
                let (x, y) = (idx as u64 / w, idx as u64 % w);
                f((x != na).then_some(x), (y != nb).then_some(y), c)
            }
        }
    }

    fn to_hashed(&mut self) {
        let mut h = PairAcc { table: Table::Hashed { index: FastMap::default(), keys: vec![], counts: vec![] }, ..self.clone_empty() };
        self.for_each_pair(|a, b, c| h.add_entry(a, b, c));
        *self = h;
    }

    fn to_binned(&mut self) {
        if self.is_approx() {
            return;
        }
        let bins = self.bins();
        let cells = ((bins + 1) * (bins + 1)) as usize * self.p;
        let mut out = PairAcc { table: Table::Binned { bins, counts: vec![0; cells] }, ..self.clone_empty() };
        self.for_each_pair(|a, b, c| out.add_entry(a, b, c));
        *self = out;
    }

    fn clone_empty(&self) -> PairAcc {
        PairAcc { n_labels: self.n_labels, p: self.p, budget: self.budget, table: Table::Binned { bins: 0, counts: vec![] } }
    }

    /// Add one cell's per-pattern counts by its real keys (merge path; same mode rules as `update`).
    fn add_entry(&mut self, a: Side, b: Side, c: &[u64]) {
        let p = self.p;
        let add = |dst: &mut [u64], s: usize| dst[s * p..(s + 1) * p].iter_mut().zip(c).for_each(|(o, &x)| *o += x);
        loop {
            let budget = self.budget;
            match &mut self.table {
                Table::Dense { ca, cb, counts } => {
                    let x = a.map_or(Some(*ca), |k| (k < *ca).then_some(k));
                    let y = b.map_or(Some(*cb), |k| (k < *cb).then_some(k));
                    if let (Some(x), Some(y)) = (x, y) {
                        add(counts, (x * (*cb + 1) + y) as usize);
                        return;
                    }
                    self.to_hashed();
                }
                Table::Hashed { index, keys, counts } => {
                    let s = match index.get(&(a, b)) {
                        Some(&s) => s as usize,
                        None => {
                            if (keys.len() + 1) * (p * 8 + SLOT_OVERHEAD) > budget {
                                self.to_binned();
                                continue;
                            }
                            index.insert((a, b), keys.len() as u32);
                            keys.push((a, b));
                            counts.resize(counts.len() + p, 0);
                            keys.len() - 1
                        }
                    };
                    add(counts, s);
                    return;
                }
                Table::Binned { bins, counts } => {
                    let bins = *bins;
                    let bin = |s: Side| s.map_or(bins, |k| mix64(k) & (bins - 1));
                    add(counts, (bin(a) * (bins + 1) + bin(b)) as usize);
                    return;
                }
            }
        }
    }

    /// Merge `other` into `self` (exact unless either side is binned).
    pub fn merge(&mut self, other: &PairAcc) -> Result<()> {
        if other.n_labels != self.n_labels || other.budget != self.budget {
            return Err(Error::Input("cannot merge pair accumulators with different labels or budgets".into()));
        }
        if other.is_approx() {
            self.to_binned();
            if let (Table::Binned { counts, .. }, Table::Binned { counts: oc, .. }) = (&mut self.table, &other.table) {
                counts.iter_mut().zip(oc).for_each(|(a, &b)| *a += b);
            }
            return Ok(());
        }
        other.for_each_pair(|a, b, c| self.add_entry(a, b, c));
        Ok(())
    }

    /// Non-empty cells as (compact a index, compact b index, slot), with the side counts and the
    /// count array the slots index (slot s covers counts[s*P..(s+1)*P]).
    fn cells(&self) -> (usize, usize, Vec<(u32, u32, u32)>, &[u64]) {
        let p = self.p;
        match &self.table {
            Table::Dense { ca, cb, counts } => grid(*ca as usize + 1, *cb as usize + 1, p, counts),
            Table::Binned { bins, counts } => grid(*bins as usize + 1, *bins as usize + 1, p, counts),
            Table::Hashed { keys, counts, .. } => {
                let (mut ida, mut idb): (FastMap<Side, u32>, FastMap<Side, u32>) = (FastMap::default(), FastMap::default());
                let mut cells = Vec::with_capacity(keys.len());
                for (s, &(a, b)) in keys.iter().enumerate() {
                    let na = ida.len() as u32;
                    let ia = *ida.entry(a).or_insert(na);
                    let nb = idb.len() as u32;
                    let ib = *idb.entry(b).or_insert(nb);
                    cells.push((ia, ib, s as u32));
                }
                (ida.len(), idb.len(), cells, counts)
            }
        }
    }

    /// Plug-in statistics.
    pub fn stats(&self) -> PairStats {
        self.stats_with(Estimator::Plugin)
    }

    /// Statistics under `est` (see [`Estimator`]).
    pub fn stats_with(&self, est: Estimator) -> PairStats {
        let (p, l) = (self.p, self.n_labels);
        let (ka, kb, cells, counts) = self.cells();
        // side totals, and per label the side counts with that label = 1
        let (mut ta, mut tb) = (vec![0u64; ka], vec![0u64; kb]);
        let (mut a1, mut b1) = (vec![0u64; ka * l], vec![0u64; kb * l]);
        let mut cell_tot = Vec::with_capacity(cells.len());
        for &(ia, ib, s) in &cells {
            let c = &counts[s as usize * p..(s as usize + 1) * p];
            let t: u64 = c.iter().sum();
            cell_tot.push(t);
            ta[ia as usize] += t;
            tb[ib as usize] += t;
            for lab in 0..l {
                let o = ones(c, lab);
                a1[lab * ka + ia as usize] += o;
                b1[lab * kb + ib as usize] += o;
            }
        }
        let n: u64 = cell_tot.iter().sum();
        let n128 = n as u128;
        let mut mi = FixedSum::default();
        let mut ca = vec![FixedSum::default(); l];
        let mut cb = vec![FixedSum::default(); l];
        let mut m_abl = vec![0u64; l]; // non-empty (a, b, y) cells per label
        for (&(ia, ib, s), &cxy) in cells.iter().zip(&cell_tot) {
            let (ia, ib) = (ia as usize, ib as usize);
            let c = &counts[s as usize * p..(s as usize + 1) * p];
            let (na, nb) = (ta[ia], tb[ib]);
            mi.add(c_ln_ratio(cxy, cxy as u128 * n128, na as u128 * nb as u128));
            for lab in 0..l {
                let c1 = ones(c, lab);
                let (sa1, sb1) = (a1[lab * ka + ia], b1[lab * kb + ib]);
                for (cy, ay, by) in [(c1, sa1, sb1), (cxy - c1, na - sa1, nb - sb1)] {
                    m_abl[lab] += (cy > 0) as u64;
                    // I(A; l | B): z = b;  I(B; l | A): z = a
                    ca[lab].add(c_ln_ratio(cy, cy as u128 * nb as u128, cxy as u128 * by as u128));
                    cb[lab].add(c_ln_ratio(cy, cy as u128 * na as u128, cxy as u128 * ay as u128));
                }
            }
        }
        let nz = |v: &[u64]| v.iter().filter(|&&x| x > 0).count() as u64;
        // non-empty (side, y) cells per label
        let side_label = |t: &[u64], ones: &[u64], k: usize, lab: usize| -> u64 {
            (0..k).map(|i| (ones[lab * k + i] > 0) as u64 + (t[i] - ones[lab * k + i] > 0) as u64).sum()
        };
        let (m_a, m_b, m_ab) = (nz(&ta), nz(&tb), cells.len() as u64);
        let nf = n.max(1) as f64;
        let fin = |s: &FixedSum| (s.value() / nf).max(0.0);
        PairStats {
            rows: n,
            mi_ab: est.mi(fin(&mi), m_a, m_b, m_ab, n),
            cmi_a_given_b: (0..l).map(|lab| est.cmi(fin(&ca[lab]), m_ab, side_label(&tb, &b1, kb, lab), m_abl[lab], m_b, n)).collect(),
            cmi_b_given_a: (0..l).map(|lab| est.cmi(fin(&cb[lab]), m_ab, side_label(&ta, &a1, ka, lab), m_abl[lab], m_a, n)).collect(),
            approx: self.is_approx(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(KIND_PAIR);
        w.u8(self.n_labels as u8);
        w.u64(self.budget as u64);
        let mut e: Vec<(Side, Side, Vec<u64>)> = Vec::new();
        self.for_each_pair(|a, b, c| e.push((a, b, c.to_vec())));
        e.sort_unstable_by_key(|x| (x.0, x.1));
        match &self.table {
            Table::Dense { ca, cb, .. } => {
                w.u8(0);
                w.u64(*ca);
                w.u64(*cb);
            }
            Table::Hashed { .. } => w.u8(1),
            Table::Binned { bins, .. } => {
                w.u8(2);
                w.u64(*bins);
            }
        }
        w.u64s(&e.iter().flat_map(|x| [x.0.unwrap_or(0), x.1.unwrap_or(0)]).collect::<Vec<_>>());
        w.bytes(&e.iter().map(|x| x.0.is_none() as u8 | (x.1.is_none() as u8) << 1).collect::<Vec<_>>());
        w.u64s(&e.iter().flat_map(|x| x.2.iter().copied()).collect::<Vec<_>>());
        w.buf
    }

    pub fn from_bytes(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, KIND_PAIR)?;
        let n_labels = r.u8()? as usize;
        let budget = r.u64()? as usize;
        if n_labels > 8 {
            return Err(Error::Corrupt("label count".into()));
        }
        let p = 1usize << n_labels;
        let table = match r.u8()? {
            0 => {
                let (ca, cb) = (r.u64()?, r.u64()?);
                if !dense_fits(ca, cb, p, budget) {
                    return Err(Error::Corrupt("dense pair table exceeds its budget".into()));
                }
                Table::Dense { ca, cb, counts: vec![0; ((ca + 1) * (cb + 1)) as usize * p] }
            }
            1 => Table::Hashed { index: FastMap::default(), keys: vec![], counts: vec![] },
            2 => {
                let bins = r.u64()?;
                if bins == 0 || bins > 1 << 16 || !bins.is_power_of_two() {
                    return Err(Error::Corrupt("bins".into()));
                }
                Table::Binned { bins, counts: vec![0; ((bins + 1) * (bins + 1)) as usize * p] }
            }
            t => return Err(Error::Corrupt(format!("unknown pair table tag {t}"))),
        };
        let keys = r.u64s()?;
        let flags = r.bytes()?;
        let counts = r.u64s()?;
        r.finish()?;
        if keys.len() % 2 != 0 || flags.len() != keys.len() / 2 || counts.len() != keys.len() / 2 * p {
            return Err(Error::Corrupt("pair table lengths".into()));
        }
        let mut acc = PairAcc { n_labels, p, budget, table };
        for (i, k) in keys.chunks_exact(2).enumerate() {
            let c = &counts[i * p..(i + 1) * p];
            let (a, b) = ((flags[i] & 1 == 0).then_some(k[0]), (flags[i] & 2 == 0).then_some(k[1]));
            if let Table::Binned { bins, counts: bc } = &mut acc.table {
                // stored values are bin coordinates already
                let bins = *bins;
                let (x, y) = (a.unwrap_or(bins), b.unwrap_or(bins));
                if x > bins || y > bins {
                    return Err(Error::Corrupt("bin index".into()));
                }
                let s = (x * (bins + 1) + y) as usize;
                bc[s * p..(s + 1) * p].copy_from_slice(c);
            } else {
                acc.add_entry(a, b, c);
            }
        }
        Ok(acc)
    }
}

/// Non-empty cells of a row-major (rows x width) grid of P-count cells.
fn grid(rows: usize, width: usize, p: usize, counts: &[u64]) -> (usize, usize, Vec<(u32, u32, u32)>, &[u64]) {
    let cells = counts
        .chunks_exact(p)
        .enumerate()
        .filter(|(_, c)| c.iter().any(|&x| x > 0))
        .map(|(idx, _)| ((idx / width) as u32, (idx % width) as u32, idx as u32))
        .collect();
    (rows, width, cells, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn chain_rule_and_merge() {
        let mut s = 11u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s >> 33
        };
        let n = 30_000;
        let a: Vec<u64> = (0..n).map(|_| next() % 7).collect();
        let b: Vec<u64> = a.iter().map(|&x| (x + next() % 3) % 5).collect();
        let pats: Vec<u8> = a.iter().zip(&b).map(|(&x, &y)| ((x + y + next() % 4) % 3 == 0) as u8).collect();
        for cards in [Some((7, 5)), None] {
            let mut one = PairAcc::new(1, 1 << 20, cards).unwrap();
            one.update(&a, &b, None, None, &pats).unwrap();
            let mut x = PairAcc::new(1, 1 << 20, cards).unwrap();
            let mut y = PairAcc::new(1, 1 << 20, cards).unwrap();
            x.update(&a[..100], &b[..100], None, None, &pats[..100]).unwrap();
            y.update(&a[100..], &b[100..], None, None, &pats[100..]).unwrap();
            x.merge(&y).unwrap();
            assert_eq!(x.stats(), one.stats());
            assert_eq!(PairAcc::from_bytes(&one.to_bytes()).unwrap().stats(), one.stats());
            // chain rule: I(A;l|B) = I((A,B); l) - I(B; l)
            let st = one.stats();
            let ab: Vec<u64> = a.iter().zip(&b).map(|(&x, &y)| x * 5 + y).collect();
            let l: Vec<u64> = pats.iter().map(|&q| q as u64).collect();
            let z = vec![0u64; n];
            let i_ab = crate::info::cmi(&ab, &l, &z, Estimator::Plugin);
            let i_b = crate::info::cmi(&b, &l, &z, Estimator::Plugin);
            assert!((st.cmi_a_given_b[0] - (i_ab - i_b)).abs() < 1e-12);
            assert!((st.mi_ab - crate::info::cmi(&a, &b, &z, Estimator::Plugin)).abs() < 1e-12);
            // Miller-Madow agrees with the 1-D measures on the same keys
            let mm = one.stats_with(Estimator::MillerMadow);
            assert!((mm.mi_ab - crate::info::cmi(&a, &b, &z, Estimator::MillerMadow)).abs() < 1e-12);
            assert!((mm.cmi_a_given_b[0] - crate::info::cmi(&a, &l, &b, Estimator::MillerMadow)).abs() < 1e-12);
            assert!((mm.cmi_b_given_a[0] - crate::info::cmi(&b, &l, &a, Estimator::MillerMadow)).abs() < 1e-12);
        }
        let mut small = PairAcc::new(1, 1000, None).unwrap();
        small.update(&a, &b, None, None, &pats).unwrap();
        assert!(small.is_approx());
        let rt = PairAcc::from_bytes(&small.to_bytes()).unwrap();
        assert_eq!(rt.stats(), small.stats());
    }

    #[test]
    fn nulls_are_their_own_category_in_every_mode() {
        // -1 as u64 is u64::MAX: it must not merge with null
        let a = [u64::MAX, 0, u64::MAX, 1, 0, 1];
        let va = [true, false, false, true, true, true];
        let b = [0u64, 1, 0, 1, 0, 1];
        let pats = [1u8, 0, 0, 1, 0, 1];
        let codes: Vec<u64> = a.iter().zip(&va).map(|(&k, &v)| if v { k % 7 } else { 9 }).collect();
        let l: Vec<u64> = pats.iter().map(|&q| q as u64).collect();
        let want = crate::info::cmi(&codes, &l, &b, Estimator::Plugin);
        for (budget, cards) in [(1 << 20, None), (1 << 20, Some((2, 2))), (200, None)] {
            let mut acc = PairAcc::new(1, budget, cards).unwrap();
            acc.update(&a, &b, Some(&va), None, &pats).unwrap();
            let rt = PairAcc::from_bytes(&acc.to_bytes()).unwrap();
            assert_eq!(rt.stats(), acc.stats());
            if !acc.is_approx() {
                assert!((acc.stats().cmi_a_given_b[0] - want).abs() < 1e-12, "{budget} {cards:?}");
            }
        }
    }
}

//! Joint accumulator of two fields (A, B) with the label patterns, for the conditional terms
//! REACTION's AFE needs: I(A;B), I(A; l_i | B) and I(B; l_i | A), all from one table.
//!
//! Modes: `Dense` (cardinalities known and the product fits the budget: index a*cb+b),
//! `Hashed` (pair -> slot), and `Binned` (approximation when the exact table exceeds the budget:
//! each side is folded into `bins` hashed buckets; flagged `approx`). Nulls must be mapped to a
//! key by the caller (the Python layer maps them to u64::MAX).
use crate::codec::{Reader, Writer, KIND_PAIR};
use crate::error::{Error, Result};
use crate::hash::{mix64, FastMap};
use crate::sum::{c_ln_ratio, FixedSum};

#[derive(Clone, Debug)]
enum Table {
    Dense { ca: u64, cb: u64, counts: Vec<u64> },
    Hashed { index: FastMap<(u64, u64), u32>, keys: Vec<(u64, u64)>, counts: Vec<u64> },
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

const SLOT_OVERHEAD: usize = 16 + 24;

impl PairAcc {
    /// `cards`: Some((ca, cb)) when keys are integer codes below known cardinalities (dense table
    /// if ca*cb*2^L*8 fits the budget); None for arbitrary keys.
    pub fn new(n_labels: usize, budget: usize, cards: Option<(u64, u64)>) -> Result<Self> {
        if n_labels > 8 {
            return Err(Error::Input(format!("at most 8 labels are supported, got {n_labels}")));
        }
        let p = 1usize << n_labels;
        let table = match cards {
            Some((ca, cb)) if (ca as u128) * (cb as u128) * (p as u128) * 8 <= budget as u128 => {
                Table::Dense { ca, cb, counts: vec![0; (ca * cb) as usize * p] }
            }
            _ => Table::Hashed { index: FastMap::default(), keys: vec![], counts: vec![] },
        };
        Ok(PairAcc { n_labels, p, budget, table })
    }

    pub fn is_approx(&self) -> bool {
        matches!(self.table, Table::Binned { .. })
    }

    fn bins(&self) -> u64 {
        let cells = (self.budget / 2 / (self.p * 8)).max(64) as f64;
        let side = (cells.sqrt() as u64).clamp(8, 1 << 16);
        1u64 << (63 - side.leading_zeros())
    }

    pub fn update(&mut self, a: &[u64], b: &[u64], pats: &[u8]) -> Result<()> {
        if a.len() != b.len() || a.len() != pats.len() {
            return Err(Error::Input("pair columns and label patterns differ in length".into()));
        }
        if let Some(&bad) = pats.iter().find(|&&q| q as usize >= self.p) {
            return Err(Error::Input(format!("label pattern {bad} needs more than {} labels", self.n_labels)));
        }
        let p = self.p;
        let mut i = 0;
        let n = a.len();
        while i < n {
            match &mut self.table {
                Table::Dense { ca, cb, counts } => {
                    while i < n && a[i] < *ca && b[i] < *cb {
                        counts[((a[i] * *cb + b[i]) as usize) * p + pats[i] as usize] += 1;
                        i += 1;
                    }
                    if i < n {
                        self.to_hashed();
                    }
                }
                Table::Hashed { .. } => {
                    i = self.hashed_run(a, b, pats, i);
                    if i < n {
                        self.to_binned();
                    }
                }
                Table::Binned { bins, counts } => {
                    let m = *bins - 1;
                    while i < n {
                        let idx = (mix64(a[i]) & m) * *bins + (mix64(b[i]) & m);
                        counts[idx as usize * p + pats[i] as usize] += 1;
                        i += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn hashed_run(&mut self, a: &[u64], b: &[u64], pats: &[u8], mut i: usize) -> usize {
        let (p, budget) = (self.p, self.budget);
        if let Table::Hashed { index, keys, counts } = &mut self.table {
            let mut bytes = keys.len() * (p * 8 + SLOT_OVERHEAD);
            while i < a.len() {
                let k = (a[i], b[i]);
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

    fn for_each_pair(&self, mut f: impl FnMut(u64, u64, &[u64])) {
        let p = self.p;
        match &self.table {
            Table::Dense { cb, counts, .. } | Table::Binned { bins: cb, counts } => {
                for (idx, c) in counts.chunks_exact(p).enumerate() {
                    if c.iter().any(|&x| x > 0) {
                        f(idx as u64 / cb, idx as u64 % cb, c)
                    }
                }
            }
            Table::Hashed { keys, counts, .. } => {
                for (&(ka, kb), c) in keys.iter().zip(counts.chunks_exact(p)) {
                    f(ka, kb, c)
                }
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
        let mut out = PairAcc { table: Table::Binned { bins, counts: vec![0; (bins * bins) as usize * self.p] }, ..self.clone_empty() };
        self.for_each_pair(|a, b, c| out.add_entry(a, b, c));
        *self = out;
    }

    fn clone_empty(&self) -> PairAcc {
        PairAcc { n_labels: self.n_labels, p: self.p, budget: self.budget, table: Table::Binned { bins: 0, counts: vec![] } }
    }

    fn add_entry(&mut self, a: u64, b: u64, c: &[u64]) {
        let p = self.p;
        loop {
            let budget = self.budget;
            match &mut self.table {
                Table::Dense { ca, cb, counts } => {
                    if a < *ca && b < *cb {
                        let s = (a * *cb + b) as usize;
                        counts[s * p..(s + 1) * p].iter_mut().zip(c).for_each(|(o, &x)| *o += x);
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
                    counts[s * p..(s + 1) * p].iter_mut().zip(c).for_each(|(o, &x)| *o += x);
                    return;
                }
                Table::Binned { bins, counts } => {
                    let m = *bins - 1;
                    let s = ((mix64(a) & m) * *bins + (mix64(b) & m)) as usize;
                    counts[s * p..(s + 1) * p].iter_mut().zip(c).for_each(|(o, &x)| *o += x);
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
        if self.is_approx() {
            other.for_each_pair(|a, b, c| self.add_entry(a, b, c));
            return Ok(());
        }
        other.for_each_pair(|a, b, c| self.add_entry(a, b, c));
        Ok(())
    }

    pub fn stats(&self) -> PairStats {
        let (p, l) = (self.p, self.n_labels);
        // compact each side's keys to 0..k so marginals are plain arrays
        let (mut ida, mut idb): (FastMap<u64, u32>, FastMap<u64, u32>) = (FastMap::default(), FastMap::default());
        let mut cells: Vec<(u32, u32, &[u64])> = Vec::new();
        // borrow dance: collect raw pairs first
        let mut raw: Vec<(u64, u64, Vec<u64>)> = Vec::new();
        self.for_each_pair(|a, b, c| raw.push((a, b, c.to_vec())));
        for (a, b, c) in &raw {
            let na = ida.len() as u32;
            let ia = *ida.entry(*a).or_insert(na);
            let nb = idb.len() as u32;
            let ib = *idb.entry(*b).or_insert(nb);
            cells.push((ia, ib, c));
        }
        let (ka, kb) = (ida.len(), idb.len());
        let mut ma = vec![0u64; ka * p];
        let mut mb = vec![0u64; kb * p];
        for &(ia, ib, c) in &cells {
            for q in 0..p {
                ma[ia as usize * p + q] += c[q];
                mb[ib as usize * p + q] += c[q];
            }
        }
        let tot = |m: &[u64], i: usize| -> u64 { m[i * p..(i + 1) * p].iter().sum() };
        let ybit = |m: &[u64], lab: usize, y: usize| -> u64 { (0..p).filter(|&q| (q >> lab) & 1 == y).map(|q| m[q]).sum() };
        let n: u64 = cells.iter().map(|c| c.2.iter().sum::<u64>()).sum();
        let n128 = n as u128;
        let mut mi = FixedSum::default();
        let mut ca = vec![FixedSum::default(); l];
        let mut cb = vec![FixedSum::default(); l];
        for &(ia, ib, c) in &cells {
            let (ia, ib) = (ia as usize, ib as usize);
            let cxy: u64 = c.iter().sum();
            let (na, nb) = (tot(&ma, ia), tot(&mb, ib));
            mi.add(c_ln_ratio(cxy, cxy as u128 * n128, na as u128 * nb as u128));
            let sa = &ma[ia * p..(ia + 1) * p];
            let sb = &mb[ib * p..(ib + 1) * p];
            for lab in 0..l {
                for y in 0..2 {
                    let cell = ybit(c, lab, y);
                    // I(A; l | B): z = b
                    ca[lab].add(c_ln_ratio(cell, cell as u128 * nb as u128, cxy as u128 * ybit(sb, lab, y) as u128));
                    // I(B; l | A): z = a
                    cb[lab].add(c_ln_ratio(cell, cell as u128 * na as u128, cxy as u128 * ybit(sa, lab, y) as u128));
                }
            }
        }
        let nf = n.max(1) as f64;
        let fin = |s: &FixedSum| (s.value() / nf).max(0.0);
        PairStats {
            rows: n,
            mi_ab: fin(&mi),
            cmi_a_given_b: ca.iter().map(fin).collect(),
            cmi_b_given_a: cb.iter().map(fin).collect(),
            approx: self.is_approx(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(KIND_PAIR);
        w.u8(self.n_labels as u8);
        w.u64(self.budget as u64);
        let mut e: Vec<(u64, u64, Vec<u64>)> = Vec::new();
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
        w.u64s(&e.iter().flat_map(|x| [x.0, x.1]).collect::<Vec<_>>());
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
                if (ca as u128) * (cb as u128) * (p as u128) * 8 > budget as u128 {
                    return Err(Error::Corrupt("dense pair table exceeds its budget".into()));
                }
                Table::Dense { ca, cb, counts: vec![0; (ca * cb) as usize * p] }
            }
            1 => Table::Hashed { index: FastMap::default(), keys: vec![], counts: vec![] },
            2 => {
                let bins = r.u64()?;
                if bins == 0 || bins > 1 << 16 || !bins.is_power_of_two() {
                    return Err(Error::Corrupt("bins".into()));
                }
                Table::Binned { bins, counts: vec![0; (bins * bins) as usize * p] }
            }
            t => return Err(Error::Corrupt(format!("unknown pair table tag {t}"))),
        };
        let keys = r.u64s()?;
        let counts = r.u64s()?;
        r.finish()?;
        if keys.len() % 2 != 0 || counts.len() != keys.len() / 2 * p {
            return Err(Error::Corrupt("pair table lengths".into()));
        }
        let mut acc = PairAcc { n_labels, p, budget, table };
        let binned = acc.is_approx();
        for (i, k) in keys.chunks_exact(2).enumerate() {
            let c = &counts[i * p..(i + 1) * p];
            if binned {
                // stored keys are bin coordinates already
                if let Table::Binned { bins, counts: bc } = &mut acc.table {
                    if k[0] >= *bins || k[1] >= *bins {
                        return Err(Error::Corrupt("bin index".into()));
                    }
                    let s = (k[0] * *bins + k[1]) as usize;
                    bc[s * p..(s + 1) * p].copy_from_slice(c);
                }
            } else {
                acc.add_entry(k[0], k[1], c);
            }
        }
        Ok(acc)
    }
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
            one.update(&a, &b, &pats).unwrap();
            let mut x = PairAcc::new(1, 1 << 20, cards).unwrap();
            let mut y = PairAcc::new(1, 1 << 20, cards).unwrap();
            x.update(&a[..100], &b[..100], &pats[..100]).unwrap();
            y.update(&a[100..], &b[100..], &pats[100..]).unwrap();
            x.merge(&y).unwrap();
            assert_eq!(x.stats(), one.stats());
            assert_eq!(PairAcc::from_bytes(&one.to_bytes()).unwrap().stats(), one.stats());
            // chain rule: I(A;l|B) = I((A,B); l) - I(B; l)
            let st = one.stats();
            let ab: Vec<u64> = a.iter().zip(&b).map(|(&x, &y)| x * 5 + y).collect();
            let l: Vec<u64> = pats.iter().map(|&q| q as u64).collect();
            let z = vec![0u64; n];
            let i_ab = crate::info::cmi(&ab, &l, &z);
            let i_b = crate::info::cmi(&b, &l, &z);
            assert!((st.cmi_a_given_b[0] - (i_ab - i_b)).abs() < 1e-12);
            assert!((st.mi_ab - crate::info::cmi(&a, &b, &z)).abs() < 1e-12);
        }
        let mut small = PairAcc::new(1, 4000, None).unwrap();
        small.update(&a, &b, &pats).unwrap();
        assert!(small.is_approx() || small.stats().rows == n as u64);
        let rt = PairAcc::from_bytes(&small.to_bytes()).unwrap();
        assert_eq!(rt.stats(), small.stats());
    }
}

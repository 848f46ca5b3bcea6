//! Information measures on plain key vectors (any u64 keys): entropy, MI, CMI, chi-square.
use crate::hash::FastMap;
use crate::sum::{c_ln_ratio, entropy_counts, Estimator, FixedSum};

const DENSE_CELLS: u128 = 1 << 24;

/// Map keys to compact codes 0..k (identity when they are already small non-negative codes).
pub fn compact(keys: &[u64]) -> (Vec<u32>, u64) {
    let max = keys.iter().copied().max().unwrap_or(0);
    if max < (1 << 24) && (max as usize) <= keys.len().max(1024) * 4 {
        return (keys.iter().map(|&k| k as u32).collect(), max + 1);
    }
    let mut m: FastMap<u64, u32> = FastMap::default();
    let codes = keys
        .iter()
        .map(|&k| {
            let n = m.len() as u32;
            *m.entry(k).or_insert(n)
        })
        .collect();
    (codes, m.len() as u64)
}

/// Count table over indices < size: dense array when small, hash map otherwise.
enum Counter {
    Dense(Vec<u64>),
    Map(FastMap<u128, u64>),
}

impl Counter {
    fn new(size: u128) -> Self {
        if size <= DENSE_CELLS { Counter::Dense(vec![0; size as usize]) } else { Counter::Map(FastMap::default()) }
    }
    #[inline]
    fn add(&mut self, i: u128, c: u64) {
        match self {
            Counter::Dense(v) => v[i as usize] += c,
            Counter::Map(m) => *m.entry(i).or_insert(0) += c,
        }
    }
    fn get(&self, i: u128) -> u64 {
        match self {
            Counter::Dense(v) => v[i as usize],
            Counter::Map(m) => m.get(&i).copied().unwrap_or(0),
        }
    }
    /// Number of non-empty cells.
    fn nonzero(&self) -> u64 {
        match self {
            Counter::Dense(v) => v.iter().filter(|&&c| c > 0).count() as u64,
            Counter::Map(m) => m.len() as u64,
        }
    }
    fn for_each(&self, mut f: impl FnMut(u128, u64)) {
        match self {
            Counter::Dense(v) => v.iter().enumerate().filter(|x| *x.1 > 0).for_each(|(i, &c)| f(i as u128, c)),
            Counter::Map(m) => m.iter().for_each(|(&i, &c)| f(i, c)),
        }
    }
}

/// Entropy H(X) in nats under `est`.
pub fn entropy(x: &[u64], est: Estimator) -> f64 {
    let (cx, kx) = compact(x);
    let mut c = Counter::new(kx as u128);
    cx.iter().for_each(|&v| c.add(v as u128, 1));
    let mut v = vec![];
    c.for_each(|_, n| v.push(n));
    let m = v.len() as u64;
    est.entropy(entropy_counts(v), m, x.len() as u64)
}

/// Conditional mutual information I(X; Y | Z) in nats under `est` (Z constant gives I(X; Y)).
pub fn cmi(x: &[u64], y: &[u64], z: &[u64], est: Estimator) -> f64 {
    assert!(x.len() == y.len() && y.len() == z.len());
    let n = x.len() as u64;
    if n == 0 {
        return 0.0;
    }
    let ((cx, kx), (cy, ky), (cz, kz)) = (compact(x), compact(y), compact(z));
    let (kx, ky, kz) = (kx as u128, ky as u128, kz as u128);
    let mut cells = Counter::new(kx * ky * kz);
    let mut nxz = Counter::new(kx * kz);
    let mut nyz = Counter::new(ky * kz);
    let mut nz = vec![0u64; kz as usize];
    for i in 0..x.len() {
        let (a, b, c) = (cx[i] as u128, cy[i] as u128, cz[i] as u128);
        cells.add((a * ky + b) * kz + c, 1);
        nxz.add(a * kz + c, 1);
        nyz.add(b * kz + c, 1);
        nz[c as usize] += 1;
    }
    let mut s = FixedSum::default();
    cells.for_each(|idx, c| {
        let zz = idx % kz;
        let yy = (idx / kz) % ky;
        let xx = idx / (kz * ky);
        let num = c as u128 * nz[zz as usize] as u128;
        let den = nxz.get(xx * kz + zz) as u128 * nyz.get(yy * kz + zz) as u128;
        s.add(c_ln_ratio(c, num, den));
    });
    let plugin = (s.value() / n as f64).max(0.0);
    let mz = nz.iter().filter(|&&c| c > 0).count() as u64;
    est.cmi(plugin, nxz.nonzero(), nyz.nonzero(), cells.nonzero(), mz, n)
}

/// I(X; Y) in nats under `est`.
pub fn mutual_info(x: &[u64], y: &[u64], est: Estimator) -> f64 {
    cmi(x, y, &vec![0u64; x.len()], est)
}

/// Pearson chi-square statistic of the X x Y contingency table (no continuity correction).
pub fn chi2(x: &[u64], y: &[u64]) -> f64 {
    assert_eq!(x.len(), y.len());
    let n = x.len() as f64;
    let ((cx, kx), (cy, ky)) = (compact(x), compact(y));
    let mut rows = vec![0u64; kx as usize];
    let mut cols = vec![0u64; ky as usize];
    let mut cells = Counter::new(kx as u128 * ky as u128);
    for i in 0..x.len() {
        rows[cx[i] as usize] += 1;
        cols[cy[i] as usize] += 1;
        cells.add(cx[i] as u128 * ky as u128 + cy[i] as u128, 1);
    }
    let rows: Vec<u64> = rows.into_iter().filter(|&r| r > 0).collect();
    let cols_nz: Vec<(usize, u64)> = cols.iter().copied().enumerate().filter(|x| x.1 > 0).collect();
    if let Counter::Dense(_) = cells {
        // every cell, zeros included: sum (O-E)^2/E directly (no cancellation)
        let rows_all: Vec<(usize, u64)> = {
            let mut r = vec![0u64; kx as usize];
            cx.iter().for_each(|&v| r[v as usize] += 1);
            r.into_iter().enumerate().filter(|x| x.1 > 0).collect()
        };
        let mut s = 0.0;
        for &(i, r) in &rows_all {
            for &(j, c) in &cols_nz {
                let e = r as f64 * c as f64 / n;
                let o = cells.get(i as u128 * ky as u128 + j as u128) as f64;
                s += (o - e) * (o - e) / e;
            }
        }
        return s;
    }
    let _ = rows;
    let mut rr = vec![0u64; kx as usize];
    cx.iter().for_each(|&v| rr[v as usize] += 1);
    let mut s = 0.0;
    cells.for_each(|idx, o| {
        let (i, j) = ((idx / ky as u128) as usize, (idx % ky as u128) as usize);
        s += (o as f64) * (o as f64) / (rr[i] as f64 * cols[j] as f64);
    });
    n * s - n
}

//! HyperLogLog with Ertl's improved estimator (no empirical bias tables, good over the whole range).
use crate::codec::{Reader, Writer, KIND_HLL};
use crate::error::{Error, Result};
use crate::hash::mix64;

#[derive(Clone, Debug, PartialEq)]
pub struct Hll {
    p: u8,
    reg: Vec<u8>,
}

impl Hll {
    /// `p` in 4..=18: 2^p registers, relative standard error about 1.04 / sqrt(2^p).
    pub fn new(p: u8) -> Result<Self> {
        if !(4..=18).contains(&p) {
            return Err(Error::Input(format!("HLL precision must be in 4..=18, got {p}")));
        }
        Ok(Hll { p, reg: vec![0; 1 << p] })
    }
    pub fn precision(&self) -> u8 {
        self.p
    }
    /// Standard error of the estimate relative to the true count.
    pub fn relative_error(&self) -> f64 {
        1.04 / ((1u64 << self.p) as f64).sqrt()
    }
    /// Insert a key (keys are mixed with a fixed bijection first, so dense integers spread).
    #[inline]
    pub fn insert(&mut self, key: u64) {
        let h = mix64(key);
        let idx = (h >> (64 - self.p)) as usize;
        let q = 64 - self.p as u32;
        let rho = ((h << self.p).leading_zeros() + 1).min(q + 1) as u8;
        self.reg[idx] = self.reg[idx].max(rho); // branch-free: whether it changes is data-dependent
    }
    pub fn merge(&mut self, o: &Hll) -> Result<()> {
        if o.p != self.p {
            return Err(Error::Input(format!("cannot merge HLL p={} with p={}", self.p, o.p)));
        }
        for (a, &b) in self.reg.iter_mut().zip(&o.reg) {
            *a = (*a).max(b);
        }
        Ok(())
    }
    pub fn estimate(&self) -> f64 {
        let m = self.reg.len() as f64;
        let q = 64 - self.p as usize;
        let mut c = vec![0u64; q + 2];
        for &r in &self.reg {
            c[r as usize] += 1;
        }
        let mut z = m * tau(1.0 - c[q + 1] as f64 / m);
        for k in (1..=q).rev() {
            z = 0.5 * (z + c[k] as f64);
        }
        z += m * sigma(c[0] as f64 / m);
        (m * m / (2.0 * std::f64::consts::LN_2)) / z
    }
    pub fn write(&self, w: &mut Writer) {
        w.u8(self.p);
        w.bytes(&self.reg);
    }
    pub fn read(r: &mut Reader) -> Result<Self> {
        let p = r.u8()?;
        let reg = r.bytes()?;
        if !(4..=18).contains(&p) || reg.len() != 1 << p {
            return Err(Error::Corrupt("bad HLL header".into()));
        }
        Ok(Hll { p, reg })
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(KIND_HLL);
        self.write(&mut w);
        w.buf
    }
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b, KIND_HLL)?;
        let h = Hll::read(&mut r)?;
        r.finish()?;
        Ok(h)
    }
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z0 = z;
        z += x * y;
        y += y;
        if z == z0 {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z0 = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == z0 {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn hll_within_three_sigma() {
        for &(p, n) in &[(12u8, 100u64), (12, 10_000), (14, 1_000_000), (10, 50_000)] {
            let mut h = Hll::new(p).unwrap();
            for k in 0..n {
                h.insert(k * 7919);
            }
            let e = h.estimate();
            let tol = 3.0 * h.relative_error() * n as f64;
            assert!((e - n as f64).abs() <= tol.max(2.0), "p={p} n={n} est={e}");
        }
    }
    #[test]
    fn hll_merge_and_bytes() {
        let mut a = Hll::new(10).unwrap();
        let mut b = Hll::new(10).unwrap();
        let mut one = Hll::new(10).unwrap();
        for k in 0..5000u64 {
            if k % 3 == 0 { a.insert(k) } else { b.insert(k) }
            one.insert(k);
        }
        a.merge(&b).unwrap();
        assert_eq!(a, one);
        assert_eq!(Hll::from_bytes(&a.to_bytes()).unwrap(), a);
        assert!(Hll::from_bytes(&a.to_bytes()[..20]).is_err());
    }
}

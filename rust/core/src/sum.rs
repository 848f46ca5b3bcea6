//! Order-independent summation of information terms.
//!
//! Each term is rounded once to a multiple of 2^-70 and accumulated in an i128. Integer addition is
//! associative, so the total does not depend on iteration order (hash-map order, shard merge
//! order, thread count): statistics are bit-identical however the counts were gathered. The
//! rounding error is < 2^-70 (about 8.5e-22) per term, far below f64 resolution of the result.
const SCALE: f64 = 1180591620717411303424.0; // 2^70

#[derive(Default, Clone, Copy, Debug)]
pub struct FixedSum(i128);

impl FixedSum {
    #[inline]
    pub fn add(&mut self, t: f64) {
        self.0 = self.0.wrapping_add((t * SCALE) as i128);
    }
    pub fn value(&self) -> f64 {
        self.0 as f64 / SCALE
    }
}

/// c * ln(num / den) with num, den exact integers; ln_1p((num-den)/den) keeps full relative
/// precision when the ratio is close to 1 (the near-zero-MI regime where naive formulas cancel).
#[inline]
pub fn c_ln_ratio(c: u64, num: u128, den: u128) -> f64 {
    if c == 0 {
        return 0.0;
    }
    let d = num as i128 - den as i128;
    c as f64 * ((d as f64) / (den as f64)).ln_1p()
}

/// Plug-in entropy (nats) of a count vector.
pub fn entropy_counts(counts: impl IntoIterator<Item = u64>) -> f64 {
    let v: Vec<u64> = counts.into_iter().filter(|&c| c > 0).collect();
    let n: u64 = v.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let mut s = FixedSum::default();
    for c in v {
        s.add(c_ln_ratio(c, n as u128, c as u128));
    }
    (s.value() / n as f64).max(0.0)
}

/// Which estimator turns counts into entropies / information values.
///
/// * `Plugin`: maximum likelihood (empirical frequencies); biased low for entropy, high for MI when
///   cells are many relative to rows.
/// * `MillerMadow`: H_MM = H_plugin + (m - 1) / (2N), m = number of non-empty cells. Information
///   values are the matching entropy combinations, so e.g. I(X;Y) = H(X) + H(Y) - H(X,Y) gets
///   (m_x + m_y - m_xy - 1) / (2N) and I(X;Y|Z) = H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z) gets
///   (m_xz + m_yz - m_xyz - m_z) / (2N). Corrected MI/CMI may be negative (no clipping).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Estimator {
    #[default]
    Plugin,
    MillerMadow,
}

impl Estimator {
    /// Parse "plugin" | "miller-madow" (also "mm", "miller_madow").
    pub fn parse(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "plugin" | "plug-in" => Ok(Estimator::Plugin),
            "miller-madow" | "miller_madow" | "mm" => Ok(Estimator::MillerMadow),
            _ => Err(crate::Error::Input(format!("unknown estimator {s:?}; use 'plugin' or 'miller-madow'"))),
        }
    }

    /// Correct a plug-in value built from entropies: `cells` is Σ sign·m over the joint entropies
    /// of the combination (e.g. m_x + m_y - m_xy for I(X;Y)), `consts` is Σ sign over them (the
    /// "-1" of each (m-1) term: +1 for H, +1 for I(X;Y) = 1+1-1, 0 for I(X;Y|Z) = 1+1-1-1).
    #[inline]
    fn correct(self, plugin: f64, cells: i64, consts: i64, n: u64) -> f64 {
        match self {
            Estimator::Plugin => plugin,
            Estimator::MillerMadow if n == 0 => plugin,
            Estimator::MillerMadow => plugin + (cells - consts) as f64 / (2.0 * n as f64),
        }
    }
    /// H(X) from its plug-in value and m_x non-empty cells.
    pub fn entropy(self, plugin: f64, m: u64, n: u64) -> f64 {
        self.correct(plugin, m as i64, 1, n)
    }
    /// I(X;Y) from its plug-in value and the non-empty cell counts of X, Y and (X,Y).
    pub fn mi(self, plugin: f64, mx: u64, my: u64, mxy: u64, n: u64) -> f64 {
        self.correct(plugin, mx as i64 + my as i64 - mxy as i64, 1, n)
    }
    /// I(X;Y|Z) from its plug-in value and the non-empty cell counts of (X,Z), (Y,Z), (X,Y,Z), Z.
    pub fn cmi(self, plugin: f64, mxz: u64, myz: u64, mxyz: u64, mz: u64, n: u64) -> f64 {
        self.correct(plugin, mxz as i64 + myz as i64 - mxyz as i64 - mz as i64, 0, n)
    }
}

/// Expected plug-in I(X;Y) under independence for kx x ky categories and n rows, to first order:
/// 2N·I is the G statistic, asymptotically chi-square with (kx-1)(ky-1) degrees of freedom, so
/// E[I] ≈ (kx-1)(ky-1) / (2N). For I(X;Y|Z) with kz strata: kz (kx-1)(ky-1) / (2N).
pub fn independence_bias(kx: u64, ky: u64, kz: u64, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    kz as f64 * kx.saturating_sub(1) as f64 * ky.saturating_sub(1) as f64 / (2.0 * n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn miller_madow_terms() {
        let e = Estimator::MillerMadow;
        assert_eq!(e.entropy(1.0, 5, 10), 1.0 + 4.0 / 20.0);
        // I(X;Y) = H(X)+H(Y)-H(X,Y): (mx-1)+(my-1)-(mxy-1) = mx+my-mxy-1
        assert_eq!(e.mi(0.5, 3, 2, 6, 100), 0.5 + (3.0 + 2.0 - 6.0 - 1.0) / 200.0);
        assert_eq!(e.cmi(0.5, 6, 4, 12, 2, 100), 0.5 + (6.0 + 4.0 - 12.0 - 2.0) / 200.0);
        assert_eq!(Estimator::Plugin.mi(0.5, 3, 2, 6, 100), 0.5);
        assert!(Estimator::parse("nope").is_err());
        assert_eq!(independence_bias(3, 2, 1, 100), 2.0 / 200.0);
    }
}

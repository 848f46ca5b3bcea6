//! leanrec-core: pure-Rust, mergeable, serialisable statistics accumulators.
//!
//! * [`CategoricalAcc`]: exact frequency table of u64 keys jointly with up to 8 binary labels
//!   (entropy, MI with each label, I(X; l_j | l_i), top-k, distinct), falling back to hashed bins
//!   when a memory budget would be exceeded.
//! * [`PairAcc`]: joint table of two fields with the labels: I(A;B), I(A; l | B), I(B; l | A).
//! * [`NumericAcc`]: count / mean / variance (Chan merge) / min / max / zeros.
//! * [`Hll`]: HyperLogLog with a fixed-seed hash.
//! * [`info`]: entropy / MI / CMI / chi2 on plain code vectors.
//!
//! Rows carry a *label pattern* (bit i = label i), so one increment per row and field records the
//! full joint distribution of the key with all labels; every label statistic is derived from it.
//! Information sums use an order-independent fixed-point accumulator ([`sum::FixedSum`]), so merging
//! shards in any order gives bit-identical statistics to one pass.
pub mod arrow;
pub mod cat;
pub mod codec;
pub mod delimited;
pub mod error;
pub mod field;
pub mod hash;
pub mod hll;
pub mod info;
pub mod mask;
pub mod matrix;
pub mod numeric;
pub mod parquet;
pub mod pair;
pub mod sum;

pub use cat::{CatConfig, CategoricalAcc, FieldStats};
pub use error::{Error, Result};
pub use field::FieldCounter;
pub use hll::Hll;
pub use numeric::{Bitmap, NumericAcc};
pub use pair::{PairAcc, PairStats, Side};
pub use sum::Estimator;

/// Build a pattern byte per row from label columns (each 0/1). At most 8 labels.
pub fn label_patterns(labels: &[&[u8]], n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    for (i, col) in labels.iter().enumerate() {
        for (o, &v) in out.iter_mut().zip(col.iter()) {
            *o |= (v & 1) << i;
        }
    }
    out
}

/// Run `f` on a rayon pool with `threads` threads (None or 0 = rayon's global pool, all cores).
pub fn with_threads<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match threads {
        None | Some(0) => Ok(f()),
        Some(n) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| Error::Input(format!("cannot build a thread pool of {n}: {e}")))?;
            Ok(pool.install(f))
        }
    }
}

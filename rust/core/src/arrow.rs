//! Arrow columns into the accumulators: which key each value is counted under, and the fast paths
//! (integer and dictionary columns counted straight into dense tables, see [`crate::field`]).
//!
//! Keys: integers as they are (two's complement), raw bytes (strings, binary) hashed with xxh3
//! ([`crate::hash::hash_bytes`]), floats by their bit pattern with -0.0 folded into 0.0, booleans 0/1.
//! A *numeric* field is counted by float64 value instead ([`KeyMap::Float`], NaN as null), so a
//! typed integer column and the same numbers read from text give the same keys.
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType};
use arrow_schema::DataType;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::field::FieldCounter;
use crate::hash::{float_key, hash_bytes, KeyMap};
use crate::numeric::{Bitmap, NumValue};
use crate::{NumericAcc, PairAcc};

fn unsupported(t: &DataType) -> Error {
    Error::Unsupported(format!("unsupported Arrow type {t} (use integers, strings, binary, dictionary, float or bool)"))
}

/// Raw bytes of row `i` of a string / binary column (empty for other types).
pub fn bytes_at(a: &ArrayRef, i: usize) -> &[u8] {
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i).as_bytes(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).as_bytes(),
        DataType::Utf8View => a.as_string_view().value(i).as_bytes(),
        DataType::Binary => a.as_binary::<i32>().value(i),
        DataType::LargeBinary => a.as_binary::<i64>().value(i),
        DataType::BinaryView => a.as_binary_view().value(i),
        _ => &[],
    }
}

fn is_bytes(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Binary | DataType::LargeBinary | DataType::BinaryView)
}

/// Whether a column's keys are raw-byte hashes (so accumulators should keep the values).
pub fn column_is_bytes(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(_, v) => is_bytes(v),
        t => is_bytes(t),
    }
}

/// The validity bitmap of a column when it has nulls.
fn bitmap(a: &dyn Array) -> Option<Bitmap<'_>> {
    a.nulls().filter(|n| n.null_count() > 0).map(|n| Bitmap { bits: n.inner().values(), offset: n.offset() })
}

/// Keys of every row of a non-dictionary column (nulls not marked).
fn plain_keys(a: &ArrayRef) -> Result<Vec<u64>> {
    macro_rules! ints {
        ($t:ty) => {
            a.as_primitive::<$t>().values().iter().map(|&v| v as i64 as u64).collect()
        };
    }
    Ok(match a.data_type() {
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().values().to_vec(),
        DataType::Float32 => a.as_primitive::<Float32Type>().values().iter().map(|&v| float_key(v as f64)).collect(),
        DataType::Float64 => a.as_primitive::<Float64Type>().values().iter().map(|&v| float_key(v)).collect(),
        DataType::Boolean => a.as_boolean().values().iter().map(|b| b as u64).collect(),
        DataType::Null => vec![0; a.len()],
        t if is_bytes(t) => (0..a.len()).into_par_iter().map(|i| if a.is_null(i) { 0 } else { hash_bytes(bytes_at(a, i)) }).collect(),
        t => return Err(unsupported(t)),
    })
}

fn validity(a: &dyn Array) -> Option<Vec<bool>> {
    a.logical_nulls().filter(|n| n.null_count() > 0).map(|n| n.iter().collect())
}

/// Keys of one Arrow column (the general path): `valid[i] == false` marks a null; `raw` keeps the
/// byte source of string / binary values (through `dict_idx` for a dictionary's values).
pub struct Keys {
    pub keys: Vec<u64>,
    pub valid: Option<Vec<bool>>,
    raw: Option<ArrayRef>,
    dict_idx: Option<Vec<usize>>,
}

impl Keys {
    /// Raw bytes of row `i` (empty when the column has none).
    pub fn raw_at(&self, i: usize) -> &[u8] {
        match (&self.raw, &self.dict_idx) {
            (Some(r), Some(idx)) => bytes_at(r, idx[i]),
            (Some(r), None) => bytes_at(r, i),
            _ => &[],
        }
    }

    /// Whether the keys hash raw bytes.
    pub fn has_raw(&self) -> bool {
        self.raw.is_some()
    }
}

/// Keys of a column as the general path counts it; `numeric`: counted by float64 value (integers
/// converted, NaN as null), as numeric fields are.
pub fn to_keys(a: &ArrayRef, numeric: bool) -> Result<Keys> {
    if numeric {
        macro_rules! nums {
            ($t:ty) => {
                a.as_primitive::<$t>().values().iter().map(|&v| float_key(NumValue::f64(v))).collect::<Vec<u64>>()
            };
        }
        let keys: Option<Vec<u64>> = match a.data_type() {
            DataType::Int8 => Some(nums!(Int8Type)),
            DataType::Int16 => Some(nums!(Int16Type)),
            DataType::Int32 => Some(nums!(Int32Type)),
            DataType::Int64 => Some(nums!(Int64Type)),
            DataType::UInt8 => Some(nums!(UInt8Type)),
            DataType::UInt16 => Some(nums!(UInt16Type)),
            DataType::UInt32 => Some(nums!(UInt32Type)),
            DataType::UInt64 => Some(nums!(UInt64Type)),
            DataType::Float32 | DataType::Float64 => None,
            t => return Err(Error::Unsupported(format!("a numeric field needs an integer or float column, got {t}"))),
        };
        if let Some(keys) = keys {
            return Ok(Keys { keys, valid: validity(a.as_ref()), raw: None, dict_idx: None });
        }
        // floats: NaN is null
        let keys = plain_keys(a)?;
        let nan = |i: usize| match a.data_type() {
            DataType::Float32 => a.as_primitive::<Float32Type>().value(i).is_nan(),
            _ => a.as_primitive::<Float64Type>().value(i).is_nan(),
        };
        let base = validity(a.as_ref());
        let valid: Vec<bool> = (0..a.len()).map(|i| base.as_ref().is_none_or(|v| v[i]) && !nan(i)).collect();
        let valid = if valid.iter().all(|&v| v) { None } else { Some(valid) };
        return Ok(Keys { keys, valid, raw: None, dict_idx: None });
    }
    if let DataType::Dictionary(kt, _) = a.data_type() {
        macro_rules! dict {
            ($t:ty) => {{
                let d = a.as_dictionary::<$t>();
                let vals = d.values().clone();
                let vkeys = plain_keys(&vals)?;
                let idx: Vec<usize> = d.keys().values().iter().map(|&k| k as usize).collect();
                let keys = idx.iter().map(|&k| vkeys.get(k).copied().unwrap_or(0)).collect();
                let raw = if is_bytes(vals.data_type()) { Some(vals) } else { None };
                (keys, raw, Some(idx))
            }};
        }
        let (keys, raw, dict_idx) = match kt.as_ref() {
            DataType::Int8 => dict!(Int8Type),
            DataType::Int16 => dict!(Int16Type),
            DataType::Int32 => dict!(Int32Type),
            DataType::Int64 => dict!(Int64Type),
            DataType::UInt8 => dict!(UInt8Type),
            DataType::UInt16 => dict!(UInt16Type),
            DataType::UInt32 => dict!(UInt32Type),
            DataType::UInt64 => dict!(UInt64Type),
            t => return Err(Error::Unsupported(format!("unsupported dictionary key type {t}"))),
        };
        return Ok(Keys { keys, valid: validity(a.as_ref()), raw, dict_idx });
    }
    let raw = if is_bytes(a.data_type()) { Some(a.clone()) } else { None };
    Ok(Keys { keys: plain_keys(a)?, valid: validity(a.as_ref()), raw, dict_idx: None })
}

/// Count one column of a batch into a field counter (`pats`: the rows' label patterns). Integer
/// columns and integer-valued float columns of numeric fields go to the dense table, dictionary
/// columns are counted by index and added once per used entry, the rest through [`to_keys`]. Every
/// path gives the accumulator the general path gives.
pub fn count_field(counter: &mut FieldCounter, a: &ArrayRef, pats: &[u8], numeric: bool) -> Result<()> {
    count_field_in(counter, a, pats, numeric, None)
}

/// [`count_field`] with an integer column's range from [`int_range`] when the caller has it.
pub fn count_field_in(counter: &mut FieldCounter, a: &ArrayRef, pats: &[u8], numeric: bool, range: Option<(i64, i64)>) -> Result<()> {
    let valid = bitmap(a.as_ref());
    let map = if numeric { KeyMap::Float } else { KeyMap::Int };
    if !counter.peek().keeps_values() {
        macro_rules! ints {
            ($t:ty) => {
                return counter.count_ints_in(a.as_primitive::<$t>().values().as_ref(), valid, pats, map, range)
            };
        }
        match a.data_type() {
            DataType::Int8 => ints!(Int8Type),
            DataType::Int16 => ints!(Int16Type),
            DataType::Int32 => ints!(Int32Type),
            DataType::Int64 => ints!(Int64Type),
            DataType::UInt8 => ints!(UInt8Type),
            DataType::UInt16 => ints!(UInt16Type),
            DataType::UInt32 => ints!(UInt32Type),
            DataType::UInt64 => ints!(UInt64Type),
            DataType::Float64 if numeric => return counter.count_floats(a.as_primitive::<Float64Type>().values().as_ref(), valid, pats),
            DataType::Float32 if numeric => return counter.count_floats(a.as_primitive::<Float32Type>().values().as_ref(), valid, pats),
            _ => {}
        }
    }
    if let (DataType::Dictionary(kt, _), false) = (a.data_type(), numeric) {
        macro_rules! dict {
            ($t:ty) => {{
                let d = a.as_dictionary::<$t>();
                return count_dictionary(counter, a, d.keys(), d.values(), pats);
            }};
        }
        match kt.as_ref() {
            DataType::Int8 => dict!(Int8Type),
            DataType::Int16 => dict!(Int16Type),
            DataType::Int32 => dict!(Int32Type),
            DataType::Int64 => dict!(Int64Type),
            DataType::UInt8 => dict!(UInt8Type),
            DataType::UInt16 => dict!(UInt16Type),
            DataType::UInt32 => dict!(UInt32Type),
            DataType::UInt64 => dict!(UInt64Type),
            _ => {}
        }
    }
    let keys = to_keys(a, numeric)?;
    if counter.peek().keeps_values() && !keys.has_raw() {
        return Err(Error::Input("this accumulator counts strings/binary; got a non-string column".into()));
    }
    let raw = |i: usize| keys.raw_at(i);
    let rawf: Option<&crate::cat::RawFn> = if counter.peek().keeps_values() { Some(&raw) } else { None };
    counter.count_keys(&keys.keys, keys.valid.as_deref(), pats, rawf)
}

/// A dictionary column: counted by index when the dictionary is no larger than the batch, else by key.
fn count_dictionary<K>(counter: &mut FieldCounter, a: &ArrayRef, idx: &arrow_array::PrimitiveArray<K>, values: &ArrayRef, pats: &[u8]) -> Result<()>
where
    K: ArrowPrimitiveType,
    K::Native: crate::matrix::Code,
{
    let keeps = counter.peek().keeps_values();
    if keeps && !is_bytes(values.data_type()) {
        return Err(Error::Input("this accumulator counts strings/binary; got a non-string column".into()));
    }
    if values.len() > idx.len() {
        // each used entry is added once per batch: beyond the batch's rows that costs more than it saves
        let keys = to_keys(a, false)?;
        let raw = |i: usize| keys.raw_at(i);
        let rawf: Option<&crate::cat::RawFn> = if keeps { Some(&raw) } else { None };
        return counter.count_keys(&keys.keys, keys.valid.as_deref(), pats, rawf);
    }
    let vkeys = plain_keys(values)?;
    let vnull = values.logical_nulls();
    let key = |j: usize| if vnull.as_ref().is_some_and(|n| n.is_null(j)) { None } else { Some(vkeys[j]) };
    let raw = |j: usize| bytes_at(values, j);
    counter.count_dictionary(idx.values().as_ref(), bitmap(idx), pats, values.len(), &key, &raw)
}

/// Count one Arrow column into a numeric accumulator, reading its values buffer and validity
/// bitmap in place (no copy, no cast).
pub fn numeric_update(acc: &mut NumericAcc, a: &ArrayRef) -> Result<()> {
    let valid = bitmap(a.as_ref());
    macro_rules! go {
        ($t:ty) => {
            acc.update(a.as_primitive::<$t>().values().as_ref(), valid)
        };
    }
    match a.data_type() {
        DataType::Float64 => go!(Float64Type),
        DataType::Float32 => go!(Float32Type),
        DataType::Int8 => go!(Int8Type),
        DataType::Int16 => go!(Int16Type),
        DataType::Int32 => go!(Int32Type),
        DataType::Int64 => go!(Int64Type),
        DataType::UInt8 => go!(UInt8Type),
        DataType::UInt16 => go!(UInt16Type),
        DataType::UInt32 => go!(UInt32Type),
        DataType::UInt64 => go!(UInt64Type),
        DataType::Null => acc.merge(&NumericAcc { nulls: a.len() as u64, ..Default::default() }),
        t => return Err(Error::Unsupported(format!("numeric statistics need an integer or float column, got {t}"))),
    }
    Ok(())
}

/// Label patterns (bit i = label i) from typed label columns (integers, floats, booleans), or None when
/// a value is null, NaN or not 0/1, or a column has another type (the caller then validates the batch
/// itself and reports the bad row).
pub fn label_patterns(labels: &[ArrayRef], n: usize) -> Option<Vec<u8>> {
    if labels.len() > 8 || labels.iter().any(|a| a.len() != n) {
        return None;
    }
    let mut pats = vec![0u8; n];
    for (bit, a) in labels.iter().enumerate() {
        if a.null_count() > 0 {
            return None;
        }
        macro_rules! set {
            ($t:ty) => {{
                let mut bad = false;
                for (p, &v) in pats.iter_mut().zip(a.as_primitive::<$t>().values().iter()) {
                    let one = v == (1 as <$t as ArrowPrimitiveType>::Native);
                    bad |= !one & (v != (0 as <$t as ArrowPrimitiveType>::Native));
                    *p |= (one as u8) << bit;
                }
                if bad {
                    return None;
                }
            }};
        }
        match a.data_type() {
            DataType::Int8 => set!(Int8Type),
            DataType::Int16 => set!(Int16Type),
            DataType::Int32 => set!(Int32Type),
            DataType::Int64 => set!(Int64Type),
            DataType::UInt8 => set!(UInt8Type),
            DataType::UInt16 => set!(UInt16Type),
            DataType::UInt32 => set!(UInt32Type),
            DataType::UInt64 => set!(UInt64Type),
            DataType::Float32 => set!(Float32Type),
            DataType::Float64 => set!(Float64Type),
            DataType::Boolean => {
                for (p, v) in pats.iter_mut().zip(a.as_boolean().values().iter()) {
                    *p |= (v as u8) << bit;
                }
            }
            _ => return None,
        }
    }
    Some(pats)
}

/// Smallest and largest value of an integer column over every slot (nulls' slots too), None for
/// other types.
pub fn int_range(a: &ArrayRef) -> Option<(i64, i64)> {
    macro_rules! ints {
        ($t:ty) => {
            Some(crate::field::min_max(a.as_primitive::<$t>().values().as_ref()))
        };
    }
    match a.data_type() {
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        _ => None,
    }
}

/// What [`count_batch`] needs to know before counting a batch as it is: the rows' label patterns from
/// typed label columns, and the range of each numeric field's integer column (in `fields` order; None
/// for other columns). None when the batch must be validated first: a label is null, NaN, not 0/1 or of
/// another type, or a numeric integer column holds a value a float64 cast rejects (beyond ±2^53; the
/// range covers null slots too, so their contents can only send a batch the slow way). Columns in parallel.
pub fn check_batch(labels: &[ArrayRef], fields: &[(&ArrayRef, bool)], n: usize) -> Option<(Vec<u8>, Vec<Option<(i64, i64)>>)> {
    const LIM: i64 = 1 << 53;
    let pats = label_patterns(labels, n)?;
    let ranges: Vec<Option<(i64, i64)>> = fields.par_iter().map(|(a, numeric)| if *numeric { int_range(a) } else { None }).collect();
    let exact = ranges.iter().zip(fields).all(|(r, (a, _))| a.is_empty() || r.is_none_or(|(lo, hi)| lo >= -LIM && hi <= LIM));
    exact.then_some((pats, ranges))
}

/// One unit of work of [`count_batch`].
pub enum Job<'a> {
    /// A field's categorical statistics (`numeric`: counted by float value; the integer column's range
    /// when known, see [`check_batch`]).
    Field(&'a mut FieldCounter, ArrayRef, bool, Option<(i64, i64)>),
    Numeric(&'a mut NumericAcc, ArrayRef),
    /// A pair of columns, each with its `numeric` flag.
    Pair(&'a mut PairAcc, ArrayRef, ArrayRef, bool, bool),
}

/// Count one batch: every job in parallel (rayon), all with the rows' label patterns `pats`.
pub fn count_batch(jobs: &mut [Job], pats: &[u8]) -> Result<()> {
    if let Some(n) = jobs.iter().map(|j| match j {
        Job::Field(_, a, ..) | Job::Numeric(_, a) => a.len(),
        Job::Pair(_, a, b, _, _) => a.len().max(b.len()),
    }).find(|&n| n != pats.len()) {
        return Err(Error::Input(format!("a column of {n} rows in a batch of {}", pats.len())));
    }
    jobs.par_iter_mut().with_max_len(1).try_for_each(|job| match job {
        Job::Field(c, a, numeric, range) => count_field_in(c, a, pats, *numeric, *range),
        Job::Numeric(acc, a) => numeric_update(acc, a),
        Job::Pair(acc, a, b, na, nb) => {
            let (ka, kb) = (to_keys(a, *na)?, to_keys(b, *nb)?);
            if a.len() != b.len() {
                return Err(Error::Input("pair columns differ in length".into()));
            }
            acc.update(&ka.keys, &kb.keys, ka.valid.as_deref(), kb.valid.as_deref(), pats)
        }
    })
}

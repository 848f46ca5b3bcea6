//! Thin pyo3 bindings over `leanrec-core`, exposed to Python as `leanrec._native`.
//!
//! Arrow columns arrive zero-copy through the Arrow PyCapsule interface (pyo3-arrow), so pyarrow,
//! polars and duckdb objects all work; code matrices and labels arrive as numpy arrays. Every heavy
//! call releases the GIL (`py.detach`) and runs on rayon (thread count settable per call). How
//! Arrow columns are keyed and counted, and file decompression, live in the core crate
//! (`core::arrow`, `core::delimited`); this crate only converts arguments and results.
use arrow_array::{Array, ArrayRef};
use leanrec_core as core;
use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3_arrow::PyArray;

fn err(e: core::Error) -> PyErr {
    match e {
        core::Error::Unsupported(m) => PyTypeError::new_err(m),
        e => PyValueError::new_err(e.to_string()),
    }
}

fn estimator(name: &str) -> PyResult<core::Estimator> {
    core::Estimator::parse(name).map_err(err)
}

// ---------------------------------------------------------------- Arrow columns (keys: core::arrow)

fn keys_of(x: &PyArray) -> PyResult<core::arrow::Keys> {
    core::arrow::to_keys(x.array(), false).map_err(err)
}

// ---------------------------------------------------------------- labels

/// (N, L) uint8 0/1 labels (C-contiguous) -> one pattern byte per row.
fn patterns(labels: Option<PyReadonlyArray2<u8>>, n: usize, n_labels: usize) -> PyResult<Vec<u8>> {
    let Some(lab) = labels else {
        if n_labels != 0 {
            return Err(PyValueError::new_err(format!("labels missing: this accumulator expects {n_labels}")));
        }
        return Ok(vec![0; n]);
    };
    let shape = lab.shape();
    if shape[0] != n || shape[1] != n_labels {
        return Err(PyValueError::new_err(format!("labels have shape {:?}, expected ({n}, {n_labels})", shape)));
    }
    let s = lab.as_slice().map_err(|_| PyValueError::new_err("labels must be C-contiguous uint8"))?;
    let mut out = vec![0u8; n];
    for (r, o) in out.iter_mut().enumerate() {
        for l in 0..n_labels {
            let v = s[r * n_labels + l];
            if v > 1 {
                return Err(PyValueError::new_err(format!("label {l} at row {r} is {v}; labels must be 0 or 1")));
            }
            *o |= v << l;
        }
    }
    Ok(out)
}

fn stats_dict<'py>(py: Python<'py>, s: &core::FieldStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("rows", s.rows)?;
    d.set_item("nulls", s.nulls)?;
    d.set_item("distinct", s.distinct)?;
    d.set_item("hll", s.hll)?;
    d.set_item("entropy", s.entropy)?;
    d.set_item("mi", s.mi.clone())?;
    d.set_item("nmi", s.nmi.clone())?;
    d.set_item("label_cmi", s.label_cmi.clone())?;
    d.set_item("positives", s.positives.clone())?;
    d.set_item("approx", s.approx)?;
    Ok(d)
}

// ---------------------------------------------------------------- accumulator classes

/// Exact (budgeted) frequency table of one categorical field jointly with binary labels.
#[pyclass(module = "leanrec._native")]
struct FieldAccumulator {
    inner: core::FieldCounter,
}

#[pymethods]
impl FieldAccumulator {
    #[new]
    #[pyo3(signature = (n_labels=1, *, budget_bytes=256<<20, hll_precision=14, dense_limit=1<<24, keep_values=false))]
    fn new(n_labels: usize, budget_bytes: usize, hll_precision: u8, dense_limit: u64, keep_values: bool) -> PyResult<Self> {
        let cfg = core::CatConfig { n_labels, dense_limit, budget_bytes, hll_p: hll_precision };
        Ok(FieldAccumulator { inner: core::FieldCounter::new(core::CategoricalAcc::new(cfg, keep_values).map_err(err)?) })
    }
    /// Count a column; `numeric`: count it by float64 value (NaN as null), as numeric fields are.
    #[pyo3(signature = (values, labels=None, numeric=false))]
    fn update(&mut self, py: Python<'_>, values: PyArray, labels: Option<PyReadonlyArray2<u8>>, numeric: bool) -> PyResult<()> {
        let n = values.array().len();
        let pats = patterns(labels, n, self.inner.peek().config().n_labels)?;
        let inner = &mut self.inner;
        py.detach(|| core::arrow::count_field(inner, values.array(), &pats, numeric)).map_err(err)
    }
    fn merge(&mut self, other: &Bound<'_, FieldAccumulator>) -> PyResult<()> {
        let mut o = other.try_borrow_mut()?;
        let theirs = o.inner.acc();
        self.inner.acc_mut().merge(theirs).map_err(err)
    }
    // &mut: pending dense counts are added to the accumulator first
    #[allow(clippy::wrong_self_convention)]
    fn to_bytes<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.acc().to_bytes())
    }
    #[staticmethod]
    fn from_bytes(data: &Bound<'_, PyBytes>) -> PyResult<Self> {
        Ok(FieldAccumulator { inner: core::FieldCounter::new(core::CategoricalAcc::from_bytes(data.as_bytes()).map_err(err)?) })
    }
    /// Statistics; `estimator`: "plugin" or "miller-madow".
    #[pyo3(signature = (estimator="plugin"))]
    fn stats<'py>(&mut self, py: Python<'py>, estimator: &str) -> PyResult<Bound<'py, PyDict>> {
        let est = self::estimator(estimator)?;
        let inner = &mut self.inner;
        let s = py.detach(|| inner.acc().stats_with(est));
        stats_dict(py, &s)
    }
    /// [(key, count, raw bytes or None)] by count descending, key ascending.
    #[pyo3(signature = (k=None))]
    fn top_k<'py>(&mut self, py: Python<'py>, k: Option<usize>) -> PyResult<Bound<'py, PyList>> {
        let inner = &mut self.inner;
        let v = py.detach(|| inner.acc().top_k(k));
        let out = PyList::empty(py);
        for (key, c, raw) in v {
            let r: Option<Bound<PyBytes>> = raw.map(|b| PyBytes::new(py, &b));
            out.append((key, c, r))?;
        }
        Ok(out)
    }
    #[getter]
    fn approx(&mut self) -> bool {
        self.inner.acc().is_approx()
    }
    #[getter]
    fn keep_values(&self) -> bool {
        self.inner.peek().keeps_values()
    }
    #[getter]
    fn memory_bytes(&mut self) -> usize {
        self.inner.acc().memory_bytes()
    }
}

/// count / nulls / mean / variance / min / max / zeros of one numeric field (mergeable).
#[pyclass(module = "leanrec._native")]
#[derive(Default)]
struct NumericAccumulator {
    inner: core::NumericAcc,
}

fn num_dict<'py>(py: Python<'py>, s: &core::NumericAcc) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let m = s.summary();
    d.set_item("count", m.count)?;
    d.set_item("nulls", s.nulls)?;
    d.set_item("mean", if m.count > 0 { m.mean } else { f64::NAN })?;
    d.set_item("variance", s.variance())?;
    d.set_item("min", if m.count > 0 { m.min } else { f64::NAN })?;
    d.set_item("max", if m.count > 0 { m.max } else { f64::NAN })?;
    d.set_item("zero_share", s.zero_share())?;
    Ok(d)
}

#[pymethods]
impl NumericAccumulator {
    #[new]
    fn new() -> Self {
        Self::default()
    }
    fn update(&mut self, py: Python<'_>, values: PyArray) -> PyResult<()> {
        let a = values.array();
        let inner = &mut self.inner;
        py.detach(|| core::arrow::numeric_update(inner, a)).map_err(err)
    }
    fn merge(&mut self, other: PyRef<'_, NumericAccumulator>) {
        self.inner.merge(&other.inner)
    }
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }
    #[staticmethod]
    fn from_bytes(data: &Bound<'_, PyBytes>) -> PyResult<Self> {
        Ok(NumericAccumulator { inner: core::NumericAcc::from_bytes(data.as_bytes()).map_err(err)? })
    }
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        num_dict(py, &self.inner)
    }
}

/// Joint table of two fields with the labels: I(A;B), I(A; l | B), I(B; l | A). Nulls are a category.
#[pyclass(module = "leanrec._native")]
struct PairAccumulator {
    inner: core::PairAcc,
    n_labels: usize,
}

fn pair_dict<'py>(py: Python<'py>, s: &core::PairStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("rows", s.rows)?;
    d.set_item("mi_ab", s.mi_ab)?;
    d.set_item("cmi_a_given_b", s.cmi_a_given_b.clone())?;
    d.set_item("cmi_b_given_a", s.cmi_b_given_a.clone())?;
    d.set_item("approx", s.approx)?;
    Ok(d)
}

#[pymethods]
impl PairAccumulator {
    #[new]
    #[pyo3(signature = (n_labels=1, *, budget_bytes=256<<20))]
    fn new(n_labels: usize, budget_bytes: usize) -> PyResult<Self> {
        Ok(PairAccumulator { inner: core::PairAcc::new(n_labels, budget_bytes, None).map_err(err)?, n_labels })
    }
    #[pyo3(signature = (a, b, labels=None))]
    fn update(&mut self, py: Python<'_>, a: PyArray, b: PyArray, labels: Option<PyReadonlyArray2<u8>>) -> PyResult<()> {
        let n = a.array().len();
        if b.array().len() != n {
            return Err(PyValueError::new_err("pair columns differ in length"));
        }
        let pats = patterns(labels, n, self.n_labels)?;
        let (ka, kb) = (keys_of(&a)?, keys_of(&b)?);
        let inner = &mut self.inner;
        py.detach(|| inner.update(&ka.keys, &kb.keys, ka.valid.as_deref(), kb.valid.as_deref(), &pats)).map_err(err)
    }
    fn merge(&mut self, other: PyRef<'_, PairAccumulator>) -> PyResult<()> {
        self.inner.merge(&other.inner).map_err(err)
    }
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }
    #[staticmethod]
    fn from_bytes(data: &Bound<'_, PyBytes>) -> PyResult<Self> {
        let inner = core::PairAcc::from_bytes(data.as_bytes()).map_err(err)?;
        let n_labels = data.as_bytes()[7] as usize;
        Ok(PairAccumulator { inner, n_labels })
    }
    /// Statistics; `estimator`: "plugin" or "miller-madow".
    #[pyo3(signature = (estimator="plugin"))]
    fn stats<'py>(&self, py: Python<'py>, estimator: &str) -> PyResult<Bound<'py, PyDict>> {
        let est = self::estimator(estimator)?;
        let s = py.detach(|| self.inner.stats_with(est));
        pair_dict(py, &s)
    }
    #[getter]
    fn approx(&self) -> bool {
        self.inner.is_approx()
    }
}

/// Update many field accumulators with one batch in parallel (one rayon task per field).
/// `fields` and `numeric` are (accumulator, column) lists; pairs are (accumulator, col_a, col_b).
#[pyfunction]
#[pyo3(signature = (fields, numeric, pairs, labels=None, n_labels=1, threads=None))]
fn update_batch(
    py: Python<'_>,
    fields: Vec<(Py<FieldAccumulator>, PyArray)>,
    numeric: Vec<(Py<NumericAccumulator>, PyArray)>,
    pairs: Vec<(Py<PairAccumulator>, PyArray, PyArray)>,
    labels: Option<PyReadonlyArray2<u8>>,
    n_labels: usize,
    threads: Option<usize>,
) -> PyResult<()> {
    let n = fields
        .first()
        .map(|f| f.1.array().len())
        .or(numeric.first().map(|f| f.1.array().len()))
        .or(pairs.first().map(|p| p.1.array().len()))
        .unwrap_or(0);
    let pats = patterns(labels, n, n_labels)?;
    let fields = fields.into_iter().map(|(a, c)| (a, c.array().clone(), false, None)).collect();
    let numeric = numeric.into_iter().map(|(a, c)| (a, c.array().clone())).collect();
    let pairs = pairs.into_iter().map(|(p, a, b)| (p, a.array().clone(), b.array().clone(), false, false)).collect();
    run_batch(py, fields, numeric, pairs, &pats, threads)
}

/// Count one Arrow batch whose labels are typed 0/1 columns (the fast path of `compute`): `fields` are
/// (accumulator, column, numeric) with numeric fields counted by float64 value, `numeric` (accumulator,
/// column), `pairs` (accumulator, column a, column b, a numeric, b numeric). Returns False, counting
/// nothing, when a label is null / NaN / not 0 or 1 or of another type, or a numeric integer column holds
/// a value a float64 cast rejects (beyond ±2^53): the caller then validates the batch itself.
#[pyfunction]
#[pyo3(signature = (fields, numeric, pairs, labels, threads=None))]
fn count_arrow_batch(
    py: Python<'_>,
    fields: Vec<(Py<FieldAccumulator>, PyArray, bool)>,
    numeric: Vec<(Py<NumericAccumulator>, PyArray)>,
    pairs: Vec<(Py<PairAccumulator>, PyArray, PyArray, bool, bool)>,
    labels: Vec<PyArray>,
    threads: Option<usize>,
) -> PyResult<bool> {
    let n = labels.first().map(|a| a.array().len()).or(fields.first().map(|f| f.1.array().len())).unwrap_or(0);
    let label_cols: Vec<ArrayRef> = labels.iter().map(|a| a.array().clone()).collect();
    let fields: Vec<_> = fields.into_iter().map(|(a, c, num)| (a, c.array().clone(), num)).collect();
    let cols: Vec<(&ArrayRef, bool)> = fields.iter().map(|f| (&f.1, f.2)).collect();
    let checked = py.detach(|| core::with_threads(threads, || core::arrow::check_batch(&label_cols, &cols, n))).map_err(err)?;
    let Some((pats, ranges)) = checked else { return Ok(false) };
    if let Some(acc) = fields.first() {
        if acc.0.borrow(py).inner.peek().config().n_labels != label_cols.len() {
            return Err(PyValueError::new_err(format!("{} label columns for accumulators of {} labels",
                                                     label_cols.len(), acc.0.borrow(py).inner.peek().config().n_labels)));
        }
    }
    let numeric = numeric.into_iter().map(|(a, c)| (a, c.array().clone())).collect();
    let pairs = pairs.into_iter().map(|(p, a, b, na, nb)| (p, a.array().clone(), b.array().clone(), na, nb)).collect();
    let fields = fields.into_iter().zip(ranges).map(|((a, c, num), r)| (a, c, num, r)).collect();
    run_batch(py, fields, numeric, pairs, &pats, threads)?;
    Ok(true)
}

type FieldJob = (Py<FieldAccumulator>, ArrayRef, bool, Option<(i64, i64)>);
type PairJob = (Py<PairAccumulator>, ArrayRef, ArrayRef, bool, bool);

/// Take the accumulators out of their Python objects, count the batch without the GIL
/// (`core::arrow::count_batch`), put them back (also after an error).
fn run_batch(py: Python<'_>, fields: Vec<FieldJob>, numeric: Vec<(Py<NumericAccumulator>, ArrayRef)>,
             pairs: Vec<PairJob>, pats: &[u8], threads: Option<usize>) -> PyResult<()> {
    let mut cat = Vec::new();
    for (acc, ..) in &fields {
        cat.push(take_cat(py, acc)?);
    }
    let mut num: Vec<core::NumericAcc> = numeric.iter().map(|(a, _)| take_num(py, a)).collect();
    let mut prs = Vec::new();
    for (acc, ..) in &pairs {
        prs.push(take_pair(py, acc)?);
    }
    let result = py.detach(|| {
        use core::arrow::Job;
        let mut jobs: Vec<Job> = Vec::new();
        jobs.extend(cat.iter_mut().zip(&fields).map(|(c, f)| Job::Field(c, f.1.clone(), f.2, f.3)));
        jobs.extend(num.iter_mut().zip(&numeric).map(|(c, f)| Job::Numeric(c, f.1.clone())));
        jobs.extend(prs.iter_mut().zip(&pairs).map(|(c, p)| Job::Pair(c, p.1.clone(), p.2.clone(), p.3, p.4)));
        core::with_threads(threads, || core::arrow::count_batch(&mut jobs, pats)).and_then(|r| r)
    });
    restore(py, fields.iter().map(|f| &f.0).zip(cat), numeric.iter().map(|f| &f.0).zip(num),
            pairs.iter().map(|f| &f.0).zip(prs));
    result.map_err(err)
}

// Accumulators are moved out of their Python objects for work without the GIL (an empty one of the
// same configuration stands in) and put back afterwards, also after an error.
fn take_cat(py: Python<'_>, acc: &Py<FieldAccumulator>) -> PyResult<core::FieldCounter> {
    let mut b = acc.borrow_mut(py);
    let cfg = b.inner.peek().config().clone();
    let empty = core::CategoricalAcc::new(cfg, b.inner.peek().keeps_values()).map_err(err)?;
    Ok(std::mem::replace(&mut b.inner, core::FieldCounter::new(empty)))
}

fn take_num(py: Python<'_>, acc: &Py<NumericAccumulator>) -> core::NumericAcc {
    std::mem::take(&mut acc.borrow_mut(py).inner)
}

fn take_pair(py: Python<'_>, acc: &Py<PairAccumulator>) -> PyResult<core::PairAcc> {
    let mut g = acc.borrow_mut(py);
    let empty = core::PairAcc::new(g.n_labels, 1 << 20, None).map_err(err)?;
    Ok(std::mem::replace(&mut g.inner, empty))
}

fn restore<'a>(
    py: Python<'_>,
    cat: impl Iterator<Item = (&'a Py<FieldAccumulator>, core::FieldCounter)>,
    num: impl Iterator<Item = (&'a Py<NumericAccumulator>, core::NumericAcc)>,
    pair: impl Iterator<Item = (&'a Py<PairAccumulator>, core::PairAcc)>,
) {
    cat.for_each(|(a, inner)| a.borrow_mut(py).inner = inner);
    num.for_each(|(a, inner)| a.borrow_mut(py).inner = inner);
    pair.for_each(|(a, inner)| a.borrow_mut(py).inner = inner);
}

/// A bad row for Python: (line, column index or None, message).
type BadRowTuple = (u64, Option<usize>, String);

/// Count a CSV/TSV file straight into the accumulators (see `leanrec_core::delimited`), starting at
/// byte `offset` (after a header line) whose line number is `first_line`. Columns are given by index:
/// `labels` in label-bit order, `text` counted by raw bytes, `number` parsed as numbers; `fields`,
/// `numeric` and `pairs` name (accumulator, column index). `progress(rows, bytes)` is called after each block.
/// `gzip`: the file is gzip-compressed. Returns (rows counted, bad rows skipped, first bad row as (line,
/// column index or None, message)).
#[pyfunction]
#[pyo3(signature = (path, *, offset, first_line, delimiter, n_columns, labels, text, number, fields, numeric, pairs,
                    skip_bad_rows, threads=None, progress=None, block_bytes=8<<20, gzip=false))]
#[allow(clippy::too_many_arguments)]
fn count_delimited(
    py: Python<'_>,
    path: std::path::PathBuf,
    offset: u64,
    first_line: u64,
    delimiter: char,
    n_columns: usize,
    labels: Vec<usize>,
    text: Vec<usize>,
    number: Vec<usize>,
    fields: Vec<(Py<FieldAccumulator>, usize)>,
    numeric: Vec<(Py<NumericAccumulator>, usize)>,
    pairs: Vec<(Py<PairAccumulator>, usize, usize)>,
    skip_bad_rows: bool,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
    block_bytes: usize,
    gzip: bool,
) -> PyResult<(u64, u64, Option<BadRowTuple>)> {
    use core::delimited::{count_stream, Plan, Role, Sinks};
    if !delimiter.is_ascii() {
        return Err(PyValueError::new_err(format!("the delimiter must be one ASCII character, got {delimiter:?}")));
    }
    let mut roles = vec![Role::Ignore; n_columns];
    let assign = |roles: &mut Vec<Role>, cols: &[usize], role: &dyn Fn(usize) -> Role| -> PyResult<()> {
        for (i, &c) in cols.iter().enumerate() {
            match roles.get_mut(c) {
                Some(r @ Role::Ignore) => *r = role(i),
                Some(_) => return Err(PyValueError::new_err(format!("column {c} is given two roles"))),
                None => return Err(PyValueError::new_err(format!("column {c} is out of range ({n_columns} columns)"))),
            }
        }
        Ok(())
    };
    assign(&mut roles, &labels, &|i| Role::Label(i as u8))?;
    assign(&mut roles, &text, &|_| Role::Text)?;
    assign(&mut roles, &number, &|_| Role::Number)?;
    let plan = Plan { delimiter: delimiter as u8, roles, skip_bad_rows, first_line, block_bytes };
    let reader = core::delimited::open_input(&path, offset, gzip).map_err(|e| PyValueError::new_err(format!("{}: {e}", path.display())))?;

    let mut cat = Vec::new();
    for (acc, _) in &fields {
        cat.push(take_cat(py, acc)?);
    }
    let mut num: Vec<core::NumericAcc> = numeric.iter().map(|(a, _)| take_num(py, a)).collect();
    let mut prs = Vec::new();
    for (acc, _, _) in &pairs {
        prs.push(take_pair(py, acc)?);
    }
    let mut interrupted: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut sinks = Sinks {
            cat: fields.iter().map(|f| f.1).zip(cat.iter_mut()).collect(),
            num: numeric.iter().map(|f| f.1).zip(num.iter_mut()).collect(),
            pair: pairs.iter().map(|p| (p.1, p.2)).zip(prs.iter_mut()).map(|((a, b), acc)| (a, b, acc)).collect(),
        };
        // after each block: let Python handle signals (Ctrl-C stops counting) and report progress
        let mut report = |rows: u64, bytes: u64| -> core::Result<()> {
            Python::attach(|py| -> PyResult<()> {
                py.check_signals()?;
                if let Some(cb) = &progress {
                    cb.call1(py, (rows, bytes))?;
                }
                Ok(())
            })
            .map_err(|e| {
                interrupted = Some(e);
                core::Error::Input("interrupted".into())
            })
        };
        core::with_threads(threads, || count_stream(reader, &plan, &mut sinks, &mut report)).and_then(|r| r)
    });
    restore(py, fields.iter().map(|f| &f.0).zip(cat), numeric.iter().map(|f| &f.0).zip(num),
            pairs.iter().map(|f| &f.0).zip(prs));
    if let Some(e) = interrupted {
        return Err(e);
    }
    let out = result.map_err(err)?;
    Ok((out.rows, out.bad_rows, out.first_bad.map(|b| (b.line, b.column, b.message))))
}

/// Count a Parquet file of integer columns straight into the accumulators (see `leanrec_core::parquet`):
/// `labels` are column names in label-bit order; `fields` (accumulator, column, counted by float value) and
/// `numeric` (summary, column; each also in `fields`). `progress(rows, 0)` is called after each row group.
/// Returns None when counted, or why the file was declined (another column type or encoding, a null or
/// non-0/1 label, ...): the accumulators may then hold part of the file, so pass fresh ones and drop them.
#[pyfunction]
#[pyo3(signature = (path, *, labels, fields, numeric, threads=None, progress=None))]
fn count_parquet(
    py: Python<'_>,
    path: std::path::PathBuf,
    labels: Vec<String>,
    fields: Vec<(Py<FieldAccumulator>, String, bool)>,
    numeric: Vec<(Py<NumericAccumulator>, String)>,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Option<String>> {
    if let Some((_, c)) = numeric.iter().find(|(_, c)| !fields.iter().any(|f| &f.1 == c)) {
        return Err(PyValueError::new_err(format!("numeric column {c:?} is not among the fields")));
    }
    let mut cat = Vec::new();
    for (acc, _, _) in &fields {
        cat.push(take_cat(py, acc)?);
    }
    let mut num: Vec<core::NumericAcc> = numeric.iter().map(|(a, _)| take_num(py, a)).collect();
    let mut interrupted: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut sums: Vec<Option<&mut core::NumericAcc>> = num.iter_mut().map(Some).collect();
        let mut jobs: Vec<core::parquet::Job> = fields.iter().zip(cat.iter_mut()).map(|((_, column, is_num), counter)| {
            let summary = numeric.iter().position(|(_, c)| c == column).and_then(|i| sums[i].take());
            core::parquet::Job { column: column.clone(), counter, numeric: *is_num, summary }
        }).collect();
        let mut report = |rows: u64| -> core::Result<()> {
            Python::attach(|py| -> PyResult<()> {
                py.check_signals()?;
                if let Some(cb) = &progress {
                    cb.call1(py, (rows, 0u64))?;
                }
                Ok(())
            })
            .map_err(|e| {
                interrupted = Some(e);
                core::Error::Input("interrupted".into())
            })
        };
        core::with_threads(threads, || core::parquet::count_file(&path, &labels, &mut jobs, &mut report)).and_then(|r| r)
    });
    restore(py, fields.iter().map(|f| &f.0).zip(cat), numeric.iter().map(|f| &f.0).zip(num), std::iter::empty());
    if let Some(e) = interrupted {
        return Err(e);
    }
    match result {
        Ok(_) => Ok(None),
        Err(core::Error::Unsupported(why)) => Ok(Some(why)),
        Err(e) => Err(err(e)),
    }
}

// ---------------------------------------------------------------- 1-D measures

fn keys_no_nulls(x: PyArray, what: &str) -> PyResult<Vec<u64>> {
    let k = keys_of(&x)?;
    if k.valid.is_some() {
        return Err(PyValueError::new_err(format!("{what} contains nulls; fill them with a 'missing' code first")));
    }
    Ok(k.keys)
}

#[pyfunction]
#[pyo3(signature = (x, estimator="plugin"))]
fn entropy(py: Python<'_>, x: PyArray, estimator: &str) -> PyResult<f64> {
    let est = self::estimator(estimator)?;
    let k = keys_no_nulls(x, "x")?;
    Ok(py.detach(|| core::info::entropy(&k, est)))
}

fn same_len(a: &[u64], b: &[u64]) -> PyResult<()> {
    if a.len() != b.len() {
        return Err(PyValueError::new_err(format!("arrays differ in length: {} vs {}", a.len(), b.len())));
    }
    Ok(())
}

#[pyfunction]
#[pyo3(signature = (x, y, estimator="plugin"))]
fn mutual_info(py: Python<'_>, x: PyArray, y: PyArray, estimator: &str) -> PyResult<f64> {
    let est = self::estimator(estimator)?;
    let (a, b) = (keys_no_nulls(x, "x")?, keys_no_nulls(y, "y")?);
    same_len(&a, &b)?;
    Ok(py.detach(|| core::info::mutual_info(&a, &b, est)))
}

#[pyfunction]
#[pyo3(signature = (x, y, z, estimator="plugin"))]
fn conditional_mutual_info(py: Python<'_>, x: PyArray, y: PyArray, z: PyArray, estimator: &str) -> PyResult<f64> {
    let est = self::estimator(estimator)?;
    let (a, b, c) = (keys_no_nulls(x, "x")?, keys_no_nulls(y, "y")?, keys_no_nulls(z, "z")?);
    same_len(&a, &b)?;
    same_len(&a, &c)?;
    Ok(py.detach(|| core::info::cmi(&a, &b, &c, est)))
}

/// Expected plug-in I(X;Y|Z) under independence, kz (kx-1)(ky-1) / (2n) (G-test / chi-square view).
#[pyfunction]
#[pyo3(signature = (kx, ky, n, kz=1))]
fn independence_bias(kx: u64, ky: u64, n: u64, kz: u64) -> f64 {
    core::sum::independence_bias(kx, ky, kz, n)
}

#[pyfunction]
fn chi2(py: Python<'_>, x: PyArray, y: PyArray) -> PyResult<f64> {
    let (a, b) = (keys_no_nulls(x, "x")?, keys_no_nulls(y, "y")?);
    same_len(&a, &b)?;
    Ok(py.detach(|| core::info::chi2(&a, &b)))
}

/// Frequency table of one column: (keys or raw bytes list, counts, null count, is_bytes).
#[pyfunction]
#[pyo3(signature = (x, threads=None))]
fn value_counts<'py>(py: Python<'py>, x: PyArray, threads: Option<usize>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyArray1<u64>>, u64)> {
    let a = x.array();
    let bytes = core::arrow::column_is_bytes(a.data_type());
    let cfg = core::CatConfig { n_labels: 0, budget_bytes: usize::MAX / 4, ..Default::default() };
    let mut counter = core::FieldCounter::new(core::CategoricalAcc::new(cfg, bytes).map_err(err)?);
    let pats = vec![0u8; a.len()];
    let top = py
        .detach(|| core::with_threads(threads, || core::arrow::count_field(&mut counter, a, &pats, false).map(|_| counter.acc().top_k(None))))
        .map_err(err)?
        .map_err(err)?;
    let counts = PyArray1::from_vec(py, top.iter().map(|t| t.1).collect());
    let nulls = a.logical_nulls().map_or(0, |n| n.null_count() as u64);
    let values: Bound<'py, PyAny> = if bytes {
        let l = PyList::empty(py);
        for t in &top {
            l.append(PyBytes::new(py, t.2.as_deref().unwrap_or(&[])))?;
        }
        l.into_any()
    } else {
        PyArray1::from_vec(py, top.iter().map(|t| t.0).collect()).into_any()
    };
    Ok((values, counts, nulls))
}

// ---------------------------------------------------------------- code matrices

enum Mat<'py> {
    I32(PyReadonlyArray2<'py, i32>),
    I64(PyReadonlyArray2<'py, i64>),
}

fn mat<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Mat<'py>> {
    if let Ok(a) = obj.extract::<PyReadonlyArray2<i32>>() {
        return Ok(Mat::I32(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray2<i64>>() {
        return Ok(Mat::I64(a));
    }
    Err(PyTypeError::new_err("codes must be a 2-D int32 or int64 numpy array"))
}

fn with_codes<R: Send>(py: Python<'_>, m: &Mat, threads: Option<usize>, f: impl Fn(&dyn CodesView) -> core::Result<R> + Send + Sync) -> PyResult<R> {
    macro_rules! go {
        ($a:expr) => {{
            let (n, fcount) = ($a.shape()[0], $a.shape()[1]);
            let c_order = $a.is_c_contiguous();
            let s = $a.as_slice().map_err(|_| PyValueError::new_err("codes must be C- or F-contiguous"))?;
            let (rs, fs) = if c_order { (fcount, 1) } else { (1, n) };
            let codes = core::matrix::Codes::new(s, n, fcount, rs, fs).map_err(err)?;
            py.detach(|| core::with_threads(threads, || f(&codes))).map_err(err)?.map_err(err)
        }};
    }
    match m {
        Mat::I32(a) => go!(a),
        Mat::I64(a) => go!(a),
    }
}

/// Object-safe view so one closure serves int32 and int64 matrices.
trait CodesView: Sync {
    fn rows(&self) -> usize;
    fn field_stats(&self, pats: &[u8], cfg: &core::CatConfig, est: core::Estimator) -> core::Result<Vec<core::FieldStats>>;
    fn pair_stats(&self, pats: &[u8], l: usize, pairs: &[(usize, usize)], budget: usize, est: core::Estimator) -> core::Result<Vec<core::PairStats>>;
}

impl<T: core::matrix::Code> CodesView for core::matrix::Codes<'_, T> {
    fn rows(&self) -> usize {
        self.rows
    }
    fn field_stats(&self, pats: &[u8], cfg: &core::CatConfig, est: core::Estimator) -> core::Result<Vec<core::FieldStats>> {
        core::matrix::field_stats(self, pats, cfg, est)
    }
    fn pair_stats(&self, pats: &[u8], l: usize, pairs: &[(usize, usize)], budget: usize, est: core::Estimator) -> core::Result<Vec<core::PairStats>> {
        core::matrix::pair_stats(self, pats, l, pairs, budget, est)
    }
}

/// Per-field statistics of a code matrix (N, F) with labels (N, L) uint8.
#[pyfunction]
#[pyo3(signature = (codes, labels, threads=None, budget_bytes=1<<30, estimator="plugin"))]
fn matrix_field_stats<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
    labels: Option<PyReadonlyArray2<'py, u8>>,
    threads: Option<usize>,
    budget_bytes: usize,
    estimator: &str,
) -> PyResult<Bound<'py, PyList>> {
    let est = self::estimator(estimator)?;
    let m = mat(codes)?;
    let (n, l) = (codes.getattr("shape")?.get_item(0)?.extract::<usize>()?, labels.as_ref().map_or(0, |a| a.shape()[1]));
    let pats = patterns(labels, n, l)?;
    let cfg = core::CatConfig { n_labels: l, budget_bytes, dense_limit: 1 << 26, hll_p: 14 };
    let stats = with_codes(py, &m, threads, |c| c.field_stats(&pats, &cfg, est))?;
    let out = PyList::empty(py);
    for s in &stats {
        out.append(stats_dict(py, s)?)?;
    }
    Ok(out)
}

/// Inverted dropout of a contiguous float32 array into `out`: each element zeroed with probability
/// `p`, else scaled by 1 / (1 - p), by a counter-based mask drawn from `seed` (so a backward pass
/// regenerates it from the seed).
#[pyfunction]
fn dropout<'py>(
    py: Python<'py>,
    x: PyReadonlyArray1<'py, f32>,
    mut out: PyReadwriteArray1<'py, f32>,
    p: f64,
    seed: u64,
) -> PyResult<()> {
    if !(0.0..1.0).contains(&p) {
        return Err(PyValueError::new_err(format!("dropout probability must be in [0, 1), got {p}")));
    }
    let contiguous = || PyValueError::new_err("dropout needs contiguous arrays");
    let xs = x.as_slice().map_err(|_| contiguous())?;
    let os = out.as_slice_mut().map_err(|_| contiguous())?;
    if xs.len() != os.len() {
        return Err(PyValueError::new_err(format!("dropout input has {} elements, output {}", xs.len(), os.len())));
    }
    py.detach(|| core::mask::dropout(xs, os, p, seed));
    Ok(())
}

/// Pair statistics of a code matrix for the given (a, b) pairs.
#[pyfunction]
#[pyo3(signature = (codes, labels, pairs, threads=None, budget_bytes=256<<20, estimator="plugin"))]
fn matrix_pair_stats<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
    labels: Option<PyReadonlyArray2<'py, u8>>,
    pairs: Vec<(usize, usize)>,
    threads: Option<usize>,
    budget_bytes: usize,
    estimator: &str,
) -> PyResult<Bound<'py, PyList>> {
    let est = self::estimator(estimator)?;
    let m = mat(codes)?;
    let (n, l) = (codes.getattr("shape")?.get_item(0)?.extract::<usize>()?, labels.as_ref().map_or(0, |a| a.shape()[1]));
    let pats = patterns(labels, n, l)?;
    let stats = with_codes(py, &m, threads, |c| {
        debug_assert_eq!(c.rows(), n);
        c.pair_stats(&pats, l, &pairs, budget_bytes, est)
    })?;
    let out = PyList::empty(py);
    for s in &stats {
        out.append(pair_dict(py, s)?)?;
    }
    Ok(out)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("HASH_SEED", core::hash::SEED)?;
    m.add_class::<FieldAccumulator>()?;
    m.add_class::<NumericAccumulator>()?;
    m.add_class::<PairAccumulator>()?;
    for f in [
        wrap_pyfunction!(update_batch, m)?,
        wrap_pyfunction!(count_arrow_batch, m)?,
        wrap_pyfunction!(count_delimited, m)?,
        wrap_pyfunction!(count_parquet, m)?,
        wrap_pyfunction!(entropy, m)?,
        wrap_pyfunction!(mutual_info, m)?,
        wrap_pyfunction!(conditional_mutual_info, m)?,
        wrap_pyfunction!(chi2, m)?,
        wrap_pyfunction!(independence_bias, m)?,
        wrap_pyfunction!(value_counts, m)?,
        wrap_pyfunction!(matrix_field_stats, m)?,
        wrap_pyfunction!(matrix_pair_stats, m)?,
        wrap_pyfunction!(dropout, m)?,
    ] {
        m.add_function(f)?;
    }
    Ok(())
}

//! Native counting of delimited text (CSV/TSV) straight into the accumulators.
//!
//! A reader thread hands over blocks of complete lines; each block is split at line starts into
//! pieces parsed in parallel into per-column keys (raw bytes hashed as in [`crate::hash::hash_bytes`],
//! numbers keyed by their f64 value), and counted field by field while the next block is parsed.
//! Compared with decoding through Arrow string arrays this skips building string buffers and a second
//! pass to hash them.
//!
//! Text rules follow the pyarrow reader leanrec configures for CSV/TSV, so both give the same counts:
//! a field starting with `"` is quoted (`""` inside is one quote), a newline always ends a row, empty
//! lines are skipped, an empty field is null, `\r\n` line ends are accepted. A row is bad when its field
//! count differs, a label is missing or not 0/1, or a numeric field does not parse; bad rows are either
//! the first error (with its line and column) or skipped and counted.
use std::io::Read;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};

use rayon::prelude::*;

use crate::cat::RawFn;
use crate::error::{Error, Result};
use crate::hash::{float_key, hash_bytes};
use crate::{FieldCounter, NumericAcc, PairAcc};

/// What one column of the file feeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Role {
    Ignore,
    /// Binary label; the value is bit `n` of the row's label pattern.
    Label(u8),
    /// Counted by its raw bytes.
    Text,
    /// Parsed as a number: counted by its f64 value and summarised.
    Number,
}

/// How to read the file: delimiter, one role per column, what to do with bad rows.
#[derive(Clone, Debug)]
pub struct Plan {
    pub delimiter: u8,
    pub roles: Vec<Role>,
    pub skip_bad_rows: bool,
    /// Physical line number of the first line read (1-based; 2 after a header line).
    pub first_line: u64,
    /// Bytes per block handed from the reader thread (grown for longer lines).
    pub block_bytes: usize,
}

/// A bad row: its physical line, the column (index into the plan's roles) where known, what is wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct BadRow {
    pub line: u64,
    pub column: Option<usize>,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Rows counted.
    pub rows: u64,
    /// Rows skipped as bad (only with `skip_bad_rows`).
    pub bad_rows: u64,
    /// The first bad row; without `skip_bad_rows` counting stops there (the accumulators then hold a
    /// partial count and should be discarded).
    pub first_bad: Option<BadRow>,
}

/// Accumulators fed by column index: categorical, numeric, and pairs of columns.
pub struct Sinks<'a> {
    pub cat: Vec<(usize, &'a mut FieldCounter)>,
    pub num: Vec<(usize, &'a mut NumericAcc)>,
    pub pair: Vec<(usize, usize, &'a mut PairAcc)>,
}

/// Values of one column in one piece, row-aligned with the piece's label patterns.
#[derive(Default)]
struct Col {
    /// Text: hash of the bytes. Number: the f64 bits of the value (-0.0 as 0.0), NaN bits when null, so
    /// the same vector is the numeric accumulator's input (see [`Col::numbers`]).
    keys: Vec<u64>,
    valid: Vec<bool>,
    nulls: usize,
    /// Text columns: where the field starts in the block (its raw bytes are read again from there
    /// when an accumulator keeps a new key's bytes).
    starts: Vec<u32>,
}

impl Col {
    /// Empty, with room for `rows` rows.
    fn reset(&mut self, rows: usize, number: bool) {
        self.keys.clear();
        self.keys.reserve(rows);
        self.valid.clear();
        self.valid.reserve(rows);
        self.nulls = 0;
        self.starts.clear();
        if !number {
            self.starts.reserve(rows);
        }
    }
    /// A Number column's values (NaN = null).
    fn numbers(&self) -> &[f64] {
        // SAFETY: u64 and f64 have the same size and alignment, and every bit pattern is a valid f64.
        unsafe { std::slice::from_raw_parts(self.keys.as_ptr() as *const f64, self.keys.len()) }
    }
    fn validity(&self) -> Option<&[bool]> {
        if self.nulls > 0 { Some(&self.valid) } else { None }
    }
}

struct Piece {
    rows: usize,
    pats: Vec<u8>,
    cols: Vec<Col>,
    /// Unquoted bytes of (row, column) text values that had `""` escapes or text after the quote.
    escaped: Vec<((usize, usize), std::ops::Range<usize>)>,
    scratch: Vec<u8>,
    /// Physical lines in this piece (rows, empty lines and bad rows).
    lines: u64,
    bad_rows: u64,
    /// First bad row, its line relative to the piece's first line (0-based).
    first_bad: Option<BadRow>,
}

impl Piece {
    fn reset(&mut self, rows: usize, is_number: impl Fn(usize) -> bool) {
        self.rows = 0;
        self.pats.clear();
        self.pats.reserve(rows);
        for (i, c) in self.cols.iter_mut().enumerate() {
            c.reset(rows, is_number(i));
        }
        self.escaped.clear();
        self.scratch.clear();
        (self.lines, self.bad_rows, self.first_bad) = (0, 0, None);
    }

    /// Raw bytes of text column `c` (at `col`) in counted row `row`.
    fn raw<'b>(&'b self, b: &'b [u8], delim: u8, col: &Col, row: usize, c: usize) -> &'b [u8] {
        if let Ok(i) = self.escaped.binary_search_by_key(&(row, c), |e| e.0) {
            return &self.scratch[self.escaped[i].1.clone()];
        }
        let mut f = Bound::default();
        let j = scan_field(b, col.starts[row] as usize, b.len(), delim, &mut f);
        if j >= b.len() || b[j] != delim {
            trim_cr(b, &mut f, j);
        }
        &b[f.start..f.end]
    }
}

/// One field of the current row: its bytes are `block[start..end]`, or need unquoting from there;
/// `from` is where its scan started (its opening quote, if quoted).
#[derive(Clone, Copy, Default)]
struct Bound {
    from: usize,
    start: usize,
    end: usize,
    escaped: bool,
}

/// Scan the field starting at `i` byte by byte into `f`; returns the position of the delimiter /
/// newline / `end` after it. A field starting with `"` runs to the closing quote (`""` is a quote);
/// anything after the closing quote up to the delimiter stays part of the value.
fn scan_field(b: &[u8], i: usize, end: usize, delim: u8, f: &mut Bound) -> usize {
    let stop = |j: usize| j < end && b[j] != delim && b[j] != b'\n';
    if i < end && b[i] == b'"' {
        let mut j = i + 1;
        let mut closed = false;
        let mut escaped = false;
        while j < end && b[j] != b'\n' {
            if b[j] == b'"' {
                if j + 1 < end && b[j + 1] == b'"' {
                    escaped = true;
                    j += 2;
                    continue;
                }
                closed = true;
                j += 1;
                break;
            }
            j += 1;
        }
        let close = j;
        while stop(j) {
            j += 1;
        }
        *f = if escaped || !closed || j != close {
            Bound { from: i, start: i, end: j, escaped: true }
        } else {
            Bound { from: i, start: i + 1, end: close - 1, escaped: false }
        };
        return j;
    }
    let mut j = i;
    while stop(j) {
        j += 1;
    }
    *f = Bound { from: i, start: i, end: j, escaped: false };
    j
}

/// The last field of a line (ending at `j`) does not include a `\r` before the newline.
fn trim_cr(b: &[u8], f: &mut Bound, j: usize) {
    if f.end == j && j > f.start && b[j - 1] == b'\r' {
        f.end -= 1;
    }
}

/// Positions of delimiter and newline bytes in a block, found 64 bytes at a time (SSE2 on x86_64) and
/// handed out in order: splitting a row costs one bit scan per field instead of a test per byte.
struct Structurals<'a> {
    b: &'a [u8],
    delim: u8,
    base: usize,
    mask: u64,
}

impl<'a> Structurals<'a> {
    fn new(b: &'a [u8], delim: u8, start: usize) -> Self {
        let mut s = Structurals { b, delim, base: start & !63, mask: 0 };
        s.mask = s.window(s.base);
        s.skip_before(start);
        s
    }

    /// Bit j set: b[base + j] is the delimiter or a newline.
    #[inline]
    fn window(&self, base: usize) -> u64 {
        let mut pad = [0u8; 64];
        let w: &[u8; 64] = match self.b.get(base..base + 64) {
            Some(w) => w.try_into().unwrap(),
            None => {
                let tail = &self.b[base.min(self.b.len())..];
                pad[..tail.len()].copy_from_slice(tail);
                &pad
            }
        };
        eq_mask(w, self.delim) | eq_mask(w, b'\n')
    }

    /// Forget positions before `i`.
    #[inline]
    fn skip_before(&mut self, i: usize) {
        if i >= self.base + 64 {
            self.base = i & !63;
            self.mask = self.window(self.base);
        }
        self.mask &= !0u64 << (i - self.base);
    }

    /// The next position (or `end` when there is none before it), consumed.
    #[inline]
    fn next(&mut self, end: usize) -> usize {
        while self.mask == 0 {
            self.base += 64;
            if self.base >= end {
                return end;
            }
            self.mask = self.window(self.base);
        }
        let p = self.base + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        p.min(end)
    }
}

/// Bit j set: w[j] == c.
#[inline]
fn eq_mask(w: &[u8; 64], c: u8) -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86_64 baseline; loads are unaligned 16-byte reads inside `w`.
    unsafe {
        use std::arch::x86_64::*;
        let needle = _mm_set1_epi8(c as i8);
        let mut m = 0u64;
        for k in 0..4 {
            let v = _mm_loadu_si128(w.as_ptr().add(16 * k) as *const __m128i);
            m |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, needle)) as u32 as u64) << (16 * k);
        }
        m
    }
    #[cfg(not(target_arch = "x86_64"))]
    w.iter().enumerate().fold(0u64, |m, (j, &x)| m | ((x == c) as u64) << j)
}

/// Split one row starting at `pos` (a line start); fill `bounds` with up to `bounds.len()` fields.
/// Returns (fields found, end of the row's content, start of the next line).
fn split_row(b: &[u8], st: &mut Structurals, pos: usize, end: usize, delim: u8, bounds: &mut [Bound]) -> (usize, usize, usize) {
    let mut i = pos;
    let mut n = 0;
    loop {
        let mut f = Bound { from: i, start: i, end: i, escaped: false };
        let j = if i < end && b[i] == b'"' {
            let j = scan_field(b, i, end, delim, &mut f); // delimiters inside quotes are not structural
            st.skip_before(j + 1);
            j
        } else {
            let j = st.next(end);
            f.end = j;
            j
        };
        if n < bounds.len() {
            bounds[n] = f;
        }
        n += 1;
        if j < end && b[j] == delim {
            i = j + 1;
            continue;
        }
        if n <= bounds.len() {
            trim_cr(b, &mut bounds[n - 1], j);
        }
        return (n, j, if j < end { j + 1 } else { end });
    }
}

/// The bytes of field `f`: a slice of the block, or unquoted into `text` (`"a""b"c` -> `a"bc`).
fn field_bytes<'a>(b: &'a [u8], f: Bound, text: &'a mut Vec<u8>) -> &'a [u8] {
    if !f.escaped {
        return &b[f.start..f.end];
    }
    text.clear();
    unquote(&b[f.start..f.end], text);
    text
}

fn unquote(raw: &[u8], out: &mut Vec<u8>) {
    let mut j = 1; // raw[0] is the opening quote
    while j < raw.len() {
        if raw[j] == b'"' {
            if raw.get(j + 1) == Some(&b'"') {
                out.push(b'"');
                j += 2;
                continue;
            }
            out.extend_from_slice(&raw[j + 1..]);
            return;
        }
        out.push(raw[j]);
        j += 1;
    }
}

/// Parse a number as the pyarrow cast does for these inputs: plain integers exactly, anything else
/// through Rust's float parser. NaN is returned as NaN (null for the caller).
#[inline]
fn parse_number(s: &[u8]) -> Option<f64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
        let v = digits.iter().fold(0u64, |a, &d| a * 10 + (d - b'0') as u64) as f64;
        return Some(if neg { -v } else { v });
    }
    std::str::from_utf8(s).ok()?.parse::<f64>().ok()
}

struct Layout<'p> {
    plan: &'p Plan,
    /// Per column: index into a piece's `cols`, for Text and Number columns.
    slot: Vec<Option<usize>>,
    /// The Text and Number columns, in column order (a piece's `cols`).
    used: Vec<usize>,
    /// Label columns in label-bit order.
    labels: Vec<usize>,
    numbers: Vec<usize>,
}

impl<'p> Layout<'p> {
    fn new(plan: &'p Plan) -> Result<Self> {
        let mut slot = vec![None; plan.roles.len()];
        let (mut used, mut numbers, mut labels) = (vec![], vec![], vec![]);
        for (c, r) in plan.roles.iter().enumerate() {
            match r {
                Role::Text | Role::Number => {
                    slot[c] = Some(used.len());
                    used.push(c);
                    if *r == Role::Number {
                        numbers.push(c);
                    }
                }
                Role::Label(bit) => labels.push((*bit, c)),
                Role::Ignore => {}
            }
        }
        labels.sort();
        if labels.iter().enumerate().any(|(i, &(bit, _))| bit as usize != i) || labels.len() > 8 {
            return Err(Error::Input("label bits must be 0..n (at most 8 labels), one column each".into()));
        }
        Ok(Layout { plan, slot, used, labels: labels.into_iter().map(|l| l.1).collect(), numbers })
    }

    /// Parse lines `start..end` of the block (both at line starts).
    /// A `spare` piece from an earlier block is reused: its vectors keep their memory, so no fresh
    /// pages are faulted in for every block.
    fn parse(&self, b: &[u8], start: usize, end: usize, stop_at_bad: bool, spare: Option<Piece>) -> Piece {
        let roles = &self.plan.roles;
        let delim = self.plan.delimiter;
        // rows estimated from the first line's length, so column vectors rarely grow
        let first_len = b[start..end].iter().position(|&x| x == b'\n').unwrap_or(end - start) + 1;
        let guess = (end - start) / first_len.max(8) + 16;
        let mut p = spare.unwrap_or_else(|| Piece {
            rows: 0,
            pats: vec![],
            cols: self.used.iter().map(|_| Col::default()).collect(),
            escaped: vec![],
            scratch: vec![],
            lines: 0,
            bad_rows: 0,
            first_bad: None,
        });
        p.reset(guess, |i| roles[self.used[i]] == Role::Number);
        let mut bounds = vec![Bound::default(); roles.len()];
        let mut nums = vec![f64::NAN; roles.len()];
        let mut text = Vec::new();
        // text values must be UTF-8 (as the Arrow reader requires); an ASCII piece needs no per-value check
        let ascii = b[start..end].is_ascii();
        let mut st = Structurals::new(b, delim, start);
        let mut pos = start;
        while pos < end {
            let line = p.lines;
            p.lines += 1;
            let row_start = pos;
            let (n, content_end, next) = split_row(b, &mut st, pos, end, delim, &mut bounds);
            pos = next;
            if content_end == row_start || (content_end == row_start + 1 && b[row_start] == b'\r') {
                continue; // empty line
            }
            match self.check(b, &bounds, n, &mut nums, &mut text, ascii) {
                Ok(pat) => p.pats.push(pat),
                Err((column, message)) => {
                    p.bad_rows += 1;
                    p.first_bad.get_or_insert(BadRow { line, column, message });
                    if stop_at_bad {
                        break;
                    }
                    continue;
                }
            }
            let row = p.rows;
            p.rows += 1;
            for (col, &c) in p.cols.iter_mut().zip(&self.used) {
                let (key, ok) = if roles[c] == Role::Number {
                    let v = nums[c];
                    (if v.is_nan() { f64::NAN.to_bits() } else { float_key(v) }, !v.is_nan())
                } else {
                    let f = bounds[c];
                    col.starts.push(f.from as u32);
                    let bytes = field_bytes(b, f, &mut text);
                    if f.escaped {
                        let at = p.scratch.len();
                        p.scratch.extend_from_slice(bytes);
                        p.escaped.push(((row, c), at..p.scratch.len()));
                    }
                    if bytes.is_empty() { (0, false) } else { (hash_bytes(bytes), true) }
                };
                col.keys.push(key);
                col.valid.push(ok);
                col.nulls += !ok as usize;
            }
        }
        p
    }

    /// Validate one row: field count, labels (missing / not 0-1), numbers; returns its label pattern.
    /// Fills `nums` for Number columns (NaN = null).
    fn check(&self, b: &[u8], bounds: &[Bound], n: usize, nums: &mut [f64], text: &mut Vec<u8>, ascii: bool)
             -> std::result::Result<u8, (Option<usize>, String)> {
        let ncol = self.plan.roles.len();
        if n != ncol {
            return Err((None, format!("expected {ncol} fields, found {n}")));
        }
        if !ascii {
            for &c in &self.used {
                if self.plan.roles[c] == Role::Text {
                    if let Err(e) = std::str::from_utf8(field_bytes(b, bounds[c], text)) {
                        let at = e.valid_up_to();
                        let byte = field_bytes(b, bounds[c], text)[at];
                        return Err((Some(c), format!("not UTF-8 text: byte 0x{byte:02x} after {at} valid bytes")));
                    }
                }
            }
        }
        let mut pat = 0u8;
        for (bit, &c) in self.labels.iter().enumerate() {
            let s = field_bytes(b, bounds[c], text);
            let v = match s {
                b"0" => 0.0,
                b"1" => 1.0,
                _ => {
                    if s.is_empty() {
                        return Err((Some(c), "label is missing".into()));
                    }
                    match parse_number(s) {
                        Some(v) if v.is_nan() => return Err((Some(c), "label is missing".into())),
                        Some(v) if v == 0.0 || v == 1.0 => v,
                        _ => return Err((Some(c), format!("label must be 0 or 1, found '{}'", String::from_utf8_lossy(s)))),
                    }
                }
            };
            pat |= (v as u8) << bit;
        }
        for &c in &self.numbers {
            let s = field_bytes(b, bounds[c], text);
            nums[c] = if s.is_empty() {
                f64::NAN
            } else {
                parse_number(s).ok_or_else(|| (Some(c), format!("expected a number, found '{}'", String::from_utf8_lossy(s))))?
            };
        }
        Ok(pat)
    }

    /// Parse a block of complete lines in parallel pieces (split at line starts).
    fn parse_block(&self, b: &[u8], stop_at_bad: bool, spare: &mut Vec<Piece>) -> Vec<Piece> {
        let want = (rayon::current_num_threads() * 2).max(1);
        let size = (b.len() / want).max(1 << 20);
        let mut cuts = vec![0];
        while let Some(&last) = cuts.last() {
            let target = last + size;
            if target >= b.len() {
                break;
            }
            match b[target..].iter().position(|&x| x == b'\n') {
                Some(i) if target + i + 1 < b.len() => cuts.push(target + i + 1),
                _ => break,
            }
        }
        cuts.push(b.len());
        let spares: Vec<Option<Piece>> = cuts.windows(2).map(|_| spare.pop()).collect();
        cuts.par_windows(2).zip(spares).map(|(w, p)| self.parse(b, w[0], w[1], stop_at_bad, p)).collect()
    }
}

/// Count the parsed pieces of one block into the sinks, one accumulator per task.
fn count_block(b: &[u8], pieces: &[Piece], layout: &Layout, sinks: &mut Sinks) -> Result<()> {
    let slot = |c: usize| layout.slot[c].expect("sink columns are checked by count_stream");
    let r1 = sinks.cat.par_iter_mut().try_for_each(|(c, acc)| -> Result<()> {
        for p in pieces {
            let cv = &p.cols[slot(*c)];
            if layout.plan.roles[*c] == Role::Number {
                // NaN is null; integer values go to the field's dense table
                acc.count_floats(cv.numbers(), None, &p.pats)?;
                continue;
            }
            let raw = |i: usize| p.raw(b, layout.plan.delimiter, cv, i, *c);
            let rawf: Option<&RawFn> = if acc.peek().keeps_values() { Some(&raw) } else { None };
            acc.count_keys(&cv.keys, cv.validity(), &p.pats, rawf)?;
        }
        Ok(())
    });
    sinks.num.par_iter_mut().for_each(|(c, acc)| {
        for p in pieces {
            acc.update(p.cols[slot(*c)].numbers(), None);
        }
    });
    let r3 = sinks.pair.par_iter_mut().try_for_each(|(a, c, acc)| -> Result<()> {
        for p in pieces {
            let (ca, cb) = (&p.cols[slot(*a)], &p.cols[slot(*c)]);
            acc.update(&ca.keys, &cb.keys, ca.validity(), cb.validity(), &p.pats)?;
        }
        Ok(())
    });
    r1.and(r3)
}

/// Read `r` into blocks of complete lines (the last one may lack its newline) and send them. Buffers
/// coming back on `used` are refilled instead of allocating new ones.
fn read_blocks<R: Read>(mut r: R, block: usize, tx: SyncSender<std::io::Result<Vec<u8>>>, used: Receiver<Vec<u8>>) {
    let mut carry = Vec::new();
    loop {
        let mut buf = used.try_recv().unwrap_or_default();
        buf.clear();
        buf.reserve(block.max(carry.len() * 2));
        buf.append(&mut carry);
        let want = buf.capacity() - buf.len();
        match r.by_ref().take(want as u64).read_to_end(&mut buf) {
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
            Ok(0) => {
                if !buf.is_empty() {
                    let _ = tx.send(Ok(buf));
                }
                return;
            }
            Ok(_) => match buf.iter().rposition(|&x| x == b'\n') {
                Some(i) => {
                    carry.extend_from_slice(&buf[i + 1..]);
                    buf.truncate(i + 1);
                    if tx.send(Ok(buf)).is_err() {
                        return; // the consumer stopped
                    }
                }
                None => carry = buf, // a line longer than the block: read more
            },
        }
    }
}

/// The bytes of a file from `offset` on, decompressed when `gzip` (several concatenated members read as
/// one stream; `offset` then counts decompressed bytes).
pub fn open_input(path: &std::path::Path, offset: u64, gzip: bool) -> std::io::Result<Box<dyn Read + Send>> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    if gzip {
        let mut gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file));
        std::io::copy(&mut (&mut gz).take(offset), &mut std::io::sink())?;
        return Ok(Box::new(gz));
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok(Box::new(file))
}

/// Count a delimited text stream into `sinks`. `progress(rows, bytes)` is called after each block; an error
/// from it (e.g. an interrupt) stops counting. Parsing of block k+1 overlaps counting of block k.
pub fn count_stream<R: Read + Send>(
    reader: R,
    plan: &Plan,
    sinks: &mut Sinks,
    progress: &mut (dyn FnMut(u64, u64) -> Result<()> + Send),
) -> Result<Outcome> {
    let layout = Layout::new(plan)?;
    // what count_block relies on: every sink reads a parsed column of the right kind
    let role = |c: usize| plan.roles.get(c).copied().unwrap_or(Role::Ignore);
    let cols = sinks.cat.iter().map(|s| s.0).chain(sinks.num.iter().map(|s| s.0));
    for c in cols.chain(sinks.pair.iter().flat_map(|s| [s.0, s.1])) {
        if !matches!(role(c), Role::Text | Role::Number) {
            return Err(Error::Input(format!("column {c} is not a text or number column of the plan")));
        }
    }
    if let Some((c, _)) = sinks.cat.iter().find(|(c, a)| a.peek().keeps_values() && role(*c) != Role::Text) {
        return Err(Error::Input(format!("column {c} is numeric; its accumulator expects raw values")));
    }
    if let Some((c, _)) = sinks.num.iter().find(|(c, _)| role(*c) != Role::Number) {
        return Err(Error::Input(format!("column {c} is not a number column of the plan")));
    }
    let stop_at_bad = !plan.skip_bad_rows;
    let mut out = Outcome::default();
    let mut line_base = plan.first_line;
    std::thread::scope(|s| -> Result<Outcome> {
        let (tx, rx) = sync_channel(1);
        let (used_tx, used_rx) = channel();
        s.spawn(move || read_blocks(reader, plan.block_bytes.max(1 << 16), tx, used_rx));
        let mut pending: Option<(Vec<u8>, Vec<Piece>)> = None;
        let mut spare: Vec<Piece> = vec![];
        loop {
            let next = match rx.recv() {
                Ok(Ok(b)) => Some(b),
                Ok(Err(e)) => return Err(Error::Input(format!("read error: {e}"))),
                Err(_) => None, // reader finished
            };
            if next.as_ref().is_some_and(|b| b.len() > u32::MAX as usize) {
                return Err(Error::Input("a line longer than 4 GiB".into())); // field offsets are u32
            }
            let done = next.is_none();
            let (parsed, counted) = rayon::join(
                || next.map(|b| {
                    let pieces = layout.parse_block(&b, stop_at_bad, &mut spare);
                    (b, pieces)
                }),
                || match pending.take() {
                    Some((b, pieces)) => count_block(&b, &pieces, &layout, sinks).map(|_| {
                        let bytes = b.len() as u64;
                        let _ = used_tx.send(b); // back to the reader for refilling
                        (pieces.iter().map(|p| p.rows as u64).sum(), bytes, pieces)
                    }),
                    None => Ok((0u64, 0u64, vec![])),
                },
            );
            let (rows, bytes, counted_pieces) = counted?;
            spare.extend(counted_pieces);
            if bytes > 0 {
                progress(rows, bytes)?;
            }
            if let Some((b, pieces)) = parsed {
                for p in &pieces {
                    out.rows += p.rows as u64;
                    out.bad_rows += p.bad_rows;
                    if let (None, Some(bad)) = (&out.first_bad, &p.first_bad) {
                        out.first_bad = Some(BadRow { line: line_base + bad.line, ..bad.clone() });
                    }
                    line_base += p.lines;
                    if stop_at_bad && p.first_bad.is_some() {
                        return Ok(out); // the first error; the reader thread stops when `rx` drops
                    }
                }
                pending = Some((b, pieces));
            }
            if done {
                return Ok(out);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CatConfig, CategoricalAcc};

    fn plan(roles: Vec<Role>, skip: bool) -> Plan {
        Plan { delimiter: b',', roles, skip_bad_rows: skip, first_line: 1, block_bytes: 1 << 16 }
    }

    fn run(text: &[u8], plan: &Plan, cat_cols: &[usize], keep: bool) -> (Vec<CategoricalAcc>, Outcome) {
        let cfg = CatConfig { n_labels: 1, ..Default::default() };
        let mut accs: Vec<FieldCounter> =
            cat_cols.iter().map(|_| FieldCounter::new(CategoricalAcc::new(cfg.clone(), keep).unwrap())).collect();
        let mut sinks = Sinks { cat: cat_cols.iter().copied().zip(accs.iter_mut()).collect(), num: vec![], pair: vec![] };
        let out = count_stream(text, plan, &mut sinks, &mut |_, _| Ok(())).unwrap();
        drop(sinks);
        (accs.into_iter().map(FieldCounter::into_acc).collect(), out)
    }

    #[test]
    fn counts_match_direct_update() {
        // label, text: quoted values, escapes, nulls, CRLF, empty lines
        let text = b"1,a\r\n0,\"b\"\n\n1,\"a\"\n0,\"x\"\"y\"\n1,\n0,b";
        let p = plan(vec![Role::Label(0), Role::Text], false);
        let (accs, out) = run(text, &p, &[1], true);
        assert_eq!(out, Outcome { rows: 6, bad_rows: 0, first_bad: None });
        let vals: Vec<&[u8]> = vec![b"a", b"b", b"a", b"x\"y", b"", b"b"];
        let keys: Vec<u64> = vals.iter().map(|v| if v.is_empty() { 0 } else { hash_bytes(v) }).collect();
        let valid: Vec<bool> = vals.iter().map(|v| !v.is_empty()).collect();
        let pats = [1u8, 0, 1, 0, 1, 0];
        let mut want = CategoricalAcc::new(CatConfig { n_labels: 1, ..Default::default() }, true).unwrap();
        let raw = |i: usize| vals[i];
        want.update(&keys, Some(&valid), &pats, Some(&raw)).unwrap();
        assert_eq!(accs[0].stats(), want.stats());
        assert_eq!(accs[0].top_k(None), want.top_k(None));
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let roles = vec![Role::Label(0), Role::Number, Role::Text];
        let cases: [(&[u8], u64, Option<usize>, &str); 5] = [
            (b"1,2,\"\xc3\xa9\"\n0,4,x\xffy\n", 2, Some(2), "not UTF-8 text: byte 0xff after 1 valid bytes"),
            (b"1,2,a\n0,3\n", 2, None, "expected 3 fields, found 2"),
            (b"1,2,a\n\n2,3,b\n", 3, Some(0), "label must be 0 or 1, found '2'"),
            (b"1,2,a\n,3,b\n", 2, Some(0), "label is missing"),
            (b"1,2,a\n0,x1,b\n", 2, Some(1), "expected a number, found 'x1'"),
        ];
        for (text, line, column, message) in cases {
            let (_, out) = run(text, &plan(roles.clone(), false), &[2], false);
            assert_eq!(out.first_bad, Some(BadRow { line, column, message: message.into() }), "{:?}", std::str::from_utf8(text));
            let (accs, out) = run(text, &plan(roles.clone(), true), &[2], false);
            assert_eq!((out.rows, out.bad_rows), (1, 1));
            assert_eq!(accs[0].rows(), out.rows);
        }
    }

    #[test]
    fn blocks_and_pieces_do_not_change_counts() {
        let mut text = Vec::new();
        let mut seed = 7u64;
        for i in 0..20_000u64 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = (seed >> 33) % 500;
            text.extend_from_slice(format!("{},{},k{}\n", i % 2, v as f64 / 4.0, v % 37).as_bytes());
        }
        let roles = vec![Role::Label(0), Role::Number, Role::Text];
        let mut results = vec![];
        for block in [1 << 16, 1 << 20] {
            let mut p = plan(roles.clone(), false);
            p.block_bytes = block;
            let (accs, out) = run(&text, &p, &[1, 2], false);
            assert_eq!(out.rows, 20_000);
            results.push(accs.iter().map(|a| a.stats()).collect::<Vec<_>>());
        }
        assert_eq!(results[0], results[1]);
    }
}

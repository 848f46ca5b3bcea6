//! Counting a Parquet file straight into the accumulators, page by page, without building Arrow arrays.
//!
//! Integer columns only (INT32 / INT64, signed or no logical type, flat, optional or required). A
//! dictionary-encoded page is counted by dictionary index: its indices are unpacked into a buffer and
//! counted into a table of the dictionary's size, and each used entry is added once per column chunk,
//! so the values are never materialised; a plain page (a writer falls back to plain encoding when a
//! chunk's dictionary grows too large) is decoded and counted like an integer column
//! ([`FieldCounter::count_ints_in`]). Numeric summaries come from the same counts: integers are summed
//! exactly ([`crate::numeric::ExactInts`]), so they equal the Arrow path's bit for bit. Label columns are
//! decoded into label patterns first, then each row group's field chunks are counted in parallel.
//!
//! A file this path cannot count as the Arrow path would is declined with [`Error::Unsupported`] (other
//! column types or encodings, nested columns, a null or non-0/1 label, an integer beyond ±2^53 in a
//! numeric field, a file the reader cannot parse); the accumulators may then hold part of the file, so
//! callers count into fresh ones and drop them on a decline.
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use parquet::basic::{ConvertedType, Encoding, LogicalType, Type as Physical};
use parquet::column::page::Page;
use parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};
use parquet::schema::types::ColumnDescriptor;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::field::{DenseCounter, FieldCounter};
use crate::hash::{hash_bytes, KeyMap};
use crate::numeric::{Bitmap, ExactInts, NumericAcc, EXACT_LIMIT};

/// A file read with positional reads (pread), so the row group's column chunks can be read from several
/// threads at once (`File`'s own ChunkReader clones the descriptor, whose shared offset the threads would race on).
struct Positional(Arc<File>);

/// Read at `pos` without moving any shared offset.
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(file, buf, pos);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(file, buf, pos);
}

/// A reader at its own offset of a [`Positional`] file.
struct PositionalRead {
    file: Arc<File>,
    pos: u64,
}

impl std::io::Read for PositionalRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = read_at(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Length for Positional {
    fn len(&self) -> u64 {
        self.0.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

impl ChunkReader for Positional {
    type T = std::io::BufReader<PositionalRead>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(std::io::BufReader::new(PositionalRead { file: self.0.clone(), pos: start }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let mut buf = vec![0u8; length];
        let mut done = 0;
        while done < length {
            match read_at(&self.0, &mut buf[done..], start + done as u64)? {
                0 => return Err(parquet::errors::ParquetError::EOF(format!("{length} bytes at {start}: the file ends"))),
                n => done += n,
            }
        }
        Ok(buf.into())
    }
}

type Reader = SerializedFileReader<Positional>;

/// Cells (dictionary entries x label patterns) up to which a chunk's dictionary pages are counted by index
/// even when the dictionary outnumbers the chunk's rows (64 MiB of u32 cells).
const MAX_DICTIONARY_CELLS: usize = 1 << 24;

fn declined(why: impl std::fmt::Display) -> Error {
    Error::Unsupported(why.to_string())
}

/// One column to count: its categorical counter (keyed by float value when `numeric`) and, for a
/// numeric field, its summary.
pub struct Job<'a> {
    pub column: String,
    pub counter: &'a mut FieldCounter,
    pub numeric: bool,
    pub summary: Option<&'a mut NumericAcc>,
}

/// Rows counted.
pub fn count_file(path: &Path, labels: &[String], jobs: &mut [Job], progress: &mut dyn FnMut(u64) -> Result<()>) -> Result<u64> {
    let file = File::open(path).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    let reader = SerializedFileReader::new(Positional(Arc::new(file))).map_err(|e| declined(format!("parquet: {e}")))?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let column = |name: &str, bytes: bool| -> Result<(usize, Kind)> {
        let i = (0..schema.num_columns())
            .find(|&i| schema.column(i).path().parts().len() == 1 && schema.column(i).name() == name)
            .ok_or_else(|| declined(format!("no flat column {name:?}")))?;
        Ok((i, column_kind(&schema.column(i), bytes)?))
    };
    if labels.is_empty() || labels.len() > 8 {
        return Err(declined("1 to 8 label columns"));
    }
    let label_cols = labels.iter().map(|l| column(l, false).map(|c| c.0)).collect::<Result<Vec<_>>>()?;
    let cols = jobs.iter().map(|j| column(&j.column, j.counter.peek().keeps_values())).collect::<Result<Vec<_>>>()?;
    if jobs.iter().zip(&cols).any(|(j, (_, k))| j.numeric && *k != Kind::Int) {
        return Err(declined("a numeric field of text (the Arrow path parses it)"));
    }
    let mut rows = 0u64;
    for rg in 0..reader.num_row_groups() {
        let group = reader.get_row_group(rg).map_err(|e| declined(format!("parquet: {e}")))?;
        let n = usize::try_from(group.metadata().num_rows()).map_err(|_| declined("a negative row count"))?;
        if n as u64 >= u32::MAX as u64 {
            return Err(declined("a row group of 2^32 rows or more")); // the tables' u32 cells
        }
        let mut pats = vec![0u8; n];
        for (bit, &c) in label_cols.iter().enumerate() {
            let (values, any_null) = read_chunk_values(&reader, rg, c, n)?;
            if any_null {
                return Err(declined(format!("label {:?} has nulls", labels[bit])));
            }
            for (p, &v) in pats.iter_mut().zip(&values) {
                if v != 0 && v != 1 {
                    return Err(declined(format!("label {:?} is not 0/1", labels[bit])));
                }
                *p |= (v as u8) << bit;
            }
        }
        jobs.par_iter_mut().zip(&cols).with_max_len(1).try_for_each(|(job, &(c, kind))| match kind {
            Kind::Int => count_chunk(&reader, rg, c, &pats, job),
            Kind::Bytes { utf8 } => count_bytes_chunk(&reader, rg, c, &pats, job.counter, utf8),
        })?;
        rows += n as u64;
        progress(n as u64)?;
    }
    Ok(rows)
}

/// How a column's values are read: integers (the Arrow path reads them as signed integers of the stored
/// value), or raw bytes (BYTE_ARRAY as binary, or as UTF-8 strings, checked as the Arrow path checks them).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Bytes { utf8: bool },
}

fn column_kind(c: &ColumnDescriptor, bytes: bool) -> Result<Kind> {
    if c.max_rep_level() != 0 || c.max_def_level() > 1 {
        return Err(declined(format!("column {:?} is nested", c.name())));
    }
    let logical = c.logical_type_ref();
    let kind = match (c.physical_type(), bytes) {
        (Physical::INT32 | Physical::INT64, false) => {
            let logical_ok = match logical {
                None => true,
                Some(LogicalType::Integer(int)) => int.is_signed,
                Some(_) => false,
            };
            let converted_ok = matches!(c.converted_type(), ConvertedType::NONE | ConvertedType::INT_8
                | ConvertedType::INT_16 | ConvertedType::INT_32 | ConvertedType::INT_64);
            (logical_ok && converted_ok).then_some(Kind::Int)
        }
        (Physical::BYTE_ARRAY, true) => match (logical, c.converted_type()) {
            (None, ConvertedType::NONE) => Some(Kind::Bytes { utf8: false }),
            (None | Some(LogicalType::String), ConvertedType::NONE | ConvertedType::UTF8) => Some(Kind::Bytes { utf8: true }),
            _ => None,
        },
        _ => None,
    };
    kind.ok_or_else(|| declined(format!("column {:?} is {} ({})", c.name(), c.physical_type(),
                                        if bytes { "counted as text" } else { "counted as integers" })))
}

/// A page's rows: which are valid (None: all) and where the values start.
struct Levels {
    rows: usize,
    valid: Option<Vec<u8>>,
    non_null: usize,
    values_at: usize,
}

fn levels(page: &Page, max_def: i16) -> Result<Levels> {
    let (buf, rows) = (page.buffer(), page.num_values() as usize);
    let (def, values_at) = match page {
        Page::DataPage { def_level_encoding, .. } if max_def > 0 => {
            if *def_level_encoding != Encoding::RLE {
                return Err(declined(format!("definition levels encoded {def_level_encoding}")));
            }
            let len = buf.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| declined("a truncated page"))?;
            (Some(buf.get(4..4 + len).ok_or_else(|| declined("a truncated page"))?), 4 + len)
        }
        Page::DataPageV2 { def_levels_byte_len, rep_levels_byte_len, .. } => {
            let (r, d) = (*rep_levels_byte_len as usize, *def_levels_byte_len as usize);
            let def = if max_def > 0 { Some(buf.get(r..r + d).ok_or_else(|| declined("a truncated page"))?) } else { None };
            (def, r + d)
        }
        _ => (None, 0),
    };
    let no_nulls = match page {
        Page::DataPageV2 { num_nulls, .. } => *num_nulls == 0,
        _ => def.is_some_and(|d| one_run_of_ones(d, rows)),
    };
    let Some(def) = def.filter(|_| !no_nulls) else {
        return Ok(Levels { rows, valid: None, non_null: rows, values_at });
    };
    let mut flags = vec![0u32; rows];
    unpack_hybrid(def, 1, &mut flags)?;
    let mut bits = vec![0u8; rows.div_ceil(8)];
    let mut non_null = 0;
    for (r, &f) in flags.iter().enumerate() {
        bits[r / 8] |= (f as u8 & 1) << (r % 8);
        non_null += f as usize & 1;
    }
    let valid = if non_null == rows { None } else { Some(bits) };
    Ok(Levels { rows, valid, non_null, values_at })
}

/// Whether bit-width-1 levels are one run of at least `rows` ones (a page without nulls, as writers encode it).
fn one_run_of_ones(data: &[u8], rows: usize) -> bool {
    let (mut header, mut shift, mut at) = (0u64, 0, 0);
    while let Some(&b) = data.get(at) {
        header |= ((b & 0x7f) as u64) << shift;
        at += 1;
        if b & 0x80 == 0 {
            return header & 1 == 0 && (header >> 1) as usize >= rows && data.get(at) == Some(&1);
        }
        shift += 7;
        if shift > 63 {
            break;
        }
    }
    false
}

/// Decode the RLE / bit-packing hybrid (Parquet's levels and dictionary indices) of `bit_width` into `out`.
fn unpack_hybrid(mut data: &[u8], bit_width: u32, out: &mut [u32]) -> Result<()> {
    if bit_width > 32 {
        return Err(declined(format!("bit width {bit_width}")));
    }
    let truncated = || declined("truncated RLE / bit-packed data");
    let mask = if bit_width == 32 { u32::MAX as u64 } else { (1u64 << bit_width) - 1 };
    let mut i = 0;
    while i < out.len() {
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            let (&b, rest) = data.split_first().ok_or_else(truncated)?;
            data = rest;
            header |= ((b & 0x7f) as u64) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
            if shift > 63 {
                return Err(truncated());
            }
        }
        if header & 1 == 0 {
            // a run: one value repeated
            let len = (header >> 1) as usize;
            let width = bit_width.div_ceil(8) as usize;
            let bytes = data.get(..width).ok_or_else(truncated)?;
            let mut v = 0u32;
            for (k, &b) in bytes.iter().enumerate() {
                v |= (b as u32) << (8 * k);
            }
            data = &data[width..];
            let end = (i + len).min(out.len());
            out[i..end].fill(v);
            i = end;
        } else {
            // groups of 8 bit-packed values, least significant bit first
            let groups = usize::try_from(header >> 1).map_err(|_| truncated())?;
            let count = groups.checked_mul(8).ok_or_else(truncated)?;
            let nbytes = groups.checked_mul(bit_width as usize).ok_or_else(truncated)?;
            let bytes = data.get(..nbytes).ok_or_else(truncated)?;
            data = &data[nbytes..];
            let take = count.min(out.len() - i);
            unpack_bits(bytes, bit_width as usize, mask, &mut out[i..i + take]);
            i += take;
        }
    }
    Ok(())
}

/// Values of `bw` bits packed least significant bit first (bw <= 32): each read as an unaligned 64-bit
/// word where 8 bytes remain, byte by byte at the end.
#[inline]
fn unpack_bits(bytes: &[u8], bw: usize, mask: u64, out: &mut [u32]) {
    let word_at = |at: usize| -> u64 {
        match bytes.get(at..at + 8) {
            Some(b) => u64::from_le_bytes(b.try_into().expect("8 bytes")),
            None => {
                let mut w = [0u8; 8];
                let end = bytes.len().min(at + 8);
                w[..end - at].copy_from_slice(&bytes[at..end]);
                u64::from_le_bytes(w)
            }
        }
    };
    let fast = (bytes.len().saturating_sub(8) * 8) / bw.max(1); // values whose word lies inside `bytes`
    let (head, tail) = out.split_at_mut(fast.min(out.len()));
    for (k, o) in head.iter_mut().enumerate() {
        let bit = k * bw;
        let at = bit / 8;
        *o = ((u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) >> (bit % 8)) & mask) as u32;
    }
    for (k, o) in tail.iter_mut().enumerate() {
        let bit = (head.len() + k) * bw;
        *o = ((word_at(bit / 8) >> (bit % 8)) & mask) as u32;
    }
}

/// `n` plain-encoded integers of `physical` type.
fn plain_ints(data: &[u8], physical: Physical, n: usize) -> Result<Vec<i64>> {
    let width = if physical == Physical::INT32 { 4 } else { 8 };
    let bytes = data.get(..n * width).ok_or_else(|| declined("a truncated plain page"))?;
    Ok(if width == 4 {
        bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64).collect()
    } else {
        bytes.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect()
    })
}

/// Values of the page's non-null rows spread over its rows (nulls as 0: for dictionary slots, the null slot).
fn spread<T: Copy + Default>(values: Vec<T>, lv: &Levels) -> Vec<T> {
    let Some(bits) = &lv.valid else { return values };
    let mut out = vec![T::default(); lv.rows];
    let mut it = values.into_iter();
    for (r, o) in out.iter_mut().enumerate() {
        if (bits[r / 8] >> (r % 8)) & 1 == 1 {
            *o = it.next().unwrap_or_default();
        }
    }
    out
}

/// One step of a column chunk's walk.
enum Step<'a> {
    /// The dictionary page: its (plain-encoded) bytes and number of entries.
    Dictionary(&'a Bytes, usize),
    /// A data page starting at row `r0` of the row group, with its levels.
    Data(usize, &'a Page, &'a Levels),
}

/// Walk a column chunk's pages: the dictionary, then each data page with its levels.
fn for_each_page(reader: &Reader, rg: usize, col: usize, rows: usize,
                 mut step: impl FnMut(Step) -> Result<()>) -> Result<()> {
    let group = reader.get_row_group(rg).map_err(|e| declined(format!("parquet: {e}")))?;
    let desc = reader.metadata().file_metadata().schema_descr().column(col);
    let pages = group.get_column_page_reader(col).map_err(|e| declined(format!("parquet: {e}")))?;
    let (mut r0, mut seen_dictionary) = (0, false);
    for page in pages {
        let page = page.map_err(|e| declined(format!("parquet: {e}")))?;
        if let Page::DictionaryPage { buf, num_values, encoding, .. } = &page {
            if r0 > 0 || seen_dictionary {
                return Err(declined("a dictionary page after the chunk's first page"));
            }
            seen_dictionary = true;
            if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                return Err(declined(format!("a dictionary encoded {encoding}")));
            }
            step(Step::Dictionary(buf, *num_values as usize))?;
            continue;
        }
        let lv = levels(&page, desc.max_def_level())?;
        if r0 + lv.rows > rows {
            return Err(declined("pages hold more rows than their row group"));
        }
        step(Step::Data(r0, &page, &lv))?;
        r0 += lv.rows;
    }
    if r0 != rows {
        return Err(declined(format!("pages hold {r0} of their row group's {rows} rows")));
    }
    Ok(())
}

/// The bytes of a page after its levels.
fn values_of<'p>(page: &'p Page, lv: &Levels) -> Result<&'p [u8]> {
    page.buffer().get(lv.values_at..).ok_or_else(|| declined("a truncated page"))
}

/// Dictionary indices of a page's non-null rows, checked against the dictionary's size.
fn indices(page: &Page, lv: &Levels, dict_len: usize) -> Result<Vec<u32>> {
    let data = values_of(page, lv)?;
    let (&bw, rest) = data.split_first().ok_or_else(|| declined("a truncated page"))?;
    let mut idx = vec![0u32; lv.non_null];
    if lv.non_null > 0 {
        unpack_hybrid(rest, bw as u32, &mut idx)?;
    }
    if idx.iter().any(|&i| i as usize >= dict_len) {
        return Err(declined("a dictionary index beyond the dictionary"));
    }
    Ok(idx)
}

fn is_dictionary(e: Encoding) -> bool {
    matches!(e, Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY)
}

/// Every row of a column chunk decoded (label columns; nulls as 0), and whether any is null.
fn read_chunk_values(reader: &Reader, rg: usize, col: usize, rows: usize) -> Result<(Vec<i64>, bool)> {
    let physical = reader.metadata().file_metadata().schema_descr().column(col).physical_type();
    let mut dict = Vec::new();
    let mut out = Vec::with_capacity(rows);
    let mut any_null = false;
    for_each_page(reader, rg, col, rows, |step| {
        let (page, lv) = match step {
            Step::Dictionary(buf, n) => {
                dict = plain_ints(buf, physical, n)?;
                return Ok(());
            }
            Step::Data(_, page, lv) => (page, lv),
        };
        any_null |= lv.valid.is_some();
        let values = match page.encoding() {
            e if is_dictionary(e) => indices(page, lv, dict.len())?.into_iter().map(|i| dict[i as usize]).collect(),
            Encoding::PLAIN => plain_ints(values_of(page, lv)?, physical, lv.non_null)?,
            e => return Err(declined(format!("values encoded {e}"))),
        };
        out.extend(spread(values, lv));
        Ok(())
    })?;
    Ok((out, any_null))
}

/// Count one column chunk into its job's accumulators (`pats`: the row group's label patterns).
fn count_chunk(reader: &Reader, rg: usize, col: usize, pats: &[u8], job: &mut Job) -> Result<()> {
    let physical = reader.metadata().file_metadata().schema_descr().column(col).physical_type();
    let map = if job.numeric { KeyMap::Float } else { KeyMap::Int };
    let n_labels = job.counter.peek().config().n_labels;
    let mut dict: Vec<i64> = Vec::new();
    // slot 0: null rows of dictionary pages, slot j + 1: dictionary entry j
    let mut table = DenseCounter::new(n_labels);
    table.reserve(1, 1);
    let mut dict_rows = 0u64;
    let mut by_index = true;
    let Job { counter, summary, numeric, .. } = job;
    let numeric = *numeric;
    // a page of decoded values (plain, or a large dictionary's), counted as an integer column
    let mut count_plain = |values: &[i64], lv: &Levels, rows: &[u8]| -> Result<()> {
        if numeric && values.iter().any(|v| v.unsigned_abs() > EXACT_LIMIT as u64) {
            return Err(declined("an integer beyond ±2^53 in a numeric field"));
        }
        let valid = lv.valid.as_deref().map(|bits| Bitmap { bits, offset: 0 });
        counter.count_ints_in(values, valid, rows, map, None)?;
        if let Some(s) = summary.as_deref_mut() {
            s.update(values, valid);
        }
        Ok(())
    };
    for_each_page(reader, rg, col, pats.len(), |step| {
        let (r0, page, lv) = match step {
            Step::Dictionary(buf, n) => {
                let d = plain_ints(buf, physical, n)?;
                if numeric && d.iter().any(|v| v.unsigned_abs() > EXACT_LIMIT as u64) {
                    return Err(declined("an integer beyond ±2^53 in a numeric field"));
                }
                // a table of the dictionary's size only while it is small next to the chunk; else its pages
                // are decoded to values and counted as plain ones (the memory the Arrow path would use)
                by_index = ((d.len() + 1) << n_labels) <= MAX_DICTIONARY_CELLS.max(pats.len());
                if by_index {
                    table.reserve(d.len() + 1, d.len() + 1);
                }
                dict = d;
                return Ok(());
            }
            Step::Data(r0, page, lv) => (r0, page, lv),
        };
        let rows = &pats[r0..r0 + lv.rows];
        let encoding = page.encoding();
        if is_dictionary(encoding) && !by_index {
            let values = spread(indices(page, lv, dict.len())?.into_iter().map(|i| dict[i as usize]).collect(), lv);
            return count_plain(&values, lv, rows);
        }
        match encoding {
            e if is_dictionary(e) => {
                let mut idx = indices(page, lv, dict.len())?;
                idx.iter_mut().for_each(|i| *i += 1);
                let slots = spread(idx, lv);
                table.count_with(|r| slots[r] as usize, 0, lv.rows, rows);
                dict_rows += lv.rows as u64;
            }
            Encoding::PLAIN => {
                let values = spread(plain_ints(values_of(page, lv)?, physical, lv.non_null)?, lv);
                count_plain(&values, lv, rows)?;
            }
            e => return Err(declined(format!("values encoded {e}"))),
        }
        Ok(())
    })?;
    if dict_rows == 0 {
        return Ok(());
    }
    let counts = table.into_counts();
    let p = 1usize << n_labels;
    counter.add_dictionary_counts(dict_rows, &counts, &dict, map)?;
    if let Some(s) = summary.as_deref_mut() {
        let mut part = NumericAcc::default();
        let mut ints = ExactInts::default();
        for (slot, c) in counts.chunks_exact(p).enumerate() {
            let total: u64 = c.iter().sum();
            if total == 0 {
                continue;
            }
            if slot == 0 {
                part.nulls += total;
            } else {
                ints.add_value(dict[slot - 1], total);
            }
        }
        part.ints = ints;
        s.merge(&part);
    }
    Ok(())
}

/// (start, length) of `n` plain-encoded byte arrays (a 4-byte little-endian length, then the bytes) in
/// `data`, each checked to be UTF-8 when `utf8`.
fn byte_entries(data: &[u8], n: usize, utf8: bool) -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for _ in 0..n {
        let len = data.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| declined("a truncated byte array"))?;
        let bytes = data.get(at + 4..at + 4 + len).ok_or_else(|| declined("a truncated byte array"))?;
        if utf8 && std::str::from_utf8(bytes).is_err() {
            return Err(declined("a string that is not UTF-8 (the Arrow path reports it)"));
        }
        out.push((at + 4, len));
        at += 4 + len;
    }
    Ok(out)
}

/// Count one column chunk of raw bytes (strings, binary) into `counter` (which keeps the values): keys are
/// the values' hashes as on the Arrow path; dictionary pages by index as for integers, each used entry added
/// once with its bytes; plain pages value by value.
fn count_bytes_chunk(reader: &Reader, rg: usize, col: usize, pats: &[u8], counter: &mut FieldCounter, utf8: bool) -> Result<()> {
    let n_labels = counter.peek().config().n_labels;
    let (mut dict_buf, mut dict) = (Bytes::new(), Vec::new());
    let mut table = DenseCounter::new(n_labels);
    table.reserve(1, 1);
    let (mut dict_rows, mut by_index) = (0u64, true);
    for_each_page(reader, rg, col, pats.len(), |step| {
        let (r0, page, lv) = match step {
            Step::Dictionary(buf, n) => {
                dict = byte_entries(buf, n, utf8)?;
                dict_buf = buf.clone();
                by_index = ((dict.len() + 1) << n_labels) <= MAX_DICTIONARY_CELLS.max(pats.len());
                if by_index {
                    table.reserve(dict.len() + 1, dict.len() + 1);
                }
                return Ok(());
            }
            Step::Data(r0, page, lv) => (r0, page, lv),
        };
        let rows = &pats[r0..r0 + lv.rows];
        let encoding = page.encoding();
        if is_dictionary(encoding) && by_index {
            let mut idx = indices(page, lv, dict.len())?;
            idx.iter_mut().for_each(|i| *i += 1);
            let slots = spread(idx, lv);
            table.count_with(|r| slots[r] as usize, 0, lv.rows, rows);
            dict_rows += lv.rows as u64;
            return Ok(());
        }
        // value by value: each row's (start, length) in `buf` (nulls: empty, key 0 as on the Arrow path)
        let (buf, entries): (&[u8], Vec<(usize, usize)>) = match encoding {
            e if is_dictionary(e) => (&dict_buf, indices(page, lv, dict.len())?.into_iter().map(|i| dict[i as usize]).collect()),
            Encoding::PLAIN => {
                let data = values_of(page, lv)?;
                (data, byte_entries(data, lv.non_null, utf8)?)
            }
            e => return Err(declined(format!("values encoded {e}"))),
        };
        let entries = spread(entries, lv);
        let raw = |i: usize| &buf[entries[i].0..entries[i].0 + entries[i].1];
        let valid: Option<Vec<bool>> = lv.valid.as_ref().map(|bits| (0..lv.rows).map(|r| (bits[r / 8] >> (r % 8)) & 1 == 1).collect());
        let keys: Vec<u64> = (0..lv.rows).map(|i| if valid.as_ref().is_some_and(|v| !v[i]) { 0 } else { hash_bytes(raw(i)) }).collect();
        counter.count_keys(&keys, valid.as_deref(), rows, Some(&raw))
    })?;
    if dict_rows == 0 {
        return Ok(());
    }
    let entry = |j: usize| &dict_buf[dict[j].0..dict[j].0 + dict[j].1];
    counter.add_keyed_counts(dict_rows, &table.into_counts(), |j| hash_bytes(entry(j)), |j| Some(entry(j)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_runs_and_bit_packed_groups() {
        // a run of 5 threes (bit width 2), then one group of 8 bit-packed values 0..8 at bit width 3
        let mut data = vec![5 << 1, 3];
        data.push(1 << 1 | 1);
        let vals: Vec<u64> = (0..8).collect();
        let mut packed = 0u64;
        for (k, v) in vals.iter().enumerate() {
            packed |= v << (3 * k);
        }
        data.extend_from_slice(&packed.to_le_bytes()[..3]);
        let mut run = vec![0u32; 5];
        unpack_hybrid(&data[..2], 2, &mut run).unwrap();
        assert_eq!(run, vec![3; 5]);
        let mut out = vec![0u32; 8];
        unpack_hybrid(&data[2..], 3, &mut out).unwrap();
        assert_eq!(out, (0..8).collect::<Vec<u32>>());
        assert!(unpack_hybrid(&data[2..4], 3, &mut out).is_err(), "truncated data is refused");
    }

    /// Bit-pack `vals` at `bw` bits as one hybrid bit-packed run (groups of 8, least significant bit first).
    fn packed(vals: &[u32], bw: usize) -> Vec<u8> {
        let groups = vals.len().div_ceil(8);
        let mut bits = vec![0u8; groups * bw + 8];
        for (k, &v) in vals.iter().enumerate() {
            for b in 0..bw {
                if (v >> b) & 1 == 1 {
                    let at = k * bw + b;
                    bits[at / 8] |= 1 << (at % 8);
                }
            }
        }
        bits.truncate(groups * bw);
        let mut out = vec![((groups << 1) | 1) as u8];
        out.extend(bits);
        out
    }

    #[test]
    fn every_bit_width_and_the_word_fast_path() {
        for bw in [0usize, 1, 2, 7, 8, 13, 31, 32] {
            let mask = if bw == 32 { u32::MAX } else { (1u32 << bw) - 1 };
            let vals: Vec<u32> = (0..120u32).map(|i| i.wrapping_mul(2_654_435_761) & mask).collect();
            let mut out = vec![0u32; vals.len()];
            unpack_hybrid(&packed(&vals, bw), bw as u32, &mut out).unwrap();
            assert_eq!(out, vals, "bit width {bw}");
        }
        // a header varint that never ends, and one whose group count overflows, are refused (no panic)
        let mut out = vec![0u32; 8];
        assert!(unpack_hybrid(&[0xff; 12], 3, &mut out).is_err());
        assert!(unpack_hybrid(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 3, &mut out).is_err());
    }

    #[test]
    fn a_single_run_of_ones_means_no_nulls() {
        assert!(one_run_of_ones(&[10 << 1, 1], 10));
        assert!(one_run_of_ones(&[0xc8, 0x01, 1], 100)); // header 200 (a run of 100) as a two-byte varint
        assert!(!one_run_of_ones(&[10 << 1, 0], 10), "a run of zeros: all null");
        assert!(!one_run_of_ones(&[9 << 1, 1], 10), "shorter than the page");
        assert!(!one_run_of_ones(&[(1 << 1) | 1, 0xff], 8), "bit-packed");
        assert!(!one_run_of_ones(&[], 1));
    }
}

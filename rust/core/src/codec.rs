//! Versioned little-endian binary format shared by all accumulators.
//!
//! Layout: magic `b"LRAC"`, format version (u16), kind tag (u8), then the accumulator's fields in a
//! fixed order (u8/u32/u64/f64 little-endian; sequences prefixed with a u64 length). Hash-table
//! entries are written sorted by key, so equal accumulators serialise to equal bytes.
use crate::error::{Error, Result};

pub const MAGIC: &[u8; 4] = b"LRAC";
/// Format version of the field, numeric and HLL blobs.
pub const VERSION: u16 = 1;
/// Pair blobs are version 2: null sides are stored as flags (version 1 folded nulls into the key
/// u64::MAX, which collided with the integer -1), so version-1 pair blobs are rejected.
pub const VERSION_PAIR: u16 = 2;
/// Numeric blobs are version 2: integers are summed exactly apart from the other values (version 1 held
/// float moments only), so version-1 numeric blobs are rejected.
pub const VERSION_NUM: u16 = 2;

/// Format version written and required for an accumulator kind.
pub fn version(kind: u8) -> u16 {
    match kind {
        KIND_PAIR => VERSION_PAIR,
        KIND_NUM => VERSION_NUM,
        _ => VERSION,
    }
}

pub const KIND_CAT: u8 = 1;
pub const KIND_NUM: u8 = 2;
pub const KIND_HLL: u8 = 3;
pub const KIND_PAIR: u8 = 4;

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new(kind: u8) -> Self {
        let mut w = Writer { buf: Vec::new() };
        w.buf.extend_from_slice(MAGIC);
        w.buf.extend_from_slice(&version(kind).to_le_bytes());
        w.u8(kind);
        w
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v)
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes())
    }
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes())
    }
    pub fn u64s(&mut self, v: &[u64]) {
        self.u64(v.len() as u64);
        for &x in v {
            self.u64(x)
        }
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v)
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], kind: u8) -> Result<Self> {
        if buf.len() < 7 || &buf[..4] != MAGIC {
            return Err(Error::Corrupt("missing LRAC magic header".into()));
        }
        let ver = u16::from_le_bytes([buf[4], buf[5]]);
        if ver != version(kind) {
            return Err(Error::Corrupt(format!("format version {ver}, this build reads {}", version(kind))));
        }
        if buf[6] != kind {
            return Err(Error::Corrupt(format!("accumulator kind {} where {kind} was expected", buf[6])));
        }
        Ok(Reader { buf, pos: 7 })
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.pos + n > self.buf.len() {
            return Err(Error::Corrupt(format!("truncated at byte {}", self.pos)));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len(&mut self, elem: usize) -> Result<usize> {
        let n = self.u64()? as usize;
        if n.saturating_mul(elem) > self.buf.len() - self.pos {
            return Err(Error::Corrupt(format!("length {n} exceeds the remaining bytes")));
        }
        Ok(n)
    }
    pub fn u64s(&mut self) -> Result<Vec<u64>> {
        let n = self.len(8)?;
        (0..n).map(|_| self.u64()).collect()
    }
    pub fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.len(1)?;
        Ok(self.take(n)?.to_vec())
    }
    pub fn finish(&self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(Error::Corrupt(format!("{} trailing bytes", self.buf.len() - self.pos)));
        }
        Ok(())
    }
}

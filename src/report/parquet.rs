//! A streaming Parquet writer for one flat table of fixed columns: used for
//! connections.parquet, the file that grows with the capture, and for
//! traffic.parquet and the tables' Parquet files.
//!
//! polars' batched writer cost about 0.2 s of CPU on the 1 GB reference
//! capture (dictionary and cardinality estimates for every string column,
//! statistics, its thread pool) and kept every page's write spec until the
//! footer (about 9 MiB per million connections). This one encodes straight
//! into reused column buffers and keeps only each row group's footer entry,
//! already serialized (a few KB per 16,384 rows).
//!
//! Rules of this layer:
//! - one data page (format v1) per column chunk; string columns with few
//!   distinct values (`Kind::Label`) are dictionary encoded, one dictionary
//!   per row group; 64-bit integers (counts, times, durations) are
//!   DELTA_BINARY_PACKED; everything else PLAIN;
//! - pages are LZ4_RAW compressed (accelerated), except those of random
//!   strings (`Kind::Id`), which LZ4 barely shrank;
//! - every column is OPTIONAL and typed as polars types it (unsigned
//!   integers as INT32/INT64 with an unsigned INTEGER logical type,
//!   timestamps as INT64 TIMESTAMP(NANOS, UTC), durations as INT64 without
//!   a logical type);
//! - the footer carries the Arrow schema that polars derives for the same
//!   columns (`ARROW:schema`), so readers get the exact dtypes back
//!   (durations, the UTC time zone);
//! - no column statistics are written.

use std::io::{self, Cursor, Write};
use std::thread::JoinHandle;

use polars::prelude::*;
use rustc_hash::FxHashMap;

/// What a column holds, and so how it is typed and encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string, mostly distinct per row (plain encoded).
    Text,
    /// A string of random characters (an id, a hash): plain encoded and not
    /// compressed, which LZ4 shrank by only 10-12% at a quarter of its work
    /// on connections.parquet.
    Id,
    /// A string that repeats within a row group (dictionary encoded).
    Label,
    U8,
    U16,
    U32,
    U64,
    I64,
    F64,
    Flag,
    /// Nanoseconds since the epoch, read back as `Datetime(ns, UTC)`.
    Time,
    /// Nanoseconds, read back as `Duration(ns)`.
    Span,
}

/// A column: its name and what it holds.
pub type ColumnDef = (&'static str, Kind);

impl Kind {
    pub(super) fn dtype(self) -> DataType {
        match self {
            Kind::Text | Kind::Id | Kind::Label => DataType::String,
            Kind::U8 => DataType::UInt8,
            Kind::U16 => DataType::UInt16,
            Kind::U32 => DataType::UInt32,
            Kind::U64 => DataType::UInt64,
            Kind::I64 => DataType::Int64,
            Kind::F64 => DataType::Float64,
            Kind::Flag => DataType::Boolean,
            Kind::Time => DataType::Datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC)),
            Kind::Span => DataType::Duration(TimeUnit::Nanoseconds),
        }
    }

    /// An empty column of [`Kind::dtype`]. Built from an empty vector: one
    /// made by `DataFrame::empty_with_schema` or `Series::new_empty` has
    /// polars fill its global 8 MiB of zeroes (2,048 page faults and 8 MiB
    /// of RSS) to hold no values.
    fn empty_column(self, name: &str) -> Column {
        let name: PlSmallStr = name.into();
        let ints = || Int64Chunked::from_vec(name.clone(), Vec::new());
        match self {
            Kind::Text | Kind::Id | Kind::Label => Column::new(name, Vec::<&str>::new()),
            Kind::U8 => Column::new(name, Vec::<u8>::new()),
            Kind::U16 => Column::new(name, Vec::<u16>::new()),
            Kind::U32 => Column::new(name, Vec::<u32>::new()),
            Kind::U64 => Column::new(name, Vec::<u64>::new()),
            Kind::I64 => ints().into_column(),
            Kind::F64 => Column::new(name, Vec::<f64>::new()),
            Kind::Flag => Column::new(name, Vec::<bool>::new()),
            Kind::Time => ints()
                .into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
                .into_column(),
            Kind::Span => ints().into_duration(TimeUnit::Nanoseconds).into_column(),
        }
    }

    /// The data pages' encoding.
    fn encoding(self) -> i32 {
        match self {
            Kind::Label => ENC_RLE_DICTIONARY,
            k if k.physical() == INT64 => ENC_DELTA_BINARY_PACKED,
            _ => ENC_PLAIN,
        }
    }

    /// The compression of the column's pages.
    fn codec(self) -> i32 {
        if self == Kind::Id {
            CODEC_UNCOMPRESSED
        } else {
            CODEC_LZ4_RAW
        }
    }

    /// Parquet's physical type.
    fn physical(self) -> i32 {
        match self {
            Kind::Flag => BOOLEAN,
            Kind::U8 | Kind::U16 | Kind::U32 => INT32,
            Kind::U64 | Kind::I64 | Kind::Time | Kind::Span => INT64,
            Kind::F64 => DOUBLE,
            Kind::Text | Kind::Id | Kind::Label => BYTE_ARRAY,
        }
    }
}

/// LZ4's acceleration (1 is its default): at 12 it searches fewer matches,
/// for 2.5% more bytes in connections.parquet and 14% in clients.parquet
/// (bench_1g: -6.6 ms of CPU and -3.6 ms of wall time in 41 pairs; the
/// clients table's file is the run's last step).
const LZ4_ACCELERATION: i32 = 12;

// Thrift compact protocol: the encoding of every Parquet header and footer.
const T_TRUE: u8 = 1;
const T_FALSE: u8 = 2;
const T_BYTE: u8 = 3;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_STRUCT: u8 = 12;

// Parquet enum values used here.
const BOOLEAN: i32 = 0;
const INT32: i32 = 1;
const INT64: i32 = 2;
const DOUBLE: i32 = 5;
const BYTE_ARRAY: i32 = 6;
const ENC_PLAIN: i32 = 0;
const ENC_RLE: i32 = 3;
const ENC_DELTA_BINARY_PACKED: i32 = 5;
const ENC_RLE_DICTIONARY: i32 = 8;
const PAGE_DATA: i32 = 0;
const PAGE_DICTIONARY: i32 = 2;
const CODEC_UNCOMPRESSED: i32 = 0;
const CODEC_LZ4_RAW: i32 = 7;
const OPTIONAL: i32 = 1;
// ConvertedType values (UINT_16, UINT_32, UINT_64 follow UINT_8), and the
// LogicalType union's field ids.
const CONVERTED_UTF8: i32 = 0;
const CONVERTED_UINT_8: i32 = 11;
const LOGICAL_STRING: i16 = 1;
const LOGICAL_TIMESTAMP: i16 = 8;
const LOGICAL_INTEGER: i16 = 10;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// One struct being written: field ids are sent as deltas from the last.
struct Compact<'a> {
    out: &'a mut Vec<u8>,
    last: i16,
}

impl<'a> Compact<'a> {
    fn new(out: &'a mut Vec<u8>) -> Compact<'a> {
        Compact { out, last: 0 }
    }

    fn field(&mut self, id: i16, ty: u8) {
        let delta = id - self.last;
        if (1..=15).contains(&delta) {
            self.out.push((delta as u8) << 4 | ty);
        } else {
            self.out.push(ty);
            varint(self.out, zigzag(i64::from(id)));
        }
        self.last = id;
    }

    fn i32(&mut self, id: i16, v: i32) -> &mut Self {
        self.field(id, T_I32);
        varint(self.out, zigzag(i64::from(v)));
        self
    }

    fn i64(&mut self, id: i16, v: i64) -> &mut Self {
        self.field(id, T_I64);
        varint(self.out, zigzag(v));
        self
    }

    fn byte(&mut self, id: i16, v: i8) -> &mut Self {
        self.field(id, T_BYTE);
        self.out.push(v as u8);
        self
    }

    fn bool(&mut self, id: i16, v: bool) -> &mut Self {
        self.field(id, if v { T_TRUE } else { T_FALSE });
        self
    }

    fn binary(&mut self, id: i16, v: &[u8]) -> &mut Self {
        self.field(id, T_BINARY);
        varint(self.out, v.len() as u64);
        self.out.extend_from_slice(v);
        self
    }

    fn strukt(&mut self, id: i16, body: impl FnOnce(&mut Compact)) -> &mut Self {
        self.field(id, T_STRUCT);
        body(&mut Compact::new(self.out));
        self.out.push(0);
        self
    }

    fn list_header(&mut self, id: i16, elem: u8, n: usize) {
        self.field(id, T_LIST);
        if n < 15 {
            self.out.push((n as u8) << 4 | elem);
        } else {
            self.out.push(0xf0 | elem);
            varint(self.out, n as u64);
        }
    }

    fn list_i32(&mut self, id: i16, v: &[i32]) -> &mut Self {
        self.list_header(id, T_I32, v.len());
        for &x in v {
            varint(self.out, zigzag(i64::from(x)));
        }
        self
    }

    fn list_binary(&mut self, id: i16, v: &[&[u8]]) -> &mut Self {
        self.list_header(id, T_BINARY, v.len());
        for x in v {
            varint(self.out, x.len() as u64);
            self.out.extend_from_slice(x);
        }
        self
    }

    /// A list of `n` structs already serialized back to back in `bytes`.
    fn list_structs(&mut self, id: i16, n: usize, bytes: &[u8]) -> &mut Self {
        self.list_header(id, T_STRUCT, n);
        self.out.extend_from_slice(bytes);
        self
    }

    fn each_struct<T>(&mut self, id: i16, items: &[T], mut body: impl FnMut(&mut Compact, &T)) {
        self.list_header(id, T_STRUCT, items.len());
        for item in items {
            body(&mut Compact::new(self.out), item);
            self.out.push(0);
        }
    }
}

/// Parquet's RLE/bit-packed hybrid encoding of `values`, each below
/// `1 << width`: one run when all are equal, else one bit-packed run.
fn hybrid(out: &mut Vec<u8>, values: &[u32], width: u8) {
    let Some(&first) = values.first() else {
        return;
    };
    if values.iter().all(|&v| v == first) {
        rle_run(out, values.len(), first, width);
        return;
    }
    let groups = packed_run(out, values.len());
    // Groups of 8 values, the last one padded with zeros.
    let padded = values
        .iter()
        .map(|&v| u64::from(v))
        .chain(std::iter::repeat(0));
    pack(out, padded.take(groups * 8), u32::from(width));
}

/// The hybrid encoding's run of `count` repeats of `value`, in the bytes
/// `width` bits take.
fn rle_run(out: &mut Vec<u8>, count: usize, value: u32, width: u8) {
    varint(out, (count as u64) << 1);
    out.extend_from_slice(&value.to_le_bytes()[..usize::from(width).div_ceil(8)]);
}

/// The header of the hybrid encoding's bit-packed run of `count` values;
/// returns the groups of 8 that follow it.
fn packed_run(out: &mut Vec<u8>, count: usize) -> usize {
    let groups = count.div_ceil(8);
    varint(out, (groups as u64) << 1 | 1);
    groups
}

/// Parquet's DELTA_BINARY_PACKED encoding of `values`: the first value,
/// then blocks of 128 differences from the previous value, each block less
/// its least difference and bit-packed in four miniblocks of 32 at the
/// width of their largest. Times and counters, PLAIN, are 8 bytes each
/// of which LZ4 kept 30-85%; this leaves LZ4 a fraction of the bytes.
/// (32-bit columns stay PLAIN and LZ4'd: packed and uncompressed too,
/// a run measured slower, in part from where code landed in the build.)
fn delta(out: &mut Vec<u8>, values: &[i64]) {
    const BLOCK: usize = 128;
    const MINI: usize = 32;
    varint(out, BLOCK as u64);
    varint(out, (BLOCK / MINI) as u64);
    varint(out, values.len() as u64);
    varint(out, zigzag(values.first().copied().unwrap_or(0)));
    let mut diffs = [0u64; BLOCK];
    for start in (1..values.len()).step_by(BLOCK) {
        let end = (start + BLOCK).min(values.len());
        let n = end - start;
        let mut min = i64::MAX;
        for i in start..end {
            let d = values[i].wrapping_sub(values[i - 1]);
            diffs[i - start] = d as u64;
            min = min.min(d);
        }
        for v in &mut diffs[..n] {
            *v = (*v as i64).wrapping_sub(min) as u64;
        }
        diffs[n..].fill(0);
        varint(out, zigzag(min));
        let mut widths = [0u8; BLOCK / MINI];
        for (m, w) in widths.iter_mut().enumerate() {
            let any = diffs[m * MINI..(m + 1) * MINI]
                .iter()
                .fold(0, |a, &v| a | v);
            *w = (64 - any.leading_zeros()) as u8;
        }
        out.extend_from_slice(&widths);
        for (m, &w) in widths.iter().enumerate().take(n.div_ceil(MINI)) {
            pack(
                out,
                diffs[m * MINI..(m + 1) * MINI].iter().copied(),
                u32::from(w),
            );
        }
    }
}

/// `values`, each below `1 << width` (at most 64), packed least
/// significant bit first; a whole number of bytes for 8 values.
///
/// Words collect in a local block appended 256 bytes at a time: appending
/// each word to `out` on its own kept a delta miniblock at 75 instructions
/// a value.
fn pack(out: &mut Vec<u8>, values: impl IntoIterator<Item = u64>, width: u32) {
    let mut block = [0u8; 256];
    let (mut acc, mut bits, mut n) = (0u128, 0u32, 0usize);
    for v in values {
        acc |= u128::from(v) << bits;
        bits += width;
        if bits >= 64 {
            if n == block.len() {
                out.extend_from_slice(&block);
                n = 0;
            }
            block[n..n + 8].copy_from_slice(&(acc as u64).to_le_bytes());
            n += 8;
            acc >>= 64;
            bits -= 64;
        }
    }
    out.extend_from_slice(&block[..n]);
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..bits.div_ceil(8) as usize]);
}

/// Bits needed for values up to `max` (at least 1).
fn bit_width(max: u32) -> u8 {
    (32 - max.leading_zeros()).max(1) as u8
}

/// A column's definition levels (1 present, 0 null) as bits, a row each:
/// a `u32` each was 4 bytes written per cell, and read back to encode.
#[derive(Default)]
struct Levels {
    words: Vec<u64>,
    len: usize,
    nulls: usize,
}

impl Levels {
    #[inline]
    fn push(&mut self, present: bool) {
        if self.len % 64 == 0 {
            self.words.push(0);
        }
        if let Some(w) = self.words.last_mut() {
            *w |= u64::from(present) << (self.len % 64);
        }
        self.nulls += usize::from(!present);
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    /// What [`hybrid`] writes for these levels at width 1: one run when all
    /// are equal, else one bit-packed run, whose bytes (value `i` at bit
    /// `i % 8` of byte `i / 8`) are the words' little-endian bytes.
    fn encode(&self, out: &mut Vec<u8>) {
        if self.len == 0 {
            return;
        }
        if self.nulls == 0 || self.nulls == self.len {
            rle_run(out, self.len, u32::from(self.nulls == 0), 1);
            return;
        }
        let groups = packed_run(out, self.len);
        let bytes = self.words.iter().flat_map(|w| w.to_le_bytes());
        out.extend(bytes.take(groups));
    }

    fn clear(&mut self) {
        self.words.clear();
        self.len = 0;
        self.nulls = 0;
    }
}

/// A column's rows of the current row group.
struct Chunk {
    kind: Kind,
    defs: Levels,
    /// Present values, PLAIN encoded (flags one byte each until written);
    /// for labels, the dictionary's entries in first-seen order.
    values: Vec<u8>,
    /// Labels: each distinct value's index, and each present row's index.
    dict: FxHashMap<Box<[u8]>, u32>,
    keys: Vec<u32>,
    /// Labels given by a caller's code ([`Row::label`]): each code's index
    /// plus one (0: not seen in this row group).
    codes: Vec<u32>,
}

impl Chunk {
    fn new(kind: Kind) -> Chunk {
        Chunk {
            kind,
            defs: Levels::default(),
            values: Vec::new(),
            dict: FxHashMap::default(),
            keys: Vec::new(),
            codes: Vec::new(),
        }
    }

    fn present(&mut self, present: bool) {
        self.defs.push(present);
    }

    fn int(&mut self, v: Option<u64>) {
        debug_assert!(!matches!(
            self.kind,
            Kind::Text | Kind::Id | Kind::Label | Kind::Flag | Kind::F64
        ));
        if let Some(v) = v {
            self.present(true);
            if self.kind.physical() == INT32 {
                self.values.extend_from_slice(&(v as u32).to_le_bytes());
            } else {
                self.values.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            self.present(false);
        }
    }

    fn float(&mut self, v: Option<f64>) {
        debug_assert_eq!(self.kind, Kind::F64);
        self.present(v.is_some());
        if let Some(v) = v {
            self.values.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn flag(&mut self, v: Option<bool>) {
        debug_assert_eq!(self.kind, Kind::Flag);
        self.present(v.is_some());
        if let Some(v) = v {
            self.values.push(u8::from(v));
        }
    }

    fn text(&mut self, v: Option<&[u8]>) {
        let Some(v) = v else {
            self.present(false);
            return;
        };
        self.present(true);
        match self.kind {
            Kind::Label => {
                let key = match self.dict.get(v) {
                    Some(&k) => k,
                    None => {
                        let k = self.dict.len() as u32;
                        self.dict.insert(v.into(), k);
                        self.plain(v);
                        k
                    }
                };
                self.keys.push(key);
            }
            _ => {
                debug_assert!(matches!(self.kind, Kind::Text | Kind::Id));
                self.plain(v);
            }
        }
    }

    /// A label whose caller numbers its values: found by `code` after its
    /// first row in a row group, without hashing its text.
    fn label(&mut self, code: usize, v: &[u8]) {
        if let Some(&k) = self.codes.get(code).filter(|&&k| k != 0) {
            debug_assert_eq!(self.dict.get(v), Some(&(k - 1)), "one text per code");
            self.present(true);
            self.keys.push(k - 1);
            return;
        }
        self.text(Some(v));
        if let (Kind::Label, Some(&k)) = (self.kind, self.keys.last()) {
            if self.codes.len() <= code {
                self.codes.resize(code + 1, 0);
            }
            self.codes[code] = k + 1;
        }
    }

    /// A byte array, PLAIN encoded: its length, then its bytes.
    fn plain(&mut self, v: &[u8]) {
        self.values
            .extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.values.extend_from_slice(v);
    }

    fn clear(&mut self) {
        self.defs.clear();
        self.values.clear();
        self.dict.clear();
        self.keys.clear();
        self.codes.clear();
    }
}

/// One row being appended: each call fills the next column, in order.
pub struct Row<'a> {
    chunks: std::slice::IterMut<'a, Chunk>,
}

impl Row<'_> {
    /// Fill the next column. The callers write each column of their fixed
    /// list once, in order (checked in debug builds here and in
    /// [`Writer::row`]).
    fn put(&mut self, fill: impl FnOnce(&mut Cells)) -> &mut Self {
        let chunk = self.chunks.next();
        debug_assert!(chunk.is_some(), "a row wrote more values than columns");
        if let Some(chunk) = chunk {
            fill(&mut Cells(chunk));
        }
        self
    }

    pub fn uint(&mut self, v: impl Into<u64>) -> &mut Self {
        self.put(|c| c.uint(Some(v.into())))
    }

    pub fn opt_uint<T: Into<u64>>(&mut self, v: Option<T>) -> &mut Self {
        self.put(|c| c.uint(v.map(Into::into)))
    }

    /// A timestamp or duration in nanoseconds.
    pub fn nanos(&mut self, v: i64) -> &mut Self {
        self.put(|c| c.int(Some(v)))
    }

    pub fn opt_nanos(&mut self, v: Option<i64>) -> &mut Self {
        self.put(|c| c.int(v))
    }

    pub fn flag(&mut self, v: bool) -> &mut Self {
        self.put(|c| c.flag(Some(v)))
    }

    /// A string (the callers' strings are ASCII, so valid UTF-8).
    pub fn text(&mut self, v: impl AsRef<[u8]>) -> &mut Self {
        let v = v.as_ref();
        debug_assert!(v.is_ascii());
        self.put(|c| c.text(Some(v)))
    }

    #[cfg(test)]
    pub fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        self.put(|c| c.text(v.map(str::as_bytes)))
    }

    /// A value of a small fixed set, numbered by the caller (an enum's
    /// position): the same `code` must always come with the same text. A
    /// label column's dictionary then finds it by number, not by hashing
    /// its text (five of connections.parquet's columns, every record).
    pub fn label(&mut self, code: usize, v: &str) -> &mut Self {
        self.put(|c| c.0.label(code, v.as_bytes()))
    }

    pub fn opt_label(&mut self, v: Option<(usize, &str)>) -> &mut Self {
        self.put(|c| match v {
            Some((code, v)) => c.0.label(code, v.as_bytes()),
            None => c.0.text(None),
        })
    }
}

/// One column of the current row group, filled a value at a time: by
/// [`Row`] a column per call, or column by column for a table already in
/// memory ([`Writer::cells`]).
pub struct Cells<'a>(&'a mut Chunk);

impl Cells<'_> {
    pub fn uint(&mut self, v: Option<u64>) {
        self.0.int(v);
    }

    /// Also timestamps and durations in nanoseconds (stored as two's
    /// complement).
    pub fn int(&mut self, v: Option<i64>) {
        self.0.int(v.map(|v| v as u64));
    }

    pub fn float(&mut self, v: Option<f64>) {
        self.0.float(v);
    }

    pub fn flag(&mut self, v: Option<bool>) {
        self.0.flag(v);
    }

    pub fn text(&mut self, v: Option<&[u8]>) {
        self.0.text(v);
    }
}

/// A Parquet file written a row group at a time.
pub struct Writer<W: Write> {
    out: W,
    /// Bytes written so far (page offsets in the footer).
    offset: u64,
    columns: Vec<(String, Kind)>,
    chunks: Vec<Chunk>,
    rows_total: u64,
    /// The footer's row-group entries, serialized, and how many.
    groups: Vec<u8>,
    group_count: usize,
    /// Reused page buffers.
    body: Vec<u8>,
    packed: Vec<u8>,
    levels: Vec<u8>,
    head: Vec<u8>,
    /// A 64-bit column's values, for the delta encoding.
    ints: Vec<i64>,
    /// Made on a thread of its own: polars' first use takes 6–7 ms, which
    /// the capture's first packets need not wait for.
    arrow_schema: JoinHandle<PolarsResult<String>>,
}

/// Where a column chunk's pages landed.
struct ChunkMeta {
    name: String,
    kind: Kind,
    dictionary_offset: Option<u64>,
    data_offset: u64,
    uncompressed: u64,
    compressed: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, columns: &[(impl AsRef<str>, Kind)]) -> io::Result<Writer<W>> {
        out.write_all(b"PAR1")?;
        let columns: Vec<(String, Kind)> = columns
            .iter()
            .map(|(name, kind)| (name.as_ref().to_string(), *kind))
            .collect();
        let owned = columns.clone();
        Ok(Writer {
            out,
            offset: 4,
            chunks: columns.iter().map(|&(_, kind)| Chunk::new(kind)).collect(),
            columns,
            rows_total: 0,
            groups: Vec::new(),
            group_count: 0,
            body: Vec::new(),
            packed: Vec::new(),
            levels: Vec::new(),
            head: Vec::new(),
            ints: Vec::new(),
            arrow_schema: std::thread::spawn(move || arrow_schema(&owned)),
        })
    }

    /// Rows appended to the current row group (every row gives each
    /// column one definition level).
    pub fn buffered(&self) -> usize {
        self.chunks.first().map_or(0, |c| c.defs.len())
    }

    /// Append a row: `fill` writes every column once, in order.
    pub fn row(&mut self, fill: impl FnOnce(&mut Row)) {
        let mut row = Row {
            chunks: self.chunks.iter_mut(),
        };
        fill(&mut row);
        debug_assert!(row.chunks.next().is_none(), "a row left columns unwritten");
    }

    /// Column `i` of the current row group.
    pub fn cells(&mut self, i: usize) -> Cells<'_> {
        Cells(&mut self.chunks[i])
    }

    /// Write the buffered rows as one row group.
    pub fn flush_group(&mut self) -> io::Result<()> {
        let rows = self.buffered();
        if rows == 0 {
            return Ok(());
        }
        // A caller that filled a row short or long would otherwise write a
        // file whose columns disagree on the row count.
        if self.chunks.iter().any(|c| c.defs.len() != rows) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a row did not fill every column once",
            ));
        }
        let group_start = self.offset;
        let mut metas = Vec::with_capacity(self.chunks.len());
        for i in 0..self.chunks.len() {
            metas.push(self.write_chunk(i)?);
        }
        let uncompressed: u64 = metas.iter().map(|m| m.uncompressed).sum();
        let mut c = Compact::new(&mut self.groups);
        c.each_struct(1, &metas, |c, m| {
            // `file_offset`, deprecated: 0 when the metadata is only in the
            // footer (parquet.thrift).
            c.i64(2, 0);
            c.strukt(3, |c| column_meta(c, m, rows as i64));
        });
        c.i64(2, uncompressed as i64)
            .i64(3, rows as i64)
            .i64(5, group_start as i64)
            .i64(6, (self.offset - group_start) as i64);
        self.groups.push(0);
        self.group_count += 1;
        self.rows_total += rows as u64;
        for chunk in &mut self.chunks {
            chunk.clear();
        }
        Ok(())
    }

    fn write_chunk(&mut self, i: usize) -> io::Result<ChunkMeta> {
        let chunk = &self.chunks[i];
        let mut meta = ChunkMeta {
            name: self.columns[i].0.clone(),
            kind: chunk.kind,
            dictionary_offset: None,
            data_offset: 0,
            uncompressed: 0,
            compressed: 0,
        };
        if chunk.kind == Kind::Label {
            self.body.clear();
            self.body.extend_from_slice(&chunk.values);
            let entries = chunk.dict.len() as i32;
            meta.dictionary_offset = Some(self.offset);
            self.page(&mut meta, PAGE_DICTIONARY, |c| {
                c.strukt(7, |c| {
                    c.i32(1, entries).i32(2, ENC_PLAIN);
                });
            })?;
        }
        let chunk = &self.chunks[i];
        // Definition levels (bit width 1), prefixed by their length.
        self.levels.clear();
        chunk.defs.encode(&mut self.levels);
        self.body.clear();
        self.body
            .extend_from_slice(&(self.levels.len() as u32).to_le_bytes());
        self.body.extend_from_slice(&self.levels);
        let encoding = chunk.kind.encoding();
        match chunk.kind {
            Kind::Label => {
                let width = bit_width(chunk.dict.len().saturating_sub(1) as u32);
                self.body.push(width);
                hybrid(&mut self.body, &chunk.keys, width);
            }
            _ if encoding == ENC_DELTA_BINARY_PACKED => {
                self.ints.clear();
                self.ints.extend(
                    chunk.values.chunks_exact(8).map(|b| {
                        i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                    }),
                );
                delta(&mut self.body, &self.ints);
            }
            Kind::Flag => {
                let start = self.body.len();
                self.body.resize(start + chunk.values.len().div_ceil(8), 0);
                for (j, &b) in chunk.values.iter().enumerate() {
                    self.body[start + j / 8] |= b << (j % 8);
                }
            }
            _ => self.body.extend_from_slice(&chunk.values),
        }
        let rows = chunk.defs.len() as i32;
        meta.data_offset = self.offset;
        self.page(&mut meta, PAGE_DATA, |c| {
            c.strukt(5, |c| {
                c.i32(1, rows)
                    .i32(2, encoding)
                    .i32(3, ENC_RLE)
                    .i32(4, ENC_RLE);
            });
        })?;
        Ok(meta)
    }

    /// Compress `self.body` (unless the column is not compressed) and
    /// write it as one page whose header ends with `header` (the
    /// page-type-specific part).
    fn page(
        &mut self,
        meta: &mut ChunkMeta,
        page_type: i32,
        header: impl FnOnce(&mut Compact),
    ) -> io::Result<()> {
        let stored = if meta.kind.codec() == CODEC_UNCOMPRESSED {
            &self.body[..]
        } else {
            let bound = lz4::block::compress_bound(self.body.len())?;
            self.packed.resize(bound, 0);
            let fast = Some(lz4::block::CompressionMode::FAST(LZ4_ACCELERATION));
            let n = lz4::block::compress_to_buffer(&self.body, fast, false, &mut self.packed)?;
            &self.packed[..n]
        };
        let n = stored.len();
        // Page sizes are i32 in the format: a larger page is an error, not
        // a wrapped size.
        let size = |n: usize| i32::try_from(n).map_err(io::Error::other);
        let (plain, compressed) = (size(self.body.len())?, size(n)?);
        self.head.clear();
        let mut c = Compact::new(&mut self.head);
        c.i32(1, page_type).i32(2, plain).i32(3, compressed);
        header(&mut c);
        self.head.push(0);
        self.out.write_all(&self.head)?;
        self.out.write_all(stored)?;
        let head_len = self.head.len() as u64;
        self.offset += head_len + n as u64;
        meta.uncompressed += head_len + self.body.len() as u64;
        meta.compressed += head_len + n as u64;
        Ok(())
    }

    /// Write the last row group and the footer; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_group()?;
        let arrow_schema = self
            .arrow_schema
            .join()
            .map_err(|_| io::Error::other("internal error: the Arrow schema's thread stopped"))?
            .map_err(io::Error::other)?;
        let mut footer = Vec::new();
        let mut c = Compact::new(&mut footer);
        // The format's version field: writers set 1 whatever features
        // they use (parquet.thrift).
        c.i32(1, 1);
        let mut schema = vec![("root", None)];
        schema.extend(self.columns.iter().map(|(n, k)| (n.as_str(), Some(*k))));
        let children = self.columns.len() as i32;
        c.each_struct(2, &schema, |c, &(name, kind)| match kind {
            None => {
                c.binary(4, name.as_bytes()).i32(5, children);
            }
            Some(kind) => schema_element(c, name, kind),
        });
        c.i64(3, self.rows_total as i64)
            .list_structs(4, self.group_count, &self.groups);
        c.each_struct(5, &[()], |c, _| {
            c.binary(1, b"ARROW:schema")
                .binary(2, arrow_schema.as_bytes());
        });
        c.binary(
            6,
            concat!("sockscope version ", env!("CARGO_PKG_VERSION")).as_bytes(),
        );
        footer.push(0);
        self.out.write_all(&footer)?;
        self.out.write_all(&(footer.len() as u32).to_le_bytes())?;
        self.out.write_all(b"PAR1")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A column chunk's ColumnMetaData.
fn column_meta(c: &mut Compact, m: &ChunkMeta, rows: i64) {
    let encodings: &[i32] = if m.dictionary_offset.is_some() {
        &[ENC_RLE, ENC_PLAIN, ENC_RLE_DICTIONARY]
    } else {
        &[ENC_RLE, m.kind.encoding()]
    };
    c.i32(1, m.kind.physical())
        .list_i32(2, encodings)
        .list_binary(3, &[m.name.as_bytes()])
        .i32(4, m.kind.codec())
        .i64(5, rows)
        .i64(6, m.uncompressed as i64)
        .i64(7, m.compressed as i64)
        .i64(9, m.data_offset as i64);
    if let Some(d) = m.dictionary_offset {
        c.i64(11, d as i64);
    }
}

/// A leaf's SchemaElement: physical type, OPTIONAL, name, and the
/// converted and logical types polars gives the same dtype.
fn schema_element(c: &mut Compact, name: &str, kind: Kind) {
    c.i32(1, kind.physical())
        .i32(3, OPTIONAL)
        .binary(4, name.as_bytes());
    let unsigned = |c: &mut Compact, converted: i32, bits: i8| {
        c.i32(6, converted).strukt(10, |c| {
            c.strukt(LOGICAL_INTEGER, |c| {
                c.byte(1, bits).bool(2, false);
            });
        });
    };
    match kind {
        Kind::Text | Kind::Id | Kind::Label => {
            c.i32(6, CONVERTED_UTF8).strukt(10, |c| {
                c.strukt(LOGICAL_STRING, |_| {});
            });
        }
        Kind::U8 => unsigned(c, CONVERTED_UINT_8, 8),
        Kind::U16 => unsigned(c, CONVERTED_UINT_8 + 1, 16),
        Kind::U32 => unsigned(c, CONVERTED_UINT_8 + 2, 32),
        Kind::U64 => unsigned(c, CONVERTED_UINT_8 + 3, 64),
        Kind::Time => {
            c.strukt(10, |c| {
                c.strukt(LOGICAL_TIMESTAMP, |c| {
                    // isAdjustedToUTC, then the unit's union: NANOS.
                    c.bool(1, true).strukt(2, |c| {
                        c.strukt(3, |_| {});
                    });
                });
            });
        }
        Kind::Flag | Kind::Span | Kind::I64 | Kind::F64 => {}
    }
}

/// The `ARROW:schema` footer value polars writes for these columns, taken
/// from an empty file polars writes (it is an Arrow IPC schema message).
fn arrow_schema(columns: &[(String, Kind)]) -> PolarsResult<String> {
    let empty = columns
        .iter()
        .map(|(name, kind)| kind.empty_column(name))
        .collect();
    let mut df = DataFrame::new(0, empty)?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut df)?;
    let mut reader = ParquetReader::new(Cursor::new(bytes));
    let meta = reader.get_metadata()?;
    meta.key_value_metadata
        .iter()
        .flatten()
        .find(|kv| kv.key == "ARROW:schema")
        .and_then(|kv| kv.value.clone())
        .ok_or_else(|| polars_err!(ComputeError: "polars wrote no ARROW:schema"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The polars schema of a table of `columns`.
    fn schema(columns: &[(impl AsRef<str>, Kind)]) -> Schema {
        columns
            .iter()
            .map(|(name, kind)| Field::new(name.as_ref().into(), kind.dtype()))
            .collect()
    }

    #[test]
    fn empty_columns_have_their_kinds_type() {
        use Kind::*;
        for kind in [
            Text, Id, Label, U8, U16, U32, U64, I64, F64, Flag, Time, Span,
        ] {
            let c = kind.empty_column("c");
            assert_eq!((c.dtype(), c.len()), (&kind.dtype(), 0), "{kind:?}");
        }
    }

    #[test]
    fn compact_fields_lists_and_structs() {
        let mut out = Vec::new();
        let mut c = Compact::new(&mut out);
        c.i32(1, -1).i64(3, 300).bool(4, true).binary(20, b"ab");
        c.strukt(21, |c| {
            c.byte(1, 8);
        });
        c.list_i32(22, &[0; 15]);
        // Short deltas share the type's byte; id 20 is 16 past 4, so it is
        // sent in full (zigzag 40); nested structs count ids from zero.
        let mut want = vec![
            0x15, 0x01, 0x26, 0xd8, 0x04, 0x11, 0x08, 0x28, 0x02, b'a', b'b',
        ];
        want.extend([0x1c, 0x13, 0x08, 0x00, 0x19, 0xf5, 0x0f]);
        want.extend([0; 15]);
        assert_eq!(out, want);
    }

    #[test]
    fn hybrid_runs_and_bit_packing() {
        // One RLE run when every value is equal.
        let mut out = Vec::new();
        hybrid(&mut out, &[1; 300], 1);
        assert_eq!(out, [0xd8, 0x04, 0x01]);
        // The Parquet spec's bit-packing example: 0..7 in 3 bits.
        out.clear();
        hybrid(&mut out, &[0, 1, 2, 3, 4, 5, 6, 7], 3);
        assert_eq!(out, [0x03, 0x88, 0xc6, 0xfa]);
        // Values cross byte boundaries and the last group is zero-padded.
        out.clear();
        hybrid(&mut out, &[0x1ff, 0, 0x155], 9);
        assert_eq!(out.len(), 1 + 9);
        assert_eq!(&out[..5], [0x03, 0xff, 0x01, 0x54, 0x05]);
        assert_eq!(bit_width(0), 1);
        assert_eq!(bit_width(255), 8);
        assert_eq!(bit_width(256), 9);
    }

    const COLUMNS: &[ColumnDef] = &[
        ("name", Kind::Text),
        ("state", Kind::Label),
        ("small", Kind::U8),
        ("port", Kind::U16),
        ("count", Kind::U32),
        ("bytes", Kind::U64),
        ("flag", Kind::Flag),
        ("at", Kind::Time),
        ("took", Kind::Span),
    ];

    fn read(bytes: Vec<u8>) -> DataFrame {
        ParquetReader::new(Cursor::new(bytes)).finish().unwrap()
    }

    /// Levels kept as bits encode as [`hybrid`] encodes them one `u32`
    /// each: all present, all null, mixed, at lengths around word edges.
    #[test]
    fn levels_as_bits_encode_as_hybrid_does() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 1000, 16_384] {
            for pattern in 0..4 {
                let (mut bits, mut plain) = (Levels::default(), Vec::new());
                for _ in 0..len {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let present = match pattern {
                        0 => true,
                        1 => false,
                        2 => x % 2 == 0,
                        _ => x % 97 != 0,
                    };
                    bits.push(present);
                    plain.push(u32::from(present));
                }
                let (mut ours, mut want) = (Vec::new(), Vec::new());
                bits.encode(&mut ours);
                hybrid(&mut want, &plain, 1);
                assert_eq!(ours, want, "{len} rows, pattern {pattern}");
                assert_eq!(bits.len(), len);
            }
        }
    }

    /// Labels given by number write the file that the same labels given
    /// by text write.
    #[test]
    fn labels_by_code_write_what_labels_by_text_write() {
        let names = ["SF", "S0", "REJ"];
        let file = |by_code: bool| {
            let mut w = Writer::new(Vec::new(), COLUMNS).unwrap();
            for i in 0..1000usize {
                let label = (i % 4 != 0).then_some(i * 7 % 3);
                w.row(|row| {
                    row.text(b"x");
                    if by_code {
                        row.opt_label(label.map(|c| (c, names[c])));
                    } else {
                        row.opt_text(label.map(|c| names[c]));
                    }
                    row.uint(0u8)
                        .opt_uint(None::<u16>)
                        .uint(0u32)
                        .uint(0u64)
                        .flag(false)
                        .nanos(0)
                        .opt_nanos(None);
                });
                if i == 399 {
                    w.flush_group().unwrap();
                }
            }
            w.finish().unwrap()
        };
        assert_eq!(file(true), file(false));
    }

    #[test]
    fn polars_reads_back_every_kind_with_nulls_across_row_groups() {
        let mut w = Writer::new(Vec::new(), COLUMNS).unwrap();
        let n = 1000u32;
        for i in 0..n {
            w.row(|row| {
                let label = ["SF", "S0", "REJ"][i as usize % 3];
                row.text(format!("C{i}").as_bytes())
                    .opt_text((i % 4 != 0).then_some(label))
                    .uint((i % 256) as u8)
                    .opt_uint((i % 5 != 0).then_some(i as u16))
                    .uint(u32::MAX - i)
                    .uint(u64::MAX - u64::from(i))
                    .flag(i % 3 == 0)
                    .nanos(i64::from(i) * 1_000_000_007)
                    .opt_nanos((i % 7 != 0).then_some(-i64::from(i)));
            });
            if i == 399 || i == 400 {
                w.flush_group().unwrap();
            }
        }
        let df = read(w.finish().unwrap());
        assert_eq!(df.schema().as_ref(), &schema(COLUMNS));
        assert_eq!(df.height(), n as usize);

        let i = 402usize;
        let row = df.get(i).unwrap();
        assert_eq!(row[0], AnyValue::String("C402"));
        assert_eq!(row[1], AnyValue::String("SF"));
        assert_eq!(row[2], AnyValue::UInt8(146));
        assert_eq!(row[3], AnyValue::UInt16(402));
        assert_eq!(row[4], AnyValue::UInt32(u32::MAX - 402));
        assert_eq!(row[5], AnyValue::UInt64(u64::MAX - 402));
        assert_eq!(row[6], AnyValue::Boolean(true));
        let nulls: Vec<usize> = df.columns().iter().map(|c| c.null_count()).collect();
        assert_eq!(nulls, [0, 250, 0, 200, 0, 0, 0, 0, 143]);
        assert_eq!(nanos(&df, "at")[i], Some(402 * 1_000_000_007));
        let took = nanos(&df, "took");
        assert_eq!((took[i], took[406]), (Some(-402), None));
    }

    /// A row of [`COLUMNS`], with nulls where they are nullable here.
    type Values = (
        String,
        Option<&'static str>,
        u8,
        Option<u16>,
        u32,
        Option<u64>,
        bool,
        i64,
        Option<i64>,
    );

    fn values() -> impl Strategy<Value = Values> {
        let labels = prop::sample::select(vec!["", "S0", "ShADadFf", "é"]);
        (
            "[a-z0-9.:]{0,40}",
            prop::option::of(labels),
            any::<u8>(),
            prop::option::of(any::<u16>()),
            any::<u32>(),
            prop::option::of(any::<u64>()),
            any::<bool>(),
            any::<i64>(),
            prop::option::of(any::<i64>()),
        )
    }

    /// A column as nanoseconds (times and durations read back typed).
    fn nanos(df: &DataFrame, name: &str) -> Vec<Option<i64>> {
        let c = df.column(name).unwrap().cast(&DataType::Int64).unwrap();
        let c = c.i64().unwrap();
        (0..c.len()).map(|i| c.get(i)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the values, nulls and row-group cuts, polars reads back
        /// exactly the rows written.
        #[test]
        fn rows_read_back_unchanged(
            rows in prop::collection::vec(values(), 0..300),
            cuts in prop::collection::vec(0usize..300, 0..4),
        ) {
            let mut w = Writer::new(Vec::new(), COLUMNS).unwrap();
            for (i, r) in rows.iter().enumerate() {
                w.row(|row| {
                    row.text(&r.0)
                        .opt_text(r.1)
                        .uint(r.2)
                        .opt_uint(r.3)
                        .uint(r.4)
                        .opt_uint(r.5)
                        .flag(r.6)
                        .nanos(r.7)
                        .opt_nanos(r.8);
                });
                if cuts.contains(&i) {
                    w.flush_group().unwrap();
                }
            }
            let df = read(w.finish().unwrap());
            prop_assert_eq!(df.height(), rows.len());
            let col = |name: &str| df.column(name).unwrap().as_materialized_series().clone();
            let (name, state) = (col("name"), col("state"));
            let (small, port, count, bytes, flag) =
                (col("small"), col("port"), col("count"), col("bytes"), col("flag"));
            let (at, took) = (nanos(&df, "at"), nanos(&df, "took"));
            for (i, r) in rows.iter().enumerate() {
                prop_assert_eq!(name.str().unwrap().get(i), Some(r.0.as_str()));
                prop_assert_eq!(state.str().unwrap().get(i), r.1);
                prop_assert_eq!(small.u8().unwrap().get(i), Some(r.2));
                prop_assert_eq!(port.u16().unwrap().get(i), r.3);
                prop_assert_eq!(count.u32().unwrap().get(i), Some(r.4));
                prop_assert_eq!(bytes.u64().unwrap().get(i), r.5);
                prop_assert_eq!(flag.bool().unwrap().get(i), Some(r.6));
                prop_assert_eq!(at[i], Some(r.7));
                prop_assert_eq!(took[i], r.8);
            }
        }
    }

    #[test]
    fn deltas_that_wrap_and_partial_blocks_read_back() {
        // Differences that overflow (width 64), a lone value, exactly one
        // block plus one, and a page of nulls only.
        let cols = [("v", Kind::I64), ("u", Kind::U64), ("none", Kind::U64)];
        for n in [0usize, 1, 2, 31, 33, 128, 129, 300] {
            let v: Vec<i64> = (0..n)
                .map(|i| match i % 3 {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    _ => i as i64 - 7,
                })
                .collect();
            let mut w = Writer::new(Vec::new(), &cols).unwrap();
            for (i, &x) in v.iter().enumerate() {
                w.row(|row| {
                    row.nanos(x)
                        .uint(u64::MAX - (i as u64 % 5))
                        .opt_uint(None::<u64>);
                });
            }
            let df = read(w.finish().unwrap());
            let got: Vec<Option<i64>> = df.column("v").unwrap().i64().unwrap().iter().collect();
            assert_eq!(got, v.iter().map(|&x| Some(x)).collect::<Vec<_>>(), "n={n}");
            let u = df.column("u").unwrap().u64().unwrap();
            assert!(
                u.iter()
                    .enumerate()
                    .all(|(i, x)| x == Some(u64::MAX - (i as u64 % 5)))
            );
            assert_eq!(df.column("none").unwrap().null_count(), n);
        }
    }

    #[test]
    fn an_empty_table_still_has_its_schema() {
        let df = read(Writer::new(Vec::new(), COLUMNS).unwrap().finish().unwrap());
        assert_eq!(df.height(), 0);
        assert_eq!(df.schema().as_ref(), &schema(COLUMNS));
    }
}

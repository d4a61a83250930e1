//! connections.parquet, and the helpers every Parquet file shares.
//!
//! Types: timestamps are `Datetime(ns, UTC)`, durations `Duration(ns)`,
//! addresses strings, ports `UInt16`, counts unsigned integers; columns are
//! those of connections.csv. Records are written as Parquet row groups of
//! 16,384 while the capture is read (by [`super::parquet`], not polars), so
//! memory does not grow with the number of connections.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::flow::{ConnRecord, Side};

use super::RecordText;
use super::output::{OutFile, OutputError};
use super::parquet::{self, Cells, ColumnDef, Kind, Row};

/// Rows per Parquet row group.
pub const BATCH_ROWS: usize = 16_384;

/// The columns of connections.csv and connections.parquet, in order, with
/// their Parquet types; documented in the README.
pub const CONNECTION_COLUMNS: &[ColumnDef] = &[
    ("uid", Kind::Id),
    ("ts", Kind::Time),
    ("orig_addr", Kind::Text),
    ("orig_port", Kind::U16),
    ("resp_addr", Kind::Label),
    ("resp_port", Kind::U16),
    ("proto", Kind::Label),
    ("ip_proto", Kind::U8),
    ("duration", Kind::Span),
    ("orig_bytes", Kind::U64),
    ("resp_bytes", Kind::U64),
    ("conn_state", Kind::Label),
    ("local_orig", Kind::Flag),
    ("local_resp", Kind::Flag),
    ("missed_bytes", Kind::U64),
    ("history", Kind::Label),
    ("orig_pkts", Kind::U64),
    ("orig_ip_bytes", Kind::U64),
    ("resp_pkts", Kind::U64),
    ("resp_ip_bytes", Kind::U64),
    ("community_id", Kind::Id),
    ("vlan", Kind::U16),
    ("inner_vlan", Kind::U16),
    ("first_syn_ts", Kind::Time),
    ("syn_ack_ts", Kind::Time),
    ("established_ts", Kind::Time),
    ("handshake_rtt", Kind::Span),
    ("first_fin_ts", Kind::Time),
    ("first_fin_side", Kind::Label),
    ("first_rst_ts", Kind::Time),
    ("first_rst_side", Kind::Label),
    ("last_packet_ts", Kind::Time),
    ("close_reason", Kind::Label),
    ("retransmits", Kind::U32),
    ("out_of_order", Kind::U32),
    ("zero_windows", Kind::U32),
    ("midstream", Kind::Flag),
];

/// A side as a numbered label.
fn side(s: Option<Side>) -> Option<(usize, &'static str)> {
    s.map(|s| (s as usize, s.name()))
}

/// One record as a row of [`CONNECTION_COLUMNS`], in their order.
pub fn connection_row(row: &mut Row, r: &ConnRecord, t: &RecordText) {
    let l = &r.lifecycle;
    let (local_orig, local_resp) = t.local();
    row.text(t.uid())
        .nanos(r.start)
        .text(t.orig())
        .uint(r.orig_port)
        .text(t.resp())
        .uint(r.resp_port)
        .label(r.proto as usize, r.proto.name())
        .uint(r.ip_proto)
        .nanos(r.duration)
        .uint(r.orig_bytes)
        .uint(r.resp_bytes)
        .label(r.state as usize, r.state.name())
        .flag(local_orig)
        .flag(local_resp)
        .uint(r.missed_bytes)
        .text(r.history.as_str())
        .uint(r.orig_pkts)
        .uint(r.orig_ip_bytes)
        .uint(r.resp_pkts)
        .uint(r.resp_ip_bytes)
        .text(t.community_id())
        .opt_uint(r.vlan)
        .opt_uint(r.inner_vlan)
        .opt_nanos(l.first_syn)
        .opt_nanos(l.syn_ack)
        .opt_nanos(l.established)
        .opt_nanos(r.handshake_rtt())
        .opt_nanos(l.first_fin.map(|f| f.0))
        .opt_label(side(l.first_fin.map(|f| f.1)))
        .opt_nanos(l.first_rst.map(|f| f.0))
        .opt_label(side(l.first_rst.map(|f| f.1)))
        .nanos(l.last_packet)
        .label(r.close_reason as usize, r.close_reason.name())
        .uint(l.retransmits)
        .uint(l.out_of_order)
        .uint(l.zero_windows)
        .flag(l.midstream);
}

/// A `Datetime(ns, UTC)` column from nanoseconds since the epoch.
pub fn utc(name: &str, ns: Vec<i64>) -> Column {
    Int64Chunked::from_vec(name.into(), ns)
        .into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
        .into_column()
}

/// A Parquet file written by [`super::parquet`] a row group at a time,
/// under a temporary name until it is finished.
pub struct ParquetFile {
    path: PathBuf,
    writer: parquet::Writer<OutFile>,
}

pub fn polars_err(path: &Path, e: PolarsError) -> OutputError {
    OutputError::new(path, std::io::Error::other(e.to_string()))
}

/// Write a whole frame as `dir/name`, atomically, with sockscope's own
/// Parquet writer (polars' ran its thread pool for the tables at the end of
/// the run, where the clients table is the last thing left).
pub fn write_parquet(dir: &Path, name: &str, df: &DataFrame) -> Result<(), OutputError> {
    let path = dir.join(name);
    let columns = df
        .columns()
        .iter()
        .map(|c| {
            kind_of(c.dtype())
                .map(|k| (c.name().to_string(), k))
                .ok_or_else(|| {
                    let e = format!("internal error: no Parquet type for {}", c.dtype());
                    OutputError::new(&path, std::io::Error::other(e))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut file = ParquetFile::create(dir, name, &columns)?;
    for start in (0..df.height()).step_by(BATCH_ROWS) {
        let part = df.slice(start as i64, BATCH_ROWS);
        for (i, (c, &(_, kind))) in part.columns().iter().zip(&columns).enumerate() {
            fill(&mut file.writer.cells(i), c, kind).map_err(|e| polars_err(&path, e))?;
        }
        file.end_group()?;
    }
    file.finish().map(drop)
}

/// The Parquet column kind whose polars type is `dtype` (strings plain).
fn kind_of(dtype: &DataType) -> Option<Kind> {
    use Kind::*;
    [Text, U8, U16, U32, U64, I64, F64, Flag, Time, Span]
        .into_iter()
        .find(|k| k.dtype() == *dtype)
}

/// Every value of `c` (of the type `kind` was found for) into `cells`.
fn fill(cells: &mut Cells, c: &Column, kind: Kind) -> PolarsResult<()> {
    let c = c.as_materialized_series();
    match kind {
        Kind::Text | Kind::Id | Kind::Label => c
            .str()?
            .iter()
            .for_each(|v| cells.text(v.map(str::as_bytes))),
        Kind::U8 => c.u8()?.iter().for_each(|v| cells.uint(v.map(u64::from))),
        Kind::U16 => c.u16()?.iter().for_each(|v| cells.uint(v.map(u64::from))),
        Kind::U32 => c.u32()?.iter().for_each(|v| cells.uint(v.map(u64::from))),
        Kind::U64 => c.u64()?.iter().for_each(|v| cells.uint(v)),
        Kind::I64 => c.i64()?.iter().for_each(|v| cells.int(v)),
        Kind::F64 => c.f64()?.iter().for_each(|v| cells.float(v)),
        Kind::Flag => c.bool()?.iter().for_each(|v| cells.flag(v)),
        Kind::Time | Kind::Span => c
            .to_physical_repr()
            .i64()?
            .iter()
            .for_each(|v| cells.int(v)),
    }
    Ok(())
}

impl ParquetFile {
    pub fn create(
        dir: &Path,
        name: &str,
        columns: &[(impl AsRef<str>, Kind)],
    ) -> Result<ParquetFile, OutputError> {
        let path = dir.join(name);
        let file = OutFile::create(dir, name)?;
        let writer = parquet::Writer::new(file, columns).map_err(|e| OutputError::new(&path, e))?;
        Ok(ParquetFile { path, writer })
    }

    /// Append a row: `fill` writes every column once, in order.
    pub fn row(&mut self, fill: impl FnOnce(&mut Row)) -> Result<(), OutputError> {
        self.writer.row(fill);
        if self.writer.buffered() >= BATCH_ROWS {
            self.end_group()?;
        }
        Ok(())
    }

    /// Write the rows buffered so far as a row group.
    fn end_group(&mut self) -> Result<(), OutputError> {
        self.writer
            .flush_group()
            .map_err(|e| OutputError::new(&self.path, e))
    }

    pub fn finish(self) -> Result<PathBuf, OutputError> {
        self.writer
            .finish()
            .map_err(|e| OutputError::new(&self.path, e))?
            .commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_equal_across_row_groups() {
        let n = BATCH_ROWS + 7;
        let every = |k: usize| (0..n).map(move |i| (i % k != 0).then_some(i));
        let ns: Vec<Option<i64>> = every(5)
            .map(|v| v.map(|i| i as i64 * 1_000_003 - 9))
            .collect();
        let df = DataFrame::new(
            n,
            vec![
                Column::new(
                    "s".into(),
                    every(3)
                        .map(|v| v.map(|i| format!("10.0.{i}")))
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "u8".into(),
                    every(4).map(|v| v.map(|i| i as u8)).collect::<Vec<_>>(),
                ),
                Column::new(
                    "u16".into(),
                    every(6).map(|v| v.map(|i| i as u16)).collect::<Vec<_>>(),
                ),
                Column::new(
                    "u32".into(),
                    every(7).map(|v| v.map(|i| i as u32)).collect::<Vec<_>>(),
                ),
                Column::new(
                    "u64".into(),
                    every(2)
                        .map(|v| v.map(|i| u64::MAX - i as u64))
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "i64".into(),
                    every(9).map(|v| v.map(|i| -(i as i64))).collect::<Vec<_>>(),
                ),
                Column::new(
                    "f64".into(),
                    every(8)
                        .map(|v| v.map(|i| i as f64 / 3.0))
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "flag".into(),
                    every(10).map(|v| v.map(|i| i % 3 == 0)).collect::<Vec<_>>(),
                ),
                Int64Chunked::from_iter_options("at".into(), ns.iter().copied())
                    .into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
                    .into_column(),
                Int64Chunked::from_iter_options("took".into(), ns.iter().copied())
                    .into_duration(TimeUnit::Nanoseconds)
                    .into_column(),
            ],
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("sockscope-frame-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_parquet(&dir, "t.parquet", &df).unwrap();
        let back = ParquetReader::new(std::fs::File::open(dir.join("t.parquet")).unwrap())
            .finish()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back.schema(), df.schema());
        assert!(back.equals_missing(&df));
    }

    #[test]
    fn a_column_type_without_a_parquet_kind_is_an_error() {
        let df = DataFrame::new(1, vec![Column::new("x".into(), [1i32])]).unwrap();
        let dir = std::env::temp_dir().join(format!("sockscope-frame-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = write_parquet(&dir, "t.parquet", &df).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            e.to_string()
                .ends_with("internal error: no Parquet type for i32"),
            "{e}"
        );
    }
}

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
use super::parquet::{self, ColumnDef, Kind, Row};
use super::site::is_local;

/// Rows per Parquet row group.
pub const BATCH_ROWS: usize = 16_384;

/// The columns of connections.csv and connections.parquet, in order, with
/// their Parquet types; documented in the README.
pub const CONNECTION_COLUMNS: &[ColumnDef] = &[
    ("uid", Kind::Text),
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
    ("community_id", Kind::Text),
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

fn side(s: Option<Side>) -> Option<&'static str> {
    s.map(Side::name)
}

/// One record as a row of [`CONNECTION_COLUMNS`], in their order.
pub fn connection_row(row: &mut Row, r: &ConnRecord, t: &RecordText) {
    let l = &r.lifecycle;
    row.text(t.uid())
        .nanos(r.start)
        .text(t.orig())
        .uint(r.orig_port)
        .text(t.resp())
        .uint(r.resp_port)
        .text(r.proto.name())
        .uint(r.ip_proto)
        .nanos(r.duration)
        .uint(r.orig_bytes)
        .uint(r.resp_bytes)
        .text(r.state.name())
        .flag(is_local(r.orig))
        .flag(is_local(r.resp))
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
        .opt_text(side(l.first_fin.map(|f| f.1)))
        .opt_nanos(l.first_rst.map(|f| f.0))
        .opt_text(side(l.first_rst.map(|f| f.1)))
        .nanos(l.last_packet)
        .text(r.close_reason.name())
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

/// Write a whole frame as `dir/name` (Parquet, LZ4: a third larger than zstd,
/// written in half the time), atomically. The file is buffered: polars
/// writes the footer's thrift fields a few bytes at a time.
pub fn write_parquet(dir: &Path, name: &str, df: &mut DataFrame) -> Result<(), OutputError> {
    let mut file = OutFile::create(dir, name)?;
    ParquetWriter::new(&mut file)
        .with_compression(ParquetCompression::Lz4Raw)
        .finish(df)
        .map_err(|e| polars_err(&dir.join(name), e))?;
    file.commit().map(drop)
}

impl ParquetFile {
    pub fn create(
        dir: &Path,
        name: &str,
        columns: &'static [ColumnDef],
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
            self.writer
                .flush_group()
                .map_err(|e| OutputError::new(&self.path, e))?;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<PathBuf, OutputError> {
        self.writer
            .finish()
            .map_err(|e| OutputError::new(&self.path, e))?
            .commit()
    }
}

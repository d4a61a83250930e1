//! Connection records as a typed polars frame, and connections.parquet.
//!
//! Types: timestamps are `Datetime(ns, UTC)`, durations `Duration(ns)`,
//! addresses strings, ports `UInt16`, counts unsigned integers; columns are
//! those of connections.csv. Records are appended in batches and written as
//! Parquet row groups while the capture is read, so memory does not grow with
//! the number of connections.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use polars::io::parquet::write::BatchedWriter as ParquetBatches;
use polars::prelude::*;

use crate::flow::{ConnRecord, Side};

use super::RecordText;
use super::output::OutputError;
use super::site::is_local;

/// Rows per Parquet row group.
pub const BATCH_ROWS: usize = 16_384;

/// Column buffers for a batch of records.
struct ConnColumns {
    uid: StringChunkedBuilder,
    ts: Vec<i64>,
    orig_addr: StringChunkedBuilder,
    orig_port: Vec<u16>,
    resp_addr: StringChunkedBuilder,
    resp_port: Vec<u16>,
    proto: Vec<&'static str>,
    ip_proto: Vec<u8>,
    duration: Vec<i64>,
    orig_bytes: Vec<u64>,
    resp_bytes: Vec<u64>,
    conn_state: Vec<&'static str>,
    local_orig: Vec<bool>,
    local_resp: Vec<bool>,
    missed_bytes: Vec<u64>,
    history: StringChunkedBuilder,
    orig_pkts: Vec<u64>,
    orig_ip_bytes: Vec<u64>,
    resp_pkts: Vec<u64>,
    resp_ip_bytes: Vec<u64>,
    community_id: StringChunkedBuilder,
    vlan: Vec<Option<u16>>,
    inner_vlan: Vec<Option<u16>>,
    first_syn_ts: Vec<Option<i64>>,
    syn_ack_ts: Vec<Option<i64>>,
    established_ts: Vec<Option<i64>>,
    handshake_rtt: Vec<Option<i64>>,
    first_fin_ts: Vec<Option<i64>>,
    first_fin_side: Vec<Option<&'static str>>,
    first_rst_ts: Vec<Option<i64>>,
    first_rst_side: Vec<Option<&'static str>>,
    last_packet_ts: Vec<i64>,
    close_reason: Vec<&'static str>,
    retransmits: Vec<u32>,
    out_of_order: Vec<u32>,
    zero_windows: Vec<u32>,
    midstream: Vec<bool>,
}

fn side(s: Option<Side>) -> Option<&'static str> {
    s.map(Side::name)
}

impl ConnColumns {
    /// Empty buffers; string columns append into one buffer each, so a
    /// row allocates nothing.
    pub fn new() -> ConnColumns {
        let text = |name: &str| StringChunkedBuilder::new(name.into(), BATCH_ROWS);
        ConnColumns {
            uid: text("uid"),
            ts: Vec::new(),
            orig_addr: text("orig_addr"),
            orig_port: Vec::new(),
            resp_addr: text("resp_addr"),
            resp_port: Vec::new(),
            proto: Vec::new(),
            ip_proto: Vec::new(),
            duration: Vec::new(),
            orig_bytes: Vec::new(),
            resp_bytes: Vec::new(),
            conn_state: Vec::new(),
            local_orig: Vec::new(),
            local_resp: Vec::new(),
            missed_bytes: Vec::new(),
            history: text("history"),
            orig_pkts: Vec::new(),
            orig_ip_bytes: Vec::new(),
            resp_pkts: Vec::new(),
            resp_ip_bytes: Vec::new(),
            community_id: text("community_id"),
            vlan: Vec::new(),
            inner_vlan: Vec::new(),
            first_syn_ts: Vec::new(),
            syn_ack_ts: Vec::new(),
            established_ts: Vec::new(),
            handshake_rtt: Vec::new(),
            first_fin_ts: Vec::new(),
            first_fin_side: Vec::new(),
            first_rst_ts: Vec::new(),
            first_rst_side: Vec::new(),
            last_packet_ts: Vec::new(),
            close_reason: Vec::new(),
            retransmits: Vec::new(),
            out_of_order: Vec::new(),
            zero_windows: Vec::new(),
            midstream: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    pub fn push(&mut self, r: &ConnRecord, t: &RecordText) {
        let l = &r.lifecycle;
        self.uid.append_value(t.uid());
        self.ts.push(r.start);
        self.orig_addr.append_value(t.orig());
        self.orig_port.push(r.orig_port);
        self.resp_addr.append_value(t.resp());
        self.resp_port.push(r.resp_port);
        self.proto.push(r.proto.name());
        self.ip_proto.push(r.ip_proto);
        self.duration.push(r.duration);
        self.orig_bytes.push(r.orig_bytes);
        self.resp_bytes.push(r.resp_bytes);
        self.conn_state.push(r.state.name());
        self.local_orig.push(is_local(r.orig));
        self.local_resp.push(is_local(r.resp));
        self.missed_bytes.push(r.missed_bytes);
        self.history.append_value(r.history.as_str());
        self.orig_pkts.push(r.orig_pkts);
        self.orig_ip_bytes.push(r.orig_ip_bytes);
        self.resp_pkts.push(r.resp_pkts);
        self.resp_ip_bytes.push(r.resp_ip_bytes);
        self.community_id.append_value(t.community_id());
        self.vlan.push(r.vlan);
        self.inner_vlan.push(r.inner_vlan);
        self.first_syn_ts.push(l.first_syn);
        self.syn_ack_ts.push(l.syn_ack);
        self.established_ts.push(l.established);
        self.handshake_rtt.push(r.handshake_rtt());
        self.first_fin_ts.push(l.first_fin.map(|f| f.0));
        self.first_fin_side.push(side(l.first_fin.map(|f| f.1)));
        self.first_rst_ts.push(l.first_rst.map(|f| f.0));
        self.first_rst_side.push(side(l.first_rst.map(|f| f.1)));
        self.last_packet_ts.push(l.last_packet);
        self.close_reason.push(r.close_reason.name());
        self.retransmits.push(l.retransmits);
        self.out_of_order.push(l.out_of_order);
        self.zero_windows.push(l.zero_windows);
        self.midstream.push(l.midstream);
    }

    /// Move the buffered rows into a typed frame, leaving the buffers empty.
    pub fn take_frame(&mut self) -> PolarsResult<DataFrame> {
        let b = std::mem::replace(self, ConnColumns::new());
        let span = DataType::Duration(TimeUnit::Nanoseconds);
        let ts = |name: &str, v: Vec<i64>| -> PolarsResult<Column> { Ok(utc(name, v)) };
        let opt_ts =
            |name: &str, v: Vec<Option<i64>>| -> PolarsResult<Column> { Ok(utc_opt(name, v)) };
        let columns = vec![
            b.uid.finish().into_column(),
            ts("ts", b.ts)?,
            b.orig_addr.finish().into_column(),
            Column::new("orig_port".into(), b.orig_port),
            b.resp_addr.finish().into_column(),
            Column::new("resp_port".into(), b.resp_port),
            Column::new("proto".into(), b.proto),
            Column::new("ip_proto".into(), b.ip_proto),
            Column::new("duration".into(), b.duration).cast(&span)?,
            Column::new("orig_bytes".into(), b.orig_bytes),
            Column::new("resp_bytes".into(), b.resp_bytes),
            Column::new("conn_state".into(), b.conn_state),
            Column::new("local_orig".into(), b.local_orig),
            Column::new("local_resp".into(), b.local_resp),
            Column::new("missed_bytes".into(), b.missed_bytes),
            b.history.finish().into_column(),
            Column::new("orig_pkts".into(), b.orig_pkts),
            Column::new("orig_ip_bytes".into(), b.orig_ip_bytes),
            Column::new("resp_pkts".into(), b.resp_pkts),
            Column::new("resp_ip_bytes".into(), b.resp_ip_bytes),
            b.community_id.finish().into_column(),
            Column::new("vlan".into(), b.vlan),
            Column::new("inner_vlan".into(), b.inner_vlan),
            opt_ts("first_syn_ts", b.first_syn_ts)?,
            opt_ts("syn_ack_ts", b.syn_ack_ts)?,
            opt_ts("established_ts", b.established_ts)?,
            Column::new("handshake_rtt".into(), b.handshake_rtt).cast(&span)?,
            opt_ts("first_fin_ts", b.first_fin_ts)?,
            Column::new("first_fin_side".into(), b.first_fin_side),
            opt_ts("first_rst_ts", b.first_rst_ts)?,
            Column::new("first_rst_side".into(), b.first_rst_side),
            ts("last_packet_ts", b.last_packet_ts)?,
            Column::new("close_reason".into(), b.close_reason),
            Column::new("retransmits".into(), b.retransmits),
            Column::new("out_of_order".into(), b.out_of_order),
            Column::new("zero_windows".into(), b.zero_windows),
            Column::new("midstream".into(), b.midstream),
        ];
        DataFrame::new_infer_height(columns)
    }
}

/// A `Datetime(ns, UTC)` column from nanoseconds since the epoch.
pub fn utc(name: &str, ns: Vec<i64>) -> Column {
    Int64Chunked::from_vec(name.into(), ns)
        .into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
        .into_column()
}

/// [`utc`] with missing values.
pub fn utc_opt(name: &str, ns: Vec<Option<i64>>) -> Column {
    Int64Chunked::from_iter_options(name.into(), ns.into_iter())
        .into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
        .into_column()
}

/// connections.parquet, written a row group at a time under a temporary name.
pub struct ConnectionsParquet {
    tmp: PathBuf,
    path: PathBuf,
    writer: Option<ParquetBatches<BufWriter<File>>>,
    columns: ConnColumns,
}

pub fn polars_err(path: &Path, e: PolarsError) -> OutputError {
    OutputError::new(path, std::io::Error::other(e.to_string()))
}

/// A Parquet file being written. polars writes the footer's thrift fields a
/// few bytes at a time (7,700 writes of 5 bytes for the tables, 37,000 of
/// 330 for connections.parquet on bench_1g), so the file is buffered; the
/// footer's `end_file` flushes it and returns any error.
fn parquet_file(tmp: &Path) -> Result<BufWriter<File>, OutputError> {
    let file = File::create(tmp).map_err(|e| OutputError::new(tmp, e))?;
    Ok(BufWriter::with_capacity(1 << 16, file))
}

/// Write a whole frame as `dir/name` (Parquet, LZ4: a third larger than zstd,
/// written in half the time), atomically.
pub fn write_parquet(dir: &Path, name: &str, df: &mut DataFrame) -> Result<(), OutputError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    ParquetWriter::new(parquet_file(&tmp)?)
        .with_compression(ParquetCompression::Lz4Raw)
        .finish(df)
        .map_err(|e| polars_err(&path, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| OutputError::new(&path, e))
}

impl ConnectionsParquet {
    pub fn create(dir: &Path) -> Result<ConnectionsParquet, OutputError> {
        Ok(ConnectionsParquet {
            tmp: dir.join(".connections.parquet.tmp"),
            path: dir.join("connections.parquet"),
            writer: None,
            columns: ConnColumns::new(),
        })
    }

    pub fn write(&mut self, r: &ConnRecord, t: &RecordText) -> Result<(), OutputError> {
        self.columns.push(r, t);
        if self.columns.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        let df = self
            .columns
            .take_frame()
            .map_err(|e| polars_err(&self.path, e))?;
        if self.writer.is_none() {
            let w = ParquetWriter::new(parquet_file(&self.tmp)?)
                .with_compression(ParquetCompression::Lz4Raw)
                .batched(df.schema())
                .map_err(|e| polars_err(&self.path, e))?;
            self.writer = Some(w);
        }
        if let Some(w) = self.writer.as_mut() {
            w.write_batch(&df).map_err(|e| polars_err(&self.path, e))?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<PathBuf, OutputError> {
        // Always write the last (possibly empty) batch so the file has a schema.
        if !self.columns.is_empty() || self.writer.is_none() {
            self.flush()?;
        }
        if let Some(w) = self.writer.take() {
            w.finish().map_err(|e| polars_err(&self.path, e))?;
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|e| OutputError::new(&self.path, e))?;
        Ok(self.path)
    }
}

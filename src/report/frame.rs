//! Connection records as a typed polars frame, and connections.parquet.
//!
//! Types: timestamps are `Datetime(ns, UTC)`, durations `Duration(ns)`,
//! addresses strings, ports `UInt16`, counts unsigned integers; columns are
//! those of connections.csv. Records are appended in batches and written as
//! Parquet row groups while the capture is read, so memory does not grow with
//! the number of connections.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::io::parquet::write::BatchedWriter as ParquetBatches;
use polars::prelude::*;

use crate::flow::{ConnRecord, Side};

use super::output::OutputError;
use super::site::is_local;
use super::text;

/// Rows per Parquet row group.
pub const BATCH_ROWS: usize = 65_536;

/// Column buffers for a batch of records.
#[derive(Default)]
pub struct ConnColumns {
    uid: Vec<String>,
    ts: Vec<i64>,
    orig_addr: Vec<String>,
    orig_port: Vec<u16>,
    resp_addr: Vec<String>,
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
    history: Vec<String>,
    orig_pkts: Vec<u64>,
    orig_ip_bytes: Vec<u64>,
    resp_pkts: Vec<u64>,
    resp_ip_bytes: Vec<u64>,
    community_id: Vec<String>,
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
    pub fn len(&self) -> usize {
        self.uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uid.is_empty()
    }

    pub fn push(&mut self, r: &ConnRecord, community_id: &str) {
        let l = &r.lifecycle;
        let mut uid = Vec::with_capacity(20);
        text::uid(&mut uid, r.uid);
        self.uid.push(String::from_utf8_lossy(&uid).into_owned());
        self.ts.push(r.start);
        self.orig_addr.push(r.orig.to_string());
        self.orig_port.push(r.orig_port);
        self.resp_addr.push(r.resp.to_string());
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
        self.history.push(r.history.as_str().to_string());
        self.orig_pkts.push(r.orig_pkts);
        self.orig_ip_bytes.push(r.orig_ip_bytes);
        self.resp_pkts.push(r.resp_pkts);
        self.resp_ip_bytes.push(r.resp_ip_bytes);
        self.community_id.push(community_id.to_string());
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
        let b = std::mem::take(self);
        let span = DataType::Duration(TimeUnit::Nanoseconds);
        let ts = |name: &str, v: Vec<i64>| -> PolarsResult<Column> { Ok(utc(name, v)) };
        let opt_ts =
            |name: &str, v: Vec<Option<i64>>| -> PolarsResult<Column> { Ok(utc_opt(name, v)) };
        let columns = vec![
            Column::new("uid".into(), b.uid),
            ts("ts", b.ts)?,
            Column::new("orig_addr".into(), b.orig_addr),
            Column::new("orig_port".into(), b.orig_port),
            Column::new("resp_addr".into(), b.resp_addr),
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
            Column::new("history".into(), b.history),
            Column::new("orig_pkts".into(), b.orig_pkts),
            Column::new("orig_ip_bytes".into(), b.orig_ip_bytes),
            Column::new("resp_pkts".into(), b.resp_pkts),
            Column::new("resp_ip_bytes".into(), b.resp_ip_bytes),
            Column::new("community_id".into(), b.community_id),
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
    writer: Option<ParquetBatches<File>>,
    columns: ConnColumns,
}

pub fn polars_err(path: &Path, e: PolarsError) -> OutputError {
    OutputError::new(path, std::io::Error::other(e.to_string()))
}

/// Write a whole frame as `dir/name` (Parquet, zstd), atomically.
pub fn write_parquet(dir: &Path, name: &str, df: &mut DataFrame) -> Result<(), OutputError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let file = File::create(&tmp).map_err(|e| OutputError::new(&tmp, e))?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(None))
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
            columns: ConnColumns::default(),
        })
    }

    pub fn write(&mut self, r: &ConnRecord, community_id: &str) -> Result<(), OutputError> {
        self.columns.push(r, community_id);
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
            let file = File::create(&self.tmp).map_err(|e| OutputError::new(&self.tmp, e))?;
            let w = ParquetWriter::new(file)
                .with_compression(ParquetCompression::Zstd(None))
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

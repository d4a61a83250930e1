//! Reporting: connection records into files (conn.log, connections.csv,
//! connections.parquet, summary.json) and, from them, the fan-in tables,
//! timeline, charts and the one-page report.

pub mod conn_log;
pub mod connections;
pub mod frame;
pub mod output;
pub mod site;
pub mod summary;
pub mod text;
pub mod traffic;

use std::path::Path;

use crate::flow::community_id::community_id;
use crate::flow::{ConnRecord, RecordSink};
use crate::source::Nanos;
use conn_log::ConnLog;
use connections::ConnectionsCsv;
use frame::ConnectionsParquet;
use output::{Mode, OutputError};
use summary::RecordTally;

/// The per-record writers, fed as connections leave the flow table.
pub struct RecordWriters {
    conn_log: ConnLog,
    csv: ConnectionsCsv,
    parquet: ConnectionsParquet,
    pub tally: RecordTally,
    /// The first write error; later records are dropped once one occurred.
    error: Option<OutputError>,
}

impl RecordWriters {
    pub fn create(dir: &Path, vlan_key: bool, mode: Mode) -> Result<RecordWriters, OutputError> {
        Ok(RecordWriters {
            conn_log: ConnLog::create(dir, vlan_key, mode)?,
            csv: ConnectionsCsv::create(dir, mode)?,
            parquet: ConnectionsParquet::create(dir)?,
            tally: RecordTally::default(),
            error: None,
        })
    }

    /// Write conn.log's header now (`#open` = the capture's first packet).
    pub fn open(&mut self, first_packet: Nanos) {
        if let Err(e) = self.conn_log.header(first_packet) {
            self.error.get_or_insert(e);
        }
    }

    fn write(&mut self, r: &ConnRecord) -> Result<(), OutputError> {
        let cid = community_id(
            r.orig,
            r.orig_port,
            r.resp,
            r.resp_port,
            r.ip_proto,
            r.directional,
        );
        self.conn_log.write(r, &cid)?;
        self.csv.write(r, &cid)?;
        self.parquet.write(r, &cid)
    }

    /// Make every record so far visible in the journals (live capture).
    pub fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.conn_log.flush().and_then(|_| self.csv.flush()) {
                self.error = Some(e);
            }
        }
    }

    /// Finish every file; returns the tally of what was written.
    pub fn finish(self, first: Nanos, last: Nanos) -> Result<RecordTally, OutputError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.conn_log.finish(first, last)?;
        self.csv.finish()?;
        self.parquet.finish()?;
        Ok(self.tally)
    }
}

impl RecordSink for RecordWriters {
    fn record(&mut self, r: &ConnRecord) {
        self.tally.add(r);
        if self.error.is_none() {
            if let Err(e) = self.write(r) {
                self.error = Some(e);
            }
        }
    }
}
pub mod build;
pub mod charts;
pub mod html;
pub mod tables;
pub mod timeline;

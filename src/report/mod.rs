//! Reporting: connection records into files (conn.log, connections.csv,
//! connections.parquet, summary.json) and, from them, the fan-in tables,
//! timeline, charts and the one-page report.

pub mod conn_log;
pub mod connections;
pub mod frame;
pub mod output;
pub mod parquet;
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
use frame::{CONNECTION_COLUMNS, ParquetFile, connection_row};
use output::{Mode, OutputError};
use summary::RecordTally;

/// The text fields every writer needs, formatted once per record into
/// buffers reused from record to record.
#[derive(Default)]
pub struct RecordText {
    uid: Vec<u8>,
    orig: Vec<u8>,
    resp: Vec<u8>,
    community_id: String,
}

impl RecordText {
    pub fn fill(&mut self, r: &ConnRecord) {
        self.uid.clear();
        text::uid(&mut self.uid, r.uid);
        self.orig.clear();
        text::addr(&mut self.orig, r.orig);
        self.resp.clear();
        text::addr(&mut self.resp, r.resp);
        self.community_id.clear();
        community_id(
            &mut self.community_id,
            r.orig,
            r.orig_port,
            r.resp,
            r.resp_port,
            r.ip_proto,
            r.directional,
        );
    }

    pub fn uid(&self) -> &[u8] {
        &self.uid
    }

    pub fn orig(&self) -> &[u8] {
        &self.orig
    }

    pub fn resp(&self) -> &[u8] {
        &self.resp
    }

    pub fn community_id(&self) -> &[u8] {
        self.community_id.as_bytes()
    }
}

/// The per-record writers, fed as connections leave the flow table.
pub struct RecordWriters {
    conn_log: ConnLog,
    csv: ConnectionsCsv,
    parquet: ParquetFile,
    text: RecordText,
    /// The columns the fan-in tables need, kept for them (offline runs;
    /// past one chunk in a temporary file).
    conns: Option<tables::ConnsBuilder>,
    pub tally: RecordTally,
    /// The first write error; later records are dropped once one occurred.
    error: Option<OutputError>,
}

impl RecordWriters {
    /// `keep` keeps what the fan-in tables need, so they are built without
    /// reading connections.parquet back.
    pub fn create(
        dir: &Path,
        vlan_key: bool,
        mode: Mode,
        keep: bool,
    ) -> Result<RecordWriters, OutputError> {
        Ok(RecordWriters {
            conn_log: ConnLog::create(dir, vlan_key, mode)?,
            csv: ConnectionsCsv::create(dir, mode)?,
            parquet: ParquetFile::create(dir, "connections.parquet", CONNECTION_COLUMNS)?,
            text: RecordText::default(),
            conns: keep.then(|| tables::ConnsBuilder::new(dir)),
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
        self.text.fill(r);
        // Should the tables' temporary file fail (a full disk), the record
        // files go on and the tables are read back from connections.parquet.
        if self.conns.as_mut().is_some_and(|c| c.push(r).is_err()) {
            self.conns = None;
        }
        self.conn_log.write(r, &self.text)?;
        self.csv.write(r, &self.text)?;
        let text = &self.text;
        self.parquet.row(|row| connection_row(row, r, text))
    }

    /// Make every record so far visible in the journals (live capture).
    pub fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.conn_log.flush().and_then(|_| self.csv.flush()) {
                self.error = Some(e);
            }
        }
    }

    /// Finish every file; returns the tally of what was written and the
    /// kept connections.
    pub fn finish(
        self,
        first: Nanos,
        last: Nanos,
    ) -> Result<(RecordTally, Option<tables::Conns>), OutputError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.conn_log.finish(first, last)?;
        self.csv.finish()?;
        self.parquet.finish()?;
        let conns = self.conns.and_then(|c| c.finish().ok());
        Ok((self.tally, conns))
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
mod spill;
pub mod tables;
pub mod timeline;

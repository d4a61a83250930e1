//! Reporting: connection records into files (conn.log, connections.csv,
//! summary.json) and, from them, the fan-in tables and charts.

pub mod conn_log;
pub mod connections;
pub mod output;
pub mod site;
pub mod summary;
pub mod text;

use std::path::Path;

use crate::flow::{ConnRecord, RecordSink};
use conn_log::ConnLog;
use connections::ConnectionsCsv;
use output::OutputError;
use summary::RecordTally;

/// The per-record writers, fed as connections leave the flow table.
pub struct RecordWriters {
    pub conn_log: ConnLog,
    pub csv: ConnectionsCsv,
    pub tally: RecordTally,
    /// The first write error; later records are dropped once one occurred.
    pub error: Option<OutputError>,
}

impl RecordWriters {
    pub fn create(dir: &Path, vlan_key: bool) -> Result<RecordWriters, OutputError> {
        Ok(RecordWriters {
            conn_log: ConnLog::create(dir, vlan_key)?,
            csv: ConnectionsCsv::create(dir)?,
            tally: RecordTally::default(),
            error: None,
        })
    }
}

impl RecordSink for RecordWriters {
    fn record(&mut self, r: &ConnRecord) {
        self.tally.add(r);
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.conn_log.write(r).and_then(|_| self.csv.write(r)) {
            self.error = Some(e);
        }
    }
}

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

use std::io;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

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
    /// Zeek's `local_orig` and `local_resp`, asked once for all writers.
    local: (bool, bool),
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
        self.local = (site::is_local(r.orig), site::is_local(r.resp));
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

    /// Whether the originator and the responder are local addresses.
    pub fn local(&self) -> (bool, bool) {
        self.local
    }
}

/// The per-record writers, fed as connections leave the flow table: the
/// record files, and what the summary and the tables keep of each record.
/// At the end of a run the two part ([`RecordWriters::into_parts`]), so that
/// the tables need not wait for the files to finish.
pub struct RecordWriters {
    files: RecordFiles,
    rows: RecordRows,
}

/// conn.log, connections.csv and connections.parquet.
pub struct RecordFiles {
    conn_log: ConnLog,
    csv: ConnectionsCsv,
    parquet: ParquetFile,
    text: RecordText,
    /// The first write error; later records are dropped once one occurred.
    error: Option<OutputError>,
}

/// What the summary and the tables keep of each record.
pub struct RecordRows {
    /// The columns the fan-in tables need, kept for them (offline runs;
    /// past one chunk in a temporary file).
    conns: Option<tables::ConnsBuilder>,
    tally: RecordTally,
}

/// What the record writers are sent besides records.
pub trait RecordOutput: RecordSink {
    /// Write conn.log's header now (`#open` = the capture's first packet).
    fn open(&mut self, first_packet: Nanos);
    /// Make every record so far visible in the journals (live capture).
    fn flush(&mut self);
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
            files: RecordFiles {
                conn_log: ConnLog::create(dir, vlan_key, mode)?,
                csv: ConnectionsCsv::create(dir, mode)?,
                parquet: ParquetFile::create(dir, "connections.parquet", CONNECTION_COLUMNS)?,
                text: RecordText::default(),
                error: None,
            },
            rows: RecordRows {
                conns: keep.then(|| tables::ConnsBuilder::new(dir)),
                tally: RecordTally::default(),
            },
        })
    }

    pub fn into_parts(self) -> (RecordFiles, RecordRows) {
        (self.files, self.rows)
    }
}

impl RecordOutput for RecordWriters {
    fn open(&mut self, first_packet: Nanos) {
        self.files.open(first_packet);
    }

    fn flush(&mut self) {
        self.files.flush();
    }
}

impl RecordSink for RecordWriters {
    fn record(&mut self, r: &ConnRecord) {
        self.rows.record(r);
        self.files.record(r);
    }
}

impl RecordFiles {
    fn write(&mut self, r: &ConnRecord) -> Result<(), OutputError> {
        self.text.fill(r);
        self.conn_log.write(r, &self.text)?;
        self.csv.write(r, &self.text)?;
        let text = &self.text;
        self.parquet.row(|row| connection_row(row, r, text))
    }

    /// Finish every file (the first write error, if there was one).
    pub fn finish(self, first: Nanos, last: Nanos) -> Result<(), OutputError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.conn_log.finish(first, last)?;
        self.csv.finish()?;
        self.parquet.finish().map(drop)
    }
}

impl RecordOutput for RecordFiles {
    fn open(&mut self, first_packet: Nanos) {
        if let Err(e) = self.conn_log.header(first_packet) {
            self.error.get_or_insert(e);
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.conn_log.flush().and_then(|_| self.csv.flush()) {
                self.error = Some(e);
            }
        }
    }
}

impl RecordSink for RecordFiles {
    fn record(&mut self, r: &ConnRecord) {
        if self.error.is_none() {
            if let Err(e) = self.write(r) {
                self.error = Some(e);
            }
        }
    }
}

impl RecordRows {
    /// The tally of what was recorded, and the kept connections.
    pub fn finish(self) -> (RecordTally, Option<tables::Conns>) {
        (self.tally, self.conns.map(tables::ConnsBuilder::finish))
    }
}

/// Only the records matter to the rows.
impl RecordOutput for RecordRows {
    fn open(&mut self, _first_packet: Nanos) {}

    fn flush(&mut self) {}
}

impl RecordSink for RecordRows {
    fn record(&mut self, r: &ConnRecord) {
        self.tally.add(r);
        // Should the tables' temporary file fail (a full disk), the record
        // files go on and the tables are read back from connections.parquet.
        if self.conns.as_mut().is_some_and(|c| c.push(r).is_err()) {
            self.conns = None;
        }
    }
}

/// Lower the calling thread's priority (nice 10), for work with time to
/// spare at the end of a run, the record files and the port tables: on two
/// cores the clients table, which finishes last, then gets a core of its
/// own while they wait their turn.
pub(crate) fn yield_to_others() {
    // SAFETY: setpriority reads only its arguments; a thread id names that
    // thread alone on Linux. Failing leaves the priority as it was.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
}

/// Files finishing on a thread of their own (the record files at the end of
/// a run, while the tables are built). Dropping it waits as well, so that
/// no file is left half written.
#[derive(Debug, Default)]
pub struct PendingFiles {
    dir: PathBuf,
    thread: Option<JoinHandle<Result<(), OutputError>>>,
}

impl PendingFiles {
    /// Run `work`, which writes files in `dir`, on a thread of its own.
    pub fn start(
        dir: &Path,
        work: impl FnOnce() -> Result<(), OutputError> + Send + 'static,
    ) -> PendingFiles {
        PendingFiles {
            dir: dir.to_path_buf(),
            thread: Some(std::thread::spawn(|| {
                yield_to_others();
                work()
            })),
        }
    }

    /// Wait until the files are written: the first error, reported once.
    pub fn wait(&mut self) -> Result<(), OutputError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        thread.join().unwrap_or_else(|_| {
            Err(OutputError::new(
                &self.dir,
                io::Error::other("internal error: the thread finishing the files stopped"),
            ))
        })
    }
}

impl Drop for PendingFiles {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

pub mod build;
pub mod charts;
pub mod html;
mod spill;
pub mod tables;
pub mod timeline;

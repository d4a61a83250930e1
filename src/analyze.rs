//! The pipeline from raw frames to written records, shared by offline
//! analysis (capture files) and live capture.
//!
//! Two threads: the caller's thread decodes and tracks connections
//! ([`Session::feed`]); a writer thread formats the records (conn.log, CSV,
//! Parquet) as they leave the table, in batches, so formatting overlaps with
//! reading. The fan-in tables and charts are built from connections.parquet
//! afterwards ([`crate::report::build`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::decode::{DecodeConfig, Decoder, Skip};
use crate::flow::{ConnRecord, FlowConfig, FlowTable, RecordSink};
use crate::report::output::{self, Mode, OutputError};
use crate::report::summary::{
    CaptureSpan, InputSummary, LiveStats, PacketCounts, Summary, TableSummary,
};
use crate::report::traffic::Traffic;
use crate::report::{RecordWriters, text};
use crate::source::filter::{Bpf, FilterError};
use crate::source::{CaptureReader, Compression, Merge, Nanos, OpenOrRead, RawPacket, SourceError};

/// Everything `sockscope analyze` needs, validated by the CLI.
#[derive(Clone, Debug)]
pub struct AnalyzeConfig {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub force: bool,
    pub filter: Option<String>,
    pub decode: DecodeConfig,
    pub flow: FlowConfig,
}

/// Progress reporting hooks (the binary draws a bar; the library never prints).
pub trait Progress {
    fn start(&self, _total_bytes: Option<u64>) {}
    fn update(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// No progress output.
pub struct Silent;
impl Progress for Silent {}

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Input(#[from] OpenOrRead),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("internal error: the record writer thread stopped unexpectedly")]
    WriterLost,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    /// Some input was damaged (truncated or corrupt); everything before the
    /// damage was analysed.
    pub damaged: bool,
}

/// Records per message to the writer thread.
const BATCH: usize = 4096;

enum ToWriter {
    /// The capture's first packet time, for conn.log's `#open`.
    Open(Nanos),
    Records(Vec<ConnRecord>),
    /// Make everything so far visible on disk (live capture).
    Flush,
}

/// Collects records into batches for the writer thread, reusing the
/// vectors it hands back.
struct Batcher {
    buf: Vec<ConnRecord>,
    tx: SyncSender<ToWriter>,
    spare: Receiver<Vec<ConnRecord>>,
    lost: bool,
}

impl Batcher {
    fn send(&mut self, msg: ToWriter) {
        self.lost |= self.tx.send(msg).is_err();
    }

    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let full = std::mem::replace(&mut self.buf, next);
        self.send(ToWriter::Records(full));
    }
}

impl RecordSink for Batcher {
    fn record(&mut self, r: &ConnRecord) {
        self.buf.push(*r);
        if self.buf.len() >= BATCH {
            self.flush();
        }
    }
}

/// Output settings of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub out: PathBuf,
    pub force: bool,
    pub decode: DecodeConfig,
    pub flow: FlowConfig,
    /// Files-side BPF (live capture filters in the kernel instead).
    pub filter: Option<String>,
    pub mode: Mode,
}

/// One run of the engine: frames in, records written.
pub struct Session {
    cfg: SessionConfig,
    decoder: Decoder,
    table: FlowTable,
    bpf: Option<Bpf>,
    sink: Batcher,
    writer: JoinHandle<RecordWriters>,
    counts: PacketCounts,
    skipped: BTreeMap<Skip, u64>,
    span: Option<(Nanos, Nanos)>,
    warnings: Vec<String>,
    inputs: Vec<InputSummary>,
    traffic: Traffic,
}

impl Session {
    pub fn start(cfg: SessionConfig, inputs: Vec<InputSummary>) -> Result<Session, AnalyzeError> {
        let bpf = cfg.filter.as_deref().map(Bpf::new).transpose()?;
        output::prepare_dir(&cfg.out, cfg.force)?;
        let mut writers = RecordWriters::create(&cfg.out, cfg.flow.vlan_key, cfg.mode)?;
        let (tx, rx) = sync_channel::<ToWriter>(4);
        let (spare_tx, spare) = sync_channel::<Vec<ConnRecord>>(4);
        let writer = std::thread::spawn(move || {
            for msg in rx {
                match msg {
                    ToWriter::Open(ts) => writers.open(ts),
                    ToWriter::Records(mut batch) => {
                        for r in &batch {
                            writers.record(r);
                        }
                        batch.clear();
                        let _ = spare_tx.try_send(batch);
                    }
                    ToWriter::Flush => writers.flush(),
                }
            }
            writers
        });
        Ok(Session {
            decoder: Decoder::new(cfg.decode),
            table: FlowTable::new(cfg.flow.clone()),
            cfg,
            bpf,
            sink: Batcher {
                buf: Vec::with_capacity(BATCH),
                tx,
                spare,
                lost: false,
            },
            writer,
            counts: PacketCounts::default(),
            skipped: BTreeMap::new(),
            span: None,
            warnings: Vec::new(),
            inputs,
            traffic: Traffic::default(),
        })
    }

    /// One frame through filter, decoder and connection table.
    pub fn feed(&mut self, raw: &RawPacket<'_>) {
        self.counts.read += 1;
        self.counts.wire_bytes += u64::from(raw.wire_len);
        if let Some(input) = self.inputs.get_mut(raw.input) {
            input.packets += 1;
        }
        self.span = Some(match self.span {
            None => {
                self.sink.send(ToWriter::Open(raw.ts));
                (raw.ts, raw.ts)
            }
            Some((a, b)) => (a.min(raw.ts), b.max(raw.ts)),
        });
        let passed = self.bpf.as_mut().is_none_or(|b| b.matches(raw));
        let decoded = if passed {
            self.decoder.decode(raw)
        } else {
            Err(Skip::Filtered)
        };
        match decoded {
            Ok(pkt) => {
                self.counts.analyzed += 1;
                let to_server = self.table.process(&pkt, &mut self.sink);
                self.traffic.add(pkt.ts, pkt.ip_len, to_server);
            }
            Err(skip) => *self.skipped.entry(skip).or_default() += 1,
        }
    }

    /// Record damage in an input; its earlier packets were already used.
    pub fn damaged(&mut self, e: &SourceError) {
        if let Some(input) = self
            .inputs
            .iter_mut()
            .find(|i| e.path.as_os_str() == i.path.as_str())
        {
            input.damage = Some(e.kind.to_string());
        }
        self.warnings.push(e.to_string());
    }

    /// Hand every finished connection to the writer and make it visible on disk.
    pub fn flush(&mut self) {
        self.sink.flush();
        self.sink.send(ToWriter::Flush);
    }

    /// Move the clock to `now` without a packet (live capture when idle),
    /// so idle connections expire on time instead of waiting for traffic.
    pub fn advance(&mut self, now: Nanos) {
        if self.table.clock().is_some_and(|c| now > c) {
            self.table.advance(now, &mut self.sink);
        }
    }

    pub fn table(&self) -> &FlowTable {
        &self.table
    }

    pub fn packets_read(&self) -> u64 {
        self.counts.read
    }

    pub fn out(&self) -> &Path {
        &self.cfg.out
    }

    /// End of input: flush the table, finish every file, write summary.json.
    pub fn finish(mut self, live: Option<LiveStats>) -> Result<Outcome, AnalyzeError> {
        self.table.finish(&mut self.sink);
        self.sink.flush();
        let lost = self.sink.lost;
        drop(self.sink);
        let written = match self.writer.join() {
            Ok(w) if !lost => w,
            _ => return Err(AnalyzeError::WriterLost),
        };
        let (first, last) = self.span.unwrap_or((0, 0));
        let tally = written.finish(first, last)?;
        self.traffic.write(&self.cfg.out)?;
        let stats = self.table.stats();
        let mut counts = self.counts;
        counts.late = stats.late_packets;
        counts.incomplete_fragment_datagrams = self.decoder.pending_fragments() as u64;
        counts.malformed = self
            .skipped
            .iter()
            .filter(|(s, _)| s.is_malformed())
            .map(|(_, n)| n)
            .sum();
        counts.skipped = self
            .skipped
            .iter()
            .map(|(s, n)| (s.name().to_string(), *n))
            .collect();
        let damaged = self.inputs.iter().any(|i| i.damage.is_some());
        let span = self.span;
        let summary = Summary {
            tool: format!("sockscope {}", env!("CARGO_PKG_VERSION")),
            inputs_intact: !damaged,
            inputs: self.inputs,
            capture: CaptureSpan {
                first_packet: span.map(|_| text::iso8601(first)),
                last_packet: span.map(|_| text::iso8601(last)),
                first_ts: span.map(|_| first as f64 / 1e9),
                last_ts: span.map(|_| last as f64 / 1e9),
                duration_s: (last - first) as f64 / 1e9,
            },
            packets: counts,
            connections: tally.counts(),
            flow_table: TableSummary {
                max_flows: self.cfg.flow.max_flows as u64,
                peak_flows: stats.peak_flows,
                evicted: stats.evicted,
            },
            live,
            warnings: self.warnings,
        };
        let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
        output::write_file(&self.cfg.out, "summary.json", &json)?;
        Ok(Outcome { summary, damaged })
    }
}

/// Analyze capture files.
pub fn run(cfg: &AnalyzeConfig, progress: &dyn Progress) -> Result<Outcome, AnalyzeError> {
    let mut readers = Vec::with_capacity(cfg.inputs.len());
    let mut total_bytes = Some(0u64);
    for (i, path) in cfg.inputs.iter().enumerate() {
        let reader = CaptureReader::open(path, i)?;
        let size = std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        total_bytes = match (total_bytes, size, reader.compression()) {
            (Some(t), Some(s), Compression::None) => Some(t + s),
            _ => None,
        };
        readers.push((path.clone(), reader));
    }
    let inputs: Vec<InputSummary> = readers
        .iter()
        .map(|(path, r)| InputSummary {
            path: path.display().to_string(),
            format: r.format().to_string(),
            compression: match r.compression() {
                Compression::None => "none".into(),
                Compression::Gzip => "gzip".into(),
            },
            packets: 0,
            damage: None,
        })
        .collect();
    let mut session = Session::start(
        SessionConfig {
            out: cfg.out.clone(),
            force: cfg.force,
            decode: cfg.decode,
            flow: cfg.flow.clone(),
            filter: cfg.filter.clone(),
            mode: Mode::Atomic,
        },
        inputs,
    )?;
    progress.start(total_bytes);
    let mut merge = Merge::new(readers);
    loop {
        match merge.next_packet() {
            Ok(Some(raw)) => session.feed(&raw),
            Ok(None) => break,
            Err(e) => session.damaged(&e),
        }
        if session.packets_read() % 65_536 == 0 {
            progress.update(merge.bytes_read());
        }
    }
    progress.finish();
    session.finish(None)
}

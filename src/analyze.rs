//! The offline pipeline: capture files → decoder → flow table → writers.
//!
//! Two threads: this one reads, decodes and tracks connections; a writer
//! thread formats the records (conn.log, CSV, Parquet) as they leave the
//! table, in batches, so formatting overlaps with reading. The fan-in tables
//! and charts are built from connections.parquet afterwards.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::decode::{DecodeConfig, Decoder, Skip};
use crate::flow::{ConnRecord, FlowConfig, FlowTable, RecordSink};
use crate::report::output::{self, OutputError};
use crate::report::summary::{
    CaptureSpan, InputSummary, PacketCounts, RecordTally, Summary, TableSummary,
};
use crate::report::traffic::Traffic;
use crate::report::{RecordWriters, text};
use crate::source::filter::{Bpf, FilterError};
use crate::source::{CaptureReader, Compression, Merge, Nanos, OpenOrRead};

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
pub trait Progress: Sync {
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
}

/// Collects records into batches for the writer thread, reusing the
/// vectors it hands back.
struct Batcher<'a> {
    buf: Vec<ConnRecord>,
    tx: &'a SyncSender<ToWriter>,
    spare: &'a Receiver<Vec<ConnRecord>>,
    lost: bool,
}

impl Batcher<'_> {
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let full = std::mem::replace(&mut self.buf, next);
        self.lost |= self.tx.send(ToWriter::Records(full)).is_err();
    }
}

impl RecordSink for Batcher<'_> {
    fn record(&mut self, r: &ConnRecord) {
        self.buf.push(*r);
        if self.buf.len() >= BATCH {
            self.flush();
        }
    }
}

/// Counters the reading thread keeps while it works.
struct ReadState {
    counts: PacketCounts,
    skipped: BTreeMap<Skip, u64>,
    span: Option<(Nanos, Nanos)>,
    warnings: Vec<String>,
    inputs: Vec<InputSummary>,
    traffic: Traffic,
}

pub fn run(cfg: &AnalyzeConfig, progress: &dyn Progress) -> Result<Outcome, AnalyzeError> {
    let mut bpf = cfg.filter.as_deref().map(Bpf::new).transpose()?;
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

    output::prepare_dir(&cfg.out, cfg.force)?;
    let writers = RecordWriters::create(&cfg.out, cfg.flow.vlan_key)?;
    let mut table = FlowTable::new(cfg.flow.clone());
    let mut st = ReadState {
        counts: PacketCounts::default(),
        skipped: BTreeMap::new(),
        span: None,
        warnings: Vec::new(),
        inputs,
        traffic: Traffic::default(),
    };
    progress.start(total_bytes);

    let (tx, rx) = sync_channel::<ToWriter>(4);
    let (spare_tx, spare_rx) = sync_channel::<Vec<ConnRecord>>(4);
    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            let mut writers = writers;
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
                }
            }
            writers
        });
        let mut sink = Batcher {
            buf: Vec::with_capacity(BATCH),
            tx: &tx,
            spare: &spare_rx,
            lost: false,
        };
        read_all(
            Merge::new(readers),
            &mut Decoder::new(cfg.decode),
            &mut table,
            &mut bpf,
            &mut st,
            &mut sink,
            progress,
        );
        table.finish(&mut sink);
        sink.flush();
        let lost = sink.lost;
        drop(sink);
        drop(tx);
        match writer.join() {
            Ok(w) if !lost => Ok(w),
            _ => Err(AnalyzeError::WriterLost),
        }
    })?;
    progress.finish();

    let (first, last) = st.span.unwrap_or((0, 0));
    let tally: RecordTally = written.finish(first, last)?;
    st.traffic.write(&cfg.out)?;
    let stats = table.stats();
    let mut counts = st.counts;
    counts.late = stats.late_packets;
    counts.malformed = st
        .skipped
        .iter()
        .filter(|(s, _)| s.is_malformed())
        .map(|(_, n)| n)
        .sum();
    counts.skipped = st
        .skipped
        .iter()
        .map(|(s, n)| (s.name().to_string(), *n))
        .collect();
    let damaged = st.inputs.iter().any(|i| i.damage.is_some());
    let summary = Summary {
        tool: format!("sockscope {}", env!("CARGO_PKG_VERSION")),
        inputs_intact: !damaged,
        inputs: st.inputs,
        capture: CaptureSpan {
            first_packet: st.span.map(|_| text::iso8601(first)),
            last_packet: st.span.map(|_| text::iso8601(last)),
            first_ts: st.span.map(|_| first as f64 / 1e9),
            last_ts: st.span.map(|_| last as f64 / 1e9),
            duration_s: (last - first) as f64 / 1e9,
        },
        packets: counts,
        connections: tally.counts(),
        flow_table: TableSummary {
            max_flows: cfg.flow.max_flows as u64,
            peak_flows: stats.peak_flows,
            evicted: stats.evicted,
        },
        warnings: st.warnings,
    };
    let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    output::write_file(&cfg.out, "summary.json", &json)?;
    Ok(Outcome { summary, damaged })
}

/// The hot loop: every packet of every input through decoder and table.
fn read_all(
    mut merge: Merge,
    decoder: &mut Decoder,
    table: &mut FlowTable,
    bpf: &mut Option<Bpf>,
    st: &mut ReadState,
    sink: &mut Batcher<'_>,
    progress: &dyn Progress,
) {
    loop {
        let raw = match merge.next_packet() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(e) => {
                if let Some(input) = st
                    .inputs
                    .iter_mut()
                    .find(|i| e.path.as_os_str() == i.path.as_str())
                {
                    input.damage = Some(e.kind.to_string());
                }
                st.warnings.push(e.to_string());
                continue;
            }
        };
        st.counts.read += 1;
        st.counts.wire_bytes += u64::from(raw.wire_len);
        st.inputs[raw.input].packets += 1;
        st.span = Some(match st.span {
            None => {
                let _ = sink.tx.send(ToWriter::Open(raw.ts));
                (raw.ts, raw.ts)
            }
            Some((a, b)) => (a.min(raw.ts), b.max(raw.ts)),
        });
        let passed = bpf.as_mut().is_none_or(|b| b.matches(&raw));
        let decoded = if passed {
            decoder.decode(&raw)
        } else {
            Err(Skip::Filtered)
        };
        match decoded {
            Ok(pkt) => {
                st.counts.analyzed += 1;
                let to_server = table.process(&pkt, sink);
                st.traffic.add(pkt.ts, pkt.ip_len, to_server);
            }
            Err(skip) => *st.skipped.entry(skip).or_default() += 1,
        }
        if st.counts.read % 65_536 == 0 {
            progress.update(merge.bytes_read());
        }
    }
    st.counts.incomplete_fragment_datagrams = decoder.pending_fragments() as u64;
}

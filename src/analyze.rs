//! The offline pipeline: capture files → decoder → flow table → writers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::decode::{DecodeConfig, Decoder, Skip};
use crate::flow::{FlowConfig, FlowTable};
use crate::report::output::{self, OutputError};
use crate::report::summary::{CaptureSpan, InputSummary, PacketCounts, Summary, TableSummary};
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
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    /// Some input was damaged (truncated or corrupt); everything before the
    /// damage was analysed.
    pub damaged: bool,
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
    let mut inputs: Vec<InputSummary> = readers
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
    let mut writers = RecordWriters::create(&cfg.out, cfg.flow.vlan_key)?;
    let mut merge = Merge::new(readers);
    let mut decoder = Decoder::new(cfg.decode);
    let mut table = FlowTable::new(cfg.flow.clone());
    let mut counts = PacketCounts::default();
    let mut skipped: BTreeMap<Skip, u64> = BTreeMap::new();
    let mut span: Option<(Nanos, Nanos)> = None;
    let mut warnings = Vec::new();
    progress.start(total_bytes);

    loop {
        let raw = match merge.next_packet() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(e) => {
                let msg = e.to_string();
                if let Some(input) = inputs
                    .iter_mut()
                    .find(|i| e.path.as_os_str() == i.path.as_str())
                {
                    input.damage = Some(e.kind.to_string());
                }
                warnings.push(msg);
                continue;
            }
        };
        counts.read += 1;
        counts.wire_bytes += u64::from(raw.wire_len);
        inputs[raw.input].packets += 1;
        span = Some(match span {
            None => (raw.ts, raw.ts),
            Some((a, b)) => (a.min(raw.ts), b.max(raw.ts)),
        });
        if counts.read == 1 {
            writers.conn_log.header(raw.ts)?;
        }
        if let Some(bpf) = bpf.as_mut() {
            if !bpf.matches(&raw) {
                *skipped.entry(Skip::Filtered).or_default() += 1;
                continue;
            }
        }
        match decoder.decode(&raw) {
            Ok(pkt) => {
                counts.analyzed += 1;
                table.process(&pkt, &mut writers);
            }
            Err(skip) => *skipped.entry(skip).or_default() += 1,
        }
        if counts.read % 65_536 == 0 {
            progress.update(merge.bytes_read());
        }
    }
    table.finish(&mut writers);
    progress.finish();
    if let Some(e) = writers.error.take() {
        return Err(e.into());
    }

    let (first, last) = span.unwrap_or((0, 0));
    let stats = table.stats();
    counts.late = stats.late_packets;
    counts.incomplete_fragment_datagrams = decoder.pending_fragments() as u64;
    counts.malformed = skipped
        .iter()
        .filter(|(s, _)| s.is_malformed())
        .map(|(_, n)| n)
        .sum();
    counts.skipped = skipped
        .iter()
        .map(|(s, n)| (s.name().to_string(), *n))
        .collect();
    let damaged = inputs.iter().any(|i| i.damage.is_some());
    let summary = Summary {
        tool: format!("sockscope {}", env!("CARGO_PKG_VERSION")),
        inputs_intact: !damaged,
        inputs,
        capture: CaptureSpan {
            first_packet: span.map(|_| text::iso8601(first)),
            last_packet: span.map(|_| text::iso8601(last)),
            first_ts: span.map(|_| first as f64 / 1e9),
            last_ts: span.map(|_| last as f64 / 1e9),
            duration_s: (last - first) as f64 / 1e9,
        },
        packets: counts,
        connections: writers.tally.counts(),
        flow_table: TableSummary {
            max_flows: cfg.flow.max_flows as u64,
            peak_flows: stats.peak_flows,
            evicted: stats.evicted,
        },
        warnings,
    };
    let RecordWriters { conn_log, csv, .. } = writers;
    conn_log.finish(first, last)?;
    csv.finish()?;
    let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    output::write_file(&cfg.out, "summary.json", &json)?;
    Ok(Outcome { summary, damaged })
}

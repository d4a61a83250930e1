//! The pipeline from raw frames to written records, shared by offline
//! analysis (capture files) and live capture.
//!
//! Threads: the caller's thread reads, filters and decodes
//! ([`Session::feed`]); connections are tracked either on that thread too
//! (`threads` = 1, and always for live capture, whose view reads the table)
//! or by `threads - 1` shard threads, each owning the connections whose key
//! hashes to it. The records (conn.log, CSV, Parquet) are written in
//! batches as they leave the tables: by a writer thread when tracking is on
//! the caller's thread, otherwise by whichever thread would wait (see
//! `Writing`). The fan-in tables and charts are built afterwards
//! ([`crate::report::build`]).
//!
//! Shards give the same connections as one table: every shard's clock steps
//! through the timestamps of all packets, not only its own, so each timer
//! fires at the packet it would fire at in a single table. Only `--max-flows`
//! differs: each shard holds its share of the bound.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, channel, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::decode::{DecodeConfig, Decoder, Packet, Skip};
use crate::flow::{ConnRecord, FlowConfig, FlowTable, RecordSink, TableStats, shard_of};
use crate::report::build::Analysed;
use crate::report::output::{self, Mode, OutputError};
use crate::report::summary::{
    CaptureSpan, InputSummary, LiveStats, PacketCounts, Summary, TableSummary,
};
use crate::report::tables::Conns;
use crate::report::traffic::Traffic;
use crate::report::{PendingFiles, RecordOutput, RecordWriters, text};
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
    /// Threads on the packet path (1: read, decode and track on one).
    pub threads: usize,
    /// The fan-in tables will be built after the run.
    pub tables: bool,
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
    #[error("internal error: a worker thread stopped unexpectedly")]
    WriterLost,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    /// Some input was damaged (truncated or corrupt); everything before the
    /// damage was analysed.
    pub damaged: bool,
    /// What the fan-in tables need, if kept (offline runs): hand it to
    /// [`crate::report::build::run`].
    pub conns: Option<Conns>,
    /// Packets and bytes over time (also in traffic.parquet).
    pub traffic: Traffic,
    /// The record files, traffic.parquet and summary.json, still being
    /// written: wait for them (the reports do, if handed them); dropping
    /// waits too, but cannot report an error.
    pub files: PendingFiles,
}

impl Outcome {
    /// What the reports need, handed over in memory (the summary stays).
    pub fn analysed(&mut self) -> Analysed {
        Analysed {
            summary: self.summary.clone(),
            traffic: std::mem::take(&mut self.traffic),
            conns: self.conns.take(),
            files: std::mem::take(&mut self.files),
        }
    }
}

/// Records per message to the writers. Whatever is queued when the input
/// ends is written after the last packet, one batch at a time: with a
/// writer thread, 4096 took a median 26 ms on bench_1g, 1024 15 ms; 256
/// with the threads writing was slower (+0.01 s, faster in 11 of 31).
const BATCH: usize = 1024;

/// Batches queued for the writers before their producer waits for the
/// writer thread or, without one, writes them itself (unless another thread
/// is writing; past four times as many it waits for that one).
const WRITE_QUEUE: usize = 4;

enum ToWriter {
    /// The capture's first packet time, for conn.log's `#open`.
    Open(Nanos),
    Records(Vec<ConnRecord>),
    /// Make everything so far visible on disk (live capture).
    Flush,
}

impl ToWriter {
    fn deliver(&self, to: &mut impl RecordOutput) {
        match self {
            ToWriter::Open(ts) => to.open(*ts),
            ToWriter::Records(batch) => batch.iter().for_each(|r| to.record(r)),
            ToWriter::Flush => to.flush(),
        }
    }
}

/// The record writers and the batches queued for them. With shard threads
/// there is no writer thread: whichever thread would otherwise wait (the
/// reader on a full shard queue, a shard on an empty one) writes the next
/// batch, so two cores stay busy with two threads instead of three taking
/// turns. Batches are written in order: a batch is taken from the queue
/// only by the thread holding the writers. Lock order: writers, then queue.
struct Writing {
    queue: Mutex<Queue>,
    /// The queue grew, shrank or closed.
    changed: Condvar,
    writers: Mutex<RecordWriters>,
    /// A thread of its own writes (tracking on the caller's thread: live
    /// capture and `--threads 1`); producers wait for room instead of writing.
    dedicated: bool,
    /// A writer panicked: what is queued is dropped.
    lost: AtomicBool,
}

struct Queue {
    batches: VecDeque<ToWriter>,
    closed: bool,
}

impl Writing {
    fn new(writers: RecordWriters, dedicated: bool) -> Writing {
        Writing {
            queue: Mutex::new(Queue {
                batches: VecDeque::with_capacity(WRITE_QUEUE + 1),
                closed: false,
            }),
            changed: Condvar::new(),
            writers: Mutex::new(writers),
            dedicated,
            lost: AtomicBool::new(false),
        }
    }

    // Nothing panics while holding a lock (writes are caught), so a
    // poisoned one would still hold a consistent queue.
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, q: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed.wait(q).unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, msg: ToWriter) {
        let mut q = self.queue();
        q.batches.push_back(msg);
        self.changed.notify_all();
        if self.dedicated {
            while q.batches.len() > WRITE_QUEUE {
                q = self.wait(q);
            }
        } else {
            drop(q);
            // Over the length: write, unless another thread is writing
            // (waiting for it would idle this core); wait only past four
            // times the length, which bounds the queue.
            loop {
                let len = self.queue().batches.len();
                if len <= WRITE_QUEUE || !self.write_next(len > 4 * WRITE_QUEUE) {
                    break;
                }
            }
        }
    }

    /// Write the next queued batch: false if there was none, or if `wait`
    /// is false and another thread holds the writers.
    fn write_next(&self, wait: bool) -> bool {
        let writers = if wait {
            self.writers.lock().ok()
        } else {
            self.writers.try_lock().ok()
        };
        let Some(mut writers) = writers else {
            return false;
        };
        let Some(msg) = self.queue().batches.pop_front() else {
            return false;
        };
        self.changed.notify_all();
        if self.lost.load(Ordering::Relaxed) {
            // The rest is dropped; the run ends in an error.
            return true;
        }
        // Any thread may be writing, the caller's too: a bug in a writer
        // ends the run with an error, as it did on a writer thread of its
        // own, instead of unwinding through the reader.
        let wrote = panic::catch_unwind(AssertUnwindSafe(|| msg.deliver(&mut *writers)));
        if wrote.is_err() {
            self.lost.store(true, Ordering::Relaxed);
        }
        true
    }

    /// Batches are queued: whoever holds the writers will free them soon.
    fn pending(&self) -> bool {
        !self.queue().batches.is_empty()
    }

    /// The dedicated writer thread: write until the queue is closed and empty.
    fn serve(&self) {
        loop {
            {
                let mut q = self.queue();
                while q.batches.is_empty() && !q.closed {
                    q = self.wait(q);
                }
                if q.batches.is_empty() {
                    return;
                }
            }
            self.write_next(true);
        }
    }

    fn close(&self) {
        self.queue().closed = true;
        self.changed.notify_all();
    }

    /// The writers back with what is still queued for them, unless a write
    /// panicked.
    fn finish(self) -> Option<(RecordWriters, VecDeque<ToWriter>)> {
        let writers = self.writers.into_inner().ok()?;
        let rest = self
            .queue
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .batches;
        (!self.lost.into_inner()).then_some((writers, rest))
    }
}

/// Collects records into batches for the writers.
struct Batcher {
    buf: Vec<ConnRecord>,
    writing: Arc<Writing>,
}

impl Batcher {
    fn new(writing: Arc<Writing>) -> Batcher {
        Batcher {
            buf: Vec::with_capacity(BATCH),
            writing,
        }
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH));
            self.writing.push(ToWriter::Records(full));
        }
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

/// One connection table with the batches its records leave in and the
/// traffic it counts.
struct Tracker {
    table: FlowTable,
    sink: Batcher,
    traffic: Traffic,
}

/// What a tracker leaves when the input ends.
struct Tracked {
    stats: TableStats,
    traffic: Traffic,
}

impl Tracker {
    fn new(flow: FlowConfig, writing: Arc<Writing>) -> Tracker {
        Tracker {
            table: FlowTable::new(flow),
            sink: Batcher::new(writing),
            traffic: Traffic::default(),
        }
    }

    fn packet(&mut self, pkt: &Packet) {
        let to_server = self.table.process(pkt, &mut self.sink);
        self.traffic.add(pkt.ts, pkt.ip_len, to_server);
    }

    /// A shard's share of a batch: its own packets, and the clock stepped
    /// through everyone else's.
    fn batch(&mut self, b: &ShardBatch) {
        if b.times.is_empty() {
            // The only shard: its packets are all the packets.
            if let Some(first) = b.packets.first() {
                self.traffic.start(first.ts);
            }
            for pkt in &b.packets {
                self.packet(pkt);
            }
            return;
        }
        self.traffic.start(b.times[0]);
        let mut own = b.index.iter().zip(&b.packets).peekable();
        for (i, &ts) in b.times.iter().enumerate() {
            match own.peek() {
                Some((j, pkt)) if **j as usize == i => {
                    self.packet(pkt);
                    own.next();
                }
                _ => self.table.advance(ts, &mut self.sink),
            }
        }
    }

    fn finish(mut self) -> Tracked {
        self.table.finish(&mut self.sink);
        self.sink.flush();
        Tracked {
            stats: self.table.stats(),
            traffic: self.traffic,
        }
    }
}

/// Decoded packets per message to the shards: 850 KB of packets, few
/// enough hand-offs that bench_1g runs 0.04 s faster than with 2048 (15 of
/// 21 paired runs).
const SHARD_BATCH: usize = 8192;

/// Batches a shard's queue holds before the reader writes records or
/// waits. 8 against 4 on bench_1g, with a writer thread: faster in 70 of
/// 113 paired runs, by a median 0.01–0.03 s (12 and 16 gained as much; 64
/// added 24 MiB); with the reader writing, 4 was still slower (+0.02 s,
/// faster in 13 of 31).
const SHARD_QUEUE: usize = 8;

/// Times a reader facing a full shard queue yields, waiting for the writers
/// another thread holds, before it waits in 50 µs sleeps.
const WRITE_SPINS: u32 = 100;

/// A batch for one shard: its packets and, when there are several shards,
/// the times of all packets in the batch and each own packet's index
/// among them (a single shard's own times are all the times).
struct ShardBatch {
    packets: Vec<Packet>,
    index: Vec<u32>,
    times: Vec<Nanos>,
}

impl ShardBatch {
    fn new(shards: usize) -> ShardBatch {
        let clock = clock_capacity(shards);
        ShardBatch {
            packets: Vec::with_capacity(SHARD_BATCH),
            index: Vec::with_capacity(clock),
            times: Vec::with_capacity(clock),
        }
    }

    fn clear(&mut self) {
        self.packets.clear();
        self.index.clear();
        self.times.clear();
    }
}

/// Room for a batch's times and indices: none for a single shard.
fn clock_capacity(shards: usize) -> usize {
    if shards > 1 { SHARD_BATCH } else { 0 }
}

/// Shard threads and the batch being filled for them.
struct Shards {
    vlan_key: bool,
    writing: Arc<Writing>,
    txs: Vec<SyncSender<ShardBatch>>,
    /// Batches the shards are done with, to be filled again: a fresh
    /// 850 KB batch every 8,192 packets cost the reader a page fault per
    /// 4 KiB (about 4 µs each in this VM).
    spares: Receiver<ShardBatch>,
    threads: Vec<JoinHandle<Tracked>>,
    /// The times of every packet in the batches being filled (several shards).
    times: Vec<Nanos>,
    pending: Vec<ShardBatch>,
}

impl Shards {
    fn start(n: usize, flow: &FlowConfig, writing: &Arc<Writing>) -> Shards {
        // No more threads than flows: each holds at least one.
        let n = n.min(flow.max_flows).max(1);
        let (mut txs, mut threads) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (back, spares) = channel();
        for i in 0..n {
            let (tx, rx) = sync_channel::<ShardBatch>(SHARD_QUEUE);
            // Shares that add up to the bound.
            let mut share = flow.clone();
            share.max_flows = flow.max_flows / n + usize::from(i < flow.max_flows % n);
            let mut tracker = Tracker::new(share, writing.clone());
            let writing = writing.clone();
            let back = back.clone();
            threads.push(std::thread::spawn(move || {
                loop {
                    let mut batch = match rx.try_recv() {
                        Ok(batch) => batch,
                        // Nothing to track: write while the reader catches up.
                        Err(TryRecvError::Empty) if writing.write_next(false) => continue,
                        Err(TryRecvError::Empty) => match rx.recv() {
                            Ok(batch) => batch,
                            Err(_) => break,
                        },
                        Err(TryRecvError::Disconnected) => break,
                    };
                    tracker.batch(&batch);
                    batch.clear();
                    // The reader is gone only once the input ended.
                    let _ = back.send(batch);
                }
                tracker.finish()
            }));
            txs.push(tx);
        }
        Shards {
            vlan_key: flow.vlan_key,
            writing: writing.clone(),
            txs,
            spares,
            threads,
            times: Vec::with_capacity(clock_capacity(n)),
            pending: (0..n).map(|_| ShardBatch::new(n)).collect(),
        }
    }

    /// Add the packet `decode` writes, unless it fails. A single shard's
    /// packets are decoded straight into its batch (see
    /// [`crate::decode::Decoder::decode_into`]); with several, the packet
    /// picks its shard once decoded.
    fn push_with(
        &mut self,
        decode: impl FnOnce(&mut Packet) -> Result<(), Skip>,
    ) -> Result<(), Skip> {
        match self.txs.len() {
            1 => {
                let packets = &mut self.pending[0].packets;
                let at = packets.len();
                packets.push(Packet::default());
                if let Err(skip) = decode(&mut packets[at]) {
                    packets.truncate(at);
                    return Err(skip);
                }
            }
            n => {
                let mut pkt = Packet::default();
                decode(&mut pkt)?;
                let batch = &mut self.pending[shard_of(&pkt, self.vlan_key, n)];
                batch.index.push(self.times.len() as u32);
                batch.packets.push(pkt);
                self.times.push(pkt.ts);
            }
        }
        if self.len() >= SHARD_BATCH {
            self.send();
        }
        Ok(())
    }

    /// Packets in the batch being filled (a single shard keeps no clock).
    fn len(&self) -> usize {
        match self.txs.len() {
            1 => self.pending[0].packets.len(),
            _ => self.times.len(),
        }
    }

    fn send(&mut self) {
        if self.len() == 0 {
            return;
        }
        let n = self.txs.len();
        for (tx, pending) in self.txs.iter().zip(&mut self.pending) {
            let spare = self
                .spares
                .try_recv()
                .unwrap_or_else(|_| ShardBatch::new(n));
            let mut batch = std::mem::replace(pending, spare);
            if n > 1 {
                batch.times.extend_from_slice(&self.times);
            }
            // A shard that is gone shows up as lost when it is joined.
            let mut waits = 0;
            loop {
                match tx.try_send(batch) {
                    // The shard is behind: write instead of waiting for it.
                    Err(TrySendError::Full(b)) if self.writing.write_next(false) => {
                        waits = 0;
                        batch = b;
                    }
                    // The shard is writing and more is queued: take the
                    // next batch the moment it is done rather than sleep
                    // until the shard takes packets (bench_1g: the reader
                    // was idle 15% of the time, the shard never; -0.05 s of
                    // wall time, faster in 23 of 31 pairs). A write takes
                    // about a millisecond; one held up by the disk is
                    // waited for in short sleeps, not by spinning.
                    Err(TrySendError::Full(b)) if self.writing.pending() => {
                        waits += 1;
                        if waits <= WRITE_SPINS {
                            std::thread::yield_now();
                        } else {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        batch = b;
                    }
                    Err(TrySendError::Full(b)) => {
                        let _ = tx.send(b);
                        break;
                    }
                    Ok(()) | Err(TrySendError::Disconnected(_)) => break,
                }
            }
        }
        self.times.clear();
    }

    /// Send what is left, stop the shards and combine what they tracked.
    fn finish(mut self) -> Option<Tracked> {
        self.send();
        drop(self.txs);
        // Write while the shards finish their queues.
        while self.threads.iter().any(|t| !t.is_finished()) {
            if !self.writing.write_next(false) {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        let mut all = Tracked {
            stats: TableStats::default(),
            traffic: Traffic::default(),
        };
        for thread in self.threads {
            let t = thread.join().ok()?;
            let (a, b) = (&mut all.stats, t.stats);
            a.packets += b.packets;
            a.connections += b.connections;
            a.evicted += b.evicted;
            a.late_packets += b.late_packets;
            // The shards' peaks may fall at different times: an upper bound.
            a.peak_flows += b.peak_flows;
            all.traffic.merge(t.traffic);
        }
        Some(all)
    }
}

/// Where decoded packets go.
enum Flows {
    Inline(Box<Tracker>),
    Sharded(Shards),
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
    /// Threads on the packet path: 1 tracks on the caller's thread, more
    /// start `threads - 1` shard threads.
    pub threads: usize,
    /// The fan-in tables will be built after the run (keep their columns).
    pub tables: bool,
}

/// One run of the engine: frames in, records written.
pub struct Session {
    cfg: SessionConfig,
    decoder: Decoder,
    flows: Flows,
    bpf: Option<Bpf>,
    /// The writers (the caller sends conn.log's header and live flushes).
    writing: Arc<Writing>,
    /// The writer thread, when there are no shard threads to write.
    writer: Option<JoinHandle<()>>,
    counts: PacketCounts,
    skipped: BTreeMap<Skip, u64>,
    span: Option<(Nanos, Nanos)>,
    warnings: Vec<String>,
    inputs: Vec<InputSummary>,
}

impl Session {
    pub fn start(cfg: SessionConfig, inputs: Vec<InputSummary>) -> Result<Session, AnalyzeError> {
        let bpf = cfg.filter.as_deref().map(Bpf::new).transpose()?;
        let ours = output::prepare_dir(&cfg.out, cfg.force)?;
        if ours && !cfg.tables {
            output::remove_outputs(&cfg.out, output::TABLE_OUTPUTS)?;
            output::remove_outputs(&cfg.out, output::CHART_OUTPUTS)?;
        }
        // Offline runs keep the table columns for the reports; a live
        // capture may run for days, so its reports read them back instead.
        let keep = cfg.tables && cfg.mode == Mode::Atomic;
        let writers = RecordWriters::create(&cfg.out, cfg.flow.vlan_key, cfg.mode, keep)?;
        let sharded = cfg.threads > 1;
        let writing = Arc::new(Writing::new(writers, !sharded));
        let (flows, writer) = if sharded {
            let shards = Shards::start(cfg.threads - 1, &cfg.flow, &writing);
            (Flows::Sharded(shards), None)
        } else {
            let tracker = Tracker::new(cfg.flow.clone(), writing.clone());
            let serving = writing.clone();
            let writer = std::thread::spawn(move || serving.serve());
            (Flows::Inline(Box::new(tracker)), Some(writer))
        };
        Ok(Session {
            decoder: Decoder::new(cfg.decode),
            flows,
            cfg,
            bpf,
            writing,
            writer,
            counts: PacketCounts::default(),
            skipped: BTreeMap::new(),
            span: None,
            warnings: Vec::new(),
            inputs,
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
                self.writing.push(ToWriter::Open(raw.ts));
                (raw.ts, raw.ts)
            }
            Some((a, b)) => (a.min(raw.ts), b.max(raw.ts)),
        });
        let passed = self.bpf.as_mut().is_none_or(|b| b.matches(raw));
        let decoder = &mut self.decoder;
        let decoded = if !passed {
            Err(Skip::Filtered)
        } else {
            match &mut self.flows {
                Flows::Inline(t) => {
                    let mut pkt = Packet::default();
                    let decoded = decoder.decode_into(raw, &mut pkt);
                    if decoded.is_ok() {
                        t.packet(&pkt);
                    }
                    decoded
                }
                Flows::Sharded(s) => s.push_with(|slot| decoder.decode_into(raw, slot)),
            }
        };
        match decoded {
            Ok(()) => self.counts.analyzed += 1,
            Err(skip) => *self.skipped.entry(skip).or_default() += 1,
        }
    }

    /// Record damage in an input; its earlier packets were already used.
    pub fn damaged(&mut self, e: &SourceError) {
        if let Some(input) = self.inputs.get_mut(e.input) {
            input.damage = Some(e.kind.to_string());
        }
        self.warnings.push(e.to_string());
    }

    /// Hand every finished connection to the writer and make it visible on
    /// disk (live capture, which tracks on the caller's thread).
    pub fn flush(&mut self) {
        if let Flows::Inline(t) = &mut self.flows {
            t.sink.flush();
        }
        self.writing.push(ToWriter::Flush);
    }

    /// Move the clock to `now` without a packet (live capture when idle),
    /// so idle connections expire on time instead of waiting for traffic.
    pub fn advance(&mut self, now: Nanos) {
        if let Flows::Inline(t) = &mut self.flows {
            if t.table.clock().is_some_and(|c| now > c) {
                t.table.advance(now, &mut t.sink);
            }
        }
    }

    /// The connection table, when it lives on the caller's thread.
    pub fn table(&self) -> Option<&FlowTable> {
        match &self.flows {
            Flows::Inline(t) => Some(&t.table),
            Flows::Sharded(_) => None,
        }
    }

    pub fn packets_read(&self) -> u64 {
        self.counts.read
    }

    pub fn out(&self) -> &Path {
        &self.cfg.out
    }

    /// End of input: flush the table and sum up the run; the record files,
    /// traffic.parquet and summary.json are left being written in
    /// [`Outcome::files`].
    pub fn finish(self, live: Option<LiveStats>) -> Result<Outcome, AnalyzeError> {
        let tracked = match self.flows {
            Flows::Inline(t) => Some(t.finish()),
            Flows::Sharded(s) => s.finish(),
        };
        self.writing.close();
        let joined = self.writer.is_none_or(|w| w.join().is_ok());
        let written = Arc::into_inner(self.writing).and_then(Writing::finish);
        let (tracked, writers, rest) = match (tracked, written) {
            (Some(t), Some((w, rest))) if joined => (t, w, rest),
            _ => return Err(AnalyzeError::WriterLost),
        };
        let (first, last) = self.span.unwrap_or((0, 0));
        let (mut files, mut rows) = writers.into_parts();
        rest.iter().for_each(|msg| msg.deliver(&mut rows));
        let (tally, conns) = rows.finish();
        let stats = tracked.stats;
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
                first_ns: span.map(|_| first),
                last_ns: span.map(|_| last),
                duration_s: last.saturating_sub(first) as f64 / 1e9,
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
        // The tables need only the rows: the record files, traffic.parquet
        // and, once they are complete, summary.json are written on a
        // thread of their own meanwhile.
        let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
        let out = self.cfg.out.clone();
        let traffic = tracked.traffic.clone();
        let files = PendingFiles::start(&self.cfg.out, move || {
            rest.iter().for_each(|msg| msg.deliver(&mut files));
            let records = files.finish(first, last);
            let traffic = traffic.write(&out);
            records.and(traffic)?;
            output::write_file(&out, "summary.json", &json).map(drop)
        });
        Ok(Outcome {
            summary,
            damaged,
            conns,
            traffic: tracked.traffic,
            files,
        })
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
            threads: cfg.threads,
            tables: cfg.tables,
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

//! Per-packet cost of the engine's stages, in ns/packet:
//! - `read`: pcap records out of an in-memory file;
//! - `decode`: frames into packet summaries;
//! - `flow_table`: summaries into the connection table (records discarded);
//! - `read_decode_track`: the three together, as `analyze` runs them;
//! - `records` (ns/connection): finished connections into conn.log,
//!   connections.csv, connections.parquet and the columns kept for the
//!   tables, as the writer thread does.
//!
//! The capture is `$SOCKSCOPE_BENCH_PCAP`, or a 50 MB one generated with
//! `scripts/gen_bench.py` (seed 1) into the target directory on first use.

use std::hint::black_box;
use std::io::Cursor;
use std::path::PathBuf;

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sockscope::decode::{DecodeConfig, Decoder, Packet};
use sockscope::flow::{ConnRecord, FlowConfig, FlowTable, RecordSink};
use sockscope::report::RecordWriters;
use sockscope::report::output::Mode;
use sockscope::source::{CaptureReader, Input, RawPacket};

/// The capture's bytes, leaked so readers can borrow them for `'static`.
fn capture() -> &'static [u8] {
    let path = match std::env::var_os("SOCKSCOPE_BENCH_PCAP") {
        Some(p) => PathBuf::from(p),
        None => {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
            let path = dir.join("bench-50m.pcap");
            if !path.exists() {
                common::gen_bench(&path, "50", "1");
            }
            path
        }
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Box::leak(bytes.into_boxed_slice())
}

fn reader(bytes: &'static [u8]) -> CaptureReader {
    let input = Input::from_reader(Box::new(Cursor::new(bytes))).unwrap();
    CaptureReader::from_input(input, 0).unwrap()
}

/// The records of a classic pcap file, borrowing the frames in place.
fn records(bytes: &'static [u8]) -> Vec<RawPacket<'static>> {
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(
        le32(0),
        0xa1b2_c3d4,
        "the benchmark reads little-endian µs pcap"
    );
    let linktype = le32(20);
    let (mut at, mut out) = (24, Vec::new());
    while at + 16 <= bytes.len() {
        let caplen = le32(at + 8) as usize;
        out.push(RawPacket {
            ts: i64::from(le32(at)) * 1_000_000_000 + i64::from(le32(at + 4)) * 1000,
            linktype,
            wire_len: le32(at + 12),
            data: &bytes[at + 16..at + 16 + caplen],
            number: out.len() as u64 + 1,
            input: 0,
        });
        at += 16 + caplen;
    }
    out
}

fn decode_all(bytes: &'static [u8]) -> Vec<Packet> {
    let mut r = reader(bytes);
    let mut d = Decoder::new(DecodeConfig::default());
    let mut out = Vec::new();
    while r.advance().unwrap() {
        if let Ok(p) = d.decode(&r.current().unwrap()) {
            out.push(p);
        }
    }
    out
}

fn track(packets: &[Packet]) -> u64 {
    let mut table = FlowTable::new(FlowConfig::default());
    let mut n = 0u64;
    let mut sink = |r: &ConnRecord| n += black_box(r).orig_pkts;
    for p in packets {
        table.process(p, &mut sink);
    }
    table.finish(&mut sink);
    n
}

fn engine(c: &mut Criterion) {
    let bytes = capture();
    let packets = decode_all(bytes);
    let frames = {
        let mut r = reader(bytes);
        let mut n = 0u64;
        while r.advance().unwrap() {
            n += 1;
        }
        n
    };
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Elements(frames));
    g.bench_function("read", |b| {
        b.iter(|| {
            let mut r = reader(bytes);
            let mut n = 0usize;
            while r.advance().unwrap() {
                n += r.current().unwrap().data.len();
            }
            n
        })
    });
    g.bench_function("decode", |b| {
        // Frames stay where they are in the file's bytes, as in the reader's
        // buffer, so header reads hit memory the way they do in a run.
        let raws = records(bytes);
        b.iter(|| {
            let mut d = Decoder::new(DecodeConfig::default());
            // Into one place, as the reader decodes into its batch.
            let mut pkt = Packet::default();
            let mut ok = 0usize;
            for raw in &raws {
                ok += usize::from(d.decode_into(raw, &mut pkt).is_ok());
                black_box(&pkt);
            }
            ok
        })
    });
    g.bench_function("decode_hot", |b| {
        let raws = records(bytes);
        let hot = &raws[..2000];
        b.iter(|| {
            let mut d = Decoder::new(DecodeConfig::default());
            let mut pkt = Packet::default();
            let mut ok = 0usize;
            for _ in 0..frames / 2000 {
                for raw in hot {
                    ok += usize::from(d.decode_into(raw, &mut pkt).is_ok());
                    black_box(&pkt);
                }
            }
            ok
        })
    });
    g.throughput(Throughput::Elements(packets.len() as u64));
    g.bench_function("flow_table", |b| b.iter(|| track(&packets)));
    g.throughput(Throughput::Elements(frames));
    g.bench_function("read_decode_track", |b| {
        b.iter(|| {
            let mut r = reader(bytes);
            let mut d = Decoder::new(DecodeConfig::default());
            let mut table = FlowTable::new(FlowConfig::default());
            let mut n = 0u64;
            let mut sink = |r: &ConnRecord| n += black_box(r).orig_pkts;
            let mut p = Packet::default();
            while r.advance().unwrap() {
                if d.decode_into(&r.current().unwrap(), &mut p).is_ok() {
                    table.process(&p, &mut sink);
                }
            }
            table.finish(&mut sink);
            n
        })
    });
    g.finish();
}

fn writers(c: &mut Criterion) {
    let packets = decode_all(capture());
    let mut table = FlowTable::new(FlowConfig::default());
    let mut recs = Vec::new();
    let mut sink = |r: &ConnRecord| recs.push(*r);
    for p in &packets {
        table.process(p, &mut sink);
    }
    table.finish(&mut sink);
    let (first, last) = (packets[0].ts, packets[packets.len() - 1].ts);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-records");
    std::fs::create_dir_all(&dir).unwrap();
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.bench_function("records", |b| {
        b.iter(|| {
            let mut w = RecordWriters::create(&dir, false, Mode::Atomic, true).unwrap();
            for r in &recs {
                w.record(r);
            }
            let (files, rows) = w.into_parts();
            files.finish(first, last).unwrap();
            rows.finish().0.counts().total
        })
    });
    g.finish();
}

criterion_group!(benches, engine, writers);
criterion_main!(benches);

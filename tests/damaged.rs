//! Damaged captures, case by case: each keeps every connection read before
//! the damage, warns once naming the file and packet number, and exits 3
//! ("input damaged"); oddities that are not damage (unknown pcapng blocks,
//! zero-length packets, caplen above the snaplen, time going backwards) are
//! read through. The sweep over every trace and many damaged variants is in
//! `damage_sweep.rs`.

mod common;

use std::path::Path;

use common::{read_zeek_log, scratch, sockscope};
use etherparse::PacketBuilder;

const T0: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;

/// One TCP segment of the connection 10.0.0.1:40000 <-> 10.0.0.2:80.
fn segment(up: bool, syn: bool, ack: bool, fin: bool, seq: u32, ack_no: u32) -> Vec<u8> {
    let (src, dst, sp, dp) = if up {
        ([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80)
    } else {
        ([10, 0, 0, 2], [10, 0, 0, 1], 80, 40000)
    };
    let mut b = PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 65535);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(ack_no);
    }
    if fin {
        b = b.fin();
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

/// A full TCP session (handshake, FINs), 7 packets 10 ms apart from `t0`.
fn session(t0: i64) -> Vec<(i64, Vec<u8>)> {
    [
        segment(true, true, false, false, 100, 0),
        segment(false, true, true, false, 500, 101),
        segment(true, false, true, false, 101, 501),
        segment(true, false, true, true, 101, 501),
        segment(false, false, true, true, 501, 102),
        segment(true, false, true, false, 102, 502),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, f)| (t0 + i as i64 * 10 * MS, f))
    .collect()
}

/// A pcap (ns, little-endian, Ethernet) of `frames`.
fn pcap(snaplen: u32, frames: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    f.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&snaplen.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    for (ts, data) in frames {
        f.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(data);
    }
    f
}

/// A pcapng block: type, body padded to 4 bytes, lengths around it.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let len = (body.len() + 12) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn pcapng_head() -> Vec<u8> {
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut f = block(0x0a0d_0d0a, &shb);
    // Interface: Ethernet, nanosecond timestamps (if_tsresol = 9).
    let mut idb = vec![1, 0, 0, 0, 0, 0, 0, 0];
    idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    f.extend(block(1, &idb));
    f
}

fn epb(ts: i64, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&((ts as u64 >> 32) as u32).to_le_bytes());
    b.extend_from_slice(&(ts as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    block(6, &b)
}

struct Run {
    code: i32,
    stderr: String,
    out: std::path::PathBuf,
}

fn analyze(name: &str, file: &str, bytes: &[u8]) -> Run {
    let dir = scratch(name);
    let input = dir.join(file);
    std::fs::write(&input, bytes).unwrap();
    let out = dir.join("out");
    // With a deadline: a hang must fail the test, not stall the suite.
    // stderr goes to a file: a pipe nobody reads while waiting would block
    // a chatty run and look like a hang.
    let err_path = dir.join("stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sockscope"))
        .args(["analyze", "--quiet", "--no-charts", "--out"])
        .arg(&out)
        .arg(&input)
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("{file}: still running after a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    Run {
        code: status.code().unwrap_or(-1),
        stderr,
        out,
    }
}

/// Exit status 3 ("input damaged") with `warning` on stderr.
fn assert_damaged(r: &Run, warning: &str) {
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(warning), "want {warning:?}: {}", r.stderr);
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap()
}

fn states(out: &Path) -> Vec<String> {
    read_zeek_log(&out.join("conn.log"))
        .rows
        .iter()
        .map(|r| r["conn_state"].clone())
        .collect()
}

/// Two sessions, client ports 40000 and 40001, one after the other: the
/// damage goes into the second.
fn two_sessions() -> Vec<(i64, Vec<u8>)> {
    let mut frames = session(T0);
    for (ts, mut f) in session(T0 + 1_000 * MS) {
        // Second session from client port 40001 (bytes 34..36 of the frame
        // are the TCP source port client->server, 36..38 server->client).
        let at = if f[34..36] == 40000u16.to_be_bytes() {
            34
        } else {
            36
        };
        f[at..at + 2].copy_from_slice(&40001u16.to_be_bytes());
        // The TCP checksum is not verified unless asked, so it may stay.
        frames.push((ts, f));
    }
    frames
}

#[test]
fn truncated_in_a_record_header() {
    let whole = pcap(65535, &two_sessions());
    let first = pcap(65535, &session(T0)).len();
    let r = analyze("dmg-record-header", "cut.pcap", &whole[..first + 9]);
    assert_damaged(
        &r,
        "cut.pcap: truncated at packet 7: record header needs 16 bytes, only 9 left",
    );
    assert_eq!(states(&r.out), ["SF"]);
    assert_eq!(summary(&r.out)["inputs_intact"], false);
}

#[test]
fn truncated_in_packet_data() {
    let whole = pcap(65535, &two_sessions());
    let first = pcap(65535, &session(T0)).len();
    let r = analyze("dmg-packet-data", "cut.pcap", &whole[..first + 16 + 20]);
    assert_damaged(&r, "cut.pcap: truncated at packet 7: packet data needs");
    assert_eq!(states(&r.out), ["SF"]);
}

#[test]
fn truncated_in_the_file_header_is_an_error() {
    let whole = pcap(65535, &session(T0));
    let r = analyze("dmg-file-header", "cut.pcap", &whole[..20]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cut.pcap: capture file header is truncated (20 of 24 bytes)"),
        "{}",
        r.stderr
    );
}

#[test]
fn caplen_above_the_snaplen_is_read_but_above_256_kib_is_corrupt() {
    // A snaplen of 64 with full-size frames: some writers do this; read on.
    let r = analyze("dmg-caplen-snaplen", "big.pcap", &pcap(40, &session(T0)));
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(states(&r.out), ["SF"]);

    let mut f = pcap(65535, &two_sessions());
    let seventh = pcap(65535, &session(T0)).len();
    f[seventh + 8..seventh + 12].copy_from_slice(&(300_000u32).to_le_bytes());
    let r = analyze("dmg-caplen-huge", "huge.pcap", &f);
    assert_damaged(
        &r,
        "huge.pcap: corrupt at packet 7: captured length 300000 exceeds the 256 KiB maximum",
    );
    assert_eq!(states(&r.out), ["SF"]);
}

#[test]
fn zero_length_packets_are_counted_and_skipped() {
    let mut frames = session(T0);
    frames.insert(3, (T0 + 25 * MS, Vec::new()));
    let r = analyze("dmg-zero-length", "zero.pcap", &pcap(65535, &frames));
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(states(&r.out), ["SF"]);
    let s = summary(&r.out);
    assert_eq!(s["packets"]["read"], 7);
    assert_eq!(s["packets"]["skipped"]["truncated_link_header"], 1);
}

#[test]
fn a_packet_from_the_past_neither_expires_flows_nor_bends_durations() {
    // In the middle of a session, one packet of another connection stamped
    // an hour earlier: it is counted late and handled at the current time.
    let mut frames = session(T0);
    let mut stray = segment(true, true, false, false, 7, 0);
    stray[34..36].copy_from_slice(&50000u16.to_be_bytes());
    frames.insert(3, (T0 - 3_600_000 * MS, stray));
    let r = analyze("dmg-time-backwards", "past.pcap", &pcap(65535, &frames));
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let log = read_zeek_log(&r.out.join("conn.log"));
    assert_eq!(log.rows.len(), 2);
    for row in &log.rows {
        let d = &row["duration"];
        assert!(d == "-" || !d.starts_with('-'), "{d}");
    }
    let main = log.rows.iter().find(|r| r["id.orig_p"] == "40000").unwrap();
    assert_eq!(main["conn_state"], "SF");
    assert_eq!(main["history"], "ShAFf");
    assert_eq!(summary(&r.out)["packets"]["late"], 1);
}

#[test]
fn pcapng_unknown_blocks_are_skipped() {
    let mut f = pcapng_head();
    for (i, (ts, data)) in session(T0).iter().enumerate() {
        if i == 2 {
            f.extend(block(0x0000_0bad, b"vendor data"));
        }
        f.extend(epb(*ts, data));
    }
    let r = analyze("dmg-pcapng-unknown", "odd.pcapng", &f);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(states(&r.out), ["SF"]);
}

#[test]
fn pcapng_oversized_and_misaligned_blocks_are_damage() {
    let good: Vec<u8> = pcapng_head()
        .into_iter()
        .chain(session(T0).iter().flat_map(|(ts, d)| epb(*ts, d)))
        .collect();
    for (name, length, want) in [
        (
            "oversized",
            64u32 << 20,
            "corrupt at packet 7: block of type 0x6 is 67108864 bytes, over the 16 MiB limit",
        ),
        (
            "misaligned",
            30,
            "corrupt at packet 7: block of type 0x6 has invalid length 30",
        ),
        (
            "past-the-end",
            4000,
            "truncated at packet 7: block needs 4000 bytes",
        ),
    ] {
        let mut f = good.clone();
        f.extend_from_slice(&6u32.to_le_bytes());
        f.extend_from_slice(&length.to_le_bytes());
        f.extend_from_slice(&[0u8; 40]);
        let r = analyze(&format!("dmg-pcapng-{name}"), "bad.pcapng", &f);
        assert_damaged(&r, want);
        assert_eq!(states(&r.out), ["SF"], "{name}");
    }
}

#[test]
fn a_gzip_stream_cut_short() {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&pcap(65535, &two_sessions())).unwrap();
    let gz = enc.finish().unwrap();
    let r = analyze("dmg-gzip-cut", "cut.pcap.gz", &gz[..gz.len() * 3 / 4]);
    assert_damaged(&r, "cut.pcap.gz: ");
    assert!(
        !states(&r.out).is_empty(),
        "connections before the cut are kept"
    );
}

/// Captures the fuzzer found crashing or hanging (fuzz/README.md): an IPv6
/// chain that made etherparse read out of bounds, an IPv4 first fragment of
/// total length 0, pcapng timestamps at the ends of the 64-bit nanosecond
/// range, where timer arithmetic overflowed, and a packet at exactly the
/// largest time, where a re-armed timer was due again forever.
#[test]
fn fuzz_found_captures_run_to_a_result() {
    for name in [
        "ipv6-route-then-hbh.pcap",
        "ipv4-frag-len0.pcap",
        "ts-near-max.pcapng",
        "ts-min-then-now.pcapng",
        "ts-at-max-loop.pcapng",
    ] {
        let bytes = std::fs::read(common::data(&format!("fuzz/{name}"))).unwrap();
        let r = analyze(&format!("fuzz-{name}"), name, &bytes);
        assert!(matches!(r.code, 0 | 3), "{name}: {} {}", r.code, r.stderr);
        // The charts too, whose time axes meet the same extremes.
        let o = sockscope(&["report", r.out.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(r.out.join("report.html").exists(), "{name}");
    }
}

/// Damage is recorded on the input it happened in, by position: the same
/// file named twice is damaged twice (matched by its path text, both
/// warnings landed on the first).
#[test]
fn damage_is_recorded_on_each_input_that_has_it() {
    let whole = pcap(65535, &two_sessions());
    let first = pcap(65535, &session(T0)).len();
    let dir = scratch("dmg-twice");
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..first + 9]).unwrap();
    let out = dir.join("out");
    let o = sockscope(&[
        "analyze",
        "--quiet",
        "--no-charts",
        "--out",
        out.to_str().unwrap(),
        cut.to_str().unwrap(),
        cut.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let s = summary(&out);
    let inputs = s["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    for input in inputs {
        let damage = input["damage"].as_str().unwrap_or_default();
        assert!(damage.starts_with("truncated at packet 7"), "{input}");
    }
}

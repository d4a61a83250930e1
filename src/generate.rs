//! Synthetic captures with known contents: attack traffic for robustness
//! checks (a SYN flood from spoofed sources, a flood of one-packet UDP flows,
//! a port scan) and a large fan-in to one server.
//!
//! Rules of this module:
//! - output is deterministic for a seed (a SplitMix64 generator), so a
//!   capture can be re-made byte for byte;
//! - packets are written as they are made, in time order, so memory does not
//!   grow with the packet count (the fan-in keeps only open connections);
//! - frames are Ethernet/IPv4 with correct IP, TCP and UDP checksums.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::decode::checksum;
use crate::source::Nanos;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// SYNs to one server port, each from a new spoofed address and port.
    SynFlood,
    /// One-packet UDP flows, each from a new spoofed address and port.
    UdpFlood,
    /// One scanner sends a SYN to every port of one target; closed ports
    /// answer RST, open ones SYN-ACK (and the scanner resets).
    PortScan,
    /// Many clients open full TCP connections to one server port, in bursts.
    FanIn,
}

#[derive(Clone, Debug)]
pub struct GenerateConfig {
    pub scenario: Scenario,
    pub out: PathBuf,
    /// Packets to write (floods), or ports to scan (port scan).
    pub packets: u64,
    /// Fan-in: connections and distinct client addresses.
    pub connections: u64,
    pub clients: u32,
    /// Packets (floods, scan) or new connections (fan-in) per second.
    pub rate: f64,
    pub seed: u64,
    /// Time of the first packet.
    pub start: Nanos,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            scenario: Scenario::FanIn,
            out: PathBuf::from("generated.pcap"),
            packets: 100_000,
            connections: 1000,
            clients: 300,
            rate: 100_000.0,
            seed: 1,
            start: 1_700_000_000 * SEC,
        }
    }
}

/// What was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generated {
    pub packets: u64,
    pub bytes: u64,
    /// Connections (TCP) or flows (UDP) started.
    pub flows: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct GenerateError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

const SEC: Nanos = 1_000_000_000;
const SERVER: [u8; 4] = [10, 0, 0, 1];
const SCANNER: [u8; 4] = [203, 0, 113, 7];
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Write the capture `cfg` describes.
pub fn generate(cfg: &GenerateConfig) -> Result<Generated, GenerateError> {
    let err = |source| GenerateError {
        path: cfg.out.clone(),
        source,
    };
    let mut w = PcapWriter::create(&cfg.out).map_err(err)?;
    let mut rng = Rng(cfg.seed);
    // At least a nanosecond apart; a rate too low for the pcap time range
    // fails at the first packet past it (see `PcapWriter::write`).
    let gap = ((SEC as f64 / cfg.rate) as Nanos).max(1);
    let flows = match cfg.scenario {
        Scenario::SynFlood => flood(&mut w, &mut rng, cfg, gap, Proto::Tcp),
        Scenario::UdpFlood => flood(&mut w, &mut rng, cfg, gap, Proto::Udp),
        Scenario::PortScan => port_scan(&mut w, cfg, gap),
        Scenario::FanIn => fan_in(&mut w, &mut rng, cfg, gap),
    };
    let flows = match flows {
        Ok(flows) => flows,
        Err(e) => {
            // Not a capture to be read as if whole; but never a device or
            // pipe `-o` named (`/dev/null`).
            drop(w);
            if std::fs::symlink_metadata(&cfg.out).is_ok_and(|m| m.is_file()) {
                let _ = std::fs::remove_file(&cfg.out);
            }
            return Err(err(e));
        }
    };
    let (packets, bytes) = (w.packets, w.bytes);
    w.finish().map_err(err)?;
    Ok(Generated {
        packets,
        bytes,
        flows,
    })
}

#[derive(Clone, Copy)]
enum Proto {
    Tcp,
    Udp,
}

/// A spoofed source: any unicast IPv4 address outside 0/8, 10/8 and 127/8.
fn spoofed(rng: &mut Rng) -> [u8; 4] {
    loop {
        let a = (rng.next() as u32).to_be_bytes();
        if !matches!(a[0], 0 | 10 | 127 | 224..=255) {
            return a;
        }
    }
}

fn flood(
    w: &mut PcapWriter,
    rng: &mut Rng,
    cfg: &GenerateConfig,
    gap: Nanos,
    proto: Proto,
) -> io::Result<u64> {
    let mut frame = Vec::with_capacity(128);
    for i in 0..cfg.packets {
        let t = at(cfg.start, i, gap);
        let src = spoofed(rng);
        let sport = 1024 + (rng.next() % 64_512) as u16;
        frame.clear();
        match proto {
            Proto::Tcp => tcp(
                &mut frame,
                (src, sport),
                (SERVER, 80),
                (rng.next() as u32, 0),
                SYN,
                &[],
            ),
            Proto::Udp => {
                let dport = 1 + (rng.next() % 65_535) as u16;
                udp(&mut frame, (src, sport), (SERVER, dport), &[0u8; 18]);
            }
        }
        w.write(t, &frame)?;
    }
    Ok(cfg.packets)
}

/// The time of the `i`th packet `gap` apart from `start` (saturating: the
/// writer refuses times past what pcap holds).
fn at(start: Nanos, i: u64, gap: Nanos) -> Nanos {
    start.saturating_add((i as Nanos).saturating_mul(gap))
}

/// Ports the scanned host listens on.
const OPEN_PORTS: [u16; 3] = [22, 80, 443];

fn port_scan(w: &mut PcapWriter, cfg: &GenerateConfig, gap: Nanos) -> io::Result<u64> {
    let ports = cfg.packets.clamp(1, 65_535);
    let mut frame = Vec::with_capacity(128);
    let scanner = (SCANNER, 40_000);
    for i in 0..ports {
        let t = at(cfg.start, i, gap);
        let port = 1 + i as u16;
        let (isn, target) = (0x1000_0000 + i as u32, (SERVER, port));
        frame.clear();
        tcp(&mut frame, scanner, target, (isn, 0), SYN, &[]);
        w.write(t, &frame)?;
        frame.clear();
        let reply = t.saturating_add(200_000);
        if OPEN_PORTS.contains(&port) {
            tcp(&mut frame, target, scanner, (7, isn + 1), SYN | ACK, &[]);
            w.write(reply, &frame)?;
            frame.clear();
            tcp(&mut frame, scanner, target, (isn + 1, 0), RST, &[]);
            w.write(reply.saturating_add(100_000), &frame)?;
        } else {
            tcp(&mut frame, target, scanner, (0, isn + 1), RST | ACK, &[]);
            w.write(reply, &frame)?;
        }
    }
    Ok(ports)
}

/// How a fan-in connection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Handshake, request, response, FIN from the client.
    Served,
    /// As served, but the server resets instead of answering.
    Reset,
    /// The server refuses the SYN with RST-ACK (backlog full).
    Refused,
    /// Nobody answers the SYN (it is retransmitted once).
    Unanswered,
}

/// One fan-in connection: its packets, made one at a time in time order.
struct Conn {
    client: ([u8; 4], u16),
    fate: Fate,
    step: u8,
    c_seq: u32,
    s_seq: u32,
    request: usize,
    response: usize,
    rtt: Nanos,
}

impl Conn {
    /// Write the next packet; returns when the one after is due, if any.
    fn next(
        &mut self,
        t: Nanos,
        frame: &mut Vec<u8>,
        w: &mut PcapWriter,
    ) -> io::Result<Option<Nanos>> {
        let (c, s) = (self.client, (SERVER, FANIN_PORT));
        // Sequence numbers wrap, as TCP's do.
        let (c0, s0) = (self.c_seq, self.s_seq);
        let cs = |n: usize| c0.wrapping_add(n as u32);
        let ss = |n: usize| s0.wrapping_add(n as u32);
        let (request, response) = (self.request, self.response);
        frame.clear();
        let step = self.step;
        self.step += 1;
        let half = self.rtt / 2;
        let next = match (self.fate, step) {
            (_, 0) => {
                tcp(frame, c, s, (cs(0), 0), SYN, &[]);
                Some(half)
            }
            (Fate::Unanswered, 1) => {
                tcp(frame, c, s, (cs(0), 0), SYN, &[]);
                None
            }
            (Fate::Refused, 1) => {
                tcp(frame, s, c, (0, cs(1)), RST | ACK, &[]);
                None
            }
            (_, 1) => {
                tcp(frame, s, c, (ss(0), cs(1)), SYN | ACK, &[]);
                Some(half)
            }
            (_, 2) => {
                tcp(frame, c, s, (cs(1), ss(1)), ACK, &[]);
                Some(50_000)
            }
            (_, 3) => {
                let body = vec![b'q'; request];
                tcp(frame, c, s, (cs(1), ss(1)), PSH | ACK, &body);
                Some(half + 2 * SEC / 1000)
            }
            (Fate::Reset, 4) => {
                tcp(frame, s, c, (ss(1), cs(1 + request)), RST | ACK, &[]);
                None
            }
            (_, 4) => {
                let body = vec![b'r'; response];
                tcp(frame, s, c, (ss(1), cs(1 + request)), PSH | ACK, &body);
                Some(half)
            }
            (_, 5) => {
                let (seq, ack) = (cs(1 + request), ss(1 + response));
                tcp(frame, c, s, (seq, ack), FIN | ACK, &[]);
                Some(half)
            }
            (_, 6) => {
                let (seq, ack) = (ss(1 + response), cs(2 + request));
                tcp(frame, s, c, (seq, ack), FIN | ACK, &[]);
                Some(half)
            }
            _ => {
                let (seq, ack) = (cs(2 + request), ss(2 + response));
                tcp(frame, c, s, (seq, ack), ACK, &[]);
                None
            }
        };
        w.write(t, frame)?;
        // The unanswered SYN is retransmitted after the usual 1 s.
        Ok(next.map(|d| {
            t.saturating_add(if self.fate == Fate::Unanswered {
                SEC
            } else {
                d
            })
        }))
    }
}

const FANIN_PORT: u16 = 443;

/// Connections arrive in bursts: the rate swings between 20% and 180% of
/// the mean over a 10 s cycle, so concurrency peaks are visible.
fn fan_in(w: &mut PcapWriter, rng: &mut Rng, cfg: &GenerateConfig, gap: Nanos) -> io::Result<u64> {
    let clients: Vec<[u8; 4]> = (0..cfg.clients.max(1))
        .map(|i| [10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8])
        .collect();
    // Each client walks the Linux ephemeral range; the first client is a
    // heavy one (a fifth of all connections), so its ports get reused.
    let mut next_port: Vec<u16> = clients.iter().map(|_| 32_768).collect();
    let mut queue: BinaryHeap<Reverse<(Nanos, u64)>> = BinaryHeap::new();
    let mut conns: rustc_hash::FxHashMap<u64, Conn> = rustc_hash::FxHashMap::default();
    let mut frame = Vec::with_capacity(2048);
    let mut arrival = cfg.start;
    for id in 0..cfg.connections {
        let phase = ((arrival - cfg.start) as f64 / (10 * SEC) as f64) * std::f64::consts::TAU;
        let rate = 1.0 + 0.8 * phase.sin();
        arrival = arrival.saturating_add((gap as f64 / rate * rng.exponential()) as Nanos);
        // Everything due before this arrival goes out first.
        drain(&mut queue, &mut conns, arrival, &mut frame, w)?;
        let who = if rng.below(5) == 0 {
            0
        } else {
            rng.below(clients.len() as u64) as usize
        };
        let port = next_port[who];
        next_port[who] = next_ephemeral(port, who == 0);
        let fate = match rng.below(100) {
            0..=1 => Fate::Unanswered,
            2..=4 => Fate::Refused,
            5..=9 => Fate::Reset,
            _ => Fate::Served,
        };
        conns.insert(
            id,
            Conn {
                client: (clients[who], port),
                fate,
                step: 0,
                c_seq: rng.next() as u32,
                s_seq: rng.next() as u32,
                request: 40 + rng.below(200) as usize,
                response: 100 + rng.below(1200) as usize,
                rtt: (1 + rng.below(40) as Nanos) * 1_000_000,
            },
        );
        queue.push(Reverse((arrival, id)));
    }
    drain(&mut queue, &mut conns, Nanos::MAX, &mut frame, w)?;
    Ok(cfg.connections)
}

/// The port a client uses after `port`: the heavy client cycles 200
/// ports, the others Linux's whole default range (32768 to 60999).
fn next_ephemeral(port: u16, heavy: bool) -> u16 {
    let top = if heavy { 32_768 + 199 } else { 60_999 };
    if port >= top { 32_768 } else { port + 1 }
}

/// Write every packet due before `until`, in time order.
fn drain(
    queue: &mut BinaryHeap<Reverse<(Nanos, u64)>>,
    conns: &mut rustc_hash::FxHashMap<u64, Conn>,
    until: Nanos,
    frame: &mut Vec<u8>,
    w: &mut PcapWriter,
) -> io::Result<()> {
    while let Some(&Reverse((t, id))) = queue.peek() {
        if t >= until {
            break;
        }
        queue.pop();
        let Some(conn) = conns.get_mut(&id) else {
            continue;
        };
        match conn.next(t, frame, w)? {
            Some(due) => queue.push(Reverse((due, id))),
            None => {
                conns.remove(&id);
            }
        }
    }
    Ok(())
}

/// Ethernet + IPv4 header for `payload_len` bytes of `proto`.
fn ip(frame: &mut Vec<u8>, src: [u8; 4], dst: [u8; 4], proto: u8, payload_len: usize) {
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (20 + payload_len) as u16;
    let start = frame.len();
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    let sum = !checksum::fold(checksum::sum(&frame[start..], 0));
    frame[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
}

/// Fill the transport checksum at `at` over the segment from `seg`.
fn transport_checksum(
    frame: &mut [u8],
    seg: usize,
    at: usize,
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
) {
    let len = (frame.len() - seg) as u32;
    let pseudo = checksum::pseudo_header(&src, &dst, proto, len);
    let sum = !checksum::fold(checksum::sum(&frame[seg..], pseudo));
    frame[seg + at..seg + at + 2].copy_from_slice(&sum.to_be_bytes());
}

fn tcp(
    frame: &mut Vec<u8>,
    (src, sport): ([u8; 4], u16),
    (dst, dport): ([u8; 4], u16),
    (seq, ack): (u32, u32),
    flags: u8,
    payload: &[u8],
) {
    ip(frame, src, dst, 6, 20 + payload.len());
    let seg = frame.len();
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&ack.to_be_bytes());
    frame.extend_from_slice(&[0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    transport_checksum(frame, seg, 16, src, dst, 6);
}

fn udp(
    frame: &mut Vec<u8>,
    (src, sport): ([u8; 4], u16),
    (dst, dport): ([u8; 4], u16),
    payload: &[u8],
) {
    ip(frame, src, dst, 17, 8 + payload.len());
    let seg = frame.len();
    frame.extend_from_slice(&sport.to_be_bytes());
    frame.extend_from_slice(&dport.to_be_bytes());
    frame.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    transport_checksum(frame, seg, 6, src, dst, 17);
}

/// Classic pcap, nanosecond timestamps, Ethernet.
struct PcapWriter {
    out: BufWriter<File>,
    packets: u64,
    bytes: u64,
}

impl PcapWriter {
    fn create(path: &Path) -> io::Result<PcapWriter> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(&0xa1b2_3c4du32.to_le_bytes())?;
        out.write_all(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?;
        Ok(PcapWriter {
            out,
            packets: 0,
            bytes: 24,
        })
    }

    fn write(&mut self, ts: Nanos, frame: &[u8]) -> io::Result<()> {
        let Ok(secs) = u32::try_from(ts.div_euclid(SEC)) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "packet {} would be at {} s, past what a pcap file holds (the year 2106): use a higher --rate, or fewer --packets or --connections",
                    self.packets + 1,
                    ts.div_euclid(SEC)
                ),
            ));
        };
        let len = frame.len() as u32;
        let mut head = [0u8; 16];
        head[..4].copy_from_slice(&secs.to_le_bytes());
        head[4..8].copy_from_slice(&(ts.rem_euclid(SEC) as u32).to_le_bytes());
        head[8..12].copy_from_slice(&len.to_le_bytes());
        head[12..].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(frame)?;
        self.packets += 1;
        self.bytes += 16 + u64::from(len);
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// SplitMix64: tiny, fast, and the same sequence on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Exponentially distributed with mean 1.
    fn exponential(&mut self) -> f64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        -(1.0 - u).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeConfig, Decoder, L4};
    use crate::flow::{ConnRecord, ConnState, FlowConfig, FlowTable};
    use crate::source::CaptureReader;

    fn run(scenario: Scenario, packets: u64, connections: u64) -> (Generated, Vec<ConnRecord>) {
        let out = std::env::temp_dir().join(format!(
            "sockscope-gen-{:?}-{}.pcap",
            scenario,
            std::process::id()
        ));
        let cfg = GenerateConfig {
            scenario,
            out: out.clone(),
            packets,
            connections,
            clients: 20,
            rate: 1000.0,
            ..GenerateConfig::default()
        };
        let made = generate(&cfg).unwrap();
        let mut reader = CaptureReader::open(&out, 0).unwrap();
        let mut decoder = Decoder::new(DecodeConfig {
            verify_checksums: true,
        });
        let mut table = FlowTable::new(FlowConfig::default());
        let mut records = Vec::new();
        let mut last = 0;
        while reader.advance().unwrap() {
            let raw = reader.current().unwrap();
            assert!(raw.ts >= last, "packets are in time order");
            last = raw.ts;
            let pkt = decoder.decode(&raw).unwrap();
            assert!(!pkt.bad_checksum);
            if let L4::Tcp(t) = pkt.l4 {
                assert!(t.header_ok);
            }
            table.process(&pkt, &mut |r: &ConnRecord| records.push(*r));
        }
        table.finish(&mut |r: &ConnRecord| records.push(*r));
        std::fs::remove_file(&out).unwrap();
        (made, records)
    }

    #[test]
    fn syn_flood_is_one_attempt_per_packet() {
        let (made, records) = run(Scenario::SynFlood, 500, 0);
        assert_eq!((made.packets, made.flows), (500, 500));
        assert_eq!(records.len(), 500);
        assert!(
            records
                .iter()
                .all(|r| r.state == ConnState::S0 && r.resp_port == 80)
        );
    }

    #[test]
    fn udp_flood_is_one_flow_per_packet() {
        let (made, records) = run(Scenario::UdpFlood, 300, 0);
        assert_eq!(made.packets, 300);
        assert_eq!(records.len(), 300);
        assert!(records.iter().all(|r| r.orig_pkts == 1 && r.resp_pkts == 0));
    }

    #[test]
    fn port_scan_is_rejected_except_open_ports() {
        let (made, records) = run(Scenario::PortScan, 1024, 0);
        assert_eq!(made.flows, 1024);
        assert_eq!(records.len(), 1024);
        let rejected = records.iter().filter(|r| r.state == ConnState::REJ).count();
        assert_eq!(rejected, 1024 - OPEN_PORTS.len());
    }

    #[test]
    fn fan_in_connections_end_as_their_fate_says() {
        let (made, records) = run(Scenario::FanIn, 0, 400);
        assert_eq!(made.flows, 400);
        // Port reuse by the heavy client may join a reused tuple to a later
        // connection only if the old one is still open; fates decide states.
        assert_eq!(records.len(), 400);
        let count = |s: ConnState| records.iter().filter(|r| r.state == s).count();
        assert!(count(ConnState::SF) > 300, "{}", count(ConnState::SF));
        assert!(count(ConnState::REJ) > 0);
        assert!(count(ConnState::S0) > 0);
        assert!(count(ConnState::RSTR) > 0);
        assert!(records.iter().all(|r| r.resp_port == FANIN_PORT));
    }

    #[test]
    fn clients_cycle_their_ephemeral_ranges() {
        assert_eq!(next_ephemeral(32_768, false), 32_769);
        assert_eq!(next_ephemeral(60_999, false), 32_768);
        assert_eq!(next_ephemeral(32_967, true), 32_768);
        let mut port = 32_768;
        for _ in 0..100_000 {
            port = next_ephemeral(port, false);
            assert!((32_768..=60_999).contains(&port));
        }
    }

    /// Sequence numbers near 2^32 wrap as TCP's do (debug builds, where
    /// these tests run, panic on an overflowing add).
    #[test]
    fn sequence_numbers_wrap() {
        let out =
            std::env::temp_dir().join(format!("sockscope-gen-wrap-{}.pcap", std::process::id()));
        let mut w = PcapWriter::create(&out).unwrap();
        let mut conn = Conn {
            client: ([10, 1, 0, 1], 40_000),
            fate: Fate::Served,
            step: 0,
            c_seq: u32::MAX,
            s_seq: u32::MAX - 100,
            request: 300,
            response: 1300,
            rtt: 1_000_000,
        };
        let (mut t, mut frame) = (SEC, Vec::new());
        while let Some(next) = conn.next(t, &mut frame, &mut w).unwrap() {
            t = next;
        }
        assert_eq!(w.packets, 8);
        drop(w);
        std::fs::remove_file(&out).unwrap();
    }

    /// A rate too low for the pcap time range fails at the first packet past
    /// the year 2106, naming it, and leaves no partial file.
    #[test]
    fn times_past_the_pcap_range_are_refused() {
        let out =
            std::env::temp_dir().join(format!("sockscope-gen-late-{}.pcap", std::process::id()));
        let cfg = GenerateConfig {
            scenario: Scenario::SynFlood,
            out: out.clone(),
            packets: 1000,
            rate: 1e-7,
            ..GenerateConfig::default()
        };
        let e = generate(&cfg).unwrap_err().to_string();
        assert!(e.contains("past what a pcap file holds"), "{e}");
        assert!(!out.exists());
    }
}

//! Flow table behaviour on hand-built packet sequences: the TCP state machine
//! and history rules, timers, port reuse, role flips, eviction.

use super::*;
use crate::decode::{Addr, Icmp, L4, Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Tcp, Udp};

const C: [u8; 4] = [10, 0, 0, 1];
const SRV: [u8; 4] = [10, 0, 0, 2];

struct Run {
    table: FlowTable,
    out: Vec<ConnRecord>,
    n: u64,
}

impl Run {
    fn new() -> Run {
        Run::with(FlowConfig::default())
    }

    fn with(cfg: FlowConfig) -> Run {
        Run {
            table: FlowTable::new(cfg),
            out: Vec::new(),
            n: 0,
        }
    }

    fn send(&mut self, mut p: Packet) {
        self.n += 1;
        p.number = self.n;
        let out = &mut self.out;
        self.table.process(&p, &mut |r: &ConnRecord| out.push(*r));
    }

    /// TCP from client (`up`) or server, `len` bytes of payload.
    #[allow(clippy::too_many_arguments)]
    fn tcp(&mut self, ts: f64, up: bool, flags: u8, seq: u32, ack: u32, len: u32) {
        let (src, dst, sp, dp) = if up {
            (C, SRV, 40000, 80)
        } else {
            (SRV, C, 80, 40000)
        };
        self.send(tcp_packet(ts, src, sp, dst, dp, flags, seq, ack, len));
    }

    fn finish(mut self) -> Vec<ConnRecord> {
        let out = &mut self.out;
        self.table.finish(&mut |r: &ConnRecord| out.push(*r));
        self.out
    }
}

fn at(ts: f64) -> Nanos {
    (ts * 1e9).round() as Nanos
}

fn base(ts: f64, src: [u8; 4], dst: [u8; 4], proto: u8, l4: L4, ip_len: u32) -> Packet {
    Packet {
        ts: at(ts),
        src: Addr::v4(src),
        dst: Addr::v4(dst),
        ip_proto: proto,
        ip_len,
        vlan: None,
        inner_vlan: None,
        l4,
        bad_checksum: false,
        number: 0,
        input: 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn tcp_packet(
    ts: f64,
    src: [u8; 4],
    sp: u16,
    dst: [u8; 4],
    dp: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    len: u32,
) -> Packet {
    let t = Tcp {
        src_port: sp,
        dst_port: dp,
        seq,
        ack,
        flags,
        window: 1000,
        payload_len: len,
        captured_len: len,
        window_scale: None,
        hdr_len: 20,
        header_ok: true,
    };
    base(ts, src, dst, 6, L4::Tcp(t), 40 + len)
}

const SA: u8 = TCP_SYN | TCP_ACK;
const FA: u8 = TCP_FIN | TCP_ACK;
const RA: u8 = TCP_RST | TCP_ACK;

/// Client ISN 1000, server ISN 5000.
fn handshake(r: &mut Run, t: f64) {
    r.tcp(t, true, TCP_SYN, 1000, 0, 0);
    r.tcp(t + 0.01, false, SA, 5000, 1001, 0);
    r.tcp(t + 0.02, true, TCP_ACK, 1001, 5001, 0);
}

#[test]
fn complete_session_is_sf_and_duration_excludes_the_last_ack() {
    let mut r = Run::new();
    handshake(&mut r, 1.0);
    r.tcp(1.03, true, TCP_ACK, 1001, 5001, 100);
    r.tcp(1.04, false, TCP_ACK, 5001, 1101, 300);
    r.tcp(1.05, true, FA, 1101, 5301, 0);
    r.tcp(1.06, false, FA, 5301, 1102, 0);
    r.tcp(1.07, true, TCP_ACK, 1102, 5302, 0);
    let recs = r.finish();
    assert_eq!(recs.len(), 1);
    let c = &recs[0];
    assert_eq!(c.state, ConnState::SF);
    assert_eq!(c.history.as_str(), "ShADdFf");
    assert_eq!((c.orig_bytes, c.resp_bytes), (100, 300));
    assert_eq!((c.orig_pkts, c.resp_pkts), (5, 3));
    assert_eq!(c.duration, at(0.06));
    assert_eq!(c.close_reason, CloseReason::Fin);
    assert_eq!(c.lifecycle.first_syn, Some(at(1.0)));
    assert_eq!(c.lifecycle.syn_ack, Some(at(1.01)));
    assert_eq!(c.handshake_rtt(), Some(at(0.02)));
    assert_eq!(c.lifecycle.first_fin, Some((at(1.05), Side::Orig)));
    assert!(!c.lifecycle.midstream);
}

#[test]
fn unanswered_syn_times_out_and_a_later_retransmission_is_a_new_attempt() {
    let mut r = Run::new();
    r.tcp(0.0, true, TCP_SYN, 7, 0, 0);
    r.tcp(3.0, true, TCP_SYN, 7, 0, 0);
    // Another connection's packet moves the clock past the attempt timer.
    r.send(tcp_packet(
        5.5,
        [1, 1, 1, 1],
        1,
        [2, 2, 2, 2],
        2,
        TCP_SYN,
        1,
        0,
        0,
    ));
    r.tcp(9.0, true, TCP_SYN, 7, 0, 0);
    let recs: Vec<_> = r
        .finish()
        .into_iter()
        .filter(|c| c.orig_port == 40000)
        .collect();
    assert_eq!(recs.len(), 2);
    for c in &recs {
        assert_eq!((c.state, c.history.as_str()), (ConnState::S0, "S"));
    }
    assert_eq!(recs[0].orig_pkts, 2);
    assert_eq!(recs[0].close_reason, CloseReason::Timeout);
    assert_eq!(recs[1].close_reason, CloseReason::CaptureEnd);
}

#[test]
fn rejected_and_aborted_attempts() {
    let mut r = Run::new();
    r.tcp(0.0, true, TCP_SYN, 1, 0, 0);
    r.tcp(0.1, false, RA, 0, 2, 0);
    let rej = r.finish();
    assert_eq!(
        (rej[0].state, rej[0].history.as_str()),
        (ConnState::REJ, "Sr")
    );
    assert_eq!(rej[0].close_reason, CloseReason::RstResp);

    let mut r = Run::new();
    r.tcp(0.0, true, TCP_SYN, 1, 0, 0);
    r.tcp(0.1, true, TCP_RST, 2, 0, 0);
    let c = r.finish();
    assert_eq!(
        (c[0].state, c[0].history.as_str()),
        (ConnState::RSTOS0, "SR")
    );
}

#[test]
fn syn_on_a_closed_tuple_starts_a_new_connection() {
    let mut r = Run::new();
    r.tcp(0.0, true, TCP_SYN, 1, 0, 0);
    r.tcp(0.1, false, RA, 0, 2, 0);
    r.tcp(0.2, true, TCP_SYN, 1, 0, 0);
    r.tcp(0.3, false, RA, 0, 2, 0);
    let recs = r.finish();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|c| c.state == ConnState::REJ));
    assert_ne!(recs[0].uid, recs[1].uid);
}

#[test]
fn syn_ack_first_flips_once_productive_traffic_follows() {
    let mut r = Run::new();
    r.tcp(0.0, false, SA, 5000, 1001, 0);
    r.tcp(0.1, false, TCP_ACK, 5001, 1001, 0);
    r.tcp(0.2, false, FA, 5001, 1001, 0);
    let c = r.finish();
    assert_eq!(c[0].history.as_str(), "^haf");
    assert_eq!(
        (c[0].orig.to_string(), c[0].orig_port),
        ("10.0.0.1".to_string(), 40000)
    );
    assert_eq!((c[0].orig_pkts, c[0].resp_pkts), (0, 3));
    assert_eq!(c[0].state, ConnState::SHR);
}

#[test]
fn likely_server_port_flips_at_creation() {
    let mut r = Run::new();
    // Midstream data from the server's port 80 first.
    r.tcp(0.0, false, TCP_ACK, 5001, 1001, 10);
    r.tcp(0.1, true, TCP_ACK, 1001, 5011, 0);
    let c = r.finish();
    assert_eq!(c[0].orig_port, 40000);
    assert_eq!(c[0].history.as_str(), "^dA");
    assert_eq!(c[0].state, ConnState::OTH);
    assert!(c[0].lifecycle.midstream);
}

#[test]
fn retransmissions_and_zero_windows_are_logarithmic() {
    let mut r = Run::new();
    handshake(&mut r, 0.0);
    r.tcp(0.03, true, TCP_ACK, 1001, 5001, 10);
    for i in 0..10 {
        r.tcp(0.04 + f64::from(i) * 0.001, true, TCP_ACK, 1001, 5001, 10);
    }
    let mut p = tcp_packet(0.06, SRV, 80, C, 40000, TCP_ACK, 5001, 1011, 0);
    if let L4::Tcp(t) = &mut p.l4 {
        t.window = 0;
    }
    r.send(p);
    let c = r.finish();
    assert_eq!(c[0].history.as_str(), "ShADTTaw");
    assert_eq!(c[0].lifecycle.retransmits, 10);
    assert_eq!(c[0].lifecycle.zero_windows, 1);
}

#[test]
fn acknowledged_but_unseen_data_is_missed() {
    let mut r = Run::new();
    handshake(&mut r, 0.0);
    r.tcp(0.03, true, TCP_ACK, 1001, 5001, 100);
    // 1101..1201 never captured; the server acknowledges it.
    r.tcp(0.05, true, TCP_ACK, 1201, 5001, 100);
    r.tcp(0.06, false, TCP_ACK, 5001, 1301, 0);
    let c = r.finish();
    assert_eq!(c[0].missed_bytes, 100);
    assert_eq!(c[0].history.as_str(), "ShADaG");
    assert_eq!(c[0].orig_bytes, 300);
}

#[test]
fn sequence_numbers_wrap_in_64_bits() {
    let mut r = Run::new();
    let isn = u32::MAX - 1000;
    r.tcp(0.0, true, TCP_SYN, isn, 0, 0);
    r.tcp(0.01, false, SA, 5000, isn.wrapping_add(1), 0);
    let mut seq = isn.wrapping_add(1);
    for i in 0..3 {
        r.tcp(0.02 + f64::from(i) * 0.01, true, TCP_ACK, seq, 5001, 1400);
        seq = seq.wrapping_add(1400);
        r.tcp(0.025 + f64::from(i) * 0.01, false, TCP_ACK, 5001, seq, 0);
    }
    let c = r.finish();
    assert_eq!(c[0].orig_bytes, 4200);
    assert_eq!(c[0].missed_bytes, 0);
}

/// A table of at most `max_flows` fed one SYN from 10.0.0.1 to 10.0.0.2:80
/// per (time, source port).
fn syns(max_flows: usize, sends: &[(f64, u16)]) -> Run {
    let mut r = Run::with(FlowConfig {
        max_flows,
        ..FlowConfig::default()
    });
    for &(t, port) in sends {
        r.send(tcp_packet(
            t,
            [10, 0, 0, 1],
            port,
            [10, 0, 0, 2],
            80,
            TCP_SYN,
            1,
            0,
            0,
        ));
    }
    r
}

#[test]
fn max_flows_evicts_the_least_recently_seen() {
    let r = syns(2, &[(0.0, 1000), (0.1, 1001), (0.2, 1002)]);
    assert_eq!(r.table.len(), 2);
    assert_eq!(r.table.stats().evicted, 1);
    let recs = r.finish();
    assert_eq!(recs[0].orig_port, 1000);
    assert_eq!(recs[0].close_reason, CloseReason::Evicted);
}

#[test]
fn eviction_follows_the_latest_packet_not_the_first() {
    // Ports 1000, 1001, then 1000 again: 1001 is now the least recently
    // seen, though 1000 was created first (its recency entry is stale).
    let sends = [
        (0.0, 1000),
        (0.1, 1001),
        (0.15, 1000),
        (0.2, 1002),
        (0.3, 1003),
    ];
    let r = syns(2, &sends);
    assert_eq!(r.table.stats().evicted, 2);
    let ports: Vec<(u16, CloseReason)> = r
        .finish()
        .iter()
        .map(|c| (c.orig_port, c.close_reason))
        .collect();
    // Evicted in recency order, then the rest least recent first.
    assert_eq!(
        ports,
        [
            (1001, CloseReason::Evicted),
            (1000, CloseReason::Evicted),
            (1002, CloseReason::CaptureEnd),
            (1003, CloseReason::CaptureEnd),
        ]
    );
}

#[test]
fn late_packets_do_not_run_the_clock_backwards() {
    let mut r = Run::new();
    handshake(&mut r, 10.0);
    r.tcp(9.0, true, TCP_ACK, 1001, 5001, 5);
    assert_eq!(r.table.stats().late_packets, 1);
    let c = r.finish();
    assert!(c[0].duration >= 0);
    assert_eq!(c[0].orig_pkts, 3);
}

#[test]
fn udp_request_reply_and_icmp_echo() {
    let mut r = Run::new();
    let q = L4::Udp(Udp {
        src_port: 5353,
        dst_port: 53,
        ulen: 40,
        ..Udp::default()
    });
    let a = L4::Udp(Udp {
        src_port: 53,
        dst_port: 5353,
        ulen: 120,
        ..Udp::default()
    });
    r.send(base(0.0, C, SRV, 17, q, 60));
    r.send(base(0.5, SRV, C, 17, a, 140));
    let echo = |t: u8| {
        L4::Icmp(Icmp {
            v6: false,
            icmp_type: t,
            code: 0,
            payload_len: 56,
            complete: true,
        })
    };
    r.send(base(1.0, C, SRV, 1, echo(8), 84));
    r.send(base(1.1, SRV, C, 1, echo(0), 84));
    let recs = r.finish();
    let udp = recs.iter().find(|c| c.proto == Proto::Udp).unwrap();
    assert_eq!((udp.state, udp.history.as_str()), (ConnState::SF, "Dd"));
    assert_eq!((udp.orig_bytes, udp.resp_bytes), (32, 112));
    let icmp = recs.iter().find(|c| c.proto == Proto::Icmp).unwrap();
    assert_eq!((icmp.orig_port, icmp.resp_port), (8, 0));
    assert_eq!(
        (icmp.orig_pkts, icmp.resp_pkts, icmp.orig_bytes),
        (1, 1, 56)
    );
    assert_eq!(icmp.state, ConnState::OTH);
}

#[test]
fn udp_from_a_server_port_is_flipped_unless_broadcast() {
    let mut r = Run::new();
    let reply = L4::Udp(Udp {
        src_port: 67,
        dst_port: 68,
        ulen: 300,
        ..Udp::default()
    });
    r.send(base(0.0, SRV, C, 17, reply, 320));
    r.send(base(0.1, SRV, [255; 4], 17, reply, 320));
    let recs = r.finish();
    let unicast = recs.iter().find(|c| c.orig_port == 68).unwrap();
    assert_eq!(
        (unicast.history.as_str(), unicast.state),
        ("^d", ConnState::SHR)
    );
    let bcast = recs.iter().find(|c| c.resp == Addr::v4([255; 4])).unwrap();
    assert_eq!((bcast.history.as_str(), bcast.state), ("D", ConnState::S0));
}

#[test]
fn bad_checksum_creates_the_connection_but_counts_nothing() {
    let mut r = Run::new();
    let mut p = tcp_packet(0.0, C, 40000, SRV, 80, TCP_SYN, 1, 0, 0);
    p.bad_checksum = true;
    r.send(p);
    let c = r.finish();
    assert_eq!(
        (c[0].history.as_str(), c[0].orig_pkts, c[0].state),
        ("C", 0, ConnState::OTH)
    );
}

fn udp_with(sp: u16, dp: u16, head: [u8; 4], captured: u16) -> L4 {
    L4::Udp(Udp {
        src_port: sp,
        dst_port: dp,
        ulen: captured + 8,
        captured,
        head,
    })
}

#[test]
fn dns_response_first_flips_and_dns_conversations_expire_after_ten_seconds() {
    let mut r = Run::new();
    // A unicast mDNS response (QR set) between two 5353 ports: no creation
    // flip (both are server ports), the DNS analyzer flips it.
    r.send(base(
        0.0,
        C,
        SRV,
        17,
        udp_with(5353, 5353, [0, 0, 0x84, 0], 40),
        68,
    ));
    // 9.5 s idle: Zeek's DNS analyzer removes the conversation, so the same
    // 5-tuple starts a new connection.
    r.send(base(
        9.5,
        [9, 9, 9, 9],
        SRV,
        17,
        udp_with(1, 2, [0; 4], 4),
        32,
    ));
    r.send(base(
        10.5,
        C,
        SRV,
        17,
        udp_with(5353, 5353, [0, 0, 0x01, 0], 40),
        68,
    ));
    let recs: Vec<_> = r
        .finish()
        .into_iter()
        .filter(|c| c.orig_port == 5353)
        .collect();
    assert_eq!(recs.len(), 2);
    let first = &recs[0];
    assert_eq!((first.orig, first.history.as_str()), (Addr::v4(SRV), "D^"));
    assert_eq!(
        (first.orig_pkts, first.resp_pkts, first.orig_bytes),
        (1, 0, 40)
    );
    assert_eq!(first.state, ConnState::S0);
    // The query in the second conversation is not flipped.
    assert_eq!((recs[1].orig, recs[1].history.as_str()), (Addr::v4(C), "D"));
}

#[test]
fn ntp_server_mode_from_the_originator_flips() {
    let mut r = Run::new();
    r.send(base(
        0.0,
        SRV,
        C,
        17,
        udp_with(123, 123, [0x24, 0, 0, 0], 48),
        76,
    ));
    r.send(base(
        0.5,
        C,
        SRV,
        17,
        udp_with(123, 123, [0x23, 0, 0, 0], 48),
        76,
    ));
    let c = r.finish();
    assert_eq!((c[0].orig, c[0].history.as_str()), (Addr::v4(C), "D^"));
    assert_eq!(
        (c[0].orig_pkts, c[0].resp_pkts, c[0].orig_bytes),
        (2, 0, 96)
    );
}

mod properties {
    //! Properties over arbitrary packet sequences from a small pool of
    //! endpoints (so packets collide into connections, reuse tuples, flip
    //! roles and expire): the table never holds more than `max_flows`,
    //! a connection's counters never decrease while it lives, and every
    //! connection leaves exactly once.
    //!
    //! Payload bytes come from sequence numbers as Zeek counts them: a SYN
    //! inside a connection restarts the sequence space
    //! (`SYN_inside_connection`) and a FIN or RST takes its octet off the
    //! size even when it arrives out of order, so at packets with those
    //! flags only packets and IP bytes must grow.

    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    struct Step {
        /// Time since the previous packet in ms; negative: a late packet.
        dt_ms: i32,
        src: u8,
        dst: u8,
        sport: u8,
        dport: u8,
        kind: u8,
        flags: u8,
        seq: u32,
        ack: u32,
        len: u16,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            -2000i32..200_000,
            0u8..4,
            0u8..4,
            0u8..3,
            0u8..3,
            0u8..4,
            any::<u8>(),
            0u32..4000,
            0u32..4000,
            0u16..1500,
        )
            .prop_map(
                |(dt_ms, src, dst, sport, dport, kind, flags, seq, ack, len)| Step {
                    dt_ms,
                    src,
                    dst,
                    sport,
                    dport,
                    kind,
                    flags,
                    seq,
                    ack,
                    len,
                },
            )
    }

    fn packet(s: &Step, ts: f64) -> Packet {
        let (src, dst) = ([10, 0, 0, s.src], [10, 0, 0, s.dst]);
        let (sp, dp) = (40000 + u16::from(s.sport), 80 + u16::from(s.dport));
        match s.kind {
            0 | 1 => tcp_packet(
                ts,
                src,
                sp,
                dst,
                dp,
                s.flags & 0x3f,
                s.seq,
                s.ack,
                u32::from(s.len),
            ),
            2 => {
                let u = Udp {
                    src_port: sp,
                    dst_port: dp,
                    ulen: 8 + s.len,
                    captured: s.len,
                    head: [0; 4],
                };
                base(ts, src, dst, 17, L4::Udp(u), 28 + u32::from(s.len))
            }
            _ => {
                let i = Icmp {
                    v6: false,
                    icmp_type: s.flags % 16,
                    code: 0,
                    payload_len: u32::from(s.len),
                    complete: true,
                };
                base(ts, src, dst, 1, L4::Icmp(i), 28 + u32::from(s.len))
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn bounded_monotone_and_each_connection_leaves_once(
            steps in proptest::collection::vec(step(), 1..120),
            max_flows in 1usize..6,
        ) {
            let mut r = Run::with(FlowConfig { max_flows, ..FlowConfig::default() });
            let mut ts = 1000.0;
            // uid -> (packets, IP bytes, payload bytes) while it lived.
            let mut seen: std::collections::HashMap<u128, (u64, u64, u64)> = Default::default();
            for s in &steps {
                ts += f64::from(s.dt_ms) / 1000.0;
                r.send(packet(s, ts));
                let control = s.kind <= 1 && s.flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0;
                prop_assert!(r.table.len() <= max_flows);
                for c in r.table.connections() {
                    let rec = c.to_record(CloseReason::CaptureEnd);
                    let now = (
                        rec.orig_pkts + rec.resp_pkts,
                        rec.orig_ip_bytes + rec.resp_ip_bytes,
                        rec.orig_bytes + rec.resp_bytes,
                    );
                    if let Some(before) = seen.insert(c.uid(), now) {
                        prop_assert!(now.0 >= before.0 && now.1 >= before.1, "{before:?} -> {now:?}");
                        prop_assert!(control || now.2 >= before.2, "{before:?} -> {now:?}");
                    }
                }
            }
            let stats = r.table.stats();
            let out = r.finish();
            prop_assert_eq!(out.len() as u64, stats.connections);
            let uids: std::collections::HashSet<u128> = out.iter().map(|c| c.uid).collect();
            prop_assert_eq!(uids.len(), out.len());
            for c in &out {
                prop_assert!(c.duration >= 0);
                prop_assert!(c.orig_pkts + c.resp_pkts >= 1);
            }
        }
    }
}

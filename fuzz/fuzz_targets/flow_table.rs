//! Synthetic packet sequences through a small FlowTable.
//!
//! Input: one config byte, then 10-byte packet descriptions (a trailing
//! partial description is ignored).
//!
//! Config byte `c`:
//! - `c & 7`: max_flows = 1 + (c & 7); bit 5 makes it 0 (treated as 1);
//! - bit 3: VLAN ids are part of the key;
//! - bit 4: every timeout divided by 1000 (ms instead of s), so timers fire
//!   between packets a few milliseconds apart;
//! - bit 6: call `advance` to each packet's time before `process`.
//!
//! Packet description `b[0..10]`:
//! - b0 bits 0-1: TCP, UDP, ICMP, other (proto 132); bit 2: IPv6;
//!   bits 3-4: time mode (below); bit 5: VLAN tags; bit 6: bad checksum;
//!   bit 7: damaged (TCP header unusable, ICMP not fully captured, UDP
//!   length field below 8);
//! - b1: source host (bits 0-2) and destination host (bits 4-6) from a pool
//!   of 8 per family; bit 3: inner VLAN tag, bit 7: outer VLAN id 1 instead of 0;
//! - b2..b4: source port, b4..b6: destination port (big-endian);
//!   ICMP uses b2 as type and b3 as code;
//! - b6: TCP flags / UDP first payload byte (NTP mode);
//! - b7: payload length in units of 8 bytes (UDP, ICMP, TCP, other);
//! - b8: TCP: bits 0-2 sequence mode (0-3 in order, 4 retransmission,
//!   5 gap of 1000, 6 arbitrary from the ports, 7 one byte back),
//!   bit 3 ack 0, bit 4 zero window, bit 5 window-scale option,
//!   bit 6 payload only half captured; UDP: third payload byte (DNS QR bit);
//! - b9: time step; mode 0: +b9 ms; 1: +b9 s; 2: -b9*10 ms (a late packet);
//!   3: +b9 minutes, or for b9 >= 0xf8 a jump to the edge of the clock
//!   (near i64::MAX for 0xf8..=0xfb, near i64::MIN otherwise), which pcapng's
//!   if_tsoffset makes reachable. Set SOCKSCOPE_FUZZ_SANE_TIME=1 to replace
//!   the jumps with +1 hour.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sockscope::decode::{Addr, Icmp, L4, Packet, TCP_FIN, TCP_SYN, Tcp, Udp};
use sockscope::flow::{FlowConfig, FlowTable, Timeouts};
use sockscope::source::Nanos;
use sockscope_fuzz::Checker;

const MS: Nanos = 1_000_000;
const SEC: Nanos = 1_000_000_000;
const START: Nanos = 1_700_000_000 * SEC;

fn sane_time() -> bool {
    static SANE: OnceLock<bool> = OnceLock::new();
    *SANE.get_or_init(|| std::env::var_os("SOCKSCOPE_FUZZ_SANE_TIME").is_some_and(|v| v == "1"))
}

fn host(i: u8, v6: bool) -> Addr {
    let i = i & 7;
    if v6 {
        let mut a = [0u8; 16];
        a[0] = if i == 7 { 0xff } else { 0x20 };
        a[1] = if i == 7 { 0x02 } else { 0x01 };
        a[15] = i + 1;
        Addr(a)
    } else {
        match i {
            6 => Addr::v4([224, 0, 0, 251]),
            7 => Addr::v4([255, 255, 255, 255]),
            _ => Addr::v4([10, 0, 0, i + 1]),
        }
    }
}

fn scaled(t: Timeouts, div: Nanos) -> Timeouts {
    Timeouts {
        tcp_attempt: t.tcp_attempt / div,
        tcp_inactivity: t.tcp_inactivity / div,
        udp_inactivity: t.udp_inactivity / div,
        icmp_inactivity: t.icmp_inactivity / div,
        unknown_inactivity: t.unknown_inactivity / div,
        interactive_inactivity: t.interactive_inactivity / div,
        tcp_close_delay: t.tcp_close_delay / div,
        tcp_reset_delay: t.tcp_reset_delay / div,
        tcp_syn_timeout: t.tcp_syn_timeout / div,
        tcp_session_timer: t.tcp_session_timer / div,
        tcp_connection_linger: t.tcp_connection_linger / div,
    }
}

/// Per-host TCP sequence state of the generator.
struct Seqs {
    next: [u32; 16],
    last_len: [u32; 16],
}

fn step(ts: Nanos, mode: u8, b9: u8) -> Nanos {
    let b = Nanos::from(b9);
    match mode {
        0 => ts.saturating_add(b * MS),
        1 => ts.saturating_add(b * SEC),
        2 => ts.saturating_sub(b * 10 * MS),
        _ if b9 < 0xf8 || sane_time() => ts.saturating_add(b * 60 * SEC),
        _ if b9 < 0xfc => Nanos::MAX - (0xfc - b) * 10 * SEC,
        _ => Nanos::MIN + (0x100 - b) * 10 * SEC,
    }
}

fn packet(d: &[u8; 10], n: u64, ts: Nanos, seqs: &mut Seqs) -> Packet {
    let v6 = d[0] & 4 != 0;
    let bad_checksum = d[0] & 0x40 != 0;
    let damaged = d[0] & 0x80 != 0;
    let (s, r) = (d[1] & 7, (d[1] >> 4) & 7);
    let (src, dst) = (host(s, v6), host(r, v6));
    let (si, ri) = (
        usize::from(s) + 8 * usize::from(v6),
        usize::from(r) + 8 * usize::from(v6),
    );
    let sport = u16::from_be_bytes([d[2], d[3]]);
    let dport = u16::from_be_bytes([d[4], d[5]]);
    let len = u32::from(d[7]) * 8;
    let ip_hdr = if v6 { 40 } else { 20 };
    let (vlan, inner_vlan) = if d[0] & 0x20 != 0 {
        (Some(u16::from(d[1] >> 7)), (d[1] & 8 != 0).then_some(100))
    } else {
        (None, None)
    };
    let (ip_proto, l4, l4_hdr) = match d[0] & 3 {
        0 => {
            let flags = d[6];
            let (hdr_len, header_ok) = if damaged {
                (16, false)
            } else if d[8] & 0x20 != 0 {
                (24, true)
            } else {
                (20, true)
            };
            let mut seq = seqs.next[si];
            match d[8] & 7 {
                4 => seq = seq.wrapping_sub(seqs.last_len[si]),
                5 => seq = seq.wrapping_add(1000),
                6 => seq = u32::from_be_bytes([d[2], d[3], d[4], d[5]]),
                7 => seq = seq.wrapping_sub(1),
                _ => {}
            }
            let ack = if d[8] & 8 != 0 { 0 } else { seqs.next[ri] };
            let mut adv = len;
            if flags & TCP_SYN != 0 {
                adv += 1;
            }
            if flags & TCP_FIN != 0 {
                adv += 1;
            }
            if d[8] & 7 < 4 {
                seqs.next[si] = seq.wrapping_add(adv);
                seqs.last_len[si] = adv;
            }
            let captured_len = if d[8] & 0x40 != 0 { len / 2 } else { len };
            let tcp = Tcp {
                src_port: sport,
                dst_port: dport,
                seq,
                ack,
                flags,
                window: if d[8] & 0x10 != 0 { 0 } else { 65535 },
                payload_len: if header_ok { len } else { 0 },
                captured_len: if header_ok { captured_len } else { 0 },
                window_scale: (header_ok && hdr_len > 20 && flags & TCP_SYN != 0)
                    .then_some(d[9] & 15),
                hdr_len,
                header_ok,
            };
            (6, L4::Tcp(tcp), u32::from(hdr_len))
        }
        1 => {
            let ulen = if damaged {
                u16::from(d[8] & 7)
            } else {
                (len + 8) as u16
            };
            let udp = Udp {
                src_port: sport,
                dst_port: dport,
                ulen,
                captured: len as u16,
                head: [d[6], 0, d[8], 0],
            };
            (17, L4::Udp(udp), 8)
        }
        2 => {
            let icmp = Icmp {
                v6,
                icmp_type: d[2],
                code: d[3],
                payload_len: len,
                complete: !damaged,
            };
            (if v6 { 58 } else { 1 }, L4::Icmp(icmp), 8)
        }
        _ => (132, L4::Other, 0),
    };
    Packet {
        ts,
        src,
        dst,
        ip_proto,
        ip_len: ip_hdr + l4_hdr + len,
        vlan,
        inner_vlan,
        l4,
        // Decoders set it only for a transport they verified.
        bad_checksum: bad_checksum && !matches!(l4, L4::Other),
        number: n,
        input: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, descs)) = data.split_first() else {
        return;
    };
    let max_flows = if cfg & 0x20 != 0 {
        0
    } else {
        1 + usize::from(cfg & 7)
    };
    let timeouts = if cfg & 0x10 != 0 {
        scaled(Timeouts::default(), 1000)
    } else {
        Timeouts::default()
    };
    let mut table = FlowTable::new(FlowConfig {
        timeouts,
        max_flows,
        vlan_key: cfg & 8 != 0,
    });
    let mut checker = Checker::new(max_flows);
    let mut seqs = Seqs {
        next: std::array::from_fn(|i| {
            if i % 8 == 7 {
                0xffff_ff00
            } else {
                (i as u32) << 28 | 0x1234
            }
        }),
        last_len: [0; 16],
    };
    let mut ts = START;
    let mut clock: Option<Nanos> = None;
    for (i, chunk) in descs.chunks_exact(10).enumerate() {
        let d: &[u8; 10] = chunk.try_into().unwrap();
        ts = step(ts, (d[0] >> 3) & 3, d[9]);
        let p = packet(d, i as u64 + 1, ts, &mut seqs);
        checker.note_packet(&p);
        if cfg & 0x40 != 0 {
            table.advance(ts, &mut checker);
            checker.step(&table);
        }
        table.process(&p, &mut checker);
        checker.step(&table);
        // The clock never runs backwards.
        let now = table.clock().expect("a packet was seen");
        assert!(clock.is_none_or(|c| now >= c));
        // The clock stops one short of i64::MAX ("never" for timers).
        assert!(now >= ts.min(i64::MAX - 1));
        clock = Some(now);
    }
    table.finish(&mut checker);
    checker.finished(&table);
    assert_eq!(table.stats().packets, (descs.len() / 10) as u64);
});

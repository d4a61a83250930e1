//! Decoder behaviour on frames built with etherparse.

use etherparse::PacketBuilder;

use super::*;
use crate::source::RawPacket;

const MAC: [u8; 6] = [0, 1, 2, 3, 4, 5];

fn raw(data: &[u8], wire_len: usize) -> RawPacket<'_> {
    RawPacket {
        ts: 1,
        linktype: link::LINKTYPE_ETHERNET,
        wire_len: wire_len as u32,
        data,
        number: 1,
        input: 0,
    }
}

fn tcp_frame(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC, MAC)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1000, 65535)
        .ack(5000)
        .psh();
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn decode(frame: &[u8], verify: bool) -> Result<Packet, Skip> {
    Decoder::new(DecodeConfig {
        verify_checksums: verify,
    })
    .decode(&raw(frame, frame.len()))
}

fn tcp_of(p: &Packet) -> Tcp {
    match p.l4 {
        L4::Tcp(t) => t,
        other => panic!("not TCP: {other:?}"),
    }
}

#[test]
fn ethernet_ipv4_tcp() {
    let f = tcp_frame(b"hello");
    let p = decode(&f, true).unwrap();
    let t = tcp_of(&p);
    assert_eq!(
        (p.src, p.dst, p.ip_len),
        (Addr::v4([10, 0, 0, 1]), Addr::v4([10, 0, 0, 2]), 45)
    );
    assert_eq!(
        (t.src_port, t.dst_port, t.seq, t.ack),
        (40000, 80, 1000, 5000)
    );
    assert_eq!((t.payload_len, t.captured_len, t.header_ok), (5, 5, true));
    assert!(!p.bad_checksum);
}

#[test]
fn snaplen_cut_payload_keeps_headers_and_skips_checksums() {
    let mut f = tcp_frame(&[7u8; 100]);
    let wire = f.len();
    f[60] ^= 0xff; // corrupt a byte that is then cut away anyway
    f.truncate(14 + 20 + 20 + 10);
    let p = Decoder::new(DecodeConfig {
        verify_checksums: true,
    })
    .decode(&raw(&f, wire))
    .unwrap();
    let t = tcp_of(&p);
    assert_eq!((t.payload_len, t.captured_len), (100, 10));
    assert_eq!(p.ip_len, 140);
    assert!(!p.bad_checksum);
}

#[test]
fn bad_transport_checksum_is_flagged_only_when_verifying() {
    let mut f = tcp_frame(b"data");
    let last = f.len() - 1;
    f[last] ^= 1;
    assert!(decode(&f, true).unwrap().bad_checksum);
    assert!(!decode(&f, false).unwrap().bad_checksum);
}

#[test]
fn bad_ip_header_checksum_drops_when_verifying() {
    let mut f = tcp_frame(b"");
    f[14 + 10] ^= 1;
    assert_eq!(decode(&f, true).unwrap_err(), Skip::BadIpChecksum);
    assert!(decode(&f, false).is_ok());
}

#[test]
fn zero_ip_length_from_segmentation_offload() {
    let mut f = tcp_frame(b"abc");
    f[14 + 2] = 0;
    f[14 + 3] = 0;
    assert_eq!(decode(&f, true).unwrap_err(), Skip::IpLenZero);
    let p = decode(&f, false).unwrap();
    assert_eq!((p.ip_len, tcp_of(&p).payload_len), (0, 3));
}

#[test]
fn ip_length_beyond_the_wire_is_dropped_and_trailers_ignored() {
    let mut f = tcp_frame(b"abc");
    f[14 + 3] += 10;
    assert_eq!(decode(&f, false).unwrap_err(), Skip::IpLenExceedsWire);
    let mut padded = tcp_frame(b"abc");
    padded.extend_from_slice(&[0u8; 12]);
    let p = decode(&padded, true).unwrap();
    assert_eq!((p.ip_len, tcp_of(&p).payload_len), (43, 3));
    assert!(!p.bad_checksum);
}

#[test]
fn udp_zero_checksum_means_none_on_ipv4_but_is_bad_on_ipv6() {
    let mut v4 = Vec::new();
    PacketBuilder::ethernet2(MAC, MAC)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5000, 53)
        .write(&mut v4, b"query")
        .unwrap();
    v4[14 + 20 + 6] = 0;
    v4[14 + 20 + 7] = 0;
    let p = decode(&v4, true).unwrap();
    assert!(matches!(p.l4, L4::Udp(Udp { ulen: 13, .. })));
    assert!(!p.bad_checksum);

    let mut v6 = Vec::new();
    PacketBuilder::ethernet2(MAC, MAC)
        .ipv6([1; 16], [2; 16], 64)
        .udp(5000, 53)
        .write(&mut v6, b"query")
        .unwrap();
    v6[14 + 40 + 6] = 0;
    v6[14 + 40 + 7] = 0;
    assert!(decode(&v6, true).unwrap().bad_checksum);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    use etherparse::{IpNumber, Ipv6Header, Ipv6RawExtHeader};
    let udp_payload = b"x";
    let mut udp = Vec::new();
    udp.extend_from_slice(&1234u16.to_be_bytes());
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&9u16.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(udp_payload);
    let hop = Ipv6RawExtHeader::new_raw(IpNumber::IPV6_DESTINATION_OPTIONS, &[0; 6]).unwrap();
    let dst = Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[0; 6]).unwrap();
    let ip = Ipv6Header {
        payload_length: (8 + 8 + udp.len()) as u16,
        next_header: IpNumber::IPV6_HEADER_HOP_BY_HOP,
        hop_limit: 64,
        source: [1; 16],
        destination: [2; 16],
        ..Default::default()
    };
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x86, 0xdd]);
    ip.write(&mut f).unwrap();
    hop.write(&mut f).unwrap();
    dst.write(&mut f).unwrap();
    f.extend_from_slice(&udp);
    let p = decode(&f, false).unwrap();
    assert_eq!(p.ip_proto, 17);
    assert_eq!(p.ip_len, 40 + 16 + 9);
    assert!(matches!(p.l4, L4::Udp(Udp { dst_port: 53, .. })));
}

fn ipv4_fragment(id: u16, offset8: u16, more: bool, payload: &[u8]) -> Vec<u8> {
    let mut h = etherparse::Ipv4Header::new(
        payload.len() as u16,
        64,
        etherparse::IpNumber::UDP,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
    )
    .unwrap();
    h.identification = id;
    h.more_fragments = more;
    h.fragment_offset = etherparse::IpFragOffset::try_new(offset8).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    h.write(&mut f).unwrap();
    f.extend_from_slice(payload);
    f
}

#[test]
fn ipv4_fragments_are_reassembled_into_one_packet() {
    // UDP header (8) + 24 bytes of data, split 16 + 16.
    let mut dgram = vec![0x13, 0x88, 0x00, 0x35, 0x00, 32, 0, 0];
    dgram.extend_from_slice(&[0xab; 24]);
    let first = ipv4_fragment(7, 0, true, &dgram[..16]);
    let second = ipv4_fragment(7, 2, false, &dgram[16..]);
    let mut d = Decoder::new(DecodeConfig::default());
    // Out of order: the second half arrives first.
    assert_eq!(
        d.decode(&raw(&second, second.len())).unwrap_err(),
        Skip::FragmentHeld
    );
    let p = d.decode(&raw(&first, first.len())).unwrap();
    assert_eq!(p.ip_len, 20 + 32);
    assert!(matches!(
        p.l4,
        L4::Udp(Udp {
            src_port: 5000,
            dst_port: 53,
            ulen: 32,
            ..
        })
    ));
    assert_eq!(d.pending_fragments(), 0);
}

#[test]
fn a_truncated_later_fragment_is_dropped() {
    let frag = ipv4_fragment(9, 2, false, &[1u8; 40]);
    let wire = frag.len();
    let cut = &frag[..frag.len() - 10];
    let mut d = Decoder::new(DecodeConfig::default());
    assert_eq!(d.decode(&raw(cut, wire)).unwrap_err(), Skip::BadFragment);
}

#[test]
fn other_ip_protocols_are_unknown_transport_and_tunnels_are_skipped() {
    let mut h = etherparse::Ipv4Header::new(
        4,
        64,
        etherparse::IpNumber(132),
        [10, 0, 0, 1],
        [10, 0, 0, 2],
    )
    .unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    h.write(&mut f).unwrap();
    f.extend_from_slice(&[0; 4]);
    assert!(matches!(decode(&f, true).unwrap().l4, L4::Other));
    f[14 + 9] = 47;
    assert_eq!(decode(&f, false).unwrap_err(), Skip::Tunnel);
}

#[test]
fn window_scale_option_is_read_from_syns() {
    assert_eq!(window_scale(&[2, 4, 5, 0xb4, 1, 3, 3, 7]), Some(7));
    assert_eq!(window_scale(&[1, 1, 0, 3, 3, 9]), None);
    assert_eq!(window_scale(&[3, 0, 3, 3, 2]), None);
}

mod properties {
    //! Decoding arbitrary bytes, or a valid frame with arbitrary damage,
    //! never panics, whatever the link type and checksum setting.

    use super::*;
    use proptest::prelude::*;

    const LINK_TYPES: [u32; 13] = [0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276, 147];

    fn decode_as(linktype: u32, data: &[u8], wire_len: u32, verify: bool) {
        let raw = RawPacket {
            ts: 1,
            linktype,
            wire_len,
            data,
            number: 1,
            input: 0,
        };
        let _ = Decoder::new(DecodeConfig {
            verify_checksums: verify,
        })
        .decode(&raw);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(
            link in 0usize..LINK_TYPES.len(),
            data in proptest::collection::vec(any::<u8>(), 0..200),
            extra in 0u32..3000,
            verify: bool,
        ) {
            decode_as(LINK_TYPES[link], &data, data.len() as u32 + extra, verify);
        }

        #[test]
        fn damaged_frames_never_panic(
            flips in proptest::collection::vec((0usize..80, any::<u8>()), 1..6),
            cut in 0usize..80,
            verify: bool,
        ) {
            let mut f = tcp_frame(b"some payload bytes");
            for (at, v) in flips {
                if at < f.len() {
                    f[at] = v;
                }
            }
            let wire = f.len() as u32;
            f.truncate(cut.max(1).min(f.len()));
            decode_as(link::LINKTYPE_ETHERNET, &f, wire, verify);
        }
    }
}

/// Inputs the fuzzer found (fuzz/README.md), as `[link selector, flags,
/// frame...]` like the `decode` target: an IPv6 chain that made etherparse
/// read out of bounds (routing then hop-by-hop, a bad AH, a bad fragment
/// header) and an IPv4 first fragment with total length 0.
#[test]
fn fuzz_regressions_decode_without_panic() {
    let inputs = [
        "0100000000000002000000000186dd6000000000082b4020010db800000000000000000000000120010db80000000000000000000000020000000000000000",
        "0100aa000400050400101895316a86dd60000000001c2b4020010db80001001b00000000000000000000000000004f4f0045007a182000033300087d000000840000002c00501bc76adf0000000050022000fa870000",
        "654163742d4c000800004c00080000002d4c0043010000e04bdb01cf7a130015000000000000000001002c000800002c2c2c2c2c2c2c2c2c2c2c2c",
        "65416374004e00430001e001db004bcf7a137fbe2c2c2c010000342c2c2c2c2c2c2c2c2c2c2c2c2c2c010000342c2c2c2c40",
        "010000000000000002000000000108004500000012342000401100000a0000010a0000029c400035001000006162636465666768",
        "00000200000045d90000b0182000033700003c3136ee0000000004020000",
    ];
    for hex in inputs {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        // As the fuzz target picks: a supported link type, or 147 (USER0).
        let pick = usize::from(bytes[0]) % (link::SUPPORTED.len() + 1);
        let linktype = link::SUPPORTED.get(pick).copied().unwrap_or(147);
        let frame = &bytes[2..];
        for verify in [false, true] {
            let mut d = Decoder::new(DecodeConfig {
                verify_checksums: verify,
            });
            let raw = RawPacket {
                linktype,
                ..raw(frame, frame.len())
            };
            // Twice: a fragment then meets itself in the reassembly pool.
            let _ = d.decode(&raw);
            let _ = d.decode(&raw);
        }
    }
}

#[test]
fn ipv6_extension_chain_is_walked_to_the_transport() {
    // Hop-by-hop (8 bytes), destination options (16 bytes), then TCP.
    let b = PacketBuilder::ethernet2(MAC, MAC)
        .ipv6([1; 16], [2; 16], 64)
        .tcp(40000, 80, 1000, 65535)
        .syn();
    let mut f = Vec::new();
    b.write(&mut f, b"").unwrap();
    let tcp = f.split_off(14 + 40);
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&[6, 1, 1, 12]);
    ext.extend_from_slice(&[0; 12]);
    f[14 + 6] = 0;
    let plen = (ext.len() + tcp.len()) as u16;
    f[14 + 4..14 + 6].copy_from_slice(&plen.to_be_bytes());
    f.extend_from_slice(&ext);
    f.extend_from_slice(&tcp);
    let p = decode(&f, false).unwrap();
    assert_eq!(p.ip_proto, 6);
    assert_eq!(tcp_of(&p).dst_port, 80);
    assert_eq!(p.ip_len, 40 + u32::from(plen));
    // Cut inside the second extension header: a truncated header, skipped.
    let cut = &f[..14 + 40 + 12];
    let skipped = Decoder::new(DecodeConfig::default())
        .decode(&raw(cut, f.len()))
        .err();
    assert_eq!(skipped, Some(Skip::TruncatedIpHeader));
}

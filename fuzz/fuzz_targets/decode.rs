//! One frame through the decoder.
//!
//! Input: `[link, flags, frame...]`.
//! - `link % 13` picks the link type: the twelve the decoder supports
//!   (src/decode/link.rs) and one it does not (147, LINKTYPE_USER0);
//! - `flags & 1` makes the wire length longer than the captured frame by
//!   `(flags >> 1) * 64` bytes, as under a snaplen; otherwise they are equal.
//!
//! The frame is decoded with and without checksum verification, each time
//! twice by the same decoder (a fragment then meets itself in the
//! reassembly pool). Nothing may panic; a decoded packet must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockscope::decode::link::SUPPORTED;
use sockscope::decode::{DecodeConfig, Decoder, L4, Packet};
use sockscope::source::RawPacket;

fn check(p: &Packet) {
    match p.l4 {
        L4::Tcp(t) => {
            if t.header_ok {
                assert!(t.hdr_len >= 20, "{p:?}");
                assert!(t.captured_len <= t.payload_len, "{p:?}");
            }
            assert_eq!(p.ip_proto, 6, "{p:?}");
        }
        L4::Udp(_) => assert_eq!(p.ip_proto, 17, "{p:?}"),
        L4::Icmp(i) => assert_eq!(p.ip_proto, if i.v6 { 58 } else { 1 }, "{p:?}"),
        L4::Other => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let [link, flags, frame @ ..] = data else {
        return;
    };
    // A supported link type, or one that is not (147, USER0).
    let pick = usize::from(*link) % (SUPPORTED.len() + 1);
    let linktype = SUPPORTED.get(pick).copied().unwrap_or(147);
    let extra = if flags & 1 != 0 {
        u32::from(flags >> 1) * 64
    } else {
        0
    };
    let Ok(len) = u32::try_from(frame.len()) else {
        return;
    };
    for verify in [false, true] {
        let mut decoder = Decoder::new(DecodeConfig {
            verify_checksums: verify,
        });
        for (i, ts) in [1_000_000_000i64, 2_000_000_000].into_iter().enumerate() {
            let raw = RawPacket {
                ts,
                linktype,
                wire_len: len.saturating_add(extra),
                data: frame,
                number: i as u64 + 1,
                input: 0,
            };
            if let Ok(p) = decoder.decode(&raw) {
                check(&p);
                assert_eq!(p.ts, ts);
            }
        }
        let _ = decoder.pending_fragments();
    }
});

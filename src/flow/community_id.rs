//! Community ID v1 (<https://github.com/corelight/community-id-spec>), seed 0.
//!
//! `"1:" + base64(SHA1(seed:u16 | A.addr | B.addr | proto:u8 | 0:u8 | A.port | B.port))`
//! with the endpoints ordered so that A < B, except for one-way ICMP types,
//! which keep the sender first. Ports of ICMP are Zeek's pseudo-ports.

use sha1::{Digest, Sha1};

use crate::decode::Addr;

/// Append the Community ID of a connection, from its two endpoints, to `out`.
pub fn community_id(
    out: &mut String,
    src: Addr,
    sport: u16,
    dst: Addr,
    dport: u16,
    ip_proto: u8,
    directional: bool,
) {
    let (a, ap, b, bp) = if directional || (src.wire(), sport) <= (dst.wire(), dport) {
        (src, sport, dst, dport)
    } else {
        (dst, dport, src, sport)
    };
    // The whole message in one buffer, hashed in one call: at most 2 + 16 +
    // 16 + 2 + 4 bytes, a single SHA-1 block.
    let mut msg = [0u8; 40];
    let mut n = 2; // the seed, 0
    // Ports are always hashed: Zeek passes 0/0 for protocols it has none
    // for, and includes them.
    let (ap, bp) = (ap.to_be_bytes(), bp.to_be_bytes());
    for part in [a.wire(), b.wire(), &[ip_proto, 0], &ap, &bp] {
        msg[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    out.push_str("1:");
    crate::base64::encode(&Sha1::digest(&msg[..n]), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(src: Addr, sport: u16, dst: Addr, dport: u16, proto: u8, directional: bool) -> String {
        let mut out = String::new();
        community_id(&mut out, src, sport, dst, dport, proto, directional);
        out
    }

    fn v4(s: &str) -> Addr {
        let ip: std::net::Ipv4Addr = s.parse().unwrap();
        Addr::v4(ip.octets())
    }

    // Reference values from the Community ID specification's test vectors.
    #[test]
    fn spec_tcp_and_udp() {
        assert_eq!(
            cid(
                v4("128.232.110.120"),
                34855,
                v4("66.35.250.204"),
                80,
                6,
                false
            ),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            cid(
                v4("66.35.250.204"),
                80,
                v4("128.232.110.120"),
                34855,
                6,
                false
            ),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            cid(v4("192.168.1.52"), 54585, v4("8.8.8.8"), 53, 17, false),
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ="
        );
    }
}

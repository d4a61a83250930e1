//! Community ID v1 (https://github.com/corelight/community-id-spec), seed 0.
//!
//! `"1:" + base64(SHA1(seed:u16 | A.addr | B.addr | proto:u8 | 0:u8 | A.port | B.port))`
//! with the endpoints ordered so that A < B, except for one-way ICMP types,
//! which keep the sender first. Ports of ICMP are Zeek's pseudo-ports.

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
    let mut h = sha1_smol::Sha1::new();
    h.update(&0u16.to_be_bytes());
    h.update(a.wire());
    h.update(b.wire());
    h.update(&[ip_proto, 0]);
    // Protocols without ports hash none (SCTP would have them; Zeek passes 0/0
    // for every protocol it does not know, and includes them).
    h.update(&ap.to_be_bytes());
    h.update(&bp.to_be_bytes());
    out.push_str("1:");
    crate::base64::encode(&h.digest().bytes(), out);
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

//! Internet checksum (RFC 1071) over IPv4 headers and TCP/UDP/ICMP segments.

/// Ones-complement sum of `data` folded into `acc` (not yet complemented).
#[inline]
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    acc
}

/// Fold a running sum to 16 bits.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// True if a header that includes its own checksum field sums to all ones.
pub fn ipv4_header_ok(header: &[u8]) -> bool {
    fold(sum(header, 0)) == 0xffff
}

/// Pseudo-header sum for TCP/UDP/ICMPv6 over IPv4 or IPv6 addresses.
pub fn pseudo_header(src: &[u8], dst: &[u8], proto: u8, len: u32) -> u64 {
    let acc = sum(src, 0);
    let acc = sum(dst, acc);
    acc + u64::from(proto) + u64::from(len >> 16) + u64::from(len & 0xffff)
}

/// True if a transport segment (checksum field included) verifies.
pub fn segment_ok(pseudo: u64, segment: &[u8]) -> bool {
    fold(sum(segment, pseudo)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2.
        assert_eq!(
            fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
            0xddf2
        );
    }

    #[test]
    fn ipv4_header_checksum() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(ipv4_header_ok(&h));
        h[11] ^= 1;
        assert!(!ipv4_header_ok(&h));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0xab], 0), 0xab00);
        assert_eq!(fold(sum(&[1, 2, 3, 4, 5], 0)), 0x0102 + 0x0304 + 0x0500);
    }
}

//! Zeek's default `Site::local_nets`: the private and special-purpose address
//! space (`Site::private_address_space`, local because
//! `private_address_space_is_local` is true by default).

use crate::decode::Addr;

const V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),
    ([10, 0, 0, 0], 8),
    ([100, 64, 0, 0], 10),
    ([127, 0, 0, 0], 8),
    ([169, 254, 0, 0], 16),
    ([172, 16, 0, 0], 12),
    ([192, 0, 0, 0], 24),
    ([192, 0, 2, 0], 24),
    ([192, 168, 0, 0], 16),
    ([198, 18, 0, 0], 15),
    ([198, 51, 100, 0], 24),
    ([203, 0, 113, 0], 24),
    ([224, 0, 0, 0], 24),
    ([239, 0, 0, 0], 8),
    ([240, 0, 0, 0], 4),
    ([255, 255, 255, 255], 32),
];

const V6: &[([u8; 16], u8)] = &[
    ([0; 16], 128),
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 128),
    (
        [
            0x00, 0x64, 0xff, 0x9b, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        48,
    ),
    ([0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 64),
    ([0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 23),
    (
        [0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        48,
    ),
    (
        [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        32,
    ),
    ([0xfc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 7),
    ([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 10),
    ([0xfe, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 10),
];

/// Whether the first `bits` of `width`-bit addresses `a` and `net`, as
/// integers, agree: a shift and a compare per block.
fn in_prefix(a: u128, net: u128, bits: u8, width: u32) -> bool {
    (a ^ net).checked_shr(width - u32::from(bits)).unwrap_or(0) == 0
}

fn v4_local(b: [u8; 4]) -> bool {
    let a = u32::from_be_bytes(b).into();
    V4.iter()
        .any(|&(net, bits)| in_prefix(a, u32::from_be_bytes(net).into(), bits, 32))
}

/// Is this address in Zeek's default local networks?
pub fn is_local(a: Addr) -> bool {
    if a.is_v4() {
        return v4_local([a.0[12], a.0[13], a.0[14], a.0[15]]);
    }
    // 6to4 (2002::/16) mirrors of the IPv4 blocks.
    if a.0[0] == 0x20 && a.0[1] == 0x02 && v4_local([a.0[2], a.0[3], a.0[4], a.0[5]]) {
        return true;
    }
    let a = u128::from_be_bytes(a.0);
    V6.iter()
        .any(|&(net, bits)| in_prefix(a, u128::from_be_bytes(net), bits, 128))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Addr {
        match s.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(v) => Addr::v4(v.octets()),
            std::net::IpAddr::V6(v) => Addr(v.octets()),
        }
    }

    #[test]
    fn private_space() {
        for local in [
            "10.1.2.3",
            "192.168.0.1",
            "172.31.255.255",
            "fe80::1",
            "fd00::1",
            "::1",
            "2002:c0a8:1::1",
            "255.255.255.255",
        ] {
            assert!(is_local(a(local)), "{local}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "2607:f8b0::1",
            "141.42.64.125",
            "2002:808:808::1",
        ] {
            assert!(!is_local(a(public)), "{public}");
        }
    }
}

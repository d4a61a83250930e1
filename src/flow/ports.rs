//! Zeek's `likely_server_ports` as filled by its default scripts: the ports
//! every protocol analyzer registers as server ports (Zeek 9, no `-b`). They
//! decide who is the originator when a connection starts without a clean SYN.

const TCP: &[u16] = &[
    21, 22, 25, 53, 79, 80, 81, 88, 135, 139, 143, 389, 443, 445, 465, 502, 514, 563, 585, 587,
    614, 631, 636, 989, 990, 992, 993, 995, 1080, 1434, 1883, 2811, 3128, 3268, 3306, 3389, 5222,
    5223, 5269, 5432, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
];

const UDP: &[u16] = &[
    53, 67, 88, 123, 137, 161, 162, 389, 443, 514, 1812, 2123, 2152, 3389, 3544, 4011, 4789, 5060,
    5072, 5353, 5355, 6081, 20000,
];

pub fn likely_tcp_server(port: u16) -> bool {
    TCP.binary_search(&port).is_ok()
}

pub fn likely_udp_server(port: u16) -> bool {
    UDP.binary_search(&port).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_for_binary_search() {
        assert!(TCP.windows(2).all(|w| w[0] < w[1]));
        assert!(UDP.windows(2).all(|w| w[0] < w[1]));
        assert!(likely_tcp_server(443) && likely_udp_server(53));
        assert!(!likely_tcp_server(8443) && !likely_udp_server(853));
    }
}

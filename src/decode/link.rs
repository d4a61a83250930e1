//! Link layers, parsed by hand down to the network-layer protocol.
//!
//! Supported: Ethernet with 802.1Q/802.1ad/QinQ tags at any depth, MPLS label
//! stacks and PPPoE sessions inside it; Linux cooked capture v1 (SLL) and v2
//! (SLL2); raw IP (DLT_RAW 12/14, LINKTYPE_RAW 101, LINKTYPE_IPV4/IPV6);
//! BSD NULL and LOOP; PPP (with or without HDLC address/control bytes).
//! Everything else is a [`Skip`] reason, counted by the caller.

use super::Skip;

pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_PPP: u32 = 9;
/// DLT_RAW as libpcap reports it on most platforms, and OpenBSD's value.
pub const DLT_RAW_12: u32 = 12;
pub const DLT_RAW_14: u32 = 14;
pub const LINKTYPE_PPP_HDLC: u32 = 50;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Every link type [`network`] reads.
pub const SUPPORTED: [u32; 12] = [
    LINKTYPE_NULL,
    LINKTYPE_ETHERNET,
    LINKTYPE_PPP,
    DLT_RAW_12,
    DLT_RAW_14,
    LINKTYPE_PPP_HDLC,
    LINKTYPE_RAW,
    LINKTYPE_LOOP,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL2,
];

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_ARP: u16 = 0x0806;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// The network layer found inside a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    /// Offset of the IP header in the frame.
    pub offset: usize,
    pub version: IpVersion,
    /// Outer and inner 802.1Q VLAN ids, if tagged (an id of 0 is a tag too).
    pub vlan: Option<u16>,
    pub inner_vlan: Option<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
    /// Raw-IP link types: decided by the version nibble.
    Sniff,
}

#[inline]
fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

/// Find the IP header in a frame of the given link type. Ethernet straight
/// to IPv4 or IPv6, nearly every frame of a capture, is decided here, in
/// the decoder's own code; every other case is a call.
#[inline(always)]
pub fn network(linktype: u32, frame: &[u8]) -> Result<Network, Skip> {
    if linktype == LINKTYPE_ETHERNET {
        if let Some(version) = be16(frame, 12).and_then(ip_version) {
            return Ok(Network {
                version,
                ..Network::at(14)
            });
        }
    }
    any_network(linktype, frame)
}

/// The IP version an ethertype carries, if it carries IP.
#[inline(always)]
fn ip_version(ethertype: u16) -> Option<IpVersion> {
    match ethertype {
        ETHERTYPE_IPV4 => Some(IpVersion::V4),
        ETHERTYPE_IPV6 => Some(IpVersion::V6),
        _ => None,
    }
}

#[inline(never)]
fn any_network(linktype: u32, frame: &[u8]) -> Result<Network, Skip> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let ethertype = be16(frame, 12).ok_or(Skip::TruncatedLink)?;
            ether_payload(frame, 14, ethertype, Network::at(0))
        }
        LINKTYPE_LINUX_SLL => {
            let proto = be16(frame, 14).ok_or(Skip::TruncatedLink)?;
            if frame.len() < 16 {
                return Err(Skip::TruncatedLink);
            }
            ether_payload(frame, 16, proto, Network::at(0))
        }
        LINKTYPE_LINUX_SLL2 => {
            let proto = be16(frame, 0).ok_or(Skip::TruncatedLink)?;
            if frame.len() < 20 {
                return Err(Skip::TruncatedLink);
            }
            ether_payload(frame, 20, proto, Network::at(0))
        }
        DLT_RAW_12 | DLT_RAW_14 | LINKTYPE_RAW => Ok(Network::at(0)),
        LINKTYPE_IPV4 => Ok(Network {
            version: IpVersion::V4,
            ..Network::at(0)
        }),
        LINKTYPE_IPV6 => Ok(Network {
            version: IpVersion::V6,
            ..Network::at(0)
        }),
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            if frame.len() < 4 {
                return Err(Skip::TruncatedLink);
            }
            // NULL stores the address family in the writer's byte order, LOOP
            // in network order; the values are small, so accept either order.
            let le = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let be = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let family = if le < 256 { le } else { be };
            match family {
                2 => Ok(Network {
                    version: IpVersion::V4,
                    ..Network::at(4)
                }),
                // AF_INET6 differs by system: BSD 24, FreeBSD 28, Darwin 30, Linux 10.
                10 | 24 | 28 | 30 => Ok(Network {
                    version: IpVersion::V6,
                    ..Network::at(4)
                }),
                _ => Err(Skip::NonIp),
            }
        }
        LINKTYPE_PPP | LINKTYPE_PPP_HDLC => {
            let start = if frame.starts_with(&[0xff, 0x03]) {
                2
            } else {
                0
            };
            let proto = be16(frame, start).ok_or(Skip::TruncatedLink)?;
            ppp_payload(proto, start + 2, Network::at(0))
        }
        _ => Err(Skip::UnknownLinkType),
    }
}

impl Network {
    fn at(offset: usize) -> Network {
        Network {
            offset,
            version: IpVersion::Sniff,
            vlan: None,
            inner_vlan: None,
        }
    }
}

/// Follow an ethertype chain starting at `offset` (VLAN tags, MPLS, PPPoE).
fn ether_payload(
    frame: &[u8],
    mut offset: usize,
    mut ethertype: u16,
    mut net: Network,
) -> Result<Network, Skip> {
    loop {
        if let Some(version) = ip_version(ethertype) {
            net.offset = offset;
            net.version = version;
            return Ok(net);
        }
        match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                let tci = be16(frame, offset).ok_or(Skip::TruncatedLink)?;
                ethertype = be16(frame, offset + 2).ok_or(Skip::TruncatedLink)?;
                let id = tci & 0x0fff;
                // The outermost tag is `vlan`, the next one `inner_vlan`; a
                // third overwrites the inner one (as Zeek logs them).
                if net.vlan.is_none() {
                    net.vlan = Some(id);
                } else {
                    net.inner_vlan = Some(id);
                }
                offset += 4;
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
                // Pop labels until bottom-of-stack, then sniff the IP version.
                loop {
                    let entry = frame.get(offset..offset + 4).ok_or(Skip::TruncatedLink)?;
                    offset += 4;
                    if entry[2] & 0x01 != 0 {
                        break;
                    }
                }
                net.offset = offset;
                net.version = IpVersion::Sniff;
                return Ok(net);
            }
            ETHERTYPE_PPPOE_SESSION => {
                let proto = be16(frame, offset + 6).ok_or(Skip::TruncatedLink)?;
                return ppp_payload(proto, offset + 8, net);
            }
            ETHERTYPE_ARP => return Err(Skip::NonIp),
            t if t < 0x0600 => return Err(Skip::NonIp),
            _ => return Err(Skip::UnknownEthertype),
        }
    }
}

fn ppp_payload(proto: u16, offset: usize, mut net: Network) -> Result<Network, Skip> {
    net.offset = offset;
    net.version = match proto {
        PPP_IPV4 => IpVersion::V4,
        PPP_IPV6 => IpVersion::V6,
        _ => return Err(Skip::NonIp),
    };
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ether(ethertype: u16, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(rest);
        f
    }

    #[test]
    fn ethernet_ipv4() {
        let n = network(LINKTYPE_ETHERNET, &ether(0x0800, &[0x45])).unwrap();
        assert_eq!((n.offset, n.version), (14, IpVersion::V4));
    }

    #[test]
    fn qinq_records_outer_and_inner_vlan() {
        let mut rest = vec![0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x86, 0xdd];
        rest.push(0x60);
        let n = network(LINKTYPE_ETHERNET, &ether(0x88a8, &rest)).unwrap();
        assert_eq!(
            (n.offset, n.version, n.vlan, n.inner_vlan),
            (22, IpVersion::V6, Some(10), Some(20))
        );
    }

    #[test]
    fn mpls_stack_is_popped() {
        // two labels, the second with bottom-of-stack set
        let rest = [0, 0, 0x10, 64, 0, 0, 0x11, 64, 0x45];
        let n = network(LINKTYPE_ETHERNET, &ether(0x8847, &rest)).unwrap();
        assert_eq!((n.offset, n.version), (22, IpVersion::Sniff));
    }

    #[test]
    fn pppoe_session_ipv6() {
        let rest = [0x11, 0, 0x12, 0x34, 0, 40, 0x00, 0x57, 0x60];
        let n = network(LINKTYPE_ETHERNET, &ether(0x8864, &rest)).unwrap();
        assert_eq!((n.offset, n.version), (22, IpVersion::V6));
    }

    #[test]
    fn linux_sll_and_sll2() {
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00, 0x45]);
        assert_eq!(network(LINKTYPE_LINUX_SLL, &sll).unwrap().offset, 16);
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.push(0x60);
        let n = network(LINKTYPE_LINUX_SLL2, &sll2).unwrap();
        assert_eq!((n.offset, n.version), (20, IpVersion::V6));
    }

    #[test]
    fn null_and_loop_families() {
        assert_eq!(
            network(LINKTYPE_NULL, &[2, 0, 0, 0, 0x45]).unwrap().version,
            IpVersion::V4
        );
        assert_eq!(
            network(LINKTYPE_LOOP, &[0, 0, 0, 30, 0x60])
                .unwrap()
                .version,
            IpVersion::V6
        );
        assert_eq!(network(LINKTYPE_NULL, &[7, 0, 0, 0]), Err(Skip::NonIp));
    }

    #[test]
    fn ppp_with_and_without_hdlc_framing() {
        assert_eq!(
            network(LINKTYPE_PPP, &[0xff, 0x03, 0x00, 0x21, 0x45])
                .unwrap()
                .offset,
            4
        );
        assert_eq!(
            network(LINKTYPE_PPP, &[0x00, 0x57, 0x60]).unwrap().version,
            IpVersion::V6
        );
    }

    #[test]
    fn raw_ip_link_types_sniff() {
        for lt in [DLT_RAW_12, DLT_RAW_14, LINKTYPE_RAW] {
            assert_eq!(network(lt, &[0x45]).unwrap().version, IpVersion::Sniff);
        }
        assert_eq!(
            network(LINKTYPE_IPV6, &[0x60]).unwrap().version,
            IpVersion::V6
        );
    }

    #[test]
    fn unknown_and_truncated() {
        assert_eq!(network(147, &[0; 40]), Err(Skip::UnknownLinkType));
        assert_eq!(
            network(LINKTYPE_ETHERNET, &[0; 10]),
            Err(Skip::TruncatedLink)
        );
        assert_eq!(
            network(LINKTYPE_ETHERNET, &ether(0x88cc, &[])),
            Err(Skip::UnknownEthertype)
        );
        assert_eq!(
            network(LINKTYPE_ETHERNET, &ether(0x0806, &[])),
            Err(Skip::NonIp)
        );
    }
}

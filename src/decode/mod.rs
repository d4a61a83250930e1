//! Decoding: a raw frame becomes a small, copyable [`Packet`] summary.
//!
//! Rules of this layer:
//! - link layers are parsed by hand ([`link`]), IP and transport headers with
//!   etherparse's lax slicing, so a payload cut by the snaplen still yields
//!   its headers;
//! - acceptance follows Zeek: a packet Zeek would drop before connection
//!   lookup (bad IPv4 header checksum when verifying, IP length larger than
//!   the wire, zero IP length under verification, ...) is a [`Skip`], counted
//!   by reason and never silently lost;
//! - a bad TCP/UDP/ICMP checksum does not drop the packet here: Zeek still
//!   creates the connection and records `C`/`c`, so the flag travels on;
//! - nothing allocates per packet, except fragment reassembly (`frag`).

pub mod checksum;
mod frag;
pub mod link;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, LaxIpSlice};

use crate::source::{Nanos, RawPacket};
use link::IpVersion;

/// An IP address; IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`), as Zeek does.
/// Aligned so copies and comparisons are two word moves, not unaligned bytes
/// (which stalled store forwarding in the decoder).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(align(8))]
pub struct Addr(pub [u8; 16]);

impl Addr {
    pub fn v4(b: [u8; 4]) -> Addr {
        // Built in a register: byte stores followed by a 16-byte copy stall
        // store forwarding on the per-packet path.
        let mapped = (0xffff_u128 << 32) | u128::from(u32::from_be_bytes(b));
        Addr(mapped.to_be_bytes())
    }

    pub fn is_v4(&self) -> bool {
        self.0[..10] == [0; 10] && self.0[10] == 0xff && self.0[11] == 0xff
    }

    /// The bytes as they appear on the wire (4 for IPv4, 16 for IPv6).
    pub fn wire(&self) -> &[u8] {
        if self.is_v4() { &self.0[12..] } else { &self.0 }
    }

    pub fn to_std(self) -> std::net::IpAddr {
        if self.is_v4() {
            std::net::IpAddr::V4(Ipv4Addr::new(
                self.0[12], self.0[13], self.0[14], self.0[15],
            ))
        } else {
            std::net::IpAddr::V6(Ipv6Addr::from(self.0))
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_std(), f)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;

/// The decoded summary of one packet: everything the flow table needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Packet {
    pub ts: Nanos,
    pub src: Addr,
    pub dst: Addr,
    pub ip_proto: u8,
    /// IP total length from the header (IPv6: payload length + 40), the
    /// figure Zeek sums into `*_ip_bytes`.
    pub ip_len: u32,
    pub vlan: Option<u16>,
    pub inner_vlan: Option<u16>,
    pub l4: L4,
    /// The transport checksum was verified and is wrong.
    pub bad_checksum: bool,
    /// Packet number in its input file and the input's index (for messages).
    pub number: u64,
    pub input: usize,
}

#[derive(Clone, Copy, Debug, Default)]
pub enum L4 {
    Tcp(Tcp),
    Udp(Udp),
    Icmp(Icmp),
    /// Any other IP protocol: logged as `unknown_transport` with ports 0.
    #[default]
    Other,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Payload length according to the IP header.
    pub payload_len: u32,
    /// Payload bytes actually captured (less than `payload_len` under a snaplen).
    pub captured_len: u32,
    /// Window-scale option of a SYN, if present.
    pub window_scale: Option<u8>,
    /// TCP header length from the data offset field.
    pub hdr_len: u8,
    /// False when the header is unusable (bad data offset, cut by the
    /// snaplen): Zeek creates the connection but skips the packet.
    pub header_ok: bool,
}

impl Tcp {
    #[inline]
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Udp {
    pub src_port: u16,
    pub dst_port: u16,
    /// The UDP length field (header included), as sent.
    pub ulen: u16,
    /// Payload bytes captured (what an application analyzer would see).
    pub captured: u16,
    /// The first payload bytes (NTP mode, DNS flags), zero-padded.
    pub head: [u8; 4],
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Icmp {
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    /// IP payload length minus the 8-byte ICMP header.
    pub payload_len: u32,
    /// The whole message was captured (Zeek counts packets only then).
    pub complete: bool,
}

/// Why a frame produced no packet for the flow table. Counted per reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    UnknownLinkType,
    TruncatedLink,
    UnknownEthertype,
    /// ARP, LLC, other non-IP network protocols.
    NonIp,
    TruncatedIpHeader,
    BadIpHeader,
    BadIpChecksum,
    /// IPv4 total length 0 (segmentation offload) while verifying checksums.
    IpLenZero,
    /// The IP header claims more bytes than were on the wire.
    IpLenExceedsWire,
    TruncatedTransportHeader,
    /// A fragment held until its datagram is complete (not a loss).
    FragmentHeld,
    /// A fragment that cannot be reassembled (overlap past limits, too big).
    BadFragment,
    /// Dropped by the `--filter` BPF program.
    Filtered,
    /// IPv6 ESP or "no next header": nothing to key a connection on.
    NoTransport,
    /// IP-in-IP or GRE, which are not decapsulated.
    Tunnel,
}

impl Skip {
    pub const ALL: [Skip; 15] = [
        Skip::UnknownLinkType,
        Skip::TruncatedLink,
        Skip::UnknownEthertype,
        Skip::NonIp,
        Skip::TruncatedIpHeader,
        Skip::BadIpHeader,
        Skip::BadIpChecksum,
        Skip::IpLenZero,
        Skip::IpLenExceedsWire,
        Skip::TruncatedTransportHeader,
        Skip::FragmentHeld,
        Skip::BadFragment,
        Skip::Filtered,
        Skip::NoTransport,
        Skip::Tunnel,
    ];

    /// Stable snake_case name used in summary.json.
    pub fn name(self) -> &'static str {
        match self {
            Skip::UnknownLinkType => "unknown_link_type",
            Skip::TruncatedLink => "truncated_link_header",
            Skip::UnknownEthertype => "unknown_ethertype",
            Skip::NonIp => "non_ip",
            Skip::TruncatedIpHeader => "truncated_ip_header",
            Skip::BadIpHeader => "bad_ip_header",
            Skip::BadIpChecksum => "bad_ip_checksum",
            Skip::IpLenZero => "ip_len_zero",
            Skip::IpLenExceedsWire => "ip_len_exceeds_wire",
            Skip::TruncatedTransportHeader => "truncated_transport_header",
            Skip::FragmentHeld => "fragment_held",
            Skip::BadFragment => "bad_fragment",
            Skip::Filtered => "filtered",
            Skip::NoTransport => "no_transport",
            Skip::Tunnel => "tunnel_not_decapsulated",
        }
    }

    /// Whether the frame counts as malformed (as opposed to simply not IP,
    /// filtered, or a fragment waiting for its datagram).
    pub fn is_malformed(self) -> bool {
        !matches!(
            self,
            Skip::NonIp
                | Skip::UnknownEthertype
                | Skip::UnknownLinkType
                | Skip::FragmentHeld
                | Skip::Filtered
                | Skip::NoTransport
                | Skip::Tunnel
        )
    }
}

/// Decoder settings, fixed for a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeConfig {
    /// Verify IP/TCP/UDP/ICMP checksums like Zeek without `-C`.
    pub verify_checksums: bool,
}

/// The IP layer of a frame, as far as the decoder needs it.
struct IpLayer<'a> {
    src: Addr,
    dst: Addr,
    proto: u8,
    v6: bool,
    ip_len: u32,
    /// Transport bytes captured (cut to the IP length; trailers dropped).
    payload: &'a [u8],
    /// Transport length according to the IP header.
    payload_len: u32,
    fragment: frag::Kind,
}

/// Stateful decoder (the state is the fragment reassembly pool).
pub struct Decoder {
    config: DecodeConfig,
    frags: frag::Pool,
}

impl Decoder {
    pub fn new(config: DecodeConfig) -> Decoder {
        Decoder {
            config,
            frags: frag::Pool::default(),
        }
    }

    /// Decode one frame.
    pub fn decode(&mut self, raw: &RawPacket<'_>) -> Result<Packet, Skip> {
        let mut packet = Packet::default();
        self.decode_into(raw, &mut packet).map(|()| packet)
    }

    /// Decode one frame into `out`, where it will be used: a `Packet`
    /// built and then moved is read back in wide loads from its fields'
    /// narrow stores, which stalls on store forwarding (43% of `decode`'s
    /// own samples on bench_1g). `out` is unspecified after an `Err`.
    pub fn decode_into(&mut self, raw: &RawPacket<'_>, out: &mut Packet) -> Result<(), Skip> {
        let net = link::network(raw.linktype, raw.data)?;
        let bytes = raw.data.get(net.offset..).ok_or(Skip::TruncatedLink)?;
        let wire = (raw.wire_len as usize).saturating_sub(net.offset);
        let frame_complete = raw.data.len() >= raw.wire_len as usize;
        let verify = self.config.verify_checksums;
        let ip = ip_layer(bytes, net.version, wire, verify)?;
        match ip.proto {
            // IPv6 ESP and "no next header" carry nothing Zeek turns into a connection.
            50 | 59 if ip.v6 => return Err(Skip::NoTransport),
            // IP-in-IP and GRE are tunnels: Zeek never logs the outer packet.
            4 | 41 | 47 => return Err(Skip::Tunnel),
            _ => {}
        }
        *out = Packet {
            ts: raw.ts,
            src: ip.src,
            dst: ip.dst,
            ip_proto: ip.proto,
            ip_len: ip.ip_len,
            vlan: net.vlan,
            inner_vlan: net.inner_vlan,
            l4: L4::Other,
            bad_checksum: false,
            number: raw.number,
            input: raw.input,
        };
        let fragment = match ip.fragment {
            frag::Kind::Whole => None,
            frag::Kind::Atomic => {
                // Zeek "reassembles" an atomic fragment and drops its header.
                out.ip_len -= 8;
                None
            }
            frag::Kind::Part(f) if (ip.payload.len() as u32) < ip.payload_len => {
                // An incompletely captured fragment: the first one is analysed
                // alone (header-only traces), later ones are useless.
                if f.offset() != 0 {
                    return Err(Skip::BadFragment);
                }
                None
            }
            frag::Kind::Part(f) => Some(f),
        };
        match fragment {
            None => transport(
                out,
                ip.v6,
                ip.payload,
                ip.payload_len,
                verify,
                frame_complete,
            ),
            Some(f) => {
                let whole = self.frags.add(raw.ts, &ip, f)?;
                out.ip_len = whole.ip_len;
                let len = whole.payload.len() as u32;
                transport(out, ip.v6, whole.payload, len, verify, true)
            }
        }
    }

    /// Datagrams still waiting for fragments.
    pub fn pending_fragments(&self) -> usize {
        self.frags.pending()
    }
}

fn ip_layer(
    bytes: &[u8],
    version: IpVersion,
    wire: usize,
    verify: bool,
) -> Result<IpLayer<'_>, Skip> {
    let nibble = bytes
        .first()
        .map(|b| b >> 4)
        .ok_or(Skip::TruncatedIpHeader)?;
    let want = match version {
        IpVersion::V4 => 4,
        IpVersion::V6 => 6,
        IpVersion::Sniff => nibble,
    };
    if nibble != want || !(want == 4 || want == 6) {
        return Err(Skip::BadIpHeader);
    }
    if want == 4 {
        ipv4_layer(bytes, wire, verify)
    } else {
        ipv6_layer(bytes, wire)
    }
}

fn ipv4_layer(bytes: &[u8], wire: usize, verify: bool) -> Result<IpLayer<'_>, Skip> {
    if bytes.len() < 20 {
        return Err(Skip::TruncatedIpHeader);
    }
    let ihl = usize::from(bytes[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(Skip::BadIpHeader);
    }
    if bytes.len() < ihl {
        return Err(Skip::TruncatedIpHeader);
    }
    let field = u16::from_be_bytes([bytes[2], bytes[3]]);
    let mut total = usize::from(field);
    if total == 0 {
        // Segmentation offload zeroes the length; Zeek drops such packets
        // when it verifies checksums and otherwise uses the captured length.
        if verify {
            return Err(Skip::IpLenZero);
        }
        total = bytes.len();
    }
    if total > wire {
        return Err(Skip::IpLenExceedsWire);
    }
    if ihl > total {
        return Err(Skip::BadIpHeader);
    }
    if verify && !checksum::ipv4_header_ok(&bytes[..ihl]) {
        return Err(Skip::BadIpChecksum);
    }
    let header: &[u8; 20] = bytes[..20]
        .try_into()
        .map_err(|_| Skip::TruncatedIpHeader)?;
    let src = Addr::v4([header[12], header[13], header[14], header[15]]);
    let dst = Addr::v4([header[16], header[17], header[18], header[19]]);
    let proto = header[9];
    let fragment = frag::Kind::of_ipv4(header);
    let captured = &bytes[..total.min(bytes.len())];
    // An authentication header sits between IP and transport; etherparse
    // steps over it. Everything else starts right after the IP header.
    let (proto, payload) = if proto == IpNumber::AUTHENTICATION_HEADER.0 {
        let (slice, _) = LaxIpSlice::from_slice(captured).map_err(|_| Skip::BadIpHeader)?;
        let LaxIpSlice::Ipv4(v4) = slice else {
            return Err(Skip::BadIpHeader);
        };
        let p = v4.payload();
        (p.ip_number.0, p.payload)
    } else {
        (proto, captured.get(ihl..).unwrap_or(&[]))
    };
    let start = payload.as_ptr() as usize - bytes.as_ptr() as usize;
    Ok(IpLayer {
        src,
        dst,
        proto,
        v6: false,
        // Zeek sums the header's length field (0 under segmentation offload).
        ip_len: u32::from(field),
        payload,
        payload_len: (total - start) as u32,
        fragment,
    })
}

/// The IPv6 header and its extension headers, walked by hand with bounds
/// checks (etherparse 0.21 reads out of bounds on some malformed chains)
/// to the transport and any fragment header. Lengths: hop-by-hop, routing,
/// destination options, mobility, HIP and shim6 in 8-octet units after the
/// first 8, authentication in 4-octet units after the first 8, fragment 8.
fn ipv6_layer(bytes: &[u8], wire: usize) -> Result<IpLayer<'_>, Skip> {
    if bytes.len() < 40 {
        return Err(Skip::TruncatedIpHeader);
    }
    let total = 40 + usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    if total > wire {
        return Err(Skip::IpLenExceedsWire);
    }
    let captured = &bytes[..total.min(bytes.len())];
    // Past the IP length the header is malformed; past the captured bytes
    // only cut by the snap length.
    let past = |end: usize| {
        if end > total {
            Skip::BadIpHeader
        } else {
            Skip::TruncatedIpHeader
        }
    };
    let (mut next, mut at, mut fragment) = (bytes[6], 40, frag::Kind::Whole);
    loop {
        let units = || {
            captured
                .get(at + 1)
                .map(|b| usize::from(*b))
                .ok_or(past(at + 2))
        };
        let len = match next {
            0 | 43 | 60 | 135 | 139 | 140 => 8 * (1 + units()?),
            44 => 8,
            51 => 4 * (2 + units()?),
            _ => break,
        };
        let header = captured.get(at..at + len).ok_or(past(at + len))?;
        let is_fragment = next == 44;
        next = header[0];
        at += len;
        if is_fragment {
            fragment = frag::Kind::of_ipv6(header);
            // What follows a later fragment is data, not headers.
            if matches!(fragment, frag::Kind::Part(f) if f.offset() != 0) {
                break;
            }
        }
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&bytes[8..24]);
    dst.copy_from_slice(&bytes[24..40]);
    Ok(IpLayer {
        src: Addr(src),
        dst: Addr(dst),
        proto: next,
        v6: true,
        ip_len: total as u32,
        payload: &captured[at..],
        payload_len: (total - at) as u32,
        fragment,
    })
}

/// Parse the transport header of a (possibly reassembled) IP payload of
/// `len` bytes (per the IP header), of which `data` was captured. Checksums
/// are verified only where Zeek verifies them: when the segment (UDP: the
/// whole frame) was captured completely.
fn transport(
    p: &mut Packet,
    v6: bool,
    data: &[u8],
    len: u32,
    verify: bool,
    frame_complete: bool,
) -> Result<(), Skip> {
    let complete = data.len() as u32 >= len;
    let sum_ok = |p: &Packet| {
        let pseudo = checksum::pseudo_header(p.src.wire(), p.dst.wire(), p.ip_proto, len);
        checksum::segment_ok(pseudo, &data[..len as usize])
    };
    match IpNumber(p.ip_proto) {
        IpNumber::TCP => {
            // Zeek needs the 20-byte base header both by length and captured.
            if len < 20 || data.len() < 20 {
                return Err(Skip::TruncatedTransportHeader);
            }
            let hdr_len = u32::from(data[12] >> 4) * 4;
            let header_ok = hdr_len >= 20 && hdr_len <= len && hdr_len as usize <= data.len();
            let flags = data[13];
            let (mut payload_len, mut captured_len, mut scale) = (0, 0, None);
            if header_ok {
                payload_len = len - hdr_len;
                captured_len = (data.len() as u32 - hdr_len).min(payload_len);
                if flags & TCP_SYN != 0 {
                    scale = window_scale(&data[20..hdr_len as usize]);
                }
                if verify && complete {
                    p.bad_checksum = !sum_ok(p);
                }
            }
            // One literal, written in place (see `decode_into`).
            p.l4 = L4::Tcp(Tcp {
                src_port: u16::from_be_bytes([data[0], data[1]]),
                dst_port: u16::from_be_bytes([data[2], data[3]]),
                seq: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
                ack: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
                flags,
                window: u16::from_be_bytes([data[14], data[15]]),
                payload_len,
                captured_len,
                window_scale: scale,
                hdr_len: hdr_len as u8,
                header_ok,
            });
        }
        IpNumber::UDP => {
            if len < 8 || data.len() < 8 {
                return Err(Skip::TruncatedTransportHeader);
            }
            let sum = u16::from_be_bytes([data[6], data[7]]);
            let payload = &data[8..data.len().min(len as usize)];
            let mut head = [0u8; 4];
            let n = payload.len().min(4);
            head[..n].copy_from_slice(&payload[..n]);
            let udp = Udp {
                src_port: u16::from_be_bytes([data[0], data[1]]),
                dst_port: u16::from_be_bytes([data[2], data[3]]),
                ulen: u16::from_be_bytes([data[4], data[5]]),
                captured: payload.len().min(usize::from(u16::MAX)) as u16,
                head,
            };
            // IPv4 may omit the checksum (zero); IPv6 may not, except VXLAN.
            let vxlan =
                udp.dst_port == 4789 && len > 30 && data.get(8).is_some_and(|b| b & 0x08 != 0);
            let present = sum != 0 || (v6 && !vxlan);
            if verify && complete && frame_complete && present {
                p.bad_checksum = !sum_ok(p);
            }
            p.l4 = L4::Udp(udp);
        }
        IpNumber::ICMP | IpNumber::IPV6_ICMP => {
            if len < 8 || data.len() < 8 {
                return Err(Skip::TruncatedTransportHeader);
            }
            let is_v6 = p.ip_proto == IpNumber::IPV6_ICMP.0;
            p.l4 = L4::Icmp(Icmp {
                v6: is_v6,
                icmp_type: data[0],
                code: data[1],
                payload_len: len - 8,
                complete,
            });
            if verify && complete {
                p.bad_checksum = if is_v6 {
                    !sum_ok(p)
                } else {
                    !checksum::segment_ok(0, &data[..len as usize])
                };
            }
        }
        _ => p.l4 = L4::Other,
    }
    Ok(())
}

/// The window-scale option (kind 3) among SYN options, parsed like Zeek.
fn window_scale(mut opts: &[u8]) -> Option<u8> {
    let mut scale = None;
    while let Some(&kind) = opts.first() {
        match kind {
            0 => break,
            1 => opts = &opts[1..],
            _ => {
                let Some(&len) = opts.get(1) else { break };
                let len = usize::from(len);
                if len == 0 || len > opts.len() {
                    break;
                }
                if kind == 3 && len >= 3 {
                    scale = Some(opts[2]);
                }
                opts = &opts[len..];
            }
        }
    }
    scale
}

#[cfg(test)]
mod tests;

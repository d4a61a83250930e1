//! The record a finished connection leaves behind: everything the writers
//! and reports need, flattened, with no references into the flow table.

use crate::decode::Addr;
use crate::source::Nanos;

use super::history::History;

/// Transport as logged in conn.log's `proto`; `as u8` is the position in
/// [`Proto::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Unknown,
}

impl Proto {
    pub const ALL: [Proto; 4] = [Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Unknown];

    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Unknown => "unknown_transport",
        }
    }
}

/// Zeek's conn_state; `as u8` is the position in [`ConnState::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ConnState {
    S0,
    S1,
    SF,
    REJ,
    S2,
    S3,
    RSTO,
    RSTR,
    RSTOS0,
    RSTRH,
    SH,
    SHR,
    OTH,
}

impl ConnState {
    pub const ALL: [ConnState; 13] = [
        ConnState::S0,
        ConnState::S1,
        ConnState::SF,
        ConnState::REJ,
        ConnState::S2,
        ConnState::S3,
        ConnState::RSTO,
        ConnState::RSTR,
        ConnState::RSTOS0,
        ConnState::RSTRH,
        ConnState::SH,
        ConnState::SHR,
        ConnState::OTH,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }

    /// Connection attempts that never got service (unanswered or refused).
    pub fn failed(self) -> bool {
        matches!(
            self,
            ConnState::S0 | ConnState::REJ | ConnState::RSTOS0 | ConnState::SH
        )
    }
}

/// Why a connection left the table; `as u8` is the position in
/// [`CloseReason::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum CloseReason {
    /// Both sides closed with FIN.
    Fin,
    /// The originator reset it.
    RstOrig,
    /// The responder reset (or refused) it.
    RstResp,
    /// Idle past its inactivity timeout (or an unanswered SYN's attempt timeout).
    Timeout,
    /// Pushed out by `--max-flows` to make room.
    Evicted,
    /// Still open when the capture ended.
    CaptureEnd,
}

impl CloseReason {
    pub const ALL: [CloseReason; 6] = [
        CloseReason::Fin,
        CloseReason::RstOrig,
        CloseReason::RstResp,
        CloseReason::Timeout,
        CloseReason::Evicted,
        CloseReason::CaptureEnd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CloseReason::Fin => "fin",
            CloseReason::RstOrig => "rst_orig",
            CloseReason::RstResp => "rst_resp",
            CloseReason::Timeout => "timeout",
            CloseReason::Evicted => "evicted",
            CloseReason::CaptureEnd => "capture_end",
        }
    }
}

/// Which side did something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Orig,
    Resp,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Orig => "orig",
            Side::Resp => "resp",
        }
    }
}

/// One finished connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnRecord {
    /// 96-bit identifier, deterministic for a given capture.
    pub uid: u128,
    pub start: Nanos,
    /// `last_time - start`, Zeek's duration (TCP stops advancing once both
    /// sides closed).
    pub duration: Nanos,
    pub orig: Addr,
    pub orig_port: u16,
    pub resp: Addr,
    pub resp_port: u16,
    pub proto: Proto,
    pub ip_proto: u8,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub state: ConnState,
    pub missed_bytes: u64,
    pub history: History,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    /// VLAN tags of the packet that created the connection.
    pub vlan: Option<u16>,
    pub inner_vlan: Option<u16>,
    /// One-way ICMP keys keep their direction (for the Community ID).
    pub directional: bool,
    pub lifecycle: Lifecycle,
    pub close_reason: CloseReason,
}

/// Lifecycle timestamps and counters beyond conn.log (TCP mostly).
#[derive(Clone, Copy, Debug, Default)]
pub struct Lifecycle {
    pub first_syn: Option<Nanos>,
    pub syn_ack: Option<Nanos>,
    pub established: Option<Nanos>,
    pub first_fin: Option<(Nanos, Side)>,
    pub first_rst: Option<(Nanos, Side)>,
    /// Timestamp of the last packet of either side (any packet, unlike duration).
    pub last_packet: Nanos,
    pub retransmits: u32,
    pub out_of_order: u32,
    pub zero_windows: u32,
    /// The first packet seen was not a SYN: picked up mid-stream.
    pub midstream: bool,
}

impl ConnRecord {
    /// Handshake round trip: SYN to the ACK that completed the handshake.
    pub fn handshake_rtt(&self) -> Option<Nanos> {
        let l = &self.lifecycle;
        match (l.first_syn, l.established) {
            (Some(s), Some(e)) if e >= s => Some(e - s),
            _ => None,
        }
    }
}

//! One connection: identity, roles, counters, timers, and the UDP/ICMP/other
//! handling (TCP's state machine lives in [`super::tcp`]).
//!
//! Roles follow Zeek: the sender of the creating packet is the originator
//! unless a role flip applies. State is kept per host (index 0 = the sender
//! of the creating packet) and `orig` says which host is the originator, so a
//! flip is one index change plus a `^` in the history.

use crate::decode::{Addr, L4, Packet};
use crate::source::Nanos;

use super::history::{History, Scaled};
use super::key::FlowKey;
use super::ports::likely_udp_server;
use super::record::{CloseReason, ConnRecord, ConnState, Lifecycle, Proto, Side};
use super::tcp::{self, EpState, TcpState};
use super::timers::Timeouts;

/// Connection-relevant ports of a packet: Zeek's conn tuple.
#[derive(Clone, Copy, Debug)]
pub struct Tuple {
    pub src_port: u16,
    pub dst_port: u16,
    /// One-way ICMP: the key keeps the sender first.
    pub directional: bool,
    pub proto: Proto,
}

impl Tuple {
    pub fn of(p: &Packet) -> Tuple {
        match p.l4 {
            L4::Tcp(t) => Tuple {
                src_port: t.src_port,
                dst_port: t.dst_port,
                directional: false,
                proto: Proto::Tcp,
            },
            L4::Udp(u) => Tuple {
                src_port: u.src_port,
                dst_port: u.dst_port,
                directional: false,
                proto: Proto::Udp,
            },
            L4::Icmp(i) => {
                let (other, one_way) = icmp_counterpart(i.v6, i.icmp_type, i.code);
                Tuple {
                    src_port: u16::from(i.icmp_type),
                    dst_port: u16::from(other),
                    directional: one_way,
                    proto: Proto::Icmp,
                }
            }
            L4::Other => Tuple {
                src_port: 0,
                dst_port: 0,
                directional: false,
                proto: Proto::Unknown,
            },
        }
    }
}

/// Zeek's ICMP pseudo responder port: the counterpart type of a
/// request/response pair, or the code for one-way messages.
pub fn icmp_counterpart(v6: bool, icmp_type: u8, code: u8) -> (u8, bool) {
    let pair = if v6 {
        match icmp_type {
            128 => 129,
            129 => 128,
            133 => 134,
            134 => 133,
            135 => 136,
            136 => 135,
            130 => 131,
            131 => 130,
            139 => 140,
            140 => 139,
            144 => 145,
            145 => 144,
            _ => return (code, true),
        }
    } else {
        match icmp_type {
            8 => 0,
            0 => 8,
            13 => 14,
            14 => 13,
            15 => 16,
            16 => 15,
            10 => 9,
            9 => 10,
            17 => 18,
            18 => 17,
            _ => return (code, true),
        }
    };
    (pair, false)
}

/// Zeek analyzer timers of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TimerKind {
    /// Unanswered SYN: give up after `tcp_attempt`.
    Attempt,
    /// Periodic check whether a (half-)closed connection can go.
    Expire,
    /// RST after FIN: remove after `tcp_reset_delay`.
    Reset,
    /// Fully closed: remove after `tcp_close_delay`.
    Delete,
    /// Zeek's DNS analyzer drops a UDP conversation ~10 s after its last packet.
    DnsExpire,
}

/// Zeek's `dns_session_timeout`.
const DNS_SESSION_TIMEOUT: Nanos = 10_000_000_000;

/// UDP ports Zeek's DNS analyzer is attached to (by responder port).
const DNS_PORTS: [u16; 4] = [53, 137, 5353, 5355];

/// Application analyzers Zeek attaches by responder port whose behaviour
/// shows in conn.log: both may flip roles from what the payload says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum App {
    #[default]
    None,
    /// `first_pending`: the first DNS message has not been seen yet.
    Dns { first_pending: bool },
    /// Whether each direction (as labelled when it was sent) already flipped.
    Ntp { flipped: [bool; 2] },
}

const MAX_TIMERS: usize = 6;

/// Laid out in declaration order (`repr(C)`): most of what every packet
/// reads or writes comes first, then the TCP state, then the lifecycle
/// (whose `last_packet` every packet writes) and what only some packets or
/// the record need, so a packet touches fewer cache lines of its kilobyte.
#[repr(C)]
pub struct Conn {
    pub(super) key: FlowKey,
    /// Which host is the originator.
    pub(super) orig: usize,
    /// Zeek's `last_time`: what `duration` ends at.
    pub(super) last: Nanos,
    /// Address and port of host 0 (sender of the creating packet) and host 1.
    pub(super) hosts: [(Addr, u16); 2],
    /// Per host: packets and IP bytes as Zeek's ConnSize counts them.
    pub(super) pkts: [u64; 2],
    pub(super) ip_bytes: [u64; 2],
    /// Current inactivity timeout (0 = none).
    pub(super) inactivity: Nanos,
    /// The earliest of `timers` (`Nanos::MAX` if none): every packet asks
    /// for the next deadline, and the timers change only a few times in a
    /// connection's life.
    first_timer: Nanos,
    pub(super) history: History,
    pub(super) proto: Proto,
    pub(super) app: App,
    pub(super) tcp: TcpState,
    pub(super) life: HostLifecycle,
    pub(super) missed_bytes: u64,
    pub(super) start: Nanos,
    /// Per host, UDP/ICMP payload bytes; negative while the side is inactive.
    pub(super) size: [i64; 2],
    /// Per host, UDP bad-checksum counters (history `C`/`c`).
    pub(super) bad_checksums: [Scaled; 2],
    pub(super) vlan: Option<u16>,
    pub(super) inner_vlan: Option<u16>,
    /// Private: `first_timer` must follow every change (`add_timer`,
    /// `cancel_timers`, `fire`).
    timers: [Option<(Nanos, TimerKind)>; MAX_TIMERS],
    pub(super) uid: u128,
}

/// Lifecycle bookkeeping with sides as host indices (resolved to orig/resp
/// when the record is written, since roles may flip).
/// Hot fields first, as in [`Conn`]: every packet writes `last_packet`, and
/// every TCP ACK reads `established`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(super) struct HostLifecycle {
    pub last_packet: Nanos,
    pub established: Option<Nanos>,
    pub first_syn: Option<Nanos>,
    pub syn_ack: Option<Nanos>,
    pub first_fin: Option<(Nanos, usize)>,
    pub first_rst: Option<(Nanos, usize)>,
    pub retransmits: u32,
    pub out_of_order: u32,
    pub zero_windows: u32,
    pub midstream: bool,
}

impl Conn {
    /// `hash` is the key's [`FlowKey::shard_hash`].
    pub(super) fn new(
        key: FlowKey,
        hash: u64,
        pkt: &Packet,
        tuple: &Tuple,
        now: Nanos,
        t: &Timeouts,
    ) -> Conn {
        let mut c = Conn {
            key,
            uid: uid(pkt, hash),
            hosts: [(pkt.src, tuple.src_port), (pkt.dst, tuple.dst_port)],
            orig: 0,
            proto: tuple.proto,
            start: now,
            last: now,
            history: History::default(),
            pkts: [0; 2],
            ip_bytes: [0; 2],
            size: [-1; 2],
            bad_checksums: [Scaled::default(); 2],
            missed_bytes: 0,
            vlan: pkt.vlan,
            inner_vlan: pkt.inner_vlan,
            inactivity: 0,
            timers: [None; MAX_TIMERS],
            first_timer: Nanos::MAX,
            tcp: TcpState::default(),
            app: App::None,
            life: HostLifecycle {
                last_packet: now,
                ..HostLifecycle::default()
            },
        };
        let (flip, inactivity) = match pkt.l4 {
            L4::Tcp(tcp) => {
                c.add_timer(now, t.tcp_syn_timeout, TimerKind::Expire);
                c.life.midstream =
                    !tcp.has(crate::decode::TCP_SYN) || tcp.has(crate::decode::TCP_ACK);
                (tcp::flip_at_creation(&tcp), t.udp_inactivity)
            }
            L4::Udp(u) => {
                let broadcast = pkt.dst == Addr::v4([255; 4]);
                let flip =
                    likely_udp_server(u.src_port) && !likely_udp_server(u.dst_port) && !broadcast;
                (flip, t.udp_inactivity)
            }
            L4::Icmp(_) => (false, t.icmp_inactivity),
            L4::Other => (false, t.unknown_inactivity),
        };
        c.inactivity = inactivity;
        if flip {
            c.flip_roles();
        }
        if let L4::Udp(_) = pkt.l4 {
            let resp_port = c.hosts[c.orig ^ 1].1;
            if DNS_PORTS.contains(&resp_port) {
                c.app = App::Dns {
                    first_pending: true,
                };
                c.add_timer(now, DNS_SESSION_TIMEOUT, TimerKind::DnsExpire);
            } else if resp_port == 123 {
                c.app = App::Ntp {
                    flipped: [false; 2],
                };
            }
        }
        c
    }

    pub fn key(&self) -> FlowKey {
        self.key
    }

    pub(super) fn flip_roles(&mut self) {
        self.orig ^= 1;
        self.history.push(b'^');
        self.tcp.is_partial = false;
    }

    /// Which host sent `pkt`.
    fn host_of(&self, pkt: &Packet, tuple: &Tuple) -> usize {
        if pkt.src == self.hosts[0].0 && tuple.src_port == self.hosts[0].1 {
            0
        } else {
            1
        }
    }

    /// Arm a timer `delay` after `from`; the sum saturates, as timestamps
    /// may sit at the ends of the i64 range (pcapng's `if_tsoffset`).
    pub(super) fn add_timer(&mut self, from: Nanos, delay: Nanos, kind: TimerKind) {
        if let Some(slot) = self.timers.iter_mut().find(|s| s.is_none()) {
            let at = from.saturating_add(delay);
            *slot = Some((at, kind));
            self.first_timer = self.first_timer.min(at);
        }
    }

    /// Cancel the analyzer timers (not the inactivity timeout), as Zeek's
    /// `CancelTimers` does when a close completes.
    pub(super) fn cancel_timers(&mut self) {
        self.timers = [None; MAX_TIMERS];
        self.first_timer = Nanos::MAX;
    }

    /// Earliest moment something may happen to this connection.
    pub(super) fn next_deadline(&self) -> Nanos {
        let idle = if self.inactivity > 0 {
            self.last.saturating_add(self.inactivity)
        } else {
            Nanos::MAX
        };
        idle.min(self.first_timer)
    }

    /// Zeek's `IsReuse`: does this packet start a new connection on the same key?
    pub(super) fn is_reuse(&self, pkt: &Packet, _now: Nanos) -> bool {
        match pkt.l4 {
            L4::Tcp(t) => tcp::is_reuse(self, &t),
            _ => false,
        }
    }

    /// Handle a packet that belongs to this connection; returns whether its
    /// sender is (now) the originator.
    pub(super) fn packet(&mut self, pkt: &Packet, tuple: &Tuple, now: Nanos, t: &Timeouts) -> bool {
        let host = self.host_of(pkt, tuple);
        self.life.last_packet = self.life.last_packet.max(now);
        // Where Zeek's ConnSize counts the packet: normally its sender; after
        // an application-layer flip, the slot its stale direction names.
        let mut count_host = host;
        let counted = match pkt.l4 {
            L4::Tcp(tcp) => tcp::packet(self, host, &tcp, pkt.bad_checksum, now, t),
            L4::Udp(u) => {
                let is_orig = host == self.orig;
                let counted = self.udp(host, u.ulen, pkt.bad_checksum, now);
                if counted {
                    self.app_udp(is_orig, &u);
                    count_host = if is_orig { self.orig } else { self.orig ^ 1 };
                }
                counted
            }
            L4::Icmp(i) => {
                if pkt.bad_checksum {
                    false
                } else {
                    self.last = now;
                    self.update_length(host, i64::from(i.payload_len));
                    // Zeek counts ICMP packets only when the message was fully captured.
                    i.complete
                }
            }
            L4::Other => {
                self.last = now;
                true
            }
        };
        if counted {
            self.pkts[count_host] += 1;
            self.ip_bytes[count_host] += u64::from(pkt.ip_len);
        }
        host == self.orig
    }

    /// Zeek's DNS and NTP analyzers: flip when the payload shows the
    /// originator is really the server.
    fn app_udp(&mut self, is_orig: bool, u: &crate::decode::Udp) {
        let flip = match &mut self.app {
            App::Dns { first_pending } if *first_pending && u.captured >= 12 => {
                *first_pending = false;
                let response = u.head[2] & 0x80 != 0;
                let resp = self.hosts[self.orig ^ 1].0;
                // Zeek's IsMulticast: 224.x.x.x or ff00::/8.
                let multicast = if resp.is_v4() {
                    resp.0[12] == 224
                } else {
                    resp.0[0] == 0xff
                };
                response && is_orig && !multicast
            }
            App::Ntp { flipped } if u.captured >= 48 => {
                let mode = u.head[0] & 0x07;
                let dir = usize::from(!is_orig);
                let flip = !flipped[dir] && ((mode == 4 && is_orig) || (mode == 3 && !is_orig));
                flipped[dir] |= flip;
                flip
            }
            _ => false,
        };
        if flip {
            self.flip_roles();
            // Zeek's UDP byte counts belong to the role, not the host.
            self.size.swap(0, 1);
        }
    }

    fn udp(&mut self, host: usize, ulen: u16, bad_checksum: bool, now: Nanos) -> bool {
        let is_orig = host == self.orig;
        if bad_checksum {
            let code = if is_orig { b'C' } else { b'c' };
            self.history.scaled(code, &mut self.bad_checksums[host]);
            return false;
        }
        self.last = now;
        let (mask, code) = if is_orig { (1, b'D') } else { (2, b'd') };
        self.history.check(mask, code);
        // Zeek trusts the UDP length field, even below 8 (the side then stays inactive).
        self.update_length(host, i64::from(ulen) - 8);
        true
    }

    /// Zeek's UDP/ICMP `UpdateLength`: the first packet sets, later ones add.
    fn update_length(&mut self, host: usize, len: i64) {
        let s = &mut self.size[host];
        if *s < 0 {
            *s = len;
        } else {
            *s += len;
        }
    }

    /// Fire the timers due at `now`; `Some` if the connection must go.
    pub(super) fn fire(&mut self, now: Nanos, t: &Timeouts) -> Option<CloseReason> {
        loop {
            let idle_due = self.inactivity > 0 && self.last.saturating_add(self.inactivity) <= now;
            // The earliest due timer (the first of equals), by plain loops:
            // an iterator chain here kept its tuples on the stack, and their
            // reloads waited on the stores (a fifth of the samples of fire).
            let mut next: Option<(Nanos, usize, TimerKind)> = None;
            for (i, t) in self.timers.iter().enumerate() {
                if let Some((at, kind)) = *t {
                    if at <= now && next.is_none_or(|(best, _, _)| at < best) {
                        next = Some((at, i, kind));
                    }
                }
            }
            match next {
                Some((at, i, kind))
                    if !idle_due || at <= self.last.saturating_add(self.inactivity) =>
                {
                    self.timers[i] = None;
                    let mut first = Nanos::MAX;
                    for (at, _) in self.timers.iter().flatten() {
                        first = first.min(*at);
                    }
                    self.first_timer = first;
                    let expired = match kind {
                        TimerKind::DnsExpire => {
                            let idle = now.saturating_sub(self.last)
                                >= DNS_SESSION_TIMEOUT - 1_000_000_000;
                            if !idle {
                                self.add_timer(now, DNS_SESSION_TIMEOUT, TimerKind::DnsExpire);
                            }
                            idle
                        }
                        _ => tcp::timer(self, kind, now, t),
                    };
                    if expired {
                        return Some(CloseReason::Timeout);
                    }
                }
                _ if idle_due => return Some(CloseReason::Timeout),
                _ => return None,
            }
        }
    }

    /// Flatten into the record that leaves the table.
    pub(super) fn to_record(&self, cause: CloseReason) -> ConnRecord {
        let o = self.orig;
        let r = o ^ 1;
        let (state, orig_bytes, resp_bytes) = match self.proto {
            Proto::Tcp => {
                let (oe, re) = (&self.tcp.ep[o], &self.tcp.ep[r]);
                (
                    tcp::conn_state(oe, re, oe.size(re.state), re.size(oe.state), &self.history),
                    oe.size(re.state),
                    re.size(oe.state),
                )
            }
            Proto::Udp => {
                let state = match (self.size[o] >= 0, self.size[r] >= 0) {
                    (true, true) => ConnState::SF,
                    (true, false) => ConnState::S0,
                    (false, true) => ConnState::SHR,
                    (false, false) => ConnState::OTH,
                };
                (
                    state,
                    self.size[o].max(0) as u64,
                    self.size[r].max(0) as u64,
                )
            }
            Proto::Icmp => (
                ConnState::OTH,
                self.size[o].max(0) as u64,
                self.size[r].max(0) as u64,
            ),
            Proto::Unknown => (ConnState::OTH, 0, 0),
        };
        let side = |h: usize| if h == o { Side::Orig } else { Side::Resp };
        let l = &self.life;
        let lifecycle = Lifecycle {
            first_syn: l.first_syn,
            syn_ack: l.syn_ack,
            established: l.established,
            first_fin: l.first_fin.map(|(ts, h)| (ts, side(h))),
            first_rst: l.first_rst.map(|(ts, h)| (ts, side(h))),
            last_packet: l.last_packet,
            retransmits: l.retransmits,
            out_of_order: l.out_of_order,
            zero_windows: l.zero_windows,
            midstream: l.midstream,
        };
        let close_reason = match (self.proto, l.first_rst) {
            (Proto::Tcp, Some((_, h))) => {
                if h == o {
                    CloseReason::RstOrig
                } else {
                    CloseReason::RstResp
                }
            }
            (Proto::Tcp, None)
                if self.tcp.ep[0].state == EpState::Closed
                    && self.tcp.ep[1].state == EpState::Closed =>
            {
                CloseReason::Fin
            }
            _ => cause,
        };
        ConnRecord {
            uid: self.uid,
            start: self.start,
            duration: self.last.saturating_sub(self.start),
            orig: self.hosts[o].0,
            orig_port: self.hosts[o].1,
            resp: self.hosts[r].0,
            resp_port: self.hosts[r].1,
            proto: self.proto,
            ip_proto: self.key.ip_proto,
            orig_bytes,
            resp_bytes,
            state,
            missed_bytes: self.missed_bytes,
            history: self.history,
            orig_pkts: self.pkts[o],
            orig_ip_bytes: self.ip_bytes[o],
            resp_pkts: self.pkts[r],
            resp_ip_bytes: self.ip_bytes[r],
            vlan: self.vlan,
            inner_vlan: self.inner_vlan,
            directional: self.key.directional,
            lifecycle,
            close_reason,
        }
    }

    /// Orig and resp endpoints (address, port) under the current roles.
    pub fn endpoints(&self) -> ((Addr, u16), (Addr, u16)) {
        (self.hosts[self.orig], self.hosts[self.orig ^ 1])
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }

    pub fn start(&self) -> Nanos {
        self.start
    }

    pub fn uid(&self) -> u128 {
        self.uid
    }

    /// The socket state as `netstat` on the server (the responder) would
    /// show it now; `-` for protocols without states.
    pub fn socket_state(&self) -> &'static str {
        if self.proto != Proto::Tcp {
            return "-";
        }
        let (o, r) = (&self.tcp.ep[self.orig], &self.tcp.ep[self.orig ^ 1]);
        let server_closed_first = self.life.first_fin.is_some_and(|(_, h)| h != self.orig);
        match (o.state, r.state) {
            (EpState::Reset, _) | (_, EpState::Reset) => "CLOSED",
            (EpState::Closed, EpState::Closed) if server_closed_first => "TIME_WAIT",
            (EpState::Closed, EpState::Closed) => "LAST_ACK",
            (EpState::Closed, _) => "CLOSE_WAIT",
            (_, EpState::Closed) => "FIN_WAIT",
            (EpState::SynSent | EpState::SynAckSent, _) | (_, EpState::SynAckSent) => "SYN_RECV",
            (EpState::Established, EpState::Established)
                if self.life.established.is_none() && self.life.syn_ack.is_some() =>
            {
                "SYN_RECV"
            }
            (EpState::Established | EpState::Partial, _)
            | (_, EpState::Established | EpState::Partial) => "ESTABLISHED",
            _ => "UNKNOWN",
        }
    }
}

/// A 96-bit identifier, unique per capture: a bijective mix of the creating
/// packet's input and number, plus 32 bits of the key's hash.
fn uid(pkt: &Packet, key_hash: u64) -> u128 {
    let mut z = ((pkt.input as u64) << 48) ^ (pkt.number & ((1 << 48) - 1));
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (u128::from(z) << 32) | u128::from(key_hash as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_pseudo_ports() {
        assert_eq!(icmp_counterpart(false, 8, 0), (0, false));
        assert_eq!(icmp_counterpart(false, 0, 0), (8, false));
        assert_eq!(icmp_counterpart(false, 3, 3), (3, true));
        assert_eq!(icmp_counterpart(false, 11, 0), (0, true));
        assert_eq!(icmp_counterpart(true, 135, 0), (136, false));
        assert_eq!(icmp_counterpart(true, 1, 4), (4, true));
    }
}

//! TCP connection tracking with Zeek's endpoint state machine.
//!
//! This follows Zeek's `TCPSessionAdapter::Process` step by step (endpoint
//! states, relative sequence numbers with 64-bit wrap counting, history
//! letters, role flips, close handling and its timers) so that conn.log
//! agrees with Zeek's. Zeek's reassembler is reduced to the byte ranges it has
//! seen: enough to find content gaps (`missed_bytes`, `G`/`g`) and to decide
//! when a close must wait for data, without keeping any payload.
//!
//! Two roles of "is_orig" exist on purpose, as in Zeek: `is_orig` computed
//! when the packet arrived (used by the state machine even after a mid-packet
//! flip), and an endpoint's current role (used for history letter case).

use crate::decode::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Tcp};
use crate::source::Nanos;

use super::conn::{Conn, TimerKind};
use super::history::{History, Scaled};
use super::ports::likely_tcp_server;
use super::ranges::Ranges;
use super::record::ConnState;
use super::timers::{Timeouts, is_interactive_port};

const TOO_LARGE_SEQ_DELTA: i32 = 1_048_576;
const MAX_INITIAL_WINDOW: u64 = 16_384;
const MAX_ABOVE_HOLE_WITHOUT_ACKS: u64 = 16_384;
const EXCESSIVE_DATA_WITHOUT_ACKS: u64 = 10 * 1024 * 1024;

const HIST_SYN: u32 = 0x1;
const HIST_FIN: u32 = 0x2;
const HIST_RST: u32 = 0x4;
const HIST_FIN_RST: u32 = 0x8;
const HIST_DATA: u32 = 0x10;
const HIST_ACK: u32 = 0x20;
const HIST_MULTI_FLAG: u32 = 0x40;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EpState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

fn is_handshake(s: EpState) -> bool {
    matches!(
        s,
        EpState::Inactive | EpState::SynSent | EpState::SynAckSent
    )
}

#[inline]
fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

#[inline]
fn full_seq(seq: u32, wraps: u32) -> u64 {
    (u64::from(wraps) << 32) + u64::from(seq)
}

/// What Zeek's reassembler tracks, minus the bytes.
#[derive(Clone, Debug)]
#[repr(C)]
struct Reassembler {
    /// Next relative sequence number to deliver.
    last_reassem_seq: u64,
    /// Everything below has been acknowledged and forgotten.
    trim_seq: u64,
    /// Gave up on this direction (too much unacknowledged data).
    skip: bool,
    did_eof: bool,
    /// Seen (delivered or waiting) but not yet acknowledged.
    blocks: Ranges,
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler {
            last_reassem_seq: 1,
            trim_seq: 1,
            blocks: Ranges::default(),
            skip: false,
            did_eof: false,
        }
    }
}

/// One side of a TCP connection (Zeek's `TCP_Endpoint`). Laid out as
/// declared: what every segment reads first, what only SYN, FIN, RST or
/// rare events touch last (see [`super::Conn`]).
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct Endpoint {
    pub state: EpState,
    pub prev_state: EpState,
    window_scale: u8,
    pub did_close: bool,
    last_seq: u32,
    ack_seq: u32,
    seq_wraps: u32,
    ack_wraps: u32,
    window: u32,
    window_seq: u32,
    window_ack_seq: u32,
    fin_cnt: u32,
    start_seq: i64,
    reasm: Reassembler,
    fin_seq: u64,
    hist_last_syn: u64,
    hist_last_fin: u64,
    hist_last_rst: u64,
    chk: Scaled,
    rxmt: Scaled,
    win0: Scaled,
    gap: Scaled,
}

impl Endpoint {
    fn start_seq32(&self) -> u32 {
        self.start_seq as u32
    }

    fn update_last_seq(&mut self, seq: u32) {
        if seq < self.last_seq {
            self.seq_wraps += 1;
        }
        self.last_seq = seq;
    }

    fn update_ack_seq(&mut self, seq: u32) {
        if seq < self.ack_seq {
            self.ack_wraps += 1;
        }
        self.ack_seq = seq;
    }

    fn init_seqs(&mut self, start: u32, ack: u32, last: u32) {
        self.start_seq = i64::from(start);
        self.ack_seq = ack;
        self.last_seq = last;
    }

    fn to_relative(&self, seq: u32, wraps: u32) -> u64 {
        full_seq(seq, wraps).wrapping_sub(self.start_seq as u64)
    }

    fn no_data_acked(&self) -> bool {
        let ack = full_seq(self.ack_seq, self.ack_wraps);
        let start = self.start_seq as u64;
        ack == start || ack == start.wrapping_add(1)
    }

    /// Bytes sent, from sequence numbers (Zeek's `TCP_Endpoint::Size`).
    pub fn size(&self, peer_state: EpState) -> u64 {
        if self.prev_state == EpState::SynSent
            && self.state == EpState::Reset
            && peer_state == EpState::Inactive
            && !self.no_data_acked()
        {
            return 0;
        }
        let last = full_seq(self.last_seq, self.seq_wraps);
        let ack = full_seq(self.ack_seq, self.ack_wraps);
        let mut size = last.max(ack).wrapping_sub(self.start_seq as u64);
        size = size.saturating_sub(1);
        if self.fin_cnt > 0 && size != 0 {
            size -= 1;
        }
        size
    }
}

/// TCP part of a connection (Zeek's `TCPSessionAdapter` state), per host.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct TcpState {
    /// Host that sent the first SYN-ACK (for the lifecycle).
    syn_ack_host: Option<usize>,
    is_active: bool,
    pub is_partial: bool,
    first_packet_seen: [bool; 2],
    close_deferred: bool,
    deferred_gen_event: bool,
    /// `connection_established` was raised by this packet (for inactivity.zeek).
    established_event: bool,
    pub ep: [Endpoint; 2],
}

impl Default for TcpState {
    fn default() -> Self {
        TcpState {
            ep: Default::default(),
            is_active: true,
            is_partial: false,
            first_packet_seen: [false; 2],
            close_deferred: false,
            deferred_gen_event: false,
            established_event: false,
            syn_ack_host: None,
        }
    }
}

/// Zeek's `WantConnection`: flip a connection that does not start with a
/// pure SYN when its source port looks like the server.
pub fn flip_at_creation(t: &Tcp) -> bool {
    let syn = t.has(TCP_SYN);
    if syn && !t.has(TCP_ACK) {
        return false;
    }
    if !likely_tcp_server(t.src_port) {
        return false;
    }
    if likely_tcp_server(t.dst_port) {
        !syn && t.src_port < t.dst_port
    } else {
        true
    }
}

/// Zeek's `IsReuse`: a SYN (or a SYN-ACK on a half connection) that starts a
/// new connection on an existing key.
pub fn is_reuse(c: &Conn, t: &Tcp) -> bool {
    if t.hdr_len < 20 || !t.has(TCP_SYN) {
        return false;
    }
    let o = &c.tcp.ep[c.orig];
    let r = &c.tcp.ep[c.orig ^ 1];
    let mut conn_orig = o;
    if t.has(TCP_ACK) {
        if o.state != EpState::Inactive {
            return false;
        }
        conn_orig = r;
    }
    if !(o.did_close || r.did_close) {
        if t.seq == conn_orig.start_seq32() {
            return false;
        }
        if !t.has(TCP_ACK)
            && conn_orig.state == EpState::SynAckSent
            && r.state == EpState::Inactive
            && t.seq == r.start_seq32()
        {
            return false;
        }
    }
    true
}

/// Handle a TCP packet from host `h`. Returns whether Zeek's ConnSize counts it.
pub fn packet(
    c: &mut Conn,
    h: usize,
    t: &Tcp,
    bad_checksum: bool,
    now: Nanos,
    to: &Timeouts,
) -> bool {
    if !t.header_ok {
        return false;
    }
    if bad_checksum {
        let code = if h == c.orig { b'C' } else { b'c' };
        c.history.scaled(code, &mut c.tcp.ep[h].chk);
        return false;
    }
    process(c, h, t, now, to);
    lifecycle(c, h, t, now);
    if std::mem::take(&mut c.tcp.established_event) {
        // inactivity.zeek: interactive services get a long idle timeout.
        let (o, r) = (c.hosts[c.orig].1, c.hosts[c.orig ^ 1].1);
        let mut service = r;
        if c.tcp.ep[c.orig].state == EpState::Inactive
            && !likely_tcp_server(r)
            && likely_tcp_server(o)
        {
            service = o;
        }
        if is_interactive_port(service) {
            c.inactivity = to.interactive_inactivity;
        }
    }
    true
}

fn lifecycle(c: &mut Conn, h: usize, t: &Tcp, now: Nanos) {
    let l = &mut c.life;
    let (syn, ack) = (t.has(TCP_SYN), t.has(TCP_ACK));
    if syn && !ack {
        l.first_syn.get_or_insert(now);
    }
    if syn && ack && l.syn_ack.is_none() {
        l.syn_ack = Some(now);
        c.tcp.syn_ack_host = Some(h);
    }
    if !syn && ack && l.established.is_none() && c.tcp.syn_ack_host == Some(h ^ 1) {
        l.established = Some(now);
    }
    if t.has(TCP_FIN) && l.first_fin.is_none() {
        l.first_fin = Some((now, h));
    }
    if t.has(TCP_RST) && l.first_rst.is_none() {
        l.first_rst = Some((now, h));
    }
}

fn segment_len(len: u32, flags: u8) -> u32 {
    let mut seg = len;
    if flags & TCP_SYN != 0 {
        seg = seg.wrapping_add(1);
    }
    if flags & TCP_FIN != 0 {
        seg = seg.wrapping_add(1);
    }
    if flags & TCP_RST != 0 {
        seg = seg.wrapping_sub(len);
    }
    seg
}

/// Zeek's `get_relative_seq`: (relative sequence, underflow).
fn relative_seq(ep: &Endpoint, cur: u32, last: u32, mut wraps: u32) -> (u64, bool) {
    let delta = seq_delta(cur, last);
    if delta < 0 {
        if wraps != 0 && cur > last {
            wraps -= 1;
        }
    } else if delta > 0 && cur < last {
        wraps += 1;
    }
    if wraps == 0 {
        let d = seq_delta(cur, ep.start_seq32());
        return (i64::from(d) as u64, d < 0);
    }
    (ep.to_relative(cur, wraps), false)
}

fn process(c: &mut Conn, h: usize, t: &Tcp, now: Nanos, to: &Timeouts) {
    let p = h ^ 1;
    let is_orig = h == c.orig;
    let flags = t.flags;
    let (syn, fin, rst, ack) = (
        flags & TCP_SYN != 0,
        flags & TCP_FIN != 0,
        flags & TCP_RST != 0,
        flags & TCP_ACK != 0,
    );
    let (base_seq, ack_seq, len) = (t.seq, t.ack, t.payload_len);

    set_partial_status(c, flags, h);
    let seg_len = segment_len(len, flags);
    let seq_one_past = base_seq.wrapping_add(seg_len);
    init_endpoint(&mut c.tcp.ep[h], flags, base_seq, seq_one_past);
    let ep = &c.tcp.ep[h];
    let (rel_seq, seq_underflow) = relative_seq(ep, base_seq, ep.last_seq, ep.seq_wraps);

    update_history(c, flags, h, rel_seq, len);
    update_window(c, h, t.window, base_seq, ack_seq, flags);

    if !(c.tcp.ep[0].did_close && c.tcp.ep[1].did_close) {
        c.last = now;
    }
    if syn {
        init_window(c, h, flags, t.window_scale, base_seq, ack_seq);
    }
    if fin {
        let ep = &mut c.tcp.ep[h];
        ep.fin_cnt += 1;
        ep.fin_seq = rel_seq.wrapping_add(u64::from(seg_len));
    }

    let mut rel_ack = 0;
    if ack {
        if c.tcp.ep[p].state == EpState::Inactive {
            rel_ack = 1;
            let s = ack_seq.wrapping_sub(1);
            c.tcp.ep[p].init_seqs(s, s, s);
        } else {
            let peer = &c.tcp.ep[p];
            let (ra, underflow) = relative_seq(peer, ack_seq, peer.ack_seq, peer.ack_wraps);
            if !underflow {
                rel_ack = ra;
                if !rst {
                    let peer = &mut c.tcp.ep[p];
                    let d = seq_delta(ack_seq, peer.ack_seq);
                    if !(ack_seq == 0 && d > TOO_LARGE_SEQ_DELTA) && d > 0 {
                        peer.update_ack_seq(ack_seq);
                    }
                }
            }
        }
    }

    update_last_seq(c, h, seq_one_past, flags, len, rel_seq);
    let (do_close, gen_event) = update_state_machine(c, h, base_seq, len, is_orig, flags, now, to);

    if ack {
        ack_received(c, p, rel_ack, to);
    }
    let seen = if is_orig { c.orig } else { c.orig ^ 1 };
    c.tcp.first_packet_seen[seen] = true;

    let rel_data_seq = if syn {
        rel_seq.wrapping_add(1)
    } else {
        rel_seq
    };
    if len > 0 && !rst && !seq_underflow {
        data_sent(c, h, rel_data_seq, u64::from(len), t.captured_len >= len);
    }
    check_eof(c, h, to);
    if do_close {
        connection_closed(c, h, gen_event, to);
    }
}

fn set_partial_status(c: &mut Conn, flags: u8, h: usize) {
    let syn = flags & TCP_SYN != 0;
    let ack = flags & TCP_ACK != 0;
    if h == c.orig {
        if !c.tcp.first_packet_seen[h] {
            c.tcp.is_partial = !syn || ack;
        }
    } else if !c.tcp.first_packet_seen[h] && !c.tcp.is_partial {
        c.tcp.is_partial = !syn;
    }
}

fn init_endpoint(ep: &mut Endpoint, flags: u8, first_seq: u32, last_seq: u32) {
    let syn = flags & TCP_SYN != 0;
    match ep.state {
        EpState::Inactive => {
            if syn {
                ep.init_seqs(first_seq, first_seq, last_seq);
            } else {
                // Partial connection: number as if a SYN had been seen, but
                // do not mark the first packet as a duplicate.
                let s = first_seq.wrapping_sub(1);
                ep.init_seqs(s, s, first_seq);
            }
        }
        EpState::SynSent | EpState::SynAckSent => {
            if syn && first_seq != ep.start_seq32() {
                ep.init_seqs(first_seq, first_seq, last_seq);
            }
        }
        EpState::Established | EpState::Partial => {
            if syn {
                ep.init_seqs(first_seq, first_seq, last_seq);
            }
        }
        EpState::Reset => {
            if syn && ep.prev_state == EpState::Inactive {
                ep.init_seqs(first_seq, first_seq, last_seq);
            }
        }
        EpState::Closed => {}
    }
}

/// Zeek's `TCP_Endpoint::CheckHistory`, including the flip of a connection
/// that began with a SYN-ACK once productive traffic (an ACK or data) shows up.
fn check_history(c: &mut Conn, h: usize, mask: u32, code: u8) -> bool {
    if (code == b'A' || code == b'D') && c.history.as_bytes() == b"H" {
        c.flip_roles();
        c.history.set(b"^h");
    }
    if h == c.orig {
        c.history.check(mask, code)
    } else {
        c.history.check(mask << 16, code.to_ascii_lowercase())
    }
}

fn add_history(c: &mut Conn, h: usize, code: u8) {
    let code = if h == c.orig {
        code
    } else {
        code.to_ascii_lowercase()
    };
    c.history.push(code);
}

/// A logarithmically recorded letter of endpoint `h` (`C`, `T`, `W`, `G`).
fn scaled(c: &mut Conn, h: usize, code: u8, which: fn(&mut Endpoint) -> &mut Scaled) {
    let code = if h == c.orig {
        code
    } else {
        code.to_ascii_lowercase()
    };
    let counter = which(&mut c.tcp.ep[h]);
    c.history.scaled(code, counter);
}

fn update_history(c: &mut Conn, flags: u8, h: usize, rel_seq: u64, len: u32) {
    let (syn, fin, rst, ack) = (
        flags & TCP_SYN != 0,
        flags & TCP_FIN != 0,
        flags & TCP_RST != 0,
        flags & TCP_ACK != 0,
    );
    match u8::from(syn) + u8::from(fin) + u8::from(rst) {
        0 => {
            if len > 0 {
                check_history(c, h, HIST_DATA, b'D');
            } else if ack {
                check_history(c, h, HIST_ACK, b'A');
            }
        }
        1 => {
            if syn {
                let code = if ack { b'H' } else { b'S' };
                if check_history(c, h, HIST_SYN, code) && rel_seq != c.tcp.ep[h].hist_last_syn {
                    add_history(c, h, code);
                }
                c.tcp.ep[h].hist_last_syn = rel_seq;
            }
            if fin {
                let end = rel_seq.wrapping_add(u64::from(len));
                if check_history(c, h, HIST_FIN, b'F') && end != c.tcp.ep[h].hist_last_fin {
                    add_history(c, h, b'F');
                }
                c.tcp.ep[h].hist_last_fin = end;
            }
            if rst {
                if check_history(c, h, HIST_RST, b'R') && rel_seq != c.tcp.ep[h].hist_last_rst {
                    add_history(c, h, b'R');
                }
                c.tcp.ep[h].hist_last_rst = rel_seq;
            }
        }
        _ => {
            if fin && rst {
                check_history(c, h, HIST_FIN_RST, b'I');
            } else {
                check_history(c, h, HIST_MULTI_FLAG, b'Q');
            }
        }
    }
}

fn update_window(c: &mut Conn, h: usize, window: u16, base_seq: u32, ack_seq: u32, flags: u8) {
    let (syn, fin, rst) = (
        flags & TCP_SYN != 0,
        flags & TCP_FIN != 0,
        flags & TCP_RST != 0,
    );
    let ep = &c.tcp.ep[h];
    let window = u32::from(window) << ep.window_scale;
    if window == 0 && !rst && c.tcp.ep[h ^ 1].state != EpState::Closed && ep.state != EpState::Reset
    {
        c.life.zero_windows += 1;
        scaled(c, h, b'W', |e| &mut e.win0);
    }
    let ep = &mut c.tcp.ep[h];
    if !syn
        && !fin
        && !rst
        && ep.state != EpState::Closed
        && ep.state != EpState::Reset
        && seq_delta(base_seq, ep.window_seq) >= 0
        && seq_delta(ack_seq, ep.window_ack_seq) >= 0
    {
        ep.window = window;
        ep.window_ack_seq = ack_seq;
        ep.window_seq = base_seq;
    }
}

fn init_window(c: &mut Conn, h: usize, flags: u8, scale: Option<u8>, base_seq: u32, ack_seq: u32) {
    let [a, b] = &mut c.tcp.ep;
    let (ep, peer) = if h == 0 { (a, b) } else { (b, a) };
    match scale {
        None => {
            ep.window_scale = 0;
            if flags & TCP_ACK != 0 {
                peer.window_scale = 0;
            }
        }
        Some(s) => {
            // RFC 7323 caps the shift at 14.
            ep.window_scale = s.min(14);
            ep.window_seq = base_seq;
            ep.window_ack_seq = ack_seq;
            peer.window_seq = ack_seq;
            peer.window_ack_seq = base_seq;
        }
    }
}

fn update_last_seq(c: &mut Conn, h: usize, last_seq: u32, flags: u8, len: u32, rel_seq: u64) {
    let ep = &mut c.tcp.ep[h];
    let delta = seq_delta(last_seq, ep.last_seq);
    let syn_or_rst = flags & (TCP_SYN | TCP_RST) != 0;
    if syn_or_rst && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta) {
        // Do not trust wild sequence numbers in SYNs and RSTs.
    } else if flags & TCP_FIN != 0 && ep.last_seq == ep.start_seq32().wrapping_add(1) {
        ep.update_last_seq(last_seq);
    } else if ep.state == EpState::Reset {
        // Nothing after a reset is trusted.
    } else if delta > 0 {
        ep.update_last_seq(last_seq);
    } else if len > 0 {
        // Zeek's `T`: data at or below what was already seen. Count it as a
        // retransmission if we had seen those bytes, else as out of order.
        let start = if flags & TCP_SYN != 0 {
            rel_seq.wrapping_add(1)
        } else {
            rel_seq
        };
        let end = start.wrapping_add(u64::from(len));
        let r = &ep.reasm;
        if end <= r.last_reassem_seq || r.blocks.covers(start, end) {
            c.life.retransmits += 1;
        } else {
            c.life.out_of_order += 1;
        }
        scaled(c, h, b'T', |e| &mut e.rxmt);
    }
}

fn set_state(c: &mut Conn, h: usize, new: EpState, to: &Timeouts) {
    let state = c.tcp.ep[h].state;
    if new == state {
        return;
    }
    if !is_handshake(new) && is_handshake(state) && is_handshake(c.tcp.ep[h ^ 1].state) {
        c.inactivity = to.tcp_inactivity;
    }
    let ep = &mut c.tcp.ep[h];
    ep.prev_state = state;
    ep.state = new;
}

#[allow(clippy::too_many_arguments)]
fn update_state_machine(
    c: &mut Conn,
    h: usize,
    base_seq: u32,
    len: u32,
    is_orig: bool,
    flags: u8,
    now: Nanos,
    to: &Timeouts,
) -> (bool, bool) {
    let p = h ^ 1;
    let (syn, fin, rst, ack) = (
        flags & TCP_SYN != 0,
        flags & TCP_FIN != 0,
        flags & TCP_RST != 0,
        flags & TCP_ACK != 0,
    );
    let mut do_close = false;
    let mut gen_event = false;
    match c.tcp.ep[h].state {
        EpState::Inactive => {
            if syn {
                if is_orig {
                    set_state(
                        c,
                        h,
                        if ack {
                            EpState::SynAckSent
                        } else {
                            EpState::SynSent
                        },
                        to,
                    );
                    if to.tcp_attempt > 0 {
                        c.add_timer(now, to.tcp_attempt, TimerKind::Attempt);
                    }
                } else {
                    if !ack
                        && c.tcp.ep[p].state == EpState::SynAckSent
                        && base_seq == c.tcp.ep[h].start_seq32()
                    {
                        // SYN and SYN-ACK arrived reversed: flip and establish.
                        c.tcp.is_partial = false;
                        c.flip_roles();
                        set_state(c, p, EpState::Established, to);
                        let o = c.orig;
                        c.tcp.first_packet_seen[o] = true;
                    }
                    if c.tcp.ep[p].state == EpState::SynSent {
                        set_state(c, p, EpState::Established, to);
                    }
                    set_state(c, h, EpState::Established, to);
                    if c.tcp.ep[p].state != EpState::Partial {
                        c.tcp.established_event = true;
                    }
                }
            }
            if fin {
                set_state(c, h, EpState::Closed, to);
                do_close = true;
                gen_event = true;
            }
            if rst {
                set_state(c, h, EpState::Reset, to);
                let ps = c.tcp.ep[p].state;
                let is_reject = if is_orig {
                    ps == EpState::Established
                } else {
                    matches!(ps, EpState::SynSent | EpState::SynAckSent)
                };
                do_close = true;
                gen_event = !is_reject;
            }
            if c.tcp.ep[h].state == EpState::Inactive {
                let orig_state = c.tcp.ep[c.orig].state;
                if !is_orig && len == 0 && orig_state == EpState::SynSent {
                    // An ACK of the initial SYN before the SYN-ACK: not a partial connection.
                } else if ack && c.tcp.ep[p].state == EpState::Established {
                    // The SYN was missed but the SYN-ACK seen: establish.
                    set_state(c, h, EpState::Established, to);
                    c.tcp.is_partial = false;
                    let seen = if is_orig { c.orig } else { c.orig ^ 1 };
                    c.tcp.first_packet_seen[seen] = true;
                } else {
                    set_state(c, h, EpState::Partial, to);
                }
            }
        }
        EpState::SynSent | EpState::SynAckSent => {
            if fin {
                set_state(c, h, EpState::Closed, to);
                do_close = true;
                gen_event = true;
            }
            if rst {
                set_state(c, h, EpState::Reset, to);
                c.tcp.is_active = false;
                do_close = true;
            }
        }
        EpState::Established | EpState::Partial => {
            if syn
                && c.tcp.ep[h].state == EpState::Partial
                && c.tcp.ep[p].state == EpState::Inactive
                && !ack
            {
                set_state(c, h, EpState::SynSent, to);
            }
            if fin && !rst {
                set_state(c, h, EpState::Closed, to);
                let peer = &c.tcp.ep[p];
                if peer.state == EpState::Reset && peer.prev_state == EpState::Closed {
                    // FIN then RST from the peer was a normal close after all.
                    set_state(c, p, EpState::Closed, to);
                }
                do_close = true;
                gen_event = true;
            }
            if rst {
                set_state(c, h, EpState::Reset, to);
                do_close = true;
                let peer = &c.tcp.ep[p];
                if peer.state != EpState::Reset || peer.prev_state != EpState::Established {
                    c.tcp.is_active = false;
                }
            }
        }
        EpState::Closed => {
            if rst && c.tcp.ep[p].state != EpState::Closed {
                set_state(c, h, EpState::Reset, to);
                if !c.tcp.ep[h].did_close {
                    do_close = true;
                }
                c.add_timer(now, to.tcp_reset_delay, TimerKind::Reset);
            }
        }
        EpState::Reset => {}
    }
    (do_close, gen_event)
}

fn is_clean(e: &Endpoint) -> bool {
    e.state == EpState::Established
        || (e.state == EpState::Closed && e.prev_state == EpState::Established)
}

/// A content gap in `e`'s data: acknowledged by the peer but never seen.
fn gap(c: &mut Conn, e: usize, len: u64) {
    if is_clean(&c.tcp.ep[e]) && is_clean(&c.tcp.ep[e ^ 1]) {
        scaled(c, e, b'G', |x| &mut x.gap);
        c.missed_bytes += len;
    }
}

/// Zeek's `TCP_Reassembler::AckReceived` for endpoint `e`'s data.
fn ack_received(c: &mut Conn, e: usize, seq: u64, to: &Timeouts) {
    let ep = &c.tcp.ep[e];
    let mut seq = seq;
    if ep.fin_cnt > 0 && seq >= ep.fin_seq {
        seq = ep.fin_seq.wrapping_sub(1);
    }
    if seq <= ep.reasm.trim_seq {
        return;
    }
    trim_to_seq(c, e, seq);
    check_eof(c, e, to);
}

fn trim_to_seq(c: &mut Conn, e: usize, seq: u64) {
    if seq > c.tcp.ep[e].reasm.last_reassem_seq {
        undelivered(c, e, seq);
    }
    let r = &mut c.tcp.ep[e].reasm;
    r.blocks.remove_below(seq);
    if let Some(first) = r.blocks.first() {
        if first.0 == r.last_reassem_seq {
            block_inserted(c, e, first);
        }
    }
    let r = &mut c.tcp.ep[e].reasm;
    r.trim_seq = r.trim_seq.max(seq);
}

fn undelivered(c: &mut Conn, e: usize, up_to: u64) {
    if up_to <= 2 && c.tcp.is_partial {
        // The faked SYN (or a keep-alive) of a partial connection: not a gap.
        return;
    }
    if !c.tcp.ep[e].reasm.skip {
        loop {
            let r = &c.tcp.ep[e].reasm;
            let lrs = r.last_reassem_seq;
            let next = r
                .blocks
                .as_slice()
                .iter()
                .copied()
                .find(|&(s, _)| s >= lrs && s < up_to);
            let Some((s, end)) = next else { break };
            if s > lrs {
                gap(c, e, s - lrs);
            }
            c.tcp.ep[e].reasm.last_reassem_seq = end;
        }
        let lrs = c.tcp.ep[e].reasm.last_reassem_seq;
        if up_to > lrs {
            gap(c, e, up_to - lrs);
        }
    }
    let r = &mut c.tcp.ep[e].reasm;
    r.last_reassem_seq = r.last_reassem_seq.max(up_to);
}

/// Deliver what became contiguous after `block` was inserted.
fn block_inserted(c: &mut Conn, e: usize, block: (u64, u64)) {
    let r = &mut c.tcp.ep[e].reasm;
    if block.0 > r.last_reassem_seq || block.1 <= r.last_reassem_seq {
        return;
    }
    if let Some((_, end)) = r.blocks.containing(r.last_reassem_seq) {
        r.last_reassem_seq = end;
    }
    let peer_state = c.tcp.ep[e ^ 1].state;
    let ep = &mut c.tcp.ep[e];
    if ep.no_data_acked() && ep.size(peer_state) > MAX_INITIAL_WINDOW {
        // Lots sent and nothing acknowledged: assume the acks are missing.
        let lrs = ep.reasm.last_reassem_seq;
        ep.reasm.blocks.remove_below(lrs);
        ep.reasm.trim_seq = ep.reasm.trim_seq.max(lrs);
    }
}

fn data_sent(c: &mut Conn, e: usize, seq: u64, len: u64, complete: bool) {
    if !complete || c.tcp.ep[e].reasm.skip {
        // Payload cut by the snaplen never reaches the reassembler: once
        // acknowledged it is a content gap, as in Zeek.
        return;
    }
    let r = &mut c.tcp.ep[e].reasm;
    let upper = seq.saturating_add(len);
    if upper > r.trim_seq {
        let start = seq.max(r.trim_seq);
        r.blocks.insert(start, upper);
        block_inserted(c, e, (start, upper));
    }
    let ep = &mut c.tcp.ep[e];
    let r = &ep.reasm;
    let undelivered = r
        .blocks
        .last()
        .map_or(0, |(_, end)| end.saturating_sub(r.last_reassem_seq));
    if (ep.no_data_acked() && undelivered > MAX_ABOVE_HOLE_WITHOUT_ACKS)
        || r.blocks.bytes() > EXCESSIVE_DATA_WITHOUT_ACKS
    {
        ep.reasm.blocks.clear();
        ep.reasm.skip = true;
    }
}

/// Zeek's `TCP_Reassembler::DataPending` for endpoint `e`.
fn data_pending(c: &Conn, e: usize) -> bool {
    let ep = &c.tcp.ep[e];
    let r = &ep.reasm;
    if r.skip {
        return false;
    }
    let delivered = (ep.start_seq as u64).wrapping_add(r.last_reassem_seq);
    let last = full_seq(ep.last_seq, ep.seq_wraps);
    if last < delivered {
        return false;
    }
    if delivered != last.wrapping_sub(1) && delivered != last {
        return true;
    }
    ep.state != EpState::Reset && !c.tcp.ep[e ^ 1].reasm.blocks.is_empty()
}

fn check_eof(c: &mut Conn, e: usize, to: &Timeouts) {
    let ep = &c.tcp.ep[e];
    if ep.reasm.did_eof
        || !(ep.fin_cnt > 0 || matches!(ep.state, EpState::Closed | EpState::Reset))
        || data_pending(c, e)
    {
        return;
    }
    c.tcp.ep[e].reasm.did_eof = true;
    if c.tcp.close_deferred {
        let gen_event = c.tcp.deferred_gen_event;
        connection_closed(c, e, gen_event, to);
        c.tcp.close_deferred = false;
    }
}

fn connection_closed(c: &mut Conn, h: usize, gen_event: bool, to: &Timeouts) {
    if data_pending(c, h) {
        c.tcp.close_deferred = true;
        if !c.tcp.deferred_gen_event {
            c.tcp.deferred_gen_event = gen_event;
        }
        return;
    }
    c.tcp.close_deferred = false;
    if c.tcp.ep[h].did_close {
        return;
    }
    c.tcp.ep[h].did_close = true;
    let (ep, peer) = (&c.tcp.ep[h], &c.tcp.ep[h ^ 1]);
    let complete = ep.state == EpState::Reset || peer.did_close || peer.state == EpState::Inactive;
    if complete {
        if ep.prev_state != EpState::Inactive || peer.state != EpState::Inactive {
            let finished = gen_event || c.tcp.deferred_gen_event;
            c.tcp.deferred_gen_event = false;
            if finished {
                c.tcp.is_active = false;
            }
        }
        c.cancel_timers();
        c.add_timer(c.last, to.tcp_close_delay, TimerKind::Delete);
    } else if ep.prev_state != EpState::Inactive {
        c.add_timer(c.last, to.tcp_session_timer, TimerKind::Expire);
    }
}

/// Run one of Zeek's TCP analyzer timers; true if the connection must go.
pub(super) fn timer(c: &mut Conn, kind: TimerKind, now: Nanos, to: &Timeouts) -> bool {
    let (o, r) = (&c.tcp.ep[c.orig], &c.tcp.ep[c.orig ^ 1]);
    match kind {
        TimerKind::Attempt => {
            if c.tcp.is_active
                && matches!(o.state, EpState::SynSent | EpState::SynAckSent)
                && r.state == EpState::Inactive
            {
                c.tcp.is_active = false;
                return true;
            }
            false
        }
        TimerKind::Expire => {
            if !c.tcp.is_active {
                return false;
            }
            if c.last.saturating_add(to.tcp_connection_linger) < now {
                if (o.did_close || r.did_close)
                    && ((o.did_close && r.did_close)
                        || o.state == EpState::Reset
                        || r.state == EpState::Reset
                        || o.state == EpState::Inactive
                        || r.state == EpState::Inactive)
                {
                    c.tcp.is_active = false;
                    return true;
                }
                if r.state == EpState::Inactive && o.state == EpState::Inactive {
                    return true;
                }
            }
            c.add_timer(now, to.tcp_session_timer, TimerKind::Expire);
            false
        }
        TimerKind::Reset => c.tcp.is_active,
        TimerKind::Delete | TimerKind::DnsExpire => true,
    }
}

/// Zeek's `conn_state()` for TCP.
pub fn conn_state(
    o: &Endpoint,
    r: &Endpoint,
    osize: u64,
    rsize: u64,
    history: &History,
) -> ConnState {
    use EpState::*;
    let (os, rs) = (o.state, r.state);
    let o_inactive = matches!(os, Inactive | Partial);
    let r_inactive = matches!(rs, Inactive | Partial);
    if rs == Reset {
        if matches!(os, SynSent | SynAckSent) || (os == Reset && osize == 0 && rsize == 0) {
            ConnState::REJ
        } else if o_inactive {
            ConnState::RSTRH
        } else {
            ConnState::RSTR
        }
    } else if os == Reset {
        if r_inactive {
            if rstos0_history(history.as_bytes()) {
                ConnState::RSTOS0
            } else {
                ConnState::OTH
            }
        } else {
            ConnState::RSTO
        }
    } else if rs == Closed && os == Closed {
        ConnState::SF
    } else if os == Closed {
        if r_inactive {
            ConnState::SH
        } else {
            ConnState::S2
        }
    } else if rs == Closed {
        if o_inactive {
            ConnState::SHR
        } else {
            ConnState::S3
        }
    } else if os == SynSent && rs == Inactive {
        ConnState::S0
    } else if os == Established && rs == Established {
        ConnState::S1
    } else {
        ConnState::OTH
    }
}

/// The whole-string match of Zeek's `/\^?S[^HAFGIQ]*R.*/`.
fn rstos0_history(h: &[u8]) -> bool {
    let h = h.strip_prefix(b"^").unwrap_or(h);
    let Some(rest) = h.strip_prefix(b"S") else {
        return false;
    };
    for &b in rest {
        match b {
            b'R' => return true,
            b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
            _ => {}
        }
    }
    false
}

//! Zeek's connection timeouts (scripts/base/init-bare.zeek defaults).

use crate::source::Nanos;

const SEC: Nanos = 1_000_000_000;

/// Every timeout that decides when a connection leaves the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// An unanswered SYN is given up (S0) this long after it was sent.
    pub tcp_attempt: Nanos,
    /// TCP idle timeout once the handshake is over.
    pub tcp_inactivity: Nanos,
    /// UDP idle timeout; TCP also uses it until the handshake completes.
    pub udp_inactivity: Nanos,
    pub icmp_inactivity: Nanos,
    pub unknown_inactivity: Nanos,
    /// Idle timeout for interactive services (resp ports 21, 22, 23, 513).
    pub interactive_inactivity: Nanos,
    /// A fully closed connection is removed this long after its last packet.
    pub tcp_close_delay: Nanos,
    /// A reset that follows a FIN removes the connection after this delay.
    pub tcp_reset_delay: Nanos,
    /// First expiry check of a TCP connection, after its creation.
    pub tcp_syn_timeout: Nanos,
    /// Period of the expiry check after one side closed.
    pub tcp_session_timer: Nanos,
    /// Idle time after which a half-closed connection may be removed.
    pub tcp_connection_linger: Nanos,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_attempt: 5 * SEC,
            tcp_inactivity: 300 * SEC,
            udp_inactivity: 60 * SEC,
            icmp_inactivity: 60 * SEC,
            unknown_inactivity: 60 * SEC,
            interactive_inactivity: 3600 * SEC,
            tcp_close_delay: 5 * SEC,
            tcp_reset_delay: 5 * SEC,
            tcp_syn_timeout: 5 * SEC,
            tcp_session_timer: 6 * SEC,
            tcp_connection_linger: 5 * SEC,
        }
    }
}

/// Responder ports whose connections get the interactive timeout
/// (Zeek's `Conn::port_inactivity_timeouts`: ftp, ssh, telnet, rlogin).
pub fn is_interactive_port(port: u16) -> bool {
    matches!(port, 21 | 22 | 23 | 513)
}

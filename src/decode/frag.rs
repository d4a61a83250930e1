//! IPv4 and IPv6 fragment reassembly, enough to key and count a datagram once.
//!
//! Fragments are held per (source, destination, protocol, identification)
//! until the datagram is complete; the completed datagram is decoded as one
//! packet at the time of its last fragment (as Zeek counts it). The pool is
//! bounded in entries and bytes, and entries expire after Zeek's
//! `frag_timeout` (5 minutes) of packet time. This is the one place on the
//! packet path that allocates, and only for fragmented traffic.

use rustc_hash::FxHashMap;

use super::{Addr, IpLayer, Skip};
use crate::source::Nanos;

const FRAG_TIMEOUT: Nanos = 300 * 1_000_000_000;
const MAX_DATAGRAMS: usize = 4096;
const MAX_DATAGRAM_LEN: u32 = 65_535;

/// How a packet relates to fragmentation.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Whole,
    /// IPv6 fragment header with offset 0 and no more fragments.
    Atomic,
    Part(Fragment),
}

/// Fragment header fields of one packet.
#[derive(Clone, Copy, Debug)]
pub struct Fragment {
    id: u32,
    /// Offset of this fragment's data in the datagram, in bytes.
    offset: u32,
    more: bool,
}

impl Fragment {
    pub fn offset(&self) -> u32 {
        self.offset
    }
}

impl Kind {
    /// IPv4, from the header's bytes: more-fragments or a non-zero offset
    /// (DF is irrelevant).
    pub fn of_ipv4(header: &[u8; 20]) -> Kind {
        let flags_offset = u16::from_be_bytes([header[6], header[7]]);
        let more = flags_offset & 0x2000 != 0;
        let offset = u32::from(flags_offset & 0x1fff) * 8;
        if more || offset != 0 {
            Kind::Part(Fragment {
                id: u32::from(u16::from_be_bytes([header[4], header[5]])),
                offset,
                more,
            })
        } else {
            Kind::Whole
        }
    }

    /// IPv6, from the 8 bytes of a Fragment extension header: atomic (offset
    /// 0, no more fragments) or a real fragment.
    pub fn of_ipv6(header: &[u8]) -> Kind {
        let field = |i: usize| header.get(i).copied().unwrap_or(0);
        let flags_offset = u16::from_be_bytes([field(2), field(3)]);
        let offset = u32::from(flags_offset >> 3) * 8;
        let more = flags_offset & 1 != 0;
        if more || offset != 0 {
            Kind::Part(Fragment {
                id: u32::from_be_bytes([field(4), field(5), field(6), field(7)]),
                offset,
                more,
            })
        } else {
            Kind::Atomic
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: Addr,
    dst: Addr,
    proto: u8,
    id: u32,
}

struct Datagram {
    last_ts: Nanos,
    /// IP header length of the first fragment (for the datagram's IP length).
    header_len: Option<u32>,
    data: Vec<u8>,
    /// Byte ranges received so far, unordered.
    have: Vec<(u32, u32)>,
    /// Datagram payload length, known once the last fragment arrived.
    total: Option<u32>,
}

impl Datagram {
    fn complete(&mut self) -> bool {
        let (Some(total), Some(_)) = (self.total, self.header_len) else {
            return false;
        };
        self.have.sort_unstable();
        let mut covered = 0;
        for &(a, b) in &self.have {
            if a > covered {
                return false;
            }
            covered = covered.max(b);
        }
        covered >= total
    }
}

/// A reassembled datagram, borrowed from the pool until the next call.
pub struct Whole<'a> {
    pub ip_len: u32,
    pub payload: &'a [u8],
}

#[derive(Default)]
pub struct Pool {
    pending: FxHashMap<Key, Datagram>,
    /// The last completed datagram's payload (reused buffer).
    done: Vec<u8>,
}

impl Pool {
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Add a fragment; returns the whole datagram when this one completes it.
    pub fn add(&mut self, ts: Nanos, ip: &IpLayer<'_>, f: Fragment) -> Result<Whole<'_>, Skip> {
        let end = f.offset + ip.payload_len;
        // A length field below the payload (0 under segmentation offload)
        // cannot head a datagram.
        if end > MAX_DATAGRAM_LEN || ip.ip_len < ip.payload_len {
            return Err(Skip::BadFragment);
        }
        self.expire(ts);
        let key = Key {
            src: ip.src,
            dst: ip.dst,
            proto: ip.proto,
            id: f.id,
        };
        let d = self.pending.entry(key).or_insert_with(|| Datagram {
            last_ts: ts,
            header_len: None,
            data: Vec::new(),
            have: Vec::new(),
            total: None,
        });
        d.last_ts = ts;
        if d.data.len() < end as usize {
            d.data.resize(end as usize, 0);
        }
        d.data[f.offset as usize..end as usize]
            .copy_from_slice(&ip.payload[..ip.payload_len as usize]);
        d.have.push((f.offset, end));
        if f.offset == 0 {
            // The unfragmentable part; for IPv6 without its fragment header.
            let frag_header = if ip.v6 { 8 } else { 0 };
            d.header_len = Some((ip.ip_len - ip.payload_len).saturating_sub(frag_header));
        }
        if !f.more {
            d.total = Some(end);
        }
        if !d.complete() {
            return Err(Skip::FragmentHeld);
        }
        let Some(mut d) = self.pending.remove(&key) else {
            return Err(Skip::BadFragment);
        };
        let total = d.total.unwrap_or(0);
        d.data.truncate(total as usize);
        self.done = d.data;
        Ok(Whole {
            ip_len: d.header_len.unwrap_or(0) + total,
            payload: &self.done,
        })
    }

    fn expire(&mut self, now: Nanos) {
        if self.pending.len() >= MAX_DATAGRAMS {
            // Full: drop everything past its timeout, then the oldest.
            self.pending
                .retain(|_, d| now.saturating_sub(d.last_ts) < FRAG_TIMEOUT);
            if self.pending.len() >= MAX_DATAGRAMS {
                if let Some(oldest) = self
                    .pending
                    .iter()
                    .min_by_key(|(_, d)| d.last_ts)
                    .map(|(k, _)| *k)
                {
                    self.pending.remove(&oldest);
                }
            }
        }
    }
}

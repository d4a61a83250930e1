//! pcapng files: several sections and interfaces, per-interface link type and
//! timestamp resolution/offset, Enhanced, Simple and (obsolete) Packet blocks.
//!
//! Every block is `type u32, total_len u32, body, total_len u32`; the byte order
//! is set per section by the Section Header Block's byte-order magic. Blocks we
//! do not need (name resolution, statistics, custom, unknown) are skipped by
//! length. A block whose lengths disagree or are not 4-aligned is corruption.

use super::pcap::read_u32;
use super::{Current, Input, MAX_RECORD, Nanos, ReadError, record_start, require};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const OPB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;
/// libpcap's limit for one packet; a larger captured length is corruption.
const MAX_CAPLEN: usize = 262_144;
/// More interfaces than this in one section is hostile input, not a capture.
const MAX_INTERFACES: usize = 1 << 16;

pub fn is_pcapng(magic: &[u8]) -> bool {
    magic == SHB.to_le_bytes()
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    resolution: Resolution,
    offset_secs: i64,
}

/// Timestamp units per second: 10^n or 2^n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolution {
    Pow10(u32),
    Pow2(u32),
}

impl Resolution {
    fn from_option(byte: u8) -> Option<Resolution> {
        let n = u32::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            (n <= 19).then_some(Resolution::Pow10(n))
        } else {
            (n <= 63).then_some(Resolution::Pow2(n))
        }
    }

    fn to_nanos(self, raw: u64) -> i128 {
        let raw = i128::from(raw);
        match self {
            Resolution::Pow10(n) if n <= 9 => raw * 10i128.pow(9 - n),
            Resolution::Pow10(n) => raw / 10i128.pow(n - 9),
            Resolution::Pow2(n) => (raw * 1_000_000_000) >> n,
        }
    }
}

pub struct State {
    big_endian: bool,
    interfaces: Vec<Interface>,
    /// Simple Packet Blocks carry no timestamp; they get the previous one.
    last_ts: Nanos,
}

impl State {
    pub fn new(input: &mut Input) -> Result<State, ReadError> {
        let got = input.fill(12).map_err(|e| ReadError::from_io(0, e))?;
        if got < 12 {
            return Err(ReadError::TruncatedHeader { got, need: 12 });
        }
        Ok(State {
            big_endian: false,
            interfaces: Vec::new(),
            last_ts: 0,
        })
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        read_u32(b, at, self.big_endian)
    }

    fn u16_at(&self, b: &[u8], at: usize) -> u16 {
        let a = [b[at], b[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }

    /// Read up to the next packet block, its metadata into `cur`;
    /// `Ok(false)` at a clean end. Out of line: the read loop it would be
    /// inlined into is tuned for pcap's smaller parser.
    #[inline(never)]
    pub fn next(
        &mut self,
        input: &mut Input,
        packet: u64,
        cur: &mut Current,
    ) -> Result<bool, ReadError> {
        loop {
            if !record_start(input, 8, packet, "block header")? {
                return Ok(false);
            }
            let head = input.available();
            let raw_type = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            if raw_type == SHB {
                require(input, 12, packet, "section header")?;
                let magic = &input.available()[8..12];
                self.big_endian = if magic == BYTE_ORDER_MAGIC.to_le_bytes() {
                    false
                } else if magic == BYTE_ORDER_MAGIC.to_be_bytes() {
                    true
                } else {
                    return Err(corrupt(packet, "section header has no byte-order magic"));
                };
                self.interfaces.clear();
            }
            let head = input.available();
            let block_type = self.u32_at(head, 0);
            let total = self.u32_at(head, 4) as usize;
            if total < 12 || total % 4 != 0 {
                return Err(corrupt(
                    packet,
                    &format!("block of type {block_type:#x} has invalid length {total}"),
                ));
            }
            if total > MAX_RECORD {
                return Err(corrupt(
                    packet,
                    &format!(
                        "block of type {block_type:#x} is {total} bytes, over the 16 MiB limit"
                    ),
                ));
            }
            require(input, total, packet, "block")?;
            let block = &input.available()[..total];
            if self.u32_at(block, total - 4) as usize != total {
                return Err(corrupt(
                    packet,
                    "block's trailing length does not match its header",
                ));
            }
            let body = &block[8..total - 4];
            let found = match block_type {
                SHB => {
                    if body.len() < 16 {
                        return Err(corrupt(packet, "section header block too short"));
                    }
                    None
                }
                IDB => {
                    self.add_interface(body, packet)?;
                    None
                }
                EPB => Some(self.enhanced(body, packet)?),
                OPB => Some(self.obsolete(body, packet)?),
                SPB => Some(self.simple(body, packet)?),
                _ => None,
            };
            match found {
                Some(found) => {
                    *cur = Current {
                        data_off: found.data_off + 8,
                        record_len: total,
                        ..found
                    };
                    self.last_ts = found.ts;
                    return Ok(true);
                }
                None => input.consume(total),
            }
        }
    }

    fn add_interface(&mut self, body: &[u8], packet: u64) -> Result<(), ReadError> {
        if body.len() < 8 {
            return Err(corrupt(packet, "interface description block too short"));
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(corrupt(packet, "too many interfaces in one section"));
        }
        let mut iface = Interface {
            linktype: u32::from(self.u16_at(body, 0)),
            snaplen: self.u32_at(body, 4),
            resolution: Resolution::Pow10(6),
            offset_secs: 0,
        };
        let mut opts = &body[8..];
        while opts.len() >= 4 {
            let code = self.u16_at(opts, 0);
            let len = usize::from(self.u16_at(opts, 2));
            if code == OPT_ENDOFOPT {
                break;
            }
            let padded = (len + 3) & !3;
            if 4 + padded > opts.len() {
                return Err(corrupt(packet, "interface option runs past its block"));
            }
            let value = &opts[4..4 + len];
            match code {
                OPT_IF_TSRESOL if len >= 1 => {
                    iface.resolution = Resolution::from_option(value[0]).ok_or_else(|| {
                        corrupt(
                            packet,
                            &format!("unsupported timestamp resolution {:#x}", value[0]),
                        )
                    })?;
                }
                OPT_IF_TSOFFSET if len >= 8 => {
                    let b: [u8; 8] = value[..8].try_into().unwrap_or([0; 8]);
                    iface.offset_secs = if self.big_endian {
                        i64::from_be_bytes(b)
                    } else {
                        i64::from_le_bytes(b)
                    };
                }
                _ => {}
            }
            opts = &opts[4 + padded..];
        }
        self.interfaces.push(iface);
        Ok(())
    }

    fn interface(&self, id: usize, packet: u64) -> Result<Interface, ReadError> {
        self.interfaces.get(id).copied().ok_or_else(|| {
            corrupt(
                packet,
                &format!(
                    "packet refers to interface {id}, but {} are defined",
                    self.interfaces.len()
                ),
            )
        })
    }

    fn timestamp(
        &self,
        iface: Interface,
        hi: u32,
        lo: u32,
        packet: u64,
    ) -> Result<Nanos, ReadError> {
        let raw = (u64::from(hi) << 32) | u64::from(lo);
        let ns = iface.resolution.to_nanos(raw) + i128::from(iface.offset_secs) * 1_000_000_000;
        Nanos::try_from(ns).map_err(|_| corrupt(packet, "timestamp out of range"))
    }

    /// Enhanced Packet Block: iface, ts hi/lo, caplen, origlen, data.
    fn enhanced(&self, body: &[u8], packet: u64) -> Result<Current, ReadError> {
        if body.len() < 20 {
            return Err(corrupt(packet, "enhanced packet block too short"));
        }
        let iface = self.interface(self.u32_at(body, 0) as usize, packet)?;
        let ts = self.timestamp(iface, self.u32_at(body, 4), self.u32_at(body, 8), packet)?;
        let caplen = self.u32_at(body, 12) as usize;
        let wire = self.u32_at(body, 16);
        packet_in_block(iface, ts, caplen, wire, 20, body.len(), packet)
    }

    /// Obsolete Packet Block: iface u16, drops u16, ts hi/lo, caplen, len, data.
    fn obsolete(&self, body: &[u8], packet: u64) -> Result<Current, ReadError> {
        if body.len() < 20 {
            return Err(corrupt(packet, "packet block too short"));
        }
        let iface = self.interface(usize::from(self.u16_at(body, 0)), packet)?;
        let ts = self.timestamp(iface, self.u32_at(body, 4), self.u32_at(body, 8), packet)?;
        let caplen = self.u32_at(body, 12) as usize;
        let wire = self.u32_at(body, 16);
        packet_in_block(iface, ts, caplen, wire, 20, body.len(), packet)
    }

    /// Simple Packet Block: origlen, data cut to the interface snaplen.
    fn simple(&self, body: &[u8], packet: u64) -> Result<Current, ReadError> {
        if body.len() < 4 {
            return Err(corrupt(packet, "simple packet block too short"));
        }
        let iface = self.interface(0, packet)?;
        let wire = self.u32_at(body, 0);
        let mut caplen = (wire as usize).min(body.len() - 4);
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen as usize);
        }
        packet_in_block(iface, self.last_ts, caplen, wire, 4, body.len(), packet)
    }
}

fn packet_in_block(
    iface: Interface,
    ts: Nanos,
    caplen: usize,
    wire: u32,
    data_off: usize,
    body_len: usize,
    packet: u64,
) -> Result<Current, ReadError> {
    if caplen > MAX_CAPLEN {
        return Err(corrupt(
            packet,
            &format!("captured length {caplen} exceeds the 256 KiB maximum"),
        ));
    }
    if data_off + caplen > body_len {
        return Err(corrupt(
            packet,
            &format!("captured length {caplen} runs past its block"),
        ));
    }
    Ok(Current {
        ts,
        linktype: iface.linktype,
        wire_len: wire.max(caplen as u32),
        data_off,
        caplen,
        record_len: 0,
    })
}

fn corrupt(packet: u64, detail: &str) -> ReadError {
    ReadError::Corrupt {
        packet,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::CaptureReader;
    use super::*;
    use std::io::Cursor;

    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let total = (body.len() + 12) as u32;
        let mut b = kind.to_le_bytes().to_vec();
        b.extend_from_slice(&total.to_le_bytes());
        b.extend_from_slice(&body);
        b.extend_from_slice(&total.to_le_bytes());
        b
    }

    pub fn shb() -> Vec<u8> {
        let mut body = BYTE_ORDER_MAGIC.to_le_bytes().to_vec();
        body.extend_from_slice(&[1, 0, 0, 0]);
        body.extend_from_slice(&(-1i64).to_le_bytes());
        block(SHB, &body)
    }

    pub fn idb(linktype: u16, tsresol: Option<u8>) -> Vec<u8> {
        let mut body = linktype.to_le_bytes().to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&65535u32.to_le_bytes());
        if let Some(r) = tsresol {
            body.extend_from_slice(&OPT_IF_TSRESOL.to_le_bytes());
            body.extend_from_slice(&1u16.to_le_bytes());
            body.extend_from_slice(&[r, 0, 0, 0]);
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        block(IDB, &body)
    }

    pub fn epb(iface: u32, ts_raw: u64, data: &[u8]) -> Vec<u8> {
        let mut body = iface.to_le_bytes().to_vec();
        body.extend_from_slice(&((ts_raw >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ts_raw as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        block(EPB, &body)
    }

    fn reader(bytes: Vec<u8>) -> CaptureReader {
        CaptureReader::from_input(Input::from_reader(Box::new(Cursor::new(bytes))).unwrap(), 0)
            .unwrap()
    }

    #[test]
    fn per_interface_link_types_and_resolutions() {
        let mut f = shb();
        f.extend(idb(1, None));
        f.extend(idb(101, Some(9)));
        f.extend(block(0x0BAD, b"unknown block is skipped"));
        f.extend(epb(0, 1_500_000, b"ether"));
        f.extend(epb(1, 2_000_000_007, b"rawip"));
        let mut r = reader(f);
        assert!(r.advance().unwrap());
        let p = r.current().unwrap();
        assert_eq!(
            (p.ts, p.linktype, p.data),
            (1_500_000_000, 1, &b"ether"[..])
        );
        assert!(r.advance().unwrap());
        let p = r.current().unwrap();
        assert_eq!((p.ts, p.linktype, p.number), (2_000_000_007, 101, 2));
        assert!(!r.advance().unwrap());
    }

    #[test]
    fn binary_resolution() {
        assert_eq!(
            Resolution::from_option(0x8a).unwrap().to_nanos(1024 * 3),
            3_000_000_000
        );
    }

    #[test]
    fn misaligned_block_is_corrupt() {
        let mut f = shb();
        f.extend(idb(1, None));
        let mut bad = epb(0, 1, b"abcd");
        bad[4] = 33; // length not a multiple of 4
        f.extend(bad);
        let mut r = reader(f);
        let err = r.advance().unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt at packet 1: block of type 0x6 has invalid length 33"
        );
    }

    #[test]
    fn truncated_block_keeps_earlier_packets() {
        let mut f = shb();
        f.extend(idb(1, None));
        f.extend(epb(0, 1, b"one"));
        f.extend(epb(0, 2, b"two"));
        f.truncate(f.len() - 6);
        let mut r = reader(f);
        assert!(r.advance().unwrap());
        let err = r.advance().unwrap_err();
        assert_eq!(
            err.to_string(),
            "truncated at packet 2: block needs 36 bytes, only 30 left"
        );
    }

    #[test]
    fn unknown_interface_is_corrupt() {
        let mut f = shb();
        f.extend(epb(3, 1, b"x"));
        let err = reader(f).advance().unwrap_err();
        assert!(err.to_string().contains("interface 3, but 0 are defined"));
    }
}

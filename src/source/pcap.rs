//! Classic libpcap files: microsecond or nanosecond timestamps, either byte order.
//!
//! File header (24 bytes): magic, version, thiszone, sigfigs, snaplen, network.
//! Record header (16 bytes): ts_sec, ts_frac, incl_len, orig_len, then the frame.

use super::{Current, Input, MAX_RECORD, ReadError, record_start, require};

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;
/// libpcap refuses larger packets (MAXIMUM_SNAPLEN); so do we.
const MAX_CAPLEN: u32 = 262_144;

pub fn is_pcap(magic: &[u8]) -> bool {
    let le = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
    let be = u32::from_be_bytes([magic[0], magic[1], magic[2], magic[3]]);
    [MAGIC_US, MAGIC_NS].contains(&le) || [MAGIC_US, MAGIC_NS].contains(&be)
}

pub struct State {
    big_endian: bool,
    nanos: bool,
    linktype: u32,
}

impl State {
    pub fn new(input: &mut Input) -> Result<State, ReadError> {
        let got = input
            .fill(FILE_HEADER)
            .map_err(|e| ReadError::from_io(0, e))?;
        if got < FILE_HEADER {
            return Err(ReadError::TruncatedHeader {
                got,
                need: FILE_HEADER,
            });
        }
        let h = &input.available()[..FILE_HEADER];
        let le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let big_endian = !(le == MAGIC_US || le == MAGIC_NS);
        let rd = |i: usize| read_u32(h, i, big_endian);
        let nanos = rd(0) == MAGIC_NS;
        // The upper bits of `network` carry FCS information; the link type is the low 16.
        let linktype = rd(20) & 0xffff;
        input.consume(FILE_HEADER);
        Ok(State {
            big_endian,
            nanos,
            linktype,
        })
    }

    /// Read the next record's header into `cur`; `Ok(false)` at a clean end.
    pub fn next(
        &mut self,
        input: &mut Input,
        packet: u64,
        cur: &mut Current,
    ) -> Result<bool, ReadError> {
        if !record_start(input, RECORD_HEADER, packet, "record header")? {
            return Ok(false);
        }
        let h = &input.available()[..RECORD_HEADER];
        let secs = read_u32(h, 0, self.big_endian);
        let frac = read_u32(h, 4, self.big_endian);
        let caplen = read_u32(h, 8, self.big_endian);
        let wire_len = read_u32(h, 12, self.big_endian);
        if caplen > MAX_CAPLEN {
            return Err(ReadError::Corrupt {
                packet,
                detail: format!("captured length {caplen} exceeds the 256 KiB maximum"),
            });
        }
        // A fraction of a second or more (a writer that rounded 999,999.5
        // µs up) carries into the seconds, as libpcap and so tcpdump and
        // Zeek read it, instead of ending the file there.
        let frac_ns = if self.nanos {
            i64::from(frac)
        } else {
            i64::from(frac) * 1000
        };
        let record_len = RECORD_HEADER + caplen as usize;
        debug_assert!(record_len <= MAX_RECORD);
        require(input, record_len, packet, "packet data")?;
        *cur = Current {
            ts: i64::from(secs) * 1_000_000_000 + frac_ns,
            linktype: self.linktype,
            // A writer that set orig_len below incl_len is wrong; trust what is there.
            wire_len: wire_len.max(caplen),
            data_off: RECORD_HEADER,
            caplen: caplen as usize,
            record_len,
        };
        Ok(true)
    }
}

#[inline]
pub(super) fn read_u32(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CaptureReader, FileFormat, testutil::pcap_file};
    use super::*;
    use std::io::Cursor;

    fn reader(bytes: Vec<u8>) -> Result<CaptureReader, ReadError> {
        CaptureReader::from_input(Input::from_reader(Box::new(Cursor::new(bytes))).unwrap(), 0)
    }

    #[test]
    fn reads_micro_le() {
        let f = pcap_file(1, &[(1_500_000, b"abcd"), (2_000_001, b"xy")]);
        let mut r = reader(f).unwrap();
        assert_eq!(r.format(), FileFormat::Pcap);
        assert!(r.advance().unwrap());
        let p = r.current().unwrap();
        assert_eq!(
            (p.ts, p.linktype, p.data, p.number),
            (1_500_000_000, 1, &b"abcd"[..], 1)
        );
        assert!(r.advance().unwrap());
        assert_eq!(r.current().unwrap().ts, 2_000_001_000);
        assert!(!r.advance().unwrap());
    }

    #[test]
    fn reads_nanos_big_endian() {
        let mut f = Vec::new();
        f.extend_from_slice(&MAGIC_NS.to_be_bytes());
        f.extend_from_slice(&[0, 2, 0, 4]);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_be_bytes());
        f.extend_from_slice(&101u32.to_be_bytes());
        f.extend_from_slice(&7u32.to_be_bytes());
        f.extend_from_slice(&123_456_789u32.to_be_bytes());
        f.extend_from_slice(&3u32.to_be_bytes());
        f.extend_from_slice(&60u32.to_be_bytes());
        f.extend_from_slice(b"abc");
        let mut r = reader(f).unwrap();
        assert!(r.advance().unwrap());
        let p = r.current().unwrap();
        assert_eq!((p.ts, p.linktype, p.wire_len), (7_123_456_789, 101, 60));
    }

    #[test]
    fn truncated_record_keeps_earlier_packets() {
        let mut f = pcap_file(1, &[(1, b"first"), (2, b"second")]);
        f.truncate(f.len() - 3);
        let mut r = reader(f).unwrap();
        assert!(r.advance().unwrap());
        let err = r.advance().unwrap_err();
        assert!(err.is_damage());
        assert_eq!(
            err.to_string(),
            "truncated at packet 2: packet data needs 22 bytes, only 19 left"
        );
    }

    #[test]
    fn fraction_of_a_second_or_more_carries_into_the_seconds() {
        let mut f = pcap_file(1, &[(1_999_999, b"a"), (2_000_001, b"b")]);
        f[24 + 4..24 + 8].copy_from_slice(&1_000_000u32.to_le_bytes());
        let mut r = reader(f).unwrap();
        assert!(r.advance().unwrap());
        assert_eq!(r.current().unwrap().ts, 2_000_000_000);
        assert!(r.advance().unwrap());
        assert_eq!(r.current().unwrap().ts, 2_000_001_000);
        assert!(!r.advance().unwrap());
    }

    #[test]
    fn truncated_file_header() {
        let f = pcap_file(1, &[]);
        let err = reader(f[..10].to_vec()).err().unwrap();
        assert_eq!(
            err.to_string(),
            "capture file header is truncated (10 of 24 bytes)"
        );
    }

    #[test]
    fn oversized_caplen_is_corrupt() {
        let mut f = pcap_file(1, &[(1, b"x")]);
        f[24 + 8..24 + 12].copy_from_slice(&(1u32 << 20).to_le_bytes());
        let mut r = reader(f).unwrap();
        let err = r.advance().unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt at packet 1: captured length 1048576 exceeds the 256 KiB maximum"
        );
    }
}

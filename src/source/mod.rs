//! Reading sources: capture files (pcap, pcapng, gzip'd, stdin) and, for live
//! capture, libpcap handles.
//!
//! Rules of this layer:
//! - it yields raw frames with their link type and a nanosecond timestamp,
//!   borrowed from the reader's buffer; nothing here looks inside a frame;
//! - damage is reported as a [`ReadError`] carrying the packet number, after
//!   every intact packet before it was yielded (a truncated file still gives
//!   everything read before the damage);
//! - several inputs are one capture: [`Merge`] interleaves them by timestamp.

pub mod filter;
mod input;
pub mod live;
mod merge;
mod pcap;
mod pcapng;

pub use input::{Compression, Input, MAX_RECORD};
pub use merge::Merge;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Nanoseconds since the Unix epoch: the only clock sockscope uses.
pub type Nanos = i64;

/// One captured frame, borrowed from a reader.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    pub ts: Nanos,
    /// LINKTYPE_* value (pcap-linktype registry numbering).
    pub linktype: u32,
    /// Length of the frame on the wire; `data.len()` is what was captured.
    pub wire_len: u32,
    pub data: &'a [u8],
    /// 1-based packet number within its input file.
    pub number: u64,
    /// Index of the input this packet came from.
    pub input: usize,
}

/// What went wrong while reading a capture; `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("file is empty")]
    Empty,
    #[error("not a pcap or pcapng capture (starts with {0})")]
    NotACapture(String),
    #[error("capture file header is truncated ({got} of {need} bytes)")]
    TruncatedHeader { got: usize, need: usize },
    #[error("truncated at packet {packet}: {detail}")]
    Truncated { packet: u64, detail: String },
    #[error("corrupt at packet {packet}: {detail}")]
    Corrupt { packet: u64, detail: String },
    #[error("read failed at packet {packet}: {source}")]
    Io { packet: u64, source: io::Error },
}

impl ReadError {
    /// True for damage found after the header: the packets before it are good.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            ReadError::Truncated { .. } | ReadError::Corrupt { .. } | ReadError::Io { .. }
        )
    }

    /// Map an I/O error at `packet`: a gzip stream that ends early is truncation.
    fn from_io(packet: u64, e: io::Error) -> ReadError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ReadError::Truncated {
                packet,
                detail: format!("compressed stream ends early ({e})"),
            }
        } else {
            ReadError::Io { packet, source: e }
        }
    }
}

/// A [`ReadError`] with the file it happened in.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct SourceError {
    pub path: PathBuf,
    /// Which input (in command-line order): paths may repeat or not be text.
    pub input: usize,
    #[source]
    pub kind: ReadError,
}

/// Opening a file failed before any capture parsing.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Metadata of the record a reader currently holds.
#[derive(Clone, Copy, Debug, Default)]
struct Current {
    ts: Nanos,
    linktype: u32,
    wire_len: u32,
    /// Offset of the frame from the input's read position.
    data_off: usize,
    caplen: usize,
    /// Bytes to consume before reading the next record.
    record_len: usize,
}

/// A capture file reader: pcap or pcapng, decided by the file's magic.
pub struct CaptureReader {
    input: Input,
    format: Format,
    /// The record `advance` moved to, valid while `held`. The formats store
    /// it here (pcap builds it in place): returned through
    /// `Result<Option<_>>` it was copied in wide loads from narrow stores,
    /// a store-forwarding stall per packet.
    current: Current,
    held: bool,
    /// Packets yielded so far.
    count: u64,
    index: usize,
}

enum Format {
    Pcap(pcap::State),
    Pcapng(pcapng::State),
}

/// Which container format a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    Pcap,
    Pcapng,
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileFormat::Pcap => "pcap",
            FileFormat::Pcapng => "pcapng",
        })
    }
}

impl CaptureReader {
    /// Open a capture file (or `-` for stdin), detecting gzip and the format.
    pub fn open(path: &Path, index: usize) -> Result<CaptureReader, OpenOrRead> {
        let input = Input::open(path).map_err(|source| {
            OpenOrRead::Open(OpenError {
                path: path.to_path_buf(),
                source,
            })
        })?;
        CaptureReader::from_input(input, index).map_err(|kind| {
            OpenOrRead::Read(SourceError {
                path: path.to_path_buf(),
                input: index,
                kind,
            })
        })
    }

    /// The input's index, as given to [`CaptureReader::open`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Start reading a capture from an already opened input.
    pub fn from_input(mut input: Input, index: usize) -> Result<CaptureReader, ReadError> {
        let got = input.fill(4).map_err(|e| ReadError::from_io(0, e))?;
        if got == 0 {
            return Err(ReadError::Empty);
        }
        let head = input.available();
        let format = if head.len() >= 4 && pcapng::is_pcapng(&head[..4]) {
            Format::Pcapng(pcapng::State::new(&mut input)?)
        } else if head.len() >= 4 && pcap::is_pcap(&head[..4]) {
            Format::Pcap(pcap::State::new(&mut input)?)
        } else {
            let shown: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
            return Err(ReadError::NotACapture(shown.join(" ")));
        };
        Ok(CaptureReader {
            input,
            format,
            current: Current::default(),
            held: false,
            count: 0,
            index,
        })
    }

    pub fn format(&self) -> FileFormat {
        match self.format {
            Format::Pcap(_) => FileFormat::Pcap,
            Format::Pcapng(_) => FileFormat::Pcapng,
        }
    }

    pub fn compression(&self) -> Compression {
        self.input.compression()
    }

    /// Bytes of the (decompressed) stream read so far.
    pub fn offset(&self) -> u64 {
        self.input.offset()
    }

    /// Move to the next packet. `Ok(false)` at a clean end of file.
    /// Inlined into the read loop, see [`merge::Merge::next_packet`].
    #[inline(always)]
    pub fn advance(&mut self) -> Result<bool, ReadError> {
        if std::mem::take(&mut self.held) {
            self.input.consume(self.current.record_len);
        }
        let next = self.count + 1;
        let cur = &mut self.current;
        self.held = match &mut self.format {
            Format::Pcap(st) => st.next(&mut self.input, next, cur)?,
            Format::Pcapng(st) => st.next(&mut self.input, next, cur)?,
        };
        if self.held {
            self.count = next;
        }
        Ok(self.held)
    }

    /// The packet `advance` moved to.
    pub fn current(&self) -> Option<RawPacket<'_>> {
        let c = &self.current;
        self.held.then(|| RawPacket {
            ts: c.ts,
            linktype: c.linktype,
            wire_len: c.wire_len,
            data: self.input.window(c.data_off, c.caplen),
            number: self.count,
            input: self.index,
        })
    }

    /// Timestamp of the current packet, for merging.
    pub fn current_ts(&self) -> Option<Nanos> {
        self.held.then_some(self.current.ts)
    }
}

/// Failure to open a capture: either the file itself or its header.
#[derive(Debug, thiserror::Error)]
pub enum OpenOrRead {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Read(#[from] SourceError),
}

/// Look ahead `n` bytes for a new record: `Ok(false)` at a clean end of file,
/// truncation if the file ends inside them.
fn record_start(input: &mut Input, n: usize, packet: u64, what: &str) -> Result<bool, ReadError> {
    let got = input.fill(n).map_err(|e| ReadError::from_io(packet, e))?;
    if got == 0 {
        return Ok(false);
    }
    short(got, n, packet, what)?;
    Ok(true)
}

/// Look ahead `n` bytes inside a record: anything short is truncation.
fn require(input: &mut Input, n: usize, packet: u64, what: &str) -> Result<(), ReadError> {
    let got = input.fill(n).map_err(|e| ReadError::from_io(packet, e))?;
    short(got, n, packet, what)
}

fn short(got: usize, n: usize, packet: u64, what: &str) -> Result<(), ReadError> {
    if got >= n {
        Ok(())
    } else {
        Err(ReadError::Truncated {
            packet,
            detail: format!("{what} needs {n} bytes, only {got} left"),
        })
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Writers for small synthetic captures used by the readers' tests.

    /// A classic pcap file (µs, little-endian) with the given frames.
    pub fn pcap_file(linktype: u32, frames: &[(i64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&linktype.to_le_bytes());
        for (ts_us, data) in frames {
            out.extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }
}

#[cfg(test)]
mod properties {
    //! Readers never panic or loop on damaged files: they yield packets
    //! until the damage, then one error, then nothing.

    use super::testutil::pcap_file;
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    /// Read to the end; returns packets read before an error, if any.
    fn read_all(bytes: Vec<u8>) -> u64 {
        let Ok(mut r) = Input::from_reader(Box::new(Cursor::new(bytes)))
            .map_err(|e| ReadError::from_io(0, e))
            .and_then(|i| CaptureReader::from_input(i, 0))
        else {
            return 0;
        };
        let mut n = 0;
        // Each step consumes at least one record header, so this ends.
        while let Ok(true) = r.advance() {
            let p = r.current().map(|p| p.data.len()).unwrap_or(0);
            assert!(p <= 256 * 1024);
            n += 1;
        }
        n
    }

    /// A minimal pcapng file: section header, one Ethernet interface.
    fn pcapng_head() -> Vec<u8> {
        let mut f = Vec::new();
        for w in [0x0a0d_0d0au32, 28, 0x1a2b_3c4d] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f.extend_from_slice(&[1, 0, 0, 0]);
        f.extend_from_slice(&u64::MAX.to_le_bytes());
        f.extend_from_slice(&28u32.to_le_bytes());
        for w in [1u32, 20, 1, 0, 20] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn pcap_with_arbitrary_records(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut f = pcap_file(1, &[]);
            f.extend_from_slice(&tail);
            read_all(f);
        }

        #[test]
        fn pcapng_with_arbitrary_blocks(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut f = pcapng_head();
            f.extend_from_slice(&tail);
            read_all(f);
        }

        #[test]
        fn damaged_pcap_keeps_what_precedes_the_damage(
            cut in 0usize..200,
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..4),
        ) {
            let frames: Vec<(i64, &[u8])> =
                (0..5).map(|i| (i * 1000, &b"0123456789abcdef"[..])).collect();
            let whole = pcap_file(1, &frames);
            let mut f = whole.clone();
            for (at, v) in flips {
                if at < f.len() {
                    f[at] = v;
                }
            }
            f.truncate(cut.min(f.len()));
            let n = read_all(f.clone());
            if f.len() >= 24 && f[..24] == whole[..24] {
                // Records wholly before the first damaged byte all come out.
                let first_bad = f.iter().zip(&whole).position(|(a, b)| a != b).unwrap_or(f.len());
                let intact = (first_bad.saturating_sub(24)) / 32;
                prop_assert!(n as usize >= intact.min(5), "{n} < {intact}");
            }
        }
    }
}

//! Byte input for capture readers: a file, stdin, or either gzip-compressed.
//!
//! Rules of this layer:
//! - compression is detected by magic bytes (`1f 8b`), never by file name;
//! - readers borrow packet bytes straight out of one reusable buffer, so the
//!   per-packet path neither copies into a fresh allocation nor allocates;
//! - the buffer only grows to hold the largest single record seen (records are
//!   bounded by the readers, see `MAX_RECORD`).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

/// The largest capture record a reader will accept; anything larger is treated
/// as corruption (libpcap's own limit for a packet is 256 KiB; pcapng blocks
/// carry options and padding on top, and some tools write 16 MiB blocks).
pub const MAX_RECORD: usize = 16 << 20;

const CHUNK: usize = 1 << 20;

/// What the bytes came from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// A buffered byte stream with look-ahead, from which readers take records.
pub struct Input {
    inner: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Start of unread bytes in `buf`.
    pos: usize,
    /// End of valid bytes in `buf`.
    end: usize,
    eof: bool,
    /// Bytes consumed before `buf[0]` (for progress and error offsets).
    base: u64,
    compression: Compression,
}

impl Input {
    /// Open a path, or stdin for `-`, detecting gzip by its magic bytes.
    pub fn open(path: &Path) -> io::Result<Input> {
        let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path)?)
        };
        Input::from_reader(raw)
    }

    /// Wrap any reader, detecting gzip by its magic bytes.
    pub fn from_reader(raw: Box<dyn Read + Send>) -> io::Result<Input> {
        let mut plain = Input::plain(raw);
        plain.fill(2)?;
        if plain.available().starts_with(&[0x1f, 0x8b]) {
            // Hand the bytes already read back to the decoder in front of the rest.
            let head = plain.available().to_vec();
            let rest = plain.inner;
            let chained: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(rest));
            let mut gz = Input::plain(Box::new(MultiGzDecoder::new(chained)));
            gz.compression = Compression::Gzip;
            return Ok(gz);
        }
        Ok(plain)
    }

    fn plain(inner: Box<dyn Read + Send>) -> Input {
        Input {
            inner,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            base: 0,
            compression: Compression::None,
        }
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The unread bytes currently buffered.
    #[inline]
    pub fn available(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Offset in the (decompressed) stream of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Make at least `n` bytes available unless the stream ends first.
    /// Returns how many are available (less than `n` only at end of stream).
    #[inline]
    pub fn fill(&mut self, n: usize) -> io::Result<usize> {
        if self.end - self.pos >= n {
            return Ok(self.end - self.pos);
        }
        self.fill_slow(n)
    }

    #[cold]
    fn fill_slow(&mut self, n: usize) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() < n {
            self.buf.resize(n.next_power_of_two(), 0);
        }
        while self.end < n && !self.eof {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.pos)
    }

    /// Mark `n` available bytes as read.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.pos);
        self.pos += n;
    }

    /// Bytes `[from, from+len)` of the available window (used after `fill`).
    #[inline]
    pub fn window(&self, from: usize, len: usize) -> &[u8] {
        &self.buf[self.pos + from..self.pos + from + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_is_detected_by_magic() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"hello capture").unwrap();
        let gz = enc.finish().unwrap();
        let mut input = Input::from_reader(Box::new(io::Cursor::new(gz))).unwrap();
        assert_eq!(input.compression(), Compression::Gzip);
        assert_eq!(input.fill(13).unwrap(), 13);
        assert_eq!(input.available(), b"hello capture");
    }

    #[test]
    fn plain_bytes_pass_through_and_refill_across_chunks() {
        let data: Vec<u8> = (0..3 * CHUNK + 7).map(|i| i as u8).collect();
        let mut input = Input::from_reader(Box::new(io::Cursor::new(data.clone()))).unwrap();
        assert_eq!(input.compression(), Compression::None);
        let mut seen = Vec::new();
        loop {
            let n = input.fill(1000).unwrap().min(1000);
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&input.available()[..n]);
            input.consume(n);
        }
        assert_eq!(seen, data);
    }
}

//! Several inputs read as one capture, interleaved by timestamp.
//!
//! A damaged input reports its error once and then stops contributing; the
//! others go on, so a truncated file in a rotation loses only its own tail.

use std::path::{Path, PathBuf};

use super::{CaptureReader, Nanos, RawPacket, SourceError};

struct Slot {
    reader: CaptureReader,
    path: PathBuf,
    /// False once the reader reached its end or failed.
    live: bool,
}

pub struct Merge {
    slots: Vec<Slot>,
    /// Readers that must advance before the next pick (all, at the start).
    pending: Vec<usize>,
}

impl Slot {
    /// Move to the input's next packet: false at its end, and from then on
    /// (after damage too, which is reported once).
    /// Inlined into the read loop, see [`Merge::next_packet`].
    #[inline(always)]
    fn advance(&mut self) -> Result<bool, SourceError> {
        if !self.live {
            return Ok(false);
        }
        match self.reader.advance() {
            Ok(more) => {
                self.live = more;
                Ok(more)
            }
            Err(kind) => {
                self.live = false;
                Err(SourceError {
                    path: self.path.clone(),
                    input: self.reader.index(),
                    kind,
                })
            }
        }
    }
}

impl Merge {
    pub fn new(readers: Vec<(PathBuf, CaptureReader)>) -> Merge {
        let pending = (0..readers.len()).rev().collect();
        Merge {
            slots: readers
                .into_iter()
                .map(|(path, reader)| Slot {
                    reader,
                    path,
                    live: true,
                })
                .collect(),
            pending,
        }
    }

    /// The next packet in timestamp order (ties keep input order), `Ok(None)`
    /// when every input is exhausted. After an `Err`, calling again continues
    /// with the remaining inputs.
    ///
    /// The read loop: `Slot::advance` and [`CaptureReader::advance`] are
    /// inlined here and pcap's record parser called. Left to rustc's split
    /// of the crate into codegen units, whether they were inlined changed
    /// from build to build with edits elsewhere (160 to 193 instructions
    /// per packet); out of line, bench_1g took 25–29 ms longer (two sets of
    /// 31 paired runs, faster in 21 and 20 inlined).
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, SourceError> {
        // A single input (almost every run) has nothing to interleave.
        if self.slots.len() == 1 {
            let slot = &mut self.slots[0];
            return Ok(if slot.advance()? {
                slot.reader.current()
            } else {
                None
            });
        }
        while let Some(i) = self.pending.pop() {
            self.slots[i].advance()?;
        }
        let mut best: Option<(usize, Nanos)> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            if !slot.live {
                continue;
            }
            if let Some(ts) = slot.reader.current_ts() {
                if best.is_none_or(|(_, b)| ts < b) {
                    best = Some((i, ts));
                }
            }
        }
        match best {
            Some((i, _)) => {
                self.pending.push(i);
                Ok(self.slots[i].reader.current())
            }
            None => Ok(None),
        }
    }

    /// Decompressed bytes consumed over all inputs (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.slots.iter().map(|s| s.reader.offset()).sum()
    }

    /// The path of input `index`, for messages.
    pub fn path(&self, index: usize) -> &Path {
        &self.slots[index].path
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Input, testutil::pcap_file};
    use super::*;
    use std::io::Cursor;

    fn reader(bytes: Vec<u8>, index: usize) -> CaptureReader {
        CaptureReader::from_input(
            Input::from_reader(Box::new(Cursor::new(bytes))).unwrap(),
            index,
        )
        .unwrap()
    }

    #[test]
    fn interleaves_by_timestamp() {
        let a = pcap_file(1, &[(1, b"a1"), (4, b"a4")]);
        let b = pcap_file(1, &[(2, b"b2"), (3, b"b3"), (5, b"b5")]);
        let mut m = Merge::new(vec![("a".into(), reader(a, 0)), ("b".into(), reader(b, 1))]);
        let mut seen = Vec::new();
        while let Some(p) = m.next_packet().unwrap() {
            seen.push(p.data.to_vec());
        }
        let want: Vec<Vec<u8>> = ["a1", "b2", "b3", "a4", "b5"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn damaged_input_reports_once_and_others_continue() {
        let mut a = pcap_file(1, &[(1, b"a1"), (3, b"a3")]);
        a.truncate(a.len() - 1);
        let b = pcap_file(1, &[(2, b"b2"), (4, b"b4")]);
        let mut m = Merge::new(vec![("a".into(), reader(a, 0)), ("b".into(), reader(b, 1))]);
        let mut seen = Vec::new();
        let mut errors = Vec::new();
        loop {
            match m.next_packet() {
                Ok(Some(p)) => seen.push(p.data.to_vec()),
                Ok(None) => break,
                Err(e) => errors.push(e.to_string()),
            }
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(
            errors,
            vec!["a: truncated at packet 2: packet data needs 18 bytes, only 17 left"]
        );
    }
}

//! Bounded memory for the tables: connections past one chunk, and the values
//! each aggregate sorts by group, wait in temporary files instead of memory.
//!
//! Rules of this module:
//! - what fits in one chunk never touches a file: a capture of up to
//!   [`CHUNK`] connections is tabled wholly in memory, as before;
//! - past that, memory is a chunk of rows, two chunks' worth of values being
//!   sorted into a run, and the blocks of the runs being merged, which share
//!   a fixed budget (down to a floor per run that a billion connections
//!   would take to matter);
//! - a temporary file is unlinked as soon as it is created (it lives as long
//!   as its handle), so no run, finished or killed, leaves one behind; it is
//!   made in the output directory, on disk, not in a `/tmp` that may be RAM;
//! - reads are positional, so the two table threads read the same rows at once.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Connections held in memory before they go to a file (128 Ki rows, 10 MiB);
/// a sorted run holds twice as many values.
pub const CHUNK: usize = 1 << 17;

/// Bytes read or written per positional call.
const BLOCK: usize = 1 << 16;

/// Items read back from a file per slice handed out.
const PIECE: usize = 8192;

/// A row's group when it is in none.
pub const NO_GROUP: u32 = u32::MAX;

/// Bytes of blocks that the runs of one merge share, and the fewest pairs a
/// run's block holds however many runs there are.
const MERGE_BUDGET: usize = 4 << 20;
const MIN_BLOCK: usize = 256;

/// A fixed-size binary form, for values kept in temporary files.
pub trait Fixed: Copy {
    const SIZE: usize;
    fn put(&self, out: &mut [u8]);
    fn get(bytes: &[u8]) -> Self;
}

/// A value with its group number, as the sorted runs hold them.
pub type Pair = (u32, u64);

/// Pairs of the sorted runs.
impl Fixed for Pair {
    const SIZE: usize = 12;
    fn put(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.0.to_le_bytes());
        out[4..12].copy_from_slice(&self.1.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        let mut g = [0; 4];
        let mut v = [0; 8];
        g.copy_from_slice(&b[..4]);
        v.copy_from_slice(&b[4..12]);
        (u32::from_le_bytes(g), u64::from_le_bytes(v))
    }
}

/// Group numbers beside the rows they number.
impl Fixed for u32 {
    const SIZE: usize = 4;
    fn put(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

/// Single values, in the tests' stores.
#[cfg(test)]
impl Fixed for u64 {
    const SIZE: usize = 8;
    fn put(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        let mut v = [0; 8];
        v.copy_from_slice(&b[..8]);
        u64::from_le_bytes(v)
    }
}

/// A file in `dir` that is already unlinked, appended to and read by offset.
struct TempFile {
    file: File,
    len: u64,
    /// The name it had, for messages.
    path: PathBuf,
}

impl TempFile {
    fn create(dir: &Path) -> io::Result<TempFile> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".spill-{}-{n}.tmp", std::process::id()));
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path);
            match opened {
                Ok(file) => {
                    fs::remove_file(&path).map_err(|e| named(&path, e))?;
                    return Ok(TempFile { file, len: 0, path });
                }
                // Left by a killed run whose process id was ours: next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(named(&path, e)),
            }
        }
    }

    /// Append `items` encoded, a block at a time; after an error nothing of
    /// them counts as written.
    fn append<T: Fixed>(&mut self, items: impl Iterator<Item = T>) -> io::Result<()> {
        let start = self.len;
        let written = self.append_blocks(items);
        if written.is_err() {
            self.len = start;
        }
        written
    }

    fn append_blocks<T: Fixed>(&mut self, items: impl Iterator<Item = T>) -> io::Result<()> {
        let mut block = Vec::with_capacity(BLOCK);
        for item in items {
            let at = block.len();
            block.resize(at + T::SIZE, 0);
            item.put(&mut block[at..]);
            if block.len() + T::SIZE > BLOCK {
                self.write(&block)?;
                block.clear();
            }
        }
        self.write(&block)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file
            .write_all_at(bytes, self.len)
            .map_err(|e| named(&self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Decode `count` items from `offset` into `out` (cleared first),
    /// through `bytes`.
    fn read<T: Fixed>(
        &self,
        offset: u64,
        count: usize,
        bytes: &mut Vec<u8>,
        out: &mut Vec<T>,
    ) -> io::Result<()> {
        bytes.resize(count * T::SIZE, 0);
        self.file
            .read_exact_at(bytes, offset)
            .map_err(|e| named(&self.path, e))?;
        out.clear();
        out.extend(bytes.chunks_exact(T::SIZE).map(T::get));
        Ok(())
    }
}

/// An I/O error that names the temporary file.
fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("temporary file {}: {e}", path.display()))
}

/// Items in arrival order: the latest chunk in memory, earlier ones in a file.
pub struct Chunked<T: Fixed> {
    dir: PathBuf,
    chunk: usize,
    mem: Vec<T>,
    file: Option<TempFile>,
    /// Items in the file, whole chunks.
    spilled: usize,
}

impl<T: Fixed> Chunked<T> {
    /// Items spill into `dir` once more than [`CHUNK`] arrived.
    pub fn new(dir: &Path) -> Chunked<T> {
        Chunked::with_chunk(dir, CHUNK)
    }

    pub fn with_chunk(dir: &Path, chunk: usize) -> Chunked<T> {
        Chunked {
            dir: dir.to_path_buf(),
            chunk: chunk.max(1),
            mem: Vec::new(),
            file: None,
            spilled: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.spilled + self.mem.len()
    }

    pub fn push(&mut self, item: T) -> io::Result<()> {
        if self.mem.len() == self.chunk {
            let file = match &mut self.file {
                Some(f) => f,
                None => self.file.insert(TempFile::create(&self.dir)?),
            };
            file.append(self.mem.iter().copied())?;
            self.spilled += self.mem.len();
            self.mem.clear();
        }
        self.mem.push(item);
        Ok(())
    }

    /// The items in the file, a piece at a time: (first item, count).
    fn pieces(&self) -> impl Iterator<Item = (usize, usize)> + use<T> {
        let spilled = self.spilled;
        (0..spilled)
            .step_by(PIECE)
            .map(move |start| (start, PIECE.min(spilled - start)))
    }

    /// An empty store that spills where and when this one does: filled in
    /// step with it, the two can be read together by [`Chunked::scan_with`].
    pub fn beside<U: Fixed>(&self) -> Chunked<U> {
        Chunked::with_chunk(&self.dir, self.chunk)
    }

    /// Every item with its counterpart in `other`, a store made by
    /// [`Chunked::beside`] and filled in step: the same items spilled, so
    /// the pieces line up.
    pub fn scan_with<U: Fixed, E: From<io::Error>>(
        &self,
        other: &Chunked<U>,
        mut f: impl FnMut(&[T], &[U]) -> Result<(), E>,
    ) -> Result<(), E> {
        debug_assert_eq!((self.len(), self.chunk), (other.len(), other.chunk));
        if let (Some(a), Some(b)) = (&self.file, &other.file) {
            let (mut bytes, mut mine, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
            for (start, n) in self.pieces() {
                a.read((start * T::SIZE) as u64, n, &mut bytes, &mut mine)?;
                b.read((start * U::SIZE) as u64, n, &mut bytes, &mut theirs)?;
                f(&mine, &theirs)?;
            }
        }
        f(&self.mem, &other.mem)
    }

    /// Every item, if all are in memory (at most a chunk of them).
    pub fn memory(&self) -> Option<&[T]> {
        self.file.is_none().then_some(&self.mem[..])
    }

    /// Every item in arrival order, a slice at a time.
    pub fn scan<E: From<io::Error>>(
        &self,
        mut f: impl FnMut(&[T]) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(file) = &self.file {
            let (mut bytes, mut items) = (Vec::new(), Vec::new());
            for (start, n) in self.pieces() {
                file.read((start * T::SIZE) as u64, n, &mut bytes, &mut items)?;
                f(&items)?;
            }
        }
        f(&self.mem)
    }
}

/// Each group's values side by side: a counting sort by group number, so
/// that every aggregate then sorts only its own group's 8-byte values in
/// place (one sort of all (group, value) pairs moved twice the bytes and
/// compared pairs; on the clients table, most groups hold one or two).
/// Its cost has a term per group, which is why a run with fewer pairs than
/// groups sorts its pairs instead.
struct Grouped {
    /// Where each group's values begin; a group ends where the next begins.
    starts: Vec<usize>,
    values: Vec<u64>,
}

/// Groups at least this large are radix sorted (below it, the comparison
/// sort's few compares cost less than the radix sort's 256 counters a pass).
const RADIX_FROM: usize = 256;

/// Groups at least this large are sorted with 11-bit digits.
const WIDE_DIGITS_FROM: usize = 8192;

/// What [`radix_sort`] reuses from group to group: the values' other
/// buffer and the digit counters.
#[derive(Default)]
struct RadixScratch {
    values: Vec<u64>,
    counts: Vec<usize>,
}

/// Sort by the bits in which the values differ, a digit at a time, least
/// significant first, moving them between `values` and `scratch`. The
/// values of one group differ in few bits (client ids in 15-20, event times
/// in 40-45), so a big group (a server port's, with tens of thousands of
/// connections) takes a few linear passes where a comparison sort took a
/// pass per halving. Digits are 11 bits for big groups (fewer passes, and
/// 2048 counters still fit in the L1 cache), 8 below.
fn radix_sort(values: &mut [u64], scratch: &mut RadixScratch) {
    let Some(&first) = values.first() else {
        return;
    };
    let differ = values.iter().fold(0, |d, &v| d | (v ^ first));
    if differ == 0 {
        return;
    }
    let width = if values.len() >= WIDE_DIGITS_FROM {
        11
    } else {
        8
    };
    let (low, high) = (differ.trailing_zeros(), u64::BITS - differ.leading_zeros());
    let RadixScratch {
        values: scratch,
        counts: at,
    } = scratch;
    scratch.clear();
    scratch.resize(values.len(), 0);
    at.resize(1 << width, 0);
    let at = &mut at[..1 << width];
    let mut in_scratch = false;
    let mask = (1u64 << width) - 1;
    let shifts = (low..high).step_by(width as usize);
    for shift in shifts.filter(|s| (differ >> s) & mask != 0) {
        let (from, to) = if in_scratch {
            (&scratch[..], &mut values[..])
        } else {
            (&values[..], &mut scratch[..])
        };
        let digit = |v: u64| ((v >> shift) & mask) as usize;
        at.fill(0);
        for &v in from {
            at[digit(v)] += 1;
        }
        let mut total = 0;
        for a in at.iter_mut() {
            (*a, total) = (total, total + *a);
        }
        for &v in from {
            let d = digit(v);
            to[at[d]] = v;
            at[d] += 1;
        }
        in_scratch = !in_scratch;
    }
    if in_scratch {
        values.copy_from_slice(scratch);
    }
}

/// (group, value) pairs that can be listed more than once: the counting
/// sort reads them twice, so they need not be held as pairs.
trait Pairs {
    fn each(&self, f: impl FnMut(u32, u64));
}

impl Pairs for [Pair] {
    fn each(&self, mut f: impl FnMut(u32, u64)) {
        self.iter().for_each(|&(g, v)| f(g, v));
    }
}

/// The values `emit` gives for rows in memory, with the rows' groups.
struct Emitted<'a, T, F> {
    rows: &'a [T],
    groups: &'a [u32],
    emit: &'a F,
}

impl<T, F: Fn(&T, u32) -> Values> Pairs for Emitted<'_, T, F> {
    fn each(&self, mut f: impl FnMut(u32, u64)) {
        for (r, &g) in self.rows.iter().zip(self.groups) {
            if g != NO_GROUP {
                (self.emit)(r, g).iter().for_each(|v| f(g, v));
            }
        }
    }
}

impl Grouped {
    fn new(groups: usize, pairs: &(impl Pairs + ?Sized)) -> Grouped {
        // First each group's end; filling each group from its end backwards
        // then leaves every cursor at its group's start.
        let mut cursor = vec![0usize; groups];
        pairs.each(|g, _| cursor[g as usize] += 1);
        let mut total = 0;
        for c in &mut cursor {
            total += *c;
            *c = total;
        }
        let mut values = vec![0; total];
        pairs.each(|g, v| {
            let at = &mut cursor[g as usize];
            *at -= 1;
            values[*at] = v;
        });
        let mut grouped = Grouped {
            starts: cursor,
            values,
        };
        let largest = (0..groups).map(|g| grouped.range(g).len()).max();
        let mut scratch = RadixScratch {
            values: Vec::with_capacity(largest.filter(|&n| n >= RADIX_FROM).unwrap_or(0)),
            counts: Vec::new(),
        };
        for g in 0..groups {
            let range = grouped.range(g);
            let group = &mut grouped.values[range];
            if group.len() >= RADIX_FROM {
                radix_sort(group, &mut scratch);
            } else {
                group.sort_unstable();
            }
        }
        grouped
    }

    fn range(&self, g: usize) -> std::ops::Range<usize> {
        let end = self.starts.get(g + 1).copied().unwrap_or(self.values.len());
        self.starts[g]..end
    }

    /// (group, value) in order of group, then value.
    fn pairs(&self) -> impl Iterator<Item = Pair> + '_ {
        (0..self.starts.len()).flat_map(move |g| {
            self.values[self.range(g)]
                .iter()
                .map(move |&v| (g as u32, v))
        })
    }
}

/// The values one row gives an aggregate: one, or up to three events of a
/// socket (its opening, its closing, and the end of its port's TIME_WAIT).
#[derive(Clone, Copy)]
pub struct Values {
    len: u8,
    values: [u64; 3],
}

impl Values {
    /// A row an aggregate answers without sorting.
    pub const NONE: Values = Values {
        len: 0,
        values: [0; 3],
    };

    pub fn one(v: u64) -> Values {
        Values {
            len: 1,
            values: [v, 0, 0],
        }
    }

    pub fn two(a: u64, b: u64) -> Values {
        Values {
            len: 2,
            values: [a, b, 0],
        }
    }

    pub fn three(a: u64, b: u64, c: u64) -> Values {
        Values {
            len: 3,
            values: [a, b, c],
        }
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.values[..usize::from(self.len)].iter().copied()
    }
}

/// Values by group number, sorted within each group: what the tables'
/// distinct counts, medians and peaks read in one pass.
pub struct ByGroup {
    sorted: Sorted,
    /// Values per group (and so how many groups).
    sizes: Vec<u64>,
}

enum Sorted {
    /// The values fitted in one run.
    Memory(Grouped),
    Runs(Runs),
}

/// Sorted runs in a temporary file.
struct Runs {
    file: TempFile,
    /// (offset, pairs) of each run.
    list: Vec<(u64, usize)>,
    /// Values per group over all runs.
    sizes: Vec<u64>,
}

impl Runs {
    fn create(dir: &Path, groups: usize) -> io::Result<Runs> {
        Ok(Runs {
            file: TempFile::create(dir)?,
            list: Vec::new(),
            sizes: vec![0; groups],
        })
    }

    /// Sort `pairs` into a new run and clear them.
    fn add(&mut self, pairs: &mut Vec<Pair>) -> io::Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let groups = self.sizes.len();
        for &(g, _) in pairs.iter() {
            self.sizes[g as usize] += 1;
        }
        self.list.push((self.file.len, pairs.len()));
        // The counting sort costs a pass over every group: with more groups
        // than pairs (a flood's clients), once per run, it is the pairs'
        // own sort that is cheaper.
        if groups > pairs.len() {
            pairs.sort_unstable();
            self.file.append(pairs.iter().copied())?;
        } else {
            let grouped = Grouped::new(groups, &pairs[..]);
            self.file.append(grouped.pairs())?;
        }
        pairs.clear();
        Ok(())
    }
}

impl ByGroup {
    /// Sort, by group, the values `emit` gives for each row of `rows` whose
    /// group in `of` (filled in step with the rows) is not [`NO_GROUP`];
    /// groups are numbered below `groups`. In runs of two values per row of
    /// a chunk, kept in memory if one run holds them all; `pairs` is scratch
    /// space for a run, left empty.
    pub fn collect<T: Fixed, E: From<io::Error>>(
        rows: &Chunked<T>,
        of: &Chunked<u32>,
        groups: usize,
        pairs: &mut Vec<Pair>,
        emit: impl Fn(&T, u32) -> Values,
    ) -> Result<ByGroup, E> {
        if let (Some(rows), Some(of)) = (rows.memory(), of.memory()) {
            let emitted = Emitted {
                rows,
                groups: of,
                emit: &emit,
            };
            return Ok(ByGroup::memory(Grouped::new(groups, &emitted)));
        }
        let run = 2 * rows.chunk;
        pairs.clear();
        let mut runs: Option<Runs> = None;
        rows.scan_with(of, |rows_slice, of_slice| -> Result<(), E> {
            for (r, &g) in rows_slice.iter().zip(of_slice) {
                if g == NO_GROUP {
                    continue;
                }
                pairs.extend(emit(r, g).iter().map(|v| (g, v)));
                if pairs.len() >= run {
                    let runs = match &mut runs {
                        Some(r) => r,
                        None => runs.insert(Runs::create(&rows.dir, groups)?),
                    };
                    runs.add(pairs)?;
                }
            }
            Ok(())
        })?;
        Ok(match runs {
            None => {
                let grouped = Grouped::new(groups, &pairs[..]);
                pairs.clear();
                ByGroup::memory(grouped)
            }
            Some(mut runs) => {
                runs.add(pairs)?;
                ByGroup {
                    sizes: std::mem::take(&mut runs.sizes),
                    sorted: Sorted::Runs(runs),
                }
            }
        })
    }

    fn memory(grouped: Grouped) -> ByGroup {
        let groups = grouped.starts.len();
        ByGroup {
            sizes: (0..groups).map(|g| grouped.range(g).len() as u64).collect(),
            sorted: Sorted::Memory(grouped),
        }
    }

    /// How many values group `g` holds.
    pub fn size(&self, g: u32) -> u64 {
        self.sizes[g as usize]
    }

    /// Fold every group's values in ascending order, starting each group
    /// from `init`; `step` gets the group's accumulator, its number and the value.
    pub fn fold<A: Clone>(
        &self,
        init: A,
        mut step: impl FnMut(&mut A, u32, u64),
    ) -> io::Result<Vec<A>> {
        let mut acc = vec![init; self.sizes.len()];
        match &self.sorted {
            Sorted::Memory(grouped) => {
                for (g, a) in acc.iter_mut().enumerate() {
                    for &v in &grouped.values[grouped.range(g)] {
                        step(a, g as u32, v);
                    }
                }
            }
            Sorted::Runs(runs) => {
                let k = runs.list.len();
                // Decoded pairs take 16 bytes in memory, 12 in the file.
                let decoded = std::mem::size_of::<Pair>();
                let block =
                    (MERGE_BUDGET / (k.max(1) * decoded)).clamp(MIN_BLOCK, BLOCK / Pair::SIZE);
                let mut readers = runs
                    .list
                    .iter()
                    .map(|&(offset, len)| Run::new(&runs.file, offset, len, block))
                    .collect::<Vec<_>>();
                let mut bytes = Vec::new();
                let mut heads = BinaryHeap::with_capacity(k);
                for (i, r) in readers.iter_mut().enumerate() {
                    if let Some(p) = r.next(&mut bytes)? {
                        heads.push(Reverse((p, i)));
                    }
                }
                // The smallest head is replaced by its run's next pair in
                // place: one sift per value instead of a pop and a push.
                while let Some(mut top) = heads.peek_mut() {
                    let Reverse(((g, v), i)) = *top;
                    step(&mut acc[g as usize], g, v);
                    match readers[i].next(&mut bytes)? {
                        Some(p) => *top = Reverse((p, i)),
                        None => {
                            PeekMut::pop(top);
                        }
                    }
                }
            }
        }
        Ok(acc)
    }
}

/// One sorted run being read back, a block at a time.
struct Run<'a> {
    file: &'a TempFile,
    offset: u64,
    /// Pairs still in the file, and per block.
    left: usize,
    per_block: usize,
    block: Vec<Pair>,
    at: usize,
}

impl<'a> Run<'a> {
    fn new(file: &'a TempFile, offset: u64, len: usize, per_block: usize) -> Run<'a> {
        Run {
            file,
            offset,
            left: len,
            per_block,
            block: Vec::new(),
            at: 0,
        }
    }

    /// The next pair, reading a block through `bytes` when one is used up.
    fn next(&mut self, bytes: &mut Vec<u8>) -> io::Result<Option<Pair>> {
        if self.at == self.block.len() {
            if self.left == 0 {
                return Ok(None);
            }
            let n = self.per_block.min(self.left);
            self.file.read(self.offset, n, bytes, &mut self.block)?;
            self.offset += (n * Pair::SIZE) as u64;
            self.left -= n;
            self.at = 0;
        }
        self.at += 1;
        Ok(Some(self.block[self.at - 1]))
    }
}

/// Values by group from (group, values) rows, `chunk` values to a chunk in
/// the system's temporary directory: what the tables' tests aggregate.
#[cfg(test)]
pub(super) fn by_group(rows: &[(u32, Values)], groups: usize, chunk: usize) -> ByGroup {
    let mut stored = Chunked::with_chunk(&std::env::temp_dir(), chunk);
    let mut of = stored.beside();
    for (g, values) in rows {
        for v in values.iter() {
            stored.push(v).unwrap();
            of.push(*g).unwrap();
        }
    }
    ByGroup::collect::<_, io::Error>(&stored, &of, groups, &mut Vec::new(), |&v, _| {
        Values::one(v)
    })
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(c: &Chunked<Pair>) -> Vec<Pair> {
        let mut out = Vec::new();
        c.scan(|chunk| -> io::Result<()> {
            out.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn chunks_come_back_in_order_and_leave_no_file() {
        let d = std::env::temp_dir().join(format!("sockscope-spill-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let items: Vec<Pair> = (0..23u32).map(|i| (i, u64::from(i) * 1000)).collect();
        let mut c = Chunked::with_chunk(&d, 5);
        for it in &items {
            c.push(*it).unwrap();
        }
        assert_eq!(c.len(), 23);
        assert_eq!(all(&c), items);
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            0,
            "the spill file is unlinked"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    /// Groups' sorted values, read back by a fold.
    fn sorted(pairs: &[Pair], groups: usize, chunk: usize) -> Vec<Vec<u64>> {
        let rows: Vec<_> = pairs.iter().map(|&(g, v)| (g, Values::one(v))).collect();
        let by = by_group(&rows, groups, chunk);
        let got = by
            .fold(Vec::new(), |acc: &mut Vec<u64>, _, v| acc.push(v))
            .unwrap();
        for (g, values) in got.iter().enumerate() {
            assert_eq!(by.size(g as u32), values.len() as u64);
        }
        got
    }

    #[test]
    fn radix_sort_orders_as_sort_unstable() {
        let mut x = 99u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x
        };
        let mut scratch = RadixScratch::default();
        // Values differing in every byte, in a few middle bytes (event
        // times), in none (one repeated value); lengths odd and even.
        for (n, mask) in [
            (1000, u64::MAX),
            (777, 0xff_ff00_0000),
            (300, 0),
            (0, 1),
            (WIDE_DIGITS_FROM, u64::MAX),
            (WIDE_DIGITS_FROM + 5, 0x3_ffff_fffe),
        ] {
            let mut v: Vec<u64> = (0..n).map(|_| (next() & mask) | 1 << 63).collect();
            let mut expect = v.clone();
            expect.sort_unstable();
            radix_sort(&mut v, &mut scratch);
            assert_eq!(v, expect, "n {n} mask {mask:x}");
        }
    }

    #[test]
    fn runs_merge_to_what_one_chunk_sorts() {
        // A pseudo-random spread of 3000 pairs over 17 groups, one empty.
        let mut x = 12345u64;
        let pairs: Vec<Pair> = (0..3000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (((x >> 33) % 16) as u32, (x >> 40) % 500)
            })
            .collect();
        let whole = sorted(&pairs, 17, 10_000);
        assert!(whole[16].is_empty());
        for chunk in [1, 7, 999, 2999] {
            assert_eq!(sorted(&pairs, 17, chunk), whole, "chunk {chunk}");
        }
        let mut expect: Vec<u64> = pairs.iter().filter(|p| p.0 == 3).map(|p| p.1).collect();
        expect.sort_unstable();
        assert_eq!(whole[3], expect);
    }
}

//! Packets and bytes over time, per direction, at a resolution that adapts so
//! memory stays bounded whatever the capture's length; saved as
//! traffic.parquet so charts can be rebuilt without the capture.

use std::path::Path;

use polars::prelude::*;

use crate::source::Nanos;

use super::frame::ParquetFile;
use super::output::OutputError;
use super::parquet::{ColumnDef, Kind};
use super::timeline::on_grid;

/// traffic.parquet's columns: one row per slot.
const COLUMNS: &[ColumnDef] = &[
    ("slot_start", Kind::Time),
    ("slot_width", Kind::Span),
    ("packets_to_server", Kind::U64),
    ("packets_to_client", Kind::U64),
    ("ip_bytes_to_server", Kind::U64),
    ("ip_bytes_to_client", Kind::U64),
];

const MAX_SLOTS: usize = 1 << 16;
const START_RESOLUTION: Nanos = 1_000_000;

/// Counters of one time slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub packets_to_server: u64,
    pub packets_to_client: u64,
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
}

impl Slot {
    fn absorb(&mut self, o: Slot) {
        self.packets_to_server += o.packets_to_server;
        self.packets_to_client += o.packets_to_client;
        self.bytes_to_server += o.bytes_to_server;
        self.bytes_to_client += o.bytes_to_client;
    }
}

#[derive(Clone, Debug)]
pub struct Traffic {
    origin: Option<Nanos>,
    resolution: Nanos,
    slots: Vec<Slot>,
    /// The slot the last packet fell in and the times it covers: packets
    /// mostly arrive in time order, and finding a slot is a division.
    last: (usize, Nanos, Nanos),
}

/// No slot is cached (an empty range).
const NO_SLOT: (usize, Nanos, Nanos) = (0, 0, 0);

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            origin: None,
            resolution: START_RESOLUTION,
            slots: Vec::new(),
            last: NO_SLOT,
        }
    }
}

/// The slot edge at or before `ts`: slots start on whole milliseconds, as
/// the timeline's bins do, so a bin of whole slots counts exactly the
/// packets in it (a slot starting at the first packet straddled every
/// bin edge).
fn first_edge(ts: Nanos) -> Nanos {
    on_grid(ts, START_RESOLUTION)
}

impl Traffic {
    /// Count one packet of `ip_bytes` at `ts`, sent by the originator or not.
    #[inline]
    pub fn add(&mut self, ts: Nanos, ip_bytes: u32, to_server: bool) {
        let (cached, from, until) = self.last;
        let i = if from <= ts && ts < until {
            cached
        } else {
            self.slot_of(ts)
        };
        let s = &mut self.slots[i];
        if to_server {
            s.packets_to_server += 1;
            s.bytes_to_server += u64::from(ip_bytes);
        } else {
            s.packets_to_client += 1;
            s.bytes_to_client += u64::from(ip_bytes);
        }
    }

    /// The slot `ts` falls in, made if needed (coarsening to stay within
    /// `MAX_SLOTS`), and remembered for the next packet.
    fn slot_of(&mut self, ts: Nanos) -> usize {
        let origin = *self.origin.get_or_insert(first_edge(ts));
        let mut i = (ts.saturating_sub(origin) / self.resolution).max(0) as usize;
        while i >= MAX_SLOTS {
            self.coarsen();
            i = (ts.saturating_sub(origin) / self.resolution) as usize;
        }
        if i >= self.slots.len() {
            self.slots.resize(i + 1, Slot::default());
        }
        // Times before the origin count in slot 0 but are not cached in it.
        let from = origin.saturating_add(i as Nanos * self.resolution);
        self.last = (i, from, from.saturating_add(self.resolution));
        i
    }

    /// Count from `ts` (the capture's first packet) unless counting started.
    pub fn start(&mut self, ts: Nanos) {
        self.origin.get_or_insert(first_edge(ts));
    }

    /// Add the counts of `other`, which started at the same time.
    pub fn merge(&mut self, mut other: Traffic) {
        if other.origin.is_none() {
            return;
        }
        if self.origin.is_none() {
            *self = other;
            return;
        }
        while self.resolution < other.resolution {
            self.coarsen();
        }
        while other.resolution < self.resolution {
            other.coarsen();
        }
        if self.slots.len() < other.slots.len() {
            self.slots.resize(other.slots.len(), Slot::default());
        }
        for (s, o) in self.slots.iter_mut().zip(other.slots) {
            s.absorb(o);
        }
    }

    /// Halve the resolution: merge slots pairwise.
    fn coarsen(&mut self) {
        self.last = NO_SLOT;
        self.resolution *= 2;
        // In place: the slots' pages stay mapped for the next doubling (a
        // fresh vector each time cost about 2,000 page faults on bench_1g).
        let n = self.slots.len().div_ceil(2);
        for i in 0..n {
            let mut s = self.slots[2 * i];
            if let Some(&b) = self.slots.get(2 * i + 1) {
                s.absorb(b);
            }
            self.slots[i] = s;
        }
        self.slots.truncate(n);
    }

    pub fn resolution(&self) -> Nanos {
        self.resolution
    }

    /// (slot start, counters) for every slot.
    pub fn slots(&self) -> impl Iterator<Item = (Nanos, &Slot)> {
        let origin = self.origin.unwrap_or(0);
        let res = self.resolution;
        self.slots
            .iter()
            .enumerate()
            .map(move |(i, s)| (origin + i as Nanos * res, s))
    }

    /// Rebuild from traffic.parquet.
    pub fn read(path: &Path) -> PolarsResult<Traffic> {
        let df = LazyFrame::scan_parquet(
            path.to_string_lossy().as_ref().into(),
            ScanArgsParquet::default(),
        )?
        .with_columns([
            col("slot_start").cast(DataType::Int64),
            col("slot_width").cast(DataType::Int64),
        ])
        .collect()?;
        let get = |name: &str| -> PolarsResult<Vec<u64>> {
            Ok(df.column(name)?.u64()?.into_no_null_iter().collect())
        };
        let starts: Vec<i64> = df
            .column("slot_start")?
            .i64()?
            .into_no_null_iter()
            .collect();
        let width = df
            .column("slot_width")?
            .i64()?
            .into_no_null_iter()
            .next()
            .unwrap_or(START_RESOLUTION);
        let (ps, pc, bs, bc) = (
            get("packets_to_server")?,
            get("packets_to_client")?,
            get("ip_bytes_to_server")?,
            get("ip_bytes_to_client")?,
        );
        let slots = (0..starts.len())
            .map(|i| Slot {
                packets_to_server: ps[i],
                packets_to_client: pc[i],
                bytes_to_server: bs[i],
                bytes_to_client: bc[i],
            })
            .collect();
        Ok(Traffic {
            origin: starts.first().copied(),
            resolution: width.max(1),
            slots,
            last: NO_SLOT,
        })
    }

    pub fn write(&self, dir: &Path) -> Result<(), OutputError> {
        let mut file = ParquetFile::create(dir, "traffic.parquet", COLUMNS)?;
        for (start, s) in self.slots() {
            file.row(|row| {
                row.nanos(start)
                    .nanos(self.resolution)
                    .uint(s.packets_to_server)
                    .uint(s.packets_to_client)
                    .uint(s.bytes_to_server)
                    .uint(s.bytes_to_client);
            })?;
        }
        file.finish().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarsens_to_stay_bounded() {
        let mut t = Traffic::default();
        t.add(0, 100, true);
        t.add(3_600_000_000_000, 60, false); // an hour later
        assert!(t.slots.len() <= MAX_SLOTS);
        assert!(t.resolution() > START_RESOLUTION);
        let total: u64 = t
            .slots()
            .map(|(_, s)| s.bytes_to_server + s.bytes_to_client)
            .sum();
        assert_eq!(total, 160);
        assert_eq!(t.slots().last().unwrap().1.packets_to_client, 1);
    }

    #[test]
    fn out_of_order_and_early_packets_land_in_their_own_slots() {
        let mut t = Traffic::default();
        t.start(1_000_000_000);
        for ts in [
            1_000_500_000,
            1_003_200_000,
            1_000_900_000,
            999_000_000, // before the first packet: slot 0
            1_003_999_999,
            1_001_000_000,
        ] {
            t.add(ts, 1, true);
        }
        let counts: Vec<u64> = t.slots().map(|(_, s)| s.packets_to_server).collect();
        assert_eq!(counts, [3, 1, 0, 2]);
    }

    #[test]
    fn shards_merge_into_the_single_count() {
        let packets: Vec<(Nanos, u32, bool)> = (0..2000)
            .map(|i| (i * 7_000_000_000 + i % 13, 40 + i as u32, i % 3 == 0))
            .collect();
        let mut one = Traffic::default();
        let (mut a, mut b) = (Traffic::default(), Traffic::default());
        a.start(packets[0].0);
        b.start(packets[0].0);
        for (i, &(ts, len, up)) in packets.iter().enumerate() {
            one.add(ts, len, up);
            if i % 5 == 0 { &mut a } else { &mut b }.add(ts, len, up);
        }
        a.merge(b);
        assert_eq!(a.resolution(), one.resolution());
        assert_eq!(
            a.slots().collect::<Vec<_>>(),
            one.slots().collect::<Vec<_>>()
        );
    }
}

//! timeline.csv: per time bin, connections opened, closed (by reason),
//! active, and open at the bin's start, overall and per top server port
//! (the concurrency series), with packets and bytes from traffic.parquet.
//!
//! `open_*` columns count sockets open at the instant the bin starts, the
//! same question `sockscope sockets --at` answers; `active` counts sockets
//! open at any moment of the bin.

use polars::prelude::*;

use crate::flow::CloseReason;
use crate::source::Nanos;

use super::tables::{Conns, proto_code};
use super::traffic::Traffic;

const MS: Nanos = 1_000_000;
const SEC: Nanos = 1_000_000_000;

/// Bin widths the automatic choice picks from.
const STEPS: &[Nanos] = &[
    MS,
    2 * MS,
    5 * MS,
    10 * MS,
    20 * MS,
    50 * MS,
    100 * MS,
    200 * MS,
    500 * MS,
    SEC,
    2 * SEC,
    5 * SEC,
    10 * SEC,
    15 * SEC,
    30 * SEC,
    60 * SEC,
    120 * SEC,
    300 * SEC,
    600 * SEC,
    900 * SEC,
    1800 * SEC,
    3600 * SEC,
    7200 * SEC,
    4 * 3600 * SEC,
    6 * 3600 * SEC,
    12 * 3600 * SEC,
    86_400 * SEC,
    7 * 86_400 * SEC,
];

/// The most bins a requested `--bin` may give: a timeline row holds about
/// 250 bytes in memory, and a finer width on a long capture (1 ms over a
/// day: 86 M bins) would take gigabytes.
pub const MAX_BINS: usize = 100_000;

/// Time bins: `count` bins of `width` from `t0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bins {
    pub t0: Nanos,
    pub width: Nanos,
    pub count: usize,
    /// The width asked for, if it would have given more than [`MAX_BINS`]
    /// and `width` is the step used instead.
    pub widened_from: Option<Nanos>,
}

impl Bins {
    /// Bins covering `[first, last]`: the given width, or the smallest step
    /// that divides the span into fewer than 1000 (so a capture gets 100 to
    /// about 1000 bins when it can); a given width that would make more
    /// than [`MAX_BINS`] is widened to the smallest step that does not.
    pub fn new(first: Nanos, last: Nanos, width: Option<Nanos>) -> Bins {
        let span = last.saturating_sub(first).max(1);
        let t0 = |w: Nanos| on_grid(first, w);
        let count = |w: Nanos| (last.saturating_sub(t0(w)) / w + 1).max(1) as usize;
        let step = |fits: &dyn Fn(Nanos) -> bool| {
            let mut steps = STEPS.iter().copied();
            steps.find(|&w| fits(w)).unwrap_or(STEPS[STEPS.len() - 1])
        };
        let (width, widened_from) = match width.filter(|w| *w > 0) {
            Some(w) if count(w) <= MAX_BINS => (w, None),
            Some(w) => (step(&|s| count(s) <= MAX_BINS), Some(w)),
            None => (step(&|s| span / s < 1000), None),
        };
        let (t0, count) = (t0(width), count(width));
        Bins {
            t0,
            width,
            count,
            widened_from,
        }
    }

    pub fn index(&self, ts: Nanos) -> usize {
        (ts.saturating_sub(self.t0).max(0) / self.width) as usize
    }

    /// Where bin `i` starts (bin `count` is where the last one ends).
    fn start(&self, i: usize) -> Nanos {
        self.t0
            .saturating_add((i as Nanos).saturating_mul(self.width))
    }
}

/// The multiple of `width` at or before `ts` (saturating: timestamps may
/// sit at the ends of the i64 range).
pub(super) fn on_grid(ts: Nanos, width: Nanos) -> Nanos {
    ts.saturating_sub(ts.rem_euclid(width))
}

fn cumulative(deltas: Vec<i64>) -> Vec<u64> {
    deltas
        .into_iter()
        .scan(0i64, |acc, d| {
            *acc += d;
            Some((*acc).max(0) as u64)
        })
        .collect()
}

/// Per-bin counts; events outside the bins are dropped.
struct Dense(Vec<i64>);

impl Dense {
    fn new(n: usize) -> Dense {
        Dense(vec![0; n])
    }

    fn add(&mut self, k: i64, v: i64) {
        if let Some(slot) = usize::try_from(k).ok().and_then(|k| self.0.get_mut(k)) {
            *slot += v;
        }
    }

    /// A socket open from bin `from` to bin `to`: +1 at `from`, -1 after `to`.
    fn span(&mut self, from: i64, to: i64) {
        if from <= to {
            self.add(from, 1);
            self.add(to.saturating_add(1), -1);
        }
    }
}

/// The bins a traffic slot `[start, start + len)` overlaps, each with its
/// share of `counts` in proportion to the overlap: a slot coarsened on a
/// long capture can straddle a bin edge, and all of it in the bin it
/// started in moved counts a bin early. Shares are cut from running totals,
/// so they add up to `counts` exactly; time outside the bins counts in the
/// nearest one.
fn spread(
    bins: &Bins,
    start: Nanos,
    len: Nanos,
    counts: [u64; 3],
) -> impl Iterator<Item = (usize, [u64; 3])> + '_ {
    let last_bin = bins.count - 1;
    let first = bins.index(start).min(last_bin);
    let last = bins.index(start.saturating_add(len - 1)).min(last_bin);
    let mut given = [0u64; 3];
    (first..=last).map(move |i| {
        // Time of the slot up to this bin's end (all of it in the last).
        let upto = if i == last {
            len
        } else {
            bins.start(i + 1).saturating_sub(start).clamp(0, len)
        };
        let mut shares = [0u64; 3];
        for ((share, given), count) in shares.iter_mut().zip(&mut given).zip(counts) {
            let total = (u128::from(count) * upto as u128 / len as u128) as u64;
            *share = total - *given;
            *given = total;
        }
        (i, shares)
    })
}

/// Build the timeline frame. `top` lists (proto, port) series to include.
pub fn timeline(
    conns: &Conns,
    bins: &Bins,
    top: &[(String, u16)],
    traffic: &Traffic,
) -> PolarsResult<DataFrame> {
    let (t0, w, n) = (bins.t0, bins.width, bins.count);
    // A time's bin, in floating point as the table has always computed it
    // (offsets are non-negative, so truncating the quotient is a floor).
    let k = |t: Nanos| (t.wrapping_sub(t0) as f64 / w as f64) as i64;
    let series: Vec<(u8, u16)> = top.iter().map(|(p, port)| (proto_code(p), *port)).collect();

    let mut opened = Dense::new(n);
    let mut active = Dense::new(n);
    let mut at_start = Dense::new(n);
    let mut closed: Vec<Dense> = CloseReason::ALL.iter().map(|_| Dense::new(n)).collect();
    let mut per_port: Vec<Dense> = series.iter().map(|_| Dense::new(n)).collect();
    conns.scan(|rows| {
        for r in rows {
            let (k_open, k_close) = (k(r.start), k(r.end));
            let k_first = k(r.start.wrapping_add(w - 1));
            opened.add(k_open, 1);
            active.span(k_open, k_close);
            at_start.span(k_first, k_close);
            closed[r.close_reason as usize].add(k_close, 1);
            if let Some(j) = series
                .iter()
                .position(|s| *s == (r.proto as u8, r.resp_port))
            {
                per_port[j].span(k_first, k_close);
            }
        }
        Ok(())
    })?;

    let starts: Vec<i64> = (0..n).map(|i| bins.start(i)).collect();
    let mut columns = vec![
        super::frame::utc("bin_start", starts),
        Column::new("active".into(), cumulative(active.0)),
        Column::new("open_at_start".into(), cumulative(at_start.0)),
        Column::new("opened".into(), opened.0),
    ];
    for (reason, counts) in CloseReason::ALL.iter().zip(closed) {
        columns.push(Column::new(
            format!("closed_{}", reason.name()).into(),
            counts.0,
        ));
    }

    let mut packets = vec![0u64; n];
    let mut to_server = vec![0u64; n];
    let mut to_client = vec![0u64; n];
    let res = traffic.resolution();
    for (start, s) in traffic.slots() {
        let counts = [
            s.packets_to_server + s.packets_to_client,
            s.bytes_to_server,
            s.bytes_to_client,
        ];
        for (i, shares) in spread(bins, start, res, counts) {
            packets[i] += shares[0];
            to_server[i] += shares[1];
            to_client[i] += shares[2];
        }
    }
    columns.push(Column::new("packets".into(), packets));
    columns.push(Column::new("ip_bytes_to_server".into(), to_server));
    columns.push(Column::new("ip_bytes_to_client".into(), to_client));

    for ((proto, port), counts) in top.iter().zip(per_port) {
        columns.push(Column::new(
            format!("open_{proto}_{port}").into(),
            cumulative(counts.0),
        ));
    }
    DataFrame::new(n, columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_bins_give_at_most_a_thousand() {
        let b = Bins::new(1_700_000_000 * SEC + 42, 1_700_000_600 * SEC, None);
        assert_eq!(b.width, SEC);
        assert!((100..=1000).contains(&b.count), "{b:?}");
        assert_eq!(b.t0 % SEC, 0);
        let short = Bins::new(0, 50 * MS, None);
        assert_eq!(short.width, MS);
        let fixed = Bins::new(0, 10 * SEC, Some(2 * SEC));
        assert_eq!((fixed.width, fixed.count), (2 * SEC, 6));
        assert_eq!(fixed.widened_from, None);
    }

    /// A width too fine for the capture is widened to a step that gives at
    /// most `MAX_BINS`, and says so; one just fine enough is kept.
    #[test]
    fn requested_bins_are_bounded() {
        let day = Bins::new(42, 42 + 86_400 * SEC, Some(MS));
        assert_eq!((day.width, day.widened_from), (SEC, Some(MS)));
        assert!(day.count <= MAX_BINS, "{day:?}");
        // 100,000 bins exactly are kept, one more is not.
        let edge = (MAX_BINS as Nanos - 1) * MS;
        for first in [0, 1, MS - 1] {
            let b = Bins::new(first, first + edge - first % MS, Some(MS));
            assert_eq!((b.count, b.widened_from), (MAX_BINS, None));
        }
        let past = Bins::new(0, edge + MS, Some(MS));
        assert_eq!(past.widened_from, Some(MS));
        let epoch_stray = Bins::new(0, 1_700_000_000 * SEC, Some(SEC));
        assert!(epoch_stray.count <= MAX_BINS, "{epoch_stray:?}");
    }

    /// A slot inside one bin goes to it whole; one across bin edges is
    /// shared by overlap, and the shares add up.
    #[test]
    fn slots_are_spread_over_the_bins_they_overlap() {
        let bins = Bins::new(0, 100 * MS, Some(10 * MS));
        let inside: Vec<_> = spread(&bins, 20 * MS, 2 * MS, [7, 700, 70]).collect();
        assert_eq!(inside, [(2, [7, 700, 70])]);
        // 16 ms from 8 ms: 2 ms in bin 0, 10 in bin 1, 4 in bin 2.
        let across: Vec<_> = spread(&bins, 8 * MS, 16 * MS, [16, 1600, 3]).collect();
        assert_eq!(
            across,
            [(0, [2, 200, 0]), (1, [10, 1000, 2]), (2, [4, 400, 1])]
        );
        // Past the last bin (11 bins, to 110 ms): counted in it.
        let late: Vec<_> = spread(&bins, 95 * MS, 20 * MS, [4, 4, 4]).collect();
        assert_eq!(late, [(9, [1, 1, 1]), (10, [3, 3, 3])]);
    }

    #[test]
    fn cumulative_clamps_at_zero() {
        assert_eq!(
            cumulative(vec![1, 1, -1, 0, -1, -1]),
            vec![1, 2, 1, 1, 0, 0]
        );
    }
}

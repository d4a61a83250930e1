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

/// Time bins: `count` bins of `width` from `t0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bins {
    pub t0: Nanos,
    pub width: Nanos,
    pub count: usize,
}

impl Bins {
    /// Bins covering `[first, last]`: the given width, or the smallest step
    /// giving at most 1000 bins (so a capture gets 100–1000 when it can).
    pub fn new(first: Nanos, last: Nanos, width: Option<Nanos>) -> Bins {
        let span = last.saturating_sub(first).max(1);
        let width = width.filter(|w| *w > 0).unwrap_or_else(|| {
            STEPS
                .iter()
                .copied()
                .find(|w| span / w < 1000)
                .unwrap_or(STEPS[STEPS.len() - 1])
        });
        // Saturating: timestamps may sit at the ends of the i64 range.
        let t0 = first.saturating_sub(first.rem_euclid(width));
        let count = (last.saturating_sub(t0) / width + 1).max(1) as usize;
        Bins { t0, width, count }
    }

    pub fn index(&self, ts: Nanos) -> usize {
        (ts.saturating_sub(self.t0).max(0) / self.width) as usize
    }
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

    let starts: Vec<i64> = (0..n as i64).map(|i| t0 + i * w).collect();
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
    for (ts, s) in traffic.slots() {
        let i = bins.index(ts).min(n - 1);
        packets[i] += s.packets_to_server + s.packets_to_client;
        to_server[i] += s.bytes_to_server;
        to_client[i] += s.bytes_to_client;
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
    }

    #[test]
    fn cumulative_clamps_at_zero() {
        assert_eq!(
            cumulative(vec![1, 1, -1, 0, -1, -1]),
            vec![1, 2, 1, 1, 0, 0]
        );
    }
}

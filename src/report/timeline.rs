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

use super::tables::proto_code;
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

/// Dense per-bin counts from (bin, value) rows.
fn dense(df: &DataFrame, k: &str, v: &str, n: usize) -> PolarsResult<Vec<i64>> {
    let mut out = vec![0i64; n];
    let ks = df.column(k)?.cast(&DataType::Int64)?;
    let vs = df.column(v)?.cast(&DataType::Int64)?;
    for (k, v) in ks.i64()?.iter().zip(vs.i64()?.iter()) {
        if let (Some(k), Some(v)) = (k, v) {
            if (0..n as i64).contains(&k) {
                out[k as usize] += v;
            }
        }
    }
    Ok(out)
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

/// +1 at `from`, -1 after `to`, summed per bin (and per `keys`) by polars.
fn deltas(conns: &LazyFrame, keys: &[Expr], from: &str, to: &str) -> PolarsResult<DataFrame> {
    let valid = conns.clone().filter(col(from).lt_eq(col(to)));
    let mut up = keys.to_vec();
    up.extend([col(from).alias("k"), lit(1i64).alias("d")]);
    let mut down = keys.to_vec();
    down.extend([(col(to) + lit(1i64)).alias("k"), lit(-1i64).alias("d")]);
    let mut by = keys.to_vec();
    by.push(col("k"));
    concat(
        [valid.clone().select(up), valid.select(down)],
        UnionArgs::default(),
    )?
    .group_by(by)
    .agg([col("d").sum()])
    .collect()
}

/// Build the timeline frame. `top` lists (proto, port) series to include.
pub fn timeline(
    conns: LazyFrame,
    bins: &Bins,
    top: &[(String, u16)],
    traffic: &Traffic,
) -> PolarsResult<DataFrame> {
    let (t0, w, n) = (bins.t0, bins.width, bins.count);
    // Offsets are non-negative, so truncating the quotient is a floor.
    let k = |e: Expr| ((e - lit(t0)).cast(DataType::Float64) / lit(w as f64)).cast(DataType::Int64);
    let conns = conns.with_columns([
        k(col("start")).alias("k_open"),
        k(col("end")).alias("k_close"),
        k(col("start") + lit(w - 1)).alias("k_first"),
    ]);

    let opened = conns
        .clone()
        .group_by([col("k_open")])
        .agg([len().alias("n")])
        .collect()?;
    let active = cumulative(dense(
        &deltas(&conns, &[], "k_open", "k_close")?,
        "k",
        "d",
        n,
    )?);
    let at_start = cumulative(dense(
        &deltas(&conns, &[], "k_first", "k_close")?,
        "k",
        "d",
        n,
    )?);

    let starts: Vec<i64> = (0..n as i64).map(|i| t0 + i * w).collect();
    let mut columns = vec![
        super::frame::utc("bin_start", starts),
        Column::new("active".into(), active),
        Column::new("open_at_start".into(), at_start),
        Column::new("opened".into(), dense(&opened, "k_open", "n", n)?),
    ];
    let closed = conns
        .clone()
        .group_by([col("k_close"), col("close_reason")])
        .agg([len().alias("n")])
        .collect()?;
    for reason in CloseReason::ALL {
        let rows = closed
            .clone()
            .lazy()
            .filter(col("close_reason").eq(lit(reason as u8)))
            .collect()?;
        columns.push(Column::new(
            format!("closed_{}", reason.name()).into(),
            dense(&rows, "k_close", "n", n)?,
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

    if !top.is_empty() {
        let wanted = top
            .iter()
            .map(|(p, port)| {
                col("proto")
                    .eq(lit(proto_code(p)))
                    .and(col("resp_port").eq(lit(*port)))
            })
            .reduce(|a, b| a.or(b))
            .unwrap_or(lit(false));
        let per_port = deltas(
            &conns.filter(wanted),
            &[col("proto"), col("resp_port")],
            "k_first",
            "k_close",
        )?;
        for (proto, port) in top {
            let rows = per_port
                .clone()
                .lazy()
                .filter(
                    col("proto")
                        .eq(lit(proto_code(proto)))
                        .and(col("resp_port").eq(lit(*port))),
                )
                .collect()?;
            columns.push(Column::new(
                format!("open_{proto}_{port}").into(),
                cumulative(dense(&rows, "k", "d", n)?),
            ));
        }
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

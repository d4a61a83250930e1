//! The fan-in, client and timeline tables, computed by polars from
//! connections.parquet (so they can be rebuilt without the capture).
//!
//! Definitions (also in the README):
//! - a connection's socket exists from its first to its last packet
//!   (`ts` .. `last_packet_ts`); concurrency counts overlapping sockets, and
//!   at equal times an opening counts before a closing;
//! - the server is the responder; clients are originators;
//! - failed = S0, REJ, RSTOS0, SH with a SYN seen (unanswered, refused,
//!   aborted attempts); Zeek also calls a connection picked up mid-stream
//!   at its closing FIN "SH", but that one was served, not failed;
//!   established = S1, S2, S3, SF, RSTO, RSTR.

use std::path::Path;

use polars::prelude::*;

use crate::source::Nanos;

/// The usual Linux ephemeral port range, 32768–60999.
pub const EPHEMERAL_PORTS: u32 = 60999 - 32768 + 1;
/// How long a closed client socket keeps its port (Linux TIME_WAIT).
pub const TIME_WAIT: Nanos = 60_000_000_000;

const FAILED: [&str; 4] = ["S0", "REJ", "RSTOS0", "SH"];
const ESTABLISHED: [&str; 6] = ["S1", "S2", "S3", "SF", "RSTO", "RSTR"];

fn state_in(states: &[&str]) -> Expr {
    states
        .iter()
        .map(|s| col("conn_state").eq(lit(*s)))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false))
}

/// The columns the tables need, times as integer nanoseconds.
pub fn scan(parquet: &Path) -> PolarsResult<LazyFrame> {
    Ok(LazyFrame::scan_parquet(
        parquet.to_string_lossy().as_ref().into(),
        ScanArgsParquet::default(),
    )?
    .select([
        col("proto"),
        col("orig_addr"),
        col("orig_port"),
        col("resp_addr"),
        col("resp_port"),
        col("conn_state"),
        col("first_syn_ts").is_not_null().alias("syn_seen"),
        col("close_reason"),
        col("ts").cast(DataType::Int64).alias("start"),
        col("last_packet_ts").cast(DataType::Int64).alias("end"),
        col("duration").cast(DataType::Int64).alias("duration_ns"),
        col("orig_bytes"),
        col("resp_bytes"),
    ]))
}

/// Peak concurrency per group: the largest number of sockets open at once
/// (each held from `start` to `end + hold`), and when it was first reached.
fn peaks(conns: LazyFrame, keys: &[&str], hold: Nanos) -> PolarsResult<LazyFrame> {
    let key_exprs: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    let mut opens = key_exprs.clone();
    opens.extend([col("start").alias("t"), lit(1i64).alias("d")]);
    let mut closes = key_exprs.clone();
    closes.extend([(col("end") + lit(hold)).alias("t"), lit(-1i64).alias("d")]);
    let events = concat(
        [conns.clone().select(opens), conns.select(closes)],
        UnionArgs::default(),
    )?;
    let mut order = key_exprs.clone();
    order.extend([col("t"), col("d")]);
    let mut descending = vec![false; keys.len()];
    descending.extend([false, true]);
    Ok(events
        .sort_by_exprs(
            order,
            SortMultipleOptions::default().with_order_descending_multi(descending),
        )
        .with_column(col("d").cum_sum(false).over(&key_exprs)?.alias("open"))
        .group_by(key_exprs)
        .agg([
            col("open").max().alias("peak"),
            col("t")
                .filter(col("open").eq(col("open").max()))
                .first()
                .alias("peak_t"),
        ]))
}

/// Fan-in per group of server keys (ports: proto+port; endpoints: +address).
pub fn fanin(conns: LazyFrame, keys: &[&str], capture_secs: f64) -> PolarsResult<LazyFrame> {
    let key_exprs: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    let failed = state_in(&FAILED).and(col("syn_seen"));
    let main = conns.clone().group_by(key_exprs.clone()).agg([
        col("resp_addr")
            .n_unique()
            .cast(DataType::UInt64)
            .alias("servers"),
        col("orig_addr")
            .n_unique()
            .cast(DataType::UInt64)
            .alias("clients"),
        len().cast(DataType::UInt64).alias("connections"),
        state_in(&ESTABLISHED)
            .sum()
            .cast(DataType::UInt64)
            .alias("established"),
        col("conn_state")
            .eq(lit("REJ"))
            .sum()
            .cast(DataType::UInt64)
            .alias("rejected"),
        col("conn_state")
            .eq(lit("S0"))
            .sum()
            .cast(DataType::UInt64)
            .alias("unanswered"),
        failed.clone().sum().cast(DataType::UInt64).alias("failed"),
        col("orig_addr")
            .filter(failed.not())
            .n_unique()
            .cast(DataType::UInt64)
            .alias("served_clients"),
        col("orig_bytes").sum().alias("bytes_to_server"),
        col("resp_bytes").sum().alias("bytes_to_client"),
        (col("duration_ns").cast(DataType::Float64).median() / lit(1e9)).alias("median_duration_s"),
    ]);
    let mut socket_keys = key_exprs.clone();
    socket_keys.extend([col("orig_addr"), col("orig_port")]);
    let sockets = conns
        .clone()
        .group_by(socket_keys)
        .agg([len()])
        .group_by(key_exprs.clone())
        .agg([len().cast(DataType::UInt64).alias("client_sockets")]);
    let peak = peaks(conns, keys, 0)?;
    let join = |l: LazyFrame, r: LazyFrame| {
        l.join(
            r,
            key_exprs.clone(),
            key_exprs.clone(),
            JoinArgs::new(JoinType::Left),
        )
    };
    let mut select: Vec<Expr> = key_exprs.clone();
    select.extend(
        [
            "servers",
            "clients",
            "client_sockets",
            "connections",
            "established",
            "rejected",
            "unanswered",
            "failed",
            "served_clients",
        ]
        .map(col),
    );
    select.extend([
        col("peak").cast(DataType::UInt64).alias("peak_concurrent"),
        col("peak_t")
            .cast(DataType::Datetime(
                TimeUnit::Nanoseconds,
                Some(TimeZone::UTC),
            ))
            .alias("peak_at"),
        (col("connections").cast(DataType::Float64) / lit(capture_secs.max(1e-9)))
            .alias("connections_per_s"),
        col("bytes_to_server"),
        col("bytes_to_client"),
        col("median_duration_s"),
    ]);
    Ok(join(join(main, sockets), peak)
        .select(select)
        .sort_by_exprs(
            [col("clients"), col("connections")],
            SortMultipleOptions::default().with_order_descending(true),
        ))
}

/// Per client address and server endpoint: ephemeral port use and reuse.
pub fn clients(conns: LazyFrame) -> PolarsResult<LazyFrame> {
    let keys = ["proto", "orig_addr", "resp_addr", "resp_port"];
    let key_exprs: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    let conns = conns.filter(col("proto").eq(lit("tcp")).or(col("proto").eq(lit("udp"))));
    let main = conns.clone().group_by(key_exprs.clone()).agg([
        len().cast(DataType::UInt64).alias("connections"),
        col("orig_port")
            .n_unique()
            .cast(DataType::UInt64)
            .alias("distinct_ports"),
        col("orig_port").min().alias("lowest_port"),
        col("orig_port").max().alias("highest_port"),
    ]);
    let open = peaks(conns.clone(), &keys, 0)?;
    let held = peaks(conns, &keys, TIME_WAIT)?;
    let join = |l: LazyFrame, r: LazyFrame| {
        l.join(
            r,
            key_exprs.clone(),
            key_exprs.clone(),
            JoinArgs::new(JoinType::Left),
        )
    };
    let both = join(
        join(
            main,
            open.select([
                col("proto"),
                col("orig_addr"),
                col("resp_addr"),
                col("resp_port"),
                col("peak"),
            ]),
        ),
        held.select([
            col("proto"),
            col("orig_addr"),
            col("resp_addr"),
            col("resp_port"),
            col("peak").alias("peak_ports_held"),
        ]),
    );
    let mut select = key_exprs;
    select.extend([
        col("connections"),
        col("distinct_ports"),
        col("lowest_port"),
        col("highest_port"),
        (col("connections") - col("distinct_ports")).alias("port_reuse"),
        col("peak").cast(DataType::UInt64).alias("peak_concurrent"),
        col("peak_ports_held").cast(DataType::UInt64),
        (col("peak_ports_held").cast(DataType::Float64) / lit(f64::from(EPHEMERAL_PORTS)))
            .alias("exhaustion_risk"),
    ]);
    Ok(both.select(select).sort_by_exprs(
        [col("exhaustion_risk"), col("connections")],
        SortMultipleOptions::default().with_order_descending(true),
    ))
}

//! The fan-in, client and timeline tables, computed by polars from
//! connections.parquet (so they can be rebuilt without the capture).
//!
//! Definitions (also in the README):
//! - a connection's socket exists from its first to its last packet
//!   (`ts` .. `last_packet_ts`); concurrency counts overlapping sockets, and
//!   at equal times an opening counts before a closing;
//! - the server is the responder; clients are originators;
//! - failed = S0, REJ, RSTOS0, SH (unanswered, refused, aborted attempts),
//!   for TCP only with a SYN seen: Zeek also calls a connection picked up
//!   mid-stream at its closing FIN "SH", but that one was served;
//!   established = S1, S2, S3, SF, RSTO, RSTR;
//! - a client's port stays held after its connection for TIME_WAIT (60 s)
//!   only if the client closed first with a FIN (the active closer waits;
//!   a reset or a server-side first close leaves no TIME_WAIT there).

use std::net::IpAddr;
use std::path::Path;

use polars::prelude::*;

use rustc_hash::FxHashMap;

use crate::decode::Addr;
use crate::flow::{CloseReason, ConnRecord, ConnState, Proto, Side};
use crate::source::Nanos;

use super::RecordText;

/// The usual Linux ephemeral port range, 32768–60999.
pub const EPHEMERAL_PORTS: u32 = 60999 - 32768 + 1;
/// How long a closed client socket keeps its port (Linux TIME_WAIT).
pub const TIME_WAIT: Nanos = 60_000_000_000;

use ConnState::*;
const FAILED: [ConnState; 4] = [S0, REJ, RSTOS0, SH];
const ESTABLISHED: [ConnState; 6] = [S1, S2, S3, SF, RSTO, RSTR];

/// `conn_state` is one of `states` (codes: see [`Conns::frame`]).
fn state_in(states: &[ConnState]) -> Expr {
    states
        .iter()
        .map(|s| col("conn_state").eq(lit(*s as u8)))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false))
}

/// Names as codes: each name's position in `names` (`names.len()` if none).
fn codes(c: &Column, names: &[&str]) -> PolarsResult<UInt8Chunked> {
    Ok(c.str()?
        .iter()
        .map(|v| {
            let v = v.unwrap_or("");
            Some(names.iter().position(|n| *n == v).unwrap_or(names.len()) as u8)
        })
        .collect())
}

/// The connections the tables are computed from: built while `analyze`
/// writes its records ([`ConnsBuilder`]), or read back from
/// connections.parquet by `sockscope report` ([`Conns::load`]).
///
/// Addresses become `u32` ids and protocols, states and close reasons `u8`
/// codes (`Proto`, `ConnState`, `CloseReason` `as u8`): polars groups and
/// sorts integers many times faster than strings, in a fraction of the
/// memory, and [`Conns::names`] puts the names back into a finished table.
pub struct Conns {
    /// Times are integer nanoseconds (`start`, `end`, `duration_ns`).
    pub frame: LazyFrame,
    addrs: Vec<String>,
    rows: usize,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conns({} addresses)", self.addrs.len())
    }
}

/// Collects the columns of [`Conns`] record by record.
#[derive(Default)]
pub struct ConnsBuilder {
    ids: FxHashMap<Addr, u32>,
    addrs: Vec<String>,
    proto: Vec<u8>,
    orig_addr: Vec<u32>,
    orig_port: Vec<u16>,
    resp_addr: Vec<u32>,
    resp_port: Vec<u16>,
    conn_state: Vec<u8>,
    syn_seen: Vec<bool>,
    close_reason: Vec<u8>,
    time_wait: Vec<i64>,
    start: Vec<i64>,
    end: Vec<i64>,
    duration_ns: Vec<i64>,
    orig_bytes: Vec<u64>,
    resp_bytes: Vec<u64>,
}

impl ConnsBuilder {
    pub fn len(&self) -> usize {
        self.proto.len()
    }

    pub fn is_empty(&self) -> bool {
        self.proto.is_empty()
    }

    pub fn push(&mut self, r: &ConnRecord, text: &RecordText) {
        let mut id = |a: Addr, name: &str| {
            *self.ids.entry(a).or_insert_with(|| {
                self.addrs.push(name.to_string());
                (self.addrs.len() - 1) as u32
            })
        };
        let (orig, resp) = (id(r.orig, text.orig()), id(r.resp, text.resp()));
        self.proto.push(r.proto as u8);
        self.orig_addr.push(orig);
        self.orig_port.push(r.orig_port);
        self.resp_addr.push(resp);
        self.resp_port.push(r.resp_port);
        self.conn_state.push(r.state as u8);
        self.syn_seen.push(r.lifecycle.first_syn.is_some());
        self.close_reason.push(r.close_reason as u8);
        let client_closed = matches!(r.lifecycle.first_fin, Some((_, Side::Orig)))
            && r.close_reason == CloseReason::Fin;
        self.time_wait
            .push(if client_closed { TIME_WAIT } else { 0 });
        self.start.push(r.start);
        self.end.push(r.lifecycle.last_packet);
        self.duration_ns.push(r.duration);
        self.orig_bytes.push(r.orig_bytes);
        self.resp_bytes.push(r.resp_bytes);
    }

    pub fn finish(mut self) -> PolarsResult<Conns> {
        let addrs = order_ids(self.addrs, [&mut self.orig_addr, &mut self.resp_addr]);
        let frame = DataFrame::new(
            self.proto.len(),
            vec![
                Column::new("proto".into(), self.proto),
                Column::new("orig_addr".into(), self.orig_addr),
                Column::new("orig_port".into(), self.orig_port),
                Column::new("resp_addr".into(), self.resp_addr),
                Column::new("resp_port".into(), self.resp_port),
                Column::new("conn_state".into(), self.conn_state),
                Column::new("syn_seen".into(), self.syn_seen),
                Column::new("close_reason".into(), self.close_reason),
                Column::new("time_wait".into(), self.time_wait),
                Column::new("start".into(), self.start),
                Column::new("end".into(), self.end),
                Column::new("duration_ns".into(), self.duration_ns),
                Column::new("orig_bytes".into(), self.orig_bytes),
                Column::new("resp_bytes".into(), self.resp_bytes),
            ],
        )?;
        Ok(Conns {
            rows: frame.height(),
            frame: frame.lazy(),
            addrs,
        })
    }
}

/// Where an address's text sorts: IPv4 before IPv6, each in numeric order
/// (10.0.0.2 before 10.0.0.10), anything else last.
fn address_order(text: &str) -> (u8, u128) {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => (0, u128::from(u32::from(a))),
        Ok(IpAddr::V6(a)) => (1, u128::from(a)),
        Err(_) => (2, 0),
    }
}

/// Renumber address ids in address order, so that ids, and the tables'
/// tie-breaks on them, do not depend on the order in which connections were
/// recorded (shard threads interleave them). Sorting numbers, not text: a
/// flood of millions of spoofed sources spent seconds in string compares.
fn order_ids<const N: usize>(addrs: Vec<String>, columns: [&mut Vec<u32>; N]) -> Vec<String> {
    let mut order: Vec<((u8, u128), u32)> = addrs
        .iter()
        .enumerate()
        .map(|(id, a)| (address_order(a), id as u32))
        .collect();
    order.sort_unstable_by(|(ka, a), (kb, b)| {
        ka.cmp(kb)
            .then_with(|| addrs[*a as usize].cmp(&addrs[*b as usize]))
    });
    let mut new_id = vec![0u32; addrs.len()];
    for (new, (_, old)) in order.iter().enumerate() {
        new_id[*old as usize] = new as u32;
    }
    for column in columns {
        for id in column.iter_mut() {
            *id = new_id[*id as usize];
        }
    }
    let mut slots: Vec<Option<String>> = addrs.into_iter().map(Some).collect();
    order
        .iter()
        .map(|(_, old)| slots[*old as usize].take().unwrap_or_default())
        .collect()
}

/// Columns holding an address id in computed tables.
const ADDRESS_COLUMNS: [&str; 3] = ["orig_addr", "resp_addr", "server"];

/// A protocol's code in [`Conns::frame`] (its position in [`Proto::ALL`]).
pub fn proto_code(name: &str) -> u8 {
    Proto::ALL
        .iter()
        .find(|p| p.name() == name)
        .map_or(Proto::ALL.len() as u8, |p| *p as u8)
}

impl Conns {
    /// How many connections.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Read the columns the tables need from connections.parquet.
    pub fn load(parquet: &Path) -> PolarsResult<Conns> {
        let mut df = LazyFrame::scan_parquet(
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
            when(
                col("first_fin_side")
                    .eq(lit(Side::Orig.name()))
                    .and(col("close_reason").eq(lit(CloseReason::Fin.name())))
                    .fill_null(false),
            )
            .then(lit(TIME_WAIT))
            .otherwise(lit(0i64))
            .alias("time_wait"),
            col("ts").cast(DataType::Int64).alias("start"),
            col("last_packet_ts").cast(DataType::Int64).alias("end"),
            col("duration").cast(DataType::Int64).alias("duration_ns"),
            col("orig_bytes"),
            col("resp_bytes"),
        ])
        .collect()?;
        let mut ids: FxHashMap<&str, u32> = FxHashMap::default();
        let mut addrs: Vec<String> = Vec::new();
        let (mut orig_ids, mut resp_ids) = (Vec::new(), Vec::new());
        let (origs, resps) = (
            df.column("orig_addr")?.str()?,
            df.column("resp_addr")?.str()?,
        );
        for (o, r) in origs.iter().zip(resps.iter()) {
            for (a, out) in [(o, &mut orig_ids), (r, &mut resp_ids)] {
                let a = a.unwrap_or("");
                let id = *ids.entry(a).or_insert_with(|| {
                    addrs.push(a.to_string());
                    (addrs.len() - 1) as u32
                });
                out.push(id);
            }
        }
        let addrs = order_ids(addrs, [&mut orig_ids, &mut resp_ids]);
        let orig_ids = Column::new("orig_addr".into(), orig_ids);
        let resp_ids = Column::new("resp_addr".into(), resp_ids);
        df.with_column(orig_ids)?;
        df.with_column(resp_ids)?;
        let names = |all: &[&'static str]| all.to_vec();
        for (column, all) in [
            ("proto", names(&Proto::ALL.map(Proto::name))),
            ("conn_state", names(&ConnState::ALL.map(ConnState::name))),
            (
                "close_reason",
                names(&CloseReason::ALL.map(CloseReason::name)),
            ),
        ] {
            let coded = codes(df.column(column)?, &all)?;
            df.with_column(coded.with_name(column.into()).into_column())?;
        }
        Ok(Conns {
            rows: df.height(),
            frame: df.lazy(),
            addrs,
        })
    }

    /// Replace address ids and protocol codes in a computed table by names.
    pub fn names(&self, mut df: DataFrame) -> PolarsResult<DataFrame> {
        for name in ADDRESS_COLUMNS {
            if let Ok(c) = df.column(name) {
                let text: StringChunked = c
                    .u32()?
                    .iter()
                    .map(|id| {
                        id.and_then(|i| self.addrs.get(i as usize))
                            .map(String::as_str)
                    })
                    .collect();
                df.with_column(text.with_name(name.into()).into_column())?;
            }
        }
        if let Ok(c) = df.column("proto") {
            let text: StringChunked = c
                .u8()?
                .iter()
                .map(|p| {
                    p.and_then(|p| Proto::ALL.get(usize::from(p)))
                        .map(|p| p.name())
                })
                .collect();
            df.with_column(text.with_name("proto".into()).into_column())?;
        }
        Ok(df)
    }
}

/// Peak concurrency per group: the largest number of sockets open at once
/// (each held from `start` to `end + hold`), and when it was first reached.
/// `hold` is an expression over the connection (e.g. its TIME_WAIT).
///
/// Polars selects the columns; then each connection gets its group's
/// number, its opening and closing become two `(group, 2t [+ 1])` events
/// (openings first at equal times), one sort orders them by group and time,
/// and one pass keeps each group's running count. About 16 bytes an event:
/// a million connections' events are 32 MB, where a frame of events with
/// its keys and a per-group window in polars took several times that.
fn peaks(conns: LazyFrame, keys: &[&str], hold: Expr) -> PolarsResult<LazyFrame> {
    let mut select: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    select.extend([col("start"), (col("end") + hold).alias("until")]);
    let df = conns.select(select).collect()?;

    // Group numbers in order of first appearance, and each group's key.
    let mut key_columns = Vec::with_capacity(keys.len());
    for k in keys {
        let c = df.column(k)?.cast(&DataType::UInt64)?;
        key_columns.push(c.u64()?.into_no_null_iter().collect::<Vec<u64>>());
    }
    let mut numbers: FxHashMap<[u64; 4], u32> = FxHashMap::default();
    let mut groups: Vec<[u64; 4]> = Vec::new();
    let mut events: Vec<(u32, i64)> = Vec::with_capacity(2 * df.height());
    let starts = df.column("start")?.i64()?;
    let untils = df.column("until")?.i64()?;
    for (row, (s, u)) in starts.iter().zip(untils.iter()).enumerate() {
        let mut key = [0u64; 4];
        for (slot, c) in key.iter_mut().zip(&key_columns) {
            *slot = c[row];
        }
        let g = *numbers.entry(key).or_insert_with(|| {
            groups.push(key);
            (groups.len() - 1) as u32
        });
        let (s, u) = (s.unwrap_or(0), u.unwrap_or(0));
        events.push((g, s.saturating_mul(2)));
        events.push((g, u.saturating_mul(2).saturating_add(1)));
    }
    drop(key_columns);
    events.sort_unstable();

    // Per group: (peak, when it was first reached).
    let mut result = vec![(0i64, 0i64); groups.len()];
    let mut open = 0i64;
    for (i, &(g, order)) in events.iter().enumerate() {
        if i == 0 || events[i - 1].0 != g {
            open = 0;
        }
        open += if order & 1 == 0 { 1 } else { -1 };
        let r = &mut result[g as usize];
        if open > r.0 {
            *r = (open, order.div_euclid(2));
        }
    }

    let mut columns = Vec::with_capacity(keys.len() + 2);
    for (j, k) in keys.iter().enumerate() {
        let values: UInt64Chunked = groups.iter().map(|key| Some(key[j])).collect();
        let dtype = df.column(k)?.dtype().clone();
        columns.push(values.with_name((*k).into()).into_column().cast(&dtype)?);
    }
    columns.push(Column::new(
        "peak".into(),
        result.iter().map(|r| r.0).collect::<Vec<i64>>(),
    ));
    columns.push(Column::new(
        "peak_t".into(),
        result.iter().map(|r| r.1).collect::<Vec<i64>>(),
    ));
    Ok(DataFrame::new(groups.len(), columns)?.lazy())
}

/// Fan-in per group of server keys (ports: proto+port; endpoints: +address).
pub fn fanin(conns: LazyFrame, keys: &[&str], capture_secs: f64) -> PolarsResult<DataFrame> {
    let key_exprs: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    let tcp = col("proto").eq(lit(Proto::Tcp as u8));
    let failed = state_in(&FAILED).and(col("syn_seen").or(tcp.not()));
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
            .eq(lit(REJ as u8))
            .sum()
            .cast(DataType::UInt64)
            .alias("rejected"),
        col("conn_state")
            .eq(lit(S0 as u8))
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
    let peak = peaks(conns, keys, lit(0i64))?;
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
    let table = join(join(main, sockets), peak).select(select).collect()?;
    let mut order = vec![("clients", true), ("connections", true)];
    order.extend(keys.iter().map(|k| (*k, false)));
    sort_rows(table, &order)
}

/// Most columns [`sort_rows`] sorts by (the clients table's six).
const SORT_KEYS: usize = 6;

/// Sort rows by columns in turn (`true`: descending); ties end in key order,
/// so a table comes out the same however it was built. Each row becomes an
/// array of order-preserving integers and the arrays are sorted in place:
/// polars' multi-column sort compares through dynamic calls, and a compare
/// closure over separate columns missed the cache, on a million-client flood.
fn sort_rows(df: DataFrame, by: &[(&str, bool)]) -> PolarsResult<DataFrame> {
    polars_ensure!(
        by.len() <= SORT_KEYS,
        ComputeError: "sort_rows: at most {SORT_KEYS} columns, got {}", by.len()
    );
    let mut rows: Vec<([u64; SORT_KEYS], IdxSize)> = (0..df.height() as IdxSize)
        .map(|row| ([0; SORT_KEYS], row))
        .collect();
    for (j, (name, descending)) in by.iter().enumerate() {
        let values = df.column(name)?.cast(&DataType::Float64)?;
        for (row, v) in rows.iter_mut().zip(values.f64()?.iter()) {
            let key = total_order(v.unwrap_or(f64::NEG_INFINITY));
            row.0[j] = if *descending { !key } else { key };
        }
    }
    rows.sort_unstable();
    let rows: Vec<IdxSize> = rows.into_iter().map(|(_, row)| row).collect();
    df.take(&IdxCa::from_vec("rows".into(), rows))
}

/// An integer that orders like `f64::total_cmp` orders the float.
fn total_order(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// Per client address and server endpoint: ephemeral port use and reuse.
pub fn clients(conns: LazyFrame) -> PolarsResult<DataFrame> {
    let keys = ["proto", "orig_addr", "resp_addr", "resp_port"];
    let key_exprs: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    let conns = conns.filter(
        col("proto")
            .eq(lit(proto_code("tcp")))
            .or(col("proto").eq(lit(proto_code("udp")))),
    );
    let main = conns.clone().group_by(key_exprs.clone()).agg([
        len().cast(DataType::UInt64).alias("connections"),
        col("orig_port")
            .n_unique()
            .cast(DataType::UInt64)
            .alias("distinct_ports"),
        col("orig_port").min().alias("lowest_port"),
        col("orig_port").max().alias("highest_port"),
    ]);
    let open = peaks(conns.clone(), &keys, lit(0i64))?;
    let held = peaks(conns, &keys, col("time_wait"))?;
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
    let mut order = vec![("exhaustion_risk", true), ("connections", true)];
    order.extend(keys.map(|k| (k, false)));
    sort_rows(both.select(select).collect()?, &order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ids_follow_numeric_address_order() {
        let addrs = ["10.0.0.10", "::1", "10.0.0.2", "1.2.3.4"].map(String::from);
        let mut column = vec![0, 1, 2, 3, 2];
        let ordered = order_ids(addrs.to_vec(), [&mut column]);
        assert_eq!(ordered, ["1.2.3.4", "10.0.0.2", "10.0.0.10", "::1"]);
        assert_eq!(column, [2, 3, 1, 0, 1]);
    }

    #[test]
    fn total_order_orders_like_total_cmp() {
        let values = [
            f64::NEG_INFINITY,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            0.5,
            3.0,
            f64::INFINITY,
        ];
        for a in values {
            for b in values {
                assert_eq!(
                    total_order(a).cmp(&total_order(b)),
                    a.total_cmp(&b),
                    "{a} {b}"
                );
            }
        }
    }
}

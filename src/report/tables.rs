//! The fan-in, client and timeline tables, computed from one compact row
//! per connection: kept while `analyze` writes its records
//! ([`ConnsBuilder`]) or read back from connections.parquet ([`Conns::load`],
//! so the tables can be rebuilt without the capture).
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
//!
//! Memory: 64 bytes a connection plus, while a table is computed, one
//! 8-byte value per row (two for concurrency) arranged by group and one
//! offset per group. Each
//! aggregate is a group number per row, a counting sort by group, then
//! small sorts and single passes: polars' group-bys and joins over the same
//! rows took several times the memory and the time.

use std::hash::Hash;
use std::net::IpAddr;
use std::path::Path;

use polars::prelude::*;

use rustc_hash::FxHashMap;

use crate::decode::Addr;
use crate::flow::{CloseReason, ConnRecord, ConnState, Proto, Side};
use crate::source::Nanos;

use super::frame::utc;

/// The usual Linux ephemeral port range, 32768–60999.
pub const EPHEMERAL_PORTS: u32 = 60999 - 32768 + 1;
/// How long a closed client socket keeps its port (Linux TIME_WAIT).
pub const TIME_WAIT: Nanos = 60_000_000_000;

/// One connection as the tables see it.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub start: Nanos,
    /// The last packet of either side.
    pub end: Nanos,
    pub duration: Nanos,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    /// Address ids: positions in [`Conns`]' address list.
    pub orig: u32,
    pub resp: u32,
    pub orig_port: u16,
    pub resp_port: u16,
    pub proto: Proto,
    pub state: ConnState,
    pub close_reason: CloseReason,
    pub syn_seen: bool,
    /// The client closed first with a FIN, so its port stays in TIME_WAIT.
    pub client_closed: bool,
}

impl Row {
    /// An attempt that never got service (see the module's definitions).
    fn failed(&self) -> bool {
        self.state.failed() && (self.syn_seen || self.proto != Proto::Tcp)
    }

    fn established(&self) -> bool {
        use ConnState::*;
        matches!(self.state, S1 | S2 | S3 | SF | RSTO | RSTR)
    }

    /// Whether the client's port goes into TIME_WAIT: it sent the first FIN
    /// and the connection closed with FINs.
    fn client_closes(first_fin: Option<Side>, reason: CloseReason) -> bool {
        first_fin == Some(Side::Orig) && reason == CloseReason::Fin
    }

    /// Until when the client's port is held.
    fn held_until(&self) -> Nanos {
        let hold = if self.client_closed { TIME_WAIT } else { 0 };
        self.end.saturating_add(hold)
    }
}

/// The connections the tables are computed from, with their addresses.
pub struct Conns {
    rows: Vec<Row>,
    addrs: Vec<Addr>,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Conns({} rows, {} addresses)",
            self.rows.len(),
            self.addrs.len()
        )
    }
}

/// Address ids in order of first appearance. Addresses stay 16-byte
/// values until a finished table names them: on a flood of spoofed sources
/// their text (and a map keyed by it) took several times the rows' memory.
#[derive(Default)]
struct AddressIds {
    ids: FxHashMap<Addr, u32>,
    addrs: Vec<Addr>,
}

impl AddressIds {
    fn id(&mut self, a: Addr) -> u32 {
        let next = self.addrs.len() as u32;
        *self.ids.entry(a).or_insert_with(|| {
            self.addrs.push(a);
            next
        })
    }

    /// The finished rows, with ids renumbered in address order.
    fn finish(self, mut rows: Vec<Row>) -> Conns {
        let (addrs, new_id) = order_ids(self.addrs);
        for r in &mut rows {
            r.orig = new_id[r.orig as usize];
            r.resp = new_id[r.resp as usize];
        }
        Conns { rows, addrs }
    }
}

/// Collects [`Conns`] record by record.
#[derive(Default)]
pub struct ConnsBuilder {
    ids: AddressIds,
    rows: Vec<Row>,
}

impl ConnsBuilder {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn push(&mut self, r: &ConnRecord) {
        let orig = self.ids.id(r.orig);
        let resp = self.ids.id(r.resp);
        self.rows.push(Row {
            start: r.start,
            end: r.lifecycle.last_packet,
            duration: r.duration,
            orig_bytes: r.orig_bytes,
            resp_bytes: r.resp_bytes,
            orig,
            resp,
            orig_port: r.orig_port,
            resp_port: r.resp_port,
            proto: r.proto,
            state: r.state,
            close_reason: r.close_reason,
            syn_seen: r.lifecycle.first_syn.is_some(),
            client_closed: Row::client_closes(
                r.lifecycle.first_fin.map(|(_, side)| side),
                r.close_reason,
            ),
        });
    }

    pub fn finish(self) -> Conns {
        self.ids.finish(self.rows)
    }
}

/// Addresses in address order (IPv4 before IPv6, each numerically), and
/// each old id's new id: so that ids, and the tables' tie-breaks on them, do
/// not depend on the order in which connections were recorded (shard
/// threads interleave them).
fn order_ids(addrs: Vec<Addr>) -> (Vec<Addr>, Vec<u32>) {
    let order_of = |a: &Addr| (!a.is_v4(), u128::from_be_bytes(a.0));
    let mut order: Vec<u32> = (0..addrs.len() as u32).collect();
    order.sort_unstable_by_key(|id| order_of(&addrs[*id as usize]));
    let mut new_id = vec![0u32; addrs.len()];
    for (new, old) in order.iter().enumerate() {
        new_id[*old as usize] = new as u32;
    }
    let ordered = order.iter().map(|old| addrs[*old as usize]).collect();
    (ordered, new_id)
}

/// An address as connections.parquet writes it.
fn parse_addr(text: &str) -> PolarsResult<Addr> {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(Addr::v4(a.octets())),
        Ok(IpAddr::V6(a)) => Ok(Addr(a.octets())),
        Err(_) => polars_bail!(ComputeError: "not an IP address: {text:?}"),
    }
}

/// Columns holding an address id in computed tables.
const ADDRESS_COLUMNS: [&str; 3] = ["orig_addr", "resp_addr", "server"];

/// A protocol's code in computed tables (its position in [`Proto::ALL`]).
pub fn proto_code(name: &str) -> u8 {
    Proto::ALL
        .iter()
        .find(|p| p.name() == name)
        .map_or(Proto::ALL.len() as u8, |p| *p as u8)
}

/// Rows of connections.parquet decoded per batch when it is read back, so
/// its text columns never sit in memory whole.
const LOAD_BATCH: IdxSize = 65_536;

/// The value of `names` called `text` (`fallback` if none).
fn named<T: Copy>(all: &[T], name: fn(T) -> &'static str, text: &str, fallback: T) -> T {
    all.iter()
        .copied()
        .find(|v| name(*v) == text)
        .unwrap_or(fallback)
}

impl Conns {
    /// How many connections.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Read the columns the tables need from connections.parquet.
    pub fn load(parquet: &Path) -> PolarsResult<Conns> {
        Conns::load_in_batches(parquet, LOAD_BATCH)
    }

    fn load_in_batches(parquet: &Path, batch: IdxSize) -> PolarsResult<Conns> {
        let scan = LazyFrame::scan_parquet(
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
            col("first_fin_side"),
            col("close_reason"),
            col("ts").cast(DataType::Int64),
            col("last_packet_ts").cast(DataType::Int64),
            col("duration").cast(DataType::Int64),
            col("orig_bytes"),
            col("resp_bytes"),
        ]);
        // The row count is in the file's metadata: reserve exactly, since
        // growing the rows by doubling would briefly hold them three times.
        let height = scan.clone().select([len()]).collect()?;
        let height = height.column("len")?.cast(&DataType::UInt64)?;
        let height = height.u64()?.get(0).unwrap_or(0);
        let mut rows = Vec::with_capacity(usize::try_from(height).unwrap_or(0));
        let mut ids = AddressIds::default();
        loop {
            let df = scan.clone().slice(rows.len() as i64, batch).collect()?;
            let text =
                |name: &str| -> PolarsResult<StringChunked> { Ok(df.column(name)?.str()?.clone()) };
            let int = |name: &str| -> PolarsResult<Int64Chunked> {
                Ok(df.column(name)?.cast(&DataType::Int64)?.i64()?.clone())
            };
            let (proto, orig, resp, state, fin_side, reason) = (
                text("proto")?,
                text("orig_addr")?,
                text("resp_addr")?,
                text("conn_state")?,
                text("first_fin_side")?,
                text("close_reason")?,
            );
            let (orig_port, resp_port) = (int("orig_port")?, int("resp_port")?);
            let (start, end, duration) = (int("ts")?, int("last_packet_ts")?, int("duration")?);
            let (orig_bytes, resp_bytes) = (int("orig_bytes")?, int("resp_bytes")?);
            let syn_seen = df.column("syn_seen")?.bool()?.clone();
            for i in 0..df.height() {
                let o = parse_addr(orig.get(i).unwrap_or(""))?;
                let r = parse_addr(resp.get(i).unwrap_or(""))?;
                let close_reason = named(
                    &CloseReason::ALL,
                    CloseReason::name,
                    reason.get(i).unwrap_or(""),
                    CloseReason::ALL[0],
                );
                rows.push(Row {
                    start: start.get(i).unwrap_or(0),
                    end: end.get(i).unwrap_or(0),
                    duration: duration.get(i).unwrap_or(0),
                    orig_bytes: orig_bytes.get(i).unwrap_or(0) as u64,
                    resp_bytes: resp_bytes.get(i).unwrap_or(0) as u64,
                    orig: ids.id(o),
                    resp: ids.id(r),
                    orig_port: orig_port.get(i).unwrap_or(0) as u16,
                    resp_port: resp_port.get(i).unwrap_or(0) as u16,
                    proto: named(
                        &Proto::ALL,
                        Proto::name,
                        proto.get(i).unwrap_or(""),
                        Proto::Unknown,
                    ),
                    state: named(
                        &ConnState::ALL,
                        ConnState::name,
                        state.get(i).unwrap_or(""),
                        ConnState::OTH,
                    ),
                    close_reason,
                    syn_seen: syn_seen.get(i).unwrap_or(false),
                    client_closed: Row::client_closes(
                        (fin_side.get(i) == Some(Side::Orig.name())).then_some(Side::Orig),
                        close_reason,
                    ),
                });
            }
            if df.height() < batch as usize {
                return Ok(ids.finish(rows));
            }
        }
    }

    /// Replace address ids and protocol codes in a computed table by names.
    pub fn names(&self, mut df: DataFrame) -> PolarsResult<DataFrame> {
        let mut buf = Vec::new();
        for name in ADDRESS_COLUMNS {
            if let Ok(c) = df.column(name) {
                let ids = c.u32()?;
                let mut text = StringChunkedBuilder::new(name.into(), ids.len());
                for id in ids.iter() {
                    match id.and_then(|i| self.addrs.get(i as usize)) {
                        Some(a) => {
                            buf.clear();
                            super::text::addr(&mut buf, *a);
                            text.append_value(String::from_utf8_lossy(&buf));
                        }
                        None => text.append_null(),
                    }
                }
                df.with_column(text.finish().into_column())?;
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

    /// The rows, for the timeline.
    pub(super) fn all(&self) -> &[Row] {
        &self.rows
    }
}

/// Each row's group number (in order of first appearance) and each group's key.
fn groups<K: Hash + Eq + Copy>(keys: impl Iterator<Item = K>) -> (Vec<u32>, Vec<K>) {
    let mut numbers: FxHashMap<K, u32> = FxHashMap::default();
    let mut keys_of: Vec<K> = Vec::new();
    let of = keys
        .map(|k| {
            *numbers.entry(k).or_insert_with(|| {
                keys_of.push(k);
                (keys_of.len() - 1) as u32
            })
        })
        .collect();
    (of, keys_of)
}

/// Each group's values side by side: a counting sort by group number, so
/// that every aggregate then sorts only its own group's 8-byte values in
/// place (one sort of all (group, value) pairs moved twice the bytes and
/// compared pairs; on the clients table, most groups hold one or two).
struct Grouped<T> {
    /// Where each group's values begin; a group ends where the next begins.
    starts: Vec<usize>,
    values: Vec<T>,
}

impl<T: Copy + Default + Ord> Grouped<T> {
    fn new(pairs: impl Iterator<Item = (u32, T)> + Clone, groups: usize) -> Grouped<T> {
        // First each group's end; filling each group from its end backwards
        // then leaves every cursor at its group's start.
        let mut cursor = vec![0usize; groups];
        for (g, _) in pairs.clone() {
            cursor[g as usize] += 1;
        }
        let mut total = 0;
        for c in &mut cursor {
            total += *c;
            *c = total;
        }
        let mut values = vec![T::default(); total];
        for (g, v) in pairs {
            let at = &mut cursor[g as usize];
            *at -= 1;
            values[*at] = v;
        }
        Grouped {
            starts: cursor,
            values,
        }
    }

    /// Each group's values, sorted, in group order.
    fn sorted(&mut self) -> impl Iterator<Item = &[T]> {
        let Grouped { starts, values } = self;
        let (starts, total): (&[usize], usize) = (starts, values.len());
        let mut rest: &mut [T] = values;
        (0..starts.len()).map(move |g| {
            let end = starts.get(g + 1).copied().unwrap_or(total);
            let (group, tail) = std::mem::take(&mut rest).split_at_mut(end - starts[g]);
            rest = tail;
            group.sort_unstable();
            &*group
        })
    }
}

/// Distinct values per group, from (group, value) pairs.
fn distinct(pairs: impl Iterator<Item = (u32, u64)> + Clone, groups: usize) -> Vec<u64> {
    Grouped::new(pairs, groups)
        .sorted()
        .map(|v| v.chunk_by(|a, b| a == b).count() as u64)
        .collect()
}

/// Median per group of (group, value) pairs, as polars computes it: the
/// middle value, or the midpoint of the two middle ones.
fn medians(pairs: impl Iterator<Item = (u32, i64)> + Clone, groups: usize) -> Vec<f64> {
    Grouped::new(pairs, groups)
        .sorted()
        .map(|v| match v.len() {
            0 => f64::NAN,
            n => {
                let lower = v[(n - 1) / 2] as f64;
                let upper = v[n / 2] as f64;
                lower + (upper - lower) * 0.5
            }
        })
        .collect()
}

/// Peak concurrency per group: the largest number of sockets open at once
/// (each from `start` to `until`), and when it was first reached.
///
/// Each interval becomes two events, `2t` (opening) and `2t + 1` (closing),
/// so that sorting a group's events puts openings first at equal times; one
/// pass over them keeps the running count.
fn peaks(
    intervals: impl Iterator<Item = (u32, Nanos, Nanos)> + Clone,
    groups: usize,
) -> Vec<(u64, i64)> {
    let events = intervals.flat_map(|(g, start, until)| {
        [
            (g, start.saturating_mul(2)),
            (g, until.saturating_mul(2).saturating_add(1)),
        ]
    });
    Grouped::new(events, groups)
        .sorted()
        .map(|events| {
            let (mut open, mut peak) = (0u64, (0u64, 0i64));
            for &order in events {
                if order & 1 == 0 {
                    open += 1;
                } else {
                    open = open.saturating_sub(1);
                }
                if open > peak.0 {
                    peak = (open, order.div_euclid(2));
                }
            }
            peak
        })
        .collect()
}

/// The servers [`fanin`] groups connections by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Servers {
    /// Protocol and port (ports.csv).
    Ports,
    /// Protocol, address and port (endpoints.csv).
    Endpoints,
}

/// Counts per fan-in group.
#[derive(Clone, Copy, Default)]
struct FanIn {
    connections: u64,
    established: u64,
    rejected: u64,
    unanswered: u64,
    failed: u64,
    to_server: u64,
    to_client: u64,
}

/// Fan-in per server port or endpoint.
pub fn fanin(conns: &Conns, by: Servers, capture_secs: f64) -> PolarsResult<DataFrame> {
    let rows = &conns.rows;
    let (of, keys) = groups(rows.iter().map(|r| {
        let server = if by == Servers::Endpoints { r.resp } else { 0 };
        (r.proto as u8, server, r.resp_port)
    }));
    let n = keys.len();
    let mut sums = vec![FanIn::default(); n];
    for (r, &g) in rows.iter().zip(&of) {
        let s = &mut sums[g as usize];
        s.connections += 1;
        s.established += u64::from(r.established());
        s.rejected += u64::from(r.state == ConnState::REJ);
        s.unanswered += u64::from(r.state == ConnState::S0);
        s.failed += u64::from(r.failed());
        s.to_server += r.orig_bytes;
        s.to_client += r.resp_bytes;
    }
    let pairs = |value: fn(&Row) -> Option<u64>| {
        rows.iter()
            .zip(&of)
            .filter_map(move |(r, &g)| value(r).map(|v| (g, v)))
    };
    let servers = distinct(pairs(|r| Some(u64::from(r.resp))), n);
    let clients = distinct(pairs(|r| Some(u64::from(r.orig))), n);
    let served = distinct(pairs(|r| (!r.failed()).then_some(u64::from(r.orig))), n);
    let sockets = distinct(
        pairs(|r| Some(u64::from(r.orig) << 16 | u64::from(r.orig_port))),
        n,
    );
    let median = medians(rows.iter().zip(&of).map(|(r, &g)| (g, r.duration)), n);
    let peak = peaks(rows.iter().zip(&of).map(|(r, &g)| (g, r.start, r.end)), n);

    let mut columns = vec![column_of("proto", &keys, |k| k.0)];
    if by == Servers::Endpoints {
        columns.push(column_of("server", &keys, |k| k.1));
    }
    columns.extend([
        column_of("port", &keys, |k| k.2),
        Column::new("servers".into(), servers),
        Column::new("clients".into(), clients),
        Column::new("client_sockets".into(), sockets),
        column_of("connections", &sums, |s| s.connections),
        column_of("established", &sums, |s| s.established),
        column_of("rejected", &sums, |s| s.rejected),
        column_of("unanswered", &sums, |s| s.unanswered),
        column_of("failed", &sums, |s| s.failed),
        Column::new("served_clients".into(), served),
        column_of("peak_concurrent", &peak, |p| p.0),
        utc("peak_at", peak.iter().map(|p| p.1).collect()),
        column_of("connections_per_s", &sums, |s| {
            s.connections as f64 / capture_secs.max(1e-9)
        }),
        column_of("bytes_to_server", &sums, |s| s.to_server),
        column_of("bytes_to_client", &sums, |s| s.to_client),
        // Rounded to the microsecond from exact nanoseconds (a midpoint
        // divided by 1e9 first could land a hair under a half).
        column_of("median_duration_s", &median, |ns| (ns / 1e3).round() / 1e6),
    ]);
    let table = DataFrame::new(n, columns)?;
    let mut order = vec![("clients", true), ("connections", true), ("proto", false)];
    if by == Servers::Endpoints {
        order.push(("server", false));
    }
    order.push(("port", false));
    sort_rows(table, &order)
}

/// A column holding one field of every item (a group key's part, a count).
fn column_of<I, T>(name: &str, items: &[I], field: impl Fn(&I) -> T) -> Column
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    Column::new(name.into(), items.iter().map(field).collect::<Vec<T>>())
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
pub fn clients(conns: &Conns) -> PolarsResult<DataFrame> {
    let rows: Vec<&Row> = conns
        .rows
        .iter()
        .filter(|r| matches!(r.proto, Proto::Tcp | Proto::Udp))
        .collect();
    let (of, keys) = groups(
        rows.iter()
            .map(|r| (r.proto as u8, r.orig, r.resp, r.resp_port)),
    );
    let n = keys.len();
    let mut connections = vec![0u64; n];
    let mut lowest = vec![u16::MAX; n];
    let mut highest = vec![0u16; n];
    for (r, &g) in rows.iter().zip(&of) {
        let g = g as usize;
        connections[g] += 1;
        lowest[g] = lowest[g].min(r.orig_port);
        highest[g] = highest[g].max(r.orig_port);
    }
    let ports = distinct(
        rows.iter()
            .zip(&of)
            .map(|(r, &g)| (g, u64::from(r.orig_port))),
        n,
    );
    let open = peaks(rows.iter().zip(&of).map(|(r, &g)| (g, r.start, r.end)), n);
    let held = peaks(
        rows.iter()
            .zip(&of)
            .map(|(r, &g)| (g, r.start, r.held_until())),
        n,
    );
    let reuse: Vec<u64> = connections.iter().zip(&ports).map(|(c, p)| c - p).collect();
    let columns = vec![
        column_of("proto", &keys, |k| k.0),
        column_of("orig_addr", &keys, |k| k.1),
        column_of("resp_addr", &keys, |k| k.2),
        column_of("resp_port", &keys, |k| k.3),
        Column::new("connections".into(), connections),
        Column::new("distinct_ports".into(), ports),
        Column::new("lowest_port".into(), lowest),
        Column::new("highest_port".into(), highest),
        Column::new("port_reuse".into(), reuse),
        column_of("peak_concurrent", &open, |p| p.0),
        column_of("peak_ports_held", &held, |p| p.0),
        column_of("exhaustion_risk", &held, |p| {
            p.0 as f64 / f64::from(EPHEMERAL_PORTS)
        }),
    ];
    let table = DataFrame::new(n, columns)?;
    let order = [
        ("exhaustion_risk", true),
        ("connections", true),
        ("proto", false),
        ("orig_addr", false),
        ("resp_addr", false),
        ("resp_port", false),
    ];
    sort_rows(table, &order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ids_follow_numeric_address_order() {
        let addrs = ["10.0.0.10", "::1", "10.0.0.2", "1.2.3.4"].map(|a| parse_addr(a).unwrap());
        let (ordered, new_id) = order_ids(addrs.to_vec());
        let text: Vec<String> = ordered.iter().map(|a| a.to_string()).collect();
        assert_eq!(text, ["1.2.3.4", "10.0.0.2", "10.0.0.10", "::1"]);
        assert_eq!(new_id, [2, 3, 1, 0]);
        assert!(parse_addr("not an address").is_err());
    }

    #[test]
    fn peaks_count_openings_before_closings_at_equal_times() {
        // Group 0: [0,10] and [10,20] touch at 10: both open then.
        // Group 1: [5,6], [7,8]: never two at once.
        let p = peaks(
            [(0, 0, 10), (0, 10, 20), (1, 5, 6), (1, 7, 8)].into_iter(),
            2,
        );
        assert_eq!(p, [(2, 10), (1, 5)]);
    }

    #[test]
    fn medians_take_the_midpoint_of_an_even_group() {
        let m = medians(vec![(0, 4), (1, 7), (0, 1), (0, 10), (0, 2)].into_iter(), 3);
        assert_eq!(m[..2], [3.0, 7.0]);
        assert!(m[2].is_nan());
    }

    #[test]
    fn distinct_counts_per_group() {
        let d = distinct(vec![(0, 5), (2, 5), (0, 5), (0, 6)].into_iter(), 4);
        assert_eq!(d, [2, 0, 1, 0]);
    }

    #[test]
    fn tables_from_parquet_read_in_small_batches_equal_the_kept_rows() {
        let dir = std::env::temp_dir().join(format!("sockscope-load-{}", std::process::id()));
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/http-fanin.pcap.gz");
        let cfg = crate::analyze::AnalyzeConfig {
            inputs: vec![sample],
            out: dir.clone(),
            force: true,
            filter: None,
            decode: Default::default(),
            flow: Default::default(),
            threads: 1,
            tables: true,
        };
        let kept = crate::analyze::run(&cfg, &crate::analyze::Silent)
            .unwrap()
            .conns
            .unwrap();
        // 7 does not divide the row count: the last batch is a short one.
        let read = Conns::load_in_batches(&dir.join("connections.parquet"), 7).unwrap();
        assert!(kept.rows() > 100 && kept.rows() % 7 != 0, "{}", kept.rows());
        assert_eq!(read.rows(), kept.rows());
        assert_eq!(read.addrs, kept.addrs);
        let tables = |c: &Conns| {
            [
                fanin(c, Servers::Ports, 1.0).unwrap(),
                fanin(c, Servers::Endpoints, 1.0).unwrap(),
                clients(c).unwrap(),
            ]
        };
        for (a, b) in tables(&kept).iter().zip(tables(&read).iter()) {
            assert!(a.equals(b), "{a}\n{b}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
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

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
//! Memory is bounded (`report::spill`): rows past one chunk wait in a
//! temporary file, and each aggregate (a group number per row, a counting
//! sort by group, small sorts, then one pass) sorts a chunk at a time into
//! runs merged as they are read. What grows with the capture is only what
//! the tables hold: one entry per group and per distinct address. polars'
//! group-bys and joins over the same rows took several times the memory
//! and the time.

use std::hash::Hash;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use polars::prelude::*;

use rustc_hash::FxHashMap;

use crate::decode::Addr;
use crate::flow::{CloseReason, ConnRecord, ConnState, Proto, Side, ordered, unordered};
use crate::source::Nanos;

use super::frame::utc;
use super::spill::{ByGroup, Chunked, Fixed, NO_GROUP, Pair, Values};

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
    /// First SYN to the ACK that completed the handshake.
    pub handshake_rtt: Option<Nanos>,
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

/// Rows in temporary files: 64 bytes each.
impl Fixed for Row {
    const SIZE: usize = 64;
    fn put(&self, out: &mut [u8]) {
        let words = [
            self.start as u64,
            self.end as u64,
            self.duration as u64,
            self.orig_bytes,
            self.resp_bytes,
        ];
        for (w, o) in words.iter().zip(out.chunks_exact_mut(8)) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out[40..44].copy_from_slice(&self.orig.to_le_bytes());
        out[44..48].copy_from_slice(&self.resp.to_le_bytes());
        out[48..50].copy_from_slice(&self.orig_port.to_le_bytes());
        out[50..52].copy_from_slice(&self.resp_port.to_le_bytes());
        out[52] = self.proto as u8;
        out[53] = self.state as u8;
        out[54] = self.close_reason as u8;
        out[55] = u8::from(self.syn_seen)
            | u8::from(self.client_closed) << 1
            | u8::from(self.handshake_rtt.is_some()) << 2;
        out[56..64].copy_from_slice(&self.handshake_rtt.unwrap_or(0).to_le_bytes());
    }

    fn get(b: &[u8]) -> Row {
        let u64_at = |i: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Row {
            start: u64_at(0) as i64,
            end: u64_at(8) as i64,
            duration: u64_at(16) as i64,
            handshake_rtt: (b[55] & 4 != 0).then(|| u64_at(56) as i64),
            orig_bytes: u64_at(24),
            resp_bytes: u64_at(32),
            orig: u32_at(40),
            resp: u32_at(44),
            orig_port: u16_at(48),
            resp_port: u16_at(50),
            proto: coded(&Proto::ALL, b[52], Proto::Unknown),
            state: coded(&ConnState::ALL, b[53], ConnState::OTH),
            close_reason: coded(&CloseReason::ALL, b[54], CloseReason::ALL[0]),
            syn_seen: b[55] & 1 != 0,
            client_closed: b[55] & 2 != 0,
        }
    }
}

/// The value whose code (`as u8`, its position in `all`) is `code`.
fn coded<T: Copy>(all: &[T], code: u8, fallback: T) -> T {
    all.get(usize::from(code)).copied().unwrap_or(fallback)
}

/// The connections the tables are computed from, with their addresses.
pub struct Conns {
    rows: Chunked<Row>,
    /// By id, in order of first appearance.
    addrs: Vec<Addr>,
    /// Each id's position in address order: the tables break ties by it, so
    /// that they do not depend on the order in which connections were
    /// recorded (shard threads interleave them).
    rank: Vec<u32>,
    /// Every address as text, by id, once a table has named addresses.
    address_names: OnceLock<StringChunked>,
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

/// Numbers for keys in order of first appearance: address ids, and the
/// tables' group numbers.
struct Numbering<K> {
    ids: FxHashMap<K, u32>,
    keys: Vec<K>,
}

impl<K> Default for Numbering<K> {
    fn default() -> Self {
        Numbering {
            ids: FxHashMap::default(),
            keys: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> Numbering<K> {
    fn id(&mut self, k: K) -> u32 {
        let next = self.keys.len() as u32;
        *self.ids.entry(k).or_insert_with(|| {
            self.keys.push(k);
            next
        })
    }
}

/// Address ids. Addresses stay 16-byte values until a finished table names
/// them: on a flood of spoofed sources their text (and a map keyed by it)
/// took several times the rows' memory.
type AddressIds = Numbering<Addr>;

impl AddressIds {
    /// The finished rows, with the addresses' order. (Renumbering the rows
    /// in address order instead rewrote every row, on the run's critical
    /// path, and the whole temporary file of a spilled capture.)
    fn finish(self, rows: Chunked<Row>) -> Conns {
        drop(self.ids);
        let rank = address_ranks(&self.keys);
        Conns {
            rows,
            addrs: self.keys,
            rank,
            address_names: OnceLock::new(),
        }
    }
}

/// Collects [`Conns`] record by record.
pub struct ConnsBuilder {
    ids: AddressIds,
    rows: Chunked<Row>,
}

impl ConnsBuilder {
    /// Rows past one chunk go to a temporary file in `dir`.
    pub fn new(dir: &Path) -> ConnsBuilder {
        ConnsBuilder {
            ids: AddressIds::default(),
            rows: Chunked::new(dir),
        }
    }

    pub fn push(&mut self, r: &ConnRecord) -> io::Result<()> {
        let orig = self.ids.id(r.orig);
        let resp = self.ids.id(r.resp);
        self.rows.push(Row {
            start: r.start,
            end: r.lifecycle.last_packet,
            duration: r.duration,
            handshake_rtt: r.handshake_rtt(),
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
        })
    }

    pub fn finish(self) -> Conns {
        self.ids.finish(self.rows)
    }
}

/// Each address's position in address order (IPv4 before IPv6, each
/// numerically).
fn address_ranks(addrs: &[Addr]) -> Vec<u32> {
    // Keys computed once, not per comparison: this runs between the last
    // record and the first table.
    let mut order: Vec<_> = (0..addrs.len() as u32)
        .map(|id| (address_order(&addrs[id as usize]), id))
        .collect();
    order.sort_unstable();
    let mut rank = vec![0u32; addrs.len()];
    for (position, (_, id)) in order.iter().enumerate() {
        rank[*id as usize] = position as u32;
    }
    rank
}

/// The order of addresses: IPv4 first, each numerically.
fn address_order(a: &Addr) -> (bool, u128) {
    (!a.is_v4(), u128::from_be_bytes(a.0))
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
    /// Read the columns the tables need from connections.parquet.
    pub fn load(parquet: &Path) -> PolarsResult<Conns> {
        Conns::load_in_batches(parquet, LOAD_BATCH, super::spill::CHUNK)
    }

    /// Read `batch` rows of the file at a time, keeping `chunk` in memory.
    fn load_in_batches(parquet: &Path, batch: IdxSize, chunk: usize) -> PolarsResult<Conns> {
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
            col("handshake_rtt").cast(DataType::Int64),
            col("orig_bytes"),
            col("resp_bytes"),
        ]);
        // Temporary files go beside the parquet file, in the output directory.
        let mut rows = Chunked::with_chunk(parquet.parent().unwrap_or(Path::new(".")), chunk);
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
            let handshake_rtt = int("handshake_rtt")?;
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
                    handshake_rtt: handshake_rtt.get(i),
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
                })?;
            }
            if df.height() < batch as usize {
                return Ok(ids.finish(rows));
            }
        }
    }

    /// Every row with its position (that of connections.parquet), in order.
    pub fn scan_rows(&self, mut f: impl FnMut(u64, &Row)) -> PolarsResult<()> {
        let mut at = 0;
        self.rows.scan(|slice| -> PolarsResult<()> {
            for r in slice {
                f(at, r);
                at += 1;
            }
            Ok(())
        })
    }

    /// The address an id in the rows stands for.
    pub fn addr(&self, id: u32) -> Addr {
        self.addrs[id as usize]
    }

    /// An id's position in address order, for the tables' ties.
    pub(super) fn rank(&self, id: u32) -> u64 {
        u64::from(self.rank[id as usize])
    }

    /// When each connection of the given (protocol, client, server, server
    /// port) pairs, as the tables name them, started and from which client
    /// port: per pair, in record order (that of connections.parquet).
    pub fn client_ports(
        &self,
        pairs: &[(&str, &str, &str, u16)],
    ) -> PolarsResult<Vec<Vec<(Nanos, u16)>>> {
        // A few pairs (the charts' busiest clients): a scan per address.
        let id = |text: &str| -> PolarsResult<Option<u32>> {
            let a = parse_addr(text)?;
            Ok(self.addrs.iter().position(|b| *b == a).map(|i| i as u32))
        };
        let mut wanted = Vec::with_capacity(pairs.len());
        for &(proto, client, server, port) in pairs {
            let proto = named(&Proto::ALL, Proto::name, proto, Proto::Unknown);
            wanted.push((proto, id(client)?, id(server)?, port));
        }
        let mut out = vec![Vec::new(); pairs.len()];
        self.scan_rows(|_, r| {
            for (w, used) in wanted.iter().zip(&mut out) {
                if (w.0, w.1, w.2, w.3) == (r.proto, Some(r.orig), Some(r.resp), r.resp_port) {
                    used.push((r.start, r.orig_port));
                }
            }
        })?;
        Ok(out)
    }

    /// Replace address ids and protocol codes in a computed table by names.
    pub fn names(&self, mut df: DataFrame) -> PolarsResult<DataFrame> {
        // Each address is formatted once per run, and a column of ids
        // gathers its names: the gathered strings share the formatted ones'
        // bytes (clients.csv names ~150 k cells with ~20 k addresses).
        let names = self.address_names.get_or_init(|| {
            let mut buf = Vec::new();
            let mut names = StringChunkedBuilder::new("addr".into(), self.addrs.len());
            for a in &self.addrs {
                buf.clear();
                super::text::addr(&mut buf, *a);
                names.append_value(String::from_utf8_lossy(&buf));
            }
            names.finish()
        });
        for name in ADDRESS_COLUMNS {
            if let Ok(c) = df.column(name) {
                let text = names.take(c.u32()?)?.with_name(name.into());
                df.with_column(text.into_column())?;
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

    /// Every row, a slice at a time.
    pub(super) fn scan(&self, f: impl FnMut(&[Row]) -> PolarsResult<()>) -> PolarsResult<()> {
        self.rows.scan(f)
    }
}

/// Rows numbered by group: by a key, in order of first appearance.
struct Groups<K> {
    keys: Vec<K>,
    /// Each group's earliest start (what its event times are taken from).
    origins: Vec<Nanos>,
    /// Each group's rows.
    sizes: Vec<u64>,
    /// Each row's group ([`NO_GROUP`] outside all), in step with the rows:
    /// in memory while they are, else beside them in a temporary file.
    of: Chunked<u32>,
    /// Scratch space of the sorts.
    pairs: Vec<Pair>,
}

impl<K: Hash + Eq + Copy> Groups<K> {
    /// Number the rows of `conns` by `key` (none: in no group); `each` gets
    /// every grouped row with its group (the pass that also counts per
    /// group).
    fn number(
        conns: &Conns,
        key: impl Fn(&Row) -> Option<K>,
        mut each: impl FnMut(usize, &Row),
    ) -> PolarsResult<Groups<K>> {
        let mut numbering = Numbering::default();
        let mut of = conns.rows.beside();
        let (mut origins, mut sizes) = (Vec::new(), Vec::new());
        conns.rows.scan(|slice| -> PolarsResult<()> {
            for r in slice {
                let g = key(r).map(|k| numbering.id(k));
                of.push(g.unwrap_or(NO_GROUP))?;
                if let Some(g) = g {
                    let g = g as usize;
                    if g == origins.len() {
                        origins.push(r.start);
                        sizes.push(0);
                    }
                    origins[g] = origins[g].min(r.start);
                    sizes[g] += 1;
                    each(g, r);
                }
            }
            Ok(())
        })?;
        Ok(Groups {
            keys: numbering.keys,
            origins,
            sizes,
            of,
            pairs: Vec::new(),
        })
    }

    /// Sort, by group, the values `emit` gives for each grouped row and
    /// its group.
    fn sort(
        &mut self,
        conns: &Conns,
        emit: impl Fn(&Row, Group) -> Values,
    ) -> PolarsResult<ByGroup> {
        let (n, origins, sizes) = (self.keys.len(), &self.origins, &self.sizes);
        ByGroup::collect(&conns.rows, &self.of, n, &mut self.pairs, |r, g| {
            let g = g as usize;
            let group = Group {
                origin: origins[g],
                rows: sizes[g],
            };
            emit(r, group)
        })
    }

    /// Each group's [`Peaks`]; with `time_wait`, see [`socket_events`]. A
    /// group of one socket peaks at one when it opens, without a sort (six
    /// in ten of the clients table's groups on bench_1g).
    fn peaks(&mut self, conns: &Conns, time_wait: bool) -> PolarsResult<Vec<Peaks>> {
        let by = self.sort(conns, |r, g| {
            if g.rows > 1 {
                socket_events(r, g.origin, time_wait)
            } else {
                Values::NONE
            }
        })?;
        let mut all = peaks(&by, &self.origins)?;
        for ((p, &rows), &origin) in all.iter_mut().zip(&self.sizes).zip(&self.origins) {
            if rows == 1 {
                *p = Peaks {
                    open: 1,
                    open_at: origin,
                    held: 1,
                };
            }
        }
        Ok(all)
    }
}

/// What [`Groups::sort`]'s emitter knows of a row's group.
#[derive(Clone, Copy)]
struct Group {
    /// The group's earliest start.
    origin: Nanos,
    rows: u64,
}

/// Distinct values per group.
fn distinct(by: &ByGroup) -> io::Result<Vec<u64>> {
    let counted = by.fold((0u64, None), |(n, last), _, v| {
        if *last != Some(v) {
            *n += 1;
            *last = Some(v);
        }
    })?;
    Ok(counted.into_iter().map(|(n, _)| n).collect())
}

/// A fan-in group's distinct clients, client sockets and clients served at
/// least once.
#[derive(Clone, Copy, Default)]
struct ClientCounts {
    clients: u64,
    sockets: u64,
    served: u64,
}

/// A row's value for [`client_counts`]: `client << 17 | port << 1 | failed`.
fn client_value(r: &Row) -> u64 {
    u64::from(r.orig) << 17 | u64::from(r.orig_port) << 1 | u64::from(r.failed())
}

/// [`ClientCounts`] per group of [`client_value`]s, in one pass: sorted, a
/// client's sockets follow each other, and a socket's served rows come
/// before its failed ones.
fn client_counts(by: &ByGroup) -> io::Result<Vec<ClientCounts>> {
    let counted = by.fold(
        (ClientCounts::default(), None, None, None),
        |(n, client, socket, served), _, v| {
            let (c, s) = (Some(v >> 17), Some(v >> 1));
            n.clients += u64::from(*client != c);
            n.sockets += u64::from(*socket != s);
            if v & 1 == 0 && *served != c {
                n.served += 1;
                *served = c;
            }
            (*client, *socket) = (c, s);
        },
    )?;
    Ok(counted.into_iter().map(|(n, ..)| n).collect())
}

/// Median per group of [`ordered`] values, as polars computes it: the
/// middle value, or the midpoint of the two middle ones.
fn medians(by: &ByGroup) -> io::Result<Vec<f64>> {
    // Values seen, the lower and the upper middle one.
    let middles = by.fold((0u64, 0i64, 0i64), |(seen, lower, upper), g, v| {
        let n = by.size(g);
        if *seen == (n - 1) / 2 {
            *lower = unordered(v);
        }
        if *seen == n / 2 {
            *upper = unordered(v);
        }
        *seen += 1;
    })?;
    Ok(middles
        .into_iter()
        .map(|(seen, lower, upper)| match seen {
            0 => f64::NAN,
            _ => {
                let (lower, upper) = (lower as f64, upper as f64);
                lower + (upper - lower) * 0.5
            }
        })
        .collect())
}

/// What a socket's event does to the two counts of [`peaks`], the open
/// sockets and the ports held (open or in TIME_WAIT); at equal times the
/// kinds sort in this order, openings first.
#[derive(Clone, Copy)]
enum Event {
    Open,
    /// A socket whose port is freed at once.
    CloseAndFree,
    /// A socket whose port stays in TIME_WAIT.
    Close,
    /// The end of that TIME_WAIT.
    Free,
}

impl Event {
    /// By code (`as u64`).
    const ALL: [Event; 4] = [Event::Open, Event::CloseAndFree, Event::Close, Event::Free];
}

/// A socket's event as a value that sorts by time, then kind. Times are
/// taken from `origin` (the group's earliest start) so that four kinds per
/// nanosecond fit in 64 bits for a group spanning up to 73 years; a time
/// past that is held at the limit, its kind kept.
fn event(t: Nanos, kind: Event, origin: Nanos) -> u64 {
    let t = t.saturating_sub(origin).clamp(0, Nanos::MAX / 4);
    (t * 4) as u64 + kind as u64
}

/// A connection's socket as events; with `time_wait`, a client that closed
/// first holds its port for [`TIME_WAIT`] after.
fn socket_events(r: &Row, origin: Nanos, time_wait: bool) -> Values {
    let open = event(r.start, Event::Open, origin);
    if time_wait && r.client_closed {
        Values::three(
            open,
            event(r.end, Event::Close, origin),
            event(r.held_until(), Event::Free, origin),
        )
    } else {
        Values::two(open, event(r.end, Event::CloseAndFree, origin))
    }
}

/// A group's peak concurrency.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Peaks {
    /// The most sockets open at once, and when first reached.
    open: u64,
    open_at: Nanos,
    /// The most client ports held at once.
    held: u64,
}

/// [`Peaks`] per group of [`socket_events`] taken from the group's origin:
/// one pass over each group's sorted events, keeping the running counts.
fn peaks(by: &ByGroup, origins: &[Nanos]) -> io::Result<Vec<Peaks>> {
    let swept = by.fold(([0u64; 2], Peaks::default()), |(now, peak), g, v| {
        let [open, held] = now;
        match Event::ALL[(v & 3) as usize] {
            Event::Open => {
                *open += 1;
                *held += 1;
                if *open > peak.open {
                    peak.open = *open;
                    peak.open_at = origins[g as usize].saturating_add((v >> 2) as Nanos);
                }
                peak.held = peak.held.max(*held);
            }
            Event::CloseAndFree => {
                *open = open.saturating_sub(1);
                *held = held.saturating_sub(1);
            }
            Event::Close => *open = open.saturating_sub(1),
            Event::Free => *held = held.saturating_sub(1),
        }
    })?;
    Ok(swept.into_iter().map(|(_, peak)| peak).collect())
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
    let key = |r: &Row| {
        let server = if by == Servers::Endpoints { r.resp } else { 0 };
        Some((r.proto as u8, server, r.resp_port))
    };
    let mut sums: Vec<FanIn> = Vec::new();
    let mut groups = Groups::number(conns, key, |g, r| {
        if g == sums.len() {
            sums.push(FanIn::default());
        }
        let s = &mut sums[g];
        s.connections += 1;
        s.established += u64::from(r.established());
        s.rejected += u64::from(r.state == ConnState::REJ);
        s.unanswered += u64::from(r.state == ConnState::S0);
        s.failed += u64::from(r.failed());
        s.to_server += r.orig_bytes;
        s.to_client += r.resp_bytes;
    })?;
    // An endpoint is one server; a port's servers are counted.
    let servers = match by {
        Servers::Endpoints => vec![1; groups.keys.len()],
        Servers::Ports => distinct(&groups.sort(conns, |r, _| Values::one(u64::from(r.resp)))?)?,
    };
    let clients = client_counts(&groups.sort(conns, |r, _| Values::one(client_value(r)))?)?;
    let median = medians(&groups.sort(conns, |r, _| Values::one(ordered(r.duration)))?)?;
    let peak = groups.peaks(conns, false)?;
    let (n, keys) = (groups.keys.len(), groups.keys);

    let mut columns = vec![column_of("proto", &keys, |k| k.0)];
    if by == Servers::Endpoints {
        columns.push(column_of("server", &keys, |k| k.1));
    }
    columns.extend([
        column_of("port", &keys, |k| k.2),
        Column::new("servers".into(), servers),
        column_of("clients", &clients, |c| c.clients),
        column_of("client_sockets", &clients, |c| c.sockets),
        column_of("connections", &sums, |s| s.connections),
        column_of("established", &sums, |s| s.established),
        column_of("rejected", &sums, |s| s.rejected),
        column_of("unanswered", &sums, |s| s.unanswered),
        column_of("failed", &sums, |s| s.failed),
        column_of("served_clients", &clients, |c| c.served),
        column_of("peak_concurrent", &peak, |p| p.open),
        utc("peak_at", peak.iter().map(|p| p.open_at).collect()),
        // A capture of one instant has no rate (it was a billion per second).
        column_of("connections_per_s", &sums, |s| {
            (capture_secs > 0.0).then(|| s.connections as f64 / capture_secs)
        }),
        column_of("bytes_to_server", &sums, |s| s.to_server),
        column_of("bytes_to_client", &sums, |s| s.to_client),
        // Rounded to the microsecond from exact nanoseconds (a midpoint
        // divided by 1e9 first could land a hair under a half).
        column_of("median_duration_s", &median, |ns| (ns / 1e3).round() / 1e6),
    ]);
    let table = DataFrame::new(n, columns)?;
    let mut order = vec![
        SortKey::of(&clients, true, |c| c.clients),
        SortKey::of(&sums, true, |s| s.connections),
        SortKey::of(&keys, false, |k| u64::from(k.0)),
    ];
    if by == Servers::Endpoints {
        order.push(SortKey::of(&keys, false, |k| conns.rank(k.1)));
    }
    order.push(SortKey::of(&keys, false, |k| u64::from(k.2)));
    sort_rows(table, &order)
}

/// A column holding one field of every item (a group key's part, a count).
pub(super) fn column_of<I, T>(name: &str, items: &[I], field: impl Fn(&I) -> T) -> Column
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    Column::new(name.into(), items.iter().map(field).collect::<Vec<T>>())
}

/// A column a table is sorted by, as order-preserving integers.
struct SortKey {
    values: Vec<u64>,
    descending: bool,
}

impl SortKey {
    fn of<I>(items: &[I], descending: bool, value: impl FnMut(&I) -> u64) -> SortKey {
        SortKey {
            values: items.iter().map(value).collect(),
            descending,
        }
    }
}

/// The order of `n` rows sorted by `keys` in turn; ties end in row order,
/// and the last keys are the group key, so a table comes out the same
/// however it was built. Each row's keys, each cut to the bits its range
/// needs, are packed with the row number into one `u128`, and those are
/// sorted: sorting arrays of keys moved 56 bytes per row, and a compare
/// closure over separate columns missed the cache (on a million-client
/// flood). Keys too wide to pack are compared key by key.
fn row_order(keys: &[SortKey], n: usize) -> Vec<IdxSize> {
    if n == 0 {
        return Vec::new();
    }
    // Per key: the least value, the greatest, and the bits between them.
    let ranges: Vec<(u64, u64, u32)> = keys
        .iter()
        .map(|k| {
            let lo = k.values.iter().copied().min().unwrap_or(0);
            let hi = k.values.iter().copied().max().unwrap_or(0);
            (lo, hi, u64::BITS - (hi - lo).leading_zeros())
        })
        .collect();
    let bits: u32 = ranges.iter().map(|r| r.2).sum();
    if bits + IdxSize::BITS > u128::BITS {
        let mut rows: Vec<IdxSize> = (0..n as IdxSize).collect();
        rows.sort_unstable_by(|&a, &b| {
            let by_key = keys.iter().map(|k| {
                let o = k.values[a as usize].cmp(&k.values[b as usize]);
                if k.descending { o.reverse() } else { o }
            });
            by_key
                .fold(std::cmp::Ordering::Equal, std::cmp::Ordering::then)
                .then(a.cmp(&b))
        });
        return rows;
    }
    let mut packed: Vec<u128> = (0..n)
        .map(|row| {
            let fields = keys.iter().zip(&ranges);
            let packed = fields.fold(0u128, |p, (k, &(lo, hi, bits))| {
                let v = k.values[row];
                let field = if k.descending { hi - v } else { v - lo };
                p << bits | u128::from(field)
            });
            packed << IdxSize::BITS | row as u128
        })
        .collect();
    packed.sort_unstable();
    packed.into_iter().map(|p| p as IdxSize).collect()
}

/// `df`'s rows sorted by `keys` (see [`row_order`]).
fn sort_rows(df: DataFrame, keys: &[SortKey]) -> PolarsResult<DataFrame> {
    let order = row_order(keys, df.height());
    df.take(&IdxCa::from_vec("rows".into(), order))
}

/// Per client address and server endpoint: ephemeral port use and reuse.
pub fn clients(conns: &Conns) -> PolarsResult<DataFrame> {
    let key = |r: &Row| {
        matches!(r.proto, Proto::Tcp | Proto::Udp).then_some((
            r.proto as u8,
            r.orig,
            r.resp,
            r.resp_port,
        ))
    };
    let (mut lowest, mut highest) = (Vec::new(), Vec::new());
    let mut groups = Groups::number(conns, key, |g, r| {
        if g == lowest.len() {
            lowest.push(u16::MAX);
            highest.push(0u16);
        }
        lowest[g] = lowest[g].min(r.orig_port);
        highest[g] = highest[g].max(r.orig_port);
    })?;
    // Most groups are one or two connections (on bench_1g nine in ten):
    // their distinct ports follow from the lowest and highest port, so
    // only bigger groups are sorted.
    let few = |rows: u64| rows <= 2;
    let mut ports = distinct(&groups.sort(conns, |r, g| {
        if few(g.rows) {
            Values::NONE
        } else {
            Values::one(u64::from(r.orig_port))
        }
    })?)?;
    for (g, p) in ports.iter_mut().enumerate() {
        if few(groups.sizes[g]) {
            *p = 1 + u64::from(lowest[g] != highest[g]);
        }
    }
    let peak = groups.peaks(conns, true)?;
    let (n, keys, connections) = (groups.keys.len(), groups.keys, groups.sizes);
    let reuse: Vec<u64> = connections.iter().zip(&ports).map(|(c, p)| c - p).collect();
    // Ports held orders as exhaustion_risk, its share of the ephemeral range.
    let order = [
        SortKey::of(&peak, true, |p| p.held),
        SortKey::of(&connections, true, |&c| c),
        SortKey::of(&keys, false, |k| u64::from(k.0)),
        SortKey::of(&keys, false, |k| conns.rank(k.1)),
        SortKey::of(&keys, false, |k| conns.rank(k.2)),
        SortKey::of(&keys, false, |k| u64::from(k.3)),
    ];
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
        column_of("peak_concurrent", &peak, |p| p.open),
        column_of("peak_ports_held", &peak, |p| p.held),
        column_of("exhaustion_risk", &peak, |p| {
            p.held as f64 / f64::from(EPHEMERAL_PORTS)
        }),
    ];
    let table = DataFrame::new(n, columns)?;
    sort_rows(table, &order)
}

#[cfg(test)]
mod tests {
    use super::super::spill::{CHUNK, by_group};
    use super::*;

    #[test]
    fn address_ranks_follow_numeric_address_order() {
        // In address order: 1.2.3.4, 10.0.0.2, 10.0.0.10, ::1.
        let addrs = ["10.0.0.10", "::1", "10.0.0.2", "1.2.3.4"].map(|a| parse_addr(a).unwrap());
        assert_eq!(address_ranks(&addrs), [2, 3, 1, 0]);
        assert!(parse_addr("not an address").is_err());
    }

    /// [`Peaks`] of (group, start, end, client closed first) sockets,
    /// sorted `chunk` values at a time; with `time_wait`, see [`socket_events`].
    fn socket_peaks(s: &[(u32, i64, i64, bool)], time_wait: bool, chunk: usize) -> Vec<Peaks> {
        let groups = s.iter().map(|x| x.0 as usize + 1).max().unwrap_or(0);
        let mut origins = vec![Nanos::MAX; groups];
        for &(g, start, ..) in s {
            origins[g as usize] = origins[g as usize].min(start);
        }
        let events: Vec<_> = s
            .iter()
            .map(|&(g, start, end, client_closed)| {
                let r = Row {
                    start,
                    end,
                    duration: end - start,
                    handshake_rtt: None,
                    orig_bytes: 0,
                    resp_bytes: 0,
                    orig: 0,
                    resp: 0,
                    orig_port: 0,
                    resp_port: 0,
                    proto: Proto::Tcp,
                    state: ConnState::SF,
                    close_reason: CloseReason::Fin,
                    syn_seen: true,
                    client_closed,
                };
                (g, socket_events(&r, origins[g as usize], time_wait))
            })
            .collect();
        peaks(&by_group(&events, groups, chunk), &origins).unwrap()
    }

    /// Peaks of sockets without TIME_WAIT: (open, open_at), held the same.
    fn open_peaks(p: &[Peaks]) -> Vec<(u64, i64)> {
        assert!(p.iter().all(|p| p.held == p.open), "{p:?}");
        p.iter().map(|p| (p.open, p.open_at)).collect()
    }

    #[test]
    fn peaks_count_openings_before_closings_at_equal_times() {
        // Group 0: [0,10] and [10,20] touch at 10: both open then.
        // Group 1: [5,6], [7,8]: never two at once. Before 1970 as well.
        let s = [
            (0, 0, 10, false),
            (0, 10, 20, false),
            (1, 5, 6, false),
            (1, 7, 8, false),
            (2, -9, -3, false),
            (2, -3, 0, false),
        ];
        for chunk in [1, 3, 100] {
            let p = socket_peaks(&s, true, chunk);
            assert_eq!(open_peaks(&p), [(2, 10), (1, 5), (2, -3)], "chunk {chunk}");
        }
    }

    #[test]
    fn ports_stay_held_in_time_wait_after_a_client_closes_first() {
        // Group 0: the first socket's client closed first, so its port is
        // held until 60 s after its end, past the second socket's opening.
        // Group 1: the server closed first; no TIME_WAIT on the client.
        let s = [
            (0, 0, 10, true),
            (0, 20, 30, false),
            (1, 0, 10, false),
            (1, 20, 30, false),
        ];
        for chunk in [1, 100] {
            let p = socket_peaks(&s, true, chunk);
            let held: Vec<_> = p.iter().map(|p| (p.open, p.held)).collect();
            assert_eq!(held, [(1, 2), (1, 1)], "chunk {chunk}");
            open_peaks(&socket_peaks(&s, false, chunk));
        }
    }

    #[test]
    fn peaks_hold_at_the_ends_of_the_time_range() {
        // Each group's times are taken from its own start, so groups at
        // opposite ends of the range both count their socket and its time.
        let (min, max) = (Nanos::MIN, Nanos::MAX);
        let s = [
            (0, min + 5, min + 9, true),
            (1, max - 40, max, true),
            (2, max, max, false),
        ];
        let p = socket_peaks(&s, true, 100);
        let got: Vec<_> = p.iter().map(|p| (p.open, p.open_at, p.held)).collect();
        assert_eq!(got, [(1, min + 5, 1), (1, max - 40, 1), (1, max, 1)]);
    }

    /// Single values by group.
    fn single(v: &[Pair]) -> Vec<(u32, Values)> {
        v.iter().map(|&(g, v)| (g, Values::one(v))).collect()
    }

    #[test]
    fn medians_take_the_midpoint_of_an_even_group() {
        let v = [(0, 4), (1, 7), (0, 1), (0, 10), (0, 2), (1, -3)].map(|(g, v)| (g, ordered(v)));
        for chunk in [1, 2, 100] {
            let m = medians(&by_group(&single(&v), 3, chunk)).unwrap();
            assert_eq!(m[..2], [3.0, 2.0], "chunk {chunk}");
            assert!(m[2].is_nan());
        }
    }

    #[test]
    fn client_counts_per_group() {
        // (group, client, port, failed)
        let rows = [
            (0, 1, 10, true),
            (0, 1, 10, false),
            (0, 1, 11, true),
            (0, 2, 10, true),
            (0, 3, 9, false),
            (1, 2, 10, true),
        ];
        let values: Vec<Pair> = rows
            .iter()
            .map(|&(g, c, p, f): &(u32, u64, u64, bool)| (g, c << 17 | p << 1 | u64::from(f)))
            .collect();
        for chunk in [1, 4, 100] {
            let n = client_counts(&by_group(&single(&values), 3, chunk)).unwrap();
            let n: Vec<_> = n.iter().map(|n| (n.clients, n.sockets, n.served)).collect();
            assert_eq!(n, [(3, 4, 2), (1, 1, 0), (0, 0, 0)], "chunk {chunk}");
        }
    }

    #[test]
    fn distinct_counts_per_group() {
        for chunk in [1, 2, 100] {
            let d = single(&[(0, 5), (2, 5), (0, 5), (0, 6)]);
            let d = distinct(&by_group(&d, 4, chunk)).unwrap();
            assert_eq!(d, [2, 0, 1, 0], "chunk {chunk}");
        }
    }

    #[test]
    fn rows_keep_every_field_through_a_file() {
        let row = Row {
            start: -5,
            end: i64::MAX,
            duration: 1 << 40,
            handshake_rtt: Some(-9),
            orig_bytes: u64::MAX,
            resp_bytes: 7,
            orig: 3,
            resp: u32::MAX,
            orig_port: 65535,
            resp_port: 443,
            proto: Proto::Icmp,
            state: ConnState::RSTOS0,
            close_reason: CloseReason::ALL[5],
            syn_seen: false,
            client_closed: true,
        };
        for row in [
            row,
            Row {
                handshake_rtt: None,
                ..row
            },
        ] {
            let mut bytes = [0; Row::SIZE];
            row.put(&mut bytes);
            assert_eq!(format!("{:?}", Row::get(&bytes)), format!("{row:?}"));
        }
        // Codes are positions in the lists they are read back from.
        assert!(Proto::ALL.iter().enumerate().all(|(i, p)| *p as usize == i));
        assert!(
            ConnState::ALL
                .iter()
                .enumerate()
                .all(|(i, s)| *s as usize == i)
        );
        assert!(
            CloseReason::ALL
                .iter()
                .enumerate()
                .all(|(i, r)| *r as usize == i)
        );
    }

    /// `analyze` of a capture of this repository into `dir`: the rows kept
    /// for the tables, the files written.
    fn analysed(capture: &str, dir: &Path) -> Conns {
        let cfg = crate::analyze::AnalyzeConfig {
            inputs: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(capture)],
            out: dir.to_path_buf(),
            force: true,
            filter: None,
            decode: Default::default(),
            flow: Default::default(),
            threads: 1,
            tables: true,
        };
        let mut outcome = crate::analyze::run(&cfg, &crate::analyze::Silent).unwrap();
        outcome.files.wait().unwrap();
        outcome.conns.take().unwrap()
    }

    #[test]
    fn tables_from_parquet_read_in_small_batches_equal_the_kept_rows() {
        let dir = std::env::temp_dir().join(format!("sockscope-load-{}", std::process::id()));
        let kept = analysed("samples/http-fanin.pcap.gz", &dir);
        // 7 does not divide the row count: the last batch is a short one.
        let parquet = dir.join("connections.parquet");
        let read = Conns::load_in_batches(&parquet, 7, CHUNK).unwrap();
        let rows = kept.rows.len();
        assert!(rows > 100 && rows % 7 != 0, "{rows}");
        assert_eq!(read.rows.len(), rows);
        assert_eq!(read.addrs, kept.addrs);
        // Rows and sorted values in temporary files, 50 rows per chunk.
        let spilled = Conns::load_in_batches(&parquet, 64, 50).unwrap();
        assert!(spilled.rows.memory().is_none());
        let bins = super::super::timeline::Bins::new(0, 1_000_000_000, None);
        let traffic = super::super::traffic::Traffic::default();
        let tables = |c: &Conns| {
            [
                fanin(c, Servers::Ports, 1.0).unwrap(),
                fanin(c, Servers::Endpoints, 1.0).unwrap(),
                clients(c).unwrap(),
                super::super::timeline::timeline(c, &bins, &[("tcp".into(), 80)], &traffic)
                    .unwrap(),
            ]
        };
        let expect = tables(&kept);
        for (how, other) in [("read back", &read), ("spilled", &spilled)] {
            for (i, (a, b)) in expect.iter().zip(tables(other).iter()).enumerate() {
                assert!(a.equals_missing(b), "table {i} differs when {how}");
            }
        }
        let mut left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.retain(|n| n.to_string_lossy().starts_with('.'));
        assert!(left.is_empty(), "temporary files left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The clients table against each group's rows counted directly (the
    /// groups of one or two connections skip the sorts).
    #[test]
    fn clients_match_a_direct_count_of_their_rows() {
        use std::collections::{HashMap, HashSet};
        // Most sockets at once: at each one's opening, those that opened no
        // later and have not yet closed (openings count first at a tie).
        let most = |rows: &[Row], until: fn(&Row) -> Nanos| {
            let at = |t: Nanos| {
                rows.iter()
                    .filter(|b| b.start <= t && t <= until(b))
                    .count()
            };
            rows.iter().map(|a| at(a.start) as u64).max().unwrap_or(0)
        };
        let mut sizes = [0; 3];
        for capture in [
            "samples/http-fanin.pcap.gz",
            "samples/port-reuse.pcap.gz",
            "samples/fanin-synthetic.pcap.gz",
            "samples/dns-udp.pcap",
        ] {
            let dir =
                std::env::temp_dir().join(format!("sockscope-clients-{}", std::process::id()));
            let conns = analysed(capture, &dir);
            let mut groups: HashMap<[u64; 4], Vec<Row>> = HashMap::new();
            conns
                .scan_rows(|_, r| {
                    if matches!(r.proto, Proto::Tcp | Proto::Udp) {
                        let key = [
                            r.proto as u64,
                            r.orig.into(),
                            r.resp.into(),
                            r.resp_port.into(),
                        ];
                        groups.entry(key).or_default().push(*r);
                    }
                })
                .unwrap();
            let table = clients(&conns).unwrap();
            let column = |name: &str| -> Vec<u64> {
                let c = table.column(name).unwrap().cast(&DataType::UInt64).unwrap();
                c.u64().unwrap().into_no_null_iter().collect()
            };
            let [proto, orig, resp, port, distinct, open, held] = [
                "proto",
                "orig_addr",
                "resp_addr",
                "resp_port",
                "distinct_ports",
                "peak_concurrent",
                "peak_ports_held",
            ]
            .map(column);
            assert_eq!(proto.len(), groups.len(), "{capture}");
            for i in 0..proto.len() {
                let rows = &groups[&[proto[i], orig[i], resp[i], port[i]]];
                sizes[rows.len().min(3) - 1] += 1;
                let ports: HashSet<u16> = rows.iter().map(|r| r.orig_port).collect();
                assert_eq!(distinct[i], ports.len() as u64, "{capture} row {i}");
                assert_eq!(open[i], most(rows, |r| r.end), "{capture} row {i}");
                assert_eq!(held[i], most(rows, Row::held_until), "{capture} row {i}");
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
        // Every path taken: groups of one connection, of two, and sorted.
        assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");
    }

    /// Each pair's connections from the rows, in memory and spilled, as a
    /// filter over connections.parquet finds them (IPv4 and IPv6).
    #[test]
    fn client_ports_match_the_parquet_file() {
        for (i, capture) in [
            "samples/http-fanin.pcap.gz",
            "tests/data/zeek/cid-ipv6.pcap",
        ]
        .iter()
        .enumerate()
        {
            let dir = std::env::temp_dir()
                .join(format!("sockscope-client-ports-{}-{i}", std::process::id()));
            let kept = analysed(capture, &dir);
            let parquet = dir.join("connections.parquet");
            let spilled = Conns::load_in_batches(&parquet, 64, 50).unwrap();
            let named = kept.names(clients(&kept).unwrap()).unwrap();
            let text = |c: &str| -> Vec<String> {
                let c = named.column(c).unwrap().cast(&DataType::String).unwrap();
                c.str()
                    .unwrap()
                    .iter()
                    .map(|v| v.unwrap().to_string())
                    .collect()
            };
            let (proto, client, server, port) = (
                text("proto"),
                text("orig_addr"),
                text("resp_addr"),
                text("resp_port"),
            );
            let pairs: Vec<(&str, &str, &str, u16)> = (0..named.height().min(10))
                .map(|j| {
                    (
                        &*proto[j],
                        &*client[j],
                        &*server[j],
                        port[j].parse().unwrap(),
                    )
                })
                .collect();
            assert!(!pairs.is_empty(), "{capture}");
            let want: Vec<Vec<(Nanos, u16)>> = pairs
                .iter()
                .map(|&(p, c, s, port)| {
                    let df = LazyFrame::scan_parquet(
                        parquet.to_string_lossy().as_ref().into(),
                        ScanArgsParquet::default(),
                    )
                    .unwrap()
                    .filter(
                        col("proto")
                            .eq(lit(p))
                            .and(col("orig_addr").eq(lit(c)))
                            .and(col("resp_addr").eq(lit(s)))
                            .and(col("resp_port").eq(lit(port))),
                    )
                    .select([col("ts").cast(DataType::Int64), col("orig_port")])
                    .collect()
                    .unwrap();
                    let ts = df.column("ts").unwrap().i64().unwrap().clone();
                    let op = df.column("orig_port").unwrap().u16().unwrap().clone();
                    ts.into_no_null_iter().zip(op.into_no_null_iter()).collect()
                })
                .collect();
            assert!(want.iter().all(|w| !w.is_empty()), "{capture}");
            assert_eq!(kept.client_ports(&pairs).unwrap(), want, "{capture}");
            assert_eq!(
                spilled.client_ports(&pairs).unwrap(),
                want,
                "{capture} spilled"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn row_order_packed_or_compared_is_lexicographic() {
        let mut x = 7u64;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 20) % m
        };
        let n = 500;
        // Few distinct values (many ties, down to the row number), then
        // either narrow keys (packed) or one spanning all 64 bits (compared).
        for wide in [false, true] {
            let rows = vec![(); n];
            let first = SortKey::of(&rows, true, |_| next(3));
            let second = SortKey::of(&rows, false, |_| next(4) + 1000);
            let third = SortKey::of(&rows, true, |_| match next(5) {
                0 if wide => u64::MAX,
                v => v,
            });
            let keys = [first, second, third];
            let mut expect: Vec<IdxSize> = (0..n as IdxSize).collect();
            expect.sort_by_key(|&r| {
                let v = |k: usize| keys[k].values[r as usize];
                (std::cmp::Reverse(v(0)), v(1), std::cmp::Reverse(v(2)), r)
            });
            assert_eq!(row_order(&keys, n), expect, "wide {wide}");
        }
        assert!(row_order(&[], 0).is_empty());
    }
}

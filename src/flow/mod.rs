//! Flow tracking: packets become connections, connections become records.
//!
//! Rules of this layer:
//! - the clock is packet time, never the wall clock; it never runs backwards
//!   (a late packet is handled at the current clock time and counted);
//! - before a packet is handled, every timer due at or before its time fires,
//!   as in Zeek, so expiry decides whether the packet joins an old connection
//!   or starts a new one;
//! - each connection leaves the table exactly once, as one [`ConnRecord`],
//!   through a [`RecordSink`]: by a timer, by `--max-flows` eviction of the
//!   least recently seen connection, or by [`FlowTable::finish`];
//! - the table is bounded by `max_flows`; memory is the slab of live
//!   connections plus their heap entries (timers, recency), independent of
//!   how many packets pass;
//! - keys are canonical, so a table can be sharded by [`FlowKey::shard_hash`].

pub mod community_id;
mod conn;
pub mod history;
pub mod key;
pub mod ports;
mod ranges;
pub mod record;
mod tcp;
mod timers;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::marker::PhantomData;

use hashbrown::HashTable;

use crate::decode::Packet;
use crate::source::Nanos;
pub use conn::Conn;
pub use key::FlowKey;
pub use record::{CloseReason, ConnRecord, ConnState, Lifecycle, Proto, Side};
pub use timers::Timeouts;

/// Where finished connections go.
pub trait RecordSink {
    fn record(&mut self, rec: &ConnRecord);
}

impl<F: FnMut(&ConnRecord)> RecordSink for F {
    fn record(&mut self, rec: &ConnRecord) {
        self(rec)
    }
}

/// Flow table settings, fixed for a run.
#[derive(Clone, Debug)]
pub struct FlowConfig {
    pub timeouts: Timeouts,
    /// Most connections held at once; when full the least recently seen is evicted.
    pub max_flows: usize,
    /// Make VLAN ids part of the connection key (Zeek's vlan_fivetuple).
    pub vlan_key: bool,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            timeouts: Timeouts::default(),
            max_flows: 1_000_000,
            vlan_key: false,
        }
    }
}

/// Counters the table keeps about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub packets: u64,
    pub connections: u64,
    pub evicted: u64,
    pub peak_flows: u64,
    /// Packets whose timestamp was older than the clock.
    pub late_packets: u64,
}

/// The latest time the clock shows (see [`FlowTable::process`]).
const LAST_TICK: Nanos = Nanos::MAX - 1;

fn key_of(pkt: &Packet, tuple: &conn::Tuple, vlan_key: bool) -> FlowKey {
    let (vlan, inner_vlan) = if vlan_key {
        (pkt.vlan, pkt.inner_vlan)
    } else {
        (None, None)
    };
    FlowKey::new(
        pkt.src,
        tuple.src_port,
        pkt.dst,
        tuple.dst_port,
        pkt.ip_proto,
        tuple.directional,
        vlan,
        inner_vlan,
    )
    .0
}

/// Which of `shards` tables a packet belongs to: both directions of a
/// connection, and every packet of it, land in the same one.
pub fn shard_of(pkt: &Packet, vlan_key: bool, shards: usize) -> usize {
    let key = key_of(pkt, &conn::Tuple::of(pkt), vlan_key);
    // Multiply-shift uses the hash's high bits, the well-mixed ones.
    ((u128::from(key.shard_hash()) * shards as u128) >> 64) as usize
}

/// Cache-line aligned and laid out as declared, so that the fields every
/// packet touches (these and the head of [`Conn`]) share the first lines.
#[repr(C, align(64))]
struct Slot {
    /// When the connection was last seen: the table's packet count then
    /// (unique, so it orders the connections by recency).
    seen: u64,
    /// Deadline of this slot's authoritative timer-heap entry.
    scheduled: Nanos,
    /// Bumped whenever the slot is freed, so stale heap entries are ignored.
    generation: u32,
    live: bool,
    conn: Conn,
}

impl Slot {
    /// Still the connection a heap entry of `generation` was made for.
    fn holds(&self, generation: u32) -> bool {
        self.live && self.generation == generation
    }
}

/// Start loading every cache line of `slot`: firing a timer reads the
/// slot's head, the connection's clock and its timers, and a connection
/// that leaves is read whole into its record.
#[inline(always)]
fn prefetch(slot: &Slot) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let first = (slot as *const Slot).cast::<i8>();
        for line in (0..size_of::<Slot>()).step_by(64) {
            // SAFETY: a prefetch is only a hint: it reads nothing into the
            // program and never faults; `sse` is in every x86_64 target.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

/// A heap key as an unsigned integer that orders the same way.
trait HeapKey: Copy {
    fn bits(self) -> u64;
    fn from_bits(bits: u64) -> Self;
}

impl HeapKey for u64 {
    fn bits(self) -> u64 {
        self
    }
    fn from_bits(bits: u64) -> u64 {
        bits
    }
}

impl HeapKey for Nanos {
    fn bits(self) -> u64 {
        ordered(self)
    }
    fn from_bits(bits: u64) -> Nanos {
        unordered(bits)
    }
}

/// An `i64` as a `u64` that sorts the same way.
pub fn ordered(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// The `i64` that [`ordered`] made `u` of.
pub fn unordered(u: u64) -> i64 {
    (u ^ (1 << 63)) as i64
}

/// A heap entry for a slot, least first: (key, slot index, slot generation)
/// packed into one integer, so that a sift compares entries in one 128-bit
/// comparison instead of a tuple's three.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry<K>(Reverse<u128>, PhantomData<K>);

impl<K: HeapKey> Entry<K> {
    #[inline]
    fn new(key: K, idx: u32, generation: u32) -> Entry<K> {
        let low = (u64::from(idx) << 32) | u64::from(generation);
        Entry(
            Reverse((u128::from(key.bits()) << 64) | u128::from(low)),
            PhantomData,
        )
    }

    #[inline]
    fn parts(self) -> (K, u32, u32) {
        let v = self.0.0;
        (K::from_bits((v >> 64) as u64), (v >> 32) as u32, v as u32)
    }
}

/// Entries of removed connections linger in a heap until popped; rebuild
/// it without them (and those `keep` rejects) when they dominate.
fn prune<K: HeapKey + Ord>(
    heap: &mut BinaryHeap<Entry<K>>,
    slots: &[Slot],
    live: usize,
    keep: impl Fn(&Slot, K) -> bool,
) {
    if heap.len() > 64 && heap.len() > 4 * live {
        heap.retain(|e| {
            let (k, i, g) = e.parts();
            let s = &slots[i as usize];
            s.holds(g) && keep(s, k)
        });
    }
}

pub struct FlowTable {
    cfg: FlowConfig,
    /// Slot indices by the hash of their connection's key. The keys live
    /// in the slots only: a lookup's key comparison then touches the
    /// connection the packet updates next, not a second line in the map.
    map: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    timers: BinaryHeap<Entry<Nanos>>,
    /// Candidates for eviction by `seen`, kept lazily: an entry's stamp
    /// may be older than its slot's, and is brought up to date only when
    /// it reaches the top. An exact list instead re-linked two other
    /// connections on every packet.
    recency: BinaryHeap<Entry<u64>>,
    live: usize,
    clock: Nanos,
    started: bool,
    stats: TableStats,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> FlowTable {
        FlowTable {
            cfg,
            map: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            timers: BinaryHeap::new(),
            recency: BinaryHeap::new(),
            live: 0,
            clock: Nanos::MIN,
            started: false,
            stats: TableStats::default(),
        }
    }

    /// A table with room for `flows` connections (and their timers) made up
    /// front, so it does not grow while that many or fewer are live.
    pub fn with_capacity(cfg: FlowConfig, flows: usize) -> FlowTable {
        let mut t = FlowTable::new(cfg);
        t.map = HashTable::with_capacity(flows);
        t.slots.reserve(flows);
        t.free.reserve(flows);
        // Removed connections leave heap entries until a heap is rebuilt
        // at four times the live count.
        t.timers.reserve(4 * flows + 64);
        t.recency.reserve(4 * flows + 64);
        t
    }

    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Connections currently held.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The table's clock (the latest packet time seen), if any packet was seen.
    pub fn clock(&self) -> Option<Nanos> {
        self.started.then_some(self.clock)
    }

    /// Iterate over live connections (for live views and `sockets --at`).
    pub fn connections(&self) -> impl Iterator<Item = &Conn> {
        self.slots.iter().filter(|s| s.live).map(|s| &s.conn)
    }

    /// Handle one packet; returns whether its sender is the connection's originator.
    pub fn process<S: RecordSink + ?Sized>(&mut self, pkt: &Packet, sink: &mut S) -> bool {
        self.stats.packets += 1;
        // The clock stops one short of Nanos::MAX, which means "never": a
        // timer re-armed at a saturated `now + d` must not be due again.
        let ts = pkt.ts.min(LAST_TICK);
        let now = if !self.started || ts >= self.clock {
            ts
        } else {
            self.stats.late_packets += 1;
            self.clock
        };
        self.advance(now, sink);

        let tuple = conn::Tuple::of(pkt);
        let key = key_of(pkt, &tuple, self.cfg.vlan_key);
        let hash = key.shard_hash();
        let slots = &self.slots;
        let found = self
            .map
            .find(hash, |&i| slots[i as usize].conn.key == key)
            .copied();
        let idx = match found {
            Some(i) if self.slots[i as usize].conn.is_reuse(pkt, now) => {
                self.remove(i, CloseReason::Timeout, sink);
                self.insert(key, hash, pkt, &tuple, now, sink)
            }
            Some(i) => i,
            None => self.insert(key, hash, pkt, &tuple, now, sink),
        };
        let slot = &mut self.slots[idx as usize];
        let from_orig = slot.conn.packet(pkt, &tuple, now, &self.cfg.timeouts);
        let due = slot.conn.next_deadline();
        if due < slot.scheduled {
            slot.scheduled = due;
            self.timers.push(Entry::new(due, idx, slot.generation));
        }
        slot.seen = self.stats.packets;
        from_orig
    }

    /// Advance the clock to `now`, firing every timer due at or before it.
    /// Every packet calls this; most find nothing due, which is decided
    /// here, inlined, and the timers are fired by a call.
    #[inline(always)]
    pub fn advance<S: RecordSink + ?Sized>(&mut self, now: Nanos, sink: &mut S) {
        let now = now.min(LAST_TICK);
        if self.started && now < self.clock {
            return;
        }
        self.started = true;
        self.clock = now;
        if self.timers.peek().is_some_and(|e| e.parts().0 <= now) {
            self.fire_due(now, sink);
        }
        prune(&mut self.timers, &self.slots, self.live, |s, due| {
            s.scheduled == due
        });
    }

    /// Fire the timers due at or before `now` (the clock).
    #[inline(never)]
    fn fire_due<S: RecordSink + ?Sized>(&mut self, now: Nanos, sink: &mut S) {
        loop {
            let Some(mut top) = self.timers.peek_mut() else {
                break;
            };
            let (due, idx, generation) = top.parts();
            if due > now {
                // The next timer to fire is known now, some packets before
                // it is due: its connection has usually left the cache since
                // its last packet, and fetching it then stalled the tracker.
                prefetch(&self.slots[idx as usize]);
                break;
            }
            let slot = &mut self.slots[idx as usize];
            if !slot.holds(generation) || slot.scheduled != due {
                PeekMut::pop(top);
                continue;
            }
            match slot.conn.fire(now, &self.cfg.timeouts) {
                Some(reason) => {
                    PeekMut::pop(top);
                    self.remove(idx, reason, sink);
                }
                None => {
                    let next = slot.conn.next_deadline();
                    slot.scheduled = next;
                    if next == Nanos::MAX {
                        PeekMut::pop(top);
                    } else {
                        // Re-armed in place: one sift instead of a pop and a push.
                        *top = Entry::new(next, idx, slot.generation);
                    }
                }
            }
        }
    }

    /// The least recently seen connection, if any: every live connection
    /// has one entry whose stamp is at most its `seen`, so the first entry
    /// found up to date is the oldest.
    fn least_recent(&mut self) -> Option<u32> {
        while let Some(entry) = self.recency.pop() {
            let (stamp, idx, generation) = entry.parts();
            let slot = &self.slots[idx as usize];
            if !slot.holds(generation) {
                continue;
            }
            if slot.seen == stamp {
                return Some(idx);
            }
            self.recency.push(Entry::new(slot.seen, idx, generation));
        }
        None
    }

    /// End of capture: every remaining connection leaves with reason `capture_end`.
    pub fn finish<S: RecordSink + ?Sized>(&mut self, sink: &mut S) {
        // Least recently seen first, the order eviction would take them in.
        while let Some(idx) = self.least_recent() {
            self.remove(idx, CloseReason::CaptureEnd, sink);
        }
        self.timers.clear();
    }

    fn insert<S: RecordSink + ?Sized>(
        &mut self,
        key: FlowKey,
        hash: u64,
        pkt: &Packet,
        tuple: &conn::Tuple,
        now: Nanos,
        sink: &mut S,
    ) -> u32 {
        if self.live >= self.cfg.max_flows.max(1) {
            if let Some(oldest) = self.least_recent() {
                self.stats.evicted += 1;
                self.remove(oldest, CloseReason::Evicted, sink);
            }
        }
        let conn = Conn::new(key, hash, pkt, tuple, now, &self.cfg.timeouts);
        // Stamped with the packet being handled (an entry's stamp may be
        // older than its slot's, never newer).
        let seen = self.stats.packets;
        let idx = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.conn = conn;
                slot.live = true;
                slot.seen = seen;
                slot.scheduled = Nanos::MAX;
                i
            }
            None => {
                self.slots.push(Slot {
                    conn,
                    generation: 0,
                    live: true,
                    seen,
                    scheduled: Nanos::MAX,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.slots[idx as usize].generation;
        self.recency.push(Entry::new(seen, idx, generation));
        prune(&mut self.recency, &self.slots, self.live, |_, _| true);
        let slots = &self.slots;
        self.map
            .insert_unique(hash, idx, |&i| slots[i as usize].conn.key.shard_hash());
        self.live += 1;
        self.stats.connections += 1;
        self.stats.peak_flows = self.stats.peak_flows.max(self.live as u64);
        idx
    }

    fn remove<S: RecordSink + ?Sized>(&mut self, idx: u32, reason: CloseReason, sink: &mut S) {
        let slot = &mut self.slots[idx as usize];
        slot.live = false;
        slot.generation = slot.generation.wrapping_add(1);
        slot.scheduled = Nanos::MAX;
        let hash = slot.conn.key().shard_hash();
        sink.record(&slot.conn.to_record(reason));
        let entry = self.map.find_entry(hash, |&i| i == idx);
        debug_assert!(entry.is_ok(), "a live slot is always in the map");
        if let Ok(entry) = entry {
            entry.remove();
        }
        self.free.push(idx);
        self.live -= 1;
    }
}

#[cfg(test)]
mod tests;

//! Shared pieces of the fuzz targets: a capture reader over the input and
//! the flow-table invariant checker.
//!
//! The checker is the record sink of a [`FlowTable`] and is consulted after
//! every step. It asserts what the table promises in `src/flow/mod.rs`:
//! - the table never holds more than `max_flows` connections (0 counts as 1);
//! - every connection leaves exactly once: records emitted so far plus the
//!   live connections equal `stats().connections`, and after `finish` the
//!   table is empty and the two counts agree;
//! - uids are unique (they are a bijection of the creating packet number);
//! - `duration >= 0` and `start + duration <= lifecycle.last_packet`;
//! - a record has at least one packet, unless one of the packets between its
//!   two hosts was one Zeek does not count (bad checksum, unusable TCP
//!   header, incompletely captured ICMP): Zeek creates the connection for
//!   those but leaves `*_pkts` at 0.

use std::collections::HashSet;
use std::io::Cursor;

use sockscope::decode::{Addr, L4, Packet};
use sockscope::flow::{ConnRecord, FlowTable, RecordSink};
use sockscope::source::{CaptureReader, Input};

/// A reader over a whole fuzz input as a capture file, if its header parses.
pub fn reader(data: &[u8], index: usize) -> Option<CaptureReader> {
    let input = Input::from_reader(Box::new(Cursor::new(data.to_vec()))).ok()?;
    CaptureReader::from_input(input, index).ok()
}

#[derive(Default)]
pub struct Checker {
    max_flows: usize,
    emitted: u64,
    uids: HashSet<u128>,
    /// Host pairs (unordered) and IP protocol that saw an uncounted packet.
    uncounted: HashSet<(Addr, Addr, u8)>,
}

fn pair(a: Addr, b: Addr, proto: u8) -> (Addr, Addr, u8) {
    if a <= b { (a, b, proto) } else { (b, a, proto) }
}

impl Checker {
    pub fn new(max_flows: usize) -> Checker {
        Checker {
            max_flows: max_flows.max(1),
            ..Checker::default()
        }
    }

    /// Call before handing `p` to the table.
    pub fn note_packet(&mut self, p: &Packet) {
        let uncounted = p.bad_checksum
            || match p.l4 {
                L4::Tcp(t) => !t.header_ok,
                L4::Icmp(i) => !i.complete,
                _ => false,
            };
        if uncounted {
            self.uncounted.insert(pair(p.src, p.dst, p.ip_proto));
        }
    }

    /// Call after every `process`/`advance`.
    pub fn step(&self, table: &FlowTable) {
        let stats = table.stats();
        assert!(
            table.len() <= self.max_flows,
            "table holds {} connections, max_flows is {}",
            table.len(),
            self.max_flows
        );
        assert!(stats.peak_flows <= self.max_flows as u64);
        assert_eq!(
            self.emitted + table.len() as u64,
            stats.connections,
            "records emitted + live connections != connections created"
        );
    }

    /// Call after `finish`.
    pub fn finished(&self, table: &FlowTable) {
        assert!(table.is_empty(), "connections left after finish");
        assert_eq!(
            self.emitted,
            table.stats().connections,
            "every connection is recorded exactly once"
        );
        self.step(table);
    }
}

/// The table's record sink.
impl RecordSink for Checker {
    fn record(&mut self, r: &ConnRecord) {
        self.emitted += 1;
        assert!(r.duration >= 0, "negative duration: {r:?}");
        let end = r
            .start
            .checked_add(r.duration)
            .expect("start + duration overflows");
        assert!(
            end <= r.lifecycle.last_packet,
            "connection ends after its last packet: {r:?}"
        );
        if r.orig_pkts + r.resp_pkts == 0 {
            assert!(
                self.uncounted.contains(&pair(r.orig, r.resp, r.ip_proto)),
                "record without packets: {r:?}"
            );
        }
        assert!(
            self.uids.insert(r.uid),
            "uid {:x} recorded twice: {r:?}",
            r.uid
        );
    }
}

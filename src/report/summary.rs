//! summary.json: what was read, what was skipped and why, what came out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::flow::{CloseReason, ConnRecord, ConnState, Proto};
use crate::source::Nanos;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub tool: String,
    /// False if any input was damaged (see `inputs[].damage`).
    pub inputs_intact: bool,
    pub inputs: Vec<InputSummary>,
    pub capture: CaptureSpan,
    pub packets: PacketCounts,
    pub connections: ConnCounts,
    pub flow_table: TableSummary,
    /// Live captures only: what libpcap reports about the capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveStats>,
    pub warnings: Vec<String>,
}

/// Kernel and interface counters of a live capture (libpcap's pcap_stats).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LiveStats {
    pub interface: String,
    /// Packets the kernel passed to the capture.
    pub received: u64,
    /// Packets dropped because the capture buffer was full.
    pub dropped_by_kernel: u64,
    /// Packets dropped by the interface or its driver.
    pub dropped_by_interface: u64,
    /// Why the capture stopped.
    pub stopped_by: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct InputSummary {
    pub path: String,
    pub format: String,
    pub compression: String,
    pub packets: u64,
    /// Damage found in this file, with the packet number; packets before it were used.
    pub damage: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaptureSpan {
    pub first_packet: Option<String>,
    pub last_packet: Option<String>,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    /// The same times exactly, in nanoseconds since the epoch: a float
    /// holds them only to a few hundred nanoseconds, and the timeline's
    /// last bin ends at the last packet (absent from older summaries).
    #[serde(default)]
    pub first_ns: Option<Nanos>,
    #[serde(default)]
    pub last_ns: Option<Nanos>,
    pub duration_s: f64,
}

impl CaptureSpan {
    /// The first and last packet times (0 without packets), exact where
    /// the summary has them.
    pub fn bounds(&self) -> (Nanos, Nanos) {
        let ns = |exact: Option<Nanos>, secs: Option<f64>| {
            exact.unwrap_or_else(|| (secs.unwrap_or(0.0) * 1e9).round() as Nanos)
        };
        (
            ns(self.first_ns, self.first_ts),
            ns(self.last_ns, self.last_ts),
        )
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PacketCounts {
    /// Frames read from the inputs.
    pub read: u64,
    /// Bytes on the wire of those frames.
    pub wire_bytes: u64,
    /// Frames that reached the connection table.
    pub analyzed: u64,
    /// Frames that did not, by reason (the equivalent of Zeek's weird counts).
    pub skipped: BTreeMap<String, u64>,
    /// Of the skipped, those that were malformed.
    pub malformed: u64,
    /// Packets older than the clock (timestamps going backwards).
    pub late: u64,
    /// IP datagrams still waiting for fragments at the end.
    pub incomplete_fragment_datagrams: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConnCounts {
    pub total: u64,
    pub by_proto: BTreeMap<String, u64>,
    pub by_state: BTreeMap<String, u64>,
    pub by_close_reason: BTreeMap<String, u64>,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TableSummary {
    pub max_flows: u64,
    pub peak_flows: u64,
    pub evicted: u64,
}

/// Running tallies of records as they leave the table.
#[derive(Clone, Debug, Default)]
pub struct RecordTally {
    pub total: u64,
    pub by_proto: BTreeMap<Proto, u64>,
    pub by_state: BTreeMap<ConnState, u64>,
    pub by_reason: BTreeMap<CloseReason, u64>,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
}

impl RecordTally {
    pub fn add(&mut self, r: &ConnRecord) {
        self.total += 1;
        *self.by_proto.entry(r.proto).or_default() += 1;
        *self.by_state.entry(r.state).or_default() += 1;
        *self.by_reason.entry(r.close_reason).or_default() += 1;
        self.orig_bytes += r.orig_bytes;
        self.resp_bytes += r.resp_bytes;
    }

    pub fn counts(&self) -> ConnCounts {
        ConnCounts {
            total: self.total,
            by_proto: self
                .by_proto
                .iter()
                .map(|(k, v)| (k.name().to_string(), *v))
                .collect(),
            by_state: self
                .by_state
                .iter()
                .map(|(k, v)| (k.name().to_string(), *v))
                .collect(),
            by_close_reason: self
                .by_reason
                .iter()
                .map(|(k, v)| (k.name().to_string(), *v))
                .collect(),
            orig_bytes: self.orig_bytes,
            resp_bytes: self.resp_bytes,
        }
    }
}

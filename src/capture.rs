//! Live capture: frames from libpcap through the same [`Session`] as files,
//! with records written as connections finish, a status every second, and a
//! clean stop on a signal, `--duration` or `--count`.
//!
//! The flow table's clock is packet time, as offline; when the link is idle
//! it also follows the (same) system clock once a second, so finished and
//! idle connections leave the table, and reach conn.log, on time. Re-reading
//! a `--write` capture gives the same rows; when an idle expiry happened,
//! their order in conn.log may differ.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::analyze::{AnalyzeError, Outcome, Session, SessionConfig};
use crate::decode::Addr;
use crate::flow::Proto;
use crate::report::summary::{InputSummary, LiveStats};
use crate::source::live::{LiveCapture, LiveConfig, LiveCounters, LiveError};

#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub live: LiveConfig,
    pub session: SessionConfig,
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    /// Also save the raw packets here (pcap).
    pub write: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
}

/// Fan-in of one server port among the connections open now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePort {
    pub proto: Proto,
    pub port: u16,
    pub clients: usize,
    pub sockets: usize,
    pub connections: usize,
}

/// What the live view shows, once a second.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub elapsed: Duration,
    pub packets: u64,
    pub bytes: u64,
    pub packets_per_s: f64,
    pub bytes_per_s: f64,
    /// Open connections by socket state.
    pub states: BTreeMap<&'static str, usize>,
    pub open: usize,
    pub top: Vec<LivePort>,
    pub counters: LiveCounters,
}

/// Where the status goes (the binary draws it; the library never prints).
pub trait LiveView {
    fn show(&mut self, status: &Status);
}

fn status(session: &Session, top: usize) -> Status {
    let mut states: BTreeMap<&'static str, usize> = BTreeMap::new();
    // Per server port: distinct clients, distinct client sockets, connections.
    type Fanin = (HashSet<Addr>, HashSet<(Addr, u16)>, usize);
    let mut ports: HashMap<(Proto, u16), Fanin> = HashMap::new();
    let mut open = 0;
    for c in session.table().into_iter().flat_map(|t| t.connections()) {
        open += 1;
        // TCP by socket state; flows of stateless protocols by protocol.
        let state = match c.proto() {
            Proto::Tcp => c.socket_state(),
            p => p.name(),
        };
        *states.entry(state).or_default() += 1;
        let (orig, resp) = c.endpoints();
        let e = ports.entry((c.proto(), resp.1)).or_default();
        e.0.insert(orig.0);
        e.1.insert(orig);
        e.2 += 1;
    }
    let mut top_ports: Vec<LivePort> = ports
        .into_iter()
        .filter(|((p, _), _)| matches!(p, Proto::Tcp | Proto::Udp))
        .map(|((proto, port), (clients, sockets, n))| LivePort {
            proto,
            port,
            clients: clients.len(),
            sockets: sockets.len(),
            connections: n,
        })
        .collect();
    top_ports.sort_by_key(|p| {
        (
            std::cmp::Reverse(p.clients),
            std::cmp::Reverse(p.connections),
            p.port,
        )
    });
    top_ports.truncate(top);
    Status {
        states,
        open,
        top: top_ports,
        ..Status::default()
    }
}

fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Capture until stopped; returns the finished session's outcome.
pub fn run(
    cfg: &CaptureConfig,
    stop: &AtomicBool,
    view: &mut dyn LiveView,
) -> Result<Outcome, CaptureError> {
    let mut cap = LiveCapture::open(&cfg.live)?;
    let inputs = vec![InputSummary {
        path: format!("live:{}", cap.interface()),
        format: "live".into(),
        compression: "none".into(),
        packets: 0,
        damage: None,
    }];
    // The session prepares the output directory, which may hold the --write file.
    let mut session = Session::start(cfg.session.clone(), inputs)?;
    if let Some(path) = &cfg.write {
        cap.save_to(path)?;
    }
    let started = Instant::now();
    let mut last_tick = started;
    let (mut last_packets, mut last_bytes) = (0u64, 0u64);
    let mut bytes = 0u64;
    let stopped_by = loop {
        if stop.load(Ordering::SeqCst) {
            break "signal";
        }
        if cfg.duration.is_some_and(|d| started.elapsed() >= d) {
            break "duration";
        }
        if cfg.count.is_some_and(|c| session.packets_read() >= c) {
            break "count";
        }
        // Never take (or save) more than --count asks for.
        let max = cfg
            .count
            .map_or(usize::MAX, |c| (c - session.packets_read()) as usize);
        cap.poll(100, max, |raw| {
            bytes += u64::from(raw.wire_len);
            session.feed(raw);
        })?;
        let now = Instant::now();
        if now.duration_since(last_tick) >= Duration::from_secs(1) {
            let secs = now.duration_since(last_tick).as_secs_f64();
            // Packets are stamped by the same clock; allow a second for any
            // still queued in the kernel so none arrive "late".
            session.advance(wall_clock_ns() - 1_000_000_000);
            session.flush();
            cap.flush()?;
            let mut s = status(&session, 10);
            s.elapsed = started.elapsed();
            s.packets = session.packets_read();
            s.bytes = bytes;
            s.packets_per_s = (s.packets - last_packets) as f64 / secs;
            s.bytes_per_s = (bytes - last_bytes) as f64 / secs;
            s.counters = cap.counters();
            view.show(&s);
            (last_packets, last_bytes, last_tick) = (s.packets, bytes, now);
        }
    };
    cap.flush()?;
    let counters = cap.counters();
    let live = LiveStats {
        interface: cap.interface().to_string(),
        received: counters.received,
        dropped_by_kernel: counters.dropped_by_kernel,
        dropped_by_interface: counters.dropped_by_interface,
        stopped_by: stopped_by.to_string(),
    };
    Ok(session.finish(Some(live))?)
}

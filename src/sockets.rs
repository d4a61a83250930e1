//! `sockscope sockets --at TIME`: the sockets that existed at one moment of a
//! capture, as `netstat -tan` on the servers would have listed them.
//!
//! A socket exists from its connection's first packet to its last, the same
//! definition the timeline's `open_*` series uses, so the two agree. The
//! state is the one the connection had at that moment: the capture is read
//! up to TIME, the table snapshotted, and the rest read to learn which of
//! those connections still had packets at or after TIME.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::analyze::AnalyzeError;
use crate::decode::{Addr, DecodeConfig, Decoder};
use crate::flow::{ConnRecord, FlowConfig, FlowTable, Proto, RecordSink};
use crate::source::filter::Bpf;
use crate::source::{CaptureReader, Merge, Nanos};

/// When to look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// Nanoseconds since the epoch.
    Absolute(Nanos),
    /// Nanoseconds after the capture's first packet.
    AfterStart(Nanos),
}

#[derive(Clone, Debug)]
pub struct SocketsConfig {
    pub inputs: Vec<PathBuf>,
    pub at: At,
    /// Only sockets whose local (server) port is this.
    pub port: Option<u16>,
    /// Only this transport.
    pub proto: Option<Proto>,
    pub filter: Option<String>,
    pub decode: DecodeConfig,
    pub flow: FlowConfig,
}

/// One socket, from the server's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub local: (Addr, u16),
    pub remote: (Addr, u16),
    pub state: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct SocketsView {
    /// The moment looked at (resolved); none if the capture had no packets.
    pub at: Option<Nanos>,
    /// The earliest and the latest packet time read.
    pub span: Option<(Nanos, Nanos)>,
    pub sockets: Vec<Socket>,
    /// Damage that ended an input early (file and packet named): the view
    /// covers the packets before it.
    pub damage: Vec<String>,
}

struct Snapshot {
    socket: Socket,
    start: Nanos,
}

pub fn sockets_at(cfg: &SocketsConfig) -> Result<SocketsView, AnalyzeError> {
    let mut bpf = cfg.filter.as_deref().map(Bpf::new).transpose()?;
    let mut readers = Vec::new();
    for (i, path) in cfg.inputs.iter().enumerate() {
        readers.push((path.clone(), CaptureReader::open(path, i)?));
    }
    let mut merge = Merge::new(readers);
    let mut decoder = Decoder::new(cfg.decode);
    let mut table = FlowTable::new(cfg.flow.clone());
    let (mut at, mut span, mut damage) = (None, None::<(Nanos, Nanos)>, Vec::new());
    let mut seen = Seen::default();
    loop {
        // Damage ends that input; the view covers what was readable.
        let raw = match merge.next_packet() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(e) => {
                damage.push(e.to_string());
                continue;
            }
        };
        let (first, last) = span.get_or_insert((raw.ts, raw.ts));
        (*first, *last) = ((*first).min(raw.ts), (*last).max(raw.ts));
        let t = *at.get_or_insert(match cfg.at {
            At::AfterStart(d) => raw.ts.saturating_add(d),
            At::Absolute(t) => t,
        });
        if seen.snapshot.is_none() && raw.ts > t {
            table.advance(t, &mut seen);
            seen.snapshot = Some(take(&table, t, cfg));
        }
        if bpf.as_mut().is_some_and(|b| !b.matches(&raw)) {
            continue;
        }
        if let Ok(pkt) = decoder.decode(&raw) {
            table.process(&pkt, &mut seen);
        }
    }
    let Some(t) = at else {
        return Ok(SocketsView {
            damage,
            ..SocketsView::default()
        });
    };
    if seen.snapshot.is_none() {
        seen.snapshot = Some(take(&table, t, cfg));
    }
    table.finish(&mut seen);
    let last_seen = seen.last_seen;
    let mut sockets: Vec<(Nanos, Socket)> = seen
        .snapshot
        .unwrap_or_default()
        .into_iter()
        .filter(|(uid, s)| s.start <= t && last_seen.get(uid).is_some_and(|last| *last >= t))
        .map(|(_, s)| (s.start, s.socket))
        .collect();
    sockets.sort_by_key(|(start, s)| (s.proto, s.local, *start));
    Ok(SocketsView {
        at: Some(t),
        span,
        sockets: sockets.into_iter().map(|(_, s)| s).collect(),
        damage,
    })
}

/// The snapshot at TIME, and the last packet of each snapshotted connection
/// as its record leaves the table.
#[derive(Default)]
struct Seen {
    snapshot: Option<HashMap<u128, Snapshot>>,
    last_seen: HashMap<u128, Nanos>,
}

impl RecordSink for Seen {
    fn record(&mut self, r: &ConnRecord) {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.contains_key(&r.uid))
        {
            self.last_seen.insert(r.uid, r.lifecycle.last_packet);
        }
    }
}

fn take(table: &FlowTable, t: Nanos, cfg: &SocketsConfig) -> HashMap<u128, Snapshot> {
    table
        .connections()
        .filter(|c| c.start() <= t)
        .filter_map(|c| {
            let (orig, resp) = c.endpoints();
            let wanted =
                cfg.port.is_none_or(|p| p == resp.1) && cfg.proto.is_none_or(|p| p == c.proto());
            wanted.then(|| {
                (
                    c.uid(),
                    Snapshot {
                        socket: Socket {
                            proto: c.proto(),
                            local: resp,
                            remote: orig,
                            state: c.socket_state(),
                        },
                        start: c.start(),
                    },
                )
            })
        })
        .collect()
}

/// Parse `--at`: epoch seconds (`1700000123.5`), ISO 8601 UTC
/// (`2023-11-14T22:15:23Z`, fraction optional), or `+DURATION` after the
/// capture's first packet (duration parsed by the caller's `parse_offset`).
pub fn parse_at(
    s: &str,
    parse_offset: impl Fn(&str) -> Result<Nanos, String>,
) -> Result<At, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('+') {
        return parse_offset(rest).map(At::AfterStart);
    }
    parse_epoch(s)
        .or_else(|| parse_iso(s))
        .map(At::Absolute)
        .ok_or_else(|| {
            format!(
                "not a time: {s:?} (use epoch seconds, 2023-11-14T22:15:23Z, or +30s after the start)"
            )
        })
}

/// Epoch seconds with a decimal fraction, exact to the nanosecond: through
/// a float, half of all microsecond times (conn.log's `ts`) came out a few
/// nanoseconds before themselves, before the connection that starts there.
fn parse_epoch(s: &str) -> Option<Nanos> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    seconds(number(secs)?, frac)
}

/// `secs` seconds and a fraction's digits (beyond nine, cut) as
/// nanoseconds, if they fit.
fn seconds(secs: i64, frac: &str) -> Option<Nanos> {
    let mut ns: i64 = 0;
    for (i, c) in frac.bytes().enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        if i < 9 {
            ns += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
        }
    }
    secs.checked_mul(1_000_000_000)?.checked_add(ns)
}

/// A field of decimal digits only (no sign), if it fits.
fn number(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_iso(s: &str) -> Option<Nanos> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(number);
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(number);
    let (h, mi, sec) = (t.next()??, t.next()??, t.next().unwrap_or(Some(0))?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant); years beyond Nanos's range fail
    // in `seconds`.
    let yc = if m <= 2 { y - 1 } else { y };
    let era = yc.div_euclid(400);
    let yoe = yc - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era.checked_mul(146_097)?.checked_add(doe - 719_468)?;
    let midnight = seconds(days.checked_mul(86_400)?, "")?;
    // A day past its month's end (2023-02-30) lands in the next month.
    let (cy, cm, cd, ..) = crate::report::text::civil(midnight);
    if (cy, i64::from(cm), i64::from(cd)) != (y, m, day) {
        return None;
    }
    seconds(days * 86_400 + h * 3600 + mi * 60 + sec, frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<Nanos, String> {
        s.trim_end_matches('s')
            .parse::<i64>()
            .map(|v| v * 1_000_000_000)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn time_specs() {
        assert_eq!(
            parse_at("1700000123.5", secs),
            Ok(At::Absolute(1_700_000_123_500_000_000))
        );
        assert_eq!(
            parse_at("2023-11-14T22:15:23Z", secs),
            Ok(At::Absolute(1_700_000_123_000_000_000))
        );
        assert_eq!(
            parse_at("2023-11-14T22:15:23.25", secs),
            Ok(At::Absolute(1_700_000_123_250_000_000))
        );
        assert_eq!(parse_at("+30s", secs), Ok(At::AfterStart(30_000_000_000)));
        assert!(parse_at("yesterday", secs).is_err());
        assert!(parse_at("2023-13-01T00:00:00Z", secs).is_err());
    }

    /// conn.log's `ts` names its microsecond exactly (a float put half of
    /// them a few nanoseconds early), and a tenth decimal is cut.
    #[test]
    fn epoch_seconds_are_exact() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (s, us) = (1_000_000_000 + (x >> 40) as i64, (x % 1_000_000) as i64);
            assert_eq!(
                parse_at(&format!("{s}.{us:06}"), secs),
                Ok(At::Absolute(s * 1_000_000_000 + us * 1000))
            );
        }
        assert_eq!(
            parse_at("1700000123.9999999999", secs),
            Ok(At::Absolute(1_700_000_123_999_999_999))
        );
        assert_eq!(parse_at("17", secs), Ok(At::Absolute(17_000_000_000)));
    }

    /// What is not a time, or not one that fits, is refused, not wrapped.
    #[test]
    fn bad_times_are_refused() {
        for bad in [
            "nan",
            "inf",
            "1.7e9",
            "-5",
            ".5",
            "99999999999999999999",
            "9999999999.5",
            "2023-02-29T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2023-11-14T-1:00:00",
            "2023-11-14T+1:00:00",
            "2023-11-14T22:15:23.x",
            "99999999999-01-01T00:00:00Z",
        ] {
            assert!(parse_at(bad, secs).is_err(), "{bad}");
        }
        assert_eq!(
            parse_at("2024-02-29T00:00:00Z", secs),
            Ok(At::Absolute(1_709_164_800_000_000_000))
        );
    }
}

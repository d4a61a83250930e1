//! connections.csv: one row per connection in plain column names, everything
//! in conn.log plus the lifecycle. Times are Unix epoch seconds with six
//! decimals; missing values are empty. Unlike conn.log, duration and byte
//! counts are always given (zero-duration connections show 0).

use std::path::{Path, PathBuf};

use crate::flow::{ConnRecord, Side};
use crate::source::Nanos;

use super::frame::CONNECTION_COLUMNS;
use super::output::{LineFile, Mode, OutputError};
use super::{RecordText, text};

pub struct ConnectionsCsv {
    file: LineFile,
}

fn opt_ts(b: &mut Vec<u8>, ts: Option<Nanos>) {
    if let Some(ts) = ts {
        text::secs6(b, ts);
    }
}

fn side(b: &mut Vec<u8>, s: Option<Side>) {
    if let Some(s) = s {
        b.extend_from_slice(s.name().as_bytes());
    }
}

impl ConnectionsCsv {
    pub fn create(dir: &Path, mode: Mode) -> Result<ConnectionsCsv, OutputError> {
        let mut file = LineFile::with_mode(dir, "connections.csv", mode)?;
        let names: Vec<&str> = CONNECTION_COLUMNS.iter().map(|c| c.0).collect();
        file.write_all(format!("{}\n", names.join(",")).as_bytes())?;
        Ok(ConnectionsCsv { file })
    }

    pub fn write(&mut self, r: &ConnRecord, t: &RecordText) -> Result<(), OutputError> {
        let b = self.file.line();
        let l = &r.lifecycle;
        b.extend_from_slice(t.uid());
        b.push(b',');
        text::secs6(b, r.start);
        b.push(b',');
        b.extend_from_slice(t.orig());
        b.push(b',');
        text::uint(b, u64::from(r.orig_port));
        b.push(b',');
        b.extend_from_slice(t.resp());
        b.push(b',');
        text::uint(b, u64::from(r.resp_port));
        b.push(b',');
        b.extend_from_slice(r.proto.name().as_bytes());
        b.push(b',');
        text::uint(b, u64::from(r.ip_proto));
        b.push(b',');
        text::secs6(b, r.duration);
        b.push(b',');
        text::uint(b, r.orig_bytes);
        b.push(b',');
        text::uint(b, r.resp_bytes);
        b.push(b',');
        b.extend_from_slice(r.state.name().as_bytes());
        b.push(b',');
        let (local_orig, local_resp) = t.local();
        b.extend_from_slice(if local_orig { b"true," } else { b"false," });
        b.extend_from_slice(if local_resp { b"true," } else { b"false," });
        text::uint(b, r.missed_bytes);
        b.push(b',');
        b.extend_from_slice(r.history.as_bytes());
        for v in [r.orig_pkts, r.orig_ip_bytes, r.resp_pkts, r.resp_ip_bytes] {
            b.push(b',');
            text::uint(b, v);
        }
        b.push(b',');
        b.extend_from_slice(t.community_id());
        for v in [r.vlan, r.inner_vlan] {
            b.push(b',');
            if let Some(v) = v {
                text::uint(b, u64::from(v));
            }
        }
        b.push(b',');
        opt_ts(b, l.first_syn);
        b.push(b',');
        opt_ts(b, l.syn_ack);
        b.push(b',');
        opt_ts(b, l.established);
        b.push(b',');
        opt_ts(b, r.handshake_rtt());
        b.push(b',');
        opt_ts(b, l.first_fin.map(|f| f.0));
        b.push(b',');
        side(b, l.first_fin.map(|f| f.1));
        b.push(b',');
        opt_ts(b, l.first_rst.map(|f| f.0));
        b.push(b',');
        side(b, l.first_rst.map(|f| f.1));
        b.push(b',');
        text::secs6(b, l.last_packet);
        b.push(b',');
        b.extend_from_slice(r.close_reason.name().as_bytes());
        for v in [l.retransmits, l.out_of_order, l.zero_windows] {
            b.push(b',');
            text::uint(b, u64::from(v));
        }
        b.extend_from_slice(if l.midstream { b",true\n" } else { b",false\n" });
        self.file.end_line()
    }

    /// Push every complete line to the file.
    pub fn flush(&mut self) -> Result<(), OutputError> {
        self.file.flush()
    }

    pub fn finish(self) -> Result<PathBuf, OutputError> {
        self.file.commit()
    }
}

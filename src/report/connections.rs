//! connections.csv: one row per connection in plain column names, everything
//! in conn.log plus the lifecycle. Times are Unix epoch seconds with six
//! decimals; missing values are empty. Unlike conn.log, duration and byte
//! counts are always given (zero-duration connections show 0).

use std::path::{Path, PathBuf};

use crate::flow::{ConnRecord, Side};
use crate::source::Nanos;

use super::frame::CONNECTION_COLUMNS;
use super::output::{LineFile, Mode, OutputError};
use super::text::{Line, Sink};
use super::{RecordText, text};

pub struct ConnectionsCsv {
    file: LineFile,
}

fn opt_ts(b: &mut Line, ts: Option<Nanos>) {
    if let Some(ts) = ts {
        text::secs6(b, ts);
    }
}

fn side(b: &mut Line, s: Option<Side>) {
    if let Some(s) = s {
        b.put(s.name().as_bytes());
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
        self.file.line(|b| {
            let l = &r.lifecycle;
            b.put(t.uid());
            b.put_byte(b',');
            text::secs6(b, r.start);
            b.put_byte(b',');
            b.put(t.orig());
            b.put_byte(b',');
            text::uint(b, u64::from(r.orig_port));
            b.put_byte(b',');
            b.put(t.resp());
            b.put_byte(b',');
            text::uint(b, u64::from(r.resp_port));
            b.put_byte(b',');
            b.put(r.proto.name().as_bytes());
            b.put_byte(b',');
            text::uint(b, u64::from(r.ip_proto));
            b.put_byte(b',');
            text::secs6(b, r.duration);
            b.put_byte(b',');
            text::uint(b, r.orig_bytes);
            b.put_byte(b',');
            text::uint(b, r.resp_bytes);
            b.put_byte(b',');
            b.put(r.state.name().as_bytes());
            b.put_byte(b',');
            let (local_orig, local_resp) = t.local();
            b.put(if local_orig { b"true," } else { b"false," });
            b.put(if local_resp { b"true," } else { b"false," });
            text::uint(b, r.missed_bytes);
            b.put_byte(b',');
            b.put(r.history.as_bytes());
            for v in [r.orig_pkts, r.orig_ip_bytes, r.resp_pkts, r.resp_ip_bytes] {
                b.put_byte(b',');
                text::uint(b, v);
            }
            b.put_byte(b',');
            b.put(t.community_id());
            for v in [r.vlan, r.inner_vlan] {
                b.put_byte(b',');
                if let Some(v) = v {
                    text::uint(b, u64::from(v));
                }
            }
            b.put_byte(b',');
            opt_ts(b, l.first_syn);
            b.put_byte(b',');
            opt_ts(b, l.syn_ack);
            b.put_byte(b',');
            opt_ts(b, l.established);
            b.put_byte(b',');
            opt_ts(b, r.handshake_rtt());
            b.put_byte(b',');
            opt_ts(b, l.first_fin.map(|f| f.0));
            b.put_byte(b',');
            side(b, l.first_fin.map(|f| f.1));
            b.put_byte(b',');
            opt_ts(b, l.first_rst.map(|f| f.0));
            b.put_byte(b',');
            side(b, l.first_rst.map(|f| f.1));
            b.put_byte(b',');
            text::secs6(b, l.last_packet);
            b.put_byte(b',');
            b.put(r.close_reason.name().as_bytes());
            for v in [l.retransmits, l.out_of_order, l.zero_windows] {
                b.put_byte(b',');
                text::uint(b, u64::from(v));
            }
            b.put(if l.midstream { b",true\n" } else { b",false\n" });
        })
    }

    /// Push every complete line to the file.
    pub fn flush(&mut self) -> Result<(), OutputError> {
        self.file.flush()
    }

    pub fn finish(self) -> Result<PathBuf, OutputError> {
        self.file.commit()
    }
}

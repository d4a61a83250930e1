//! conn.log in Zeek's ASCII format: the default columns in Zeek's order,
//! then `community_id`, `vlan`, `inner_vlan`; TAB separated, `-` for unset,
//! `(empty)` for empty sets, with the `#` header lines zeek-cut reads.

use std::path::{Path, PathBuf};

use crate::flow::ConnRecord;
use crate::source::Nanos;

use super::output::{LineFile, Mode, OutputError};
use super::{RecordText, text};

pub const FIELDS: &[(&str, &str)] = &[
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("service", "string"),
    ("duration", "interval"),
    ("orig_bytes", "count"),
    ("resp_bytes", "count"),
    ("conn_state", "string"),
    ("local_orig", "bool"),
    ("local_resp", "bool"),
    ("missed_bytes", "count"),
    ("history", "string"),
    ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"),
    ("resp_pkts", "count"),
    ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
    ("ip_proto", "count"),
    ("community_id", "string"),
    ("vlan", "int"),
    ("inner_vlan", "int"),
];

pub struct ConnLog {
    file: LineFile,
    header_written: bool,
    /// Connections are keyed by VLAN too: log `id.ctx.vlan`/`id.ctx.inner_vlan`.
    vlan_key: bool,
}

fn opt(b: &mut Vec<u8>, v: Option<u16>) {
    match v {
        Some(v) => text::uint(b, u64::from(v)),
        None => b.push(b'-'),
    }
}

/// The columns of a log, with the key context columns when VLANs are keys.
pub fn fields(vlan_key: bool) -> Vec<(&'static str, &'static str)> {
    let mut f = FIELDS.to_vec();
    if vlan_key {
        f.insert(6, ("id.ctx.vlan", "int"));
        f.insert(7, ("id.ctx.inner_vlan", "int"));
    }
    f
}

impl ConnLog {
    pub fn create(dir: &Path, vlan_key: bool, mode: Mode) -> Result<ConnLog, OutputError> {
        Ok(ConnLog {
            file: LineFile::with_mode(dir, "conn.log", mode)?,
            header_written: false,
            vlan_key,
        })
    }

    /// Write the header; `#open` is the capture's first packet time, so the
    /// same capture always gives the same file.
    pub fn header(&mut self, open: Nanos) -> Result<(), OutputError> {
        if self.header_written {
            return Ok(());
        }
        self.header_written = true;
        let fields = fields(self.vlan_key);
        let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
        let types: Vec<&str> = fields.iter().map(|f| f.1).collect();
        let head = format!(
            "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t{}\n#fields\t{}\n#types\t{}\n",
            text::zeek_date(open),
            names.join("\t"),
            types.join("\t")
        );
        self.file.write_all(head.as_bytes())
    }

    pub fn write(&mut self, r: &ConnRecord, t: &RecordText) -> Result<(), OutputError> {
        if !self.header_written {
            self.header(r.start)?;
        }
        let b = self.file.line();
        text::secs6(b, r.start);
        b.push(b'\t');
        b.extend_from_slice(t.uid());
        b.push(b'\t');
        b.extend_from_slice(t.orig());
        b.push(b'\t');
        text::uint(b, u64::from(r.orig_port));
        b.push(b'\t');
        b.extend_from_slice(t.resp());
        b.push(b'\t');
        text::uint(b, u64::from(r.resp_port));
        b.push(b'\t');
        if self.vlan_key {
            // With VLAN-aware keys Zeek logs the key's context in `id`.
            opt(b, r.vlan);
            b.push(b'\t');
            opt(b, r.inner_vlan);
            b.push(b'\t');
        }
        b.extend_from_slice(r.proto.name().as_bytes());
        b.extend_from_slice(b"\t-\t");
        // Zeek logs duration and byte counts only when the duration is positive.
        if r.duration > 0 {
            text::secs6(b, r.duration);
            b.push(b'\t');
            text::uint(b, r.orig_bytes);
            b.push(b'\t');
            text::uint(b, r.resp_bytes);
        } else {
            b.extend_from_slice(b"-\t-\t-");
        }
        b.push(b'\t');
        b.extend_from_slice(r.state.name().as_bytes());
        b.push(b'\t');
        let (local_orig, local_resp) = t.local();
        b.push(if local_orig { b'T' } else { b'F' });
        b.push(b'\t');
        b.push(if local_resp { b'T' } else { b'F' });
        b.push(b'\t');
        text::uint(b, r.missed_bytes);
        b.push(b'\t');
        if r.history.is_empty() {
            b.push(b'-');
        } else {
            b.extend_from_slice(r.history.as_bytes());
        }
        for v in [r.orig_pkts, r.orig_ip_bytes, r.resp_pkts, r.resp_ip_bytes] {
            b.push(b'\t');
            text::uint(b, v);
        }
        b.extend_from_slice(b"\t-\t");
        text::uint(b, u64::from(r.ip_proto));
        b.push(b'\t');
        b.extend_from_slice(t.community_id());
        for v in [r.vlan, r.inner_vlan] {
            b.push(b'\t');
            opt(b, v);
        }
        b.push(b'\n');
        self.file.end_line()
    }

    /// Push every complete line to the file.
    pub fn flush(&mut self) -> Result<(), OutputError> {
        self.file.flush()
    }

    /// Write `#close` and move the file into place.
    pub fn finish(mut self, open: Nanos, close: Nanos) -> Result<PathBuf, OutputError> {
        self.header(open)?;
        self.file
            .write_all(format!("#close\t{}\n", text::zeek_date(close)).as_bytes())?;
        self.file.commit()
    }
}

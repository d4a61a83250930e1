//! BPF capture filters (`--filter`), compiled by libpcap and applied to file
//! input too, one compiled program per link type seen.

use pcap::{BpfProgram, Capture, Linktype};

use super::RawPacket;

/// A filter expression libpcap did not accept.
#[derive(Debug, thiserror::Error)]
#[error("bad BPF filter {expr:?}: {reason}")]
pub struct FilterError {
    pub expr: String,
    pub reason: String,
}

pub struct Bpf {
    expr: String,
    programs: Vec<(u32, BpfProgram)>,
}

/// libpcap compiles for DLT values; LINKTYPE_RAW is DLT_RAW (12) there.
fn dlt(linktype: u32) -> i32 {
    match linktype {
        101 => 12,
        lt => lt as i32,
    }
}

impl Bpf {
    /// Compile `expr` once for Ethernet to reject a bad expression up front.
    pub fn new(expr: &str) -> Result<Bpf, FilterError> {
        let mut bpf = Bpf {
            expr: expr.to_string(),
            programs: Vec::new(),
        };
        bpf.program(1)?;
        Ok(bpf)
    }

    fn program(&mut self, linktype: u32) -> Result<&BpfProgram, FilterError> {
        if let Some(i) = self.programs.iter().position(|(lt, _)| *lt == linktype) {
            return Ok(&self.programs[i].1);
        }
        let err = |reason: String| FilterError {
            expr: self.expr.clone(),
            reason,
        };
        let cap = Capture::dead(Linktype(dlt(linktype))).map_err(|e| err(e.to_string()))?;
        let prog = cap
            .compile(&self.expr, true)
            .map_err(|e| err(e.to_string()))?;
        self.programs.push((linktype, prog));
        Ok(&self.programs[self.programs.len() - 1].1)
    }

    /// Does the frame pass the filter? A link type the expression cannot be
    /// compiled for passes nothing.
    pub fn matches(&mut self, p: &RawPacket<'_>) -> bool {
        match self.program(p.linktype) {
            Ok(prog) => prog.filter(p.data),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_expressions() {
        let err = Bpf::new("port banana").err().unwrap();
        assert!(
            err.to_string()
                .starts_with("bad BPF filter \"port banana\"")
        );
    }

    #[test]
    fn filters_ethernet_frames() {
        let mut bpf = Bpf::new("udp port 53").unwrap();
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        // IPv4, UDP, 10.0.0.1 -> 10.0.0.2, 1234 -> 53
        frame.extend_from_slice(&[
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        frame.extend_from_slice(&[0x04, 0xd2, 0, 53, 0, 8, 0, 0]);
        let raw = RawPacket {
            ts: 0,
            linktype: 1,
            wire_len: frame.len() as u32,
            data: &frame,
            number: 1,
            input: 0,
        };
        assert!(bpf.matches(&raw));
        let mut other = Bpf::new("tcp").unwrap();
        assert!(!other.matches(&raw));
    }
}

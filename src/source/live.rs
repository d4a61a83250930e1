//! Live capture from an interface through libpcap.
//!
//! Immediate mode is on (packets are not held back in the kernel buffer) and
//! the handle is non-blocking: [`LiveCapture::poll`] waits on the handle's
//! descriptor with a timeout, because libpcap's own read timeout does not
//! fire on Linux when no packet arrives. Timestamps are read at nanosecond
//! precision where the kernel provides it.

use std::os::fd::AsRawFd;
use std::path::Path;

use pcap::{Active, Capture, Device, Precision, Savefile};

use super::{Nanos, RawPacket};

/// Most packets handed out per poll, so a flood cannot starve the caller.
const MAX_PER_POLL: usize = 16_384;

/// How to open the interface.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub interface: String,
    pub snaplen: i32,
    pub promisc: bool,
    /// Kernel buffer size in MiB.
    pub buffer_mib: u32,
    pub filter: Option<String>,
}

/// Why a live capture could not start or continue; one line each.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no such interface: {0} (see `sockscope interfaces`)")]
    NoSuchInterface(String),
    #[error("interface {0} is down")]
    Down(String),
    #[error(
        "no permission to capture on {0}: run as root or grant the binary CAP_NET_RAW and CAP_NET_ADMIN \
         (sudo setcap cap_net_raw,cap_net_admin=eip $(which sockscope))"
    )]
    Permission(String),
    #[error("bad BPF filter {expr:?}: {reason}")]
    BadFilter { expr: String, reason: String },
    #[error("capture on {interface} failed: {reason}")]
    Pcap { interface: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
}

/// A capture device as `sockscope interfaces` lists it.
#[derive(Clone, Debug)]
pub struct Interface {
    pub name: String,
    pub description: Option<String>,
    pub addresses: Vec<String>,
    pub up: bool,
    pub running: bool,
    pub loopback: bool,
}

pub fn interfaces() -> Result<Vec<Interface>, LiveError> {
    let devices = Device::list().map_err(|e| LiveError::Pcap {
        interface: "(list)".into(),
        reason: e.to_string(),
    })?;
    Ok(devices
        .into_iter()
        .map(|d| Interface {
            addresses: d.addresses.iter().map(|a| a.addr.to_string()).collect(),
            up: d.flags.is_up(),
            running: d.flags.is_running(),
            loopback: d.flags.is_loopback(),
            name: d.name,
            description: d.desc,
        })
        .collect())
}

/// libpcap/kernel counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveCounters {
    pub received: u64,
    pub dropped_by_kernel: u64,
    pub dropped_by_interface: u64,
}

pub struct LiveCapture {
    cap: Capture<Active>,
    interface: String,
    linktype: u32,
    count: u64,
    save: Option<Savefile>,
}

fn classify(interface: &str, e: pcap::Error) -> LiveError {
    let reason = e.to_string();
    let lower = reason.to_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        LiveError::Permission(interface.to_string())
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        LiveError::NoSuchInterface(interface.to_string())
    } else if lower.contains("not up") || lower.contains("network is down") {
        LiveError::Down(interface.to_string())
    } else {
        LiveError::Pcap {
            interface: interface.to_string(),
            reason,
        }
    }
}

impl LiveCapture {
    pub fn open(cfg: &LiveConfig) -> Result<LiveCapture, LiveError> {
        let name = cfg.interface.as_str();
        // libpcap opens a downed interface without complaint and then sees
        // nothing; say so instead.
        if let Ok(list) = interfaces() {
            match list.iter().find(|i| i.name == name) {
                None if name != "any" => return Err(LiveError::NoSuchInterface(name.into())),
                Some(i) if !i.up => return Err(LiveError::Down(name.into())),
                _ => {}
            }
        }
        let cap = Capture::from_device(name)
            .map_err(|e| classify(name, e))?
            .immediate_mode(true)
            .promisc(cfg.promisc)
            .snaplen(cfg.snaplen)
            .timeout(100)
            .precision(Precision::Nano)
            .buffer_size((cfg.buffer_mib.min(2047) * 1024 * 1024) as i32)
            .open()
            .map_err(|e| classify(name, e))?;
        let mut cap = cap.setnonblock().map_err(|e| classify(name, e))?;
        if let Some(expr) = &cfg.filter {
            cap.filter(expr, true).map_err(|e| LiveError::BadFilter {
                expr: expr.clone(),
                reason: e.to_string(),
            })?;
        }
        let linktype = cap.get_datalink().0 as u32;
        Ok(LiveCapture {
            cap,
            interface: name.to_string(),
            linktype,
            count: 0,
            save: None,
        })
    }

    /// Also write every packet to a pcap file (nanosecond timestamps).
    pub fn save_to(&mut self, path: &Path) -> Result<(), LiveError> {
        let sf = self.cap.savefile(path).map_err(|e| LiveError::Write {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        self.save = Some(sf);
        Ok(())
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Wait up to `timeout_ms` for packets, then hand at most `max` of those
    /// available to `f`; returns how many were handed out.
    pub fn poll(
        &mut self,
        timeout_ms: i32,
        max: usize,
        mut f: impl FnMut(&RawPacket<'_>),
    ) -> Result<usize, LiveError> {
        let mut pfd = libc::pollfd {
            fd: self.cap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(LiveError::Pcap {
                interface: self.interface.clone(),
                reason: err.to_string(),
            });
        }
        let mut n = 0;
        while n < MAX_PER_POLL.min(max) {
            let packet = match self.cap.next_packet() {
                Ok(p) => p,
                Err(pcap::Error::TimeoutExpired | pcap::Error::NoMorePackets) => break,
                Err(e) => return Err(classify(&self.interface, e)),
            };
            if let Some(sf) = self.save.as_mut() {
                sf.write(&packet);
            }
            let h = packet.header;
            // Opened at nanosecond precision: the `usec` field holds nanoseconds.
            let ts: Nanos = h.ts.tv_sec * 1_000_000_000 + h.ts.tv_usec;
            self.count += 1;
            n += 1;
            f(&RawPacket {
                ts,
                linktype: self.linktype,
                wire_len: h.len,
                data: packet.data,
                number: self.count,
                input: 0,
            });
        }
        Ok(n)
    }

    /// Flush the pcap written with [`save_to`](Self::save_to).
    pub fn flush(&mut self) -> Result<(), LiveError> {
        if let Some(sf) = self.save.as_mut() {
            sf.flush().map_err(|e| LiveError::Write {
                path: "--write file".into(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    pub fn counters(&mut self) -> LiveCounters {
        self.cap
            .stats()
            .map(|s| LiveCounters {
                received: u64::from(s.received),
                dropped_by_kernel: u64::from(s.dropped),
                dropped_by_interface: u64::from(s.if_dropped),
            })
            .unwrap_or_default()
    }
}

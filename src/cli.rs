//! Command line: flags parsed once into validated configurations.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use sockscope::analyze::{AnalyzeConfig, SessionConfig};
use sockscope::capture::CaptureConfig;
use sockscope::decode::DecodeConfig;
use sockscope::flow::Proto;
use sockscope::flow::{FlowConfig, Timeouts};
use sockscope::generate::{GenerateConfig, Scenario};
use sockscope::report::build::ReportOptions;
use sockscope::report::output::Mode;
use sockscope::sockets::{At, SocketsConfig, parse_at};
use sockscope::source::Nanos;
use sockscope::source::live::LiveConfig;

#[derive(Parser, Debug)]
#[command(
    name = "sockscope",
    version,
    about = "Turn captured packets back into the sockets that sent them",
    long_about = "sockscope reads pcap/pcapng captures (or a live interface), rebuilds every TCP \
                  session and UDP flow with Zeek's connection semantics, and reports the \
                  connection table, per-port fan-in, lifecycles and timelines."
)]
pub struct Cli {
    /// Print nothing on stderr but errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyze capture files: conn.log, connections (CSV, Parquet), fan-in,
    /// client and timeline tables, charts, report.html, summary.json.
    #[command(after_help = "Examples:\n  \
        sockscope analyze samples/http-fanin.pcap.gz --out out/\n  \
        sockscope analyze big.pcap --out out/ --no-charts --threads 4\n  \
        sockscope analyze rotated-*.pcap.gz --out out/ --filter 'tcp port 443'\n  \
        tcpdump -w - -i eth0 | sockscope analyze - --out out/\n\n\
        Exit status: 0 success; 1 error (nothing usable written); 3 an input was damaged \
        (truncated or corrupt) and everything before the damage was analysed.")]
    Analyze(AnalyzeArgs),
    /// Rebuild the tables, charts and report.html of an output directory from
    /// its connections.parquet, without the capture.
    #[command(after_help = "Examples:\n  \
        sockscope report out/\n  \
        sockscope report out/ --bin 10s --top 5")]
    Report(ReportArgs),
    /// List the sockets that existed at one moment of a capture, as netstat
    /// on the servers would have (local = the responder).
    #[command(after_help = "Examples:\n  \
        sockscope sockets --at 2023-11-14T22:15:00Z capture.pcap\n  \
        sockscope sockets --at +90s capture.pcap --port 443\n  \
        sockscope sockets --at 1700000100.25 part1.pcap part2.pcap\n\n\
        A socket exists from its first packet to its last; the count for a port equals \
        the open_<proto>_<port> column of timeline.csv at the same instant.")]
    Sockets(SocketsArgs),
    /// Capture live from an interface: the same engine and reports, with a
    /// live view; conn.log and connections.csv grow while it runs.
    #[command(after_help = "Examples:\n  \
        sudo sockscope capture -i eth0 --duration 60s --out cap/\n  \
        sudo sockscope capture -i any --filter 'tcp port 443' --write raw.pcap --out cap/\n  \
        sudo sockscope capture -i eth0 --count 100000 --no-promisc\n\n\
        Stops on Ctrl-C, SIGTERM, --duration or --count, then writes every table, chart and \
        report.html. Needs root or CAP_NET_RAW+CAP_NET_ADMIN.")]
    Capture(CaptureArgs),
    /// List capture interfaces.
    #[command(after_help = "Example:\n  \
        sockscope interfaces\n\n\
        Prints name, flags (up, running, loopback) and addresses, one interface per line.")]
    Interfaces,
    /// Write a synthetic capture with known contents: attack traffic to test
    /// bounded memory, or a large fan-in.
    #[command(after_help = "Examples:\n  \
        sockscope generate syn-flood --packets 5000000 -o flood.pcap\n  \
        sockscope generate udp-flood --packets 1000000 --rate 500000 -o udp.pcap\n  \
        sockscope generate port-scan -o scan.pcap\n  \
        sockscope generate fan-in --connections 3000 --clients 800 -o fanin.pcap\n\n\
        Floods come from a new spoofed source per packet; the port scan probes \
        --packets ports (default all 65535); fan-in clients connect to 10.0.0.1:443 \
        in bursts, mostly served, some reset, refused or unanswered. The same seed \
        gives the same file.")]
    Generate(GenerateArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ScenarioArg {
    SynFlood,
    UdpFlood,
    PortScan,
    FanIn,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// What to generate.
    #[arg(value_enum)]
    pub scenario: ScenarioArg,
    /// The pcap file to write.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Packets to write (floods), or ports to probe (port scan).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub packets: Option<u64>,
    /// Fan-in: connections to open.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub connections: u64,
    /// Fan-in: client addresses to draw each connection's client from.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub clients: u32,
    /// Packets per second (floods, scan) or new connections per second (fan-in).
    #[arg(long, value_parser = rate)]
    pub rate: Option<f64>,
    /// Random seed: the same seed writes the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl GenerateArgs {
    pub fn config(&self) -> GenerateConfig {
        let (scenario, packets, rate) = match self.scenario {
            ScenarioArg::SynFlood => (Scenario::SynFlood, 1_000_000, 1_000_000.0),
            ScenarioArg::UdpFlood => (Scenario::UdpFlood, 1_000_000, 1_000_000.0),
            ScenarioArg::PortScan => (Scenario::PortScan, 65_535, 10_000.0),
            ScenarioArg::FanIn => (Scenario::FanIn, 0, 200.0),
        };
        GenerateConfig {
            scenario,
            out: self.out.clone(),
            packets: self.packets.unwrap_or(packets),
            connections: self.connections,
            clients: self.clients,
            rate: self.rate.unwrap_or(rate),
            seed: self.seed,
            ..GenerateConfig::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Interface to capture on (`any` for all).
    #[arg(long, short)]
    pub interface: String,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_parser = positive_duration)]
    pub duration: Option<Nanos>,
    /// Stop after this many packets.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Bytes captured per packet.
    #[arg(long, default_value_t = 262_144, value_parser = clap::value_parser!(i32).range(64..=262_144))]
    pub snaplen: i32,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,
    /// Kernel capture buffer in MiB. libpcap's own 2 MiB dropped packets at
    /// 10k packets/s in immediate mode (scripts/live-load.sh); Zeek uses 128.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=2047))]
    pub buffer_size: u32,
    /// Also save the raw packets to this pcap file, for analysis later.
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Output directory (default: sockscope-IFACE-YYYYMMDD-HHMMSS).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Write into a non-empty directory that is not a previous sockscope output.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub report: ReportFlags,
}

impl CaptureArgs {
    pub fn config(&self, default_out: PathBuf) -> CaptureConfig {
        CaptureConfig {
            live: LiveConfig {
                interface: self.interface.clone(),
                snaplen: self.snaplen,
                promisc: !self.no_promisc,
                buffer_mib: self.buffer_size,
                filter: self.engine.filter.clone(),
            },
            session: SessionConfig {
                out: self.out.clone().unwrap_or(default_out),
                force: self.force,
                decode: self.engine.decode(),
                flow: self.engine.flow(),
                filter: None,
                mode: Mode::Journal,
                // The live view reads the table, so it stays on one thread.
                threads: 1,
                tables: true,
            },
            duration: self
                .duration
                .map(|ns| std::time::Duration::from_nanos(ns as u64)),
            count: self.count,
            write: self.write.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct SocketsArgs {
    /// The moment: epoch seconds, ISO 8601 UTC (2023-11-14T22:15:23Z), or +DURATION after the first packet.
    #[arg(long, value_parser = at_time)]
    pub at: At,
    /// Only sockets on this local (server) port; prints their count.
    #[arg(long)]
    pub port: Option<u16>,
    /// Only this transport.
    #[arg(long, value_parser = ["tcp", "udp", "icmp"])]
    pub proto: Option<String>,
    /// Capture files (pcap, pcapng, optionally gzip'd), or - for stdin.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl SocketsArgs {
    pub fn config(&self) -> SocketsConfig {
        SocketsConfig {
            inputs: self.inputs.clone(),
            at: self.at,
            port: self.port,
            proto: self.proto.as_deref().map(|p| match p {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => Proto::Icmp,
            }),
            filter: self.engine.filter.clone(),
            decode: self.engine.decode(),
            flow: self.engine.flow(),
        }
    }
}

fn at_time(s: &str) -> Result<At, String> {
    parse_at(s, duration)
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A sockscope output directory (with connections.parquet and summary.json).
    pub dir: PathBuf,
    #[command(flatten)]
    pub report: ReportFlags,
}

/// Options of the reports built from the connection records.
#[derive(Args, Debug, Clone)]
pub struct ReportFlags {
    /// Skip the PNG charts and report.html (tables only).
    #[arg(long)]
    pub no_charts: bool,
    /// How many server ports the charts and timeline series show.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub top: u64,
    /// Timeline bin width (e.g. 1s, 5m); default: 100 to about 1000 bins over the capture; at most 100,000.
    #[arg(long, value_parser = positive_duration)]
    pub bin: Option<Nanos>,
}

impl ReportFlags {
    pub fn options(&self) -> ReportOptions {
        ReportOptions {
            top: self.top as usize,
            bin: self.bin,
            charts: !self.no_charts,
        }
    }
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Capture files (pcap, pcapng, optionally gzip'd) or - for stdin; several
    /// files are merged by timestamp as one capture.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output directory.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Write into a non-empty directory that is not a previous sockscope output.
    #[arg(long)]
    pub force: bool,
    /// Only conn.log, connections.csv/.parquet and summary.json: no fan-in
    /// tables or charts (build them later with `sockscope report DIR`).
    /// Memory then stays bounded by --max-flows however many connections.
    #[arg(long)]
    pub no_tables: bool,
    /// Threads on the packet path: one reads and decodes, the others track
    /// connections (1: all on one thread). Default: the number of CPUs.
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub report: ReportFlags,
}

/// Options shared by every command that runs the connection engine.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// BPF filter (libpcap syntax), applied to files as well.
    #[arg(long, short = 'f')]
    pub filter: Option<String>,
    /// Drop packets with bad IP/TCP/UDP/ICMP checksums as Zeek does without -C
    /// (the connection still records C/c in its history).
    #[arg(long)]
    pub verify_checksums: bool,
    /// Make VLAN ids part of the connection key (Zeek's vlan_fivetuple).
    #[arg(long)]
    pub vlan_key: bool,
    /// Most connections tracked at once; the least recently seen is evicted.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_flows: u64,
    /// Give up on an unanswered SYN after this long (S0).
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub tcp_attempt_timeout: Nanos,
    /// TCP idle timeout once established.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub tcp_inactivity_timeout: Nanos,
    /// UDP idle timeout (TCP uses it too until the handshake completes).
    #[arg(long, default_value = "1m", value_parser = duration)]
    pub udp_inactivity_timeout: Nanos,
    /// ICMP idle timeout.
    #[arg(long, default_value = "1m", value_parser = duration)]
    pub icmp_inactivity_timeout: Nanos,
    /// Idle timeout of other IP protocols.
    #[arg(long, default_value = "1m", value_parser = duration)]
    pub unknown_inactivity_timeout: Nanos,
    /// Idle timeout for ssh/ftp/telnet/rlogin (ports 21, 22, 23, 513).
    #[arg(long, default_value = "1h", value_parser = duration)]
    pub interactive_inactivity_timeout: Nanos,
}

impl EngineArgs {
    pub fn decode(&self) -> DecodeConfig {
        DecodeConfig {
            verify_checksums: self.verify_checksums,
        }
    }

    pub fn flow(&self) -> FlowConfig {
        FlowConfig {
            timeouts: Timeouts {
                tcp_attempt: self.tcp_attempt_timeout,
                tcp_inactivity: self.tcp_inactivity_timeout,
                udp_inactivity: self.udp_inactivity_timeout,
                icmp_inactivity: self.icmp_inactivity_timeout,
                unknown_inactivity: self.unknown_inactivity_timeout,
                interactive_inactivity: self.interactive_inactivity_timeout,
                ..Timeouts::default()
            },
            max_flows: self.max_flows as usize,
            vlan_key: self.vlan_key,
        }
    }
}

impl AnalyzeArgs {
    pub fn config(&self) -> AnalyzeConfig {
        AnalyzeConfig {
            inputs: self.inputs.clone(),
            out: self.out.clone(),
            force: self.force,
            filter: self.engine.filter.clone(),
            decode: self.engine.decode(),
            flow: self.engine.flow(),
            threads: self.threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                usize::from,
            ),
            tables: !self.no_tables,
        }
    }
}

/// Parse `300ms`, `5s`, `1.5m`, `2h`, or plain seconds into nanoseconds.
pub fn duration(s: &str) -> Result<Nanos, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let scale = match unit.trim() {
        "" | "s" => 1e9,
        "ms" => 1e6,
        "us" => 1e3,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "d" => 86_400e9,
        u => {
            return Err(format!(
                "unknown duration unit {u:?} in {s:?} (use ms, s, m, h, d)"
            ));
        }
    };
    let ns = value * scale;
    if !(0.0..9.2e18).contains(&ns) {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(ns as Nanos)
}

/// A rate: a finite number above zero (per second).
fn rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("not a rate above zero: {s:?}")),
    }
}

/// A duration above zero: a bin or a capture of no time means nothing
/// (`duration` also gives 0 for what rounds below a nanosecond).
fn positive_duration(s: &str) -> Result<Nanos, String> {
    match duration(s)? {
        0 => Err(format!("must be more than zero: {s:?}")),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("5s"), Ok(5_000_000_000));
        assert_eq!(duration("1.5m"), Ok(90_000_000_000));
        assert_eq!(duration("250ms"), Ok(250_000_000));
        assert_eq!(duration("2"), Ok(2_000_000_000));
        assert!(duration("5 parsecs").is_err());
        assert!(duration("-1s").is_err());
        assert_eq!(duration("0"), Ok(0));
        assert!(positive_duration("0s").is_err());
        assert!(positive_duration("0.0001us").is_err());
        assert_eq!(positive_duration("1us"), Ok(1000));
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

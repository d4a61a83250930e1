//! The sockscope binary: parse flags, run, print errors once.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use cli::{Cli, Command};
use sockscope::analyze::{self, Progress};
use sockscope::capture::{LiveView, Status};
use sockscope::report::build::{self, ReportOutcome};
use sockscope::report::summary::Summary;

/// Exit status when an input was damaged but everything before it was analysed.
const EXIT_DAMAGED: u8 = 3;

/// Set by SIGINT/SIGTERM: a live capture stops cleanly and writes its reports.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_stop_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_stop_signal;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// The live view: redrawn in place on a terminal, a status line every few
/// seconds otherwise (piped, CI).
struct TerminalView {
    tty: bool,
    quiet: bool,
    drawn: usize,
    last_line: Option<std::time::Instant>,
}

fn human_bytes(b: f64) -> String {
    sockscope::report::charts::si(b) + "B"
}

impl LiveView for TerminalView {
    fn show(&mut self, s: &Status) {
        if self.quiet {
            return;
        }
        let t = s.elapsed.as_secs();
        let states: Vec<String> = s.states.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let drops = format!(
            "dropped: kernel {}, interface {}",
            s.counters.dropped_by_kernel, s.counters.dropped_by_interface
        );
        if !self.tty {
            if self.last_line.is_none_or(|l| l.elapsed().as_secs() >= 5) {
                eprintln!(
                    "[{:02}:{:02}:{:02}] {} packets ({:.0}/s), {}/s, {} open connections, {drops}",
                    t / 3600,
                    t / 60 % 60,
                    t % 60,
                    s.packets,
                    s.packets_per_s,
                    human_bytes(s.bytes_per_s),
                    s.open
                );
                self.last_line = Some(std::time::Instant::now());
            }
            return;
        }
        let mut text = format!(
            "sockscope capture - {:02}:{:02}:{:02} elapsed (Ctrl-C to stop and write reports)\n\
             packets {} ({:.0}/s)   bytes {} ({}/s)   {drops}\n\
             open connections {}: {}\n\n{:<12} {:>8} {:>8} {:>12}\n",
            t / 3600,
            t / 60 % 60,
            t % 60,
            s.packets,
            s.packets_per_s,
            human_bytes(s.bytes as f64),
            human_bytes(s.bytes_per_s),
            s.open,
            if states.is_empty() {
                "-".into()
            } else {
                states.join(", ")
            },
            "server port",
            "clients",
            "sockets",
            "connections"
        );
        for p in &s.top {
            text.push_str(&format!(
                "{:<12} {:>8} {:>8} {:>12}\n",
                format!("{}/{}", p.port, p.proto.name()),
                p.clients,
                p.sockets,
                p.connections
            ));
        }
        if self.drawn > 0 {
            eprint!("\x1b[{}A\x1b[J", self.drawn);
        }
        eprint!("{text}");
        // Lines longer than the terminal wrap: move up over every row drawn.
        let width = terminal_width().max(1);
        self.drawn = text
            .lines()
            .map(|l| l.chars().count().div_ceil(width).max(1))
            .sum();
    }
}

/// Columns of the terminal on stderr (80 if it cannot be asked).
fn terminal_width() -> usize {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize it is given and nothing else.
    let rc = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        usize::from(ws.ws_col)
    } else {
        80
    }
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, total: Option<u64>) {
        if let Some(t) = total {
            self.0.set_length(t);
        }
    }
    fn update(&self, bytes: u64) {
        self.0.set_position(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn progress_bar(quiet: bool) -> Bar {
    if quiet || !std::io::stderr().is_terminal() {
        return Bar(ProgressBar::hidden());
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Bar(bar)
}

fn main() -> ExitCode {
    // glibc gives every thread its own malloc arena; with the reader,
    // shards, writer and polars' pool that fragments into a third more
    // resident memory for no speed (measured on the 1 GB reference).
    // It also hands blocks of 128 KiB and more back to the kernel as soon
    // as they are freed, and the tables, whose passes each take and free
    // megabytes, paid for it again and again in page faults, zeroing and
    // other cores' TLB flushes (about a sixth of `report`'s CPU time):
    // freed memory now stays in the arenas for the next pass.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc tuning calls before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sockscope: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The terminal summary: totals, then the busiest ports by fan-in.
fn print_summary(s: &Summary, r: &ReportOutcome, out: &std::path::Path) {
    let states: Vec<String> = s
        .connections
        .by_state
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    eprintln!(
        "{} packets ({} skipped), {} connections over {:.1} s -> {}",
        s.packets.read,
        s.packets.read - s.packets.analyzed,
        s.connections.total,
        s.capture.duration_s,
        out.display()
    );
    eprintln!("states: {}", states.join(", "));
    if r.top_ports.is_empty() {
        return;
    }
    eprintln!(
        "\n{:<10} {:>9} {:>12} {:>12} {:>9} {:>9}",
        "port", "clients", "sockets", "connections", "failed", "peak"
    );
    for p in &r.top_ports {
        eprintln!(
            "{:<10} {:>9} {:>12} {:>12} {:>9} {:>9}",
            format!("{}/{}", p.port, p.proto),
            p.clients,
            p.client_sockets,
            p.connections,
            p.failed,
            p.peak_concurrent
        );
    }
}

/// netstat-style listing on stdout.
fn print_sockets(view: &sockscope::sockets::SocketsView, port: Option<u16>) -> std::io::Result<()> {
    use sockscope::report::text::iso8601;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let Some(at) = view.at else {
        return writeln!(out, "the capture has no packets");
    };
    writeln!(
        out,
        "Sockets open at {} (local = server/responder side)",
        iso8601(at)
    )?;
    writeln!(
        out,
        "{:<6} {:<45} {:<45} State",
        "Proto", "Local Address", "Foreign Address"
    )?;
    let addr = |(a, p): (sockscope::decode::Addr, u16)| {
        if a.is_v4() {
            format!("{a}:{p}")
        } else {
            format!("[{a}]:{p}")
        }
    };
    for s in &view.sockets {
        writeln!(
            out,
            "{:<6} {:<45} {:<45} {}",
            s.proto.name(),
            addr(s.local),
            addr(s.remote),
            s.state
        )?;
    }
    match port {
        Some(p) => writeln!(out, "{} sockets on port {p}", view.sockets.len()),
        None => writeln!(out, "{} sockets", view.sockets.len()),
    }
}

/// Build the tables and charts, and say where they differ from what was asked.
fn build_reports(
    dir: &std::path::Path,
    opts: &build::ReportOptions,
    analysed: Option<build::Analysed>,
) -> anyhow::Result<ReportOutcome> {
    let outcome = build::run(dir, opts, analysed)?;
    for w in &outcome.warnings {
        eprintln!("sockscope: warning: {w}");
    }
    Ok(outcome)
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Analyze(args) => {
            let cfg = args.config();
            let mut outcome = analyze::run(&cfg, &progress_bar(cli.quiet))?;
            for w in &outcome.summary.warnings {
                eprintln!("sockscope: warning: {w}");
            }
            let reports = if cfg.tables {
                build_reports(&cfg.out, &args.report.options(), Some(outcome.analysed()))?
            } else {
                build::ReportOutcome::default()
            };
            outcome.files.wait()?;
            if !cli.quiet {
                print_summary(&outcome.summary, &reports, &cfg.out);
            }
            Ok(if outcome.damaged {
                ExitCode::from(EXIT_DAMAGED)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Sockets(args) => {
            let view = sockscope::sockets::sockets_at(&args.config())?;
            for d in &view.damage {
                eprintln!("sockscope: warning: {d}");
            }
            if let (Some(at), Some((first, last))) = (view.at, view.span) {
                use sockscope::report::text::iso8601;
                let outside = if at < first {
                    Some(("before", "first", first))
                } else {
                    (at > last).then_some(("after", "last", last))
                };
                if let Some((side, which, edge)) = outside {
                    eprintln!(
                        "sockscope: warning: {} is {side} the capture's {which} packet ({})",
                        iso8601(at),
                        iso8601(edge)
                    );
                }
            }
            match print_sockets(&view, args.port) {
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ if !view.damage.is_empty() => Ok(ExitCode::from(EXIT_DAMAGED)),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Interfaces => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for i in sockscope::source::live::interfaces()? {
                let flags = [
                    (i.up, "up"),
                    (i.running, "running"),
                    (i.loopback, "loopback"),
                ]
                .iter()
                .filter(|f| f.0)
                .map(|f| f.1)
                .collect::<Vec<_>>()
                .join(",");
                let line = format!(
                    "{:<16} {:<24} {}{}",
                    i.name,
                    if flags.is_empty() {
                        "down".to_string()
                    } else {
                        flags
                    },
                    i.addresses.join(" "),
                    i.description
                        .map(|d| format!("  ({d})"))
                        .unwrap_or_default()
                );
                if writeln!(out, "{}", line.trim_end()).is_err() {
                    break;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Capture(args) => {
            install_stop_handlers();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            let (y, mo, d, h, mi, s) = sockscope::report::text::civil(now);
            let default_out = format!(
                "sockscope-{}-{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}",
                args.interface
            );
            let cfg = args.config(default_out.into());
            let mut view = TerminalView {
                tty: std::io::stderr().is_terminal(),
                quiet: cli.quiet,
                drawn: 0,
                last_line: None,
            };
            let mut outcome = sockscope::capture::run(&cfg, &STOP, &mut view)?;
            let reports = build_reports(
                &cfg.session.out,
                &args.report.options(),
                Some(outcome.analysed()),
            )?;
            outcome.files.wait()?;
            if !cli.quiet {
                print_summary(&outcome.summary, &reports, &cfg.session.out);
                if let Some(l) = &outcome.summary.live {
                    eprintln!(
                        "capture on {} stopped by {}: {} packets received, dropped by kernel {}, by interface {}",
                        l.interface,
                        l.stopped_by,
                        l.received,
                        l.dropped_by_kernel,
                        l.dropped_by_interface
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(args) => {
            let cfg = args.config();
            let made = sockscope::generate::generate(&cfg)?;
            if !cli.quiet {
                eprintln!(
                    "{}: {} packets, {} bytes, {} flows",
                    cfg.out.display(),
                    made.packets,
                    made.bytes,
                    made.flows
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            let reports = build_reports(&args.dir, &args.report.options(), None)?;
            if !cli.quiet {
                let summary = build::read_summary(&args.dir)?;
                print_summary(&summary, &reports, &args.dir);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

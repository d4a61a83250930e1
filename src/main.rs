//! The sockscope binary: parse flags, run, print errors once.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use cli::{Cli, Command};
use sockscope::analyze::{self, Progress};
use sockscope::report::build::{self, ReportOutcome};
use sockscope::report::summary::Summary;

/// Exit status when an input was damaged but everything before it was analysed.
const EXIT_DAMAGED: u8 = 3;

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

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Analyze(args) => {
            let cfg = args.config();
            let outcome = analyze::run(&cfg, &progress_bar(cli.quiet))?;
            for w in &outcome.summary.warnings {
                eprintln!("sockscope: warning: {w}");
            }
            let reports = build::run(&cfg.out, &args.report.options())?;
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
            match print_sockets(&view, args.port) {
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Report(args) => {
            let reports = build::run(&args.dir, &args.report.options())?;
            if !cli.quiet {
                let summary = build::read_summary(&args.dir)?;
                print_summary(&summary, &reports, &args.dir);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

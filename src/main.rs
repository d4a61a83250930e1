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

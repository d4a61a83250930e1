//! The sockscope binary: parse flags, run, print errors once.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use cli::{Cli, Command};
use sockscope::analyze::{self, Progress};

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

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Analyze(args) => {
            let cfg = args.config();
            let outcome = analyze::run(&cfg, &progress_bar(cli.quiet))?;
            for w in &outcome.summary.warnings {
                eprintln!("sockscope: warning: {w}");
            }
            if !cli.quiet {
                let s = &outcome.summary;
                eprintln!(
                    "{} packets, {} connections -> {}",
                    s.packets.read,
                    s.connections.total,
                    cfg.out.display()
                );
            }
            Ok(if outcome.damaged {
                ExitCode::from(EXIT_DAMAGED)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

//! Every Zeek trace we have, and damaged variants of each (cut at several
//! offsets, random bytes overwritten), goes through the whole analysis
//! without a panic, a hang or an internal error: the result is either
//! connections (with the damage reported) or one clear error.
//!
//! The traces are the ones bundled in tests/data/zeek, plus every trace in
//! `$SOCKSCOPE_ZEEK_TRACES` or `../shared/zeek/traces` when present.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use sockscope::analyze::{self, AnalyzeConfig, Silent};
use sockscope::decode::DecodeConfig;
use sockscope::flow::FlowConfig;

fn traces() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = std::env::var_os("SOCKSCOPE_ZEEK_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/zeek/traces"));
    let mut all = Vec::new();
    for dir in [root.join("tests/data/zeek"), shared] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".pcap") || name.ends_with(".trace") || name.ends_with(".dump") {
                all.push(e.path());
            }
        }
    }
    all.sort();
    all
}

/// Deterministic damage: xorshift from a seed.
fn variants(bytes: &[u8], seed: u64) -> Vec<(String, Vec<u8>)> {
    let n = bytes.len();
    let mut out: Vec<(String, Vec<u8>)> = [10, 45, n / 3, 2 * n / 3, n.saturating_sub(1)]
        .into_iter()
        .filter(|&cut| cut < n)
        .map(|cut| (format!("cut at {cut}"), bytes[..cut].to_vec()))
        .collect();
    let mut x = seed | 1;
    for round in 0..2 {
        let mut b = bytes.to_vec();
        for _ in 0..16 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x % n.max(1) as u64) as usize;
            if let Some(byte) = b.get_mut(at) {
                *byte = (x >> 32) as u8;
            }
        }
        out.push((format!("flips round {round}"), b));
    }
    out
}

/// Analyse `trace` intact and damaged; returns the number of runs.
fn sweep(index: usize, trace: &Path, scratch: &Path) -> usize {
    let bytes = std::fs::read(trace).unwrap();
    let name = trace.file_name().unwrap().to_string_lossy().into_owned();
    let mut cases = vec![("intact".to_string(), bytes.clone())];
    cases.extend(variants(&bytes, index as u64 + 1));
    for (run, (what, data)) in cases.iter().enumerate() {
        let input = scratch.join(format!("input-{name}"));
        std::fs::write(&input, data).unwrap();
        let cfg = AnalyzeConfig {
            inputs: vec![input],
            out: scratch.join("out"),
            force: true,
            filter: None,
            decode: DecodeConfig::default(),
            flow: FlowConfig::default(),
            // Both the single-threaded and the sharded pipeline.
            threads: 1 + (index + run) % 2,
            // Keeping the tables' rows from damaged input too, every other trace.
            tables: index % 2 == 0,
        };
        // On its own thread: a panic or a hang shows up here.
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            let _ = tx.send(analyze::run(&cfg, &Silent).and_then(|mut o| {
                o.files.wait()?;
                Ok(o.damaged)
            }));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(_damaged)) => {}
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(!msg.contains("internal error"), "{name} {what}: {msg}");
                assert!(
                    msg.contains(&name),
                    "{name} {what}: error without the file: {msg}"
                );
            }
            Err(_) => panic!("{name} {what}: panicked or ran over a minute"),
        }
        worker.join().expect("no panic");
    }
    cases.len()
}

#[test]
fn every_trace_and_damaged_variant_runs_to_a_result() {
    let traces = traces();
    assert!(traces.len() >= 20, "bundled traces are missing");
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("damage-sweep");
    let _ = std::fs::remove_dir_all(&root);
    // Two workers, each with its own scratch directory.
    let runs: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let (traces, root) = (&traces, &root);
                s.spawn(move || {
                    let scratch = root.join(w.to_string());
                    std::fs::create_dir_all(&scratch).unwrap();
                    traces
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % 2 == w)
                        .map(|(i, t)| sweep(i, t, &scratch))
                        .sum::<usize>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("no panic"))
            .sum()
    });
    eprintln!("{} traces, {runs} runs", traces.len());
}

//! Helpers shared by the integration tests: run the real binary, read its logs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A file in samples/ (or the directory itself for "").
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

/// A fresh, empty scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Write `pcap` (and `pcap.truth.json`) with the benchmark generator,
/// scripts/gen_bench.py.
pub fn gen_bench(pcap: &Path, size_mb: &str, seed: &str) {
    let o = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen_bench.py"))
        .args(["--size-mb", size_mb, "--seed", seed, "-o"])
        .arg(pcap)
        .output()
        .expect("python3 runs scripts/gen_bench.py");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

pub fn sockscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sockscope"))
        .args(args)
        .output()
        .expect("run sockscope")
}

/// Run `sockscope analyze` on `inputs` into `out`, asserting success.
pub fn analyze(inputs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["analyze".into(), "--quiet".into()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend([
        "--out".to_string(),
        out.display().to_string(),
        "--force".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = sockscope(&argv);
    assert!(
        o.status.success(),
        "sockscope {argv:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A Zeek ASCII log: its `#fields` and rows keyed by field name.
pub struct ZeekLog {
    pub fields: Vec<String>,
    pub rows: Vec<HashMap<String, String>>,
}

pub fn read_zeek_log(path: &Path) -> ZeekLog {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fields = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            fields = f.split('\t').map(String::from).collect();
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else if !fields.is_empty() {
            rows.push(
                fields
                    .iter()
                    .cloned()
                    .zip(line.split('\t').map(String::from))
                    .collect(),
            );
        }
    }
    ZeekLog { fields, rows }
}

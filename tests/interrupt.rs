//! Killing an analysis mid-run leaves no file that looks complete: tables
//! are written under temporary names and renamed only when whole.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{scratch, sockscope};

#[test]
fn kill_9_mid_run_leaves_only_temporary_files() {
    let dir = scratch("interrupt");
    let pcap = dir.join("flood.pcap");
    let o = sockscope(&[
        "generate",
        "udp-flood",
        "--packets",
        "500000",
        "--rate",
        "20000",
        "-o",
        pcap.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockscope"))
        .args(["analyze", "--quiet", pcap.to_str().unwrap(), "--out"])
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it is writing (temporary files exist), then kill it.
    let started = Instant::now();
    while !out.join(".conn.log.tmp").exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run finished before it was killed");
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == ".conn.log.tmp"), "{names:?}");
    for n in &names {
        assert!(
            n.starts_with('.') && n.ends_with(".tmp"),
            "{n} looks complete: {names:?}"
        );
    }
    // The next run in the same directory replaces the leftovers.
    let o = sockscope(&[
        "analyze",
        "--quiet",
        pcap.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-charts",
        "--max-flows",
        "1000",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("conn.log").exists());
    assert!(!out.join(".conn.log.tmp").exists());
}

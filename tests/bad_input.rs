//! Bad input: every case gives one clear line naming the file (and the packet
//! number where it applies), a documented exit status, and never a panic.

mod common;

use std::path::Path;

use common::{data, scratch, sockscope};

fn run(input: &Path, out: &Path) -> (i32, String) {
    let o = sockscope(&[
        "analyze",
        "--quiet",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (o.status.code().unwrap_or(-1), stderr)
}

fn conn_rows(out: &Path) -> usize {
    common::read_zeek_log(&out.join("conn.log")).rows.len()
}

#[test]
fn truncated_pcap_keeps_connections_before_the_damage() {
    let dir = scratch("bad-truncated-pcap");
    let whole = std::fs::read(data("zeek/wikipedia.pcap")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() / 2 + 7]).unwrap();
    let (code, err) = run(&cut, &dir.join("out"));
    assert_eq!(code, 3, "{err}");
    let line = err.lines().next().unwrap();
    assert!(
        line.starts_with(&format!(
            "sockscope: warning: {}: truncated at packet ",
            cut.display()
        )),
        "{err}"
    );
    assert!(line.contains("packet data needs"), "{err}");
    assert!(conn_rows(&dir.join("out")) > 5);
}

#[test]
fn truncated_pcapng_block() {
    let dir = scratch("bad-truncated-pcapng");
    let whole = std::fs::read(data("zeek/pcapng-perpacket-ldap-gap.pcapng")).unwrap();
    let cut = dir.join("cut.pcapng");
    std::fs::write(&cut, &whole[..whole.len() - 100]).unwrap();
    let (code, err) = run(&cut, &dir.join("out"));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(": truncated at packet 18: block needs"),
        "{err}"
    );
    assert_eq!(conn_rows(&dir.join("out")), 1);
}

#[test]
fn not_a_capture() {
    let dir = scratch("bad-not-capture");
    let f = dir.join("notes.txt");
    std::fs::write(&f, "hello, I am not a capture\n").unwrap();
    let (code, err) = run(&f, &dir.join("out"));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!(
            "sockscope: {}: not a pcap or pcapng capture (starts with 68 65 6c 6c)",
            f.display()
        )
    );
}

#[test]
fn missing_file() {
    let dir = scratch("bad-missing");
    let f = dir.join("nope.pcap");
    let (code, err) = run(&f, &dir.join("out"));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!(
            "sockscope: {}: No such file or directory (os error 2)",
            f.display()
        )
    );
}

#[test]
fn empty_file() {
    let dir = scratch("bad-empty");
    let f = dir.join("empty.pcap");
    std::fs::write(&f, b"").unwrap();
    let (code, err) = run(&f, &dir.join("out"));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!("sockscope: {}: file is empty", f.display())
    );
}

#[test]
fn unknown_link_type_is_counted_not_fatal() {
    let dir = scratch("bad-linktype");
    // A pcap of link type 147 (USER0) with two frames.
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    f.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&147u32.to_le_bytes());
    for i in 0..2u32 {
        f.extend_from_slice(&(1_600_000_000 + i).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(b"\xde\xad\xbe\xef");
    }
    let path = dir.join("user0.pcap");
    std::fs::write(&path, f).unwrap();
    let (code, err) = run(&path, &dir.join("out"));
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["packets"]["read"], 2);
    assert_eq!(summary["packets"]["skipped"]["unknown_link_type"], 2);
    assert_eq!(conn_rows(&dir.join("out")), 0);
}

#[test]
fn unwritable_output_directory() {
    let dir = scratch("bad-output");
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let (code, err) = run(&data("zeek/dhcp.pcap"), &blocker.join("out"));
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!("sockscope: {}:", blocker.join("out").display())),
        "{err}"
    );
}

#[test]
fn refuses_a_foreign_non_empty_directory() {
    let dir = scratch("bad-foreign-dir");
    std::fs::write(dir.join("thesis.tex"), b"precious").unwrap();
    let (code, err) = run(&data("zeek/dhcp.pcap"), &dir);
    assert_eq!(code, 1);
    assert!(
        err.contains("not empty and not a sockscope output (found thesis.tex); use --force"),
        "{err}"
    );
}

/// With `--force` into a foreign directory, files that a run does not
/// write are left alone, even those named like sockscope's tables.
#[test]
fn force_into_a_foreign_directory_removes_nothing_it_did_not_write() {
    let dir = scratch("force-foreign-dir");
    let theirs = ["thesis.tex", "report.html", "ports.csv"];
    for name in theirs {
        std::fs::write(dir.join(name), b"precious").unwrap();
    }
    let o = sockscope(&[
        "analyze",
        "--quiet",
        "--force",
        "--no-tables",
        "--out",
        dir.to_str().unwrap(),
        data("zeek/dhcp.pcap").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in theirs {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            b"precious",
            "{name}"
        );
    }
}

#[test]
fn rewrites_its_own_previous_output_without_force() {
    let dir = scratch("rerun-own-output");
    let out = dir.join("out");
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (code, err) = run(&data("zeek/dhcp.pcap"), &out);
        assert_eq!((code, err.as_str()), (0, ""));
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        runs.push((names, std::fs::read(out.join("conn.log")).unwrap()));
    }
    // Every file replaced in place (the old one unlinked first), none left
    // under a temporary name.
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[1].0.iter().all(|n| !n.ends_with(".tmp")),
        "{:?}",
        runs[1].0
    );
}

#[test]
fn bad_filter_expression() {
    let dir = scratch("bad-filter");
    let o = sockscope(&[
        "analyze",
        data("zeek/dhcp.pcap").to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--filter",
        "port banana",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.starts_with("sockscope: bad BPF filter \"port banana\":"),
        "{err}"
    );
}

/// `report` on a directory without an analysis says so, and does not
/// create a mistyped one.
#[test]
fn report_needs_an_analysed_directory() {
    let missing = scratch("report-missing").join("typo");
    let o = sockscope(&["report", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("typo: not a sockscope output (no summary.json)"),
        "{err}"
    );
    assert!(!missing.exists());
}

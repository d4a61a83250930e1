//! The sample captures in samples/: every row of the key-numbers table in
//! samples/README.md is checked against what the real binary reports for
//! that file (summary.json and the first TCP/UDP row of ports.csv). The
//! table is the single statement of those numbers: re-recording a sample
//! means updating its row, and this test says which numbers moved.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;

use common::{analyze, sample, scratch};

const COLUMNS: [&str; 9] = [
    "file",
    "packets",
    "connections",
    "tcp",
    "udp",
    "states",
    "top port",
    "clients",
    "connections on top port",
];

/// The rows of the README table whose header is exactly [`COLUMNS`].
fn table() -> Vec<BTreeMap<&'static str, String>> {
    let readme = std::fs::read_to_string(sample("README.md")).unwrap();
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut lines = readme.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with('|') && cells(l) == COLUMNS)
        .expect("samples/README.md has no key-numbers table with the expected columns");
    let separator = lines.next().expect("table separator");
    assert!(separator.contains("---"), "{separator}");
    lines
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let row = cells(l);
            assert_eq!(row.len(), COLUMNS.len(), "{l}");
            COLUMNS.into_iter().zip(row).collect()
        })
        .collect()
}

fn count(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// What sockscope reports for one sample, in the table's terms.
fn measure(file: &str, out: &Path) -> BTreeMap<&'static str, String> {
    analyze(&[&sample(file)], out, &["--no-charts", "-j", "1"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let conns = &summary["connections"];
    let by_proto = |p: &str| conns["by_proto"].get(p).map_or(0, count);
    let states: BTreeMap<&str, u64> = conns["by_state"]
        .as_object()
        .expect("connections.by_state")
        .iter()
        .map(|(s, n)| (s.as_str(), count(n)))
        .collect();
    let states = states
        .iter()
        .map(|(s, n)| format!("{s}={n}"))
        .collect::<Vec<_>>()
        .join(" ");

    let ports = std::fs::read_to_string(out.join("ports.csv")).unwrap();
    let mut lines = ports.lines();
    let header: Vec<&str> = lines.next().expect("ports.csv header").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} in ports.csv: {header:?}"))
    };
    let top: Vec<&str> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| matches!(r[col("proto")], "tcp" | "udp"))
        .unwrap_or_else(|| panic!("{file}: no TCP or UDP row in ports.csv"));

    BTreeMap::from([
        ("file", file.to_string()),
        ("packets", count(&summary["packets"]["read"]).to_string()),
        ("connections", count(&conns["total"]).to_string()),
        ("tcp", by_proto("tcp").to_string()),
        ("udp", by_proto("udp").to_string()),
        ("states", states),
        (
            "top port",
            format!("{}/{}", top[col("port")], top[col("proto")]),
        ),
        ("clients", top[col("clients")].to_string()),
        (
            "connections on top port",
            top[col("connections")].to_string(),
        ),
    ])
}

#[test]
fn every_sample_gives_the_numbers_in_its_readme() {
    let rows = table();
    // Every capture in samples/ has a row, and every row a capture.
    let mut files: Vec<String> = std::fs::read_dir(sample(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcap.gz") || n.ends_with(".pcapng"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = rows.iter().map(|r| r["file"].clone()).collect();
    listed.sort();
    assert_eq!(files, listed, "captures in samples/ vs rows of the table");
    assert!(rows.len() >= 7, "{} rows", rows.len());

    let dir = scratch("samples");
    let measured: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = rows
            .iter()
            .map(|row| {
                let file = row["file"].clone();
                let out = dir.join(&file);
                s.spawn(move || measure(&file, &out))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut wrong = Vec::new();
    for (want, got) in rows.iter().zip(&measured) {
        for column in COLUMNS {
            if want[column] != got[column] {
                wrong.push(format!(
                    "{}: {column}: README says {:?}, sockscope reports {:?}",
                    want["file"], want[column], got[column]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

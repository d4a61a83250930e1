//! `sockscope sockets --at` agrees with the timeline's concurrency series.

mod common;

use common::{analyze, scratch, sockscope};

#[test]
fn socket_counts_equal_the_concurrency_series() {
    let dir = scratch("sockets-series");
    let pcap = dir.join("gen.pcap");
    common::gen_bench(&pcap, "1.2", "11");
    let out = dir.join("out");
    analyze(
        &[&pcap],
        &out,
        &["--no-charts", "--bin", "30s", "--top", "3"],
    );
    let timeline = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    let mut lines = timeline.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let series: Vec<(usize, String)> = head
        .iter()
        .enumerate()
        .filter(|(_, h)| h.starts_with("open_") && **h != "open_at_start")
        .map(|(i, h)| (i, h.to_string()))
        .collect();
    assert_eq!(series.len(), 3);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mut compared = 0;
    let mut nonzero = 0;
    for row in rows.iter().step_by(4) {
        let at = row[0];
        for (col, name) in &series {
            let mut parts = name.split('_').skip(1);
            let (proto, port) = (parts.next().unwrap(), parts.next().unwrap());
            let want: usize = row[*col].parse().unwrap();
            let o = sockscope(&[
                "sockets",
                "--at",
                at,
                "--port",
                port,
                "--proto",
                proto,
                pcap.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(listed(&o), want, "{name} at {at}");
            compared += 1;
            nonzero += usize::from(want > 0);
        }
    }
    assert!(
        compared >= 12 && nonzero >= 6,
        "compared {compared}, nonzero {nonzero}"
    );
}

/// The count `sockets` ends its listing with ("12 sockets on port 443").
fn listed(o: &std::process::Output) -> usize {
    let text = String::from_utf8_lossy(&o.stdout);
    let last = text.lines().last().unwrap_or_default();
    let count = last.split_whitespace().next().unwrap_or_default();
    count
        .parse()
        .unwrap_or_else(|_| panic!("no count in {last:?}"))
}

/// The records of a little-endian microsecond pcap: (epoch seconds,
/// microseconds, offset of the record's end).
fn records(bytes: &[u8]) -> Vec<(u32, u32, usize)> {
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(le32(0), 0xa1b2_c3d4, "gen_bench writes µs pcap");
    let (mut at, mut out) = (24, Vec::new());
    while at + 16 <= bytes.len() {
        let end = at + 16 + le32(at + 8) as usize;
        out.push((le32(at), le32(at + 4), end));
        at = end;
    }
    out
}

/// A capture cut in the middle of a record: the damage is named with its
/// file and packet on stderr, the sockets before it are still listed (at an
/// instant given exactly as conn.log writes times), and the exit status is
/// 3; an instant past the last packet is listed with a warning saying so.
#[test]
fn damage_and_instants_outside_the_capture_are_reported() {
    let dir = scratch("sockets-damage");
    let whole = dir.join("whole.pcap");
    common::gen_bench(&whole, "1.2", "12");
    let bytes = std::fs::read(&whole).unwrap();
    let recs = records(&bytes);
    let cut_after = recs.len() / 2;
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &bytes[..recs[cut_after - 1].2 + 20]).unwrap();
    let (s, us, _) = recs[cut_after / 2];
    let at = format!("{s}.{us:06}");
    let o = sockscope(&["sockets", "--at", &at, cut.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cut.pcap") && stderr.contains(&format!("packet {}", cut_after + 1)),
        "{stderr}"
    );
    assert!(listed(&o) > 0, "{}", String::from_utf8_lossy(&o.stdout));

    let (last, _, _) = recs[recs.len() - 1];
    let late = format!("{}", last + 1000);
    let o = sockscope(&["sockets", "--at", &late, whole.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("after the capture's last packet"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("\n0 sockets\n"));
}

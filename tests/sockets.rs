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
            let text = String::from_utf8_lossy(&o.stdout);
            let last = text.lines().last().unwrap();
            let got: usize = last.split_whitespace().next().unwrap().parse().unwrap();
            assert_eq!(got, want, "{name} at {at}: {last}");
            compared += 1;
            nonzero += usize::from(want > 0);
        }
    }
    assert!(
        compared >= 12 && nonzero >= 6,
        "compared {compared}, nonzero {nonzero}"
    );
}

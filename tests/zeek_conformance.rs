//! The real binary on real traces, compared row by row with the conn.log Zeek
//! wrote for them (see tests/data/zeek/README.md for the comparison rules).

mod common;

use std::collections::HashMap;

use common::{analyze, data, read_zeek_log, scratch};

const ID: [&str; 5] = ["id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto"];
const NOT_COMPARED: [&str; 3] = ["ts", "uid", "service"];

struct Case {
    name: String,
    trace: String,
    args: Vec<String>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(data("zeek/CASES.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            Case {
                name: cols[0].to_string(),
                trace: cols[1].to_string(),
                args: cols[2]
                    .split('|')
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect(),
            }
        })
        .collect()
}

fn same(col: &str, want: &str, got: &str) -> bool {
    if col == "duration" && want != "-" && got != "-" {
        let (w, g): (f64, f64) = (want.parse().unwrap(), got.parse().unwrap());
        return (w - g).abs() <= 1.5e-6;
    }
    want == got
}

/// Run one case; returns a description of every differing row.
fn run(case: &Case) -> Vec<String> {
    let out = scratch(&format!("zeek-{}", case.name));
    let mut args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    args.push("--no-charts");
    analyze(&[&data(&format!("zeek/{}", case.trace))], &out, &args);
    let got = read_zeek_log(&out.join("conn.log"));
    let want = read_zeek_log(&data(&format!("zeek/{}.conn.log", case.name)));
    let compared: Vec<&String> = want
        .fields
        .iter()
        .filter(|f| !NOT_COMPARED.contains(&f.as_str()))
        .collect();
    let mut pool = got.rows.clone();
    let mut diffs = Vec::new();
    for w in &want.rows {
        let key =
            |r: &HashMap<String, String>| ID.iter().map(|c| r.get(*c).cloned()).collect::<Vec<_>>();
        let score = |g: &HashMap<String, String>| {
            compared
                .iter()
                .filter(|c| {
                    g.get(c.as_str())
                        .is_some_and(|v| same(c, &w[c.as_str()], v))
                })
                .count()
        };
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, g)| key(g) == key(w))
            .max_by_key(|(_, g)| score(g))
            .map(|(i, _)| i);
        let Some(i) = best else {
            diffs.push(format!("missing {:?}", key(w)));
            continue;
        };
        let g = pool.remove(i);
        let bad: Vec<String> = compared
            .iter()
            .filter(|c| {
                !g.get(c.as_str())
                    .is_some_and(|v| same(c, &w[c.as_str()], v))
            })
            .map(|c| format!("{c}: want {} got {:?}", w[c.as_str()], g.get(c.as_str())))
            .collect();
        if !bad.is_empty() {
            diffs.push(bad.join(", "));
        }
    }
    // Baselines cut to a few columns (zeek-cut) may omit rows' context; full
    // logs must not have extra rows.
    if want.fields.contains(&"conn_state".to_string()) && want.fields.contains(&"ts".to_string()) {
        diffs.extend(
            pool.iter()
                .map(|g| format!("extra row {:?}", ID.map(|c| g.get(c).cloned()))),
        );
    }
    diffs
}

#[test]
fn conn_log_rows_match_zeek() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        if !data(&format!("zeek/{}.conn.log", case.name)).exists() {
            continue;
        }
        checked += 1;
        let diffs = run(&case);
        if !diffs.is_empty() {
            failures.push(format!("{}:\n  {}", case.name, diffs.join("\n  ")));
        }
    }
    assert!(checked >= 20, "only {checked} cases found");
    assert!(
        failures.is_empty(),
        "rows differ from Zeek:\n{}",
        failures.join("\n")
    );
}

/// `*.aux.txt` lines: `[orig_h=A, orig_p=N/icmp, resp_h=B, resp_p=M/icmp, proto=P, ctx=[]], 1:ID`.
fn aux_ids(name: &str) -> Vec<(String, String, String, String, String)> {
    let text = std::fs::read_to_string(data(&format!("zeek/{name}.aux.txt"))).unwrap();
    text.lines()
        .filter(|l| l.starts_with('['))
        .map(|l| {
            let field = |k: &str| {
                let start = l.find(&format!("{k}=")).unwrap() + k.len() + 1;
                let rest = &l[start..];
                rest[..rest.find([',', '/']).unwrap()].to_string()
            };
            let cid = l.rsplit(", ").next().unwrap().to_string();
            (
                field("orig_h"),
                field("orig_p"),
                field("resp_h"),
                field("resp_p"),
                cid,
            )
        })
        .collect()
}

#[test]
fn community_ids_and_icmp_ports_match_zeek() {
    for name in [
        "cid-tcp",
        "cid-udp",
        "cid-icmp",
        "cid-icmp6",
        "cid-ipv6",
        "cid-sctp",
    ] {
        let out = scratch(&format!("cid-{name}"));
        analyze(
            &[&data(&format!("zeek/{name}.pcap"))],
            &out,
            &["--verify-checksums"],
        );
        let got = read_zeek_log(&out.join("conn.log"));
        let mut got: Vec<_> = got
            .rows
            .iter()
            .map(|r| {
                (
                    r["id.orig_h"].clone(),
                    r["id.orig_p"].clone(),
                    r["id.resp_h"].clone(),
                    r["id.resp_p"].clone(),
                    r["community_id"].clone(),
                )
            })
            .collect();
        let mut want = aux_ids(name);
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}");
    }
}

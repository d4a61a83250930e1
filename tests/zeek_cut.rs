//! conn.log must be readable by zeek-cut. This parses the header exactly as
//! zeek-cut does (zeek-aux/zeek-cut/zeek-cut.c): `#separator` holds the
//! separator with `\xHH` escapes, `#fields` names the columns split by that
//! separator, `#unset_field`/`#empty_field`/`#set_separator` must be present
//! before `#fields`, and every data line has one value per field.

mod common;

use common::{analyze, data, scratch};

/// zeek-cut's unescaping of the `#separator` value (`\x09` → TAB).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        let hex = &rest[i + 2..i + 4];
        out.push(u8::from_str_radix(hex, 16).unwrap() as char);
        rest = &rest[i + 4..];
    }
    out.push_str(rest);
    out
}

#[test]
fn header_parses_like_zeek_cut() {
    let out = scratch("zeek-cut");
    analyze(&[&data("zeek/wikipedia.pcap")], &out, &[]);
    let text = std::fs::read_to_string(out.join("conn.log")).unwrap();
    let mut lines = text.lines();

    // zeek-cut reads the separator from the first line: "#separator <value>".
    let first = lines.next().unwrap();
    let value = first.strip_prefix("#separator ").expect("#separator first");
    let sep = unescape(value);
    assert_eq!(sep, "\t");

    let mut meta = std::collections::HashMap::new();
    let mut fields: Vec<&str> = Vec::new();
    let mut types: Vec<&str> = Vec::new();
    let mut data_lines = 0;
    let mut closed = false;
    for line in lines {
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.splitn(2, sep.as_str());
            let key = parts.next().unwrap();
            let val = parts.next().unwrap_or("");
            match key {
                "fields" => fields = val.split(sep.as_str()).collect(),
                "types" => types = val.split(sep.as_str()).collect(),
                "close" => closed = true,
                _ => {
                    meta.insert(key.to_string(), val.to_string());
                }
            }
        } else {
            assert!(!fields.is_empty(), "data before #fields");
            assert_eq!(line.split(sep.as_str()).count(), fields.len(), "{line}");
            data_lines += 1;
        }
    }
    assert_eq!(meta["set_separator"], ",");
    assert_eq!(meta["empty_field"], "(empty)");
    assert_eq!(meta["unset_field"], "-");
    assert_eq!(meta["path"], "conn");
    assert!(meta.contains_key("open"));
    assert!(closed, "#close line");
    assert_eq!(fields.len(), types.len());
    // Zeek's default columns, in Zeek's order, then ours.
    assert_eq!(
        fields,
        [
            "ts",
            "uid",
            "id.orig_h",
            "id.orig_p",
            "id.resp_h",
            "id.resp_p",
            "proto",
            "service",
            "duration",
            "orig_bytes",
            "resp_bytes",
            "conn_state",
            "local_orig",
            "local_resp",
            "missed_bytes",
            "history",
            "orig_pkts",
            "orig_ip_bytes",
            "resp_pkts",
            "resp_ip_bytes",
            "tunnel_parents",
            "ip_proto",
            "community_id",
            "vlan",
            "inner_vlan"
        ]
    );
    assert_eq!(data_lines, 34);
}

//! report.html: one self-contained page (charts embedded as data URIs, no
//! network fetches) with the key figures, top ports by fan-in, states, every
//! chart, and links to the tables next to it.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::build::PortRow;
use super::output::{self, OutputError};
use super::summary::Summary;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn n(v: u64) -> String {
    // Thin spaces between thousands.
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1250px;color:#222}\
h1{margin-bottom:.2em}.sub{color:#666}table{border-collapse:collapse;margin:1em 0}\
td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}th{background:#f3f3f3}\
td.l,th.l{text-align:left}.kpi{display:flex;flex-wrap:wrap;gap:1em}.kpi div{background:#f6f8fa;\
border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:9em}.kpi b{display:block;font-size:1.5em}\
figure{margin:2em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{color:#555}\
.warn{background:#fff4e5;border:1px solid #f0b429;padding:.6em}";

pub fn write(
    dir: &Path,
    summary: &Summary,
    top: &[PortRow],
    charts: &[(PathBuf, &str)],
) -> Result<PathBuf, OutputError> {
    let mut h = String::with_capacity(1 << 20);
    let inputs: Vec<String> = summary.inputs.iter().map(|i| esc(&i.path)).collect();
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>sockscope report</title>\
         <style>{STYLE}</style></head><body><h1>sockscope report</h1><p class=sub>{} &middot; {} to {} UTC ({:.1} s) &middot; {}</p>",
        inputs.join(", "),
        esc(summary.capture.first_packet.as_deref().unwrap_or("-")),
        esc(summary.capture.last_packet.as_deref().unwrap_or("-")),
        summary.capture.duration_s,
        esc(&summary.tool)
    );
    for w in &summary.warnings {
        let _ = write!(h, "<p class=warn>Input damaged: {}</p>", esc(w));
    }
    let c = &summary.connections;
    let by_proto = |p: &str| c.by_proto.get(p).copied().unwrap_or(0);
    let _ = write!(
        h,
        "<div class=kpi><div><b>{}</b>packets</div><div><b>{}</b>skipped</div><div><b>{}</b>connections</div>\
         <div><b>{}</b>TCP</div><div><b>{}</b>UDP</div><div><b>{}</b>ICMP</div><div><b>{}</b>peak in table</div>\
         <div><b>{}</b>evicted</div></div>",
        n(summary.packets.read),
        n(summary.packets.read - summary.packets.analyzed),
        n(c.total),
        n(by_proto("tcp")),
        n(by_proto("udp")),
        n(by_proto("icmp")),
        n(summary.flow_table.peak_flows),
        n(summary.flow_table.evicted)
    );
    h.push_str(
        "<h2>Top server ports by fan-in</h2><table><tr><th class=l>port</th><th>distinct clients</th>\
         <th>client sockets</th><th>connections</th><th>failed</th><th>peak concurrent</th></tr>",
    );
    for p in top {
        let _ = write!(
            h,
            "<tr><td class=l>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.port,
            p.proto,
            n(p.clients),
            n(p.client_sockets),
            n(p.connections),
            n(p.failed),
            n(p.peak_concurrent)
        );
    }
    h.push_str(
        "</table><h2>States</h2><table><tr><th class=l>conn_state</th><th>connections</th></tr>",
    );
    for (k, v) in &c.by_state {
        let _ = write!(h, "<tr><td class=l>{}</td><td>{}</td></tr>", esc(k), n(*v));
    }
    h.push_str("</table><table><tr><th class=l>close reason</th><th>connections</th></tr>");
    for (k, v) in &c.by_close_reason {
        let _ = write!(h, "<tr><td class=l>{}</td><td>{}</td></tr>", esc(k), n(*v));
    }
    h.push_str("</table><h2>Charts</h2>");
    for (path, title) in charts {
        let bytes = std::fs::read(path).map_err(|e| OutputError::new(path, e))?;
        let mut b64 = String::new();
        crate::base64::encode(&bytes, &mut b64);
        let _ = write!(
            h,
            "<figure><img alt=\"{0}\" src=\"data:image/png;base64,{b64}\"><figcaption>{0}</figcaption></figure>",
            esc(title)
        );
    }
    h.push_str("<h2>Tables</h2><ul>");
    for (file, what) in [
        ("conn.log", "Zeek-format connection log"),
        ("connections.csv", "every connection with lifecycle columns"),
        ("connections.parquet", "the same, typed"),
        ("ports.csv", "fan-in per server port"),
        ("endpoints.csv", "fan-in per server address and port"),
        (
            "clients.csv",
            "ephemeral-port use per client and server endpoint",
        ),
        (
            "timeline.csv",
            "connections, packets and bytes per time bin",
        ),
        ("summary.json", "what was read and skipped"),
    ] {
        let _ = write!(h, "<li><a href=\"{file}\">{file}</a> &ndash; {what}</li>");
    }
    h.push_str("</ul></body></html>\n");
    output::write_file(dir, "report.html", h.as_bytes())
}

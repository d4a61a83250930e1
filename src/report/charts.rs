//! The PNG charts, drawn with plotters and an embedded font (no system font
//! needed). Every chart aggregates or samples so it stays legible from ten
//! connections to ten million: top-N ports, binned time series, histograms,
//! a bounded sample of lifecycles and of ephemeral-port points.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use polars::prelude::*;

use crate::source::Nanos;

use super::build::{PortRow, ReportError};
use super::summary::ConnCounts;
use super::tables::{Conns, Row, column_of};
use super::text;
use super::timeline::Bins;

pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 700;
const FONT: &str = "sans-serif";
/// Addresses in row labels: fixed-width digits line up, and small
/// proportional text rendered with uneven gaps after some digits.
const MONO: &str = "monospace";
/// Lifecycle bars drawn at most (the longest, then an even sample).
const GANTT_ROWS: usize = 40;
const GANTT_LONGEST: usize = 12;
/// Client/server pairs in the ephemeral ports chart.
const EPHEMERAL_PAIRS: usize = 5;
/// Points per ephemeral-port chart at most.
const MAX_POINTS: usize = 20_000;

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Colours of close reasons, in `CloseReason::ALL` order.
fn reason_color(reason: &str) -> RGBColor {
    match reason {
        "fin" => RGBColor(44, 160, 44),
        "rst_orig" => RGBColor(214, 39, 40),
        "rst_resp" => RGBColor(255, 127, 14),
        "timeout" => RGBColor(127, 127, 127),
        "evicted" => RGBColor(148, 103, 189),
        _ => RGBColor(31, 119, 180),
    }
}

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled DejaVu font is valid; a failure would only mean no text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
        let _ =
            plotters::style::register_font(MONO, FontStyle::Normal, dejavu::sans_mono::regular());
    });
}

fn chart_err(path: &Path) -> impl Fn(String) -> ReportError + '_ {
    move |message| ReportError::Data {
        path: path.to_path_buf(),
        message: format!("drawing chart: {message}"),
    }
}

/// Draw into `dir/name` via a temporary file renamed when complete.
fn draw(
    dir: &Path,
    name: &str,
    f: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<PathBuf, ReportError> {
    register_fonts();
    let path = dir.join(name);
    let tmp = dir.join(format!(".{}.tmp.png", name.trim_end_matches(".png")));
    {
        let root = BitMapBackend::new(&tmp, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .map_err(chart_err(&path))?;
        f(&root).map_err(chart_err(&path))?;
        root.present()
            .map_err(|e| e.to_string())
            .map_err(chart_err(&path))?;
    }
    super::output::put_in_place(&tmp, &path)?;
    Ok(path)
}

/// 12 345 678 -> "12.3M".
pub fn si(v: f64) -> String {
    let a = v.abs();
    let (d, s) = if a >= 1e12 {
        (1e12, "T")
    } else if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / d;
    if s.is_empty() && a > 0.0 && a < 1.0 {
        // Small values (log axes): enough decimals to show the first digit.
        let digits = (-a.log10()).ceil().max(1.0) as usize;
        return format!("{v:.digits$}");
    }
    if s.is_empty() && x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.0}{s}")
    } else {
        format!("{x:.1}{s}")
    }
}

/// Write `labels[i]` left of row `i` of a chart whose rows are y in [i, i+1).
/// `root` must be the whole canvas: chart coordinates map to canvas pixels.
fn row_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    chart: &ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    labels: &[String],
    size: u32,
) -> Result<(), String> {
    let style =
        TextStyle::from((MONO, size).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Right,
            plotters::style::text_anchor::VPos::Center,
        ));
    let (x0, _) = chart.backend_coord(&(chart.x_range().start, 0.0));
    for (i, label) in labels.iter().enumerate() {
        let (_, y) = chart.backend_coord(&(0.0, i as f64 + 0.5));
        root.draw(&Text::new(label.clone(), (x0 - 6, y), style.clone()))
            .map_err(e2s)?;
    }
    Ok(())
}

/// Shorten a label to `max` characters, keeping both ends.
fn shorten(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    let half = (max - 1) / 2;
    let head: String = chars[..half].iter().collect();
    let tail: String = chars[chars.len() - (max - 1 - half)..].iter().collect();
    format!("{head}\u{2026}{tail}")
}

/// Seconds after `t0` as UTC wall-clock time.
fn clock(t0: Nanos, secs: f64) -> String {
    let (_, _, _, h, m, s) = text::civil(t0.saturating_add((secs * 1e9) as Nanos));
    format!("{h:02}:{m:02}:{s:02}")
}

fn e2s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Column as f64 values (nulls as NaN).
fn floats(df: &DataFrame, name: &str) -> Result<Vec<f64>, String> {
    let c = df
        .column(name)
        .map_err(e2s)?
        .cast(&DataType::Float64)
        .map_err(e2s)?;
    Ok(c.f64()
        .map_err(e2s)?
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect())
}

fn strings(df: &DataFrame, name: &str) -> Result<Vec<String>, String> {
    let c = df
        .column(name)
        .map_err(e2s)?
        .cast(&DataType::String)
        .map_err(e2s)?;
    Ok(c.str()
        .map_err(e2s)?
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect())
}

/// Everything the charts draw from.
pub struct ChartData<'a> {
    pub dir: &'a Path,
    pub conns: LazyFrame,
    pub ports: &'a DataFrame,
    pub clients: &'a DataFrame,
    pub timeline: &'a DataFrame,
    pub top: &'a [PortRow],
    pub bins: Bins,
    /// Connections by state and close reason.
    pub counts: &'a ConnCounts,
    /// The tables' rows.
    pub rows: &'a Conns,
}

/// Draw every chart; returns (file, title) pairs in display order.
pub fn draw_all(d: &ChartData<'_>) -> Result<Vec<(PathBuf, &'static str)>, ReportError> {
    type Draw = fn(&ChartData<'_>) -> Result<PathBuf, ReportError>;
    let charts: [(Draw, &'static str); 7] = [
        (fanin, "Fan-in: top server ports by distinct clients"),
        (concurrency, "Concurrent connections per server port"),
        (lifecycles, "Connection lifecycles (sample)"),
        (states, "Connections by state and close reason"),
        (durations, "Durations and handshake round trips"),
        (ephemeral, "Ephemeral ports of the busiest clients"),
        (throughput, "Throughput"),
    ];
    // Two threads, the slowest charts (lifecycles, ephemeral ports) apart.
    const SECOND: [usize; 3] = [1, 4, 5];
    let (first, second) = std::thread::scope(|scope| {
        let draw = move |pick: fn(&usize) -> bool| {
            (0..charts.len())
                .filter(pick)
                .map(|i| (i, charts[i].0(d)))
                .collect::<Vec<_>>()
        };
        let second = scope.spawn(move || draw(|i| SECOND.contains(i)));
        let first = draw(|i| !SECOND.contains(i));
        (first, second.join())
    });
    let second = second.map_err(|_| ReportError::Data {
        path: d.dir.to_path_buf(),
        message: "internal error: the chart thread stopped unexpectedly".into(),
    })?;
    let mut drawn: Vec<_> = first.into_iter().chain(second).collect();
    drawn.sort_by_key(|(i, _)| *i);
    drawn
        .into_iter()
        .map(|(i, path)| path.map(|p| (p, charts[i].1)))
        .collect()
}

fn fanin(d: &ChartData<'_>) -> Result<PathBuf, ReportError> {
    draw(d.dir, "fanin.png", |root| {
        let rows = d.top;
        let max = rows
            .iter()
            .map(|r| r.clients.max(r.client_sockets).max(r.connections))
            .max()
            .unwrap_or(1)
            .max(1);
        let n = rows.len().max(1);
        let mut chart = ChartBuilder::on(root)
            .caption("Fan-in: top server ports by distinct clients", (FONT, 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..n as f64, 0f64..max as f64 * 1.1)
            .map_err(e2s)?;
        let labels: Vec<String> = rows
            .iter()
            .map(|r| format!("{}/{}", r.port, r.proto))
            .collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.26 && i < labels.len() {
                    labels[i].clone()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| si(*y))
            .x_desc("server port (responder)")
            .y_desc("count")
            .label_style((FONT, 15))
            .draw()
            .map_err(e2s)?;
        type Value = fn(&PortRow) -> u64;
        let series: [(&str, Value); 3] = [
            ("distinct clients", |r| r.clients),
            ("client sockets (addr:port)", |r| r.client_sockets),
            ("connections", |r| r.connections),
        ];
        for (s, (label, value)) in series.iter().enumerate() {
            let c = color(s);
            chart
                .draw_series(rows.iter().enumerate().map(|(i, r)| {
                    let x0 = i as f64 + 0.12 + s as f64 * 0.26;
                    Rectangle::new([(x0, 0.0), (x0 + 0.24, value(r) as f64)], c.filled())
                }))
                .map_err(e2s)?
                .label(*label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 16))
            .draw()
            .map_err(e2s)
    })
}

fn concurrency(d: &ChartData<'_>) -> Result<PathBuf, ReportError> {
    draw(d.dir, "concurrency.png", |root| {
        let tl = d.timeline;
        let w = d.bins.width as f64 / 1e9;
        let xs: Vec<f64> = (0..tl.height()).map(|i| i as f64 * w).collect();
        let series: Vec<(String, Vec<f64>, &PortRow)> = d
            .top
            .iter()
            .filter_map(|r| {
                let name = format!("open_{}_{}", r.proto, r.port);
                floats(tl, &name)
                    .ok()
                    .map(|v| (format!("{}/{}", r.port, r.proto), v, r))
            })
            .collect();
        let ymax = series
            .iter()
            .map(|(_, _, r)| r.peak_concurrent as f64)
            .fold(1.0, f64::max);
        let xmax = (xs.last().copied().unwrap_or(0.0) + w).max(w);
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Concurrent connections per server port (peaks marked)",
                (FONT, 26),
            )
            .margin(20)
            .margin_right(40)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax * 1.15)
            .map_err(e2s)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| clock(d.bins.t0, *x))
            .y_label_formatter(&|y| si(*y))
            .x_desc(format!(
                "time (UTC), one point per {}",
                fmt_width(d.bins.width)
            ))
            .y_desc("open sockets")
            .label_style((FONT, 15))
            .draw()
            .map_err(e2s)?;
        let peak_at: Vec<f64> = floats(d.ports, "peak_at").unwrap_or_default();
        let ports_proto = strings(d.ports, "proto").unwrap_or_default();
        let ports_port = strings(d.ports, "port").unwrap_or_default();
        for (i, (label, ys, row)) in series.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(
                    xs.iter().copied().zip(ys.iter().copied()),
                    c.stroke_width(2),
                ))
                .map_err(e2s)?
                .label(format!("{label} (peak {})", row.peak_concurrent))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
            let at = (0..ports_proto.len())
                .find(|&j| ports_proto[j] == row.proto && ports_port[j] == row.port.to_string())
                .and_then(|j| peak_at.get(j).copied());
            if let Some(at) = at.filter(|v| v.is_finite()) {
                // peak_at is in ns since the epoch.
                let x = (at - d.bins.t0 as f64) / 1e9;
                let y = row.peak_concurrent as f64;
                chart
                    .draw_series([Circle::new((x, y), 6, c.filled())])
                    .map_err(e2s)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(e2s)
    })
}

fn fmt_width(ns: Nanos) -> String {
    if ns >= 3_600_000_000_000 && ns % 3_600_000_000_000 == 0 {
        format!("{} h", ns / 3_600_000_000_000)
    } else if ns >= 60_000_000_000 && ns % 60_000_000_000 == 0 {
        format!("{} min", ns / 60_000_000_000)
    } else if ns >= 1_000_000_000 {
        format!("{} s", ns as f64 / 1e9)
    } else {
        format!("{} ms", ns as f64 / 1e6)
    }
}

/// The `n` items with the least keys offered so far, least first: a
/// bounded pick over rows that are never all held or sorted. Keys that
/// end in something unique to the item and independent of arrival order
/// (a row of a sorted table, a connection's [`intrinsic`] key) make the
/// pick the same every run.
struct Least<K, T> {
    n: usize,
    kept: Vec<(K, T)>,
}

impl<K: Ord, T> Least<K, T> {
    fn new(n: usize) -> Least<K, T> {
        Least {
            n,
            kept: Vec::with_capacity(n + 1),
        }
    }

    fn offer(&mut self, key: K, item: T) {
        if self.kept.len() < self.n || self.kept.last().is_some_and(|l| key < l.0) {
            let at = self.kept.partition_point(|l| l.0 < key);
            self.kept.insert(at, (key, item));
            self.kept.truncate(self.n);
        }
    }
}

/// A connection's place in an order that does not depend on the order the
/// records arrived in (shards interleave them differently at each `-j`):
/// start time, then the endpoints by address rank and port, then the
/// protocol.
fn intrinsic(conns: &Conns, r: &Row) -> (Nanos, u64, u64) {
    (
        r.start,
        conns.rank(r.orig) << 32 | conns.rank(r.resp),
        u64::from(r.orig_port) << 24 | u64::from(r.resp_port) << 8 | r.proto as u64,
    )
}

/// A well-spread function of `key`: the least values pick a uniform sample.
fn scatter((start, addrs, ports): (Nanos, u64, u64)) -> u64 {
    let mut h = start as u64;
    for w in [addrs, ports, 0] {
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    h
}

/// The connections shown in the lifecycle chart: the longest, then a
/// uniform sample of the rest. Both are picked by the connections'
/// intrinsic order ([`intrinsic`]), so the same rows are drawn at every
/// thread count, in bounded memory. Chosen and named from the tables' rows;
/// only the handshake and close times come from connections.parquet, for
/// the chosen rows (decoding its text columns for every row took most of
/// the chart's time).
fn gantt_rows(d: &ChartData<'_>) -> PolarsResult<DataFrame> {
    let mut sampled = Least::new(GANTT_ROWS - GANTT_LONGEST);
    let mut longest = Least::new(GANTT_LONGEST);
    d.rows.scan_rows(|i, r| {
        let key = intrinsic(d.rows, r);
        sampled.offer((scatter(key), key), (i, *r));
        longest.offer((Reverse(r.end.wrapping_sub(r.start)), key), (i, *r));
    })?;
    // Drawn in intrinsic order (by start time); a connection both long and
    // sampled once.
    let mut chosen: Vec<_> = (sampled.kept.into_iter().map(|((_, k), v)| (k, v)))
        .chain(longest.kept.into_iter().map(|((_, k), v)| (k, v)))
        .collect();
    chosen.sort_unstable_by_key(|(k, _)| *k);
    chosen.dedup_by_key(|(k, _)| *k);
    // (position, drawing order, row), by position: connections.parquet
    // gives the chosen rows in that order.
    let mut chosen: Vec<(u64, u32, Row)> = (chosen.into_iter().enumerate())
        .map(|(order, (_, (i, r)))| (i, order as u32, r))
        .collect();
    chosen.sort_unstable_by_key(|c| c.0);
    let picked: Vec<u64> = chosen.iter().map(|c| c.0).collect();
    let order: Vec<u32> = chosen.iter().map(|c| c.1).collect();
    let rows: Vec<Row> = chosen.into_iter().map(|c| c.2).collect();
    let row = || col("row").cast(DataType::UInt64);
    let wanted = row().is_in(
        lit(Series::new("picked".into(), &picked)).implode(true),
        false,
    );
    let time = |c: &str, alias: &str| col(c).cast(DataType::Int64).alias(alias);
    let times = d
        .conns
        .clone()
        .with_row_index("row", None)
        .filter(wanted)
        .select([
            time("first_syn_ts", "syn"),
            time("established_ts", "est"),
            time("syn_ack_ts", "synack"),
            time("first_fin_ts", "fin"),
            time("first_rst_ts", "rst"),
        ])
        .collect()?;
    polars_ensure!(
        times.height() == rows.len(),
        ComputeError: "connections.parquet has {} of the {} rows the tables have", times.height(), rows.len()
    );
    let named = |id: u32| {
        let mut buf = Vec::new();
        text::addr(&mut buf, d.rows.addr(id));
        String::from_utf8_lossy(&buf).into_owned()
    };
    let mut columns = times.columns().to_vec();
    columns.extend([
        column_of("start", &rows, |r| r.start),
        column_of("end", &rows, |r| r.end),
        column_of("orig_addr", &rows, |r| named(r.orig)),
        column_of("orig_port", &rows, |r| r.orig_port),
        column_of("resp_addr", &rows, |r| named(r.resp)),
        column_of("resp_port", &rows, |r| r.resp_port),
        column_of("close_reason", &rows, |r| r.close_reason.name()),
        Column::new("order".into(), order),
    ]);
    let df = DataFrame::new(rows.len(), columns)?;
    df.sort(["order"], SortMultipleOptions::default())
}

fn lifecycles(d: &ChartData<'_>) -> Result<PathBuf, ReportError> {
    let rows = gantt_rows(d).map_err(|e| ReportError::Data {
        path: d.dir.join("connections.parquet"),
        message: e.to_string(),
    })?;
    draw(d.dir, "lifecycles.png", |root| {
        let n = rows.height();
        let get = |c: &str| floats(&rows, c);
        let (start, syn, est, synack, fin, rst, end) = (
            get("start")?,
            get("syn")?,
            get("est")?,
            get("synack")?,
            get("fin")?,
            get("rst")?,
            get("end")?,
        );
        let reason = strings(&rows, "close_reason")?;
        let label: Vec<String> = {
            let (oa, op, ra, rp) = (
                strings(&rows, "orig_addr")?,
                strings(&rows, "orig_port")?,
                strings(&rows, "resp_addr")?,
                strings(&rows, "resp_port")?,
            );
            (0..n)
                .map(|i| shorten(&format!("{}:{} > {}:{}", oa[i], op[i], ra[i], rp[i]), 46))
                .collect()
        };
        let (plot, legend) = root.split_horizontally(WIDTH - 200);
        let t0 = start.iter().copied().fold(f64::INFINITY, f64::min);
        let t1 = end.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (t0, span) = if n == 0 {
            (0.0, 1.0)
        } else {
            (t0, ((t1 - t0) / 1e9).max(1e-3))
        };
        let rel = |v: f64| (v - t0) / 1e9;
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                format!("Connection lifecycles ({n} shown: the longest, then a sample)"),
                (FONT, 24),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(290)
            .build_cartesian_2d(0f64..span * 1.02, 0f64..n.max(1) as f64)
            .map_err(e2s)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_label_formatter(&|x| clock(t0 as Nanos, *x))
            .x_desc("time (UTC)")
            .label_style((FONT, 15))
            .draw()
            .map_err(e2s)?;
        row_labels(&plot, &chart, &label, 12)?;
        for i in 0..n {
            let c = reason_color(&reason[i]);
            let y0 = i as f64 + 0.15;
            let y1 = i as f64 + 0.85;
            let s = rel(start[i]);
            // At least ~3 pixels, so a short connection shows as a tick.
            let e = rel(end[i]).max(s + span / 250.0);
            // Handshake: first SYN until the handshake completed.
            let hs_end = [est[i], synack[i]]
                .into_iter()
                .find(|v| v.is_finite())
                .map(rel);
            let hs_start = if syn[i].is_finite() { rel(syn[i]) } else { s };
            let close = [fin[i], rst[i]]
                .into_iter()
                .filter(|v| v.is_finite())
                .fold(f64::NAN, f64::min);
            let est_start = hs_end.unwrap_or(s).min(e);
            let est_end = if close.is_finite() {
                rel(close).clamp(est_start, e)
            } else {
                e
            };
            let mut bars = vec![(est_start, est_end, c.filled())];
            if let Some(h) = hs_end {
                bars.push((
                    hs_start,
                    h.max(hs_start + span / 500.0),
                    c.mix(0.35).filled(),
                ));
            }
            if est_end < e {
                bars.push((est_end, e, c.mix(0.6).filled()));
            }
            chart
                .draw_series(
                    bars.into_iter()
                        .map(|(a, b, st)| Rectangle::new([(a, y0), (b, y1)], st)),
                )
                .map_err(e2s)?;
        }
        // The legend: colours are how a connection ended, shades its phases.
        let mut y = 80;
        let font = (FONT, 14).into_font();
        legend
            .draw(&Text::new("how it ended", (10, y), font.clone()))
            .map_err(e2s)?;
        for r in crate::flow::CloseReason::ALL {
            y += 24;
            let c = reason_color(r.name());
            legend
                .draw(&Rectangle::new([(10, y), (26, y + 14)], c.filled()))
                .map_err(e2s)?;
            legend
                .draw(&Text::new(r.name(), (34, y), font.clone()))
                .map_err(e2s)?;
        }
        y += 44;
        legend
            .draw(&Text::new("phase", (10, y), font.clone()))
            .map_err(e2s)?;
        for (name, shade) in [("handshake", 0.35), ("established", 1.0), ("closing", 0.6)] {
            y += 24;
            legend
                .draw(&Rectangle::new(
                    [(10, y), (26, y + 14)],
                    RGBColor(31, 119, 180).mix(shade).filled(),
                ))
                .map_err(e2s)?;
            legend
                .draw(&Text::new(name, (34, y), font.clone()))
                .map_err(e2s)?;
        }
        Ok(())
    })
}

/// Counts largest first, equal counts in name order.
fn ranked(counts: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> = counts.iter().map(|(k, n)| (k.clone(), *n)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

fn states(d: &ChartData<'_>) -> Result<PathBuf, ReportError> {
    // The run's tally (summary.json), not another pass over the file.
    let by_state = ranked(&d.counts.by_state);
    let by_reason = ranked(&d.counts.by_close_reason);
    draw(d.dir, "states.png", |canvas| {
        let root = canvas
            .titled("Connections by state and close reason", (FONT, 26))
            .map_err(e2s)?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        for (area, title, rows, reason) in [
            (&left, "conn_state (Zeek)", &by_state, false),
            (&right, "close reason", &by_reason, true),
        ] {
            let n = rows.len().max(1);
            let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1) as f64;
            let mut chart = ChartBuilder::on(area)
                .caption(title, (FONT, 20))
                .margin(15)
                .x_label_area_size(40)
                .y_label_area_size(100)
                .build_cartesian_2d(0f64..max * 1.15, 0f64..n as f64)
                .map_err(e2s)?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(0)
                .x_label_formatter(&|x| si(*x))
                .x_desc("connections")
                .label_style((FONT, 15))
                .draw()
                .map_err(e2s)?;
            let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
            row_labels(canvas, &chart, &names, 15)?;
            chart
                .draw_series(rows.iter().enumerate().map(|(i, (k, v))| {
                    let c = if reason { reason_color(k) } else { color(i) };
                    Rectangle::new(
                        [(0.0, i as f64 + 0.15), (*v as f64, i as f64 + 0.85)],
                        c.filled(),
                    )
                }))
                .map_err(e2s)?;
            chart
                .draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
                    Text::new(si(*v as f64), (*v as f64, i as f64 + 0.35), (FONT, 14))
                }))
                .map_err(e2s)?;
        }
        Ok(())
    })
}

/// A histogram's bin edges (one more than the bins) and counts.
type Histogram = (Vec<f64>, Vec<u64>);

/// Histograms on log axes of `N` values per item (`None`: no value), each
/// as (the bins' edges, their counts), with `per_decade` bins per decade
/// from its smallest positive value to its largest. Two passes over the
/// items (the ranges, then the counts): a million connections' values are
/// never held at once.
fn log_histograms<const N: usize, E>(
    each: impl Fn(&mut dyn FnMut([Option<f64>; N])) -> Result<(), E>,
    per_decade: f64,
) -> Result<[Histogram; N], E> {
    let usable = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0);
    let mut range = [(f64::INFINITY, 0.0f64); N];
    each(&mut |values| {
        for ((min, max), v) in range.iter_mut().zip(values) {
            if let Some(v) = usable(v) {
                *min = min.min(v);
                *max = max.max(v);
            }
        }
    })?;
    let mut bins = range.map(|(min, max)| {
        if min == f64::INFINITY {
            return (0.0, Vec::new());
        }
        let lo = min.log10().floor();
        let hi = max.log10().ceil().max(lo + 1.0);
        let n = ((hi - lo) * per_decade).ceil() as usize;
        (lo, vec![0u64; n.max(1)])
    });
    each(&mut |values| {
        for ((lo, counts), v) in bins.iter_mut().zip(values) {
            if let Some(v) = usable(v) {
                let i = (((v.log10() - *lo) * per_decade) as usize).min(counts.len() - 1);
                counts[i] += 1;
            }
        }
    })?;
    Ok(bins.map(|(lo, counts)| {
        let edges = if counts.is_empty() {
            Vec::new()
        } else {
            (0..=counts.len())
                .map(|i| 10f64.powf(lo + i as f64 / per_decade))
                .collect()
        };
        (edges, counts)
    }))
}

fn durations(d: &ChartData<'_>) -> Result<PathBuf, ReportError> {
    // From the tables' rows, in the units and values connections.parquet
    // gives (seconds, milliseconds).
    let [dur, rtt] = log_histograms(
        |f| {
            d.rows.scan_rows(|_, r| {
                f([
                    Some(r.duration as f64 / 1e9),
                    r.handshake_rtt.map(|v| v as f64 / 1e6),
                ])
            })
        },
        5.0,
    )
    .map_err(|e| ReportError::Data {
        path: d.dir.join("connections.parquet"),
        message: e.to_string(),
    })?;
    draw(d.dir, "durations.png", |root| {
        let root = root
            .titled("Durations and handshake round trips (log axes)", (FONT, 26))
            .map_err(e2s)?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        for (area, (edges, counts), title, unit, c) in [
            (&left, &dur, "connection duration", "seconds", color(0)),
            (
                &right,
                &rtt,
                "handshake RTT (SYN to completing ACK)",
                "milliseconds",
                color(1),
            ),
        ] {
            let (x0, x1) = if edges.is_empty() {
                (0.001, 1.0)
            } else {
                (edges[0], edges[edges.len() - 1])
            };
            let ymax = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
            let mut chart = ChartBuilder::on(area)
                .caption(title, (FONT, 18))
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(70)
                .build_cartesian_2d((x0..x1).log_scale(), (0.8f64..ymax * 1.5).log_scale())
                .map_err(e2s)?;
            chart
                .configure_mesh()
                .x_label_formatter(&|x| si(*x))
                .y_label_formatter(&|y| si(*y))
                .x_desc(unit)
                .y_desc("connections")
                .label_style((FONT, 14))
                .draw()
                .map_err(e2s)?;
            chart
                .draw_series(
                    counts
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| **n > 0)
                        .map(|(i, n)| {
                            Rectangle::new([(edges[i], 0.8), (edges[i + 1], *n as f64)], c.filled())
                        }),
                )
                .map_err(e2s)?;
            if edges.is_empty() {
                chart
                    .draw_series([Text::new("no data", (x0 * 2.0, 1.0), (FONT, 18))])
                    .map_err(e2s)?;
            }
        }
        Ok(())
    })
}

fn ephemeral(d: &ChartData<'_>) -> Result<PathBuf, ReportError> {
    let clients_err = |e: PolarsError| ReportError::Data {
        path: d.dir.join("clients.parquet"),
        message: e.to_string(),
    };
    // The busiest client -> endpoint pairs by connections, ties in table
    // order: picked in one pass, as a sort of the whole named table took
    // 15-40 ms on bench_1g.
    let connections: Vec<u64> = d
        .clients
        .column("connections")
        .and_then(|c| c.cast(&DataType::UInt64))
        .and_then(|c| Ok(c.u64()?.into_no_null_iter().collect()))
        .map_err(clients_err)?;
    let mut busiest = Least::new(EPHEMERAL_PAIRS);
    for (i, n) in connections.iter().enumerate() {
        busiest.offer((Reverse(*n), i as IdxSize), ());
    }
    let busiest = busiest.kept.iter().map(|((_, i), ())| *i).collect();
    let pairs = d
        .clients
        .take(&IdxCa::from_vec("rows".into(), busiest))
        .map_err(clients_err)?;
    let column = |c: &str| {
        strings(&pairs, c).map_err(|message| ReportError::Data {
            path: d.dir.join("clients.parquet"),
            message,
        })
    };
    let (proto, client, server, port) = (
        column("proto")?,
        column("orig_addr")?,
        column("resp_addr")?,
        column("resp_port")?,
    );
    let picked: Vec<(&str, &str, &str, u16)> = (0..pairs.height())
        .map(|i| {
            let port = port.get(i).and_then(|p| p.parse().ok()).unwrap_or(0);
            (
                proto[i].as_str(),
                client[i].as_str(),
                server[i].as_str(),
                port,
            )
        })
        .collect();
    // Their connections from the tables' rows, in one pass: five filtered
    // passes over connections.parquet took 54-91 ms.
    let ports = d
        .rows
        .client_ports(&picked)
        .map_err(|e| ReportError::Data {
            path: d.dir.join("connections.parquet"),
            message: e.to_string(),
        })?;
    let sets: Vec<(String, Vec<(Nanos, u16)>)> = picked
        .iter()
        .zip(ports)
        .map(|((proto, client, server, port), pts)| {
            (format!("{client} > {server}:{port}/{proto}"), pts)
        })
        .collect();
    draw(d.dir, "ephemeral.png", |root| {
        let t0 = d.bins.t0;
        let mut xmax: f64 = 1.0;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut data = Vec::new();
        for (label, used) in &sets {
            let t: Vec<f64> = used.iter().map(|u| u.0 as f64).collect();
            let p: Vec<f64> = used.iter().map(|u| f64::from(u.1)).collect();
            let step = (t.len() / MAX_POINTS).max(1);
            let pts: Vec<(f64, f64)> = t
                .iter()
                .zip(&p)
                .step_by(step)
                .map(|(t, p)| ((t - t0 as f64) / 1e9, *p))
                .collect();
            xmax = pts.iter().map(|p| p.0).fold(xmax, f64::max);
            lo = p.iter().copied().fold(lo, f64::min);
            hi = p.iter().copied().fold(hi, f64::max);
            data.push((label.clone(), pts, t.len()));
        }
        // The ports actually used, with a margin: reuse shows as repeats
        // only when the axis is not the whole 0-65535.
        let (lo, hi) = if lo <= hi {
            (lo, hi)
        } else {
            (32768.0, 60999.0)
        };
        let pad = ((hi - lo) * 0.05).max(10.0);
        let (lo, hi) = ((lo - pad).max(0.0), (hi + pad).min(65536.0));
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Ephemeral ports used by the busiest clients (repeats = port reuse)",
                (FONT, 24),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..xmax * 1.02, lo..hi)
            .map_err(e2s)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| clock(t0, *x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_desc("time (UTC)")
            .y_desc("client (source) port")
            .label_style((FONT, 15))
            .draw()
            .map_err(e2s)?;
        // The usual Linux ephemeral range (the part in view), for reference.
        chart
            .draw_series([Rectangle::new(
                [
                    (0.0, 32768f64.clamp(lo, hi)),
                    (xmax * 1.02, 60999f64.clamp(lo, hi)),
                ],
                RGBColor(230, 230, 230).filled(),
            )])
            .map_err(e2s)?
            .label("ephemeral range 32768-60999")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 6), (x + 14, y + 6)],
                    RGBColor(220, 220, 220).filled(),
                )
            });
        for (i, (label, pts, total)) in data.into_iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 2, c.filled())))
                .map_err(e2s)?
                .label(format!("{label} ({total} conns)"))
                .legend(move |(x, y)| Circle::new((x + 7, y), 4, c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((MONO, 13))
            .draw()
            .map_err(e2s)
    })
}

fn throughput(d: &ChartData<'_>) -> Result<PathBuf, ReportError> {
    draw(d.dir, "throughput.png", |root| {
        let w = d.bins.width as f64 / 1e9;
        let up = floats(d.timeline, "ip_bytes_to_server")?;
        let down = floats(d.timeline, "ip_bytes_to_client")?;
        let xs: Vec<f64> = (0..up.len()).map(|i| i as f64 * w).collect();
        let rate =
            |v: &[f64]| -> Vec<(f64, f64)> { xs.iter().zip(v).map(|(x, b)| (*x, b / w)).collect() };
        let (up, down) = (rate(&up), rate(&down));
        let ymax = up.iter().chain(&down).map(|p| p.1).fold(1.0, f64::max);
        let xmax = (xs.last().copied().unwrap_or(0.0) + w).max(w);
        let mut chart = ChartBuilder::on(root)
            .caption("Throughput (IP bytes per second)", (FONT, 26))
            .margin(20)
            .margin_right(40)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax * 1.1)
            .map_err(e2s)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| clock(d.bins.t0, *x))
            .y_label_formatter(&|y| format!("{}B/s", si(*y)))
            .x_desc(format!(
                "time (UTC), averaged over {}",
                fmt_width(d.bins.width)
            ))
            .y_desc("bytes per second")
            .label_style((FONT, 15))
            .draw()
            .map_err(e2s)?;
        for (i, (label, pts)) in [("client to server", up), ("server to client", down)]
            .into_iter()
            .enumerate()
        {
            let c = color(i);
            chart
                .draw_series(
                    AreaSeries::new(pts.iter().copied(), 0.0, c.mix(0.25))
                        .border_style(c.stroke_width(2)),
                )
                .map_err(e2s)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 15))
            .draw()
            .map_err(e2s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_keeps_the_least_keys_first_come_on_ties() {
        let mut least = Least::new(3);
        for (i, v) in [5, 1, 4, 1, 9, 0, 4].iter().enumerate() {
            least.offer((*v, i), ());
        }
        let keys: Vec<(i32, usize)> = least.kept.iter().map(|(k, ())| *k).collect();
        assert_eq!(keys, [(0, 5), (1, 1), (1, 3)]);
    }

    #[test]
    fn equal_counts_come_in_name_order() {
        let mut counts = BTreeMap::new();
        for s in ["S0", "SF", "REJ", "SF", "OTH", "S0", "RSTO", "SF"] {
            *counts.entry(s.to_string()).or_insert(0) += 1;
        }
        let rows = ranked(&counts);
        let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(names, ["SF", "S0", "OTH", "REJ", "RSTO"]);
    }

    #[test]
    fn si_units() {
        assert_eq!(si(0.0), "0");
        assert_eq!(si(999.0), "999");
        assert_eq!(si(1_234.0), "1.2k");
        assert_eq!(si(12_345_678.0), "12.3M");
        assert_eq!(si(0.5), "0.5");
        assert_eq!(si(0.001), "0.001");
        assert_eq!(si(60000.0), "60.0k");
    }

    #[test]
    fn log_histogram_covers_every_value() {
        let values = [0.001, 0.01, 0.5, 2.0, 2.0, 300.0, 0.0, -1.0, f64::NAN];
        let [(edges, counts)] = log_histograms(
            |f| {
                values.iter().for_each(|v| f([Some(*v)]));
                Ok::<_, ()>(())
            },
            5.0,
        )
        .unwrap();
        assert_eq!(counts.iter().sum::<u64>(), 6);
        assert_eq!(edges.len(), counts.len() + 1);
        assert!(edges[0] <= 0.001 && *edges.last().unwrap() >= 300.0);
    }
}

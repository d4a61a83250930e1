//! Build every report of an output directory from connections.parquet,
//! traffic.parquet and summary.json: the tables (CSV and Parquet), the charts
//! and report.html. `sockscope analyze` calls this after writing the records;
//! `sockscope report DIR` calls it alone.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::source::Nanos;

use super::output::{self, LineFile, Mode, OutputError};
use super::summary::Summary;
use super::tables::{self, Conns, Servers};
use super::text;
use super::timeline::{self, Bins};
use super::traffic::Traffic;
use super::{PendingFiles, charts, html};

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct ReportOptions {
    /// Server ports shown in charts and timeline series.
    pub top: usize,
    /// Timeline bin width; automatic (100 to about 1000 bins) if `None`.
    pub bin: Option<Nanos>,
    pub charts: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            top: 10,
            bin: None,
            charts: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: {message}", path.display())]
    Data { path: PathBuf, message: String },
    #[error(transparent)]
    Output(#[from] OutputError),
}

fn data_err(path: &Path) -> impl Fn(PolarsError) -> ReportError + '_ {
    move |e| ReportError::Data {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// One row of the terminal's top-ports table.
#[derive(Clone, Debug, PartialEq)]
pub struct PortRow {
    pub proto: String,
    pub port: u16,
    pub clients: u64,
    pub client_sockets: u64,
    pub connections: u64,
    pub failed: u64,
    pub peak_concurrent: u64,
}

/// What an analysis hands the reports in memory, so that they do not read
/// back summary.json and traffic.parquet, which are still being written.
pub struct Analysed {
    pub summary: Summary,
    pub traffic: Traffic,
    /// The tables' rows, if kept (else read from connections.parquet).
    pub conns: Option<Conns>,
    /// The record files, still being finished.
    pub files: PendingFiles,
}

/// What the reports found, for the terminal summary.
#[derive(Clone, Debug, Default)]
pub struct ReportOutcome {
    pub top_ports: Vec<PortRow>,
    pub files: Vec<PathBuf>,
    /// What the reports did other than asked (a `--bin` widened).
    pub warnings: Vec<String>,
}

pub fn read_summary(dir: &Path) -> Result<Summary, ReportError> {
    let path = dir.join("summary.json");
    let bytes = std::fs::read(&path).map_err(|e| ReportError::Data {
        path: path.clone(),
        message: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ReportError::Data {
        path,
        message: format!("not a sockscope summary: {e}"),
    })
}

/// Make a computed table presentable: timestamps become UTC datetimes
/// (expressions drop the zone) and floats are rounded to microsecond-ish
/// precision so the CSV reads cleanly.
fn tidy(df: DataFrame) -> PolarsResult<DataFrame> {
    let mut columns = Vec::with_capacity(df.width());
    for c in df.columns() {
        let c = match c.dtype() {
            DataType::Datetime(tu, _) => {
                let ns = c.cast(&DataType::Int64)?;
                let ns = ns.i64()?.clone();
                let ns = if *tu == TimeUnit::Nanoseconds {
                    ns
                } else {
                    ns * 1000
                };
                ns.into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
                    .into_column()
            }
            DataType::Float64 => {
                let rounded: Float64Chunked = c.f64()?.apply_values(|v| (v * 1e6).round() / 1e6);
                rounded.with_name(c.name().clone()).into_column()
            }
            _ => c.clone(),
        };
        columns.push(c);
    }
    DataFrame::new(df.height(), columns)
}

fn write_table(
    dir: &Path,
    conns: &Conns,
    stem: &str,
    df: DataFrame,
    files: &mut Vec<PathBuf>,
) -> Result<DataFrame, ReportError> {
    let csv = format!("{stem}.csv");
    let df = conns
        .names(df)
        .and_then(tidy)
        .map_err(data_err(&dir.join(&csv)))?;
    let parquet = format!("{stem}.parquet");
    // The two files at once: the clients table, last to finish, is on its
    // own by then and the other core is free.
    let (written, csv_file) = std::thread::scope(|scope| {
        let parquet_done = scope.spawn(|| super::frame::write_parquet(dir, &parquet, &df));
        let csv_file = write_csv(dir, &csv, &df);
        (parquet_done.join(), csv_file)
    });
    files.push(csv_file?);
    written.unwrap_or_else(|_| {
        Err(OutputError::new(
            &dir.join(&parquet),
            std::io::Error::other("internal error: the Parquet writer stopped unexpectedly"),
        ))
    })?;
    files.push(dir.join(parquet));
    Ok(df)
}

/// A table as CSV, formatted as polars' writer formats it (quoting only
/// where needed, shortest round-trip floats, microsecond UTC times), a line
/// at a time: polars' writer took 20–35 ms for the clients table's 75 k
/// rows, the longest step of the run's last table.
fn write_csv(dir: &Path, name: &str, df: &DataFrame) -> Result<PathBuf, ReportError> {
    let mut file = LineFile::with_mode(dir, name, Mode::Atomic)?;
    let typed = df
        .columns()
        .iter()
        .map(typed)
        .collect::<PolarsResult<Vec<_>>>()
        .map_err(data_err(&dir.join(name)))?;
    let cells = typed
        .iter()
        .map(|(c, form)| Cells::of(c, *form))
        .collect::<PolarsResult<Vec<_>>>()
        .map_err(data_err(&dir.join(name)))?;
    let header = file.line();
    for (j, n) in df.get_column_names().iter().enumerate() {
        if j > 0 {
            header.push(b',');
        }
        csv_field(header, n);
    }
    header.push(b'\n');
    file.end_line()?;
    let mut float = zmij::Buffer::new();
    for row in 0..df.height() {
        let line = file.line();
        for (j, c) in cells.iter().enumerate() {
            if j > 0 {
                line.push(b',');
            }
            c.write(row, line, &mut float);
        }
        line.push(b'\n');
        file.end_line()?;
    }
    Ok(file.commit()?)
}

/// How a column is written: the type it is cast to first.
#[derive(Clone, Copy)]
enum Form {
    Text,
    Unsigned,
    Signed,
    Float,
    /// Nanoseconds since the epoch, UTC (see [`tidy`]).
    Time,
}

/// A column cast to the type its [`Form`] writes, in one chunk.
fn typed(c: &Column) -> PolarsResult<(Column, Form)> {
    let (dtype, form) = match c.dtype() {
        DataType::String => (DataType::String, Form::Text),
        DataType::Datetime(TimeUnit::Nanoseconds, Some(tz)) if *tz == TimeZone::UTC => {
            (DataType::Int64, Form::Time)
        }
        d if d.is_unsigned_integer() => (DataType::UInt64, Form::Unsigned),
        d if d.is_signed_integer() => (DataType::Int64, Form::Signed),
        d if d.is_float() => (DataType::Float64, Form::Float),
        d => polars_bail!(ComputeError: "no CSV form for column {} of type {d}", c.name()),
    };
    Ok((c.cast(&dtype)?.rechunk(), form))
}

/// One column's cells (a null is an empty field), read by row from the
/// column's one chunk: polars' boxed per-cell iterators took a third of
/// the clients table's CSV time.
enum Cells<'a> {
    Text(&'a <StringType as PolarsDataType>::Array),
    Unsigned(&'a <UInt64Type as PolarsDataType>::Array),
    Signed(&'a <Int64Type as PolarsDataType>::Array),
    Float(&'a <Float64Type as PolarsDataType>::Array),
    Time(&'a <Int64Type as PolarsDataType>::Array),
}

impl<'a> Cells<'a> {
    fn of(c: &'a Column, form: Form) -> PolarsResult<Cells<'a>> {
        /// The one chunk [`typed`] left.
        fn chunk<T: PolarsDataType>(ca: &ChunkedArray<T>) -> PolarsResult<&T::Array> {
            match ca.chunks().len() {
                1 => Ok(ca.downcast_as_array()),
                n => polars_bail!(ComputeError: "column {} in {n} chunks", ca.name()),
            }
        }
        Ok(match form {
            Form::Text => Cells::Text(chunk(c.str()?)?),
            Form::Unsigned => Cells::Unsigned(chunk(c.u64()?)?),
            Form::Signed => Cells::Signed(chunk(c.i64()?)?),
            Form::Float => Cells::Float(chunk(c.f64()?)?),
            Form::Time => Cells::Time(chunk(c.i64()?)?),
        })
    }

    /// Write the cell of `row`.
    fn write(&self, row: usize, out: &mut Vec<u8>, float: &mut zmij::Buffer) {
        match self {
            Cells::Text(c) => {
                if let Some(s) = c.get(row) {
                    csv_field(out, s);
                }
            }
            Cells::Unsigned(c) => {
                if let Some(v) = c.get(row) {
                    text::uint(out, v);
                }
            }
            Cells::Signed(c) => {
                if let Some(v) = c.get(row) {
                    text::int(out, v);
                }
            }
            Cells::Float(c) => {
                if let Some(v) = c.get(row) {
                    out.extend_from_slice(float.format(v).as_bytes());
                }
            }
            Cells::Time(c) => {
                if let Some(ns) = c.get(row) {
                    out.extend_from_slice(text::iso8601(ns).as_bytes());
                }
            }
        }
    }
}

/// A CSV field as polars writes one: quoted where it holds a comma, a
/// quote or a line break (quotes doubled), and `""` when empty, which an
/// empty field (null) would otherwise read as.
fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.is_empty() {
        out.extend_from_slice(b"\"\"");
    } else if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for piece in s.split_inclusive('"') {
            out.extend_from_slice(piece.as_bytes());
            // A quote inside a quoted field is doubled.
            if piece.ends_with('"') {
                out.push(b'"');
            }
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// The busiest TCP/UDP server ports by distinct clients.
fn top_ports(ports: &DataFrame, n: usize) -> PolarsResult<Vec<PortRow>> {
    let df = ports
        .clone()
        .lazy()
        .filter(col("proto").eq(lit("tcp")).or(col("proto").eq(lit("udp"))))
        .limit(n as IdxSize)
        .collect()?;
    let proto = df.column("proto")?.str()?.clone();
    let port = df.column("port")?.u16()?.clone();
    let u = |name: &str| -> PolarsResult<Vec<u64>> {
        Ok(df
            .column(name)?
            .cast(&DataType::UInt64)?
            .u64()?
            .into_no_null_iter()
            .collect())
    };
    let (clients, sockets, conns, failed, peak) = (
        u("clients")?,
        u("client_sockets")?,
        u("connections")?,
        u("failed")?,
        u("peak_concurrent")?,
    );
    Ok((0..df.height())
        .map(|i| PortRow {
            proto: proto.get(i).unwrap_or("").to_string(),
            port: port.get(i).unwrap_or(0),
            clients: clients[i],
            client_sockets: sockets[i],
            connections: conns[i],
            failed: failed[i],
            peak_concurrent: peak[i],
        })
        .collect())
}

/// Build the tables (and charts and report.html unless disabled) in `dir`,
/// from what the analysis hands over, else from the files in `dir`.
pub fn run(
    dir: &Path,
    opts: &ReportOptions,
    analysed: Option<Analysed>,
) -> Result<ReportOutcome, ReportError> {
    if analysed.is_none() && !dir.join("summary.json").is_file() {
        // Not made: a mistyped directory would be created empty.
        return Err(ReportError::Data {
            path: dir.to_path_buf(),
            message:
                "not a sockscope output (no summary.json): run `sockscope analyze` into it first"
                    .into(),
        });
    }
    let ours = output::prepare_dir(dir, true)?;
    if ours && !opts.charts {
        output::remove_outputs(dir, output::CHART_OUTPUTS)?;
    }
    let parquet = dir.join("connections.parquet");
    let err = data_err(&parquet);
    let (summary, traffic, conns, mut pending) = match analysed {
        Some(a) => (a.summary, a.traffic, a.conns, a.files),
        None => {
            let path = dir.join("traffic.parquet");
            let traffic = Traffic::read(&path).map_err(data_err(&path))?;
            (read_summary(dir)?, traffic, None, PendingFiles::default())
        }
    };
    let conns = match conns {
        Some(c) => c,
        None => {
            pending.wait()?;
            Conns::load(&parquet).map_err(&err)?
        }
    };
    let (first, last) = summary.capture.bounds();
    let secs = summary.capture.duration_s;
    let bins = Bins::new(first, last, opts.bin);
    let mut warnings = Vec::new();
    if let Some(asked) = bins.widened_from {
        let in_secs = |ns: Nanos| ns as f64 / 1e9;
        warnings.push(format!(
            "--bin {}s would make over {} timeline bins of this capture; they are {}s wide instead",
            in_secs(asked),
            timeline::MAX_BINS,
            in_secs(bins.width)
        ));
    }

    // Two independent halves of about equal time: the clients table (as
    // many rows as client/server pairs), and ports, the timeline (whose
    // series are the top ports) and endpoints.
    let client_half = || -> Result<_, ReportError> {
        let mut files = Vec::new();
        let clients = tables::clients(&conns).map_err(&err)?;
        let clients = write_table(dir, &conns, "clients", clients, &mut files)?;
        Ok((clients, files))
    };
    let port_half = || -> Result<_, ReportError> {
        let mut files = Vec::new();
        let ports = tables::fanin(&conns, Servers::Ports, secs).map_err(&err)?;
        let ports = write_table(dir, &conns, "ports", ports, &mut files)?;
        let top = top_ports(&ports, opts.top).map_err(&err)?;
        let series: Vec<(String, u16)> = top.iter().map(|r| (r.proto.clone(), r.port)).collect();
        let tl = timeline::timeline(&conns, &bins, &series, &traffic).map_err(&err)?;
        let tl = write_table(dir, &conns, "timeline", tl, &mut files)?;
        let endpoints = tables::fanin(&conns, Servers::Endpoints, secs).map_err(&err)?;
        write_table(dir, &conns, "endpoints", endpoints, &mut files)?;
        Ok((ports, top, tl, files))
    };
    // One per core (each half's memory is bounded, see tables); the port
    // half finishes first and yields to the clients table.
    let (by_port, by_client) = std::thread::scope(|scope| {
        let by_port = scope.spawn(|| {
            super::yield_to_others();
            port_half()
        });
        let by_client = client_half();
        let by_port = by_port.join().unwrap_or_else(|_| {
            Err(ReportError::Data {
                path: dir.to_path_buf(),
                message: "internal error: the table thread stopped unexpectedly".into(),
            })
        });
        (by_port, by_client)
    });
    // The charts read connections.parquet, and the run's errors come first.
    pending.wait()?;
    let (ports, top, tl, mut files) = by_port?;
    let (clients, client_files) = by_client?;
    files.extend(client_files);

    if opts.charts {
        let all = LazyFrame::scan_parquet(
            parquet.to_string_lossy().as_ref().into(),
            ScanArgsParquet::default(),
        )
        .map_err(&err)?;
        let charts = charts::draw_all(&charts::ChartData {
            dir,
            conns: all,
            ports: &ports,
            clients: &clients,
            timeline: &tl,
            top: &top,
            bins,
            counts: &summary.connections,
            rows: &conns,
        })?;
        files.extend(charts.iter().map(|c| c.0.clone()));
        files.push(html::write(dir, &summary, &top, &charts)?);
    }

    Ok(ReportOutcome {
        top_ports: top,
        files,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_csv_is_what_polars_writes() {
        let df = DataFrame::new(
            4,
            vec![
                Column::new("name".into(), ["a", "", "say \"hi\"", "x,y"]),
                Column::new("port".into(), [443u16, 0, 65535, 80]),
                Column::new("count".into(), [0u64, 1, u64::MAX, 7]),
                Column::new("offset".into(), [-5i64, 0, i64::MIN, 3]),
                Column::new("risk".into(), [3.5e-5, 0.0, 1.0, f64::NAN]),
                Column::new("share".into(), [Some(0.25), None, Some(1e17), Some(-2.5)]),
                crate::report::frame::utc(
                    "at",
                    vec![0, -1, 1_700_000_000_123_456_789, 86_400_000_000_000],
                ),
            ],
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("sockscope-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ours = write_csv(&dir, "ours.csv", &df).unwrap();
        let mut theirs = Vec::new();
        CsvWriter::new(&mut theirs)
            .with_datetime_format(Some("%Y-%m-%dT%H:%M:%S%.6fZ".into()))
            .finish(&mut df.clone())
            .unwrap();
        assert_eq!(
            String::from_utf8(std::fs::read(&ours).unwrap()).unwrap(),
            String::from_utf8(theirs).unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn csv_fields_are_quoted_only_where_needed() {
        let field = |s: &str| {
            let mut out = Vec::new();
            csv_field(&mut out, s);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(field("orig_addr"), "orig_addr");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("\"\""), "\"\"\"\"\"\"");
        assert_eq!(field(""), "\"\"");
    }
}

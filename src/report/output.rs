//! Output files that appear complete or not at all: every file is written
//! under a temporary name in the output directory and renamed into place
//! when finished, so an interrupted run never leaves a table that looks whole.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writing an output file failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct OutputError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl OutputError {
    pub fn new(path: &Path, source: io::Error) -> OutputError {
        OutputError {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Files every sockscope output directory may contain besides the tables
/// and charts; a directory holding anything else (or other PNGs) is not
/// ours to overwrite without `--force`.
pub const KNOWN_OUTPUTS: &[&str] = &[
    "conn.log",
    "connections.csv",
    "connections.parquet",
    "summary.json",
    "traffic.parquet",
    "capture.pcap",
];

/// The fan-in tables' files.
pub const TABLE_OUTPUTS: &[&str] = &[
    "ports.csv",
    "ports.parquet",
    "endpoints.csv",
    "endpoints.parquet",
    "clients.csv",
    "clients.parquet",
    "timeline.csv",
    "timeline.parquet",
];

/// The charts (as `charts` names them) and the page that shows them.
pub const CHART_OUTPUTS: &[&str] = &[
    "fanin.png",
    "concurrency.png",
    "lifecycles.png",
    "states.png",
    "durations.png",
    "ephemeral.png",
    "throughput.png",
    "report.html",
];

/// Remove `names` from `dir` where present: outputs a run does not write
/// again would otherwise sit beside the new ones, from another capture or
/// other options, looking current. Only for a directory [`prepare_dir`]
/// found to be ours.
pub fn remove_outputs(dir: &Path, names: &[&str]) -> Result<(), OutputError> {
    for name in names {
        unlink(&dir.join(name))?;
    }
    Ok(())
}

/// Create `dir` (and parents), refusing a non-empty directory that is not a
/// previous sockscope output unless `force`. Returns whether it holds only
/// sockscope outputs (or nothing): only then may a run remove what it does
/// not write again ([`remove_outputs`]), since with `--force` a foreign
/// directory's `report.html` is somebody else's.
pub fn prepare_dir(dir: &Path, force: bool) -> Result<bool, OutputError> {
    fs::create_dir_all(dir).map_err(|e| OutputError::new(dir, e))?;
    let entries = fs::read_dir(dir).map_err(|e| OutputError::new(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| OutputError::new(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = [KNOWN_OUTPUTS, TABLE_OUTPUTS, CHART_OUTPUTS]
            .iter()
            .any(|names| names.contains(&name.as_ref()))
            || (name.starts_with('.') && name.ends_with(".tmp"))
            || (name.ends_with(".png"));
        if !ours {
            if force {
                return Ok(false);
            }
            return Err(OutputError::new(
                dir,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "not empty and not a sockscope output (found {name}); use --force to write into it"
                    ),
                ),
            ));
        }
    }
    Ok(true)
}

/// How a record file reaches its final name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Written as `.NAME.tmp`, renamed to `NAME` when complete (offline runs).
    Atomic,
    /// Written in place and flushed as it grows, so a long live capture can
    /// be followed and loses nothing already written if it is killed.
    Journal,
}

/// A buffered output file, atomic or journal.
pub struct OutFile {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    mode: Mode,
}

impl OutFile {
    pub fn create(dir: &Path, name: &str) -> Result<OutFile, OutputError> {
        OutFile::with_mode(dir, name, Mode::Atomic)
    }

    pub fn with_mode(dir: &Path, name: &str, mode: Mode) -> Result<OutFile, OutputError> {
        let path = dir.join(name);
        let tmp = match mode {
            Mode::Atomic => dir.join(format!(".{name}.tmp")),
            Mode::Journal => path.clone(),
        };
        let file = File::create(&tmp).map_err(|e| OutputError::new(&tmp, e))?;
        Ok(OutFile {
            tmp,
            path,
            out: BufWriter::with_capacity(1 << 18, file),
            mode,
        })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        self.out
            .write_all(bytes)
            .map_err(|e| OutputError::new(&self.path, e))
    }

    /// Push buffered bytes to the file (journals: whole lines only).
    pub fn flush(&mut self) -> Result<(), OutputError> {
        self.out
            .flush()
            .map_err(|e| OutputError::new(&self.path, e))
    }

    /// Flush and (atomic files) move into place. No fsync: the guarantee is
    /// against an interrupted process, whose written pages the kernel keeps;
    /// syncing tens of megabytes would double the time a run takes to end.
    pub fn commit(self) -> Result<PathBuf, OutputError> {
        self.out
            .into_inner()
            .map_err(|e| OutputError::new(&self.path, e.into_error()))?;
        if self.mode == Mode::Atomic {
            put_in_place(&self.tmp, &self.path)?;
        }
        Ok(self.path)
    }
}

/// Move a finished temporary file to its name. An older file of that name
/// is unlinked first: a rename over it makes ext4 (`auto_da_alloc`)
/// allocate and start writing the new file's blocks inside the rename,
/// 15 ms for conn.log, paid by every `--force` re-run.
pub fn put_in_place(tmp: &Path, path: &Path) -> Result<(), OutputError> {
    unlink(path)?;
    fs::rename(tmp, path).map_err(|e| OutputError::new(path, e))
}

/// Remove `path` if it is there.
fn unlink(path: &Path) -> Result<(), OutputError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(OutputError::new(path, e)),
        _ => Ok(()),
    }
}

/// Raw bytes for writers that take an `io::Write` (the Parquet files); their
/// errors are named after the file by the caller.
impl Write for OutFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.out.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Past this many buffered bytes a line file hands its lines to the file.
const LINES_SPILL: usize = 1 << 15;

/// A record file written a line at a time (conn.log, connections.csv). Each
/// line is formatted straight into a buffer, which goes to the file in
/// 32 KiB pieces of whole lines, so a journal's flush never shows half a
/// line.
pub struct LineFile {
    file: OutFile,
    buf: Vec<u8>,
}

impl LineFile {
    pub fn with_mode(dir: &Path, name: &str, mode: Mode) -> Result<LineFile, OutputError> {
        Ok(LineFile {
            file: OutFile::with_mode(dir, name, mode)?,
            buf: Vec::with_capacity(2 * LINES_SPILL),
        })
    }

    /// Where the next line goes; call [`LineFile::end_line`] once it is complete.
    pub fn line(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    pub fn end_line(&mut self) -> Result<(), OutputError> {
        if self.buf.len() > LINES_SPILL {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), OutputError> {
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Write bytes after every line so far (headers, trailers).
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        self.spill()?;
        self.file.write_all(bytes)
    }

    /// Make every complete line visible in the file.
    pub fn flush(&mut self) -> Result<(), OutputError> {
        self.spill()?;
        self.file.flush()
    }

    pub fn commit(mut self) -> Result<PathBuf, OutputError> {
        self.spill()?;
        self.file.commit()
    }
}

/// Write a whole small file atomically.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, OutputError> {
    let mut f = OutFile::create(dir, name)?;
    f.write_all(bytes)?;
    f.commit()
}

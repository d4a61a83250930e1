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

/// Files every sockscope output directory may contain; a directory holding
/// anything else is not ours to overwrite without `--force`.
pub const KNOWN_OUTPUTS: &[&str] = &[
    "conn.log",
    "connections.csv",
    "connections.parquet",
    "summary.json",
    "ports.csv",
    "ports.parquet",
    "endpoints.csv",
    "endpoints.parquet",
    "clients.csv",
    "clients.parquet",
    "timeline.csv",
    "timeline.parquet",
    "report.html",
    "capture.pcap",
];

/// Create `dir` (and parents), refusing a non-empty directory that is not a
/// previous sockscope output unless `force`.
pub fn prepare_dir(dir: &Path, force: bool) -> Result<(), OutputError> {
    fs::create_dir_all(dir).map_err(|e| OutputError::new(dir, e))?;
    if force {
        return Ok(());
    }
    let entries = fs::read_dir(dir).map_err(|e| OutputError::new(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| OutputError::new(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = KNOWN_OUTPUTS.contains(&name.as_ref())
            || (name.starts_with('.') && name.ends_with(".tmp"))
            || (name.ends_with(".png"));
        if !ours {
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
    Ok(())
}

/// A buffered file written under `.NAME.tmp` and renamed to `NAME` on commit.
pub struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
}

impl AtomicFile {
    pub fn create(dir: &Path, name: &str) -> Result<AtomicFile, OutputError> {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = File::create(&tmp).map_err(|e| OutputError::new(&tmp, e))?;
        Ok(AtomicFile {
            tmp,
            path,
            out: BufWriter::with_capacity(1 << 18, file),
        })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        self.out
            .write_all(bytes)
            .map_err(|e| OutputError::new(&self.path, e))
    }

    /// Flush, sync and move into place.
    pub fn commit(self) -> Result<PathBuf, OutputError> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| OutputError::new(&self.path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| OutputError::new(&self.path, e))?;
        fs::rename(&self.tmp, &self.path).map_err(|e| OutputError::new(&self.path, e))?;
        Ok(self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Write a whole small file atomically.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, OutputError> {
    let mut f = AtomicFile::create(dir, name)?;
    f.write_all(bytes)?;
    f.commit()
}

//! The notebooks in notebooks/ run end to end on real outputs: the binary
//! analyses samples/ into scratch directories, then `notebooks/run.py`
//! executes every notebook against them in the virtualenv `.ci/run` makes
//! (`$SOCKSCOPE_PYTHON`, else `~/.cache/sockscope-venv/bin/python`). A cell
//! that fails — a renamed column, say — fails this test with its error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The virtualenv's python; a missing one is a failure, not a skip.
fn venv_python() -> PathBuf {
    let (python, source) = match std::env::var_os("SOCKSCOPE_PYTHON") {
        Some(p) => (PathBuf::from(p), "$SOCKSCOPE_PYTHON"),
        None => {
            let home = std::env::var_os("HOME").expect(
                "HOME is not set, so ~/.cache/sockscope-venv cannot be found: set \
                 SOCKSCOPE_PYTHON to a python with notebooks/requirements.txt installed",
            );
            (
                Path::new(&home).join(".cache/sockscope-venv/bin/python"),
                "the default virtualenv",
            )
        }
    };
    assert!(
        python.exists(),
        "no python for the notebooks at {} ({source}): run `.ci/run` (it creates \
         ~/.cache/sockscope-venv with notebooks/requirements.txt), or set SOCKSCOPE_PYTHON \
         to a python that has notebooks/requirements.txt installed",
        python.display()
    );
    python
}

fn notebooks(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ipynb"))
        .collect();
    found.sort();
    found
}

fn start(python: &Path, run_py: &Path, a: &Path, b: &Path, books: &[PathBuf]) -> Child {
    Command::new(python)
        .arg(run_py)
        .arg("--out")
        .arg(a)
        .arg("--out-b")
        .arg(b)
        .args(books)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {} {}: {e}", python.display(), run_py.display()))
}

#[test]
fn notebooks_run_on_sample_outputs() {
    let python = venv_python();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("notebooks");
    let books = notebooks(&dir);
    for name in [
        "fanin_over_time.ipynb",
        "port_exhaustion.ipynb",
        "lifecycle_phases.ipynb",
        "compare_captures.ipynb",
    ] {
        assert!(
            books.iter().any(|b| b.ends_with(name)),
            "notebooks/{name} is missing"
        );
    }

    let scratch = common::scratch("notebooks");
    let out = |sample: &str| {
        let dir = scratch.join(sample);
        let input = common::sample(&format!("{sample}.pcap.gz"));
        common::analyze(&[&input], &dir, &["--no-charts"]);
        dir
    };
    let (http, synthetic, reuse, reset) = (
        out("http-fanin"),
        out("fanin-synthetic"),
        out("port-reuse"),
        out("reset-mid-transfer"),
    );

    // Every notebook on two pairs of outputs (A, B), the two runs at once:
    // many clients on two ports vs one client reusing 8 ports; a large
    // fan-in with TIME_WAIT and failures vs resets in mid-transfer.
    let run_py = dir.join("run.py");
    let runs = [(&http, &reuse), (&synthetic, &reset)]
        .map(|(a, b)| (a, b, start(&python, &run_py, a, b, &books)));
    let mut failures = String::new();
    for (a, b, child) in runs {
        let o = child.wait_with_output().expect("wait for run.py");
        if !o.status.success() {
            failures.push_str(&format!(
                "\n=== notebooks/run.py --out {} --out-b {}: {}\n{}{}",
                a.display(),
                b.display(),
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
            ));
        }
    }
    assert!(failures.is_empty(), "notebooks failed:{failures}");
}

#!/usr/bin/env python3
"""Execute sockscope's notebooks end to end with nbclient.

    python notebooks/run.py [--out DIR] [--out-b DIR] [--timeout S] [--write] NOTEBOOK.ipynb...

Run it with the Python that has notebooks/requirements.txt installed (the
virtualenv `.ci/run` makes at ~/.cache/sockscope-venv). Each notebook runs in
a fresh python3 kernel of that same Python, in the notebook's own folder, with
SOCKSCOPE_OUT / SOCKSCOPE_OUT_B taken from --out / --out-b or else from the
environment (each notebook has its own default). --write saves the executed
notebook, outputs and plots included, back in place. Exits non-zero if any
cell of any notebook fails, after printing that cell's error.
"""

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

try:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
except ImportError as e:
    sys.exit(
        f"run.py: {e}. Use the virtualenv that .ci/run creates "
        "(~/.cache/sockscope-venv/bin/python), or "
        "`pip install -r notebooks/requirements.txt`."
    )

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run(path: Path, timeout: int, write: bool) -> str | None:
    """Execute one notebook; the failing cell's error, or None on success."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=timeout,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    # The kernel's own stderr (warnings, or why it died) is shown on failure only.
    with tempfile.TemporaryFile("w+") as stderr:
        try:
            client.execute(stderr=stderr)
        except CellExecutionError as e:
            return ANSI.sub("", str(e))
        except Exception as e:  # a kernel that died or never started
            stderr.seek(0)
            return f"{type(e).__name__}: {e}\nkernel stderr:\n{stderr.read()}"
    if write:
        nbformat.write(nb, path)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--out", help="sockscope output directory (sets SOCKSCOPE_OUT)")
    ap.add_argument("--out-b", help="second output directory, for comparisons (sets SOCKSCOPE_OUT_B)")
    ap.add_argument("--write", action="store_true", help="save executed notebooks in place")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = ap.parse_args()

    for name, value in [("SOCKSCOPE_OUT", args.out), ("SOCKSCOPE_OUT_B", args.out_b)]:
        if value is not None:
            # The kernel runs in the notebook's folder: make paths absolute.
            os.environ[name] = str(Path(value).resolve())
    # The kernel is this Python's own ipykernel (its kernelspec comes first),
    # and draws inline, whatever MPLBACKEND the caller had.
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        p for p in [str(Path(sys.prefix) / "share" / "jupyter"), os.environ.get("JUPYTER_PATH")] if p
    )
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

    env = {k: v for k, v in os.environ.items() if k.startswith("SOCKSCOPE_OUT")}
    failed = []
    for path in args.notebooks:
        path = path.resolve()
        start = time.monotonic()
        error = run(path, args.timeout, args.write)
        took = time.monotonic() - start
        if error is None:
            print(f"ok     {path.name} ({took:.1f} s){' written' if args.write else ''} {env}", flush=True)
        else:
            failed.append(path.name)
            print(f"FAILED {path.name} ({took:.1f} s) {env}\n{error}\n", file=sys.stderr, flush=True)
    print(f"notebooks: {len(args.notebooks) - len(failed)} ok, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

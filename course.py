#!/usr/bin/env python3
"""Set up the course in a local virtual environment and run it.

    python3 course.py lab     # install, then open the course in JupyterLab
    python3 course.py test    # install, then run the whole test suite
    python3 course.py execute [NOTEBOOK ...]
                              # (maintainers) re-run lessons, store outputs

Needs only Python >= 3.10. Everything is installed into ./.venv, so
nothing outside this folder changes. Run it again at any time: an
up-to-date environment is reused.
"""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"


def run(*cmd: object) -> int:
    """Run a command in the course folder, echoing it first."""
    args = [str(c) for c in cmd]
    print("+", " ".join(args), flush=True)
    return subprocess.call(args, cwd=ROOT)


def setup(extras: str) -> None:
    """Create .venv and install the package with `extras` (skipped if current)."""
    if sys.version_info < (3, 10):
        sys.exit(f"backprop-course needs Python >= 3.10, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    version = (ROOT / "pyproject.toml").stat().st_mtime_ns
    # the test install holds everything `lab` needs too
    enough = {f"{extras}:{version}", f"test:{version}"}
    if STAMP.exists() and STAMP.read_text() in enough:
        return
    spec = f".[{extras}]" if extras else "."
    if run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip") != 0:
        sys.exit("Could not upgrade pip in .venv (see the message above).")
    if run(PYTHON, "-m", "pip", "install", "--quiet", "-e", spec) != 0:
        sys.exit("Installing the course failed (see the message above).")
    STAMP.write_text(f"{extras}:{version}")


def lab() -> int:
    setup("")
    start = ROOT / "notebooks" / "01_chain_rule.ipynb"
    target = start.relative_to(ROOT) if start.exists() else Path("notebooks")
    extra = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:   # containers often run as root
        print("Running as root: starting JupyterLab with --allow-root.")
        extra.append("--allow-root")
    return run(PYTHON, "-m", "jupyter", "lab", target, *extra)


def test() -> int:
    setup("test")
    pytest = [PYTHON, "-m", "pytest", "-p", "no:cacheprovider"]
    steps = [
        # lint (ruff) and type-check (mypy); settings in pyproject.toml
        [PYTHON, "-m", "ruff", "check", "backprop_course", "tests", "benchmarks",
         "course.py"],
        [PYTHON, "-m", "mypy"],
        # exercises/ must be exactly what `release` makes from solutions/
        [PYTHON, "-m", "backprop_course.cli", "release", "--check"],
        # lessons are committed executed: re-run them and compare outputs
        [*pytest, "--nbval", "--nbval-current-env", "notebooks"],
        # exercise pairs have no stored outputs: run them, checks decide
        [*pytest, "--nbval-lax", "--nbval-current-env", "solutions", "exercises"],
        # engine, tooling, exercise checks, widgets, browser end-to-end
        [*pytest, "tests"],
    ]
    failed = [s for s in steps if run(*s) != 0]
    for s in failed:
        print("FAILED:", " ".join(str(c) for c in s[1:]))
    return 1 if failed else 0


# Run in .venv by `execute`: a fresh kernel per notebook, in its own folder, as
# Run All would; widget state is kept (so JupyterLab shows the last frame), and
# per-cell timestamps are dropped, which would only add noise to diffs.
EXECUTE = """
import sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient
for path in map(Path, sys.argv[1:]):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    print("executed", path)
"""


def execute(paths: list[str]) -> int:
    """Re-run lesson notebooks in place (all of notebooks/ by default)."""
    setup("test")
    notebooks = [Path(p).resolve() for p in paths] or sorted(
        (ROOT / "notebooks").glob("*.ipynb"))
    for path in notebooks:
        if path.suffix != ".ipynb" or not path.is_file():
            print(f"not a notebook file: {path}")
            return 2
    return run(PYTHON, "-c", EXECUTE, *notebooks)


def main() -> int:
    commands = {"lab": lab, "test": test}
    if len(sys.argv) >= 2 and sys.argv[1] == "execute":
        return execute(sys.argv[2:])
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    return commands[sys.argv[1]]()


if __name__ == "__main__":
    sys.exit(main())

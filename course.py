#!/usr/bin/env python3
"""Set up the course in a local virtual environment and run it.

    python3 course.py lab     # install, then open the course in JupyterLab
                              # (extra options go to JupyterLab: --port 8890)
    python3 course.py test    # install, then run the whole test suite
                              # (--quick: skip the lessons and slow tests;
                              # other options go to pytest: -k name, -x)
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


def run(*cmd: object, env: dict[str, str] | None = None) -> int:
    """Run a command in the course folder, echoing it first; ``env`` adds to
    the environment."""
    args = [str(c) for c in cmd]
    env = env or {}
    print("+", *[f"{k}={v}" for k, v in env.items()], *args, flush=True)
    return subprocess.call(args, cwd=ROOT, env={**os.environ, **env})


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


#: The lesson JupyterLab opens first; the file browser shows the whole course.
FIRST_LESSON = Path("notebooks") / "01_chain_rule.ipynb"
#: Seconds JupyterLab gets to shut its kernels down before it is killed.
STOP_GRACE = 30


def lab_command(extra: list[str] | None = None) -> list[str]:
    """`jupyter lab` serving the course folder (notebooks/, exercises/, solutions/).

    JupyterLab's root is the course folder, so the lessons' links to exercises/
    work, and lesson 01 opens first. The "Jupyter news" prompt and the update
    check are turned off: the course makes no network calls on its own.
    """
    cmd = [str(PYTHON), "-m", "jupyter", "lab", f"--ServerApp.root_dir={ROOT}",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if (ROOT / FIRST_LESSON).exists():
        cmd.append(str(FIRST_LESSON))
    if hasattr(os, "geteuid") and os.geteuid() == 0:   # containers often run as root
        cmd.append("--allow-root")
    return cmd + list(extra or [])


def serve(cmd: list[str]) -> int:
    """Run JupyterLab until it exits or this script is stopped.

    JupyterLab runs in its own session, so Ctrl-C reaches only this script,
    which asks JupyterLab to stop (SIGTERM: it shuts its kernels down, no
    "shut down? y/n" prompt); SIGTERM and SIGHUP to this script do the same.
    If JupyterLab has not stopped after STOP_GRACE seconds it is killed.
    """
    import signal
    import time

    print("+", " ".join(cmd), flush=True)
    posix = os.name != "nt"
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=posix)
    deadline: list[float] = []

    def stop(signum: int, frame: object) -> None:
        if not deadline and proc.poll() is None:
            print("\nStopping JupyterLab and its kernels ...", flush=True)
            proc.terminate()
            deadline.append(time.monotonic() + STOP_GRACE)

    signals = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if posix else [])
    previous = {s: signal.signal(s, stop) for s in signals}
    try:
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if deadline and time.monotonic() > deadline[0]:
                    print("JupyterLab did not stop in time: killing it.", flush=True)
                    proc.kill()
                    code = proc.wait()
                    break
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if deadline and code in (0, -signal.SIGTERM) else code


def lab(options: list[str] | None = None) -> int:
    """Install if needed, then serve the course in JupyterLab until stopped."""
    setup("")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        print("Running as root: starting JupyterLab with --allow-root.")
    return serve(lab_command(options))


def workers() -> int:
    """One test worker per CPU this process may use, at most 4: each starts kernels
    of its own, and a container may show far more CPUs than it is given."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:                      # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def test(options: list[str] | None = None) -> int:
    """Lint, type-check, check exercises/ is current, then pytest on the lessons
    (nbval) and tests/, spread over the CPUs. ``--quick`` skips the lessons and
    the tests marked slow; other options go to pytest (``-k name``, ``-x``)."""
    options = list(options or [])
    quick = "--quick" in options
    options = [o for o in options if o != "--quick"]
    setup("test")
    # pytest-xdist workers; --dist loadscope keeps a notebook's cells (and a test
    # file's tests) together on one worker, in their order.
    pytest = [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-n", str(workers()),
              "--dist", "loadscope"]
    checks = [
        # lint (ruff) and type-check (mypy); settings in pyproject.toml
        [PYTHON, "-m", "ruff", "check", "backprop_course", "tests", "benchmarks",
         "course.py"],
        [PYTHON, "-m", "mypy"],
        # exercises/ must be exactly what `release` makes from solutions/; your own
        # attempts in exercises/ are never touched (git's committed copy is judged)
        [PYTHON, "-m", "backprop_course.cli", "release", "--check"],
    ]
    # lessons are committed executed: nbval re-runs them and compares outputs.
    # tests/ runs every exercise notebook through the grader (a fresh release of
    # the stubs, never your attempts) and the engine, tooling, widgets, browser.
    tests = ([*pytest, "-m", "not slow", "tests", *options] if quick else
             [*pytest, "--nbval", "--nbval-current-env", "notebooks", "tests", *options])
    # One BLAS/OpenMP thread per test worker and kernel: the workers already use
    # every CPU, and BLAS threads on top spin and slow each other down (lesson 04
    # took 59 s instead of 23 s); the numbers the lessons print are the same.
    one_thread = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                         "MKL_NUM_THREADS")}
    failed = [s for s in checks if run(*s) != 0]
    if run(*tests, env=one_thread) != 0:
        failed.append(tests)
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
    command, options = (sys.argv[1], sys.argv[2:]) if len(sys.argv) >= 2 else ("", [])
    if command == "execute":
        return execute(options)
    if command == "lab":
        return lab(options)
    if command == "test":
        return test(options)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())

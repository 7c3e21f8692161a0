"""Grade one untrusted submission inside a bubblewrap sandbox.

``grade`` runs strangers' code. Without a sandbox that code runs with the
instructor's rights: it can read other submissions and the gradebook, write into
the course, reach servers on the host, eat all memory. Here the whole grading of
one submission (``python -m backprop_course.classroom.grade_one``: the notebook's
kernel and the checks) runs inside one ``bwrap`` call:

* file system: read-only, and only what Python, its environment and the course
  need (``/usr``, a few files of ``/etc``, the interpreter, the venv, the
  ``backprop_course`` package, instructor check folders). No home folders, no
  other submission, no gradebook. Writable: the submission's own empty working
  folder (a copy of the notebook is put there), a private ``/tmp``, and the
  output folder the result file comes back through;
* no network (``--unshare-net``: a loopback of its own, where the Jupyter kernel
  talks to its client), its own process tree (``--unshare-pid``), IPC and hostname;
* limits (``Limits``): address space (memory), number of processes, size of a
  file, applied by ``grade_one`` with ``setrlimit`` before anything else runs.
  ``RLIMIT_NPROC`` does not bind root (the kernel exempts uid 0), so when the
  grader runs as root the sandboxed process first drops to an unprivileged uid of
  its own; as any other user bwrap makes a user namespace and the limit counts
  only the processes inside it. The notebook's kernel gets 16 fewer processes
  than the grader beside it, so a fork bomb cannot stop the grader reporting;
* killed at its time limit: the parent waits with a timeout and kills the
  ``bwrap`` process group; ``--die-with-parent`` takes the sandbox down with it,
  and with it every process the submission started (pid namespace).

Rows of exercises that failed because the sandbox refused something say so
("blocked: network", "memory limit 2 GB exceeded", ...): see ``refusals``.
"""
from __future__ import annotations

import atexit
import functools
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

#: where the submission's folders appear inside the sandbox
WORK, OUT = "/sandbox/work", "/sandbox/out"
#: /etc entries a Python process and matplotlib read; nothing else of /etc is visible
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
             "passwd", "group", "hosts", "fonts", "mime.types", "os-release")
#: environment variables passed into the sandbox (the rest is cleared)
PASS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LANG", "LC_ALL",
            "TZ")
#: seconds for starting the sandbox, the kernel and the checks, beyond the notebook's limit
STARTUP_MARGIN = 60.0
#: first uid handed to a sandbox when the grader runs as root (one per sandbox)
UID_BASE = 2_100_000


@dataclass(frozen=True)
class Limits:
    """What one submission may use. ``memory`` bounds each process's address space."""

    memory: int = 2 * 1024 ** 3       # bytes (RLIMIT_AS)
    processes: int = 64               # processes and threads (RLIMIT_NPROC)
    file_size: int = 512 * 1024 ** 2  # bytes, one file (RLIMIT_FSIZE)


def _gb(n: int) -> str:
    return f"{n / 1024 ** 3:g} GB" if n >= 1024 ** 3 else f"{n / 1024 ** 2:g} MB"


# ------------------------------------------------------------------ availability
def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when sandboxed grading works here; otherwise why not, in one line."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap (bwrap) only exists on Linux, not on {sys.platform}"
    if bwrap_path() is None:
        return ("bubblewrap (bwrap) is not installed "
                "(Debian/Ubuntu: apt-get install bubblewrap)")
    with tempfile.TemporaryDirectory(prefix="bpc-sandbox-probe-") as tmp:
        work, out = Path(tmp, "work"), Path(tmp, "out")
        work.mkdir()
        out.mkdir()
        cmd = build_command(work, out, [sys.executable, "-c", "import numpy"],
                            uid=_sandbox_uid() if os.geteuid() == 0 else None)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap did not run: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return f"bwrap is installed but refused to run here ({last[:160]})"
    return None


def available() -> bool:
    return unavailable_reason() is None


# ------------------------------------------------------------------ the command
_uids = itertools.count()


def _sandbox_uid() -> int:
    """A uid no one else uses, so that the process limit counts this sandbox alone."""
    return UID_BASE + (os.getpid() % 10_000) * 100 + next(_uids) % 100


def _python_roots() -> list[str]:
    """Folders the interpreter and its libraries live in (read-only in the sandbox)."""
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix),
             os.path.dirname(os.path.realpath(sys.executable))}
    for entry in sys.path:     # --target installs and other site folders on sys.path
        if entry and os.path.basename(entry.rstrip("/")) in ("site-packages",
                                                            "dist-packages"):
            roots.add(os.path.realpath(entry))
    return _outermost(roots)


def _outermost(paths: Iterable[str]) -> list[str]:
    """Drop paths that are inside another path of the list."""
    kept: list[str] = []
    for p in sorted(set(paths), key=len):
        if os.path.isdir(p) and not any(p == k or p.startswith(k + os.sep) for k in kept):
            kept.append(p)
    return kept


def _package_dir() -> str:
    import backprop_course
    return os.path.dirname(os.path.realpath(backprop_course.__file__))


def build_command(work: Path | str, out: Path | str, argv: Sequence[str], *,
                  uid: int | None = None, read_only: Sequence[str] = (),
                  python_path: Sequence[str] = (),
                  matplotlib_cache: Path | str | None = None) -> list[str]:
    """The ``bwrap`` command that runs ``argv`` in the sandbox.

    ``work`` and ``out`` (host folders) appear writable as ``WORK`` and ``OUT``;
    ``read_only`` folders appear read-only at their own paths; ``matplotlib_cache``
    (a host folder holding a copy of the grader's font list) becomes the writable
    ``MPLCONFIGDIR``, so matplotlib does not rescan the fonts. ``uid``: when the
    grader runs as root, the uid ``grade_one`` drops to (bwrap then keeps the
    capabilities to change uid, and nothing else); otherwise bwrap makes a user
    namespace and the process is nobody (65534) inside.
    """
    bwrap = bwrap_path() or "bwrap"
    cmd = [bwrap, "--die-with-parent", "--new-session",
           "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
           "--unshare-cgroup-try", "--hostname", "sandbox"]
    if uid is None:
        cmd += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
    else:     # uid 0 ignores RLIMIT_NPROC: grade_one drops to ``uid`` before anything runs
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    for top in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = "/" + top
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            cmd += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    # the private /tmp first: the binds below then show through it when the
    # environment or the course lives under /tmp (a clone in /tmp, a CI checkout)
    cmd += ["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]
    binds = _outermost(list(_python_roots()) + [_package_dir()]
                       + [os.path.realpath(p) for p in read_only])
    for path in binds:
        if not path.startswith(("/usr/", "/etc/")):
            cmd += _dirs_above(path) + ["--ro-bind", path, path]
    cmd += ["--perms", "0755", "--dir", "/sandbox",
            "--bind", str(work), WORK, "--bind", str(out), OUT, "--chdir", WORK]
    if matplotlib_cache is not None:
        cmd += ["--bind", str(matplotlib_cache), "/tmp/matplotlib"]
    cmd += ["--clearenv"]
    env = {"HOME": "/tmp/home", "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin",
           "PYTHONPATH": os.pathsep.join([os.path.dirname(_package_dir()), *python_path]),
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/matplotlib",
           "IPYTHONDIR": "/tmp/ipython", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
           "JUPYTER_CONFIG_DIR": "/tmp/jupyter-config", "JUPYTER_DATA_DIR": "/tmp/jupyter",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
    env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--", *argv]


def _dirs_above(path: str) -> list[str]:
    """``--dir`` with mode 0755 for every missing parent (bwrap would make them 0700)."""
    args: list[str] = []
    parts = Path(path).parts[1:-1]
    for i in range(1, len(parts) + 1):
        parent = "/" + "/".join(parts[:i])
        if parent not in ("/usr", "/etc", "/tmp", "/dev", "/proc"):
            args += ["--perms", "0755", "--dir", parent]
    return args


# ------------------------------------------------------------------ refusals
_NET = re.compile(r"ConnectionRefusedError|Network is unreachable|name resolution|"
                  r"Name or service not known|gaierror|No route to host")


def refusals(notebook: Any, notes: Sequence[str], limits: Limits, work: str = WORK
             ) -> list[str]:
    """What the sandbox refused, read from the executed notebook's error outputs."""
    found: list[str] = []

    def add(what: str) -> None:
        if what not in found:
            found.append(what)

    for cell in getattr(notebook, "cells", []) or []:
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if out.get("output_type") != "error":
                continue
            ename, evalue = str(out.get("ename", "")), str(out.get("evalue", ""))
            text = f"{ename}: {evalue}"
            if ename == "MemoryError" or "Cannot allocate memory" in evalue:
                add(f"memory limit {_gb(limits.memory)} exceeded")
            elif "Resource temporarily unavailable" in evalue or \
                    "can't start new thread" in evalue:
                add(f"process limit ({limits.processes}) reached")
            elif _NET.search(text):
                add("blocked: network (the sandbox has none)")
            elif "Read-only file system" in evalue or ename == "PermissionError":
                add("blocked: writing outside its own folder")
            elif ename == "FileNotFoundError":
                path = re.search(r"'(/[^']*)'", evalue)
                if path and not path.group(1).startswith(work + "/"):
                    add(f"blocked: {path.group(1)} is outside the sandbox")
            elif "File too large" in evalue:
                add(f"file size limit {_gb(limits.file_size)} reached")
    for note in notes:
        if "ran longer than" in note or "time limit" in note:
            add("time limit")
    return found


# ------------------------------------------------------------------ grading
class _Sandbox:
    """One sandbox for one submission: started (and warmed up) before it gets one.

    ``start`` launches bwrap with ``grade_one --wait``, which applies the limits,
    imports the grader and the checks, then waits on stdin for the submission's
    name; ``grade`` copies the submission into the empty working folder, hands it
    over and waits for the result. ``run_submission_sandboxed`` keeps one started
    sandbox in reserve, so the next submission's start-up overlaps this one's
    grading. A sandbox never grades a second submission.
    """

    def __init__(self, settings: tuple) -> None:
        self.settings = settings
        self.root = Path(tempfile.mkdtemp(prefix="bpc-sandbox-"))
        self.work, self.out = self.root / "work", self.root / "out"
        self.uid = _sandbox_uid() if os.geteuid() == 0 else None
        self.proc: subprocess.Popen | None = None
        self.err = tempfile.TemporaryFile()

    def start(self) -> _Sandbox:
        (timeout, cell_timeout, grade_timeout, checks, paths, extra, limits,
         exercises, seed) = self.settings
        self.work.mkdir()
        self.out.mkdir()
        mpl = self.root / "matplotlib"
        mpl.mkdir()
        for f in _matplotlib_font_lists():
            shutil.copyfile(f, mpl / f.name)
        if self.uid is not None:
            for d in (self.work, self.out, mpl, *mpl.iterdir()):
                os.chown(d, self.uid, self.uid)
        read_only = [os.path.realpath(p) for p in paths]
        for name in checks:   # a check module from outside the venv: bind its folder
            spec_dir = _module_dir(name, paths)
            if spec_dir:
                read_only.append(spec_dir)
        argv = [sys.executable, "-m", "backprop_course.classroom.grade_one", "--wait",
                "--out", f"{OUT}/result.json",
                "--timeout", str(timeout), "--cell-timeout", str(cell_timeout),
                "--memory", str(limits.memory), "--processes", str(limits.processes),
                "--file-size", str(limits.file_size), "--kill-leftovers"]
        if grade_timeout:
            argv += ["--grade-timeout", str(grade_timeout)]
        for name in checks:
            argv += ["--checks", name]
        for p in read_only:
            argv += ["--path", p]
        if extra:
            argv += ["--extra", extra]
            mutants = json.loads(extra).get("mutants")
            if mutants:
                read_only.append(os.path.dirname(os.path.realpath(mutants)))
        for ex_id in exercises or ():
            argv += ["--exercise", ex_id]
        if seed is not None:
            argv += ["--seed", str(seed)]
        if self.uid is not None:
            argv += ["--uid", str(self.uid)]
        cmd = build_command(self.work, self.out, argv, uid=self.uid, read_only=read_only,
                            python_path=read_only, matplotlib_cache=mpl)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=self.err, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def grade(self, path: Path, budget: float) -> tuple[bool, str]:
        """Hand ``path`` over; wait up to ``budget`` s. (stopped at the limit?, stderr)."""
        assert self.proc is not None and self.proc.stdin is not None
        shutil.copyfile(path, self.work / path.name)
        if self.uid is not None:
            os.chown(self.work / path.name, self.uid, self.uid)
        try:
            self.proc.stdin.write(f"{WORK}/{path.name}\n".encode())
            self.proc.stdin.close()
        except OSError:
            pass                    # it died while waiting: reported as "no result"
        return _wait(self.proc, budget, self.err)

    def close(self) -> None:
        if self.alive():
            assert self.proc is not None
            _kill(self.proc)
        self.err.close()
        shutil.rmtree(self.root, ignore_errors=True)


_spares: list[_Sandbox] = []
_spares_lock = threading.Lock()


def _take_spare(settings: tuple) -> _Sandbox | None:
    with _spares_lock:
        for sb in list(_spares):
            if sb.settings == settings and sb.alive():
                _spares.remove(sb)
                return sb
    return None


def _keep_spare(settings: tuple) -> None:
    """Start the next submission's sandbox now (at most one waiting per setting)."""
    with _spares_lock:
        if any(sb.settings == settings for sb in _spares):
            return
        stale = [sb for sb in _spares if sb.settings != settings]
        for sb in stale:
            _spares.remove(sb)
    for sb in stale:
        sb.close()
    try:
        spare = _Sandbox(settings).start()
    except OSError:
        return
    with _spares_lock:
        _spares.append(spare)


@atexit.register
def close_spares() -> None:
    """Stop the sandboxes started in advance and not used."""
    with _spares_lock:
        spares = list(_spares)
        _spares.clear()
    for sb in spares:
        sb.close()


def run_submission_sandboxed(path: Path | str, *, timeout: float = 300,
                             cell_timeout: float = 60, grade_timeout: float | None = None,
                             check_modules: Sequence[str] = (),
                             extra_paths: Sequence[str] = (), extra: dict | None = None,
                             exercises: Sequence[str] | None = None,
                             seed: int | None = None,
                             limits: Limits = Limits(), prestart: bool = True) -> Any:
    """``grading.run_submission`` for one submission, run inside a bwrap sandbox.

    Never raises; a submission the sandbox had to stop gets rows saying why.
    ``exercises`` and ``seed`` as for ``run_submission``.
    ``prestart``: also start the next submission's sandbox now (the grader's
    start-up then overlaps this grading; an unused one is stopped at exit).
    """
    from backprop_course.classroom import grading

    path = Path(path)
    start = time.monotonic()
    if not path.is_file():         # nothing to run: the grader's own rows say why
        return grading.run_submission(path, timeout=timeout, cell_timeout=cell_timeout,
                                      check_modules=check_modules,
                                      extra_paths=extra_paths, exercises=exercises,
                                      seed=seed)
    settings = (timeout, cell_timeout, grade_timeout, tuple(check_modules),
                tuple(str(p) for p in extra_paths),
                json.dumps(extra, sort_keys=True) if extra else None, limits,
                tuple(exercises) if exercises is not None else None, seed)
    sb = _take_spare(settings) or _Sandbox(settings).start()
    if prestart:
        _keep_spare(settings)
    try:
        ids = list(exercises) if exercises is not None else _ids(path)
        n_ex = len(ids) if ids else 10
        budget = timeout + (grade_timeout or 60 + 30 * n_ex) + STARTUP_MARGIN
        try:
            stopped, stderr = sb.grade(path, budget)
        except OSError as exc:
            stopped, stderr = False, f"cannot read {path.name}: {exc}"
        report = _report(path, sb.out / "result.json", sb.out / "executed.ipynb", limits)
        if stopped:
            report.error = (f"time limit: grading stopped after {budget:g} s "
                            f"(the notebook's limit is {timeout:g} s)")
            report.results = [grading.ExerciseResult(r.exercise, r.passed, r.message
                                                     + f" [{report.error}]", r.status)
                              for r in report.results] if report.results else \
                grading._rows_for_error(ids, report.error)
        elif not report.results:
            why = "the sandboxed grader gave no result"
            tail = stderr.strip().splitlines()[-1:] if stderr else []
            report.error = why + (f" ({tail[0][:200]})" if tail else "")
            report.results = grading._rows_for_error(ids, report.error)
        grading._score(report.results)
        report.seconds = time.monotonic() - start
        return report
    finally:
        sb.close()


def _matplotlib_font_lists() -> list[Path]:
    """The grader's matplotlib font cache files (to copy into each sandbox), if any."""
    candidates = [os.environ.get("MPLCONFIGDIR"), os.environ.get("XDG_CACHE_HOME")
                  and os.path.join(os.environ["XDG_CACHE_HOME"], "matplotlib"),
                  os.path.expanduser("~/.cache/matplotlib"),
                  os.path.expanduser("~/.matplotlib")]
    for folder in filter(None, candidates):
        found = sorted(Path(folder).glob("fontlist-v*.json"))
        if found:
            return found
    return []


def _module_dir(name: str, extra_paths: Sequence[str]) -> str | None:
    import importlib.util
    saved = list(sys.path)
    sys.path[:0] = [str(p) for p in extra_paths]
    try:
        spec = importlib.util.find_spec(name.split(".")[0])
    except (ImportError, ValueError):
        spec = None
    finally:
        sys.path[:] = saved
    origin = getattr(spec, "origin", None) if spec else None
    if not origin or origin in ("built-in", "frozen"):
        return None
    top = Path(origin).parent
    if Path(origin).name == "__init__.py":
        top = top.parent
    return os.path.realpath(top)


def _ids(path: Path) -> list[str] | None:
    from backprop_course.classroom import grading
    return grading._exercises_for(None, path)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL bwrap's process group; --die-with-parent takes the sandbox down with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _wait(proc: subprocess.Popen, budget: float, err: Any) -> tuple[bool, str]:
    """Wait for bwrap; kill it at ``budget`` s. (stopped at the limit?, its stderr)."""
    try:
        proc.wait(timeout=budget)
        stopped = False
    except subprocess.TimeoutExpired:
        stopped = True
        _kill(proc)
    err.seek(0)
    return stopped, err.read().decode("utf-8", "replace")[-4000:]


def _run(cmd: list[str], budget: float) -> tuple[bool, str]:
    """Run a bwrap command; kill it at ``budget`` s. (stopped at the limit?, stderr)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
        return _wait(proc, budget, err)


def _report(path: Path, result: Path, executed: Path, limits: Limits) -> Any:
    """The SubmissionReport grade_one left in the output folder (empty if none)."""
    from backprop_course.classroom import grading

    report = grading.SubmissionReport(path)
    try:
        payload = json.loads(result.read_text(encoding="utf-8"))
        report.results = [grading.ExerciseResult(**{k: r[k] for k in (
            "exercise", "passed", "message", "status")}) for r in payload["results"]]
        report.error = payload.get("error")
        report.extras = dict(payload.get("extras") or {})
    except (OSError, ValueError, KeyError, TypeError):
        return report
    try:
        import nbformat
        text = executed.read_text(encoding="utf-8")
        report.notebook = nbformat.from_dict(json.loads(text))
    except (OSError, ValueError, TypeError, AttributeError):
        report.notebook = None
    return report


def use_sandbox(opted_out: bool, warn: Callable[[str], None]) -> bool:
    """``grade``'s choice: sandboxed wherever bwrap works, unless ``--no-sandbox``."""
    if opted_out:
        return False
    reason = unavailable_reason()
    if reason is not None:
        warn(warning_without_sandbox(reason))
        return False
    return True


def warning_without_sandbox(reason: str) -> str:
    """The one line ``grade`` prints when it has to grade without a sandbox."""
    return (f"warning: grading WITHOUT a sandbox: {reason}. Each submission's code runs "
            "with your rights (your files, other submissions, the network); "
            "read anything surprising before grading it, or grade on Linux with bwrap.")


__all__ = ["Limits", "available", "unavailable_reason", "build_command", "refusals",
           "run_submission_sandboxed", "use_sandbox", "warning_without_sandbox"]

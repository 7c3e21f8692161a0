"""Grading in a bwrap sandbox: hostile submissions are refused, reported, and change
nothing outside; honest ones keep full credit.

One sandboxed grading run (module fixture, slow) covers an honest submission and one
submission per hostile behaviour; each puts its attack in the cell that defines
``tanh2_grad``, so that exercise's row must say what the sandbox refused while the
notebook's other two exercises still pass. Skipped where bwrap cannot run.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import io
import os
import socket
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import bpc_fixture_checks as fixture  # noqa: E402

from backprop_course import cli  # noqa: E402
from backprop_course.classroom import grading, sandbox  # noqa: E402

CHECKS = dict(check_modules=["bpc_fixture_checks"], extra_paths=[str(FIXTURES)])
IDS = ["00-linear-backward", "00-mul-backward", "00-tanh-chain"]
PACKAGE = Path(sandbox.__file__).resolve().parent.parent
REASON = sandbox.unavailable_reason()
needs_bwrap = pytest.mark.skipif(REASON is not None, reason=f"no sandbox here: {REASON}")
SLEEP_MARK = "27.18281828"          # argv of the processes a submission leaves behind


def _with_attack(attack: str) -> nbformat.NotebookNode:
    """The honest solution, with ``attack`` run first in the tanh2_grad cell."""
    nb = copy.deepcopy(fixture.fixture_notebook())
    (cell,) = [c for c in nb.cells if c.source.startswith("# Exercise 00-tanh-chain")]
    cell.source = attack + "\n" + cell.source
    return nb


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def _leftovers() -> list[str]:
    """Host processes a submission started and left behind (found by their argv)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and SLEEP_MARK in (entry / "cmdline").read_text():
                found.append(entry.name)
        except OSError:
            pass
    return found


class _Server:
    """A TCP server on the host's 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if REASON is not None:
        pytest.skip(f"no sandbox here: {REASON}")
    course = tmp_path_factory.mktemp("course")          # the instructor's course folder
    subs = course / "submissions"
    subs.mkdir()
    outside = tmp_path_factory.mktemp("outside")
    secret = outside / "instructor_key.txt"
    secret.write_text("SECRET-7f3a9c")
    server = _Server()
    attacks = {
        "alice_00_fixture.ipynb": "",
        "read_00_fixture.ipynb":
            f"print(open({str(secret)!r}).read())",
        "write_00_fixture.ipynb":
            "errors = []\n"
            f"for target in [{str(PACKAGE / 'pwned.txt')!r}, "
            f"{str(course / 'grades.csv')!r}, {str(subs / 'bob_00_fixture.ipynb')!r}]:\n"
            "    try:\n"
            "        open(target, 'w').write('pwned')\n"
            "    except OSError as exc:\n"
            "        errors.append(exc)\n"
            "raise errors[0]",
        "net_00_fixture.ipynb":
            f"import socket\nsocket.create_connection(('127.0.0.1', {server.port}), 2)",
        "memory_00_fixture.ipynb":
            "import numpy as np\nhog = np.ones(3 * 1024 ** 3 // 8)   # 3 GB",
        "fork_00_fixture.ipynb":
            "import os\n"
            "for _ in range(1000):\n"
            "    if os.fork() == 0:\n"
            f"        os.execv('/bin/sleep', ['sleep', {SLEEP_MARK!r}])",
        "sleep_00_fixture.ipynb":
            "import os, time\n"
            "if os.fork() == 0:                  # a daemon meant to outlive grading\n"
            "    os.setsid()\n"
            f"    os.execv('/bin/sleep', ['sleep', {SLEEP_MARK!r}])\n"
            "time.sleep(1000)",
    }
    for name, attack in attacks.items():
        nbformat.write(_with_attack(attack), subs / name)
    nbformat.write(fixture.fixture_notebook(), subs / "bob_00_fixture.ipynb")
    (course / "grades.csv").write_text("submission,exercise,passed,message\n")
    before = {"course": _digest(course), "package": _digest(PACKAGE),
              "outside": _digest(outside)}
    names = sorted(attacks)
    summary = io.StringIO()
    out = course / "sandboxed.csv"
    try:
        start = time.monotonic()
        grading.grade([subs / n for n in names], out, timeout=30, cell_timeout=4,
                      out=summary, sandbox=True, **CHECKS)
        seconds = time.monotonic() - start
    finally:
        server.close()
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    by: dict[str, dict[str, dict]] = {}
    for r in rows:
        by.setdefault(Path(r["submission"]).name, {})[r["exercise"]] = r
    out.unlink()
    return {"by": by, "before": before, "course": course, "outside": outside,
            "secret": secret.read_text(), "server": server, "seconds": seconds,
            "csv_text": "\n".join(str(r) for r in rows)}


def _tanh_row(graded, name, others_pass=True):
    rows = graded["by"][name]
    assert sorted(rows) == IDS
    for other in ("00-linear-backward", "00-mul-backward"):   # the rest is still graded
        assert rows[other]["passed"] == str(others_pass), (name, rows[other])
    row = rows["00-tanh-chain"]
    assert row["passed"] == "False"
    return row["message"]


@pytest.mark.slow
def test_an_honest_submission_keeps_full_credit_in_the_sandbox(graded):
    rows = graded["by"]["alice_00_fixture.ipynb"]
    assert all(rows[i]["passed"] == "True" for i in IDS), rows
    assert "sandbox" not in " ".join(r["message"] for r in rows.values())


@pytest.mark.slow
def test_reading_a_file_outside_the_sandbox_is_refused(graded):
    message = _tanh_row(graded, "read_00_fixture.ipynb")
    assert "[sandbox: blocked: " in message and "instructor_key.txt is outside the " \
        "sandbox" in message, message
    assert "SECRET-7f3a9c" not in graded["csv_text"]
    assert graded["secret"] == "SECRET-7f3a9c"


@pytest.mark.slow
def test_writing_into_the_course_or_the_package_is_refused_and_changes_nothing(graded):
    message = _tanh_row(graded, "write_00_fixture.ipynb")
    assert "[sandbox: blocked: writing outside its own folder]" in message, message
    assert not (PACKAGE / "pwned.txt").exists()
    assert _digest(PACKAGE) == graded["before"]["package"]
    now = _digest(graded["course"])
    assert {k: v for k, v in now.items() if k != "sandboxed.csv"} == \
        graded["before"]["course"]


@pytest.mark.slow
def test_connecting_to_a_server_on_the_hosts_loopback_is_refused(graded):
    message = _tanh_row(graded, "net_00_fixture.ipynb")
    assert "[sandbox: blocked: network (the sandbox has none)]" in message, message
    assert graded["server"].accepted == 0


@pytest.mark.slow
def test_allocating_past_the_memory_limit_is_refused(graded):
    message = _tanh_row(graded, "memory_00_fixture.ipynb")
    assert "[sandbox: memory limit 2 GB exceeded]" in message, message


@pytest.mark.slow
def test_forking_many_processes_is_stopped_and_none_survives(graded):
    # the kernel's own threads hit the limit too, so the notebook's other exercises are
    # not graded either; the grader keeps its reserve and reports why
    message = _tanh_row(graded, "fork_00_fixture.ipynb", others_pass=False)
    assert f"[sandbox: process limit ({sandbox.Limits().processes}) reached]" in message, \
        message
    assert _leftovers() == []


@pytest.mark.slow
def test_sleeping_past_the_time_limit_is_stopped_and_its_daemon_killed(graded):
    message = _tanh_row(graded, "sleep_00_fixture.ipynb")
    assert "time limit" in message and "ran longer than 4 s" in message, message
    assert _leftovers() == []


@needs_bwrap
def test_the_parent_kills_a_sandbox_at_its_time_limit(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    uid = sandbox._sandbox_uid() if os.geteuid() == 0 else None
    cmd = sandbox.build_command(work, out, ["/bin/sleep", SLEEP_MARK], uid=uid)
    start = time.monotonic()
    stopped, _ = sandbox._run(cmd, budget=1.0)
    assert stopped and time.monotonic() - start < 10
    time.sleep(0.2)
    assert _leftovers() == []


@needs_bwrap
def test_the_sandbox_sees_no_home_no_other_submission_no_network(tmp_path):
    import subprocess
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    other = tmp_path / "submissions"           # another student's work, beside this one
    other.mkdir()
    (other / "bob.ipynb").write_text("{}")
    probe = ("import os, socket\n"
             "print(sorted(os.listdir('/')))\n"
             "print(os.path.exists(REPO_SOLUTIONS), os.path.exists(OTHER), "
             "os.path.exists('/home'), os.path.exists('/etc/shadow'))\n"
             "print(sorted(n for _, n in socket.if_nameindex()))\n"
             "open('/sandbox/work/ok', 'w').write('ok')\n"
             "print(os.access('/usr', os.W_OK), os.access('/sandbox/work', os.W_OK))\n")
    probe = probe.replace("REPO_SOLUTIONS", repr(str(PACKAGE.parent / "solutions")))
    probe = probe.replace("OTHER", repr(str(other / "bob.ipynb")))
    uid = sandbox._sandbox_uid() if os.geteuid() == 0 else None
    if uid is not None:
        os.chown(work, uid, uid)
        probe = f"import os; os.setgid({uid}); os.setuid({uid})\n" + probe
    cmd = sandbox.build_command(work, out, [sys.executable, "-c", probe], uid=uid)
    lines = subprocess.run(cmd, capture_output=True, text=True, check=True,
                           timeout=60).stdout.splitlines()
    tops = {Path(p).parts[1] for p in sandbox._python_roots()}
    allowed = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev",
               "proc", "tmp", "sandbox"} | tops | {Path(PACKAGE).parts[1]}
    assert set(eval(lines[0])) <= allowed, lines[0]
    assert lines[1] == "False False False False"
    assert lines[2] == "['lo']"
    assert lines[3] == "False True"
    assert (work / "ok").read_text() == "ok"


def test_refusals_are_read_from_the_error_the_notebook_raised():
    limits = sandbox.Limits()

    def nb(ename, evalue):
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "x", outputs=[nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                                 traceback=[])])])

    assert sandbox.refusals(nb("MemoryError", "Unable to allocate 4.00 GiB"), [],
                            limits) == ["memory limit 2 GB exceeded"]
    assert sandbox.refusals(nb("BlockingIOError", "[Errno 11] Resource temporarily "
                               "unavailable"), [], limits) == ["process limit (64) reached"]
    assert sandbox.refusals(nb("ConnectionRefusedError", "[Errno 111] Connection refused"),
                            [], limits) == ["blocked: network (the sandbox has none)"]
    assert sandbox.refusals(nb("OSError", "[Errno 30] Read-only file system: '/x'"), [],
                            limits) == ["blocked: writing outside its own folder"]
    assert sandbox.refusals(nb("FileNotFoundError", "[Errno 2] No such file or "
                               "directory: '/home/me/key'"), [], limits) == \
        ["blocked: /home/me/key is outside the sandbox"]
    # a learner's own mistakes are not blamed on the sandbox
    assert sandbox.refusals(nb("FileNotFoundError", "[Errno 2] No such file or "
                               "directory: 'data.csv'"), [], limits) == []
    assert sandbox.refusals(nb("ValueError", "shapes (2,3) and (2,3) not aligned"), [],
                            limits) == []
    assert sandbox.refusals(None, ["cell 4 ran longer than 5 s and was interrupted"],
                            limits) == ["time limit"]


def test_grade_is_sandboxed_by_default_and_warns_in_one_line_where_it_cannot(
        tmp_path, monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(grading, "grade", lambda *a, **k: seen.update(k) or [])
    sub = tmp_path / "a.ipynb"
    sub.write_text("{}")
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: None)
    cli.main(["grade", str(sub)])
    assert seen["sandbox"] is True
    cli.main(["grade", str(sub), "--no-sandbox"])
    assert seen["sandbox"] is False and capsys.readouterr().err == ""
    monkeypatch.setattr(sandbox, "unavailable_reason",
                        lambda: "bubblewrap (bwrap) only exists on Linux, not on darwin")
    cli.main(["grade", str(sub)])
    err = capsys.readouterr().err.strip().splitlines()
    assert seen["sandbox"] is False and len(err) == 1
    assert "WITHOUT a sandbox" in err[0] and "not on darwin" in err[0]
    assert "with your rights" in err[0]

"""course.py, the two-command bootstrap: `lab`, the sync step of `test`, and `execute`."""
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from ports import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def course(monkeypatch):
    spec = importlib.util.spec_from_file_location("course_script", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls, envs = [], []

    def run(*cmd, env=None):
        calls.append(cmd)
        envs.append(env)
        return 0
    monkeypatch.setattr(module, "setup", lambda extras: None)
    monkeypatch.setattr(module, "run", run)
    module.calls, module.envs = calls, envs
    return module


def test_execute_runs_every_lesson_by_default(course):
    assert course.execute([]) == 0
    (cmd,) = course.calls
    lessons = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(lessons) >= 3 and list(cmd[3:]) == lessons
    assert cmd[1] == "-c" and "store_widget_state=True" in cmd[2]


def test_execute_refuses_what_is_not_a_notebook(course, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for bad in (str(text), str(tmp_path / "missing.ipynb")):
        assert course.execute([bad]) == 2
        assert "not a notebook file" in capsys.readouterr().out
    assert course.calls == []                # nothing was run


def test_unknown_command_prints_usage(course, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["course.py", "bake"])
    assert course.main() == 2
    assert "python3 course.py execute" in capsys.readouterr().out


# ---------------------------------------------------------------- `course.py lab`
def _fresh_copy(dest: Path) -> Path:
    """What `git clone` of this working tree gives (committed and uncommitted edits alike),
    with no .venv."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _this_interpreter_as_venv(clone: Path) -> None:
    """`.venv` in the clone whose python is the interpreter running the tests.

    course.py then takes its "environment is up to date" path (a real first run
    creates .venv and pip-installs, minutes; see the report of issue 10) and the
    rest of `python3 course.py lab` runs exactly as a learner's does.
    """
    bindir = clone / ".venv" / "bin"
    bindir.mkdir(parents=True)
    shim = bindir / "python"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    version = (clone / "pyproject.toml").stat().st_mtime_ns
    (clone / ".venv" / ".installed").write_text(f":{version}")


def _pids_with(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(int(proc.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix" or not Path("/proc").is_dir() or not shutil.which(
    "git"), reason="needs git and Linux /proc")
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM],
                         ids=["ctrl-c", "sigterm"])
def test_lab_serves_the_course_folder_and_stops_with_its_kernels(tmp_path, stop_signal):
    clone = _fresh_copy(tmp_path / "course")
    _this_interpreter_as_venv(clone)
    log = open(tmp_path / "lab.log", "w+")
    proc = subprocess.Popen([sys.executable, "course.py", "lab",
                             f"--ServerApp.port={free_port()}",
                             "--no-browser"], cwd=clone, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = None
        for _ in range(240):
            text = (tmp_path / "lab.log").read_text()
            m = re.search(r"(http://127\.0\.0\.1:\d+)/lab\?token=(\w+)", text)
            if m:
                url, token = m.groups()
                break
            assert proc.poll() is None, text
            time.sleep(0.5)
        assert url, (tmp_path / "lab.log").read_text()
        auth = {"Authorization": f"token {token}"}

        def api(path, method="GET", body=None):
            req = urllib.request.Request(url + path, method=method, headers=auth,
                                         data=None if body is None else json.dumps(
                                             body).encode())
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r) if r.headers.get_content_type().endswith(
                    "json") else r.read().decode()

        listing = api("/api/contents/exercises")
        names = {c["name"] for c in listing["content"]}
        assert "01_chain_rule.ipynb" in names
        assert {c["name"] for c in api("/api/contents")["content"]} >= {
            "notebooks", "exercises", "solutions"}
        page = api("/lab/tree/notebooks/01_chain_rule.ipynb")
        assert re.search(r'"news":\s*\{"disabled":\s*true\}', page)      # no news prompt
        server = _pids_with(f"--ServerApp.root_dir={clone}")
        assert len(server) == 1
        kernel = api("/api/kernels", "POST", {"name": "python3"})
        for _ in range(60):
            if _pids_with(kernel["id"]):
                break
            time.sleep(0.5)
        kernels = _pids_with(kernel["id"])
        assert kernels
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=60) == 0
        assert "Stopping JupyterLab and its kernels" in (tmp_path / "lab.log").read_text()
        for _ in range(20):
            if not _pids_with(f"--ServerApp.root_dir={clone}") + _pids_with(kernel["id"]):
                break
            time.sleep(0.5)
        assert _pids_with(f"--ServerApp.root_dir={clone}") == []
        assert _pids_with(kernel["id"]) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _pids_with(str(clone)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        log.close()


def test_test_command_lints_then_runs_lessons_and_tests_never_the_learners_exercises(
        course):
    assert course.test() == 0
    names = [" ".join(str(c) for c in cmd[1:4]) for cmd in course.calls]
    assert names == ["-m ruff check", "-m mypy", "-m backprop_course.cli release",
                     "-m pytest -p"]
    *_, release, pytest = course.calls
    assert list(release[3:]) == ["release", "--check"]   # git's copy is judged
    args = [str(a) for a in pytest]
    assert args[1:3] == ["-m", "pytest"] and "--nbval" in args
    assert {"notebooks", "tests"} <= set(args)
    assert args[args.index("-n") + 1] == str(course.workers()) and "loadscope" in args
    # exercises/ holds the learner's attempts: no step runs or rewrites it
    assert not any("exercises" in str(c) for cmd in course.calls for c in cmd)
    # one BLAS thread per worker and kernel (the workers fill the CPUs)
    assert course.envs[-1]["OPENBLAS_NUM_THREADS"] == "1" and course.envs[0] is None


def test_test_workers_follow_the_usable_cpus_up_to_four(course, monkeypatch):
    for cpus, expected in ((1, 1), (2, 2), (64, 4)):
        monkeypatch.setattr(course.os, "sched_getaffinity",
                            lambda pid, n=cpus: set(range(n)), raising=False)
        assert course.workers() == expected


def test_test_command_quick_skips_lessons_and_slow_tests_and_passes_options_on(course):
    assert course.test(["--quick", "-k", "tensor"]) == 0
    args = [str(a) for a in course.calls[-1]]
    assert "--nbval" not in args and "notebooks" not in args and "--quick" not in args
    assert args[args.index("-m", 3) + 1] == "not slow"
    assert args[-3:] == ["tests", "-k", "tensor"]

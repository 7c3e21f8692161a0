"""course.py, the two-command bootstrap: the maintainers' `execute` command."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def course(monkeypatch):
    spec = importlib.util.spec_from_file_location("course_script", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []
    monkeypatch.setattr(module, "setup", lambda extras: None)
    monkeypatch.setattr(module, "run", lambda *cmd: calls.append(cmd) or 0)
    module.calls = calls
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

"""`backprop-course release --format nbgrader DIR`: an nbgrader course from solutions/.

The metadata tests need no nbgrader; the last test runs the real nbgrader CLI
(generate_assignment, autograde, export) on the exported fixture lesson.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import bpc_fixture_checks as fixture  # noqa: E402

from backprop_course import cli  # noqa: E402
from backprop_course.classroom.nbgrader_export import export  # noqa: E402
from backprop_course.exercises import registry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
POINTS = {"00-tanh-chain": 1.0, "00-linear-backward": 2.0, "00-mul-backward": 1.0}


@pytest.fixture()
def course(tmp_path):
    sol = tmp_path / "solutions"
    sol.mkdir()
    nb = fixture.fixture_notebook()
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
    nbformat.write(nb, sol / "00_fixture.ipynb")
    points = {ex.id: ex.points for ex in registry.all_exercises()}
    report = export(sol, tmp_path / "course", points)
    return tmp_path / "course", report


def test_export_writes_config_and_one_source_notebook_per_lesson(course):
    root, report = course
    source = root / "source" / "00_fixture" / "00_fixture.ipynb"
    assert report.written == [root / "nbgrader_config.py", source]
    assert report.assignments == ["00_fixture"]
    config = (root / "nbgrader_config.py").read_text()
    assert "c.CourseDirectory.course_id = 'backprop-course'" in config
    assert "NotImplementedError" in config and "c.ClearSolutions.code_stub" in config
    roles = [(c.cell_type, c.metadata["nbgrader"]) for c in
             nbformat.read(source, as_version=4).cells]
    kinds = []
    for _cell_type, meta in roles:
        assert meta["schema_version"] == 3 and meta["grade_id"]
        kinds.append("solution" if meta["solution"] else
                     f"test:{meta['points']:g}" if meta["grade"] else
                     "locked" if meta["locked"] else "?")
    assert kinds == ["locked", "locked", "solution", "test:1", "solution", "test:2",
                     "solution", "test:1"]
    assert POINTS == {"00-tanh-chain": 1, "00-linear-backward": 2, "00-mul-backward": 1}
    grade_ids = [meta["grade_id"] for _, meta in roles]
    assert grade_ids[2:4] == ["00-tanh-chain-answer", "00-tanh-chain-check"]
    assert len(set(grade_ids)) == len(grade_ids)
    nb = nbformat.read(source, as_version=4)
    assert "# BEGIN SOLUTION" in nb.cells[2].source          # nbgrader strips it
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    assert nb.metadata["backprop_course"]["notebook"] == "00_fixture"


def test_export_never_overwrites_an_instructors_edits(course, capsys):
    root, _ = course
    source = root / "source" / "00_fixture" / "00_fixture.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[3].source += "\n### BEGIN HIDDEN TESTS\nassert True\n### END HIDDEN TESTS"
    nbformat.write(nb, source)
    mine = source.read_bytes()
    points = {ex.id: ex.points for ex in registry.all_exercises()}
    report = export(root.parent / "solutions", root, points)
    assert report.refused == [source] and source.read_bytes() == mine
    report = export(root.parent / "solutions", root, points, force=True)
    ((original, backup),) = report.backups
    assert original == source and backup.read_bytes() == mine


def test_cli_exports_every_lesson(tmp_path, capsys):
    out = tmp_path / "course"
    assert cli.main(["release", "--format", "nbgrader", str(out),
                     "--solutions", str(ROOT / "solutions")]) == 0
    lessons = sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))
    assert sorted(p.name for p in (out / "source").iterdir()) == lessons
    for lesson in lessons:
        nb = nbformat.read(out / "source" / lesson / f"{lesson}.ipynb", as_version=4)
        tests = [c.metadata["nbgrader"]["points"] for c in nb.cells
                 if c.metadata["nbgrader"]["grade"]]
        assert sum(tests) == sum(ex.points for ex in registry.all_exercises(lesson))
        assert len(tests) == len(registry.all_exercises(lesson))
    assert "nbgrader generate_assignment 01_chain_rule" in capsys.readouterr().out
    assert cli.main(["release", "--format", "nbgrader"]) == 2
    assert "needs a folder" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nbgrader", path=str(Path(sys.executable).parent)) is None,
                    reason="nbgrader is not installed (pip install -e .[test])")
def test_real_nbgrader_releases_and_autogrades_the_export(course):
    root, _ = course
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURES), str(ROOT),
                                                      env.get("PYTHONPATH")]))

    def nbgrader(*args):
        done = subprocess.run(["nbgrader", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    nbgrader("generate_assignment", "00_fixture")
    released = root / "release" / "00_fixture" / "00_fixture.ipynb"
    stub = nbformat.read(released, as_version=4)
    assert "BEGIN SOLUTION" not in released.read_text()
    assert "np.tanh(2 * x)" not in stub.cells[2].source
    assert "replace this line with your code" in stub.cells[2].source
    source = root / "source" / "00_fixture" / "00_fixture.ipynb"
    for student, notebook in (("alice", source), ("bob", released)):
        target = root / "submitted" / student / "00_fixture"
        target.mkdir(parents=True)
        shutil.copy(notebook, target / "00_fixture.ipynb")
    nbgrader("autograde", "00_fixture", "--create")
    from nbgrader.api import Gradebook          # what `nbgrader export` reads
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        scores = {s: (gradebook.find_submission("00_fixture", s).score,
                      gradebook.find_submission("00_fixture", s).max_score)
                  for s in ("alice", "bob")}
    assert scores == {"alice": (4, 4), "bob": (0, 4)}

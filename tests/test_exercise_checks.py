"""Every registered exercise, end to end, in real kernels.

For each lesson notebook that holds exercises:

* solutions/<nb>.ipynb runs clean, its check cells print the pass line, and
  the grader's own checks pass every exercise;
* exercises/<nb>.ipynb (the untouched stubs) shows, in every check cell, a
  short failure naming the exercise, no other cell fails (what nbval-lax would
  ask), and the grader counts none as passed;
* wrong variants of each solution (sign flipped, transpose dropped, wrong
  axis, ``=`` for ``+=``, a chain-rule factor left out, a constant) fail
  their check; the share caught, and caught with the expected hint, is printed.
"""
from __future__ import annotations

import re
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

from backprop_course.classroom import grading, mutants
from backprop_course.classroom.release import release
from backprop_course.exercises import hint, registry

pytestmark = pytest.mark.slow        # every exercise notebook, run in a kernel

ROOT = Path(__file__).resolve().parents[1]
LESSON = "backprop_course.exercises."


def lesson_exercises(notebook: str | None = None) -> list[registry.Exercise]:
    """Exercises registered by the lesson check modules (not by test fixtures)."""
    return [ex for ex in registry.all_exercises(notebook)
            if ex.module.startswith(LESSON) and ex.module.count(".") == 2]


NOTEBOOKS = sorted({ex.notebook for ex in lesson_exercises()})


@lru_cache(maxsize=None)
def solved(notebook: str) -> grading.SubmissionReport:
    path = ROOT / "solutions" / f"{notebook}.ipynb"
    return grading.run_submission(path, timeout=240, cell_timeout=120,
                                  extra={"mutants": str(path)})


@lru_cache(maxsize=None)
def released() -> Path:
    """The stubs as `release` makes them, in a temporary folder: the learner's own
    exercises/ may hold their attempts (test_release checks exercises/ is current)."""
    folder = Path(tempfile.mkdtemp(prefix="bpc-released-")) / "exercises"
    report = release(ROOT / "solutions", folder, known_ids=[e.id for e in
                                                             registry.all_exercises()])
    assert report.written, "release wrote nothing"
    return folder


@lru_cache(maxsize=None)
def unsolved(notebook: str) -> grading.SubmissionReport:
    return grading.run_submission(released() / f"{notebook}.ipynb", timeout=240,
                                  cell_timeout=120)


def _check_cells(report: grading.SubmissionReport) -> list:
    return [c for c in report.notebook.cells
            if c.cell_type == "code" and re.search(r"(^|\n)\s*check\(", c.source)]


def _checked_id(cell) -> str:
    m = re.search(r"check\(\s*[\"'](\d\d-[a-z0-9-]+)[\"']", cell.source)
    assert m, f"cannot find the exercise id in check cell:\n{cell.source}"
    return m.group(1)


def test_every_lesson_notebook_has_both_files():
    assert NOTEBOOKS, "no lesson exercises are registered"
    for nb in NOTEBOOKS:
        assert (ROOT / "solutions" / f"{nb}.ipynb").is_file(), nb
        assert (ROOT / "exercises" / f"{nb}.ipynb").is_file(), nb


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_solutions_pass_every_check(notebook):
    report = solved(notebook)
    assert report.error is None, report.error
    expected = sorted(ex.id for ex in lesson_exercises(notebook))
    assert sorted(r.exercise for r in report.results) == expected
    failed = [(r.exercise, r.message) for r in report.results if not r.passed]
    assert not failed, failed
    errors = [(c.source[:60], o.get("ename"), o.get("evalue"))
              for c in report.notebook.cells if c.cell_type == "code"
              for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    cells = _check_cells(report)
    assert sorted({_checked_id(c) for c in cells}) == expected   # each is checked inline
    for cell in cells:
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert f"\u2714 {_checked_id(cell)} passed" in text, text


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_untouched_stubs_fail_every_check_naming_the_exercise(notebook):
    report = unsolved(notebook)
    assert report.error is None, report.error
    assert report.results and all(not r.passed for r in report.results)
    assert all(r.status == "not_attempted" for r in report.results), [
        (r.exercise, r.status, r.message) for r in report.results]
    # what nbval-lax demands of a Run All: only cells tagged raises-exception fail
    stray = [(c.source[:60], o.get("ename")) for c in report.notebook.cells
             if c.cell_type == "code"
             and "raises-exception" not in c.metadata.get("tags", [])
             for o in c.outputs if o.get("output_type") == "error"]
    assert not stray, stray
    cells = _check_cells(report)
    assert cells
    for cell in cells:
        ex_id = _checked_id(cell)
        assert "raises-exception" in cell.metadata.get("tags", [])
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        assert len(errors) == 1, cell.outputs
        err = errors[0]
        assert err["ename"] == "ExerciseFailed"
        title = registry.get(ex_id).title
        assert f"Exercise {ex_id} ({title}): not attempted yet" in err["evalue"]
        shown = "\n".join(err["traceback"])
        assert "Traceback" not in shown and "File " not in shown and ".py" not in shown
        assert len(err["traceback"]) <= 6


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_wrong_variants_of_the_solutions_are_caught(notebook, capsys):
    rows = solved(notebook).extras.get("mutants", [])
    for ex in lesson_exercises(notebook):
        mine = [r for r in rows if r["exercise"] == ex.id]
        edits = [r for r in mine if r["mutation"] != "constant"]
        assert edits, f"{ex.id}: no wrong variant could be made from its solution"
        assert all(r["caught"] for r in mine if r["mutation"] == "constant"), ex.id
    # a crash of the check is a course bug, never "caught"; shares are of judged variants
    assert not [r for r in rows if r["outcome"] == mutants.CHECK_CRASHED], \
        mutants.summarize(rows)
    judged = mutants.judged(rows)
    caught = sum(r["caught"] for r in judged) / len(judged)
    with capsys.disabled():
        print(f"\n{notebook}:\n{mutants.summarize(rows)}")
    assert caught >= 0.9, mutants.summarize(rows)


def test_total_share_of_wrong_variants_caught(capsys):
    everything = [r for nb in NOTEBOOKS for r in solved(nb).extras.get("mutants", [])]
    rows = mutants.judged(everything)
    with capsys.disabled():
        print(f"\nall lessons: {len(everything) - len(rows)} variants without a verdict "
              f"(the variant's cell raised), not counted")
    caught = sum(r["caught"] for r in rows)
    hinted = sum(r["hinted"] for r in rows)
    with capsys.disabled():
        print(f"\nall lessons: {len(rows)} wrong variants, {caught} caught "
              f"({caught / len(rows):.0%}), {hinted} with the expected hint "
              f"({hinted / len(rows):.0%})")
    assert caught / len(rows) >= 0.9


@pytest.mark.parametrize("ex", lesson_exercises(), ids=lambda e: e.id)
def test_every_exercise_has_progressive_hints(ex, capsys):
    from backprop_course import exercises
    exercises._hints_shown.pop(ex.id, None)
    assert ex.hints, f"{ex.id} has no hints"
    for i in range(len(ex.hints)):
        hint(ex.id)
        assert capsys.readouterr().out.startswith(f"Hint {i + 1}/{len(ex.hints)}")
    hint(ex.id)
    assert capsys.readouterr().out.startswith(f"No more hints for {ex.id}")

"""`progress` and `grade`: notebooks run in their own kernels, graded by the grader's checks.

One grading run (module fixture) covers honest, unfinished, cheating, hanging,
crashing and broken submissions; each test reads its rows.
"""
from __future__ import annotations

import copy
import csv
import io
import os
import sys
from pathlib import Path

import nbformat
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import bpc_fixture_checks as fixture  # noqa: E402

from backprop_course import cli  # noqa: E402
from backprop_course.classroom import grading  # noqa: E402
from backprop_course.classroom.release import make_exercise_notebook  # noqa: E402

CHECKS = dict(check_modules=["bpc_fixture_checks"], extra_paths=[str(FIXTURES)])
IDS = ["00-linear-backward", "00-mul-backward", "00-tanh-chain"]

WRONG_ANSWERS = """\
def tanh2_grad(x):
    return -2 * (1 - np.tanh(2 * x) ** 2)
def linear_backward(x, W, b, dout):
    return dout @ W.T, x.T @ dout, dout
def mul_backward(a, b, out):
    a.grad = b.data * out.grad
    b.grad = a.data * out.grad
"""

CHEAT_CHECK = WRONG_ANSWERS + """\
import backprop_course.exercises as ex
from backprop_course.exercises import expect, registry
def check(*args, **kwargs):
    print("\\u2714 00-tanh-chain passed: 10 random points + x = 0")
ex.check = check
ex.run_check = lambda *a, **k: ex.Verdict(a[0], "t", True, "all cases")
expect.close = lambda *a, **k: None
for e in list(registry._REGISTRY.values()):
    registry._REGISTRY[e.id] = e.__class__(**{**e.__dict__, "check_fn": lambda a, r: None})
for i in IDS:
    print(f"\\u2714 {i} passed: all cases")
print('{"nonce": "0", "results": [{"exercise": "00-tanh-chain", "passed": true}]}')
""".replace("IDS", repr(IDS))

PATCH_NUMPY = WRONG_ANSWERS + """\
np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, **k: np.ones(np.shape(a), dtype=bool)
"""

PATCH_DURING_CHECK = """\
def tanh2_grad(x):
    import sys
    mod = sys.modules["backprop_course.exercises.expect"]
    mod.close = lambda *a, **k: None
    return 0.0
"""


def _submission(base, extra_cells=(), insert_at=None):
    nb = copy.deepcopy(base)
    cells = [nbformat.v4.new_code_cell(src) for src in extra_cells]
    at = len(nb.cells) if insert_at is None else insert_at
    nb.cells[at:at] = cells
    return nb


@pytest.fixture(scope="module", autouse=True)
def fixture_checks_on_pythonpath():
    """Kernels inherit the environment: let their notebooks import the fixture checks."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FIXTURES),
                                                          os.environ.get("PYTHONPATH")])))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    d = tmp_path_factory.mktemp("submissions")
    solution = fixture.fixture_notebook()
    solution.cells.insert(1, nbformat.v4.new_code_cell(
        "import sys\nprint('EXECUTABLE', sys.executable)"))
    stub = make_exercise_notebook(fixture.fixture_notebook(), "solutions/00_fixture.ipynb")
    subs = {
        "alice_00_fixture.ipynb": solution,
        "bob_00_fixture.ipynb": stub,
        "carol_00_fixture.ipynb": _submission(stub, [CHEAT_CHECK]),
        "dave_00_fixture.ipynb": _submission(stub, [PATCH_NUMPY]),
        "eve_00_fixture.ipynb": _submission(stub, [PATCH_DURING_CHECK]),
        "erin_00_fixture.ipynb": _submission(solution, [
            "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
            "    except KeyboardInterrupt:\n        pass"], insert_at=3),
        "fred_00_fixture.ipynb": _submission(solution, ["while True:\n    pass"],
                                             insert_at=3),
        "henry_00_fixture.ipynb": _submission(solution, ["import os\nos._exit(1)"],
                                              insert_at=3),
        "jack.ipynb": _submission(nbformat.v4.new_notebook(), [
            "import numpy as np",
            "def tanh2_grad(x):\n    return 2 * (1 - np.tanh(2 * x) ** 2)"]),
    }
    for name, nb in subs.items():
        nbformat.write(nb, d / name)
    (d / "ivy_00_fixture.ipynb").write_text("{ this is not json")
    (d / "notes.txt").write_text("my homework")
    order = sorted(subs) + ["ivy_00_fixture.ipynb", "notes.txt", "missing_00_fixture.ipynb"]
    out = d / "grades.csv"
    summary = io.StringIO()
    reports = grading.grade([d / n for n in order], out, timeout=40, cell_timeout=5,
                            out=summary, **CHECKS)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    by = {}
    for r in rows:
        by.setdefault(Path(r["submission"]).name, {})[r["exercise"]] = r
    return {"rows": rows, "by": by, "reports": {r.path.name: r for r in reports},
            "csv": out, "summary": summary.getvalue()}


def test_csv_has_exactly_the_columns_and_a_row_per_submission_and_exercise(graded):
    with open(graded["csv"], newline="") as f:
        header = next(csv.reader(f))
    assert header == ["submission", "exercise", "passed", "message"]
    by = graded["by"]
    assert len(by) == 12
    for name in by:
        if name in ("jack.ipynb", "notes.txt"):
            continue
        assert sorted(by[name]) == IDS, name
    assert {r["passed"] for r in graded["rows"]} == {"True", "False"}


def test_honest_solution_passes_and_stub_is_not_attempted(graded):
    by = graded["by"]
    assert all(by["alice_00_fixture.ipynb"][i]["passed"] == "True" for i in IDS)
    assert "including a batch of 1" in by["alice_00_fixture.ipynb"]["00-linear-backward"][
        "message"]
    for i in IDS:
        row = by["bob_00_fixture.ipynb"][i]
        assert row["passed"] == "False" and row["message"].startswith("not attempted yet")


def test_kernel_runs_in_the_current_environment(graded):
    nb = graded["reports"]["alice_00_fixture.ipynb"].notebook
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)
    assert f"EXECUTABLE {sys.executable}" in text


def test_redefined_or_monkeypatched_check_and_fake_pass_lines_get_no_credit(graded):
    rows = graded["by"]["carol_00_fixture.ipynb"]
    assert all(rows[i]["passed"] == "False" for i in IDS)
    assert "sign" in rows["00-tanh-chain"]["message"]                    # the real check ran
    assert "not summed over the batch" in rows["00-linear-backward"]["message"]
    assert "instead of accumulating" in rows["00-mul-backward"]["message"]


def test_patching_libraries_before_or_during_the_check_is_flagged(graded):
    for name in ("dave_00_fixture.ipynb", "eve_00_fixture.ipynb"):
        rows = graded["by"][name]
        assert all(rows[i]["passed"] == "False" for i in IDS), name
        assert all("no credit: the notebook changed code" in rows[i]["message"]
                   for i in IDS), name
    assert "numpy.allclose" in graded["by"]["dave_00_fixture.ipynb"]["00-tanh-chain"][
        "message"]
    assert "expect.close" in graded["by"]["eve_00_fixture.ipynb"]["00-tanh-chain"]["message"]


def test_hanging_and_crashing_submissions_are_reported_and_others_still_graded(graded):
    by = graded["by"]
    for i in IDS:
        assert by["erin_00_fixture.ipynb"][i]["passed"] == "False"
        assert "could not be stopped" in by["erin_00_fixture.ipynb"][i]["message"]
        assert by["henry_00_fixture.ipynb"][i]["passed"] == "False"
        assert "kernel died" in by["henry_00_fixture.ipynb"][i]["message"]
        # an interruptible endless loop costs its cell, not the grade
        assert by["fred_00_fixture.ipynb"][i]["passed"] == "True"
    fred = graded["reports"]["fred_00_fixture.ipynb"]
    assert "cell 4 ran longer than 5 s and was interrupted" in fred.error
    after = [c for c in fred.notebook.cells if c.source.startswith("check(")]
    texts = [o.get("text", "") for c in after for o in c.outputs]
    assert len(texts) == 3
    assert all(t.startswith(f"\u2714 {i} passed") for t, i in zip(texts, sorted(
        IDS, key=["00-tanh-chain", "00-linear-backward", "00-mul-backward"].index)))
    names = list(by)
    assert names.index("henry_00_fixture.ipynb") < names.index("jack.ipynb")


def test_broken_files_are_reported(graded):
    by = graded["by"]
    assert all("not a valid notebook" in by["ivy_00_fixture.ipynb"][i]["message"]
               for i in IDS)
    assert by["notes.txt"]["-"]["passed"] == "False"
    assert "not a valid notebook" in by["notes.txt"]["-"]["message"]
    assert all("cannot read" in by["missing_00_fixture.ipynb"][i]["message"] for i in IDS)


def test_unnamed_notebook_is_graded_on_the_answers_it_defines(graded):
    assert list(graded["by"]["jack.ipynb"]) == ["00-tanh-chain"]
    assert graded["by"]["jack.ipynb"]["00-tanh-chain"]["passed"] == "True"


def test_summary_table(graded):
    lines = [ln for ln in graded["summary"].splitlines() if not ln.startswith("grading ")]
    assert lines[0].split() == ["submission", "passed", "problems"]
    alice = next(line for line in lines if "alice_00_fixture" in line)
    assert " 3/3 " in alice
    bob = next(line for line in lines if "bob_00_fixture" in line)
    assert " 0/3 " in bob and "00-tanh-chain" in bob


def test_progress_prints_a_scorecard(tmp_path, capsys):
    nb = make_exercise_notebook(fixture.fixture_notebook(), "solutions/00_fixture.ipynb")
    nb.cells[2].source = ("# Exercise 00-tanh-chain: Derivative of tanh(2x)\n"
                          "def tanh2_grad(x):\n    return 2 * (1 - np.tanh(2 * x) ** 2)")
    nb.cells[4].source = ("def linear_backward(x, W, b, dout):\n"
                          "    return dout @ W.T, x.T @ dout, dout.sum(axis=1)")
    nbformat.write(nb, tmp_path / "00_fixture.ipynb")
    code = cli.main(["progress", str(tmp_path), "--checks", "bpc_fixture_checks",
                     "--path", str(FIXTURES), "--cell-timeout", "10"])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "00_fixture.ipynb"
    assert any(line.strip().startswith("\u2714 00-tanh-chain") and "passed" in line
               for line in lines)
    assert any(line.strip().startswith("\u2718 00-linear-backward") and "wrong axis" in line
               for line in lines)
    assert any(line.strip().startswith("\u00b7 00-mul-backward") and "not attempted" in line
               for line in lines)
    assert "1/3 exercises passed, 1 not attempted yet, 1 to fix" in out


def test_cli_errors_for_missing_folders(tmp_path, capsys):
    assert cli.main(["progress", str(tmp_path / "nope")]) == 2
    assert "no folder" in capsys.readouterr().err
    assert cli.main(["progress", str(tmp_path)]) == 2
    assert "holds no .ipynb" in capsys.readouterr().err
    assert cli.main(["grade", "x.ipynb", "--csv", str(tmp_path / "no" / "out.csv")]) == 2
    assert "cannot write" in capsys.readouterr().err

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
from backprop_course.exercises import registry  # noqa: E402

pytestmark = pytest.mark.slow        # grading starts a kernel per submission

CHECKS = dict(check_modules=["bpc_fixture_checks"], extra_paths=[str(FIXTURES)])
IDS = ["00-linear-backward", "00-mul-backward", "00-tanh-chain"]
IN_NOTEBOOK_ORDER = ["00-tanh-chain", "00-linear-backward", "00-mul-backward"]
POINTS = {"00-tanh-chain": 1, "00-linear-backward": 2, "00-mul-backward": 1}
SEED = 7

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

# answers that are, or call, the course's checking code
BORROW_EXPECT = """\
from backprop_course.exercises import expect as _e
def tanh2_grad(x):
    return _e.grad_of(lambda v: (v * 2).tanh(), float(x))
"""
BORROW_REFERENCE = ("from backprop_course.exercises.mlp import _soft_ce_reference "
                    "as softmax_cross_entropy")

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
        "kate_00_fixture.ipynb": _submission(solution, [BORROW_EXPECT]),
        "mia.ipynb": _submission(nbformat.v4.new_notebook(), [BORROW_REFERENCE]),
    }
    for name, nb in subs.items():
        nbformat.write(nb, d / name)
    (d / "ivy_00_fixture.ipynb").write_text("{ this is not json")
    (d / "notes.txt").write_text("my homework")
    order = sorted(subs) + ["ivy_00_fixture.ipynb", "notes.txt", "missing_00_fixture.ipynb"]
    out = d / "grades.csv"
    summary = io.StringIO()
    reports = grading.grade([d / n for n in order], out, timeout=40, cell_timeout=5,
                            out=summary, jobs=2, seed=SEED, summary_csv=d / "students.csv",
                            **CHECKS)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    by = {}
    for r in rows:
        by.setdefault(Path(r["submission"]).name, {})[r["exercise"]] = r
    with open(d / "students.csv", newline="") as f:
        students = {r["student"]: r for r in csv.DictReader(f)}
    return {"rows": rows, "by": by, "reports": {r.path.name: r for r in reports},
            "csv": out, "summary": summary.getvalue(), "dir": d, "order": order,
            "students": students}


def test_csv_has_exactly_the_columns_and_a_row_per_submission_and_exercise(graded):
    with open(graded["csv"], newline="") as f:
        header = next(csv.reader(f))
    assert header == ["student", "submission", "exercise", "points", "max_points", "passed",
                      "status", "message"]
    by = graded["by"]
    assert len(by) == 14
    for name in by:
        if name in ("jack.ipynb", "notes.txt", "mia.ipynb"):
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
        erin = by["erin_00_fixture.ipynb"][i]
        assert erin["message"] == ("timed out after 5 s in cell 4: the notebook's code "
                                   "could not be stopped, so nothing could be graded")
        assert erin["status"] == "timeout"
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
    text = graded["summary"]
    table = text[text.index("submission  "):].splitlines()
    assert table[0].split() == ["submission", "points", "problems"]
    alice = next(line for line in table if "alice_00_fixture" in line)
    assert " 4/4 " in alice
    bob = next(line for line in table if "bob_00_fixture" in line)
    assert " 0/4 " in bob and "00-tanh-chain" in bob


# ---------------------------------------------------------------- points, students
def test_rows_carry_points_from_the_registry_and_the_student(graded):
    alice = graded["by"]["alice_00_fixture.ipynb"]
    for ex_id, worth in POINTS.items():
        assert float(alice[ex_id]["max_points"]) == worth
        assert float(alice[ex_id]["points"]) == worth and alice[ex_id]["status"] == "passed"
        bob = graded["by"]["bob_00_fixture.ipynb"][ex_id]
        assert float(bob["points"]) == 0 and float(bob["max_points"]) == worth
        assert bob["status"] == "not_attempted"
    students = {r["submission"].rsplit("/", 1)[-1]: r["student"] for r in graded["rows"]}
    assert students["alice_00_fixture.ipynb"] == "alice"
    assert students["jack.ipynb"] == "jack"
    assert students["missing_00_fixture.ipynb"] == "missing"


def test_summary_csv_has_a_total_per_student(graded):
    st = graded["students"]
    assert (st["alice"]["points"], st["alice"]["max_points"]) == ("4", "4")
    assert (st["bob"]["points"], st["bob"]["max_points"]) == ("0", "4")
    assert st["jack"]["points"] == "1" and st["jack"]["max_points"] == "1"
    assert "cannot read" in st["missing"]["problems"]
    assert st["alice"]["problems"] == ""


def test_progress_lines_while_grading(graded):
    lines = [ln for ln in graded["summary"].splitlines() if ln.startswith("[")]
    n = len(graded["order"])
    assert len(lines) == n
    assert [int(ln[1:ln.index("/")]) for ln in lines] == list(range(1, n + 1))
    assert any(ln.endswith("4/4 points") or "alice" in ln and " 4/4 points " in ln
               for ln in lines)
    assert "(--jobs 2, seed 7)" in graded["summary"]


def test_parallel_grades_equal_serial_grades(graded, tmp_path):
    names = ["alice_00_fixture.ipynb", "bob_00_fixture.ipynb", "carol_00_fixture.ipynb",
             "kate_00_fixture.ipynb", "notes.txt"]
    out = tmp_path / "serial.csv"
    grading.grade([graded["dir"] / n for n in names], out, timeout=40, cell_timeout=5,
                  out=io.StringIO(), jobs=1, seed=SEED, **CHECKS)
    with open(out, newline="") as f:
        serial = list(csv.DictReader(f))
    parallel = [r for r in graded["rows"] if Path(r["submission"]).name in names]
    assert serial == parallel
    assert {r["status"] for r in serial} >= {"passed", "failed", "not_attempted",
                                             "integrity"}


def test_a_folder_stands_for_its_notebooks_one_student_per_subfolder(tmp_path):
    subs = grading.expand_submissions([tmp_path])
    assert [(s.path, s.student) for s in subs] == [(tmp_path, tmp_path.name)]  # empty
    for student in ("bob", "alice"):
        (tmp_path / student / "03").mkdir(parents=True)
        (tmp_path / student / "03" / "03_mlp_from_scratch.ipynb").write_text("{}")
    (tmp_path / "alice" / "03" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "alice" / "03" / ".ipynb_checkpoints" / "x-checkpoint.ipynb").write_text("")
    (tmp_path / "carol_03_mlp_from_scratch.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    subs = grading.expand_submissions([tmp_path, tmp_path / "dan_01_chain_rule.ipynb"])
    assert [(s.path.relative_to(tmp_path).as_posix(), s.student) for s in subs] == [
        ("alice/03/03_mlp_from_scratch.ipynb", "alice"),
        ("bob/03/03_mlp_from_scratch.ipynb", "bob"),
        ("carol_03_mlp_from_scratch.ipynb", "carol"),
        ("dan_01_chain_rule.ipynb", "dan")]


def test_assignment_grades_the_lessons_exercises_whatever_was_handed_in(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["backprop_course"] = {"notebook": "01_chain_rule"}
    nb.cells.append(nbformat.v4.new_code_cell(
        "import numpy as np\n"
        "def dfdx(x):\n"
        "    return 1.5 * (1 + np.tanh(1.5 * np.asarray(x, dtype=float)))"))
    path = tmp_path / "nick_01_chain_rule.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "grades.csv"
    code = cli.main(["grade", str(path), "--assignment", "03", "--csv", str(out),
                     "--seed", "1"])
    rows = list(csv.DictReader(open(out, newline="")))
    mlp = [ex.id for ex in registry.all_exercises("03_mlp_from_scratch")]
    assert code == 0 and sorted(r["exercise"] for r in rows) == sorted(mlp)
    assert all(r["points"] == "0" and r["status"] == "missing" for r in rows)
    assert sum(float(r["max_points"]) for r in rows) == sum(
        registry.get(i).points for i in mlp)
    # without --assignment the same notebook is graded on lesson 01, in notebook order
    reports = grading.grade([path], None, out=io.StringIO(), seed=1)
    first = reports[0].results
    by_id = {r.exercise: r for r in first}
    assert [r.exercise for r in first][0] == "01-chain-rule"     # the one it answers
    assert by_id["01-chain-rule"].passed and not by_id["01-best-step"].passed
    assert {r.exercise for r in first} == {
        ex.id for ex in registry.all_exercises("01_chain_rule")}
    assert cli.main(["grade", str(path), "--assignment", "42"]) == 2


# ---------------------------------------------------------------- nothing silent
def test_bad_paths_get_rows_and_a_nonzero_exit_after_the_csv(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("my homework")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "grades.csv"
    code = cli.main(["grade", str(tmp_path / "gone_01_chain_rule.ipynb"),
                     str(tmp_path / "notes.txt"), str(tmp_path / "empty"),
                     "--csv", str(out)])
    assert code == 1
    assert "3 of 3 submissions could not be graded fully" in capsys.readouterr().err
    rows = list(csv.DictReader(open(out, newline="")))
    gone = [r for r in rows if "gone" in r["submission"]]
    assert {r["exercise"] for r in gone} == {
        ex.id for ex in registry.all_exercises("01_chain_rule")}
    assert all("no such file" in r["message"] and r["status"] == "unreadable"
               for r in gone)
    (notes,) = [r for r in rows if r["submission"].endswith("notes.txt")]
    assert "not a valid notebook" in notes["message"]
    (empty,) = [r for r in rows if r["submission"].endswith("empty")]
    assert "is a folder, not a notebook" in empty["message"]


def test_a_notebook_that_runs_out_of_time_says_so_for_each_exercise_it_did_not_reach(
        tmp_path):
    nb = _submission(fixture.fixture_notebook(), ["import time\ntime.sleep(120)"],
                     insert_at=4)
    path = tmp_path / "slow_00_fixture.ipynb"
    nbformat.write(nb, path)
    rep = grading.run_submission(path, timeout=10, cell_timeout=200, **CHECKS)
    rows = {r.exercise: r for r in rep.results}
    assert [r.exercise for r in rep.results] == IN_NOTEBOOK_ORDER
    assert rows["00-tanh-chain"].passed
    for ex_id, cell in (("00-linear-backward", 6), ("00-mul-backward", 8)):
        r = rows[ex_id]
        assert r.status == "timeout" and not r.passed, r
        assert r.message.startswith("timed out after 10 s (the notebook's time limit) "
                                    "in cell 5: the notebook did not reach this exercise")
        assert f"cell {cell}" in r.message


# ---------------------------------------------------------------- integrity
def test_an_answer_that_is_or_calls_the_checking_code_earns_nothing(graded):
    kate = graded["by"]["kate_00_fixture.ipynb"]["00-tanh-chain"]
    assert kate["passed"] == "False" and kate["status"] == "integrity"
    assert "(backprop_course.exercises.expect)" in kate["message"]
    assert graded["by"]["kate_00_fixture.ipynb"]["00-mul-backward"]["passed"] == "True"
    (mia,) = graded["by"]["mia.ipynb"].values()
    assert mia["exercise"] == "03-softmax-ce-backward" and mia["status"] == "integrity"
    assert mia["points"] == "0"
    assert "backprop_course.exercises.mlp._soft_ce_reference" in mia["message"]


def test_checking_code_is_recognised_however_it_is_wrapped():
    import functools

    import numpy as np

    import backprop_course
    from backprop_course import Value
    from backprop_course.exercises import expect, mlp
    from backprop_course.exercises.mlp import _soft_ce_reference as ref
    found = grading.checking_code
    assert found(ref).endswith("mlp._soft_ce_reference")
    assert found(functools.partial(ref, np.zeros(3))) is not None
    assert found(functools.wraps(ref)(lambda *a: 0)) is not None
    namespace = {"ref": ref, "mlp": mlp, "expect": expect, "np": np, "Value": Value,
                 "backprop_course": backprop_course}
    cheats = {
        "lambda z, y: ref(z, y)": "_soft_ce_reference",
        "lambda z, y: mlp._soft_ce_reference(z, y)": "exercises.mlp",
        "lambda x: expect.grad_of(lambda v: v.tanh(), x)": "exercises.expect",
        "lambda z, y: helper(z, y)": "_soft_ce_reference",      # through a helper
        "lambda z, y: backprop_course.exercises.mlp._soft_ce_reference(z, y)":
            "backprop_course.exercises",
    }
    exec("def helper(z, y):\n    return [ref][0](z, y)", namespace)
    for source, what in cheats.items():
        assert what in (found(eval(source, namespace)) or ""), source
    exec("def inner(z, y):\n    from backprop_course.exercises.mlp import "
         "_soft_ce_reference as r\n    return r(z, y)", namespace)
    assert found(namespace["inner"]) == "backprop_course.exercises.mlp"
    honest = [
        "lambda z, y: np.exp(z) / np.exp(z).sum() + 0 * y",
        "lambda f, x, h=1e-5: (f(x + h) - f(x - h)) / (2 * h)",    # calls what it is given
        "lambda a, b: Value(a) * b",                                # uses the engine
    ]
    for source in honest:
        assert found(eval(source, namespace)) is None, source



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
    # course order: the order the notebook presents them, not the ids' order
    shown = [line.split()[1] for line in lines[1:4]]
    assert shown == IN_NOTEBOOK_ORDER
    # the failure line keeps what the check printed: expected and obtained values
    wrong = next(line for line in lines if "00-linear-backward" in line)
    assert "expected" in wrong and "got" in wrong, wrong


def test_a_failure_line_keeps_the_expected_and_the_obtained_values():
    from backprop_course.exercises.feedback import Verdict
    verdict = Verdict("00-x", "t", False, "dW is wrong: shape (2, 2)\n  expected [[1, 2],\n"
                      " [3, 4]]\n  got      [[0, 2],\n [3, 4]]", hint="a transpose?")
    assert verdict.line() == ("\u2718 00-x: dW is wrong: shape (2, 2) expected [[1, 2], "
                              "[3, 4]] got [[0, 2], [3, 4]] (hint: a transpose?)")


def test_cli_errors_for_missing_folders(tmp_path, capsys):
    assert cli.main(["progress", str(tmp_path / "nope")]) == 2
    assert "no folder" in capsys.readouterr().err
    assert cli.main(["progress", str(tmp_path)]) == 2
    assert "holds no .ipynb" in capsys.readouterr().err
    assert cli.main(["grade", "x.ipynb", "--csv", str(tmp_path / "no" / "out.csv")]) == 2
    assert "cannot write" in capsys.readouterr().err

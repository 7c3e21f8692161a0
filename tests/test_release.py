"""`backprop-course release`: exercises/ generated from solutions/, one source.

No kernels here: release is pure notebook-JSON work.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import bpc_fixture_checks as fixture  # noqa: E402

from backprop_course import cli  # noqa: E402
from backprop_course.classroom.release import (  # noqa: E402
    ReleaseError, learner_edited, make_exercise_notebook, release,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def course(tmp_path):
    """A course folder with the fixture solutions notebook (executed-looking: outputs)."""
    sol = tmp_path / "solutions"
    sol.mkdir()
    nb = fixture.fixture_notebook()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count = 3
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
            cell.metadata["execution"] = {"iopub.status.busy": "2024-01-01"}
    nbformat.write(nb, sol / "00_fixture.ipynb")
    return tmp_path


def _run(course, *args):
    return cli.main(["release", "--solutions", str(course / "solutions"),
                     "--exercises", str(course / "exercises"), *args])


def _cells(path):
    return nbformat.read(path, as_version=4).cells


def test_release_makes_stubs_clears_outputs_and_tags_check_cells(course, capsys):
    report = release(course / "solutions", course / "exercises")
    target = course / "exercises" / "00_fixture.ipynb"
    assert report.written == [target]
    cells = _cells(target)
    sources = [c.source for c in cells]
    assert sources[2] == ("# Exercise 00-tanh-chain: Derivative of tanh(2x)\n"
                          "def tanh2_grad(x):\n"
                          '    raise NotImplementedError("Exercise 00-tanh-chain: '
                          'replace this line with your code")')
    assert sources[4].endswith('your code")\n    return dx, dW, db')
    text = target.read_text()
    for leaked in ("np.tanh(2 * x)", "dout @ W.T", "x.T @ dout", "BEGIN SOLUTION",
                   "END SOLUTION", "a.grad +="):
        assert leaked not in text
    for cell in cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            assert "execution" not in cell.metadata
            tagged = "raises-exception" in cell.metadata.get("tags", [])
            assert tagged == cell.source.startswith("check(")
    assert [c.id for c in cells] == [f"fixture-{i}" for i in range(len(cells))]
    meta = nbformat.read(target, as_version=4).metadata["backprop_course"]
    assert meta["notebook"] == "00_fixture" and len(meta["release_hash"]) == 64
    assert not learner_edited(target)


def test_release_is_deterministic_and_check_detects_stale_files(course, capsys):
    assert _run(course) == 0
    target = course / "exercises" / "00_fixture.ipynb"
    first = target.read_bytes()
    assert _run(course) == 0 and target.read_bytes() == first
    assert "already up to date" in capsys.readouterr().out
    assert _run(course, "--check") == 0
    sol = course / "solutions" / "00_fixture.ipynb"
    nb = nbformat.read(sol, as_version=4)
    nb.cells[0].source += "\nNew sentence."
    nbformat.write(nb, sol)
    assert _run(course, "--check") == 1
    err = capsys.readouterr().err
    assert "out of date" in err and "00_fixture.ipynb: differs" in err
    assert target.read_bytes() == first          # --check writes nothing
    assert _run(course) == 0 and "New sentence." in target.read_text()
    assert _run(course, "--check") == 0
    target.unlink()
    assert _run(course, "--check") == 1 and "missing" in capsys.readouterr().err


def test_release_refuses_to_overwrite_learner_work_unless_forced(course, capsys):
    assert _run(course) == 0
    target = course / "exercises" / "00_fixture.ipynb"
    nb = nbformat.read(target, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace(
        'raise NotImplementedError("Exercise 00-tanh-chain: replace this line with your '
        'code")', "return 2 * (1 - np.tanh(2 * x) ** 2)  # my answer")
    nbformat.write(nb, target)
    edited = target.read_bytes()
    assert learner_edited(target)
    sol = course / "solutions" / "00_fixture.ipynb"     # a new version of the course
    snb = nbformat.read(sol, as_version=4)
    snb.cells[0].source += "\nFixed a typo."
    nbformat.write(snb, sol)
    capsys.readouterr()
    assert _run(course) == 1
    err = capsys.readouterr().err
    assert "refused to overwrite" in err and str(target) in err and "--force" in err
    assert target.read_bytes() == edited                 # untouched
    assert _run(course, "--force") == 0
    out = capsys.readouterr().out
    backups = list((course / "exercises").glob("00_fixture.bak-*.ipynb"))
    assert len(backups) == 1 and backups[0].read_bytes() == edited
    assert "saved them as" in out and backups[0].name in out
    assert "Fixed a typo." in target.read_text() and "my answer" not in target.read_text()
    assert _run(course, "--check") == 0                  # the backup is not an orphan


def test_a_run_notebook_counts_as_learner_work(course):
    release(course / "solutions", course / "exercises")
    target = course / "exercises" / "00_fixture.ipynb"
    nb = nbformat.read(target, as_version=4)
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
    nbformat.write(nb, target)
    assert learner_edited(target)
    nb.cells[3].outputs = []
    nb.metadata["language_info"] = {"name": "python"}    # Jupyter's save adds metadata
    nbformat.write(nb, target)
    assert not learner_edited(target)


def _solution(*cells):
    nb = nbformat.v4.new_notebook()
    for i, (kind, src) in enumerate(cells):
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(make(src))
        nb.cells[-1]["id"] = f"c{i}"
    return nb


@pytest.mark.parametrize("cells,message", [
    ([("code", "def f():\n    # BEGIN SOLUTION\n    return 1\n")],
     "does not start with '# Exercise <id>: <title>'"),
    ([("code", "# Exercise 00-a: A\ndef f():\n    # BEGIN SOLUTION\n    return 1\n")],
     "never closed"),
    ([("code", "# Exercise 00-a: A\ndef f():\n    return 1\n    # END SOLUTION")],
     "without a '# BEGIN SOLUTION'"),
    ([("code", "# Exercise 00-a: A\n# BEGIN SOLUTION\n# BEGIN SOLUTION\nx = 1\n"
               "# END SOLUTION\n# END SOLUTION")], "cannot nest"),
    ([("code", "# Exercise 00-a: A\ndef f():\n    return 1")], "has no '# BEGIN SOLUTION'"),
    ([("code", "# Exercise 00-a: A\nx = (1 +\n# BEGIN SOLUTION\n  2)\n# END SOLUTION")],
     "not valid Python"),
    ([("code", "# Exercise Central difference: A\nx = 1")], "should read"),
    ([("code", "# Exercise 00-unknown: A\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION")],
     "has no registered check"),
    ([("code", "# Exercise 00-a: A\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION"),
      ("code", "# Exercise 00-a: A\n# BEGIN SOLUTION\nx = 2\n# END SOLUTION")],
     "declared again"),
])
def test_bad_solution_notebooks_are_clear_errors(cells, message):
    with pytest.raises(ReleaseError, match=message) as info:
        make_exercise_notebook(_solution(*cells), "solutions/00_bad.ipynb",
                               known_ids=["00-a"])
    assert "solutions/00_bad.ipynb, cell" in str(info.value)


def test_top_level_region_markdown_region_and_solution_only_cells():
    nb = _solution(
        ("code", "# Exercise 00-a: A\n# BEGIN SOLUTION\nanswer = 42\n# END SOLUTION"),
        ("markdown", "Why?\n# BEGIN SOLUTION\nBecause.\n# END SOLUTION"),
        ("code", "print('instructor only')"))
    nb.cells[2].metadata["tags"] = ["solution-only"]
    out = make_exercise_notebook(nb, "solutions/00_x.ipynb")
    assert len(out.cells) == 2
    assert out.cells[0].source == ('# Exercise 00-a: A\nraise NotImplementedError('
                                   '"Exercise 00-a: replace this line with your code")')
    assert out.cells[0].metadata["tags"] == ["raises-exception"]   # raises at top level
    assert out.cells[1].source == "Why?\n*Write your answer here.*"


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "no solutions directory"),
    (lambda d: (d / "solutions").mkdir(), "holds no .ipynb notebooks"),
    (lambda d: ((d / "solutions").mkdir(), (d / "solutions" / "01_x.ipynb").write_text(
        "not json")), "not a notebook"),
])
def test_missing_or_broken_inputs_exit_2(tmp_path, capsys, setup, message):
    setup(tmp_path)
    assert _run(tmp_path) == 2
    assert message in capsys.readouterr().err


def test_the_course_exercises_are_up_to_date(capsys):
    """CI: exercises/ must be exactly what release makes from solutions/."""
    if not any((ROOT / "solutions").glob("*.ipynb")):
        pytest.skip("no solutions notebooks yet")
    code = cli.main(["release", "--check", "--solutions", str(ROOT / "solutions"),
                     "--exercises", str(ROOT / "exercises")])
    assert code == 0, capsys.readouterr().err
    for path in (ROOT / "exercises").glob("*.ipynb"):
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and '"outputs": []' in text
        nb = json.loads(text)
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


# ------------------------------------------- learner work vs CI (`release --check`)
def _git(repo, *args):
    import subprocess
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                   cwd=repo, check=True, capture_output=True)


@pytest.fixture()
def committed_course(course):
    """The fixture course as a git repository with exercises/ released and committed."""
    import shutil
    if shutil.which("git") is None:
        pytest.skip("needs git")
    assert _run(course) == 0
    _git(course, "init", "-q")
    _git(course, "add", "-A")
    _git(course, "commit", "-qm", "course")
    return course


def _attempt(path):
    """What a learner does: write an answer, run the notebook (outputs)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].source = ("# Exercise 00-tanh-chain: Derivative of tanh(2x)\n"
                          "def tanh2_grad(x):\n    return 2 * x  # my attempt")
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nbformat.write(nb, path)


def test_check_passes_with_a_learners_work_in_exercises_and_leaves_it(committed_course,
                                                                       capsys):
    target = committed_course / "exercises" / "00_fixture.ipynb"
    _attempt(target)
    mine = target.read_bytes()
    (committed_course / "exercises" / "Untitled.ipynb").write_text(
        nbformat.writes(nbformat.v4.new_notebook()))          # a learner's own notebook
    capsys.readouterr()
    assert _run(committed_course, "--check") == 0
    out = capsys.readouterr().out
    assert "holds your work (left as it is): judged the copy git has committed" in out
    assert target.read_bytes() == mine
    assert "my attempt" in target.read_text()


def test_check_still_fails_a_commit_whose_exercises_do_not_match(committed_course, capsys):
    sol = committed_course / "solutions" / "00_fixture.ipynb"
    nb = nbformat.read(sol, as_version=4)
    nb.cells[0].source += "\nA changed sentence."
    nbformat.write(nb, sol)
    _git(committed_course, "commit", "-qam", "solutions changed, release forgotten")
    capsys.readouterr()
    assert _run(committed_course, "--check") == 1            # clean tree, as in CI
    assert "differs from what release makes" in capsys.readouterr().err
    # the learner's edits on top do not hide it: the committed copy is judged
    _attempt(committed_course / "exercises" / "00_fixture.ipynb")
    assert _run(committed_course, "--check") == 1
    assert "its committed copy differs" in capsys.readouterr().err


def test_check_fails_on_a_committed_hand_edit_or_orphan(committed_course, capsys):
    ex = committed_course / "exercises"
    _attempt(ex / "00_fixture.ipynb")
    (ex / "99_old.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    _git(committed_course, "add", "-A")
    _git(committed_course, "commit", "-qm", "an executed exercise and an orphan committed")
    capsys.readouterr()
    assert _run(committed_course, "--check") == 1
    err = capsys.readouterr().err
    assert "00_fixture.ipynb: its committed copy differs" in err
    assert "99_old.ipynb: has no source" in err

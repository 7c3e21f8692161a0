"""`backprop-course mutants`: what counts as a caught wrong variant, and what it refuses.

A wrong variant is caught only when the check's verdict fails it; a variant
whose own cell raises, or whose check crashes, has no verdict: it is counted
apart and listed (issue 13). An exercises notebook has no solutions to vary:
refused (issue 10).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import bpc_fixture_checks as fixture  # noqa: E402

from backprop_course import cli  # noqa: E402
from backprop_course.classroom import mutants  # noqa: E402
from backprop_course.classroom.release import make_exercise_notebook  # noqa: E402
from backprop_course.exercises import registry  # noqa: E402
from backprop_course.exercises.feedback import CheckFailure  # noqa: E402

CELL = """\
# Exercise {id}: t
# BEGIN SOLUTION
two = 2
assert two * 1 == 2, "the variant's cell raises"
# END SOLUTION
def {answer}(x):
    # BEGIN SOLUTION
    return 2 * (1 - np.tanh(2 * x) ** 2)
    # END SOLUTION
"""


def _analyse(tmp_path, ex_id, answer):
    source = CELL.format(id=ex_id, answer=answer)
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(source))
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    namespace = {"np": np}
    exec(source.replace("# BEGIN SOLUTION", "").replace("# END SOLUTION", ""), namespace)
    return mutants.analyse(namespace, [ex_id], str(path), seed=1)


def test_a_variant_whose_cell_raises_is_not_caught_but_counted_apart(tmp_path):
    rows = _analyse(tmp_path, "00-tanh-chain", "tanh2_grad")
    raised = [r for r in rows if r["outcome"] == mutants.CELL_RAISED]
    assert len(raised) == 1 and raised[0]["mutation"] == "factor"
    assert not raised[0]["caught"] and "AssertionError" in raised[0]["verdict"]
    assert {r["outcome"] for r in rows} >= {mutants.CAUGHT, mutants.SURVIVED}
    for r in rows:
        assert r["caught"] == (r["outcome"] == mutants.CAUGHT)
    text = mutants.summarize(rows)
    assert "cell raised (not counted): factor" in text
    judged = mutants.judged(rows)
    assert len(judged) == len(rows) - 1
    caught = sum(r["caught"] for r in judged)
    assert f"{caught} caught of {len(judged)} judged" in text
    assert "1 internal failures" in text


def test_a_crash_of_the_check_is_not_caught(tmp_path):
    @registry.exercise("00-crashy", title="t", notebook="00_crashy", answer="crashy")
    def _check(answer, rng):
        value = answer(0.5)
        if value < 0:                       # a bug in the check for negative answers
            raise ZeroDivisionError("the check's own bug")
        if abs(value - 2 * (1 - np.tanh(1.0) ** 2)) > 1e-9:
            raise CheckFailure("wrong")
    try:
        rows = _analyse(tmp_path, "00-crashy", "crashy")
    finally:
        registry._REGISTRY.pop("00-crashy")
    crashed = [r for r in rows if r["outcome"] == mutants.CHECK_CRASHED]
    assert crashed and all(not r["caught"] and r["mutation"] == "sign" for r in crashed)
    assert "check crashed (not counted): sign" in mutants.summarize(crashed)


def test_mutants_refuses_a_notebook_without_solutions(tmp_path, capsys):
    stub = make_exercise_notebook(fixture.fixture_notebook(), "solutions/00_fixture.ipynb")
    path = tmp_path / "00_fixture.ipynb"
    nbformat.write(stub, path)
    assert cli.main(["mutants", str(path), "--checks", "bpc_fixture_checks",
                     "--path", str(Path(__file__).parent / "fixtures")]) == 2
    captured = capsys.readouterr()
    assert "has no '# BEGIN SOLUTION' ... '# END SOLUTION' regions" in captured.err
    assert "not a released exercises notebook" in captured.err
    assert "caught" not in captured.out                  # no report was made up
    with pytest.raises(mutants.NoSolutions):
        mutants.require_solutions(stub, "x")
    mutants.require_solutions(fixture.fixture_notebook(), "x")        # solutions: fine

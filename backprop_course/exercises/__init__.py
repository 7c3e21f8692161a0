"""Exercises: write a backward pass yourself and know at once whether it is right.

In a notebook::

    from backprop_course.exercises import check, hint

    def dfdx(x):
        ...

    check("01-chain-rule", dfdx)   # ✔ ... passed, or why not
    hint("01-chain-rule")          # the next hint, one at a time

``list_exercises()`` (also ``exercises.list()``) shows every exercise with its
notebook. Instructors: see ``backprop-course --help`` (release, progress, grade).
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import (
    FAIL_MARK, PASS_MARK, CheckFailure, ExerciseFailed, Verdict, describe_exception,
    exception_hint, learner_frame, where,
)
from backprop_course.exercises.registry import (
    Exercise, UnknownExercise, all_exercises, exercise, get,
)

__all__ = ["check", "hint", "list_exercises", "run_check", "exercise", "expect",
           "CheckFailure", "ExerciseFailed", "UnknownExercise", "Exercise", "Verdict"]


def run_check(exercise_id: str, answer: Any, *, seed: int | None = None,
              timeout: float | None = None) -> Verdict:
    """Run exercise ``exercise_id``'s check on ``answer``; return the verdict.

    Never raises for anything the answer does (only :class:`UnknownExercise`
    for a wrong id). ``seed`` fixes the random inputs (default: fresh ones
    every call, so a hard-coded answer cannot pass).
    """
    ex = get(exercise_id)
    rng = np.random.default_rng(seed)
    limit = ex.timeout if timeout is None else float(timeout)
    with expect._running_check(limit) as state:
        try:
            summary = ex.check_fn(answer, rng)
        except CheckFailure as failure:
            return Verdict(ex.id, ex.title, False, failure.message, failure.hint,
                           failure.kind)
        except expect.TimeLimitExceeded:
            return Verdict(ex.id, ex.title, False,
                           f"your code ran for more than {limit:g} s and was stopped",
                           kind="timeout")
        except NotImplementedError as exc:
            if learner_frame(exc.__traceback__, _check_files(ex)) is not None:
                return Verdict(ex.id, ex.title, False,
                               "not attempted yet: replace the `raise NotImplementedError` "
                               "line with your code", kind="not_attempted")
            return _internal(ex, exc)
        except Exception as exc:
            if learner_frame(exc.__traceback__, _check_files(ex)) is not None:
                return Verdict(ex.id, ex.title, False,
                               f"your code raised {describe_exception(exc)}"
                               f"{where(exc.__traceback__)}",
                               exception_hint(exc), kind="error")
            return _internal(ex, exc)
    if not isinstance(summary, str) or not summary.strip():
        n = state.comparisons
        summary = (f"{n} comparison{'s' * (n != 1)} on fresh random inputs" if n
                   else "all cases")
    return Verdict(ex.id, ex.title, True, summary.strip())


def _check_files(ex: Exercise) -> tuple[str, ...]:
    """The file the check is defined in: its frames are never the learner's."""
    code = getattr(ex.check_fn, "__code__", None)
    return (code.co_filename,) if code is not None else ()


def _internal(ex: Exercise, exc: BaseException) -> Verdict:
    return Verdict(ex.id, ex.title, False,
                   f"the check itself failed ({describe_exception(exc)}); this is a bug "
                   f"in the course, not in your answer: please report it",
                   kind="internal")


def check(exercise_id: str, answer: Any, *, seed: int | None = None,
          timeout: float | None = None) -> None:
    """Check your answer to exercise ``exercise_id``.

    Prints one line when it is right; raises :class:`ExerciseFailed` (an
    AssertionError) saying what is wrong, with a hint, when it is not.
    """
    try:
        verdict = run_check(exercise_id, answer, seed=seed, timeout=timeout)
    except UnknownExercise as unknown:
        raise UnknownExercise(unknown.exercise_id, unknown.known).with_traceback(None) \
            from None
    if verdict.passed:
        print(verdict.line())
        return None
    failure = ExerciseFailed(verdict)
    failure.__suppress_context__ = True
    raise failure.with_traceback(None)


_hints_shown: dict[str, int] = {}


def hint(exercise_id: str) -> None:
    """Print the next hint for ``exercise_id`` (one more each call)."""
    ex = get(exercise_id)
    if not ex.hints:
        print(f"Exercise {ex.id} has no hints. Re-read the text above the exercise, "
              f"and run check() for what exactly is wrong.")
        return
    shown = _hints_shown.get(ex.id, 0)
    if shown >= len(ex.hints):
        print(f"No more hints for {ex.id}: you have seen all {len(ex.hints)}. "
              f"Here they are again:")
        for i, text in enumerate(ex.hints, 1):
            print(f"  {i}. {text}")
        return
    _hints_shown[ex.id] = shown + 1
    last = " (that was the last one)" if shown + 1 == len(ex.hints) else ""
    print(f"Hint {shown + 1}/{len(ex.hints)} for {ex.id}{last}: {ex.hints[shown]}")


def list_exercises(notebook: str | None = None, *, show: bool = False) -> list[Exercise]:
    """Every exercise (only ``notebook``'s if given), sorted by id.

    With ``show=True`` also prints them, one per line.
    """
    found = all_exercises(notebook)
    if show:
        for ex in found:
            print(ex)
    return found


list = list_exercises   # noqa: A001 -- ``exercises.list()``; builtin list unused below

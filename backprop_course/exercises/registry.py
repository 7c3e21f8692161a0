"""The list of exercises: every check registers itself here with :func:`exercise`.

A lesson's checks live in ``backprop_course/exercises/<lesson>.py``::

    from backprop_course.exercises.registry import exercise

    @exercise("01-chain-rule", title="The chain rule by hand",
              notebook="01_chain_rule", answer="dfdx",
              hints=["gentle", "more specific", "nearly the answer"])
    def _check(answer, rng):
        ...   # raise CheckFailure (or use expect.*) when the answer is wrong

The lesson modules named in :data:`LESSON_MODULES` are imported the first time
the registry is used, so ``check("01-...", f)`` works after a plain
``from backprop_course.exercises import check``.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

#: Lesson check modules, in course order. A module that is not there yet is
#: skipped; a module that is there but fails to import is a loud error.
LESSON_MODULES: tuple[str, ...] = ("chain_rule", "circuits", "mlp", "vanishing",
                                   "residual", "history", "memory_compute",
                                   "feedback_alignment")

ID_PATTERN = re.compile(r"^\d\d-[a-z0-9]+(-[a-z0-9]+)*$")

#: Default wall-clock limit, in seconds, for one call of the learner's code.
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id, what the learner sees, and the function that checks it."""

    id: str
    title: str
    notebook: str          # "01_chain_rule": solutions/01_chain_rule.ipynb, exercises/...
    answer: str            # the name the learner defines in the notebook
    hints: tuple[str, ...]
    check_fn: Callable = field(repr=False, compare=False)
    module: str = ""       # module that registered it
    timeout: float = DEFAULT_TIMEOUT
    points: float = 1.0    # what it is worth in `grade` and in the nbgrader export

    def __str__(self) -> str:
        return f"{self.id}  {self.title}  ({self.notebook}.ipynb, defines `{self.answer}`)"


class UnknownExercise(KeyError):
    """An exercise id that no check is registered for."""

    def __init__(self, exercise_id: str, known: Sequence[str]):
        self.exercise_id = exercise_id
        self.known = list(known)
        close = difflib.get_close_matches(str(exercise_id), known, n=3, cutoff=0.5)
        msg = f"There is no exercise {exercise_id!r}."
        if close:
            msg += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif known:
            msg += " Known exercises: " + ", ".join(known) + "."
        else:
            msg += " No exercises are registered yet."
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:
        return self.message

    def _render_traceback_(self) -> list[str]:
        return [f"UnknownExercise: {self.message}"]


_REGISTRY: dict[str, Exercise] = {}
_loaded = False


def exercise(
    id: str,
    *,
    title: str,
    notebook: str,
    answer: str,
    hints: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    points: float = 1.0,
) -> Callable[[Callable], Callable]:
    """Decorator that registers ``check_fn(answer, rng)`` as the check of exercise ``id``.

    ``check_fn`` raises :class:`~backprop_course.exercises.feedback.CheckFailure`
    (usually through the ``expect`` helpers) when the answer is wrong and returns
    normally, optionally with a short description of what it tested, when it is right.
    ``timeout`` is the wall-clock limit in seconds for each call of learner code;
    ``points`` is what the exercise is worth when graded (default 1).
    """
    if not ID_PATTERN.match(id):
        raise ValueError(
            f"exercise id {id!r} must look like '01-chain-rule': "
            "two-digit lesson number, a dash, lowercase words joined by dashes")
    if not answer.isidentifier():
        raise ValueError(f"exercise {id}: answer={answer!r} is not a Python name")
    if isinstance(hints, str):
        raise TypeError(f"exercise {id}: hints must be a list of strings, not one string")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not (
            points > 0 and points < float("inf")):
        raise ValueError(f"exercise {id}: points={points!r} must be a positive number")

    def register(check_fn: Callable) -> Callable:
        module = getattr(check_fn, "__module__", "") or ""
        old = _REGISTRY.get(id)
        if old is not None and old.module != module:
            raise ValueError(
                f"exercise id {id!r} is registered twice: by {old.module} and by {module}")
        _REGISTRY[id] = Exercise(id=id, title=title, notebook=notebook, answer=answer,
                                 hints=tuple(hints), check_fn=check_fn, module=module,
                                 timeout=float(timeout), points=float(points))
        return check_fn

    return register


def load_lessons() -> None:
    """Import every lesson check module that exists (once).

    A module that exists but fails to import raises ``ImportError`` naming it:
    a broken check module must never make its exercises silently disappear.
    """
    global _loaded
    if _loaded:
        return
    import_modules(__package__, LESSON_MODULES)
    _loaded = True


def import_modules(package: str, names: Sequence[str]) -> list[str]:
    """Import ``package.name`` for each name whose file exists; return those imported."""
    imported = []
    for name in names:
        full = f"{package}.{name}"
        if importlib.util.find_spec(full) is None:
            continue  # that lesson's checks have not been written yet
        try:
            importlib.import_module(full)
        except Exception as exc:  # loud: name the module and keep the cause
            raise ImportError(
                f"the exercise checks in {full} failed to import: "
                f"{type(exc).__name__}: {exc}") from exc
        imported.append(full)
    return imported


def get(exercise_id: str) -> Exercise:
    """The exercise registered as ``exercise_id``; :class:`UnknownExercise` if none."""
    load_lessons()
    try:
        return _REGISTRY[exercise_id]
    except (KeyError, TypeError):
        raise UnknownExercise(exercise_id, sorted(_REGISTRY)) from None


def all_exercises(notebook: str | None = None) -> list[Exercise]:
    """Every registered exercise, sorted by id (only ``notebook``'s if given)."""
    load_lessons()
    found = sorted(_REGISTRY.values(), key=lambda e: e.id)
    if notebook is not None:
        found = [e for e in found if e.notebook == notebook]
    return found


def notebooks() -> list[str]:
    """Names of the notebooks that hold exercises, sorted."""
    return sorted({e.notebook for e in all_exercises()})

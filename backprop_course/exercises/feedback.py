"""What a learner sees: the failure exceptions and how they are rendered.

A check raises :class:`CheckFailure` ("what is wrong", plus an optional hint);
``check()`` turns it into :class:`ExerciseFailed`, which names the exercise and
renders as a few lines, in IPython and in a plain Python traceback alike::

    ✘ Exercise 01-chain-rule (The chain rule by hand: d/dx log(1 + exp(3x))): ...
      hint: ...
      (hint("01-chain-rule") for more help)
"""
from __future__ import annotations

import linecache
import os
import traceback
from dataclasses import dataclass
from types import TracebackType

PASS_MARK = "\u2714"   # ✔
FAIL_MARK = "\u2718"   # ✘

#: Kinds of failure; ``not_attempted`` is the untouched stub.
KINDS = ("wrong", "shape", "dtype", "type", "none", "error", "timeout", "mutation",
         "not_attempted", "internal")

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CheckFailure(Exception):
    """Raised by a check when the learner's answer is wrong.

    ``message`` says what is wrong (which output or gradient, expected vs got);
    ``hint`` names the likely mistake, when one is recognised.
    """

    def __init__(self, message: str, hint: str | None = None, *, kind: str = "wrong"):
        if kind not in KINDS:
            raise ValueError(f"CheckFailure kind must be one of {KINDS}, not {kind!r}")
        self.message = str(message)
        self.hint = hint
        self.kind = kind
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"

    def _render_traceback_(self) -> list[str]:
        return [f"{FAIL_MARK} {line}" if i == 0 else f"  {line}"
                for i, line in enumerate(str(self).splitlines())]


def one_line(text: str, limit: int = 600) -> str:
    """``text`` on one line: every run of spaces and line breaks becomes one space
    (shortened past ``limit`` characters)."""
    joined = " ".join(text.split())
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


@dataclass
class Verdict:
    """The outcome of one check, before it is printed or raised."""

    exercise: str
    title: str
    passed: bool
    message: str            # pass: what was tested; fail: what is wrong
    hint: str | None = None
    kind: str = "passed"    # "passed" or one of KINDS

    def line(self) -> str:
        """One line for a scorecard or a CSV cell: the whole message, lines joined,
        so the expected and the obtained values a check printed stay in it."""
        if self.passed:
            return f"{PASS_MARK} {self.exercise} passed: {self.message}"
        text = one_line(self.message) if self.message else self.kind
        if self.hint:
            text += f" (hint: {self.hint})"
        return f"{FAIL_MARK} {self.exercise}: {text}"

    def render(self) -> str:
        """The few lines a learner sees."""
        if self.passed:
            return self.line()
        lines = [f"{FAIL_MARK} Exercise {self.exercise} ({self.title}): "
                 + (self.message.splitlines()[0] if self.message else "")]
        lines += ["  " + line for line in self.message.splitlines()[1:]]
        if self.hint:
            hint_lines = self.hint.splitlines() or [""]
            lines.append("  hint: " + hint_lines[0])
            lines += ["        " + line for line in hint_lines[1:]]
        if self.kind != "internal":
            lines.append(f'  (hint("{self.exercise}") for more help)')
        return "\n".join(lines)


class ExerciseFailed(AssertionError):
    """The learner's answer to an exercise is wrong (or not written yet).

    IPython shows only :meth:`_render_traceback_` (no checker traceback); plain
    Python shows the same lines as the exception message.
    """

    def __init__(self, verdict: Verdict):
        self.verdict = verdict
        self.exercise = verdict.exercise
        self.kind = verdict.kind
        self.hint = verdict.hint
        super().__init__(verdict.render())

    def __str__(self) -> str:
        return self.verdict.render()

    def _render_traceback_(self) -> list[str]:
        return self.verdict.render().splitlines()


# shown as ``backprop_course.exercises.ExerciseFailed`` where it is raised
ExerciseFailed.__module__ = "backprop_course.exercises"
CheckFailure.__module__ = "backprop_course.exercises"


def is_checker_file(filename: str) -> bool:
    """True for frames inside the backprop_course package (checker or engine)."""
    try:
        path = os.path.abspath(filename)
    except (TypeError, ValueError):
        return False
    return path.startswith(_PACKAGE_DIR + os.sep)


def learner_frame(tb: TracebackType | None, checker_files: tuple[str, ...] = ()
                  ) -> traceback.FrameSummary | None:
    """The innermost traceback frame that is learner code.

    Not learner code: backprop_course itself, installed libraries, the standard
    library, and ``checker_files`` (where the exercise's check is defined).
    """
    found = None
    for frame in traceback.extract_tb(tb):
        name = frame.filename or ""
        if is_checker_file(name) or name in checker_files \
                or os.sep + "site-packages" + os.sep in name \
                or os.sep + "lib" + os.sep + "python" in name:
            continue
        found = frame
    return found


def where(tb: TracebackType | None) -> str:
    """' (in f, line 3: `return x.T @ g`)' for the learner's innermost frame, or ''."""
    frame = learner_frame(tb)
    if frame is None:
        return ""
    code = (frame.line or linecache.getline(frame.filename, frame.lineno or 0)).strip()
    text = f" (in {frame.name}, line {frame.lineno}"
    return text + (f": `{code}`)" if code else ")")


def describe_exception(exc: BaseException) -> str:
    """'ValueError: message' with the message shortened to one line."""
    msg = str(exc).strip().splitlines()
    first = msg[0] if msg else ""
    if len(first) > 200:
        first = first[:197] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def exception_hint(exc: BaseException) -> str | None:
    """A hint for the usual causes of an exception in learner code."""
    text = str(exc)
    if isinstance(exc, NameError):
        return ("a name is not defined: run the cells above this one first "
                "(Run All), and check the spelling")
    if isinstance(exc, ValueError) and ("matmul" in text or "shapes" in text
                                        or "broadcast" in text):
        return ("the shapes do not line up: write down the shape of every factor; "
                "a gradient has the shape of the thing it is the gradient of, "
                "so a transpose is probably missing or extra")
    if isinstance(exc, TypeError) and "NoneType" in text:
        return "something your code uses is None: does every function `return` its result?"
    if isinstance(exc, (IndexError,)):
        return "an index is out of range: check loop bounds and the axis you index"
    if isinstance(exc, ZeroDivisionError):
        return "a division by zero: is a step size or a count zero?"
    if isinstance(exc, RecursionError):
        return ("the recursion is too deep: walk the graph with an explicit stack or "
                "a topological order instead of recursion")
    return None

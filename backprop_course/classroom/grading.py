"""Run exercise notebooks headless and grade them: ``progress`` and ``grade``.

Each notebook runs in its own Jupyter kernel (the ``python3`` kernel of the
current environment), with a time limit per cell and for the whole notebook,
and errors allowed so later cells still run. Then, in the same kernel, the
grader runs its own checks on the names the notebook defined:

* ``backprop_course.exercises`` is purged from ``sys.modules`` and imported
  afresh, so a notebook that redefines or monkeypatches ``check`` (or
  ``expect``, or the registry) changes nothing;
* the libraries the checks rely on (numpy, math, builtins, the engine, the
  checks themselves) are compared with fingerprints taken in the grader's own
  clean process, before and after the checks run: a patched function means no
  credit for that submission;
* the results travel back through a file whose name and nonce the grader
  makes up only after the learner's code has run; printed output, including a
  fake "passed" line, is never read.

Learner code runs in the same process as the grader's checks, so these
measures stop the usual tricks (and mark them "tampered"), not a determined
attacker who studies this grader: read the code of any surprising submission.
"""
from __future__ import annotations

import csv
import importlib
import json
import logging
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from backprop_course.exercises import registry

PASS, FAIL = "\u2714", "\u2718"

# nbclient logs every timeout as an error; the grader reports them itself
_QUIET = logging.getLogger("backprop_course.grading.nbclient")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

#: Library modules whose functions the checks rely on; fingerprinted.
WATCHED_MODULES = ("builtins", "math", "operator", "numbers", "os", "json", "time",
                   "signal", "copy", "numpy", "numpy.linalg", "numpy.random")
#: Attributes that Jupyter itself replaces in a kernel (not the learner).
_KERNEL_REPLACED = {"builtins": {"input", "exit", "quit", "help", "copyright", "credits",
                                 "license", "display", "get_ipython", "__IPYTHON__",
                                 "breakpoint"}}
#: Engine modules the reference gradients come from.
ENGINE_MODULES = ("backprop_course.graph", "backprop_course.scalar",
                  "backprop_course.tensor", "backprop_course.gradcheck")


STATUSES = ("passed", "failed", "not_attempted", "missing", "error", "tampered",
            "timeout", "integrity", "unreadable")


@dataclass
class ExerciseResult:
    """One row of a grade: did this submission pass this exercise, and why not."""

    exercise: str
    passed: bool
    message: str
    status: str = "failed"    # one of STATUSES
    points: float = 0.0       # earned: the exercise's points if passed, else 0
    max_points: float = 0.0   # what the exercise is worth (registry), 0 for "-" rows


@dataclass
class SubmissionReport:
    path: Path
    results: list[ExerciseResult] = field(default_factory=list)
    error: str | None = None          # the notebook could not be read or run (fully)
    notebook: Any = None              # the executed notebook, when it ran
    seconds: float = 0.0
    extras: dict = field(default_factory=dict)   # e.g. "mutants": wrong-variant analysis
    student: str = ""

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def points(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_points(self) -> float:
        return sum(r.max_points for r in self.results)


# ------------------------------------------------------------ fingerprints
def _fp(obj: Any) -> str:
    """A fingerprint of a callable that is equal in any clean process."""
    for attr in ("fget", "__func__"):           # property, classmethod, staticmethod
        inner = getattr(obj, attr, None)
        if inner is not None and not isinstance(obj, types.MethodType):
            obj = inner
    code = getattr(obj, "__code__", None)
    if code is None:
        code = getattr(getattr(obj, "__wrapped__", None), "__code__", None)
    parts = [type(obj).__qualname__, str(getattr(obj, "__module__", "")),
             str(getattr(obj, "__qualname__", getattr(obj, "__name__", "")))]
    if code is not None:   # not line numbers: a file edited between imports is no attack
        parts.append(code.co_filename)
    return "|".join(parts)


def _callables(namespace: dict) -> dict[str, Any]:
    return {k: v for k, v in namespace.items()
            if callable(v) or isinstance(v, (property, staticmethod, classmethod))}


def fingerprints(module_names: Iterable[str]) -> dict[str, dict[str, str]]:
    """{module: {attr: fingerprint}} for functions and classes (and their methods)."""
    out: dict[str, dict[str, str]] = {}
    for name in module_names:
        mod = sys.modules.get(name)
        if mod is None:
            continue
        skip = _KERNEL_REPLACED.get(name, set())
        table: dict[str, str] = {}
        for attr, value in _callables(vars(mod)).items():
            if attr in skip or isinstance(value, types.ModuleType):
                continue
            table[attr] = _fp(value)
            if isinstance(value, type) and getattr(value, "__module__", "") == name:
                for meth, fn in _callables(vars(value)).items():
                    table[f"{attr}.{meth}"] = _fp(fn)
        reg = vars(mod).get("_REGISTRY")
        if name.endswith("exercises.registry") and isinstance(reg, dict):
            for ex_id, ex in reg.items():
                table[f"_REGISTRY[{ex_id}]"] = _fp(getattr(ex, "check_fn", None))
        out[name] = table
    return out


def _differences(baseline: dict, now: dict) -> list[str]:
    diffs = []
    for mod, table in baseline.items():
        current = now.get(mod)
        if current is None:
            continue
        for attr, fp in table.items():   # a removed function fails loudly: not checked
            if attr in current and current[attr] != fp:
                diffs.append(f"{mod}.{attr}")
    return diffs


def watched_modules(check_modules: Sequence[str] = ()) -> list[str]:
    """Modules the grader fingerprints: libraries, engine, the exercise system, checks."""
    names = list(WATCHED_MODULES) + list(ENGINE_MODULES)
    names += sorted(m for m in sys.modules
                    if m == "backprop_course.exercises"
                    or m.startswith("backprop_course.exercises."))
    names += list(check_modules)
    seen: list[str] = []
    for n in names:
        if n not in seen and not n.endswith((".grading", ".cli", ".release", ".mutants")):
            seen.append(n)
    return seen


# ---------------------------------------------------------- inside the kernel
def _write_result(path: str, payload: dict) -> None:
    data = json.dumps(payload).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def grade_in_kernel(namespace: dict, exercise_ids: Sequence[str] | None,
                    check_modules: Sequence[str], baseline: dict, nonce: str,
                    out_path: str, extra: dict | None = None) -> None:
    """Run the official checks on ``namespace`` (the notebook's globals).

    Called by the grader's cell in the submission's kernel, from a freshly
    imported copy of this module. Writes ``{"nonce", "results", "tampered"}``
    as JSON to ``out_path``. ``extra`` asks for optional in-kernel extras:
    ``{"mutants": "solutions/NN.ipynb"}`` also runs the wrong-variant analysis
    of mutants.py on that (executed) solutions notebook.
    """
    from backprop_course.exercises import expect, run_check

    seed = (extra or {}).get("seed")
    for name in check_modules:
        importlib.import_module(name)
    registry.load_lessons()
    modules = [m for m in baseline]
    tampered = _differences(baseline, fingerprints(modules))
    threads_before = set(threading.enumerate())

    if exercise_ids is None:
        chosen = [ex for ex in registry.all_exercises() if ex.answer in namespace]
    else:
        chosen = [registry.get(i) for i in exercise_ids]
    results = []
    for ex in chosen:
        answer = namespace.get(ex.answer, _MISSING)
        if answer is _MISSING:
            results.append(ExerciseResult(
                ex.id, False, f"`{ex.answer}` is not defined in the notebook "
                f"(exercise {ex.id}: {ex.title})", "missing").__dict__)
            continue
        if tampered:
            break
        budget = max(30.0, 10 * ex.timeout)
        borrowed = checking_code(answer, check_modules)
        if borrowed:
            results.append(ExerciseResult(ex.id, False, _BORROWED.format(what=borrowed),
                                          "integrity").__dict__)
            continue
        try:
            with expect.time_limit(budget):
                verdict = run_check(ex.id, answer, seed=seed)
        except expect.TimeLimitExceeded:
            results.append(ExerciseResult(ex.id, False, f"the check ran for more than "
                                          f"{budget:g} s and was stopped", "error").__dict__)
            continue
        except BaseException as exc:    # never let one exercise stop the others
            results.append(ExerciseResult(ex.id, False, f"grading failed: "
                                          f"{type(exc).__name__}: {exc}", "error").__dict__)
            continue
        status = "passed" if verdict.passed else (
            "not_attempted" if verdict.kind == "not_attempted" else "failed")
        message = verdict.message if verdict.passed else verdict.line().split(": ", 1)[-1]
        results.append(ExerciseResult(ex.id, verdict.passed, message, status).__dict__)
    tampered += _differences(baseline, fingerprints(modules))
    started = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    if started:
        tampered.append(f"{len(started)} thread(s) started during the checks")
    payload: dict[str, Any] = {"nonce": nonce, "results": results,
                               "tampered": sorted(set(tampered)),
                               "chosen": [ex.id for ex in chosen]}
    if extra and extra.get("mutants") and not tampered:
        from backprop_course.classroom import mutants
        payload["mutants"] = mutants.analyse(namespace, [ex.id for ex in chosen],
                                             extra["mutants"])
    _write_result(out_path, payload)


_MISSING = object()

_BORROWED = ("no credit: the answer is or calls the course's own checking code ({what}); "
             "an answer must compute its result itself")


def _exercises_dir() -> str:
    import backprop_course.exercises as package
    return os.path.dirname(os.path.abspath(package.__file__)) + os.sep


_CHECKING_PACKAGE = "backprop_course.exercises"


def _checking(obj: Any, check_modules: frozenset[str], where: str) -> str | None:
    """'module.name' if ``obj`` itself is checking code: a module, function or class of
    ``backprop_course.exercises`` (or of an instructor's check modules), or an
    instance of such a class."""
    def ours(module: str) -> bool:
        return (module == _CHECKING_PACKAGE or module.startswith(_CHECKING_PACKAGE + ".")
                or module in check_modules)

    if isinstance(obj, types.ModuleType):
        return obj.__name__ if ours(obj.__name__) else None
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        module = str(getattr(obj, "__module__", "") or "")
        if os.path.abspath(code.co_filename).startswith(where) or ours(module):
            return f"{module}.{getattr(obj, '__qualname__', code.co_name)}"
        return None
    if isinstance(obj, type):
        for base in obj.__mro__:
            if ours(str(getattr(base, "__module__", "") or "")):
                return f"{base.__module__}.{base.__qualname__}"
        return None
    kind = type(obj)
    if ours(str(getattr(kind, "__module__", "") or "")) and not isinstance(
            obj, BaseException):
        return f"an instance of {kind.__module__}.{kind.__qualname__}"
    return None


def checking_code(answer: Any, check_modules: Sequence[str] = ()) -> str | None:
    """What of the course's checking code ``answer`` is or uses, or None.

    Follows the answer's code: every global name it (or a function, class or
    lambda it uses from the notebook) reads, its closures, ``functools.partial``
    and ``__wrapped__``. So ``from backprop_course.exercises.mlp import
    _soft_ce_reference as softmax_cross_entropy``, a wrapper that calls it,
    ``expect.grad_of`` or an ``import`` inside the function are all found, however
    renamed. Arguments the checks pass in are not the answer's code, so calling
    them is fine. Not found: names built at run time (``getattr(m, "_" + "ref")``),
    which is what reading a surprising submission is for.
    """
    where = _exercises_dir()
    mods = frozenset(check_modules)
    seen: set[int] = set()
    todo: list[Any] = [answer]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or obj is None:
            continue
        seen.add(id(obj))
        hit = _checking(obj, mods, where)
        if hit:
            return hit
        if isinstance(obj, (types.ModuleType, str, bytes, int, float, complex, bool)):
            continue
        for attr in ("__func__", "__wrapped__", "func"):        # methods, wraps, partial
            inner = getattr(obj, attr, None)
            if inner is not None and not isinstance(inner, (str, bytes)):
                todo.append(inner)
        if isinstance(obj, type):
            if str(obj.__module__).split(".")[0] in ("builtins", "backprop_course",
                                                     "numpy"):
                continue                    # the engine and libraries: not the learner's
            todo += [v for k, v in vars(obj).items() if not k.startswith("__")
                     or k in ("__init__", "__call__")]
            todo += list(obj.__bases__)
            continue
        code = getattr(obj, "__code__", None)
        if not isinstance(code, types.CodeType):
            continue
        if os.sep + "site-packages" + os.sep in code.co_filename or os.path.abspath(
                code.co_filename).startswith(os.path.dirname(where.rstrip(os.sep))):
            continue                        # library or engine code: not the learner's
        globs = getattr(obj, "__globals__", {}) or {}
        todo += [c.cell_contents for c in (getattr(obj, "__closure__", None) or ())
                 if _cell_filled(c)]
        todo += list(getattr(obj, "__defaults__", None) or ())
        codes = [code]
        while codes:
            co = codes.pop()
            for name in co.co_names:
                if name.startswith(_CHECKING_PACKAGE):           # import inside
                    return name
                if name in globs:
                    todo.append(globs[name])
            if "backprop_course" in co.co_names and "exercises" in co.co_names:
                return "backprop_course.exercises (through the package)"
            codes += [c for c in co.co_consts if isinstance(c, types.CodeType)]
    return None


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 -- reading an empty cell raises ValueError
    except ValueError:
        return False
    return True


_GRADER_CELL = """\
def __backprop_course_grade__():
    import sys, importlib
    namespace = sys._getframe(1).f_globals
    for name in list(sys.modules):
        if (name == "backprop_course.exercises"
                or name.startswith(("backprop_course.exercises.",
                                    "backprop_course.classroom."))
                or name in {mods!r}):
            del sys.modules[name]
    for path in {paths!r}:
        if path not in sys.path:
            sys.path.insert(0, path)
    importlib.invalidate_caches()
    grading = importlib.import_module("backprop_course.classroom.grading")
    grading.grade_in_kernel(namespace, {ids!r}, {mods!r}, {baseline!r}, {nonce!r},
                            {out!r}, {extra!r})
__backprop_course_grade__()
del __backprop_course_grade__
"""


# ------------------------------------------------------------ in the grader
def _start_kernel_quietly(client) -> Any:
    """nbclient's setup_kernel, with the kernel's own log lines silenced."""
    return client.setup_kernel(stderr=subprocess.DEVNULL)


def load_checks(check_modules: Sequence[str] = (), extra_paths: Sequence[str] = ()) -> None:
    """Import the lesson checks and any extra check modules (from ``extra_paths``)."""
    for p in extra_paths:
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    for name in check_modules:
        importlib.import_module(name)
    registry.load_lessons()


def _cell_source(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def exercise_cell_index(nb: Any, ids: Sequence[str]) -> dict[str, int]:
    """{exercise id: index of the cell that holds its answer} for the ids found in ``nb``.

    The answer cell starts with ``# Exercise <id>:``; failing that, it is the
    first cell that defines the exercise's answer name.
    """
    from backprop_course.classroom.release import EXERCISE_LINE

    found: dict[str, int] = {}
    cells = list(getattr(nb, "cells", None) or [])
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        first = _cell_source(cell).lstrip("\n").split("\n", 1)[0].strip()
        m = EXERCISE_LINE.match(first)
        if m and m.group(1) in ids and m.group(1) not in found:
            found[m.group(1)] = index
    for ex_id in ids:
        if ex_id in found:
            continue
        try:
            answer = registry.get(ex_id).answer
        except KeyError:
            continue
        pattern = re.compile(rf"^\s*(def|class)\s+{answer}\b|^\s*{answer}\s*=", re.M)
        for index, cell in enumerate(cells):
            if cell.get("cell_type") == "code" and pattern.search(_cell_source(cell)):
                found[ex_id] = index
                break
    return found


def in_notebook_order(nb: Any, ids: Sequence[str]) -> list[str]:
    """``ids`` in the order their answer cells appear in ``nb`` (the rest after, by id)."""
    where = exercise_cell_index(nb, ids) if nb is not None else {}
    return sorted(ids, key=lambda i: (where.get(i, 10 ** 9), i))


def assignment_notebook(assignment: str) -> str:
    """The lesson notebook an ``--assignment`` names: '03', '3' or '03_mlp_from_scratch'."""
    names = registry.notebooks()
    text = str(assignment).strip()
    if text.isdigit():
        text = f"{int(text):02d}"
    matches = [n for n in names if n == text or n.split("_", 1)[0] == text]
    if len(matches) != 1:
        raise ValueError(f"no lesson {assignment!r} with exercises; known: "
                         f"{', '.join(names) or 'none'}")
    return matches[0]


def _exercises_for(nb: Any, path: Path) -> list[str] | None:
    """Exercise ids for a submission: by notebook metadata, then file name; None: by names.

    In the order the notebook presents them (course order).
    """
    names = registry.notebooks()
    meta = {}
    if nb is not None:
        meta = nb.metadata.get("backprop_course", {}) if hasattr(nb, "metadata") else {}
    chosen = meta.get("notebook") if isinstance(meta, dict) else None
    if chosen not in names:
        stem = path.stem
        matches = [n for n in names if n in stem]
        chosen = max(matches, key=len) if matches else None
    if chosen is None:
        return None
    return in_notebook_order(nb, [ex.id for ex in registry.all_exercises(chosen)])


def _rows_for_error(ids: list[str] | None, message: str, status: str = "error"
                    ) -> list[ExerciseResult]:
    return [ExerciseResult(i, False, message, status) for i in (ids or ["-"])]


def _score(results: list[ExerciseResult]) -> None:
    """Fill in points from the registry: an exercise's points if passed, else 0."""
    for r in results:
        try:
            worth = registry.get(r.exercise).points
        except KeyError:            # the "-" row of a file that names no exercise
            worth = 0.0
        r.max_points = worth
        r.points = worth if r.passed else 0.0


def run_submission(path: Path | str, *, timeout: float = 300, cell_timeout: float = 60,
                   grade_timeout: float | None = None, check_modules: Sequence[str] = (),
                   extra_paths: Sequence[str] = (), extra: dict | None = None,
                   exercises: Sequence[str] | None = None, seed: int | None = None
                   ) -> SubmissionReport:
    """Execute one notebook in a fresh kernel, then grade it there. Never raises.

    ``exercises``: grade exactly these ids (``--assignment``); default: the
    notebook's own lesson (its metadata or file name), else every exercise whose
    answer name it defines. ``seed`` fixes the checks' random inputs (``grade``
    uses one seed for a whole class, so every student gets the same inputs).
    The report is plain data (picklable): this is the one function that grades
    one submission, so it can run in a worker or a sandboxed subprocess.
    """
    report = _run_submission(Path(path), timeout=timeout, cell_timeout=cell_timeout,
                             grade_timeout=grade_timeout, check_modules=check_modules,
                             extra_paths=extra_paths, extra=extra, exercises=exercises,
                             seed=seed)
    _score(report.results)
    return report


def _run_submission(path: Path, *, timeout: float, cell_timeout: float,
                    grade_timeout: float | None, check_modules: Sequence[str],
                    extra_paths: Sequence[str], extra: dict | None,
                    exercises: Sequence[str] | None, seed: int | None) -> SubmissionReport:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    report = SubmissionReport(path)
    start = time.monotonic()
    load_checks(check_modules, extra_paths)
    given = list(exercises) if exercises is not None else None
    if path.is_dir():
        report.error = f"{path} is a folder, not a notebook"
        report.results = _rows_for_error(given, report.error, "unreadable")
        return report
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = "no such file" if not path.exists() else f"{type(exc).__name__}: {exc}"
        report.error = f"cannot read {path}: {why}"
        report.results = _rows_for_error(given or _exercises_for(None, path), report.error,
                                         "unreadable")
        return report
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        report.error = f"{path.name} is not a valid notebook ({first[:120]})"
        report.results = _rows_for_error(given or _exercises_for(None, path), report.error,
                                         "unreadable")
        return report
    ids = in_notebook_order(nb, given) if given is not None else _exercises_for(nb, path)
    cell_of = exercise_cell_index(nb, ids or [])
    client = NotebookClient(nb, timeout=int(math.ceil(cell_timeout)), kernel_name="python3",
                            allow_errors=True, interrupt_on_timeout=False,
                            shutdown_kernel="immediate", record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}},
                            log=_QUIET)
    notes: list[str] = []
    halted: tuple[int, str] | None = None       # (cell index, why) the run stopped at
    interrupted: dict[int, str] = {}             # cell index -> why (run went on after)
    usable = False
    deadline = start + timeout
    workdir = tempfile.mkdtemp(prefix="bpc-grade-")
    out_path = os.path.join(workdir, f"{secrets.token_hex(16)}.json")
    try:
        with _start_kernel_quietly(client):
            usable = True
            n_cells = len(nb.cells)
            for index, cell in enumerate(list(nb.cells)):
                if cell.cell_type != "code":
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    halted = (index, f"timed out after {timeout:g} s (the notebook's time "
                                     f"limit) before cell {index + 1}")
                    notes.append(halted[1])
                    break
                by_notebook = left < cell_timeout
                client.timeout = max(1, int(min(cell_timeout, left)))
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    stopped = _interrupt(client, nb)
                    if by_notebook:
                        halted = (index, f"timed out after {timeout:g} s (the notebook's "
                                         f"time limit) in cell {index + 1}")
                    else:
                        why = (f"cell {index + 1} ran longer than {client.timeout} s and "
                               f"was interrupted")
                        interrupted[index] = why
                        if not stopped:
                            halted = (index, f"timed out after {client.timeout} s in cell "
                                             f"{index + 1}")
                    if not stopped:
                        usable = False
                        notes.append(f"{halted[1] if halted else ''}: the notebook's code "
                                     f"could not be stopped, so nothing could be graded")
                        break
                    notes.append(halted[1] if halted else interrupted[index])
                    if halted:
                        break
                except DeadKernelError:
                    notes.append(f"the kernel died while running cell {index + 1}")
                    usable = False
                    break
            if usable:
                nonce = secrets.token_hex(16)   # made up only now: learner code has run
                baseline = fingerprints(watched_modules(check_modules))
                source = _GRADER_CELL.format(
                    mods=tuple(check_modules), paths=tuple(str(p) for p in extra_paths),
                    ids=ids, baseline=baseline, nonce=nonce, out=out_path,
                    extra={**dict(extra or {}), "seed": seed})
                grader = nbformat.v4.new_code_cell(source)
                n_ex = len(ids) if ids else len(registry.all_exercises())
                budget = grade_timeout if grade_timeout else 60 + 30 * n_ex
                client.timeout = max(10, int(budget))
                nb.cells.append(grader)
                try:
                    client.execute_cell(grader, len(nb.cells) - 1)
                except CellTimeoutError:
                    notes.append(f"grading ran longer than {client.timeout} s "
                                 "(is the notebook's code stuck?)")
                except DeadKernelError:
                    notes.append("the kernel died while grading")
                finally:
                    del nb.cells[n_cells:]
                report.results, extra_note = _read_results(out_path, nonce, ids, grader)
                report.extras = extra_note.pop("extras", {})
                notes += extra_note.get("notes", [])
    except Exception as exc:  # kernel failed to start, zmq trouble...
        # (after a failed interrupt nbclient has already shut the kernel down, and its
        # own cleanup then trips on the missing kernel manager: nothing to report)
        if not (isinstance(exc, AssertionError) and client.km is None and not usable):
            notes.append(f"could not run the notebook: {type(exc).__name__}: {exc}")
    finally:
        try:
            os.remove(out_path)
        except OSError:
            pass
        os.rmdir(workdir) if os.path.isdir(workdir) and not os.listdir(workdir) else None
    report.notebook = nb
    report.seconds = time.monotonic() - start
    if notes:
        report.error = "; ".join(notes)
    if not report.results:
        status = "timeout" if halted else "error"
        report.results = _rows_for_error(ids, report.error or "no result from the grader",
                                         status)
        return report
    for r in report.results:
        cell = cell_of.get(r.exercise)
        if r.passed:
            continue
        if halted and (cell is None or cell >= halted[0]) and r.status in (
                "missing", "not_attempted", "failed", "error"):
            where = f" (its cell, cell {cell + 1}, never finished)" if cell is not None \
                else ""
            r.status, r.message = "timeout", f"{halted[1]}: the notebook did not reach " \
                f"this exercise{where}"
        elif cell is not None and cell in interrupted and r.status in ("missing", "error"):
            r.status, r.message = "timeout", f"{interrupted[cell]}: this exercise's cell " \
                f"did not finish ({r.message})"
        elif report.error and r.status in ("missing", "error"):
            r.message += f" [{report.error}]"
    return report


def _interrupt(client: Any, nb: Any, wait: int = 5) -> bool:
    """Interrupt the kernel after a timeout; True if it answers again within ``wait`` s.

    The kernel client is replaced too: the timed-out cell's listeners may still
    hold messages meant for the next cell.
    """
    from nbclient.util import run_sync

    try:
        run_sync(client.km.interrupt_kernel)()
        client.kc.stop_channels()
    except Exception:
        return False
    saved, client.startup_timeout = client.startup_timeout, wait
    try:
        client.start_new_kernel_client()    # waits for the kernel to answer again
        return True
    except Exception:
        return False
    finally:
        client.startup_timeout = saved


def _read_results(out_path: str, nonce: str, ids: list[str] | None, grader_cell: Any
                  ) -> tuple[list[ExerciseResult], dict]:
    notes: dict[str, Any] = {"notes": []}
    try:
        with open(out_path, encoding="utf-8") as f:
            payload = json.load(f)
    except (OSError, ValueError):
        why = "the grader's checks did not finish"
        errors = [o for o in grader_cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            why += f" ({errors[0].get('ename')}: {str(errors[0].get('evalue'))[:150]})"
        notes["notes"].append(why)
        return [], notes
    if not isinstance(payload, dict) or payload.get("nonce") != nonce:
        return _rows_for_error(ids, "the grader's result was forged or corrupted",
                               "tampered"), notes
    chosen = payload.get("chosen") or ids or []
    if payload.get("tampered"):
        what = ", ".join(payload["tampered"][:5])
        return _rows_for_error(chosen, f"no credit: the notebook changed code the grader "
                                       f"relies on ({what})", "tampered"), notes
    results = [ExerciseResult(**r) for r in payload.get("results", [])]
    notes["extras"] = {k: v for k, v in payload.items() if k == "mutants"}
    if not results:
        results = [ExerciseResult("-", False, "no exercise answers found in the notebook "
                                  "(none of the known answer names is defined)", "missing")]
    return results, notes


# ------------------------------------------------------------ commands
@dataclass(frozen=True)
class Submission:
    """One notebook to grade and whose it is."""

    path: Path
    student: str


def _skip(path: Path) -> bool:
    return (".bak-" in path.name or path.name.startswith(".")
            or ".ipynb_checkpoints" in path.parts)


def student_name(path: Path, base: Path | None = None) -> str:
    """Whose notebook this is.

    Under a folder argument, a notebook in a subfolder belongs to that
    subfolder (``submitted/alice/03.ipynb``: alice, nbgrader's layout); otherwise
    the file name without the lesson's name (``alice_03_mlp_from_scratch``:
    alice), or the parent folder when nothing is left.
    """
    if base is not None:
        rel = path.relative_to(base)
        if len(rel.parts) > 1:
            return rel.parts[0]
    stem = path.stem
    for name in sorted(registry.notebooks(), key=len, reverse=True):
        stem = stem.replace(name, "")
    stem = re.sub(r"(?<![a-z])\d\d(?![a-z0-9])", "", stem).strip(" _-.")
    return stem or path.parent.name or path.stem


def expand_submissions(paths: Sequence[Path | str]) -> list[Submission]:
    """Files as given; a folder: every notebook in it and its subfolders, sorted.

    A folder without notebooks, a missing path or a non-notebook file stays in
    the list, so its row can say what is wrong.
    """
    found: list[Submission] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            notebooks = sorted(p for p in path.rglob("*.ipynb")
                               if p.is_file() and not _skip(p.relative_to(path)))
            if not notebooks:
                found.append(Submission(path, path.name))
            found += [Submission(p, student_name(p, path)) for p in notebooks]
        else:
            found.append(Submission(path, student_name(path)))
    return found


def _grade_one(args: tuple) -> SubmissionReport:
    """Grade one submission; the entry point of a ``--jobs`` worker process."""
    sub, options = args
    options = dict(options)
    run = run_submission
    if options.pop("sandbox", False):
        from backprop_course.classroom.sandbox import run_submission_sandboxed as run
    report = run(sub.path, **options)
    report.student = sub.student
    return report


def grade(submissions: Sequence[Path | str], csv_path: Path | str | None = None, *,
          timeout: float = 300, cell_timeout: float = 60, check_modules: Sequence[str] = (),
          extra_paths: Sequence[str] = (), assignment: str | None = None, jobs: int = 1,
          seed: int | None = None, summary_csv: Path | str | None = None,
          out=None, sandbox: bool = False) -> list[SubmissionReport]:
    """Grade every submission (each in its own kernel); write the CSVs; print a summary.

    ``assignment``: grade every submission on that lesson's exercises. ``jobs``:
    grade this many submissions at a time (each still in its own kernel; the
    grades are the same as one at a time). ``seed``: the checks' random inputs
    (default: drawn once per run, the same for every submission). ``sandbox``:
    grade each submission inside its own bwrap sandbox (sandbox.py).
    """
    out = out or sys.stdout
    load_checks(check_modules, extra_paths)
    ids = None
    if assignment is not None:
        lesson = assignment_notebook(assignment)
        ids = [ex.id for ex in registry.all_exercises(lesson)]
    if seed is None:
        seed = secrets.randbelow(2 ** 32)
    options = dict(timeout=timeout, cell_timeout=cell_timeout, check_modules=check_modules,
                   extra_paths=tuple(str(p) for p in extra_paths), exercises=ids, seed=seed,
                   sandbox=sandbox)
    subs = expand_submissions(submissions)
    reports: list[SubmissionReport | None] = [None] * len(subs)
    started = time.monotonic()

    def done(i: int, rep: SubmissionReport) -> None:
        reports[i] = rep
        n = sum(r is not None for r in reports)
        note = f"  ({rep.error})" if rep.error else ""
        print(f"[{n}/{len(subs)}] {rep.student}: {rep.path}  {rep.points:g}/"
              f"{rep.max_points:g} points  {rep.seconds:.0f} s{note}", file=out, flush=True)

    if jobs <= 1 or len(subs) <= 1:
        for i, sub in enumerate(subs):
            done(i, _grade_one((sub, options)))
    else:
        import concurrent.futures as cf
        import multiprocessing
        context = multiprocessing.get_context("spawn")   # no forked zmq or threads
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_grade_one, (sub, options)): i
                       for i, sub in enumerate(subs)}
            for future in cf.as_completed(futures):
                i = futures[future]
                try:
                    rep = future.result()
                except Exception as exc:        # a worker died: say so, in the CSV
                    rep = SubmissionReport(subs[i].path, student=subs[i].student,
                                           error=f"grading failed: {type(exc).__name__}: "
                                                 f"{exc}")
                    rep.results = _rows_for_error(ids, rep.error)
                    _score(rep.results)
                done(i, rep)
    final = [r for r in reports if r is not None]
    print(f"graded {len(final)} submissions in {time.monotonic() - started:.0f} s "
          f"(--jobs {max(1, jobs)}, seed {seed})", file=out, flush=True)
    if csv_path is not None:
        write_csv(final, csv_path)
    if summary_csv is not None:
        write_summary_csv(final, summary_csv)
    print(summary_table(final), file=out)
    return final


CSV_COLUMNS = ["student", "submission", "exercise", "points", "max_points", "passed",
               "status", "message"]


def write_csv(reports: Sequence[SubmissionReport], csv_path: Path | str) -> None:
    """One row per submission and exercise (and one for a file that names none)."""
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for rep in reports:
            for r in rep.results:
                writer.writerow([rep.student, str(rep.path), r.exercise, f"{r.points:g}",
                                 f"{r.max_points:g}", str(bool(r.passed)), r.status,
                                 r.message])


def student_totals(reports: Sequence[SubmissionReport]) -> list[dict]:
    """Per student: points and the maximum, each exercise counted once (its best row)."""
    best: dict[str, dict[str, tuple[float, float]]] = {}
    subs: dict[str, list[str]] = {}
    problems: dict[str, list[str]] = {}
    for rep in reports:
        mine = best.setdefault(rep.student, {})
        subs.setdefault(rep.student, []).append(str(rep.path))
        if rep.error:
            problems.setdefault(rep.student, []).append(f"{rep.path.name}: {rep.error}")
        for r in rep.results:
            if r.exercise == "-":
                continue
            old = mine.get(r.exercise, (0.0, r.max_points))
            mine[r.exercise] = (max(old[0], r.points), max(old[1], r.max_points))
    rows = []
    for student in sorted(best):
        points = sum(p for p, _ in best[student].values())
        worth = sum(m for _, m in best[student].values())
        rows.append({"student": student, "points": points, "max_points": worth,
                     "exercises_passed": sum(p > 0 for p, _ in best[student].values()),
                     "exercises": len(best[student]),
                     "submissions": ";".join(subs[student]),
                     "problems": "; ".join(problems.get(student, []))})
    return rows


def write_summary_csv(reports: Sequence[SubmissionReport], csv_path: Path | str) -> None:
    rows = student_totals(reports)
    columns = ["student", "points", "max_points", "exercises_passed", "exercises",
               "submissions", "problems"]
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "points": f"{row['points']:g}",
                             "max_points": f"{row['max_points']:g}"})


def summary_table(reports: Sequence[SubmissionReport]) -> str:
    if not reports:
        return "no submissions"
    width = max(len(str(r.path)) for r in reports)
    lines = [f"{'submission'.ljust(width)}  points  problems"]
    for rep in reports:
        failed = [r.exercise for r in rep.results if not r.passed]
        note = rep.error or (", ".join(failed) if failed else "")
        score = f"{rep.points:g}/{rep.max_points:g}"
        lines.append(f"{str(rep.path).ljust(width)}  {score:>6}  {note}")
    return "\n".join(lines)


def scorecard(report: SubmissionReport) -> str:
    """The learner's view of one notebook: one line per exercise."""
    lines = [f"{report.path.name}"]
    for r in report.results:
        mark = {"passed": PASS, "not_attempted": "\u00b7"}.get(r.status, FAIL)
        text = {"passed": "passed", "not_attempted": "not attempted yet"}.get(
            r.status, r.message)
        lines.append(f"  {mark} {r.exercise:<28} {text}")
    if report.error:
        lines.append(f"  note: {report.error}")
    return "\n".join(lines)


def progress(directory: Path | str = "exercises", *, timeout: float = 300,
             cell_timeout: float = 60, check_modules: Sequence[str] = (),
             extra_paths: Sequence[str] = (), out=None) -> list[SubmissionReport]:
    """Run every exercise notebook in ``directory`` and print a scorecard per exercise."""
    out = out or sys.stdout
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no directory {directory}: pass the folder that holds "
                                f"your exercise notebooks")
    notebooks = sorted(p for p in directory.glob("*.ipynb")
                       if ".bak-" not in p.name and not p.name.startswith("."))
    if not notebooks:
        raise FileNotFoundError(f"{directory} holds no .ipynb notebooks")
    reports = []
    for nb_path in notebooks:
        rep = run_submission(nb_path, timeout=timeout, cell_timeout=cell_timeout,
                             check_modules=check_modules, extra_paths=extra_paths)
        reports.append(rep)
        print(scorecard(rep), file=out, flush=True)
    results = [r for rep in reports for r in rep.results if r.exercise != "-"]
    done = sum(r.passed for r in results)
    todo = sum(r.status == "not_attempted" for r in results)
    print(f"\n{done}/{len(results)} exercises passed, {todo} not attempted yet, "
          f"{len(results) - done - todo} to fix", file=out)
    return reports

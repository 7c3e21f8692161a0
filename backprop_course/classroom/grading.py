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


@dataclass
class ExerciseResult:
    """One row of a grade: did this submission pass this exercise, and why not."""

    exercise: str
    passed: bool
    message: str
    status: str = "failed"    # passed | failed | not_attempted | missing | error | tampered


@dataclass
class SubmissionReport:
    path: Path
    results: list[ExerciseResult] = field(default_factory=list)
    error: str | None = None          # the notebook could not be run (fully)
    notebook: Any = None              # the executed notebook, when it ran
    seconds: float = 0.0
    extras: dict = field(default_factory=dict)   # e.g. "mutants": wrong-variant analysis

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)


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
        try:
            with expect.time_limit(budget):
                verdict = run_check(ex.id, answer)
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


def _exercises_for(nb: Any, path: Path) -> list[str] | None:
    """Exercise ids for a submission: by notebook metadata, then file name; None: by names."""
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
    return [ex.id for ex in registry.all_exercises(chosen)]


def _rows_for_error(ids: list[str] | None, message: str, status: str = "error"
                    ) -> list[ExerciseResult]:
    return [ExerciseResult(i, False, message, status) for i in (ids or ["-"])]


def run_submission(path: Path | str, *, timeout: float = 300, cell_timeout: float = 60,
                   grade_timeout: float | None = None, check_modules: Sequence[str] = (),
                   extra_paths: Sequence[str] = (), extra: dict | None = None
                   ) -> SubmissionReport:
    """Execute one notebook in a fresh kernel, then grade it there. Never raises."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    report = SubmissionReport(path)
    start = time.monotonic()
    load_checks(check_modules, extra_paths)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.error = f"cannot read {path.name}: {type(exc).__name__}: {exc}"
        report.results = _rows_for_error(_exercises_for(None, path), report.error)
        return report
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        report.error = f"{path.name} is not a valid notebook ({first[:120]})"
        report.results = _rows_for_error(_exercises_for(None, path), report.error)
        return report
    ids = _exercises_for(nb, path)
    client = NotebookClient(nb, timeout=int(math.ceil(cell_timeout)), kernel_name="python3",
                            allow_errors=True, interrupt_on_timeout=False,
                            shutdown_kernel="immediate", record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}},
                            log=_QUIET)
    notes: list[str] = []
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
                    notes.append(f"the notebook ran out of its {timeout:g} s time limit "
                                 f"before cell {index + 1}")
                    break
                client.timeout = max(1, int(min(cell_timeout, left)))
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    notes.append(f"cell {index + 1} ran longer than {client.timeout} s "
                                 f"and was interrupted")
                    if not _interrupt(client, nb):
                        notes.append("the notebook's code could not be stopped")
                        usable = False
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
                    extra=dict(extra or {}))
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
        report.results = _rows_for_error(ids, report.error or "no result from the grader")
    elif report.error:
        for r in report.results:
            if not r.passed and r.status in ("missing", "error"):
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
def grade(submissions: Sequence[Path | str], csv_path: Path | str | None = None, *,
          timeout: float = 300, cell_timeout: float = 60, check_modules: Sequence[str] = (),
          extra_paths: Sequence[str] = (), out=None, sandbox: bool = False
          ) -> list[SubmissionReport]:
    """Grade every submission (each in its own kernel); write the CSV; print a summary.

    ``sandbox``: grade each submission inside its own bwrap sandbox (sandbox.py).
    """
    out = out or sys.stdout
    run = run_submission
    if sandbox:
        from backprop_course.classroom.sandbox import run_submission_sandboxed as run
    reports = []
    for sub in submissions:
        print(f"grading {sub} ...", file=out, flush=True)
        reports.append(run(sub, timeout=timeout, cell_timeout=cell_timeout,
                           check_modules=check_modules, extra_paths=extra_paths))
    if csv_path is not None:
        write_csv(reports, csv_path)
    print(summary_table(reports), file=out)
    return reports


def write_csv(reports: Sequence[SubmissionReport], csv_path: Path | str) -> None:
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "exercise", "passed", "message"])
        for rep in reports:
            for r in rep.results:
                writer.writerow([str(rep.path), r.exercise, str(bool(r.passed)), r.message])


def summary_table(reports: Sequence[SubmissionReport]) -> str:
    if not reports:
        return "no submissions"
    width = max(len(str(r.path)) for r in reports)
    lines = [f"{'submission'.ljust(width)}  passed  problems"]
    for rep in reports:
        total = len([r for r in rep.results if r.exercise != "-"]) or len(rep.results)
        failed = [r.exercise for r in rep.results if not r.passed]
        note = rep.error or (", ".join(failed) if failed else "")
        lines.append(f"{str(rep.path).ljust(width)}  {rep.passed:>2}/{total:<3}  {note}")
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

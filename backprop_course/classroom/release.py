"""Generate the learners' exercises/ notebooks from the solutions/ notebooks.

One source: ``solutions/NN_name.ipynb`` holds the answers between lines
``# BEGIN SOLUTION`` and ``# END SOLUTION`` (the spelling nbgrader and
otter-grader both accept). Each such region becomes one line::

    raise NotImplementedError("Exercise <id>: replace this line with your code")

where ``<id>`` comes from the cell's first line ``# Exercise <id>: <title>``.
Outputs and execution counts are cleared; cells that call ``check(`` (or that
would raise at top level) get the ``raises-exception`` tag, so Run All shows
every verdict; cells tagged ``solution-only`` are left out.

A learner's work is never overwritten: every generated notebook records a
hash of its cells' sources in ``metadata.backprop_course.release_hash``; if
the file on disk no longer matches its own hash (a cell was edited) or holds
outputs (it was run), release refuses (or, with ``force``, keeps a
``<name>.bak-<time>.ipynb`` copy first).

``check`` (CI's sync step) judges what git has committed when the file on
disk holds a learner's work, so a learner can run the test command at any
time; a clean checkout (CI) has nothing else on disk.
"""
from __future__ import annotations

import ast
import copy
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import nbformat

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
EXERCISE_LINE = re.compile(r"^#\s*Exercise\s+(\d\d-[a-z0-9]+(?:-[a-z0-9]+)*)\s*:\s*(.*)$")
CHECK_CALL = re.compile(r"(^|[^\w.])check\s*\(", re.M)
META_KEY = "backprop_course"
RAISES_TAG = "raises-exception"
SOLUTION_ONLY_TAG = "solution-only"
STUB_TEXT = "replace this line with your code"
MARKDOWN_STUB = "*Write your answer here.*"
# cell metadata that records a run, not the content
_VOLATILE_CELL_META = ("execution", "ExecuteTime", "collapsed", "scrolled")


class ReleaseError(Exception):
    """A problem in the solutions (or the exercises dir) that release cannot fix."""


@dataclass
class ReleaseReport:
    written: list[Path] = field(default_factory=list)     # created or updated
    unchanged: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)       # --check: out of date / missing
    refused: list[Path] = field(default_factory=list)     # learner-edited, not overwritten
    backups: list[tuple[Path, Path]] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)     # exercises/ without a solution
    messages: list[str] = field(default_factory=list)
    # --check: learner's work on disk; git's committed copy was judged instead
    judged_committed: list[Path] = field(default_factory=list)
    # --check: learner's work on disk and no committed copy to judge (not counted)
    not_judged: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.stale or self.refused)


# ------------------------------------------------------------------ transform
def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _strip_regions(source: str, where: str, exercise_id: str | None,
                   markdown: bool = False) -> tuple[str, bool, int]:
    """Replace every BEGIN/END SOLUTION region; return (text, any_found, top-level count)."""
    out: list[str] = []
    inside_since: int | None = None
    found = False
    top_level = 0
    for n, line in enumerate(source.split("\n"), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside_since is not None:
                raise ReleaseError(f"{where}: '{BEGIN}' on line {n} inside the region "
                                   f"opened on line {inside_since} (regions cannot nest)")
            inside_since = n
            found = True
            indent = line[: len(line) - len(line.lstrip())]
            if markdown:
                out.append(MARKDOWN_STUB)
            else:
                if exercise_id is None:
                    raise ReleaseError(
                        f"{where}: a solution region, but the cell does not start with "
                        f"'# Exercise <id>: <title>' (needed to name the exercise in "
                        f"the stub)")
                out.append(f'{indent}raise NotImplementedError("Exercise {exercise_id}: '
                           f'{STUB_TEXT}")')
                if not indent:
                    top_level += 1
            continue
        if stripped == END:
            if inside_since is None:
                raise ReleaseError(f"{where}: '{END}' on line {n} without a '{BEGIN}'")
            inside_since = None
            continue
        if inside_since is None:
            out.append(line)
    if inside_since is not None:
        raise ReleaseError(f"{where}: '{BEGIN}' on line {inside_since} is never closed "
                           f"by '{END}'")
    return "\n".join(out), found, top_level


def _compiles(source: str) -> str | None:
    """None if the code cell parses (IPython magics and shell lines blanked), else why."""
    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.split("\n")]
    try:
        ast.parse("\n".join(lines))
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    return None


def source_hash(nb) -> str:
    """sha256 over the cells' types and sources: what a learner edits."""
    h = hashlib.sha256()
    for cell in nb.cells:
        h.update(cell.get("cell_type", "").encode())
        h.update(b"\0")
        h.update(_source(cell).encode())
        h.update(b"\1")
    return h.hexdigest()


def make_exercise_notebook(solution, name: str, known_ids: Iterable[str] | None = None):
    """The exercises notebook for one solutions notebook (a new NotebookNode).

    ``name`` ("solutions/01_chain_rule.ipynb") is used in error messages;
    ``known_ids``, if given, are the registered exercise ids a cell may declare.
    """
    known = set(known_ids) if known_ids is not None else None
    nb = copy.deepcopy(solution)
    cells = []
    ids_seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if SOLUTION_ONLY_TAG in tags:
            continue
        where = f"{name}, cell {index + 1}"
        src = _source(cell)
        if cell.cell_type == "code":
            first = src.lstrip("\n").split("\n", 1)[0].strip()
            m = EXERCISE_LINE.match(first)
            exercise_id = m.group(1) if m else None
            if first.lower().startswith("# exercise") and not m:
                raise ReleaseError(f"{where}: first line {first!r} should read "
                                   f"'# Exercise <id>: <title>' with an id like "
                                   f"01-chain-rule")
            new_src, found, top_level = _strip_regions(src, where, exercise_id)
            if exercise_id is not None:
                if known is not None and exercise_id not in known:
                    raise ReleaseError(f"{where}: exercise {exercise_id!r} has no registered "
                                       f"check (known: {', '.join(sorted(known)) or 'none'})")
                if exercise_id in ids_seen:
                    raise ReleaseError(f"{where}: exercise {exercise_id} is declared again "
                                       f"(first in cell {ids_seen[exercise_id]})")
                ids_seen[exercise_id] = index + 1
                if not found:
                    raise ReleaseError(f"{where}: declares exercise {exercise_id} but has "
                                       f"no '{BEGIN}' ... '{END}' region")
            if found:
                why = _compiles(new_src)
                if why:
                    raise ReleaseError(f"{where}: the generated stub is not valid Python "
                                       f"({why}); put whole statements inside the region")
            cell.source = new_src
            cell.outputs = []
            cell.execution_count = None
            if (CHECK_CALL.search(new_src) or top_level) and RAISES_TAG not in tags:
                tags.append(RAISES_TAG)
        else:
            if BEGIN in src:
                src, _, _ = _strip_regions(src, where, None, markdown=True)
            cell.source = src
        meta = cell.setdefault("metadata", {})
        for key in _VOLATILE_CELL_META:
            meta.pop(key, None)
        if tags:
            meta["tags"] = tags
        else:
            meta.pop("tags", None)
        for line in _source(cell).split("\n"):
            if line.strip() in (BEGIN, END):
                raise ReleaseError(f"{where}: solution marker left in the output")
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    nb.metadata.pop(META_KEY, None)
    stem = Path(name).stem
    nb.metadata[META_KEY] = {
        "notebook": stem,
        "generated_from": f"solutions/{Path(name).name}",
        "note": "generated by `backprop-course release`; edit solutions/, not this file",
    }
    nb.metadata[META_KEY]["release_hash"] = source_hash(nb)
    return nb


def dumps(nb) -> str:
    """Stable JSON text for a notebook (same input, same bytes)."""
    return nbformat.writes(nb, version=4) + "\n"


def read_notebook(path: Path):
    """nbformat v4 notebook at ``path``; ReleaseError saying what is wrong otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReleaseError(f"{path}: cannot read it ({exc})") from None
    try:
        json.loads(text)
    except ValueError as exc:
        raise ReleaseError(f"{path}: not a notebook (invalid JSON: {exc})") from None
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as exc:
        raise ReleaseError(f"{path}: not a valid notebook ({exc})") from None


def learner_edited(path: Path) -> bool:
    """True if the notebook at ``path`` holds a learner's work: edited cells or outputs.

    Opening and saving a notebook changes its metadata, not its cells, so
    that alone does not count.
    """
    try:
        nb = read_notebook(path)
    except ReleaseError:
        return True                     # unreadable: treat as the learner's, keep it
    if any(cell.get("outputs") for cell in nb.cells if cell.get("cell_type") == "code"):
        return True
    recorded = nb.metadata.get(META_KEY, {}).get("release_hash")
    if not recorded:
        return True
    meta = nb.metadata[META_KEY]
    saved = meta.pop("release_hash")
    try:
        return source_hash(nb) != saved
    finally:
        meta["release_hash"] = saved


def committed_text(path: Path) -> str | None:
    """The file at ``path`` as git's HEAD commit holds it; None outside git or untracked."""
    import subprocess
    try:
        out = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.parent,
                             capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode("utf-8", errors="replace")


def _is_solution_file(path: Path) -> bool:
    return (path.suffix == ".ipynb" and ".bak-" not in path.name
            and not path.name.startswith("."))


def solution_notebooks(sol_dir: Path) -> list[Path]:
    """The solution notebooks in ``sol_dir``, sorted; a clear error if there are none."""
    if not sol_dir.is_dir():
        raise ReleaseError(f"no solutions directory at {sol_dir} (run from the course "
                           f"folder, or pass --solutions DIR)")
    sources = sorted(p for p in sol_dir.iterdir() if p.is_file() and _is_solution_file(p))
    if not sources:
        raise ReleaseError(f"{sol_dir} holds no .ipynb notebooks")
    return sources


def release(solutions_dir: Path | str = "solutions", exercises_dir: Path | str = "exercises",
            *, check: bool = False, force: bool = False,
            known_ids: Iterable[str] | None = None) -> ReleaseReport:
    """Write exercises_dir/X.ipynb for every solutions_dir/X.ipynb.

    ``check``: write nothing; report files that are missing or out of date.
    ``force``: overwrite learner-edited notebooks after backing each one up.
    Raises :class:`ReleaseError` for a missing solutions dir or a bad notebook.
    """
    sol_dir, ex_dir = Path(solutions_dir), Path(exercises_dir)
    sources = solution_notebooks(sol_dir)
    generated: list[tuple[Path, str]] = []
    for src in sources:
        nb = read_notebook(src)
        out = make_exercise_notebook(nb, f"{sol_dir.name}/{src.name}", known_ids)
        generated.append((ex_dir / src.name, dumps(out)))
    report = ReleaseReport()
    targets = {t.name for t, _ in generated}
    if ex_dir.is_dir():
        report.orphans = sorted(p for p in ex_dir.glob("*.ipynb")
                                if _is_solution_file(p) and p.name not in targets)
    if check:
        # The course's copy of exercises/ is what git commits. A learner's edits on
        # disk (their attempts) are theirs: judge the committed copy instead, so the
        # test command passes with their work in place, and CI (a clean checkout,
        # where disk == commit) still catches a commit that does not match solutions/.
        for target, text in generated:
            current = target.read_text(encoding="utf-8") if target.exists() else None
            if current is not None and current != text and learner_edited(target):
                committed = committed_text(target)
                if committed is None:
                    report.not_judged.append(target)
                    continue
                report.judged_committed.append(target)
                current = committed
            (report.unchanged if current == text else report.stale).append(target)
        # a notebook git does not track (a learner's copy, Untitled.ipynb) is not
        # the course's: only committed orphans are stale
        report.stale += [p for p in report.orphans if committed_text(p) is not None]
        return report
    if not ex_dir.exists():
        ex_dir.mkdir(parents=True)
    elif not ex_dir.is_dir():
        raise ReleaseError(f"{ex_dir} exists and is not a directory")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for target, text in generated:
        write_keeping_edits(target, text, report, force=force, stamp=stamp,
                            edited=learner_edited)
    return report


def write_keeping_edits(target: Path, text: str, report: Any, *, force: bool, stamp: str,
                        edited: Callable[[Path], bool] = lambda path: True) -> None:
    """Write ``text`` to ``target``, unless it differs and ``edited(target)`` says
    it holds someone's work: then refuse, or with ``force`` keep a ``.bak-STAMP``
    copy first. Records the outcome in ``report`` (``unchanged``, ``refused``,
    ``backups``, ``written``)."""
    if target.exists():
        current = target.read_text(encoding="utf-8", errors="replace")
        if current == text:
            report.unchanged.append(target)
            return
        if edited(target):
            if not force:
                report.refused.append(target)
                return
            backup = target.with_name(f"{target.stem}.bak-{stamp}{target.suffix}")
            backup.write_bytes(target.read_bytes())
            report.backups.append((target, backup))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    report.written.append(target)

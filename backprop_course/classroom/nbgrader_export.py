"""Export the course as an nbgrader course directory: ``release --format nbgrader DIR``.

nbgrader (release, collect, autograde, feedback, the formgrader, a gradebook
with LMS export) is how most classes grade Jupyter notebooks on JupyterHub.
This writes what its ``generate_assignment`` reads::

    DIR/nbgrader_config.py
    DIR/source/01_chain_rule/01_chain_rule.ipynb     one assignment per lesson
    ...

from ``solutions/``, with nbgrader's cell metadata:

=======================  ==============================================  =========
cell                     nbgrader role                                   points
=======================  ==============================================  =========
``# Exercise <id>: ...``  solution cell (its ``# BEGIN SOLUTION`` region  -
                         becomes nbgrader's stub in the student copy)
``check("<id>", ...)``    autograded test cell, locked                    the
                                                                         exercise's
everything else          read-only (locked)                              -
=======================  ==============================================  =========

A test cell scores when it runs without an error: ``check`` raises on a wrong
answer, so the course's own checks are the autograder. Instructors can add
hidden checks inside a test cell between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``: nbgrader removes them from the student copy and puts
them back at autograde time.

Nothing an instructor edited is overwritten: a file that exists and differs
from what the export makes is refused (``force``: replaced, a ``.bak`` copy kept).
"""
from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import nbformat

from backprop_course.classroom.release import (
    BEGIN, EXERCISE_LINE, SOLUTION_ONLY_TAG, ReleaseError, solution_notebooks,
    make_exercise_notebook, read_notebook, write_keeping_edits,
)

SCHEMA_VERSION = 3
CHECKED_ID = re.compile(
    r"(?:^|[^\w.])check\s*\(\s*[\"'](\d\d-[a-z0-9]+(?:-[a-z0-9]+)*)[\"']", re.M)
STUB = 'raise NotImplementedError("replace this line with your code")'

CONFIG = '''\
# nbgrader configuration for the backprop course.
# Written by `backprop-course release --format nbgrader`; edit freely (a changed
# file is never overwritten). Run nbgrader from this folder:
#     nbgrader generate_assignment 01_chain_rule
#     nbgrader release_assignment 01_chain_rule      (with an exchange, on JupyterHub)
#     nbgrader collect 01_chain_rule
#     nbgrader autograde 01_chain_rule
#     nbgrader generate_feedback 01_chain_rule
c = get_config()  # noqa: F821

c.CourseDirectory.course_id = {course_id!r}
# One assignment per lesson; the notebook has the lesson's name.
# The student copy keeps the course's stub, so `check` says "not attempted yet".
c.ClearSolutions.code_stub = {{"python": {stub!r}}}
c.ClearSolutions.text_stub = "*Write your answer here.*"
# A lesson's solutions run in well under a minute; leave room for slow answers.
c.ExecutePreprocessor.timeout = 300
'''


@dataclass
class ExportReport:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    refused: list[Path] = field(default_factory=list)
    backups: list[tuple[Path, Path]] = field(default_factory=list)
    assignments: list[str] = field(default_factory=list)


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _meta(grade_id: str, *, solution: bool = False, grade: bool = False,
          locked: bool = False, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": SCHEMA_VERSION, "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def nbgrader_notebook(solution, name: str, points: Mapping[str, float]):
    """The nbgrader source notebook for one solutions notebook (a new NotebookNode).

    ``points``: every registered exercise id and what it is worth.
    """
    make_exercise_notebook(solution, name, points.keys())    # same rules as release
    nb = copy.deepcopy(solution)
    cells = []
    used: set[str] = set()
    for index, cell in enumerate(nb.cells):
        meta = cell.setdefault("metadata", {})
        tags = [t for t in meta.get("tags", []) if t != "raises-exception"]
        if SOLUTION_ONLY_TAG in tags:
            continue
        src = _source(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            first = src.lstrip("\n").split("\n", 1)[0].strip()
            m = EXERCISE_LINE.match(first)
            checked = CHECKED_ID.findall(src)
            if m:
                role = _meta(f"{m.group(1)}-answer", solution=True)
            elif checked:
                unknown = [i for i in checked if i not in points]
                if unknown:
                    raise ReleaseError(f"{name}, cell {index + 1}: check of unknown "
                                       f"exercise {unknown[0]!r}")
                role = _meta(f"{'+'.join(checked)}-check", grade=True, locked=True,
                             points=float(sum(points[i] for i in checked)))
            else:
                role = _meta(f"cell-{index + 1}", locked=True)
        elif BEGIN in src:      # a written answer: graded by hand in the formgrader
            role = _meta(f"answer-{index + 1}", solution=True, grade=True, points=0.0)
        else:
            role = _meta(f"cell-{index + 1}", locked=True)
        if role["grade_id"] in used:
            role["grade_id"] += f"-{index + 1}"
        used.add(role["grade_id"])
        for key in ("execution", "ExecuteTime", "collapsed", "scrolled", "editable",
                    "deletable"):
            meta.pop(key, None)
        if tags:
            meta["tags"] = tags
        else:
            meta.pop("tags", None)
        meta["nbgrader"] = role
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    nb.metadata["backprop_course"] = {"notebook": Path(name).stem}
    return nb


def export(solutions_dir: Path | str, course_dir: Path | str, points: Mapping[str, float],
           *, force: bool = False, course_id: str = "backprop-course") -> ExportReport:
    """Write ``course_dir/nbgrader_config.py`` and ``course_dir/source/<lesson>/``."""
    sol_dir, root = Path(solutions_dir), Path(course_dir)
    sources = solution_notebooks(sol_dir)
    if root.exists() and not root.is_dir():
        raise ReleaseError(f"{root} exists and is not a directory")
    made = []
    for src in sources:
        nb = nbgrader_notebook(read_notebook(src), f"{sol_dir.name}/{src.name}", points)
        made.append((src.stem, nbformat.writes(nb, version=4) + "\n"))
    report = ExportReport()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    config = CONFIG.format(course_id=course_id, stub=STUB)
    write_keeping_edits(root / "nbgrader_config.py", config, report, force=force, stamp=stamp)
    for stem, text in made:
        write_keeping_edits(root / "source" / stem / f"{stem}.ipynb", text, report,
                            force=force, stamp=stamp)
        report.assignments.append(stem)
    return report

"""The ``backprop-course`` command: release exercises, track progress, grade.

    backprop-course start [DIR]                  copy the course into DIR (learners)
    backprop-course list                         every exercise and its notebook
    backprop-course release [--check] [--force]  make exercises/ from solutions/
    backprop-course release --format nbgrader DIR   an nbgrader course from solutions/
    backprop-course progress [DIR]               run your exercise notebooks, scorecard
    backprop-course grade SUB... --csv OUT       grade submissions (files or folders),
                                                 one row per exercise, with points
    backprop-course mutants [SOLUTION.ipynb...]  authors: do the checks catch wrong variants?

Exit status: 0 all well; 1 something to act on (stale or refused files, a
failed exercise); 2 bad input (missing folder, a file that is not a notebook).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence


def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(f"backprop-course: {text}", file=sys.stderr, flush=True)


def _ensure_utf8() -> None:
    """✔ and ✘ must not crash a console with a legacy encoding."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if (stream.encoding or "").lower().replace("-", "") != "utf8":
                stream.reconfigure(errors="replace")
        except (AttributeError, ValueError):
            pass


def cmd_list(args: argparse.Namespace) -> int:
    from backprop_course.exercises import registry
    exercises = registry.all_exercises()
    if not exercises:
        _out("No exercises are registered yet.")
        return 0
    width = max(len(ex.id) for ex in exercises)
    nb_width = max(len(ex.notebook) for ex in exercises) + len(".ipynb")
    for ex in exercises:
        _out(f"{ex.id.ljust(width)}  {(ex.notebook + '.ipynb').ljust(nb_width)}  "
             f"{ex.title}  (defines `{ex.answer}`)")
    return 0


def cmd_release_nbgrader(args: argparse.Namespace) -> int:
    from backprop_course.classroom.nbgrader_export import export
    from backprop_course.classroom.release import ReleaseError
    from backprop_course.exercises import registry
    if args.dir is None:
        _err("--format nbgrader needs a folder to write the course into: "
             "`backprop-course release --format nbgrader COURSE_DIR`")
        return 2
    if args.check:
        _err("--check compares exercises/ with solutions/; it has no nbgrader form")
        return 2
    try:
        points = {ex.id: ex.points for ex in registry.all_exercises()}
        report = export(args.solutions, args.dir, points, force=args.force)
    except ReleaseError as exc:
        _err(str(exc))
        return 2
    for p in report.written:
        _out(f"wrote {p}")
    for original, backup in report.backups:
        _out(f"{original} had your edits: saved them as {backup} before replacing it")
    if report.unchanged and not report.written:
        _out(f"{args.dir} already up to date ({len(report.unchanged)} files).")
    for p in report.refused:
        _err(f"refused to overwrite {p}: it differs from what the export makes (your "
             "edits?). Rename it, or pass --force to replace it (a .bak copy is kept).")
    if report.refused:
        return 1
    _out(f"nbgrader course in {args.dir}: {len(report.assignments)} assignments "
         f"({', '.join(report.assignments)}). Next, in that folder: "
         f"`nbgrader generate_assignment {report.assignments[0]}`")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from backprop_course.classroom.course_files import StartError, next_steps, start
    try:
        report = start(args.dir)
    except StartError as exc:
        _err(str(exc))
        return 2
    _out(next_steps(report))
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from backprop_course.exercises import registry
    from backprop_course.classroom.release import ReleaseError, release
    if args.format == "nbgrader":
        return cmd_release_nbgrader(args)
    if args.dir is not None:
        _err(f"a folder ({args.dir}) goes with --format nbgrader; for exercises/ use "
             "--exercises DIR")
        return 2
    try:
        known = [ex.id for ex in registry.all_exercises()]
        report = release(args.solutions, args.exercises, check=args.check, force=args.force,
                         known_ids=known)
    except ReleaseError as exc:
        _err(str(exc))
        return 2
    if args.check:
        if report.stale:
            _err("exercises/ is out of date with solutions/; run `backprop-course "
                 "release` and commit the result. Stale:")
            for p in report.stale:
                why = ("has no source in " + str(args.solutions)) if p in report.orphans \
                    else ("missing" if not p.exists() else
                          "its committed copy differs from what release makes"
                          if p in report.judged_committed
                          else "differs from what release makes")
                _err(f"  {p}: {why}")
            return 1
        for p in report.judged_committed:
            _out(f"{p} holds your work (left as it is): judged the copy git has "
                 "committed instead")
        for p in report.not_judged:
            _out(f"{p} holds your work and git has no committed copy of it: not judged")
        _out(f"exercises/ is up to date ({len(report.unchanged)} notebooks).")
        return 0
    for p in report.written:
        _out(f"wrote {p}")
    for original, backup in report.backups:
        _out(f"{original} had your edits: saved them as {backup} before replacing it")
    for p in report.orphans:
        _out(f"note: {p} has no source in {args.solutions} (left as it is)")
    if report.unchanged and not report.written:
        _out(f"exercises/ already up to date ({len(report.unchanged)} notebooks).")
    if report.refused:
        for p in report.refused:
            _err(f"refused to overwrite {p}: it was edited after release made it "
                 "(your work?). Rename it, or run `backprop-course release --force` "
                 "to replace it (a .bak copy is kept).")
        return 1
    return 0


def _split(values: Sequence[str] | None) -> list[str]:
    return [v for item in values or () for v in item.split(",") if v]


def cmd_progress(args: argparse.Namespace) -> int:
    from backprop_course.classroom.grading import progress
    directory = Path(args.dir)
    if not directory.is_dir():
        _err(f"no folder {directory}: pass the folder that holds your exercise notebooks, "
             "e.g. `backprop-course progress exercises`")
        return 2
    try:
        reports = progress(directory, timeout=args.timeout, cell_timeout=args.cell_timeout,
                           check_modules=_split(args.checks), extra_paths=args.path or ())
    except FileNotFoundError as exc:
        _err(str(exc))
        return 2
    results = [r for rep in reports for r in rep.results]
    return 0 if results and all(r.passed for r in results) else 1


def cmd_grade(args: argparse.Namespace) -> int:
    from backprop_course.classroom.grading import grade
    for s in args.submissions:
        if not Path(s).exists():
            _err(f"warning: {s} does not exist (reported in the CSV as not gradable)")
    for target in (args.csv, args.summary):
        if target is not None:
            parent = Path(target).resolve().parent
            if not parent.is_dir():
                _err(f"cannot write {target}: no folder {parent}")
                return 2
    if args.jobs < 1:
        _err(f"--jobs {args.jobs}: give 1 or more")
        return 2
    from backprop_course.classroom.sandbox import use_sandbox
    try:
        reports = grade(args.submissions, args.csv, timeout=args.timeout,
                        cell_timeout=args.cell_timeout, check_modules=_split(args.checks),
                        extra_paths=args.path or (), assignment=args.assignment,
                        jobs=args.jobs, seed=args.seed, summary_csv=args.summary,
                        sandbox=use_sandbox(args.no_sandbox, _err))
    except ValueError as exc:            # an unknown --assignment
        _err(str(exc))
        return 2
    for target in (args.csv, args.summary):
        if target:
            _out(f"wrote {target}")
    problems = [r for r in reports if r.error]
    if problems:
        _err(f"{len(problems)} of {len(reports)} submissions could not be graded fully "
             "(missing, unreadable, timed out or crashed): see their rows")
        return 1
    return 0


def cmd_mutants(args: argparse.Namespace) -> int:
    from backprop_course.classroom import mutants
    from backprop_course.classroom.grading import run_submission
    paths = [Path(p) for p in args.notebooks] or sorted(Path(args.solutions).glob("*.ipynb"))
    if not paths:
        _err(f"no solutions notebooks found (looked in {args.solutions})")
        return 2
    rows: list[dict] = []
    for path in paths:
        if not path.is_file():
            _err(f"no notebook {path}")
            return 2
        try:
            mutants.require_solutions(json.loads(path.read_text(encoding="utf-8")),
                                      str(path))
        except (ValueError, OSError) as exc:      # NoSolutions, or not JSON at all
            _err(str(exc) if isinstance(exc, mutants.NoSolutions)
                 else f"{path} is not a notebook ({exc})")
            return 2
    for path in paths:
        rep = run_submission(path, timeout=args.timeout, cell_timeout=args.cell_timeout,
                             check_modules=_split(args.checks), extra_paths=args.path or (),
                             extra={"mutants": str(path.resolve())})
        bad = [r for r in rep.results if not r.passed]
        for r in bad:
            _err(f"{path.name}: the solution itself fails {r.exercise}: {r.message}")
        rows += rep.extras.get("mutants", [])
    _out(mutants.summarize(rows))
    # every variant must get a verdict, and every verdict must catch it
    return 0 if rows and all(r["caught"] for r in rows) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backprop-course",
        description="Exercises for the backprop course: release, progress, grading.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("start", help="copy the course's notebooks into a folder of yours",
                       description="Copy the lessons (notebooks/) and your exercise "
                       "notebooks (exercises/) into DIR. Run it again after an upgrade: it "
                       "adds what is new and never overwrites a notebook you edited.")
    p.add_argument("dir", nargs="?", default="backprop-course",
                   help="folder for the course (default: ./backprop-course)")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("list", help="list every exercise with its notebook")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("release", help="generate exercises/ from solutions/",
                       description="Turn solutions/*.ipynb into exercises/*.ipynb: answers "
                       "become `raise NotImplementedError` stubs, outputs are cleared.")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if exercises/ is out of date (for CI)")
    p.add_argument("--solutions", default="solutions", help="default: solutions")
    p.add_argument("--exercises", default="exercises", help="default: exercises")
    p.add_argument("--force", action="store_true",
                   help="replace notebooks edited since release (a .bak copy is kept)")
    p.add_argument("--format", choices=("exercises", "nbgrader"), default="exercises",
                   help="exercises (default): exercises/ notebooks; nbgrader: an nbgrader "
                   "course folder DIR (nbgrader_config.py, source/<lesson>/<lesson>.ipynb)")
    p.add_argument("dir", nargs="?", metavar="DIR",
                   help="with --format nbgrader: the course folder to write")
    p.set_defaults(func=cmd_release)

    def run_options(p: argparse.ArgumentParser, timeout: float) -> None:
        p.add_argument("--timeout", type=float, default=timeout,
                       help=f"seconds for a whole notebook (default {timeout:g})")
        p.add_argument("--cell-timeout", type=float, default=60,
                       help="seconds for one cell (default 60)")
        p.add_argument("--checks", action="append", metavar="MODULE",
                       help="also import this module of extra checks (instructors)")
        p.add_argument("--path", action="append", metavar="DIR",
                       help="add DIR to sys.path when importing --checks")

    p = sub.add_parser("progress", help="run your exercise notebooks and show a scorecard")
    p.add_argument("dir", nargs="?", default="exercises",
                   help="folder of exercise notebooks (default: exercises)")
    run_options(p, 300)
    p.set_defaults(func=cmd_progress)

    p = sub.add_parser("grade", help="grade submitted notebooks into a CSV",
                       description="Run each submission in its own kernel and grade it "
                       "with the course's own checks. CSV columns: student, submission, "
                       "exercise, points, max_points, passed, status, message. A folder "
                       "stands for every notebook in it (a subfolder per student, as "
                       "nbgrader's submitted/STUDENT/..., or files named STUDENT_NN_...). "
                       "Exit status 1 when a submission could not be graded fully "
                       "(after the CSV is written).")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                   help="notebooks, or folders of notebooks")
    p.add_argument("--csv", metavar="OUT", help="write the grades here")
    p.add_argument("--summary", metavar="OUT",
                   help="write one row per student here: points, max_points")
    p.add_argument("--assignment", metavar="NN",
                   help="grade every submission on lesson NN's exercises (01, 03, ...): "
                   "a notebook of another lesson scores 0")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="grade N submissions at a time, each in its own kernel "
                   "(default 1)")
    p.add_argument("--seed", type=int, default=None,
                   help="the checks' random inputs (default: drawn once per run; every "
                   "submission gets the same)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run submissions with your own rights, not in a bwrap sandbox")
    run_options(p, 300)
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("mutants", help="authors: do the checks catch wrong variants?",
                       description="Run deliberately wrong variants of each solution "
                       "(sign flipped, transpose dropped, wrong axis, = for +=, a factor "
                       "left out, a constant) through the checks; list the survivors.")
    p.add_argument("notebooks", nargs="*", metavar="SOLUTION.ipynb",
                   help="default: every notebook in --solutions")
    p.add_argument("--solutions", default="solutions", help="default: solutions")
    run_options(p, 300)
    p.set_defaults(func=cmd_mutants)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _ensure_utf8()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:            # `backprop-course list | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except ImportError as exc:         # a broken check module: loud, but no traceback wall
        _err(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())

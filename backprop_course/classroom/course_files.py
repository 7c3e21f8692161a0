"""The course's notebooks as the package ships them, and a learner's copy of them.

A wheel carries ``notebooks/`` (the lessons) and ``exercises/`` (the learner's
notebooks) as package data under ``backprop_course/course/`` (see pyproject.toml);
a clone or editable install finds the same folders at the repository root.
``backprop-course start DIR`` copies them into DIR and never overwrites a
learner's work: DIR keeps a manifest (``.backprop-course.json``) of the SHA-256 of
every file as it was copied. Run again after an upgrade, a file still matching
its manifest hash is untouched by the learner and is brought up to date; a file
that differs from it (or that ``start`` did not write) is the learner's, left
as it is, and named in the report.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

#: the course folders, in the package (wheel) and in a learner's copy
FOLDERS = ("notebooks", "exercises")
MANIFEST = ".backprop-course.json"
#: what a course folder may hold besides notebooks (figures a lesson shows)
ASSETS = ("*.ipynb", "*.png", "*.svg", "*.jpg", "*.gif")


class StartError(Exception):
    """DIR cannot hold the course (a file, not writable...): the message says what to do."""


def shipped_root() -> Path:
    """The folder holding ``notebooks/`` and ``exercises/`` for this installation."""
    package = Path(__file__).resolve().parent.parent
    for root in (package / "course", package.parent):   # wheel, then a checkout
        if all((root / f).is_dir() for f in FOLDERS) and \
                any((root / "notebooks").glob("*.ipynb")):
            return root
    raise StartError(f"this installation of backprop_course ({package}) carries no course "
                     "notebooks: reinstall it from a wheel (`pip install backprop-course`) "
                     "or run from a clone of the repository")


def shipped_files(root: Path | None = None) -> dict[str, Path]:
    """{relative path such as "notebooks/01_chain_rule.ipynb": source file}, sorted."""
    root = root or shipped_root()
    files: dict[str, Path] = {}
    for folder in FOLDERS:
        for pattern in ASSETS:
            for path in (root / folder).glob(pattern):
                if path.is_file() and not path.name.startswith("."):
                    files[f"{folder}/{path.name}"] = path
    return dict(sorted(files.items()))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class StartReport:
    dest: Path
    added: list[str] = field(default_factory=list)      # new in DIR
    fresh: list[str] = field(default_factory=list)      # added, and never copied before
    updated: list[str] = field(default_factory=list)    # not edited, now the new version
    kept: list[str] = field(default_factory=list)       # the learner's edits, left alone,
    #                                                     a newer version not copied
    edited: list[str] = field(default_factory=list)     # the learner's edits (no newer one)
    unchanged: list[str] = field(default_factory=list)  # already the shipped version


def _check_dest(dest: Path) -> None:
    if dest.exists() and not dest.is_dir():
        raise StartError(f"{dest} is a file, not a folder: pass the name of a folder "
                         "for the course (it is created if it does not exist)")
    for folder in FOLDERS:
        sub = dest / folder
        if sub.exists() and not sub.is_dir():
            raise StartError(f"{sub} is a file: move it away, then run start again")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartError(f"cannot create the folder {dest}: {exc.strerror or exc}; "
                         "pass a folder you can write to") from None
    if not os.access(dest, os.W_OK | os.X_OK):
        raise StartError(f"cannot write into {dest} (permission denied): pass a folder "
                         "you can write to, e.g. one in your home folder")


def _read_manifest(dest: Path) -> dict[str, str]:
    try:
        data = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
        files = data.get("files", {})
        return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _copy(src: Path, target: Path) -> None:
    """Copy through a temporary name, so an interrupted copy never leaves half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, target)


def start(dest: Path | str, source: Path | None = None) -> StartReport:
    """Copy the course (from ``source``, default: this installation's) into ``dest``.

    Never overwrites a file the learner changed (see the module docstring).
    """
    from backprop_course import __version__

    dest = Path(dest).expanduser()
    _check_dest(dest)
    shipped = shipped_files(source)
    manifest = _read_manifest(dest)
    report = StartReport(dest.resolve())
    new_manifest = dict(manifest)
    try:
        for rel, src in shipped.items():
            target = dest / rel
            want = sha256(src)
            if not target.exists():
                _copy(src, target)
                report.added.append(rel)
                if rel not in manifest:
                    report.fresh.append(rel)
                new_manifest[rel] = want
                continue
            have = sha256(target) if target.is_file() else None
            if have == want:
                report.unchanged.append(rel)
                new_manifest[rel] = want
            elif have is not None and manifest.get(rel) == have:  # as start left it
                _copy(src, target)
                report.updated.append(rel)
                new_manifest[rel] = want
            elif manifest.get(rel) == want:    # edited, and the course has not changed
                report.edited.append(rel)
            else:
                report.kept.append(rel)
    except PermissionError as exc:
        raise StartError(f"cannot write {exc.filename}: permission denied; pass a folder "
                         "you can write to") from None
    finally:
        payload = {"note": "written by `backprop-course start`: the SHA-256 of each file "
                           "as it was copied, to tell your edits from the course's",
                   "version": __version__, "files": new_manifest}
        try:
            (dest / MANIFEST).write_text(json.dumps(payload, indent=1) + "\n",
                                         encoding="utf-8")
        except OSError:
            pass
    return report


def next_steps(report: StartReport) -> str:
    """What the learner reads after ``start``: what happened, what to open next."""
    lines: list[str] = []
    if report.added:
        lines.append(f"Copied into {report.dest}:")
        for folder in FOLDERS:
            names = [Path(r).stem for r in report.added
                     if r.startswith(folder + "/") and r.endswith(".ipynb")]
            if names:
                shown = ", ".join(names) if len(names) <= 3 else \
                    f"{names[0]} ... {names[-1]}"
                lines.append(f"  {folder + '/':<11} {len(names)} notebook(s): {shown}")
        others = [r for r in report.added if not r.endswith(".ipynb")]
        if others:
            lines.append(f"  and {len(others)} figure(s)")
    if report.updated:
        lines.append("Brought up to date (you had not changed them):")
        lines += [f"  ~ {rel}" for rel in report.updated]
    if report.kept:
        lines.append("Left as they are, because they hold your edits (this version of the "
                     "course has a newer one;")
        lines.append("rename yours and run start again to get it):")
        lines += [f"  = {rel}" for rel in report.kept]
    if report.edited:
        lines.append(f"Your edits in {len(report.edited)} notebook(s) are kept.")
    if not (report.added or report.updated):
        lines.append(f"{report.dest} already has every notebook of this version of "
                     "the course.")
    lessons = [r for r in report.fresh
               if r.startswith("notebooks/") and r.endswith(".ipynb")]
    first = lessons[0] if lessons else "notebooks/01_chain_rule.ipynb"
    exercise = "exercises/" + first.split("/", 1)[1]
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    lines += ["", "Next:",
              f"  cd {_shell_path(report.dest)} && jupyter lab"
              + ("      (as root: jupyter lab --allow-root)" if root else ""),
              f"  Open the lesson {first} and, beside it,",
              f"  its exercises {exercise}: fill in each NotImplementedError",
              "  and run the check cell below it.",
              "  Your scorecard at any time: backprop-course progress exercises"]
    return "\n".join(lines)


def _shell_path(path: Path) -> str:
    text = str(path)
    try:
        rel = os.path.relpath(text)
        if not rel.startswith(".."):
            text = rel
    except ValueError:     # another drive (Windows)
        pass
    return f'"{text}"' if any(c in text for c in " '\"$&;()") else text

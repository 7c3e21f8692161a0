"""The course as a pip user meets it: a wheel built from a clean checkout ships every
lesson and exercise notebook, and `backprop-course start` gives a learner a working copy.

One slow end-to-end test (a wheel build in an isolated env, two notebook runs: about
20 s of CPU), plus a fast guard that the wheel's explicit package list (pyproject.toml)
misses no subpackage.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent

RUN_NOTEBOOK = textwrap.dedent("""\
    import json, sys
    import nbclient, nbformat
    nb = nbformat.read(sys.argv[1], as_version=4)
    nbclient.NotebookClient(nb, allow_errors=True, timeout=120,
                            kernel_name="python3").execute()
    out = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("check("):
            texts = [o.get("text", "") or f"{o.get('ename')}: {o.get('evalue')}"
                     for o in cell.outputs]
            out[cell.source.split('"')[1]] = " ".join(texts)
    print(json.dumps(out))
""")

CHAIN_RULE = ("# Exercise 01-chain-rule: The chain rule by hand\n"
              "import numpy as np\n"
              "def dfdx(x):          # d/dx log(1 + e^(3x)) = 3 sigma(3x)\n"
              "    return 1.5 * (1 + np.tanh(1.5 * np.asarray(x, dtype=float)))")


def test_every_subpackage_is_in_the_wheels_package_list():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts)
               for p in (REPO / "backprop_course").rglob("__init__.py")}
    on_disk.add("backprop_course.data")
    assert on_disk <= listed, f"add to pyproject.toml packages: {sorted(on_disk - listed)}"
    assert config["package-dir"] == {"backprop_course.course.notebooks": "notebooks",
                                     "backprop_course.course.exercises": "exercises"}


def _clean_checkout(dest: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked + new, not ignored)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout of the repository to build the wheel from")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


def _build_wheel(src: Path, outdir: Path) -> Path:
    # pip, not `build`: it is in every environment (the test extra does not list build);
    # both build in an isolated environment with the setuptools pyproject.toml asks for
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "--wheel-dir", str(outdir), str(src)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-1500:]
        if any(w in tail for w in ("No matching distribution", "Could not find a version",
                                   "Failed to establish", "Temporary failure")):
            pytest.skip(f"the isolated build could not fetch setuptools: {tail[-300:]}")
        raise AssertionError(f"wheel build failed:\n{tail}")
    (wheel,) = outdir.glob("*.whl")
    return wheel


def _install(wheel: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade",
                    "--target", str(target), str(wheel)], check=True, capture_output=True,
                   timeout=300)


@pytest.mark.slow
def test_pip_user_gets_the_course_and_start_never_overwrites_their_work(tmp_path):
    src = _clean_checkout(tmp_path / "checkout")
    new = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 99 new")])
    for folder in ("notebooks", "exercises"):     # a lesson nobody listed anywhere
        nbformat.write(new, src / folder / "99_new_lesson.ipynb")
    site = tmp_path / "install" / "site-packages"
    _install(_build_wheel(src, tmp_path / "dist"), site)
    home = tmp_path / "learner"                # no checkout anywhere around
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    env["PYTHONPATH"] = str(site)     # before the venv's site-packages (and its editable)

    def run(*args, cwd=home):
        return subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=180,
                              check=True).stdout

    where = run("-c", "import backprop_course; print(backprop_course.__file__)").strip()
    assert Path(where).is_relative_to(site), where
    shipped = {f"{d}/{p.name}" for d in ("notebooks", "exercises")
               for p in (src / d).glob("*.ipynb")}
    installed = site / "backprop_course" / "course"
    assert {str(p.relative_to(installed)) for p in installed.rglob("*.ipynb")} == shipped
    assert "exercises/99_new_lesson.ipynb" in shipped
    assert not list(site.rglob("solutions*"))
    assert not any("BEGIN SOLUTION" in p.read_text() for p in installed.rglob("*.ipynb"))

    # the release before: this wheel without lesson 99 (a later pip install adds it back)
    later = tmp_path / "later"
    for folder in ("notebooks", "exercises"):
        (later / folder).mkdir(parents=True)
        shutil.move(installed / folder / "99_new_lesson.ipynb", later / folder)
    out = run("-m", "backprop_course.cli", "start")
    course = home / "backprop-course"
    assert "cd backprop-course && jupyter lab" in out
    assert {str(p.relative_to(course)) for p in course.rglob("*.ipynb")} == \
        {rel for rel in shipped if "99_new" not in rel}

    exercise = course / "exercises" / "01_chain_rule.ipynb"
    script = tmp_path / "run_notebook.py"
    script.write_text(RUN_NOTEBOOK)
    checks = json.loads(run(str(script), str(exercise), cwd=exercise.parent))
    assert len(checks) >= 4
    assert all("not attempted yet" in text for text in checks.values()), checks

    nb = nbformat.read(exercise, as_version=4)       # the learner answers one exercise
    (cell,) = [c for c in nb.cells if c.source.startswith(
        "# Exercise 01-chain-rule")]
    cell.source = CHAIN_RULE
    nbformat.write(nb, exercise)
    edited = exercise.read_bytes()
    checks = json.loads(run(str(script), str(exercise), cwd=exercise.parent))
    assert checks["01-chain-rule"].startswith("\u2714 01-chain-rule passed")
    assert "not attempted yet" in checks["01-best-step"]

    # the upgrade: lesson 99 arrives, and exercise 01 changed: start adds the new lesson
    # and leaves the learner's edited notebook alone, saying so
    for folder in ("notebooks", "exercises"):
        shutil.move(later / folder / "99_new_lesson.ipynb", installed / folder)
    shipped_01 = installed / "exercises" / "01_chain_rule.ipynb"
    shipped_01.write_text(shipped_01.read_text().replace("central", "Central", 1))
    out = run("-m", "backprop_course.cli", "start")
    assert exercise.read_bytes() == edited
    assert "= exercises/01_chain_rule.ipynb" in out and "hold your edits" in out
    assert (course / "notebooks" / "99_new_lesson.ipynb").is_file()
    assert (course / "exercises" / "99_new_lesson.ipynb").is_file()
    assert "notebooks/99_new_lesson.ipynb and, beside it" in out

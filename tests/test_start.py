"""`backprop-course start`: a learner's copy of the course, never overwriting their work."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from backprop_course import cli
from backprop_course.classroom import course_files
from backprop_course.classroom.course_files import MANIFEST, StartError, start

REPO = Path(__file__).resolve().parent.parent


def _course(root: Path, lessons=("01_a", "02_b")) -> Path:
    """A small shipped course: one lesson and one exercise notebook per name."""
    for folder in ("notebooks", "exercises"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in lessons:
            (root / folder / f"{name}.ipynb").write_text(f'{{"{folder}": "{name} v1"}}')
    return root


def test_shipped_files_are_the_repository_notebooks_and_exercises_not_solutions():
    shipped = course_files.shipped_files(REPO)
    expected = {f"{d}/{p.name}" for d in ("notebooks", "exercises")
                for p in (REPO / d).glob("*.ipynb")}
    assert set(shipped) == expected and len(expected) >= 10
    assert not any(rel.startswith("solutions/") for rel in shipped)


def test_first_start_copies_every_file_and_records_its_hash(tmp_path):
    src = _course(tmp_path / "src")
    rep = start(tmp_path / "me" / "course", source=src)
    dest = tmp_path / "me" / "course"
    assert sorted(rep.added) == sorted(course_files.shipped_files(src))
    for rel in rep.added:
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
    files = json.loads((dest / MANIFEST).read_text())["files"]
    assert files == {rel: course_files.sha256(src / rel) for rel in rep.added}
    assert not rep.updated and not rep.kept and not rep.edited


def test_start_again_after_an_upgrade_keeps_edits_updates_the_rest_adds_new(tmp_path):
    src = _course(tmp_path / "src")
    dest = tmp_path / "course"
    start(dest, source=src)
    mine = dest / "exercises/01_a.ipynb"
    mine.write_text('{"my": "answer"}')                        # the learner's work
    (dest / "exercises/02_b.ipynb").write_text('{"also": "mine"}')  # edited, no new version
    for rel in ("exercises/01_a.ipynb", "notebooks/02_b.ipynb"):  # the upgrade
        (src / rel).write_text('{"v": 2}')
    _course(src, lessons=("03_c",))
    rep = start(dest, source=src)
    assert mine.read_text() == '{"my": "answer"}'
    assert rep.kept == ["exercises/01_a.ipynb"]
    assert rep.edited == ["exercises/02_b.ipynb"]
    assert (dest / "exercises/02_b.ipynb").read_text() == '{"also": "mine"}'
    assert rep.updated == ["notebooks/02_b.ipynb"]
    assert (dest / "notebooks/02_b.ipynb").read_text() == '{"v": 2}'
    assert sorted(rep.added) == ["exercises/03_c.ipynb", "notebooks/03_c.ipynb"]
    text = course_files.next_steps(rep)
    assert "= exercises/01_a.ipynb" in text and "hold your edits" in text
    assert "~ notebooks/02_b.ipynb" in text
    assert "notebooks/03_c.ipynb and, beside it" in text     # what to open next
    # a third run changes nothing, and still knows the edited files are the learner's
    again = start(dest, source=src)
    assert not again.added and not again.updated
    assert again.kept == ["exercises/01_a.ipynb"] and mine.read_text() == '{"my": "answer"}'


def test_a_file_start_did_not_write_is_never_replaced(tmp_path):
    src = _course(tmp_path / "src")
    dest = tmp_path / "course"
    (dest / "exercises").mkdir(parents=True)
    (dest / "exercises/01_a.ipynb").write_text("from my own clone")
    rep = start(dest, source=src)
    assert (dest / "exercises/01_a.ipynb").read_text() == "from my own clone"
    assert rep.kept == ["exercises/01_a.ipynb"]
    (dest / MANIFEST).write_text("{ broken")                  # a damaged manifest: no trust
    (dest / "notebooks/01_a.ipynb").write_text("changed")
    rep = start(dest, source=src)
    assert (dest / "notebooks/01_a.ipynb").read_text() == "changed"
    assert "notebooks/01_a.ipynb" in rep.kept


def test_a_deleted_notebook_comes_back(tmp_path):
    src = _course(tmp_path / "src")
    dest = tmp_path / "course"
    start(dest, source=src)
    (dest / "notebooks/02_b.ipynb").unlink()
    rep = start(dest, source=src)
    assert rep.added == ["notebooks/02_b.ipynb"] and rep.fresh == []
    assert (dest / "notebooks/02_b.ipynb").read_text() == '{"notebooks": "02_b v1"}'


@pytest.mark.parametrize("make, words", [
    (lambda d: d.write_text("x"), "is a file, not a folder"),
    (lambda d: (d.mkdir(), (d / "notebooks").write_text("x")), "notebooks is a file"),
    (lambda d: None, "cannot create the folder"),
])
def test_bad_destinations_get_a_clear_message(tmp_path, make, words):
    dest = tmp_path / "course"
    make(dest)
    if words == "cannot create the folder":
        (tmp_path / "afile").write_text("x")
        dest = tmp_path / "afile" / "course"                  # parent is a file
    with pytest.raises(StartError, match=words):
        start(dest, source=_course(tmp_path / "src"))


def test_cli_start_prints_what_to_open_and_exits_2_on_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["start"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "backprop-course/exercises/01_chain_rule.ipynb").is_file()
    assert "cd backprop-course && jupyter lab" in out
    assert "notebooks/01_chain_rule.ipynb" in out
    (tmp_path / "f").write_text("x")
    assert cli.main(["start", "f"]) == 2
    assert "f is a file, not a folder" in capsys.readouterr().err

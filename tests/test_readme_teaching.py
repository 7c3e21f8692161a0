"""README "Teaching a class": the section exists, covers each setting, and every
`backprop-course` command it shows is one the CLI accepts."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from backprop_course import cli

ROOT = Path(__file__).resolve().parents[1]


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Teaching a class")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_the_section_covers_self_study_grade_the_sandbox_and_nbgrader():
    text = _section()
    for heading in ("### Self-study", "### A small class: `backprop-course grade`",
                    "### Grading in a sandbox",
                    "### A large class: nbgrader on JupyterHub"):
        assert heading in text
    for fact in ("Zero to JupyterHub", "singleuser.image", "BEGIN HIDDEN TESTS",
                 "--checks", "same kernel", "--no-sandbox", "bubblewrap",
                 "What it does not guarantee", "nbgrader autograde",
                 "nbgrader generate_assignment", "alembic"):
        assert fact in text, fact


def _commands() -> list[list[str]]:
    found = []
    for line in _section().splitlines():
        m = re.search(r"backprop-course ([a-z].*?)(?:`|\s+#|$)", line)
        argv = shlex.split(m.group(1)) if m else []
        if argv and argv != ["grade"]:          # `grade` alone: a name in prose
            found.append(argv)
    return found


@pytest.mark.parametrize("argv", _commands(), ids=" ".join)
def test_every_command_the_section_shows_parses(argv):
    args = cli.build_parser().parse_args(argv)
    assert args.command == argv[0]

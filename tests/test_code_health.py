"""The package keeps its promises about itself: every docstring example runs
and prints what it shows, and the engine imports nothing but numpy and the
standard library (DESIGN.md: dependencies point one way)."""
import ast
import doctest
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import backprop_course

PACKAGE = Path(backprop_course.__file__).parent
MODULES = sorted(
    info.name for info in pkgutil.walk_packages([str(PACKAGE)], "backprop_course.")
)
ENGINE = ("scalar", "tensor", "graph")


def test_the_module_list_is_not_empty():
    assert {"backprop_course.tensor", "backprop_course.nn",
            "backprop_course.exercises.expect"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_doctests_are_found_where_examples_are_written():
    """A control: the collector sees the examples (an empty run passes trivially)."""
    tests = doctest.DocTestFinder().find(importlib.import_module("backprop_course.tensor"))
    assert sum(len(t.examples) for t in tests) >= 5


def _imports(path: Path) -> set[str]:
    """Top-level names of every module the file imports (relative: the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("backprop_course" if node.level else node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", ENGINE)
def test_engine_imports_only_numpy_and_the_standard_library(name):
    imported = _imports(PACKAGE / f"{name}.py")
    inside = set()                        # engine modules may use each other only
    for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("backprop_course"):
            inside.add(node.module)
    assert inside <= {f"backprop_course.{m}" for m in ENGINE}, inside
    outside = imported - {"backprop_course", "numpy"}
    assert outside <= set(sys.stdlib_module_names), outside - set(sys.stdlib_module_names)


def test_the_import_check_can_fail(tmp_path):
    """A control: a file importing matplotlib is caught by the same rule."""
    bad = tmp_path / "bad.py"
    bad.write_text("import math\nimport matplotlib.pyplot as plt\n")
    assert not _imports(bad) - {"numpy"} <= set(sys.stdlib_module_names)

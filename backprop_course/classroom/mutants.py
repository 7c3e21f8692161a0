"""Wrong variants of the solutions: proof that each check can fail, and fail helpfully.

For every exercise, the solution's ``# BEGIN SOLUTION`` region is mutated the
way learners usually get it wrong, one site at a time, and each variant is
run through the exercise's check:

=============  ============================================  ===================
mutation       what changes                                 expected hint
=============  ============================================  ===================
sign           ``return -(v)``, ``x = -(...)``, ``+=``↔``-=``  mentions "sign"
               (and each number of an answer tuple)
transpose      ``a.T`` → ``a`` (also ``.transpose()``)      mentions "transpose"
axis           ``axis=0`` ↔ ``axis=1``                       "axis" / "batch"
accumulate     ``g += v`` → ``g = v``                        "accumulat" / "overwr"
factor         ``a * b`` → ``a`` and → ``b``                 "factor"
drop           one statement left out (``visited.add(v)``)      any failure
constant       the function returns its first result always  any failure
               (for function answers)
=============  ============================================  ===================

A variant is *caught* only when the check's verdict says the answer is wrong;
*caught with the expected hint* when the failure's hint also names the
mistake. Internal failures are counted apart and listed, never as caught:
the check itself crashing (a bug in the course) or the variant's own cell
raising (nothing was checked). Some variants cannot be caught because they
compute the same thing (flipping the sign of a step ``h`` in a central
difference); they are listed so the author can judge.

Runs where the solutions notebook has been executed (see
``grading.run_submission(..., extra={"mutants": path})``), because the
mutated cell needs the names the notebook defined.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from backprop_course.classroom.release import BEGIN, END, EXERCISE_LINE

EXPECTED_HINT: dict[str, tuple[str, ...]] = {
    "sign": ("sign", "uphill", "subtract"),
    "transpose": ("transpose",),
    "axis": ("axis", "batch", "summed"),
    "accumulate": ("accumulat", "overwr", "+="),
    "factor": ("factor", "multiply", "left out", "ignores"),
    "drop": (),              # any failure will do
    "constant": (),
}
# a sign flip of something that is not a number is not a learner's mistake
_NOT_A_VARIANT = "bad operand type for unary -"


#: outcome of one variant: the check's verdict failed it / passed it / no verdict
CAUGHT, SURVIVED, CHECK_CRASHED, CELL_RAISED = ("caught", "survived", "check crashed",
                                                "cell raised")
INTERNAL = (CHECK_CRASHED, CELL_RAISED)


@dataclass
class MutantResult:
    exercise: str
    mutation: str
    line: str          # the mutated line, for the report
    caught: bool       # the check's verdict failed the variant (not a crash)
    hinted: bool       # caught, and the hint names the mistake
    verdict: str
    outcome: str = CAUGHT   # caught | survived | check crashed | cell raised


class NoSolutions(ValueError):
    """A notebook with no solution regions: nothing to make wrong variants of."""


def require_solutions(nb: Any, name: str) -> None:
    """Raise :class:`NoSolutions` unless ``nb`` holds exercise cells with solution regions."""
    cells = exercise_cells(nb)
    if not any(lines for _, lines in cells.values()):
        raise NoSolutions(
            f"{name} has no '{BEGIN}' ... '{END}' regions: mutants makes wrong variants "
            f"of the solutions, so give it a solutions notebook (solutions/NN_name.ipynb),"
            f" not a released exercises notebook")


# ----------------------------------------------------------------- regions
def exercise_cells(nb: Any) -> dict[str, tuple[str, set[int]]]:
    """{exercise id: (cell source, line numbers inside solution regions)}."""
    found = {}
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        first = src.lstrip("\n").split("\n", 1)[0].strip()
        m = EXERCISE_LINE.match(first)
        if not m:
            continue
        lines, inside = set(), False
        for n, line in enumerate(src.split("\n"), 1):
            if line.strip() == BEGIN:
                inside = True
            elif line.strip() == END:
                inside = False
            elif inside:
                lines.add(n)
        found[m.group(1)] = (src, lines)
    return found


# ----------------------------------------------------------------- mutations
def _blank_magics(src: str) -> str:
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln
                     for ln in src.split("\n"))


def _in_region(node: ast.AST, lines: set[int]) -> bool:
    return getattr(node, "lineno", None) in lines


def _neg(value: ast.expr) -> ast.expr:
    return ast.UnaryOp(op=ast.USub(), operand=value)


def _returned_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and node.value is not None:
            for sub in ast.walk(node.value):
                if isinstance(sub, ast.Name):
                    names.add(sub.id)
    return names


def _numeric(value: ast.expr) -> bool:
    """False for expressions that are surely not numbers (tuples, lists, strings...),
    and for a literal 0, whose sign flip changes nothing."""
    if isinstance(value, ast.Constant):
        return isinstance(value.value, (int, float)) and not isinstance(value.value, bool) \
            and value.value != 0
    return not isinstance(value, (ast.Tuple, ast.List, ast.Dict, ast.Set, ast.JoinedStr,
                                  ast.ListComp, ast.DictComp, ast.SetComp))


def _sites(tree: ast.AST, lines: set[int]) -> Iterator[tuple[str, tuple, Callable]]:
    """(mutation, site key, apply(node) -> replacement or None to edit in place)."""
    returned = _returned_names(tree)
    for node in ast.walk(tree):
        if not _in_region(node, lines):
            continue
        key = (type(node).__name__, node.lineno, node.col_offset)
        if isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign)) and not (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            yield "drop", key + ("drop",), lambda n: ast.Pass(lineno=n.lineno)
        if isinstance(node, ast.Return) and node.value is not None:
            if isinstance(node.value, ast.Tuple):
                for i, elt in enumerate(node.value.elts):
                    if not _numeric(elt):
                        continue

                    def flip(n: ast.Return, i: int = i) -> None:
                        n.value.elts[i] = _neg(n.value.elts[i])
                    yield "sign", key + (i,), flip
            elif _numeric(node.value):
                yield "sign", key, lambda n: setattr(n, "value", _neg(n.value))
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.op, (ast.Add, ast.Sub)):
                yield "sign", key, lambda n: setattr(
                    n, "op", ast.Sub() if isinstance(n.op, ast.Add) else ast.Add())
            if isinstance(node.op, ast.Add):
                yield "accumulate", key, lambda n: ast.Assign(
                    targets=[n.target], value=n.value, lineno=n.lineno)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.value, (ast.Tuple, ast.List)):   # an answer value
            for i, elt in enumerate(node.value.elts):
                if _numeric(elt):
                    def flip_item(n: ast.Assign, i: int = i) -> None:
                        n.value.elts[i] = _neg(n.value.elts[i])
                    yield "sign", key + (i,), flip_item
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if _numeric(node.value) and (
                    isinstance(target, (ast.Attribute, ast.Subscript))
                    or (isinstance(target, ast.Name) and target.id in returned)):
                yield "sign", key, lambda n: setattr(n, "value", _neg(n.value))
        elif isinstance(node, ast.Attribute) and node.attr == "T":
            yield "transpose", key, lambda n: n.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "transpose" and not node.args):
            yield "transpose", key, lambda n: n.func.value
        elif isinstance(node, ast.keyword) and node.arg == "axis" \
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, int):
            other = {0: 1, 1: 0, -1: 0}.get(node.value.value, 0)
            yield "axis", key, lambda n, o=other: setattr(n, "value", ast.Constant(o))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            yield "factor", key + ("left",), lambda n: n.left
            yield "factor", key + ("right",), lambda n: n.right


def _key_of(node: ast.AST) -> tuple:
    return (type(node).__name__, getattr(node, "lineno", -1), getattr(node, "col_offset", -1))


def mutate(src: str, lines: set[int]) -> list[tuple[str, str, str]]:
    """Every single-site variant of ``src``: (mutation, mutated line, new source)."""
    base = ast.parse(_blank_magics(src))
    variants = []
    for kind, key, apply in list(_sites(base, lines)):
        tree = ast.parse(_blank_magics(src))
        done = False
        for parent in ast.walk(tree):
            for field, value in ast.iter_fields(parent):
                items = value if isinstance(value, list) else [value]
                for idx, child in enumerate(items):
                    if done or not isinstance(child, ast.AST):
                        continue
                    if key[:3] != _key_of(child) or not _in_region(child, lines):
                        continue
                    new = apply(child)
                    if new is not None:
                        if isinstance(value, list):
                            value[idx] = new
                        else:
                            setattr(parent, field, new)
                    done = True
        if not done:
            continue
        ast.fix_missing_locations(tree)
        try:
            new_src = ast.unparse(tree)
        except Exception:
            continue
        line = ""
        if kind == "drop":
            for node in ast.walk(base):
                if _key_of(node) == key[:3]:
                    line = "left out: " + ast.unparse(node).split("\n")[0]
            variants.append((kind, line, new_src))
            continue
        for node in ast.walk(tree):
            if _key_of(node) == key[:3] or getattr(node, "lineno", None) == key[1]:
                if isinstance(node, ast.stmt):
                    line = ast.unparse(node).split("\n")[0]
                    break
        variants.append((kind, line, new_src))
    return variants


class _FirstResult:
    """The 'constant' variant: returns whatever the solution returned the first time."""

    def __init__(self, fn: Callable):
        self.fn, self.result, self.called = fn, None, False
        self.__name__ = getattr(fn, "__name__", "answer")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.called:
            self.result, self.called = self.fn(*args, **kwargs), True
        return copy.deepcopy(self.result)


# ----------------------------------------------------------------- analysis
def _hinted(kind: str, verdict: Any) -> bool:
    words = EXPECTED_HINT[kind]
    text = f"{verdict.hint or ''} {verdict.message}".lower()
    return not words or any(w in text for w in words)


def analyse(namespace: dict, exercise_ids: Sequence[str], notebook_path: str,
            seed: int = 12345) -> list[dict]:
    """Run every wrong variant of every exercise's solution through its check.

    ``namespace`` holds the names the executed solutions notebook defined.
    Returns one dict per variant (see :class:`MutantResult`).
    """
    from backprop_course.exercises import expect, registry, run_check

    nb = json.loads(Path(notebook_path).read_text(encoding="utf-8"))
    cells = exercise_cells(nb)
    results: list[MutantResult] = []
    for ex_id in exercise_ids:
        if ex_id not in cells:
            continue
        ex = registry.get(ex_id)
        src, lines = cells[ex_id]
        variants = [(k, line, s) for k, line, s in mutate(src, lines)]
        if callable(namespace.get(ex.answer)):
            variants.append(("constant", "(returns its first result every time)", None))
        for kind, line, new_src in variants:
            ns = dict(namespace)
            try:
                with contextlib.redirect_stdout(io.StringIO()), \
                        contextlib.redirect_stderr(io.StringIO()), expect.time_limit(30):
                    if new_src is None:
                        answer: Any = _FirstResult(namespace[ex.answer])
                    else:
                        exec(compile(new_src, f"<{ex_id} {kind} variant>", "exec"), ns)
                        answer = ns[ex.answer]
                    verdict = run_check(ex_id, answer, seed=seed)
            except BaseException as exc:   # the variant's own cell raised: no verdict
                if _NOT_A_VARIANT in str(exc):
                    continue
                results.append(MutantResult(
                    ex_id, kind, line, False, False,
                    f"the variant's cell raised {type(exc).__name__}: {exc}", CELL_RAISED))
                continue
            if _NOT_A_VARIANT in verdict.message:
                continue
            if verdict.kind == "internal":
                results.append(MutantResult(ex_id, kind, line, False, False, verdict.line(),
                                            CHECK_CRASHED))
                continue
            results.append(MutantResult(
                ex_id, kind, line, not verdict.passed,
                (not verdict.passed) and _hinted(kind, verdict), verdict.line(),
                SURVIVED if verdict.passed else CAUGHT))
    return [asdict(r) for r in results]


def judged(rows: Sequence[dict]) -> list[dict]:
    """The variants the check gave a verdict on (internal failures left out)."""
    return [r for r in rows if r.get("outcome", CAUGHT) not in INTERNAL]


def summarize(rows: Sequence[dict]) -> str:
    """A table per exercise: variants, caught, caught with the expected hint, internal
    failures; then the survivors and the internal failures, one per line."""
    if not rows:
        return "no wrong variants"
    out = []
    by_ex: dict[str, list[dict]] = {}
    for r in rows:
        by_ex.setdefault(r["exercise"], []).append(r)
    total = caught = hinted = internal = 0
    for ex_id, rs in by_ex.items():
        c, h = sum(r["caught"] for r in rs), sum(r["hinted"] for r in rs)
        i = len(rs) - len(judged(rs))
        total, caught, hinted, internal = total + len(rs), caught + c, hinted + h, \
            internal + i
        out.append(f"{ex_id:<28} {len(rs):>3} variants  {c:>3} caught  {h:>3} with the "
                   f"expected hint" + (f"  {i} internal failures" if i else ""))
        for r in rs:
            outcome = r.get("outcome", CAUGHT if r["caught"] else SURVIVED)
            if outcome == SURVIVED:
                out.append(f"    survived: {r['mutation']}: {r['line']}")
            elif outcome in INTERNAL:
                out.append(f"    {outcome} (not counted): {r['mutation']}: {r['line']}: "
                           f"{r['verdict'][:160]}")
    n = total - internal
    share = f"{caught / n:.0%}" if n else "n/a"
    hshare = f"{hinted / n:.0%}" if n else "n/a"
    out.append(f"{'total':<28} {total:>3} variants  {caught:>3} caught of {n} judged "
               f"({share})  {hinted:>3} with the expected hint ({hshare})  "
               f"{internal} internal failures (the check crashed or the variant's cell "
               f"raised)")
    return "\n".join(out)

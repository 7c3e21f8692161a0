"""Checks for lesson 01, the chain rule.

Four exercises, each on fresh random inputs; each asks for something the lesson
did not print:

``01-best-step``
    ``best_step(f0, f3, eps) -> (h, error)``: the step h that minimises the
    lesson's error model of the central difference,
    E(h) = h²/6·|f'''| + ε|f|/h, and E at that step. Compared with the closed
    form (3ε|f|/|f'''|)^(1/3) and checked to be a minimum of E.
``01-chain-rule``
    ``dfdx(x)``: the derivative of f(x) = log(1 + exp(3x)), worked out by hand
    with the chain rule. Compared at random points with the derivative the
    engine computes (cross-checked by central differences).
``01-sigmoid-derivative``
    ``sigmoid_prime(z)``: σ'(z) elementwise over a numpy array, compared with
    the engine's autograd (cross-checked by finite differences), then on
    |z| up to 1000, where it must return finite values without overflow
    warnings.
``01-sigmoid-max``
    ``steepest(w, b) -> (z, slope)``: where the neuron σ(wz + b) is steepest as
    a function of z, and its slope there (w/4 at z = -b/w).
``01-path-sum``
    ``total_derivative(edges, x, y)``: dy/dx on a graph given as a list of
    edges with local derivatives (parallel edges allowed, as in x * x), as the
    sum over paths of products; one graph has 2**40 paths, so the answer must
    reuse each node's gradient (accumulating with +=), not list paths.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import CheckFailure
from backprop_course.exercises.registry import exercise

NOTEBOOK = "01_chain_rule"

def _num(x: float) -> str:
    return f"{x:.4g}"


# ================================================================ 01-best-step
def _best_step(f0: float, f3: float, eps: float) -> tuple[float, float]:
    """argmin and min of E(h) = h²/6·|f3| + eps·|f0|/h."""
    h = (3 * eps * abs(f0) / abs(f3)) ** (1 / 3)
    return h, h * h * abs(f3) / 6 + eps * abs(f0) / h


def _error_model(h: float, f0: float, f3: float, eps: float) -> float:
    return h * h * abs(f3) / 6 + eps * abs(f0) / h


@exercise(
    "01-best-step",
    title="The best step for a central difference",
    notebook=NOTEBOOK,
    answer="best_step",
    hints=[
        "E(h) = h²/6·|f'''| + ε|f|/h falls, then rises: at its minimum the derivative "
        "dE/dh is zero. Differentiate each term with respect to h.",
        "dE/dh = h·|f'''|/3 - ε|f|/h². Set it to zero and solve for h³.",
        "h³ = 3ε|f|/|f'''|, so h = (3 * eps * abs(f0) / abs(f3)) ** (1/3); then "
        "evaluate E at that h for the error.",
    ],
)
def _check_best_step(answer: Any, rng: np.random.Generator) -> str:
    cases = [(math.sin(1.0), -math.cos(1.0), float(np.finfo(np.float64).eps))]
    for eps in (float(np.finfo(np.float64).eps), float(np.finfo(np.float32).eps)):
        for _ in range(2):
            f0 = float(rng.choice([-1, 1]) * rng.uniform(0.2, 5.0))
            f3 = float(rng.choice([-1, 1]) * rng.uniform(0.1, 20.0))
            cases.append((f0, f3, eps))
    rng.shuffle(cases[1:])
    for f0, f3, eps in cases:
        what = f"best_step(f0={_num(f0)}, f3={_num(f3)}, eps={eps:.3g})"
        got = expect.call(answer, f0, f3, eps, name=what, returns=(tuple, list), length=2)
        h, err = got
        for name, v in (("h", h), ("error", err)):
            if isinstance(v, complex):
                raise CheckFailure(
                    f"{what}: {name} is the complex number {v:.3g}", kind="type",
                    hint="a negative number under the cube root: the error model uses "
                         "|f| and |f'''| (abs), so the step must be a positive number "
                         "whatever the signs of f0 and f3")
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer,
                                                          np.floating)):
                raise CheckFailure(f"{what}: {name} should be a number, got "
                                   f"{type(v).__name__}: {v!r:.60}", kind="type")
        h, err = float(h), float(err)
        want_h, want_err = _best_step(f0, f3, eps)
        ratio = (3 * eps * abs(f0) / abs(f3))
        expect.close(h, want_h, what=f"h from {what}", rtol=1e-6, atol=0.0, hint_if={
            expect.equals(eps ** (1 / 3), name="eps_only", hint=(
                "ε^(1/3) is the order of magnitude only; the minimum of E also depends "
                "on |f| and |f'''|: solve dE/dh = 0")): None,
            expect.equals((ratio / 3) ** (1 / 3), name="no_3", hint=(
                "a factor 3 is missing: d/dh (h²/6) = h/3, so h³ = 3ε|f|/|f'''|")): None,
            expect.equals((2 * ratio) ** (1 / 3), name="balance", hint=(
                "this makes the two error terms equal (h³ = 6ε|f|/|f'''|); the minimum "
                "of their sum is where their *slopes* cancel: solve dE/dh = 0")): None,
            expect.equals(math.sqrt(ratio), name="sqrt", hint=(
                "a square root: that is the forward difference's rule. Here the "
                "truncation term is h², so h³ = 3ε|f|/|f'''|: a cube root")): None,
            (lambda g, e: not math.isfinite(g) or g <= 0): (
                "sign error? A step must be a positive number: the model uses |f| and "
                "|f'''| (abs), so a negative f0 or f3 must not change the answer"),
        })
        if not err > 0 or _error_model(h, f0, f3, eps) * (1 + 1e-6) < err or \
                abs(err - want_err) > 1e-6 * want_err:
            hint = None
            if abs(err - h * h * abs(f3) / 6) <= 1e-6 * abs(err):
                hint = ("this is the truncation term alone; the error at h is the sum "
                        "h²/6·|f'''| + ε|f|/h")
            elif abs(err + want_err) <= 1e-6 * want_err:
                hint = "sign error: both terms of E(h) are positive"
            elif abs(err - eps * abs(f0) / h) <= 1e-6 * abs(err):
                hint = ("this is the round-off term alone; the error at h is the sum "
                        "h²/6·|f'''| + ε|f|/h")
            raise CheckFailure(f"the error from {what} is {err:.6g}, expected "
                               f"E(h) = {want_err:.6g}", hint=hint)
    return "sin at 1 in float64, random |f| and |f'''| in float64 and float32"


# ================================================================ 01-chain-rule
def _f(x: float) -> float:
    """f(x) = log(1 + exp(3x)), computed stably."""
    return max(3 * x, 0.0) + math.log1p(math.exp(-abs(3 * x)))


@exercise(
    "01-chain-rule",
    title="The chain rule by hand: d/dx log(1 + exp(3x))",
    notebook=NOTEBOOK,
    answer="dfdx",
    hints=[
        "Split f into steps, each a function you can differentiate: a = 3x, "
        "b = exp(a), c = 1 + b, f = log(c).",
        "The local derivatives are da/dx = 3, db/da = exp(a), dc/db = 1 and "
        "df/dc = 1/c. The chain rule multiplies all four.",
        "dfdx(x) = 3 * exp(3x) / (1 + exp(3x)); written with the sigmoid it is "
        "3 * σ(3x).",
    ],
)
def _check_chain_rule(answer: Any, rng: np.random.Generator) -> str:
    points = [float(x) for x in rng.uniform(-2.0, 2.0, 5)] + [0.0]
    for x in points:
        what = f"dfdx({_num(x)})"
        got = expect.call(answer, x, name=what, returns=float)
        # the engine's derivative, cross-checked by central differences
        want = expect.grad_of(lambda v: ((v * 3).exp() + 1).log(), x)
        e3 = math.exp(3 * x)
        expect.close(got, want, what=what, rtol=1e-7, atol=1e-10, hint_if={
            expect.equals(want / 3, name="no_3", hint=(
                "a factor of the chain rule left out: the derivative of the inner "
                "3x is 3")): None,
            expect.equals(3 / (1 + e3), name="no_exp", hint=(
                "a factor of the chain rule left out: d/dx exp(3x) is 3·exp(3x), "
                "the exp stays")): None,
            expect.equals(1 / (1 + e3), name="outer_only", hint=(
                "only the outer derivative 1/(1 + exp(3x)): a factor of the chain "
                "rule left out, the derivative of the inside, exp(3x) times 3")): None,
            expect.equals(3 * e3, name="inner_only", hint=(
                "only the inner derivative: a factor of the chain rule left out, the "
                "derivative of log(c), which is 1/c with c = 1 + exp(3x)")): None,
            expect.equals(_f(x), name="f_itself", hint=(
                "this is f(x) itself; the exercise asks for its derivative")): None,
            "factor": ("off by a constant factor: a factor of the chain rule left out "
                       "(or counted twice)? Multiply the local derivative of every step"),
        })
    return "5 random points and x = 0, against the engine and finite differences"


# ================================================================ 01-sigmoid-derivative
def _stable_sigmoid_prime(z: np.ndarray) -> np.ndarray:
    """σ'(z) = e / (1 + e)² with e = exp(-|z|): σ' is even, and exp(-|z|) <= 1."""
    e = np.exp(-np.abs(z))
    return e / (1 + e) ** 2


def _call_sp(answer: Any, z: np.ndarray, what: str) -> Any:
    """Call sigmoid_prime, failing on RuntimeWarnings (overflow, invalid value)."""
    with warnings.catch_warnings(record=True) as caught, \
            np.errstate(over="warn", invalid="warn", divide="warn"):
        warnings.simplefilter("always")
        got = expect.call(answer, z, name=what)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    if runtime:
        text = str(runtime[0].message)
        raise CheckFailure(
            f"{what} gave a RuntimeWarning: {text}",
            hint=("np.exp(-z) overflows for large negative z (beyond about -709). "
                  "σ' is symmetric, σ'(-z) = σ'(z), so compute it at |z|: with "
                  "e = np.exp(-np.abs(z)), σ'(z) = e / (1 + e)**2, and exp(-|z|) "
                  "never overflows"),
            kind="error")
    return got


@exercise(
    "01-sigmoid-derivative",
    title="The sigmoid's derivative, without overflow",
    notebook=NOTEBOOK,
    answer="sigmoid_prime",
    hints=[
        "Use the result of the lesson: σ'(z) = σ(z)(1 - σ(z)). Work with whole "
        "arrays (np.exp), not Python loops or math.exp.",
        "For z = -1000, np.exp(-z) = exp(1000) overflows to inf (with a "
        "RuntimeWarning), and exp(-z) / (1 + exp(-z))**2 becomes inf/inf = nan.",
        "σ' is symmetric: σ'(-z) = σ'(z). With e = np.exp(-np.abs(z)) (never larger "
        "than 1), σ'(z) = e / (1 + e)**2.",
    ],
)
def _check_sigmoid_prime(answer: Any, rng: np.random.Generator) -> str:
    # 1) moderate values, several shapes, against the engine's autograd
    #    (cross-checked by finite differences)
    from backprop_course.tensor import Tensor   # noqa: F401  (grad_of builds Tensors)
    for shape in [(7,), (3, 4), (1,)]:
        z = rng.normal(0.0, 3.0, size=shape)
        if shape == (7,):
            z[int(rng.integers(7))] = 0.0
        what = f"sigmoid_prime(z) for z of shape {shape}"
        got = _call_sp(answer, z.copy(), what)
        want = expect.grad_of(lambda t: t.sigmoid(), z)
        s = 1 / (1 + np.exp(-z))
        expect.close(got, want, what=what, rtol=1e-7, atol=1e-12, hint_if={
            expect.equals(s, name="sigma", hint=(
                "this is σ(z) itself; the exercise asks for its derivative "
                "σ(z)(1 - σ(z))")): None,
            expect.equals(s * (1 + s), name="plus", hint=(
                "σ(z)(1 + σ(z))? The derivative is σ(z)(1 - σ(z))")): None,
            expect.equals(np.full(shape, 0.25), name="const", hint=(
                "0.25 is σ' at z = 0 only; compute it at every z")): None,
        })
    # 2) large |z|: finite results, no overflow warnings
    big = np.array([-1000.0, -710.0, -100.0, -40.0, -20.0, 0.0, 20.0, 40.0,
                    100.0, 710.0, 1000.0])
    big = np.concatenate([big, rng.uniform(-800, 800, size=5)])
    rng.shuffle(big)
    what = "sigmoid_prime(z) for z with |z| up to 1000"
    got = _call_sp(answer, big.copy(), what)
    arr = np.asarray(got) if isinstance(got, np.ndarray) else None
    if arr is not None and arr.shape == big.shape and not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        want_i = float(_stable_sigmoid_prime(big)[i])
        raise CheckFailure(
            f"{what}: got {arr[i]} at z = {big[i]:g} (expected {want_i:.3g})",
            hint=("exp(-z) / (1 + exp(-z))**2 is inf/inf = nan once exp(-z) "
                  "overflows; write σ'(z) = σ(z)(1 - σ(z)) with a sigmoid that never "
                  "overflows, or use e = np.exp(-np.abs(z)): σ'(z) = e / (1 + e)**2"))
    expect.close(got, _stable_sigmoid_prime(big), what=what, rtol=1e-6, atol=1e-15)
    return "random arrays of shapes (7,), (3, 4), (1,), and |z| up to 1000"


# ================================================================ 01-sigmoid-max
@exercise(
    "01-sigmoid-max",
    title="Where a sigmoid neuron is steepest",
    notebook=NOTEBOOK,
    answer="steepest",
    hints=[
        "Write s(z) = σ(u) with u = wz + b. By the chain rule ds/dz = σ'(u) · du/dz.",
        "du/dz = w, and σ'(u) is largest at u = 0, where it is 1/4. Which z gives "
        "u = wz + b = 0?",
        "z = -b / w, and the slope there is w · σ'(0) = w / 4 (negative when w is).",
    ],
)
def _check_sigmoid_max(answer: Any, rng: np.random.Generator) -> str:
    cases = []
    for _ in range(5):
        w = float(rng.choice([-1, 1]) * rng.uniform(0.3, 5.0))
        b = float(rng.choice([-1, 1]) * rng.uniform(0.2, 3.0))
        cases.append((w, b))
    cases.append((-float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.5, 2.0))))
    cases.append((1.0, 0.0))                # the lesson's σ itself, last
    for w, b in cases:
        what = f"steepest(w={_num(w)}, b={_num(b)})"
        got = expect.call(answer, w, b, name=what, returns=(tuple, list), length=2)
        for name, v in zip(("z", "slope"), got):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer,
                                                          np.floating)):
                raise CheckFailure(f"{what}: {name} should be a number, got "
                                   f"{type(v).__name__}: {v!r:.60}", kind="type")
        z, slope = float(got[0]), float(got[1])
        want_z, want_slope = -b / w, w / 4
        z_hints: dict = {
            expect.equals(b / w, name="sign", hint=(
                "sign error: wz + b = 0 at z = -b/w")): None,
            expect.equals(-b, name="no_w", hint=(
                "wz + b = 0 gives z = -b / w: divide by w")): None,
        }
        if b:
            z_hints[expect.equals(0.0, name="zero", hint=(
                "σ' peaks where its argument u = wz + b is 0, and that is z = 0 only "
                "when b = 0"))] = None
            z_hints[expect.equals(-w / b, name="flipped", hint=(
                "wz + b = 0 gives z = -b / w, not -w / b"))] = None
        expect.close(z, want_z, what=f"z from {what}", rtol=1e-6, atol=1e-9,
                     hint_if=z_hints)
        if not abs(slope - want_slope) <= 1e-6 * abs(want_slope):
            s_here = w * float(_stable_sigmoid_prime(np.array(w * z + b)))
            hint = None
            if abs(slope - 0.25) < 1e-6 and abs(w) != 1:
                hint = ("0.25 is σ' at its peak; the chain rule multiplies it by the "
                        "inner derivative du/dz = w")
            elif abs(slope - abs(w) / 4) < 1e-6 * abs(w):
                hint = ("sign error: the slope keeps its sign; with w < 0 the neuron "
                        "falls as z grows, so ds/dz = w/4 is negative")
            elif abs(slope + w / 4) < 1e-6 * abs(w):
                hint = "sign error: ds/dz = w · σ'(wz + b), and σ' > 0"
            elif abs(slope - 0.25 / w) < 1e-6:
                hint = "the inner derivative multiplies: w · 1/4, not 1/4 divided by w"
            raise CheckFailure(
                f"the slope from {what} is {slope:.6g}, expected {want_slope:.6g} "
                f"(the slope at your z = {z:.4g} is {s_here:.6g})", hint=hint)
    return "σ(wz + b) for w of both signs, with and without a bias"


# ================================================================ 01-path-sum
def _sweep(edges: list, x: str, y: str) -> float:
    """Reverse accumulation: dy/d(node) for each node, edges walked backwards."""
    grad = {y: 1.0}
    for src, dst, local in reversed(edges):
        grad[src] = grad.get(src, 0.0) + local * grad.get(dst, 0.0)
    return grad.get(x, 0.0)


def _sweep_overwrite(edges: list, x: str, y: str) -> float:
    grad = {y: 1.0}
    for src, dst, local in reversed(edges):
        grad[src] = local * grad.get(dst, 0.0)
    return grad.get(x, 0.0)


def _sweep_forwards(edges: list, x: str, y: str) -> float:
    grad = {y: 1.0}
    for src, dst, local in edges:
        grad[src] = grad.get(src, 0.0) + local * grad.get(dst, 0.0)
    return grad.get(x, 0.0)


def _sweep_no_parallel(edges: list, x: str, y: str) -> float:
    merged = {(s, d): w for s, d, w in edges}          # parallel edges collapse
    return _sweep([(s, d, w) for (s, d), w in merged.items()], x, y)


def _path_graphs(rng: np.random.Generator) -> list[tuple[str, list, str, str]]:
    """(description, edges, x, y): fixed shapes, random DAGs, a deep diamond stack."""
    xv = float(np.round(rng.uniform(0.5, 2.0), 3))
    graphs = [
        (f"y = x * x at x = {xv}: two edges from x to y, each worth x",
         [("x", "y", xv), ("x", "y", xv)], "x", "y"),
        ("a chain x -> u -> y", [("x", "u", 2.0), ("u", "y", -1.5)], "x", "y"),
        ("two paths x -> u -> y and x -> v -> y",
         [("x", "u", 0.5), ("x", "v", 3.0), ("u", "y", 2.0), ("v", "y", -1.0)], "x", "y"),
        ("x feeds u and y directly, u feeds y",
         [("x", "u", 1.5), ("u", "y", 2.0), ("x", "y", -0.5)], "x", "y"),
    ]
    for k in range(4):                                 # random DAGs with fan-out
        n = int(rng.integers(4, 9))
        names = ["x"] + [f"n{i}" for i in range(1, n - 1)] + ["y"]
        edges = []
        for j in range(1, n):
            sources = rng.choice(j, size=int(rng.integers(1, min(j, 3) + 1)),
                                 replace=False)
            for i in sorted(int(i) for i in sources):
                edges.append((names[i], names[j], float(np.round(rng.normal(), 3))))
                if rng.random() < 0.15:                # a parallel edge, as in x * x
                    edges.append((names[i], names[j], float(np.round(rng.normal(), 3))))
        graphs.append((f"a random graph of {n} nodes and {len(edges)} edges", edges,
                       "x", "y"))
    depth = 40                                         # 2**40 paths: reuse or time out
    edges, prev = [], "x"
    for k in range(depth):
        a, b = float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.7))
        edges += [(prev, f"a{k}", a), (prev, f"b{k}", b),
                  (f"a{k}", f"m{k}", float(rng.uniform(0.8, 1.2))),
                  (f"b{k}", f"m{k}", float(rng.uniform(0.8, 1.2)))]
        prev = f"m{k}"
    edges.append((prev, "y", 1.0))
    graphs.append((f"{depth} diamonds in a row: 2**{depth} paths from x to y", edges,
                   "x", "y"))
    return graphs


@exercise(
    "01-path-sum",
    title="Gradients along paths add: dy/dx on any graph",
    notebook=NOTEBOOK,
    answer="total_derivative",
    hints=[
        "Keep one number per node: g[node] = dy/d(node). Start with g[y] = 1. Every "
        "path from a node to y leaves it along one of its outgoing edges.",
        "So g[src] = Σ over edges (src -> dst) of local · g[dst]. Walk the edge list "
        "backwards: by then g[dst] is complete, and each edge ADDS its share "
        "(g[src] += ...), never overwrites it.",
        "`g = {y: 1.0}`; `for src, dst, local in reversed(edges): "
        "g[src] = g.get(src, 0.0) + local * g.get(dst, 0.0)`; `return g.get(x, 0.0)`.",
    ],
)
def _check_path_sum(answer: Any, rng: np.random.Generator) -> str:
    for desc, edges, x, y in _path_graphs(rng):
        what = f"total_derivative(edges, 'x', 'y') for {desc}"
        try:
            got = expect.call(answer, list(edges), x, y, name=what, returns=float)
        except CheckFailure as failure:
            if failure.kind == "timeout" and "diamonds" in desc:
                failure.hint = (
                    "listing paths one by one cannot finish here: 2**40 paths. The "
                    "paths share their tails, so keep one number per node, "
                    "g[node] = dy/d(node), and fill it in walking the edges backwards "
                    "(one multiply-add per edge), as section 7 of the lesson did")
            raise
        want = _sweep(edges, x, y)
        hint_if: dict[Any, Any] = {}
        for wrong, hint in (
                (_sweep_overwrite(edges, x, y),
                 "overwriting instead of accumulating: a node with several outgoing "
                 "edges gets the SUM of their contributions: `+=`, not `=`"),
                (_sweep_no_parallel(edges, x, y),
                 "two edges can join the same pair of nodes (y = x * x has two edges "
                 "from x to y): each is a path of its own, so do not key the edges by "
                 "(source, target)"),
                (_sweep_forwards(edges, x, y),
                 "walk the edges from the output back: g[dst] must be complete before "
                 "an edge passes it on, so go through reversed(edges)")):
            if not math.isclose(wrong, want, rel_tol=1e-9, abs_tol=1e-12):
                hint_if[expect.equals(wrong, hint, name=hint[:12])] = None
        expect.close(got, want, what=what, rtol=1e-9, atol=1e-12, hint_if=hint_if)
    return "x * x, chains, forks, random graphs with parallel edges, 2**40 paths"

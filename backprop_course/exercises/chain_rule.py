"""Checks for lesson 01, the chain rule.

Four exercises, each on fresh random inputs:

``01-central-difference``
    ``central_difference(f, x, h=1e-5) -> float``, the slope
    (f(x + h) - f(x - h)) / 2h. First with an explicit, large step h, where the
    exact formula is compared to 1e-9 (so a forward difference, a missing
    factor 2 or an ignored ``h`` is recognised), then with the default step on
    random functions, against their exact derivatives.
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
    ``sigmoid_prime_max = (z_at_max, max_value)``: where σ' peaks, and how high.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import CheckFailure
from backprop_course.exercises.registry import exercise

NOTEBOOK = "01_chain_rule"

FORWARD_HINT = (
    "this is a one-sided (forward or backward) difference, whose error shrinks only "
    "like h. Step both ways: (f(x + h) - f(x - h)) / (2 * h), error like h²")
FACTOR2_HINT = (
    "off by a factor of 2: the two points x - h and x + h are 2h apart, so divide "
    "by 2 * h (and mind the brackets: `/ (2 * h)`, not `/ 2 * h`)")
IGNORED_H_HINT = (
    "your result does not change with h: use the argument `h` for the step, "
    "not a fixed number")


def _num(x: float) -> str:
    return f"{x:.4g}"


# ================================================================ 01-central-difference
def _random_function(rng: np.random.Generator, kind: str
                     ) -> tuple[str, Callable[[float], float], Callable[[float], float]]:
    """(description, f, exact f') of a random function of the given kind."""
    if kind == "exp":
        c, a = float(rng.uniform(0.5, 2.0)), float(rng.uniform(0.6, 1.5))
        return (f"{_num(c)}·exp({_num(a)}·x)",
                lambda x: c * math.exp(a * x), lambda x: c * a * math.exp(a * x))
    if kind == "sin":
        c, b = float(rng.uniform(0.5, 2.0)), float(rng.uniform(1.0, 3.0))
        return (f"{_num(c)}·sin({_num(b)}·x)",
                lambda x: c * math.sin(b * x), lambda x: c * b * math.cos(b * x))
    if kind == "cubic":
        c, d = float(rng.uniform(0.5, 2.0)), float(rng.uniform(-2.0, 2.0))
        return (f"{_num(c)}·x³ + {_num(d)}·x",
                lambda x: c * x**3 + d * x, lambda x: 3 * c * x**2 + d)
    if kind == "tanh":
        b = float(rng.uniform(0.5, 2.0))
        return (f"tanh({_num(b)}·x)", lambda x: math.tanh(b * x),
                lambda x: b * (1 - math.tanh(b * x) ** 2))
    raise ValueError(kind)


def _call_cd(answer: Any, f: Callable, x: float, what: str, **kw: Any) -> float:
    try:
        got = expect.call(answer, f, x, name=what, returns=float, **kw)
    except CheckFailure as failure:
        if failure.kind == "error" and "positional argument" in failure.message:
            raise CheckFailure(failure.message, kind="error", hint=(
                "the signature is central_difference(f, x, h=1e-5): "
                "give h a default value")) from None
        if failure.kind == "error" and "unexpected keyword argument" in failure.message:
            raise CheckFailure(failure.message, kind="error", hint=(
                "name the step parameter `h`: def central_difference(f, x, h=1e-5)")) \
                from None
        raise
    return float(got)


@exercise(
    "01-central-difference",
    title="Central-difference derivative",
    notebook=NOTEBOOK,
    answer="central_difference",
    hints=[
        "A derivative is the slope between two nearby points. Which two points does "
        "the central difference use, and how far apart are they?",
        "Evaluate f one step to the right, f(x + h), and one step to the left, "
        "f(x - h). Their difference is the rise; the run is the distance between "
        "x - h and x + h.",
        "return (f(x + h) - f(x - h)) / (2 * h)",
    ],
)
def _check_central_difference(answer: Any, rng: np.random.Generator) -> str:
    # 1) The formula, with a large explicit step so the variants differ clearly.
    for kind, h in [("exp", 0.01), ("cubic", 0.05)]:
        desc, f, df = _random_function(rng, kind)
        x = float(rng.uniform(-1.0, 1.0))
        what = f"central_difference(f, x={_num(x)}, h={h:g}) for f(x) = {desc}"
        got = _call_cd(answer, f, x, what, h=h)
        want = (f(x + h) - f(x - h)) / (2 * h)
        forward = (f(x + h) - f(x)) / h
        backward = (f(x) - f(x - h)) / h
        expect.close(got, want, what=what, rtol=1e-9, atol=1e-12, hint_if={
            expect.equals(forward, FORWARD_HINT, name="forward"): None,
            expect.equals(backward, FORWARD_HINT, name="backward"): None,
            expect.equals(2 * want, FACTOR2_HINT, name="factor2"): None,
            expect.equals(want * h * h, FACTOR2_HINT, name="bracket"): None,
            expect.equals(df(x), IGNORED_H_HINT, name="ignored_h"): None,
            "factor": ("off by a constant factor: the slope is the rise "
                       "f(x + h) - f(x - h) divided by the run 2h"),
        })
    # 2) The default step, on random functions, against the exact derivative.
    kinds = ["exp"] + [str(k) for k in rng.choice(["sin", "cubic", "tanh"], 3,
                                                    replace=False)]
    for kind in kinds:
        desc, f, df = _random_function(rng, kind)
        x = float(rng.uniform(-1.5, 1.5))
        what = f"central_difference(f, x={_num(x)}) for f(x) = {desc}"
        got = _call_cd(answer, f, x, what)
        h = 1e-5
        expect.close(got, df(x), what=what + " (the exact derivative)",
                     rtol=1e-7, atol=1e-8, hint_if={
                         expect.equals(2 * df(x), FACTOR2_HINT, name="factor2"): None,
                         (lambda g, e, f=f, x=x: abs(g - (f(x + h) - f(x)) / h)
                          < 1e-9 * (1 + abs(g))): FORWARD_HINT,
                     },
                     hint="the formula was right with an explicit h, so check the "
                          "default step: h=1e-5 (a much smaller h loses digits to "
                          "round-off, a much larger one to truncation)")
    return "the formula at an explicit h, and the default h on exp, sin, x³, tanh"


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
    title="Where the sigmoid's derivative peaks",
    notebook=NOTEBOOK,
    answer="sigmoid_prime_max",
    hints=[
        "Plot or tabulate σ'(z) = σ(z)(1 - σ(z)) for z from -5 to 5: where is it "
        "largest?",
        "With p = σ(z), σ'(z) = p(1 - p) = 1/4 - (p - 1/2)². Which p makes it "
        "largest, and which z gives that p?",
        "p = 1/2 at z = 0, so the answer is (0.0, 0.25).",
    ],
)
def _check_sigmoid_max(answer: Any, rng: np.random.Generator) -> str:
    if answer is None:
        raise CheckFailure("not attempted yet: set sigmoid_prime_max to a tuple "
                           "(z_at_max, max_value)", kind="not_attempted")
    if callable(answer):
        raise CheckFailure(
            "sigmoid_prime_max should be a tuple of two numbers, got a function",
            hint="write the answer itself: sigmoid_prime_max = (z_at_max, max_value)",
            kind="type")
    if isinstance(answer, np.ndarray):
        answer = answer.tolist()
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise CheckFailure(
            f"sigmoid_prime_max should be a tuple (z_at_max, max_value), got "
            f"{type(answer).__name__}: {answer!r}"[:200],
            hint="two numbers: where σ' is largest, and its value there", kind="type")
    z_at, peak = answer
    for name, v in [("z_at_max", z_at), ("max_value", peak)]:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise CheckFailure(f"{name} should be a number, got {type(v).__name__}: "
                               f"{v!r}"[:200], kind="type")
    z_at, peak = float(z_at), float(peak)
    if abs(peak - 0.5) < 1e-3:
        raise CheckFailure(
            f"max_value is {peak:.4g}, which is σ(0), the sigmoid itself",
            hint="the question is about the derivative σ'(z) = σ(z)(1 - σ(z))")
    if abs(z_at - 0.25) < 1e-3 and abs(peak) < 1e-2:
        raise CheckFailure("the two numbers are swapped: the tuple is "
                           "(z_at_max, max_value)",
                           hint="z first, then the value of σ' there")
    if abs(z_at) > 1e-2:
        raise CheckFailure(
            f"z_at_max is {z_at:.4g}, but σ'({z_at:.4g}) = "
            f"{float(_stable_sigmoid_prime(np.array(z_at))):.4g} is less than "
            f"σ'(0) = 0.25", hint="σ' is symmetric around one point: which?")
    if abs(peak - 0.25) > 1e-4:
        raise CheckFailure(
            f"max_value is {peak:.6g}, expected σ'(0) = σ(0)(1 - σ(0))",
            hint="σ(0) = 1/2, so σ'(0) = 1/2 · (1 - 1/2)")
    return "z_at_max = 0 and max_value = 0.25"

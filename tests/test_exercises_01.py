"""Lesson 01 checks: the reference answers pass, the usual mistakes fail with the
right hint, and the check's own references are right."""
from __future__ import annotations

import math

import numpy as np
import pytest

from backprop_course import gradcheck
from backprop_course.exercises import registry, run_check
from backprop_course.exercises import chain_rule
from verdicts import assert_caught

SEEDS = [0, 1, 2, 3, 4]


def verdict(exercise_id, answer, seed=0):
    return run_check(exercise_id, answer, seed=seed)


def assert_fails(exercise_id, answer, *, hint=None, message=None, kind=None, seeds=SEEDS):
    """The answer fails on every seed, with ``hint``/``message`` text and ``kind``."""
    for seed in seeds:
        v = verdict(exercise_id, answer, seed)
        assert_caught(v, f"{exercise_id} (seed {seed})", "")
        if hint is not None:
            assert v.hint and hint in v.hint, (seed, v.message, v.hint)
        if message is not None:
            assert message in v.message, (seed, v.message)
        if kind is not None:
            assert v.kind == kind, (seed, v.kind, v.message)


def test_all_five_registered_for_the_notebook():
    ids = [e.id for e in registry.all_exercises("01_chain_rule")]
    assert ids == ["01-best-step", "01-chain-rule", "01-path-sum",
                   "01-sigmoid-derivative", "01-sigmoid-max"]
    for e in registry.all_exercises("01_chain_rule"):
        assert 2 <= len(e.hints) <= 4


# ---------------------------------------------------------------- best step
def best_step(f0, f3, eps):
    h = (3 * eps * abs(f0) / abs(f3)) ** (1 / 3)
    return h, h * h * abs(f3) / 6 + eps * abs(f0) / h


def best_step_other_form(f0, f3, eps):
    h = np.cbrt(3 * eps * np.abs(f0) / np.abs(f3))
    return float(h), float(0.5 * abs(f3) * h * h)      # E(h*) = |f3| h*^2 / 2


@pytest.mark.parametrize("answer", [best_step, best_step_other_form])
def test_best_step_reference_passes(answer):
    for seed in SEEDS:
        v = verdict("01-best-step", answer, seed)
        assert v.passed, v.render()


def test_best_step_reference_is_the_minimum_of_the_error_model():
    for f0, f3, eps in [(0.84, -0.54, 2.2e-16), (-3.0, 12.0, 1.2e-7)]:
        h, err = chain_rule._best_step(f0, f3, eps)
        grid = h * np.exp(np.linspace(-1, 1, 201))
        model = [chain_rule._error_model(g, f0, f3, eps) for g in grid]
        assert abs(grid[int(np.argmin(model))] / h - 1) < 0.01
        assert abs(min(model) / err - 1) < 1e-4


def _h_only(rule):
    def answer(f0, f3, eps):
        h = rule(abs(f0), abs(f3), eps)
        return h, h * h * abs(f3) / 6 + eps * abs(f0) / h
    return answer


@pytest.mark.parametrize("answer, needle", [
    (_h_only(lambda f, t, e: e ** (1 / 3)), "order of magnitude only"),
    (_h_only(lambda f, t, e: (e * f / t) ** (1 / 3)), "factor 3 is missing"),
    (_h_only(lambda f, t, e: (6 * e * f / t) ** (1 / 3)), "slopes"),
    (_h_only(lambda f, t, e: (3 * e * f / t) ** 0.5), "cube root"),
    (lambda f0, f3, eps: ((3 * eps * f0 / f3) ** (1 / 3), 1e-10), "positive"),
    (lambda f0, f3, eps: (best_step(f0, f3, eps)[0],
                          best_step(f0, f3, eps)[0] ** 2 * abs(f3) / 6), "truncation term"),
    (lambda f0, f3, eps: (best_step(f0, f3, eps)[0],
                          eps * abs(f0) / best_step(f0, f3, eps)[0]), "round-off term"),
    (lambda f0, f3, eps: best_step(f0, f3, eps)[0], "should return a tuple"),
    (lambda f0, f3, eps: (1e-5, 1e-11), "wrong"),
])
def test_best_step_rejects_usual_mistakes(answer, needle):
    for seed in SEEDS:
        assert_caught(verdict("01-best-step", answer, seed), "best-step", needle)


# ---------------------------------------------------------------- chain rule
def dfdx(x):
    return 3 * math.exp(3 * x) / (1 + math.exp(3 * x))


def dfdx_sigmoid_form(x):
    return 3 / (1 + math.exp(-3 * x))


@pytest.mark.parametrize("answer", [dfdx, dfdx_sigmoid_form])
def test_chain_rule_reference_passes(answer):
    for seed in SEEDS:
        v = verdict("01-chain-rule", answer, seed)
        assert v.passed, v.render()


@pytest.mark.parametrize("wrong", [
    lambda x: math.exp(3 * x) / (1 + math.exp(3 * x)),          # inner 3 dropped
    lambda x: 3 / (1 + math.exp(3 * x)),                        # exp factor dropped
    lambda x: 1 / (1 + math.exp(3 * x)),                        # outer only
    lambda x: 3 * math.exp(3 * x),                              # inner only
    lambda x: 9 * math.exp(3 * x) / (1 + math.exp(3 * x)),      # 3 counted twice
])
def test_chain_rule_rejects_left_out_factor(wrong):
    assert_fails("01-chain-rule", wrong, hint="a factor of the chain rule left out")


def test_chain_rule_rejects_sign_f_itself_constant_none():
    assert_fails("01-chain-rule", lambda x: -dfdx(x), hint="sign")
    assert_fails("01-chain-rule", lambda x: math.log(1 + math.exp(3 * x)),
                 hint="f(x) itself")
    assert_fails("01-chain-rule", lambda x: 1.5, message="is wrong")
    assert_fails("01-chain-rule", lambda x: None, kind="none")


def test_chain_rule_checks_random_points():
    """Hard-coding the first seed's answers cannot pass another seed."""
    seen = {}

    def recorder(x):
        seen.setdefault(x, dfdx(x))
        return seen[x]

    assert verdict("01-chain-rule", recorder, 0).passed
    table = dict(seen)
    v = verdict("01-chain-rule", lambda x: table.get(x, 0.0), 1)
    assert_caught(v, "answers hard-coded for seed 0", "is wrong")


# ---------------------------------------------------------------- sigmoid'
def sigmoid_prime(z):
    e = np.exp(-np.abs(z))
    return e / (1 + e) ** 2


def sigmoid_prime_stable_sigma(z):
    s = np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))),
                 np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))
    return s * (1 - s)


def sigmoid_prime_tanh(z):
    s = 0.5 * (1 + np.tanh(0.5 * z))
    return s * (1 - s)


@pytest.mark.parametrize("answer", [sigmoid_prime, sigmoid_prime_stable_sigma,
                                    sigmoid_prime_tanh])
def test_sigmoid_prime_reference_passes(answer):
    for seed in SEEDS:
        v = verdict("01-sigmoid-derivative", answer, seed)
        assert v.passed, v.render()


def test_sigmoid_prime_rejects_nan_for_large_negative_z():
    def quotient(z):
        return np.exp(-z) / (1 + np.exp(-z)) ** 2

    # the warning comes first; silence it and the nan is caught instead
    assert_fails("01-sigmoid-derivative", quotient, hint="np.abs(z)")

    def quotient_quiet(z):
        with np.errstate(all="ignore"):
            return np.exp(-z) / (1 + np.exp(-z)) ** 2

    assert_fails("01-sigmoid-derivative", quotient_quiet, hint="inf/inf = nan",
                 message="z = -")


def test_sigmoid_prime_rejects_overflow_warning():
    def naive(z):
        s = 1 / (1 + np.exp(-z))
        return s * (1 - s)

    assert_fails("01-sigmoid-derivative", naive, message="RuntimeWarning",
                 hint="exp(-|z|)")


def test_sigmoid_prime_rejects_usual_mistakes():
    def sigma(z):
        return 0.5 * (1 + np.tanh(0.5 * z))

    assert_fails("01-sigmoid-derivative", sigma, hint="σ(z) itself")
    assert_fails("01-sigmoid-derivative", lambda z: sigma(z) * (1 + sigma(z)),
                 hint="σ(z)(1 - σ(z))")
    assert_fails("01-sigmoid-derivative", lambda z: -sigmoid_prime(z), hint="sign")
    assert_fails("01-sigmoid-derivative", lambda z: np.full(z.shape, 0.25),
                 hint="0.25 is σ'")
    assert_fails("01-sigmoid-derivative", lambda z: 0.25, kind="shape")
    assert_fails("01-sigmoid-derivative", lambda z: list(sigmoid_prime(z)), kind="type")
    assert_fails("01-sigmoid-derivative", lambda z: sigmoid_prime(z).sum(), kind="shape")
    assert_fails("01-sigmoid-derivative", lambda z: sigmoid_prime(z).astype(np.float32),
                 kind="dtype")
    assert_fails("01-sigmoid-derivative",
                 lambda z: np.array([0.25 / (1 + math.exp(-v)) for v in z]),
                 message="is wrong")
    assert_fails("01-sigmoid-derivative",
                 lambda z: np.array([math.exp(-v) / (1 + math.exp(-v)) ** 2
                                     for v in z]),
                 kind="error", message="TypeError")   # math.exp on a row of a 2-D array


def test_sigmoid_prime_rejects_changing_input_in_place():
    def in_place(z):
        np.abs(z, out=z)
        e = np.exp(-z)
        return e / (1 + e) ** 2

    assert_fails("01-sigmoid-derivative", in_place, kind="mutation")


def test_sigmoid_prime_check_reference_is_right():
    z = np.array([-6.0, -3.0, -0.5, 0.0, 0.7, 4.0, 7.5])
    numeric = gradcheck.numerical_grad(
        lambda v: float(np.sum(0.5 * (1 + np.tanh(0.5 * v)))), z)
    assert gradcheck.rel_error(chain_rule._stable_sigmoid_prime(z), numeric) < 1e-6
    # far out, against the textbook quotient (no overflow for |z| <= 300)
    z = np.array([-300.0, -100.0, -30.0, 30.0, 100.0, 300.0])
    quotient = np.exp(-z) / (1 + np.exp(-z)) ** 2
    assert np.allclose(chain_rule._stable_sigmoid_prime(z), quotient, rtol=1e-12,
                       atol=0)
    assert chain_rule._stable_sigmoid_prime(np.array(0.0)) == 0.25
    assert np.all(np.isfinite(chain_rule._stable_sigmoid_prime(np.array([-1e4, 1e4]))))


# ---------------------------------------------------------------- sigmoid max
def steepest(w, b):
    return -b / w, w / 4


@pytest.mark.parametrize("answer", [steepest, lambda w, b: (np.float64(-b / w), 0.25 * w),
                                    lambda w, b: [-b / w, w * 0.5 * (1 - 0.5)]])
def test_sigmoid_max_reference_passes(answer):
    for seed in SEEDS:
        v = verdict("01-sigmoid-max", answer, seed)
        assert v.passed, v.render()


@pytest.mark.parametrize("answer, needle", [
    (lambda w, b: (-b / w, 0.25), "inner derivative"),
    (lambda w, b: (-b / w, abs(w) / 4), "keeps its sign"),
    (lambda w, b: (-b / w, -w / 4), "sign error"),
    (lambda w, b: (-b / w, 0.25 / w), "not 1/4 divided by w"),
    (lambda w, b: (b / w, w / 4), "sign error"),
    (lambda w, b: (-b, w / 4), "divide by w"),
    (lambda w, b: (-w / b if b else 0.0, w / 4), "not -w / b"),
    (lambda w, b: (0.0, w / 4), "z = 0 only"),
    (lambda w, b: (0.0, 0.25), "wrong"),
    (lambda w, b: -b / w, "should return a tuple"),
    (lambda w, b: (-b / w, "w/4"), "should be a number"),
])
def test_sigmoid_max_rejects_usual_mistakes(answer, needle):
    for seed in SEEDS:
        assert_caught(verdict("01-sigmoid-max", answer, seed), "sigmoid-max", needle)


# ---------------------------------------------------------------- path sum
def total_derivative(edges, x, y):
    g = {y: 1.0}
    for src, dst, local in reversed(edges):
        g[src] = g.get(src, 0.0) + local * g.get(dst, 0.0)
    return g.get(x, 0.0)


def total_derivative_memo(edges, x, y):
    """Recursion over outgoing edges, with each node's dy/dnode remembered."""
    out = {}
    for src, dst, local in edges:
        out.setdefault(src, []).append((dst, local))
    memo = {y: 1.0}

    def g(node):
        if node not in memo:
            memo[node] = sum(local * g(dst) for dst, local in out.get(node, []))
        return memo[node]
    return g(x)


def _paths_one_by_one(edges, x, y):
    out = {}
    for src, dst, local in edges:
        out.setdefault(src, []).append((dst, local))

    def total(node):
        return 1.0 if node == y else sum(w * total(d) for d, w in out.get(node, []))
    return total(x)


def _overwrite(edges, x, y):
    g = {y: 1.0}
    for src, dst, local in reversed(edges):
        g[src] = local * g.get(dst, 0.0)
    return g.get(x, 0.0)


def _forwards(edges, x, y):
    g = {y: 1.0}
    for src, dst, local in edges:
        g[src] = g.get(src, 0.0) + local * g.get(dst, 0.0)
    return g.get(x, 0.0)


def _keyed_by_pair(edges, x, y):
    merged = {(s, d): w for s, d, w in edges}
    return total_derivative([(s, d, w) for (s, d), w in merged.items()], x, y)


@pytest.mark.parametrize("answer", [total_derivative, total_derivative_memo])
def test_path_sum_reference_passes(answer):
    for seed in SEEDS:
        v = verdict("01-path-sum", answer, seed)
        assert v.passed, v.render()


def test_path_sum_reference_agrees_with_listing_paths_on_small_graphs():
    rng = np.random.default_rng(0)
    for _desc, edges, x, y in chain_rule._path_graphs(rng)[:-1]:
        assert math.isclose(chain_rule._sweep(edges, x, y),
                            _paths_one_by_one(edges, x, y), rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("answer, needle", [
    (_overwrite, "`+=`, not"),
    (_keyed_by_pair, "x * x"),
    (_forwards, "reversed(edges)"),
    (lambda e, x, y: {"x": 1.0}, "should return a number"),
    (lambda e, x, y: 1.0, "wrong"),
])
def test_path_sum_rejects_usual_mistakes(answer, needle):
    for seed in SEEDS[:3]:
        assert_caught(verdict("01-path-sum", answer, seed), "path-sum", needle)


@pytest.mark.slow
def test_path_sum_listing_paths_times_out_with_a_hint():
    assert_caught(verdict("01-path-sum", _paths_one_by_one, 0), "listing paths",
                  "2**40 paths")

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


def test_all_four_registered_for_the_notebook():
    ids = [e.id for e in registry.all_exercises("01_chain_rule")]
    assert ids == ["01-central-difference", "01-chain-rule", "01-sigmoid-derivative",
                   "01-sigmoid-max"]
    for e in registry.all_exercises("01_chain_rule"):
        assert 2 <= len(e.hints) <= 4


# ---------------------------------------------------------------- central difference
def central(f, x, h=1e-5):
    return (f(x + h) - f(x - h)) / (2 * h)


def central_other_spelling(f, x, h=1e-5):
    return 0.5 * (f(x + h) - f(x - h)) / h


@pytest.mark.parametrize("answer", [central, central_other_spelling])
def test_central_difference_reference_passes(answer):
    for seed in SEEDS:
        v = verdict("01-central-difference", answer, seed)
        assert v.passed, v.render()


def test_central_difference_rejects_forward_and_backward_difference():
    def forward(f, x, h=1e-5):
        return (f(x + h) - f(x)) / h

    def backward(f, x, h=1e-5):
        return (f(x) - f(x - h)) / h

    assert_fails("01-central-difference", forward, hint="one-sided")
    assert_fails("01-central-difference", backward, hint="one-sided")


def test_central_difference_rejects_missing_factor_2():
    def over_h(f, x, h=1e-5):
        return (f(x + h) - f(x - h)) / h

    def brackets(f, x, h=1e-5):
        return (f(x + h) - f(x - h)) / 2 * h

    assert_fails("01-central-difference", over_h, hint="factor of 2")
    assert_fails("01-central-difference", brackets, hint="factor of 2")


def test_central_difference_rejects_sign_flip():
    def flipped(f, x, h=1e-5):
        return (f(x - h) - f(x + h)) / (2 * h)

    assert_fails("01-central-difference", flipped, hint="sign")


def test_central_difference_rejects_ignoring_h():
    def fixed_step(f, x, h=1e-5):
        return (f(x + 1e-5) - f(x - 1e-5)) / 2e-5

    assert_fails("01-central-difference", fixed_step, hint="does not change with h")


def test_central_difference_rejects_bad_default_step():
    def tiny_default(f, x, h=1e-13):
        return (f(x + h) - f(x - h)) / (2 * h)

    def huge_default(f, x, h=1e-2):
        return (f(x + h) - f(x - h)) / (2 * h)

    assert_fails("01-central-difference", tiny_default, hint="default step")
    assert_fails("01-central-difference", huge_default, hint="default step")


def test_central_difference_rejects_missing_default_and_wrong_name():
    def no_default(f, x, h):
        return (f(x + h) - f(x - h)) / (2 * h)

    def other_name(f, x, step=1e-5):
        return (f(x + step) - f(x - step)) / (2 * step)

    assert_fails("01-central-difference", no_default, hint="give h a default")
    assert_fails("01-central-difference", other_name, hint="name the step parameter")


def test_central_difference_rejects_constant_none_error_stub_and_array():
    assert_fails("01-central-difference", lambda f, x, h=1e-5: 1.0,
                 message="is wrong")
    assert_fails("01-central-difference", lambda f, x, h=1e-5: None, kind="none")

    def raises(f, x, h=1e-5):
        raise ValueError("oops")

    def stub(f, x, h=1e-5):
        raise NotImplementedError("Exercise 01-central-difference")

    def as_array(f, x, h=1e-5):
        return np.array([(f(x + h) - f(x - h)) / (2 * h)])

    assert_fails("01-central-difference", raises, kind="error", message="ValueError")
    assert_fails("01-central-difference", stub, kind="not_attempted")
    assert_fails("01-central-difference", as_array, kind="type")
    assert_fails("01-central-difference", "central", kind="type")


def test_central_difference_failure_names_the_function_and_point():
    def over_h(f, x, h=1e-5):
        return (f(x + h) - f(x - h)) / h

    v = verdict("01-central-difference", over_h)
    assert "central_difference(f, x=" in v.message and "f(x) =" in v.message
    assert "expected" in v.message and "got" in v.message


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
    assert not v.passed


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


# ---------------------------------------------------------------- sigmoid' max
@pytest.mark.parametrize("answer", [(0.0, 0.25), [0, 0.25], (np.float64(0.0), 0.25),
                                    (0.004, 0.249999), np.array([0.0, 0.25])])
def test_sigmoid_max_reference_passes(answer):
    v = verdict("01-sigmoid-max", answer)
    assert v.passed, v.render()


@pytest.mark.parametrize("answer, hint, kind", [
    ((0.0, 0.5), "derivative", "wrong"),
    ((0.25, 0.0), "z first", "wrong"),
    ((1.0, 0.25), "symmetric", "wrong"),
    ((0.0, 1.0), "σ(0) = 1/2", "wrong"),
    ((0.0, 0.2), "σ(0) = 1/2", "wrong"),
    (0.25, "two numbers", "type"),
    ((0.0, 0.25, 1.0), "two numbers", "type"),
    ((0.0, "0.25"), None, "type"),
    (None, None, "not_attempted"),
    (lambda z: z, "the answer itself", "type"),
])
def test_sigmoid_max_rejects_wrong_answers(answer, hint, kind):
    v = verdict("01-sigmoid-max", answer)
    assert not v.passed
    assert v.kind == kind, v.render()
    if hint:
        assert v.hint and hint in v.hint, v.render()

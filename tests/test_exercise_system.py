"""The exercise machinery in-process: check, hint, verdicts, mistake detectors.

Uses the fixture exercises in tests/fixtures/bpc_fixture_checks.py. Every wrong
answer below must fail, and where the mistake is a usual one, with its hint.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import bpc_fixture_checks  # noqa: E402,F401  (registers the 00-* exercises)

from backprop_course import Value  # noqa: E402
from backprop_course import gradcheck  # noqa: E402
from backprop_course.exercises import (  # noqa: E402
    CheckFailure, ExerciseFailed, UnknownExercise, check, expect, hint, list_exercises,
    registry, run_check,
)


# ----------------------------------------------------------------- answers
def tanh2_grad(x):
    return 2 * (1 - np.tanh(2 * x) ** 2)


def linear_backward(x, W, b, dout):
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


def mul_backward(a, b, out):
    a.grad += b.data * out.grad
    b.grad += a.data * out.grad


# ------------------------------------------------------------ registry, check
def test_solutions_pass_with_one_line(capsys):
    for ex_id, answer in [("00-tanh-chain", tanh2_grad),
                          ("00-linear-backward", linear_backward),
                          ("00-mul-backward", mul_backward)]:
        assert check(ex_id, answer) is None
        out = capsys.readouterr().out
        assert out.count("\n") == 1 and out.startswith(f"\u2714 {ex_id} passed: ")
    assert "including a batch of 1" in run_check("00-linear-backward", linear_backward).message


def test_registry_lists_every_exercise_with_title_and_notebook():
    ids = {ex.id: ex for ex in list_exercises()}
    assert {"00-tanh-chain", "00-linear-backward", "00-mul-backward"} <= set(ids)
    ex = ids["00-linear-backward"]
    assert (ex.title, ex.notebook, ex.answer) == ("Linear layer backward", "00_fixture",
                                                  "linear_backward")
    assert [e.id for e in list_exercises("00_fixture")] == sorted(
        ["00-tanh-chain", "00-linear-backward", "00-mul-backward"])


def test_unknown_id_suggests_close_ids():
    with pytest.raises(UnknownExercise) as info:
        check("00-tanh-chian", tanh2_grad)
    assert "00-tanh-chain" in str(info.value) and "Did you mean" in str(info.value)
    assert info.value._render_traceback_() == [f"UnknownExercise: {info.value}"]


def test_registration_rules():
    with pytest.raises(ValueError, match="must look like"):
        registry.exercise("Central Difference", title="t", notebook="n", answer="f")
    with pytest.raises(ValueError, match="not a Python name"):
        registry.exercise("00-x", title="t", notebook="n", answer="not a name")

    def other_module_check(answer, rng):
        pass
    other_module_check.__module__ = "somebody.else"
    with pytest.raises(ValueError, match="registered twice"):
        registry.exercise("00-tanh-chain", title="t", notebook="n",
                          answer="f")(other_module_check)


def test_broken_check_module_is_loud_and_missing_one_is_skipped(tmp_path, monkeypatch):
    pkg = tmp_path / "bpc_lessons_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text("VALUE = 1\n")
    (pkg / "broken.py").write_text("raise RuntimeError('typo in a check')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.import_modules("bpc_lessons_pkg", ["good", "not_written_yet"]) == [
        "bpc_lessons_pkg.good"]
    with pytest.raises(ImportError, match=r"bpc_lessons_pkg\.broken.*typo in a check"):
        registry.import_modules("bpc_lessons_pkg", ["good", "broken"])


def test_failure_renders_short_without_checker_traceback():
    def wrong(x, W, b, dout):
        return -(dout @ W.T), x.T @ dout, dout.sum(axis=0)
    with pytest.raises(ExerciseFailed) as info:
        check("00-linear-backward", wrong)
    failure = info.value
    assert isinstance(failure, AssertionError)
    lines = failure._render_traceback_()
    assert lines[0].startswith("\u2718 Exercise 00-linear-backward (Linear layer backward): dx")
    assert any(line.strip().startswith("hint: the size is right but the sign is flipped")
               for line in lines)
    assert lines[-1].strip() == '(hint("00-linear-backward") for more help)'
    assert len(lines) <= 8
    text = "\n".join(lines)
    assert "Traceback" not in text and "File " not in text and ".py" not in text
    assert str(failure) == text          # plain Python shows the same lines
    assert "expected" in text and "got" in text and "relative error 1" in text


def test_hints_are_progressive(capsys):
    registry_hints = registry.get("00-tanh-chain").hints
    from backprop_course import exercises
    exercises._hints_shown.pop("00-tanh-chain", None)
    outs = []
    for _ in range(4):
        hint("00-tanh-chain")
        outs.append(capsys.readouterr().out)
    for i in range(3):
        assert outs[i].startswith(f"Hint {i + 1}/3 for 00-tanh-chain")
        assert registry_hints[i] in outs[i]
    assert "last one" in outs[2] and "last one" not in outs[1]
    assert outs[3].startswith("No more hints for 00-tanh-chain")


# --------------------------------------------------------- wrong variants
def _lin(dx=None, dW=None, db=None):
    """linear_backward with one of its three gradients replaced by a wrong one."""
    def answer(x, W, b, dout):
        right = linear_backward(x, W, b, dout)
        return tuple(wrong(x, W, b, dout) if wrong else g
                     for wrong, g in zip((dx, dW, db), right))
    return answer


def _mul(rule):
    def answer(a, b, out):
        rule(a, b, out)
    return answer


def _overwrite(a, b, out):
    a.grad = b.data * out.grad
    b.grad = a.data * out.grad


def _no_upstream(a, b, out):
    a.grad += b.data
    b.grad += a.data


def _mul_sign(a, b, out):
    a.grad -= b.data * out.grad
    b.grad -= a.data * out.grad


FIXED = (np.ones((1, 3)), np.ones((3, 4)), np.ones(4))

WRONG_VARIANTS = [
    # (exercise, name, answer, words the hint must contain)
    ("00-tanh-chain", "sign flipped", lambda x: -tanh2_grad(x), "sign"),
    ("00-tanh-chain", "chain-rule factor 2 left out", lambda x: 1 - np.tanh(2 * x) ** 2,
     "factor"),
    ("00-tanh-chain", "constant returned", lambda x: 2.0, "hard-coded"),
    ("00-linear-backward", "sign flipped in dW", _lin(dW=lambda x, W, b, d: -(x.T @ d)),
     "sign"),
    ("00-linear-backward", "transpose dropped in dW", _lin(dW=lambda x, W, b, d: d.T @ x),
     "transpose"),
    ("00-linear-backward", "transpose dropped in dx", _lin(dx=lambda x, W, b, d: d @ W),
     "transpose"),
    ("00-linear-backward", "bias not summed over the batch", _lin(db=lambda x, W, b, d: d),
     "not summed over the batch"),
    ("00-linear-backward", "sum over the wrong axis",
     _lin(db=lambda x, W, b, d: d.sum(axis=1)), "wrong axis"),
    ("00-linear-backward", "mean instead of sum", _lin(db=lambda x, W, b, d: d.mean(axis=0)),
     "batch size"),
    ("00-linear-backward", "constant returned", lambda x, W, b, d: FIXED, "hard-coded"),
    ("00-mul-backward", "overwritten instead of accumulated", _mul(_overwrite),
     "instead of accumulating"),
    ("00-mul-backward", "upstream factor left out", _mul(_no_upstream), "upstream gradient"),
    ("00-mul-backward", "sign flipped", _mul(_mul_sign), "sign"),
]


@pytest.mark.parametrize("ex_id,name,answer,words", WRONG_VARIANTS,
                         ids=[f"{v[0]}: {v[1]}" for v in WRONG_VARIANTS])
def test_wrong_variant_fails_with_its_hint(ex_id, name, answer, words):
    for seed in (0, 1, 2):   # not a lucky draw: three different sets of inputs
        verdict = run_check(ex_id, answer, seed=seed)
        assert not verdict.passed, f"{name} passed the check"
        assert verdict.hint and words in verdict.hint, (name, verdict.render())


def test_share_of_wrong_variants_caught(capsys):
    caught = sum(not run_check(e, a).passed for e, _, a, _ in WRONG_VARIANTS)
    hinted = sum(words in (run_check(e, a).hint or "") for e, _, a, words in WRONG_VARIANTS)
    with capsys.disabled():
        print(f"\nfixture wrong variants: {caught}/{len(WRONG_VARIANTS)} caught, "
              f"{hinted}/{len(WRONG_VARIANTS)} with the expected hint")
    assert caught == hinted == len(WRONG_VARIANTS)


# ------------------------------------------------------ learner misbehaviour
def _raises(x):
    return {"a": 1}["b"]


def _returns_none(x):
    y = 2 * (1 - np.tanh(2 * x) ** 2)  # noqa: F841  (forgot to return it)


def _slow(x):
    time.sleep(5)
    return tanh2_grad(x)


def _endless(x):
    while True:
        try:
            pass
        except Exception:
            pass


def _float32_linear(x, W, b, dout):
    return tuple(g.astype(np.float32) for g in linear_backward(x, W, b, dout))


def _int_db(x, W, b, dout):
    dx, dW, db = linear_backward(x, W, b, dout)
    return dx, dW, np.zeros(b.shape, dtype=int)


def _mutating(x, W, b, dout):
    dx, dW, db = linear_backward(x, W, b, dout)
    x *= 2
    return dx, dW, db


def _stub(x):
    raise NotImplementedError("Exercise 00-tanh-chain: replace this line with your code")


MISBEHAVIOUR = [
    ("00-tanh-chain", _raises, "error", "raised KeyError: 'b' (in _raises, line",
     None),
    ("00-tanh-chain", _returns_none, "none", "returned None", "return"),
    ("00-tanh-chain", _slow, "timeout", "ran for more than 1 s and was stopped", "loop"),
    ("00-tanh-chain", _endless, "timeout", "ran for more than 1 s", None),
    ("00-tanh-chain", lambda x: np.array([tanh2_grad(x)]), "type", "should return a number",
     "single number"),
    ("00-tanh-chain", lambda x: "0.5", "type", "should return a number", None),
    ("00-tanh-chain", 3.0, "type", "should be a function", "without calling it"),
    ("00-tanh-chain", None, "none", "is None: define it", None),
    ("00-tanh-chain", _stub, "not_attempted", "not attempted yet: replace the `raise "
     "NotImplementedError` line", None),
    ("00-linear-backward", lambda x, W, b, d: linear_backward(x, W, b, d)[:2], "type",
     "should return 3 values, got 2 values", "tuple"),
    ("00-linear-backward", _float32_linear, "dtype", "has dtype float32, expected float64",
     None),
    ("00-linear-backward", _int_db, "dtype", "has dtype int64, expected float64", "float"),
    ("00-linear-backward", _mutating, "mutation", "changed its input (argument 1) in place",
     "copy"),
    ("00-linear-backward", lambda x, W, b, d: (d, x, b), "shape", "wrong shape", None),
    ("00-linear-backward", lambda x, W, b, d: tuple(np.nan * g for g in
                                                    linear_backward(x, W, b, d)),
     "wrong", "is wrong", "NaN"),
]


@pytest.mark.parametrize("ex_id,answer,kind,words,hint_words", MISBEHAVIOUR,
                         ids=[f"{m[0]}-{m[2]}-{i}" for i, m in enumerate(MISBEHAVIOUR)])
def test_misbehaving_answers_get_clear_verdicts(ex_id, answer, kind, words, hint_words):
    start = time.monotonic()
    verdict = run_check(ex_id, answer, seed=0)
    assert time.monotonic() - start < 3.0          # the 1 s limit really stops it
    assert not verdict.passed
    assert verdict.kind == kind, verdict.render()
    assert words in verdict.message, verdict.render()
    if hint_words:
        assert verdict.hint and hint_words in verdict.hint, verdict.render()
    rendered = verdict.render()
    assert "Traceback" not in rendered and "site-packages" not in rendered


def test_exception_names_the_learners_line():
    verdict = run_check("00-linear-backward", lambda x, W, b, d: (d @ W, x.T @ d,
                                                                  d.sum(axis=0)), seed=0)
    assert verdict.kind == "error" and "ValueError" in verdict.message
    assert "test_exercise_system.py" not in verdict.message   # only function and line
    assert "transpose" in verdict.hint


def test_a_bug_in_the_check_is_reported_as_ours(monkeypatch):
    @registry.exercise("00-buggy-check", title="Buggy", notebook="00_fixture", answer="f")
    def _buggy(answer, rng):
        return {}["oops"]
    try:
        verdict = run_check("00-buggy-check", tanh2_grad)
        assert verdict.kind == "internal" and "bug in the course" in verdict.message
        assert "hint(" not in verdict.render()
    finally:
        registry._REGISTRY.pop("00-buggy-check")


def test_fresh_random_inputs_unless_seeded():
    def wrong_away_from_0(x):
        return tanh2_grad(x) + (x != 0)
    seeded = {run_check("00-tanh-chain", wrong_away_from_0, seed=7).message
              for _ in range(3)}
    assert len(seeded) == 1                       # reproducible with a seed
    fresh = {run_check("00-tanh-chain", wrong_away_from_0).message for _ in range(5)}
    assert len(fresh) == 5                        # fresh inputs every call


# ------------------------------------------------------------- expect.*
def test_close_messages_show_small_arrays_and_worst_entry():
    with pytest.raises(CheckFailure) as small:
        expect.close(np.array([1.0, 2.0]), np.array([1.0, 2.5]), what="g")
    assert "expected [1. , 2.5]" in small.value.message
    assert "got      [1., 2.]" in small.value.message
    big_expected = np.zeros((10, 10))
    big_got = big_expected.copy()
    big_got[3, 7] = 1.0
    with pytest.raises(CheckFailure) as big:
        expect.close(big_got, big_expected, what="g")
    assert "1 of 100 entries wrong; worst at [3, 7]: expected 0, got 1" in big.value.message
    expect.close(np.float64(0.5), 0.5 + 1e-12, what="same")           # passes


def test_close_detectors_and_overrides():
    e = np.arange(1.0, 7.0).reshape(2, 3)
    cases = [(-e, "sign"), (e.T, "transpose"), (2 * e, "factor"), (np.zeros_like(e), "zeros")]
    for got, word in cases:
        with pytest.raises(CheckFailure) as info:
            expect.close(got, e, what="g")
        assert word in info.value.hint
    with pytest.raises(CheckFailure) as info:
        expect.close(-e, e, what="g", hint_if={"sign": "d(a - b)/db is -1"})
    assert info.value.hint == "d(a - b)/db is -1"
    with pytest.raises(CheckFailure) as info:
        expect.close(e + 1, e, what="g", hint_if={expect.equals(e + 1): "forgot the -1"})
    assert info.value.hint == "forgot the -1"
    with pytest.raises(CheckFailure) as info:
        expect.close(e + 1, e, what="g", hint_if={lambda g, x: True: "custom"})
    assert info.value.hint == "custom"
    with pytest.raises(CheckFailure) as info:   # base: overwrote the old gradient
        expect.close(e, e + 5.0, what="g", base=5.0)
    assert "instead of accumulating" in info.value.hint
    with pytest.raises(ValueError, match="unknown hint detector"):
        expect.close(-e, e, what="g", hint_if=["sgn"])


def test_call_allows_declared_mutation_and_checks_types():
    a = np.zeros(3)

    def fill(x):
        x[:] = 1.0
        return x.sum()
    assert expect.call(fill, a, mutable=[0], returns=float) == 3.0
    with pytest.raises(CheckFailure, match="in place"):
        expect.call(fill, np.zeros(3))
    with pytest.raises(CheckFailure, match="should return a numpy array"):
        expect.call(lambda: [1.0], returns=np.ndarray)
    # restoring a probed entry by subtraction leaves rounding dust: not a mutation
    x = np.array([0.1, 0.7])

    def probe(v):
        v[0] += 1e-5
        v[0] -= 1e-5
        return 1.0
    expect.call(probe, x)


def test_shape_helper():
    expect.shape(np.zeros((2, 3)), (2, 3))
    with pytest.raises(CheckFailure, match=r"expected \(2, 3\), got \(3, 2\)") as info:
        expect.shape(np.zeros((3, 2)), (2, 3), what="dW")
    assert "transpose" in info.value.hint
    with pytest.raises(CheckFailure, match="should be an array"):
        expect.shape(1.0, (2, 3))


def test_grad_of_uses_autograd_and_crosschecks_finite_differences():
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    up = rng.normal(size=(4, 2))
    dx, dW = expect.grad_of(lambda x, W: x @ W, x, W, upstream=up)
    np.testing.assert_allclose(dx, up @ W.T, rtol=1e-12)
    np.testing.assert_allclose(dW, x.T @ up, rtol=1e-12)
    g = expect.grad_of(lambda v: v * v * v, 2.0)
    assert g == pytest.approx(12.0)
    num = expect.numerical_grad(lambda v: v ** 3, np.array([1.0, 2.0]))
    np.testing.assert_allclose(num, [3.0, 12.0], rtol=1e-6)
    with pytest.raises(RuntimeError, match="disagree"):   # relu's kink at exactly 0
        expect.grad_of(lambda t: t.relu(), np.array([0.0, 1.0]))


def test_grad_of_crosscheck_accepts_entries_near_zero():
    # Random inputs put some entries near 0; their gradient there is tiny and finite
    # differences get it only to ~1e-10 absolute. Entry by entry that is a large
    # relative error (the 03-l2-gradient check failed on its own reference in CI).
    w = np.array([[3e-7, 1.3], [-0.8, 2.1]])
    g = expect.grad_of(lambda t: (t * t).sum() * 0.05, w)
    np.testing.assert_allclose(g, 0.1 * w, rtol=1e-12)
    assert gradcheck.rel_error(expect.numerical_grad(lambda v: (v * v).sum() * 0.05, w),
                               0.1 * w) > 1e-5     # the old, entry-wise rule refused it


def test_time_limit_nests_and_restores_the_outer_timer():
    if not hasattr(signal, "setitimer"):
        pytest.skip("no SIGALRM on this platform")
    with pytest.raises(expect.TimeLimitExceeded):
        with expect.time_limit(0.2):
            with expect.time_limit(5.0):      # the outer, sooner deadline wins
                time.sleep(2)
    with expect.time_limit(3.0):
        with expect.time_limit(0.1):
            pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 2.0 < left <= 3.0
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0.0


def test_value_inputs_are_not_flagged_when_gradients_change():
    a, b = Value(1.0), Value(2.0)
    out = a * b
    out.grad = 1.0
    expect.call(mul_backward, a, b, out, allow_none=True, mutable=True)
    assert (a.grad, b.grad) == (2.0, 1.0)

"""Lesson 08 checks: the reference answers pass, the usual wrong answers fail
with the hint that names the mistake."""
from __future__ import annotations

import numpy as np
import pytest

from backprop_course import Tensor
from backprop_course.exercises import run_check
from verdicts import assert_caught


# ------------------------------------------------------------------ reference answers
def fa_backward(dh, x, W, b, B):
    h = np.tanh(x @ W + b)
    dz = dh * (1 - h ** 2)
    return dz @ B, x.T @ dz, dz.sum(axis=0)


def update_angle(a, b):
    def flat(u):
        if isinstance(u, (list, tuple)):
            return np.concatenate([np.ravel(p) for p in u])
        return np.ravel(u)
    u, v = flat(a), flat(b)
    c = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


REFERENCE = {"08-fa-backward": fa_backward, "08-update-angle": update_angle}


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
@pytest.mark.parametrize("seed", range(12))
def test_reference_passes(exercise_id, seed):
    verdict = run_check(exercise_id, REFERENCE[exercise_id], seed=seed)
    assert verdict.passed, verdict.render()


# ------------------------------------------------------------ other correct answers
def _fa_backward_steps(dh, x, W, b, B):
    z = x @ W + b
    dz = dh / np.cosh(z) ** 2                       # tanh'(z) = sech²(z)
    dW = np.einsum("ni,nj->ij", x, dz)
    return np.einsum("nj,ji->ni", dz, B), dW, np.add.reduce(dz, axis=0)


def _angle_via_unit_vectors(a, b):
    u = np.hstack([np.asarray(p).ravel() for p in a]) if isinstance(a, list) \
        else np.asarray(a).ravel()
    v = np.hstack([np.asarray(p).ravel() for p in b]) if isinstance(b, list) \
        else np.asarray(b).ravel()
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    return np.degrees(np.arccos(min(1.0, max(-1.0, float(np.dot(u, v))))))


def _angle_via_atan2(a, b):
    # the numerically robust form: atan2(|u x v| , u·v) via the norms
    u = np.concatenate([np.ravel(p) for p in a]) if isinstance(a, (list, tuple)) \
        else np.ravel(a)
    v = np.concatenate([np.ravel(p) for p in b]) if isinstance(b, (list, tuple)) \
        else np.ravel(b)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    return float(np.degrees(2 * np.arctan2(np.linalg.norm(u / nu - v / nv),
                                           np.linalg.norm(u / nu + v / nv))))


ALTERNATIVES = [
    ("08-fa-backward", _fa_backward_steps),
    ("08-update-angle", _angle_via_unit_vectors),
    ("08-update-angle", _angle_via_atan2),
]


@pytest.mark.parametrize("exercise_id, answer", ALTERNATIVES,
                         ids=[f"{a[0]}-{i}" for i, a in enumerate(ALTERNATIVES)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alternative_correct_answers_pass(exercise_id, answer, seed):
    verdict = run_check(exercise_id, answer, seed=seed)
    assert verdict.passed, verdict.render()


def test_fresh_inputs_every_call():
    firsts = []

    def spy(dh, x, W, b, B):
        if spy.first:
            firsts.append(x.shape + (float(x[0, 0]),))
            spy.first = False
        return fa_backward(dh, x, W, b, B)
    for _ in range(3):
        spy.first = True
        assert run_check("08-fa-backward", spy).passed
    assert len(set(firsts)) == 3


# ------------------------------------------------------------------ wrong variants
def _raise(*args, **kwargs):
    raise NotImplementedError("Exercise: write it")


def _fa_variant(kind):
    state = {"rng": np.random.default_rng()}

    def answer(dh, x, W, b, B):
        z = x @ W + b
        h = np.tanh(z)
        dz = dh * (1 - h ** 2)
        if kind == "W transposed after all":
            return dz @ W.T, x.T @ dz, dz.sum(axis=0)
        if kind == "resample B":
            fresh = state["rng"].normal(size=B.shape) / np.sqrt(B.shape[0])
            return dz @ fresh, x.T @ dz, dz.sum(axis=0)
        if kind == "no derivative":
            return dh @ B, x.T @ dh, dh.sum(axis=0)
        if kind == "no derivative in dx":
            return dh @ B, x.T @ dz, dz.sum(axis=0)
        if kind == "no derivative in dW":
            return dz @ B, x.T @ dh, dz.sum(axis=0)
        if kind == "derivative at z":
            dz2 = dh * (1 - z ** 2)
            return dz2 @ B, x.T @ dz2, dz2.sum(axis=0)
        if kind == "sigmoid derivative":
            dz2 = dh * h * (1 - h)
            return dz2 @ B, x.T @ dz2, dz2.sum(axis=0)
        if kind == "B transposed":
            return dz @ B.T, x.T @ dz, dz.sum(axis=0)
        if kind == "B transposed where it fits":
            return dz @ (B.T if B.shape[0] == B.shape[1] else B), x.T @ dz, dz.sum(axis=0)
        if kind == "db not summed":
            return dz @ B, x.T @ dz, dz
        if kind == "dW = dzᵀ x":
            return dz @ B, dz.T @ x, dz.sum(axis=0)
        if kind == "autograd":
            xt, Wt, bt = (Tensor(a, requires_grad=True) for a in (x, W, b))
            (xt @ Wt + bt).tanh().backward(dh)
            return dz @ B, Wt.grad, bt.grad
        if kind == "in place":
            dh *= 1 - h ** 2
            return dh @ B, x.T @ dh, dh.sum(axis=0)
        raise AssertionError(kind)
    return answer


def _angle_variant(kind):
    def answer(a, b):
        if kind == "per part mean":
            if isinstance(a, list):
                return float(np.mean([update_angle(p, q) for p, q in zip(a, b)]))
            return update_angle(a, b)
        if kind == "first row":
            if isinstance(a, np.ndarray) and a.ndim == 2:
                return update_angle(a[0], b[0])
            return update_angle(a, b)
        u = np.concatenate([np.ravel(p) for p in a]) if isinstance(a, list) else np.ravel(a)
        v = np.concatenate([np.ravel(p) for p in b]) if isinstance(b, list) else np.ravel(b)
        c = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
        if kind == "radians":
            return float(np.arccos(np.clip(c, -1, 1)))
        if kind == "no clip":
            with np.errstate(invalid="ignore"):
                return float(np.degrees(np.arccos(c)))
        if kind == "abs":
            return float(np.degrees(np.arccos(np.clip(abs(c), -1, 1))))
        if kind == "arcsin":
            return float(np.degrees(np.arcsin(np.clip(c, -1, 1))))
        if kind == "not normalised":
            return float(np.degrees(np.arccos(np.clip(u @ v, -1, 1))))
        if kind == "array":
            return np.array([np.degrees(np.arccos(np.clip(c, -1, 1)))])
        raise AssertionError(kind)
    return answer


WRONG = [
    # (exercise, label, answer, text the failure must contain)
    ("08-fa-backward", "uses Wᵀ after all", _fa_variant("W transposed after all"),
     "backprop's dx = dz Wᵀ"),
    ("08-fa-backward", "resamples B every call", _fa_variant("resample B"),
     "drawn once"),
    ("08-fa-backward", "forgets the tanh's derivative", _fa_variant("no derivative"),
     "derivative is left out"),
    ("08-fa-backward", "derivative missing in dx only",
     _fa_variant("no derivative in dx"), "derivative is left out"),
    ("08-fa-backward", "derivative missing in dW only",
     _fa_variant("no derivative in dW"), "derivative is left out"),
    ("08-fa-backward", "derivative 1 − z²", _fa_variant("derivative at z"), "not 1 − z²"),
    ("08-fa-backward", "sigmoid's derivative", _fa_variant("sigmoid derivative"),
     "sigmoid's derivative"),
    ("08-fa-backward", "B transposed", _fa_variant("B transposed"), "transpose"),
    ("08-fa-backward", "B transposed on the square layer",
     _fa_variant("B transposed where it fits"), "B is transposed"),
    ("08-fa-backward", "db not summed", _fa_variant("db not summed"), "sum dz over"),
    ("08-fa-backward", "dW = dzᵀ x", _fa_variant("dW = dzᵀ x"), "wrong factor"),
    ("08-fa-backward", "uses autograd", _fa_variant("autograd"), "by hand"),
    ("08-fa-backward", "changes dh in place", _fa_variant("in place"), "in place"),
    ("08-fa-backward", "returns two values",
     lambda dh, x, W, b, B: fa_backward(dh, x, W, b, B)[:2], "3 values"),
    ("08-fa-backward", "returns None", lambda dh, x, W, b, B: None, "return"),
    ("08-fa-backward", "not attempted", _raise, "not attempted"),

    ("08-update-angle", "radians", _angle_variant("radians"), "radians"),
    ("08-update-angle", "no clip", _angle_variant("no clip"), "clip"),
    ("08-update-angle", "abs of the cosine", _angle_variant("abs"), "180°"),
    ("08-update-angle", "mean of per-array angles", _angle_variant("per part mean"),
     "average of the per-array angles"),
    ("08-update-angle", "angle of one row", _angle_variant("first row"), "one row"),
    ("08-update-angle", "arcsin", _angle_variant("arcsin"), "arcsin"),
    ("08-update-angle", "not normalised", _angle_variant("not normalised"), "wrong"),
    ("08-update-angle", "returns an array", _angle_variant("array"), "number"),
    ("08-update-angle", "returns None", lambda a, b: None, "return"),
    ("08-update-angle", "not attempted", _raise, "not attempted"),
]


@pytest.mark.parametrize("exercise_id, label, answer, needle", WRONG,
                         ids=[f"{w[0]}:{w[1]}" for w in WRONG])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_variant_fails_with_hint(exercise_id, label, answer, needle, seed):
    assert_caught(run_check(exercise_id, answer, seed=seed), label, needle)


def test_every_exercise_has_wrong_variants():
    assert {w[0] for w in WRONG} == set(REFERENCE)


def test_resampling_with_a_fixed_seed_is_still_caught():
    """A 'fresh' B drawn from a fixed seed is the same every call, so the
    two-call test cannot see it; the comparison with dz @ B does."""
    def answer(dh, x, W, b, B):
        h = np.tanh(x @ W + b)
        dz = dh * (1 - h ** 2)
        own = np.random.default_rng(0).normal(size=B.shape)
        return dz @ own, x.T @ dz, dz.sum(axis=0)
    for seed in range(5):
        verdict = run_check("08-fa-backward", answer, seed=seed)
        assert not verdict.passed and verdict.kind == "wrong", verdict.render()
        assert "dx" in verdict.render()

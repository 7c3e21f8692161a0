"""Lesson 03 checks: the reference answers pass, the usual wrong answers fail
with the hint that names the mistake."""
from __future__ import annotations

import numpy as np
import pytest

from backprop_course import Tensor, losses
from backprop_course.exercises import run_check
from verdicts import assert_caught


# ------------------------------------------------------------------ reference answers
def affine_forward(x, W, b):
    return x @ W + b, (x, W, b)


def affine_backward(dout, cache):
    x, W, b = cache
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


def relu_backward(dout, cache):
    return dout * (cache > 0)


def softmax_cross_entropy(logits, y):
    n = len(y)
    s = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(n), y]).mean()
    d = p.copy()
    d[np.arange(n), y] -= 1
    return loss, d / n


def train_step(model, X, y, lr):
    model.zero_grad()
    loss = losses.cross_entropy(model(Tensor(X)), y)
    loss.backward()
    for p in model.parameters():
        p.data -= lr * p.grad
    return loss.item()


REFERENCE = {
    "03-linear-forward": affine_forward,
    "03-linear-backward": affine_backward,
    "03-relu-backward": relu_backward,
    "03-softmax-ce-backward": softmax_cross_entropy,
    "03-training-step": train_step,
}


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_reference_passes(exercise_id, seed):
    verdict = run_check(exercise_id, REFERENCE[exercise_id], seed=seed)
    assert verdict.passed, verdict.render()


def _train_step_with_optim(model, X, y, lr):
    from backprop_course import optim
    opt = optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    loss = losses.cross_entropy(model(X), y)
    loss.backward()
    opt.step()
    return float(loss.data)


def _softmax_ce_logsumexp(logits, y):
    n = len(y)
    m = logits.max(axis=1, keepdims=True)
    log_p = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    d = np.exp(log_p)
    d[np.arange(n), y] -= 1
    return float(-log_p[np.arange(n), y].mean()), d / n


ALTERNATIVES = [   # other correct ways to write the answers: the checks must accept them
    ("03-linear-forward", lambda x, W, b: (np.einsum("nd,dm->nm", x, W) + b, (x, W, b))),
    ("03-linear-backward", lambda dout, c: (np.einsum("nm,dm->nd", dout, c[1]),
                                            np.einsum("nd,nm->dm", c[0], dout),
                                            np.ones(len(dout)) @ dout)),
    ("03-relu-backward", lambda dout, x: dout * (np.maximum(x, 0) > 0)),
    ("03-relu-backward", lambda dout, x: np.where(x > 0, dout, 0.0)),
    ("03-softmax-ce-backward", _softmax_ce_logsumexp),
    ("03-training-step", _train_step_with_optim),
]


@pytest.mark.parametrize("exercise_id, answer", ALTERNATIVES,
                         ids=[f"{a[0]}-{i}" for i, a in enumerate(ALTERNATIVES)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alternative_correct_answers_pass(exercise_id, answer, seed):
    verdict = run_check(exercise_id, answer, seed=seed)
    assert verdict.passed, verdict.render()


def test_fresh_inputs_every_call():
    seen = []
    for _ in range(3):
        run_check("03-linear-forward", lambda x, W, b: seen.append(x.shape) or
                  affine_forward(x, W, b))
    assert len(set(map(str, seen))) > 1


# ------------------------------------------------------------------ wrong variants
def _softmax(logits):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _ce_loss(logits, y):
    return -np.log(_softmax(logits)[np.arange(len(y)), y]).mean()


def _onehot(y, c):
    return np.eye(c)[y]


def _unstable_softmax_ce(logits, y):
    """Right formula, but exp of raw scores: overflows for scores near 1000."""
    n = len(y)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), y]).mean()
    d = p.copy()
    d[np.arange(n), y] -= 1
    return loss, d / n


def _raise(*args):
    raise NotImplementedError("Exercise: write it")


def _step_variant(zero=True, sign=-1.0, use_lr=True, rebind=False, after_loss=False,
                  factor=1.0):
    def step(model, X, y, lr):
        if zero:
            model.zero_grad()
        loss = losses.cross_entropy(model(Tensor(X)), y)
        loss.backward()
        for p in model.parameters():
            if rebind:
                p = p - lr * p.grad           # noqa: F841 -- the classic slip
            else:
                p.data = p.data + sign * factor * (lr if use_lr else 1.0) * p.grad
        if after_loss:
            return losses.cross_entropy(model(Tensor(X)), y).item()
        return loss.item()
    return step


WRONG = [
    # (exercise, label, answer, text the failure must contain)
    ("03-linear-forward", "no bias", lambda x, W, b: (x @ W, (x, W, b)), "bias is missing"),
    ("03-linear-forward", "W @ x", lambda x, W, b: (W @ x + b, (x, W, b)), "shapes"),
    ("03-linear-forward", "no cache", lambda x, W, b: x @ W + b, "2 values"),
    ("03-linear-forward", "cache order", lambda x, W, b: (x @ W + b, (W, x, b)),
     "cache = (x, W, b)"),
    ("03-linear-forward", "returns None", lambda x, W, b: None, "return"),
    ("03-linear-forward", "not attempted", _raise, "not attempted"),
    ("03-linear-forward", "hard-coded", lambda x, W, b: (np.ones((3, 2)), (x, W, b)),
     "wrong shape"),

    ("03-linear-backward", "missing transpose in dx",
     lambda dout, c: (dout @ c[1], c[0].T @ dout, dout.sum(0)), "transpose"),
    ("03-linear-backward", "dW transposed",
     lambda dout, c: (dout @ c[1].T, dout.T @ c[0], dout.sum(0)), "transpose"),
    ("03-linear-backward", "db not summed",
     lambda dout, c: (dout @ c[1].T, c[0].T @ dout, dout), "summed over the batch"),
    ("03-linear-backward", "db mean",
     lambda dout, c: (dout @ c[1].T, c[0].T @ dout, dout.mean(0)), "sum"),
    ("03-linear-backward", "db keepdims",
     lambda dout, c: (dout @ c[1].T, c[0].T @ dout, dout.sum(0, keepdims=True)),
     "extra axis"),
    ("03-linear-backward", "db wrong axis",
     lambda dout, c: (dout @ c[1].T, c[0].T @ dout, dout.sum(1)), "axis"),
    ("03-linear-backward", "sign flipped dx",
     lambda dout, c: (-dout @ c[1].T, c[0].T @ dout, dout.sum(0)), "sign"),
    ("03-linear-backward", "dW averaged",
     lambda dout, c: (dout @ c[1].T, c[0].T @ dout / len(dout), dout.sum(0)),
     "not averaged"),
    ("03-linear-backward", "zeros",
     lambda dout, c: (np.zeros((len(dout), c[1].shape[0])), c[0].T @ dout, dout.sum(0)),
     "all zeros"),
    ("03-linear-backward", "None", lambda dout, c: None, "return"),
    ("03-linear-backward", "two values", lambda dout, c: (dout @ c[1].T, c[0].T @ dout),
     "3 values"),

    ("03-relu-backward", ">= at zero", lambda dout, x: dout * (x >= 0), "x == 0"),
    ("03-relu-backward", "inverted mask", lambda dout, x: dout * (x <= 0), "inverted"),
    ("03-relu-backward", "mask only", lambda dout, x: (x > 0).astype(float), "mask only"),
    ("03-relu-backward", "identity", lambda dout, x: dout, "block it"),
    ("03-relu-backward", "times relu(x)", lambda dout, x: dout * np.maximum(x, 0),
     "relu(x)"),
    ("03-relu-backward", "in place",
     lambda dout, x: (dout.__setitem__(x <= 0, 0.0), dout)[1], "in place"),
    ("03-relu-backward", "sign", lambda dout, x: -dout * (x > 0), "sign"),
    ("03-relu-backward", "not attempted", _raise, "not attempted"),

    ("03-softmax-ce-backward", "no /N",
     lambda z, y: (_ce_loss(z, y), _softmax(z) - _onehot(y, z.shape[1])),
     "forgot to divide by N"),
    ("03-softmax-ce-backward", "sign",
     lambda z, y: (_ce_loss(z, y), (_onehot(y, z.shape[1]) - _softmax(z)) / len(y)),
     "sign"),
    ("03-softmax-ce-backward", "no one-hot",
     lambda z, y: (_ce_loss(z, y), _softmax(z) / len(y)), "one-hot"),
    ("03-softmax-ce-backward", "summed loss",
     lambda z, y: (_ce_loss(z, y) * len(y), softmax_cross_entropy(z, y)[1]), "mean"),
    ("03-softmax-ce-backward", "no max subtracted", _unstable_softmax_ce, "max"),
    ("03-softmax-ce-backward", "hard-coded", lambda z, y: (1.0, np.zeros((2, 3))),
     "wrong"),
    ("03-softmax-ce-backward", "not attempted", _raise, "not attempted"),

    ("03-training-step", "no zero_grad", _step_variant(zero=False),
     "gradients accumulate — zero them each step"),
    ("03-training-step", "uphill", _step_variant(sign=+1.0), "uphill"),
    ("03-training-step", "ignores lr", _step_variant(use_lr=False), "learning rate"),
    ("03-training-step", "lr twice", _step_variant(factor=2.0), "lr"),
    ("03-training-step", "rebinds p", _step_variant(rebind=True), "no parameter moved"),
    ("03-training-step", "returns new loss", _step_variant(after_loss=True),
     "loss after the step"),
    ("03-training-step", "returns None", lambda m, X, y, lr: None, "return"),
    ("03-training-step", "not attempted", _raise, "not attempted"),
]


@pytest.mark.parametrize("exercise_id, label, answer, needle", WRONG,
                         ids=[f"{w[0]}:{w[1]}" for w in WRONG])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_variant_fails_with_hint(exercise_id, label, answer, needle, seed):
    assert_caught(run_check(exercise_id, answer, seed=seed), label, needle)


def test_every_exercise_has_wrong_variants():
    assert {w[0] for w in WRONG} == set(REFERENCE)

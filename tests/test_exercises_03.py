"""Lesson 03 checks: the reference answers pass, the usual wrong answers fail
with the hint that names the mistake."""
from __future__ import annotations

import numpy as np
import pytest

from backprop_course import Tensor, losses
from backprop_course.exercises import run_check
from verdicts import assert_caught


# ------------------------------------------------------------------ reference answers
def linear_backward(dout, cache):            # out = x W.T + b, W of shape (M, D)
    x, W, b = cache
    return dout @ W, dout.T @ x, dout.sum(axis=0)


def _softmax(logits):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, q):        # soft targets: rows of q sum to 1
    p = _softmax(logits)
    return -(q * np.log(p)).sum(axis=1).mean(), (p - q) / len(q)


def mse(pred, target):
    diff = pred - target
    return (diff ** 2).mean(), 2 * diff / diff.size


def add_weight_decay(loss, grads, params, lam):
    penalty = sum(lam / 2 * np.sum(p ** 2) for p in params if p.ndim == 2)
    return loss + penalty, [g + lam * p if p.ndim == 2 else g
                            for g, p in zip(grads, params)]


ZERO_INIT = {"moved_zero": {"b2"}, "moved_last_zero": {"W1", "b1", "W2", "b2"},
             "distinct_units": 1}


def train_step(model, X, y, lr):
    model.zero_grad()
    loss = losses.cross_entropy(model(Tensor(X)), y)
    loss.backward()
    for p in model.parameters():
        p.data -= lr * p.grad
    return loss.item()


REFERENCE = {
    "03-linear-backward": linear_backward,
    "03-softmax-ce-backward": softmax_cross_entropy,
    "03-mse-backward": mse,
    "03-zero-init": ZERO_INIT,
    "03-l2-gradient": add_weight_decay,
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


def _softmax_ce_logsumexp(logits, q):
    m = logits.max(axis=1, keepdims=True)
    log_p = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return float(-(q * log_p).sum(axis=1).mean()), (np.exp(log_p) - q) / len(q)


ALTERNATIVES = [   # other correct ways to write the answers: the checks must accept them
    ("03-linear-backward", lambda dout, c: (np.einsum("nm,md->nd", dout, c[1]),
                                            np.einsum("nm,nd->md", dout, c[0]),
                                            np.ones(len(dout)) @ dout)),
    ("03-linear-backward", lambda dout, c: ((c[1].T @ dout.T).T, (c[0].T @ dout).T,
                                            dout.sum(axis=0))),
    ("03-softmax-ce-backward", _softmax_ce_logsumexp),
    ("03-softmax-ce-backward",      # Σ q = 1 kept explicit: p·Σq - q
     lambda z, q: (softmax_cross_entropy(z, q)[0],
                   (_softmax(z) * q.sum(axis=1, keepdims=True) - q) / len(q))),
    ("03-mse-backward", lambda p, t: (float(np.mean(np.square(p - t))),
                                      (p - t) * (2.0 / p.size))),
    ("03-zero-init", {"moved_zero": ["b2"], "moved_last_zero": ("W1", "W2", "b1", "b2"),
                      "distinct_units": np.int64(1)}),
    ("03-l2-gradient", lambda loss, grads, params, lam: (
        loss + 0.5 * lam * sum(float(p.ravel() @ p.ravel())
                               for p in params if p.ndim > 1),
        tuple(np.add(g, lam * p) if p.ndim > 1 else np.array(g)
              for g, p in zip(grads, params)))),
    ("03-training-step", _train_step_with_optim),
]


@pytest.mark.parametrize("exercise_id, answer", ALTERNATIVES,
                         ids=[f"{a[0]}-{i}" for i, a in enumerate(ALTERNATIVES)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alternative_correct_answers_pass(exercise_id, answer, seed):
    verdict = run_check(exercise_id, answer, seed=seed)
    assert verdict.passed, verdict.render()


def _first_inputs(exercise_id, seed):
    """The bytes of the first input the check hands to the answer."""
    seen = []

    def spy(*args):
        seen.append(np.asarray(args[0]).tobytes())
        return REFERENCE[exercise_id](*args)
    run_check(exercise_id, spy, seed=seed)
    return seen[0]


@pytest.mark.parametrize("exercise_id", ["03-linear-backward", "03-softmax-ce-backward",
                                         "03-mse-backward"])
def test_fresh_inputs_every_call(exercise_id):
    # without a seed, three calls see three different first inputs ...
    fresh = {_first_inputs(exercise_id, None) for _ in range(3)}
    assert len(fresh) == 3
    # ... and the comparison can fail: with a fixed seed they are the same
    assert len({_first_inputs(exercise_id, 7) for _ in range(3)}) == 1


# ------------------------------------------------------------------ wrong variants
def _onehot_of_argmax(q):
    return np.eye(q.shape[1])[q.argmax(axis=1)]


def _unstable_softmax_ce(logits, q):
    """Right formula, but exp of raw scores: overflows for scores near 1000."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        loss = -(q * np.log(p)).sum(axis=1).mean()
    return loss, (p - q) / len(q)


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


def _step_decaying_after(calls: int):
    """Right for the first ``calls`` calls, then halves lr on every call: only the
    check's 20-step comparison with gradient descent can see it."""
    seen = {"model": None, "calls": 0}   # each check makes its own model: count anew

    def step(model, X, y, lr):
        if model is not seen["model"]:   # (held, so its id cannot be reused)
            seen.update(model=model, calls=0)
        seen["calls"] += 1
        return _step_variant()(model, X, y, lr * 0.5 ** max(0, seen["calls"] - calls))
    return step


WRONG = [
    # (exercise, label, answer, text the failure must contain)
    ("03-linear-backward", "the lesson's dx (xW layout), square W only",
     lambda dout, c: (dout @ c[1].T if c[1].shape[0] == c[1].shape[1] else dout @ c[1],
                      dout.T @ c[0], dout.sum(0)), "no transpose"),
    ("03-linear-backward", "the lesson's dx (xW layout) everywhere",
     lambda dout, c: (dout @ c[1].T, dout.T @ c[0], dout.sum(0)), "shapes"),
    ("03-linear-backward", "the lesson's dW (xW layout)",
     lambda dout, c: (dout @ c[1], c[0].T @ dout, dout.sum(0)), "dout.T @ x"),
    ("03-linear-backward", "db not summed",
     lambda dout, c: (dout @ c[1], dout.T @ c[0], dout), "summed over the batch"),
    ("03-linear-backward", "db mean",
     lambda dout, c: (dout @ c[1], dout.T @ c[0], dout.mean(0)), "sum"),
    ("03-linear-backward", "db keepdims",
     lambda dout, c: (dout @ c[1], dout.T @ c[0], dout.sum(0, keepdims=True)),
     "extra axis"),
    ("03-linear-backward", "db wrong axis",
     lambda dout, c: (dout @ c[1], dout.T @ c[0], dout.sum(1)), "axis"),
    ("03-linear-backward", "sign flipped dx",
     lambda dout, c: (-dout @ c[1], dout.T @ c[0], dout.sum(0)), "sign"),
    ("03-linear-backward", "dW averaged",
     lambda dout, c: (dout @ c[1], dout.T @ c[0] / len(dout), dout.sum(0)),
     "do not average"),
    ("03-linear-backward", "zeros",
     lambda dout, c: (np.zeros((len(dout), c[1].shape[1])), dout.T @ c[0], dout.sum(0)),
     "all zeros"),
    ("03-linear-backward", "None", lambda dout, c: None, "return"),
    ("03-linear-backward", "two values", lambda dout, c: (dout @ c[1], dout.T @ c[0]),
     "3 values"),
    ("03-linear-backward", "not attempted", _raise, "not attempted"),

    ("03-softmax-ce-backward", "no /N",
     lambda z, q: (softmax_cross_entropy(z, q)[0], _softmax(z) - q),
     "forgot to divide by N"),
    ("03-softmax-ce-backward", "sign",
     lambda z, q: (softmax_cross_entropy(z, q)[0], (q - _softmax(z)) / len(q)), "sign"),
    ("03-softmax-ce-backward", "one-hot of the top class (the lesson's formula)",
     lambda z, q: (softmax_cross_entropy(z, q)[0],
                   (_softmax(z) - _onehot_of_argmax(q)) / len(q)), "p - q"),
    ("03-softmax-ce-backward", "dL/dp instead of dL/dz",
     lambda z, q: (softmax_cross_entropy(z, q)[0], -q / _softmax(z) / len(q)),
     "chain it through the softmax"),
    ("03-softmax-ce-backward", "q not subtracted",
     lambda z, q: (softmax_cross_entropy(z, q)[0], _softmax(z) / len(q)), "q is not"),
    ("03-softmax-ce-backward", "loss of the top class only",
     lambda z, q: (-np.log(_softmax(z)[np.arange(len(q)), q.argmax(1)]).mean(),
                   softmax_cross_entropy(z, q)[1]), "every class k counts"),
    ("03-softmax-ce-backward", "summed loss",
     lambda z, q: (softmax_cross_entropy(z, q)[0] * len(q),
                   softmax_cross_entropy(z, q)[1]), "mean"),
    ("03-softmax-ce-backward", "no max subtracted", _unstable_softmax_ce, "max"),
    ("03-softmax-ce-backward", "hard-coded", lambda z, q: (1.0, np.zeros((2, 3))),
     "wrong"),
    ("03-softmax-ce-backward", "not attempted", _raise, "not attempted"),

    ("03-mse-backward", "no factor 2",
     lambda p, t: (mse(p, t)[0], (p - t) / p.size), "factor 2"),
    ("03-mse-backward", "divided by N only",
     lambda p, t: (mse(p, t)[0], 2 * (p - t) / len(p)), "N·K"),
    ("03-mse-backward", "no mean in the gradient",
     lambda p, t: (mse(p, t)[0], 2 * (p - t)), "1/(N·K)"),
    ("03-mse-backward", "sign", lambda p, t: (mse(p, t)[0], 2 * (t - p) / p.size),
     "sign"),
    ("03-mse-backward", "summed loss",
     lambda p, t: (float(((p - t) ** 2).sum()), mse(p, t)[1]), "mean"),
    ("03-mse-backward", "half in the loss",
     lambda p, t: (0.5 * mse(p, t)[0], mse(p, t)[1]), "½"),
    ("03-mse-backward", "returns the loss only", lambda p, t: mse(p, t)[0],
     "should return a tuple"),
    ("03-mse-backward", "not attempted", _raise, "not attempted"),

    ("03-zero-init", "everything moves",
     {**ZERO_INIT, "moved_zero": {"W1", "b1", "W2", "b2"}}, "does not move"),
    ("03-zero-init", "output layer moves",
     {**ZERO_INIT, "moved_zero": {"W2", "b2"}}, "h = relu(0) = 0"),
    ("03-zero-init", "nothing moves", {**ZERO_INIT, "moved_zero": set()}, "class "
     "frequencies"),
    ("03-zero-init", "zero output layer stalls the first",
     {**ZERO_INIT, "moved_last_zero": {"W2", "b2"}}, "second step"),
    ("03-zero-init", "units stay different", {**ZERO_INIT, "distinct_units": 5},
     "lockstep"),
    ("03-zero-init", "unknown name", {**ZERO_INIT, "moved_zero": {"bias"}},
     "not parameters"),
    ("03-zero-init", "a string", {**ZERO_INIT, "moved_zero": "b2"}, "set of parameter"),
    ("03-zero-init", "missing key", {"moved_zero": {"b2"}}, "no key"),
    ("03-zero-init", "not attempted", None, "not attempted"),

    ("03-l2-gradient", "2 lam W (the half forgotten)",
     lambda loss, g, p, lam: (add_weight_decay(loss, g, p, lam)[0],
                           [gg + 2 * lam * q if q.ndim == 2 else gg
                            for gg, q in zip(g, p)]),
     "the ½ in"),
    ("03-l2-gradient", "biases decayed too",
     lambda loss, g, p, lam: (add_weight_decay(loss, g, p, lam)[0],
                           [gg + lam * q for gg, q in zip(g, p)]),
     "biases are not decayed"),
    ("03-l2-gradient", "gradient replaced",
     lambda loss, g, p, lam: (add_weight_decay(loss, g, p, lam)[0],
                           [lam * q if q.ndim == 2 else gg for gg, q in zip(g, p)]),
     "ADDED to grad"),
    ("03-l2-gradient", "L1 gradient",
     lambda loss, g, p, lam: (add_weight_decay(loss, g, p, lam)[0],
                           [gg + lam * np.sign(q) if q.ndim == 2 else gg
                            for gg, q in zip(g, p)]), "L1 term"),
    ("03-l2-gradient", "no penalty in the loss",
     lambda loss, g, p, lam: (loss, add_weight_decay(loss, g, p, lam)[1]),
     "missing from the loss"),
    ("03-l2-gradient", "penalty without the half",
     lambda loss, g, p, lam: (loss + sum(lam * np.sum(q ** 2) for q in p if q.ndim == 2),
                           add_weight_decay(loss, g, p, lam)[1]), "with the ½"),
    ("03-l2-gradient", "grads changed in place",
     lambda loss, g, p, lam: (add_weight_decay(loss, g, p, lam)[0],
                           [gg.__iadd__(lam * q) if q.ndim == 2 else gg
                            for gg, q in zip(g, p)]), "in place"),
    ("03-l2-gradient", "not attempted", _raise, "not attempted"),

    ("03-training-step", "no zero_grad", _step_variant(zero=False),
     "gradients accumulate — zero them each step"),
    ("03-training-step", "uphill", _step_variant(sign=+1.0), "uphill"),
    ("03-training-step", "ignores lr", _step_variant(use_lr=False), "learning rate"),
    ("03-training-step", "lr twice", _step_variant(factor=2.0), "lr"),
    ("03-training-step", "rebinds p", _step_variant(rebind=True), "no parameter moved"),
    ("03-training-step", "returns new loss", _step_variant(after_loss=True),
     "loss after the step"),
    ("03-training-step", "returns None", lambda m, X, y, lr: None, "return"),
    ("03-training-step", "lr decays after three calls", _step_decaying_after(3),
     "from gradients of this step alone"),
    ("03-training-step", "not attempted", _raise, "not attempted"),
]


@pytest.mark.parametrize("exercise_id, label, answer, needle", WRONG,
                         ids=[f"{w[0]}:{w[1]}" for w in WRONG])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_variant_fails_with_hint(exercise_id, label, answer, needle, seed):
    assert_caught(run_check(exercise_id, answer, seed=seed), label, needle)


def test_every_exercise_has_wrong_variants():
    assert {w[0] for w in WRONG} == set(REFERENCE)

"""Lesson 07 checks: the reference answers pass, the usual wrong answers fail
with the hint that names the mistake."""
from __future__ import annotations

import numpy as np
import pytest

from backprop_course.exercises import run_check
from verdicts import assert_caught


# ------------------------------------------------------------------ reference answers
def checkpointed_backward(forward, backward, params, x, dout, k):
    n = len(params)
    checkpoints, h = [], x
    for i in range(n):
        if i % k == 0:
            checkpoints.append(h)
        h = forward(h, params[i])
    g, dparams = dout, [None] * n
    for s in reversed(range(0, n, k)):
        stop = min(s + k, n)
        inputs = [checkpoints[s // k]]
        for i in range(s, stop - 1):
            inputs.append(forward(inputs[-1], params[i]))
        for i in reversed(range(s, stop)):
            g, dparams[i] = backward(g, inputs[i - s], params[i])
    return g, dparams


def activation_bytes(sizes, batch, activation):
    # per hidden unit: x @ W, x @ W + b, the activation's output (8 bytes each) and,
    # for relu, its bool mask; per output unit: x @ W and the logits
    per_unit = {"relu": 25, "tanh": 24, "sigmoid": 24}[activation]
    return per_unit * batch * sum(sizes[1:-1]) + 16 * batch * sizes[-1]


REFERENCE = {
    "07-checkpointed-backward": checkpointed_backward,
    "07-activation-bytes": activation_bytes,
}


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
@pytest.mark.parametrize("seed", range(8))
def test_reference_passes(exercise_id, seed):
    verdict = run_check(exercise_id, REFERENCE[exercise_id], seed=seed)
    assert verdict.passed, verdict.render()


# ------------------------------------------------------------ other correct answers
def _ckpt_recursive_segments(forward, backward, params, x, dout, k):
    """Segments as (start, stop) pairs, inputs recomputed into a dict, grads as tuples."""
    n = len(params)
    bounds = [(s, min(s + k, n)) for s in range(0, n, k)]
    saved, h = {}, x
    for i, p in enumerate(params):
        if i in dict(bounds):
            saved[i] = h
        h = forward(h, p)
    grads = {}
    g = dout
    for start, stop in bounds[::-1]:
        acts = {start: saved.pop(start)}
        for i in range(start + 1, stop):
            acts[i] = forward(acts[i - 1], params[i - 1])
        for i in range(stop - 1, start - 1, -1):
            g, (dW, db) = backward(g, acts.pop(i), params[i])
            grads[i] = (dW, db)
    return g, [grads[i] for i in range(n)]


def _activation_bytes_loop(sizes, batch, activation):
    total = 0
    for i, width in enumerate(sizes[1:], start=1):
        total += 2 * 8 * batch * width                   # x @ W and x @ W + b
        if i < len(sizes) - 1:
            total += 8 * batch * width                   # the activation's output
            if activation == "relu":
                total += batch * width                   # its bool mask
    return float(total)


ALTERNATIVES = [
    ("07-checkpointed-backward", _ckpt_recursive_segments),
    ("07-activation-bytes", _activation_bytes_loop),
    ("07-activation-bytes",
     lambda sizes, batch, act: np.int64(activation_bytes(sizes, batch, act))),
]


@pytest.mark.parametrize("exercise_id, answer", ALTERNATIVES,
                         ids=[f"{a[0]}-{i}" for i, a in enumerate(ALTERNATIVES)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alternative_correct_answers_pass(exercise_id, answer, seed):
    verdict = run_check(exercise_id, answer, seed=seed)
    assert verdict.passed, verdict.render()


# ------------------------------------------------------------------ wrong variants
def _raise(*args, **kwargs):
    raise NotImplementedError("Exercise: write it")


def _ckpt_variant(kind):
    def checkpointed_backward(forward, backward, params, x, dout, k):
        n = len(params)
        if kind == "store everything":
            inputs, h = [], x
            for p in params:
                inputs.append(h)
                h = forward(h, p)
            g, dparams = dout, [None] * n
            for i in reversed(range(n)):
                g, dparams[i] = backward(g, inputs[i], params[i])
            return g, dparams
        checkpoints, h = [], x
        for i in range(n):
            if i % k == 0:
                checkpoints.append(h)
            h = forward(h, params[i])
        g, dparams = dout, [None] * n
        order = range(0, n, k) if kind == "forward order" else reversed(range(0, n, k))
        for s in order:
            stop = min(s + k, n)
            if kind == "restart":
                g = dout
            if kind == "from x":
                h = x
                for i in range(s):
                    h = forward(h, params[i])
                inputs = [h]
            else:
                inputs = [checkpoints[s // k]]
            for i in range(s, stop - (0 if kind == "one too many" else 1)):
                inputs.append(forward(inputs[-1], params[i]))
            for i in reversed(range(s, stop)):
                h_in = {"outputs": inputs[i - s + 1] if i - s + 1 < len(inputs)
                        else forward(inputs[-1], params[i]),
                        "checkpoint only": inputs[0]}.get(kind, inputs[i - s])
                g, dp = backward(g, h_in, params[i])
                if kind == "append":
                    dparams[n - 1 - i] = dp
                elif kind == "dW only":
                    dparams[i] = dp[0]
                else:
                    dparams[i] = dp
        if kind == "dparams short":
            dparams = dparams[1:]
        return g, dparams
    return checkpointed_backward


def _bytes_variant(kind):
    def activation_bytes(sizes, batch, activation):
        per = {"relu": 25, "tanh": 24, "sigmoid": 24}[activation]
        hidden, out = sum(sizes[1:-1]), 16 * batch * sizes[-1]
        if kind == "no mask":
            return 24 * batch * hidden + out
        if kind == "mask 8 bytes":
            return 32 * batch * hidden + out
        if kind == "saved twice":
            return (32 if activation != "relu" else 25) * batch * hidden + out
        if kind == "one node per Linear":          # the counting of a fused x W + b
            return (per - 8) * batch * hidden + 8 * batch * sizes[-1]
        if kind == "logits one array":
            return per * batch * hidden + 8 * batch * sizes[-1]
        if kind == "relu output missing":
            return 17 * batch * hidden + out
        if kind == "linear only":
            return 16 * batch * hidden + out
        if kind == "no logits":
            return per * batch * hidden
        if kind == "activation on logits":
            return per * batch * sum(sizes[1:])
        if kind == "input counted":
            return per * batch * hidden + out + 8 * batch * sizes[0]
        if kind == "weights counted":
            return per * batch * hidden + out + 8 * sum(
                a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        if kind == "float32":
            return {"relu": 13, "tanh": 12, "sigmoid": 12}[activation] * batch * hidden \
                + 8 * batch * sizes[-1]
        if kind == "first hidden skipped":
            return per * batch * sum(sizes[2:-1]) + out
        if kind == "megabytes":
            return (per * batch * hidden + out) / 1e6
        if kind == "batch forgotten":
            return per * hidden + 16 * sizes[-1]
        if kind == "negative":
            return -(per * batch * hidden + out)
        if kind == "relu for all":
            return 25 * batch * hidden + out
        raise AssertionError(kind)
    return activation_bytes


WRONG = [
    # (exercise, label, answer, text the failure must contain)
    ("07-checkpointed-backward", "stores every output", _ckpt_variant("store everything"),
     "storing every layer's output"),
    ("07-checkpointed-backward", "recomputes from x", _ckpt_variant("from x"),
     "not from x"),
    ("07-checkpointed-backward", "restarts from dout", _ckpt_variant("restart"),
     "starts again from dout"),
    ("07-checkpointed-backward", "segments in forward order",
     _ckpt_variant("forward order"), "first to last"),
    ("07-checkpointed-backward", "feeds outputs to backward", _ckpt_variant("outputs"),
     "needs the layer's input"),
    ("07-checkpointed-backward", "no recompute inside a segment",
     _ckpt_variant("checkpoint only"), "recompute the inputs of the later layers"),
    ("07-checkpointed-backward", "recomputes one layer too many",
     _ckpt_variant("one too many"), "never needed as an input"),
    ("07-checkpointed-backward", "dparams reversed", _ckpt_variant("append"),
     "reverse order"),
    ("07-checkpointed-backward", "dparams holds dW only", _ckpt_variant("dW only"),
     "the pair (dW, db)"),
    ("07-checkpointed-backward", "dparams too short", _ckpt_variant("dparams short"),
     "one per layer"),
    ("07-checkpointed-backward", "returns dx only",
     lambda f, b, p, x, d, k: checkpointed_backward(f, b, p, x, d, k)[0],
     "tuple or a list"),
    ("07-checkpointed-backward", "returns None", lambda f, b, p, x, d, k: None, "return"),
    ("07-checkpointed-backward", "not attempted", _raise, "not attempted"),
    ("07-checkpointed-backward", "changes x in place",
     lambda f, b, p, x, d, k: checkpointed_backward(f, b, p, x.__imul__(2.0), d, k),
     "in place"),

    ("07-activation-bytes", "relu mask missing", _bytes_variant("no mask"),
     "mask is missing"),
    ("07-activation-bytes", "mask as 8 bytes", _bytes_variant("mask 8 bytes"),
     "8 bytes too many"),
    ("07-activation-bytes", "tanh output saved twice", _bytes_variant("saved twice"),
     "already counted"),
    ("07-activation-bytes", "Linear counted as one node",
     _bytes_variant("one node per Linear"), "two nodes: x @ W, then + b"),
    ("07-activation-bytes", "logits as one array", _bytes_variant("logits one array"),
     "last Linear is two nodes too"),
    ("07-activation-bytes", "relu output missing", _bytes_variant("relu output missing"),
     "one float64 array per hidden unit is missing"),
    ("07-activation-bytes", "Linear outputs only", _bytes_variant("linear only"),
     "outputs are missing"),
    ("07-activation-bytes", "logits missing", _bytes_variant("no logits"),
     "logits"),
    ("07-activation-bytes", "activation after the logits",
     _bytes_variant("activation on logits"), "no activation after it"),
    ("07-activation-bytes", "input counted", _bytes_variant("input counted"),
     "input batch is counted"),
    ("07-activation-bytes", "weights counted", _bytes_variant("weights counted"),
     "weights are counted"),
    ("07-activation-bytes", "float32 sizes", _bytes_variant("float32"), "float64"),
    ("07-activation-bytes", "first hidden layer skipped",
     _bytes_variant("first hidden skipped"), "first hidden layer is missing"),
    ("07-activation-bytes", "megabytes", _bytes_variant("megabytes"), "whole number"),
    ("07-activation-bytes", "relu formula for every activation",
     _bytes_variant("relu for all"), "expected"),
    ("07-activation-bytes", "batch forgotten", _bytes_variant("batch forgotten"),
     "or of the batch size"),
    ("07-activation-bytes", "negative", _bytes_variant("negative"), "negative"),
    ("07-activation-bytes", "returns None", lambda s, b, a: None, "return"),
    ("07-activation-bytes", "not attempted", _raise, "not attempted"),
]


@pytest.mark.parametrize("exercise_id, label, answer, needle", WRONG,
                         ids=[f"{w[0]}:{w[1]}" for w in WRONG])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_variant_fails_with_hint(exercise_id, label, answer, needle, seed):
    assert_caught(run_check(exercise_id, answer, seed=seed), label, needle)


def test_every_exercise_has_wrong_variants():
    assert {w[0] for w in WRONG} == set(REFERENCE)


def test_fresh_inputs_every_call():
    seen = []

    def spy(forward, backward, params, x, dout, k):
        seen.append(float(x.flat[0]))
        return checkpointed_backward(forward, backward, params, x, dout, k)
    for _ in range(3):
        assert run_check("07-checkpointed-backward", spy).passed
    assert len(set(seen)) == len(seen)

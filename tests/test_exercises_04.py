"""Lesson 04 checks: the reference answers pass, the usual wrong answers fail
with the hint that names the mistake."""
from __future__ import annotations

import math

import numpy as np
import pytest

from backprop_course import Tensor, losses, nn
from backprop_course.exercises import run_check
from verdicts import assert_caught


# ------------------------------------------------------------------ reference answers
def layer_grad_norms(model, X, y):
    model.zero_grad()
    loss = losses.cross_entropy(model(Tensor(X)), y)
    loss.backward()
    return [float(np.linalg.norm(m.weight.grad)) for m in model.modules()
            if isinstance(m, nn.Linear)]


def init_std(fan_in, fan_out, scheme, negative_slope=0.0):
    if scheme == "xavier":
        return math.sqrt(2 / (fan_in + fan_out))
    if scheme == "he":
        return math.sqrt(2 / ((1 + negative_slope ** 2) * fan_in))
    raise ValueError(f"unknown scheme {scheme!r}")


def clip_grad_norm(grads, max_norm):
    total = np.sqrt(sum(np.sum(g ** 2) for g in grads))
    scale = max_norm / total if total > max_norm else 1.0
    return [g * scale for g in grads], float(total)


def _ln_parts(x, eps):
    mu = x.mean(axis=1, keepdims=True)
    std = np.sqrt(x.var(axis=1, keepdims=True) + eps)
    return mu, std, (x - mu) / std


def layer_norm_backward(dout, x, gamma, eps=1e-5):
    _, std, xhat = _ln_parts(x, eps)
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=1, keepdims=True)
          - xhat * (dxhat * xhat).mean(axis=1, keepdims=True)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


REFERENCE = {
    "04-layer-grad-norms": layer_grad_norms,
    "04-init-std": init_std,
    "04-clip-grad-norm": clip_grad_norm,
    "04-layernorm-backward": layer_norm_backward,
}


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_reference_passes(exercise_id, seed):
    verdict = run_check(exercise_id, REFERENCE[exercise_id], seed=seed)
    assert verdict.passed, verdict.render()


def _norms_via_parameters(model, X, y):
    """Every 2-D parameter is a Linear weight in these models: also right."""
    for p in model.parameters():
        p.grad = None
    losses.cross_entropy(model(X), y).backward()
    return [float(np.sqrt((p.grad ** 2).sum())) for p in model.parameters() if p.ndim == 2]


def _clip_with_if(grads, max_norm):
    total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if total > max_norm:
        return [g / total * max_norm for g in grads], total
    return [g.copy() for g in grads], total


def _ln_backward_steps(dout, x, gamma, eps=1e-5):
    """The long way: back through every step of the forward pass."""
    d = x.shape[1]
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    var = (xc ** 2).mean(axis=1, keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    xhat = xc * inv
    dxhat = dout * gamma
    dinv = (dxhat * xc).sum(axis=1, keepdims=True)
    dvar = dinv * -0.5 * (var + eps) ** -1.5
    dxc = dxhat * inv + dvar * 2 * xc / d
    dx = dxc - dxc.mean(axis=1, keepdims=True)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


ALTERNATIVES = [   # other correct ways to write the answers: the checks must accept them
    ("04-layer-grad-norms", _norms_via_parameters),
    ("04-init-std", lambda fi, fo, s, negative_slope=0: {
        "xavier": (2 / (fi + fo)) ** 0.5,
        "he": (2 / (fi + fi * negative_slope * negative_slope)) ** 0.5}[s]
     if s in ("xavier", "he") else (_ for _ in ()).throw(ValueError(s))),
    ("04-init-std", lambda fi, fo, s, negative_slope=0.0:   # gain √(2/(1+α²)) / √fan_in
     math.sqrt(2 / (1 + negative_slope ** 2)) / math.sqrt(fi) if s == "he"
     else init_std(fi, fo, s)),
    ("04-clip-grad-norm", _clip_with_if),
    ("04-clip-grad-norm", lambda g, m: (lambda t: ([a * min(1.0, m / t) if t else a.copy()
                                                    for a in g], t))(
        float(np.linalg.norm(np.concatenate([a.ravel() for a in g]))))),
    ("04-layernorm-backward", _ln_backward_steps),
]


@pytest.mark.parametrize("exercise_id, answer", ALTERNATIVES,
                         ids=[f"{a[0]}-{i}" for i, a in enumerate(ALTERNATIVES)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alternative_correct_answers_pass(exercise_id, answer, seed):
    verdict = run_check(exercise_id, answer, seed=seed)
    assert verdict.passed, verdict.render()


def _inputs_seen(seed=None):
    """The (fan_in, fan_out, negative_slope) cases one run of the check used."""
    seen = []

    def spy(fi, fo, s, negative_slope=0.0):
        seen.append((fi, fo, s, negative_slope))
        return init_std(fi, fo, s, negative_slope)
    assert run_check("04-init-std", spy, seed=seed).passed
    return tuple(seen)


def test_fresh_inputs_every_call():
    runs = [_inputs_seen() for _ in range(3)]
    assert len(set(runs)) == 3               # each call draws its own cases
    assert _inputs_seen(seed=5) == _inputs_seen(seed=5)   # (a fixed seed repeats them)


# ------------------------------------------------------------------ wrong variants
def _raise(*args, **kwargs):
    raise NotImplementedError("Exercise: write it")


def _norms_variant(zero=True, reduce=np.linalg.norm, bias=None, reverse=False,
                   which="grad"):
    def layer_grad_norms(model, X, y):
        if zero:
            model.zero_grad()
        losses.cross_entropy(model(Tensor(X)), y).backward()
        out = []
        for m in model.modules():
            if isinstance(m, nn.Linear):
                g = getattr(m.weight, which)
                if bias == "joint" and m.bias is not None:
                    out.append(float(np.sqrt(reduce(g) ** 2 + reduce(m.bias.grad) ** 2)))
                    continue
                out.append(float(reduce(g)))
                if bias == "separate" and m.bias is not None:
                    out.append(float(reduce(m.bias.grad)))
        return out[::-1] if reverse else out
    return layer_grad_norms


def _all_parameter_norms(model, X, y):
    model.zero_grad()
    losses.cross_entropy(model(Tensor(X)), y).backward()
    return [float(np.linalg.norm(p.grad)) for p in model.parameters()]


def _norms_with_step(model, X, y):
    out = layer_grad_norms(model, X, y)
    for p in model.parameters():
        p.data -= 0.1 * p.grad
    return out


def _clip_variant(per_array=False, in_place=False, scale_up=False, after=False,
                  no_sqrt=False, same_arrays=False):
    def clip_grad_norm(grads, max_norm):
        sq = sum(float(np.sum(g ** 2)) for g in grads)
        total = sq if no_sqrt else math.sqrt(sq)
        if per_array:
            out = [g * min(1.0, max_norm / np.linalg.norm(g)) if np.linalg.norm(g)
                   else g.copy() for g in grads]
            return out, total
        if total > max_norm or (scale_up and total > 0):
            scale = max_norm / total
        else:
            scale = 1.0
        if in_place:
            for g in grads:
                g *= scale
            return [g.copy() for g in grads], total
        if same_arrays and scale == 1.0:
            return list(grads), total
        clipped = [g * scale for g in grads]
        if after:
            return clipped, math.sqrt(sum(float(np.sum(g ** 2)) for g in clipped))
        return clipped, total
    return clip_grad_norm


def _ln_variant(mu_var_const=False, var_const=False, mu_const=False, dgamma_axis=None,
                ddof=0, no_gamma=False, eps_outside=False, ignore_eps=False,
                dbeta_mean=False, dgamma_no_sum=False):
    def layer_norm_backward(dout, x, gamma, eps=1e-5):
        if ignore_eps:
            eps = 1e-5
        d = x.shape[1]
        mu = x.mean(axis=1, keepdims=True)
        var = ((x - mu) ** 2).sum(axis=1, keepdims=True) / (d - ddof)
        std = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
        xhat = (x - mu) / std
        dxhat = dout if no_gamma else dout * gamma
        m1 = dxhat.mean(axis=1, keepdims=True)
        m2 = (dxhat * xhat).mean(axis=1, keepdims=True)
        if mu_var_const:
            dx = dxhat / std
        elif var_const:
            dx = (dxhat - m1) / std
        elif mu_const:
            dx = (dxhat - xhat * m2) / std
        elif ddof or eps_outside:     # the exact gradient of that (wrong) forward pass
            dx = _ln_backward_general(dout, x, dxhat, d - ddof, eps, eps_outside)
        else:
            dx = (dxhat - m1 - xhat * m2) / std
        dgamma = dout * xhat
        dgamma = dgamma if dgamma_no_sum else dgamma.sum(axis=dgamma_axis or 0)
        dbeta = dout.mean(axis=0) if dbeta_mean else dout.sum(axis=0)
        return dx, dgamma, dbeta
    return layer_norm_backward


def _ln_backward_general(dout, x, dxhat, denom, eps, eps_outside):
    """Backward of (x - μ)/s with s = √(Σ(x-μ)²/denom + eps) or √(Σ(x-μ)²/denom) + eps."""
    xc = x - x.mean(axis=1, keepdims=True)
    var = (xc ** 2).sum(axis=1, keepdims=True) / denom
    root = np.sqrt(var if eps_outside else var + eps)
    s = root + eps if eps_outside else root
    ds = -(dxhat * xc).sum(axis=1, keepdims=True) / s ** 2
    dvar = ds / (2 * root)
    dxc = dxhat / s + dvar * 2 * xc / denom
    return dxc - dxc.mean(axis=1, keepdims=True)


WRONG = [
    # (exercise, label, answer, text the failure must contain)
    ("04-layer-grad-norms", "no zero_grad", _norms_variant(zero=False), "zero_grad"),
    ("04-layer-grad-norms", "bias included", _norms_variant(bias="separate"), "bias"),
    ("04-layer-grad-norms", "bias in the norm", _norms_variant(bias="joint"), "bias"),
    ("04-layer-grad-norms", "squared norms",
     _norms_variant(reduce=lambda g: float((g ** 2).sum())), "squared"),
    ("04-layer-grad-norms", "output first", _norms_variant(reverse=True), "reversed"),
    ("04-layer-grad-norms", "weights not grads", _norms_variant(which="data"),
     "norms of the weights"),
    ("04-layer-grad-norms", "L1", _norms_variant(reduce=lambda g: np.abs(g).sum()),
     "absolute values"),
    ("04-layer-grad-norms", "every parameter", _all_parameter_norms, "bias"),
    ("04-layer-grad-norms", "takes a step", _norms_with_step, "changed the model"),
    ("04-layer-grad-norms", "numpy array",
     lambda m, X, y: np.array(layer_grad_norms(m, X, y)), "list"),
    ("04-layer-grad-norms", "hard-coded", lambda m, X, y: [0.1, 0.01, 0.001],
     "nn.Linear layers"),
    ("04-layer-grad-norms", "returns None", lambda m, X, y: None, "return"),
    ("04-layer-grad-norms", "not attempted", _raise, "not attempted"),
    ("04-layer-grad-norms", "raises", lambda m, X, y: m.weight, "raised AttributeError"),

    ("04-init-std", "variance",
     lambda fi, fo, s, negative_slope=0.0: init_std(fi, fo, s, negative_slope) ** 2,
     "variance"),
    ("04-init-std", "fan_out in He",
     lambda fi, fo, s, negative_slope=0.0: math.sqrt(2 / fo) if s == "he"
     else init_std(fi, fo, s), "fan_out"),
    ("04-init-std", "LeCun for He",
     lambda fi, fo, s, negative_slope=0.0: math.sqrt(1 / fi) if s == "he"
     else init_std(fi, fo, s), "LeCun"),
    ("04-init-std", "1/(fi+fo) for Xavier",
     lambda fi, fo, s, negative_slope=0.0: math.sqrt(1 / (fi + fo)) if s == "xavier"
     else init_std(fi, fo, s, negative_slope), "numerator is 2"),
    ("04-init-std", "rules swapped",
     lambda fi, fo, s, negative_slope=0.0: init_std(
         fi, fo, {"he": "xavier", "xavier": "he"}.get(s, s)), "rule"),
    ("04-init-std", "integer division",
     lambda fi, fo, s, negative_slope=0.0: math.sqrt(2 // fi) if s == "he"
     else init_std(fi, fo, s), "integer division"),
    ("04-init-std", "uniform bound",
     lambda fi, fo, s, negative_slope=0.0: math.sqrt(3) * init_std(fi, fo, s,
                                                                    negative_slope),
     "uniform"),
    ("04-init-std", "slope ignored",
     lambda fi, fo, s, negative_slope=0.0: init_std(fi, fo, s), "plain ReLU"),
    ("04-init-std", "1 + α",
     lambda fi, fo, s, negative_slope=0.0: math.sqrt(2 / ((1 + negative_slope) * fi))
     if s == "he" else init_std(fi, fo, s), "(1 + α)"),
    ("04-init-std", "1 + α² on top",
     lambda fi, fo, s, negative_slope=0.0: math.sqrt(2 * (1 + negative_slope ** 2) / fi)
     if s == "he" else init_std(fi, fo, s), "numerator"),
    ("04-init-std", "1 - α²",
     lambda fi, fo, s, negative_slope=0.0: math.sqrt(2 / ((1 - negative_slope ** 2) * fi))
     if s == "he" else init_std(fi, fo, s), "sign"),
    ("04-init-std", "no negative_slope argument", lambda fi, fo, s: init_std(fi, fo, s),
     "TypeError"),
    ("04-init-std", "no ValueError",
     lambda fi, fo, s, negative_slope=0.0: math.sqrt(2 / (fi + fo)) if s != "he"
     else init_std(fi, fo, s, negative_slope), "ValueError"),
    ("04-init-std", "KeyError",
     lambda fi, fo, s, negative_slope=0.0: {
         "xavier": math.sqrt(2 / (fi + fo)),
         "he": math.sqrt(2 / ((1 + negative_slope ** 2) * fi))}[s], "ValueError"),
    ("04-init-std", "hard-coded", lambda fi, fo, s, negative_slope=0.0: 0.1, "wrong"),
    ("04-init-std", "returns None", lambda fi, fo, s, negative_slope=0.0: None, "return"),
    ("04-init-std", "returns array",
     lambda fi, fo, s, negative_slope=0.0: np.full(1, init_std(fi, fo, s, negative_slope)),
     "single number"),
    ("04-init-std", "not attempted", _raise, "not attempted"),
    ("04-init-std", "raises", lambda fi, fo, s, negative_slope=0.0: math.sqrt(-fi),
     "raised ValueError"),

    ("04-clip-grad-norm", "per-array clipping", _clip_variant(per_array=True), "own norm"),
    ("04-clip-grad-norm", "in place", _clip_variant(in_place=True), "in place"),
    ("04-clip-grad-norm", "scales up", _clip_variant(scale_up=True), "scaled up"),
    ("04-clip-grad-norm", "norm after clipping", _clip_variant(after=True),
     "after clipping"),
    ("04-clip-grad-norm", "no square root", _clip_variant(no_sqrt=True), "square"),
    ("04-clip-grad-norm", "same arrays back", _clip_variant(same_arrays=True), "new"),
    ("04-clip-grad-norm", "hard-coded", lambda g, m: ([np.zeros((2, 3))], 1.0),
     "one per gradient"),
    ("04-clip-grad-norm", "returns None", lambda g, m: None, "return"),
    ("04-clip-grad-norm", "not attempted", _raise, "not attempted"),
    ("04-clip-grad-norm", "divides by zero",
     lambda g, m: (lambda t: ([a * min(1.0, m / t) for a in g], t))(
         math.sqrt(sum(float((a ** 2).sum()) for a in g))), "total is 0"),

    ("04-layernorm-backward", "μ, σ² constant", _ln_variant(mu_var_const=True), "constants"),
    ("04-layernorm-backward", "σ² constant", _ln_variant(var_const=True),
     "σ² is treated as a constant"),
    ("04-layernorm-backward", "μ constant", _ln_variant(mu_const=True),
     "μ is treated as a constant"),
    ("04-layernorm-backward", "dgamma wrong axis", _ln_variant(dgamma_axis=1),
     "wrong axis"),
    ("04-layernorm-backward", "dgamma not summed", _ln_variant(dgamma_no_sum=True),
     "axis 0"),
    ("04-layernorm-backward", "unbiased variance", _ln_variant(ddof=1), "unbiased"),
    ("04-layernorm-backward", "no gamma in dx", _ln_variant(no_gamma=True),
     "γ is left out of dx"),
    ("04-layernorm-backward", "eps outside the root", _ln_variant(eps_outside=True),
     "inside the square root"),
    ("04-layernorm-backward", "eps ignored", _ln_variant(ignore_eps=True),
     "eps argument is ignored"),
    ("04-layernorm-backward", "dbeta mean", _ln_variant(dbeta_mean=True), "sum"),
    ("04-layernorm-backward", "uses autograd",
     lambda dout, x, g, eps=1e-5: _autograd_ln(dout, x, g, eps), "by hand"),
    ("04-layernorm-backward", "in place",
     lambda dout, x, g, eps=1e-5: layer_norm_backward(dout.__imul__(g), x, np.ones_like(g),
                                                      eps), "in place"),
    ("04-layernorm-backward", "hard-coded",
     lambda dout, x, g, eps=1e-5: (np.zeros((3, 4)), np.zeros(4), np.zeros(4)), "wrong"),
    ("04-layernorm-backward", "returns None", lambda dout, x, g, eps=1e-5: None, "return"),
    ("04-layernorm-backward", "not attempted", _raise, "not attempted"),
]


def _autograd_ln(dout, x, gamma, eps):
    ln = nn.LayerNorm(x.shape[1], eps=eps)
    ln.weight.data = gamma.copy()
    xt = Tensor(x, requires_grad=True)
    ln(xt).backward(dout)
    return xt.grad, ln.weight.grad, ln.bias.grad


@pytest.mark.parametrize("exercise_id, label, answer, needle", WRONG,
                         ids=[f"{w[0]}:{w[1]}" for w in WRONG])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_variant_fails_with_hint(exercise_id, label, answer, needle, seed):
    assert_caught(run_check(exercise_id, answer, seed=seed), label, needle)


def test_every_exercise_has_wrong_variants():
    assert {w[0] for w in WRONG} == set(REFERENCE)

"""Lesson 06 checks: the reference answers pass, the usual wrong answers fail
with the hint that names the mistake."""
from __future__ import annotations

import numpy as np
import pytest
from verdicts import assert_caught

from backprop_course import Tensor
from backprop_course.exercises import run_check


def _sig(z):
    return 1 / (1 + np.exp(-z))


# ------------------------------------------------------------------ reference answers
def symmetry_sweep(params, velocities, X, d, eps, alpha):
    W1, b1, W2, b2 = params
    h = _sig(X @ W1 + b1)
    y = _sig(h @ W2 + b2)
    dz2 = (y - d) * y * (1 - y)
    dz1 = (dz2 @ W2.transpose(0, 2, 1)) * h * (1 - h)
    grads = [X.T @ dz1, dz1.sum(axis=1, keepdims=True),
             h.transpose(0, 2, 1) @ dz2, dz2.sum(axis=1, keepdims=True)]
    new_v = [-eps * g + alpha * v for g, v in zip(grads, velocities)]
    return [p + v for p, v in zip(params, new_v)], new_v


def mirror_ratio(w):
    a, b = w[:3], w[[5, 4, 3]]
    top = np.abs(w).max()
    if top == 0 or np.any(np.abs(a + b) > 0.1 * top):
        return None
    m = np.sort((np.abs(a) + np.abs(b)) / 2)
    if m[0] < 0.1 * top:
        return None
    return m / m[0]


def conv_backward(dout, x, W):
    k = W.shape[1]
    dx, dW = np.zeros_like(x), np.zeros_like(W)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            g = dout[:, :, i, j]
            dx[:, i:i + k, j:j + k] += np.einsum("nf,fab->nab", g, W)
            dW += np.einsum("nf,nab->fab", g, x[:, i:i + k, j:j + k])
    return dx, dW


REFERENCE = {"06-symmetry-sweep": symmetry_sweep, "06-mirror-ratio": mirror_ratio,
             "06-conv-backward": conv_backward}


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
@pytest.mark.parametrize("seed", range(8))
def test_reference_passes(exercise_id, seed):
    verdict = run_check(exercise_id, REFERENCE[exercise_id], seed=seed)
    assert verdict.passed, verdict.render()


# ------------------------------------------------------------ other correct answers
def _sweep_einsum(params, velocities, X, d, eps, alpha):
    """Seeds written out with einsum; biases as lists; tanh form of the sigmoid."""
    W1, b1, W2, b2 = params
    h = 0.5 * (1 + np.tanh(0.5 * (np.einsum("ni,sij->snj", X, W1) + b1)))
    y = 0.5 * (1 + np.tanh(0.5 * (np.einsum("snj,sjk->snk", h, W2) + b2)))
    dz2 = (y - d) * y * (1 - y)
    dz1 = np.einsum("snk,sjk->snj", dz2, W2) * h * (1 - h)
    grads = (np.einsum("ni,snj->sij", X, dz1), dz1.sum(1)[:, None],
             np.einsum("snj,snk->sjk", h, dz2), dz2.sum(1)[:, None])
    out_p, out_v = [], []
    for p, v, g in zip(params, velocities, grads):
        v = alpha * v - eps * g
        out_p.append(p + v)
        out_v.append(v)
    return tuple(out_p), tuple(out_v)


def _sweep_autograd_free_loop(params, velocities, X, d, eps, alpha):
    """One seed at a time."""
    S = len(params[0])
    res = [symmetry_sweep([p[s:s + 1] for p in params], [v[s:s + 1] for v in velocities],
                          X, d, eps, alpha) for s in range(S)]
    return ([np.concatenate([r[0][k] for r in res]) for k in range(4)],
            [np.concatenate([r[1][k] for r in res]) for k in range(4)])


def _mirror_loop(w):
    top = max(abs(float(v)) for v in w)
    if top == 0:
        return None
    sizes = []
    for i in range(3):
        if abs(w[i] + w[5 - i]) > 0.1 * top:
            return None
        sizes.append((abs(w[i]) + abs(w[5 - i])) / 2)
    sizes.sort()
    if sizes[0] < 0.1 * top:
        return None
    return [s / sizes[0] for s in sizes]            # a list is accepted too


def _conv_im2col(dout, x, W):
    """im2col: gather the patches, then two matrix products; dx by np.add.at."""
    n, h, wd = x.shape
    f, k, _ = W.shape
    oh, ow = dout.shape[2:]
    ii, jj, aa, bb = np.meshgrid(np.arange(oh), np.arange(ow), np.arange(k), np.arange(k),
                                 indexing="ij")
    rows, cols = (ii + aa).reshape(oh * ow, k * k), (jj + bb).reshape(oh * ow, k * k)
    patches = x[:, rows, cols]                           # (n, P, k*k)
    g = dout.reshape(n, f, oh * ow)                      # (n, f, P)
    dW = np.einsum("nfp,npq->fq", g, patches).reshape(W.shape)
    dpatches = np.einsum("nfp,fq->npq", g, W.reshape(f, k * k))
    dx = np.zeros_like(x)
    np.add.at(dx, (slice(None), rows, cols), dpatches)
    return dx, dW


ALTERNATIVES = [("06-symmetry-sweep", _sweep_einsum),
                ("06-symmetry-sweep", _sweep_autograd_free_loop),
                ("06-mirror-ratio", _mirror_loop),
                ("06-conv-backward", _conv_im2col)]


@pytest.mark.parametrize("exercise_id, answer", ALTERNATIVES,
                         ids=[f"{a[0]}-{i}" for i, a in enumerate(ALTERNATIVES)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alternative_correct_answers_pass(exercise_id, answer, seed):
    verdict = run_check(exercise_id, answer, seed=seed)
    assert verdict.passed, verdict.render()


# ------------------------------------------------------------------ wrong variants
def _sweep_variant(kind):
    def sweep(params, velocities, X, d, eps, alpha):
        W1, b1, W2, b2 = params
        z1 = X @ W1 + b1
        h = _sig(z1)
        z2 = h @ W2 + b2
        y = _sig(z2)
        err = 2 * (y - d) if kind == "no half" else (y - d)
        if kind == "mean":
            err = err / len(X)
        slope2 = 1.0 if kind == "no output slope" else (
            z2 * (1 - z2) if kind == "slope from z" else y * (1 - y))
        dz2 = err * slope2
        slope1 = z1 * (1 - z1) if kind == "slope from z" else h * (1 - h)
        dz1 = (dz2 @ W2.transpose(0, 2, 1)) * slope1
        keep = kind != "bias no keepdims"
        grads = [X.T @ dz1, dz1.sum(axis=1, keepdims=keep),
                 h.transpose(0, 2, 1) @ dz2, dz2.sum(axis=1, keepdims=keep)]
        if kind == "seeds mixed":
            grads = [np.broadcast_to(g.sum(0, keepdims=True), g.shape) for g in grads]
        if kind == "autograd":
            ts = [Tensor(p, requires_grad=True) for p in params]
            y_t = ((Tensor(X) @ ts[0] + ts[1]).sigmoid() @ ts[2] + ts[3]).sigmoid()
            (0.5 * ((y_t - d) ** 2).sum()).backward()
            grads = [t.grad for t in ts]
        if kind == "no momentum":
            new_v = [-eps * g for g in grads]
        elif kind == "momentum sign":
            new_v = [-eps * g - alpha * v for g, v in zip(grads, velocities)]
        else:
            new_v = [-eps * g + alpha * v for g, v in zip(grads, velocities)]
        if kind == "old step":
            new_p = [p + v for p, v in zip(params, velocities)]
        elif kind == "subtract step":
            new_p = [p - v for p, v in zip(params, new_v)]
        elif kind == "in place":
            for p, v in zip(params, new_v):
                p += v
            new_p = params
        else:
            new_p = [p + v for p, v in zip(params, new_v)]
        return new_p, new_v
    return sweep


SWEEP_WRONG = [
    ("no half", "½"),
    ("mean", "averaged over the"),
    ("no output slope", "output sigmoid's slope is missing"),
    ("slope from z", "pre-activation z"),
    ("seeds mixed", "seed axis"),
    ("bias no keepdims", "keepdims"),
    ("no momentum", "momentum term is missing"),
    ("momentum sign", "momentum term has the wrong sign"),
    ("old step", "old* step"),
    ("subtract step", "w ← w + Δw"),
    ("in place", "in place"),
    ("autograd", "by hand"),
]


@pytest.mark.parametrize("kind, needle", SWEEP_WRONG, ids=[k for k, _ in SWEEP_WRONG])
@pytest.mark.parametrize("seed", [0, 1])
def test_sweep_wrong_variants_caught(kind, needle, seed):
    assert_caught(run_check("06-symmetry-sweep", _sweep_variant(kind), seed=seed),
                  kind, needle)


def _mirror_variant(kind):
    def mirror_ratio(w):
        partner = [3, 4, 5] if kind == "shift" else [5, 4, 3]
        a, b = w[:3], w[partner]
        top = np.abs(w).max()
        if top == 0:
            return None
        mismatch = np.abs(a - b) if kind == "symmetric" else np.abs(a + b)
        if np.any(mismatch > 0.1 * top):
            return None
        m = (np.abs(a) + np.abs(b)) / 2
        if kind != "no small test" and m.min() < 0.1 * top:
            return None
        if kind == "unsorted":
            return m / m.min()
        m = np.sort(m)
        if kind == "by max":
            return m / m[-1]
        if kind == "six sizes":
            return np.abs(w) / np.abs(w).min()
        if kind == "always":
            return np.array([1.0, 2.0, 4.0])
        return m / m[0]
    return mirror_ratio


MIRROR_WRONG = [("shift", "5 − i"), ("symmetric", "mirror-*symmetric*"),
                ("no small test", "ignores"), ("unsorted", "sort them"),
                ("by max", "smallest"), ("six sizes", "pair"),
                ("always", "divide by the smallest")]


@pytest.mark.parametrize("kind, needle", MIRROR_WRONG, ids=[k for k, _ in MIRROR_WRONG])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mirror_wrong_variants_caught(kind, needle, seed):
    assert_caught(run_check("06-mirror-ratio", _mirror_variant(kind), seed=seed),
                  kind, needle)


def _conv_variant(kind):
    def conv_backward(dout, x, W):
        if kind == "autograd":
            from backprop_course.conv import Conv2d
            conv = Conv2d(1, W.shape[0], W.shape[1], bias=False)
            conv.weight.data = W[:, None].copy()
            xt = Tensor(x[:, None].copy(), requires_grad=True)
            conv(xt).backward(dout)
            return xt.grad[:, 0], conv.weight.grad[:, 0]
        k = W.shape[1]
        Wd = W[:, ::-1, ::-1] if kind == "flip" else W
        dx = np.zeros_like(x)
        dW = np.zeros((len(x),) + W.shape) if kind == "batch axis" else np.zeros_like(W)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                g = dout[:, :, i, j]
                patch = x[:, i:i + k, j:j + k]
                if kind == "transpose":
                    patch = patch.transpose(0, 2, 1)
                if kind == "overwrite":
                    dx[:, i:i + k, j:j + k] = np.einsum("nf,fab->nab", g, Wd)
                elif kind == "first filter":
                    dx[:, i:i + k, j:j + k] += g[:, -1, None, None] * Wd[-1]
                else:
                    dx[:, i:i + k, j:j + k] += np.einsum("nf,fab->nab", g, Wd)
                if kind == "batch axis":
                    dW += np.einsum("nf,nab->nfab", g, patch)
                else:
                    dW += np.einsum("nf,nab->fab", g, patch)
        if kind == "flip":
            dW = dW[:, ::-1, ::-1]
        return dx, dW
    return conv_backward


CONV_WRONG = [("overwrite", "+="), ("flip", "flipped kernel"), ("transpose", "transposed"),
              ("first filter", "sum over the filters"), ("batch axis", "batch axis"),
              ("autograd", "by hand")]


@pytest.mark.parametrize("kind, needle", CONV_WRONG, ids=[k for k, _ in CONV_WRONG])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conv_wrong_variants_caught(kind, needle, seed):
    assert_caught(run_check("06-conv-backward", _conv_variant(kind), seed=seed),
                  kind, needle)


def test_not_attempted_and_none():
    def stub(*args):
        raise NotImplementedError("Exercise 06-mirror-ratio: write it")
    for ex in REFERENCE:
        v = run_check(ex, stub)
        assert not v.passed and v.kind == "not_attempted", v.render()
    v = run_check("06-conv-backward", None)
    assert not v.passed and v.kind == "none"


def test_hinton_diagram_area_and_colour():
    """viz.hinton (the lesson's weight drawing): area ∝ |w|, white +, black −."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from backprop_course import viz
    W = np.array([[4.0, -1.0], [0.0, -2.25]])
    fig, ax = plt.subplots()
    viz.hinton(ax, W)
    squares = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(squares) == 4
    areas = np.array([p.get_width() * p.get_height() for p in squares])
    np.testing.assert_allclose(areas / areas[0], np.abs(W).ravel() / 4.0)
    colours = [p.get_facecolor()[0] for p in squares]   # red channel: 1 white, 0 black
    assert colours[0] == 1.0 and colours[1] == 0.0 and colours[3] == 0.0
    with pytest.raises(ValueError, match="2-D"):
        viz.hinton(ax, np.zeros(3))
    plt.close(fig)

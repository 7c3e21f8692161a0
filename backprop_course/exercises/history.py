"""Checks for lesson 06, the history of backpropagation.

    symmetry_sweep(params, velocities, X, d, eps, alpha)
        -> (new_params, new_velocities): one full-batch sweep of the 1986
           6-2-1 symmetry net for S seeds at once (forward, backward by hand,
           momentum update), params = [W1 (S,6,2), b1 (S,1,2), W2 (S,2,1), b2 (S,1,1)]
    mirror_ratio(w)
        -> None, or array [1, r2, r3]: is a hidden unit's weight vector (6,)
           mirror-antisymmetric, and in what ratio are its three pairs
    conv_backward(dout, x, W) -> (dx, dW) of out[n,f,i,j] = Σ_ab x[n,i+a,j+b] W[f,a,b],
           by hand with numpy

Every check draws fresh random inputs, computes the reference with the engine
(``Tensor`` autograd, ``conv.Conv2d``) or from the definition, and names the
usual mistake when it recognises one.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import CheckFailure
from backprop_course.exercises.registry import exercise

NOTEBOOK = "06_history"


def _near(a, b, rtol: float = 1e-7, atol: float = 1e-10) -> bool:
    return expect.near(a, b, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ 06-symmetry-sweep
def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def _engine_grads(params, X, d):
    """dE/dparams of E = ½ ΣΣ (y - d)², summed over seeds, from the engine."""
    from backprop_course import Tensor
    W1, b1, W2, b2 = (Tensor(p.copy(), requires_grad=True) for p in params)
    y = ((Tensor(X) @ W1 + b1).sigmoid() @ W2 + b2).sigmoid()
    (0.5 * ((y - Tensor(d)) ** 2).sum()).backward()
    return [t.grad for t in (W1, b1, W2, b2)]


def _variant_grads(params, X, d, out_slope=True, slope_from="a", seeds_mixed=False):
    """The gradient with a usual mistake built in (for the hints)."""
    W1, b1, W2, b2 = params
    z1 = X @ W1 + b1
    h = _sigmoid(z1)
    z2 = h @ W2 + b2
    y = _sigmoid(z2)
    slope = (lambda a, z: a * (1 - a)) if slope_from == "a" else (lambda a, z: z * (1 - z))
    dz2 = (y - d) * (slope(y, z2) if out_slope else 1.0)
    dz1 = (dz2 @ W2.transpose(0, 2, 1)) * slope(h, z1)
    g = [X.T @ dz1, dz1.sum(axis=1, keepdims=True),
         h.transpose(0, 2, 1) @ dz2, dz2.sum(axis=1, keepdims=True)]
    if seeds_mixed:
        g = [np.broadcast_to(x.sum(axis=0, keepdims=True), x.shape) for x in g]
    return g


_NAMES = ("W1", "b1", "W2", "b2")


@exercise(
    "06-symmetry-sweep",
    title="One sweep of the 1986 symmetry net, for many seeds at once",
    notebook=NOTEBOOK,
    answer="symmetry_sweep",
    hints=[
        "Forward for all seeds at once: h = σ(X @ W1 + b1) has shape (S, N, 2), "
        "y = σ(h @ W2 + b2) shape (S, N, 1). @ with a leading seed axis is a "
        "batched matrix product: each seed uses only its own weights.",
        "Backward from E = ½ ΣΣ (y − d)²: dE/dy = y − d (the ½ cancels the 2). Through "
        "the output sigmoid: dz2 = (y − d) · y(1 − y), the slope written with the "
        "sigmoid's *output*. Then dz1 = (dz2 @ W2ᵀ) · h(1 − h), where W2ᵀ is "
        "W2.transpose(0, 2, 1) (swap the last two axes, not the seed axis).",
        "Weight gradients per seed: dW1 = Xᵀ @ dz1 (S, 6, 2), dW2 = hᵀ @ dz2 with "
        "hᵀ = h.transpose(0, 2, 1); bias gradients sum over the patterns axis only, "
        "dz.sum(axis=1, keepdims=True). Never sum over axis 0: that mixes the seeds.",
        "Momentum: Δw(t) = −ε g + α Δw(t−1), then w ← w + Δw(t), for each of the four "
        "arrays, as new arrays: `v = -eps * g + alpha * v_old`; `p = p_old + v`. "
        "Return `[p...], [v...]`.",
    ],
)
def _check_symmetry_sweep(symmetry_sweep, rng):
    from backprop_course import datasets
    X_all, d_all = datasets.mirror_symmetry()
    shapes = [(6, 2), (1, 2), (2, 1), (1, 1)]
    cases = [(int(rng.integers(2, 5)), np.arange(64), 0.1, 0.9, "all 64 patterns"),
             (1, np.arange(64), 0.1, 0.9, "one seed"),
             (int(rng.integers(2, 4)), np.sort(rng.choice(64, int(rng.integers(9, 30)),
                                                          replace=False)),
              float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.5, 0.95)),
              "a subset of the patterns, other ε and α")]
    for S, rows, eps, alpha, label in cases:
        X, d = X_all[rows], d_all[rows]
        params = [rng.uniform(-1.5, 1.5, size=(S,) + s) for s in shapes]
        vel = [rng.normal(0, 0.05, size=(S,) + s) for s in shapes]
        name = (f"symmetry_sweep(params, velocities, X, d, eps={eps:.3g}, "
                f"alpha={alpha:.3g}) with S = {S} seeds, X of shape {X.shape} ({label})")
        with expect.autograd_watch() as used:
            out = expect.call(symmetry_sweep, params, vel, X, d, eps, alpha, name=name,
                              returns=(tuple, list), length=2)
        if used:
            raise CheckFailure(f"{name} called Tensor.backward: this exercise asks for "
                               "the backward pass by hand, with numpy",
                               hint="hint() has the steps", kind="wrong")
        new_p, new_v = out
        for what, got in (("new_params", new_p), ("new_velocities", new_v)):
            if not isinstance(got, (list, tuple)) or len(got) != 4:
                raise CheckFailure(f"{name}: {what} should be a list of 4 arrays "
                                   f"(W1, b1, W2, b2), got {expect._short(got)}",
                                   hint="return [W1, b1, W2, b2], [vW1, vb1, vW2, vb2]",
                                   kind="type")
        g = _engine_grads(params, X, d)
        g_hand = _variant_grads(params, X, d)
        assert all(_near(a, b, 1e-9, 1e-12) for a, b in zip(g, g_hand)), \
            "the engine and the hand formula disagree"
        no_slope = _variant_grads(params, X, d, out_slope=False)
        from_z = _variant_grads(params, X, d, slope_from="z")
        mixed = _variant_grads(params, X, d, seeds_mixed=True) if S > 1 else g
        n = len(X)
        for k, nm in enumerate(_NAMES):
            want_v = -eps * g[k] + alpha * vel[k]
            bias = nm.startswith("b")

            def step(grad, k=k):
                return -eps * grad + alpha * vel[k]
            hints: dict[Any, Any] = {
                expect.equals(step(2 * g[k]),
                    "twice the right step: the gradient is of E = ½ ΣΣ (y − d)², so "
                    "dE/dy = y − d; without the ½ it is 2(y − d), which doubles ε"): None,
                expect.equals(step(g[k] / n),
                    f"the gradient is averaged over the {n} patterns: E is a *sum* over "
                    "the patterns (the 1986 paper sums), so do not divide by N"): None,
                expect.equals(-eps * g[k],
                    "the momentum term is missing: Δw(t) = −ε g + α Δw(t−1)"): None,
                expect.equals(-eps * g[k] - alpha * vel[k],
                    "the momentum term has the wrong sign: Δw(t) = −ε g + α Δw(t−1), "
                    "the old step is added"): None,
                expect.equals(eps * g[k] + alpha * vel[k],
                    "the gradient term has the wrong sign: go downhill, Δw = −ε g + …"):
                    None,
                expect.equals(step(no_slope[k]),
                    "the output sigmoid's slope is missing: dz2 = (y − d) · y(1 − y), "
                    "not y − d (that would be the cross-entropy's gradient)"): None,
                expect.equals(step(from_z[k]),
                    "the sigmoid's slope is computed from the pre-activation z: "
                    "σ'(z) = σ(z)(1 − σ(z)) = a(1 − a) with a the sigmoid's output"): None,
                expect.equals(step(mixed[k]),
                    "every seed got the same step: the gradient was summed over the "
                    "seed axis (axis 0). Each seed's gradient uses its own weights "
                    "only; sum over the patterns axis (axis 1) for the biases"): None,
            }
            if bias:
                hints[lambda got, e: np.shape(got) != np.shape(e)] = (
                    "keep the bias's shape (S, 1, units): sum over the patterns axis "
                    "with keepdims, dz.sum(axis=1, keepdims=True) (a (S, units) "
                    "gradient broadcasts against (S, 1, units) into a wrong shape)")
            expect.close(new_v[k], want_v, what=f"new velocity of {nm} ({label})",
                         rtol=1e-6, atol=1e-12, hint_if=hints,
                         hint="Δw(t) = −ε ∂E/∂w + α Δw(t−1) with E = ½ ΣΣ (y − d)²")
            expect.close(new_p[k], params[k] + want_v, what=f"new {nm} ({label})",
                         rtol=1e-6, atol=1e-12, hint_if={
                expect.equals(params[k] + vel[k],
                    "the weights moved by the *old* step: compute the new Δw first, "
                    "then w ← w + Δw(t)"): None,
                expect.equals(params[k] - want_v,
                    "the step is subtracted: Δw already has the minus sign, "
                    "so w ← w + Δw"): None,
                expect.equals(params[k] - eps * g[k],
                    "momentum left out of the weight update: w ← w + Δw(t), with "
                    "Δw(t) = −ε g + α Δw(t−1)"): None})
    return ("1 to 4 seeds, all 64 patterns and a subset, two (ε, α); velocities and "
            "weights vs the engine's autograd")


# --------------------------------------------------------------------- 06-mirror-ratio
def _pairs(w, mirror=True):
    """(w_i, w_partner) for i = 0, 1, 2: partner 5 - i (mirror) or i + 3 (shift)."""
    w = np.asarray(w, dtype=np.float64)
    partner = [5, 4, 3] if mirror else [3, 4, 5]
    return w[:3], w[partner]


def _ratio_rule(w, mirror=True, anti=True, normalise="min", sort=True,
                check_small=True):
    """The exercise's rule, and its usual wrong variants."""
    w = np.asarray(w, dtype=np.float64)
    top = np.max(np.abs(w))
    if top == 0:
        return None
    a, b = _pairs(w, mirror)
    mismatch = np.abs(a + b) if anti else np.abs(a - b)
    if np.any(mismatch > 0.1 * top):
        return None
    m = (np.abs(a) + np.abs(b)) / 2
    if check_small and np.min(m) < 0.1 * top:
        return None
    m = np.sort(m) if sort else m
    return m / (np.min(m) if normalise == "min" else np.max(m))


def mirror_ratio_reference(w):
    """The rule of the exercise (the lesson's test, written once)."""
    return _ratio_rule(w)


@exercise(
    "06-mirror-ratio",
    title="Read a symmetry detector off learned weights",
    notebook=NOTEBOOK,
    answer="mirror_ratio",
    hints=[
        "Input i's mirror image is input 5 − i: the pairs are (0, 5), (1, 4), (2, 3). "
        "Antisymmetric means w[i] ≈ −w[5 − i], so w[i] + w[5 − i] ≈ 0 (not "
        "w[i] − w[5 − i]: that would be a mirror-*symmetric* unit).",
        "The rule: with top = max |w|, return None if top is 0, if any pair has "
        "|w[i] + w[5 − i]| > 0.1·top, or if any pair's size m_i = (|w[i]| + "
        "|w[5 − i]|)/2 is below 0.1·top (that unit ignores a pair).",
        "Otherwise sort the three sizes m_i ascending and divide by the smallest: "
        "the result starts with 1, e.g. array([1., 2., 4.]) for a 1:2:4 unit, "
        "whatever the order of the pairs in w.",
        "`a, b = w[:3], w[[5, 4, 3]]`; `top = np.abs(w).max()`; test `np.abs(a + b) > "
        "0.1 * top`; `m = np.sort((np.abs(a) + np.abs(b)) / 2)`; `return m / m[0]`.",
    ],
)
def _check_mirror_ratio(mirror_ratio, rng):
    def anti(m, noise=0.0):
        """An antisymmetric unit with pair sizes m in random positions and signs."""
        m = rng.permutation(np.asarray(m, dtype=np.float64))
        s = rng.choice([-1.0, 1.0], size=3) * float(rng.uniform(1, 12))
        a = s * m
        w = np.concatenate([a, -a[::-1]])
        return w + noise * np.abs(w).max() * rng.uniform(-1, 1, size=6)

    ratios = [1 + rng.uniform(0.3, 1.5), 2 + rng.uniform(0.5, 3)]
    cases = [
        (np.array([-4.9, 9.7, 2.5, -2.5, -9.7, 4.9]), "the unit the lesson found"),
        (anti([1, 2, 4], 0.03), "a 1:2:4 unit with a little noise"),
        (anti([1, *ratios]), "another ratio"),
        (anti([1, 1, 1]), "three equal pairs"),
        (np.abs(anti([1, 2, 4])) * np.array([1, -1, 1, 1, -1, 1]),
         "a mirror-*symmetric* unit (w[i] = w[5 − i])"),
        (rng.normal(size=6), "random weights"),
        (anti([0.02, 2, 4]), "a unit that ignores one pair"),
        (np.zeros(6), "all zeros"),
    ]
    shifted = anti([1, 2, 4])
    shifted = np.concatenate([shifted[:3], -shifted[:3]])       # w[i] = −w[i + 3]
    cases.append((shifted, "w[i] = −w[i + 3], which is *not* mirror-antisymmetric"))
    one_off = anti([1, 2, 4])
    one_off[np.argmax(np.abs(one_off[:3]))] *= 0.6
    cases.append((one_off, "one pair 40% off"))
    order = rng.permutation(len(cases))
    for i in order:
        w, label = cases[i]
        w = np.asarray(w, dtype=np.float64)
        name = f"mirror_ratio(w) with w = {np.array2string(w, precision=3)} ({label})"
        want = _ratio_rule(w)
        got = expect.call(mirror_ratio, w, name=name, allow_none=True)
        variants = {
            "shift": _ratio_rule(w, mirror=False),
            "sym": _ratio_rule(w, anti=False),
            "max": _ratio_rule(w, normalise="max"),
            "unsorted": _ratio_rule(w, sort=False),
            "small": _ratio_rule(w, check_small=False),
        }

        def is_(v, got=got):
            return (v is None and got is None) or (
                v is not None and got is not None and _near(got, v, 1e-6, 1e-9))
        if want is None:
            if got is None:
                continue
            hint = ("the rule returns None here (hint() has it): a detector must have "
                    "w[i] ≈ −w[5 − i] for all three pairs, and no pair below 0.1·max|w|")
            if variants["shift"] is not None and is_(variants["shift"]):
                hint = ("the pairs are taken as (i, i + 3): the mirror image of input i "
                        "is input 5 − i, so the pairs are (0, 5), (1, 4), (2, 3)")
            elif variants["sym"] is not None and is_(variants["sym"]):
                hint = ("this tests w[i] ≈ w[5 − i], a mirror-*symmetric* unit; the "
                        "detector's weights are opposite: w[i] + w[5 − i] ≈ 0")
            elif variants["small"] is not None and is_(variants["small"]):
                hint = ("a pair smaller than 0.1·max|w| means the unit ignores those "
                        "two inputs: return None")
            raise CheckFailure(f"{name} should return None, got {expect._short(got)}",
                               hint=hint, kind="wrong")
        if got is None:
            hint = "the rule returns a ratio here: hint() has the tests, in order"
            shift, sym = variants["shift"] is None, variants["sym"] is None
            if shift and sym:
                hint = ("two usual mistakes give None here: the pairs are (0, 5), "
                        "(1, 4), (2, 3), input i's mirror image is input 5 − i (not "
                        "i + 3); and antisymmetric means w[i] + w[5 − i] ≈ 0 (testing "
                        "w[i] ≈ w[5 − i] finds mirror-*symmetric* units)")
            elif shift:
                hint = ("the pairs are taken as (i, i + 3): the mirror image of input i "
                        "is input 5 − i, so the pairs are (0, 5), (1, 4), (2, 3)")
            elif sym:
                hint = ("this tests w[i] ≈ w[5 − i], a mirror-*symmetric* unit; the "
                        "detector's weights are opposite: w[i] + w[5 − i] ≈ 0")
            raise CheckFailure(f"{name} returned None, but the unit is "
                               "mirror-antisymmetric", hint=hint, kind="wrong")
        expect.close(np.asarray(got, dtype=np.float64) if isinstance(got, (list, tuple))
                     else got, want, what=f"the ratio of {name}", rtol=1e-6, atol=1e-9,
                     hint_if={
            expect.equals(variants["max"], "divided by the largest pair: divide by the "
                          "smallest, so the ratio starts with 1 (1:2:4, not "
                          "0.25:0.5:1)"): None,
            expect.equals(variants["unsorted"], "the sizes are in the order of the "
                          "pairs in w: sort them ascending first, so a 1:2:4 unit gives "
                          "[1, 2, 4] wherever its pairs sit"): None,
            (lambda g, e: np.shape(g) == (6,)):
                "one size per *pair* (three numbers), m_i = (|w[i]| + |w[5 − i]|)/2",
        }, hint="sort the three pair sizes ascending and divide by the smallest")
    return ("the lesson's unit, 1:2:4 with noise, other ratios, symmetric, random, "
            "shifted pairs, one pair off, an ignored pair, zeros")


# ------------------------------------------------------------------ 06-conv-backward
def _conv_forward(x, W):
    n, h, wd = x.shape
    f, k, _ = W.shape
    oh, ow = h - k + 1, wd - k + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = np.einsum("nab,fab->nf", x[:, i:i + k, j:j + k], W)
    return out


def _conv_backward_variant(dout, x, W, kind=""):
    """The hand backward pass, with a usual mistake built in (kind)."""
    n, h, wd = x.shape
    f, k, _ = W.shape
    oh, ow = dout.shape[2:]
    dx, dW = np.zeros_like(x), np.zeros_like(W)
    dW_each = np.zeros((n,) + W.shape)
    Wd = W[:, ::-1, ::-1] if kind == "flip" else W
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i:i + k, j:j + k]
            if kind == "transpose":
                patch = patch.transpose(0, 2, 1)
            g = dout[:, :, i, j]
            contrib = np.einsum("nf,fab->nab", g, Wd)
            if kind == "overwrite":
                dx[:, i:i + k, j:j + k] = contrib
            elif kind == "last_filter":
                dx[:, i:i + k, j:j + k] += g[:, -1, None, None] * Wd[-1]
            else:
                dx[:, i:i + k, j:j + k] += contrib
            dW_each += np.einsum("nf,nab->nfab", g, patch)
    dW = dW_each.sum(axis=0)
    if kind == "flip":
        dW = dW[:, ::-1, ::-1]
    return dx, dW


@exercise(
    "06-conv-backward",
    title="Backward through a convolution (weight sharing)",
    notebook=NOTEBOOK,
    answer="conv_backward",
    hints=[
        "out[n, f, i, j] = Σ_a Σ_b x[n, i+a, j+b] · W[f, a, b]. Each output reads a "
        "k×k patch. Go back output by output: each one sends dout[n, f, i, j] to the "
        "k·k pixels it read and to the k·k weights of filter f.",
        "dW[f] = Σ_n Σ_i Σ_j dout[n, f, i, j] · x[n, i:i+k, j:j+k]: a shared weight is "
        "used at every position, so its gradient is the sum over all of them (and over "
        "the batch). dW has W's shape (F, k, k).",
        "dx[n, i:i+k, j:j+k] += Σ_f dout[n, f, i, j] · W[f]: patches overlap, so a "
        "pixel read by several outputs collects all their gradients: +=, never =. "
        "No flipping of the kernel: the forward pass is a correlation, the backward "
        "uses W as it is.",
        "`dx, dW = np.zeros_like(x), np.zeros_like(W)`; loop over i, j: "
        "`g = dout[:, :, i, j]`; `dx[:, i:i+k, j:j+k] += np.einsum('nf,fab->nab', g, W)`; "
        "`dW += np.einsum('nf,nab->fab', g, x[:, i:i+k, j:j+k])`.",
    ],
)
def _check_conv_backward(conv_backward, rng):
    from backprop_course import Tensor
    from backprop_course.conv import Conv2d
    cases = []
    for label in ("a batch, several filters", "one image, one filter", "k = 1",
                  "a kernel as large as the image"):
        n = 1 if label.startswith("one") else int(rng.integers(2, 4))
        f = 1 if label.startswith("one") else int(rng.integers(2, 4))
        h, wd = int(rng.integers(4, 7)), int(rng.integers(4, 7))
        k = 1 if label == "k = 1" else (min(h, wd) if "large" in label
                                         else int(rng.integers(2, 4)))
        cases.append((rng.normal(size=(n, h, wd)), rng.normal(size=(f, k, k)), label))
    for x, W, label in cases:
        n, h, wd = x.shape
        f, k, _ = W.shape
        dout = rng.normal(size=(n, f, h - k + 1, wd - k + 1))
        # the reference: the engine's Conv2d (im2col gather + @) and its autograd
        conv = Conv2d(1, f, k, bias=False)
        conv.weight.data = W[:, None].copy()
        xt = Tensor(x[:, None].copy(), requires_grad=True)
        out = conv(xt)
        assert _near(out.data[:, :], _conv_forward(x, W), 1e-10, 1e-12), "forward differs"
        out.backward(dout)
        assert xt.grad is not None and conv.weight.grad is not None
        rdx, rdW = xt.grad[:, 0], conv.weight.grad[:, 0]
        assert all(_near(a, b, 1e-10, 1e-12) for a, b in
                   zip((rdx, rdW), _conv_backward_variant(dout, x, W))), "reference differs"
        name = (f"conv_backward(dout, x, W) with x {x.shape}, W {W.shape}, dout "
                f"{dout.shape} ({label})")
        with expect.autograd_watch() as used:
            dx, dW = expect.call(conv_backward, dout, x, W, name=name,
                                 returns=(tuple, list), length=2)
        if used:
            raise CheckFailure(f"{name} called Tensor.backward: write the backward pass "
                               "by hand, with numpy", hint="hint() has the steps",
                               kind="wrong")
        variants = {kind: _conv_backward_variant(dout, x, W, kind)
                    for kind in ("overwrite", "flip", "transpose", "last_filter")}

        def hint_for(part, name_part):
            h: dict[Any, Any] = {}
            if k > 1:
                h[expect.equals(variants["flip"][part],
                    f"{name_part} uses the flipped kernel W[:, ::-1, ::-1]: the forward "
                    "pass is a correlation (no flip), so the backward pass uses W and "
                    "the patches as they are")] = None
                h[expect.equals(variants["transpose"][part],
                    f"{name_part}: the patch is transposed, x[n, i+b, j+a]; the weight "
                    "W[f, a, b] multiplies x[n, i+a, j+b] (row offset a, column b)")] = None
            if part == 0:
                h[expect.equals(variants["overwrite"][0],
                    "dx is overwritten where patches overlap: a pixel read by several "
                    "outputs gets the sum of their gradients, so use +=, not =")] = None
                if f > 1:
                    h[expect.equals(variants["last_filter"][0],
                        "dx has only one filter's part: sum over the filters f, "
                        "Σ_f dout[n, f, i, j] · W[f]")] = None
            else:
                h[lambda g, e: np.shape(g) == (n,) + W.shape] = (
                    "dW has a batch axis: the filter is shared by every image too, so "
                    "sum over n, dW of shape (F, k, k)")
            return h
        expect.close(dx, rdx, what=f"dx ({label}, shape {x.shape})", rtol=1e-6,
                     atol=1e-12, hint_if=hint_for(0, "dx"),
                     hint="dx[n, i:i+k, j:j+k] += Σ_f dout[n, f, i, j] · W[f]")
        expect.close(dW, rdW, what=f"dW ({label}, shape {W.shape})", rtol=1e-6,
                     atol=1e-12, hint_if=hint_for(1, "dW"), batch=n,
                     hint="dW[f] = Σ over n, i, j of dout[n, f, i, j] · the patch")
    return ("batches of 1 and more, 1 to 3 filters, k = 1 to the image size; dx, dW "
            "vs conv.Conv2d's autograd")

"""Checks for lesson 04, vanishing and exploding gradients.

    layer_grad_norms(model, X, y)        -> [‖dL/dW_1‖, ..., ‖dL/dW_L‖], input side first
    init_std(fan_in, fan_out, scheme, negative_slope=0.0)
                                         -> std: xavier √(2/(fan_in+fan_out)),
                                            he √(2/((1+α²) fan_in)) (leaky ReLU, slope α)
    clip_grad_norm(grads, max_norm)      -> (clipped, total), one global norm for all arrays
    layer_norm_backward(dout, x, gamma)  -> (dx, dgamma, dbeta), by hand with numpy

Every check draws fresh random shapes and values, computes the reference with
the engine (``nn``, ``Tensor`` autograd, ``optim.clip_grad_norm_``,
``nn.init_std``), cross-checks it against finite differences where the
function is smooth, and names the usual mistake when it recognises one.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import CheckFailure
from backprop_course.exercises.registry import exercise

NOTEBOOK = "04_vanishing_gradients"
#: expect.near's tolerances for telling a known wrong answer from the right one
TIGHT = {"rtol": 1e-6, "atol": 1e-12}



# ------------------------------------------------------------- 04-layer-grad-norms
_ZERO_GRAD_HINT = (
    "gradients accumulate — zero them first: call `model.zero_grad()` before "
    "`loss.backward()`, or this call's gradient is added to what an earlier backward "
    "pass left in `.grad`")


def _linears(model) -> list:
    from backprop_course import nn
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _reference(model, X: np.ndarray, y: np.ndarray) -> tuple[list, list]:
    """dL/dW and dL/db (None: no bias) of every Linear layer, input side first,
    computed on a private copy of the model."""
    from backprop_course import Tensor, losses
    twin = copy.deepcopy(model)
    twin.zero_grad()
    losses.cross_entropy(twin(Tensor(X)), y).backward()
    layers = _linears(twin)
    return ([m.weight.grad.copy() for m in layers],
            [None if m.bias is None else m.bias.grad.copy() for m in layers])


def _crosscheck_grads(model, X: np.ndarray, y: np.ndarray, grads: list[np.ndarray]) -> None:
    """The reference must agree with finite differences (first and last layer)."""
    from backprop_course import Tensor, losses
    twin = copy.deepcopy(model)
    layers = _linears(twin)
    for k in (0, len(layers) - 1):
        W = layers[k].weight

        def loss_at(w: np.ndarray) -> float:
            old = W.data
            W.data = w
            try:
                return losses.cross_entropy(twin(Tensor(X)), y).item()
            finally:
                W.data = old
        num = expect.numerical_grad(loss_at, W.data.copy())
        if not expect.near(num, grads[k], rtol=1e-4, atol=1e-8):
            raise AssertionError("reference gradient disagrees with finite differences")


def _norms(arrays) -> np.ndarray:
    return np.array([np.sqrt(np.sum(np.asarray(a, dtype=np.float64) ** 2)) for a in arrays])


def _as_norm_list(got, n_layers: int, n_bias: int, n_params: int, name: str) -> np.ndarray:
    """The learner's list as a float array; CheckFailure for the wrong type or length."""
    if isinstance(got, np.ndarray):
        raise CheckFailure(
            f"{name} should return a Python list of floats, got a numpy array of shape "
            f"{got.shape}", hint="build a list, one float per Linear layer: "
                                 "`[float(...) for m in model.modules() if ...]`",
            kind="type")
    if not isinstance(got, (list, tuple)):
        raise CheckFailure(
            f"{name} should return a list of floats, got {type(got).__name__}: "
            f"{expect._short(got)}",
            hint="one number per nn.Linear layer, in a list", kind="type")
    for i, v in enumerate(got):
        if not expect._is_real(v):
            hint = None
            if hasattr(v, "data") and hasattr(v, "grad"):
                hint = "return plain numbers: the norm of the numpy array `m.weight.grad`"
            elif isinstance(v, np.ndarray):
                hint = (f"item {i} is an array of shape {v.shape}: reduce each gradient "
                        "to one number, its norm")
            raise CheckFailure(f"{name}: item {i} of the list should be a number, got "
                               f"{type(v).__name__}: {expect._short(v)}", hint=hint,
                               kind="type")
    if len(got) != n_layers:
        hint = "one number per nn.Linear layer: pick them with " \
               "`isinstance(m, nn.Linear)` over `model.modules()`"
        if len(got) == n_layers + n_bias:
            hint = ("the biases are included: return only the norm of each Linear "
                    "layer's weight gradient, `m.weight.grad`")
        elif len(got) == n_params:
            hint = ("one number per parameter: return only the Linear layers' weights "
                    "(not the biases, not LayerNorm's scale)")
        raise CheckFailure(
            f"{name} returned {len(got)} numbers, but the model has {n_layers} nn.Linear "
            "layers", hint=hint, kind="shape")
    return np.array([float(v) for v in got], dtype=np.float64)


def _grad_norm_call(layer_grad_norms, model, X, y, label: str, stale=None,
                    second_call: bool = False, rtol: float = 1e-6) -> None:
    """Call the learner's function once on ``model`` and compare with the engine."""
    grads, bias_grads = _reference(model, X, y)
    weights = [p.data.copy() for p in model.parameters()]
    params = model.parameters()
    layers = _linears(model)
    n_bias = sum(m.bias is not None for m in layers)
    name = f"layer_grad_norms(model, X, y) ({label})"
    got = expect.call(layer_grad_norms, model, X, y, name=name, mutable=(0,))
    for p, w in zip(model.parameters(), weights):
        if p.data.shape != w.shape or not np.array_equal(p.data, w):
            raise CheckFailure(f"{name} changed the model's weights",
                               hint="only measure: forward, loss, backward, norms; no "
                                    "update step", kind="mutation")
    got = _as_norm_list(got, len(layers), n_bias, len(params), name)
    expected = _norms(grads)
    with_bias = np.array([np.sqrt(np.sum(g ** 2) + (0.0 if b is None else np.sum(b ** 2)))
                          for g, b in zip(grads, bias_grads)])
    biases = [b for b in bias_grads if b is not None]
    hints = {
        (lambda g, e: second_call and expect.near(g, 2 * e, rtol=1e-5, atol=1e-12)):
            _ZERO_GRAD_HINT + " (this second call on the same batch returned norms "
                              "twice as big)",
        (lambda g, e: stale is not None
        
              and expect.near(g, _norms([a + s for a, s in zip(grads, stale)]),
                         rtol=1e-5, atol=1e-12)):
            _ZERO_GRAD_HINT + " (this model arrived with gradients left over)",
        expect.equals(expected ** 2, "these are squared norms: the Frobenius norm is the square "
                           "root of the sum of squares, `np.sqrt((g ** 2).sum())` or "
                           "`np.linalg.norm(g)`"): None,
        (lambda g, e: len(e) > 1 and expect.near(g, e[::-1], **TIGHT)):
            "the order is reversed: list the layers from the input side, the order "
            "`model.modules()` gives them",
        (lambda g, e: n_bias > 0 and not expect.near(with_bias, e, **TIGHT)
         and expect.near(g, with_bias, rtol=1e-5, atol=1e-12)):
            "the bias gradient is counted in: return the norm of each Linear layer's "
            "weight gradient only, `m.weight.grad`",
        (lambda g, e: n_bias == len(layers) and expect.near(g, _norms(biases), **TIGHT)):
            "these are the biases' gradient norms: use `m.weight.grad`",
        (lambda g, e: expect.near(g, _norms([m.weight.data for m in layers]), **TIGHT)):
            "these are the norms of the weights themselves: take the norm of "
            "`m.weight.grad`, the gradient",
        (lambda g, e: expect.near(g, np.array([np.abs(a).sum() for a in grads]), **TIGHT)):
            "this is the sum of absolute values (L1): the Frobenius norm is "
            "√(Σ g²), `np.linalg.norm(g)`",
        (lambda g, e: expect.near(g, np.array([np.abs(a).max() for a in grads]), **TIGHT)):
            "this is the largest entry: the Frobenius norm is √(Σ g²) over all entries",
        (lambda g, e: expect.near(g, np.array([np.sqrt(np.mean(a ** 2)) for a in grads]),
                                  **TIGHT)):
            "this is the root-mean-square entry: take √ of the sum of squares, not the "
            "mean",
    }
    expect.close(got, expected, what=f"the norms, input layer first ({label})",
                 rtol=rtol, atol=1e-14, hint_if=hints)


@exercise(
    "04-layer-grad-norms",
    title="Gradient norm of every layer",
    notebook=NOTEBOOK,
    answer="layer_grad_norms",
    hints=[
        "Three steps: the loss of one forward pass, one backward pass, then read "
        "`m.weight.grad` of every `nn.Linear` layer m and reduce it to one number.",
        "`model.modules()` yields the model and every layer inside it, input side first "
        "(also layers nested inside Residual or Sequential blocks); keep the ones with "
        "`isinstance(m, nn.Linear)`.",
        "Gradients accumulate: call `model.zero_grad()` before `loss.backward()`, or a "
        "second call returns twice the norms. The Frobenius norm of an array g is "
        "`np.linalg.norm(g)` = `np.sqrt((g ** 2).sum())`, not its square.",
        "`model.zero_grad()`; `losses.cross_entropy(model(Tensor(X)), y).backward()`; "
        "`return [float(np.linalg.norm(m.weight.grad)) for m in model.modules() "
        "if isinstance(m, nn.Linear)]`.",
    ],
)
def _check_layer_grad_norms(layer_grad_norms, rng):
    from backprop_course import nn
    d, c = int(rng.integers(3, 7)), int(rng.integers(2, 5))
    w, depth = int(rng.integers(4, 9)), int(rng.integers(3, 6))
    act = str(rng.choice(["tanh", "sigmoid", "relu"]))
    seed = int(rng.integers(2 ** 31))
    n = int(rng.integers(4, 10))
    X, y = rng.normal(size=(n, d)), rng.integers(0, c, size=n)

    # 1. a plain MLP, fresh (no gradients yet); then the same call again
    model = nn.MLP([d] + [w] * depth + [c], activation=act, init="xavier", rng=seed)
    ref, _ = _reference(model, X, y)
    if act != "relu":
        _crosscheck_grads(model, X, y, ref)
    _grad_norm_call(layer_grad_norms, model, X, y, f"{depth + 1} Linear layers, {act}")
    _grad_norm_call(layer_grad_norms, model, X, y,
                    "the same model and batch, called a second time", second_call=True)

    # 2. layers nested in blocks, a LayerNorm, a Linear without bias, a batch of one,
    #    and gradients left over from an earlier backward pass
    block = nn.Sequential(nn.Tanh(), nn.Linear(w, w, bias=False, init="xavier", rng=seed))
    model = nn.Sequential(nn.Linear(d, w, init="xavier", rng=seed + 1), nn.LayerNorm(w),
                          nn.Residual(block), nn.Tanh(),
                          nn.Linear(w, c, init="xavier", rng=seed + 2))
    stale = {id(p): rng.normal(size=p.shape) for p in model.parameters()}
    for p in model.parameters():
        p.grad = stale[id(p)].copy()
    X1, y1 = rng.normal(size=(1, d)), rng.integers(0, c, size=1)
    _grad_norm_call(layer_grad_norms, model, X1, y1,
                    "Linear layers nested in a Residual block, a LayerNorm, a batch of "
                    "one, gradients left over from before",
                    stale=[stale[id(m.weight)] for m in _linears(model)])

    # 3. a deep sigmoid net: the norms shrink toward the input, every one must be right
    deep = nn.MLP([d] + [w] * 9 + [c], activation="sigmoid", init="xavier", rng=seed + 3)
    _grad_norm_call(layer_grad_norms, deep, X, y, "10 Linear layers, sigmoid")
    return ("plain, nested and deep models, a batch of one, leftover gradients, "
            "a second call; norms vs autograd")


# -------------------------------------------------------------------- 04-init-std
_UNKNOWN_SCHEMES = ("zeros", "orthogonal", "normal", "uniform", "xavier-he", "")


def _he_std(fan_in: int, negative_slope: float) -> float:
    """He's rule for a leaky ReLU: Var(W) = 2 / ((1 + α²) fan_in)."""
    return math.sqrt(2 / ((1 + negative_slope ** 2) * fan_in))


def _measured_gain(negative_slope: float, rng) -> float:
    """E[f(z)²] / Var(z) for z ~ N(0, 1), by sampling: the check's own cross-check that
    the rule it expects keeps the signal (should be (1 + α²)/2)."""
    z = rng.standard_normal(200_000)
    return float(np.mean(np.where(z > 0, z, negative_slope * z) ** 2))


@exercise(
    "04-init-std",
    title="Initialisation for a leaky ReLU",
    notebook=NOTEBOOK,
    answer="init_std",
    hints=[
        "Start from the lesson's Var(z) = fan_in · Var(W) · E[x²], with x = f(z_prev) "
        "the previous layer's activation, and ask for Var(z) = Var(z_prev).",
        "For z_prev symmetric around 0: half of the time f(z) = z, half of the time "
        "f(z) = α z. So E[f(z)²] = ½ Var(z) + ½ α² Var(z). With α = 0 this is ReLU's "
        "½ Var(z), which gave He's 2 / fan_in.",
        "So Var(W) = 2 / ((1 + α²) · fan_in), and the function returns its square root, "
        "the standard deviation. Xavier stays √(2 / (fan_in + fan_out)).",
        "`if scheme == \"xavier\": return math.sqrt(2 / (fan_in + fan_out))`; "
        "`if scheme == \"he\": return math.sqrt(2 / ((1 + negative_slope ** 2) * fan_in))`;"
        " "
        "otherwise raise ValueError.",
    ],
)
def _check_init_std(init_std, rng):
    from backprop_course import nn

    def widths() -> tuple[int, int]:
        a, b = (int(v) for v in rng.choice(np.arange(2, 513), size=2, replace=False))
        return a, b
    slopes = [float(rng.uniform(0.05, 0.6)), float(rng.uniform(0.05, 0.6))]
    cases = [("xavier", *widths(), None), ("he", *widths(), None),
             ("he", *widths(), slopes[0]), ("he", 1, int(rng.integers(3, 50)), slopes[1]),
             ("he", *widths(), 1.0), ("xavier", int(rng.integers(3, 50)), 1, None),
             ("he", *widths(), 0.0)]
    for scheme, fan_in, fan_out, alpha in cases:
        kwargs: dict[str, Any] = {} if alpha is None else {"negative_slope": alpha}
        shown = "" if alpha is None else f", negative_slope={alpha:.4g}"
        name = f"init_std({fan_in}, {fan_out}, {scheme!r}{shown})"
        got = expect.call(init_std, fan_in, fan_out, scheme, name=name, returns=float,
                          **kwargs)
        a = 0.0 if alpha is None else alpha
        want = _he_std(fan_in, a) if scheme == "he" else math.sqrt(2 / (fan_in + fan_out))
        if a == 0.0:
            assert abs(want - nn.init_std(fan_in, fan_out, scheme)) < 1e-12, \
                "engine init_std disagrees with the formula"
        if scheme == "he":     # the rule keeps the signal: fan_in Var(W) E[f(z)²] = 1
            assert abs(fan_in * want ** 2 * _measured_gain(a, rng) - 1) < 0.02, \
                "the expected rule does not keep the signal's variance"
        other = "he" if scheme == "xavier" else "xavier"
        hints = {
            expect.equals(want ** 2, "this is the variance: return its square root, the "
                          "standard deviation"): None,
            expect.equals(0.0, "0: an integer division? `2 // fan_in` is 0; use "
                          "`2 / fan_in`"): None,
            expect.equals(math.sqrt(1 / fan_in),
                          "this is √(1 / fan_in) (LeCun's rule): the activation passes on "
                          "only part of the variance, so the weights must make up for it")
            if a != 1.0 else None: None,
            expect.equals(math.sqrt(2 / fan_out),
                          "this uses fan_out: He's rule counts each unit's inputs, "
                          "fan_in"): None,
            expect.equals(math.sqrt(3) * want,
                          "this is √3 × the std, the limit a of the uniform U(-a, a) with "
                          "that variance: return the std itself"): None,
            expect.equals(1 / want, "this is 1 / std: the fan goes in the denominator"):
                None,
        }
        hints = {k: v for k, v in hints.items() if k is not None}
        if scheme == "xavier":
            hints[expect.equals(math.sqrt(1 / (fan_in + fan_out)),
                                "this is √(1 / (fan_in + fan_out)): Xavier's numerator "
                                "is 2")] = None
            hints[expect.equals(_he_std(fan_in, 0.0), "this is the he rule; 'xavier' asks "
                                "for √(2 / (fan_in + fan_out))")] = None
        else:
            hints[expect.equals(math.sqrt(2 / (fan_in + fan_out)),
                                f"this is the {other} rule; 'he' asks for the variance "
                                "that keeps the signal through the (leaky) ReLU")] = None
        if scheme == "he" and 0 < a < 1:    # (at α = 1 these coincide with the answer)
            hints[expect.equals(_he_std(fan_in, 0.0),
                  f"this is He's rule for a plain ReLU: with negative_slope = {a:.4g} "
                  "the negative half passes α·z, which keeps α² of its variance, so the "
                  "activation keeps more than ½ of E[z²] and the weights need less")] = None
            hints[expect.equals(math.sqrt(2 / ((1 + a) * fan_in)),
                  "this uses (1 + α): the negative half is multiplied by α, so its "
                  "variance by α², giving (1 + α²)")] = None
            hints[expect.equals(math.sqrt(2 * (1 + a ** 2) / fan_in),
                  "(1 + α²) is in the numerator: the more variance the activation keeps, "
                  "the smaller the weights must be, Var(W) = 2 / ((1 + α²) fan_in)")] = None
            hints[expect.equals(math.sqrt(2 / ((1 - a ** 2) * fan_in)),
                  "the sign in (1 + α²) is wrong: the negative half adds α² of its "
                  "variance")] = None
        expect.close(got, want, what=name, rtol=1e-9, hint_if=hints)
    for scheme in rng.choice(_UNKNOWN_SCHEMES, size=2, replace=False):
        _expect_value_error(init_std, 64, 32, str(scheme))
    return ("xavier, he for ReLU and for leaky ReLUs of several slopes, random fans "
            "(1 among them), unknown schemes raise ValueError")


def _expect_value_error(init_std, fan_in: int, fan_out: int, scheme: str) -> None:
    name = f"init_std({fan_in}, {fan_out}, {scheme!r})"
    try:
        with expect.time_limit(expect._state.timeout):
            result = init_std(fan_in, fan_out, scheme)
    except ValueError:
        return
    except expect.TimeLimitExceeded:
        raise CheckFailure(f"{name} ran for more than {expect._state.timeout:g} s",
                           kind="timeout") from None
    except Exception as exc:
        raise CheckFailure(
            f"{name} raised {type(exc).__name__}: {exc}; an unknown scheme should raise "
            "ValueError", hint="`raise ValueError(f\"unknown scheme {scheme!r}\")` when the "
                               "scheme is neither \"xavier\" nor \"he\"",
            kind="wrong") from None
    raise CheckFailure(
        f"{name} returned {expect._short(result)}; an unknown scheme should raise "
        "ValueError", hint="check the scheme name and raise ValueError for anything but "
                           "\"xavier\" and \"he\" (a silent default hides typos)",
        kind="wrong")


# ---------------------------------------------------------------- 04-clip-grad-norm
def _global_norm(grads: list[np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum(g ** 2)) for g in grads))


def _engine_clip(grads: list[np.ndarray], max_norm: float) -> tuple[list[np.ndarray], float]:
    """The reference: optim.clip_grad_norm_ on Tensors holding these gradients."""
    from backprop_course import Tensor, optim
    params = [Tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.copy()
    total = optim.clip_grad_norm_(params, max_norm)
    clipped = [p.grad for p in params]
    scale = max_norm / _global_norm(grads) if _global_norm(grads) > max_norm else 1.0
    if abs(total - _global_norm(grads)) > 1e-9 * max(1.0, total) or not all(
            expect.near(a, g * scale, rtol=1e-12, atol=1e-12)
            for a, g in zip(clipped, grads)):
        raise AssertionError("optim.clip_grad_norm_ disagrees with the formula")
    return clipped, total


@exercise(
    "04-clip-grad-norm",
    title="Clipping by the global gradient norm",
    notebook=NOTEBOOK,
    answer="clip_grad_norm",
    hints=[
        "One norm for all the arrays together, as if they were one long vector: "
        "total = √(Σ over arrays of Σ g²).",
        "Only when total > max_norm, multiply every array by the same number "
        "max_norm / total: the direction is kept, the length becomes max_norm. "
        "A gradient shorter than max_norm is returned unchanged (never scaled up).",
        "Return new arrays (`g * scale` makes one; `g *= scale` would change the "
        "caller's gradients), and the total measured before clipping.",
        "`total = np.sqrt(sum((g ** 2).sum() for g in grads))`; "
        "`scale = max_norm / total if total > max_norm else 1.0`; "
        "`return [g * scale for g in grads], float(total)`.",
    ],
)
def _check_clip_grad_norm(clip_grad_norm, rng):
    def some_grads(k: int) -> list[np.ndarray]:
        """k gradients: a matrix, a bias, a matrix, a bias, with very different norms."""
        def n() -> int:
            return int(rng.integers(2, 6))
        shapes = [(n(), n()), (n(),), (n(), n()), (n(),)]
        scales = [0.1, 3.0, 1.0, 0.5]
        return [rng.normal(size=s) * f for s, f in zip(shapes[:k], scales[:k])]

    cases = []
    g = some_grads(4)                                  # clipped hard: below the smallest
    cases.append((g, float(min(_norms(g))) * float(rng.uniform(0.3, 0.9)), "clipped"))
    g = some_grads(3)                                  # between the parts and the total
    t, big = _global_norm(g), float(max(_norms(g)))
    cases.append((g, round(float(rng.uniform(big, t)), 6) if t > big * 1.001 else t / 2,
                  "clipped"))
    g = some_grads(int(rng.integers(2, 5)))            # short already: left alone
    cases.append((g, _global_norm(g) * float(rng.uniform(1.5, 4)), "not clipped"))
    g = some_grads(1)                                  # one array
    cases.append((g, _global_norm(g) * float(rng.uniform(0.2, 0.8)), "one array, clipped"))
    cases.append(([np.zeros((2, 3)), np.zeros(3)], 1.0, "all gradients zero"))

    for grads, max_norm, label in cases:
        shapes = ", ".join(str(x.shape) for x in grads)
        name = f"clip_grad_norm(grads, max_norm={max_norm:.4g}) with grads of shapes " \
               f"[{shapes}] ({label})"
        before = [x.copy() for x in grads]
        try:
            result = expect.call(clip_grad_norm, grads, max_norm, name=name, mutable=True,
                                 returns=(tuple, list), length=2)
        except CheckFailure as failure:
            if "ZeroDivision" in failure.message or "division" in failure.message:
                failure.hint = ("when every gradient is zero the total is 0: only divide "
                                "by the total when total > max_norm")
            raise
        for i, (x, b) in enumerate(zip(grads, before)):
            if not np.array_equal(x, b):
                raise CheckFailure(
                    f"{name} changed grads[{i}] in place",
                    hint="do not modify the input arrays (`g *= scale` does): make new "
                         "ones, `[g * scale for g in grads]`", kind="mutation")
        clipped, total = result
        ref, ref_total = _engine_clip(before, max_norm)
        if not isinstance(clipped, (list, tuple)) or len(clipped) != len(grads):
            what = (f"{len(clipped)} array{'s' * (len(clipped) != 1)}"
                    if isinstance(clipped, (list, tuple))
                    else type(clipped).__name__)
            raise CheckFailure(f"{name}: clipped should be a list of {len(grads)} arrays, "
                               f"one per gradient; got {what}",
                               hint="return `(clipped, total)`, clipped a list like grads",
                               kind="type")
        clipping = ref_total > max_norm
        s = ref_total if ref_total > 0 else 1.0
        totals_hints = {
            expect.equals(ref_total ** 2, "this is the squared norm: take the square root, "
                                "√(Σ g²)"): None,
            expect.equals(float(np.sum(_norms(before))),
                "this is the sum of the arrays' norms; the global norm is √ of the sum "
                "of all squares, √(Σ‖g‖²)"): None,
            (lambda gg, e: clipping and expect.near(gg, max_norm, **TIGHT)):
                "this is the norm after clipping (max_norm): return the total measured "
                "before clipping",
            expect.equals(float(np.max(_norms(before))) if len(before) > 1 else -1.0,
                "this is the largest array's norm: total is the norm of all arrays "
                "together"): None,
        }
        expect.close(total, ref_total, what=f"total ({label})", rtol=1e-9, atol=1e-12,
                     hint_if=totals_hints)
        own = [x * min(1.0, max_norm / n) if n > 0 else x for x, n in zip(before,
                                                                         _norms(before))]
        for i, (got, want, x) in enumerate(zip(clipped, ref, before)):
            if not isinstance(got, np.ndarray):
                raise CheckFailure(f"{name}: clipped[{i}] should be a numpy array, got "
                                   f"{type(got).__name__}: {expect._short(got)}",
                                   hint="each clipped array has the shape of its gradient: "
                                        "multiply the gradient by the scale, `g * scale`",
                                   kind="type")
            hint_if = {
                (lambda gg, e, i=i: clipping and len(before) > 1
                 and not expect.near(own[i], e, **TIGHT)
                      and expect.near(gg, own[i], **TIGHT)):
                    "each array was clipped by its own norm: use one scale "
                    "max_norm / total for all of them, with total the global norm",
                (lambda gg, e, x=x: not clipping and s > 0 and max_norm != s
                 and expect.near(gg, x * max_norm / s, **TIGHT)):
                    "scaled up: a gradient whose norm is already below max_norm is "
                    "returned unchanged (clip only when total > max_norm)",
                (lambda gg, e, x=x: clipping
                     and expect.near(gg, x * max_norm / s ** 2, **TIGHT)):
                    "divided by the squared norm: total = √(Σ g²), then scale by "
                    "max_norm / total",
                (lambda gg, e, x=x: clipping
                     and expect.near(gg, x * s / max_norm, **TIGHT)):
                    "the scale is upside down: multiply by max_norm / total (< 1)",
                (lambda gg, e, x=x: clipping and expect.near(gg, x, **TIGHT)):
                    f"not clipped: the total norm {ref_total:.4g} is above max_norm = "
                    f"{max_norm:.4g}, so multiply every array by max_norm / total",
            }
            expect.close(got, want, what=f"clipped[{i}] of shape {x.shape} ({label})",
                         rtol=1e-9, atol=1e-12, hint_if=hint_if)
            if np.shares_memory(got, grads[i]):
                raise CheckFailure(
                    f"{name}: clipped[{i}] is the input array itself, not a new one",
                    hint="return new arrays (`g * scale`, or `g.copy()`), so the caller's "
                         "gradients and the clipped ones stay separate", kind="wrong")
        # the clipped gradient has norm max_norm (or its own, if it was short)
        assert abs(_global_norm(ref) - min(ref_total, max_norm)) < 1e-9 * max(1.0, max_norm)
    return ("clipped and short gradients, one array, all zeros; global norm, new arrays, "
            "inputs untouched, vs optim.clip_grad_norm_")


# ------------------------------------------------------------ 04-layernorm-backward
def _ln_forward(x, gamma, beta, eps: float, ddof: int = 0, eps_outside: bool = False):
    """LayerNorm, (x - μ)/√(σ² + eps)·γ + β over the last axis, from operations that
    Tensors and numpy arrays share (so it gives the autograd and the numeric gradient)."""
    d = x.shape[-1]
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).sum(axis=-1, keepdims=True) / (d - ddof)
    if eps_outside:
        return (x - mean) / (var ** 0.5 + eps) * gamma + beta
    return (x - mean) * (var + eps) ** -0.5 * gamma + beta


def _ln_grads(dout, x, gamma, eps: float, **variant) -> tuple[np.ndarray, ...]:
    beta = np.zeros_like(gamma)
    return expect.grad_of(lambda x, g, b: _ln_forward(x, g, b, eps, **variant),
                          x, gamma, beta, upstream=dout, crosscheck=False)


def _engine_ln(dout, x, gamma, beta, eps: float) -> tuple[np.ndarray, ...]:
    """Gradients from nn.LayerNorm itself (the engine's layer)."""
    from backprop_course import Tensor, nn
    ln = nn.LayerNorm(x.shape[1], eps=eps)
    ln.weight.data = gamma.copy()
    ln.bias.data = beta.copy()
    xt = Tensor(x.copy(), requires_grad=True)
    ln(xt).backward(dout)
    return xt.grad, ln.weight.grad, ln.bias.grad


def _variant_hints(k: int, unbiased, outside, default_eps) -> dict:
    """Hints for output k (0: dx, 1: dgamma) of three wrong forward passes."""
    return {
        (lambda g, e: unbiased[k] is not None and expect.near(g, unbiased[k], **TIGHT)):
            "this is what the unbiased variance (÷ (D - 1)) gives: LayerNorm uses "
            "the biased variance, the mean of (x - μ)², ÷ D (np.var's default)",
        (lambda g, e: expect.near(g, outside[k], **TIGHT)):
            "eps goes inside the square root: √(σ² + eps), not √σ² + eps",
        (lambda g, e: default_eps[k] is not None
             and expect.near(g, default_eps[k], **TIGHT)):
            "the eps argument is ignored: use the eps the function is given "
            "(the check passes eps=0.5 here)",
    }


@exercise(
    "04-layernorm-backward",
    title="LayerNorm backward by hand",
    notebook=NOTEBOOK,
    answer="layer_norm_backward",
    hints=[
        "Write the forward pass in small steps and keep them: μ = mean of each row, "
        "σ² = mean of (x - μ)² (divide by D, not D - 1), x̂ = (x - μ)/√(σ² + eps), "
        "y = x̂·γ + β. Then go back through the steps one by one.",
        "dβ = Σ over the rows of dout and dγ = Σ over the rows of dout·x̂: γ and β are "
        "shared by every row, so their gradients sum over the batch axis (axis 0).",
        "dx̂ = dout·γ. μ and σ² depend on every x of the row, so dx is not just "
        "dx̂/√(σ² + eps): each row also loses its mean of dx̂ and its mean of dx̂·x̂ "
        "(times x̂).",
        "`xhat = (x - mu) / np.sqrt(var + eps)`; `dxhat = dout * gamma`; "
        "`dx = (dxhat - dxhat.mean(axis=1, keepdims=True) - xhat * (dxhat * xhat)"
        ".mean(axis=1, keepdims=True)) / np.sqrt(var + eps)`.",
    ],
)
def _check_layernorm_backward(layer_norm_backward, rng):
    def shape() -> tuple[int, int]:
        return int(rng.integers(3, 7)), int(rng.integers(3, 8))
    n, d = shape()
    cases = [(n, d, None, 1.0, "a batch"),
             (1, int(rng.integers(3, 8)), None, 1.0, "a batch of one"),
             (n + 1, n + 1, None, 1.0, "a square batch, N = D"),
             (*shape(), 0.5, 0.3, "eps=0.5 passed in, small spread")]
    for n, d, eps, spread, label in cases:
        x = rng.normal(size=(n, d)) * spread + rng.normal(size=(n, 1)) * 2
        gamma = rng.uniform(0.5, 2.0, size=d) * rng.choice([-1.0, 1.0], size=d)
        beta = rng.normal(size=d)
        dout = rng.normal(size=(n, d))
        e = 1e-5 if eps is None else eps
        args = (dout, x, gamma) if eps is None else (dout, x, gamma, eps)
        name = (f"layer_norm_backward(dout, x, gamma{'' if eps is None else ', eps=0.5'}) "
                f"with x of shape {x.shape}")
        with expect.autograd_watch() as used:
            dx, dgamma, dbeta = expect.call(layer_norm_backward, *args, name=name,
                                            returns=tuple, length=3)
        if used:
            raise CheckFailure(
                f"{name} called Tensor.backward: this exercise asks for the backward "
                "pass by hand, with numpy", hint="write the steps of the forward pass "
                "with numpy and go back through them (hint() has the formulas)",
                kind="wrong")
        rx, rg, rb = expect.grad_of(lambda x, g, b: _ln_forward(x, g, b, e),
                                    x, gamma, beta, upstream=dout, crosscheck=False)
        numeric = expect.numerical_grad(lambda x, g, b: _ln_forward(x, g, b, e),
                                        x, gamma, beta, upstream=dout)
        for r, num in zip((rx, rg, rb), numeric):     # the rows of dx sum to 0: an
            scale = 1.0 + float(np.abs(r).max())      # absolute tolerance, scaled
            assert expect.near(num, r, rtol=1e-5, atol=1e-6 * scale), \
                "autograd disagrees with finite differences"
        ex, eg, eb = _engine_ln(dout, x, gamma, beta, e)
        assert expect.near(ex, rx, 1e-8, 1e-10) and expect.near(eg, rg, 1e-8, 1e-10) and \
            expect.near(eb, rb, 1e-8, 1e-10), \
            "nn.LayerNorm disagrees with the Tensor-op reference"
        mu = x.mean(axis=1, keepdims=True)
        var = x.var(axis=1, keepdims=True)
        xhat = (x - mu) / np.sqrt(var + e)
        unbiased = _ln_grads(dout, x, gamma, e, ddof=1) if d > 1 else (None,) * 3
        outside = _ln_grads(dout, x, gamma, e, eps_outside=True)
        default_eps = _ln_grads(dout, x, gamma, 1e-5) if eps is not None else (None,) * 3
        dxhat = dout * gamma
        std = np.sqrt(var + e)
        expect.close(dx, rx, what=f"dx ({label}, shape {x.shape})", rtol=1e-6,
                     hint="a factor left out? dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) / "
                          "√(σ² + eps), with row means (axis=1) and dx̂ = dout·γ",
                     hint_if={
            expect.equals(dxhat / std,
                "μ and σ² are treated as constants: they depend on every x of the row, "
                "so dx also gets −mean(dx̂) and −x̂·mean(dx̂·x̂) (row means), "
                "all divided by √(σ² + eps)"): None,
            expect.equals((dxhat - dxhat.mean(axis=1, keepdims=True)) / std,
                "σ² is treated as a constant: x̂ depends on x through σ² too, so subtract "
                "x̂·mean(dx̂·x̂) (row mean) as well"): None,
            expect.equals((dxhat - xhat * (dxhat * xhat).mean(axis=1, keepdims=True)) / std,
                "μ is treated as a constant: x − μ depends on every x of the row, so "
                "subtract the row mean of dx̂ as well"): None,
            (lambda g, ex_: not expect.near(_ln_grads(dout, x, np.ones(d), e)[0], ex_,
                                            **TIGHT)
             and expect.near(g, _ln_grads(dout, x, np.ones(d), e)[0], **TIGHT)):
                "the factor γ is left out of dx: the gradient reaching x̂ is dx̂ = dout·γ",
            **_variant_hints(0, unbiased, outside, default_eps),
        })
        expect.close(dgamma, rg, what=f"dgamma ({label}, shape {gamma.shape})", rtol=1e-6,
                     batch=n, hint_if={
            (lambda g, ex_: np.shape(g) == (n,)
             and (n != d or expect.near(g, (dout * xhat).sum(axis=1), **TIGHT))):
                "summed over the wrong axis: γ is shared by the N rows, so "
                "dγ = (dout·x̂).sum(axis=0), shape (D,)",
            (lambda g, ex_: np.shape(g) == (n, d)):
                "dγ has the shape of γ, (D,): sum dout·x̂ over the batch axis (axis 0)",
            expect.equals(dout.sum(axis=0), "the factor x̂ is left out (this is dβ): dγ = Σ over "
                                  "rows of dout·x̂"): None,
            expect.equals(xhat.sum(axis=0), "the factor dout is left out: dγ = Σ over rows of "
                                  "dout·x̂"): None,
            expect.equals((dout * (x - mu)).sum(axis=0),
                "x̂ is the normalised input (x − μ)/√(σ² + eps), not x − μ"): None,
            expect.equals((dout * x).sum(axis=0), "multiply dout by x̂, the normalised input, "
                                        "not by x"): None,
            **_variant_hints(1, unbiased, outside, default_eps),
        })
        expect.close(dbeta, rb, what=f"dbeta ({label}, shape {gamma.shape})", rtol=1e-6,
                     batch=n, hint_if={
            (lambda g, ex_: np.shape(g) == (n,)
                 and (n != d or expect.near(g, dout.sum(axis=1), **TIGHT))):
                "summed over the wrong axis: β is shared by the N rows, so "
                "dβ = dout.sum(axis=0), shape (D,)",
            (lambda g, ex_: np.shape(g) == (n, d)):
                "dβ has the shape of β, (D,): sum dout over the batch axis (axis 0)",
            (lambda g, ex_: n > 1 and expect.near(g, dout.mean(axis=0), **TIGHT)):
                "this is the mean of the rows; β is added to every row, so its gradient "
                "is their sum",
        })
    return "batches of 1 and more, N = D, a given eps; dx, dγ, dβ vs nn.LayerNorm and " \
           "finite differences"

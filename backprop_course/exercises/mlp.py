"""Checks for lesson 03, an MLP from scratch.

The layers follow CS231n's pattern: a forward function returns its output and
a ``cache`` of what the backward pass will need; the backward function turns
dL/d(output) into dL/d(each input) using only that cache.

    affine_forward(x, W, b)          -> out, cache      out = x W + b, cache = (x, W, b)
    affine_backward(dout, cache)     -> dx, dW, db
    relu_backward(dout, cache)       -> dx              cache = x
    softmax_cross_entropy(logits, y) -> loss, dlogits   mean over the batch
    train_step(model, X, y, lr)      -> loss            one step of gradient descent

Every check draws fresh random shapes and values (a batch of one among them),
computes the reference with the engine's autograd (cross-checked against finite
differences where the function is smooth) and names the usual mistake when it
recognises one.
"""
from __future__ import annotations

import copy

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import CheckFailure
from backprop_course.exercises.registry import exercise

NOTEBOOK = "03_mlp_from_scratch"


def _near(a: np.ndarray, b: np.ndarray, rtol: float = 1e-5, atol: float = 1e-9) -> bool:
    """expect.near with this module's default tolerances."""
    return expect.near(a, b, rtol=rtol, atol=atol)


def _ratio_is(k: float):
    """A detector: got ≈ k · expected for the one constant k."""
    def test(got, expected) -> bool:
        return bool(np.any(np.asarray(expected) != 0)) and _near(got, k * np.asarray(expected))
    return test


def _sizes(rng: np.random.Generator) -> tuple[int, int]:
    """Two different layer widths (so a missing transpose shows as a shape error)."""
    d = int(rng.integers(2, 7))
    m = int(rng.integers(2, 7))
    return d, m + (m == d)


# ------------------------------------------------------------------ 03-linear-forward
@exercise(
    "03-linear-forward",
    title="Linear (affine) layer forward",
    notebook=NOTEBOOK,
    answer="affine_forward",
    hints=[
        "Each row of x is one example. Multiply it by W and add b: `x @ W + b`. "
        "Check the shapes: (N, D) @ (D, M) gives (N, M), and b of shape (M,) "
        "broadcasts over the N rows.",
        "The backward pass needs x and W (and the shape of b), so the cache is the "
        "tuple `(x, W, b)`.",
        "`out = x @ W + b`, `cache = (x, W, b)`, `return out, cache`.",
    ],
)
def _check_linear_forward(affine_forward, rng):
    for n in (int(rng.integers(2, 7)), 1):
        d, m = _sizes(rng)
        x, W, b = rng.normal(size=(n, d)), rng.normal(size=(d, m)), rng.normal(size=m)
        name = f"affine_forward(x, W, b) with x {x.shape}, W {W.shape}, b {b.shape}"
        result = expect.call(affine_forward, x, W, b, name=name)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            got = (f"{len(result)} values" if isinstance(result, (tuple, list))
                   else f"one {type(result).__name__}")
            raise CheckFailure(f"{name} should return 2 values, (out, cache); got {got}",
                               hint="return the output and the cache: "
                                    "`return out, (x, W, b)`", kind="type")
        out, cache = result
        expect.close(out, x @ W + b, what=f"out (batch of {n})", hint_if={
            (lambda g, e: g.shape != e.shape):
                f"out has one row per example and one column per output: shape (N, M) "
                f"= {(n, m)}; x @ W gives exactly that",
            expect.equals(x @ W, "the bias is missing: add b (it broadcasts over the rows)"):
                None,
        })
        if not isinstance(cache, (tuple, list)) or len(cache) != 3:
            raise CheckFailure(
                f"cache should be the tuple (x, W, b), got {type(cache).__name__}"
                + (f" of length {len(cache)}" if isinstance(cache, (tuple, list)) else ""),
                hint="affine_backward reads `x, W, b = cache`: return `out, (x, W, b)`",
                kind="type")
        for got, want, label in zip(cache, (x, W, b), ("x", "W", "b")):
            if not (isinstance(got, np.ndarray) and got.shape == want.shape
                    and np.array_equal(got, want)):
                desc = (f"an array of shape {got.shape}" if isinstance(got, np.ndarray)
                        else expect._short(got))
                raise CheckFailure(
                    f"cache[{'xWb'.index(label)}] should be {label} "
                    f"(shape {want.shape}), got {desc}",
                    hint="keep the inputs in the order the backward pass unpacks them: "
                         "`cache = (x, W, b)`", kind="wrong")
    return "batches of 1 and more, random widths; out and cache"


# ----------------------------------------------------------------- 03-linear-backward
_LINEAR_BACKWARD_HINTS = [
    "Write down the shapes: dout is (N, M), x is (N, D), W is (D, M), b is (M,). "
    "Each gradient has the shape of the thing it is the gradient of.",
    "out = x W + b, so dx = dout Wᵀ (N, M)·(M, D) and dW = xᵀ dout (D, N)·(N, M). "
    "The only way to get the shapes right is the right transposes.",
    "b is added to every row of the batch, so its gradient is the sum of the rows "
    "of dout: `db = dout.sum(axis=0)` (shape (M,), no keepdims).",
    "`x, W, b = cache`; `dx = dout @ W.T`; `dW = x.T @ dout`; `db = dout.sum(axis=0)`.",
]


@exercise(
    "03-linear-backward",
    title="Linear (affine) layer backward",
    notebook=NOTEBOOK,
    answer="affine_backward",
    hints=_LINEAR_BACKWARD_HINTS,
)
def _check_linear_backward(affine_backward, rng):
    d, m = _sizes(rng)
    cases = [(int(rng.integers(3, 8)), d, m),          # a batch, D != M
             (1, m, d),                                # a batch of one
             (int(rng.integers(2, 6)), d, d)]          # square W: shapes cannot help
    for n, d, m in cases:
        x, W, b = rng.normal(size=(n, d)), rng.normal(size=(d, m)), rng.normal(size=m)
        dout = rng.normal(size=(n, m))
        name = (f"affine_backward(dout, cache) with dout {dout.shape}, "
                f"x {x.shape}, W {W.shape}, b {b.shape}")
        dx, dW, db = expect.call(affine_backward, dout, (x, W, b), name=name,
                                 returns=tuple, length=3)
        rx, rW, rb = expect.grad_of(lambda x, W, b: x @ W + b, x, W, b, upstream=dout)
        expect.close(dx, rx, what=f"dx (batch of {n})", batch=n, hint_if={
            (lambda g, e: d == m and _near(g, dout @ W)):
                "missing transpose: dx = dout @ W.T (W maps D inputs to M outputs, "
                "the gradient goes back the other way)",
        })
        expect.close(dW, rW, what=f"dW (batch of {n})", batch=n, hint_if={
            (lambda g, e: n > 1 and _near(g, e / n)):
                "dW is the batch average, but the loss's 1/N is already inside dout: "
                "dW = x.T @ dout, summed over the batch, not averaged",
        })
        expect.close(db, rb, what=f"db (batch of {n})", batch=n, hint_if={
            (lambda g, e: np.ndim(g) == 2 and g.shape == (1, m)):
                "db has an extra axis: use dout.sum(axis=0) without keepdims, so db "
                "has the shape of b, (M,)",
            (lambda g, e: n > 1 and _near(g, e / n)):
                "db is the mean of the rows of dout; it should be their sum "
                "(b is used once per row, and the 1/N is already inside dout)",
            (lambda g, e: np.shape(g) == (n,) and (n != m or _near(g, dout.sum(axis=1)))):
                "summed over the wrong axis: sum over the batch (axis=0), keep the M "
                "outputs",
        })
    return "batches of 1 and more, square and non-square W; dx, dW, db vs autograd"


# -------------------------------------------------------------------- 03-relu-backward
@exercise(
    "03-relu-backward",
    title="ReLU backward",
    notebook=NOTEBOOK,
    answer="relu_backward",
    hints=[
        "ReLU is max(0, x): slope 1 where x > 0 and slope 0 where x <= 0. The gradient "
        "passes through unchanged where the unit was on and is blocked where it was off.",
        "Multiply dout by the mask of where x > 0 (the mask of relu(x) > 0 is the same "
        "thing). At x == 0 exactly the course (like PyTorch) takes the slope 0: use `>`, "
        "not `>=`.",
        "`x = cache`; `dx = dout * (x > 0)`. Do not change dout in place: it belongs "
        "to the layer above.",
    ],
)
def _check_relu_backward(relu_backward, rng):
    shapes = [(int(rng.integers(2, 7)), int(rng.integers(2, 7))), (1, int(rng.integers(2, 7))),
              (2, 3, int(rng.integers(2, 5)))]
    for shape in shapes:
        x = rng.normal(size=shape)
        x.flat[rng.choice(x.size, size=max(1, x.size // 4), replace=False)] = 0.0
        dout = rng.normal(size=shape)
        name = f"relu_backward(dout, cache) with x of shape {shape} (some entries exactly 0)"
        dx = expect.call(relu_backward, dout, x, name=name)
        ref = expect.grad_of(lambda t: t.relu(), x, upstream=dout, crosscheck=False)
        expect.close(dx, ref, what=f"dx for x of shape {shape}", hint_if={
            expect.equals(dout * (x >= 0),
                          "wrong at x == 0: ReLU's slope there is taken as 0, so the "
                          "gradient must be blocked where x <= 0 (use `x > 0`)"): None,
            expect.equals(dout * (x <= 0),
                          "the mask is inverted: the gradient passes where x > 0"): None,
            expect.equals(dout * (x < 0),
                          "the mask is inverted: the gradient passes where x > 0"): None,
            expect.equals((x > 0).astype(float),
                          "you return the mask only: multiply it by dout"): None,
            expect.equals(dout,
                          "you pass every gradient through: block it where x <= 0"): None,
            expect.equals(dout * np.maximum(x, 0),
                          "you multiplied by relu(x); multiply by the mask (x > 0), "
                          "which is ReLU's slope"): None,
        })
    return "2-d and 3-d inputs with exact zeros, a batch of one"


# ---------------------------------------------------------------- 03-softmax-ce-backward
def _softmax_ce_reference(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    from backprop_course.tensor import Tensor
    n = len(y)
    t = Tensor(logits, requires_grad=True)
    loss = -(t.log_softmax(axis=1)[np.arange(n), y].mean())
    loss.backward()
    return loss.item(), t.grad


@exercise(
    "03-softmax-ce-backward",
    title="Softmax cross-entropy: loss and gradient",
    notebook=NOTEBOOK,
    answer="softmax_cross_entropy",
    hints=[
        "Softmax turns each row of scores into probabilities p; the loss is the mean "
        "over the N rows of -log p[correct class].",
        "The gradient of one row's loss with respect to its scores is p - onehot(y): "
        "the probabilities, with 1 subtracted at the correct class. The loss is a "
        "mean over N rows, so divide by N.",
        "For stability subtract each row's max before exp (softmax does not change); "
        "scores like 1000 otherwise overflow to inf and give nan.",
        "`s = logits - logits.max(axis=1, keepdims=True)`; `p = np.exp(s)`; "
        "`p /= p.sum(axis=1, keepdims=True)`; `loss = -np.log(p[np.arange(N), y]).mean()`; "
        "`d = p.copy()`; `d[np.arange(N), y] -= 1`; `d /= N`.",
    ],
)
def _check_softmax_ce(softmax_cross_entropy, rng):
    cases = [(int(rng.integers(3, 9)), int(rng.integers(2, 7)), 0.0),
             (1, int(rng.integers(2, 7)), 0.0),
             (int(rng.integers(3, 7)), int(rng.integers(3, 7)), 1000.0)]   # large scores
    for n, c, offset in cases:
        logits = rng.normal(size=(n, c)) * 3 + offset
        y = rng.integers(0, c, size=n)
        what = f"(N={n}, C={c}" + (", scores near 1000)" if offset else ")")
        name = f"softmax_cross_entropy(logits, y) with logits {logits.shape}"
        loss, dlogits = expect.call(softmax_cross_entropy, logits, y, name=name,
                                    returns=tuple, length=2)
        ref_loss, ref_d = _softmax_ce_reference(logits, y)
        if not offset:    # smooth and moderate: the reference must match finite differences
            num = expect.numerical_grad(
                lambda z: _softmax_ce_reference(np.asarray(z), y)[0], logits)
            assert _near(num, ref_d, rtol=1e-4, atol=1e-7), "reference gradient disagrees"
        expect.close(loss, ref_loss, what=f"loss {what}", hint_if={
            (lambda g, e: n > 1 and _near(g, n * e)):
                "the loss is summed over the batch; it should be the mean (divide by N)",
            (lambda g, e: _near(g, -e)):
                "the sign is flipped: the loss is -log p(correct class), a positive number",
        })
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        expect.close(dlogits, ref_d, what=f"dlogits {what}", batch=n, hint_if={
            (lambda g, e: n > 1 and _near(g, n * e)):
                f"dlogits is {n}× too big: forgot to divide by N (the loss is a mean "
                "over the batch)",
            (lambda g, e: _near(g, -e)):
                "the sign is flipped: dloss/dlogits = p - onehot(y), not onehot(y) - p",
            expect.equals(p / n, "the one-hot is not subtracted: the correct class's "
                                 "entry is p - 1, the others p"): None,
            expect.equals(p, "the one-hot is not subtracted, and not divided by N: "
                             "(p - onehot(y)) / N"): None,
        })
    return "loss and dlogits for batches of 1 and more, and scores near 1000"


# -------------------------------------------------------------------- 03-training-step
def _build_model(rng: np.random.Generator, d: int, h: int, c: int):
    from backprop_course import nn
    return nn.Sequential(nn.Linear(d, h, rng=rng), nn.ReLU(), nn.Linear(h, c, rng=rng))


def _loss_and_grads(model, X, y) -> tuple[float, list[np.ndarray]]:
    """Loss and gradients at the model's current parameters, on a private copy."""
    from backprop_course import losses
    twin = copy.deepcopy(model)
    twin.zero_grad()
    loss = losses.cross_entropy(twin(X), y)
    loss.backward()
    return loss.item(), [p.grad.copy() for p in twin.parameters()]


def _check_one_step(train_step, model, X, y, lr, stale: list[np.ndarray] | None,
                    step: str) -> float:
    params = model.parameters()
    old = [p.data.copy() for p in params]
    ref_loss, grads = _loss_and_grads(model, X, y)
    name = f"train_step(model, X, y, lr={lr:g}) ({step})"
    got = expect.call(train_step, model, X, y, lr, name=name, returns=float, mutable=True)
    now = model.parameters()
    if len(now) != len(params) or any(a is not b for a, b in zip(now, params)):
        raise CheckFailure(
            f"{name}: the model's parameters were replaced by new Tensors",
            hint="update each parameter in place, e.g. `p.data -= lr * p.grad`",
            kind="wrong")
    moved = [p.data - o for p, o in zip(params, old)]
    names = [n for n, _ in model.named_parameters()]
    if all(not np.any(mv) for mv in moved):
        raise CheckFailure(
            f"{name}: no parameter moved",
            hint="change the parameters themselves: `p.data -= lr * p.grad` for p in "
                 "model.parameters(). (`p = p - lr * p.grad` only rebinds a local name.)",
            kind="wrong")
    for pname, mv, g, s in zip(names, moved, grads, stale or [None] * len(grads)):
        expect.close(mv, -lr * g, what=f"the change of parameter {pname} ({step})",
                     rtol=1e-6, atol=1e-10, hint_if={
            (lambda gg, e: s is not None and _near(gg, -lr * (g + s))):
                "gradients accumulate — zero them each step: call `model.zero_grad()` "
                "before `loss.backward()`; the model arrived with gradients left over "
                "from an earlier backward pass",
            (lambda gg, e: _near(gg, lr * g)):
                "the step goes uphill: subtract the gradient, p.data -= lr * p.grad",
            (lambda gg, e: _near(gg, -g) and lr != 1):
                "the step ignores the learning rate: multiply the gradient by lr",
            (lambda gg, e: bool(np.any(e)) and not _near(gg, e) and
             expect._ratio(gg, e) is not None):
                f"the step points along -grad but its size is not lr × grad "
                f"(lr = {lr:g}): use the lr argument, once",
        })
    expect.close(got, ref_loss, what=f"the loss train_step returned ({step})", hint_if={
        (lambda gg, e: _near(gg, _loss_and_grads(model, X, y)[0])):
            "this is the loss after the step; return the loss of the forward pass "
            "you took the gradient of (before the update)",
    })
    return float(got)


@exercise(
    "03-training-step",
    title="One step of gradient descent",
    notebook=NOTEBOOK,
    answer="train_step",
    hints=[
        "Backpropagation computes the gradient; gradient descent uses it. A step is: "
        "forward pass, loss, backward pass, then move every parameter a little "
        "against its gradient.",
        "Gradients accumulate — zero them each step: `model.zero_grad()` before "
        "`loss.backward()`, or the new gradient is added to the old one.",
        "Change the parameters in place: `for p in model.parameters(): "
        "p.data -= lr * p.grad`.",
        "`model.zero_grad()`; `loss = losses.cross_entropy(model(Tensor(X)), y)`; "
        "`loss.backward()`; update every p; `return loss.item()`.",
    ],
)
def _check_training_step(train_step, rng):
    d, h, c = int(rng.integers(2, 6)), int(rng.integers(3, 8)), int(rng.integers(2, 5))
    n = int(rng.integers(4, 10))
    X, y = rng.normal(size=(n, d)), rng.integers(0, c, size=n)
    model = _build_model(rng, d, h, c)
    stale = [rng.normal(size=p.shape) for p in model.parameters()]
    for p, s in zip(model.parameters(), stale):      # left over from an earlier backward
        p.grad = s.copy()
    lr = round(float(rng.uniform(0.05, 0.3)), 2)
    first = _check_one_step(train_step, model, X, y, lr, stale, "first step, with "
                            "gradients left over from before")
    left = [None if p.grad is None else p.grad.copy() for p in model.parameters()]
    has_left = all(g is not None for g in left)
    _check_one_step(train_step, model, X, y, lr, left if has_left else None,
                    "second step")
    # a batch of one, then several steps: the loss must go down
    X1, y1 = rng.normal(size=(1, d)), rng.integers(0, c, size=1)
    _check_one_step(train_step, model, X1, y1, lr, None, "batch of one")
    losses_seen = [expect.call(train_step, model, X, y, 0.1, returns=float, mutable=True,
                               name="train_step(model, X, y, lr=0.1)") for _ in range(20)]
    if not losses_seen[-1] < first:
        raise CheckFailure(
            f"after 20 more steps with lr=0.1 the loss went from {first:.4f} to "
            f"{losses_seen[-1]:.4f}; it should go down",
            hint="each step should move every parameter by -lr * grad", kind="wrong")
    return "parameters move by -lr·grad, stale gradients are cleared, the loss goes down"

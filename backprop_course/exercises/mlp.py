"""Checks for lesson 03, an MLP from scratch.

The lesson writes the layers of a network (linear ``x W + b``, ReLU, softmax
cross-entropy with class labels) and shows their backward passes. The exercises
ask for what it did not show, so the learner derives each one:

    linear_backward(dout, cache)     -> dx, dW, db      PyTorch's layout: out = x Wᵀ + b,
                                                        W of shape (M, D), cache = (x, W, b)
    softmax_cross_entropy(logits, q) -> loss, dlogits   soft targets: each row of q a
                                                        probability vector (label smoothing)
    mse(pred, target)                -> loss, dpred     mean over all N·K entries
    zero_init_answer                 = {...}            what all-zero initial weights do
    add_weight_decay(loss, grads, params, lam) -> loss, grads   + (λ/2) Σ W² over weights
    train_step(model, X, y, lr)      -> loss            one step of gradient descent

Every check draws fresh random shapes and values (a batch of one among them),
computes the reference with the engine's autograd (cross-checked against finite
differences) and names the usual mistake when it recognises one.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import CheckFailure
from backprop_course.exercises.registry import exercise

NOTEBOOK = "03_mlp_from_scratch"


def _sizes(rng: np.random.Generator) -> tuple[int, int]:
    """Two different layer widths (so a missing transpose shows as a shape error)."""
    d = int(rng.integers(2, 7))
    m = int(rng.integers(2, 7))
    return d, m + (m == d)


# ----------------------------------------------------------------- 03-linear-backward
_LINEAR_BACKWARD_HINTS = [
    "Write down the shapes: dout is (N, M), x is (N, D), W is (M, D) in this layout, "
    "b is (M,). Each gradient has the shape of the thing it is the gradient of.",
    "Write one entry: out[n, m] = Σ_d x[n, d] W[m, d] + b[m]. So d out[n, m] / d W[m, d] "
    "= x[n, d], and d out[n, m] / d x[n, d] = W[m, d]; sum over what the entry touched.",
    "dW[m, d] = Σ_n dout[n, m] x[n, d], an (M, N)·(N, D) product; dx[n, d] = "
    "Σ_m dout[n, m] W[m, d], an (N, M)·(M, D) product; db sums dout over the batch.",
    "`x, W, b = cache`; `dx = dout @ W`; `dW = dout.T @ x`; `db = dout.sum(axis=0)`.",
]


@exercise(
    "03-linear-backward",
    title="Linear layer backward, in PyTorch's layout out = x Wᵀ + b",
    notebook=NOTEBOOK,
    answer="linear_backward",
    hints=_LINEAR_BACKWARD_HINTS,
)
def _check_linear_backward(linear_backward: Any, rng: np.random.Generator) -> str:
    d, m = _sizes(rng)
    cases = [(int(rng.integers(3, 8)), d, m),          # a batch, D != M
             (1, m, d),                                # a batch of one
             (int(rng.integers(2, 6)), d, d)]          # square W: shapes cannot help
    for n, d, m in cases:
        x, W, b = rng.normal(size=(n, d)), rng.normal(size=(m, d)), rng.normal(size=m)
        dout = rng.normal(size=(n, m))
        name = (f"linear_backward(dout, cache) with dout {dout.shape}, "
                f"x {x.shape}, W {W.shape}, b {b.shape}")
        dx, dW, db = expect.call(linear_backward, dout, (x, W, b), name=name,
                                 returns=tuple, length=3)
        rx, rW, rb = expect.grad_of(lambda x, W, b: x @ W.T + b, x, W, b, upstream=dout)
        lesson = ("this is the formula for the lesson's layer x W + b, where W is "
                  "(D, M); here W is stored as (M, D) and out = x Wᵀ + b, so ")
        expect.close(dx, rx, what=f"dx (batch of {n})", batch=n, hint_if={
            (lambda g, e: d == m and expect.near(g, dout @ W.T)):
                lesson + "dx = dout @ W (no transpose)",
        })
        expect.close(dW, rW, what=f"dW (batch of {n})", batch=n, hint_if={
            (lambda g, e: expect.near(g, x.T @ dout)):
                lesson + "dW must have W's shape (M, D): dW = dout.T @ x, the "
                "transpose of the lesson's x.T @ dout",
            (lambda g, e: n > 1 and expect.near(g, e / n)):
                "dW is the batch average, but the loss's 1/N is already inside dout: "
                "sum over the batch, do not average",
        })
        expect.close(db, rb, what=f"db (batch of {n})", batch=n, hint_if={
            (lambda g, e: np.ndim(g) == 2 and np.shape(g) == (1, m)):
                "db has an extra axis: use dout.sum(axis=0) without keepdims, so db "
                "has the shape of b, (M,)",
            (lambda g, e: n > 1 and expect.near(g, e / n)):
                "db is the mean of the rows of dout; it should be their sum "
                "(b is used once per row, and the 1/N is already inside dout)",
            (lambda g, e: np.shape(g) == (n,) and (n != m or
                                                  expect.near(g, dout.sum(axis=1)))):
                "summed over the wrong axis: sum over the batch (axis=0), keep the M "
                "outputs",
        })
    return "x Wᵀ + b with W (M, D): batches of 1 and more, square and non-square W"


# ---------------------------------------------------------------- 03-softmax-ce-backward
def _softmax(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _soft_ce_reference(logits: np.ndarray, q: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over rows of -Σ_k q_k log softmax(z)_k, and its gradient, by autograd."""
    from backprop_course.tensor import Tensor
    t = Tensor(logits, requires_grad=True)
    loss = -((t.log_softmax(axis=1) * q).sum(axis=1).mean())
    loss.backward()
    return loss.item(), t.grad


def _soft_targets(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    """Rows on the simplex: label smoothing of a random class, or a random mix."""
    y = rng.integers(0, c, size=n)
    eps = float(rng.uniform(0.05, 0.3))
    q = np.full((n, c), eps / c)
    q[np.arange(n), y] += 1 - eps
    mixed = rng.dirichlet(np.ones(c), size=n)
    rows = rng.random(n) < 0.5
    q[rows] = mixed[rows]
    return q


@exercise(
    "03-softmax-ce-backward",
    title="Softmax cross-entropy with soft targets",
    notebook=NOTEBOOK,
    answer="softmax_cross_entropy",
    hints=[
        "Write one row's loss with log p_k = z_k - log Σ_j exp(z_j): "
        "-Σ_k q_k log p_k = -Σ_k q_k z_k + (Σ_k q_k) · log Σ_j exp(z_j).",
        "Differentiate that with respect to z_i: the first term gives -q_i, the second "
        "(Σ_k q_k) · p_i. The rows of q sum to 1. Then the batch mean divides by N.",
        "For stability subtract each row's max before exp (softmax does not change); "
        "scores like 1000 otherwise overflow to inf and give nan.",
        "`p = softmax(logits)` (stably); `loss = -(q * np.log(p)).sum(axis=1).mean()`; "
        "`dlogits = (p - q) / N`.",
    ],
)
def _check_softmax_ce(softmax_cross_entropy: Any, rng: np.random.Generator) -> str:
    cases = [(int(rng.integers(3, 9)), int(rng.integers(2, 7)), 0.0),
             (1, int(rng.integers(2, 7)), 0.0),
             (int(rng.integers(3, 7)), int(rng.integers(3, 7)), 1000.0)]   # large scores
    for n, c, offset in cases:
        logits = rng.normal(size=(n, c)) * 3 + offset
        q = _soft_targets(rng, n, c)
        what = f"(N={n}, C={c}" + (", scores near 1000)" if offset else ")")
        name = f"softmax_cross_entropy(logits, q) with logits {logits.shape}"
        loss, dlogits = expect.call(softmax_cross_entropy, logits, q, name=name,
                                    returns=tuple, length=2)
        ref_loss, ref_d = _soft_ce_reference(logits, q)
        if not offset:    # smooth and moderate: the reference must match finite differences
            num = expect.numerical_grad(
                lambda z: _soft_ce_reference(np.asarray(z), q)[0], logits)
            assert expect.near(num, ref_d, rtol=1e-4, atol=1e-7), \
                "reference gradient disagrees"
        expect.close(loss, ref_loss, what=f"loss {what}", hint_if={
            (lambda g, e: n > 1 and expect.near(g, n * e)):
                "the loss is summed over the batch; it should be the mean (divide by N)",
            (lambda g, e: expect.near(g, -e)):
                "the sign is flipped: the loss is -Σ q log p, a positive number",
            (lambda g, e: expect.near(
                g, -np.log(_softmax(logits)[np.arange(n), q.argmax(axis=1)]).mean())):
                "this is the loss of the most likely class only; with soft targets "
                "every class k counts, weighted by q_k: -Σ_k q_k log p_k",
        })
        p = _softmax(logits)
        onehot = np.eye(c)[q.argmax(axis=1)]
        expect.close(dlogits, ref_d, what=f"dlogits {what}", batch=n, hint_if={
            (lambda g, e: n > 1 and expect.near(g, n * e)):
                f"dlogits is {n}× too big: forgot to divide by N (the loss is a mean "
                "over the batch)",
            (lambda g, e: expect.near(g, -e)):
                "the sign is flipped: dloss/dlogits = p - q, not q - p",
            expect.equals((p - onehot) / n, "this is the gradient for the one most "
                          "likely class, p - onehot; with soft targets the derivative "
                          "of -Σ_k q_k log p_k is p - q"): None,
            expect.equals(-q / p / n, "this is dL/dp, the gradient with respect to the "
                          "probabilities; chain it through the softmax to get dL/dlogits "
                          "(it simplifies to p - q)"): None,
            expect.equals(p / n, "q is not subtracted: dL/dlogits = (p - q) / N"): None,
        })
    return "soft targets, batches of 1 and more, and scores near 1000"


# ------------------------------------------------------------------- 03-mse-backward
@exercise(
    "03-mse-backward",
    title="Mean squared error: loss and gradient",
    notebook=NOTEBOOK,
    answer="mse",
    hints=[
        "The loss is a mean over every entry of the (N, K) array: "
        "L = (1 / (N·K)) Σ_{n,k} (pred[n, k] - target[n, k])².",
        "Differentiate one term with the chain rule: d/dpred of (pred - target)² is "
        "2 (pred - target). The mean divides every entry's share by N·K (pred.size).",
        "`diff = pred - target`; `loss = (diff ** 2).mean()`; "
        "`dpred = 2 * diff / diff.size`.",
    ],
)
def _check_mse(mse: Any, rng: np.random.Generator) -> str:
    shapes = [(int(rng.integers(3, 8)), int(rng.integers(2, 5))), (1, 1),
              (int(rng.integers(2, 6)), 1)]
    for shape in shapes:
        pred, target = rng.normal(size=shape), rng.normal(size=shape)
        n, k = shape
        name = f"mse(pred, target) with pred and target of shape {shape}"
        loss, dpred = expect.call(mse, pred, target, name=name, returns=tuple, length=2)
        ref = expect.grad_of(lambda t: ((t - target) ** 2).mean(), pred)
        diff = pred - target
        expect.close(loss, float((diff ** 2).mean()), what=f"loss for shape {shape}",
                     hint_if={
            (lambda g, e: n * k > 1 and expect.near(g, (diff ** 2).sum())):
                "the loss is summed; it should be the mean over all N·K entries",
            (lambda g, e: n * k > 1 and expect.near(g, (diff ** 2).sum() / n) and k > 1):
                "divided by N only: the mean runs over all N·K entries (pred.size)",
            (lambda g, e: expect.near(g, 0.5 * (diff ** 2).mean())):
                "a ½ crept in: this loss is the plain mean of the squares",
        })
        expect.close(dpred, ref, what=f"dpred for shape {shape}", hint_if={
            (lambda g, e: expect.near(g, diff / diff.size)):
                "the factor 2 from d/du u² = 2u is missing",
            (lambda g, e: k > 1 and expect.near(g, 2 * diff / n)):
                "divided by N only: the loss averages over all N·K entries, so divide "
                "by pred.size",
            (lambda g, e: n * k > 1 and expect.near(g, 2 * diff)):
                "the 1/(N·K) of the mean is missing from the gradient",
            (lambda g, e: expect.near(g, -np.asarray(e))):
                "the sign is flipped: dL/dpred = 2 (pred - target) / (N·K)",
        })
    return "batches of several, of one, and a single output column"


# ---------------------------------------------------------------------- 03-zero-init
#: What the exercise asks, and the answers: every parameter of the 2-layer net
#: X -> Linear(W1, b1) -> act -> Linear(W2, b2) -> softmax CE.
ZERO_INIT_PARAMS = ("W1", "b1", "W2", "b2")


def _zero_init_truth() -> dict[str, Any]:
    """Run the three experiments the exercise describes; read the answers off them."""
    from backprop_course import Tensor, losses
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 3, size=20)
    W1_random = rng.normal(0, np.sqrt(2 / 4), size=(4, 5))
    truth: dict[str, Any] = {}
    for case, act, W1, W2 in (("zero", "relu", np.zeros((4, 5)), np.zeros((5, 3))),
                              ("last_zero", "relu", W1_random, np.zeros((5, 3))),
                              ("constant", "tanh", np.full((4, 5), 0.5),
                               np.full((5, 3), 0.5))):
        params = [Tensor(W1.copy(), requires_grad=True),
                  Tensor(np.zeros(5), requires_grad=True),
                  Tensor(W2.copy(), requires_grad=True),
                  Tensor(np.zeros(3), requires_grad=True)]
        start = [p.data.copy() for p in params]
        for _ in range(50):
            h = getattr(Tensor(X) @ params[0] + params[1], act)()
            loss = losses.cross_entropy(h @ params[2] + params[3], y)
            for p in params:
                p.zero_grad()
            loss.backward()
            for p in params:
                assert p.grad is not None
                p.data -= 0.5 * p.grad
        moved = {n for n, p, s0 in zip(ZERO_INIT_PARAMS, params, start)
                 if not np.allclose(p.data, s0, rtol=0, atol=1e-12)}
        distinct = len({tuple(np.round(col, 9)) for col in params[0].data.T})
        truth[case] = (moved, distinct)
    return truth


def _as_name_set(value: Any, key: str) -> set[str]:
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise CheckFailure(f"zero_init_answer[{key!r}] should be a set of parameter "
                           f"names such as {{'W1', 'b2'}}, got {value!r:.60}", kind="type")
    names = {str(v) for v in value}
    unknown = names - set(ZERO_INIT_PARAMS)
    if unknown:
        raise CheckFailure(f"zero_init_answer[{key!r}] holds {sorted(unknown)}, which "
                           f"are not parameters of the net; use names from "
                           f"{list(ZERO_INIT_PARAMS)}", kind="type")
    return names


@exercise(
    "03-zero-init",
    title="Why initial weights are random: what all-zero weights do",
    notebook=NOTEBOOK,
    answer="zero_init_answer",
    hints=[
        "Run one forward pass by hand with every weight and bias 0: what is the hidden "
        "layer's output h for every input? Then what are the scores?",
        "Backward: dW2 = hᵀ dscores and dh = dscores W2ᵀ. Which of these is zero when "
        "h = 0 or W2 = 0? Does a step change that for the next step?",
        "With every hidden unit identical at the start (same incoming and outgoing "
        "weights), each gets the same gradient, so they stay identical.",
    ],
)
def _check_zero_init(answer: Any, rng: np.random.Generator) -> str:
    if answer is None:
        raise CheckFailure("not attempted yet: fill in zero_init_answer",
                           kind="not_attempted")
    if not isinstance(answer, dict):
        raise CheckFailure(f"zero_init_answer should be a dict with the keys "
                           f"'moved_zero', 'moved_last_zero' and 'distinct_units', got "
                           f"{type(answer).__name__}", kind="type")
    missing = [k for k in ("moved_zero", "moved_last_zero", "distinct_units")
               if k not in answer]
    if missing:
        raise CheckFailure(f"zero_init_answer has no key {missing[0]!r}", kind="type",
                           hint="keep the three keys of the template")
    truth = _zero_init_truth()
    for key, case in (("moved_zero", "zero"), ("moved_last_zero", "last_zero")):
        got, want = _as_name_set(answer[key], key), truth[case][0]
        if got == want:
            continue
        extra, lacking = sorted(got - want), sorted(want - got)
        if case == "zero":
            why = {
                "W2": "dW2 = hᵀ dscores, and h = relu(0) = 0 for every input",
                "W1": "dW1 = xᵀ dz with dz = (dscores W2ᵀ) · relu'(z), and W2 = 0 "
                      "(relu'(0) = 0 as well)",
                "b1": "db1 sums dz = (dscores W2ᵀ) · relu'(z), which is 0 while W2 = 0",
                "b2": "db2 sums dscores = (p - onehot) / N, which is not 0: the output "
                      "bias learns the class frequencies",
            }
            tail = (". Only b2 changes, so every later step sees the same zeros: "
                    "the net never leaves them")
        else:
            why = {name: "W1 is random, so h is not 0 and dW2 = hᵀ dscores moves W2 in "
                         "the first step; from the second step on W2 ≠ 0, so the "
                         "gradient reaches the first layer too"
                   for name in ZERO_INIT_PARAMS}
            tail = ""
        part = (f"{extra[0]} does not move: {why[extra[0]]}" if extra else
                f"{lacking[0]} does move: {why[lacking[0]]}")
        raise CheckFailure(f"zero_init_answer[{key!r}] = {sorted(got)} is wrong",
                           hint=part + tail)
    units = answer["distinct_units"]
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)):
        raise CheckFailure(f"zero_init_answer['distinct_units'] should be a whole "
                           f"number, got {units!r:.60}", kind="type")
    if int(units) != truth["constant"][1]:
        raise CheckFailure(
            f"zero_init_answer['distinct_units'] = {int(units)} is wrong",
            hint="with every weight 0.5, all 5 hidden units compute the same thing and "
                 "send the same signal out, so backprop hands each the same gradient: "
                 "they move, but in lockstep. How many different units is that?")
    return "the all-zero net, the zero output layer and the symmetric net, against runs"


# -------------------------------------------------------------------- 03-l2-gradient
def _l2_reference(loss: float, grads: list, params: list, lam: float) -> tuple[float, list]:
    penalty = sum(0.5 * lam * float(np.sum(p * p)) for p in params if np.ndim(p) == 2)
    return loss + penalty, [g + lam * p if np.ndim(p) == 2 else g.copy()
                            for g, p in zip(grads, params)]


@exercise(
    "03-l2-gradient",
    title="Weight decay: an L2 term's loss and gradient",
    notebook=NOTEBOOK,
    answer="add_weight_decay",
    hints=[
        "The term is (λ/2) Σ W² summed over every entry of every weight matrix. Only "
        "the term's own entries depend on W[i, j]: differentiate (λ/2) W[i, j]².",
        "d/dW (λ/2) W² = λ W: the ½ cancels the 2. Biases (the 1-D arrays) are not "
        "penalised, so their gradients stay as they are.",
        "The data gradient is still there: new grad = grad + λ W for a weight, grad for "
        "a bias; new loss = loss + (λ/2) Σ W². Build new arrays; do not change grads.",
    ],
)
def _check_l2(add_weight_decay: Any, rng: np.random.Generator) -> str:
    for case in range(3):
        d, h, c = int(rng.integers(2, 6)), int(rng.integers(2, 6)), int(rng.integers(2, 5))
        shapes = [(d, h), (h,), (h, c), (c,)] if case < 2 else [(d, c), (c,)]
        params = [rng.normal(size=s) for s in shapes]
        grads = [rng.normal(size=s) for s in shapes]
        loss = float(rng.uniform(0.1, 2.0))
        lam = float(np.round(rng.uniform(0.01, 0.2), 3))
        name = (f"add_weight_decay(loss, grads, params, lam={lam:g}) with params of "
                f"shapes {shapes}")
        got = expect.call(add_weight_decay, loss, [g.copy() for g in grads], params, lam,
                          name=name, returns=tuple, length=2)
        new_loss, new_grads = got
        want_loss, want_grads = _l2_reference(loss, grads, params, lam)
        penalty = want_loss - loss
        all_sq = sum(float(np.sum(p * p)) for p in params)
        expect.close(new_loss, want_loss, what=f"the new loss (λ = {lam:g})", hint_if={
            expect.equals(loss, "the penalty (λ/2) Σ W² is missing from the loss"): None,
            expect.equals(loss + 2 * penalty, "the loss term is (λ/2) Σ W², with the "
                          "½"): None,
            expect.equals(penalty, "the new loss is the old loss PLUS the penalty"): None,
            expect.equals(loss + 0.5 * lam * all_sq, "the biases are penalised too: "
                          "weight decay here applies to the weight matrices (2-D) "
                          "only"): None,
        })
        if not isinstance(new_grads, (list, tuple)) or len(new_grads) != len(params):
            raise CheckFailure(f"{name}: the new gradients should be a list of "
                               f"{len(params)} arrays, one per parameter", kind="type")
        for k, (g_new, g, p, want) in enumerate(zip(new_grads, grads, params, want_grads)):
            label = f"{'weight' if p.ndim == 2 else 'bias'} {k} {p.shape}"
            if p.ndim == 2:
                ref = expect.grad_of(lambda w: (w * w).sum() * (lam / 2), p)
                assert expect.near(ref, lam * p), "reference gradient disagrees"
            expect.close(g_new, want, what=f"the new gradient of {label}", hint_if={
                expect.equals(g + 2 * lam * p, "2λW: the ½ in (λ/2) Σ W² cancels the 2 "
                              "of d/dW W², so the term's gradient is λW"): None,
                expect.equals(lam * p, "the data gradient is gone: the term's gradient "
                              "λW is ADDED to grad, not put in its place"): None,
                expect.equals(g + lam * np.sign(p), "λ·sign(W) is the gradient of an L1 "
                              "term λ Σ|W|; for (λ/2) Σ W² it is λW"): None,
                expect.equals(g + lam * p if p.ndim == 1 else g,
                              "biases are not decayed here (1-D arrays keep their "
                              "gradient); weight matrices (2-D) get + λW"
                              if p.ndim == 1 else
                              "this weight matrix did not get its decay: + λW for every "
                              "2-D parameter"): None,
            })
    return "two- and one-layer parameter lists, weights decayed, biases not"


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
            (lambda gg, e: s is not None and expect.near(gg, -lr * (g + s))):
                "gradients accumulate — zero them each step: call `model.zero_grad()` "
                "before `loss.backward()`; the model arrived with gradients left over "
                "from an earlier backward pass",
            (lambda gg, e: expect.near(gg, lr * g)):
                "the step goes uphill: subtract the gradient, p.data -= lr * p.grad",
            (lambda gg, e: expect.near(gg, -g) and lr != 1):
                "the step ignores the learning rate: multiply the gradient by lr",
            (lambda gg, e: bool(np.any(e)) and not expect.near(gg, e) and
             expect._ratio(gg, e) is not None):
                f"the step points along -grad but its size is not lr × grad "
                f"(lr = {lr:g}): use the lr argument, once",
        })
    expect.close(got, ref_loss, what=f"the loss train_step returned ({step})", hint_if={
        (lambda gg, e: expect.near(gg, _loss_and_grads(model, X, y)[0])):
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
    _check_one_step(train_step, model, X, y, lr, stale, "first step, with "
                    "gradients left over from before")
    left = [None if p.grad is None else p.grad.copy() for p in model.parameters()]
    has_left = all(g is not None for g in left)
    _check_one_step(train_step, model, X, y, lr, left if has_left else None,
                    "second step")
    # a batch of one, then 20 steps that must retrace plain gradient descent run
    # from the same start (a fixed rule: "the loss goes down" can fail for a right
    # answer on an unlucky draw, as one seed in 1,500 showed)
    X1, y1 = rng.normal(size=(1, d)), rng.integers(0, c, size=1)
    _check_one_step(train_step, model, X1, y1, lr, None, "batch of one")
    twin = copy.deepcopy(model)
    want = []
    for _ in range(20):
        loss, grads = _loss_and_grads(twin, X, y)
        for p, g in zip(twin.parameters(), grads):
            p.data = p.data - 0.1 * g
        want.append(loss)
    got = [expect.call(train_step, model, X, y, 0.1, returns=float, mutable=True,
                       name="train_step(model, X, y, lr=0.1)") for _ in range(20)]
    expect.close(np.array(got), np.array(want), rtol=1e-6, atol=1e-10,
                 what="the sequence of losses from 20 more calls with lr=0.1 (plain "
                      "gradient descent from the same start gives the expected one)",
                 hint="each step should move every parameter by -lr * grad, from "
                      "gradients of this step alone")
    return ("parameters move by -lr·grad, stale gradients are cleared, 20 steps "
            "retrace gradient descent")

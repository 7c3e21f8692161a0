"""Checks for lesson 08, beyond backpropagation.

    fa_backward(dh, x, W, b, B) -> (dx, dW, db) of h = tanh(x W + b), with the
                                   error sent down through the fixed feedback
                                   matrix B (out, in) in place of Wᵀ
    update_angle(a, b)          -> the angle in degrees between two updates,
                                   arrays or lists of arrays

Every check draws fresh random shapes and values, computes the reference with
the engine (``feedback_alignment.fa_affine`` and ``Tensor`` autograd, cross-
checked against the formula), and names the usual mistake when it recognises
one.
"""
from __future__ import annotations

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import CheckFailure
from backprop_course.exercises.registry import exercise

NOTEBOOK = "08_beyond_backprop"


def _near(a, b, rtol: float = 1e-6, atol: float = 1e-12) -> bool:
    return expect.near(a, b, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ 08-fa-backward
def _engine_fa_grads(dh, x, W, b, B) -> tuple:
    """(dx, dW, db) of tanh(fa_affine(x, W, b, B)) from the engine's autograd."""
    from backprop_course import Tensor
    from backprop_course.feedback_alignment import fa_affine
    xt, Wt, bt = (Tensor(a.copy(), requires_grad=True) for a in (x, W, b))
    fa_affine(xt, Wt, bt, B).tanh().backward(dh)
    return xt.grad, Wt.grad, bt.grad


def _engine_bp_grads(dh, x, W, b) -> tuple:
    """(dx, dW, db) of tanh(x @ W + b) by backprop, from Tensor ops."""
    from backprop_course import Tensor
    xt, Wt, bt = (Tensor(a.copy(), requires_grad=True) for a in (x, W, b))
    (xt @ Wt + bt).tanh().backward(dh)
    return xt.grad, Wt.grad, bt.grad


_DERIV_HINT = ("the tanh's derivative is left out: the error reaches z = x W + b "
               "through the tanh, so dz = dh · (1 − h²) with h = tanh(z), and then "
               "dx = dz B, dW = xᵀ dz, db = Σ dz")
_WT_HINT = ("this is backprop's dx = dz Wᵀ: feedback alignment sends the error down "
            "through the fixed random B instead, dx = dz @ B (B has Wᵀ's shape)")


@exercise(
    "08-fa-backward",
    title="The feedback-alignment backward pass of a layer",
    notebook=NOTEBOOK,
    answer="fa_backward",
    hints=[
        "The forward pass is z = x W + b, h = tanh(z). Only one thing changes from "
        "backprop: the matrix that carries the error down to x. dW and db are the "
        "usual ones.",
        "Go back through the tanh first: dz = dh · (1 − h²), where h = tanh(z). "
        "Then dW = xᵀ dz (shape of W), db = dz summed over the batch (shape of b).",
        "Backprop would send dz Wᵀ to x. Feedback alignment sends dz B, with the B "
        "it is given: B has Wᵀ's shape (out, in), is drawn once and never changes, "
        "so do not draw a new one and do not transpose it.",
        "`h = np.tanh(x @ W + b)`; `dz = dh * (1 - h ** 2)`; "
        "`return dz @ B, x.T @ dz, dz.sum(axis=0)`.",
    ],
)
def _check_fa_backward(fa_backward, rng):
    def draw(n: int, d_in: int, d_out: int):
        x = rng.normal(size=(n, d_in))
        W = rng.normal(size=(d_in, d_out)) / np.sqrt(d_in)
        b = rng.normal(size=d_out) * 0.3
        B = rng.normal(size=(d_out, d_in)) / np.sqrt(d_out)
        return rng.normal(size=(n, d_out)), x, W, b, B

    n, d_in = int(rng.integers(3, 7)), int(rng.integers(3, 7))
    d_out = d_in + int(rng.integers(1, 4))
    sq = int(rng.integers(3, 6))
    cases = [(*draw(n, d_in, d_out), "a batch"),
             (*draw(1, d_out, d_in), "a batch of one"),
             (*draw(int(rng.integers(3, 7)), sq, sq), "a square layer, in = out"),
             (*draw(int(rng.integers(3, 7)), int(rng.integers(2, 6)), 1), "one output")]
    for dh, x, W, b, B in [c[:5] for c in cases[:1]]:
        # same inputs twice: a fixed B gives the same dx both times
        name = f"fa_backward(dh, x, W, b, B) with x of shape {x.shape}"
        first = expect.call(fa_backward, dh, x, W, b, B, name=name,
                            returns=(tuple, list), length=3)
        again = expect.call(fa_backward, dh.copy(), x.copy(), W.copy(), b.copy(),
                            B.copy(), name=name, returns=(tuple, list), length=3)
        if not _near(np.asarray(first[0], dtype=float), np.asarray(again[0], dtype=float)):
            raise CheckFailure(
                f"{name} returned a different dx for the same inputs, called twice",
                hint="B is drawn once, before training, and stays fixed: use the B "
                     "passed in; drawing a new random matrix on every call (every "
                     "step) gives the network nothing to align with", kind="wrong")
    for dh, x, W, b, B, label in cases:
        n = x.shape[0]
        name = f"fa_backward(dh, x, W, b, B) with x {x.shape}, W {W.shape} ({label})"
        with expect.autograd_watch() as used:
            dx, dW, db = expect.call(fa_backward, dh, x, W, b, B, name=name,
                                     returns=(tuple, list), length=3)
        if used:
            raise CheckFailure(
                f"{name} called Tensor.backward: this exercise asks for the backward "
                "pass by hand, with numpy", hint="write z = x @ W + b, h = tanh(z), "
                "and go back through both steps (hint() has them)", kind="wrong")
        rx, rW, rb = _engine_fa_grads(dh, x, W, b, B)
        _, bW, bb = _engine_bp_grads(dh, x, W, b)
        z = x @ W + b
        h = np.tanh(z)
        dz = dh * (1 - h ** 2)
        assert _near(rx, dz @ B, 1e-9) and _near(rW, bW, 1e-9) and _near(rb, bb, 1e-9) \
            and _near(rW, x.T @ dz, 1e-9), \
            "fa_affine disagrees with the formula or with backprop's dW, db"
        wrong_deriv = dh * (1 - z ** 2)
        sig = dh * h * (1 - h)
        expect.close(dx, rx, what=f"dx ({label}, shape {x.shape})", rtol=1e-6,
                     hint="dx = dz @ B with dz = dh · (1 − h²)", hint_if={
            expect.equals(dz @ W.T, _WT_HINT): None,
            expect.equals(dh @ W.T, "this is dh Wᵀ: backprop's matrix, and the "
                          "tanh's derivative is missing too; dx = (dh · (1 − h²)) @ B"):
                None,
            expect.equals(dh @ B, _DERIV_HINT): None,
            (lambda g, e: B.shape[0] == B.shape[1] and not _near(dz @ B.T, e)
             and _near(g, dz @ B.T)):
                "B is transposed: B already stands in Wᵀ's place, shape (out, in), "
                "so dx = dz @ B, not dz @ B.T",
            expect.equals(wrong_deriv @ B, "the derivative is taken at the wrong "
                          "point: tanh'(z) = 1 − tanh(z)² = 1 − h², not 1 − z²"): None,
            expect.equals(sig @ B, "that is the sigmoid's derivative h(1 − h); "
                          "the layer is tanh, whose derivative is 1 − h²"): None,
            expect.equals((dh * (1 - h)) @ B, "tanh'(z) = 1 − h², h squared"): None,
        })
        expect.close(dW, rW, what=f"dW ({label}, shape {W.shape})", rtol=1e-6,
                     batch=n, hint="dW = xᵀ dz, the same as backprop's", hint_if={
            expect.equals(x.T @ dh, _DERIV_HINT): None,
            (lambda g, e: not _near(dz.T @ x, e) and _near(g, dz.T @ x)):
                "the transpose is on the wrong factor: dW = x.T @ dz, shape of W",
            expect.equals(x.T @ (dh * (1 - z ** 2)),
                          "tanh'(z) = 1 − tanh(z)² = 1 − h², not 1 − z²"): None,
        })
        expect.close(db, rb, what=f"db ({label}, shape {b.shape})", rtol=1e-6, batch=n,
                     hint="db = dz summed over the batch axis", hint_if={
            (lambda g, e: np.shape(g) == dz.shape):
                "db has the shape of b: sum dz over the batch axis, dz.sum(axis=0)",
            expect.equals(dh.sum(axis=0), _DERIV_HINT): None,
        })
    return ("batches of 1 and more, square and non-square layers, one output; "
            "dx, dW, db vs the engine's fa_affine and backprop's dW, db")


# ------------------------------------------------------------------ 08-update-angle
def _angle(a, b) -> float:
    def flat(u):
        if isinstance(u, (list, tuple)):
            return np.concatenate([np.ravel(p) for p in u])
        return np.ravel(u)
    va, vb = flat(a), flat(b)
    c = va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _parallel_pair_base(rng) -> np.ndarray:
    """An array p whose cosine with 2.5 p rounds to just above 1 in float64
    (written either way), so an arccos without clipping gives nan."""
    p = rng.normal(size=(3, 4))
    for _ in range(2000):
        u, v = np.ravel(p), np.ravel(2.5 * p)
        if (u @ v / (np.linalg.norm(u) * np.linalg.norm(v)) > 1
                and u @ v / np.linalg.norm(u) / np.linalg.norm(v) > 1):
            break
        p = rng.normal(size=(3, int(rng.integers(3, 6))))
    return p


@exercise(
    "08-update-angle",
    title="The angle between two updates",
    notebook=NOTEBOOK,
    answer="update_angle",
    hints=[
        "Treat each update as one long vector: every number of every array in it. "
        "The angle between vectors u and v is arccos(u·v / (‖u‖ ‖v‖)).",
        "np.ravel(a) flattens an array; for a list of arrays, join the flattened "
        "pieces with np.concatenate, so one angle covers the whole list (not an "
        "average of angles, and not one angle per row).",
        "Round-off can push the cosine of parallel vectors just past 1, and "
        "np.arccos(1.0000000000000002) is nan: clip the cosine to [-1, 1] first. "
        "Return degrees (np.degrees), as a float.",
        "`u = np.concatenate([np.ravel(p) for p in a]) if isinstance(a, (list, tuple)) "
        "else np.ravel(a)` (the same for v); "
        "`c = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))`; "
        "`return float(np.degrees(np.arccos(np.clip(c, -1, 1))))`.",
    ],
)
def _check_update_angle(update_angle, rng):
    d = int(rng.integers(4, 9))
    a = rng.normal(size=d)
    b = rng.normal(size=d) + 0.5 * a
    M1 = rng.normal(size=(int(rng.integers(2, 5)), int(rng.integers(3, 6))))
    M2 = rng.normal(size=M1.shape) + 0.3 * M1
    shapes = [(int(rng.integers(2, 5)), int(rng.integers(2, 5))),
              (int(rng.integers(2, 6)),)]
    La = [rng.normal(size=s) for s in shapes]
    # the small piece points the other way: the average of the per-layer angles
    # differs from the angle of the whole update
    Lb = [La[0] + 0.2 * rng.normal(size=shapes[0]), -La[1] * 0.1]
    p = _parallel_pair_base(rng)
    cases = [(a, b, "two vectors"), (M1, M2, f"two matrices of shape {M1.shape}"),
             (La, Lb, f"two lists of arrays of shapes {shapes}"),
             (p, 2.5 * p, "parallel updates (b = 2.5 a)"),
             (a, -3 * a, "opposite updates (b = −3 a)"),
             (a, np.roll(a, 1) - (np.roll(a, 1) @ a) / (a @ a) * a,
              "perpendicular updates")]
    for u, v, label in cases:
        name = f"update_angle(a, b) for {label}"
        got = expect.call(update_angle, u, v, name=name, returns=float)
        want = _angle(u, v)
        if not np.isfinite(float(got)):
            raise CheckFailure(
                f"{name} returned {float(got)}, expected {want:.4g}",
                hint="for parallel updates round-off can make the cosine "
                     "1.0000000000000002, and arccos of that is nan: clip the cosine "
                     "to [-1, 1] with np.clip before np.arccos", kind="wrong")
        per_part = None
        if isinstance(u, list):
            per_part = float(np.mean([_angle(x, y) for x, y in zip(u, v)]))
        rows = None
        if isinstance(u, np.ndarray) and u.ndim == 2:
            rows = [_angle(x, y) for x, y in zip(u, v)]
        def near(u, v):
            return _near(u, v, 1e-6, 1e-4)            # degrees; arccos near ±1 loses digits
        expect.close(got, want, what=f"the angle for {label}", rtol=1e-6, atol=1e-4,
                     hint="θ = arccos(u·v / (‖u‖ ‖v‖)) in degrees, u and v the "
                          "flattened updates", hint_if={
            (lambda g, e: not near(np.radians(want), want)
             and near(g, np.radians(want))):
                "this is the angle in radians: return degrees, np.degrees(θ)",
            (lambda g, e: want > 90 and near(g, 180 - want)):
                "the sign of the cosine is lost (abs?): opposite updates are 180° "
                "apart, not 0°",
            (lambda g, e: per_part is not None and not near(per_part, want)
             and near(g, per_part)):
                "this is the average of the per-array angles: join all the arrays "
                "into one long vector (np.concatenate of the np.ravel'ed pieces) "
                "and take one angle",
            (lambda g, e: rows is not None and any(not near(r, want) and near(g, r)
                                                   for r in rows)):
                "this is the angle of one row: flatten the whole matrix first, "
                "np.ravel(a)",
            (lambda g, e: abs(want - 45) > 1 and near(g, 90 - want)):
                "arcsin instead of arccos? The cosine of the angle is u·v/(‖u‖‖v‖)",
        })
    return ("vectors, matrices, lists of arrays, parallel, opposite and "
            "perpendicular updates")

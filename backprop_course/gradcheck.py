"""Checking gradients against finite differences.

The central difference

    f'(x) ≈ (f(x + h) - f(x - h)) / 2h

has error O(h²) from truncation and O(ε/h) from round-off (ε ≈ 1e-16 in
float64), so h ≈ 1e-5 to 1e-6 gives about 10 correct digits.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from backprop_course.tensor import Tensor


def numerical_grad(f: Callable[[np.ndarray], float], x: np.ndarray,
                   h: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences, one entry of ``x`` at a time.

    ``f`` maps an array shaped like ``x`` to a number. Costs 2·x.size calls.
    ``x`` is restored after each probe.
    """
    if h <= 0:
        raise ValueError(f"numerical_grad: step h must be positive, got {h}")
    x = np.array(x, dtype=np.float64)          # a private float64 copy
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = float(f(x))
        x[i] = old - h
        down = float(f(x))
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(1e-8, |a| + |b|), taken entry by entry."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes {a.shape} and {b.shape} differ")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def gradcheck(f: Callable[..., Tensor], *inputs: Tensor, h: float = 1e-6) -> float:
    """Largest relative error between autograd and finite differences.

    Compares the gradient of ``f(*inputs).sum()`` with respect to every input
    that requires grad. Below ~1e-6 in float64 means the backward is right.
    """
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            hint = (" (pass the tensors as separate arguments: gradcheck(f, x, W))"
                    if isinstance(t, (list, tuple)) else "")
            raise TypeError(f"gradcheck: input {i} is a {type(t).__name__}, not a "
                            f"Tensor{hint}")
    wrt = [t for t in inputs if t.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for t in wrt:
        if t.dtype != np.float64:
            raise ValueError(f"gradcheck needs float64 inputs, got {t.dtype}")
        t.zero_grad()
    out = f(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(
            f"gradcheck: f returned a {type(out).__module__}.{type(out).__name__}, not "
            "a Tensor, so there is no graph to take the gradient of. Build f from "
            "Tensor operations (t.exp(), t @ W, t.sum()) rather than numpy functions "
            "on t.data (np.exp(t.data)), and return the Tensor")
    out.sum().backward()
    worst = 0.0
    for t in wrt:
        def f_of_t(x: np.ndarray, t: Tensor = t) -> float:
            saved, t.data = t.data, x
            try:
                return float(f(*inputs).sum().data)
            finally:
                t.data = saved
        analytic = t.grad if t.grad is not None else np.zeros_like(t.data)
        worst = max(worst, rel_error(analytic, numerical_grad(f_of_t, t.data, h)))
    return worst

"""Optimisers: turn gradients into parameter updates (PyTorch's names and maths).

The loop is always the same::

    opt = optim.Adam(net.parameters(), lr=1e-3)
    for x, y in batches:
        opt.zero_grad()                 # gradients accumulate otherwise
        loss = losses.cross_entropy(net(x), y)
        loss.backward()                 # fills p.grad for every parameter p
        opt.step()                      # p.data changes, p.grad is read

Each ``step()`` reads like its update rule: ``p.data = p.data - lr * v``
makes a new array and assigns it, so an array you kept (``w0 = p.data``) keeps
the old numbers, and a graph that saved the old weights refuses a later
``backward()`` (the step came between its forward and backward pass; see
:mod:`backprop_course.tensor`). Parameters whose ``grad`` is None (not used by
the loss) are left alone.
"""
from __future__ import annotations

import math
from typing import Iterable, Union

import numpy as np

from backprop_course.arguments import fraction, positive
from backprop_course.tensor import Tensor

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "clip_grad_norm_"]

Params = Union[Tensor, Iterable[Tensor]]


def _param_list(params: Params, who: str) -> list[Tensor]:
    if hasattr(params, "parameters") and not isinstance(params, Tensor):
        raise TypeError(f"{who} got a {type(params).__name__} module: pass its "
                        f"parameters, {who}(net.parameters(), ...)")
    try:
        params = [params] if isinstance(params, Tensor) else list(params)
    except TypeError:
        raise TypeError(f"{who}: params must be a list of Tensors (net.parameters()), "
                        f"got {type(params).__name__}") from None
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{who}: parameter {i} is a {type(p).__name__}, not a "
                            "Tensor (pass net.parameters())")
    return params


class Optimizer:
    """Holds the parameters to update; subclasses define ``step()``."""

    def __init__(self, params: Params, lr: float) -> None:
        who = type(self).__name__
        self.params = _param_list(params, who)
        if not self.params:
            raise ValueError(f"{who}: got an empty parameter list")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{who}: a parameter appears twice in the list; it "
                             "would be updated twice per step")
        for i, p in enumerate(self.params):
            if not p.requires_grad:
                raise ValueError(f"{who}: parameter {i} (shape {p.shape}) has "
                                 "requires_grad=False, so it never gets a gradient")
        self.lr = positive(lr, "lr", who)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient before the next backward()."""
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define step()")


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (heavy-ball) momentum.

        v ← μ v + g          (v starts at 0; μ = momentum)
        p ← p - lr · v

    With μ = 0 this is p ← p - lr · g. This is PyTorch's form; Rumelhart et
    al. (1986) write Δw ← -ε g + α Δw, the same update with v = -Δw / ε.
    """

    def __init__(self, params: Params, lr: float, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = fraction(momentum, "momentum", "SGD")
        self.velocity = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if self.momentum:
                self.velocity[i] = self.momentum * self.velocity[i] + p.grad
                p.data = p.data - self.lr * self.velocity[i]
            else:
                p.data = p.data - self.lr * p.grad


class RMSprop(Optimizer):
    """Divide each gradient by a running root-mean-square of its recent values.

        s ← α s + (1 - α) g²          (s starts at 0)
        p ← p - lr · g / (√s + ε)

    Every parameter gets a step of about lr whatever the scale of its
    gradient (Hinton, Coursera lecture 6e, 2012; PyTorch's defaults).
    """

    def __init__(self, params: Params, lr: float = 0.01, alpha: float = 0.99,
                 eps: float = 1e-8) -> None:
        super().__init__(params, lr)
        self.alpha = fraction(alpha, "alpha", "RMSprop")
        self.eps = positive(eps, "eps", "RMSprop")
        self.square_avg = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            s = self.alpha * self.square_avg[i] + (1 - self.alpha) * g * g
            self.square_avg[i] = s
            p.data = p.data - self.lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    """Momentum on the gradient and RMSprop's scaling, with bias correction.

        m ← β₁ m + (1 - β₁) g          v ← β₂ v + (1 - β₂) g²    (both start at 0)
        m̂ = m / (1 - β₁ᵗ)              v̂ = v / (1 - β₂ᵗ)          (t = 1, 2, ...)
        p ← p - lr · m̂ / (√v̂ + ε)

    Without the correction the first steps would be too small, since m and v
    start at 0 (Kingma & Ba 2015).
    """

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), "
                             f"got {betas!r}")
        self.beta1 = fraction(betas[0], "betas[0]", "Adam")
        self.beta2 = fraction(betas[1], "betas[1]", "Adam")
        self.eps = positive(eps, "eps", "Adam")
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self.steps = [0] * len(self.params)      # t, counted per parameter

    def step(self) -> None:
        b1, b2 = self.beta1, self.beta2
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            self.steps[i] += 1
            t = self.steps[i]
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            m_hat = self.m[i] / (1 - b1 ** t)
            v_hat = self.v[i] / (1 - b2 ** t)
            p.data = p.data - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def clip_grad_norm_(params: Params, max_norm: float) -> float:
    """Scale all gradients together so their joint L2 norm is at most ``max_norm``.

        total = √(Σ_p ‖p.grad‖²)
        if total > max_norm:  p.grad ← p.grad · max_norm / total   (every p)

    The direction of the full gradient is kept, only its length is capped.
    Returns ``total`` measured *before* clipping (worth logging: it shows
    exploding gradients). Gradients are replaced by new arrays, never written
    into. (PyTorch divides by total + 1e-6; we divide by total exactly.)
    """
    params = _param_list(params, "clip_grad_norm_")
    max_norm = positive(max_norm, "max_norm", "clip_grad_norm_")
    grads = {i: p.grad for i, p in enumerate(params) if p.grad is not None}
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64)))
                          for g in grads.values()))
    if total > max_norm:
        for i, g in grads.items():
            params[i].grad = g * (max_norm / total)   # a new array, of g's dtype
    return total

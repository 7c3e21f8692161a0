"""How the gradient reaches each layer of a deep network: the maths behind depth_explorer.

Backpropagation multiplies the gradient, layer after layer, by each layer's
local Jacobian: for z_l = a_{l-1} W_l + b_l and a_l = f(z_l),

    dL/da_{l-1} = (dL/da_l ⊙ f'(z_l)) W_lᵀ,        dL/dW_l = a_{l-1}ᵀ (dL/da_l ⊙ f'(z_l))

so after L layers the gradient at the input side carries a product of L
factors of roughly |f'| · (weight scale · √width). Below 1 it vanishes
exponentially with depth (sigmoid: f' ≤ 0.25), above 1 it explodes. Xavier
and He initialisation choose the weight scale that keeps the product near 1
for tanh and ReLU; a residual connection x + F(x) adds an identity path, so
the gradient reaches early layers even when F's factor is tiny.

:func:`gradient_flow` builds the same deep MLP for any depth, activation,
initialisation and residual setting, and measures ‖dL/dW_l‖ for every layer
at initialisation and after a few SGD steps.

>>> plain = gradient_flow(depth=20, activation="sigmoid", init="naive")
>>> f"{plain.first_to_last:.0e}"          # layer 1 gets 10^-35 of layer 20's gradient
'1e-35'
>>> skip = gradient_flow(depth=20, activation="sigmoid", init="naive", residual=True)
>>> f"{skip.first_to_last:.2f}"
'0.02'
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from backprop_course import arguments, losses, nn, optim
from backprop_course.tensor import Tensor

__all__ = ["GradientFlow", "gradient_flow", "ACTIVATIONS", "INITS", "task"]

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
INITS = ("naive", "xavier", "he")


@dataclass
class GradientFlow:
    """Per-layer measurements of one deep MLP (layer 1 = next to the input).

    ``grad_norms_init[l-1]``  ‖dL/dW_l‖ (Frobenius) at initialisation
    ``grad_norms_after[l-1]`` the same after ``steps`` SGD steps
    ``activation_std[l-1]``   std of layer l's output at initialisation
                              (z_l = a_{l-1} W_l + b_l; with residual on, the
                              residual stream x_l)
    ``losses``                loss before each step and after the last one
    Non-finite numbers (a net that blew up) are stored as ``nan``.
    """
    depth: int
    activation: str
    init: str
    residual: bool
    residual_scale: float
    width: int
    steps: int
    lr: float
    grad_norms_init: np.ndarray
    grad_norms_after: np.ndarray
    activation_std: np.ndarray
    losses: np.ndarray

    @property
    def first_to_last(self) -> float:
        """‖dL/dW_1‖ / ‖dL/dW_L‖ at initialisation: ≪ 1 means vanishing."""
        first, last = self.grad_norms_init[0], self.grad_norms_init[-1]
        return float(first / last) if last > 0 else math.nan

    @property
    def diverged(self) -> bool:
        return not bool(np.all(np.isfinite(self.losses)))


def _grad_of(p: Tensor) -> np.ndarray:
    """p.grad, or zeros if the loss did not reach p."""
    return np.zeros_like(p.data) if p.grad is None else p.grad


def task(width: int = 32, batch: int = 128, seed: int = 0
         ) -> tuple[np.ndarray, np.ndarray]:
    """The fixed problem every depth is measured on.

    ``batch`` inputs x ~ N(0, I) of dimension ``width``, each labelled with
    one of ``width`` classes by a random linear "teacher" (argmax x T). Inputs,
    hidden layers and outputs all have ``width`` units, so every W_l has the
    same shape and the gradient norms of all layers compare directly.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, width))
    teacher = rng.standard_normal((width, width))
    return X, np.argmax(X @ teacher, axis=1)


def gradient_flow(depth: int, activation: str = "relu", init: str = "he",
                  residual: bool = False, steps: int = 5, lr: float = 0.05,
                  width: int = 32, batch: int = 128, seed: int = 0,
                  residual_scale: Optional[float] = None) -> GradientFlow:
    """Build a ``depth``-layer MLP and measure the gradient norm of every layer.

    The network is ``MLP([width] * (depth + 1), activation, init, residual)``
    on :func:`task` with cross-entropy loss, weights drawn from ``seed`` (so
    the picture depends only on the arguments). With ``residual=True`` each
    hidden layer becomes x + s·F(x), F = Linear ∘ activation, with
    s = ``residual_scale`` (default 1/√depth, which keeps the sum of depth
    branches from growing exponentially without normalisation layers).
    """
    depth = arguments.integer(depth, "depth", minimum=1)
    activation = arguments.choice(activation, ACTIVATIONS, "activation")
    init = arguments.choice(init, INITS, "init")
    steps = arguments.integer(steps, "steps", minimum=0)
    scale = 1.0 / math.sqrt(depth) if residual_scale is None else float(residual_scale)
    net = nn.MLP([width] * (depth + 1), activation=activation, init=init,
                 residual=bool(residual), residual_scale=scale, rng=seed)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    X, y = task(width, batch, seed)
    x_in = Tensor(X)
    sgd = optim.SGD(net.parameters(), lr=lr)

    def loss_and_grads(record: Optional[list[float]] = None) -> tuple[float, np.ndarray]:
        sgd.zero_grad()
        h = x_in
        for module in net.layers:
            h = module(h)
            if record is not None and isinstance(module, (nn.Linear, nn.Residual)):
                record.append(float(np.std(h.data)))
        loss = losses.cross_entropy(h, y)
        value = loss.item()
        if not math.isfinite(value):
            return math.nan, np.full(depth, np.nan)
        loss.backward()
        norms = np.array([np.linalg.norm(_grad_of(m.weight)) for m in linears])
        return value, np.where(np.isfinite(norms), norms, np.nan)

    history: list[float] = []
    stds: list[float] = []
    with np.errstate(all="ignore"):
        loss, norms_init = loss_and_grads(stds)
        norms = norms_init
        history.append(loss)
        for _ in range(steps):
            if not math.isfinite(loss):
                history.append(math.nan)
                continue
            sgd.step()
            loss, norms = loss_and_grads()
            history.append(loss)
    return GradientFlow(
        depth=depth, activation=activation, init=init, residual=bool(residual),
        residual_scale=scale if residual else 1.0, width=width, steps=int(steps),
        lr=float(lr), grad_norms_init=norms_init, grad_norms_after=norms,
        activation_std=np.array(stds), losses=np.array(history))

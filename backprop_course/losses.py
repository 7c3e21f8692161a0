"""Loss functions: one number that says how wrong the network is.

``mse`` and ``sse`` are built from Tensor operations, so ``loss.backward()``
needs no code of theirs. ``cross_entropy`` is one node with the backward
lesson 03 derives by hand (its docstring says why). Names follow PyTorch
(``torch.nn.functional``).

>>> import numpy as np
>>> from backprop_course import Tensor
>>> logits = Tensor([[2.0, 0.0, 0.0]], requires_grad=True)
>>> round(cross_entropy(logits, np.array([0])).item(), 4)   # -log(e²/(e²+2))
0.2395
"""
from __future__ import annotations

from typing import Any, Union

import numpy as np

from backprop_course.tensor import Tensor, as_tensor, stable_log_softmax

__all__ = ["mse", "sse", "cross_entropy"]


def _check_same_shape(pred: Tensor, target: Tensor, name: str) -> None:
    # Broadcasting would be a silent bug here: pred (N, 1) - target (N,) is (N, N).
    if pred.shape != target.shape:
        raise ValueError(f"{name}: pred has shape {pred.shape} but target has shape "
                         f"{target.shape}; they must match (reshape one of them)")


def mse(pred: Tensor, target: Union[Tensor, np.ndarray]) -> Tensor:
    """Mean squared error, averaged over every entry:

        L = (1/n) Σᵢ (predᵢ - targetᵢ)²,   dL/dpredᵢ = (2/n) (predᵢ - targetᵢ)
    """
    pred, target = as_tensor(pred), as_tensor(target)
    _check_same_shape(pred, target, "mse")
    return ((pred - target) ** 2).mean()


def sse(pred: Tensor, target: Union[Tensor, np.ndarray]) -> Tensor:
    """Sum of squared errors over every entry (no mean, no ½):

        E = Σᵢ (predᵢ - targetᵢ)²,   dE/dpredᵢ = 2 (predᵢ - targetᵢ)

    Rumelhart, Hinton & Williams (1986) write E = ½ Σ (y - d)², whose
    gradient is (y - d): to use their learning rates, minimise ``0.5 * sse``.
    """
    pred, target = as_tensor(pred), as_tensor(target)
    _check_same_shape(pred, target, "sse")
    return ((pred - target) ** 2).sum()


def _check_labels(labels: Any, n: int, n_classes: int) -> np.ndarray:
    """Class indices as an int array of shape (n,), each in [0, n_classes)."""
    if isinstance(labels, Tensor):                 # Tensors hold floats: 3.0 means 3
        values = labels.data
        if not np.all(values == np.round(values)):
            raise TypeError("cross_entropy: labels must be whole numbers "
                            "(class indices)")
        labels = values.astype(np.int64)
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        hint = (" One-hot targets? Pass labels.argmax(axis=1)." if labels.ndim == 2
                else " Convert with labels.astype(int).")
        raise TypeError(f"cross_entropy: labels must be integer class indices, got "
                        f"dtype {labels.dtype}.{hint}")
    if labels.shape != (n,):
        raise ValueError(f"cross_entropy: labels must have shape ({n},), one class "
                         f"index per row of logits, got shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= n_classes:
        bad = (labels < 0) | (labels >= n_classes)
        raise ValueError(f"cross_entropy: labels must be in 0..{n_classes - 1} for "
                         f"{n_classes} classes; got {labels[bad][0]} "
                         f"(at index {int(np.flatnonzero(bad)[0])})")
    return labels


def cross_entropy(logits: Tensor, labels: Union[np.ndarray, list, Tensor]) -> Tensor:
    """Softmax cross-entropy from raw scores, averaged over the batch.

    For logits z of shape (N, C) and integer labels y of shape (N,):

        L = -(1/N) Σₙ log softmax(zₙ)[yₙ],   log softmax(z)ₖ = zₖ - log Σⱼ e^zⱼ
        dL/dzₙ = (softmax(zₙ) - onehot(yₙ)) / N

    ``log_softmax`` subtracts each row's max first, so logits like 1000 give
    finite numbers (e^1000 would overflow to inf).

    The loss is one node whose backward is the formula above: lesson 03's
    formula, which learners derive by hand (softmax minus one-hot, over N),
    so the engine's cross-entropy is the very maths they wrote. Built from
    Tensor ops it would read

        onehot = np.eye(C)[y]
        L = -(logits.log_softmax(axis=1) * onehot).sum() / N

    with the same numbers (tests/test_losses.py checks that).
    """
    logits = as_tensor(logits)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, C), one row of "
                         f"class scores per example, got shape {logits.shape}")
    n, n_classes = logits.shape
    if n == 0:
        raise ValueError("cross_entropy: the batch is empty (logits have 0 rows), "
                         "so there is no average to take")
    labels = _check_labels(labels, n, n_classes)
    log_probs = stable_log_softmax(logits.data, axis=1)
    rows = np.arange(n)
    loss = -log_probs[rows, labels].sum() / n       # -(1/N) Σ log p(correct class)

    def backward(grad: np.ndarray) -> None:         # (softmax - onehot) / N, times g
        dz = np.exp(log_probs)                      # softmax, a new array of our own
        dz[rows, labels] -= 1
        dz *= grad / n
        logits._accumulate(dz)
    return logits._child(np.asarray(loss), (logits,), "cross_entropy", backward,
                         saved=(log_probs,))

"""Gradient checkpointing: keep less for the backward pass, recompute the rest.

Lesson 07. A graph keeps every intermediate array until backward has used it
(:mod:`backprop_course.memory` measures how much). ``checkpoint(fn, *inputs)``
runs ``fn`` *without* recording a graph and keeps only its inputs and its
output. When the backward pass reaches the output, it runs ``fn`` again, this
time with a graph, on fresh leaves holding the same input data, and
backpropagates the incoming gradient through that short-lived graph:

    forward:   y = fn(x)                        under no_grad: fn's insides dropped
    backward:  x' = x.detach() (requires grad)  y' = fn(x')   (a graph, again)
               y'.backward(dL/dy)               x.grad += x'.grad; the graph is dropped

The gradients are those of the plain graph; the cost is one more forward pass
of ``fn``. Cutting a chain of n layers into segments of k layers keeps n/k
segment inputs plus, during backward, one segment's graph of k layers: least
(about 2√n layers' worth) for k ≈ √n (Chen, Xu, Zhang & Guestrin 2016,
"Training deep nets with sublinear memory cost", arXiv:1604.06174; the idea
goes back to Griewank 1992 and his revolve algorithm, Griewank & Walther
2000). :func:`checkpoint_sequential` does that cut for an ``nn.Sequential``.

Names and behaviour follow ``torch.utils.checkpoint``. ``fn`` must compute the
same thing both times: no randomness, and nothing (inputs, weights) changed in
between; the recomputed output is compared with the first one, and a
difference is an error.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backprop_course.tensor import Tensor, is_grad_enabled, no_grad

__all__ = ["checkpoint", "checkpoint_sequential", "segment_sizes"]


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _parameters_of(fn: Any) -> tuple[Tensor, ...]:
    """The parameters ``fn`` reads, when it says: a Module or a Module's method."""
    is_module = hasattr(fn, "parameters") and callable(fn)
    owner = fn if is_module else getattr(fn, "__self__", None)
    if owner is not None and hasattr(owner, "parameters"):
        return tuple(p for p in owner.parameters() if isinstance(p, Tensor))
    return ()


def _call(fn: Callable[..., Any], args: Sequence[Any], who: str) -> Tensor:
    out = fn(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"checkpoint: {who} must return one Tensor, got "
                        f"{type(out).__name__}" + (
                            "; checkpoint each output separately, or return one Tensor"
                            if isinstance(out, (tuple, list)) else ""))
    return out


def checkpoint(fn: Callable[..., Tensor], *inputs: Any) -> Tensor:
    """``fn(*inputs)``, computed without keeping ``fn``'s intermediate arrays.

    Returns one Tensor with the value of ``fn(*inputs)``. Its graph node
    remembers only ``inputs`` and the output; its backward recomputes ``fn``
    with a graph and passes the gradient on to the Tensors in ``inputs`` and
    to every parameter ``fn`` reads (leaves reached by the recomputed graph
    accumulate their ``.grad`` as usual). Inputs that are not Tensors (arrays,
    numbers, flags) are passed to ``fn`` as they are.

    ``fn`` must return one Tensor and be deterministic. If no Tensor input
    requires a gradient and ``fn`` is not an ``nn.Module`` (or a method of one),
    checkpoint cannot know which parameters ``fn`` reads: it then runs ``fn``
    with a full graph (right gradients, no memory saved) and warns if that graph
    needed one.
    """
    if not callable(fn):
        raise TypeError(f"checkpoint: the first argument must be the function to run, "
                        f"got {type(fn).__name__}: checkpoint(fn, x), "
                        "not checkpoint(fn(x))")
    who = f"fn ({_name(fn)})"
    if not is_grad_enabled():                    # no graph wanted: nothing to save
        return _call(fn, inputs, who)
    tensors = tuple(t for t in inputs if isinstance(t, Tensor))
    params = _parameters_of(fn)
    wants_grad = any(t.requires_grad for t in tensors + params)
    if not wants_grad:
        if params:                               # a Module whose weights need no grad
            with no_grad():
                return _call(fn, inputs, who)
        out = _call(fn, inputs, who)             # which parameters fn reads is unknown
        if out.requires_grad:
            warnings.warn(
                f"checkpoint: no input of {who} requires grad, so checkpoint could not "
                "tell which parameters it reads and recorded the whole graph (no memory "
                "saved). Pass a Module (or its method) as fn, or an input with "
                "requires_grad=True", stacklevel=2)
        return out
    with no_grad():
        expected = _call(fn, inputs, who).data     # the value; fn's insides are gone

    def _backward(grad: np.ndarray) -> None:
        if not is_grad_enabled():
            raise RuntimeError("checkpoint: backward() ran inside no_grad(), but the "
                               "checkpointed segment must be recomputed with a graph: "
                               "call backward() outside `with no_grad():`")
        fresh = [Tensor(a.data, requires_grad=a.requires_grad)
                 if isinstance(a, Tensor) else a for a in inputs]
        again = _call(fn, fresh, who)
        if again.shape != expected.shape or not np.allclose(
                again.data, expected, atol=0.0, equal_nan=True,
                rtol=1e-9 if expected.dtype == np.float64 else 1e-5):
            diff = (f"{np.max(np.abs(again.data - expected)):.3g}"
                    if again.shape == expected.shape
                    else f"shape {again.shape} vs {expected.shape}")
            raise RuntimeError(
                f"checkpoint: recomputing {who} in the backward pass gave a different "
                f"output than the forward pass (largest difference {diff}). fn must be "
                "deterministic, and its inputs and weights must not change between "
                "forward and backward (no randomness such as dropout, no in-place edits)")
        if again.requires_grad:
            again.backward(grad)                 # parameters accumulate here
        for original, leaf in zip(inputs, fresh):
            if isinstance(original, Tensor) and original.requires_grad \
                    and leaf.grad is not None:
                original._accumulate(leaf.grad)

    node_inputs = tensors + tuple(p for p in params if not any(p is t for t in tensors))
    return node_inputs[0]._child(expected, node_inputs, "checkpoint", _backward,
                                 tuple(t.data for t in tensors))


def segment_sizes(n: int, segments: int | None = None) -> list[int]:
    """Sizes of ``segments`` consecutive pieces of a chain of ``n`` (as equal as
    possible, longer ones first); by default ``round(√n)`` pieces.

    >>> segment_sizes(16), segment_sizes(10, 3)
    ([4, 4, 4, 4], [4, 3, 3])
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"segment_sizes: n must be a positive integer, got {n!r}")
    if segments is None:
        segments = max(1, round(math.sqrt(n)))
    if isinstance(segments, bool) or not isinstance(segments, (int, np.integer)) \
            or not 1 <= segments <= n:
        raise ValueError(f"segment_sizes: segments must be an integer from 1 to n = {n}, "
                         f"got {segments!r}")
    base, extra = divmod(int(n), int(segments))
    return [base + 1] * extra + [base] * (int(segments) - extra)


def checkpoint_sequential(model: Any, segments: int | None, x: Any) -> Tensor:
    """Run an ``nn.Sequential`` in ``segments`` checkpointed pieces.

    As ``torch.utils.checkpoint.checkpoint_sequential``: the layers are cut into
    ``segments`` consecutive pieces (see :func:`segment_sizes`; ``None`` means
    about √(number of layers)); each but the last runs under :func:`checkpoint`,
    so only the pieces' inputs are kept; the last piece runs normally, since
    backward needs its graph at once. ``segments = len(model)`` checkpoints
    every layer but the last.
    """
    layers = getattr(model, "layers", None)
    if not isinstance(layers, list) or not hasattr(model, "__getitem__"):
        raise TypeError("checkpoint_sequential needs an nn.Sequential (a chain of layers), "
                        f"got {type(model).__name__}; for any other function use "
                        "checkpoint(fn, x)")
    if not layers:
        raise ValueError("checkpoint_sequential: the Sequential has no layers")
    sizes = segment_sizes(len(layers), segments)
    start = 0
    for i, size in enumerate(sizes):
        piece = model[start:start + size]
        x = piece(x) if i == len(sizes) - 1 else checkpoint(piece, x)
        start += size
    return x

"""What a graph costs in memory: the arrays it keeps alive for its backward pass.

Lesson 07. A forward pass without a graph (``with no_grad():``) can drop each
layer's output as soon as the next layer has read it. A forward pass that
records a graph cannot: every node keeps its output ``.data`` and the arrays
its backward reads (``._saved``), and every node is held by the nodes computed
from it (``._prev``), so the whole graph lives as long as its root, the loss.

:func:`graph_memory` walks a graph and adds up the bytes of every distinct
numpy buffer it reaches; :func:`measure_peak` measures, with ``tracemalloc``,
the peak memory a piece of code allocates while it runs.

>>> import numpy as np
>>> from backprop_course import Tensor
>>> x = Tensor(np.ones((100, 10)), requires_grad=True)     # 8,000 bytes
>>> y = (x * 3).relu()             # two outputs and a mask: 8,000 + 8,000 + 1,000
>>> m = graph_memory(y)
>>> m.leaf_bytes, m.activation_bytes, m.grad_bytes
(8008, 17000, 0)
"""
from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from backprop_course.graph import topological_order
from backprop_course.tensor import Tensor

__all__ = ["GraphMemory", "buffer_owner", "graph_bytes", "graph_memory", "measure_peak"]


def buffer_owner(array: np.ndarray) -> tuple[int, int, Any]:
    """``(key, nbytes, owner)`` of the memory block ``array`` lives in.

    A view (``x.T``, ``x.reshape(...)``, ``x[1:]``) shares its memory with the
    array it was made from and keeps all of it alive, however small the view:
    numpy records that array in ``view.base``. Follow ``.base`` to the array
    that owns the block; two arrays with the same key share one buffer, which
    is counted once, at the owner's full size. An owner whose memory came from
    another object (``np.frombuffer(b)``) is keyed by that object.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"buffer_owner needs a numpy array, got {type(array).__name__}")
    owner = array
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    holder = owner if owner.base is None else owner.base
    return id(holder), int(owner.nbytes), holder


@dataclass(frozen=True)
class GraphMemory:
    """Bytes of the distinct numpy buffers a graph reaches, by who holds them.

    ``leaf_bytes``        ``.data`` and ``.grad`` of the leaves: inputs, parameters
                          and constants. Parameters and inputs exist without a
                          graph too; a constant like the 2 in ``x * 2`` is a
                          0-d leaf the graph made.
    ``activation_bytes``  ``.data`` of every non-leaf node and every array in a
                          node's ``._saved``, not already counted as a leaf's:
                          what the forward pass keeps for the backward pass.
    ``grad_bytes``        ``.grad`` of the non-leaf nodes (set by ``backward()``),
                          not counted above.
    ``nodes``, ``leaves`` how many Tensors the graph has, and how many are leaves.

    Each buffer is counted once (see :func:`buffer_owner`), in the first of the
    three groups that reaches it. ``total`` is their sum: what the graph keeps
    alive while someone holds its root. Python objects (the Tensor objects,
    closures, tuples: a few hundred bytes per node) are not counted.
    """

    leaf_bytes: int
    activation_bytes: int
    grad_bytes: int
    nodes: int
    leaves: int

    @property
    def total(self) -> int:
        return self.leaf_bytes + self.activation_bytes + self.grad_bytes

    @property
    def graph_only_bytes(self) -> int:
        """``activation_bytes + grad_bytes``: what dropping the graph frees when
        the leaves (parameters, inputs) stay alive."""
        return self.activation_bytes + self.grad_bytes

    def __str__(self) -> str:
        return (f"{self.nodes} nodes ({self.leaves} leaves): "
                f"leaves {_mb(self.leaf_bytes)}, "
                f"activations {_mb(self.activation_bytes)}, grads {_mb(self.grad_bytes)}, "
                f"total {_mb(self.total)}")


def _mb(n: int) -> str:
    return f"{n / 1e6:.3f} MB" if n >= 100_000 else f"{n:,} B"


def graph_memory(root: Tensor) -> GraphMemory:
    """Walk the graph that ends at ``root`` and count the bytes it keeps alive.

    Every Tensor ``root`` was computed from is visited once (through ``._prev``).
    Counted, each distinct buffer once: leaves' ``.data`` and ``.grad``; then
    non-leaf nodes' ``.data`` and ``._saved`` arrays; then non-leaf ``.grad``.
    See :class:`GraphMemory` for the groups. ``root`` may be a leaf (then only
    the first group is non-zero).
    """
    if not isinstance(root, Tensor):
        hint = (" (a Value graph holds Python floats, not numpy arrays)"
                if hasattr(root, "_prev") else "")
        raise TypeError(f"graph_memory needs the Tensor at the end of a graph (e.g. the "
                        f"loss), got {type(root).__name__}{hint}")
    order = topological_order(root)
    leaves = [t for t in order if not t._prev]
    inner = [t for t in order if t._prev]
    seen: dict[int, Any] = {}      # key -> owner, kept referenced so ids stay unique

    def count(arrays: Iterable[Any]) -> int:
        total = 0
        for a in arrays:
            if not isinstance(a, np.ndarray):
                continue
            key, nbytes, holder = buffer_owner(a)
            if key not in seen:
                seen[key] = holder
                total += nbytes
        return total

    leaf_bytes = count(a for t in leaves for a in (t.data, t.grad))
    activation_bytes = count(a for t in inner for a in (t.data, *t._saved))
    grad_bytes = count(t.grad for t in inner)
    return GraphMemory(leaf_bytes, activation_bytes, grad_bytes, len(order), len(leaves))


def graph_bytes(root: Tensor) -> int:
    """Bytes of every distinct array the graph ending at ``root`` keeps alive
    (``graph_memory(root).total``: leaves, activations and saved arrays, grads)."""
    return graph_memory(root).total


def measure_peak(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Run ``fn(*args, **kwargs)``; return ``(its result, peak bytes)``.

    The peak is the largest amount of memory, above what was allocated when
    ``fn`` started, that was allocated at any moment while it ran, as
    ``tracemalloc`` sees it (numpy reports its array buffers to tracemalloc;
    Python objects count too). Memory that ``fn`` frees before it returns still
    counts if it was live at the peak. Garbage is collected first, so leftovers
    of earlier code do not move the baseline. Tracing slows Python code down:
    time ``fn`` separately.

    tracemalloc only sees memory allocated while it traces. If ``fn`` replaces
    arrays made before tracing began (a parameter's ``.grad``: ``g = g + dg``),
    the new ones count and the freed old ones do not: for exact numbers call
    ``tracemalloc.start()`` before making them (measure_peak then uses that
    trace and leaves it running).
    """
    if not callable(fn):
        raise TypeError(f"measure_peak needs a function to run, got {type(fn).__name__}")
    was_tracing = tracemalloc.is_tracing()
    gc.collect()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        result = fn(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return result, peak - start

"""The one graph algorithm backpropagation needs: a topological order.

A node is anything with a ``_prev`` tuple holding the nodes it was computed
from (both :class:`~backprop_course.Value` and :class:`~backprop_course.Tensor`
are). Reverse mode visits nodes in *reverse* topological order, so that a
node's gradient is complete before it is passed on to its children.
"""
from __future__ import annotations

from typing import Any


def topological_order(root: Any) -> list[Any]:
    """Return every node ``root`` depends on, each after all of its inputs.

    Iterative depth-first search (no recursion, so a chain far deeper than
    Python's recursion limit works). A node reached along several paths appears
    once. The stack holds ``(node, expanded)`` pairs: a node is emitted on its
    second visit, once all of its inputs have been emitted; a leaf (no inputs)
    as soon as it is found.
    """
    order: list[Any] = []
    visited: set[Any] = set()      # nodes hash by identity: neither class has __eq__
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for child in node._prev:
            if child in visited:
                continue
            if child._prev:
                stack.append((child, False))
            else:                       # a leaf has no inputs to wait for
                visited.add(child)
                order.append(child)
    return order

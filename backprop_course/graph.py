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

    Iterative depth-first search (no recursion, so a chain of a million nodes
    works). A node reached along several paths appears once. The stack holds
    ``(node, expanded)`` pairs: a node is emitted on its second visit, once all
    of its inputs have been emitted.
    """
    order: list[Any] = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for child in node._prev:
            if id(child) not in visited:
                stack.append((child, False))
    return order

"""Drawings of what backpropagation does, in plain matplotlib.

``draw_graph`` draws the computational graph of a :class:`~backprop_course.Value`
expression: every Value is a box showing its label, its ``data`` (forward
pass) and its ``grad`` (backward pass); every operation is a small circle
between its inputs and its result. Columns follow topological depth, inputs
on the left and the output on the right, so the picture reads like the
forward pass and the gradients flow back from right to left.

No graphviz: the layout is computed here, so the drawing renders wherever
matplotlib does (JupyterLab, Notebook 7, VS Code, nbconvert, a script).

The figures made here are not registered with ``pyplot``: in a notebook,
make the returned figure the last expression of a cell (or ``display(fig)``)
and it is shown exactly once; in a script use ``fig.savefig("graph.png")``.
"""
from __future__ import annotations

import io
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, FancyArrowPatch, FancyBboxPatch
from matplotlib.text import Text

from matplotlib.backends.backend_agg import FigureCanvasAgg
from backprop_course.graph import topological_order

# ----------------------------------------------------------------- geometry
_COLUMN = 3.6        # distance between two columns of Value boxes (data units)
_ROW = 1.0           # distance between two rows
_BOX_W = 2.1         # Value box width and height
_BOX_H = 0.78
_OP_X = 1.75         # an op circle sits this far left of its result
_OP_R = 0.27         # op circle radius
_INCH_X = 0.56       # inches per data unit, so text fits the boxes
_INCH_Y = 0.80
_MAX_W, _MAX_H = 16.0, 11.0   # larger graphs are scaled down (fonts too)

_LEAF_COLOR = "#dbe9f6"      # inputs
_INNER_COLOR = "#f2f2f2"     # intermediate results
_ROOT_COLOR = "#dff0d8"      # the output
_OP_COLOR = "#fff3c4"
_GRAD_COLOR = "#b5331f"      # gradients in red: they flow backwards


class CourseFigure(Figure):
    """A matplotlib Figure that Jupyter shows as a PNG when a cell returns it.

    Not registered with pyplot, so it is shown once (not twice), is never
    left open, and needs no particular matplotlib backend.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)

    def to_png(self, dpi: Optional[float] = None) -> bytes:
        """The figure as PNG bytes (Agg renderer)."""
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=dpi or self.dpi)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.to_png()


def _is_value_graph_node(node: Any) -> bool:
    return hasattr(node, "_prev") and hasattr(node, "data")


@dataclass
class GraphLayout:
    """Where every node of a graph goes (pure geometry, no matplotlib).

    ``nodes`` is the topological order (inputs first); ``column[i]`` and
    ``row[i]`` place ``nodes[i]``; ``inputs[i]`` lists the indices of the
    nodes it was computed from (repeated when a node is used twice, as in
    ``x * x``).
    """
    nodes: list[Any]
    column: list[int]
    row: list[float]
    inputs: list[list[int]]

    @property
    def ncolumns(self) -> int:
        return max(self.column) + 1

    def signature(self) -> tuple:
        """The graph's shape: same signature means same drawing, other numbers."""
        return tuple((getattr(n, "_op", ""), tuple(i)) for n, i in
                     zip(self.nodes, self.inputs))


def layout_graph(root: Any) -> GraphLayout:
    """Place the nodes of ``root``'s graph in columns and rows.

    Columns: the output is rightmost and every other node goes one column
    left of its leftmost use (longest path to the output), so every edge
    points right and a value used late is drawn next to its use. Rows: a few sweeps that move every node towards the
    mean height of its neighbours (barycentre heuristic), keeping one row of
    space between boxes, so edges are short and rarely cross.
    """
    if not _is_value_graph_node(root):
        raise TypeError(
            f"draw_graph needs a Value (or Tensor) expression, got {type(root).__name__}")
    nodes = topological_order(root)
    index = {id(n): i for i, n in enumerate(nodes)}
    inputs = [[index[id(c)] for c in n._prev] for n in nodes]
    users: list[list[int]] = [[] for _ in nodes]
    for i, ins in enumerate(inputs):
        for j in ins:
            if i not in users[j]:
                users[j].append(i)

    # Column: as far right as possible (longest path *to the output*), so a
    # number computed early but used late, or an input used late, sits next
    # to its use instead of trailing a long edge across the picture.
    to_root = [0] * len(nodes)
    for i in reversed(range(len(nodes))):     # users come after i in the order
        if users[i]:
            to_root[i] = 1 + max(to_root[u] for u in users[i])
    column = [max(to_root) - d for d in to_root]

    # Order inside a column: depth-first, inputs in the order they were
    # written (x before y in x + y), so an expression tree draws without
    # crossings and reads top to bottom like the formula.
    rank = _written_order(root, nodes, index)
    by_column: dict[int, list[int]] = {}
    for i in sorted(range(len(nodes)), key=lambda i: rank[i]):
        by_column.setdefault(column[i], []).append(i)
    row = [0.0] * len(nodes)
    for members in by_column.values():
        for k, i in enumerate(members):
            row[i] = (k - (len(members) - 1) / 2) * _ROW

    columns = sorted(by_column)
    for _ in range(8):
        for sweep in (columns, columns[::-1]):
            for c in sweep:
                members = by_column[c]
                wanted = []
                for i in members:
                    near = [row[j] for j in inputs[i]] + [row[u] for u in users[i]]
                    wanted.append(float(np.mean(near)) if near else row[i])
                for i, y in zip(members, _spaced_fit(wanted, _ROW)):
                    row[i] = y
    low = min(row)
    row = [r - low for r in row]
    return GraphLayout(nodes=nodes, column=column, row=row, inputs=inputs)


def _written_order(root: Any, nodes: list[Any], index: dict[int, int]) -> list[int]:
    """Rank of each node in a depth-first walk that visits inputs left to right."""
    rank = [0] * len(nodes)
    done: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    counter = 0
    while stack:
        node, expanded = stack.pop()
        if expanded:
            rank[index[id(node)]] = counter
            counter += 1
            continue
        if id(node) in done:
            continue
        done.add(id(node))
        stack.append((node, True))
        for child in reversed(node._prev):     # popped left to right
            if id(child) not in done:
                stack.append((child, False))
    return rank


def _spaced_fit(wanted: Sequence[float], gap: float) -> list[float]:
    """Heights y_0 < y_1 < ... at least ``gap`` apart, closest to ``wanted``.

    Least squares under the constraints y_{k+1} >= y_k + gap: with
    z_k = y_k - k gap the constraint is "z non-decreasing", which the
    pool-adjacent-violators algorithm solves exactly.
    """
    blocks: list[list[float]] = []           # [mean, count]
    for k, w in enumerate(wanted):
        blocks.append([w - k * gap, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, n2 = blocks.pop()
            m1, n1 = blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    z = [m for m, n in blocks for _ in range(int(n))]
    return [zk + k * gap for k, zk in enumerate(z)]


def _number(x: Any, fmt: str) -> str:
    if isinstance(x, numbers.Real):
        return fmt.format(float(x)).replace("-", "\u2212")
    return str(x)


def _node_lines(node: Any, fmt: str, show_grad: bool) -> tuple[str, str, str]:
    """(label, data text, grad text) for a Value; Tensors show their shape."""
    label = getattr(node, "label", "") or ""
    data = node.data
    if isinstance(data, np.ndarray):
        data_text = f"shape {tuple(data.shape)}" if data.size > 1 else \
            "data " + _number(data.reshape(-1)[0], fmt)
        grad = getattr(node, "grad", None)
        if grad is None:
            grad_text = "grad None"
        else:
            grad_text = "|grad| " + _number(float(np.linalg.norm(grad)), fmt)
    else:
        data_text = "data " + _number(data, fmt)
        grad_text = "grad " + _number(getattr(node, "grad", 0.0), fmt)
    return label, data_text, grad_text if show_grad else ""


_SUPERSCRIPT = str.maketrans("-0123456789.", "\u207b\u2070\u00b9\u00b2\u00b3"
                             "\u2074\u2075\u2076\u2077\u2078\u2079\u22c5")


def _op_text(op: str) -> str:
    """Short symbol for an op: ×, x², σ, ..."""
    if op.startswith("**"):                     # "**2" -> "x²", "**-1" -> "x⁻¹"
        return "x" + op[2:].translate(_SUPERSCRIPT)
    return {"*": "\u00d7", "-": "\u2212", "/": "\u00f7", "sigmoid": "\u03c3",
            "leaky_relu": "lrelu"}.get(op, op)


@dataclass
class GraphDrawing:
    """The artists of a drawn graph, kept so a redraw only changes the text.

    ``texts[i]`` is the (label, data, grad) Text triple of ``layout.nodes[i]``.
    Returned as ``ax.graph_drawing`` by :func:`draw_graph`.
    """
    ax: Axes
    layout: GraphLayout
    fmt: str
    show_grad: bool
    texts: list[tuple[Text, Text, Text]] = field(default_factory=list)

    def node_texts(self) -> list[dict[str, str]]:
        """What the picture shows for every node, in topological order."""
        return [{"label": a.get_text(), "data": b.get_text(), "grad": c.get_text()}
                for a, b, c in self.texts]

    def by_label(self) -> dict[str, dict[str, str]]:
        """``node_texts`` of the labelled nodes, keyed by label."""
        return {t["label"]: t for t in self.node_texts() if t["label"]}

    def update(self, root: Any) -> bool:
        """Show the numbers of ``root``'s graph if it has the same shape.

        Returns False (and changes nothing) when the graph's structure differs
        from the drawn one: then draw it again with :func:`draw_graph`.
        """
        layout = layout_graph(root) if root is not self.layout.nodes[-1] else self.layout
        if layout.signature() != self.layout.signature():
            return False
        for node, (label, data, grad) in zip(layout.nodes, self.texts):
            l_text, d_text, g_text = _node_lines(node, self.fmt, self.show_grad)
            label.set_text(l_text)
            data.set_text(d_text)
            grad.set_text(g_text)
        self.layout = GraphLayout(layout.nodes, self.layout.column,
                                  self.layout.row, self.layout.inputs)
        return True


def draw_graph(root: Any, ax: Optional[Axes] = None, *, fmt: str = "{:.4g}",
               show_grad: bool = True, title: Optional[str] = None,
               fontsize: float = 9.0) -> Figure:
    """Draw the computational graph that produced ``root``.

    Each Value is a box with its label (if it has one), ``data`` and
    ``grad``: inputs blue, intermediate results grey, the output green. Each
    operation (``+``, ``×``, ``tanh``, ...) is a yellow circle; arrows point
    the way the forward pass goes, and gradients (red) flow against them.
    A Value used twice (``x * x``) gets two arrows.

    Parameters
    ----------
    root: the Value (or Tensor) at the end of the computation, usually the loss.
    ax: draw into these axes; by default a new figure sized to the graph.
    fmt: format for numbers, e.g. ``"{:.4f}"`` for four decimals.
    show_grad: False hides the grad line (before ``backward()`` they are all 0).
    title: optional title above the graph.

    Returns the Figure. ``ax.graph_drawing`` (a :class:`GraphDrawing`) keeps
    the text artists, so ``fig.axes[0].graph_drawing.update(new_root)``
    redraws a graph of the same shape with new numbers, quickly.

    >>> from backprop_course import Value
    >>> x, y, z = Value(-2.0, label="x"), Value(5.0, label="y"), Value(-4.0, label="z")
    >>> q = x + y; q.label = "q"
    >>> f = q * z; f.label = "f"
    >>> f.backward()
    >>> fig = draw_graph(f)
    >>> fig.axes[0].graph_drawing.by_label()["x"]
    {'label': 'x', 'data': 'data \u22122', 'grad': 'grad \u22124'}
    """
    layout = layout_graph(root)
    n = len(layout.nodes)
    xs = [c * _COLUMN for c in layout.column]
    ys = layout.row
    x_lo = min(xs) - _BOX_W / 2 - 0.25
    if any(layout.inputs[i] for i in range(n) if layout.column[i] == 0):
        x_lo -= _OP_X
    x_hi = max(xs) + _BOX_W / 2 + 0.25
    y_lo, y_hi = min(ys) - _BOX_H / 2 - 0.3, max(ys) + _BOX_H / 2 + 0.3
    width, height = (x_hi - x_lo) * _INCH_X, (y_hi - y_lo) * _INCH_Y
    if title:
        height += 0.35
    scale = min(1.0, _MAX_W / width, _MAX_H / height)

    if ax is None:
        fig = CourseFigure(figsize=(max(width * scale, 2.5), max(height * scale, 1.2)),
                     dpi=100, layout=None)
        top = 1.0 - (0.35 / height if title else 0.0)   # leave a band for the title
        ax = fig.add_axes((0.0, 0.0, 1.0, top))
    else:
        fig = ax.figure
        scale = min(scale, 1.0)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_hi, y_lo)              # first row at the top
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=fontsize * scale * 1.25)
    size = fontsize * scale

    root_index = n - 1
    drawing = GraphDrawing(ax=ax, layout=layout, fmt=fmt, show_grad=show_grad)
    for i, node in enumerate(layout.nodes):
        x, y = xs[i], ys[i]
        ins = layout.inputs[i]
        color = _ROOT_COLOR if i == root_index else (_INNER_COLOR if ins else _LEAF_COLOR)
        ax.add_patch(FancyBboxPatch(
            (x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
            boxstyle="round,pad=0,rounding_size=0.12", facecolor=color,
            edgecolor="#555555", linewidth=0.9, zorder=3))
        label, data, grad = _node_lines(node, fmt, show_grad)
        gap = _BOX_H / 3.4
        texts = (
            ax.text(x, y - gap, label, ha="center", va="center", fontsize=size,
                    fontweight="bold", zorder=4),
            ax.text(x, y if show_grad else y + gap / 2, data, ha="center",
                    va="center", fontsize=size, zorder=4),
            ax.text(x, y + gap, grad, ha="center", va="center", fontsize=size,
                    color=_GRAD_COLOR, zorder=4),
        )
        drawing.texts.append(texts)
        if not ins:
            continue
        ox = x - _OP_X                      # the op circle, just left of its result
        ax.add_patch(Ellipse((ox, y), 2 * _OP_R, 2 * _OP_R * _INCH_X / _INCH_Y,
                             facecolor=_OP_COLOR, edgecolor="#555555",
                             linewidth=0.9, zorder=3))
        op = _op_text(getattr(node, "_op", "") or "?")
        ax.text(ox, y, op, ha="center", va="center", zorder=4,
                fontsize=size * (1.1 if len(op) <= 2 else 0.95 if len(op) <= 3 else 0.75))
        _arrow(ax, (ox + _OP_R, y), (x - _BOX_W / 2, y), 0.0, scale)
        seen: dict[int, int] = {}
        for j in ins:
            k = seen.get(j, 0)
            seen[j] = k + 1
            rad = 0.0 if ins.count(j) == 1 else (0.35 if k == 0 else -0.35)
            start = (xs[j] + _BOX_W / 2, ys[j])
            # aim at the circle's rim, from the side the input comes from
            dx, dy = start[0] - ox, start[1] - y
            d = math.hypot(dx, dy) or 1.0
            end = (ox + _OP_R * dx / d, y + _OP_R * _INCH_X / _INCH_Y * dy / d)
            _arrow(ax, start, end, rad, scale)
    ax.graph_drawing = drawing
    return fig


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float],
           rad: float, scale: float) -> None:
    ax.add_patch(FancyArrowPatch(
        start, end, arrowstyle="-|>", mutation_scale=10 * scale,
        connectionstyle=f"arc3,rad={rad}", color="#777777", linewidth=1.0,
        shrinkA=0, shrinkB=0, zorder=2))

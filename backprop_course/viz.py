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
from matplotlib.path import Path
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
    ``x * x``). An edge that skips columns bends through the points
    ``bends[(i, k)]`` (column, row), one per skipped column, for the k-th
    input of node i.
    """
    nodes: list[Any]
    column: list[int]
    row: list[float]
    inputs: list[list[int]]
    bends: dict[tuple[int, int], list[tuple[int, float]]] = field(default_factory=dict)

    @property
    def ncolumns(self) -> int:
        return max(self.column) + 1

    def signature(self) -> tuple:
        """The graph's shape: same signature means same drawing, other numbers."""
        return _signature(self.nodes, self.inputs)


def _structure(root: Any) -> tuple[list[Any], list[list[int]]]:
    """Nodes in topological order and, for each, the indices of its inputs."""
    nodes = topological_order(root)
    index = {id(v): i for i, v in enumerate(nodes)}
    return nodes, [[index[id(c)] for c in v._prev] for v in nodes]


def _signature(nodes: list[Any], inputs: list[list[int]]) -> tuple:
    return tuple((getattr(v, "_op", ""), tuple(i)) for v, i in zip(nodes, inputs))


MAX_GRAPH_NODES = 400   # beyond this a drawing is unreadable (and slow to lay out)


def layout_graph(root: Any) -> GraphLayout:
    """Place the nodes of ``root``'s graph in columns and rows.

    A small Sugiyama-style layered layout:

    * Columns: the output is rightmost and every other node goes one column
      left of its leftmost use (longest path to the output), so every edge
      points right and a value used late is drawn next to its use. An edge
      that skips columns gets a bend point in each column it crosses.
    * Order inside a column: first as the formula is written (depth-first,
      x before y in ``x + y``), so an expression tree has no crossings; then
      barycentre sweeps, keeping whichever order has the fewest crossings.
    * Rows: every node as close as possible to the mean height of its
      neighbours, boxes at least one row apart (least squares, solved
      exactly by pool-adjacent-violators), a few sweeps.
    """
    if not _is_value_graph_node(root):
        raise TypeError(
            f"draw_graph needs a Value (or Tensor) expression, got {type(root).__name__}")
    nodes, inputs = _structure(root)
    if len(nodes) > MAX_GRAPH_NODES:
        raise ValueError(
            f"draw_graph: this graph has {len(nodes)} nodes; a drawing is readable up "
            f"to a few dozen (limit {MAX_GRAPH_NODES}). Draw a smaller expression.")
    n = len(nodes)
    index = {id(v): i for i, v in enumerate(nodes)}
    users: list[list[int]] = [[] for _ in nodes]
    for i, ins in enumerate(inputs):
        for j in ins:
            if i not in users[j]:
                users[j].append(i)

    to_root = [0] * n
    for i in reversed(range(n)):              # users come after i in the order
        if users[i]:
            to_root[i] = 1 + max(to_root[u] for u in users[i])
    column = [max(to_root) - d for d in to_root]

    # Items to place: the n nodes, then one bend point per skipped column.
    # left[k] / right[k]: the items item k is joined to in earlier / later columns.
    rank = _written_order(root, nodes, index)
    item_column = list(column)
    key = [float(r) for r in rank]
    left: list[list[int]] = [[] for _ in range(n)]
    right: list[list[int]] = [[] for _ in range(n)]
    chains: dict[tuple[int, int], list[int]] = {}
    for i, ins in enumerate(inputs):
        for k, j in enumerate(ins):
            if column[i] - column[j] <= 1:
                left[i].append(j)
                right[j].append(i)
                continue
            chain = []
            previous = j
            for c in range(column[j] + 1, column[i]):
                d = len(item_column)
                item_column.append(c)
                key.append(rank[j] + 0.5)
                left.append([previous])
                right.append([])
                right[previous].append(d)
                chain.append(d)
                previous = d
            left[i].append(previous)
            right[previous].append(i)
            chains[(i, k)] = chain
    is_bend = [k >= n for k in range(len(item_column))]

    by_column: dict[int, list[int]] = {}
    for k in sorted(range(len(item_column)), key=lambda k: key[k]):
        by_column.setdefault(item_column[k], []).append(k)
    columns = sorted(by_column)
    by_column = _fewer_crossings(by_column, columns, left, right)

    # Rows: least squares towards the neighbours' mean, fixed order, min gaps.
    row = [0.0] * len(item_column)
    for members in by_column.values():
        for m, k in enumerate(members):
            row[k] = (m - (len(members) - 1) / 2) * _ROW

    def gap(a: int, b: int) -> float:
        return _ROW * (0.35 if is_bend[a] and is_bend[b] else
                       0.7 if is_bend[a] or is_bend[b] else 1.0)

    for _ in range(8):
        for sweep in (columns, columns[::-1]):
            for c in sweep:
                members = by_column[c]
                wanted = []
                for k in members:
                    near = [row[m] for m in left[k] + right[k]]
                    wanted.append(float(np.mean(near)) if near else row[k])
                gaps = [gap(a, b) for a, b in zip(members, members[1:])]
                for k, y in zip(members, _spaced_fit(wanted, gaps)):
                    row[k] = y
    low = min(row)
    row = [r - low for r in row]
    bends = {edge: [(item_column[d], row[d]) for d in chain]
             for edge, chain in chains.items()}
    return GraphLayout(nodes=nodes, column=column, row=row[:n], inputs=inputs,
                       bends=bends)


def _crossings(by_column: dict[int, list[int]], columns: list[int],
               right: list[list[int]]) -> int:
    """Number of edge crossings between neighbouring columns."""
    total = 0
    for c in columns[:-1]:
        position = {k: p for p, k in enumerate(by_column.get(c + 1, []))}
        edges = [(p, position[t]) for p, k in enumerate(by_column[c])
                 for t in right[k] if t in position]
        for a in range(len(edges)):
            for b in range(a + 1, len(edges)):
                (p1, q1), (p2, q2) = edges[a], edges[b]
                total += (p1 - p2) * (q1 - q2) < 0
    return total


def _fewer_crossings(by_column: dict[int, list[int]], columns: list[int],
                     left: list[list[int]], right: list[list[int]]
                     ) -> dict[int, list[int]]:
    """Barycentre sweeps; return the order with the fewest crossings seen."""
    best = {c: list(m) for c, m in by_column.items()}
    best_count = _crossings(best, columns, right)
    current = {c: list(m) for c, m in by_column.items()}
    for _ in range(4):
        if best_count == 0:
            break
        for sweep, side in ((columns[1:], left), (columns[-2::-1], right)):
            for c in sweep:
                position = {k: p for col in current.values() for p, k in enumerate(col)}
                def centre(k: int) -> float:
                    near = [position[m] for m in side[k]]
                    return float(np.mean(near)) if near else float(position[k])
                current[c] = sorted(current[c], key=centre)   # stable: ties keep order
            count = _crossings(current, columns, right)
            if count < best_count:
                best_count = count
                best = {c: list(m) for c, m in current.items()}
    return best


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


def _spaced_fit(wanted: Sequence[float], gaps: Sequence[float]) -> list[float]:
    """Heights y_0 < y_1 < ... with y_{k+1} - y_k >= gaps[k], closest to ``wanted``.

    Least squares under those constraints: with z_k = y_k - (g_0 + ... + g_{k-1})
    the constraint is "z non-decreasing", which the pool-adjacent-violators
    algorithm solves exactly.
    """
    offsets = [0.0]
    for g in gaps:
        offsets.append(offsets[-1] + g)
    blocks: list[list[float]] = []           # [mean, count]
    for w, o in zip(wanted, offsets):
        blocks.append([w - o, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, n2 = blocks.pop()
            m1, n1 = blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    z = [m for m, count in blocks for _ in range(int(count))]
    return [zk + o for zk, o in zip(z, offsets)]


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
        nodes, inputs = _structure(root)
        if _signature(nodes, inputs) != self.layout.signature():
            return False
        for node, (label, data, grad) in zip(nodes, self.texts):
            l_text, d_text, g_text = _node_lines(node, self.fmt, self.show_grad)
            label.set_text(l_text)
            data.set_text(d_text)
            grad.set_text(g_text)
        self.layout.nodes = nodes
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
    bend_rows = [r for chain in layout.bends.values() for _, r in chain]
    y_lo = min(ys + bend_rows) - _BOX_H / 2 - 0.3
    y_hi = max(ys + bend_rows) + _BOX_H / 2 + 0.3
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
        for k, j in enumerate(ins):
            repeat = seen.get(j, 0)
            seen[j] = repeat + 1
            rad = 0.0 if ins.count(j) == 1 else (0.35 if repeat == 0 else -0.35)
            points = [(xs[j] + _BOX_W / 2, ys[j])]
            for c, r in layout.bends.get((i, k), []):   # through skipped columns
                points += [(c * _COLUMN - _BOX_W / 2, r), (c * _COLUMN + _BOX_W / 2, r)]
            # aim at the circle's rim, from the side the input comes from
            dx, dy = points[-1][0] - ox, points[-1][1] - y
            d = math.hypot(dx, dy) or 1.0
            end = (ox + _OP_R * dx / d, y + _OP_R * _INCH_X / _INCH_Y * dy / d)
            if len(points) == 1:
                _arrow(ax, points[0], end, rad, scale)
            else:
                _polyline_arrow(ax, points + [end], scale)
    ax.graph_drawing = drawing
    return fig


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float],
           rad: float, scale: float) -> None:
    ax.add_patch(FancyArrowPatch(
        start, end, arrowstyle="-|>", mutation_scale=10 * scale,
        connectionstyle=f"arc3,rad={rad}", color="#777777", linewidth=1.0,
        shrinkA=0, shrinkB=0, zorder=2))


def _polyline_arrow(ax: Axes, points: list[tuple[float, float]], scale: float) -> None:
    path = Path(points, [Path.MOVETO] + [Path.LINETO] * (len(points) - 1))
    ax.add_patch(FancyArrowPatch(
        path=path, arrowstyle="-|>", mutation_scale=10 * scale, color="#777777",
        linewidth=1.0, shrinkA=0, shrinkB=0, zorder=2, joinstyle="round"))


# ------------------------------------------------------------ Hinton diagrams (lesson 06)
def hinton(ax: Axes, W: np.ndarray, *, max_weight: Optional[float] = None,
           xlabels: Optional[Sequence[str]] = None,
           ylabels: Optional[Sequence[str]] = None, annotate: bool = False) -> Axes:
    """Draw matrix ``W`` as a Hinton diagram: one square per entry, its *area*
    proportional to |w| (the largest ``max_weight`` fills its cell), white for
    positive and black for negative, on a grey ground (as in Rumelhart, Hinton &
    Williams 1986). Row i is drawn at the top, column j from the left.
    ``annotate`` writes each value under its square."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"hinton: W must be a 2-D matrix, got shape {W.shape}")
    top = float(np.max(np.abs(W))) if max_weight is None else float(max_weight)
    top = top or 1.0
    ax.set_facecolor("0.55")
    rows, cols = W.shape
    full, shift = (0.72, 0.1) if annotate else (0.9, 0.0)    # room for the labels
    for (i, j), w in np.ndenumerate(W):
        side = full * math.sqrt(min(abs(w) / top, 1.0))       # area ∝ |w|
        ax.add_patch(matplotlib.patches.Rectangle(
            (j - side / 2, i - shift - side / 2), side, side,
            facecolor="white" if w > 0 else "black", edgecolor="none"))
        if annotate:
            ax.text(j, i + 0.38, f"{w:.1f}", ha="center", va="center", fontsize=8,
                    color="black")
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks(range(cols), [str(s) for s in (
        xlabels if xlabels is not None else range(cols))])
    ax.set_yticks(range(rows), [str(s) for s in (
        ylabels if ylabels is not None else range(rows))])
    ax.tick_params(length=0)
    return ax

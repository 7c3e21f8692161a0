"""viz.draw_graph: layout geometry, what every node shows, fast updates."""
from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from backprop_course import Tensor, Value, viz  # noqa: E402


def lesson_circuit(x=-2.0, y=5.0, z=-4.0):
    x, y, z = Value(x, label="x"), Value(y, label="y"), Value(z, label="z")
    q = x + y
    q.label = "q"
    f = q * z
    f.label = "f"
    f.backward()
    return f


def test_lesson_circuit_shows_every_value_and_gradient():
    fig = viz.draw_graph(lesson_circuit())
    nodes = fig.axes[0].graph_drawing.by_label()
    # q = x + y = 3, f = q z = -12; df/dz = q = 3, df/dq = z = -4, df/dx = df/dy = -4
    expected = {"x": (-2, -4), "y": (5, -4), "z": (-4, 3), "q": (3, -4), "f": (-12, 1)}
    for label, (data, grad) in expected.items():
        assert nodes[label]["data"] == f"data {data:g}".replace("-", "\u2212")
        assert nodes[label]["grad"] == f"grad {grad:g}".replace("-", "\u2212")
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"+", "\u00d7"} <= texts                     # the two op nodes


def test_layout_reads_left_to_right_like_the_formula():
    layout = viz.layout_graph(lesson_circuit())
    where = {n.label: (c, r) for n, c, r in zip(layout.nodes, layout.column, layout.row)}
    assert where["x"][0] == where["y"][0] == 0
    assert where["q"][0] == where["z"][0] == 1          # z sits next to its use
    assert where["f"][0] == 2
    assert where["x"][1] < where["y"][1]                # x above y, as written
    assert where["q"][1] < where["z"][1]
    assert layout.bends == {}


def test_boxes_in_a_column_never_overlap_on_a_30_node_graph():
    rng = np.random.default_rng(0)
    xs = [Value(float(v), label=f"x{i}") for i, v in enumerate(rng.normal(size=5))]
    ws = [Value(float(v), label=f"w{i}") for i, v in enumerate(rng.normal(size=5))]
    act = sum((w * x for w, x in zip(ws, xs)), Value(0.5, label="b")).tanh()
    loss = (act - 1.0) ** 2 + act * xs[0]               # xs[0] used twice, far apart
    loss.backward()
    layout = viz.layout_graph(loss)
    assert 28 <= len(layout.nodes) <= 40
    for c in set(layout.column):
        rows = sorted(r for r, col in zip(layout.row, layout.column) if col == c)
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(rows, rows[1:]))
    assert layout.bends                                  # the long edge bends
    for i, ins in enumerate(layout.inputs):             # every edge points right
        assert all(layout.column[j] < layout.column[i] for j in ins)
    fig = viz.draw_graph(loss)
    assert fig.get_size_inches()[0] <= 16.0 + 1e-9


def test_an_expression_tree_is_drawn_without_crossings():
    a, b, c, d = (Value(v, label=n) for v, n in zip([1.0, 2.0, 3.0, 4.0], "abcd"))
    out = (a * b + c * d).tanh() * (a - d)   # a and d reused: not a tree, still planar
    layout = viz.layout_graph(out)
    segments = []
    for i, ins in enumerate(layout.inputs):
        for j in ins:
            segments.append(((layout.column[j], layout.row[j]),
                             (layout.column[i], layout.row[i])))
    for (p1, p2), (q1, q2) in itertools.combinations(segments, 2):
        if p1[0] == q1[0] and p2[0] == q2[0] and p2[0] - p1[0] == 1:
            assert (p1[1] - q1[1]) * (p2[1] - q2[1]) >= 0, "edges cross"


def test_a_node_used_twice_gets_two_arrows():
    x = Value(3.0, label="x")
    y = x * x
    y.backward()
    fig = viz.draw_graph(y)
    arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 3                              # x -> op twice, op -> y
    assert fig.axes[0].graph_drawing.by_label()["x"]["grad"] == "grad 6"


def test_show_grad_false_hides_the_gradients():
    fig = viz.draw_graph(lesson_circuit(), show_grad=False, fmt="{:.2f}")
    nodes = fig.axes[0].graph_drawing.by_label()
    assert nodes["f"]["grad"] == "" and nodes["f"]["data"] == "data \u221212.00"


def test_update_changes_the_numbers_only_for_the_same_shape():
    fig = viz.draw_graph(lesson_circuit())
    drawing = fig.axes[0].graph_drawing
    boxes = len([p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)])
    assert drawing.update(lesson_circuit(x=1.0, z=2.0)) is True
    nodes = drawing.by_label()
    assert nodes["f"]["data"] == "data 12" and nodes["x"]["grad"] == "grad 2"
    assert nodes["z"]["grad"] == "grad 6"
    other = Value(1.0, label="a").tanh()
    assert drawing.update(other) is False                # different graph: refused
    assert drawing.by_label()["f"]["data"] == "data 12"
    assert len([p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]) == boxes


def test_tensor_graphs_show_shapes_and_gradient_norms():
    W = Tensor(np.ones((3, 2)), requires_grad=True)
    loss = (Tensor(np.ones((4, 3))) @ W).sum()
    loss.backward()
    texts = viz.draw_graph(loss).axes[0].graph_drawing.node_texts()
    assert any(t["data"] == "shape (3, 2)" for t in texts)
    assert texts[-1]["data"] == "data 24"
    # dL/dW = X^T 1 = 4 everywhere: norm = 4 sqrt(6)
    assert any(t["grad"] == f"|grad| {4 * np.sqrt(6):.4g}" for t in texts)


def test_figure_displays_as_png_in_jupyter():
    fig = viz.draw_graph(lesson_circuit())
    png = fig._repr_png_()
    assert png.startswith(b"\x89PNG")
    assert fig.get_size_inches()[0] > 3


def test_draws_into_given_axes():
    from matplotlib.figure import Figure
    figure = Figure()
    ax = figure.add_subplot()
    assert viz.draw_graph(lesson_circuit(), ax=ax) is figure
    assert ax.graph_drawing.by_label()["q"]["data"] == "data 3"


def test_bad_input_gets_a_clear_error():
    with pytest.raises(TypeError, match="Value"):
        viz.draw_graph(3.0)
    x = Value(0.0)
    for _ in range(viz.MAX_GRAPH_NODES):
        x = x + 1.0
    with pytest.raises(ValueError, match="nodes"):
        viz.draw_graph(x)


def test_spaced_fit_is_least_squares_under_the_gap():
    assert viz._spaced_fit([0.0, 3.0, 7.0], [1.0, 1.0]) == [0.0, 3.0, 7.0]
    ys = viz._spaced_fit([0.0, 0.0, 0.0], [1.0, 1.0])   # all want 0: spread around it
    assert np.allclose(ys, [-1.0, 0.0, 1.0])
    ys = viz._spaced_fit([0.0, 0.2, 5.0], [1.0, 0.5])
    assert np.allclose(ys, [-0.4, 0.6, 5.0])


def test_op_symbols():
    assert viz._op_text("**2") == "x\u00b2"
    assert viz._op_text("**-1") == "x\u207b\u00b9"
    assert viz._op_text("sigmoid") == "\u03c3"
    assert viz._op_text("*") == "\u00d7"

"""Explorers driven headless: set a control, check what the figure now shows.

Every test reads numbers back from the figure's artists (line data, image
pixels, texts) or from the pure functions the explorers call, so a redraw
that silently kept the old picture fails.
"""
from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from backprop_course import Value, gradient_flow, training, widgets  # noqa: E402

MINUS = "\u2212"


def shown(number: float) -> str:
    return f"{number:g}".replace("-", MINUS)


# ------------------------------------------------------------------ graph explorer


def test_graph_explorer_redraws_values_and_gradients_of_the_lesson_circuit():
    ex = widgets.graph_explorer()
    assert set(ex.controls) == {"x", "y", "z"}
    nodes = ex.artists["drawing"].by_label()
    assert nodes["f"]["data"] == f"data {shown(-12)}"
    assert nodes["z"]["grad"] == "grad 3"
    before = ex.png
    for x, y, z in [(1.0, 5.0, -4.0), (1.5, -2.5, 3.0), (0.0, 0.0, 0.0)]:
        ex.update(x=x, y=y, z=z)
        nodes = ex.artists["drawing"].by_label()
        q = x + y
        assert nodes["q"]["data"] == f"data {shown(q)}"
        assert nodes["f"]["data"] == f"data {shown(q * z)}"
        # df/dx = df/dy = z, df/dz = x + y, df/dq = z
        assert nodes["x"]["grad"] == nodes["y"]["grad"] == f"grad {shown(z)}"
        assert nodes["z"]["grad"] == f"grad {shown(q)}"
        assert ex.result.data == pytest.approx(q * z)
    assert ex.png != before


def test_graph_explorer_png_shows_the_change():
    ex = widgets.graph_explorer()
    a = _decode(ex.png)
    ex.update(z=2.0)
    b = _decode(ex.png)
    assert a.shape == b.shape
    changed = np.any(a != b, axis=2)
    assert 50 < changed.sum() < 0.2 * changed.size      # the numbers, not the boxes


def test_graph_explorer_takes_any_function_of_named_values():
    def neuron(x1=2.0, w1=-3.0, x2=0.0, w2=1.0, b=6.8813735870195432):
        n = x1 * w1 + x2 * w2 + b
        n.label = "n"
        o = n.tanh()
        o.label = "o"
        return o

    ex = widgets.graph_explorer(neuron, high=8.0)
    nodes = ex.artists["drawing"].by_label()
    assert nodes["o"]["data"] == "data 0.7071"
    assert nodes["x1"]["grad"] == f"grad {shown(-1.5)}"       # w1 (1 - o^2) = -3 * 0.5
    ex.update(w1=0.0)
    assert ex.artists["drawing"].by_label()["x1"]["grad"] == "grad 0"
    assert ex.controls["b"].max >= 6.88


def test_graph_explorer_reports_an_undefined_point_and_recovers():
    ex = widgets.graph_explorer(lambda a=1.0: a.log())
    ex.update(a=-1.0)
    assert ex.result is None
    assert any("undefined" in t.get_text() for t in ex.figure.texts)
    ex.update(a=2.0)
    assert ex.result.data == pytest.approx(math.log(2.0))
    assert ex.artists["drawing"].by_label()["a"]["grad"] == "grad 0.5"


def test_graph_explorer_rejects_bad_functions():
    with pytest.raises(TypeError, match="must return a Value"):
        widgets.graph_explorer(lambda x=1.0: 3.0)
    with pytest.raises(ValueError, match="not parameters"):
        widgets.graph_explorer(lambda x=1.0: x * 2, inputs={"y": 1.0})
    with pytest.raises(KeyError, match="no control"):
        widgets.graph_explorer().update(w=1.0)


# ------------------------------------------------------------ learning rate


@pytest.fixture(scope="module")
def lr_explorer():
    return widgets.learning_rate_explorer()          # moons, 2-16-16-2, seed 0


def test_learning_rate_explorer_tiny_lr_crawls(lr_explorer):
    lr_explorer.update(lr=1e-4, steps=100)
    losses = lr_explorer.artists["loss"].get_ydata()
    assert len(losses) == 101
    assert losses[-1] > 0.9 * losses[0]                      # barely moved
    assert lr_explorer.artists["summary"].get_text().startswith("barely moving")


def test_learning_rate_explorer_good_lr_learns(lr_explorer):
    lr_explorer.update(lr=1.0, steps=100)
    losses = lr_explorer.artists["loss"].get_ydata()
    assert losses[-1] < 0.1 * losses[0]
    assert lr_explorer.result.accuracies[100] > 0.95
    assert "accuracy" in lr_explorer.artists["summary"].get_text()
    assert lr_explorer.artists["summary"].get_text().startswith("loss")


def test_learning_rate_explorer_huge_lr_diverges(lr_explorer):
    lr_explorer.update(lr=10.0, steps=100)
    assert lr_explorer.result.diverged(100)
    assert lr_explorer.artists["summary"].get_text().startswith("diverged")
    losses = lr_explorer.artists["loss"].get_ydata()
    assert losses.max() > 2 * losses[0]                      # visible jump on the plot
    assert np.all(np.isfinite(losses))                       # clipped, drawable


def test_learning_rate_explorer_redraws_curve_boundary_and_keeps_previous(lr_explorer):
    lr_explorer.update(lr=0.1, steps=100)
    curve = np.array(lr_explorer.artists["loss"].get_ydata())
    image = np.array(lr_explorer.artists["boundary"].get_array())
    lr_explorer.update(lr=1.0)
    assert not np.allclose(curve, lr_explorer.artists["loss"].get_ydata())
    assert np.abs(image.astype(int) - lr_explorer.artists["boundary"].get_array()).max() > 50
    np.testing.assert_allclose(lr_explorer.artists["previous_loss"].get_ydata(), curve)
    assert "0.1" in lr_explorer.artists["previous"].get_text()


def test_learning_rate_explorer_boundary_matches_the_trained_network(lr_explorer):
    lr_explorer.update(lr=1.0, steps=200)
    run = lr_explorer.result
    X, y = run.X, run.y
    grid, extent = training.decision_grid(X, resolution=widgets._GRID)
    probs = run.predict_proba(grid, step=200)
    pixels = lr_explorer.artists["boundary"].get_array()[..., :3].reshape(-1, 3)
    blue, orange = widgets._CLASS_COLORS[0], widgets._CLASS_COLORS[1]
    # a pixel's colour tells its predicted class: closer to class 1's tint or not
    predicted = (np.linalg.norm(pixels / 255 - (0.55 + 0.45 * orange), axis=1)
                 < np.linalg.norm(pixels / 255 - (0.55 + 0.45 * blue), axis=1))
    assert np.mean(predicted == (probs[:, 1] > 0.5)) > 0.99
    assert np.mean(run.predict_proba(X, step=200).argmax(axis=1) == y) > 0.95


def test_learning_rate_explorer_steps_slider_extends_the_same_run(lr_explorer):
    lr_explorer.update(lr=0.3, steps=50)
    short = np.array(lr_explorer.artists["loss"].get_ydata())
    lr_explorer.update(steps=150)
    long = lr_explorer.artists["loss"].get_ydata()
    assert len(short) == 51 and len(long) == 151
    np.testing.assert_array_equal(long[:51], short)          # same seed, same path
    assert lr_explorer.artists["loss"].axes.get_xlim() == (0.0, 150.0)


def test_training_is_deterministic_and_resumable():
    X, y = training.load_data("moons")
    a = training.TrainingRun(X, y, 0.3)
    a.run_to(20)
    a.run_to(60)
    b = training.train(X, y, 0.3, steps=60)
    np.testing.assert_array_equal(a.losses, b.losses)
    c = training.train(X, y, 0.3, steps=60, seed=1)
    assert not np.array_equal(b.losses, c.losses)


def test_training_records_divergence_to_inf():
    X, y = training.load_data("moons")
    run = training.train(X * 1e160, y, 10.0, steps=5)
    assert run.diverged_at == 1 and run.diverged()
    assert np.isinf(run.losses[1:]).all()
    text, color = widgets._describe_run(run, 5)
    assert text == "diverged: the loss became inf at step 1"


def test_learning_rate_explorer_on_high_dimensional_data_uses_a_subset():
    ex = widgets.learning_rate_explorer(data="digits", hidden=(16,), steps=20, lr=0.5)
    assert "boundary" not in ex.artists                      # 64-D: no map
    assert len(ex.result.X) == 300
    assert "300 of 1437" in ex.artists["loss"].axes.get_title()
    assert ex.artists["loss"].get_ydata()[-1] < ex.artists["loss"].get_ydata()[0]


def test_training_rejects_bad_input():
    with pytest.raises(ValueError, match="learning rate"):
        training.TrainingRun(*training.load_data("xor"), lr=-1.0)
    with pytest.raises(ValueError, match="unknown data set"):
        training.load_data("mnist")
    with pytest.raises(ValueError, match="integer class labels"):
        training.load_data((np.zeros((3, 2)), np.array([0.5, 1.0, 0.0])))
    with pytest.raises(ValueError, match="unknown optimizer"):
        training.TrainingRun(*training.load_data("xor"), lr=0.1, optimizer="lbfgs")


# ------------------------------------------------------------------ depth explorer


def test_depth_explorer_sigmoid_naive_vanishes_and_residual_restores():
    ex = widgets.depth_explorer(depth=30, activation="sigmoid", init="naive")
    norms = ex.artists["grad_init"].get_ydata()
    assert len(norms) == 30
    assert norms[0] < 1e-20 * norms[-1]                      # orders of magnitude
    assert np.all(np.diff(np.log10(norms[:-1])) > 0)          # shrinks layer by layer
    assert "vanishes" in ex.artists["headline"].get_text()
    ex.update(residual=True)
    norms = ex.artists["grad_init"].get_ydata()
    assert norms[0] > 1e-2 * norms[-1]
    hidden = norms[1:-1]
    assert hidden.max() < 1.5 * hidden.min()                  # flat through the blocks
    assert "residual" in ex.artists["setting"].get_text()


RED, GREEN = "#c0392b", "#1e8449"


def test_depth_explorer_flags_flat_but_tiny_weight_gradients_as_vanishing():
    # 50 naive tanh layers: every ||dL/dW_l|| is ~1e-60, layer 1's about 0.8 x
    # layer 50's. A first/last ratio of the weight gradients calls this healthy.
    ex = widgets.depth_explorer(depth=50, activation="tanh", init="naive")
    norms = ex.artists["grad_init"].get_ydata()
    assert 0.5 < norms[0] / norms[-1] < 2 and norms.max() < 1e-50
    headline = ex.artists["headline"]
    assert headline.get_color() == RED
    assert "vanishes" in headline.get_text()
    ex.update(view="delta")                     # the view that shows it
    deltas = ex.artists["grad_init"].get_ydata()
    np.testing.assert_allclose(deltas, ex.result.delta_norms_init)
    assert deltas[0] < 1e-50 * deltas[-1]
    assert "delta" in ex.artists["grad_init"].axes.get_ylabel()
    assert headline.get_color() == RED          # the verdict does not depend on the view


def test_depth_explorer_delta_view_shows_what_the_weight_view_hides():
    # ReLU with Xavier's weights: flat weight gradients, delta falls by 1/sqrt(2)
    ex = widgets.depth_explorer(depth=50, activation="relu", init="xavier")
    weights = ex.artists["grad_init"].get_ydata()
    assert weights.max() < 10 * weights.min()
    assert ex.artists["headline"].get_color() == RED
    ex.update(view="delta")
    deltas = ex.artists["grad_init"].get_ydata()
    per_layer = (deltas[0] / deltas[-1]) ** (1 / 49)
    assert 0.6 < per_layer < 0.8
    ex.update(init="he")
    assert ex.artists["headline"].get_color() == GREEN


def test_gradient_flow_verdict_judges_absolute_size_not_only_the_ratio():
    import dataclasses
    flow = gradient_flow.gradient_flow(10, "relu", "he", steps=0)
    assert flow.verdict()[1]
    tiny = dataclasses.replace(flow, grad_norms_init=flow.grad_norms_init * 1e-9)
    text, healthy = tiny.verdict()             # same delta ratio, tiny weight gradients
    assert not healthy and "too small" in text
    falling = dataclasses.replace(
        flow, delta_norms_init=flow.delta_norms_init * 1e-3 ** np.linspace(1, 0, 10))
    assert not falling.verdict()[1]
    with pytest.raises(ValueError, match="view"):
        widgets.depth_explorer(view="deltas")


def test_depth_explorer_he_relu_keeps_gradients_within_a_factor():
    ex = widgets.depth_explorer(depth=50, activation="relu", init="he")
    norms = ex.artists["grad_init"].get_ydata()
    assert len(norms) == 50
    assert norms.max() < 10 * norms.min()
    after = ex.artists["grad_after"].get_ydata()
    assert not np.allclose(after, norms)                      # training changed them
    low, high = ex.artists["grad_init"].axes.get_ylim()
    assert low <= norms.min() and high >= norms.max()         # axis follows the data


def test_depth_explorer_depth_slider_changes_the_number_of_layers():
    ex = widgets.depth_explorer(depth=5, activation="tanh", init="xavier")
    ex.update(depth=1)
    assert len(ex.artists["grad_init"].get_ydata()) == 1
    ex.update(depth=50)
    assert len(ex.artists["grad_init"].get_ydata()) == 50
    assert len(ex.artists["activation_std"].get_ydata()) == 50
    assert ex.controls["depth"].max >= 50
    options = [v for _, v in ex.controls["activation"].options]
    assert options == ["sigmoid", "tanh", "relu", "leaky_relu"]
    assert [v for _, v in ex.controls["init"].options] == ["naive", "xavier", "he"]


def test_gradient_flow_matches_a_direct_computation():
    # depth 2: check ||dL/dW|| against the engine run by hand
    from backprop_course import Tensor, losses, nn
    flow = gradient_flow.gradient_flow(2, "tanh", "xavier", steps=0, width=8, batch=16)
    net = nn.MLP([8, 8, 8], activation="tanh", init="xavier", rng=0)
    X, y = gradient_flow.task(8, 16, 0)
    losses.cross_entropy(net(Tensor(X)), y).backward()
    expected = [np.linalg.norm(m.weight.grad) for m in net.modules()
                if isinstance(m, nn.Linear)]
    np.testing.assert_allclose(flow.grad_norms_init, expected, rtol=1e-12)
    np.testing.assert_allclose(flow.grad_norms_after, expected, rtol=1e-12)
    # delta_l = dL/dz_l by hand: z_2 are the logits, delta_1 = (delta_2 W_2^T) * tanh'(z_1)
    W1, b1 = net[0].weight.data, net[0].bias.data
    W2, b2 = net[2].weight.data, net[2].bias.data
    z1 = X @ W1 + b1
    z2 = np.tanh(z1) @ W2 + b2
    p = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    delta2 = (p - np.eye(8)[y]) / len(y)
    delta1 = (delta2 @ W2.T) * (1 - np.tanh(z1) ** 2)
    np.testing.assert_allclose(flow.delta_norms_init,
                               [np.linalg.norm(delta1), np.linalg.norm(delta2)], rtol=1e-10)
    np.testing.assert_allclose(flow.weight_norms, [np.linalg.norm(W1), np.linalg.norm(W2)])


def test_gradient_flow_rejects_bad_settings():
    with pytest.raises(ValueError, match="depth"):
        gradient_flow.gradient_flow(0)
    with pytest.raises(ValueError, match="activation"):
        gradient_flow.gradient_flow(3, activation="softplus")
    with pytest.raises(ValueError, match="init"):
        gradient_flow.gradient_flow(3, init="orthogonal")


# ------------------------------------------------------------------ display


def _decode(png: bytes) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_mimebundle_has_widget_png_fallback_and_stable_text():
    ex = widgets.graph_explorer()
    for bundle in (ex._repr_mimebundle_(), ex.widget._repr_mimebundle_()):
        assert "application/vnd.jupyter.widget-view+json" in bundle
        png = base64.b64decode(bundle["image/png"])
        assert png == ex.png and png.startswith(b"\x89PNG")
        assert bundle["text/plain"] == "graph_explorer(x=-2, y=5, z=-4)"


def test_encode_png_is_lossless():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_decode(widgets.encode_png(rgb)), rgb)
    with pytest.raises(ValueError):
        widgets.encode_png(rgb.astype(float))


# ------------------------------------------------------------------ progress


def test_progress_outside_jupyter_prints_only_the_final_line(capsys):
    bar = widgets.progress(range(3), desc="epoch")
    seen = []
    for i in bar:
        bar.set_postfix(loss=0.5 / (i + 1))
        seen.append(i)
    assert seen == [0, 1, 2]
    assert capsys.readouterr().out == "epoch 3/3 done\n"
    for i in widgets.progress(iter(range(10)), total=10):
        if i == 4:
            break
    assert capsys.readouterr().out == "4/10 stopped\n"
    assert len(widgets.progress(range(7))) == 7


@pytest.mark.parametrize("make, changes", [
    (widgets.graph_explorer, [{"x": 1.0}, {"z": 3.5}]),
    (widgets.learning_rate_explorer, [{"lr": 1.0}, {"steps": 60}, {"lr": 10.0}]),
    (lambda: widgets.depth_explorer(depth=8), [{"depth": 12}, {"residual": True},
                                               {"view": "delta"}]),
])
def test_fast_redraw_equals_a_full_redraw_and_reaches_the_widget(make, changes):
    ex = make()
    for change in changes:
        before = ex.image.value
        ex.update(**change)
        assert ex.image.value == ex.png != before           # the browser gets the new PNG
        fast = _decode(ex.png)
        ex.renderer.invalidate()
        full = _decode(ex.renderer.render())                 # everything drawn afresh
        np.testing.assert_array_equal(fast, full)


@pytest.mark.slow
def test_a_notebook_without_widget_front_end_still_shows_the_plots(tmp_path):
    """nbclient runs it like nbval/nbconvert do; the HTML export has the PNGs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nbconvert = pytest.importorskip("nbconvert")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from backprop_course import widgets"),
        nbformat.v4.new_code_cell("widgets.graph_explorer()"),
        nbformat.v4.new_code_cell("widgets.depth_explorer(depth=5).widget"),
        nbformat.v4.new_code_cell(
            "for epoch in widgets.progress(range(3), desc='epoch'):\n    pass"),
    ]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    for cell in nb.cells[1:3]:
        (out,) = cell.outputs
        assert out.output_type == "execute_result"
        assert {"image/png", "application/vnd.jupyter.widget-view+json",
                "text/plain"} <= set(out.data)
    assert nb.cells[1].outputs[0].data["text/plain"] == "graph_explorer(x=-2, y=5, z=-4)"
    # the progress bar leaves one deterministic line for nbval and static renders
    (out,) = nb.cells[3].outputs
    assert out.data["text/plain"] == "epoch 3/3 done"
    # saved without widget state (JupyterLab's default): HTML falls back to the PNGs
    nb.metadata.pop("widgets", None)
    exporter = nbconvert.HTMLExporter()
    html, _ = exporter.from_notebook_node(nb)
    empty, _ = exporter.from_notebook_node(nbformat.v4.new_notebook())
    tag = "data:image/png;base64"
    assert html.count(tag) - empty.count(tag) == 2          # the template has its own


def test_training_keeps_only_the_snapshots_asked_for():
    X, y = training.load_data("moons")
    run = training.train(X, y, 0.3, steps=30)
    assert not np.allclose(run.predict_proba(X, step=7), run.predict_proba(X, step=30))
    sparse = training.train(X, y, 0.3, steps=30, snapshot_every=10)
    np.testing.assert_allclose(sparse.predict_proba(X, step=20), run.predict_proba(X, step=20))
    np.testing.assert_allclose(sparse.predict_proba(X), run.predict_proba(X, step=30))
    with pytest.raises(ValueError, match="not kept"):
        sparse.parameters_at(7)
    assert sorted(sparse._snapshots) == [0, 10, 20, 30]
    latest_only = training.train(X, y, 0.3, steps=30, snapshot_every=0)
    assert latest_only._snapshots == {}
    np.testing.assert_allclose(latest_only.predict_proba(X), run.predict_proba(X))


@pytest.mark.parametrize("module", ["viz", "widgets", "training", "gradient_flow"])
def test_docstring_examples_run(module):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(f"backprop_course.{module}"))
    assert result.attempted > 0 and result.failed == 0

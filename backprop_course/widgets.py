"""Explorers: drag a slider and watch backpropagation change.

Three explorers, each a thin ipywidgets wrapper over a pure function:

* :func:`learning_rate_explorer` — :mod:`backprop_course.training`: a
  network trained from the same seed with the chosen learning rate; the loss
  curve and the decision boundary. Too small crawls, too large diverges.
* :func:`depth_explorer` — :mod:`backprop_course.gradient_flow`: ‖dL/dW_l‖
  for every layer of a deep MLP, at initialisation and after a few steps.
* :func:`graph_explorer` — :func:`backprop_course.viz.draw_graph`: a small
  Value circuit with every node's value and gradient.

Each returns an :class:`Explorer`: ``.widget`` (what the notebook shows),
``.figure`` (the matplotlib Figure), ``.controls`` (the sliders by name),
``.update(**values)`` (set controls and redraw, as tests do) and
``.artists`` / ``.result`` (what was drawn and the numbers behind it).

The figure is rendered by Agg to a PNG shown in an ``ipywidgets.Image``: no
ipympl, identical in JupyterLab, Notebook 7 and VS Code. Without a widget
front end (nbconvert, nbval, GitHub) the same output carries a static PNG,
so the notebook still shows the plot.

``progress(iterable)`` is a progress bar for training loops in lessons.
"""
from __future__ import annotations

import base64
import inspect
import math
import struct
import time
import zlib
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import ipywidgets as w
from matplotlib import ticker
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from threadpoolctl import ThreadpoolController

from backprop_course import gradient_flow as flow_lib
from backprop_course import training, viz
from backprop_course.scalar import Value

__all__ = ["Explorer", "learning_rate_explorer", "depth_explorer", "graph_explorer",
           "progress", "Progress"]

_CLASS_COLORS = np.array([            # one colour per class (tab10-like, readable)
    [0.23, 0.46, 0.69], [0.89, 0.40, 0.10], [0.30, 0.62, 0.28], [0.78, 0.20, 0.22],
    [0.55, 0.42, 0.71], [0.55, 0.34, 0.29], [0.85, 0.45, 0.71], [0.50, 0.50, 0.50],
    [0.74, 0.74, 0.13], [0.09, 0.75, 0.81]])


# =================================================================== BLAS threads

_BLAS_CONTROLLER: Optional[ThreadpoolController] = None


def _one_blas_thread() -> Any:
    """A context manager: run a redraw with one BLAS thread, then restore.

    The explorers multiply small matrices many times; BLAS worker threads
    cost more than they save there, and on a busy 2-core machine they made a
    training step 15x slower. threadpoolctl finds the BLAS numpy loaded
    (OpenBLAS, MKL, BLIS, Accelerate); only this block is affected.
    """
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:                 # scanning the libraries costs ms
        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


# =================================================================== rendering


class _Renderer:
    """Agg rendering of one Figure to PNG bytes, redrawing as little as possible.

    Artists marked animated are left out of the full draw; the rest (axes,
    ticks, labels, data points) is drawn once and kept as a background bitmap,
    and a redraw restores it and draws only the animated artists on top.
    ``invalidate()`` forces the next render to draw everything.
    """

    def __init__(self, figure: Figure) -> None:
        self.figure = figure
        self.canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) \
            else FigureCanvasAgg(figure)
        self.animated: list[Artist] = []
        self._background = None

    def animate(self, *artists: Artist) -> None:
        for a in artists:
            a.set_animated(True)
            self.animated.append(a)

    def invalidate(self) -> None:
        self._background = None

    def render(self) -> bytes:
        if self._background is None:
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        else:
            self.canvas.restore_region(self._background)
        for artist in self.animated:
            if artist.get_visible():
                self.figure.draw_artist(artist)
        rgb = np.asarray(self.canvas.buffer_rgba())[:, :, :3]
        return encode_png(rgb)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def encode_png(rgb: np.ndarray, level: int = 1) -> bytes:
    """A PNG file of an (height, width, 3) uint8 image, fast.

    PNG is zlib-compressed rows, each prefixed by a filter byte (0 = none).
    Fast zlib (level 1) on unfiltered rows is 2-3x quicker than Pillow's
    encoder for figures like these, at a similar size, and lossless.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"encode_png needs a (height, width, 3) uint8 array, "
                         f"got {rgb.dtype} {rgb.shape}")
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)   # filter byte 0
    rows[:, 1:] = rgb.reshape(height, 3 * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + _png_chunk(b"IEND", b""))


# =================================================================== Explorer


class Explorer:
    """Controls + a figure that redraws when a control changes.

    ``draw(explorer, values) -> bool`` updates the figure's artists from the
    control values (a dict name -> value) and returns True when the static
    part changed too (axis limits, titles), so everything must be redrawn.
    """

    def __init__(self, name: str, controls: dict[str, w.Widget], figure: Figure,
                 draw: Callable[["Explorer", dict[str, Any]], bool],
                 description: str = "") -> None:
        self.name = name
        self.controls = dict(controls)
        self.figure = figure
        self.artists: dict[str, Artist] = {}
        self.result: Any = None
        self.renderer = _Renderer(figure)
        self.png = b""
        self.timings_ms: list[float] = []
        self._draw = draw
        self._holding = False
        width, height = self.renderer.canvas.get_width_height()
        self.image = w.Image(format="png", layout=w.Layout(
            width=f"{width}px", max_width="100%", height="auto"))
        self.image.add_class("backprop-course-explorer-plot")
        header = [w.HTML(f"<b>{description}</b>")] if description else []
        row = w.HBox(list(self.controls.values()),
                     layout=w.Layout(flex_flow="row wrap", align_items="center"))
        self.widget = _ExplorerBox(header + [row, self.image])
        self.widget.explorer = self
        self.widget.add_class("backprop-course-explorer")
        for control in self.controls.values():
            control.observe(self._on_change, names="value")

    def values(self) -> dict[str, Any]:
        """The current control values, by name."""
        return {name: c.value for name, c in self.controls.items()}

    def _on_change(self, change: Any) -> None:
        if not self._holding:
            self.redraw()

    def update(self, **values: Any) -> "Explorer":
        """Set controls by name (as a learner would) and redraw once."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise KeyError(f"{self.name} has no control {sorted(unknown)}; its controls "
                           f"are {sorted(self.controls)}")
        self._holding = True
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            self._holding = False
        self.redraw()
        return self

    def redraw(self) -> bytes:
        """Recompute from the controls, redraw, and show the new PNG."""
        start = time.perf_counter()
        with _one_blas_thread():
            if self._draw(self, self.values()):
                self.renderer.invalidate()
            self.png = self.renderer.render()
        self.image.value = self.png
        self.timings_ms.append((time.perf_counter() - start) * 1e3)
        return self.png

    # ------------------------------------------------------------- display
    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={_short(v)}" for k, v in self.values().items())
        return f"{self.name}({settings})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        """The live widget, plus a PNG and text for front ends without widgets."""
        bundle = self.widget._widget_bundle()
        bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        bundle["text/plain"] = repr(self)
        return bundle


class _ExplorerBox(w.VBox):
    """The explorer's VBox; displayed on its own it keeps the static PNG fallback."""

    explorer: Optional[Explorer] = None

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        if self.explorer is None:
            return super()._repr_mimebundle_(**kwargs)
        return self.explorer._repr_mimebundle_()

    def _widget_bundle(self) -> dict:
        return super()._repr_mimebundle_() or {}


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return repr(value)


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


# =================================================================== learning rate

_GRID = 60      # the decision map is computed on a _GRID x _GRID grid


def learning_rate_explorer(data: training.DataLike = "moons",
                           hidden: Sequence[int] = (16, 16), activation: str = "relu",
                           init: str = "he", optimizer: str = "sgd", lr: float = 0.1,
                           steps: int = 100, max_steps: int = 500, seed: int = 0,
                           lr_range: tuple[float, float] = (1e-4, 10.0),
                           max_examples: Optional[int] = 300) -> Explorer:
    """Train the same network (same seed) with the learning rate on the slider.

    Left: the loss after every step (log scale, fixed axes so curves compare;
    the previous setting stays in grey). Right, for 2-D data: the decision
    boundary after the last step, coloured by the predicted class
    probabilities. A text line says what happened: learning, barely moving,
    or diverged (the loss rose, or became inf).

    ``data``: "moons", "spirals", "circles", "xor", "digits" or an (X, y) pair;
    the network is ``MLP([d, *hidden, classes])``, trained full batch by
    ``optimizer`` ("sgd", "momentum", "adam") with cross-entropy. Each
    learning rate is trained once and extended when more steps are asked for.
    To stay live (a new learning rate retrains in well under 0.1 s), a data
    set larger than ``max_examples`` is replaced by a fixed random subset of
    that size (``None`` keeps all); the plot says so.
    """
    X, y = training.load_data(data)
    n_total = len(X)
    if max_examples is not None and n_total > max_examples:
        keep = np.sort(np.random.default_rng(seed).permutation(n_total)[:max_examples])
        X, y = X[keep], y[keep]
    lo, hi = (math.log10(v) for v in lr_range)
    if not lo < hi:
        raise ValueError(f"lr_range must be (low, high) with low < high, got {lr_range}")
    runs: dict[float, training.TrainingRun] = {}
    # the decision map needs the parameters at each step count the slider
    # offers (multiples of 10); without a map only the latest are kept
    keep_every = math.gcd(10, int(steps)) if X.shape[1] == 2 else 0

    def run_for(rate: float) -> training.TrainingRun:
        key = float(f"{rate:.6g}")
        if key not in runs:
            runs[key] = training.TrainingRun(X, y, key, hidden=hidden,
                                             activation=activation, init=init,
                                             optimizer=optimizer, seed=seed,
                                             snapshot_every=keep_every)
        return runs[key]

    with _one_blas_thread():
        loss0 = run_for(lr).losses[0]
    y_low, y_high = 1e-3, max(10.0, 10 * loss0)

    two_d = X.shape[1] == 2
    figure = _new_figure(10.0 if two_d else 6.0, 3.9)
    if two_d:
        ax_loss, ax_map = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    else:
        ax_loss, ax_map = figure.subplots(1, 1), None
    ax_loss.set_yscale("log")
    ax_loss.set_ylim(y_low, y_high)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss (cross-entropy)")
    subset = f", {len(X)} of {n_total} examples" if len(X) < n_total else ""
    ax_loss.set_title(f"Loss while training (full batch{subset})", fontsize=11)
    ax_loss.grid(True, which="major", alpha=0.3)
    ax_loss.axhline(loss0, color="#999999", linewidth=0.8, linestyle=":")
    ghost, = ax_loss.plot([], [], color="#bbbbbb", linewidth=1.4)
    line, = ax_loss.plot([], [], color="#1f5fa8", linewidth=2.0)
    summary = ax_loss.text(0.98, 0.97, "", transform=ax_loss.transAxes, ha="right",
                           va="top", fontsize=9.5,
                           bbox=dict(facecolor="white", edgecolor="none", alpha=0.85))
    previous = ax_loss.text(0.98, 0.83, "", transform=ax_loss.transAxes, ha="right",
                            va="top", fontsize=8.5, color="#888888")

    explorer_artists: dict[str, Artist] = {"loss": line, "previous_loss": ghost,
                                           "summary": summary, "previous": previous}
    animated: list[Artist] = [ghost, line, summary, previous]
    grid = extent = None
    if ax_map is not None:
        grid, extent = training.decision_grid(X, resolution=_GRID)
        boundary = ax_map.imshow(np.full((_GRID, _GRID, 4), 255, dtype=np.uint8),
                                 extent=extent, origin="lower", aspect="auto",
                                 interpolation="bilinear")
        n_classes = int(y.max()) + 1
        colors = _CLASS_COLORS[np.arange(n_classes) % len(_CLASS_COLORS)]
        points = ax_map.scatter(X[:, 0], X[:, 1], c=colors[y], s=14, edgecolors="white",
                                linewidths=0.5)
        ax_map.set_xlim(extent[0], extent[1])
        ax_map.set_ylim(extent[2], extent[3])
        ax_map.set_xlabel("$x_1$")
        ax_map.set_ylabel("$x_2$")
        ax_map.set_title("Predicted class (colour) after training", fontsize=11)
        explorer_artists.update(boundary=boundary, points=points)
        animated += [boundary, points]
    figure.tight_layout()

    controls = {
        "lr": w.FloatLogSlider(value=lr, base=10, min=lo, max=hi, step=0.25,
                               description="learning rate", readout_format=".3g",
                               style={"description_width": "initial"},
                               layout=w.Layout(width="420px")),
        "steps": w.IntSlider(value=steps, min=10, max=max_steps, step=10,
                             description="steps", layout=w.Layout(width="360px")),
    }
    state: dict[str, Any] = {"steps": None, "previous": None}

    def draw(ex: Explorer, values: dict[str, Any]) -> bool:
        rate, n = float(values["lr"]), int(values["steps"])
        run = run_for(rate)
        history = run.loss_history(n)
        ex.result = run
        shown = np.clip(np.where(np.isfinite(history), history, y_high), y_low, y_high)
        line.set_data(np.arange(n + 1), shown)
        prev = state["previous"]
        if prev is not None and prev != (rate, n):
            p_run = run_for(prev[0])
            p_hist = p_run.loss_history(prev[1])
            ghost.set_data(np.arange(prev[1] + 1), np.clip(
                np.where(np.isfinite(p_hist), p_hist, y_high), y_low, y_high))
            previous.set_text(f"grey: previous lr = {prev[0]:.3g}, "
                              f"{prev[1]} steps")
        state["previous"] = (rate, n)
        text, color = _describe_run(run, n)
        summary.set_text(text)
        summary.set_color(color)
        if ax_map is not None:
            probs = run.predict_proba(grid, step=n)
            bad = ~np.all(np.isfinite(probs), axis=1)
            probs[bad] = 1.0 / probs.shape[1]
            rgb = probs @ colors[:probs.shape[1]]
            light = 0.55 + 0.45 * rgb                 # pale, so points stand out
            rgba = np.full((_GRID * _GRID, 4), 255, dtype=np.uint8)
            rgba[:, :3] = np.clip(light * 255, 0, 255).astype(np.uint8)
            ex.artists["boundary"].set_data(rgba.reshape(_GRID, _GRID, 4))
        full = state["steps"] != n
        if full:
            ax_loss.set_xlim(0, n)
            state["steps"] = n
        return full

    explorer = Explorer("learning_rate_explorer", controls, figure, draw,
                        description="Learning rate: too small crawls, too large "
                                    "diverges")
    explorer.artists.update(explorer_artists)
    explorer.renderer.animate(*animated)
    explorer.redraw()
    return explorer


def _describe_run(run: training.TrainingRun, steps: int) -> tuple[str, str]:
    """One line on what training did (training.loss_trend's verdict), and a colour."""
    history = run.loss_history(steps)
    start, end, peak = history[0], history[-1], float(np.max(history))
    accuracy = run.accuracies[steps]
    red, amber, green = "#c0392b", "#d68910", "#1e8449"
    trend = training.loss_trend(history)
    if trend == "not finite":
        return f"diverged: the loss became inf at step {run.diverged_at}", red
    if trend == "jumped and stuck":
        return (f"diverged: the loss jumped to {peak:.3g} and is stuck at "
                f"{end:.3g} (accuracy {accuracy:.0%})"), red
    if trend == "unstable":
        return (f"unstable: the loss jumped to {peak:.3g} before reaching {end:.3g} "
                f"(accuracy {accuracy:.0%})"), amber
    if trend == "rose":
        return (f"diverged: loss rose {start:.3g} \u2192 {end:.3g} "
                f"(accuracy {accuracy:.0%})"), red
    if trend == "flat":
        change = end / start - 1
        return (f"barely moving: loss {start:.3g} \u2192 {end:.3g} in {steps} steps "
                f"({change:+.0%})"), amber
    return (f"loss {start:.3g} \u2192 {end:.3g}, accuracy {accuracy:.0%}"), green


# =================================================================== depth


_ACTIVATION_OPTIONS = [("sigmoid", "sigmoid"), ("tanh", "tanh"), ("ReLU", "relu"),
                       ("Leaky ReLU", "leaky_relu")]
_INIT_OPTIONS = [("naive (std 0.01)", "naive"), ("Xavier", "xavier"), ("He", "he")]


def depth_explorer(depth: int = 20, activation: str = "sigmoid", init: str = "naive",
                   residual: bool = False, steps: int = 5, lr: float = 0.1,
                   width: int = 32, max_depth: int = 50, seed: int = 0) -> Explorer:
    """Per-layer gradient norms of a deep MLP, for any depth, activation, init, residual.

    Left: ‖dL/dW_l‖ for l = 1 (next to the input) ... depth, log scale, at
    initialisation and after ``steps`` SGD steps. Right: the spread (std) of
    each layer's output at initialisation, where the forward signal dies or
    explodes. Uses :func:`backprop_course.gradient_flow.gradient_flow` with a
    fixed seed, so the picture depends only on the controls.
    """
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    figure = _new_figure(10.0, 3.9)
    ax_grad, ax_act = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.35, 1]})
    init_line, = ax_grad.plot([], [], "o-", color="#1f5fa8", markersize=3.5,
                              linewidth=1.6, label="at initialisation")
    after_line, = ax_grad.plot([], [], "s--", color="#e67e22", markersize=3,
                               linewidth=1.2, label=f"after {steps} SGD steps")
    ax_grad.set_yscale("log")
    ax_grad.set_xlabel("layer l (1 = next to the input)")
    ax_grad.set_ylabel(r"gradient norm $\|\partial L/\partial W_l\|$")
    ax_grad.grid(True, which="major", alpha=0.3)
    ax_grad.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=8.5,
                   frameon=False, borderaxespad=0.2)
    act_line, = ax_act.plot([], [], "o-", color="#6c3483", markersize=3.5, linewidth=1.4)
    ax_act.set_yscale("log")
    ax_act.set_xlabel("layer l")
    ax_act.set_ylabel("std of layer output at init")
    ax_act.set_title("Forward signal", fontsize=10)
    ax_act.grid(True, which="major", alpha=0.3)
    for ax in (ax_grad, ax_act):
        _fast_log_axis(ax)
    figure.subplots_adjust(left=0.08, right=0.985, bottom=0.13, top=0.8, wspace=0.3)
    setting = figure.text(0.5, 0.985, "", ha="center", va="top", fontsize=11,
                          fontweight="bold")
    headline = figure.text(0.5, 0.915, "", ha="center", va="top", fontsize=10.5)

    compact = {"description_width": "initial"}
    controls = {
        "depth": w.IntSlider(value=depth, min=1, max=max_depth, step=1,
                             description="depth", style=compact,
                             layout=w.Layout(width="280px")),
        "activation": w.Dropdown(options=_ACTIVATION_OPTIONS, value=activation,
                                 description="activation", style=compact,
                                 layout=w.Layout(width="190px")),
        "init": w.Dropdown(options=_INIT_OPTIONS, value=init, description="init",
                           style=compact, layout=w.Layout(width="190px")),
        "residual": w.Checkbox(value=residual, description="residual x + F(x)",
                               indent=False, layout=w.Layout(width="150px")),
    }

    def draw(ex: Explorer, values: dict[str, Any]) -> bool:
        result = flow_lib.gradient_flow(values["depth"], values["activation"],
                                        values["init"], values["residual"], steps=steps,
                                        lr=lr, width=width, seed=seed)
        ex.result = result
        layers = np.arange(1, result.depth + 1)
        init_line.set_data(layers, _positive(result.grad_norms_init))
        after_line.set_data(layers, _positive(result.grad_norms_after))
        act_line.set_data(layers, _positive(result.activation_std))
        for ax, series in ((ax_grad, [result.grad_norms_init, result.grad_norms_after]),
                           (ax_act, [result.activation_std])):
            _log_limits(ax, np.concatenate(series))
            ax.set_xlim(0.5, max(result.depth, 2) + 0.5)
        label = {v: k for k, v in _ACTIVATION_OPTIONS}[result.activation]
        init_name = {v: k for k, v in _INIT_OPTIONS}[result.init]
        skip = f", residual (scale 1/\u221a{result.depth})" if result.residual else ""
        setting.set_text(f"{result.depth} layers, {label}, {init_name} init{skip}")
        ratio = result.first_to_last
        if result.diverged:
            headline.set_text("the loss became inf/nan during the steps: "
                              "the gradients exploded")
            headline.set_color("#c0392b")
        elif math.isfinite(ratio):
            shown = f"{ratio:.2g}" if 1e-2 <= ratio <= 1e2 else f"{ratio:.1e}"
            headline.set_text(f"layer 1 gets {shown} \u00d7 the gradient of "
                              f"layer {result.depth} at initialisation")
            headline.set_color("#c0392b" if ratio < 1e-3 or ratio > 1e3 else "#1e8449")
        else:
            headline.set_text("the last layer's gradient is 0")
            headline.set_color("#c0392b")
        return True

    explorer = Explorer("depth_explorer", controls, figure, draw,
                        description="Gradient flow: how much gradient reaches each layer")
    explorer.artists.update(grad_init=init_line, grad_after=after_line,
                            activation_std=act_line, headline=headline,
                            setting=setting)
    explorer.redraw()
    return explorer


def _fast_log_axis(ax: Any) -> None:
    """Log y axis with at most ~7 plain "1e-30" labels (no mathtext: cheap to draw).

    Integer ticks on x (layers).
    """
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, numticks=7))
    ax.yaxis.set_minor_locator(ticker.NullLocator())
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(_power_label))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=10, integer=True))


def _power_label(value: float, _position: Any = None) -> str:
    if value <= 0 or not math.isfinite(value):
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) > 1e-6:
        return f"{value:.2g}"
    exponent = int(round(exponent))
    return {0: "1", 1: "10", -1: "0.1"}.get(exponent, f"1e{exponent}")


def _positive(values: np.ndarray) -> np.ndarray:
    """Log axes cannot show 0 or nan: leave those points out (nan)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _log_limits(ax: Any, values: np.ndarray) -> None:
    good = values[np.isfinite(values) & (values > 0)]
    if good.size == 0:
        ax.set_ylim(1e-3, 1e1)
        return
    low, high = float(good.min()), float(good.max())
    a, b = math.log10(low), math.log10(high)
    if b - a < 2.0:                 # show at least two decades, centred on the data
        middle = (a + b) / 2
        a, b = middle - 1.0, middle + 1.0
    pad = 0.06 * (b - a)
    ax.set_ylim(10 ** (a - pad), 10 ** (b + pad))


# =================================================================== graph


def _default_circuit(x: Value, y: Value, z: Value) -> Value:
    """The lesson-02 circuit: q = x + y, f = q z."""
    q = x + y
    q.label = "q"
    f = q * z
    f.label = "f"
    return f


def graph_explorer(fn: Optional[Callable[..., Value]] = None,
                   inputs: Optional[dict[str, float]] = None, low: float = -5.0,
                   high: float = 5.0, step: float = 0.1, title: Optional[str] = None,
                   fmt: str = "{:.4g}") -> Explorer:
    """Sliders on the inputs of a Value circuit; the graph shows every value and grad.

    ``fn`` takes one Value per input, as keyword arguments named like its
    parameters, and returns the output Value; the explorer labels the inputs
    with their names, calls ``fn``, runs ``backward()`` and redraws with
    :func:`backprop_course.viz.draw_graph`. Label intermediate nodes inside
    ``fn`` (``q.label = "q"``) to see their names. Start values come from
    ``inputs`` or from the defaults of ``fn``'s parameters (else 1.0).

    Default: the lesson-02 circuit f = (x + y) z at x = -2, y = 5, z = -4.

    >>> ex = graph_explorer()
    >>> ex.update(x=1.0).artists["drawing"].by_label()["z"]["grad"]
    'grad 6'
    """
    if fn is None:
        fn = _default_circuit
        inputs = {"x": -2.0, "y": 5.0, "z": -4.0} if inputs is None else inputs
        title = "f = (x + y) \u00b7 z" if title is None else title
    if not callable(fn):
        raise TypeError(f"graph_explorer needs a function of Values, got {fn!r}")
    parameters = inspect.signature(fn).parameters
    names = [p.name for p in parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not names:
        raise ValueError("graph_explorer: the function needs at least one input "
                         "parameter, e.g. lambda x, y: x * y")
    start = {}
    for name in names:
        default = parameters[name].default
        if inputs is not None and name in inputs:
            start[name] = float(inputs[name])
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            start[name] = float(default)
        else:
            start[name] = 1.0
    if inputs is not None and set(inputs) - set(names):
        raise ValueError(f"graph_explorer: inputs {sorted(set(inputs) - set(names))} "
                         f"are not parameters of the function ({', '.join(names)})")

    def evaluate(values: dict[str, float]) -> Value:
        leaves = {name: Value(float(values[name]), label=name) for name in names}
        root = fn(**leaves)
        if not isinstance(root, Value):
            raise TypeError(f"graph_explorer: the function must return a Value, got "
                            f"{type(root).__name__}")
        root.backward()
        return root

    figure = viz.draw_graph(evaluate(start), title=title, fmt=fmt)  # sized to the graph
    height = figure.get_size_inches()[1]
    state: dict[str, Any] = {"drawing": figure.axes[0].graph_drawing}

    def redraw_all(root_value: Value) -> None:
        figure.clear()
        top = 1.0 - (0.35 / height if title else 0.0)
        ax = figure.add_axes((0.0, 0.0, 1.0, top))
        viz.draw_graph(root_value, ax=ax, title=title, fmt=fmt)
        state["drawing"] = ax.graph_drawing

    controls = {name: w.FloatSlider(value=start[name], min=min(low, start[name]),
                                    max=max(high, start[name]), step=step,
                                    description=name, continuous_update=True,
                                    readout_format=".2f",
                                    layout=w.Layout(width="300px"))
                for name in names}

    def animate_texts(ex: Explorer) -> None:
        """Only the numbers change between redraws: draw just those."""
        ex.renderer.animated = []
        for _, data_text, grad_text in state["drawing"].texts:
            ex.renderer.animate(data_text, grad_text)

    def draw(ex: Explorer, values: dict[str, Any]) -> bool:
        try:
            root_value = evaluate(values)
        except (ValueError, ZeroDivisionError, OverflowError) as err:
            # e.g. log of a negative number: say so on the figure, keep going
            figure.clear()
            ex.renderer.animated = []
            figure.text(0.5, 0.5, f"cannot evaluate here:\n{err}", ha="center",
                        va="center", fontsize=10, color="#c0392b", wrap=True)
            state.pop("drawing", None)
            ex.result = None
            return True
        ex.result = root_value
        drawing = state.get("drawing")
        if drawing is not None and drawing.update(root_value):
            ex.artists["drawing"] = drawing
            if not ex.renderer.animated:
                animate_texts(ex)
                return True
            return False
        redraw_all(root_value)          # the graph's shape changed
        ex.artists["drawing"] = state["drawing"]
        animate_texts(ex)
        return True

    explorer = Explorer("graph_explorer", controls, figure, draw,
                        description="Move an input: every value and gradient updates")
    explorer.redraw()
    return explorer


# =================================================================== progress


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (where a widget front end may be listening)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class Progress:
    """A progress bar over an iterable (see :func:`progress`)."""

    def __init__(self, iterable: Iterable, total: Optional[int] = None,
                 desc: str = "", min_interval: float = 0.1) -> None:
        self.iterable = iterable
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.total = total
        self.desc = desc
        self.n = 0
        self.postfix = ""
        self.min_interval = min_interval
        self._last = 0.0
        self._handle = None
        self._bar: Optional[w.IntProgress] = None
        self._label: Optional[w.Label] = None

    def set_postfix(self, **values: Any) -> None:
        """Numbers shown next to the bar while it runs (e.g. ``loss=0.31``)."""
        self.postfix = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in values.items())
        self._refresh(force=False)

    def _count(self) -> str:
        return f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"

    def final_line(self, done: bool = True) -> str:
        """What stays in the notebook: deterministic, no timings."""
        state = "done" if done else "stopped"
        return f"{self.desc} {self._count()} {state}".strip()

    def _start(self) -> None:
        if not _in_kernel():
            return
        from IPython.display import display
        self._bar = w.IntProgress(value=0, min=0, max=max(self.total or 1, 1),
                                  description=self.desc)
        self._label = w.Label(value=self._count())
        box = w.HBox([self._bar, self._label])
        bundle = box._repr_mimebundle_() or {}
        bundle["text/plain"] = f"{self.desc} 0/{self.total}".strip()
        self._handle = display(bundle, raw=True, display_id=True)
        self._box = box

    def _refresh(self, force: bool) -> None:
        if self._bar is None:
            return
        now = time.perf_counter()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        self._bar.value = min(self.n, self._bar.max)
        self._label.value = self._count() + (f" \u00b7 {self.postfix}" if self.postfix else "")

    def _finish(self, done: bool) -> None:
        line = self.final_line(done)
        if self._handle is None:
            print(line)
            return
        self._refresh(force=True)
        if self._label is not None:
            self._label.value = line + (f" \u00b7 {self.postfix}" if self.postfix else "")
        if not done and self._bar is not None:
            self._bar.bar_style = "warning"
        elif self._bar is not None:
            self._bar.bar_style = "success"
        bundle = self._box._repr_mimebundle_() or {}
        bundle["text/plain"] = line          # what nbval and static renders see
        self._handle.update(bundle, raw=True)

    def __iter__(self) -> Iterator:
        self._start()
        done = False
        try:
            for item in self.iterable:
                yield item
                self.n += 1
                self._refresh(force=False)
            done = True
        finally:
            self._finish(done)

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("this progress bar has no total")
        return self.total


def progress(iterable: Iterable, total: Optional[int] = None, desc: str = "") -> Progress:
    """Wrap a loop in a progress bar: ``for epoch in progress(range(30), desc="epoch")``.

    In Jupyter it shows a live bar (with ``bar.set_postfix(loss=...)`` numbers
    beside it); when the loop ends, the output that stays is the one line
    ``"epoch 30/30 done"`` (text for nbval and static renders, the full bar
    for a widget front end). Outside Jupyter it prints only that line. No
    timings are kept, so re-running a notebook gives identical outputs.
    """
    return Progress(iterable, total=total, desc=desc)

"""How live do the explorers feel? Milliseconds per slider change.

A slider change runs the explorer's whole redraw in the kernel: the pure
computation (training, gradient flow, the Value graph), the matplotlib
update, the Agg render and the PNG encoding that goes to the browser. This
script moves each control many times, as a learner dragging it would, and
prints the median and 90th percentile against the targets:

    learning_rate_explorer   <= 100 ms median (a new learning rate trains 100 steps)
    graph_explorer           <= 100 ms median
    depth_explorer           <= 300 ms median at 50 layers

The websocket hop and the browser's image decode are not included (about a
millisecond for these ~50-80 kB PNGs on a local server).

Run:  python benchmarks/bench_widgets.py [--repeats N]
"""
from __future__ import annotations

import argparse
import itertools
import os
import platform
import time

import numpy as np
import matplotlib

matplotlib.use("Agg")

from backprop_course import widgets  # noqa: E402


def timed(change, values) -> np.ndarray:
    """Milliseconds for change(v), for each v in values."""
    out = []
    for v in values:
        start = time.perf_counter()
        change(v)
        out.append((time.perf_counter() - start) * 1e3)
    return np.array(out)


def report(name: str, ms: np.ndarray, target: float | None) -> bool:
    median, p90 = np.median(ms), np.percentile(ms, 90)
    verdict = ""
    if target is not None:
        ok = median <= target
        verdict = (f"target {target:>4.0f} ms  median/target {median / target:4.2f}  "
                   f"{'PASS' if ok else 'MISS'}")
    else:
        ok = True
    print(f"  {name:<46s} n={len(ms):>3d}  median {median:6.1f} ms  p90 {p90:6.1f} ms  "
          f"{verdict}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="sweeps over each control (default 3)")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"explorer latency per slider change  ({platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {load:.2f})")
    ok = True

    # ---- graph explorer: drag x across its range
    graph = widgets.graph_explorer()
    xs = np.round(np.linspace(-5, 5, 101), 1)
    ms = np.concatenate([timed(lambda v: graph.update(x=float(v)), xs)
                         for _ in range(args.repeats)])
    ok &= report("graph_explorer: move x", ms, 100)

    # ---- learning-rate explorer: every slider position, first visit and again
    positions = [10 ** (-4 + 0.25 * k) for k in range(21)]
    cold = []
    for _ in range(args.repeats):
        lr = widgets.learning_rate_explorer()          # fresh: nothing cached
        order = positions[1:] + positions[:1]          # start elsewhere than 0.1
        cold.append(timed(lambda v: lr.update(lr=v), order))
    ms_cold = np.concatenate(cold)
    ok &= report("learning_rate_explorer: new lr (trains 100 steps)", ms_cold, 100)
    ms_warm = np.concatenate([timed(lambda v: lr.update(lr=v), positions)
                              for _ in range(args.repeats)])
    report("learning_rate_explorer: lr seen before (cached)", ms_warm, None)
    lr.update(lr=0.1, steps=100)
    ms_steps = timed(lambda v: lr.update(steps=int(v)), range(110, 510, 10))
    report("learning_rate_explorer: steps +10 (trains 10 more)", ms_steps, None)

    # ---- lesson 03's explorer: digits (300 of the 1437 images), 64-64-10
    cold = []
    for _ in range(args.repeats):
        digits = widgets.learning_rate_explorer(data="digits", hidden=(64,), lr=0.5,
                                                steps=100, max_steps=300)
        order = [v for v in positions if abs(v - 0.5) > 0.01]
        cold.append(timed(lambda v: digits.update(lr=v), order))
    ms_digits = np.concatenate(cold)
    ok &= report("learning_rate_explorer (lesson 03 digits): new lr", ms_digits, 100)

    # ---- depth explorer at 50 layers: every activation x init x residual
    depth = widgets.depth_explorer(depth=50)
    combos = list(itertools.product(["sigmoid", "tanh", "relu", "leaky_relu"],
                                    ["naive", "xavier", "he"], [False, True]))
    ms = np.concatenate([
        timed(lambda c: depth.update(activation=c[0], init=c[1], residual=c[2]), combos)
        for _ in range(args.repeats)])
    ok &= report("depth_explorer: 50 layers, change a control", ms, 300)
    depths = list(range(1, 51, 7))
    ms = timed(lambda d: depth.update(depth=int(d)), depths * args.repeats)
    report("depth_explorer: move depth 1..50", ms, None)

    print("all medians within target" if ok else "SOME MEDIANS MISS THE TARGET")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

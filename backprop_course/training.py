"""A small, seeded, full-batch training loop: the maths behind the learning-rate explorer.

:class:`TrainingRun` trains one MLP classifier on one data set with one
learning rate, from a fixed seed, and keeps every step: the loss, the
accuracy, and the parameters. Training is deterministic (full batch, seeded
initialisation), so the run can be extended step by step and gives exactly
what a fresh run with more steps would give; the explorer uses that to
answer a slider change with only the steps it has not computed yet.

>>> from backprop_course import datasets
>>> X, y = datasets.xor()
>>> run = train(X, y, lr=0.5, steps=300, hidden=(8,), activation="tanh",
...             init="xavier")
>>> run.losses.shape, bool(run.losses[-1] < 0.05), float(run.accuracies[-1])
((301,), True, 1.0)
"""
from __future__ import annotations

import copy
import math
from typing import Optional, Sequence, Union

import numpy as np

from backprop_course import arguments, datasets, losses, nn, optim
from backprop_course.tensor import Tensor, no_grad

__all__ = ["TrainingRun", "train", "load_data", "loss_trend", "DATASETS", "OPTIMIZERS",
           "TRENDS", "DIVERGED", "decision_grid"]

#: data sets ``load_data`` knows by name: name -> (X, y), fixed seeds
DATASETS = ("moons", "spirals", "circles", "xor", "digits")
OPTIMIZERS = ("sgd", "momentum", "adam")

DataLike = Union[str, tuple]


def load_data(data: DataLike) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) from a name in :data:`DATASETS` or an ``(X, y)`` pair.

    The named sets are fixed (seed 0): ``moons`` 200 points with noise 0.15,
    ``spirals`` 2 arms of 100 points, ``circles`` 200 points, ``xor`` the four
    points, ``digits`` the 1437 training images (64 pixels scaled to [0, 1]).
    """
    if isinstance(data, str):
        name = data.lower()
        if name == "moons":
            return datasets.moons(n=200, noise=0.15, seed=0)
        if name == "spirals":
            return datasets.spirals(n_per_class=100, n_classes=2, seed=0)
        if name == "circles":
            return datasets.circles(n=200, noise=0.08, seed=0)
        if name == "xor":
            return datasets.xor()
        if name == "digits":
            d = datasets.digits()
            return d.X_train, d.y_train
        raise ValueError(f"unknown data set {data!r}; use one of {', '.join(DATASETS)} "
                         "or pass (X, y) arrays")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X = np.asarray(data[0], dtype=np.float64)
        y = np.asarray(data[1])
        if X.ndim != 2:
            raise ValueError(f"X must have shape (n, d), got {X.shape}")
        if y.shape != (X.shape[0],) or y.dtype.kind not in "iu":
            raise ValueError(f"y must be integer class labels of shape ({X.shape[0]},), "
                             f"got shape {y.shape} and dtype {y.dtype}")
        if y.min() < 0:
            raise ValueError("class labels must be 0, 1, 2, ...; got a negative label")
        return X, y.astype(np.int64)
    raise TypeError(f"data must be a name ({', '.join(DATASETS)}) or an (X, y) pair, "
                    f"got {type(data).__name__}")


#: what a loss curve can do, as :func:`loss_trend` names it
TRENDS = ("not finite", "jumped and stuck", "unstable", "rose", "flat", "learning")
#: the trends that count as "training diverged" (the learning rate was too large)
DIVERGED = ("not finite", "jumped and stuck", "rose")


def loss_trend(history: Union[Sequence[float], np.ndarray]) -> str:
    """What a loss curve did, from its first to its last entry: one of :data:`TRENDS`.

    "not finite"        the loss ended as inf or NaN
    "jumped and stuck"  it went above twice its start and ended within 10% of
                        the start or higher: knocked into a state it cannot
                        learn from (e.g. dead ReLUs)
    "unstable"          it went above twice its start but then came down
    "rose"              it ended more than 5% above its start
    "flat"              it ended within 10% below its start
    "learning"          it fell by more than 10%

    The first, second and fourth count as diverged (:data:`DIVERGED`).

    >>> [loss_trend(h) for h in ([1.0, 0.5, 0.2], [1.0, 3.0, 2.5], [1.0, math.inf])]
    ['learning', 'jumped and stuck', 'not finite']
    """
    curve = np.asarray(history, dtype=np.float64)
    start, end = curve[0], curve[-1]
    if not math.isfinite(end):
        return "not finite"
    if curve.max() > 2 * start:
        return "jumped and stuck" if end > 0.9 * start else "unstable"
    if end > 1.05 * start:
        return "rose"
    if end > 0.9 * start:
        return "flat"
    return "learning"


class TrainingRun:
    """Full-batch training of ``MLP([d, *hidden, classes])`` with cross-entropy.

    After ``run_to(T)``: ``losses[t]`` and ``accuracies[t]`` (t = 0..T) are the
    loss and training accuracy of the network after t updates, and
    ``parameters_at(t)`` its parameters. Once the loss is no longer a finite
    number the run stops: later entries are ``inf`` and ``diverged_at`` says
    when it happened. ``snapshot_every=k`` keeps the parameters of every k-th
    step only (0: only the latest), to save memory on long runs.

    ``optimizer``: "sgd" (p ← p − lr·g), "momentum" (SGD with μ = 0.9) or
    "adam". The seed fixes the initial weights, so two runs that differ only
    in ``lr`` start from the same network.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, lr: float,
                 hidden: Sequence[int] = (16, 16), activation: str = "relu",
                 init: str = "he", optimizer: str = "sgd", seed: int = 0,
                 snapshot_every: int = 1) -> None:
        self.snapshot_every = arguments.integer(snapshot_every, "snapshot_every", 0)
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.int64)
        self.lr = arguments.positive(lr, "learning rate")
        self.n_classes = int(self.y.max()) + 1 if self.y.size else 2
        self.n_classes = max(self.n_classes, 2)
        sizes = [self.X.shape[1], *[int(h) for h in hidden], self.n_classes]
        self.net = nn.MLP(sizes, activation=activation, init=init, rng=seed)
        self.params = self.net.parameters()
        name = arguments.choice(optimizer, OPTIMIZERS, "optimizer")
        if name == "sgd":
            self.optimizer: optim.Optimizer = optim.SGD(self.params, lr=self.lr)
        elif name == "momentum":
            self.optimizer = optim.SGD(self.params, lr=self.lr, momentum=0.9)
        else:
            self.optimizer = optim.Adam(self.params, lr=self.lr)
        self._X = Tensor(self.X)
        self.diverged_at: Optional[int] = None
        self._losses: list[float] = []
        self._accuracies: list[float] = []
        self._snapshots: dict[int, list[np.ndarray]] = {}
        self._pending: Optional[Tensor] = None   # loss graph at the current params
        self._forward()

    # ------------------------------------------------------------ training
    def _forward(self) -> None:
        """Loss and accuracy of the current parameters (graph kept for backward)."""
        with np.errstate(all="ignore"):
            logits = self.net(self._X)
            loss = losses.cross_entropy(logits, self.y)
        value = loss.item()
        step = len(self._losses)
        # optimiser steps assign new arrays, so keeping p.data keeps these numbers
        self._current = [p.data for p in self.params]
        if self.snapshot_every and step % self.snapshot_every == 0:
            self._snapshots[step] = self._current
        self._losses.append(value if math.isfinite(value) else math.inf)
        self._accuracies.append(float(np.mean(logits.data.argmax(axis=1) == self.y)))
        self._pending = loss if math.isfinite(value) else None
        if not math.isfinite(value) and self.diverged_at is None:
            self.diverged_at = len(self._losses) - 1

    def run_to(self, steps: int) -> "TrainingRun":
        """Make sure the first ``steps`` updates are done (extends, never repeats)."""
        arguments.integer(steps, "steps", 0)
        while len(self._losses) <= steps:
            if self._pending is None:                 # diverged: nothing to train
                self._losses.append(math.inf)
                self._accuracies.append(self._accuracies[-1])
                continue
            self.optimizer.zero_grad()
            with np.errstate(all="ignore"):
                self._pending.backward()
                self.optimizer.step()
            self._forward()
        return self

    @property
    def steps(self) -> int:
        """Number of updates done so far."""
        return len(self._losses) - 1

    @property
    def losses(self) -> np.ndarray:
        """Loss after 0, 1, ..., ``steps`` updates (``inf`` once diverged)."""
        return np.array(self._losses)

    @property
    def accuracies(self) -> np.ndarray:
        """Training accuracy after 0, 1, ..., ``steps`` updates."""
        return np.array(self._accuracies)

    def loss_history(self, steps: int) -> np.ndarray:
        """The first ``steps + 1`` losses, training further if needed."""
        self.run_to(steps)
        return np.array(self._losses[:steps + 1])

    def diverged(self, steps: Optional[int] = None) -> bool:
        """Did training fail by being too fast?

        True when the loss curve of the first ``steps`` updates is one of the
        :data:`DIVERGED` trends of :func:`loss_trend`: it stopped being finite,
        ended above where it started (by more than 5%), or jumped above twice
        its start and stayed near it (within 10%).
        """
        steps = self.steps if steps is None else steps
        return loss_trend(self.loss_history(steps)) in DIVERGED

    def parameters_at(self, step: int) -> list[np.ndarray]:
        """The parameter arrays after ``step`` updates (do not modify them).

        Kept for every ``snapshot_every``-th step (and the latest one); a
        diverged run keeps the last parameters it had.
        """
        self.run_to(step)
        if self.diverged_at is not None and step >= self.diverged_at:
            return self._current
        if step == self.steps:
            return self._current
        if step in self._snapshots:
            return self._snapshots[step]
        raise ValueError(f"the parameters after step {step} were not kept "
                         f"(snapshot_every={self.snapshot_every}); ask for a multiple "
                         "of it, or make the run with snapshot_every=1")

    def predict_proba(self, X: np.ndarray, step: Optional[int] = None) -> np.ndarray:
        """Class probabilities, shape (n, classes), of the net after ``step`` updates.

        The net itself runs, inside ``no_grad()`` (no graph is recorded, so a
        grid of thousands of points costs one matrix product per layer); for
        an earlier step, a copy of the net with that step's parameters does.
        """
        step = self.steps if step is None else step
        weights = self.parameters_at(step)      # trains up to ``step`` if needed
        net = self.net
        if step < self.steps:                   # the training net stays as it is
            net = copy.deepcopy(self.net)
            for p, data in zip(net.parameters(), weights):
                p.data = data
        with no_grad(), np.errstate(all="ignore"):
            logits = net(np.asarray(X, dtype=np.float64)).data
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=1, keepdims=True)


def train(X: np.ndarray, y: np.ndarray, lr: float, steps: int = 150,
          hidden: Sequence[int] = (16, 16), activation: str = "relu", init: str = "he",
          optimizer: str = "sgd", seed: int = 0, snapshot_every: int = 1) -> TrainingRun:
    """Train from ``seed`` for ``steps`` full-batch updates; see :class:`TrainingRun`."""
    return TrainingRun(X, y, lr, hidden=hidden, activation=activation, init=init,
                       optimizer=optimizer, seed=seed,
                       snapshot_every=snapshot_every).run_to(steps)


def decision_grid(X: np.ndarray, resolution: int = 90, margin: float = 0.25
                  ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Points covering the 2-D data: (grid of shape (resolution², 2), extent).

    ``extent`` = (x_min, x_max, y_min, y_max), the box around X widened by
    ``margin`` times its size, as ``imshow(..., extent=extent, origin="lower")``
    wants it; row r of the image is the r-th y value from the bottom.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"a decision boundary needs 2-D inputs, got X of shape {X.shape}")
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = margin * (hi - lo)
    lo, hi = lo - pad, hi + pad
    gx = np.linspace(lo[0], hi[0], resolution)
    gy = np.linspace(lo[1], hi[1], resolution)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    return grid, (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))

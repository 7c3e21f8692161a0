"""Data sets for the course: real handwritten digits and small generated problems.

Everything is offline and deterministic: the digits ship with the package
(``backprop_course/data/digits.npz``, see ``DIGITS_LICENSE.md`` there), and every
generated set takes a ``seed`` (an int, or a ``numpy.random.Generator`` to draw from).

Inputs ``X`` are float64 arrays of shape ``(n, d)``; class labels ``y`` are int64
arrays of shape ``(n,)``, ready for ``losses.cross_entropy(logits, y)``.

>>> from backprop_course import datasets
>>> X, y = datasets.moons(n=200, noise=0.1, seed=0)
>>> X.shape, y.shape
((200, 2), (200,))
"""
from __future__ import annotations

import functools
import numbers
from importlib import resources
from typing import NamedTuple

import numpy as np

from backprop_course import arguments

__all__ = [
    "Digits",
    "digits",
    "digits_images",
    "xor",
    "spirals",
    "moons",
    "circles",
    "mirror_symmetry",
    "one_hot",
]

SeedLike = int | np.random.Generator  # a seed, or a generator to draw from


# ---------------------------------------------------------------- argument checks


def _rng(seed: SeedLike) -> np.random.Generator:
    """A data set must be the same on every machine: no unseeded default."""
    return arguments.as_rng(seed, allow_none=False, name="seed")


# ---------------------------------------------------------------- handwritten digits


class Digits(NamedTuple):
    """The digits with the course's fixed train/test split.

    ``X_*`` are float64 of shape ``(n, 64)`` with pixels scaled to [0, 1] (raw / 16),
    row-major: pixel ``(r, c)`` of the 8x8 image is column ``8*r + c``.
    ``y_*`` are int64 digits 0..9. Unpacks as ``X_train, y_train, X_test, y_test``.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @staticmethod
    def images(X: np.ndarray) -> np.ndarray:
        """Reshape rows of 64 pixels back to 8x8 images for plotting: ``(n, 8, 8)``."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != 64:
            raise ValueError(f"expected an array of shape (n, 64), got {X.shape}")
        return X.reshape(-1, 8, 8)


@functools.cache
def _digits_arrays() -> dict[str, np.ndarray]:
    """Read ``data/digits.npz`` once; the arrays are made read-only and shared."""
    path = resources.files("backprop_course") / "data" / "digits.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


_SPLITS = ("train", "test", "all")


def _rows(split: str) -> np.ndarray | slice:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if split == "all":
        return slice(None)
    return _digits_arrays()[f"{split}_index"].astype(np.intp)


def digits_images(split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Raw digit images and labels of one split: ``(images, labels)``.

    ``images`` is uint8 of shape ``(n, 8, 8)`` with the original values 0..16 (each
    pixel counts the "on" pixels in a 4x4 block of a 32x32 bitmap); ``labels`` is
    int64 0..9.
    ``split`` is ``"train"`` (1437), ``"test"`` (360) or ``"all"`` (1797, file order).
    Returns fresh copies: changing them does not change later calls.
    """
    rows = _rows(split)
    data = _digits_arrays()
    return data["images"][rows].copy(), data["labels"][rows].astype(np.int64)


def digits() -> Digits:
    """Handwritten digits (UCI optdigits, Alpaydin & Kaynak; CC BY 4.0), split 1437/360.

    1797 grey-level 8x8 images of the digits 0..9 from 13 writers (scikit-learn's copy
    of the UCI test set). The split is fixed and stored in the package: 20% of each
    digit is in the test set (per digit 0..9: 36 37 35 37 36 36 36 36 35 36),
    identical on every machine. Use the test set only to report the final accuracy.

    >>> X_train, y_train, X_test, y_test = digits()
    >>> X_train.shape, X_test.shape
    ((1437, 64), (360, 64))
    >>> Digits.images(X_test).shape     # 8x8 images again, e.g. for plt.imshow
    (360, 8, 8)
    """
    parts = []
    for split in ("train", "test"):
        images, labels = digits_images(split)
        parts += [images.reshape(len(images), 64).astype(np.float64) / 16.0, labels]
    return Digits(*parts)


# ---------------------------------------------------------------- generated sets


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: ``X`` float64 (4, 2), ``y`` int64 (4,) = x1 XOR x2.

    Rows are (0,0), (0,1), (1,0), (1,1) with labels 0, 1, 1, 0. No straight line
    separates the classes, so a network needs a hidden layer. For a squared-error
    target use ``y[:, None].astype(float)``.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


def spirals(
    n_per_class: int = 100,
    n_classes: int = 2,
    noise: float = 0.2,
    turns: float = 0.75,
    seed: SeedLike = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class (CS231n-style; two arms = "two spirals").

    Arm ``k`` has points at radius ``r`` from 0 to 1 (evenly spaced) and angle
    ``theta = 2*pi*k/n_classes + 2*pi*turns*r + noise * N(0, 1)``, i.e. the noise is in
    radians, as in the CS231n notes. ``X`` = (r sin theta, r cos theta), float64
    ``(n_per_class * n_classes, 2)``; ``y`` int64, grouped by class (shuffle for
    mini-batches). With ``n_classes=2`` the arms are point reflections of each other.
    """
    n = arguments.integer(n_per_class, "n_per_class", 1)
    k = arguments.integer(n_classes, "n_classes", 2)
    noise = arguments.nonnegative(noise, "noise")
    turns = arguments.nonnegative(turns, "turns")
    rng = _rng(seed)
    r = np.linspace(0.0, 1.0, n)
    X = np.empty((n * k, 2))
    y = np.repeat(np.arange(k, dtype=np.int64), n)
    for c in range(k):
        start = 2 * np.pi * c / k
        theta = start + 2 * np.pi * turns * r + noise * rng.standard_normal(n)
        X[c * n:(c + 1) * n] = np.column_stack([r * np.sin(theta), r * np.cos(theta)])
    return X, y


def moons(
    n: int = 200, noise: float = 0.1, seed: SeedLike = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles ("moons"), like scikit-learn's ``make_moons``.

    Class 0: ``(cos t, sin t)``; class 1: ``(1 - cos t, 0.5 - sin t)``, ``t`` evenly
    spaced in [0, pi]; then Gaussian noise of standard deviation ``noise`` on both
    coordinates. ``n`` >= 2 points, ``n // 2`` in class 1 and the rest in class 0.
    Returns ``X`` float64 (n, 2) and ``y`` int64 (n,), grouped by class.
    """
    n = arguments.integer(n, "n", 2)
    noise = arguments.nonnegative(noise, "noise")
    rng = _rng(seed)
    n1 = n // 2
    n0 = n - n1
    t0 = np.linspace(0.0, np.pi, n0)
    t1 = np.linspace(0.0, np.pi, n1)
    X = np.concatenate(
        [
            np.column_stack([np.cos(t0), np.sin(t0)]),
            np.column_stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)]),
        ]
    )
    X += noise * rng.standard_normal(X.shape)
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    return X, y


def circles(
    n: int = 200, noise: float = 0.05, factor: float = 0.5, seed: SeedLike = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A circle inside a circle, like scikit-learn's ``make_circles``.

    Class 0 lies on the unit circle, class 1 on a circle of radius ``factor``
    (0 < factor < 1), angles evenly spaced; then Gaussian noise of standard deviation
    ``noise``. ``n`` >= 2 points, ``n // 2`` in class 1. No line separates them, but
    the radius does. Returns ``X`` float64 (n, 2), ``y`` int64 (n,), grouped by class.
    """
    n = arguments.integer(n, "n", 2)
    noise = arguments.nonnegative(noise, "noise")
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not (
        0 < factor < 1
    ):
        raise ValueError(f"factor must be a number with 0 < factor < 1, got {factor!r}")
    rng = _rng(seed)
    n1 = n // 2
    n0 = n - n1
    t0 = np.linspace(0.0, 2 * np.pi, n0, endpoint=False)
    t1 = np.linspace(0.0, 2 * np.pi, n1, endpoint=False)
    X = np.concatenate(
        [
            np.column_stack([np.cos(t0), np.sin(t0)]),
            float(factor) * np.column_stack([np.cos(t1), np.sin(t1)]),
        ]
    )
    X += noise * rng.standard_normal(X.shape)
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    return X, y


def mirror_symmetry() -> tuple[np.ndarray, np.ndarray]:
    """The 64 patterns of the 1986 symmetry task (Rumelhart, Hinton & Williams).

    ``X`` float64 (64, 6): row ``i`` is ``i`` in binary, most significant bit first,
    as 0/1. ``y`` float64 (64, 1): 1.0 when the pattern reads the same backwards
    (``x[j] == x[5 - j]`` for all j), else 0.0. Exactly 8 = 2**3 patterns are
    symmetric: the first three bits fix the last three.
    """
    i = np.arange(64)
    X = ((i[:, None] >> np.arange(5, -1, -1)) & 1).astype(np.float64)
    y = np.all(X == X[:, ::-1], axis=1).astype(np.float64)[:, None]
    return X, y


def one_hot(labels, num_classes: int) -> np.ndarray:
    """Labels ``(n,)`` of integers 0..num_classes-1 -> float64 ``(n, num_classes)``.

    Row ``i`` is all zeros except a 1.0 in column ``labels[i]``.
    """
    num_classes = arguments.integer(num_classes, "num_classes", 1)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size == 0:
        return np.zeros((0, num_classes))
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1}, "
            f"got values from {labels.min()} to {labels.max()}"
        )
    out = np.zeros((labels.size, num_classes))
    out[np.arange(labels.size), labels] = 1.0
    return out

"""Checking the arguments a learner passes, with one style of message everywhere.

Each check returns the value in the type the caller wants (``int``, ``float``,
a lower-case name, a numpy Generator) or raises ``ValueError`` saying who
refused what: ``"SGD: lr must be a positive number, got -0.1"``. ``bool`` is
refused where a number is expected (``True`` is an int in Python, never what
a learner meant).

>>> integer(3, "depth", minimum=1)
3
>>> positive(0, "lr", who="SGD")
Traceback (most recent call last):
...
ValueError: SGD: lr must be a positive number, got 0
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Union

import numpy as np

__all__ = ["integer", "positive", "nonnegative", "fraction", "choice", "as_rng",
           "RngLike"]

#: a seed (int >= 0), a numpy Generator to draw from, or None (fresh, unseeded)
RngLike = Union[None, int, np.random.Generator]


def _prefix(who: str) -> str:
    return f"{who}: " if who else ""


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(value: Any, name: str, minimum: int = 0, who: str = "") -> int:
    """``value`` as an int, refusing non-integers and ints below ``minimum``."""
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and int(value) >= minimum):
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{_prefix(who)}{name} must be {wanted}, got {value!r}")
    return int(value)


def positive(value: Any, name: str, who: str = "") -> float:
    """``value`` as a float, refusing anything but a finite number > 0."""
    if not (_is_real(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{_prefix(who)}{name} must be a positive number, got {value!r}")
    return float(value)


def nonnegative(value: Any, name: str, who: str = "") -> float:
    """``value`` as a float, refusing anything but a finite number >= 0."""
    if not (_is_real(value) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{_prefix(who)}{name} must be a finite number >= 0, "
                         f"got {value!r}")
    return float(value)


def fraction(value: Any, name: str, who: str = "", one_allowed: bool = False) -> float:
    """``value`` in [0, 1) (a decay rate), or in [0, 1] with ``one_allowed``."""
    ok = _is_real(value) and (0.0 <= value <= 1.0 if one_allowed else 0.0 <= value < 1.0)
    if not ok:
        interval = "[0, 1]" if one_allowed else "[0, 1)"
        raise ValueError(f"{_prefix(who)}{name} must be in {interval}, got {value!r}")
    return float(value)


def choice(value: Any, choices: tuple[str, ...], what: str, who: str = "") -> str:
    """``value`` lower-cased, if it is one of ``choices``."""
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"{_prefix(who)}unknown {what} {value!r}; use one of "
                         f"{', '.join(choices)}")
    return value.lower()


def as_rng(seed: RngLike, allow_none: bool = True,
           name: str = "rng") -> np.random.Generator:
    """A numpy Generator from a seed (int >= 0) or a Generator (used as it is).

    ``None`` gives a fresh, unseeded Generator where ``allow_none`` (layers:
    PyTorch's default, a different network each time); the data sets pass
    ``allow_none=False``, because a data set must be the same on every machine.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None and allow_none:
        return np.random.default_rng()
    if not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
            and int(seed) >= 0):
        allowed = "None, " if allow_none else ""
        raise ValueError(f"{name} must be {allowed}a seed (an integer >= 0) or a numpy "
                         f"Generator, got {seed!r}")
    return np.random.default_rng(int(seed))

"""Helpers for writing exercise checks.

A check receives the learner's answer and a fresh random generator, runs the
answer through :func:`call`, and compares what it returns with :func:`close`
against a reference computed with the engine (:func:`grad_of`, which also
cross-checks the engine against finite differences)::

    @exercise("03-linear-backward", title="Linear layer backward", notebook="03_mlp",
              answer="linear_backward", hints=[...])
    def _check(answer, rng):
        for n in (1, 5):                               # edge case: a batch of one
            x, W, b = rng.normal(size=(n, 3)), rng.normal(size=(3, 4)), rng.normal(size=4)
            dout = rng.normal(size=(n, 4))
            dx, dW, db = expect.call(answer, x, W, b, dout, name="linear_backward",
                                     returns=tuple, length=3)
            rx, rW, rb = expect.grad_of(lambda x, W, b: x @ W + b, x, W, b, upstream=dout)
            expect.close(dx, rx, what="dx", batch=n)
            expect.close(dW, rW, what="dW", batch=n)
            expect.close(db, rb, what="db", batch=n)
        return "random batches of 1 and 5"

Everything a learner can get wrong becomes a :class:`CheckFailure` with a
message that says what is wrong and, for the usual mistakes, a hint:

=================  ==========================================================
detector           fires when (``got`` wrong, ``expected`` right)
=================  ==========================================================
``"sign"``         got ≈ -expected
``"transpose"``    got.T ≈ expected (shape or values)
``"batch_sum"``    got has an extra batch axis and got.sum(0) ≈ expected
``"wrong_axis"``   both 1-D, different lengths (summed over the wrong axis?)
``"batch_mean"``   got ≈ expected / batch or expected * batch (mean vs sum)
``"factor"``       got ≈ c·expected for one constant c (2, 1/2, or any c for arrays)
``"zero"``         got is all zeros and expected is not
``"uniform"``      every entry of got is the same nonzero number (a placeholder?)
``"constant"``     got is the same as for earlier, different inputs (hard-coded?)
``overwrote(p)``   got ≈ p, the last contribution only (``=`` instead of ``+=``)
``missing_factor`` got ≈ expected / f: the chain-rule factor f left out
``equals(v, h)``   got ≈ v: the author names a specific wrong answer ``v``
callable           ``f(got, expected) -> bool`` written by the check author
=================  ==========================================================

The built-in detectors run on every failed :func:`close`; ``hint_if`` adds the
check's own (tried first) or replaces a built-in detector's text.
"""
from __future__ import annotations

import contextlib
import copy
import math
import numbers
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from backprop_course.exercises.feedback import (
    CheckFailure, describe_exception, exception_hint, where,
)

__all__ = [
    "CheckFailure", "call", "close", "shape", "grad_of", "numerical_grad", "equals",
    "overwrote", "missing_factor", "Detector", "DETECTORS", "time_limit", "TimeLimitExceeded",
]


# ---------------------------------------------------------------- check state
@dataclass
class _CheckState:
    """Per-check bookkeeping: the time limit and what has been compared so far."""

    timeout: float = 5.0
    comparisons: int = 0
    calls: int = 0
    seen: list = field(default_factory=list)   # (what-prefix, got, expected) of passes


_state = _CheckState()


@contextlib.contextmanager
def _running_check(timeout: float) -> Iterator[_CheckState]:
    """Used by ``check()``: fresh bookkeeping for one check."""
    global _state
    saved, _state = _state, _CheckState(timeout=timeout)
    try:
        yield _state
    finally:
        _state = saved


# ----------------------------------------------------------------- time limit
class TimeLimitExceeded(BaseException):
    """Raised inside learner code when it runs past its time limit.

    A BaseException, so a learner's ``except Exception:`` cannot swallow it.
    """


def _can_use_alarm() -> bool:
    return (hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
            and threading.current_thread() is threading.main_thread())


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` if the block runs longer than ``seconds``.

    On Unix, in the main thread, a SIGALRM timer interrupts the block (between
    Python bytecodes, so a single long numpy call finishes first); elsewhere
    the elapsed time is checked when the block ends. Nested limits keep the
    outer one's deadline.
    """
    start = time.monotonic()
    if not _can_use_alarm():
        yield
        if time.monotonic() - start > seconds:
            raise TimeLimitExceeded(seconds)
        return
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    if outer_left and outer_left <= seconds:      # the outer limit comes first
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeLimitExceeded(seconds)

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if outer_left:
            left = outer_left - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))
    if time.monotonic() - start > seconds:   # a blocking C call ran past it
        raise TimeLimitExceeded(seconds)


# ----------------------------------------------------------------- call()
def _snapshot(obj: Any, depth: int = 0) -> Any:
    """A copy of the numbers in ``obj`` (arrays, Tensors' and Values' data, lists)."""
    if depth > 4:
        return None
    if isinstance(obj, np.ndarray):
        return obj.copy()
    data = getattr(obj, "data", None)
    if isinstance(data, np.ndarray) and hasattr(obj, "requires_grad"):     # Tensor
        return ("tensor", data.copy())
    if isinstance(data, float) and hasattr(obj, "_prev"):                 # Value
        return ("value", data)
    if isinstance(obj, (list, tuple)):
        return [_snapshot(o, depth + 1) for o in obj]
    if isinstance(obj, dict):
        return {k: _snapshot(v, depth + 1) for k, v in obj.items()}
    return None


def _changed(before: Any, after: Any, depth: int = 0) -> str | None:
    """Describe how ``after`` differs from the snapshot ``before``, or None."""
    if before is None or depth > 4:
        return None
    if isinstance(before, np.ndarray):
        now = np.asarray(after)
        if now.shape != before.shape:
            return f"its shape went from {before.shape} to {now.shape}"
        same = np.isclose(now, before, rtol=1e-10, atol=1e-12, equal_nan=True)
        if not np.all(same):
            i = tuple(int(k) for k in np.argwhere(~same)[0])
            at = f"[{', '.join(map(str, i))}]" if i else ""
            return f"entry {at or '()'} went from {before[i]:.6g} to {now[i]:.6g}"
        return None
    if isinstance(before, tuple) and before[0] == "tensor":
        return _changed(before[1], after.data, depth + 1)
    if isinstance(before, tuple) and before[0] == "value":
        if after.data != before[1]:
            return f".data went from {before[1]:.6g} to {after.data:.6g}"
        return None
    if isinstance(before, list):
        if not isinstance(after, (list, tuple)) or len(after) != len(before):
            return "its length changed"
        for i, (b, a) in enumerate(zip(before, after)):
            what = _changed(b, a, depth + 1)
            if what:
                return f"item {i}: {what}"
        return None
    if isinstance(before, dict):
        if set(before) != set(after):
            return "its keys changed"
        for k in before:
            what = _changed(before[k], after[k], depth + 1)
            if what:
                return f"[{k!r}]: {what}"
    return None


def _type_name(t: Any) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {float: "a number", int: "an integer", np.ndarray: "a numpy array",
            tuple: "a tuple", list: "a list"}.get(t, getattr(t, "__name__", str(t)))


def call(fn: Any, *args: Any, name: str | None = None, timeout: float | None = None,
         returns: Any = None, length: int | None = None, allow_none: bool = False,
         mutable: Sequence[int] | bool = (), **kwargs: Any) -> Any:
    """Call learner code ``fn(*args, **kwargs)`` and return its result, safely.

    Each of these becomes a :class:`CheckFailure` with a clear message instead
    of a crash: ``fn`` is None or not callable; it raises (NotImplementedError
    means "not attempted yet"); it runs past ``timeout`` seconds (default: the
    exercise's limit); it returns None (unless ``allow_none``); the result is
    not of type ``returns`` (a type or tuple of types; ``float`` accepts any
    real number) or, for tuples/lists, does not have ``length`` items; it
    changes an input array in place (unless that argument's index is in
    ``mutable``, or ``mutable=True``).

    ``name`` is how the message refers to the call, e.g. ``"linear_backward(x, W, b, dout)"``.
    """
    label = name or getattr(fn, "__name__", "your function")
    if fn is None:
        raise CheckFailure(f"{label} is None: define it (and run its cell) before checking",
                           kind="none")
    if not callable(fn):
        raise CheckFailure(
            f"{label} should be a function, but it is {type(fn).__name__}: {_short(fn)}",
            hint="pass the function itself to check(), without calling it (no parentheses)",
            kind="type")
    guarded = list(range(len(args)))
    if mutable is True:
        guarded = []
    elif mutable:
        guarded = [i for i in guarded if i not in set(mutable)]
    before = {i: _snapshot(args[i]) for i in guarded}
    limit = _state.timeout if timeout is None else float(timeout)
    _state.calls += 1
    start = time.monotonic()
    try:
        with time_limit(limit):
            result = fn(*args, **kwargs)
    except TimeLimitExceeded:
        raise CheckFailure(
            f"{label} ran for more than {limit:g} s and was stopped",
            hint="an endless loop? (a while-loop whose condition never changes), or "
                 "far more work than needed: loop over entries only where you must",
            kind="timeout") from None
    except NotImplementedError:
        raise CheckFailure(
            "not attempted yet: replace the `raise NotImplementedError` line with your code",
            kind="not_attempted") from None
    except RecursionError as exc:
        raise CheckFailure(f"{label} raised RecursionError{where(exc.__traceback__)}",
                           hint=exception_hint(exc), kind="error") from None
    except Exception as exc:
        raise CheckFailure(
            f"{label} raised {describe_exception(exc)}{where(exc.__traceback__)}",
            hint=exception_hint(exc), kind="error") from None
    elapsed = time.monotonic() - start
    if elapsed > limit:
        raise CheckFailure(f"{label} took {elapsed:.1f} s, more than the {limit:g} s limit",
                           kind="timeout")
    for i, snap in before.items():
        what = _changed(snap, args[i])
        if what:
            raise CheckFailure(
                f"{label} changed its input (argument {i + 1}) in place: {what}",
                hint="do not modify the inputs: work on a copy (x = x.copy()), or put "
                     "back the exact old value (x[i] = old) after a probe",
                kind="mutation")
    if result is None and not allow_none:
        raise CheckFailure(f"{label} returned None",
                           hint="did you forget the `return` statement?", kind="none")
    if returns is not None:
        _check_type(result, returns, label)
    if length is not None:
        if not isinstance(result, (tuple, list)) or len(result) != length:
            got = (f"{len(result)} values" if isinstance(result, (tuple, list))
                   else f"{type(result).__name__}")
            raise CheckFailure(f"{label} should return {length} values, got {got}",
                               hint=f"return them as a tuple: `return a, b{', c' * (length > 2)}`",
                               kind="type")
    return result


def _check_type(result: Any, returns: Any, label: str) -> None:
    wanted = returns if isinstance(returns, tuple) else (returns,)
    ok = False
    for t in wanted:
        if t is float and _is_real(result):
            ok = True
        elif t is int and isinstance(result, numbers.Integral) and not isinstance(result, bool):
            ok = True
        elif isinstance(t, type) and isinstance(result, t):
            ok = True
    if not ok:
        hint = None
        if isinstance(result, np.ndarray) and float in wanted:
            hint = (f"this is an array of shape {result.shape}: return a single number "
                    "(`float(...)` or `.item()`)")
        elif hasattr(result, "data") and hasattr(result, "grad") and float in wanted:
            hint = "return the number itself: `.data` of a Value or `.item()` of a Tensor"
        raise CheckFailure(
            f"{label} should return {_type_name(returns)}, "
            f"got {type(result).__name__}: {_short(result)}", hint=hint, kind="type")


def _is_real(x: Any) -> bool:
    return (isinstance(x, numbers.Real) and not isinstance(x, bool)) or (
        isinstance(x, np.ndarray) and x.shape == () and x.dtype.kind in "fiu")


def _short(x: Any, limit: int = 60) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------- detectors
@dataclass(frozen=True)
class Detector:
    """A test for one usual mistake: ``test(got, expected) -> bool`` and its hint."""

    name: str
    test: Callable[[np.ndarray, np.ndarray], bool]
    hint: str


@contextlib.contextmanager
def autograd_watch() -> Iterator[list]:
    """Notes whether Tensor.backward runs inside the block (for exercises whose
    answer must be written by hand in numpy): the list is non-empty if it did."""
    from backprop_course.tensor import Tensor
    used: list = []
    original = Tensor.backward

    def watched(self, *args, **kwargs):
        used.append(True)
        return original(self, *args, **kwargs)
    Tensor.backward = watched
    try:
        yield used
    finally:
        Tensor.backward = original


def near(a: Any, b: Any, rtol: float = 1e-4, atol: float = 1e-7) -> bool:
    """True if ``a`` is finite, has ``b``'s shape and is allclose to it (False,
    not an error, for anything that is not numbers)."""
    try:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and bool(
        np.allclose(a, b, rtol=rtol, atol=atol))


def _nonzero(x: np.ndarray) -> bool:
    return bool(np.max(np.abs(x), initial=0.0) > 1e-12)


def _ratio(got: np.ndarray, expected: np.ndarray) -> float | None:
    """The c with got ≈ c·expected (least squares), if that fits well; else None."""
    g, e = np.ravel(got).astype(np.float64), np.ravel(expected).astype(np.float64)
    if g.shape != e.shape or not _nonzero(e) or not np.all(np.isfinite(g)):
        return None
    c = float(g @ e / (e @ e))
    return c if near(g, c * e) else None


def _is_sign(got, expected):
    return _nonzero(expected) and near(got, -np.asarray(expected))


def _is_transpose(got, expected):
    e = np.asarray(expected)
    return e.ndim >= 2 and not near(got, e) and near(got, e.T)


def _is_batch_sum(got, expected):
    g, e = np.asarray(got), np.asarray(expected)
    return g.ndim == e.ndim + 1 and g.shape[1:] == e.shape and near(g.sum(axis=0), e)


def _is_wrong_axis(got, expected):
    g, e = np.asarray(got), np.asarray(expected)
    return g.ndim == e.ndim == 1 and g.shape != e.shape


def _is_factor(got, expected):
    c = _ratio(got, expected)
    if c is None or abs(c - 1) < 1e-3 or abs(c + 1) < 1e-3 or abs(c) < 1e-6:
        return False
    if np.size(expected) >= 2 and np.count_nonzero(np.abs(np.ravel(expected)) > 1e-12) >= 2:
        return True                       # one constant for every entry: telling
    return any(abs(c - k) < 1e-3 * k for k in (2.0, 0.5, 3.0, 1 / 3))


def _is_zero(got, expected):
    g = np.asarray(got)
    return g.size > 0 and not _nonzero(g) and _nonzero(expected)


def _is_uniform(got, expected):
    g, e = np.ravel(got), np.ravel(expected)
    return (g.size > 1 and _nonzero(g) and bool(np.all(g == g[0]))
            and not np.allclose(e, e[0]))


DETECTORS: dict[str, Detector] = {d.name: d for d in [
    Detector("sign", _is_sign,
             "the size is right but the sign is flipped: check the sign of every term "
             "(the derivative of a - b with respect to b is -1)"),
    Detector("transpose", _is_transpose,
             "your result is the transpose of the right one: a `.T` is missing or extra "
             "(a gradient has the shape of the thing it is the gradient of)"),
    Detector("batch_sum", _is_batch_sum,
             "bias gradient not summed over the batch: a parameter used for every row "
             "of the batch gets the sum of their gradients, e.g. `dout.sum(axis=0)`"),
    Detector("wrong_axis", _is_wrong_axis,
             "summed over the wrong axis? A gradient has the shape of its parameter: "
             "sum over the batch axis (axis=0), keep the others"),
    Detector("factor", _is_factor,
             "off by a constant factor: a factor of the chain rule left out (or counted "
             "twice)? Multiply every local derivative along the path"),
    Detector("zero", _is_zero,
             "your result is all zeros: is the gradient ever written, or is an "
             "`np.zeros_like` returned unchanged?"),
    Detector("uniform", _is_uniform,
             "every entry of your result is the same number: a placeholder or a "
             "hard-coded value left in?"),
]}

_CONSTANT_HINT = ("you return the same value as for different inputs before: is the "
                  "answer hard-coded, or is an argument ignored?")
_NAN_HINT = ("NaN or inf in your result: an overflow in exp, a log of 0, a division "
             "by zero? (a stable formula subtracts the max before exp)")


def equals(value: Any, hint: str | None = None, *, name: str = "equals") -> Detector:
    """A detector for one specific wrong answer: fires when got ≈ ``value``."""
    target = np.asarray(value, dtype=np.float64)
    return Detector(name, lambda got, expected: near(got, target),
                    hint or "this is a known wrong answer")


def overwrote(partial: Any, hint: str | None = None) -> Detector:
    """Fires when got ≈ ``partial``, the gradient with only the last contribution kept.

    Use it where a node is used twice (``x * x``, a reused weight): overwriting
    (``=``) instead of accumulating (``+=``) leaves just one path's gradient.
    """
    return equals(partial, hint or (
        "overwrote instead of accumulating: this is only the last contribution. "
        "A node used twice gets the sum of both gradients: use `+=`, not `=`"),
        name="overwrote")


def missing_factor(factor: Any, name: str = "the upstream gradient",
                   expected: Any = None) -> Detector:
    """Fires when got ≈ expected / ``factor``: the chain-rule factor ``name`` was left out.

    Pass ``expected`` (the right answer) when the detector is used outside
    :func:`close`'s own comparison; otherwise ``close`` supplies it.
    """
    f = np.asarray(factor, dtype=np.float64)

    def test(got: np.ndarray, exp: np.ndarray) -> bool:
        ref = np.asarray(exp if expected is None else expected, dtype=np.float64)
        with np.errstate(all="ignore"):
            return bool(np.all(np.abs(f) > 1e-12)) and not near(f, 1.0) and near(got, ref / f)
    return Detector("missing_factor", test,
                    f"a factor of the chain rule left out: multiply by {name}")


def _detectors(hint_if: Any) -> list[tuple[Detector, str]]:
    """Author detectors first (as (detector, hint) pairs), then the built-ins."""
    found: list[tuple[Detector, str]] = []
    overrides: dict[str, str] = {}
    items: list[tuple[Any, Any]] = []
    if isinstance(hint_if, Mapping):
        items = list(hint_if.items())
    elif hint_if:
        items = [(k, None) for k in hint_if]
    for key, text in items:
        if isinstance(key, str):
            if key not in DETECTORS:
                raise ValueError(f"unknown hint detector {key!r}; known: {sorted(DETECTORS)}")
            if text:
                overrides[key] = text
            found.append((DETECTORS[key], text or DETECTORS[key].hint))
        elif isinstance(key, Detector):
            found.append((key, text or key.hint))
        elif callable(key):
            found.append((Detector(getattr(key, "__name__", "custom"), key,
                                   text or "a usual mistake"), text or "a usual mistake"))
        else:
            raise TypeError(f"hint_if keys are detector names, expect.equals(...) "
                            f"or callables, not {type(key).__name__}")
    for name, det in DETECTORS.items():
        found.append((det, overrides.get(name, det.hint)))
    return found


def _diagnose(got: np.ndarray, expected: np.ndarray, hint_if: Any,
              batch: int | None) -> str | None:
    if not np.all(np.isfinite(got)):
        return _NAN_HINT
    for det, text in _detectors(hint_if):
        if det.name == "factor" and batch and batch > 1:     # mean vs sum first
            c = _ratio(got, expected)
            if c is not None and (abs(c * batch - 1) < 1e-3 or abs(c / batch - 1) < 1e-3):
                return (f"off by a factor of the batch size ({batch}): averaged where "
                        "the gradient should be summed, or the other way round")
        try:
            if det.test(got, expected):
                return text
        except Exception:   # a detector never turns a verdict into a crash
            continue
    return None


# ---------------------------------------------------------------- close()
def _as_number_array(x: Any, what: str, role: str) -> np.ndarray:
    """ndarray view of a number / array / Tensor / Value; CheckFailure if impossible."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (bool, np.bool_)):
        raise CheckFailure(f"{what}: expected a number, got the boolean {x}", kind="type")
    if isinstance(x, numbers.Number):
        if isinstance(x, numbers.Complex) and not isinstance(x, numbers.Real):
            raise CheckFailure(f"{what}: expected a real number, got {x!r}", kind="type")
        return np.asarray(x)
    if role == "got":
        kind = type(x).__name__
        hint = None
        if hasattr(x, "data") and hasattr(x, "grad"):
            hint = ("return the numbers, not the graph node: `.data` "
                    "(or `.grad` if the question asks for the gradient)")
        if isinstance(x, (list, tuple)):
            hint = "return a numpy array (np.array(...)), not a Python list"
        raise CheckFailure(f"{what} should be a number or numpy array, got {kind}: "
                           f"{_short(x)}", hint=hint, kind="type")
    arr = np.asarray(getattr(x, "data", x))
    return arr


def _fmt(a: np.ndarray) -> str:
    if a.ndim == 0:
        return f"{float(a):.6g}"
    return np.array2string(np.asarray(a, dtype=np.float64), precision=4,
                           suppress_small=True, separator=", ", max_line_width=76)


def close(got: Any, expected: Any, *, what: str = "your result", rtol: float = 1e-6,
          atol: float = 1e-8, hint_if: Any = None, hint: str | None = None,
          batch: int | None = None, base: Any = None, check_dtype: bool = True) -> None:
    """Raise :class:`CheckFailure` unless ``got`` matches ``expected`` to ``rtol``/``atol``.

    ``got`` may be a number or an ndarray; ``expected`` a number, ndarray,
    Tensor or Value. Shapes must match exactly (no silent broadcasting); for
    arrays the dtype kind must match and, with ``check_dtype``, the exact dtype
    too. The failure message names ``what``, the shapes, expected vs got
    (whole arrays when small, else the worst entry) and the relative error;
    ``hint_if`` (see the module docs), then the built-in detectors, then
    ``batch`` (the batch size, for mean-vs-sum), then ``hint`` supply the hint.

    ``base`` is what the result accumulates onto (a ``.grad`` that held
    ``base`` before the learner's code added to it): a result equal to
    ``expected - base`` is diagnosed as overwriting instead of accumulating,
    and the other detectors look at the contributions ``got - base`` and
    ``expected - base``.
    """
    g = _as_number_array(got, what, "got")
    e = np.asarray(_as_number_array(expected, what, "expected"))
    _state.comparisons += 1
    if g.dtype.kind not in "fiu" or g.dtype == np.bool_:
        raise CheckFailure(f"{what} has dtype {g.dtype}, expected {e.dtype}",
                           hint="return real numbers (float arrays)", kind="dtype")
    scalar_expected = e.ndim == 0
    if scalar_expected and g.shape != () and g.size == 1:
        raise CheckFailure(
            f"{what} should be a single number, got an array of shape {g.shape}",
            hint="return a number: `float(x)`, `x.item()`, or index the one entry",
            kind="shape")
    if g.shape != e.shape:
        diag = _CONSTANT_HINT if _constant_seen(what, g, e) else None
        diag = diag or _diagnose(g, e, hint_if, batch)
        raise CheckFailure(
            f"{what} has the wrong shape: expected {e.shape}, got {g.shape}",
            hint=diag or hint, kind="shape")
    if not scalar_expected:
        if g.dtype.kind != e.dtype.kind and e.dtype.kind == "f":
            raise CheckFailure(
                f"{what} has dtype {g.dtype}, expected {e.dtype}",
                hint="integers lose the fractions: start from a float array "
                     "(np.zeros(shape) or np.zeros_like(x, dtype=float))", kind="dtype")
        if check_dtype and g.dtype != e.dtype:
            raise CheckFailure(
                f"{what} has dtype {g.dtype}, expected {e.dtype}",
                hint=f"keep the input's precision: create arrays with dtype={e.dtype}",
                kind="dtype")
    gf, ef = g.astype(np.float64), e.astype(np.float64)
    ok = bool(np.all(np.isfinite(gf))) and bool(np.allclose(gf, ef, rtol=rtol, atol=atol))
    if ok:
        _state.seen.append((what.split("(")[0], gf.copy(), ef.copy()))
        return
    diag = _CONSTANT_HINT if _constant_seen(what, gf, ef) else None
    if diag is None and base is not None:
        b = np.broadcast_to(np.asarray(base, dtype=np.float64), ef.shape)
        if _nonzero(b) and near(gf, ef - b):
            diag = overwrote(0.0).hint
        else:
            diag = _diagnose(gf - b, ef - b, hint_if, batch)
    diag = diag or _diagnose(gf, ef, hint_if, batch)
    raise CheckFailure(_mismatch(what, gf, ef), hint=diag or hint, kind="wrong")


def _constant_seen(what: str, got: np.ndarray, expected: np.ndarray) -> bool:
    """True if an earlier comparison of the same quantity got exactly this, rightly."""
    key = what.split("(")[0]
    got = np.asarray(got, dtype=np.float64)
    return any(k == key and g.shape == got.shape and np.array_equal(g, got)
               and not (e.shape == expected.shape and near(e, expected))
               for k, g, e in _state.seen)


def _mismatch(what: str, got: np.ndarray, expected: np.ndarray) -> str:
    with np.errstate(all="ignore"):
        err = np.abs(got - expected) / np.maximum(1e-8, np.abs(got) + np.abs(expected))
        err = np.where(np.isfinite(err), err, np.inf)
    worst = float(np.max(err)) if err.size else 0.0
    rel = "inf" if math.isinf(worst) else f"{worst:.2g}"
    if expected.ndim == 0:
        return (f"{what} is wrong: expected {_fmt(expected)}, got {_fmt(got)} "
                f"(relative error {rel})")
    elif expected.size <= 12:
        body = (f"shape {expected.shape}\n  expected {_fmt(expected)}\n"
                f"  got      {_fmt(got)}")
    else:
        i = tuple(int(k) for k in np.unravel_index(int(np.argmax(err)), err.shape))
        wrong = int(np.count_nonzero(err > 1e-6))
        body = (f"shape {expected.shape}, {wrong} of {expected.size} entries wrong; "
                f"worst at {list(i)}: expected {expected[i]:.6g}, got {got[i]:.6g}")
    return f"{what} is wrong: {body}\n(relative error {rel})"


# ---------------------------------------------------------------- shape()
def shape(got: Any, expected_shape: Sequence[int], *, what: str = "your result") -> None:
    """Raise :class:`CheckFailure` unless ``got`` (array-like) has ``expected_shape``."""
    expected_shape = tuple(int(s) for s in expected_shape)
    actual = getattr(got, "shape", None)
    if actual is None:
        raise CheckFailure(f"{what} should be an array of shape {expected_shape}, "
                           f"got {type(got).__name__}: {_short(got)}", kind="type")
    actual = tuple(actual)
    if actual != expected_shape:
        hint = None
        if actual == expected_shape[::-1] and len(actual) >= 2:
            hint = DETECTORS["transpose"].hint
        elif len(actual) == len(expected_shape) + 1 and actual[1:] == expected_shape:
            hint = DETECTORS["batch_sum"].hint
        raise CheckFailure(f"{what} has the wrong shape: expected {expected_shape}, "
                           f"got {actual}", hint=hint, kind="shape")


# --------------------------------------------------------- reference gradients
def _engine():
    from backprop_course import gradcheck
    from backprop_course.scalar import Value
    from backprop_course.tensor import Tensor
    return Value, Tensor, gradcheck


def numerical_grad(f: Callable[..., Any], *inputs: Any, upstream: Any = None,
                   h: float = 1e-6) -> Any:
    """Gradients of ``sum(upstream * f(*inputs))`` by central differences.

    ``f`` takes numpy arrays / floats and returns an array or number (a Tensor
    or Value result is unwrapped). One input: one array; several: a tuple.
    """
    _, _, gradcheck = _engine()
    arrays = [np.array(x, dtype=np.float64) for x in inputs]

    def unwrap(out: Any) -> np.ndarray:
        return np.asarray(getattr(out, "data", out), dtype=np.float64)

    up = None if upstream is None else np.asarray(upstream, dtype=np.float64)
    grads = []
    for k in range(len(arrays)):
        def f_k(xk: np.ndarray, k: int = k) -> float:
            args = list(arrays)
            args[k] = xk if arrays[k].ndim else float(xk)
            out = unwrap(f(*[a if np.ndim(a) else float(a) for a in args]))
            return float(np.sum(out if up is None else out * up))
        grads.append(gradcheck.numerical_grad(f_k, arrays[k], h))
    grads = [g if np.ndim(x) else float(g) for g, x in zip(grads, inputs)]
    return grads[0] if len(grads) == 1 else tuple(grads)


def grad_of(f: Callable[..., Any], *inputs: Any, upstream: Any = None,
            crosscheck: bool = True, tol: float = 1e-5) -> Any:
    """Reference gradients of ``sum(upstream * f(*inputs))`` from the engine's autograd.

    Float inputs become :class:`Value` s, arrays become :class:`Tensor` s with
    ``requires_grad=True``; ``f`` builds the graph with them. ``upstream``
    (default ones) is dL/d(output). With ``crosscheck`` the gradients are also
    computed by finite differences and must agree to ``tol`` (largest difference over
    the largest entry), so a check can never hold a learner to a wrong reference. One
    input: one gradient (float or array); several: a tuple.
    """
    Value, Tensor, gradcheck = _engine()
    scalar = all(isinstance(x, numbers.Real) for x in inputs)
    if scalar:
        leaves = [Value(float(x)) for x in inputs]
        out = f(*leaves)
        if not isinstance(out, Value):
            raise TypeError("grad_of: with float inputs, f must return a Value")
        if upstream is not None:
            out = out * float(upstream)
        out.backward()
        grads: list[Any] = [leaf.grad for leaf in leaves]
    else:
        leaves = [Tensor(np.array(x, dtype=np.float64), requires_grad=True) for x in inputs]
        out = f(*leaves)
        if not isinstance(out, Tensor):
            raise TypeError("grad_of: with array inputs, f must return a Tensor")
        up = np.ones_like(out.data) if upstream is None else np.asarray(upstream, np.float64)
        out.backward(up)
        grads = [leaf.grad if leaf.grad is not None else np.zeros_like(leaf.data)
                 for leaf in leaves]
    if crosscheck:
        def plain(*xs: Any) -> Any:
            wrapped = [Value(float(x)) if scalar else Tensor(np.asarray(x)) for x in xs]
            return f(*wrapped)
        numeric = numerical_grad(plain, *inputs, upstream=upstream)
        numeric = [numeric] if len(inputs) == 1 else list(numeric)
        for i, (a, n) in enumerate(zip(grads, numeric)):
            # relative to the gradient's size, not entry by entry: an entry near 0
            # (random inputs make them) has no accurate relative error to check
            a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
            scale = max(1e-8, float(np.max(np.abs(a), initial=0.0)),
                        float(np.max(np.abs(n), initial=0.0)))
            err = float(np.max(np.abs(a - n), initial=0.0)) / scale
            if err > tol:
                raise RuntimeError(
                    f"grad_of: autograd and finite differences disagree for input {i} "
                    f"(relative error {err:.2g}); the check's reference is unreliable here "
                    "(a kink like relu at 0?)")
    return grads[0] if len(grads) == 1 else tuple(grads)

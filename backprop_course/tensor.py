"""Tensor: a numpy array that remembers how it was computed.

The same idea as :class:`~backprop_course.Value`, one array at a time. Every
operation follows one pattern:

1. compute the output array from the inputs' arrays;
2. keep the arrays its backward will need (``saved``), as they are *now*;
3. define ``backward(grad)``: given g = dL/d(output), an array of the
   output's shape, add each input's share into ``input.grad``:

       input.grad += (the op's local Jacobian)ᵀ applied to g

   skipping inputs that need no gradient (``x @ W`` with data ``x``; an
   op with one input needs no such test: its node exists only because
   that input needs a gradient);
4. return ``self._child(out, inputs, op, backward, saved)``, which records
   the graph (unless no input needs a gradient, or inside ``no_grad()``).

Broadcasting copies an input along some axes in the forward pass, so its
gradient is *summed* along those axes on the way back; ``_accumulate`` does
that (``_unbroadcast``) for every op. Gradients are never modified in place:
accumulation makes a new array.

Safe like PyTorch: backward reads the saved arrays, so if one of them was
changed between the forward pass and ``backward()`` (an optimiser step, or
``a.data += 1``) the gradient would be silently wrong. Each Tensor counts
the assignments to its ``.data`` (``_version``); ``backward()`` refuses to
use an array whose tensor changed after an op saved it. Writing *into* the
array's entries (``a.data[0] = 5``) goes past the Tensor and is not seen:
assign (``a.data = ...``, ``a.data -= ...``) instead.

NaN and inf flow through the arithmetic as in numpy and PyTorch (a diverging
training run must be able to show its inf loss). Ops with a domain refuse
what lies outside it: ``log`` of entries <= 0 or NaN, division by zero, a
negative base to a fractional power.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional, Union

import numpy as np

from backprop_course.graph import topological_order

ArrayLike = Union["Tensor", np.ndarray, float, list, tuple]
Axis = Union[None, int, tuple[int, ...]]
Backward = Callable[[np.ndarray], None]


_grad_enabled = True


class no_grad:
    """``with no_grad():`` runs Tensor ops without recording a graph.

    As ``torch.no_grad``: for evaluation and inference, where no backward
    pass follows, so nothing needs to be kept for one.

    >>> w = Tensor([2.0], requires_grad=True)
    >>> with no_grad():
    ...     y = w * 3
    >>> y.requires_grad, y._prev
    (False, ())
    """

    def __enter__(self) -> "no_grad":
        global _grad_enabled
        self._before = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._before


def is_grad_enabled() -> bool:
    """False inside ``with no_grad():``."""
    return _grad_enabled


def _as_array(data: Any, copy: bool = True) -> np.ndarray:
    """data as a float32 or float64 array (bools and integers become float64).

    ``copy=False`` is for arrays the engine just made: they are used as they
    are, so an op's output costs no extra copy.
    """
    if not copy and type(data) is np.ndarray and data.dtype.char in "fd":
        return data                      # float32 or float64 already: nothing to do
    if isinstance(data, Tensor):
        raise TypeError("Tensor(...) got a Tensor: use it directly, or t.detach() "
                        "for a copy cut off from the graph")
    try:
        array = np.array(data) if copy else np.asarray(data)
    except (ValueError, TypeError) as err:
        raise TypeError(f"Tensor needs numbers in a rectangular array: {err}") from None
    if array.dtype.kind in "biu":                 # bool and integers become float
        return array.astype(np.float64)
    if array.dtype == np.float16:
        raise TypeError("Tensor: float16 is not supported: its 3 significant digits "
                        "are too few for gradients (a gradient check cannot pass). "
                        "Convert with x.astype(np.float32), or np.float64 (the "
                        "default)")
    if array.dtype.char not in "fd":
        first = type(array.flat[0]).__name__ if array.size else ""
        kind = f"Python objects ({first})" if array.dtype == object else array.dtype
        hint = (". A Value cannot go into a Tensor: use v.data for its number"
                if first == "Value" else "")
        raise TypeError(f"Tensor needs real numbers (float32 or float64), got an "
                        f"array of {kind}{hint}")
    return array


def as_tensor(x: Any) -> "Tensor":
    """``x`` itself if it is a Tensor, else a constant Tensor holding a copy of it
    (so layers and losses take numpy arrays too)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: undo the copies broadcasting made."""
    extra = grad.ndim - len(shape)                # leading axes broadcasting added
    grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    if grad.shape != shape:      # an engine bug, never the user's
        raise RuntimeError(f"gradient of shape {grad.shape} for a tensor of shape {shape}")
    return grad


def _normalize_axis(axis: Axis, ndim: int, op: str) -> tuple[int, ...]:
    """Axis argument as a tuple of non-negative ints (None means all axes)."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"Tensor.{op}: axis {a} is out of range for {ndim}-d tensor")
    return tuple(sorted(a % max(ndim, 1) for a in axes))


def stable_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """log softmax(x) = x - log Σ exp(x) along ``axis``, on plain arrays.

    Each slice's max is subtracted first: the same result (the max cancels),
    but exp never sees a number above 0, so logits like 1000 do not overflow.
    """
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _describe(t: "Tensor") -> str:
    """How an error message names a tensor: its label, or where it came from."""
    if t.label:
        return f"tensor {t.label!r} (shape {t.shape})"
    if t._prev:
        return f"the output of {t._op!r} (shape {t.shape})"
    return f"a leaf tensor of shape {t.shape}"


class Tensor:
    """An n-dimensional array node with reverse-mode autograd.

    ``Tensor(x)`` holds a copy of ``x`` (float64, or float32 if ``x`` is),
    so changing ``x`` later does not change the tensor.

    >>> W = Tensor(np.ones((3, 2)), requires_grad=True)
    >>> x = Tensor([[1.0, 2.0, 3.0]])
    >>> (x @ W).sum().backward()
    >>> W.grad                     # d sum(xW) / dW = x^T 1
    array([[1., 1.],
           [2., 2.],
           [3., 3.]])
    """

    __array_ufunc__ = None       # ndarray (op) Tensor defers to Tensor's reflected op

    def __init__(self, data: Any, requires_grad: bool = False, *, label: str = "",
                 copy: bool = True, _prev: tuple["Tensor", ...] = (),
                 _op: str = "") -> None:
        self._data: np.ndarray = _as_array(data, copy)
        self._version = 0                      # +1 at every assignment to .data
        self.grad: Optional[np.ndarray] = None
        self.requires_grad = bool(requires_grad)
        self.label = label                     # a name for error messages
        self._prev = _prev                     # the Tensors this one was computed from
        self._op = _op
        self._backward: Optional[Backward] = None
        # the arrays _backward reads, kept alive by the graph until backward:
        # what training costs in memory beyond inference (lesson 07)
        self._saved: tuple[np.ndarray, ...] = ()
        # (tensor, its _version) for each tensor whose data is in _saved;
        # None stands for this node itself (holding it would make a cycle)
        self._saved_versions: tuple[tuple[Optional[Tensor], int], ...] = ()

    # ------------------------------------------------------------ data
    @property
    def data(self) -> np.ndarray:
        """The numbers. Assigning to it (``t.data = ...``, ``t.data -= ...``)
        counts as a change: a graph that saved the old numbers refuses to
        run backward (see the module docstring)."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = _as_array(value, copy=False)
        self._version += 1

    # ------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d Tensor: it holds one number (use .item())")
        return len(self._data)

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(
                f"bool(Tensor) of shape {self.shape}: the truth value of "
                f"{self.size} numbers is ambiguous. Say which you mean: "
                "bool(t.data.any()), bool(t.data.all()), or t.item() for one number")
        return bool(self._data.reshape(()))

    def __repr__(self) -> str:
        body = np.array2string(self._data, precision=4, separator=", ", prefix="Tensor(")
        flag = ", requires_grad=True" if self.requires_grad else ""
        name = f", label={self.label!r}" if self.label else ""
        return f"Tensor({body}{flag}{name})"

    def item(self) -> float:
        """The single number in a one-element tensor."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape "
                             f"{self.shape}")
        return float(self._data.reshape(()))

    def numpy(self) -> np.ndarray:
        return self._data

    def detach(self) -> "Tensor":
        """The same numbers as a new leaf, cut off from the graph (no copy, as
        in PyTorch: write to it only by assigning ``.data``)."""
        return Tensor(self._data, copy=False)

    def zero_grad(self) -> None:
        self.grad = None

    # --------------------------------------------------------------- plumbing
    def _lift(self, other: Any, op: str) -> "Tensor":
        """Wrap a number or array as a constant; plain numbers take self's dtype."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Real):
            return Tensor(np.asarray(other, dtype=self.dtype), copy=False)
        if isinstance(other, (np.ndarray, list, tuple)):
            return Tensor(other)
        raise TypeError(
            f"Tensor {op} {type(other).__name__}: a Tensor combines with Tensors, "
            "numpy arrays and numbers only."
            + (" A Value belongs to the scalar engine: use Tensor throughout "
               "(Tensor(v.data) is a constant with v's number), or Value throughout"
               if type(other).__name__ == "Value" else ""))

    def _child(self, data: np.ndarray, inputs: tuple["Tensor", ...], op: str,
               backward: Backward, saved: tuple[np.ndarray, ...] = ()) -> "Tensor":
        """Make the output node; record the graph only if an input needs grad.

        ``saved`` lists the arrays ``backward`` reads (besides the gradient):
        the memory the graph holds for this node until backward runs. For
        each tensor whose data is among them (an input, or the output
        itself), its version is noted, so that ``backward()`` can refuse if
        that data is assigned to in the meantime.
        """
        if not (_grad_enabled and _any_requires_grad(inputs)):
            return Tensor(data, copy=False)
        out = Tensor(data, requires_grad=True, copy=False, _prev=inputs, _op=op)
        out._backward = backward
        out._saved = saved
        if saved:
            out._saved_versions = _versions_of_saved(saved, inputs, data)
        return out

    def _accumulate(self, grad: np.ndarray) -> None:
        """self.grad += grad summed back to self's shape (undoing broadcasting),
        without writing into any existing array."""
        if grad.shape != self.shape:
            grad = _unbroadcast(grad, self.shape)
        self.grad = grad if self.grad is None else self.grad + grad

    # ------------------------------------------------------------ arithmetic
    def _broadcast(self, op: str, other: "Tensor",
                   f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
        """f(self.data, other.data); if numpy cannot broadcast, say which shapes."""
        try:
            return f(self._data, other._data)
        except ValueError:
            raise ValueError(f"Tensor {op}: shapes {self.shape} and {other.shape} "
                             "cannot be broadcast together") from None

    def __add__(self, other: ArrayLike) -> "Tensor":
        """a + b.   dL/da = g,  dL/db = g."""
        other = self._lift(other, "+")
        out = self._broadcast("+", other, np.add)

        def backward(grad: np.ndarray) -> None:
            if self.requires_grad:
                self._accumulate(grad)
            if other.requires_grad:
                other._accumulate(grad)
        return self._child(out, (self, other), "+", backward)

    def __sub__(self, other: ArrayLike) -> "Tensor":
        """a - b.   dL/da = g,  dL/db = -g."""
        other = self._lift(other, "-")
        out = self._broadcast("-", other, np.subtract)

        def backward(grad: np.ndarray) -> None:
            if self.requires_grad:
                self._accumulate(grad)
            if other.requires_grad:
                other._accumulate(-grad)
        return self._child(out, (self, other), "-", backward)

    def __mul__(self, other: ArrayLike) -> "Tensor":
        """a * b, entry by entry.   dL/da = g b,  dL/db = g a."""
        other = self._lift(other, "*")
        a, b = self.data, other.data
        out = self._broadcast("*", other, np.multiply)

        def backward(grad: np.ndarray) -> None:
            if self.requires_grad:
                self._accumulate(grad * b)
            if other.requires_grad:
                other._accumulate(grad * a)
        return self._child(out, (self, other), "*", backward, saved=(a, b))

    def __truediv__(self, other: ArrayLike) -> "Tensor":
        """a / b.   dL/da = g / b,  dL/db = -g a / b²."""
        other = self._lift(other, "/")
        a, b = self.data, other.data
        if np.any(b == 0):
            raise ZeroDivisionError(f"Tensor /: the divisor (shape {other.shape}) has "
                                    f"{int(np.sum(b == 0))} zero entries")
        out = self._broadcast("/", other, np.divide)

        def backward(grad: np.ndarray) -> None:
            if self.requires_grad:
                self._accumulate(grad / b)
            if other.requires_grad:
                other._accumulate(-grad * a / (b * b))
        return self._child(out, (self, other), "/", backward, saved=(a, b))

    def __pow__(self, exponent: float) -> "Tensor":
        """x ** k for a number k.   dL/dx = g k x^(k-1)."""
        if not isinstance(exponent, numbers.Real):
            raise TypeError("Tensor ** x: the exponent must be a number; "
                            "for a tensor exponent write (y * x.log()).exp()")
        x = self.data
        k = x.dtype.type(exponent)                 # float32 stays float32
        if not float(k).is_integer() and np.any(x < 0):
            raise ValueError(f"Tensor ** {k:g}: negative entries need an integer exponent")
        if k < 0 and np.any(x == 0):
            raise ZeroDivisionError(f"Tensor ** {k:g}: zero to a negative power")
        out = x ** k

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad * k * x ** (k - 1))
        return self._child(out, (self,), f"**{k:g}", backward, saved=(x,))

    def __matmul__(self, other: ArrayLike) -> "Tensor":
        """A @ B, matrix product (stacks of matrices broadcast, as in numpy).

            dL/dA = G Bᵀ,   dL/dB = Aᵀ G

        A vector on the left is a one-row matrix, on the right a one-column
        matrix; that axis is dropped from the result (numpy's rule).
        """
        other = self._lift(other, "@")
        _check_matmul(self.shape, other.shape)
        if self.ndim == 1 or other.ndim == 1:
            rows = self.reshape(1, -1) if self.ndim == 1 else self
            cols = other.reshape(-1, 1) if other.ndim == 1 else other
            product = rows @ cols
            *batch, n_rows, n_cols = product.shape
            shape = (*batch, *([n_rows] if self.ndim > 1 else []),
                     *([n_cols] if other.ndim > 1 else []))
            return product.reshape(shape)
        a, b = self.data, other.data
        out = a @ b

        def backward(grad: np.ndarray) -> None:
            if self.requires_grad:
                self._accumulate(grad @ b.swapaxes(-1, -2))
            if other.requires_grad:
                other._accumulate(a.swapaxes(-1, -2) @ grad)
        return self._child(out, (self, other), "@", backward, saved=(a, b))

    def __neg__(self) -> "Tensor":
        """-x.   dL/dx = -g."""
        def backward(grad: np.ndarray) -> None:
            self._accumulate(-grad)
        return self._child(-self.data, (self,), "neg", backward)

    # reflected: 2 + t, x_numpy @ t, ...
    def __radd__(self, other: ArrayLike) -> "Tensor":
        return self._lift(other, "+") + self

    def __rsub__(self, other: ArrayLike) -> "Tensor":
        return self._lift(other, "-") - self

    def __rmul__(self, other: ArrayLike) -> "Tensor":
        return self._lift(other, "*") * self

    def __rtruediv__(self, other: ArrayLike) -> "Tensor":
        return self._lift(other, "/") / self

    def __rmatmul__(self, other: ArrayLike) -> "Tensor":
        return self._lift(other, "@") @ self

    # ------------------------------------------------------------ elementwise
    def exp(self) -> "Tensor":
        """e^x.   dL/dx = g e^x (the output itself)."""
        out = np.exp(self.data)

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad * out)
        return self._child(out, (self,), "exp", backward, saved=(out,))

    def log(self) -> "Tensor":
        """ln x, for x > 0.   dL/dx = g / x."""
        x = self.data
        bad = ~(x > 0)                             # also catches NaN
        if np.any(bad):
            n_bad, nan = int(bad.sum()), int(np.isnan(x).sum())
            raise ValueError(
                f"Tensor.log: x > 0 fails for {n_bad} of {x.size} entries "
                + (f"({nan} NaN: an earlier step already produced them, often a "
                   "learning rate too large or an overflow in exp)" if nan else
                   f"(smallest {np.min(x):g})")
                + ". For a classification loss use "
                "losses.cross_entropy, which works on logits stably")
        out = np.log(x)

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad / x)
        return self._child(out, (self,), "log", backward, saved=(x,))

    def tanh(self) -> "Tensor":
        """tanh x.   dL/dx = g (1 - tanh² x)."""
        out = np.tanh(self.data)

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad * (1 - out * out))
        return self._child(out, (self,), "tanh", backward, saved=(out,))

    def sigmoid(self) -> "Tensor":
        """σ(x) = 1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2, which never
        overflows.   dL/dx = g σ (1 - σ)."""
        out = 0.5 * (1 + np.tanh(0.5 * self.data))

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad * out * (1 - out))
        return self._child(out, (self,), "sigmoid", backward, saved=(out,))

    def relu(self) -> "Tensor":
        """max(0, x).   dL/dx = g where x > 0, else 0."""
        mask = self.data > 0
        out = self.data * mask

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad * mask)
        return self._child(out, (self,), "relu", backward, saved=(mask,))

    def leaky_relu(self, negative_slope: float = 0.01) -> "Tensor":
        """x where x > 0, else slope · x.   dL/dx = g · (1 or the slope)."""
        slope = np.where(self.data > 0, 1.0, negative_slope).astype(self.dtype)
        out = self.data * slope

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad * slope)
        return self._child(out, (self,), "leaky_relu", backward, saved=(slope,))

    def elu(self, alpha: float = 1.0) -> "Tensor":
        """x where x > 0, else α(e^x - 1).   dL/dx = g · (1, or α e^x)."""
        x = self.data
        exp_part = alpha * np.exp(np.minimum(x, 0))          # α e^x for x <= 0
        out = np.where(x > 0, x, exp_part - alpha)
        slope = np.where(x > 0, 1.0, exp_part).astype(self.dtype)

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad * slope)
        return self._child(out, (self,), "elu", backward, saved=(slope,))

    def log_softmax(self, axis: int = -1) -> "Tensor":
        """x - log Σ exp(x) along ``axis``, computed stably (max subtracted).

            dL/dx = g - softmax(x) Σ g     (the sum along ``axis``)
        """
        (ax,) = _normalize_axis(axis, self.ndim, "log_softmax")
        out = stable_log_softmax(self.data, ax)

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad - np.exp(out) * grad.sum(axis=ax, keepdims=True))
        return self._child(out, (self,), "log_softmax", backward, saved=(out,))

    # ------------------------------------------------------------ reductions
    def _kept_shape(self, axes: tuple[int, ...]) -> tuple[int, ...]:
        """self's shape with the reduced axes kept as 1s (as keepdims=True gives):
        a reduction's gradient reshaped to it broadcasts against self."""
        return tuple(1 if i in axes else n for i, n in enumerate(self.shape))

    def sum(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """Σ x over ``axis``.   dL/dx = g, copied to every entry that was summed."""
        axes = _normalize_axis(axis, self.ndim, "sum")
        kept = self._kept_shape(axes)
        out = self.data.sum(axis=axes, keepdims=keepdims)

        def backward(grad: np.ndarray) -> None:
            self._accumulate(np.full(self.shape, grad.reshape(kept)))
        return self._child(out, (self,), "sum", backward)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """The sum over ``axis`` divided by the number of entries summed."""
        axes = _normalize_axis(axis, self.ndim, "mean")
        count = math.prod(self.shape[a] for a in axes)
        if count == 0:
            raise ValueError(f"Tensor.mean: no elements to average (shape {self.shape})")
        return self.sum(axis=axes, keepdims=keepdims) * (1.0 / count)

    def max(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """Largest entry over ``axis``.   dL/dx = g at the max (split evenly
        between ties), 0 elsewhere."""
        axes = _normalize_axis(axis, self.ndim, "max")
        if self.size == 0:
            raise ValueError("Tensor.max: the tensor is empty")
        top = self.data.max(axis=axes, keepdims=True)
        winners = self.data == top
        share = (winners / winners.sum(axis=axes, keepdims=True)).astype(self.dtype)
        kept = self._kept_shape(axes)
        out = top if keepdims else np.squeeze(top, axis=axes)

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad.reshape(kept) * share)
        return self._child(out, (self,), "max", backward, saved=(share,))

    # ------------------------------------------------------------ shape
    def reshape(self, *shape: Union[int, tuple[int, ...]]) -> "Tensor":
        """The same entries in a new shape.   dL/dx = g in x's shape."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            out = self.data.reshape(shape)
        except ValueError:
            raise ValueError(f"Tensor.reshape: cannot reshape {self.shape} "
                             f"({self.size} elements) into {shape}") from None

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad.reshape(self.shape))
        return self._child(out, (self,), "reshape", backward)

    def transpose(self, *axes: int) -> "Tensor":
        """Axes permuted (reversed if none are given).   dL/dx = g, un-permuted."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        order = axes or tuple(reversed(range(self.ndim)))
        if sorted(a % max(self.ndim, 1) for a in order) != list(range(self.ndim)):
            raise ValueError(f"Tensor.transpose: {order} is not a permutation of the "
                             f"{self.ndim} axes of shape {self.shape}")
        inverse = tuple(np.argsort([a % self.ndim for a in order]))

        def backward(grad: np.ndarray) -> None:
            self._accumulate(grad.transpose(inverse))
        return self._child(self.data.transpose(order), (self,), "transpose", backward)

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def __getitem__(self, index: Any) -> "Tensor":
        """x[index], numpy's indexing.   dL/dx = g scattered back to the picked
        entries, added up where an entry was picked more than once."""
        index = _plain_index(index)
        try:
            out = np.array(self.data[index])               # a copy, never a view
        except IndexError as err:
            raise IndexError(f"Tensor[...] on shape {self.shape}: {err}") from None

        def backward(grad: np.ndarray) -> None:
            full = np.zeros_like(self.data)
            np.add.at(full, index, grad)
            self._accumulate(full)
        arrays = tuple(i for i in (index if isinstance(index, tuple) else (index,))
                       if isinstance(i, np.ndarray))
        return self._child(out, (self,), "index", backward, saved=arrays)

    # ------------------------------------------------------------ backward
    def topological_order(self) -> list["Tensor"]:
        """Every Tensor this one depends on (itself last), inputs first."""
        return topological_order(self)

    def backward(self, grad: Optional[ArrayLike] = None) -> None:
        """Compute d(self)/d(t) for every tensor t in the graph that requires grad.

        ``grad`` is dL/d(self); it may be left out only when self holds one
        number (then it is 1). Leaf gradients accumulate across calls, as in
        PyTorch; intermediate nodes are reset and hold the latest gradient.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad; create "
                               "the inputs with requires_grad=True")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() on a tensor of shape {self.shape} needs grad=: the "
                    "gradient is implicit only for a single number; call .sum() or "
                    f".mean() first, or pass grad= of shape {self.shape}")
            seed = np.ones_like(self.data)
        else:
            seed = _as_array(grad.data if isinstance(grad, Tensor) else grad)
            seed = seed.astype(self.dtype, copy=False)
            if seed.shape != self.shape:
                raise ValueError(f"backward(grad=...): grad has shape {seed.shape}, "
                                 f"the tensor has shape {self.shape}")
        order = topological_order(self)
        for node in order:
            if node._prev:
                node.grad = None
        self._accumulate(seed)
        for node in reversed(order):                # outputs before inputs
            if node._backward is not None and node.grad is not None:
                if node._saved_versions:
                    _check_saved_versions(node)
                node._backward(node.grad)


def _any_requires_grad(inputs: tuple[Tensor, ...]) -> bool:
    for t in inputs:
        if t.requires_grad:
            return True
    return False


def _versions_of_saved(saved: tuple[np.ndarray, ...], inputs: tuple[Tensor, ...],
                       out: np.ndarray) -> tuple[tuple[Optional[Tensor], int], ...]:
    """(tensor, its version now) for each input whose data is one of the saved
    arrays, and (None, 0) if the output's own data is (exp, tanh, ...)."""
    versions: list[tuple[Optional[Tensor], int]] = []
    for s in saved:
        if s is out:
            versions.append((None, 0))
        for t in inputs:
            if s is t._data:
                versions.append((t, t._version))
    return tuple(versions)


def _check_saved_versions(node: Tensor) -> None:
    """Refuse to run a backward whose saved arrays were assigned to since."""
    for saved_from, version in node._saved_versions:
        t = node if saved_from is None else saved_from
        if t._version != version:
            raise RuntimeError(
                f"backward(): {_describe(t)} was modified in place (its .data "
                f"assigned {t._version - version} time(s)) after the op {node._op!r} "
                "saved it for the backward pass, so the gradients computed from it "
                "would be wrong. Usual cause: an optimiser step (opt.step(), or "
                "p.data -= lr * p.grad) or another edit of .data between the forward "
                "pass and backward(). Fix: call backward() before changing the data, "
                "or run the forward pass again after the change")


def _check_matmul(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    """Say what is wrong with the shapes of ``A @ B``, in the learner's terms."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"Tensor @: needs arrays, got shapes {a} and {b}; "
                         "use * to multiply by a scalar")
    inner_b = b[-2] if len(b) > 1 else b[0]
    if a[-1] != inner_b:
        raise ValueError(f"Tensor @: shapes {a} and {b} do not match "
                         f"({a[-1]} != {inner_b}): the last axis of the left "
                         "must equal the first (or second-to-last) of the right. "
                         "A transposed weight? W has shape (in, out) here: x @ W")
    try:
        if len(a) > 2 and len(b) > 2:
            np.broadcast_shapes(a[:-2], b[:-2])
    except ValueError:
        raise ValueError(f"Tensor @: the batch axes of {a} and {b} ({a[:-2]} and "
                         f"{b[:-2]}) do not broadcast: stacked matrices need the same "
                         "batch size on both sides (or 1, or none on one side)") from None


def _plain_index(index: Any) -> Any:
    """An index with Tensors replaced by integer arrays (Tensors hold floats)."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        values = index.data
        if not np.all(values == np.round(values)):
            raise IndexError("Tensor[...]: an index Tensor must hold whole numbers")
        return values.astype(np.intp)
    return index

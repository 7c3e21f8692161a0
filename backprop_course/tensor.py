"""Tensor: a numpy array that remembers how it was computed.

The same idea as :class:`~backprop_course.Value`, one array at a time. Each
operation stores a ``_backward(grad)`` that turns dL/d(output), an array of
the output's shape, into dL/d(input) for each input that requires a gradient:

    input.grad += (the op's local Jacobian)^T applied to grad

Broadcasting copies an input along some axes in the forward pass, so its
gradient is *summed* along those axes on the way back (``_unbroadcast``).
Gradients are never modified in place: accumulation makes a new array.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Optional, Union

import numpy as np

from backprop_course.graph import topological_order

ArrayLike = Union["Tensor", np.ndarray, numbers.Real, list, tuple]
Axis = Union[None, int, tuple[int, ...]]


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


def _as_array(data: Any, dtype: Optional[np.dtype] = None) -> np.ndarray:
    """Convert data to a float ndarray (float64 unless it already is float32)."""
    if type(data) is np.ndarray and dtype is None and data.dtype.kind == "f":
        return data                      # what every operation makes: nothing to do
    if isinstance(data, Tensor):
        raise TypeError("Tensor(...) got a Tensor: use it directly, or t.detach()")
    try:
        array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError) as err:
        raise TypeError(f"Tensor needs numbers in a rectangular array: {err}") from None
    if array.dtype.kind in "biu":                 # bool and integers become float
        array = array.astype(np.float64)
    elif array.dtype.kind != "f":
        raise TypeError(f"Tensor needs real numbers, got an array of dtype {array.dtype}")
    return array


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: undo the copies broadcasting made."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)                # leading axes broadcasting added
    grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _normalize_axis(axis: Axis, ndim: int, op: str) -> tuple[int, ...]:
    """Axis argument as a tuple of non-negative ints (None means all axes)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
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


def _is_basic_index(index: Any) -> bool:
    """True for ints, slices, None and ... (no element can be picked twice)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (numbers.Integral, slice, type(None), type(Ellipsis)))
               and not isinstance(p, bool) for p in parts)


class Tensor:
    """An n-dimensional array node with reverse-mode autograd.

    >>> W = Tensor(np.ones((3, 2)), requires_grad=True)
    >>> x = Tensor([[1.0, 2.0, 3.0]])
    >>> (x @ W).sum().backward()
    >>> W.grad                     # d sum(xW) / dW = x^T 1
    array([[1., 1.],
           [2., 2.],
           [3., 3.]])
    """

    __array_ufunc__ = None       # ndarray (op) Tensor defers to Tensor's reflected op

    def __init__(self, data: Any, requires_grad: bool = False,
                 _prev: tuple["Tensor", ...] = (), _op: str = "") -> None:
        self.data: np.ndarray = _as_array(data)
        self.grad: Optional[np.ndarray] = None
        self.requires_grad = bool(requires_grad)
        self._prev = _prev                     # the Tensors this one was computed from
        self._op = _op
        self._backward: Optional[Callable[[np.ndarray], None]] = None
        # the arrays _backward reads, kept alive by the graph until backward:
        # what training costs in memory beyond inference (lesson 07)
        self._saved: tuple[np.ndarray, ...] = ()

    # ------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}{flag})"

    def item(self) -> float:
        """The single number in a one-element tensor."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return float(self.data.reshape(()))

    def numpy(self) -> np.ndarray:
        return self.data

    def detach(self) -> "Tensor":
        """The same data as a new leaf, cut off from the graph."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    # --------------------------------------------------------------- plumbing
    def _lift(self, other: ArrayLike) -> "Tensor":
        """Wrap a number or array as a constant; plain numbers take self's dtype."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Real):
            return Tensor(np.asarray(other, dtype=self.dtype))
        return Tensor(other)

    def _child(self, data: np.ndarray, inputs: tuple["Tensor", ...], op: str,
               backward: Callable[[np.ndarray], None],
               saved: tuple[np.ndarray, ...] = ()) -> "Tensor":
        """Make the output node; record the graph only if an input needs grad.

        ``saved`` lists the arrays ``backward`` reads (besides the gradient):
        the memory the graph holds for this node until backward runs.
        """
        if _grad_enabled:
            for t in inputs:
                if t.requires_grad:
                    out = Tensor(data, requires_grad=True, _prev=inputs, _op=op)
                    out._backward = backward
                    out._saved = saved
                    return out
        return Tensor(data)

    def _accumulate(self, grad: np.ndarray) -> None:
        """self.grad += grad, without touching any existing array in place."""
        if not self.requires_grad:
            return
        if grad.shape != self.shape:   # an engine bug, never the user's
            raise RuntimeError(f"{self._op or 'leaf'}: gradient of shape {grad.shape} "
                               f"for a tensor of shape {self.shape}")
        self.grad = grad if self.grad is None else self.grad + grad

    # ------------------------------------------------------------ arithmetic
    def _broadcast_error(self, other: "Tensor", op: str) -> ValueError:
        """numpy refused to broadcast: say which op and which shapes."""
        return ValueError(f"Tensor {op}: shapes {self.shape} and {other.shape} "
                          "cannot be broadcast together")

    def __add__(self, other: ArrayLike) -> "Tensor":
        other = self._lift(other)
        try:
            data = self.data + other.data
        except ValueError:
            raise self._broadcast_error(other, "+") from None

        def _backward(grad: np.ndarray) -> None:
            if self.requires_grad:
                self._accumulate(_unbroadcast(grad, self.shape))
            if other.requires_grad:
                other._accumulate(_unbroadcast(grad, other.shape))
        return self._child(data, (self, other), "+", _backward)

    def __sub__(self, other: ArrayLike) -> "Tensor":
        other = self._lift(other)
        try:
            data = self.data - other.data
        except ValueError:
            raise self._broadcast_error(other, "-") from None

        def _backward(grad: np.ndarray) -> None:
            if self.requires_grad:
                self._accumulate(_unbroadcast(grad, self.shape))
            if other.requires_grad:
                other._accumulate(_unbroadcast(-grad, other.shape))
        return self._child(data, (self, other), "-", _backward)

    def __mul__(self, other: ArrayLike) -> "Tensor":
        other = self._lift(other)
        try:
            data = self.data * other.data
        except ValueError:
            raise self._broadcast_error(other, "*") from None

        def _backward(grad: np.ndarray) -> None:
            if self.requires_grad:
                self._accumulate(_unbroadcast(grad * other.data, self.shape))
            if other.requires_grad:
                other._accumulate(_unbroadcast(grad * self.data, other.shape))
        return self._child(data, (self, other), "*", _backward,
                           (self.data, other.data))

    def __truediv__(self, other: ArrayLike) -> "Tensor":
        other = self._lift(other)
        if np.any(other.data == 0):
            raise ZeroDivisionError(
                f"Tensor /: the divisor (shape {other.shape}) has "
                f"{int(np.sum(other.data == 0))} zero entries")
        try:
            data = self.data / other.data
        except ValueError:
            raise self._broadcast_error(other, "/") from None

        def _backward(grad: np.ndarray) -> None:   # d(a/b) = da/b - a db/b^2
            if self.requires_grad:
                self._accumulate(_unbroadcast(grad / other.data, self.shape))
            if other.requires_grad:
                other._accumulate(_unbroadcast(-grad * self.data / other.data ** 2,
                                               other.shape))
        return self._child(data, (self, other), "/", _backward,
                           (self.data, other.data))

    def __pow__(self, exponent: numbers.Real) -> "Tensor":
        if isinstance(exponent, (Tensor, np.ndarray)) or not isinstance(exponent, numbers.Real):
            raise TypeError("Tensor ** x: the exponent must be a number; "
                            "for a tensor exponent write (y * x.log()).exp()")
        k = float(exponent)
        if not k.is_integer() and np.any(self.data < 0):
            raise ValueError(f"Tensor ** {k:g}: negative entries need an integer exponent")
        if k < 0 and np.any(self.data == 0):
            raise ZeroDivisionError(f"Tensor ** {k:g}: zero to a negative power")
        k_typed = self.dtype.type(k)

        def _backward(grad: np.ndarray) -> None:   # d(x^k) = k x^(k-1)
            self._accumulate(grad * k_typed * self.data ** (k_typed - 1))
        return self._child(self.data ** k_typed, (self,), f"**{k:g}", _backward,
                           (self.data,))

    def __matmul__(self, other: ArrayLike) -> "Tensor":
        other = self._lift(other)
        a, b = self.data, other.data
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"Tensor @: needs arrays, got shapes {a.shape} and {b.shape}; "
                             "use * to multiply by a scalar")
        inner_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if a.shape[-1] != inner_b:
            raise ValueError(f"Tensor @: shapes {a.shape} and {b.shape} do not match "
                             f"({a.shape[-1]} != {inner_b}): the last axis of the left "
                             "must equal the first (or second-to-last) of the right")
        out_data = a @ b

        def _backward(grad: np.ndarray) -> None:   # C = AB: dA = G B^T, dB = A^T G
            a2 = a if a.ndim > 1 else a[None, :]      # treat vectors as 1-row /
            b2 = b if b.ndim > 1 else b[:, None]      # 1-column matrices
            g2 = grad if b.ndim > 1 else grad[..., None]          # and give grad back
            g2 = g2 if a.ndim > 1 else np.expand_dims(g2, -2)     # the axes they lost
            if self.requires_grad:
                ga = g2 @ b2.swapaxes(-1, -2)
                self._accumulate(_unbroadcast(ga, a2.shape).reshape(a.shape))
            if other.requires_grad:
                gb = a2.swapaxes(-1, -2) @ g2
                other._accumulate(_unbroadcast(gb, b2.shape).reshape(b.shape))
        return self._child(out_data, (self, other), "@", _backward, (a, b))

    def __neg__(self) -> "Tensor":
        def _backward(grad: np.ndarray) -> None:
            self._accumulate(-grad)
        return self._child(-self.data, (self,), "neg", _backward)

    # reflected: 2 + t, x_numpy @ t, ...
    def __radd__(self, other: ArrayLike) -> "Tensor":
        return self._lift(other) + self

    def __rsub__(self, other: ArrayLike) -> "Tensor":
        return self._lift(other) - self

    def __rmul__(self, other: ArrayLike) -> "Tensor":
        return self._lift(other) * self

    def __rtruediv__(self, other: ArrayLike) -> "Tensor":
        return self._lift(other) / self

    def __rmatmul__(self, other: ArrayLike) -> "Tensor":
        return self._lift(other) @ self

    # ------------------------------------------------------------ elementwise
    def exp(self) -> "Tensor":
        e = np.exp(self.data)

        def _backward(grad: np.ndarray) -> None:   # d e^x = e^x
            self._accumulate(grad * e)
        return self._child(e, (self,), "exp", _backward, (e,))

    def log(self) -> "Tensor":
        bad = self.data <= 0
        if np.any(bad):
            raise ValueError(
                f"Tensor.log: {int(bad.sum())} entries are <= 0 (smallest "
                f"{self.data.min():g}); log needs x > 0. For a classification loss "
                "use losses.cross_entropy, which works on logits stably")

        def _backward(grad: np.ndarray) -> None:   # d ln x = 1/x
            self._accumulate(grad / self.data)
        return self._child(np.log(self.data), (self,), "log", _backward, (self.data,))

    def tanh(self) -> "Tensor":
        t = np.tanh(self.data)

        def _backward(grad: np.ndarray) -> None:   # 1 - tanh^2
            self._accumulate(grad * (1 - t * t))
        return self._child(t, (self,), "tanh", _backward, (t,))

    def sigmoid(self) -> "Tensor":
        # 1/(1+e^-x) = (1 + tanh(x/2)) / 2, which never overflows
        s = 0.5 * (1 + np.tanh(0.5 * self.data))

        def _backward(grad: np.ndarray) -> None:   # σ(1-σ)
            self._accumulate(grad * s * (1 - s))
        return self._child(s, (self,), "sigmoid", _backward, (s,))

    def relu(self) -> "Tensor":
        mask = self.data > 0

        def _backward(grad: np.ndarray) -> None:   # 1 where x > 0, else 0
            self._accumulate(grad * mask)
        return self._child(self.data * mask, (self,), "relu", _backward, (mask,))

    def leaky_relu(self, negative_slope: float = 0.01) -> "Tensor":
        slope = np.where(self.data > 0, 1.0, negative_slope).astype(self.dtype)

        def _backward(grad: np.ndarray) -> None:   # 1 or the slope
            self._accumulate(grad * slope)
        return self._child(self.data * slope, (self,), "leaky_relu", _backward, (slope,))

    def elu(self, alpha: float = 1.0) -> "Tensor":
        neg = alpha * np.expm1(np.minimum(self.data, 0))    # α(e^x - 1) for x <= 0
        out = np.where(self.data > 0, self.data, neg)

        def _backward(grad: np.ndarray) -> None:   # 1, or α e^x = out + α
            self._accumulate(grad * np.where(self.data > 0, 1.0, neg + alpha))
        return self._child(out, (self,), "elu", _backward, (self.data, neg))

    def log_softmax(self, axis: int = -1) -> "Tensor":
        """x - log Σ exp(x) along ``axis``, computed stably (max subtracted)."""
        (ax,) = _normalize_axis(axis, self.ndim, "log_softmax")
        out = stable_log_softmax(self.data, ax)

        def _backward(grad: np.ndarray) -> None:   # g - softmax * Σ g
            softmax = np.exp(out)
            self._accumulate(grad - softmax * grad.sum(axis=ax, keepdims=True))
        return self._child(out, (self,), "log_softmax", _backward, (out,))

    # ------------------------------------------------------------ reductions
    def _kept_shape(self, axes: tuple[int, ...]) -> tuple[int, ...]:
        """self's shape with the reduced axes kept as 1s (as keepdims=True gives):
        a reduction's gradient reshaped to it broadcasts against self."""
        return tuple(1 if i in axes else n for i, n in enumerate(self.shape))

    def sum(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        axes = _normalize_axis(axis, self.ndim, "sum")
        kept = self._kept_shape(axes)

        def _backward(grad: np.ndarray) -> None:   # every entry contributed once:
            self._accumulate(np.full(self.shape, grad.reshape(kept)))  # copy g to each
        return self._child(self.data.sum(axis=axes, keepdims=keepdims), (self,), "sum",
                           _backward)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        axes = _normalize_axis(axis, self.ndim, "mean")
        count = math.prod(self.shape[a] for a in axes)
        if count == 0:
            raise ValueError(f"Tensor.mean: no elements to average (shape {self.shape})")
        return self.sum(axis=axes, keepdims=keepdims) * (1.0 / count)

    def max(self, axis: Axis = None, keepdims: bool = False) -> "Tensor":
        """Largest entry; the gradient goes to it (split evenly between ties)."""
        axes = _normalize_axis(axis, self.ndim, "max")
        if self.size == 0:
            raise ValueError("Tensor.max: the tensor is empty")
        top = self.data.max(axis=axes, keepdims=True)
        winners = self.data == top
        share = (winners / winners.sum(axis=axes, keepdims=True)).astype(self.dtype)

        kept = self._kept_shape(axes)

        def _backward(grad: np.ndarray) -> None:
            self._accumulate(grad.reshape(kept) * share)
        out = top if keepdims else np.squeeze(top, axis=axes)
        return self._child(out, (self,), "max", _backward, (share,))

    # ------------------------------------------------------------ shape
    def reshape(self, *shape: Union[int, tuple[int, ...]]) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            out = self.data.reshape(shape)
        except ValueError:
            raise ValueError(f"Tensor.reshape: cannot reshape {self.shape} "
                             f"({self.size} elements) into {shape}") from None

        def _backward(grad: np.ndarray) -> None:
            self._accumulate(grad.reshape(self.shape))
        return self._child(out, (self,), "reshape", _backward)

    def transpose(self, *axes: int) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        order = axes or tuple(reversed(range(self.ndim)))
        if sorted(a % max(self.ndim, 1) for a in order) != list(range(self.ndim)):
            raise ValueError(f"Tensor.transpose: {order} is not a permutation of the "
                             f"{self.ndim} axes of shape {self.shape}")
        inverse = tuple(np.argsort([a % self.ndim for a in order]))

        def _backward(grad: np.ndarray) -> None:   # undo the permutation
            self._accumulate(grad.transpose(inverse))
        return self._child(self.data.transpose(order), (self,), "transpose", _backward)

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def __getitem__(self, index: Any) -> "Tensor":
        if isinstance(index, Tensor):
            index = index.data.astype(np.intp)
        if isinstance(index, tuple):
            index = tuple(i.data.astype(np.intp) if isinstance(i, Tensor) else i
                          for i in index)
        try:
            out = self.data[index]
        except IndexError as err:
            raise IndexError(f"Tensor[...] on shape {self.shape}: {err}") from None
        basic = _is_basic_index(index)

        def _backward(grad: np.ndarray) -> None:   # scatter grad back where it came from
            full = np.zeros_like(self.data)
            if basic:
                full[index] = grad
            else:                                   # an entry may be picked twice: add
                np.add.at(full, index, grad)
            self._accumulate(full)
        return self._child(np.array(out, copy=True), (self,), "index", _backward,
                           tuple(i for i in (index if isinstance(index, tuple) else (index,))
                                 if isinstance(i, np.ndarray)))

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
            grad = np.ones_like(self.data)
        else:
            grad = _as_array(grad.data if isinstance(grad, Tensor) else grad, self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(grad=...): grad has shape {grad.shape}, "
                                 f"the tensor has shape {self.shape}")
        order = topological_order(self)
        for node in order:
            if node._prev:
                node.grad = None
        self._accumulate(grad)
        for node in reversed(order):                # outputs before inputs
            if node._backward is not None and node.grad is not None:
                node._backward(node.grad)


def affine(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``x @ weight + bias`` as one node: lesson 03's affine layer.

    For x of shape (..., n_in), weight (n_in, n_out), bias (n_out,), and
    g = dL/dy of shape (..., n_out), with the rows of x and g stacked:

        y = x W + b,   dL/dx = g Wᵀ,   dL/dW = xᵀ g,   dL/db = Σ_rows g

    The numbers are those of ``x @ weight + bias``, which records two nodes
    (@ then +) and keeps both results. One node keeps one array and runs
    one Python step each way: ``nn.Linear`` uses it, and a float32 training
    step of an MLP is about 2% faster (benchmarks/bench_training_step.py).
    """
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if not (isinstance(x, Tensor) and isinstance(weight, Tensor)
            and (bias is None or isinstance(bias, Tensor))):
        raise TypeError("affine: x, weight and bias must be Tensors, got "
                        + ", ".join(type(t).__name__ for t in inputs))
    xs, ws = x.data.shape, weight.data.shape
    if len(ws) != 2 or not xs or xs[-1] != ws[0]:
        raise ValueError(f"affine: x of shape {xs} and weight of shape {ws} do not "
                         "match: weight must be (n_in, n_out), n_in the last axis of x")
    n_in, n_out = ws
    if bias is not None and bias.data.shape != (n_out,):
        raise ValueError(f"affine: bias has shape {bias.shape}, expected ({n_out},) "
                         f"for weight of shape {ws}")
    out = x.data @ weight.data
    if bias is not None:
        out += bias.data                     # in place: out is a new array of our own

    def _backward(grad: np.ndarray) -> None:
        if x.requires_grad:
            x._accumulate(grad @ weight.data.T)
        rows_x = x.data.reshape(-1, n_in)    # every leading axis is a row
        rows_g = grad.reshape(-1, n_out)
        if weight.requires_grad:
            weight._accumulate(rows_x.T @ rows_g)
        if bias is not None and bias.requires_grad:
            bias._accumulate(rows_g.sum(axis=0))
    return x._child(out, inputs, "affine", _backward, (x.data, weight.data))

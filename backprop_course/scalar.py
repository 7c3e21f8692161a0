"""Value: one number that remembers how it was computed.

Every arithmetic operation on Values builds a node of a computational graph.
``backward()`` then walks the graph from the output back to the inputs and
applies the chain rule at every node:

    dL/d(child) += dL/d(node) * d(node)/d(child)

The ``+=`` is the multivariable chain rule: a Value used in several places
receives the sum of the gradients along every path.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Union

from backprop_course.graph import topological_order

Number = Union[int, float]
_MAX_EXP = math.log(1.7976931348623157e308)       # e^x overflows a float above this


def _no_backward(grad: float) -> None:
    """A leaf has no inputs to pass its gradient on to."""


class Value:
    """A scalar node: ``data`` (the number), ``grad`` (dL/d this, after backward).

    >>> a, b = Value(2.0), Value(-3.0)
    >>> y = a * b + a
    >>> y.backward()
    >>> a.grad, b.grad            # dy/da = b + 1, dy/db = a
    (-2.0, 2.0)
    """

    def __init__(self, data: Number, _prev: tuple["Value", ...] = (),
                 _op: str = "", label: str = "") -> None:
        if isinstance(data, Value):
            raise TypeError(
                "Value(...) takes a number, got a Value: use that Value itself, "
                "or Value(v.data) for a fresh leaf")
        if not isinstance(data, numbers.Real):
            raise TypeError(
                f"Value(...) takes a real number, got {type(data).__name__}: {data!r}")
        self.data: float = float(data)
        self.grad: float = 0.0
        self.label: str = label
        self._prev: tuple[Value, ...] = _prev   # the Values this one was computed from
        self._op: str = _op              # how: "+", "*", "tanh", ...
        # _backward(grad) adds grad * (local derivative) to each child's .grad
        self._backward: Callable[[float], None] = _no_backward

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _lift(other: Union["Value", Number], op: str) -> "Value":
        """Wrap a plain number as a constant leaf so ops can mix both."""
        if isinstance(other, Value):
            return other
        if isinstance(other, numbers.Real):
            return Value(other)
        hint = (" A Tensor belongs to the array engine: use Tensor throughout "
                "(Tensor(v.data) is a constant with this Value's number), or Value "
                "throughout" if type(other).__name__ == "Tensor" else "")
        raise TypeError(
            f"unsupported operand for Value {op}: {type(other).__name__} ({other!r}); "
            f"use a number or a Value.{hint}")

    def __repr__(self) -> str:
        name = f"{self.label}: " if self.label else ""
        return f"Value({name}data={self.data:.4g}, grad={self.grad:.4g})"

    # --------------------------------------------------------------- operations
    def __add__(self, other: Union["Value", Number]) -> "Value":
        other = self._lift(other, "+")
        out = Value(self.data + other.data, (self, other), "+")

        def _backward(grad: float) -> None:   # d(a+b)/da = 1, d(a+b)/db = 1
            self.grad += grad
            other.grad += grad
        out._backward = _backward
        return out

    def __mul__(self, other: Union["Value", Number]) -> "Value":
        other = self._lift(other, "*")
        out = Value(self.data * other.data, (self, other), "*")

        def _backward(grad: float) -> None:   # d(ab)/da = b, d(ab)/db = a
            self.grad += other.data * grad
            other.grad += self.data * grad
        out._backward = _backward
        return out

    def __pow__(self, exponent: Number) -> "Value":
        if isinstance(exponent, Value):
            raise TypeError(
                "Value ** Value is not supported: the exponent must be a number. "
                "For x ** y with a Value y, write (y * x.log()).exp()")
        if not isinstance(exponent, numbers.Real):
            raise TypeError(f"Value ** {type(exponent).__name__}: the exponent must "
                            "be a number")
        k = float(exponent)
        if self.data < 0 and not k.is_integer():
            raise ValueError(
                f"Value ** {k:g}: a negative base ({self.data:g}) needs an integer "
                "exponent")
        if self.data == 0 and k < 0:
            raise ZeroDivisionError(f"Value ** {k:g}: 0 to a negative power is undefined")
        try:
            result = self.data ** k
        except OverflowError:
            raise OverflowError(f"Value ** {k:g}: {self.data:g} ** {k:g} is larger than "
                                "the largest float (about 1.8e308): the values grew out "
                                "of range (a learning rate too large?)") from None
        out = Value(result, (self,), f"**{k:g}")

        def _backward(grad: float) -> None:   # d(x^k)/dx = k x^(k-1)
            self.grad += k * self.data ** (k - 1) * grad
        out._backward = _backward
        return out

    def __truediv__(self, other: Union["Value", Number]) -> "Value":
        other = self._lift(other, "/")
        if other.data == 0:
            raise ZeroDivisionError(f"Value division by zero: {self.data:g} / 0")
        return self * other ** -1

    def __neg__(self) -> "Value":
        return self * -1

    def __sub__(self, other: Union["Value", Number]) -> "Value":
        return self + (-self._lift(other, "-"))

    # reflected: 2 + a, 2 * a, 2 - a, 2 / a
    def __radd__(self, other: Number) -> "Value":
        return self + other

    def __rmul__(self, other: Number) -> "Value":
        return self * other

    def __rsub__(self, other: Number) -> "Value":
        return self._lift(other, "-") - self

    def __rtruediv__(self, other: Number) -> "Value":
        return self._lift(other, "/") / self

    def exp(self) -> "Value":
        if self.data > _MAX_EXP:
            raise OverflowError(
                f"Value.exp: e^{self.data:g} is larger than the largest float "
                f"(about 1.8e308, e^{_MAX_EXP:.2f}). An input this large usually means "
                "the values grew out of range: a learning rate too large, or "
                "unscaled inputs. In a softmax, subtract the largest score first")
        e = math.exp(self.data)
        out = Value(e, (self,), "exp")

        def _backward(grad: float) -> None:   # d(e^x)/dx = e^x
            self.grad += e * grad
        out._backward = _backward
        return out

    def log(self) -> "Value":
        if self.data <= 0:
            raise ValueError(f"Value.log: log({self.data:g}) is undefined; needs x > 0")
        out = Value(math.log(self.data), (self,), "log")

        def _backward(grad: float) -> None:   # d(ln x)/dx = 1/x
            self.grad += grad / self.data
        out._backward = _backward
        return out

    def tanh(self) -> "Value":
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward(grad: float) -> None:   # d(tanh x)/dx = 1 - tanh(x)^2
            self.grad += (1.0 - t * t) * grad
        out._backward = _backward
        return out

    def sigmoid(self) -> "Value":
        x = self.data   # two forms, so exp never overflows
        s = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        out = Value(s, (self,), "sigmoid")

        def _backward(grad: float) -> None:   # σ'(x) = σ(x)(1 - σ(x))
            self.grad += s * (1.0 - s) * grad
        out._backward = _backward
        return out

    def relu(self) -> "Value":
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward(grad: float) -> None:   # 1 where x > 0, else 0
            self.grad += (self.data > 0) * grad
        out._backward = _backward
        return out

    # ----------------------------------------------------------------- backward
    def topological_order(self) -> list["Value"]:
        """Every Value this one depends on (itself last), inputs first."""
        return topological_order(self)

    def backward(self) -> None:
        """Fill ``.grad`` of every Value this one depends on with d(self)/d(that).

        Leaves accumulate (``+=``) across calls, as in PyTorch: set
        ``v.grad = 0.0`` to start again. Intermediate nodes are reset, so
        they always hold the gradient of the latest backward pass.
        """
        order = topological_order(self)
        for node in order:
            if node._prev:
                node.grad = 0.0
        self.grad += 1.0                      # dL/dL = 1
        for node in reversed(order):          # outputs before inputs
            node._backward(node.grad)

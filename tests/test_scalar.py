"""Value: every op against finite differences, reuse, accumulation, errors."""
import gc
import math
import sys

import pytest
from hypothesis import given, settings, strategies as st

from backprop_course import Value

finite = st.floats(-3, 3, allow_nan=False)
positive = st.floats(0.1, 5)


def numeric(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


UNARY = {
    "exp": (lambda v: v.exp(), math.exp, finite),
    "log": (lambda v: v.log(), math.log, positive),
    "tanh": (lambda v: v.tanh(), math.tanh, finite),
    "sigmoid": (lambda v: v.sigmoid(), lambda x: 1 / (1 + math.exp(-x)), finite),
    "neg": (lambda v: -v, lambda x: -x, finite),
    "square": (lambda v: v ** 2, lambda x: x ** 2, finite),
    "cube": (lambda v: v ** 3, lambda x: x ** 3, finite),
    "sqrt": (lambda v: v ** 0.5, math.sqrt, positive),
    "inverse": (lambda v: 1 / v, lambda x: 1 / x, positive),
    "rsub": (lambda v: 2 - v, lambda x: 2 - x, finite),
    "radd": (lambda v: 2 + v, lambda x: 2 + x, finite),
    "rmul": (lambda v: 3 * v, lambda x: 3 * x, finite),
}


@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_unary_ops_match_finite_differences(name, data):
    op, ref, domain = UNARY[name]
    x0 = data.draw(domain)
    x = Value(x0)
    y = op(x)
    y.backward()
    assert y.data == pytest.approx(ref(x0), rel=1e-12, abs=1e-12)
    assert x.grad == pytest.approx(numeric(ref, x0), rel=1e-6, abs=1e-6)


def test_relu_gradient_is_step():
    for x0, g in [(-1.5, 0.0), (2.5, 1.0)]:
        x = Value(x0)
        x.relu().backward()
        assert x.grad == g


BINARY = {
    "+": (lambda a, b: a + b),
    "-": (lambda a, b: a - b),
    "*": (lambda a, b: a * b),
    "/": (lambda a, b: a / b),
}


@pytest.mark.parametrize("name", BINARY)
@settings(max_examples=30, deadline=None)
@given(a0=finite, b0=st.floats(0.2, 3))
def test_binary_ops_match_finite_differences(name, a0, b0):
    op = BINARY[name]
    a, b = Value(a0), Value(b0)
    op(a, b).backward()
    assert a.grad == pytest.approx(numeric(lambda t: op(t, b0), a0), abs=1e-6)
    assert b.grad == pytest.approx(numeric(lambda t: op(a0, t), b0), abs=1e-6)


def test_worked_circuit_from_lesson_02():
    x, y, z = Value(-2.0), Value(5.0), Value(-4.0)
    q = x + y
    f = q * z
    f.backward()
    assert (q.data, f.data) == (3.0, -12.0)
    assert (x.grad, y.grad, z.grad, q.grad) == (-4.0, -4.0, 3.0, -4.0)


def test_node_used_twice_gets_both_paths():
    a = Value(3.0)
    (a * a).backward()            # d(a^2)/da = 2a
    assert a.grad == 6.0
    b = Value(3.0)
    (b + b).backward()
    assert b.grad == 2.0


def test_diamond_and_reused_interior_node():
    x = Value(0.7)
    h = x.tanh()                  # used by both branches
    y = h * h + h.exp()
    y.backward()
    t = math.tanh(0.7)
    expected = (2 * t + math.exp(t)) * (1 - t * t)
    assert x.grad == pytest.approx(expected, rel=1e-12)


def test_leaf_gradients_accumulate_interior_do_not_double():
    x = Value(2.0)
    y = (x * 3).tanh()
    y.backward()
    first = x.grad
    y.backward()
    assert x.grad == pytest.approx(2 * first)       # leaves accumulate
    assert y._prev[0].grad == pytest.approx(1 - math.tanh(6) ** 2)  # interior reset


def test_chain_far_deeper_than_the_recursion_limit_backward_is_iterative():
    depth = 20 * sys.getrecursionlimit()     # a recursive walk would fail 20 times over
    gc.disable()                  # building many objects: skip needless GC passes
    try:
        x = Value(1.0)
        y = x
        for _ in range(depth):
            y = y + 1.0
        y.backward()
    finally:
        gc.enable()
    assert x.grad == 1.0
    assert y.data == depth + 1.0


def test_graph_records_children_and_op():
    a, b = Value(1.0, label="a"), Value(2.0, label="b")
    c = a * b
    assert c._op == "*" and c._prev == (a, b)
    assert c.topological_order()[-1] is c


@pytest.mark.parametrize("bad", ["3", None, [1.0], 1 + 2j])
def test_non_number_is_type_error(bad):
    with pytest.raises(TypeError, match="real number"):
        Value(bad)
    with pytest.raises(TypeError, match="unsupported operand"):
        Value(1.0) + bad


def test_domain_errors_are_clear():
    with pytest.raises(ValueError, match=r"log\(-1\)"):
        Value(-1.0).log()
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        Value(1.0) / 0
    with pytest.raises(ValueError, match="negative base"):
        Value(-2.0) ** 0.5
    with pytest.raises(TypeError, match="exponent must be a number"):
        Value(2.0) ** Value(2.0)


def test_sigmoid_does_not_overflow():
    for x0 in (-800.0, 800.0):
        x = Value(x0)
        s = x.sigmoid()
        s.backward()
        assert 0.0 <= s.data <= 1.0 and x.grad == 0.0

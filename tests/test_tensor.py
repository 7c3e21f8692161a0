"""Tensor: every op against finite differences on generated shapes and values,
broadcasting, reuse, Value agreement, no in-place gradient mutation, errors."""
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from backprop_course import Tensor, Value, losses
from backprop_course.gradcheck import gradcheck, numerical_grad, rel_error

TOL = 1e-6
shapes = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def values(shape, lo=-2.0, hi=2.0):
    """Entries in [lo, hi], none within 0.1 of zero: a gradient entry that is
    exactly 0 (x**3 at 0) or tiny makes any relative error look large."""
    away_from_zero = st.floats(lo, hi).filter(lambda v: abs(v) > 0.1)
    return arrays(np.float64, shape, elements=away_from_zero)


def leaf(a):
    return Tensor(np.array(a, dtype=np.float64), requires_grad=True)


def weighted(op):
    """op's output times fixed random weights: gradcheck differentiates the sum,
    and hypothesis's round numbers (1, -1, 2) can cancel a gradient entry to
    exactly 0, where any relative error looks large."""
    def f(*tensors):
        out = op(*tensors)
        w = np.random.default_rng(out.size).uniform(0.5, 1.5, size=out.shape)
        return out * w
    return f


UNARY = {
    "exp": (lambda t: t.exp(), -2, 2),
    "log": (lambda t: t.log(), 0.2, 3),
    "tanh": (lambda t: t.tanh(), -2, 2),
    "sigmoid": (lambda t: t.sigmoid(), -4, 4),
    "relu": (lambda t: t.relu(), -2, 2),
    "leaky_relu": (lambda t: t.leaky_relu(0.1), -2, 2),
    "elu": (lambda t: t.elu(1.3), -2, 2),
    "neg": (lambda t: -t, -2, 2),
    "pow3": (lambda t: t ** 3, -2, 2),
    "sqrt": (lambda t: t ** 0.5, 0.2, 3),
    "rdiv": (lambda t: 2.0 / t, 0.5, 3),
    "sum": (lambda t: t.sum(), -2, 2),
    "sum0": (lambda t: t.sum(axis=0) * t.sum(axis=0), -2, 2),
    "mean_keep": (lambda t: t.mean(axis=-1, keepdims=True) ** 2, -2, 2),
    "max": (lambda t: t.max(axis=0), -2, 2),
    "max_all": (lambda t: t.max() * 3, -2, 2),
    "log_softmax": (weighted(lambda t: t.log_softmax(axis=-1)), -3, 3),
    "transpose": (lambda t: t.T * np.arange(t.size).reshape(t.T.shape), -2, 2),
    "reshape": (lambda t: t.reshape(-1) * np.arange(t.size), -2, 2),
    "index": (lambda t: t[0] * 2, -2, 2),
}


def away_from_kinks(x, name):
    """Keep finite differences off the kinks of max (values() avoids 0)."""
    if name.startswith("max"):
        x = x + np.arange(x.size).reshape(x.shape) * 1e-2   # no near-ties
    return x


@pytest.mark.parametrize("name", UNARY)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_unary_and_shape_ops_gradcheck(name, data):
    op, lo, hi = UNARY[name]
    shape = data.draw(shapes)
    x = away_from_kinks(data.draw(values(shape, lo, hi)), name)
    assert gradcheck(op, leaf(x)) < TOL


BINARY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


@st.composite
def broadcastable_pair(draw):
    """Two shapes that broadcast: drop leading axes and set some sides to 1."""
    shape = draw(shapes)
    other = list(shape[draw(st.integers(0, len(shape) - 1)):])
    for i in range(len(other)):
        if draw(st.booleans()):
            other[i] = 1
    a, b = (shape, tuple(other)) if draw(st.booleans()) else (tuple(other), shape)
    return a, b


@pytest.mark.parametrize("name", BINARY)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_binary_ops_with_broadcasting_gradcheck(name, data):
    sa, sb = data.draw(broadcastable_pair())
    a = leaf(data.draw(values(sa)))
    b = leaf(data.draw(values(sb, 0.5, 2.0)))        # no division by ~0
    assert gradcheck(weighted(BINARY[name]), a, b) < TOL
    assert a.grad.shape == sa and b.grad.shape == sb  # summed back to shape


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), k=st.integers(1, 4), m=st.integers(1, 4),
       batch=st.sampled_from([(), (2,), (3, 1)]), data=st.data())
def test_matmul_gradcheck_including_batched(n, k, m, batch, data):
    a = leaf(data.draw(values(batch + (n, k))))
    b = leaf(data.draw(values((k, m))))
    assert gradcheck(weighted(lambda a, b: a @ b), a, b) < TOL


def test_matmul_with_vectors_matches_numpy():
    rng = np.random.default_rng(0)
    for sa, sb in [((3,), (3, 2)), ((2, 3), (3,)), ((3,), (3,))]:
        a, b = leaf(rng.normal(size=sa)), leaf(rng.normal(size=sb))
        np.testing.assert_allclose((a @ b).data, a.data @ b.data)
        assert gradcheck(lambda a, b: a @ b, a, b) < TOL


def test_sum_gradient_is_an_ordinary_writeable_array():
    x = leaf(np.ones((2, 3)))
    x.sum(axis=0).sum().backward()
    x.grad[0, 0] = 5.0                       # a learner may poke at it
    assert x.grad.flags.owndata and x.grad[1, 1] == 1.0


@settings(max_examples=50, deadline=None)
@given(edges=st.lists(st.lists(st.integers(0, 1000), max_size=3), min_size=1,
                      max_size=12))
def test_topological_order_puts_every_node_once_after_its_inputs(edges):
    """Random DAGs: node i takes inputs among nodes 0..i-1 (repeats allowed)."""
    leaves = [leaf([1.0]), leaf([2.0])]
    nodes = list(leaves)
    for picks in edges:
        parents = tuple(nodes[p % len(nodes)] for p in picks) or (leaves[0],)
        out = parents[0]
        for p in parents[1:]:
            out = out + p
        nodes.append(out * 1.0)
    root = nodes[-1]
    order = root.topological_order()
    position = {id(n): i for i, n in enumerate(order)}
    assert len(position) == len(order) and order[-1] is root
    for node in order:
        assert all(position[id(c)] < position[id(node)] for c in node._prev)
    reachable, stack = set(), [root]
    while stack:
        node = stack.pop()
        if id(node) not in reachable:
            reachable.add(id(node))
            stack.extend(node._prev)
    assert set(position) == reachable


def test_gradcheck_says_when_inputs_are_not_tensors():
    with pytest.raises(TypeError, match=r"input 0 is a list.*gradcheck\(f, x, W\)"):
        gradcheck(lambda x: x, [leaf([1.0])])


def test_fancy_index_with_repeats_adds():
    x = leaf([1.0, 2.0, 3.0])
    x[np.array([0, 0, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 1.0])


def test_cross_entropy_style_pick_gradcheck():
    rng = np.random.default_rng(1)
    logits = leaf(rng.normal(size=(5, 4)))
    labels = np.array([0, 3, 3, 1, 2])
    f = lambda z: -z.log_softmax(axis=1)[np.arange(5), labels].mean()  # noqa: E731
    assert gradcheck(f, logits) < TOL


def test_max_splits_gradient_between_ties():
    x = leaf([[1.0, 3.0, 3.0]])
    x.max(axis=1).backward(np.array([1.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5]])


def test_reused_nodes_and_diamonds():
    rng = np.random.default_rng(2)
    x = leaf(rng.normal(size=(3, 2)))
    assert gradcheck(lambda x: x * x, x) < TOL              # x*x
    assert gradcheck(lambda x: x + x, x) < TOL              # a+a
    x.zero_grad()
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * np.ones((3, 2)))

    def diamond(x):
        h = x.tanh()                 # an interior node with two consumers
        return h * h.exp() + h
    assert gradcheck(diamond, x) < TOL


def test_value_and_tensor_agree_on_the_same_expression():
    rng = np.random.default_rng(3)
    xs = rng.normal(size=4)
    w = rng.normal(size=4)
    vx = [Value(v) for v in xs]
    vy = sum(((a * b).tanh() + (a * a).sigmoid() - (a / 2).exp() for a, b in zip(vx, w)),
             Value(0.0)).relu()
    vy.backward()
    tx = leaf(xs)
    ty = ((tx * w).tanh() + (tx * tx).sigmoid() - (tx / 2).exp()).sum().relu()
    ty.backward()
    assert ty.item() == pytest.approx(vy.data, rel=1e-12)
    np.testing.assert_allclose(tx.grad, [v.grad for v in vx], rtol=1e-12)


def test_upstream_gradients_are_never_mutated():
    rng = np.random.default_rng(4)
    w = leaf(rng.normal(size=(3, 3)))
    b = leaf(rng.normal(size=(3,)))
    x = Tensor(rng.normal(size=(4, 3)))
    h = (x @ w + b).relu() + (x @ w + b).tanh()
    y = (h * h + h.tanh() + (h @ w).sigmoid()).log_softmax(axis=1)
    loss = ((y[np.arange(4), [0, 1, 2, 0]] * y.max(axis=1)).mean()
            + losses.cross_entropy(h @ w, [0, 1, 2, 0]) * h.sum())
    order = loss.topological_order()
    for node in order:
        node.grad = None
    loss.grad = np.ones(())
    for node in reversed(order):        # the backward sweep, checking each node
        if node._backward is None or node.grad is None:
            continue
        before = node.grad.copy()
        node._backward(node.grad)
        np.testing.assert_array_equal(node.grad, before, err_msg=node._op)


def test_backward_grad_argument_is_not_modified():
    x = leaf(np.ones((2, 2)))
    g = np.full((2, 2), 3.0)
    (x * 2).backward(g)
    np.testing.assert_array_equal(g, np.full((2, 2), 3.0))
    np.testing.assert_array_equal(x.grad, np.full((2, 2), 6.0))


def test_leaves_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad, 2 * (2 * x.data))


def test_no_graph_when_nothing_requires_grad():
    y = Tensor([1.0, 2.0]) * 3
    assert y._prev == () and not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_long_chain_backward_is_iterative():
    x = leaf([1.0])
    y = x
    for _ in range(20 * sys.getrecursionlimit()):   # a recursive walk would fail
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0])


def test_float32_stays_float32():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    y = ((x @ w) * 0.5 + 1).relu().log_softmax().mean()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_numerical_grad_and_rel_error():
    x = np.array([0.3, -1.2])
    g = numerical_grad(lambda v: float(np.sum(v ** 3)), x)
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-8)
    assert rel_error(np.array([1.0]), np.array([1.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([-1.0])) == 1.0
    # the denominator has a floor of 1e-8
    assert rel_error(np.array([0.0]), np.array([1e-10])) == pytest.approx(1e-2)


def test_gradcheck_catches_a_wrong_backward():
    class Broken(Tensor):
        def tanh(self):
            out = super().tanh()
            out._backward = lambda g: self._accumulate(g)   # forgot (1 - tanh^2)
            return out
    x = Broken(np.array([0.5, 1.0]), requires_grad=True)
    assert gradcheck(lambda t: t.tanh(), x) > 0.1


# ------------------------------------------------------------------ errors
def test_matmul_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(5, 3\) and \(4, 2\)"):
        Tensor(np.ones((5, 3))) @ Tensor(np.ones((4, 2)))


def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"Tensor \+: shapes \(2, 3\) and \(4,\)"):
        Tensor(np.ones((2, 3))) + np.ones(4)


def test_backward_on_non_scalar_says_what_to_do():
    x = leaf(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match=r"shape \(2, 2\) needs grad="):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\)"):
        (x * 2).backward(np.ones(3))


@pytest.mark.parametrize("bad, match", [
    ("abc", "real numbers"), ([[1, 2], [3]], "rectangular"), (np.array([1j]), "real"),
])
def test_bad_data_is_type_error(bad, match):
    with pytest.raises(TypeError, match=match):
        Tensor(bad)


def test_domain_errors():
    with pytest.raises(ValueError, match="x > 0 fails for"):
        Tensor([1.0, -1.0]).log()
    with pytest.raises(ZeroDivisionError, match="1 zero entries"):
        Tensor([1.0, 2.0]) / Tensor([1.0, 0.0])
    with pytest.raises(ValueError, match="cannot reshape"):
        Tensor(np.ones(6)).reshape(4, 2)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        Tensor(np.ones((2, 2))).sum(axis=2)
    with pytest.raises(TypeError, match="exponent must be a number"):
        Tensor([1.0]) ** Tensor([2.0])


def test_numpy_on_the_left_defers_to_tensor():
    x = leaf([1.0, 2.0])
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_no_grad_records_no_graph_and_restores_the_mode():
    from backprop_course import no_grad
    from backprop_course.tensor import is_grad_enabled
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with no_grad():
        y = (w * w).sum()
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y._prev == ()
    z = (w * w).sum()                       # recording again after the block
    z.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 4.0])


def test_saved_holds_what_backward_reads():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([3.0, 4.0]), requires_grad=True)
    prod = a * b
    assert any(s is a.data for s in prod._saved) and any(s is b.data for s in prod._saved)
    assert (a + b)._saved == ()             # + needs only the shapes
    assert a._saved == ()                   # a leaf saves nothing

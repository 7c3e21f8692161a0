"""backprop_course.memory: the bytes a graph keeps alive, counted and cross-checked
against what tracemalloc sees being freed."""
from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from backprop_course import Tensor, Value, losses, nn, no_grad
from backprop_course.memory import buffer_owner, graph_bytes, graph_memory, measure_peak


def _mlp_and_batch(depth=6, width=96, batch=128, seed=0):
    rng = np.random.default_rng(seed)
    net = nn.MLP([32] + [width] * depth + [10], rng=seed)
    return net, Tensor(rng.normal(size=(batch, 32))), rng.integers(0, 10, batch)


# ------------------------------------------------------------------ exact counts
def test_counts_outputs_and_saved_arrays_by_hand():
    x = Tensor(np.ones((100, 10)), requires_grad=True)          # 8,000 bytes
    y = (x * 3).relu()          # x*3 (8,000) saves x and the 0-d constant 3 (8 bytes);
    m = graph_memory(y)         # relu: output 8,000 and a bool mask 1,000
    assert (m.leaf_bytes, m.activation_bytes, m.grad_bytes) == (8_008, 17_000, 0)
    assert (m.nodes, m.leaves) == (4, 2)
    assert m.total == graph_bytes(y) == 25_008
    y.sum().backward()
    m = graph_memory(y)
    # x.grad (8,000) is a leaf's; x*3 and relu get grads of 8,000 each
    assert (m.leaf_bytes, m.grad_bytes) == (16_008, 16_000)


def test_views_share_one_buffer_and_are_counted_once():
    x = Tensor(np.zeros((50, 40)), requires_grad=True)
    assert graph_memory(x.T.reshape(-1)).activation_bytes == 16_000   # must copy
    y = x.reshape(40, 50).T                        # two views of x's buffer
    m = graph_memory(y)
    assert m.activation_bytes == 0 and m.leaf_bytes == 16_000
    assert graph_memory(y[::2]).activation_bytes == 8_000   # indexing copies half
    z = (x * x).T                                   # x saved twice: once
    m = graph_memory(z)
    assert (m.leaf_bytes, m.activation_bytes) == (16_000, 16_000)


def test_a_small_view_keeps_the_whole_buffer():
    big = np.zeros((1000, 10))
    assert buffer_owner(big[:1])[1] == buffer_owner(big[3:5].T)[1] == 80_000
    assert buffer_owner(big[:1])[0] == buffer_owner(big.reshape(-1)[7:])[0]
    x = Tensor(np.zeros((1000, 10)), requires_grad=True)
    y = x.T[:, :1]                  # a view of 80 bytes of x's 80,000, or a copy:
    m = graph_memory(y)             # either way it is counted at its owner's size
    owner_size = buffer_owner(y.data)[1]
    assert m.activation_bytes == (0 if owner_size == 80_000 else owner_size)


def test_buffers_made_from_other_objects():
    raw = bytearray(800)
    a = np.frombuffer(raw, dtype=np.float64)
    b = a[10:]
    assert buffer_owner(a)[0] == buffer_owner(b)[0] != buffer_owner(a.copy())[0]
    assert buffer_owner(b)[1] == 800


def test_a_leaf_alone():
    w = Tensor(np.ones(7), requires_grad=True)
    m = graph_memory(w)
    assert (m.leaf_bytes, m.activation_bytes, m.nodes, m.leaves) == (56, 0, 1, 1)


def test_no_grad_records_nothing_to_keep():
    net, x, y = _mlp_and_batch()
    with no_grad():
        out = losses.cross_entropy(net(x), y)
    assert graph_memory(out).activation_bytes == 0      # a leaf: no graph behind it
    out = losses.cross_entropy(net(x), y)
    assert graph_memory(out).activation_bytes > 0


def test_stored_bytes_grow_linearly_with_depth_and_batch():
    def stored(depth, batch):
        net, x, y = _mlp_and_batch(depth=depth, batch=batch)
        return graph_memory(losses.cross_entropy(net(x), y)).activation_bytes
    d2, d4, d8 = stored(2, 64), stored(4, 64), stored(8, 64)
    assert d8 - d4 == 2 * (d4 - d2) > 0
    per_layer = (d4 - d2) // 2
    # the same count done differently: one hidden layer's new nodes, their outputs
    # and saved arrays, without graph_memory's buffer bookkeeping
    net, x, _ = _mlp_and_batch(depth=2, batch=64)
    h1 = net[:2](x)                                # Linear, ReLU: the first layer
    h2 = net[2:4](h1)                              # ... then the second on top
    first = {id(t) for t in h1.topological_order()}
    new = [t for t in h2.topological_order() if t._prev and id(t) not in first]
    arrays = {id(a): a for t in new for a in (t.data, *t._saved)
              if not any(a is u.data for u in h1.topological_order())
              and not any(a is p.data for p in net.parameters())}
    assert per_layer == sum(a.nbytes for a in arrays.values())
    assert per_layer >= 64 * 96 * (8 + 8)     # at least a Linear's and a ReLU's output
    # every stored array has one row per example, except a few numbers (the loss)
    assert 0 <= 2 * stored(4, 64) - stored(4, 128) <= 64


# ------------------------------------------------------ tracemalloc cross-check
@pytest.mark.parametrize("backward", [False, True])
def test_dropping_the_graph_frees_what_graph_memory_counted(backward):
    """Keep the leaves (parameters, input), drop the loss: tracemalloc sees the
    graph's activations (and grads) freed, plus a few hundred bytes of Python
    objects per node."""
    net, x, y = _mlp_and_batch()
    was_tracing = tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        loss = losses.cross_entropy(net(x), y)
        if backward:
            loss.backward()
        m = graph_memory(loss)
        gc.collect()
        with_graph = tracemalloc.get_traced_memory()[0]
        del loss
        gc.collect()
        freed = with_graph - tracemalloc.get_traced_memory()[0]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    assert (m.grad_bytes > 0) == backward
    assert m.graph_only_bytes > 1_000_000
    assert 0 <= freed - m.graph_only_bytes < 1_500 * m.nodes, (freed, m)


def test_dropping_everything_frees_the_total():
    was_tracing = tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        net, x, y = _mlp_and_batch(depth=4)
        loss = losses.cross_entropy(net(x), y)
        loss.backward()
        m = graph_memory(loss)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        del net, x, y, loss
        gc.collect()
        freed = held - (tracemalloc.get_traced_memory()[0] - base)
    finally:
        if not was_tracing:
            tracemalloc.stop()
    assert 0 <= freed - m.total < 2_500 * m.nodes, (freed, m)


# ------------------------------------------------------------------ measure_peak
def test_measure_peak_sees_a_temporary_array():
    def make_and_drop():
        a = np.ones(1_000_000)            # 8 MB, freed before returning
        return float(a[0])
    result, peak = measure_peak(make_and_drop)
    assert result == 1.0
    assert 8_000_000 <= peak < 8_100_000


def test_measure_peak_training_exceeds_inference():
    net, x, y = _mlp_and_batch(depth=8)

    def train_step():
        loss = losses.cross_entropy(net(x), y)
        loss.backward()
        return graph_memory(loss)

    def infer():
        with no_grad():
            return net(x)
    m, train_peak = measure_peak(train_step)
    _, infer_peak = measure_peak(infer)
    assert train_peak >= m.graph_only_bytes            # all of it was live at the end
    assert train_peak > 5 * infer_peak


def test_measure_peak_keeps_an_outer_trace_running():
    tracemalloc.start()
    try:
        measure_peak(lambda: np.ones(10))
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()
    measure_peak(lambda: None)
    assert not tracemalloc.is_tracing()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad, words", [
    (np.ones(3), "got ndarray"),
    (Value(1.0) * 2, "Python floats"),
    ([Tensor([1.0])], "got list"),
])
def test_graph_memory_refuses_what_is_not_a_tensor(bad, words):
    with pytest.raises(TypeError, match="graph_memory needs the Tensor") as err:
        graph_memory(bad)
    assert words in str(err.value)


def test_buffer_owner_and_measure_peak_refuse_bad_input():
    with pytest.raises(TypeError, match="numpy array"):
        buffer_owner([1.0, 2.0])
    with pytest.raises(TypeError, match="function to run"):
        measure_peak(np.ones(3))

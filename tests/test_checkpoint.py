"""backprop_course.checkpoint: the same gradients as the plain graph, less kept."""
from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop_course import Tensor, losses, nn, no_grad
from backprop_course.checkpoint import checkpoint, checkpoint_sequential, segment_sizes
from backprop_course.memory import graph_memory, measure_peak


def _same(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def _block(x, W, b):
    return (x @ W + b).tanh() * x.sigmoid()


# ------------------------------------------------------------- same gradients
@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_function_of_several_inputs_gets_the_plain_gradients(n, d, seed):
    rng = np.random.default_rng(seed)
    x0, W0, b0 = rng.normal(size=(n, d)), rng.normal(size=(d, d)), rng.normal(size=d)
    up = rng.normal(size=(n, d))
    grads = []
    for use_checkpoint in (False, True):
        x, W, b = (Tensor(a.copy(), requires_grad=True) for a in (x0, W0, b0))
        y = checkpoint(_block, x, W, b) if use_checkpoint else _block(x, W, b)
        (y * y).backward(up)
        grads.append((y.data, x.grad, W.grad, b.grad))
    for plain, ckpt in zip(*grads):
        _same(ckpt, plain)


@pytest.mark.parametrize("segments", [1, 2, 3, 5, 8, None])
def test_checkpoint_sequential_gives_the_plain_gradients(segments):
    net = nn.MLP([5, 16, 16, 16, 16, 3], activation="tanh", rng=3)      # 9 layers
    x0 = np.random.default_rng(0).normal(size=(7, 5))
    y = np.arange(7) % 3
    results = []
    for use in (False, True):
        net.zero_grad()
        x = Tensor(x0.copy(), requires_grad=True)
        out = checkpoint_sequential(net, segments, x) if use else net(x)
        loss = losses.cross_entropy(out, y)
        loss.backward()
        results.append([loss.data, x.grad] + [p.grad for p in net.parameters()])
    for plain, ckpt in zip(*results):
        _same(ckpt, plain)


def test_module_weights_get_gradients_without_an_input_that_requires_grad():
    """The first segment's input is data: the weights must still get their grads."""
    net = nn.MLP([4, 8, 8, 2], rng=1)
    x = np.random.default_rng(1).normal(size=(6, 4))
    plain = net(Tensor(x)).sum()
    plain.backward()
    expected = [p.grad.copy() for p in net.parameters()]
    net.zero_grad()
    out = checkpoint(net, Tensor(x))
    assert out.requires_grad
    out.sum().backward()
    for p, e in zip(net.parameters(), expected):
        _same(p.grad, e)
    net.zero_grad()
    checkpoint(net.forward, Tensor(x)).sum().backward()        # a Module's method
    for p, e in zip(net.parameters(), expected):
        _same(p.grad, e)


def test_function_closing_over_a_weight_is_recorded_with_a_warning():
    W = Tensor(np.eye(3) * 2, requires_grad=True)
    with pytest.warns(UserWarning, match="could not tell which parameters"):
        out = checkpoint(lambda x: (x @ W).relu(), Tensor(np.ones((2, 3))))
    out.sum().backward()
    _same(W.grad, np.full((3, 3), 2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # no parameters: no warning
        assert not checkpoint(lambda x: x * 2, Tensor(np.ones(2))).requires_grad


def test_reused_inputs_and_reused_segments_accumulate():
    lin = nn.Linear(3, 3, rng=0)
    x0 = np.random.default_rng(2).normal(size=(4, 3))

    def f(a, b):                   # a plain function that reads lin's weights
        return lin(a) * b.tanh()

    def forward(ck):
        x = Tensor(x0, requires_grad=True)
        h = checkpoint(f, x, x) if ck else f(x, x)          # x passed twice
        h2 = checkpoint(lin, h) if ck else lin(h)            # lin used twice
        (h2 + h).sum().backward()
        return [x.grad, lin.weight.grad, lin.bias.grad]
    plain = forward(False)
    lin.zero_grad()
    for a, b in zip(forward(True), plain):
        _same(a, b)


def test_non_tensor_arguments_pass_through():
    x = Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)

    def f(x, scale, flip):
        return (x * scale).exp() * (-1 if flip else 1)
    checkpoint(f, x, np.full(3, 0.5), True).sum().backward()
    _same(x.grad, -0.5 * np.exp(0.5 * x.data))


def test_float32_and_a_function_returning_an_input():
    x = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    out = checkpoint(lambda t: t, x)
    (out * 3).sum().backward()
    assert x.grad.dtype == np.float32 and np.all(x.grad == 3)


# --------------------------------------------------------------- what is kept
def test_checkpoint_keeps_only_inputs_and_output():
    net = nn.MLP([16] + [64] * 6 + [16], rng=0)
    x = Tensor(np.random.default_rng(0).normal(size=(32, 16)), requires_grad=True)
    plain = graph_memory(net(x))
    ckpt = graph_memory(checkpoint(net, x))
    assert ckpt.activation_bytes == 32 * 16 * 8            # the output only
    assert plain.activation_bytes > 20 * ckpt.activation_bytes
    assert ckpt.leaf_bytes == plain.leaf_bytes             # same inputs and weights


def test_segments_lower_the_peak_memory_of_a_training_step():
    depth = 36
    net = nn.Sequential(*[nn.Sequential(nn.Linear(32, 32, rng=i), nn.ReLU())
                          for i in range(depth)])
    x = Tensor(np.random.default_rng(0).normal(size=(128, 32)), requires_grad=True)

    def step(segments):
        out = net(x) if segments is None else checkpoint_sequential(net, segments, x)
        (out * out).mean().backward()
    tracemalloc.start()        # before the grads are made: their replacements net 0
    try:
        step(None)                                  # grads exist before measuring
        peaks = {s: measure_peak(step, s)[1] for s in (None, depth, 6)}
    finally:
        tracemalloc.stop()
    assert peaks[6] < peaks[depth] < peaks[None]
    # In units of one activation array A (128 x 32 floats): a layer's graph keeps
    # s A (on this engine 25/8: x @ W, + b, ReLU output, ReLU mask) and gets g A
    # of node grads, both measured with graph_memory on one block. Plain: all n
    # layers. Checkpointed in segments of k: n/k kept outputs and their grads, the
    # last segment's graph (kept from the forward pass) and one recomputed one.
    A = 128 * 32 * 8
    one = net[0](Tensor(x.data, requires_grad=True))
    s = graph_memory(one).activation_bytes / A
    one.backward(np.ones_like(one.data))
    g = graph_memory(one).grad_bytes / A
    per_layer = s + g
    model = {None: depth * per_layer, depth: 2 * depth + 2 * per_layer,
             6: 2 * 6 + 2 * 6 * per_layer}
    for s, peak in peaks.items():
        assert abs(peak / A / model[s] - 1) < 0.1, (s, peak / A, model[s])


def test_recompute_counts_one_extra_forward():
    calls = []

    def f(x):
        calls.append(1)
        return x.tanh()
    x = Tensor(np.ones(3), requires_grad=True)
    y = checkpoint(f, x)
    assert len(calls) == 1
    y.sum().backward()
    assert len(calls) == 2


def test_under_no_grad_it_is_a_plain_call():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = checkpoint(lambda t: t * 2, x)
    assert not y.requires_grad and np.all(y.data == 2)


# ---------------------------------------------------------------- refusals
def test_fn_must_return_one_tensor():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TypeError, match="must return one Tensor, got ndarray"):
        checkpoint(lambda t: t.data * 2, x)
    with pytest.raises(TypeError, match="checkpoint each output separately"):
        checkpoint(lambda t: (t, t), x)
    with pytest.raises(TypeError, match=r"checkpoint\(fn, x\), not checkpoint\(fn\(x\)\)"):
        checkpoint(x * 2, x)


def test_a_nondeterministic_fn_is_refused_in_backward():
    rng = np.random.default_rng(0)
    x = Tensor(np.ones((4, 4)), requires_grad=True)
    y = checkpoint(lambda t: t * Tensor(rng.random((4, 4)) > 0.5), x)    # dropout
    with pytest.raises(RuntimeError, match="different output.*deterministic"):
        y.sum().backward()


def test_an_input_changed_in_place_is_refused():
    x = Tensor(np.ones(3), requires_grad=True)
    y = checkpoint(lambda t: t.exp(), x)
    x.data += 1.0
    with pytest.raises(RuntimeError, match="in-place|in place"):
        y.sum().backward()             # refused by checkpoint, or by the engine first


def test_backward_inside_no_grad_is_refused():
    x = Tensor(np.ones(3), requires_grad=True)
    y = checkpoint(lambda t: t.exp(), x).sum()
    with no_grad(), pytest.raises(RuntimeError, match="outside `with no_grad"):
        y.backward()


@pytest.mark.parametrize("n, segments, sizes", [
    (16, None, [4, 4, 4, 4]), (10, 3, [4, 3, 3]), (5, 5, [1] * 5), (7, 1, [7]),
    (2, None, [2]), (3, None, [2, 1]), (1, None, [1]), (130, None, [12] * 9 + [11] * 2)])
def test_segment_sizes(n, segments, sizes):
    assert segment_sizes(n, segments) == sizes and sum(sizes) == n


@pytest.mark.parametrize("n, segments", [(0, None), (4, 0), (4, 5), (4.0, 2), (4, True)])
def test_segment_sizes_refuses(n, segments):
    with pytest.raises(ValueError, match="segment_sizes"):
        segment_sizes(n, segments)


def test_checkpoint_sequential_refuses_what_is_not_a_chain():
    with pytest.raises(TypeError, match="needs an nn.Sequential"):
        checkpoint_sequential(nn.Linear(2, 2), 1, Tensor(np.ones((1, 2))))
    with pytest.raises(ValueError, match="no layers"):
        checkpoint_sequential(nn.Sequential(), None, Tensor(np.ones((1, 2))))
    with pytest.raises(ValueError, match="from 1 to n = 3"):
        checkpoint_sequential(nn.MLP([2, 2, 2]), 4, Tensor(np.ones((1, 2))))

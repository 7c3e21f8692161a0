"""Tests for backprop_course.nn: layers, containers, initialisation."""
import numpy as np
import pytest

from backprop_course import Tensor, losses, nn
from backprop_course.gradcheck import numerical_grad, rel_error


# ------------------------------------------------------------------ Linear

def test_linear_forward_is_x_W_plus_b():
    layer = nn.Linear(3, 2, rng=0)
    layer.bias.data = np.array([0.5, -1.0])
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 4.0]])
    W = layer.weight.data
    expected = np.array([[W[0, j] + 2 * W[1, j] + 3 * W[2, j] + [0.5, -1.0][j]
                          for j in range(2)],
                         [-W[0, j] + 4 * W[2, j] + [0.5, -1.0][j] for j in range(2)]])
    np.testing.assert_allclose(layer(x).data, expected, rtol=1e-12)


def test_linear_shapes_bias_zero_and_no_bias():
    layer = nn.Linear(5, 7, rng=0)
    assert layer.weight.shape == (5, 7)              # (in, out): x @ W
    assert layer.bias.shape == (7,)
    assert np.all(layer.bias.data == 0)
    assert layer.weight.requires_grad and layer.bias.requires_grad
    no_bias = nn.Linear(5, 7, bias=False, rng=0)
    assert no_bias.bias is None
    assert len(no_bias.parameters()) == 1
    x = np.ones((2, 5))
    np.testing.assert_allclose(no_bias(x).data, x @ no_bias.weight.data)


def test_linear_gradients_by_hand():
    layer = nn.Linear(3, 4, rng=1)
    x = Tensor(np.random.default_rng(2).normal(size=(5, 3)), requires_grad=True)
    G = np.random.default_rng(3).normal(size=(5, 4))
    (layer(x) * G).sum().backward()                  # dL/dy = G
    np.testing.assert_allclose(layer.weight.grad, x.data.T @ G, rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, G.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(x.grad, G @ layer.weight.data.T, rtol=1e-12)


def test_linear_rejects_wrong_input_width():
    layer = nn.Linear(3, 2, rng=0)
    with pytest.raises(ValueError, match=r"\(4, 5\).*3 features"):
        layer(np.ones((4, 5)))


def test_linear_rejects_mixed_dtypes():
    layer = nn.Linear(3, 2, rng=0, dtype=np.float32)
    with pytest.raises(TypeError, match="float32.*float64"):
        layer(np.ones((4, 3)))


def test_float32_layer_keeps_float32_through_backward():
    net = nn.MLP([3, 4, 2], rng=0, dtype=np.float32)
    out = net(np.ones((2, 3), dtype=np.float32))
    assert out.dtype == np.float32
    losses.cross_entropy(out, np.array([0, 1])).backward()
    assert all(p.data.dtype == np.float32 and p.grad.dtype == np.float32
               for p in net.parameters())


def test_same_seed_same_weights_in_both_dtypes():
    a = nn.MLP([4, 6, 3], rng=7)
    b = nn.MLP([4, 6, 3], rng=7)
    c = nn.MLP([4, 6, 3], rng=7, dtype="float32")
    d = nn.MLP([4, 6, 3], rng=8)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
        np.testing.assert_array_equal(pa.data.astype(np.float32), pc.data)
    assert not np.array_equal(a[0].weight.data, d[0].weight.data)


def test_rng_accepts_generator_and_rejects_junk():
    g = np.random.default_rng(0)
    first = nn.Linear(2, 2, rng=g).weight.data
    second = nn.Linear(2, 2, rng=g).weight.data    # the generator moved on
    assert not np.array_equal(first, second)
    with pytest.raises(ValueError, match="rng"):
        nn.Linear(2, 2, rng="seed")


# ------------------------------------------------------------------ gradients

@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "elu", "leaky_relu"])
def test_mlp_cross_entropy_gradients_match_finite_differences(activation):
    rng = np.random.default_rng(0)
    net = nn.MLP([4, 6, 3], activation=activation, rng=1)
    x = rng.normal(size=(5, 4))
    y = np.array([0, 2, 1, 2, 0])

    net.zero_grad()
    losses.cross_entropy(net(x), y).backward()
    for name, p in net.named_parameters():
        def loss_at(value, p=p):
            saved, p.data = p.data, value
            try:
                return losses.cross_entropy(net(x), y).item()
            finally:
                p.data = saved
        # h = 1e-5: with leaky_relu's 0.01 slope some entries are ~1e-4, where
        # h = 1e-6's round-off (~1e-16 / h) alone reaches a relative 1e-6
        numeric = numerical_grad(loss_at, p.data, h=1e-5)
        assert rel_error(p.grad, numeric) < 1e-6, name


def test_residual_gradient_is_identity_plus_branch():
    block = nn.Residual(nn.Linear(4, 4, rng=0))
    W = block.module.weight.data
    x = Tensor(np.random.default_rng(1).normal(size=(3, 4)), requires_grad=True)
    G = np.random.default_rng(2).normal(size=(3, 4))
    y = block(x)
    np.testing.assert_allclose(y.data, x.data + x.data @ W, rtol=1e-12)
    (y * G).sum().backward()
    np.testing.assert_allclose(x.grad, G + G @ W.T, rtol=1e-12)   # I + branch


def test_residual_scale():
    block = nn.Residual(nn.Linear(2, 2, rng=0), scale=0.25)
    x = np.array([[1.0, -2.0]])
    np.testing.assert_allclose(block(x).data, x + 0.25 * (x @ block.module.weight.data))


def test_residual_shape_mismatch_is_a_clear_error():
    block = nn.Residual(nn.Linear(4, 3, rng=0))
    with pytest.raises(ValueError, match=r"Linear maps \(2, 4\) to \(2, 3\)"):
        block(np.ones((2, 4)))


# ------------------------------------------------------------------ init

@pytest.mark.parametrize("scheme, variance", [
    ("naive", lambda i, o: 1e-4),
    ("xavier", lambda i, o: 2 / (i + o)),
    ("glorot", lambda i, o: 2 / (i + o)),
    ("xavier_uniform", lambda i, o: 2 / (i + o)),
    ("he", lambda i, o: 2 / i),
    ("kaiming", lambda i, o: 2 / i),
    ("he_uniform", lambda i, o: 2 / i),
    ("lecun", lambda i, o: 1 / i),
])
def test_init_variance(scheme, variance):
    fan_in, fan_out = 300, 700                        # 210,000 samples: var ±0.3%
    W = nn.init_weight(fan_in, fan_out, scheme, rng=0)
    assert W.shape == (fan_in, fan_out)
    assert W.var() == pytest.approx(variance(fan_in, fan_out), rel=0.03)
    assert abs(W.mean()) < 0.05 * W.std()
    assert nn.init_std(fan_in, fan_out, scheme) ** 2 == pytest.approx(
        variance(fan_in, fan_out), rel=1e-12)


def test_uniform_schemes_are_bounded_and_normal_are_not():
    a = np.sqrt(6 / 300)                             # he_uniform bound √(6/fan_in)
    W = nn.init_weight(300, 700, "he_uniform", rng=0)
    assert np.abs(W).max() <= a
    assert np.abs(W).max() > 0.99 * a
    assert np.abs(nn.init_weight(300, 700, "he", rng=0)).max() > a


def test_linear_uses_its_init_scheme():
    layer = nn.Linear(400, 500, init="xavier", rng=0)
    assert layer.weight.data.var() == pytest.approx(2 / 900, rel=0.03)


def test_unknown_scheme_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown init scheme 'glorious'.*xavier.*he"):
        nn.init_weight(3, 3, "glorious")
    with pytest.raises(ValueError, match="known schemes"):
        nn.Linear(3, 3, init="zeros")


def test_init_refills():
    t = Tensor(np.zeros((50, 40)), requires_grad=True)
    nn.init.uniform_(t, -0.3, 0.3, rng=0)
    assert t.data.min() >= -0.3 and t.data.max() <= 0.3 and t.data.std() > 0.15
    nn.init.normal_(t, 0.0, 2.0, rng=0)
    assert t.data.std() == pytest.approx(2.0, rel=0.05)
    nn.init.zeros_(t)
    assert np.all(t.data == 0)


# ------------------------------------------------------------------ Module

def test_parameters_order_and_count():
    net = nn.MLP([3, 5, 4, 2], rng=0)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    assert shapes == [(3, 5), (5, 4), (4, 2)]
    expected = [t for m in linears for t in (m.weight, m.bias)]
    params = net.parameters()
    assert len(params) == 6
    assert all(p is q for p, q in zip(params, expected))
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]


def test_custom_module_finds_tensors_modules_and_lists():
    class Net(nn.Module):
        def __init__(self):
            self.first = nn.Linear(2, 3, rng=0)
            self.blocks = [nn.Linear(3, 3, rng=1), nn.Tanh(), nn.Linear(3, 3, rng=2)]
            self.scale = Tensor(np.ones(3), requires_grad=True)
            self.constant = Tensor(np.ones(3))            # no grad: not a parameter
            self.shared = self.first                      # counted once

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.first(x) * self.scale

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["first.weight", "first.bias", "blocks.0.weight", "blocks.0.bias",
                     "blocks.2.weight", "blocks.2.bias", "scale"]


def test_zero_grad_clears_every_parameter():
    net = nn.MLP([2, 3, 2], rng=0)
    losses.cross_entropy(net(np.ones((1, 2))), [1]).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Thing must define forward"):
        type("Thing", (nn.Module,), {})()(np.ones(2))


# ------------------------------------------------------------------ activations

def test_activation_modules_match_their_formulas():
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_allclose(nn.ReLU()(x).data, np.maximum(x, 0))
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(x).data, np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(nn.ELU(2.0)(x).data, np.where(x > 0, x, 2 * np.expm1(x)))
    np.testing.assert_allclose(nn.Tanh()(x).data, np.tanh(x))
    np.testing.assert_allclose(nn.Sigmoid()(x).data, 1 / (1 + np.exp(-x)))
    np.testing.assert_array_equal(nn.Identity()(x).data, x)
    assert nn.LeakyReLU().negative_slope == 0.01 and nn.ELU().alpha == 1.0


# ------------------------------------------------------------------ containers

def test_sequential_applies_in_order_and_indexes():
    net = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ReLU(), nn.Linear(3, 1, rng=1))
    x = np.array([[1.0, -1.0]])
    by_hand = np.maximum(x @ net[0].weight.data, 0) @ net[2].weight.data
    np.testing.assert_allclose(net(x).data, by_hand)
    assert len(net) == 3
    assert isinstance(net[1], nn.ReLU)
    head = net[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2
    assert head[0] is net[0]
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear"]


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="argument 1 is a type.*nn.ReLU()"):
        nn.Sequential(nn.Linear(2, 2), nn.ReLU)


def test_mlp_structure_plain_and_residual():
    plain = nn.MLP([2, 8, 8, 8, 3], activation="tanh", rng=0)
    res = nn.MLP([2, 8, 8, 8, 3], activation="tanh", residual=True, rng=0)
    assert [type(m).__name__ for m in plain] == (
        ["Linear"] + ["Tanh", "Linear"] * 3)
    assert [type(m).__name__ for m in res] == (
        ["Linear", "Residual", "Residual", "Tanh", "Linear"])
    for p, q in zip(plain.parameters(), res.parameters()):    # same weights
        np.testing.assert_array_equal(p.data, q.data)
    x = np.random.default_rng(1).normal(size=(4, 2))
    W = [m.weight.data for m in res.modules() if isinstance(m, nn.Linear)]
    h = x @ W[0]
    h = h + np.tanh(h) @ W[1]
    h = h + np.tanh(h) @ W[2]
    np.testing.assert_allclose(res(x).data, np.tanh(h) @ W[3], rtol=1e-12)


def test_mlp_accepts_module_class_and_rejects_unknown_activation():
    net = nn.MLP([2, 3, 1], activation=nn.Sigmoid, rng=0)
    assert isinstance(net[1], nn.Sigmoid)
    with pytest.raises(ValueError, match="unknown activation 'swish'.*relu"):
        nn.MLP([2, 3, 1], activation="swish")
    with pytest.raises(ValueError, match="at least an input and an output"):
        nn.MLP([5])


def test_repr_shows_the_layers():
    text = repr(nn.MLP([2, 4, 1], rng=0))
    assert "(0): Linear(in_features=2, out_features=4, bias=True, init='he')" in text
    assert "(1): ReLU()" in text


def test_residual_stack_variance_doubles_per_block_unless_scaled():
    # the Residual docstring's claim: He init, ReLU, x + F(x) doubles Var(x) per
    # block; scale 1/√depth keeps the growth of `depth` blocks below about e
    x = np.random.default_rng(0).normal(size=(256, 64))
    ratios = {}
    for scale in (1.0, 1 / np.sqrt(20)):
        net = nn.MLP([64] + [64] * 21 + [10], residual=True, residual_scale=scale,
                     rng=0)
        h = net[0](x).data
        start = h.var()
        for block in list(net)[1:21]:
            assert isinstance(block, nn.Residual)
            h = block(h).data
        ratios[scale] = h.var() / start
    assert 2 ** 20 / 4 < ratios[1.0] < 2 ** 20 * 4
    assert 1.5 < ratios[1 / np.sqrt(20)] < 4.0


# ------------------------------------------------------------------ normalisation

def _by_hand(x, axis, eps=1e-5):
    mean = x.mean(axis=axis, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=axis, keepdims=True) + eps)


def _gradcheck_layer(layer, x, seed):
    """Every gradient of sum(w * layer(x)) (x and the layer's parameters)
    against central differences."""
    x = Tensor(x, requires_grad=True)
    w = np.random.default_rng(seed).uniform(0.5, 1.5, size=layer(x).shape)
    layer.zero_grad()
    (layer(x) * w).sum().backward()
    for t in [x] + layer.parameters():
        def f(a, t=t):
            saved = t.data
            t.data = a
            try:
                return float((layer(x).data * w).sum())
            finally:
                t.data = saved
        np.testing.assert_allclose(t.grad, numerical_grad(f, t.data.copy(), h=1e-5),
                                   rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", [(4, 5), (3,), (2, 3, 6)])
def test_layer_norm_normalises_each_row_and_gradchecks(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape) * 3 + 2
    layer = nn.LayerNorm(shape[-1])
    np.testing.assert_allclose(layer(x).data, _by_hand(x, -1), rtol=1e-12, atol=1e-12)
    layer.weight.data = rng.uniform(0.5, 2, size=shape[-1])
    layer.bias.data = rng.normal(size=shape[-1])
    expected = _by_hand(x, -1) * layer.weight.data + layer.bias.data
    np.testing.assert_allclose(layer(x).data, expected, rtol=1e-12, atol=1e-12)
    _gradcheck_layer(layer, x, seed=1)


def test_batch_norm_training_normalises_columns_and_gradchecks():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4)) * [1, 2, 3, 4] + [0, 1, -1, 5]
    layer = nn.BatchNorm1d(4)
    np.testing.assert_allclose(layer(x).data, _by_hand(x, 0), rtol=1e-12, atol=1e-12)
    layer.weight.data = rng.uniform(0.5, 2, size=4)
    layer.bias.data = rng.normal(size=4)
    _gradcheck_layer(layer, x, seed=2)
    # the gradient reaches x through the batch mean and variance too: with
    # weight 1, Σ over the batch of dL/dx is 0 for every column
    x_t = Tensor(x, requires_grad=True)
    (nn.BatchNorm1d(4)(x_t) * rng.normal(size=(6, 4))).sum().backward()
    np.testing.assert_allclose(x_t.grad.sum(axis=0), 0.0, atol=1e-12)


def test_batch_norm_running_statistics_and_eval_mode():
    rng = np.random.default_rng(2)
    layer = nn.BatchNorm1d(3, momentum=0.1)
    batches = [rng.normal(size=(8, 3)) * 2 + 1 for _ in range(2)]
    mean, var = np.zeros(3), np.ones(3)
    for x in batches:
        layer(x)
        mean = 0.9 * mean + 0.1 * x.mean(axis=0)
        var = 0.9 * var + 0.1 * x.var(axis=0, ddof=1)      # unbiased, as PyTorch
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-12)
    assert layer.eval() is layer and not layer.training
    one = layer(batches[0][:1]).data                   # one example works in eval
    np.testing.assert_allclose(one, (batches[0][:1] - mean) / np.sqrt(var + 1e-5),
                               rtol=1e-12)
    np.testing.assert_allclose(layer(batches[0]).data[:1], one)  # batch-independent
    np.testing.assert_allclose(layer.running_mean, mean)        # not updated in eval


def test_train_and_eval_reach_every_sub_module():
    net = nn.Sequential(nn.Linear(3, 4, rng=0), nn.BatchNorm1d(4), nn.ReLU(),
                        nn.Residual(nn.Sequential(nn.BatchNorm1d(4))))
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias",
                     "3.module.0.weight", "3.module.0.bias"]   # buffers are not params


def test_normalisation_keeps_float32():
    x = np.random.default_rng(3).normal(size=(4, 5)).astype(np.float32)
    for layer in (nn.LayerNorm(5, dtype=np.float32), nn.BatchNorm1d(5, dtype=np.float32)):
        out = layer(x)
        out.sum().backward()
        assert out.dtype == np.float32 and layer.weight.grad.dtype == np.float32
    assert layer.running_mean.dtype == layer.running_var.dtype == np.float32


@pytest.mark.parametrize("make, x, message", [
    (lambda: nn.LayerNorm(4), np.ones((2, 3)), r"shape \(2, 3\).*4 features"),
    (lambda: nn.BatchNorm1d(4), np.ones((2, 3)), r"shape \(2, 3\).*\(batch, 4\)"),
    (lambda: nn.BatchNorm1d(4), np.ones(4), r"shape \(4,\).*\(batch, 4\)"),
    (lambda: nn.BatchNorm1d(4), np.ones((1, 4)), r"at least 2 examples.*\.eval\(\)"),
])
def test_normalisation_bad_input_is_clear(make, x, message):
    with pytest.raises(ValueError, match=message):
        make()(x)


@pytest.mark.parametrize("make, message", [
    (lambda: nn.LayerNorm(0), "normalized_shape must be a positive integer"),
    (lambda: nn.BatchNorm1d(2.5), "num_features must be a positive integer"),
    (lambda: nn.BatchNorm1d(3, momentum=1.5), r"momentum must be in \[0, 1\]"),
])
def test_normalisation_bad_settings_are_clear(make, message):
    with pytest.raises(ValueError, match=message):
        make()

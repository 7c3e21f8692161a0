"""Tests for backprop_course.optim against the update formulas, written out in numpy."""
import numpy as np
import pytest

from backprop_course import Tensor, losses, nn, optim

P0 = np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]])
GRADS = [np.array([[0.1, -0.2, 0.3], [-1.0, 0.0, 2.0]]),
         np.array([[0.4, 0.1, -0.3], [0.5, -0.5, 1.0]]),
         np.array([[-0.2, 0.3, 0.0], [0.2, 1.5, -1.0]])]


def run(opt_class, steps, **kwargs):
    """Apply ``steps`` updates with the fixed GRADS; return the parameter values."""
    p = Tensor(P0.copy(), requires_grad=True)
    opt = opt_class([p], **kwargs)
    for g in GRADS[:steps]:
        p.grad = g
        opt.step()
    return p.data


# ------------------------------------------------------------------ SGD

def test_sgd_one_step_by_hand():
    np.testing.assert_allclose(run(optim.SGD, 1, lr=0.5),
                               [[0.45, -0.9, 1.85], [0.5, 3.0, -1.25]], rtol=1e-15)


@pytest.mark.parametrize("steps", [1, 3])
def test_sgd_momentum_matches_formula(steps):
    lr, mu = 0.1, 0.9
    p, v = P0.copy(), np.zeros_like(P0)
    for g in GRADS[:steps]:
        v = mu * v + g                        # PyTorch: v <- mu v + g
        p = p - lr * v                        #          p <- p - lr v
    np.testing.assert_allclose(run(optim.SGD, steps, lr=lr, momentum=mu), p,
                               rtol=1e-14)
    if steps == 3:                            # and momentum really changes the path
        plain = run(optim.SGD, 3, lr=lr)
        assert not np.allclose(plain, p)


# ------------------------------------------------------------------ RMSprop

@pytest.mark.parametrize("steps", [1, 3])
def test_rmsprop_matches_formula(steps):
    lr, alpha, eps = 0.01, 0.99, 1e-8
    p, s = P0.copy(), np.zeros_like(P0)
    for g in GRADS[:steps]:
        s = alpha * s + (1 - alpha) * g ** 2
        p = p - lr * g / (np.sqrt(s) + eps)
    np.testing.assert_allclose(run(optim.RMSprop, steps), p, rtol=1e-14)


# ------------------------------------------------------------------ Adam

def test_adam_first_step_is_lr_times_sign():
    # after one step m̂ = g and v̂ = g², so the step is lr · g / (|g| + eps)
    got = run(optim.Adam, 1, lr=0.01)
    g = GRADS[0]
    np.testing.assert_allclose(got, P0 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-14)
    moved = got - P0
    np.testing.assert_allclose(moved[g != 0], -0.01 * np.sign(g[g != 0]), rtol=1e-6)
    assert moved[1, 1] == 0.0                 # zero gradient: no move


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9)])
def test_adam_three_steps_match_formula(betas):
    lr, eps = 0.05, 1e-8
    b1, b2 = betas
    p, m, v = P0.copy(), np.zeros_like(P0), np.zeros_like(P0)
    for t, g in enumerate(GRADS, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(run(optim.Adam, 3, lr=lr, betas=betas), p, rtol=1e-14)


# ------------------------------------------------------------------ common behaviour

@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: optim.RMSprop(ps),
    lambda ps: optim.Adam(ps),
])
def test_unused_parameters_are_skipped_and_callers_arrays_never_written(make):
    W0 = np.ones((2, 2))
    used = Tensor(W0, requires_grad=True)           # holds a copy of W0
    unused = Tensor(np.full(3, 7.0), requires_grad=True)
    frozen = Tensor(np.ones(2), requires_grad=True)
    opt = make([used, unused, frozen])
    frozen.data.flags.writeable = False             # read-only: replaced, not written
    for _ in range(2):
        opt.zero_grad()
        ((used * 2.0).sum() + (frozen * 3.0).sum()).backward()
        opt.step()
    assert unused.grad is None
    np.testing.assert_array_equal(unused.data, 7.0)
    assert np.all(used.data < 1.0) and np.all(frozen.data < 1.0)
    np.testing.assert_array_equal(W0, 1.0)          # the caller's array is untouched


def test_a_step_assigns_a_new_array_so_kept_arrays_keep_their_numbers():
    p = Tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([p], lr=0.5)
    kept = p.data
    p.grad = np.ones(3)
    opt.step()
    np.testing.assert_array_equal(p.data, 0.5)
    np.testing.assert_array_equal(kept, 1.0)        # a record of the old weights
    assert p._version == 1                          # the step counts as a change


def test_zero_grad():
    p = Tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.sum().backward()
    opt.zero_grad()
    assert p.grad is None


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=0), "lr must be a positive number, got 0"),
    (lambda p: optim.SGD(p, lr=-0.1), "lr must be a positive"),
    (lambda p: optim.SGD(p, lr=float("nan")), "lr must be a positive"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=1.0), r"momentum must be in \[0, 1\)"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1\)"),
    (lambda p: optim.Adam(p, betas=(-0.1, 0.999)), r"betas\[0\] must be in"),
    (lambda p: optim.Adam(p, betas=0.9), "betas must be a pair"),
    (lambda p: optim.RMSprop(p, eps=0), "eps must be a positive"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: optim.SGD(p + p, lr=0.1), "appears twice"),
    (lambda p: optim.SGD([Tensor([1.0])], lr=0.1), "requires_grad=False"),
])
def test_bad_settings_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make([Tensor(np.ones(2), requires_grad=True)])


def test_non_tensor_parameters_are_rejected():
    with pytest.raises(TypeError, match="parameter 0 is a ndarray"):
        optim.SGD([np.ones(2)], lr=0.1)


# ------------------------------------------------------------------ clipping

def test_clip_grad_norm_scales_to_max_norm_without_writing_old_grads():
    a = Tensor(np.zeros(2), requires_grad=True)
    b = Tensor(np.zeros((2, 2)), requires_grad=True)
    skip = Tensor(np.zeros(3), requires_grad=True)        # grad None: ignored
    ga, gb = np.array([3.0, 0.0]), np.array([[0.0, 4.0], [0.0, 12.0]])
    a.grad, b.grad = ga, gb
    total = optim.clip_grad_norm_([a, b, skip], max_norm=6.5)
    assert total == pytest.approx(13.0, rel=1e-15)           # √(9 + 16 + 144)
    np.testing.assert_allclose(a.grad, ga * 0.5, rtol=1e-15)
    np.testing.assert_allclose(b.grad, gb * 0.5, rtol=1e-15)
    new_norm = np.sqrt(np.sum(a.grad ** 2) + np.sum(b.grad ** 2))
    assert new_norm == pytest.approx(6.5, rel=1e-14)
    np.testing.assert_array_equal(ga, [3.0, 0.0])           # old arrays unchanged
    np.testing.assert_array_equal(gb, [[0.0, 4.0], [0.0, 12.0]])
    assert skip.grad is None


def test_clip_grad_norm_leaves_small_gradients_alone():
    p = Tensor(np.zeros(2), requires_grad=True)
    g = np.array([0.3, 0.4])
    p.grad = g
    assert optim.clip_grad_norm_(p, max_norm=1.0) == pytest.approx(0.5)
    assert p.grad is g


def test_clip_grad_norm_works_on_read_only_broadcast_grads():
    p = Tensor(np.zeros((3, 4)), requires_grad=True)
    p.grad = np.broadcast_to(np.ones(4), (3, 4))     # a read-only view, as a user may set
    assert not p.grad.flags.writeable
    total = optim.clip_grad_norm_([p], max_norm=1.0)
    assert total == pytest.approx(np.sqrt(12))
    np.testing.assert_allclose(p.grad, np.full((3, 4), 1 / np.sqrt(12)), rtol=1e-14)
    with pytest.raises(ValueError, match="max_norm must be a positive"):
        optim.clip_grad_norm_([p], max_norm=0)


# ------------------------------------------------------------------ training

def test_adam_trains_an_mlp_on_xor():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    net = nn.MLP([2, 8, 2], activation="tanh", init="xavier", rng=0)
    opt = optim.Adam(net.parameters(), lr=0.05)
    first = losses.cross_entropy(net(X), y).item()
    for _ in range(300):
        opt.zero_grad()
        loss = losses.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
    final = losses.cross_entropy(net(X), y).item()
    assert first > 0.5 and final < 0.01
    np.testing.assert_array_equal(net(X).data.argmax(axis=1), y)


def test_sgd_momentum_trains_float32():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    net = nn.MLP([2, 16, 2], rng=1, dtype=np.float32)
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(300):
        opt.zero_grad()
        loss = losses.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert all(p.data.dtype == np.float32 for p in net.parameters())

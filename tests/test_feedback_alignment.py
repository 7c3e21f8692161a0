"""Feedback alignment on the engine: the weight gradients are backprop's, the
input gradient goes through the fixed B, and B = Wᵀ gives backprop exactly."""
from __future__ import annotations

import numpy as np
import pytest

from backprop_course import Tensor, gradcheck, losses, nn, optim
from backprop_course import feedback_alignment as fa


def _layer_case(seed, n=5, d_in=4, d_out=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d_in))
    W = rng.normal(size=(d_in, d_out))
    b = rng.normal(size=d_out)
    B = rng.normal(size=(d_out, d_in))
    g = rng.normal(size=(n, d_out))
    return x, W, b, B, g


@pytest.mark.parametrize("seed", range(4))
def test_weight_and_bias_gradients_are_the_true_gradients(seed):
    x, W, b, B, g = _layer_case(seed)
    xt, Wt, bt = (Tensor(a, requires_grad=True) for a in (x, W, b))
    out = fa.fa_affine(xt, Wt, bt, B)
    np.testing.assert_allclose(out.data, x @ W + b, rtol=1e-12)
    (out.tanh() * Tensor(g)).sum().backward()

    def loss(W_, b_):
        return float(np.sum(np.tanh(x @ W_ + b_) * g))
    num_W = gradcheck.numerical_grad(lambda W_: loss(W_, b), W.copy())
    num_b = gradcheck.numerical_grad(lambda b_: loss(W, b_), b.copy())
    assert gradcheck.rel_error(Wt.grad, num_W) < 1e-7
    assert gradcheck.rel_error(bt.grad, num_b) < 1e-7


@pytest.mark.parametrize("seed", range(4))
def test_input_gradient_goes_through_B_not_W_transposed(seed):
    x, W, b, B, g = _layer_case(seed)
    xt = Tensor(x, requires_grad=True)
    fa.fa_affine(xt, Tensor(W, requires_grad=True), Tensor(b), B).backward(g)
    np.testing.assert_allclose(xt.grad, g @ B, rtol=1e-12)
    assert not np.allclose(xt.grad, g @ W.T)          # not backprop's


def test_node_saves_x_and_B_but_not_W():
    x, W, b, B, g = _layer_case(0)
    out = fa.fa_affine(Tensor(x, requires_grad=True), Tensor(W, requires_grad=True),
                       Tensor(b, requires_grad=True), B)
    assert out._op == "fa_affine"
    assert len(out._saved) == 2
    assert np.array_equal(out._saved[0], x) and np.array_equal(out._saved[1], B)
    assert not any(s.shape == W.shape and np.array_equal(s, W) for s in out._saved)


def test_no_bias_and_leading_axes():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 4))
    W, B = rng.normal(size=(4, 3)), rng.normal(size=(3, 4))
    g = rng.normal(size=(2, 5, 3))
    xt, Wt = Tensor(x, requires_grad=True), Tensor(W, requires_grad=True)
    fa.fa_affine(xt, Wt, None, B).backward(g)
    np.testing.assert_allclose(xt.grad, g @ B, rtol=1e-12)
    np.testing.assert_allclose(Wt.grad, x.reshape(-1, 4).T @ g.reshape(-1, 3),
                               rtol=1e-12)


def test_bad_shapes_are_refused_with_the_shapes_named():
    x, W, b, B, g = _layer_case(0)
    with pytest.raises(ValueError, match=r"feedback has shape \(4, 3\).*\(3, 4\)"):
        fa.fa_affine(Tensor(x), Tensor(W, requires_grad=True), Tensor(b), B.T)
    with pytest.raises(ValueError, match=r"x of shape \(5, 4\) and weight of shape"):
        fa.fa_affine(Tensor(x), Tensor(W.T, requires_grad=True), None, B)
    with pytest.raises(TypeError, match="must be Tensors"):
        fa.fa_affine(x, Tensor(W), None, B)
    with pytest.raises(ValueError, match=r"feedback must have shape \(3, 4\)"):
        fa.FALinear(4, 3, feedback=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="last axis must have 4 features"):
        fa.FALinear(4, 3, rng=0)(np.zeros((2, 5)))


def test_falinear_draws_nn_linear_weights_and_a_fixed_feedback():
    layer, ref = fa.FALinear(6, 4, rng=7), nn.Linear(6, 4, rng=7)
    assert np.array_equal(layer.weight.data, ref.weight.data)
    assert layer.feedback.shape == (4, 6)
    assert len(layer.parameters()) == 2                     # B is not a parameter
    assert 0.5 < layer.feedback.std() / nn.init_std(6, 4, "he") < 1.5
    B = layer.feedback.copy()
    opt = optim.SGD(layer.parameters(), lr=0.1)
    x = np.random.default_rng(0).normal(size=(8, 6))
    for _ in range(3):
        opt.zero_grad()
        layer(x).tanh().sum().backward()
        opt.step()
    assert np.array_equal(layer.feedback, B)                # B never learns


def test_fa_mlp_matches_nn_mlp_forward_and_differs_backward():
    sizes = [5, 7, 6, 3]
    model = fa.fa_mlp(sizes, activation="tanh", init="xavier", rng=4)
    ref = nn.MLP(sizes, activation="tanh", init="xavier", rng=4)
    for a, r in zip(fa.linears(model), fa.linears(ref)):
        assert np.array_equal(a.weight.data, r.weight.data)
    x = np.random.default_rng(1).normal(size=(9, 5))
    y = np.arange(9) % 3
    np.testing.assert_allclose(model(x).data, ref(x).data, rtol=1e-12)
    for m in (model, ref):
        losses.cross_entropy(m(x), y).backward()
    got = [layer.weight.grad for layer in fa.linears(model)]
    want = [layer.weight.grad for layer in fa.linears(ref)]
    np.testing.assert_allclose(got[-1], want[-1], rtol=1e-10)   # the top layer: equal
    assert not np.allclose(got[0], want[0])                     # below: B, not Wᵀ
    again = fa.fa_mlp(sizes, activation="tanh", init="xavier", rng=4)
    other = fa.fa_mlp(sizes, activation="tanh", init="xavier", rng=5)
    for a, b, c in zip(fa.linears(model), fa.linears(again), fa.linears(other)):
        assert np.array_equal(a.feedback, b.feedback)
        assert not np.array_equal(a.feedback, c.feedback)


def test_weight_transport_gives_backprop_and_restores_B():
    sizes = [5, 8, 8, 3]
    model = fa.fa_mlp(sizes, rng=2)
    ref = nn.MLP(sizes, activation="tanh", init="xavier", rng=2)
    x = np.random.default_rng(0).normal(size=(6, 5))
    y = np.array([0, 1, 2, 0, 1, 2])
    kept = [layer.feedback for layer in fa.linears(model)]
    with fa.weight_transport(model):
        losses.cross_entropy(model(x), y).backward()
    losses.cross_entropy(ref(x), y).backward()
    for a, r, B in zip(fa.linears(model), fa.linears(ref), kept):
        np.testing.assert_allclose(a.weight.grad, r.weight.grad, rtol=1e-10)
        assert a.feedback is B
    with pytest.raises(RuntimeError):
        with fa.weight_transport(model):
            raise RuntimeError("inside")
    assert all(a.feedback is B for a, B in zip(fa.linears(model), kept))


def test_update_angle():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    assert fa.update_angle(a, 2.5 * a) == pytest.approx(0.0, abs=1e-6)
    assert fa.update_angle(a, -a) == pytest.approx(180.0, abs=1e-6)
    assert fa.update_angle([1.0, 0.0], [0.0, 3.0]) == pytest.approx(90.0)
    assert fa.update_angle(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == \
        pytest.approx(45.0)
    parts = [rng.normal(size=(2, 2)), rng.normal(size=3)]
    other = [rng.normal(size=(2, 2)), rng.normal(size=3)]
    flat = fa.update_angle(np.concatenate([p.ravel() for p in parts]),
                           np.concatenate([p.ravel() for p in other]))
    assert fa.update_angle(parts, other) == pytest.approx(flat)
    W, B = rng.normal(size=(4, 3)), rng.normal(size=(3, 4))
    assert fa.alignment_angle(W, W.T) == pytest.approx(0.0, abs=1e-6)
    assert fa.alignment_angle(W, B) == pytest.approx(fa.update_angle(W, B.T))
    with pytest.raises(ValueError, match="all zeros"):
        fa.update_angle(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="same shapes"):
        fa.update_angle(np.ones(3), np.ones(4))


def test_direct_feedback_sends_the_output_error_to_every_hidden_layer():
    rng = np.random.default_rng(0)
    sizes = [5, 7, 6, 3]
    model = fa.DFANet(sizes, rng=3)
    ref = nn.MLP(sizes, activation="tanh", init="xavier", rng=3)
    for a, r in zip(fa.linears(model), fa.linears(ref)):
        assert np.array_equal(a.weight.data, r.weight.data)
    assert [B.shape for B in model.feedbacks] == [(3, 7), (3, 6)]
    x = rng.normal(size=(8, 5))
    y = np.arange(8) % 3
    out = model(x)
    np.testing.assert_allclose(out.data, ref(x).data, rtol=1e-12)
    losses.cross_entropy(out, y).backward()
    # by hand: e = dL/dlogits, δ_l = (e B_l) ⊙ (1 - h_l²), dW_l = a_{l-1}ᵀ δ_l
    W1, W2, W3 = (layer.weight.data for layer in fa.linears(model))
    h1 = np.tanh(x @ W1)
    h2 = np.tanh(h1 @ W2)
    logits = h2 @ W3
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    e = (p - np.eye(3)[y]) / len(y)
    d1 = (e @ model.feedbacks[0]) * (1 - h1 ** 2)
    d2 = (e @ model.feedbacks[1]) * (1 - h2 ** 2)
    grads = [layer.weight.grad for layer in fa.linears(model)]
    np.testing.assert_allclose(grads[0], x.T @ d1, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(grads[1], h1.T @ d2, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(grads[2], h2.T @ e, rtol=1e-9, atol=1e-15)
    assert len(model.parameters()) == 6                     # the B's are not learned


def test_direct_feedback_refuses_mismatched_feedbacks():
    logits = Tensor(np.zeros((2, 3)), requires_grad=True)
    h = Tensor(np.zeros((2, 4)), requires_grad=True)
    with pytest.raises(ValueError, match=r"expected \(3, 4\)"):
        fa.direct_feedback(logits, [h], [np.zeros((4, 3))])
    with pytest.raises(ValueError, match="one each"):
        fa.direct_feedback(logits, [h], [])

"""Tests for backprop_course.losses: values, gradients, stability, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from backprop_course import Tensor, losses
from backprop_course.gradcheck import numerical_grad, rel_error

LOGITS = np.array([[1.0, 2.0, 0.5],
                   [0.0, -1.0, 3.0],
                   [2.0, 2.0, 2.0],
                   [-0.5, 0.25, 1.5]])
LABELS = np.array([1, 2, 0, 0])


def softmax_by_hand(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------ cross_entropy

def test_cross_entropy_is_mean_negative_log_softmax_of_the_label():
    n = len(LABELS)
    by_hand = -np.mean([np.log(np.exp(LOGITS[i, LABELS[i]]) / np.exp(LOGITS[i]).sum())
                        for i in range(n)])
    got = losses.cross_entropy(Tensor(LOGITS), LABELS).item()
    assert got == pytest.approx(by_hand, rel=1e-12)
    assert losses.cross_entropy(Tensor([[0.0, 0.0, 0.0]]), [2]).item() == (
        pytest.approx(np.log(3), rel=1e-12))              # uniform guess: log C


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    z = Tensor(LOGITS, requires_grad=True)
    losses.cross_entropy(z, LABELS).backward()
    onehot = np.eye(3)[LABELS]
    np.testing.assert_allclose(z.grad, (softmax_by_hand(LOGITS) - onehot) / 4,
                               rtol=1e-12, atol=1e-15)
    numeric = numerical_grad(
        lambda a: losses.cross_entropy(Tensor(a), LABELS).item(), LOGITS, h=1e-5)
    assert rel_error(z.grad, numeric) < 1e-7


def test_cross_entropy_is_stable_for_huge_logits():
    z = Tensor([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 999.0]], requires_grad=True)
    loss = losses.cross_entropy(z, np.array([0, 2]))
    # row 0 is right with certainty: 0; row 1: -log(e^999 / (e^1000 + e^999))
    expected = 0.5 * (0.0 + np.log1p(np.e))
    assert np.isfinite(loss.item())
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    assert np.all(np.isfinite(z.grad))
    np.testing.assert_allclose(z.grad.sum(axis=1), 0.0, atol=1e-15)   # Σ softmax - 1


def test_cross_entropy_accepts_lists_and_tensor_labels():
    expected = losses.cross_entropy(Tensor(LOGITS), LABELS).item()
    assert losses.cross_entropy(Tensor(LOGITS), list(LABELS)).item() == expected
    assert losses.cross_entropy(Tensor(LOGITS), Tensor(LABELS)).item() == expected
    assert losses.cross_entropy(LOGITS, LABELS.astype(np.uint8)).item() == expected


@pytest.mark.parametrize("labels, error, message", [
    (np.array([1.0, 2.0, 0.0, 0.0]), TypeError, "integer class indices.*float64"),
    (np.eye(3)[LABELS], TypeError, "One-hot targets\\? Pass labels.argmax"),
    (np.array([1, 2, 0]), ValueError, r"shape \(4,\).*got shape \(3,\)"),
    (np.array([1, 3, 0, 0]), ValueError, r"0\.\.2 for 3 classes; got 3 \(at index 1\)"),
    (np.array([1, 2, -1, 0]), ValueError, r"got -1 \(at index 2\)"),
    (Tensor([1.0, 2.5, 0.0, 0.0]), TypeError, "whole numbers"),
])
def test_cross_entropy_bad_labels(labels, error, message):
    with pytest.raises(error, match=message):
        losses.cross_entropy(Tensor(LOGITS), labels)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(1, 6), c=st.integers(1, 5),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_cross_entropy_node_equals_the_same_loss_built_from_tensor_ops(data, n, c, dtype):
    """The one-node loss against -(log_softmax(z) * onehot).sum() / N: values,
    gradients and dtype, with an upstream gradient that is not 1."""
    z = data.draw(arrays(np.float64, (n, c), elements=st.floats(-30, 30))).astype(dtype)
    y = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    onehot = np.eye(c, dtype=dtype)[y]
    a, b = Tensor(z, requires_grad=True), Tensor(z, requires_grad=True)
    fused = losses.cross_entropy(a, y)
    composed = (b.log_softmax(axis=1) * onehot).sum() * (-1.0 / n)
    (fused * 3.0).backward()
    (composed * 3.0).backward()
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert fused.dtype == a.grad.dtype == dtype
    np.testing.assert_allclose(fused.item(), composed.item(), rtol=tol, atol=tol)
    np.testing.assert_allclose(a.grad, b.grad, rtol=tol, atol=tol)


def test_cross_entropy_empty_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="batch is empty"):
        losses.cross_entropy(Tensor(np.zeros((0, 3))), np.zeros(0, dtype=int))


def test_cross_entropy_needs_2d_logits():
    with pytest.raises(ValueError, match=r"\(N, C\).*\(3,\)"):
        losses.cross_entropy(Tensor([1.0, 2.0, 3.0]), [0])


# ------------------------------------------------------------------ mse / sse

PRED = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]])
TARGET = np.array([[0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])


def test_mse_value_and_gradient():
    p = Tensor(PRED, requires_grad=True)
    loss = losses.mse(p, TARGET)
    assert loss.item() == pytest.approx((1 + 0 + 4 + 4 + 0.25 + 0) / 6, rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(p.grad, 2 * (PRED - TARGET) / 6, rtol=1e-12)


def test_sse_is_the_plain_sum_with_gradient_2_times_error():
    p = Tensor(PRED, requires_grad=True)
    loss = losses.sse(p, Tensor(TARGET))
    assert loss.item() == pytest.approx(9.25, rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(p.grad, 2 * (PRED - TARGET), rtol=1e-12)


@pytest.mark.parametrize("loss", [losses.mse, losses.sse])
def test_squared_losses_refuse_to_broadcast(loss):
    # (3, 1) - (3,) would broadcast to (3, 3): a classic silent bug
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(3,\).*must match"):
        loss(Tensor(np.ones((3, 1))), np.ones(3))

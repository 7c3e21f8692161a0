"""Tests for backprop_course.conv: Conv2d from a gather and @, and max_pool2d."""
import numpy as np
import pytest

from backprop_course import Tensor
from backprop_course.conv import Conv2d, im2col_indices, max_pool2d
from backprop_course.gradcheck import numerical_grad, rel_error


def _direct_conv(x, weight, bias, stride=1):
    """Cross-correlation by the definition: four nested loops."""
    n, _c, h, w = x.shape
    f, _, k, _ = weight.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.einsum("ncab,fcab->nf", patch, weight) + bias
    return out


@pytest.mark.parametrize("shape, f, k, stride", [((2, 1, 5, 5), 3, 3, 1),
                                                 ((3, 2, 6, 7), 4, 2, 2),
                                                 ((1, 3, 4, 4), 1, 4, 1),
                                                 ((2, 2, 7, 5), 2, 1, 3)])
def test_forward_matches_the_definition(shape, f, k, stride):
    rng = np.random.default_rng(0)
    conv = Conv2d(shape[1], f, k, stride=stride, rng=1)
    conv.bias.data = rng.normal(size=f)
    x = rng.normal(size=shape)
    want = _direct_conv(x, conv.weight.data, conv.bias.data, stride)
    np.testing.assert_allclose(conv(x).data, want, rtol=1e-12, atol=1e-12)


def test_im2col_indices_small_case():
    np.testing.assert_array_equal(im2col_indices(1, 3, 3, 2),
                                  [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])
    two = im2col_indices(2, 2, 2, 2)                  # one patch, both channels
    np.testing.assert_array_equal(two, [[0, 1, 2, 3, 4, 5, 6, 7]])


@pytest.mark.parametrize("stride", [1, 2])
def test_gradcheck_input_weight_bias(stride):
    rng = np.random.default_rng(3)
    conv = Conv2d(2, 3, 3, stride=stride, rng=4)
    conv.bias.data = rng.normal(size=3)
    x = Tensor(rng.normal(size=(2, 2, 5, 6)), requires_grad=True)
    G = rng.normal(size=conv(x).shape)
    x.grad = None
    (conv(x) * G).sum().backward()
    for t in (x, conv.weight, conv.bias):
        def f(v, t=t):
            old = t.data
            t.data = v
            try:
                return float((conv(x.data) * G).sum().data)
            finally:
                t.data = old
        num = numerical_grad(f, t.data.copy())
        assert rel_error(t.grad, num) < 1e-6, t


def test_shared_weight_gradient_is_the_sum_over_positions():
    """One 1x1 filter on a constant image: dL/dw = sum of the image over positions."""
    conv = Conv2d(1, 1, 1, rng=0)
    x = np.full((1, 1, 3, 4), 2.0)
    conv(x).sum().backward()
    assert conv.weight.grad.item() == pytest.approx(2.0 * 12)
    assert conv.bias.grad.item() == pytest.approx(12)


def test_overlapping_patches_add_their_gradients():
    """A pixel in the middle of a 3x3 image lies in all four 2x2 patches."""
    conv = Conv2d(1, 1, 2, bias=False, rng=0)
    conv.weight.data = np.ones((1, 1, 2, 2))
    x = Tensor(np.zeros((1, 1, 3, 3)), requires_grad=True)
    conv(x).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_parameters_init_and_errors():
    conv = Conv2d(3, 5, 3, rng=0)
    assert [p.shape for p in conv.parameters()] == [(5, 3, 3, 3), (5,)]
    assert np.std(Conv2d(8, 64, 3, rng=1).weight.data) == pytest.approx(
        np.sqrt(2 / 72), rel=0.1)                          # He: fan_in = C k k
    assert np.array_equal(Conv2d(3, 5, 3, rng=7).weight.data,
                          Conv2d(3, 5, 3, rng=7).weight.data)
    assert len(Conv2d(1, 2, 3, bias=False).parameters()) == 1
    with pytest.raises(ValueError, match=r"expected \(N, 3, H, W\)"):
        conv(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="does not fit"):
        Conv2d(1, 1, 5)(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2d(1, 1, 0)


def test_max_pool2d_forward_and_gradient():
    x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
    out = max_pool2d(x)
    np.testing.assert_array_equal(out.data[0, 0], [[5, 7], [13, 15]])
    out.sum().backward()
    want = np.zeros((4, 4))
    want[[1, 1, 3, 3], [1, 3, 1, 3]] = 1
    np.testing.assert_array_equal(x.grad[0, 0], want)
    with pytest.raises(ValueError, match="multiple"):
        max_pool2d(Tensor(np.zeros((1, 1, 3, 4))))

"""Convolution from ops the engine already has: an index gather, then ``@``.

LeCun et al. (1989) constrained a network so that one small set of weights, a
*filter*, is applied at every position of the image: weight sharing. Lesson 06
builds it here without a new op. ``im2col`` copies every k×k patch of the input
into one row (an integer-array gather, ``Tensor.__getitem__``), so the
convolution becomes one matrix product with the filters:

    cols[n, p, :] = the patch of image n at output position p   (N, P, C·k·k)
    out[n, p, f]  = cols[n, p, :] @ W[:, f] + b[f]               (N, P, F)

The backward pass comes for free. The gather's backward *adds* each gradient
back to the pixel it was read from (``np.add.at``): a pixel that lies in
several patches collects the sum of their gradients, the multivariable chain
rule again. And the filter's gradient ``colsᵀ @ dout`` sums over every
position: a shared weight's gradient is the sum over all the places it is used.
"""
from __future__ import annotations

import numbers

import numpy as np

from backprop_course.arguments import RngLike, as_rng
from backprop_course.nn import Module, _lookup_scheme, init_std
from backprop_course.tensor import Tensor, as_tensor

__all__ = ["Conv2d", "im2col_indices", "max_pool2d"]


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"Conv2d: {name} must be a positive integer, got {value!r}")
    return int(value)


def im2col_indices(channels: int, height: int, width: int, kernel_size: int,
                   stride: int = 1) -> np.ndarray:
    """Integer array ``idx`` of shape (P, C·k·k): row p lists, channel by channel
    and row by row, the flat positions (into ``x.reshape(N, C·H·W)``) of the
    k×k patch that output position p reads. P = out_h · out_w, row-major.

    >>> im2col_indices(1, 3, 3, 2)          # 3x3 image, 2x2 patches
    array([[0, 1, 3, 4],
           [1, 2, 4, 5],
           [3, 4, 6, 7],
           [4, 5, 7, 8]])
    """
    k = kernel_size
    out_h = (height - k) // stride + 1
    out_w = (width - k) // stride + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"Conv2d: a {k}x{k} kernel does not fit in a {height}x{width} "
                         "image (no padding): use a smaller kernel_size")
    c, di, dj = np.meshgrid(np.arange(channels), np.arange(k), np.arange(k),
                            indexing="ij")
    patch = (c * height * width + di * width + dj).ravel()          # (C·k·k,)
    oi, oj = np.meshgrid(np.arange(out_h) * stride, np.arange(out_w) * stride,
                         indexing="ij")
    start = (oi * width + oj).ravel()                                # (P,)
    return start[:, None] + patch[None, :]


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch), no padding.

    The first four arguments are PyTorch's (in_channels, out_channels,
    kernel_size, stride); there is no padding, and the rest are keywords.
    Input (N, C_in, H, W), output (N, C_out, out_h, out_w) with
    out_h = (H - k) // stride + 1. ``weight`` has PyTorch's layout
    (out_channels, in_channels, k, k), drawn by ``init`` with
    fan_in = in_channels·k·k (He by default, for ReLU); ``bias`` (out_channels,)
    starts at zero. Built from a gather (im2col) and ``@``; see the module
    docstring and lesson 06.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, *, bias: bool = True, init: str = "he",
                 rng: RngLike = None) -> None:
        self.in_channels = _positive(in_channels, "in_channels")
        self.out_channels = _positive(out_channels, "out_channels")
        self.kernel_size = _positive(kernel_size, "kernel_size")
        self.stride = _positive(stride, "stride")
        self.init = init
        fan_in = self.in_channels * self.kernel_size ** 2
        std = init_std(fan_in, self.out_channels * self.kernel_size ** 2, init)
        shape = (self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        if _lookup_scheme(init)[1] == "normal":
            w = as_rng(rng).normal(0.0, std, size=shape)
        else:                                    # U(-a, a) has variance a²/3
            w = as_rng(rng).uniform(-np.sqrt(3) * std, np.sqrt(3) * std, size=shape)
        self.weight = Tensor(w, requires_grad=True)
        self.bias = (Tensor(np.zeros(self.out_channels), requires_grad=True) if bias
                     else None)

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        x = as_tensor(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} got input of shape {x.shape}: expected "
                             f"(N, {self.in_channels}, H, W)")
        n, c, h, w = x.shape
        k, s = self.kernel_size, self.stride
        idx = im2col_indices(c, h, w, k, s)                       # (P, C·k·k)
        cols = x.reshape(n, c * h * w)[:, idx]                    # (N, P, C·k·k) gather
        filters = self.weight.reshape(self.out_channels, c * k * k).T   # (C·k·k, F)
        out = cols @ filters                                      # (N, P, F)
        if self.bias is not None:
            out = out + self.bias
        out_h, out_w = (h - k) // s + 1, (w - k) // s + 1
        return out.transpose(0, 2, 1).reshape(n, self.out_channels, out_h, out_w)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, bias={self.bias is not None}")


def max_pool2d(x: Tensor, size: int = 2) -> Tensor:
    """Max over non-overlapping size×size windows of (N, C, H, W); H and W must be
    multiples of ``size``. A reshape, then ``Tensor.max`` over the two window axes
    (the gradient goes to each window's largest entry)."""
    n, c, h, w = x.shape
    if h % size or w % size:
        raise ValueError(f"max_pool2d: {h}x{w} is not a multiple of the {size}x{size} "
                         "window")
    return x.reshape(n, c, h // size, size, w // size, size).max(axis=(3, 5))

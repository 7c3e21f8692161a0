"""Layers, activations and weight initialisation, with PyTorch's names.

A network is a :class:`Module`: an object that holds parameters (Tensors
with ``requires_grad=True``) and maps an input Tensor to an output Tensor in
``forward``. Modules nest: a :class:`Sequential` holds layers, an
:class:`MLP` is a Sequential of :class:`Linear` layers and activations.
Nothing here knows about gradients: each ``forward`` is built from Tensor
operations, and ``loss.backward()`` finds every parameter through the graph.

>>> import numpy as np
>>> net = MLP([2, 8, 3], activation="tanh", init="xavier", rng=0)
>>> logits = net(np.ones((5, 2)))
>>> logits.shape, len(net.parameters())       # W1, b1, W2, b2
((5, 3), 4)
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Iterator, Optional, Union

import numpy as np

from backprop_course import arguments
from backprop_course.arguments import RngLike, as_rng
from backprop_course.tensor import Tensor, as_tensor

DTypeLike = Union[type, np.dtype, str]

__all__ = [
    "Module", "Linear", "Sequential", "Residual", "MLP", "LayerNorm", "BatchNorm1d",
    "ReLU", "LeakyReLU", "ELU", "Tanh", "Sigmoid", "Identity",
    "init", "init_weight", "init_std", "INIT_SCHEMES", "ACTIVATIONS",
]


def _float_dtype(dtype: DTypeLike) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


# =================================================================== initialisation
#
# Each scheme picks the spread of W (shape fan_in x fan_out) so that signals keep
# their size through many layers. With z = x W and independent zero-mean entries,
# Var(z_j) = fan_in * Var(W) * E[x_i^2]:
#   naive   std 0.01 (the CS231n starting point): Var(z) shrinks 10^4 / fan_in x
#           per layer, so deep nets' activations and gradients die out.
#   xavier  Var(W) = 2 / (fan_in + fan_out)   (Glorot & Bengio 2010; for tanh):
#           the compromise between keeping the forward (1/fan_in) and the
#           backward (1/fan_out) variance.
#   he      Var(W) = 2 / fan_in               (He et al. 2015; for ReLU): ReLU
#           zeroes half its inputs, so E[x^2] = Var(z_prev) / 2; the 2 puts it back.
#   lecun   Var(W) = 1 / fan_in               (LeCun et al. 1998).
# "_uniform" variants draw from U(-a, a) with the same variance: Var = a^2 / 3.

_VARIANCE_RULES = {
    "naive": lambda fan_in, fan_out: 0.01 ** 2,
    "xavier": lambda fan_in, fan_out: 2.0 / (fan_in + fan_out),
    "he": lambda fan_in, fan_out: 2.0 / fan_in,
    "lecun": lambda fan_in, fan_out: 1.0 / fan_in,
}
# scheme name -> (variance rule, distribution)
_SCHEMES: dict[str, tuple[str, str]] = {
    "naive": ("naive", "normal"),
    "xavier": ("xavier", "normal"),
    "glorot": ("xavier", "normal"),
    "xavier_normal": ("xavier", "normal"),
    "xavier_uniform": ("xavier", "uniform"),
    "glorot_uniform": ("xavier", "uniform"),
    "he": ("he", "normal"),
    "kaiming": ("he", "normal"),
    "kaiming_normal": ("he", "normal"),
    "he_uniform": ("he", "uniform"),
    "kaiming_uniform": ("he", "uniform"),
    "lecun": ("lecun", "normal"),
}
INIT_SCHEMES: tuple[str, ...] = tuple(_SCHEMES)


def _lookup_scheme(scheme: str) -> tuple[str, str]:
    if not isinstance(scheme, str) or scheme.lower() not in _SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; known schemes: "
                         + ", ".join(INIT_SCHEMES))
    return _SCHEMES[scheme.lower()]


def init_std(fan_in: int, fan_out: int, scheme: str = "he") -> float:
    """The standard deviation of the weights ``scheme`` draws.

    >>> round(init_std(100, 50, "he"), 4), round(init_std(100, 300, "xavier"), 4)
    (0.1414, 0.0707)
    """
    rule, _ = _lookup_scheme(scheme)
    arguments.integer(fan_in, "fan_in", minimum=1, who="init")
    arguments.integer(fan_out, "fan_out", minimum=1, who="init")
    return math.sqrt(_VARIANCE_RULES[rule](fan_in, fan_out))


def init_weight(fan_in: int, fan_out: int, scheme: str = "he", rng: RngLike = None,
                dtype: DTypeLike = np.float64) -> np.ndarray:
    """A fresh weight matrix of shape (fan_in, fan_out) drawn by ``scheme``.

    Schemes (see :data:`INIT_SCHEMES`): "naive" N(0, 0.01²); "xavier"/"glorot"
    N(0, 2/(fan_in+fan_out)); "he"/"kaiming" N(0, 2/fan_in); "lecun"
    N(0, 1/fan_in); "xavier_uniform", "he_uniform": U(-a, a) with a = √3·std.
    The numbers are drawn in float64 and then cast, so a seed gives the same
    network in float32 and float64.
    """
    std = init_std(fan_in, fan_out, scheme)
    _, distribution = _lookup_scheme(scheme)
    rng = as_rng(rng)
    if distribution == "normal":
        w = rng.normal(0.0, std, size=(fan_in, fan_out))
    else:
        a = math.sqrt(3.0) * std                 # U(-a, a) has variance a²/3
        w = rng.uniform(-a, a, size=(fan_in, fan_out))
    return w.astype(_float_dtype(dtype))


def _uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0,
              rng: RngLike = None) -> Tensor:
    """Refill ``tensor`` with U(a, b) samples (PyTorch: nn.init.uniform_)."""
    tensor.data = as_rng(rng).uniform(a, b, size=tensor.shape).astype(tensor.dtype)
    return tensor


def _normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0,
             rng: RngLike = None) -> Tensor:
    """Refill ``tensor`` with N(mean, std²) samples (PyTorch: nn.init.normal_)."""
    tensor.data = as_rng(rng).normal(mean, std, size=tensor.shape).astype(tensor.dtype)
    return tensor


def _zeros_(tensor: Tensor) -> Tensor:
    """Refill ``tensor`` with zeros (PyTorch: nn.init.zeros_)."""
    tensor.data = np.zeros_like(tensor.data)
    return tensor


#: ``nn.init``: the initialisers by name, and PyTorch-style refills of a Tensor,
#: e.g. ``nn.init.uniform_(layer.weight, -0.3, 0.3, rng=0)``.
init = SimpleNamespace(
    weight=init_weight, std=init_std, SCHEMES=INIT_SCHEMES,
    uniform_=_uniform_, normal_=_normal_, zeros_=_zeros_,
)


# =================================================================== Module


class Module:
    """Base class of every layer and network.

    Subclasses set parameters (Tensors with ``requires_grad=True``) and
    sub-modules as attributes in ``__init__`` and define ``forward``.
    ``parameters()`` finds them all, in the order the attributes were set.
    """

    #: True while training, False after ``eval()``; only layers that behave
    #: differently in the two modes (``BatchNorm1d``) look at it.
    training: bool = True

    def forward(self, *args: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def train(self, mode: bool = True) -> "Module":
        """Put this module and every sub-module in training mode (or not)."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``. BatchNorm1d then uses its running
        statistics instead of the batch's, so one example's output no longer
        depends on the others in its batch."""
        return self.train(False)

    def __call__(self, *args: Any) -> Tensor:
        return self.forward(*args)

    # ---------------------------------------------------------- parameters
    def _children(self) -> Iterator[tuple[str, Any]]:
        """(name, value) for attributes that are Tensors, Modules, or lists of them."""
        for name, value in vars(self).items():
            if isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, (Tensor, Module)):
                        yield f"{name}.{i}", item
            elif isinstance(value, (Tensor, Module)):
                yield name, value

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """("0.weight", Tensor) pairs, each parameter once, in a fixed order."""
        seen: set[int] = set()
        stack: list[tuple[str, Any]] = [(prefix, self)]
        while stack:                       # depth first, attributes in order
            name, item = stack.pop()
            if isinstance(item, Module):
                children = [(f"{name}.{n}" if name else n, v)
                            for n, v in item._children()]
                stack.extend(reversed(children))
            elif item.requires_grad and id(item) not in seen:
                seen.add(id(item))        # a shared Tensor is one parameter
                yield name, item

    def parameters(self) -> list[Tensor]:
        """Every Tensor with requires_grad in this module and its sub-modules."""
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator["Module"]:
        """This module and every sub-module, parents before children.

        E.g. the weights of every Linear layer, in order:
        ``[m.weight for m in net.modules() if isinstance(m, nn.Linear)]``.
        """
        stack: list[Module] = [self]
        while stack:
            module = stack.pop()
            yield module
            stack.extend(reversed([v for _, v in module._children()
                                   if isinstance(v, Module)]))

    def zero_grad(self) -> None:
        """Forget the gradients of all parameters (they accumulate otherwise)."""
        for p in self.parameters():
            p.zero_grad()

    # ---------------------------------------------------------- printing
    def extra_repr(self) -> str:
        """The settings shown between the brackets of repr(module)."""
        return ""

    def __repr__(self) -> str:
        subs = [(n, v) for n, v in self._children() if isinstance(v, Module)]
        if not subs:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        if self.extra_repr():
            lines.append(f"  {self.extra_repr()}")
        for name, module in subs:
            body = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name.rsplit('.', 1)[-1]}): {body}")
        return "\n".join(lines) + "\n)"


# =================================================================== layers


class Linear(Module):
    """Affine layer ``y = x W + b``.

    ``weight`` W has shape (in_features, out_features) and ``bias`` b shape
    (out_features,), broadcast over the rows of x (one row per example).

    PyTorch stores the weight transposed, (out_features, in_features), and
    computes x Wᵀ + b. We store (in, out) so that the code is the maths the
    lessons write, ``x @ W + b``, with no transpose to remember, and the
    gradient reads dL/dW = xᵀ dL/dy with the same shape as W. Copying weights
    from PyTorch means transposing them.

    The weight is drawn by ``init`` (see :func:`init_weight`, default He, for
    ReLU networks); the bias starts at zero. Inputs must have the layer's
    dtype (float64 by default): a float32 layer refuses float64 input rather
    than silently computing in float64.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init: str = "he", rng: RngLike = None,
                 dtype: DTypeLike = np.float64) -> None:
        dtype = _float_dtype(dtype)
        self.in_features = in_features
        self.out_features = out_features
        self.init = init
        self.weight = Tensor(init_weight(in_features, out_features, init, rng, dtype),
                             requires_grad=True,
                             label=f"Linear({in_features}, {out_features}).weight")
        self.bias: Optional[Tensor] = (
            Tensor(np.zeros(out_features, dtype=dtype), requires_grad=True,
                   label=f"Linear({in_features}, {out_features}).bias")
            if bias else None)

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        x = as_tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r} got input of shape {x.shape}: its last axis "
                             f"must have {self.in_features} features")
        if x.dtype != self.weight.dtype:
            raise TypeError(f"{self!r} holds {self.weight.dtype} weights but got "
                            f"{x.dtype} input; convert it, e.g. "
                            f"x.astype(np.{self.weight.dtype})")
        if self.bias is None:
            return x @ self.weight
        return x @ self.weight + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, init={self.init!r}")


# =================================================================== activations


class ReLU(Module):
    """max(0, x), entry by entry; gradient 1 where x > 0, else 0."""

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        return as_tensor(x).relu()


class LeakyReLU(Module):
    """x for x > 0, negative_slope·x otherwise: a small gradient for x < 0."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = negative_slope

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        return as_tensor(x).leaky_relu(self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """x for x > 0, alpha·(eˣ - 1) otherwise (Clevert et al. 2015)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        return as_tensor(x).elu(self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Tanh(Module):
    """tanh(x); gradient 1 - tanh²(x), at most 1 (at x = 0)."""

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        return as_tensor(x).tanh()


class Sigmoid(Module):
    """σ(x) = 1 / (1 + e⁻ˣ); gradient σ(1 - σ), at most 0.25 (at x = 0)."""

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        return as_tensor(x).sigmoid()


class Identity(Module):
    """Returns its input: the "no activation" activation."""

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        return as_tensor(x)


#: activation names MLP understands
ACTIVATIONS: dict[str, type[Module]] = {
    "relu": ReLU, "leaky_relu": LeakyReLU, "elu": ELU,
    "tanh": Tanh, "sigmoid": Sigmoid, "identity": Identity,
}


# =================================================================== normalisation


def _normalize(centred: Tensor, var: Any, eps: float,
               weight: Optional[Tensor], bias: Optional[Tensor]) -> Tensor:
    """(x - mean) / √(var + eps) · weight + bias, given centred = x - mean.
    With x's own mean and var (Tensors, so the gradient flows through them
    too) the first part has zero mean and unit variance; weight and bias
    (None: left out) let the network learn any other scale and shift."""
    y = centred * (var + eps) ** -0.5
    if weight is None or bias is None:
        return y
    return y * weight + bias


def _scale_and_shift(n: int, dtype: np.dtype) -> tuple[Tensor, Tensor]:
    """A normalisation layer's learned weight (starts at 1) and bias (at 0)."""
    return (Tensor(np.ones(n, dtype), requires_grad=True, label="weight"),
            Tensor(np.zeros(n, dtype), requires_grad=True, label="bias"))


class LayerNorm(Module):
    """Normalise each example over its features, then scale and shift:

        y = (x - mean(x)) / √(var(x) + eps) · weight + bias

    with the mean and the (biased) variance taken over the last axis of x,
    for each row on its own (Ba, Kiros & Hinton 2016). Every layer's input
    keeps the same scale however the weights below it grow or shrink, so
    the gradients do too. ``weight`` starts at 1 and ``bias`` at 0.
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-5,
                 elementwise_affine: bool = True, dtype: DTypeLike = np.float64) -> None:
        dtype = _float_dtype(dtype)
        self.normalized_shape = arguments.integer(normalized_shape, "normalized_shape",
                                                  minimum=1, who="LayerNorm")
        self.eps = eps
        self.weight: Optional[Tensor] = None
        self.bias: Optional[Tensor] = None
        if elementwise_affine:
            self.weight, self.bias = _scale_and_shift(self.normalized_shape, dtype)

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        x = as_tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.normalized_shape:
            raise ValueError(f"{self!r} got input of shape {x.shape}: its last axis "
                             f"must have {self.normalized_shape} features")
        centred = x - x.mean(axis=-1, keepdims=True)
        var = (centred ** 2).mean(axis=-1, keepdims=True)
        return _normalize(centred, var, self.eps, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps:g}, "
                f"elementwise_affine={self.weight is not None}")


class BatchNorm1d(Module):
    """Normalise each feature over the batch, then scale and shift:

        y = (x - mean) / √(var + eps) · weight + bias

    for x of shape (N, C), with the mean and the (biased) variance of each
    of the C columns taken over the N examples (Ioffe & Szegedy 2015).

    In training mode the batch's own statistics are used, and gradients
    flow through them; each call also updates the running estimates
    ``running_mean ← (1 - momentum) running_mean + momentum · mean`` (and
    the same for ``running_var``, with the unbiased variance, as PyTorch
    does). After ``eval()`` the running estimates are used instead, as
    constants. ``weight`` starts at 1, ``bias`` at 0.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, dtype: DTypeLike = np.float64) -> None:
        dtype = _float_dtype(dtype)
        self.num_features = arguments.integer(num_features, "num_features", minimum=1,
                                              who="BatchNorm1d")
        self.momentum = arguments.fraction(momentum, "momentum", who="BatchNorm1d",
                                           one_allowed=True)
        self.eps = eps
        self.weight: Optional[Tensor] = None
        self.bias: Optional[Tensor] = None
        if affine:
            self.weight, self.bias = _scale_and_shift(self.num_features, dtype)
        # buffers, not parameters: plain arrays that no gradient reaches
        self.running_mean = np.zeros(num_features, dtype)
        self.running_var = np.ones(num_features, dtype)

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        x = as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"{self!r} got input of shape {x.shape}: it needs "
                             f"(batch, {self.num_features})")
        if self.training:
            n = x.shape[0]
            if n < 2:
                raise ValueError(f"{self!r} in training mode needs at least 2 examples "
                                 f"to take a variance, got a batch of {n}; call "
                                 ".eval() to use the running statistics")
            mean = x.mean(axis=0)
            centred = x - mean
            batch_var = (centred ** 2).mean(axis=0)
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mean.data
            self.running_var = (1 - m) * self.running_var + m * batch_var.data * n / (n - 1)
            return _normalize(centred, batch_var, self.eps, self.weight, self.bias)
        centred = x - self.running_mean
        return _normalize(centred, self.running_var, self.eps, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum:g}, "
                f"affine={self.weight is not None}")


# =================================================================== containers


class Sequential(Module):
    """Modules applied one after another: ``Sequential(f, g, h)(x) = h(g(f(x)))``.

    Index it like a list: ``net[0]`` is the first module, ``net[1:]`` a
    Sequential of the rest, ``len(net)`` how many there are.
    """

    def __init__(self, *modules: Module) -> None:
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, "
                                "not a Module (write nn.ReLU(), not nn.ReLU)")
        self.layers: list[Module] = list(modules)

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        out = as_tensor(x)
        for layer in self.layers:
            out = layer(out)
        return out

    def __getitem__(self, index: Union[int, slice]) -> Module:
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def _children(self) -> Iterator[tuple[str, Any]]:
        """Named by position, as in PyTorch: "0.weight", "2.bias", ..."""
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)


class Residual(Module):
    """A skip connection: ``y = x + scale · F(x)`` with F = ``module``.

    The gradient is dL/dx = dL/dy + scale · (dL/dy through F): the identity
    term carries the gradient past F unchanged, however small F's part is.
    F must keep the shape of x.

    Without normalisation, every block adds F(x)'s variance to x's, so deep
    stacks grow (with He init the variance doubles per ReLU block);
    ``scale = 1/√depth`` keeps a stack's growth bounded (by about e).
    """

    def __init__(self, module: Module, scale: float = 1.0) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"Residual needs a Module, got {type(module).__name__}")
        self.module = module
        self.scale = scale

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        x = as_tensor(x)
        fx = self.module(x)
        if fx.shape != x.shape:
            raise ValueError(
                f"Residual: x + F(x) needs F to keep the shape, but "
                f"{type(self.module).__name__} maps {x.shape} to {fx.shape}")
        if self.scale != 1.0:
            fx = fx * self.scale
        return x + fx

    def extra_repr(self) -> str:
        return "" if self.scale == 1.0 else f"scale={self.scale}"


class MLP(Sequential):
    """A multilayer perceptron: Linear layers with an activation between them.

    ``MLP([64, 128, 128, 10])`` is
    ``Linear(64,128), ReLU, Linear(128,128), ReLU, Linear(128,10)``: the last
    layer has no activation, so the output is logits (or a regression value).

    ``sizes``       widths, input first, output last (a depth-L, width-w net
                    for d inputs and k outputs: ``[d] + [w] * L + [k]``).
    ``activation``  "relu", "leaky_relu", "elu", "tanh", "sigmoid", "identity",
                    or a Module class such as ``nn.Tanh``.
    ``init``        weight scheme for every Linear (see :func:`init_weight`).
    ``residual``    wrap each hidden pair (activation, Linear(w, w)) whose
                    widths match in a :class:`Residual` with ``residual_scale``;
                    the first and the last Linear stay plain. Plain and
                    residual nets built with the same seed have the same weights.
    ``rng``         a seed or Generator; one Generator draws all layers in order.
    ``dtype``       float64 (default, needed for gradient checks) or float32.
    """

    def __init__(self, sizes: list[int], activation: Union[str, type[Module]] = "relu",
                 init: str = "he", residual: bool = False, residual_scale: float = 1.0,
                 bias: bool = True, rng: RngLike = None,
                 dtype: DTypeLike = np.float64) -> None:
        if not isinstance(sizes, (list, tuple)):
            raise TypeError(f"MLP(sizes): sizes is the list of layer widths, input "
                            f"first and output last, e.g. nn.MLP([{sizes!r}, 16, 1]) "
                            f"for {sizes!r} inputs; got {sizes!r}")
        sizes = [arguments.integer(n, f"sizes[{i}]", minimum=1, who="MLP")
                 for i, n in enumerate(sizes)]
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least an input and an output size, "
                             f"got sizes={sizes}")
        make_activation = _activation_class(activation)
        rng = as_rng(rng)
        layers: list[Module] = [Linear(sizes[0], sizes[1], bias, init, rng, dtype)]
        n_linear = len(sizes) - 1
        for i in range(1, n_linear):
            linear = Linear(sizes[i], sizes[i + 1], bias, init, rng, dtype)
            is_output = i == n_linear - 1
            if residual and not is_output and sizes[i] == sizes[i + 1]:
                block = Sequential(make_activation(), linear)
                layers.append(Residual(block, scale=residual_scale))
            else:
                layers += [make_activation(), linear]
        super().__init__(*layers)
        self.sizes = sizes


def _activation_class(activation: Union[str, type[Module]]) -> type[Module]:
    if isinstance(activation, type) and issubclass(activation, Module):
        return activation
    if isinstance(activation, str) and activation.lower() in ACTIVATIONS:
        return ACTIVATIONS[activation.lower()]
    raise ValueError(f"unknown activation {activation!r}; use one of "
                     + ", ".join(ACTIVATIONS) + " or a Module class like nn.Tanh")

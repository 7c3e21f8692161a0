"""Feedback alignment: a backward pass that never reads the forward weights.

Backpropagation sends the error back through a layer ``y = x W + b`` with the
transpose of the layer's own weights, ``dL/dx = g Wᵀ``: the synapses that carry
the error down would have to know the weights of the synapses that carry the
signal up (the "weight transport" problem, Grossberg 1987). Lillicrap, Cownden,
Tweed & Akerman ("Random synaptic feedback weights support error
backpropagation for deep learning", Nature Communications 7:13276, 2016;
arXiv:1411.0247) replaced Wᵀ by a **fixed random matrix B**, drawn once:

    y = x W + b,    dL/dW = xᵀ g,    dL/db = Σ_rows g,    "dL/dx" = g B

The weight and bias gradients are the true ones for the layer's own output;
only what the layer passes *down* changes. The network still learns, because
the forward weights come to align with Bᵀ (lesson 08 measures it).

Direct feedback alignment (Nøkland, NIPS 2016) sends the output error e to every
hidden layer directly, through that layer's own fixed random matrix:
:func:`direct_feedback` and :class:`DFANet`.

Shapes follow ``nn.Linear``: W is (in_features, out_features), so the matrix B
that stands in for Wᵀ is (out_features, in_features).

>>> import numpy as np
>>> from backprop_course import Tensor
>>> layer = FALinear(3, 2, rng=0)
>>> x = Tensor(np.ones((4, 3)), requires_grad=True)
>>> layer(x).sum().backward()
>>> np.allclose(x.grad, np.ones((4, 2)) @ layer.feedback)     # B, not Wᵀ
True
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from backprop_course import nn
from backprop_course.arguments import RngLike
from backprop_course.nn import Module, init_std, init_weight
from backprop_course.tensor import Tensor, as_tensor

__all__ = ["fa_affine", "FALinear", "fa_mlp", "update_angle", "alignment_angle",
           "linears", "weight_transport", "direct_feedback", "DFANet"]


def fa_affine(x: Tensor, weight: Tensor, bias: Optional[Tensor],
              feedback: np.ndarray) -> Tensor:
    """``x @ weight + bias`` as one node whose backward sends ``g @ feedback`` to x.

    For x (..., n_in), weight (n_in, n_out), bias (n_out,) or None, feedback
    (n_out, n_in) and g = dL/dy (..., n_out):

        dW = xᵀ g,   db = Σ_rows g   (as backprop),   dx = g B   (backprop: g Wᵀ)

    The node saves x and B; it never reads W on the way back.
    """
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if not all(isinstance(t, Tensor) for t in inputs):
        raise TypeError("fa_affine: x, weight and bias must be Tensors, got "
                        + ", ".join(type(t).__name__ for t in inputs))
    xs, ws = x.data.shape, weight.data.shape
    if len(ws) != 2 or not xs or xs[-1] != ws[0]:
        raise ValueError(f"fa_affine: x of shape {xs} and weight of shape {ws} do not "
                         "match: weight must be (n_in, n_out), n_in the last axis of x")
    n_in, n_out = ws
    feedback = np.asarray(feedback, dtype=weight.dtype)
    if feedback.shape != (n_out, n_in):
        raise ValueError(f"fa_affine: feedback has shape {feedback.shape}, expected "
                         f"({n_out}, {n_in}), the shape of weight.T, because it "
                         "stands in for Wᵀ")
    if bias is not None and bias.data.shape != (n_out,):
        raise ValueError(f"fa_affine: bias has shape {bias.shape}, expected ({n_out},)")
    out = x.data @ weight.data
    if bias is not None:
        out = out + bias.data
    x_data = x.data

    def _backward(grad: np.ndarray) -> None:
        if x.requires_grad:
            x._accumulate(grad @ feedback)               # B in place of Wᵀ
        rows_x = x_data.reshape(-1, n_in)
        rows_g = grad.reshape(-1, n_out)
        if weight.requires_grad:
            weight._accumulate(rows_x.T @ rows_g)        # the true dL/dW
        if bias is not None and bias.requires_grad:
            bias._accumulate(rows_g.sum(axis=0))
    return x._child(out, inputs, "fa_affine", _backward, (x_data, feedback))


class FALinear(Module):
    """``nn.Linear`` with a feedback-alignment backward pass.

    ``weight`` (in, out) and ``bias`` (out,) are drawn exactly as
    ``nn.Linear(in_features, out_features, bias, init, rng)`` draws them (same
    seed, same weights). ``feedback`` B, shape (out, in), is a plain numpy array
    (not a parameter: it never changes), drawn afterwards from the same
    generator with the standard deviation the init scheme gives W, times
    ``feedback_scale``. ``feedback=...`` sets B explicitly.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init: str = "he", rng: RngLike = None,
                 feedback: Optional[np.ndarray] = None,
                 feedback_scale: float = 1.0) -> None:
        rng = np.random.default_rng(rng)          # a Generator is used as it is
        self.in_features, self.out_features, self.init = in_features, out_features, init
        self.weight = Tensor(init_weight(in_features, out_features, init, rng),
                             requires_grad=True)
        self.bias: Optional[Tensor] = (Tensor(np.zeros(out_features), requires_grad=True)
                                       if bias else None)
        if feedback is None:
            std = init_std(in_features, out_features, init) * feedback_scale
            feedback = rng.normal(0.0, std, size=(out_features, in_features))
        feedback = np.array(feedback, dtype=np.float64)
        if feedback.shape != (out_features, in_features):
            raise ValueError(f"FALinear: feedback must have shape ({out_features}, "
                             f"{in_features}) like weight.T, got {feedback.shape}")
        self.feedback = feedback

    @classmethod
    def from_linear(cls, linear: nn.Linear, feedback: np.ndarray) -> "FALinear":
        """An FALinear with a copy of ``linear``'s weight and bias and the given B."""
        layer = cls.__new__(cls)
        layer.in_features, layer.out_features = linear.in_features, linear.out_features
        layer.init = linear.init
        layer.weight = Tensor(linear.weight.data.copy(), requires_grad=True)
        layer.bias = (None if linear.bias is None
                      else Tensor(linear.bias.data.copy(), requires_grad=True))
        layer.feedback = np.array(feedback, dtype=np.float64)
        if layer.feedback.shape != (linear.out_features, linear.in_features):
            raise ValueError(f"FALinear: feedback must have shape "
                             f"({linear.out_features}, {linear.in_features}) like "
                             f"weight.T, got {layer.feedback.shape}")
        return layer

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        x = as_tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r} got input of shape {x.shape}: its last axis "
                             f"must have {self.in_features} features")
        return fa_affine(x, self.weight, self.bias, self.feedback)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, init={self.init!r}")


def fa_mlp(sizes: Sequence[int], activation: str = "tanh", init: str = "xavier",
           rng: RngLike = None, feedback_scale: float = 1.0) -> nn.Sequential:
    """An MLP like ``nn.MLP(sizes, activation, init)`` whose layers are FALinear.

    Same seed, same forward weights as ``nn.MLP(sizes, activation, init, rng=seed)``:
    the weights are drawn first, layer by layer, from one generator, then the
    feedback matrices from a second generator seeded from the first, so the two
    nets differ only in their backward pass. The first layer's B is drawn too
    (it would carry the error to the input) but nothing uses it.
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"fa_mlp needs at least an input and an output size, got {sizes}")
    reference = nn.MLP(sizes, activation=activation, init=init, rng=rng)
    if isinstance(rng, np.random.Generator):
        fb_rng = np.random.default_rng(rng.integers(2 ** 63))
    else:                                   # a seed s: B's come from the seed [s, 8]
        fb_rng = np.random.default_rng(None if rng is None else [int(rng), 8])
    layers: list[Module] = []
    for module in reference:
        if isinstance(module, nn.Linear):
            n_in, n_out = module.in_features, module.out_features
            std = init_std(n_in, n_out, init) * feedback_scale
            layers.append(FALinear.from_linear(
                module, fb_rng.normal(0.0, std, size=(n_out, n_in))))
        else:
            layers.append(module)
    return nn.Sequential(*layers)


def linears(model: nn.Sequential) -> list:
    """The Linear and FALinear layers of ``model``, input side first."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, FALinear))]


@contextlib.contextmanager
def weight_transport(model: Module) -> Iterator[Module]:
    """Inside ``with weight_transport(model):`` every FALinear uses B = Wᵀ.

    That is backpropagation exactly: the gradients computed inside are the true
    ones. The fixed B's are put back on leaving, so a feedback-alignment net can
    be asked "what would backprop have done here?" without changing it.
    """
    layers = [m for m in model.modules() if isinstance(m, FALinear)]
    kept = [layer.feedback for layer in layers]
    try:
        for layer in layers:
            layer.feedback = layer.weight.data.T.copy()
        yield model
    finally:
        for layer, feedback in zip(layers, kept):
            layer.feedback = feedback


def update_angle(a: Union[np.ndarray, Sequence[np.ndarray]],
                 b: Union[np.ndarray, Sequence[np.ndarray]]) -> float:
    """The angle in degrees between two updates, each an array or a list of arrays.

    Every array is flattened and a list is joined into one long vector, so the
    angle of a whole network's update can be taken:
    θ = arccos(a·b / (‖a‖ ‖b‖)), the cosine clipped to [-1, 1] against round-off.
    """
    va = np.concatenate([np.ravel(p) for p in a]) if isinstance(a, (list, tuple)) \
        else np.ravel(a)
    vb = np.concatenate([np.ravel(p) for p in b]) if isinstance(b, (list, tuple)) \
        else np.ravel(b)
    if va.shape != vb.shape:
        raise ValueError(f"update_angle: the updates have {va.size} and {vb.size} "
                         "numbers; they must have the same shapes")
    na, nb = np.linalg.norm(va), np.linalg.norm(vb)
    if na == 0 or nb == 0:
        raise ValueError("update_angle: an update of all zeros has no direction")
    return float(np.degrees(np.arccos(np.clip(va @ vb / (na * nb), -1.0, 1.0))))


def alignment_angle(weight: np.ndarray, feedback: np.ndarray) -> float:
    """The angle in degrees between a layer's W (in, out) and its Bᵀ."""
    return update_angle(np.asarray(weight), np.asarray(feedback).T)


# ------------------------------------------------------------ direct feedback alignment
def direct_feedback(logits: Tensor, hiddens: Sequence[Tensor],
                    feedbacks: Sequence[np.ndarray]) -> Tensor:
    """The logits, unchanged, as a node that also sends the output error e to every
    hidden activation h_l through its own fixed matrix: dL/dh_l = e B_l.

    Direct feedback alignment (Nøkland, "Direct feedback alignment provides learning
    in deep neural networks", NIPS 2016): with the layers' own backward connections
    cut (each layer's input detached), h_l's activation then multiplies by f'(z_l),
    so δ_l = (e B_l) ⊙ f'(z_l), and the layer's weights get a_{l-1}ᵀ δ_l.
    ``feedbacks[l]`` has shape (n_classes, width of h_l).
    """
    hiddens, feedbacks = list(hiddens), [np.asarray(B, dtype=np.float64)
                                         for B in feedbacks]
    if len(hiddens) != len(feedbacks):
        raise ValueError(f"direct_feedback: {len(hiddens)} hidden layers but "
                         f"{len(feedbacks)} feedback matrices; one each")
    for h, B in zip(hiddens, feedbacks):
        if B.shape != (logits.shape[-1], h.shape[-1]):
            raise ValueError(f"direct_feedback: a feedback matrix of shape {B.shape} "
                             f"for logits {logits.shape} and a hidden layer "
                             f"{h.shape}: expected ({logits.shape[-1]}, {h.shape[-1]})")

    def _backward(grad: np.ndarray) -> None:
        logits._accumulate(grad)
        for h, B in zip(hiddens, feedbacks):
            h._accumulate(grad @ B)                    # e B_l, straight from the top
    return logits._child(logits.data, (logits, *hiddens), "direct_feedback", _backward,
                         tuple(feedbacks))


class DFANet(Module):
    """An MLP trained by direct feedback alignment.

    Same seed, same forward weights as ``nn.MLP(sizes, activation, init, rng=seed)``
    (plain ``nn.Linear`` layers). Each layer's input is detached, so nothing flows
    from layer to layer on the way back; :func:`direct_feedback` hands every hidden
    layer the output error through its fixed random ``feedbacks[l]``
    (n_classes, width), drawn from the seed [seed, 9].
    """

    def __init__(self, sizes: Sequence[int], activation: str = "tanh",
                 init: str = "xavier", rng: RngLike = None,
                 feedback_scale: float = 1.0) -> None:
        sizes = list(sizes)
        reference = nn.MLP(sizes, activation=activation, init=init, rng=rng)
        self.linears = [m for m in reference if isinstance(m, nn.Linear)]
        self.activation = reference[1] if len(reference) > 1 else nn.Identity()
        if isinstance(rng, np.random.Generator):
            fb_rng = np.random.default_rng(rng.integers(2 ** 63))
        else:
            fb_rng = np.random.default_rng(None if rng is None else [int(rng), 9])
        n_out = sizes[-1]
        self.feedbacks = [fb_rng.normal(0.0, init_std(n, n_out, init) * feedback_scale,
                                        size=(n_out, n)) for n in sizes[1:-1]]
        self.sizes = sizes

    def forward(self, x: Union[Tensor, np.ndarray]) -> Tensor:
        h = as_tensor(x)
        hiddens = []
        for i, layer in enumerate(self.linears[:-1]):
            h = self.activation(layer(h if i == 0 else h.detach()))
            hiddens.append(h)
        logits = self.linears[-1](h.detach() if hiddens else h)
        return direct_feedback(logits, hiddens, self.feedbacks)

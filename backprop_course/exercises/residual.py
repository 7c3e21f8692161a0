"""Checks for lesson 05, residual networks.

    residual_backward(dout, x, W, b, s)      -> (dx, dW, db) of the lesson's block
                                                y = x + s·(relu(x) W + b), by hand
    end_to_end_jacobian(jacobians, residual) -> M with h_L = h_0 M: plain J_1 ⋯ J_L,
                                                residual (I + J_1) ⋯ (I + J_L)
    class ResidualBlock(nn.Module)           -> y = x + linear(relu(x)),
                                                one Linear(w, w) with He init

Every check draws fresh random shapes and values, computes the reference with
the engine (``Tensor`` autograd, ``nn.Linear``, ``nn.Residual``), cross-checks
it against finite differences or the formula, and names the usual mistake
when it recognises one.
"""
from __future__ import annotations

from functools import reduce

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import CheckFailure
from backprop_course.exercises.registry import exercise

NOTEBOOK = "05_residual_networks"
#: expect.near's tolerances for telling a known wrong answer from the right one
TIGHT = {"rtol": 1e-6, "atol": 1e-12}



# ------------------------------------------------------------ 05-residual-backward
def _block_forward(x, W, b, s: float):
    """y = x + s·(relu(x) W + b), the lesson's block, from Tensor ops (the reference)."""
    return x + (x.relu() @ W + b) * s


def _engine_block_grads(dout, x, W, b, s: float) -> tuple[np.ndarray, ...]:
    """The same block from the engine's layers: nn.Residual(ReLU, Linear), scale s."""
    from backprop_course import Tensor, nn
    d = x.shape[1]
    lin = nn.Linear(d, d)
    lin.weight.data, lin.bias.data = W.copy(), b.copy()
    block = nn.Residual(nn.Sequential(nn.ReLU(), lin), scale=s)
    xt = Tensor(x.copy(), requires_grad=True)
    block(xt).backward(dout)
    return xt.grad, lin.weight.grad, lin.bias.grad


def _variant_grads(dout, x, W, s: float, mask, a=None, identity: bool = True,
                   s_branch: float | None = None) -> tuple[np.ndarray, ...]:
    """(dx, dW, db) of the block computed with a (right or wrong) ReLU mask, input a
    of the Linear layer and scale s_branch on the branch."""
    a = np.maximum(x, 0) if a is None else a
    du = dout * (s if s_branch is None else s_branch)
    return ((dout if identity else 0) + (du @ W.T) * mask, a.T @ du, du.sum(axis=0))


@exercise(
    "05-residual-backward",
    title="Backward through the lesson's residual block",
    notebook=NOTEBOOK,
    answer="residual_backward",
    hints=[
        "Name the steps of the forward pass: a = relu(x), u = a W + b, y = x + s·u. "
        "x reaches y along two paths (the skip, and the branch through a), so dx is the "
        "sum of two terms.",
        "Go back one step at a time: du = s·dout (the scale multiplies the branch, so "
        "it multiplies its gradient too). The Linear layer: dW = aᵀ du, db = du summed "
        "over the batch axis, da = du Wᵀ.",
        "Through the ReLU: its gradient is 1 where its own input, x, is > 0. The skip "
        "adds dout unchanged: dx = dout + da · (x > 0).",
        "`a = np.maximum(x, 0)`; `du = s * dout`; "
        "`return dout + (du @ W.T) * (x > 0), a.T @ du, du.sum(axis=0)`.",
    ],
)
def _check_residual_backward(residual_backward, rng):
    def draw(n: int, d: int):
        """x, W, b, dout with no x within 1e-3 of the ReLU's kink."""
        while True:
            x = rng.normal(size=(n, d))
            if np.all(np.abs(x) > 1e-3):
                W = rng.normal(size=(d, d)) / np.sqrt(d)
                return x, W, rng.normal(size=d) * 0.5, rng.normal(size=(n, d))

    n, d = int(rng.integers(3, 7)), int(rng.integers(3, 7))
    if n == d:
        n += 1
    depth = int(rng.integers(4, 60))
    cases = [(*draw(n, d), 1 / np.sqrt(depth), f"a batch, s = 1/√{depth}"),
             (*draw(1, int(rng.integers(3, 7))), float(rng.uniform(0.2, 0.8)),
              "a batch of one"),
             (*draw(int(rng.integers(3, 7)), 1), 0.5, "D = 1, s = 0.5"),
             (*draw(d, d), 1.0, "N = D, s = 1")]
    for x, W, b, dout, s, label in cases:
        n, d = x.shape
        name = (f"residual_backward(dout, x, W, b, s={s:.4g}) with x of shape {x.shape} "
                f"({label})")
        with expect.autograd_watch() as used:
            dx, dW, db = expect.call(residual_backward, dout, x, W, b, s, name=name,
                                     returns=(tuple, list), length=3)
        if used:
            raise CheckFailure(
                f"{name} called Tensor.backward: this exercise asks for the backward "
                "pass by hand, with numpy", hint="write a = relu(x), u = a W + b, "
                "y = x + s·u and go back through the steps (hint() has them)",
                kind="wrong")
        rx, rW, rb = expect.grad_of(lambda x, W, b: _block_forward(x, W, b, s),
                                    x, W, b, upstream=dout)
        ex, eW, eb = _engine_block_grads(dout, x, W, b, s)
        assert expect.near(ex, rx, 1e-9, 1e-12) and expect.near(eW, rW, 1e-9, 1e-12) \
            and expect.near(eb, rb, 1e-9, 1e-12), \
            "nn.Residual disagrees with the Tensor-op reference"
        a = np.maximum(x, 0)
        mask = (x > 0).astype(float)
        y = x + s * (a @ W + b)
        du = s * dout
        scaled = s != 1.0
        variants = {   # (dx, dW, db) of a wrong derivation -> its hint
            "mask_y": (_variant_grads(dout, x, W, s, (y > 0).astype(float)),
                       "the ReLU mask is taken from the block's output y: the ReLU acts "
                       "on x (this block is pre-activation, relu first), so the mask is "
                       "(x > 0)"),
            "mask_z": (_variant_grads(dout, x, W, s, (x @ W + b > 0).astype(float)),
                       "the ReLU mask comes from x W + b, as in a block relu(x W + b): "
                       "this lesson's block applies relu to x first, so the mask is "
                       "(x > 0)"),
            "no_mask": (_variant_grads(dout, x, W, s, np.ones_like(x)),
                        "the ReLU mask is left out: the branch's gradient reaches x only "
                        "where x > 0, so da · (x > 0)"),
            "no_s": (_variant_grads(dout, x, W, s, mask, s_branch=1.0),
                     "the scale s is left out of the branch: y = x + s·u, so "
                     "du = s·dout, and every gradient through the branch carries s"),
            "s2": (_variant_grads(dout, x, W, s, mask, s_branch=s * s),
                   "s is applied twice: du = s·dout, once"),
            "x_not_a": (_variant_grads(dout, x, W, s, mask, a=x),
                        "dW uses x: the Linear layer's input is a = relu(x), so "
                        "dW = relu(x)ᵀ du"),
        }

        def wrong(k: int, *skip: str) -> dict:
            out = {}
            for key, (grads, text) in variants.items():
                if key in skip or (key in ("no_s", "s2") and not scaled):
                    continue
                out[(lambda g, e, v=grads[k]: not expect.near(v, e, **TIGHT)
                     and expect.near(g, v, **TIGHT))] = text
            return out
        expect.close(dx, rx, what=f"dx ({label}, shape {x.shape})", rtol=1e-6,
                     hint="dx = dout (the skip) + (s·dout Wᵀ) · (x > 0) (the branch)",
                     hint_if={
            expect.equals((du @ W.T) * mask,
                "the identity term is missing: the skip path passes dout to x unchanged, "
                "so dx = dout + (du Wᵀ)·(x > 0)"): None,
            expect.equals(dout + (du @ W) * mask,
                "W is not transposed: u = a W, so the branch's part of dx is "
                "du @ W.T (masked)"): None,
            expect.equals(dout - (du @ W.T) * mask,
                "the branch's part has the wrong sign: both paths add"): None,
            expect.equals((dout + du @ W.T) * mask,
                "the ReLU mask is applied to the skip path too: the identity passes "
                "dout unchanged, only the branch is masked"): None,
            **wrong(0, "x_not_a"),
        })
        expect.close(dW, rW, what=f"dW ({label}, shape {W.shape})", rtol=1e-6, batch=n,
                     hint="dW = relu(x)ᵀ du with du = s·dout", hint_if={
            expect.equals(du.T @ a, "the transpose is on the wrong factor: dW = a.T @ du, "
                          "shape (D, D) like W"): None,
            **wrong(1, "mask_y", "mask_z", "no_mask"),
        })
        expect.close(db, rb, what=f"db ({label}, shape {b.shape})", rtol=1e-6, batch=n,
                     hint="db = du summed over the batch axis, du = s·dout", hint_if={
            (lambda g, e: np.shape(g) == (n, d)):
                "db has the shape of b, (D,): b is added to every row, so sum du over "
                "the batch axis, du.sum(axis=0)",
            (lambda g, e: np.shape(g) == (n,)):
                "summed over the wrong axis: db = du.sum(axis=0), shape (D,)",
            (lambda g, e: n > 1 and expect.near(g, du.mean(axis=0), **TIGHT)):
                "this is the mean over the rows; b is added to every row, so its "
                "gradient is their sum",
            **wrong(2, "mask_y", "mask_z", "no_mask", "x_not_a"),
        })
    return ("batches of 1 and more, D = 1, N = D, several scales s; dx, dW, db vs "
            "nn.Residual and finite differences")


# ---------------------------------------------------------- 05-end-to-end-jacobian
def _formula_jacobian(Js, d: int, residual: bool) -> np.ndarray:
    eye = np.eye(d)
    return reduce(lambda M, J: M @ ((eye + J) if residual else J), Js, eye)


def _engine_jacobian(Js, d: int, residual: bool) -> np.ndarray:
    """M from autograd: a stack of bias-free nn.Linear layers (in nn.Residual if
    residual); feeding H_0 = I gives H_L = M, and the gradient of ΣH_L·U at H_0
    is U Mᵀ."""
    from backprop_course import Tensor, nn
    layers = []
    for J in Js:
        lin = nn.Linear(d, d, bias=False)
        lin.weight.data = np.array(J, dtype=np.float64)
        layers.append(nn.Residual(lin) if residual else lin)
    net = nn.Sequential(*layers)
    h0 = Tensor(np.eye(d), requires_grad=True)
    out = net(h0)
    if out is h0:                                # no layers: h_L is h_0
        return np.eye(d)
    out.backward(np.eye(d))
    if not expect.near(out.data, h0.grad.T, 1e-10, 1e-12):
        raise AssertionError("the engine's forward and backward Jacobians disagree")
    return h0.grad.T


@exercise(
    "05-end-to-end-jacobian",
    title="End-to-end Jacobian, plain and residual",
    notebook=NOTEBOOK,
    answer="end_to_end_jacobian",
    hints=[
        "Follow one row vector h through the blocks: after the first block it is "
        "h_0 J_1 (plain) or h_0 + h_0 J_1 = h_0 (I + J_1) (residual), and each block "
        "multiplies on the right again.",
        "So M is a matrix product, taken in the order the blocks are applied: "
        "J_1 @ J_2 @ ... @ J_L, or (I + J_1) @ ... @ (I + J_L). Use @, not *, and not "
        "a sum of the J's (that is only the first-order part).",
        "Start from the identity, M = np.eye(D), and multiply on the right in a loop. "
        "The product of no matrices is the identity, so L = 0 needs no special case; "
        "D = np.shape(jacobians)[-1] works for a list and for the empty array.",
        "`D = np.shape(jacobians)[-1]`; `M = np.eye(D)`; `for J in jacobians: "
        "M = M @ (np.eye(D) + J if residual else J)`; `return M`.",
    ],
)
def _check_end_to_end_jacobian(end_to_end_jacobian, rng):
    def jacobians(n_layers: int, d: int) -> list[np.ndarray]:
        """Random J's, far from commuting, with gains near 1 so products stay moderate."""
        return [rng.normal(size=(d, d)) * float(rng.uniform(0.5, 1.0)) / np.sqrt(d)
                for _ in range(n_layers)]
    d = int(rng.integers(3, 6))
    n_layers = int(rng.integers(3, 6))
    Js = jacobians(n_layers, d)
    d2 = int(rng.integers(2, 6))
    cases = [(Js, d, False, ""), (Js, d, True, ", the same J's as the plain case"),
             (np.zeros((0, d2, d2)), d2, True, ""), (np.zeros((0, d2, d2)), d2, False, ""),
             (jacobians(1, d2), d2, True, ""),
             (jacobians(int(rng.integers(2, 5)), 1), 1, True, ""),
             (np.stack(jacobians(int(rng.integers(2, 5)), d2)), d2, False,
              ", the J's as one array of shape (L, D, D)")]
    for Js, d, residual, label in cases:
        n_layers = len(Js)
        kind = "list" if isinstance(Js, list) else f"array of shape {Js.shape}"
        name = (f"end_to_end_jacobian(jacobians, residual={residual}) with L = {n_layers} "
                f"matrices of shape ({d}, {d}) ({kind})")
        try:
            got = expect.call(end_to_end_jacobian, Js, residual, name=name)
        except CheckFailure as failure:
            if n_layers == 0 and failure.kind == "error" and (
                    "IndexError" in failure.message or "index" in failure.message):
                failure.hint = ("with L = 0 there is no J_1 to read D from: start from "
                                "M = np.eye(D) with D = np.shape(jacobians)[-1] (the "
                                "empty array has shape (0, D, D)); the product of no "
                                "matrices is the identity")
            elif n_layers == 0 and failure.kind == "error" and "reduce" in failure.message:
                failure.hint = ("reduce() of an empty sequence needs a start value: "
                                "pass np.eye(D) as the initial value")
            raise
        expected = _formula_jacobian(Js, d, residual)
        engine = _engine_jacobian(Js, d, residual)
        assert expect.near(engine, expected, 1e-9, 1e-12), \
            "autograd disagrees with the formula"
        eye = np.eye(d)
        factors = [(eye + J) if residual else J for J in Js]
        rev = reduce(np.matmul, factors[::-1], eye)
        other = _formula_jacobian(Js, d, not residual)
        hints = {
            (lambda g, e: n_layers == 0 and np.shape(g) == ()):
                "with L = 0, M is the identity matrix np.eye(D) of shape (D, D), "
                "not a number",
            (lambda g, e: n_layers == 0 and expect.near(g, np.zeros((d, d)), **TIGHT)):
                "with L = 0 the product of no matrices is the identity, not zero: "
                "start from M = np.eye(D)",
            (lambda g, e: n_layers > 1 and d > 1 and not expect.near(rev, e, **TIGHT)
                 and expect.near(g, rev, **TIGHT)):
                "the product is in reverse order: h_0 meets J_1 first and each block "
                "multiplies the row vector on the right, so M = J_1 @ J_2 @ ... @ J_L",
            (lambda g, e: d > 1 and not expect.near(e.T, e, **TIGHT)
                 and expect.near(g, e.T, **TIGHT)):
                "this is Mᵀ: with row vectors h_L = h_0 @ M, M = J_1 @ ... @ J_L "
                "(the column-vector convention would give the transpose)",
            (lambda g, e: residual and n_layers > 0 and expect.near(g, other, **TIGHT)):
                "the identity is forgotten: a residual block maps h to h + h J_l = "
                "h (I + J_l), so multiply by (I + J_l), not J_l",
            (lambda g, e: not residual and n_layers > 0 and expect.near(g, other, **TIGHT)):
                "these blocks are plain (residual=False): h → h J_l, no identity term",
            (lambda g, e: residual and n_layers > 1 and d > 1 and expect.near(
                g, eye + reduce(np.matmul, Js), **TIGHT)):
                "the identity is added once, to the whole product: each residual block "
                "has its own skip, so M = (I + J_1) @ ... @ (I + J_L)",
            (lambda g, e: n_layers > 1
                 and expect.near(g, eye * residual + sum(Js), **TIGHT)):
                "this is a sum of the J's: blocks applied one after the other multiply, "
                "M = " + ("(I + J_1) @ ... @ (I + J_L)" if residual
                          else "J_1 @ J_2 @ ... @ J_L")
                + " (I + ΣJ is only the first-order part)",
            (lambda g, e: n_layers > 1
                 and expect.near(g, reduce(np.multiply, factors), **TIGHT)):
                "this is the elementwise product (*): the matrices multiply with @",
            (lambda g, e: n_layers > 1 and residual and expect.near(
                g, eye + reduce(np.multiply, Js), **TIGHT)):
                "this is the elementwise product (*): the matrices multiply with @",
        }
        expect.close(got, expected,
                     what=f"M with residual={residual} (L = {n_layers}, D = {d}{label})",
                     rtol=1e-8, atol=1e-10, hint_if=hints,
                     hint="M = J_1 @ ... @ J_L (plain) or (I + J_1) @ ... @ (I + J_L) "
                          "(residual), starting from np.eye(D)")
    return ("plain and residual, L = 0 and 1, D = 1, a list and an (L, D, D) array; "
            "vs autograd on a linear network and the formula")


# ---------------------------------------------------------------- 05-residual-block
def _reference_block(W: np.ndarray, b: np.ndarray):
    """The pre-activation block from the engine: nn.Residual(ReLU, Linear)."""
    from backprop_course import nn
    w = W.shape[0]
    lin = nn.Linear(w, w)
    lin.weight.data, lin.bias.data = W.copy(), b.copy()
    return nn.Residual(nn.Sequential(nn.ReLU(), lin)), lin


def _block_params(block, name: str, width: int) -> tuple:
    """(weight, bias) Tensors of the learner's block; CheckFailure if not exactly those."""
    from backprop_course import Tensor
    params = expect.call(block.parameters, name=f"{name}.parameters()",
                         returns=(list, tuple))
    shapes = [tuple(getattr(p, "shape", ())) for p in params]
    if not all(isinstance(p, Tensor) for p in params):
        raise CheckFailure(f"{name}.parameters() should hold Tensors, got "
                           f"{[type(p).__name__ for p in params]}",
                           hint="let nn.Module find them: store the nn.Linear as an "
                                "attribute (self.linear = nn.Linear(...))", kind="type")
    if len(params) == 0:
        raise CheckFailure(
            f"{name}.parameters() is empty: the block has no weights",
            hint="create the layer in __init__ and keep it as an attribute, "
                 "`self.linear = nn.Linear(width, width, init=\"he\", rng=rng)`, so "
                 "parameters() finds it (a layer made inside forward() is new every "
                 "call and is never trained)", kind="wrong")
    if shapes != [(width, width), (width,)]:
        hint = ("the block has one nn.Linear(width, width) with a bias, and nothing "
                "else with parameters")
        if len(params) == 4:
            hint = ("two Linear layers: this block has one, y = x + linear(relu(x)) "
                    "(the original ResNet block has two, this exercise's has one)")
        elif len(params) == 1:
            hint = "the bias is missing: nn.Linear(width, width) has a bias by default"
        raise CheckFailure(
            f"{name}.parameters() should be [weight of shape ({width}, {width}), bias "
            f"of shape ({width},)], got {len(params)} tensor"
            f"{'s' * (len(params) != 1)} of shapes {shapes}",
            hint=hint, kind="shape")
    return params[0], params[1]


def _expected_weight(width: int, seed) -> np.ndarray:
    from backprop_course import nn
    return nn.Linear(width, width, init="he", rng=seed).weight.data


def _weights_hint(weight: np.ndarray, width: int, seed: int) -> str:
    from backprop_course import nn
    for init in ("xavier", "naive"):
        other = nn.Linear(width, width, init=init, rng=seed).weight.data
        if expect.near(weight, other, **TIGHT):
            return (f"these are {init} weights: the block uses He initialisation, "
                    "nn.Linear(width, width, init=\"he\", rng=rng)")
    if np.isclose(np.std(weight), np.sqrt(2 / width), rtol=0.5) and width >= 4:
        return ("the weights do not come from the rng given: pass it on, "
                "nn.Linear(width, width, init=\"he\", rng=rng)")
    return "create the layer as nn.Linear(width, width, init=\"he\", rng=rng)"


def _construct(ResidualBlock, width: int, **kwargs):
    args = ", ".join([str(width)] + [f"{k}={v!r}" if not isinstance(v, np.random.Generator)
                                     else f"{k}=np.random.default_rng(...)"
                                     for k, v in kwargs.items()])
    name = f"ResidualBlock({args})"
    block = expect.call(ResidualBlock, width, name=name, **kwargs)
    from backprop_course import nn
    if not isinstance(block, nn.Module):
        raise CheckFailure(f"{name} is a {type(block).__name__}, not an nn.Module",
                           hint="define `class ResidualBlock(nn.Module):`", kind="type")
    return block, name


def _forward_case(block, name: str, W, b, x: np.ndarray, dout: np.ndarray, label: str,
                  as_array: bool = False) -> None:
    """Run the learner's block on x; compare output and gradients with the reference."""
    from backprop_course import Tensor
    n, w = x.shape
    ref, lin = _reference_block(W.data, b.data)
    xr = Tensor(x.copy(), requires_grad=True)
    out_ref = ref(xr)
    out_ref.backward(dout)
    want = x + np.maximum(x, 0) @ W.data + b.data
    assert expect.near(out_ref.data, want, 1e-10, 1e-12), \
        "nn.Residual disagrees with the formula"

    for p in (W, b):
        p.grad = None
    xt = x.copy() if as_array else Tensor(x.copy(), requires_grad=True)
    call = f"{name}(x)" + (" with x a numpy array" if as_array else "") + \
        f", x of shape {x.shape}"
    try:
        out = expect.call(block, xt, name=call)
    except CheckFailure as failure:
        if as_array and failure.kind == "error" and "ndarray" in failure.message:
            failure.hint = ("x may arrive as a numpy array: wrap it first, "
                            "`x = x if isinstance(x, Tensor) else Tensor(x)`, or use "
                            "layers (nn.ReLU()(x)), which accept arrays")
        raise
    if not isinstance(out, Tensor):
        raise CheckFailure(
            f"{call} returned {type(out).__name__}, not a Tensor",
            hint="compute with Tensor operations (x + self.linear(...)), not numpy or "
                 ".data: then backward() can reach the weights and x", kind="type")
    relu = np.maximum(x, 0)
    lin_out = relu @ W.data + b.data
    expect.close(out.data, want, what=f"the output of {call} ({label})", rtol=1e-9,
                 atol=1e-12, hint="the block returns x + self.linear(x.relu()): x "
                                  "itself, plus the layer applied to relu(x)", hint_if={
        expect.equals(lin_out, "the identity is missing: the block returns x + linear(relu(x)), "
                     "the skip adds x back"): None,
        expect.equals(np.maximum(x + lin_out, 0),
            "the ReLU is applied after the sum, relu(x + F(x)): in this "
            "pre-activation block the output is x + linear(relu(x)), with no ReLU "
            "after the addition, so the skip stays a pure identity"): None,
        expect.equals(x + np.maximum(x @ W.data + b.data, 0),
            "this is x + relu(linear(x)), the block of 05-residual-backward; this "
            "block is pre-activation: ReLU first, then the Linear, x + linear(relu(x))"):
            None,
        expect.equals(x + x @ W.data + b.data,
            "the ReLU is missing: x + linear(relu(x))"): None,
        expect.equals(relu + lin_out, "the skip goes around the wrong thing: it carries x itself, "
                            "from before the ReLU, y = x + linear(relu(x))"): None,
        expect.equals(x + (x + relu) @ W.data + b.data,
            "the skip goes around the wrong thing: linear() takes relu(x) only"): None,
        expect.equals(x + relu @ W.data, "the bias is left out: call the nn.Linear layer itself, "
                               "it adds its bias"): None,
        expect.equals(x + relu @ W.data.T + b.data,
            "the weight is transposed: nn.Linear computes x @ W + b"): None,
    })
    if as_array:
        return
    if not out.requires_grad:
        raise CheckFailure(
            f"the output of {call} does not require grad, although x and the weights "
            "do: it is not connected to them in the graph, so backward() cannot reach "
            "them", hint="build the output from Tensor operations on x and the layer "
                         "(no .data, no numpy, no Tensor(...) around a result)",
            kind="wrong")
    try:
        out.backward(dout)
    except Exception as exc:
        raise CheckFailure(f"backward() through the output of {call} raised "
                           f"{type(exc).__name__}: {exc}",
                           hint="build the output from Tensor operations only",
                           kind="error") from None
    for what, got, exp_ in (("dL/dx", xt.grad, xr.grad), ("dL/dW", W.grad, lin.weight.grad),
                            ("dL/db", b.grad, lin.bias.grad)):
        if got is None:
            raise CheckFailure(
                f"{what} is None after backward through {call}: the output is not "
                "connected to it in the graph",
                hint="build the output from Tensor operations on x and the layer "
                     "(no .data, no numpy, no Tensor(...) around a result)",
                kind="wrong")
        expect.close(got, exp_, what=f"{what} through {call} ({label})", rtol=1e-8,
                     atol=1e-12, batch=n)


@exercise(
    "05-residual-block",
    title="A residual block as an nn.Module",
    notebook=NOTEBOOK,
    answer="ResidualBlock",
    hints=[
        "Two methods. __init__ creates the one layer with weights and keeps it as an "
        "attribute; forward computes the block's output from x and that layer.",
        "In __init__: `self.linear = nn.Linear(width, width, init=\"he\", rng=rng)`; "
        "pass rng on, so the same seed gives the same weights. Stored as an attribute, "
        "its weight and bias appear in parameters().",
        "forward is pre-activation: first relu(x), then the Linear, then add x itself: "
        "x + linear(relu(x)). No ReLU after the sum. x may be a numpy array: wrap it "
        "in a Tensor first (a constant, no gradient needed).",
        "`x = x if isinstance(x, Tensor) else Tensor(x)`; "
        "`return x + self.linear(x.relu())`.",
    ],
)
def _check_residual_block(ResidualBlock, rng):
    from backprop_course import Tensor, nn
    if ResidualBlock is None:
        raise CheckFailure("ResidualBlock is None: define the class (and run its cell) "
                           "before checking", kind="none")
    if isinstance(ResidualBlock, nn.Module):
        raise CheckFailure(
            "check() got a ResidualBlock object, not the class",
            hint="pass the class itself: check(\"05-residual-block\", ResidualBlock), "
                 "without calling it", kind="type")
    if not isinstance(ResidualBlock, type):
        raise CheckFailure(f"ResidualBlock should be a class, got "
                           f"{type(ResidualBlock).__name__}",
                           hint="define `class ResidualBlock(nn.Module):` with __init__ "
                                "and forward", kind="type")
    if not issubclass(ResidualBlock, nn.Module):
        raise CheckFailure("ResidualBlock is not a subclass of nn.Module",
                           hint="write `class ResidualBlock(nn.Module):` so that "
                                "parameters(), zero_grad() and calling it work",
                           kind="type")

    widths = [int(rng.integers(3, 9)), 1, int(rng.integers(9, 17))]
    for i, width in enumerate(widths):
        seed = int(rng.integers(2 ** 31))
        block, name = _construct(ResidualBlock, width, rng=seed)
        W, b = _block_params(block, name, width)
        twin, _ = _construct(ResidualBlock, width, rng=seed)
        W2, _ = _block_params(twin, name, width)
        if not np.array_equal(W.data, W2.data):
            raise CheckFailure(
                f"two blocks built with {name} have different weights",
                hint="pass rng on to the layer, nn.Linear(width, width, init=\"he\", "
                     "rng=rng): the same seed must give the same weights", kind="wrong")
        if not expect.near(W.data, _expected_weight(width, seed), 1e-12, 0):
            raise CheckFailure(
                f"{name}: the weight is not the one nn.Linear({width}, {width}, "
                f"init=\"he\", rng={seed}) draws", hint=_weights_hint(W.data, width, seed),
                kind="wrong")
        other, _ = _construct(ResidualBlock, width, rng=seed + 1)
        if width > 1 and np.array_equal(_block_params(other, name, width)[0].data, W.data):
            raise CheckFailure(
                f"ResidualBlock({width}, rng={seed}) and ResidualBlock({width}, "
                f"rng={seed + 1}) have the same weights",
                hint="use the rng argument, not a fixed seed", kind="wrong")
        if not np.all(b.data == 0):
            raise CheckFailure(f"{name}: the bias should start at zero, as nn.Linear's "
                               "does", hint="create the layer with nn.Linear and keep "
                                            "its bias as it is", kind="wrong")
        b.data = rng.normal(size=width)        # a nonzero bias, so its path is tested
        n = 1 if i == 1 else int(rng.integers(2, 7))
        x = rng.normal(size=(n, width))
        dout = rng.normal(size=(n, width))
        label = f"width {width}, batch of {n}"
        _forward_case(block, name, W, b, x, dout, label)
        _forward_case(block, name, W, b, rng.normal(size=(n, width)), dout, label,
                      as_array=True)

    # rng left at its default, a Generator passed in
    width = int(rng.integers(2, 6))
    expect.call(ResidualBlock, width, name=f"ResidualBlock({width}) (rng not given)")
    g_seed = int(rng.integers(2 ** 31))
    block, name = _construct(ResidualBlock, width, rng=np.random.default_rng(g_seed))
    W, _ = _block_params(block, name, width)
    expected_W = _expected_weight(width, np.random.default_rng(g_seed))
    if not expect.near(W.data, expected_W, 1e-12, 0):
        raise CheckFailure(f"{name}: with a Generator as rng, the weight is not the one "
                           "nn.Linear draws from it",
                           hint=_weights_hint(W.data, width, g_seed),
                           kind="wrong")

    # a stack of three blocks: shapes chain, gradients reach every block and x
    width, n = int(rng.integers(3, 7)), int(rng.integers(2, 5))
    seeds = [int(s) for s in rng.integers(2 ** 31, size=3)]
    blocks = [_construct(ResidualBlock, width, rng=s)[0] for s in seeds]
    stack = nn.Sequential(*blocks)
    params = expect.call(stack.parameters, name="nn.Sequential(three blocks).parameters()")
    if len(params) != 6:
        raise CheckFailure(f"a stack of three blocks has {len(params)} parameters, "
                           "expected 6 (a weight and a bias per block)", kind="wrong")
    for p in params[1::2]:
        p.data = rng.normal(size=width)
    ref = nn.Sequential(*[_reference_block(params[2 * k].data, params[2 * k + 1].data)[0]
                          for k in range(3)])
    x = rng.normal(size=(n, width))
    dout = rng.normal(size=(n, width))
    xr = Tensor(x.copy(), requires_grad=True)
    want = ref(xr)
    want.backward(dout)
    xt = Tensor(x.copy(), requires_grad=True)
    call = f"nn.Sequential(three ResidualBlock({width}))(x), x of shape {x.shape}"
    out = expect.call(stack, xt, name=call, returns=Tensor)
    expect.close(out.data, want.data, what=f"the output of {call}", rtol=1e-9, atol=1e-12)
    out.backward(dout)
    ref_params = ref.parameters()
    for what, got, exp_ in [("dL/dx", xt.grad, xr.grad)] + [
            (f"dL/d{'W' if k % 2 == 0 else 'b'} of block {k // 2 + 1}", p.grad, r.grad)
            for k, (p, r) in enumerate(zip(params, ref_params))]:
        if got is None:
            raise CheckFailure(f"{what} is None after backward through {call}",
                               hint="build the output from Tensor operations only",
                               kind="wrong")
        expect.close(got, exp_, what=f"{what} through {call}", rtol=1e-8, atol=1e-12)
    return ("widths 1 to 16, batches of 1 and more, Tensor and array input, seeds, "
            "a stack of three; output and dx, dW, db vs nn.Residual")

"""Lesson 05 checks: the reference answers pass, the usual wrong answers fail
with the hint that names the mistake."""
from __future__ import annotations

from functools import reduce

import numpy as np
import pytest

from backprop_course import Tensor, nn
from backprop_course.exercises import run_check
from verdicts import assert_caught


# ------------------------------------------------------------------ reference answers
def residual_backward(dout, x, W, b, s):
    a = np.maximum(x, 0)
    du = s * dout
    return dout + (du @ W.T) * (x > 0), a.T @ du, du.sum(axis=0)


def end_to_end_jacobian(jacobians, residual):
    d = np.shape(jacobians)[-1]
    M = np.eye(d)
    for J in jacobians:
        M = M @ (np.eye(d) + J if residual else J)
    return M


class ResidualBlock(nn.Module):
    def __init__(self, width, rng=None):
        self.linear = nn.Linear(width, width, init="he", rng=rng)

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        return x + self.linear(x.relu())


REFERENCE = {
    "05-residual-backward": residual_backward,
    "05-end-to-end-jacobian": end_to_end_jacobian,
    "05-residual-block": ResidualBlock,
}


@pytest.mark.parametrize("exercise_id", sorted(REFERENCE))
@pytest.mark.parametrize("seed", range(12))
def test_reference_passes(exercise_id, seed):
    verdict = run_check(exercise_id, REFERENCE[exercise_id], seed=seed)
    assert verdict.passed, verdict.render()


# ------------------------------------------------------------ other correct answers
def _backward_steps(dout, x, W, b, s):
    """The long way: name every step of the forward pass, go back through each."""
    a = np.where(x > 0, x, 0.0)      # a = relu(x); u = a W + b; y = x + s u
    dx_skip = dout.copy()
    du = dout * s
    dW = np.einsum("ni,nj->ij", a, du)
    db = np.sum(du, axis=0)
    da = np.einsum("nj,ij->ni", du, W)
    return dx_skip + np.where(x > 0, da, 0.0), dW, db


def _jacobian_reduce(jacobians, residual):
    d = np.shape(jacobians)[-1]
    eye = np.eye(d)
    return reduce(np.matmul, [eye + J if residual else J for J in jacobians], eye)


class _BlockWithResidual(nn.Module):
    """Built from the engine's own layers."""

    def __init__(self, width, rng=None):
        self.body = nn.Residual(nn.Sequential(
            nn.ReLU(), nn.Linear(width, width, init="he", rng=rng)))

    def forward(self, x):
        return self.body(x)


class _BlockWithReLUModule(nn.Module):
    def __init__(self, width, rng=None):
        self.act = nn.ReLU()
        self.fc = nn.Linear(width, width, init="he", rng=rng)

    def forward(self, x):
        return self.fc(self.act(x)) + x


ALTERNATIVES = [   # other correct ways to write the answers: the checks must accept them
    ("05-residual-backward", _backward_steps),
    ("05-end-to-end-jacobian", _jacobian_reduce),
    ("05-end-to-end-jacobian",
     lambda Js, r: np.linalg.multi_dot([np.eye(np.shape(Js)[-1])] * 2
                                       + [np.eye(len(J)) + J if r else J for J in Js])),
    ("05-residual-block", _BlockWithResidual),
    ("05-residual-block", _BlockWithReLUModule),
]


@pytest.mark.parametrize("exercise_id, answer", ALTERNATIVES,
                         ids=[f"{a[0]}-{i}" for i, a in enumerate(ALTERNATIVES)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alternative_correct_answers_pass(exercise_id, answer, seed):
    verdict = run_check(exercise_id, answer, seed=seed)
    assert verdict.passed, verdict.render()


def test_fresh_inputs_every_call():
    seen = []

    def spy(dout, x, W, b, s):
        seen.append(x.shape + (float(x[0, 0]),))
        return residual_backward(dout, x, W, b, s)
    for _ in range(3):
        assert run_check("05-residual-backward", spy).passed
    assert len(set(seen)) == len(seen)


def test_checks_do_not_change_global_state():
    """The autograd watch restores Tensor.backward, even when the answer raises."""
    before = Tensor.backward
    run_check("05-residual-backward", lambda *a: 1 / 0)
    run_check("05-residual-backward", residual_backward)
    assert Tensor.backward is before


# ------------------------------------------------------------------ wrong variants
def _raise(*args, **kwargs):
    raise NotImplementedError("Exercise: write it")


def _rb_variant(identity=True, mask_from="x", transpose=True, db_sum=True,
                db_mean=False, dW_order="aT_du", mask_skip=False, autograd=False,
                branch_sign=1, s_power=1, dW_input="a"):
    def residual_backward(dout, x, W, b, s):
        if autograd:
            xt, Wt, bt = (Tensor(a, requires_grad=True) for a in (x, W, b))
            (xt + (xt.relu() @ Wt + bt) * s).backward(dout)
            return xt.grad, Wt.grad, bt.grad
        a = np.maximum(x, 0)
        y = x + s * (a @ W + b)
        mask = {"x": x > 0, "y": y > 0, "z": x @ W + b > 0,
                "none": np.ones_like(x)}[mask_from]
        du = dout * s ** s_power
        dx = branch_sign * (du @ (W.T if transpose else W)) * mask
        if identity:
            dx = dx + (dout * mask if mask_skip else dout)
        inp = a if dW_input == "a" else x
        dW = inp.T @ du if dW_order == "aT_du" else du.T @ inp
        db = du.sum(axis=0) if db_sum else du
        if db_mean:
            db = du.mean(axis=0)
        return dx, dW, db
    return residual_backward


def _jac_variant(kind):
    def end_to_end_jacobian(jacobians, residual):
        d = np.shape(jacobians)[-1]
        eye = np.eye(d)
        factors = [eye + J if residual else J for J in jacobians]
        if kind == "reverse":
            return reduce(np.matmul, factors[::-1], eye)
        if kind == "no identity":
            return reduce(np.matmul, list(jacobians), eye)
        if kind == "sum":
            return eye * residual + sum(jacobians, np.zeros((d, d)))
        if kind == "elementwise":
            return reduce(np.multiply, factors, np.ones((d, d))) if len(factors) else eye
        if kind == "transpose":
            return reduce(np.matmul, factors, eye).T
        if kind == "identity once":
            return (eye if residual else 0) + reduce(np.matmul, list(jacobians), eye) \
                if len(jacobians) else eye
        if kind == "first J":
            M = np.eye(len(jacobians[0]))
            for f in factors:
                M = M @ f
            return M
        if kind == "zeros for L=0":
            return reduce(np.matmul, factors) if len(factors) else np.zeros((d, d))
        if kind == "number for L=0":
            return reduce(np.matmul, factors) if len(factors) else 1.0
        if kind == "reduce without start":
            return reduce(np.matmul, factors)
        if kind == "in place":
            for J in jacobians:
                if residual:
                    J += eye
            return reduce(np.matmul, list(jacobians), eye)
        raise AssertionError(kind)
    return end_to_end_jacobian


def _block_variant(kind):
    class ResidualBlock(nn.Module):
        def __init__(self, width, rng=None):
            if kind == "linear in forward":
                self.width = width
                return
            init = "xavier" if kind == "xavier" else "he"
            seed = 0 if kind == "fixed seed" else (None if kind == "rng ignored" else rng)
            self.linear = nn.Linear(width, width, init=init, rng=seed)
            if kind == "two linears":
                self.linear2 = nn.Linear(width, width, init="he", rng=rng)
            if kind == "no bias":
                self.linear = nn.Linear(width, width, bias=False, init="he", rng=rng)

        def forward(self, x):
            if kind == "linear in forward":
                self.linear = nn.Linear(x.shape[1], x.shape[1])
            if kind != "array input breaks":
                x = x if isinstance(x, Tensor) else Tensor(x)
            lin = self.linear
            if kind == "no identity":
                return lin(x.relu())
            if kind == "relu after sum":
                return (x + lin(x.relu())).relu()
            if kind == "post-activation":
                return x + lin(x).relu()
            if kind == "two linears":
                return x + self.linear2(lin(x.relu()).relu())
            if kind == "skip from relu":
                return x.relu() + lin(x.relu())
            if kind == "no relu":
                return x + lin(x)
            if kind == "numpy":
                return (x.data + np.maximum(x.data, 0) @ lin.weight.data
                        + lin.bias.data)
            if kind == "detached":
                return Tensor(x.data + lin(x.relu()).data)
            if kind == "in place":
                x.data += 0.0
                x.data[...] = np.maximum(x.data, -1e9) + 1.0
                return x + lin(x.relu())
            return x + lin(x.relu())
    return ResidualBlock


class _InitRaises(nn.Module):
    def __init__(self, width, rng=None):
        raise ValueError("width must be positive")

    def forward(self, x):
        return x


class _ForwardRaises(nn.Module):
    def __init__(self, width, rng=None):
        self.linear = nn.Linear(width, width, init="he", rng=rng)

    def forward(self, x):
        return x + self.linear(x.relu()) @ np.ones((x.shape[1] + 1, 2))


class _NotAttempted(nn.Module):
    def __init__(self, width, rng=None):
        raise NotImplementedError("Exercise 05-residual-block: replace this line")

    def forward(self, x):
        raise NotImplementedError("Exercise 05-residual-block: replace this line")


class _NotAModule:
    def __init__(self, width, rng=None):
        self.linear = nn.Linear(width, width, init="he", rng=rng)

    def __call__(self, x):
        return x + self.linear(x.relu())


WRONG = [
    # (exercise, label, answer, text the failure must contain)
    ("05-residual-backward", "no identity term", _rb_variant(identity=False),
     "identity term is missing"),
    ("05-residual-backward", "mask from y", _rb_variant(mask_from="y"), "output y"),
    ("05-residual-backward", "mask from xW + b", _rb_variant(mask_from="z"), "x W + b"),
    ("05-residual-backward", "no mask", _rb_variant(mask_from="none"), "mask is left out"),
    ("05-residual-backward", "scale left out", _rb_variant(s_power=0), "scale s"),
    ("05-residual-backward", "scale twice", _rb_variant(s_power=2), "twice"),
    ("05-residual-backward", "dW from x", _rb_variant(dW_input="x"), "relu(x)"),
    ("05-residual-backward", "branch subtracted", _rb_variant(branch_sign=-1),
     "wrong sign"),
    ("05-residual-backward", "db not summed", _rb_variant(db_sum=False), "(D,)"),
    ("05-residual-backward", "db mean", _rb_variant(db_mean=True), "mean"),
    ("05-residual-backward", "W not transposed", _rb_variant(transpose=False),
     "not transposed"),
    ("05-residual-backward", "dW = duᵀ a", _rb_variant(dW_order="duT_a"), "transpose"),
    ("05-residual-backward", "mask on the skip", _rb_variant(mask_skip=True),
     "skip path too"),
    ("05-residual-backward", "uses autograd", _rb_variant(autograd=True), "by hand"),
    ("05-residual-backward", "in place",
     lambda dout, x, W, b, s: residual_backward(dout, x.__iadd__(0.5), W, b, s),
     "in place"),
    ("05-residual-backward", "hard-coded",
     lambda dout, x, W, b, s: (np.zeros((3, 3)), np.zeros((3, 3)), np.zeros(3)), "wrong"),
    ("05-residual-backward", "returns None", lambda dout, x, W, b, s: None, "return"),
    ("05-residual-backward", "two values",
     lambda dout, x, W, b, s: residual_backward(dout, x, W, b, s)[:2], "3 values"),
    ("05-residual-backward", "not attempted", _raise, "not attempted"),
    ("05-residual-backward", "old block, no s", lambda dout, x, W, b: None, "TypeError"),
    ("05-residual-backward", "raises", lambda dout, x, W, b, s: x @ W.T[:1], "shapes"),

    ("05-end-to-end-jacobian", "reversed product", _jac_variant("reverse"),
     "reverse order"),
    ("05-end-to-end-jacobian", "identity forgotten", _jac_variant("no identity"),
     "identity is forgotten"),
    ("05-end-to-end-jacobian", "I + ΣJ", _jac_variant("sum"), "sum of the J's"),
    ("05-end-to-end-jacobian", "elementwise", _jac_variant("elementwise"), "elementwise"),
    ("05-end-to-end-jacobian", "transposed", _jac_variant("transpose"), "Mᵀ"),
    ("05-end-to-end-jacobian", "identity once", _jac_variant("identity once"),
     "added once"),
    ("05-end-to-end-jacobian", "D from J_1", _jac_variant("first J"), "L = 0"),
    ("05-end-to-end-jacobian", "zeros for L = 0", _jac_variant("zeros for L=0"),
     "identity, not zero"),
    ("05-end-to-end-jacobian", "number for L = 0", _jac_variant("number for L=0"),
     "not a number"),
    ("05-end-to-end-jacobian", "reduce without start",
     _jac_variant("reduce without start"), "initial value"),
    ("05-end-to-end-jacobian", "in place", _jac_variant("in place"), "in place"),
    ("05-end-to-end-jacobian", "hard-coded", lambda Js, r: np.eye(3), "wrong"),
    ("05-end-to-end-jacobian", "returns None", lambda Js, r: None, "return"),
    ("05-end-to-end-jacobian", "not attempted", _raise, "not attempted"),

    ("05-residual-block", "no identity", _block_variant("no identity"),
     "identity is missing"),
    ("05-residual-block", "relu after the sum", _block_variant("relu after sum"),
     "after the sum"),
    ("05-residual-block", "post-activation", _block_variant("post-activation"),
     "pre-activation"),
    ("05-residual-block", "two Linear layers", _block_variant("two linears"),
     "two Linear layers"),
    ("05-residual-block", "skip from relu(x)", _block_variant("skip from relu"),
     "wrong thing"),
    ("05-residual-block", "no relu", _block_variant("no relu"), "ReLU is missing"),
    ("05-residual-block", "xavier init", _block_variant("xavier"), "He initialisation"),
    ("05-residual-block", "rng ignored", _block_variant("rng ignored"), "rng"),
    ("05-residual-block", "fixed seed", _block_variant("fixed seed"), "rng"),
    ("05-residual-block", "no bias", _block_variant("no bias"), "bias is missing"),
    ("05-residual-block", "numpy forward", _block_variant("numpy"), "not a Tensor"),
    ("05-residual-block", "detached output", _block_variant("detached"),
     "not connected"),
    ("05-residual-block", "array input breaks", _block_variant("array input breaks"),
     "numpy array"),
    ("05-residual-block", "modifies x", _block_variant("in place"), "in place"),
    ("05-residual-block", "Linear made in forward", _block_variant("linear in forward"),
     "parameters() is empty"),
    ("05-residual-block", "an instance", ResidualBlock(3, rng=0), "not the class"),
    ("05-residual-block", "not a Module", _NotAModule, "nn.Module"),
    ("05-residual-block", "hard-coded", lambda width, rng=None: ResidualBlock(4, rng=0),
     "should be a class"),
    ("05-residual-block", "None", None, "is None"),
    ("05-residual-block", "__init__ raises", _InitRaises, "raised ValueError"),
    ("05-residual-block", "forward raises", _ForwardRaises, "raised"),
    ("05-residual-block", "not attempted", _NotAttempted, "not attempted"),
]


@pytest.mark.parametrize("exercise_id, label, answer, needle", WRONG,
                         ids=[f"{w[0]}:{w[1]}" for w in WRONG])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_variant_fails_with_hint(exercise_id, label, answer, needle, seed):
    assert_caught(run_check(exercise_id, answer, seed=seed), label, needle)


def test_every_exercise_has_wrong_variants():
    assert {w[0] for w in WRONG} == set(REFERENCE)


def test_reversed_product_is_caught_on_every_seed():
    """The J's drawn by the check never commute, so a reversed product always fails."""
    for seed in range(30):
        verdict = run_check("05-end-to-end-jacobian", _jac_variant("reverse"), seed=seed)
        assert not verdict.passed and "reverse order" in verdict.render()

"""Lesson 02 checks: the reference answers pass, the usual mistakes fail
with the hint that names them."""
from __future__ import annotations

import math

import numpy as np
import pytest

from backprop_course import Value
from backprop_course.exercises import registry
from backprop_course.exercises import run_check
from verdicts import assert_caught

IDS = ["02-mul-backward", "02-tanh-backward", "02-exp-backward",
       "02-topological-order", "02-backward-sweep"]


def run(exercise_id, answer, seed=0):
    """None on a pass, else the failed Verdict (what the learner would see)."""
    verdict = run_check(exercise_id, answer, seed=seed)
    return None if verdict.passed else verdict


def fails_with(exercise_id, answer, *needles, seeds=(0, 1, 2)):
    """Caught: the verdict failed because of the answer (not a crash of the
    check itself) and names the mistake (every needle, any case)."""
    for seed in seeds:
        verdict = run_check(exercise_id, answer, seed=seed)
        for needle in needles:
            assert_caught(verdict, f"{exercise_id} (seed {seed})", needle)


# ------------------------------------------------------------ local backwards
def make_mul(body):
    def mul(a, b):
        out = Value(a.data * b.data, (a, b), "*")

        def _backward(grad):
            body(a, b, grad)
        out._backward = _backward
        return out
    return mul


def make_unary(forward, op, body):
    def f(x):
        y = forward(x.data)
        out = Value(y, (x,), op)

        def _backward(grad):
            body(x, y, grad)
        out._backward = _backward
        return out
    return f


def _mul_ok(a, b, g):
    a.grad += b.data * g
    b.grad += a.data * g


def _mul_overwrite(a, b, g):
    a.grad = b.data * g
    b.grad = a.data * g


def _mul_no_swap(a, b, g):
    a.grad += a.data * g
    b.grad += b.data * g


def _mul_no_upstream(a, b, g):
    a.grad += b.data
    b.grad += a.data


def _mul_sign(a, b, g):
    a.grad -= b.data * g
    b.grad -= a.data * g


def _mul_no_local(a, b, g):
    a.grad += g
    b.grad += g


def _mul_only_a(a, b, g):
    a.grad += b.data * g


def _mul_nie(a, b, g):
    raise NotImplementedError("Exercise 02-mul-backward: your code here")


def test_mul_reference_passes():
    for seed in range(5):
        assert run("02-mul-backward", make_mul(_mul_ok), seed) is None


@pytest.mark.parametrize("body, needle", [
    (_mul_overwrite, "overwriting instead of accumulating"),
    (_mul_no_swap, "multiply swaps"),
    (_mul_no_upstream, "chain-rule factor is missing"),
    (_mul_sign, "sign error"),
    (_mul_only_a, "nothing was added"),
    (_mul_no_local, "passed `grad` on unchanged"),
    (_mul_nie, "not attempted yet"),
])
def test_mul_mistakes_fail_with_hint(body, needle):
    fails_with("02-mul-backward", make_mul(body), needle)


def test_mul_not_attempted_kind():
    assert run("02-mul-backward", make_mul(_mul_nie)).kind == "not_attempted"


def test_mul_overwrite_caught_on_x_times_x_alone():
    # overwrite that happens to keep earlier gradients at zero: only x*x shows it
    calls = {"n": 0}

    def body(a, b, g):
        if a is b:
            a.grad = b.data * g       # overwrites: x*x gets half
            b.grad = a.data * g
        else:
            _mul_ok(a, b, g)
    fails_with("02-mul-backward", make_mul(body), "x * x")


def test_mul_wrong_forward_and_none():
    def bad_forward(a, b):
        out = make_mul(_mul_ok)(a, b)
        out.data = a.data + b.data
        return out
    fails_with("02-mul-backward", bad_forward, "expected")
    fails_with("02-mul-backward", lambda a, b: None, "returned None")
    fails_with("02-mul-backward", lambda a, b: a.data * b.data, "should return a Value")


def test_mul_hard_coded_constant_fails():
    fails_with("02-mul-backward", make_mul(lambda a, b, g: (
        setattr(a, "grad", a.grad + 2.0), setattr(b, "grad", b.grad + 3.0))), "expected")


def _tanh(body):
    return make_unary(math.tanh, "tanh", body)


def _exp(body):
    return make_unary(math.exp, "exp", body)


def test_tanh_reference_passes():
    def ok(x, t, g):
        x.grad += (1 - t ** 2) * g
    for seed in range(5):
        assert run("02-tanh-backward", _tanh(ok), seed) is None


@pytest.mark.parametrize("body, needle", [
    (lambda x, t, g: setattr(x, "grad", (1 - t * t) * g), "overwriting instead of accumulating"),
    (lambda x, t, g: setattr(x, "grad", x.grad + (1 - x.data ** 2) * g), "used the input x"),
    (lambda x, t, g: setattr(x, "grad", x.grad + (1 - t) * g), "t squared"),
    (lambda x, t, g: setattr(x, "grad", x.grad + t * g), "not its own derivative"),
    (lambda x, t, g: setattr(x, "grad", x.grad + (1 - t * t)), "chain-rule factor is missing"),
    (lambda x, t, g: setattr(x, "grad", x.grad - (1 - t * t) * g), "sign error"),
    (lambda x, t, g: None, "nothing was added"),
    (lambda x, t, g: setattr(x, "grad", x.grad + g), "passed `grad` on unchanged"),
])
def test_tanh_mistakes_fail_with_hint(body, needle):
    fails_with("02-tanh-backward", _tanh(body), needle)


def test_exp_reference_passes():
    def ok(x, e, g):
        x.grad += e * g
    for seed in range(5):
        assert run("02-exp-backward", _exp(ok), seed) is None


@pytest.mark.parametrize("body, needle", [
    (lambda x, e, g: setattr(x, "grad", e * g), "overwriting instead of accumulating"),
    (lambda x, e, g: setattr(x, "grad", x.grad + x.data * g), "not x"),
    (lambda x, e, g: setattr(x, "grad", x.grad + e), "chain-rule factor is missing"),
    (lambda x, e, g: setattr(x, "grad", x.grad - e * g), "sign error"),
    (lambda x, e, g: setattr(x, "grad", x.grad + g), "passed `grad` on unchanged"),
])
def test_exp_mistakes_fail_with_hint(body, needle):
    fails_with("02-exp-backward", _exp(body), needle)


def test_exp_cached_output_closure_is_needed_not_recomputed():
    # recomputing e^x in backward is slower but correct: it must pass
    def recompute(x, e, g):
        x.grad += math.exp(x.data) * g
    assert run("02-exp-backward", _exp(recompute)) is None


# ------------------------------------------------------- topological order
def topo_ok(root):
    order, seen = [], set()

    def visit(v):
        if v not in seen:
            seen.add(v)
            for child in v._prev:
                visit(child)
            order.append(v)
    visit(root)
    return order


def topo_iterative(root):
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        v, done = stack.pop()
        if done:
            order.append(v)
        elif v not in seen:
            seen.add(v)
            stack.append((v, True))
            stack.extend((c, False) for c in v._prev)
    return order


def topo_no_visited(root):
    order = []

    def visit(v):
        for child in v._prev:
            visit(child)
        order.append(v)
    visit(root)
    return order


def topo_preorder(root):
    order, seen = [], set()

    def visit(v):
        if v not in seen:
            seen.add(v)
            order.append(v)
            for child in v._prev:
                visit(child)
    visit(root)
    return order


def topo_reversed(root):
    return topo_ok(root)[::-1]


def topo_no_root(root):
    return topo_ok(root)[:-1]


def topo_leaves_only(root):
    return [v for v in topo_ok(root) if not v._prev]


def topo_engine(root):
    return root.topological_order()


def test_topo_reference_passes():
    for seed in range(5):
        assert run("02-topological-order", topo_ok, seed) is None
        assert run("02-topological-order", topo_iterative, seed) is None


def test_topo_any_valid_order_passes():
    def bfs_then_sort(root):        # Kahn-style: a different but valid order
        order = topo_ok(root)
        depth = {}
        for v in order:
            depth[v] = 1 + max((depth[c] for c in v._prev), default=-1)
        return sorted(order, key=lambda v: depth[v])
    assert run("02-topological-order", bfs_then_sort) is None


@pytest.mark.parametrize("answer, needle", [
    (topo_no_visited, "appears twice"),
    (topo_preorder, "comes before its input"),
    (topo_reversed, "exactly reversed"),
    (topo_no_root, "the root itself"),
    (topo_leaves_only, "missing"),
    (topo_engine, "this exercise is to write it"),
    (lambda root: None, "returned None"),
    (lambda root: [v.data for v in topo_ok(root)], "Value nodes themselves"),
])
def test_topo_mistakes_fail_with_hint(answer, needle):
    fails_with("02-topological-order", answer, needle)


def test_topo_block_is_undone():
    run("02-topological-order", topo_engine)
    x = Value(1.0)
    assert len((x * x).topological_order()) == 2


# ---------------------------------------------------------- backward sweep
def sweep_ok(root):
    root.grad = 1.0
    for node in reversed(topo_ok(root)):
        node._backward(node.grad)


def sweep_not_reversed(root):
    root.grad = 1.0
    for node in topo_ok(root):
        node._backward(node.grad)


def sweep_seed_zero(root):
    root.grad = 0.0
    for node in reversed(topo_ok(root)):
        node._backward(node.grad)


def sweep_seed_minus_one(root):
    root.grad = -1.0
    for node in reversed(topo_ok(root)):
        node._backward(node.grad)


def sweep_root_only(root):
    root.grad = 1.0
    root._backward(root.grad)


def sweep_grad_one_everywhere(root):
    root.grad = 1.0
    for node in reversed(topo_ok(root)):
        node._backward(1.0)


def sweep_engine(root):
    root.backward()


def test_sweep_reference_passes():
    for seed in range(5):
        assert run("02-backward-sweep", sweep_ok, seed) is None


@pytest.mark.parametrize("answer, needle", [
    (sweep_not_reversed, "reversed(order)"),
    (sweep_not_reversed, "only the root passed"),
    (sweep_seed_zero, "seed the root"),
    (sweep_seed_minus_one, "sign error"),
    (sweep_root_only, "only the root passed"),
    (sweep_grad_one_everywhere, "its OWN gradient"),
    (sweep_engine, "this exercise is to write the sweep"),
    (lambda root: (_ for _ in ()).throw(NotImplementedError("x")), "not attempted yet"),
])
def test_sweep_mistakes_fail_with_hint(answer, needle):
    fails_with("02-backward-sweep", answer, needle)


def test_sweep_block_is_undone():
    run("02-backward-sweep", sweep_engine)
    x = Value(3.0)
    (x * x).backward()
    assert x.grad == 6.0


def test_all_ids_registered_for_the_notebook():
    found = [e.id for e in registry.all_exercises("02_circuits")]
    assert found == sorted(IDS)
    for e in registry.all_exercises("02_circuits"):
        assert 2 <= len(e.hints) <= 4


# ------------------------- 02-backward-sweep judges the sweep only (issue 10)
SWEEP_SRC = '''
def backward(root):
    root.grad = 1.0
    for node in reversed(topo_order(root)):
        node._backward(node.grad)
'''
UNREVERSED_SRC = SWEEP_SRC.replace("reversed(topo_order(root))", "topo_order(root)")


def _topo_stub(root):
    raise NotImplementedError("Exercise 02-topological-order: replace this line")


def _with_topo(src, topo):
    """A learner's backward defined in a namespace whose topo_order is ``topo``."""
    space = {"topo_order": topo}
    exec(src, space)
    return space["backward"], space


@pytest.mark.parametrize("topo, state", [(_topo_stub, "not written yet"),
                                         (topo_preorder, "does not pass"),
                                         (topo_no_visited, "does not pass")])
def test_sweep_with_unfinished_topo_is_judged_with_the_reference(topo, state):
    backward, space = _with_topo(SWEEP_SRC, topo)
    for seed in (0, 1, 2):
        verdict = run_check("02-backward-sweep", backward, seed=seed)
        assert verdict.passed, verdict.render()
        assert state in verdict.message and "reference topo_order" in verdict.message
        assert space["topo_order"] is topo          # the learner's function is back


def test_sweep_with_finished_topo_says_nothing_extra():
    backward, _ = _with_topo(SWEEP_SRC, topo_ok)
    verdict = run_check("02-backward-sweep", backward, seed=0)
    assert verdict.passed and "reference" not in verdict.message


def test_wrong_sweep_with_stub_topo_is_caught_and_says_so():
    backward, _ = _with_topo(UNREVERSED_SRC, _topo_stub)
    verdict = run_check("02-backward-sweep", backward, seed=0)
    assert_caught(verdict, "unreversed sweep, stub topo", "reversed(order)")
    assert_caught(verdict, "unreversed sweep, stub topo", "reference topo_order")

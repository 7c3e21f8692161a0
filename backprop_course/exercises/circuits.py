"""Checks for lesson 02, circuits and computational graphs.

Five exercises, each on fresh random inputs:

``02-mul-backward``, ``02-tanh-backward``, ``02-exp-backward``
    The learner writes ``mul(a, b)``, ``tanh(x)``, ``exp(x)``: each returns a
    new :class:`~backprop_course.Value` whose ``_backward(grad)`` ADDS
    ``grad * (local derivative)`` to the inputs' ``.grad``. The checks call
    ``_backward`` on inputs that already hold a gradient, so a version that
    overwrites (``=``) instead of accumulating (``+=``) fails, and on ``x * x``,
    where both factors are the same node.
``02-topological-order``
    ``topo_order(root)``: every node ``root`` depends on, once, each after its
    inputs. Any valid order is accepted; duplicates, missing nodes and a node
    before its input are rejected, on random graphs with diamonds and reuse.
``02-backward-sweep``
    ``backward(root)``: seed ``root.grad = 1``, then call each node's
    ``_backward(node.grad)`` in reverse topological order. Compared node by
    node with :meth:`Value.backward` on copies of the same random graphs.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import CheckFailure
from backprop_course.exercises.registry import exercise
from backprop_course.scalar import Value

NOTEBOOK = "02_circuits"

ACCUMULATE_HINT = (
    "overwriting instead of accumulating: write `a.grad += ...`, not `a.grad = ...`; "
    "a node used in several places must receive the SUM of the gradients along "
    "every path (and x * x passes through the same node twice)")
UPSTREAM_HINT = (
    "a chain-rule factor is missing: multiply the local derivative by the upstream "
    "gradient `grad` (dL/d out), e.g. `a.grad += b.data * grad`")


# ------------------------------------------------------------------ helpers
def _call(fn: Callable, *args: Any, name: str) -> Any:
    """Call learner code with the framework's guard (time limit, exceptions)."""
    return expect.call(fn, *args, name=name, allow_none=True, mutable=True)


def _close(got: float, want: float, rtol: float = 1e-9, atol: float = 1e-12) -> bool:
    """expect.near with the tight tolerances scalar gradients allow."""
    return expect.near(got, want, rtol=rtol, atol=atol)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _name(node: Value) -> str:
    """A short description of a node for messages."""
    if node.label and node._op:
        return f"'{node.label}' (a {node._op} node)"
    if node.label:
        return f"'{node.label}'"
    if node._op:
        return f"the {node._op} node (data {_fmt(node.data)})"
    return f"the leaf with data {_fmt(node.data)}"


def _check_callable(answer: Any, what: str) -> None:
    if not callable(answer):
        raise CheckFailure(f"expected a function {what}, got {type(answer).__name__}",
                           hint=f"pass the function itself: check(..., {what.split('(')[0]})",
                           kind="type")


def _new_node(answer: Callable, inputs: Sequence[Value], name: str,
              want_data: float) -> Value:
    """Run the learner's op, and check the node it returns (before any backward)."""
    out = _call(answer, *inputs, name=name)
    if out is None:
        raise CheckFailure(f"{name} returned None", kind="none",
                           hint="end the function with `return out`")
    if not isinstance(out, Value):
        raise CheckFailure(f"{name} should return a Value, got {type(out).__name__}",
                           kind="type", hint="return the new node `out`, a Value")
    if not _close(out.data, want_data, rtol=1e-12):
        raise CheckFailure(f"{name}.data is {_fmt(out.data)}, expected {_fmt(want_data)}",
                           hint="the forward value was given: keep the line `out = Value(...)`")
    if {id(p) for p in out._prev} != {id(v) for v in inputs}:
        raise CheckFailure(f"{name}._prev should hold the inputs of the operation",
                           hint="create the node as `Value(data, (inputs...), op)`")
    if not callable(getattr(out, "_backward", None)):
        raise CheckFailure(f"{name}._backward is not a function",
                           hint="define `_backward(grad)` and set `out._backward = _backward`")
    return out


def _run_backward(out: Value, grad: float, name: str) -> None:
    _call(out._backward, grad, name=f"{name}._backward({_fmt(grad)})")


def _diagnose(got_change: float, want_change: float, grad: float,
              wrong: dict[str, float]) -> str | None:
    """Match the change a backward made to a known mistake; return its hint."""
    if _close(got_change, 0.0, atol=1e-15) and not _close(want_change, 0.0):
        return ("nothing was added to this gradient: `_backward` must add "
                "grad * (local derivative) to the input's .grad")
    if not _close(got_change, 0.0) and _close(got_change, -want_change):
        return "sign error: the gradient has the wrong sign"
    for hint, value in wrong.items():
        if _close(got_change, value, rtol=1e-7):
            return hint
    return None


def _check_local(answer: Callable, rng: np.random.Generator, *, arity: int,
                 forward: Callable[..., float],
                 partials: Callable[..., tuple[float, ...]],
                 wrong: Callable[..., dict[str, tuple[float, ...]]],
                 label: str, sample: Callable[[np.random.Generator], float]) -> str:
    """Shared check for a local backward: value, accumulation, x op x, upstream grad.

    ``partials(*xs)`` are the local derivatives; ``wrong(*xs, g=grad)`` maps a
    hint to the changes a known mistake would add to each input's grad.
    """
    names = ["a", "b"][:arity] if arity == 2 else ["x"]
    for trial in range(4):
        xs = [sample(rng) for _ in range(arity)]
        inputs = [Value(x, label=n) for x, n in zip(xs, names)]
        call = f"{label}({', '.join(f'{n}={_fmt(x)}' for n, x in zip(names, xs))})"
        out = _new_node(answer, inputs, call, forward(*xs))
        # earlier gradients already sitting in the inputs must be kept
        before = [float(rng.uniform(0.5, 2.0) * rng.choice([-1, 1])) for _ in xs]
        if trial == 0:
            before = [0.0] * arity          # the plain case first: clearer message
        for v, g0 in zip(inputs, before):
            v.grad = g0
        g = float(rng.uniform(0.5, 2.0) * rng.choice([-1, 1]))
        _run_backward(out, g, "out")
        want = partials(*xs)
        mistakes = wrong(*xs, g=g)
        for i, (v, g0) in enumerate(zip(inputs, before)):
            expected = g0 + g * want[i]
            if _close(v.grad, expected):
                continue
            change = v.grad - g0
            setup = (f"out = {call}; {names[i]}.grad was {_fmt(g0)} before; "
                     f"out._backward(grad={_fmt(g)})")
            msg = (f"{names[i]}.grad is {_fmt(v.grad)}, expected {_fmt(expected)}\n"
                   f"({setup})")
            hint = None
            if g0 != 0.0 and _close(v.grad, g * want[i]):
                hint = ACCUMULATE_HINT
            elif _close(change, want[i]) and not _close(g, 1.0):
                hint = UPSTREAM_HINT
            elif _close(change, g) and not _close(want[i], 1.0):
                hint = ("a chain-rule factor is missing: you passed `grad` on unchanged "
                        "(the add gate's rule); multiply it by this gate's local "
                        "derivative")
            else:
                hint = _diagnose(change, g * want[i], g,
                                 {h: vals[i] for h, vals in mistakes.items()})
            raise CheckFailure(msg, hint=hint)
        if out.grad != 0.0:
            raise CheckFailure(
                f"out._backward changed out.grad to {_fmt(out.grad)}",
                hint="`_backward` reads `grad` and only adds to the inputs' .grad")
    return "value, local derivative, upstream factor, accumulation"


def _check_reuse(answer: Callable, rng: np.random.Generator, label: str,
                 partial_sum: Callable[[float], float], arity: int) -> None:
    """One node fed twice (x * x) or an op applied twice to the same input."""
    x = float(rng.uniform(0.4, 1.2) * rng.choice([-1, 1]))
    v = Value(x, label="x")
    g = float(rng.uniform(0.5, 2.0))
    if arity == 2:
        out = _new_node(answer, [v, v], f"{label}(x, x) with x={_fmt(x)}", x * x)
        _run_backward(out, g, "out")
        want = g * partial_sum(x)
        if not _close(v.grad, want):
            hint = ACCUMULATE_HINT if _close(v.grad, want / 2) else None
            raise CheckFailure(
                f"out = {label}(x, x) with x={_fmt(x)}: after out._backward({_fmt(g)}), "
                f"x.grad is {_fmt(v.grad)}, expected {_fmt(want)} (= 2 x grad)",
                hint=hint)
    else:
        out1 = _new_node(answer, [v], f"{label}(x) with x={_fmt(x)}", _FORWARD[label](x))
        out2 = _new_node(answer, [v], f"{label}(x) again", _FORWARD[label](x))
        _run_backward(out1, g, "out1")
        _run_backward(out2, g, "out2")
        want = 2 * g * partial_sum(x)
        if not _close(v.grad, want):
            hint = ACCUMULATE_HINT if _close(v.grad, want / 2) else None
            raise CheckFailure(
                f"x used by two {label} nodes (x={_fmt(x)}): after both backward "
                f"calls with grad {_fmt(g)}, x.grad is {_fmt(v.grad)}, "
                f"expected {_fmt(want)}", hint=hint)


def _check_in_graph(build: Callable[[Value, Value], Value], x0: float, y0: float,
                    description: str) -> None:
    """The learner's op inside a bigger graph, run by the engine's backward,
    against central differences of the forward value."""
    x, y = Value(x0, label="x"), Value(y0, label="y")
    f = _call(build, x, y, name=description)
    _call(f.backward, name=f"{description}.backward()")

    def value(a: float, b: float) -> float:
        return _call(build, Value(a), Value(b), name=description).data

    h = 1e-6
    for v, name, bump in ((x, "x", (h, 0.0)), (y, "y", (0.0, h))):
        num = (value(x0 + bump[0], y0 + bump[1]) - value(x0 - bump[0], y0 - bump[1])) / (2 * h)
        if not _close(v.grad, num, rtol=1e-5, atol=1e-7):
            raise CheckFailure(
                f"in the graph f = {description} at x={_fmt(x0)}, y={_fmt(y0)}: "
                f"backward gives df/d{name} = {_fmt(v.grad)}, finite differences "
                f"give {_fmt(num)}", hint=ACCUMULATE_HINT if v is x else None)


_FORWARD: dict[str, Callable[[float], float]] = {"tanh": math.tanh, "exp": math.exp}


# ------------------------------------------------------------- 02-mul-backward
@exercise(
    "02-mul-backward",
    title="The local backward of multiply",
    notebook=NOTEBOOK,
    answer="mul",
    hints=[
        "out = a * b. The local derivatives are d out/da = b and d out/db = a: "
        "multiply swaps its inputs.",
        "Chain rule: dL/da = dL/dout * dout/da = grad * b.data. Add it to a.grad "
        "with += (a may feed other nodes too).",
        "The two lines: `a.grad += b.data * grad` and `b.grad += a.data * grad`.",
    ],
)
def _check_mul(answer: Any, rng: np.random.Generator) -> str:
    _check_callable(answer, "mul(a, b)")

    def wrong(a: float, b: float, g: float) -> dict[str, tuple[float, ...]]:
        return {
            "multiply swaps: a's gradient is b * grad, and b's is a * grad "
            "(you used each input's own value)": (g * a, g * b),
            "a chain-rule factor is missing: multiply by the upstream gradient `grad`":
                (b, a),
        }

    _check_local(answer, rng, arity=2, forward=lambda a, b: a * b,
                 partials=lambda a, b: (b, a), wrong=wrong, label="mul",
                 sample=lambda r: float(r.uniform(0.3, 3.0) * r.choice([-1, 1])))
    _check_reuse(answer, rng, "mul", lambda x: 2 * x, arity=2)
    x0, y0 = (float(rng.uniform(-1.5, 1.5)) for _ in range(2))
    _check_in_graph(lambda x, y: answer(answer(x, y) + x, x), x0, y0,
                    "mul(mul(x, y) + x, x)")
    return "forward value, both gradients, += accumulation, x*x, inside a graph"


# ------------------------------------------------------------ 02-tanh-backward
@exercise(
    "02-tanh-backward",
    title="The local backward of tanh",
    notebook=NOTEBOOK,
    answer="tanh",
    hints=[
        "d tanh(x)/dx = 1 - tanh(x)². The forward pass already computed t = tanh(x): "
        "reuse it (that is what caching is for).",
        "Chain rule: x.grad += (local derivative) * grad, with += so earlier "
        "gradients are kept.",
        "The line: `x.grad += (1 - t ** 2) * grad`.",
    ],
)
def _check_tanh(answer: Any, rng: np.random.Generator) -> str:
    _check_callable(answer, "tanh(x)")

    def wrong(x: float, g: float) -> dict[str, tuple[float, ...]]:
        t = math.tanh(x)
        return {
            "the derivative is 1 - tanh(x)², with t = tanh(x) the OUTPUT; "
            "you used the input x instead of t": (g * (1 - x * x),),
            "the derivative is 1 - t² (t squared), not 1 - t": (g * (1 - t),),
            "tanh is not its own derivative: d tanh(x)/dx = 1 - t²": (g * t,),
            UPSTREAM_HINT: (1 - t * t,),
        }

    _check_local(answer, rng, arity=1, forward=math.tanh,
                 partials=lambda x: (1 - math.tanh(x) ** 2,), wrong=wrong, label="tanh",
                 sample=lambda r: float(r.uniform(0.2, 1.8) * r.choice([-1, 1])))
    _check_reuse(answer, rng, "tanh", lambda x: 1 - math.tanh(x) ** 2, arity=1)
    x0, y0 = float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))
    _check_in_graph(lambda x, y: answer(x * y + x) * x, x0, y0, "tanh(x*y + x) * x")
    return "forward value, 1 - t², upstream factor, += accumulation, inside a graph"


# ------------------------------------------------------------- 02-exp-backward
@exercise(
    "02-exp-backward",
    title="The local backward of exp",
    notebook=NOTEBOOK,
    answer="exp",
    hints=[
        "d e^x/dx = e^x: the derivative of exp is its own output, which the forward "
        "pass already computed.",
        "Chain rule: x.grad += (local derivative) * grad, with += so earlier "
        "gradients are kept.",
        "The line: `x.grad += e * grad` (e = math.exp(x.data) from the forward pass).",
    ],
)
def _check_exp(answer: Any, rng: np.random.Generator) -> str:
    _check_callable(answer, "exp(x)")

    def wrong(x: float, g: float) -> dict[str, tuple[float, ...]]:
        e = math.exp(x)
        return {
            "d e^x/dx = e^x (the output), not x": (g * x,),
            "that is the power rule: for e^x the derivative is e^x itself":
                (g * x * math.exp(x - 1),),
            UPSTREAM_HINT: (e,),
        }

    _check_local(answer, rng, arity=1, forward=math.exp,
                 partials=lambda x: (math.exp(x),), wrong=wrong, label="exp",
                 sample=lambda r: float(r.uniform(-2.0, 2.0)))
    _check_reuse(answer, rng, "exp", math.exp, arity=1)
    x0, y0 = float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))
    _check_in_graph(lambda x, y: answer(x * y) + answer(x), x0, y0, "exp(x*y) + exp(x)")
    return "forward value, e^x, upstream factor, += accumulation, inside a graph"


# ------------------------------------------------------------- random graphs
#: A recipe is a list of steps; step k makes node k. ("leaf", value, label)
#: or (op, i, j): op applied to nodes i (and j). Building a recipe twice gives
#: two identical graphs, one for the engine and one for the learner.
Recipe = list[tuple]


def _build(recipe: Recipe) -> list[Value]:
    nodes: list[Value] = []
    for step in recipe:
        kind = step[0]
        if kind == "leaf":
            nodes.append(Value(step[1], label=step[2]))
            continue
        a = nodes[step[1]]
        b = nodes[step[2]] if len(step) > 2 else None
        if kind == "+":
            out = a + b
        elif kind == "*":
            out = a * b
        elif kind == "tanh":
            out = a.tanh()
        elif kind == "sigmoid":
            out = a.sigmoid()
        elif kind == "exp":
            out = a.exp()
        elif kind == "relu":
            out = a.relu()
        else:  # pragma: no cover - recipes are made below
            raise ValueError(kind)
        out.label = f"n{len(nodes)}"
        nodes.append(out)
    return nodes


def _circuit_recipe() -> Recipe:
    """The lesson's circuit: f = (x + y) * z."""
    return [("leaf", -2.0, "x"), ("leaf", 5.0, "y"), ("leaf", -4.0, "z"),
            ("+", 0, 1), ("*", 3, 2)]


def _fixed_recipes() -> list[tuple[str, Recipe]]:
    return [
        ("a single leaf", [("leaf", 1.5, "x")]),
        ("x * x", [("leaf", 0.7, "x"), ("*", 0, 0)]),
        ("the circuit (x + y) * z", _circuit_recipe()),
        ("a diamond: b = tanh(a), c = exp(a), d = b * c",
         [("leaf", 0.3, "a"), ("tanh", 0), ("exp", 0), ("*", 1, 2)]),
        ("a node used twice: q = x * y, f = q * q + q",
         [("leaf", 0.8, "x"), ("leaf", -1.1, "y"), ("*", 0, 1), ("*", 2, 2),
          ("+", 3, 2)]),
    ]


def _random_recipe(rng: np.random.Generator, n_leaves: int, n_ops: int) -> Recipe:
    """A random expression graph with shared subexpressions (diamonds, reuse).

    Operands are drawn mostly from recent nodes, so the graph is deep and most
    nodes reach the root; exp only gets small inputs, so nothing overflows.
    """
    recipe: Recipe = [("leaf", float(np.round(rng.uniform(-1.5, 1.5), 3)), f"x{i}")
                      for i in range(n_leaves)]
    values = [s[1] for s in recipe]
    for _ in range(n_ops):
        n = len(recipe)
        pick = lambda: int(n - 1 - min(n - 1, rng.geometric(0.35) - 1))  # noqa: E731
        op = str(rng.choice(["+", "*", "*", "tanh", "sigmoid", "exp", "relu"]))
        i = pick()
        if op in ("+", "*"):
            j = i if rng.random() < 0.15 else pick()
            recipe.append((op, i, j))
            v = values[i] + values[j] if op == "+" else values[i] * values[j]
        else:
            if op == "exp" and abs(values[i]) > 2:
                op = "tanh"
            recipe.append((op, i))
            v = {"tanh": math.tanh, "exp": math.exp, "relu": lambda t: max(t, 0.0),
                 "sigmoid": lambda t: 1 / (1 + math.exp(-t))}[op](values[i])
        if abs(v) > 1e3:          # keep values tame: squash this node
            recipe[-1] = ("tanh", i)
            v = math.tanh(values[i])
        values.append(v)
    # the root combines the last nodes so that most of the graph feeds it
    n = len(recipe)
    recipe.append(("+", n - 1, n - 2))
    return recipe


def _reachable(root: Value) -> dict[int, Value]:
    seen: dict[int, Value] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(node._prev)
    return seen


def _graph_cases(rng: np.random.Generator) -> list[tuple[str, Recipe]]:
    cases = _fixed_recipes()
    for k in range(6):
        cases.append((f"a random graph ({k + 1})",
                      _random_recipe(rng, n_leaves=int(rng.integers(1, 5)),
                                     n_ops=int(rng.integers(4, 25)))))
    chain: Recipe = [("leaf", 0.5, "x")] + [("tanh", k) for k in range(300)]
    cases.append(("a chain of 300 tanh nodes", chain))
    return cases


class _Blocked:
    """Temporarily replace Value methods, so a check sees the learner's own work."""

    def __init__(self, **methods: Callable) -> None:
        self.methods = methods
        self.saved: dict[str, Any] = {}

    def __enter__(self) -> "_Blocked":
        for name, fn in self.methods.items():
            self.saved[name] = Value.__dict__[name]
            setattr(Value, name, fn)
        return self

    def __exit__(self, *exc: Any) -> None:
        for name, fn in self.saved.items():
            setattr(Value, name, fn)


def _no_engine_topo(self: Value) -> list[Value]:
    raise CheckFailure(
        "topo_order called root.topological_order(): this exercise is to write it",
        hint="walk the graph yourself: visit a node's inputs (node._prev) first, "
             "then append the node", kind="wrong")


def _no_engine_backward(self: Value) -> None:
    raise CheckFailure(
        "backward called root.backward(): this exercise is to write the sweep",
        hint="seed root.grad = 1.0, then call node._backward(node.grad) for each node "
             "in reversed(topo_order(root))", kind="wrong")


# ---------------------------------------------------------- 02-topological-order
def _validate_order(order: Any, root: Value, case: str) -> None:
    if order is None:
        raise CheckFailure(f"topo_order(root) returned None for {case}", kind="none",
                           hint="end the function with `return order`")
    if isinstance(order, (str, bytes)) or not hasattr(order, "__iter__"):
        raise CheckFailure(f"topo_order(root) should return a list of Values, got "
                           f"{type(order).__name__}", kind="type")
    order = list(order)
    for item in order:
        if not isinstance(item, Value):
            raise CheckFailure(
                f"topo_order(root) returned a list holding a {type(item).__name__} "
                f"({item!r:.60}); it should hold the Value nodes themselves", kind="type",
                hint="append the node, not node.data or node.label")
    graph = _reachable(root)
    position: dict[int, int] = {}
    for k, node in enumerate(order):
        if id(node) in position:
            raise CheckFailure(
                f"for {case}: {_name(node)} appears twice in the order "
                f"(positions {position[id(node)]} and {k})",
                hint="keep a set of visited nodes: a node reached along two paths "
                     "(a diamond, or x * x) must be added only once")
        position[id(node)] = k
    missing = [n for i, n in graph.items() if i not in position]
    if missing:
        node = missing[0]
        hint = ("the root itself belongs in the list too, last" if node is root else
                "every node the root depends on belongs in the list: follow node._prev "
                "all the way down to the leaves")
        raise CheckFailure(
            f"for {case}: {len(missing)} node(s) missing from the order, e.g. "
            f"{_name(node)}; expected all {len(graph)} nodes", hint=hint)
    extra = [n for n in order if id(n) not in graph]
    if extra:
        raise CheckFailure(
            f"for {case}: {_name(extra[0])} is in the order but the root does not "
            "depend on it", hint="only visit nodes reachable from root through _prev")
    backwards = 0
    first_bad = None
    for node in order:
        for child in node._prev:
            if position[id(child)] > position[id(node)]:
                backwards += 1
                first_bad = first_bad or (node, child)
    if first_bad is not None:
        node, child = first_bad
        edges = sum(len(n._prev) for n in order)
        reversed_all = backwards == edges
        hint = ("your list is exactly reversed: inputs must come FIRST, the root last "
                "(reverse it, or append a node after its inputs)") if reversed_all else (
                "append a node only after ALL of its inputs are in the list: visit the "
                "inputs first (post-order), then append the node")
        raise CheckFailure(
            f"for {case}: {_name(node)} (position {position[id(node)]}) comes before "
            f"its input {_name(child)} (position {position[id(child)]})", hint=hint)


@exercise(
    "02-topological-order",
    title="A topological order of the graph",
    notebook=NOTEBOOK,
    answer="topo_order",
    hints=[
        "Depth-first search from the root: before you append a node, make sure every "
        "node in node._prev has been appended.",
        "Keep a set of visited nodes, so a node reached along two paths (a diamond, or "
        "x * x) is appended once.",
        "Recursive version: `def visit(v): if v not in seen: seen.add(v); "
        "[visit(c) for c in v._prev]; order.append(v)`, then `visit(root)`.",
    ],
)
def _check_topo(answer: Any, rng: np.random.Generator) -> str:
    _check_callable(answer, "topo_order(root)")
    cases = _graph_cases(rng)
    with _Blocked(topological_order=_no_engine_topo):
        for case, recipe in cases:
            nodes = _build(recipe)
            root = nodes[-1]
            data_before = [n.data for n in nodes]
            order = _call(answer, root, name=f"topo_order(root) for {case}")
            _validate_order(order, root, case)
            if [n.data for n in nodes] != data_before:
                raise CheckFailure(f"topo_order changed a node's data for {case}",
                                   kind="mutation", hint="only read the graph")
    return f"{len(cases)} graphs: leaf, x*x, diamond, reuse, random, a 300-node chain"


# -------------------------------------------------------------- 02-backward-sweep
def _sweep(root: Value, *, reverse: bool = True, pass_one: bool = False) -> None:
    """The reference sweep, and two usual mistakes (reverse=False, pass_one)."""
    order = _reachable_order(root)
    root.grad = 1.0
    for node in (reversed(order) if reverse else order):
        node._backward(1.0 if pass_one else node.grad)


def _reachable_order(root: Value) -> list[Value]:
    from backprop_course.graph import topological_order
    return topological_order(root)


@exercise(
    "02-backward-sweep",
    title="The backward sweep",
    notebook=NOTEBOOK,
    answer="backward",
    hints=[
        "Two steps: seed the root with dL/dL = 1, then pass gradients from outputs to "
        "inputs, one node at a time.",
        "A node's gradient is complete only when every node that uses it has passed "
        "its share back: so visit nodes in REVERSE topological order.",
        "`root.grad = 1.0` then `for node in reversed(topo_order(root)): "
        "node._backward(node.grad)`.",
    ],
)
def _check_backward(answer: Any, rng: np.random.Generator) -> str:
    """Judge the sweep only: if the learner's own ``topo_order`` (which their
    ``backward`` calls) is unfinished or wrong, run their sweep with the
    reference order instead, and say so in the verdict."""
    _check_callable(answer, "backward(root)")
    with _reference_topo_if_needed(answer, rng) as note:
        try:
            summary = _check_sweep(answer, rng)
        except CheckFailure as failure:
            if note:
                failure.message += "\n" + note
            raise
    return summary + (f"; {note}" if note else "")


@contextlib.contextmanager
def _reference_topo_if_needed(answer: Any, rng: np.random.Generator) -> Iterator[str]:
    """Yield '' if ``answer`` does not use a ``topo_order`` of the learner's, or if
    that ``topo_order`` passes its own exercise; else swap in the reference for
    the duration of the block and yield a sentence that says so."""
    names = getattr(getattr(answer, "__code__", None), "co_names", ())
    space = getattr(answer, "__globals__", None)
    learner_topo = space.get("topo_order") if isinstance(space, dict) else None
    if "topo_order" not in names or not callable(learner_topo):
        yield ""
        return
    try:
        _check_topo(learner_topo, np.random.default_rng(rng.integers(2**32)))
    except CheckFailure as failure:
        state = ("is not written yet" if failure.kind == "not_attempted"
                 else "does not pass 02-topological-order yet")
    else:       # yield outside the try: a failure of the block is not the topo's
        yield ""
        return
    note = (f"(your topo_order {state}, so this check ran your backward with the "
            "reference topo_order: it judges the sweep only)")

    def reference_topo(root: Value) -> list[Value]:
        return _reachable_order(root)

    assert isinstance(space, dict)
    space["topo_order"] = reference_topo
    try:
        yield note
    finally:
        if space.get("topo_order") is reference_topo:
            space["topo_order"] = learner_topo


def _check_sweep(answer: Any, rng: np.random.Generator) -> str:
    cases = _graph_cases(rng)
    with _Blocked(backward=_no_engine_backward):
        for case, recipe in cases:
            ref = _build(recipe)
            _sweep(ref[-1])
            mine = _build(recipe)
            _call(answer, mine[-1], name=f"backward(root) for {case}")
            bad = [k for k, (r, m) in enumerate(zip(ref, mine))
                   if not _close(m.grad, r.grad, rtol=1e-9, atol=1e-12)]
            if not bad:
                continue
            k = bad[0]
            msg = (f"for {case}: {_name(mine[k])}.grad is {_fmt(mine[k].grad)}, "
                   f"expected {_fmt(ref[k].grad)} ({len(bad)} of {len(ref)} "
                   "gradients differ)")
            hint = None
            if all(_close(m.grad, -r.grad) for m, r in zip(mine, ref)):
                hint = ("sign error: every gradient has the wrong sign; the seed is "
                        "root.grad = +1.0")
            elif all(m.grad == 0.0 for m in mine):
                hint = ("every gradient is 0: seed the root first, root.grad = 1.0 "
                        "(dL/dL = 1); with a 0 seed, 0 flows everywhere")
            else:
                # Going through the order inputs-first is the same as calling only
                # root._backward: every other node runs before its gradient arrives.
                unreversed = _build(recipe)
                _sweep(unreversed[-1], reverse=False)
                if all(_close(m.grad, u.grad) for m, u in zip(mine, unreversed)):
                    hint = ("only the root passed its gradient on (to its direct inputs): "
                            "every node must call node._backward(node.grad) AFTER all "
                            "the nodes that use it, so go outputs first: "
                            "for node in reversed(order)")
                else:
                    ones = _build(recipe)
                    _sweep(ones[-1], pass_one=True)
                    if all(_close(m.grad, o.grad) for m, o in zip(mine, ones)):
                        hint = ("each node must pass on its OWN gradient: "
                                "node._backward(node.grad), not node._backward(1.0)")
            raise CheckFailure(msg, hint=hint)
    return f"{len(cases)} graphs vs Value.backward: x*x, diamond, reuse, random, a chain"

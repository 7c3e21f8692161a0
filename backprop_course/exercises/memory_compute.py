"""Checks for lesson 07, what backpropagation costs: memory and compute.

    checkpointed_backward(forward, backward, params, x, dout, k)
        -> (dx, dparams): the backward pass of a chain of layers that keeps only
           every k-th layer input in the forward pass and recomputes the rest
    activation_bytes(sizes, batch, activation)
        -> int: bytes of activations the graph of nn.MLP(sizes, activation)
           keeps for a float64 batch, by formula

The first check gives the learner's code its own ``forward`` and ``backward``
for a tanh layer, counts the forward calls and how many layer outputs are
alive at once, and compares the gradients with the engine's autograd. The
second compares the formula with :func:`backprop_course.memory.graph_memory`
on networks of random sizes. Both name the usual mistakes.
"""
from __future__ import annotations

import math
import weakref

import numpy as np

from backprop_course.exercises import expect
from backprop_course.exercises.feedback import CheckFailure
from backprop_course.exercises.registry import exercise

NOTEBOOK = "07_memory_and_compute"


def _near(a, b, rtol: float = 1e-8, atol: float = 1e-12) -> bool:
    return expect.near(a, b, rtol=rtol, atol=atol)


# ------------------------------------------------------------ 07-checkpointed-backward
class _Chain:
    """forward/backward of a tanh layer h -> tanh(h W + b), instrumented: counts
    forward calls and the most layer outputs alive at the same time."""

    def __init__(self) -> None:
        self.calls = 0
        self.alive: list[weakref.ref] = []
        self.peak_alive = 0

    def forward(self, h, p):
        W, b = p
        out = np.tanh(np.asarray(h) @ W + b)
        self.calls += 1
        self.alive = [r for r in self.alive if r() is not None]
        self.alive.append(weakref.ref(out))
        self.peak_alive = max(self.peak_alive, len(self.alive))
        return out

    @staticmethod
    def backward(dout, h, p):
        """(dL/dh, (dL/dW, dL/db)) for out = tanh(h W + b), from the layer's input h."""
        W, b = p
        h = np.asarray(h)
        out = np.tanh(h @ W + b)
        dz = np.asarray(dout) * (1 - out * out)
        return dz @ W.T, (h.T @ dz, dz.sum(axis=0))


def _plain_backward(params, x, dout):
    """Store every layer input, then go back: the reference without checkpoints."""
    inputs, h = [], x
    for p in params:
        inputs.append(h)
        h = np.tanh(h @ p[0] + p[1])
    g, grads = dout, [None] * len(params)
    for i in reversed(range(len(params))):
        g, grads[i] = _Chain.backward(g, inputs[i], params[i])
    return g, grads


def _engine_grads(params, x, dout):
    """The same chain on the engine's autograd."""
    from backprop_course import Tensor
    xt = Tensor(x.copy(), requires_grad=True)
    ts = [(Tensor(W.copy(), requires_grad=True), Tensor(b.copy(), requires_grad=True))
          for W, b in params]
    h = xt
    for W, b in ts:
        h = (h @ W + b).tanh()
    h.backward(dout)
    return xt.grad, [(W.grad, b.grad) for W, b in ts]


def _variant(params, x, dout, k, kind):
    """Gradients some usual mistakes give (same inputs), for the hints."""
    n = len(params)
    starts = list(range(0, n, k))
    outputs, h = [], x
    for p in params:
        h = np.tanh(h @ p[0] + p[1])
        outputs.append(h)
    inputs = [x] + outputs[:-1]
    g, grads = dout, [None] * n
    if kind == "restart":                      # each segment starts from dout again
        for s in reversed(starts):
            g = dout
            for i in reversed(range(s, min(s + k, n))):
                g, grads[i] = _Chain.backward(g, inputs[i], params[i])
        return g, grads
    if kind == "outputs":                      # backward fed the layer's output
        for i in reversed(range(n)):
            g, grads[i] = _Chain.backward(g, outputs[i], params[i])
        return g, grads
    if kind == "checkpoint only":              # every layer of a segment gets its start
        for s in reversed(starts):
            for i in reversed(range(s, min(s + k, n))):
                g, grads[i] = _Chain.backward(g, inputs[s], params[i])
        return g, grads
    if kind == "forward order":                # segments visited first to last
        for s in starts:
            for i in reversed(range(s, min(s + k, n))):
                g, grads[i] = _Chain.backward(g, inputs[i], params[i])
        return g, grads
    raise AssertionError(kind)


def _draw_chain(rng, n: int, d: int, batch: int):
    params = [(rng.normal(size=(d, d)) * 0.8 / np.sqrt(d), rng.normal(size=d) * 0.3)
              for _ in range(n)]
    return params, rng.normal(size=(batch, d)), rng.normal(size=(batch, d))


def _segments(n: int, k: int) -> int:
    return math.ceil(n / k)


@exercise(
    "07-checkpointed-backward",
    title="Backward through a checkpointed chain",
    notebook=NOTEBOOK,
    answer="checkpointed_backward",
    hints=[
        "Forward: run the layers in order with `h = forward(h, params[i])`, and keep "
        "`h` in a list only when i is a multiple of k (it is the input of the segment "
        "that starts at layer i). Let everything else go.",
        "Backward: visit the segments from the last to the first. For the segment "
        "starting at s, recompute its layer inputs from the checkpoint: "
        "[checkpoint, forward(checkpoint, params[s]), ...] up to the input of its last "
        "layer; that is the recomputation.",
        "Inside a segment go back layer by layer, last first: `g, dparams[i] = "
        "backward(g, inputs[i - s], params[i])`. The g left at the segment's input "
        "is the upstream gradient of the previous segment: do not reset it to dout.",
        "`for s in reversed(range(0, n, k)): stop = min(s + k, n); inputs = "
        "[checkpoints[s // k]]; for i in range(s, stop - 1): inputs.append(forward("
        "inputs[-1], params[i])); for i in reversed(range(s, stop)): g, dparams[i] = "
        "backward(g, inputs[i - s], params[i])`; return g, dparams.",
    ],
    timeout=10.0,
)
def _check_checkpointed_backward(checkpointed_backward, rng):
    d = int(rng.integers(2, 5))
    cases = [(7, 3, "7 layers in segments of 3, the last one shorter"),
             (int(rng.integers(8, 13)), 2, "segments of 2"),
             (6, 1, "k = 1, every layer a checkpoint"),
             (4, 4, "k = n, one segment"),
             (16, 4, "16 layers, k = 4 = √16"),
             (1, 1, "one layer")]
    for n, k, label in cases:
        params, x, dout = _draw_chain(rng, n, d, int(rng.integers(2, 5)))
        chain = _Chain()
        name = (f"checkpointed_backward(forward, backward, params, x, dout, k={k}) "
                f"with {n} layer{'s' * (n > 1)} ({label})")
        result = expect.call(checkpointed_backward, chain.forward, chain.backward,
                             params, x, dout, k, name=name, returns=(tuple, list),
                             length=2)
        dx, dparams = result
        ex, eparams = _engine_grads(params, x, dout)
        px, pparams = _plain_backward(params, x, dout)
        assert _near(px, ex, 1e-9) and all(
            _near(a, b, 1e-9) for pa, ea in zip(pparams, eparams) for a, b in zip(pa, ea)
        ), "the hand-written chain backward disagrees with the engine"
        if not isinstance(dparams, (list, tuple)) or len(dparams) != n:
            got = len(dparams) if isinstance(dparams, (list, tuple)) else \
                type(dparams).__name__
            raise CheckFailure(
                f"{name}: dparams should be a list of {n} entries, one per layer, got "
                f"{got}", hint="dparams[i] is what backward returned for params[i] "
                "(start from `dparams = [None] * len(params)`)", kind="type")
        variants = {kind: _variant(params, x, dout, k, kind)
                    for kind in ("restart", "outputs", "checkpoint only", "forward order")}
        hints = {
            "restart": "each segment starts again from dout: the gradient at a segment's "
                       "input is the upstream gradient of the segment before it; carry "
                       "g from one segment to the next",
            "outputs": "backward(dout, h, p) needs the layer's input h, but got its "
                       "output: the input of layer i is the output of layer i - 1 (the "
                       "checkpoint for the first layer of a segment)",
            "checkpoint only": "every layer of a segment was given the segment's "
                               "checkpoint as input: recompute the inputs of the "
                               "later layers from it with forward()",
            "forward order": "the segments are visited first to last: backward must "
                             "start with the last segment (dout belongs to the last "
                             "layer) and end with the first",
        }

        def matches(kind: str, which: int, j=None) -> bool:
            got = dx if which == 0 else dparams
            ref = variants[kind][0] if which == 0 else variants[kind][1]
            right = ex if which == 0 else eparams
            if which == 0:
                return not _near(ref, right) and _near(got, ref)
            return not all(_near(a, b) for a, b in zip(ref[j], right[j])) and \
                isinstance(got[j], (tuple, list)) and len(got[j]) == 2 and \
                all(_near(a, b) for a, b in zip(got[j], ref[j]))
        expect.close(dx, ex, what=f"dx ({label})", rtol=1e-7, hint_if={
            (lambda g, e, kind=kind: matches(kind, 0)): text for kind, text in hints.items()
        })
        reversed_list = list(eparams)[::-1]
        for i in range(n):
            item = dparams[i]
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise CheckFailure(
                    f"{name}: dparams[{i}] should be the pair (dW, db) that backward "
                    f"returned, got {type(item).__name__}",
                    hint="store backward's second result as it is: `g, dparams[i] = "
                         "backward(g, h, params[i])`", kind="type")
            for j, part in enumerate(("dW", "db")):
                expect.close(item[j], eparams[i][j], what=f"dparams[{i}] {part} ({label})",
                             rtol=1e-7, hint_if={
                    (lambda g, e, i=i, j=j: n > 1 and _near(g, reversed_list[i][j])
                     and not _near(g, e)):
                        "the list is in reverse order: dparams[i] belongs to params[i] "
                        "(fill it by index, dparams[i] = ..., rather than appending "
                        "while going backward)",
                    **{(lambda g, e, kind=kind: matches(kind, 1, i)): text
                       for kind, text in hints.items()},
                })
        n_seg = _segments(n, k)
        most_calls = 2 * n - n_seg      # n, then each segment's layers but its last
        if chain.calls > most_calls:
            raise CheckFailure(
                f"{name} called forward {chain.calls} times; checkpointing needs at most "
                f"{most_calls} ({n} in the forward pass, then in backward the layers of "
                "each segment but its last once more)",
                hint="recompute a segment from its own checkpoint, not from x: the "
                     "layers before it are not needed again" if chain.calls > 2 * n
                else "the last layer of a segment is never needed as an input inside "
                     "the segment: recompute only the inputs of its layers",
                kind="wrong")
        limit = n_seg + k + 1
        if n > 4 and chain.peak_alive > limit:
            raise CheckFailure(
                f"{name} kept up to {chain.peak_alive} layer outputs alive at the same "
                f"time; with checkpoints every {k} layers at most {limit} are needed "
                f"({n_seg} checkpoints and one segment's inputs)",
                hint="in the forward pass keep h only when i % k == 0, and in backward "
                     "keep only the current segment's recomputed inputs: storing every "
                     "layer's output is what checkpointing avoids", kind="wrong")
    return ("chains of 1 to 16 layers, k from 1 to n: gradients vs the engine, forward "
            "calls and outputs kept alive counted")


# ---------------------------------------------------------------- 07-activation-bytes
def _engine_bytes(sizes, batch: int, activation: str, rng) -> int:
    from backprop_course import Tensor, nn
    from backprop_course.memory import graph_memory
    net = nn.MLP(list(sizes), activation=activation, rng=0)
    out = net(Tensor(rng.normal(size=(batch, sizes[0]))))
    return graph_memory(out).activation_bytes


def _per_unit(rng) -> tuple[dict[str, int], int]:
    """Bytes the engine's graph keeps per hidden unit and example for each
    activation, and per output unit and example, measured on small networks
    (the formula the learner derives; measured here so the check follows the
    engine's ops if they change)."""
    out = _engine_bytes([3, 2], 4, "relu", rng) // (4 * 2)
    per = {act: (_engine_bytes([3, 5, 2], 4, act, rng)
                 - _engine_bytes([3, 4, 2], 4, act, rng)) // 4
           for act in ("relu", "tanh", "sigmoid")}
    return per, out


def _formula(sizes, batch: int, activation: str, per: dict[str, int], out: int,
             output: bool = True) -> int:
    """Bytes per hidden unit x batch x hidden widths + the output layer's."""
    return per[activation] * batch * sum(sizes[1:-1]) + \
        (out * batch * sizes[-1] if output else 0)


@exercise(
    "07-activation-bytes",
    title="The memory a network's graph keeps",
    notebook=NOTEBOOK,
    answer="activation_bytes",
    hints=[
        "Go layer by layer through nn.MLP(sizes). Every Linear is two nodes, "
        "`x @ W` and then `+ b`: each makes a (batch, width) output, 8 bytes per "
        "float64 number, and the graph keeps both (the + node holds the @ node in "
        "`_prev`). Every hidden layer is followed by the activation, which makes "
        "another (batch, width) output.",
        "Then look at what each node saves for backward (lesson 07 section 1, or "
        "`node._saved`): @ saves its inputs x and W (the previous layer's output, "
        "already counted, or a leaf), + saves nothing, relu saves a bool mask (1 byte "
        "per number), tanh and sigmoid save their own output (already counted).",
        "The input batch and the weights are leaves, not activations; the last Linear "
        "(the logits) has no activation after it, but it is two nodes too.",
        "`per = {'relu': 25, 'tanh': 24, 'sigmoid': 24}[activation]`; "
        "`return per * batch * sum(sizes[1:-1]) + 16 * batch * sizes[-1]`.",
    ],
)
def _check_activation_bytes(activation_bytes, rng):
    cases = []
    for activation in ("relu", "tanh", "sigmoid"):
        depth = int(rng.integers(2, 5))
        sizes = [int(rng.integers(2, 9))] + [int(rng.integers(3, 40)) for _ in
                                             range(depth)] + [int(rng.integers(2, 6))]
        cases.append((sizes, int(rng.integers(2, 70)), activation))
    cases.append(([int(rng.integers(2, 9)), int(rng.integers(2, 6))], 5, "relu"))
    cases.append(([3, 7, 7, 2], 1, "relu"))
    per, out = _per_unit(rng)
    for sizes, batch, activation in cases:
        name = f"activation_bytes({sizes}, {batch}, {activation!r})"
        got = expect.call(activation_bytes, list(sizes), batch, activation, name=name)
        if isinstance(got, (float, np.floating)) and float(got).is_integer():
            got = int(got)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            raise CheckFailure(f"{name} should return a whole number of bytes, got "
                               f"{type(got).__name__}: {got!r}",
                               hint="return an int (bytes are counted, not measured)",
                               kind="type")
        expected = _engine_bytes(sizes, batch, activation, rng)
        if expected != _formula(sizes, batch, activation, per, out):
            raise AssertionError("graph_memory is not linear in the widths: the check's "
                                 "formula does not describe this engine")
        p = per[activation]
        hidden = batch * sum(sizes[1:-1])
        logits = out * batch * sizes[-1]
        inputs = 8 * batch * sizes[0]
        weights = 8 * sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        relu = activation == "relu"
        one_linear = (p - 8) * hidden + logits // 2  # Linear as one node (x W + b)
        wrong = [
            ((p - 1) * hidden + logits, relu,
             "the ReLU's mask is missing: relu saves x > 0 for its backward, a bool "
             "array of 1 byte per number, besides its output"),
            ((p + 7) * hidden + logits, relu,
             "counted 8 bytes too many per hidden unit: relu's mask is bool (1 "
             "byte per number), not float64"),
            ((p + 8) * hidden + logits, not relu,
             "counted 8 bytes too many per hidden unit: tanh and sigmoid save their "
             "own output, which is already counted"),
            (one_linear, True,
             "each Linear was counted as one array, but it is two nodes: x @ W, then "
             "+ b. The graph keeps both outputs (8 bytes per number each), in every "
             "layer and for the logits: the + node holds the @ node in its _prev, "
             "although no backward reads x @ W"),
            (p * hidden + logits // 2, True,
             "the last Linear is two nodes too: x @ W and the logits x @ W + b, "
             "16 bytes per output number (and no activation)"),
            ((p - 8) * hidden + logits, True,
             "one float64 array per hidden unit is missing: a hidden layer keeps "
             "x @ W, the sum x @ W + b and the activation's output, 8 bytes per "
             "number each" + (", and relu's 1-byte mask" if relu else "")),
            ((p - 9 if relu else p - 8) * hidden + logits, True,
             "the activations' outputs are missing: each hidden layer keeps its "
             "Linear's two arrays (x @ W and the sum) and the activation's output"),
            (p * hidden, True,
             "the last Linear's outputs (x @ W and the logits, batch x sizes[-1] "
             "floats each) are missing"),
            (p * batch * sum(sizes[1:]), True,
             "the last Linear has no activation after it: count only what the Linear "
             "itself makes for the logits"),
            (p * hidden + logits + inputs, True,
             "the input batch is counted: it is a leaf (it exists without a graph), "
             "not an activation"),
            (p * hidden + logits + weights, True,
             "the weights are counted: they are leaves (parameters), not activations"),
            (((p - 1) // 2 + 1 if relu else p // 2) * hidden + logits // 2, True,
             "4 bytes per number is float32: these networks are float64, 8 bytes per "
             "number"),
            (p * batch * sum(sizes[2:-1]) + logits if len(sizes) > 2 else -1, True,
             "the first hidden layer is missing: sizes[0] is the input width, the "
             "hidden widths are sizes[1:-1]"),
        ]
        for value, applies, text in wrong:
            if applies and value != expected and int(got) == value:
                raise CheckFailure(f"{name} returned {int(got):,}, expected "
                                   f"{expected:,} bytes", hint=text, kind="wrong")
        if int(got) < 0:
            raise CheckFailure(f"{name} returned {int(got):,}: a number of bytes cannot "
                               "be negative", hint="check the sign of every term: "
                               "each array adds its bytes", kind="wrong")
        if int(got) != expected and got and (expected / int(got) in (8, 1 / 8, batch)
                                             or int(got) / expected in (8, batch)):
            raise CheckFailure(
                f"{name} returned {int(got):,}, expected {expected:,} bytes: off by a "
                f"factor of {max(int(got), expected) / min(int(got), expected):g}",
                hint="every term is bytes per number x batch x units: a factor of "
                     "8 (bytes per float64) or of the batch size is missing or extra",
                kind="wrong")
        if int(got) != expected:
            raise CheckFailure(
                f"{name} returned {int(got):,}, expected {expected:,} bytes "
                f"(graph_memory of the engine's graph)",
                hint="count per hidden layer the Linear's two outputs (x @ W and the "
                     "sum), the activation's output and what it saves for backward; "
                     "then the last Linear's two outputs",
                kind="wrong")
    return ("relu, tanh and sigmoid MLPs of random sizes, batches of 1 to 69, "
            "vs graph_memory")

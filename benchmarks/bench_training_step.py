"""How fast is one training step of the engine, next to numpy by hand and PyTorch?

One step = forward, softmax cross-entropy, backward, plain SGD update, for a
64-256-256-10 ReLU MLP on a batch of 128, in float64 and float32:

  engine   nn.MLP + losses.cross_entropy + optim.SGD (the course's autograd)
  numpy    the same maths written out by hand in numpy (the baseline to beat)
  torch    PyTorch eager on the CPU, if ``import torch`` works (else skipped)

Run:  .venv/bin/python benchmarks/bench_training_step.py [--rounds 60] [--block 10]
      [--instances 4] [--no-digits] [--threads default|one]
(for the torch column, run it with a Python that has torch installed).

The machine may be shared and noisy, so the contestants are interleaved: each
round times a block of steps of each one, in a fresh random order, and the
table reports the median over rounds of the time per step. The ratios are
paired: each round's engine time is divided by the other contestant's time in
the same round, and the table gives the median of those ratios (with their
interquartile range below), so a slow spell on the machine that hits one
round cancels out instead of tilting the comparison.

Each contestant runs as several instances (``--instances``, default 4), each
with its own copy of the weights, and a round's time is their mean. Where an
array happens to sit in memory changes a step's time by a few percent: two
instances of the very same engine code measured up to 7% apart here. With
one instance per contestant, that luck would be part of the ratio.

Before timing, one step of each from the same weights is compared, to show
they compute the same thing.

Memory allocator: with glibc's default (adaptive) settings, whichever program
frees a few MB at the end of a step may see the heap handed back to the OS and
faulted in again on the next step (~100-800 page faults per step here), which
adds 10-30% to one contestant or the other depending on allocation order. By
default the script turns that off (``mallopt``: no trimming, no mmap for
arrays below 32 MB), so the table compares arithmetic and Python overhead;
``--default-malloc`` keeps glibc's defaults. Page faults per step are shown.

Threads: each library runs with its own default threading, and its worker threads
keep spinning for a while after each call (that is what makes them fast:
forcing torch's OMP_WAIT_POLICY=PASSIVE made its step twice as slow here).
Spinning workers of one library slow the next one on a 2-core machine, and
numpy's OpenBLAS workers spin for about 0.1 s: torch measured right after
numpy took 2.1 ms a step instead of 1.3. So torch runs as one instance, and
the script pauses before each torch block until numpy's workers sleep, and
after it until torch's do (``PAUSE_AROUND_TORCH``).

``--threads one`` gives every contestant one BLAS/OpenMP thread: the script
starts itself again with OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS set to 1 (they must be set before numpy and torch load) and
calls torch.set_num_threads(1). No worker threads spin, so no contestant
slows the next one down, and the ratio measures the work each one does:
on a small shared machine the fairest comparison. In this mode all of a
contestant's work runs on the calling thread, so blocks are timed with
that thread's CPU time (``time.thread_time``): time spent waiting while
other programs on a shared machine have the CPU is left out. ``--threads default``
(the default) lets each library use its own threading, as a learner's
notebook would.

Afterwards, the digits run of lesson 03 is timed: a 64-128-10 ReLU MLP (He
init), SGD lr 0.1 momentum 0.9, batch 32, 20 epochs, on
``datasets.digits()``, for a few seeds (``--no-digits`` skips it).
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import importlib.util
import os
import resource
import platform
import sys
import time
from typing import Callable

import numpy as np

from backprop_course import Tensor, datasets, losses, nn, optim

SIZES = [64, 256, 256, 10]
BATCH = 128
LR = 0.01
PAUSE_AROUND_TORCH = (0.2, 0.02)   # seconds before and after a torch block
ONE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
ONE_THREAD_FLAG = "BENCH_TRAINING_STEP_ONE_THREAD"   # set once the script restarted
CLOCK = time.perf_counter          # time.thread_time with --threads one


# ------------------------------------------------------------------ contestants

def make_engine(X: np.ndarray, y: np.ndarray, dtype, sizes: list[int]
                ) -> tuple[Callable, list]:
    net = nn.MLP(sizes, activation="relu", init="he", rng=0, dtype=dtype)
    opt = optim.SGD(net.parameters(), lr=LR)
    Xt = Tensor(X)                # converted once, as torch.from_numpy below

    def step() -> float:
        opt.zero_grad()
        loss = losses.cross_entropy(net(Xt), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step, net.parameters()


def make_numpy(X: np.ndarray, y: np.ndarray, weights: list[np.ndarray]):
    """The same step by hand: forward, backward and update in plain numpy."""
    W1, b1, W2, b2, W3, b3 = [w.copy() for w in weights]
    rows = np.arange(len(y))
    n = len(y)

    def step() -> float:
        nonlocal W1, b1, W2, b2, W3, b3
        z1 = X @ W1 + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2 + b2
        h2 = np.maximum(z2, 0)
        z3 = h2 @ W3 + b3
        shifted = z3 - z3.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_probs[rows, y].mean()
        dz3 = np.exp(log_probs)                      # softmax - onehot, over N
        dz3[rows, y] -= 1
        dz3 /= n
        dW3, db3 = h2.T @ dz3, dz3.sum(axis=0)
        dz2 = (dz3 @ W3.T) * (z2 > 0)
        dW2, db2 = h1.T @ dz2, dz2.sum(axis=0)
        dz1 = (dz2 @ W2.T) * (z1 > 0)
        dW1, db1 = X.T @ dz1, dz1.sum(axis=0)
        W1, b1 = W1 - LR * dW1, b1 - LR * db1
        W2, b2 = W2 - LR * dW2, b2 - LR * db2
        W3, b3 = W3 - LR * dW3, b3 - LR * db3
        return float(loss)

    return step, lambda: [W1, b1, W2, b2, W3, b3]


def make_torch(torch, X: np.ndarray, y: np.ndarray, weights: list[np.ndarray],
               sizes: list[int]):
    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    model = torch.nn.Sequential(
        torch.nn.Linear(sizes[0], sizes[1]), torch.nn.ReLU(),
        torch.nn.Linear(sizes[1], sizes[2]), torch.nn.ReLU(),
        torch.nn.Linear(sizes[2], sizes[3])).to(dtype)
    with torch.no_grad():                            # PyTorch stores W as (out, in)
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        for layer, W, b in zip(linears, weights[0::2], weights[1::2]):
            layer.weight.copy_(torch.from_numpy(W.T.copy()))
            layer.bias.copy_(torch.from_numpy(b.copy()))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(Xt), yt)
        loss.backward()
        opt.step()
        return loss.item()

    def params() -> list[np.ndarray]:
        out = []
        for layer in linears:
            out += [layer.weight.detach().numpy().T, layer.bias.detach().numpy()]
        return out

    return step, params


# ------------------------------------------------------------------ timing

def tune_malloc() -> str:
    """Keep freed memory in the heap (glibc only); see the module docstring."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = (libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
              and libc.mallopt(M_TRIM_THRESHOLD, 256 * 2**20))
    except (OSError, AttributeError):
        ok = False
    return ("malloc: mmap threshold 32 MB, no trimming" if ok
            else "malloc: could not tune (not glibc?); defaults in use")


def time_block(step: Callable, n: int) -> tuple[float, float]:
    """Seconds and minor page faults per step, over n consecutive steps.

    One untimed step first: it wakes this contestant's BLAS / OpenMP threads.
    """
    step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = CLOCK()
    for _ in range(n):
        step()
    seconds = (CLOCK() - start) / n
    return seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / n


def interleaved(steps: dict[str, list[Callable]], rounds: int, block: int
                ) -> tuple[dict, dict]:
    """Per contestant: seconds per step in each round (mean over its
    instances), and page faults per step (mean over everything)."""
    blocks = [(name, step) for name, instances in steps.items() for step in instances]
    times: dict[str, list[list[float]]] = {name: [] for name in steps}
    faults: dict[str, list[float]] = {name: [] for name in steps}
    for _, step in blocks:                           # warm up caches and threads
        time_block(step, block)
    # a fresh random order each round, so each contestant follows each other
    # one equally often (a library's worker threads keep spinning after it)
    order_rng = np.random.default_rng(0)
    for _ in range(rounds):
        round_times: dict[str, list[float]] = {name: [] for name in steps}
        for i in order_rng.permutation(len(blocks)):
            name, step = blocks[i]
            if name == "torch":                      # numpy's BLAS workers: sleep
                time.sleep(PAUSE_AROUND_TORCH[0])
            seconds, n_faults = time_block(step, block)
            round_times[name].append(seconds)
            faults[name].append(n_faults)
            if name == "torch":                      # torch's OpenMP workers: sleep
                time.sleep(PAUSE_AROUND_TORCH[1])
        for name, seconds in round_times.items():
            times[name].append(float(np.mean(seconds)))
    return ({name: np.array(s) for name, s in times.items()},
            {name: float(np.mean(f)) for name, f in faults.items()})


def environment(torch) -> list[str]:
    lines = [f"python {platform.python_version()} ({sys.executable}), "
             f"numpy {np.__version__}, {os.cpu_count()} CPUs"]
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OPENBLAS", "OMP_", "MKL_", "NVPL", "GOTO"))}
    settings = ", ".join(f"{k}={v}" for k, v in sorted(env.items()))
    lines.append("BLAS environment: " + (settings or "(none set)"))
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            lines.append(f"threadpool: {pool.get('internal_api')} "
                         f"{pool.get('version')} threads={pool.get('num_threads')} "
                         f"core={pool.get('architecture')}")
    except ImportError:
        lines.append("threadpool: (install threadpoolctl to see BLAS threads)")
    if torch is not None:
        lines.append(f"torch {torch.__version__}, intra-op threads "
                     f"{torch.get_num_threads()}")
    return lines


def digits_run(seed: int, epochs: int = 20, batch: int = 32) -> tuple[float, float]:
    """Train the lesson-03 digits MLP; return (seconds, test accuracy)."""
    X_train, y_train, X_test, y_test = datasets.digits()
    rng = np.random.default_rng(seed)
    net = nn.MLP([64, 128, 10], activation="relu", init="he", rng=rng)
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(X_train))
        for i in range(0, len(X_train), batch):
            rows = order[i:i + batch]
            opt.zero_grad()
            losses.cross_entropy(net(X_train[rows]), y_train[rows]).backward()
            opt.step()
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(net(X_test).data.argmax(axis=1) == y_test))
    return seconds, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=60, help="interleaved rounds")
    parser.add_argument("--block", type=int, default=10, help="steps per timed block")
    parser.add_argument("--instances", type=int, default=4,
                        help="copies of each contestant, each with its own arrays")
    parser.add_argument("--no-digits", action="store_true", help="skip the digits run")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's adaptive heap trimming (see docstring)")
    parser.add_argument("--batch", type=int, default=BATCH, help="examples per step")
    parser.add_argument("--hidden", type=int, default=SIZES[1], help="hidden width")
    parser.add_argument("--threads", choices=("default", "one"), default="default",
                        help="one BLAS/OpenMP thread per contestant, or each "
                             "library's default (see docstring)")
    args = parser.parse_args()
    if args.threads == "one" and os.environ.get(ONE_THREAD_FLAG) != "1":
        env = dict(os.environ, **{name: "1" for name in ONE_THREAD_ENV})
        env[ONE_THREAD_FLAG] = "1"
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    global CLOCK
    if args.threads == "one":
        CLOCK = time.thread_time
    sizes = [SIZES[0], args.hidden, args.hidden, SIZES[-1]]
    malloc = ("malloc: glibc defaults" if args.default_malloc else tune_malloc())

    torch = None
    if importlib.util.find_spec("torch") is not None:
        try:
            import torch
            if args.threads == "one":
                torch.set_num_threads(1)
        except ImportError as err:
            print(f"torch: import failed ({err})")
    clock = "thread CPU time" if args.threads == "one" else "wall time"
    print("\n".join(environment(torch) + [malloc, f"threads: {args.threads} ({clock})"]))
    print(f"step: {'-'.join(map(str, sizes))} ReLU MLP, batch {args.batch}, "
          "cross-entropy, "
          f"SGD lr={LR}; {args.rounds} rounds x {args.block} steps x "
          f"{args.instances} instances, median per step")
    if torch is None:
        print("torch: not importable, column skipped")

    rng = np.random.default_rng(0)
    X64 = rng.normal(size=(args.batch, sizes[0]))
    y = rng.integers(0, sizes[-1], size=args.batch)
    rows = []
    for dtype in (np.float64, np.float32):
        X = X64.astype(dtype)
        steps: dict[str, list[Callable]] = {"engine": [], "numpy": []}
        if torch is not None:
            steps["torch"] = []
        for k in range(args.instances):              # allocated in turn
            engine_step, params = make_engine(X, y, dtype, sizes)
            start = [p.data.copy() for p in params]
            numpy_step, numpy_params = make_numpy(X, y, start)
            steps["engine"].append(engine_step)
            steps["numpy"].append(numpy_step)
            if torch is not None and k == 0:         # one: see the docstring
                torch_step, torch_params = make_torch(torch, X, y, start, sizes)
                steps["torch"].append(torch_step)
            if k == 0:
                engine_params = params
                others = {"numpy": numpy_params}
                if torch is not None:
                    others["torch"] = torch_params

        # same maths? one step each from the same weights, then compare
        losses_first = {name: instances[0]() for name, instances in steps.items()}
        after = [p.data for p in engine_params]
        tol = 1e-10 if dtype == np.float64 else 1e-4
        for name, params in others.items():
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(after, params()))
            dloss = abs(losses_first[name] - losses_first["engine"])
            status = "ok" if diff < tol and dloss < tol else "MISMATCH"
            print(f"{np.dtype(dtype).name}: engine vs {name} after one step: "
                  f"max |dW| {diff:.1e}, |dloss| {dloss:.1e} -> {status}")

        t, faults = interleaved(steps, args.rounds, args.block)
        med = {name: float(np.median(s)) * 1e3 for name, s in t.items()}
        q = {name: (np.percentile(s, 25) * 1e3, np.percentile(s, 75) * 1e3)
             for name, s in t.items()}
        paired = {name: t["engine"] / s for name, s in t.items() if name != "engine"}
        rows.append((np.dtype(dtype).name, med, q, faults, paired))

    print()
    header = (f"{'dtype':8} {'engine ms':>10} {'numpy ms':>10} {'torch ms':>10} "
              f"{'engine/numpy':>13} {'engine/torch':>13}")
    print(header)
    print("-" * len(header))
    for name, med, _, _, paired in rows:
        torch_ms = f"{med['torch']:10.3f}" if "torch" in med else f"{'-':>10}"
        vs_torch = (f"{np.median(paired['torch']):13.2f}" if "torch" in med
                    else f"{'-':>13}")
        print(f"{name:8} {med['engine']:10.3f} {med['numpy']:10.3f} {torch_ms} "
              f"{np.median(paired['numpy']):13.2f} {vs_torch}")
    print()
    for name, _, q, faults, paired in rows:
        print(f"{name}: interquartile ms " + ", ".join(
            f"{k} {lo:.3f}-{hi:.3f}" for k, (lo, hi) in q.items())
            + "; page faults/step " + ", ".join(
            f"{k} {f:.0f}" for k, f in faults.items()))
        print(f"{name}: interquartile ratios " + ", ".join(
            f"engine/{k} {np.percentile(r, 25):.3f}-{np.percentile(r, 75):.3f}"
            for k, r in paired.items()))

    if not args.no_digits:
        print("\ndigits (lesson 03): 64-128-10 ReLU, He init, SGD lr 0.1 momentum 0.9, "
              "batch 32, 20 epochs, float64")
        for seed in range(5):
            seconds, accuracy = digits_run(seed)
            print(f"  seed {seed}: {seconds:5.2f} s, test accuracy {accuracy:.2%}")


if __name__ == "__main__":
    main()

"""What does the sandbox cost? `grade` on N copies of a lesson's solution notebook,
with and without the bwrap sandbox, interleaved in one run.

Each copy is graded once each way, in blocks of --block submissions, alternating which
way goes first (ABBA), so load from other processes falls on both alike. Prints the
wall-clock totals, the medians per submission, and the ratio sandboxed / unsandboxed
(the goal: <= 1.5), and checks that both ways give every copy the same, fully passing
rows. (No CPU-time ratio: the processes inside bwrap do not show up in this process's
children's rusage.)

Run:  python benchmarks/bench_sandbox_grading.py [--lesson 01_chain_rule] [--copies 50]
                                                 [--block 10]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from backprop_course.classroom import grading, sandbox

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lesson", default="01_chain_rule")
    p.add_argument("--copies", type=int, default=50)
    p.add_argument("--block", type=int, default=10,
                   help="submissions graded one way before switching (default 10); "
                   "within a block the sandboxed grader starts the next sandbox early, "
                   "as `grade` does")
    args = p.parse_args()
    reason = sandbox.unavailable_reason()
    if reason:
        raise SystemExit(f"no sandbox here: {reason}")
    source = REPO / "solutions" / f"{args.lesson}.ipynb"
    tmp = Path(tempfile.mkdtemp(prefix="bpc-bench-sandbox-"))
    subs = []
    for i in range(args.copies):
        path = tmp / f"student{i:03d}_{args.lesson}.ipynb"
        shutil.copyfile(source, path)
        subs.append(path)
    plain: list[float] = []
    boxed: list[float] = []
    start = time.monotonic()
    rows: dict[bool, dict[int, list]] = {False: {}, True: {}}
    blocks = [list(range(k, min(k + args.block, len(subs))))
              for k in range(0, len(subs), args.block)]
    for b, block in enumerate(blocks):       # ABBA: who goes first alternates
        for use in ([False, True] if b % 2 == 0 else [True, False]):
            for i in block:
                t0 = time.monotonic()
                run = sandbox.run_submission_sandboxed if use else grading.run_submission
                rep = run(subs[i], timeout=300, cell_timeout=60)
                (boxed if use else plain).append(time.monotonic() - t0)
                rows[use][i] = [(r.exercise, r.passed, r.message) for r in rep.results]
        print(f"block {b + 1}/{len(blocks)}: plain {sum(plain[-len(block):]):6.1f} s, "
              f"sandbox {sum(boxed[-len(block):]):6.1f} s", flush=True)
    same = sum(rows[True][i] == rows[False][i] and all(ok for _, ok, _ in rows[True][i])
               for i in range(len(subs)))
    wall = time.monotonic() - start
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.copies} copies of solutions/{args.lesson}.ipynb, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end; {wall:.0f} s")
    for label, times in (("without sandbox", plain), ("with sandbox:  ", boxed)):
        print(f"  {label}: total {sum(times):7.1f} s, "
              f"median {statistics.median(times):.2f} s per submission")
    print(f"  ratio sandbox / plain: total {sum(boxed) / sum(plain):.2f}x, "
          f"median {statistics.median(boxed) / statistics.median(plain):.2f}x "
          "(goal <= 1.5x)")
    print(f"  identical, fully passing rows both ways: {same}/{args.copies}")


if __name__ == "__main__":
    main()

"""Grade one submission and write the report as JSON: what runs inside the sandbox.

    python -m backprop_course.classroom.grade_one SUBMISSION.ipynb --out OUT.json
        [--wait] [--timeout S] [--cell-timeout S] [--checks MODULE] [--path DIR]
        [--memory BYTES] [--processes N] [--file-size BYTES] [--uid UID]

``sandbox.py`` starts it inside ``bwrap``. Before anything else it applies the
limits to itself (they are inherited by the notebook's kernel and everything the
kernel starts): when started as root (``--uid``) it first becomes that
unprivileged uid, because the kernel exempts root from the process limit. Then
it calls ``grading.run_submission`` and, once the kernel is gone, kills any
process the submission left behind, so that nothing but this process writes the
result: ``OUT.json`` (rows, notes, extras) and the executed notebook beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Sequence


#: optional modules jsonschema imports only to check string formats ("email", "iri"...)
_FORMAT_CHECKERS = ("rfc3987_syntax", "rfc3987", "rfc3986_validator", "rfc3339_validator",
                    "fqdn", "idna", "webcolors", "jsonpointer", "uri_template",
                    "isoduration")


def apply_limits(memory: int, processes: int, file_size: int, uid: int | None) -> None:
    """Become ``uid`` (if given) and cap memory, processes and file size for good."""
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)        # from root to a plain uid: every capability is dropped
        if os.getuid() != uid or os.geteuid() != uid:
            raise SystemExit(f"grade_one: could not become uid {uid}")
    for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_NPROC, processes),
                         (resource.RLIMIT_FSIZE, file_size)):
        resource.setrlimit(limit, (value, value))


#: processes (and threads) kept for the grader itself: the notebook's kernel and what it
#: starts may use the rest, so a fork bomb cannot leave the grader unable to finish
GRADER_RESERVE = 16

_KERNEL_LIMITS = """\
# written by backprop_course.classroom.grade_one: the kernel's own, lower process limit
import resource
resource.setrlimit(resource.RLIMIT_NPROC, ({n}, {n}))
"""


def limit_kernel_processes(processes: int, folder: str) -> None:
    """Make the notebook's kernel start with a lower, final process limit.

    The kernel inherits this process's environment; a ``sitecustomize`` module on its
    PYTHONPATH runs before any of its code and lowers its hard ``RLIMIT_NPROC`` to
    ``processes - GRADER_RESERVE`` (a hard limit cannot be raised again), so the
    grader always has threads left to collect the results.
    """
    os.makedirs(folder, exist_ok=True)
    n = max(8, processes - GRADER_RESERVE)
    with open(os.path.join(folder, "sitecustomize.py"), "w", encoding="utf-8") as f:
        f.write(_KERNEL_LIMITS.format(n=n))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [folder, os.environ.get("PYTHONPATH")]))


def _kill_leftovers() -> None:
    """SIGKILL every other process of this sandbox (the submission's daemons, if any).

    Only inside bwrap's pid namespace (its pid 1 is bwrap): kill(-1) anywhere else
    would reach every process this user owns.
    """
    try:
        with open("/proc/1/comm", encoding="utf-8") as f:
            if f.read().strip() != "bwrap":
                return
    except OSError:
        return
    try:
        os.kill(-1, signal.SIGKILL)     # all we may signal but ourselves (and pid 1)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m backprop_course.classroom.grade_one")
    p.add_argument("submission", nargs="?",
                   help="the notebook (with --wait: read from stdin instead)")
    p.add_argument("--out", required=True, help="where the JSON report goes")
    p.add_argument("--wait", action="store_true",
                   help="start up first, then read the submission's path from stdin")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--cell-timeout", type=float, default=60)
    p.add_argument("--grade-timeout", type=float, default=None)
    p.add_argument("--checks", action="append", default=[])
    p.add_argument("--path", action="append", default=[])
    p.add_argument("--exercise", action="append", default=None,
                   help="grade exactly these exercise ids (grade --assignment)")
    p.add_argument("--seed", type=int, default=None, help="the checks' random inputs")
    p.add_argument("--extra", default=None, help="JSON, as grading.run_submission's extra")
    p.add_argument("--memory", type=int, default=2 * 1024 ** 3)
    p.add_argument("--processes", type=int, default=64)
    p.add_argument("--file-size", type=int, default=512 * 1024 ** 2)
    p.add_argument("--uid", type=int, default=None)
    p.add_argument("--kill-leftovers", action="store_true",
                   help="in the sandbox: kill every other process before writing OUT")
    args = p.parse_args(argv)

    apply_limits(args.memory, args.processes, args.file_size, args.uid)
    for name in ("HOME", "MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR"):
        if os.environ.get(name):
            os.makedirs(os.environ[name], exist_ok=True)

    # jsonschema (under nbformat) imports every optional string-format checker it finds
    # (rfc3987_syntax alone builds a grammar for seconds). nbformat validates with no
    # format checker, so each sandbox, a fresh process, would pay that for nothing.
    for name in _FORMAT_CHECKERS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    from backprop_course.classroom import grading, sandbox

    if args.kill_leftovers:     # in the sandbox (below /tmp, which is its own)
        limit_kernel_processes(args.processes, "/tmp/bpc-kernel-site")

    limits = sandbox.Limits(args.memory, args.processes, args.file_size)
    if args.wait:      # warm up while the previous submission is graded, then wait
        import nbclient  # noqa: F401
        from jupyter_client.kernelspec import KernelSpecManager
        try:
            KernelSpecManager().get_kernel_spec("python3")    # imports ipykernel's spec
        except Exception:   # noqa: BLE001 -- only a warm-up: run_submission reports it
            pass
        grading.load_checks(args.checks, args.path)
        args.submission = sys.stdin.readline().strip()
        if not args.submission:
            return 0          # not needed after all
    if not args.submission:
        p.error("give SUBMISSION, or --wait and its path on stdin")
    report = grading.run_submission(
        args.submission, timeout=args.timeout, cell_timeout=args.cell_timeout,
        grade_timeout=args.grade_timeout, check_modules=args.checks,
        extra_paths=args.path, extra=json.loads(args.extra) if args.extra else None,
        exercises=args.exercise, seed=args.seed)
    if args.kill_leftovers:
        _kill_leftovers()
    notes = report.error.split("; ") if report.error else []
    refused = sandbox.refusals(report.notebook, notes, limits,
                               work=str(Path(args.submission).resolve().parent))
    if refused:
        tag = " [sandbox: " + "; ".join(refused) + "]"
        for r in report.results:
            if not r.passed:
                r.message += tag
    payload = {"results": [r.__dict__ for r in report.results], "error": report.error,
               "seconds": report.seconds, "extras": report.extras, "refusals": refused}
    out = Path(args.out)
    if report.notebook is not None:    # as JSON: nbformat.write would validate it again
        out.with_name("executed.ipynb").write_text(json.dumps(report.notebook),
                                                   encoding="utf-8")
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps(payload, default=str), encoding="utf-8")
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

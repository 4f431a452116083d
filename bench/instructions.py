"""User-space instructions per NOP round trip for every API tier, from
callgrind, as a table (module, interpreter, libc and the rest, total), and
with --functions the module's functions that cost the most per op:

    python3 bench/instructions.py [--build build] [--batch 64] [--ops 6400]
                                  [--api many --api fast ...] [--functions 12]

Each loop runs inside a function (bench/nop_loop.py) under
`valgrind --tool=callgrind` with N and 2N operations; the difference over N
is the per-op cost with the interpreter's start-up cancelled.  Counts do not
depend on the machine's load, so this is the number to compare before and
after a change of the hot path (docs/performance.md keeps the table)."""

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profiling import callgrind_functions  # noqa: E402
from runner import ROOT  # noqa: E402
from workloads.nop import NOP_APIS  # noqa: E402

LABEL = {"wait_cqe_nr": "seed's per-call loop (get_sqe ... cqe_seen)",
         "batch": "Sqe/Cqe objects, cq_advance per batch",
         "fast": "fast forms: prep_nop(user_data=), reap()",
         "many": "prep_many() + reap(columns=True)"}


def per_op(cmd_for, n, workdir):
    """{(function, object): Ir/op}: runs of n and 2n ops, difference over n."""
    runs = []
    for ops in (n, 2 * n):
        path = os.path.join(workdir, "callgrind.%d" % ops)
        # a fixed hash seed: dict and set layouts, and so the interpreter's
        # count, then repeat from run to run
        subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + path] + cmd_for(ops),
                       capture_output=True, text=True, timeout=900, check=True,
                       env=dict(os.environ, PYTHONHASHSEED="0"))
        d = {}
        for ir, fn, obj in callgrind_functions(path):
            d[(fn, obj)] = d.get((fn, obj), 0) + ir
        runs.append(d)
        os.unlink(path)
    a, b = runs
    return {k: (b.get(k, 0) - a.get(k, 0)) / n for k in set(a) | set(b)}


def split(costs, c_program=False):
    """(module, interpreter, libc and the rest) from per-function costs."""
    mod = interp = rest = 0.0
    for (fn, obj), ir in costs.items():
        if obj.startswith("_core") or obj.startswith("ideal_ring") or (
                c_program and (obj == "nop" or obj.startswith("liburing"))):
            mod += ir
        elif obj.startswith("libpython") or obj.startswith("python"):
            interp += ir
        else:
            rest += ir
    return mod, interp, rest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--python", default=sys.executable, help="the interpreter to run the loops on")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ops", type=int, default=12800, help="N (the runs do N and 2N ops)")
    ap.add_argument("--api", action="append", choices=sorted(NOP_APIS) + ["c"],
                    help="tiers to measure (default: all, and C)")
    ap.add_argument("--functions", type=int, default=0, metavar="K",
                    help="also list the module's K costliest functions per tier")
    ap.add_argument("--floor", action="store_true",
                    help="also run each tier's loop on bench/ideal_ring.c: the same calls with "
                         "nothing behind them, the least any module with this API costs")
    a = ap.parse_args()
    apis = a.api or ["c"] + list(NOP_APIS)
    nop_c = os.path.join(ROOT, a.build, "bench", "nop")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for api in apis:
            if api == "c":
                if not os.path.exists(nop_c):
                    print("(no %s: `make bench` builds it)" % nop_c, file=sys.stderr)
                    continue
                cmd = lambda ops: [nop_c, str(a.batch), str(ops)]  # noqa: E731
                label = "C over liburing"
            else:
                cmd = lambda ops, api=api: [a.python, os.path.join(ROOT, "bench", "nop_loop.py"), str(ops),  # noqa: E731
                                            "--api", api, "--batch", str(a.batch), "--build", a.build]
                label = LABEL[api]
            print("... %s" % label, file=sys.stderr, flush=True)
            costs = per_op(cmd, a.ops, workdir)
            rows.append((label, split(costs, api == "c"), costs))
            if a.floor and api != "c":
                floor = lambda ops, cmd=cmd: cmd(ops) + ["--floor"]  # noqa: E731
                print("... %s, floor" % label, file=sys.stderr, flush=True)
                costs = per_op(floor, a.ops, workdir)
                rows.append((label + ", floor (bench/ideal_ring.c)", split(costs), costs))
    print("| NOP round trip, batch %d (instructions/op) | module | interpreter | libc and the rest | total |" % a.batch)
    print("| --- | --- | --- | --- | --- |")
    for label, (mod, interp, rest), _ in rows:
        print("| %s | %.0f | %.0f | %.0f | %.0f |" % (label, mod, interp, rest, mod + interp + rest))
    if a.functions:
        for label, _, costs in rows:
            mine = sorted(((ir, fn) for (fn, obj), ir in costs.items()
                           if (obj.startswith("_core") or obj.startswith("ideal_ring")) and ir >= 0.5),
                          reverse=True)
            print("\n%s, module functions:" % label)
            for ir, fn in mine[:a.functions]:
                print("  %6.1f  %s" % (ir, fn))


if __name__ == "__main__":
    main()

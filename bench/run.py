#!/usr/bin/env python3
"""py_io_uring benchmark suite: py_io_uring against C over liburing, the
PyPI `liburing` binding, the standard library and uvloop, in one run.

    python3 bench/run.py [--size 1G] [--repeat 5] [--quick] [--out docs/performance.md]

The workloads (bench/workloads/) build cases, runner.py measures them
(round-robin inside each repetition, ratios of figures taken side by side),
profiling.py looks inside the NOP loop, report.py writes the Markdown, the
figure beside it and the JSON.  Nothing here asserts a time.

The C baselines (bench/nop.c, randread.c, echo_load.c, echo_server.c) must
be built first into --bin (the Makefile's `bench` target does it).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import profiling
import report
import runner
from workloads import WORKLOADS


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default=None, help="file size for O_DIRECT and copy (default 1G; 16M with --quick)")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions per figure (default 5; 3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and counts, for CI (about a minute)")
    ap.add_argument("--out", default=None, help="write the Markdown report here (and the PNG figure beside it)")
    ap.add_argument("--build", default="build", help="folder of the built module (default build)")
    ap.add_argument("--bin", default=None, help="folder of the C baselines (default <build>/bench)")
    ap.add_argument("--dir", default=None, help="folder for the test files (default: a temporary one in /tmp)")
    ap.add_argument("--no-profile", action="store_true", help="skip the perf profile of the NOP loop")
    ap.add_argument("--json", default=None, help="also save the raw results here")
    ap.add_argument("--render", default=None, metavar="JSON",
                    help="measure nothing: rewrite the report (--out) from results saved with --json")
    ap.add_argument("--no-callgrind", action="store_true",
                    help="skip the callgrind instruction counts and CPU split of the NOP loop")
    ap.add_argument("--only", default=",".join(WORKLOADS),
                    help="comma-separated workloads (default all: %(default)s)")
    return ap.parse_args()


def main():
    args = parse_args()
    if args.render:
        report.output(report.load_json(args.render), args.out)
        return
    only = args.only.split(",")
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        sys.exit("unknown workload(s) %s; known: %s" % (", ".join(unknown), ", ".join(WORKLOADS)))
    quick = args.quick
    size = runner.parse_size(args.size) if args.size else (16 << 20 if quick else 1 << 30)
    repeat = args.repeat or (3 if quick else 5)
    binp = args.bin or os.path.join(runner.ROOT, args.build, "bench")
    m = runner.load_module(args.build)

    workdir = args.dir or tempfile.mkdtemp(prefix="py_io_uring_bench_", dir="/tmp")
    os.makedirs(workdir, exist_ok=True)
    setup = runner.Setup(m, args.build, binp, workdir, quick, size)
    t_start = time.time()
    gap = per_op = profile = None
    try:
        cases = []
        for name in WORKLOADS:            # in the suite's order, whatever --only's
            if name in only:
                cases += WORKLOADS[name][1](setup)
        runner.measure(cases, repeat)
        if "nop" in only:
            gap = profiling.breakdown(m, 64000 if quick else 640000)
            if not args.no_callgrind:
                per_op = profiling.gap_measure(args.build, binp, workdir, quick)
            if not quick and not args.no_profile:
                profile = profiling.nop_profiles(args.build, binp, workdir)
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)
    # a workload's note may be a function of its results (the echo runs' CPU use)
    notes = [n() if callable(n) else n for n in setup.notes]
    res = {"argv": sys.argv, "date": report.today(), "quick": quick, "size": size, "repeat": repeat,
           "elapsed": time.time() - t_start, "cases": cases, "notes": [n for n in notes if n],
           "gap": gap, "per_op": per_op, "profile": profile}
    if args.json:
        report.save_json(args.json, res)
    report.output(res, args.out)


if __name__ == "__main__":
    main()

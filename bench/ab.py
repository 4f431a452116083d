"""Two builds of the module side by side, in time: the NOP loops of
bench/workloads/nop.py and the page-cache read loops of
bench/workloads/randread.py at depth 32, each run in a fresh process, the
builds alternated round by round, and the ratio new/old per loop (median
and range over the rounds; above 1: the new build is faster).

    git worktree add /tmp/old <commit> && make -C /tmp/old
    python3 bench/ab.py --old /tmp/old/build --new build [--rounds 8]

The machine's noise moves both builds alike within a round, so compare the
ratio, not the rates; bench/instructions.py gives the load-independent
count for the same change."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# (label, code run in the child: prints the rate); m is the module
LOOPS = [
    ("NOP, fast forms, batch 1 (reap_one)", "nop.py_nop_fast(m, 1, 200000)()"),
    ("NOP, fast forms, batch 64", "nop.py_nop_fast(m, 64, 1280000)()"),
    ("NOP, prep_many + reap(columns=True), batch 64", "nop.py_nop_many(m, 64, 1280000)()"),
    ("NOP, seed's loop, batch 64", "nop.py_nop(m, 64, 640000)()"),
    ("4 KiB page-cache read, fast forms, QD 32",
     "randread.py_randread(m, PATH, OFFS, 32, 'buffer', fast=True)()"),
    ("4 KiB page-cache read, seed's loop, QD 32", "randread.py_randread(m, PATH, OFFS, 32, 'buffer')()"),
]

CHILD = """
import sys, json
sys.path.insert(0, %(here)r)
from runner import load_module
from workloads import nop, randread
from workloads.files import offsets_for
m = load_module(%(build)r)
PATH = %(path)r
OFFS = offsets_for(%(size)d, 100000, 1)
print(json.dumps(%(code)s))
"""


def rate(build, code, path, size):
    src = CHILD % {"here": HERE, "build": os.path.abspath(build), "path": path, "size": size,
                   "code": code}
    out = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PY_IO_URING_BUILD=os.path.abspath(build)))
    return json.loads(out.stdout.split()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="the build folder to compare against")
    ap.add_argument("--new", default="build")
    ap.add_argument("--rounds", type=int, default=8)
    a = ap.parse_args()
    size = 64 << 20
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cached.dat")
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        ratios = {label: [] for label, _ in LOOPS}
        for k in range(a.rounds):
            for label, code in LOOPS:
                # which build goes first alternates too
                first, second = (a.old, a.new) if k % 2 == 0 else (a.new, a.old)
                r1, r2 = rate(first, code, path, size), rate(second, code, path, size)
                old, new = (r1, r2) if first == a.old else (r2, r1)
                ratios[label].append(new / old)
            print("round %d done" % (k + 1), file=sys.stderr, flush=True)
    print("| loop | new/old, median | range |")
    print("| --- | --- | --- |")
    for label, rs in ratios.items():
        print("| %s | %.2f | %.2f-%.2f |" % (label, statistics.median(rs), min(rs), max(rs)))


if __name__ == "__main__":
    main()

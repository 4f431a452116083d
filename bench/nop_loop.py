"""One NOP round-trip loop of bench/workloads/nop.py alone, for valgrind
--tool=callgrind and perf (bench/profiling.py):

    valgrind --tool=callgrind python3 bench/nop_loop.py OPS [--api API] [--build build]

Run it twice (OPS and 2*OPS) and divide the difference of the instruction
counts by OPS: the per-op cost without the interpreter's start-up.  With
--floor the same loop runs on bench/ideal_ring.c (`make
build/bench/ideal_ring<EXT_SUFFIX>`), py_io_uring's call shapes with
nothing behind them: the least any module with this API costs."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import ROOT, load_module  # noqa: E402
from workloads.nop import NOP_APIS  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ops", type=int)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--api", default="wait_cqe_nr", choices=sorted(NOP_APIS),
                    help="wait_cqe_nr: cqe_seen per op; batch: Sqe/Cqe with cq_advance; "
                         "fast: the fast forms; many: prep_many/reap(columns=True)")
    ap.add_argument("--build", default="build")
    ap.add_argument("--floor", action="store_true", help="run the loop on bench/ideal_ring.c")
    a = ap.parse_args()
    if a.floor:
        sys.path.insert(0, os.path.join(ROOT, a.build, "bench"))
        import ideal_ring as m
    else:
        m = load_module(a.build)
    NOP_APIS[a.api](m, a.batch, a.ops)()


if __name__ == "__main__":
    main()

"""The NOP round-trip loop of bench/run.py alone, for valgrind --tool=callgrind:

    valgrind --tool=callgrind python3 bench/nop_loop.py OPS [--api API] [--build build]

Run it twice (OPS and 2*OPS) and divide the difference of the instruction
counts by OPS: the per-op cost without the interpreter's start-up."""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ops", type=int)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--api", default="wait_cqe_nr", choices=sorted(run.NOP_APIS),
                    help="wait_cqe_nr: cqe_seen per op; batch: the fastest API")
    ap.add_argument("--build", default="build")
    a = ap.parse_args()
    m = run.load_module(a.build)
    run.NOP_APIS[a.api](m, a.batch, a.ops)()


if __name__ == "__main__":
    main()

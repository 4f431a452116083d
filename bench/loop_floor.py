"""The floor under the NOP loops, in time: each tier's loop of
bench/workloads/nop.py on py_io_uring, the same loop on bench/ideal_ring.c
(py_io_uring's call shapes with nothing behind them: no kernel, no record,
no check), and C over liburing (bench/nop.c), alternated in one run.

    make build/bench/nop build/bench/ideal_ring$(EXT_SUFFIX)
    python3 bench/loop_floor.py [--build build] [--batch 64] [--rounds 5]

A Python loop on a real ring pays the kernel's part, which C pays too
(C's own code is about 60 instructions a NOP), plus the Python side's
user-space time, of which the ideal module's loop is the least any module
with this API can cost.  So the best ratio to C that any implementation of
these call shapes can reach on this interpreter and machine is about
t_C / (t_C + t_floor): "ceiling" below, beside the ratio py_io_uring
reaches.  (bench/instructions.py --floor gives the same floor in
instructions.)"""

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import ROOT, load_module  # noqa: E402
from workloads.nop import NOP_APIS, ops_for  # noqa: E402


def c_rate(build, batch, ops):
    out = subprocess.run([os.path.join(ROOT, build, "bench", "nop"), str(batch), str(ops)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.split()[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--batch", type=int, action="append", help="default: 1 and 64")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(ROOT, a.build, "bench"))
    import ideal_ring
    m = load_module(a.build)
    for batch in a.batch or (1, 64):
        ops = ops_for(batch, False)
        rates = {}
        for _ in range(a.rounds):
            rates.setdefault("C", []).append(c_rate(a.build, batch, ops))
            for api, loop in NOP_APIS.items():
                rates.setdefault(api, []).append(loop(m, batch, ops)())
                rates.setdefault(api + " floor", []).append(loop(ideal_ring, batch, ops)())
        c = statistics.median(rates["C"])
        print("batch %d: C %.2fM NOPs/s" % (batch, c / 1e6))
        print("  %-12s %10s %10s %9s %9s" % ("tier", "py_io_uring", "floor", "py/C", "ceiling"))
        for api in NOP_APIS:
            py, fl = statistics.median(rates[api]), statistics.median(rates[api + " floor"])
            # per op: C's time, plus the ideal module's user-space time
            ceiling = (1 / c) / (1 / c + 1 / fl)
            print("  %-12s %9.2fM %9.2fM %9.2f %9.2f" % (api, py / 1e6, fl / 1e6, py / c, ceiling))


if __name__ == "__main__":
    main()

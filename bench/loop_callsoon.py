"""call_soon microbench (docs/loop.md): µs per callback scheduled with
call_soon and run by the loop, in two shapes: a batch (BATCH call_soon,
then one iteration runs them) and a chain (each callback schedules the
next, one per iteration, as a future's done-callback -> task step chain
does); asyncio's loop, uvloop, py_io_uring's loop.  CPU time.

    python3 bench/loop_callsoon.py [--build DIR]"""

import asyncio
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 200000
BATCH = 1000


async def batch():
    loop = asyncio.get_running_loop()
    cs = loop.call_soon
    count = [0]

    def cb(x):
        count[0] += 1

    c0 = time.process_time()
    for _ in range(N // BATCH):
        for i in range(BATCH):
            cs(cb, i)
        await asyncio.sleep(0)
    c1 = time.process_time()
    assert count[0] == N
    return (c1 - c0) / N * 1e6


async def chain():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = [N]

    def cb():
        left[0] -= 1
        if left[0]:
            loop.call_soon(cb)
        else:
            done.set_result(None)

    c0 = time.process_time()
    loop.call_soon(cb)
    await done
    c1 = time.process_time()
    return (c1 - c0) / N * 1e6


def loops(build):
    sys.path.insert(0, build)
    import py_io_uring.loop as pl
    out = [("asyncio", asyncio.new_event_loop)]
    try:
        import uvloop
        out.append(("uvloop", uvloop.new_event_loop))
    except ImportError:
        pass
    out.append(("py_io_uring", pl.EventLoop))
    return out


def run(factory, fn):
    loop = factory()
    try:
        return loop.run_until_complete(fn())
    finally:
        loop.close()


if __name__ == "__main__":
    build = os.path.join(ROOT, "build")
    if "--build" in sys.argv:
        build = os.path.abspath(sys.argv[sys.argv.index("--build") + 1])
    table = loops(build)
    for shape in (batch, chain):
        res = {name: [] for name, _ in table}
        for _ in range(5):
            for name, factory in table:
                res[name].append(run(factory, shape))
        for name, v in res.items():
            print("%-6s %-12s %6.3f us per callback (median of 5; %s)" % (
                shape.__name__, name, statistics.median(v),
                ", ".join("%.3f" % x for x in v)))

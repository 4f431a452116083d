#!/usr/bin/env python3
"""4 KiB random reads from a page-cached file under asyncio, N tasks each
with one read in flight: AsyncRing.read() against asyncio's own way of doing
file I/O (os.preadv in the loop's thread pool of N threads), on the stock
loop and on uvloop; bench/run.py sweeps N.  Alone, it prints reads/s per
variant at 32 tasks, medians of --repeat rounds measured round-robin, and
the ratios measured in the same run.

    python3 bench/workloads/async_reads.py [--reads 20000] [--repeat 5]
"""
import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # bench/, run alone
from runner import Case, Unavailable, human  # noqa: E402
from workloads.files import cached_file, offsets_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLOCK = 4096
TASKS = 32


async def ring_reads(ring, fd, offsets):
    buf = bytearray(BLOCK)
    for off in offsets:
        await ring.read(fd, buf, off)


async def pool_reads(loop, pool, fd, offsets):
    buf = bytearray(BLOCK)
    for off in offsets:
        await loop.run_in_executor(pool, os.preadv, fd, [buf], off)


async def run_variant(kind, fd, offsets, tasks=TASKS):
    from py_io_uring import AsyncRing
    per = [offsets[i::tasks] for i in range(tasks)]
    loop = asyncio.get_running_loop()
    if kind == "ring":
        async with AsyncRing(256) as ring:
            t = time.perf_counter()
            await asyncio.gather(*[ring_reads(ring, fd, p) for p in per])
            return len(offsets) / (time.perf_counter() - t)
    with ThreadPoolExecutor(tasks) as pool:
        t = time.perf_counter()
        await asyncio.gather(*[pool_reads(loop, pool, fd, p) for p in per])
        return len(offsets) / (time.perf_counter() - t)


def runner(loop_kind, kind, path, offsets, tasks=TASKS):
    """A callable for bench/run.py: one measurement of one variant."""
    def run():
        if loop_kind == "uvloop":
            try:
                import uvloop  # noqa: F401
            except ImportError:
                raise Unavailable("uvloop is not installed (pip install uvloop failed or was not run)") from None
        fd = os.open(path, os.O_RDONLY)
        try:
            return measure(loop_kind, kind, fd, offsets, tasks)
        finally:
            os.close(fd)
    return run


def measure(loop_kind, kind, fd, offsets, tasks=TASKS):
    if loop_kind == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run_variant(kind, fd, offsets, tasks))
    finally:
        loop.close()


DESCRIBE = (
    "Page-cache reads under asyncio: N tasks, each awaiting one 4 KiB `AsyncRing.read()` at a "
    "time, against `loop.run_in_executor(pool, os.preadv, ...)` with a pool of N threads "
    "(asyncio's own way of doing file I/O), on the stock loop and on uvloop; swept over N (%s); "
    "the table shows N = 32.")


def task_counts(quick):
    return (32,) if quick else (1, 8, 32)


def cases(setup):
    path, size = cached_file(setup, "async.dat")
    # run_in_executor does ~25k reads/s here: 25k reads is a second a run
    offs = offsets_for(size, 2500 if setup.quick else 25000, setup.seed)
    panel = ("4 KiB page-cache reads under asyncio", "tasks (reads in flight)")
    out = []
    for tasks in task_counts(setup.quick):
        # one task waits out each read: a fifth of the reads is enough
        offs_t = offs[:len(offs) // 5] if tasks == 1 else offs
        case = Case("4 KiB random read, page cache (%s), %d asyncio tasks" % (human(size), tasks),
                    "ops/s", panel, tasks, headline=tasks == 32)
        for lk in ("asyncio", "uvloop"):
            pool = "run_in_executor(os.preadv) on %s" % lk
            case.baseline(pool, runner(lk, "pool", path, offs_t, tasks), pool)
            case.variant("AsyncRing.read on %s" % lk, runner(lk, "ring", path, offs_t, tasks),
                         "AsyncRing.read on %s" % lk, against=[pool])
        out.append(case)
    return out


def describe(quick):
    return DESCRIBE % ", ".join(map(str, task_counts(quick)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", type=int, default=64 << 20)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(ROOT, os.environ.get("PY_IO_URING_BUILD", "build")))
    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401
        loops.append("uvloop")
    except ImportError:
        print("uvloop: not installed, its rows are skipped")
    with tempfile.NamedTemporaryFile(dir=os.environ.get("TMPDIR", "/var/tmp")) as f:
        f.write(os.urandom(args.size))
        f.flush()
        fd = os.open(f.name, os.O_RDONLY)
        rnd = random.Random(1)
        offsets = [rnd.randrange(args.size // BLOCK) * BLOCK for _ in range(args.reads)]
        os.pread(fd, args.size, 0)                      # in the page cache
        results = {}
        for _ in range(args.repeat):
            for lk in loops:
                for kind in ("ring", "pool"):
                    results.setdefault((lk, kind), []).append(measure(lk, kind, fd, offsets))
        os.close(fd)
    print("| loop | AsyncRing.read reads/s | run_in_executor(os.preadv) reads/s | ratio |")
    print("| --- | --- | --- | --- |")
    for lk in loops:
        r, p = results[(lk, "ring")], results[(lk, "pool")]
        ratio = statistics.median(a / b for a, b in zip(r, p))
        print("| %s | %.0f (%.0f-%.0f) | %.0f (%.0f-%.0f) | %.2fx |" % (
            lk, statistics.median(r), min(r), max(r), statistics.median(p), min(p), max(p), ratio))


if __name__ == "__main__":
    main()

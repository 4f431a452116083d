#!/usr/bin/env python3
"""py_io_uring benchmark suite: one table of py_io_uring against baselines.

    python3 bench/run.py [--size 1G] [--repeat 5] [--quick] [--out docs/performance.md]

Every figure is the median of --repeat repetitions with the min-max spread;
the variants of one workload are measured round-robin within each repetition,
so each ratio compares figures taken side by side on the same (noisy) machine.
The ratio is the median of the per-repetition ratios py_io_uring / baseline
(above 1: py_io_uring is faster).  Nothing here asserts a time.

The C baselines (bench/nop.c, bench/randread.c) must be built first into
--bin (the Makefile's `bench` target does it).
"""

import argparse
import contextlib
import datetime
import fcntl
import mmap
import os
import platform
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = 4096


def load_module(build):
    sys.path.insert(0, os.path.join(ROOT, os.environ.get("PY_IO_URING_BUILD", build)))
    import py_io_uring
    return py_io_uring


def parse_size(text):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().rstrip("ib").rstrip("b") if text[-1:].lower() == "b" else text.strip().lower()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def human(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return "%g %s" % (n / div, unit)
    return "%d B" % n


# --------------------------------------------------------------------------
# measurement bookkeeping


class Row:
    """One workload: a py_io_uring variant and its baselines, measured together."""

    def __init__(self, workload, unit, py_name, py_fn, baselines, warmup=False):
        self.warmup = warmup
        self.workload = workload
        self.unit = unit
        self.py_name = py_name
        self.fns = [(py_name, py_fn)] + list(baselines)
        self.samples = {name: [] for name, _ in self.fns}
        self.notes = {}

    def run(self, repeat):
        order = list(self.fns)
        if self.warmup:
            # one untimed run of each first: what a first run pays once
            # (the kernel's worker threads, page-cache pages the host VM has
            # not backed yet) is nobody's per-copy cost
            for name, fn in order:
                try:
                    fn()
                except Exception:   # reported by the timed runs below
                    pass
        for r in range(repeat):
            for name, fn in order:
                if name in self.notes:
                    continue
                try:
                    self.samples[name].append(fn())
                except Unavailable as exc:
                    self.notes[name] = str(exc)
                except Exception as exc:  # a baseline failing is reported, not fatal
                    self.notes[name] = "failed: %s" % (exc,)
            order = order[1:] + order[:1]   # rotate: nobody always goes first

    def fill(self):
        """Take the samples another row's runs left in sinks (filled_by)."""
        src, sinks = self.filled_by
        self.notes = dict(src.notes)
        for name, _ in self.fns:
            # the baselines' sinks also hold earlier rows' runs: take this row's
            self.samples[name] = sinks[name][-len(src.samples[name]):] if src.samples[name] else []

    def stats(self, name):
        s = self.samples[name]
        if name in self.notes or not s:
            return None
        return statistics.median(s), min(s), max(s)

    def ratio(self, name):
        py = self.samples[self.py_name]
        other = self.samples[name]
        if name in self.notes or self.py_name in self.notes or not other:
            return None
        rs = [a / b for a, b in zip(py, other) if b]
        return statistics.median(rs), min(rs), max(rs)


class Unavailable(Exception):
    pass


def fmt(stats, unit):
    if stats is None:
        return "-"
    med, lo, hi = stats
    if unit == "MB/s":
        return "%.0f (%.0f-%.0f)" % (med, lo, hi)
    return "%s (%s-%s)" % (si(med), si(lo), si(hi))


def si(x):
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    if x >= 1e3:
        return "%.0fk" % (x / 1e3)
    return "%.0f" % x


# --------------------------------------------------------------------------
# 1. NOP round trips


def py_nop(m, batch, total):
    def run():
        ring = m.IoUring(256)
        try:
            rounds = total // batch
            s = 0
            n = 0
            get_sqe, submit, wait_cqe_nr, cqe_seen = ring.get_sqe, ring.submit, ring.wait_cqe_nr, ring.cqe_seen
            t0 = time.perf_counter()
            for _ in range(rounds):
                for i in range(batch):
                    sqe = get_sqe()
                    sqe.prep_nop()
                    sqe.set_data(n + i)
                submit()
                b = 0
                for c in wait_cqe_nr(batch):
                    b += c.res() + c.get_data()
                    cqe_seen(c)
                s += b
                n += batch
            dt = time.perf_counter() - t0
            assert s == n * (n - 1) // 2, "wrong user data"
            return n / dt
        finally:
            ring.queue_exit()
    return run


def py_nop_batch(m, batch, total):
    """The fastest API: per op get_sqe(), prep_nop(), set_data(i); per batch
    submit_and_wait(batch) (submit and wait in one system call),
    wait_cqe_nr(batch) (the completions are already there: no system call),
    res() + get_data() per completion and one cq_advance(batch)."""
    def run():
        ring = m.IoUring(256)
        try:
            rounds = total // batch
            s = 0
            n = 0
            get_sqe, submit_and_wait, wait_cqe_nr, cq_advance = (
                ring.get_sqe, ring.submit_and_wait, ring.wait_cqe_nr, ring.cq_advance)
            t0 = time.perf_counter()
            for _ in range(rounds):
                for i in range(batch):
                    sqe = get_sqe()
                    sqe.prep_nop()
                    sqe.set_data(n + i)
                submit_and_wait(batch)
                cqes = wait_cqe_nr(batch)
                b = 0
                for c in cqes:
                    b += c.res() + c.get_data()
                s += b
                cq_advance(len(cqes))
                n += batch
            dt = time.perf_counter() - t0
            assert s == n * (n - 1) // 2, "wrong user data"
            return n / dt
        finally:
            ring.queue_exit()
    return run


def py_nop_fast(m, batch, total):
    """The fast forms: per op ring.prep_nop(user_data=i), no Sqe object; per
    batch submit_and_wait(batch) and reap(batch), which gives (user_data,
    result, flags) tuples and marks them seen.  At batch 1 without the inner
    loops, as one writes a loop of one operation at a time, and with
    reap_one(True, True): one call submits, waits and reaps the one
    completion, given as its tuple (no list)."""
    def run():
        ring = m.IoUring(256)
        try:
            rounds = total // batch
            s = 0
            n = 0
            prep_nop, submit_and_wait, reap = ring.prep_nop, ring.submit_and_wait, ring.reap
            reap_one = ring.reap_one
            t0 = time.perf_counter()
            if batch == 1:
                # one op at a time, written as one would: no inner loops
                for n in range(rounds):
                    prep_nop(user_data=n)
                    data, res, flags = reap_one(True, True)   # submit, wait, reap
                    s += res + data
                n = rounds
                rounds = 0
            for _ in range(rounds):
                for i in range(batch):
                    prep_nop(user_data=n + i)
                submit_and_wait(batch)
                b = 0
                for data, res, flags in reap(batch):
                    b += res + data
                s += b
                n += batch
            dt = time.perf_counter() - t0
            assert s == n * (n - 1) // 2, "wrong user data"
            return n / dt
        finally:
            ring.queue_exit()
    return run


def py_nop_many(m, batch, total):
    """The batch API: per batch one prep_many("nop", user_data=range(...))
    queues every entry, one reap_columns(batch, batch, True) submits, waits
    and reaps them as three lists, and sum() reads results and user data:
    no Python loop per op."""
    def run():
        ring = m.IoUring(256)
        try:
            rounds = total // batch
            s = 0
            n = 0
            prep_many, reap_columns = ring.prep_many, ring.reap_columns
            t0 = time.perf_counter()
            for _ in range(rounds):
                prep_many("nop", user_data=range(n, n + batch))
                data, res, flags = reap_columns(batch, batch, True)
                s += sum(res) + sum(data)
                n += batch
            dt = time.perf_counter() - t0
            assert s == n * (n - 1) // 2, "wrong user data"
            return n / dt
        finally:
            ring.queue_exit()
    return run


# the NOP loops by name, for bench/nop_loop.py (callgrind)
NOP_APIS = {"wait_cqe_nr": py_nop, "batch": py_nop_batch, "fast": py_nop_fast,
            "many": py_nop_many}


def c_prog(binary, *args):
    def run():
        if not os.path.exists(binary):
            raise Unavailable("not built (make bench)")
        out = subprocess.run([binary] + [str(a) for a in args], check=True,
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, val = line.partition(" ")
            if key == "ops_per_sec":
                return float(val)
        raise RuntimeError("no ops_per_sec in %r" % out)
    return run


def peer_nop(batch, total):
    """The same loop over `pip install liburing` (YoSTEALTH's binding)."""
    def run():
        try:
            import liburing as L
        except ImportError:
            raise Unavailable("not installed (pip install liburing failed or was not run)")
        ring, cqe = L.Ring(), L.Cqe()
        L.io_uring_queue_init(256, ring)
        try:
            rounds = total // batch
            s = n = 0
            get_sqe, prep_nop, set_data = L.io_uring_get_sqe, L.io_uring_prep_nop, L.io_uring_sqe_set_data64
            submit, wait_cqe, get_data, seen = L.io_uring_submit, L.io_uring_wait_cqe, L.io_uring_cqe_get_data64, L.io_uring_cqe_seen
            t0 = time.perf_counter()
            for _ in range(rounds):
                for i in range(batch):
                    sqe = get_sqe(ring)
                    prep_nop(sqe)
                    set_data(sqe, n + i)
                submit(ring)
                b = 0
                for i in range(batch):
                    wait_cqe(ring, cqe)
                    c = cqe[0]
                    b += c.res + get_data(c)
                    seen(ring, c)
                s += b
                n += batch
            dt = time.perf_counter() - t0
            assert s == n * (n - 1) // 2, "wrong user data"
            return n / dt
        finally:
            L.io_uring_queue_exit(ring)
    return run


# --------------------------------------------------------------------------
# 2./3. random 4 KiB reads


def make_file(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)
        f.flush()
        os.fsync(f.fileno())


def warm(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


def offsets_for(size, n, seed):
    rnd = random.Random(seed)
    blocks = size // BLOCK
    return [rnd.randrange(blocks) * BLOCK for _ in range(n)]


@contextlib.contextmanager
def read_ring(m, path, depth, mode, direct=False):
    """A ring, the file's fd and `depth` BLOCK-sized slots of one mmap (page
    aligned, as O_DIRECT needs), registered as mode says: 'fixed' the
    buffer, 'registered' the buffer and the file (IOSQE_FIXED_FILE, index
    0).  Everything is released on the way out."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    ring = m.IoUring(max(256, depth))
    area = mmap.mmap(-1, BLOCK * depth)
    view = memoryview(area)
    slots = [view[i * BLOCK:(i + 1) * BLOCK] for i in range(depth)]
    try:
        if mode in ("fixed", "registered"):
            ring.register_buffers([area])
        if mode == "registered":
            ring.register_files([fd])
        yield ring, fd, slots
    finally:
        ring.queue_exit()
        del slots[:]
        view.release()
        area.close()
        os.close(fd)


def py_randread(m, path, offs, depth, mode, direct=False, fast=False):
    """Keep `depth` reads in flight.  mode: 'buffer' (reused memoryview slices),
    'length' (the module allocates bytes), 'fixed' (registered buffer).
    fast: IoUring.prep_read(..., user_data=slot) and reap() instead of
    get_sqe(), Sqe.prep_read(), set_data() and a Cqe per completion."""
    def run():
        with read_ring(m, path, depth, mode, direct) as (ring, fd, slots):
            return loop(ring, fd, slots)

    def loop(ring, fd, slots):
        free = list(range(depth))
        n = len(offs)
        nxt = done = total = 0
        get_sqe, submit_and_wait, peek_cqe, cqe_seen = ring.get_sqe, ring.submit_and_wait, ring.peek_cqe, ring.cqe_seen
        prep_read, prep_read_fixed, reap = ring.prep_read, ring.prep_read_fixed, ring.reap
        t0 = time.perf_counter()
        if fast:
            # the fast forms: each completion's slot is refilled at once,
            # one call per read, one reap() per wait
            prep = prep_read if mode == "buffer" else prep_read_fixed
            fixed = mode != "buffer"
            if mode == "registered":
                fd, sflags = 0, m.IOSQE_FIXED_FILE
            else:
                sflags = 0
            for slot in free[:n]:
                if fixed:
                    prep(fd, slots[slot], offs[nxt], 0, user_data=slot, sqe_flags=sflags)
                else:
                    prep(fd, slots[slot], offs[nxt], user_data=slot)
                nxt += 1
            inflight = nxt
            # one loop per call shape, as a program using one would
            # write it (no per-read test of the mode)
            while inflight and fixed:
                for slot, r, _ in reap(depth, 1, True):   # submit, wait, reap
                    total += r
                    if nxt < n:
                        prep(fd, slots[slot], offs[nxt], 0, user_data=slot, sqe_flags=sflags)
                        nxt += 1
                    else:
                        inflight -= 1
            while inflight:
                for slot, r, _ in reap(depth, 1, True):
                    total += r
                    if nxt < n:
                        prep(fd, slots[slot], offs[nxt], user_data=slot)
                        nxt += 1
                    else:
                        inflight -= 1
            done = n
        while done < n:
            while free and nxt < n:
                slot = free.pop()
                sqe = get_sqe()
                if mode == "buffer":
                    sqe.prep_read(fd, slots[slot], offs[nxt])
                elif mode == "length":
                    sqe.prep_read(fd, BLOCK, offs[nxt])
                else:
                    sqe.prep_read_fixed(fd, slots[slot], offs[nxt], 0)
                sqe.set_data(slot)
                nxt += 1
            submit_and_wait(1)
            c = peek_cqe()
            while c is not None:
                r = c.getresult()
                total += r if mode != "length" else len(r)
                free.append(c.get_data())
                cqe_seen(c)
                done += 1
                c = peek_cqe()
        dt = time.perf_counter() - t0
        assert total == n * BLOCK, "short reads"
        return n / dt
    return run


def py_randread_many(m, path, offs, depth):
    """The batch API on page-cache reads, registered file and buffer: each
    reap_columns(depth, 1, True) submits, waits and reaps what is ready as
    three lists, and one prep_many("read_fixed", ...) refills every slot
    that completed: two calls per batch, no call per read."""
    def run():
        with read_ring(m, path, depth, "registered") as (ring, fd, slots):
            return loop(ring, slots)

    def loop(ring, slots):
        n = len(offs)
        fixed = m.IOSQE_FIXED_FILE
        prep_many, reap_columns = ring.prep_many, ring.reap_columns
        t0 = time.perf_counter()
        nxt = min(depth, n)
        prep_many("read_fixed", [(0, slots[i], offs[i], 0) for i in range(nxt)],
                  user_data=range(nxt), sqe_flags=fixed)
        total, inflight = 0, nxt
        while inflight:
            done, res, _ = reap_columns(depth, 1, True)   # submit, wait, reap
            total += sum(res)
            k = min(len(done), n - nxt)
            if k:
                prep_many("read_fixed", [(0, slots[s], off, 0) for s, off in
                                         zip(done, offs[nxt:nxt + k])],
                          user_data=done[:k], sqe_flags=fixed)
                nxt += k
            inflight -= len(done) - k
        dt = time.perf_counter() - t0
        assert total == n * BLOCK, "short reads"
        return n / dt
    return run


def pread_loop(path, offs):
    def run():
        fd = os.open(path, os.O_RDONLY)
        try:
            pread = os.pread
            t0 = time.perf_counter()
            total = 0
            for off in offs:
                total += len(pread(fd, BLOCK, off))
            dt = time.perf_counter() - t0
            assert total == len(offs) * BLOCK
            return len(offs) / dt
        finally:
            os.close(fd)
    return run


def preadv_direct(path, offs, workers):
    """os.preadv into an aligned mmap buffer; workers > 1: a ThreadPoolExecutor
    of that many threads, each taking a strided share of the offsets with its
    own buffer (the cheapest way to use threads: one task per thread)."""
    def part(share):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, BLOCK)
        try:
            preadv, bufs, total = os.preadv, [buf], 0
            for off in share:
                total += preadv(fd, bufs, off)
            return total
        finally:
            buf.close()
            os.close(fd)

    def run():
        t0 = time.perf_counter()
        if workers == 1:
            total = part(offs)
        else:
            with ThreadPoolExecutor(workers) as ex:
                total = sum(ex.map(part, [offs[i::workers] for i in range(workers)]))
        dt = time.perf_counter() - t0
        assert total == len(offs) * BLOCK
        return len(offs) / dt
    return run


def direct_supported(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        return "open(O_DIRECT) failed: %s" % exc
    buf = mmap.mmap(-1, BLOCK)
    try:
        os.preadv(fd, [buf], 0)
    except OSError as exc:
        return "O_DIRECT read failed: %s" % exc
    finally:
        buf.close()
        os.close(fd)
    return None


# --------------------------------------------------------------------------
# 4. copy


def py_copy(m, src, dst, chunk=1 << 20, inflight=4, one_worker=False):
    """Read/write pipeline: `inflight` buffers, each going read -> write -> read.
    one_worker: register_iowq_max_workers(1, 1), so writes the kernel hands
    to its worker threads run one at a time instead of contending for the
    file's inode lock."""
    def run():
        size = os.path.getsize(src)
        fin = os.open(src, os.O_RDONLY)
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        ring = m.IoUring(64)
        if one_worker:
            ring.register_iowq_max_workers(1, 1)
        bufs = [bytearray(chunk) for _ in range(inflight)]
        views = [memoryview(b) for b in bufs]
        pos = 0
        pending = 0
        t0 = time.perf_counter()
        try:
            # data: (slot, offset, is_write)
            for slot in range(inflight):
                if pos >= size:
                    break
                sqe = ring.get_sqe()
                sqe.prep_read(fin, views[slot], pos)
                sqe.set_data((slot, pos, False))
                pos += chunk
                pending += 1
            while pending:
                ring.submit_and_wait(1)
                c = ring.peek_cqe()
                while c is not None:
                    slot, off, is_write = c.get_data()
                    n = c.getresult()
                    ring.cqe_seen(c)
                    pending -= 1
                    if not is_write:
                        sqe = ring.get_sqe()
                        sqe.prep_write(fout, views[slot][:n], off)
                        sqe.set_data((slot, off, True))
                        pending += 1
                    elif pos < size:
                        sqe = ring.get_sqe()
                        sqe.prep_read(fin, views[slot], pos)
                        sqe.set_data((slot, pos, False))
                        pos += chunk
                        pending += 1
                    c = ring.peek_cqe()
            dt = time.perf_counter() - t0
        finally:
            ring.queue_exit()
            os.close(fin)
            os.close(fout)
        if os.path.getsize(dst) != size:
            raise RuntimeError("copy has the wrong size")
        os.unlink(dst)
        return size / dt / 1e6
    return run


def py_copy_splice(m, src, dst, chunk=1 << 20, inflight=4):
    """The copy without user-space copies: per pipe, splice(src -> pipe)
    linked to splice(pipe -> dst) at the same offset, `inflight` pipes of
    `chunk` bytes in flight, with the fast forms."""
    def run():
        size = os.path.getsize(src)
        fin = os.open(src, os.O_RDONLY)
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        pipes = [os.pipe() for _ in range(inflight)]
        ring = m.IoUring(64)
        link = m.IOSQE_IO_LINK
        pos = 0
        pending = 0
        moved = 0

        def start(slot):
            nonlocal pos, pending
            n = min(chunk, size - pos)
            r, w = pipes[slot]
            ring.prep_splice(fin, pos, w, -1, n, user_data=None, sqe_flags=link)
            ring.prep_splice(r, -1, fout, pos, n, user_data=(slot, n))
            pos += n
            pending += 1

        t0 = time.perf_counter()
        try:
            for r, w in pipes:
                fcntl.fcntl(w, 1031, chunk)            # F_SETPIPE_SZ
            for slot in range(inflight):
                if pos < size:
                    start(slot)
            while pending:
                for data, res, _ in ring.reap(2 * inflight, 1, True):
                    if data is None:                  # the splice into the pipe
                        if res < 0:
                            raise OSError(-res, "splice in: " + os.strerror(-res))
                        continue
                    slot, n = data
                    if res != n:
                        raise RuntimeError("short splice: %d of %d" % (res, n))
                    moved += n
                    pending -= 1
                    if pos < size:
                        start(slot)
            dt = time.perf_counter() - t0
        finally:
            ring.queue_exit()
            os.close(fin)
            os.close(fout)
            for r, w in pipes:
                os.close(r)
                os.close(w)
        if moved != size or os.path.getsize(dst) != size:
            raise RuntimeError("copy has the wrong size")
        os.unlink(dst)
        return size / dt / 1e6
    return run


def shutil_copy(src, dst):
    def run():
        size = os.path.getsize(src)
        t0 = time.perf_counter()
        shutil.copyfile(src, dst)
        dt = time.perf_counter() - t0
        os.unlink(dst)
        return size / dt / 1e6
    return run


def rw_loop_copy(src, dst, chunk=1 << 20):
    def run():
        size = os.path.getsize(src)
        t0 = time.perf_counter()
        buf = bytearray(chunk)
        with open(src, "rb", buffering=0) as fi, open(dst, "wb", buffering=0) as fo:
            view = memoryview(buf)
            while True:
                n = fi.readinto(buf)
                if not n:
                    break
                fo.write(view[:n])
        dt = time.perf_counter() - t0
        os.unlink(dst)
        return size / dt / 1e6
    return run


# --------------------------------------------------------------------------
# 5. TCP echo
#
# A server is (name, command): a script in bench/echo/ run with this
# interpreter (see bench/echo/common.py for what it must do), or a C program
# from --bin.  Each py_io_uring server in ECHO_PY_SERVERS gets a row against
# every server in ECHO_BASELINES; a new server (an AsyncRing one, say) is one
# more line here.

ECHO_PY_SERVERS = [
    ("py_io_uring (sync IoUring)", ["bench/echo/ring_sync.py"]),
    ("AsyncRing on asyncio", ["bench/echo/asyncring.py"]),
    ("AsyncRing on uvloop", ["bench/echo/asyncring.py", "--uvloop"]),
]
ECHO_BASELINES = [
    ("C epoll server", ["@echo_server"]),
    ("asyncio streams", ["bench/echo/asyncio_streams.py"]),
    ("asyncio Protocol", ["bench/echo/asyncio_protocol.py"]),
    ("asyncio BufferedProtocol", ["bench/echo/asyncio_protocol.py", "--buffered"]),
    ("uvloop streams", ["bench/echo/asyncio_streams.py", "--uvloop"]),
    ("uvloop Protocol", ["bench/echo/asyncio_protocol.py", "--uvloop"]),
    ("uvloop BufferedProtocol", ["bench/echo/asyncio_protocol.py", "--uvloop", "--buffered"]),
]


# per server: (load generator CPU share, server CPU share) of each run
LOAD_CPU = {}


def load_note(servers):
    """Who was busy during the echo runs: the load generator's and the
    server's CPU time over the run's wall time (1.0 = one core)."""
    parts = []
    for name, spec in servers:
        got = LOAD_CPU.get(" ".join(spec))
        if got:
            parts.append("%s: load generator %.2f, server %.2f" % (
                name, statistics.median(g for g, _ in got), statistics.median(sv for _, sv in got)))
    return ("CPU use during the echo runs (CPU-seconds per second of the run, median; 1.00 is one "
            "core of the two): " + "; ".join(parts) + ".") if parts else None


def server_command(spec, build, binp):
    """The argv that starts a server given as in ECHO_PY_SERVERS."""
    first, rest = spec[0], list(spec[1:])
    if first.startswith("@"):
        return [os.path.join(binp, first[1:])] + rest
    return [sys.executable, os.path.join(ROOT, first)] + rest + ["--build", build]


def needs_module(spec):
    """Why a server cannot run here (a module it imports is missing), or None."""
    if "--uvloop" in spec:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "uvloop is not installed (pip install uvloop failed or was not run)"
    return None


def proc_cpu(pid):
    """CPU seconds (user + system) the process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def echo_run(spec, build, binp, conns, msg, seconds, cpu_sink=None):
    """Start the server, drive it with echo_load for `seconds`, stop it;
    return messages per second.  cpu_sink, a list, gets the messages per
    CPU-second the server itself used (its efficiency, which the load
    generator's own limit does not cap)."""
    def run():
        why = needs_module(spec)
        if why:
            raise Unavailable(why)
        load = os.path.join(binp, "echo_load")
        cmd = server_command(spec, build, binp)
        for path in (load, cmd[0]):
            if not os.path.exists(path):
                raise Unavailable("%s is not built (make bench)" % os.path.basename(path))
        srv = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        try:
            line = srv.stdout.readline()   # bounded: the server prints or dies
            if not line.startswith("PORT "):
                srv.kill()
                raise RuntimeError("server gave no port: %r %s" % (line, srv.stderr.read()[-300:]))
            port = int(line.split()[1])
            cpu0 = proc_cpu(srv.pid)
            out = subprocess.run([load, str(port), str(conns), str(msg), str(seconds)],
                                 capture_output=True, text=True, timeout=seconds + 60)
            if out.returncode != 0:
                raise RuntimeError("echo_load failed: %s" % out.stderr.strip()[-300:])
            cpu = proc_cpu(srv.pid) - cpu0
            vals = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
            if cpu_sink is not None:
                cpu_sink.append(float(vals["messages"]) / cpu if cpu > 0 else float("nan"))
            LOAD_CPU.setdefault(" ".join(spec), []).append(
                (float(vals["cpu_seconds"]) / float(vals["seconds"]), cpu / float(vals["seconds"])))
            return float(vals["msgs_per_sec"])
        finally:
            if srv.poll() is None:
                srv.stdin.close()          # the server exits on stdin EOF
                try:
                    srv.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    srv.kill()
                    srv.wait(timeout=5)
            for f in (srv.stdout, srv.stderr):
                f.close()
    return run


# --------------------------------------------------------------------------
# where the time goes in the NOP loop


def breakdown(m, n):
    """Nanoseconds per call of each step of the NOP round trip (batch 64)."""
    ring = m.IoUring(256)
    res = {}
    batch = 64
    rounds = max(1, n // batch)
    t_prep = t_sub = t_wait = t_cqe = 0.0
    pc = time.perf_counter
    for _ in range(rounds):
        t0 = pc()
        for i in range(batch):
            sqe = ring.get_sqe()
            sqe.prep_nop()
            sqe.set_data(i)
        t1 = pc()
        ring.submit()
        t2 = pc()
        cqes = ring.wait_cqe_nr(batch)
        t3 = pc()
        for c in cqes:
            c.res()
            c.get_data()
            ring.cqe_seen(c)
        t4 = pc()
        t_prep += t1 - t0
        t_sub += t2 - t1
        t_wait += t3 - t2
        t_cqe += t4 - t3
    ops = rounds * batch
    res["get_sqe + prep_nop + set_data"] = t_prep / ops * 1e9
    res["submit (per op, 64 a call)"] = t_sub / ops * 1e9
    res["wait_cqe_nr (per op, 64 a call)"] = t_wait / ops * 1e9
    res["res + get_data + cqe_seen"] = t_cqe / ops * 1e9
    # the interpreter's own floor: one iteration of an empty for loop
    t0 = pc()
    for i in range(ops):
        pass
    res["(empty Python loop iteration)"] = (pc() - t0) / ops * 1e9
    ring.queue_exit()
    return res


def _objects_ir(path):
    """Instructions per object file in a callgrind output: {basename: Ir}."""
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--inclusive=no", "--threshold=100", path],
                         capture_output=True, text=True, timeout=300).stdout
    rows, home = [], {}
    for line in out.splitlines():
        mm = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S.*?)(?: \[(.*)\])?$", line)
        if not mm or "PROGRAM TOTALS" in line:
            continue
        fn = mm.group(2).rsplit(":", 1)[-1].split("'")[0]
        if mm.group(3):
            home.setdefault(fn, os.path.basename(mm.group(3)))
        rows.append((int(mm.group(1).replace(",", "")), fn, mm.group(3)))
    per = {}
    for ir, fn, obj in rows:
        # callgrind_annotate leaves the binary out for code inlined from a
        # header: it belongs to the binary of the function it was inlined in
        obj = os.path.basename(obj) if obj else home.get(fn, "other")
        per[obj] = per.get(obj, 0) + ir
    return per


def callgrind_per_op(make_cmd, n, workdir):
    """User-space instructions per op, per object file: make_cmd(ops) runs the
    loop; run with n and 2n ops under callgrind, the difference over n is
    the per-op cost without start-up.  Returns {object: Ir/op} or a string."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        return "valgrind is not installed"
    runs = []
    for ops in (n, 2 * n):
        path = os.path.join(workdir, "callgrind.%d" % ops)
        try:
            r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + path] + make_cmd(ops),
                               capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return "callgrind failed: %s" % exc
        if r.returncode != 0:
            return "callgrind failed: %s" % r.stderr.strip()[-200:]
        runs.append(_objects_ir(path))
        os.unlink(path)
    a, b = runs
    return {k: (b[k] - a.get(k, 0)) / n for k in b if abs(b[k] - a.get(k, 0)) / n >= 0.5}


def rusage_per_op(make_cmd, n):
    """(user ns, system ns) of CPU per op: the child's rusage with n and 2n ops,
    the difference over n."""
    import resource
    t = []
    for ops in (n, 2 * n):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(make_cmd(ops), check=True, capture_output=True, timeout=600)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t.append((r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime))
    return ((t[1][0] - t[0][0]) / n * 1e9, (t[1][1] - t[0][1]) / n * 1e9)


def gap_measure(args, binp, workdir, quick):
    """Per NOP round trip at batch 64: callgrind instructions per object and
    user/system CPU time, for C and for each Python loop in NOP_APIS."""
    def py_cmd(api):
        return lambda ops: [sys.executable, os.path.join(ROOT, "bench", "nop_loop.py"), str(ops),
                            "--api", api, "--build", args.build]
    cmds = [("C liburing", lambda ops: [os.path.join(binp, "nop"), "64", str(ops)])]
    label = {"wait_cqe_nr": "cqe_seen per op", "batch": "Sqe/Cqe objects, cq_advance",
             "fast": "fast forms, reap()", "many": "prep_many(), reap_columns()"}
    cmds += [("py_io_uring, %s" % label[api], py_cmd(api)) for api in NOP_APIS]
    res = {}
    for name, make in cmds:
        print("... callgrind and rusage: %s" % name, file=sys.stderr, flush=True)
        cg = callgrind_per_op(make, 6400 if quick else 32000, workdir)
        n = 64000 if quick else 2560000
        ru = rusage_per_op(make, n * 5 if name.startswith("C") else n)   # C: long enough for the tick
        res[name] = (cg, ru)
    return res


def perf_profile(cmd, workdir):
    """Share of CPU samples per binary (`perf record` + `perf report --sort dso`)
    for cmd, or a string saying why there is none."""
    if not shutil.which("perf"):
        return "perf is not installed"
    data = os.path.join(workdir, "perf.data")
    try:
        rec = subprocess.run(["perf", "record", "-q", "-o", data, "--"] + cmd,
                             capture_output=True, text=True, timeout=120)
        if rec.returncode != 0:
            return "perf record failed: %s" % rec.stderr.strip()[-200:]
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso",
                              "-q", "--stdio"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "perf failed: %s" % exc
    shares = []
    for line in rep.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].endswith("%"):
            shares.append((parts[1].strip(), float(parts[0][:-1])))
    return shares[:6] or "perf report gave nothing"


# --------------------------------------------------------------------------


def machine_info():
    info = {}
    info["uname -a"] = " ".join(platform.uname())
    try:
        info["uname -a"] = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["CPU"] = "%s, %d logical CPUs" % (cpu, os.cpu_count() or 0)
    info["kernel"] = platform.release()
    info["python"] = sys.version.replace("\n", " ")
    try:
        info["liburing"] = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "liburing-dev"],
                                          capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        info["liburing"] = "?"
    try:
        import liburing
        info["peer binding"] = "liburing %s (PyPI, YoSTEALTH)" % getattr(liburing, "__version__", "?")
    except ImportError:
        info["peer binding"] = "liburing (PyPI): not installed"
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default=None, help="file size for O_DIRECT and copy (default 1G; 16M with --quick)")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions per figure (default 5; 3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and counts, for CI (about a minute)")
    ap.add_argument("--out", default=None, help="write the Markdown report here (and a PNG plot beside it)")
    ap.add_argument("--build", default="build", help="folder of the built module (default build)")
    ap.add_argument("--bin", default=None, help="folder of the C baselines (default <build>/bench)")
    ap.add_argument("--dir", default=None, help="folder for the test files (default: a temporary one in /tmp)")
    ap.add_argument("--nop-child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--no-profile", action="store_true", help="skip the perf profile of the NOP loop")
    ap.add_argument("--json", default=None, help="also save the raw results here")
    ap.add_argument("--render", default=None, metavar="JSON",
                    help="measure nothing: rewrite the report (--out) from results saved with --json")
    ap.add_argument("--no-callgrind", action="store_true",
                    help="skip the callgrind instruction counts and CPU split of the NOP loop")
    ap.add_argument("--only", default="nop,cached,async,direct,copy,echo",
                    help="comma-separated workloads")
    args = ap.parse_args()

    quick = args.quick
    size = parse_size(args.size) if args.size else (16 << 20 if quick else 1 << 30)
    repeat = args.repeat or (3 if quick else 5)
    binp = args.bin or os.path.join(ROOT, args.build, "bench")
    only = set(args.only.split(","))
    if args.render:
        data, rows = load_json(args.render)
        output(args, rows, data["notes"], data["gap"], data["profile"], data["size"], data["repeat"],
               data["elapsed"], data["quick"], data["per_op"], argv=data["argv"], date=data["date"])
        return
    m = load_module(args.build)
    if args.nop_child:      # the NOP loop alone, for perf record
        print(py_nop(m, 64, args.nop_child)())
        return
    nop_n = {1: 20000 if quick else 200000, 64: 64000 if quick else 1280000}
    cached_size = (8 << 20) if quick else (64 << 20)
    cached_n = 10000 if quick else 200000
    direct_n = 2000 if quick else 20000
    seed = 1234

    workdir = args.dir or tempfile.mkdtemp(prefix="py_io_uring_bench_", dir="/tmp")
    os.makedirs(workdir, exist_ok=True)
    rows = []
    notes = []
    t_start = time.time()
    try:
        if "nop" in only:
            for batch in (1, 64):
                n = nop_n[batch]
                base = [("C liburing", c_prog(os.path.join(binp, "nop"), batch, n * 10)),
                        ("liburing (PyPI)", peer_nop(batch, n))]
                rows.append(Row("NOP round trip, batch %d" % batch, "ops/s", "py_io_uring (cqe_seen per op)",
                                py_nop(m, batch, n), base))
                rows.append(Row("NOP round trip, batch %d" % batch, "ops/s",
                                "py_io_uring (Sqe and Cqe objects, cq_advance per batch)",
                                py_nop_batch(m, batch, n), base))
                rows.append(Row("NOP round trip, batch %d" % batch, "ops/s",
                                "py_io_uring (fast forms: ring.prep_nop(user_data=), reap(); reap_one() at batch 1)",
                                py_nop_fast(m, batch, n), base))
                if batch > 1:
                    rows.append(Row("NOP round trip, batch %d" % batch, "ops/s",
                                    "py_io_uring (fastest: prep_many(), reap_columns())",
                                    py_nop_many(m, batch, n), base))

        if "cached" in only:
            path = os.path.join(workdir, "cached.dat")
            make_file(path, cached_size)
            warm(path)
            offs = offsets_for(cached_size, cached_n, seed)
            offpath = os.path.join(workdir, "cached.off")
            with open(offpath, "wb") as f:
                f.write(struct.pack("=%dQ" % len(offs), *offs))
            crun = c_prog(os.path.join(binp, "randread"), path, offpath, BLOCK, 32)
            base = [("C liburing", crun), ("os.pread loop", pread_loop(path, offs))]
            wl = "4 KiB random read, page cache (%s), QD 32" % human(cached_size)
            rows.append(Row(wl, "ops/s", "py_io_uring (reused memoryview)",
                            py_randread(m, path, offs, 32, "buffer"), base))
            rows.append(Row(wl, "ops/s", "py_io_uring (fast forms: ring.prep_read, reap)",
                            py_randread(m, path, offs, 32, "buffer", fast=True), base))
            rows.append(Row(wl, "ops/s", "py_io_uring (fast forms, registered buffer)",
                            py_randread(m, path, offs, 32, "fixed", fast=True), base))
            creg = c_prog(os.path.join(binp, "randread"), path, offpath, BLOCK, 32, "fixed")
            rows.append(Row(wl, "ops/s", "py_io_uring (fast forms, registered file and buffer)",
                            py_randread(m, path, offs, 32, "registered", fast=True),
                            [("C liburing, registered file and buffer", creg)] + base))
            rows.append(Row(wl, "ops/s", "py_io_uring (fastest: prep_many(), reap_columns(), "
                            "registered file and buffer)",
                            py_randread_many(m, path, offs, 32),
                            [("C liburing, registered file and buffer", creg)] + base))
            rows.append(Row(wl, "ops/s", "py_io_uring (int length: new bytes)",
                            py_randread(m, path, offs, 32, "length"), base[:1]))
            rows.append(Row(wl, "ops/s", "py_io_uring (registered buffer, read_fixed)",
                            py_randread(m, path, offs, 32, "fixed"), base[:1]))

        if "async" in only:
            # asyncio does file I/O in a thread pool: AsyncRing against that
            import async_reads
            path = os.path.join(workdir, "async.dat")
            make_file(path, cached_size)
            warm(path)
            offs = offsets_for(cached_size, cached_n // 4, seed)
            wl = "4 KiB random read, page cache (%s), %d asyncio tasks" % (human(cached_size),
                                                                            async_reads.TASKS)
            for lk in ("asyncio", "uvloop"):
                base = [("run_in_executor(os.preadv) on %s" % lk,
                         async_reads.runner(lk, "pool", path, offs))]
                rows.append(Row(wl, "ops/s", "AsyncRing.read on %s" % lk,
                                async_reads.runner(lk, "ring", path, offs), base))

        big = None
        if "direct" in only or "copy" in only:
            big = os.path.join(workdir, "big.dat")
            make_file(big, size)

        if "direct" in only:
            why = direct_supported(big)
            if why:
                notes.append("O_DIRECT is not supported on %s: %s; workload 3 skipped." % (workdir, why))
            else:
                offs = offsets_for(size, direct_n, seed + 1)
                offpath = os.path.join(workdir, "direct.off")
                with open(offpath, "wb") as f:
                    f.write(struct.pack("=%dQ" % len(offs), *offs))
                for depth in (1, 32, 128):
                    base = [("C liburing", c_prog(os.path.join(binp, "randread"), big, offpath, BLOCK, depth, "direct"))]
                    if depth == 1:
                        base.append(("os.preadv loop", preadv_direct(big, offs, 1)))
                    else:
                        base.append(("os.preadv, %d threads" % depth, preadv_direct(big, offs, depth)))
                    rows.append(Row("4 KiB random read, O_DIRECT (%s), QD %d" % (human(size), depth), "ops/s",
                                    "py_io_uring (mmap buffers)",
                                    py_randread(m, big, offs, depth, "buffer", direct=True), base))

        if "copy" in only:
            dst = os.path.join(workdir, "copy.dat")
            wl = "copy a %s file (1 MiB chunks)" % human(size)
            rows.append(Row(wl, "MB/s", "py_io_uring (4 buffers in flight)", py_copy(m, big, dst),
                            [("shutil.copyfile", shutil_copy(big, dst)),
                             ("readinto/write loop", rw_loop_copy(big, dst))], warmup=True))
            rows.append(Row(wl, "MB/s", "py_io_uring (4 buffers in flight, 1 io-wq worker)",
                            py_copy(m, big, dst, one_worker=True),
                            [("shutil.copyfile", shutil_copy(big, dst))], warmup=True))
            rows.append(Row(wl, "MB/s", "py_io_uring (linked splices through 4 pipes)",
                            py_copy_splice(m, big, dst),
                            [("shutil.copyfile", shutil_copy(big, dst))], warmup=True))

        if "echo" in only:
            conns, msg = 64, 1024
            secs = 0.3 if quick else 2.0
            wl = "TCP echo, %d connections, %s messages" % (conns, human(msg))
            effs = {name: [] for name, _ in ECHO_BASELINES + ECHO_PY_SERVERS}
            base = [(name, echo_run(spec, args.build, binp, conns, msg, secs, effs[name]))
                    for name, spec in ECHO_BASELINES]
            for name, spec in ECHO_PY_SERVERS:
                row = Row(wl, "msg/s", name, echo_run(spec, args.build, binp, conns, msg, secs, effs[name]), base)
                rows.append(row)
                # the same runs seen as the server's CPU cost: filled in by the row above
                eff = Row(wl + ", per server CPU-second", "msg/CPU-s", name, None, base)
                eff.filled_by = (row, effs)
                rows.append(eff)

        for row in rows:
            if getattr(row, "filled_by", None):
                row.fill()
                continue
            print("... %s: %s" % (row.workload, row.py_name), file=sys.stderr, flush=True)
            row.run(repeat)

        if "echo" in only and load_note(ECHO_PY_SERVERS + ECHO_BASELINES):
            notes.append(load_note(ECHO_PY_SERVERS + ECHO_BASELINES))
        gap = breakdown(m, 64000 if quick else 640000) if "nop" in only else None
        per_op = gap_measure(args, binp, workdir, quick) if "nop" in only and not args.no_callgrind else None
        profile = None
        if "nop" in only and not quick and not args.no_profile:
            print("... perf profile of the NOP loop", file=sys.stderr, flush=True)
            profile = {
                "py_io_uring": perf_profile([sys.executable, os.path.abspath(__file__), "--build", args.build,
                                             "--nop-child", "2560000"], workdir),
                "C liburing": perf_profile([os.path.join(binp, "nop"), "64", "12800000"], workdir),
            }
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.time() - t_start
    if args.json:
        save_json(args.json, rows, notes, gap, profile, per_op, size, repeat, elapsed, quick)
    output(args, rows, notes, gap, profile, size, repeat, elapsed, quick, per_op)


def save_json(path, rows, notes, gap, profile, per_op, size, repeat, elapsed, quick):
    """The raw results, so that --render can rewrite the report without
    measuring again."""
    import json
    data = {"argv": sys.argv, "date": datetime.date.today().isoformat(), "notes": notes, "gap": gap,
            "profile": profile, "per_op": per_op, "size": size, "repeat": repeat, "elapsed": elapsed,
            "quick": quick,
            "rows": [{"workload": r.workload, "unit": r.unit, "py_name": r.py_name,
                      "names": [n for n, _ in r.fns], "samples": r.samples, "notes": r.notes}
                     for r in rows]}
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def load_json(path):
    import json
    with open(path) as f:
        data = json.load(f)
    rows = []
    for d in data["rows"]:
        r = Row(d["workload"], d["unit"], d["py_name"], None, [(n, None) for n in d["names"][1:]])
        r.samples, r.notes = d["samples"], d["notes"]
        rows.append(r)
    return data, rows


def output(args, rows, notes, gap, profile, size, repeat, elapsed, quick, per_op, argv=None, date=None):
    table = render_table(rows)
    print()
    print(table)
    for n in notes:
        print("note: " + n)
    if args.out:
        plot = os.path.splitext(args.out)[0] + ".png"
        plot_msg = write_plot(rows, plot)
        write_report(args, rows, notes, gap, profile, size, repeat, elapsed, plot_msg, plot, quick, per_op,
                     argv=argv, date=date)
        print("\nwrote %s" % args.out)


def render_table(rows):
    lines = ["| workload | py_io_uring variant | py_io_uring | baseline | baseline | ratio py/baseline |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        py = fmt(row.stats(row.py_name), row.unit) + " " + row.unit
        if row.py_name in row.notes:
            py = row.notes[row.py_name]
        for name, _ in row.fns[1:]:
            if name in row.notes:
                b, r = row.notes[name], "-"
            else:
                b = fmt(row.stats(name), row.unit) + " " + row.unit
                rr = row.ratio(name)
                r = "%.2f (%.2f-%.2f)" % rr if rr else "-"
            lines.append("| %s | %s | %s | %s | %s | %s |" % (row.workload, row.py_name, py, name, b, r))
    return "\n".join(lines)


def write_plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"
    labels, meds, los, his = [], [], [], []
    for row in rows:
        for name, _ in row.fns[1:]:
            rr = row.ratio(name)
            if rr:
                labels.append("%s\n%s vs %s" % (row.workload, row.py_name, name))
                meds.append(rr[0])
                los.append(rr[0] - rr[1])
                his.append(rr[2] - rr[0])
    if not labels:
        return "nothing to plot"
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(labels) + 1.5))
    y = list(range(len(labels)))[::-1]
    ax.barh(y, meds, xerr=[los, his], color=["tab:green" if v >= 1 else "tab:orange" for v in meds])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("py_io_uring / baseline (median of paired repetitions, bars: min-max; >1 = py_io_uring faster)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def render_per_op(per_op):
    """The callgrind/rusage table of gap_measure()."""
    lines = ["| NOP round trip, batch 64 | module (py_io_uring .so / liburing) | interpreter (libpython) | "
             "libc and the rest | user-space instructions | user CPU ns | kernel (system) CPU ns |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, (cg, ru) in per_op.items():
        if isinstance(cg, str):
            cells = [cg, "-", "-", "-"]
        else:
            # the extension is py_io_uring/_core.*.so (py_io_uring.*.so before)
            mod = sum(v for k, v in cg.items() if k.startswith(("py_io_uring", "_core", "liburing", "nop")))
            interp = sum(v for k, v in cg.items() if k.startswith("libpython"))
            total = sum(cg.values())
            cells = ["%.0f" % mod, "%.0f" % interp if interp else "0", "%.0f" % (total - mod - interp),
                     "%.0f" % total]
        lines.append("| %s | %s | %.0f | %.0f |" % (name, " | ".join(cells), ru[0], ru[1]))
    return "\n".join(lines)


def write_report(args, rows, notes, gap, profile, size, repeat, elapsed, plot_msg, plot, quick, per_op=None,
                 argv=None, date=None):
    info = machine_info()
    out = []
    out.append("# Performance")
    out.append("")
    out.append("Generated by `bench/run.py` (%s, %s run, %d repetitions per figure, %.0f s). "
               "Each cell is the median of the repetitions with the min-max spread in brackets; "
               "the variants of one workload run round-robin inside each repetition, and the ratio "
               "is the median of the per-repetition ratios py_io_uring / baseline (above 1: "
               "py_io_uring is faster). The machine is a shared 2-core VM: trust ratios more "
               "than absolute figures." % (date or datetime.date.today().isoformat(),
                                            "quick" if quick else "full", repeat, elapsed))
    out.append("")
    out.append(render_table(rows))
    out.append("")
    for n in notes:
        out.append("Note: " + n)
        out.append("")
    if plot_msg is None:
        out.append("![ratios](%s)" % os.path.basename(plot))
    else:
        out.append("Plot: %s." % plot_msg)
    out.append("")
    out.append("## Machine")
    out.append("")
    for k, v in info.items():
        out.append("- %s: `%s`" % (k, v))
    out.append("- test files: a temporary folder in /tmp (ext4 here); O_DIRECT/copy file size %s" % human(size))
    out.append("")
    out.append("## Commands")
    out.append("")
    out.append("```sh")
    out.append("make bench        # builds the module and build/bench/{nop,randread,echo_load,echo_server}, then:")
    out.append("python3 bench/run.py --out docs/performance.md      # --size 1G --repeat 5")
    out.append("make bench-ci     # python3 bench/run.py --quick --out build/bench/performance.md")
    out.append("```")
    out.append("")
    out.append("The exact command of this run: `%s`." % " ".join(["python3"] + (argv or sys.argv)))
    out.append("")
    out.append("What each workload does:")
    out.append("")
    out.append("1. NOP: per op `get_sqe()`, `prep_nop()`, `set_data(i)`; per batch `submit()`, "
               "`wait_cqe_nr(batch)`, then `res()`, `get_data()`, `cqe_seen()` per completion; ring of 256. "
               "C (`bench/nop.c`) and the PyPI `liburing` binding do the same steps "
               "(`io_uring_wait_cqe` per completion, user data as an integer). The \"Sqe and Cqe "
               "objects\" row does per batch `submit_and_wait(batch)`, `wait_cqe_nr(batch)` (already "
               "reaped: no system call), `res()` and `get_data()` per completion and one "
               "`cq_advance(batch)`. The fast-form row: per op "
               "`ring.prep_nop(user_data=n + i)` (no Sqe object), per batch `submit_and_wait(batch)` and "
               "`for data, res, flags in ring.reap(batch)` (tuples straight from the kernel's CQ, no Cqe "
               "object); at batch 1 it is one op at a time, `ring.prep_nop(user_data=n)` then "
               "`data, res, flags = ring.reap_one(True, True)` (submit, wait and reap the one "
               "completion in one call). The fastest row, batch 64 only: per batch one "
               "`ring.prep_many(\"nop\", user_data=range(n, n + batch))` and one "
               "`data, res, flags = ring.reap_columns(batch, batch, True)` (submit, wait and reap in one "
               "call, three lists), then `sum(res) + sum(data)`: no Python loop per op. Every Python loop "
               "sums `res + user data` per batch and checks the total, as C "
               "does per op.")
    out.append("2. Random 4 KiB reads from a page-cached file, the same seeded offsets for every variant "
               "(C reads them from a file run.py writes), 32 in flight, `submit_and_wait(1)` then "
               "`peek_cqe()` until empty; the fast-form rows do `ring.prep_read(fd, buf, off, "
               "user_data=slot)` per read (or `prep_read_fixed`) and `ring.reap(32, 1, True)` per wait; "
               "the fastest row refills every completed slot with one `ring.prep_many(\"read_fixed\", "
               "...)` per `ring.reap_columns(32, 1, True)`. `os.pread` is one system "
               "call per read.")
    out.append("3. The same with O_DIRECT, page-aligned `mmap` buffers; the thread-pool baseline gives each "
               "of N threads a strided share of the offsets (one task per thread, the cheapest use of a pool).")
    out.append("4. Copy: py_io_uring keeps 4 one-MiB buffers cycling read -> write -> read; `shutil.copyfile` "
               "uses `copy_file_range`/`sendfile` in the kernel (no copy to user space); the "
               "readinto/write loop is the plain Python equivalent of the pipeline. The copy lands in "
               "the page cache (no fsync). Each variant runs once untimed before the repetitions. The "
               "\"1 io-wq worker\" row is the pipeline with `register_iowq_max_workers(1, 1)`; the splice "
               "row moves each chunk file -> pipe -> file with two linked splices.")
    out.append("5. TCP echo on 127.0.0.1: `bench/echo_load.c` (epoll, 64 keep-alive connections, each "
               "sends a 1 KiB message and waits for the whole echo, checked byte for byte, before the "
               "next; %s per repetition) against one server at a time, each a plain script on this "
               "interpreter (`bench/echo/`, every one with reusable receive buffers where its API allows: "
               "asyncio streams and `Protocol.data_received` get new bytes per read, `BufferedProtocol` "
               "reuses one buffer) or the C epoll server `bench/echo_server.c`. The py_io_uring server "
               "uses the synchronous `IoUring` API: a multishot accept, a `recv` into the connection's "
               "own buffer and a `send` of what arrived, `submit_and_wait(1)` and the ready completions "
               "handled in a batch. The second echo row is the same runs divided by the CPU time the server "
               "process used (from /proc), which the 2-core machine's cap on throughput does not hide."
               % ("0.3 s" if quick else "2 s"))
    out.append("")
    out.append("## Where the gap to C is")
    out.append("")
    if gap:
        out.append("Measured in this run (`breakdown()` in run.py: the NOP loop at batch 64 timed "
                   "step by step with `time.perf_counter`, per operation):")
        out.append("")
        out.append("| step | ns per op |")
        out.append("| --- | --- |")
        for k, v in gap.items():
            out.append("| %s | %.0f |" % (k, v))
        c_rows = [r for r in rows if r.workload.startswith("NOP") and "batch 64" in r.workload]
        if c_rows and c_rows[0].stats("C liburing"):
            out.append("| C liburing, whole round trip | %.0f |" % (1e9 / c_rows[0].stats("C liburing")[0]))
        out.append("")
    if per_op:
        out.append("Per NOP round trip at batch 64, measured in this run (`gap_measure()` in run.py): "
                   "user-space instructions from `valgrind --tool=callgrind` (the loop run with N and 2N "
                   "ops, the difference over N, so start-up cancels; split by the binary the "
                   "instructions ran in: for C the program and liburing count as \"module\"), and the CPU "
                   "time the process spent in user space and in the kernel (getrusage, same N/2N "
                   "difference, at full speed; callgrind cannot see the kernel):")
        out.append("")
        out.append(render_per_op(per_op))
        out.append("")
    if profile:
        out.append("`perf record` of the NOP loop at batch 64 (share of CPU samples per binary; "
                   "the kernel part is io_uring's own submit and completion work, which C pays too):")
        out.append("")
        for who, shares in profile.items():
            if isinstance(shares, str):
                out.append("- %s: %s" % (who, shares))
            else:
                out.append("- %s: %s" % (who, ", ".join("%s %.0f%%" % (os.path.basename(d.strip("[]")) if not d.startswith("[") else d, v)
                                                          for d, v in shares)))
        out.append("")
    else:
        out.append("No `perf` profile in this run (quick run, --no-profile, or perf missing).")
        out.append("")
    out.append(GAP_TEXT)
    out.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(out))


GAP_TEXT = """\
Reading the table, the per-op counts and the profile above. The run that
produced the table is the second of three runs of this version on
2026-11-26 (two full, a third of the NOP, page-cache and copy rows); where
a ratio moved between them, the range over the runs is given. This VM's two cores are shared with other jobs: absolute figures
move by up to 2x between repetitions, so read the paired ratios and the instruction counts.

**The APIs.** Every `Sqe.prep_NAME` is also `IoUring.prep_NAME(...,
user_data=...)` (the fast forms): one call per operation and no `Sqe`
object; `reap(n)` hands completions back as `(user_data, result, flags)`
tuples read straight from the kernel's CQ, with no `Cqe` object, and
`reap(n, wait_nr, True)` also submits, in the same call as the wait;
`reap_one()` is `reap(1, ...)`'s tuple without the list. For a batch,
`prep_many(op, args, user_data=...)` runs the same per-entry prep from C
for every entry in one call, and `reap_columns()` returns the
completions as three lists: no interpreter loop per operation on either
side. That pair is the fastest API; the fast forms with `reap_one()` are
the fastest one operation at a time.

**NOP round trip, batch 64** (`prep_many`/`reap_columns` 0.49-0.51 of C
in the three runs of this version, 0.44-0.56 over their repetitions, and
3.1-3.2x the PyPI binding, the fastest Python binding installable here; the
fast forms 0.34-0.35; the `Sqe`/`Cqe` loops 0.28-0.31). Per op (callgrind
and rusage above), C spends 61 user-space instructions, 4 ns of user CPU
and 63 ns in the kernel. The batch API spends 860 instructions (the module
~510: record, prep, reap; libpython ~340: the ints of `range()` that become
the user data, the three lists and `sum()`), ~45 ns of user CPU and ~74 ns
in the kernel: the same io_uring work, slower by the caches and branch
history the interpreter shares with it (`perf` puts the difference in the
kernel's entry and `io_submit_sqes`, not in extra work). What is left to C
is the per-op record and the Python objects a Python API must make (the
user data int, the result), and that kernel difference. This version cut
the instructions from 965 to 860: `prep_many()` checks the op once per
call and prepares each fresh entry without `Sqe.prep_*`'s per-call checks;
a `range()` of user data is made from C longs; results and flags below
256 come from a table of CPython's cached ints; the direct reap reads the
CQ tail once per round; the build uses `-DNDEBUG`, as CPython builds its
extensions (the assertions in CPython's inline functions were 1% of the
instructions).

**Submitting and waiting.** `submit_and_wait()` and `reap*(..., submit=True)`
now submit alone first and enter the kernel again only if the completions
are not there yet, as C's `io_uring_submit()` + `io_uring_wait_cqe()` do. A
NOP, a page-cache read or a send with buffer room completes inside the
submit, and the wait's half of `io_uring_enter` (`IORING_ENTER_GETEVENTS`)
was ~15% of a one-NOP round trip in the kernel (`perf`). A loop whose
submit alone falls short (disk, network) goes back to the combined call for
the next 64 waits; the O_DIRECT rows stayed at 0.96-1.03 of C.

With one Python call per operation the ceiling is lower: the same loop
with no io_uring at all (`bench/loop_floor.py`, 3 runs) runs 16M
iterations/s as bare bytecode and 11M/s with one call of an empty Python
function per op, ~93 ns per op before any I/O; add the kernel's ~68 ns per
NOP and a loop of one call per op is capped near 0.43x of C. The fast forms
reach 0.34-0.35x: 1,860 instructions per op, ~620 in the module, ~1,230
in libpython (the loop's bytecode, the call, the tuple per completion,
and `n + i`, `res + data` making ints past the small-int cache).

- **NOP, batch 1** (fast forms with `reap_one(True, True)` 0.61-0.65 of C
  in the three runs, 1.7-2.0x the PyPI binding; with `reap(1, 1, True)[0]` it was
  0.57; the `Sqe`/`Cqe` loops 0.40-0.41): one `io_uring_enter` per op on
  both sides. `reap_one()` returns the completion's tuple without a list
  around it (~250 instructions less per round trip), and the submit-alone
  path above took the kernel's wait path out (our kernel time per round
  trip went from 40% above C's to 9-15% above). Releasing the GIL around
  the submit stays: a build that kept it for the submit alone measured
  0.98x, no gain.
- **4 KiB reads from the page cache, QD 32** (with the file and buffer
  registered, the fast forms 0.86-0.91 of plain C over the three runs and
  0.91-0.92 in best-of-3 A/B runs, 0.80 of C doing the same registration,
  1.09-1.12x `os.pread`; `prep_many`/`reap_columns` refilling each batch of
  completed slots 0.88-0.89 of plain C, 1.08-1.09x `os.pread`; plain fast
  forms 0.82-0.89 of C and 1.00-1.02x `os.pread`). The 0.9x target sits inside
  this machine's noise: single repetitions range 0.81-0.97. A page-cache
  hit completes inline in the submit, so queue depth buys nothing. `perf`
  of the registered loop puts 73% of its samples in the kernel (`memcpy`
  alone 33%), 20% in libpython and 6% in the module: the rest is the
  per-read Python loop (refill the slot that completed: ~800 instructions
  of bytecode, ~190 to pin the buffer slice for the op's lifetime, ~160 to
  convert four int arguments), and the module cannot move the row by more
  than a few percent. The
  `Sqe`/`Cqe` loop is at 0.69-0.72 of C.
- **O_DIRECT** (0.96-1.03 of C at every depth in the two runs; at depth
  128, 1.7x 128 threads doing `os.preadv` and about 5x the `os.preadv`
  loop of the QD 1 row): the device's latency dominates.
- **Copy** (page cache to page cache, no fsync). Single runs collapse to
  0.1-0.3x of their usual speed at random, in every variant including the
  plain `readinto`/`write` loop, so compare medians only. `perf` on a
  collapsed run showed two things: with splice, the kernel's io-wq workers
  spinning on the destination's inode lock (`rwsem_spin_on_owner`, 32% of
  the cycles: the pipe-to-file splices of different chunks contend); and,
  also with one worker (`register_iowq_max_workers(1, 1)`), the copy into
  freshly allocated page-cache pages taking 4-5x its usual CPU, which on
  this VM looks like the host backing guest memory on first touch. Each
  variant now runs once untimed first. The read/write pipeline's medians
  were 1.14-1.28x `shutil.copyfile` in the three runs of the last version
  and 0.97-1.23x in the three of this one (single repetitions 0.19-1.31);
  capping the workers did not help (medians 0.19-1.07); the splice row's
  medians ranged from 0.20 to 1.14.
- **TCP echo, 64 connections, 1 KiB messages.** Per CPU-second of the
  server process, the py_io_uring server (plain Python, `bench/echo/ring_sync.py`:
  fast forms, one `reap(4096, 1, True)` per round, a ring set up with
  `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`) did 0.93-1.06
  of the C epoll server's work, 1.12-1.19 of uvloop's Protocol,
  1.23-1.30x its BufferedProtocol, 1.7-1.9x uvloop streams, 1.4-1.6x asyncio's
  BufferedProtocol and 4.5-5.1x asyncio's Protocol and streams (ranges over
  the runs of this version and the last). The same server on the
  `Sqe`/`Cqe` API without the setup flags did 0.88-0.94 of uvloop's Protocol:
  DEFER_TASKRUN (the kernel runs completion work
  when the server waits, instead of interrupting it) is most of the
  difference. Each message costs ~5.5 us of server CPU even in C, nearly
  all of it the kernel's TCP work, so fewer system calls (one
  `io_uring_enter` for a batch of completions and new requests, against
  `epoll_wait` + `recv` + `send` per message) offset the interpreter. The
  load generator needs about as much CPU per message as the C server, so
  on two cores throughput is set by the machine; the per-CPU-second rows
  are the comparison to trust.
- **AsyncRing** (the same servers' idiom under async/await,
  `bench/echo/asyncring.py`, also with SINGLE_ISSUER | DEFER_TASKRUN):
  per server CPU-second on uvloop 1.44-1.50x uvloop streams (the same coroutine
  code), 0.94-1.04 of uvloop's Protocol and 1.00-1.16 of its
  BufferedProtocol. On the stock asyncio loop 2.9-3.5x asyncio's Protocol and
  streams (the issue asks 1.5x) and 1.0-1.1x its BufferedProtocol. The gap to
  uvloop's protocols is the coroutine: every message wakes the connection's
  task twice, where a protocol's `data_received()` is a plain callback. On
  page-cache reads, 32 tasks each awaiting `ring.read()` did 13-17x
  `run_in_executor(os.preadv)` on either loop.
- **Tried and kept**: the fast forms and `reap()` (per NOP at batch 64,
  1,860 instructions against 2,180 for the `Sqe`/`Cqe` loop);
  `prep_many()` with `reap_columns()` (+45% NOPs at batch 64 over the fast
  forms; 860 instructions per op); `reap_one()` (+12% at batch 1 over
  `reap(1, 1, True)[0]`); the submit-alone-first wait (+5% at batch 1);
  reusing ended records (-6% instructions); reaping into tuples without
  `Cqe` objects (-150 instructions per completion); `prepare_chains()`
  looking only at entries with link or skip flags (-20 per op); the
  earlier runtime work in the table below. **Tried, not kept**: keeping the
  GIL around a submit (no gain, 0.98x; a submit can run long); prefetching
  the next pooled record and reordering the record's fields (no measurable
  change; the order of the fields stays, hot ones first); zeroing a new
  record with one `memset` (more instructions than the stores it replaced).
- **Not done**: SQPOLL rows (they need a core of their own, and this
  machine has two); `Cqe`-free dispatch in AsyncRing."""


if __name__ == "__main__":
    main()

"""Random 4 KiB reads: from the page cache (the API's cost per read) and
with O_DIRECT (the device's latency), swept over the queue depth.  Every
variant reads the same seeded offsets; bench/randread.c reads them from a
file written here."""

import contextlib
import mmap
import os
import time
from concurrent.futures import ThreadPoolExecutor

from runner import BLOCK, Case, c_prog, human
from workloads.files import big_file, cached_file, offsets_for, write_offsets

DESCRIBE_CACHED = (
    "Random 4 KiB reads from a page-cached file, the same seeded offsets for every variant "
    "(C reads them from a file the workload writes), `submit_and_wait(1)` then "
    "`peek_cqe()` until empty; the fast-form rows do `ring.prep_read(fd, buf, off, "
    "user_data=slot)` per read (or `prep_read_fixed`) and `ring.reap(depth, 1, True)` per wait; "
    "the batch-API row refills every completed slot with one `ring.prep_many(\"read_fixed\", "
    "...)` per `ring.reap(depth, 1, True, columns=True)`. `os.pread` is one system "
    "call per read (the same at every depth). Swept over the queue depth (%s); the table shows "
    "depth 32.")
DESCRIBE_DIRECT = (
    "The same with O_DIRECT, page-aligned `mmap` buffers, swept over the queue depth (%s); the "
    "thread-pool baseline gives each of N threads (N = the depth) a strided share of the offsets "
    "(one task per thread, the cheapest use of a pool), at depth 1 a plain `os.preadv` loop. "
    "The `submit() then wait_cqe()` row is the seed's loop waiting with its two calls, against C "
    "making the same two (`io_uring_submit()`, `io_uring_wait_cqe()`).")


def cached_depths(quick):
    return (1, 32) if quick else (1, 8, 32, 128)


def direct_depths(quick):
    return (1, 32) if quick else (1, 8, 32, 128)


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


def py_randread(m, path, offs, depth, mode, direct=False, fast=False, split=False):
    """Keep `depth` reads in flight.  mode: 'buffer' (reused memoryview slices),
    'length' (the module allocates bytes), 'fixed' (registered buffer).
    fast: IoUring.prep_read(..., user_data=slot) and reap() instead of
    get_sqe(), Sqe.prep_read(), set_data() and a Cqe per completion.
    split: the seed's loop waits with submit() then wait_cqe(), two calls
    (C's `split` mode), instead of submit_and_wait(1)."""
    def run():
        with read_ring(m, path, depth, mode, direct) as (ring, fd, slots):
            return loop(ring, fd, slots)

    def loop(ring, fd, slots):
        free = list(range(depth))
        n = len(offs)
        nxt = done = total = 0
        get_sqe, submit_and_wait, peek_cqe, cqe_seen = ring.get_sqe, ring.submit_and_wait, ring.peek_cqe, ring.cqe_seen
        submit, wait_cqe = ring.submit, ring.wait_cqe
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
            if split:
                submit()
                wait_cqe()
            else:
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
    reap(depth, 1, True, columns=True) submits, waits and reaps what is ready as
    three lists, and one prep_many("read_fixed", ...) refills every slot
    that completed: two calls per batch, no call per read."""
    def run():
        with read_ring(m, path, depth, "registered") as (ring, fd, slots):
            return loop(ring, slots)

    def loop(ring, slots):
        n = len(offs)
        fixed = m.IOSQE_FIXED_FILE
        prep_many, reap = ring.prep_many, ring.reap
        t0 = time.perf_counter()
        nxt = min(depth, n)
        prep_many("read_fixed", [(0, slots[i], offs[i], 0) for i in range(nxt)],
                  user_data=range(nxt), sqe_flags=fixed)
        total, inflight = 0, nxt
        while inflight:
            done, res, _ = reap(depth, 1, True, columns=True)   # submit, wait, reap
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


def cached_cases(setup):
    m, binp = setup.m, setup.binp
    path, size = cached_file(setup, "cached.dat")
    offs = offsets_for(size, 10000 if setup.quick else 200000, setup.seed)
    offpath = write_offsets(os.path.join(setup.workdir, "cached.off"), offs)
    randread = os.path.join(binp, "randread")
    panel = ("4 KiB random reads, page cache", "queue depth (reads in flight)")
    out = []
    for depth in cached_depths(setup.quick):
        case = Case("4 KiB random read, page cache (%s), QD %d" % (human(size), depth), "ops/s",
                    panel, depth, headline=depth == 32, reference="C liburing")
        creg = ("C liburing, registered file and buffer",
                c_prog(randread, path, offpath, BLOCK, depth, "fixed"))
        case.baseline("C liburing", c_prog(randread, path, offpath, BLOCK, depth), "C liburing")
        case.baseline("os.pread loop", pread_loop(path, offs), "os.pread loop")
        plain = ["C liburing", "os.pread loop"]
        case.variant("py_io_uring (reused memoryview)", py_randread(m, path, offs, depth, "buffer"),
                     "Sqe form, reused memoryview")
        case.variant("py_io_uring (fast forms: ring.prep_read, reap)",
                     py_randread(m, path, offs, depth, "buffer", fast=True), "fast forms: prep_read, reap")
        if depth == 32:
            case.variant("py_io_uring (fast forms, registered buffer)",
                         py_randread(m, path, offs, depth, "fixed", fast=True))
        case.baseline(*creg, series="C liburing, registered file and buffer")
        both = [creg[0]] + plain
        case.variant("py_io_uring (fast forms, registered file and buffer)",
                     py_randread(m, path, offs, depth, "registered", fast=True),
                     "fast forms, registered file and buffer", against=both)
        case.variant("py_io_uring (batch API: prep_many(), reap(columns=True), registered file and buffer)",
                     py_randread_many(m, path, offs, depth),
                     "prep_many + reap(columns=True), registered", against=both)
        if depth == 32:
            case.variant("py_io_uring (int length: new bytes)", py_randread(m, path, offs, depth, "length"),
                         against=["C liburing"])
            case.variant("py_io_uring (registered buffer, read_fixed)",
                         py_randread(m, path, offs, depth, "fixed"), against=["C liburing"])
        out.append(case)
    return out


def direct_cases(setup):
    m, binp = setup.m, setup.binp
    big = big_file(setup)
    why = direct_supported(big)
    if why:
        setup.notes.append("O_DIRECT is not supported on %s: %s; the O_DIRECT workload is skipped."
                           % (setup.workdir, why))
        return []
    offs = offsets_for(setup.size, 2000 if setup.quick else 20000, setup.seed + 1)
    panel = ("4 KiB random reads, O_DIRECT", "queue depth (reads in flight)")
    out = []
    for depth in direct_depths(setup.quick):
        # one read at a time is the device's latency, ~8k reads/s here: a
        # quarter of the offsets keeps QD 1 from taking half the workload
        offs_d = offs[:len(offs) // 4] if depth == 1 else offs
        offpath = write_offsets(os.path.join(setup.workdir, "direct%d.off" % depth), offs_d)
        case = Case("4 KiB random read, O_DIRECT (%s), QD %d" % (human(setup.size), depth), "ops/s",
                    panel, depth, headline=depth in (1, 32, 128), reference="C liburing")
        case.baseline("C liburing", c_prog(os.path.join(binp, "randread"), big, offpath, BLOCK, depth, "direct"),
                      "C liburing")
        if depth == 1:
            case.baseline("os.preadv loop", preadv_direct(big, offs_d, 1), "os.preadv (N threads at depth N)")
        else:
            case.baseline("os.preadv, %d threads" % depth, preadv_direct(big, offs_d, depth),
                          "os.preadv (N threads at depth N)")
        first = [n for n, _ in case.fns]   # C's one-call loop and the threads
        case.variant("py_io_uring (mmap buffers)", py_randread(m, big, offs_d, depth, "buffer", direct=True),
                     "Sqe form", against=first)
        # the seed's two calls against C making the same two
        csplit = "C liburing, io_uring_submit() then io_uring_wait_cqe()"
        case.baseline(csplit, c_prog(os.path.join(binp, "randread"), big, offpath, BLOCK, depth,
                                     "direct", "split"), csplit)
        case.variant("py_io_uring (mmap buffers, submit() then wait_cqe())",
                     py_randread(m, big, offs_d, depth, "buffer", direct=True, split=True),
                     "Sqe form, submit() then wait_cqe()", against=[csplit, "C liburing"])
        case.variant("py_io_uring (fast forms, mmap buffers)",
                     py_randread(m, big, offs_d, depth, "buffer", direct=True, fast=True),
                     "fast forms: prep_read, reap", against=first)
        out.append(case)
    return out


def describe_cached(quick):
    return DESCRIBE_CACHED % ", ".join(map(str, cached_depths(quick)))


def describe_direct(quick):
    return DESCRIBE_DIRECT % ", ".join(map(str, direct_depths(quick)))

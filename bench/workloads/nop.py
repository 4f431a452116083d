"""NOP round trips: the cost of the API itself, no I/O behind it.

Every loop prepares `batch` no-ops with their index as user data, submits,
waits for the batch, sums result + user data per completion and checks the
total, as bench/nop.c does in C; swept over the batch size."""

import os
import time

from runner import Case, Unavailable, c_prog

DESCRIBE = (
    "NOP: per op `get_sqe()`, `prep_nop()`, `set_data(i)`; per batch `submit()`, "
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
    "completion in one call). The batch-API row: per batch one "
    "`ring.prep_many(\"nop\", user_data=range(n, n + batch))` and one "
    "`data, res, flags = ring.reap(batch, batch, True, columns=True)` (submit, wait and reap in one "
    "call, three lists), then `sum(res) + sum(data)`: no Python loop per op. Every Python loop "
    "sums `res + user data` per batch and checks the total, as C "
    "does per op. Swept over the batch size (%s); the table shows batches 1 and 64. "
    "The SQPOLL rows run the fast-form and batch-API loops on a ring set up with "
    "`IORING_SETUP_SQPOLL` (`sq_thread_idle=100`) against the same loops on a normal ring, "
    "at batches 1 and 64, in ops/s and in ops per CPU-second of the whole process (the "
    "kernel's poller thread included); a note gives the poller's own CPU (its "
    "/proc/self/task stat) per second of the run.")

RING = 256


def batches(quick):
    # up to the ring's size: a batch of 256 fills the ring of 256
    return (1, 16, 64) if quick else (1, 4, 16, 64, 256)


def ops_for(batch, quick):
    """NOPs per run: about 0.2-0.5 s per Python variant at every batch size."""
    if quick:
        return 20000 if batch == 1 else 64000
    return {1: 200000, 4: 400000, 16: 800000}.get(batch, 1280000)


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


def sqpoll_ring(m, flags):
    """A ring of RING entries; with IORING_SETUP_SQPOLL the poller thread
    idles 100 ms before it sleeps (the loops keep it busy)."""
    if flags & m.IORING_SETUP_SQPOLL:
        return m.IoUring(RING, flags, sq_thread_idle=100)
    return m.IoUring(RING, flags)


def poller_cpu():
    """{tid: CPU seconds (user + system)} of this process's live SQPOLL
    poller threads (the kernel's iou-sqp-PID threads, in /proc/self/task;
    read before the ring's teardown, which ends its poller)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/stat" % tid) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm.startswith("iou-sqp"):
            fields = stat[stat.rindex(")") + 2:].split()
            out[tid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def poller_used(before):
    """CPU seconds the pollers alive now used since poller_cpu() gave before
    (an earlier ring's poller, still ending, is not counted)."""
    return sum(cpu - before.get(tid, 0) for tid, cpu in poller_cpu().items())


def cpu_measured(loop, sink):
    """loop() run with the process's CPU time around it (every thread's,
    the poller's included): ops per CPU-second into sink."""
    def run():
        c0, t0 = time.process_time(), time.perf_counter()
        rate = loop()
        c1, t1 = time.process_time(), time.perf_counter()
        ops = rate * (t1 - t0)   # about the loop's ops (its timed span is most of the run)
        sink.append(ops / (c1 - c0) if c1 > c0 else float("nan"))
        return rate
    return run


def py_nop_fast(m, batch, total, ring_flags=0, poller_sink=None):
    """The fast forms: per op ring.prep_nop(user_data=i), no Sqe object; per
    batch submit_and_wait(batch) and reap(batch), which gives (user_data,
    result, flags) tuples and marks them seen.  At batch 1 without the inner
    loops, as one writes a loop of one operation at a time, and with
    reap_one(True, True): one call submits, waits and reaps the one
    completion, given as its tuple (no list)."""
    def run():
        ring = sqpoll_ring(m, ring_flags)
        p0 = poller_cpu() if poller_sink is not None else None
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
            if poller_sink is not None:   # (the poller ends with the ring)
                poller_sink.append(poller_used(p0) / dt)
            assert s == n * (n - 1) // 2, "wrong user data"
            return n / dt
        finally:
            ring.queue_exit()
    return run


def py_nop_many(m, batch, total, ring_flags=0, poller_sink=None):
    """The batch API: per batch one prep_many("nop", user_data=range(...))
    queues every entry, one reap(batch, batch, True, columns=True) submits, waits
    and reaps them as three lists, and sum() reads results and user data:
    no Python loop per op."""
    def run():
        ring = sqpoll_ring(m, ring_flags)
        p0 = poller_cpu() if poller_sink is not None else None
        try:
            rounds = total // batch
            s = 0
            n = 0
            prep_many, reap = ring.prep_many, ring.reap
            t0 = time.perf_counter()
            for _ in range(rounds):
                prep_many("nop", user_data=range(n, n + batch))
                data, res, flags = reap(batch, batch, True, columns=True)
                s += sum(res) + sum(data)
                n += batch
            dt = time.perf_counter() - t0
            if poller_sink is not None:   # (the poller ends with the ring)
                poller_sink.append(poller_used(p0) / dt)
            assert s == n * (n - 1) // 2, "wrong user data"
            return n / dt
        finally:
            ring.queue_exit()
    return run


def peer_nop(batch, total):
    """The same loop over `pip install liburing` (YoSTEALTH's binding)."""
    def run():
        try:
            import liburing as L
        except ImportError:
            raise Unavailable("not installed (pip install liburing failed or was not run)") from None
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


# the NOP loops by name, for bench/nop_loop.py (callgrind, perf)
NOP_APIS = {"wait_cqe_nr": py_nop, "batch": py_nop_batch, "fast": py_nop_fast,
            "many": py_nop_many}


def cases(setup):
    panel = ("NOP round trips", "batch size (NOPs per submit)")
    out = []
    for batch in batches(setup.quick):
        n = ops_for(batch, setup.quick)
        case = Case("NOP round trip, batch %d" % batch, "ops/s", panel, batch,
                    headline=batch in (1, 64), reference="C liburing")
        case.baseline("C liburing", c_prog(os.path.join(setup.binp, "nop"), batch, n * 10), "C liburing")
        case.baseline("liburing (PyPI)", peer_nop(batch, n), "liburing (PyPI binding)")
        m = setup.m
        case.variant("py_io_uring (cqe_seen per op)", py_nop(m, batch, n), "Sqe form, cqe_seen per op")
        case.variant("py_io_uring (Sqe and Cqe objects, cq_advance per batch)", py_nop_batch(m, batch, n),
                     "Sqe form, cq_advance per batch")
        case.variant("py_io_uring (fast forms: ring.prep_nop(user_data=), reap(); reap_one() at batch 1)",
                     py_nop_fast(m, batch, n), "fast forms: prep_nop, reap/reap_one")
        case.variant("py_io_uring (batch API: prep_many(), reap(columns=True))", py_nop_many(m, batch, n),
                     "prep_many + reap(columns=True)")
        out.append(case)
    out += sqpoll_cases(setup)
    return out


def sqpoll_cases(setup):
    """The fast forms and the batch API on an IORING_SETUP_SQPOLL ring beside
    the same loops on a normal ring, in ops/s and in ops per CPU-second of
    the whole process (the poller thread included); a note gives the CPU the
    poller burned per second of the runs."""
    m = setup.m
    sq = m.IORING_SETUP_SQPOLL
    out = []
    for batch in (1, 64):
        n = ops_for(batch, setup.quick)
        names = (("normal ring, fast forms", py_nop_fast, 0), ("normal ring, prep_many", py_nop_many, 0),
                 ("SQPOLL ring, fast forms", py_nop_fast, sq), ("SQPOLL ring, prep_many", py_nop_many, sq))
        effs = {name: [] for name, _, _ in names}
        pollers = {name: [] for name, _, _ in names}
        wl = "NOP round trip, batch %d, SQPOLL ring against a normal ring" % batch
        case = Case(wl, "ops/s", ("NOP round trips, SQPOLL", "batch size"), batch, headline=batch == 64,
                    reference="normal ring, fast forms", figure=False)
        for name, loop, flags in names:
            fn = cpu_measured(loop(m, batch, n, flags, pollers[name]), effs[name])
            if flags:
                case.variant(name, fn, None, against=[name.replace("SQPOLL", "normal")])
            else:
                case.baseline(name, fn, None)
        per_cpu = case.derived(wl + ", per CPU-second (poller included)", "ops/CPU-s",
                               ("NOP round trips, SQPOLL, per CPU-second", "batch size"), effs)
        per_cpu.figure = False
        out += [case, per_cpu]
        setup.notes.append(lambda pollers=pollers, batch=batch: sqpoll_note(pollers, batch))
    return out


def sqpoll_note(pollers, batch):
    parts = []
    for name, shares in pollers.items():
        if "SQPOLL" in name and shares:
            s = sorted(shares)
            parts.append("%s %.2f (%.2f-%.2f)" % (name, s[len(s) // 2], s[0], s[-1]))
    if not parts:
        return None
    return ("SQPOLL poller CPU at batch %d (CPU-seconds of the iou-sqp thread per second of the run, "
            "median and range over the repetitions; 1.0 = a whole core): %s." % (batch, "; ".join(parts)))


def describe(quick):
    return DESCRIBE % ", ".join(map(str, batches(quick)))

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
    "does per op. Swept over the batch size (%s); the table shows batches 1 and 64.")

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
    queues every entry, one reap(batch, batch, True, columns=True) submits, waits
    and reaps them as three lists, and sum() reads results and user data:
    no Python loop per op."""
    def run():
        ring = m.IoUring(256)
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
            assert s == n * (n - 1) // 2, "wrong user data"
            return n / dt
        finally:
            ring.queue_exit()
    return run


# the NOP loops by name, for bench/nop_loop.py (callgrind)
NOP_APIS = {"wait_cqe_nr": py_nop, "batch": py_nop_batch, "fast": py_nop_fast,
            "many": py_nop_many}


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
    return out


def describe(quick):
    return DESCRIBE % ", ".join(map(str, batches(quick)))

"""fork(): the child must not touch the parent's ring (its memory is shared
with the parent, or not mapped at all); it can make its own ring; and the
parent's ring carries on, its pending operations included."""

import errno
import os
import time
import traceback

from py_io_uring import IoUring
from uring_helpers import WAIT, exit_code, fork, prep, wait_one

# Methods of an inherited ring the child tries; each must refuse.
CHILD_CALLS = [
    ("get_sqe", ()),
    ("submit", ()),
    ("submit_and_wait", (1,)),
    ("wait_cqe", ()),
    ("wait_cqe", (0.01,)),
    ("wait_cqe_nr", (1, 0.01)),
    ("peek_cqe", ()),
    ("sq_ready", ()),
    ("sq_space_left", ()),
    ("cq_ready", ()),
    ("in_flight", ()),
    ("probe", ()),
]


def in_child(body):
    """Run body() in a forked child; return (exit status, error text).  The
    child always leaves with os._exit: 0 when body() returned, 1 with the
    traceback when it raised."""
    r, w = os.pipe()
    pid = fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(r)
            body()
            code = 0
        except BaseException:
            try:
                os.write(w, traceback.format_exc().encode())
            except BaseException:
                pass
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return exit_code(status), b"".join(chunks).decode(errors="replace")


def test_child_cannot_use_parents_ring_but_can_make_its_own(ring):
    # An operation pending across the fork, and an Sqe acquired before it.
    prep(ring, "timeout", 0.3, tag="pending")
    ring.submit()
    acquired = ring.get_sqe()

    def child():
        problems = []
        for name, args in CHILD_CALLS:
            try:
                getattr(ring, name)(*args)
            except (RuntimeError, ValueError) as e:
                if "fork" not in str(e).lower():
                    problems.append("%s(): %r does not mention fork" % (name, e))
            else:
                problems.append("%s() worked on the parent's ring in the child" % name)
        # The parent's Sqe cannot be prepared either: that would write into
        # the parent's submission queue.
        try:
            acquired.prep_nop()
        except (RuntimeError, ValueError):
            pass
        else:
            problems.append("prep on the parent's Sqe worked in the child")
        assert not problems, "\n".join(problems)
        # Its own ring works.
        own = IoUring(4)
        s = own.get_sqe()
        s.prep_nop()
        s.set_data("child")
        assert own.submit() == 1
        c = own.wait_cqe(timeout=WAIT)
        assert c is not None and c.get_data() == "child" and c.res() == 0
        own.cqe_seen(c)
        own.queue_exit()

    code, err = in_child(child)
    assert code == 0, err
    # The parent's ring is intact: the acquired Sqe is still its own, the
    # pending timeout completes as it would have (not cancelled by the
    # child).
    acquired.prep_nop()
    acquired.set_data("after fork")
    assert ring.submit() == 1
    got = {}
    for _ in range(2):
        c = wait_one(ring)
        got[c.get_data()] = c.res()
    assert got == {"after fork": 0, "pending": -errno.ETIME}


def test_child_dropping_inherited_ring_does_not_cancel_parents_operations():
    ring = IoUring(8)
    try:
        r, w = os.pipe()
        try:
            buf = bytearray(5)
            prep(ring, "read", r, buf, tag="read")
            prep(ring, "timeout", 0.3, tag="timeout")
            ring.submit()

            def child():
                # queue_exit() of an inherited ring may refuse, but must
                # neither crash nor cancel the parent's operations.
                try:
                    ring.queue_exit()
                except (RuntimeError, ValueError):
                    pass

            code, err = in_child(child)
            assert code == 0, err
            os.write(w, b"hello")
            got = {}
            for _ in range(2):
                c = wait_one(ring)
                got[c.get_data()] = c.res()
            assert got == {"read": 5, "timeout": -errno.ETIME}
            assert buf == b"hello"
        finally:
            os.close(r)
            os.close(w)
    finally:
        ring.queue_exit()


def test_child_deallocating_inherited_ring(run_py):
    # In a fresh interpreter: the child really drops its last reference to
    # the inherited ring (and exits normally, running finalizers), the
    # parent's pending timeout still expires normally.
    code = r"""
import errno, gc, os, sys
import py_io_uring

holder = [py_io_uring.IoUring(8)]
ring = holder[0]
s = ring.get_sqe(); s.prep_timeout(0.3); s.set_data("t"); ring.submit()
del s
pid = os.fork()
if pid == 0:
    del ring
    holder.clear()
    gc.collect()
    sys.exit(0)          # a normal exit: atexit, finalizers, module teardown
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
c = ring.wait_cqe(timeout=5)
assert c is not None and c.get_data() == "t", c
assert c.res() == -errno.ETIME, c.res()
ring.cqe_seen(c)
ring.queue_exit()
print("OK")
"""
    proc = run_py(code, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "OK"
    assert proc.stderr == ""


def test_parent_ring_keeps_working_after_many_forks(ring):
    for _ in range(3):
        code, err = in_child(lambda: None)
        assert code == 0, err
    t0 = time.monotonic()
    for i in range(8):
        prep(ring, "nop", tag=i)
    assert ring.submit() == 8
    assert sorted(wait_one(ring).get_data() for _ in range(8)) == list(range(8))
    assert time.monotonic() - t0 < WAIT


def test_ring_created_in_child_after_fork():
    def child():
        r = IoUring(4)
        try:
            for i in range(10):
                s = r.get_sqe()
                s.prep_nop()
                s.set_data(i)
                r.submit()
                c = r.wait_cqe(timeout=WAIT)
                assert c.get_data() == i
                r.cqe_seen(c)
        finally:
            r.queue_exit()

    code, err = in_child(child)
    assert code == 0, err

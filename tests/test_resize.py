"""resize_rings() against the real kernel (IORING_REGISTER_RESIZE_RINGS,
6.13+, DEFER_TASKRUN rings): operations in flight and completions not yet
reaped survive the new rings; what cannot move is refused."""

import errno
import os

import pytest

from py_io_uring import (
    IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_SINGLE_ISSUER,
    IoUring,
)
from uring_helpers import fork

DEFER = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN


def defer_ring(entries=4):
    ring = IoUring(entries, DEFER)
    try:
        ring.resize_rings(entries)   # same sizes: the kernel only answers
    except OSError as e:
        ring.queue_exit()
        if e.errno == errno.EINVAL:
            pytest.skip("IORING_REGISTER_RESIZE_RINGS not on this kernel")
        raise
    return ring


def test_resize_with_ops_in_flight_and_completions_waiting():
    ring = defer_ring(4)
    r, w = os.pipe()
    try:
        ring.prep_read(r, 5, -1, user_data="read")      # in flight across the resize
        ring.prep_nop(user_data=0)
        ring.prep_nop(user_data=1)
        assert ring.submit() == 3
        seen = ring.peek_cqe()             # 0 and 1 move to the module's queue
        assert seen is not None and seen.get_data() == 0
        ring.prep_nop(user_data=2)
        assert ring.submit() == 1          # 2 stays in the kernel's CQ
        assert ring.cq_ready() == 3
        assert ring.resize_rings(64, 256) == (64, 256)
        assert ring.cq_ready() == 3
        assert "entries=64" in repr(ring)
        assert ring.in_flight() == 2   # the read, and nop 2 not yet reaped
        # the larger SQ takes 40 at once
        for i in range(40):
            ring.prep_nop(user_data=100 + i)
        assert ring.submit() == 40
        os.write(w, b"hello")
        got = ring.reap(100, 44)
        assert got[:3] == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]
        assert sorted(x[0] for x in got[3:] if x[0] != "read") == list(range(100, 140))
        assert ("read", b"hello", 0) in got
        assert ring.in_flight() == 0 and ring.cq_ready() == 0
    finally:
        ring.queue_exit()
        os.close(r)
        os.close(w)


def test_resize_refusals_leave_the_ring_usable():
    ring = defer_ring(8)
    try:
        for i in range(6):
            ring.prep_nop(user_data=i)
        ring.submit()
        # 6 completions waiting cannot fit a CQ of 4
        with pytest.raises(OSError) as info:
            ring.resize_rings(2, 4)
        assert info.value.errno == errno.EOVERFLOW
        sqe = ring.get_sqe()
        with pytest.raises(RuntimeError, match="not submitted"):
            ring.resize_rings(16)
        sqe.prep_nop()
        sqe.set_data("late")
        ring.submit()
        got = ring.reap(10, 7)
        assert [x[0] for x in got] == [0, 1, 2, 3, 4, 5, "late"]
        assert ring.resize_rings(2, 4) == (2, 4)   # now it fits
        ring.prep_nop(user_data="small")
        ring.submit()
        assert ring.reap(4, 1) == [("small", 0, 0)]
        with pytest.raises(ValueError, match="sq_entries"):
            ring.resize_rings(0)
        with pytest.raises(ValueError, match="cq_entries"):
            ring.resize_rings(8, 4)
    finally:
        ring.queue_exit()
    with pytest.raises(ValueError):
        ring.resize_rings(8)


def test_resize_needs_defer_taskrun():
    with IoUring(4) as ring:
        with pytest.raises(OSError) as info:
            ring.resize_rings(8)
        assert info.value.errno == errno.EINVAL
        ring.prep_nop(user_data=1)
        ring.submit()
        assert ring.reap(1, 1) == [(1, 0, 0)]


def test_resize_then_fork_child_is_refused():
    ring = defer_ring(4)
    try:
        ring.resize_rings(16)
        pid = fork()
        if pid == 0:
            code = 1
            try:
                ring.get_sqe()
            except RuntimeError:
                code = 0
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        ring.prep_nop(user_data="parent")
        ring.submit()
        assert ring.reap(1, 1) == [("parent", 0, 0)]
    finally:
        ring.queue_exit()

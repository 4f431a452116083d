"""The ring's settings and synchronous calls: register_napi(),
unregister_napi(), register_clock(), set_iowait(), sqring_wait(),
register_sync_cancel(), register_sync_msg(), register_query()."""

import errno
import os
import threading
import time

import pytest

import py_io_uring
from py_io_uring import IoUring
from uring_helpers import WAIT, prep, wait_n

IORING_FEAT_NO_IOWAIT = 1 << 17
IORING_SETUP_SQPOLL = py_io_uring.IORING_SETUP_SQPOLL


# ---- NAPI busy polling

def test_napi_returns_the_settings_before(ring):
    try:
        first = ring.register_napi(50, True)
    except OSError as e:
        pytest.skip("no NAPI busy polling for io_uring here: %s" % e)
    assert first == (0, False)
    assert ring.register_napi(20) == (50, True)
    assert ring.unregister_napi() == (20, False)
    assert ring.unregister_napi() == (0, False)
    # waits go on as before
    prep(ring, "nop", tag="n")
    assert ring.submit_and_wait(1) == 1
    assert wait_n(ring, 1)[0].get_data() == "n"


@pytest.mark.parametrize("args, exc", [((), TypeError), ((-1,), (ValueError, OverflowError)),
                                       ((2 ** 32,), (ValueError, OverflowError)),
                                       ((1, 2, 3), TypeError)])
def test_napi_bad_arguments(ring, args, exc):
    with pytest.raises(exc):
        ring.register_napi(*args)


# ---- the wait clock

@pytest.mark.parametrize("clock", [time.CLOCK_BOOTTIME, time.CLOCK_MONOTONIC])
def test_register_clock_timed_waits_still_time_out(ring, clock):
    ring.register_clock(clock)
    prep(ring, "timeout", 60, tag="long")
    ring.submit()
    t = time.monotonic()
    assert ring.wait_cqe_timeout(0.05) is None
    assert 0.04 <= time.monotonic() - t < WAIT


def test_register_clock_refuses_other_clocks(ring):
    with pytest.raises(OSError) as ei:
        ring.register_clock(time.CLOCK_REALTIME)
    assert ei.value.errno == errno.EINVAL and "CLOCK_BOOTTIME" in str(ei.value)


# ---- iowait

def test_set_iowait(ring):
    try:
        ring.set_iowait(False)
    except OSError as e:
        assert e.errno == errno.EOPNOTSUPP
        if not ring.features() & IORING_FEAT_NO_IOWAIT:
            assert "IORING_FEAT_NO_IOWAIT" in str(e)
        else:
            assert "liburing 2.10" in str(e)
            assert py_io_uring.LIBURING_VERSION is None or py_io_uring.LIBURING_VERSION < (2, 10)
        pytest.skip(str(e))
    assert ring.features() & IORING_FEAT_NO_IOWAIT
    prep(ring, "timeout", 0.02, tag="t")
    assert ring.submit_and_wait(1) == 1
    assert wait_n(ring, 1)[0].get_data() == "t"
    ring.set_iowait(True)
    assert ring.wait_cqe_timeout(0.01) is None


# ---- sqring_wait()

def test_sqring_wait_is_immediate_without_sqpoll(ring):
    for _ in range(ring.sq_space_left()):
        ring.get_sqe()
    assert ring.sq_space_left() == 0
    t = time.monotonic()
    assert ring.sqring_wait() is None          # liburing returns 0 there too
    assert time.monotonic() - t < WAIT
    ring.submit()
    wait_n(ring, 64)


def test_sqring_wait_on_sqpoll_ring():
    try:
        r = IoUring(8, IORING_SETUP_SQPOLL, sq_thread_idle=1000)
    except OSError as e:
        pytest.skip("no SQPOLL ring: %s" % e)
    try:
        assert r.sqring_wait() is None         # room: at once
        for round_ in range(20):
            for i in range(r.sq_space_left()):
                prep(r, "nop", tag=(round_, i))
            r.submit()
            r.sqring_wait()
            assert r.sq_space_left() > 0       # the kernel thread took some
            r.reap(64, 0)
        r.reap(64, r.in_flight())
        assert r.in_flight() == 0
    finally:
        r.queue_exit()


# ---- register_sync_cancel()

def test_sync_cancel_by_user_data_and_by_sqe(ring):
    prep(ring, "timeout", 60, tag="by data")
    sqe = prep(ring, "timeout", 60, tag="by sqe")
    ring.submit()
    assert ring.register_sync_cancel("by data", timeout=WAIT) == 0
    assert ring.register_sync_cancel(sqe) == 0
    cqes = wait_n(ring, 2)
    assert sorted((c.get_data(), c.res()) for c in cqes) == [
        ("by data", -errno.ECANCELED), ("by sqe", -errno.ECANCELED)]
    assert ring.in_flight() == 0


def test_sync_cancel_any_all_fd_and_opcode(ring):
    r, w = os.pipe()
    try:
        for i in range(3):
            prep(ring, "timeout", 60, tag=i)
        prep(ring, "read", r, 10, 0, tag="read")
        ring.submit()
        assert ring.register_sync_cancel(fd=r) == 0
        assert wait_n(ring, 1)[0].get_data() == "read"
        prep(ring, "poll_add", r, 1, tag="poll")
        ring.submit()
        assert ring.register_sync_cancel(opcode=py_io_uring.IORING_OP_POLL_ADD) == 0
        assert wait_n(ring, 1)[0].get_data() == "poll"
        n = ring.register_sync_cancel(flags=py_io_uring.IORING_ASYNC_CANCEL_ANY |
                                      py_io_uring.IORING_ASYNC_CANCEL_ALL)
        assert n == 3
        assert sorted(c.get_data() for c in wait_n(ring, 3)) == [0, 1, 2]
    finally:
        os.close(r)
        os.close(w)


def test_sync_cancel_errors(ring):
    with pytest.raises(TypeError, match="name what to cancel"):
        ring.register_sync_cancel()
    with pytest.raises(TypeError, match="no operation in flight"):
        ring.register_sync_cancel("nobody")
    sqe = prep(ring, "nop", tag="done")
    ring.submit()
    wait_n(ring, 1)
    with pytest.raises(OSError) as ei:
        ring.register_sync_cancel(sqe)             # completed: -ENOENT
    assert ei.value.errno == errno.ENOENT and "matched" in str(ei.value)
    with pytest.raises(ValueError):
        ring.register_sync_cancel(fd=0, timeout=-1)
    other = IoUring(4)
    try:
        with pytest.raises(ValueError, match="another IoUring"):
            ring.register_sync_cancel(other.get_sqe())
    finally:
        other.queue_exit()


def test_sync_cancel_releases_the_gil(ring):
    prep(ring, "timeout", 60, tag="long")
    ring.submit()
    ran = []
    t = threading.Thread(target=lambda: ran.append(ring.register_sync_cancel("long")))
    t.start()
    t.join(WAIT)
    assert ran == [0]
    assert wait_n(ring, 1)[0].res() == -errno.ECANCELED


# ---- register_sync_msg()

def test_sync_msg_posts_to_the_target_ring(ring):
    sender = IoUring()                              # needs no set-up ring
    sender.register_sync_msg(ring.fileno(), 7, 1234)
    ring.register_sync_msg(ring, 8, 5)              # to itself, by fileno()
    assert ring.reap(4, 2) == [(1234, 7, 0), (5, 8, 0)]
    assert ring.in_flight() == 0


def test_sync_msg_refuses_the_library_s_user_data_and_bad_targets(ring):
    with pytest.raises(OverflowError, match="this library"):
        ring.register_sync_msg(ring.fileno(), 1, 1 << 63)
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as ei:
            ring.register_sync_msg(r, 1, 1)
        assert ei.value.errno in (errno.EBADFD, errno.EBADF)
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(ValueError, match="flags"):
        ring.register_sync_msg(ring.fileno(), 1, 1, 1)
    assert ring.peek_cqe() is None


# ---- register_query()

def test_register_query_opcodes(ring):
    try:
        q = ring.register_query()
    except OSError as e:
        pytest.skip("no IORING_REGISTER_QUERY: %s" % e)
    assert set(q) == {"nr_request_opcodes", "nr_register_opcodes", "feature_flags",
                      "ring_setup_flags", "enter_flags", "sqe_flags", "nr_query_opcodes"}
    # the kernel supports at least what this ring was set up with and reports
    assert q["feature_flags"] & ring.features() == ring.features()
    assert q["nr_request_opcodes"] > max(
        op for op in range(256) if ring.opcode_supported(op))
    assert q["ring_setup_flags"] & IORING_SETUP_SQPOLL
    assert IoUring().register_query(0) == q         # needs no ring


@pytest.mark.parametrize("op", [1, 2])
def test_register_query_others_answer_or_say_why_not(ring, op):
    try:
        q = ring.register_query(op)
    except OSError as e:
        assert e.errno in (errno.EOPNOTSUPP, errno.EINVAL)
        return
    assert isinstance(q, dict) and q


def test_register_query_bad_op(ring):
    with pytest.raises((ValueError, OverflowError)):
        ring.register_query(3)

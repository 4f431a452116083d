"""register_ring_fd(), unregister_ring_fd(), close_ring_fd()
(IORING_REGISTER_RING_FDS).  The kernel keeps registered ring fds per
thread: only the registering thread may enter by the index, and after
close_ring_fd() only that thread can reach the ring at all."""

import errno
import os
import threading
import time
import warnings

import pytest

from py_io_uring import IoUring
from test_fork import in_child
from uring_helpers import WAIT, prep, wait_n


def in_thread(fn):
    """fn() in a new thread; its result, or the exception it raised."""
    out = []

    def run():
        try:
            out.append(fn())
        except BaseException as e:   # noqa: B902 - handed back to the test
            out.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(WAIT)
    assert not t.is_alive()
    return out[0]


def close_or_skip(ring):
    try:
        ring.close_ring_fd()
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP and "liburing 2.4" in str(e):
            pytest.skip("close_ring_fd() needs liburing 2.4 or later: %s" % e)
        raise


def nop_round_trip(ring, tag, submit_and_wait=True):
    prep(ring, "nop", tag=tag)
    if submit_and_wait:
        assert ring.submit_and_wait(1) == 1
    else:
        assert ring.submit() == 1
    (cqe,) = wait_n(ring, 1)
    assert cqe.get_data() == tag and cqe.res() == 0


def test_register_returns_an_index_and_calls_go_on(ring):
    index = ring.register_ring_fd()
    assert isinstance(index, int) and 0 <= index < 16
    nop_round_trip(ring, "a")
    nop_round_trip(ring, "b", submit_and_wait=False)
    ring.prep_nop(user_data="fast")
    assert ring.reap(1, 1, True) == [("fast", 0, 0)]
    with pytest.raises(OSError) as ei:
        ring.register_ring_fd()
    assert ei.value.errno == errno.EEXIST
    ring.unregister_ring_fd()
    with pytest.raises(OSError) as ei:
        ring.unregister_ring_fd()
    assert ei.value.errno == errno.EINVAL
    nop_round_trip(ring, "c")
    assert ring.register_ring_fd() == index      # the slot was freed


def test_queue_exit_frees_the_slot():
    a = IoUring(4)
    index = a.register_ring_fd()
    a.queue_exit()
    b = IoUring(4)
    try:
        assert b.register_ring_fd() == index
        nop_round_trip(b, "b")
    finally:
        b.queue_exit()


def test_other_threads_go_by_the_fd_even_with_their_own_ring_at_that_index(ring):
    """A thread whose own table has another ring at the same index must
    still reach this ring: it never enters by this ring's index."""
    index = ring.register_ring_fd()

    def other():
        mine = IoUring(4)
        try:
            assert mine.register_ring_fd() == index   # the same slot, in its table
            nop_round_trip(ring, "from-thread")        # submit_and_wait on `ring`
            assert mine.peek_cqe() is None and mine.in_flight() == 0
            ring.prep_nop(user_data="fast")
            return ring.reap(1, 1, True)
        finally:
            mine.queue_exit()

    assert in_thread(other) == [("fast", 0, 0)]
    nop_round_trip(ring, "main")


def test_waiter_thread_and_registering_submitter(ring):
    ring.register_ring_fd()
    got = []
    t = threading.Thread(target=lambda: got.append(ring.wait_cqe_nr(3, timeout=WAIT)))
    t.start()
    for i in range(3):
        prep(ring, "nop", tag=i)
        ring.submit()
    t.join(WAIT)
    assert sorted(c.get_data() for c in got[0]) == [0, 1, 2]


def test_unregister_and_close_from_another_thread_are_refused(ring):
    ring.register_ring_fd()
    for name in ("unregister_ring_fd", "close_ring_fd"):
        e = in_thread(getattr(ring, name))
        assert isinstance(e, RuntimeError) and "another thread" in str(e)
    ring.unregister_ring_fd()


def test_close_needs_a_registered_fd(ring):
    with pytest.raises(OSError) as ei:
        ring.close_ring_fd()
    assert ei.value.errno == errno.EINVAL and "register_ring_fd" in str(ei.value)


def test_after_close_every_call_works_from_the_registering_thread(ring, tmp_path):
    index = ring.register_ring_fd()
    fd = ring.fileno()
    close_or_skip(ring)
    with pytest.raises(OSError) as ei:
        os.fstat(fd)
    assert ei.value.errno == errno.EBADF
    assert "fd=closed" in repr(ring) and "registered_index=%d" % index in repr(ring)
    with pytest.raises(ValueError, match="close_ring_fd"):
        ring.fileno()
    nop_round_trip(ring, "a")
    nop_round_trip(ring, "b", submit_and_wait=False)
    assert ring.submit_and_wait_timeout(0, WAIT) == 0
    prep(ring, "timeout", 0.01, tag="t")
    assert ring.submit_and_wait_timeout(1, WAIT) == 1
    assert wait_n(ring, 1)[0].get_data() == "t"
    ring.get_events()
    # registrations go by the index too
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    f = os.open(str(path), os.O_RDONLY)
    try:
        ring.register_files([f])
        sqe = prep(ring, "read", 0, 5, 0, tag="fixed")
        sqe.set_flags(1)                     # IOSQE_FIXED_FILE
        ring.submit()
        assert wait_n(ring, 1)[0].getresult() == b"hello"
        ring.unregister_files()
    finally:
        os.close(f)
    assert ring.register_iowq_max_workers(0, 0)[0] >= 0
    with pytest.raises(OSError) as ei:
        ring.unregister_ring_fd()
    assert ei.value.errno == errno.EBADF
    with pytest.raises(OSError) as ei:
        ring.close_ring_fd()
    assert ei.value.errno == errno.EBADF
    prep(ring, "timeout", 60, tag="in flight at queue_exit")
    ring.submit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ring.queue_exit()                    # cancels and drains, by the index


def test_after_close_other_threads_are_refused(ring):
    ring.register_ring_fd()
    close_or_skip(ring)
    for call in (ring.submit, ring.get_sqe, ring.wait_cqe, ring.peek_cqe,
                 lambda: ring.register_files([0]), ring.probe, ring.register_ring_fd):
        e = in_thread(call)
        assert isinstance(e, RuntimeError) and "close_ring_fd" in str(e), (call, e)
    nop_round_trip(ring, "still fine here")


def test_after_close_teardown_from_another_thread_leaks_what_is_in_flight():
    r = IoUring(4)
    r.register_ring_fd()
    close_or_skip(r)
    prep(r, "timeout", 60, tag=bytearray(10))
    r.submit()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        e = in_thread(r.queue_exit)
    assert e is None
    assert any(issubclass(x.category, ResourceWarning) and "leaked" in str(x.message)
               for x in w)
    assert "closed" in repr(r)


def test_after_close_teardown_from_another_thread_with_nothing_in_flight():
    r = IoUring(4)
    r.register_ring_fd()
    close_or_skip(r)
    nop_round_trip(r, "x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert in_thread(r.queue_exit) is None


def test_register_is_refused_while_another_thread_waits(ring):
    started = threading.Event()

    def waiter():
        started.set()
        return ring.wait_cqe_timeout(WAIT)

    t = threading.Thread(target=waiter)
    t.start()
    started.wait()
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                ring.register_ring_fd()
            except RuntimeError as e:
                assert "another thread" in str(e)
                break
            ring.unregister_ring_fd()
            if time.monotonic() > deadline:
                pytest.fail("register_ring_fd() never saw the waiting thread")
            time.sleep(0.001)       # let the waiter reach its wait
    finally:
        prep(ring, "nop", tag="wake")
        ring.submit()
        t.join(WAIT)
    assert ring.peek_cqe().get_data() == "wake"


def test_fork_child_refuses_a_registered_or_closed_ring(ring):
    ring.register_ring_fd()
    status, err = in_child(lambda: _child_body(ring))
    assert status == 0, err
    try:
        ring.close_ring_fd()
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise
    status, err = in_child(lambda: _child_body(ring))
    assert status == 0, err
    nop_round_trip(ring, "parent goes on")


def _child_body(ring):
    for call in (ring.submit, ring.get_sqe, ring.unregister_ring_fd, ring.close_ring_fd):
        try:
            call()
        except RuntimeError as e:
            assert "fork" in str(e) or "parent" in str(e), e
        else:
            raise AssertionError("%s worked in the child" % call)
    ring.queue_exit()
    fresh = IoUring(4)
    fresh.register_ring_fd()
    nop_round_trip(fresh, "child")
    fresh.queue_exit()

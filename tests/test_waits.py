"""liburing's timed waits: wait_cqe_timeout(), submit_and_wait_timeout() and
the min-timeout waits (io_uring_wait_cqes_min_timeout(3): wait up to
min_wait_usec for wait_nr completions, then one is enough).  Times are
bounded generously: the assertions are about order and results."""

import signal
import threading
import time

import pytest

import py_io_uring
from uring_helpers import Interrupted, WAIT, prep, wait_n

LONG = 60          # a timeout op that never fires during a test


def _long_timeout(ring, tag="long"):
    prep(ring, "timeout", LONG, tag=tag)


# ---- wait_cqe_timeout()

def test_wait_cqe_timeout_none_when_it_expires(ring):
    _long_timeout(ring)
    ring.submit()
    t = time.monotonic()
    assert ring.wait_cqe_timeout(0.05) is None
    assert time.monotonic() - t >= 0.04
    assert ring.in_flight() == 1


def test_wait_cqe_timeout_returns_the_oldest_unseen_not_marked_seen(ring):
    prep(ring, "nop", tag="a")
    prep(ring, "nop", tag="b")
    ring.submit()
    cqe = ring.wait_cqe_timeout(WAIT)
    assert cqe.get_data() == "a" and cqe.res() == 0
    assert ring.wait_cqe_timeout(timeout=WAIT) is cqe      # not seen yet
    wait_n(ring, 2)


def test_wait_cqe_timeout_none_means_no_timeout(ring):
    prep(ring, "timeout", 0.05, tag="t")
    ring.submit()
    cqe = ring.wait_cqe_timeout(None)
    assert cqe.get_data() == "t"
    ring.cqe_seen(cqe)


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (float("nan"), ValueError),
                                      (float("inf"), ValueError), ("1", TypeError)])
def test_wait_cqe_timeout_bad_timeout(ring, bad, exc):
    with pytest.raises(exc):
        ring.wait_cqe_timeout(bad)


def test_wait_cqe_timeout_needs_its_argument(ring):
    with pytest.raises(TypeError, match="wait_cqe_timeout"):
        ring.wait_cqe_timeout()


# ---- wait_cqes_min_timeout()

def test_min_timeout_returns_after_the_minimum_with_one_ready(ring):
    prep(ring, "nop", tag="nop")
    _long_timeout(ring)
    ring.submit()
    t = time.monotonic()
    cqe = ring.wait_cqes_min_timeout(2, WAIT, 100000)    # 0.1 s
    took = time.monotonic() - t
    assert cqe.get_data() == "nop"
    assert 0.09 <= took < WAIT / 2      # after the minimum, long before the timeout
    assert ring.cq_ready() == 1         # not marked seen
    ring.cqe_seen(cqe)


def test_min_timeout_wait_nr_ready_returns_before_the_minimum(ring):
    for i in range(2):
        prep(ring, "nop", tag=i)
    ring.submit()
    t = time.monotonic()
    cqe = ring.wait_cqes_min_timeout(2, WAIT, 3000000)   # 3 s minimum
    assert time.monotonic() - t < 2.5
    assert cqe.get_data() == 0
    wait_n(ring, 2)


def test_min_timeout_nothing_by_the_minimum_then_the_first_one_ends_it(ring):
    prep(ring, "timeout", 0.3, tag="soon")
    _long_timeout(ring)
    ring.submit()
    t = time.monotonic()
    cqe = ring.wait_cqes_min_timeout(2, WAIT, 20000)     # 0.02 s
    took = time.monotonic() - t
    assert cqe.get_data() == "soon"
    assert 0.25 <= took < WAIT / 2
    ring.cqe_seen(cqe)


def test_min_timeout_counts_completions_already_reaped(ring):
    prep(ring, "nop", tag="nop")
    _long_timeout(ring)
    ring.submit()
    first = ring.wait_cqe()              # reaped into the queue, not seen
    t = time.monotonic()
    assert ring.wait_cqes_min_timeout(2, WAIT, 50000) is first
    assert 0.04 <= time.monotonic() - t < WAIT / 2
    ring.cqe_seen(first)


def test_min_timeout_none_at_the_timeout(ring):
    _long_timeout(ring)
    ring.submit()
    t = time.monotonic()
    assert ring.wait_cqes_min_timeout(1, 0.1, 20000) is None
    assert time.monotonic() - t >= 0.09


def test_min_timeout_longer_than_the_timeout_is_the_timeout(ring):
    _long_timeout(ring)
    ring.submit()
    t = time.monotonic()
    assert ring.wait_cqes_min_timeout(1, 0.05, 10000000) is None
    assert time.monotonic() - t < 5


def test_min_timeout_does_not_submit(ring):
    prep(ring, "nop", tag="queued")
    assert ring.wait_cqes_min_timeout(1, 0.02, 1000) is None
    assert ring.sq_ready() == 1
    ring.submit()
    assert ring.wait_cqes_min_timeout(1, None, 1000).get_data() == "queued"


@pytest.mark.parametrize("bad, exc", [(-1, (ValueError, OverflowError)),
                                      (2 ** 32, ValueError), (1.5, TypeError)])
def test_min_timeout_bad_min_wait(ring, bad, exc):
    with pytest.raises(exc):
        ring.wait_cqes_min_timeout(1, 0, bad)


def test_min_timeout_bad_sigmask_names_the_method(ring):
    with pytest.raises(TypeError, match="wait_cqes_min_timeout"):
        ring.wait_cqes_min_timeout(1, 0, 0, 5)


# ---- submit_and_wait_timeout() and submit_and_wait_min_timeout()

def test_submit_and_wait_timeout_returns_the_count_submitted(ring):
    for i in range(3):
        prep(ring, "nop", tag=i)
    assert ring.submit_and_wait_timeout(3, WAIT) == 3
    assert ring.sq_ready() == 0
    assert [c.get_data() for c in wait_n(ring, 3)] == [0, 1, 2]


def test_submit_and_wait_timeout_none_when_nothing_came(ring):
    _long_timeout(ring)
    t = time.monotonic()
    assert ring.submit_and_wait_timeout(1, 0.05) is None
    assert time.monotonic() - t >= 0.04
    assert ring.sq_ready() == 0 and ring.in_flight() == 1   # it went in all the same


def test_submit_and_wait_timeout_fewer_than_wait_nr_gives_the_count(ring):
    prep(ring, "nop", tag="nop")
    _long_timeout(ring)
    assert ring.submit_and_wait_timeout(2, 0.05) == 2
    assert ring.cq_ready() == 1


def test_submit_and_wait_timeout_nothing_queued_waits(ring):
    prep(ring, "timeout", 0.05, tag="t")
    ring.submit()
    assert ring.submit_and_wait_timeout(1, WAIT, sigmask=[signal.SIGUSR1]) == 0
    assert ring.cq_ready() == 1


def test_submit_and_wait_min_timeout(ring):
    prep(ring, "nop", tag="nop")
    _long_timeout(ring)
    t = time.monotonic()
    assert ring.submit_and_wait_min_timeout(2, WAIT, 100000) == 2
    assert 0.09 <= time.monotonic() - t < WAIT / 2
    assert ring.peek_cqe().get_data() == "nop"


def test_submit_and_wait_timeout_bad_arguments(ring):
    with pytest.raises(TypeError, match="submit_and_wait_timeout"):
        ring.submit_and_wait_timeout(1)
    with pytest.raises(ValueError, match="submit_and_wait_timeout"):
        ring.submit_and_wait_timeout(-1, 0)
    with pytest.raises(ValueError, match="submit_and_wait_min_timeout"):
        ring.submit_and_wait_min_timeout(1, 0, 0, [0])


@pytest.mark.parametrize("call", [
    lambda r: r.wait_cqe_timeout(WAIT),
    lambda r: r.wait_cqes_min_timeout(1, WAIT, 1000),
    lambda r: r.submit_and_wait_timeout(1, WAIT),
    lambda r: r.submit_and_wait_min_timeout(1, WAIT, 1000),
])
def test_timed_waits_release_the_gil(ring, call):
    _long_timeout(ring)
    ring.submit()
    ran = []

    def other():
        ran.append(1)
        prep(ring, "nop", tag="from-thread")
        ring.submit()

    t = threading.Timer(0.05, other)
    t.start()
    try:
        got = call(ring)
    finally:
        t.join()
    assert ran and got is not None
    cqe = ring.peek_cqe()
    assert cqe.get_data() == "from-thread"
    ring.cqe_seen(cqe)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers run in the main thread")
@pytest.mark.parametrize("call", [
    lambda r: r.wait_cqe_timeout(0.3),
    lambda r: r.wait_cqes_min_timeout(1, 0.3, 1000),
    lambda r: r.submit_and_wait_timeout(1, 0.3),
])
def test_timed_waits_run_handlers_and_go_on(ring, call):
    _long_timeout(ring)
    ring.submit()
    seen = []
    old = signal.signal(signal.SIGALRM, lambda *a: seen.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        t = time.monotonic()
        assert call(ring) is None        # EINTR: the handler ran, the wait went on
        assert time.monotonic() - t >= 0.25
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert seen == [1]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers run in the main thread")
def test_timed_wait_handler_exception_propagates_ring_usable(ring):
    _long_timeout(ring)
    ring.submit()

    def handler(*a):
        raise Interrupted("alarm")

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Interrupted):
            ring.wait_cqes_min_timeout(1, WAIT, 1000)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    prep(ring, "nop", tag="after")
    assert ring.submit_and_wait_timeout(1, WAIT) == 1
    assert ring.peek_cqe().get_data() == "after"


@pytest.mark.parametrize("name, args", [
    ("wait_cqe_timeout", (0,)), ("wait_cqes_min_timeout", (1, 0, 0)),
    ("submit_and_wait_timeout", (1, 0)), ("submit_and_wait_min_timeout", (1, 0, 0))])
def test_closed_ring_refuses(name, args):
    r = py_io_uring.IoUring(4)
    r.queue_exit()
    with pytest.raises(ValueError):
        getattr(r, name)(*args)

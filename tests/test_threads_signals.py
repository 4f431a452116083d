"""Waiting releases the GIL, cooperates with other threads, and lets signal
handlers run (Ctrl-C included) without breaking the ring."""

import errno
import signal
import threading
import time

import pytest

from uring_helpers import WAIT, prep, wait_one


class Counter(threading.Thread):
    """A thread that counts as fast as it can until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.count = 0
        self.stop = threading.Event()
        self.running = threading.Event()

    def run(self):
        self.running.set()
        while not self.stop.is_set():
            self.count += 1

    def calibrate(self, seconds=0.1):
        """How far it counts while this thread sleeps (GIL released)."""
        assert self.running.wait(WAIT)
        before = self.count
        time.sleep(seconds)
        return self.count - before


# If the wait held the GIL, the counter could only move during the few
# switch intervals (5 ms each) around the call; released, it moves about as
# much as while sleeping.  Requiring a third of the calibrated progress over
# the same time tells the two apart.


@pytest.mark.parametrize("how", ["wait_cqe", "wait_cqe_nr", "submit_and_wait"])
def test_waiting_releases_the_gil(ring, how):
    counter = Counter()
    counter.start()
    try:
        calibrated = counter.calibrate(0.3)
        prep(ring, "timeout", 0.3)
        if how != "submit_and_wait":
            ring.submit()
        before = counter.count
        t0 = time.monotonic()
        if how == "wait_cqe":
            cqe = ring.wait_cqe()
        elif how == "wait_cqe_nr":
            (cqe,) = ring.wait_cqe_nr(1)
        else:
            ring.submit_and_wait(1)
            cqe = ring.peek_cqe()
        elapsed = time.monotonic() - t0
        during = counter.count - before
    finally:
        counter.stop.set()
        counter.join(WAIT)
    assert cqe.res() == -errno.ETIME
    ring.cqe_seen(cqe)
    assert 0.25 <= elapsed < WAIT
    assert during > calibrated / 3, "the counting thread barely ran during the wait (%d vs %d)" % (
        during,
        calibrated,
    )


def test_a_submit_lets_other_threads_run(tmp_path):
    # A submit alone keeps the GIL only when no other thread could want it
    # (core/submit.c, flush_round): with a thread counting, a submit whose
    # 256 reads of 4 MiB complete inline (page-cache copies, about 100 ms,
    # far more than the 5 ms switch interval in which the counter might
    # run before the submit takes the GIL) must let it run, as a wait does.
    import py_io_uring

    path = tmp_path / "f"
    size = 4 << 20
    path.write_bytes(b"x" * size)
    buf = bytearray(size)
    counter = Counter()
    counter.start()
    with open(str(path), "rb") as f, py_io_uring.IoUring(256) as ring:
        try:
            assert counter.running.wait(WAIT)
            rounds = []
            for _ in range(3):
                for i in range(256):
                    ring.prep_read(f.fileno(), buf, 0, user_data=i)
                before = counter.count
                t0 = time.monotonic()
                assert ring.submit() == 256
                elapsed = time.monotonic() - t0
                during = counter.count - before
                got = ring.reap(256, 256)
                assert sorted(r for _, r, _ in got) == [size] * 256
                calibrated = counter.calibrate(elapsed)
                rounds.append((during, calibrated))
        finally:
            counter.stop.set()
            counter.join(WAIT)
    assert buf == b"x" * size
    # the best of three rounds: a busy machine may starve the counter once
    assert any(d > c / 3 for d, c in rounds), rounds


def test_waiting_with_timeout_releases_the_gil(ring):
    counter = Counter()
    counter.start()
    try:
        calibrated = counter.calibrate(0.3)
        prep(ring, "timeout", 60)
        ring.submit()
        before = counter.count
        assert ring.wait_cqe(timeout=0.3) is None
        during = counter.count - before
    finally:
        counter.stop.set()
        counter.join(WAIT)
    assert during > calibrated / 3, (during, calibrated)


def test_other_thread_submits_while_waiting(ring):
    # Something long is in flight, so the waiter does not refuse to wait.
    prep(ring, "timeout", 60, tag="long")
    ring.submit()
    result = {}

    def waiter():
        try:
            result["cqe"] = ring.wait_cqe(timeout=WAIT)
        except BaseException as e:  # reported below
            result["error"] = e

    t = threading.Thread(target=waiter)
    t.start()
    try:
        time.sleep(0.2)  # let the waiter block in the kernel
        assert t.is_alive()
        sqe = ring.get_sqe()
        sqe.prep_nop()
        sqe.set_data("from main")
        assert ring.submit() == 1
    finally:
        t.join(WAIT + 1)
    assert not t.is_alive()
    assert "error" not in result, result.get("error")
    cqe = result["cqe"]
    assert cqe is not None, "the waiter did not get the completion"
    assert cqe.get_data() == "from main"
    ring.cqe_seen(cqe)


def test_other_thread_submits_main_waits(ring):
    prep(ring, "timeout", 60, tag="long")
    ring.submit()

    def submitter():
        time.sleep(0.1)
        s = ring.get_sqe()
        s.prep_nop()
        s.set_data("from thread")
        ring.submit()

    t = threading.Thread(target=submitter)
    t.start()
    try:
        cqe = ring.wait_cqe(timeout=WAIT)
    finally:
        t.join(WAIT)
    assert cqe is not None and cqe.get_data() == "from thread"
    ring.cqe_seen(cqe)


def test_second_concurrent_waiter_raises(ring):
    prep(ring, "timeout", 60, tag="long")
    ring.submit()
    result = {}

    def waiter():
        try:
            result["cqe"] = ring.wait_cqe(timeout=3)
        except BaseException as e:
            result["error"] = e

    t = threading.Thread(target=waiter)
    t.start()
    try:
        time.sleep(0.3)  # the thread is now waiting
        assert t.is_alive()
        with pytest.raises(RuntimeError):
            ring.wait_cqe(timeout=0.5)
        # wake the first waiter
        s = ring.get_sqe()
        s.prep_nop()
        s.set_data("wake")
        ring.submit()
    finally:
        t.join(WAIT)
    assert "error" not in result, result.get("error")
    assert result["cqe"].get_data() == "wake"
    ring.cqe_seen(result["cqe"])
    # Once nobody waits, waiting works again from this thread.
    s = ring.get_sqe()
    s.prep_nop()
    ring.submit()
    assert wait_one(ring).res() == 0


def test_many_threads_submitting_under_a_lock(ring):
    # liburing is not thread-safe on one ring; serialised use from several
    # threads must work and lose nothing.
    lock = threading.Lock()
    n_threads, per_thread = 4, 100

    def work(k):
        for i in range(per_thread):
            with lock:
                s = ring.get_sqe()
                s.prep_nop()
                s.set_data((k, i))
                ring.submit()
                c = ring.wait_cqe(timeout=WAIT)
                ring.cqe_seen(c)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert ring.cq_ready() == 0
    assert ring.in_flight() == 0


# --------------------------------------------------------------------------
# Signals


class Alarm(Exception):
    pass


@pytest.fixture
def alarm():
    """Install a SIGALRM handler (given as the fixture's call) and restore
    everything afterwards."""
    old = signal.getsignal(signal.SIGALRM)

    def install(handler, delay, interval=0.0):
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, delay, interval)

    try:
        yield install
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_signal_handler_exception_propagates_from_wait(ring, alarm):
    def handler(signum, frame):
        raise Alarm()

    prep(ring, "timeout", 1.0, tag="pending")
    ring.submit()
    alarm(handler, 0.1)
    t0 = time.monotonic()
    with pytest.raises(Alarm):
        ring.wait_cqe()
    assert time.monotonic() - t0 < 0.8, "the handler ran only after the wait ended"
    # The ring is usable and the pending completion still arrives.
    s = ring.get_sqe()
    s.prep_nop()
    s.set_data("nop")
    ring.submit()
    got = {wait_one(ring).get_data(): None for _ in range(2)}
    assert set(got) == {"nop", "pending"}


def test_signal_handler_exception_propagates_from_wait_with_timeout(ring, alarm):
    def handler(signum, frame):
        raise Alarm()

    prep(ring, "timeout", 1.0, tag="pending")
    ring.submit()
    alarm(handler, 0.1)
    t0 = time.monotonic()
    with pytest.raises(Alarm):
        ring.wait_cqe_nr(1, timeout=10)
    assert time.monotonic() - t0 < 0.8, "the handler ran only after the wait ended"
    cqe = wait_one(ring)
    assert cqe.get_data() == "pending" and cqe.res() == -errno.ETIME


def _counting_handler(calls, limit):
    """A handler that records its calls and stops the interval timer after
    `limit` of them, so that no test can hang on endless signals."""

    def handler(signum, frame):
        calls.append(signum)
        if len(calls) >= limit:
            signal.setitimer(signal.ITIMER_REAL, 0)

    return handler


def test_wait_resumes_after_signal_handler_returns(ring, alarm):
    calls = []
    alarm(_counting_handler(calls, 40), 0.05, 0.05)
    prep(ring, "timeout", 0.3, tag="t")
    ring.submit()
    t0 = time.monotonic()
    cqe = ring.wait_cqe()
    elapsed = time.monotonic() - t0
    signal.setitimer(signal.ITIMER_REAL, 0)
    assert calls, "the handler never ran"
    assert cqe is not None and cqe.get_data() == "t" and cqe.res() == -errno.ETIME
    assert 0.25 <= elapsed < WAIT
    ring.cqe_seen(cqe)


def test_wait_timeout_is_kept_across_signals(ring, alarm):
    # Interrupted waits resume with the remaining time, not from scratch
    # and not returning early.
    calls = []
    # 40 signals, 50 ms apart: a wait that restarted its timeout after each
    # would last 2.4 s.
    alarm(_counting_handler(calls, 40), 0.05, 0.05)
    prep(ring, "timeout", 60)
    ring.submit()
    t0 = time.monotonic()
    assert ring.wait_cqe(timeout=0.4) is None
    elapsed = time.monotonic() - t0
    signal.setitimer(signal.ITIMER_REAL, 0)
    assert len(calls) >= 2
    assert 0.35 <= elapsed < 2.0


CTRL_C_SCRIPT = r"""
import os, signal, sys, threading, time
import py_io_uring

ring = py_io_uring.IoUring(8)
s = ring.get_sqe()
s.prep_timeout(60)
s.set_data("long")
ring.submit()

main = threading.main_thread().ident
threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT)).start()
t0 = time.monotonic()
try:
    ring.wait_cqe(%s)
except KeyboardInterrupt:
    elapsed = time.monotonic() - t0
else:
    print("wait_cqe returned without KeyboardInterrupt")
    sys.exit(1)
if elapsed > 5:
    print("KeyboardInterrupt came late: %%.1f s" %% elapsed)
    sys.exit(1)

# The ring still works.
s = ring.get_sqe()
s.prep_nop()
s.set_data("nop")
ring.submit()
c = ring.wait_cqe(timeout=5)
assert c is not None and c.get_data() == "nop" and c.res() == 0, c
ring.cqe_seen(c)
assert ring.in_flight() == 1  # the 60-second timeout
ring.queue_exit()
print("OK")
"""


@pytest.mark.parametrize("args", ["", "timeout=30"])
def test_ctrl_c_interrupts_wait(run_py, args):
    proc = run_py(CTRL_C_SCRIPT % args, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "OK"
    assert proc.stderr == ""

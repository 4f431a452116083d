"""Robustness under load: cancellation races, short transfers, full queues,
timeouts and links, signals during waits, and leaks over many operations.

Randomised tests use a fixed seed per parameter (shown in the test id), so a
failure names what to rerun; the kernel's timing still varies run to run.
"""

import errno
import gc
import os
import random
import signal
import socket
import sys
import threading
import time

import pytest

from py_io_uring import (
    AT_FDCWD,
    IORING_TIMEOUT_ABS,
    IOSQE_IO_HARDLINK,
    IOSQE_IO_LINK,
    IoUring,
    SubmissionQueueFull,
)
from uring_helpers import TMP_CONTENT, WAIT, by_data, closed_fd, prep, wait_n, wait_one

ECANCELED, ENOENT, EALREADY, ETIME = errno.ECANCELED, errno.ENOENT, errno.EALREADY, errno.ETIME


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def get_sqe(ring):
    """get_sqe(), submitting first when the submission queue is full."""
    try:
        return ring.get_sqe()
    except SubmissionQueueFull:
        ring.submit()
        return ring.get_sqe()


def pattern(start, n):
    """Bytes start..start+n of a stream that never contains 0xEE (the
    sentinel of untouched buffers)."""
    return bytes((i % 200) + 1 for i in range(start, start + n))


SENTINEL = 0xEE


# ==========================================================================
# Cancellation races


class _Target:
    __slots__ = ("n", "kind", "sqe", "sock", "buf", "res", "cancel", "mode", "due", "reaped")

    def __init__(self, n, kind):
        self.n = n
        self.kind = kind
        self.sqe = None
        self.sock = None
        self.buf = None
        self.res = None
        self.cancel = None  # the _Cancel aimed at it
        self.mode = None
        self.due = None
        self.reaped = False


class _Cancel:
    __slots__ = ("target", "res", "strict")

    def __init__(self, target, strict):
        self.target = target
        self.res = None
        self.strict = strict  # the target was reaped before: -ENOENT only


@pytest.mark.no_leakcheck
@pytest.mark.parametrize("seed", [1, 2])
def test_cancellation_race_stress(seed):
    rng = random.Random(seed)
    N = 2000
    ring = IoUring(128)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(16)]
    sent = [0] * len(pairs)  # bytes sent into pairs[i][1]
    received = [0] * len(pairs)  # bytes received by completed recvs
    recv_busy = [None] * len(pairs)  # the recv in flight on pairs[i][0]
    targets, outstanding = [], {}
    scheduled = []  # targets whose cancel is due later
    finished_bufs = []  # (bytearray, content it must keep)
    outcomes = {}
    t0 = time.monotonic()

    def prep_cancel(t, strict):
        c = _Cancel(t, strict)
        t.cancel = c
        s = get_sqe(ring)
        s.prep_cancel(t.sqe)
        s.set_data(c)
        outstanding[id(c)] = c

    def finish_target(t, cqe):
        assert not t.reaped, "target %d completed twice" % t.n
        t.reaped = True
        t.res = res = cqe.res()
        if t.kind == "recv":
            i = t.sock
            recv_busy[i] = None
            if res > 0:
                want = pattern(received[i], res)
                assert bytes(t.buf[:res]) == want, "recv %d: wrong or reordered data" % t.n
                assert t.buf[res:] == bytes([SENTINEL]) * (len(t.buf) - res)
                received[i] += res
                assert cqe.getresult() == res
            else:
                assert res == -ECANCELED, "recv %d: res %d" % (t.n, res)
                assert t.buf == bytes([SENTINEL]) * len(t.buf), "a cancelled recv wrote its buffer"
            finished_bufs.append((t.buf, bytes(t.buf)))
        elif t.kind == "timeout":
            assert res in (-ETIME, -ECANCELED), "timeout %d: res %d" % (t.n, res)
        else:
            assert res == 0, "nop %d: res %d" % (t.n, res)
        outcomes[(t.kind, res if res <= 0 else "data")] = outcomes.get((t.kind, res if res <= 0 else "data"), 0) + 1
        if t.mode == "after":
            prep_cancel(t, strict=True)

    def finish_cancel(c, cqe):
        assert c.res is None, "a cancel completed twice"
        c.res = res = cqe.res()
        assert res in (0, -ENOENT, -EALREADY), "cancel: res %d" % res
        if c.strict or c.target.kind == "nop":
            assert res == -ENOENT, "cancel of a finished %s: res %d" % (c.target.kind, res)
        outcomes[("cancel", res)] = outcomes.get(("cancel", res), 0) + 1

    def check_pair(t):
        c = t.cancel
        if c is None or c.res is None or not t.reaped:
            return
        if c.res == 0:
            assert t.res == -ECANCELED, "cancel found %s %d, which then ended %d" % (t.kind, t.n, t.res)
        if t.res == -ECANCELED:
            assert c.res in (0, -EALREADY), "%s %d cancelled, its cancel said %d" % (t.kind, t.n, c.res)

    it = 0
    while len(targets) < N or outstanding or scheduled:
        it += 1
        assert time.monotonic() - t0 < 20, "stress did not finish: %d of %d targets" % (len(targets), N)
        # new targets, each with a cancel at some point
        for _ in range(rng.randint(0, 8)):
            if len(targets) >= N or len(outstanding) >= 96:
                break
            kind = rng.choice(("recv", "recv", "timeout", "nop"))
            free = [i for i, b in enumerate(recv_busy) if b is None]
            if kind == "recv" and not free:
                kind = "timeout"
            t = _Target(len(targets), kind)
            t.sqe = s = get_sqe(ring)
            if kind == "recv":
                t.sock = rng.choice(free)
                recv_busy[t.sock] = t
                t.buf = bytearray([SENTINEL]) * rng.randint(1, 64)
                s.prep_recv(pairs[t.sock][0], t.buf)
            elif kind == "timeout":
                s.prep_timeout(rng.random() * 0.002)
            else:
                s.prep_nop()
            s.set_data(t)
            targets.append(t)
            outstanding[id(t)] = t
            t.mode = rng.choice(("with", "delayed", "after"))
            if t.mode == "with":
                prep_cancel(t, strict=False)
            elif t.mode == "delayed":
                t.due = it + rng.randint(0, 10)
                scheduled.append(t)
        # cancels that are due
        for t in [t for t in scheduled if t.due <= it]:
            scheduled.remove(t)
            prep_cancel(t, strict=t.reaped)
        # data at random moments
        for i, b in enumerate(recv_busy):
            if b is not None and rng.random() < 0.25:
                n = rng.randint(1, 48)
                assert pairs[i][1].send(pattern(sent[i], n)) == n
                sent[i] += n
        ring.submit()
        # reap whatever is there, sometimes waiting a little
        cqes = ring.wait_cqe_nr(256, timeout=rng.choice((0, 0, 0.0005)))
        for cqe in cqes:
            ring.cqe_seen(cqe)
            obj = cqe.get_data()
            assert outstanding.pop(id(obj), None) is obj, "completion of something not in flight: %r" % (obj,)
            if isinstance(obj, _Target):
                finish_target(obj, cqe)
                check_pair(obj)
            else:
                finish_cancel(obj, cqe)
                check_pair(obj.target)
        if not cqes and len(targets) >= N and not scheduled and outstanding:
            # only recvs waiting for a cancel after completion are left: feed them
            for i, b in enumerate(recv_busy):
                if b is not None:
                    assert pairs[i][1].send(pattern(sent[i], 8)) == 8
                    sent[i] += 8
            ring.wait_cqe_nr(1, timeout=0.01)

    assert ring.in_flight() == 0 and ring.cq_ready() == 0
    for t in targets:
        assert t.reaped and t.cancel is not None and t.cancel.res is not None
        check_pair(t)
    # More data now: no buffer of a finished recv is written again, and the
    # streams lost or duplicated nothing.
    for i, (a, b) in enumerate(pairs):
        b.send(pattern(sent[i], 300))
        sent[i] += 300
    time.sleep(0.02)
    for i, (a, b) in enumerate(pairs):
        rest = bytearray()
        while len(rest) < sent[i] - received[i]:
            rest += a.recv(65536)
        assert bytes(rest) == pattern(received[i], sent[i] - received[i]), "socket %d: stream damaged" % i
    for buf, content in finished_bufs:
        assert bytes(buf) == content, "a recv buffer was written after its completion"
    # the race really was exercised both ways
    for key in (("recv", -ECANCELED), ("recv", "data"), ("timeout", -ECANCELED), ("timeout", -ETIME), ("cancel", 0), ("cancel", -ENOENT)):
        assert outcomes.get(key), "never saw %r: %r" % (key, outcomes)
    ring.queue_exit()
    for a, b in pairs:
        a.close()
        b.close()
    assert time.monotonic() - t0 < 20


# ==========================================================================
# Short reads, partial sends, end of stream


@pytest.mark.parametrize("into", ["length", "bytearray"])
@pytest.mark.parametrize("offset,size", [(4000, 500), (4095, 10), (0, 5000), (4096, 100), (10000, 7)])
def test_read_past_eof_returns_the_tail(ring, tmp_file, into, offset, size):
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        tail = TMP_CONTENT[offset : offset + size]
        buf = bytearray(b"\xee") * size if into == "bytearray" else None
        prep(ring, "read", fd, buf if buf is not None else size, offset)
        ring.submit()
        cqe = wait_one(ring)
        assert cqe.res() == len(tail)
        result = cqe.getresult()
        if buf is None:
            assert isinstance(result, bytes)
            assert len(result) == cqe.res()
            assert result == tail
        else:
            assert result == len(tail)
            assert buf[: len(tail)] == tail
            assert buf[len(tail) :] == b"\xee" * (size - len(tail)), "bytes past the end were written"
    finally:
        os.close(fd)


@pytest.mark.parametrize("into", ["length", "bytearray"])
def test_read_of_zero_bytes(ring, tmp_file, pipe, into):
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        r, w = pipe  # an empty pipe: a zero-byte read must not wait for data
        for target, offset in ((fd, 0), (fd, 100), (r, -1)):
            prep(ring, "read", target, 0 if into == "length" else bytearray(), offset)
            ring.submit()
            cqe = wait_one(ring)
            assert cqe.res() == 0
            assert cqe.getresult() == (b"" if into == "length" else 0)
    finally:
        os.close(fd)


@pytest.mark.no_leakcheck
@pytest.mark.parametrize("flags", [0, socket.MSG_DONTWAIT], ids=["blocking", "dontwait"])
def test_partial_sends_deliver_everything(ring, tcp_pair, flags):
    client, server = tcp_pair
    # a small send buffer; a fixed receive window (a tiny one makes loopback
    # TCP crawl on delayed acks, autotuning makes it slow in other ways)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    total = 8 << 20
    data = random.Random(7).getrandbits(8 * total).to_bytes(total, "little")  # 3.8: no randbytes
    got = bytearray()
    done = threading.Event()

    def reader():
        server.settimeout(WAIT)
        try:
            while len(got) < total:
                chunk = server.recv(65536)
                if not chunk:
                    break
                got.extend(chunk)
        except OSError:
            pass  # a timeout: the length check below reports it
        finally:
            done.set()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    view = memoryview(data)
    sent = partial = eagain = calls = 0
    t0 = time.monotonic()
    while sent < total:
        assert time.monotonic() - t0 < 30, "8 MiB not sent in 30 s (%d sent)" % sent
        calls += 1
        prep(ring, "send", client, view[sent:], flags)
        ring.submit()
        cqe = wait_one(ring)
        res = cqe.res()
        if res == -errno.EAGAIN:
            assert flags & socket.MSG_DONTWAIT, "EAGAIN from a blocking send"
            eagain += 1
            time.sleep(0.0005)
            continue
        assert 0 < res <= total - sent, "send returned %d with %d left" % (res, total - sent)
        assert cqe.getresult() == res
        if res < total - sent:
            partial += 1
        sent += res
    assert done.wait(30), "the reader did not finish"
    th.join(WAIT)
    assert len(got) == total
    assert got == data, "the bytes that arrived differ from those sent"
    # 8 MiB cannot all fit into 4 KiB socket buffers at once
    assert calls > 1 and partial > 0, (calls, partial, eagain)


@pytest.mark.parametrize("into", ["length", "bytearray"])
@pytest.mark.parametrize("how", ["closed_before", "closed_while_pending", "shutdown"])
def test_recv_returns_nothing_when_the_peer_closed(ring, tcp_pair, into, how):
    client, server = tcp_pair
    buf = bytearray(b"\xee") * 64 if into == "bytearray" else None
    arg = buf if buf is not None else 64
    if how == "closed_before":
        server.close()
    elif how == "shutdown":
        server.shutdown(socket.SHUT_WR)
    prep(ring, "recv", client, arg, tag="recv")
    ring.submit()
    if how == "closed_while_pending":
        assert ring.wait_cqe(timeout=0.05) is None, "recv completed with nothing sent"
        server.close()
    cqe = wait_one(ring)
    assert cqe.get_data() == "recv"
    assert cqe.res() == 0
    if buf is None:
        assert cqe.getresult() == b""
    else:
        assert cqe.getresult() == 0
        assert buf == b"\xee" * 64


# ==========================================================================
# Full queues


@pytest.mark.parametrize("entries", [1, 8])
def test_full_submission_queue_loses_nothing(tmp_file, entries):
    ring = IoUring(entries)
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        n_full = 0
        expected = {}
        i = 0
        while i < 300:
            try:
                s = ring.get_sqe()
            except SubmissionQueueFull:
                n_full += 1
                assert ring.sq_space_left() == 0
                assert ring.sq_ready() == entries
                assert ring.submit() == entries, "submit() after SubmissionQueueFull"
                continue  # retry the same i
            if i % 3:
                s.prep_nop()
                expected[i] = 0
            else:
                s.prep_read(fd, 16, i)
                expected[i] = TMP_CONTENT[i : i + 16]
            s.set_data(i)
            i += 1
            if i % 97 == 0:
                # completions pile up while entries are acquired
                assert ring.in_flight() >= ring.sq_ready()
        ring.submit()
        assert n_full >= 300 // entries - 1
        seen = {}
        while len(seen) < 300:
            cqes = ring.wait_cqe_nr(300 - len(seen), timeout=WAIT)
            assert cqes, "completions lost: %d of 300" % len(seen)
            for c in cqes:
                ring.cqe_seen(c)
                k = c.get_data()
                assert k not in seen, "completion %r twice" % k
                seen[k] = c.getresult()
        assert seen == expected
        assert ring.in_flight() == 0 and ring.peek_cqe() is None
    finally:
        ring.queue_exit()
        os.close(fd)


def test_full_submission_queue_keeps_a_link_chain_whole():
    # get_sqe() never flushes behind the caller's back: a chain that does
    # not fit makes the caller submit, and the chain stays one chain.
    ring = IoUring(4)
    try:
        bad = closed_fd()
        s = ring.get_sqe()
        s.prep_nop()
        s.set_data("filler")
        chain = []
        for k in range(3):
            s = ring.get_sqe()
            if k == 0:
                s.prep_read(bad, 8)  # fails: the rest of the chain is cancelled
            else:
                s.prep_nop()
            s.set_flags(IOSQE_IO_LINK)
            s.set_data(("chain", k))
            chain.append(s)
        with pytest.raises(SubmissionQueueFull):
            ring.get_sqe()
        assert ring.submit() == 4
        s = ring.get_sqe()
        s.prep_nop()  # the chain's last member, in the next submit
        s.set_data(("chain", 3))
        ring.submit()
        got = by_data(wait_n(ring, 5))
        assert got["filler"].res() == 0
        assert got[("chain", 0)].res() == -errno.EBADF
        # the link flag on the last entry of a submit ends the chain there
        assert got[("chain", 1)].res() == -ECANCELED
        assert got[("chain", 2)].res() == -ECANCELED
        assert got[("chain", 3)].res() == 0
    finally:
        ring.queue_exit()


def _submit_through_ebusy(ring, reap, stats):
    """submit(); when the kernel answers EBUSY (completions backed up),
    reap some and try again."""
    for _ in range(100):
        try:
            return ring.submit()
        except OSError as e:
            assert e.errno == errno.EBUSY, e
            stats["ebusy"] += 1
            reap()
    raise AssertionError("submit() kept failing with EBUSY")


@pytest.mark.parametrize("op", ["nop", "read"])
def test_completion_queue_overflow_keeps_everything(tmp_file, op):
    ring = IoUring(4)  # CQ of 8 entries
    fd = os.open(tmp_file, os.O_RDONLY)
    got = []
    stats = {"ebusy": 0}

    def reap():
        for c in ring.wait_cqe_nr(4, timeout=WAIT):
            ring.cqe_seen(c)
            got.append(c)

    try:
        n = 0
        submitted = 0
        while n < 200:
            for _ in range(4):
                s = ring.get_sqe()
                if op == "nop":
                    s.prep_nop()
                else:
                    s.prep_read(fd, 8, n % 4000)
                s.set_data(n)
                n += 1
            submitted += _submit_through_ebusy(ring, reap, stats)
        assert submitted == 200
        if not stats["ebusy"]:
            assert ring.in_flight() == 200, "nothing was reaped, all 200 are in flight"
        deadline = time.monotonic() + WAIT
        while len(got) < 200:
            assert time.monotonic() < deadline, "lost completions: %d of 200" % len(got)
            for c in ring.wait_cqe_nr(200 - len(got), timeout=1):
                ring.cqe_seen(c)
                got.append(c)
        keys = [c.get_data() for c in got]
        assert sorted(keys) == list(range(200)), "completions lost or duplicated"
        if op == "nop":
            assert keys == list(range(200)), "overflowed completions came back out of order"
        for c in got:
            k = c.get_data()
            if op == "nop":
                assert c.res() == 0
            else:
                assert c.getresult() == TMP_CONTENT[k % 4000 : k % 4000 + 8]
        assert ring.in_flight() == 0 and ring.peek_cqe() is None
        assert ring.wait_cqe(timeout=0.01) is None
    finally:
        ring.queue_exit()
        os.close(fd)


# ==========================================================================
# Timeouts and links


def test_count_timeout_completes_after_n_completions(ring):
    prep(ring, "timeout", 30, 3, tag="timeout")
    ring.submit()
    for k in range(2):
        prep(ring, "nop", tag=k)
    ring.submit()
    got = wait_n(ring, 2)
    assert {c.get_data() for c in got} == {0, 1}
    assert ring.wait_cqe(timeout=0.05) is None, "the timeout fired after 2 of 3 completions"
    prep(ring, "nop", tag=2)
    t0 = time.monotonic()
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert time.monotonic() - t0 < 1
    assert got["timeout"].res() == 0 and got["timeout"].getresult() == 0
    assert got[2].res() == 0


def test_absolute_monotonic_timeout(ring):
    when = time.clock_gettime(time.CLOCK_MONOTONIC) + 0.1
    prep(ring, "timeout", when, flags=IORING_TIMEOUT_ABS, tag="abs")
    ring.submit()
    cqe = wait_one(ring)
    now = time.clock_gettime(time.CLOCK_MONOTONIC)
    assert cqe.get_data() == "abs" and cqe.res() == -ETIME
    assert now >= when - 0.002, "fired %.3f s early" % (when - now)
    assert now < when + 1
    # one in the past fires at once
    prep(ring, "timeout", time.clock_gettime(time.CLOCK_MONOTONIC) - 1, flags=IORING_TIMEOUT_ABS, tag="past")
    t0 = time.monotonic()
    ring.submit()
    cqe = wait_one(ring)
    assert cqe.get_data() == "past" and cqe.res() == -ETIME
    assert time.monotonic() - t0 < 0.5


def test_linked_timeout_that_does_not_fire(ring, tmp_file):
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        s = prep(ring, "read", fd, 32, 0, tag="read")
        s.set_flags(IOSQE_IO_LINK)
        prep(ring, "link_timeout", 5, tag="lt")
        t0 = time.monotonic()
        ring.submit()
        got = by_data(wait_n(ring, 2))
        assert time.monotonic() - t0 < 2
        assert got["read"].getresult() == TMP_CONTENT[:32]
        assert got["lt"].res() == -ECANCELED
    finally:
        os.close(fd)


def test_linked_timeout_that_fires(ring, tcp_pair):
    client, server = tcp_pair
    buf = bytearray(b"\xee") * 16
    s = prep(ring, "recv", client, buf, tag="recv")
    s.set_flags(IOSQE_IO_LINK)
    prep(ring, "link_timeout", 0.05, tag="lt")
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert got["recv"].res() == -ECANCELED
    assert got["lt"].res() == -ETIME
    # data sent afterwards stays in the socket, not in the cancelled buffer
    server.send(b"late")
    time.sleep(0.01)
    assert buf == b"\xee" * 16
    assert client.recv(16) == b"late"


def test_broken_link_chain_cancels_the_rest(ring):
    bad = closed_fd()
    s = prep(ring, "read", bad, 8, tag="first")
    s.set_flags(IOSQE_IO_LINK)
    s = prep(ring, "nop", tag="second")
    s.set_flags(IOSQE_IO_LINK)
    prep(ring, "nop", tag="third")
    prep(ring, "nop", tag="independent")
    ring.submit()
    got = by_data(wait_n(ring, 4))
    assert got["first"].res() == -errno.EBADF
    with pytest.raises(OSError) as ei:
        got["first"].getresult()
    assert ei.value.errno == errno.EBADF
    assert got["second"].res() == -ECANCELED
    assert got["third"].res() == -ECANCELED
    assert got["independent"].res() == 0


def test_hardlink_continues_after_failure(ring):
    bad = closed_fd()
    s = prep(ring, "read", bad, 8, tag="first")
    s.set_flags(IOSQE_IO_HARDLINK)
    s = prep(ring, "nop", tag="second")
    s.set_flags(IOSQE_IO_HARDLINK)
    prep(ring, "timeout", 0.001, tag="third")
    ring.submit()
    got = by_data(wait_n(ring, 3))
    assert got["first"].res() == -errno.EBADF
    assert got["second"].res() == 0
    assert got["third"].res() == -ETIME


def test_timeout_remove_of_completed_timeout(ring):
    t = prep(ring, "timeout", 0.001, tag="t")
    ring.submit()
    cqe = wait_one(ring)
    assert cqe.get_data() == "t" and cqe.res() == -ETIME
    prep(ring, "timeout_remove", t, tag="rm")
    ring.submit()
    cqe = wait_one(ring)
    assert cqe.get_data() == "rm" and cqe.res() == -ENOENT
    with pytest.raises(FileNotFoundError):
        cqe.getresult()
    assert ring.in_flight() == 0


# ==========================================================================
# Signals during a wait


class Alarm(Exception):
    pass


@pytest.fixture
def alarm():
    old = signal.getsignal(signal.SIGALRM)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("handler_raises", [True, False])
def test_signal_during_wait_cqe_nr_loses_nothing(ring, alarm, handler_raises):
    calls = []

    def handler(signum, frame):
        calls.append(time.monotonic())
        if handler_raises:
            raise Alarm()

    signal.signal(signal.SIGALRM, handler)
    prep(ring, "nop", tag="before-1")
    prep(ring, "timeout", 0.02, tag="before-2")  # arrives before the signal
    prep(ring, "timeout", 0.5, tag="after")  # and this one after it
    t0 = time.monotonic()
    ring.submit()
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    if handler_raises:
        with pytest.raises(Alarm):
            ring.wait_cqe_nr(3, timeout=WAIT)
        elapsed = time.monotonic() - t0
        assert elapsed < 0.45, "the handler ran only after the wait ended (%.3f s)" % elapsed
        cqes = ring.wait_cqe_nr(3, timeout=WAIT)
    else:
        cqes = ring.wait_cqe_nr(3, timeout=WAIT)
        assert time.monotonic() - t0 >= 0.45
    assert len(calls) == 1, "the handler ran %d times" % len(calls)
    assert calls[0] - t0 < 0.45, "the handler ran only after the wait ended"
    assert [c.get_data() for c in cqes] == ["before-1", "before-2", "after"]
    assert [c.res() for c in cqes] == [0, -ETIME, -ETIME]
    for c in cqes:
        ring.cqe_seen(c)
    assert ring.in_flight() == 0 and ring.peek_cqe() is None


# ==========================================================================
# Leaks under repetition


def _mixed_round(ring, n_ops, path, fd, wfd, sock_a, sock_b, bad, pending_close):
    """n_ops mixed operations in batches; every completion checked."""
    rng = random.Random(n_ops)
    done = 0
    counts = [0, 0]  # (errors, successes)
    while done < n_ops:
        batch = []
        # close what the previous batch opened
        while pending_close and len(batch) < 8:
            s = ring.get_sqe()
            s.prep_close(pending_close.pop())
            s.set_data(len(batch))
            batch.append(("close", None))
        while len(batch) < 48:
            k = rng.randrange(11)
            s = ring.get_sqe()
            if k == 0:
                s.prep_read(fd, 64, rng.randrange(4000))
                batch.append(("read", None))
            elif k == 1:
                buf = bytearray(64)
                s.prep_read(fd, buf, 128)
                batch.append(("readinto", buf))
            elif k == 2:
                s.prep_write(wfd, b"leak-test", rng.randrange(1000))
                batch.append(("write", None))
            elif k == 3:
                s.prep_send(sock_a, b"0123456789abcdef")
                batch.append(("send", None))
            elif k == 4:
                s.prep_recv(sock_b, 16, socket.MSG_DONTWAIT)
                batch.append(("recv", None))
            elif k == 5:
                s.prep_timeout(0.0001)
                batch.append(("timeout", None))
            elif k == 6:
                s.prep_timeout(30)
                c = ring.get_sqe()
                c.prep_cancel(s)
                batch.append(("long", None))
                batch.append(("cancel", None))
            elif k == 7:
                s.prep_statx(AT_FDCWD, path)
                batch.append(("statx", None))
            elif k == 8:
                s.prep_openat(AT_FDCWD, path, os.O_RDONLY)
                batch.append(("open", None))
            elif k == 9:
                s.prep_read(bad, 8)
                batch.append(("bad", None))
            else:
                s.prep_nop()
                batch.append(("nop", None))
            s.set_data(len(batch) - 1 if batch[-1][0] != "cancel" else len(batch) - 2)
            if batch[-1][0] == "cancel":
                c.set_data(len(batch) - 1)
        ring.submit()
        n = len(batch)
        got = 0
        while got < n:
            cqes = ring.wait_cqe_nr(n - got, timeout=WAIT)
            assert cqes, "completions missing"
            for c in cqes:
                ring.cqe_seen(c)
                kind, buf = batch[c.get_data()]
                got += 1
                try:
                    r = c.getresult()
                except OSError as e:
                    counts[0] += 1
                    allowed = {
                        "bad": (errno.EBADF,),
                        "recv": (errno.EAGAIN,),
                        "long": (errno.ECANCELED,),
                        "timeout": (errno.ETIME,),
                        "cancel": (errno.ENOENT, errno.EALREADY),
                    }.get(kind, ())
                    assert e.errno in allowed, "%s failed: %s" % (kind, e)
                    continue
                counts[1] += 1
                if kind == "read":
                    assert isinstance(r, bytes) and len(r) == c.res()
                elif kind == "readinto":
                    assert r == 64 and buf == TMP_CONTENT[128:192]
                elif kind == "statx":
                    assert r.st_size == 4096
                elif kind == "open":
                    assert r >= 0
                    pending_close.append(r)
                elif kind in ("write", "send"):
                    assert r > 0
        done += n
    # what the recvs left behind
    while True:
        try:
            if not sock_b.recv(65536, socket.MSG_DONTWAIT):
                break
        except BlockingIOError:
            break
    return counts


@pytest.mark.no_leakcheck
def test_no_leaks_over_rounds_of_mixed_operations(tmp_file, tmp_path):
    ring = IoUring(64)
    path = str(tmp_file)
    fd = os.open(path, os.O_RDONLY)
    wfd = os.open(tmp_path / "w.bin", os.O_WRONLY | os.O_CREAT, 0o600)
    sock_a, sock_b = socket.socketpair()
    bad = closed_fd()
    pending_close = []

    def snapshot():
        gc.collect()
        # CPython's type-attribute cache keys entries by the name object's
        # address and keeps the name alive: attribute lookups by freshly
        # built strings (statx's result does a few) park up to 4096 of
        # them there.  Bounded, not a leak; empty the cache so that the
        # count measures what the module holds.
        sys._clear_type_cache()
        return sys.getallocatedblocks(), len(gc.get_objects()), open_fds()

    try:
        t0 = time.monotonic()
        _mixed_round(ring, 2000, path, fd, wfd, sock_a, sock_b, bad, pending_close)  # warm-up
        base = snapshot()
        history = []
        for _ in range(4):
            counts = _mixed_round(ring, 2000, path, fd, wfd, sock_a, sock_b, bad, pending_close)
            assert counts[0] > 0 and counts[1] > 0
            history.append(snapshot())
        elapsed = time.monotonic() - t0
        # the last open()ed files are closed by the next round's first batch
        while pending_close:
            os.close(pending_close.pop())
    finally:
        ring.queue_exit()
        os.close(fd)
        os.close(wfd)
        sock_a.close()
        sock_b.close()
    for blocks, objects, fds in history:
        assert blocks - base[0] < 200, "allocated blocks grew: %r -> %r" % (base, history)
        assert abs(objects - base[1]) < 50, "gc-tracked objects grew: %r -> %r" % (base, history)
        assert fds == base[2], "file descriptors leaked: %r -> %r" % (base, history)
    assert elapsed < 30

"""Legacy provided buffers (provide_buffers / remove_buffers) under hostile use.

Issue 18, items 11 and 12, against the real kernel:

- The kernel keeps a group's provided buffers in one list, hands them out
  oldest first and accepts the same buffer id twice: a completion's bytes
  must come from the buffer the kernel really wrote, the oldest of its id.
- A buffer's memory is pinned only while the kernel may write into it: a
  failed prep releases its pin at once (the bytearray is resizable again),
  a provided object is released once every buffer cut from it was used by
  a reaped completion (a failed one too) or taken back by remove_buffers,
  and nothing is released while the kernel still holds one of its buffers.

Pins are counted with sys.getrefcount() and by resizing a bytearray (an
exported one raises BufferError); the loops that leaked run in a child
interpreter that reports its RSS growth from /proc/self/statm.
"""

import errno
import os
import sys

import pytest

from py_io_uring import (
    IORING_CQE_BUFFER_SHIFT,
    IORING_CQE_F_BUFFER,
    IOSQE_BUFFER_SELECT,
    IoUring,
)
from uring_helpers import need


def resizable(ba):
    """True when nothing holds a buffer export of the bytearray."""
    try:
        ba.append(0)
    except BufferError:
        return False
    ba.pop()
    return True


def provide(ring, buf, nr, bgid, bid=0):
    ring.prep_provide_buffers(buf, nr, bgid, bid, user_data=("provide", bgid))
    ring.submit()
    [(ud, res, _)] = ring.reap(1, 1)
    assert ud == ("provide", bgid)
    return res


def recv(ring, sock, bgid, n=64):
    """One receive into a buffer of group bgid: (data or res, bid)."""
    ring.prep_recv(sock, n, sqe_flags=IOSQE_BUFFER_SELECT, buf_group=bgid, user_data="recv")
    ring.submit()
    [(ud, res, flags)] = ring.reap(1, 1)
    assert ud == "recv"
    bid = flags >> IORING_CQE_BUFFER_SHIFT if flags & IORING_CQE_F_BUFFER else None
    return res, bid


@pytest.fixture
def prov_ring():
    r = IoUring()
    r.queue_init(64)
    need(r, "provide_buffers", "remove_buffers")
    try:
        yield r
    finally:
        r.queue_exit()


# --------------------------------------------------------------------------
# item 11: the bytes come from the buffer the kernel wrote


def test_same_bids_provided_twice_each_recv_gets_its_own_bytes(prov_ring, unix_pair):
    ring = prov_ring
    a, b = unix_pair
    buf_a = bytearray(b"A" * 24)
    buf_b = bytearray(b"B" * 24)
    assert provide(ring, buf_a, 4, 5) == 0
    assert provide(ring, buf_b, 4, 5) == 0      # the same ids 0..3 again
    got = []
    for i in range(8):
        msg = b"hello%d" % i
        a.sendall(msg)
        data, bid = recv(ring, b, 5)
        assert data == msg, (i, data)
        got.append(bid)
    assert got == [0, 1, 2, 3, 0, 1, 2, 3]
    # where the kernel wrote: the older group of buffers first
    assert bytes(buf_a) == b"hello0hello1hello2hello3"
    assert bytes(buf_b) == b"hello4hello5hello6hello7"
    # every buffer was used: both objects are let go of
    assert resizable(buf_a) and resizable(buf_b)


def test_same_bids_provided_twice_in_one_submit(prov_ring, unix_pair):
    # both provides in one batch, then the receives out of order of the ids
    ring = prov_ring
    a, b = unix_pair
    buf_a = bytearray(b"a" * 16)
    buf_b = bytearray(b"b" * 16)
    ring.prep_provide_buffers(buf_a, 2, 9, 40, user_data="A")
    ring.prep_provide_buffers(buf_b, 2, 9, 40, user_data="B")
    ring.submit()
    assert sorted(ring.reap(2, 2)) == [("A", 0, 0), ("B", 0, 0)]
    msgs = [b"first!!!", b"second!!", b"third!!!", b"fourth!!"]
    for msg in msgs:
        a.sendall(msg)
        data, bid = recv(ring, b, 9)
        assert data == msg
    assert bytes(buf_a) + bytes(buf_b) == b"".join(msgs)


def test_sqe_form_getresult_is_the_bytes_the_kernel_wrote(prov_ring, unix_pair):
    ring = prov_ring
    a, b = unix_pair
    first, second = bytearray(8), bytearray(b"\xff" * 8)
    assert provide(ring, first, 1, 3, 7) == 0
    assert provide(ring, second, 1, 3, 7) == 0
    for msg in (b"one", b"two"):
        a.sendall(msg)
        sqe = ring.get_sqe()
        sqe.prep_recv(b, 8)
        sqe.set_flags(IOSQE_BUFFER_SELECT)
        sqe.set_buf_group(3)
        ring.submit()
        cqe = ring.wait_cqe()
        ring.cqe_seen(cqe)
        assert cqe.flags() >> IORING_CQE_BUFFER_SHIFT == 7
        assert cqe.getresult() == msg
    assert first[:3] == b"one" and second[:3] == b"two"


# --------------------------------------------------------------------------
# item 12: pins are released when the kernel is done, not at teardown


def test_failed_prep_releases_the_pin_at_once(prov_ring):
    ring = prov_ring
    ba = bytearray(64)
    base = sys.getrefcount(ba)
    with pytest.raises(TypeError):
        ring.prep_provide_buffers(ba, "x", 1)
    assert sys.getrefcount(ba) == base
    assert resizable(ba)
    sqe = ring.get_sqe()
    with pytest.raises(TypeError):
        sqe.prep_provide_buffers(ba, 1, "y")
    assert sys.getrefcount(ba) == base and resizable(ba)
    # a bgid the SQE cannot carry is refused, not truncated to another group
    with pytest.raises(ValueError, match="bgid"):
        ring.prep_provide_buffers(ba, 1, 65536)
    with pytest.raises(ValueError, match="bgid"):
        sqe.prep_remove_buffers(1, -1)
    assert sys.getrefcount(ba) == base and resizable(ba)
    ring.submit()
    ring.reap(4, 1)


def test_second_prep_of_the_same_sqe_releases_the_first_pin(prov_ring):
    ring = prov_ring
    ba = bytearray(64)
    base = sys.getrefcount(ba)
    sqe = ring.get_sqe()
    sqe.prep_provide_buffers(ba, 2, 4)
    assert not resizable(ba)
    sqe.prep_nop()              # replaces it before the kernel saw it
    assert sys.getrefcount(ba) == base and resizable(ba)
    ring.submit()
    assert ring.reap(1, 1)[0][1] == 0


def test_prep_many_undo_releases_and_forgets_the_provide(prov_ring, unix_pair):
    # entry 0 is prepared, entry 1 fails: both are given back unsubmitted
    ring = prov_ring
    a, b = unix_pair
    ghost, real = bytearray(b"g" * 8), bytearray(b"r" * 8)
    with pytest.raises(TypeError):
        ring.prep_many("provide_buffers", [(ghost, 1, 5, 0), (ghost, "x", 5, 0)])
    assert ring.sq_ready() == 0
    assert resizable(ghost)
    # the kernel never had the first: id 0 of group 5 is the next provide's
    assert provide(ring, real, 1, 5, 0) == 0
    a.sendall(b"hi")
    assert recv(ring, b, 5) == (b"hi", 0)
    assert bytes(real[:2]) == b"hi" and bytes(ghost) == b"g" * 8


def test_provide_the_kernel_refuses_releases_the_pin(prov_ring):
    ring = prov_ring
    ba = bytearray(64)
    base = sys.getrefcount(ba)
    assert provide(ring, ba, 0, 6) == -errno.E2BIG     # no buffers
    assert sys.getrefcount(ba) == base and resizable(ba)


def test_pin_lasts_while_the_kernel_holds_a_buffer(prov_ring, unix_pair):
    ring = prov_ring
    a, b = unix_pair
    ba = bytearray(2 * 32)
    base = sys.getrefcount(ba)
    assert provide(ring, ba, 2, 8) == 0
    assert not resizable(ba)                       # the kernel has both
    a.sendall(b"one")
    assert recv(ring, b, 8)[0] == b"one"
    assert not resizable(ba)                       # and still has one
    assert sys.getrefcount(ba) > base
    a.sendall(b"two")
    assert recv(ring, b, 8)[0] == b"two"
    assert sys.getrefcount(ba) == base and resizable(ba)
    a.sendall(b"x")
    assert recv(ring, b, 8) == (-errno.ENOBUFS, None)


def test_recv_in_flight_keeps_the_pin(prov_ring, unix_pair):
    # a receive waiting for data may pick the buffer at any time
    ring = prov_ring
    a, b = unix_pair
    ba = bytearray(16)
    assert provide(ring, ba, 1, 2) == 0
    ring.prep_recv(b, 16, sqe_flags=IOSQE_BUFFER_SELECT, buf_group=2, user_data="r")
    ring.submit()
    assert ring.reap(1) == []
    assert not resizable(ba)
    a.sendall(b"late")
    assert ring.reap(1, 1)[0][:2] == ("r", b"late")
    assert bytes(ba[:4]) == b"late" and resizable(ba)


def test_failed_read_with_a_provided_buffer_releases_it(prov_ring):
    # the kernel uses the buffer up even when the read fails (EISDIR)
    ring = prov_ring
    ba = bytearray(16)
    assert provide(ring, ba, 1, 11, 3) == 0
    d = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        ring.prep_read(d, 16, 0, sqe_flags=IOSQE_BUFFER_SELECT, buf_group=11, user_data="d")
        ring.submit()
        [(ud, res, flags)] = ring.reap(1, 1)
    finally:
        os.close(d)
    assert (ud, res) == ("d", -errno.EISDIR)
    assert flags & IORING_CQE_F_BUFFER
    assert resizable(ba)


def test_failed_reads_give_buffer_ring_buffers_back(prov_ring, unix_pair):
    ring = prov_ring
    a, b = unix_pair
    ring.setup_buf_ring(12, 2, 32)
    d = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(4):   # more failures than buffers
            ring.prep_read(d, 0, 0, sqe_flags=IOSQE_BUFFER_SELECT, buf_group=12, user_data="d")
            ring.submit()
            [(ud, res, flags)] = ring.reap(1, 1)
            assert res == -errno.EISDIR
    finally:
        os.close(d)
    for msg in (b"still", b"there"):
        a.sendall(msg)
        assert recv(ring, b, 12)[0] == msg
    ring.free_buf_ring(12)


def test_remove_buffers_releases_oldest_first(prov_ring, unix_pair):
    ring = prov_ring
    a, b = unix_pair
    old, new = bytearray(b"o" * 32), bytearray(b"n" * 32)
    assert provide(ring, old, 2, 14) == 0
    assert provide(ring, new, 2, 14) == 0
    ring.prep_remove_buffers(2, 14, user_data="rm")
    ring.submit()
    assert ring.reap(1, 1) == [("rm", 2, 0)]
    assert resizable(old) and not resizable(new)
    a.sendall(b"kept")
    data, bid = recv(ring, b, 14)
    assert data == b"kept" and bytes(new[:4]) == b"kept"
    ring.prep_remove_buffers(10, 14, user_data="rm")
    ring.submit()
    assert ring.reap(1, 1) == [("rm", 1, 0)]
    assert resizable(new)


def test_queue_exit_releases_what_the_kernel_still_held():
    r = IoUring()
    r.queue_init(8)
    need(r, "provide_buffers")
    ba = bytearray(64)
    base = sys.getrefcount(ba)
    assert provide(r, ba, 4, 1) == 0
    assert not resizable(ba)
    r.queue_exit()
    assert sys.getrefcount(ba) == base and resizable(ba)


def test_reprovide_cycle_holds_one_pin(prov_ring, unix_pair):
    # the documented cycle: provide a buffer, a receive uses it, provide again
    ring = prov_ring
    a, b = unix_pair
    ba = bytearray(64)
    base = sys.getrefcount(ba)
    for i in range(200):
        assert provide(ring, ba, 1, 15) == 0
        a.sendall(b"m%d" % i)
        assert recv(ring, b, 15)[0] == b"m%d" % i
        assert sys.getrefcount(ba) == base
    assert resizable(ba)


LOOP_FAILED_PREP = """
import os
from py_io_uring import IoUring
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
r = IoUring(); r.queue_init(64)
for i in range(20000):      # warm up
    try: r.prep_provide_buffers(bytearray(64), "x", 1)
    except TypeError: pass
before = rss()
for i in range(200000):
    try: r.prep_provide_buffers(bytearray(64), "x", 1)
    except TypeError: pass
print(rss() - before)
r.queue_exit()
"""

LOOP_REPROVIDE = """
import os, socket
from py_io_uring import IoUring, IOSQE_BUFFER_SELECT
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
r = IoUring(); r.queue_init(64)
a, b = socket.socketpair()
def cycle():
    r.prep_provide_buffers(bytearray(64), 1, 3)
    a.send(b"x")
    r.prep_recv(b, 64, sqe_flags=IOSQE_BUFFER_SELECT, buf_group=3)
    got = r.reap(2, 2, True)
    assert got[1][1] == b"x", got
for i in range(5000):       # warm up
    cycle()
before = rss()
for i in range(50000):
    cycle()
print(rss() - before)
r.queue_exit()
"""


@pytest.mark.no_leakcheck
@pytest.mark.parametrize("code", [LOOP_FAILED_PREP, LOOP_REPROVIDE], ids=["failed-prep", "reprovide"])
def test_rss_stays_flat(run_py, code):
    # leaked: 50 MB for 200k failed preps, 5-13 MB for 50k cycles
    env = None
    if os.environ.get("PY_IO_URING_ASAN"):
        # AddressSanitizer's quarantine holds freed memory back by design
        env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
               ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"}
    p = run_py(code, timeout=300, env_extra=env)
    assert p.returncode == 0, p.stderr
    growth = int(p.stdout.split()[-1])
    assert growth < 3 * 1024 * 1024, growth

"""The flags send, recv and accept read from the SQE's ioprio field:
IORING_RECVSEND_POLL_FIRST, IORING_ACCEPT_DONTWAIT, IORING_ACCEPT_POLL_FIRST;
every other bit is refused before it reaches the kernel."""

import errno
import socket

import pytest

import py_io_uring
from py_io_uring import (IORING_ACCEPT_DONTWAIT, IORING_ACCEPT_POLL_FIRST,
                         IORING_RECVSEND_POLL_FIRST, IoUring)


def test_recv_and_send_poll_first_move_the_data(ring, tcp_pair):
    a, b = tcp_pair
    ring.prep_recv(a, 16, 0, IORING_RECVSEND_POLL_FIRST, user_data="recv")
    ring.submit()
    assert ring.reap(4) == []                     # polled: waits for data
    ring.prep_send(b, b"first", 0, IORING_RECVSEND_POLL_FIRST, user_data="send")
    got = dict((d, v) for d, v, _ in ring.reap(4, 2, True))
    assert got == {"send": 5, "recv": b"first"}


def test_sendmsg_recvmsg_poll_first(ring, tcp_pair):
    a, b = tcp_pair
    sqe = ring.get_sqe()
    sqe.prep_recvmsg(a, 16, 0, 0, IORING_RECVSEND_POLL_FIRST)
    sqe.set_data("r")
    ring.prep_sendmsg(b, [b"ab", b"cd"], (), 0, None, IORING_RECVSEND_POLL_FIRST, user_data="s")
    ring.submit_and_wait(2)
    cqes = ring.wait_cqe_nr(2)
    byd = {c.get_data(): c for c in cqes}
    assert byd["s"].res() == 4
    assert byd["r"].getresult()[0] == b"abcd"
    for c in cqes:
        ring.cqe_seen(c)


def test_accept_dontwait_fails_at_once_without_a_connection(ring, listener):
    ring.prep_accept(listener, 0, IORING_ACCEPT_DONTWAIT, user_data="a")
    assert ring.reap(4, 1, True) == [("a", -errno.EAGAIN, 0)]


def test_accept_poll_first_accepts(ring, listener):
    ring.prep_accept(listener, 0, IORING_ACCEPT_POLL_FIRST, user_data="a")
    ring.submit()
    c = socket.create_connection(listener.getsockname())
    try:
        [(d, fd, _)] = ring.reap(4, 1)
        assert d == "a" and fd >= 0
        socket.socket(fileno=fd).close()
    finally:
        c.close()


@pytest.mark.parametrize("op, args, bad", [
    ("recv", (0, 8, 0), py_io_uring.IORING_RECV_MULTISHOT),
    ("recv", (0, 8, 0), py_io_uring.IORING_RECVSEND_BUNDLE),   # reaping takes one buffer
    ("send", (0, b"x", 0), py_io_uring.IORING_RECVSEND_FIXED_BUF),
    ("accept", (0, 0), py_io_uring.IORING_ACCEPT_MULTISHOT),
    ("accept", (0, 0), 1 << 31),
])
def test_other_bits_are_refused(ring, op, args, bad):
    with pytest.raises(ValueError, match=r"prep_%s\(\) argument 'ioprio' may hold only .*not 0x" % op):
        getattr(ring, "prep_" + op)(*args, bad)
    assert ring.sq_ready() == 0                   # nothing queued
    with pytest.raises(ValueError, match="ioprio"):
        getattr(ring.get_sqe(), "prep_" + op)(*args, bad)


def test_msg_ring_refuses_the_fd_passing_command_as_flags(ring):
    with IoUring(4) as target:
        # IORING_MSG_SEND_FD is msg_ring's command for passing a file, and
        # its value is IORING_MSG_RING_CQE_SKIP's: as flags it meant a skip
        for bad in (py_io_uring.IORING_MSG_SEND_FD, py_io_uring.IORING_MSG_RING_CQE_SKIP):
            with pytest.raises(ValueError, match=r"prep_msg_ring\(\) argument 'flags'"):
                ring.prep_msg_ring(target, 1, 2, bad)
        ring.prep_msg_ring(target, 7, 9, py_io_uring.IORING_MSG_RING_FLAGS_PASS, user_data="m")
        assert ring.reap(2, 1, True) == [("m", 0, 0)]
        assert target.reap(2, 1) == [(9, 7, 0)]

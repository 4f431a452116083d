"""The prep helpers liburing 2.7-2.15 added, against the real kernel:
prep_send_set_addr, sendmsg_zc_fixed, pipe_direct, the socket and block
uring_cmds (getsockname, discard), and what they pin.  An op or feature the
running kernel lacks is skipped with the reason."""

import errno
import os
import socket

import pytest

from op_helpers import finish_zc
from uring_helpers import WAIT, need, prep, wait_one


# --------------------------------------------------------------------------
# prep_send_set_addr


def test_send_set_addr_udp_arrives(ring, udp_pair):
    need(ring, "send")
    a, b = udp_pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # unconnected
        sqe = prep(ring, "send", s, b"only by set_addr")
        sqe.prep_send_set_addr(b.getsockname())
        assert ring.submit() == 1
        cqe = wait_one(ring)
        assert cqe.res() == 16
        b.settimeout(WAIT)
        data, addr = b.recvfrom(100)
        assert data == b"only by set_addr"
        assert addr[1] == s.getsockname()[1] != 0


def test_send_set_addr_without_it_is_edestaddrreq(ring, udp_pair):
    # the check above cannot pass by accident: the same send without the
    # address has nowhere to go
    need(ring, "send")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        prep(ring, "send", s, b"x")
        ring.submit()
        assert wait_one(ring).res() == -errno.EDESTADDRREQ


def test_send_set_addr_address_is_kept_until_completion(ring, udp_pair):
    # the address object may go at once: the record holds its own copy
    need(ring, "send")
    a, b = udp_pair
    host, port = b.getsockname()
    sqe = prep(ring, "send", a, bytearray(b"kept"))
    sqe.prep_send_set_addr((str(host), int(port)))
    del sqe
    ring.submit()
    assert wait_one(ring).res() == 4
    b.settimeout(WAIT)
    assert b.recvfrom(10)[0] == b"kept"


def test_send_zc_set_addr_udp(ring, udp_pair):
    need(ring, "send_zc")
    a, b = udp_pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        sqe = prep(ring, "send_zc", s, b"zero copy to")
        sqe.prep_send_set_addr(b.getsockname())
        ring.submit()
        finish_zc(ring, 12)
        b.settimeout(WAIT)
        assert b.recvfrom(100)[0] == b"zero copy to"


def test_send_set_addr_refuses_other_ops(ring, udp_pair, rfd):
    a, b = udp_pair
    sqe = ring.get_sqe()
    with pytest.raises(ValueError, match=r"prep_send_set_addr\(\).*nothing, not a send"):
        sqe.prep_send_set_addr(b.getsockname())
    sqe.prep_read(rfd, 10)
    with pytest.raises(ValueError, match=r"prep_send_set_addr\(\).*read, not a send"):
        sqe.prep_send_set_addr(b.getsockname())
    sqe.prep_nop()
    ring.submit()
    wait_one(ring)
    with pytest.raises(ValueError, match="already submitted"):
        sqe.prep_send_set_addr(b.getsockname())


def test_send_set_addr_bad_address(ring, udp_pair):
    a, _ = udp_pair
    sqe = prep(ring, "send", a, b"x")
    with pytest.raises(TypeError):
        sqe.prep_send_set_addr("not an address")
    with pytest.raises(OverflowError):
        sqe.prep_send_set_addr(("127.0.0.1", 70000))
    # the entry is still the plain send, which now has no address
    ring.submit()
    assert wait_one(ring).res() == -errno.EDESTADDRREQ

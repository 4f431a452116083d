"""Zero-copy receive against the real kernel: IoUring.register_ifq()
(IORING_REGISTER_ZCRX_IFQ, Linux 6.15) and prep_recv_zc (IORING_OP_RECV_ZC).

It needs a NIC whose driver gives a receive queue to io_uring (header split,
flow steering, the queue management API: bnxt, mlx5, gve, fbnic), or a
kernel with ZCRX_REG_NODEV (6.19).  Where neither is there, the data path
test is skipped with what the kernel answered for each device it tried; the
refusals, the errors and what a refusal leaves behind (no mapping, no fd)
are tested for real."""

import errno
import mmap
import os
import socket
import threading
import time

import pytest

import py_io_uring
from py_io_uring import (
    IORING_CQE_F_MORE,
    IORING_SETUP_CQE32,
    IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_SINGLE_ISSUER,
    ZCRX_REG_NODEV,
    IoUring,
)

from uring_helpers import WAIT, assert_fails

FLAGS = IORING_SETUP_CQE32 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
PAGE = mmap.PAGESIZE
NEEDS = r"IORING_SETUP_CQE32 \| IORING_SETUP_SINGLE_ISSUER \| IORING_SETUP_DEFER_TASKRUN"


def vm_size():
    """The process's mapped bytes (VmSize): an area left mapped shows as its
    size, whatever the allocator does meanwhile (ASan's moves mappings)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


AREA = 4 << 20          # register_ifq()'s default area_size


def fds():
    return len(os.listdir("/proc/self/fd"))


def interfaces():
    return sorted(name for _, name in socket.if_nameindex())


@pytest.fixture
def zring():
    with IoUring(8, FLAGS) as r:
        yield r


def test_constants():
    assert py_io_uring.IORING_OP_RECV_ZC == 58
    assert py_io_uring.IORING_REGISTER_ZCRX_IFQ == 32
    assert ZCRX_REG_NODEV == 2
    assert py_io_uring.IORING_ZCRX_AREA_SHIFT == 48


@pytest.mark.parametrize("flags", [0, IORING_SETUP_CQE32,
                                   IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN])
def test_refused_without_cqe32_and_defer_taskrun(flags):
    """The kernel's conditions (-EINVAL otherwise), said before it is asked"""
    with IoUring(8, flags) as r:
        before = vm_size()
        for _ in range(8):
            with pytest.raises(ValueError, match=r"^register_ifq\(\): zero-copy receive "
                                                 r"needs a ring set up with " + NEEDS):
                r.register_ifq("lo")
        assert vm_size() - before < AREA


def test_refused_on_a_closed_ring():
    r = IoUring(8, FLAGS)
    r.queue_exit()
    with pytest.raises(ValueError, match="not initialised"):
        r.register_ifq("lo")
    with pytest.raises(ValueError, match="not initialised"):
        IoUring().register_ifq("lo")


def test_bad_interface_name(zring):
    with pytest.raises(OSError, match=r"^\[Errno 19\] register_ifq\(\): no interface "
                                      r"named 'no-such-if0'") as e:
        zring.register_ifq("no-such-if0")
    assert e.value.errno == errno.ENODEV


def test_bad_interface_index(zring):
    """An index nothing has: the kernel's ENODEV"""
    bad = max(i for i, _ in socket.if_nameindex()) + 1000
    with pytest.raises(OSError) as e:
        zring.register_ifq(bad)
    assert e.value.errno == errno.ENODEV


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"area_size": 0}, ValueError, "area_size must be whole pages"),
    ({"area_size": PAGE + 1}, ValueError, "area_size must be whole pages"),
    ({"area_size": 1 << 41}, ValueError, "at most 1 TiB"),
    ({"area_size": -1}, OverflowError, r"register_ifq\(\) argument 'area_size' is out of range"),
    ({"rq_entries": 0}, ValueError, "rq_entries must be 1 to 32768"),
    ({"rq_entries": 32769}, ValueError, "rq_entries must be 1 to 32768"),
    ({"flags": 1}, ValueError, "flags may only be ZCRX_REG_NODEV"),
    ({"rx_queue": -1}, OverflowError, r"register_ifq\(\) argument 'rx_queue' is out of range"),
    ({"rx_queue": "0"}, TypeError, r"register_ifq\(\) argument 'rx_queue' must be int, not str"),
    ({"bogus": 1}, TypeError, r"register_ifq\(\) got an unexpected keyword argument 'bogus'"),
])
def test_bad_arguments(zring, kwargs, exc, match):
    before = vm_size()
    for _ in range(8):
        with pytest.raises(exc, match=match):
            zring.register_ifq("lo", **kwargs)
    assert vm_size() - before < AREA


def test_size_arguments_are_keyword_only(zring):
    with pytest.raises(TypeError, match=r"register_ifq\(\) takes at most 2 positional"):
        zring.register_ifq("lo", 0, 64 * PAGE)


@pytest.mark.parametrize("interface", [b"lo", 1.0, None])
def test_interface_type(zring, interface):
    with pytest.raises(TypeError, match=r"register_ifq\(\): interface must be a name "
                                        r"\(str\) or an index \(int\)"):
        zring.register_ifq(interface)


def test_interface_index_out_of_range(zring):
    with pytest.raises(OverflowError, match=r"register_ifq\(\): interface index"):
        zring.register_ifq(1 << 32)
    with pytest.raises(OverflowError, match=r"register_ifq\(\): interface index"):
        zring.register_ifq(-1)


def try_register(ring, **kwargs):
    """register_ifq() on what this machine has: ZCRX_REG_NODEV (Linux 6.19)
    first, then queue 0 of each interface.  (id, None), or (None, what the
    kernel answered each)."""
    answers = []
    for name, flags in [(0, ZCRX_REG_NODEV)] + [(n, 0) for n in interfaces()]:
        try:
            return ring.register_ifq(name, 0, flags=flags, **kwargs), None
        except OSError as e:
            answers.append("%s: %s" % ("ZCRX_REG_NODEV" if flags else name,
                                       errno.errorcode.get(e.errno, e.errno)))
    return None, "; ".join(answers)


def test_refusal_leaves_no_mapping_and_no_fd(zring):
    """Whatever the kernel answers, a refused registration unmaps the area
    and the refill ring at once: nothing grows over many tries."""
    zid, why = try_register(zring)
    if zid is not None:
        pytest.skip("a device here accepts register_ifq: the refusal path "
                    "cannot be driven")
    before_vm, before_fds = vm_size(), fds()
    for _ in range(20):
        assert try_register(zring) == (None, why)
    # 20 tries on each of len(interfaces()) + 1 devices: a leak would be
    # at least 20 areas of 4 MiB
    assert vm_size() - before_vm < AREA
    assert fds() == before_fds
    # the ring is still usable
    zring.get_sqe().prep_nop()
    zring.submit()
    assert zring.wait_cqe(timeout=WAIT).res() == 0


def test_devices_here_are_refused_with_the_reason(zring):
    """The errors look like the stdlib's, name the method and the device"""
    for name in interfaces():
        try:
            zring.register_ifq(name)
        except OSError as e:
            assert str(e).startswith("[Errno %d] register_ifq(): " % e.errno)
            if e.errno == errno.EOPNOTSUPP:
                assert "%s rx queue 0" % name in str(e)
                assert "header split" in str(e)
            elif e.errno == errno.EPERM:
                assert isinstance(e, PermissionError)
        else:
            pytest.skip("%s accepts register_ifq" % name)


def test_data_path(tcp_pair):
    """Receive 4 areas' worth of data through a small area: every chunk is
    copied out at reap time and its buffer handed back (else the area runs
    out: -ENOSPC); the area stays mapped while the ring lives and goes
    with it."""
    client, server = tcp_pair
    area_size = 4 << 20
    ring = IoUring(64, FLAGS)
    before = vm_size()
    zid, why = try_register(ring, area_size=area_size)
    if zid is None:
        ring.queue_exit()
        pytest.skip("no device here can do zero-copy receive (Linux %s): %s"
                    % (os.uname().release, why))
    try:
        assert vm_size() - before >= area_size
        ring.get_sqe().prep_recv_zc(server, ifq=zid)
        assert ring.submit() == 1
        payload = os.urandom(4 * area_size)

        def send():   # (the ring receives only while this thread reaps)
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        got, end = [], None
        deadline = time.monotonic() + 10 * WAIT
        while end is None and time.monotonic() < deadline:
            cqe = ring.wait_cqe(timeout=WAIT)
            if cqe is None:
                continue
            ring.cqe_seen(cqe)
            if cqe.flags() & IORING_CQE_F_MORE:
                data = cqe.getresult()
                assert isinstance(data, bytes) and len(data) == cqe.res() > 0
                got.append(data)
            else:
                end = cqe
        sender.join(WAIT)
        assert end is not None, "no final completion"
        assert end.res() == 0, end.res()   # the peer closed: the op ends
        assert b"".join(got) == payload
        assert end.getresult() == 0
    finally:
        mapped = vm_size()
        ring.queue_exit()
    # unmapped with the ring (`got` still holds every chunk: the drop is ours)
    assert mapped - vm_size() >= area_size
    assert len(got) > 0


def test_data_path_wrong_ifq(tcp_pair):
    """An id the ring does not have: the kernel's -EINVAL, no bytes"""
    client, server = tcp_pair
    with IoUring(8, FLAGS) as ring:
        zid, why = try_register(ring)
        if zid is None:
            pytest.skip("no device here can do zero-copy receive: %s" % why)
        ring.get_sqe().prep_recv_zc(server, ifq=zid + 1)
        ring.submit()
        cqe = ring.wait_cqe(timeout=WAIT)
        ring.cqe_seen(cqe)
        assert_fails(cqe, errno.EINVAL)


def test_reaches_the_ring_by_its_index_after_close_ring_fd():
    """After close_ring_fd() the registration goes by the registered index:
    the kernel answers for the device (not EBADF for the fd)"""
    with IoUring(8, FLAGS) as r:
        r.register_ring_fd()
        try:
            r.close_ring_fd()
        except OSError as e:
            pytest.skip(str(e))
        zid, why = try_register(r)
        if zid is not None:
            pytest.skip("a device here accepts register_ifq")
        assert "EBADF" not in why and "lo: " in why, why
        try:
            r.register_ifq("lo")
        except OSError as e:
            assert e.errno in (errno.EOPNOTSUPP, errno.EPERM), e

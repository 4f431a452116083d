"""The prep helpers liburing 2.7-2.15 added, against the real kernel:
prep_send_set_addr, sendmsg_zc_fixed, pipe_direct, the socket and block
uring_cmds (getsockname, discard), and what they pin.  An op or feature the
running kernel lacks is skipped with the reason."""

import errno
import os
import shutil
import socket
import subprocess
import time

import pytest

import py_io_uring
from py_io_uring import IORING_CQE_F_MORE, IORING_CQE_F_NOTIF, IOSQE_FIXED_FILE

from op_helpers import cancel_multishot, finish_zc, recv_all
from uring_helpers import WAIT, assert_fails, need, prep, run_op, wait_n, wait_one


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


def test_send_set_addr_resolves_a_host_name(ring, udp_pair):
    # getaddrinfo() runs with the GIL released; the entry is checked again after
    need(ring, "send")
    a, b = udp_pair
    sqe = prep(ring, "send", a, b"by name")
    sqe.prep_send_set_addr(("localhost", b.getsockname()[1]))
    ring.submit()
    assert wait_one(ring).res() == 7
    b.settimeout(WAIT)
    assert b.recvfrom(10)[0] == b"by name"


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


# --------------------------------------------------------------------------
# sendmsg_zc_fixed


def test_sendmsg_zc_fixed_from_registered_buffer(ring, tcp_pair):
    need(ring, "sendmsg_zc_fixed")
    client, server = tcp_pair
    reg = bytearray(b"....first|second|third....")
    ring.register_buffers([bytearray(16), reg])
    mv = memoryview(reg)
    try:
        prep(ring, "sendmsg_zc_fixed", client, [mv[4:10], mv[10:17], mv[17:22]], buf_index=1)
        ring.submit()
        finish_zc(ring, 18)
        assert recv_all(server, 18) == b"first|second|third"
    finally:
        mv.release()
        ring.unregister_buffers()


def test_sendmsg_zc_fixed_outside_registered_buffer_is_efault(ring, tcp_pair):
    need(ring, "sendmsg_zc_fixed")
    client, _ = tcp_pair
    ring.register_buffers([bytearray(64)])
    try:
        prep(ring, "sendmsg_zc_fixed", client, [bytearray(b"not registered")], buf_index=0)
        ring.submit()
        first = wait_one(ring)
        assert_fails(first, errno.EFAULT)
        if first.flags() & IORING_CQE_F_MORE:
            assert wait_one(ring).flags() & IORING_CQE_F_NOTIF
    finally:
        ring.unregister_buffers()


def test_sendmsg_zc_fixed_sets_the_fixed_buf_flag(ring, tcp_pair):
    # the same iovec without a registered buffer is a plain sendmsg_zc, so
    # the EFAULT above comes from IORING_RECVSEND_FIXED_BUF, not the socket
    need(ring, "sendmsg_zc")
    client, server = tcp_pair
    prep(ring, "sendmsg_zc", client, [bytearray(b"not registered")])
    ring.submit()
    finish_zc(ring, 14)
    assert recv_all(server, 14) == b"not registered"


# --------------------------------------------------------------------------
# pipe_direct


def test_pipe_direct_into_chosen_slots(ring):
    need(ring, "pipe_direct", "write", "read")
    ring.register_files_sparse(8)
    _, cqe = run_op(ring, "pipe_direct", 0, 3)
    assert cqe.res() == 0
    assert cqe.getresult() == (3, 4)
    sqe = prep(ring, "write", 4, b"through slots")
    sqe.set_flags(IOSQE_FIXED_FILE)
    ring.submit()
    assert wait_one(ring).res() == 13
    sqe = prep(ring, "read", 3, 64)
    sqe.set_flags(IOSQE_FIXED_FILE)
    ring.submit()
    assert wait_one(ring).getresult() == b"through slots"
    ring.unregister_files()


def test_pipe_direct_allocates_slots(ring):
    need(ring, "pipe_direct")
    ring.register_files_sparse(4)
    run_op(ring, "pipe_direct")  # slots 0 and 1
    _, cqe = run_op(ring, "pipe_direct", os.O_NONBLOCK)
    assert cqe.getresult() == (2, 3)
    _, cqe = run_op(ring, "pipe_direct")  # the table is full
    assert_fails(cqe, errno.ENFILE)
    ring.unregister_files()


def test_pipe_direct_errors(ring):
    need(ring, "pipe_direct")
    _, cqe = run_op(ring, "pipe_direct", 0, 0)  # no registered file table
    assert_fails(cqe, errno.ENXIO)
    ring.register_files_sparse(4)
    _, cqe = run_op(ring, "pipe_direct", 0, 3)  # the write end would be slot 4
    assert_fails(cqe, errno.EINVAL)
    # Linux 6.18: O_CLOEXEC means nothing in a slot and is refused
    _, cqe = run_op(ring, "pipe_direct", os.O_CLOEXEC)
    assert_fails(cqe, errno.EINVAL)
    ring.unregister_files()


# --------------------------------------------------------------------------
# socket and block uring_cmds


def test_cmd_getsockname(ring, tcp_pair):
    need(ring, "cmd_getsockname")
    client, _ = tcp_pair
    _, cqe = run_op(ring, "cmd_getsockname", client)
    if cqe.res() == -errno.EOPNOTSUPP:
        pytest.skip("SOCKET_URING_OP_GETSOCKNAME: EOPNOTSUPP on this kernel (Linux 6.19+)")
    assert cqe.getresult() == client.getsockname()
    _, cqe = run_op(ring, "cmd_getsockname", client, 1)
    assert cqe.getresult() == client.getpeername()


def test_cmd_getsockname_peer_must_be_0_or_1(ring, tcp_pair):
    client, _ = tcp_pair
    sqe = ring.get_sqe()
    with pytest.raises(ValueError, match=r"prep_cmd_getsockname\(\): peer must be 0 or 1"):
        sqe.prep_cmd_getsockname(client, 2)


@pytest.fixture
def loop_device(tmp_path):
    """A loop device over a sparse file of 1 MiB whose bytes are all 0x5a:
    (device path, backing file path).  Skips without root or losetup."""
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("a loop device needs root and losetup")
    img = tmp_path / "disk.img"
    img.write_bytes(b"\x5a" * (1 << 20))
    p = subprocess.run(["losetup", "-f", "--show", str(img)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        pytest.skip("losetup failed: %s" % p.stderr.strip())
    dev = p.stdout.strip()
    try:
        yield dev, img
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_cmd_discard_zeroes_a_loop_device_range(ring, loop_device):
    need(ring, "cmd_discard")
    dev, img = loop_device
    fd = os.open(dev, os.O_RDWR)
    try:
        _, cqe = run_op(ring, "cmd_discard", fd, 4096, 8192)
        if cqe.res() == -errno.EOPNOTSUPP:
            pytest.skip("BLOCK_URING_CMD_DISCARD: EOPNOTSUPP on this kernel")
        assert cqe.res() == 0
        data = os.pread(fd, 16384, 0)
    finally:
        os.close(fd)
    assert data[:4096] == b"\x5a" * 4096
    assert data[4096:12288] == bytes(8192)
    assert data[12288:] == b"\x5a" * 4096
    with open(str(img), "rb") as f:  # the loop driver punched a hole
        back = f.read(16384)
    assert back == data


def test_cmd_discard_unaligned_is_einval(ring, loop_device):
    need(ring, "cmd_discard")
    dev, _ = loop_device
    fd = os.open(dev, os.O_RDWR)
    try:
        _, cqe = run_op(ring, "cmd_discard", fd, 100, 4096)
    finally:
        os.close(fd)
    assert_fails(cqe, errno.EINVAL)


def test_cmd_discard_on_a_regular_file_fails(ring, tmp_file):
    need(ring, "cmd_discard")
    fd = os.open(tmp_file, os.O_RDWR)
    try:
        _, cqe = run_op(ring, "cmd_discard", fd, 0, 4096)
    finally:
        os.close(fd)
    assert cqe.res() == -errno.EOPNOTSUPP


# --------------------------------------------------------------------------
# big entries: IORING_SETUP_SQE128 and IORING_SETUP_CQE32

SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
SCM_TSTAMP_SND = 0


@pytest.fixture
def big_ring():
    r = py_io_uring.IoUring(16, py_io_uring.IORING_SETUP_SQE128 | py_io_uring.IORING_SETUP_CQE32)
    try:
        yield r
    finally:
        r.queue_exit()


def test_big_cqe_is_none_on_a_plain_ring(ring):
    _, cqe = run_op(ring, "nop")
    assert cqe.big_cqe() is None
    assert cqe.buf_count() == 0


def test_big_cqe_of_a_nop_on_a_cqe32_ring_is_zero(big_ring):
    _, cqe = run_op(big_ring, "nop")
    assert cqe.res() == 0
    assert cqe.big_cqe() == (0, 0)


def test_cmd_tx_timestamp_on_loopback(big_ring, udp_pair):
    need(big_ring, "cmd_tx_timestamp")
    a, b = udp_pair
    a.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING,
                 SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
                 | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY)
    sqe = prep(big_ring, "cmd_tx_timestamp", a, tag="ts")
    big_ring.submit()
    before = time.time()
    for i in range(3):
        a.sendto(b"packet %d" % i, b.getsockname())
    after = time.time()
    for key in range(3):
        cqe = wait_one(big_ring)
        if cqe.res() == -errno.EOPNOTSUPP:
            pytest.skip("SOCKET_URING_OP_TX_TIMESTAMP: EOPNOTSUPP on this kernel")
        assert cqe.get_data() == "ts"
        assert cqe.flags() & IORING_CQE_F_MORE
        k, tstype, hw, sec, nsec = cqe.getresult()
        assert (k, tstype, hw) == (key, SCM_TSTAMP_SND, False)
        assert cqe.big_cqe() == (sec, nsec)   # the time is the entry's second half
        assert 0 <= nsec < 10**9
        assert before - 1 <= sec + nsec * 1e-9 <= after + 1
    cancel_multishot(big_ring, sqe)


def test_cmd_tx_timestamp_needs_cqe32(ring, udp_pair):
    need(ring, "cmd_tx_timestamp")
    a, _ = udp_pair
    _, cqe = run_op(ring, "cmd_tx_timestamp", a)
    assert_fails(cqe, errno.EINVAL)
    assert cqe.big_cqe() is None


def test_cmd_tx_timestamp_left_to_teardown(udp_pair):
    # in flight when the ring closes: the teardown cancels it
    r = py_io_uring.IoUring(8, py_io_uring.IORING_SETUP_CQE32)
    need(r, "cmd_tx_timestamp")
    prep(r, "cmd_tx_timestamp", udp_pair[0])
    r.submit()
    t = time.monotonic()
    r.queue_exit()
    assert time.monotonic() - t < 5


@pytest.mark.parametrize("flags", [0, "big"])
def test_uring_cmd_siocinq(ring, big_ring, tcp_pair, flags):
    need(ring, "uring_cmd")
    r = big_ring if flags == "big" else ring
    a, b = tcp_pair
    a.sendall(b"12345")
    for _ in range(100):   # until the bytes are in b's queue
        _, cqe = run_op(r, "uring_cmd", py_io_uring.SOCKET_URING_OP_SIOCINQ, b)
        if cqe.res() != 0:
            break
        time.sleep(0.01)
    assert cqe.res() == 5
    assert cqe.big_cqe() == (None if r is ring else (0, 0))
    _, cqe = run_op(r, "uring_cmd", py_io_uring.SOCKET_URING_OP_SIOCOUTQ, a)
    assert cqe.res() == 0


def test_uring_cmd_unknown_command(ring, tcp_pair, rfd):
    need(ring, "uring_cmd")
    _, cqe = run_op(ring, "uring_cmd", 0x7777, tcp_pair[0])
    assert_fails(cqe, errno.EOPNOTSUPP)
    _, cqe = run_op(ring, "uring_cmd", 0, rfd)   # a regular file has no uring_cmd
    assert_fails(cqe, errno.EOPNOTSUPP)


def test_get_sqe128(big_ring, ring):
    sqe = big_ring.get_sqe128()
    sqe.prep_nop()
    sqe.set_data("big")
    big_ring.submit()
    assert wait_one(big_ring).get_data() == "big"
    with pytest.raises(ValueError, match=r"get_sqe128\(\): .*IORING_SETUP_SQE128"):
        ring.get_sqe128()
    assert ring.sq_ready() == 0
    ring.queue_exit()
    with pytest.raises(ValueError):
        ring.get_sqe128()


@pytest.mark.parametrize("op, args", [("nop128", ()), ("uring_cmd128", (0, 0))])
def test_128_byte_ops(big_ring, ring, unix_pair, op, args):
    args = tuple(unix_pair[0] if i == 1 else a for i, a in enumerate(args))
    if op not in big_ring.probe():
        # Linux 6.18 has neither (they came with IORING_SETUP_SQE_MIXED)
        with pytest.raises(OSError, match=r"prep_%s\(\): this kernel does not support" % op) as e:
            getattr(big_ring.get_sqe128(), "prep_" + op)(*args)
        assert e.value.errno == errno.EOPNOTSUPP
        big_ring.submit()
        wait_one(big_ring)
        return
    with pytest.raises(ValueError, match=r"prep_%s\(\): this ring's entries are 64 bytes" % op):
        getattr(ring.get_sqe(), "prep_" + op)(*args)
    sqe = big_ring.get_sqe128()
    getattr(sqe, "prep_" + op)(*args)
    big_ring.submit()
    cqe = wait_one(big_ring)
    assert cqe.res() == 0 if op == "nop128" else cqe.res() >= 0


# --------------------------------------------------------------------------
# prep_recv_zc (zero-copy receive; tests/test_zcrx.py has register_ifq)


def test_recv_zc_without_an_ifq_the_kernel_refuses(tcp_pair):
    """A ring with no interface queue: the kernel answers -EINVAL (it finds
    no zcrx with that id); the ring goes on."""
    flags = (py_io_uring.IORING_SETUP_CQE32 | py_io_uring.IORING_SETUP_SINGLE_ISSUER |
             py_io_uring.IORING_SETUP_DEFER_TASKRUN)
    client, server = tcp_pair
    with py_io_uring.IoUring(8, flags) as ring:
        need(ring, "recv_zc")
        sqe, cqe = run_op(ring, "recv_zc", server, ifq=0)
        assert not cqe.flags() & IORING_CQE_F_MORE
        assert_fails(cqe, errno.EINVAL)
        assert run_op(ring, "nop")[1].res() == 0


def test_recv_zc_on_a_ring_without_cqe32(ring, tcp_pair):
    """No interface queue can be registered on such a ring: the kernel's
    -EINVAL, with every argument given by keyword"""
    need(ring, "recv_zc")
    sqe, cqe = run_op(ring, "recv_zc", fd=tcp_pair[1], len=100, ifq=0,
                      ioprio=py_io_uring.IORING_RECVSEND_POLL_FIRST)
    assert_fails(cqe, errno.EINVAL)

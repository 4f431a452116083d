"""Buffers and registration against the real kernel: the fixed-buffer ops
(read_fixed, write_fixed, readv_fixed, writev_fixed), provided buffers and
buffer rings with buffer selection (provide_buffers, remove_buffers,
IOSQE_BUFFER_SELECT, buf_group), and the registered file table
(IOSQE_FIXED_FILE, openat_direct, openat2_direct, close_direct,
files_update, fixed_fd_install).  An op the running kernel lacks is
skipped."""

import errno
import os
import socket

import pytest

import py_io_uring
from py_io_uring import (
    AT_FDCWD,
    IORING_CQE_BUFFER_SHIFT,
    IORING_CQE_F_BUFFER,
    IORING_CQE_F_MORE,
    IOSQE_BUFFER_SELECT,
    IOSQE_FIXED_FILE,
)

from op_helpers import install, op_fails, read_slot, reap_n, Token
from uring_helpers import TMP_CONTENT, assert_fails, need, prep, run_op, wait_one


# --------------------------------------------------------------------------
# read_fixed / write_fixed / readv_fixed / writev_fixed


def test_read_fixed_into_registered_buffer(ring, form, rfd):
    need(ring, "read_fixed")
    reg = bytearray(4096)
    mv = memoryview(reg)
    try:
        res = form.run(ring, "read_fixed", rfd, mv[100:300], 1000, 0,
                       setup=lambda ring_used: ring_used.register_buffers([reg]))
        assert res == (200, form.noflags)
        assert reg[100:300] == TMP_CONTENT[1000:1200]
        assert reg[:100] == bytes(100) and reg[300:] == bytes(4096 - 300)
    finally:
        mv.release()
        if form.name != "async":
            ring.unregister_buffers()


def test_write_fixed_from_registered_buffer(ring, wfd):
    need(ring, "write_fixed")
    reg = bytearray(TMP_CONTENT)
    ring.register_buffers([bytearray(16), reg])
    try:
        _, cqe = run_op(ring, "write_fixed", wfd, memoryview(reg)[256:512], 10, 1)
        assert cqe.getresult() == 256
        assert os.pread(wfd, 1000, 0) == b"\0" * 10 + TMP_CONTENT[256:512]
    finally:
        ring.unregister_buffers()


def test_write_fixed_outside_the_registered_buffer_is_efault(ring, wfd):
    need(ring, "write_fixed")
    ring.register_buffers([bytearray(4096)])
    try:
        op_fails(ring, "write_fixed", errno.EFAULT, wfd, bytearray(b"unregistered"), 0, 0)
    finally:
        ring.unregister_buffers()
    assert os.fstat(wfd).st_size == 0


def test_readv_fixed_into_registered_slices(ring, rfd):
    need(ring, "readv_fixed")
    reg = bytearray(1024)
    ring.register_buffers([reg])
    mv = memoryview(reg)
    try:
        _, cqe = run_op(ring, "readv_fixed", rfd, [mv[0:10], mv[500:520]], 50, 0)
        assert cqe.getresult() == 30
        assert reg[0:10] == TMP_CONTENT[50:60]
        assert reg[500:520] == TMP_CONTENT[60:80]
        assert reg[10:500] == bytes(490)
    finally:
        mv.release()
        ring.unregister_buffers()


def test_writev_fixed_from_registered_slices(ring, wfd):
    need(ring, "writev_fixed")
    reg = bytearray(b"0123456789abcdefghij")
    ring.register_buffers([reg])
    mv = memoryview(reg)
    try:
        _, cqe = run_op(ring, "writev_fixed", wfd, [mv[10:20], mv[0:5]], 3, 0)
        assert cqe.getresult() == 15
        assert os.pread(wfd, 100, 0) == b"\0\0\0abcdefghij01234"
    finally:
        mv.release()
        ring.unregister_buffers()


def test_writev_fixed_outside_registered_buffer_is_efault(ring, wfd):
    need(ring, "writev_fixed")
    ring.register_buffers([bytearray(64)])
    try:
        op_fails(ring, "writev_fixed", errno.EFAULT, wfd, [bytearray(b"elsewhere")], 0, 0)
    finally:
        ring.unregister_buffers()
    assert os.fstat(wfd).st_size == 0


# --------------------------------------------------------------------------
# registered (direct) files


def test_openat_direct_allocates_slot_usable_with_fixed_file(table, tmp_file):
    ring = table
    need(ring, "openat_direct")
    _, cqe = run_op(ring, "openat_direct", AT_FDCWD, tmp_file)
    slot = cqe.getresult()
    assert 0 <= slot < 8
    c = read_slot(ring, slot, 32, 64)
    assert c.getresult() == TMP_CONTENT[64:96]
    _, cqe2 = run_op(ring, "openat_direct", AT_FDCWD, str(tmp_file))
    assert cqe2.getresult() not in (slot,)
    assert 0 <= cqe2.getresult() < 8


def test_openat_direct_explicit_slot(table, tmp_file):
    ring = table
    need(ring, "openat_direct")
    _, cqe = run_op(ring, "openat_direct", AT_FDCWD, tmp_file, os.O_RDONLY, 0, 5)
    assert cqe.res() == 0
    assert read_slot(ring, 5, 4, 0).getresult() == TMP_CONTENT[:4]


def test_openat_direct_missing_is_enoent(table, tmp_path):
    op_fails(table, "openat_direct", errno.ENOENT, AT_FDCWD, tmp_path / "missing",
             exc_type=FileNotFoundError)


def test_openat_direct_without_file_table_is_enfile(ring, tmp_file):
    # Linux 6.18: no table to allocate a slot in is ENFILE (io_file_bitmap_get);
    # an explicit slot without a table would be ENXIO
    op_fails(ring, "openat_direct", errno.ENFILE, AT_FDCWD, tmp_file)


def test_openat_direct_slot_out_of_range_is_einval(table, tmp_file):
    op_fails(table, "openat_direct", errno.EINVAL, AT_FDCWD, tmp_file, file_index=100)


def test_close_direct(table, tmp_file):
    ring = table
    need(ring, "close_direct", "openat_direct")
    _, cqe = run_op(ring, "openat_direct", AT_FDCWD, tmp_file, file_index=2)
    assert cqe.res() == 0
    assert read_slot(ring, 2, 1).res() == 1
    _, cqe = run_op(ring, "close_direct", 2)
    assert cqe.getresult() == 0
    assert_fails(read_slot(ring, 2, 1), errno.EBADF)


def test_close_direct_empty_slot_is_ebadf(table):
    op_fails(table, "close_direct", errno.EBADF, 3)


def test_close_direct_out_of_range_is_einval(table):
    op_fails(table, "close_direct", errno.EINVAL, 100)


def test_files_update_installs_fds(table, tmp_file, rfd):
    ring = table
    need(ring, "files_update")
    _, cqe = run_op(ring, "files_update", [rfd, -1, rfd], 4)
    assert cqe.getresult() == 3
    assert read_slot(ring, 4, 8, 8).getresult() == TMP_CONTENT[8:16]
    assert read_slot(ring, 6, 8, 16).getresult() == TMP_CONTENT[16:24]
    assert_fails(read_slot(ring, 5, 8), errno.EBADF)
    # -1 empties a slot again
    _, cqe = run_op(ring, "files_update", [-1], 4)
    assert cqe.getresult() == 1
    assert_fails(read_slot(ring, 4, 8), errno.EBADF)


def test_files_update_without_table_is_enxio(ring, rfd):
    op_fails(ring, "files_update", errno.ENXIO, [rfd])


def test_files_update_out_of_range_is_einval(table, rfd):
    op_fails(table, "files_update", errno.EINVAL, [rfd], 10)


def test_fixed_fd_install_gives_regular_fd(table, tmp_file):
    ring = table
    need(ring, "fixed_fd_install", "openat_direct")
    _, cqe = run_op(ring, "openat_direct", AT_FDCWD, tmp_file)
    slot = cqe.getresult()
    fd = install(ring, slot)
    try:
        assert os.pread(fd, 16, 100) == TMP_CONTENT[100:116]
        assert os.fstat(fd).st_ino == os.stat(tmp_file).st_ino
        assert not os.get_inheritable(fd)  # O_CLOEXEC by default
    finally:
        os.close(fd)
    # the slot itself still works
    assert read_slot(ring, slot, 2).getresult() == TMP_CONTENT[:2]


def test_fixed_fd_install_empty_slot_is_ebadf(table):
    op_fails(table, "fixed_fd_install", errno.EBADF, 1)


# --------------------------------------------------------------------------
# provide_buffers, remove_buffers


def test_recv_with_provided_buffers(ring, form, unix_pair):
    need(ring, "provide_buffers")
    if form.name == "async":
        pytest.skip("AsyncRing gives no flags (so no buffer id), and each form.run() is a "
                    "fresh AsyncRing without the provided group")
    a, b = unix_pair
    pool = bytearray(4 * 64)
    assert form.run(ring, "provide_buffers", pool, 4, 11, 100) == (0, 0)
    bids = set()
    for i, msg in enumerate((b"hello world", b"second", b"provided 2")):
        a.sendall(msg)
        # a length or a buffer (which the kernel does not use): the result is the
        # data of the buffer the kernel picked, either way
        buf = 64 if i % 2 == 0 else bytearray(64)
        res, flags = form.run(ring, "recv", b, buf, sqe_flags=IOSQE_BUFFER_SELECT, buf_group=11,
                              user_data=msg)
        assert res == msg
        assert flags & IORING_CQE_F_BUFFER
        bid = flags >> IORING_CQE_BUFFER_SHIFT
        assert 100 <= bid < 104 and bid not in bids
        bids.add(bid)
        k = bid - 100
        assert pool[k * 64:k * 64 + len(msg)] == msg
    # one buffer is left: remove_buffers takes it, and the group is empty
    assert form.run(ring, "remove_buffers", 10, 11) == (1, 0)
    a.sendall(b"x")
    res = form.run(ring, "recv", b, 64, sqe_flags=IOSQE_BUFFER_SELECT, buf_group=11, user_data="none left")
    assert res == (-errno.ENOBUFS, 0)


def test_provide_buffers_too_many_is_e2big(ring):
    # Linux 6.18 refuses a count of 0 with E2BIG, as it does a count past the
    # limit (io_provide_buffers_prep)
    op_fails(ring, "provide_buffers", errno.E2BIG, bytearray(64), 0, 3)


def test_recv_buffer_select_empty_group_is_enobufs(ring, unix_pair):
    need(ring, "provide_buffers")
    a, b = unix_pair
    a.sendall(b"x")
    sqe = prep(ring, "recv", b, bytearray(16))
    sqe.set_flags(IOSQE_BUFFER_SELECT)
    sqe.set_buf_group(13)
    ring.submit()
    assert_fails(wait_one(ring), errno.ENOBUFS)


def test_remove_buffers(ring):
    need(ring, "provide_buffers", "remove_buffers")
    assert run_op(ring, "provide_buffers", bytearray(8 * 16), 8, 21)[1].res() == 0
    _, cqe = run_op(ring, "remove_buffers", 3, 21)
    assert cqe.getresult() == 3
    _, cqe = run_op(ring, "remove_buffers", 100, 21)
    assert cqe.getresult() == 5
    # the group is empty now (it stays known to the kernel)
    _, cqe = run_op(ring, "remove_buffers", 1, 21)
    assert cqe.res() == 0


def test_remove_buffers_unknown_group_is_enoent(ring):
    op_fails(ring, "remove_buffers", errno.ENOENT, 1, 4321)


# --------------------------------------------------------------------------
# openat2_direct


def test_openat2_direct_into_a_slot(ring, tmp_file):
    need(ring, "openat2_direct", "fixed_fd_install")
    ring.register_files_sparse(4)
    _, cqe = run_op(ring, "openat2_direct", AT_FDCWD, tmp_file, os.O_RDONLY, file_index=2)
    assert cqe.getresult() == 0
    _, cqe = run_op(ring, "fixed_fd_install", 2)
    fd = cqe.getresult()
    try:
        assert os.pread(fd, 4, 0) == TMP_CONTENT[:4]
    finally:
        os.close(fd)
    _, cqe = run_op(ring, "openat2_direct", AT_FDCWD, tmp_file, os.O_RDONLY)
    assert cqe.getresult() in (0, 1, 3)   # an allocated free slot


def test_openat2_direct_missing_file_is_enoent(ring, tmp_path):
    need(ring, "openat2_direct")
    ring.register_files_sparse(2)
    op_fails(ring, "openat2_direct", errno.ENOENT, AT_FDCWD, str(tmp_path / "nope"))


# --------------------------------------------------------------------------
# IOSQE_FIXED_FILE: the fd is a slot of the registered file table


def test_read_through_a_registered_file_slot(ring, form, tmp_file):
    # IOSQE_FIXED_FILE: the fd argument is a slot of the registered table
    fd = os.open(tmp_file, os.O_RDONLY)

    def register(ring_used):
        ring_used.register_files([fd])

    try:
        res = form.run(ring, "read", 0, 8, 16, sqe_flags=IOSQE_FIXED_FILE, setup=register)
    finally:
        os.close(fd)   # the table keeps its own reference
    assert res == (TMP_CONTENT[16:24], form.noflags)
    if form.name != "async":   # a fresh AsyncRing per run: no table there
        assert form.run(ring, "read", 5, 8, 16, sqe_flags=IOSQE_FIXED_FILE)[0] == -errno.EBADF
        assert form.run(ring, "read", 0, 4, 0, sqe_flags=IOSQE_FIXED_FILE)[0] == TMP_CONTENT[:4]


# --------------------------------------------------------------------------
# buffer selection


def test_recv_with_buffer_select_and_the_wrong_group(ring, form, unix_pair):
    need(ring, "provide_buffers")
    if form.name == "async":
        pytest.skip("AsyncRing gives no flags (so no buffer id), and each form.run() is a "
                    "fresh AsyncRing without the provided group")
    a, b = unix_pair
    assert form.run(ring, "provide_buffers", bytearray(64), 1, 5) == (0, 0)
    a.sendall(b"data")
    # buf_group really reaches the entry: group 6 has no buffers
    res = form.run(ring, "recv", b, 64, sqe_flags=IOSQE_BUFFER_SELECT, buf_group=6)
    assert res == (-errno.ENOBUFS, 0)
    data, flags = form.run(ring, "recv", b, 64, sqe_flags=IOSQE_BUFFER_SELECT, buf_group=5)
    assert data == b"data" and flags & IORING_CQE_F_BUFFER


def test_recv_from_a_buffer_ring(ring, form, unix_pair):
    if form.name == "async":
        pytest.skip("AsyncRing gives no flags (so no buffer id), and each form.run() is a "
                    "fresh AsyncRing without the buffer ring")
    a, b = unix_pair
    ring.setup_buf_ring(7, 4, 64)
    try:
        for i in range(6):   # more receives than buffers: each goes back at reap
            msg = b"ring message %d" % i
            a.sendall(msg)
            data, flags = form.run(ring, "recv", b, 64, sqe_flags=IOSQE_BUFFER_SELECT, buf_group=7,
                                   user_data=i)
            assert data == msg
            assert flags & IORING_CQE_F_BUFFER
            assert (flags >> IORING_CQE_BUFFER_SHIFT) < 4
        assert ring.in_flight() == 0
    finally:
        ring.free_buf_ring(7)


def test_recv_multishot_from_a_buffer_ring(ring):
    need(ring, "recv_multishot", "cancel_fd")
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        ring.setup_buf_ring(9, 4, 128)
        rx = Token()
        ring.prep_recv_multishot(a, buf_group=9, user_data=rx)
        ring.submit()
        for i in range(10):
            msg = b"datagram %d" % i
            b.sendto(msg, a.getsockname())
            [(ud, data, flags)] = reap_n(ring, 1)
            assert ud is rx and data == msg
            assert flags & IORING_CQE_F_MORE and flags & IORING_CQE_F_BUFFER
        # the group is in use by the fast form's record
        with pytest.raises(RuntimeError):
            ring.free_buf_ring(9)
        ring.prep_cancel_fd(a, user_data="cancel")
        ring.submit()
        got = reap_n(ring, 2)
        final = [g for g in got if g[0] is rx]
        assert ("cancel", 0, 0) in got
        assert len(final) == 1
        assert final[0][1] == -errno.ECANCELED and not final[0][2] & IORING_CQE_F_MORE
        assert ring.in_flight() == 0
        ring.free_buf_ring(9)
    finally:
        a.close()
        b.close()

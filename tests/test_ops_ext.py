"""Every prep_* operation of ops.def beyond the original twelve (those are in
test_ops.py), against the real kernel: for each op at least one success with
its data or effect checked, and at least one failure with its errno checked.

An op the running kernel lacks (not in IoUring.probe()) is skipped.
"""

import array
import errno
import mmap
import os
import select
import socket
import stat
import struct
import time
import warnings

import pytest

import py_io_uring
from py_io_uring import (
    AT_FDCWD,
    IORING_CQE_BUFFER_SHIFT,
    IORING_CQE_F_BUFFER,
    IORING_CQE_F_MORE,
    IORING_CQE_F_NOTIF,
    IOSQE_BUFFER_SELECT,
    IOSQE_FIXED_FILE,
    IOSQE_IO_LINK,
)
from uring_helpers import (
    TMP_CONTENT,
    WAIT,
    assert_fails,
    by_data,
    closed_fd,
    exit_code,
    need,
    prep,
    run_op,
    wait_n,
    wait_one,
)

# --------------------------------------------------------------------------
# helpers






def op_fails(ring, op, err, *args, exc_type=OSError, **kwargs):
    """Run op (need()-checked) and assert it fails with err."""
    need(ring, op)
    _, cqe = run_op(ring, op, *args, **kwargs)
    assert_fails(cqe, err, exc_type)


def finish_zc(ring, n_expected, timeout=WAIT):
    """Reap a zero-copy send's two completions: (res cqe, notif cqe)."""
    first = wait_one(ring, timeout)
    assert first.flags() & IORING_CQE_F_MORE, hex(first.flags())
    assert not first.flags() & IORING_CQE_F_NOTIF
    assert first.res() == n_expected, first.res()
    notif = wait_one(ring, timeout)
    assert notif.flags() & IORING_CQE_F_NOTIF, hex(notif.flags())
    assert not notif.flags() & IORING_CQE_F_MORE
    assert notif.user_data() == first.user_data()
    return first, notif


def cancel_multishot(ring, target):
    """Cancel a multishot op and reap until both the cancel's completion (0)
    and the target's final one (-ECANCELED, no F_MORE) were seen.  Returns
    any data completions of the target that came in between."""
    prep(ring, "cancel", target, tag="cancel")
    ring.submit()
    extra = []
    cancel_seen = final_seen = False
    for _ in range(64):
        if cancel_seen and final_seen:
            break
        c = wait_one(ring)
        if c.get_data() == "cancel":
            assert c.res() == 0, c.res()
            cancel_seen = True
        elif c.flags() & IORING_CQE_F_MORE:
            extra.append(c)
        else:
            assert c.res() == -errno.ECANCELED, c.res()
            final_seen = True
    assert cancel_seen and final_seen
    assert ring.in_flight() == 0
    return extra


def recv_all(sock, n):
    sock.settimeout(WAIT)
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "EOF after %d of %d bytes" % (len(out), n)
        out += chunk
    return bytes(out)




@pytest.fixture
def udp_pair():
    """Two UDP sockets bound to 127.0.0.1: (a, b)."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def xattr_file(tmp_path):
    """A file on a filesystem that takes user.* xattrs."""
    p = tmp_path / "x.txt"
    p.write_bytes(b"xattr holder")
    try:
        os.setxattr(p, "user.probe", b"1")
        os.removexattr(p, "user.probe")
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            pytest.skip("filesystem of %s has no user.* xattrs" % tmp_path)
        raise
    return p


@pytest.fixture
def table(ring):
    """The ring with a sparse registered file table of 8 slots."""
    ring.register_files_sparse(8)
    return ring


def install(ring, slot):
    """fixed_fd_install a slot; return the new regular fd."""
    need(ring, "fixed_fd_install")
    _, cqe = run_op(ring, "fixed_fd_install", slot)
    fd = cqe.getresult()
    assert isinstance(fd, int) and fd >= 0, cqe.res()
    return fd


# --------------------------------------------------------------------------
# readv / writev


def test_readv_fills_buffers_in_order(ring, rfd):
    need(ring, "readv")
    a, b, c = bytearray(10), bytearray(20), bytearray(5)
    _, cqe = run_op(ring, "readv", rfd, [a, b, c], 100)
    assert cqe.res() == 35
    assert cqe.getresult() == 35
    assert bytes(a + b + c) == TMP_CONTENT[100:135]


def test_readv_current_position_and_short_read(ring, rfd):
    need(ring, "readv")
    os.lseek(rfd, len(TMP_CONTENT) - 7, os.SEEK_SET)
    a, b = bytearray(b"\xee" * 4), bytearray(b"\xee" * 8)
    _, cqe = run_op(ring, "readv", rfd, [a, b])
    assert cqe.getresult() == 7
    assert a == TMP_CONTENT[-7:-3]
    assert b == TMP_CONTENT[-3:] + b"\xee" * 5
    assert os.lseek(rfd, 0, os.SEEK_CUR) == len(TMP_CONTENT)


def test_readv_closed_fd_is_ebadf(ring):
    op_fails(ring, "readv", errno.EBADF, closed_fd(), [bytearray(4)])


def test_readv_of_directory_is_eisdir(ring, tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        op_fails(ring, "readv", errno.EISDIR, fd, [bytearray(4)], 0, exc_type=IsADirectoryError)
    finally:
        os.close(fd)


def test_writev_writes_buffers_in_order(ring, wfd):
    need(ring, "writev")
    parts = [b"abc", bytearray(b"defg"), memoryview(b"__hij__")[2:5]]
    _, cqe = run_op(ring, "writev", wfd, parts, 5)
    assert cqe.getresult() == 10
    assert os.pread(wfd, 100, 0) == b"\0" * 5 + b"abcdefghij"


def test_writev_read_only_fd_is_ebadf(ring, rfd, tmp_file):
    op_fails(ring, "writev", errno.EBADF, rfd, [b"nope"], 0)
    assert tmp_file.read_bytes() == TMP_CONTENT


# --------------------------------------------------------------------------
# read_fixed / write_fixed / readv_fixed / writev_fixed


def test_read_fixed_into_registered_buffer(ring, rfd):
    need(ring, "read_fixed")
    reg = bytearray(4096)
    ring.register_buffers([reg])
    mv = memoryview(reg)
    try:
        _, cqe = run_op(ring, "read_fixed", rfd, mv[100:300], 1000, 0)
        assert cqe.res() == 200
        assert cqe.getresult() == 200
        assert reg[100:300] == TMP_CONTENT[1000:1200]
        assert reg[:100] == bytes(100) and reg[300:] == bytes(4096 - 300)
    finally:
        mv.release()
        ring.unregister_buffers()


def test_read_fixed_closed_fd_is_ebadf(ring):
    need(ring, "read_fixed")
    reg = bytearray(64)
    ring.register_buffers([reg])
    try:
        op_fails(ring, "read_fixed", errno.EBADF, closed_fd(), memoryview(reg)[0:8], 0, 0)
    finally:
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


def test_readv_fixed_closed_fd_is_ebadf(ring):
    need(ring, "readv_fixed")
    reg = bytearray(64)
    ring.register_buffers([reg])
    try:
        op_fails(ring, "readv_fixed", errno.EBADF, closed_fd(), [memoryview(reg)[0:8]], 0, 0)
    finally:
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
# fsync / sync_file_range / fallocate / fadvise / madvise / ftruncate


@pytest.mark.parametrize("flags", [0, py_io_uring.IORING_FSYNC_DATASYNC])
def test_fsync_after_write(ring, wfd, flags):
    need(ring, "fsync")
    os.write(wfd, b"durable")
    _, cqe = run_op(ring, "fsync", wfd, flags)
    assert cqe.res() == 0 and cqe.getresult() == 0
    assert os.pread(wfd, 100, 0) == b"durable"


def test_fsync_closed_fd_is_ebadf(ring):
    op_fails(ring, "fsync", errno.EBADF, closed_fd())


def test_fsync_of_pipe_is_einval(ring, pipe):
    op_fails(ring, "fsync", errno.EINVAL, pipe[1])


def test_sync_file_range(ring, wfd):
    need(ring, "sync_file_range")
    os.write(wfd, TMP_CONTENT)
    flags = (
        py_io_uring.SYNC_FILE_RANGE_WAIT_BEFORE
        | py_io_uring.SYNC_FILE_RANGE_WRITE
        | py_io_uring.SYNC_FILE_RANGE_WAIT_AFTER
    )
    _, cqe = run_op(ring, "sync_file_range", wfd, 4096, 0, flags)
    assert cqe.res() == 0
    assert os.pread(wfd, 4096, 0) == TMP_CONTENT


def test_sync_file_range_of_pipe_is_espipe(ring, pipe):
    op_fails(ring, "sync_file_range", errno.ESPIPE, pipe[1], 0)


def test_sync_file_range_bad_flags_is_einval(ring, wfd):
    op_fails(ring, "sync_file_range", errno.EINVAL, wfd, 0, 0, 0x100)


def test_fallocate_extends_file(ring, wfd):
    need(ring, "fallocate")
    _, cqe = run_op(ring, "fallocate", wfd, 0, 0, 8192)
    assert cqe.getresult() == 0
    st = os.fstat(wfd)
    assert st.st_size == 8192
    assert st.st_blocks * 512 >= 8192
    assert os.pread(wfd, 8192, 0) == bytes(8192)


def test_fallocate_keep_size_and_punch_hole(ring, tmp_path):
    need(ring, "fallocate")
    p = tmp_path / "holes.bin"
    p.write_bytes(b"\xab" * 16384)
    fd = os.open(p, os.O_RDWR)
    try:
        _, cqe = run_op(ring, "fallocate", fd, py_io_uring.FALLOC_FL_KEEP_SIZE, 16384, 65536)
        assert cqe.res() == 0
        assert os.fstat(fd).st_size == 16384  # KEEP_SIZE: allocated past EOF only
        assert os.fstat(fd).st_blocks * 512 >= 16384 + 65536
        mode = py_io_uring.FALLOC_FL_PUNCH_HOLE | py_io_uring.FALLOC_FL_KEEP_SIZE
        _, cqe = run_op(ring, "fallocate", fd, mode, 4096, 4096)
        if cqe.res() == -errno.EOPNOTSUPP:
            pytest.skip("filesystem cannot punch holes")
        assert cqe.res() == 0
        assert os.fstat(fd).st_size == 16384
        data = os.pread(fd, 16384, 0)
        assert data == b"\xab" * 4096 + bytes(4096) + b"\xab" * 8192
    finally:
        os.close(fd)


def test_fallocate_read_only_fd_is_ebadf(ring, rfd, tmp_file):
    op_fails(ring, "fallocate", errno.EBADF, rfd, 0, 0, 100000)
    assert os.stat(tmp_file).st_size == len(TMP_CONTENT)


def test_fallocate_punch_hole_without_keep_size_is_eopnotsupp(ring, wfd):
    op_fails(ring, "fallocate", errno.EOPNOTSUPP, wfd, py_io_uring.FALLOC_FL_PUNCH_HOLE, 0, 4096)


def test_fadvise(ring, rfd):
    need(ring, "fadvise")
    for advice in (os.POSIX_FADV_SEQUENTIAL, os.POSIX_FADV_WILLNEED, os.POSIX_FADV_DONTNEED):
        _, cqe = run_op(ring, "fadvise", rfd, 0, 0, advice)
        assert cqe.res() == 0, advice
    assert os.pread(rfd, 16, 0) == TMP_CONTENT[:16]


def test_fadvise_bad_advice_is_einval(ring, rfd):
    op_fails(ring, "fadvise", errno.EINVAL, rfd, 0, 0, 999)


def test_fadvise_of_pipe_is_espipe(ring, pipe):
    op_fails(ring, "fadvise", errno.ESPIPE, pipe[0], 0, 0, os.POSIX_FADV_DONTNEED)


def test_madvise_dontneed_zeroes_private_anonymous_memory(ring):
    need(ring, "madvise")
    m = mmap.mmap(-1, 8192, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        m[:] = b"\x5a" * 8192
        _, cqe = run_op(ring, "madvise", m, mmap.MADV_DONTNEED)
        assert cqe.res() == 0
        assert m[:] == bytes(8192)  # the pages were dropped
        del cqe, _
    finally:
        m.close()


def test_madvise_bad_advice_is_einval(ring):
    need(ring, "madvise")
    m = mmap.mmap(-1, 4096)
    try:
        m[:4] = b"keep"
        op_fails(ring, "madvise", errno.EINVAL, m, 9999)
        assert m[:4] == b"keep"
    finally:
        m.close()


def test_madvise_unaligned_start_is_refused(ring):
    # The kernel would answer EINVAL; the prep refuses it first, as it does
    # any range that is not whole pages (tests/test_safety_converters.py).
    need(ring, "madvise")
    m = mmap.mmap(-1, 8192)
    mv = memoryview(m)
    part = mv[1:100]
    try:
        with pytest.raises(ValueError, match="prep_madvise.*whole pages"):
            ring.get_sqe().prep_madvise(part, mmap.MADV_DONTNEED)
    finally:
        part.release()
        mv.release()
        m.close()


def test_ftruncate_shrinks_and_extends(ring, tmp_file):
    need(ring, "ftruncate")
    fd = os.open(tmp_file, os.O_RDWR)
    try:
        _, cqe = run_op(ring, "ftruncate", fd, 100)
        assert cqe.getresult() == 0
        assert os.fstat(fd).st_size == 100
        _, cqe = run_op(ring, "ftruncate", fd, 300)
        assert cqe.res() == 0
        assert os.pread(fd, 1000, 0) == TMP_CONTENT[:100] + bytes(200)
    finally:
        os.close(fd)


def test_ftruncate_read_only_fd_is_einval(ring, rfd, tmp_file):
    op_fails(ring, "ftruncate", errno.EINVAL, rfd, 0)
    assert os.stat(tmp_file).st_size == len(TMP_CONTENT)


def test_ftruncate_closed_fd_is_ebadf(ring):
    op_fails(ring, "ftruncate", errno.EBADF, closed_fd(), 0)


# --------------------------------------------------------------------------
# statx


STAT_FIELDS = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
               "st_mtime_ns", "st_ctime_ns", "st_blksize", "st_blocks")


def assert_same_stat(got, want):
    assert isinstance(got, os.stat_result)
    for f in STAT_FIELDS:
        assert getattr(got, f) == getattr(want, f), f
    assert got.st_mtime == pytest.approx(want.st_mtime, abs=1e-6)
    assert got[stat.ST_SIZE] == want.st_size


def test_statx_matches_os_stat(ring, tmp_file):
    need(ring, "statx")
    os.utime(tmp_file, ns=(1_500_000_000_123_456_789, 1_600_000_000_987_654_321))
    _, cqe = run_op(ring, "statx", AT_FDCWD, str(tmp_file))
    assert cqe.res() == 0
    st = cqe.getresult()
    assert_same_stat(st, os.stat(tmp_file))
    assert st.st_mtime_ns == 1_600_000_000_987_654_321
    assert st.st_atime_ns == 1_500_000_000_123_456_789
    assert stat.S_ISREG(st.st_mode)


def test_statx_relative_to_dirfd_and_empty_path(ring, tmp_file):
    need(ring, "statx")
    dfd = os.open(tmp_file.parent, os.O_RDONLY | os.O_DIRECTORY)
    ffd = os.open(tmp_file, os.O_RDONLY)
    try:
        _, cqe = run_op(ring, "statx", dfd, tmp_file.name)
        assert_same_stat(cqe.getresult(), os.stat(tmp_file))
        _, cqe = run_op(ring, "statx", ffd, "", py_io_uring.AT_EMPTY_PATH)
        assert_same_stat(cqe.getresult(), os.fstat(ffd))
        _, cqe = run_op(ring, "statx", AT_FDCWD, tmp_file.parent)
        st = cqe.getresult()
        assert stat.S_ISDIR(st.st_mode)
        assert st.st_ino == os.stat(tmp_file.parent).st_ino
    finally:
        os.close(dfd)
        os.close(ffd)


def test_statx_symlink_nofollow(ring, tmp_file, tmp_path):
    need(ring, "statx")
    link = tmp_path / "ln"
    os.symlink(tmp_file, link)
    _, cqe = run_op(ring, "statx", AT_FDCWD, link, py_io_uring.AT_SYMLINK_NOFOLLOW)
    st = cqe.getresult()
    assert stat.S_ISLNK(st.st_mode)
    assert st.st_ino == os.lstat(link).st_ino
    _, cqe = run_op(ring, "statx", AT_FDCWD, link)
    assert cqe.getresult().st_ino == os.stat(tmp_file).st_ino


def test_statx_missing_is_enoent(ring, tmp_path):
    op_fails(ring, "statx", errno.ENOENT, AT_FDCWD, tmp_path / "missing",
             exc_type=FileNotFoundError)


def test_statx_through_a_file_is_enotdir(ring, tmp_file):
    op_fails(ring, "statx", errno.ENOTDIR, AT_FDCWD, str(tmp_file) + "/x",
             exc_type=NotADirectoryError)


# --------------------------------------------------------------------------
# splice / tee


def test_splice_file_to_pipe(ring, rfd, pipe):
    need(ring, "splice")
    r, w = pipe
    _, cqe = run_op(ring, "splice", rfd, 100, w, -1, 50)
    assert cqe.getresult() == 50
    assert os.read(r, 100) == TMP_CONTENT[100:150]


def test_splice_pipe_to_file(ring, wfd, pipe):
    need(ring, "splice")
    r, w = pipe
    os.write(w, b"spliced bytes")
    _, cqe = run_op(ring, "splice", r, -1, wfd, 7, 13, py_io_uring.SPLICE_F_MOVE)
    assert cqe.getresult() == 13
    assert os.pread(wfd, 100, 0) == b"\0" * 7 + b"spliced bytes"


def test_splice_without_a_pipe_is_einval(ring, rfd, wfd):
    op_fails(ring, "splice", errno.EINVAL, rfd, 0, wfd, 0, 10)
    assert os.fstat(wfd).st_size == 0


def test_splice_closed_fd_is_ebadf(ring, pipe):
    op_fails(ring, "splice", errno.EBADF, closed_fd(), 0, pipe[1], -1, 10)


def test_tee_duplicates_pipe_data(ring):
    need(ring, "tee")
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        os.write(w1, b"tee time")
        _, cqe = run_op(ring, "tee", r1, w2, 100)
        assert cqe.getresult() == 8
        assert os.read(r2, 100) == b"tee time"
        assert os.read(r1, 100) == b"tee time"  # tee does not consume
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_tee_of_non_pipe_is_einval(ring, rfd, pipe):
    op_fails(ring, "tee", errno.EINVAL, rfd, pipe[1], 10)


# --------------------------------------------------------------------------
# openat2


def test_openat2_opens_for_reading(ring, tmp_file):
    need(ring, "openat2")
    _, cqe = run_op(ring, "openat2", AT_FDCWD, tmp_file, os.O_RDONLY | os.O_CLOEXEC)
    fd = cqe.getresult()
    try:
        assert fd >= 0
        assert os.read(fd, 64) == TMP_CONTENT[:64]
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)


def test_openat2_creates_with_mode_and_resolve_beneath(ring, tmp_path):
    need(ring, "openat2")
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    old = os.umask(0)
    try:
        _, cqe = run_op(
            ring, "openat2", dfd, "new.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640,
            py_io_uring.RESOLVE_BENEATH,
        )
        fd = cqe.getresult()
        os.write(fd, b"created")
        os.close(fd)
    finally:
        os.umask(old)
        os.close(dfd)
    assert (tmp_path / "new.txt").read_bytes() == b"created"
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o640


def test_openat2_resolve_beneath_absolute_path_is_exdev(ring, tmp_file):
    op_fails(ring, "openat2", errno.EXDEV, AT_FDCWD, str(tmp_file), os.O_RDONLY, 0,
             py_io_uring.RESOLVE_BENEATH)


def test_openat2_resolve_no_symlinks_is_eloop(ring, tmp_file, tmp_path):
    link = tmp_path / "ln"
    os.symlink(tmp_file, link)
    op_fails(ring, "openat2", errno.ELOOP, AT_FDCWD, link, os.O_RDONLY, 0,
             py_io_uring.RESOLVE_NO_SYMLINKS)


def test_openat2_missing_is_enoent(ring, tmp_path):
    op_fails(ring, "openat2", errno.ENOENT, AT_FDCWD, tmp_path / "nope", exc_type=FileNotFoundError)


def test_openat2_mode_without_create_is_einval(ring, tmp_file):
    op_fails(ring, "openat2", errno.EINVAL, AT_FDCWD, tmp_file, os.O_RDONLY, 0o644)


# --------------------------------------------------------------------------
# renameat / rename


def test_renameat_moves_file(ring, tmp_path):
    need(ring, "renameat")
    (tmp_path / "a").write_bytes(b"A")
    sub = tmp_path / "sub"
    sub.mkdir()
    d1 = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    d2 = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _, cqe = run_op(ring, "renameat", d1, "a", d2, "b")
        assert cqe.getresult() == 0
    finally:
        os.close(d1)
        os.close(d2)
    assert not (tmp_path / "a").exists()
    assert (sub / "b").read_bytes() == b"A"


def test_renameat_exchange(ring, tmp_path):
    need(ring, "renameat")
    (tmp_path / "a").write_bytes(b"A")
    (tmp_path / "b").write_bytes(b"B")
    _, cqe = run_op(ring, "renameat", AT_FDCWD, tmp_path / "a", AT_FDCWD, tmp_path / "b",
                    py_io_uring.RENAME_EXCHANGE)
    assert cqe.res() == 0
    assert (tmp_path / "a").read_bytes() == b"B"
    assert (tmp_path / "b").read_bytes() == b"A"


def test_renameat_noreplace_existing_is_eexist(ring, tmp_path):
    (tmp_path / "a").write_bytes(b"A")
    (tmp_path / "b").write_bytes(b"B")
    op_fails(ring, "renameat", errno.EEXIST, AT_FDCWD, tmp_path / "a", AT_FDCWD, tmp_path / "b",
             py_io_uring.RENAME_NOREPLACE, exc_type=FileExistsError)
    assert (tmp_path / "a").read_bytes() == b"A"
    assert (tmp_path / "b").read_bytes() == b"B"


def test_rename(ring, tmp_path):
    need(ring, "rename")
    (tmp_path / "old").write_bytes(b"content")
    _, cqe = run_op(ring, "rename", tmp_path / "old", str(tmp_path / "new"))
    assert cqe.getresult() == 0
    assert not (tmp_path / "old").exists()
    assert (tmp_path / "new").read_bytes() == b"content"


def test_rename_missing_is_enoent(ring, tmp_path):
    op_fails(ring, "rename", errno.ENOENT, tmp_path / "missing", tmp_path / "x",
             exc_type=FileNotFoundError)
    assert not (tmp_path / "x").exists()


def test_rename_dir_over_file_is_enotdir(ring, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_bytes(b"")
    op_fails(ring, "rename", errno.ENOTDIR, tmp_path / "d", tmp_path / "f",
             exc_type=NotADirectoryError)


# --------------------------------------------------------------------------
# unlinkat / unlink


def test_unlinkat_file_and_directory(ring, tmp_path):
    need(ring, "unlinkat")
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _, cqe = run_op(ring, "unlinkat", dfd, "f")
        assert cqe.getresult() == 0
        _, cqe = run_op(ring, "unlinkat", dfd, "d", py_io_uring.AT_REMOVEDIR)
        assert cqe.getresult() == 0
    finally:
        os.close(dfd)
    assert os.listdir(tmp_path) == []


def test_unlinkat_removedir_of_nonempty_is_enotempty(ring, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"")
    op_fails(ring, "unlinkat", errno.ENOTEMPTY, AT_FDCWD, tmp_path / "d", py_io_uring.AT_REMOVEDIR)
    assert (tmp_path / "d" / "f").exists()


def test_unlinkat_removedir_of_file_is_enotdir(ring, tmp_file):
    op_fails(ring, "unlinkat", errno.ENOTDIR, AT_FDCWD, tmp_file, py_io_uring.AT_REMOVEDIR,
             exc_type=NotADirectoryError)
    assert tmp_file.exists()


def test_unlink(ring, tmp_file):
    need(ring, "unlink")
    _, cqe = run_op(ring, "unlink", tmp_file)
    assert cqe.getresult() == 0
    assert not tmp_file.exists()


def test_unlink_directory_with_removedir(ring, tmp_path):
    need(ring, "unlink")
    (tmp_path / "d").mkdir()
    _, cqe = run_op(ring, "unlink", str(tmp_path / "d"), py_io_uring.AT_REMOVEDIR)
    assert cqe.res() == 0
    assert not (tmp_path / "d").exists()


def test_unlink_missing_is_enoent(ring, tmp_path):
    op_fails(ring, "unlink", errno.ENOENT, tmp_path / "missing", exc_type=FileNotFoundError)


def test_unlink_of_directory_is_eisdir(ring, tmp_path):
    (tmp_path / "d").mkdir()
    op_fails(ring, "unlink", errno.EISDIR, tmp_path / "d", exc_type=IsADirectoryError)
    assert (tmp_path / "d").is_dir()


# --------------------------------------------------------------------------
# mkdirat / mkdir


def test_mkdirat_with_mode(ring, tmp_path):
    need(ring, "mkdirat")
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    old = os.umask(0)
    try:
        _, cqe = run_op(ring, "mkdirat", dfd, "made", 0o710)
        assert cqe.getresult() == 0
    finally:
        os.umask(old)
        os.close(dfd)
    st = os.stat(tmp_path / "made")
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o710


def test_mkdirat_existing_is_eexist(ring, tmp_path):
    op_fails(ring, "mkdirat", errno.EEXIST, AT_FDCWD, tmp_path, exc_type=FileExistsError)


def test_mkdir_default_mode(ring, tmp_path):
    need(ring, "mkdir")
    old = os.umask(0o022)
    try:
        _, cqe = run_op(ring, "mkdir", tmp_path / "m")
        assert cqe.res() == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m").st_mode) == 0o755


def test_mkdir_missing_parent_is_enoent(ring, tmp_path):
    op_fails(ring, "mkdir", errno.ENOENT, tmp_path / "no" / "such", exc_type=FileNotFoundError)


# --------------------------------------------------------------------------
# symlinkat / symlink / linkat / link


def test_symlinkat(ring, tmp_path):
    need(ring, "symlinkat")
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _, cqe = run_op(ring, "symlinkat", "target/does/not/matter", dfd, "sl")
        assert cqe.getresult() == 0
    finally:
        os.close(dfd)
    assert os.readlink(tmp_path / "sl") == "target/does/not/matter"


def test_symlinkat_existing_is_eexist(ring, tmp_file):
    op_fails(ring, "symlinkat", errno.EEXIST, "x", AT_FDCWD, tmp_file, exc_type=FileExistsError)


def test_symlink(ring, tmp_file, tmp_path):
    need(ring, "symlink")
    _, cqe = run_op(ring, "symlink", tmp_file, tmp_path / "sl")
    assert cqe.res() == 0
    assert os.readlink(tmp_path / "sl") == str(tmp_file)
    assert (tmp_path / "sl").read_bytes() == TMP_CONTENT


def test_symlink_in_missing_directory_is_enoent(ring, tmp_path):
    op_fails(ring, "symlink", errno.ENOENT, "t", tmp_path / "no" / "sl", exc_type=FileNotFoundError)


def test_linkat(ring, tmp_file, tmp_path):
    need(ring, "linkat")
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _, cqe = run_op(ring, "linkat", dfd, tmp_file.name, dfd, "hard")
        assert cqe.getresult() == 0
    finally:
        os.close(dfd)
    st = os.stat(tmp_path / "hard")
    assert st.st_ino == os.stat(tmp_file).st_ino
    assert st.st_nlink == 2


def test_linkat_empty_path_links_an_open_fd(ring, tmp_file, tmp_path):
    need(ring, "linkat")
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        _, cqe = run_op(ring, "linkat", fd, "", AT_FDCWD, tmp_path / "viafd",
                        py_io_uring.AT_EMPTY_PATH)
        assert cqe.res() == 0
    finally:
        os.close(fd)
    assert os.stat(tmp_path / "viafd").st_ino == os.stat(tmp_file).st_ino


def test_linkat_existing_is_eexist(ring, tmp_file, tmp_path):
    (tmp_path / "other").write_bytes(b"o")
    op_fails(ring, "linkat", errno.EEXIST, AT_FDCWD, tmp_file, AT_FDCWD, tmp_path / "other",
             exc_type=FileExistsError)
    assert (tmp_path / "other").read_bytes() == b"o"


def test_link(ring, tmp_file, tmp_path):
    need(ring, "link")
    _, cqe = run_op(ring, "link", tmp_file, tmp_path / "hard2")
    assert cqe.getresult() == 0
    assert os.stat(tmp_path / "hard2").st_ino == os.stat(tmp_file).st_ino
    assert os.stat(tmp_file).st_nlink == 2


def test_link_symlink_follow(ring, tmp_file, tmp_path):
    need(ring, "link")
    sl = tmp_path / "sl"
    os.symlink(tmp_file, sl)
    _, cqe = run_op(ring, "link", sl, tmp_path / "followed", py_io_uring.AT_SYMLINK_FOLLOW)
    assert cqe.res() == 0
    assert os.lstat(tmp_path / "followed").st_ino == os.stat(tmp_file).st_ino
    _, cqe = run_op(ring, "link", sl, tmp_path / "notfollowed")
    assert cqe.res() == 0
    assert os.lstat(tmp_path / "notfollowed").st_ino == os.lstat(sl).st_ino


def test_link_missing_is_enoent(ring, tmp_path):
    op_fails(ring, "link", errno.ENOENT, tmp_path / "missing", tmp_path / "l",
             exc_type=FileNotFoundError)


def test_link_of_directory_is_eperm(ring, tmp_path):
    (tmp_path / "d").mkdir()
    op_fails(ring, "link", errno.EPERM, tmp_path / "d", tmp_path / "dl", exc_type=PermissionError)


# --------------------------------------------------------------------------
# xattrs


def test_setxattr_then_os_getxattr(ring, xattr_file):
    need(ring, "setxattr")
    _, cqe = run_op(ring, "setxattr", "user.comment", b"hello xattr", xattr_file)
    assert cqe.getresult() == 0
    assert os.getxattr(xattr_file, "user.comment") == b"hello xattr"
    _, cqe = run_op(ring, "setxattr", "user.comment", bytearray(b"v2"), str(xattr_file),
                    py_io_uring.XATTR_REPLACE)
    assert cqe.res() == 0
    assert os.getxattr(xattr_file, "user.comment") == b"v2"


def test_setxattr_create_existing_is_eexist(ring, xattr_file):
    os.setxattr(xattr_file, "user.k", b"orig")
    op_fails(ring, "setxattr", errno.EEXIST, "user.k", b"new", xattr_file, py_io_uring.XATTR_CREATE,
             exc_type=FileExistsError)
    assert os.getxattr(xattr_file, "user.k") == b"orig"


def test_setxattr_replace_missing_is_enodata(ring, xattr_file):
    op_fails(ring, "setxattr", errno.ENODATA, "user.k", b"new", xattr_file,
             py_io_uring.XATTR_REPLACE)


def test_setxattr_missing_file_is_enoent(ring, tmp_path):
    op_fails(ring, "setxattr", errno.ENOENT, "user.k", b"v", tmp_path / "none",
             exc_type=FileNotFoundError)


def test_getxattr_size_returns_bytes(ring, xattr_file):
    need(ring, "getxattr")
    os.setxattr(xattr_file, "user.comment", b"\x00binary\xffvalue")
    _, cqe = run_op(ring, "getxattr", "user.comment", xattr_file, 64)
    assert cqe.res() == 13
    assert cqe.getresult() == b"\x00binary\xffvalue"


def test_getxattr_into_buffer(ring, xattr_file):
    need(ring, "getxattr")
    os.setxattr(xattr_file, "user.comment", b"abc")
    buf = bytearray(b"\xee" * 8)
    _, cqe = run_op(ring, "getxattr", "user.comment", str(xattr_file), buf)
    assert cqe.getresult() == 3
    assert buf == b"abc" + b"\xee" * 5


def test_getxattr_missing_attribute_is_enodata(ring, xattr_file):
    op_fails(ring, "getxattr", errno.ENODATA, "user.none", xattr_file, 64)


def test_getxattr_buffer_too_small_is_erange(ring, xattr_file):
    os.setxattr(xattr_file, "user.comment", b"a longer value")
    op_fails(ring, "getxattr", errno.ERANGE, "user.comment", xattr_file, 4)


def test_fsetxattr_then_fgetxattr(ring, xattr_file):
    need(ring, "fsetxattr", "fgetxattr")
    fd = os.open(xattr_file, os.O_RDONLY)
    try:
        _, cqe = run_op(ring, "fsetxattr", fd, "user.f", b"via fd", py_io_uring.XATTR_CREATE)
        assert cqe.getresult() == 0
        assert os.getxattr(xattr_file, "user.f") == b"via fd"
        os.setxattr(xattr_file, "user.g", b"set by os")
        _, cqe = run_op(ring, "fgetxattr", fd, "user.g", 100)
        assert cqe.getresult() == b"set by os"
    finally:
        os.close(fd)


def test_fsetxattr_closed_fd_is_ebadf(ring):
    op_fails(ring, "fsetxattr", errno.EBADF, closed_fd(), "user.f", b"v")


def test_fsetxattr_create_existing_is_eexist(ring, xattr_file):
    os.setxattr(xattr_file, "user.f", b"first")
    fd = os.open(xattr_file, os.O_RDONLY)
    try:
        op_fails(ring, "fsetxattr", errno.EEXIST, fd, "user.f", b"second", py_io_uring.XATTR_CREATE,
                 exc_type=FileExistsError)
    finally:
        os.close(fd)
    assert os.getxattr(xattr_file, "user.f") == b"first"


def test_fgetxattr_closed_fd_is_ebadf(ring):
    op_fails(ring, "fgetxattr", errno.EBADF, closed_fd(), "user.f", 16)


def test_fgetxattr_missing_attribute_is_enodata(ring, xattr_file):
    fd = os.open(xattr_file, os.O_RDONLY)
    try:
        op_fails(ring, "fgetxattr", errno.ENODATA, fd, "user.absent", 16)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# pipe


def test_pipe_returns_connected_pair(ring):
    need(ring, "pipe")
    _, cqe = run_op(ring, "pipe")
    assert cqe.res() == 0
    r, w = cqe.getresult()
    try:
        assert r != w and r >= 0 and w >= 0
        assert stat.S_ISFIFO(os.fstat(r).st_mode)
        os.write(w, b"through")
        assert os.read(r, 100) == b"through"
        assert os.get_blocking(r)
    finally:
        os.close(r)
        os.close(w)


def test_pipe_flags(ring):
    need(ring, "pipe")
    _, cqe = run_op(ring, "pipe", os.O_NONBLOCK | os.O_CLOEXEC)
    r, w = cqe.getresult()
    try:
        assert not os.get_blocking(r) and not os.get_blocking(w)
        assert not os.get_inheritable(r) and not os.get_inheritable(w)
        with pytest.raises(BlockingIOError):
            os.read(r, 1)
    finally:
        os.close(r)
        os.close(w)


def test_pipe_bad_flags_is_einval(ring):
    op_fails(ring, "pipe", errno.EINVAL, 0x1)


# --------------------------------------------------------------------------
# registered (direct) files


def read_slot(ring, slot, n, offset=0):
    """read through the registered file table (IOSQE_FIXED_FILE)."""
    sqe = prep(ring, "read", slot, n, offset)
    sqe.set_flags(IOSQE_FIXED_FILE)
    ring.submit()
    return wait_one(ring)


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


def test_files_update_closed_fd_is_ebadf(table):
    op_fails(table, "files_update", errno.EBADF, [closed_fd()], 0)


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
# sockets: socket, socket_direct, socket_direct_alloc, shutdown, bind, listen


def test_socket_creates_socket(ring):
    need(ring, "socket")
    _, cqe = run_op(ring, "socket", socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    fd = cqe.getresult()
    s = socket.socket(fileno=fd)
    try:
        assert s.family == socket.AF_INET
        assert s.type == socket.SOCK_DGRAM
        assert not os.get_inheritable(fd)
    finally:
        s.close()


def test_socket_unix_stream_nonblock(ring):
    need(ring, "socket")
    _, cqe = run_op(ring, "socket", socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    s = socket.socket(fileno=cqe.getresult())
    try:
        assert s.family == socket.AF_UNIX and s.type == socket.SOCK_STREAM
        assert not os.get_blocking(s.fileno())
    finally:
        s.close()


def test_socket_bad_family_is_eafnosupport(ring):
    op_fails(ring, "socket", errno.EAFNOSUPPORT, 12345, socket.SOCK_STREAM)


def test_socket_bad_type_is_einval(ring):
    op_fails(ring, "socket", errno.EINVAL, socket.AF_INET, 0x7F)


def test_socket_direct_explicit_slot_and_alloc(table):
    ring = table
    need(ring, "socket_direct")
    _, cqe = run_op(ring, "socket_direct", socket.AF_INET, socket.SOCK_STREAM, 0, 6)
    assert cqe.res() == 0
    fd = install(ring, 6)
    s = socket.socket(fileno=fd)
    try:
        assert s.family == socket.AF_INET and s.type == socket.SOCK_STREAM
    finally:
        s.close()
    _, cqe = run_op(ring, "socket_direct", socket.AF_INET6, socket.SOCK_DGRAM)
    slot = cqe.getresult()
    assert 0 <= slot < 8 and slot != 6
    s = socket.socket(fileno=install(ring, slot))
    try:
        assert s.family == socket.AF_INET6 and s.type == socket.SOCK_DGRAM
    finally:
        s.close()


def test_socket_direct_without_table_is_enfile(ring):
    op_fails(ring, "socket_direct", errno.ENFILE, socket.AF_INET, socket.SOCK_STREAM)


def test_socket_direct_bad_family_is_eafnosupport(table):
    op_fails(table, "socket_direct", errno.EAFNOSUPPORT, 12345, socket.SOCK_STREAM)


def test_socket_direct_alloc(table):
    ring = table
    need(ring, "socket_direct_alloc")
    slots = []
    for _ in range(2):
        _, cqe = run_op(ring, "socket_direct_alloc", socket.AF_UNIX, socket.SOCK_DGRAM)
        slots.append(cqe.getresult())
    assert len(set(slots)) == 2 and all(0 <= s < 8 for s in slots)
    s = socket.socket(fileno=install(ring, slots[1]))
    try:
        assert s.family == socket.AF_UNIX and s.type == socket.SOCK_DGRAM
    finally:
        s.close()


def test_socket_direct_alloc_without_table_is_enfile(ring):
    op_fails(ring, "socket_direct_alloc", errno.ENFILE, socket.AF_INET, socket.SOCK_STREAM)


def test_socket_direct_alloc_full_table_is_enfile(ring):
    need(ring, "socket_direct_alloc")
    ring.register_files_sparse(1)
    _, cqe = run_op(ring, "socket_direct_alloc", socket.AF_INET, socket.SOCK_STREAM)
    assert cqe.getresult() == 0
    op_fails(ring, "socket_direct_alloc", errno.ENFILE, socket.AF_INET, socket.SOCK_STREAM)


def test_shutdown_write_side_gives_peer_eof(ring, tcp_pair):
    need(ring, "shutdown")
    client, server = tcp_pair
    client.sendall(b"last words")
    _, cqe = run_op(ring, "shutdown", client, socket.SHUT_WR)
    assert cqe.getresult() == 0
    server.settimeout(WAIT)
    assert recv_all(server, 10) == b"last words"
    assert server.recv(10) == b""
    with pytest.raises(BrokenPipeError):
        client.send(b"more")


def test_shutdown_unconnected_is_enotconn(ring):
    with socket.socket() as s:
        op_fails(ring, "shutdown", errno.ENOTCONN, s, socket.SHUT_RDWR)


def test_shutdown_non_socket_is_enotsock(ring, rfd):
    op_fails(ring, "shutdown", errno.ENOTSOCK, rfd, socket.SHUT_RDWR)


def test_bind_and_listen_on_fresh_socket(ring):
    need(ring, "bind", "listen")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        _, cqe = run_op(ring, "bind", s, ("127.0.0.1", 0))
        assert cqe.getresult() == 0
        host, port = s.getsockname()
        assert host == "127.0.0.1" and port > 0
        _, cqe = run_op(ring, "listen", s, 4)
        assert cqe.getresult() == 0
        with socket.create_connection((host, port), timeout=WAIT) as c:
            conn, addr = s.accept()
            with conn:
                assert addr == c.getsockname()
    finally:
        s.close()


def test_bind_ipv6_and_unix(ring, tmp_path):
    need(ring, "bind")
    if socket.has_ipv6:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            _, cqe = run_op(ring, "bind", s6, ("::1", 0))
            if cqe.res() != -errno.EADDRNOTAVAIL:  # no ::1 in this sandbox
                assert cqe.res() == 0
                assert s6.getsockname()[0] == "::1"
        finally:
            s6.close()
    su = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        path = str(tmp_path / "sock")
        _, cqe = run_op(ring, "bind", su, path)
        assert cqe.res() == 0
        assert su.getsockname() == path
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        su.close()


def test_bind_address_in_use_is_eaddrinuse(ring, listener):
    with socket.socket() as s:
        op_fails(ring, "bind", errno.EADDRINUSE, s, listener.getsockname())


def test_bind_twice_is_einval(ring):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        op_fails(ring, "bind", errno.EINVAL, s, ("127.0.0.1", 0))


def test_listen_on_udp_is_eopnotsupp(ring):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        op_fails(ring, "listen", errno.EOPNOTSUPP, s)


def test_listen_closed_fd_is_ebadf(ring):
    op_fails(ring, "listen", errno.EBADF, closed_fd())


# --------------------------------------------------------------------------
# accept_direct, multishot_accept, multishot_accept_direct


def test_accept_direct(table, listener):
    ring = table
    need(ring, "accept_direct")
    client = socket.create_connection(listener.getsockname(), timeout=WAIT)
    try:
        sqe, cqe = run_op(ring, "accept_direct", listener)
        slot = cqe.getresult()
        assert 0 <= slot < 8
        assert sqe.convert_address() == client.getsockname()
        # send through the slot, receive on the client
        s = prep(ring, "send", slot, b"direct hello")
        s.set_flags(IOSQE_FIXED_FILE)
        ring.submit()
        assert wait_one(ring).getresult() == 12
        assert recv_all(client, 12) == b"direct hello"
    finally:
        client.close()


def test_accept_direct_explicit_slot(table, listener):
    ring = table
    need(ring, "accept_direct")
    client = socket.create_connection(listener.getsockname(), timeout=WAIT)
    try:
        _, cqe = run_op(ring, "accept_direct", listener, 0, 3)
        assert cqe.res() == 0
        conn = socket.socket(fileno=install(ring, 3))
        with conn:
            assert conn.getpeername() == client.getsockname()
    finally:
        client.close()


def test_accept_direct_on_non_listening_socket_is_einval(table):
    with socket.socket() as s:
        op_fails(table, "accept_direct", errno.EINVAL, s)


def test_accept_direct_without_table_is_enfile(ring, listener):
    need(ring, "accept_direct")
    client = socket.create_connection(listener.getsockname(), timeout=WAIT)
    try:
        op_fails(ring, "accept_direct", errno.ENFILE, listener)
    finally:
        client.close()


def test_multishot_accept_two_connections(ring, listener):
    need(ring, "multishot_accept")
    sqe = prep(ring, "multishot_accept", listener, tag="acc")
    ring.submit()
    clients = [socket.create_connection(listener.getsockname(), timeout=WAIT) for _ in range(2)]
    conns = []
    try:
        for c in clients:
            cqe = wait_one(ring)
            assert cqe.get_data() == "acc"
            assert cqe.flags() & IORING_CQE_F_MORE
            conns.append(socket.socket(fileno=cqe.getresult()))
        assert sorted(x.getpeername() for x in conns) == sorted(c.getsockname() for c in clients)
        assert cancel_multishot(ring, sqe) == []
    finally:
        for s in conns + clients:
            s.close()


def test_multishot_accept_on_non_listening_socket_is_einval(ring):
    with socket.socket() as s:
        op_fails(ring, "multishot_accept", errno.EINVAL, s)


def test_multishot_accept_direct(table, listener):
    ring = table
    need(ring, "multishot_accept_direct")
    sqe = prep(ring, "multishot_accept_direct", listener)
    ring.submit()
    clients = [socket.create_connection(listener.getsockname(), timeout=WAIT) for _ in range(2)]
    try:
        slots = []
        for _ in clients:
            cqe = wait_one(ring)
            assert cqe.flags() & IORING_CQE_F_MORE
            slots.append(cqe.getresult())
        assert len(set(slots)) == 2 and all(0 <= s < 8 for s in slots)
        peers = []
        for slot in slots:
            with socket.socket(fileno=install(ring, slot)) as conn:
                peers.append(conn.getpeername())
        assert sorted(peers) == sorted(c.getsockname() for c in clients)
        cancel_multishot(ring, sqe)
    finally:
        for c in clients:
            c.close()


def test_multishot_accept_direct_on_non_listening_socket_is_einval(table):
    with socket.socket() as s:
        op_fails(table, "multishot_accept_direct", errno.EINVAL, s)


# --------------------------------------------------------------------------
# recv_multishot, recvmsg_multishot, read_multishot (buffer rings)


def test_recv_multishot_with_buffer_ring(ring, tcp_pair):
    need(ring, "recv_multishot")
    client, server = tcp_pair
    ring.setup_buf_ring(7, 4, 64)
    sqe = prep(ring, "recv_multishot", server, tag="rm")
    sqe.set_buf_group(7)
    ring.submit()
    for i in range(3):
        msg = b"message %d" % i
        client.sendall(msg)
        cqe = wait_one(ring)
        assert cqe.get_data() == "rm"
        assert cqe.flags() & IORING_CQE_F_MORE
        assert cqe.flags() & IORING_CQE_F_BUFFER
        assert (cqe.flags() >> IORING_CQE_BUFFER_SHIFT) < 4
        assert cqe.getresult() == msg
        assert cqe.res() == len(msg)
    cancel_multishot(ring, sqe)
    ring.free_buf_ring(7)


def test_recv_multishot_ends_at_peer_close(ring, tcp_pair):
    need(ring, "recv_multishot")
    client, server = tcp_pair
    ring.setup_buf_ring(2, 4, 128)
    sqe = prep(ring, "recv_multishot", server)
    sqe.set_buf_group(2)
    ring.submit()
    client.sendall(b"bye")
    assert wait_one(ring).getresult() == b"bye"
    client.close()
    last = wait_one(ring)
    assert last.res() == 0
    assert not last.flags() & IORING_CQE_F_MORE
    assert ring.in_flight() == 0


def test_recv_multishot_without_buffers_is_enobufs(ring, tcp_pair):
    need(ring, "recv_multishot")
    client, server = tcp_pair
    client.sendall(b"data")
    sqe = prep(ring, "recv_multishot", server)
    sqe.set_buf_group(99)  # no buffers in group 99
    ring.submit()
    cqe = wait_one(ring)
    assert not cqe.flags() & IORING_CQE_F_MORE
    assert_fails(cqe, errno.ENOBUFS)


def test_recv_multishot_closed_fd_is_ebadf(ring):
    need(ring, "recv_multishot")
    ring.setup_buf_ring(1, 4, 64)
    sqe = prep(ring, "recv_multishot", closed_fd())
    sqe.set_buf_group(1)
    ring.submit()
    assert_fails(wait_one(ring), errno.EBADF)


def parse_recvmsg_out(buf, namelen_room, controllen_room=0):
    """Split a recvmsg_multishot buffer: io_uring_recvmsg_out, name,
    control, payload (io_uring_recvmsg_validate(3))."""
    namelen, controllen, payloadlen, flags = struct.unpack_from("IIII", buf, 0)
    name = buf[16:16 + min(namelen, namelen_room)]
    off = 16 + namelen_room + controllen_room
    payload = buf[off:off + payloadlen]
    return name, payload, payloadlen, flags


def test_recvmsg_multishot_udp(ring, udp_pair):
    need(ring, "recvmsg_multishot")
    a, b = udp_pair
    ring.setup_buf_ring(3, 4, 512)
    sqe = prep(ring, "recvmsg_multishot", a)
    sqe.set_buf_group(3)
    ring.submit()
    for i in range(3):
        msg = b"datagram %d" % i
        b.sendto(msg, a.getsockname())
        cqe = wait_one(ring)
        assert cqe.flags() & IORING_CQE_F_MORE
        data = cqe.getresult()
        assert isinstance(data, bytes) and len(data) == cqe.res()
        # the msghdr the module builds has room for a sockaddr_storage name
        name, payload, payloadlen, flags = parse_recvmsg_out(data, 128)
        assert payload == msg and payloadlen == len(msg)
        family, port = struct.unpack_from("=HH", name, 0)
        assert family == socket.AF_INET
        assert socket.ntohs(port) == b.getsockname()[1]
        assert socket.inet_ntoa(name[4:8]) == "127.0.0.1"
    cancel_multishot(ring, sqe)


def test_recvmsg_multishot_closed_fd_is_ebadf(ring):
    need(ring, "recvmsg_multishot")
    ring.setup_buf_ring(1, 4, 256)
    sqe = prep(ring, "recvmsg_multishot", closed_fd())
    sqe.set_buf_group(1)
    ring.submit()
    assert_fails(wait_one(ring), errno.EBADF)


def test_read_multishot_from_pipe(ring, pipe):
    need(ring, "read_multishot")
    r, w = pipe
    ring.setup_buf_ring(4, 4, 32)
    sqe = prep(ring, "read_multishot", r)
    sqe.set_buf_group(4)
    ring.submit()
    for chunk in (b"first", b"second chunk", b"third"):
        os.write(w, chunk)
        cqe = wait_one(ring)
        assert cqe.flags() & IORING_CQE_F_MORE
        assert cqe.getresult() == chunk
    os.close(w)
    last = wait_one(ring)  # EOF ends the multishot
    assert last.res() == 0
    assert not last.flags() & IORING_CQE_F_MORE
    assert ring.in_flight() == 0


def test_read_multishot_cancel(ring, pipe):
    need(ring, "read_multishot")
    ring.setup_buf_ring(4, 4, 32)
    sqe = prep(ring, "read_multishot", pipe[0])
    sqe.set_buf_group(4)
    ring.submit()
    assert ring.wait_cqe(timeout=0.02) is None
    assert cancel_multishot(ring, sqe) == []


def test_read_multishot_nonzero_nbytes_is_einval(ring, pipe):
    # this kernel (io_read_mshot_prep) takes the length from the buffer only
    need(ring, "read_multishot")
    ring.setup_buf_ring(4, 4, 32)
    sqe = prep(ring, "read_multishot", pipe[0], 8)
    sqe.set_buf_group(4)
    ring.submit()
    assert_fails(wait_one(ring), errno.EINVAL)
    assert ring.in_flight() == 0


def test_read_multishot_of_regular_file_is_ebadfd(ring, rfd):
    need(ring, "read_multishot")
    ring.setup_buf_ring(4, 4, 32)
    sqe = prep(ring, "read_multishot", rfd)
    sqe.set_buf_group(4)
    ring.submit()
    assert_fails(wait_one(ring), errno.EBADFD)


def test_read_multishot_closed_fd_is_ebadf(ring):
    need(ring, "read_multishot")
    ring.setup_buf_ring(4, 4, 32)
    sqe = prep(ring, "read_multishot", closed_fd())
    sqe.set_buf_group(4)
    ring.submit()
    assert_fails(wait_one(ring), errno.EBADF)


# --------------------------------------------------------------------------
# sendto, sendmsg, recvmsg


def test_sendto_udp(ring, udp_pair):
    need(ring, "sendto")
    a, b = udp_pair
    _, cqe = run_op(ring, "sendto", a, b"to you", b.getsockname())
    assert cqe.getresult() == 6
    b.settimeout(WAIT)
    data, addr = b.recvfrom(100)
    assert data == b"to you" and addr == a.getsockname()


def test_sendto_unbound_udp_gets_an_address(ring, udp_pair):
    need(ring, "sendto")
    _, b = udp_pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        _, cqe = run_op(ring, "sendto", s, memoryview(b"xxpayloadxx")[2:9], b.getsockname(), 0)
        assert cqe.res() == 7
        b.settimeout(WAIT)
        data, addr = b.recvfrom(100)
        assert data == b"payload"
        assert addr[1] == s.getsockname()[1] != 0  # the kernel bound it


def test_sendto_udp_port_zero_is_einval(ring, udp_pair):
    a, _ = udp_pair
    op_fails(ring, "sendto", errno.EINVAL, a, b"x", ("127.0.0.1", 0))


def test_sendto_non_socket_is_enotsock(ring, rfd):
    op_fails(ring, "sendto", errno.ENOTSOCK, rfd, b"x", ("127.0.0.1", 9))


def test_sendto_closed_fd_is_ebadf(ring):
    op_fails(ring, "sendto", errno.EBADF, closed_fd(), b"x", ("127.0.0.1", 9))


def test_sendmsg_several_buffers(ring, tcp_pair):
    need(ring, "sendmsg")
    client, server = tcp_pair
    _, cqe = run_op(ring, "sendmsg", client, [b"one ", bytearray(b"two "), memoryview(b"three")])
    assert cqe.getresult() == 13
    assert recv_all(server, 13) == b"one two three"


def test_sendmsg_scm_rights_passes_fd(ring, unix_pair, pipe):
    need(ring, "sendmsg")
    a, b = unix_pair
    r, w = pipe
    fds = array.array("i", [r])
    _, cqe = run_op(ring, "sendmsg", a, [b"fd!"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    assert cqe.getresult() == 3
    b.settimeout(WAIT)
    msg, anc, flags, _ = b.recvmsg(16, socket.CMSG_SPACE(4))
    assert msg == b"fd!"
    assert len(anc) == 1
    level, typ, data = anc[0]
    assert (level, typ) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    newfd = array.array("i", data[:4])[0]
    try:
        assert newfd != r
        assert os.fstat(newfd).st_ino == os.fstat(r).st_ino
        os.write(w, b"via passed fd")
        assert os.read(newfd, 100) == b"via passed fd"
    finally:
        os.close(newfd)


def test_sendmsg_with_address_on_udp(ring, udp_pair):
    need(ring, "sendmsg")
    a, b = udp_pair
    _, cqe = run_op(ring, "sendmsg", a, [b"dgram ", b"parts"], (), 0, b.getsockname())
    assert cqe.getresult() == 11
    b.settimeout(WAIT)
    assert b.recvfrom(100) == (b"dgram parts", a.getsockname())


def test_sendmsg_unconnected_udp_without_address_is_edestaddrreq(ring):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        op_fails(ring, "sendmsg", errno.EDESTADDRREQ, s, [b"nowhere"])


def test_sendmsg_closed_fd_is_ebadf(ring):
    op_fails(ring, "sendmsg", errno.EBADF, closed_fd(), [b"x"])


def test_recvmsg_udp_gives_data_and_address(ring, udp_pair):
    need(ring, "recvmsg")
    a, b = udp_pair
    b.sendto(b"hello recvmsg", a.getsockname())
    _, cqe = run_op(ring, "recvmsg", a, 100)
    assert cqe.res() == 13
    data, anc, flags, addr = cqe.getresult()
    assert data == b"hello recvmsg"
    assert anc == []
    assert flags == 0
    assert addr == b.getsockname()


def test_recvmsg_truncation_flag(ring, udp_pair):
    need(ring, "recvmsg")
    a, b = udp_pair
    b.sendto(b"0123456789", a.getsockname())
    _, cqe = run_op(ring, "recvmsg", a, 4)
    data, anc, flags, addr = cqe.getresult()
    assert data == b"0123"
    assert flags & socket.MSG_TRUNC


def test_recvmsg_receives_scm_rights(ring, unix_pair, pipe):
    need(ring, "recvmsg")
    a, b = unix_pair
    r, w = pipe
    a.sendmsg([b"take this"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))])
    _, cqe = run_op(ring, "recvmsg", b, 64, socket.CMSG_SPACE(4))
    data, anc, flags, addr = cqe.getresult()
    assert data == b"take this"
    assert len(anc) == 1 and anc[0][:2] == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    newfd = array.array("i", anc[0][2][:4])[0]
    try:
        os.write(newfd, b"written via received fd")
        assert os.read(r, 100) == b"written via received fd"
    finally:
        os.close(newfd)


def test_recvmsg_closed_fd_is_ebadf(ring):
    op_fails(ring, "recvmsg", errno.EBADF, closed_fd(), 16)


def test_recvmsg_non_socket_is_enotsock(ring, rfd):
    op_fails(ring, "recvmsg", errno.ENOTSOCK, rfd, 16)


# --------------------------------------------------------------------------
# zero-copy sends


def test_send_zc_tcp(ring, tcp_pair):
    need(ring, "send_zc")
    client, server = tcp_pair
    payload = bytes(range(256)) * 8
    sqe = prep(ring, "send_zc", client, payload, tag="zc")
    ring.submit()
    first, notif = finish_zc(ring, len(payload))
    assert first.get_data() == "zc" and notif.get_data() == "zc"
    assert first.getresult() == len(payload)
    assert recv_all(server, len(payload)) == payload
    assert ring.in_flight() == 0


def test_send_zc_unix_is_eopnotsupp(ring, unix_pair):
    need(ring, "send_zc")
    a, b = unix_pair
    prep(ring, "send_zc", a, b"x")
    ring.submit()
    first = wait_one(ring)
    assert_fails(first, errno.EOPNOTSUPP)
    # a notification follows when the first completion says so
    if first.flags() & IORING_CQE_F_MORE:
        assert wait_one(ring).flags() & IORING_CQE_F_NOTIF
    assert ring.in_flight() == 0


def test_sendmsg_zc_tcp(ring, tcp_pair):
    need(ring, "sendmsg_zc")
    client, server = tcp_pair
    prep(ring, "sendmsg_zc", client, [b"zero ", bytearray(b"copy "), b"msg"])
    ring.submit()
    finish_zc(ring, 13)
    assert recv_all(server, 13) == b"zero copy msg"


def test_sendmsg_zc_udp_with_address(ring, udp_pair):
    need(ring, "sendmsg_zc")
    a, b = udp_pair
    prep(ring, "sendmsg_zc", a, [b"zc dgram"], (), 0, b.getsockname())
    ring.submit()
    finish_zc(ring, 8)
    b.settimeout(WAIT)
    assert b.recvfrom(100) == (b"zc dgram", a.getsockname())


def test_sendmsg_zc_unix_is_eopnotsupp(ring, unix_pair):
    need(ring, "sendmsg_zc")
    a, b = unix_pair
    prep(ring, "sendmsg_zc", a, [b"x"])
    ring.submit()
    first = wait_one(ring)
    assert_fails(first, errno.EOPNOTSUPP)
    if first.flags() & IORING_CQE_F_MORE:
        assert wait_one(ring).flags() & IORING_CQE_F_NOTIF
    assert ring.in_flight() == 0


def test_send_zc_fixed(ring, tcp_pair):
    need(ring, "send_zc_fixed")
    client, server = tcp_pair
    reg = bytearray(b"registered zero-copy payload")
    ring.register_buffers([bytearray(8), reg])
    mv = memoryview(reg)
    try:
        prep(ring, "send_zc_fixed", client, mv[11:20], buf_index=1)
        ring.submit()
        finish_zc(ring, 9)
        assert recv_all(server, 9) == b"zero-copy"
    finally:
        mv.release()
        ring.unregister_buffers()


def test_send_zc_fixed_outside_registered_buffer_is_efault(ring, tcp_pair):
    need(ring, "send_zc_fixed")
    client, server = tcp_pair
    ring.register_buffers([bytearray(64)])
    try:
        prep(ring, "send_zc_fixed", client, bytearray(b"not registered"), buf_index=0)
        ring.submit()
        first = wait_one(ring)
        assert_fails(first, errno.EFAULT)
        if first.flags() & IORING_CQE_F_MORE:
            assert wait_one(ring).flags() & IORING_CQE_F_NOTIF
    finally:
        ring.unregister_buffers()
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(10)


# --------------------------------------------------------------------------
# poll_add, poll_multishot, poll_remove, poll_update


def test_poll_add_waits_for_readable(ring, pipe):
    need(ring, "poll_add")
    r, w = pipe
    prep(ring, "poll_add", r, select.POLLIN, tag="p")
    ring.submit()
    assert ring.wait_cqe(timeout=0.02) is None
    os.write(w, b"x")
    cqe = wait_one(ring)
    assert cqe.get_data() == "p"
    assert cqe.getresult() & select.POLLIN
    assert os.read(r, 1) == b"x"  # poll consumed nothing


def test_poll_add_writable_immediately(ring, pipe):
    need(ring, "poll_add")
    _, cqe = run_op(ring, "poll_add", pipe[1], select.POLLOUT)
    assert cqe.getresult() & select.POLLOUT


def test_poll_add_reports_hangup(ring, pipe):
    need(ring, "poll_add")
    r, w = pipe
    os.close(w)
    _, cqe = run_op(ring, "poll_add", r, select.POLLIN)
    assert cqe.getresult() & select.POLLHUP


def test_poll_add_closed_fd_is_ebadf(ring):
    op_fails(ring, "poll_add", errno.EBADF, closed_fd(), select.POLLIN)


def test_poll_multishot_reports_repeatedly(ring, tcp_pair):
    need(ring, "poll_multishot", "poll_remove")
    client, server = tcp_pair
    sqe = prep(ring, "poll_multishot", server, select.POLLIN)
    ring.submit()
    for i in range(3):
        client.send(b"%d" % i)
        cqe = wait_one(ring)
        assert cqe.flags() & IORING_CQE_F_MORE
        assert cqe.getresult() & select.POLLIN
        assert server.recv(10) == b"%d" % i  # drain, so the next send is a new event
    prep(ring, "poll_remove", sqe, tag="rm")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["rm"].res() == 0
    assert cqes[None].res() == -errno.ECANCELED
    assert not cqes[None].flags() & IORING_CQE_F_MORE


def test_poll_multishot_closed_fd_is_ebadf(ring):
    op_fails(ring, "poll_multishot", errno.EBADF, closed_fd(), select.POLLIN)


def test_poll_remove_pending_poll(ring, pipe):
    need(ring, "poll_add", "poll_remove")
    target = prep(ring, "poll_add", pipe[0], select.POLLIN, tag="poll")
    ring.submit()
    prep(ring, "poll_remove", target, tag="remove")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["remove"].getresult() == 0
    assert_fails(cqes["poll"], errno.ECANCELED)
    assert ring.in_flight() == 0


def test_poll_remove_of_completed_poll_is_enoent(ring, pipe):
    need(ring, "poll_add", "poll_remove")
    target, cqe = run_op(ring, "poll_add", pipe[1], select.POLLOUT)
    assert cqe.res() & select.POLLOUT
    op_fails(ring, "poll_remove", errno.ENOENT, target)



def test_poll_update_changes_mask(ring, tcp_pair):
    need(ring, "poll_add", "poll_update")
    client, server = tcp_pair
    # POLLPRI never fires on this socket; switch the poll to POLLOUT (ready)
    target = prep(ring, "poll_add", server, select.POLLPRI, tag="poll")
    ring.submit()
    assert ring.wait_cqe(timeout=0.02) is None
    prep(ring, "poll_update", target, select.POLLOUT, tag="update")
    ring.submit()
    first = wait_one(ring)
    assert first.get_data() == "update", first.get_data()
    assert first.getresult() == 0
    poll = wait_one(ring)
    assert poll.get_data() == "poll"
    assert poll.getresult() & select.POLLOUT
    assert not poll.getresult() & select.POLLPRI


def test_poll_update_add_multi_alone_is_einval(ring, pipe):
    # IORING_POLL_ADD_MULTI without an update is meaningless to the kernel
    need(ring, "poll_add", "poll_update")
    target = prep(ring, "poll_add", pipe[0], select.POLLIN, tag="poll")
    ring.submit()
    op_fails(ring, "poll_update", errno.EINVAL, target, select.POLLIN,
             py_io_uring.IORING_POLL_ADD_MULTI)
    assert ring.in_flight() == 1  # the poll is still pending
    os.write(pipe[1], b"x")
    assert wait_one(ring).getresult() & select.POLLIN


def test_poll_update_of_completed_poll_is_enoent(ring, pipe):
    need(ring, "poll_add", "poll_update")
    target, cqe = run_op(ring, "poll_add", pipe[1], select.POLLOUT)
    assert cqe.res() & select.POLLOUT
    op_fails(ring, "poll_update", errno.ENOENT, target, select.POLLIN)


# --------------------------------------------------------------------------
# epoll_ctl, epoll_wait


def test_epoll_ctl_add_mod_del(ring, pipe):
    need(ring, "epoll_ctl")
    r, w = pipe
    ep = select.epoll()
    try:
        _, cqe = run_op(ring, "epoll_ctl", ep, r, py_io_uring.EPOLL_CTL_ADD, select.EPOLLIN)
        assert cqe.getresult() == 0
        assert ep.poll(0) == []
        os.write(w, b"x")
        assert ep.poll(0) == [(r, select.EPOLLIN)]
        _, cqe = run_op(ring, "epoll_ctl", ep.fileno(), r, py_io_uring.EPOLL_CTL_MOD,
                        select.EPOLLOUT)
        assert cqe.res() == 0
        assert ep.poll(0) == []
        _, cqe = run_op(ring, "epoll_ctl", ep, r, py_io_uring.EPOLL_CTL_DEL)
        assert cqe.res() == 0
        with pytest.raises(FileNotFoundError):
            ep.unregister(r)  # it is no longer there
    finally:
        ep.close()


def test_epoll_ctl_add_twice_is_eexist(ring, pipe):
    ep = select.epoll()
    try:
        ep.register(pipe[0], select.EPOLLIN)
        op_fails(ring, "epoll_ctl", errno.EEXIST, ep, pipe[0], py_io_uring.EPOLL_CTL_ADD,
                 select.EPOLLIN, exc_type=FileExistsError)
    finally:
        ep.close()


def test_epoll_ctl_del_unregistered_is_enoent(ring, pipe):
    ep = select.epoll()
    try:
        op_fails(ring, "epoll_ctl", errno.ENOENT, ep, pipe[0], py_io_uring.EPOLL_CTL_DEL,
                 exc_type=FileNotFoundError)
    finally:
        ep.close()


def test_epoll_wait_returns_ready_fds(ring):
    need(ring, "epoll_wait")
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    ep = select.epoll()
    try:
        ep.register(r1, select.EPOLLIN)
        ep.register(r2, select.EPOLLIN)
        prep(ring, "epoll_wait", ep, tag="ew")
        ring.submit()
        assert ring.wait_cqe(timeout=0.02) is None  # nothing ready yet
        os.write(w2, b"x")
        cqe = wait_one(ring)
        assert cqe.res() == 1
        assert cqe.getresult() == [(r2, select.EPOLLIN)]
        os.write(w1, b"y")
        _, cqe = run_op(ring, "epoll_wait", ep, 8)
        assert sorted(cqe.getresult()) == sorted([(r1, select.EPOLLIN), (r2, select.EPOLLIN)])
        _, cqe = run_op(ring, "epoll_wait", ep, 1)
        assert cqe.res() == 1 and len(cqe.getresult()) == 1
    finally:
        ep.close()
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_epoll_wait_on_non_epoll_fd_is_einval(ring, pipe):
    op_fails(ring, "epoll_wait", errno.EINVAL, pipe[0])


def test_epoll_wait_closed_fd_is_ebadf(ring):
    op_fails(ring, "epoll_wait", errno.EBADF, closed_fd())


# --------------------------------------------------------------------------
# link_timeout, timeout_update, cancel64, cancel_fd


def test_link_timeout_fires(ring, tcp_pair):
    need(ring, "link_timeout")
    client, server = tcp_pair
    recv = prep(ring, "recv", server, 16, tag="recv")
    recv.set_flags(IOSQE_IO_LINK)
    prep(ring, "link_timeout", 0.02, tag="lt")
    ring.submit()
    t0 = time.monotonic()
    cqes = by_data(wait_n(ring, 2))
    assert time.monotonic() - t0 < 2
    assert_fails(cqes["recv"], errno.ECANCELED)
    assert cqes["lt"].res() == -errno.ETIME
    with pytest.raises(TimeoutError):
        cqes["lt"].getresult()


def test_link_timeout_not_reached(ring, tcp_pair):
    need(ring, "link_timeout")
    client, server = tcp_pair
    client.sendall(b"in time")
    recv = prep(ring, "recv", server, 16, tag="recv")
    recv.set_flags(IOSQE_IO_LINK)
    prep(ring, "link_timeout", 5, tag="lt")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["recv"].getresult() == b"in time"
    assert cqes["lt"].res() == -errno.ECANCELED


def test_link_timeout_without_linked_op_is_einval(ring):
    op_fails(ring, "link_timeout", errno.EINVAL, 0.01)


def test_timeout_update_shortens_pending_timeout(ring):
    need(ring, "timeout_update")
    t = prep(ring, "timeout", 30, tag="t")
    ring.submit()
    t0 = time.monotonic()
    prep(ring, "timeout_update", t, 0.01, tag="upd")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert time.monotonic() - t0 < 2
    assert cqes["upd"].getresult() == 0
    assert cqes["t"].res() == -errno.ETIME


def test_timeout_update_of_completed_timeout_is_enoent(ring):
    need(ring, "timeout_update")
    t, cqe = run_op(ring, "timeout", 0.001)
    assert cqe.res() == -errno.ETIME
    op_fails(ring, "timeout_update", errno.ENOENT, t, 1)


def test_cancel64_by_user_data(ring, pipe):
    need(ring, "cancel64")
    target = prep(ring, "read", pipe[0], 10, tag="read")
    ring.submit()
    prep(ring, "cancel64", target.user_data(), tag="cancel")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["cancel"].getresult() == 0
    assert_fails(cqes["read"], errno.ECANCELED)
    assert cqes["read"].user_data() == target.user_data()


def test_cancel64_unknown_user_data_is_enoent(ring):
    need(ring, "cancel64")
    done, _ = run_op(ring, "nop")
    op_fails(ring, "cancel64", errno.ENOENT, done.user_data())


def test_cancel_fd_cancels_by_fd(ring, tcp_pair):
    need(ring, "cancel_fd")
    client, server = tcp_pair
    prep(ring, "recv", server, 16, tag="r1")
    prep(ring, "recv", server, 16, tag="r2")
    ring.submit()
    prep(ring, "cancel_fd", server, py_io_uring.IORING_ASYNC_CANCEL_ALL, tag="cancel")
    ring.submit()
    cqes = by_data(wait_n(ring, 3))
    assert cqes["cancel"].getresult() == 2
    assert_fails(cqes["r1"], errno.ECANCELED)
    assert_fails(cqes["r2"], errno.ECANCELED)


def test_cancel_fd_single(ring, tcp_pair, pipe):
    need(ring, "cancel_fd")
    client, server = tcp_pair
    prep(ring, "recv", server, 16, tag="sock")
    prep(ring, "read", pipe[0], 16, tag="pipe")
    ring.submit()
    prep(ring, "cancel_fd", server.fileno(), tag="cancel")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["cancel"].res() == 0
    assert_fails(cqes["sock"], errno.ECANCELED)
    assert ring.in_flight() == 1  # the pipe read is untouched
    os.write(pipe[1], b"still here")
    assert wait_one(ring).getresult() == b"still here"


def test_cancel_fd_nothing_to_cancel_is_enoent(ring, pipe):
    op_fails(ring, "cancel_fd", errno.ENOENT, pipe[0])


# --------------------------------------------------------------------------
# msg_ring


def test_msg_ring_posts_completion_to_other_ring(ring):
    need(ring, "msg_ring")
    other = py_io_uring.IoUring(8)
    try:
        _, cqe = run_op(ring, "msg_ring", other, 1234, 0xDEADBEEF)
        assert cqe.getresult() == 0
        got = None
        deadline = time.monotonic() + WAIT
        while got is None and time.monotonic() < deadline:
            got = other.peek_cqe()
            if got is None:
                time.sleep(0.001)
        assert got is not None, "no message within %s s" % WAIT
        other.cqe_seen(got)
        assert got.res() == 1234
        assert got.user_data() == 0xDEADBEEF
        assert got.get_data() is None
        assert got.getresult() == 1234
        assert other.peek_cqe() is None
        assert other.in_flight() == 0
    finally:
        other.queue_exit()


def test_msg_ring_to_itself_by_fileno(ring):
    need(ring, "msg_ring")
    prep(ring, "msg_ring", ring.fileno(), 7, 42, tag="sender")
    ring.submit()
    cqes = wait_n(ring, 2)
    mine = [c for c in cqes if c.get_data() == "sender"]
    msg = [c for c in cqes if c.get_data() is None]
    assert len(mine) == 1 and len(msg) == 1
    assert mine[0].res() == 0
    assert msg[0].res() == 7 and msg[0].user_data() == 42


def test_msg_ring_to_non_ring_is_ebadfd(ring, pipe):
    op_fails(ring, "msg_ring", errno.EBADFD, pipe[0], 1, 2)


def test_msg_ring_closed_fd_is_ebadf(ring):
    op_fails(ring, "msg_ring", errno.EBADF, closed_fd(), 1, 2)


# --------------------------------------------------------------------------
# provide_buffers, remove_buffers


def test_provide_buffers_and_recv_with_buffer_select(ring, unix_pair):
    need(ring, "provide_buffers")
    a, b = unix_pair
    pool = bytearray(4 * 64)
    _, cqe = run_op(ring, "provide_buffers", pool, 4, 11, 100)
    assert cqe.getresult() == 0
    used = set()
    for i in range(3):
        msg = b"provided %d" % i
        a.sendall(msg)
        sqe = prep(ring, "recv", b, bytearray(64))
        sqe.set_flags(IOSQE_BUFFER_SELECT)
        sqe.set_buf_group(11)
        ring.submit()
        c = wait_one(ring)
        assert c.res() == len(msg)
        assert c.flags() & IORING_CQE_F_BUFFER
        bid = c.flags() >> IORING_CQE_BUFFER_SHIFT
        assert 100 <= bid < 104 and bid not in used
        used.add(bid)
        k = bid - 100
        assert pool[k * 64:k * 64 + len(msg)] == msg
    # one buffer is left, then the group is empty
    _, cqe = run_op(ring, "remove_buffers", 10, 11)
    assert cqe.getresult() == 1



def test_provide_buffers_recv_int_length_result_is_the_data(ring, unix_pair):
    need(ring, "provide_buffers")
    a, b = unix_pair
    pool = bytearray(2 * 64)
    assert run_op(ring, "provide_buffers", pool, 2, 12)[1].res() == 0
    a.sendall(b"hello world")
    sqe = prep(ring, "recv", b, 64)
    sqe.set_flags(IOSQE_BUFFER_SELECT)
    sqe.set_buf_group(12)
    ring.submit()
    c = wait_one(ring)
    assert c.res() == 11
    bid = c.flags() >> IORING_CQE_BUFFER_SHIFT
    assert pool[bid * 64:bid * 64 + 11] == b"hello world"
    assert c.getresult() == b"hello world"


def test_provide_buffers_too_many_is_e2big(ring):
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
# waitid


def fork():
    """os.fork(), without 3.12+'s warning about forking a process with
    threads (io_uring's workers are threads; the children here only exit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def test_waitid_child_exit_code(ring):
    need(ring, "waitid")
    pid = fork()
    if pid == 0:
        os._exit(7)
    _, cqe = run_op(ring, "waitid", os.P_PID, pid, os.WEXITED)
    assert cqe.res() == 0
    res = cqe.getresult()
    assert isinstance(res, os.waitid_result)
    assert res.si_pid == pid
    assert res.si_status == 7
    assert res.si_code == os.CLD_EXITED
    assert res.si_signo == 17  # SIGCHLD
    assert res.si_uid == os.getuid()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)  # already reaped


def test_waitid_wnohang_running_child_gives_none(ring):
    need(ring, "waitid")
    r, w = os.pipe()
    pid = fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(3)
    os.close(r)
    try:
        _, cqe = run_op(ring, "waitid", os.P_PID, pid, os.WEXITED | os.WNOHANG)
        assert cqe.res() == 0
        assert cqe.getresult() is None
    finally:
        os.close(w)
        _, status = os.waitpid(pid, 0)
    assert exit_code(status) == 3


def test_waitid_async_while_child_runs(ring):
    need(ring, "waitid")
    r, w = os.pipe()
    pid = fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(11)
    os.close(r)
    try:
        prep(ring, "waitid", os.P_PID, pid, os.WEXITED)
        ring.submit()
        assert ring.wait_cqe(timeout=0.02) is None
    finally:
        os.close(w)  # the child exits now
    res = wait_one(ring).getresult()
    assert (res.si_pid, res.si_status, res.si_code) == (pid, 11, os.CLD_EXITED)


def test_waitid_not_a_child_is_echild(ring):
    op_fails(ring, "waitid", errno.ECHILD, os.P_PID, 1, os.WEXITED, exc_type=ChildProcessError)


def test_waitid_bad_options_is_einval(ring):
    op_fails(ring, "waitid", errno.EINVAL, os.P_PID, os.getpid(), 0)


# --------------------------------------------------------------------------
# futex_wait, futex_wake


@pytest.fixture
def futex_word():
    m = mmap.mmap(-1, 4096)
    mv = memoryview(m)
    word = mv[0:4]
    yield m, word
    word.release()
    mv.release()
    m.close()


def test_futex_wait_then_wake(ring, futex_word):
    need(ring, "futex_wait", "futex_wake")
    m, word = futex_word
    prep(ring, "futex_wait", word, 0, tag="wait")
    ring.submit()
    assert ring.wait_cqe(timeout=0.02) is None  # value 0 == 0: it sleeps
    m[0:4] = struct.pack("I", 1)
    prep(ring, "futex_wake", word, 1, tag="wake")
    ring.submit()
    cqes = by_data(wait_n(ring, 2))
    assert cqes["wake"].getresult() == 1  # one waiter woken
    assert cqes["wait"].getresult() == 0


def test_futex_wake_without_waiters_wakes_none(ring, futex_word):
    need(ring, "futex_wake")
    _, cqe = run_op(ring, "futex_wake", futex_word[1], 10)
    assert cqe.getresult() == 0


def test_futex_wait_value_mismatch_is_eagain(ring, futex_word):
    m, word = futex_word
    m[0:4] = struct.pack("I", 5)
    op_fails(ring, "futex_wait", errno.EAGAIN, word, 4, exc_type=BlockingIOError)


def test_futex_wake_unaligned_is_refused(ring, futex_word):
    # The kernel would answer EINVAL; the prep refuses a misaligned word.
    m, _ = futex_word
    mv = memoryview(m)
    part = mv[1:5]
    try:
        with pytest.raises(ValueError, match="prep_futex_wake.*aligned"):
            ring.get_sqe().prep_futex_wake(part, 1)
    finally:
        part.release()
        mv.release()


def test_futex_wait_bad_flags_is_einval(ring, futex_word):
    op_fails(ring, "futex_wait", errno.EINVAL, futex_word[1], 0, flags=0x1000)


def test_futex_waitv_reports_the_woken_index(ring):
    need(ring, "futex_waitv", "futex_wake")
    m = mmap.mmap(-1, 4096)
    mv = memoryview(m)
    w0, w1 = mv[0:4], mv[64:68]
    try:
        prep(ring, "futex_waitv", [(w0, 0), (w1, 0, 2)], tag="waitv")
        ring.submit()
        assert ring.wait_cqe(timeout=0.02) is None  # both words hold 0: it sleeps
        prep(ring, "futex_wake", w1, 1, tag="wake")
        ring.submit()
        cqes = by_data(wait_n(ring, 2))
        assert cqes["wake"].getresult() == 1
        assert cqes["waitv"].getresult() == 1  # the second futex woke it
        del cqes
    finally:
        w0.release()
        w1.release()
        mv.release()
        m.close()


def test_futex_waitv_value_mismatch_is_eagain(ring, futex_word):
    m, word = futex_word
    m[0:4] = struct.pack("I", 9)
    op_fails(ring, "futex_waitv", errno.EAGAIN, [(word, 8)],
             exc_type=BlockingIOError)


def test_futex_waitv_nonzero_flags_is_einval(ring, futex_word):
    op_fails(ring, "futex_waitv", errno.EINVAL, [(futex_word[1], 0)], 1)


# --------------------------------------------------------------------------
# socket commands (IORING_OP_URING_CMD)


def test_cmd_siocinq_and_siocoutq(ring, tcp_pair):
    need(ring, "cmd_siocinq", "cmd_siocoutq")
    client, server = tcp_pair
    client.sendall(b"12345")
    deadline = time.monotonic() + 5
    while True:   # the bytes cross loopback asynchronously
        _, cqe = run_op(ring, "cmd_siocinq", server)
        if cqe.getresult() == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert cqe.getresult() == 5
    assert server.recv(5) == b"12345"
    _, cqe = run_op(ring, "cmd_siocinq", server)
    assert cqe.getresult() == 0
    _, cqe = run_op(ring, "cmd_siocoutq", client)
    assert cqe.getresult() == 0


def test_cmd_siocinq_on_a_file_is_eopnotsupp(ring, rfd):
    need(ring, "cmd_siocinq")
    op_fails(ring, "cmd_siocinq", errno.EOPNOTSUPP, rfd)


def test_cmd_getsockopt_matches_socket_getsockopt(ring, tcp_pair):
    need(ring, "cmd_getsockopt")
    _, server = tcp_pair
    _, cqe = run_op(ring, "cmd_getsockopt", server, socket.SOL_SOCKET, socket.SO_RCVBUF, 4)
    assert cqe.res() == 4
    assert struct.unpack("i", cqe.getresult())[0] == \
        server.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    buf = bytearray(4)
    _, cqe = run_op(ring, "cmd_getsockopt", server, socket.SOL_SOCKET, socket.SO_TYPE, buf)
    assert cqe.getresult() == 4
    assert struct.unpack("i", buf)[0] == socket.SOCK_STREAM


def test_cmd_getsockopt_closed_fd_is_ebadf(ring):
    need(ring, "cmd_getsockopt")
    op_fails(ring, "cmd_getsockopt", errno.EBADF, closed_fd(), socket.SOL_SOCKET,
             socket.SO_TYPE, 4)


def test_cmd_setsockopt_sets_the_option(ring, tcp_pair):
    need(ring, "cmd_setsockopt")
    _, server = tcp_pair
    assert server.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    _, cqe = run_op(ring, "cmd_setsockopt", server, socket.SOL_SOCKET,
                    socket.SO_KEEPALIVE, struct.pack("i", 1))
    assert cqe.getresult() == 0
    assert server.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


def test_cmd_setsockopt_bad_option_is_enoprotoopt(ring, tcp_pair):
    need(ring, "cmd_setsockopt")
    _, server = tcp_pair
    op_fails(ring, "cmd_setsockopt", errno.ENOPROTOOPT, server, socket.SOL_SOCKET,
             9999, struct.pack("i", 1))


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

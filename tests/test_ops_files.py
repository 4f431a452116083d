"""File operations of ops.def against the real kernel: read, write, readv,
writev, openat, openat2, close, statx, fsync, sync_file_range, fallocate,
fadvise, madvise, ftruncate, splice, tee, read_multishot, pipe, renameat,
unlinkat, mkdirat, symlinkat, linkat and their path forms, and the xattr
ops.  For each op at least one success with its data or effect checked and
at least one failure with its errno checked; a behaviour that every form of
an op shares runs through the `form` fixture (forms.py).  A closed fd is
test_ops_common.py's.  An op the running kernel lacks (not in
IoUring.probe()) is skipped."""

import array
import errno
import mmap
import os
import socket
import stat
import time

import pytest

import py_io_uring
from py_io_uring import AT_FDCWD, IORING_CQE_F_MORE

from op_helpers import cancel_multishot, op_fails
from uring_helpers import TMP_CONTENT, WAIT, assert_fails, closed_fd, need, prep, run_op, wait_one


# --------------------------------------------------------------------------
# read


def test_read_length_returns_bytes(ring, form, rfd):
    data, flags = form.run(ring, "read", rfd, 100, 0)
    assert type(data) is bytes
    assert data == TMP_CONTENT[:100]
    assert flags == form.noflags


def test_read_at_offset(ring, form, rfd):
    assert form.run(ring, "read", rfd, 50, 1000)[0] == TMP_CONTENT[1000:1050]


def test_read_short_at_end_of_file_gives_exactly_res_bytes(ring, form, rfd):
    assert form.run(ring, "read", rfd, 100, len(TMP_CONTENT) - 30)[0] == TMP_CONTENT[-30:]


def test_read_past_end_of_file_gives_empty_bytes(ring, form, rfd):
    assert form.run(ring, "read", rfd, 100, len(TMP_CONTENT) + 10)[0] == b""


def test_read_zero_length(ring, form, rfd):
    assert form.run(ring, "read", rfd, 0, 0)[0] == b""


def test_read_offset_minus_one_uses_and_advances_file_position(ring, form, rfd):
    os.lseek(rfd, 10, os.SEEK_SET)
    assert form.run(ring, "read", rfd, 5)[0] == TMP_CONTENT[10:15]  # default offset is -1
    assert os.lseek(rfd, 0, os.SEEK_CUR) == 15
    assert form.run(ring, "read", rfd, 5, -1)[0] == TMP_CONTENT[15:20]


def test_read_explicit_offset_leaves_file_position(ring, form, rfd):
    os.lseek(rfd, 7, os.SEEK_SET)
    assert form.run(ring, "read", rfd, 5, 100)[0] == TMP_CONTENT[100:105]
    assert os.lseek(rfd, 0, os.SEEK_CUR) == 7


def test_read_into_bytearray(ring, form, rfd):
    buf = bytearray(b"\xee" * 64)
    assert form.run(ring, "read", rfd, buf, 256) == (64, form.noflags)
    assert buf == TMP_CONTENT[256:320]


def test_read_into_bytearray_short_read_touches_only_res_bytes(ring, form, rfd):
    buf = bytearray(b"\xee" * 64)
    assert form.run(ring, "read", rfd, buf, len(TMP_CONTENT) - 10)[0] == 10
    assert buf == TMP_CONTENT[-10:] + b"\xee" * 54


def test_read_into_memoryview_slice(ring, form, rfd):
    buf = bytearray(b"\xee" * 32)
    assert form.run(ring, "read", rfd, memoryview(buf)[8:16], 0)[0] == 8
    assert buf == b"\xee" * 8 + TMP_CONTENT[:8] + b"\xee" * 16


def test_read_into_array(ring, form, rfd):
    arr = array.array("I", [0] * 8)
    assert form.run(ring, "read", rfd, arr, 0)[0] == 32
    assert arr.tobytes() == TMP_CONTENT[:32]


def test_read_into_mmap(ring, form, rfd):
    m = mmap.mmap(-1, 4096)
    try:
        assert form.run(ring, "read", rfd, m, 0)[0] == 4096
        assert m[:] == TMP_CONTENT
    finally:
        m.close()


def test_read_accepts_file_object(ring, form, tmp_file):
    with open(tmp_file, "rb") as f:
        assert form.run(ring, "read", f, 16, 16)[0] == TMP_CONTENT[16:32]


def test_read_from_pipe_waits_for_data(ring, form, pipe):
    r, w = pipe

    def late(ring_used):
        time.sleep(0.05)
        assert ring_used.cq_ready() == 0  # nothing to read yet
        os.write(w, b"late data")

    assert form.run(ring, "read", r, 100, after_submit=late)[0] == b"late data"


def test_read_from_write_only_fd_is_ebadf(ring, form, tmp_file):
    fd = os.open(tmp_file, os.O_WRONLY)
    try:
        assert form.run(ring, "read", fd, 10, 0)[0] == -errno.EBADF
    finally:
        os.close(fd)


def test_read_of_directory_is_eisdir(ring, form, tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert form.run(ring, "read", fd, 10, 0, raises=IsADirectoryError)[0] == -errno.EISDIR
    finally:
        os.close(fd)


def test_read_failure_into_buffer_raises_too(ring, form):
    buf = bytearray(8)
    assert form.run(ring, "read", closed_fd(), buf)[0] == -errno.EBADF
    assert buf == bytearray(8)


# --------------------------------------------------------------------------
# write


@pytest.mark.parametrize(
    "make",
    [
        lambda b: b,
        bytearray,
        memoryview,
        lambda b: memoryview(bytearray(b)),
        lambda b: array.array("B", b),
    ],
    ids=["bytes", "bytearray", "memoryview", "memoryview-bytearray", "array"],
)
def test_write_at_offset_then_pread(ring, form, wfd, make):
    payload = b"hello, io_uring"
    assert form.run(ring, "write", wfd, make(payload), 100) == (len(payload), form.noflags)
    assert os.pread(wfd, len(payload), 100) == payload
    assert os.pread(wfd, 100, 0) == b"\0" * 100  # the hole before it
    assert os.fstat(wfd).st_size == 100 + len(payload)
    # and read back through the same form
    assert form.run(ring, "read", wfd, len(payload), 100)[0] == payload


def test_write_from_mmap(ring, form, wfd):
    m = mmap.mmap(-1, 4096)
    try:
        m[:] = TMP_CONTENT
        assert form.run(ring, "write", wfd, m, 0)[0] == 4096
        assert os.pread(wfd, 4096, 0) == TMP_CONTENT
    finally:
        m.close()


def test_write_from_memoryview_slice(ring, form, wfd):
    assert form.run(ring, "write", wfd, memoryview(TMP_CONTENT)[10:20], 0)[0] == 10
    assert os.pread(wfd, 100, 0) == TMP_CONTENT[10:20]


def test_write_offset_minus_one_uses_and_advances_file_position(ring, form, wfd):
    os.write(wfd, b"abc")
    assert form.run(ring, "write", wfd, b"def")[0] == 3  # default offset -1
    assert form.run(ring, "write", wfd, b"ghi", -1)[0] == 3
    assert os.lseek(wfd, 0, os.SEEK_CUR) == 9
    assert os.pread(wfd, 100, 0) == b"abcdefghi"


def test_write_keywords(ring, form, wfd):
    # prep_many takes positional tuples: the form puts the keywords in place
    assert form.run(ring, "write", fd=wfd, data=b"kw", offset=5)[0] == 2
    assert os.pread(wfd, 2, 5) == b"kw"


def test_write_empty(ring, form, wfd):
    assert form.run(ring, "write", wfd, b"", 0)[0] == 0
    assert os.fstat(wfd).st_size == 0


def test_write_to_pipe(ring, form, pipe):
    r, w = pipe
    assert form.run(ring, "write", w, b"through the pipe")[0] == 16
    assert os.read(r, 100) == b"through the pipe"


def test_write_to_read_only_fd_is_ebadf(ring, form, tmp_file, pipe):
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        assert form.run(ring, "write", fd, b"nope", 0)[0] == -errno.EBADF
    finally:
        os.close(fd)
    assert tmp_file.read_bytes() == TMP_CONTENT
    # the read end of a pipe too
    assert form.run(ring, "write", pipe[0], b"x")[0] == -errno.EBADF


def test_write_to_broken_pipe_is_epipe(ring, form, pipe):
    r, w = pipe
    os.close(r)
    assert form.run(ring, "write", w, b"nobody listens", raises=BrokenPipeError)[0] == -errno.EPIPE


# --------------------------------------------------------------------------
# openat


@pytest.mark.parametrize("path_kind", ["str", "bytes", "pathlike"])
def test_openat_then_read_then_close(ring, form, tmp_file, path_kind):
    path = {"str": str(tmp_file), "bytes": os.fsencode(tmp_file), "pathlike": tmp_file}[path_kind]
    fd, flags = form.run(ring, "openat", AT_FDCWD, path, os.O_RDONLY)
    assert type(fd) is int and fd >= 0 and flags == form.noflags
    try:
        assert form.run(ring, "read", fd, 4096, 0)[0] == TMP_CONTENT
    except BaseException:
        os.close(fd)
        raise
    assert form.run(ring, "close", fd)[0] == 0
    with pytest.raises(OSError) as ei:
        os.fstat(fd)
    assert ei.value.errno == errno.EBADF


def test_openat_relative_to_directory_fd(ring, tmp_file):
    dfd = os.open(tmp_file.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _, cqe = run_op(ring, "openat", dfd, tmp_file.name)
        fd = cqe.getresult()
        try:
            assert os.read(fd, 8) == TMP_CONTENT[:8]
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def test_openat_default_flags_are_read_only(ring, tmp_file):
    _, cqe = run_op(ring, "openat", AT_FDCWD, tmp_file)
    fd = cqe.getresult()
    try:
        with pytest.raises(OSError):
            os.write(fd, b"x")
    finally:
        os.close(fd)


def test_openat_create_with_mode(ring, tmp_path):
    target = tmp_path / "new.txt"
    umask = os.umask(0o022)
    try:
        _, cqe = run_op(
            ring, "openat", dfd=AT_FDCWD, path=target, flags=os.O_CREAT | os.O_WRONLY | os.O_EXCL, mode=0o640
        )
    finally:
        os.umask(umask)
    fd = cqe.getresult()
    try:
        os.write(fd, b"created")
    finally:
        os.close(fd)
    assert target.read_bytes() == b"created"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_openat_create_default_mode_is_0o666_minus_umask(ring, tmp_path):
    target = tmp_path / "default-mode"
    umask = os.umask(0o022)
    try:
        _, cqe = run_op(ring, "openat", AT_FDCWD, target, os.O_CREAT | os.O_WRONLY)
    finally:
        os.umask(umask)
    os.close(cqe.getresult())
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


def test_openat_missing_file_is_enoent(ring, form, tmp_path):
    res, _ = form.run(ring, "openat", AT_FDCWD, tmp_path / "missing", os.O_RDONLY, raises=FileNotFoundError)
    assert res == -errno.ENOENT


def test_openat_exclusive_existing_is_eexist(ring, form, tmp_file):
    res, _ = form.run(ring, "openat", AT_FDCWD, tmp_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                      raises=FileExistsError)
    assert res == -errno.EEXIST


# --------------------------------------------------------------------------
# close


def test_close_fd(ring, tmp_file):
    fd = os.open(tmp_file, os.O_RDONLY)
    _, cqe = run_op(ring, "close", fd)
    assert cqe.res() == 0
    assert cqe.getresult() == 0
    with pytest.raises(OSError) as ei:
        os.fstat(fd)
    assert ei.value.errno == errno.EBADF


def test_close_object_with_fileno(ring):
    a, b = socket.socketpair()
    try:
        _, cqe = run_op(ring, "close", a)
        assert cqe.res() == 0
        # The object is not told: it still holds the number, which is closed.
        fd = a.detach()
        with pytest.raises(OSError):
            os.fstat(fd)
        # the peer sees EOF
        b.settimeout(WAIT)
        assert b.recv(10) == b""
    finally:
        b.close()


# --------------------------------------------------------------------------
# readv / writev


def test_readv_fills_buffers_in_order(ring, form, rfd):
    need(ring, "readv")
    a, b, c = bytearray(10), bytearray(20), bytearray(5)
    assert form.run(ring, "readv", rfd, [a, b, c], 100) == (35, form.noflags)
    assert bytes(a + b + c) == TMP_CONTENT[100:135]


def test_readv_current_position_and_short_read(ring, form, rfd):
    need(ring, "readv")
    os.lseek(rfd, len(TMP_CONTENT) - 7, os.SEEK_SET)
    a, b = bytearray(b"\xee" * 4), bytearray(b"\xee" * 8)
    assert form.run(ring, "readv", rfd, [a, b])[0] == 7
    assert a == TMP_CONTENT[-7:-3]
    assert b == TMP_CONTENT[-3:] + b"\xee" * 5
    assert os.lseek(rfd, 0, os.SEEK_CUR) == len(TMP_CONTENT)


def test_readv_of_directory_is_eisdir(ring, form, tmp_path):
    need(ring, "readv")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert form.run(ring, "readv", fd, [bytearray(4)], 0, raises=IsADirectoryError)[0] == -errno.EISDIR
    finally:
        os.close(fd)


def test_writev_writes_buffers_in_order(ring, form, wfd):
    need(ring, "writev")
    parts = [b"abc", bytearray(b"defg"), memoryview(b"__hij__")[2:5]]
    assert form.run(ring, "writev", wfd, parts, 5) == (10, form.noflags)
    assert os.pread(wfd, 100, 0) == b"\0" * 5 + b"abcdefghij"
    # and back through readv, a short last buffer
    a, b, c = bytearray(2), bytearray(5), bytearray(10)
    assert form.run(ring, "readv", wfd, [a, b, c], 5)[0] == 10
    assert (a, b, c[:3]) == (b"ab", b"cdefg", b"hij")


def test_readv2_and_writev2_are_readv_and_writev_with_rwf_flags(ring, form, wfd):
    # liburing's names: RWF_APPEND appends whatever the offset says
    need(ring, "writev2")
    os.pwrite(wfd, b"head", 0)
    rwf_append = getattr(os, "RWF_APPEND", 0x10)   # the os module has it from 3.10
    assert form.run(ring, "writev2", wfd, [b"+", b"tail"], 0, rwf_append)[0] == 5
    assert os.pread(wfd, 100, 0) == b"head+tail"
    a, b = bytearray(4), bytearray(5)
    assert form.run(ring, "readv2", wfd, [a, b], 0, 0)[0] == 9
    assert (a, b) == (b"head", b"+tail")


def test_writev_read_only_fd_is_ebadf(ring, form, rfd, tmp_file):
    need(ring, "writev")
    assert form.run(ring, "writev", rfd, [b"nope"], 0)[0] == -errno.EBADF
    assert tmp_file.read_bytes() == TMP_CONTENT


# --------------------------------------------------------------------------
# fsync / sync_file_range / fallocate / fadvise / madvise / ftruncate


@pytest.mark.parametrize("flags", [0, py_io_uring.IORING_FSYNC_DATASYNC])
def test_fsync_after_write(ring, wfd, flags):
    need(ring, "fsync")
    os.write(wfd, b"durable")
    _, cqe = run_op(ring, "fsync", wfd, flags)
    assert cqe.res() == 0 and cqe.getresult() == 0
    assert os.pread(wfd, 100, 0) == b"durable"


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


PAGE = mmap.PAGESIZE
GIB4 = 1 << 32


def _page_cached(fd, off):
    """Is the file page at off in the page cache?  mincore(2) on a mapping
    of it that is never touched (a mapped page could not be dropped)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    m = mmap.mmap(fd, PAGE, offset=off)
    try:
        view = (ctypes.c_char * PAGE).from_buffer(m)
        vec = (ctypes.c_ubyte * 1)()
        rc = libc.mincore(ctypes.addressof(view), PAGE, vec)
        del view
        assert rc == 0, ctypes.get_errno()
        return bool(vec[0] & 1)
    finally:
        m.close()


@pytest.mark.parametrize("op", ["fadvise", "fadvise64"])
def test_fadvise_length_past_4_gib_reaches_the_kernel_whole(ring, tmp_path, op):
    # the issue's reproducer: liburing 2.3's helper cut the length to 32
    # bits, so DONTNEED over [0, 4 GiB + 2 pages) left a page past 4 GiB
    # cached (os.posix_fadvise dropped it).  Linux 6.7+ reads the 64-bit field
    need(ring, op)
    fd = os.open(tmp_path / "big", os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, GIB4 + 2 * PAGE)            # sparse: one page written
        os.pwrite(fd, b"x" * PAGE, GIB4 + PAGE)
        os.fsync(fd)
        assert os.pread(fd, 4, GIB4 + PAGE) == b"xxxx"
        assert _page_cached(fd, GIB4 + PAGE)
        _, cqe = run_op(ring, op, fd, 0, GIB4 + 2 * PAGE, os.POSIX_FADV_DONTNEED)
        assert cqe.res() == 0
        assert not _page_cached(fd, GIB4 + PAGE)
    finally:
        os.close(fd)


@pytest.mark.parametrize("op", ["madvise", "madvise64"])
def test_madvise_range_past_4_gib(ring, op):
    # was an OverflowError: the 32-bit length field could not hold it
    need(ring, op)
    m = mmap.mmap(-1, GIB4 + PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS |
                  getattr(mmap, "MAP_NORESERVE", 0x4000))
    try:
        m[GIB4:GIB4 + 4] = b"last"                   # touches one page only
        _, cqe = run_op(ring, op, m, mmap.MADV_DONTNEED)
        assert cqe.res() == 0
        assert m[GIB4:GIB4 + 4] == bytes(4)          # the last page was dropped
        del cqe, _
    finally:
        m.close()


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


@pytest.mark.parametrize("path_kind", [str, lambda p: p], ids=["str", "pathlike"])
def test_statx_matches_os_stat(ring, form, tmp_file, path_kind):
    need(ring, "statx")
    os.utime(tmp_file, ns=(1_500_000_000_123_456_789, 1_600_000_000_987_654_321))
    st, flags = form.run(ring, "statx", AT_FDCWD, path_kind(tmp_file))
    assert flags == form.noflags
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


def test_fsetxattr_create_existing_is_eexist(ring, xattr_file):
    os.setxattr(xattr_file, "user.f", b"first")
    fd = os.open(xattr_file, os.O_RDONLY)
    try:
        op_fails(ring, "fsetxattr", errno.EEXIST, fd, "user.f", b"second", py_io_uring.XATTR_CREATE,
                 exc_type=FileExistsError)
    finally:
        os.close(fd)
    assert os.getxattr(xattr_file, "user.f") == b"first"


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
# read_multishot (a buffer ring)


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
    # Linux 6.18: read_multishot wants a file it can poll; a regular file is EBADFD
    assert_fails(wait_one(ring), errno.EBADFD)

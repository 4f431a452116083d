"""memory_size() and mlock_size(): liburing's io_uring_memory_size() and
io_uring_mlock_size() as module functions, the same numbers on every
liburing (checked against liburing 2.15's own when it is installed)."""

import ctypes
import errno
import mmap
import os

import pytest

import py_io_uring
from py_io_uring import (
    IORING_SETUP_CLAMP,
    IORING_SETUP_CQE32,
    IORING_SETUP_NO_SQARRAY,
    IORING_SETUP_SQE128,
    memory_size,
    mlock_size,
)

LIBURING_215 = "/opt/liburing-2.15/lib/liburing.so.2"
PAGE = mmap.PAGESIZE


def pages(n):
    return (n + PAGE - 1) // PAGE * PAGE


def test_memory_size_by_hand():
    # 8 entries: 16 CQEs of 16 bytes + 64 + an 8-entry SQ array, one page;
    # 8 SQEs of 64 bytes, one page
    assert memory_size(8) == 2 * PAGE
    assert memory_size(5) == memory_size(8)          # rounded up to a power of two
    sq, cq = 4096, 8192
    assert memory_size(4096) == pages(cq * 16 + 64 + sq * 4) + pages(sq * 64)
    assert memory_size(4096, IORING_SETUP_NO_SQARRAY) == pages(cq * 16 + 64) + pages(sq * 64)
    assert memory_size(4096, IORING_SETUP_SQE128 | IORING_SETUP_CQE32) == \
        pages(cq * 32 + 64 + sq * 4) + pages(sq * 128)
    assert memory_size(8, cq_entries=1000) == pages(1024 * 16 + 64 + 8 * 4) + pages(8 * 64)


def test_memory_size_errors():
    for bad in ((0,), (40000,), (8, 0, 4)):
        with pytest.raises(OSError) as info:
            memory_size(*bad)
        assert info.value.errno == errno.EINVAL
    assert memory_size(40000, IORING_SETUP_CLAMP) == memory_size(32768)
    with pytest.raises(OverflowError):
        memory_size(-1)
    with pytest.raises(TypeError):
        memory_size("8")


@pytest.mark.skipif(not os.path.exists(LIBURING_215), reason="liburing 2.15 not installed")
def test_memory_size_matches_liburing_215():
    f = ctypes.CDLL(LIBURING_215).io_uring_memory_size
    f.restype = ctypes.c_ssize_t
    f.argtypes = [ctypes.c_uint, ctypes.c_uint]
    for entries in (1, 3, 8, 100, 4096, 32768):
        for flags in (0, IORING_SETUP_SQE128, IORING_SETUP_CQE32, IORING_SETUP_NO_SQARRAY,
                      IORING_SETUP_SQE128 | IORING_SETUP_CQE32):
            assert memory_size(entries, flags) == f(entries, flags), (entries, flags)


def test_mlock_size():
    ring = py_io_uring.IoUring(2)
    native = ring.features() & py_io_uring.IORING_FEAT_NATIVE_WORKERS
    ring.queue_exit()
    assert mlock_size(8) == (0 if native else memory_size(8))
    assert mlock_size(entries=8, flags=0) == mlock_size(8)

"""queue_init_mem(): a ring in the caller's memory (IORING_SETUP_NO_MMAP)
against the real kernel.  The memory is the ring's for its whole life:
pinned until teardown has closed the ring's fd."""

import gc
import mmap
import os
import struct
import weakref

import pytest

from py_io_uring import (
    IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_SINGLE_ISSUER,
    IoUring,
    memory_size,
)
from uring_helpers import fork

TAG_BIT = 1 << 63


def closable(m):
    try:
        m.close()
    except BufferError:
        return False
    return True


def mem_ring(entries=8, flags=0):
    m = mmap.mmap(-1, memory_size(entries, flags))
    ring = IoUring()
    try:
        ring.queue_init_mem(entries, m, flags)
    except OSError as e:
        pytest.skip("IORING_SETUP_NO_MMAP refused by this kernel: %s" % e)
    return ring, m


def test_ring_runs_in_the_callers_memory():
    ring, m = mem_ring(8)
    try:
        assert not closable(m)
        ring.prep_nop(user_data="first")
        # the SQE array starts the buffer: the entry's user_data (offset 32)
        # is the record's, under the library's top bit
        (ud,) = struct.unpack_from("Q", m, 32)
        assert ud & TAG_BIT
        ring.submit()
        assert ring.reap(1, 1) == [("first", 0, 0)]
        for i in range(40):          # wraps the 8-entry SQ and 16-entry CQ
            ring.prep_nop(user_data=i)
            if i % 8 == 7:
                ring.submit()
                assert [x[0] for x in ring.reap(8, 8)] == list(range(i - 7, i + 1))
        fd = os.open("/proc/self/exe", os.O_RDONLY)
        try:
            ring.prep_read(fd, 4, 0, user_data="elf")
            ring.submit()
            assert ring.reap(1, 1) == [("elf", b"\x7fELF", 0)]
        finally:
            os.close(fd)
    finally:
        ring.queue_exit()
    assert closable(m)


def test_teardown_with_op_in_flight_then_release():
    ring, m = mem_ring(8)
    r, w = os.pipe()
    try:
        ring.prep_read(r, 10, -1, user_data="blocked")
        ring.submit()
        assert ring.in_flight() == 1
        ring.queue_exit()            # cancels, waits, closes, then lets go
        assert closable(m)
    finally:
        os.close(r)
        os.close(w)


def test_defer_taskrun_ring_in_memory():
    flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
    ring, m = mem_ring(16, flags)
    try:
        ring.prep_nop(user_data=1)
        ring.submit()
        assert ring.reap(1, 1) == [(1, 0, 0)]
        with pytest.raises(OSError):     # the kernel cannot move such rings
            ring.resize_rings(32)
        ring.prep_nop(user_data=2)
        ring.submit()
        assert ring.reap(1, 1) == [(2, 0, 0)]
    finally:
        ring.queue_exit()
    assert closable(m)


def test_collected_ring_releases_memory():
    ring, m = mem_ring(8)
    ref = weakref.ref(ring)
    del ring
    gc.collect()
    assert ref() is None
    assert closable(m)


def test_fork_child_is_refused():
    ring, m = mem_ring(8)
    try:
        pid = fork()
        if pid == 0:
            code = 1
            try:
                ring.get_sqe()
            except RuntimeError:
                code = 0
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        ring.prep_nop(user_data="parent")
        ring.submit()
        assert ring.reap(1, 1) == [("parent", 0, 0)]
    finally:
        ring.queue_exit()
    assert closable(m)


def test_queue_init_mem_errors():
    ring = IoUring()
    small = mmap.mmap(-1, mmap.PAGESIZE)
    with pytest.raises(ValueError, match="needs %d" % memory_size(8)):
        ring.queue_init_mem(8, small)
    assert closable(small)
    with pytest.raises(ValueError, match="page boundary"):
        ring.queue_init_mem(8, memoryview(mmap.mmap(-1, 4 * mmap.PAGESIZE))[1:])
    with pytest.raises(TypeError, match="queue_init_mem"):
        ring.queue_init_mem(8, b"\0" * 3 * mmap.PAGESIZE)
    with pytest.raises(ValueError, match="REGISTERED_FD_ONLY"):
        ring.queue_init_mem(8, mmap.mmap(-1, memory_size(8)), 1 << 15)
    good = mmap.mmap(-1, memory_size(8))
    ring.queue_init_mem(8, good)
    other = mmap.mmap(-1, memory_size(8))
    with pytest.raises(ValueError, match="already initialised"):
        ring.queue_init_mem(8, other)
    assert closable(other)
    ring.queue_exit()
    assert closable(good)

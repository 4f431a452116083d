"""register_region() against the real kernel (IORING_REGISTER_MEM_REGION,
6.13+): the region is the caller's memory, pinned for the ring's life and
let go of only once the ring is torn down."""

import errno
import gc
import mmap
import struct
import time
import weakref

import pytest

from py_io_uring import (
    IORING_MEM_REGION_REG_WAIT_ARG,
    IORING_REG_WAIT_TS,
    IORING_SETUP_R_DISABLED,
    IoUring,
)

PAGE = mmap.PAGESIZE


def closable(m):
    """Whether nothing holds an export of the mmap (then it is closed)."""
    try:
        m.close()
    except BufferError:
        return False
    return True


def register_or_skip(ring, m, flags=0):
    try:
        ring.register_region(m, flags)
    except OSError as e:
        if e.errno == errno.EINVAL and not flags:
            ring.queue_exit()
            pytest.skip("IORING_REGISTER_MEM_REGION not on this kernel")
        raise


def test_region_pinned_until_teardown():
    ring = IoUring(8)
    m = mmap.mmap(-1, 2 * PAGE)
    register_or_skip(ring, m)
    assert not closable(m)
    with pytest.raises(ValueError, match="already"):
        ring.register_region(mmap.mmap(-1, PAGE))
    assert not closable(m)
    ring.queue_exit()
    assert closable(m)


def test_wait_arg_region_needs_a_disabled_ring():
    ring = IoUring(8, IORING_SETUP_R_DISABLED)
    m = mmap.mmap(-1, PAGE)
    register_or_skip(ring, m, IORING_MEM_REGION_REG_WAIT_ARG)
    assert not closable(m)
    ring.queue_exit()
    assert closable(m)
    with IoUring(8) as ring:
        m = mmap.mmap(-1, PAGE)
        with pytest.raises(OSError) as info:
            ring.register_region(m, IORING_MEM_REGION_REG_WAIT_ARG)
        assert info.value.errno == errno.EINVAL
        assert closable(m)     # a refused region is let go of at once


def test_region_errors():
    with IoUring(8) as ring:
        with pytest.raises(ValueError, match="page boundary"):
            ring.register_region(bytearray(100))
        with pytest.raises(ValueError, match="page boundary"):
            ring.register_region(memoryview(mmap.mmap(-1, 2 * PAGE))[1:PAGE + 1])
        with pytest.raises(TypeError, match="register_region"):
            ring.register_region(b"x" * PAGE)
        with pytest.raises(ValueError, match="flags"):
            ring.register_region(mmap.mmap(-1, PAGE), 2)
    with pytest.raises(ValueError):
        ring.register_region(mmap.mmap(-1, PAGE))


def test_region_of_a_collected_ring_is_released():
    ring = IoUring(8)
    m = mmap.mmap(-1, PAGE)
    register_or_skip(ring, m)
    ref = weakref.ref(ring)
    del ring
    gc.collect()
    assert ref() is None
    assert closable(m)


# ---- submit_and_wait_reg(): the wait arguments read from the region

REG_WAIT = "=qqIIQI12x16x"      # struct io_uring_reg_wait, 64 bytes


def _wait_region_ring():
    ring = IoUring(8, IORING_SETUP_R_DISABLED)
    m = mmap.mmap(-1, PAGE)
    register_or_skip(ring, m, IORING_MEM_REGION_REG_WAIT_ARG)
    ring.enable_rings()
    return ring, m


def test_submit_and_wait_reg_times_out_by_the_region_entry():
    ring, m = _wait_region_ring()
    try:
        assert struct.calcsize(REG_WAIT) == 64
        # entry 3: a 50 ms timeout; entry 0 stays zero (no timeout)
        struct.pack_into(REG_WAIT, m, 64 * 3, 0, 50_000_000, 0, IORING_REG_WAIT_TS, 0, 0)
        t0 = time.monotonic()
        assert ring.submit_and_wait_reg(1, 3) is None       # nothing in flight
        assert 0.04 <= time.monotonic() - t0 < 5
        # with an entry queued: submitted, and its completion is there
        ring.prep_nop(user_data="nop")
        assert ring.submit_and_wait_reg(1, 3) == 1
        assert ring.reap(4) == [("nop", 0, 0)]
        # a timeout in the entry does not cut short a wait that completes
        ring.prep_timeout(0.01, user_data="t")
        assert ring.submit_and_wait_reg(1, 3) in (1, None)
        assert ring.reap(4, 1) == [("t", -errno.ETIME, 0)]
    finally:
        ring.queue_exit()


def test_submit_and_wait_reg_errors():
    with IoUring(8) as ring:
        with pytest.raises(ValueError, match="no wait region"):
            ring.submit_and_wait_reg(1, 0)
    ring, m = _wait_region_ring()
    try:
        with pytest.raises(IndexError, match="reg_index 64 is not in the region"):
            ring.submit_and_wait_reg(1, PAGE // 64)
        with pytest.raises(IndexError):
            ring.submit_and_wait_reg(1, -1)
        with pytest.raises(ValueError, match="wait_nr"):
            ring.submit_and_wait_reg(-1, 0)
        with pytest.raises(TypeError):
            ring.submit_and_wait_reg(1, "0")
        assert ring.submit_and_wait_reg(0, 0) == 0           # no wait at all
    finally:
        ring.queue_exit()

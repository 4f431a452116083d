"""Setup flags: each is supported (the ring works) or refused with a
ValueError that says why, before the kernel sees it; and the disabled ring
(IORING_SETUP_R_DISABLED) with its restrictions and enable_rings()."""

import errno
import os

import pytest

import py_io_uring
from py_io_uring import IoUring

# liburing 2.6 is the first that drives a ring without an SQ array
NEW_LIBURING = (py_io_uring.LIBURING_VERSION or (2, 3)) >= (2, 6)


def nops_work(ring, n=3):
    """n NOPs, in rounds the smallest ring here (8 entries) has room for,
    each coming back once; then no phantom completion."""
    for start in range(0, n, 4):
        batch = range(start, min(n, start + 4))
        for i in batch:
            ring.prep_nop(user_data=i)
        assert ring.submit_and_wait(len(batch)) == len(batch)
        assert sorted(ring.reap(8)) == [(i, 0, 0) for i in batch]
    assert ring.reap(8) == []       # no phantom completions


@pytest.mark.parametrize("flag", [
    py_io_uring.IORING_SETUP_NO_MMAP,
    py_io_uring.IORING_SETUP_REGISTERED_FD_ONLY,
    1 << 18,                        # IORING_SETUP_CQE_MIXED
    1 << 19,                        # IORING_SETUP_SQE_MIXED
    1 << 30,                        # no such flag
])
@pytest.mark.parametrize("how", ["IoUring", "queue_init"])
def test_unsupported_setup_flags_are_refused_with_why(flag, how):
    ring = IoUring()
    with pytest.raises(ValueError, match=r"^%s\(\): .*(IORING_SETUP|unknown setup flags)" % how):
        if how == "IoUring":
            IoUring(8, flag)
        else:
            ring.queue_init(8, flag)
    # nothing was set up: the ring object is still usable
    ring.queue_init(8)
    nops_work(ring)
    ring.queue_exit()


def test_no_sqarray_works_or_is_refused_by_liburing_version():
    flag = py_io_uring.IORING_SETUP_NO_SQARRAY
    if not NEW_LIBURING:
        # liburing before 2.6 would write an SQ array the kernel never
        # reads: the ring reaped phantom completions, then MemoryError
        with pytest.raises(ValueError, match="NO_SQARRAY needs liburing 2.6"):
            IoUring(8, flag)
        return
    with IoUring(8, flag) as ring:
        nops_work(ring, 20)


def test_hybrid_iopoll_is_passed_to_the_kernel():
    # HYBRID_IOPOLL without IOPOLL: the kernel's answer, not ours (6.13+)
    with pytest.raises(OSError) as e:
        IoUring(8, py_io_uring.IORING_SETUP_HYBRID_IOPOLL)
    assert e.value.errno == errno.EINVAL


def test_disabled_ring_submits_only_after_enable_rings():
    with IoUring(8, py_io_uring.IORING_SETUP_R_DISABLED) as ring:
        ring.prep_nop(user_data="early")
        with pytest.raises(OSError) as e:
            ring.submit()
        assert e.value.errno == errno.EBADFD
        ring.enable_rings()
        assert ring.submit_and_wait(1) == 1
        assert ring.reap(4) == [("early", 0, 0)]
        with pytest.raises(OSError, match="not disabled") as e:
            ring.enable_rings()
        assert e.value.errno == errno.EBADFD


def test_restrictions_limit_the_ops_of_a_disabled_ring(tmp_file):
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        with IoUring(8, py_io_uring.IORING_SETUP_R_DISABLED) as ring:
            ring.register_restrictions([
                (py_io_uring.IORING_RESTRICTION_SQE_OP, py_io_uring.IORING_OP_NOP),
                (py_io_uring.IORING_RESTRICTION_SQE_OP, py_io_uring.IORING_OP_ASYNC_CANCEL),
                (py_io_uring.IORING_RESTRICTION_SQE_FLAGS_ALLOWED, 0),
            ])
            with pytest.raises(OSError, match="once") as e:
                ring.register_restrictions([(py_io_uring.IORING_RESTRICTION_SQE_OP, 0)])
            ring.enable_rings()
            ring.prep_nop(user_data="nop")
            ring.prep_read(fd, 16, 0, user_data="read")
            ring.prep_nop(user_data="drained", sqe_flags=py_io_uring.IOSQE_IO_DRAIN)
            ring.submit_and_wait(3)
            got = dict((d, r) for d, r, _ in ring.reap(8))
            assert got == {"nop": 0, "read": -errno.EACCES, "drained": -errno.EACCES}
    finally:
        os.close(fd)


def test_restrictions_on_an_enabled_ring_say_why():
    with IoUring(8) as ring:
        with pytest.raises(OSError, match="IORING_SETUP_R_DISABLED") as e:
            ring.register_restrictions([(py_io_uring.IORING_RESTRICTION_SQE_OP, 0)])
        assert e.value.errno == errno.EBADFD


@pytest.mark.parametrize("bad, exc", [
    (5, TypeError), ([], ValueError), ([(1,)], TypeError), ([(9, 0)], OverflowError),
    ([(1, 256)], OverflowError), ([("x", 0)], TypeError),
])
def test_restrictions_bad_input(bad, exc):
    with IoUring(8, py_io_uring.IORING_SETUP_R_DISABLED) as ring:
        with pytest.raises(exc, match="register_restrictions|restriction|IORING_RESTRICTION"):
            ring.register_restrictions(bad)
        ring.enable_rings()         # nothing was registered
        nops_work(ring)


def test_opcode_supported_by_number_and_by_name(ring):
    assert ring.opcode_supported(py_io_uring.IORING_OP_NOP) is True
    assert ring.opcode_supported("nop") is True
    names = ring.probe()
    for name, opname, opcode, _kernel in py_io_uring.OPERATIONS:
        assert ring.opcode_supported(opcode) == (name in names) == ring.opcode_supported(name)
        assert getattr(py_io_uring, opname) == opcode
    assert ring.opcode_supported(255) is False and ring.opcode_supported(10 ** 6) is False
    assert ring.opcode_supported(-1) is False
    with pytest.raises(ValueError, match="no operation named 'prep_read'"):
        ring.opcode_supported("prep_read")
    with pytest.raises(TypeError, match="opcode_supported"):
        ring.opcode_supported(1.0)
    ring.queue_exit()
    with pytest.raises(ValueError):
        ring.opcode_supported(0)

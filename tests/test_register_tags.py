"""Tagged registered files and buffers against the real kernel:
register_files_tags, register_files_update_tag, register_buffers_tags,
register_buffers_update_tag, register_buffers_sparse.  A tag's completion
arrives once the kernel no longer uses what it tags; a tagged buffer stays
pinned until then, and the completion carries the user's tag object."""

import gc
import os
import weakref

import pytest

from py_io_uring import IORING_REGISTER_DST_REPLACE, IoUring

from uring_helpers import need, wait_one

TAG_BIT = 1 << 63


class Tag:
    """A tag that is no int: only the module can hand it back."""

    def __init__(self, name):
        self.name = name


def pinned(buf):
    """Whether something holds a buffer export of the bytearray."""
    try:
        buf.append(0)
    except BufferError:
        return True
    del buf[-1]
    return False


def is_tag_ud(ud):
    # the runtime's own range: top bit, low half at or above 2**31
    return ud & TAG_BIT and (ud & 0xffffffff) >= 0x80000000 and (ud & 0xffffffff) != 0xffffffff


def test_buffer_tag_completion_after_update(ring):
    a, b = bytearray(64), bytearray(64)
    tag = Tag("a")
    ring.register_buffers_tags([a, None], [tag, None])
    assert pinned(a)
    assert ring.register_buffers_update_tag(0, [b], [0]) == 1
    # the kernel posted the tag; until it is reaped the buffer stays pinned
    assert pinned(a) and pinned(b)
    cqe = wait_one(ring)
    assert cqe.get_data() is tag
    assert cqe.res() == 0 and cqe.flags() == 0 and cqe.getresult() == 0
    assert is_tag_ud(cqe.user_data())
    assert "tag" in repr(cqe)
    assert not pinned(a)
    assert pinned(b)
    ring.unregister_buffers()
    assert not pinned(b)
    assert ring.cq_ready() == 0   # b had no tag


def test_buffer_tag_waits_for_the_op_using_it(ring):
    """The tag's completion comes after the read that uses the buffer."""
    need(ring, "read_fixed")
    r, w = os.pipe()
    try:
        a, b = bytearray(16), bytearray(16)
        ring.register_buffers_tags([a], ["A"])
        ring.prep_read_fixed(r, memoryview(a)[:5], -1, 0, user_data="read")
        assert ring.submit() == 1
        assert ring.register_buffers_update_tag(0, [b], ["B"]) == 1
        assert ring.reap(4) == []          # the read still holds the buffer
        assert pinned(a)
        os.write(w, b"hello")
        got = ring.reap(4, 2)
        assert got == [("read", 5, 0), ("A", 0, 0)]
        assert a[:5] == b"hello"
        assert not pinned(a)
        ring.unregister_buffers()
        assert ring.reap(4, 1) == [("B", 0, 0)]
        assert not pinned(b)
    finally:
        os.close(r)
        os.close(w)


def test_buffers_sparse_then_update(ring):
    need(ring, "read_fixed")
    ring.register_buffers_sparse(4)
    with pytest.raises(ValueError, match="already registered"):
        ring.register_buffers([bytearray(8)])
    buf = bytearray(32)
    assert ring.register_buffers_update_tag(2, [buf], [None]) == 1
    fd = os.open("/proc/self/exe", os.O_RDONLY)
    try:
        ring.prep_read_fixed(fd, memoryview(buf)[:4], 0, 2, user_data=1)
        ring.submit()
        assert ring.reap(1, 1) == [(1, 4, 0)]
        assert bytes(buf[:4]) == b"\x7fELF"
    finally:
        os.close(fd)
    # an empty slot carries no tag: the kernel refuses, nothing is kept
    tag = Tag("x")
    ref = weakref.ref(tag)
    with pytest.raises(OSError):
        ring.register_buffers_update_tag(0, [None], [tag])
    del tag
    assert ref() is None
    # None empties a slot: buf is let go of
    assert pinned(buf)
    assert ring.register_buffers_update_tag(2, [None], [0]) == 1
    assert not pinned(buf)
    ring.unregister_buffers()


def test_buffer_update_stops_short(ring):
    """Slots past the table fail: the kernel refuses, no pin or tag kept."""
    ring.register_buffers_sparse(2)
    buf = bytearray(8)
    tag = Tag("t")
    ref = weakref.ref(tag)
    with pytest.raises(OSError):
        ring.register_buffers_update_tag(5, [buf], [tag])
    del tag
    assert ref() is None and not pinned(buf)
    ring.unregister_buffers()


def test_files_tags(ring):
    r, w = os.pipe()
    try:
        t1, t2 = Tag("r"), Tag("w")
        ring.register_files_tags([r, w, -1], [t1, t2, None])
        assert ring.register_files_update_tag(2, [r], [7]) == 1
        assert ring.register_files_update_tag(0, [-1], [None]) == 1
        got = ring.reap(4, 1)
        assert len(got) == 1 and got[0][0] is t1 and got[0][1:] == (0, 0)
        ring.unregister_files()
        got = ring.reap(4, 2)
        assert {id(x[0]) if isinstance(x[0], Tag) else x[0] for x in got} == {id(t2), 7}
    finally:
        os.close(r)
        os.close(w)


def test_tags_with_records_in_flight_do_not_collide(ring):
    """A tag object equal to a record's user data, both in the CQ."""
    ring.register_files_tags([0], [42])
    ring.prep_nop(user_data=42)
    ring.submit()
    ring.register_files_update_tag(0, [1], [None])
    got = ring.reap(4, 2)
    assert sorted(got) == [(42, 0, 0), (42, 0, 0)]
    assert ring.in_flight() == 0
    ring.unregister_files()


def test_tag_errors(ring):
    with pytest.raises(ValueError, match="as many tags"):
        ring.register_files_tags([0, 1], [1])
    with pytest.raises(ValueError, match="as many tags"):
        ring.register_buffers_tags([bytearray(8)], [])
    with pytest.raises(TypeError, match="register_buffers_tags"):
        ring.register_buffers_tags([b"read-only"], [1])
    with pytest.raises(TypeError, match="tags"):
        ring.register_files_tags([0], 5)
    with pytest.raises(OverflowError, match="offset"):
        ring.register_files_update_tag(-1, [0], [1])
    ring.register_buffers_sparse(1)
    with pytest.raises(ValueError, match="already registered"):
        ring.register_buffers_tags([bytearray(8)], [1])
    with pytest.raises(ValueError, match="already registered"):
        ring.register_buffers_sparse(1)
    ring.unregister_buffers()
    ring.queue_exit()
    with pytest.raises(ValueError):
        ring.register_buffers_sparse(1)


def test_teardown_releases_tags_and_pins():
    ring = IoUring(8)
    buf = bytearray(16)
    tag = Tag("t")
    ref = weakref.ref(tag)
    ring.register_buffers_tags([buf], [tag])
    del tag
    ring.queue_exit()
    assert ref() is None and not pinned(buf)


def test_tag_cycle_with_ring_is_collected():
    ring = IoUring(8)
    buf = bytearray(16)
    tag = Tag("t")
    tag.ring = ring
    ring.register_buffers_tags([buf], [tag])
    ref = weakref.ref(ring)
    del ring, tag
    gc.collect()
    assert ref() is None and not pinned(buf)


def test_buffers_tags_sqe_form(ring):
    """The Sqe/Cqe tier: a tagged buffer replaced while unregistered."""
    a = bytearray(8)
    ring.register_buffers_tags([a], [3])
    ring.unregister_buffers()
    cqe = ring.peek_cqe()
    assert cqe is not None and cqe.get_data() == 3 and cqe.res() == 0
    ring.cqe_seen(cqe)
    assert not pinned(a)


# --------------------------------------------------------------------------
# clone_buffers / clone_buffers_offset


def _read_fixed_into(ring, buf, index):
    """read_fixed of /proc/self/exe's first 4 bytes into buf[:4] (slot index)."""
    fd = os.open("/proc/self/exe", os.O_RDONLY)
    try:
        ring.prep_read_fixed(fd, memoryview(buf)[:4], 0, index, user_data="rf")
        ring.submit()
        return ring.reap(1, 1)
    finally:
        os.close(fd)


def test_clone_keeps_pins_after_source_goes(ring):
    need(ring, "read_fixed")
    src = IoUring(8)
    a, b = bytearray(16), bytearray(16)
    src.register_buffers([a, b])
    try:
        ring.clone_buffers(src)
    except OSError as e:
        src.queue_exit()
        pytest.skip("IORING_REGISTER_CLONE_BUFFERS: %s" % e)
    src.queue_exit()
    assert pinned(a) and pinned(b)    # this ring has them still
    assert _read_fixed_into(ring, b, 1) == [("rf", 4, 0)]
    assert bytes(b[:4]) == b"\x7fELF"
    ring.unregister_buffers()
    assert not pinned(a) and not pinned(b)


def test_clone_offset_replace(ring):
    src = IoUring(8)
    a, b, c = bytearray(16), bytearray(16), bytearray(16)
    src.register_buffers([a, b])
    mine = bytearray(16)
    ring.register_buffers_tags([mine, None, None], ["mine", None, None])
    try:
        with pytest.raises(OSError):   # EBUSY: a table without DST_REPLACE
            ring.clone_buffers_offset(src, 1, 1, 1, 0)
        ring.clone_buffers_offset(src, 1, 1, 1, IORING_REGISTER_DST_REPLACE)
    except OSError as e:
        src.queue_exit()
        pytest.skip("IORING_REGISTER_CLONE_BUFFERS: %s" % e)
    src.unregister_buffers()
    assert not pinned(a) and pinned(b)   # only b was cloned
    assert pinned(mine)                  # slot 0 kept
    # the clone replaces slot 0 too: mine's tag comes, then it is let go of
    src.register_buffers([c])
    ring.clone_buffers_offset(src, 0, 0, 1, IORING_REGISTER_DST_REPLACE)
    assert ring.reap(2, 1) == [("mine", 0, 0)]
    assert not pinned(mine) and pinned(b) and pinned(c)
    src.queue_exit()
    assert pinned(c)
    ring.queue_exit()
    assert not pinned(b) and not pinned(c)


def test_clone_errors(ring):
    with pytest.raises(TypeError, match="IoUring"):
        ring.clone_buffers(5)
    with pytest.raises(ValueError, match="itself"):
        ring.clone_buffers(ring)
    with pytest.raises(ValueError, match="flags"):
        ring.clone_buffers_offset(ring, 0, 0, 0, 4)
    other = IoUring(4)
    other.queue_exit()
    with pytest.raises(ValueError):
        ring.clone_buffers(other)


def test_tag_values(ring):
    """None and 0 are no tag; any other object, a huge int or False too, is."""
    ring.register_files_tags([0, 0, 0, 0], [None, 0, 2 ** 70, False])
    ring.unregister_files()
    got = ring.reap(8, 2)
    assert sorted(got, key=repr) == sorted([(2 ** 70, 0, 0), (False, 0, 0)], key=repr)
    assert got[0][0] is False or got[1][0] is False
    assert ring.cq_ready() == 0

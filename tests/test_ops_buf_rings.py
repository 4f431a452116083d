"""Buffer rings beyond the plain one: incremental consumption
(IOU_PBUF_RING_INC), kernel-allocated ring memory (IOU_PBUF_RING_MMAP), the
ring's head and fill (buf_ring_head, buf_ring_available), and receive
bundles (IORING_RECVSEND_BUNDLE), against the real kernel: every byte sent
comes back once, in order."""

import errno
import socket

import pytest

import py_io_uring
from py_io_uring import (
    IORING_CQE_BUFFER_SHIFT,
    IORING_CQE_F_BUF_MORE,
    IORING_CQE_F_BUFFER,
    IORING_CQE_F_MORE,
    IORING_RECVSEND_BUNDLE,
    IOSQE_BUFFER_SELECT,
    IOU_PBUF_RING_INC,
    IOU_PBUF_RING_MMAP,
)

from op_helpers import cancel_multishot, recv_all
from uring_helpers import need, prep, wait_one


def _setup(ring, bgid, entries, size, flags):
    try:
        ring.setup_buf_ring(bgid, entries, size, flags=flags)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            pytest.skip("setup_buf_ring(flags=%#x): %s on this kernel" % (flags, e))
        raise


def _recv_stream(ring, sock, bgid, ioprio=0):
    need(ring, "recv_multishot")
    sqe = prep(ring, "recv_multishot", sock, ioprio=ioprio, tag="rx")
    sqe.set_buf_group(bgid)
    ring.submit()
    return sqe


def _drain(ring, armed, sock, bgid, got, want, ioprio=0):
    """Reap the stream's completions until `got` holds `want` bytes.  The
    kernel may end a multishot receive at any completion (without
    IORING_CQE_F_MORE: a bundle that emptied the ring, or -ENOBUFS while
    every buffer waited in the CQ); as liburing's users do, arm it again.
    armed[0] is the receive in flight, replaced when armed again.  Returns
    how many completions spanned more than one buffer's size."""
    spans = 0
    while len(got) < want:
        cqe = wait_one(ring)
        if cqe.res() == -errno.ENOBUFS:
            assert not cqe.flags() & IORING_CQE_F_MORE
        else:
            data = cqe.getresult()
            assert len(data) == cqe.res() > 0
            got += data
            spans += cqe.buf_count() > 1
            assert cqe.buf_count() >= 1
        if not cqe.flags() & IORING_CQE_F_MORE:
            armed[0] = _recv_stream(ring, sock, bgid, ioprio)
    return spans


# --------------------------------------------------------------------------
# IOU_PBUF_RING_INC


def test_inc_ring_small_receives_share_a_buffer(ring, unix_pair):
    a, b = unix_pair
    _setup(ring, 3, 4, 64, IOU_PBUF_RING_INC)
    sqe = _recv_stream(ring, b, 3)
    got = []
    for msg in (b"hello", b"world!!", b"third one"):
        a.sendall(msg)
        cqe = wait_one(ring)
        assert cqe.getresult() == msg
        assert cqe.flags() & IORING_CQE_F_BUFFER
        # the kernel keeps the partly used buffer and goes on in it
        assert cqe.flags() & IORING_CQE_F_BUF_MORE, hex(cqe.flags())
        assert cqe.buf_count() == 1
        got.append(cqe.flags() >> IORING_CQE_BUFFER_SHIFT)
    assert got == [got[0]] * 3
    # 21 bytes used: 43 fill the buffer, which then comes back (no BUF_MORE)
    a.sendall(b"y" * 43)
    cqe = wait_one(ring)
    assert cqe.getresult() == b"y" * 43
    assert not cqe.flags() & IORING_CQE_F_BUF_MORE
    assert cqe.flags() >> IORING_CQE_BUFFER_SHIFT == got[0]
    a.sendall(b"next buffer")
    cqe = wait_one(ring)
    assert cqe.getresult() == b"next buffer"
    assert cqe.flags() >> IORING_CQE_BUFFER_SHIFT != got[0]
    cancel_multishot(ring, sqe)
    ring.free_buf_ring(3)


def test_inc_ring_stream_byte_for_byte(ring, unix_pair):
    # many sends of odd sizes through 4 buffers of 100 bytes, several
    # times round the ring: each byte once, in order
    a, b = unix_pair
    _setup(ring, 5, 4, 100, IOU_PBUF_RING_INC)
    armed = [_recv_stream(ring, b, 5)]
    sent = bytearray()
    got = bytearray()
    for i in range(60):
        msg = bytes((i * 7 + k) % 251 for k in range(1 + (i * 37) % 97))
        a.sendall(msg)
        sent += msg
        _drain(ring, armed, b, 5, got, len(sent))
    assert got == sent
    assert ring.buf_ring_available(5) >= 3   # at most one kept by the kernel
    cancel_multishot(ring, armed[0])


def test_plain_ring_never_sets_buf_more(ring, unix_pair):
    a, b = unix_pair
    ring.setup_buf_ring(6, 4, 64)
    sqe = _recv_stream(ring, b, 6)
    ids = set()
    for msg in (b"one", b"two", b"three"):
        a.sendall(msg)
        cqe = wait_one(ring)
        assert cqe.getresult() == msg
        assert not cqe.flags() & IORING_CQE_F_BUF_MORE
        assert cqe.buf_count() == 1
        ids.add(cqe.flags() >> IORING_CQE_BUFFER_SHIFT)
    assert len(ids) == 3   # one buffer per receive
    cancel_multishot(ring, sqe)


# --------------------------------------------------------------------------
# IOU_PBUF_RING_MMAP


@pytest.mark.parametrize("flags", [IOU_PBUF_RING_MMAP, IOU_PBUF_RING_MMAP | IOU_PBUF_RING_INC])
def test_mmap_ring_receives(ring, unix_pair, flags):
    a, b = unix_pair
    _setup(ring, 8, 8, 32, flags)
    assert ring.buf_ring_available(8) == 8
    armed = [_recv_stream(ring, b, 8)]
    sent = bytearray()
    got = bytearray()
    for i in range(20):   # more receives than buffers
        msg = b"mapped %02d" % i
        a.sendall(msg)
        sent += msg
        _drain(ring, armed, b, 8, got, len(sent))
    assert got == sent
    cancel_multishot(ring, armed[0])
    ring.free_buf_ring(8)
    # the group can be set up again, the other way
    ring.setup_buf_ring(8, 8, 32)
    ring.free_buf_ring(8)


def test_mmap_ring_left_to_teardown(unix_pair):
    # a multishot receive in flight on a mapped ring: the teardown cancels
    # it, then unmaps the ring
    a, b = unix_pair
    r = py_io_uring.IoUring(8)
    _setup(r, 1, 4, 32, IOU_PBUF_RING_MMAP | IOU_PBUF_RING_INC)
    _recv_stream(r, b, 1)
    a.sendall(b"in flight")
    r.queue_exit()


# --------------------------------------------------------------------------
# buf_ring_head, buf_ring_available


def test_head_and_available(ring, unix_pair):
    a, b = unix_pair
    ring.setup_buf_ring(2, 4, 64)
    assert (ring.buf_ring_head(2), ring.buf_ring_available(2)) == (0, 4)
    for i in range(6):
        a.sendall(b"msg %d" % i)
        sqe = ring.get_sqe()
        sqe.prep_recv(b, 64)
        sqe.set_flags(IOSQE_BUFFER_SELECT)
        sqe.set_buf_group(2)
        ring.submit_and_wait(1)
        # the kernel took a buffer; reaping has not given it back yet
        assert ring.buf_ring_head(2) == i + 1
        assert ring.buf_ring_available(2) == 3
        assert wait_one(ring).getresult() == b"msg %d" % i
        assert ring.buf_ring_available(2) == 4


def test_head_and_available_errors(ring):
    for name in ("buf_ring_head", "buf_ring_available"):
        with pytest.raises(ValueError, match=r"%s\(\): buffer group 4 has no ring" % name):
            getattr(ring, name)(4)
        with pytest.raises(ValueError, match="has no ring"):
            getattr(ring, name)(70000)
        with pytest.raises(TypeError):
            getattr(ring, name)("4")
    ring.queue_exit()
    with pytest.raises(ValueError):
        ring.buf_ring_head(0)


def test_setup_buf_ring_refuses_unknown_flags(ring):
    with pytest.raises(ValueError, match="IOU_PBUF_RING_MMAP, IOU_PBUF_RING_INC"):
        ring.setup_buf_ring(1, 4, 64, flags=4)
    with pytest.raises(TypeError):
        ring.setup_buf_ring(1, 4, 64, flags="x")
    ring.setup_buf_ring(1, 4, 64, 0)   # nothing was registered by the failures
    ring.free_buf_ring(1)


# --------------------------------------------------------------------------
# receive bundles


def _bundle(ring, flags=0):
    if not ring.features() & py_io_uring.IORING_FEAT_RECVSEND_BUNDLE:
        pytest.skip("no IORING_FEAT_RECVSEND_BUNDLE on this kernel")


def test_recv_bundle_takes_several_buffers(ring, unix_pair):
    _bundle(ring)
    a, b = unix_pair
    ring.setup_buf_ring(4, 8, 16)
    msgs = [b"hello", b"world!!", b"x" * 30]
    for m in msgs:
        a.sendall(m)
    sqe = ring.get_sqe()
    sqe.prep_recv(b, 0, ioprio=IORING_RECVSEND_BUNDLE)
    sqe.set_flags(IOSQE_BUFFER_SELECT)
    sqe.set_buf_group(4)
    ring.submit()
    cqe = wait_one(ring)
    assert cqe.res() > 16   # more than one buffer's worth in one completion
    assert cqe.buf_count() == (cqe.res() + 15) // 16
    data = cqe.getresult()
    assert len(data) == cqe.res()
    assert data == b"".join(msgs)[:cqe.res()]
    assert ring.buf_ring_available(4) == 8   # every buffer it used came back


def test_recv_multishot_bundle_byte_for_byte(ring, unix_pair):
    # the chain of buffers wraps round the ring several times
    _bundle(ring)
    a, b = unix_pair
    ring.setup_buf_ring(4, 8, 16)
    armed = [_recv_stream(ring, b, 4, IORING_RECVSEND_BUNDLE)]
    sent = bytearray()
    got = bytearray()
    spans = 0
    for i in range(30):
        for j in range(3):   # several sends before each receive
            msg = bytes((i * 13 + j * 5 + k) % 256 for k in range(3 + (i * 11 + j) % 19))
            a.sendall(msg)
            sent += msg
        spans += _drain(ring, armed, b, 4, got, len(sent), IORING_RECVSEND_BUNDLE)
    assert got == sent
    assert spans > 0   # some completions took several buffers
    cancel_multishot(ring, armed[0])


def test_recv_bundle_on_inc_ring(ring, unix_pair):
    _bundle(ring)
    a, b = unix_pair
    _setup(ring, 4, 4, 16, IOU_PBUF_RING_INC)
    armed = [_recv_stream(ring, b, 4, IORING_RECVSEND_BUNDLE)]
    sent = bytearray()
    got = bytearray()
    for i in range(40):
        msg = bytes((i + k) % 256 for k in range(1 + (i * 7) % 29))
        a.sendall(msg)
        sent += msg
        _drain(ring, armed, b, 4, got, len(sent), IORING_RECVSEND_BUNDLE)
    assert got == sent
    cancel_multishot(ring, armed[0])


def test_bundle_bit_is_refused_where_it_means_nothing(ring, unix_pair):
    a, b = unix_pair
    sqe = ring.get_sqe()
    with pytest.raises(ValueError):
        sqe.prep_send(a, b"x", ioprio=IORING_RECVSEND_BUNDLE)


# --------------------------------------------------------------------------
# send rings and send bundles


def _send_bundle(ring):
    need(ring, "send_bundle")
    _bundle(ring)


def test_send_bundle_sends_every_queued_buffer(ring, tcp_pair):
    _send_bundle(ring)
    client, server = tcp_pair
    ring.setup_buf_ring(5, 8, 32, send=True)
    assert ring.buf_ring_available(5) == 0   # a send ring starts empty
    assert [ring.buf_ring_add(5, m) for m in (b"one,", bytearray(b"two,"), memoryview(b"three"))] \
        == [0, 1, 2]
    assert ring.buf_ring_available(5) == 3
    ring.prep_send_bundle(client, user_data="sb", buf_group=5)
    ring.submit()
    [cqe] = _until_final(ring)
    assert cqe.get_data() == "sb"
    assert cqe.res() == 13 and cqe.getresult() == 13
    assert cqe.buf_count() == 3
    assert cqe.flags() & IORING_CQE_F_BUFFER
    assert cqe.flags() >> IORING_CQE_BUFFER_SHIFT == 0   # the first buffer sent
    assert recv_all(server, 13) == b"one,two,three"
    assert ring.buf_ring_available(5) == 0


def test_send_bundle_many_rounds_byte_for_byte(ring, tcp_pair):
    # buffers come back to the free list at each completion: many more
    # buffers queued in all than the ring has
    _send_bundle(ring)
    client, server = tcp_pair
    ring.setup_buf_ring(6, 4, 64, send=True)
    sent = bytearray()
    for i in range(50):
        for j in range(1 + i % 4):
            msg = bytes((i * 31 + j * 7 + k) % 256 for k in range(1 + (i * 13 + j) % 64))
            ring.buf_ring_add(6, msg)
            sent += msg
        sqe = prep(ring, "send_bundle", client)
        sqe.set_buf_group(6)
        ring.submit()
        assert all(c.res() > 0 for c in _until_final(ring))
        assert ring.buf_ring_available(6) == 0, i
    assert recv_all(server, len(sent)) == bytes(sent)


def _until_final(ring):
    """The completions of one operation, up to the one without
    IORING_CQE_F_MORE."""
    out = [wait_one(ring)]
    while out[-1].flags() & IORING_CQE_F_MORE:
        out.append(wait_one(ring))
    return out


def test_send_bundle_in_several_completions_frees_each_buffer(ring, tcp_pair):
    # with a length, Linux 6.18 sends the first buffer, posts it with
    # IORING_CQE_F_MORE and goes on with the rest: each completion names
    # the first buffer it sent from, and every buffer comes back
    _send_bundle(ring)
    client, server = tcp_pair
    ring.setup_buf_ring(5, 4, 32, send=True)
    for m in (b"one,", b"two,", b"three"):
        ring.buf_ring_add(5, m)
    ring.prep_send_bundle(client, 6, user_data="sb", buf_group=5)
    ring.submit()
    cqes = _until_final(ring)
    assert sum(c.res() for c in cqes) == 13
    assert sum(c.buf_count() for c in cqes) == 3
    assert all(c.flags() & IORING_CQE_F_BUFFER for c in cqes)
    assert recv_all(server, 13) == b"one,two,three"
    assert ring.in_flight() == 0
    assert ring.buf_ring_available(5) == 0
    assert sorted(ring.buf_ring_add(5, b"z") for _ in range(4)) == [0, 1, 2, 3]
    with pytest.raises(BlockingIOError, match="every buffer of group 5 is queued"):
        ring.buf_ring_add(5, b"full")
    ring.prep_send_bundle(client, user_data="sb", buf_group=5)
    ring.submit()
    assert sum(c.res() for c in _until_final(ring)) == 4
    assert recv_all(server, 4) == b"zzzz"


def test_send_ring_errors(ring):
    ring.setup_buf_ring(1, 4, 16)
    ring.setup_buf_ring(2, 4, 16, send=True)
    with pytest.raises(ValueError, match=r"buf_ring_add\(\): buffer group 1 is a receive ring"):
        ring.buf_ring_add(1, b"x")
    with pytest.raises(ValueError, match=r"buf_ring_add\(\): buffer group 3 has no ring"):
        ring.buf_ring_add(3, b"x")
    with pytest.raises(ValueError, match="data must be 1 to 16 bytes, not 17"):
        ring.buf_ring_add(2, b"x" * 17)
    with pytest.raises(ValueError, match="data must be 1 to 16 bytes, not 0"):
        ring.buf_ring_add(2, b"")
    with pytest.raises(TypeError):
        ring.buf_ring_add(2, "text")
    with pytest.raises(TypeError):
        ring.buf_ring_add(2)
    with pytest.raises(ValueError, match="a send ring cannot be IOU_PBUF_RING_INC"):
        ring.setup_buf_ring(4, 4, 16, IOU_PBUF_RING_INC, send=True)
    assert ring.buf_ring_available(2) == 0   # nothing was queued by the failures


def test_send_ring_data_is_copied(ring, tcp_pair):
    # buf_ring_add copies: changing the object afterwards changes nothing sent
    _send_bundle(ring)
    client, server = tcp_pair
    ring.setup_buf_ring(5, 4, 16, send=True)
    data = bytearray(b"original")
    ring.buf_ring_add(5, data)
    data[:] = b"XXXXXXXX"
    del data
    ring.prep_send_bundle(client, buf_group=5)
    ring.submit()
    assert sum(c.res() for c in _until_final(ring)) == 8
    assert recv_all(server, 8) == b"original"

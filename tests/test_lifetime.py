"""Lifetimes: user data, buffers and addresses stay alive exactly as long as
the kernel may use them; teardown in every form (queue_exit, with, del, gc of
a cycle, interpreter exit) cancels what is in flight and never lets the
kernel write into freed or reused memory; nothing leaks over many
operations."""

import array
import errno
import gc
import mmap
import os
import sys
import time
import weakref

import pytest

from py_io_uring import IoUring
from uring_helpers import TMP_CONTENT, WAIT, closed_fd, fill_pipe, prep, read_exactly, run_op, wait_one


class Token:
    """A weak-referenceable stand-in for user data."""


# --------------------------------------------------------------------------
# User data


def test_get_data_is_the_very_object(ring):
    token = Token()
    sqe = ring.get_sqe()
    sqe.prep_nop()
    sqe.set_data(token)
    assert sqe.get_data() is token
    ring.submit()
    cqe = ring.wait_cqe()
    assert cqe.get_data() is token
    ring.cqe_seen(cqe)
    assert cqe.get_data() is token
    assert sqe.get_data() is token


@pytest.mark.parametrize("data", [0, "", (), None, [1, 2], {"k": "v"}, 2 ** 100], ids=repr)
def test_any_object_as_data(ring, data):
    sqe = ring.get_sqe()
    sqe.set_data(data)
    ring.submit()
    cqe = wait_one(ring)
    assert cqe.get_data() is data


def test_data_defaults_to_none(ring):
    sqe, cqe = run_op(ring, "nop")
    assert sqe.get_data() is None
    assert cqe.get_data() is None


def test_set_data_replaces_and_releases_previous(ring):
    a, b = Token(), Token()
    rc_a, rc_b = sys.getrefcount(a), sys.getrefcount(b)
    sqe = ring.get_sqe()
    sqe.prep_nop()
    sqe.set_data(a)
    assert sys.getrefcount(a) > rc_a
    sqe.set_data(b)
    assert sys.getrefcount(a) == rc_a
    ring.submit()
    cqe = wait_one(ring)
    assert cqe.get_data() is b
    del sqe, cqe
    gc.collect()
    assert sys.getrefcount(b) == rc_b


def test_data_kept_alive_while_in_flight_then_freed(ring):
    token = Token()
    ref = weakref.ref(token)
    sqe = prep(ring, "timeout", 0.1, tag=token)
    ring.submit()
    del token, sqe  # the caller keeps nothing
    gc.collect()
    assert ref() is not None, "user data freed while the operation is in flight"
    cqe = ring.wait_cqe(timeout=WAIT)
    assert cqe is not None
    assert cqe.get_data() is ref()
    ring.cqe_seen(cqe)
    assert cqe.get_data() is ref()  # still there after cqe_seen
    del cqe
    gc.collect()
    assert ref() is None, "user data leaked after its completion was dropped"


def test_data_of_many_in_flight_operations(ring):
    tokens = [Token() for _ in range(32)]
    refs = [weakref.ref(t) for t in tokens]
    for i, t in enumerate(tokens):
        prep(ring, "timeout", 0.01 * (i % 4), tag=t)
    ring.submit()
    del tokens, t
    gc.collect()
    assert all(r() is not None for r in refs)
    seen = []
    for _ in range(32):
        cqe = wait_one(ring)
        seen.append(cqe.get_data())
        del cqe
    assert sorted(map(id, seen)) == sorted(id(r()) for r in refs)
    del seen
    gc.collect()
    assert all(r() is None for r in refs)


def test_data_in_reference_cycle_with_sqe(ring):
    # data -> sqe -> data: collected once the operation is over.
    sqe = prep(ring, "nop")
    holder = Token()
    holder.sqe = sqe
    sqe.set_data(holder)
    ref = weakref.ref(holder)
    ring.submit()
    del holder, sqe
    cqe = wait_one(ring)
    del cqe
    gc.collect()
    assert ref() is None


# --------------------------------------------------------------------------
# Buffers


def test_read_buffer_kept_alive_while_in_flight(ring, pipe, tmp_path):
    r, w = pipe
    # A file-backed mmap: what the kernel writes into it is visible in the
    # file even after the mmap object is gone.
    backing = tmp_path / "backing"
    backing.write_bytes(b"\0" * 16)
    with open(backing, "r+b") as f:
        m = mmap.mmap(f.fileno(), 16)
    ref = weakref.ref(m)
    sqe = prep(ring, "read", r, m)
    ring.submit()
    with pytest.raises(BufferError):
        m.close()  # exported to the kernel
    del m, sqe
    gc.collect()
    assert ref() is not None, "read buffer freed while the kernel may write it"
    os.write(w, b"filled")
    cqe = wait_one(ring)
    assert cqe.getresult() == 6
    del cqe
    gc.collect()
    assert ref() is None, "read buffer leaked"
    assert backing.read_bytes() == b"filled" + b"\0" * 10


def test_read_buffer_refcount_returns_to_baseline(ring, pipe):
    r, w = pipe
    buf = bytearray(8)
    base = sys.getrefcount(buf)
    sqe = prep(ring, "read", r, buf)
    ring.submit()
    assert sys.getrefcount(buf) > base
    os.write(w, b"12345678")
    cqe = wait_one(ring)
    assert buf == b"12345678"
    del sqe, cqe
    gc.collect()
    assert sys.getrefcount(buf) == base


def test_write_buffer_kept_alive_and_unchanged_while_in_flight(ring, pipe):
    r, w = pipe
    filled = fill_pipe(w)  # the write below has to wait for room
    m = mmap.mmap(-1, 4096)
    m[:] = TMP_CONTENT
    ref = weakref.ref(m)
    sqe = prep(ring, "write", w, m)
    ring.submit()
    assert ring.wait_cqe(timeout=0.05) is None
    with pytest.raises(BufferError):
        m.close()
    del m, sqe
    gc.collect()
    assert ref() is not None, "write buffer freed while the kernel may read it"
    assert read_exactly(r, filled) == b"\xaa" * filled
    cqe = wait_one(ring)
    n = cqe.getresult()
    assert 0 < n <= 4096
    assert read_exactly(r, n) == TMP_CONTENT[:n]
    del cqe
    gc.collect()
    assert ref() is None, "write buffer leaked"


def test_bytearray_write_source_cannot_be_resized_while_in_flight(ring, pipe):
    r, w = pipe
    filled = fill_pipe(w)
    data = bytearray(b"payload")
    prep(ring, "write", w, data)
    ring.submit()
    with pytest.raises(BufferError):
        data.extend(b"more")
    with pytest.raises(BufferError):
        del data[0]
    read_exactly(r, filled)
    assert wait_one(ring).getresult() == 7
    assert read_exactly(r, 7) == b"payload"


def test_read_result_bytes_outlive_the_ring(tmp_file):
    r = IoUring(4)
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        _, cqe = run_op(r, "read", fd, 64, 0)
    finally:
        os.close(fd)
    r.queue_exit()
    del r
    gc.collect()
    assert cqe.res() == 64
    assert cqe.getresult() == TMP_CONTENT[:64]


def test_accept_address_outlives_the_ring(listener):
    import socket

    r = IoUring(4)
    sqe = prep(r, "accept", listener)
    r.submit()
    with socket.create_connection(listener.getsockname(), timeout=WAIT) as client:
        cqe = wait_one(r)
        os.close(cqe.getresult())
        expected = client.getsockname()
    r.queue_exit()
    del r
    gc.collect()
    assert cqe.convert_address() == expected
    assert sqe.convert_address() == expected


# --------------------------------------------------------------------------
# Teardown with operations in flight


class InFlight:
    """Operations that never complete on their own: a recv on a socket that
    gets no data, a 60-second timeout, a read into a bytearray from an empty
    pipe; plus an Sqe acquired and one prepared but never submitted.  Their
    user data are Tokens watched by weak references."""

    def __init__(self, ring, server, pipe_r):
        self.server = server
        self.pipe_r = pipe_r
        self.buf = bytearray(16)
        tokens = [Token() for _ in range(4)]
        self.refs = [weakref.ref(t) for t in tokens]
        prep(ring, "recv", server, 100, tag=tokens[0])
        self.timeout_sqe = prep(ring, "timeout", 60, tag=tokens[1])
        prep(ring, "read", pipe_r, self.buf, tag=tokens[2])
        assert ring.submit() >= 3
        prep(ring, "nop", tag=tokens[3])  # prepared, never submitted
        ring.get_sqe()  # acquired, never prepared
        assert ring.wait_cqe(timeout=0.05) is None

    def check_cancelled(self, client, pipe_w):
        """After teardown: nothing consumed data meant for the cancelled
        operations, nothing was written into the buffer, and the user data
        were released."""
        self.timeout_sqe = None
        gc.collect()
        assert [r() for r in self.refs] == [None] * 4, "user data not released at teardown"
        os.write(pipe_w, b"late pipe data")
        client.sendall(b"late socket data")
        os.set_blocking(self.pipe_r, False)
        assert os.read(self.pipe_r, 100) == b"late pipe data"
        self.server.settimeout(WAIT)
        assert self.server.recv(100) == b"late socket data"
        assert self.buf == bytearray(16)
        self.buf.extend(b"released")  # no longer exported


@pytest.mark.parametrize("how", ["queue_exit", "with", "del", "cycle"])
def test_teardown_cancels_in_flight_operations(tcp_pair, pipe, how):
    client, server = tcp_pair
    r, w = pipe
    ring = IoUring(16)
    ring_ref = weakref.ref(ring)
    if how == "cycle":
        # ring -> operation record -> user data -> ring: only the cycle
        # collector can free it.
        prep(ring, "timeout", 60, tag=ring)
    state = InFlight(ring, server, r)
    t0 = time.monotonic()
    if how == "queue_exit":
        ring.queue_exit()
    elif how == "with":
        with ring:
            pass
    else:
        state.timeout_sqe = None
        del ring
        gc.collect()
        assert ring_ref() is None, "the ring was not freed"
    assert time.monotonic() - t0 < WAIT
    state.check_cancelled(client, w)


def test_ring_referenced_by_its_own_pending_data_is_collected(pipe):
    # sqe.set_data(ring) on an in-flight read into a pinned bytearray: the
    # collector frees the ring, and the read is cancelled first.
    r, w = pipe
    ring = IoUring(8)
    buf = bytearray(4)
    sqe = ring.get_sqe()
    sqe.prep_read(r, buf)
    sqe.set_data(ring)
    ring.submit()
    ref = weakref.ref(ring)
    del ring, sqe
    t0 = time.monotonic()
    gc.collect()
    assert ref() is None
    assert time.monotonic() - t0 < WAIT
    os.write(w, b"data")
    os.set_blocking(r, False)
    assert os.read(r, 10) == b"data"
    assert buf == bytearray(4)


def test_queue_exit_after_completions_not_reaped():
    # Completed but unseen completions, and Cqe objects still held, are fine
    # at teardown; the Cqe objects stay valid.
    r = IoUring(8)
    tok = Token()
    for i in range(4):
        prep(r, "nop", tag=tok)
    r.submit()
    cqes = r.wait_cqe_nr(4, timeout=WAIT)
    assert len(cqes) == 4
    r.queue_exit()
    assert [c.get_data() for c in cqes] == [tok] * 4
    assert [c.res() for c in cqes] == [0] * 4


def test_interpreter_exit_with_operations_in_flight(run_py):
    code = r"""
import gc, os, socket
import py_io_uring

# A module-global ring with several kinds of pending operations.
ring = py_io_uring.IoUring(16)
a, b = (s.detach() for s in socket.socketpair())   # fds, left open on purpose
rfd, wfd = os.pipe()
buf = bytearray(16)
for prep, args in (("prep_timeout", (60,)), ("prep_recv", (a, 100)),
                   ("prep_read", (rfd, buf)), ("prep_read", (rfd, 32))):
    s = ring.get_sqe()
    getattr(s, prep)(*args)
    s.set_data([ring, buf])
ring.submit()
ring.get_sqe()          # acquired, never submitted

# A ring kept alive only by a cycle through its own user data.
r2 = py_io_uring.IoUring(8)
s = r2.get_sqe(); s.prep_timeout(60); s.set_data(r2); r2.submit()
del s, r2

# A ring that is inside a `with` block when the interpreter exits.
r3 = py_io_uring.IoUring(8)
r3.__enter__()
s = r3.get_sqe(); s.prep_read(rfd, bytearray(8)); r3.submit()
print("done", flush=True)
"""
    t0 = time.monotonic()
    proc = run_py(code, timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"
    assert proc.stderr == ""
    assert elapsed < 30


# --------------------------------------------------------------------------
# Leaks


def _snapshot(*objs):
    gc.collect()
    return (
        [sys.getrefcount(o) for o in objs],
        len(gc.get_objects()),
        sys.getallocatedblocks(),
    )


def test_no_leaks_over_100k_operations():
    ring = IoUring(64)
    zero = os.open("/dev/zero", os.O_RDONLY)
    null = os.open("/dev/null", os.O_WRONLY)
    bad = closed_fd()
    obj = Token()
    data = b"payload" * 4
    buf = bytearray(16)
    view = memoryview(buf)[:8]
    arr = array.array("i", range(4))

    def rounds(n):
        errors = 0
        for _ in range(n):
            for _ in range(8):
                s = ring.get_sqe()
                s.prep_nop()
                s.set_data(obj)
                s = ring.get_sqe()
                s.prep_read(zero, 16)
                s.set_data(obj)
                s = ring.get_sqe()
                s.prep_read(zero, buf)
                s.set_data(obj)
                s = ring.get_sqe()
                s.prep_read(zero, view)
                s.set_data(data)
                s = ring.get_sqe()
                s.prep_write(null, data)
                s.set_data(obj)
                s = ring.get_sqe()
                s.prep_write(null, arr)
                s.set_data(arr)
                s = ring.get_sqe()
                s.prep_read(bad, 16)  # fails: EBADF
                s.set_data(obj)
                ring.get_sqe()  # bare: a nop without data
            assert ring.submit() == 64
            got = 0
            while got < 64:
                cqes = ring.wait_cqe_nr(64 - got, timeout=WAIT)
                assert cqes, "completions missing"
                for c in cqes:
                    try:
                        c.getresult()
                    except OSError:
                        errors += 1
                    ring.cqe_seen(c)
                got += len(cqes)
        assert errors == 8 * n

    try:
        rounds(20)  # warm-up: caches, free lists, first-use allocations
        before = _snapshot(obj, data, buf, view, arr)
        t0 = time.monotonic()
        rounds(1563)  # 100,032 operations
        elapsed = time.monotonic() - t0
        after = _snapshot(obj, data, buf, view, arr)
    finally:
        ring.queue_exit()
        os.close(zero)
        os.close(null)
    assert after[0] == before[0], "references leaked (obj, data, buf, view, arr)"
    assert abs(after[1] - before[1]) < 50, "gc-tracked objects grew by %d" % (after[1] - before[1])
    assert after[2] - before[2] < 100, "allocated blocks grew by %d" % (after[2] - before[2])
    assert elapsed < 120


def test_no_leaks_over_many_rings(pipe):
    r, w = pipe

    def churn(n):
        for i in range(n):
            ring = IoUring(8)
            prep(ring, "timeout", 60, tag=Token())
            prep(ring, "read", r, bytearray(8))
            prep(ring, "read", r, 8)
            ring.submit()
            ring.get_sqe()
            if i % 2:
                ring.queue_exit()
            del ring

    def open_fds():
        return len(os.listdir("/proc/self/fd"))

    churn(10)
    gc.collect()
    fds, blocks = open_fds(), sys.getallocatedblocks()
    churn(200)
    gc.collect()
    assert open_fds() == fds, "ring file descriptors leaked"
    assert sys.getallocatedblocks() - blocks < 100
    # None of the cancelled reads consumed pipe data.
    os.write(w, b"x")
    os.set_blocking(r, False)
    assert os.read(r, 10) == b"x"


def test_error_results_do_not_leak(ring):
    # getresult() raising many times (exceptions, tracebacks) leaks nothing.
    def fail(n):
        for _ in range(n):
            s = ring.get_sqe()
            s.prep_openat(-100, "/nonexistent/py_io_uring")
            ring.submit()
            c = wait_one(ring)
            with pytest.raises(FileNotFoundError):
                c.getresult()
            assert c.res() == -errno.ENOENT

    fail(50)
    gc.collect()
    blocks = sys.getallocatedblocks()
    fail(2000)
    gc.collect()
    assert sys.getallocatedblocks() - blocks < 100

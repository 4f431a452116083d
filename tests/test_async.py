"""AsyncRing on the stock asyncio loop and on uvloop: round trips, one
submit per loop iteration, real kernel-side cancellation with buffers kept
alive until the kernel is done, closing with operations in flight."""

import asyncio
import errno
import gc
import os
import socket
import weakref

import pytest

import py_io_uring
from py_io_uring import AsyncRing
from uring_helpers import fork

try:
    import uvloop
except ImportError:  # pragma: no cover - CI installs it (make deps-test)
    uvloop = None

# make leaks repeats the asyncio runs only: uvloop (Debian's 0.17 under
# python3.11-dbg) keeps about 207 references per loop it creates, measured
# with a bare loop and no py_io_uring; the module's code paths are the same
# on both loops
LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.no_leakcheck)]


@pytest.fixture(params=LOOPS)
def run(request):
    """run(coroutine function) on a fresh loop of the parametrized kind."""
    if request.param == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed (make deps-test installs it)")

    def runner(fn, *args):
        loop = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(fn(*args), 30))
        finally:
            loop.close()

    runner.kind = request.param
    return runner


class Buf(bytearray):
    """A bytearray that can be weakly referenced, to see when it dies."""


def open_fds():
    return len(os.listdir("/proc/self/fd"))


async def settle(ring, limit=200):
    """Let the loop run until the ring has nothing in flight."""
    for _ in range(limit):
        if ring.in_flight() == 0:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("operations still in flight: %d" % ring.in_flight())


def sock_pair():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    ls.close()
    return c, s


# ---------------------------------------------------------------- round trips

def test_file_round_trip(run, tmp_path):
    path = tmp_path / "f"

    async def main():
        async with AsyncRing() as ring:
            fd = await ring.openat(py_io_uring.AT_FDCWD, str(path), os.O_RDWR | os.O_CREAT, 0o600)
            assert isinstance(fd, int) and fd >= 0
            assert await ring.write(fd, b"hello io_uring", 0) == 14
            assert await ring.fsync(fd) == 0
            assert await ring.read(fd, 100, 0) == b"hello io_uring"
            buf = bytearray(5)
            assert await ring.read(fd, buf, 6) == 5       # in place
            assert buf == b"io_ur"
            st = await ring.statx(py_io_uring.AT_FDCWD, str(path))
            assert st.st_size == 14
            assert await ring.close(fd) == 0
            with pytest.raises(OSError) as e:
                os.fstat(fd)
            assert e.value.errno == errno.EBADF
        assert ring.closed

    run(main)


def test_socket_round_trip(run):
    async def main():
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        c = socket.socket()
        async with AsyncRing() as ring:
            acc = asyncio.ensure_future(ring.accept(ls))
            assert await ring.connect(c, ls.getsockname()) == 0
            fd, addr = await acc
            assert addr == c.getsockname()
            payload = os.urandom(3 << 20)              # larger than any socket buffer
            sender = asyncio.ensure_future(ring.send_all(c, payload))
            got = bytearray()
            buf = bytearray(65536)
            while len(got) < len(payload):
                n = await ring.recv(fd, buf)
                assert n > 0
                got += buf[:n]
            assert await sender == len(payload)
            assert bytes(got) == payload
            assert await ring.send(fd, b"pong") == 4
            assert await ring.recv(c, 10) == b"pong"
            await ring.shutdown(c, socket.SHUT_WR)
            assert await ring.recv(fd, 10) == b""          # the peer closed
            await ring.close(fd)
        c.close()
        ls.close()

    run(main)


def test_loop_sock_shapes(run):
    async def main():
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        c = socket.socket()
        async with AsyncRing() as ring:
            acc = asyncio.ensure_future(ring.sock_accept(ls))
            assert await ring.sock_connect(c, ls.getsockname()) is None
            conn, addr = await acc
            assert isinstance(conn, socket.socket)
            assert addr == c.getsockname()
            assert conn.getblocking() is False                # as loop.sock_accept gives
            assert await ring.sock_sendall(c, b"x" * 100000) is None
            got = 0
            while got < 100000:
                got += len(await ring.sock_recv(conn, 65536))
            assert got == 100000
            await ring.sock_sendall(conn, b"abc")
            buf = bytearray(8)
            assert await ring.sock_recv_into(c, buf) == 3
            assert buf[:3] == b"abc"
            with pytest.raises(TypeError):
                ring.sock_recv(c)
            with pytest.raises(TypeError):
                ring.sock_recv_into(c, 5)
            conn.close()
        c.close()
        ls.close()

    run(main)


def test_errors_are_oserror_subclasses(run, tmp_path):
    async def main():
        async with AsyncRing() as ring:
            with pytest.raises(FileNotFoundError) as e:
                await ring.openat(py_io_uring.AT_FDCWD, str(tmp_path / "missing"), os.O_RDONLY)
            assert e.value.errno == errno.ENOENT
            r, w = os.pipe()
            os.close(r)
            os.close(w)
            with pytest.raises(OSError) as e:
                await ring.read(r, 10)
            assert e.value.errno == errno.EBADF
            with pytest.raises(TimeoutError):
                await ring.timeout(0.01)                        # -ETIME
            # bad arguments raise at the call, with nothing left in flight
            with pytest.raises(TypeError):
                ring.read("not an fd", 10)
            with pytest.raises(ValueError):
                ring.read(0, -1)
            with pytest.raises(TypeError):
                ring.write(1, 12345)
            with pytest.raises(ValueError):
                ring.nop(sqe_flags=py_io_uring.IOSQE_IO_LINK)
            with pytest.raises(OverflowError):
                ring.nop(buf_group=1 << 16)
            await settle(ring)

    run(main)


def test_outside_a_running_loop():
    ring = AsyncRing(8)
    with pytest.raises(RuntimeError):
        ring.nop()
    assert ring.in_flight() == 0
    del ring
    gc.collect()


def test_bound_to_one_loop(run):
    ring = AsyncRing(8)

    async def use():
        assert await ring.nop() == 0

    run(use)
    with pytest.raises(RuntimeError, match="another event loop"):
        run(use)
    del ring
    gc.collect()


def test_use_after_aclose(run):
    async def main():
        ring = AsyncRing(8)
        await ring.aclose()
        await ring.aclose()                                    # idempotent
        assert ring.closed
        with pytest.raises(RuntimeError, match="closed"):
            ring.nop()
        with pytest.raises(ValueError):
            ring.fileno()

    run(main)


def test_constructor_arguments():
    with pytest.raises(ValueError):
        AsyncRing(None)
    with pytest.raises(OSError):
        AsyncRing(1 << 20)                                     # too many entries
    ring = AsyncRing(4, cq_entries=64)
    assert ring.get_ring().sq_space_left() == 4
    assert "unbound" in repr(ring)


# ---------------------------------------------------------------- batching

def test_one_submit_per_loop_iteration(run, tmp_path):
    path = tmp_path / "blocks"
    block = 512
    data = os.urandom(block * 1000)
    path.write_bytes(data)

    async def task(ring, fd, first):
        # all ten of a task's reads are prepared in the same iteration
        offs = [(first + k) * block for k in range(10)]
        got = await asyncio.gather(*[ring.read(fd, block, o) for o in offs])
        for o, g in zip(offs, got):
            assert g == data[o:o + block]

    async def main():
        fd = os.open(path, os.O_RDONLY)
        async with AsyncRing(1024) as ring:
            before = ring.stats()
            # gather() starts the 100 tasks in one iteration; their 1,000
            # reads go in with a single io_uring_submit
            await asyncio.gather(*[task(ring, fd, 10 * t) for t in range(100)])
            after = ring.stats()
            assert after["ops"] - before["ops"] == 1000
            assert after["completions"] - before["completions"] == 1000
            assert after["submits"] - before["submits"] == 1
        os.close(fd)

    run(main)


def test_full_submission_queue_flushes_at_once(run):
    async def main():
        async with AsyncRing(8) as ring:
            results = await asyncio.gather(*[ring.nop() for _ in range(100)])
            assert results == [0] * 100
            st = ring.stats()
            assert st["submits"] >= 100 // 8
            assert st["in_flight"] == 0

    run(main)


def test_more_in_flight_than_the_completion_queue(run):
    # 600 pending reads on pipes with an 8-entry ring (16 CQEs): the
    # completions overflow the CQ and are all delivered (IORING_FEAT_NODROP)
    async def main():
        pipes = [os.pipe() for _ in range(300)]
        async with AsyncRing(8) as ring:
            futs = [ring.read(r, 4) for r, _ in pipes for _ in range(2)]
            await asyncio.sleep(0.05)
            for i, (_, w) in enumerate(pipes):
                os.write(w, b"%04d%04d" % (i, i))
            got = await asyncio.gather(*futs)
            for i in range(300):
                assert got[2 * i] + got[2 * i + 1] == b"%04d%04d" % (i, i)
        for r, w in pipes:
            os.close(r)
            os.close(w)

    run(main)


# ---------------------------------------------------------------- cancellation

@pytest.mark.parametrize("kind", ["recv", "read_pipe", "poll", "timeout", "accept", "epoll_wait"])
def test_cancel_pending_operation(run, kind):
    """Cancelling the task cancels the op in the kernel at once; the buffer
    stays alive (and pinned) until the kernel's final completion, and is
    never written afterwards."""
    async def main():
        c, s = sock_pair()
        r, w = os.pipe()
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        ep = __import__("select").epoll()
        ep.register(r, 1)
        fds_before = open_fds()
        buf = Buf(64)
        ref = weakref.ref(buf)
        async with AsyncRing() as ring:
            if kind == "recv":
                fut = ring.recv(s, buf)
            elif kind == "read_pipe":
                fut = ring.read(r, buf)
            elif kind == "poll":
                fut = ring.poll_add(s, 1)
            elif kind == "timeout":
                fut = ring.timeout(30.0)
            elif kind == "accept":
                fut = ring.accept(ls)
            else:
                fut = ring.epoll_wait(ep, 4)
            task = asyncio.ensure_future(fut)
            await asyncio.sleep(0.02)
            assert ring.in_flight() == 1
            if kind in ("recv", "read_pipe"):
                with pytest.raises(BufferError):
                    buf.extend(b"x")                  # pinned while in flight
            del buf
            gc.collect()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await settle(ring)                        # the kernel confirmed
            gc.collect()
            assert ref() is None                      # released only now
            # the cancelled op consumes nothing that comes later
            c.send(b"later")
            os.write(w, b"later")
            assert await ring.recv(s, 10) == b"later"
            assert await ring.read(r, 10) == b"later"
        assert open_fds() == fds_before
        for x in (c, s, ls, ep):
            x.close()
        os.close(r)
        os.close(w)

    run(main)


@pytest.mark.parametrize("kind", ["readv", "recvmsg", "splice", "futex_wait", "waitid"])
def test_cancel_more_kinds(run, kind):
    """More shapes of pending operation: vectored buffers, a msghdr, two
    fds, a futex word, a child process; each cancelled in the kernel, its
    memory released only after the final completion."""
    async def main():
        c, s = sock_pair()
        r, w = os.pipe()
        r2, w2 = os.pipe()
        bufs = [Buf(8), Buf(8)]
        refs = [weakref.ref(b) for b in bufs]
        child = None
        async with AsyncRing() as ring:
            if kind == "readv":
                fut = ring.readv(r, bufs)
            elif kind == "recvmsg":
                fut = ring.recvmsg(s, 64, 64)
            elif kind == "splice":
                fut = ring.splice(r, -1, w2, -1, 100)
            elif kind == "futex_wait":
                fut = ring.futex_wait(memoryview(bufs[0])[:4], 0)
            else:
                child = fork()
                if child == 0:
                    os.read(r, 1)              # waits for the parent's word
                    os._exit(3)
                fut = ring.waitid(os.P_PID, child, os.WEXITED)
            task = asyncio.ensure_future(fut)
            await asyncio.sleep(0.02)
            assert ring.in_flight() == 1 and not task.done()
            del bufs
            gc.collect()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await settle(ring)
            gc.collect()
            assert all(ref() is None for ref in refs)
            # nothing the cancelled op would have taken is gone
            os.write(w, b"z")
            if kind == "waitid":
                st = await ring.waitid(os.P_PID, child, os.WEXITED)
                assert st.si_pid == child and st.si_status == 3
            else:
                assert await ring.read(r, 10) == b"z"
        for x in (c, s):
            x.close()
        for fd in (r, w, r2, w2):
            os.close(fd)

    run(main)


def test_wait_for_timeout_cancels_in_kernel(run):
    async def main():
        c, s = sock_pair()
        async with AsyncRing() as ring:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ring.recv(s, 100), 0.05)
            await settle(ring)
            c.send(b"after the timeout")
            assert await asyncio.wait_for(ring.recv(s, 100), 5) == b"after the timeout"
        c.close()
        s.close()

    run(main)


def test_cancel_racing_completion_closes_the_fd(run):
    """An accept that completes after its task was cancelled: nobody gets
    the fd, so it is closed, never leaked."""
    async def main():
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        before = open_fds()
        async with AsyncRing() as ring:
            fut = ring.accept(ls)
            await asyncio.sleep(0.01)                # submitted
            # the kernel accepts at once; the loop has not seen it yet
            c = socket.create_connection(ls.getsockname())
            assert fut.cancel()                      # the waiter is gone
            await settle(ring)
            c.settimeout(5)
            assert c.recv(10) == b""                 # the server side was closed
            c.close()
        assert open_fds() == before
        ls.close()

    run(main)


def test_cancelled_openat_result_is_closed(run, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")

    async def main():
        before = open_fds()
        async with AsyncRing() as ring:
            for _ in range(50):
                fut = ring.openat(py_io_uring.AT_FDCWD, str(path), os.O_RDONLY)
                fut.cancel()                         # before it is even submitted
            await settle(ring)
        assert open_fds() == before

    run(main)


def test_cancel_stress_every_op_ends_once(run):
    """Cancels racing completions: every future ends exactly once (a result
    or CancelledError), nothing stays in flight, no fd leaks."""
    async def main():
        pairs = [sock_pair() for _ in range(20)]
        before = open_fds()
        async with AsyncRing(64) as ring:
            for round_ in range(20):
                futs = [ring.recv(s, 16) for _, s in pairs]
                await asyncio.sleep(0)
                for i, (c, _) in enumerate(pairs):
                    if (i + round_) % 2:
                        c.send(b"%d" % i)
                for i, f in enumerate(futs):
                    # no data: must be cancelled; data: cancelled now and then,
                    # racing the completion already on its way
                    if (i + round_) % 2 == 0 or (i + round_) % 3 == 0:
                        f.cancel()
                await asyncio.sleep(0.01)
                await settle(ring)
                outcomes = 0
                for i, f in enumerate(futs):
                    assert f.done()
                    if f.cancelled():
                        outcomes += 1
                    else:
                        assert f.result() == b"%d" % i
                        outcomes += 1
                assert outcomes == len(futs)
                # drain what cancelled recvs left in the sockets
                for _, s in pairs:
                    s.setblocking(False)
                    try:
                        s.recv(100)
                    except BlockingIOError:
                        pass
                    s.setblocking(True)
        assert open_fds() == before
        for c, s in pairs:
            c.close()
            s.close()

    run(main)


# ---------------------------------------------------------------- closing

def test_aclose_with_operations_in_flight(run):
    async def main():
        c, s = sock_pair()
        r, w = os.pipe()
        ring = AsyncRing()
        bufs = [Buf(32) for _ in range(5)]
        refs = [weakref.ref(b) for b in bufs]
        futs = [ring.recv(s, b) for b in bufs] + [ring.read(r, 10), ring.timeout(60.0)]
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        it = ring.multishot_accept(ls)
        await asyncio.sleep(0.02)
        del bufs
        await ring.aclose()
        assert ring.closed and ring.in_flight() == 0
        for f in futs:
            assert f.cancelled()      # not an OSError nobody may retrieve
        gc.collect()
        assert all(ref() is None for ref in refs)
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()
        for x in (c, s, ls):
            x.close()
        os.close(r)
        os.close(w)

    run(main)


def test_exception_inside_async_with(run):
    async def main():
        c, s = sock_pair()
        holder = []
        with pytest.raises(ZeroDivisionError):
            async with AsyncRing() as ring:
                holder.append(ring)
                holder.append(ring.recv(s, 10))
                await asyncio.sleep(0.01)
                1 / 0
        ring, fut = holder
        assert ring.closed and ring.in_flight() == 0
        assert fut.cancelled()
        c.close()
        s.close()

    run(main)


def test_garbage_collected_without_aclose(run):
    c, s = sock_pair()

    async def main():
        ring = AsyncRing()
        fut = ring.recv(s, 10)
        await asyncio.sleep(0.01)
        assert ring.in_flight() == 1
        return weakref.ref(ring), fut

    # the loop closes with the ring never closed: collecting it tears the
    # ring down (the recv is cancelled in the kernel) and says so
    with pytest.warns(ResourceWarning, match="AsyncRing was not closed"):
        ref, fut = run(main)
        gc.collect()
    assert ref() is None
    assert not fut.done()           # its loop is gone; nobody resolves it
    c.send(b"x")                    # the cancelled recv consumed nothing
    s.settimeout(5)
    assert s.recv(10) == b"x"
    c.close()
    s.close()


def test_reader_removed_after_close(run):
    async def main():  # noqa: the fstat below relies on no fd opened since
        ring = AsyncRing()
        async with ring:
            fd = ring.fileno()
            assert await ring.nop() == 0
        assert ring.closed
        loop = asyncio.get_running_loop()
        if run.kind == "asyncio":
            assert fd not in loop._selector.get_map()    # the reader is gone
        with pytest.raises(OSError) as e:
            os.fstat(fd)                               # and the eventfd closed
        assert e.value.errno == errno.EBADF

    run(main)


# ---------------------------------------------------------------- multishot

def test_multishot_accept_iterator(run):
    async def main():
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        before = open_fds()
        async with AsyncRing() as ring:
            clients = [socket.create_connection(ls.getsockname()) for _ in range(4)]
            names = {c.getsockname() for c in clients}
            seen = set()
            async for fd, addr in ring.multishot_accept(ls):
                seen.add(addr)
                os.close(fd)
                if len(seen) == 4:
                    break
            assert seen == names
            await settle(ring)                       # break cancelled it in the kernel
            for c in clients:
                c.close()
        assert open_fds() == before
        ls.close()

    run(main)


def test_multishot_recv_over_a_buffer_ring(run):
    async def main():
        c, s = sock_pair()
        async with AsyncRing() as ring:
            ring.get_ring().setup_buf_ring(7, 8, 256)
            chunks = []

            async def reader():
                async for data in ring.recv_multishot(s, buf_group=7):
                    chunks.append(data)
                return b"".join(chunks)

            t = asyncio.ensure_future(reader())
            expect = b""
            for i in range(50):                      # more than the 8 buffers
                msg = os.urandom(100)
                expect += msg
                c.sendall(msg)
                if i % 10 == 0:
                    await asyncio.sleep(0.005)
            c.shutdown(socket.SHUT_WR)               # the stream's end ends the loop
            assert await t == expect
            await settle(ring)
        c.close()
        s.close()

    run(main)


def test_multishot_receive_with_no_buffers_fails_rather_than_spinning(run):
    # a group with no buffers answers every arming with ENOBUFS at once:
    # re-arming (as after a buffer ring ran dry mid-stream) would spin
    async def main():
        c, s = sock_pair()
        async with AsyncRing() as ring:
            it = ring.recv_multishot(s, buf_group=5)     # no buffer ring 5
            c.send(b"x")
            with pytest.raises(OSError) as e:
                await it.__anext__()
            assert e.value.errno == errno.ENOBUFS
            assert ring.stats()["ops"] == 1               # armed once, not again
            assert [x async for x in it] == []
            await settle(ring)
        c.close()
        s.close()

    run(main)


def test_multishot_iterator_cancel_and_errors(run):
    async def main():
        c, s = sock_pair()
        async with AsyncRing() as ring:
            it = ring.poll_multishot(s, 1)
            c.send(b"x")
            assert await it.__anext__() & 1
            it.cancel()
            await settle(ring)
            items = [x async for x in it]            # whatever was already queued
            assert all(x & 1 for x in items)
            # a second waiter at once is refused
            it2 = ring.poll_multishot(s, 4)          # POLLOUT: ready at once
            a = it2.__anext__()
            assert await a & 4
            it2.cancel()
            # an op that fails at once ends the iteration with its error
            r, w = os.pipe()
            os.close(r)
            os.close(w)
            with pytest.raises(OSError) as e:
                async for _ in ring.poll_multishot(r, 1):
                    pass
            assert e.value.errno == errno.EBADF
        c.close()
        s.close()

    run(main)


# ---------------------------------------------------------------- the rest

# looks up ~80 freshly built attribute names: CPython keeps blocks for them
# (references unchanged), past make leaks' block slack
@pytest.mark.no_leakcheck
def test_generated_forms_match_the_sqe_methods():
    # every awaitable form takes its prep_* method's arguments, plus the
    # keyword-only fields every SQE shares
    import inspect
    for name in dir(AsyncRing):
        prep = getattr(py_io_uring.Sqe, "prep_" + name, None)
        if prep is None or name in ("cancel", "cancel_fd"):
            continue   # hand-written: cancel(awaitable), cancel_fd(fd) with _ALL
        a = list(inspect.signature(getattr(AsyncRing, name)).parameters)
        p = list(inspect.signature(prep).parameters)
        kw = ["sqe_flags", "buf_group", "personality"]
        if "async iterator" not in getattr(AsyncRing, name).__doc__:
            kw.append("timeout")   # awaitable forms: a linked timeout
        assert a == p + kw, name
    assert not hasattr(AsyncRing, "cancel64")        # names a user_data
    assert not hasattr(AsyncRing, "link_timeout")    # only meaningful in a chain


def test_defer_taskrun(run):
    flags = py_io_uring.IORING_SETUP_SINGLE_ISSUER | py_io_uring.IORING_SETUP_DEFER_TASKRUN

    async def main():
        c, s = sock_pair()
        async with AsyncRing(64, flags) as ring:
            t = asyncio.ensure_future(ring.recv(s, 10))
            await asyncio.sleep(0.01)
            c.send(b"deferred")
            assert await asyncio.wait_for(t, 5) == b"deferred"
        c.close()
        s.close()

    run(main)


def test_trio_on_the_raw_ring():
    """Other frameworks drive an IoUring through its eventfd (docs/async.md)."""
    trio = pytest.importorskip("trio")
    from py_io_uring import IoUring

    async def main():
        efd = os.eventfd(0, os.EFD_NONBLOCK) if hasattr(os, "eventfd") else None
        if efd is None:
            pytest.skip("os.eventfd needs Python 3.10")
        r, w = os.pipe()
        with IoUring(8) as ring:
            ring.register_eventfd(efd)
            sqe = ring.get_sqe()
            sqe.prep_read(r, 10)
            sqe.set_data("pipe")
            ring.submit()
            os.write(w, b"trio")
            await trio.lowlevel.wait_readable(efd)
            os.eventfd_read(efd)
            cqe = ring.peek_cqe()
            ring.cqe_seen(cqe)
            assert (cqe.get_data(), cqe.getresult()) == ("pipe", b"trio")
        os.close(efd)
        os.close(r)
        os.close(w)

    trio.run(main)


@pytest.mark.no_leakcheck
def test_ctrl_c_with_operations_in_flight(run_py):
    """SIGINT while tasks wait on the ring: asyncio.run() cancels them, the
    ring closes inside `async with`, and the process exits cleanly."""
    code = r'''
import asyncio, os, signal, socket
from py_io_uring import AsyncRing
a, b = socket.socketpair()

async def main():
    ring = AsyncRing()
    try:
        async with ring:
            waiters = [asyncio.ensure_future(ring.recv(b, 10)) for _ in range(5)]
            await asyncio.sleep(0.05)
            print("in flight", ring.in_flight(), flush=True)
            asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
            await asyncio.gather(*waiters)
    finally:
        print("closed", ring.closed, ring.in_flight(), flush=True)

try:
    asyncio.run(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
'''
    p = run_py(code, timeout=30)
    assert "in flight 5" in p.stdout, p.stderr
    assert "closed True 0" in p.stdout and "KeyboardInterrupt" in p.stdout, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr

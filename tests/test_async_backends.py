"""AsyncRing's core behaviour on every async library it serves: asyncio,
uvloop, trio (py_io_uring.trio.TrioRing) and anyio on both of its backends
(py_io_uring.anyio.open_ring()).  Each test states a behaviour once, in
terms of a small adapter (Backend) over the library's own primitives:
reads and writes, sockets, the loop.sock_* shapes, errors, and cancellation
that loses no bytes and keeps buffers pinned until the final completion."""

import asyncio
import errno
import os
import socket

import pytest

import py_io_uring
from py_io_uring import AsyncRing

try:
    import uvloop
except ImportError:  # pragma: no cover - CI installs it (make deps-test)
    uvloop = None
try:
    import trio
    import py_io_uring.trio as pu_trio
except ImportError:  # pragma: no cover
    trio = None
try:
    import anyio
    import sniffio  # noqa: F401  (py_io_uring.anyio needs it)
except ImportError:  # pragma: no cover
    anyio = None

# make leaks repeats the asyncio, trio and anyio runs; uvloop keeps
# references per loop of its own (tests/test_async.py says how many)
BACKENDS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.no_leakcheck), "trio",
            "anyio-asyncio", "anyio-trio"]


class Backend:
    """The few primitives the tests need, each the library's own."""

    def __init__(self, kind):
        self.kind = kind
        self.lib = kind.split("-")[0]

    def run(self, fn):
        if self.kind in ("asyncio", "uvloop"):
            loop = uvloop.new_event_loop() if self.kind == "uvloop" else asyncio.new_event_loop()
            try:
                return loop.run_until_complete(asyncio.wait_for(fn(), 30))
            finally:
                loop.close()
        if self.kind == "trio":
            async def bounded():
                with trio.fail_after(30):
                    return await fn()
            return trio.run(bounded)
        return anyio.run(fn, backend=self.kind.split("-")[1])

    def ring(self, entries=64):
        """The ring for this library (called from async code)."""
        if self.lib == "anyio":
            import py_io_uring.anyio
            return py_io_uring.anyio.open_ring(entries)
        if self.lib == "trio":
            return pu_trio.TrioRing(entries)
        return AsyncRing(entries)

    async def both(self, f, g):
        """Run f() and g() concurrently; their results."""
        if self.lib in ("asyncio", "uvloop"):
            return await asyncio.gather(f(), g())
        out = [None, None]

        async def one(i, h):
            out[i] = await h()
        if self.lib == "trio":
            async with trio.open_nursery() as n:
                n.start_soon(one, 0, f)
                n.start_soon(one, 1, g)
        else:
            async with anyio.create_task_group() as tg:
                tg.start_soon(one, 0, f)
                tg.start_soon(one, 1, g)
        return out

    async def within(self, seconds, fn):
        """(timed out?, fn()'s result) with a deadline, the library's way."""
        if self.lib in ("asyncio", "uvloop"):
            try:
                return False, await asyncio.wait_for(fn(), seconds)
            except asyncio.TimeoutError:
                return True, None
        scope = trio.move_on_after(seconds) if self.lib == "trio" else anyio.move_on_after(seconds)
        value, done = None, False
        with scope:     # (anyio 3's scopes have no cancelled_caught)
            value = await fn()
            done = True
        return not done, value

    async def sleep(self, seconds):
        if self.lib in ("asyncio", "uvloop"):
            await asyncio.sleep(seconds)
        elif self.lib == "trio":
            await trio.sleep(seconds)
        else:
            await anyio.sleep(seconds)

    async def settle(self, ring, limit=400):
        for _ in range(limit):
            if ring.in_flight() == 0:
                return
            await self.sleep(0.005)
        raise AssertionError("operations still in flight: %d" % ring.in_flight())


@pytest.fixture(params=BACKENDS)
def be(request):
    kind = request.param
    if kind == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed (make deps-test installs it)")
    if "trio" in kind and trio is None:
        pytest.skip("trio is not installed (make deps-test installs it)")
    if kind.startswith("anyio") and anyio is None:
        pytest.skip("anyio and sniffio are not installed (make deps-test installs them)")
    return Backend(kind)


def test_the_ring_is_the_librarys(be):
    async def main():
        ring = be.ring()
        async with ring:
            want = pu_trio.TrioRing if "trio" in be.kind else AsyncRing
            assert type(ring) is want
        assert ring.closed

    be.run(main)


def test_file_round_trip(be, tmp_path):
    path = tmp_path / "f"

    async def main():
        async with be.ring() as ring:
            fd = await ring.openat(py_io_uring.AT_FDCWD, str(path), os.O_RDWR | os.O_CREAT, 0o600)
            assert isinstance(fd, int) and fd >= 0
            assert await ring.write(fd, b"hello io_uring", 0) == 14
            assert await ring.fsync(fd) == 0
            assert await ring.read(fd, 100, 0) == b"hello io_uring"
            buf = bytearray(5)
            assert await ring.read(fd, buf, 6) == 5       # in place
            assert buf == b"io_ur"
            st = await ring.statx(py_io_uring.AT_FDCWD, str(path))
            assert isinstance(st, os.stat_result) and st.st_size == 14
            assert await ring.close_fd(fd) == 0
            with pytest.raises(OSError) as e:
                os.fstat(fd)
            assert e.value.errno == errno.EBADF
            assert ring.in_flight() == 0
        assert ring.closed

    be.run(main)


def test_socket_round_trip(be):
    async def main():
        ls = socket.create_server(("127.0.0.1", 0))
        c = socket.socket()
        async with be.ring() as ring:
            (fd, addr), res = await be.both(lambda: ring.accept(ls),
                                            lambda: ring.connect(c, ls.getsockname()))
            assert res == 0 and addr == c.getsockname()
            payload = os.urandom(3 << 20)              # larger than any socket buffer
            got = bytearray()

            async def receive():
                buf = bytearray(65536)
                while len(got) < len(payload):
                    n = await ring.recv(fd, buf)
                    assert n > 0
                    got.extend(buf[:n])
            sent, _ = await be.both(lambda: ring.send_all(c, payload), receive)
            assert sent == len(payload) and bytes(got) == payload
            assert await ring.send(fd, b"pong") == 4
            assert await ring.recv(c, 10) == b"pong"
            await ring.shutdown(c, socket.SHUT_WR)
            assert await ring.recv(fd, 10) == b""          # the peer closed
            await ring.close_fd(fd)
        c.close()
        ls.close()

    be.run(main)


def test_loop_sock_shapes(be):
    async def main():
        ls = socket.create_server(("127.0.0.1", 0))
        c = socket.socket()
        c.setblocking(False)
        async with be.ring() as ring:
            (conn, addr), res = await be.both(lambda: ring.sock_accept(ls),
                                              lambda: ring.sock_connect(c, ls.getsockname()))
            assert res is None
            assert isinstance(conn, socket.socket) and addr == c.getsockname()
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
            conn.close()
        c.close()
        ls.close()

    be.run(main)


def test_errors(be, tmp_path):
    missing = str(tmp_path / "missing")

    async def main():
        async with be.ring() as ring:
            with pytest.raises(FileNotFoundError) as e:
                await ring.openat(py_io_uring.AT_FDCWD, missing, os.O_RDONLY)
            assert e.value.errno == errno.ENOENT and e.value.filename == missing
            r, w = os.pipe()
            os.close(r)
            os.close(w)
            with pytest.raises(OSError) as e:
                await ring.read(r, 10)
            assert e.value.errno == errno.EBADF
            with pytest.raises(TimeoutError):
                await ring.timeout(0.01)                        # -ETIME
            # bad arguments: the method called is named, nothing is in flight
            with pytest.raises(TypeError):
                await ring.read("not an fd", 10)
            with pytest.raises(ValueError, match=r"^read\(\) argument 'buf'"):
                await ring.read(0, -5)
            with pytest.raises(ValueError):
                await ring.nop(sqe_flags=py_io_uring.IOSQE_IO_LINK)
            await be.settle(ring)

    be.run(main)


def test_bytes_sent_after_a_cancel_go_to_the_next_recv(be, unix_pair):
    a, b = unix_pair

    async def main():
        async with be.ring() as ring:
            timed_out, _ = await be.within(0.05, lambda: ring.recv(a.fileno(), 100))
            assert timed_out
            b.send(b"after-cancel")
            timed_out, got = await be.within(5, lambda: ring.recv(a.fileno(), 100))
            assert not timed_out and got == b"after-cancel"
            await be.settle(ring)

    be.run(main)


def test_a_cancelled_receives_buffer_stays_pinned(be, unix_pair):
    a, b = unix_pair

    async def main():
        async with be.ring() as ring:
            buf = bytearray(16)
            timed_out, _ = await be.within(0.05, lambda: ring.recv(a.fileno(), buf))
            assert timed_out
            if ring.in_flight():
                # the kernel has not ended it yet (asyncio): still pinned
                with pytest.raises(BufferError):
                    buf.extend(b"x")
            await be.settle(ring)
            buf.extend(b"x")                  # the final completion let it go
            b.send(b"next")
            assert await ring.recv(a.fileno(), 16) == b"next"

    be.run(main)


def test_multishot_accept_iterator(be):
    async def main():
        ls = socket.create_server(("127.0.0.1", 0), backlog=8)
        clients = []
        async with be.ring() as ring:
            it = ring.multishot_accept(ls)
            for _ in range(3):
                c = socket.create_connection(ls.getsockname())
                clients.append(c)
            seen = []
            async for fd, addr in it:
                seen.append(addr)
                os.close(fd)
                if len(seen) == 3:
                    break
            assert sorted(seen) == sorted(c.getsockname() for c in clients)
            it.cancel()
            await be.settle(ring)
        for c in clients:
            c.close()
        ls.close()

    be.run(main)

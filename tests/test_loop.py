"""py_io_uring's event loop (src/py_io_uring/loop.py): the selector's
semantics that asyncio relies on, the uvloop-shaped entry points, and that
nothing is left open.  CPython's own conformance tests run on the loop in
test_loop_conformance.py."""

import asyncio
import os
import re
import selectors
import socket
import sys
import threading
import time
import warnings

import pytest

import py_io_uring
from py_io_uring.loop import EventLoop, RingSelector
from uring_helpers import count_selects, fork


def _fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_select_reports_readable_and_is_level_triggered(pair):
    a, b = pair
    sel = RingSelector()
    try:
        key = sel.register(a, selectors.EVENT_READ, "data")
        assert sel.select(0) == []
        b.send(b"xyz")
        assert sel.select(5) == [(key, selectors.EVENT_READ)]
        assert a.recv(1) == b"x"
        # two bytes still unread: reported again, as epoll's level mode does
        assert sel.select(5) == [(key, selectors.EVENT_READ)]
        assert a.recv(10) == b"yz"
        assert sel.select(0) == []
    finally:
        sel.close()


def test_select_times_out_with_nothing_ready(pair):
    a, _ = pair
    with RingSelector() as sel:
        sel.register(a, selectors.EVENT_READ)
        assert sel.select(0.05) == []


def test_modify_changes_the_events_watched(pair):
    a, b = pair
    with RingSelector() as sel:
        sel.register(a, selectors.EVENT_READ)
        assert sel.select(0) == []          # armed for reading only
        key = sel.modify(a, selectors.EVENT_WRITE, "w")
        assert key.data == "w"
        assert sel.select(5) == [(key, selectors.EVENT_WRITE)]
        key = sel.modify(a, selectors.EVENT_READ | selectors.EVENT_WRITE)
        b.send(b"1")
        assert sel.select(5) == [(key, selectors.EVENT_READ | selectors.EVENT_WRITE)]
        with pytest.raises(KeyError):
            sel.modify(b, selectors.EVENT_READ)


def test_unregister_stops_reports_even_with_the_poll_in_flight(pair):
    a, b = pair
    with RingSelector() as sel:
        sel.register(a, selectors.EVENT_READ)
        assert sel.select(0) == []          # its poll is in the kernel
        sel.unregister(a)
        b.send(b"x")
        assert sel.select(0.05) == []
        key = sel.register(a, selectors.EVENT_READ)
        assert sel.select(5) == [(key, selectors.EVENT_READ)]


def test_peer_close_is_readable(pair):
    a, b = pair
    with RingSelector() as sel:
        key = sel.register(a, selectors.EVENT_READ)
        b.close()
        assert sel.select(5) == [(key, selectors.EVENT_READ)]
        assert a.recv(1) == b""


def test_many_fds_more_than_the_ring_holds():
    socks = [socket.socketpair() for _ in range(40)]
    try:
        with RingSelector(entries=8) as sel:
            keys = {sel.register(a, selectors.EVENT_READ).fd: a for a, _ in socks}
            assert sel.select(0) == []
            for _, b in socks:
                b.send(b"!")
            seen = set()
            for _ in range(10):
                seen |= {k.fd for k, ev in sel.select(1)}
                if len(seen) == len(keys):
                    break
            assert seen == set(keys)
    finally:
        for a, b in socks:
            a.close()
            b.close()


def test_a_reader_fires_while_the_loop_spins_without_syscalls():
    # The selector's ring is set up with COOP_TASKRUN: the kernel posts a
    # poll's completion when this thread next returns to user space, not
    # through an IPI.  A loop that only spins on sleep(0) (select(0), no
    # syscall of its own) must still see the reader fire.
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        fired = []
        loop.add_reader(a.fileno(), lambda: fired.append(a.recv(10)))
        await asyncio.sleep(0.01)                  # the poll is in the kernel
        t = threading.Timer(0.05, b.send, (b"x",))
        t.start()
        deadline = time.monotonic() + 5            # a vDSO call, no syscall
        while not fired and time.monotonic() < deadline:
            await asyncio.sleep(0)
        t.join()
        loop.remove_reader(a.fileno())
        a.close()
        b.close()
        return fired

    assert py_io_uring.run(main()) == [b"x"]


def test_a_reader_wakes_the_loop_sleeping_in_its_wait():
    # ... and a loop asleep in io_uring_enter is woken by a poll that fires
    # from another thread (COOP_TASKRUN sends no IPI to a running thread;
    # a sleeping one must still be woken), both for add_reader and for the
    # loop's AsyncRing (sock_recv)
    async def main():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)            # as asyncio's debug mode requires
        got = []
        for _ in range(3):
            fut = loop.create_future()
            loop.add_reader(a.fileno(), lambda f=fut: f.done() or f.set_result(a.recv(10)))
            t = threading.Timer(0.05, b.send, (b"x",))
            t.start()
            got.append(await asyncio.wait_for(fut, 5))
            loop.remove_reader(a.fileno())
            t.join()
            t = threading.Timer(0.05, b.send, (b"y",))
            t.start()
            got.append(await asyncio.wait_for(loop.sock_recv(a, 10), 5))
            t.join()
        a.close()
        b.close()
        return got

    assert py_io_uring.run(main()) == [b"x", b"y"] * 3


def test_closing_the_selector_closes_its_ring(pair):
    a, _ = pair
    before = _fds()
    sel = RingSelector()
    sel.register(a, selectors.EVENT_READ)
    sel.select(0)
    assert _fds() == before + 1
    sel.close()
    assert _fds() == before


async def _echo_round_trip():
    async def handle(reader, writer):
        writer.write(await reader.readexactly(5))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    data = await reader.read()
    writer.close()
    server.close()
    await server.wait_closed()
    return type(asyncio.get_running_loop()), data


def test_run_runs_a_program_on_this_loop():
    before = _fds()
    assert py_io_uring.run(_echo_round_trip()) == (EventLoop, b"hello")
    assert _fds() == before


def test_install_sets_the_policy():
    old = asyncio.get_event_loop_policy()
    try:
        py_io_uring.install()
        assert isinstance(asyncio.get_event_loop_policy(), py_io_uring.EventLoopPolicy)
        assert asyncio.run(_echo_round_trip()) == (EventLoop, b"hello")
    finally:
        asyncio.set_event_loop_policy(old)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="loop_factory is 3.12+")
def test_asyncio_run_with_loop_factory():
    assert asyncio.run(_echo_round_trip(), loop_factory=py_io_uring.new_event_loop) == (
        EventLoop, b"hello")


def test_run_refuses_a_non_coroutine():
    with pytest.raises((ValueError, TypeError)):
        py_io_uring.run(42)


def test_loop_names_are_lazy_and_listed():
    assert "EventLoop" in dir(py_io_uring)
    with pytest.raises(AttributeError, match="no_such_name"):
        py_io_uring.no_such_name


def test_async_ring_works_on_this_loop(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"ring data")

    async def main():
        async with py_io_uring.AsyncRing() as ring:
            fd = os.open(str(path), os.O_RDONLY)
            try:
                return await ring.read(fd, 100, 0)
            finally:
                os.close(fd)

    assert py_io_uring.run(main()) == b"ring data"


# ---- step 2: the loop's sock_* methods are operations on its AsyncRing


def _on_loop(coro_fn, *args):
    loop = EventLoop()
    try:
        return loop.run_until_complete(coro_fn(loop, *args))
    finally:
        loop.close()


def test_sock_methods_run_on_the_loops_ring():
    async def main(loop):
        ls = socket.create_server(("127.0.0.1", 0))
        ls.setblocking(False)
        c = socket.socket()
        c.setblocking(False)
        with ls, c:
            accepting = asyncio.ensure_future(loop.sock_accept(ls))
            await loop.sock_connect(c, ls.getsockname())
            conn, addr = await accepting
            with conn:
                assert addr == c.getsockname()
                assert conn.gettimeout() == 0
                payload = os.urandom(3 << 20)   # larger than the socket buffers
                sending = asyncio.ensure_future(loop.sock_sendall(c, payload))
                got = bytearray()
                buf = bytearray(65536)
                while len(got) < len(payload):
                    n = await loop.sock_recv_into(conn, buf)
                    assert n > 0
                    got += buf[:n]
                assert await sending is None
                assert bytes(got) == payload
                await loop.sock_sendall(conn, b"back")
                assert await loop.sock_recv(c, 10) == b"back"
                stats = loop._aring.stats()
                assert stats["ops"] >= 5 and stats["in_flight"] == 0
                return True

    before = _fds()
    assert _on_loop(main)
    assert _fds() == before


def test_one_ring_and_no_eventfd_hop(pair):
    # the loop's AsyncRing is its selector's ring (selector mode): no
    # eventfd, no reader for one, no call_soon() flush; an operation's
    # completion reaches its future in the same select() that submitted it
    a, b = pair
    a.setblocking(False)

    async def main(loop):
        ring = loop._uring()
        assert ring is loop._selector._aring
        with pytest.raises(ValueError):
            ring.fileno()                  # no eventfd
        scheduled = []
        call_soon = loop.call_soon

        def spy(cb, *args, **kw):
            scheduled.append(getattr(cb, "__name__", ""))
            return call_soon(cb, *args, **kw)

        loop.call_soon = spy
        try:
            b.send(b"ready")
            selects = count_selects(loop)
            assert await loop.sock_recv(a, 10) == b"ready"
            # the select that submitted the receive reaped it: its future's
            # callback (the task's wakeup) runs in that iteration
            assert selects() == 1
        finally:
            del loop.call_soon
        assert "_flush" not in scheduled
        fds = {key.fd for key in loop._selector.get_map().values()}
        assert fds == {loop._ssock.fileno()}  # only the self-pipe is watched
        return True

    before = _fds()
    assert _on_loop(main)
    assert _fds() == before


def test_completion_transport_echo_takes_one_iteration_per_message():
    # one loop iteration per message each way (the receive's completion is
    # dispatched in the select that reaps it), where the eventfd hop took two
    rounds = 500

    class Echo(asyncio.Protocol):
        def connection_made(self, t):
            self.t = t

        def data_received(self, data):
            self.t.write(data)

    class Client(asyncio.Protocol):
        def __init__(self, done):
            self.done, self.n = done, 0

        def connection_made(self, t):
            self.t = t
            t.write(b"x" * 100)

        def data_received(self, data):
            assert data == b"x" * 100
            self.n += 1
            if self.n == rounds:
                self.done.set_result(None)
            else:
                self.t.write(data)

    async def main(loop):
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        done = loop.create_future()
        t, _ = await loop.create_connection(lambda: Client(done),
                                            *server.sockets[0].getsockname())
        selects = count_selects(loop)
        await done
        n = selects()
        t.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)              # the transports' close
        return n

    before = _fds()
    n = _on_loop_kind("uring", main)
    # one iteration per message (the eventfd hop made it two); never
    # fewer: a reply sent from a read callback completes the peer's receive
    # at once, inside that select's reap, but belongs to the next select,
    # as asyncio's selector gives an iteration one set of events
    assert rounds * 2 - 20 <= n <= rounds * 2 + 20, n
    assert _fds() == before


def test_selector_refuses_bad_fds_and_events(pair):
    a, _ = pair
    with RingSelector() as sel:
        ring = sel._aring
        with pytest.raises(ValueError):
            ring._sel_set(-1, selectors.EVENT_READ, None)
        with pytest.raises(OverflowError):
            ring._sel_set(1 << 70, selectors.EVENT_READ, None)
        for events in (0, 4, -1):
            with pytest.raises(ValueError):
                ring._sel_set(a.fileno(), events, None)
        with pytest.raises(ValueError):
            ring._sel_del(-1)
        with pytest.raises(TypeError):
            ring._sel_set(a.fileno(), 1)
        with pytest.raises(ValueError):
            sel.select(float("nan"))
        key = sel.register(a, selectors.EVENT_READ)
        with pytest.raises(ValueError):
            sel.modify(a, 8)
        assert sel.get_key(a) is key        # unchanged
        # still a working selector
        key = sel.modify(a, selectors.EVENT_WRITE)
        assert sel.select(5) == [(key, selectors.EVENT_WRITE)]


def test_a_stale_poll_after_reregistering_is_ignored(pair):
    # a poll removed by unregister() and one armed for the same fd right
    # after: the old one's -ECANCELED must not be taken for the new one's
    a, b = pair
    with RingSelector() as sel:
        for _ in range(50):
            sel.register(a, selectors.EVENT_READ)
            assert sel.select(0) == []
            sel.unregister(a)
        key = sel.register(a, selectors.EVENT_READ)
        assert sel.select(0.01) == []
        b.send(b"!")
        assert sel.select(5) == [(key, selectors.EVENT_READ)]


def test_a_plain_async_ring_is_refused_select():
    async def main():
        ring = py_io_uring.AsyncRing(8)
        try:
            with pytest.raises(RuntimeError, match="selector mode"):
                ring._select(0)
            with pytest.raises(RuntimeError, match="selector mode"):
                ring._sel_set(0, 1, None)
        finally:
            await ring.aclose()
        return True

    assert asyncio.run(main())


def test_a_forked_child_closes_the_loop_and_runs_a_new_one(pair):
    # the ring is not mapped in a child: closing the parent's loop there
    # must not touch it (it crashed), and a new loop works
    a, b = pair
    a.setblocking(False)
    loop = EventLoop()
    try:
        b.send(b"p")
        assert loop.run_until_complete(loop.sock_recv(a, 10)) == b"p"
        pid = fork()
        if pid == 0:
            code = 1
            try:
                loop.close()
                child = EventLoop()
                b.send(b"c")
                if child.run_until_complete(child.sock_recv(a, 10)) == b"c":
                    code = 0
                child.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        b.send(b"q")
        assert loop.run_until_complete(loop.sock_recv(a, 10)) == b"q"
    finally:
        loop.close()


def test_cancelled_sock_recv_keeps_its_bytes(pair):
    a, b = pair
    a.setblocking(False)

    async def main(loop):
        for i in range(50):
            task = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0)          # the receive is in the kernel
            msg = b"message %d" % i
            b.send(msg)                     # it may complete before the cancel
            task.cancel()
            try:
                got = await task
            except asyncio.CancelledError:
                got = b""
            if got != msg:
                assert got == b""
                assert await loop.sock_recv(a, 100) == msg
        return True

    assert _on_loop(main)


def test_cancelled_sock_recvfrom_keeps_its_datagram():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a.setblocking(False)
        b.setblocking(False)

        async def main(loop):
            for i in range(30):
                task = asyncio.ensure_future(loop.sock_recvfrom(a, 100))
                await asyncio.sleep(0)
                b.sendto(b"d%d" % i, a.getsockname())
                task.cancel()
                try:
                    got = await task
                except asyncio.CancelledError:
                    got = None
                if got is None:
                    buf = bytearray(100)
                    n, addr = await loop.sock_recvfrom_into(a, buf)
                    assert bytes(buf[:n]) == b"d%d" % i and addr == b.getsockname()
                else:
                    assert got == (b"d%d" % i, b.getsockname())
            n = await loop.sock_sendto(b, b"to", a.getsockname())
            assert n == 2
            assert await loop.sock_recvfrom(a, 10) == (b"to", b.getsockname())
            return True

        assert _on_loop(main)


def test_a_cancelled_sock_recvfrom_leaves_the_sockets_other_receives_alone():
    # the cancel names the one receive: another task's receive on the same
    # socket stays in the kernel and gets the next datagram
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a.setblocking(False)
        b.setblocking(False)

        async def main(loop):
            first = asyncio.ensure_future(loop.sock_recvfrom(a, 100))
            await asyncio.sleep(0)
            second = asyncio.ensure_future(loop.sock_recvfrom(a, 100))
            for _ in range(3):
                await asyncio.sleep(0)
            second.cancel()
            with pytest.raises(asyncio.CancelledError):
                await second
            for _ in range(3):
                await asyncio.sleep(0)
            assert not first.done()
            b.sendto(b"for the first", a.getsockname())
            assert await asyncio.wait_for(first, 5) == (b"for the first", b.getsockname())
            return True

        assert _on_loop(main)


def test_sock_errors_are_asyncios():
    async def main(loop):
        s = socket.socket()
        s.setblocking(False)
        with s:
            port = socket.create_server(("127.0.0.1", 0))
            addr = port.getsockname()
            port.close()
            with pytest.raises(ConnectionRefusedError):
                await loop.sock_connect(s, addr)
        loop.set_debug(True)
        blocking = socket.socket()
        with blocking, pytest.raises(ValueError, match="non-blocking"):
            await loop.sock_recv(blocking, 1)
        return True

    assert _on_loop(main)


def test_closing_the_loop_with_a_sock_recv_in_flight(pair):
    a, _ = pair
    a.setblocking(False)
    before = _fds()
    loop = EventLoop()
    task = loop.create_task(loop.sock_recv(a, 10))
    loop.run_until_complete(asyncio.sleep(0.01))
    ring = loop._aring
    assert ring.in_flight() == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no 'AsyncRing was not closed'
        loop.close()
    assert ring.closed and ring.in_flight() == 0
    assert loop._aring is None
    assert _fds() == before
    # the task can never finish on a closed loop: asyncio would log "Task was
    # destroyed but it is pending!" when it goes, and the log record (kept by
    # pytest's log capture) would count as a leak; CPython's tests do this too
    task._log_destroy_pending = False
    task.cancel()
    del task


# ---- step 3: the transports, both kinds (the selector's and the completion one)

KINDS = ["selector", "uring"]


class _Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    # eof_received() returns None: the transport closes once its writes are
    # out; the client's write_eof() is the half-close, its read the rest


class _BufferedEcho(asyncio.BufferedProtocol):
    def __init__(self):
        self.buf = bytearray(7000)      # odd size: reads split messages

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.transport.write(bytes(self.buf[:nbytes]))


def _transport_type(kind):
    from py_io_uring import _transports, loop
    return (_transports._UringSocketTransport if kind == "uring"
            else loop._SocketTransport)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("proto", [_Echo, _BufferedEcho])
def test_echo_keeps_data_whole(kind, proto):
    async def main(loop):
        server = await loop.create_server(proto, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert type(writer.transport) is _transport_type(kind)
        sent = bytearray()
        big = os.urandom(4 << 20)              # many reads and queued writes
        writer.write(big)
        sent += big
        for i in range(2000):                  # many small messages
            msg = b"%d," % i
            writer.write(msg)
            sent += msg
        writer.write_eof()
        got = await reader.read()              # to the server's half-close
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)              # the server side's close
        return bytes(sent) == got, len(got)

    before = _fds()
    ok, n = _on_loop_kind(kind, main)
    assert ok, n
    assert _fds() == before


def _on_loop_kind(kind, coro_fn):
    loop = EventLoop(transport=kind)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro_fn(loop))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def _slow_reader(loop, server):
    """A non-blocking client of server with a 4 KiB receive buffer, so the
    server's writes queue while it does not read."""
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.setblocking(False)
    try:
        await loop.sock_connect(c, server.sockets[0].getsockname())
    except BaseException:
        c.close()
        raise
    return c


@pytest.mark.parametrize("kind", KINDS)
def test_flow_control_pauses_and_resumes_writing(kind):
    events = []

    class Slow(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
            for _ in range(64):
                transport.write(b"x" * 65536)
            events.append(("size", transport.get_write_buffer_size()))

        def pause_writing(self):
            events.append("pause")

        def resume_writing(self):
            events.append("resume")
            # not close() here: asyncio's own selector transport then runs
            # connection_lost twice (closing inside _write_ready's
            # resume_writing call; CPython 3.11)
            asyncio.get_running_loop().call_soon(self.transport.close)

    async def main(loop):
        server = await loop.create_server(Slow, "127.0.0.1", 0)
        with await _slow_reader(loop, server) as c:
            await asyncio.sleep(0.1)
            assert events[:2] == ["pause", ("size", events[1][1])]
            assert events[1][1] > 64 * 1024
            assert "resume" not in events     # nobody reads: stays paused
            n = 0
            while True:                            # read it all: resumed, closed
                got = await loop.sock_recv(c, 1 << 20)
                if not got:
                    break
                n += len(got)
        server.close()
        await server.wait_closed()
        return n, events

    n, events = _on_loop_kind(kind, main)
    assert n == 64 * 65536
    assert events[-1] == "resume"


@pytest.mark.parametrize("kind", KINDS)
def test_limits_lowered_under_queued_writes_pause_then_resume_once_drained(kind):
    # writes queued under the high-water mark (no pause), then
    # set_write_buffer_limits() lowers the mark below them: asyncio pauses
    # the protocol there, and the drain must resume it, though no write
    # paused it (the completion transport skips the flow-control calls it
    # knows to be no-ops; a first queue drained before, so nothing of the
    # transport's start is left to call them anyway)
    events = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            transport.set_write_buffer_limits(high=1 << 30)
            made.set_result(transport)

        def pause_writing(self):
            events.append("pause")

        def resume_writing(self):
            events.append("resume")

    async def drain(loop, c, n):
        got = 0
        while got < n:
            got += len(await loop.sock_recv(c, 1 << 20))
        return got

    async def main(loop):
        nonlocal made
        made = loop.create_future()
        server = await loop.create_server(P, "127.0.0.1", 0)
        with await _slow_reader(loop, server) as c:
            tr = await made
            tr.write(b"x" * (1 << 20))             # queued, then drained
            assert tr.get_write_buffer_size() > 0
            await drain(loop, c, 1 << 20)
            await asyncio.sleep(0.05)
            assert tr.get_write_buffer_size() == 0 and events == []
            tr.write(b"y" * (1 << 20))             # queued again, no pause
            assert tr.get_write_buffer_size() > 1024 and events == []
            tr.set_write_buffer_limits(high=1024, low=0)
            assert events == ["pause"]
            await drain(loop, c, 1 << 20)
            for _ in range(100):
                if events == ["pause", "resume"]:
                    break
                await asyncio.sleep(0.01)
            tr.close()
        server.close()
        await server.wait_closed()

    made = None
    _on_loop_kind(kind, main)
    assert events == ["pause", "resume"]


@pytest.mark.parametrize("kind", KINDS)
def test_pause_reading_loses_nothing(kind):
    async def main(loop):
        got = bytearray()
        done = loop.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                self.t = transport

            def data_received(self, data):
                got.extend(data)
                self.t.pause_reading()
                assert not self.t.is_reading()
                loop.call_later(0.001, self.t.resume_reading)

            def eof_received(self):
                done.set_result(None)

        server = await loop.create_server(P, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = os.urandom(1 << 20)
        for i in range(0, len(payload), 4096):
            writer.write(payload[i:i + 4096])
            if i % 65536 == 0:
                await asyncio.sleep(0)
        writer.write_eof()
        await done
        writer.close()
        server.close()
        await server.wait_closed()
        return bytes(got) == payload

    assert _on_loop_kind(kind, main)


@pytest.mark.parametrize("kind", KINDS)
def test_reset_is_connection_reset_error(kind):
    async def main(loop):
        lost = loop.create_future()

        class P(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        ls = socket.create_server(("127.0.0.1", 0))
        with ls:
            tr, _ = await loop.create_connection(P, *ls.getsockname())
            peer, _ = ls.accept()
            # SO_LINGER 0: close() sends RST
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            peer.close()
            exc = await asyncio.wait_for(lost, 5)
            assert tr.is_closing()
            return exc

    assert isinstance(_on_loop_kind(kind, main), ConnectionResetError)


@pytest.mark.parametrize("kind", KINDS)
def test_closing_the_loop_with_transports_open(kind):
    before = _fds()
    loop = EventLoop(transport=kind)

    async def main():
        server = await loop.create_server(_Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        trs = [(await loop.create_connection(asyncio.Protocol, "127.0.0.1", port))[0]
               for _ in range(5)]
        await asyncio.sleep(0.01)
        server.close()
        return trs

    trs = loop.run_until_complete(main())
    # what asyncio gives: the transports left open warn when they go (the
    # server side's, garbage once the loop closed, may go at any collection,
    # and then a socket of theirs may warn too), and every fd is closed
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loop.close()
        del trs
        import gc
        gc.collect()
    assert any("unclosed transport" in str(w.message) for w in seen)
    assert all(issubclass(w.category, ResourceWarning) for w in seen), seen
    assert _fds() == before


@pytest.mark.parametrize("kind", KINDS)
def test_repr_has_asyncios_fields(kind):
    # the selector transport's repr is the spec: fd, read polling/idle,
    # write <polling/idle, bufsize>, then closing, then closed with no
    # read/write fields once the transport let go of its loop
    async def main(loop):
        ls = socket.create_server(("127.0.0.1", 0))
        with ls:
            tr, _ = await loop.create_connection(asyncio.Protocol, *ls.getsockname())
            peer, _ = ls.accept()
        with peer:
            await asyncio.sleep(0)
            name = type(tr).__name__
            fd = tr.get_extra_info("socket").fileno()
            seen = [repr(tr)]
            tr.pause_reading()
            seen.append(repr(tr))
            tr.resume_reading()
            tr.set_write_buffer_limits(high=1 << 30)
            tr.write(b"x" * (16 << 20))         # more than the socket takes
            seen.append(repr(tr))
            tr.abort()
            seen.append(repr(tr))
            await asyncio.sleep(0.01)
            seen.append(repr(tr))
        return name, fd, seen

    name, fd, seen = _on_loop_kind(kind, main)
    head = "<%s fd=%d " % (name, fd)
    assert seen[0] == head + "read=polling write=<idle, bufsize=0>>"
    assert seen[1] == head + "read=idle write=<idle, bufsize=0>>"
    m = re.fullmatch(re.escape(head) + r"read=polling write=<polling, bufsize=(\d+)>>", seen[2])
    assert m and 0 < int(m.group(1)) < 16 << 20, seen[2]
    assert seen[3] == "<%s closing fd=%d read=idle write=<idle, bufsize=0>>" % (name, fd)
    assert seen[4] == "<%s closed fd=%d>" % (name, fd)


@pytest.mark.parametrize("kind", KINDS)
def test_close_sends_pending_writes_first_and_abort_drops_them(kind):
    # asyncio's close(): what write() queued still goes out, then the
    # connection is lost (None); abort(): lost at once, the queue dropped
    async def main(loop):
        payload = os.urandom(8 << 20)
        ls = socket.create_server(("127.0.0.1", 0))
        results = {}
        with ls:
            for how in ("close", "abort"):
                lost = loop.create_future()

                class P(asyncio.Protocol):
                    def connection_lost(self, exc):
                        lost.set_result(exc)

                tr, _ = await loop.create_connection(P, *ls.getsockname())
                peer, _ = ls.accept()
                peer.setblocking(False)
                with peer:
                    tr.write(payload)
                    assert tr.get_write_buffer_size() > 0
                    getattr(tr, how)()
                    assert tr.is_closing()
                    assert not lost.done()
                    got = bytearray()
                    while True:
                        data = await loop.sock_recv(peer, 1 << 20)
                        if not data:
                            break
                        got += data
                    results[how] = (bytes(got) == payload, len(got),
                                    await asyncio.wait_for(lost, 5))
        return results

    results = _on_loop_kind(kind, main)
    assert results["close"] == (True, 8 << 20, None)
    ok, n, exc = results["abort"]
    assert not ok and n < 8 << 20 and exc is None


def test_the_default_transport_and_the_environment(monkeypatch):
    # EventLoop() and the policy's loops: the completion transport unless
    # PY_IO_URING_TRANSPORT says "selector"; a wrong value is refused
    def kind_of_new_loop(make):
        loop = make()
        try:
            async def main():
                ls = socket.create_server(("127.0.0.1", 0))
                with ls:
                    tr, _ = await loop.create_connection(asyncio.Protocol, *ls.getsockname())
                    tr.close()
                    return type(tr)
            return loop.run_until_complete(main())
        finally:
            loop.close()

    policy = py_io_uring.loop.EventLoopPolicy()
    for env, kind in ((None, "uring"), ("", "uring"), ("uring", "uring"),
                      ("selector", "selector")):
        if env is None:
            monkeypatch.delenv("PY_IO_URING_TRANSPORT", raising=False)
        else:
            monkeypatch.setenv("PY_IO_URING_TRANSPORT", env)
        assert kind_of_new_loop(EventLoop) is _transport_type(kind), env
        assert kind_of_new_loop(policy.new_event_loop) is _transport_type(kind), env
    # the argument wins over the environment
    assert kind_of_new_loop(lambda: EventLoop(transport="uring")) is _transport_type("uring")
    monkeypatch.setenv("PY_IO_URING_TRANSPORT", "uring")
    assert kind_of_new_loop(lambda: EventLoop(transport="selector")) is _transport_type("selector")
    monkeypatch.setenv("PY_IO_URING_TRANSPORT", "proactor")
    with pytest.raises(ValueError, match="PY_IO_URING_TRANSPORT must be 'selector' or 'uring'"):
        EventLoop()
    with pytest.raises(ValueError, match="transport must be 'selector' or 'uring', not 'x'"):
        EventLoop(transport="x")


@pytest.mark.parametrize("kind", ["selector", "uring"])
def test_a_loop_run_in_one_thread_is_closed_from_another(kind):
    # asyncio's pattern for a loop in a worker thread: run there, stopped,
    # the thread joined, then loop.close() from the main thread.  The
    # loop's ring was used by the worker (sock_* and a transport); close()
    # takes it over, as a stopped loop has no other user
    before = _fds()
    loop = EventLoop(transport=kind)
    got = []

    async def work():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b:
            await loop.sock_sendall(a, b"ping")
            got.append(await loop.sock_recv(b, 10))
        with socket.create_server(("127.0.0.1", 0)) as ls:
            tr, _ = await loop.create_connection(asyncio.Protocol, *ls.getsockname())
            peer, _ = ls.accept()
            with peer:
                tr.write(b"pong")
                got.append(peer.recv(10))
                tr.close()
            await asyncio.sleep(0.01)

    t = threading.Thread(target=lambda: loop.run_until_complete(work()))
    t.start()
    t.join()
    loop.close()
    assert loop.is_closed()
    assert got == [b"ping", b"pong"]
    assert _fds() == before

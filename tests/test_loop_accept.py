"""The completion transport's servers: one multishot accept per listening
socket (AsyncRing._watch(), src/async/watch.c; _transports._Acceptor),
where asyncio's loop waits for readiness and calls accept() until EAGAIN.
CPython's server tests (test_loop_conformance.py) run on it too; these are
what the kernel-side accept adds: no accept() call, the connections the
kernel accepted after server.close() closed, the out-of-descriptors pause,
a protocol factory that raises."""

import asyncio
import errno
import os
import resource
import socket

import pytest

from loop_helpers import open_fds
from py_io_uring.loop import EventLoop


class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t

    def data_received(self, data):
        self.t.write(data)


@pytest.fixture
def loop():
    loop = EventLoop(transport="uring")
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


def test_connections_are_accepted_by_the_kernel(loop, monkeypatch):
    # 64 clients at once, each echoed byte for byte; the listening socket's
    # accept() is never called (asyncio's path calls it per connection)
    def no_accept(self):
        raise AssertionError("accept() called on %r" % self)
    monkeypatch.setattr(socket.socket, "accept", no_accept)
    before = open_fds()

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def client(i):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            msg = b"%d:" % i + os.urandom(1000)
            w.write(msg)
            got = await r.readexactly(len(msg))
            w.close()
            await w.wait_closed()
            return got == msg
        ok = await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(64))), 10)
        assert len(loop._acceptors) == 1
        server.close()
        await server.wait_closed()
        assert loop._acceptors == {}
        return ok

    assert all(loop.run_until_complete(main()))
    loop.run_until_complete(asyncio.sleep(0.05))
    assert open_fds() == before



def test_an_accepted_socket_is_as_asyncios(loop):
    # non-blocking from the kernel's accept (no ioctl after it), and its
    # socket object says so, with the plain type, family and proto asyncio's
    # accept() gives; close-on-exec
    import fcntl
    seen = []

    class Look(asyncio.Protocol):
        def connection_made(self, t):
            sock = t.get_extra_info("socket")
            fd = sock.fileno()
            seen.append((sock.gettimeout(), sock.type, sock.family, sock.proto,
                         bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK),
                         bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC),
                         t.get_extra_info("peername") == client.getsockname(),
                         t.get_extra_info("sockname") == client.getpeername()))
            t.close()

    async def main():
        server = await loop.create_server(Look, "127.0.0.1", 0)
        client.connect(server.sockets[0].getsockname())
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.005)
        server.close()
        await server.wait_closed()

    with socket.socket() as client:
        loop.run_until_complete(main())
    assert seen == [(0.0, socket.SOCK_STREAM, socket.AF_INET, socket.IPPROTO_TCP,
                     True, True, True, True)]


def test_connections_accepted_after_close_are_closed(loop):
    # clients connect while the loop is not running: the kernel may accept
    # them before server.close() cancels the accept; those are closed, never
    # served, and the clients see the end of the connection
    made = []

    class P(Echo):
        def connection_made(self, t):
            made.append(t)

    loop.run_until_complete(asyncio.sleep(0))
    before = open_fds()
    server = loop.run_until_complete(loop.create_server(P, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    loop.run_until_complete(asyncio.sleep(0.01))     # the accept is armed
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.run_until_complete(asyncio.sleep(0.05))     # what was accepted: reaped
    try:
        for c in clients:
            c.settimeout(5)
            try:
                assert c.recv(1) == b""
            except ConnectionResetError:
                pass
    finally:
        for c in clients:
            c.close()
    assert made == []
    assert open_fds() == before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port)).close()


def test_out_of_descriptors_pauses_then_resumes(loop, monkeypatch):
    # EMFILE: the handler is told as asyncio tells it, accepting resumes
    # after ACCEPT_RETRY_DELAY, and the waiting client is served then.
    # The kernel's accept takes RLIMIT_NOFILE when it is armed: the limit
    # is lowered first, then the descriptors under it are used up.
    monkeypatch.setattr(asyncio.constants, "ACCEPT_RETRY_DELAY", 0.05)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers = []
    lost = loop.create_future()

    class P(Echo):
        def connection_lost(self, exc):
            lost.set_result(exc)

    async def main():
        highest = max(int(fd) for fd in open_fds())
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 32, hard))
        try:
            server = await loop.create_server(P, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            client = socket.socket()
            client.setblocking(False)
            await asyncio.sleep(0.01)       # the accept is armed
            try:
                while True:
                    fillers.append(os.dup(0))
            except OSError as e:
                assert e.errno == errno.EMFILE
            try:
                client.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            for _ in range(100):
                if contexts:
                    break
                await asyncio.sleep(0.01)
        finally:
            while fillers:
                os.close(fillers.pop())
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await loop.sock_sendall(client, b"ping")
        got = await asyncio.wait_for(loop.sock_recv(client, 4), 5)
        client.close()
        await asyncio.wait_for(lost, 5)     # the served connection ended
        server.close()
        await server.wait_closed()
        return got

    assert loop.run_until_complete(main()) == b"ping"
    assert len(contexts) == 1
    assert contexts[0]["message"] == "socket.accept() out of system resource"
    assert contexts[0]["exception"].errno == errno.EMFILE
    assert "socket" in contexts[0]


@pytest.mark.parametrize("debug", [False, True])
def test_a_protocol_factory_that_raises(loop, debug):
    # as asyncio: the connection is closed; the error reaches the handler
    # in debug mode only
    loop.set_debug(debug)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def factory():
        raise ValueError("no protocol")

    async def main():
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        got = await asyncio.wait_for(r.read(), 5)
        w.close()
        server.close()
        await server.wait_closed()
        return got

    before = open_fds()
    assert loop.run_until_complete(main()) == b""
    loop.run_until_complete(asyncio.sleep(0.02))
    assert open_fds() == before
    if debug:
        assert [c["message"] for c in contexts] == [
            "Error on transport creation for incoming connection"]
        assert isinstance(contexts[0]["exception"], ValueError)
    else:
        assert contexts == []


def test_unwatch_from_another_thread_is_refused_and_the_watch_goes_on(loop):
    # AsyncRing._unwatch() (watch.c) submits a cancel on the loop's ring:
    # from another thread than the loop's it is refused, as every use of
    # that ring is, before anything reaches the ring; while the loop runs
    # (select() waits with the GIL released) and while it does not.  The
    # accept stays armed, and the loop's thread ends it.
    import threading
    ring = loop._uring()
    flags = socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
    clients, got = [], []

    def refused(handle):
        errors = []

        def other():
            try:
                ring._unwatch(handle)
            except RuntimeError as e:
                errors.append(str(e))
            # a connection after it: accepted only if the watch is still armed
            clients.append(socket.create_connection(ls.getsockname(), timeout=5))
        t = threading.Thread(target=other)
        t.start()
        return t, errors

    async def main():
        accepted, ended = loop.create_future(), loop.create_future()

        def on_cqe(cqe):
            more = bool(cqe.flags() & 2)        # IORING_CQE_F_MORE
            got.append((cqe.res() >= 0, more))
            if cqe.res() >= 0:
                os.close(cqe.res())
                if not accepted.done():
                    accepted.set_result(None)
            if not more:
                ended.set_result(cqe.res())

        handle = ring._watch(on_cqe, "multishot_accept", ls.fileno(), flags)
        await asyncio.sleep(0)                  # submitted; next, select() waits
        t, errors = refused(handle)
        await asyncio.wait_for(accepted, 5)
        await loop.run_in_executor(None, t.join, 5)
        ring._unwatch(handle)                   # the loop's thread: fine
        return errors, await asyncio.wait_for(ended, 5)

    with socket.create_server(("127.0.0.1", 0)) as ls:
        errors, final = loop.run_until_complete(main())
        assert errors == ["AsyncRing used from another thread than its event loop's"]
        assert final == -errno.ECANCELED
        assert got == [(True, True), (False, False)]

        # the loop not running: the same refusal; then its own thread
        # (a server closed after run_until_complete()) ends it
        done = []

        async def watch():
            h = ring._watch(lambda cqe: done.append(cqe.res()), "multishot_accept",
                            ls.fileno(), flags)
            await asyncio.sleep(0)              # submitted
            return h
        handle = loop.run_until_complete(watch())
        t, errors = refused(handle)
        t.join(5)
        assert errors == ["AsyncRing used from another thread than its event loop's"]
        loop.run_until_complete(asyncio.sleep(0.01))
        ring._unwatch(handle)
        loop.run_until_complete(asyncio.sleep(0.01))
        assert len(done) == 2 and done[0] >= 0 and done[1] == -errno.ECANCELED, done
        os.close(done[0])
    for c in clients:
        c.close()

"""AsyncRing's bookkeeping: who waits for an operation lives in the
AsyncRing's side table, not in the record (docs/design.md, "AsyncRing").
What could break when that moved: a send_all whose future goes from one
record to the next, a cancel in the middle of it, sock_accept's socket on a
cancelled task, and the references the GC has to see (a ring dropped in a
cycle with its futures)."""

import asyncio
import gc
import os
import socket
import warnings
import weakref

import pytest

from py_io_uring import AsyncRing

# run(coroutine function) on asyncio's loop and on uvloop: test_async's fixture
from test_async import run, settle as drain, sock_pair  # noqa: F401


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def small_buffers(*socks):
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


def test_send_all_cancelled_while_the_peer_does_not_read(run):
    async def main():
        c, s = sock_pair()
        small_buffers(c, s)
        payload = os.urandom(4 << 20)
        async with AsyncRing() as ring:
            fut = ring.send_all(c, payload)
            await asyncio.sleep(0.05)
            assert not fut.done() and ring.in_flight() == 1
            fut.cancel()
            with pytest.raises(asyncio.CancelledError):
                await fut
            await drain(ring)                    # the kernel's send ended
            # the ring goes on as before
            assert await ring.send(s, b"ok") == 2
            assert await ring.recv(c, 2) == b"ok"
        s.setblocking(False)
        got = 0
        while True:
            try:
                n = len(s.recv(1 << 20))
            except BlockingIOError:
                break
            got += n
        assert got < len(payload)                # cut short, nothing more went
        c.close()
        s.close()

    run(main)


def test_send_all_whose_peer_goes_away_mid_way(run):
    """A send cut short by the peer's reset comes back with the count it
    managed; the rest goes in a new send that carries the future on, and
    that one's error reaches the future.  Nothing stays in flight."""
    async def main():
        c, s = sock_pair()
        small_buffers(c, s)
        async with AsyncRing() as ring:
            fut = ring.send_all(c, os.urandom(4 << 20))
            await asyncio.sleep(0.05)
            s.recv(4096)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            s.close()                            # unread data: a reset
            with pytest.raises(OSError):
                await asyncio.wait_for(fut, 10)
            await drain(ring)
        c.close()

    run(main)


def test_send_all_many_at_once_each_gets_its_own_count(run):
    async def main():
        pairs = [sock_pair() for _ in range(8)]
        async with AsyncRing(4) as ring:
            futs = [ring.send_all(c, bytes([i]) * (100000 + i)) for i, (c, _) in enumerate(pairs)]

            async def reader(i, s):
                want = 100000 + i
                got = bytearray()
                buf = bytearray(65536)
                while len(got) < want:
                    n = await ring.recv(s, buf)
                    assert n > 0
                    got += buf[:n]
                return bytes(got)

            got = await asyncio.gather(*[reader(i, s) for i, (_, s) in enumerate(pairs)])
            counts = await asyncio.gather(*futs)
            assert counts == [100000 + i for i in range(8)]
            assert got == [bytes([i]) * (100000 + i) for i in range(8)]
        for c, s in pairs:
            c.close()
            s.close()

    run(main)


@pytest.mark.parametrize("when", ["in_flight", "after_the_result"])
def test_sock_accept_cancelled_leaks_no_fd(run, when):
    async def main():
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(8)
        clients = []
        async with AsyncRing() as ring:
            before = open_fds()
            box = {}

            async def consumer():
                box["fut"] = fut = ring.sock_accept(ls)
                conn, _ = await fut
                box["got"] = conn
                conn.close()

            task = asyncio.ensure_future(consumer())
            await asyncio.sleep(0)               # the task waits on its future
            if when == "after_the_result":
                clients.append(socket.create_connection(ls.getsockname()))
                ring.flush()
                for _ in range(200):
                    ring.process_completions()
                    if box["fut"].done():
                        break
                    await asyncio.sleep(0)   # noqa: the task may not resume yet
                    if box["fut"].done():
                        break
            task.cancel()
            [exc] = await asyncio.gather(task, return_exceptions=True)
            assert isinstance(exc, asyncio.CancelledError)
            assert "got" not in box
            await drain(ring)
            if when == "in_flight":
                # the accept was cancelled in the kernel: a connection now is
                # nobody's, and nothing was accepted for it
                clients.append(socket.create_connection(ls.getsockname()))
            assert open_fds() == before + len(clients)
        for c in clients:
            c.close()
        ls.close()

    run(main)


def test_ring_in_a_cycle_with_its_futures_is_collected():
    """A future's done callback that refers to the ring: ring -> side table ->
    future -> callback -> ring.  The GC must see the side table's references
    to collect that, and clear it."""
    c, s = sock_pair()
    loop = asyncio.new_event_loop()

    async def main():
        ring = AsyncRing()
        fut = ring.recv(s, 10)
        fut.add_done_callback(lambda f, ring=ring: None)
        await asyncio.sleep(0.01)
        assert ring.in_flight() == 1
        return weakref.ref(ring), weakref.ref(fut)

    try:
        ring_ref, fut_ref = loop.run_until_complete(main())
    finally:
        loop.close()
    del loop
    with pytest.warns(ResourceWarning, match="AsyncRing was not closed"):
        for _ in range(3):
            gc.collect()
    assert ring_ref() is None
    assert fut_ref() is None
    c.close()
    s.close()


def test_done_callback_comes_off_before_the_result(run):
    """The cancel-in-kernel callback of a future whose op completed is
    removed before the result is set, so the loop never runs it: one
    scheduled callback less per operation."""
    async def main():
        loop = asyncio.get_running_loop()
        seen = []
        call_soon = loop.call_soon

        def counting(cb, *args, **kw):
            seen.append(getattr(cb, "__name__", ""))
            return call_soon(cb, *args, **kw)

        try:
            loop.call_soon = counting
        except AttributeError:
            pytest.skip("this loop's call_soon cannot be wrapped")
        a, b = socket.socketpair()
        try:
            async with AsyncRing() as ring:
                for _ in range(50):
                    assert await ring.nop() == 0
                    a.send(b"x")
                    assert await ring.recv(b, 1) == b"x"
                    assert await ring.send_all(b, b"yz") == 2
                    assert a.recv(2) == b"yz"
        finally:
            del loop.call_soon
            a.close()
            b.close()
        assert "_flush" in seen                  # the wrapper does see the ring
        assert "_cancel_in_kernel" not in seen

    run(main)


# the iterator's dealloc may run after the GC cleared the loop: it then says
# (unraisable) that it could not schedule its cancel; the teardown cancels
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ring_in_a_cycle_with_a_multishot_iterator_is_collected():
    """ring -> side table -> future -> callback -> iterator -> ring: the GC
    clears the ring (its side table with it) and the iterator, whose dealloc
    cancels its op with no loop left to submit on; the ring's dealloc tears
    the ring down.  Whatever the order, nothing crashes and all goes."""
    c, s = sock_pair()
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    loop = asyncio.new_event_loop()

    async def main():
        ring = AsyncRing()
        it = ring.multishot_accept(ls)
        fut = ring.recv(s, 10)
        fut.add_done_callback(lambda f, it=it: None)
        await asyncio.sleep(0.01)
        assert ring.in_flight() == 2
        return weakref.ref(ring)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            ring_ref = loop.run_until_complete(main())
        finally:
            loop.close()
        del loop
        for _ in range(3):
            gc.collect()
    assert ring_ref() is None
    assert not any(type(o).__name__ == "MultishotIterator" for o in gc.get_objects())
    ls.close()
    c.close()
    s.close()

"""py_io_uring.get_running_ring(): the running EventLoop's own AsyncRing,
shared with the code on the loop (docs/loop.md, "Sharing the loop's
ring").  Its operations complete with their data, go to the kernel in the
loop's one io_uring_enter per iteration (no eventfd, no second ring), are
cancelled in the kernel; the loop closes the ring with them in flight and
nothing is left; the ring is protected from what would break the loop (its
users' aclose(), the transports' buffer group); other loops and threads
get clear errors."""

import asyncio
import gc
import os
import selectors
import socket
import sys
import threading
import warnings

import pytest

import py_io_uring
from py_io_uring.loop import EventLoop
from uring_helpers import count_selects

STREAM_BGID = 0x5354        # src/async/stream.c's PU_STREAM_BGID


def _fds():
    return sorted(os.listdir("/proc/self/fd"))


def _on_loop(coro_fn, *args, **kw):
    loop = EventLoop(**kw)
    try:
        return loop.run_until_complete(coro_fn(loop, *args))
    finally:
        loop.close()


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_the_shared_ring_is_the_loops_one_ring_and_its_ops_complete(pair, tmp_path):
    a, b = pair
    path = tmp_path / "f"
    path.write_bytes(b"")

    async def main(loop):
        ring = py_io_uring.get_running_ring()
        assert ring is loop._uring() is loop._selector._aring
        assert py_io_uring.get_running_ring() is ring
        with open(path, "r+b") as f:
            assert await ring.write(f.fileno(), b"hello, ring", 0) == 11
            assert await ring.read(f.fileno(), 100, 7) == b"ring"
            buf = bytearray(5)
            assert await ring.read(f.fileno(), buf, 0) == 5
            assert buf == b"hello"
        b.send(b"over the socket")
        assert await ring.recv(a, 100) == b"over the socket"
        assert await ring.send(b, b"back") == 4
        assert a.recv(10) == b"back"
        # the loop's own sock_* run on the same ring, side by side
        b.send(b"x")
        assert await loop.sock_recv(a, 10) == b"x"
        return ring

    ring = _on_loop(main)
    assert ring.closed          # the loop closed it


def test_its_ops_go_in_the_loops_one_enter_per_iteration(pair):
    # no eventfd, no reader for one, no call_soon() flush: what a coroutine
    # starts on the shared ring is submitted by the next select(), with the
    # loop's polls, and reaped by it (a future resolved in the select that
    # submitted it)
    a, b = pair

    async def main(loop):
        ring = py_io_uring.get_running_ring()
        with pytest.raises(ValueError, match="no eventfd"):
            ring.fileno()
        scheduled = []
        call_soon = loop.call_soon

        def spy(cb, *args, **kw):
            scheduled.append(getattr(cb, "__name__", ""))
            return call_soon(cb, *args, **kw)

        loop.call_soon = spy
        try:
            b.send(b"ready")
            submits = ring.stats()["submits"]
            selects = count_selects(loop)
            # three operations started in one iteration
            futs = [ring.recv(a, 10), ring.nop(), ring.send(b, b"!")]
            assert await futs[0] == b"ready"
            assert selects() == 1           # submitted and reaped by one select
            assert [f.result() for f in futs] == [b"ready", 0, 1]
            assert ring.stats()["submits"] == submits + 1   # in one enter
        finally:
            del loop.call_soon
        assert "_flush" not in scheduled and "_on_ready" not in scheduled
        fds = {key.fd for key in loop._selector.get_map().values()}
        assert fds == {loop._ssock.fileno()}    # only the self-pipe is watched
        assert a.recv(1) == b"!"
        return True

    before = _fds()
    assert _on_loop(main)
    assert _fds() == before


def test_an_asyncring_of_the_users_own_keeps_its_ring_and_eventfd(pair):
    # the contrast, unchanged: AsyncRing() is a ring of its own, watched
    # through its eventfd (a reader on the loop), with its own submits
    a, b = pair

    async def main(loop):
        shared = py_io_uring.get_running_ring()
        async with py_io_uring.AsyncRing(8) as own:
            assert own is not shared
            assert own.get_ring() is not shared.get_ring()
            fds = {key.fd for key in loop._selector.get_map().values()}
            assert own.fileno() in fds
            b.send(b"mine")
            assert await own.recv(a, 10) == b"mine"
            assert own.stats()["submits"] >= 1
        return True

    assert _on_loop(main)


def test_cancelling_its_awaitable_cancels_the_op_in_the_kernel(pair):
    a, b = pair

    async def main(loop):
        ring = py_io_uring.get_running_ring()
        task = asyncio.ensure_future(ring.recv(a, 10))
        for _ in range(3):
            await asyncio.sleep(0)
        assert ring.in_flight() == 1 and not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the cancel went in at once; its completion comes in a few
        # iterations at most
        for _ in range(20):
            if ring.in_flight() == 0:
                break
            await asyncio.sleep(0)
        assert ring.in_flight() == 0
        # the kernel's receive is gone: it takes nothing sent now
        b.send(b"after")
        await asyncio.sleep(0)
        assert a.recv(10) == b"after"
        assert ring.take_partial(a) == b""
        return True

    assert _on_loop(main)


def test_closing_the_loop_with_its_ops_in_flight_leaves_nothing(pair):
    a, b = pair
    buf = bytearray(64)
    base = sys.getrefcount(buf)
    futs = []
    ls = socket.create_server(("127.0.0.1", 0))
    ls.setblocking(False)

    async def main(loop):
        ring = py_io_uring.get_running_ring()
        futs.append(ring.recv(a, 10))
        futs.append(ring.read(a, buf, 0))       # pins buf in its record
        futs.append(ring.accept(ls))            # a result that owns an fd
        futs.append(ring.sleep(3600))
        futs.append(asyncio.ensure_future(ring.recv(a, 10)))
        for _ in range(3):
            await asyncio.sleep(0)
        assert ring.in_flight() == 5
        assert sys.getrefcount(buf) > base
        return ring

    before = _fds()
    with ls, warnings.catch_warnings():
        warnings.simplefilter("error")      # no ResourceWarning
        ring = _on_loop(main)
        assert ring.closed and ring.in_flight() == 0
        assert all(f.cancelled() for f in futs)
        del futs[:]
        gc.collect()
        assert sys.getrefcount(buf) == base      # no record holds it
        assert _fds() == before
    # nothing the kernel did is left behind: the socket's bytes are there
    b.send(b"still here")
    assert a.recv(20) == b"still here"


def test_the_loop_closes_it_its_users_cannot(pair):
    a, b = pair

    async def main(loop):
        ring = py_io_uring.get_running_ring()
        with pytest.raises(RuntimeError, match=r"aclose\(\).*event loop's own ring"):
            ring.aclose()
        with pytest.raises(RuntimeError, match="async with.*event loop's own ring"):
            async with ring:
                pass        # never runs
        with pytest.raises(RuntimeError, match="close the AsyncRing"):
            ring.get_ring().queue_exit()
        assert not ring.closed
        b.send(b"on")
        assert await ring.recv(a, 10) == b"on"   # still the loop's, working
        b.send(b"and on")
        assert await loop.sock_recv(a, 10) == b"and on"
        return ring

    ring = _on_loop(main)
    assert ring.closed


def test_a_loop_on_another_selector_shares_its_eventfd_ring_the_same_way(pair):
    # EventLoop(selector=...) with a selector that is no ring: the loop's
    # AsyncRing is one of its own, watched by its eventfd; shared and
    # protected the same way
    a, b = pair

    async def main(loop):
        ring = py_io_uring.get_running_ring()
        assert ring is loop._uring()
        assert ring.fileno() >= 0
        with pytest.raises(RuntimeError, match="event loop's own ring"):
            ring.aclose()
        b.send(b"epoll")
        assert await ring.recv(a, 10) == b"epoll"
        return ring

    before = _fds()
    ring = _on_loop(main, selector=selectors.EpollSelector())
    assert ring.closed
    assert _fds() == before


def test_the_transports_buffer_group_is_refused_to_its_users():
    async def main(loop):
        ring = py_io_uring.get_running_ring()
        iou = ring.get_ring()
        with pytest.raises(ValueError, match="reserved on the event loop's ring"):
            iou.setup_buf_ring(STREAM_BGID, 8, 4096)
        with pytest.raises(ValueError, match="reserved on the event loop's ring"):
            iou.free_buf_ring(STREAM_BGID)
        with pytest.raises(ValueError, match="reserved on the event loop's ring"):
            ring.provide_buffers(bytearray(4096), 4, STREAM_BGID)
        # (its entry goes to the kernel as a no-op, as for any bad argument)
        for _ in range(10):
            if ring.in_flight() == 0:
                break
            await asyncio.sleep(0)
        assert ring.in_flight() == 0
        # other groups are the users'
        iou.setup_buf_ring(7, 8, 4096)
        iou.free_buf_ring(7)
        # and the completion transport's receives still work
        got = []
        done = loop.create_future()
        lost = [loop.create_future(), loop.create_future()]

        class Echo(asyncio.Protocol):
            def connection_made(self, t):
                self.t = t

            def data_received(self, data):
                self.t.write(data)

            def connection_lost(self, exc):
                lost[0].set_result(exc)

        class Client(asyncio.Protocol):
            def connection_made(self, t):
                t.write(b"ping")

            def data_received(self, data):
                got.append(data)
                if b"".join(got) == b"ping":
                    done.set_result(None)

            def connection_lost(self, exc):
                lost[1].set_result(exc)

        srv = await loop.create_server(Echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        t, _ = await loop.create_connection(Client, "127.0.0.1", port)
        await done
        t.close()
        assert await asyncio.gather(*lost) == [None, None]   # both sockets closed
        srv.close()
        await srv.wait_closed()
        return b"".join(got)

    assert _on_loop(main, transport="uring") == b"ping"


def test_a_ring_of_ones_own_may_use_that_buffer_group():
    async def main(loop):
        async with py_io_uring.AsyncRing(8) as own:
            own.get_ring().setup_buf_ring(STREAM_BGID, 8, 4096)
            own.get_ring().free_buf_ring(STREAM_BGID)
        return True

    assert _on_loop(main)


def test_outside_an_eventloop_it_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="no running event loop"):
        py_io_uring.get_running_ring()

    async def main():
        with pytest.raises(RuntimeError, match="not py_io_uring's EventLoop.*AsyncRing()"):
            py_io_uring.get_running_ring()
        return True

    loop = asyncio.new_event_loop()         # asyncio's own
    try:
        assert loop.run_until_complete(main())
    finally:
        loop.close()


def test_another_loop_or_thread_cannot_use_it(pair):
    a, b = pair

    async def take(loop):
        ring = py_io_uring.get_running_ring()
        assert await ring.nop() == 0         # used on its loop: its thread set
        return ring

    first = EventLoop()
    try:
        ring = first.run_until_complete(take(first))

        async def on_another_loop(loop):
            with pytest.raises(RuntimeError, match="another event loop's own ring"):
                ring.nop()
            assert py_io_uring.get_running_ring() is not ring
            return True

        assert _on_loop(on_another_loop)

        errors = []

        def from_a_thread():
            try:
                ring.nop()
            except RuntimeError as e:
                errors.append(str(e))

        async def with_a_thread(loop):
            # joined here: the thread needs nothing of the loop (and no
            # executor thread is left alive for a later test's fork())
            th = threading.Thread(target=from_a_thread)
            th.start()
            th.join()
            # and the ring is fine on its loop
            assert await ring.nop() == 0
            return True

        assert first.run_until_complete(with_a_thread(first))
        assert len(errors) == 1 and "another thread" in errors[0]
    finally:
        first.close()
    assert ring.closed


def test_the_loops_ring_is_bound_to_it_before_it_runs():
    # the loop hands its ring out bound to itself, before its first
    # operation: a use while another loop runs is refused, not bound there
    # (whose futures the first loop's select() would then resolve)
    first = EventLoop()
    try:
        ring = first._uring()

        async def elsewhere(loop):
            with pytest.raises(RuntimeError, match="another event loop's own ring"):
                ring.nop()
            return True

        assert _on_loop(elsewhere)

        async def home(loop):
            assert py_io_uring.get_running_ring() is ring
            return await ring.nop()

        assert first.run_until_complete(home(first)) == 0
    finally:
        first.close()
    assert ring.closed


def test_a_loop_made_in_one_thread_runs_it_in_another():
    # the loop binds its ring when it first hands it out, with no thread:
    # the first use on the running loop sets it
    loop = EventLoop()
    out = []

    async def main():
        ring = py_io_uring.get_running_ring()
        out.append(await ring.nop())

    def run():
        try:
            loop.run_until_complete(main())
        except BaseException as e:      # reported below
            out.append(e)
        finally:
            loop.close()        # where its ring was used

    ring = loop._uring()        # handed out before it runs, in this thread
    th = threading.Thread(target=run)
    th.start()
    th.join()
    assert out == [0]
    assert ring.closed


def test_poll_completions_reaped_outside_select_reach_the_next_select(pair):
    # process_completions() on the shared ring reaps everything the kernel
    # posted, the selector's polls too: a reader's readiness it took is
    # held and reported by the next select(), not lost (the fd's poll, once
    # completed, is armed again only by the select that reports it)
    a, b = pair

    async def main(loop):
        ring = py_io_uring.get_running_ring()
        fired = []
        selects = count_selects(loop)
        loop.add_reader(a, lambda: fired.append((a.recv(10), selects())))
        await asyncio.sleep(0)          # the select arms the poll
        await asyncio.sleep(0)
        assert fired == []
        b.send(b"poll")                 # the poll completes in the kernel
        for _ in range(10):
            ring.process_completions()  # ... and is reaped here
            os.getpid()
        assert fired == []
        reaped = selects()
        for _ in range(50):
            if fired:
                break
            await asyncio.sleep(0)
        loop.remove_reader(a)
        assert fired == [(b"poll", reaped + 1)]     # by the next select
        return True

    assert _on_loop(main)

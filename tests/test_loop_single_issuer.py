"""The event loop's ring is set up SINGLE_ISSUER | DEFER_TASKRUN (loop.py
_new_ring()): the kernel takes its submissions from one thread, the one
that first runs the loop, and posts completions only when that thread asks.
What a user relies on: a loop made in one thread runs in another, a loop
that never waits still gets its completions, another thread is refused
with what it means (or allowed with single_issuer=False), and closing from
another thread neither hangs nor frees what the kernel may still use."""
import asyncio
import gc
import socket
import threading
import time
import warnings

import pytest

import py_io_uring
from py_io_uring.loop import EventLoop

from loop_helpers import nonblocking_pair, open_fds as _fds


async def _ping(loop):
    a, b = nonblocking_pair()
    with a, b:
        await loop.sock_sendall(a, b"ping")
        return await loop.sock_recv(b, 10)


def _run_in_thread(loop, coro_fn):
    out = []
    t = threading.Thread(target=lambda: out.append(loop.run_until_complete(coro_fn(loop))))
    t.start()
    t.join()
    return out


def test_the_loops_ring_takes_submissions_from_the_thread_that_first_ran_it():
    loop = EventLoop()
    try:
        # made here, run there: the ring is enabled by its first submit
        assert _run_in_thread(loop, _ping) == [b"ping"]
        # the kernel would answer EEXIST; the loop says what it means
        coro = _ping(loop)
        with pytest.raises(RuntimeError, match="IORING_SETUP_SINGLE_ISSUER.*"
                           r"EventLoop\(single_issuer=False\)"):
            loop.run_until_complete(coro)
        coro.close()
    finally:
        loop.close()


def test_a_loop_run_in_its_first_thread_again_keeps_working():
    loop = EventLoop()
    try:
        for _ in range(3):
            assert loop.run_until_complete(_ping(loop)) == b"ping"
    finally:
        loop.close()


def test_single_issuer_false_lets_one_thread_then_another_run_the_loop():
    before = _fds()
    loop = EventLoop(single_issuer=False)
    try:
        assert _run_in_thread(loop, _ping) == [b"ping"]
        assert loop.run_until_complete(_ping(loop)) == b"ping"
        assert _run_in_thread(loop, _ping) == [b"ping"]
    finally:
        loop.close()
    assert _fds() == before


@pytest.mark.parametrize("kind", ["selector", "uring"])
def test_completions_come_while_the_loop_never_waits(kind):
    # callbacks always ready: every select() has a zero timeout and never
    # waits in the kernel.  A DEFER_TASKRUN ring posts completions only
    # when asked; the loop must ask then too, or a read never completes
    # while something else keeps the loop busy
    loop = EventLoop(transport=kind)
    spins = 0

    async def spin(stop):
        nonlocal spins
        while not stop.is_set():
            spins += 1
            await asyncio.sleep(0)

    async def main():
        stop = asyncio.Event()
        spinner = asyncio.ensure_future(spin(stop))
        await asyncio.sleep(0)
        a, b = nonblocking_pair()
        with a, b:
            reader, writer = await asyncio.open_connection(sock=b)
            for i in range(20):
                a.send(b"x%d;" % i)
                got = await asyncio.wait_for(reader.readexactly(len(b"x%d;" % i)), 5)
                assert got == b"x%d;" % i
            writer.close()
        stop.set()
        await spinner

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    # the reads completed while the spinner ran, not after it stopped
    assert spins > 20


# the record and its buffer are kept for the life of the process: that
# leak is the point, asserted here (the fds are counted)
@pytest.mark.no_leakcheck
def test_a_loop_closed_from_another_thread_leaks_what_it_cannot_cancel():
    # a read still pending when the loop's thread ends: the closing thread
    # is not the ring's issuer and cannot cancel it, so its buffer is kept
    # (for the life of the process) rather than freed under the kernel,
    # with a ResourceWarning saying why; the ring's fd is closed
    before = _fds()
    loop = EventLoop()
    a, b = nonblocking_pair()
    box = []

    async def start():
        box.append(asyncio.ensure_future(loop.sock_recv(b, 100)))
        await asyncio.sleep(0.01)

    t = threading.Thread(target=lambda: loop.run_until_complete(start()))
    t.start()
    t.join()
    assert not box[0].done()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        loop.close()
        box.clear()
        gc.collect()
    msgs = [str(x.message) for x in w if issubclass(x.category, ResourceWarning)]
    assert any("1 operation(s) in flight could not be cancelled from this thread "
               "(IORING_SETUP_SINGLE_ISSUER" in m for m in msgs), msgs
    # the kernel let go of it with the ring: the peer's bytes stay for us
    a.send(b"after")
    assert b.recv(100) == b"after"
    a.close()
    b.close()
    assert _fds() == before
    assert loop.is_closed()


@pytest.mark.parametrize("fired", [False, True])
def test_an_fd_unregistered_and_closed_is_let_go_at_once(fired):
    # the selector's poll holds a reference to the fd's file: asyncio's
    # _stop_serving() removes the reader, then closes the socket, and a
    # connect right after must be refused, with the loop not running.  A
    # poll that fired and whose completion the kernel has not posted yet
    # (DEFER_TASKRUN: not until the loop asks) holds it as much as an armed one
    loop = EventLoop()
    try:
        ls = socket.create_server(("127.0.0.1", 0))
        ls.setblocking(False)
        port = ls.getsockname()[1]
        loop.add_reader(ls, lambda: None)
        loop.run_until_complete(asyncio.sleep(0.01))   # the poll is armed
        if fired:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
            time.sleep(0.05)        # the poll fires in the kernel meanwhile
        loop.remove_reader(ls)
        ls.close()
        c = socket.socket()
        try:
            with pytest.raises(ConnectionRefusedError):
                c.connect(("127.0.0.1", port))
        finally:
            c.close()
    finally:
        loop.close()


def test_unregistering_while_the_loop_waits_in_another_thread_does_not_raise():
    # asyncio's remove_reader() has no thread check: from a thread that is
    # not the loop's, while the loop waits in select() (holding the ring),
    # the poll's removal is left to the loop's next select(), as it always
    # was, rather than raising (single_issuer=False: any thread may submit)
    loop = EventLoop(single_issuer=False)
    a, b = nonblocking_pair()
    started = threading.Event()
    loop.add_reader(a, lambda: None)
    loop.call_soon(started.set)
    t = threading.Thread(target=loop.run_forever)
    t.start()
    try:
        assert started.wait(5)
        time.sleep(0.05)                # the loop now waits in select()
        loop.remove_reader(a)           # would raise "another thread is submitting"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
        loop.close()
        a.close()
        b.close()
    assert not t.is_alive()

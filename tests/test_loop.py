"""py_io_uring's event loop (src/py_io_uring/loop.py): the selector's
semantics that asyncio relies on, the uvloop-shaped entry points, and that
nothing is left open.  CPython's own conformance tests run on the loop in
test_loop_conformance.py."""

import asyncio
import os
import selectors
import socket
import sys

import pytest

import py_io_uring
from py_io_uring.loop import EventLoop, RingSelector


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

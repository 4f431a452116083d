"""What the event loop's socket tests share (test_loop_transport_c.py,
test_loop_sendfile.py, test_loop_set_protocol.py): a loop of either
transport run over one coroutine, a connection with its peer socket, a
thread that reads a peer to its EOF, and the process's open descriptors
to compare before and after."""

import asyncio
import contextlib
import os
import socket
import threading
import time

from py_io_uring.loop import EventLoop

# the loop's two socket transports: asyncio's selector ones over the ring's
# polls (the default) and the completion transport (_transports.py)
KINDS = ["selector", "uring"]


def run(kind, coro_fn, current=False):
    """coro_fn(loop)'s result on a new EventLoop(transport=kind), closed
    after; current: the loop is also the thread's current one meanwhile."""
    loop = EventLoop(transport=kind)
    if current:
        asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro_fn(loop))
    finally:
        if current:
            asyncio.set_event_loop(None)
        loop.close()


def open_fds():
    """The process's open descriptors, sorted: equal before and after a
    test that leaves nothing open."""
    return sorted(os.listdir("/proc/self/fd"))


async def connected(loop, proto_factory, ls):
    """A transport connected to the listening socket ls, its protocol,
    and the peer's (blocking) socket: (transport, protocol, peer)."""
    tr, pr = await loop.create_connection(proto_factory, *ls.getsockname())
    peer, _ = ls.accept()
    return tr, pr, peer


def nonblocking_pair():
    """socket.socketpair(), both ends non-blocking (loop.sock_* use)."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def reader_thread(peer, out, chunk=65536, delay=0.0):
    """A started thread appending what peer receives to out, to the EOF;
    delay: seconds slept after each read (a slow reader)."""
    def read():
        while True:
            b = peer.recv(chunk)
            if not b:
                break
            out.append(b)
            if delay:
                time.sleep(delay)
    t = threading.Thread(target=read)
    t.start()
    return t


@contextlib.asynccontextmanager
async def connection(loop, proto_factory):
    """connected() to a listening socket of its own on 127.0.0.1: yields
    (transport, protocol, peer); the peer and the listening socket are
    closed after (the transport is the test's to close)."""
    with socket.create_server(("127.0.0.1", 0)) as ls:
        tr, pr, peer = await connected(loop, proto_factory, ls)
        with peer:
            yield tr, pr, peer

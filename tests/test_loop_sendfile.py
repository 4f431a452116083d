"""loop.sock_sendfile() and loop.sendfile() by splice on the loop's ring
(src/py_io_uring/_sendfile.py): the file is read by the kernel's workers,
never by os.sendfile() in the loop's thread.  CPython's test_sendfile
runs on it too (test_loop_conformance.py); these check what the splice
path adds: no os.sendfile(), offsets, counts and the file position as
asyncio leaves them, a peer that goes in the middle, a cancelled send,
and no descriptor left behind."""

import asyncio
import os
import socket

import pytest

from loop_helpers import KINDS, nonblocking_pair, open_fds, run


@pytest.fixture
def no_os_sendfile(monkeypatch):
    def refuse(*args):
        raise AssertionError("os.sendfile() called in the loop's thread")
    monkeypatch.setattr(os, "sendfile", refuse)


@pytest.fixture
def big_file(tmp_path):
    """32 MiB of random bytes: more than a socket buffer takes, so a
    sendfile to a peer that does not read is still going."""
    path = tmp_path / "f"
    path.write_bytes(os.urandom(32 << 20))
    return path


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("offset,count", [(0, 0), (12345, 0), (0, 3 << 20), (777, (1 << 20) + 5)])
def test_sock_sendfile_bytes_offsets_and_file_position(tmp_path, kind, offset, count, no_os_sendfile):
    data = os.urandom((5 << 20) + 321)
    path = tmp_path / "f"
    path.write_bytes(data)
    # the file's pages dropped: the reads go to the disk, in the kernel's workers
    with open(str(path), "rb") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    want = data[offset:offset + count] if count else data[offset:]
    before = open_fds()

    async def main(loop):
        a, b = nonblocking_pair()
        got = bytearray()

        async def reader():
            while True:
                chunk = await loop.sock_recv(b, 1 << 16)
                if not chunk:
                    return
                got.extend(chunk)
        with a, b, open(str(path), "rb") as f:
            t = loop.create_task(reader())
            sent = await loop.sock_sendfile(a, f, offset, count or None)
            pos = f.tell()
            a.shutdown(socket.SHUT_WR)
            await asyncio.wait_for(t, 10)
        return sent, pos, bytes(got)

    sent, pos, got = run(kind, main)
    assert sent == len(want)
    assert pos == offset + len(want)
    assert got == want
    assert open_fds() == before


@pytest.mark.parametrize("kind", KINDS)
def test_transport_sendfile_then_write(tmp_path, kind, no_os_sendfile):
    # loop.sendfile() on a transport, then an ordinary write after it: the
    # peer gets both, in order
    data = os.urandom(3 << 20)
    path = tmp_path / "f"
    path.write_bytes(data)

    async def main(loop):
        done = loop.create_future()
        got = bytearray()

        class P(asyncio.Protocol):
            def data_received(self, d):
                got.extend(d)

            def eof_received(self):
                done.set_result(None)

        server = await loop.create_server(P, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        with open(str(path), "rb") as f:
            n = await loop.sendfile(tr, f)
        tr.write(b"after")
        tr.write_eof()
        await asyncio.wait_for(done, 10)
        tr.close()
        server.close()
        await server.wait_closed()
        return n, bytes(got)

    n, got = run(kind, main)
    assert n == len(data)
    assert got == data + b"after"


@pytest.mark.parametrize("kind", KINDS)
def test_peer_gone_in_the_middle(big_file, kind, no_os_sendfile):
    path = big_file
    before = open_fds()

    async def main(loop):
        a, b = socket.socketpair()
        a.setblocking(False)
        with a, open(str(path), "rb") as f:
            task = loop.create_task(loop.sock_sendfile(a, f))
            await asyncio.sleep(0.05)       # the socket's buffer fills
            b.recv(65536)                   # something was sent
            b.close()
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(task, 10)
            return f.tell()

    pos = run(kind, main)
    assert 0 < pos < 32 << 20
    assert open_fds() == before


@pytest.mark.parametrize("kind", KINDS)
def test_cancelled_sendfile_leaves_nothing(big_file, kind, no_os_sendfile):
    path = big_file
    before = open_fds()

    async def main(loop):
        a, b = socket.socketpair()
        a.setblocking(False)
        with a, b, open(str(path), "rb") as f:
            task = loop.create_task(loop.sock_sendfile(a, f))
            await asyncio.sleep(0.05)       # blocked: nobody reads
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.05)
            # the splice was cancelled in the kernel, and its completion reaped
            assert loop._uring().in_flight() == 0
            # the socket is still usable for what comes after
            b.setblocking(False)
            n = 0
            while True:
                try:
                    n += len(b.recv(1 << 20))
                except BlockingIOError:
                    break
            return n, f.tell()

    n, pos = run(kind, main)
    assert n > 0
    assert open_fds() == before

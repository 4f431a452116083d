"""The completion transport's read path in C (src/async/stream.c,
docs/loop.md "Where step 4 stands"): a multishot receive from the
AsyncRing's buffer ring, told of each completion during the reap through
the callback waiter kind.  The byte-for-byte echo (4 MiB and 2,000 small
messages, Protocol and BufferedProtocol), pause/resume, reset and closing
the loop with transports open run on this transport in test_loop.py
(KINDS); these are what the C path adds."""

import asyncio
import os
import socket

import pytest

from py_io_uring.loop import EventLoop
from uring_helpers import count_selects


def _run(coro_fn):
    loop = EventLoop(transport="uring")
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro_fn(loop))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _fds():
    return sorted(os.listdir("/proc/self/fd"))


def test_bytes_that_complete_after_the_cancel_come_after_resume():
    # the peer's bytes reach the socket while the multishot receive is
    # armed, and pause_reading() cancels it in the same callback: their
    # completion is reaped after the cancel and must be kept, in order,
    # and handed over only once reading resumes
    async def main(loop):
        ls = socket.create_server(("127.0.0.1", 0))
        events = []
        done = loop.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, t):
                self.t = t

            def data_received(self, data):
                events.append(("data", self.t.is_reading(), data))
                if data == b"first":
                    peer.sendall(b"second")      # lands while armed
                    self.t.pause_reading()
                    loop.call_later(0.05, self.resume)

            def resume(self):
                events.append("resume")
                self.t.resume_reading()
                peer.sendall(b"third")
                peer.shutdown(socket.SHUT_WR)

            def eof_received(self):
                done.set_result(None)

        with ls:
            tr, _ = await loop.create_connection(P, *ls.getsockname())
            peer, _ = ls.accept()
            with peer:
                peer.sendall(b"first")
                await asyncio.wait_for(done, 5)
                tr.close()
        return events

    events = _run(main)
    assert events[0] == ("data", True, b"first")
    assert events[1] == "resume"                 # nothing while paused
    got = b"".join(e[2] for e in events[2:])
    assert got == b"secondthird"
    assert all(e[1] for e in events[2:])


def test_buffer_ring_exhaustion_recovers_without_loss():
    # more connections than the ring has buffers (64), each sent 256 KiB
    # before the loop reads: the kernel ends receives with ENOBUFS, the
    # transport arms them again, and every byte arrives in order
    nconn, size = 96, 256 * 1024

    async def main(loop):
        ls = socket.create_server(("127.0.0.1", 0), backlog=nconn)
        got = {}
        eofs = loop.create_future()

        class P(asyncio.Protocol):
            def __init__(self, i):
                self.i = i
                got[i] = bytearray()

            def data_received(self, data):
                got[self.i] += data

            def eof_received(self):
                if sum(1 for b in got.values() if len(b) == size) == nconn and not eofs.done():
                    eofs.set_result(None)

        payloads, peers, trs = [], [], []
        with ls:
            for i in range(nconn):
                tr, _ = await loop.create_connection(lambda i=i: P(i), *ls.getsockname())
                peer, _ = ls.accept()
                peers.append(peer)
                trs.append(tr)
            # all sent while the loop is not running its reap
            for i, peer in enumerate(peers):
                data = os.urandom(size)
                payloads.append(data)
                peer.setblocking(False)
            sent = [0] * nconn
            while any(s < size for s in sent):
                for i, peer in enumerate(peers):
                    if sent[i] < size:
                        try:
                            sent[i] += peer.send(payloads[i][sent[i]:])
                        except BlockingIOError:
                            pass
                await asyncio.sleep(0)
            for peer in peers:
                peer.shutdown(socket.SHUT_WR)
            await asyncio.wait_for(eofs, 20)
            stats = loop._uring().stats()
            for tr in trs:
                tr.close()
            for peer in peers:
                peer.close()
        await asyncio.sleep(0.01)
        return [bytes(got[i]) == payloads[i] for i in range(nconn)], stats

    before = _fds()
    ok, stats = _run(main)
    assert all(ok)
    # re-armed (ENOBUFS or the kernel's own end), and no spin: a few
    # arming per connection, not thousands
    assert nconn < stats["ops"] < nconn * 200, stats
    assert _fds() == before


def test_a_protocol_that_raises_reaches_the_exception_handler():
    async def main(loop):
        seen, lost = [], loop.create_future()
        loop.set_exception_handler(lambda l, ctx: seen.append(ctx))

        class P(asyncio.Protocol):
            def data_received(self, data):
                raise ValueError("boom")

            def connection_lost(self, exc):
                lost.set_result(exc)

        ls = socket.create_server(("127.0.0.1", 0))
        with ls:
            tr, _ = await loop.create_connection(P, *ls.getsockname())
            peer, _ = ls.accept()
            with peer:
                peer.sendall(b"x")
                exc = await asyncio.wait_for(lost, 5)
        return seen, exc, tr

    seen, exc, tr = _run(main)
    assert len(seen) == 1
    assert seen[0]["message"] == "Fatal error: protocol.data_received() call failed."
    assert isinstance(seen[0]["exception"], ValueError)
    assert seen[0]["transport"] is tr
    assert isinstance(exc, ValueError)


def test_a_callback_that_raises_does_not_stop_the_reap():
    # the transport's own error path raising: the callback kind reports it
    # to the loop's handler, and the other connections' completions of the
    # same reap are still delivered
    async def main(loop):
        seen, got = [], []
        loop.set_exception_handler(lambda l, ctx: seen.append(ctx))
        done = loop.create_future()

        class Bad(asyncio.Protocol):
            def connection_made(self, t):
                def broken(exc, message=None):
                    raise RuntimeError("the handler itself")
                t._fatal_error = broken

            def data_received(self, data):
                raise ValueError("boom")

        class Good(asyncio.Protocol):
            def data_received(self, data):
                got.append(data)
                done.set_result(None)

        ls = socket.create_server(("127.0.0.1", 0))
        with ls:
            bad, _ = await loop.create_connection(Bad, *ls.getsockname())
            p1, _ = ls.accept()
            good, _ = await loop.create_connection(Good, *ls.getsockname())
            p2, _ = ls.accept()
            with p1, p2:
                p1.sendall(b"a")
                p2.sendall(b"b")
                await asyncio.wait_for(done, 5)
                await asyncio.sleep(0.01)
                bad.abort()
                good.close()
        await asyncio.sleep(0)
        return seen, got

    seen, got = _run(main)
    assert got == [b"b"]
    assert [c["message"] for c in seen] == ["py_io_uring: a completion callback raised"]
    assert isinstance(seen[0]["exception"], RuntimeError)


@pytest.mark.parametrize("buffered", [False, True])
def test_eof_while_paused_comes_after_the_kept_bytes(buffered):
    async def main(loop):
        events, done = [], loop.create_future()

        class P(asyncio.BufferedProtocol if buffered else asyncio.Protocol):
            buf = bytearray(1000)

            def connection_made(self, t):
                self.t = t

            def get_buffer(self, n):
                return self.buf

            def buffer_updated(self, n):
                self.data_received(bytes(self.buf[:n]))

            def data_received(self, data):
                events.append(data)
                if len(events) == 1:
                    peer.sendall(b"more")
                    peer.shutdown(socket.SHUT_WR)
                    self.t.pause_reading()
                    loop.call_later(0.05, self.t.resume_reading)

            def eof_received(self):
                events.append("eof")
                done.set_result(None)

        ls = socket.create_server(("127.0.0.1", 0))
        with ls:
            tr, _ = await loop.create_connection(P, *ls.getsockname())
            peer, _ = ls.accept()
            with peer:
                peer.sendall(b"one")
                await asyncio.wait_for(done, 5)
                tr.close()
        return events

    events = _run(main)
    assert events[0] == b"one"
    assert events[-1] == "eof"
    assert b"".join(events[1:-1]) == b"more"


def test_what_a_read_callback_causes_comes_in_the_next_iteration():
    # data_received() runs inside the loop's select(); bytes it makes the
    # peer send complete at once, during that reap.  asyncio's selector
    # gives a loop iteration one set of events: they belong to the next
    # select, not to this one (3.8's sslproto test lost its transport to
    # the answer and close of a request its handshake callback had sent)
    async def main(loop):
        seen, done = [], loop.create_future()
        selects = count_selects(loop)

        class P(asyncio.Protocol):
            def data_received(self, data):
                seen.append((data, selects()))
                if data == b"first":
                    peer.sendall(b"second")   # completes inside this reap
                else:
                    done.set_result(None)

        ls = socket.create_server(("127.0.0.1", 0))
        with ls:
            tr, _ = await loop.create_connection(P, *ls.getsockname())
            peer, _ = ls.accept()
            with peer:
                peer.sendall(b"first")
                await asyncio.wait_for(done, 5)
                tr.close()
        return seen

    seen = _run(main)
    assert [d for d, _ in seen] == [b"first", b"second"]
    assert seen[1][1] == seen[0][1] + 1, seen


def test_eof_is_handled_among_the_iteration_callbacks():
    # bytes and EOF reaped in one select(): eof_received() runs as asyncio's
    # selector transport calls it, among that iteration's callbacks, so
    # what it schedules (the close's connection_lost()) runs in the next
    # iteration, not before select()'s caller has run its own callbacks
    async def main(loop):
        seen, done = [], loop.create_future()
        selects = count_selects(loop)

        class P(asyncio.Protocol):
            def data_received(self, data):
                seen.append(("data", selects()))

            def eof_received(self):
                seen.append(("eof", selects()))

            def connection_lost(self, exc):
                seen.append(("lost", selects()))
                done.set_result(exc)

        ls = socket.create_server(("127.0.0.1", 0))
        with ls:
            tr, _ = await loop.create_connection(P, *ls.getsockname())
            peer, _ = ls.accept()
            with peer:
                await asyncio.sleep(0)      # the receive is armed
                peer.sendall(b"answer")
                peer.shutdown(socket.SHUT_WR)
                assert await asyncio.wait_for(done, 5) is None
        return seen

    seen = _run(main)
    assert [e for e, _ in seen] == ["data", "eof", "lost"], seen
    (_, d), (_, e), (_, lost) = seen
    assert d == e, seen                 # one select reaped both
    assert lost == e + 1, seen


def test_eof_waits_for_resume_when_reading_is_paused_before_it_runs():
    # the EOF was reaped while reading, but a callback that runs before
    # its turn pauses reading: as with asyncio's selector transport, the
    # protocol hears of it only after resume_reading()
    async def main(loop):
        events, done = [], loop.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, t):
                self.t = t

            def data_received(self, data):
                events.append(data)
                loop.call_soon(self.pause)      # before the EOF's turn

            def pause(self):
                self.t.pause_reading()
                events.append("paused")
                loop.call_later(0.05, self.resume)

            def resume(self):
                events.append("resume")
                self.t.resume_reading()

            def eof_received(self):
                events.append(("eof", self.t.is_reading()))
                done.set_result(None)

        ls = socket.create_server(("127.0.0.1", 0))
        with ls:
            tr, _ = await loop.create_connection(P, *ls.getsockname())
            peer, _ = ls.accept()
            with peer:
                await asyncio.sleep(0)
                peer.sendall(b"one")
                peer.shutdown(socket.SHUT_WR)
                await asyncio.wait_for(done, 5)
                tr.close()
        return events

    assert _run(main) == [b"one", "paused", "resume", ("eof", True)]


def test_another_thread_is_refused_the_loops_ring_while_select_waits():
    # select() waits with the GIL released: another thread that reaches the
    # loop's ring meanwhile gets a RuntimeError, and the loop runs on
    import threading

    async def main(loop):
        ring = loop._uring()
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b:
            recv = asyncio.ensure_future(loop.sock_recv(a, 10))
            await asyncio.sleep(0)          # the loop now waits in select()
            errors = []

            def other():
                try:
                    ring.nop()
                except RuntimeError as e:
                    errors.append(str(e))
                b.send(b"hello")

            t = threading.Thread(target=other)
            t.start()
            got = await asyncio.wait_for(recv, 5)
            t.join()
        return got, errors

    got, errors = _run(main)
    assert got == b"hello"
    assert errors == ["AsyncRing used from another thread than its event loop's"]

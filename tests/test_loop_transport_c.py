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

from loop_helpers import connected, connection, open_fds, reader_thread, run
from uring_helpers import count_selects


def _run(coro_fn):
    # this file's tests are the completion transport's
    return run("uring", coro_fn, current=True)


def test_bytes_that_complete_after_the_cancel_come_after_resume():
    # the peer's bytes reach the socket while the multishot receive is
    # armed, and pause_reading() cancels it in the same callback: their
    # completion is reaped after the cancel and must be kept, in order,
    # and handed over only once reading resumes
    async def main(loop):
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

        async with connection(loop, P) as (tr, _, peer):
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
                tr, _, peer = await connected(loop, lambda i=i: P(i), ls)
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

    before = open_fds()
    ok, stats = _run(main)
    assert all(ok)
    # re-armed (ENOBUFS or the kernel's own end), and no spin: a few
    # arming per connection, not thousands
    assert nconn < stats["ops"] < nconn * 200, stats
    assert open_fds() == before


def test_a_protocol_that_raises_reaches_the_exception_handler():
    async def main(loop):
        seen, lost = [], loop.create_future()
        loop.set_exception_handler(lambda l, ctx: seen.append(ctx))

        class P(asyncio.Protocol):
            def data_received(self, data):
                raise ValueError("boom")

            def connection_lost(self, exc):
                lost.set_result(exc)

        async with connection(loop, P) as (tr, _, peer):
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

        async with connection(loop, Bad) as (bad, _, p1), \
                connection(loop, Good) as (good, _, p2):
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

        async with connection(loop, P) as (tr, _, peer):
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

        async with connection(loop, P) as (tr, _, peer):
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

        async with connection(loop, P) as (tr, _, peer):
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

        async with connection(loop, P) as (tr, _, peer):
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


# ---------------------------------------------------------------- the write path in C
# (src/async/stream_write.c): write() is the stream's own method; the rest
# of a short send(2), and what is written meanwhile, go out as ring sends
# told of their completion like the receive


def test_write_is_the_streams_c_method():
    async def main(loop):
        async with connection(loop, asyncio.Protocol) as (tr, _, peer):
            with peer:
                kinds = (type(tr.write).__name__, type(tr.writelines).__name__)
                tr.close()
                await asyncio.sleep(0)
        return kinds

    assert _run(main) == ("builtin_function_or_method", "builtin_function_or_method")


def test_a_large_write_to_a_slow_reader_arrives_with_flow_control():
    # 8 MiB in 128 KiB writes to a peer reading 64 KiB every millisecond:
    # the first writes go straight out, the rest queue behind ring sends;
    # pause_writing() comes once the buffer passes the high mark and
    # resume_writing() once it is at or below the low one (asyncio's rule)
    high, low = 256 * 1024, 64 * 1024
    payload = os.urandom(8 * 1024 * 1024)

    async def main(loop):
        events = []
        resumed = [None]

        class P(asyncio.Protocol):
            def connection_made(self, t):
                self.t = t
                t.set_write_buffer_limits(high=high, low=low)

            def pause_writing(self):
                events.append(("pause", self.t.get_write_buffer_size()))
                resumed[0] = loop.create_future()

            def resume_writing(self):
                events.append(("resume", self.t.get_write_buffer_size()))
                resumed[0].set_result(None)

        async with connection(loop, P) as (tr, pr, peer):
            got = []
            th = reader_thread(peer, got, delay=0.001)
            try:
                for i in range(0, len(payload), 128 * 1024):
                    if resumed[0] is not None and not resumed[0].done():
                        await resumed[0]
                    tr.write(payload[i:i + 128 * 1024])
                tr.write_eof()       # after the queue: the peer's EOF
                await loop.run_in_executor(None, th.join, 10)
                assert not th.is_alive()
                assert tr.get_write_buffer_size() == 0
            finally:
                tr.close()
                peer.close()
            await asyncio.sleep(0)
        return events, b"".join(got)

    events, got = _run(main)
    assert len(got) == len(payload) and got == payload
    pauses = [n for e, n in events if e == "pause"]
    resumes = [n for e, n in events if e == "resume"]
    assert pauses, events
    assert [e for e, _ in events] == ["pause", "resume"] * len(pauses)
    assert all(n > high for n in pauses), events
    assert all(n <= low for n in resumes), events


@pytest.mark.parametrize("kind", ["bytearray", "memoryview"])
def test_a_mutable_buffer_changed_after_write_is_sent_as_it_was(kind):
    # one write the socket cannot take at once (the rest outlives the
    # call) and one queued behind it: both are copied at the call
    size = 8 * 1024 * 1024

    async def main(loop):
        async with connection(loop, asyncio.Protocol) as (tr, _, peer):
            first = bytearray(b"A" * size)
            second = bytearray(b"C" * 1000)
            tr.write(first if kind == "bytearray" else memoryview(first))
            assert tr.get_write_buffer_size() > 0      # went short
            tr.write(second if kind == "bytearray" else memoryview(second))
            first[:] = b"B" * size
            second[:] = b"D" * 1000
            del first[size // 2:]        # and resized: nothing pins it now
            got = []
            th = reader_thread(peer, got)
            tr.write_eof()
            await loop.run_in_executor(None, th.join, 10)
            tr.close()
            peer.close()
            await asyncio.sleep(0)
        return b"".join(got)

    got = _run(main)
    assert got == b"A" * size + b"C" * 1000


def test_writes_after_write_eof_raise_and_eof_waits_for_the_queue():
    async def main(loop):
        async with connection(loop, asyncio.Protocol) as (tr, _, peer):
            data = os.urandom(4 * 1024 * 1024)
            tr.write(data)
            tr.write(b"tail")
            assert tr.get_write_buffer_size() > 0
            tr.write_eof()
            errors = []
            for arg in (b"x", b"", bytearray(b"y")):
                with pytest.raises(RuntimeError) as ei:
                    tr.write(arg)
                errors.append(str(ei.value))
            with pytest.raises(RuntimeError):
                tr.writelines([b"z"])
            got = []
            th = reader_thread(peer, got)   # reads to the EOF
            await loop.run_in_executor(None, th.join, 10)
            tr.close()
            peer.close()
            await asyncio.sleep(0)
        return errors, b"".join(got), data

    errors, got, data = _run(main)
    assert errors == ["Cannot call write() after write_eof()"] * 3
    assert got == data + b"tail"


def test_write_type_errors_are_asyncios():
    async def main(loop):
        async with connection(loop, asyncio.Protocol) as (tr, _, peer):
            msgs = []
            for call, arg in ((tr.write, "str"), (tr.write, 1), (tr.writelines, [b"a", "b"])):
                with pytest.raises(TypeError) as ei:
                    call(arg)
                msgs.append(str(ei.value))
            tr.close()
            await asyncio.sleep(0)
            peer.settimeout(5)
            rest = peer.recv(10)
            peer.close()
        return msgs, rest

    msgs, rest = _run(main)
    assert msgs == ["data argument must be a bytes-like object, not 'str'",
                    "data argument must be a bytes-like object, not 'int'",
                    "data argument must be a bytes-like object, not 'str'"]
    assert rest == b""       # nothing of the refused writelines went out


def test_writelines_and_writes_keep_their_order_behind_a_send_in_flight():
    async def main(loop):
        async with connection(loop, asyncio.Protocol) as (tr, _, peer):
            big = os.urandom(4 * 1024 * 1024)
            tr.writelines([b"<", bytearray(b"1"), memoryview(b"2")])
            tr.write(big)                      # goes short: a send in flight
            assert tr._core.send_in_flight
            tr.writelines([b"3", bytearray(b"4")])
            tr.write(b"5")
            tr.writelines([])
            tr.writelines(iter([memoryview(b"6"), b"7"]))
            tr.write(memoryview(b"89")[1:])
            got = []
            th = reader_thread(peer, got)
            tr.write_eof()
            await loop.run_in_executor(None, th.join, 10)
            tr.close()
            peer.close()
            await asyncio.sleep(0)
        return b"".join(got), big

    got, big = _run(main)
    assert got == b"<12" + big + b"345679"


def test_abort_with_a_send_in_flight_keeps_its_buffer_pinned_and_leaks_nothing():
    import sys
    before = open_fds()

    async def main(loop):
        ring = loop._uring()
        lost = loop.create_future()

        class P(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        async with connection(loop, P) as (tr, _, peer):
            data = os.urandom(8 * 1024 * 1024)
            base = sys.getrefcount(data)
            tr.write(data)                    # short: the rest is a ring send
            assert tr._core.send_in_flight
            await asyncio.sleep(0.01)         # submitted, waiting on the peer
            assert sys.getrefcount(data) > base
            tr.abort()
            assert not tr._core.send_in_flight and tr.get_write_buffer_size() == 0
            # the kernel may still read it: the record keeps it
            assert sys.getrefcount(data) > base
            assert await asyncio.wait_for(lost, 5) is None
            for _ in range(100):
                if sys.getrefcount(data) == base and ring.in_flight() == 0:
                    break
                await asyncio.sleep(0.01)
            pinned = sys.getrefcount(data) - base
            in_flight = ring.in_flight()
            # writes after the loss are counted, not sent (asyncio's rule)
            tr.write(b"late")
            counted = tr._conn_lost
            peer.close()
        return pinned, in_flight, counted

    pinned, in_flight, counted = _run(main)
    assert pinned == 0 and in_flight == 0
    assert counted == 2
    assert open_fds() == before


def test_writes_after_the_connection_is_lost_warn_past_asyncios_threshold():
    import logging

    msgs = []

    class H(logging.Handler):
        def emit(self, record):
            msgs.append(record.getMessage())

    async def main(loop):
        async with connection(loop, asyncio.Protocol) as (tr, _, peer):
            tr.abort()
            await asyncio.sleep(0)
            # asyncio's logger to this handler only (pytest's would keep
            # the records, which the leak build counts)
            log, h = logging.getLogger("asyncio"), H(logging.WARNING)
            log.addHandler(h)
            log.propagate = False
            try:
                for _ in range(7):
                    tr.write(b"x")
            finally:
                log.propagate = True
                log.removeHandler(h)
            peer.close()
        return tr._conn_lost

    assert _run(main) == 8
    # asyncio warns from the 5th counted write on (LOG_THRESHOLD_FOR_CONNLOST_WRITES)
    assert msgs == ["socket.send() raised exception."] * 3


def test_a_failed_ring_send_reaches_connection_lost_with_its_error():
    async def main(loop):
        lost = loop.create_future()
        handler_calls = []
        loop.set_exception_handler(lambda l, ctx: handler_calls.append(ctx))

        class P(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        async with connection(loop, P) as (tr, _, peer):
            tr.pause_reading()           # the send reports, not the receive
            tr.write(os.urandom(8 * 1024 * 1024))
            assert tr._core.send_in_flight
            await asyncio.sleep(0.01)
            # a reset: the peer closes with unread bytes and SO_LINGER 0
            import struct
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()
            exc = await asyncio.wait_for(lost, 5)
        return exc, handler_calls, tr.is_closing()

    exc, handler_calls, closing = _run(main)
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), exc
    assert handler_calls == []          # an OSError: not the handler's (asyncio)
    assert closing


def test_close_waits_for_the_queue():
    async def main(loop):
        lost = loop.create_future()

        class P(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        async with connection(loop, P) as (tr, _, peer):
            data = os.urandom(4 * 1024 * 1024)
            tr.write(data)
            tr.write(b"end")
            tr.close()
            await asyncio.sleep(0.01)
            assert not lost.done()           # the queue is still going out
            got = []
            th = reader_thread(peer, got)
            assert await asyncio.wait_for(lost, 5) is None
            await loop.run_in_executor(None, th.join, 10)
            peer.close()
        return b"".join(got), data

    got, data = _run(main)
    assert got == data + b"end"


def test_a_non_contiguous_buffer_is_a_fatal_write_error_as_before():
    async def main(loop):
        calls = []
        loop.set_exception_handler(lambda l, ctx: calls.append(ctx))
        async with connection(loop, asyncio.Protocol) as (tr, _, peer):
            tr.write(memoryview(b"abcdef")[::2])
            await asyncio.sleep(0)
            peer.close()
        return calls, tr.is_closing()

    calls, closing = _run(main)
    assert closing and len(calls) == 1
    assert calls[0]["message"] == "Fatal write error on socket transport"
    assert isinstance(calls[0]["exception"], BufferError)


@pytest.mark.skipif(not hasattr(__import__("tracemalloc"), "reset_peak"),
                    reason="tracemalloc.reset_peak() is 3.9+")
def test_a_batch_of_large_reads_makes_its_bytes_one_at_a_time():
    # 32 connections get 64 KiB each while the loop waits: one reaped
    # batch.  Each completion's bytes are copied out of the buffer ring
    # when data_received() is about to get them, so the bytes alive at
    # once stay about one read's worth, not the batch's (copied at the
    # reap, 2 MiB were made at once, and glibc trimmed and grew the heap
    # again every batch: 2.3x the CPU per 64 KiB message)
    import tracemalloc
    n, size = 32, 65536

    async def main(loop):
        ls = socket.create_server(("127.0.0.1", 0), backlog=n)
        got = [0]
        done = loop.create_future()

        class P(asyncio.Protocol):
            def data_received(self, data):
                got[0] += len(data)
                if got[0] == n * size:
                    done.set_result(None)

        with ls:
            trs, peers = [], []
            for _ in range(n):
                tr, _, peer = await connected(loop, P, ls)
                trs.append(tr)
                peers.append(peer)
            await asyncio.sleep(0.05)           # every receive armed
            payload = os.urandom(size)
            tracemalloc.start()
            try:
                for p in peers:
                    p.sendall(payload)
                tracemalloc.reset_peak()
                await asyncio.wait_for(done, 10)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
                for p in peers:
                    p.close()
                for tr in trs:
                    tr.close()
            await asyncio.sleep(0.01)
        return peak

    peak = _run(main)
    assert peak < 8 * 65536, peak


def _kernel_at_least(major, minor):
    rel = os.uname().release.split(".")
    return (int(rel[0]), int(rel[1].split("-")[0])) >= (major, minor)


@pytest.mark.skipif(not _kernel_at_least(6, 12), reason="IOU_PBUF_RING_INC is 6.12's")
def test_small_reads_of_many_connections_share_the_incremental_buffers():
    # 64 connections, each sent a message of its own per round while the
    # loop waits: one reaped batch of 64 small reads.  The transports'
    # buffer ring is incremental (16 buffers that the reads of every
    # connection fill one after another), so the batch fits in it: every
    # receive stays armed (no ENOBUFS, no re-arming), and each connection
    # gets exactly its own bytes, in order, though they sat side by side in
    # the same buffers.  With whole buffers, 16 would last 16 reads.
    nconn, rounds = 64, 30

    async def main(loop):
        got = {i: bytearray() for i in range(nconn)}
        want = {i: bytearray() for i in range(nconn)}
        arrived = [0]
        waiter = [None]

        class P(asyncio.Protocol):
            def __init__(self, i):
                self.i = i

            def data_received(self, data):
                got[self.i] += data
                arrived[0] += len(data)
                if waiter[0] is not None and arrived[0] >= waiter[0][1] and not waiter[0][0].done():
                    waiter[0][0].set_result(None)

        ls = socket.create_server(("127.0.0.1", 0), backlog=nconn)
        trs, peers = [], []
        with ls:
            for i in range(nconn):
                tr, _, peer = await connected(loop, lambda i=i: P(i), ls)
                trs.append(tr)
                peers.append(peer)
            await asyncio.sleep(0.05)                 # every receive armed
            ops0 = loop._uring().stats()["ops"]
            total = 0
            for r in range(rounds):
                for i, peer in enumerate(peers):
                    msg = (b"%d:%d;" % (i, r)) * (1 + (i * 7 + r) % 40)
                    want[i] += msg
                    total += len(msg)
                    peer.sendall(msg)
                waiter[0] = (loop.create_future(), total)
                if arrived[0] < total:
                    await asyncio.wait_for(waiter[0][0], 10)
            ops = loop._uring().stats()["ops"] - ops0
            avail = loop._uring().get_ring().buf_ring_available(0x5354)
            for tr in trs:
                tr.close()
            for peer in peers:
                peer.close()
        await asyncio.sleep(0.01)
        return got, want, ops, avail

    before = open_fds()
    got, want, ops, avail = _run(main)
    assert all(got[i] == want[i] for i in range(nconn))
    assert ops == 0, ops        # no receive ended and was armed again
    assert avail == 16, avail   # the incremental ring, all given back
    assert open_fds() == before


@pytest.mark.skipif(not _kernel_at_least(6, 12), reason="IOU_PBUF_RING_INC is 6.12's")
def test_a_read_that_runs_past_a_buffers_end_comes_in_one_piece():
    # the incremental ring's buffers fill read after read; a read that
    # does not fit in what is left of one goes on in the next, in the same
    # completion (a bundle), so data_received() gets what came at once, as
    # on asyncio's loop, not two pieces cut at the buffer's end
    size, count = 1000, 200                    # 200 KB: three buffers' ends

    async def main(loop):
        sizes = []
        waiter = [None]

        class P(asyncio.Protocol):
            def data_received(self, data):
                sizes.append(len(data))
                waiter[0].set_result(None)

        async with connection(loop, P) as (tr, _, peer):
            for _ in range(count):
                waiter[0] = loop.create_future()
                peer.sendall(b"m" * size)
                await asyncio.wait_for(waiter[0], 10)
            tr.close()
        return sizes

    assert _run(main) == [size] * count

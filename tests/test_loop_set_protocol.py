"""transport.set_protocol() mid-stream, between a Protocol and a
BufferedProtocol and back, on both of the loop's transports.  asyncio's
selector transport hands its next read to the protocol of the moment; the
completion transport (src/async/stream.c, Stream_set_protocol) matches
it: a multishot receive is cancelled in the kernel when a BufferedProtocol
comes (what it took meanwhile goes to the new protocol through
get_buffer()/buffer_updated(), before anything newer), and a single recv
in flight when a Protocol comes completes into the buffer it was given,
its bytes going to the new protocol's data_received()."""

import asyncio
import os
import socket
import threading

import pytest

from loop_helpers import KINDS, connection, open_fds, run

SWITCHES = 12                   # protocols: SWITCHES + 1, alternating kinds
EACH = 96 * 1024                # bytes a protocol takes before it hands over
LIMIT = 48 << 20                # the sender's bound (reached: a switch never came)
CHUNK = 16 * 1024


@pytest.mark.parametrize("kind", KINDS)
def test_switching_protocols_while_bytes_flow_loses_and_repeats_nothing(kind):
    data = os.urandom(LIMIT)
    before = open_fds()

    async def main(loop):
        log = []                # (protocol's index, bytes), as delivered
        wrong = []              # deliveries to a protocol not current, or paused
        protos = []
        done = loop.create_future()
        stop = threading.Event()
        sent = [0]
        tr = None

        class Base:
            switched = False

            def __init__(self):
                self.i = len(protos)
                protos.append(self)
                self.got = 0
                self.hints = []         # get_buffer()'s size hints

            def connection_made(self, t):
                pass

            def _got(self, b):
                if tr.get_protocol() is not self or not tr.is_reading():
                    wrong.append((self.i, len(b)))
                log.append((self.i, b))
                self.got += len(b)
                if self.got < EACH or self.switched:
                    return
                # a BufferedProtocol hands over only once the transport has
                # received into its buffer (get_buffer(-1), as asyncio's
                # reads ask): copies fed from a receive armed for the
                # Protocol before it do not count
                if isinstance(self, Buffered) and -1 not in self.hints:
                    return
                self.switched = True
                if self.i == SWITCHES:
                    stop.set()          # the last one: the peer ends
                    return
                nxt = (Plain if isinstance(self, Buffered) else Buffered)()
                how = self.i % 3
                if how == 0:            # inside the read callback
                    tr.set_protocol(nxt)
                elif how == 1:          # from the loop, reads may be queued
                    loop.call_soon(tr.set_protocol, nxt)
                else:                   # while reading is paused
                    tr.pause_reading()
                    loop.call_soon(self._switch_paused, nxt)

            def _switch_paused(self, nxt):
                tr.set_protocol(nxt)
                tr.resume_reading()

            def eof_received(self):
                done.set_result(self.i)

            def connection_lost(self, exc):
                pass

        class Plain(Base, asyncio.Protocol):
            def data_received(self, b):
                self._got(b)

        class Buffered(Base, asyncio.BufferedProtocol):
            def get_buffer(self, hint):
                self.hints.append(hint)
                self.buf = bytearray(hint if hint > 0 else 65536)
                return self.buf

            def buffer_updated(self, n):
                self._got(bytes(self.buf[:n]))

        def send():
            # blocking sends from a thread: bytes arrive all along
            try:
                while not stop.is_set() and sent[0] < LIMIT:
                    peer.sendall(data[sent[0]:sent[0] + CHUNK])
                    sent[0] += CHUNK
            finally:
                peer.shutdown(socket.SHUT_WR)

        async with connection(loop, Plain) as (tr, _, peer):
            th = threading.Thread(target=send)
            th.start()
            try:
                last = await asyncio.wait_for(done, 30)
            finally:
                stop.set()
                await loop.run_in_executor(None, th.join, 10)
            tr.close()
            await asyncio.sleep(0)
        return log, wrong, protos, last, sent[0]

    log, wrong, protos, last, sent = run(kind, main)
    assert len(protos) == SWITCHES + 1 and last == SWITCHES, (len(protos), last)
    assert sent < LIMIT
    got = b"".join(b for _, b in log)
    assert len(got) == sent and got == data[:sent]
    assert wrong == []
    # each protocol's bytes in one run, in the order they were made
    order = [i for i, _ in log]
    assert order == sorted(order)
    assert sorted(set(order)) == list(range(SWITCHES + 1))
    assert open_fds() == before

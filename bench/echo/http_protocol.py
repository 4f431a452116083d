"""A minimal HTTP/1.1 keep-alive server over asyncio's low-level Protocol
API, for wrk (bench/workloads/http.py): every complete request head that
arrives (GET, no body; pipelined ones too) gets the same short response, all
of one read's answers in one write.  With --uvloop it runs on uvloop's
event loop, with --py-io-uring on py_io_uring.EventLoop (--uring-transport:
its completion transports); otherwise on asyncio's.  Prints PORT and exits
on stdin EOF as the echo servers do (common.py)."""

import asyncio
import socket
import sys

import common

BODY = b"Hello, World!\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
            % len(BODY)) + BODY
# the answer to a request that asks to close (wrk -H "Connection: close":
# one connection per request, the churn row), then the server closes
RESPONSE_CLOSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % len(BODY)) + BODY


class Http(asyncio.Protocol):
    def connection_made(self, transport):
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        n = buf.count(b"\r\n\r\n")           # requests complete in buf
        if n and b"Connection: close" in buf:
            self.transport.write(RESPONSE * (n - 1) + RESPONSE_CLOSE)
            self.transport.close()
            return
        if n:
            self.transport.write(RESPONSE * n)
            buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
        if len(buf) > 65536:
            self.transport.close()            # no head is this long
        self.buf = buf


async def serve(sock):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, sock=sock, backlog=1024)
    common.ready(sock)
    async with server:
        await server.serve_forever()


def run(coro_fn, args):
    """Run coro_fn() on the loop the flags ask for (shared with
    http_aiohttp.py)."""
    use_uvloop = "--uvloop" in args
    use_ring_loop = "--py-io-uring" in args
    for flag in ("--uvloop", "--py-io-uring"):
        while flag in sys.argv:
            sys.argv.remove(flag)
    build = common.parse_args().build
    if use_uvloop:
        import uvloop
        uvloop.run(coro_fn())
    elif use_ring_loop:
        common.load_py_io_uring(build).run(coro_fn())
    else:
        asyncio.run(coro_fn())


if __name__ == "__main__":
    run(lambda: serve(common.listener()), sys.argv[1:])

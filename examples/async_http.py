"""A minimal HTTP/1.1 keep-alive server on AsyncRing (wrk can drive it).

    python3 examples/async_http.py [port] [--uvloop]
    wrk -t2 -c64 -d5s http://127.0.0.1:8080/

Every request gets the same small page; connections stay open until the
client closes them or sends "Connection: close".
"""
import asyncio
import socket
import sys

from py_io_uring import AsyncRing

BODY = b"Hello from io_uring\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
CLOSING = RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)


async def serve_client(ring, fd):
    buf = bytearray(16384)
    pending = b""
    try:
        while True:
            n = await ring.recv(fd, buf)
            if n == 0:
                return
            pending += buf[:n]
            replies = []
            while b"\r\n\r\n" in pending:       # pipelined requests too
                head, _, pending = pending.partition(b"\r\n\r\n")
                close = b"connection: close" in head.lower()
                replies.append(CLOSING if close else RESPONSE)
                if close:
                    await ring.send_all(fd, b"".join(replies))
                    return
            if replies:
                await ring.send_all(fd, b"".join(replies))
            if len(pending) > 65536:
                return                           # no end of headers: give up
    except ConnectionError:
        pass
    finally:
        await ring.close(fd)


async def main(port, ready=None):
    ls = socket.create_server(("127.0.0.1", port), backlog=1024)
    if ready is not None:
        ready(ls.getsockname()[1])
    tasks = set()
    async with AsyncRing(1024) as ring:
        async for fd, _addr in ring.multishot_accept(ls):
            t = asyncio.ensure_future(serve_client(ring, fd))
            tasks.add(t)
            t.add_done_callback(tasks.discard)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    port = int(args[0]) if args else 8080
    if "--uvloop" in sys.argv:
        import uvloop
        uvloop.install()
    print("http server on 127.0.0.1:%d" % port, file=sys.stderr, flush=True)
    try:
        asyncio.run(main(port, ready=lambda p: print("listening %d" % p, flush=True)))
    except KeyboardInterrupt:
        pass

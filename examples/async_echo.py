"""A TCP echo server on AsyncRing: multishot accept, one task per connection.

    python3 examples/async_echo.py [port] [--uvloop]

Each connection reuses one buffer: recv into it, send_all what came in.
"""
import asyncio
import socket
import sys

from py_io_uring import AsyncRing


async def serve_client(ring, fd):
    buf = bytearray(65536)
    view = memoryview(buf)
    try:
        while True:
            n = await ring.recv(fd, buf)
            if n == 0:                      # the client closed
                break
            await ring.send_all(fd, view[:n])
    except ConnectionError:
        pass
    finally:
        await ring.close(fd)


async def main(port, ready=None):
    ls = socket.create_server(("127.0.0.1", port), backlog=512)
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
    port = int(args[0]) if args else 8007
    if "--uvloop" in sys.argv:
        import uvloop
        uvloop.install()
    print("echo server on 127.0.0.1:%d" % port, file=sys.stderr, flush=True)
    try:
        asyncio.run(main(port, ready=lambda p: print("listening %d" % p, flush=True)))
    except KeyboardInterrupt:
        pass

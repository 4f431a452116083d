"""Echo server on AsyncRing: multishot accept, one task per connection,
each with one reusable buffer: recv into it, send_all what came in.  With
--uvloop the same code runs on uvloop's event loop.  The ring is set up with
IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, as ring_sync.py's."""

import asyncio
import socket
import sys

import common


def nodelay(fd):
    s = socket.socket(fileno=fd)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.detach()


async def client(ring, fd):
    buf = bytearray(common.BUF)
    view = memoryview(buf)
    recv, send_all = ring.recv, ring.send_all
    try:
        while True:
            n = await recv(fd, buf)
            if n == 0:
                break
            await send_all(fd, view[:n])
    except OSError:
        pass
    finally:
        await ring.close(fd)


FLAGS = 0   # the setup flags, set by main() once the module is loaded


async def serve(sock, AsyncRing):
    tasks = set()
    async with AsyncRing(1024, FLAGS) as ring:
        common.ready(sock)
        async for fd, _ in ring.multishot_accept(sock):
            nodelay(fd)
            t = asyncio.ensure_future(client(ring, fd))
            tasks.add(t)
            t.add_done_callback(tasks.discard)


def main():
    args = sys.argv[1:]
    build = args[args.index("--build") + 1] if "--build" in args else "build"
    mod = common.load_py_io_uring(build)
    sock = common.listener()
    if "--uvloop" in args:
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    global FLAGS
    FLAGS = mod.IORING_SETUP_SINGLE_ISSUER | mod.IORING_SETUP_DEFER_TASKRUN
    loop.run_until_complete(serve(sock, mod.AsyncRing))


if __name__ == "__main__":
    main()

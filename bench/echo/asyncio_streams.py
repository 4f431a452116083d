"""Echo server over asyncio streams (start_server, StreamReader/StreamWriter).
With --uvloop it runs on uvloop's event loop, with --py-io-uring on
py_io_uring.EventLoop."""

import asyncio
import socket
import sys

import common


async def handle(reader, writer):
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    read, write, drain = reader.read, writer.write, writer.drain
    while True:
        data = await read(common.BUF)
        if not data:
            break
        write(data)
        await drain()
    writer.close()


async def serve(sock):
    server = await asyncio.start_server(handle, sock=sock)
    common.ready(sock)
    async with server:
        await server.serve_forever()


def main(run=asyncio.run):
    common.parse_args()
    run(serve(common.listener()))


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        sys.argv.remove("--uvloop")
        import uvloop
        main(uvloop.run)
    elif "--py-io-uring" in sys.argv:
        sys.argv.remove("--py-io-uring")
        main(lambda coro: common.load_py_io_uring(common.build_arg()).run(coro))
    else:
        main()

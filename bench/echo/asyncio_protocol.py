"""Echo server over asyncio's low-level Protocol API: data_received()
writes straight back (the transport buffers what the socket does not take).
With --uvloop the same code runs on uvloop's event loop, with --py-io-uring
on py_io_uring.EventLoop."""

import asyncio
import socket
import sys

import common


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.write = transport.write

    def data_received(self, data):
        self.write(data)


class EchoBuffered(asyncio.BufferedProtocol):
    """The same with a reusable receive buffer (BufferedProtocol).  A
    transport may keep a view of what it could not send at once: then the
    next receive goes into a fresh buffer."""

    def connection_made(self, transport):
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.write = transport.write
        self.pending = transport.get_write_buffer_size
        self.buf = memoryview(bytearray(common.BUF))

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.write(self.buf[:nbytes])
        if self.pending():
            self.buf = memoryview(bytearray(common.BUF))


async def serve(sock, proto):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(proto, sock=sock)
    common.ready(sock)
    async with server:
        await server.serve_forever()


def main():
    args = sys.argv[1:]
    use_uvloop = "--uvloop" in args
    use_ring_loop = "--py-io-uring" in args
    proto = EchoBuffered if "--buffered" in args else Echo
    for flag in ("--uvloop", "--buffered", "--py-io-uring"):
        while flag in sys.argv:
            sys.argv.remove(flag)
    build = common.parse_args().build
    coro = serve(common.listener(), proto)
    if use_uvloop:
        import uvloop
        uvloop.run(coro)
    elif use_ring_loop:
        common.load_py_io_uring(build).run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    main()

"""A TCP echo server on the synchronous IoUring API, in plain Python:
python examples/echo_server.py [--host 127.0.0.1] [--port 8007]

One thread, one ring.  An accept is always pending on the listening socket;
each connection has exactly one operation in flight, a recv or the send of
what it received.  Every loop submits all queued entries with one system
call, then handles every completion that is ready.  Ctrl-C (or SIGTERM)
stops it; leaving the `with` block cancels whatever is still in flight."""

import argparse
import os
import signal
import socket
import sys

import _path  # noqa: F401  (the checkout's build, when there is one)
from py_io_uring import IoUring

BUFSIZE = 64 * 1024


def serve(ring, listener):
    def accept():
        sqe = ring.get_sqe()
        sqe.prep_accept(listener)          # any object with fileno() will do
        sqe.set_data(("accept", None, None))

    def recv(conn):
        sqe = ring.get_sqe()
        sqe.prep_recv(conn, BUFSIZE)       # a length: the module allocates the buffer
        sqe.set_data(("recv", conn, None))

    def send(conn, data):
        sqe = ring.get_sqe()
        sqe.prep_send(conn, data)          # data is kept alive until the completion
        sqe.set_data(("send", conn, data))

    accept()
    while True:
        ring.submit()
        cqe = ring.wait_cqe()              # releases the GIL; signals interrupt it
        while cqe is not None:
            ring.cqe_seen(cqe)
            op, conn, data = cqe.get_data()
            try:
                result = cqe.getresult()
            except OSError as e:           # the OSError subclass of the errno
                if op == "accept":
                    print("accept failed: %s" % e, file=sys.stderr)
                    accept()
                else:
                    os.close(conn)         # a reset connection: drop it
            else:
                if op == "accept":
                    recv(result)           # result: the new connection's fd
                    accept()
                elif op == "recv":
                    if result:
                        send(conn, result)
                    else:                  # b"": the peer closed
                        os.close(conn)
                elif result < len(data):   # a partial send: send the rest
                    send(conn, data[result:])
                else:
                    recv(conn)
            cqe = ring.peek_cqe()


def main(argv=None):
    p = argparse.ArgumentParser(description="TCP echo server on io_uring")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8007, help="0: any free port")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)   # SIGTERM: like Ctrl-C
    listener = socket.create_server((args.host, args.port), backlog=128)
    print("echo server listening on %s:%d" % listener.getsockname()[:2], flush=True)
    try:
        with IoUring(256) as ring:
            serve(ring, listener)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A minimal HTTP/1.1 server with keep-alive, on the synchronous IoUring API:
python examples/http_server.py [--host 127.0.0.1] [--port 8080]
then, say:  wrk -t1 -c8 -d5s http://127.0.0.1:8080/

GET and HEAD of / answer a short text; any other path is 404.  Connections
stay open (HTTP/1.1, or HTTP/1.0 with "Connection: keep-alive") until the
client closes or sends "Connection: close"; pipelined requests are answered
in order, in one send.  The loop is the echo server's: an accept always
pending, one recv or send in flight per connection, one submit per round."""

import argparse
import os
import signal
import socket
import sys

import _path  # noqa: F401  (the checkout's build, when there is one)
from py_io_uring import IoUring

BUFSIZE = 64 * 1024
MAX_HEAD = 64 * 1024
BODY = b"Hello from io_uring\n"


def response(status, body, keep_alive, head_only=False):
    return b"".join([
        b"HTTP/1.1 ", status, b"\r\n",
        b"Content-Type: text/plain\r\n",
        b"Content-Length: %d\r\n" % len(body),
        b"Connection: keep-alive\r\n" if keep_alive else b"Connection: close\r\n",
        b"\r\n",
        b"" if head_only else body,
    ])


def answer(buf):
    """Answer every complete request at the start of buf.
    Returns (the responses, what is left of buf, whether to close after)."""
    out = []
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                out.append(response(b"431 Request Header Fields Too Large", b"", False))
                return b"".join(out), b"", True
            return b"".join(out), buf, False
        lines = buf[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        length = headers.get("content-length", "0")
        length = int(length) if length.isdigit() else -1
        if length >= 0 and len(buf) < end + 4 + length:   # the body has not all arrived
            return b"".join(out), buf, False
        buf = buf[end + 4 + max(length, 0):]
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or length < 0:
            out.append(response(b"400 Bad Request", b"bad request\n", False))
            return b"".join(out), b"", True
        method, target, version = parts
        conn = headers.get("connection", "")
        keep = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
        if method not in ("GET", "HEAD"):
            out.append(response(b"405 Method Not Allowed", b"GET or HEAD\n", keep))
        elif target != "/":
            out.append(response(b"404 Not Found", b"not found\n", keep, method == "HEAD"))
        else:
            out.append(response(b"200 OK", BODY, keep, method == "HEAD"))
        if not keep:
            return b"".join(out), b"", True


def serve(ring, listener):
    pending = {}    # fd -> bytes received and not yet answered
    closing = set()

    def submit(op, conn, *args):
        sqe = ring.get_sqe()
        getattr(sqe, "prep_" + op)(*args)
        sqe.set_data((op, conn, args[-1] if op == "send" else None))

    def recv(conn):
        submit("recv", conn, conn, BUFSIZE)

    def close(conn):
        pending.pop(conn, None)
        closing.discard(conn)
        os.close(conn)

    submit("accept", None, listener)
    while True:
        ring.submit()
        cqe = ring.wait_cqe()
        while cqe is not None:
            ring.cqe_seen(cqe)
            op, conn, data = cqe.get_data()
            try:
                result = cqe.getresult()
            except OSError:
                if op == "accept":
                    submit("accept", None, listener)
                else:
                    close(conn)
                cqe = ring.peek_cqe()
                continue
            if op == "accept":
                pending[result] = b""
                recv(result)
                submit("accept", None, listener)
            elif op == "recv":
                if not result:                      # the client closed
                    close(conn)
                else:
                    out, pending[conn], last = answer(pending[conn] + result)
                    if last:
                        closing.add(conn)
                    if out:
                        submit("send", conn, conn, out)
                    else:
                        recv(conn)
            elif result < len(data):                # a partial send: the rest
                submit("send", conn, conn, data[result:])
            elif conn in closing:
                close(conn)
            else:
                recv(conn)
            cqe = ring.peek_cqe()


def main(argv=None):
    p = argparse.ArgumentParser(description="minimal HTTP/1.1 keep-alive server on io_uring")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0: any free port")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)   # SIGTERM: like Ctrl-C
    listener = socket.create_server((args.host, args.port), backlog=1024)
    print("http server listening on http://%s:%d/" % listener.getsockname()[:2], flush=True)
    try:
        with IoUring(1024) as ring:
            serve(ring, listener)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

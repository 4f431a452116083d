"""A short tour of py_io_uring doing real I/O: a file written and read back,
a TCP round trip on loopback, a timeout and a cancellation.

Run it with `make demo` (which builds the module first)."""

import errno
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.environ.get("PY_IO_URING_BUILD", "build"))
import py_io_uring  # noqa: E402
from py_io_uring import AT_FDCWD, IoUring  # noqa: E402


def run(ring, *preps):
    """Prepare one Sqe per (tag, method, args...) tuple, submit them all with
    one submit() and return {tag: Cqe} once every one has completed."""
    for tag, method, *args in preps:
        sqe = ring.get_sqe()
        getattr(sqe, "prep_" + method)(*args)
        sqe.set_data(tag)
    ring.submit()
    done = {}
    for cqe in ring.wait_cqe_nr(len(preps)):
        done[cqe.get_data()] = cqe
        ring.cqe_seen(cqe)
    return done


def main():
    print("py_io_uring %s on Linux %s" % (py_io_uring.__version__, os.uname().release))
    with IoUring(64) as ring:
        print("supported here:", ", ".join(sorted(ring.probe())))

        # 1. a file: openat, write, read back, close, all through the ring
        path = os.path.join(tempfile.mkdtemp(), "demo.txt")
        fd = run(ring, ("open", "openat", AT_FDCWD, path, os.O_RDWR | os.O_CREAT, 0o644))["open"].getresult()
        wrote = run(ring, ("w", "write", fd, b"hello from io_uring\n", 0))["w"].getresult()
        data = run(ring, ("r", "read", fd, 100, 0))["r"].getresult()
        run(ring, ("c", "close", fd))
        os.unlink(path)
        print("file:    wrote %d bytes, read back %r" % (wrote, data))

        # 2. TCP on loopback: accept and connect in one submit, then a round trip
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = socket.socket()
        done = run(ring, ("accept", "accept", server),
                   ("connect", "connect", client, server.getsockname()))
        conn = socket.socket(fileno=done["accept"].getresult())
        peer = done["accept"].convert_address()
        rt = run(ring, ("send", "send", client, b"ping"), ("recv", "recv", conn, 64))
        print("tcp:     accepted %s, sent %d bytes, received %r"
              % (peer, rt["send"].getresult(), rt["recv"].getresult()))
        for s in (conn, client, server):
            s.close()

        # 3. a timeout: completes with -ETIME after 0.2 s
        t0 = time.monotonic()
        t = run(ring, ("t", "timeout", 0.2))["t"]
        print("timeout: res %d (-ETIME) after %.2f s" % (t.res(), time.monotonic() - t0))

        # 4. a cancel: a recv that would wait forever, cancelled in the kernel;
        #    its buffer stays pinned until the recv's own completion
        a, b = socket.socketpair()
        recv = ring.get_sqe()
        recv.prep_recv(a, bytearray(16))
        recv.set_data("recv")
        ring.submit()
        cancel = ring.get_sqe()
        cancel.prep_cancel(recv)
        cancel.set_data("cancel")
        ring.submit()
        done = {}
        for cqe in ring.wait_cqe_nr(2):   # the cancel's and the recv's own
            done[cqe.get_data()] = cqe
            ring.cqe_seen(cqe)
        print("cancel:  cancel res %d, recv res %d (-ECANCELED is %d)"
              % (done["cancel"].res(), done["recv"].res(), -errno.ECANCELED))
        a.close()
        b.close()
    print("ring closed")


if __name__ == "__main__":
    main()

"""Echo server over py_io_uring's synchronous IoUring API, written the way a
user would with its fastest forms: one multishot accept, then per
connection a recv into its own reusable buffer and a send of what arrived
(the rest again on a partial send), each one ring.prep_*(..., user_data=)
call; one reap(..., 1, True) per round submits what was prepared, waits for
a completion and hands back every ready one as a tuple.  The ring is set up
with IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (one thread
submits; the kernel runs completion work when this thread waits, not by
interrupting it), which io_uring's documentation recommends for servers."""

import socket

import common

RECV, SEND = 0, 1


class Conn:
    __slots__ = ("sock", "fd", "buf", "view", "pending", "recv_data", "send_data")

    def __init__(self, fd):
        self.sock = socket.socket(fileno=fd)   # closes the fd when dropped
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fd = fd
        self.buf = bytearray(common.BUF)
        self.view = memoryview(self.buf)
        self.pending = None                    # what is left to send
        self.recv_data = (self, RECV)          # the user data, made once
        self.send_data = (self, SEND)


def main():
    args = common.parse_args()
    m = common.load_py_io_uring(args.build)
    lsock = common.listener()
    ring = m.IoUring(4096, m.IORING_SETUP_SINGLE_ISSUER | m.IORING_SETUP_DEFER_TASKRUN)
    prep_recv, prep_send, reap = ring.prep_recv, ring.prep_send, ring.reap
    more = m.IORING_CQE_F_MORE
    accept_data = ("accept", None)

    def start_accept():
        ring.prep_multishot_accept(lsock, user_data=accept_data)

    def send(c, data):
        c.pending = data
        prep_send(c.fd, data, 0, user_data=c.send_data)

    start_accept()
    common.ready(lsock)
    while True:
        for (c, kind), res, flags in reap(4096, 1, True):
            if kind is None:          # the accept
                if res >= 0:
                    c = Conn(res)
                    prep_recv(c.fd, c.view, 0, user_data=c.recv_data)
                if not flags & more:
                    start_accept()
            elif kind == RECV:
                if res <= 0:
                    c.sock.close()
                else:
                    send(c, c.view[:res])
            else:
                if res < 0:
                    c.sock.close()
                elif res < len(c.pending):
                    send(c, c.pending[res:])
                else:
                    c.pending = None
                    prep_recv(c.fd, c.view, 0, user_data=c.recv_data)

if __name__ == "__main__":
    main()

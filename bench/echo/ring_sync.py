"""Echo server over py_io_uring's synchronous IoUring API, written the way a
user would: one multishot accept, then per connection a recv into its own
reusable buffer and a send of what arrived (the rest again on a partial
send); submit_and_wait(1), then every ready completion is handled in a batch
(wait_cqe_nr(cq_ready()), one cq_advance() for the batch)."""

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
    ring = m.IoUring(4096)
    get_sqe, submit_and_wait, wait_cqe_nr, cq_ready, cq_advance = (
        ring.get_sqe, ring.submit_and_wait, ring.wait_cqe_nr, ring.cq_ready, ring.cq_advance)
    more = m.IORING_CQE_F_MORE
    accept_data = ("accept", None)

    def start_accept():
        sqe = get_sqe()
        sqe.prep_multishot_accept(lsock)
        sqe.set_data(accept_data)

    def recv(c):
        sqe = get_sqe()
        sqe.prep_recv(c.fd, c.view, 0)
        sqe.set_data(c.recv_data)

    def send(c, data):
        c.pending = data
        sqe = get_sqe()
        sqe.prep_send(c.fd, data, 0)
        sqe.set_data(c.send_data)

    start_accept()
    common.ready(lsock)
    while True:
        submit_and_wait(1)
        cqes = wait_cqe_nr(cq_ready())
        for cqe in cqes:
            c, kind = cqe.get_data()
            res = cqe.res()
            if kind is None:          # the accept
                if res >= 0:
                    recv(Conn(res))
                if not cqe.flags() & more:
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
                    recv(c)
        cq_advance(len(cqes))


if __name__ == "__main__":
    main()

"""Socket operations of ops.def against the real kernel: send, recv,
accept (and accept_direct, multishot_accept, multishot_accept_direct),
connect, socket (and its direct forms), shutdown, bind, listen, sendto,
sendmsg, recvmsg, their multishot and zero-copy forms, and the socket
commands (IORING_OP_URING_CMD).  A behaviour that every form of an op
shares runs through the `form` fixture (forms.py).  A closed fd is
test_ops_common.py's.  An op the running kernel lacks is skipped."""

import array
import errno
import os
import socket
import stat
import struct
import time

import pytest

import py_io_uring
from py_io_uring import (
    IORING_ACCEPT_DONTWAIT,
    IORING_ACCEPT_POLL_FIRST,
    IORING_CQE_BUFFER_SHIFT,
    IORING_CQE_F_BUFFER,
    IORING_CQE_F_MORE,
    IORING_CQE_F_NOTIF,
    IORING_CQE_F_SOCK_NONEMPTY,
    IORING_RECVSEND_POLL_FIRST,
    IOSQE_FIXED_FILE,
)

from op_helpers import cancel_multishot, finish_zc, install, op_fails, parse_recvmsg_out, recv_all
from uring_helpers import TMP_CONTENT, WAIT, assert_fails, need, prep, run_op, wait_one


# --------------------------------------------------------------------------
# send and recv


def test_send_then_recv_round_trip(ring, form, tcp_pair):
    client, server = tcp_pair
    assert form.run(ring, "send", client, b"ping") == (4, form.noflags)
    assert form.run(ring, "recv", server, 100) == (b"ping", form.noflags)
    # and the other way, with raw fds and keywords
    assert form.run(ring, "send", fd=server.fileno(), data=bytearray(b"pong"), flags=0)[0] == 4
    assert form.run(ring, "recv", fd=client.fileno(), buf=100, flags=0)[0] == b"pong"


def test_send_is_received_by_plain_socket(ring, form, tcp_pair):
    client, server = tcp_pair
    payload = TMP_CONTENT * 4  # 16 KiB, fits in the socket buffers
    sent = 0
    for _ in range(100):  # send may be partial; bounded loop
        if sent == len(payload):
            break
        n = form.run(ring, "send", client, memoryview(payload)[sent:])[0]
        assert n > 0
        sent += n
    assert sent == len(payload)
    got = bytearray()
    server.settimeout(WAIT)
    while len(got) < len(payload):
        chunk = server.recv(65536)
        assert chunk
        got += chunk
    assert got == payload


def test_recv_submitted_before_data_arrives(ring, form, tcp_pair):
    client, server = tcp_pair

    def later(ring_used):
        time.sleep(0.05)
        assert ring_used.cq_ready() == 0
        assert ring_used.in_flight() == 1
        client.sendall(b"arrived later")

    assert form.run(ring, "recv", server, 64, after_submit=later) == (b"arrived later", form.noflags)


def test_recv_gives_at_most_the_requested_length(ring, form, tcp_pair):
    client, server = tcp_pair
    client.sendall(b"0123456789")
    assert form.run(ring, "recv", server, 4)[0] == b"0123"
    buf = bytearray(4)
    data, flags = form.run(ring, "recv", server.fileno(), buf)
    assert data == 4 and buf == b"4567"
    # 2 bytes are left: kernels that say so set IORING_CQE_F_SOCK_NONEMPTY
    assert flags in (form.noflags, IORING_CQE_F_SOCK_NONEMPTY)
    server.settimeout(WAIT)
    assert server.recv(100) == b"89"


def test_recv_into_bytearray(ring, form, tcp_pair):
    client, server = tcp_pair
    buf = bytearray(b"\xee" * 16)
    client.sendall(b"zero-copy")
    assert form.run(ring, "recv", server, buf)[0] == 9
    assert buf == b"zero-copy" + b"\xee" * 7


def test_recv_into_memoryview_slice(ring, form, tcp_pair):
    client, server = tcp_pair
    buf = bytearray(16)
    client.sendall(b"abcdefgh")
    assert form.run(ring, "recv", server, memoryview(buf)[4:8])[0] == 4
    assert buf == b"\0" * 4 + b"abcd" + b"\0" * 8


def test_recv_peek_flag(ring, form, tcp_pair):
    client, server = tcp_pair
    client.sendall(b"peekaboo")
    assert form.run(ring, "recv", server, 100, socket.MSG_PEEK)[0] == b"peekaboo"
    server.settimeout(WAIT)
    assert server.recv(100) == b"peekaboo"  # still there


def test_recv_after_peer_closed_is_empty(ring, form, tcp_pair):
    client, server = tcp_pair
    client.close()
    assert form.run(ring, "recv", server, 100)[0] == b""


def test_recv_into_buffer_after_peer_closed_is_zero(ring, form, tcp_pair):
    client, server = tcp_pair
    client.close()
    assert form.run(ring, "recv", server, bytearray(8))[0] == 0


def test_recv_pending_when_peer_closes(ring, form, tcp_pair):
    client, server = tcp_pair

    def close(ring_used):
        time.sleep(0.05)
        assert ring_used.cq_ready() == 0
        client.close()

    assert form.run(ring, "recv", server, 100, after_submit=close)[0] == b""


def test_send_and_recv_on_non_socket_are_enotsock(ring, form, rfd):
    assert form.run(ring, "recv", rfd, 10)[0] == -errno.ENOTSOCK
    assert form.run(ring, "send", rfd, b"x")[0] == -errno.ENOTSOCK


def test_send_on_unconnected_udp_socket_is_edestaddrreq(ring, form):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert form.run(ring, "send", s, b"x")[0] == -errno.EDESTADDRREQ


# --------------------------------------------------------------------------
# accept


def _accepted(fd):
    return socket.socket(fileno=fd)


def test_accept_tcp(ring, listener):
    sqe = prep(ring, "accept", listener)
    ring.submit()
    with pytest.raises(ValueError):
        sqe.convert_address()  # not completed yet
    client = socket.create_connection(listener.getsockname(), timeout=WAIT)
    try:
        cqe = wait_one(ring)
        fd = cqe.res()
        assert fd >= 0 and cqe.getresult() == fd
        # without SOCK_NONBLOCK the new socket is blocking
        assert os.get_blocking(fd)
        with _accepted(fd) as conn:
            assert conn.getpeername() == client.getsockname()
            assert sqe.convert_address() == client.getsockname()
            assert cqe.convert_address() == client.getsockname()
            assert cqe.convert_address() == ("127.0.0.1", client.getsockname()[1])
            # the new socket works
            client.sendall(b"hi")
            conn.settimeout(WAIT)
            assert conn.recv(10) == b"hi"
    finally:
        client.close()


def test_accept_gives_a_connected_socket(ring, form, listener):
    clients = []

    def connect(ring_used):
        time.sleep(0.05)
        assert ring_used.cq_ready() == 0  # nobody connected yet
        clients.append(socket.create_connection(listener.getsockname(), timeout=WAIT))

    try:
        res, flags = form.run(ring, "accept", listener, after_submit=connect)
        [client] = clients
        if form.name == "async":   # `async await fd peer`: (fd, peer address)
            fd, peer = res
            assert peer == client.getsockname()
        else:
            fd = res
            assert flags == 0
        assert type(fd) is int and fd >= 0
        with socket.socket(fileno=fd) as conn:
            assert conn.getpeername() == client.getsockname()
            client.sendall(b"accepted")
            conn.settimeout(WAIT)
            assert conn.recv(16) == b"accepted"
    finally:
        for c in clients:
            c.close()


def test_accept_flags(ring, listener):
    flags = socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
    prep(ring, "accept", listener.fileno(), flags=flags)
    ring.submit()
    with socket.create_connection(listener.getsockname(), timeout=WAIT):
        fd = wait_one(ring).getresult()
        with _accepted(fd):
            assert not os.get_blocking(fd)
            assert not os.get_inheritable(fd)


def test_accept_ipv6(ring):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    lst = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        try:
            lst.bind(("::1", 0))
        except OSError:
            pytest.skip("::1 not available")
        lst.listen(1)
        sqe = prep(ring, "accept", lst)
        ring.submit()
        with socket.create_connection(lst.getsockname()[:2], timeout=WAIT) as client:
            cqe = wait_one(ring)
            with _accepted(cqe.getresult()):
                peer = client.getsockname()
                assert len(peer) == 4
                assert cqe.convert_address() == peer
                assert sqe.convert_address() == peer
    finally:
        lst.close()


@pytest.mark.parametrize("client_bind", ["path", "abstract", "unbound"])
def test_accept_unix(ring, tmp_path, client_bind):
    path = str(tmp_path / "srv.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lst.bind(path)
        lst.listen(1)
        if client_bind == "path":
            client.bind(str(tmp_path / "cli.sock"))
        elif client_bind == "abstract":
            client.bind(b"\0py_io_uring-test-%d" % os.getpid())
        sqe = prep(ring, "accept", lst)
        ring.submit()
        client.connect(path)
        cqe = wait_one(ring)
        with _accepted(cqe.getresult()):
            expected = client.getsockname()
            assert cqe.convert_address() == expected
            assert sqe.convert_address() == expected
            assert type(cqe.convert_address()) is type(expected)
    finally:
        client.close()
        lst.close()


def test_accept_on_non_listening_socket_is_einval(ring):
    with socket.socket() as s:
        _, cqe = run_op(ring, "accept", s)
        assert_fails(cqe, errno.EINVAL)


def test_accept_on_non_socket_is_enotsock(ring, rfd):
    _, cqe = run_op(ring, "accept", rfd)
    assert_fails(cqe, errno.ENOTSOCK)


# --------------------------------------------------------------------------
# connect


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_connect_tcp(ring, listener, host):
    port = listener.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        _, cqe = run_op(ring, "connect", s, (host, port))
        assert cqe.res() == 0
        assert cqe.getresult() == 0
        assert s.getpeername() == ("127.0.0.1", port)
        listener.settimeout(WAIT)
        conn, addr = listener.accept()
        with conn:
            assert addr == s.getsockname()
            s.sendall(b"connected")
            conn.settimeout(WAIT)
            assert conn.recv(100) == b"connected"


def test_connect_keywords_and_raw_fd(ring, listener):
    with socket.socket() as s:
        _, cqe = run_op(ring, "connect", fd=s.fileno(), address=listener.getsockname())
        assert cqe.res() == 0
        assert s.getpeername() == listener.getsockname()


@pytest.mark.parametrize("form", [2, 4])
def test_connect_ipv6(ring, form):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    lst = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        try:
            lst.bind(("::1", 0))
        except OSError:
            pytest.skip("::1 not available")
        lst.listen(1)
        port = lst.getsockname()[1]
        addr = ("::1", port) if form == 2 else ("::1", port, 0, 0)
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            _, cqe = run_op(ring, "connect", s, addr)
            assert cqe.res() == 0
            assert s.getpeername()[:2] == ("::1", port)
            lst.settimeout(WAIT)
            conn, _ = lst.accept()
            conn.close()
    finally:
        lst.close()


@pytest.mark.parametrize("kind", ["str", "bytes", "abstract str", "abstract bytes"])
def test_connect_unix(ring, tmp_path, kind):
    if kind == "str":
        bind_addr = connect_addr = str(tmp_path / "u.sock")
    elif kind == "bytes":
        bind_addr = str(tmp_path / "u.sock")
        connect_addr = os.fsencode(bind_addr)
    elif kind == "abstract bytes":
        bind_addr = connect_addr = b"\0py_io_uring-c-%d" % os.getpid()
    else:
        bind_addr = connect_addr = "\0py_io_uring-s-%d" % os.getpid()
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lst.bind(bind_addr)
        lst.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            _, cqe = run_op(ring, "connect", s, connect_addr)
            assert cqe.res() == 0
            assert s.getpeername() == lst.getsockname()
            lst.settimeout(WAIT)
            conn, _ = lst.accept()
            with conn:
                s.sendall(b"unix")
                conn.settimeout(WAIT)
                assert conn.recv(10) == b"unix"
    finally:
        lst.close()


def test_connect_refused(ring):
    # A bound socket that does not listen: connections to it are refused,
    # and nobody else can take the port meanwhile.
    with socket.socket() as closed_port, socket.socket() as s:
        closed_port.bind(("127.0.0.1", 0))
        _, cqe = run_op(ring, "connect", s, closed_port.getsockname())
        assert_fails(cqe, errno.ECONNREFUSED, ConnectionRefusedError)


def test_connect_unix_missing_path_is_enoent(ring, tmp_path):
    with socket.socket(socket.AF_UNIX) as s:
        _, cqe = run_op(ring, "connect", s, str(tmp_path / "missing.sock"))
        assert_fails(cqe, errno.ENOENT, FileNotFoundError)


# --------------------------------------------------------------------------
# sockets: socket, socket_direct, socket_direct_alloc, shutdown, bind, listen


def test_socket_creates_socket(ring):
    need(ring, "socket")
    _, cqe = run_op(ring, "socket", socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    fd = cqe.getresult()
    s = socket.socket(fileno=fd)
    try:
        assert s.family == socket.AF_INET
        assert s.type == socket.SOCK_DGRAM
        assert not os.get_inheritable(fd)
    finally:
        s.close()


def test_socket_unix_stream_nonblock(ring):
    need(ring, "socket")
    _, cqe = run_op(ring, "socket", socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    s = socket.socket(fileno=cqe.getresult())
    try:
        assert s.family == socket.AF_UNIX and s.type == socket.SOCK_STREAM
        assert not os.get_blocking(s.fileno())
    finally:
        s.close()


def test_socket_bad_family_is_eafnosupport(ring):
    op_fails(ring, "socket", errno.EAFNOSUPPORT, 12345, socket.SOCK_STREAM)


def test_socket_bad_type_is_einval(ring):
    op_fails(ring, "socket", errno.EINVAL, socket.AF_INET, 0x7F)


def test_socket_direct_explicit_slot_and_alloc(table):
    ring = table
    need(ring, "socket_direct")
    _, cqe = run_op(ring, "socket_direct", socket.AF_INET, socket.SOCK_STREAM, 0, 6)
    assert cqe.res() == 0
    fd = install(ring, 6)
    s = socket.socket(fileno=fd)
    try:
        assert s.family == socket.AF_INET and s.type == socket.SOCK_STREAM
    finally:
        s.close()
    _, cqe = run_op(ring, "socket_direct", socket.AF_INET6, socket.SOCK_DGRAM)
    slot = cqe.getresult()
    assert 0 <= slot < 8 and slot != 6
    s = socket.socket(fileno=install(ring, slot))
    try:
        assert s.family == socket.AF_INET6 and s.type == socket.SOCK_DGRAM
    finally:
        s.close()


def test_socket_direct_without_table_is_enfile(ring):
    # Linux 6.18: no table to allocate a slot in is ENFILE (io_file_bitmap_get);
    # an explicit slot without a table would be ENXIO
    op_fails(ring, "socket_direct", errno.ENFILE, socket.AF_INET, socket.SOCK_STREAM)


def test_socket_direct_bad_family_is_eafnosupport(table):
    op_fails(table, "socket_direct", errno.EAFNOSUPPORT, 12345, socket.SOCK_STREAM)


def test_socket_direct_alloc(table):
    ring = table
    need(ring, "socket_direct_alloc")
    slots = []
    for _ in range(2):
        _, cqe = run_op(ring, "socket_direct_alloc", socket.AF_UNIX, socket.SOCK_DGRAM)
        slots.append(cqe.getresult())
    assert len(set(slots)) == 2 and all(0 <= s < 8 for s in slots)
    s = socket.socket(fileno=install(ring, slots[1]))
    try:
        assert s.family == socket.AF_UNIX and s.type == socket.SOCK_DGRAM
    finally:
        s.close()


def test_socket_direct_alloc_without_table_is_enfile(ring):
    # Linux 6.18, as for socket_direct: ENFILE when there is no table to allocate in
    op_fails(ring, "socket_direct_alloc", errno.ENFILE, socket.AF_INET, socket.SOCK_STREAM)


def test_socket_direct_alloc_full_table_is_enfile(ring):
    need(ring, "socket_direct_alloc")
    ring.register_files_sparse(1)
    _, cqe = run_op(ring, "socket_direct_alloc", socket.AF_INET, socket.SOCK_STREAM)
    assert cqe.getresult() == 0
    op_fails(ring, "socket_direct_alloc", errno.ENFILE, socket.AF_INET, socket.SOCK_STREAM)


def test_shutdown_write_side_gives_peer_eof(ring, tcp_pair):
    need(ring, "shutdown")
    client, server = tcp_pair
    client.sendall(b"last words")
    _, cqe = run_op(ring, "shutdown", client, socket.SHUT_WR)
    assert cqe.getresult() == 0
    server.settimeout(WAIT)
    assert recv_all(server, 10) == b"last words"
    assert server.recv(10) == b""
    with pytest.raises(BrokenPipeError):
        client.send(b"more")


def test_shutdown_unconnected_is_enotconn(ring):
    with socket.socket() as s:
        op_fails(ring, "shutdown", errno.ENOTCONN, s, socket.SHUT_RDWR)


def test_shutdown_non_socket_is_enotsock(ring, rfd):
    op_fails(ring, "shutdown", errno.ENOTSOCK, rfd, socket.SHUT_RDWR)


def test_bind_and_listen_on_fresh_socket(ring):
    need(ring, "bind", "listen")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        _, cqe = run_op(ring, "bind", s, ("127.0.0.1", 0))
        assert cqe.getresult() == 0
        host, port = s.getsockname()
        assert host == "127.0.0.1" and port > 0
        _, cqe = run_op(ring, "listen", s, 4)
        assert cqe.getresult() == 0
        with socket.create_connection((host, port), timeout=WAIT) as c:
            conn, addr = s.accept()
            with conn:
                assert addr == c.getsockname()
    finally:
        s.close()


def test_bind_ipv6_and_unix(ring, tmp_path):
    need(ring, "bind")
    if socket.has_ipv6:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            _, cqe = run_op(ring, "bind", s6, ("::1", 0))
            if cqe.res() != -errno.EADDRNOTAVAIL:  # no ::1 in this sandbox
                assert cqe.res() == 0
                assert s6.getsockname()[0] == "::1"
        finally:
            s6.close()
    su = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        path = str(tmp_path / "sock")
        _, cqe = run_op(ring, "bind", su, path)
        assert cqe.res() == 0
        assert su.getsockname() == path
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        su.close()


def test_bind_address_in_use_is_eaddrinuse(ring, listener):
    with socket.socket() as s:
        op_fails(ring, "bind", errno.EADDRINUSE, s, listener.getsockname())


def test_bind_twice_is_einval(ring):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        op_fails(ring, "bind", errno.EINVAL, s, ("127.0.0.1", 0))


def test_listen_on_udp_is_eopnotsupp(ring):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        op_fails(ring, "listen", errno.EOPNOTSUPP, s)


# --------------------------------------------------------------------------
# accept_direct, multishot_accept, multishot_accept_direct


def test_accept_direct(table, listener):
    ring = table
    need(ring, "accept_direct")
    client = socket.create_connection(listener.getsockname(), timeout=WAIT)
    try:
        sqe, cqe = run_op(ring, "accept_direct", listener)
        slot = cqe.getresult()
        assert 0 <= slot < 8
        assert sqe.convert_address() == client.getsockname()
        # send through the slot, receive on the client
        s = prep(ring, "send", slot, b"direct hello")
        s.set_flags(IOSQE_FIXED_FILE)
        ring.submit()
        assert wait_one(ring).getresult() == 12
        assert recv_all(client, 12) == b"direct hello"
    finally:
        client.close()


def test_accept_direct_explicit_slot(table, listener):
    ring = table
    need(ring, "accept_direct")
    client = socket.create_connection(listener.getsockname(), timeout=WAIT)
    try:
        _, cqe = run_op(ring, "accept_direct", listener, 0, 3)
        assert cqe.res() == 0
        conn = socket.socket(fileno=install(ring, 3))
        with conn:
            assert conn.getpeername() == client.getsockname()
    finally:
        client.close()


def test_accept_direct_on_non_listening_socket_is_einval(table):
    with socket.socket() as s:
        op_fails(table, "accept_direct", errno.EINVAL, s)


def test_accept_direct_without_table_is_enfile(ring, listener):
    need(ring, "accept_direct")
    client = socket.create_connection(listener.getsockname(), timeout=WAIT)
    try:
        # Linux 6.18, as for socket_direct: ENFILE when there is no table to allocate in
        op_fails(ring, "accept_direct", errno.ENFILE, listener)
    finally:
        client.close()


def test_multishot_accept_two_connections(ring, listener):
    need(ring, "multishot_accept")
    sqe = prep(ring, "multishot_accept", listener, tag="acc")
    ring.submit()
    clients = [socket.create_connection(listener.getsockname(), timeout=WAIT) for _ in range(2)]
    conns = []
    try:
        for c in clients:
            cqe = wait_one(ring)
            assert cqe.get_data() == "acc"
            assert cqe.flags() & IORING_CQE_F_MORE
            conns.append(socket.socket(fileno=cqe.getresult()))
        assert sorted(x.getpeername() for x in conns) == sorted(c.getsockname() for c in clients)
        assert cancel_multishot(ring, sqe) == []
    finally:
        for s in conns + clients:
            s.close()


def test_multishot_accept_on_non_listening_socket_is_einval(ring):
    with socket.socket() as s:
        op_fails(ring, "multishot_accept", errno.EINVAL, s)


def test_multishot_accept_direct(table, listener):
    ring = table
    need(ring, "multishot_accept_direct")
    sqe = prep(ring, "multishot_accept_direct", listener)
    ring.submit()
    clients = [socket.create_connection(listener.getsockname(), timeout=WAIT) for _ in range(2)]
    try:
        slots = []
        for _ in clients:
            cqe = wait_one(ring)
            assert cqe.flags() & IORING_CQE_F_MORE
            slots.append(cqe.getresult())
        assert len(set(slots)) == 2 and all(0 <= s < 8 for s in slots)
        peers = []
        for slot in slots:
            with socket.socket(fileno=install(ring, slot)) as conn:
                peers.append(conn.getpeername())
        assert sorted(peers) == sorted(c.getsockname() for c in clients)
        cancel_multishot(ring, sqe)
    finally:
        for c in clients:
            c.close()


def test_multishot_accept_direct_on_non_listening_socket_is_einval(table):
    with socket.socket() as s:
        op_fails(table, "multishot_accept_direct", errno.EINVAL, s)


# --------------------------------------------------------------------------
# recv_multishot, recvmsg_multishot (buffer rings)


def test_recv_multishot_with_buffer_ring(ring, tcp_pair):
    need(ring, "recv_multishot")
    client, server = tcp_pair
    ring.setup_buf_ring(7, 4, 64)
    sqe = prep(ring, "recv_multishot", server, tag="rm")
    sqe.set_buf_group(7)
    ring.submit()
    for i in range(3):
        msg = b"message %d" % i
        client.sendall(msg)
        cqe = wait_one(ring)
        assert cqe.get_data() == "rm"
        assert cqe.flags() & IORING_CQE_F_MORE
        assert cqe.flags() & IORING_CQE_F_BUFFER
        assert (cqe.flags() >> IORING_CQE_BUFFER_SHIFT) < 4
        assert cqe.getresult() == msg
        assert cqe.res() == len(msg)
    cancel_multishot(ring, sqe)
    ring.free_buf_ring(7)


def test_recv_multishot_ends_at_peer_close(ring, tcp_pair):
    need(ring, "recv_multishot")
    client, server = tcp_pair
    ring.setup_buf_ring(2, 4, 128)
    sqe = prep(ring, "recv_multishot", server)
    sqe.set_buf_group(2)
    ring.submit()
    client.sendall(b"bye")
    assert wait_one(ring).getresult() == b"bye"
    client.close()
    last = wait_one(ring)
    assert last.res() == 0
    assert not last.flags() & IORING_CQE_F_MORE
    assert ring.in_flight() == 0


def test_recv_multishot_without_buffers_is_enobufs(ring, tcp_pair):
    need(ring, "recv_multishot")
    client, server = tcp_pair
    client.sendall(b"data")
    sqe = prep(ring, "recv_multishot", server)
    sqe.set_buf_group(99)  # no buffers in group 99
    ring.submit()
    cqe = wait_one(ring)
    assert not cqe.flags() & IORING_CQE_F_MORE
    assert_fails(cqe, errno.ENOBUFS)


def test_recvmsg_multishot_udp(ring, udp_pair):
    need(ring, "recvmsg_multishot")
    a, b = udp_pair
    ring.setup_buf_ring(3, 4, 512)
    sqe = prep(ring, "recvmsg_multishot", a)
    sqe.set_buf_group(3)
    ring.submit()
    for i in range(3):
        msg = b"datagram %d" % i
        b.sendto(msg, a.getsockname())
        cqe = wait_one(ring)
        assert cqe.flags() & IORING_CQE_F_MORE
        # socket.recvmsg()'s shape, parsed from the provided buffer
        assert cqe.getresult() == (msg, [], 0, b.getsockname())
    cancel_multishot(ring, sqe)


def test_recvmsg_multishot_ancdata_truncation_and_reap(ring, unix_dgram_pair=None):
    need(ring, "recvmsg_multishot")
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    r, w = os.pipe()
    try:
        room = socket.CMSG_SPACE(struct.calcsize("i"))
        # 16-byte header, 128 for the address, room for one fd, 64 payload bytes
        ring.setup_buf_ring(5, 4, 16 + 128 + room + 64)
        ring.prep_recvmsg_multishot(a, 0, room, user_data="m", buf_group=5)
        ring.submit()
        b.sendmsg([b"with an fd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", w))])
        [(d, (data, anc, flags, addr), cflags)] = reap_n_fast(ring, 1)
        assert d == "m" and data == b"with an fd" and flags == 0
        [(level, kind, fdbytes)] = anc
        assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
        passed = struct.unpack("i", fdbytes)[0]
        os.write(passed, b"!")
        os.close(passed)
        assert os.read(r, 1) == b"!"
        # a payload past the buffer's room: what fitted, with MSG_TRUNC
        b.send(b"x" * 100)
        [(d, (data, anc, flags, addr), cflags)] = reap_n_fast(ring, 1)
        assert data == b"x" * 64 and flags & socket.MSG_TRUNC and anc == []
        ring.prep_cancel("m")
        reap_n_fast(ring, 2, submit=True)
    finally:
        for s_ in (a, b):
            s_.close()
        os.close(r)
        os.close(w)


def reap_n_fast(ring, n, submit=False):
    got = []
    deadline = time.monotonic() + WAIT
    while len(got) < n and time.monotonic() < deadline:
        got += ring.reap(n - len(got), 0, submit)
        submit = False
        if len(got) < n:
            ring.wait_cqe(timeout=0.05)
    assert len(got) == n, got
    return got


# --------------------------------------------------------------------------
# sendto, sendmsg, recvmsg


def test_sendto_udp(ring, udp_pair):
    need(ring, "sendto")
    a, b = udp_pair
    _, cqe = run_op(ring, "sendto", a, b"to you", b.getsockname())
    assert cqe.getresult() == 6
    b.settimeout(WAIT)
    data, addr = b.recvfrom(100)
    assert data == b"to you" and addr == a.getsockname()


def test_sendto_unbound_udp_gets_an_address(ring, udp_pair):
    need(ring, "sendto")
    _, b = udp_pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        _, cqe = run_op(ring, "sendto", s, memoryview(b"xxpayloadxx")[2:9], b.getsockname(), 0)
        assert cqe.res() == 7
        b.settimeout(WAIT)
        data, addr = b.recvfrom(100)
        assert data == b"payload"
        assert addr[1] == s.getsockname()[1] != 0  # the kernel bound it


def test_sendto_udp_port_zero_is_einval(ring, udp_pair):
    a, _ = udp_pair
    op_fails(ring, "sendto", errno.EINVAL, a, b"x", ("127.0.0.1", 0))


def test_sendto_non_socket_is_enotsock(ring, rfd):
    op_fails(ring, "sendto", errno.ENOTSOCK, rfd, b"x", ("127.0.0.1", 9))


def test_sendmsg_several_buffers(ring, tcp_pair):
    need(ring, "sendmsg")
    client, server = tcp_pair
    _, cqe = run_op(ring, "sendmsg", client, [b"one ", bytearray(b"two "), memoryview(b"three")])
    assert cqe.getresult() == 13
    assert recv_all(server, 13) == b"one two three"


def test_sendmsg_scm_rights_passes_fd(ring, unix_pair, pipe):
    need(ring, "sendmsg")
    a, b = unix_pair
    r, w = pipe
    fds = array.array("i", [r])
    _, cqe = run_op(ring, "sendmsg", a, [b"fd!"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    assert cqe.getresult() == 3
    b.settimeout(WAIT)
    msg, anc, flags, _ = b.recvmsg(16, socket.CMSG_SPACE(4))
    assert msg == b"fd!"
    assert len(anc) == 1
    level, typ, data = anc[0]
    assert (level, typ) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    newfd = array.array("i", data[:4])[0]
    try:
        assert newfd != r
        assert os.fstat(newfd).st_ino == os.fstat(r).st_ino
        os.write(w, b"via passed fd")
        assert os.read(newfd, 100) == b"via passed fd"
    finally:
        os.close(newfd)


def test_sendmsg_with_address_on_udp(ring, udp_pair):
    need(ring, "sendmsg")
    a, b = udp_pair
    _, cqe = run_op(ring, "sendmsg", a, [b"dgram ", b"parts"], (), 0, b.getsockname())
    assert cqe.getresult() == 11
    b.settimeout(WAIT)
    assert b.recvfrom(100) == (b"dgram parts", a.getsockname())


def test_sendmsg_unconnected_udp_without_address_is_edestaddrreq(ring):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        op_fails(ring, "sendmsg", errno.EDESTADDRREQ, s, [b"nowhere"])


def test_recvmsg_udp_gives_data_and_address(ring, udp_pair):
    need(ring, "recvmsg")
    a, b = udp_pair
    b.sendto(b"hello recvmsg", a.getsockname())
    _, cqe = run_op(ring, "recvmsg", a, 100)
    assert cqe.res() == 13
    data, anc, flags, addr = cqe.getresult()
    assert data == b"hello recvmsg"
    assert anc == []
    assert flags == 0
    assert addr == b.getsockname()


def test_recvmsg_truncation_flag(ring, udp_pair):
    need(ring, "recvmsg")
    a, b = udp_pair
    b.sendto(b"0123456789", a.getsockname())
    _, cqe = run_op(ring, "recvmsg", a, 4)
    data, anc, flags, addr = cqe.getresult()
    assert data == b"0123"
    assert flags & socket.MSG_TRUNC


def test_recvmsg_receives_scm_rights(ring, unix_pair, pipe):
    need(ring, "recvmsg")
    a, b = unix_pair
    r, w = pipe
    a.sendmsg([b"take this"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))])
    _, cqe = run_op(ring, "recvmsg", b, 64, socket.CMSG_SPACE(4))
    data, anc, flags, addr = cqe.getresult()
    assert data == b"take this"
    assert len(anc) == 1 and anc[0][:2] == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    newfd = array.array("i", anc[0][2][:4])[0]
    try:
        os.write(newfd, b"written via received fd")
        assert os.read(r, 100) == b"written via received fd"
    finally:
        os.close(newfd)


def test_recvmsg_non_socket_is_enotsock(ring, rfd):
    op_fails(ring, "recvmsg", errno.ENOTSOCK, rfd, 16)


# --------------------------------------------------------------------------
# zero-copy sends


def test_send_zc_tcp(ring, tcp_pair):
    need(ring, "send_zc")
    client, server = tcp_pair
    payload = bytes(range(256)) * 8
    sqe = prep(ring, "send_zc", client, payload, tag="zc")
    ring.submit()
    first, notif = finish_zc(ring, len(payload))
    assert first.get_data() == "zc" and notif.get_data() == "zc"
    assert first.getresult() == len(payload)
    assert recv_all(server, len(payload)) == payload
    assert ring.in_flight() == 0


def test_send_zc_unix_is_eopnotsupp(ring, unix_pair):
    need(ring, "send_zc")
    a, b = unix_pair
    # Linux 6.18: AF_UNIX sockets do not support zero-copy sends (no SOCK_SUPPORT_ZC):
    # EOPNOTSUPP
    prep(ring, "send_zc", a, b"x")
    ring.submit()
    first = wait_one(ring)
    assert_fails(first, errno.EOPNOTSUPP)
    # a notification follows when the first completion says so
    if first.flags() & IORING_CQE_F_MORE:
        assert wait_one(ring).flags() & IORING_CQE_F_NOTIF
    assert ring.in_flight() == 0


def test_sendmsg_zc_tcp(ring, tcp_pair):
    need(ring, "sendmsg_zc")
    client, server = tcp_pair
    prep(ring, "sendmsg_zc", client, [b"zero ", bytearray(b"copy "), b"msg"])
    ring.submit()
    finish_zc(ring, 13)
    assert recv_all(server, 13) == b"zero copy msg"


def test_sendmsg_zc_udp_with_address(ring, udp_pair):
    need(ring, "sendmsg_zc")
    a, b = udp_pair
    prep(ring, "sendmsg_zc", a, [b"zc dgram"], (), 0, b.getsockname())
    ring.submit()
    finish_zc(ring, 8)
    b.settimeout(WAIT)
    assert b.recvfrom(100) == (b"zc dgram", a.getsockname())


def test_sendmsg_zc_unix_is_eopnotsupp(ring, unix_pair):
    need(ring, "sendmsg_zc")
    a, b = unix_pair
    # Linux 6.18, as for send_zc: no zero-copy on AF_UNIX, EOPNOTSUPP
    prep(ring, "sendmsg_zc", a, [b"x"])
    ring.submit()
    first = wait_one(ring)
    assert_fails(first, errno.EOPNOTSUPP)
    if first.flags() & IORING_CQE_F_MORE:
        assert wait_one(ring).flags() & IORING_CQE_F_NOTIF
    assert ring.in_flight() == 0


def test_send_zc_fixed(ring, tcp_pair):
    need(ring, "send_zc_fixed")
    client, server = tcp_pair
    reg = bytearray(b"registered zero-copy payload")
    ring.register_buffers([bytearray(8), reg])
    mv = memoryview(reg)
    try:
        prep(ring, "send_zc_fixed", client, mv[11:20], buf_index=1)
        ring.submit()
        finish_zc(ring, 9)
        assert recv_all(server, 9) == b"zero-copy"
    finally:
        mv.release()
        ring.unregister_buffers()


def test_send_zc_fixed_outside_registered_buffer_is_efault(ring, tcp_pair):
    need(ring, "send_zc_fixed")
    client, server = tcp_pair
    ring.register_buffers([bytearray(64)])
    try:
        prep(ring, "send_zc_fixed", client, bytearray(b"not registered"), buf_index=0)
        ring.submit()
        first = wait_one(ring)
        assert_fails(first, errno.EFAULT)
        if first.flags() & IORING_CQE_F_MORE:
            assert wait_one(ring).flags() & IORING_CQE_F_NOTIF
    finally:
        ring.unregister_buffers()
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(10)


# --------------------------------------------------------------------------
# socket commands (IORING_OP_URING_CMD)


def test_cmd_siocinq_and_siocoutq(ring, tcp_pair):
    need(ring, "cmd_siocinq", "cmd_siocoutq")
    client, server = tcp_pair
    client.sendall(b"12345")
    deadline = time.monotonic() + 5
    while True:   # the bytes cross loopback asynchronously
        _, cqe = run_op(ring, "cmd_siocinq", server)
        if cqe.getresult() == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert cqe.getresult() == 5
    assert server.recv(5) == b"12345"
    _, cqe = run_op(ring, "cmd_siocinq", server)
    assert cqe.getresult() == 0
    _, cqe = run_op(ring, "cmd_siocoutq", client)
    assert cqe.getresult() == 0


def test_cmd_siocinq_on_a_file_is_eopnotsupp(ring, rfd):
    need(ring, "cmd_siocinq")
    # Linux 6.18: a file without a ->uring_cmd handler is EOPNOTSUPP (io_uring_cmd)
    op_fails(ring, "cmd_siocinq", errno.EOPNOTSUPP, rfd)


def test_cmd_getsockopt_matches_socket_getsockopt(ring, tcp_pair):
    need(ring, "cmd_getsockopt")
    _, server = tcp_pair
    _, cqe = run_op(ring, "cmd_getsockopt", server, socket.SOL_SOCKET, socket.SO_RCVBUF, 4)
    assert cqe.res() == 4
    assert struct.unpack("i", cqe.getresult())[0] == \
        server.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    buf = bytearray(4)
    _, cqe = run_op(ring, "cmd_getsockopt", server, socket.SOL_SOCKET, socket.SO_TYPE, buf)
    assert cqe.getresult() == 4
    assert struct.unpack("i", buf)[0] == socket.SOCK_STREAM


def test_cmd_setsockopt_sets_the_option(ring, tcp_pair):
    need(ring, "cmd_setsockopt")
    _, server = tcp_pair
    assert server.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    _, cqe = run_op(ring, "cmd_setsockopt", server, socket.SOL_SOCKET,
                    socket.SO_KEEPALIVE, struct.pack("i", 1))
    assert cqe.getresult() == 0
    assert server.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


def test_cmd_setsockopt_bad_option_is_enoprotoopt(ring, tcp_pair):
    need(ring, "cmd_setsockopt")
    _, server = tcp_pair
    op_fails(ring, "cmd_setsockopt", errno.ENOPROTOOPT, server, socket.SOL_SOCKET,
             9999, struct.pack("i", 1))


# ---- ioprio: IORING_RECVSEND_POLL_FIRST, IORING_ACCEPT_DONTWAIT and
# IORING_ACCEPT_POLL_FIRST; every other bit refused before the kernel sees it

def test_recv_and_send_poll_first_move_the_data(ring, tcp_pair):
    a, b = tcp_pair
    ring.prep_recv(a, 16, 0, IORING_RECVSEND_POLL_FIRST, user_data="recv")
    ring.submit()
    assert ring.reap(4) == []                     # polled: waits for data
    ring.prep_send(b, b"first", 0, IORING_RECVSEND_POLL_FIRST, user_data="send")
    got = dict((d, v) for d, v, _ in ring.reap(4, 2, True))
    assert got == {"send": 5, "recv": b"first"}


def test_sendmsg_recvmsg_poll_first(ring, tcp_pair):
    a, b = tcp_pair
    sqe = ring.get_sqe()
    sqe.prep_recvmsg(a, 16, 0, 0, IORING_RECVSEND_POLL_FIRST)
    sqe.set_data("r")
    ring.prep_sendmsg(b, [b"ab", b"cd"], (), 0, None, IORING_RECVSEND_POLL_FIRST, user_data="s")
    ring.submit_and_wait(2)
    cqes = ring.wait_cqe_nr(2)
    byd = {c.get_data(): c for c in cqes}
    assert byd["s"].res() == 4
    assert byd["r"].getresult()[0] == b"abcd"
    for c in cqes:
        ring.cqe_seen(c)


def test_accept_dontwait_fails_at_once_without_a_connection(ring, listener):
    ring.prep_accept(listener, 0, IORING_ACCEPT_DONTWAIT, user_data="a")
    assert ring.reap(4, 1, True) == [("a", -errno.EAGAIN, 0)]


def test_accept_poll_first_accepts(ring, listener):
    ring.prep_accept(listener, 0, IORING_ACCEPT_POLL_FIRST, user_data="a")
    ring.submit()
    c = socket.create_connection(listener.getsockname())
    try:
        [(d, fd, _)] = ring.reap(4, 1)
        assert d == "a" and fd >= 0
        socket.socket(fileno=fd).close()
    finally:
        c.close()


@pytest.mark.parametrize("op, args, bad", [
    ("recv", (0, 8, 0), py_io_uring.IORING_RECV_MULTISHOT),
    ("send", (0, b"x", 0), py_io_uring.IORING_RECVSEND_BUNDLE),  # a send bundle is no plain send
    ("send", (0, b"x", 0), py_io_uring.IORING_RECVSEND_FIXED_BUF),
    ("accept", (0, 0), py_io_uring.IORING_ACCEPT_MULTISHOT),
    ("accept", (0, 0), 1 << 31),
])
def test_other_bits_are_refused(ring, op, args, bad):
    with pytest.raises(ValueError, match=r"prep_%s\(\) argument 'ioprio' may hold only .*not 0x" % op):
        getattr(ring, "prep_" + op)(*args, bad)
    assert ring.sq_ready() == 0                   # nothing queued
    with pytest.raises(ValueError, match="ioprio"):
        getattr(ring.get_sqe(), "prep_" + op)(*args, bad)


"""Every prep_* operation against the real kernel: a success with its data
checked, and a failure with its errno checked."""

import array
import errno
import mmap
import os
import socket
import stat
import time

import pytest

import py_io_uring
from py_io_uring import AT_FDCWD
from uring_helpers import (
    TMP_CONTENT,
    WAIT,
    assert_fails,
    by_data,
    closed_fd,
    prep,
    run_op,
    wait_n,
    wait_one,
)






# --------------------------------------------------------------------------
# nop


def test_nop(ring):
    _, cqe = run_op(ring, "nop")
    assert cqe.res() == 0
    assert cqe.getresult() == 0


# --------------------------------------------------------------------------
# read


def test_read_length_returns_bytes(ring, rfd):
    _, cqe = run_op(ring, "read", rfd, 100, 0)
    assert cqe.res() == 100
    data = cqe.getresult()
    assert type(data) is bytes
    assert data == TMP_CONTENT[:100]


def test_read_at_offset(ring, rfd):
    _, cqe = run_op(ring, "read", rfd, 50, 1000)
    assert cqe.getresult() == TMP_CONTENT[1000:1050]


def test_read_short_at_end_of_file_gives_exactly_res_bytes(ring, rfd):
    _, cqe = run_op(ring, "read", rfd, 100, len(TMP_CONTENT) - 30)
    assert cqe.res() == 30
    assert cqe.getresult() == TMP_CONTENT[-30:]


def test_read_past_end_of_file_gives_empty_bytes(ring, rfd):
    _, cqe = run_op(ring, "read", rfd, 100, len(TMP_CONTENT) + 10)
    assert cqe.res() == 0
    assert cqe.getresult() == b""


def test_read_zero_length(ring, rfd):
    _, cqe = run_op(ring, "read", rfd, 0, 0)
    assert cqe.res() == 0
    assert cqe.getresult() == b""


def test_read_offset_minus_one_uses_and_advances_file_position(ring, rfd):
    os.lseek(rfd, 10, os.SEEK_SET)
    _, cqe = run_op(ring, "read", rfd, 5)  # default offset is -1
    assert cqe.getresult() == TMP_CONTENT[10:15]
    assert os.lseek(rfd, 0, os.SEEK_CUR) == 15
    _, cqe = run_op(ring, "read", rfd, 5, -1)
    assert cqe.getresult() == TMP_CONTENT[15:20]


def test_read_explicit_offset_leaves_file_position(ring, rfd):
    os.lseek(rfd, 7, os.SEEK_SET)
    _, cqe = run_op(ring, "read", rfd, 5, 100)
    assert cqe.getresult() == TMP_CONTENT[100:105]
    assert os.lseek(rfd, 0, os.SEEK_CUR) == 7


def test_read_into_bytearray(ring, rfd):
    buf = bytearray(b"\xee" * 64)
    _, cqe = run_op(ring, "read", rfd, buf, 256)
    assert cqe.res() == 64
    assert cqe.getresult() == 64
    assert buf == TMP_CONTENT[256:320]


def test_read_into_bytearray_short_read_touches_only_res_bytes(ring, rfd):
    buf = bytearray(b"\xee" * 64)
    _, cqe = run_op(ring, "read", rfd, buf, len(TMP_CONTENT) - 10)
    assert cqe.getresult() == 10
    assert buf == TMP_CONTENT[-10:] + b"\xee" * 54


def test_read_into_memoryview_slice(ring, rfd):
    buf = bytearray(b"\xee" * 32)
    _, cqe = run_op(ring, "read", rfd, memoryview(buf)[8:16], 0)
    assert cqe.getresult() == 8
    assert buf == b"\xee" * 8 + TMP_CONTENT[:8] + b"\xee" * 16


def test_read_into_array(ring, rfd):
    arr = array.array("I", [0] * 8)
    _, cqe = run_op(ring, "read", rfd, arr, 0)
    assert cqe.getresult() == 32
    assert arr.tobytes() == TMP_CONTENT[:32]


def test_read_into_mmap(ring, rfd):
    m = mmap.mmap(-1, 4096)
    try:
        _, cqe = run_op(ring, "read", rfd, m, 0)
        assert cqe.getresult() == 4096
        assert m[:] == TMP_CONTENT
    finally:
        m.close()


def test_read_accepts_file_object(ring, tmp_file):
    with open(tmp_file, "rb") as f:
        _, cqe = run_op(ring, "read", f, 16, 16)
        assert cqe.getresult() == TMP_CONTENT[16:32]


def test_read_from_pipe_waits_for_data(ring, pipe):
    r, w = pipe
    sqe = prep(ring, "read", r, 100, tag="rd")
    ring.submit()
    assert ring.wait_cqe(timeout=0.05) is None  # nothing to read yet
    os.write(w, b"late data")
    cqe = wait_one(ring)
    assert cqe.get_data() == "rd"
    assert cqe.getresult() == b"late data"
    del sqe


def test_read_from_closed_fd_is_ebadf(ring):
    _, cqe = run_op(ring, "read", closed_fd(), 10)
    assert_fails(cqe, errno.EBADF)


def test_read_from_write_only_fd_is_ebadf(ring, tmp_file):
    fd = os.open(tmp_file, os.O_WRONLY)
    try:
        _, cqe = run_op(ring, "read", fd, 10, 0)
        assert_fails(cqe, errno.EBADF)
    finally:
        os.close(fd)


def test_read_of_directory_is_eisdir(ring, tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _, cqe = run_op(ring, "read", fd, 10, 0)
        assert_fails(cqe, errno.EISDIR, IsADirectoryError)
    finally:
        os.close(fd)


def test_read_failure_into_buffer_raises_too(ring):
    buf = bytearray(8)
    _, cqe = run_op(ring, "read", closed_fd(), buf)
    assert_fails(cqe, errno.EBADF)
    assert buf == bytearray(8)


# --------------------------------------------------------------------------
# write


@pytest.mark.parametrize(
    "make",
    [
        lambda b: b,
        bytearray,
        memoryview,
        lambda b: memoryview(bytearray(b)),
        lambda b: array.array("B", b),
    ],
    ids=["bytes", "bytearray", "memoryview", "memoryview-bytearray", "array"],
)
def test_write_at_offset_then_pread(ring, wfd, make):
    payload = b"hello, io_uring"
    _, cqe = run_op(ring, "write", wfd, make(payload), 100)
    assert cqe.res() == len(payload)
    assert cqe.getresult() == len(payload)
    assert os.pread(wfd, len(payload), 100) == payload
    assert os.pread(wfd, 100, 0) == b"\0" * 100  # the hole before it
    assert os.fstat(wfd).st_size == 100 + len(payload)


def test_write_from_mmap(ring, wfd):
    m = mmap.mmap(-1, 4096)
    try:
        m[:] = TMP_CONTENT
        _, cqe = run_op(ring, "write", wfd, m, 0)
        assert cqe.getresult() == 4096
        assert os.pread(wfd, 4096, 0) == TMP_CONTENT
    finally:
        m.close()


def test_write_from_memoryview_slice(ring, wfd):
    _, cqe = run_op(ring, "write", wfd, memoryview(TMP_CONTENT)[10:20], 0)
    assert cqe.getresult() == 10
    assert os.pread(wfd, 100, 0) == TMP_CONTENT[10:20]


def test_write_offset_minus_one_uses_and_advances_file_position(ring, wfd):
    os.write(wfd, b"abc")
    _, cqe = run_op(ring, "write", wfd, b"def")  # default offset -1
    assert cqe.getresult() == 3
    _, cqe = run_op(ring, "write", wfd, b"ghi", -1)
    assert cqe.getresult() == 3
    assert os.lseek(wfd, 0, os.SEEK_CUR) == 9
    assert os.pread(wfd, 100, 0) == b"abcdefghi"


def test_write_keywords(ring, wfd):
    _, cqe = run_op(ring, "write", fd=wfd, data=b"kw", offset=5)
    assert cqe.getresult() == 2
    assert os.pread(wfd, 2, 5) == b"kw"


def test_write_empty(ring, wfd):
    _, cqe = run_op(ring, "write", wfd, b"", 0)
    assert cqe.getresult() == 0
    assert os.fstat(wfd).st_size == 0


def test_write_to_pipe(ring, pipe):
    r, w = pipe
    _, cqe = run_op(ring, "write", w, b"through the pipe")
    assert cqe.getresult() == 16
    assert os.read(r, 100) == b"through the pipe"


def test_write_to_read_only_fd_is_ebadf(ring, tmp_file):
    fd = os.open(tmp_file, os.O_RDONLY)
    try:
        _, cqe = run_op(ring, "write", fd, b"nope", 0)
        assert_fails(cqe, errno.EBADF)
    finally:
        os.close(fd)
    assert tmp_file.read_bytes() == TMP_CONTENT


def test_write_to_closed_fd_is_ebadf(ring):
    _, cqe = run_op(ring, "write", closed_fd(), b"x")
    assert_fails(cqe, errno.EBADF)


def test_write_to_broken_pipe_is_epipe(ring, pipe):
    r, w = pipe
    os.close(r)
    _, cqe = run_op(ring, "write", w, b"nobody listens")
    assert_fails(cqe, errno.EPIPE, BrokenPipeError)


# --------------------------------------------------------------------------
# send and recv


def test_send_then_recv_round_trip(ring, tcp_pair):
    client, server = tcp_pair
    _, cqe = run_op(ring, "send", client, b"ping")
    assert cqe.res() == 4
    assert cqe.getresult() == 4
    _, cqe = run_op(ring, "recv", server, 100)
    assert cqe.getresult() == b"ping"
    # and the other way, with raw fds and keywords
    _, cqe = run_op(ring, "send", fd=server.fileno(), data=bytearray(b"pong"), flags=0)
    assert cqe.getresult() == 4
    _, cqe = run_op(ring, "recv", fd=client.fileno(), buf=100, flags=0)
    assert cqe.getresult() == b"pong"


def test_send_is_received_by_plain_socket(ring, tcp_pair):
    client, server = tcp_pair
    payload = TMP_CONTENT * 4  # 16 KiB, fits in the socket buffers
    sent = 0
    for _ in range(100):  # send may be partial; bounded loop
        if sent == len(payload):
            break
        _, cqe = run_op(ring, "send", client, memoryview(payload)[sent:])
        n = cqe.getresult()
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


def test_recv_submitted_before_data_arrives(ring, tcp_pair):
    client, server = tcp_pair
    sqe = prep(ring, "recv", server, 64, tag="recv")
    ring.submit()
    assert ring.wait_cqe(timeout=0.05) is None
    client.sendall(b"arrived later")
    cqe = wait_one(ring)
    assert cqe.get_data() == "recv"
    assert cqe.getresult() == b"arrived later"
    del sqe


def test_recv_gives_at_most_the_requested_length(ring, tcp_pair):
    client, server = tcp_pair
    client.sendall(b"0123456789")
    _, cqe = run_op(ring, "recv", server, 4)
    assert cqe.res() == 4
    assert cqe.getresult() == b"0123"
    server.settimeout(WAIT)
    assert server.recv(100) == b"456789"


def test_recv_into_bytearray(ring, tcp_pair):
    client, server = tcp_pair
    buf = bytearray(b"\xee" * 16)
    client.sendall(b"zero-copy")
    _, cqe = run_op(ring, "recv", server, buf)
    assert cqe.res() == 9
    assert cqe.getresult() == 9
    assert buf == b"zero-copy" + b"\xee" * 7


def test_recv_into_memoryview_slice(ring, tcp_pair):
    client, server = tcp_pair
    buf = bytearray(16)
    client.sendall(b"abcdefgh")
    _, cqe = run_op(ring, "recv", server, memoryview(buf)[4:8])
    assert cqe.getresult() == 4
    assert buf == b"\0" * 4 + b"abcd" + b"\0" * 8


def test_recv_peek_flag(ring, tcp_pair):
    client, server = tcp_pair
    client.sendall(b"peekaboo")
    _, cqe = run_op(ring, "recv", server, 100, socket.MSG_PEEK)
    assert cqe.getresult() == b"peekaboo"
    server.settimeout(WAIT)
    assert server.recv(100) == b"peekaboo"  # still there


def test_recv_after_peer_closed_is_empty(ring, tcp_pair):
    client, server = tcp_pair
    client.close()
    _, cqe = run_op(ring, "recv", server, 100)
    assert cqe.res() == 0
    assert cqe.getresult() == b""


def test_recv_into_buffer_after_peer_closed_is_zero(ring, tcp_pair):
    client, server = tcp_pair
    client.close()
    _, cqe = run_op(ring, "recv", server, bytearray(8))
    assert cqe.getresult() == 0


def test_recv_pending_when_peer_closes(ring, tcp_pair):
    client, server = tcp_pair
    prep(ring, "recv", server, 100)
    ring.submit()
    assert ring.wait_cqe(timeout=0.05) is None
    client.close()
    assert wait_one(ring).getresult() == b""


def test_send_and_recv_on_non_socket_are_enotsock(ring, rfd):
    _, cqe = run_op(ring, "recv", rfd, 10)
    assert_fails(cqe, errno.ENOTSOCK)
    _, cqe = run_op(ring, "send", rfd, b"x")
    assert_fails(cqe, errno.ENOTSOCK)


def test_send_on_unconnected_udp_socket_is_edestaddrreq(ring):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        _, cqe = run_op(ring, "send", s, b"x")
        assert_fails(cqe, errno.EDESTADDRREQ)


def test_recv_from_closed_fd_is_ebadf(ring):
    _, cqe = run_op(ring, "recv", closed_fd(), 10)
    assert_fails(cqe, errno.EBADF)


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
# openat


@pytest.mark.parametrize("form", ["str", "bytes", "pathlike"])
def test_openat_then_read_then_close(ring, tmp_file, form):
    path = {"str": str(tmp_file), "bytes": os.fsencode(tmp_file), "pathlike": tmp_file}[form]
    _, cqe = run_op(ring, "openat", AT_FDCWD, path, os.O_RDONLY)
    fd = cqe.res()
    assert fd >= 0 and cqe.getresult() == fd
    try:
        _, cqe = run_op(ring, "read", fd, 4096, 0)
        assert cqe.getresult() == TMP_CONTENT
    except BaseException:
        os.close(fd)
        raise
    _, cqe = run_op(ring, "close", fd)
    assert cqe.getresult() == 0
    with pytest.raises(OSError) as ei:
        os.fstat(fd)
    assert ei.value.errno == errno.EBADF


def test_openat_relative_to_directory_fd(ring, tmp_file):
    dfd = os.open(tmp_file.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _, cqe = run_op(ring, "openat", dfd, tmp_file.name)
        fd = cqe.getresult()
        try:
            assert os.read(fd, 8) == TMP_CONTENT[:8]
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def test_openat_default_flags_are_read_only(ring, tmp_file):
    _, cqe = run_op(ring, "openat", AT_FDCWD, tmp_file)
    fd = cqe.getresult()
    try:
        with pytest.raises(OSError):
            os.write(fd, b"x")
    finally:
        os.close(fd)


def test_openat_create_with_mode(ring, tmp_path):
    target = tmp_path / "new.txt"
    umask = os.umask(0o022)
    try:
        _, cqe = run_op(
            ring, "openat", dfd=AT_FDCWD, path=target, flags=os.O_CREAT | os.O_WRONLY | os.O_EXCL, mode=0o640
        )
    finally:
        os.umask(umask)
    fd = cqe.getresult()
    try:
        os.write(fd, b"created")
    finally:
        os.close(fd)
    assert target.read_bytes() == b"created"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_openat_create_default_mode_is_0o666_minus_umask(ring, tmp_path):
    target = tmp_path / "default-mode"
    umask = os.umask(0o022)
    try:
        _, cqe = run_op(ring, "openat", AT_FDCWD, target, os.O_CREAT | os.O_WRONLY)
    finally:
        os.umask(umask)
    os.close(cqe.getresult())
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


def test_openat_missing_file_is_enoent(ring, tmp_path):
    _, cqe = run_op(ring, "openat", AT_FDCWD, tmp_path / "missing", os.O_RDONLY)
    assert_fails(cqe, errno.ENOENT, FileNotFoundError)


def test_openat_exclusive_existing_is_eexist(ring, tmp_file):
    _, cqe = run_op(ring, "openat", AT_FDCWD, tmp_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    assert_fails(cqe, errno.EEXIST, FileExistsError)


def test_openat_bad_directory_fd_is_ebadf(ring):
    _, cqe = run_op(ring, "openat", closed_fd(), "relative-name")
    assert_fails(cqe, errno.EBADF)


# --------------------------------------------------------------------------
# close


def test_close_fd(ring, tmp_file):
    fd = os.open(tmp_file, os.O_RDONLY)
    _, cqe = run_op(ring, "close", fd)
    assert cqe.res() == 0
    assert cqe.getresult() == 0
    with pytest.raises(OSError) as ei:
        os.fstat(fd)
    assert ei.value.errno == errno.EBADF


def test_close_object_with_fileno(ring):
    a, b = socket.socketpair()
    try:
        _, cqe = run_op(ring, "close", a)
        assert cqe.res() == 0
        # The object is not told: it still holds the number, which is closed.
        fd = a.detach()
        with pytest.raises(OSError):
            os.fstat(fd)
        # the peer sees EOF
        b.settimeout(WAIT)
        assert b.recv(10) == b""
    finally:
        b.close()


def test_close_bad_fd_is_ebadf(ring):
    _, cqe = run_op(ring, "close", closed_fd())
    assert_fails(cqe, errno.EBADF)


# --------------------------------------------------------------------------
# timeout


def test_timeout_expires(ring):
    t0 = time.monotonic()
    _, cqe = run_op(ring, "timeout", 0.2)
    elapsed = time.monotonic() - t0
    assert 0.15 <= elapsed < WAIT
    err = assert_fails(cqe, errno.ETIME, TimeoutError)
    assert err.errno == errno.ETIME


def test_timeout_count_completes_after_other_completion(ring):
    prep(ring, "timeout", 10, count=1, tag="timeout")
    prep(ring, "nop", tag="nop")
    t0 = time.monotonic()
    assert ring.submit() == 2
    cqes = wait_n(ring, 2)
    assert time.monotonic() - t0 < WAIT
    assert [c.get_data() for c in cqes] == ["nop", "timeout"]
    assert cqes[1].res() == 0
    assert cqes[1].getresult() == 0


def test_timeout_integer_seconds_and_keywords(ring):
    prep(ring, "timeout", seconds=1, count=1, flags=0, tag="t")
    ring.submit()
    run_op(ring, "nop")
    cqe = wait_one(ring)
    assert cqe.get_data() == "t" and cqe.res() == 0


def test_timeout_sub_millisecond(ring):
    _, cqe = run_op(ring, "timeout", 0.0005)
    assert cqe.res() == -errno.ETIME


def test_timeout_absolute(ring):
    # IORING_TIMEOUT_ABS: seconds is an absolute CLOCK_MONOTONIC time, which
    # is time.monotonic()'s clock.  Also checks large values keep precision.
    deadline = time.monotonic() + 0.2
    _, cqe = run_op(ring, "timeout", deadline, 0, py_io_uring.IORING_TIMEOUT_ABS)
    assert cqe.res() == -errno.ETIME
    now = time.monotonic()
    assert deadline - 0.05 <= now < deadline + WAIT


def test_timeout_etime_success_flag(ring):
    _, cqe = run_op(ring, "timeout", 0.01, flags=py_io_uring.IORING_TIMEOUT_ETIME_SUCCESS)
    # Still -ETIME: the flag only matters for links; it must be accepted.
    assert cqe.res() == -errno.ETIME


# --------------------------------------------------------------------------
# timeout_remove


def test_timeout_remove_pending(ring):
    t = prep(ring, "timeout", 10, tag="timeout")
    ring.submit()
    prep(ring, "timeout_remove", t, tag="remove")
    t0 = time.monotonic()
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert time.monotonic() - t0 < WAIT
    assert_fails(got["timeout"], errno.ECANCELED)
    assert got["remove"].res() == 0
    assert got["remove"].getresult() == 0


def test_timeout_remove_keywords(ring):
    t = prep(ring, "timeout", 10, tag="timeout")
    ring.submit()
    prep(ring, "timeout_remove", sqe=t, flags=0, tag="remove")
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert got["timeout"].res() == -errno.ECANCELED
    assert got["remove"].res() == 0


def test_timeout_remove_of_completed_timeout_is_enoent(ring):
    t, cqe = run_op(ring, "timeout", 0.01)
    assert cqe.res() == -errno.ETIME
    _, cqe = run_op(ring, "timeout_remove", t)
    assert_fails(cqe, errno.ENOENT, FileNotFoundError)


# --------------------------------------------------------------------------
# cancel


def test_cancel_pending_recv(ring, tcp_pair):
    client, server = tcp_pair
    target = prep(ring, "recv", server, 100, tag="recv")
    ring.submit()
    prep(ring, "cancel", target, tag="cancel")
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert_fails(got["recv"], errno.ECANCELED)
    assert got["cancel"].res() == 0
    # The cancelled recv consumed nothing.
    client.sendall(b"still here")
    server.settimeout(WAIT)
    assert server.recv(100) == b"still here"


def test_cancel_pending_timeout(ring):
    target = prep(ring, "timeout", 10, tag="timeout")
    ring.submit()
    prep(ring, "cancel", sqe=target, flags=0, tag="cancel")
    t0 = time.monotonic()
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert time.monotonic() - t0 < WAIT
    assert got["timeout"].res() == -errno.ECANCELED
    assert got["cancel"].res() == 0


def test_cancel_pending_pipe_read_into_buffer(ring, pipe):
    r, w = pipe
    buf = bytearray(8)
    target = prep(ring, "read", r, buf, tag="read")
    ring.submit()
    prep(ring, "cancel", target, tag="cancel")
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert got["read"].res() == -errno.ECANCELED
    assert got["cancel"].res() == 0
    os.write(w, b"12345678")
    assert buf == bytearray(8)
    assert os.read(r, 100) == b"12345678"


def test_cancel_of_completed_operation_is_enoent(ring):
    target, _ = run_op(ring, "nop")
    _, cqe = run_op(ring, "cancel", target)
    assert_fails(cqe, errno.ENOENT, FileNotFoundError)


def test_cancel_of_stale_target_does_not_hit_a_newer_operation(ring):
    # The old operation's slot may be reused by a new one: cancelling the old
    # Sqe must find nothing rather than cancel the newcomer.
    old, _ = run_op(ring, "nop")
    newer = []
    for i in range(8):
        newer.append(prep(ring, "timeout", 60, tag=i))
    ring.submit()
    prep(ring, "cancel", old, tag="cancel")
    prep(ring, "timeout_remove", old, tag="remove")
    ring.submit()
    got = by_data(wait_n(ring, 2))
    assert got["cancel"].res() == -errno.ENOENT
    assert got["remove"].res() == -errno.ENOENT
    assert ring.wait_cqe(timeout=0.05) is None  # all 8 timeouts still pending
    assert ring.in_flight() == 8


def test_target_from_an_earlier_life_of_the_ring(ring):
    old = prep(ring, "timeout", 60)
    ring.submit()
    ring.queue_exit()
    try:
        ring.queue_init(64)
    except ValueError:
        pytest.skip("this ring cannot be initialised again")
    pending = prep(ring, "timeout", 60, tag="pending")
    ring.submit()
    s = ring.get_sqe()
    try:
        s.prep_cancel(old)
    except ValueError:
        s.prep_nop()  # refused: fine
        s.set_data("cancel")
        ring.submit()
        assert wait_one(ring).res() == 0
    else:
        s.set_data("cancel")
        ring.submit()
        assert wait_one(ring).res() == -errno.ENOENT
    assert ring.wait_cqe(timeout=0.05) is None  # `pending` was not cancelled
    del pending

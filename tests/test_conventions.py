"""The Python conventions, for every operation at once: fd arguments take
an int or any object with fileno(); path arguments take str, bytes and
os.PathLike (str or bytes); addresses take the socket module's forms; a
failure is the OSError subclass of its errno, with .errno set, from
Cqe.getresult().

The per-kind checks prepare entries and never submit them: the ring's
teardown turns unsubmitted entries into NOPs, so nothing here touches files
or descriptors."""

import errno
import os
import pathlib
import socket

import pytest

import py_io_uring
from py_io_uring import AT_FDCWD, IoUring
from uring_helpers import OPS_DEF, parse_ops, run_op

OPS, _ = parse_ops()


class FilenoOf:
    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd


class BytesPathLike:
    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return self.path


# a valid value for each simple argument kind; ops with other kinds among
# their required arguments are left to the per-op tests
SIMPLE = {
    "fd": lambda: 0,
    "dirfd": lambda: AT_FDCWD,
    "path": lambda: "conventions-never-used",
    "u32": lambda: 0,
    "i32": lambda: 0,
    "u64": lambda: 0,
    "msg_data": lambda: 0,
    "offset": lambda: 0,
    "buffer_in": lambda: b"x",
    "buffer_out": lambda: 1,
    "timespec": lambda: 1.0,
}


def _kind(k):
    return k.split("(")[0]


def _simple_args(op):
    args = []
    for name, kind, default in op.args:
        if default is not None:
            break
        if _kind(kind) not in SIMPLE:
            return None
        args.append(SIMPLE[_kind(kind)]())
    return args


def _ops_with(kind):
    return [op for op in OPS if _simple_args(op) is not None
            and any(_kind(k) == kind and d is None for _, k, d in op.args)]


FD_OPS = _ops_with("fd")
PATH_OPS = _ops_with("path")


def test_the_generic_checks_cover_most_operations():
    # a guard against the filters above quietly selecting nothing
    assert len(FD_OPS) >= 20, [op.name for op in FD_OPS]
    assert len(PATH_OPS) >= 8, [op.name for op in PATH_OPS]


@pytest.fixture
def ring():
    r = IoUring(8)
    yield r
    r.queue_exit()     # the prepared, unsubmitted entries end as NOPs


# the 128-byte operations need a ring of 128-byte entries
SQE128_OPS = {"nop128", "uring_cmd128"}


@pytest.mark.parametrize("op", FD_OPS, ids=lambda o: o.name)
def test_every_fd_argument_takes_a_fileno_object(ring, op):
    if op.name in SQE128_OPS:
        ring.queue_exit()
        ring.queue_init(8, py_io_uring.IORING_SETUP_SQE128)
    if not ring.opcode_supported(op.name):
        pytest.skip("%s: not in this kernel's probe" % op.name)
    args = _simple_args(op)
    for i, (name, kind, default) in enumerate(op.args[:len(args)]):
        if _kind(kind) == "fd":
            args[i] = FilenoOf(0)
    getattr(ring.get_sqe(), "prep_" + op.name)(*args)


@pytest.mark.parametrize("op", FD_OPS, ids=lambda o: o.name)
def test_every_fd_argument_refusal_names_the_method_and_argument(ring, op):
    if op.name in SQE128_OPS:
        ring.queue_exit()
        ring.queue_init(8, py_io_uring.IORING_SETUP_SQE128)
    if not ring.opcode_supported(op.name):
        pytest.skip("%s: not in this kernel's probe" % op.name)
    args = _simple_args(op)
    i, name = next((i, name) for i, (name, kind, _) in enumerate(op.args[:len(args)])
                   if _kind(kind) == "fd")
    for bad, tname in (("0", "str"), (None, "NoneType"), (0.0, "float"), (b"0", "bytes")):
        args[i] = bad
        with pytest.raises(TypeError) as ei:
            getattr(ring.get_sqe(), "prep_" + op.name)(*args)
        assert str(ei.value) == ("prep_%s() argument '%s' must be a file descriptor (int or "
                                 "an object with fileno()), not %s" % (op.name, name, tname))


def test_a_fileno_that_fails_raises_its_own_error(ring):
    class Broken:
        def fileno(self):
            raise OSError(errno.EBADF, "closed")
    with pytest.raises(OSError, match="closed"):
        ring.get_sqe().prep_read(Broken(), 1)
    with pytest.raises(ValueError):
        ring.get_sqe().prep_read(FilenoOf(-1), 1)


@pytest.mark.parametrize("op", PATH_OPS, ids=lambda o: o.name)
@pytest.mark.parametrize("form", ["str", "bytes", "Path", "PathLike-bytes"])
def test_every_path_argument_takes_str_bytes_and_pathlike(ring, op, form):
    path = {"str": "p", "bytes": b"p", "Path": pathlib.Path("p"),
            "PathLike-bytes": BytesPathLike(b"p")}[form]
    args = _simple_args(op)
    for i, (name, kind, default) in enumerate(op.args[:len(args)]):
        if _kind(kind) == "path":
            args[i] = path
    getattr(ring.get_sqe(), "prep_" + op.name)(*args)


@pytest.mark.parametrize("form", [str, os.fsencode, pathlib.Path, lambda p: BytesPathLike(os.fsencode(p))],
                         ids=["str", "bytes", "Path", "PathLike-bytes"])
def test_openat_opens_every_path_form(ring, tmp_path, form):
    target = tmp_path / "data"
    target.write_bytes(b"the right file")
    _, cqe = run_op(ring, "openat", AT_FDCWD, form(str(target)), os.O_RDONLY)
    fd = cqe.getresult()
    try:
        assert os.read(fd, 100) == b"the right file"
    finally:
        os.close(fd)


def test_fd_objects_are_used_through_fileno(ring, tmp_path):
    target = tmp_path / "data"
    target.write_bytes(b"via fileno")
    with open(str(target), "rb") as f:          # a file object
        _, cqe = run_op(ring, "read", f, 100, 0)
    assert cqe.getresult() == b"via fileno"
    a, b = socket.socketpair()                  # socket objects
    with a, b:
        run_op(ring, "send", a, b"via socket")
        _, cqe = run_op(ring, "recv", b, 100)
        assert cqe.getresult() == b"via socket"


def _connect_and_accept(ring, family, address, listener):
    client = socket.socket(family, socket.SOCK_STREAM)
    try:
        _, cqe = run_op(ring, "connect", client, address)
        assert cqe.getresult() == 0
        conn, peer = listener.accept()
        conn.close()
        return client.getsockname(), peer
    finally:
        client.close()


def test_connect_takes_the_socket_modules_address_forms(ring, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as lst:
        host, port = lst.getsockname()
        ours, peer = _connect_and_accept(ring, socket.AF_INET, (host, port), lst)
        assert ours == peer
        # a host name, as socket.connect() takes it
        _connect_and_accept(ring, socket.AF_INET, ("localhost", port), lst)
    if socket.has_ipv6:
        try:
            lst6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        except OSError:
            lst6 = None
        if lst6 is not None:
            with lst6:
                port6 = lst6.getsockname()[1]
                _connect_and_accept(ring, socket.AF_INET6, ("::1", port6), lst6)
                _connect_and_accept(ring, socket.AF_INET6, ("::1", port6, 0, 0), lst6)
    for path in (str(tmp_path / "s1"), os.fsencode(str(tmp_path / "s2")), b"\0py_io_uring-abstract-%d" % os.getpid()):
        with socket.socket(socket.AF_UNIX) as lst:
            lst.bind(path)
            lst.listen(1)
            _connect_and_accept(ring, socket.AF_UNIX, path, lst)


def test_accept_gives_the_address_as_socket_accept_does(ring):
    with socket.create_server(("127.0.0.1", 0)) as lst:
        client = socket.create_connection(lst.getsockname(), timeout=5)
        with client:
            _, cqe = run_op(ring, "accept", lst)
            os.close(cqe.getresult())
            assert cqe.convert_address() == client.getsockname()


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()


@pytest.mark.parametrize("case", ["ENOENT", "EEXIST", "EISDIR", "ENOTDIR", "EBADF", "ECONNREFUSED", "ETIME"])
def test_errors_are_the_oserror_subclass_of_their_errno(ring, tmp_path, case):
    (tmp_path / "file").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    sock = None
    if case == "ENOENT":
        op, args, exc = "openat", (AT_FDCWD, tmp_path / "missing", os.O_RDONLY), FileNotFoundError
    elif case == "EEXIST":
        op, args, exc = "mkdirat", (AT_FDCWD, tmp_path / "dir", 0o700), FileExistsError
    elif case == "EISDIR":
        op, args, exc = "openat", (AT_FDCWD, tmp_path / "dir", os.O_WRONLY), IsADirectoryError
    elif case == "ENOTDIR":
        op, args, exc = "openat", (AT_FDCWD, tmp_path / "file" / "x", os.O_RDONLY), NotADirectoryError
    elif case == "EBADF":
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        op, args, exc = "read", (r, 10, 0), OSError
    elif case == "ECONNREFUSED":
        sock = socket.socket()
        op, args, exc = "connect", (sock, _closed_port()), ConnectionRefusedError
    else:
        op, args, exc = "timeout", (0.001,), TimeoutError
    try:
        _, cqe = run_op(ring, op, *args)
    finally:
        if sock is not None:
            sock.close()
    code = getattr(errno, case)
    assert cqe.res() == -code
    try:
        cqe.getresult()
    except exc as e:    # `except FileNotFoundError` and the like just work
        assert isinstance(e, OSError)
        assert e.errno == code and e.strerror == os.strerror(code)
    else:
        pytest.fail("getresult() raised nothing")


def test_every_ops_def_constant_is_exported():
    # a `const` line without a number is a macro of the headers; an enum
    # there would be skipped by the generated #ifdef, silently
    names = []
    with open(OPS_DEF, encoding="utf-8") as f:
        for line in f:
            if line.startswith("const "):
                names += [t.split("=")[0] for t in line.split()[1:]]
    assert len(names) > 100
    assert [n for n in names if not isinstance(getattr(py_io_uring, n, None), int)] == []

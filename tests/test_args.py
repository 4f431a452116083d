"""Bad input: every argument kind of ops.def and the ring methods reject what
they cannot use with the right exception, before anything reaches the kernel,
and never crash."""

import array
import errno
import mmap
import os
import socket

import pytest

from py_io_uring import AT_FDCWD, IoUring
from uring_helpers import WAIT, prep, run_op, wait_one

# Either is a reasonable answer to "this integer does not fit the C type".
TOO_BIG = (OverflowError, ValueError)
# What a malformed socket address may raise (socket.connect raises these).
BAD_ADDRESS = (TypeError, ValueError, OverflowError)


@pytest.fixture
def sqe(ring):
    """A fresh Sqe; whatever the test does with it, the ring's teardown
    copes (an unprepared Sqe is submitted as a nop or dropped)."""
    return ring.get_sqe()


class FilenoObject:
    def __init__(self, value):
        self.value = value

    def fileno(self):
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


class CustomError(Exception):
    pass


# For each op taking an fd: how to call it with a given fd.
FD_CALLS = {
    "read": lambda s, fd: s.prep_read(fd, 10),
    "write": lambda s, fd: s.prep_write(fd, b"x"),
    "recv": lambda s, fd: s.prep_recv(fd, 10),
    "send": lambda s, fd: s.prep_send(fd, b"x"),
    "accept": lambda s, fd: s.prep_accept(fd),
    "close": lambda s, fd: s.prep_close(fd),
}


# --------------------------------------------------------------------------
# fd


@pytest.mark.parametrize("op", sorted(FD_CALLS))
@pytest.mark.parametrize("fd", [-1, -100, FilenoObject(-1)], ids=["-1", "-100", "fileno-1"])
def test_negative_fd_is_value_error(sqe, op, fd):
    with pytest.raises(ValueError):
        FD_CALLS[op](sqe, fd)


@pytest.mark.parametrize("op", sorted(FD_CALLS))
@pytest.mark.parametrize("fd", ["3", 3.0, None, b"3", [3]], ids=repr)
def test_fd_of_wrong_type_is_type_error(sqe, op, fd):
    with pytest.raises(TypeError):
        FD_CALLS[op](sqe, fd)


def test_fd_too_large(sqe):
    for fd in (2 ** 31, 2 ** 40, 2 ** 70):
        with pytest.raises(TOO_BIG):
            sqe.prep_read(fd, 10)


def test_fileno_returning_non_int_is_type_error(sqe):
    with pytest.raises(TypeError):
        sqe.prep_close(FilenoObject("3"))


def test_fileno_exception_propagates(sqe):
    with pytest.raises(CustomError):
        sqe.prep_read(FilenoObject(CustomError("boom")), 10)


def test_closed_socket_object_is_value_error(sqe):
    s = socket.socket()
    s.close()  # its fileno() is now -1
    with pytest.raises(ValueError):
        sqe.prep_recv(s, 10)


def test_fileno_object_is_accepted(ring, pipe):
    r, w = pipe
    os.write(w, b"via fileno")
    _, cqe = run_op(ring, "read", FilenoObject(r), 100)
    assert cqe.getresult() == b"via fileno"


# --------------------------------------------------------------------------
# dfd and path


def test_dfd_accepts_at_fdcwd_only_as_negative(sqe, tmp_file):
    with pytest.raises(ValueError):
        sqe.prep_openat(-1, str(tmp_file))
    with pytest.raises(TypeError):
        sqe.prep_openat("cwd", str(tmp_file))
    sqe.prep_openat(AT_FDCWD, str(tmp_file))  # fine


@pytest.mark.parametrize("path", ["a\0b", b"a\0b", "\0"], ids=repr)
def test_path_with_nul_is_value_error(sqe, path):
    with pytest.raises(ValueError):
        sqe.prep_openat(AT_FDCWD, path)


@pytest.mark.parametrize("path", [None, 3, 1.5, ["p"]], ids=repr)
def test_path_of_wrong_type_is_type_error(sqe, path):
    with pytest.raises(TypeError):
        sqe.prep_openat(AT_FDCWD, path)


def test_pathlike_returning_garbage_is_type_error(sqe):
    class BadPath:
        def __fspath__(self):
            return 42

    with pytest.raises(TypeError):
        sqe.prep_openat(AT_FDCWD, BadPath())


def test_openat_flags_and_mode_ranges(sqe, tmp_file):
    with pytest.raises(TOO_BIG):
        sqe.prep_openat(AT_FDCWD, tmp_file, 2 ** 31)
    with pytest.raises(TOO_BIG):
        sqe.prep_openat(AT_FDCWD, tmp_file, 0, -1)
    with pytest.raises(TypeError):
        sqe.prep_openat(AT_FDCWD, tmp_file, "r")
    with pytest.raises(TypeError):
        sqe.prep_openat(AT_FDCWD, tmp_file, 0, 0.5)


# --------------------------------------------------------------------------
# Data to write / send


@pytest.mark.parametrize("op", ["write", "send"])
@pytest.mark.parametrize("data", ["text", 5, None, [1, 2], object()], ids=repr)
def test_write_data_of_wrong_type_is_type_error(sqe, pipe, op, data):
    with pytest.raises(TypeError):
        getattr(sqe, "prep_" + op)(pipe[1], data)


@pytest.mark.parametrize("op", ["write", "send"])
def test_write_data_non_contiguous_is_refused(sqe, pipe, op):
    with pytest.raises((TypeError, BufferError)):
        getattr(sqe, "prep_" + op)(pipe[1], memoryview(b"abcdef")[::2])


# --------------------------------------------------------------------------
# Read / recv targets


@pytest.mark.parametrize("op", ["read", "recv"])
@pytest.mark.parametrize(
    "target",
    [b"read-only", memoryview(b"read-only"), "text", 10.0, None, [0] * 4],
    ids=["bytes", "memoryview-of-bytes", "str", "float", "None", "list"],
)
def test_read_target_of_wrong_type_is_type_error(sqe, pipe, op, target):
    with pytest.raises(TypeError):
        getattr(sqe, "prep_" + op)(pipe[0], target)


@pytest.mark.parametrize("op", ["read", "recv"])
def test_read_negative_length_is_value_error(sqe, pipe, op):
    with pytest.raises(ValueError):
        getattr(sqe, "prep_" + op)(pipe[0], -1)


@pytest.mark.parametrize("op", ["read", "recv"])
@pytest.mark.parametrize("length", [2 ** 32, 2 ** 40, 2 ** 70], ids=["2**32", "2**40", "2**70"])
def test_read_huge_length_is_refused(sqe, pipe, op, length):
    # The SQE's length field has 32 bits: nothing may be silently truncated,
    # nor a terabyte allocated.
    with pytest.raises(TOO_BIG):
        getattr(sqe, "prep_" + op)(pipe[0], length)


@pytest.mark.parametrize("op", ["read", "recv"])
def test_read_target_non_contiguous_is_refused(sqe, pipe, op):
    with pytest.raises((TypeError, BufferError)):
        getattr(sqe, "prep_" + op)(pipe[0], memoryview(bytearray(10))[::2])


def test_read_target_readonly_memoryview_of_bytearray_is_type_error(sqe, pipe):
    with pytest.raises(TypeError):
        sqe.prep_read(pipe[0], memoryview(bytearray(10)).toreadonly())


@pytest.mark.parametrize("resize", ["append", "extend", "del", "clear", "iadd"])
def test_bytearray_cannot_be_resized_while_read_in_flight(ring, pipe, resize):
    r, w = pipe
    buf = bytearray(8)
    sqe = prep(ring, "read", r, buf, tag="rd")
    ring.submit()
    with pytest.raises(BufferError):
        if resize == "append":
            buf.append(1)
        elif resize == "extend":
            buf.extend(b"more")
        elif resize == "del":
            del buf[0:4]
        elif resize == "clear":
            buf.clear()
        else:
            buf += b"x"
    assert len(buf) == 8
    os.write(w, b"abcdefgh")
    cqe = wait_one(ring)
    assert cqe.getresult() == 8
    assert buf == b"abcdefgh"
    # Once the operation is over, the buffer is released.
    del sqe, cqe
    buf.extend(b"ok")
    assert buf == b"abcdefghok"


# --------------------------------------------------------------------------
# Integer arguments


@pytest.mark.parametrize("bad", ["0", 1.5, None], ids=repr)
def test_offset_of_wrong_type_is_type_error(sqe, pipe, bad):
    with pytest.raises(TypeError):
        sqe.prep_read(pipe[0], 10, bad)
    with pytest.raises(TypeError):
        sqe.prep_write(pipe[1], b"x", offset=bad)


@pytest.mark.parametrize("op", ["recv", "send", "accept"])
def test_u32_flags_ranges(sqe, tcp_pair, op):
    sock = tcp_pair[0]
    call = {
        "recv": lambda flags: sqe.prep_recv(sock, 10, flags),
        "send": lambda flags: sqe.prep_send(sock, b"x", flags),
        "accept": lambda flags: sqe.prep_accept(sock, flags),
    }[op]
    for flags in (-1, 2 ** 32, 2 ** 64):
        with pytest.raises(TOO_BIG):
            call(flags)
    for flags in ("0", 0.0, None):
        with pytest.raises(TypeError):
            call(flags)


def test_timeout_arguments(sqe):
    for seconds in (-1, -0.001):
        with pytest.raises(ValueError):
            sqe.prep_timeout(seconds)
    for seconds in (float("nan"), float("inf"), float("-inf"), 1e300):
        with pytest.raises((ValueError, OverflowError)):
            sqe.prep_timeout(seconds)
    for seconds in ("1", None, b"1"):
        with pytest.raises(TypeError):
            sqe.prep_timeout(seconds)
    with pytest.raises(TOO_BIG):
        sqe.prep_timeout(1, -1)
    with pytest.raises(TOO_BIG):
        sqe.prep_timeout(1, 2 ** 32)
    with pytest.raises(TypeError):
        sqe.prep_timeout(1, "1")
    with pytest.raises(TOO_BIG):
        sqe.prep_timeout(1, 0, -1)


# --------------------------------------------------------------------------
# Arity and keywords


@pytest.mark.parametrize(
    "call",
    [
        lambda s, fd: s.prep_read(),
        lambda s, fd: s.prep_read(fd),
        lambda s, fd: s.prep_read(fd, 1, 0, 0),
        lambda s, fd: s.prep_read(fd, 1, bogus=1),
        lambda s, fd: s.prep_read(fd, fd=fd, buf=1),
        lambda s, fd: s.prep_read(buf=1),
        lambda s, fd: s.prep_nop(1),
        lambda s, fd: s.prep_nop(x=1),
        lambda s, fd: s.prep_close(),
        lambda s, fd: s.prep_close(fd, 0),
        lambda s, fd: s.prep_write(fd),
        lambda s, fd: s.prep_send(fd, b"x", 0, 0, 0),
        lambda s, fd: s.prep_recv(fd, 1, flag=0),
        lambda s, fd: s.prep_openat(AT_FDCWD),
        lambda s, fd: s.prep_openat(AT_FDCWD, "p", 0, 0, 0),
        lambda s, fd: s.prep_connect(fd),
        lambda s, fd: s.prep_timeout(),
        lambda s, fd: s.prep_timeout(1, 0, 0, 0),
        lambda s, fd: s.prep_cancel(),
        lambda s, fd: s.prep_timeout_remove(),
        lambda s, fd: s.prep_accept(fd, 0, 0, 0),
        lambda s, fd: s.set_data(),
        lambda s, fd: s.set_data(1, 2),
        lambda s, fd: s.get_data(1),
        lambda s, fd: s.user_data(1),
    ],
)
def test_wrong_arity_or_keyword_is_type_error(sqe, pipe, call):
    with pytest.raises(TypeError):
        call(sqe, pipe[0])


def test_all_arguments_by_keyword(ring, tmp_file, pipe):
    r, w = pipe
    s1 = ring.get_sqe()
    s1.prep_openat(dfd=AT_FDCWD, path=tmp_file, flags=os.O_RDONLY, mode=0)
    s2 = ring.get_sqe()
    s2.prep_write(fd=w, data=b"kw", offset=-1)
    s3 = ring.get_sqe()
    s3.prep_timeout(seconds=0.001, count=0, flags=0)
    assert ring.submit() == 3
    got = {}
    for _ in range(3):
        c = wait_one(ring)
        got[c.res()] = c
    # an fd, 2 bytes written, -ETIME
    assert -errno.ETIME in got and 2 in got
    fds = [res for res in got if res >= 0 and res != 2]
    assert len(fds) == 1
    os.close(fds[0])
    s4 = ring.get_sqe()
    s4.prep_read(fd=r, buf=2, offset=-1)
    ring.submit()
    assert wait_one(ring).getresult() == b"kw"


def test_every_op_accepts_all_arguments_by_keyword(ring, tmp_file, tcp_pair):
    # Keywords are the argument names of ops.def (checked against the
    # signatures in test_docs.py); here the parser really accepts them, for
    # every op, with a valid value of each argument's kind.
    from uring_helpers import parse_ops

    sock = tcp_pair[0]
    target = prep(ring, "timeout", 60)
    ring.submit()
    page = mmap.mmap(-1, mmap.PAGESIZE)   # whole pages, aligned for any futex
    by_kind = {
        "fd": sock,
        "dirfd": AT_FDCWD,
        "u32": 1,
        "i32": 1,
        "u64": 1,
        "msg_data": 1,
        "offset": 0,
        "buffer_in": b"x",
        "buffer_out": 4,
        "path": tmp_file,
        "timespec": 1.5,
        "target": target,
        "sockaddr": ("127.0.0.1", 9),
        "sockaddr_opt": None,
        "iovecs_in": [b"x", bytearray(b"y")],
        "iovecs_out": [bytearray(2)],
        "fd_list": [sock.fileno(), -1],
        "ancdata": (),
        "provided": bytearray(8),
        "futexv": [(bytearray(4), 0)],
        "pages": page,
        "futex": page,
        "bits": 0,
        "object": None,
    }
    ops, _ = parse_ops()
    supported = ring.probe()
    done = 0
    for op in ops:
        if op.name not in supported:
            continue
        kwargs = {name: by_kind[kind.split("(")[0]] for name, kind, _default in op.args}
        s = ring.get_sqe()
        getattr(s, "prep_" + op.name)(**kwargs)
        s.prep_nop()  # replace it: nothing of this is meant to run
        done += 1
        if ring.sq_space_left() == 0 or done == len(ops):
            n = ring.submit()
            for _ in range(n):
                assert wait_one(ring).res() == 0
    assert ring.submit() >= 0
    while ring.in_flight() > 1:   # the target timeout stays
        assert wait_one(ring).res() == 0


# --------------------------------------------------------------------------
# Targets of cancel and timeout_remove


@pytest.mark.parametrize("op", ["cancel", "timeout_remove"])
def test_target_of_another_ring_is_value_error(ring, op):
    other = IoUring(4)
    try:
        foreign = prep(other, "timeout", 10)
        other.submit()
        s = ring.get_sqe()
        with pytest.raises(ValueError):
            getattr(s, "prep_" + op)(foreign)
    finally:
        other.queue_exit()


@pytest.mark.parametrize("op", ["cancel", "timeout_remove"])
@pytest.mark.parametrize("target", [None, 0, "sqe", object()], ids=repr)
def test_target_not_an_sqe_is_type_error(sqe, op, target):
    with pytest.raises(TypeError):
        getattr(sqe, "prep_" + op)(target)


def test_target_cqe_is_type_error(ring):
    target, cqe = run_op(ring, "nop")
    s = ring.get_sqe()
    with pytest.raises(TypeError):
        s.prep_cancel(cqe)


# --------------------------------------------------------------------------
# Socket addresses


def _inet6_available():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


BAD_INET = [
    ("127.0.0.1",),
    ("127.0.0.1", 80, 1),
    ("127.0.0.1", 70000),
    ("127.0.0.1", -1),
    ("127.0.0.1", "80"),
    (1234, 80),
    (None, 80),
    "127.0.0.1:80",
    None,
    80,
]

BAD_INET6 = [
    ("::1",),
    ("::1", 80, 0, 0, 0),
    ("::1", 70000),
    ("::1", 80, 2 ** 20),  # flowinfo has 20 bits
    ("::1", "80"),
    (None, 80),
    None,
]

BAD_UNIX = [123, None, ("path",), 1.5]


def _check_bad_address(sqe, family, address):
    # Sanity: the standard library refuses the same address while parsing
    # it, without touching the network.
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        with pytest.raises(BAD_ADDRESS):
            probe.connect(address)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        with pytest.raises(BAD_ADDRESS):
            sqe.prep_connect(s, address)


@pytest.mark.parametrize("address", BAD_INET, ids=repr)
def test_connect_malformed_inet_address(sqe, address):
    _check_bad_address(sqe, socket.AF_INET, address)


@pytest.mark.parametrize("address", BAD_INET6, ids=repr)
def test_connect_malformed_inet6_address(sqe, address):
    if not _inet6_available():
        pytest.skip("no IPv6")
    _check_bad_address(sqe, socket.AF_INET6, address)


@pytest.mark.parametrize("address", BAD_UNIX, ids=repr)
def test_connect_malformed_unix_address(sqe, address):
    _check_bad_address(sqe, socket.AF_UNIX, address)


def test_connect_unix_path_too_long(sqe):
    with socket.socket(socket.AF_UNIX) as s:
        with pytest.raises((ValueError, OSError)):
            sqe.prep_connect(s, "/tmp/" + "x" * 200)


def test_connect_on_non_socket_fd(ring, tmp_file):
    # Either refused when preparing (the address family cannot be known),
    # or left to the kernel, which says ENOTSOCK.  Never a crash.
    with open(tmp_file, "rb") as f:
        s = ring.get_sqe()
        try:
            s.prep_connect(f, ("127.0.0.1", 9))
        except (OSError, ValueError, TypeError):
            s.prep_nop()
            ring.submit()
            assert wait_one(ring).res() == 0
            return
        ring.submit()
        assert wait_one(ring).res() == -errno.ENOTSOCK


def test_failed_prep_leaves_sqe_usable(ring, pipe):
    s = ring.get_sqe()
    with pytest.raises(ValueError):
        s.prep_read(-1, 10)
    with pytest.raises(TypeError):
        s.prep_write(pipe[1], "text")
    s.prep_write(pipe[1], b"fine")
    s.set_data("w")
    assert ring.submit() == 1
    cqe = wait_one(ring)
    assert cqe.get_data() == "w" and cqe.getresult() == 4
    assert os.read(pipe[0], 10) == b"fine"


# --------------------------------------------------------------------------
# Preparing twice


def test_prepare_again_before_submit_replaces(ring, pipe):
    s = ring.get_sqe()
    s.prep_timeout(60)
    s.prep_read(pipe[0], 10)  # replaced by the next line
    s.prep_nop()
    s.set_data("replaced")
    assert ring.submit() == 1
    cqe = ring.wait_cqe(timeout=WAIT)
    assert cqe is not None and cqe.get_data() == "replaced"
    assert cqe.res() == 0
    ring.cqe_seen(cqe)
    assert ring.in_flight() == 0


def test_prepare_after_submit_is_value_error(ring):
    s = ring.get_sqe()
    s.prep_timeout(60)
    ring.submit()
    with pytest.raises(ValueError):
        s.prep_nop()
    with pytest.raises(ValueError):
        s.prep_timeout(0.001)
    # The pending timeout is untouched: still pending.
    assert ring.wait_cqe(timeout=0.05) is None
    c = ring.get_sqe()
    c.prep_cancel(s)
    ring.submit()
    res = sorted(wait_one(ring).res() for _ in range(2))
    assert res == [-errno.ECANCELED, 0]


def test_prepare_after_completion_is_value_error(ring):
    s, _ = run_op(ring, "nop")
    with pytest.raises(ValueError):
        s.prep_nop()


def test_prepare_sqe_of_exited_ring_is_refused():
    r = IoUring(4)
    s = r.get_sqe()
    r.queue_exit()
    with pytest.raises((ValueError, RuntimeError)):
        s.prep_nop()
    with pytest.raises((ValueError, RuntimeError)):
        s.prep_read(0, 10)


# --------------------------------------------------------------------------
# Ring methods


def test_ring_method_argument_types(ring):
    with pytest.raises(TypeError):
        IoUring("8")
    with pytest.raises(TypeError):
        IoUring(8, "0")
    r = IoUring()
    with pytest.raises(TypeError):
        r.queue_init("8")
    with pytest.raises(TypeError):
        r.queue_init(8, None)
    with pytest.raises(TypeError):
        r.queue_init()
    with pytest.raises(TypeError):
        r.queue_init(8, 0, 100)  # sq_thread_idle and the rest are keyword-only
    with pytest.raises(TypeError):
        r.queue_init(8, cq_entries="64")
    with pytest.raises(TypeError):
        ring.wait_cqe(timeout="1")
    with pytest.raises(TypeError):
        ring.wait_cqe_nr("1")
    with pytest.raises(TypeError):
        ring.wait_cqe_nr()
    with pytest.raises(TypeError):
        ring.submit_and_wait("1")
    with pytest.raises(TypeError):
        ring.submit(1)
    with pytest.raises(TypeError):
        ring.get_sqe(1)
    with pytest.raises(TypeError):
        ring.register_eventfd("3")
    with pytest.raises(TypeError):
        ring.cqe_seen()
    # None of this disturbed the ring.
    assert ring.sq_space_left() == 64
    run_op(ring, "nop")


def test_array_of_other_itemsize_as_write_data(ring, pipe):
    # Bytes-like means its bytes, whatever the item type.
    a = array.array("H", [0x0102, 0x0304])
    _, cqe = run_op(ring, "write", pipe[1], a)
    assert cqe.getresult() == 4
    assert os.read(pipe[0], 10) == a.tobytes()


def test_epoll_wait_maxevents_too_large(ring):
    # Found by the converter fuzzer: a huge maxevents asked for a 15 GB
    # event array.  Past the kernel's own limit it is a ValueError, as
    # select.epoll.poll() says, and the entry stays a harmless NOP.
    import select
    ep = select.epoll()
    sqe = ring.get_sqe()
    with pytest.raises(ValueError, match="maxevents is too large"):
        sqe.prep_epoll_wait(ep, 2**32 - 1)
    ring.submit()
    cqe = ring.wait_cqe()
    ring.cqe_seen(cqe)
    assert cqe.res() == 0 and ring.in_flight() == 0
    ep.close()

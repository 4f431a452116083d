"""What every operation of ops.def shares, stated once over the ops list the
generator itself reads (gen/model.py) and over the four forms (forms.py):
an fd that is not open fails with -EBADF, whichever fd argument it is, once
nothing else is wrong (NEEDS); EXCEPTIONS lists what the kernel answers when
something else is wrong too, with the reason and the kernel version."""

import errno
import os

import pytest

import py_io_uring
from py_io_uring import IORING_CQE_F_MORE, IORING_CQE_F_NOTIF

import forms
from uring_helpers import closed_fd, need

# Fd kinds of gen/kinds.py: an fd argument (fd, dirfd) or a list of them.
FD_KINDS = ("fd", "dirfd", "fd_list")

# A valid value for each argument kind the fd ops take, for the arguments
# that are not the closed fd.  Paths are relative, so a dirfd is looked at.
SAMPLE = {
    "fd": None,             # the write end of a pipe (filled in by the test)
    "dirfd": py_io_uring.AT_FDCWD,
    "path": "no-such-dir/x",  # relative, and nothing can be made there
    "buffer_out": 16,
    "buffer_in": b"x",
    "offset": 0,
    "u32": 0,
    "i32": 0,
    "u64": 0,
    "iovecs_out": None,     # [bytearray(4)], fresh per test
    "iovecs_in": [b"x"],
    "msg_data": 0,
    "sockaddr": ("127.0.0.1", 9),
}


def _fixed_buffers(ring, reg):
    ring.register_buffers([reg])


def _buf_ring(ring):
    ring.setup_buf_ring(1, 4, 64)


# What an op needs besides its arguments so that the fd is the only thing
# wrong, by op or by (op, fd argument): (setup(ring, reg) or None,
# {argument: value(reg)}, common keywords).
# The fixed ops: older kernels (6.1's io_prep_rw, for one) check the buffer
# index at prep time, so without a registered buffer they fail with EFAULT
# before looking at the fd (Linux 6.18 looks at the fd first); a registered
# buffer makes the fd the only thing wrong on every kernel.  The multishot
# receives and read_multishot take their buffers from a group: with none in
# it they fail with ENOBUFS (after the fd check on 6.18); a buffer ring makes
# the fd the only thing wrong whatever the order of the checks.  files_update
# needs a file table: without one it fails with ENXIO before it reads the fds
# (test_files_update_without_table_is_enxio).
def _zcrx_ifq(ring, reg):
    # an interface queue wants a CQE32 | DEFER_TASKRUN ring and a NIC that
    # can give one (tests/test_zcrx.py); EXCEPTIONS has the case without
    pytest.skip("recv_zc: needs an interface queue from register_ifq()")


NEEDS = {
    "recv_zc": (_zcrx_ifq, {}, {}),
    "read_fixed": (_fixed_buffers, {"buf": lambda reg: memoryview(reg)[0:8], "buf_index": lambda reg: 0}, {}),
    "write_fixed": (_fixed_buffers, {"buf": lambda reg: memoryview(reg)[0:8], "buf_index": lambda reg: 0}, {}),
    "readv_fixed": (_fixed_buffers, {"buffers": lambda reg: [memoryview(reg)[0:8]], "buf_index": lambda reg: 0}, {}),
    "writev_fixed": (_fixed_buffers, {"buffers": lambda reg: [memoryview(reg)[0:8]], "buf_index": lambda reg: 0}, {}),
    "send_zc_fixed": (_fixed_buffers, {"data": lambda reg: memoryview(reg)[0:8]}, {}),
    "sendmsg_zc_fixed": (_fixed_buffers, {"buffers": lambda reg: [memoryview(reg)[0:8]]}, {}),
    "recv_multishot": (lambda ring, reg: _buf_ring(ring), {}, {"buf_group": 1}),
    "recvmsg_multishot": (lambda ring, reg: _buf_ring(ring), {}, {"buf_group": 1}),
    "read_multishot": (lambda ring, reg: _buf_ring(ring), {}, {"buf_group": 1}),
    "files_update": (lambda ring, reg: ring.register_files_sparse(8), {}, {}),
    # renameat looks up oldpath's parent before newdfd: an absolute oldpath
    # in a directory that exists (the file itself does not)
    ("renameat", "newdfd"): (None, {"oldpath": lambda reg: os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "no-such-file")}, {}),
    # linkat resolves oldpath completely before it looks at newdfd: for a
    # closed newdfd give it an absolute path that exists
    ("linkat", "newdfd"): (None, {"oldpath": lambda reg: os.path.abspath(__file__)}, {}),
}

# The exceptions: a closed fd together with what NEEDS takes away, and what
# the kernel answers then (test_a_closed_fd_and_something_else_wrong), keyed
# (op, fd argument): (what else is wrong, the results allowed, why).  With
# NEEDS met, every case of FD_CASES gives -EBADF on Linux 6.18.
FIXED = ("no buffer registered", {-errno.EBADF, -errno.EFAULT},
         "Linux 6.18 looks at the fd first (EBADF); a kernel that looks up the "
         "buffer first says EFAULT (6.1 does so at prep time for read_fixed and "
         "write_fixed)")
GROUP = ("no buffer in group 0", {-errno.EBADF, -errno.ENOBUFS},
         "Linux 6.18 looks at the fd before it picks a buffer (EBADF); a kernel "
         "that picks the buffer first says ENOBUFS")
EXCEPTIONS = {
    ("files_update", "fds"): ("no file table", {-errno.ENXIO},
                              "the table is checked before the fds are read (Linux 6.18)"),
    ("linkat", "newdfd"): ("oldpath missing", {-errno.ENOENT},
                           "oldpath is resolved before newdfd is looked at (Linux 6.18)"),
    ("renameat", "newdfd"): ("oldpath's directory missing", {-errno.ENOENT},
                             "oldpath's parent is looked up before newdfd (Linux 6.18)"),
    ("read_fixed", "fd"): FIXED,
    ("write_fixed", "fd"): FIXED,
    ("readv_fixed", "fd"): FIXED,
    ("writev_fixed", "fd"): FIXED,
    ("send_zc_fixed", "fd"): FIXED,
    ("sendmsg_zc_fixed", "fd"): FIXED,
    ("recv_multishot", "fd"): GROUP,
    ("recvmsg_multishot", "fd"): GROUP,
    ("read_multishot", "fd"): GROUP,
    ("recv_zc", "fd"): ("no interface queue", {-errno.EINVAL},
                        "the ifq is looked up at prep, before the fd (Linux 6.18)"),
}

# The zero-copy sends fail with -EBADF as the others do, but that completion
# has IORING_CQE_F_MORE and a notification completion (IORING_CQE_F_NOTIF)
# follows it, as after a successful zero-copy send (seen on Linux 6.18).
ZERO_COPY = {"send_zc", "send_zc_fixed", "sendmsg_zc", "sendmsg_zc_fixed"}


def _fd_cases():
    cases = []
    for op in forms.MODEL.ops:
        for arg in op.args:
            if arg.kind.name in FD_KINDS:
                cases.append(pytest.param(op.name, arg.name, id="%s-%s" % (op.name, arg.name)))
    return cases


FD_CASES = _fd_cases()


def test_the_fd_cases_cover_the_ops_with_fd_arguments():
    # a sanity check on the parametrization: the ops expected are there, and
    # NEEDS and EXCEPTIONS name only real ops and fd arguments
    names = {c.values[0] for c in FD_CASES}
    assert len(names) > 50
    assert {"read", "openat", "files_update", "epoll_ctl", "msg_ring"} <= names
    assert {k if isinstance(k, str) else k[0] for k in NEEDS} <= names
    pairs = {tuple(c.values) for c in FD_CASES}
    assert set(EXCEPTIONS) <= pairs
    assert {k for k in NEEDS if not isinstance(k, str)} <= pairs


def _args(op, bad, values, pipe, reg):
    """ops.def's arguments of op: a closed fd for `bad`, values[name](reg)
    where given, a valid sample for the other required ones."""
    args = []
    for a in forms.OPS[op].args:
        if a.name == bad:
            args.append([closed_fd()] if a.kind.name == "fd_list" else closed_fd())
        elif a.name in values:
            args.append(values[a.name](reg))
        elif not a.required:
            break
        elif a.kind.name == "fd":
            args.append(pipe[1])
        elif a.kind.name == "iovecs_out":
            args.append([bytearray(4)])
        else:
            args.append(SAMPLE[a.kind.name])
    return args


def _check_flags(ring, form, op, flags):
    if op in ZERO_COPY and form.noflags is not None:
        assert flags == IORING_CQE_F_MORE, hex(flags)
        _, notif = form.next(ring)
        assert notif == IORING_CQE_F_NOTIF, hex(notif)
    else:
        assert flags in (0, form.noflags), hex(flags)
    if form.noflags is not None:
        assert ring.in_flight() == 0


@pytest.mark.parametrize("op, bad", FD_CASES)
def test_a_closed_fd_gives_ebadf(ring, form, pipe, op, bad):
    need(ring, op)
    form.skip_unless(op)
    setup, values, common = NEEDS.get((op, bad), NEEDS.get(op, (None, {}, {})))
    reg = bytearray(64)
    args = _args(op, bad, values, pipe, reg)
    res, flags = form.run(ring, op, *args, setup=None if setup is None else (lambda r: setup(r, reg)),
                          **common)
    assert res == -errno.EBADF, (op, bad, forms.errno_name(res))
    _check_flags(ring, form, op, flags)


@pytest.mark.parametrize("op, bad", sorted(EXCEPTIONS), ids=["%s-%s" % k for k in sorted(EXCEPTIONS)])
def test_a_closed_fd_and_something_else_wrong(ring, pipe, op, bad):
    # the sqe form alone: the forms share the kernel's answer (the test above)
    need(ring, op)
    what, allowed, why = EXCEPTIONS[(op, bad)]
    res, flags = forms.get("sqe").run(ring, op, *_args(op, bad, {}, pipe, None))
    assert res in allowed, (op, bad, what, forms.errno_name(res), why)
    _check_flags(ring, forms.get("sqe"), op, flags)

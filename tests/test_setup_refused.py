"""io_uring unavailable: a seccomp filter in a child process makes
io_uring_setup(2) fail the way Docker's default profile (EPERM) or an old
or stripped kernel (ENOSYS) does, and the error must say why in plain words.
"""

import errno
import platform
import textwrap

import pytest

ARCHES = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}   # AUDIT_ARCH_*

FILTER = r"""
import ctypes, errno, sys
ARCH, ERR = {arch}, {err}
NR_IO_URING_SETUP = 425          # the same on x86_64 and aarch64

class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]

LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
prog = (SockFilter * 6)(
    SockFilter(LD_ABS, 0, 0, 4),                      # seccomp_data.arch
    SockFilter(JEQ, 0, 3, ARCH),                      # other arch: allow
    SockFilter(LD_ABS, 0, 0, 0),                      # seccomp_data.nr
    SockFilter(JEQ, 0, 1, NR_IO_URING_SETUP),
    SockFilter(RET, 0, 0, 0x00050000 | ERR),          # SECCOMP_RET_ERRNO
    SockFilter(RET, 0, 0, 0x7FFF0000),                # SECCOMP_RET_ALLOW
)
fprog = SockFprog(6, prog)
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS"
assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0, "PR_SET_SECCOMP"

import py_io_uring
try:
    py_io_uring.IoUring(8)
except OSError as e:
    print(type(e).__name__, e.errno)
    print(e.strerror)
else:
    print("no error")
"""


def _run_refused(run_py, err):
    arch = ARCHES.get(platform.machine())
    if arch is None:
        pytest.skip("seccomp filter written for x86_64 and aarch64 only")
    proc = run_py(textwrap.dedent(FILTER.format(arch=arch, err=err)), timeout=60)
    assert proc.returncode == 0, proc.stderr
    first, message = proc.stdout.split("\n")[:2]
    kind, code = first.split()
    return kind, int(code), message


def test_eperm_names_the_sysctl_and_seccomp(run_py):
    kind, code, message = _run_refused(run_py, errno.EPERM)
    assert (kind, code) == ("PermissionError", errno.EPERM)
    assert "kernel.io_uring_disabled" in message
    assert "seccomp" in message


def test_enosys_names_an_old_kernel(run_py):
    kind, code, message = _run_refused(run_py, errno.ENOSYS)
    assert code == errno.ENOSYS and kind == "OSError"
    assert "Linux 5.1" in message and "kernel" in message


def test_the_module_still_works_without_the_filter(run_py):
    proc = run_py("import py_io_uring\nr = py_io_uring.IoUring(8)\nprint('ok')\n")
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr

"""When io_uring_setup(2) is refused, IoUring() says why in plain words.

Each test runs a fresh interpreter that installs a seccomp filter making
io_uring_setup (syscall 425 on x86_64 and aarch64) fail with a chosen errno,
the way Docker's default profile or a hardened kernel does, and then tries
to make a ring.
"""

import json
import platform

import pytest

# AUDIT_ARCH_* of <linux/audit.h>; io_uring_setup is 425 on both
ARCHES = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
NR_IO_URING_SETUP = 425

pytestmark = pytest.mark.skipif(
    platform.machine() not in ARCHES,
    reason="the seccomp filter is written for x86_64 and aarch64 only",
)

# Runs in the child: install the filter (errno 0: no filter, the control),
# check that it bites, then try to make a ring two ways.  Prints one JSON
# line describing what happened.
CHILD = r"""
import ctypes, errno, json, os, struct, sys

ERR = %(errno)d
AUDIT_ARCH = %(arch)d
NR = %(nr)d

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def raw_setup():
    params = ctypes.create_string_buffer(120)   # struct io_uring_params
    ret = libc.syscall(ctypes.c_long(NR), ctypes.c_uint(1), params)
    if ret >= 0:
        os.close(ret)
        return 0
    return ctypes.get_errno()

if ERR:
    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                    ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    BPF_LD, BPF_W, BPF_ABS = 0x00, 0x00, 0x20
    BPF_JMP, BPF_JEQ, BPF_K, BPF_RET = 0x05, 0x10, 0x00, 0x06
    SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    ARCH_OFF, NR_OFF = 4, 0   # offsetof(struct seccomp_data, arch / nr)

    prog = [
        (BPF_LD | BPF_W | BPF_ABS, 0, 0, ARCH_OFF),
        (BPF_JMP | BPF_JEQ | BPF_K, 1, 0, AUDIT_ARCH),   # our arch: go on
        (BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW),       # another: allow
        (BPF_LD | BPF_W | BPF_ABS, 0, 0, NR_OFF),
        (BPF_JMP | BPF_JEQ | BPF_K, 0, 1, NR),
        (BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ERRNO | ERR),
        (BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    filters = (SockFilter * len(prog))(*[SockFilter(*ins) for ins in prog])
    fprog = SockFprog(len(prog), filters)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p,
                           ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        sys.exit("PR_SET_NO_NEW_PRIVS: %%s" %% os.strerror(ctypes.get_errno()))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        sys.exit("PR_SET_SECCOMP: %%s" %% os.strerror(ctypes.get_errno()))

out = {"raw": raw_setup(), "pid_ok": os.getpid() > 0}

import py_io_uring

def attempt(make):
    try:
        ring = make()
    except Exception as e:
        return {"type": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
                "errno": getattr(e, "errno", None), "message": str(e)}
    ring.get_sqe().prep_nop()
    ring.submit()
    ok = ring.wait_cqe(timeout=5) is not None
    ring.queue_exit()
    return {"type": None, "works": ok}

out["ctor"] = attempt(lambda: py_io_uring.IoUring(8))
def later():
    r = py_io_uring.IoUring()
    try:
        r.queue_init(8)
    except OSError:
        # the object stays an uninitialised ring: usable methods refuse
        # politely and queue_exit() is harmless
        after = []
        try:
            r.get_sqe()
            after.append("get_sqe worked")
        except ValueError:
            after.append("ValueError")
        r.queue_exit()
        after.append("exit ok")
        out["after_failed_init"] = after
        raise
    return r
out["queue_init"] = attempt(later)
print(json.dumps(out))
"""


def _run(run_py, err):
    code = CHILD % {"errno": err, "arch": ARCHES[platform.machine()], "nr": NR_IO_URING_SETUP}
    proc = run_py(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_control_without_filter(run_py):
    # The harness itself works: no filter, io_uring available.
    out = _run(run_py, 0)
    assert out["raw"] == 0
    assert out["ctor"] == {"type": None, "works": True}
    assert out["queue_init"] == {"type": None, "works": True}


def test_setup_refused_with_eperm(run_py):
    import errno

    out = _run(run_py, errno.EPERM)
    assert out["raw"] == errno.EPERM, "the seccomp filter did not take effect"
    assert out["pid_ok"]
    for how in ("ctor", "queue_init"):
        e = out[how]
        assert e["type"] == "PermissionError", e
        assert e["errno"] == errno.EPERM
        assert "kernel.io_uring_disabled" in e["message"], e["message"]
        assert "seccomp" in e["message"], e["message"]
    assert out["after_failed_init"] == ["ValueError", "exit ok"]


def test_setup_missing_with_enosys(run_py):
    import errno

    out = _run(run_py, errno.ENOSYS)
    assert out["raw"] == errno.ENOSYS, "the seccomp filter did not take effect"
    for how in ("ctor", "queue_init"):
        e = out[how]
        assert "OSError" in e["mro"], e
        assert e["errno"] == errno.ENOSYS
        assert "Linux 5.1" in e["message"], e["message"]
        assert "kernel" in e["message"]
    assert out["after_failed_init"] == ["ValueError", "exit ok"]

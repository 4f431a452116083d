"""Small helpers shared by the tests (plain functions, no fixtures).

Also a minimal, independent reader of ops.def and src/methods.def, so the
tests can check the built module against the spec without relying on the
project's own generator.
"""

import ast
import errno
import fcntl
import os
import re
import signal
import socket
import struct
import sys
import time
import warnings

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS_DIR)
OPS_DEF = os.path.join(REPO, "ops.def")
METHODS_DEF = os.path.join(REPO, "src", "methods.def")

# What the tmp_file fixture writes: 4096 bytes, every offset distinguishable
# within a 256-byte window.
TMP_CONTENT = bytes(range(256)) * 16

# Generous bound for anything that should be "prompt".
WAIT = 5.0


# --------------------------------------------------------------------------
# Waits that block


class Interrupted(Exception):
    """What blocks()' signal handler raises, as Ctrl-C raises KeyboardInterrupt."""


def blocks(fn, *args, delay=0.2):
    """Call fn(*args), which must block as liburing's waits do, until a
    SIGALRM handler raises Interrupted after `delay` seconds; the exception
    (with any notes the wait added) is returned once the call was seen to
    block for that long."""

    def handler(signum, frame):
        raise Interrupted("SIGALRM")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, delay)
    t0 = time.monotonic()
    try:
        with pytest.raises(Interrupted) as ei:
            fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 >= delay * 0.9
    return ei.value


def recv_fds(sock, bufsize, maxfds):
    """socket.recv_fds() (3.9 and later) on every supported Python."""
    msg, anc, flags, addr = sock.recvmsg(bufsize, socket.CMSG_LEN(maxfds * 4))
    fds = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            n = len(data) // 4
            fds.extend(struct.unpack("%di" % n, data[: 4 * n]))
    return msg, fds, flags, addr


# --------------------------------------------------------------------------
# Running operations


def prep(ring, op, *args, tag=None, **kwargs):
    """Acquire an Sqe, prepare it with prep_<op>(*args, **kwargs) and attach
    `tag` as its user data when given.  Not submitted."""
    sqe = ring.get_sqe()
    # Interned: a fresh name string per call would fill the interpreter's
    # type-attribute cache and look like a memory leak in the leak tests.
    getattr(sqe, sys.intern("prep_" + op))(*args, **kwargs)
    if tag is not None:
        sqe.set_data(tag)
    return sqe


def wait_one(ring, timeout=WAIT):
    """Wait for the next completion (bounded), mark it seen, return it."""
    cqe = ring.wait_cqe(timeout=timeout)
    assert cqe is not None, "no completion within %s s" % timeout
    ring.cqe_seen(cqe)
    return cqe


def wait_n(ring, n, timeout=WAIT):
    """Wait for n completions (bounded), mark them seen, return the list."""
    cqes = ring.wait_cqe_nr(n, timeout=timeout)
    assert len(cqes) == n, "only %d of %d completions within %s s" % (len(cqes), n, timeout)
    for c in cqes:
        ring.cqe_seen(c)
    return cqes


def run_op(ring, op, *args, **kwargs):
    """Prepare, submit and complete one operation; return (sqe, cqe)."""
    sqe = prep(ring, op, *args, **kwargs)
    assert ring.submit() == 1
    return sqe, wait_one(ring)


def by_data(cqes):
    """Map each completion's user data to it (data must be hashable)."""
    return {c.get_data(): c for c in cqes}


def closed_fd():
    """A file descriptor number that is not open in this process."""
    fd = 1000
    while True:
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError as e:
            assert e.errno == errno.EBADF
            return fd
        fd += 1


def exit_code(status):
    """os.waitstatus_to_exitcode (Python 3.9+), for 3.8 too."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    raise ValueError("status %r" % status)


def eventfd():
    """A new eventfd (os.eventfd is Python 3.10+)."""
    if hasattr(os, "eventfd"):
        return os.eventfd(0)
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.eventfd(0, 0)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return fd


def eventfd_read(fd):
    """The eventfd's counter, reset to zero (os.eventfd_read is 3.10+)."""
    return int.from_bytes(os.read(fd, 8), sys.byteorder)


def fill_pipe(wfd):
    """Fill a pipe's buffer so that the next write would block; return the
    number of bytes written.  Leaves wfd in blocking mode."""
    os.set_blocking(wfd, False)
    total = 0
    chunk = b"\xaa" * 65536
    try:
        while True:
            try:
                total += os.write(wfd, chunk)
            except BlockingIOError:
                # Pipes accept partial writes down to PIPE_BUF; finish with
                # single bytes so the buffer is really full.
                try:
                    while True:
                        total += os.write(wfd, b"\xaa")
                except BlockingIOError:
                    return total
    finally:
        os.set_blocking(wfd, True)


def read_exactly(fd, n):
    """os.read until n bytes were read (fd must be blocking)."""
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        assert chunk, "EOF after %d of %d bytes" % (len(out), n)
        out += chunk
    return bytes(out)


# --------------------------------------------------------------------------
# Reading the spec files


class OpSpec:
    def __init__(self, name, lineno):
        self.name = name
        self.lineno = lineno
        self.opcode = None
        self.args = []  # list of (name, kind, default_text or None)
        self.doc = []
        self.aio = "await"  # AsyncRing form: await, iter or none
        self.aio_flags = ()

    def __repr__(self):
        return "OpSpec(%r)" % self.name


def count_selects(loop):
    """Count an EventLoop's iterations from now on: a function giving the
    number of the select() running, or of the last one run."""
    sel = loop._selector
    n = [0]
    orig = sel.select

    def select(timeout=None):
        n[0] += 1
        return orig(timeout)

    sel.select = select
    return lambda: n[0]


def parse_ops(path=OPS_DEF):
    """Return (ops, consts): ops a list of OpSpec in file order, consts the
    list of constant names."""
    ops, consts = [], []
    cur = None
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            rest = rest.strip()
            if word == "op":
                cur = OpSpec(rest, lineno)
                ops.append(cur)
            elif word == "const":
                consts.extend(t.partition("=")[0] for t in rest.split())
                cur = None
            elif word == "opcode":
                cur.opcode = rest
            elif word == "arg":
                decl = rest.split("--", 1)[0].strip()
                default = None
                if "=" in decl:
                    decl, default = (x.strip() for x in decl.split("=", 1))
                name, kind = decl.split(None, 1)
                cur.args.append((name, kind.strip(), default))
            elif word == "doc":
                cur.doc.append(rest)
            elif word == "async":
                cur.aio, *flags = rest.split()
                cur.aio_flags = tuple(flags)
    return ops, consts


class MethodSpec:
    def __init__(self, cls, name, signature):
        self.cls = cls  # class name
        self.name = name  # method name, or None for the class entry itself
        self.signature = signature  # text between the outer parentheses, or None
        self.doc = []
        self.overloads = []  # "(SIGNATURE) -> TYPE" of the stub's @overload variants
        self.deprecated = None  # what replaces a deprecated method
        self.prop = False  # a `property` entry: an attribute, no signature

    def params(self):
        """[(name, kind, default)] from the Python signature; kind is one of
        'posonly', 'normal', 'varargs', 'kwonly', 'varkw'; default is the
        evaluated literal or the string '<required>'."""
        fn = ast.parse("def f(%s): pass" % self.signature).body[0]
        a = fn.args
        out = []
        positional = [(p, "posonly") for p in a.posonlyargs] + [(p, "normal") for p in a.args]
        defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
        for (p, kind), d in zip(positional, defaults):
            out.append((p.arg, kind, "<required>" if d is None else ast.literal_eval(d)))
        if a.vararg:
            out.append((a.vararg.arg, "varargs", "<required>"))
        for p, d in zip(a.kwonlyargs, a.kw_defaults):
            out.append((p.arg, "kwonly", "<required>" if d is None else ast.literal_eval(d)))
        if a.kwarg:
            out.append((a.kwarg.arg, "varkw", "<required>"))
        return out

    def __repr__(self):
        return "MethodSpec(%s.%s)" % (self.cls, self.name)


_CLASS_RE = re.compile(r"^class\s+(\w+)(?:\((.*)\))?\s*$")
_METHOD_RE = re.compile(r"^method\s+(\w+)\.(\w+)\((.*)\)\s*(->.*)?$")
_PROPERTY_RE = re.compile(r"^property\s+(\w+)\.(\w+)\s*->.*$")
_FUNCTION_RE = re.compile(r"^function\s+(\w+)\((.*)\)\s*(->.*)?$")


def parse_methods(path=METHODS_DEF):
    """Return the list of MethodSpec entries of methods.def (class entries
    have name None, module functions cls "")."""
    out = []
    cur = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            m = _CLASS_RE.match(line)
            if m:
                cur = MethodSpec(m.group(1), None, m.group(2))
                out.append(cur)
                continue
            m = _METHOD_RE.match(line)
            if m:
                cur = MethodSpec(m.group(1), m.group(2), m.group(3))
                out.append(cur)
                continue
            m = _PROPERTY_RE.match(line)
            if m:
                cur = MethodSpec(m.group(1), m.group(2), "")
                cur.prop = True
                out.append(cur)
                continue
            m = _FUNCTION_RE.match(line)
            if m:   # a module-level function: cls ""
                cur = MethodSpec("", m.group(1), m.group(2))
                out.append(cur)
                continue
            if line == "doc" or line.startswith("doc "):
                cur.doc.append(line[4:])
                continue
            if line.startswith("overload ("):
                cur.overloads.append(line[len("overload "):])
                continue
            if line.startswith("deprecated "):
                cur.deprecated = line[len("deprecated "):]
                continue
            raise AssertionError("methods.def: unexpected line %r" % line)
    return out


def need(ring, *ops):
    """Skip the test when the running kernel lacks one of ops (its probe)."""
    have = ring.probe()
    for op in ops:
        if op not in have:
            pytest.skip("%s not in ring.probe() on this kernel" % op)


def assert_fails(cqe, err, exc_type=OSError):
    """The completion failed with errno `err`: res() is -err and getresult()
    raises the matching OSError subclass with .errno set (returned)."""
    assert cqe.res() == -err, (cqe.res(), -err, errno.errorcode.get(-cqe.res()))
    # try/except rather than pytest.raises: no traceback cycle keeps this
    # frame (and the buffers its caller passed) alive after the test
    try:
        cqe.getresult()
    except exc_type as e:
        assert e.errno == err, (e.errno, err)
        return e
    pytest.fail("getresult() did not raise %s" % exc_type.__name__)


def fork():
    """os.fork() for the tests that fork on purpose, without 3.12+'s
    DeprecationWarning about forking a process with threads: io_uring's
    io-wq workers are threads of this process, and so is the per-test
    watchdog's (faulthandler's) timer thread, and the children here only
    test the ring and leave with os._exit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()

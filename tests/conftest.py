"""Shared fixtures for the py_io_uring test suite.

The module under test is the package ``py_io_uring`` (its C extension
``_core``, its stub and Python files) that ``make`` builds into
``<repo>/build/py_io_uring/`` (or under the folder named by the
``PY_IO_URING_BUILD`` environment variable); that folder is put first on
``sys.path`` so ``import py_io_uring`` finds the fresh build rather than
anything installed.

Test modules import ``py_io_uring`` at their top: when the module does not
build, every such test fails loudly at collection instead of being skipped.
Only ``test_gen.py`` does not need the module.
"""

import errno
import faulthandler
import os
import signal
import socket
import subprocess
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS_DIR)
BUILD = os.path.abspath(os.environ.get("PY_IO_URING_BUILD", os.path.join(REPO, "build")))

sys.path.insert(0, BUILD)

# A suite started in the background by a script inherits SIGINT ignored
# (POSIX shells ignore it for background jobs), and so would the children
# it starts: the Ctrl-C tests and the example servers need it delivered, as
# an interactive run has it
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# The helper module lives next to this file; make it importable whatever
# pytest's import mode is.
if TESTS_DIR not in sys.path:
    sys.path.insert(1, TESTS_DIR)

from uring_helpers import TMP_CONTENT  # noqa: E402

# `make leaks`: repeat every test and watch references, blocks and fds
if os.environ.get("PY_IO_URING_LEAKS") == "1":
    pytest_plugins = ["leakcheck"]


def pytest_configure(config):
    config.addinivalue_line("markers", "no_leakcheck: not repeated under make leaks (too slow, or it leaks on purpose)")


# A test that hangs (a completion that never comes, a thread never joined)
# would hold the run until CI's own limit and say nothing of where.  So
# each test, with its setup, teardown and make leaks' repetitions, gets
# WATCHDOG seconds (the slowest takes under a minute, even repeated under
# the debug interpreter): past them, faulthandler's own thread, which needs
# no GIL, prints every thread's traceback to the real stderr and ends the
# process with status 1.  PY_IO_URING_TEST_WATCHDOG=0 turns it off.
WATCHDOG = float(os.environ.get("PY_IO_URING_TEST_WATCHDOG", "600"))
_watchdog_err = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if WATCHDOG <= 0:
        yield
        return
    if not _watchdog_err:
        # outside a test's phases pytest's capture is suspended: fd 2 is
        # the terminal or the log now, and the copy stays so while
        # capture points fd 2 at its own file
        _watchdog_err.append(os.fdopen(os.dup(2), "w"))
    faulthandler.dump_traceback_later(WATCHDOG, exit=True, file=_watchdog_err[0])
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_unconfigure(config):
    while _watchdog_err:
        _watchdog_err.pop().close()


@pytest.fixture
def unix_pair():
    """A connected AF_UNIX stream socket pair, closed after the test."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield a, b
    a.close()
    b.close()


@pytest.fixture(params=["sqe", "fast", "many", "async"])
def form(request):
    """One of the four forms of an operation (tests/forms.py): Sqe.prep_*,
    IoUring.prep_* (the fast form), IoUring.prep_many and AsyncRing.  A test
    taking it states a behaviour once; form.run(ring, op, *args) gives
    (result, flags)."""
    import forms

    return forms.get(request.param)


@pytest.fixture
def ring():
    """An initialised ring with 64 entries, torn down after the test."""
    import py_io_uring

    r = py_io_uring.IoUring()
    r.queue_init(64)
    try:
        yield r
    finally:
        r.queue_exit()


@pytest.fixture
def listener():
    """A TCP socket listening on 127.0.0.1, on a port the kernel chose."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def tcp_pair(listener):
    """A connected pair of TCP sockets over 127.0.0.1: (client, server)."""
    client = socket.create_connection(listener.getsockname(), timeout=5)
    client.settimeout(None)
    server, _ = listener.accept()
    try:
        yield client, server
    finally:
        client.close()
        server.close()


@pytest.fixture
def tmp_file(tmp_path):
    """A temporary file holding TMP_CONTENT (4096 known bytes); its path."""
    p = tmp_path / "data.bin"
    p.write_bytes(TMP_CONTENT)
    return p


@pytest.fixture
def pipe():
    """An os.pipe() pair (read_fd, write_fd); both ends closed afterwards
    unless the test closed them itself."""
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def run_py():
    """Run Python code in a fresh interpreter that imports the build under
    test; returns subprocess.CompletedProcess (text mode)."""

    def run(code, timeout=60, env_extra=None):
        env = dict(os.environ)
        env["PY_IO_URING_BUILD"] = BUILD
        if env_extra:
            env.update(env_extra)
        prelude = "import sys; sys.path.insert(0, %r)\n" % BUILD
        return subprocess.run(
            [sys.executable, "-c", prelude + code],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    return run


@pytest.fixture
def rfd(tmp_file):
    """tmp_file opened read-only."""
    fd = os.open(tmp_file, os.O_RDONLY)
    yield fd
    os.close(fd)


@pytest.fixture
def wfd(tmp_path):
    """The fd of an empty file opened read-write."""
    p = tmp_path / "out.bin"
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


@pytest.fixture
def udp_pair():
    """Two UDP sockets bound to 127.0.0.1: (a, b)."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def xattr_file(tmp_path):
    """A file on a filesystem that takes user.* xattrs."""
    p = tmp_path / "x.txt"
    p.write_bytes(b"xattr holder")
    try:
        os.setxattr(p, "user.probe", b"1")
        os.removexattr(p, "user.probe")
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            pytest.skip("filesystem of %s has no user.* xattrs" % tmp_path)
        raise
    return p


@pytest.fixture
def table(ring):
    """The ring with a sparse registered file table of 8 slots."""
    ring.register_files_sparse(8)
    return ring

"""AsyncRing correctness (issue 15): exceptions survive a dropped ring,
closing cancels awaiters, errors name the method called and the path,
a cancelled receive gives its bytes back, and the names say what they do."""

import asyncio
import gc
import os

import pytest

from py_io_uring import AsyncRing


# ---------------------------------------------------------------- 1. dealloc keeps the exception

def test_dropped_ring_keeps_the_exception_of_an_op_outside_a_loop():
    # the temporary AsyncRing goes while RuntimeError propagates: its
    # teardown must not swallow it (was: SystemError, error return
    # without exception set)
    with pytest.raises(RuntimeError, match="no running event loop"):
        AsyncRing().nop()


def test_dropped_ring_keeps_the_exception_of_aenter_outside_a_loop():
    with pytest.raises(RuntimeError, match="no running event loop"):
        AsyncRing().__aenter__()


def test_async_with_driven_by_hand_keeps_the_exception():
    async def use():
        async with AsyncRing():
            pass   # pragma: no cover - __aenter__ raises

    coro = use()
    with pytest.raises(RuntimeError, match="no running event loop"):
        coro.send(None)
    coro.close()


def test_dropped_ring_with_ops_in_flight_keeps_the_exception(unix_pair):
    # the dealloc's ResourceWarning and its teardown run with the error set
    a, _ = unix_pair
    ring = AsyncRing()
    r = ring.get_ring()
    sqe = r.get_sqe()
    sqe.prep_recv(a, 16)
    r.submit()
    del sqe, r

    def drop():
        nonlocal ring
        try:
            raise KeyError("kept")
        finally:
            del ring   # the last reference: the dealloc runs as KeyError propagates

    with pytest.warns(ResourceWarning, match="not closed"):
        with pytest.raises(KeyError, match="kept"):
            drop()


# ---------------------------------------------------------------- 3. closing cancels the awaiters

try:
    import uvloop
except ImportError:  # pragma: no cover - make deps-test installs it
    uvloop = None

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.no_leakcheck)]


@pytest.fixture(params=LOOPS)
def new_loop(request):
    """A factory of fresh loops of the parametrized kind."""
    if request.param == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed (make deps-test installs it)")
    return uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop


def run_on(new_loop, fn, *args):
    """Run fn(*args) on a fresh loop in debug mode (as -X dev has it),
    recording what the loop's exception handler is given."""
    loop = new_loop()
    loop.set_debug(True)
    # debug mode logs each callback slower than this (a gc.collect() under
    # python3.11-dbg is): records that pytest keeps, not what is tested here
    loop.slow_callback_duration = 60.0
    reported = []
    loop.set_exception_handler(lambda lp, ctx: reported.append(ctx))
    try:
        return loop.run_until_complete(asyncio.wait_for(fn(*args), 30)), reported
    finally:
        loop.close()


def test_aclose_cancels_awaiters_and_logs_nothing(new_loop, unix_pair):
    a, _ = unix_pair
    r, w = os.pipe()

    async def main():
        ring = AsyncRing()
        loop = asyncio.get_running_loop()
        awaited = loop.create_task(ring_recv(ring))
        # futures nobody awaits: closing must not leave an exception in them
        loose = [ring.recv(a, 16), ring.read(r, 10), ring.timeout(60.0)]
        await asyncio.sleep(0.02)
        await ring.aclose()
        assert ring.closed and ring.in_flight() == 0
        assert all(f.cancelled() for f in loose)
        with pytest.raises(asyncio.CancelledError):
            await awaited
        del loose, awaited
        gc.collect()
        await asyncio.sleep(0)      # what __del__ reported reaches the handler

    async def ring_recv(ring):
        return await ring.recv(a, 16)

    try:
        _, reported = run_on(new_loop, main)
        gc.collect()
    finally:
        os.close(r)
        os.close(w)
    assert [c.get("message") for c in reported] == []


# ---------------------------------------------------------------- 5. errors name the method called

import py_io_uring  # noqa: E402

# AsyncRing.cancel(awaitable) is hand-written, not prep_cancel's form
ASYNC_OPS = sorted(n for n in dir(AsyncRing)
                   if hasattr(py_io_uring.Sqe, "prep_" + n) and not n.startswith("_")
                   and n != "cancel")


def test_every_generated_form_is_checked():
    assert {"read", "write", "recv", "openat", "recv_multishot", "nop"} <= set(ASYNC_OPS)


@pytest.mark.parametrize("name", ASYNC_OPS)
def test_argument_errors_name_the_async_method(name):
    async def main():
        async with AsyncRing() as ring:
            # an op this kernel lacks is refused before its arguments are read
            opcode = {n: code for n, _, code, _ in py_io_uring.OPERATIONS}[name]
            exc = TypeError if ring.get_ring().opcode_supported(opcode) else OSError
            with pytest.raises(exc) as e:
                getattr(ring, name)(*range(20))
            msg = str(e.value) if exc is TypeError else e.value.strerror
            assert msg.startswith(name + "()"), msg
            assert "prep_" not in msg, msg

    asyncio.run(main())


def test_converter_errors_name_the_method_called():
    async def main():
        async with AsyncRing() as ring:
            with pytest.raises(ValueError, match=r"^read\(\) argument 'buf' must not be negative"):
                ring.read(0, -5)
            with pytest.raises(ValueError, match=r"^sock_recv\(\) argument"):
                ring.sock_recv(0, -1)
            with pytest.raises(ValueError, match=r"^send_all\(\) argument 'fd'"):
                ring.send_all(-1, b"x")
            with pytest.raises(TypeError, match=r"^recv_multishot\(\) takes"):
                ring.recv_multishot(0, 1, 2, 3, 4, 5, 6)
            # nothing half-started: the ring still works and holds nothing
            assert await ring.nop() == 0
            assert ring.in_flight() == 0

    asyncio.run(main())


# ---------------------------------------------------------------- 4. path errors name the path

import pathlib  # noqa: E402

from py_io_uring import AT_FDCWD, IoUring  # noqa: E402


def os_error(fn):
    try:
        fn()
    except OSError as e:
        return e
    raise AssertionError("the os call did not fail")   # pragma: no cover


def shape(e):
    return (type(e), e.errno, e.strerror, e.filename, e.filename2, str(e))


def path_cases(tmp_path):
    """(op name, its arguments, the os call that fails the same way)."""
    gone = str(tmp_path / "nope" / "x")
    gone_b = os.fsencode(tmp_path / "nope" / "y")
    there = tmp_path / "there"
    there.write_bytes(b"x")
    there = str(there)
    return [
        ("openat", (AT_FDCWD, gone, os.O_RDONLY), lambda: os.open(gone, os.O_RDONLY)),
        ("openat", (AT_FDCWD, gone_b, os.O_RDONLY), lambda: os.open(gone_b, os.O_RDONLY)),
        ("openat", (AT_FDCWD, pathlib.Path(gone), os.O_RDONLY),
         lambda: os.open(pathlib.Path(gone), os.O_RDONLY)),
        ("openat2", (AT_FDCWD, gone, os.O_RDONLY), lambda: os.open(gone, os.O_RDONLY)),
        ("statx", (AT_FDCWD, gone, 0, 0), lambda: os.stat(gone)),
        ("renameat", (AT_FDCWD, gone, AT_FDCWD, gone_b, 0), lambda: os.rename(gone, gone_b)),
        ("rename", (gone, there), lambda: os.rename(gone, there)),
        ("unlinkat", (AT_FDCWD, gone, 0), lambda: os.unlink(gone)),
        ("unlink", (gone, 0), lambda: os.unlink(gone)),
        ("mkdirat", (AT_FDCWD, there, 0o700), lambda: os.mkdir(there, 0o700)),
        ("mkdir", (gone, 0o700), lambda: os.mkdir(gone, 0o700)),
        ("symlinkat", (gone, AT_FDCWD, there), lambda: os.symlink(gone, there)),
        ("symlink", (gone, there), lambda: os.symlink(gone, there)),
        ("linkat", (AT_FDCWD, gone, AT_FDCWD, gone_b, 0), lambda: os.link(gone, gone_b)),
        ("link", (gone, there, 0), lambda: os.link(gone, there)),
        ("getxattr", ("user.x", gone, 16), lambda: os.getxattr(gone, "user.x")),
        ("setxattr", ("user.x", b"v", gone), lambda: os.setxattr(gone, "user.x", b"v")),
    ]


def test_path_errors_of_the_sync_api_name_the_paths(tmp_path):
    with IoUring(8) as ring:
        for name, args, os_call in path_cases(tmp_path):
            if not ring.opcode_supported(getattr(py_io_uring, "IORING_OP_" + {
                    "openat": "OPENAT", "openat2": "OPENAT2", "statx": "STATX",
                    "renameat": "RENAMEAT", "rename": "RENAMEAT",
                    "unlinkat": "UNLINKAT", "unlink": "UNLINKAT",
                    "mkdirat": "MKDIRAT", "mkdir": "MKDIRAT",
                    "symlinkat": "SYMLINKAT", "symlink": "SYMLINKAT",
                    "linkat": "LINKAT", "link": "LINKAT",
                    "getxattr": "GETXATTR", "setxattr": "SETXATTR"}[name])):
                continue   # pragma: no cover - kernel 6.18 has all
            sqe = ring.get_sqe()
            getattr(sqe, "prep_" + name)(*args)
            ring.submit()
            cqe = ring.wait_cqe()
            ring.cqe_seen(cqe)
            with pytest.raises(OSError) as e:
                cqe.getresult()
            assert shape(e.value) == shape(os_error(os_call)), name


def test_path_errors_of_the_async_api_name_the_paths(tmp_path):
    async def main():
        async with AsyncRing() as ring:
            for name, args, os_call in path_cases(tmp_path):
                with pytest.raises(OSError) as e:
                    await getattr(ring, name)(*args)
                assert shape(e.value) == shape(os_error(os_call)), name

    asyncio.run(main())


def test_the_issue_example():
    async def main():
        async with AsyncRing() as ring:
            with pytest.raises(FileNotFoundError) as e:
                await ring.openat(AT_FDCWD, "/nope/x", os.O_RDONLY)
            assert e.value.args == (2, "No such file or directory")
            assert e.value.filename == "/nope/x"
            assert str(e.value) == "[Errno 2] No such file or directory: '/nope/x'"

    asyncio.run(main())


def test_a_path_op_that_succeeds_keeps_nothing(tmp_path):
    # the paths go with the record (no growth over many successful ops)
    p = str(tmp_path)
    with IoUring(8) as ring:
        for _ in range(3):
            sqe = ring.get_sqe()
            sqe.prep_statx(AT_FDCWD, p, 0, 0)
            ring.submit()
            cqe = ring.wait_cqe()
            ring.cqe_seen(cqe)
            assert cqe.getresult().st_mode


# ---------------------------------------------------------------- 7. names

def test_closed_is_a_property():
    async def main():
        ring = AsyncRing()
        assert ring.closed is False
        async with ring:
            assert ring.closed is False
        assert ring.closed is True
        with pytest.raises(AttributeError):
            ring.closed = False

    asyncio.run(main())


def test_close_fd_closes_an_fd_as_close_does(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x")

    async def main():
        async with AsyncRing() as ring:
            for method in (ring.close_fd, ring.close):
                fd = os.open(p, os.O_RDONLY)
                assert await method(fd) == 0
                with pytest.raises(OSError):
                    os.fstat(fd)             # closed
                with pytest.raises(OSError) as e:
                    await method(fd)         # closing it again: EBADF
                assert e.value.errno == 9
            with pytest.raises(ValueError, match=r"^close_fd\(\) argument 'fd'"):
                ring.close_fd(-1)
            assert not ring.closed           # an fd went, not the ring

    asyncio.run(main())


def test_fileno_is_the_eventfd():
    async def main():
        async with AsyncRing() as ring:
            fd = ring.fileno()
            assert fd != ring.get_ring().fileno()
            assert os.readlink("/proc/self/fd/%d" % fd) == "anon_inode:[eventfd]"
        with pytest.raises(ValueError):
            ring.fileno()

    asyncio.run(main())


# ---------------------------------------------------------------- 2. a cancelled receive loses nothing

import socket  # noqa: E402
import time  # noqa: E402


def run_loop(new_loop, fn):
    loop = new_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(fn(), 30))
    finally:
        loop.close()


def stream_pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


async def cancelled(how, aw):
    """Cancel the receive aw the way `how` says, and await the cancellation."""
    if how == "task":
        t = asyncio.ensure_future(_await(aw))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
    elif how == "future":
        await asyncio.sleep(0.01)
        aw.cancel()
        with pytest.raises(asyncio.CancelledError):
            await aw
    else:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aw, 0.01)


async def _await(aw):
    return await aw


RECEIVES = {
    "sock_recv": lambda ring, s: ring.sock_recv(s, 100),
    "sock_recv_into": lambda ring, s: ring.sock_recv_into(s, bytearray(100)),
    "recv": lambda ring, s: ring.recv(s.fileno(), 100),
    "recv_into": lambda ring, s: ring.recv(s.fileno(), bytearray(100)),
}


@pytest.mark.parametrize("how", ["task", "future", "wait_for"])
@pytest.mark.parametrize("kind", sorted(RECEIVES))
def test_bytes_sent_after_a_cancel_go_to_the_next_read(new_loop, kind, how):
    # the issue's case: the cancelled receive's cancel must reach the kernel
    # before the awaiter goes on (was: one or two loop iterations later, and
    # the old receive took b"after-cancel")
    a, b = stream_pair()

    async def main():
        async with AsyncRing() as ring:
            await cancelled(how, RECEIVES[kind](ring, a))
            b.send(b"after-cancel")
            got = await asyncio.wait_for(ring.sock_recv(a, 100), 2)
            assert got == b"after-cancel"
            assert ring.take_partial(a) == b""

    try:
        run_loop(new_loop, main)
    finally:
        a.close()
        b.close()


def wait_for_cqe(ring):
    """Block (not yielding to the loop) until the kernel posted a completion."""
    r = ring.get_ring()
    deadline = time.monotonic() + 5
    while r.cq_ready() == 0:
        assert time.monotonic() < deadline, "no completion"
        time.sleep(0.001)


@pytest.mark.parametrize("kind", sorted(RECEIVES))
def test_bytes_a_cancelled_receive_got_are_kept(new_loop, kind):
    # the receive completes with data before its cancel reaches the kernel
    # (the completion is posted, not yet delivered): the bytes are kept
    a, b = stream_pair()

    async def main():
        async with AsyncRing() as ring:
            fut = RECEIVES[kind](ring, a)
            await asyncio.sleep(0.01)
            b.send(b"raced")
            wait_for_cqe(ring)              # the kernel's recv took the bytes
            fut.cancel()
            await asyncio.sleep(0.01)       # the completion is delivered
            assert fut.cancelled()
            if kind.startswith("sock_"):
                # loop.sock_* shapes: the next read gets them, in order
                b.send(b"-then")
                assert await ring.sock_recv(a, 3) == b"rac"
                buf = bytearray(100)
                assert await ring.sock_recv_into(a, buf) == 2
                assert buf[:2] == b"ed"
                assert await ring.sock_recv(a, 100) == b"-then"
            else:
                assert ring.take_partial(a) == b"raced"
                assert ring.take_partial(a.fileno()) == b""

    try:
        run_loop(new_loop, main)
    finally:
        a.close()
        b.close()


def test_kept_bytes_never_go_to_a_new_socket_on_the_same_fd(new_loop):
    a, b = stream_pair()

    async def main():
        nonlocal a, b
        async with AsyncRing() as ring:
            fut = ring.sock_recv(a, 100)
            await asyncio.sleep(0.01)
            b.send(b"old")
            wait_for_cqe(ring)
            fut.cancel()
            await asyncio.sleep(0.01)
            fd = a.fileno()
            a.close()
            b.close()
            a, b = stream_pair()
            if a.fileno() != fd:   # pragma: no cover - the lowest free fd is reused
                pytest.skip("the fd number was not reused")
            b.send(b"new")
            assert await ring.sock_recv(a, 100) == b"new"
            assert ring.take_partial(a) == b""

    try:
        run_loop(new_loop, main)
    finally:
        a.close()
        b.close()


def test_a_cancelled_peek_keeps_nothing(new_loop):
    a, b = stream_pair()

    async def main():
        async with AsyncRing() as ring:
            fut = ring.recv(a.fileno(), 100, socket.MSG_PEEK)
            await asyncio.sleep(0.01)
            b.send(b"peeked")
            wait_for_cqe(ring)
            fut.cancel()
            await asyncio.sleep(0.01)
            assert ring.take_partial(a) == b""
            assert await ring.sock_recv(a, 100) == b"peeked"   # still in the socket

    try:
        run_loop(new_loop, main)
    finally:
        a.close()
        b.close()


def test_a_completed_receive_keeps_nothing(new_loop):
    a, b = stream_pair()

    async def main():
        async with AsyncRing() as ring:
            b.send(b"x")
            assert await ring.recv(a.fileno(), 100) == b"x"
            b.send(b"y")
            assert await ring.sock_recv(a, 100) == b"y"
            assert ring.take_partial(a) == b""
            assert ring.in_flight() == 0

    try:
        run_loop(new_loop, main)
    finally:
        a.close()
        b.close()

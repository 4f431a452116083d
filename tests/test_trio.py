"""py_io_uring.trio (TrioRing) under trio's rules: every operation a
checkpoint, trio cancellation turned into a kernel cancel whose final
completion the task waits for (so a result made despite the cancel is
delivered, and the buffer stays pinned until then), AsyncRing's method
set, closing with operations in flight; and py_io_uring.anyio.open_ring()."""

import asyncio
import errno
import gc
import inspect
import os
import socket
import weakref

import pytest

import py_io_uring
from py_io_uring import AsyncRing

trio = pytest.importorskip("trio", reason="trio is not installed (make deps-test installs it)")
import trio.testing  # noqa: E402

from py_io_uring.trio import TrioRing, open_ring  # noqa: E402


class Buf(bytearray):
    """A bytearray that can be weakly referenced, to see when it dies."""


def run(fn, *args):
    async def bounded():
        with trio.fail_after(30):
            return await fn(*args)
    return trio.run(bounded)


# issue 15's additions to AsyncRing made alongside TrioRing, which TrioRing
# does not have (yet): a trio program links with nurseries and scopes
ASYNCRING_ONLY = {"chain", "cancel", "cancel_fd", "sleep"}


# Not repeated by make leaks: inspect's parsing of text signatures keeps
# blocks for many runs in CPython 3.11 (as test_docs.py's help() test says)
@pytest.mark.no_leakcheck
def test_same_operations_as_asyncring():
    ops = [name for name, mode, fds, peer in py_io_uring._core._ASYNC_OPS]
    assert "read" in ops and "recv_multishot" in ops and "cancel" not in ops
    public = {n for n in dir(AsyncRing) if not n.startswith("_")} - ASYNCRING_ONLY
    assert public == {n for n in dir(TrioRing) if not n.startswith("_")} - ASYNCRING_ONLY
    for name in ops + ["close_fd"]:
        m = getattr(TrioRing, name)
        assert inspect.signature(m) == inspect.signature(getattr(AsyncRing, name)), name
        assert m.__doc__ == getattr(AsyncRing, name).__doc__
    # awaitable ops are coroutine functions, multishot ones give iterators
    assert inspect.iscoroutinefunction(TrioRing.read)
    assert not inspect.iscoroutinefunction(TrioRing.recv_multishot)


def test_every_operation_is_a_checkpoint(unix_pair):
    a, b = unix_pair

    async def main():
        async with open_ring(8) as ring:
            with trio.testing.assert_checkpoints():
                await ring.nop()
            b.send(b"ready")
            with trio.testing.assert_checkpoints():
                assert await ring.recv(a, 10) == b"ready"
            # cancelled before it starts: Cancelled, nothing submitted
            ops = ring.stats()["ops"]
            with trio.CancelScope() as cs:
                cs.cancel()
                await ring.recv(a, 10)
                raise AssertionError("not reached")
            assert cs.cancelled_caught
            assert ring.stats()["ops"] == ops and ring.in_flight() == 0

    run(main)


def test_one_submit_per_scheduler_batch(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 4096)

    async def main():
        fd = os.open(str(path), os.O_RDONLY)
        async with open_ring(256) as ring:
            await ring.nop()
            before = ring.stats()["submits"]

            async def reader():
                for _ in range(10):
                    assert await ring.read(fd, 16, 0) == b"x" * 16
            async with trio.open_nursery() as n:
                for _ in range(20):
                    n.start_soon(reader)
            # 200 reads from 20 tasks: a submit per round of the scheduler,
            # ten rounds when every read completes inline; reads the kernel
            # finishes later wake their tasks in other rounds (measured: up
            # to 16 on a loaded machine); one submit per op would be 200
            assert ring.stats()["submits"] - before <= 25
        os.close(fd)

    run(main)


def test_a_cancelled_receive_keeps_its_buffer_pinned_until_the_final_completion(unix_pair):
    a, b = unix_pair

    async def main():
        async with open_ring(8) as ring:
            buf = Buf(16)
            ref = weakref.ref(buf)
            cs = trio.CancelScope()
            result = []

            async def reader(buf):
                with cs:
                    result.append(await ring.recv(a, buf))

            async with trio.open_nursery() as n:
                n.start_soon(reader, buf)
                await trio.testing.wait_all_tasks_blocked()
                cs.cancel()     # trio runs the abort function here: cancel submitted
                # the task waits for the final completion, the buffer with it
                assert ring.in_flight() >= 1
                with pytest.raises(BufferError):
                    buf.extend(b"x")
                del buf
                gc.collect()
                assert ref() is not None
            assert cs.cancelled_caught and result == []
            assert ring.in_flight() == 0
            gc.collect()
            assert ref() is None    # released at the final completion
            b.send(b"after")
            assert await ring.recv(a, 16) == b"after"

    run(main)


def test_a_result_made_despite_the_cancel_is_delivered(unix_pair):
    a, b = unix_pair

    async def main():
        async with open_ring(8) as ring:
            cs = trio.CancelScope()
            got = []

            async def reader():
                with cs:
                    got.append(await ring.recv(a, 100))
                    await trio.lowlevel.checkpoint()    # Cancelled here, after the data
                    got.append("not reached")

            async with trio.open_nursery() as n:
                n.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                b.send(b"raced")        # the receive completes in this syscall's return
                assert ring.get_ring().cq_ready() == 1
                cs.cancel()             # too late for the kernel: the bytes are the task's
            assert got == [b"raced"] and cs.cancelled_caught
            assert ring.in_flight() == 0

    run(main)


def test_an_accept_made_despite_the_cancel_gives_its_fd(listener):
    async def main():
        async with open_ring(8) as ring:
            cs = trio.CancelScope()
            got = []

            async def acceptor():
                with cs:
                    got.append(await ring.accept(listener))

            async with trio.open_nursery() as n:
                n.start_soon(acceptor)
                await trio.testing.wait_all_tasks_blocked()
                c = socket.create_connection(listener.getsockname())
                assert ring.get_ring().cq_ready() == 1
                cs.cancel()
            (fd, addr), = got
            assert addr == c.getsockname()
            os.fstat(fd)        # the caller's to close
            os.close(fd)
            c.close()

    run(main)


def test_timeouts_around_operations(unix_pair):
    a, b = unix_pair

    async def main():
        async with open_ring(8) as ring:
            with pytest.raises(trio.TooSlowError):
                with trio.fail_after(0.05):
                    await ring.recv(a, 100)
            with trio.move_on_after(0.05) as cs:
                await ring.timeout(10)
            assert cs.cancelled_caught and ring.in_flight() == 0

    run(main)


def test_aclose_with_operations_in_flight(unix_pair):
    a, b = unix_pair

    async def main():
        ring = TrioRing(8)
        errors = []

        async def reader():
            try:
                await ring.recv(a, 100)
            except trio.ClosedResourceError as e:
                errors.append(e)

        async with trio.open_nursery() as n:
            for _ in range(3):
                n.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            assert ring.in_flight() == 3
            await ring.aclose()
        assert len(errors) == 3 and ring.closed
        with pytest.raises(RuntimeError, match="closed"):
            await ring.nop()
        await ring.aclose()     # again: nothing

    run(main)


def test_multishot_receive_over_a_buffer_ring(unix_pair):
    a, b = unix_pair

    async def main():
        async with open_ring(8) as ring:
            ring.get_ring().setup_buf_ring(1, 8, 64)
            it = ring.recv_multishot(a, buf_group=1)
            b.send(b"one")
            assert await it.__anext__() == b"one"
            # a cancelled wait leaves the operation running: nothing lost
            with trio.move_on_after(0.05) as cs:
                await it.__anext__()
            assert cs.cancelled_caught and ring.in_flight() == 1
            b.send(b"two")
            assert await it.__anext__() == b"two"
            b.shutdown(socket.SHUT_WR)
            assert [x async for x in it] == []       # end of stream
            assert ring.in_flight() == 0

    run(main)


def test_leaving_async_for_cancels_the_multishot_operation(listener):
    async def main():
        async with open_ring(8) as ring:
            clients = [socket.create_connection(listener.getsockname()) for _ in range(2)]
            async for fd, addr in ring.multishot_accept(listener):
                os.close(fd)
                break
            gc.collect()        # the dropped iterator cancels its operation
            for _ in range(200):
                if ring.in_flight() == 0:
                    break
                await trio.sleep(0.005)
            assert ring.in_flight() == 0
            for c in clients:
                c.close()

    run(main)


def test_argument_errors_name_the_method():
    async def main():
        async with open_ring(8) as ring:
            with pytest.raises(ValueError, match=r"^read\(\) argument 'buf'"):
                await ring.read(0, -5)
            with pytest.raises(TypeError, match=r"^sock_recv\(\)"):
                await ring.sock_recv(0, "x")
            with pytest.raises(ValueError, match="sqe_flags"):
                await ring.nop(sqe_flags=py_io_uring.IOSQE_IO_LINK)
            assert ring.in_flight() == 0

    run(main)


def test_one_trio_run_per_ring():
    ring = TrioRing(8)

    async def use():
        await ring.nop()

    trio.run(use)
    with pytest.raises(RuntimeError, match="another trio.run"):
        trio.run(use)
    with pytest.raises(RuntimeError):
        asyncio.run(use())      # outside trio
    ring.get_ring().queue_exit()


def test_anyio_open_ring_outside_an_async_library():
    pytest.importorskip("sniffio")
    import py_io_uring.anyio

    with pytest.raises(RuntimeError, match="running asyncio or trio"):
        py_io_uring.anyio.open_ring()


SETUPS = {
    "default": 0,
    "coop_taskrun": py_io_uring.IORING_SETUP_COOP_TASKRUN,
    "defer_taskrun": py_io_uring.IORING_SETUP_DEFER_TASKRUN | py_io_uring.IORING_SETUP_SINGLE_ISSUER,
    "sqpoll": py_io_uring.IORING_SETUP_SQPOLL,
}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_setups(setup, unix_pair, tcp_pair):
    """Completions reach the task whatever the ring's setup: the ring's fd
    polls readable for them, except under DEFER_TASKRUN, where an eventfd
    registered with the ring is signalled instead."""
    a, b = unix_pair
    client, server = tcp_pair
    flags = SETUPS[setup]
    if setup == "defer_taskrun" and not hasattr(os, "eventfd"):
        with pytest.raises(ValueError, match="os.eventfd"):
            TrioRing(8, flags)
        return

    async def main():
        async with TrioRing(8, flags) as ring:
            # send_zc: the result first, the notification ends the op
            assert await ring.send_zc(client, b"zero-copy") == 9
            assert server.recv(100) == b"zero-copy"
            with trio.move_on_after(0.05) as cs:
                await ring.recv(a, 10)
            assert cs.cancelled_caught and ring.in_flight() == 0
            # a multishot receive over a ring of 2 buffers: messages sent
            # while nobody reaps may run it dry (ENOBUFS); it is re-armed
            # and no byte is lost
            ring.get_ring().setup_buf_ring(1, 2, 64)
            it = ring.recv_multishot(a, buf_group=1)
            await trio.testing.wait_all_tasks_blocked()
            want = b"".join(b"m%d" % i for i in range(6))
            for i in range(6):
                b.send(b"m%d" % i)
            got = b""
            while len(got) < len(want):
                got += await it.__anext__()
            assert got == want
            it.cancel()
            assert [x async for x in it] == []
            assert ring.in_flight() == 0
            efd = ring.fileno()
            assert (efd != ring.get_ring().fileno()) == (setup == "defer_taskrun")
        if setup == "defer_taskrun":
            with pytest.raises(OSError):
                os.fstat(efd)       # aclose() closed the eventfd

    run(main)


def test_ctrl_c_waits_for_the_kernel(run_py):
    """Ctrl-C while the main task waits: the receive is cancelled in the
    kernel, KeyboardInterrupt comes out of trio.run() once it ended, and
    what the peer sends next is still in the socket."""
    code = '''
import os, signal, socket, threading, trio
from py_io_uring.trio import TrioRing
a, b = socket.socketpair()
ring = TrioRing(8)
async def main():
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    await ring.recv(a, 10)
try:
    trio.run(main)
except KeyboardInterrupt:
    print("KeyboardInterrupt", ring.in_flight())
b.send(b"later")
print(a.recv(10))
'''
    proc = run_py(code, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["KeyboardInterrupt 0", "b'later'"]


# When trio.run()'s main task returns, trio cancels its system tasks, the
# ring's reaper and flusher among them, and the run ends once they all have.
# A system task may still wait on the ring then: its op is being cancelled
# (its task waits for the final completion, so that nothing is lost), or it
# runs shielded cleanup.  The reaper serves them and then leaves.  Each runs
# in a child process: a regression hangs trio.run(), not the suite.
_RUN_END_PRELUDE = """
import os, socket, threading, trio
import py_io_uring
from py_io_uring.trio import TrioRing
SETUP = %d
a, b = socket.socketpair()
got = []
"""


@pytest.mark.parametrize("setup", ["default", "defer_taskrun"])
def test_a_system_task_op_in_flight_as_the_run_ends(run_py, setup):
    if setup == "defer_taskrun" and not hasattr(os, "eventfd"):
        pytest.skip("a DEFER_TASKRUN TrioRing needs os.eventfd (3.10+): test_setups checks the refusal")
    code = _RUN_END_PRELUDE % SETUPS[setup] + """
ring = TrioRing(8, SETUP)
async def server():
    try:
        got.append(await ring.recv(a, 10))
    except trio.Cancelled:
        got.append("cancelled")
        raise
async def main():
    trio.lowlevel.spawn_system_task(server)
    await trio.sleep(0.05)      # the receive waits in the kernel
trio.run(main)
b.send(b"later")                # still in the socket: the cancel took nothing
print(got, ring.in_flight(), a.recv(10))
"""
    proc = run_py(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['cancelled'] 0 b'later'"


@pytest.mark.parametrize("setup", ["default", "defer_taskrun"])
def test_shielded_cleanup_in_a_system_task_as_the_run_ends(run_py, setup):
    # an op in flight at the run's end that completes later, then (the
    # reaper having left, nothing waiting) new ops that bring it back
    if setup == "defer_taskrun" and not hasattr(os, "eventfd"):
        pytest.skip("a DEFER_TASKRUN TrioRing needs os.eventfd (3.10+): test_setups checks the refusal")
    code = _RUN_END_PRELUDE % SETUPS[setup] + """
ring = TrioRing(8, SETUP)
async def saver():
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            threading.Timer(0.2, b.send, (b"first",)).start()
            got.append(await ring.recv(a, 10))
            await trio.sleep(0.1)           # the reaper leaves meanwhile
            fd = await ring.openat(py_io_uring.AT_FDCWD, py_io_uring.__file__, os.O_RDONLY)
            got.append(len(await ring.read(fd, 4)))
            await ring.close_fd(fd)
            threading.Timer(0.1, b.send, (b"second",)).start()
            got.append(await ring.recv(a, 10))
async def main():
    trio.lowlevel.spawn_system_task(saver)
    await ring.nop()                        # bound to this run
trio.run(main)
print(got)
"""
    proc = run_py(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[b'first', 4, b'second']"


def test_a_multishot_left_armed_does_not_hold_the_run(run_py):
    # an iterator nobody waits on: its op stays armed, and the run ends
    code = _RUN_END_PRELUDE % 0 + """
ring = TrioRing(8)
async def main():
    ring.get_ring().setup_buf_ring(1, 8, 64)
    global it
    it = ring.recv_multishot(a, buf_group=1)
    b.send(b"x")
    got.append(await it.__anext__())
trio.run(main)
print(got)
"""
    proc = run_py(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[b'x']"


class _FailingSubmit:
    """The ring, whose next submit() fails (an injected ENOMEM)."""

    def __init__(self, ring):
        self._r = ring
        self.fail = True

    def __getattr__(self, name):
        return getattr(self._r, name)

    def submit(self):
        if self.fail:
            self.fail = False
            raise OSError(errno.ENOMEM, "injected")
        return self._r.submit()


def test_a_failed_submit_reaches_the_waiting_tasks(unix_pair):
    a, b = unix_pair

    async def main():
        async with open_ring(8) as ring:
            real = ring._ring
            real.setup_buf_ring(1, 4, 64)
            ring._ring = _FailingSubmit(real)
            it = ring.recv_multishot(a, buf_group=1)
            with pytest.raises(OSError) as e:
                await ring.nop()
            assert e.value.errno == errno.ENOMEM
            with pytest.raises(OSError):
                await it.__anext__()
            # the entries stay queued: the next flush submits them, and
            # their results, which nobody waits for any more, are dropped
            assert await ring.nop() == 0
            b.send(b"x")
            it.cancel()
            for _ in range(200):
                if real.in_flight() == 0:
                    break
                await trio.sleep(0.005)
            assert real.in_flight() == 0
            ring._ring = real

    run(main)


def test_a_multishot_receive_with_no_buffers_fails_rather_than_spinning(unix_pair):
    a, b = unix_pair

    async def main():
        async with open_ring(8) as ring:
            it = ring.recv_multishot(a, buf_group=5)     # no buffer ring 5
            b.send(b"x")
            with pytest.raises(OSError) as e:
                await it.__anext__()
            assert e.value.errno == errno.ENOBUFS
            assert ring.in_flight() == 0 and ring.stats()["ops"] == 1
            assert [x async for x in it] == []

    run(main)


TYPED_PROGRAM = '''
import trio
from py_io_uring.trio import TrioRing, open_ring
from py_io_uring.anyio import open_ring as open_any_ring


async def main() -> None:
    async with open_ring(8) as ring:
        data = await ring.read(0, 16)
        n: int = ring.in_flight()
        again: TrioRing = ring
        async for item in ring.recv_multishot(0, buf_group=1):
            break
        await ring.sock_sendall(0, b"x")
    async with open_any_ring() as either:
        await either.nop()
    await ring.read("zero", 16)

trio.run(main)
'''


@pytest.mark.no_leakcheck
def test_mypy_uses_the_trio_stub(tmp_path):
    """py_io_uring/trio.pyi (generated) and anyio.py's annotations type a
    user's program: mypy --strict finds the one wrong argument only."""
    pytest.importorskip("mypy", reason="mypy is not installed (make deps-test installs it)")
    if not os.path.exists(os.path.join(os.path.dirname(trio.__file__), "py.typed")):
        pytest.skip("this trio (%s) has no types (py.typed came with 0.23); pip's has"
                    % trio.__version__)
    import subprocess
    import sys

    from conftest import BUILD

    prog = tmp_path / "prog.py"
    prog.write_text(TYPED_PROGRAM, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=BUILD, MYPYPATH=BUILD)
    env.pop("LD_PRELOAD", None)
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", os.devnull,
                           "--no-incremental", "--strict", "--python-executable", sys.executable,
                           str(prog)], capture_output=True, text=True, timeout=300, env=env,
                          cwd=str(tmp_path))
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    line = TYPED_PROGRAM.splitlines().index('    await ring.read("zero", 16)') + 1
    assert len(errors) == 1, proc.stdout + proc.stderr
    assert "prog.py:%d:" % line in errors[0] and '"str"' in errors[0], proc.stdout


def test_timeout_keyword(unix_pair, tmp_file):
    """timeout= as AsyncRing's awaitables take it: TimeoutError, nothing in
    flight, the bytes sent next go to the next receive."""
    a, b = unix_pair

    async def main():
        async with open_ring(8) as ring:
            with pytest.raises(TimeoutError):
                await ring.recv(a, 10, timeout=0.05)
            assert ring.in_flight() == 0
            b.send(b"next")
            assert await ring.recv(a, 10, timeout=5) == b"next"
            fd = os.open(str(tmp_file), os.O_RDONLY)
            assert len(await ring.read(fd, 100, 0, timeout=None)) == 100
            os.close(fd)
            with pytest.raises(TypeError, match=r"^recv\(\): timeout"):
                await ring.recv(a, 10, timeout="1")
            with pytest.raises(ValueError, match=r"^recv\(\): timeout"):
                await ring.recv(a, 10, timeout=-1)
            assert ring.in_flight() == 0 and ring.stats()["ops"] == 3

    run(main)

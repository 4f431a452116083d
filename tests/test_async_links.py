"""AsyncRing's links and timeouts (issue 15): timeout= on the awaitable ops
(a linked IORING_OP_LINK_TIMEOUT), chain(), sleep(), cancel() and
cancel_fd(), on asyncio and on uvloop, against the real kernel."""

import asyncio
import errno
import os
import select
import time

import pytest

import py_io_uring
from py_io_uring import AT_FDCWD, IOSQE_FIXED_FILE, AsyncRing

try:
    import uvloop
except ImportError:  # pragma: no cover - make deps-test installs it
    uvloop = None

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.no_leakcheck)]


@pytest.fixture(params=LOOPS)
def run(request):
    """run(coro_fn, *args): coro_fn(ring, *args) on a fresh loop of the
    parametrized kind with a fresh AsyncRing, closed after it; the loop's
    exception handler must be given nothing (no unretrieved exception)."""
    if request.param == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed (make deps-test installs it)")
    new_loop = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(fn, *args):
        loop = new_loop()
        reported = []
        loop.set_exception_handler(lambda lp, ctx: reported.append(ctx))

        async def main():
            async with AsyncRing() as ring:
                return await fn(ring, *args)

        try:
            result = loop.run_until_complete(asyncio.wait_for(main(), 30))
        finally:
            loop.close()
        assert [c.get("message") for c in reported] == []
        return result

    return runner


def open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


async def drained(ring, deadline=2.0):
    """Let the loop run until nothing is in flight (bounded)."""
    end = time.monotonic() + deadline
    while ring.in_flight() and time.monotonic() < end:
        await asyncio.sleep(0.005)
    return ring.in_flight()


# ---------------------------------------------------------------- timeout=

def test_timeout_raises_timeouterror_and_leaves_nothing_in_flight(run, pipe):
    r, w = pipe

    async def main(ring):
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError, match=r"read\(\) timed out"):
            await ring.read(r, 10, timeout=0.05)
        assert time.monotonic() - t0 >= 0.05          # never before
        # both final completions were reaped before the awaiter resumed
        assert ring.in_flight() == 0
        # the timed-out read took nothing: the next one gets the bytes
        os.write(w, b"after")
        assert await ring.read(r, 10, timeout=5) == b"after"
        assert ring.in_flight() == 0

    run(main)


def test_timeouterror_is_what_wait_for_raises():
    # 3.11+: the builtin; before: asyncio.TimeoutError, as asyncio.wait_for()
    async def main():
        async with AsyncRing() as ring:
            r, w = os.pipe()
            try:
                with pytest.raises(asyncio.TimeoutError) as e:
                    await ring.read(r, 1, timeout=0.01)
            finally:
                os.close(r)
                os.close(w)
            return e.value

    exc = asyncio.run(main())
    assert type(exc) is asyncio.TimeoutError


def test_timeout_not_reached_gives_the_result(run, pipe, tmp_path):
    r, w = pipe
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")

    async def main(ring):
        os.write(w, b"ready")
        assert await ring.read(r, 10, timeout=10.0) == b"ready"
        assert await ring.write(w, b"abc", timeout=10) == 3
        assert await ring.nop(timeout=0) == 0   # a NOP that completes keeps its result
        before = open_fds()
        fd = await ring.openat(AT_FDCWD, str(path), os.O_RDONLY, timeout=5.0)
        try:
            assert open_fds() == before + 1
            assert await ring.read(fd, 4, 2, timeout=None) == b"2345"
        finally:
            assert await ring.close_fd(fd, timeout=5) == 0
        assert open_fds() == before
        await drained(ring)
        assert ring.in_flight() == 0

    run(main)


def test_timeout_keeps_an_error_of_the_op_itself(run):
    async def main(ring):
        with pytest.raises(FileNotFoundError) as e:
            await ring.openat(AT_FDCWD, "/nope/x", os.O_RDONLY, timeout=5)
        assert e.value.filename == "/nope/x"
        assert ring.in_flight() == 0

    run(main)


def test_timeout_buffer_pinned_until_both_completions(run, pipe):
    r, w = pipe

    async def main(ring):
        buf = bytearray(16)
        fut = ring.read(r, buf, timeout=0.05)
        await asyncio.sleep(0)
        with pytest.raises(BufferError):
            buf.extend(b"x")          # pinned: the kernel may write it
        with pytest.raises(asyncio.TimeoutError):
            await fut
        buf.extend(b"x")              # released with the final completions
        assert len(buf) == 17

    run(main)


def test_cancelling_the_task_while_its_linked_timeout_is_pending(run, pipe):
    r, w = pipe

    async def main(ring):
        task = asyncio.ensure_future(ring.read(r, 10, timeout=30))
        await asyncio.sleep(0.02)
        assert ring.in_flight() == 2          # the read and its link timeout
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the cancel went to the kernel at once: both end long before 30 s
        assert await drained(ring, 2.0) == 0
        os.write(w, b"kept")
        assert await ring.read(r, 10) == b"kept"

    run(main)


def test_timeout_argument_errors(run):
    async def main(ring):
        with pytest.raises(TypeError, match="timeout must be a number"):
            ring.nop(timeout="1")
        with pytest.raises(ValueError, match="timeout must be a finite"):
            ring.nop(timeout=-1)
        with pytest.raises(ValueError, match="timeout must be a finite"):
            ring.nop(timeout=float("nan"))
        # multishot iterators take no timeout= (see docs/async.md)
        with pytest.raises(TypeError, match=r"^recv_multishot\(\).*timeout"):
            ring.recv_multishot(0, timeout=1)
        assert await drained(ring) == 0   # the refused calls left harmless NOPs

    run(main)


def test_timeout_with_a_full_submission_queue():
    # the op and its timeout need two adjacent entries: a queue that has
    # one left is flushed first; one that never has two refuses
    async def main():
        async with AsyncRing(2) as ring:
            futs = [ring.nop(), ring.nop(timeout=5)]
            assert await asyncio.gather(*futs) == [0, 0]
        async with AsyncRing(1) as ring:
            with pytest.raises(py_io_uring.SubmissionQueueFull):
                ring.nop(timeout=5)
            assert await ring.nop() == 0
            assert ring.in_flight() == 0

    asyncio.run(main())


# ---------------------------------------------------------------- chain()

def test_chain_copies_a_file_through_fixed_slots(run, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = os.urandom(3000)
    src.write_bytes(data)

    async def main(ring):
        ring.get_ring().register_files_sparse(4)
        before = open_fds()
        buf = bytearray(len(data))
        async with ring.chain() as c:
            c.openat_direct(AT_FDCWD, str(src), os.O_RDONLY, file_index=0)
            c.openat_direct(AT_FDCWD, str(dst), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600,
                            file_index=1)
            rd = c.read(0, buf, 0, sqe_flags=IOSQE_FIXED_FILE)
            c.write(1, buf, 0, sqe_flags=IOSQE_FIXED_FILE)
            c.close_direct(0)
            c.close_direct(1)
            assert ring.in_flight() == 0      # nothing runs before the block ends
        assert c.results == [0, 0, len(data), len(data), 0, 0]
        assert rd.result() == len(data)
        assert ring.in_flight() == 0
        assert open_fds() == before           # no fd of the process was used
        return ring.stats()["submits"]

    run(main)
    assert dst.read_bytes() == data


def test_chain_failing_in_the_middle_raises_the_first_error(run, tmp_path):
    async def main(ring):
        ring.get_ring().register_files_sparse(2)
        with pytest.raises(FileNotFoundError) as e:
            async with ring.chain() as c:
                c.nop()
                c.openat_direct(AT_FDCWD, str(tmp_path / "nope"), os.O_RDONLY, file_index=0)
                c.read(0, 10, sqe_flags=IOSQE_FIXED_FILE)
                c.close_direct(0)
        assert e.value.filename == str(tmp_path / "nope")
        assert c.results == [0, None, None, None]
        for f in c.futures[2:]:
            assert f.exception().errno == errno.ECANCELED
        assert ring.in_flight() == 0

    run(main)


def test_chain_timeout(run, pipe):
    r, w = pipe

    async def main(ring):
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError, match=r"chain\(\) timed out"):
            async with ring.chain(timeout=0.05) as c:
                c.nop()
                c.read(r, 10)
                c.nop()
        assert time.monotonic() - t0 >= 0.05
        assert ring.in_flight() == 0
        assert c.results[0] == 0
        assert c.futures[1].exception().errno in (errno.ECANCELED, errno.EINTR)
        os.write(w, b"x")
        assert await ring.read(r, 10) == b"x"

    run(main)


def test_chain_bad_arguments_run_nothing(run):
    async def main(ring):
        with pytest.raises(TypeError, match="fileno"):
            async with ring.chain() as c:
                c.nop()
                c.read("not an fd", 10)
        assert all(f.cancelled() for f in c.futures)
        assert ring.in_flight() == 0 and ring.stats()["ops"] == 0
        # a block that raises submits nothing
        with pytest.raises(KeyError):
            async with ring.chain() as c2:
                c2.nop()
                raise KeyError
        assert c2.futures[0].cancelled() and ring.stats()["ops"] == 0
        with pytest.raises(RuntimeError, match="submitted already"):
            c2.nop()
        with pytest.raises(TypeError, match="timeout"):
            ring.chain().nop(timeout=1)  # the chain has the timeout
        with pytest.raises(AttributeError):
            ring.chain().recv_multishot  # multishot ops cannot be linked
        async with ring.chain() as c3:
            pass
        assert c3.results == []

    run(main)


def test_chain_goes_in_one_submission(run):
    async def main(ring):
        await ring.nop()
        before = ring.stats()["submits"]
        async with ring.chain() as c:
            for _ in range(5):
                c.nop()
        assert c.results == [0] * 5
        assert ring.stats()["submits"] == before + 1

    run(main)


def test_cancelling_the_task_awaiting_a_chain(run, pipe):
    r, w = pipe

    async def use(ring):
        async with ring.chain() as c:
            c.read(r, 10)
            c.nop()

    async def main(ring):
        task = asyncio.ensure_future(use(ring))
        await asyncio.sleep(0.02)
        assert ring.in_flight() == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await drained(ring) == 0

    run(main)


# ---------------------------------------------------------------- sleep()

def test_sleep_is_never_early(run):
    async def main(ring):
        for s in (0, 0.01, 0.05):
            t0 = time.monotonic()
            assert await ring.sleep(s) is None
            assert time.monotonic() - t0 >= s
        assert ring.in_flight() == 0
        with pytest.raises(ValueError, match=r"^sleep\(\)"):
            ring.sleep(-1)
        with pytest.raises(TypeError, match=r"^sleep\(\)"):
            ring.sleep("1")

    run(main)


def test_cancelled_sleep_is_cancelled_in_the_kernel_at_once(run):
    async def main(ring):
        task = asyncio.ensure_future(ring.sleep(30))
        await asyncio.sleep(0.01)
        assert ring.in_flight() == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await drained(ring, 2.0) == 0

    run(main)


# ---------------------------------------------------------------- cancel(), cancel_fd()

def test_cancel_a_future(run, pipe):
    r, w = pipe

    async def main(ring):
        fut = ring.read(r, 10, timeout=30)
        other = ring.read(r, 10)
        await asyncio.sleep(0.01)
        assert ring.cancel(fut) is True
        with pytest.raises(asyncio.CancelledError):
            await fut
        assert await drained(ring, 0.2) == 1   # only `other` is left
        assert ring.cancel(fut) is False       # ended
        assert ring.cancel(object()) is False  # not this ring's
        done = ring.nop()
        await done
        assert ring.cancel(done) is False
        os.write(w, b"other")
        assert await other == b"other"

    run(main)


def test_cancel_an_iterator(run, unix_pair):
    a, b = unix_pair

    async def main(ring):
        # a multishot op needing no buffer ring
        it = ring.poll_multishot(a, select.POLLIN)
        b.send(b"x")
        assert await it.__anext__() & select.POLLIN
        assert ring.cancel(it) is True
        with pytest.raises(StopAsyncIteration):
            while True:
                await it.__anext__()
        assert await drained(ring) == 0

    run(main)


def test_cancel_fd_counts(run, pipe):
    r, w = pipe

    async def main(ring):
        futs = [ring.read(r, 10), ring.read(r, 10), ring.sleep(30)]
        await asyncio.sleep(0.01)
        assert await ring.cancel_fd(r) == 2
        for f in futs[:2]:
            with pytest.raises(OSError) as e:
                await f
            assert e.value.errno == errno.ECANCELED
        assert await ring.cancel_fd(r) == 0     # none left
        assert ring.in_flight() == 1            # the sleep, on no fd
        assert ring.cancel(futs[2]) is True
        with pytest.raises(asyncio.CancelledError):
            await futs[2]

    run(main)


def test_chain_ending_first_cancels_its_timeout(run):
    async def main(ring):
        t0 = time.monotonic()
        async with ring.chain(timeout=30) as c:
            c.nop()
            c.nop()
        assert c.results == [0, 0]
        assert time.monotonic() - t0 < 10      # did not wait for the timeout
        assert ring.in_flight() == 0           # whose end was reaped too

    run(main)


class MeddlingPath:
    """An os.PathLike whose __fspath__ starts another op on the ring: the
    entry it takes would land inside a chain, or between an op and its
    linked timeout."""

    def __init__(self, ring, path):
        self.ring, self.path, self.futs = ring, path, []

    def __fspath__(self):
        self.futs.append(self.ring.nop())
        return self.path


def test_an_entry_taken_inside_a_chain_or_a_link_runs_nothing_linked(run, tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x")

    async def main(ring):
        m = MeddlingPath(ring, str(p))
        with pytest.raises(RuntimeError, match="used while"):
            ring.openat(AT_FDCWD, m, os.O_RDONLY, timeout=5)
        with pytest.raises(RuntimeError, match="used while"):
            async with ring.chain() as c:
                c.nop()
                c.openat(AT_FDCWD, m, os.O_RDONLY)
        assert all(f.cancelled() for f in c.futures)
        # the meddler's own NOPs ran, and nothing else did
        assert m.futs and await asyncio.gather(*m.futs) == [0] * len(m.futs)
        assert await drained(ring) == 0
        assert ring.stats()["ops"] == len(m.futs)

    before = open_fds()
    run(main)
    assert open_fds() == before


def test_a_chain_longer_than_the_queue_is_refused():
    async def main():
        async with AsyncRing(4) as ring:
            with pytest.raises(py_io_uring.SubmissionQueueFull):
                async with ring.chain() as c:
                    for _ in range(5):
                        c.nop()
            assert all(f.cancelled() for f in c.futures)
            # a chain dropped unsubmitted leaves no future waiting forever
            c2 = ring.chain()
            f = c2.nop()
            del c2
            assert f.cancelled()
            assert ring.in_flight() == 0

    asyncio.run(main())


def test_accept_timeout_leaves_no_fd_and_the_next_accept_works(run):
    import socket

    async def main(ring):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(4)
        try:
            before = open_fds()
            for _ in range(3):
                with pytest.raises(asyncio.TimeoutError, match=r"accept\(\) timed out"):
                    await ring.accept(ls, timeout=0.02)
                assert ring.in_flight() == 0
            assert open_fds() == before
            c = socket.create_connection(ls.getsockname())
            fd, peer = await ring.accept(ls, timeout=5)
            assert peer == c.getsockname()
            assert open_fds() == before + 2
            os.close(fd)
            c.close()
            assert open_fds() == before
        finally:
            ls.close()

    run(main)

"""AsyncRing under hostile cancellation: results that own fds never leak.

Issue 18, item 15 (part), against the real kernel, on asyncio and uvloop.
An accept, openat or socket whose task is cancelled can lose its new fd in
two ways: the completion lands on a future that is already cancelled (the
fd is closed when the completion is delivered), or the task is cancelled
after the result was set but before it resumed, when asyncio throws
CancelledError into the coroutine instead of handing it the result (the fd
is closed when that exception passes the await, and the future's result()
raises CancelledError from then on).  Open fds are counted in
/proc/self/fd before and after.
"""

import asyncio
import os
import random
import socket

import pytest

import py_io_uring
from py_io_uring import AT_FDCWD, AsyncRing

# run(coroutine function) on asyncio's loop and on uvloop: test_async's fixture
from test_async import run  # noqa: F401


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def listener():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)
    return ls


@pytest.mark.parametrize("op", ["openat", "accept", "socket"])
def test_cancel_after_the_result_was_set_closes_the_fd(run, op):
    """The exact window: the result is set (the completion came inside the
    submit), then the task is cancelled before it resumed."""
    async def main():
        ls = listener()
        clients = []
        box = {}
        if op == "accept":
            clients.append(socket.create_connection(ls.getsockname()))
        async with AsyncRing() as ring:
            before = open_fds()

            async def consumer():
                if op == "openat":
                    fut = ring.openat(AT_FDCWD, "/etc/hostname", os.O_RDONLY)
                elif op == "accept":
                    fut = ring.accept(ls)
                else:
                    fut = ring.socket(socket.AF_INET, socket.SOCK_STREAM)
                box["fut"] = fut
                value = await fut
                box["got"] = value
                os.close(value[0] if isinstance(value, tuple) else value)

            task = asyncio.ensure_future(consumer())
            await asyncio.sleep(0)           # the task waits on its future
            fut = box["fut"]
            assert isinstance(fut, asyncio.Future) and not fut.done()
            ring.flush()                     # completes inside the submit
            ring.process_completions()
            assert fut.done() and not fut.cancelled()
            value = fut.result()             # the fd is there, not yet taken
            fd = value[0] if isinstance(value, tuple) else value
            assert is_open(fd)
            task.cancel()
            [exc] = await asyncio.gather(task, return_exceptions=True)
            assert isinstance(exc, asyncio.CancelledError)
            assert "got" not in box
            with pytest.raises(asyncio.CancelledError):
                fut.result()                 # never the closed number
            assert open_fds() == before
        for c in clients:
            c.close()
        ls.close()

    run(main)


def test_result_the_task_took_stays_open(run):
    """Cancelling after the task got its fd closes nothing of it."""
    async def main():
        async with AsyncRing() as ring:
            got = asyncio.get_running_loop().create_future()

            async def consumer():
                fd = await ring.openat(AT_FDCWD, "/etc/hostname", os.O_RDONLY)
                got.set_result(fd)
                await asyncio.sleep(3600)

            task = asyncio.ensure_future(consumer())
            fd = await got
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert is_open(fd)
            with open("/etc/hostname", "rb") as f:
                assert os.read(fd, 1) == f.read(1)
            os.close(fd)

    run(main)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cancel_storm_leaks_no_fds(run, seed):
    """Many accepts and openats awaited by tasks cancelled at random points:
    before they start, while in flight, right after their results are set."""
    async def main():
        rnd = random.Random(seed)
        ls = listener()
        addr = ls.getsockname()
        clients = []
        before = open_fds()
        taken = [0]
        async with AsyncRing() as ring:
            async def opener():
                fd = await ring.openat(AT_FDCWD, "/etc/hostname", os.O_RDONLY)
                taken[0] += 1
                os.close(fd)

            async def acceptor():
                fd, _ = await ring.accept(ls)
                taken[0] += 1
                os.close(fd)

            for _ in range(20):
                tasks = [asyncio.ensure_future(opener() if rnd.random() < 0.5 else acceptor())
                         for _ in range(40)]
                for _ in range(40):
                    c = socket.socket()
                    c.setblocking(False)
                    try:
                        c.connect(addr)
                    except BlockingIOError:
                        pass
                    clients.append(c)
                for _ in range(rnd.randrange(4)):
                    await asyncio.sleep(0)
                for t in tasks:
                    if rnd.random() < 0.7:
                        t.cancel()
                        if rnd.random() < 0.5:
                            await asyncio.sleep(0)
                await asyncio.gather(*tasks, return_exceptions=True)
            assert ring.in_flight() == 0
        for c in clients:
            c.close()
        assert taken[0] > 0
        assert open_fds() == before
        ls.close()

    run(main)

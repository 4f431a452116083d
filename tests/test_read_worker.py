"""read_files() from the main thread, for a batch of large files, runs its C
loop in the long-lived "py_io_uring-read" worker (src/py_io_uring/_read_worker.py):
the same data and errors as in place, progress called in the caller's
thread with counts that never go back and end at the total, and after an
error, an exception from progress or an interrupt, nothing open and the
worker free for the next call.  Small batches, small files, other
threads and a call made while the worker is busy run in place."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import py_io_uring
from py_io_uring import _read_worker

from file_helpers import blocked_fifo, fds, make_files  # noqa: F401  (fixtures)
from uring_helpers import fork
from conftest import BUILD

SIZE = _read_worker.MIN_SIZE


@pytest.fixture(autouse=True)
def untuned(monkeypatch):
    # whatever malloc settings the suite runs under (see the last test)
    monkeypatch.setattr(_read_worker, "_MALLOC_TUNED", False)


@pytest.fixture
def big(tmp_path):
    return make_files(tmp_path, [SIZE + i for i in range(_read_worker.MIN_FILES)])


@pytest.fixture
def where(monkeypatch):
    """The threads read_many() ran in, in call order."""
    seen = []
    real = _read_worker._read_many

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)
    monkeypatch.setattr(_read_worker, "_read_many", spy)
    return seen


def test_large_batch_runs_in_the_worker(big, where, fds):
    paths, datas = big
    calls = []
    out = py_io_uring.read_files(paths, progress=lambda *a: calls.append(
        (threading.current_thread() is threading.main_thread(),) + a))
    assert out == datas
    assert where == ["py_io_uring-read"]
    assert calls and all(c[0] for c in calls), "progress ran outside the caller's thread"
    assert calls[-1][1:] == (sum(map(len, datas)), None, len(paths), len(paths))
    done = [c[3] for c in calls]
    assert done == sorted(done)


@pytest.mark.parametrize("case", ["few files", "small first file", "worker thread", "malloc tuned"])
def test_other_calls_run_in_place(tmp_path, big, where, case, monkeypatch):
    paths, datas = big
    if case == "few files":
        paths, datas = paths[:-1], datas[:-1]
    elif case == "malloc tuned":
        monkeypatch.setattr(_read_worker, "_MALLOC_TUNED", True)
    elif case == "small first file":
        (tmp_path / "small").mkdir()
        paths, datas = make_files(tmp_path / "small", [SIZE - 1] + [SIZE] * (_read_worker.MIN_FILES - 1))
    if case == "worker thread":
        box = []
        t = threading.Thread(target=lambda: box.append(py_io_uring.read_files(paths)), name="user")
        t.start()
        t.join()
        out, expected = box[0], ["user"]
    else:
        out, expected = py_io_uring.read_files(paths), ["MainThread"]
    assert out == datas
    assert where == expected


def test_error_carries_the_path_and_leaves_nothing_open(big, where, fds):
    paths, _ = big
    missing = paths[7] + ".gone"
    with pytest.raises(FileNotFoundError) as info:
        py_io_uring.read_files(paths[:7] + [missing] + paths[8:])
    assert info.value.filename == missing
    assert where == ["py_io_uring-read"]
    out = py_io_uring.read_files(paths, errors="return")
    assert where == ["py_io_uring-read"] * 2
    assert all(isinstance(d, bytes) for d in out)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_progress_that_raises_stops_the_worker(big, where, fds, exc):
    paths, datas = big
    n = []

    def progress(*counts):
        n.append(counts)
        raise exc("from progress")
    with pytest.raises(exc, match="from progress"):
        py_io_uring.read_files(paths, depth=2, progress=progress)
    assert len(n) == 1
    # drained: nothing open (fds), and the worker takes the next call
    assert py_io_uring.read_files(paths) == datas
    assert where == ["py_io_uring-read"] * 2


def test_a_call_from_progress_runs_in_place(big, where, fds):
    paths, datas = big
    inner = []

    def progress(*counts):
        if not inner:
            inner.append(py_io_uring.read_files(paths))
    assert py_io_uring.read_files(paths, progress=progress) == datas
    assert inner == [datas]
    assert where == ["py_io_uring-read", "MainThread"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_starts_its_own_worker(big, fds):
    paths, datas = big
    assert py_io_uring.read_files(paths) == datas    # the parent's worker exists
    pid = fork()
    if pid == 0:   # pragma: no cover (the child)
        code = 1
        try:
            signal.alarm(60)
            ok = py_io_uring.read_files(paths) == datas
            names = [t.name for t in threading.enumerate()]
            code = 0 if ok and "py_io_uring-read" in names else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_the_worker_is_a_daemon(big):
    paths, _ = big
    py_io_uring.read_files(paths)
    worker = [t for t in threading.enumerate() if t.name == "py_io_uring-read"]
    assert len(worker) == 1 and worker[0].daemon
    assert sys.modules["py_io_uring._read_worker"]._worker.busy is False


@pytest.mark.parametrize("env, tuned", [
    ({}, False),
    ({"MALLOC_ARENA_MAX": "1"}, True),
    ({"MALLOC_TRIM_THRESHOLD_": "4294967295"}, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=4294967295"}, True),
    ({"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=512"}, False),
])
def test_malloc_tuned_by_the_environment(env, tuned):
    # a program that tunes malloc has made its choice: its calls stay in place
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", "from py_io_uring import _read_worker as w; "
                          "print(w._MALLOC_TUNED)"],
                         env=dict(base, PYTHONPATH=BUILD, **env), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tuned)


def test_an_interrupt_while_the_worker_waits(blocked_fifo, big, where, fds):
    fifo = blocked_fifo
    # a SIGINT that comes while the caller waits (here for an open that
    # blocks: a FIFO without a writer) raises KeyboardInterrupt in the
    # caller; the worker's loop stops at its next round, cancels the open
    # and closes every file before the call ends
    paths, _ = big
    interrupt = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    interrupt.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            py_io_uring.read_files(paths + [fifo])
        took = time.monotonic() - t0
    finally:
        interrupt.cancel()
        interrupt.join()
    assert took < 5, "the call waited for the writer: %.1f s" % took
    assert where == ["py_io_uring-read"]
    assert _read_worker._worker is not None and not _read_worker._worker.busy


def test_the_awaitable_form_uses_the_worker(big, where, fds):
    # aread_files() runs read_files() in a thread made for the call, which
    # keeps no freed memory either: its large batches go to the worker too
    paths, datas = big
    loop_threads = []

    async def main():
        return await py_io_uring.aread_files(paths, progress=lambda *a: loop_threads.append(
            threading.current_thread() is threading.main_thread()))
    assert asyncio.run(main()) == datas
    assert where == ["py_io_uring-read"]
    assert loop_threads and all(loop_threads)


def test_a_cancelled_await_stops_the_worker(blocked_fifo, big, where, fds):
    fifo = blocked_fifo
    paths, _ = big

    async def main():
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(py_io_uring.aread_files(paths + [fifo]), 0.5)
        return time.monotonic() - t0
    took = asyncio.run(main())
    assert took < 5, "the call waited for the writer: %.1f s" % took
    assert where == ["py_io_uring-read"]
    assert not _read_worker._worker.busy
    assert "py_io_uring-files" not in [t.name for t in threading.enumerate()]

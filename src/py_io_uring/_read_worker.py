"""read_files()'s C loop (read_many()) run for the main thread in one
long-lived worker thread, "py_io_uring-read", the caller waiting.

Why: each file's bytes are allocated by the thread that runs the loop, and
malloc (glibc) serves the main thread from its main arena, which gives the
pages of a freed batch back to the kernel, so the next batch has every page
faulted in and zeroed again (258 faults per file of 1 MiB, batch after
batch).  A long-lived thread's arena keeps much of what it frees, as a
thread pool's threads' do: measured 2026-12-07, 1,000 files of 1 MiB,
cache warm, the fourth batch in a process of its own
(bench/read_child.py): read_files() 2,400-2,960 files/s in the main thread,
4,090-4,390 in this worker, ThreadPoolExecutor(8) 3,150-4,050.  A thread
made per call does not keep it (258 faults a file, as the main thread).

Where the environment tunes malloc (MALLOC_* variables, or glibc.malloc.*
in GLIBC_TUNABLES) the program has made its own choice, and calls run in
place: told to keep freed memory, the main arena keeps all of it, more
than a worker's arena does (10,500 files/s in the main thread against
4,000 in a worker); with one arena, the worker shares the main one.

The hop costs about 100 us a call, and a batch of small files gains
nothing (their memory is reused either way; 256 files of 4 KiB took 14%
longer): only calls of at least MIN_FILES paths whose first file has at
least MIN_SIZE bytes take it (16 MiB or more: the hop is a few per cent of
the first batch), and only from the main thread (any other thread has an
arena of its own already) or from a thread that asked with hop_here():
the awaitable forms' helper thread (files_async.py), made per call.  The caller runs progress itself, with the latest counts
(never an older after a newer), and the last before the result; a
KeyboardInterrupt or an error from progress stops the loop at its next
round (its progress hook raises), waits for it to drain and close, and is
raised.  A second call while the worker is busy (from progress, or from
another thread) runs where it was made."""

import os
import queue
import threading
import typing as _t

from . import read_many as _read_many

MIN_FILES = 64
MIN_SIZE = 256 << 10

# (glibc reads these once, at start-up)
_MALLOC_TUNED = (any(k.startswith("MALLOC_") for k in os.environ) or
                 "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))

_PROGRESS = object()       # a queue item: counts are waiting in the call's box


class _Stopped(BaseException):
    """The caller gave up (interrupt, or its progress raised)."""


class _Worker(object):
    def __init__(self) -> None:
        self.jobs: "queue.SimpleQueue[_t.Callable[[], None]]" = queue.SimpleQueue()
        self.busy = False
        # a daemon: it holds nothing between calls (each call's ring is
        # drained and closed by read_many() before its result is posted)
        self.thread = threading.Thread(target=self._serve, name="py_io_uring-read", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            self.jobs.get()()


_worker: _t.Optional[_Worker] = None
_local = threading.local()
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # the worker thread is not in the child: the next call starts another
    global _worker, _lock
    _worker = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _take() -> _t.Optional[_Worker]:
    global _worker
    with _lock:
        if _worker is not None and (_worker.busy or not _worker.thread.is_alive()):
            return None
        if _worker is None:
            _worker = _Worker()
        _worker.busy = True
        return _worker


def hop_here() -> None:
    """This thread's large calls go to the worker too, as the main
    thread's: it is made for one call, and keeps no memory for the next."""
    _local.hop = True


def _large(path: _t.Any) -> bool:
    try:
        return os.stat(path).st_size >= MIN_SIZE
    except (OSError, TypeError, ValueError):
        return False     # the loop reports it, with the path, in place


def read_many(paths: _t.List[_t.Any], depth: int, errors: str,
              progress: _t.Optional[_t.Callable[..., object]]) -> _t.List[_t.Any]:
    """read_many(paths, depth, errors=, progress=), in the worker when the
    call is from the main thread and large enough, else here."""
    if (len(paths) < MIN_FILES or _MALLOC_TUNED or
            (threading.current_thread() is not threading.main_thread() and
             not getattr(_local, "hop", False)) or not _large(paths[0])):
        return _read_many(paths, depth, errors=errors, progress=progress)
    worker = _take()
    if worker is None:
        return _read_many(paths, depth, errors=errors, progress=progress)
    try:
        return _call(worker, paths, depth, errors, progress)
    finally:
        worker.busy = False


def _call(worker: _Worker, paths: _t.List[_t.Any], depth: int, errors: str,
          progress: _t.Optional[_t.Callable[..., object]]) -> _t.List[_t.Any]:
    box: "queue.SimpleQueue[_t.Any]" = queue.SimpleQueue()
    stop = threading.Event()
    counts_lock = threading.Lock()
    counts: _t.List[_t.Any] = [None]

    def hook(*args: object) -> None:
        # in the worker, at every round of the C loop: its way to stop
        if stop.is_set():
            raise _Stopped()
        if progress is None:
            return
        with counts_lock:
            waiting = counts[0] is not None
            counts[0] = args
        if not waiting:
            box.put(_PROGRESS)

    def job() -> None:
        done: _t.Tuple[_t.Any, _t.Optional[BaseException]]
        try:
            done = (_read_many(paths, depth, errors=errors, progress=hook), None)
        except BaseException as e:
            done = (None, e)
        box.put(done)

    worker.jobs.put(job)
    try:
        while True:
            item = box.get()
            if item is not _PROGRESS:
                break
            with counts_lock:
                args, counts[0] = counts[0], None
            if args is not None:
                _t.cast(_t.Callable[..., object], progress)(*args)
    except BaseException:
        stop.set()
        while box.get() is _PROGRESS:   # nothing in flight or open after
            pass
        raise
    result, exc = item
    if exc is not None:
        try:
            raise exc
        finally:
            exc = item = None   # no cycle through this frame
    return _t.cast(_t.List[_t.Any], result)

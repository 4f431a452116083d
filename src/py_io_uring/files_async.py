"""The bulk file helpers of files.py, awaitable: `await aread_files(paths)`,
`aiter_read_files`, `acopyfile`, `acopy2`, `acopytree`, on asyncio (any
loop: asyncio's own, py_io_uring's, uvloop) and on trio (and so on anyio
over either).

Each call runs the sync helper in a thread of its own, where its ring is:
the whole per-file loop stays in C or in one WorkQueue (a cached 4 KiB file
costs microseconds there, against the tens an awaited op per step costs),
and the event loop only wakes for the result and for progress.  A thread
per call, not a pool: the helper's ring is single-issuer, and a call must
never wait behind another for a free worker.

Cancelling the await stops the helper at its next round of completions (a
read's or a copy's latency): it drains what is in flight and closes what it
opened, as on any error, and only then does the await end with the
cancellation, so nothing runs on behind the caller.  progress callbacks run
on the event loop's thread, coalesced (a busy loop sees the latest counts,
not every one); one that raises ends the call with its exception, as in the
sync helpers.  Callables that shape a copy (copytree's ignore and
copy_function) run in the helper's thread, as they run inside the helper in
the sync form."""

import collections
import os
import threading
# typing's names under a private alias, as loop.py does
import typing as _t

from . import files as _files
from . import _read_worker
from ._aiolib import current_library

if _t.TYPE_CHECKING:
    import hashlib

    from . import _StrOrBytesPath

__all__ = ["aread_files", "aiter_read_files", "ahash_files", "acopyfile", "acopy2", "acopytree"]

_P = _t.TypeVar("_P", bound="_StrOrBytesPath")
_T = _t.TypeVar("_T")
_D = _t.TypeVar("_D")      # a file's data: bytes, or bytes or OSError
_Progress = _t.Optional[_t.Callable[[int, int, int, int], object]]
_ReadProgress = _t.Optional[_t.Callable[[int, None, int, int], object]]


# ------------------------------------------------------ the event loop's side

class _AsyncioHub(object):
    """asyncio's ways to hand work to the loop's thread and to wait."""

    def __init__(self) -> None:
        import asyncio
        self.asyncio: _t.Any = asyncio
        self.loop = asyncio.get_running_loop()   # RuntimeError outside a loop
        self.Cancelled: _t.Any = asyncio.CancelledError

    def call_soon(self, fn: _t.Callable[..., object], *args: object) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:    # the loop is closed: nobody waits any more
            pass

    def event(self) -> _t.Any:
        return self.asyncio.Event()

    async def wait_shielded(self, ev: _t.Any) -> None:
        """ev.wait() that a cancellation does not end."""
        waiter = self.asyncio.ensure_future(ev.wait())
        while not waiter.done():
            try:
                await self.asyncio.shield(waiter)
            except self.asyncio.CancelledError:
                pass        # cancelled again: the helper is stopping already


class _TrioHub(object):
    """trio's: the run's token and a shielded cancel scope."""

    def __init__(self) -> None:
        import trio
        self.trio: _t.Any = trio
        self.token = trio.lowlevel.current_trio_token()
        self.Cancelled: _t.Any = trio.Cancelled

    def call_soon(self, fn: _t.Callable[..., object], *args: object) -> None:
        try:
            self.token.run_sync_soon(fn, *args)
        except self.trio.RunFinishedError:
            pass

    def event(self) -> _t.Any:
        return self.trio.Event()

    async def wait_shielded(self, ev: _t.Any) -> None:
        with self.trio.CancelScope(shield=True):
            await ev.wait()


def _hub() -> _t.Union[_AsyncioHub, _TrioHub]:
    return _TrioHub() if current_library() == "trio" else _AsyncioHub()


class _Reporter(object):
    """The progress hook the helper calls in its thread: raises _Stopped once
    the await is cancelled, and hands the counts to progress on the loop's
    thread, one call in flight at a time with the latest counts."""

    def __init__(self, hub: _t.Any, progress: _t.Optional[_t.Callable[..., object]],
                 stop: threading.Event, failed: _t.List[BaseException]) -> None:
        self.hub, self.progress, self.stop, self.failed = hub, progress, stop, failed
        self.lock = threading.Lock()
        self.args: _t.Optional[_t.Tuple[object, ...]] = None
        self.sent = False

    def __call__(self, *args: object) -> None:
        if self.stop.is_set():
            raise _files._Stopped()
        if self.progress is None:
            return
        with self.lock:
            self.args = args
            if self.sent:
                return
            self.sent = True
        self.hub.call_soon(self._deliver)

    def _deliver(self) -> None:
        with self.lock:
            args, self.args, self.sent = self.args, None, False
        if args is None or self.failed:
            return
        try:
            _t.cast(_t.Callable[..., object], self.progress)(*args)
        except Exception as e:
            self.failed.append(e)
            self.stop.set()


async def _run(call: _t.Callable[[_t.Optional[_Reporter]], _T],
               progress: _t.Optional[_t.Callable[..., object]], always_hook: bool) -> _T:
    """call(hook) in a thread of its own; its result or its error.  hook is
    the _Reporter (None for a copy without progress: a hook would make the
    copies stat every file up front for the byte total)."""
    hub = _hub()
    stop = threading.Event()
    done = hub.event()
    failed: _t.List[BaseException] = []
    hook = _Reporter(hub, progress, stop, failed) if progress is not None or always_hook else None
    box: _t.List[_t.Tuple[_t.Any, _t.Optional[BaseException]]] = []

    def work() -> None:
        _files._tls.stop = stop
        _read_worker.hop_here()   # (read_files() only: a large batch's reads in the worker)
        try:
            box.append((call(hook), None))
        except BaseException as e:
            box.append((None, e))
        finally:
            hub.call_soon(done.set)

    # not a daemon: at exit the interpreter waits for the helper's drain
    thread = threading.Thread(target=work, name="py_io_uring-files")
    thread.start()
    try:
        await done.wait()
    except hub.Cancelled:
        stop.set()
        await hub.wait_shielded(done)
        thread.join()
        raise
    # (done is set as the thread's last act: this join is its return)
    thread.join()
    result, exc = box.pop()
    if failed:
        raise failed.pop()
    if exc is not None:
        try:
            raise exc
        finally:
            exc = None      # no cycle through this frame
    return _t.cast(_T, result)


# ------------------------------------------------------------- the helpers

@_t.overload
async def aread_files(paths: "_t.Iterable[_StrOrBytesPath]", *, depth: int = 64,
                      errors: _t.Literal["raise"] = "raise", direct: bool = False,
                      progress: _ReadProgress = None) -> _t.List[bytes]: ...
@_t.overload  # noqa: E302
async def aread_files(paths: "_t.Iterable[_StrOrBytesPath]", *, depth: int = 64, errors: str,
                      direct: bool = False,
                      progress: _ReadProgress = None) -> _t.List[_t.Union[bytes, OSError]]: ...
async def aread_files(paths: "_t.Iterable[_StrOrBytesPath]", *, depth: int = 64,  # noqa: E302
                      errors: str = "raise", direct: bool = False,
                      progress: _ReadProgress = None) -> _t.List[_t.Any]:
    """read_files(), awaitable: the contents of every file in paths, in
    order, as bytes (errors="return": the exception in a failed file's
    place).  progress(bytes_done, None, files_done, files_total) runs on
    the event loop's thread."""
    _files._check_errors(errors)
    paths = _files._path_list(paths, "aread_files")
    return await _run(lambda hook: _files.read_files(paths, depth=depth, errors=errors,
                                                     direct=direct, progress=hook),
                      progress, True)


@_t.overload
async def ahash_files(paths: "_t.Iterable[_StrOrBytesPath]", digest: _files._Digest = "sha256", *,
                      depth: int = 64, errors: _t.Literal["raise"] = "raise",
                      progress: _ReadProgress = None) -> "_t.List[hashlib._Hash]": ...
@_t.overload  # noqa: E302
async def ahash_files(paths: "_t.Iterable[_StrOrBytesPath]", digest: _files._Digest = "sha256", *,
                      depth: int = 64, errors: str,
                      progress: _ReadProgress = None) -> "_t.List[_t.Union[hashlib._Hash, OSError]]": ...
async def ahash_files(paths: "_t.Iterable[_StrOrBytesPath]", digest: _files._Digest = "sha256",  # noqa: E302
                      *, depth: int = 64, errors: str = "raise",
                      progress: _ReadProgress = None) -> _t.List[_t.Any]:
    """hash_files(), awaitable: a hash object per file, in order, reading
    and hashing in a thread of its own; progress runs on the event loop's
    thread."""
    _files._check_errors(errors)
    paths = _files._path_list(paths, "ahash_files")
    return await _run(lambda hook: _files.hash_files(paths, digest, depth=depth, errors=errors,
                                                     progress=hook),
                      progress, True)


async def acopyfile(src: "_StrOrBytesPath", dst: "_t.Union[_t.AnyStr, os.PathLike[_t.AnyStr]]", *,
                    follow_symlinks: bool = True, depth: int = 8, progress: _Progress = None,
                    o_direct: bool = False) -> _t.AnyStr:
    """copyfile(), awaitable (shutil.copyfile's semantics and errors).
    Returns dst."""
    return await _run(lambda hook: _files._copyfile(src, dst, follow_symlinks, depth, hook,
                                                    o_direct),
                      progress, False)


@_t.overload
async def acopy2(src: "_StrOrBytesPath", dst: _t.AnyStr, *, follow_symlinks: bool = True,
                 depth: int = 8, progress: _Progress = None) -> _t.AnyStr: ...
@_t.overload  # noqa: E302
async def acopy2(src: "_StrOrBytesPath", dst: "os.PathLike[_t.AnyStr]", *,
                 follow_symlinks: bool = True, depth: int = 8,
                 progress: _Progress = None) -> "_t.Union[os.PathLike[_t.AnyStr], _t.AnyStr]": ...
async def acopy2(src: "_StrOrBytesPath", dst: _t.Any, *, follow_symlinks: bool = True,  # noqa: E302
                 depth: int = 8, progress: _Progress = None) -> _t.Any:
    """copy2(), awaitable: the data, then mode and times.  Returns the path
    of the copy."""
    return await _run(lambda hook: _files._copy2(src, dst, follow_symlinks, depth, hook),
                      progress, False)


async def acopytree(src: "_StrOrBytesPath", dst: _P, symlinks: bool = False,
                    ignore: _t.Optional[_t.Callable[[str, _t.List[str]], _t.Iterable[str]]] = None,
                    copy_function: _t.Callable[[str, str], object] = _files.copy2,
                    ignore_dangling_symlinks: bool = False, dirs_exist_ok: bool = False, *,
                    depth: int = 64, progress: _Progress = None) -> _P:
    """copytree(), awaitable (shutil.copytree's semantics; errors raised
    together as shutil.Error).  ignore and copy_function run in the
    helper's thread.  Returns dst."""
    return await _run(lambda hook: _files._copytree(src, dst, symlinks, ignore, copy_function,
                                                    ignore_dangling_symlinks, dirs_exist_ok,
                                                    depth, hook),
                      progress, False)


# ------------------------------------------------------ the iterator form

class _ReadAhead(object):
    """What the iterator and its helper thread share.  The thread holds this,
    never the iterator, so that an iterator dropped unclosed is collected
    and can stop it.  Items go to the loop in lists: a whole batch of
    read_many() at once (iter_read_files()'s usual form: one hand-over to
    the loop and one wait for room per batch, not per file), or one file
    at a time from the WorkQueue loop (direct=True)."""

    def __init__(self, hub: _t.Any, depth: int, direct: bool) -> None:
        self.hub = hub
        self.items: _t.Deque[_t.List[_t.Any]] = collections.deque()
        # lists handed over and not yet all taken by the loop: depth files,
        # or one batch (the thread reads the next meanwhile)
        self.space = threading.Semaphore(depth if direct else 1)
        self.cur: _t.List[_t.Any] = []  # the list the loop takes from
        self.pos = 0
        self.held = False               # cur holds a unit of space
        self.stop = threading.Event()
        self.more = hub.event()         # set when an item or the end comes
        self.ended = hub.event()        # set when the thread is done
        self.error: _t.Optional[BaseException] = None
        self.finished = False
        self.thread: _t.Optional[threading.Thread] = None

    def work(self, paths: _t.List[_t.Any], depth: int, errors: str, direct: bool) -> None:
        # (the stop is looked at here, between the lists it hands over, and
        # by read_many() in a batch, through the thread's checkpoint)
        _files._tls.stop = self.stop
        # (generators: typed as iterators for their callers)
        if direct:
            gen = _t.cast("_t.Generator[_t.List[_t.Any], None, None]",
                          ([item] for item in _files.iter_read_files(
                              paths, depth=depth, errors=errors, direct=True)))
        else:
            gen = _t.cast("_t.Generator[_t.List[_t.Any], None, None]",
                          _files._batches(paths, depth, errors))
        error = None
        try:
            for items in gen:
                self.space.acquire()
                if self.stop.is_set():
                    break
                self.hub.call_soon(self.push, items)
        except BaseException as e:
            error = e
        finally:
            try:
                gen.close()     # drains and closes what is in flight
            except BaseException as e:
                error = error or e
            self.hub.call_soon(self.end, error)

    def take(self) -> _t.Optional[_t.Tuple[_t.Any, _t.Any]]:
        """The next item, on the loop's thread; None when none is there."""
        while self.pos >= len(self.cur):
            if self.held:
                self.held = False
                self.space.release()    # the list before is all taken
            if not self.items:
                return None
            self.cur, self.pos, self.held = self.items.popleft(), 0, True
        item = self.cur[self.pos]
        self.cur[self.pos] = None       # the caller's alone once taken
        self.pos += 1
        return _t.cast(_t.Tuple[_t.Any, _t.Any], item)

    def push(self, items: _t.List[_t.Any]) -> None:
        self.items.append(items)
        self.more.set()

    def end(self, error: _t.Optional[BaseException]) -> None:
        if self.thread is not None:
            self.thread.join()  # (end is its last act: this is its return)
        self.error = error
        self.finished = True
        self.more.set()
        self.ended.set()

    def halt(self) -> None:
        self.stop.set()
        self.space.release()      # a thread waiting for room sees the stop


class aiter_read_files(_t.Generic[_P, _D]):
    """iter_read_files(), awaitable: `async for path, data in
    aiter_read_files(paths)` gets each file in the paths' order, read a
    batch at a time with at most one batch read ahead of the loop (with
    direct=True: as each completes, at most depth files ahead).  Ending
    early: `async with` (or aclose()) stops the helper and waits for its
    drain; an iterator dropped unclosed stops it too, without waiting."""

    @_t.overload
    def __init__(self: "aiter_read_files[_P, bytes]", paths: _t.Iterable[_P], *, depth: int = 64,
                 errors: _t.Literal["raise"] = "raise", direct: bool = False) -> None: ...
    @_t.overload  # noqa: E301
    def __init__(self: "aiter_read_files[_P, _t.Union[bytes, OSError]]", paths: _t.Iterable[_P], *,
                 depth: int = 64, errors: str, direct: bool = False) -> None: ...
    def __init__(self, paths: _t.Iterable[_P], *, depth: int = 64,  # noqa: E301
                 errors: str = "raise", direct: bool = False) -> None:
        _files._check_errors(errors)
        depth = int(depth)
        if depth < 1:
            raise ValueError("depth must be at least 1, not %d" % depth)
        self._paths = _files._path_list(paths, "aiter_read_files")
        self._args = (depth, errors, direct)
        self._s: _t.Optional[_ReadAhead] = None
        self._closed = False

    def __aiter__(self) -> "aiter_read_files[_P, _D]":
        return self

    async def __anext__(self) -> _t.Tuple[_P, _D]:
        s = self._s
        if s is None:
            if self._closed:
                raise StopAsyncIteration
            depth, errors, direct = self._args
            s = self._s = _ReadAhead(_hub(), depth, direct)
            s.thread = threading.Thread(target=s.work, args=(self._paths, depth, errors, direct),
                                        name="py_io_uring-files")
            s.thread.start()
        while True:
            item = s.take() if not s.stop.is_set() else None
            if item is not None:
                return _t.cast(_t.Tuple[_P, _D], item)
            if s.finished or s.stop.is_set():
                error, s.error = s.error, None
                if error is not None and not s.stop.is_set():
                    raise error
                raise StopAsyncIteration
            s.more = s.hub.event()
            await s.more.wait()

    async def aclose(self) -> None:
        """Stop reading ahead; return once nothing is in flight or open."""
        self._closed = True
        s = self._s
        if s is not None:
            s.halt()
            await s.hub.wait_shielded(s.ended)
            s.items.clear()
            s.cur, s.held = [], False

    async def __aenter__(self) -> "aiter_read_files[_P, _D]":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # dropped unclosed: the thread stops at its next completion (at once
        # if it waits for room), drains and ends on its own
        s = getattr(self, "_s", None)
        if s is not None and not s.stop.is_set():
            s.halt()

"""py_io_uring.tempfile: tempfile's temporary files and directories as
async objects, in the shape of aiofiles.tempfile (`async with
TemporaryFile() as f:`, `f = await NamedTemporaryFile(...)`, `async with
TemporaryDirectory() as name:`), on the ring py_io_uring.open() takes when
none is given (afile.py), under asyncio, the EventLoop or trio.

The files are made by the ring's own operations, as tempfile makes them:
TemporaryFile an O_TMPFILE open of the directory (no name at all; where
the file system refuses one, a named file unlinked at once), the named
ones an O_CREAT|O_EXCL open of a random name, tried again on EEXIST; then
each is an AsyncFile, every read and write an io_uring operation.
SpooledTemporaryFile keeps its data in memory (no I/O at all) until it
grows past max_size, then rolls over to a TemporaryFile.
TemporaryDirectory is tempfile's own, made and removed in a worker thread
as aiofiles does: io_uring has no operation that reads a directory, and a
tree's removal needs one."""

import errno
import functools
import io
import os
import random
import tempfile as _tempfile
# typing's names under a private alias, as afile.py does: module attributes
# are public names stubtest checks
import typing as _t

from . import AT_FDCWD
from ._aiolib import current_library, run_in_thread as _in_thread
from .afile import AsyncFile, _default_ring, _open, _parse_mode

if _t.TYPE_CHECKING:
    from . import AsyncRing as _AsyncRing, _ReadableBuffer
    from .afile import _OpenBinaryMode, _OpenTextMode
    from .trio import TrioRing as _TrioRing

    _Ring = _t.Union[_AsyncRing, _TrioRing]
    _StrPath = _t.Union[str, "os.PathLike[str]"]
    _BytesPath = _t.Union[bytes, "os.PathLike[bytes]"]

__all__ = ["TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory",
           "TemporaryFileOpener", "AsyncNamedTemporaryFile", "AsyncSpooledTemporaryFile",
           "AsyncTemporaryDirectory", "TemporaryDirectoryOpener"]

_F = _t.TypeVar("_F")
_T = _t.TypeVar("_T")

# as tempfile's: O_EXCL so that a name someone else made is never taken
# over, O_NOFOLLOW so that a planted symlink is not followed, mode 0o600
_CREATE = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
           | getattr(os, "O_CLOEXEC", 0))
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_tmpfile_works = bool(_O_TMPFILE)   # False once a kernel took it for O_DIRECTORY
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_names = random.SystemRandom()      # (os.urandom: a forked child draws its own)


class TemporaryFileOpener(_t.Generic[_F]):
    """What TemporaryFile() and NamedTemporaryFile() return, as
    aiofiles.tempfile's do: awaited, the file; entered (`async with`), the
    same file, closed (and for a named one removed) on the way out.  Each
    makes one file, at the await."""

    __slots__ = ("_start", "_file", "_used")

    def __init__(self, start: "_t.Callable[[], _t.Awaitable[_F]]") -> None:
        self._start = start
        self._file: "_t.Optional[_F]" = None
        self._used = False

    async def _make(self) -> _F:
        if self._used:
            raise RuntimeError("this temporary file was made already: call again "
                               "for another one")
        self._used = True
        return await self._start()

    def __await__(self) -> "_t.Generator[_t.Any, None, _F]":
        return self._make().__await__()

    async def __aenter__(self) -> _F:
        self._file = await self._make()
        return self._file

    async def __aexit__(self, *exc_info: object) -> None:
        if self._file is not None:
            await self._file.__aexit__(*exc_info)       # type: ignore[attr-defined]


def _parts(prefix: _t.Any, suffix: _t.Any, dir: _t.Any) -> "_t.Tuple[_t.Any, _t.Any, _t.Any]":
    """prefix, suffix and dir as tempfile takes them: all str or all bytes
    (a path-like dir as its fspath), the defaults of the same type;
    dir None is tempfile.gettempdir() (the caller finds it first)."""
    if dir is not None:
        dir = os.fspath(dir)
    kinds = {type(x) for x in (prefix, suffix, dir) if x is not None}
    if len(kinds) > 1:
        raise TypeError("Can't mix bytes and non-bytes in path components.")
    if kinds and not kinds <= {str, bytes}:
        raise TypeError("expected str, bytes or os.PathLike object, not %s"
                        % kinds.pop().__name__)
    as_bytes = kinds == {bytes}
    if suffix is None:
        suffix = b"" if as_bytes else ""
    if prefix is None:
        prefix = os.fsencode(_tempfile.template) if as_bytes else _tempfile.template
    return prefix, suffix, as_bytes


async def _tempdir(dir: _t.Any, as_bytes: bool) -> _t.Any:
    if dir is not None:
        return os.fspath(dir)
    # the first gettempdir() of a process tries each candidate directory
    # by writing a file there: in a thread; later ones read its cache
    if _tempfile.tempdir is None:
        await _in_thread(_tempfile.gettempdir)
    return _tempfile.gettempdirb() if as_bytes else _tempfile.gettempdir()


async def _make_named(ring: _t.Any, prefix: _t.Any, suffix: _t.Any, dir: _t.Any,
                      as_bytes: bool, make: str, mode: int) -> "_t.Tuple[int, _t.Any]":
    """(result, absolute name) of ring.<make> of a new random name in
    dir, as tempfile's mkstemp()/mkdtemp() (openat with _CREATE, or
    mkdirat), another name on EEXIST, up to tempfile.TMP_MAX names."""
    dir = await _tempdir(dir, as_bytes)
    for _ in range(_tempfile.TMP_MAX):
        name = "".join(_names.choice(_NAME_CHARS) for _ in range(8))
        path = os.path.join(dir, prefix + (os.fsencode(name) if as_bytes else name) + suffix)
        try:
            if make == "openat":
                res = await ring.openat(AT_FDCWD, path, _CREATE, mode)
            else:
                res = await ring.mkdirat(AT_FDCWD, path, mode)
        except FileExistsError:
            continue
        except OSError as e:
            raise OSError(e.errno, e.strerror, path) from None
        return res, os.path.abspath(path)
    raise FileExistsError(errno.EEXIST, "No usable temporary file name found")


class _RingUse(object):
    """The ring a call runs on, and the shared one released after
    (`async with _RingUse(ring) as use:`)."""

    def __init__(self, ring: _t.Any) -> None:
        self.ring = ring
        self.shared: _t.Any = None

    async def __aenter__(self) -> _t.Any:
        if self.ring is None:
            self.ring, self.shared = _default_ring()
        return self.ring

    async def __aexit__(self, *exc_info: object) -> None:
        if self.shared is not None:
            self.shared.release()


async def _shielded(call: "_t.Callable[[], _t.Awaitable[_T]]") -> _T:
    """await call() even when the caller is being cancelled, as the
    files' close() is: under trio a cancelled scope would not even submit
    the operation (afile._close_shielded)."""
    if current_library() == "trio":
        import trio
        with trio.CancelScope(shield=True):
            return await call()
    return await call()


async def _wrap(ring: _t.Any, fd: int, mode: str, encoding: _t.Optional[str],
                errors: _t.Optional[str], newline: _t.Optional[str],
                cls: "_t.Type[AsyncFile[_t.Any]]" = AsyncFile) -> "AsyncFile[_t.Any]":
    """The AsyncFile of a new temporary file's fd (closed on failure)."""
    try:
        return await _open(fd, mode, encoding, errors, newline, True, None, ring, cls)
    except BaseException:
        os.close(fd)
        raise


def _check_mode(mode: str, encoding: _t.Optional[str], errors: _t.Optional[str],
                newline: _t.Optional[str]) -> None:
    """open()'s checks of the arguments, before any file is made."""
    binary = _parse_mode(mode)[3]
    if binary and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
    if newline not in (None, "", "\n", "\r", "\r\n"):
        raise ValueError("illegal newline value: %r" % (newline,))


# -- TemporaryFile

@_t.overload
def TemporaryFile(mode: "_OpenBinaryMode" = "w+b", buffering: int = -1,
                  encoding: None = None, newline: None = None,
                  suffix: "_t.Optional[_t.AnyStr]" = None, prefix: "_t.Optional[_t.AnyStr]" = None,
                  dir: "_t.Union[_t.AnyStr, os.PathLike[_t.AnyStr], None]" = None, *,
                  errors: None = None, ring: "_t.Optional[_Ring]" = None
                  ) -> "TemporaryFileOpener[AsyncFile[bytes]]": ...
@_t.overload  # noqa: E302
def TemporaryFile(mode: "_OpenTextMode", buffering: int = -1,
                  encoding: _t.Optional[str] = None, newline: _t.Optional[str] = None,
                  suffix: "_t.Optional[_t.AnyStr]" = None, prefix: "_t.Optional[_t.AnyStr]" = None,
                  dir: "_t.Union[_t.AnyStr, os.PathLike[_t.AnyStr], None]" = None, *,
                  errors: _t.Optional[str] = None, ring: "_t.Optional[_Ring]" = None
                  ) -> "TemporaryFileOpener[AsyncFile[str]]": ...
def TemporaryFile(mode: str = "w+b", buffering: int = -1,  # noqa: E302
                  encoding: _t.Optional[str] = None, newline: _t.Optional[str] = None,
                  suffix: _t.Any = None, prefix: _t.Any = None, dir: _t.Any = None, *,
                  errors: _t.Optional[str] = None, ring: "_t.Optional[_Ring]" = None
                  ) -> "TemporaryFileOpener[AsyncFile[_t.Any]]":
    """tempfile.TemporaryFile(): a file with no name (its `name` is its
    descriptor), gone when closed; the same arguments, and errors= as
    open() takes it.  ring: as py_io_uring.open()'s."""
    return TemporaryFileOpener(functools.partial(
        _temporary_file, mode, encoding, errors, newline, suffix, prefix, dir, ring))


async def _temporary_file(mode: str, encoding: _t.Optional[str], errors: _t.Optional[str],
                          newline: _t.Optional[str], suffix: _t.Any, prefix: _t.Any,
                          dir: _t.Any, ring: _t.Any) -> "AsyncFile[_t.Any]":
    global _tmpfile_works
    _check_mode(mode, encoding, errors, newline)
    prefix, suffix, as_bytes = _parts(prefix, suffix, dir)
    async with _RingUse(ring) as use:
        if _tmpfile_works:
            where = await _tempdir(dir, as_bytes)
            try:
                fd = await use.openat(AT_FDCWD, where, (_CREATE | _O_TMPFILE) & ~os.O_CREAT,
                                      0o600)
            except IsADirectoryError:
                # a kernel older than O_TMPFILE takes it for O_DIRECTORY
                _tmpfile_works = False
            except OSError:
                pass            # this file system has none: a name, as tempfile
            else:
                return await _wrap(ring, fd, mode, encoding, errors, newline)
        fd, name = await _make_named(use, prefix, suffix, dir, as_bytes, "openat", 0o600)
        try:
            await _shielded(functools.partial(use.unlinkat, AT_FDCWD, name, 0))
        except BaseException:
            os.close(fd)
            raise
        return await _wrap(ring, fd, mode, encoding, errors, newline)


# -- NamedTemporaryFile

class AsyncNamedTemporaryFile(AsyncFile[_t.AnyStr]):
    """What NamedTemporaryFile() gives: an AsyncFile whose `name` is the
    file's absolute path, removed as tempfile removes it: with delete
    (the default), at close() when delete_on_close (the default), else
    when the `async with` block is left; a file dropped unclosed is
    removed, with the ResourceWarning of an unclosed file."""

    name: str       # (bytes when the prefix, suffix or dir were: typed str, as typeshed's)
    delete: bool
    delete_on_close: bool
    _given_ring: _t.Any
    _removed: bool

    async def _remove(self) -> None:
        if self._removed:
            return
        self._removed = True
        ring = self._ring if self._fd is not None else self._given_ring

        async def unlink() -> None:
            try:
                async with _RingUse(ring) as use:
                    await use.unlinkat(AT_FDCWD, self.name, 0)
            except FileNotFoundError:
                pass        # (removed by someone else: as tempfile)
        await _shielded(unlink)

    async def close(self) -> None:
        """Close the file, and with delete and delete_on_close remove it."""
        try:
            if self.delete and self.delete_on_close and self._fd is not None:
                await self._remove()
        finally:
            await super().close()

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.delete:
                await self._remove()
        finally:
            await super().close()

    def __del__(self) -> None:
        # as tempfile's finalizer: the file goes with the object
        if getattr(self, "delete", False) and not getattr(self, "_removed", True):
            self._removed = True
            try:
                os.unlink(self.name)
            except OSError:
                pass
        super().__del__()

    def __repr__(self) -> str:
        return "<py_io_uring.tempfile.AsyncNamedTemporaryFile name=%r mode=%r%s>" % (
            self.name, self.mode, " closed" if self._fd is None else "")


@_t.overload
def NamedTemporaryFile(mode: "_OpenBinaryMode" = "w+b", buffering: int = -1,
                       encoding: None = None, newline: None = None,
                       suffix: "_t.Optional[str]" = None, prefix: "_t.Optional[str]" = None,
                       dir: "_t.Optional[_StrPath]" = None, delete: bool = True, *,
                       errors: None = None, delete_on_close: bool = True,
                       ring: "_t.Optional[_Ring]" = None
                       ) -> "TemporaryFileOpener[AsyncNamedTemporaryFile[bytes]]": ...
@_t.overload  # noqa: E302
def NamedTemporaryFile(mode: "_OpenTextMode", buffering: int = -1,
                       encoding: _t.Optional[str] = None, newline: _t.Optional[str] = None,
                       suffix: "_t.Optional[str]" = None, prefix: "_t.Optional[str]" = None,
                       dir: "_t.Optional[_StrPath]" = None, delete: bool = True, *,
                       errors: _t.Optional[str] = None, delete_on_close: bool = True,
                       ring: "_t.Optional[_Ring]" = None
                       ) -> "TemporaryFileOpener[AsyncNamedTemporaryFile[str]]": ...
def NamedTemporaryFile(mode: str = "w+b", buffering: int = -1,  # noqa: E302
                       encoding: _t.Optional[str] = None, newline: _t.Optional[str] = None,
                       suffix: _t.Any = None, prefix: _t.Any = None, dir: _t.Any = None,
                       delete: bool = True, *, errors: _t.Optional[str] = None,
                       delete_on_close: bool = True, ring: "_t.Optional[_Ring]" = None
                       ) -> "TemporaryFileOpener[AsyncNamedTemporaryFile[_t.Any]]":
    """tempfile.NamedTemporaryFile() (with 3.12's delete_on_close on
    every Python): a file made under a new random name in dir (mode
    0o600); `name` is its absolute path.  ring: as py_io_uring.open()'s."""
    return TemporaryFileOpener(functools.partial(
        _named_temporary_file, mode, encoding, errors, newline, suffix, prefix, dir,
        bool(delete), bool(delete_on_close), ring))


async def _named_temporary_file(mode: str, encoding: _t.Optional[str], errors: _t.Optional[str],
                                newline: _t.Optional[str], suffix: _t.Any, prefix: _t.Any,
                                dir: _t.Any, delete: bool, delete_on_close: bool,
                                ring: _t.Any) -> "AsyncNamedTemporaryFile[_t.Any]":
    _check_mode(mode, encoding, errors, newline)
    prefix, suffix, as_bytes = _parts(prefix, suffix, dir)
    async with _RingUse(ring) as use:
        fd, name = await _make_named(use, prefix, suffix, dir, as_bytes, "openat", 0o600)
        try:
            f = _t.cast("AsyncNamedTemporaryFile[_t.Any]", await _wrap(
                ring, fd, mode, encoding, errors, newline, AsyncNamedTemporaryFile))
        except BaseException:
            # as tempfile: a file that could not be opened is not left
            await _shielded(functools.partial(use.unlinkat, AT_FDCWD, name, 0))
            raise
    f.name = name
    f.delete, f.delete_on_close = delete, delete_on_close
    f._given_ring, f._removed = ring, False
    return f


# -- SpooledTemporaryFile

_MASK64 = (1 << 64) - 1


class AsyncSpooledTemporaryFile(_t.Generic[_t.AnyStr]):
    """What SpooledTemporaryFile() gives: tempfile's spooled file, whose
    data stays in memory (an io.BytesIO, or a TextIOWrapper over one, as
    tempfile's) until it grows past max_size, fileno() is asked for, or
    rollover() is called; then it is a TemporaryFile's AsyncFile, every
    call an io_uring operation.  aiofiles.tempfile's methods: read,
    readline, readlines, write, writelines, seek, tell, truncate, flush,
    fileno, rollover, isatty, close, and async iteration over lines."""

    def __init__(self, max_size: int, mode: str, encoding: _t.Optional[str],
                 errors: _t.Optional[str], newline: _t.Optional[str], suffix: _t.Any,
                 prefix: _t.Any, dir: _t.Any, ring: _t.Any) -> None:
        self._max_size = max_size
        self._args = (mode, encoding, errors, newline, suffix, prefix, dir, ring)
        self._mode = mode
        self._memory: _t.Any
        if "b" in mode:
            self._memory = io.BytesIO()
        else:
            self._memory = io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors=errors,
                                            newline=newline)
        self._file: "_t.Optional[AsyncFile[_t.Any]]" = None

    @property
    def rolled(self) -> bool:
        """True once the data is in a file (tempfile's `_rolled`)."""
        return self._file is not None

    async def rollover(self) -> None:
        """Move the data to a TemporaryFile, at the same position; again
        does nothing."""
        if self._file is not None:
            return
        mem = self._memory
        if mem.closed:
            raise ValueError("I/O operation on closed file.")
        mode, encoding, errors, newline, suffix, prefix, dir, ring = self._args
        binary = "b" in mode
        f = await _temporary_file(mode, encoding, errors, newline, suffix, prefix, dir, ring)
        try:
            pos = mem.tell()
            if not binary:
                mem.flush()
            data = memoryview(mem.getvalue() if binary else mem.buffer.getvalue())
            done = 0
            while done < len(data):
                done += await f._ring.write(f.fileno(), data[done:], done)
            # a TextIOWrapper's position is a cookie: the byte offset where
            # its decoder starts clean, and characters to skip after it
            # (the same characters a read from that offset skips)
            await f.seek(pos & _MASK64)
            if not binary and pos >> 192 & _MASK64 and f.readable():
                await f.read(pos >> 192 & _MASK64)
        except BaseException:
            await f.close()
            raise
        mem.close()
        self._file = f

    async def _check_size(self) -> None:
        if self._file is None and self._max_size and self._memory.tell() > self._max_size:
            await self.rollover()

    @property
    def closed(self) -> bool:
        return self._file.closed if self._file is not None else bool(self._memory.closed)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def name(self) -> _t.Optional[int]:
        """None in memory; the TemporaryFile's descriptor once rolled over."""
        return _t.cast(int, self._file.name) if self._file is not None else None

    @property
    def encoding(self) -> _t.Optional[str]:
        if self._file is not None:
            return self._file.encoding
        return _t.cast(_t.Optional[str], getattr(self._memory, "encoding", None))

    @property
    def errors(self) -> _t.Optional[str]:
        if self._file is not None:
            return _t.cast(_t.Optional[str], getattr(self._file, "errors", None))
        return _t.cast(_t.Optional[str], getattr(self._memory, "errors", None))

    @property
    def newlines(self) -> _t.Any:
        """The memory file's newlines (None once rolled over: the
        AsyncFile does not count them)."""
        return None if self._file is not None else getattr(self._memory, "newlines", None)

    async def fileno(self) -> int:
        """The descriptor, after a rollover (as tempfile's fileno())."""
        await self.rollover()
        return _t.cast("AsyncFile[_t.Any]", self._file).fileno()

    async def isatty(self) -> bool:
        return self._file.isatty() if self._file is not None else bool(self._memory.isatty())

    async def read(self, n: _t.Optional[int] = -1) -> _t.AnyStr:
        if self._file is not None:
            return _t.cast(_t.AnyStr, await self._file.read(n))
        return _t.cast(_t.AnyStr, self._memory.read(n))

    async def readline(self, size: _t.Optional[int] = -1) -> _t.AnyStr:
        if self._file is not None:
            return _t.cast(_t.AnyStr, await self._file.readline(size))
        return _t.cast(_t.AnyStr, self._memory.readline(size))

    async def readlines(self, hint: _t.Optional[int] = -1) -> _t.List[_t.AnyStr]:
        if self._file is not None:
            return _t.cast(_t.List[_t.AnyStr], await self._file.readlines(hint))
        return _t.cast(_t.List[_t.AnyStr], self._memory.readlines(hint))

    @_t.overload
    async def write(self: "AsyncSpooledTemporaryFile[str]", s: str) -> int: ...
    @_t.overload  # noqa: E301
    async def write(self: "AsyncSpooledTemporaryFile[bytes]", s: "_ReadableBuffer") -> int: ...
    async def write(self, s: _t.Any) -> int:  # noqa: E301
        """Write s (all of it); past max_size the data rolls over."""
        if self._file is not None:
            return await self._file.write(s)
        n = self._memory.write(s)
        await self._check_size()
        return _t.cast(int, n)

    @_t.overload
    async def writelines(self: "AsyncSpooledTemporaryFile[str]",
                         lines: _t.Iterable[str]) -> None: ...
    @_t.overload  # noqa: E301
    async def writelines(self: "AsyncSpooledTemporaryFile[bytes]",
                         lines: "_t.Iterable[_ReadableBuffer]") -> None: ...
    async def writelines(self, lines: _t.Any) -> None:  # noqa: E301
        if self._file is not None:
            return await self._file.writelines(lines)
        self._memory.writelines(lines)
        await self._check_size()

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if self._file is not None:
            return await self._file.seek(offset, whence)
        return _t.cast(int, self._memory.seek(offset, whence))

    async def tell(self) -> int:
        if self._file is not None:
            return await self._file.tell()
        return _t.cast(int, self._memory.tell())

    async def truncate(self, size: _t.Optional[int] = None) -> int:
        """As tempfile's: a size past max_size (even with max_size 0)
        rolls over first."""
        if self._file is None and size is not None and size > self._max_size:
            await self.rollover()
        if self._file is not None:
            return await self._file.truncate(size)
        return _t.cast(int, self._memory.truncate(size))

    async def flush(self) -> None:
        if self._file is not None:
            return await self._file.flush()
        self._memory.flush()

    async def close(self) -> None:
        """Close the file (the memory, or the TemporaryFile); again does
        nothing."""
        if self._file is not None:
            await self._file.close()
        else:
            self._memory.close()

    async def aclose(self) -> None:
        await self.close()

    def __aiter__(self) -> "AsyncSpooledTemporaryFile[_t.AnyStr]":
        return self

    async def __anext__(self) -> _t.AnyStr:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def __aenter__(self) -> "AsyncSpooledTemporaryFile[_t.AnyStr]":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "<py_io_uring.tempfile.AsyncSpooledTemporaryFile mode=%r %s>" % (
            self._mode, "closed" if self.closed else "rolled over" if self.rolled
            else "in memory")


@_t.overload
def SpooledTemporaryFile(max_size: int = 0, mode: "_OpenBinaryMode" = "w+b",
                         buffering: int = -1, encoding: None = None, newline: None = None,
                         suffix: "_t.Optional[_t.AnyStr]" = None,
                         prefix: "_t.Optional[_t.AnyStr]" = None,
                         dir: "_t.Union[_t.AnyStr, os.PathLike[_t.AnyStr], None]" = None, *,
                         errors: None = None, ring: "_t.Optional[_Ring]" = None
                         ) -> "TemporaryFileOpener[AsyncSpooledTemporaryFile[bytes]]": ...
@_t.overload  # noqa: E302
def SpooledTemporaryFile(max_size: int = 0, *, mode: "_OpenTextMode",
                         buffering: int = -1, encoding: _t.Optional[str] = None,
                         newline: _t.Optional[str] = None,
                         suffix: "_t.Optional[_t.AnyStr]" = None,
                         prefix: "_t.Optional[_t.AnyStr]" = None,
                         dir: "_t.Union[_t.AnyStr, os.PathLike[_t.AnyStr], None]" = None,
                         errors: _t.Optional[str] = None, ring: "_t.Optional[_Ring]" = None
                         ) -> "TemporaryFileOpener[AsyncSpooledTemporaryFile[str]]": ...
@_t.overload  # noqa: E302
def SpooledTemporaryFile(max_size: int, mode: "_OpenTextMode",
                         buffering: int = -1, encoding: _t.Optional[str] = None,
                         newline: _t.Optional[str] = None,
                         suffix: "_t.Optional[_t.AnyStr]" = None,
                         prefix: "_t.Optional[_t.AnyStr]" = None,
                         dir: "_t.Union[_t.AnyStr, os.PathLike[_t.AnyStr], None]" = None, *,
                         errors: _t.Optional[str] = None, ring: "_t.Optional[_Ring]" = None
                         ) -> "TemporaryFileOpener[AsyncSpooledTemporaryFile[str]]": ...
def SpooledTemporaryFile(max_size: int = 0, mode: str = "w+b",  # noqa: E302
                         buffering: int = -1, encoding: _t.Optional[str] = None,
                         newline: _t.Optional[str] = None, suffix: _t.Any = None,
                         prefix: _t.Any = None, dir: _t.Any = None, *,
                         errors: _t.Optional[str] = None, ring: "_t.Optional[_Ring]" = None
                         ) -> "TemporaryFileOpener[AsyncSpooledTemporaryFile[_t.Any]]":
    """tempfile.SpooledTemporaryFile(): data in memory until it grows past
    max_size (0: never), then in a TemporaryFile made with the other
    arguments.  ring: as py_io_uring.open()'s."""
    async def start() -> "AsyncSpooledTemporaryFile[_t.Any]":
        _check_mode(mode, encoding, errors, newline)
        _parts(prefix, suffix, dir)
        return AsyncSpooledTemporaryFile(max_size, mode, encoding, errors, newline,
                                         suffix, prefix, dir, ring)
    return TemporaryFileOpener(start)


# -- TemporaryDirectory

class AsyncTemporaryDirectory(_t.Generic[_t.AnyStr]):
    """What TemporaryDirectory() gives when awaited: tempfile's
    TemporaryDirectory, its `name`, and cleanup() (close(), as
    aiofiles') removing the tree in a worker thread."""

    def __init__(self, sync: "_tempfile.TemporaryDirectory[_t.AnyStr]") -> None:
        self._sync: "_tempfile.TemporaryDirectory[_t.AnyStr]" = sync
        self.name: _t.AnyStr = sync.name

    async def cleanup(self) -> None:
        """Remove the directory and all in it (tempfile's cleanup(), in a
        worker thread); again does nothing."""
        await _in_thread(self._sync.cleanup)

    async def close(self) -> None:
        await self.cleanup()

    def __repr__(self) -> str:
        return "<py_io_uring.tempfile.AsyncTemporaryDirectory %r>" % (self.name,)


class TemporaryDirectoryOpener(_t.Generic[_t.AnyStr]):
    """What TemporaryDirectory() returns: awaited, an
    AsyncTemporaryDirectory; entered (`async with ... as name:`), the
    directory's name, removed with all in it on the way out."""

    __slots__ = ("_args", "_dir", "_delete")

    def __init__(self, *args: _t.Any) -> None:
        self._args = args
        self._delete = args[3].get("delete", True)
        self._dir: "_t.Optional[AsyncTemporaryDirectory[_t.AnyStr]]" = None

    async def _make(self) -> "AsyncTemporaryDirectory[_t.AnyStr]":
        if self._args is None:
            raise RuntimeError("this temporary directory was made already: call again "
                               "for another one")
        suffix, prefix, dir, kwargs = self._args
        self._args = None       # type: ignore[assignment]
        sync = _t.cast("_tempfile.TemporaryDirectory[_t.AnyStr]", await _in_thread(
            functools.partial(_tempfile.TemporaryDirectory, suffix, prefix, dir, **kwargs)))
        return AsyncTemporaryDirectory(sync)

    def __await__(self) -> "_t.Generator[_t.Any, None, AsyncTemporaryDirectory[_t.AnyStr]]":
        return self._make().__await__()

    async def __aenter__(self) -> _t.AnyStr:
        self._dir = await self._make()
        return self._dir.name

    async def __aexit__(self, *exc_info: object) -> None:
        if self._dir is not None and self._delete:
            await self._dir.cleanup()


@_t.overload
def TemporaryDirectory(suffix: _t.Optional[str] = None, prefix: _t.Optional[str] = None,
                       dir: "_t.Optional[_StrPath]" = None, *,
                       ignore_cleanup_errors: bool = False, delete: bool = True
                       ) -> "TemporaryDirectoryOpener[str]": ...
@_t.overload  # noqa: E302
def TemporaryDirectory(suffix: _t.Optional[bytes] = None, prefix: _t.Optional[bytes] = None,
                       dir: "_t.Optional[_BytesPath]" = None, *,
                       ignore_cleanup_errors: bool = False, delete: bool = True
                       ) -> "TemporaryDirectoryOpener[bytes]": ...
def TemporaryDirectory(suffix: _t.Any = None, prefix: _t.Any = None,  # noqa: E302
                       dir: _t.Any = None, *, ignore_cleanup_errors: bool = False,
                       delete: bool = True) -> "TemporaryDirectoryOpener[_t.Any]":
    """tempfile.TemporaryDirectory(), made and removed in a worker thread
    (tempfile's own object: its finalizer, and cleanup's handling of
    read-only entries).  ignore_cleanup_errors (Python 3.10+) and delete
    (3.12+: False keeps the directory when the `async with` block is
    left) are tempfile's, passed on when not their defaults."""
    kwargs: "_t.Dict[str, bool]" = {}
    if ignore_cleanup_errors:
        kwargs["ignore_cleanup_errors"] = True
    if not delete:
        kwargs["delete"] = False
    return TemporaryDirectoryOpener(suffix, prefix, dir, kwargs)

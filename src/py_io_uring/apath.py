"""py_io_uring.Path: pathlib.Path with awaitable I/O, in the shape of
anyio.Path (`await Path("data").mkdir(parents=True)`, `await (p /
"x.txt").read_text()`, `async for child in p.iterdir():`), so that
`from py_io_uring import Path` can stand where `from anyio import Path`
stood, under asyncio, the EventLoop or trio.

The pure-path half (joining with /, name, suffix, parents, relative_to,
...) is pathlib's, synchronous, on the pathlib.Path each Path holds.  The
I/O is the ring's where io_uring has an operation for it (stat and the
is_*() tests, mkdir, unlink, rmdir, rename, replace, symlink_to,
hardlink_to, touch's create, open and the whole-file reads and writes:
py_io_uring.aos, afile.py, afile_whole.py), on the ring open() takes when
none is given; the rest (listing a directory, glob, resolve, readlink,
chmod, owner, ...) is pathlib's own in a worker thread, as anyio runs all
of it.  Results and errors are pathlib's."""

import os
import pathlib
# typing's names under a private alias, as afile.py does
import typing as _t

from . import aos as _aos
from ._aiolib import run_in_thread as _in_thread
from .afile import AsyncFileOpener, open as _open_file
from .afile_whole import read_bytes as _read_bytes, read_text as _read_text, \
    write_bytes as _write_bytes, write_text as _write_text

if _t.TYPE_CHECKING:
    import types

    from . import _ReadableBuffer
    from .afile import _OpenBinaryMode, _OpenTextMode

__all__ = ["Path"]

_StrPath = _t.Union[str, "os.PathLike[str]"]


class Path(object):
    """An async pathlib.Path (anyio.Path's methods)."""

    __slots__ = ("_path",)
    _path: pathlib.Path

    def __init__(self, *args: "_StrPath") -> None:
        self._path = pathlib.Path(*args)

    @classmethod
    def _of(cls, path: pathlib.Path) -> "Path":
        new = cls.__new__(cls)
        new._path = path
        return new

    # -- the pure path: pathlib's

    def __fspath__(self) -> str:
        return str(self._path)

    def __str__(self) -> str:
        return str(self._path)

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self._path.as_posix())

    def __bytes__(self) -> bytes:
        return bytes(self._path)

    def __hash__(self) -> int:
        return hash(self._path)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Path):
            return NotImplemented
        return self._path == other._path

    def __lt__(self, other: "Path") -> bool:
        if not isinstance(other, Path):
            return NotImplemented
        return self._path < other._path

    def __le__(self, other: "Path") -> bool:
        if not isinstance(other, Path):
            return NotImplemented
        return self._path <= other._path

    def __gt__(self, other: "Path") -> bool:
        if not isinstance(other, Path):
            return NotImplemented
        return self._path > other._path

    def __ge__(self, other: "Path") -> bool:
        if not isinstance(other, Path):
            return NotImplemented
        return self._path >= other._path

    def __truediv__(self, other: "_StrPath") -> "Path":
        return Path._of(self._path / other)

    def __rtruediv__(self, other: "_StrPath") -> "Path":
        return Path._of(other / self._path)

    @property
    def parts(self) -> _t.Tuple[str, ...]:
        return self._path.parts

    @property
    def drive(self) -> str:
        return self._path.drive

    @property
    def root(self) -> str:
        return self._path.root

    @property
    def anchor(self) -> str:
        return self._path.anchor

    @property
    def parents(self) -> _t.Sequence["Path"]:
        return tuple(Path._of(p) for p in self._path.parents)

    @property
    def parent(self) -> "Path":
        return Path._of(self._path.parent)

    @property
    def name(self) -> str:
        return self._path.name

    @property
    def suffix(self) -> str:
        return self._path.suffix

    @property
    def suffixes(self) -> _t.List[str]:
        return self._path.suffixes

    @property
    def stem(self) -> str:
        return self._path.stem

    @property
    def parser(self) -> "types.ModuleType":
        """The os.path module the path's syntax is (3.13's PurePath.parser)."""
        return _t.cast("types.ModuleType", getattr(pathlib.PurePath, "parser", os.path))

    def as_posix(self) -> str:
        return self._path.as_posix()

    def as_uri(self) -> str:
        return self._path.as_uri()

    def is_absolute(self) -> bool:
        return self._path.is_absolute()

    def is_reserved(self) -> bool:
        return self._path.is_reserved()

    def is_relative_to(self, other: "_StrPath") -> bool:
        """PurePath.is_relative_to() (3.9's; here on 3.8 too)."""
        try:
            self._path.relative_to(other)
            return True
        except ValueError:
            return False

    def joinpath(self, *others: "_StrPath") -> "Path":
        return Path._of(self._path.joinpath(*others))

    def match(self, pattern: str) -> bool:
        return self._path.match(pattern)

    def relative_to(self, *other: "_StrPath") -> "Path":
        return Path._of(self._path.relative_to(*other))

    def with_name(self, name: str) -> "Path":
        return Path._of(self._path.with_name(name))

    def with_stem(self, stem: str) -> "Path":
        """PurePath.with_stem() (3.9's; here on 3.8 too)."""
        return Path._of(self._path.with_name(stem + self._path.suffix))

    def with_suffix(self, suffix: str) -> "Path":
        return Path._of(self._path.with_suffix(suffix))

    def with_segments(self, *segments: "_StrPath") -> "Path":
        return Path(*segments)

    # -- the ring's operations

    async def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return await _aos.stat(str(self._path), follow_symlinks=follow_symlinks)

    async def lstat(self) -> os.stat_result:
        return await _aos.lstat(str(self._path))

    async def _mode(self, follow_symlinks: bool = True) -> _t.Optional[int]:
        # as pathlib's is_*() tests: False where the path cannot be looked up
        try:
            return (await self.stat(follow_symlinks=follow_symlinks)).st_mode
        except (OSError, ValueError):
            return None

    async def exists(self, *, follow_symlinks: bool = True) -> bool:
        return await self._mode(follow_symlinks) is not None

    async def _is(self, test: _t.Callable[[int], bool], follow_symlinks: bool = True) -> bool:
        mode = await self._mode(follow_symlinks)
        return mode is not None and test(mode)

    async def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        import stat
        return await self._is(stat.S_ISDIR, follow_symlinks)

    async def is_file(self, *, follow_symlinks: bool = True) -> bool:
        import stat
        return await self._is(stat.S_ISREG, follow_symlinks)

    async def is_symlink(self) -> bool:
        import stat
        return await self._is(stat.S_ISLNK, False)

    async def is_fifo(self) -> bool:
        import stat
        return await self._is(stat.S_ISFIFO)

    async def is_socket(self) -> bool:
        import stat
        return await self._is(stat.S_ISSOCK)

    async def is_block_device(self) -> bool:
        import stat
        return await self._is(stat.S_ISBLK)

    async def is_char_device(self) -> bool:
        import stat
        return await self._is(stat.S_ISCHR)

    async def is_junction(self) -> bool:
        """False: a junction is Windows' (3.12's Path.is_junction())."""
        return False

    async def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        """Path.mkdir(): pathlib's algorithm, each mkdir on the ring."""
        try:
            await _aos.mkdir(str(self._path), mode)
        except FileNotFoundError:
            if not parents or self._path.parent == self._path:
                raise
            await self.parent.mkdir(parents=True, exist_ok=True)
            await self.mkdir(mode, parents=False, exist_ok=exist_ok)
        except OSError:
            # as pathlib: anything else is an error unless exist_ok and
            # a directory is there
            if not exist_ok or not await self.is_dir():
                raise

    async def unlink(self, missing_ok: bool = False) -> None:
        try:
            await _aos.unlink(str(self._path))
        except FileNotFoundError:
            if not missing_ok:
                raise

    async def rmdir(self) -> None:
        await _aos.rmdir(str(self._path))

    async def rename(self, target: "_StrPath") -> "Path":
        await _aos.rename(str(self._path), os.fspath(target))
        return Path(target)

    async def replace(self, target: "_StrPath") -> "Path":
        await _aos.replace(str(self._path), os.fspath(target))
        return Path(target)

    async def symlink_to(self, target: "_StrPath", target_is_directory: bool = False) -> None:
        await _aos.symlink(os.fspath(target), str(self._path), target_is_directory)

    async def hardlink_to(self, target: "_StrPath") -> None:
        await _aos.link(os.fspath(target), str(self._path))

    async def samefile(self, other_path: "_StrPath") -> bool:
        return await _aos.path.samefile(str(self._path), os.fspath(other_path))

    async def touch(self, mode: int = 0o666, exist_ok: bool = True) -> None:
        """Path.touch(): an existing file's times set to now (utime, in a
        thread: io_uring has no operation for it), else the file made."""
        from . import AT_FDCWD
        from .afile import _default_ring
        if exist_ok:
            try:
                await _in_thread(os.utime, self._path, None)
                return
            except OSError:
                pass
        flags = os.O_CREAT | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
        if not exist_ok:
            flags |= os.O_EXCL
        ring, shared = _default_ring()
        try:
            try:
                fd = await ring.openat(AT_FDCWD, str(self._path), flags, mode)
            except OSError as e:
                raise OSError(e.errno, e.strerror, str(self._path)) from None
            await ring.close(fd)
        finally:
            if shared is not None:
                shared.release()

    @_t.overload
    def open(self, mode: "_OpenTextMode" = "r", buffering: int = -1,
             encoding: _t.Optional[str] = None, errors: _t.Optional[str] = None,
             newline: _t.Optional[str] = None) -> "AsyncFileOpener[str]": ...
    @_t.overload  # noqa: E301
    def open(self, mode: "_OpenBinaryMode", buffering: int = -1, encoding: None = None,
             errors: None = None, newline: None = None) -> "AsyncFileOpener[bytes]": ...
    @_t.overload  # noqa: E301
    def open(self, mode: str, buffering: int = -1, encoding: _t.Optional[str] = None,
             errors: _t.Optional[str] = None,
             newline: _t.Optional[str] = None) -> "AsyncFileOpener[_t.Any]": ...
    def open(self, mode: str = "r", buffering: int = -1,  # noqa: E301
             encoding: _t.Optional[str] = None, errors: _t.Optional[str] = None,
             newline: _t.Optional[str] = None) -> "AsyncFileOpener[_t.Any]":
        """py_io_uring.open() of this path: awaited, the AsyncFile (as
        anyio's `await path.open()`); entered, the file, closed on the way
        out."""
        return _open_file(str(self._path), mode, buffering, encoding, errors, newline)

    async def read_bytes(self) -> bytes:
        return await _read_bytes(str(self._path))

    async def read_text(self, encoding: _t.Optional[str] = None,
                        errors: _t.Optional[str] = None,
                        newline: _t.Optional[str] = None) -> str:
        return await _read_text(str(self._path), encoding, errors, newline)

    async def write_bytes(self, data: "_ReadableBuffer") -> int:
        return await _write_bytes(str(self._path), data)

    async def write_text(self, data: str, encoding: _t.Optional[str] = None,
                         errors: _t.Optional[str] = None,
                         newline: _t.Optional[str] = None) -> int:
        return await _write_text(str(self._path), data, encoding, errors, newline)

    # -- in a worker thread: pathlib's own (no io_uring operation lists a
    # directory, reads a link, resolves a chain of links, or changes modes)

    @classmethod
    async def cwd(cls) -> "Path":
        return Path._of(await _in_thread(pathlib.Path.cwd))

    @classmethod
    async def home(cls) -> "Path":
        return Path._of(await _in_thread(pathlib.Path.home))

    async def absolute(self) -> "Path":
        return Path._of(await _in_thread(self._path.absolute))

    async def resolve(self, strict: bool = False) -> "Path":
        return Path._of(await _in_thread(self._path.resolve, strict))

    async def expanduser(self) -> "Path":
        return Path._of(await _in_thread(self._path.expanduser))

    async def readlink(self) -> "Path":
        return Path(await _aos.readlink(str(self._path)))

    async def chmod(self, mode: int, *, follow_symlinks: bool = True) -> None:
        await _in_thread(lambda: os.chmod(self._path, mode, follow_symlinks=follow_symlinks))

    async def lchmod(self, mode: int) -> None:
        await self.chmod(mode, follow_symlinks=False)

    async def owner(self) -> str:
        return await _in_thread(self._path.owner)

    async def group(self) -> str:
        return await _in_thread(self._path.group)

    async def is_mount(self) -> bool:
        return await _in_thread(self._path.is_mount)

    async def iterdir(self) -> _t.AsyncIterator["Path"]:
        """The directory's entries (listed in a thread, as pathlib lists
        them: one os.listdir)."""
        names = await _in_thread(os.listdir, self._path)
        for name in names:
            yield Path._of(self._path / name)

    async def glob(self, pattern: str) -> _t.AsyncIterator["Path"]:
        """pathlib's glob(), its matches found in a thread."""
        found = await _in_thread(lambda: list(self._path.glob(pattern)))
        for p in found:
            yield Path._of(p)

    async def rglob(self, pattern: str) -> _t.AsyncIterator["Path"]:
        found = await _in_thread(lambda: list(self._path.rglob(pattern)))
        for p in found:
            yield Path._of(p)


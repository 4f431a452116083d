"""py_io_uring.aos: os's file-system calls as awaitables, each one io_uring
operation, in the shape of aiofiles.os (`await aos.stat(path)`,
`await aos.remove(path)`, `await aos.path.exists(path)`, ...).

They run on the ring py_io_uring.open() takes when none is given
(afile.py): the running EventLoop's own, the ring an asyncio loop's files
share, or the trio run's; ring= gives another.  Arguments, results and
errors are os's: the same exceptions, with the path, and for rename,
replace and link the second path too.

The calls io_uring has no operation for (listdir, scandir, readlink,
access, statvfs, sendfile, getcwd; wrap() for any other) run in the
library's worker threads, as all of aiofiles.os's do: the same names, so
that `from py_io_uring import aos` can stand where `aiofiles.os` stood."""

import functools
import os
# typing's names under a private alias, as afile.py does: module attributes
# are public names stubtest checks
import typing as _t

from . import (AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_FOLLOW,
               AT_SYMLINK_NOFOLLOW)
from . import aos_path as path
from ._aiolib import run_in_thread as _in_thread, wrap
from .afile import _default_ring

if _t.TYPE_CHECKING:
    from . import AsyncRing as _AsyncRing, _StrOrBytesPath
    from .trio import TrioRing as _TrioRing

    _Ring = _t.Union[_AsyncRing, _TrioRing]
    _Path = _StrOrBytesPath

__all__ = ["stat", "lstat", "remove", "unlink", "rmdir", "removedirs", "mkdir", "makedirs",
           "rename", "renames", "replace", "link", "symlink", "path",
           # in a thread: io_uring has no operation for them
           "readlink", "listdir", "scandir", "access", "statvfs", "sendfile", "getcwd", "wrap"]


async def _run(ring: "_t.Optional[_Ring]", op: str, names: "_t.Tuple[object, ...]",
               *args: _t.Any) -> _t.Any:
    """ring's op(*args) on the given ring or the default one; an OSError
    carries names as os's does (the path, then the second path)."""
    shared = None
    use: _t.Any = ring
    if use is None:
        use, shared = _default_ring()
    try:
        return await getattr(use, op)(*args)
    except OSError as e:
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, *((names[0], None, names[1]) if len(names) > 1
                                             else names)) from None
    finally:
        if shared is not None:
            shared.release()


def _dfd(dir_fd: _t.Optional[int]) -> int:
    return AT_FDCWD if dir_fd is None else dir_fd


async def stat(path: "_t.Union[_Path, int]", *, dir_fd: _t.Optional[int] = None,
               follow_symlinks: bool = True,
               ring: "_t.Optional[_Ring]" = None) -> os.stat_result:
    """os.stat(): statx of path (or of an open descriptor)."""
    if isinstance(path, int):
        return _t.cast(os.stat_result,
                       await _run(ring, "statx", (path,), path, "", AT_EMPTY_PATH))
    flags = 0 if follow_symlinks else AT_SYMLINK_NOFOLLOW
    return _t.cast(os.stat_result,
                   await _run(ring, "statx", (path,), _dfd(dir_fd), path, flags))


async def lstat(path: "_Path", *, dir_fd: _t.Optional[int] = None,
                ring: "_t.Optional[_Ring]" = None) -> os.stat_result:
    """os.lstat(): stat() of a symlink itself."""
    return await stat(path, dir_fd=dir_fd, follow_symlinks=False, ring=ring)


async def remove(path: "_Path", *, dir_fd: _t.Optional[int] = None,
                 ring: "_t.Optional[_Ring]" = None) -> None:
    """os.remove(): unlink a file (IsADirectoryError for a directory)."""
    await _run(ring, "unlinkat", (path,), _dfd(dir_fd), path, 0)


unlink = remove


async def rmdir(path: "_Path", *, dir_fd: _t.Optional[int] = None,
                ring: "_t.Optional[_Ring]" = None) -> None:
    """os.rmdir(): remove an empty directory."""
    await _run(ring, "unlinkat", (path,), _dfd(dir_fd), path, AT_REMOVEDIR)


async def mkdir(path: "_Path", mode: int = 0o777, *, dir_fd: _t.Optional[int] = None,
                ring: "_t.Optional[_Ring]" = None) -> None:
    """os.mkdir(): make a directory (mode masked by the umask)."""
    await _run(ring, "mkdirat", (path,), _dfd(dir_fd), path, mode)


async def makedirs(name: "_Path", mode: int = 0o777, exist_ok: bool = False, *,
                   ring: "_t.Optional[_Ring]" = None) -> None:
    """os.makedirs(): mkdir() of each missing parent, then of name; as os's,
    FileExistsError when name exists, unless exist_ok and it is a directory."""
    head, tail = os.path.split(name)
    if not tail:
        head, tail = os.path.split(head)
    if head and tail and not await path.exists(head, ring=ring):
        try:
            await makedirs(head, exist_ok=exist_ok, ring=ring)
        except FileExistsError:
            pass        # made meanwhile by someone else
        cdir: _t.Union[str, bytes] = os.curdir
        if isinstance(tail, bytes):
            cdir = os.curdir.encode()
        if tail == cdir:
            return      # xxx/newdir/. exists when xxx/newdir exists
    try:
        await mkdir(name, mode, ring=ring)
    except OSError:
        # os's order: a name that exists as a directory is fine with exist_ok
        if not exist_ok or not await path.isdir(name, ring=ring):
            raise


async def rename(src: "_Path", dst: "_Path", *, src_dir_fd: _t.Optional[int] = None,
                 dst_dir_fd: _t.Optional[int] = None,
                 ring: "_t.Optional[_Ring]" = None) -> None:
    """os.rename(): rename src to dst, replacing a file there (Linux)."""
    await _run(ring, "renameat", (src, dst), _dfd(src_dir_fd), src, _dfd(dst_dir_fd), dst, 0)


replace = rename


async def link(src: "_Path", dst: "_Path", *, src_dir_fd: _t.Optional[int] = None,
               dst_dir_fd: _t.Optional[int] = None, follow_symlinks: bool = True,
               ring: "_t.Optional[_Ring]" = None) -> None:
    """os.link(): a hard link dst to src."""
    await _run(ring, "linkat", (src, dst), _dfd(src_dir_fd), src, _dfd(dst_dir_fd), dst,
               AT_SYMLINK_FOLLOW if follow_symlinks else 0)


async def symlink(src: "_Path", dst: "_Path", target_is_directory: bool = False, *,
                  dir_fd: _t.Optional[int] = None,
                  ring: "_t.Optional[_Ring]" = None) -> None:
    """os.symlink(): a symbolic link dst whose target is src (target_is_directory
    is for Windows, and ignored here as os ignores it)."""
    await _run(ring, "symlinkat", (src, dst), src, _dfd(dir_fd), dst)



async def removedirs(name: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> None:
    """os.removedirs(): rmdir() of name, then of each parent up the path
    until one fails (not empty, or not ours), which is not an error."""
    await rmdir(name, ring=ring)
    head, tail = os.path.split(name)
    if not tail:
        head, tail = os.path.split(head)
    while head and tail:
        try:
            await rmdir(head, ring=ring)
        except OSError:
            break
        head, tail = os.path.split(head)


async def renames(old: "_Path", new: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> None:
    """os.renames(): makedirs() of new's parent, rename(), then
    removedirs() of what old's parents are left empty."""
    head, tail = os.path.split(new)
    if head and tail and not await path.exists(head, ring=ring):
        await makedirs(head, ring=ring)
    await rename(old, new, ring=ring)
    head, tail = os.path.split(old)
    if head and tail:
        try:
            await removedirs(head, ring=ring)
        except OSError:
            pass


# -- In a worker thread: no io_uring operation reads a directory, a link's
# target or permissions, or a file system's figures.

_A = _t.TypeVar("_A", str, bytes)


async def readlink(path: "_t.Union[_A, os.PathLike[_A]]", *,
                   dir_fd: _t.Optional[int] = None) -> _A:
    """os.readlink(), in a thread."""
    return await _in_thread(functools.partial(os.readlink, path, dir_fd=dir_fd))


@_t.overload
async def listdir(path: "_t.Union[str, os.PathLike[str], int, None]" = None
                  ) -> _t.List[str]: ...


@_t.overload
async def listdir(path: "_t.Union[bytes, os.PathLike[bytes]]") -> _t.List[bytes]: ...


async def listdir(path: "_t.Union[_Path, int, None]" = None
                  ) -> "_t.Union[_t.List[str], _t.List[bytes]]":
    """os.listdir(), in a thread."""
    return await _in_thread(os.listdir, path)


@_t.overload
async def scandir(path: "_t.Union[str, os.PathLike[str], int, None]" = None
                  ) -> "os._ScandirIterator[str]": ...


@_t.overload
async def scandir(path: "_t.Union[bytes, os.PathLike[bytes]]") -> "os._ScandirIterator[bytes]": ...


async def scandir(path: "_t.Union[_Path, int, None]" = None
                  ) -> "_t.Union[os._ScandirIterator[str], os._ScandirIterator[bytes]]":
    """os.scandir(), opened in a thread: the iterator os gives, as
    aiofiles.os.scandir hands it back (its entries' is_dir() and the like
    may still stat, in the caller's thread; close it, or use `with`)."""
    return await _in_thread(os.scandir, path)


async def access(path: "_t.Union[_Path, int]", mode: int, *, dir_fd: _t.Optional[int] = None,
                 effective_ids: bool = False, follow_symlinks: bool = True) -> bool:
    """os.access(), in a thread."""
    return await _in_thread(functools.partial(os.access, path, mode, dir_fd=dir_fd,
                                              effective_ids=effective_ids,
                                              follow_symlinks=follow_symlinks))


async def statvfs(path: "_t.Union[_Path, int]") -> os.statvfs_result:
    """os.statvfs(), in a thread."""
    return await _in_thread(os.statvfs, path)


async def sendfile(out_fd: int, in_fd: int, offset: _t.Optional[int], count: int) -> int:
    """os.sendfile(), in a thread: a count of bytes sent that may be short,
    and BlockingIOError for a non-blocking out_fd that is full, as os's.
    (A loop's sock_sendfile() is the way to send a whole file to a socket.)"""
    return await _in_thread(os.sendfile, out_fd, in_fd, offset, count)


async def getcwd() -> str:
    """os.getcwd(), in a thread."""
    return await _in_thread(os.getcwd)

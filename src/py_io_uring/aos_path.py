"""py_io_uring.aos.path: os.path's tests of the file system as awaitables,
each one statx on the ring aos takes (aos.py), in the shape of
aiofiles.os.path.  As os.path's, exists() and the is*() tests say False
where the path cannot be looked up (OSError, or ValueError for a path
os refuses); getsize() and the times raise, with the path.  ismount() and
abspath() run os.path's own in a worker thread, as aiofiles's do: both
look up a chain of paths (realpath, getcwd) that no one operation does;
wrap() is aos.wrap()."""

import os.path as _osp
import stat
# typing's names under a private alias, as aos.py does
import typing as _t

from ._aiolib import wrap   # (aos.wrap: the same function)

if _t.TYPE_CHECKING:
    import os

    from . import _StrOrBytesPath
    from .aos import _Ring

    _Path = _t.Union[_StrOrBytesPath, int]

__all__ = ["exists", "lexists", "isfile", "isdir", "islink", "getsize", "getmtime",
           "getatime", "getctime", "samefile", "sameopenfile", "ismount", "abspath", "wrap"]


async def _stat_of(path: "_Path", follow: bool, ring: "_t.Optional[_Ring]") -> "os.stat_result":
    from . import aos
    if follow:
        return await aos.stat(path, ring=ring)
    return await aos.stat(path, follow_symlinks=False, ring=ring)


async def _mode(path: "_Path", follow: bool, ring: "_t.Optional[_Ring]") -> _t.Optional[int]:
    """path's st_mode, or None where os.path's tests say False."""
    try:
        return (await _stat_of(path, follow, ring)).st_mode
    except (OSError, ValueError):
        return None


async def exists(path: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> bool:
    """os.path.exists(): False also for a broken symlink."""
    return await _mode(path, True, ring) is not None


async def lexists(path: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> bool:
    """os.path.lexists(): True also for a broken symlink."""
    return await _mode(path, False, ring) is not None


async def isfile(path: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> bool:
    """os.path.isfile(): a regular file, symlinks followed."""
    mode = await _mode(path, True, ring)
    return mode is not None and stat.S_ISREG(mode)


async def isdir(path: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> bool:
    """os.path.isdir(): a directory, symlinks followed."""
    mode = await _mode(path, True, ring)
    return mode is not None and stat.S_ISDIR(mode)


async def islink(path: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> bool:
    """os.path.islink(): a symbolic link."""
    mode = await _mode(path, False, ring)
    return mode is not None and stat.S_ISLNK(mode)


async def getsize(path: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> int:
    """os.path.getsize(): st_size."""
    return (await _stat_of(path, True, ring)).st_size


async def getmtime(path: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> float:
    """os.path.getmtime(): st_mtime."""
    return (await _stat_of(path, True, ring)).st_mtime


async def getatime(path: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> float:
    """os.path.getatime(): st_atime."""
    return (await _stat_of(path, True, ring)).st_atime


async def getctime(path: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> float:
    """os.path.getctime(): st_ctime."""
    return (await _stat_of(path, True, ring)).st_ctime


async def samefile(f1: "_Path", f2: "_Path", *, ring: "_t.Optional[_Ring]" = None) -> bool:
    """os.path.samefile(): the same device and inode, symlinks followed
    (an error, with its path, where either cannot be looked up)."""
    s1 = await _stat_of(f1, True, ring)
    s2 = await _stat_of(f2, True, ring)
    return _osp.samestat(s1, s2)


async def sameopenfile(fp1: int, fp2: int, *, ring: "_t.Optional[_Ring]" = None) -> bool:
    """os.path.sameopenfile(): two descriptors of the same file."""
    return await samefile(fp1, fp2, ring=ring)


async def ismount(path: "_StrOrBytesPath") -> bool:
    """os.path.ismount(), in a thread."""
    from ._aiolib import run_in_thread
    return await run_in_thread(_osp.ismount, path)


_A = _t.TypeVar("_A", str, bytes)


async def abspath(path: "_t.Union[_A, os.PathLike[_A]]") -> _A:
    """os.path.abspath(), in a thread (a relative path asks getcwd)."""
    from ._aiolib import run_in_thread
    return await run_in_thread(_osp.abspath, path)

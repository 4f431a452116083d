"""The async file object (issue 17): `await py_io_uring.open(path, "rb")`
reading a page-cached 64 MiB file sequentially (64 KiB reads) and 4 KiB
reads at random offsets (seek, then read), one task, against aiofiles'
file object and against os.pread in asyncio.to_thread, on the stock
asyncio loop; and opening, reading and closing many small files, where
what a file costs to open shows: there also on py_io_uring's EventLoop,
whose files run on the loop's own ring."""

import asyncio
import os
import time

from runner import Case, Unavailable, human
from workloads.files import cached_file, offsets_for, small_files

CHUNK = 64 * 1024
BLOCK = 4096

DESCRIBE = (
    "The async file object: one asyncio task reads a page-cached file of %s sequentially in "
    "64 KiB `read()`s, then %d reads of 4 KiB at random offsets (`seek()` then `read()`), with "
    "`await py_io_uring.open(path, 'rb')` (no ring given: the loop's shared one), aiofiles' "
    "`aiofiles.open()` (when installed) and `os.pread` in `asyncio.to_thread` (3.9+); stock "
    "asyncio loop. Then %d page-cached files of 4 KiB, each opened, read whole and closed in "
    "turn (`async with open(path, 'rb') as f: await f.read()`): aiofiles and `open().read()` "
    "in `asyncio.to_thread` on the stock loop; `py_io_uring.open()` on the stock loop (no ring "
    "given: the ring its files share, kept while files open one after another), on it with one "
    "AsyncRing given as `ring=`, and on py_io_uring's EventLoop (the loop's own ring); the same "
    "files under trio: `py_io_uring.open()` (the TrioRing of the run), `trio.to_thread` and "
    "anyio's `open_file()`. Figures are MiB/s, reads/s and files/s.")


def _aiofiles():
    try:
        import aiofiles
    except ImportError:
        raise Unavailable("aiofiles is not installed (make deps-test)") from None
    return aiofiles


def _to_thread():
    t = getattr(asyncio, "to_thread", None)
    if t is None:
        raise Unavailable("asyncio.to_thread is 3.9+")
    return t


async def seq_ring(m, path):
    n = 0
    async with await m.open(path, "rb") as f:
        while True:
            data = await f.read(CHUNK)
            if not data:
                return n
            n += len(data)


async def seq_aiofiles(path):
    aiofiles = _aiofiles()
    n = 0
    async with aiofiles.open(path, "rb") as f:
        while True:
            data = await f.read(CHUNK)
            if not data:
                return n
            n += len(data)


async def seq_thread(path):
    to_thread = _to_thread()
    fd = os.open(path, os.O_RDONLY)
    try:
        n = 0
        while True:
            data = await to_thread(os.pread, fd, CHUNK, n)
            if not data:
                return n
            n += len(data)
    finally:
        os.close(fd)


async def rand_ring(m, path, offs):
    async with await m.open(path, "rb") as f:
        for off in offs:
            await f.seek(off)
            if len(await f.read(BLOCK)) != BLOCK:
                raise RuntimeError("short read")


async def rand_aiofiles(path, offs):
    aiofiles = _aiofiles()
    async with aiofiles.open(path, "rb") as f:
        for off in offs:
            await f.seek(off)
            if len(await f.read(BLOCK)) != BLOCK:
                raise RuntimeError("short read")


async def rand_thread(path, offs):
    to_thread = _to_thread()
    fd = os.open(path, os.O_RDONLY)
    try:
        for off in offs:
            if len(await to_thread(os.pread, fd, BLOCK, off)) != BLOCK:
                raise RuntimeError("short read")
    finally:
        os.close(fd)


def sequential(coro_fn, size):
    def run():
        t0 = time.perf_counter()
        n = asyncio.run(coro_fn())
        dt = time.perf_counter() - t0
        if n != size:
            raise RuntimeError("read %d bytes of %d" % (n, size))
        return size / dt / (1 << 20)
    return run


def random_reads(coro_fn, n):
    def run():
        t0 = time.perf_counter()
        asyncio.run(coro_fn())
        return n / (time.perf_counter() - t0)
    return run


def reads(quick):
    return 2000 if quick else 20000


def small_count(quick):
    return 200 if quick else 2000


async def small_ring(m, paths, ring=None):
    for p in paths:
        async with m.open(p, "rb", ring=ring) as f:
            if len(await f.read()) != BLOCK:
                raise RuntimeError("short read")


async def small_shared_ring(m, paths):
    async with m.AsyncRing(8) as ring:
        await small_ring(m, paths, ring)


async def small_aiofiles(paths):
    aiofiles = _aiofiles()
    for p in paths:
        async with aiofiles.open(p, "rb") as f:
            if len(await f.read()) != BLOCK:
                raise RuntimeError("short read")


def _read_whole(path):
    with open(path, "rb") as f:
        return f.read()


async def small_thread(paths):
    to_thread = _to_thread()
    for p in paths:
        if len(await to_thread(_read_whole, p)) != BLOCK:
            raise RuntimeError("short read")


def _trio():
    try:
        import trio
    except ImportError:
        raise Unavailable("trio is not installed (make deps-test)") from None
    return trio


async def small_trio_thread(paths):
    trio = _trio()
    for p in paths:
        if len(await trio.to_thread.run_sync(_read_whole, p)) != BLOCK:
            raise RuntimeError("short read")


async def small_anyio(paths):
    try:
        import anyio
    except ImportError:
        raise Unavailable("anyio is not installed (make deps-test)") from None
    for p in paths:
        async with await anyio.open_file(p, "rb") as f:
            if len(await f.read()) != BLOCK:
                raise RuntimeError("short read")


def trio_files_per_second(fn, n):
    def run():
        trio = _trio()
        t0 = time.perf_counter()
        trio.run(fn)
        return n / (time.perf_counter() - t0)
    return run


def files_per_second(coro_fn, n, runner=None):
    def run():
        t0 = time.perf_counter()
        (runner or asyncio.run)(coro_fn())
        return n / (time.perf_counter() - t0)
    return run


def cases(setup):
    m = setup.m
    path, size = cached_file(setup, "afile.dat")
    offs = offsets_for(size, reads(setup.quick), setup.seed)
    seq = Case("async file object: read %s sequentially, 64 KiB reads" % human(size), "MiB/s",
               ("async file object", "access"), 0, headline=True, warmup=True,
               reference="os.pread in asyncio.to_thread", figure=False)
    seq.baseline("os.pread in asyncio.to_thread", sequential(lambda: seq_thread(path), size))
    seq.baseline("aiofiles", sequential(lambda: seq_aiofiles(path), size))
    seq.variant("py_io_uring.open", sequential(lambda: seq_ring(m, path), size))
    rnd = Case("async file object: 4 KiB reads at random offsets of %s" % human(size), "ops/s",
               ("async file object", "access"), 1, headline=True, warmup=True,
               reference="os.pread in asyncio.to_thread", figure=False)
    rnd.baseline("os.pread in asyncio.to_thread",
                 random_reads(lambda: rand_thread(path, offs), len(offs)))
    rnd.baseline("aiofiles", random_reads(lambda: rand_aiofiles(path, offs), len(offs)))
    rnd.variant("py_io_uring.open", random_reads(lambda: rand_ring(m, path, offs), len(offs)))
    paths = small_files(setup, small_count(setup.quick), BLOCK, name="afile-small")
    few = Case("async file object: open, read and close %d files of 4 KiB in turn" % len(paths),
               "files/s", ("async file object", "access"), 2, headline=True, warmup=True,
               reference="aiofiles", figure=False)
    few.baseline("aiofiles", files_per_second(lambda: small_aiofiles(paths), len(paths)))
    few.baseline("open().read() in asyncio.to_thread",
                 files_per_second(lambda: small_thread(paths), len(paths)))
    few.variant("py_io_uring.open",
                files_per_second(lambda: small_ring(m, paths), len(paths)))
    few.variant("py_io_uring.open, one AsyncRing",
                files_per_second(lambda: small_shared_ring(m, paths), len(paths)))
    few.variant("py_io_uring.open on EventLoop",
                files_per_second(lambda: small_ring(m, paths), len(paths), m.run))
    tri = Case("async file object under trio: open, read and close %d files of 4 KiB in turn"
               % len(paths), "files/s", ("async file object", "access"), 3, headline=True,
               warmup=True, reference="trio.to_thread", figure=False)
    tri.baseline("trio.to_thread", trio_files_per_second(lambda: small_trio_thread(paths),
                                                         len(paths)))
    tri.baseline("anyio.open_file", trio_files_per_second(lambda: small_anyio(paths), len(paths)))
    tri.variant("py_io_uring.open", trio_files_per_second(lambda: small_ring(m, paths), len(paths)))
    return [seq, rnd, few, tri]


def describe(quick):
    return DESCRIBE % ("8 MiB" if quick else "64 MiB", reads(quick), small_count(quick))

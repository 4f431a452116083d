"""The async file object (issue 17): `await py_io_uring.open(path, "rb")`
reading a page-cached 64 MiB file sequentially (64 KiB reads) and 4 KiB
reads at random offsets (seek, then read), one task, against aiofiles'
file object and against os.pread in asyncio.to_thread, on the stock
asyncio loop."""

import asyncio
import os
import time

from runner import Case, Unavailable, human
from workloads.files import cached_file, offsets_for

CHUNK = 64 * 1024
BLOCK = 4096

DESCRIBE = (
    "The async file object: one asyncio task reads a page-cached file of %s sequentially in "
    "64 KiB `read()`s, then %d reads of 4 KiB at random offsets (`seek()` then `read()`), with "
    "`await py_io_uring.open(path, 'rb')` (a small AsyncRing of its own), aiofiles' "
    "`aiofiles.open()` (when installed) and `os.pread` in `asyncio.to_thread` (3.9+); stock "
    "asyncio loop. Figures are MiB/s and reads/s.")


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
    return [seq, rnd]


def describe(quick):
    return DESCRIBE % ("8 MiB" if quick else "64 MiB", reads(quick))

"""Many files at once (issue 17): py_io_uring.read_files against a plain
loop of open().read(), ThreadPoolExecutor with 8/32/64 threads and asyncio
with to_thread per file; py_io_uring.copytree against shutil.copytree."""

import asyncio
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from runner import Case, Unavailable
from workloads.files import file_tree, small_files

DESCRIBE = (
    "Many files: read every file of a folder whole (%s) with `py_io_uring.read_files` "
    "(depth 64: its default, the per-file loop in C, `read_many()`: openat into a direct "
    "descriptor linked to two reads, on a ring of the call's own; and through `WorkQueue` on "
    "a ring given, openat+statx, read, close from Python) against a loop of "
    "`open(p, 'rb').read()`, `ThreadPoolExecutor(N).map` of the same with 8, 32 and 64 "
    "threads, `asyncio.gather` of `asyncio.to_thread` (3.9+; its default executor) per file "
    "and of aiofiles' `open()`/`read()` per file (when installed); the page cache warm, then "
    "cold (each file's pages dropped with `posix_fadvise(DONTNEED)` before every run, each "
    "run on its own); then copy a tree of %s with `py_io_uring.copytree` (depth 64: a file of "
    "up to 256 KiB by one read linked to one write on the ring, a larger one by "
    "`copy_file_range` in one of 4 worker threads, many files at once; modes and times by "
    "`shutil.copystat`) against "
    "`shutil.copytree` (copy2: `copy_file_range`/`sendfile` per file, one at a time). The large files are read "
    "again in processes of their own (`bench/read_child.py`: three untimed batches, then the timed "
    "one, so each reader meets its own steady state; read_files also called from a worker "
    "thread, whose malloc arena keeps freed memory as a pool's do; the cache warm or dropped before it) with malloc as is, with one malloc arena for every thread (`MALLOC_ARENA_MAX=1`) and "
    "with glibc told to keep freed memory: how many fresh pages each batch faults in, and so "
    "the large-file ratios, is malloc's doing. Figures are files per second.")


def drop_cache(paths):
    """Drop the files' pages from the page cache (a clean file's pages go)."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(paths, cold, body):
    """A run: files per second of body(), the cache dropped first when cold."""
    def run():
        if cold:
            drop_cache(paths)
        t0 = time.perf_counter()
        n = body()
        dt = time.perf_counter() - t0
        if n != len(paths):
            raise RuntimeError("read %d files of %d" % (n, len(paths)))
        return len(paths) / dt
    return run


def _read_plain(p):
    with open(p, "rb") as f:
        return f.read()


def read_loop(paths, cold):
    def body():
        return len([_read_plain(p) for p in paths])
    return timed(paths, cold, body)


def read_pool(paths, threads, cold):
    pool = ThreadPoolExecutor(threads)

    def body():
        return len(list(pool.map(_read_plain, paths)))
    return timed(paths, cold, body)


def read_to_thread(paths, cold):
    to_thread = getattr(asyncio, "to_thread", None)

    async def main():
        return await asyncio.gather(*[to_thread(_read_plain, p) for p in paths])

    def body():
        if to_thread is None:
            raise Unavailable("asyncio.to_thread is 3.9+")
        return len(asyncio.run(main()))
    return timed(paths, cold, body)


def read_aiofiles(paths, cold):
    try:
        import aiofiles
    except ImportError:
        aiofiles = None

    async def one(p):
        async with aiofiles.open(p, "rb") as f:
            return await f.read()

    async def main():
        return await asyncio.gather(*[one(p) for p in paths])

    def body():
        if aiofiles is None:
            raise Unavailable("aiofiles is not installed (make deps-test)")
        return len(asyncio.run(main()))
    return timed(paths, cold, body)


def read_uring(m, paths, cold, depth=64, ring=None):
    def body():
        return len(m.read_files(paths, depth=depth, ring=ring))
    return timed(paths, cold, body)


def iter_uring(m, paths, cold, depth=64):
    """The iterator forms, each file taken as the loop reaches it."""
    def body():
        return sum(1 for _ in m.iter_read_files(paths, depth=depth))
    return timed(paths, cold, body)


def aiter_uring(m, paths, cold, depth=64):
    async def main():
        n = 0
        async for _ in m.aiter_read_files(paths, depth=depth):
            n += 1
        return n

    def body():
        return asyncio.run(main())
    return timed(paths, cold, body)


# The large files' rows hinge on malloc, not on the reads: a 1 MiB result
# comes from the reading thread's arena, and when a batch is freed glibc's
# main arena (one thread: the loop, read_files) gives the pages back to the
# kernel, while the pool threads' arenas keep about half of theirs, so the
# next batch's copy faults in fewer fresh pages (each zeroed by the kernel).
# These rows run each reader in a process of its own (bench/read_child.py)
# under three malloc settings, so the difference is shown, not assumed.
MALLOC_SETTINGS = (
    ("malloc as is", {}),
    ("malloc as is, cache cold", {}),
    ("one malloc arena (MALLOC_ARENA_MAX=1)", {"MALLOC_ARENA_MAX": "1"}),
    ("freed memory kept (glibc.malloc.trim_threshold)",
     {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=4294967295:glibc.malloc.mmap_threshold=33554432"}),
)
READ_CHILD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "read_child.py")


def read_child(build, how, folder, count, env, cold):
    def run():
        out = subprocess.run([sys.executable, READ_CHILD, build, how, folder, str(count)] +
                             (["cold"] if cold else []),
                             env=dict(os.environ, **env), capture_output=True, text=True,
                             timeout=300)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else
                               "read_child.py exited %d" % out.returncode)
        return float(out.stdout)
    return run


def malloc_cases(setup):
    count = 100 if setup.quick else 1000
    paths = small_files(setup, count, 1 << 20)
    folder = os.path.dirname(paths[0])
    build = os.path.dirname(os.path.dirname(os.path.abspath(setup.m.__file__)))
    out = []
    for label, env in MALLOC_SETTINGS:
        cold = label.endswith("cold")
        case = Case("read %d files of 1 MiB whole, %s" % (
                        count, label if cold else "cache warm, " + label), "files/s",
                    ("reading large files: malloc's part", "threads"), 1 << 20,
                    reference="open().read() loop", figure=False)
        case.baseline("open().read() loop", read_child(build, "loop", folder, count, env, cold))
        for t in (8, 32):
            case.baseline("ThreadPoolExecutor(%d)" % t, read_child(build, "pool%d" % t, folder, count, env, cold))
        case.variant("py_io_uring.read_files (depth 64, C)",
                     read_child(build, "read_files", folder, count, env, cold))
        case.variant("py_io_uring.read_files (depth 64, C), called in a worker thread",
                     read_child(build, "read_files_thread", folder, count, env, cold))
        out.append(case)
    return out


def count_files(root):
    return sum(len(f) for _, _, f in os.walk(root))


def tree_files(root):
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]


def copy_tree(fn, root, dst, n, cold=False):
    """files per second of fn(root, dst); cold: the sources' pages dropped
    first (the copy's own pages go with it: dst is removed after each run)."""
    sources = tree_files(root) if cold else ()

    def run():
        if os.path.exists(dst):
            shutil.rmtree(dst)
        if cold:
            drop_cache(sources)
        t0 = time.perf_counter()
        fn(root, dst)
        dt = time.perf_counter() - t0
        shutil.rmtree(dst)
        return n / dt
    return run


def sizes(quick):
    return ((1000, 4096),) if quick else ((10000, 4096), (1000, 1 << 20))


def tree_shape(quick):
    return (10, 50, 16384) if quick else (50, 200, 4096)


def large_tree_shape(quick):
    """20 large files (issue 17's tree of large ones), in one folder and
    its subfolder"""
    return (1, 20, (1 << 20) if quick else (32 << 20))


def read_case(m, paths, count, size, cold):
    case = Case("read %d files of %s whole, cache %s" % (
                    count, "%d KiB" % (size // 1024) if size < (1 << 20) else "%d MiB" % (size >> 20),
                    "cold" if cold else "warm"),
                "files/s", ("reading many files whole", "threads"), size, headline=True,
                warmup=not cold, reference="open().read() loop", figure=False)
    case.baseline("open().read() loop", read_loop(paths, cold))
    for t in (8, 32, 64):
        case.baseline("ThreadPoolExecutor(%d)" % t, read_pool(paths, t, cold))
    case.baseline("asyncio.to_thread", read_to_thread(paths, cold))
    case.baseline("aiofiles", read_aiofiles(paths, cold))
    case.variant("py_io_uring.read_files (depth 64, C)", read_uring(m, paths, cold))
    ring = m.IoUring(128)
    case.variant("py_io_uring.read_files (depth 64, WorkQueue)",
                 read_uring(m, paths, cold, 64, ring))
    case.variant("py_io_uring.iter_read_files (depth 64, batches in C)", iter_uring(m, paths, cold))
    case.variant("py_io_uring.aiter_read_files (depth 64, asyncio)", aiter_uring(m, paths, cold))
    return case


def cases(setup):
    m = setup.m
    out = []
    for count, size in sizes(setup.quick):
        paths = small_files(setup, count, size)
        out.append(read_case(m, paths, count, size, False))
    for count, size in sizes(setup.quick):
        paths = small_files(setup, count, size)
        out.append(read_case(m, paths, count, size, True))
    out.extend(malloc_cases(setup))
    dirs, per_dir, size = tree_shape(setup.quick)
    root = file_tree(setup, dirs, per_dir, size)
    n = count_files(root)
    dst = os.path.join(setup.workdir, "tree-copy")
    case = Case("copy a tree of %d files of %d KiB" % (n, size // 1024), "files/s",
                ("copying a tree", "files"), n, headline=True, warmup=True,
                reference="shutil.copytree", figure=False)
    case.baseline("shutil.copytree", copy_tree(shutil.copytree, root, dst, n))
    case.variant("py_io_uring.copytree (depth 64)", copy_tree(m.copytree, root, dst, n))
    out.append(case)
    dirs, per_dir, size = large_tree_shape(setup.quick)
    root = file_tree(setup, dirs, per_dir, size)
    n = count_files(root)
    for cold in (False, True):
        case = Case("copy a tree of %d files of %d MiB, cache %s" % (
                        n, size >> 20, "cold" if cold else "warm"), "files/s",
                    ("copying a tree", "files"), n, headline=True, warmup=not cold,
                    reference="shutil.copytree", figure=False)
        case.baseline("shutil.copytree", copy_tree(shutil.copytree, root, dst, n, cold))
        case.variant("py_io_uring.copytree (depth 64)", copy_tree(m.copytree, root, dst, n, cold))
        out.append(case)
    return out


def describe(quick):
    d, p, s = tree_shape(quick)
    _, lp, ls = large_tree_shape(quick)
    return DESCRIBE % (", ".join("%d files of %d KiB" % (c, z // 1024) for c, z in sizes(quick)),
                       "%d folders of %d files of %d KiB, and of %d files of %d MiB (cache warm, "
                       "then cold: the sources' pages dropped before each run; the copy is "
                       "removed after each)" % (d, p, s // 1024, lp, ls >> 20))

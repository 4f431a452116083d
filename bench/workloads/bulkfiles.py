"""Many files at once (issue 17): py_io_uring.read_files against a plain
loop of open().read(), ThreadPoolExecutor with 8/32/64 threads and asyncio
with to_thread per file; py_io_uring.copytree against shutil.copytree."""

import asyncio
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

from runner import Case, Unavailable
from workloads.files import file_tree, small_files

DESCRIBE = (
    "Many files: read every file of a page-cached folder whole (%s) with "
    "`py_io_uring.read_files` (open+statx, read to EOF, close; depth 64) against a loop of "
    "`open(p, 'rb').read()`, `ThreadPoolExecutor(N).map` of the same with 8, 32 and 64 "
    "threads, and `asyncio.gather` of `asyncio.to_thread` (3.9+; its default executor) per "
    "file; then copy a tree of %s with `py_io_uring.copytree` (data through read/write "
    "pipelines over all files, depth 64; modes and times by `shutil.copystat`) against "
    "`shutil.copytree` (copy2: `copy_file_range`/`sendfile` per file, one at a time). Figures "
    "are files per second.")


def _read_plain(p):
    with open(p, "rb") as f:
        return f.read()


def read_loop(paths):
    def run():
        t0 = time.perf_counter()
        for p in paths:
            _read_plain(p)
        return len(paths) / (time.perf_counter() - t0)
    return run


def read_pool(paths, threads):
    pool = ThreadPoolExecutor(threads)

    def run():
        t0 = time.perf_counter()
        for _ in pool.map(_read_plain, paths):
            pass
        return len(paths) / (time.perf_counter() - t0)
    return run


def read_to_thread(paths):
    to_thread = getattr(asyncio, "to_thread", None)

    async def main():
        await asyncio.gather(*[to_thread(_read_plain, p) for p in paths])

    def run():
        if to_thread is None:
            raise Unavailable("asyncio.to_thread is 3.9+")
        t0 = time.perf_counter()
        asyncio.run(main())
        return len(paths) / (time.perf_counter() - t0)
    return run


def read_uring(m, paths, depth=64):
    def run():
        t0 = time.perf_counter()
        out = m.read_files(paths, depth=depth)
        dt = time.perf_counter() - t0
        if len(out) != len(paths):
            raise RuntimeError("wrong count")
        return len(paths) / dt
    return run


def count_files(root):
    return sum(len(f) for _, _, f in os.walk(root))


def copy_tree(fn, root, dst, n):
    def run():
        if os.path.exists(dst):
            shutil.rmtree(dst)
        t0 = time.perf_counter()
        fn(root, dst)
        dt = time.perf_counter() - t0
        shutil.rmtree(dst)
        return n / dt
    return run


def sizes(quick):
    return ((1000, 4096),) if quick else ((2000, 4096), (500, 256 * 1024))


def tree_shape(quick):
    return (10, 50, 16384) if quick else (20, 100, 16384)


def cases(setup):
    m = setup.m
    out = []
    for count, size in sizes(setup.quick):
        paths = small_files(setup, count, size)
        case = Case("read %d files of %d KiB whole" % (count, size // 1024), "files/s",
                    ("reading many files whole", "threads"), size, headline=True,
                    warmup=True, reference="open().read() loop", figure=False)
        case.baseline("open().read() loop", read_loop(paths))
        for t in (8, 32, 64):
            case.baseline("ThreadPoolExecutor(%d)" % t, read_pool(paths, t))
        case.baseline("asyncio.to_thread", read_to_thread(paths))
        case.variant("py_io_uring.read_files (depth 64)", read_uring(m, paths))
        case.variant("py_io_uring.read_files (depth 16)", read_uring(m, paths, 16))
        out.append(case)
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
    return out


def describe(quick):
    d, p, s = tree_shape(quick)
    return DESCRIBE % (", ".join("%d files of %d KiB" % (c, z // 1024) for c, z in sizes(quick)),
                       "%d folders of %d files of %d KiB" % (d, p, s // 1024))

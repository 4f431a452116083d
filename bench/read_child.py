"""One timed run of a whole-file reader, in a process of its own, under the
malloc settings its environment gives (bench/workloads/bulkfiles.py, the
"malloc" rows):

    python3 bench/read_child.py BUILD HOW FOLDER COUNT [cold]

HOW is loop, pool8, pool32, read_files or read_files_thread (read_files()
called from a worker thread); the files are FOLDER/f00000...
UNTIMED untimed runs first, then the timed one, so the timed run meets what
a program that reads batch after batch meets once it is steady: the memory
the earlier batches freed, kept or given back as malloc decides.  One
untimed run is not enough: a pool's arenas keep more of what they free from
the third batch on (2026-12-07, 1,000 files of 1 MiB: 258 faults a file
in batches 1 and 2, 95-159 from batch 3 on).  cold: the files' pages are
dropped from the page cache before the timed run.  Prints files per
second."""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

UNTIMED = 3


def _read_plain(p):
    with open(p, "rb") as f:
        return f.read()


def main():
    build, how, folder, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    sys.path.insert(0, build)
    import py_io_uring as m
    paths = [os.path.join(folder, "f%05d" % i) for i in range(count)]
    pool = ThreadPoolExecutor(int(how[4:])) if how.startswith("pool") else None
    if how == "loop":
        body = lambda: [_read_plain(p) for p in paths]  # noqa: E731
    elif pool is not None:
        body = lambda: list(pool.map(_read_plain, paths))  # noqa: E731
    elif how == "read_files":
        body = lambda: m.read_files(paths, depth=64)  # noqa: E731
    elif how == "read_files_thread":
        # malloc's arena is the calling thread's: a worker thread's keeps
        # freed memory as the pool's threads' do, the main arena gives it back
        worker = ThreadPoolExecutor(1)
        body = lambda: worker.submit(m.read_files, paths, depth=64).result()  # noqa: E731
    else:
        raise SystemExit("read_child.py: unknown reader %r" % how)
    for _ in range(UNTIMED):
        out = body()
        del out
    if sys.argv[5:] == ["cold"]:
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    t0 = time.perf_counter()
    out = body()
    dt = time.perf_counter() - t0
    if len(out) != count or any(len(d) != len(out[0]) for d in out):
        raise SystemExit("read_child.py: read %d files, sizes differ" % len(out))
    print(count / dt)


if __name__ == "__main__":
    main()

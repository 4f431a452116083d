"""Copying a file through the page cache (no fsync): py_io_uring's
read/write pipeline and linked splices, swept over the buffers (pipes) in
flight, against shutil.copyfile and a readinto/write loop."""

import fcntl
import os
import shutil
import time

from runner import Case, human
from workloads.files import big_file

DESCRIBE = (
    "Copy: py_io_uring keeps N one-MiB buffers cycling read -> write -> read; `shutil.copyfile` "
    "uses `copy_file_range`/`sendfile` in the kernel (no copy to user space); the "
    "readinto/write loop is the plain Python equivalent of the pipeline. The copy lands in "
    "the page cache (no fsync); it runs at N = 4 only. Each variant runs once untimed before the "
    "repetitions. The "
    "\"1 io-wq worker\" row (4 buffers only) is the pipeline with `register_iowq_max_workers(1, 1)`; "
    "the splice row moves each chunk file -> pipe -> file with two linked splices, N pipes in "
    "flight (what `py_io_uring.copyfile` did until it moved to `copy_file_range` in a worker "
    "thread, its own row). Swept over N (%s); the table shows N = 4.")


def inflight_counts(quick):
    return (4,) if quick else (1, 4, 16)


def py_copy(m, src, dst, chunk=1 << 20, inflight=4, one_worker=False):
    """Read/write pipeline: `inflight` buffers, each going read -> write -> read.
    one_worker: register_iowq_max_workers(1, 1), so writes the kernel hands
    to its worker threads run one at a time instead of contending for the
    file's inode lock."""
    def run():
        size = os.path.getsize(src)
        fin = os.open(src, os.O_RDONLY)
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        ring = m.IoUring(64)
        if one_worker:
            ring.register_iowq_max_workers(1, 1)
        bufs = [bytearray(chunk) for _ in range(inflight)]
        views = [memoryview(b) for b in bufs]
        pos = 0
        pending = 0
        t0 = time.perf_counter()
        try:
            # data: (slot, offset, is_write)
            for slot in range(inflight):
                if pos >= size:
                    break
                sqe = ring.get_sqe()
                sqe.prep_read(fin, views[slot], pos)
                sqe.set_data((slot, pos, False))
                pos += chunk
                pending += 1
            while pending:
                ring.submit_and_wait(1)
                c = ring.peek_cqe()
                while c is not None:
                    slot, off, is_write = c.get_data()
                    n = c.getresult()
                    ring.cqe_seen(c)
                    pending -= 1
                    if not is_write:
                        sqe = ring.get_sqe()
                        sqe.prep_write(fout, views[slot][:n], off)
                        sqe.set_data((slot, off, True))
                        pending += 1
                    elif pos < size:
                        sqe = ring.get_sqe()
                        sqe.prep_read(fin, views[slot], pos)
                        sqe.set_data((slot, pos, False))
                        pos += chunk
                        pending += 1
                    c = ring.peek_cqe()
            dt = time.perf_counter() - t0
        finally:
            ring.queue_exit()
            os.close(fin)
            os.close(fout)
        if os.path.getsize(dst) != size:
            raise RuntimeError("copy has the wrong size")
        os.unlink(dst)
        return size / dt / 1e6
    return run


def py_copy_splice(m, src, dst, chunk=1 << 20, inflight=4):
    """The copy without user-space copies: per pipe, splice(src -> pipe)
    linked to splice(pipe -> dst) at the same offset, `inflight` pipes of
    `chunk` bytes in flight, with the fast forms."""
    def run():
        size = os.path.getsize(src)
        fin = os.open(src, os.O_RDONLY)
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        pipes = [os.pipe() for _ in range(inflight)]
        ring = m.IoUring(64)
        link = m.IOSQE_IO_LINK
        pos = 0
        pending = 0
        moved = 0

        def start(slot):
            nonlocal pos, pending
            n = min(chunk, size - pos)
            r, w = pipes[slot]
            ring.prep_splice(fin, pos, w, -1, n, user_data=None, sqe_flags=link)
            ring.prep_splice(r, -1, fout, pos, n, user_data=(slot, n))
            pos += n
            pending += 1

        t0 = time.perf_counter()
        try:
            for r, w in pipes:
                fcntl.fcntl(w, 1031, chunk)            # F_SETPIPE_SZ
            for slot in range(inflight):
                if pos < size:
                    start(slot)
            while pending:
                for data, res, _ in ring.reap(2 * inflight, 1, True):
                    if data is None:                  # the splice into the pipe
                        if res < 0:
                            raise OSError(-res, "splice in: " + os.strerror(-res))
                        continue
                    slot, n = data
                    if res != n:
                        raise RuntimeError("short splice: %d of %d" % (res, n))
                    moved += n
                    pending -= 1
                    if pos < size:
                        start(slot)
            dt = time.perf_counter() - t0
        finally:
            ring.queue_exit()
            os.close(fin)
            os.close(fout)
            for r, w in pipes:
                os.close(r)
                os.close(w)
        if moved != size or os.path.getsize(dst) != size:
            raise RuntimeError("copy has the wrong size")
        os.unlink(dst)
        return size / dt / 1e6
    return run


def uring_copyfile(m, src, dst, depth):
    """py_io_uring.copyfile: the bulk helper (linked splices through
    depth // 2 pipes of 1 MiB)."""
    def run():
        size = os.path.getsize(src)
        t0 = time.perf_counter()
        m.copyfile(src, dst, depth=depth)
        dt = time.perf_counter() - t0
        os.unlink(dst)
        return size / dt / 1e6
    return run


def shutil_copy(src, dst):
    def run():
        size = os.path.getsize(src)
        t0 = time.perf_counter()
        shutil.copyfile(src, dst)
        dt = time.perf_counter() - t0
        os.unlink(dst)
        return size / dt / 1e6
    return run


def rw_loop_copy(src, dst, chunk=1 << 20):
    def run():
        size = os.path.getsize(src)
        t0 = time.perf_counter()
        buf = bytearray(chunk)
        with open(src, "rb", buffering=0) as fi, open(dst, "wb", buffering=0) as fo:
            view = memoryview(buf)
            while True:
                n = fi.readinto(buf)
                if not n:
                    break
                fo.write(view[:n])
        dt = time.perf_counter() - t0
        os.unlink(dst)
        return size / dt / 1e6
    return run


def cases(setup):
    m = setup.m
    big = big_file(setup)
    dst = os.path.join(setup.workdir, "copy.dat")
    panel = ("copying a %s file, 1 MiB chunks" % human(setup.size), "buffers (pipes) in flight")
    out = []
    for inflight in inflight_counts(setup.quick):
        case = Case("copy a %s file (1 MiB chunks), %d in flight" % (human(setup.size), inflight), "MB/s",
                    panel, inflight, headline=inflight == 4, warmup=True, reference="shutil.copyfile")
        case.baseline("shutil.copyfile", shutil_copy(big, dst), "shutil.copyfile")
        if inflight == 4:
            # the loop has no buffers in flight: it is measured once, at the table's point
            case.baseline("readinto/write loop", rw_loop_copy(big, dst), "readinto/write loop")
        case.variant("py_io_uring (%d buffers in flight)" % inflight, py_copy(m, big, dst, inflight=inflight),
                     "read/write pipeline", against=["shutil.copyfile"] + (["readinto/write loop"] if inflight == 4 else []))
        if inflight == 4:
            case.variant("py_io_uring (4 buffers in flight, 1 io-wq worker)",
                         py_copy(m, big, dst, inflight=4, one_worker=True), against=["shutil.copyfile"])
        if inflight == 4:
            case.variant("py_io_uring.copyfile (copy_file_range in a thread)",
                         uring_copyfile(m, big, dst, 8),
                         against=["shutil.copyfile"])
        case.variant("py_io_uring (linked splices through %d pipes)" % inflight,
                     py_copy_splice(m, big, dst, inflight=inflight), "linked splices", against=["shutil.copyfile"])
        out.append(case)
    return out


def describe(quick):
    return DESCRIBE % ", ".join(map(str, inflight_counts(quick)))

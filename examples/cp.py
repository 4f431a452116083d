"""cp with io_uring: python examples/cp.py [--progress] SRC DST

Keeps up to DEPTH operations in flight: reads of BLOCK bytes at their own
offsets, and, as each read completes, the write of its data at the same
offset in DST.  Every loop submits everything queued with one system call
and reaps every completion that is ready.  Short reads and short writes
queue the rest.  A progress bar goes to stderr for large files (or with
--progress)."""

import os
import sys
import time

import _path  # noqa: F401  (the checkout's build, when there is one)
from py_io_uring import IoUring

BLOCK = 128 * 1024
DEPTH = 32
LARGE = 64 * 1024 * 1024     # show progress from this size on


class Progress:
    """A bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, total, enabled):
        self.total, self.enabled, self.last = total, enabled, 0.0

    def update(self, done, final=False):
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 0.1):
            return
        self.last = now
        frac = done / self.total if self.total else 1.0
        bar = "#" * int(frac * 40)
        sys.stderr.write("\r[%-40s] %3d%% %d/%d bytes" % (bar, frac * 100, done, self.total))
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def copy(ring, src, dst, size, progress):
    queued = []            # (op, fd, data-or-length, offset), submitted next round
    next_read = 0          # offset of the next read to start
    written = 0
    in_flight = 0
    while written < size:
        while in_flight + len(queued) < DEPTH and next_read < size:
            n = min(BLOCK, size - next_read)
            queued.append(("read", src, n, next_read))
            next_read += n
        for op, fd, arg, offset in queued:
            sqe = ring.get_sqe()
            if op == "read":
                sqe.prep_read(fd, arg, offset)
            else:
                sqe.prep_write(fd, arg, offset)
            sqe.set_data((op, arg, offset))
        in_flight += len(queued)
        queued = []
        ring.submit()
        # wait for one completion, then take every other one already there
        cqes = [ring.wait_cqe()]
        ring.cqe_seen(cqes[0])
        while True:
            cqe = ring.peek_cqe()
            if cqe is None:
                break
            ring.cqe_seen(cqe)
            cqes.append(cqe)
        for cqe in cqes:
            in_flight -= 1
            op, arg, offset = cqe.get_data()
            result = cqe.getresult()            # raises the OSError of a failure
            if op == "read":
                if not result:
                    raise RuntimeError("%d bytes short: the source shrank" % (size - offset))
                queued.append(("write", dst, result, offset))
                if len(result) < arg:          # a short read: read the rest
                    queued.append(("read", src, arg - len(result), offset + len(result)))
            else:
                written += result
                if result < len(arg):          # a short write: write the rest
                    queued.append(("write", dst, arg[result:], offset + result))
        progress.update(written)
    progress.update(written, final=True)


def main(argv):
    args = argv[1:]
    show = "--progress" in args
    args = [a for a in args if a != "--progress"]
    if len(args) != 2:
        print("usage: cp.py [--progress] SRC DST", file=sys.stderr)
        return 2
    src = os.open(args[0], os.O_RDONLY)
    try:
        st = os.fstat(src)
        dst = os.open(args[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, st.st_mode & 0o777)
        try:
            with IoUring(2 * DEPTH) as ring:
                copy(ring, src, dst, st.st_size, Progress(st.st_size, show or st.st_size >= LARGE))
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

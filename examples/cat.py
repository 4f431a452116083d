"""cat with io_uring: python examples/cat.py FILE... > out

Each file is read in batches: up to DEPTH reads of BLOCK bytes at their own
offsets go to the kernel in one submit(), and their data is written to
stdout in file order as the batch completes."""

import os
import sys

import _path  # noqa: F401  (the checkout's build, when there is one)
from py_io_uring import IoUring

BLOCK = 64 * 1024
DEPTH = 16


def cat(ring, fd, out):
    offset = 0
    while True:
        # one batch: DEPTH reads, one system call to submit them all
        for i in range(DEPTH):
            sqe = ring.get_sqe()
            sqe.prep_read(fd, BLOCK, offset + i * BLOCK)
            sqe.set_data(i)
        ring.submit()
        chunks = [b""] * DEPTH
        for cqe in ring.wait_cqe_nr(DEPTH):
            ring.cqe_seen(cqe)
            chunks[cqe.get_data()] = cqe.getresult()   # bytes; OSError on failure
        for chunk in chunks:
            out.write(chunk)
            offset += len(chunk)
            if len(chunk) < BLOCK:   # end of file (or a short read: go on from here)
                if chunk:
                    break
                return
        out.flush()


def main(argv):
    if len(argv) < 2:
        print("usage: cat.py FILE...", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    with IoUring(DEPTH) as ring:
        for path in argv[1:]:
            fd = os.open(path, os.O_RDONLY)
            try:
                cat(ring, fd, out)
            finally:
                os.close(fd)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

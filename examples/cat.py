"""cat with io_uring: python examples/cat.py FILE... > out

Each file is read on a WorkQueue (py_io_uring.WorkQueue): up to DEPTH reads
of BLOCK bytes at their own offsets in flight, submitted together, and the
data written to stdout in file order as the reads complete.  A short read
asks for the rest of its block; the file ends where a read returns
nothing."""

import os
import sys

import _path  # noqa: F401  (the checkout's build, when there is one)
from py_io_uring import WorkQueue

BLOCK = 64 * 1024
DEPTH = 16


def cat(q, path, out):
    fd = os.open(path, os.O_RDONLY)
    try:
        got = {}            # offset -> data read there, not yet written
        pos = 0             # the next byte to write
        next_read = 0       # the next block to ask for
        eof = None          # where a read found the end
        while eof is None or pos < eof:
            while q.room and (eof is None or next_read < eof):
                q.put("read", fd, BLOCK, next_read, data=(next_read, BLOCK))
                next_read += BLOCK
            for (off, want), res, flags in q.complete():
                if isinstance(res, int):            # -errno
                    raise OSError(-res, os.strerror(-res), path)
                got[off] = res
                if not res:
                    eof = off if eof is None else min(eof, off)
                elif len(res) < want:               # short: the rest of the block
                    q.put("read", fd, want - len(res), off + len(res),
                          data=(off + len(res), want - len(res)))
            while pos in got and got[pos]:
                data = got.pop(pos)
                out.write(data)
                pos += len(data)
    finally:
        q.drain()           # no read left on fd when it closes
        os.close(fd)


def main(argv):
    if len(argv) < 2:
        print("usage: cat.py FILE...", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    with WorkQueue(depth=DEPTH) as q:
        for path in argv[1:]:
            cat(q, path, out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

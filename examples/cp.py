"""cp with io_uring: python examples/cp.py [--progress] SRC DST

Copies SRC's data to DST with py_io_uring.copyfile (on a WorkQueue: chunks
move src -> pipe -> dst through linked splices, several in flight), then
gives DST SRC's permission bits, as cp does for a new file.  A progress bar
goes to stderr for large files (or with --progress), fed by copyfile's
progress callback."""

import shutil
import os
import sys
import time

import _path  # noqa: F401  (the checkout's build, when there is one)
import py_io_uring

DEPTH = 32
LARGE = 64 * 1024 * 1024     # show progress from this size on


class Progress:
    """A bar on stderr, redrawn at most 10 times a second; a callback for
    copyfile's progress=: (bytes_done, bytes_total, files_done, files_total)."""

    def __init__(self, total, enabled):
        self.total, self.enabled, self.last = total, enabled, 0.0

    def __call__(self, done, total, files, nfiles):
        self.total = total
        self.update(done, final=files == nfiles)

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


def main(argv):
    args = argv[1:]
    show = "--progress" in args
    args = [a for a in args if a != "--progress"]
    if len(args) != 2:
        print("usage: cp.py [--progress] SRC DST", file=sys.stderr)
        return 2
    src, dst = args
    size = os.stat(src).st_size
    progress = Progress(size, show or size >= LARGE)
    py_io_uring.copyfile(src, dst, depth=DEPTH, progress=progress)
    shutil.copymode(src, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""cp -r with io_uring: python examples/cptree.py [--progress] SRC DST

Copies the tree SRC to DST (which must not exist) as shutil.copytree does,
with py_io_uring.copytree: small files' data by reads linked to writes on
a ring, large ones by the kernel's copy_file_range, several files at once, and each file and folder gets its mode and times.
Errors are collected and printed, one a line, as shutil.Error gives them;
the exit status is then 1."""

import shutil
import sys
import time

import _path  # noqa: F401  (the checkout's build, when there is one)
import py_io_uring


class Progress:
    """Bytes copied on stderr, redrawn at most 10 times a second."""

    def __init__(self):
        self.last = 0.0

    def __call__(self, done, total, files, nfiles):
        now = time.monotonic()
        if now - self.last >= 0.1 or files == nfiles:
            self.last = now
            sys.stderr.write("\r%d/%d bytes" % (done, total))
            sys.stderr.flush()


def main(argv):
    args = argv[1:]
    show = "--progress" in args
    args = [a for a in args if a != "--progress"]
    if len(args) != 2:
        print("usage: cptree.py [--progress] SRC DST", file=sys.stderr)
        return 2
    try:
        py_io_uring.copytree(args[0], args[1], symlinks=True,
                             progress=Progress() if show else None)
    except shutil.Error as err:
        for src, dst, why in err.args[0]:
            print("%s -> %s: %s" % (src, dst, why), file=sys.stderr)
        return 1
    finally:
        if show:
            sys.stderr.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

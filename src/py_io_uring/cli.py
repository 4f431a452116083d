"""The file commands of `python -m py_io_uring` (__main__.py dispatches
here): `cp SRC DST` and `cat FILE...`, on the bulk helpers and WorkQueue,
with a progress bar on stderr when stderr is a terminal: tqdm's when tqdm
is installed, else a plain one-line bar; none when it is not a terminal."""

import importlib
import os
import sys
import time

from .workqueue import WorkQueue

BLOCK = 256 * 1024      # cat's read size
DEPTH = 16              # cat's reads in flight


class PlainBar(object):
    """One line on stderr, redrawn at most 10 times a second:
    `[#######.....]  42% 12.6/30.0 MiB 3/7 files`."""

    WIDTH = 30

    def __init__(self, total, out):
        self.total, self.out = total, out
        self.done = 0
        self.files = None
        self.last = 0.0

    def update(self, done, files=None, final=False):
        self.done, self.files = done, files
        now = time.monotonic()
        if not final and now - self.last < 0.1:
            return
        self.last = now
        frac = min(done / self.total, 1.0) if self.total else 1.0
        text = "\r[%-*s] %3d%% %.1f/%.1f MiB" % (
            self.WIDTH, "#" * int(frac * self.WIDTH), frac * 100,
            done / 1048576.0, self.total / 1048576.0)
        if files is not None:
            text += " %d/%d files" % files
        self.out.write(text)
        self.out.flush()

    def close(self):
        self.update(self.done, self.files, final=True)
        self.out.write("\n")
        self.out.flush()


class TqdmBar(object):
    def __init__(self, total, out, tqdm):
        self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                        file=out, leave=True)
        self.done = 0

    def update(self, done, files=None, final=False):
        if done > self.done:
            self.bar.update(done - self.done)
            self.done = done
        if files is not None:
            self.bar.set_postfix_str("%d/%d files" % files, refresh=False)

    def close(self):
        self.bar.close()


class NoBar(object):
    def update(self, done, files=None, final=False):
        pass

    def close(self):
        pass


def make_bar(total, out=None):
    """The bar for `total` bytes on out (stderr): none unless out is a
    terminal; tqdm's when it can be imported."""
    out = sys.stderr if out is None else out
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return NoBar()
    try:
        # (by name: an optional dependency, with no stubs for type checkers)
        tqdm = importlib.import_module("tqdm").tqdm
    except ImportError:
        return PlainBar(total, out)
    return TqdmBar(total, out, tqdm)


def _tree_size(path):
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def cp(src, dst):
    """cp SRC DST: a file as shutil.copy2, a folder as shutil.copytree
    (symlinks copied as links); either into DST when it is a folder, as
    cp -r does.  Errors as shutil's."""
    from .files import copy2, copytree

    tree = os.path.isdir(src) and not os.path.islink(src)
    if tree and os.path.isdir(dst):
        dst = os.path.join(dst, os.path.basename(os.path.normpath(src)))
    bar = make_bar(_tree_size(src) if tree else os.stat(src).st_size)

    def progress(done, total, files, nfiles):
        bar.update(done, (files, nfiles) if tree else None)

    try:
        if tree:
            copytree(src, dst, symlinks=True, progress=progress)
        else:
            copy2(src, dst, progress=progress)
    finally:
        bar.close()


def cat(paths, out=None, on_error=None):
    """cat FILE...: each file's bytes to out (stdout's buffer), in order,
    read DEPTH blocks ahead through a WorkQueue.  A file that cannot be
    read raises its OSError (with the path); with on_error, on_error(err)
    is called instead and the next file follows, as cat goes on.  Writing
    to out fails at once either way."""
    out = sys.stdout.buffer if out is None else out
    total = 0
    for p in paths:
        try:
            total += os.stat(p).st_size
        except OSError:
            pass
    bar = make_bar(total)
    done = [0]
    try:
        with WorkQueue(depth=DEPTH) as q:
            for path in paths:
                pieces = stream(q, path)
                while True:
                    try:
                        data = next(pieces)
                    except StopIteration:
                        break
                    except OSError as err:   # reading (stream() has closed it)
                        if on_error is None:
                            raise
                        on_error(err)
                        break
                    out.write(data)
                    done[0] += len(data)
                    bar.update(done[0])
        out.flush()
    finally:
        bar.close()


def stream(q, path, block=BLOCK):
    """Yield the bytes of the file at path in order, in pieces, with up to
    q.depth reads in flight on the WorkQueue q.  os's errors, with the path.
    Reads go on until one at the end returns nothing (a short read is not
    the end: the rest of that block is asked for again)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        got = {}            # offset -> data read there, not yet yielded
        pos = 0             # offset of the next byte to yield
        next_read = 0       # offset of the next block to ask for
        eof = None          # offset where a read found the end
        while True:
            while q.room and (eof is None or next_read < eof):
                q.put("read", fd, block, next_read, data=(next_read, block))
                next_read += block
            for (off, want), res, flags in q.complete(True):
                if isinstance(res, int):
                    raise OSError(-res, os.strerror(-res), path)
                got[off] = res
                if not res:
                    eof = off if eof is None else min(eof, off)
                elif len(res) < want and (eof is None or off + len(res) < eof):
                    # short: ask for the rest of the block
                    q.put("read", fd, want - len(res), off + len(res),
                          data=(off + len(res), want - len(res)))
            while pos in got:
                data = got.pop(pos)
                if not data:
                    return
                pos += len(data)
                yield data
            if eof is not None and pos >= eof:
                return
    finally:
        q.drain()           # nothing left reading the fd when it closes
        os.close(fd)

"""copyfile(..., o_direct=True): a copy that bypasses the page cache
(O_DIRECT on both files), for copies larger than memory that should not
evict what the cache holds (backups, restores, data staging).

O_DIRECT moves data between the device and the caller's memory with no
cached copy, and asks for alignment: buffers, offsets and lengths in
whole logical blocks.  So the buffers are anonymous mmaps (page-aligned),
chunks are 1 MiB at 1 MiB offsets, and the last chunk is read and written
rounded up to a whole block, then the destination is truncated to the
source's size.  Per chunk one read linked to one write through its buffer
(both pinned by their records), depth // 2 chunks in flight.  As the other
copies (files.py), the copy is the file to its end: a file that shrank is
copied as it is, bytes it gained since fstat() are copied after, with
O_DIRECT cleared for that unaligned tail.  Where a file system refuses
O_DIRECT (EINVAL at open), that file is opened without it."""

import errno
import fcntl
import mmap
import os
import stat as _stat

from . import IOSQE_IO_LINK
from .files import _checkpoint
from .workqueue import WorkQueue

_CHUNK = 1 << 20
_BLOCK = 4096           # rounding for the tail: a multiple of every
                        # logical block size Linux file systems use
_READ, _WRITE = 0, 1


def _open(path, flags, mode=0o666):
    """path opened with O_DIRECT, or without it where its file system
    refuses it; (fd, direct)."""
    try:
        return os.open(path, flags | os.O_DIRECT, mode), True
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    return os.open(path, flags, mode), False


def _error(res, path):
    return OSError(-res, os.strerror(-res), path)


class _Chunk(object):
    __slots__ = ("buf", "view", "off", "n", "got_r", "got_w")

    def __init__(self):
        self.buf = mmap.mmap(-1, _CHUNK)
        self.view = memoryview(self.buf)
        self.off = self.n = 0
        self.got_r = self.got_w = None

    def close(self):
        self.view.release()
        self.buf.close()


def copy_direct(src, dst, depth, progress):
    """Copy src's data to dst with O_DIRECT (see the module's docstring);
    os's errors with the path, raised after what is in flight is drained."""
    sfd = dfd = None
    chunks = []
    q = None
    try:
        sfd, _ = _open(src, os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(sfd)
        if _stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), src)
        size = st.st_size
        dfd, _ = _open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
        nchunks = max(int(depth) // 2, 1)
        chunks = [_Chunk() for _ in range(nchunks)]
        free = list(chunks)
        q = WorkQueue(None, 2 * nchunks)
        nxt = 0             # the next chunk's offset
        end = size          # where the source ends, as the reads find it
        written = 0         # bytes of the source in dst, for progress
        error = None
        while True:
            _checkpoint()
            while free and error is None and nxt < end and q.room >= 2:
                c = free.pop()
                c.off, c.n = nxt, min(_CHUNK, end - nxt)
                whole = -(-c.n // _BLOCK) * _BLOCK
                c.got_r = c.got_w = None
                q.put("read", sfd, c.view[:whole], c.off, data=(c, _READ),
                      sqe_flags=IOSQE_IO_LINK)
                q.put("write", dfd, c.view[:whole], c.off, data=(c, _WRITE))
                nxt += c.n
            if not q.in_flight:
                break
            for (c, kind), res, _flags in q.complete(True):
                if kind == _READ:
                    c.got_r = res
                else:
                    c.got_w = res
                if c.got_r is None or c.got_w is None:
                    continue
                r, w = c.got_r, c.got_w
                if r < 0:
                    error = error or _error(r, src)
                elif w < 0 and w != -errno.ECANCELED:
                    error = error or _error(w, dst)
                elif r >= c.n and w >= c.n:
                    written += c.n
                elif error is None:
                    # a short read (the file shrank, or this is its end
                    # read whole-block) broke the link: what it read goes
                    # out now, rounded up to a block (truncated below)
                    got = min(r, c.n)
                    if got:
                        whole = -(-got // _BLOCK) * _BLOCK
                        try:
                            os.pwrite(dfd, c.view[:whole], c.off)
                        except OSError as e:
                            error = OSError(e.errno, e.strerror, dst)
                    written += got
                    if r < c.n:
                        end = min(end, c.off + r)   # it ends here now
                free.append(c)
            if progress is not None:
                progress(written, max(size, written), 0, 1)
        if error is not None:
            raise error
        # the padding of the last block goes; then, as shutil copies to EOF,
        # what the file gained since fstat(), through the cache (unaligned)
        os.ftruncate(dfd, end)
        for fd in (sfd, dfd):
            fl = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_DIRECT)
        off = end
        while True:
            try:
                data = os.pread(sfd, _CHUNK, off)
            except OSError as e:
                raise OSError(e.errno, e.strerror, src)
            if not data:
                break
            try:
                os.pwrite(dfd, data, off)
            except OSError as e:
                raise OSError(e.errno, e.strerror, dst)
            off += len(data)
            written += len(data)
        if progress is not None:
            progress(written, max(size, written), 1, 1)
    finally:
        if q is not None:
            q.close()       # drains: nothing reads or writes a freed buffer
        for c in chunks:
            c.close()
        for fd in (sfd, dfd):
            if fd is not None:
                os.close(fd)

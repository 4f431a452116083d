"""Files the way Python programs use them: many files read or copied at
once through one sync IoUring, with os's and shutil's errors and semantics.

Every helper here is built from WorkQueue (workqueue.py): at most `depth`
operations in flight, and on any error or early exit everything in flight
is drained and every descriptor the helper opened is closed before the
error propagates."""

import errno
import hashlib
import os
import shutil
import stat as _stat
import threading
# typing's names under a private alias, as loop.py does
import typing as _t

from . import AT_FDCWD, IOSQE_FIXED_FILE, IOSQE_IO_LINK, IoUring
from . import read_many as _read_many
from . import _read_worker
from .workqueue import WorkQueue

if _t.TYPE_CHECKING:
    from . import _StrOrBytesPath

# a path as the caller gave it, handed back with its data
_P = _t.TypeVar("_P", bound="_StrOrBytesPath")
# progress(bytes_done, bytes_total, files_done, files_total) of the copies
_Progress = _t.Optional[_t.Callable[[int, int, int, int], object]]
# read_files's: the same, with no byte total (None: no file is stat'ed up front)
_ReadProgress = _t.Optional[_t.Callable[[int, None, int, int], object]]
# hash_files()'s digest: as hashlib.file_digest() takes it, a name
# hashlib.new() knows or a callable that makes a new hash object
_Digest = _t.Union[str, _t.Callable[[], "hashlib._Hash"]]

__all__ = ["read_files", "iter_read_files", "hash_files", "copyfile", "copy2", "copytree"]

_CHUNK = 64 * 1024          # read size when the size is unknown (procfs: 0)
_COPY_BLOCK = 128 * 1024    # copy block, as examples/cp.py
_O_RDONLY = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_O_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)

# what an entry was, in its user data
_OPEN, _STAT, _READ, _CLOSE, _WRITE = range(5)


# The awaitable forms (files_async.py) run these helpers in a thread of
# their own.  A cancelled await sets _tls.stop there; the copies look at it
# once per round of completions and per folder of a tree (_checkpoint), the
# reads through their progress hook, and then drain and close as for any
# error, so nothing is in flight or open when the await ends.
_tls = threading.local()


class _Stopped(BaseException):
    """The awaiting task was cancelled.  Not an Exception: copytree's
    per-file error list must not take it for a file's failure."""


def _checkpoint():
    stop = getattr(_tls, "stop", None)
    if stop is not None and stop.is_set():
        raise _Stopped()


def _error(res, path):
    # os's error for -errno on path: OSError(2, ..., path) is FileNotFoundError
    return OSError(-res, os.strerror(-res), path)


def _check_errors(errors):
    if errors not in ("raise", "return"):
        raise ValueError("errors must be 'raise' or 'return', not %r" % (errors,))


def _path_list(paths: _t.Iterable[_P], fname: str) -> _t.List[_P]:
    """The paths as a list.  One path given alone is refused: a str would
    be read as a file per character."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("%s() takes an iterable of paths, not one %s path; "
                        "wrap it in a list" % (fname, type(paths).__name__))
    return list(paths)


class _File(object):
    __slots__ = ("index", "path", "fd", "size", "chunks", "total", "want",
                 "pending", "error", "done")

    def __init__(self, index, path):
        self.index, self.path = index, path
        self.fd = None
        self.size = None
        self.chunks = []
        self.total = 0
        self.want = 0
        self.pending = 0
        self.error = None
        self.done = False


def _drain_close(data, res):
    # on_drain for the readers: a file whose last entry completes during a
    # drain has its descriptor closed here, synchronously.
    f, kind = data
    f.pending -= 1
    if kind == _OPEN and res >= 0:
        f.fd = res
    if kind == _CLOSE:
        f.fd = None
    if f.pending == 0 and f.fd is not None:
        fd, f.fd = f.fd, None
        os.close(fd)


def _read_iter(paths, depth, errors, ring):
    """Yield (index, path, data or exception) in completion order."""
    _check_errors(errors)
    paths = list(paths)
    for p in paths:
        os.fspath(p)        # TypeError up front, before anything is queued
    q = WorkQueue(ring, depth, on_drain=_drain_close)
    need = 2 if q.depth >= 2 else 1
    try:
        nxt = 0

        qput = q.put

        def put(f, kind, op, *args):
            f.pending += 1
            qput(op, *args, data=(f, kind))

        def start_read(f):
            if f.size:
                want = f.size + 1 - f.total if f.total <= f.size else _CHUNK
            else:
                want = _CHUNK
            f.want = want
            put(f, _READ, "read", f.fd, want, f.total)

        def finish(f):
            # data (or error) is known: close the fd, if open
            f.done = True
            if f.fd is not None:
                fd, f.fd = f.fd, None
                put(f, _CLOSE, "close", fd)

        while True:
            # open and statx together: two entries per new file
            # (depth 1: no statx, the file is read in chunks to EOF)
            while nxt < len(paths) and q.room >= need:
                f = _File(nxt, paths[nxt])
                nxt += 1
                put(f, _OPEN, "openat", AT_FDCWD, f.path, _O_RDONLY)
                if need == 2:
                    put(f, _STAT, "statx", AT_FDCWD, f.path, 0)
                else:
                    f.size = 0
            if not q.in_flight:
                return
            batch = q.complete(True)
            for i in range(len(batch)):
                (f, kind), res, flags = batch[i]
                try:
                    f.pending -= 1
                    if kind == _OPEN:
                        if res < 0:
                            f.error = f.error or _error(res, f.path)
                        else:
                            f.fd = res
                    elif kind == _STAT:
                        if isinstance(res, int):
                            f.size = 0      # read in chunks to EOF
                        else:
                            f.size = res.st_size
                    elif kind == _READ:
                        if isinstance(res, int):
                            f.error = _error(res, f.path)
                        else:
                            f.chunks.append(res)
                            f.total += len(res)
                            # EOF: nothing read, or a short read once the
                            # size statx saw is in; else read on
                            if res and not (len(res) < f.want and f.size
                                            and f.total >= f.size):
                                start_read(f)
                                continue
                            finish(f)
                            data = f.chunks[0] if len(f.chunks) == 1 else b"".join(f.chunks)
                            f.chunks = None
                            yield f.index, f.path, data
                            continue
                    elif kind == _CLOSE:
                        if res < 0 and f.error is None:
                            f.error = _error(res, f.path)
                            yield f.index, f.path, f.error
                        continue
                    if f.pending == 0 and not f.done:
                        # open and statx both in (or a read failed)
                        if f.error is not None:
                            finish(f)
                            if errors == "raise":
                                raise f.error
                            yield f.index, f.path, f.error
                        else:
                            start_read(f)
                except BaseException:
                    # raising or closed early: the rest of this batch is
                    # drained too (an open among it made an fd)
                    for data, res, flags in batch[i + 1:]:
                        _drain_close(data, res)
                    raise
    finally:
        q.close()


_FIRST = 64 * 1024          # the first read of a file (direct path)
_MAX_CHUNK = 4 << 20        # reads after it double up to this


def _read_iter_direct(paths, depth, errors):
    """_read_iter on a ring of its own, through direct descriptors: per
    file, openat_direct into a free slot linked to the first read, then
    reads to EOF (a read that returns nothing: as FileIO.readall(), a short
    read is not taken for the end), then close_direct.  No statx: it is
    punted to io-wq, and costs more than the read that confirms EOF
    (docs/files.md has the numbers).  The ring's teardown releases every
    slot, so a drain needs no cleanup."""
    _check_errors(errors)
    paths = list(paths)
    for p in paths:
        os.fspath(p)
    q = WorkQueue(None, depth)
    q.ring.register_files_sparse(depth)
    free = list(range(depth - 1, -1, -1))
    link, fixed = IOSQE_IO_LINK, IOSQE_FIXED_FILE
    try:
        nxt = 0
        while True:
            while nxt < len(paths) and q.room >= 2 and free:
                f = _File(nxt, paths[nxt])
                nxt += 1
                f.fd = free.pop()
                f.want = _FIRST
                f.pending = 2
                # (no O_CLOEXEC: a direct open refuses it with EINVAL)
                q.put("openat_direct", AT_FDCWD, f.path, os.O_RDONLY, 0, f.fd,
                      data=(f, _OPEN), sqe_flags=link)
                q.put("read", f.fd, _FIRST, 0, data=(f, _READ), sqe_flags=fixed)
            if not q.in_flight:
                return
            for (f, kind), res, flags in q.complete(True):
                f.pending -= 1
                if kind == _OPEN:
                    if res < 0:
                        f.error = _error(res, f.path)
                        f.done = True       # nothing in the slot to close
                    continue
                if kind == _CLOSE:
                    free.append(f.fd)
                    if res < 0 and f.error is None:
                        f.error = _error(res, f.path)
                        if errors == "raise":
                            raise f.error
                        yield f.index, f.path, f.error
                    continue
                # a read
                if f.done and f.error is not None:
                    # canceled: its open failed
                    free.append(f.fd)
                    if errors == "raise":
                        raise f.error
                    yield f.index, f.path, f.error
                    continue
                if isinstance(res, int):
                    f.error = _error(res, f.path)
                elif res:
                    f.chunks.append(res)
                    f.total += len(res)
                    if len(res) == f.want:
                        f.want = min(f.want * 2, _MAX_CHUNK)
                    f.pending += 1
                    q.put("read", f.fd, f.want, f.total, data=(f, _READ), sqe_flags=fixed)
                    continue
                f.done = True
                f.pending += 1
                q.put("close_direct", f.fd, data=(f, _CLOSE))
                if f.error is not None:
                    if errors == "raise":
                        raise f.error
                    yield f.index, f.path, f.error
                    continue
                data = f.chunks[0] if len(f.chunks) == 1 else b"".join(f.chunks)
                f.chunks = None
                yield f.index, f.path, data
    finally:
        q.close()       # drains, then the ring's teardown frees every slot


# iter_read_files() on a ring of its own reads in batches with read_many(),
# each whole in C: a batch starts at depth files and doubles, up to
# _BATCH_MAX times depth, while a batch's bytes stay under _BATCH_BYTES, so
# small files come at read_many()'s speed (each batch ends with a drain:
# the bigger the batch, the less that costs) and large ones hold about
# depth files in memory, as the WorkQueue loop does.  Measured 2026-12-06,
# 20,000 cached 4 KiB files at depth 64: batches of 64 files 77 thousand
# files/s, 256 145 thousand, 1,024 182 thousand; the WorkQueue loop 46
# thousand.
_BATCH_MAX = 16
_BATCH_BYTES = 32 << 20


def _stop_hook(*counts):
    _checkpoint()           # read_many() calls it at least every 250 ms


def _batches(paths, depth, errors):
    """Yield, per batch, the list of (path, data or exception) one
    read_many() call read, in the paths' order.  With errors="raise" a
    batch's list stops before its first failure, which raises when the
    next list is asked for (its batch drained and closed: no later batch
    is read)."""
    _check_errors(errors)
    depth = int(depth)
    if depth < 1:
        raise ValueError("depth must be at least 1, not %d" % depth)
    paths = list(paths)
    for p in paths:
        os.fspath(p)        # TypeError up front, before anything is read
    # under an awaitable form (files_async.py) a cancel stops the batch in
    # flight through read_many()'s progress hook
    hook = _stop_hook if getattr(_tls, "stop", None) is not None else None
    batch = depth
    start = 0
    while start < len(paths):
        chunk = paths[start:start + batch]
        datas = _read_many(chunk, depth, errors="return", progress=hook)
        items = []
        nbytes = 0
        error = None
        for path, data in zip(chunk, datas):
            if isinstance(data, bytes):
                nbytes += len(data)
            elif errors == "raise":
                error = data
                break
            items.append((path, data))
        del datas
        yield items
        if error is not None:
            raise error
        start += len(chunk)
        if nbytes * 2 <= _BATCH_BYTES and batch < _BATCH_MAX * depth:
            batch *= 2
        elif nbytes > _BATCH_BYTES and batch > depth:
            batch //= 2


def _read_batches(paths, depth, errors):
    """Yield (index, path, data or exception) in order, a batch at a time."""
    index = 0
    for items in _batches(paths, depth, errors):
        for i in range(len(items)):
            (path, data), items[i] = items[i], None   # the caller's alone once yielded
            yield index, path, data
            index += 1


def _reader(paths, depth, errors, ring, direct):
    # direct=True: direct descriptors on a ring of its own (measured no
    # faster than plain descriptors and statx here, slower for files over
    # 64 KiB: docs/files.md); plain descriptors otherwise
    if direct:
        if ring is not None:
            raise ValueError("direct=True uses a ring of its own: give no ring")
        if depth < 2:
            raise ValueError("direct=True needs depth of at least 2")
        return _read_iter_direct(paths, depth, errors)
    return _read_iter(paths, depth, errors, ring)


@_t.overload
def iter_read_files(paths: _t.Iterable[_P], *, depth: int = 64, errors: _t.Literal["raise"] = "raise",
                    ring: _t.Optional[IoUring] = None,
                    direct: bool = False) -> _t.Iterator[_t.Tuple[_P, bytes]]: ...
@_t.overload  # noqa: E302
def iter_read_files(paths: _t.Iterable[_P], *, depth: int = 64, errors: str,
                    ring: _t.Optional[IoUring] = None,
                    direct: bool = False) -> _t.Iterator[_t.Tuple[_P, _t.Union[bytes, OSError]]]: ...
def iter_read_files(paths: _t.Iterable[_P], *, depth: int = 64, errors: str = "raise",  # noqa: E302
                    ring: _t.Optional[IoUring] = None,
                    direct: bool = False) -> _t.Iterator[_t.Tuple[_P, _t.Any]]:
    """Read whole files, depth in flight, and yield (path, data) for each.
    By default (no ring, direct=False) in the paths' order, a batch at a
    time, each batch read by read_many() with the per-file loop in C;
    with a ring given, or direct=True, as each file completes, from the
    WorkQueue loop.  A failure raises os's error (with the path) after
    everything in flight has drained and every file is closed; with
    errors="return" the exception object takes the data's place.
    direct=True opens through direct descriptors on a ring of its own
    (openat_direct linked to the first read) instead of plain ones and
    statx."""
    paths = _path_list(paths, "iter_read_files")
    if ring is None and not direct:
        items = _read_batches(paths, depth, errors)
    else:
        items = _reader(paths, depth, errors, ring, direct)
    for index, path, data in items:
        yield path, data


@_t.overload
def read_files(paths: "_t.Iterable[_StrOrBytesPath]", *, depth: int = 64,
               errors: _t.Literal["raise"] = "raise", ring: _t.Optional[IoUring] = None,
               direct: bool = False, progress: _ReadProgress = None) -> _t.List[bytes]: ...
@_t.overload  # noqa: E302
def read_files(paths: "_t.Iterable[_StrOrBytesPath]", *, depth: int = 64, errors: str,
               ring: _t.Optional[IoUring] = None, direct: bool = False,
               progress: _ReadProgress = None) -> _t.List[_t.Union[bytes, OSError]]: ...
def read_files(paths: "_t.Iterable[_StrOrBytesPath]", *, depth: int = 64,  # noqa: E302
               errors: str = "raise", ring: _t.Optional[IoUring] = None,
               direct: bool = False, progress: _ReadProgress = None) -> _t.List[_t.Any]:
    """Return the contents of every file in paths, in order, as a list of
    bytes, with up to depth files in flight.  By default the per-file loop
    runs in C (read_many(): openat into a direct descriptor linked to two
    reads, on a ring of its own; from the main thread, for 64 paths or
    more whose first file has 256 KiB or more, in a long-lived worker
    thread, whose malloc arena keeps freed memory for the next batch);
    with a ring given, or direct=True, it is the WorkQueue loop of
    iter_read_files().  errors="raise" (the default)
    raises the first failure, as open(path, "rb").read() would, after
    draining; errors="return" puts the exception in the file's place.
    progress(bytes_done, None, files_done, files_total), if given, is called
    as files complete (the total of bytes is not known: no file is
    stat'ed up front)."""
    _check_errors(errors)
    paths = _path_list(paths, "read_files")
    if ring is None and not direct:
        depth = int(depth)
        if depth < 1:
            raise ValueError("depth must be at least 1, not %d" % depth)
        # (in a worker thread for the main thread's larger calls: malloc's
        # arena there keeps freed memory for the next batch, _read_worker.py)
        return _read_worker.read_many(paths, depth, errors, progress)
    out = [None] * len(paths)
    done = nbytes = 0
    for index, path, data in _reader(paths, depth, errors, ring, direct):
        out[index] = data
        if progress is not None:
            done += 1
            nbytes += len(data) if isinstance(data, bytes) else 0
            progress(nbytes, None, done, len(paths))
    return out


# ---------------------------------------------------------------- hashing

@_t.overload
def hash_files(paths: "_t.Iterable[_StrOrBytesPath]", digest: _Digest = "sha256", *,
               depth: int = 64, errors: _t.Literal["raise"] = "raise",
               progress: _ReadProgress = None) -> "_t.List[hashlib._Hash]": ...
@_t.overload  # noqa: E302
def hash_files(paths: "_t.Iterable[_StrOrBytesPath]", digest: _Digest = "sha256", *,
               depth: int = 64, errors: str,
               progress: _ReadProgress = None) -> "_t.List[_t.Union[hashlib._Hash, OSError]]": ...
def hash_files(paths: "_t.Iterable[_StrOrBytesPath]", digest: _Digest = "sha256", *,  # noqa: E302
               depth: int = 64, errors: str = "raise",
               progress: _ReadProgress = None) -> _t.List[_t.Any]:
    """hashlib.file_digest() for many files: a hash object per file of
    paths, in order, over its whole contents.  digest is a name hashlib.new()
    knows or a callable that returns a new hash object.  The files are read
    as iter_read_files() reads them (read_many() batches, depth in flight),
    each whole in memory while it is hashed: for one file larger than
    memory, hashlib.file_digest() streams it.  errors and progress as in
    read_files() (progress after each batch)."""
    _check_errors(errors)
    if isinstance(digest, str):
        name = digest
        hashlib.new(name)   # ValueError for an unknown name, before any read

        def new() -> "hashlib._Hash":
            return hashlib.new(name)
    elif callable(digest):
        new = digest
    else:
        raise TypeError("digest must be a hashlib name or a callable, not %s"
                        % type(digest).__name__)
    paths = _path_list(paths, "hash_files")
    out: _t.List[_t.Any] = []
    nbytes = 0
    for items in _batches(paths, depth, errors):
        for i in range(len(items)):
            data = items[i][1]
            items[i] = None
            if isinstance(data, bytes):
                h = new()
                h.update(data)      # (hashlib lets go of the GIL for it)
                out.append(h)
                nbytes += len(data)
            else:
                out.append(data)
            del data
        if progress is not None:
            progress(nbytes, None, len(out), len(paths))
    return out


# ---------------------------------------------------------------- copying

class _Copy(object):
    __slots__ = ("src", "dst", "sfd", "dfd", "size", "written", "pending", "error", "after",
                 "got_r", "got_w")

    def __init__(self, src, dst, after):
        self.src, self.dst, self.after = src, dst, after
        self.sfd = self.dfd = None
        self.size = self.written = self.pending = 0
        self.error = None
        self.got_r = self.got_w = None  # a small file's read and write


def _close_copy(c):
    for name in ("sfd", "dfd"):
        fd = getattr(c, name)
        if fd is not None:
            setattr(c, name, None)
            os.close(fd)


def _is_fifo(path):
    try:
        st = os.stat(path)
    except OSError:
        return False
    return _stat.S_ISFIFO(st.st_mode)


# Files past _SMALL_COPY are copied by the kernel with copy_file_range(2)
# (sendfile(2), then pread/pwrite, where a file system refuses it), a
# chunk at a time, in worker threads: io_uring has no copy_file_range, and
# its splices through pipes measured 0.29x shutil.copyfile on 1 GiB, 1.2-1.4x
# shutil.copytree on 20 files of 32 MiB, where copy_file_range in threads
# measured 0.98x and 1.8x (docs/files.md).  One file's chunks are
# copied in order: its writes take the inode's lock, so two threads on one
# file were no faster.
_KERNEL_CHUNK = 8 << 20
_COPY_THREADS = 4
# errors of a first call that mean "not this way" (EXDEV: two file
# systems, before 5.19 or of different types; EINVAL: a file this call
# cannot take, such as a character device), and errors that are the
# destination's (the others name the source, as a read's would)
_REFUSED = frozenset((errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP))
_DST_ERRORS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS))


def _copy_in_kernel(c, halt):
    """c's data from offset 0 to EOF (as shutil, what the file has now,
    whatever its size was), by the kernel; run in a worker thread.
    c.written grows as it goes (the caller's progress reads it); halt, once
    set, stops it at the next chunk.  os's errors, with the path."""
    off = 0
    how = "copy_file_range" if hasattr(os, "copy_file_range") else "sendfile"
    while not halt.is_set():
        try:
            if how == "copy_file_range":
                n = os.copy_file_range(c.sfd, c.dfd, _KERNEL_CHUNK, off, off)
            elif how == "sendfile":
                # (dst's own position: 0 until this call moves it on)
                n = os.sendfile(c.dfd, c.sfd, off, _KERNEL_CHUNK)
            else:
                c.written = off + _copy_plain(c, off)
                return
        except OSError as e:
            if off == 0 and e.errno in _REFUSED:
                how = "sendfile" if how == "copy_file_range" else "plain"
                continue
            raise OSError(e.errno, e.strerror, c.dst if e.errno in _DST_ERRORS else c.src)
        if n == 0:
            return
        off += n
        c.written = off


def _copy_many(pairs, depth, progress, errors):
    """Copy the data of each (src, dst, after) in pairs, several files at
    once: a small file by one read linked to one write on the ring, a
    larger one by the kernel in a worker thread (_copy_in_kernel), up to
    depth in flight over all files (half of them threads, at most
    _COPY_THREADS).  after(src, dst) runs once a file's data is in.
    Failures are appended to errors as (src, dst, str(why)) when errors is
    a list, else raised after the drain: nothing is left running, or open,
    on the way out."""
    pairs = list(pairs)
    done = 0            # bytes of the files finished
    nfiles = 0          # files finished (copied or failed)
    # the bytes to copy, known up front for a progress bar (sizes now;
    # a file that fails to stat counts 0)
    total = _total_size(p[0] for p in pairs) if progress is not None else 0
    depth = max(int(depth), 2)
    threads = max(1, min(depth // 2, _COPY_THREADS))
    q = WorkQueue(None, depth)
    pool = None
    halt = threading.Event()
    big = {}            # future -> its _Copy, copying in a thread
    smalls = set()      # small files in flight: read linked to write
    try:
        nxt = 0
        while True:
            _checkpoint()
            # open files while there is room for them
            while nxt < len(pairs) and q.room >= 2 and len(big) < threads:
                src, dst, after = pairs[nxt]
                nxt += 1
                c = _Copy(src, dst, after)
                try:
                    c.sfd = os.open(src, _O_RDONLY)
                    st = os.fstat(c.sfd)
                    if _stat.S_ISDIR(st.st_mode):
                        # as open(src, "rb") fails, before dst is made
                        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), src)
                    if _stat.S_ISFIFO(st.st_mode):
                        raise shutil.SpecialFileError("`%s` is a named pipe" % src)
                    c.size = st.st_size
                    c.dfd = os.open(dst, _O_WRITE, 0o666)
                    if c.size == 0:
                        # empty, or sized 0 as procfs files are: read to EOF
                        done += _copy_plain(c)
                except Exception as why:
                    _close_copy(c)
                    if errors is None:
                        raise
                    errors.append((src, dst, str(why)))
                    nfiles += 1
                    continue
                if c.size == 0:
                    _finish_copy(c, errors)
                    nfiles += 1
                elif c.size <= _SMALL_COPY:
                    # one read of the whole file linked to one write of it
                    # through a buffer (both pinned by their records): one
                    # round trip, served inline from the page cache
                    buf = bytearray(c.size)
                    c.pending = 2
                    smalls.add(c)
                    q.put("read", c.sfd, buf, 0, data=(c, _SREAD), sqe_flags=IOSQE_IO_LINK)
                    q.put("write", c.dfd, buf, 0, data=(c, _SWRITE))
                else:
                    if pool is None:
                        from concurrent.futures import ThreadPoolExecutor
                        pool = ThreadPoolExecutor(threads, thread_name_prefix="py_io_uring-copy")
                    try:
                        big[pool.submit(_copy_in_kernel, c, halt)] = c
                    except BaseException:   # (an interpreter shutting down)
                        _close_copy(c)
                        raise
            if not q.in_flight and not big:
                break
            if q.in_flight:
                # (a thread's copy that ends meanwhile waits for the next
                # turn: the small files' round trips are short)
                for (c, kind), res, flags in q.complete(True):
                    c.pending -= 1
                    if kind == _SREAD:
                        c.got_r = res
                    else:
                        c.got_w = res
                    if c.pending:
                        continue
                    smalls.discard(c)
                    done += _settle_small(c)
                    _settle_copy(c, errors)
                    nfiles += 1
            else:
                # only threads at work: wake for the first to end, or in
                # time for the next progress report and cancellation check
                from concurrent.futures import FIRST_COMPLETED, wait
                wait(big, 0.1, FIRST_COMPLETED)
            for fut in [f for f in big if f.done()]:
                c = big.pop(fut)
                failed = fut.exception()
                if failed is not None:
                    c.error = failed
                done += c.written
                _settle_copy(c, errors)
                nfiles += 1
            if progress is not None:
                now = done + sum(c.written for c in big.values())
                progress(now, max(total, now), nfiles, len(pairs))
    finally:
        halt.set()          # the threads stop at their next chunk
        if pool is not None:
            pool.shutdown(wait=True)
        q.close()           # drains: no read or write runs on a closed fd
        for c in big.values():
            _close_copy(c)
        for c in smalls:
            _close_copy(c)
    if progress is not None:
        progress(done, max(total, done), nfiles, len(pairs))


def _total_size(paths):
    total = 0
    for p in paths:
        try:
            total += os.stat(p).st_size
        except OSError:
            pass
    return total


_SREAD, _SWRITE = 5, 6      # a small file's read and write (after _WRITE)
# files up to this size are copied by one read linked to one write through
# a buffer on the ring, not by the kernel in a thread (docs/files.md has the
# measurement); pread/pwrite copy this much at a time
_SMALL_COPY = 256 * 1024
_PLAIN_CHUNK = 1 << 20


def _settle_small(c):
    """A small file's read and write are in: the bytes written, c.error
    set on failure; anything short (the file changed size, a short write,
    the write cancelled by a short read) is redone with pread/pwrite."""
    r, w = c.got_r, c.got_w
    if r == c.size and w == c.size:
        # as shutil, to EOF: bytes the file gained since fstat() follow
        try:
            return w + _copy_plain(c, w)
        except OSError as why:
            c.error = why
            return w
    if isinstance(r, int) and r < 0:
        c.error = _error(r, c.src)
        return 0
    if isinstance(w, int) and w < 0 and w != -errno.ECANCELED:
        c.error = _error(w, c.dst)
        return 0
    try:
        return _copy_plain(c)
    except OSError as why:
        c.error = why
        return 0


def _copy_plain(c, start=0):
    """Copy c's file from start to its end with pread/pwrite, as shutil
    copies to EOF; the bytes copied.  os's errors, with the path."""
    off = start
    while True:
        try:
            data = os.pread(c.sfd, _PLAIN_CHUNK, off)
        except OSError as e:
            raise OSError(e.errno, e.strerror, c.src)
        if not data:
            return off - start
        view = memoryview(data)
        while view:
            try:
                n = os.pwrite(c.dfd, view, off)
            except OSError as e:
                raise OSError(e.errno, e.strerror, c.dst)
            view = view[n:]
            off += n


def _settle_copy(c, errors):
    """A copy whose last operation ended: its error raised (or recorded when
    errors is a list) with its files closed, else finished (closed, then
    copystat and the like)."""
    if c.error is not None:
        _close_copy(c)
        if errors is None:
            raise c.error
        errors.append((c.src, c.dst, str(c.error)))
    else:
        _finish_copy(c, errors)


def _finish_copy(c, errors):
    _close_copy(c)
    if c.after is not None:
        try:
            c.after(c.src, c.dst)
        except OSError as why:
            if errors is None:
                raise
            errors.append((c.src, c.dst, str(why)))


def _samefile(src, dst):
    try:
        return os.path.samefile(src, dst)
    except OSError:
        return False


def copyfile(src: "_StrOrBytesPath", dst: "_t.Union[_t.AnyStr, os.PathLike[_t.AnyStr]]", *,
             follow_symlinks: bool = True, depth: int = 8,
             progress: _Progress = None, o_direct: bool = False) -> _t.AnyStr:
    """Copy the data of src to dst, as shutil.copyfile does (dst created or
    truncated, its mode not copied; SameFileError when they are the same
    file; a symlink copied as a link with follow_symlinks=False): a file of
    up to 256 KiB by one read linked to one write on a ring, a larger one
    by the kernel's copy_file_range (sendfile, then read/write, where
    refused) in a worker thread; with o_direct, up to depth reads and
    writes in flight.  progress(bytes_done, bytes_total,
    files_done, files_total), if given, is called as the copy goes (the
    file count is 1).  o_direct=True bypasses the page cache (O_DIRECT on
    both files, where their file systems allow it): for copies that should
    not evict what the cache holds.  Returns dst."""
    return _copyfile(src, dst, follow_symlinks, depth, progress, o_direct)


# the bodies of the public functions above and below, whose annotations
# are for their callers
def _copyfile(src, dst, follow_symlinks, depth, progress, o_direct=False):
    src, dst = os.fspath(src), os.fspath(dst)
    if _samefile(src, dst):
        raise shutil.SameFileError("{!r} and {!r} are the same file".format(src, dst))
    for fn in (src, dst):
        if _is_fifo(fn):
            raise shutil.SpecialFileError("`%s` is a named pipe" % fn)
    if not follow_symlinks and os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return dst
    if o_direct:
        from ._copy_direct import copy_direct
        copy_direct(src, dst, depth, progress)
        return dst
    _copy_many([(src, dst, None)], depth, progress, None)
    return dst


@_t.overload
def copy2(src: "_StrOrBytesPath", dst: _t.AnyStr, *, follow_symlinks: bool = True,
          depth: int = 8, progress: _Progress = None) -> _t.AnyStr: ...
@_t.overload  # noqa: E302
def copy2(src: "_StrOrBytesPath", dst: "os.PathLike[_t.AnyStr]", *, follow_symlinks: bool = True,
          depth: int = 8, progress: _Progress = None) -> "_t.Union[os.PathLike[_t.AnyStr], _t.AnyStr]": ...
def copy2(src: "_StrOrBytesPath", dst: _t.Any, *,  # noqa: E302
          follow_symlinks: bool = True, depth: int = 8,
          progress: _Progress = None) -> "_t.Any":
    """shutil.copy2 on copyfile(): data, then mode and times (copystat); a
    directory dst gets src's name."""
    return _copy2(src, dst, follow_symlinks, depth, progress)


def _copy2(src, dst, follow_symlinks, depth, progress):
    if os.path.isdir(dst):
        dst = os.path.join(dst, os.path.basename(src))
    copyfile(src, dst, follow_symlinks=follow_symlinks, depth=depth, progress=progress)
    shutil.copystat(src, dst, follow_symlinks=follow_symlinks)
    return dst


def copytree(src: "_StrOrBytesPath", dst: _P,
             symlinks: bool = False,
             ignore: _t.Optional[_t.Callable[[str, _t.List[str]], _t.Iterable[str]]] = None,
             copy_function: _t.Callable[[str, str], object] = copy2,
             ignore_dangling_symlinks: bool = False, dirs_exist_ok: bool = False, *,
             depth: int = 64, progress: _Progress = None) -> _P:
    """shutil.copytree, with the files' data copied several at once (up to
    depth in flight over all files: small ones on a ring, larger ones by
    the kernel's copy_file_range in up to min(depth // 2, 4) worker
    threads, as copyfile copies them) when copy_function is
    copy2 or copyfile of this module; any other copy_function is called
    once per file, in order, as shutil does.  Directories get their mode and
    times (copystat) after their files are in; errors are collected and
    raised together as shutil.Error.  progress(bytes_done, bytes_total,
    files_done, files_total) as copyfile's, over every file of the tree.
    Returns dst."""
    return _copytree(src, dst, symlinks, ignore, copy_function, ignore_dangling_symlinks,
                     dirs_exist_ok, depth, progress)


def _copytree(src, dst, symlinks, ignore, copy_function, ignore_dangling_symlinks,
              dirs_exist_ok, depth, progress):
    errors = []
    batch = []          # (src, dst, after) for _copy_many
    dirs = []           # (src, dst) for copystat once the files are in
    _walk(os.fspath(src), os.fspath(dst), symlinks, ignore, copy_function,
          ignore_dangling_symlinks, dirs_exist_ok, batch, dirs, errors)
    if batch:
        try:
            _copy_many(batch, depth, progress, errors)
        except Exception as why:   # pragma: no cover - _copy_many collects
            errors.append((src, dst, str(why)))
    for s, d in reversed(dirs):
        try:
            shutil.copystat(s, d)
        except OSError as why:
            # as shutil: Windows may not allow it; elsewhere it is an error
            if getattr(why, "winerror", None) is None:
                errors.append((s, d, str(why)))
    if errors:
        raise shutil.Error(errors)
    return dst


def _after_copy2(s, d):
    shutil.copystat(s, d)


def _walk(src, dst, symlinks, ignore, copy_function, ignore_dangling,
          dirs_exist_ok, batch, dirs, errors):
    # shutil._copytree's walk, queuing the files instead of copying them
    _checkpoint()
    with os.scandir(src) as it:
        entries = list(it)
    if ignore is not None:
        ignored = ignore(os.fspath(src), [e.name for e in entries])
    else:
        ignored = set()
    os.makedirs(dst, exist_ok=dirs_exist_ok)
    dirs.append((src, dst))
    for entry in entries:
        if entry.name in ignored:
            continue
        srcname = os.path.join(src, entry.name)
        dstname = os.path.join(dst, entry.name)
        try:
            is_symlink = entry.is_symlink()
            if is_symlink:
                linkto = os.readlink(srcname)
                if symlinks:
                    os.symlink(linkto, dstname)
                    shutil.copystat(srcname, dstname, follow_symlinks=not symlinks)
                    continue
                if not os.path.exists(linkto if os.path.isabs(linkto)
                                      else os.path.join(os.path.dirname(srcname), linkto)) \
                        and ignore_dangling:
                    continue
                if entry.is_dir():
                    _walk(srcname, dstname, symlinks, ignore, copy_function,
                          ignore_dangling, dirs_exist_ok, batch, dirs, errors)
                    continue
            elif entry.is_dir():
                _walk(srcname, dstname, symlinks, ignore, copy_function,
                      ignore_dangling, dirs_exist_ok, batch, dirs, errors)
                continue
            _queue_file(srcname, dstname, copy_function, batch)
        except shutil.Error as err:
            errors.extend(err.args[0])
        except OSError as why:
            errors.append((srcname, dstname, str(why)))


def _queue_file(srcname, dstname, copy_function, batch):
    if copy_function is copy2:
        batch.append((srcname, dstname, _after_copy2))
    elif copy_function is copyfile:
        batch.append((srcname, dstname, None))
    else:
        copy_function(srcname, dstname)

"""Async file objects: `f = await py_io_uring.open(path, "rb")`, every read,
write, sync and stat an io_uring operation on an AsyncRing.

It sits above AsyncRing (docs/design.md's tiers), as files.py sits above
the fast tier.  The file position is the kernel's (reads and writes at
offset -1, seek and tell by lseek, a system call that never blocks), less
what the read-ahead buffer holds.  Text modes reuse io's rules: the codec's
incremental decoder and encoder, and io.IncrementalNewlineDecoder for
universal newlines, as io.TextIOWrapper does."""

import codecs
import errno
import io
import operator
import os
import stat
import sys
import warnings     # (here: __del__ may run as the interpreter shuts down)
# typing's names under a private alias, as loop.py does: module attributes
# are public names stubtest checks
import typing as _t

from ._aiolib import current_library

if _t.TYPE_CHECKING:
    import asyncio as _asyncio

    # private names: stubtest takes a public one for a module attribute
    from . import AsyncRing as _AsyncRing, _ReadableBuffer, _StrOrBytesPath, _WritableBuffer
    from .trio import TrioRing as _TrioRing

    # the ring open() runs on: AsyncRing, or under trio a TrioRing (which
    # has every AsyncRing op)
    _Ring = _t.Union[_AsyncRing, _TrioRing]

    # the modes whose literal tells a type checker text from binary, as
    # builtins.open()'s stub does; any other mode string gives AsyncFile[Any]
    _OpenTextMode = _t.Literal["r", "w", "a", "x", "r+", "w+", "a+", "x+", "rt", "wt", "at",
                               "xt", "r+t", "w+t", "a+t", "x+t", "rt+", "wt+", "at+", "xt+"]
    _OpenBinaryMode = _t.Literal["rb", "wb", "ab", "xb", "r+b", "w+b", "a+b", "x+b", "rb+",
                                 "wb+", "ab+", "xb+", "br", "bw", "ba", "bx"]

__all__ = ["open", "AsyncFile", "AsyncFileOpener"]

_READ_AHEAD = 64 * 1024     # sequential reads fetch at least this much
_READ_ALL_MAX = 1 << 30     # read() to EOF asks at most this much at once
_SHARED_ENTRIES = 64        # the shared rings' size: 1,000 files opened and
                            # read at once took 48.8 us a file with 64, 55.4
                            # with 8 (256: 46.2)
_DECODE = 8192              # text is decoded this many bytes at a time, as
                            # io.TextIOWrapper does: what tell() re-decodes
_FLAGS = {"r": os.O_RDONLY, "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
          "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
          "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL}


def _parse_mode(mode):
    if not isinstance(mode, str):
        raise TypeError("open() argument 'mode' must be str, not %s" % type(mode).__name__)
    chars = set(mode)
    if len(chars) != len(mode) or not chars <= set("rwaxbt+") \
            or len(chars & set("rwax")) != 1 or ("b" in chars and "t" in chars):
        raise ValueError("invalid mode: %r" % (mode,))
    kind = (chars & set("rwax")).pop()
    flags = _FLAGS[kind]
    if "+" in chars:
        flags = (flags & ~(os.O_RDONLY | os.O_WRONLY)) | os.O_RDWR
    flags |= getattr(os, "O_CLOEXEC", 0)
    readable = kind == "r" or "+" in chars
    writable = kind != "r" or "+" in chars
    return flags, readable, writable, "b" in chars


def _size(n: "_t.Optional[int]", default: int = -1) -> int:
    """A size argument as io takes it: None for the default, else an int
    (or an object with __index__); io's TypeError for anything else."""
    if n is None:
        return default
    try:
        return operator.index(n)
    except TypeError:
        raise TypeError("argument should be integer or None, not '%s'"
                        % type(n).__name__) from None


def _refuse_directory(fd, path, owned=True):
    """Raise IsADirectoryError (closing fd when it is ours) when fd is a
    directory's, as open() does (FileIO's fstat): the kernel opens a
    directory read-only, and only the first read would fail.  fstat() of an
    open descriptor reads the inode the open just looked up: it does not
    wait on a disk."""
    try:
        isdir = stat.S_ISDIR(os.fstat(fd).st_mode)
    except OSError:
        isdir = False
    if isdir:
        if owned:
            os.close(fd)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR),
                                path if isinstance(path, int) else os.fspath(path))


_Opener = _t.Callable[[str, int], int]


def _default_ring() -> "_t.Tuple[_t.Any, _t.Optional[_SharedRing]]":
    """The ring to run on when the caller gives none, and the _SharedRing
    to release() when done with it (None: nothing to release).  A ring made
    and torn down per file took half the time of opening, reading and
    closing a small one (more under trio): files share one, per loop or
    per trio run.  (Any: a TrioRing has AsyncRing's ops, not its type.)"""
    if current_library() == "trio":
        # AsyncRing's ops are trio's checkpoints through TrioRing, which
        # has every one of them (py_io_uring.trio)
        return _trio_run_ring(), None
    ring = _event_loop_ring()
    if ring is not None:
        return ring, None
    shared = _SharedRing.acquire()
    return shared.ring, shared


def _event_loop_ring() -> "_t.Optional[_AsyncRing]":
    """The running loop's own AsyncRing when the loop is py_io_uring's
    EventLoop (get_running_ring()), else None."""
    loop_module = sys.modules.get("py_io_uring.loop")
    if loop_module is None:         # no EventLoop was ever made
        return None
    import asyncio
    if not isinstance(asyncio.get_running_loop(), loop_module.EventLoop):
        return None
    return _t.cast("_AsyncRing", loop_module.get_running_ring())


class _SharedRing(object):
    """The AsyncRing that the files opened without ring= share on one
    asyncio loop (py_io_uring's EventLoop aside: its own ring serves
    there): made by the first such open, closed once its last file is
    closed, at the loop's next turn, so that files opened one after
    another keep it.  A ring made and torn down per file took half the
    time of opening, reading and closing a small file: more than
    open().read() in a thread (docs/files.md)."""

    __slots__ = ("loop", "ring", "users")

    def __init__(self, loop: "_asyncio.AbstractEventLoop") -> None:
        from . import AsyncRing
        self.loop = loop
        self.ring = AsyncRing(_SHARED_ENTRIES)
        self.users = 0

    @staticmethod
    def acquire() -> "_SharedRing":
        import asyncio
        loop = asyncio.get_running_loop()
        shared = _SHARED.get(loop)
        if shared is None or shared.ring.closed:
            shared = _SHARED[loop] = _SharedRing(loop)
        shared.users += 1
        return shared

    def release(self, from_finalizer: bool = False) -> None:
        if from_finalizer:
            # a finalizer may run on any thread: the count is the loop
            # thread's, so the release goes there (a closed loop has no
            # thread that could race it: released here)
            try:
                self.loop.call_soon_threadsafe(self.release)
                return
            except Exception:
                pass
        self.users -= 1
        if self.users > 0:
            return
        try:
            self.loop.call_soon(self._close_if_idle)
        except Exception:           # the loop is closed (RuntimeError), or
            self._close_if_idle()   # going with the interpreter: no turn comes

    def _close_if_idle(self) -> None:
        if self.users > 0:
            return
        if _SHARED.get(self.loop) is self:
            del _SHARED[self.loop]
        try:
            self.ring.aclose()      # nothing in flight: closed at once
        except Exception:
            pass                    # (its loop is gone: freed with it)


# loop -> the ring its files share (an entry goes with its ring's close)
_SHARED: "_t.Dict[_asyncio.AbstractEventLoop, _SharedRing]" = {}


_TRIO_RING: _t.Any = None      # trio.lowlevel.RunVar: the run's TrioRing


def _trio_run_ring() -> "_TrioRing":
    """The TrioRing that the files opened without ring= share in this
    trio.run(): made by the first, closed when the run ends (a system task
    of its own, cancelled then, closes it)."""
    global _TRIO_RING
    import trio
    if _TRIO_RING is None:
        _TRIO_RING = trio.lowlevel.RunVar("py_io_uring files' ring")
    try:
        held = _t.cast("_TrioRing", _TRIO_RING.get())
    except LookupError:
        pass
    else:
        if held.closed:
            # its closer ran: the run is ending (the main task returned and
            # the system tasks are cancelled), and a new closer spawned now
            # would start cancelled and close the ring under the caller
            raise RuntimeError("the trio run is ending: the ring its files shared was "
                               "closed with its system tasks (give ring= to open "
                               "files this late)")
        return held
    from .trio import TrioRing
    ring = TrioRing(_SHARED_ENTRIES)
    _TRIO_RING.set(ring)
    trio.lowlevel.spawn_system_task(_close_at_run_end, ring,
                                    name="py_io_uring files' ring closer")
    return ring


async def _close_at_run_end(ring: "_TrioRing") -> None:
    import trio
    try:
        await trio.sleep_forever()
    finally:
        await ring.aclose()         # (shielded inside)


@_t.overload
def open(file: "_t.Union[_StrOrBytesPath, int]", mode: "_OpenTextMode" = "r",
         buffering: int = -1, encoding: _t.Optional[str] = None,
         errors: _t.Optional[str] = None, newline: _t.Optional[str] = None,
         closefd: bool = True, opener: _t.Optional[_Opener] = None, *,
         ring: "_t.Optional[_Ring]" = None) -> "AsyncFileOpener[str]": ...
@_t.overload  # noqa: E302
def open(file: "_t.Union[_StrOrBytesPath, int]", mode: "_OpenBinaryMode",
         buffering: int = -1, encoding: None = None, errors: None = None,
         newline: None = None, closefd: bool = True,
         opener: _t.Optional[_Opener] = None, *,
         ring: "_t.Optional[_Ring]" = None) -> "AsyncFileOpener[bytes]": ...
@_t.overload  # noqa: E302
def open(file: "_t.Union[_StrOrBytesPath, int]", mode: str, buffering: int = -1,
         encoding: _t.Optional[str] = None, errors: _t.Optional[str] = None,
         newline: _t.Optional[str] = None, closefd: bool = True,
         opener: _t.Optional[_Opener] = None, *,
         ring: "_t.Optional[_Ring]" = None) -> "AsyncFileOpener[_t.Any]": ...
def open(file: "_t.Union[_StrOrBytesPath, int]", mode: str = "r",  # noqa: E302
         buffering: int = -1, encoding: _t.Optional[str] = None,
         errors: _t.Optional[str] = None, newline: _t.Optional[str] = None,
         closefd: bool = True, opener: _t.Optional[_Opener] = None, *,
         ring: "_t.Optional[_Ring]" = None) -> "AsyncFileOpener[_t.Any]":
    """Open a file as builtins.open() does (same arguments: a path or an
    open descriptor, modes, encoding, errors, newline, closefd, opener; the
    same errors with the path): `f = await open(...)` gives an AsyncFile,
    and `async with open(...) as f:` (aiofiles' form) gives it and closes
    it on the way out.  ring: the AsyncRing (or py_io_uring.trio.TrioRing)
    to run on; None takes the running EventLoop's own ring, or on another
    asyncio loop the ring its files share (closed after its last file),
    or under trio the TrioRing the run's files share (closed as the run
    ends).  Nothing is checked or opened before the await."""
    return AsyncFileOpener(file, mode, encoding, errors, newline, closefd, opener, ring)


class AsyncFileOpener(_t.Generic[_t.AnyStr]):
    """What open() returns, as aiofiles.open() returns one: awaited, the
    AsyncFile (`async with await open(...)` as anyio's open_file);
    entered, the same file, closed when the block is left.  Each opener
    opens once: the call's arguments are checked, and the file opened,
    at that await."""

    __slots__ = ("_args", "_file", "_used")

    def __init__(self, *args: _t.Any) -> None:
        self._args = args
        self._file: "_t.Optional[AsyncFile[_t.AnyStr]]" = None
        self._used = False

    def _start(self) -> "_t.Coroutine[_t.Any, _t.Any, AsyncFile[_t.AnyStr]]":
        if self._used:
            raise RuntimeError("this open() was awaited already: call open() again "
                               "for another file")
        self._used = True
        return _open(*self._args)

    def __await__(self) -> "_t.Generator[_t.Any, None, AsyncFile[_t.AnyStr]]":
        return self._start().__await__()

    async def __aenter__(self) -> "AsyncFile[_t.AnyStr]":
        self._file = await self._start()
        return self._file

    async def __aexit__(self, *exc_info: object) -> None:
        if self._file is not None:
            await self._file.close()

    def __repr__(self) -> str:
        return "<py_io_uring.AsyncFileOpener %r mode=%r%s>" % (
            self._args[0], self._args[1], " (awaited)" if self._used else "")


async def _open(file: "_t.Union[_StrOrBytesPath, int]", mode: str,
                encoding: _t.Optional[str], errors: _t.Optional[str],
                newline: _t.Optional[str], closefd: bool, opener: _t.Optional[_Opener],
                ring: "_t.Optional[_Ring]",
                cls: "_t.Optional[_t.Type[AsyncFile[_t.Any]]]" = None) -> "AsyncFile[_t.Any]":
    """open()'s work, run at the await (cls: an AsyncFile subclass to
    make, py_io_uring.tempfile's named file)."""
    flags, readable, writable, binary = _parse_mode(mode)
    given_fd = isinstance(file, int)
    if given_fd:
        if _t.cast(int, file) < 0:
            raise ValueError("negative file descriptor")
    elif not closefd:
        raise ValueError("Cannot use closefd=False with file name")
    if binary and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
    if newline not in (None, "", "\n", "\r", "\r\n"):
        raise ValueError("illegal newline value: %r" % (newline,))
    if encoding is not None:
        codecs.lookup(encoding)     # LookupError before anything is opened
    from . import AT_FDCWD
    shared = None
    # (Any: a TrioRing has AsyncRing's ops, not its type)
    use: _t.Any = ring
    if use is None:
        use, shared = _default_ring()
    try:
        if given_fd:
            fd = _t.cast(int, file)
            # as FileIO: no directory
            _refuse_directory(fd, fd, owned=False)
        elif opener is not None:
            fd = opener(_t.cast(str, file), flags)      # (the caller's own, sync)
            if not isinstance(fd, int):
                raise TypeError("expected integer from opener")
            if fd < 0:
                raise ValueError("opener returned %d" % fd)
            if not writable:
                _refuse_directory(fd, file)
        else:
            path = _t.cast("_StrOrBytesPath", file)
            try:
                fd = await use.openat(AT_FDCWD, path, flags, 0o666)
            except OSError as e:
                raise OSError(e.errno, e.strerror, os.fspath(path)) from None
            if not writable:
                _refuse_directory(fd, file)
    except BaseException:
        if shared is not None:
            shared.release()
        raise
    f = (cls or AsyncFile)(use, fd, file, mode, readable, writable, closefd, shared)
    try:
        # as FileIO, "a" starts at the end (tell() gives the size); and as
        # TextIOWrapper, text written anywhere but at the start gets no BOM
        if flags & os.O_APPEND:
            os.lseek(fd, 0, os.SEEK_END)
        if not binary:
            f._text(encoding, errors, newline)
            if writable and os.lseek(fd, 0, os.SEEK_CUR) != 0:
                f._encoder.setstate(0)
    except BaseException:
        await f.close()
        raise
    return f


class AsyncFile(_t.Generic[_t.AnyStr]):
    """What open() returns: an open file's async methods.  AsyncFile[str]
    in a text mode, AsyncFile[bytes] in a binary one."""

    def __init__(self, ring, fd, name, mode, readable, writable, closefd=True, shared=None):
        self._ring = ring
        self._shared = shared       # the _SharedRing that ring is, if it is one
        self._fd = fd
        self._closefd = closefd     # False: close() leaves the descriptor open
        self.name, self.mode = name, mode
        self._readable, self._writable = readable, writable
        self._buf = b""             # read ahead: bytes after the logical position
        self._seq = True            # reading on from the last read (or the
                                    # start): read ahead; a seek clears it
        self._decoder = self._encoder = None
        self._chars = ""            # decoded, not yet returned (text)
        # text: where a decoder started clean (flags _snap_flags) gives the
        # characters decoded since (the pieces _snap_text) from the bytes
        # fed since (_snap_bytes); tell() finds the byte offset of a
        # character there.  Lists: a snapshot may span many decodes.
        self._snap_pos = 0
        self._snap_flags = 0
        self._snap_bytes = []       # type: ignore[var-annotated]
        self._snap_text = []        # type: ignore[var-annotated]
        self.encoding = None
        self._newline = None
        self._seekable = -1         # not yet known; then 0 or 1

    def _text(self, encoding, errors, newline):
        if encoding is None:
            encoding = io.text_encoding(None) if hasattr(io, "text_encoding") else None
            if encoding in (None, "locale"):
                import locale
                encoding = locale.getpreferredencoding(False)
        codecs.lookup(encoding)     # LookupError now, as open() raises it
        self.encoding, self.errors = encoding, errors or "strict"
        self._newline = newline
        dec = codecs.getincrementaldecoder(encoding)(self.errors)
        if newline is None or newline == "":
            # io's universal newlines: translate unless newline == ""
            dec = io.IncrementalNewlineDecoder(dec, translate=newline is None)
        self._decoder = dec
        self._encoder = codecs.getincrementalencoder(encoding)(self.errors)

    # -- state

    @property
    def closed(self) -> bool:
        return self._fd is None

    def fileno(self) -> int:
        self._check()
        return self._fd

    def _check(self, read=False, write=False):
        if self._fd is None:
            raise ValueError("I/O operation on closed file.")
        if read and not self._readable:
            raise io.UnsupportedOperation("read")
        if write and not self._writable:
            raise io.UnsupportedOperation("write")

    def readable(self) -> bool:
        self._check()
        return self._readable

    def writable(self) -> bool:
        self._check()
        return self._writable

    def seekable(self) -> bool:
        self._check()
        if self._seekable < 0:
            try:
                os.lseek(self._fd, 0, os.SEEK_CUR)
                self._seekable = 1
            except OSError:
                self._seekable = 0
        return self._seekable == 1

    def isatty(self) -> bool:
        self._check()
        return os.isatty(self._fd)

    def _oserror(self, e):
        if isinstance(self.name, int):      # opened from a descriptor: no path
            return OSError(e.errno, e.strerror)
        return OSError(e.errno, e.strerror, os.fspath(self.name))

    # -- bytes

    async def _fill(self, want):
        """Read at least want more bytes (fewer at EOF) into the buffer;
        False at EOF."""
        try:
            # after a seek, exactly what is asked: random reads of 4 KiB
            # would copy 64 KiB each; the next read on reads ahead
            data = await self._ring.read(self._fd, max(want, _READ_AHEAD) if self._seq else want, -1)
            self._seq = True
        except OSError as e:
            raise self._oserror(e) from None
        if not data:
            return False
        self._buf += data
        return True

    async def _read_bytes(self, n):
        if n is None or n < 0:
            chunks = [self._buf] if self._buf else []
            self._buf = b""
            # as FileIO.readall(): a read of what fstat says is left, plus
            # one byte; a regular file that gives exactly what is left is
            # at its end, without a read that returns nothing (a file read
            # whole is one read, not two).  Else 1 MiB at a time to EOF.
            left = -1
            try:
                st = os.fstat(self._fd)
                if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                    left = max(st.st_size - os.lseek(self._fd, 0, os.SEEK_CUR), 0)
            except OSError:
                pass
            while True:
                want = min(left + 1, _READ_ALL_MAX) if left >= 0 else 1 << 20
                try:
                    data = await self._ring.read(self._fd, want, -1)
                except OSError as e:
                    raise self._oserror(e) from None
                if not data:
                    break
                chunks.append(data)
                if left >= 0:
                    left -= len(data)
                    if left == 0:
                        break
                    if left < 0:
                        left = -1       # it grew: on to EOF
            if not chunks:
                return b""
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        while len(self._buf) < n:
            if not await self._fill(n - len(self._buf)):
                break
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    async def read(self, n: _t.Optional[int] = -1) -> _t.AnyStr:
        """Read up to n bytes (characters in text mode); all of them to EOF
        with n < 0."""
        self._check(read=True)
        n = _size(n)
        if self._decoder is None:
            return await self._read_bytes(n)
        # decoded text gathers in a list (not one str grown a piece at a
        # time: quadratic for a large n); _chars holds only what is left
        parts, have = [self._chars], len(self._chars)
        self._chars = ""
        out: _t.Any
        if n < 0:
            parts.append(self._decode(await self._read_bytes(-1), True))
            out = "".join(parts)
            return out
        while have < n:
            data = await self._read_bytes(_DECODE)
            text = self._decode(data, not data)
            parts.append(text)
            have += len(text)
            if not data:
                break
        text = "".join(parts)
        out, self._chars = text[:n], text[n:]
        return out

    async def readinto(self, buf: "_WritableBuffer") -> int:
        """Read into a writable bytes-like object; return the count."""
        self._check(read=True)
        if self._decoder is not None:
            raise io.UnsupportedOperation("readinto")
        view = memoryview(_t.cast(bytes, buf)).cast("B")     # any buffer
        if view.readonly:
            # before the read: what it took from the file would be lost
            raise TypeError("readinto() argument must be read-write bytes-like "
                            "object, not %s" % type(buf).__name__)
        data = await self._read_bytes(len(view))
        view[:len(data)] = data
        return len(data)

    # the buffered reader's one-read forms (io.BufferedReader, anyio's and
    # aiofiles' files have them): binary mode only, as in io

    async def read1(self, n: int = -1) -> bytes:
        """Up to n bytes (any number with n < 0) with at most one read of
        the file: what was read ahead if any, else one read; b"" at EOF."""
        self._check(read=True)
        if self._decoder is not None:
            raise io.UnsupportedOperation("read1")
        n = operator.index(n)       # (io's read1 takes no None)
        if n == 0:
            return b""
        if not self._buf:
            await self._fill(n if n > 0 else _READ_AHEAD)
        if n < 0:
            n = len(self._buf)
        out, self._buf = self._buf[:n], self._buf[n:]
        return _t.cast(bytes, out)

    async def readinto1(self, buf: "_WritableBuffer") -> int:
        """readinto() with at most one read of the file, as read1()."""
        self._check(read=True)
        if self._decoder is not None:
            raise io.UnsupportedOperation("readinto1")
        view = memoryview(_t.cast(bytes, buf)).cast("B")
        if view.readonly:
            raise TypeError("readinto1() argument must be read-write bytes-like "
                            "object, not %s" % type(buf).__name__)
        data = await self.read1(len(view)) if len(view) else b""
        view[:len(data)] = data
        return len(data)

    async def peek(self, n: int = 0) -> bytes:
        """What was read ahead, without moving on (one read of the file
        first when nothing was): at least one byte unless at EOF."""
        self._check(read=True)
        if self._decoder is not None:
            raise io.UnsupportedOperation("peek")
        if not self._buf:
            await self._fill(max(_size(n), 1))
        return _t.cast(bytes, self._buf)

    async def readall(self) -> bytes:
        """To EOF: read(-1) in binary mode."""
        return _t.cast(bytes, await self.read(-1))

    async def readline(self, size: _t.Optional[int] = -1) -> _t.AnyStr:
        """Read one line, its end included ("" or b"" at EOF); at most size
        bytes (characters in text mode) when size >= 0."""
        self._check(read=True)
        size = _size(size)
        # a line gathers in a list, each piece searched once (a long line
        # is not copied again for every read or decode)
        parts: _t.List[_t.Any] = []
        have = 0
        out: _t.Any
        if self._decoder is None:
            while True:
                i = self._buf.find(b"\n")
                end = i + 1 if i >= 0 else -1
                if size >= 0 and (end < 0 or have + end > size) and have + len(self._buf) >= size:
                    end = size - have
                if end >= 0:
                    parts.append(self._buf[:end])
                    self._buf = self._buf[end:]
                    out = b"".join(parts)
                    return out
                parts.append(self._buf)
                have += len(self._buf)
                self._buf = b""
                if not await self._fill(_READ_AHEAD):
                    out = b"".join(parts)
                    return out
        ends = self._newline or "\n"
        if self._newline == "":
            ends = None         # any of \r, \n, \r\n, untranslated
        chars, self._chars = self._chars, ""
        eof = False
        while True:
            end = _line_end(chars, ends)
            if end < 0 and eof:
                end = len(chars)        # the last line, or nothing
            if end >= 0 or (0 <= size <= have + len(chars)):
                if size >= 0 and (end < 0 or have + end > size):
                    end = size - have
                parts.append(chars[:end])
                self._chars = chars[end:]
                out = "".join(parts)
                return out
            # no line end yet: keep back what may begin one (a \r before
            # a \n the next piece may start with)
            keep = len(ends) - 1 if ends else int(chars.endswith("\r"))
            keep = min(keep, len(chars))
            parts.append(chars[:len(chars) - keep])
            have += len(chars) - keep
            chars = chars[len(chars) - keep:]
            data = await self._read_bytes(_DECODE)
            chars += self._decode(data, not data)
            eof = not data      # (the decoder's last \r came with the end:
                                # still split there, "\r\r" is two lines)

    async def readlines(self, hint: _t.Optional[int] = -1) -> _t.List[_t.AnyStr]:
        """The lines to EOF; with hint > 0, lines until their total size
        reaches hint, as io's readlines(hint)."""
        self._check(read=True)
        hint = _size(hint)
        lines, total = [], 0
        async for line in self:
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __aiter__(self) -> "AsyncFile[_t.AnyStr]":
        return self

    async def __anext__(self) -> _t.AnyStr:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    # text mode writes str, binary mode any bytes-like object
    @_t.overload
    async def write(self: "AsyncFile[str]", data: str) -> int: ...
    @_t.overload  # noqa: E301
    async def write(self: "AsyncFile[bytes]", data: "_ReadableBuffer") -> int: ...
    async def write(self, data: "_t.Union[str, _ReadableBuffer]") -> int:  # noqa: E301
        """Write all of data (short writes are retried); return its length
        (characters in text mode)."""
        self._check(write=True)
        if self._encoder is not None:
            if not isinstance(data, str):
                raise TypeError("write() argument must be str, not %s" % type(data).__name__)
            text = data
            if self._newline not in (None, "", "\n"):
                text = text.replace("\n", self._newline)
            elif self._newline is None and os.linesep != "\n":   # pragma: no cover
                text = text.replace("\n", os.linesep)
            raw = self._encoder.encode(text)
            await self._write_all(raw)
            return len(data)
        try:
            view = memoryview(_t.cast(bytes, data)).cast("B")    # any buffer
        except TypeError:
            raise TypeError("a bytes-like object is required, not '%s'"
                            % type(data).__name__) from None
        await self._write_all(view)
        return len(view)

    def _give_back(self, what):
        """Before a write or a truncate: move the descriptor back to the
        position of what was returned, giving back what was read ahead
        (bytes, or text decoded ahead), so that the write lands there and
        the next read starts there and sees what the call changed."""
        state = self._decoder.getstate() if self._decoder is not None else (b"", 0)
        if self._chars or state[0] or (self._decoder is not None and self._pending_cr(state[1])):
            pos = self._text_tell()
            if pos is None:
                raise io.UnsupportedOperation("%s(): no byte offset follows the text "
                                              "read (it ends with a \\r)" % what)
            os.lseek(self._fd, pos, os.SEEK_SET)
        elif self._buf:
            pos = os.lseek(self._fd, -len(self._buf), os.SEEK_CUR)
        else:
            return
        self._buf = b""
        if self._decoder is not None:
            # the decoder starts over there, as after a seek
            self._reset_decoder()
            if pos != 0:
                self._decoder.setstate((b"", self._flags_past_start()))
            self._snap_pos, self._snap_flags = pos, self._decoder.getstate()[1]
            # and a BOM is written at the start of a file only
            if pos == 0:
                self._encoder.reset()
            else:
                self._encoder.setstate(0)

    async def _write_all(self, view):
        self._give_back("write")
        view = memoryview(view)
        while len(view):
            try:
                n = await self._ring.write(self._fd, view, -1)
            except OSError as e:
                raise self._oserror(e) from None
            view = view[n:]

    @_t.overload
    async def writelines(self: "AsyncFile[str]", lines: _t.Iterable[str]) -> None: ...
    @_t.overload  # noqa: E301
    async def writelines(self: "AsyncFile[bytes]", lines: "_t.Iterable[_ReadableBuffer]") -> None: ...
    async def writelines(self, lines: "_t.Iterable[_t.Union[str, _ReadableBuffer]]") -> None:  # noqa: E301
        write = _t.cast(_t.Any, self).write     # the overload of this file's mode
        for line in lines:
            await write(line)

    def _reset_decoder(self):
        self._chars = ""
        if self._decoder is not None:
            self._decoder.reset()
            self._snap_bytes, self._snap_text = [], []   # (seek() sets _snap_pos)

    def _decode(self, data, final):
        """Decode bytes just taken from the buffer and return the text,
        keeping the snapshot tell() reads.  The caller holds what it
        decoded before (read() and readline() gather their pieces), so
        _chars is empty here and the snapshot starts again at this piece:
        all before it is returned by the call or left in _chars after it,
        in this piece.  Not with a \r the decoder holds: the snapshot then
        goes on from where it started."""
        buf, flags = self._decoder.getstate()
        if not self._chars and not self._pending_cr(flags):
            # start here, at the bytes of a character the decoder holds
            self._snap_pos = self._raw_pos() - len(data) - len(buf)
            self._snap_flags = flags
            self._snap_bytes, self._snap_text = [buf], []
        text = self._decoder.decode(data, final=final)
        self._snap_bytes.append(data)
        self._snap_text.append(text)
        return text

    def _pending_cr(self, flags):
        # IncrementalNewlineDecoder's state: (inner flags << 1) | a \r held
        return isinstance(self._decoder, io.IncrementalNewlineDecoder) and bool(flags & 1)

    def _raw_pos(self):
        """The offset of the first byte not yet taken from the buffer."""
        return os.lseek(self._fd, 0, os.SEEK_CUR) - len(self._buf)

    def _text_tell(self):
        """The byte offset of the first character not yet returned: where
        a decoder started clean gives it first.  None when there is no such
        offset (after a lone \r translated to \n, say)."""
        buf, flags = self._decoder.getstate()
        if not self._chars and not buf and not self._pending_cr(flags):
            return self._raw_pos()
        found = self._snap_find()
        if found is None:
            return None
        # the snapshot starts there from now on: the next tell() searches
        # only what is returned after this one
        k, self._snap_flags = found
        self._snap_pos += k
        self._snap_bytes = [b"".join(self._snap_bytes)[k:]]
        self._snap_text = [self._chars]
        return self._snap_pos

    def _snap_find(self):
        """(k, flags): the first k bytes of the snapshot decode, from clean,
        to the characters returned, and a decoder started clean there with
        these flags goes on as this one; None when no k does."""
        snap_text = "".join(self._snap_text)
        data = b"".join(self._snap_bytes)
        self._snap_text, self._snap_bytes = [snap_text], [data]
        want = len(snap_text) - len(self._chars)
        fresh = self._fresh_decoder

        def at(k):
            """(characters of the first k bytes, the flags when k fits)"""
            d = fresh()
            n = len(d.decode(data[:k]))
            b, f = d.getstate()
            cr = self._pending_cr(f)
            n += cr             # (counted: the count grows with k)
            if b:
                return n, None          # inside a character
            if not cr:
                return n, (f if n == want else None)
            # a \r held back: the last character returned.  Untranslated
            # (newline=""), the \r is a character of its own: k fits.
            # Translated, only a lone \r (with a \n after it, the pair is
            # one line end, not yet whole at k)
            if n != want:
                return n, None
            if self._newline is not None:
                return n, f & ~1
            inner = codecs.getincrementaldecoder(self.encoding)(self.errors)
            inner.setstate((b"", f >> 1))
            after = inner.decode(data[k:k + 16])
            return n, (f & ~1 if after and after[0] != "\n" else None)

        # first two guesses: the characters returned, encoded again (exact
        # for most text), and the same with each \n read from a \r\n
        # (universal newlines); else a search (the count grows with k)
        text = snap_text[:want]
        try:
            bom = len("".encode(self.encoding))
            k = len(text.encode(self.encoding, self.errors)) - bom
            cr = len("\r".encode(self.encoding)) - bom
        except (UnicodeError, LookupError):
            k = cr = -1
        for guess in (k, k + cr * text.count("\n")) if k >= 0 else ():
            if guess <= len(data):
                f = at(guess)[1]
                if f is not None:
                    return guess, f
        lo, hi = 0, len(data)
        while lo < hi:
            mid = (lo + hi) // 2
            if at(mid)[0] < want:
                lo = mid + 1
            else:
                hi = mid
        for k in range(lo, len(data) + 1):
            n, f = at(k)
            if f is not None:
                return k, f
            if n != want:
                return None
        return None

    def _fresh_decoder(self, start=False):
        """A decoder as the file's, started clean with the snapshot's flags
        (start: as at the file's start, where a BOM may come)."""
        dec = codecs.getincrementaldecoder(self.encoding)(self.errors)
        if isinstance(self._decoder, io.IncrementalNewlineDecoder):
            dec = io.IncrementalNewlineDecoder(dec, translate=self._newline is None)
        if not start:
            dec.setstate((b"", self._snap_flags))
        return dec

    def _flags_past_start(self):
        """The decoder's flags past the file's start, as a reader from the
        start has them once the codec has read its BOM, if it reads one
        (utf-16's byte order, utf-8-sig's BOM taken): a decoder started at
        a later offset must not look for a BOM there."""
        dec = self._fresh_decoder(start=True)
        try:
            dec.decode(os.pread(self._fd, 4, 0))
            flags = dec.getstate()[1]
        except (UnicodeError, OSError):
            flags = self._decoder.getstate()[1]
        if isinstance(self._decoder, io.IncrementalNewlineDecoder):
            flags &= ~1     # (no \r held)
        return flags

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position as io's seek() does; return the new one.  In a
        text mode as io.TextIOWrapper's: to a position tell() returned, or
        with offset 0 to the start, the current position or the end."""
        self._check()
        offset = operator.index(offset)
        if self._decoder is not None:
            return await self._seek_text(offset, whence)
        if whence == os.SEEK_CUR:
            offset -= len(self._buf)
        # first the seek, which may fail (a position before the start):
        # the file is then where it was, read-ahead included, as io's
        pos = os.lseek(self._fd, offset, whence)
        self._buf = b""
        self._seq = False
        return pos

    async def _seek_text(self, offset, whence):
        if whence == os.SEEK_CUR:
            if offset != 0:
                raise io.UnsupportedOperation("can't do nonzero cur-relative seeks")
            offset, whence = await self.tell(), os.SEEK_SET   # refused as tell() is
        elif whence == os.SEEK_END:
            if offset != 0:
                raise io.UnsupportedOperation("can't do nonzero end-relative seeks")
        elif whence != os.SEEK_SET:
            raise ValueError("invalid whence (%d, should be %d, %d or %d)"
                             % (whence, os.SEEK_SET, os.SEEK_CUR, os.SEEK_END))
        elif offset < 0:
            raise ValueError("negative seek position %d" % offset)
        pos = os.lseek(self._fd, offset, whence)
        self._buf = b""
        self._seq = False
        self._snap_pos = pos
        # the decoder starts over at the new position: at 0 as new (a BOM
        # may come), elsewhere past the BOM, with the byte order it set, as
        # TextIOWrapper's cookie keeps the decoder's flags
        self._reset_decoder()
        if pos != 0:
            self._decoder.setstate((b"", self._flags_past_start()))
        self._snap_flags = self._decoder.getstate()[1]
        # a BOM is written at the start of a file only
        if pos == 0:
            self._encoder.reset()
        else:
            self._encoder.setstate(0)
        return pos

    async def tell(self) -> int:
        """The position as a byte offset, in a text mode too: that of the
        first character not yet returned, which seek() takes back."""
        self._check()
        if self._decoder is None:
            return self._raw_pos()
        pos = self._text_tell()
        if pos is None:
            raise io.UnsupportedOperation("tell(): no byte offset starts the "
                                          "text not yet read (it follows a \\r "
                                          "read as a line end)")
        return pos

    async def truncate(self, size: _t.Optional[int] = None) -> int:
        self._check()
        if not self._writable:
            raise io.UnsupportedOperation("truncate")
        if size is None:
            size = await self.tell()
        else:
            size = operator.index(size)
        self._give_back("truncate")     # (what was read ahead may be cut)
        try:
            await self._ring.ftruncate(self._fd, size)
        except OSError as e:
            if e.errno != 22:       # EINVAL: a kernel without IORING_OP_FTRUNCATE
                raise self._oserror(e) from None
            os.ftruncate(self._fd, size)
        return size

    async def flush(self) -> None:
        """Nothing to do: writes are not buffered in user space."""
        self._check()

    async def fsync(self) -> None:
        self._check()
        try:
            await self._ring.fsync(self._fd)
        except OSError as e:
            raise self._oserror(e) from None

    async def datasync(self) -> None:
        from . import IORING_FSYNC_DATASYNC
        self._check()
        try:
            await self._ring.fsync(self._fd, IORING_FSYNC_DATASYNC)
        except OSError as e:
            raise self._oserror(e) from None

    async def stat(self) -> os.stat_result:
        """os.stat_result of the open file (statx of the descriptor)."""
        from . import AT_EMPTY_PATH
        self._check()
        return await self._ring.statx(self._fd, "", AT_EMPTY_PATH)

    async def close(self) -> None:
        """Close the file (its ring stays open); again does nothing.  The
        descriptor is closed also when the caller is being cancelled, as
        trio's own files close theirs: the close is shielded."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        shared, self._shared = self._shared, None
        if self._closefd:
            await _close_shielded(self._ring, fd, shared)
        elif shared is not None:
            shared.release()

    async def aclose(self) -> None:
        """close(), by the name anyio's files and async resources use."""
        await self.close()

    def __del__(self) -> None:
        # as io's files: an unclosed file is closed when it goes, with a
        # ResourceWarning.  The descriptor may go at once (an operation the
        # kernel still runs holds the file itself, not the number); the
        # shared ring of an asyncio loop is closed by the loop soon after
        # when this was its last file
        fd = getattr(self, "_fd", None)
        if fd is None:
            return
        self._fd = None
        if self._closefd:           # (with closefd=False, as io: not ours)
            warnings.warn("unclosed file <py_io_uring.AsyncFile name=%r mode=%r>"
                          % (self.name, self.mode), ResourceWarning, stacklevel=2, source=self)
            try:
                os.close(fd)
            except OSError:
                pass
        shared = getattr(self, "_shared", None)
        if shared is not None:
            self._shared = None
            shared.release(from_finalizer=True)

    async def __aenter__(self) -> "AsyncFile[_t.AnyStr]":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return "<py_io_uring.AsyncFile name=%r mode=%r%s>" % (
            self.name, self.mode, " closed" if self._fd is None else "")


async def _close_shielded(ring: _t.Any, fd: int, shared: "_t.Optional[_SharedRing]") -> None:
    """ring.close(fd) carried out whatever cancels the caller, then the
    shared ring released.  Under trio an op in a cancelled scope is not
    even submitted (cancellation there is level-triggered, and `async
    with` leaving a cancelled scope closes in it): the close is shielded,
    as trio's own files shield theirs.  Under asyncio the op, once made,
    runs even if its future is cancelled."""
    try:
        if type(ring).__module__ == "py_io_uring.trio":
            import trio
            with trio.CancelScope(shield=True):
                await ring.close(fd)
        else:
            await ring.close(fd)
    finally:
        if shared is not None:
            shared.release()


def _line_end(chars, ends):
    """Index just past the first line end in chars, or -1 (ends None: any of
    \\r, \\n, \\r\\n; a \\r at the very end waits for what follows)."""
    if ends is not None:
        i = chars.find(ends)
        return i + len(ends) if i >= 0 else -1
    n, r = chars.find("\n"), chars.find("\r")   # (str.find: no loop in Python)
    if r < 0 or 0 <= n < r:
        return n + 1 if n >= 0 else -1
    if r + 1 < len(chars):
        return r + 2 if chars[r + 1] == "\n" else r + 1
    return -1

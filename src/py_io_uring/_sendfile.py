"""loop.sock_sendfile() and loop.sendfile() of py_io_uring's event loop
(docs/loop.md, "sendfile"): the file's bytes go to the socket through a
pipe, by two `splice` operations on the loop's ring per chunk, so the
kernel's workers read the file and the loop's thread never waits for the
disk (asyncio's os.sendfile() runs in the loop's thread and blocks it for
as long as a read of an uncached file takes).  The socket is non-blocking:
a splice into it that finds its buffer full fails with EAGAIN (the kernel
does not poll and retry a splice), and a POLLOUT poll on the ring waits
for room.

asyncio's unix_events._sock_sendfile_native() is the model: the same
checks, results and errors (a failure before any byte went out is
SendfileNotAvailableError, so sock_sendfile(fallback=True) falls back to
read and send; the file position is left after the last byte sent)."""

import asyncio
import errno
import fcntl
import io
import os
import select

# a chunk: one pipe's worth (F_SETPIPE_SZ; the default 64 KiB where the
# system refuses); 1 MiB pipes measured best for file copies by splice
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ, _F_GETPIPE_SZ = 1031, 1032


class _Pipe(object):
    """A pipe of about size bytes: a chunk goes file -> pipe -> socket."""
    __slots__ = ("r", "w", "size")

    def __init__(self, size):
        self.r = self.w = None
        self.r, self.w = os.pipe()
        try:
            self.size = fcntl.fcntl(self.w, _F_SETPIPE_SZ, size)
        except OSError:     # over pipe-max-size, or the user's pipe pages
            self.size = fcntl.fcntl(self.w, _F_GETPIPE_SZ)

    def close(self):
        for fd in (self.r, self.w):
            if fd is not None:
                os.close(fd)
        self.r = self.w = None


async def sock_sendfile_native(loop, sock, file, offset, count):
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        raise asyncio.SendfileNotAvailableError("not a regular file")
    try:
        fsize = os.fstat(fileno).st_size
    except OSError:
        raise asyncio.SendfileNotAvailableError("not a regular file")
    if not (count if count else fsize):
        return 0    # empty file
    ring = loop._uring()
    fd = sock.fileno()
    pipe = _Pipe(_PIPE_SIZE)
    total = 0
    try:
        while True:
            n = pipe.size if not count else min(pipe.size, count - total)
            if n <= 0:
                break
            try:
                got = await ring.splice(fileno, offset + total, pipe.w, -1, n)
            except OSError as exc:
                if total == 0:
                    # not a file splice can read (asyncio: sendfile refused)
                    raise asyncio.SendfileNotAvailableError(
                        "splice() from the file failed") from exc
                raise
            if got == 0:
                break       # EOF
            left = got
            while left:
                try:
                    sent = await ring.splice(pipe.r, -1, fd, -1, left)
                except BlockingIOError:
                    # the socket is non-blocking and its buffer full (a
                    # splice has no poll-and-retry in the kernel): wait
                    # until it takes more, on the ring too
                    await ring.poll_add(fd, select.POLLOUT)
                    continue
                except OSError as exc:
                    if total == 0:
                        raise asyncio.SendfileNotAvailableError(
                            "splice() to the socket failed") from exc
                    if exc.errno == errno.ENOTCONN and type(exc) is not ConnectionError:
                        # the peer went in the middle: as asyncio says it
                        new = ConnectionError("socket is not connected", errno.ENOTCONN)
                        new.__cause__ = exc
                        raise new
                    raise
                if sent == 0:
                    raise ConnectionError("socket is not connected", errno.ENOTCONN)
                left -= sent
                total += sent
    finally:
        # a pipe that may still hold bytes is never reused: closed here
        pipe.close()
        if total > 0:
            os.lseek(fileno, offset + total, os.SEEK_SET)
    return total

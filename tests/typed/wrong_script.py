"""Mistakes the stub must catch: tests/test_typing_strict.py runs mypy
--strict on this file and wants errors on each line marked `# error:` (one
of them holding the text after the marker) and on no other line.
Type-checked only, never run."""

import os

import py_io_uring
from py_io_uring import AT_FDCWD, AsyncRing, IoUring


async def mistakes(ring: AsyncRing, fd: int) -> None:
    data: bytes = await ring.read(fd, bytearray(4))  # error: "int", variable has type "bytes"
    n: int = await ring.read(fd, 4)  # error: "bytes", variable has type "int"
    await ring.read(fd, "four")  # error: No overload variant of "read"
    await ring.write(fd, 3)  # error: Argument 2 to "write"
    size: str = (await ring.statx(AT_FDCWD, "/")).st_size  # error: "int", variable has type "str"
    peer_fd: str = (await ring.accept(fd))[0]  # error: "int", variable has type "str"
    async for chunk in ring.recv_multishot(fd):
        chunk + 1  # error: Unsupported operand types
    f = await py_io_uring.open("/dev/null", "rb")
    await f.write("text")  # error: Argument 1 to "write" of "AsyncFile"
    await ring.openat(AT_FDCWD, 42)  # error: Argument 2 to "openat"
    del data, n, size, peer_fd


def sync_mistakes(ring: IoUring) -> None:
    ring.prep_read(fd=os.devnull, buf=4)  # error: Argument "fd" to "prep_read"
    ring.prep_many("raed")  # error: Argument 1 to "prep_many"
    for user_data, result, flags in ring.reap(4):
        user_data + 1  # error: Unsupported operand types
        result + 1  # error: Unsupported operand types
    cqe = ring.wait_cqe()
    if cqe is not None:
        n: int = cqe.getresult()  # error: Incompatible types in assignment
        del n
    names: str = py_io_uring.read_files(["/dev/null"])  # error: Incompatible types in assignment
    del names

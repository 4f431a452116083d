"""numpy arrays as buffers of AsyncRing and IoUring ops: type-checked by
tests/test_typing_strict.py where numpy is installed and its stub declares
the buffer protocol (PEP 688's __buffer__), and run there."""

import os
import tempfile

import numpy

from py_io_uring import AT_FDCWD, AsyncRing, IoUring


async def read_into_array(path: str) -> int:
    async with AsyncRing() as ring:
        fd = await ring.openat(AT_FDCWD, path, os.O_RDONLY)
        try:
            arr = numpy.zeros(5, dtype=numpy.uint8)
            n: int = await ring.read(fd, arr, 0)
            assert n == 5 and arr.tobytes() == b"hello"
            out = numpy.frombuffer(b"numpy", dtype=numpy.uint8)
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                return n + await ring.write(null, out)
            finally:
                os.close(null)
        finally:
            await ring.close(fd)


def sync_form(path: str) -> None:
    with IoUring(4) as ring:
        fd = os.open(path, os.O_RDONLY)
        arr = numpy.zeros(11, dtype=numpy.uint8)
        ring.prep_read(fd, arr, 0, user_data=None)
        got = ring.reap_one(True, True)
        os.close(fd)
        assert got is not None and got[1] == 11 and arr.tobytes() == b"hello world"


if __name__ == "__main__":
    import py_io_uring
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "f")
        with open(p, "wb") as f:
            f.write(b"hello world")
        assert py_io_uring.run(read_into_array(p)) == 10
        sync_form(p)
    print("ok")

"""atheris fuzzing of the argument converters, for `make fuzz`.

Every input picks a prep_* method and a random argument list (ints of every
size, floats, str, bytes, bytearrays, memoryviews contiguous or not, None,
tuples and lists of those, Sqes of this ring and of another, objects whose
fileno() misbehaves) and calls it on a fresh Sqe.  The call must either
succeed or raise one of the documented exceptions; the prepared entry is
then replaced with a NOP before submission, so no fuzzed operation ever
reaches a real file.  `make fuzz` runs it against the clang fuzz build
(build-fuzz/), so libFuzzer's coverage includes the C converters and a
converter that reads or writes out of bounds, or leaks a pin, shows up as
an ASan or UBSan report or a growing record count.

    make fuzz-ci     # or by hand, see docs/reliability.md
"""

import os
import sys

import atheris

sys.path.insert(0, os.environ.get("PY_IO_URING_BUILD",
                                  os.path.join(os.path.dirname(__file__), "..", "build")))
import py_io_uring  # noqa: E402

ring = py_io_uring.IoUring(64)
other = py_io_uring.IoUring(8)
OPS = sorted(n for n in dir(py_io_uring.Sqe) if n.startswith("prep_"))
ALLOWED = (TypeError, ValueError, OverflowError, BufferError, OSError, MemoryError)
target = ring.get_sqe()
target.prep_timeout(3600)
ring.submit()
foreign = other.get_sqe()


class BadFileno:
    def __init__(self, value):
        self.value = value

    def fileno(self):
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


@atheris.instrument_func
def value(fdp, depth=0):
    kind = fdp.ConsumeIntInRange(0, 15)
    if kind == 0:
        return fdp.ConsumeIntInRange(-5, 70000)
    if kind == 1:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 20))
    if kind == 2:
        return fdp.ConsumeRegularFloat()
    if kind == 3:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
    if kind == 4:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
    if kind == 5:
        return bytearray(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300)))
    if kind == 6:
        b = bytearray(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300)))
        step = fdp.ConsumeIntInRange(1, 3)
        return memoryview(b)[::step]
    if kind == 7:
        return None
    if kind in (8, 9) and depth < 2:
        items = [value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 5))]
        return tuple(items) if kind == 8 else items
    if kind == 10:
        return target
    if kind == 11:
        return foreign
    if kind == 12:
        return BadFileno(fdp.PickValueInList([-1, 2**40, "x", ValueError("no")]))
    if kind == 13:
        return ("127.0.0.1", fdp.ConsumeIntInRange(-2, 70000))
    if kind == 14:
        return py_io_uring.AT_FDCWD
    return object()


@atheris.instrument_func
def one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    name = fdp.PickValueInList(OPS)
    args = [value(fdp) for _ in range(fdp.ConsumeIntInRange(0, 7))]
    sqe = ring.get_sqe()
    try:
        getattr(sqe, name)(*args)
    except ALLOWED:
        pass
    sqe.prep_nop()          # nothing fuzzed is ever submitted
    ring.submit()
    while ring.in_flight() > 1:   # the target timeout stays
        c = ring.wait_cqe(timeout=5)
        assert c is not None and c.res() == 0, c
        ring.cqe_seen(c)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

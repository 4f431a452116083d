"""read_bytes, read_text, write_bytes, write_text (src/py_io_uring/
afile_whole.py): pathlib.Path's methods as awaitables, compared with
pathlib's own on asyncio, the EventLoop and trio (results, the files they
write, the exceptions and their paths), and the read to EOF that they use
(AsyncFile.read() with no size), in one read where the file is regular."""

import asyncio
import os
import pathlib
import sys

import pytest
from file_helpers import BACKENDS, fds, run_on  # noqa: F401 (fds: a fixture)

import py_io_uring
from py_io_uring import AsyncRing


def outcome(fn, *args, **kw):
    try:
        return ("ok", fn(*args, **kw))
    except Exception as e:
        return (type(e), getattr(e, "errno", None), getattr(e, "filename", None), str(e))


async def aoutcome(fn, *args, **kw):
    try:
        return ("ok", await fn(*args, **kw))
    except Exception as e:
        return (type(e), getattr(e, "errno", None), getattr(e, "filename", None), str(e))


TEXT = "héllo\r\nwörld\rlast\nno end"


def calls(root):
    """(name, args, kwargs) run by pathlib on root/a and by us on root/b,
    in turn (writes first, then reads of what they wrote)."""
    def j(*p):
        return os.path.join(root, *p)
    out = [
        ("write_bytes", (j("bin"), b"\x00\xff" * 70000), {}),
        ("write_bytes", (j("empty"), b""), {}),
        ("write_bytes", (j("bin2"), bytearray(b"abc")), {}),
        ("write_bytes", (j("bad"), "not bytes"), {}),
        ("write_bytes", (j("nope", "x"), b"x"), {}),
        ("write_bytes", (j("dir"), b"x"), {}),
        ("write_text", (j("t"), TEXT), {}),
        ("write_text", (j("t16"), TEXT), {"encoding": "utf-16"}),
        ("write_text", (j("tlatin"), "ë" * 5000), {"encoding": "latin-1"}),
        ("write_text", (j("tbad"), "ë"), {"encoding": "ascii"}),
        ("write_text", (j("tbad2"), "ë"), {"encoding": "ascii", "errors": "replace"}),
        ("write_text", (j("tbytes"), b"x"), {}),
        ("write_text", (j("tnocodec"), "x"), {"encoding": "no-such-codec"}),
        ("read_bytes", (j("bin"),), {}), ("read_bytes", (j("empty"),), {}),
        ("read_bytes", (j("bin2"),), {}), ("read_bytes", (j("missing"),), {}),
        ("read_bytes", (j("dir"),), {}),
        ("read_text", (j("t"),), {}), ("read_text", (j("t16"),), {"encoding": "utf-16"}),
        ("read_text", (j("tlatin"),), {"encoding": "latin-1"}),
        ("read_text", (j("tlatin"),), {"encoding": "utf-8"}),
        ("read_text", (j("tlatin"),), {"encoding": "utf-8", "errors": "replace"}),
        ("read_text", (j("tbad2"),), {"encoding": "ascii"}),
        ("read_text", (j("missing"),), {}),
    ]
    if sys.version_info >= (3, 10):
        out.append(("write_text", (j("tnl"), TEXT), {"newline": "\r\n"}))
        out.append(("read_text", (j("tnl"),), {}))
    if sys.version_info >= (3, 13):
        out.append(("read_text", (j("t"),), {"newline": ""}))
    return out


def _pathlib(name, path, *args, **kw):
    return getattr(pathlib.Path(path), name)(*args, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_call_does_what_pathlib_does(tmp_path, fds, backend):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for r in (a, b):
        os.makedirs(os.path.join(r, "dir"))
    theirs = [(n, outcome(_pathlib, n, *args, **kw)) for n, args, kw in calls(a)]

    async def main():
        return [(n, await aoutcome(getattr(py_io_uring, n), *args, **kw))
                for n, args, kw in calls(b)]
    mine = run_on(backend, main)
    assert len(mine) == len(theirs)
    for m, t in zip(mine, theirs):
        m = tuple(x.replace(b, a) if isinstance(x, str) else x for x in m[1])
        assert m == t[1], (t[0], m, t[1])
    # one difference, on purpose: an unknown codec is refused before the
    # file is touched (open() here checks it first), where pathlib's
    # open() has created (or truncated) the file before it fails
    assert os.path.getsize(os.path.join(a, "tnocodec")) == 0
    assert not os.path.exists(os.path.join(b, "tnocodec"))
    os.unlink(os.path.join(a, "tnocodec"))
    # the files written are the same, byte for byte
    for name in os.listdir(a):
        if os.path.isfile(os.path.join(a, name)):
            with open(os.path.join(a, name), "rb") as f, open(os.path.join(b, name), "rb") as g:
                assert f.read() == g.read(), name
    assert sorted(os.listdir(a)) == sorted(os.listdir(b))


class CountingRing(object):
    """An AsyncRing's ops, its reads counted."""

    def __init__(self, ring):
        self.ring, self.reads = ring, []

    def __getattr__(self, name):
        return getattr(self.ring, name)

    def read(self, fd, n, off):
        self.reads.append(n)
        return self.ring.read(fd, n, off)


@pytest.mark.parametrize("size", [0, 1, 4096, (1 << 20) + 3, (5 << 20) + 1])
def test_a_regular_file_is_read_whole_in_one_read(tmp_path, fds, size):
    data = os.urandom(size)
    p = tmp_path / "f"
    p.write_bytes(data)

    async def main():
        async with AsyncRing(8) as r:
            ring = CountingRing(r)
            got = await py_io_uring.read_bytes(str(p), ring=ring)
            # and after a partial read, the rest in one read too
            async with py_io_uring.open(str(p), "rb", ring=ring) as f:
                first = await f.read(10)
                del ring.reads[:]
                rest = await f.read()
            return got, first + rest, ring.reads
    got, again, reads = asyncio.run(main())
    assert got == data and again == data
    # the size left plus one byte (no read returning nothing after it)
    assert len(reads) == 1 and reads[0] >= size - 10 - (64 << 10)


def test_read_to_eof_when_the_size_is_wrong(tmp_path, fds, monkeypatch):
    # fstat says less (the file grew) or more (it shrank): the data is the
    # file as it is, read on to EOF; a file fstat knows no size of
    # (procfs) is read to EOF 1 MiB at a time
    data = os.urandom(300000)
    p = tmp_path / "f"
    p.write_bytes(data)
    real = os.fstat

    def lying(by):
        def fstat(fd):
            st = real(fd)
            if os.readlink("/proc/self/fd/%d" % fd) != str(p):
                return st
            fields = list(st)
            fields[6] = max(st.st_size + by, 0)
            return os.stat_result(fields)
        return fstat

    async def read(path):
        async with AsyncRing(8) as r:
            ring = CountingRing(r)
            return await py_io_uring.read_bytes(path, ring=ring), ring.reads
    for by in (-100000, -299999, 1000, 1 << 20):
        monkeypatch.setattr(os, "fstat", lying(by))
        got, reads = asyncio.run(read(str(p)))
        assert got == data and len(reads) >= 2, by
    monkeypatch.undo()
    got, reads = asyncio.run(read("/proc/self/status"))
    assert b"VmRSS" in got and reads[-1] == 1 << 20

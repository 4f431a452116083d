"""py_io_uring.tempfile (src/py_io_uring/tempfile.py): tempfile's files
and directories as async objects, on asyncio, the EventLoop and trio,
each checked against what tempfile itself does: the data, the names, the
modes, when a file goes, the errors, and that no descriptor is left."""

import asyncio
import errno
import gc
import os
import stat
import sys
import tempfile
import warnings

import pytest
from file_helpers import BACKENDS, fds, run_on  # noqa: F401 (fds: a fixture)

import py_io_uring
from py_io_uring import tempfile as ptf


def outcome(fn):
    try:
        return ("ok", fn())
    except Exception as e:
        return (type(e), getattr(e, "errno", None), str(e))


async def aoutcome(fn):
    try:
        return ("ok", await fn())
    except Exception as e:
        return (type(e), getattr(e, "errno", None), str(e))


@pytest.mark.parametrize("backend", BACKENDS)
def test_temporary_file_has_no_name_and_keeps_data(tmp_path, fds, backend, monkeypatch):
    # as tempfile's: O_TMPFILE where the file system has it, else a name
    # unlinked at once; either way nothing is ever seen in dir
    seen = []

    async def main():
        async with ptf.TemporaryFile(dir=str(tmp_path)) as f:
            seen.append(os.listdir(str(tmp_path)))
            assert isinstance(f.name, int) and f.name == f.fileno()
            assert f.mode == "w+b"
            assert await f.write(b"x" * 100000 + b"end") == 100003
            await f.seek(0)
            assert await f.read() == b"x" * 100000 + b"end"
            st = await f.stat()
            assert stat.S_ISREG(st.st_mode) and st.st_nlink == 0
            assert stat.S_IMODE(st.st_mode) == 0o600
        assert f.closed
        t = await ptf.TemporaryFile("w+", encoding="utf-16", newline="\r\n", dir=tmp_path)
        await t.write("héllo\nwörld\n")
        await t.seek(0)
        assert [line async for line in t] == ["héllo\r\n", "wörld\r\n"]     # as open()
        await t.seek(0)
        assert (await t.read()).encode("utf-16") == "héllo\r\nwörld\r\n".encode("utf-16")
        await t.close()
    run_on(backend, main)
    monkeypatch.setattr(ptf, "_tmpfile_works", False)     # the named way
    run_on(backend, main)
    assert seen == [[], []] and os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_named_temporary_file_is_tempfiles(tmp_path, fds, backend):
    d = str(tmp_path)

    async def main():
        async with ptf.NamedTemporaryFile(prefix="pre", suffix=".suf", dir=d) as f:
            name = f.name
            assert os.path.dirname(name) == d and os.path.isabs(name)
            base = os.path.basename(name)
            assert base.startswith("pre") and base.endswith(".suf") and len(base) == 3 + 8 + 4
            st = os.stat(name)
            assert stat.S_IMODE(st.st_mode) == 0o600 and os.path.samestat(st, await f.stat())
            await f.write(b"data")
            with open(name, "rb") as g:         # the name is the file
                assert g.read() == b"data"
            assert f.delete and f.delete_on_close
        assert not os.path.exists(name) and f.closed
        # bytes components: a bytes name, as tempfile's
        async with ptf.NamedTemporaryFile("w+", prefix=b"b", dir=os.fsencode(d),
                                          encoding="ascii") as g:
            assert isinstance(g.name, bytes) and os.path.basename(g.name).startswith(b"b")
            assert g.encoding == "ascii"
            await g.write("text\n")
            await g.seek(0)
            assert await g.readline() == "text\n"
        assert not os.path.exists(g.name)
        # a path-like dir; many names at once are all different
        files = [await ptf.NamedTemporaryFile(dir=tmp_path) for _ in range(50)]
        assert len({f.name for f in files}) == 50
        for f in files:
            await f.close()
    run_on(backend, main)
    assert os.listdir(d) == []


# (delete, delete_on_close) -> is the file there after close() / after
# the `async with` block, as 3.12's tempfile says
REMOVAL = [((True, True), False, False), ((True, False), True, False),
           ((False, True), True, True), ((False, False), True, True)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flags, after_close, after_exit", REMOVAL)
def test_named_file_goes_when_tempfile_says(tmp_path, fds, backend, flags, after_close,
                                            after_exit):
    delete, on_close = flags

    async def main():
        opener = ptf.NamedTemporaryFile(dir=tmp_path, delete=delete, delete_on_close=on_close)
        async with opener as f:
            await f.write(b"x")
            await f.close()
            there = [os.path.exists(f.name)]
        there.append(os.path.exists(f.name))
        # left without close(): the block's exit closes (and removes)
        async with ptf.NamedTemporaryFile(dir=tmp_path, delete=delete,
                                          delete_on_close=on_close) as g:
            pass
        there.append(os.path.exists(g.name))
        return there, f.name, g.name
    there, *names = run_on(backend, main)
    assert there == [after_close, after_exit, after_exit]
    if sys.version_info >= (3, 12):     # and tempfile's own agrees
        with tempfile.NamedTemporaryFile(dir=tmp_path, delete=delete,
                                         delete_on_close=on_close) as t:
            t.close()
            assert os.path.exists(t.name) == after_close
        assert os.path.exists(t.name) == after_exit
        names.append(t.name)
    for n in names:
        if os.path.exists(n):
            os.unlink(n)


def test_named_file_dropped_unclosed_goes_with_a_warning(tmp_path, fds):
    async def main():
        f = await ptf.NamedTemporaryFile(dir=tmp_path)
        name = f.name
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            del f
            gc.collect()
        assert [x.category for x in w] == [ResourceWarning]
        return name
    name = asyncio.run(main())
    assert not os.path.exists(name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_errors_are_tempfiles_and_leave_nothing(tmp_path, fds, backend):
    d = str(tmp_path)
    missing = os.path.join(d, "nope")
    # (kwargs, what tempfile raises for them)
    cases = [dict(dir=missing), dict(mode="rw"), dict(mode="rb", encoding="utf-8"),
             dict(mode="w+", newline="x"), dict(prefix=b"x", suffix="y"),
             dict(mode="w+", encoding="no-such-codec")]
    want = []
    for kw in cases:
        o = outcome(lambda: tempfile.NamedTemporaryFile(**kw).close())
        if o[:2] == (OSError, errno.EBADF):
            # 3.8's and 3.9's closed their fd twice when open() refused the
            # text arguments (EBADF): open()'s own error, as later ones give
            o = outcome(lambda: open(os.devnull, **kw))
        want.append(o[:2])

    async def main():
        got = []
        for kw in cases:
            for make in (ptf.NamedTemporaryFile, ptf.TemporaryFile):
                o = await aoutcome(lambda: make(**kw))
                got.append((make.__name__, o[:2], o[2]))
        return got
    got = run_on(backend, main)
    for i, kw in enumerate(cases):
        for name, o, msg in got[2 * i:2 * i + 2]:
            assert o == want[i], (name, kw, msg)
            if kw.get("dir") == missing:    # the path it tried, as tempfile's
                assert missing in msg
    assert os.listdir(d) == []


def test_a_taken_name_is_passed_over(tmp_path, fds, monkeypatch):
    # each name takes 8 choices: these names, in turn
    class Seq(object):
        def __init__(self, names):
            self.names, self.i = names, 0

        def choice(self, chars):
            c = self.names[self.i // 8][self.i % 8]
            self.i += 1
            return c
    (tmp_path / "tmpaaaaaaaa").write_bytes(b"someone's")
    monkeypatch.setattr(ptf, "_names", Seq(["aaaaaaaa", "bbbbbbbb"]))

    async def main():
        async with ptf.NamedTemporaryFile(dir=tmp_path) as f:
            return f.name
    assert os.path.basename(asyncio.run(main())) == "tmpbbbbbbbb"
    assert (tmp_path / "tmpaaaaaaaa").read_bytes() == b"someone's"
    # every name taken: tempfile's FileExistsError after TMP_MAX tries
    monkeypatch.setattr(ptf, "_names", Seq(["aaaaaaaa"] * 5))
    monkeypatch.setattr(tempfile, "TMP_MAX", 5)

    async def taken():
        return await aoutcome(lambda: ptf.NamedTemporaryFile(dir=tmp_path))
    got = asyncio.run(taken())
    assert got[:2] == (FileExistsError, 17) and "No usable temporary file name" in got[2]
    assert os.listdir(str(tmp_path)) == ["tmpaaaaaaaa"]


def test_named_file_closed_and_removed_in_a_cancelled_trio_scope(tmp_path, fds):
    trio = pytest.importorskip("trio")

    async def main():
        with trio.CancelScope() as scope:
            async with ptf.NamedTemporaryFile(dir=tmp_path) as f:
                scope.cancel()
                await trio.sleep(1)     # cancelled here: the exit still runs
        return f
    f = trio.run(main)
    assert f.closed and not os.path.exists(f.name)


# -- SpooledTemporaryFile: the same script on tempfile's and on ours

def script(binary):
    """Steps (method, args): the data crosses max_size part way."""
    w = (lambda s: s.encode()) if binary else (lambda s: s)
    return [("write", (w("first line\n"),)), ("tell", ()), ("seek", (0,)),
            ("readline", ()), ("read", (3,)), ("seek", (0, 2)),
            ("writelines", ([w("ab\n"), w("cd\n")],)), ("seek", (0,)),
            ("readlines", ()), ("write", (w("x" * 40 + "\n"),)), ("tell", ()),
            ("seek", (0,)), ("read", (5,)), ("truncate", (11,)), ("seek", (0,)),
            ("read", ()), ("write", (w("last\n"),)), ("seek", (0,)), ("read", ())]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["w+b", "w+"])
@pytest.mark.parametrize("max_size", [0, 20, 1000])
def test_spooled_file_does_what_tempfiles_does(tmp_path, fds, backend, mode, max_size):
    binary = "b" in mode
    theirs = tempfile.SpooledTemporaryFile(max_size, mode, dir=tmp_path)
    want = []
    for name, args in script(binary):
        o = outcome(lambda: getattr(theirs, name)(*args))
        if name == "truncate" and o == ("ok", None):
            o = ("ok", args[0])     # (3.8's returned None: the size since)
        want.append((name, o, theirs._rolled))
    theirs.close()

    async def main():
        got = []
        async with ptf.SpooledTemporaryFile(max_size, mode, dir=tmp_path) as s:
            assert s.mode == mode and not s.rolled and s.name is None
            for name, args in script(binary):
                o = await aoutcome(lambda: getattr(s, name)(*args))
                got.append((name, o, s.rolled))
            if s.rolled:
                assert s.name == await s.fileno()
        assert s.closed
        return got
    assert run_on(backend, main) == want
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_spooled_rollover_keeps_a_text_position_mid_read(tmp_path, fds, backend):
    # a TextIOWrapper's tell() after a partial read is a cookie: the
    # rolled file starts at the same character
    text = "".join("line %d héé\n" % i for i in range(50))

    async def main():
        s = await ptf.SpooledTemporaryFile(0, "w+", encoding="utf-8")
        await s.write(text)
        await s.seek(0)
        first = await s.readline() + await s.read(7)
        await s.rollover()
        assert s.rolled and s.encoding == "utf-8"
        rest = await s.read()
        fd = await s.fileno()
        await s.close()
        return first + rest, fd
    got, fd = run_on(backend, main)
    assert got == text
    assert str(fd) not in os.listdir("/proc/self/fd")


@pytest.mark.parametrize("backend", BACKENDS)
def test_temporary_directory(tmp_path, fds, backend):
    async def main():
        async with ptf.TemporaryDirectory(prefix="pre", dir=tmp_path) as d:
            assert isinstance(d, str) and os.path.basename(d).startswith("pre")
            os.makedirs(os.path.join(d, "a", "b"))
            with open(os.path.join(d, "a", "b", "f"), "w"):
                pass
            os.chmod(os.path.join(d, "a", "b"), 0o500)  # tempfile's cleanup copes
        assert not os.path.exists(d)
        t = await ptf.TemporaryDirectory(dir=os.fsencode(str(tmp_path)))
        assert isinstance(t.name, bytes) and os.path.isdir(t.name)
        await t.cleanup()
        await t.close()                 # again: nothing
        assert not os.path.exists(t.name)
        if sys.version_info >= (3, 12):
            async with ptf.TemporaryDirectory(dir=tmp_path, delete=False) as kept:
                pass
            assert os.path.isdir(kept)
            os.rmdir(kept)
    run_on(backend, main)
    assert os.listdir(str(tmp_path)) == []


def test_openers_make_one_file_each(tmp_path, fds):
    async def main():
        opener = ptf.TemporaryFile(dir=tmp_path)
        f = await opener
        await f.close()
        with pytest.raises(RuntimeError, match="made already"):
            await opener
        d = ptf.TemporaryDirectory(dir=tmp_path)
        async with d:
            pass
        with pytest.raises(RuntimeError, match="made already"):
            await d
    asyncio.run(main())


def test_every_name_of_aiofiles_tempfile_is_here():
    aio_tempfile = pytest.importorskip("aiofiles.tempfile")
    assert set(aio_tempfile.__all__) <= set(ptf.__all__)
    assert "tempfile" in dir(py_io_uring)
    assert py_io_uring.tempfile is ptf

"""py_io_uring.open() (src/py_io_uring/afile.py): async file objects whose
reads, writes, syncs and stats are io_uring operations on an AsyncRing;
compared with builtins.open() on the same files."""

import asyncio
import errno
import io
import os
import sys
import threading

import pytest

import py_io_uring
from py_io_uring import AsyncRing


def run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.fixture
def fds():
    before = set(os.listdir("/proc/self/fd"))
    yield
    assert set(os.listdir("/proc/self/fd")) == before


def test_binary_read_forms(tmp_path, fds):
    data = os.urandom(300000) + b"\nline two\nlast"
    p = tmp_path / "f"
    p.write_bytes(data)

    async def main():
        async with await py_io_uring.open(p, "rb") as f:
            assert await f.read(10) == data[:10]
            assert await f.tell() == 10
            buf = bytearray(70000)
            assert await f.readinto(buf) == 70000 and bytes(buf) == data[10:70010]
            assert await f.read() == data[70010:]
            assert await f.read() == b""
            assert await f.seek(0) == 0
            assert await f.read(-1) == data
            await f.seek(-13, os.SEEK_END)
            assert await f.readline() == b"line two\n"
            assert await f.readline() == b"last"
            assert await f.readline() == b""
            await f.seek(0)
            lines = [line async for line in f]
            with open(str(p), "rb") as ref:
                assert lines == ref.readlines()
            st = await f.stat()
            assert st.st_size == len(data) and st.st_ino == os.stat(str(p)).st_ino
        assert f.closed
        with pytest.raises(ValueError):
            await f.read()
        await f.close()                 # again: nothing
    run(main())


def test_write_modes_and_sync(tmp_path, fds):
    p = tmp_path / "w"

    async def main():
        async with AsyncRing() as ring:
            f = await py_io_uring.open(str(p), "wb", ring=ring)
            assert await f.write(b"hello ") == 6
            await f.writelines([b"world", bytearray(b"!\n"), memoryview(b"xyz")])
            await f.flush()
            await f.fsync()
            await f.datasync()
            assert await f.tell() == 16
            assert await f.truncate(12) == 12
            with pytest.raises(io.UnsupportedOperation):
                await f.read()
            await f.close()
            assert not ring.closed       # a ring given stays open
            assert p.read_bytes() == b"hello world!"
            async with await py_io_uring.open(p, "ab", ring=ring) as f:
                await f.write(b" more")
            assert p.read_bytes() == b"hello world! more"
            async with await py_io_uring.open(p, "r+b", ring=ring) as f:
                assert await f.read(5) == b"hello"   # read-ahead holds the rest
                await f.write(b"_")                  # at the logical position
                assert await f.read() == b"world! more"
            assert p.read_bytes() == b"hello_world! more"
            with pytest.raises(FileExistsError) as info:
                await py_io_uring.open(p, "xb", ring=ring)
            assert info.value.filename == str(p)
            big = os.urandom(3 << 20)
            async with await py_io_uring.open(p, "wb", ring=ring) as f:
                await f.write(big)
            assert p.read_bytes() == big
    run(main())


def test_errors_carry_the_path(tmp_path, fds):
    async def main():
        missing = str(tmp_path / "missing")
        with pytest.raises(FileNotFoundError) as info:
            await py_io_uring.open(missing)
        assert (info.value.errno, info.value.filename) == (2, missing)
        # a directory is refused by the open itself, as open() refuses it
        # (the kernel opens one read-only), in every mode, the path as given
        async with AsyncRing() as ring:
            for path in (str(tmp_path), os.fsencode(str(tmp_path)), tmp_path):
                for mode in ("r", "rb", "rt", "r+b", "w", "ab", "x"):
                    with pytest.raises(OSError) as ref:
                        open(path, mode)
                    with pytest.raises(OSError) as info:
                        await py_io_uring.open(path, mode, ring=ring)
                    assert type(info.value) is type(ref.value), (mode, info.value)
                    assert (info.value.errno, info.value.strerror, info.value.filename) == \
                        (ref.value.errno, ref.value.strerror, ref.value.filename), mode
                with pytest.raises(IsADirectoryError):
                    await py_io_uring.open(path, "rb")    # on a ring of its own
            assert not ring.closed
        for bad in ("rw", "rbt", "q", "rr"):
            with pytest.raises(ValueError):
                await py_io_uring.open(missing, bad)
        with pytest.raises(ValueError):
            await py_io_uring.open(missing, "rb", encoding="utf-8")
        with pytest.raises(LookupError):
            await py_io_uring.open(str(tmp_path / "t"), "w", encoding="no-such-codec")
    run(main())


@pytest.mark.parametrize("newline", [None, "", "\n", "\r\n"])
def test_text_mode_matches_builtin_open(tmp_path, fds, newline):
    p = tmp_path / "t"
    text = "h\u00e9llo\nw\u00f6rld\r\nthird\rfourth" + "\u20ac" * 40000 + "\nend"
    with open(str(p), "w", encoding="utf-8", newline="") as f:
        f.write(text)

    async def main():
        async with await py_io_uring.open(p, "r", encoding="utf-8", newline=newline) as f:
            lines = [line async for line in f]
        with open(str(p), "r", encoding="utf-8", newline=newline) as ref:
            assert lines == ref.readlines()
        async with await py_io_uring.open(p, "r", encoding="utf-8", newline=newline) as f:
            first = await f.read(7)
            rest = await f.read()
        with open(str(p), "r", encoding="utf-8", newline=newline) as ref:
            assert first == ref.read(7) and rest == ref.read()
        q = tmp_path / "out"
        async with await py_io_uring.open(q, "w", encoding="utf-16", newline=newline) as f:
            assert await f.write("a\nb\u00e9") == 4
            await f.write("\nc")
        with open(str(tmp_path / "ref"), "w", encoding="utf-16", newline=newline) as ref:
            ref.write("a\nb\u00e9")
            ref.write("\nc")
        assert q.read_bytes() == (tmp_path / "ref").read_bytes()
    run(main())


_WORDS = ["h\u00e9llo", "w\u00f6rld", "\u65e5\u672c\u8a9e", "plain", "x" * 50,
          "\u20acuro", "\U0001f600", ""]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-8-sig", "utf-32"])
@pytest.mark.parametrize("ends,newline", [("\n", None), ("\r\n", None), ("\r", None),
                                          ("\r\n", ""), ("\r", ""), ("\r\n", "\r\n")])
def test_text_tell_gives_offsets_seek_takes_back(tmp_path, fds, encoding, ends, newline):
    # tell() after each readline(), as with open(): a plain byte offset
    # (where a decoder started clean gives the next line), across the
    # decoder's 8 KiB steps and characters and \r\n pairs cut by them
    import random
    rnd = random.Random(7)
    lines = [" ".join(rnd.choice(_WORDS) for _ in range(rnd.randrange(0, 30)))
             for _ in range(700)]
    p = tmp_path / "t"
    with open(str(p), "w", encoding=encoding, newline="") as f:
        f.write(ends.join(lines) + ends)
    with open(str(p), encoding=encoding, newline=newline) as ref:
        want = ref.readlines()

    async def main():
        async with await py_io_uring.open(p, "r", encoding=encoding, newline=newline) as f:
            pos, got = [], []
            while True:
                pos.append(await f.tell())
                line = await f.readline()
                if not line:
                    break
                got.append(line)
            assert got == want
            assert pos[-1] == p.stat().st_size
            for i in list(range(len(got))[::-1]):       # back to every line
                assert await f.seek(pos[i]) == pos[i]
                assert await f.readline() == got[i], i
                assert await f.tell() == pos[i + 1], i
        return pos, got
    pos, got = run(main())
    with open(str(p), encoding=encoding, newline=newline) as ref:  # open() takes them
        for i in range(0, len(got), 37):
            ref.seek(pos[i])
            assert ref.readline() == got[i]


def test_text_seek_to_the_current_position_loses_nothing(tmp_path, fds):
    p = tmp_path / "t"
    text = "\u00e9t\u00e9\nhiver\r\n" * 2000
    p.write_bytes(text.encode("utf-8"))

    async def main():
        async with await py_io_uring.open(p, "r", encoding="utf-8", newline="") as f:
            head = await f.read(5)
            where = await f.seek(0, os.SEEK_CUR)        # the characters read ahead stay
            assert where == len(head.encode("utf-8"))
            assert head + await f.read() == text
            with pytest.raises(ValueError, match="negative seek position -1"):
                await f.seek(-1)
            with pytest.raises(io.UnsupportedOperation, match="nonzero cur-relative"):
                await f.seek(1, os.SEEK_CUR)
            with pytest.raises(io.UnsupportedOperation, match="nonzero end-relative"):
                await f.seek(-1, os.SEEK_END)
            with pytest.raises(ValueError, match="invalid whence"):
                await f.seek(0, 7)
            assert await f.seek(0, os.SEEK_END) == len(text.encode("utf-8"))
            assert await f.read() == ""
    run(main())


def test_text_write_after_a_read_lands_where_the_text_read_ends(tmp_path, fds):
    p = tmp_path / "t"
    text = "\u00e9t\u00e9\n" + "hiver\n" * 5000
    p.write_bytes(text.encode("utf-8"))

    async def main():
        async with await py_io_uring.open(p, "r+", encoding="utf-8") as f:
            assert await f.readline() == "\u00e9t\u00e9\n"    # 64 KiB read, 8 KiB decoded
            await f.write("HIVER")
            assert await f.readline() == "\n"
            assert await f.readline() == "hiver\n"
    run(main())
    assert p.read_bytes() == ("\u00e9t\u00e9\nHIVER\n" + "hiver\n" * 4999).encode("utf-8")


def test_an_unclosed_file_on_a_given_ring_closes_its_descriptor_only(tmp_path, fds):
    # (a file with a ring of its own: test_an_unclosed_file_and_its_ring_go_on_each_backend)
    p = tmp_path / "f"
    p.write_bytes(b"data")

    async def main():
        async with AsyncRing() as ring:
            mine = set(os.listdir("/proc/self/fd"))
            f = await py_io_uring.open(p, "rb", ring=ring)
            assert await f.read() == b"data"
            with pytest.warns(ResourceWarning, match="unclosed file <py_io_uring.AsyncFile"):
                del f
            assert set(os.listdir("/proc/self/fd")) == mine   # the file's fd went
            assert not ring.closed                   # a ring given stays open
            assert await ring.nop() == 0
    run(main())


def test_one_read_forms_and_aclose(tmp_path, fds):
    data = os.urandom(200000)
    p = tmp_path / "f"
    p.write_bytes(data)

    async def main():
        f = await py_io_uring.open(p, "rb")
        got = b""
        assert await f.peek() == (await f.peek())        # peek does not move on
        while True:
            chunk = await f.read1(50000)
            assert len(chunk) <= 50000
            if not chunk:
                break
            got += chunk
        assert got == data
        await f.seek(100)
        buf = bytearray(1000)
        n = await f.readinto1(buf)
        assert 0 < n <= 1000 and bytes(buf[:n]) == data[100:100 + n]
        assert await f.readall() == data[100 + n:]
        await f.aclose()
        assert f.closed
        async with await py_io_uring.open(p, "r", encoding="latin-1") as t:
            for name in ("read1", "readinto1", "peek"):
                with pytest.raises(io.UnsupportedOperation):
                    await getattr(t, name)(*([bytearray(1)] if name == "readinto1" else []))
    run(main())


def test_a_descriptor_closefd_and_opener_as_open_takes_them(tmp_path, fds):
    p = tmp_path / "f"
    p.write_bytes(b"0123456789")

    async def main():
        fd = os.open(str(p), os.O_RDONLY)
        f = await py_io_uring.open(fd, "rb", closefd=False)
        assert f.name == fd and await f.read() == b"0123456789"
        await f.close()
        assert os.pread(fd, 3, 0) == b"012"           # still open
        f = await py_io_uring.open(fd, "rb", closefd=False)
        del f                                         # not ours: no warning, left open
        os.fstat(fd)
        f = await py_io_uring.open(fd, "rb")          # closefd=True: close() closes it
        await f.close()
        with pytest.raises(OSError):
            os.fstat(fd)
        fd = os.open(str(p), os.O_WRONLY)
        async with await py_io_uring.open(fd, "ab") as f:   # "a" starts at the end
            await f.write(b"!")
        assert p.read_bytes() == b"0123456789!"
        dfd = os.open(str(tmp_path), os.O_RDONLY)
        try:
            with pytest.raises(IsADirectoryError) as e:
                await py_io_uring.open(dfd, "rb")
            assert e.value.filename == dfd
            os.fstat(dfd)                             # a descriptor given is not closed

            def opener(path, flags):
                return os.open(os.path.basename(path), flags, dir_fd=dfd)
            async with await py_io_uring.open(str(p), "r", encoding="ascii",
                                              opener=opener) as f:
                assert await f.read() == "0123456789!"
            with pytest.raises(IsADirectoryError):
                await py_io_uring.open(".", "rb", opener=lambda path, flags: os.open(str(tmp_path), flags))
        finally:
            os.close(dfd)
        with pytest.raises(ValueError, match="negative file descriptor"):
            await py_io_uring.open(-1, "rb")
        with pytest.raises(ValueError, match="closefd=False with file name"):
            await py_io_uring.open(str(p), "rb", closefd=False)
        with pytest.raises(TypeError, match="expected integer from opener"):
            await py_io_uring.open(str(p), "rb", opener=lambda path, flags: "x")
        with pytest.raises(ValueError, match="opener returned -1"):
            await py_io_uring.open(str(p), "rb", opener=lambda path, flags: -1)
    run(main())


@pytest.mark.parametrize("mode", ["rb", "r", "r-newline-empty"])
def test_a_line_longer_than_many_reads(tmp_path, fds, mode):
    # a line of 3 MB spans 47 reads ahead and 370 decodes: it comes whole,
    # size limits cut it anywhere, and tell() is right after it
    line = "\u00e9\u65e5x" * 400000 + "\r\n"
    p = tmp_path / "f"
    p.write_bytes((line + "tail\n").encode("utf-8"))
    kw = {} if mode == "rb" else {"encoding": "utf-8",
                                  "newline": "" if mode.endswith("empty") else None}
    want = line.encode("utf-8") if mode == "rb" else line if kw["newline"] == "" \
        else line[:-2] + "\n"

    async def main():
        async with await py_io_uring.open(p, mode[:2].rstrip("-"), **kw) as f:
            assert await f.readline() == want
            assert await f.tell() == len(line.encode("utf-8"))
            assert await f.readline() == (b"tail\n" if mode == "rb" else "tail\n")
            await f.seek(0)
            assert await f.readline(1000003) == want[:1000003]
            assert await f.readline() == want[1000003:]
            await f.seek(0)
            whole = want + (b"tail\n" if mode == "rb" else "tail\n")
            assert await f.read(1000001) == whole[:1000001]
            assert await f.read() == whole[1000001:]
    run(main())


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-32", "utf-8"])
@pytest.mark.parametrize("mode", ["a", "r+", "w"])
def test_writes_get_a_bom_only_at_the_start_as_open_writes_them(tmp_path, fds, encoding, mode):
    # "a" starts at the end (tell() the size), and text written after the
    # start of a file gets no second BOM, as with open()
    p = tmp_path / "t"

    def start():
        with open(str(p), "w", encoding=encoding) as f:
            f.write("ab\n")
    start()
    with open(str(p), mode, encoding=encoding) as f:
        where = f.tell()
        f.write("cd\n")
        f.seek(0)
        f.write("x")
    want = p.read_bytes()
    start()

    async def main():
        async with await py_io_uring.open(p, mode, encoding=encoding) as f:
            assert await f.tell() == where
            await f.write("cd\n")
            await f.seek(0)
            await f.write("x")
    run(main())
    assert p.read_bytes() == want


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig", "utf-32"])
def test_a_text_seek_past_the_start_reads_past_the_bom(tmp_path, fds, encoding):
    # a file opened anew and sent to an offset an earlier tell() gave: the
    # decoder must not look for a BOM there (utf-16 raised "does not start
    # with BOM"); a big-endian file stays big-endian
    p = tmp_path / "t"
    with open(str(p), "w", encoding=encoding) as f:
        f.write("first\nsecond \u00e9\u65e5\nthird\n")

    async def main():
        async with await py_io_uring.open(p, "r", encoding=encoding) as f:
            assert await f.readline() == "first\n"
            where = await f.tell()
        async with await py_io_uring.open(p, "r", encoding=encoding) as f:
            assert await f.seek(where) == where
            assert await f.readline() == "second \u00e9\u65e5\n"
            assert await f.seek(0) == 0
            assert await f.read() == "first\nsecond \u00e9\u65e5\nthird\n"
    run(main())


def test_tell_after_a_size_cut_between_cr_and_lf_untranslated(tmp_path, fds):
    # newline="": a \r returned alone by readline(size) is a character of
    # its own, and the \n after it starts the rest
    p = tmp_path / "t"
    p.write_bytes(b"ab\r\ncd\r\n")

    async def main():
        async with await py_io_uring.open(p, "r", encoding="utf-8", newline="") as f:
            assert await f.readline(3) == "ab\r"
            assert await f.tell() == 3
            assert await f.readline() == "\n"
            await f.seek(3)
            assert await f.read() == "\ncd\r\n"
    run(main())


@pytest.mark.parametrize("newline", ["", None])
@pytest.mark.parametrize("tail", ["a\r\r", "\r", "a\r", "\r\r\r", "a\r\n\r"])
def test_line_ends_at_the_end_of_the_file(tmp_path, fds, newline, tail):
    # the decoder gives a last \r only at the end: still two lines in "\r\r"
    p = tmp_path / "t"
    p.write_bytes(("x" * 9000 + "\n" + tail).encode("utf-32"))
    with open(str(p), encoding="utf-32", newline=newline) as ref:
        want = ref.readlines()

    async def main():
        async with await py_io_uring.open(p, "r", encoding="utf-32", newline=newline) as f:
            assert [line async for line in f] == want
    run(main())


def test_a_failed_seek_leaves_the_position(tmp_path, fds):
    p = tmp_path / "f"
    p.write_bytes(b"ab\ncd\n" + b"x" * 100000)

    async def main():
        async with await py_io_uring.open(p, "rb") as f:
            assert await f.readline() == b"ab\n"         # 64 KiB read ahead
            with pytest.raises(OSError) as e:
                await f.seek(-10, os.SEEK_CUR)
            assert e.value.errno == errno.EINVAL
            assert await f.tell() == 3                    # (was 65536: the read-ahead lost)
            assert await f.readline() == b"cd\n"
    run(main())


@pytest.mark.parametrize("seed", range(16))
def test_binary_calls_follow_open(tmp_path, fds, seed):
    # random bytes and calls: each gives what open()'s buffered file gives
    import random
    rnd = random.Random(seed)
    data = b"".join(rnd.choice([b"a", b"\n", b"xyz" * 100, b"\r\n", bytes(range(50)), b"\n" * 3])
                    for _ in range(rnd.randrange(100, 5000)))
    p = tmp_path / "f"
    p.write_bytes(data)

    async def main():
        with open(str(p), "rb") as ref:
            async with await py_io_uring.open(p, "rb") as f:
                offsets = [0]
                for step in range(60):
                    op = rnd.choice(["readline", "readline_size", "read", "readinto", "tell",
                                     "seek", "seek_cur", "seek_end", "lines"])
                    if op == "readline":
                        got, want = await f.readline(), ref.readline()
                    elif op == "readline_size":
                        k = rnd.randrange(0, 200)
                        got, want = await f.readline(k), ref.readline(k)
                    elif op == "read":
                        k = rnd.choice([0, 1, 7, 100, 5000, 70000, -1])
                        got, want = await f.read(k), ref.read(k)
                    elif op == "readinto":
                        a, b = bytearray(rnd.choice([1, 100, 5000])), None
                        b = bytearray(len(a))
                        got, want = (await f.readinto(a), a), (ref.readinto(b), b)
                    elif op == "tell":
                        got, want = await f.tell(), ref.tell()
                        offsets.append(got)
                    elif op in ("seek_cur", "seek_end"):
                        k, whence = rnd.randrange(-60, 60), 1 if op == "seek_cur" else 2
                        try:
                            got = await f.seek(k, whence)
                        except OSError as e:
                            got = e.errno
                        try:
                            want = ref.seek(k, whence)
                        except OSError as e:
                            want = e.errno
                    elif op == "lines":
                        got, want = [line async for line in f], list(ref)
                    else:
                        where = rnd.choice(offsets)
                        got, want = await f.seek(where), ref.seek(where)
                    assert got == want, (step, op)
    run(main())


def test_a_truncate_gives_back_what_was_read_ahead(tmp_path, fds):
    p = tmp_path / "f"
    p.write_bytes(b"ab\n" + b"x" * 100000)

    async def main():
        async with await py_io_uring.open(p, "r+b") as f:
            assert await f.readline() == b"ab\n"         # 64 KiB read ahead
            assert await f.truncate(10) == 10
            assert await f.tell() == 3
            assert await f.read() == b"x" * 7           # (was 65533 bytes the file no longer has)
        async with await py_io_uring.open(p, "r+", encoding="utf-16") as f:
            await f.write("first\nsecond\n")
            await f.seek(0)
            assert await f.readline() == "first\n"
            await f.truncate()                          # at the text read so far
            await f.write("2nd\n")                    # (the decoder restarts past the BOM)
            await f.seek(0)
            assert await f.read() == "first\n2nd\n"
    run(main())


@pytest.mark.parametrize("seed", range(12))
def test_binary_reads_writes_and_truncates_follow_open(tmp_path, fds, seed):
    import random
    rnd = random.Random(seed)
    mode = ["r+b", "w+b"][seed % 2]
    data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 150000)))
    mine, theirs = tmp_path / "a", tmp_path / "b"
    mine.write_bytes(data)
    theirs.write_bytes(data)

    async def main():
        with open(str(theirs), mode) as ref:
            async with await py_io_uring.open(mine, mode) as f:
                for step in range(50):
                    op = rnd.choice(["read", "readline", "write", "seek", "seek_end", "truncate", "tell"])
                    if op == "read":
                        k = rnd.choice([1, 100, 5000, 70000, -1])
                        got, want = await f.read(k), ref.read(k)
                    elif op == "readline":
                        got, want = await f.readline(), ref.readline()
                    elif op == "write":
                        w = bytes(rnd.randrange(256) for _ in range(rnd.choice([1, 10, 5000])))
                        got, want = await f.write(w), ref.write(w)
                    elif op == "seek":
                        k = rnd.randrange(0, 200000)
                        got, want = await f.seek(k), ref.seek(k)
                    elif op == "seek_end":
                        got, want = await f.seek(0, os.SEEK_END), ref.seek(0, os.SEEK_END)
                    elif op == "truncate":
                        k = rnd.choice([None, rnd.randrange(0, 200000)])
                        got, want = await f.truncate(k), ref.truncate(k)
                    else:
                        got, want = await f.tell(), ref.tell()
                    assert got == want, (step, op)
    run(main())
    assert mine.read_bytes() == theirs.read_bytes()


_PIECES = ["a", "\u00e9", "\u65e5\u672c", "\U0001f600", "\n", "\r\n", "\r", " ",
           "xyz" * 50, "\r\r\n", "\n\n"]


@pytest.mark.parametrize("seed", range(24))
def test_text_reads_tells_and_seeks_follow_open(tmp_path, fds, seed):
    # random text, codec, newline mode and calls: each read gives what
    # open()'s file gives, and each tell() an offset both files resume at
    import random
    rnd = random.Random(seed)
    encoding = ["utf-8", "utf-16", "utf-8-sig", "utf-32", "utf-16-le", "gb18030"][seed % 6]
    newline = [None, "", "\n", "\r", "\r\n"][seed % 5]
    text = "".join(rnd.choice(_PIECES) for _ in range(rnd.randrange(500, 6000)))
    p = tmp_path / "t"
    with open(str(p), "w", encoding=encoding, newline="") as f:
        f.write(text)

    async def main():
        ref = open(str(p), encoding=encoding, newline=newline)
        try:
            async with await py_io_uring.open(p, "r", encoding=encoding, newline=newline) as f:
                offsets = [0]
                for step in range(60):
                    op = rnd.choice(["readline", "readline_size", "read", "tell", "seek", "lines"])
                    if op == "readline":
                        got, want = await f.readline(), ref.readline()
                    elif op == "readline_size":
                        k = rnd.randrange(0, 50)
                        got, want = await f.readline(k), ref.readline(k)
                    elif op == "read":
                        k = rnd.choice([0, 1, 7, 100, 5000, 20000])
                        got, want = await f.read(k), ref.read(k)
                    elif op == "lines":
                        got, want = [line async for line in f], list(ref)
                    elif op == "tell":
                        got = want = await f.tell()
                        offsets.append(got)
                        ref.seek(got)           # open() resumes at our offset too
                    else:
                        where = rnd.choice(offsets)
                        got, want = await f.seek(where), ref.seek(where)
                    assert got == want, (step, op)
        finally:
            ref.close()
    run(main())


def _outcome(fn):
    try:
        return ("ok", fn())
    except Exception as e:
        return (type(e), str(e))


# calls whose arguments or state open() refuses, and forms it takes: the
# same result or the same exception type and message
_TRUNCATE_READ_ONLY = ("rb", lambda f: f.truncate(2))
_AS_OPEN = [
    ("rb", lambda f: f.read(None)), ("rb", lambda f: f.read(2)), ("rb", lambda f: f.read("x")),
    ("rb", lambda f: f.read(2.0)), ("rb", lambda f: f.readline(None)),
    ("rb", lambda f: f.readline(3)), ("rb", lambda f: f.readline(0)),
    ("rb", lambda f: f.readlines(8)), ("rb", lambda f: f.readlines(None)),
    ("rb", lambda f: f.readlines(0)), ("r", lambda f: f.readlines(7)),
    _TRUNCATE_READ_ONLY, ("rb", lambda f: f.write(b"x")),
    ("wb", lambda f: f.write("x")), ("wb", lambda f: f.read()),
    ("w", lambda f: f.write(b"x")), ("rb", lambda f: f.readinto(b"abcd")),
    ("rb", lambda f: f.seek(1.5)), ("r", lambda f: f.seek(3)),
    ("rb", lambda f: f.readable()), ("rb", lambda f: f.writable()),
    ("r+b", lambda f: (f.readable(), f.writable())), ("rb", lambda f: f.seekable()),
    ("rb", lambda f: f.isatty()), ("rb", lambda f: f.read1(3)), ("rb", lambda f: f.read1()),
    ("rb", lambda f: f.read1(0)), ("rb", lambda f: f.read1(None)), ("rb", lambda f: f.peek()),
    ("rb", lambda f: f.readinto1(bytearray(5))), ("rb", lambda f: f.readinto1(b"12")),
]


@pytest.mark.parametrize("case", range(len(_AS_OPEN)))
def test_arguments_and_errors_as_open_gives_them(tmp_path, fds, case):
    mode, call = _AS_OPEN[case]
    p = tmp_path / "f"
    p.write_bytes(b"line1\nline2\r\nline3\rlast")
    kw = {} if "b" in mode else {"encoding": "utf-8"}
    with open(str(p), mode, **kw) as f:
        want = _outcome(lambda: call(f))

    async def main():
        async with await py_io_uring.open(p, mode, **kw) as f:
            async def settle():
                r = call(f)
                if isinstance(r, tuple):
                    return tuple([(await x) if hasattr(x, "__await__") else x for x in r])
                return (await r) if hasattr(r, "__await__") else r
            try:
                return ("ok", await settle())
            except Exception as e:
                return (type(e), str(e))
    got = run(main())
    if _AS_OPEN[case] is _TRUNCATE_READ_ONLY and sys.version_info < (3, 9):
        # 3.8's io says "File not open for writing" for a truncate
        got, want = got[0], want[0]
    assert got == want


def test_readinto_a_read_only_buffer_takes_nothing_from_the_file(tmp_path, fds):
    p = tmp_path / "f"
    p.write_bytes(b"0123456789")

    async def main():
        async with await py_io_uring.open(p, "rb") as f:
            with pytest.raises(TypeError, match="read-write bytes-like object"):
                await f.readinto(b"abcd")
            assert await f.read() == b"0123456789"
            for query in (f.readable, f.writable, f.seekable, f.isatty):
                query()
        for query in (f.readable, f.writable, f.seekable, f.isatty):
            with pytest.raises(ValueError, match="closed file"):
                query()
    run(main())


def test_random_and_sequential_after_seek_match_a_file(tmp_path):
    # after a seek the read takes exactly what is asked (no read-ahead for
    # random reads); reading on from there reads ahead again: the bytes
    # are the file's either way
    import random
    data = os.urandom(300000)
    p = tmp_path / "r"
    p.write_bytes(data)
    rnd = random.Random(5)

    async def main():
        async with await py_io_uring.open(str(p), "rb") as f:
            for _ in range(200):
                off = rnd.randrange(len(data))
                n = rnd.choice([1, 100, 4096, 70000])
                assert await f.seek(off) == off
                assert await f.read(n) == data[off:off + n]
                assert await f.read(n) == data[off + n:off + 2 * n]
                assert await f.tell() == min(off + 2 * n, len(data))
            await f.seek(0)
            assert await f.read() == data

    asyncio.run(main())


# ------------------------------------------------------- trio and anyio
# With no ring given, open() takes the running library's: a TrioRing under
# trio (anyio's trio backend included), an AsyncRing under asyncio.

def _in(backend, fn):
    if backend == "trio":
        trio = pytest.importorskip("trio")
        return trio.run(fn)
    anyio = pytest.importorskip("anyio")
    if backend == "anyio-trio":
        pytest.importorskip("trio")
        return anyio.run(fn, backend="trio")
    return anyio.run(fn, backend="asyncio")


@pytest.mark.parametrize("backend", ["trio", "anyio-trio", "anyio-asyncio"])
def test_the_file_object_on_each_backend(tmp_path, fds, backend):
    p = tmp_path / "t.txt"
    text = "first line\nsecond\u00e9 line\nthird"

    async def main():
        async with await py_io_uring.open(p, "w", encoding="utf-8") as f:
            assert await f.write(text) == len(text)
            await f.flush()
            await f.fsync()
        async with await py_io_uring.open(p, "r+", encoding="utf-8") as f:
            lines = [line async for line in f]
            assert lines == text.splitlines(keepends=True)
            await f.seek(0)
            assert await f.read(5) == "first"
            await f.truncate(10)
            assert (await f.stat()).st_size == 10
        async with await py_io_uring.open(p, "rb") as f:
            assert await f.read() == b"first line"
        with pytest.raises(FileNotFoundError) as e:
            await py_io_uring.open(tmp_path / "missing", "rb")
        assert e.value.filename == str(tmp_path / "missing")
    _in(backend, main)


@pytest.mark.parametrize("backend", ["trio", "anyio-trio", "anyio-asyncio"])
def test_an_unclosed_file_goes_on_each_backend(tmp_path, fds, backend):
    # its descriptor at once; the ring the files share stays for the others
    # (the fds fixture: and goes when the last file closes, or the run ends)
    p = tmp_path / "f"
    p.write_bytes(b"data")

    async def main():
        async with py_io_uring.open(p, "rb") as keeper:     # the shared ring made
            before = set(os.listdir("/proc/self/fd"))
            f = await py_io_uring.open(p, "rb")
            assert f._ring is keeper._ring
            assert await f.read() == b"data"
            with pytest.warns(ResourceWarning, match="unclosed file"):
                del f
            assert set(os.listdir("/proc/self/fd")) == before
            assert await keeper.read() == b"data"
    _in(backend, main)


def test_files_without_a_ring_share_one_per_trio_run(tmp_path, fds):
    trio = pytest.importorskip("trio")
    p = tmp_path / "f"
    p.write_bytes(b"data")
    rings = []

    async def one():
        async with py_io_uring.open(p, "rb") as f:
            assert await f.read() == b"data"
            rings.append(f._ring)

    async def main():
        before = set(os.listdir("/proc/self/fd"))
        async with trio.open_nursery() as nursery:      # at once
            for _ in range(5):
                nursery.start_soon(one)
        for _ in range(3):                              # one after another
            await one()
        assert len(set(map(id, rings))) == 1 and not rings[0].closed
        assert len(set(os.listdir("/proc/self/fd")) - before) == 1     # the ring's fd
    trio.run(main)
    first = rings[0]
    assert first.closed         # closed as the run ended
    del rings[:]
    trio.run(main)
    assert rings[0] is not first and rings[0].closed


def test_a_file_opened_as_the_trio_run_ends_gets_a_clear_error(tmp_path, fds):
    # a system task's shielded cleanup that opens a file after the run's
    # shared ring was closed (its closer is a system task, cancelled with
    # the others): a RuntimeError that says why and what to do, no ring
    # opened that nothing would close; with ring= of its own it works
    trio = pytest.importorskip("trio")
    from py_io_uring.trio import TrioRing
    p = tmp_path / "f"
    p.write_bytes(b"late data")
    got = []

    async def cleanup():
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                for _ in range(50):             # until the closer has run
                    if got and got[0].closed:
                        break
                    await trio.sleep(0.01)
                try:
                    async with py_io_uring.open(p, "rb") as f:
                        got.append(await f.read())
                except RuntimeError as e:
                    got.append(str(e))
                async with TrioRing(4) as ring:
                    async with py_io_uring.open(p, "rb", ring=ring) as f:
                        got.append(await f.read())

    async def main():
        trio.lowlevel.spawn_system_task(cleanup)
        async with py_io_uring.open(p, "rb") as f:
            got.append(f._ring)
    trio.run(main)
    assert got[0].closed
    assert "the trio run is ending" in got[1] and "ring=" in got[1], got
    assert got[2] == b"late data"


@pytest.mark.parametrize("backend", ["asyncio", "trio", "anyio-trio", "anyio-asyncio"])
def test_aiofiles_form_async_with_open_without_await(tmp_path, fds, backend):
    # `async with aiofiles.open(...) as f:`, the form most aiofiles code
    # has, runs unchanged: the block gets the file and its end closes it,
    # also when the block raises
    p = tmp_path / "f.txt"

    async def main():
        async with py_io_uring.open(p, "w", encoding="utf-8") as f:
            assert isinstance(f, py_io_uring.AsyncFile)
            await f.write("one\ntwo\n")
        assert f.closed
        async with py_io_uring.open(p) as f:
            assert [line async for line in f] == ["one\n", "two\n"]
        assert f.closed
        with pytest.raises(KeyError):
            async with py_io_uring.open(p, "rb") as f:
                assert await f.read(3) == b"one"
                raise KeyError("inside")
        assert f.closed
        with pytest.raises(FileNotFoundError) as e:
            async with py_io_uring.open(tmp_path / "missing"):
                pass
        assert e.value.filename == str(tmp_path / "missing")
    if backend == "asyncio":
        run(main())
    else:
        _in(backend, main)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_rings_own_open(tmp_path, fds, backend):
    # AsyncRing.open() and TrioRing.open(): py_io_uring.open(..., ring=it);
    # the file's operations are the ring's, and its close leaves the ring open
    p = tmp_path / "f"
    p.write_bytes(b"data\nmore\n")

    async def main(ring):
        before = ring.stats()["completions"] if backend == "asyncio" else None
        async with ring.open(p, "rb") as f:
            assert await f.read() == b"data\nmore\n"
        assert f.closed and not ring.closed
        f = await ring.open(str(p), "r", encoding="ascii", newline="")
        assert [line async for line in f] == ["data\n", "more\n"]
        await f.close()
        assert not ring.closed
        if before is not None:
            assert ring.stats()["completions"] > before
        with pytest.raises(TypeError, match="ring"):
            ring.open(p, ring=ring)
        with pytest.raises(FileNotFoundError):
            await ring.open(tmp_path / "missing", "rb")

    if backend == "asyncio":
        async def on_asyncio():
            async with AsyncRing() as ring:
                await main(ring)
        run(on_asyncio())
    else:
        trio = pytest.importorskip("trio")
        from py_io_uring.trio import TrioRing

        async def on_trio():
            async with TrioRing() as ring:
                await main(ring)
        trio.run(on_trio)


def test_on_the_event_loop_a_file_runs_on_the_loops_ring(tmp_path, fds):
    # no ring given on py_io_uring's EventLoop: the loop's own ring
    # (get_running_ring()), no ring made per file, and the file's close,
    # or its drop unclosed, leaves that ring to the loop
    p = tmp_path / "f"
    p.write_bytes(b"x" * 5000)

    async def main():
        ring = py_io_uring.get_running_ring()
        before = set(os.listdir("/proc/self/fd"))
        done = ring.stats()["completions"]
        async with py_io_uring.open(p, "rb") as f:
            assert len(set(os.listdir("/proc/self/fd")) - before) == 1   # the file's alone
            assert await f.read() == b"x" * 5000
        assert ring.stats()["completions"] >= done + 3     # open, read, close
        assert not ring.closed
        f = await py_io_uring.open(p, "rb")
        with pytest.warns(ResourceWarning, match="unclosed file"):
            del f
        await asyncio.sleep(0)
        assert set(os.listdir("/proc/self/fd")) == before and not ring.closed
        async with py_io_uring.open(p, "rb") as f:      # the ring still serves
            assert await f.read(2) == b"xx"
    py_io_uring.run(main())


# make leaks repeats the asyncio run only: uvloop (Debian's 0.17 under the
# debug interpreter) keeps references of its own per callback (test_async.py)
@pytest.fixture(params=["asyncio", pytest.param("uvloop", marks=pytest.mark.no_leakcheck)])
def loop_kind(request):
    if request.param == "uvloop":
        # uvloop's first loop leaves a pipe of its own open for the
        # process: made here, before fds counts
        uvloop = pytest.importorskip("uvloop")
        uvloop.new_event_loop().close()
    return request.param


def test_files_without_a_ring_share_one_on_an_asyncio_loop(tmp_path, loop_kind, fds):
    # the first file opened without ring= makes the loop's shared ring
    # (its fd and its eventfd), the others open on it; files opened one
    # after another keep it; it closes at the loop's turn after its last
    # file closes, or after that file is dropped unclosed
    p = tmp_path / "f"
    p.write_bytes(b"data")

    def open_now(before):
        return len(set(os.listdir("/proc/self/fd")) - before)

    async def turns_until(done, turns=20):
        # a few loop turns (3 have sufficed: the release, the close, the
        # eventfd's removal), bounded; the assert after it says what failed
        for _ in range(turns):
            if done():
                return
            await asyncio.sleep(0)

    async def main():
        before = set(os.listdir("/proc/self/fd"))
        a = await py_io_uring.open(p, "rb")
        assert open_now(before) == 3            # the file, the ring, its eventfd
        b = await py_io_uring.open(p, "rb")
        assert open_now(before) == 4            # one more file, no ring
        assert a._ring is b._ring
        assert await a.read() == await b.read() == b"data"
        await a.close()
        await asyncio.sleep(0)
        assert open_now(before) == 3            # b keeps the ring
        await b.close()
        for _ in range(3):                      # one after another: kept
            async with py_io_uring.open(p, "rb") as f:
                assert await f.read() == b"data"
                assert f._ring is b._ring
        await asyncio.sleep(0)
        assert open_now(before) == 0 and b._ring.closed
        c = await py_io_uring.open(p, "rb")     # a new one when needed
        assert c._ring is not b._ring and open_now(before) == 3
        with pytest.warns(ResourceWarning, match="unclosed file"):
            del c
        await turns_until(lambda: open_now(before) == 0)    # the release, then the close
        assert open_now(before) == 0
        # a file dropped on another thread: its finalizer hands the release
        # to the loop's thread, where the count lives
        d = await py_io_uring.open(p, "rb")
        ring = d._ring
        holder = [d]
        del d

        def drop():
            import warnings
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                holder.clear()
            assert [w.category for w in seen] == [ResourceWarning]
        t = threading.Thread(target=drop)
        t.start()
        t.join()
        await turns_until(lambda: ring.closed and open_now(before) == 0)
        assert ring.closed and open_now(before) == 0
        with pytest.raises(FileNotFoundError):  # a failed open gives it back
            await py_io_uring.open(tmp_path / "missing", "rb")
        await asyncio.sleep(0)
        assert open_now(before) == 0
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
    else:
        run(main())


def test_a_shared_ring_outliving_its_loop_closes_with_its_last_file(tmp_path, fds):
    import gc
    import weakref
    p = tmp_path / "f"
    p.write_bytes(b"data")
    kept = []

    async def main():
        kept.append(await py_io_uring.open(p, "rb"))
    before = set(os.listdir("/proc/self/fd"))
    run(main())                 # the loop closes with the file open
    ring = weakref.ref(kept[0]._ring)
    assert not ring().closed
    with pytest.warns(ResourceWarning, match="unclosed file"):
        del kept[:]
        gc.collect()
    gc.collect()                # (the warning's record held the file)
    # no loop turn comes: the ring goes with its last file, torn down
    assert ring() is None and set(os.listdir("/proc/self/fd")) == before
    # each loop its own
    rings = []

    async def other():
        async with py_io_uring.open(p, "rb") as f:
            rings.append(f._ring)
    run(other())
    run(other())
    assert rings[0] is not rings[1] and all(r.closed for r in rings)


def test_a_file_left_in_a_cancelled_trio_scope_is_closed(tmp_path, fds):
    # trio's cancellation is level-triggered: `async with` leaving a
    # cancelled scope closes the file in it, and an op there would not even
    # be submitted; the close is shielded, as trio's own files shield theirs
    trio = pytest.importorskip("trio")
    p = tmp_path / "f"
    p.write_bytes(b"data")

    async def main():
        async with py_io_uring.open(p, "rb") as keeper:       # the run's ring made
            before = set(os.listdir("/proc/self/fd"))
            with trio.CancelScope() as scope:
                async with py_io_uring.open(p, "rb") as f:
                    assert await f.read() == b"data"
                    scope.cancel()
                    await trio.sleep(1)                      # raises Cancelled
            assert scope.cancelled_caught and f.closed
            assert set(os.listdir("/proc/self/fd")) == before
            with trio.move_on_after(0.01):
                for _ in range(50):                          # cancelled anywhere
                    async with py_io_uring.open(p, "rb") as f:
                        await f.read()
            assert set(os.listdir("/proc/self/fd")) == before
            assert await keeper.read() == b"data"
    trio.run(main)


def test_a_close_cancelled_under_asyncio_still_closes(tmp_path, fds):
    # a task cancelled while it awaits close(): the descriptor is closed
    # all the same (the op, once made, runs), and the shared ring goes after
    p = tmp_path / "f"
    p.write_bytes(b"data")

    async def main():
        before = set(os.listdir("/proc/self/fd"))
        f = await py_io_uring.open(p, "rb")
        ring = f._ring
        task = asyncio.ensure_future(f.close())
        await asyncio.sleep(0)          # the close is prepared, not yet submitted
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert f.closed
        for _ in range(3):
            await asyncio.sleep(0)
        assert ring.closed and set(os.listdir("/proc/self/fd")) == before
    run(main())


def test_an_opener_opens_once_at_its_await(tmp_path, fds):
    p = tmp_path / "f"
    p.write_bytes(b"data")

    async def main():
        # nothing is checked or opened before the await: an opener dropped
        # unawaited leaves nothing open and warns of nothing
        bad = py_io_uring.open(p, "rw")
        with pytest.raises(ValueError, match="invalid mode"):
            await bad
        opener = py_io_uring.open(p, "rb")
        assert "AsyncFileOpener" in repr(opener)
        f = await opener
        try:
            assert await f.read() == b"data"
            # a second await would open a second file nobody closes
            with pytest.raises(RuntimeError, match="awaited already"):
                await opener
            with pytest.raises(RuntimeError, match="awaited already"):
                async with opener:
                    pass
        finally:
            await f.close()
        assert f.closed
        unused = py_io_uring.open(tmp_path / "never", "wb")
        del unused
        assert not (tmp_path / "never").exists()
    run(main())


def test_a_cancelled_read_on_trio_ends_and_the_file_closes(tmp_path, fds):
    trio = pytest.importorskip("trio")
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)       # io_uring opens it at once; a read waits for a writer: none comes

    async def main():
        async with await py_io_uring.open(fifo, "rb") as f:
            with trio.move_on_after(0.2) as scope:
                await f.read(10)
            assert scope.cancelled_caught
            assert not f.closed
        assert f.closed
    trio.run(main)

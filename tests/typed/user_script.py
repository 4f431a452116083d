"""A user's program over each form of py_io_uring's API, for the typing
tests (tests/test_typing_strict.py): mypy --strict --disallow-any-expr finds
nothing in it, its reveal_type() lines say what the stub promises (each
line's `# revealed:` regular expression, matched against mypy's note with
module prefixes dropped), and it
also runs (against the real kernel) and checks at run time that each value
is of the type the stub gives it, so stub and module cannot drift apart.

Python 3.8 syntax only: the matrix type-checks and runs it on every Python.
"""

import array
import ctypes
import hashlib
import mmap
import os
import socket
import tempfile
from typing import TYPE_CHECKING, List, Optional, Tuple

import py_io_uring
from py_io_uring import (AT_FDCWD, IORING_CQE_F_MORE, IOSQE_IO_LINK, AsyncFile, AsyncRing,
                         Cqe, IoUring, Sqe, WorkQueue, aos)
from py_io_uring import tempfile as atempfile


def sync_fast_forms(path: str) -> None:
    """IoUring.prep_NAME(..., user_data=...), reap(), reap_one(), prep_many()."""
    with IoUring(8) as ring:
        fd = os.open(path, os.O_RDONLY)
        try:
            ring.prep_read(fd, 5, 0, user_data="head")
            ring.prep_nop(user_data=7)
            done = ring.reap(2, 2, True)
            if TYPE_CHECKING:
                reveal_type(done)  # revealed: list\[tuple\[object, .*fallback=os\.stat_result.*, int\]\]
            for user_data, result, flags in done:
                assert user_data in ("head", 7)
                assert isinstance(result, (bytes, int))
                assert flags & IORING_CQE_F_MORE == 0
            ring.prep_many("nop", user_data=[1, 2, 3])
            uds, results, flags_list = ring.reap(3, 3, True, columns=True)
            assert sorted(r for r in results if isinstance(r, int)) == [0, 0, 0]
            assert len(uds) == len(flags_list) == 3
            ring.prep_read(fd, 5, 6, user_data=None)
            one = ring.reap_one(True, True)
            assert one is not None
            _, tail, _ = one
            # the result of a completion whose op the checker cannot know:
            # narrowed by the caller, who does
            assert isinstance(tail, bytes) and tail == b"world"
        finally:
            os.close(fd)


def sqe_cqe_loop(path: str) -> None:
    """get_sqe(), Sqe.prep_*, submit, wait_cqe / peek_batch_cqe, cqe_seen."""
    ring = IoUring(8)
    try:
        fd = os.open(path, os.O_RDONLY)
        buf = bytearray(5)
        sqe: Sqe = ring.get_sqe()
        sqe.prep_read(fd, buf, 0)
        sqe.set_flags(IOSQE_IO_LINK)
        sqe.set_data("into buf")
        ring.get_sqe().prep_close(fd)
        submitted: int = ring.submit_and_wait(2)
        assert submitted == 2
        seen = 0
        while seen < 2:
            cqe: Optional[Cqe] = ring.wait_cqe()
            assert cqe is not None
            res = cqe.getresult()
            if TYPE_CHECKING:
                reveal_type(res)  # revealed: .*\bint\b.*\bbytes\b.*fallback=os\.stat_result.*fallback=os\.waitid_result.*
            data: object = cqe.get_data()
            if data == "into buf":
                assert res == 5 and bytes(buf) == b"hello"
            ring.cqe_seen(cqe)
            seen += 1
        batch: List[Cqe] = ring.peek_batch_cqe(8)
        assert batch == []
    finally:
        ring.queue_exit()


async def awaitables(path: str, tmp: str) -> None:
    """AsyncRing's awaitable ops, one of each result shape."""
    async with AsyncRing() as ring:
        fd = await ring.openat(AT_FDCWD, path, os.O_RDONLY)
        if TYPE_CHECKING:
            reveal_type(ring.read(fd, 5))  # revealed: Future\[bytes\]
            reveal_type(ring.read(fd, bytearray(5)))  # revealed: Future\[int\]
            reveal_type(ring.statx(AT_FDCWD, path))  # revealed: Future\[tuple\[.*fallback=os\.stat_result\]\]
            reveal_type(ring.accept(0))  # revealed: Future\[tuple\[int, .*tuple\[str, int\].*\]\]
            reveal_type(ring.multishot_accept(0))  # revealed: AsyncIterator\[tuple\[int, .*tuple\[str, int\].*\]\]
            reveal_type(ring.pipe())  # revealed: Future\[tuple\[int, int\]\]
        head = await ring.read(fd, 5, 0)                # a length: the bytes read
        assert isinstance(head, bytes) and head == b"hello"
        # a buffer: how many bytes went into it; any buffer-protocol object
        n = await ring.read(fd, bytearray(5), 0)
        assert isinstance(n, int) and n == 5
        n = await ring.read(fd, memoryview(bytearray(5)), 0)
        n += await ring.read(fd, array.array("b", bytes(5)), 0)
        with mmap.mmap(-1, 4096) as m:
            n += await ring.read(fd, m, 0)
        n += await ring.read(fd, ctypes.create_string_buffer(5), 0)
        n += await ring.read(fd, (ctypes.c_char * 5)(), 0)
        assert n == 5 + 5 + 11 + 5 + 5      # the mmap holds the whole file
        st = await ring.statx(AT_FDCWD, path)
        size: int = st.st_size
        assert size == 11 and st.st_mode & 0o100000
        await ring.close(fd)
        r, w = await ring.pipe()
        wrote: int = await ring.write(w, b"ping")
        got: bytes = await ring.read(r, 4)
        assert wrote == 4 and got == b"ping"
        for pfd in (r, w):
            os.close(pfd)
        await ring.mkdir(os.path.join(tmp, "d"))
        assert os.path.isdir(os.path.join(tmp, "d"))

        sock_path = os.path.join(tmp, "sock")
        with socket.socket(socket.AF_UNIX) as lsock:
            lsock.bind(sock_path)
            lsock.listen(4)
            with socket.socket(socket.AF_UNIX) as client:
                await ring.connect(client, sock_path)
                conn, peer = await ring.accept(lsock)
                assert isinstance(conn, int) and peer == ""     # an unbound client
                try:
                    sent: int = await ring.send(client, b"abc")
                    data: bytes = await ring.recv(conn, 16)
                    assert sent == 3 and data == b"abc"
                    await ring.send(client, b"xyz")
                    msg, anc, msg_flags, addr = await ring.recvmsg(conn, 16)
                    assert msg == b"xyz" and anc == [] and isinstance(msg_flags, int)
                    assert addr is None or addr == ""
                    # the loop.sock_* shapes
                    await ring.sock_sendall(client, b"q")
                    if TYPE_CHECKING:
                        reveal_type(ring.sock_recv(conn, 1))  # revealed: Future\[bytes\]
                    one: bytes = await ring.sock_recv(conn, 1)
                    assert one == b"q"
                finally:
                    os.close(conn)


async def multishot(ring: AsyncRing, tmp: str) -> List[Tuple[int, str]]:
    """Multishot ops as async iterators: their items are typed."""
    out: List[Tuple[int, str]] = []
    sock_path = os.path.join(tmp, "msock")
    with socket.socket(socket.AF_UNIX) as lsock:
        lsock.bind(sock_path)
        lsock.listen(4)
        clients = [socket.socket(socket.AF_UNIX) for _ in range(2)]
        try:
            for c in clients:
                c.connect(sock_path)
            accepts = ring.multishot_accept(lsock)
            async for fd, peer in accepts:
                # the address union narrowed: AF_UNIX gives a str path
                assert isinstance(peer, str)
                out.append((fd, peer))
                if len(out) == 2:
                    break
        finally:
            for c in clients:
                c.close()
            for fd, _ in out:
                os.close(fd)
    return out


async def files_helpers(path: str, tmp: str) -> None:
    """py_io_uring.open() and AsyncFile, in text and binary modes."""
    async with await py_io_uring.open(path) as f:
        text = await f.read()
        if TYPE_CHECKING:
            reveal_type(f)  # revealed: AsyncFile\[str\]
            reveal_type(text)  # revealed: str
        assert text == "hello world"
        where: int = await f.tell()
        assert where == 11
        assert await f.seek(where) == 11
    fb: AsyncFile[bytes] = await py_io_uring.open(path, "rb")
    try:
        raw: bytes = await fb.read(5)
        assert raw == b"hello"
        into = bytearray(6)
        k: int = await fb.readinto(into)
        assert k == 6 and into == b" world"
        one: bytes = await fb.read1(4)
        assert one == b"" and fb.readable() and not fb.writable() and fb.seekable()
        lines: List[bytes] = await fb.readlines(None)
        assert lines == []
    finally:
        await fb.aclose()
    raw_fd = os.open(path, os.O_RDONLY)
    by_fd: AsyncFile[bytes] = await py_io_uring.open(raw_fd, "rb", closefd=False)
    await by_fd.close()
    os.close(raw_fd)
    async with await py_io_uring.open(os.path.join(tmp, "out.txt"), "w") as out:
        written: int = await out.write("typed\n")
        assert written == 6
    # anyio.Path's shape: py_io_uring.Path
    folder = py_io_uring.Path(tmp) / "sub"
    await folder.mkdir(parents=True, exist_ok=True)
    child = folder / "c.txt"
    await child.write_text("c")
    kids = [k async for k in folder.iterdir()]
    if TYPE_CHECKING:
        reveal_type(kids)  # revealed: list\[.*Path\]
        reveal_type(await child.stat())  # revealed: .*os\.stat_result\]?
    assert kids == [child] and await child.is_file() and child.suffix == ".txt"
    async with child.open("rb") as cf:
        assert await cf.read() == b"c"
    # pathlib's whole-file calls, awaited
    wrote: int = await py_io_uring.write_text(os.path.join(tmp, "whole.txt"), "whole\n")
    whole = await py_io_uring.read_text(os.path.join(tmp, "whole.txt"), encoding="utf-8")
    raw = await py_io_uring.read_bytes(os.path.join(tmp, "whole.txt"))
    if TYPE_CHECKING:
        reveal_type(whole)  # revealed: str
        reveal_type(raw)  # revealed: bytes
    assert wrote == 6 and whole == "whole\n" and raw == b"whole\n"
    assert await py_io_uring.write_bytes(os.path.join(tmp, "whole.bin"), bytearray(b"ab")) == 2
    # aiofiles' form: the opener entered, without an await
    async with py_io_uring.open(os.path.join(tmp, "out.txt"), "rb") as back:
        if TYPE_CHECKING:
            reveal_type(back)  # revealed: AsyncFile\[bytes\]
        assert await back.read() == b"typed\n"
    # aiofiles.os' calls: py_io_uring.aos
    st = await aos.stat(os.path.join(tmp, "out.txt"))
    if TYPE_CHECKING:
        reveal_type(st)  # revealed: .*os\.stat_result\]?
    assert st.st_size == 6 and await aos.path.isfile(os.path.join(tmp, "out.txt"))
    await aos.makedirs(os.path.join(tmp, "x", "y"), exist_ok=True)
    await aos.rename(os.path.join(tmp, "x", "y"), os.path.join(tmp, "x", "z"))
    await aos.rmdir(os.path.join(tmp, "x", "z"))
    # and those run in a thread, with os's types
    names = await aos.listdir(tmp)
    raw_names = await aos.listdir(os.fsencode(tmp))
    if TYPE_CHECKING:
        reveal_type(names)  # revealed: list\[str\]
        reveal_type(raw_names)  # revealed: list\[bytes\]
    assert "out.txt" in names and b"out.txt" in raw_names
    with await aos.scandir(tmp) as entries:
        assert "out.txt" in [e.name for e in entries]
    os.symlink("out.txt", os.path.join(tmp, "link"))
    target = await aos.readlink(os.path.join(tmp, "link"))
    if TYPE_CHECKING:
        reveal_type(target)  # revealed: str
    assert target == "out.txt" and await aos.path.samefile(os.path.join(tmp, "link"),
                                                           os.path.join(tmp, "out.txt"))
    # aiofiles.tempfile's: py_io_uring.tempfile (async with ...)
    async with atempfile.NamedTemporaryFile("w+", dir=tmp, suffix=".txt") as named:
        if TYPE_CHECKING:
            reveal_type(named)  # revealed: .*AsyncNamedTemporaryFile\[str\]
        await named.write("temp\n")
        assert named.name.endswith(".txt") and named.delete
    async with atempfile.TemporaryFile() as unnamed:
        if TYPE_CHECKING:
            reveal_type(unnamed)  # revealed: AsyncFile\[bytes\]
        await unnamed.write(b"temp")
    async with atempfile.SpooledTemporaryFile(4, "w+") as spooled:
        await spooled.write("more than four")
        await spooled.seek(0)
        line = await spooled.readline()
        if TYPE_CHECKING:
            reveal_type(line)  # revealed: str
        assert spooled.rolled
    async with atempfile.TemporaryDirectory(dir=tmp) as scratch:
        if TYPE_CHECKING:
            reveal_type(scratch)  # revealed: str
        assert os.path.isdir(scratch)
    async with AsyncRing() as ring:
        on_ring = await ring.open(os.path.join(tmp, "out.txt"), "rb")
        if TYPE_CHECKING:
            reveal_type(on_ring)  # revealed: AsyncFile\[bytes\]
        async with ring.open(os.path.join(tmp, "out.txt")) as as_text:
            if TYPE_CHECKING:
                reveal_type(as_text)  # revealed: AsyncFile\[str\]
        await on_ring.close()


def sync_file_helpers(path: str, tmp: str) -> None:
    """read_files, iter_read_files, copyfile, copy2, copytree, WorkQueue."""
    datas = py_io_uring.read_files([path, path], depth=4)
    if TYPE_CHECKING:
        reveal_type(datas)  # revealed: list\[bytes\]
    assert datas == [b"hello world", b"hello world"]
    for p, data in py_io_uring.iter_read_files([path]):
        assert p == path and data == b"hello world"
    digests: List[str] = [h.hexdigest() for h in py_io_uring.hash_files([path], "sha256")]
    assert digests == [hashlib.sha256(b"hello world").hexdigest()]
    dst: str = py_io_uring.copyfile(path, os.path.join(tmp, "copy"))
    dst2: str = py_io_uring.copy2(path, os.path.join(tmp, "copy2"))
    tree: str = py_io_uring.copytree(os.path.join(tmp, "d"), os.path.join(tmp, "d2"))
    assert os.path.exists(dst) and os.path.exists(dst2) and os.path.isdir(tree)
    with WorkQueue(depth=4) as q:
        q.put("nop", data="a")
        q.put("nop", data="b")
        done = q.drain()
        if TYPE_CHECKING:
            reveal_type(done)  # revealed: list\[tuple\[object, .*, int\]\]
        assert sorted(str(d) for d, _, _ in done) == ["a", "b"]


async def async_file_helpers(path: str, tmp: str) -> None:
    """aread_files, aiter_read_files, acopyfile, acopy2, acopytree."""
    datas = await py_io_uring.aread_files([path, path], depth=4)
    if TYPE_CHECKING:
        reveal_type(datas)  # revealed: list\[bytes\]
    assert datas == [b"hello world", b"hello world"]
    mixed = await py_io_uring.aread_files([path], errors="return")
    assert mixed == [b"hello world"]
    async with py_io_uring.aiter_read_files([path]) as it:
        async for p, data in it:
            if TYPE_CHECKING:
                reveal_type(data)  # revealed: bytes
            assert p == path and data == b"hello world"
    sums = await py_io_uring.ahash_files([path], hashlib.md5, errors="return")
    assert [h if isinstance(h, OSError) else h.hexdigest() for h in sums] == \
        [hashlib.md5(b"hello world").hexdigest()]
    dst: str = await py_io_uring.acopyfile(path, os.path.join(tmp, "acopy"))
    dst2: str = await py_io_uring.acopy2(path, os.path.join(tmp, "acopy2"))
    tree: str = await py_io_uring.acopytree(os.path.join(tmp, "d"), os.path.join(tmp, "ad2"))
    assert os.path.exists(dst) and os.path.exists(dst2) and os.path.isdir(tree)


async def main(tmp: str) -> int:
    path = os.path.join(tmp, "f")
    with open(path, "wb") as f:
        f.write(b"hello world")
    sync_fast_forms(path)
    sqe_cqe_loop(path)
    await awaitables(path, tmp)
    async with AsyncRing(32) as ring:
        accepted = await multishot(ring, tmp)
    await files_helpers(path, tmp)
    sync_file_helpers(path, tmp)
    await async_file_helpers(path, tmp)
    return len(accepted)


def entry_points() -> None:
    """The event loop's entry points: run(), new_event_loop(), the policy."""
    with tempfile.TemporaryDirectory() as tmp:
        got: int = py_io_uring.run(main(tmp))
        assert got == 2
    loop = py_io_uring.new_event_loop()
    try:
        assert loop.run_until_complete(_answer()) == 42
    finally:
        loop.close()
    policy: py_io_uring.EventLoopPolicy = py_io_uring.EventLoopPolicy()
    assert policy is not None


async def _answer() -> int:
    ring: py_io_uring.AsyncRing = py_io_uring.get_running_ring()
    await ring.nop()
    return 42


if __name__ == "__main__":
    entry_points()
    print("ok")

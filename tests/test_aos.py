"""py_io_uring.aos (src/py_io_uring/aos.py, aos_path.py): os's file-system
calls as io_uring operations, each call compared with os's own on the
same tree: results, the exception, its errno and its paths."""

import asyncio
import errno
import inspect
import os
import socket

import pytest
from file_helpers import fds, run_on  # noqa: F401 (fds: a fixture)

import py_io_uring
from py_io_uring import aos


def outcome(fn, *args, **kwargs):
    """What a call gives: ("ok", result) or the exception's parts."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as e:
        return (type(e), getattr(e, "errno", None), getattr(e, "filename", None),
                getattr(e, "filename2", None), str(e))


async def aoutcome(coro_fn, *args, **kwargs):
    try:
        return ("ok", await coro_fn(*args, **kwargs))
    except Exception as e:
        return (type(e), getattr(e, "errno", None), getattr(e, "filename", None),
                getattr(e, "filename2", None), str(e))


def tree(root):
    os.makedirs(os.path.join(root, "d", "e"))
    with open(os.path.join(root, "f"), "wb") as f:
        f.write(b"x" * 123)
    os.symlink("f", os.path.join(root, "ln"))
    os.symlink("missing", os.path.join(root, "dangling"))


def calls(r):
    """(name, args, kwargs): each run by os on one tree and by aos on its
    twin, in this order (the later ones see what the earlier ones did)."""
    j = os.path.join
    return [
        ("stat", (j(r, "f"),), {}), ("stat", (j(r, "ln"),), {}),
        ("stat", (j(r, "dangling"),), {}), ("lstat", (j(r, "dangling"),), {}),
        ("stat", (j(r, "nope"),), {}), ("stat", (j(r, "f", "x"),), {}),
        ("stat", (j(r, "ln"),), {"follow_symlinks": False}),
        ("mkdir", (j(r, "new"),), {}), ("mkdir", (j(r, "new"),), {}),
        ("mkdir", (j(r, "nope", "x"),), {}), ("mkdir", (j(r, "m"), 0o700), {}),
        ("makedirs", (j(r, "p", "q", "s"),), {}), ("makedirs", (j(r, "p", "q"),), {}),
        ("makedirs", (j(r, "p", "q"),), {"exist_ok": True}),
        ("makedirs", (j(r, "f", "sub"),), {"exist_ok": True}),
        ("makedirs", (j(r, "f"),), {"exist_ok": True}),
        ("rename", (j(r, "f"), j(r, "g")), {}), ("rename", (j(r, "f"), j(r, "h")), {}),
        ("replace", (j(r, "g"), j(r, "f")), {}), ("rename", (j(r, "d"), j(r, "f")), {}),
        ("link", (j(r, "f"), j(r, "hard")), {}), ("link", (j(r, "f"), j(r, "hard")), {}),
        ("link", (j(r, "nope"), j(r, "hard2")), {}),
        ("symlink", ("f", j(r, "ln2")), {}), ("symlink", ("f", j(r, "ln2")), {}),
        ("remove", (j(r, "hard"),), {}), ("remove", (j(r, "hard"),), {}),
        ("unlink", (j(r, "d"),), {}), ("rmdir", (j(r, "d"),), {}),
        ("rmdir", (j(r, "d", "e"),), {}), ("rmdir", (j(r, "d"),), {}),
        ("rmdir", (j(r, "f"),), {}), ("unlink", (j(r, "ln2"),), {}),
        ("removedirs", (j(r, "p", "q", "s"),), {}), ("removedirs", (j(r, "p"),), {}),
        ("renames", (j(r, "m"), j(r, "x", "y", "m2")), {}),
        ("renames", (j(r, "nope"), j(r, "z", "w")), {}),
        ("renames", (j(r, "x", "y", "m2"), j(r, "m3")), {}),
        # in a thread: io_uring has no operation for these
        ("readlink", (j(r, "ln"),), {}), ("readlink", (os.fsencode(j(r, "ln")),), {}),
        ("readlink", (j(r, "f"),), {}), ("readlink", (j(r, "nope"),), {}),
        ("listdir", (r,), {}), ("listdir", (os.fsencode(r),), {}),
        ("listdir", (j(r, "f"),), {}), ("listdir", (j(r, "nope"),), {}),
        ("access", (j(r, "f"), os.R_OK | os.W_OK), {}), ("access", (j(r, "nope"), os.F_OK), {}),
        ("access", (j(r, "dangling"), os.F_OK), {"follow_symlinks": False}),
        ("statvfs", (r,), {}), ("statvfs", (j(r, "nope"),), {}), ("getcwd", (), {}),
    ]


def _same(mine, theirs, root_a, root_b):
    # the same outcome, with the twin's root in its paths and strings
    def norm(x):
        if isinstance(x, os.stat_result):       # (a tuple too)
            return (x.st_mode, x.st_size, x.st_nlink)
        if isinstance(x, os.statvfs_result):    # (its free counts move)
            return (x.f_bsize, x.f_namemax, x.f_fsid)
        if isinstance(x, tuple):
            return tuple(norm(v) for v in x)
        if isinstance(x, list):                 # listdir(): the directory's order
            return sorted(norm(v) for v in x)
        if isinstance(x, bytes):
            return os.fsencode(norm(os.fsdecode(x)))
        if isinstance(x, str):
            return x.replace(root_b, "ROOT").replace(root_a, "ROOT")
        return x
    assert norm(mine) == norm(theirs)


@pytest.mark.parametrize("backend", ["asyncio", "eventloop", "trio"])
def test_each_call_does_what_os_does(tmp_path, fds, backend):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    tree(a)
    tree(b)
    theirs = [(name, outcome(getattr(os, name), *args, **kw))
              for name, args, kw in calls(a)]

    async def main():
        mine = []
        for name, args, kw in calls(b):
            mine.append((name, await aoutcome(getattr(aos, name), *args, **kw)))
        return mine
    mine = run_on(backend, main)
    for m, t in zip(mine, theirs):
        _same(m, t, b, a)
    # and the trees came out the same
    def shape(root):
        return sorted((os.path.relpath(d, root), sorted(ds), sorted(fs))
                      for d, ds, fs in os.walk(root))
    assert shape(a) == shape(b)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_path_tests_do_what_os_path_does(tmp_path, fds, backend):
    r = str(tmp_path)
    tree(r)
    j = os.path.join
    names = [j(r, "f"), j(r, "d"), j(r, "ln"), j(r, "dangling"), j(r, "nope"),
             j(r, "f", "x"), "bad\0path", os.fsencode(j(r, "f"))]
    tests = ["exists", "lexists", "isfile", "isdir", "islink"]
    want = [[getattr(os.path, t)(n) for t in tests] for n in names]

    async def main():
        got = []
        for n in names:     # (loops: 3.8 takes no await in a nested comprehension)
            row = []
            for t in tests:
                row.append(await getattr(aos.path, t)(n))
            got.append(row)
        size = await aos.path.getsize(j(r, "f"))
        times = []
        for t in ("getmtime", "getatime", "getctime"):
            times.append(await getattr(aos.path, t)(j(r, "f")))
        with pytest.raises(FileNotFoundError) as e:
            await aos.path.getsize(j(r, "nope"))
        assert e.value.filename == j(r, "nope")
        return got, size, times
    got, size, times = run_on(backend, main)
    assert got == want
    assert size == 123
    assert times == [os.path.getmtime(j(r, "f")), os.path.getatime(j(r, "f")),
                     os.path.getctime(j(r, "f"))]


def test_stat_of_a_descriptor_and_dir_fds(tmp_path, fds):
    r = str(tmp_path)
    tree(r)
    dfd = os.open(r, os.O_RDONLY | os.O_DIRECTORY)
    fd = os.open(os.path.join(r, "f"), os.O_RDONLY)

    async def main():
        async with py_io_uring.AsyncRing() as ring:
            st = await aos.stat(fd, ring=ring)
            assert st.st_ino == os.fstat(fd).st_ino and st.st_size == 123
            assert (await aos.stat("f", dir_fd=dfd)).st_size == 123
            await aos.mkdir("k", dir_fd=dfd, ring=ring)
            await aos.rename("k", "k2", src_dir_fd=dfd, dst_dir_fd=dfd)
            await aos.symlink("f", "s", dir_fd=dfd)
            await aos.link("s", "hl", src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            await aos.rmdir("k2", dir_fd=dfd)
            await aos.remove("hl", dir_fd=dfd)
            assert not ring.closed
    try:
        asyncio.run(main())
        assert sorted(os.listdir(r)) == ["d", "dangling", "f", "ln", "s"]
    finally:
        os.close(fd)
        os.close(dfd)


@pytest.mark.parametrize("backend", ["asyncio", "eventloop", "trio"])
def test_path_extras_do_what_os_path_does(tmp_path, fds, backend):
    r = str(tmp_path)
    tree(r)
    j = os.path.join
    pairs = [(j(r, "f"), j(r, "ln")), (j(r, "f"), j(r, "d")), (j(r, "d"), j(r, "d", "e", "..")),
             (os.fsencode(j(r, "f")), os.fsencode(j(r, "ln"))),
             (j(r, "nope"), j(r, "f")), (j(r, "f"), j(r, "dangling"))]
    want = [outcome(os.path.samefile, a, b) for a, b in pairs]
    mounts = ["/", "/proc", r, j(r, "ln"), j(r, "nope"), b"/", "rel"]
    want_mounts = [os.path.ismount(m) for m in mounts]
    rels = ["rel", "a/../b", b"x", "/abs/./y", ""]
    want_abs = [os.path.abspath(p) for p in rels]
    fd1 = os.open(j(r, "f"), os.O_RDONLY)
    fd2 = os.open(j(r, "ln"), os.O_RDONLY)
    fd3 = os.open(j(r, "d"), os.O_RDONLY)

    async def main():
        got = []
        for a, b in pairs:
            got.append(await aoutcome(aos.path.samefile, a, b))
        opened = (await aos.path.sameopenfile(fd1, fd2), await aos.path.sameopenfile(fd1, fd3))
        ms = []
        for m in mounts:
            ms.append(await aos.path.ismount(m))
        ab = []
        for p in rels:
            ab.append(await aos.path.abspath(p))
        return got, opened, ms, ab
    try:
        got, opened, ms, ab = run_on(backend, main)
    finally:
        for fd in (fd1, fd2, fd3):
            os.close(fd)
    assert got == want
    assert [g[0] for g in got] == ["ok"] * 4 + [FileNotFoundError] * 2
    assert [g[1] for g in got[:4]] == [True, False, True, True]
    assert opened == (True, False)
    assert ms == want_mounts and ms[0] is True and ms[2] is False
    assert ab == want_abs


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_scandir_sendfile_and_wrap(tmp_path, fds, backend):
    r = str(tmp_path)
    tree(r)
    data = bytes(range(256)) * 40
    with open(os.path.join(r, "big"), "wb") as f:
        f.write(data)
    with os.scandir(r) as it:
        want = sorted((e.name, e.is_dir(), e.is_symlink()) for e in it)

    async def main():
        with await aos.scandir(r) as it:
            got = sorted((e.name, e.is_dir(), e.is_symlink()) for e in it)
        with await aos.scandir(os.fsencode(r)) as it:
            names = sorted(e.name for e in it)
        with pytest.raises(FileNotFoundError) as e:
            await aos.scandir(os.path.join(r, "nope"))
        assert e.value.filename == os.path.join(r, "nope")
        # sendfile: from an offset (the file's position untouched), then
        # from the position, into a socket; short counts are the caller's
        a, b = socket.socketpair()
        fd = os.open(os.path.join(r, "big"), os.O_RDONLY)
        try:
            sent = await aos.sendfile(a.fileno(), fd, 100, 1000)
            assert os.lseek(fd, 0, os.SEEK_CUR) == 0
            sent2 = await aos.sendfile(a.fileno(), fd, None, 50)
            assert os.lseek(fd, 0, os.SEEK_CUR) == sent2
            a.close()
            got_bytes = b""
            while True:
                chunk = b.recv(65536)
                if not chunk:
                    break
                got_bytes += chunk
            with pytest.raises(OSError) as e2:
                await aos.sendfile(1 << 20, fd, 0, 10)      # a descriptor not open
            assert e2.value.errno == errno.EBADF
        finally:
            os.close(fd)
            a.close()
            b.close()
        assert got_bytes == data[100:100 + sent] + data[:sent2] and (sent, sent2) == (1000, 50)
        assert aos.path.wrap is aos.wrap        # (aiofiles has both)
        chmod = aos.path.wrap(os.chmod)
        await chmod(os.path.join(r, "big"), 0o600)
        assert chmod.__name__ == "chmod"
        return got, names, await aos.getcwd()
    got, names, cwd = run_on(backend, main)
    assert got == want
    assert names == sorted(os.fsencode(n) for n, _, _ in want)
    assert cwd == os.getcwd()
    assert os.stat(os.path.join(r, "big")).st_mode & 0o777 == 0o600


def test_every_name_of_aiofiles_os_is_here():
    # `from py_io_uring import aos` stands where `import aiofiles.os as aos`
    # stood: each of its names, and of aiofiles.os.path's, has its twin
    aio_os = pytest.importorskip("aiofiles.os")
    import aiofiles.ospath as aio_path
    missing = [n for n in aio_os.__all__ if not hasattr(aos, n)]
    # (its calls are coroutine functions; older aiofiles leave imports,
    # such as asyncio and functools' wraps, among its public names)
    missing += ["path." + n for n in dir(aio_path)
                if not n.startswith("_")
                and (inspect.iscoroutinefunction(getattr(aio_path, n)) or n == "wrap")
                and not hasattr(aos.path, n)]
    assert not missing
    assert set(aos.__all__) >= set(aio_os.__all__)

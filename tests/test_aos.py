"""py_io_uring.aos (src/py_io_uring/aos.py, aos_path.py): os's file-system
calls as io_uring operations, each call compared with os's own on the
same tree: results, the exception, its errno and its paths."""

import asyncio
import os

import pytest

import py_io_uring
from py_io_uring import aos


@pytest.fixture
def fds():
    before = set(os.listdir("/proc/self/fd"))
    yield
    assert set(os.listdir("/proc/self/fd")) == before


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
    ]


def _same(mine, theirs, root_a, root_b):
    # the same outcome, with the twin's root in its paths and strings
    def norm(x):
        if isinstance(x, os.stat_result):       # (a tuple too)
            return (x.st_mode, x.st_size, x.st_nlink)
        if isinstance(x, tuple):
            return tuple(norm(v) for v in x)
        if isinstance(x, str):
            return x.replace(root_b, "ROOT").replace(root_a, "ROOT")
        return x
    assert norm(mine) == norm(theirs)


def _run_on(backend, main):
    if backend == "asyncio":
        return asyncio.run(main())
    if backend == "eventloop":
        return py_io_uring.run(main())
    trio = pytest.importorskip("trio")
    return trio.run(main)


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
    mine = _run_on(backend, main)
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
    got, size, times = _run_on(backend, main)
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

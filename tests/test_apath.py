"""py_io_uring.Path (src/py_io_uring/apath.py): pathlib.Path with
awaitable I/O in the shape of anyio.Path, each call compared with
pathlib's own on twin trees, on asyncio, the EventLoop and trio."""

import asyncio
import os
import pathlib
import stat
import sys

import pytest
from file_helpers import BACKENDS, fds, run_on  # noqa: F401 (fds: a fixture)

import py_io_uring
from py_io_uring import Path


def tree(root):
    os.makedirs(os.path.join(root, "d", "e"))
    with open(os.path.join(root, "f.txt"), "wb") as f:
        f.write(b"x" * 123)
    with open(os.path.join(root, "d", "g.txt"), "wb") as f:
        f.write(b"y")
    os.symlink("f.txt", os.path.join(root, "ln"))
    os.symlink("missing", os.path.join(root, "dangling"))
    os.mkfifo(os.path.join(root, "fifo"))


def calls(r):
    """(relative path, method, args, kwargs), run in order on both trees;
    args that are paths are relative to the tree's root (tagged "@")."""
    out = [
        ("f.txt", "stat", (), {}), ("ln", "stat", (), {}), ("dangling", "stat", (), {}),
        ("dangling", "lstat", (), {}), ("ln", "stat", (), {"follow_symlinks": False}),
        ("nope", "stat", (), {}),
        ("f.txt", "exists", (), {}), ("nope", "exists", (), {}), ("dangling", "exists", (), {}),
        ("d", "is_dir", (), {}), ("f.txt", "is_dir", (), {}), ("f.txt", "is_file", (), {}),
        ("ln", "is_file", (), {}), ("ln", "is_symlink", (), {}), ("f.txt", "is_symlink", (), {}),
        ("fifo", "is_fifo", (), {}), ("f.txt", "is_fifo", (), {}), ("f.txt", "is_socket", (), {}),
        ("f.txt", "is_block_device", (), {}), ("f.txt", "is_char_device", (), {}),
        ("f.txt/x", "is_file", (), {}),
        ("new", "mkdir", (), {}), ("new", "mkdir", (), {}), ("new", "mkdir", (), {"exist_ok": True}),
        ("p/q/s", "mkdir", (), {}), ("p/q/s", "mkdir", (), {"parents": True}),
        ("f.txt", "mkdir", (), {"exist_ok": True}), ("f.txt/x", "mkdir", (), {"parents": True}),
        ("m", "mkdir", (0o700,), {}),
        ("w.bin", "write_bytes", (b"\0" * 5000,), {}), ("w.bin", "read_bytes", (), {}),
        ("w.txt", "write_text", ("héllo\n",), {"encoding": "utf-8"}),
        ("w.txt", "read_text", (), {"encoding": "utf-8"}), ("nope", "read_bytes", (), {}),
        ("d", "read_bytes", (), {}),
        ("t1", "touch", (), {}), ("t1", "touch", (), {}), ("t1", "touch", (), {"exist_ok": False}),
        ("nope/t", "touch", (), {}), ("t2", "touch", (0o600,), {}),
        ("w.bin", "rename", ("@w2.bin",), {}), ("w.bin", "rename", ("@w3.bin",), {}),
        ("w2.bin", "replace", ("@t1",), {}),
        ("hard", "hardlink_to", ("@f.txt",), {}), ("hard", "hardlink_to", ("@f.txt",), {}),
        ("sym", "symlink_to", ("f.txt",), {}), ("sym", "readlink", (), {}),
        ("f.txt", "readlink", (), {}),
        ("hard", "samefile", ("@f.txt",), {}), ("d", "samefile", ("@f.txt",), {}),
        ("hard", "unlink", (), {}), ("hard", "unlink", (), {}),
        ("hard", "unlink", (), {"missing_ok": True}), ("d", "unlink", (), {}),
        ("m", "rmdir", (), {}), ("m", "rmdir", (), {}), ("d", "rmdir", (), {}),
        ("t2", "chmod", (0o640,), {}), ("t2", "stat", (), {}),
        ("d", "iterdir", (), {}), ("f.txt", "iterdir", (), {}), (".", "glob", ("*.txt",), {}),
        (".", "rglob", ("*.txt",), {}), ("d/../f.txt", "resolve", (), {}),
        ("nope", "resolve", (), {"strict": True}), ("f.txt", "is_mount", (), {}),
        ("f.txt", "owner", (), {}), ("f.txt", "group", (), {}),
        ("f.txt", "is_junction", (), {}),
    ]
    # pathlib's own has these from 3.10 (hardlink_to, stat's
    # follow_symlinks) and 3.9 (readlink): compared where it has them
    if sys.version_info < (3, 12):
        out = [c for c in out if c[1] != "is_junction"]
    if sys.version_info < (3, 10):
        out = [c for c in out if c[1] != "hardlink_to" and "follow_symlinks" not in c[3]
               and not (c[0] == "hard" and c[1] in ("samefile", "unlink"))]
    if sys.version_info < (3, 9):
        out = [c for c in out if c[1] != "readlink"]
    return out


def norm(x, root):
    """A result, comparable between the trees and the two Path types."""
    if isinstance(x, os.stat_result):
        return ("stat", stat.S_IFMT(x.st_mode), stat.S_IMODE(x.st_mode), x.st_size, x.st_nlink)
    if isinstance(x, (pathlib.PurePath, Path)):
        return ("path", str(x).replace(root, "ROOT"))
    if isinstance(x, list):
        return sorted(norm(i, root) for i in x)
    if isinstance(x, str):
        return x.replace(root, "ROOT")
    return x


def outcome(fn, root):
    try:
        return ("ok", norm(fn(), root))
    except Exception as e:
        return (type(e), getattr(e, "errno", None),
                norm(str(getattr(e, "filename", None)), root), norm(str(e), root))


async def aoutcome(fn, root):
    try:
        return ("ok", norm(await fn(), root))
    except Exception as e:
        return (type(e), getattr(e, "errno", None),
                norm(str(getattr(e, "filename", None)), root), norm(str(e), root))


def _args(args, root):
    return tuple(os.path.join(root, a[1:]) if isinstance(a, str) and a.startswith("@") else a
                 for a in args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_call_does_what_pathlib_does(tmp_path, fds, backend):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    tree(a)
    tree(b)
    theirs = []
    for rel, name, args, kw in calls(a):
        p = pathlib.Path(a, rel)
        if name in ("iterdir", "glob", "rglob"):
            fn = (lambda p=p, name=name, args=args: list(getattr(p, name)(*args)))
        else:
            fn = (lambda p=p, name=name, args=args, kw=kw:
                  getattr(p, name)(*_args(args, a), **kw))
        theirs.append((rel, name, outcome(fn, a)))

    async def main():
        mine = []
        for rel, name, args, kw in calls(b):
            p = Path(b, rel)
            if name in ("iterdir", "glob", "rglob"):
                async def fn(p=p, name=name, args=args):
                    return [x async for x in getattr(p, name)(*args)]
            else:
                def fn(p=p, name=name, args=args, kw=kw):
                    return getattr(p, name)(*_args(args, b), **kw)
            mine.append((rel, name, await aoutcome(fn, b)))
        return mine
    mine = run_on(backend, main)
    for m, t in zip(mine, theirs):
        assert m == t
    assert len(mine) == len(theirs)


def test_the_pure_path_is_pathlibs():
    p = Path("/srv/data", "x.tar.gz")
    q = pathlib.Path("/srv/data", "x.tar.gz")
    assert (str(p), p.name, p.suffix, p.suffixes, p.stem, p.parts, p.anchor, p.root) == \
        (str(q), q.name, q.suffix, q.suffixes, q.stem, q.parts, q.anchor, q.root)
    assert p.parent == Path("/srv/data") and [str(x) for x in p.parents] == \
        [str(x) for x in q.parents]
    assert p / "y" == Path("/srv/data/x.tar.gz/y") and "/a" / Path("b") == Path("/a/b")
    assert p.with_suffix(".zip") == Path("/srv/data/x.tar.zip")
    assert p.with_stem("z") == Path("/srv/data/z.gz") and p.with_name("n") == Path("/srv/data/n")
    assert p.relative_to("/srv") == Path("data/x.tar.gz") and p.is_relative_to("/srv")
    assert not p.is_relative_to("/etc") and p.is_absolute() and p.match("*.gz")
    assert os.fspath(p) == str(q) and bytes(p) == bytes(q) and p.as_uri() == q.as_uri()
    assert repr(p) == "Path('/srv/data/x.tar.gz')" and hash(p) == hash(q)
    assert sorted([Path("b"), Path("a")]) == [Path("a"), Path("b")]
    assert p.joinpath("a", "b") == Path("/srv/data/x.tar.gz/a/b")
    assert p != q       # (another type, as anyio.Path and pathlib.Path)


def test_open_and_the_class_methods(tmp_path, fds):
    async def main():
        p = Path(tmp_path) / "f.txt"
        async with p.open("w", encoding="utf-8") as f:
            await f.write("one\ntwo\n")
        f = await p.open("rb")
        data = await f.read()
        await f.close()
        return data, await Path.cwd(), await Path.home(), await Path("x").absolute()
    data, cwd, home, absolute = asyncio.run(main())
    assert data == b"one\ntwo\n"
    assert str(cwd) == os.getcwd() and str(home) == str(pathlib.Path.home())
    assert str(absolute) == os.path.join(os.getcwd(), "x")


def test_every_name_of_anyio_path_is_here():
    anyio = pytest.importorskip("anyio")
    missing = [n for n in dir(anyio.Path) if not n.startswith("_") and not hasattr(Path, n)
               # anyio's own: the thread limiter it runs on
               and n != "limiter"
               # 3.12+ pathlib names, and 3.13's
               # (not here: walk(), whose pruning of dirnames wants the walk
               # in the caller's hands; 3.13's full_match and later pathlib)
               and n not in ("walk", "full_match", "from_uri", "copy", "copy_into", "move",
                             "move_into", "info")]
    assert not missing

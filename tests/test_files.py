"""WorkQueue, read_files/iter_read_files, copyfile/copy2/copytree
(src/py_io_uring/workqueue.py, files.py): data byte for byte, os's and
shutil's errors with their paths, modes and times of copies, and no
descriptor left open or operation left in flight on any failure path."""

import errno
import hashlib
import os
import shutil
import stat

import pytest

import py_io_uring
from py_io_uring import AT_FDCWD, IoUring, WorkQueue, copy2, copyfile, copytree
from py_io_uring import iter_read_files, read_files

from file_helpers import make_files, spy_batches


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def fds():
    """Fails the test when it leaves a descriptor open."""
    before = open_fds()
    yield
    assert open_fds() == before


# ---------------------------------------------------------------- WorkQueue

def test_workqueue_bounds_in_flight_and_completes_all(fds):
    seen_max = [0]
    with WorkQueue(depth=4) as q:
        jobs = [(i, "nop", ()) for i in range(50)]
        got = []
        for data, res in q.map(jobs):
            seen_max[0] = max(seen_max[0], q.in_flight)
            assert res == 0
            got.append(data)
        assert q.in_flight == 0
    assert sorted(got) == list(range(50))
    assert seen_max[0] <= 4


def test_workqueue_put_full_and_callable(tmp_path, fds):
    p = tmp_path / "x"
    p.write_bytes(b"hello")
    fd = os.open(str(p), os.O_RDONLY)
    try:
        with IoUring(8) as ring:
            q = WorkQueue(ring, depth=2)
            q.put("read", fd, 5, 0, data="a")
            q.put(lambda r, ud: r.prep_read(fd, 2, 3, user_data=ud), data="b")
            assert q.room == 0
            with pytest.raises(RuntimeError):
                q.put("nop", data="c")
            got = dict((d, r) for d, r, f in q.drain())
            assert got == {"a": b"hello", "b": b"lo"}
            q.close()
            assert ring.sq_ready() == 0
            ring.prep_nop(user_data=1)      # the ring given stays open
            assert ring.reap_one(True, True)[0] == 1
            with pytest.raises(ValueError):
                q.put("nop")
    finally:
        os.close(fd)
    with pytest.raises(ValueError):
        WorkQueue(depth=0)
    with pytest.raises(TypeError):
        WorkQueue(depth=1).put(lambda r, ud: None, 1)


def test_workqueue_drains_on_early_exit(tmp_path, fds):
    # opens in flight when the consumer stops: on_drain sees every fd
    paths, _ = make_files(tmp_path, [10] * 20)
    opened = []

    def on_drain(data, res):
        assert res >= 0
        os.close(res)
        opened.append(data)

    q = WorkQueue(depth=8, on_drain=on_drain)
    gen = q.map([(p, "openat", (AT_FDCWD, p, os.O_RDONLY)) for p in paths])
    data, fd = next(gen)
    os.close(fd)
    gen.close()                         # drains what is in flight
    assert q.in_flight == 0
    assert len(opened) >= 1             # at least the rest of the batch
    q.close()


def test_workqueue_drains_on_error(fds):
    q = WorkQueue(depth=8)
    with pytest.raises(ZeroDivisionError):
        for data, res in q.map([(i, "nop", ()) for i in range(30)]):
            1 / 0
    assert q.in_flight == 0
    q.close()


# ---------------------------------------------------------------- read_files

def D(given, depth=2):
    return given == "direct" and depth >= 2


def test_read_files_direct_arguments():
    with IoUring(4) as ring:
        with pytest.raises(ValueError):
            read_files([], ring=ring, direct=True)
    with pytest.raises(ValueError):
        read_files([], depth=1, direct=True)
    with pytest.raises(TypeError):
        read_files([], 64)              # keyword-only



@pytest.mark.parametrize("given", [False, True, "direct"], ids=["own", "ring-given", "direct"])
@pytest.mark.parametrize("depth", [1, 2, 3, 8, 64])
def test_read_files_bytes_exact(tmp_path, fds, depth, given):
    # its own ring: direct descriptors; a ring given: plain fds and statx
    sizes = [0, 1, 4095, 4096, 4097, 65536, 65537, 131072 + 65536, 1 << 20, (5 << 20) + 3, 3]
    paths, datas = make_files(tmp_path, sizes + [i * 37 for i in range(40)])
    ring = IoUring(64) if given is True else None
    try:
        assert read_files(paths, depth=depth, ring=ring, direct=D(given, depth)) == datas
        got = dict(iter_read_files(paths, depth=depth, ring=ring, direct=D(given, depth)))
        assert got == dict(zip(paths, datas))
    finally:
        if ring is not None:
            ring.queue_exit()


def test_read_files_size_unknown_and_pathlike(tmp_path, fds):
    # procfs files report size 0: read in chunks to EOF
    with open("/proc/self/maps", "rb") as f:
        expect_len = len(f.read())
    out = read_files(["/proc/self/maps"])[0]
    assert abs(len(out) - expect_len) < 4096 and out.endswith(b"\n")
    p = tmp_path / "pl"
    p.write_bytes(b"pathlike")
    assert read_files([p, str(p).encode()]) == [b"pathlike", b"pathlike"]
    assert read_files([]) == []


@pytest.mark.parametrize("given", [False, True, "direct"], ids=["own", "ring-given", "direct"])
def test_read_files_raises_with_path_after_drain(tmp_path, fds, given):
    paths, datas = make_files(tmp_path, [100] * 40)
    missing = str(tmp_path / "missing")
    ring = IoUring(16) if given is True else None
    with pytest.raises(FileNotFoundError) as info:
        read_files(paths[:20] + [missing] + paths[20:], depth=16, ring=ring, direct=D(given))
    e = info.value
    assert (e.errno, e.strerror, e.filename) == (errno.ENOENT, "No such file or directory", missing)
    with pytest.raises(IsADirectoryError) as info:
        read_files(paths + [str(tmp_path)], depth=6, ring=ring, direct=D(given))
    assert info.value.filename == str(tmp_path)
    if ring is not None:
        # nothing left in flight on the ring given: a NOP is the next completion
        ring.prep_nop(user_data="after")
        assert ring.reap_one(True, True)[0] == "after"
        assert ring.reap_one() is None
        ring.queue_exit()


@pytest.mark.parametrize("given", [False, True, "direct"], ids=["own", "ring-given", "direct"])
def test_read_files_errors_return(tmp_path, fds, given):
    paths, datas = make_files(tmp_path, [10, 20])
    missing = str(tmp_path / "missing")
    ring = IoUring(8) if given is True else None
    out = read_files([paths[0], missing, str(tmp_path), paths[1]], errors="return", ring=ring,
                     direct=D(given))
    if ring is not None:
        ring.queue_exit()
    assert out[0] == datas[0] and out[3] == datas[1]
    assert isinstance(out[1], FileNotFoundError) and out[1].filename == missing
    assert isinstance(out[2], IsADirectoryError) and out[2].filename == str(tmp_path)
    with pytest.raises(ValueError):
        read_files(paths, errors="ignore")
    with pytest.raises(TypeError):
        read_files([1.5])


def test_read_files_permission(tmp_path, fds):
    if os.geteuid() == 0:
        pytest.skip("root reads mode 000 files")
    p = tmp_path / "secret"
    p.write_bytes(b"x")
    p.chmod(0)
    with pytest.raises(PermissionError) as info:
        read_files([str(p)])
    assert info.value.filename == str(p)


@pytest.mark.parametrize("given", [False, True, "direct"], ids=["own", "ring-given", "direct"])
def test_iter_read_files_closed_early(tmp_path, fds, given):
    paths, datas = make_files(tmp_path, [5000] * 60)
    ring = IoUring(16) if given is True else None
    it = iter_read_files(paths, depth=16, ring=ring, direct=D(given))
    path, data = next(it)
    assert data == datas[paths.index(path)]
    it.close()                          # the fixture checks nothing is left open
    if ring is not None:
        assert ring.reap_one() is None      # nothing left in flight
        ring.queue_exit()


def test_read_files_on_a_given_ring(tmp_path, fds):
    paths, datas = make_files(tmp_path, [10, 70000, 3])
    with IoUring(16) as ring:
        assert read_files(paths, depth=16, ring=ring) == datas
        assert ring.sq_ready() == 0


def test_iter_read_files_in_order_in_growing_batches(tmp_path, fds, monkeypatch):
    # on a ring of its own: read_many() over batches, yielded in the
    # paths' order; small files double the batch up to 16 x depth
    sizes = spy_batches(monkeypatch)
    paths, datas = make_files(tmp_path, [i * 13 % 5000 for i in range(300)])
    got = list(iter_read_files(paths, depth=4))
    assert got == list(zip(paths, datas))
    assert sizes == [4, 8, 16, 32, 64, 64, 64, 48]
    assert sum(sizes) == 300


def test_iter_read_files_batches_stay_small_for_large_files(tmp_path, fds, monkeypatch):
    # a batch's bytes over the budget halve the next (never below depth):
    # large files keep about depth files in memory
    monkeypatch.setattr(py_io_uring.files, "_BATCH_BYTES", 100000)
    sizes = spy_batches(monkeypatch)
    paths, datas = make_files(tmp_path, [1000] * 30 + [60000] * 60)
    assert list(iter_read_files(paths, depth=2)) == list(zip(paths, datas))
    # 2+4+8+16 small files (the 16: 16,000 bytes, room to grow), then 32
    # large ones (1.9 MB: halved), 16 (halved again), 8, the 4 left
    assert sizes == [2, 4, 8, 16, 32, 16, 8, 4]


def test_iter_read_files_raises_after_the_files_before_it(tmp_path, fds, monkeypatch):
    # errors="raise": the files before the failing one come, in order; the
    # error has the path; no batch after it is read
    sizes = spy_batches(monkeypatch)
    paths, datas = make_files(tmp_path, [100] * 10)
    missing = str(tmp_path / "missing")
    got = []
    with pytest.raises(FileNotFoundError) as info:
        for item in iter_read_files(paths[:5] + [missing] + paths[5:], depth=2):
            got.append(item)
    assert info.value.filename == missing
    assert got == list(zip(paths[:5], datas[:5]))
    assert sum(sizes) < 11
    returned = list(iter_read_files([missing] + paths[:2], errors="return"))
    assert isinstance(returned[0][1], FileNotFoundError)
    assert returned[1:] == list(zip(paths[:2], datas[:2]))
    with pytest.raises(TypeError):
        next(iter_read_files([paths[0], 3]))      # before anything is read
    with pytest.raises(ValueError):
        next(iter_read_files(paths, depth=0))


def test_hash_files_as_hashlib_file_digest(tmp_path, fds):
    # a hash object per file, in order, over the whole file; a name or a
    # constructor, as hashlib.file_digest() takes them
    paths, datas = make_files(tmp_path, [0, 1, 4096, 70000, (2 << 20) + 5] * 3)
    calls = []
    hs = py_io_uring.hash_files(paths, "sha256", depth=4, progress=lambda *a: calls.append(a))
    assert [h.hexdigest() for h in hs] == [hashlib.sha256(d).hexdigest() for d in datas]
    assert calls[-1] == (sum(map(len, datas)), None, len(paths), len(paths))
    assert [h.digest() for h in py_io_uring.hash_files(paths, hashlib.md5)] == \
        [hashlib.md5(d).digest() for d in datas]
    assert py_io_uring.hash_files([]) == []


def test_hash_files_errors(tmp_path, fds):
    paths, datas = make_files(tmp_path, [100] * 3)
    missing = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError) as info:
        py_io_uring.hash_files(paths + [missing])
    assert info.value.filename == missing
    got = py_io_uring.hash_files([missing] + paths, "blake2b", errors="return")
    assert isinstance(got[0], FileNotFoundError)
    assert [h.hexdigest() for h in got[1:]] == [hashlib.blake2b(d).hexdigest() for d in datas]
    with pytest.raises(IsADirectoryError):
        py_io_uring.hash_files([str(tmp_path)])
    with pytest.raises(ValueError):
        py_io_uring.hash_files(paths, "no-such-hash")     # before any read
    with pytest.raises(TypeError):
        py_io_uring.hash_files(paths, 3)
    with pytest.raises(ValueError):
        py_io_uring.hash_files(paths, errors="ignore")


def test_lazy_names():
    assert "read_files" in dir(py_io_uring)
    assert py_io_uring.copytree is copytree


# ---------------------------------------------------------------- copyfile

@pytest.mark.parametrize("size", [0, 1, 128 * 1024, 128 * 1024 + 1, (3 << 20) + 17])
def test_copyfile_bytes_and_mode(tmp_path, fds, size):
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = os.urandom(size)
    src.write_bytes(data)
    src.chmod(0o600)
    dst.write_bytes(b"z" * (size + 5000))   # truncated
    dst.chmod(0o644)
    calls = []
    assert copyfile(str(src), str(dst), depth=4, progress=lambda *a: calls.append(a)) == str(dst)
    assert dst.read_bytes() == data
    assert stat.S_IMODE(dst.stat().st_mode) == 0o644      # mode not copied
    assert calls[-1] == (size, size, 1, 1)
    assert all(c[1] == size and c[3] == 1 for c in calls)
    new = tmp_path / "new"
    copyfile(src, new)
    um = os.umask(0)
    os.umask(um)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~um
    assert new.read_bytes() == data


def test_copyfile_errors(tmp_path, fds):
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    with pytest.raises(shutil.SameFileError):
        copyfile(str(src), str(src))
    os.link(str(src), str(tmp_path / "hard"))
    with pytest.raises(shutil.SameFileError):
        copyfile(str(src), str(tmp_path / "hard"))
    with pytest.raises(FileNotFoundError) as info:
        copyfile(str(tmp_path / "nope"), str(tmp_path / "d"))
    assert info.value.filename == str(tmp_path / "nope")
    with pytest.raises(IsADirectoryError) as info:
        copyfile(str(src), str(tmp_path))
    assert info.value.filename == str(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    with pytest.raises(shutil.SpecialFileError):
        copyfile(str(fifo), str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()


def test_copyfile_write_error_mid_copy(tmp_path, fds):
    # /dev/full: every write fails with ENOSPC while reads are in flight
    src = tmp_path / "src"
    src.write_bytes(os.urandom(2 << 20))
    with pytest.raises(OSError) as info:
        copyfile(str(src), "/dev/full", depth=16)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, "/dev/full")


@pytest.mark.parametrize("size", [1, 4096, 256 * 1024])
def test_copyfile_small_write_error(tmp_path, fds, size):
    # small files go as one read linked to one write: the write's ENOSPC
    # names dst
    from py_io_uring import files
    assert size <= files._SMALL_COPY
    src = tmp_path / "src"
    src.write_bytes(os.urandom(size))
    with pytest.raises(OSError) as info:
        copyfile(str(src), "/dev/full")
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, "/dev/full")


@pytest.mark.parametrize("o_direct", [False, True])
@pytest.mark.parametrize("size", [10000, 3 << 20])
@pytest.mark.parametrize("change", [-1000, 1000, -(1 << 20), 1 << 20])
def test_copy_file_that_changes_size_after_fstat(tmp_path, fds, monkeypatch, size, change, o_direct):
    # the size fstat saw is not what the reads find: as shutil.copyfile,
    # which copies to EOF, the copy is the file as it is.  A small file
    # that shrank: its short read cancels the linked write and it is redone
    # with pread/pwrite; one that grew: the bytes past the size are copied
    # after.  A large one: the splice at the end finds 0 bytes (shrank), or
    # the bytes past the size are copied after the splices (grew).
    from py_io_uring import files
    if size + change <= 0:
        pytest.skip("no such size")
    src = tmp_path / "src"
    src.write_bytes(os.urandom(size))
    final = os.urandom(size + change)
    real_fstat = os.fstat

    def fstat(fd):
        st = real_fstat(fd)
        if os.readlink("/proc/self/fd/%d" % fd) == str(src):
            with open(str(src), "r+b") as f:   # rewritten after fstat saw size
                f.truncate(0)
                f.write(final)
        return st
    monkeypatch.setattr(files.os, "fstat", fstat)
    calls = []
    copyfile(str(src), str(tmp_path / "dst"), depth=4, progress=lambda *a: calls.append(a),
             o_direct=o_direct)
    assert (tmp_path / "dst").read_bytes() == final
    assert calls[-1][0] == len(final) and calls[-1][2:] == (1, 1)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 1 << 20, (3 << 20) + 7])
def test_copyfile_direct_bypasses_the_cache(tmp_path, fds, monkeypatch, size):
    # both files opened with O_DIRECT; the bytes and the progress exact;
    # the last block's padding truncated away
    flags = {}
    real_open = os.open

    def spy(path, fl, *a):
        flags[os.fspath(path)] = fl
        return real_open(path, fl, *a)
    monkeypatch.setattr(os, "open", spy)
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = os.urandom(size)
    src.write_bytes(data)
    calls = []
    assert copyfile(str(src), str(dst), depth=6, o_direct=True,
                    progress=lambda *a: calls.append(a)) == str(dst)
    assert dst.read_bytes() == data
    assert flags[str(src)] & os.O_DIRECT and flags[str(dst)] & os.O_DIRECT
    assert calls[-1] == (size, size, 1, 1)


def test_copyfile_direct_where_refused_and_errors(tmp_path, fds, monkeypatch):
    # a file system that refuses O_DIRECT (EINVAL at open): that file is
    # opened without it; errors carry the path, as os's do
    real_open = os.open

    def refuse_direct(path, fl, *a):
        if fl & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return real_open(path, fl, *a)
    src = tmp_path / "src"
    data = os.urandom((2 << 20) + 3)
    src.write_bytes(data)
    monkeypatch.setattr(os, "open", refuse_direct)
    copyfile(str(src), str(tmp_path / "dst"), o_direct=True)
    assert (tmp_path / "dst").read_bytes() == data
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError) as info:
        copyfile(str(tmp_path / "nope"), str(tmp_path / "d"), o_direct=True)
    assert info.value.filename == str(tmp_path / "nope")
    with pytest.raises(OSError) as info:
        copyfile(str(src), "/dev/full", o_direct=True, depth=16)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, "/dev/full")
    with pytest.raises(IsADirectoryError):
        copyfile(str(tmp_path), str(tmp_path / "d2"), o_direct=True)


def test_copytree_small_and_large_files_together(tmp_path, fds):
    src = tmp_path / "src"
    src.mkdir()
    sizes = [0, 1, 4096, files_small_limit(), files_small_limit() + 1, 3 << 20] * 3
    for i, n in enumerate(sizes):
        (src / ("f%02d" % i)).write_bytes(os.urandom(n))
        os.chmod(str(src / ("f%02d" % i)), 0o600 if i % 2 else 0o644)
    calls = []
    copytree(str(src), str(tmp_path / "dst"), depth=6, progress=lambda *a: calls.append(a))
    for i, n in enumerate(sizes):
        a, b = src / ("f%02d" % i), tmp_path / "dst" / ("f%02d" % i)
        assert b.read_bytes() == a.read_bytes()
        assert os.stat(str(b)).st_mode == os.stat(str(a)).st_mode
        assert os.stat(str(b)).st_mtime_ns == os.stat(str(a)).st_mtime_ns
    assert calls[-1] == (sum(sizes), sum(sizes), len(sizes), len(sizes))


def files_small_limit():
    from py_io_uring import files
    return files._SMALL_COPY


def _kernel_calls(monkeypatch, copy_file_range=None, sendfile=None):
    """Wrap os.copy_file_range and os.sendfile (their calls counted; each
    replaced by the function given, which gets the real one first)."""
    calls = {"copy_file_range": 0, "sendfile": 0, "pread": 0}
    real = {n: getattr(os, n) for n in calls}

    def wrap(name, fn):
        def call(*args):
            calls[name] += 1
            return fn(real[name], *args) if fn is not None else real[name](*args)
        monkeypatch.setattr(os, name, call)
    wrap("copy_file_range", copy_file_range)
    wrap("sendfile", sendfile)
    wrap("pread", None)
    return calls


def _refuse(code):
    def fn(real, *args):
        raise OSError(code, os.strerror(code))
    return fn


@pytest.mark.parametrize("way", ["short", "exdev", "neither"])
def test_large_copies_short_and_refused_kernel_calls(tmp_path, fds, monkeypatch, way):
    # a large file is copied by the kernel: copy_file_range, called again
    # for what a short call left; sendfile where it is refused (EXDEV: two
    # file systems); pread/pwrite where both are (EINVAL: a file they
    # cannot take).  The same bytes, progress and modes every way.
    if way == "short":
        calls = _kernel_calls(monkeypatch, copy_file_range=lambda real, a, b, n, *o:
                              real(a, b, min(n, 70001), *o))
    elif way == "exdev":
        calls = _kernel_calls(monkeypatch, copy_file_range=_refuse(errno.EXDEV),
                              sendfile=lambda real, o, i, off, n: real(o, i, off, min(n, 90001)))
    else:
        calls = _kernel_calls(monkeypatch, copy_file_range=_refuse(errno.EINVAL),
                              sendfile=_refuse(errno.EINVAL))
    data = os.urandom((1 << 20) + 123)
    src = tmp_path / "src"
    src.write_bytes(data)
    got = []
    copyfile(str(src), str(tmp_path / "dst"), progress=lambda *a: got.append(a))
    assert (tmp_path / "dst").read_bytes() == data
    assert got[-1] == (len(data), len(data), 1, 1)
    (tmp_path / "t").mkdir()
    for i in range(6):
        (tmp_path / "t" / str(i)).write_bytes(data[:(i + 1) * 300000])
    copytree(str(tmp_path / "t"), str(tmp_path / "t2"), depth=4)
    for i in range(6):
        assert (tmp_path / "t2" / str(i)).read_bytes() == data[:(i + 1) * 300000]
    if way == "short":
        assert calls["copy_file_range"] >= len(data) // 70001 and calls["sendfile"] == 0
    elif way == "exdev":
        assert calls["sendfile"] >= len(data) // 90001
    else:
        assert calls["pread"] >= 2 and calls["sendfile"] == 7


def test_large_copy_errors_name_their_file_and_spare_the_others(tmp_path, fds, monkeypatch):
    # a kernel copy that fails mid-file: shutil.Error lists that file with
    # the source's path (EIO: a read's), the others are copied; ENOSPC
    # names the destination
    def cfr(real, i, o, n, si, so):
        if os.readlink("/proc/self/fd/%d" % i).endswith("/2") and si >= 1 << 20:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(i, o, n, si, so)
    _kernel_calls(monkeypatch, copy_file_range=cfr)
    (tmp_path / "t").mkdir()
    data = os.urandom(3 << 20)
    for i in range(4):
        (tmp_path / "t" / str(i)).write_bytes(data)
    with pytest.raises(shutil.Error) as info:
        copytree(str(tmp_path / "t"), str(tmp_path / "t2"))
    [(s, d, why)] = info.value.args[0]
    assert (s, d) == (str(tmp_path / "t" / "2"), str(tmp_path / "t2" / "2"))
    assert "Input/output error" in why and str(tmp_path / "t" / "2") in why
    for i in (0, 1, 3):
        assert (tmp_path / "t2" / str(i)).read_bytes() == data
    monkeypatch.undo()
    _kernel_calls(monkeypatch, copy_file_range=_refuse(errno.ENOSPC))
    with pytest.raises(OSError) as err:
        copyfile(str(tmp_path / "t" / "0"), str(tmp_path / "full"))
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(tmp_path / "full"))


def test_an_interrupted_copy_leaves_no_thread_running(tmp_path, fds, monkeypatch):
    # the progress callback raises while four files are copying in threads:
    # each stops at its next chunk, and all have ended (their fds closed)
    # when the exception reaches the caller
    import threading
    from py_io_uring import files
    monkeypatch.setattr(files, "_KERNEL_CHUNK", 1 << 16)
    (tmp_path / "t").mkdir()
    data = os.urandom(8 << 20)
    for i in range(8):
        (tmp_path / "t" / str(i)).write_bytes(data)
    seen = []

    def progress(done, total, nfiles, files_total):
        seen.append(done)
        if done:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        copytree(str(tmp_path / "t"), str(tmp_path / "t2"), progress=progress)
    assert not [t for t in threading.enumerate() if t.name.startswith("py_io_uring-copy")]
    assert 0 < seen[-1] < 8 * len(data)


def test_copyfile_procfs_reads_to_eof(tmp_path, fds):
    # sized 0, as shutil.copyfile copies it: its data to EOF
    copyfile("/proc/self/cmdline", str(tmp_path / "cmd"))
    with open("/proc/self/cmdline", "rb") as f:
        assert (tmp_path / "cmd").read_bytes() == f.read() != b""


def test_copyfile_directory_source(tmp_path, fds):
    with pytest.raises(IsADirectoryError) as info:
        copyfile(str(tmp_path), str(tmp_path / "dst"))
    assert info.value.filename == str(tmp_path)
    assert not (tmp_path / "dst").exists()


def test_copyfile_symlink(tmp_path, fds):
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    link = tmp_path / "link"
    os.symlink("src", str(link))
    copyfile(str(link), str(tmp_path / "copy"), follow_symlinks=False)
    assert os.readlink(str(tmp_path / "copy")) == "src"
    copyfile(str(link), str(tmp_path / "copy2"))
    assert (tmp_path / "copy2").read_bytes() == b"abc"


def test_copy2_mode_and_times(tmp_path, fds):
    src = tmp_path / "src"
    src.write_bytes(b"data" * 1000)
    src.chmod(0o640)
    os.utime(str(src), ns=(1000000000123456789, 1100000000987654321))
    (tmp_path / "d").mkdir()
    out = copy2(str(src), str(tmp_path / "d"))
    assert out == str(tmp_path / "d" / "src")
    st = os.stat(out)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime_ns == 1100000000987654321
    with open(out, "rb") as f:
        assert f.read() == b"data" * 1000


# ---------------------------------------------------------------- copytree

def make_tree(root):
    (root / "a" / "b").mkdir(parents=True)
    (root / "empty").mkdir()
    files = {}
    for rel, n in [("top", 10), ("a/one", 200000), ("a/b/two", 0), ("a/b/three", 4097),
                   ("skip.pyc", 3)] + [("a/many%02d" % i, i * 1000) for i in range(30)]:
        d = os.urandom(n)
        (root / rel).write_bytes(d)
        files[rel] = d
    (root / "a" / "one").chmod(0o600)
    os.utime(str(root / "a" / "one"), ns=(1000000000000000000, 1200000000000000001))
    os.symlink("top", str(root / "link"))
    os.symlink("a", str(root / "dirlink"))
    os.chmod(str(root / "a" / "b"), 0o750)
    os.utime(str(root / "a" / "b"), ns=(1000000000000000000, 1300000000000000002))
    return files


def snapshot(root, times=True):
    out = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        rel = os.path.relpath(dirpath, str(root))
        st = os.stat(dirpath)
        out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns if times else None)
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, n)
            if os.path.islink(p):
                out[os.path.join(rel, n)] = ("link", os.readlink(p))
            else:
                st = os.stat(p)
                with open(p, "rb") as f:
                    out[os.path.join(rel, n)] = ("file", f.read(), stat.S_IMODE(st.st_mode),
                                                 st.st_mtime_ns if times else None)
    return out


@pytest.mark.parametrize("symlinks", [False, True])
def test_copytree_matches_shutil(tmp_path, fds, symlinks):
    src = tmp_path / "src"
    make_tree(src)
    ign = shutil.ignore_patterns("*.pyc")
    shutil.copytree(str(src), str(tmp_path / "ref"), symlinks=symlinks, ignore=ign)
    seen = []
    assert copytree(str(src), str(tmp_path / "ours"), symlinks=symlinks, ignore=ign, depth=8,
                    progress=lambda *a: seen.append(a)) == str(tmp_path / "ours")
    ref, ours = snapshot(tmp_path / "ref"), snapshot(tmp_path / "ours")
    assert ours == ref
    assert ours["a/one"][2:] == ("file", 0o600, 1200000000000000001)[1:]
    assert ours["a/b"] == ("dir", 0o750, 1300000000000000002)
    assert "skip.pyc" not in ours
    # the totals are known from the first call: every file of the tree
    nfiles = sum(1 for k, v in ref.items() if v[0] == "file")
    nbytes = sum(os.path.getsize(str(tmp_path / "ref" / k)) for k, v in ref.items() if v[0] == "file")
    assert seen[-1] == (nbytes, nbytes, nfiles, nfiles)
    assert all(c[1] == nbytes and c[3] == nfiles for c in seen)
    assert [c[2] for c in seen] == sorted(c[2] for c in seen)


def test_copytree_copyfile_function_and_custom(tmp_path, fds):
    src = tmp_path / "src"
    make_tree(src)
    copytree(str(src), str(tmp_path / "cf"), copy_function=copyfile)
    assert (tmp_path / "cf" / "a" / "one").read_bytes() == (src / "a" / "one").read_bytes()
    assert (tmp_path / "cf" / "a" / "one").stat().st_mtime_ns != 1200000000000000001
    calls, ref_calls = [], []

    def mine(s, d):
        calls.append(os.path.relpath(s, str(src)))
        return shutil.copy2(s, d)

    def ref(s, d):
        ref_calls.append(os.path.relpath(s, str(src)))
        return shutil.copy2(s, d)
    copytree(str(src), str(tmp_path / "custom"), copy_function=mine)
    shutil.copytree(str(src), str(tmp_path / "ref"), copy_function=ref)
    assert calls == ref_calls and len(calls) > 30
    assert snapshot(tmp_path / "custom") == snapshot(tmp_path / "ref")


def test_copytree_dirs_exist_ok(tmp_path, fds):
    src = tmp_path / "src"
    make_tree(src)
    (tmp_path / "dst").mkdir()
    with pytest.raises(FileExistsError):
        copytree(str(src), str(tmp_path / "dst"))
    (tmp_path / "dst" / "keep").write_bytes(b"k")
    copytree(str(src), str(tmp_path / "dst"), dirs_exist_ok=True)
    assert (tmp_path / "dst" / "keep").read_bytes() == b"k"
    assert (tmp_path / "dst" / "a" / "one").read_bytes() == (src / "a" / "one").read_bytes()


def test_copytree_collects_errors_as_shutil(tmp_path, fds):
    src = tmp_path / "src"
    make_tree(src)
    os.symlink("nowhere", str(src / "dangling"))
    if os.geteuid() != 0:
        (src / "a" / "many05").chmod(0)
    with pytest.raises(shutil.Error) as info:
        copytree(str(src), str(tmp_path / "dst"))
    errs = info.value.args[0]
    by_src = dict((s, (d, why)) for s, d, why in errs)
    assert str(src / "dangling") in by_src
    assert by_src[str(src / "dangling")][0] == str(tmp_path / "dst" / "dangling")
    assert "No such file or directory" in by_src[str(src / "dangling")][1]
    if os.geteuid() != 0:
        assert "Permission denied" in by_src[str(src / "a" / "many05")][1]
        assert len(errs) == 2
    # every other file is in, byte for byte
    assert (tmp_path / "dst" / "a" / "many29").read_bytes() == (src / "a" / "many29").read_bytes()
    # ignore_dangling_symlinks skips it, as shutil does
    if os.geteuid() == 0:
        copytree(str(src), str(tmp_path / "dst2"), ignore_dangling_symlinks=True)


def test_copytree_ignore_dangling_looks_from_the_link_folder(tmp_path, fds, monkeypatch):
    # a live relative link is copied (followed: a folder's, a file's), a
    # dangling one skipped, whatever the current directory (shutil looks
    # for the target from there)
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"data")
    os.symlink("d", str(src / "dirlink"))
    os.symlink("d/f", str(src / "filelink"))
    os.symlink("nowhere", str(src / "dangling"))
    monkeypatch.chdir(str(tmp_path))              # where "d" does not exist
    copytree(str(src), str(tmp_path / "dst"), ignore_dangling_symlinks=True)
    dst = tmp_path / "dst"
    assert (dst / "dirlink" / "f").read_bytes() == b"data" and not (dst / "dirlink").is_symlink()
    assert (dst / "filelink").read_bytes() == b"data" and not (dst / "filelink").is_symlink()
    assert not os.path.lexists(str(dst / "dangling"))


def test_copytree_missing_src(tmp_path, fds):
    with pytest.raises(FileNotFoundError):
        copytree(str(tmp_path / "nope"), str(tmp_path / "dst"))


@pytest.mark.parametrize("one", ["/etc/hostname", b"/etc/hostname", "path"])
def test_one_path_alone_is_refused_by_every_reader(tmp_path, fds, one):
    # a str is iterable: read as a file per character, it would fail on '/'
    import asyncio
    import pathlib
    if one == "path":
        one = pathlib.Path("/etc/hostname")
    calls = [lambda: read_files(one), lambda: list(iter_read_files(one)),
             lambda: py_io_uring.hash_files(one),
             lambda: asyncio.run(py_io_uring.aread_files(one)),
             lambda: asyncio.run(py_io_uring.ahash_files(one)),
             lambda: py_io_uring.aiter_read_files(one)]
    for call in calls:
        with pytest.raises(TypeError, match="takes an iterable of paths, not one"):
            call()
    with open("/etc/hostname", "rb") as f:
        assert read_files([one]) == [f.read()]
